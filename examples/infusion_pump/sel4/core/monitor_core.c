/* The safety monitor's decision core (see monitor_core.h). Two layers, as in Python:
 *   - the period decision: therapy/monitor.py SafetyMonitor (step, accept_program, device_fault,
 *     clinician_restart, clear_alarms) and the alarm manager and air detector of therapy/alarms.py;
 *   - the partition's event handling: septum_pump/safety_monitor.py MonitorPartition (when a step runs,
 *     the controller-silence and overdue checks, the motor grant and its lease, failed device writes,
 *     soft-limit approvals from auth, programs from pump_control).
 * Each function names the Python it mirrors. */
#include "monitor_core.h"

#define BIT(k) (1u << (k))

static void reset_out(sm_output *o) {
    char *p = (char *)o;
    for (unsigned i = 0; i < sizeof *o; i++) p[i] = 0;
    o->top_alarm = -1;
}

/* ============================================================================ alarms.py AlarmManager */
static void alarms_update(sm_monitor *m, double now, uint32_t conditions) {
    for (int k = 0; k < SM_N_ALARMS; k++) {
        sm_alarm_slot *a = &m->alarms[k];
        int present = (conditions & BIT(k)) != 0;
        if (a->active) {
            if (!present && sm_alarm_action[k] < SM_ACT_STOP) a->active = 0; /* advisories clear themselves */
            else a->present = present;
        } else if (present) {
            a->active = 1;
            a->present = 1;
            a->since = now;
        }
    }
}

static int alarms_action(const sm_monitor *m) {
    int act = SM_ACT_NONE;
    for (int k = 0; k < SM_N_ALARMS; k++)
        if (m->alarms[k].active && sm_alarm_action[k] > act) act = sm_alarm_action[k];
    return act;
}

static int latched_fault(const sm_monitor *m) { return alarms_action(m) == SM_ACT_LATCHED_FAULT; }

static uint32_t present_conditions(const sm_monitor *m) {
    uint32_t c = 0;
    for (int k = 0; k < SM_N_ALARMS; k++)
        if (m->alarms[k].active && m->alarms[k].present) c |= BIT(k);
    return c;
}

static void latch(sm_monitor *m, int kind, double now) { /* SafetyMonitor._latch */
    alarms_update(m, now, BIT(kind) | present_conditions(m));
}

static int top_alarm(const sm_monitor *m) {
    /* AlarmManager.active()[0]: the most severe action, then priority, then the oldest, then the name */
    int best = -1;
    for (int k = 0; k < SM_N_ALARMS; k++) {
        const sm_alarm_slot *a = &m->alarms[k];
        if (!a->active) continue;
        if (best < 0) { best = k; continue; }
        const sm_alarm_slot *b = &m->alarms[best];
        if (sm_alarm_action[k] != sm_alarm_action[best]) {
            if (sm_alarm_action[k] > sm_alarm_action[best]) best = k;
        } else if (sm_alarm_priority[k] != sm_alarm_priority[best]) {
            if (sm_alarm_priority[k] > sm_alarm_priority[best]) best = k;
        } else if (a->since != b->since) {
            if (a->since < b->since) best = k;
        } else if (sm_alarm_name_rank[k] < sm_alarm_name_rank[best]) {
            best = k;
        }
    }
    return best;
}

/* ============================================================================ excess.py ExcessDetector */
static void excess_reset(sm_excess *x) {
    x->excess_ml = 0.0;
    x->has_last = 0;
    x->has_mark = 0;
}

static void excess_granted(sm_excess *x, double now, double rate, double lease_s, double jitter_s) {
    if (x->g_n == SM_GRANTS_CAP) { /* the oldest goes (never in the differential traces) */
        x->g_head = (x->g_head + 1) % SM_GRANTS_CAP;
        x->g_n--;
    }
    int i = (x->g_head + x->g_n) % SM_GRANTS_CAP;
    x->g_t[i] = now;
    x->g_rate[i] = sm_pymax(0.0, rate);
    x->g_n++;
    double horizon = now - 2 * sm_pymax(lease_s, jitter_s);
    while (x->g_n > 1 && x->g_t[x->g_head] < horizon) {
        x->g_head = (x->g_head + 1) % SM_GRANTS_CAP;
        x->g_n--;
    }
}

static double excess_peak(const sm_excess *x) {
    double peak = 0.0;
    for (int i = 0; i < x->g_n; i++) {
        double r = x->g_rate[(x->g_head + i) % SM_GRANTS_CAP];
        if (i == 0 || r > peak) peak = r; /* max(..., default=0.0) */
    }
    return peak;
}

static int excess_update(sm_excess *x, double measured, double allowed, int alarm_active, int gross, double jitter_s) {
    double limit = SM_OVER_FLOOR_ML + jitter_s * excess_peak(x) / SM_SECONDS_PER_HOUR;
    if (x->has_last) {
        double dm = measured - x->last_measured;
        double da = allowed - x->last_allowed;
        double credit = jitter_s * excess_peak(x) / SM_SECONDS_PER_HOUR;
        x->excess_ml = sm_pymax(-credit, x->excess_ml + dm - (1 + SM_OVER_FRACTION) * da);
    }
    x->has_last = 1;
    x->last_measured = measured;
    x->last_allowed = allowed;
    if (alarm_active && x->has_mark) {
        double since = (measured - x->mark_measured) - (1 + SM_OVER_FRACTION) * (allowed - x->mark_allowed);
        return since > x->mark_limit;
    }
    int present = x->excess_ml > limit || gross;
    if (present && !x->has_mark) {
        x->has_mark = 1;
        x->mark_measured = measured;
        x->mark_allowed = allowed;
        x->mark_limit = limit;
    } else if (!alarm_active && !present) {
        x->has_mark = 0;
    }
    return present;
}

