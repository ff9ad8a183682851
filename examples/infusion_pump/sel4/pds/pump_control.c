/* The pump_control PD: engineer C's control core (core/control_core.c, the infusion state machine of
 * therapy/state_machine.py and the start gate of therapy/gates.py) on seL4. This file is the wiring:
 *
 *   commands (from auth): program_infusion -> SM_OP_PROGRAM (an accepted program goes to the monitor as a
 *     TherapyProgram); start_infusion -> the start gate on what the monitor reports, then SM_OP_REQUEST_START,
 *     or SM_OP_CONFIRM_START when a start is pending (the two-step start); pause / stop / emergency stop;
 *   monitor_status (every 10 ms frame; it is also what wakes this PD): a stop alarm or latched fault ->
 *     SM_OP_ALARM; every 50 ms on the clock SM_OP_TICK -> the MotorCommand, and the heartbeat;
 *   out: motor_cmd, program, pc_heartbeat, pump_status (ui), now and then a pump_event (network).
 *
 * Scripted faults (-D, chosen by the scenario build), each announced on the serial line first; they bypass the
 * core on purpose (a faulty controller):
 *   PC_FAULT_OVERLIMIT_AFTER_MS=T  T ms after the start it sends a 600 mL/h saline program and asks for
 *                                  600 mL/h from then on (the hard maximum is 500)
 *   PC_FAULT_SILENT_AFTER_MS=T, PC_FAULT_SILENT_FOR_MS=D
 *                                  T ms after the start it sends nothing for D ms, then asks for the programmed
 *                                  rate again, ignoring the core and what the monitor reports (so only the
 *                                  monitor's latch can keep the motor stopped)
 *
 * Serial lines: septum: pump_control state name=S rate=R tick=N | pump_control program verdict=V issues=N
 *               | pump_control fault kind=K rate=R tick=N */
#define CH_ON_COMMANDS on_command
#define CH_ON_MONITOR_STATUS on_monitor_status
#define CH_ON_DRUG_LIBRARY_PC on_library
#include "pd_channels_pump_control.h"
#include "control_core.h"

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

static const char *const state_names[] = {"idle", "programmed", "running", "paused", "alarm", "complete", "fault"};
static const char *const verdict_names[] = {"none", "accepted", "needs-confirmation", "rejected"};

static sm_control ctl;
static sm_control_config ccfg;
static sm_control_input cin;
static sm_control_output cout;

static septum_TherapyProgram_t program;
static septum_MotorCommand_t motor;
static septum_Heartbeat_t heartbeat;
static septum_PumpStatus_t status;
static septum_PumpEvent_t event;
static septum_MonitorStatus_t last_status;

static int state = SM_ST_IDLE;
static uint64_t ticks, periods, running_since_us, next_period_us;
static double rate_wanted;
static int overlimit, silent, resumed, alarm_sent;

static void op(int32_t which, int clinician)
{
    memset(&cin, 0, sizeof cin);
    cin.op = which;
    cin.clinician = clinician;
    cin.now = septum_now_s();
}

static void run_op(void)
{
    sm_control_step(&ctl, &cin, &cout);
    state = cout.state;
    if (cout.program_rate_ml_h > 0 && !overlimit && !silent) { /* the faults keep the rate they chose */
        rate_wanted = cout.program_rate_ml_h;
    }
}

