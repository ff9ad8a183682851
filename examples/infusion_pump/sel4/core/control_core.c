/* pump_control's decision core (see control_core.h): therapy/state_machine.py Controller and
 * therapy/gates.py start_refusal, operation for operation. */
#include "control_core.h"

static void zero(void *p, unsigned long n) {
    char *c = p;
    while (n--) *c++ = 0;
}

unsigned long sm_control_sizeof(void) { return sizeof(sm_control); }

static void new_history(sm_control *c) {
    sm_ledger_init(&c->ledger);
    sm_pca_init(&c->pca);
    c->rates.n = 0;
}

void sm_control_init(sm_control *c, const sm_library *lib, const sm_control_config *cfg, double now) {
    zero(c, sizeof *c);
    c->lib = lib;
    c->cfg = *cfg;
    c->now = now;
    c->state = SM_ST_IDLE;
    new_history(c);
}

/* ------------------------------------------------------------------------------------------ bookkeeping */
static void catch_up(sm_control *c, double now) { /* Controller._catch_up */
    if (!c->has_lease || !c->has_program) return;
    double end = sm_pymin(now, c->lease_end);
    if (end > c->lease_start) {
        sm_ledger_record(&c->ledger, c->program.drug, c->lease_start, end, c->lease_rate,
                         c->program.canonical_per_ml, c->lease_bolus);
        double volume = c->lease_rate * (end - c->lease_start) / SM_SECONDS_PER_HOUR;
        c->delivered_ml += volume;
        if (c->lease_bolus) sm_pca_add_delivered(&c->pca, volume);
        c->lease_start = end;
    }
}

static int clock(sm_control *c, double now) { /* _clock: 0 if the time is refused */
    if (!sm_isfinite(now) || now < c->now) return 0;
    c->now = now;
    catch_up(c, now);
    if (c->has_start_pending && now > c->start_pending_until) c->has_start_pending = 0; /* _expire */
    if (c->has_edit && now > c->edit_until) c->has_edit = 0; /* an unconfirmed edit timed out */
    return 1;
}

static void halt_motor(sm_control *c) { /* _halt_motor */
    if (c->has_lease) c->lease_end = c->lease_start;
    c->pca.active = 0;
    c->bolus_requested = 0;
}

static void to_paused(sm_control *c, double now) {
    halt_motor(c);
    c->state = SM_ST_PAUSED;
    c->has_paused_since = 1;
    c->paused_since = now;
}

static void add_issue(sm_control_output *o, int field, int severity, int detail) {
    if (o->n_issues >= SM_MAX_ISSUES) return;
    o->issues[o->n_issues].field = field;
    o->issues[o->n_issues].severity = severity;
    o->issues[o->n_issues].detail = detail;
    o->issues[o->n_issues].pad = 0;
    o->n_issues++;
}

/* ------------------------------------------------------------------------------------------ programming */
static int is_space(char ch) { return ch == ' ' || (ch >= 0x09 && ch <= 0x0d) || (ch >= 0x1c && ch <= 0x1f); }

static int reason_ok(const char *s) { /* _override_issue: strip(), 1-200 printable characters */
    int len = sm_strlen(s, 257), b = 0, e = len;
    while (b < e && is_space(s[b])) b++;
    while (e > b && is_space(s[e - 1])) e--;
    if (e == b || e - b > 200) return 0;
    for (int i = b; i < e; i++)
        if (!(s[i] >= 0x20 && s[i] <= 0x7e)) return 0;
    return 1;
}

