/* The safety monitor's decision core in C: the same rules as the Python safety_monitor partition
 * (septum_pump/safety_monitor.py + therapy/monitor.py + therapy/decide.py), for the seL4 PD.
 *
 * One call per event: the PD (or the host test harness) fills an sm_input, calls sm_monitor_step and
 * acts on the sm_output (writes the motor command, if any, to the motor's device region, reports the
 * alarm). Time is always an input (seconds, a double); nothing here reads a clock, does I/O or allocates.
 * The state lives in the caller's sm_monitor (make it static: it is several hundred kB with the ledger).
 *
 * Differential test: tests/sel4/test_core_differential.py feeds the same traces to this core (compiled
 * for the host) and to the Python partition's decision core and requires identical outputs.
 */
#ifndef SEPTUM_MONITOR_CORE_H
#define SEPTUM_MONITOR_CORE_H

#include <stdint.h>

#include "sm_library.h"
#include "therapy_core.h"

/* ------------------------------------------------------------------------------------------ events */
enum sm_event {
    SM_EV_HEARTBEAT = 1,      /* pc_heartbeat from pump_control */
    SM_EV_MOTOR_CMD = 2,      /* MotorCommand from pump_control: seq, rate_ml_h, bolus */
    SM_EV_SENSORS = 3,        /* a decoded sensor frame: sensors */
    SM_EV_TICK = 4,           /* the monitor's own period timer */
    SM_EV_PROGRAM = 5,        /* TherapyProgram from pump_control: program */
    SM_EV_APPROVAL = 6,       /* SoftLimitApproval from auth: approval */
    SM_EV_FAULT_RESET = 7,    /* fault_reset from auth (a clinician) */
    SM_EV_SENSOR_LINK_EOF = 8, /* the sensor link failed / closed */
    SM_EV_MOTOR_BROKEN = 9,   /* host test only: from now on every motor write fails (io.motor_ok = 0) */
    SM_EV_MOTOR_REPAIRED = 10 /* host test only: motor writes succeed again */
};

typedef struct {
    double line_pressure_mmhg, largest_bubble_ul, air_ul, reservoir_ml, motor_volume_ml;
    int32_t door_open;
} sm_sensors;

typedef struct {
    char drug[SM_ID_MAX + 1]; /* "" clears the program */
    char care_area[SM_ID_MAX + 1]; /* "" means the monitor's configured care area */
    double concentration, dose_rate, vtbi_ml, weight_kg; /* weight 0: not given */
    int32_t soft_limit_confirmed; /* pump_control's claim: audited, never acted on */
    int32_t pad;
    double pca[6]; /* pca_demand_dose, pca_lockout_min, pca_max_per_hour, pca_limit_1h, pca_limit_4h, pca_bolus_count */
} sm_program_msg;

#define SM_REASON_MAX 256
typedef struct {
    char principal[SM_ID_MAX + 1];
    char role[33];
    char reason[SM_REASON_MAX + 1];
    char drug[SM_ID_MAX + 1];
    double concentration, dose_rate, vtbi_ml, weight_kg;
    double pca[6]; /* as in sm_program_msg */
} sm_approval_msg;

typedef struct {
    int32_t kind;     /* enum sm_event */
    int32_t sensors_fresh; /* the last sensor frame is recent enough to use (the PD's staleness check) */
    double now;       /* device time, seconds */
    int64_t seq;      /* SM_EV_MOTOR_CMD */
    double rate_ml_h; /* SM_EV_MOTOR_CMD */
    int32_t bolus;    /* SM_EV_MOTOR_CMD */
    int32_t pad;
    sm_sensors sensors;     /* SM_EV_SENSORS */
    sm_program_msg program; /* SM_EV_PROGRAM */
    sm_approval_msg approval; /* SM_EV_APPROVAL */
} sm_input;