static void show_state(void)
{
    sl_begin("state");
    sl_str("name", state >= 0 && state <= SM_ST_COMPLETE ? state_names[state] : "?");
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

static void copy_c(char *dst, size_t cap, const char *src, uint32_t len)
{
    uint32_t n = len < cap ? len : 0; /* too long for the core's bound: empty, which it refuses */
    memcpy(dst, src, n);
    dst[n] = 0;
}

static void show_if_changed(int before)
{
    if (state != before) {
        show_state();
    }
}

static void on_command(const septum_Command_t *c)
{
    int before = state;
    int clinician = c->role.len == 9 && memcmp(c->role.data, "clinician", 9) == 0;
    switch (c->action) {
    case SEPTUM_COMMAND_ACTION_PROGRAM_INFUSION:
        op(SM_OP_PROGRAM, clinician);
        copy_c(cin.rx.drug, sizeof cin.rx.drug, c->drug.data, c->drug.len);
        if (c->care_area.len) {
            copy_c(cin.rx.care_area, sizeof cin.rx.care_area, c->care_area.data, c->care_area.len);
        } else {
            memcpy(cin.rx.care_area, "adult-med-surg", sizeof "adult-med-surg");
        }
        cin.rx.concentration = c->concentration;
        cin.rx.dose_rate = c->dose_rate;
        cin.rx.vtbi_ml = c->vtbi_ml;
        cin.rx.weight_kg = c->weight_kg;
        run_op();
        sl_begin("program");
        sl_str("verdict", cout.verdict >= 0 && cout.verdict <= SM_V_REJECTED ? verdict_names[cout.verdict] : "?");
        sl_u64("issues", (uint64_t)cout.n_issues);
        sl_u64("installed", (uint64_t)cout.installed);
        sl_end();
        if (cout.verdict == SM_V_ACCEPTED && cout.installed == 1) {
            SEPTUM_COPY_STR(program.drug, c->drug);
            SEPTUM_SET_STR(program.care_area, cin.rx.care_area);
            program.concentration = c->concentration;
            program.dose_rate = c->dose_rate;
            program.vtbi_ml = c->vtbi_ml;
            program.weight_kg = c->weight_kg;
            program.soft_limit_confirmed = 0;
            send_program();
        }
        break;
    case SEPTUM_COMMAND_ACTION_START_INFUSION:
        /* never armed or confirmed while the monitor holds the motor (gates.py start_refusal) */
        op(SM_OP_START_GATE, clinician);
        cin.gate_latched = last_status.latched_fault;
        cin.gate_alarm = last_status.alarm.len ? SM_N_ALARMS : -1;
        cin.gate_high_priority = last_status.alarm_priority == 3;
        run_op();
        if (cout.outcome != SM_CO_OK) {
            break;
        }
        if (state == SM_ST_ALARM) {
            op(SM_OP_CLEAR_ALARM, clinician);
            run_op();
        }
        op(ctl.has_start_pending ? SM_OP_CONFIRM_START : SM_OP_REQUEST_START, clinician);
        run_op();
        if (state == SM_ST_RUNNING && before != SM_ST_RUNNING) {
            running_since_us = septum_now_us();
            alarm_sent = 0;
        }
        break;
    case SEPTUM_COMMAND_ACTION_PAUSE_INFUSION:
        op(SM_OP_PAUSE, clinician);
        run_op();
        break;
    case SEPTUM_COMMAND_ACTION_STOP_INFUSION:
        op(SM_OP_STOP, clinician);
        run_op();
        break;
    case SEPTUM_COMMAND_ACTION_EMERGENCY_STOP:
        op(SM_OP_EMERGENCY_STOP, 0);
        run_op();
        break;
    default:
        break;
    }
    show_if_changed(before);
}

static void on_library(const septum_DrugLibrary_t *m)
{
    (void)m; /* the core uses the table compiled from the same drug_library.yaml (docs/sel4.md) */
}

static void scripted_faults(uint64_t now)
{
    uint64_t ran_ms = running_since_us ? (now - running_since_us) / 1000u : 0;
    if (PC_FAULT_OVERLIMIT_AFTER_MS && !overlimit && state == SM_ST_RUNNING && ran_ms >= PC_FAULT_OVERLIMIT_AFTER_MS) {
        overlimit = 1;
        fault_line("overlimit", OVERLIMIT_RATE_ML_H);
        program.dose_rate = OVERLIMIT_RATE_ML_H;
        send_program();
        rate_wanted = OVERLIMIT_RATE_ML_H;
    }
    if (PC_FAULT_SILENT_AFTER_MS && !silent && state == SM_ST_RUNNING && ran_ms >= PC_FAULT_SILENT_AFTER_MS) {
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
    int before = state;
    if (!resumed && !alarm_sent && (last_status.latched_fault || last_status.alarm_priority == 3)) {
        op(SM_OP_ALARM, 0); /* the monitor stopped the motor: the controller follows (ALARM) */
        cin.action = last_status.latched_fault ? SM_ACT_LATCHED_FAULT : SM_ACT_STOP;
        run_op();
        alarm_sent = 1;
    }
    op(SM_OP_TICK, 0);
    run_op();
    show_if_changed(before);
    heartbeat.seq = (int64_t)periods;
    septum_ch_pc_heartbeat_send(&ch_tx_pc_heartbeat, &heartbeat);
    /* every period, running or not: the monitor counts a period without a valid command as silence */
    motor.seq++;
    motor.rate_ml_h = cout.rate_ml_h;
    motor.bolus = (uint8_t)(cout.bolus != 0);
    if (overlimit || resumed) { /* the scripted faulty controller, past the core */
        motor.rate_ml_h = rate_wanted;
        motor.bolus = 0;
    }
    septum_ch_motor_cmd_send(&ch_tx_motor_cmd, &motor);
    memset(&status, 0, sizeof status);
    status.state = (uint16_t)state;
    SEPTUM_COPY_STR(status.drug, program.drug);
    status.rate_ml_h = state == SM_ST_RUNNING ? last_status.rate_ml_h : 0.0;
    status.delivered_ml = last_status.delivered_ml;
    status.vtbi_ml = program.vtbi_ml;
    status.program_rate_ml_h = rate_wanted <= 1200.0 ? rate_wanted : 0.0;
    status.confirm_pending = (uint8_t)(ctl.has_start_pending != 0);
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
    ccfg.period_s = CONTROL_PERIOD_US / 1e6;
    ccfg.start_confirm_timeout_s = 30.0;
    ccfg.edit_confirm_timeout_s = 60.0;
    ccfg.paused_too_long_s = 120.0;
    sm_control_init(&ctl, &sm_drug_library, &ccfg, septum_now_s());
    show_state();
}

void notified(microkit_channel ch)
{
    pd_channels_drain(ch);
}