static void program_op(sm_control *c, const sm_control_input *in, sm_control_output *o) {
    /* therapy_io.program_request, then Controller.program_infusion (validate_program inside) */
    int drug, area;
    int32_t has_pca = 0;
    sm_pca_request pca;
    zero(&pca, sizeof pca);
    int err = sm_program_request_check(c->lib, &in->rx, &drug, &area, &pca, &has_pca);
    if (err) {
        o->verdict = SM_V_NONE;
        o->program_error = err;
        return;
    }
    if (!clock(c, in->now)) {
        o->outcome = SM_CO_CLOCK;
        return;
    }
    double now = c->now;
    if (!in->clinician) { /* _authority_issue */
        o->verdict = SM_V_REJECTED;
        add_issue(o, SM_F_PRINCIPAL, SM_SEV_UNAUTHORISED, SM_D_NOT_CLINICIAN);
        return;
    }
    sm_program p;
    int32_t n = 0;
    int built = sm_evaluate(c->lib, drug, area, in->rx.concentration, in->rx.dose_rate, in->rx.vtbi_ml,
                            in->rx.weight_kg, has_pca, &pca, &p, o->issues, &n);
    o->n_issues = n;
    int blocking = !built, soft = 0;
    uint32_t soft_fields = 0;
    for (int i = 0; i < n; i++) {
        if (o->issues[i].severity == SM_SEV_SOFT) {
            soft = 1;
            soft_fields |= 1u << o->issues[i].field;
        } else {
            blocking = 1;
        }
    }
    if (blocking) {
        o->verdict = SM_V_REJECTED;
        return;
    }
    if (soft) {
        if (!in->has_override) {
            o->verdict = SM_V_NEEDS_CONFIRMATION;
            return;
        }
        if (!reason_ok(in->override_reason)) {
            o->verdict = SM_V_REJECTED;
            add_issue(o, SM_F_OVERRIDE_REASON, SM_SEV_INVALID, SM_D_REASON);
            return;
        }
        p.override_fields = soft_fields;
        p.has_override_reason = 1;
    }
    /* accepted by validation: the titration limit, then the state */
    int raised = sm_titration_check(c->lib, &c->rates, &p, now);
    if (raised) {
        o->verdict = SM_V_REJECTED;
        o->n_issues = 0;
        add_issue(o, SM_F_RATE, SM_SEV_HARD, raised);
        return;
    }
    if (c->state == SM_ST_IDLE || c->state == SM_ST_PROGRAMMED || c->state == SM_ST_COMPLETE) {
        if (sm_rate_history_record(c->lib, &c->rates, now, p.drug, p.rate) < 0) { /* full: fail safe */
            o->verdict = SM_V_REJECTED;
            o->n_issues = 0;
            add_issue(o, SM_F_RATE, SM_SEV_HARD, SM_D_HISTORY_FULL);
            return;
        }
        c->program = p; /* _install */
        c->has_program = 1;
        c->delivered_ml = 0.0;
        c->has_lease = 0;
        c->pca.program_boluses = 0;
        c->state = SM_ST_PROGRAMMED;
        c->has_start_pending = 0;
        o->verdict = SM_V_ACCEPTED;
        o->installed = 1;
        return;
    }
    if (c->state == SM_ST_ALARM) {
        o->verdict = SM_V_REJECTED;
        o->n_issues = 0;
        add_issue(o, SM_F_PROGRAM, SM_SEV_INVALID, SM_D_ALARM_STATE);
        return;
    }
    const sm_program *cur = &c->program;
    if (p.drug != cur->drug || p.area != cur->area || !sm_isclose(p.canonical_per_ml, cur->canonical_per_ml, 1e-6)) {
        o->verdict = SM_V_REJECTED;
        o->n_issues = 0;
        add_issue(o, SM_F_DRUG_ID, SM_SEV_INVALID, SM_D_CHANGE_DRUG);
        return;
    }
    c->edit = p;
    c->has_edit = 1;
    c->edit_until = now + c->cfg.edit_confirm_timeout_s;
    o->verdict = SM_V_ACCEPTED;
    o->installed = 2;
}

/* ------------------------------------------------------------------------------------------ tick */
typedef struct {
    double rate;
    int bolus, at_limit;
} plan;

static plan plan_period(sm_control *c, double now, double period_s, double volume_cap_ml) { /* pca.plan_period */
    const sm_program *p = &c->program;
    double window = sm_window_headroom_ml(p, &c->ledger, now);
    double cap = sm_pymax(0.0, volume_cap_ml);
    double hours = period_s / SM_SECONDS_PER_HOUR;
    plan r;
    if (c->pca.active && p->has_pca) {
        double wanted = sm_pymin(p->pca.bolus_rate_ml_h * hours, sm_pca_remaining_ml(&c->pca));
        if (wanted <= window) {
            r.rate = sm_pymin(wanted, cap) / hours; r.bolus = 1; r.at_limit = 0;
            return r;
        }
        c->pca.active = 0; /* a window limit is reached during this bolus: deliver what fits, it is over */
        r.rate = sm_pymin(window, cap) / hours; r.bolus = 1; r.at_limit = 1;
        return r;
    }
    double basal = p->rate_ml_h * hours;
    if (basal <= window) {
        r.rate = sm_pymin(basal, cap) / hours; r.bolus = 0; r.at_limit = 0;
        return r;
    }
    r.rate = sm_pymin(sm_pymin(sm_kvo_rate_ml_h(p) * hours, window), cap) / hours;
    r.bolus = 0;
    r.at_limit = 1;
    return r;
}