/* ------------------------------------------------------------------------------------------ output */
/* what happened to a program message (decide.py ProgramResult) */
enum sm_program_result {
    SM_PR_NONE = 0,
    SM_PR_HELD = 1,          /* the monitor is not armed yet: checked once pump_control has spoken */
    SM_PR_CLEARED = 2,       /* drug "": the program is forgotten */
    SM_PR_ERROR = 3,         /* the request cannot be interpreted (program_error says why) */
    SM_PR_NEEDS_APPROVAL = 4, /* soft-limit excess without a clinician's approval from auth */
    SM_PR_REJECTED = 5,      /* hard limit or invalid value (issues say which) */
    SM_PR_MONITOR_REFUSED = 6, /* SafetyMonitor.accept_program refused it */
    SM_PR_ACCEPTED = 7,
    SM_PR_ACCEPTED_OVERRIDE = 8 /* accepted with a clinician's approval (consumed) */
};
enum sm_approval_result { SM_AP_NONE = 0, SM_AP_HELD = 1, SM_AP_REFUSED = 2 };

/* reasons of one monitor step (bit set; monitor.py's reason texts) */
enum {
    SM_R_CLOCK = 1u << 0,           /* time went backwards / not finite */
    SM_R_LATE = 1u << 1,            /* monitor step came too late */
    SM_R_BAD_COMMAND = 1u << 2,     /* malformed or replayed command ignored */
    SM_R_HB_MISSING = 1u << 3,      /* controller heartbeat missing */
    SM_R_SENSOR_MISSING = 1u << 4,  /* sensor reading missing */
    SM_R_SENSOR_PROBLEM = 1u << 5,  /* a value not finite / negative / motor counter backwards */
    SM_R_STOPPED = 1u << 6,         /* stopped by alarm */
    SM_R_NO_PROGRAM = 1u << 7,      /* no accepted program */
    SM_R_NO_COMMAND = 1u << 8,      /* no valid command this period */
    SM_R_BOLUS_REFUSED = 1u << 9,   /* bolus refused by monitor (bolus_denial says why) */
    SM_R_LIMITED = 1u << 10,        /* command limited by ... (limited_by says which) */
    SM_R_DEVICE_FAULT = 1u << 11,   /* a device operation failed */
    SM_R_BOLUS_ENDED_LOW = 1u << 12 /* bolus ended: reservoir nearly empty */
};
enum sm_limited_by { SM_LB_NONE, SM_LB_PROGRAMMED, SM_LB_PUMP_MAX, SM_LB_WINDOW, SM_LB_DOSE_MAX, SM_LB_VTBI };

typedef struct {
    /* the motor: what was written to the driver in this event (the last accepted write) */
    int32_t motor_writes;   /* write attempts in this event (0: the motor was not touched) */
    int32_t motor_written;  /* 1 if a write was accepted; then: */
    double motor_rate_ml_h;
    double motor_lease_s;
    /* the monitor's decision, if it stepped (SafetyMonitor.step / device_fault) */
    int32_t stepped;
    int32_t bolus;
    double rate_ml_h;
    uint32_t reasons;       /* SM_R_* */
    int32_t bolus_denial;   /* enum sm_bolus_denial (therapy_core.h) */
    int32_t limited_by;     /* enum sm_limited_by */
    /* alarm state after the event */
    int32_t action;         /* enum sm_action */
    int32_t latched;        /* a latched fault is active */
    uint32_t alarms;        /* active alarms (bit = enum sm_alarm) */
    uint32_t alarms_present; /* of those, the ones whose condition is present */
    int32_t top_alarm;      /* highest priority first (-1: none) */
    /* programs and approvals */
    int32_t program_result; /* enum sm_program_result */
    int32_t program_error;  /* enum sm_error (therapy_core.h) */
    int32_t n_issues;
    sm_issue issues[SM_MAX_ISSUES];
    int32_t approval_result; /* enum sm_approval_result */
    int32_t approval_error;  /* enum sm_approval_error */
    double program_rate_ml_h; /* the program the monitor rebuilt (when accepted) */
    /* the monitor's accounting after the event */
    double delivered_ml;
    double allowed_total_ml;
} sm_output;

/* configuration (the partition computes it from the model's periods: therapy_io.py) */
typedef struct {
    double period_s;            /* a motor grant's lease in the monitor (LEASE_PERIODS x control period) */
    double heartbeat_timeout_s; /* commands missing this long latch controller-silent */
    double watchdog_timeout_s;  /* a step later than this after the previous latches the watchdog */
    double silent_after_s;      /* pump_control silent (command or heartbeat) this long: step without a command */
    double lease_s;             /* the lease written to the motor with a rate > 0 */
    double approval_ttl_s;      /* a clinician's approval is good this long */
    char care_area[SM_ID_MAX + 1]; /* the care area this monitor is configured for */
} sm_config;