/* ============================================================================ alarms.py AirInLineDetector */
static uint32_t air_conditions(sm_air *air, double now, const sm_sensors *s) {
    uint32_t found = 0;
    if (s->largest_bubble_ul >= SM_AIR_SINGLE_BUBBLE_UL) found |= BIT(SM_A_AIR_IN_LINE);
    int overflow = 0;
    if (s->air_ul > 0) {
        if (air->n < SM_AIR_CAP) {
            int i = (air->head + air->n) % SM_AIR_CAP;
            air->t[i] = now;
            air->ul[i] = s->air_ul;
            air->n++;
        } else {
            overflow = 1; /* more air readings in the window than the table holds: too much air */
        }
    }
    while (air->n && air->t[air->head] <= now - SM_AIR_CUMULATIVE_WINDOW_S) {
        air->head = (air->head + 1) % SM_AIR_CAP;
        air->n--;
    }
    double total = 0.0;
    for (int i = 0; i < air->n; i++) total += air->ul[(air->head + i) % SM_AIR_CAP];
    if (overflow || total >= SM_AIR_CUMULATIVE_UL) found |= BIT(SM_A_AIR_CUMULATIVE);
    return found;
}

static uint32_t sensor_conditions(const sm_sensors *s) { /* alarms.sensor_conditions */
    uint32_t found = 0;
    if (s->line_pressure_mmhg >= SM_OCCLUSION_MMHG) found |= BIT(SM_A_OCCLUSION);
    if (s->reservoir_ml <= SM_RESERVOIR_EMPTY_ML) found |= BIT(SM_A_RESERVOIR_EMPTY);
    else if (s->reservoir_ml <= SM_RESERVOIR_LOW_ML) found |= BIT(SM_A_RESERVOIR_LOW);
    if (s->door_open) found |= BIT(SM_A_DOOR_OPEN);
    return found;
}

static int sensor_problems(const sm_sensors *s) { /* SensorReading.problems() is not empty */
    const double v[5] = {s->line_pressure_mmhg, s->largest_bubble_ul, s->air_ul, s->reservoir_ml,
                         s->motor_volume_ml};
    for (int i = 0; i < 5; i++)
        if (!sm_isfinite(v[i]) || v[i] < 0) return 1;
    return 0;
}

/* ============================================================================ monitor.py SafetyMonitor */
static void pca_end_bolus(sm_monitor *m) { m->pca.active = 0; }

static void catch_up(sm_monitor *m, double now) { /* MonitorLedger.book (therapy/monitor_ledger.py) */
    if (!m->has_lease || !m->has_program) return;
    double end = sm_pymin(now, m->lease_end);
    double start = m->lease_start;
    /* already booked as possibly delivered (the clock-fault path books a whole grant): never twice */
    if (m->ledger.has_last_end && start < m->ledger.last_end) start = m->ledger.last_end;
    if (end > start) {
        sm_ledger_record(&m->ledger, m->program.drug, start, end, m->lease_rate, m->program.canonical_per_ml,
                         m->lease_bolus);
        double volume = m->lease_rate * (end - start) / SM_SECONDS_PER_HOUR;
        m->delivered_ml += volume;
        m->allowed_total_ml += volume;
        if (m->lease_bolus) sm_pca_add_delivered(&m->pca, volume);
    }
    m->lease_start = sm_pymax(m->lease_start, end);
}

/* require_time(now, previous): finite and not earlier */
static int time_ok(const sm_monitor *m, double now) { return sm_isfinite(now) && !(now < m->now); }

static void safety_init(sm_monitor *m, double now) { /* SafetyMonitor.__init__ */
    m->now = now;
    m->has_program = 0;
    sm_ledger_init(&m->ledger);
    sm_pca_init(&m->pca);
    m->rates.n = 0;
    m->delivered_ml = m->allowed_total_ml = 0.0;
    m->has_baseline = 0;
    m->motor_baseline = m->measured_ml = 0.0;
    m->has_last_step = 0;
    m->last_step = 0.0;
    m->last_heartbeat = now;
    m->has_last_seq = 0;
    m->last_seq = 0;
    m->has_lease = 0;
    m->advisories = 0;
    for (int k = 0; k < SM_N_ALARMS; k++) m->alarms[k].active = m->alarms[k].present = 0;
    m->has_hold_off = 0;
    m->air.head = m->air.n = 0;
    m->reservoir_ml = 0.0;
    excess_reset(&m->excess);
    m->excess.g_head = m->excess.g_n = 0;
}

static void decision(sm_output *o, double rate, int bolus) { /* SafetyMonitor._decision */
    o->stepped = 1;
    o->rate_ml_h = rate;
    o->bolus = bolus;
}

