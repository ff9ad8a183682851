/* The pump_control PD.
 *
 * STAND-IN CONTROLLER, until engineer C's control core (core/control_core.c) is wired in here: it keeps
 * the partition's role on the wire, not its rules. A program from auth becomes a TherapyProgram to the
 * monitor; start then confirm (the two-step start) runs it; while running it asks the monitor for the
 * programmed rate every control period (50 ms on the clock; the monitor's MonitorStatus, sent every 10 ms
 * frame, is what wakes it) and sends its heartbeat; it reports PumpStatus to the ui and a PumpEvent to the network now and
 * then. It checks nothing against the drug library: the safety monitor (C core) is what enforces.
 *
 * Scripted faults (-D, chosen by the scenario build), each announced on the serial line first:
 *   PC_FAULT_OVERLIMIT_AFTER_MS=T  T ms after the start it sends a 600 mL/h saline program and asks for
 *                                  600 mL/h from then on (a faulty controller; the hard maximum is 500)
 *   PC_FAULT_SILENT_AFTER_MS=T, PC_FAULT_SILENT_FOR_MS=D
 *                                  T ms after the start it sends nothing for D ms, then asks for the programmed
 *                                  rate again, ignoring what the monitor reports (so only the monitor's latch
 *                                  can keep the motor stopped)
 *
 * Serial lines: septum: pump_control state name=S rate=R tick=N | pump_control fault kind=K ... tick=N */
#define CH_ON_COMMANDS on_command
#define CH_ON_MONITOR_STATUS on_monitor_status
#define CH_ON_DRUG_LIBRARY_PC on_library
#include "pd_channels_pump_control.h"

#ifndef PC_FAULT_OVERLIMIT_AFTER_MS
#define PC_FAULT_OVERLIMIT_AFTER_MS 0
#endif
#ifndef PC_FAULT_SILENT_AFTER_MS
#define PC_FAULT_SILENT_AFTER_MS 0
#endif
#ifndef PC_FAULT_SILENT_FOR_MS
#define PC_FAULT_SILENT_FOR_MS 1000
#endif
#define OVERLIMIT_RATE_ML_H 600.0
#define CONTROL_PERIOD_US 50000u /* therapy_io.py CONTROL_PERIOD_S */

enum { ST_IDLE, ST_PROGRAMMED, ST_RUNNING, ST_PAUSED, ST_ALARM, ST_COMPLETE, ST_FAULT };
static const char *const state_names[] = {"idle", "programmed", "running", "paused", "alarm", "complete", "fault"};

static septum_TherapyProgram_t program;
static septum_MotorCommand_t motor;
static septum_Heartbeat_t heartbeat;
static septum_PumpStatus_t status;
static septum_PumpEvent_t event;
static septum_MonitorStatus_t last_status;

static int state = ST_IDLE;
static int confirm_pending;
static uint64_t ticks, periods, running_since_us, next_period_us;
static double rate_wanted;
static int overlimit, silent, resumed;

static void show_state(void)
{
    sl_begin("state");
    sl_str("name", state_names[state]);
    sl_fix3("rate", rate_wanted);
    sl_u64("tick", ticks);
    sl_end();
}

static void fault_line(const char *kind, double rate)
{
    sl_begin("fault");
    sl_str("kind", kind);
    sl_fix3("rate", rate);
    sl_u64("tick", ticks);
    sl_end();
}

static void send_program(void)
{
    program.program_id++;
    septum_ch_program_send(&ch_tx_program, &program);
}

static void on_command(const septum_Command_t *c)
{
    switch (c->action) {
    case SEPTUM_COMMAND_ACTION_PROGRAM_INFUSION:
        if (state == ST_RUNNING) {
            return;
        }
        SEPTUM_COPY_STR(program.drug, c->drug);
        SEPTUM_SET_STR(program.care_area, "adult-med-surg");
        program.concentration = c->concentration;
        program.dose_rate = c->dose_rate;
        program.vtbi_ml = c->vtbi_ml;
        program.weight_kg = c->weight_kg;
        program.soft_limit_confirmed = 0;
        send_program();
        rate_wanted = c->dose_rate; /* mL/h drugs only in this stand-in */
        state = ST_PROGRAMMED;
        confirm_pending = 0;
        show_state();
        break;
    case SEPTUM_COMMAND_ACTION_START_INFUSION:
        if (state != ST_PROGRAMMED && state != ST_PAUSED) {
            return;
        }
        if (!confirm_pending) {
            confirm_pending = 1; /* step one: the panel asks to confirm */
            return;
        }
        confirm_pending = 0;
        state = ST_RUNNING;
        running_since_us = septum_now_us();
        show_state();
        break;
    case SEPTUM_COMMAND_ACTION_PAUSE_INFUSION:
    case SEPTUM_COMMAND_ACTION_STOP_INFUSION:
    case SEPTUM_COMMAND_ACTION_EMERGENCY_STOP:
        if (state == ST_RUNNING) {
            state = c->action == SEPTUM_COMMAND_ACTION_PAUSE_INFUSION ? ST_PAUSED : ST_IDLE;
            show_state();
        }
        break;
    default:
        break;
    }
}