/* ------------------------------------------------------------------------------------------ state */
enum sm_approval_error {
    SM_AE_NONE = 0, SM_AE_ROLE, SM_AE_PRINCIPAL, SM_AE_NO_REASON, SM_AE_REASON_TEXT, SM_AE_PRESCRIPTION
};
#define SM_MAX_APPROVALS 4
typedef struct {
    char principal[SM_ID_MAX + 1];
    char reason[SM_REASON_MAX + 1];
    char drug[SM_ID_MAX + 1];
    double concentration, dose_rate, vtbi_ml, weight_kg;
    double pca[6];
    double received_at;
} sm_approval;

#define SM_AIR_CAP 1024 /* air readings kept for the cumulative window (full: treated as too much air) */
typedef struct {
    double t[SM_AIR_CAP], ul[SM_AIR_CAP];
    int32_t head, n;
} sm_air;

typedef struct {
    int32_t active, present;
    double since;
} sm_alarm_slot;

/* therapy/excess.py ExcessDetector: integrated over-infusion (a one-sided CUSUM with a bounded credit) */
#define SM_GRANTS_CAP 256 /* grants kept for the peak rate (full: the oldest goes, a lower peak is stricter) */
#define SM_OVER_FLOOR_ML 0.01 /* MonitorConfig.over_infusion_floor_ml */
typedef struct {
    double excess_ml;
    int32_t has_last;
    double last_measured, last_allowed;
    int32_t g_head, g_n;
    double g_t[SM_GRANTS_CAP], g_rate[SM_GRANTS_CAP];
    int32_t has_mark;
    double mark_measured, mark_allowed, mark_limit;
} sm_excess;

typedef struct {
    const sm_library *lib;
    sm_config cfg;
    /* therapy/monitor.py SafetyMonitor */
    int32_t armed; /* the SafetyMonitor exists (library present and pump_control has spoken) */
    double now;
    int32_t has_program;
    sm_program program;
    sm_ledger ledger;
    sm_pca pca;
    sm_rate_history rates; /* accepted rates, for the titration limit */
    double delivered_ml, allowed_total_ml;
    int32_t has_baseline;
    double motor_baseline, measured_ml;
    double reservoir_ml; /* at the last good reading (0: unknown, no bolus) */
    sm_excess excess;
    int32_t has_last_step;
    double last_step, last_heartbeat;
    int32_t has_last_seq;
    int64_t last_seq;
    int32_t has_lease;
    double lease_start, lease_end, lease_rate;
    int32_t lease_bolus;
    uint32_t advisories;
    sm_alarm_slot alarms[SM_N_ALARMS];
    int32_t has_hold_off;
    double bolus_hold_off_until;
    sm_air air;
    /* safety_monitor.py MonitorPartition */
    int32_t pc_seen, sensors_seen, has_sensors;
    int32_t latched_state; /* the latch the partition last reported */
    sm_sensors sensors;
    double last_pc, last_hb;
    double sent_rate, sent_until;
    int32_t motor_ok;
    uint32_t early_faults; /* device faults before the monitor was armed (bit = alarm) */
    int32_t has_waiting;
    sm_program_msg waiting;
    int32_t has_soft_waiting;
    sm_program_msg soft_waiting;
    double soft_waiting_at;
    int32_t n_approvals;
    sm_approval approvals[SM_MAX_APPROVALS];
    sm_input input; /* the event being handled (a copy: never the sender's memory) */
} sm_monitor;

/* Start: the library to use (e.g. &sm_drug_library) and the configuration. The motor is stopped (the
 * caller writes the stop that out->motor_* carries). */
void sm_monitor_init(sm_monitor *m, const sm_library *lib, const sm_config *cfg, double now, sm_output *out);
/* sizeof(sm_monitor), for a caller that allocates it by size (the host test harness) */
unsigned long sm_monitor_sizeof(void);
/* One event. */
void sm_monitor_step(sm_monitor *m, const sm_input *in, sm_output *out);

#endif