static uint32_t sensor_step(sm_monitor *m, double now, const sm_sensors *s, sm_output *o) { /* _sensor_conditions */
    m->reservoir_ml = 0.0; /* unknown until this reading proves otherwise: no bolus on a guess */
    if (!s) {
        o->reasons |= SM_R_SENSOR_MISSING;
        return BIT(SM_A_SENSOR_FAULT);
    }
    int problems = sensor_problems(s);
    if (m->has_baseline && !problems) {
        if (s->motor_volume_ml - m->motor_baseline < m->measured_ml - SM_VOLUME_EPS_ML) problems = 1;
    }
    if (problems) {
        o->reasons |= SM_R_SENSOR_PROBLEM;
        return BIT(SM_A_SENSOR_FAULT);
    }
    uint32_t found = sensor_conditions(s) | air_conditions(&m->air, now, s);
    m->reservoir_ml = s->reservoir_ml;
    if (!m->has_baseline) {
        m->has_baseline = 1;
        m->motor_baseline = s->motor_volume_ml - m->allowed_total_ml;
    }
    double measured = s->motor_volume_ml - m->motor_baseline;
    m->measured_ml = measured;
    double expected = m->allowed_total_ml;
    int gross = measured - expected > SM_OVER_TOL_ML + SM_OVER_FRACTION * expected;
    if (excess_update(&m->excess, measured, expected, m->alarms[SM_A_OVER_INFUSION].active, gross, m->cfg.period_s))
        found |= BIT(SM_A_OVER_INFUSION);
    if (expected - measured > SM_UNDER_TOL_ML + SM_UNDER_FRACTION * expected) found |= BIT(SM_A_UNDER_INFUSION);
    return found;
}

typedef struct {
    int64_t seq;
    double rate_ml_h;
    int bolus;
    int running; /* state RUNNING (the partition derives it: rate > 0 or bolus), else IDLE */
} sm_cmd;

static double permitted(sm_monitor *m, double now, const sm_cmd *c, sm_output *o, int *bolus_out) { /* _permitted */
    sm_program *p = &m->program;
    double hours = m->cfg.period_s / SM_SECONDS_PER_HOUR;
    int has_settings = p->has_pca;
    if (c->bolus && has_settings && !m->pca.active) {
        int denial = sm_pca_check(&m->pca, &p->pca, &m->ledger, p, now, m->has_hold_off, m->bolus_hold_off_until,
                                  m->cfg.period_s, 1, m->reservoir_ml);
        if (denial == SM_BD_NONE) {
            sm_pca_start(&m->pca, now, &p->pca);
        } else {
            o->reasons |= SM_R_BOLUS_REFUSED;
            o->bolus_denial = denial;
        }
    } else if (!c->bolus && m->pca.active) {
        pca_end_bolus(m); /* the controller ended it; what was delivered stays counted */
    }
    if (m->pca.active && !(m->reservoir_ml >= SM_BOLUS_MIN_RESERVOIR_ML)) {
        pca_end_bolus(m); /* nearly empty: a bolus must not be what runs the bag dry */
        o->reasons |= SM_R_BOLUS_ENDED_LOW;
    }
    if (has_settings && sm_pca_count_exceeded(&m->pca, &p->pca)) m->advisories |= BIT(SM_A_BOLUS_EXCEEDED);
    int bolus = m->pca.active && has_settings;
    double ceiling;
    if (bolus) ceiling = sm_pymin(p->pca.bolus_rate_ml_h * hours, sm_pca_remaining_ml(&m->pca));
    else if (m->delivered_ml >= p->vtbi_ml - SM_VOLUME_EPS_ML) ceiling = sm_kvo_rate_ml_h(p) * hours;
    else ceiling = p->rate_ml_h * hours;
    /* every limit that applies, in the order the Python dict lists them */
    double lim[5];
    int code[5], n = 0;
    lim[n] = ceiling; code[n++] = SM_LB_PROGRAMMED;
    lim[n] = p->max_rate_ml_h * hours; code[n++] = SM_LB_PUMP_MAX;
    double window = sm_window_headroom_ml(p, &m->ledger, now);
    lim[n] = window; code[n++] = SM_LB_WINDOW;
    if (p->has_dose_hard_max) { lim[n] = sm_pymax(0.0, p->dose_hard_max_ml - m->delivered_ml); code[n++] = SM_LB_DOSE_MAX; }
    if (m->delivered_ml < p->vtbi_ml - SM_VOLUME_EPS_ML) { lim[n] = p->vtbi_ml - m->delivered_ml; code[n++] = SM_LB_VTBI; }
    double requested = c->rate_ml_h * hours;
    double volume = requested;
    for (int i = 0; i < n; i++) volume = sm_pymin(volume, lim[i]);
    if (volume < requested - SM_VOLUME_EPS_ML) {
        int b = 0;
        for (int i = 1; i < n; i++)
            if (lim[i] < lim[b]) b = i;
        o->reasons |= SM_R_LIMITED;
        o->limited_by = code[b];
    }
    if (window < ceiling - SM_VOLUME_EPS_ML) {
        m->advisories |= BIT(SM_A_DOSE_LIMIT);
        if (bolus) pca_end_bolus(m); /* a bolus stops when a limit is reached */
    }
    if (m->delivered_ml >= p->vtbi_ml - SM_VOLUME_EPS_ML) m->advisories |= BIT(SM_A_INFUSION_COMPLETE);
    *bolus_out = bolus;
    return sm_pymax(0.0, volume) / hours;
}