static void tick(sm_control *c, double now, sm_control_output *o) { /* Controller.tick */
    double period = c->cfg.period_s;
    double rate = 0.0;
    int bolus = 0, at_limit = 0;
    sm_program *p = &c->program;
    if (c->state == SM_ST_RUNNING && c->has_program) {
        double remaining = p->vtbi_ml - c->delivered_ml;
        if (remaining <= SM_VOLUME_EPS_ML) {
            c->state = SM_ST_COMPLETE;
            c->pca.active = 0;
        } else {
            if (c->bolus_requested && p->has_pca) {
                c->bolus_requested = 0;
                /* re-checked at the moment the motor would move: the state may have changed */
                if (sm_pca_check(&c->pca, &p->pca, &c->ledger, p, now, 0, 0.0, 0.0, 0, 0.0) == SM_BD_NONE)
                    sm_pca_start(&c->pca, now, &p->pca);
            }
            plan pl = plan_period(c, now, period, remaining);
            rate = pl.rate;
            bolus = pl.bolus;
            at_limit = pl.at_limit;
        }
    }
    if (c->state == SM_ST_COMPLETE && c->has_program) { /* keep the vein open, within the dose windows */
        double room = sm_window_headroom_ml(p, &c->ledger, now) * SM_SECONDS_PER_HOUR / period;
        rate = sm_pymin(sm_kvo_rate_ml_h(p), room);
    }
    c->has_lease = c->has_program;
    c->lease_start = now;
    c->lease_end = now + period;
    c->lease_rate = rate;
    c->lease_bolus = bolus;
    c->seq++;
    o->seq = c->seq;
    o->rate_ml_h = rate;
    o->bolus = bolus;
    o->at_limit = at_limit;
    o->cmd_state = c->state;
}

/* ------------------------------------------------------------------------------------------ gates.py */
static int start_refusal(const sm_control_input *in) {
    if (in->gate_latched) return SM_CO_GATE_LATCHED;
    if (in->gate_alarm < 0) return SM_CO_OK;
    int action = in->gate_alarm < SM_N_ALARMS ? sm_alarm_action[in->gate_alarm]
                                              : (in->gate_high_priority ? SM_ACT_STOP : SM_ACT_ADVISORY);
    return action >= SM_ACT_STOP ? SM_CO_GATE_ALARM : SM_CO_OK;
}

