/* pump_control's decision core in C: the infusion state machine of therapy/state_machine.py (Controller) and
 * the start gate of therapy/gates.py, with the same rules, for the pump_control PD.
 *
 * One call per operation (sm_control_step): program, confirm/cancel an edit, the two-step start, pause,
 * emergency stop, stop, new patient, an alarm from the monitor, clearing it, a patient's bolus demand, and
 * the control period's tick, which yields the MotorCommand for the safety monitor. Time is an input; a time
 * that goes backwards is refused (SM_CO_CLOCK) and changes nothing, where the Python raises ClockError.
 * Freestanding, no allocation: the state is the caller's (static) sm_control.
 */
#ifndef SEPTUM_CONTROL_CORE_H
#define SEPTUM_CONTROL_CORE_H

#include <stdint.h>

#include "sm_library.h"
#include "therapy_core.h"

enum sm_infusion_state { SM_ST_IDLE, SM_ST_PROGRAMMED, SM_ST_RUNNING, SM_ST_PAUSED, SM_ST_ALARM, SM_ST_COMPLETE };

enum sm_control_op {
    SM_OP_PROGRAM = 1, SM_OP_CONFIRM_EDIT, SM_OP_CANCEL_EDIT, SM_OP_REQUEST_START, SM_OP_CONFIRM_START, SM_OP_PAUSE,
    SM_OP_EMERGENCY_STOP, SM_OP_STOP, SM_OP_NEW_PATIENT, SM_OP_ALARM, SM_OP_CLEAR_ALARM, SM_OP_BOLUS, SM_OP_TICK,
    SM_OP_START_GATE
};
/* why an operation was refused (Controller's Outcome messages) */
enum sm_control_outcome {
    SM_CO_OK = 0, SM_CO_NOT_CLINICIAN, SM_CO_NO_EDIT, SM_CO_CANNOT_START, SM_CO_NO_START_PENDING, SM_CO_CANNOT_PAUSE,
    SM_CO_NOT_IDLE, SM_CO_NO_ALARM, SM_CO_CLOCK, SM_CO_GATE_LATCHED, SM_CO_GATE_ALARM
};
enum sm_verdict { SM_V_NONE = 0, SM_V_ACCEPTED, SM_V_NEEDS_CONFIRMATION, SM_V_REJECTED };
enum sm_bolus_source { SM_SRC_PCA_BUTTON = 0, SM_SRC_KEYPAD, SM_SRC_NETWORK };

typedef struct {
    int32_t op;             /* enum sm_control_op */
    int32_t clinician;      /* the principal is an authenticated clinician at the pump's keypad */
    double now;
    /* SM_OP_PROGRAM: the prescription as entered, and a clinician's soft-limit confirmation */
    sm_prescription rx;
    char override_reason[257];
    int32_t has_override;
    /* SM_OP_ALARM: the action the monitor reports (enum sm_action) */
    int32_t action;
    /* SM_OP_BOLUS */
    int32_t source;         /* enum sm_bolus_source */
    int32_t has_hold_off, has_reservoir;
    double hold_off_until, reservoir_ml;
    /* SM_OP_START_GATE: what the monitor reports */
    int32_t gate_latched, gate_alarm; /* gate_alarm: enum sm_alarm, -1 none, SM_N_ALARMS an unknown kind */
    int32_t gate_high_priority;
} sm_control_input;

typedef struct {
    int32_t outcome;        /* enum sm_control_outcome (SM_CO_OK: done) */
    int32_t verdict;        /* SM_OP_PROGRAM: enum sm_verdict */
    int32_t program_error;  /* the request could not be built (enum sm_error), else 0 */
    int32_t installed;      /* 1 installed, 2 held as a pending edit */
    int32_t n_issues;
    sm_issue issues[SM_MAX_ISSUES];
    int32_t bolus_granted, bolus_denial; /* SM_OP_BOLUS */
    /* SM_OP_TICK: the MotorCommand */
    int64_t seq;
    double rate_ml_h;
    int32_t bolus, at_limit, cmd_state;
    /* the state after the operation */
    int32_t state, has_program, edit_pending, start_pending, bolus_requested, bolus_active;
    double delivered_ml;
    double program_rate_ml_h;
} sm_control_output;

typedef struct {
    double period_s, start_confirm_timeout_s, edit_confirm_timeout_s, paused_too_long_s;
} sm_control_config;

typedef struct {
    const sm_library *lib;
    sm_control_config cfg;
    double now;
    int32_t state;
    int32_t has_program;
    sm_program program;
    sm_ledger ledger;
    sm_pca pca;
    sm_rate_history rates;
    double delivered_ml;
    int32_t has_paused_since;
    double paused_since;
    int32_t has_start_pending;
    double start_pending_until;
    int32_t has_edit;
    sm_program edit;
    double edit_until;
    int32_t bolus_requested;
    int32_t has_lease;
    double lease_start, lease_end, lease_rate;
    int32_t lease_bolus;
    int64_t seq;
    sm_control_input input; /* the operation being handled (a copy) */
} sm_control;

void sm_control_init(sm_control *c, const sm_library *lib, const sm_control_config *cfg, double now);
void sm_control_step(sm_control *c, const sm_control_input *in, sm_control_output *out);
unsigned long sm_control_sizeof(void);

#endif