static int valid_command(const sm_monitor *m, const sm_cmd *c) { /* _valid_command */
    if (m->has_last_seq && c->seq <= m->last_seq) return 0; /* replayed or reordered */
    return sm_isfinite(c->rate_ml_h) && c->rate_ml_h >= 0;
}

static void safety_step(sm_monitor *m, double now, const sm_cmd *c, const sm_sensors *s, sm_output *o) {
    /* SafetyMonitor.step */
    if (!time_ok(m, now)) {
        if (m->has_lease) catch_up(m, m->lease_end); /* book the whole last grant: it may all have run */
        m->has_lease = 0;
        pca_end_bolus(m);
        latch(m, SM_A_CLOCK_FAULT, m->now);
        o->reasons |= SM_R_CLOCK;
        decision(o, 0.0, 0);
        return;
    }
    m->now = now;
    catch_up(m, now);
    uint32_t conditions = m->advisories;
    if (m->has_last_step && now - m->last_step > m->cfg.watchdog_timeout_s) {
        conditions |= BIT(SM_A_WATCHDOG);
        o->reasons |= SM_R_LATE;
    }
    m->has_last_step = 1;
    m->last_step = now;
    int valid = c && valid_command(m, c);
    if (valid) {
        m->last_heartbeat = now;
        m->has_last_seq = 1;
        m->last_seq = c->seq;
    } else if (c) {
        o->reasons |= SM_R_BAD_COMMAND;
    }
    if (now - m->last_heartbeat > m->cfg.heartbeat_timeout_s) {
        conditions |= BIT(SM_A_CONTROLLER_SILENT);
        o->reasons |= SM_R_HB_MISSING;
    }
    conditions |= sensor_step(m, now, s, o);
    /* paused-too-long needs the PAUSED state, which the partition's commands never carry */
    alarms_update(m, now, conditions);
    int action = alarms_action(m);
    double rate = 0.0;
    int bolus = 0;
    m->advisories = 0; /* recomputed below while delivering */
    if (action >= SM_ACT_STOP) {
        pca_end_bolus(m);
        o->reasons |= SM_R_STOPPED;
    } else if (!m->has_program) {
        o->reasons |= SM_R_NO_PROGRAM;
    } else if (!valid) {
        o->reasons |= SM_R_NO_COMMAND;
    } else if (!c->running) {
        pca_end_bolus(m);
    } else {
        rate = permitted(m, now, c, o, &bolus);
    }
    m->has_lease = 1;
    m->lease_start = now;
    m->lease_end = now + m->cfg.period_s;
    m->lease_rate = rate;
    m->lease_bolus = bolus;
    excess_granted(&m->excess, now, rate, m->cfg.period_s, m->cfg.period_s);
    decision(o, rate, bolus);
}

static void safety_device_fault(sm_monitor *m, int kind, double now, sm_output *o) { /* device_fault */
    if (!time_ok(m, now)) kind = SM_A_CLOCK_FAULT;
    else m->now = now;
    catch_up(m, m->now);
    m->has_lease = 0;
    pca_end_bolus(m);
    latch(m, kind, m->now);
    o->reasons |= SM_R_DEVICE_FAULT;
    decision(o, 0.0, 0);
}

static void clear_program(sm_monitor *m, double now) { /* SafetyMonitor.clear_program */
    if (!time_ok(m, now)) {
        latch(m, SM_A_CLOCK_FAULT, m->now);
        return;
    }
    m->now = now;
    catch_up(m, m->now);
    m->has_program = 0;
    m->has_lease = 0;
    pca_end_bolus(m);
}

static int clinician_restart(sm_monitor *m, double now) { /* SafetyMonitor.clinician_restart */
    if (!time_ok(m, now)) return 0;
    if (!latched_fault(m)) return 0;
    m->now = now;
    catch_up(m, now);
    m->has_lease = 0;
    for (int k = 0; k < SM_N_ALARMS; k++)
        if (m->alarms[k].active && sm_alarm_action[k] == SM_ACT_LATCHED_FAULT) m->alarms[k].active = 0;
    m->last_heartbeat = now;
    m->has_last_step = 1;
    m->last_step = now;
    return 1;
}

static void clear_alarms(sm_monitor *m, double now) { /* SafetyMonitor.clear_alarms + AlarmManager.clear */
    if (!time_ok(m, now)) return;
    m->now = now;
    uint32_t cleared = 0;
    for (int k = 0; k < SM_N_ALARMS; k++) {
        sm_alarm_slot *a = &m->alarms[k];
        if (a->active && sm_alarm_action[k] == SM_ACT_STOP && !a->present) {
            a->active = 0;
            cleared |= BIT(k);
        }
    }
    if (cleared & BIT(SM_A_OCCLUSION)) {
        m->has_hold_off = 1;
        m->bolus_hold_off_until = m->now + SM_OCCLUSION_HOLD_OFF_S;
    }
    if (cleared & (BIT(SM_A_AIR_IN_LINE) | BIT(SM_A_AIR_CUMULATIVE))) m->air.head = m->air.n = 0;
    if (cleared & (BIT(SM_A_OVER_INFUSION) | BIT(SM_A_SENSOR_FAULT))) {
        m->has_baseline = 0; /* re-baseline the motor counter after the fault was dealt with */
        m->measured_ml = 0.0;
        excess_reset(&m->excess);
    }
}