/* ------------------------------------------------------------------------------------------ operations */
void sm_control_step(sm_control *c, const sm_control_input *untrusted, sm_control_output *o) {
    c->input = *untrusted;
    sm_control_input *in = &c->input;
    in->rx.drug[SM_ID_MAX] = 0;
    in->rx.care_area[SM_ID_MAX] = 0;
    in->override_reason[sizeof in->override_reason - 1] = 0;
    zero(o, sizeof *o);
    int op = in->op;
    double now = in->now;
    if (op == SM_OP_PROGRAM) {
        program_op(c, in, o);
    } else if (op == SM_OP_START_GATE) {
        o->outcome = start_refusal(in);
    } else if (!clock(c, now)) {
        o->outcome = SM_CO_CLOCK;
    } else {
        now = c->now;
        switch (op) {
        case SM_OP_CONFIRM_EDIT:
            if (!in->clinician) o->outcome = SM_CO_NOT_CLINICIAN;
            else if (!c->has_edit) o->outcome = SM_CO_NO_EDIT;
            else {
                c->has_edit = 0;
                c->program = c->edit;
                /* (a full history records nothing: the next raise is then refused) */
                (void)sm_rate_history_record(c->lib, &c->rates, now, c->program.drug, c->program.rate);
                c->delivered_ml = 0.0; /* the new volume to be infused counts from now */
                c->pca.program_boluses = 0; /* a confirmed change is a new prescription */
            }
            break;
        case SM_OP_CANCEL_EDIT:
            c->has_edit = 0;
            break;
        case SM_OP_REQUEST_START:
            if (!in->clinician) o->outcome = SM_CO_NOT_CLINICIAN;
            else if (!(c->state == SM_ST_PROGRAMMED || c->state == SM_ST_PAUSED) || !c->has_program)
                o->outcome = SM_CO_CANNOT_START;
            else {
                c->has_start_pending = 1;
                c->start_pending_until = now + c->cfg.start_confirm_timeout_s;
            }
            break;
        case SM_OP_CONFIRM_START:
            if (!in->clinician) o->outcome = SM_CO_NOT_CLINICIAN;
            else if (!c->has_start_pending) o->outcome = SM_CO_NO_START_PENDING;
            else if (!(c->state == SM_ST_PROGRAMMED || c->state == SM_ST_PAUSED)) {
                c->has_start_pending = 0;
                o->outcome = SM_CO_CANNOT_START;
            } else {
                c->has_start_pending = 0;
                c->state = SM_ST_RUNNING;
                c->has_paused_since = 0;
            }
            break;
        case SM_OP_PAUSE:
            if (!in->clinician) o->outcome = SM_CO_NOT_CLINICIAN;
            else if (!(c->state == SM_ST_RUNNING || c->state == SM_ST_COMPLETE)) o->outcome = SM_CO_CANNOT_PAUSE;
            else to_paused(c, now);
            break;
        case SM_OP_EMERGENCY_STOP: /* break glass: anyone, always */
            if (c->state == SM_ST_RUNNING || c->state == SM_ST_COMPLETE) to_paused(c, now);
            else halt_motor(c);
            break;
        case SM_OP_STOP:
            if (!in->clinician) o->outcome = SM_CO_NOT_CLINICIAN;
            else {
                halt_motor(c);
                c->state = SM_ST_IDLE;
                c->has_program = 0;
                c->has_lease = 0;
                c->has_edit = 0;
                c->has_start_pending = 0;
                c->has_paused_since = 0;
            }
            break;
        case SM_OP_NEW_PATIENT:
            if (!in->clinician) o->outcome = SM_CO_NOT_CLINICIAN;
            else if (c->state != SM_ST_IDLE) o->outcome = SM_CO_NOT_IDLE;
            else new_history(c);
            break;
        case SM_OP_ALARM:
            if (in->action >= SM_ACT_STOP &&
                (c->state == SM_ST_RUNNING || c->state == SM_ST_PAUSED || c->state == SM_ST_COMPLETE)) {
                halt_motor(c);
                c->state = SM_ST_ALARM;
                c->has_start_pending = 0;
                c->has_paused_since = 0;
            }
            break;
        case SM_OP_CLEAR_ALARM:
            if (!in->clinician) o->outcome = SM_CO_NOT_CLINICIAN;
            else if (c->state != SM_ST_ALARM) o->outcome = SM_CO_NO_ALARM;
            else {
                c->state = SM_ST_PAUSED;
                c->has_paused_since = 1;
                c->paused_since = now;
            }
            break;
        case SM_OP_BOLUS: { /* request_bolus */
            c->pca.demands++;
            int denial;
            if (in->source != SM_SRC_PCA_BUTTON) denial = SM_BD_NOT_PATIENT_BUTTON;
            else if (!c->has_program || !c->program.has_pca) denial = SM_BD_NOT_PCA;
            else if (c->state != SM_ST_RUNNING) denial = SM_BD_NOT_RUNNING;
            else if (c->bolus_requested) denial = SM_BD_IN_PROGRESS;
            else
                denial = sm_pca_check(&c->pca, &c->program.pca, &c->ledger, &c->program, now, in->has_hold_off,
                                      in->hold_off_until, 0.0, in->has_reservoir, in->reservoir_ml);
            if (denial) {
                c->pca.denied++;
                o->bolus_denial = denial;
            } else {
                c->bolus_requested = 1;
                o->bolus_granted = 1;
            }
            break;
        }
        case SM_OP_TICK:
            tick(c, now, o);
            break;
        default:
            break;
        }
    }
    o->state = c->state;
    o->has_program = c->has_program;
    o->edit_pending = c->has_edit;
    o->start_pending = c->has_start_pending;
    o->bolus_requested = c->bolus_requested;
    o->bolus_active = c->pca.active;
    o->delivered_ml = c->delivered_ml;
    o->program_rate_ml_h = c->has_program ? c->program.rate_ml_h : 0.0;
}