static void on_library(const septum_DrugLibrary_t *m)
{
    (void)m; /* the stand-in controller checks nothing against the library */
}

static void scripted_faults(uint64_t now)
{
    uint64_t ran_ms = state == ST_RUNNING ? (now - running_since_us) / 1000u : 0;
    if (PC_FAULT_OVERLIMIT_AFTER_MS && !overlimit && state == ST_RUNNING && ran_ms >= PC_FAULT_OVERLIMIT_AFTER_MS) {
        overlimit = 1;
        fault_line("overlimit", OVERLIMIT_RATE_ML_H);
        program.dose_rate = OVERLIMIT_RATE_ML_H;
        send_program();
        rate_wanted = OVERLIMIT_RATE_ML_H;
    }
    if (PC_FAULT_SILENT_AFTER_MS && !silent && state == ST_RUNNING && ran_ms >= PC_FAULT_SILENT_AFTER_MS) {
        silent = 1;
        fault_line("silent", rate_wanted);
    }
    if (silent && !resumed && ran_ms >= PC_FAULT_SILENT_AFTER_MS + PC_FAULT_SILENT_FOR_MS) {
        resumed = 1;
        fault_line("resumed", rate_wanted);
    }
}

static void control_period(void)
{
    uint64_t now = septum_now_us();
    periods++;
    scripted_faults(now);
    if (silent && !resumed) {
        return; /* the scripted silence: nothing at all on any channel */
    }
    /* A real controller stops when the monitor reports a stopping alarm; the faulty one (after its silence)
     * ignores the monitor, so that only the monitor's latch stands between it and the motor. */
    int obey = !resumed;
    if (obey && state == ST_RUNNING && (last_status.latched_fault || last_status.alarm_priority == 3)) {
        state = last_status.latched_fault ? ST_FAULT : ST_ALARM;
        show_state();
    }
    heartbeat.seq = (int64_t)periods;
    septum_ch_pc_heartbeat_send(&ch_tx_pc_heartbeat, &heartbeat);
    /* every period, running or not: the monitor counts a period without a valid command as silence */
    motor.seq++;
    motor.rate_ml_h = state == ST_RUNNING || resumed ? rate_wanted : 0.0;
    motor.bolus = 0;
    septum_ch_motor_cmd_send(&ch_tx_motor_cmd, &motor);
    memset(&status, 0, sizeof status);
    status.state = (uint16_t)state;
    SEPTUM_COPY_STR(status.drug, program.drug);
    status.rate_ml_h = state == ST_RUNNING ? last_status.rate_ml_h : 0.0;
    status.delivered_ml = last_status.delivered_ml;
    status.vtbi_ml = program.vtbi_ml;
    status.program_rate_ml_h = rate_wanted <= 1200.0 ? rate_wanted : 0.0;
    status.confirm_pending = (uint8_t)confirm_pending;
    SEPTUM_SET_STR(status.message, "stand-in controller");
    septum_ch_pump_status_send(&ch_tx_pump_status, &status);
    if (periods % 10 == 0) {
        memset(&event, 0, sizeof event);
        event.kind = 0; /* status */
        event.value = last_status.delivered_ml;
        SEPTUM_SET_STR(event.unit, "mL");
        event.at_ms = (int64_t)(now / 1000u);
        septum_ch_pump_events_send(&ch_tx_pump_events, &event);
    }
}

static void on_monitor_status(const septum_MonitorStatus_t *m)
{
    /* the monitor's status (every 10 ms frame) is what wakes this PD; the period itself is kept on the clock,
     * so a late or bunched status does not make a late or doubled control period */
    uint64_t now = septum_now_us();
    last_status = *m;
    ticks++;
    if (now >= next_period_us) {
        next_period_us = next_period_us + CONTROL_PERIOD_US > now ? next_period_us + CONTROL_PERIOD_US
                                                                  : now + CONTROL_PERIOD_US;
        control_period();
    }
}

void init(void)
{
    pd_channels_init();
    show_state();
}

void notified(microkit_channel ch)
{
    pd_channels_drain(ch);
}