/* ============================================================================ approvals.py ApprovalBook */
static int is_space(char ch) { return ch == ' ' || (ch >= 0x09 && ch <= 0x0d) || (ch >= 0x1c && ch <= 0x1f); }
static int is_printable(char ch) { return ch >= 0x20 && ch <= 0x7e; } /* ASCII only: other bytes refused */

/* str.strip(): [*b, *e) of s */
static void strip(const char *s, int len, int *b, int *e) {
    int i = 0, j = len;
    while (i < j && is_space(s[i])) i++;
    while (j > i && is_space(s[j - 1])) j--;
    *b = i;
    *e = j;
}

static int all_printable(const char *s, int b, int e) {
    for (int i = b; i < e; i++)
        if (!is_printable(s[i])) return 0;
    return 1;
}

#define SM_RX_VALUES 10 /* concentration, dose rate, VTBI, weight and the six PCA fields */
static int rx_matches(const char *drug_a, const double *a, const char *drug_b, const double *b) { /* matches */
    if (!sm_streq(drug_a, drug_b)) return 0;
    for (int i = 0; i < SM_RX_VALUES; i++)
        if (!sm_isclose(a[i], b[i], 1e-9)) return 0;
    return 1;
}

static void approval_values(const sm_approval *a, double v[SM_RX_VALUES]) {
    v[0] = a->concentration; v[1] = a->dose_rate; v[2] = a->vtbi_ml; v[3] = a->weight_kg;
    for (int i = 0; i < 6; i++) v[4 + i] = a->pca[i];
}
static void program_values(const sm_program_msg *p, double v[SM_RX_VALUES]) {
    v[0] = p->concentration; v[1] = p->dose_rate; v[2] = p->vtbi_ml; v[3] = p->weight_kg;
    for (int i = 0; i < 6; i++) v[4 + i] = p->pca[i];
}
static void approval_msg_values(const sm_approval_msg *p, double v[SM_RX_VALUES]) {
    v[0] = p->concentration; v[1] = p->dose_rate; v[2] = p->vtbi_ml; v[3] = p->weight_kg;
    for (int i = 0; i < 6; i++) v[4 + i] = p->pca[i];
}

static int approval_valid(const sm_monitor *m, const sm_approval *a, double now) {
    return a->received_at <= now && now <= a->received_at + m->cfg.approval_ttl_s;
}

static void approvals_expire(sm_monitor *m, double now) {
    int k = 0;
    for (int i = 0; i < m->n_approvals; i++)
        if (approval_valid(m, &m->approvals[i], now)) m->approvals[k++] = m->approvals[i];
    m->n_approvals = k;
}

static int approvals_find(sm_monitor *m, const sm_program_msg *p, double now) { /* newest matching, or -1 */
    approvals_expire(m, now);
    double v[SM_RX_VALUES], w[SM_RX_VALUES];
    program_values(p, v);
    for (int i = m->n_approvals - 1; i >= 0; i--) {
        approval_values(&m->approvals[i], w);
        if (rx_matches(m->approvals[i].drug, w, p->drug, v)) return i;
    }
    return -1;
}

static void approvals_consume(sm_monitor *m, int i) {
    for (int k = i; k + 1 < m->n_approvals; k++) m->approvals[k] = m->approvals[k + 1];
    m->n_approvals--;
}

static int approvals_add(sm_monitor *m, const sm_approval_msg *a, double now) { /* ApprovalBook.add */
    if (!sm_streq(a->role, "clinician")) return SM_AE_ROLE;
    int plen = sm_strlen(a->principal, SM_ID_MAX + 1);
    if (plen == 0 || plen > SM_ID_MAX || !all_printable(a->principal, 0, plen)) return SM_AE_PRINCIPAL;
    int b, e;
    strip(a->reason, sm_strlen(a->reason, SM_REASON_MAX + 1), &b, &e);
    if (e == b) return SM_AE_NO_REASON;
    if (e - b > 200 || !all_printable(a->reason, b, e)) return SM_AE_REASON_TEXT;
    double v[SM_RX_VALUES];
    approval_msg_values(a, v);
    if (!a->drug[0]) return SM_AE_PRESCRIPTION;
    for (int i = 0; i < SM_RX_VALUES; i++)
        if (!(sm_isfinite(v[i]) && v[i] >= 0)) return SM_AE_PRESCRIPTION;
    approvals_expire(m, now);
    int k = 0; /* the newest decision counts */
    for (int i = 0; i < m->n_approvals; i++) {
        double w[SM_RX_VALUES];
        approval_values(&m->approvals[i], w);
        if (!rx_matches(m->approvals[i].drug, w, a->drug, v)) m->approvals[k++] = m->approvals[i];
    }
    m->n_approvals = k;
    if (m->n_approvals == SM_MAX_APPROVALS) approvals_consume(m, 0); /* the oldest goes first */
    sm_approval *n = &m->approvals[m->n_approvals++];
    sm_strcpy(n->principal, a->principal, sizeof n->principal);
    int r = 0;
    for (int i = b; i < e; i++) n->reason[r++] = a->reason[i];
    n->reason[r] = 0;
    sm_strcpy(n->drug, a->drug, sizeof n->drug);
    n->concentration = v[0]; n->dose_rate = v[1]; n->vtbi_ml = v[2]; n->weight_kg = v[3];
    for (int i = 0; i < 6; i++) n->pca[i] = v[4 + i];
    n->received_at = now;
    return SM_AE_NONE;
}

/* ============================================================================ safety_monitor.py MonitorPartition */
static int motor_write(sm_monitor *m, double rate, double lease, sm_output *o) { /* _motor_send; 0 if it failed */
    o->motor_writes++;
    if (!m->motor_ok) return 0;
    o->motor_written = 1;
    o->motor_rate_ml_h = rate;
    o->motor_lease_s = lease;
    return 1;
}

static void device_failed(sm_monitor *m, int kind, int is_motor, double now, sm_output *o) { /* device_failed */
    if (m->sent_rate != 0.0 || is_motor) {
        if (motor_write(m, 0.0, 0.0, o)) { /* stop; if that fails too, the driver stops when its grant ends */
            m->sent_rate = 0.0;
            m->sent_until = now;
        }
    }
    int latched = m->armed ? m->alarms[kind].active : (m->early_faults & BIT(kind)) != 0;
    if (latched) return; /* already latched and audited */
    if (!m->armed) m->early_faults |= BIT(kind);
    else {
        sm_output scratch; /* the partition does not use this decision */
        reset_out(&scratch);
        safety_device_fault(m, kind, now, &scratch);
    }
}

static int drive(sm_monitor *m, double rate, int force, double now, sm_output *o) { /* drive */
    if (rate <= 0 && m->sent_rate == 0.0 && !force) return 1;
    double lease = rate > 0 ? m->cfg.lease_s : 0.0;
    if (!motor_write(m, rate, lease, o)) {
        device_failed(m, SM_A_MOTOR_FAULT, 1, now, o);
        return 0;
    }
    m->sent_rate = rate;
    m->sent_until = now + lease;
    return 1;
}

static void apply(sm_monitor *m, double now, sm_output *o) { /* apply: the decision is in o */
    if (!drive(m, o->rate_ml_h, 0, now, o) && m->armed) {
        /* the motor did not take the grant: the fault latches (out keeps the step's decision; the alarm
         * state the caller reports is the latched fault) */
        sm_output scratch;
        reset_out(&scratch);
        safety_device_fault(m, SM_A_MOTOR_FAULT, now, &scratch);
    }
}

static const sm_sensors *current_sensors(const sm_monitor *m, const sm_input *in) {
    return (m->has_sensors && in->sensors_fresh) ? &m->sensors : 0;
}

static int hazard(const sm_monitor *m, const sm_sensors *s) { /* a stop hazard the monitor has not raised yet */
    uint32_t kinds;
    if (sensor_problems(s)) {
        kinds = BIT(SM_A_SENSOR_FAULT);
    } else {
        kinds = sensor_conditions(s) & (BIT(SM_A_OCCLUSION) | BIT(SM_A_RESERVOIR_EMPTY) | BIT(SM_A_DOOR_OPEN));
        if (s->largest_bubble_ul >= SM_AIR_SINGLE_BUBBLE_UL) kinds |= BIT(SM_A_AIR_IN_LINE);
    }
    for (int k = 0; k < SM_N_ALARMS; k++)
        if ((kinds & BIT(k)) && !m->alarms[k].active) return 1;
    return 0;
}

static void on_program(sm_monitor *m, const sm_program_msg *msg, double now, sm_output *o);

static void ensure_monitor(sm_monitor *m, const sm_input *in, sm_output *o) { /* ensure_monitor */
    if (m->armed || !m->pc_seen) return;
    double now = in->now;
    safety_init(m, now);
    m->armed = 1;
    m->last_pc = m->last_hb = now;
    uint32_t early = m->early_faults;
    for (int k = 0; k < SM_N_ALARMS; k++) /* a device that failed before: still latched */
        if (early & BIT(k)) {
            sm_output scratch;
            reset_out(&scratch);
            safety_device_fault(m, k, now, &scratch);
        }
    m->early_faults = 0;
    if (m->latched_state != latched_fault(m)) {
        safety_step(m, now, 0, current_sensors(m, in), o);
        apply(m, now, o);
        m->latched_state = latched_fault(m);
    }
    if (m->has_waiting) {
        m->has_waiting = 0;
        on_program(m, &m->waiting, now, o);
    }
}

static void on_program(sm_monitor *m, const sm_program_msg *msg, double now, sm_output *o) { /* on_program */
    if (!m->armed) { /* pump_control has not spoken yet: checked once the monitor is armed */
        m->waiting = *msg;
        m->has_waiting = 1;
        o->program_result = SM_PR_HELD;
        return;
    }
    o->n_issues = 0;
    o->program_error = 0;
    if (!msg->drug[0]) {
        clear_program(m, now);
        o->program_result = SM_PR_CLEARED;
        return;
    }
    m->has_soft_waiting = 0;
    const char *area = msg->care_area[0] ? msg->care_area : m->cfg.care_area;
    /* only a clinician's approval from auth, of exactly this prescription, in this monitor's care area */
    int approval = sm_streq(area, m->cfg.care_area) ? approvals_find(m, msg, now) : -1;
    sm_prescription rx;
    sm_strcpy(rx.drug, msg->drug, sizeof rx.drug);
    sm_strcpy(rx.care_area, area, sizeof rx.care_area);
    rx.concentration = msg->concentration;
    rx.dose_rate = msg->dose_rate;
    rx.vtbi_ml = msg->vtbi_ml;
    rx.weight_kg = msg->weight_kg;
    for (int i = 0; i < 6; i++) rx.pca[i] = msg->pca[i];
    int drug, area_i;
    int32_t has_pca = 0;
    sm_pca_request pca;
    int err = sm_program_request_check(m->lib, &rx, &drug, &area_i, &pca, &has_pca);
    if (err) {
        o->program_result = SM_PR_ERROR;
        o->program_error = err;
        return;
    }
    sm_program prog;
    int built = sm_evaluate(m->lib, drug, area_i, msg->concentration, msg->dose_rate, msg->vtbi_ml, msg->weight_kg,
                            has_pca, &pca, &prog, o->issues, &o->n_issues);
    int blocking = !built, soft = 0;
    uint32_t soft_fields = 0;
    for (int i = 0; i < o->n_issues; i++) {
        if (o->issues[i].severity == SM_SEV_SOFT) {
            soft = 1;
            soft_fields |= BIT(o->issues[i].field);
        } else {
            blocking = 1;
        }
    }
    if (blocking) { /* validate_program: REJECTED */
        o->program_result = SM_PR_REJECTED;
        clear_program(m, now);
        return;
    }
    if (soft && approval < 0) { /* NEEDS_CONFIRMATION: pump_control's word is not a clinician's decision */
        m->soft_waiting = *msg;
        m->has_soft_waiting = 1;
        m->soft_waiting_at = now;
        o->program_result = SM_PR_NEEDS_APPROVAL;
        clear_program(m, now);
        return;
    }
    if (soft) { /* _with_overrides */
        prog.override_fields = soft_fields;
        prog.has_override_reason = 1;
    }
    /* SafetyMonitor.accept_program: its own re-check (evaluate is a pure function of the same values) */
    if (!time_ok(m, now)) {
        o->program_result = SM_PR_MONITOR_REFUSED;
        o->issues[0].field = SM_F_TIME;
        o->issues[0].severity = SM_SEV_INVALID;
        o->issues[0].detail = SM_D_CLOCK;
        o->n_issues = 1;
        return;
    }
    m->now = now;
    uint32_t confirmed = prog.has_override_reason ? prog.override_fields : 0;
    if (soft_fields & ~confirmed) {
        o->program_result = SM_PR_MONITOR_REFUSED;
        return;
    }
    /* the titration limit, from the monitor's own history of accepted rates */
    int raised = sm_titration_check(m->lib, &m->rates, &prog, m->now);
    if (!raised && sm_rate_history_record(m->lib, &m->rates, m->now, prog.drug, prog.rate) < 0)
        raised = SM_D_HISTORY_FULL;
    if (raised) {
        o->program_result = SM_PR_MONITOR_REFUSED;
        o->issues[0].field = SM_F_RATE;
        o->issues[0].severity = SM_SEV_HARD;
        o->issues[0].detail = raised;
        o->n_issues = 1;
        return;
    }
    catch_up(m, m->now);
    m->program = prog;
    m->program.override_fields = 0; /* the monitor keeps its rebuilt copy */
    m->program.has_override_reason = 0;
    m->has_program = 1;
    m->delivered_ml = 0.0;
    m->has_lease = 0;
    pca_end_bolus(m);
    m->pca.program_boluses = 0; /* PcaTracker.new_prescription */
    o->program_rate_ml_h = prog.rate_ml_h;
    if (approval >= 0 && soft) {
        approvals_consume(m, approval); /* one approval, one program */
        o->program_result = SM_PR_ACCEPTED_OVERRIDE;
    } else {
        o->program_result = SM_PR_ACCEPTED;
    }
}

static void finish(sm_monitor *m, sm_output *o) {
    o->action = m->armed ? alarms_action(m) : SM_ACT_NONE;
    o->latched = m->armed ? latched_fault(m) : 0;
    o->alarms = o->alarms_present = 0;
    if (m->armed)
        for (int k = 0; k < SM_N_ALARMS; k++)
            if (m->alarms[k].active) {
                o->alarms |= BIT(k);
                if (m->alarms[k].present) o->alarms_present |= BIT(k);
            }
    o->top_alarm = m->armed ? top_alarm(m) : -1;
    o->delivered_ml = m->delivered_ml;
    o->allowed_total_ml = m->allowed_total_ml;
}

unsigned long sm_monitor_sizeof(void) { return sizeof(sm_monitor); }

void sm_monitor_init(sm_monitor *m, const sm_library *lib, const sm_config *cfg, double now, sm_output *out) {
    char *p = (char *)m;
    for (unsigned long i = 0; i < sizeof *m; i++) p[i] = 0;
    m->lib = lib;
    m->cfg = *cfg;
    m->armed = 0;
    m->now = now;
    m->last_pc = m->last_hb = now;
    m->sent_rate = -1.0;
    m->motor_ok = 1;
    reset_out(out);
    drive(m, 0.0, 1, now, out); /* whatever the motor did before this monitor started, it stops now */
    finish(m, out);
}

static void terminate(char *s, int cap) { s[cap - 1] = 0; }

void sm_monitor_step(sm_monitor *m, const sm_input *untrusted, sm_output *o) {
    /* a partition's message is hostile until checked: work on a copy whose strings are terminated */
    m->input = *untrusted;
    sm_input *in = &m->input;
    terminate(in->program.drug, sizeof in->program.drug);
    terminate(in->program.care_area, sizeof in->program.care_area);
    terminate(in->approval.principal, sizeof in->approval.principal);
    terminate(in->approval.role, sizeof in->approval.role);
    terminate(in->approval.reason, sizeof in->approval.reason);
    terminate(in->approval.drug, sizeof in->approval.drug);
    reset_out(o);
    double now = in->now;
    switch (in->kind) {
    case SM_EV_HEARTBEAT: /* on_heartbeat */
        m->last_hb = now;
        if (!m->pc_seen) {
            m->pc_seen = 1;
            ensure_monitor(m, in, o);
        }
        break;
    case SM_EV_MOTOR_CMD: { /* on_motor_cmd */
        if (!m->armed || !m->sensors_seen) { /* nothing runs before the first heartbeat and sensor frame */
            drive(m, 0.0, 0, now, o);
            break;
        }
        int hb_ok = now - m->last_hb <= m->cfg.silent_after_s;
        sm_cmd c;
        if (hb_ok) {
            c.seq = in->seq;
            c.rate_ml_h = in->rate_ml_h;
            c.bolus = in->bolus != 0;
            c.running = in->rate_ml_h > 0 || in->bolus;
            m->last_pc = now;
        }
        safety_step(m, now, hb_ok ? &c : 0, current_sensors(m, in), o);
        apply(m, now, o);
        m->latched_state = latched_fault(m);
        break;
    }
    case SM_EV_SENSORS: /* on_sensors */
        m->sensors = in->sensors;
        m->sensors.door_open = in->sensors.door_open != 0;
        m->has_sensors = 1;
        m->sensors_seen = 1;
        if (m->armed && hazard(m, &m->sensors)) {
            safety_step(m, now, 0, &m->sensors, o);
            apply(m, now, o);
            m->latched_state = latched_fault(m);
        }
        break;
    case SM_EV_SENSOR_LINK_EOF:
        m->has_sensors = 0;
        device_failed(m, SM_A_SENSOR_LINK_FAULT, 0, now, o);
        if (m->armed) {
            safety_step(m, now, 0, 0, o);
            apply(m, now, o);
            m->latched_state = latched_fault(m);
        }
        break;
    case SM_EV_TICK: { /* tick */
        if (!m->armed || !m->sensors_seen) {
            drive(m, 0.0, 0, now, o);
            break;
        }
        const sm_sensors *s = current_sensors(m, in);
        int silent = now - m->last_pc > m->cfg.silent_after_s || now - m->last_hb > m->cfg.silent_after_s;
        int overdue = m->sent_rate > 0 && now - m->last_pc > m->cfg.lease_s;
        if (silent || overdue || !s || hazard(m, s)) {
            /* no command this period: stop, and latch once the controller has been silent long enough */
            safety_step(m, now, 0, s, o);
            apply(m, now, o);
            m->latched_state = latched_fault(m);
        }
        break;
    }
    case SM_EV_PROGRAM:
        on_program(m, &in->program, now, o);
        break;
    case SM_EV_APPROVAL: { /* on_approval */
        int err = approvals_add(m, &in->approval, now);
        if (err) {
            o->approval_result = SM_AP_REFUSED;
            o->approval_error = err;
            break;
        }
        o->approval_result = SM_AP_HELD;
        if (m->has_soft_waiting && now - m->soft_waiting_at <= m->cfg.approval_ttl_s) {
            double v[SM_RX_VALUES], w[SM_RX_VALUES];
            program_values(&m->soft_waiting, w);
            approval_msg_values(&in->approval, v);
            if (rx_matches(in->approval.drug, v, m->soft_waiting.drug, w)) {
                sm_program_msg waiting = m->soft_waiting; /* the program came first: it runs now */
                on_program(m, &waiting, now, o);
            }
        }
        break;
    }
    case SM_EV_FAULT_RESET: { /* on_fault_reset */
        if (!m->armed) break;
        sm_output scratch; /* see the line as it is now (only gone conditions clear); not applied */
        reset_out(&scratch);
        safety_step(m, now, 0, current_sensors(m, in), &scratch);
        clinician_restart(m, now);
        clear_alarms(m, now);
        m->last_pc = m->last_hb = now;
        m->latched_state = latched_fault(m);
        break;
    }
    case SM_EV_MOTOR_BROKEN:
        m->motor_ok = 0;
        break;
    case SM_EV_MOTOR_REPAIRED:
        m->motor_ok = 1;
        break;
    default:
        break;
    }
    finish(m, o);
}
