/* Therapy rules shared by the C cores (see therapy_core.h). Each function names the Python it mirrors;
 * keep the order of floating-point operations identical to it. */
#include "therapy_core.h"

/* A freestanding build may still get memcpy/memset calls from the compiler for struct copies; provide weak
 * ones for a PD whose runtime has none. */
#if !__STDC_HOSTED__
__attribute__((weak)) void *memcpy(void *dst, const void *src, unsigned long n) {
    char *d = dst;
    const char *s = src;
    while (n--) *d++ = *s++;
    return dst;
}
__attribute__((weak)) void *memset(void *dst, int c, unsigned long n) {
    char *d = dst;
    while (n--) *d++ = (char)c;
    return dst;
}
#endif

/* ------------------------------------------------------------------------------------------ numbers */
double sm_inf(void) { return __builtin_inf(); }
/* NaN != NaN, and inf - inf is NaN: no libm needed */
int sm_isfinite(double x) { return x == x && (x - x) == 0.0; }
double sm_pymax(double a, double b) { return b > a ? b : a; }
double sm_pymin(double a, double b) { return b < a ? b : a; }
static double sm_fabs(double x) { return x < 0 ? -x : x; }

int sm_isclose(double a, double b, double rel_tol) {
    /* CPython math.isclose with abs_tol = 0 */
    if (a == b) return 1;
    if (!sm_isfinite(a) || !sm_isfinite(b)) return 0; /* inf only equals itself; NaN nothing */
    double diff = sm_fabs(b - a);
    return diff <= sm_fabs(rel_tol * b) || diff <= sm_fabs(rel_tol * a);
}

/* ------------------------------------------------------------------------------------------ strings */
int sm_streq(const char *a, const char *b) {
    while (*a && *a == *b) { a++; b++; }
    return *a == *b;
}
int sm_strlen(const char *s, int max) {
    int n = 0;
    while (n < max && s[n]) n++;
    return n;
}
void sm_strcpy(char *dst, const char *src, int cap) {
    int i = 0;
    for (; i < cap - 1 && src[i]; i++) dst[i] = src[i];
    dst[i] = 0;
}

/* ------------------------------------------------------------------------------------------ limits.py */
static double tol(double bound) { return 1e-9 * sm_pymax(1.0, sm_fabs(bound)); } /* _tol */

int sm_limits_check(const sm_limits *l, double value) { /* Limits.check */
    if (l->has[SM_HARD_MIN] && value < l->v[SM_HARD_MIN] - tol(l->v[SM_HARD_MIN])) return SM_HARD_LOW;
    if (l->has[SM_HARD_MAX] && value > l->v[SM_HARD_MAX] + tol(l->v[SM_HARD_MAX])) return SM_HARD_HIGH;
    if (l->has[SM_SOFT_MIN] && value < l->v[SM_SOFT_MIN] - tol(l->v[SM_SOFT_MIN])) return SM_SOFT_LOW;
    if (l->has[SM_SOFT_MAX] && value > l->v[SM_SOFT_MAX] + tol(l->v[SM_SOFT_MAX])) return SM_SOFT_HIGH;
    return SM_WITHIN;
}

static void pick(sm_limits *out, int i, const sm_limits *a, const sm_limits *b, int want_max) { /* _pick */
    out->has[i] = a->has[i] || b->has[i];
    if (!a->has[i]) out->v[i] = b->v[i];
    else if (!b->has[i]) out->v[i] = a->v[i];
    else out->v[i] = want_max ? sm_pymax(a->v[i], b->v[i]) : sm_pymin(a->v[i], b->v[i]);
    if (!out->has[i]) out->v[i] = 0.0;
}

sm_limits sm_most_restrictive(const sm_limits *a, const sm_limits *b) { /* Limits.most_restrictive */
    sm_limits r;
    /* the larger minimum and the smaller maximum win */
    pick(&r, SM_HARD_MIN, a, b, 1);
    pick(&r, SM_HARD_MAX, a, b, 0);
    pick(&r, SM_SOFT_MIN, a, b, 1);
    pick(&r, SM_SOFT_MAX, a, b, 0);
    /* soft bounds pulled inside the hard range */
    if (r.has[SM_SOFT_MIN] && r.has[SM_HARD_MIN]) r.v[SM_SOFT_MIN] = sm_pymax(r.v[SM_SOFT_MIN], r.v[SM_HARD_MIN]);
    if (r.has[SM_SOFT_MIN] && r.has[SM_HARD_MAX]) r.v[SM_SOFT_MIN] = sm_pymin(r.v[SM_SOFT_MIN], r.v[SM_HARD_MAX]);
    if (r.has[SM_SOFT_MAX] && r.has[SM_HARD_MAX]) r.v[SM_SOFT_MAX] = sm_pymin(r.v[SM_SOFT_MAX], r.v[SM_HARD_MAX]);
    if (r.has[SM_SOFT_MAX] && r.has[SM_HARD_MIN]) r.v[SM_SOFT_MAX] = sm_pymax(r.v[SM_SOFT_MAX], r.v[SM_HARD_MIN]);
    return r;
}

int sm_within(double value, double ceiling) { return value <= ceiling + tol(ceiling); }

/* ------------------------------------------------------------------------------------------ units.py */
static const double amount_to_canonical[5] = {1000.0, 1.0, 0.001, 1.0, 1.0}; /* g mg mcg units mL */
static const int8_t amount_dimension[5] = {SM_DIM_MASS, SM_DIM_MASS, SM_DIM_MASS, SM_DIM_ACTIVITY, SM_DIM_VOLUME};
static const int8_t dose_amount_unit[6] = {SM_AU_ML, SM_AU_MG, SM_AU_MCG, SM_AU_UNITS, SM_AU_MCG, SM_AU_UNITS};
static const int8_t dose_per_kg[6] = {0, 0, 0, 0, 1, 1};
static const double dose_seconds_per_time_unit[6] = {3600.0, 3600.0, 3600.0, 3600.0, 60.0, 3600.0};

/* ------------------------------------------------------------------------------------------ drug_library.py */
int sm_find_drug(const sm_library *lib, const char *id) {
    for (int i = 0; i < lib->n_drugs; i++)
        if (sm_streq(lib->drugs[i].id, id)) return i;
    return -1;
}
int sm_find_area(const sm_library *lib, const char *id) {
    for (int i = 0; i < lib->n_areas; i++)
        if (sm_streq(lib->areas[i].id, id)) return i;
    return -1;
}

int sm_entry_for(const sm_library *lib, int drug, int area, sm_entry *e) { /* DrugLibrary.entry + _combine */
    if (area < 0) return SM_E_AREA_UNKNOWN;
    const sm_drug *d = &lib->drugs[drug];
    const sm_care_area *a = &lib->areas[area];
    const sm_drug_rules *local = 0;
    for (int i = 0; i < d->n_local; i++)
        if (d->local[i].area == area) local = &d->local[i].rules;
    if (!local) return SM_E_DRUG_NOT_IN_AREA;
    const sm_drug_rules *general = &d->general;
    e->drug = d;
    e->drug_index = drug;
    e->area_index = area;
    e->bolus = sm_most_restrictive(&general->bolus, &local->bolus);
    e->has_pca = local->has_pca;
    if (local->has_pca) {
        e->pca = local->pca;
        /* a PCA demand dose is a bolus: the bolus limits apply to it as well */
        e->pca.demand_dose = sm_most_restrictive(&local->pca.demand_dose, &e->bolus);
        e->pca.bolus_rate_ml_h = sm_pymin(sm_pymin(local->pca.bolus_rate_ml_h, a->max_rate_ml_h),
                                          lib->device_max_rate_ml_h);
    }
    e->kvo_rate_ml_h = local->has_kvo ? local->kvo_rate_ml_h : lib->kvo_rate_ml_h;
    e->rate = sm_most_restrictive(&general->rate, &local->rate);
    e->dose = sm_most_restrictive(&general->dose, &local->dose);
    sm_limits w = sm_most_restrictive(&a->weight_kg, &general->weight_kg);
    e->weight_kg = sm_most_restrictive(&w, &local->weight_kg);
    e->max_rate_ml_h = sm_pymin(a->max_rate_ml_h, lib->device_max_rate_ml_h);
    /* the drug's rule in this care area, else the drug-wide one, else half the hard maximum per hour */
    const sm_drug_rules *tr = local->has_titration ? local : (general->has_titration ? general : 0);
    e->has_titration = 0;
    if (tr) {
        e->has_titration = 1;
        e->titration_max_increase = tr->titration_max_increase;
        e->titration_period_s = tr->titration_period_s;
    } else if (e->rate.has[SM_HARD_MAX]) {
        e->has_titration = 1;
        e->titration_max_increase = 0.5 * e->rate.v[SM_HARD_MAX];
        e->titration_period_s = 3600.0;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ therapy_io.py */
static int standard(const sm_limits *l, int prefer_high, double *out) { /* _standard */
    static const int high[4] = {SM_SOFT_MAX, SM_HARD_MAX, SM_SOFT_MIN, SM_HARD_MIN};
    static const int low[4] = {SM_SOFT_MIN, SM_HARD_MIN, SM_SOFT_MAX, SM_HARD_MAX};
    const int *order = prefer_high ? high : low;
    for (int i = 0; i < 4; i++)
        if (l->has[order[i]]) { *out = l->v[order[i]]; return 0; }
    return SM_E_PCA_NO_BOUND;
}

int sm_program_request_check(const sm_library *lib, const sm_prescription *rx, int *drug, int *area,
                             sm_pca_request *pca, int32_t *has_pca) { /* program_request + standard_pca */
    int d = sm_find_drug(lib, rx->drug);
    if (d < 0) return SM_E_DRUG_UNKNOWN;
    int unit = lib->drugs[d].n_concentrations ? lib->drugs[d].concentrations[0].unit
                                              : dose_amount_unit[lib->drugs[d].dose_unit];
    if (!(rx->concentration > 0)) return SM_E_CONC_NOT_POSITIVE;
    /* Concentration(concentration, unit, 1.0).__post_init__ */
    if (!sm_isfinite(rx->concentration)) return SM_E_CONC_NOT_FINITE;
    if (unit == SM_AU_ML && !sm_isclose(rx->concentration, 1.0, 1e-6)) return SM_E_PLAIN_FLUID;
    /* standard_pca: library.entry */
    if (sm_strlen(rx->care_area, SM_ID_MAX + 1) > SM_ID_MAX) return SM_E_AREA_UNKNOWN;
    int a = sm_find_area(lib, rx->care_area);
    sm_entry e;
    int err = sm_entry_for(lib, d, a, &e);
    if (err) return err;
    *drug = d;
    *area = a;
    int prescribed = 0;
    for (int i = 0; i < 6; i++)
        if (rx->pca[i] != 0) prescribed = 1; /* any() */
    if (prescribed) { /* therapy_io.prescribed_pca: the clinician's PCA prescription */
        if (!e.has_pca) return SM_E_PCA_NOT_SET_UP;
        for (int i = 0; i < 5; i++)
            if (!(rx->pca[i] > 0)) return SM_E_PCA_INCOMPLETE; /* a forgotten field is not a default */
        double per_hour = rx->pca[2], count_in = rx->pca[5];
        if (!(per_hour < 2147483647.0) || !(count_in < 2147483647.0)) return SM_E_PCA_WHOLE;
        if (per_hour != (double)(int32_t)per_hour || count_in != (double)(int32_t)count_in) return SM_E_PCA_WHOLE;
        *has_pca = 1;
        pca->demand_dose = rx->pca[0];
        pca->lockout_min = rx->pca[1];
        pca->max_boluses_per_hour = (int32_t)per_hour;
        pca->limit_1h = rx->pca[3];
        pca->limit_4h = rx->pca[4];
        pca->has_boluses_per_program = 0;
        pca->boluses_per_program = 0;
        if (count_in != 0) {
            pca->has_boluses_per_program = 1;
            pca->boluses_per_program = (int32_t)count_in;
        } else if (e.pca.has_boluses_per_program) { /* the library's standard count */
            double count;
            if ((err = standard(&e.pca.boluses_per_program, 1, &count))) return err;
            pca->has_boluses_per_program = 1;
            pca->boluses_per_program = (int32_t)count;
        }
        return 0;
    }
    *has_pca = e.has_pca;
    if (e.has_pca) {
        double count;
        if ((err = standard(&e.pca.demand_dose, 0, &pca->demand_dose))) return err;
        if ((err = standard(&e.pca.lockout_min, 0, &pca->lockout_min))) return err;
        if ((err = standard(&e.pca.max_boluses_per_hour, 1, &count))) return err;
        pca->max_boluses_per_hour = (int32_t)count; /* int() truncates, as the cast does */
        if ((err = standard(&e.pca.limit_1h, 1, &pca->limit_1h))) return err;
        if ((err = standard(&e.pca.limit_4h, 1, &pca->limit_4h))) return err;
        pca->has_boluses_per_program = e.pca.has_boluses_per_program;
        pca->boluses_per_program = 0;
        if (e.pca.has_boluses_per_program) { /* _standard_count */
            if ((err = standard(&e.pca.boluses_per_program, 1, &count))) return err;
            pca->boluses_per_program = (int32_t)count;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ program.py */
static void add_issue(sm_issue *issues, int32_t *n, int field, int severity, int detail) {
    if (*n >= SM_MAX_ISSUES) return;
    issues[*n].field = field;
    issues[*n].severity = severity;
    issues[*n].detail = detail;
    issues[*n].pad = 0;
    (*n)++;
}

static void check(sm_issue *issues, int32_t *n, int field, double value, const sm_limits *l) { /* _check */
    int outcome = sm_limits_check(l, value);
    if (outcome == SM_WITHIN) return;
    int hard = outcome == SM_HARD_LOW || outcome == SM_HARD_HIGH;
    add_issue(issues, n, field, hard ? SM_SEV_HARD : SM_SEV_SOFT, outcome);
}

static int concentration_allowed(const sm_drug *d, int unit, double cpm) { /* DrugEntry.concentration_allowed */
    for (int i = 0; i < d->n_concentrations; i++) {
        const sm_concentration *c = &d->concentrations[i];
        if (amount_dimension[c->unit] == amount_dimension[unit] && sm_isclose(c->canonical_per_ml, cpm, 1e-6))
            return 1;
    }
    return 0;
}

static int evaluate_body(const sm_library *lib, int drug, int area, double concentration, double rate,
                         double vtbi, double weight_in, int32_t has_pca_req, const sm_pca_request *pr,
                         sm_program *p, sm_issue *issues, int32_t *n) { /* _evaluate; returns an sm_error */
    sm_entry e;
    int err = sm_entry_for(lib, drug, area, &e);
    if (err) return err;
    const sm_drug *d = e.drug;
    int unit = d->n_concentrations ? d->concentrations[0].unit : dose_amount_unit[d->dose_unit];
    double cpm = concentration * amount_to_canonical[unit] / 1.0;
    if (!concentration_allowed(d, unit, cpm)) return SM_E_CONC_MISMATCH;
    int amount_unit = dose_amount_unit[d->dose_unit];

    int has_weight = weight_in > 0; /* program_request: weight_kg if weight_kg > 0 else None */
    double weight = weight_in;
    if (has_weight) {
        if (!sm_isfinite(weight)) return SM_E_WEIGHT_NOT_FINITE;
        check(issues, n, SM_F_WEIGHT, weight, &e.weight_kg);
    } else if (dose_per_kg[d->dose_unit]) {
        return SM_E_WEIGHT_REQUIRED;
    }

    if (!sm_isfinite(rate)) return SM_E_RATE_NOT_FINITE;
    if (rate < 0) return SM_E_RATE_NEGATIVE;
    if (rate == 0 && !has_pca_req) return SM_E_RATE_ZERO;
    check(issues, n, SM_F_RATE, rate, &e.rate);
    /* dose_rate_to_ml_h */
    double wf = dose_per_kg[d->dose_unit] ? weight : 1.0;
    double per_time_unit = rate * amount_to_canonical[amount_unit] * wf;
    double per_hour = per_time_unit * (SM_SECONDS_PER_HOUR / dose_seconds_per_time_unit[d->dose_unit]);
    double rate_ml_h = per_hour / cpm;
    if (!sm_within(rate_ml_h, e.max_rate_ml_h)) add_issue(issues, n, SM_F_RATE, SM_SEV_HARD, SM_D_PUMP_MAX);

    if (!sm_isfinite(vtbi)) return SM_E_VTBI_NOT_FINITE;
    if (vtbi <= 0 || vtbi > 9999.0) return SM_E_VTBI_RANGE;
    /* ml_to_amount */
    double dose_amount = vtbi * cpm / amount_to_canonical[amount_unit];
    check(issues, n, SM_F_DOSE, dose_amount, &e.dose);

    p->has_pca = 0;
    if (has_pca_req) { /* _evaluate_pca */
        if (!(dose_seconds_per_time_unit[d->dose_unit] == SM_SECONDS_PER_HOUR && !dose_per_kg[d->dose_unit]))
            return SM_E_PCA_UNIT;
        double demand = pr->demand_dose, lockout = pr->lockout_min, l1 = pr->limit_1h, l4 = pr->limit_4h;
        int32_t count = pr->max_boluses_per_hour;
        if (!sm_isfinite(demand) || !sm_isfinite(lockout) || !sm_isfinite(l1) || !sm_isfinite(l4))
            return SM_E_PCA_VALUES;
        if (demand <= 0 || lockout <= 0 || count < 1 || l1 <= 0 || l4 <= 0) return SM_E_PCA_VALUES;
        check(issues, n, SM_F_PCA_DEMAND, demand, &e.pca.demand_dose);
        check(issues, n, SM_F_PCA_LOCKOUT, lockout, &e.pca.lockout_min);
        check(issues, n, SM_F_PCA_COUNT, (double)count, &e.pca.max_boluses_per_hour);
        check(issues, n, SM_F_PCA_1H, l1, &e.pca.limit_1h);
        check(issues, n, SM_F_PCA_4H, l4, &e.pca.limit_4h);
        if (pr->has_boluses_per_program) {
            if (pr->boluses_per_program < 1) return SM_E_PCA_COUNT;
            if (e.pca.has_boluses_per_program)
                check(issues, n, SM_F_PCA_PER_PROGRAM, (double)pr->boluses_per_program, &e.pca.boluses_per_program);
        }
        if (!sm_within(demand, l1)) add_issue(issues, n, SM_F_PCA_DEMAND, SM_SEV_HARD, SM_D_DEMAND_OVER_1H);
        if (!sm_within(l1, l4)) add_issue(issues, n, SM_F_PCA_1H, SM_SEV_HARD, SM_D_1H_OVER_4H);
        if (!sm_within(rate * 1.0, l1) || !sm_within(rate * 4.0, l4))
            add_issue(issues, n, SM_F_RATE, SM_SEV_HARD, SM_D_BASAL_OVER_WINDOW);
        double tc = amount_to_canonical[amount_unit];
        p->has_pca = 1;
        p->pca_request = *pr;
        p->pca.demand_dose = demand;
        p->pca.demand_ml = demand * tc / cpm;
        p->pca.lockout_s = lockout * 60.0;
        p->pca.max_boluses_per_hour = count;
        p->pca.limit_1h = l1;
        p->pca.limit_4h = l4;
        p->pca.limit_1h_canonical = l1 * tc;
        p->pca.limit_4h_canonical = l4 * tc;
        p->pca.bolus_rate_ml_h = e.pca.bolus_rate_ml_h;
        p->pca.has_boluses_per_program = pr->has_boluses_per_program;
        p->pca.boluses_per_program = pr->boluses_per_program;
    }
    p->has_dose_hard_max = e.dose.has[SM_HARD_MAX];
    p->dose_hard_max_ml = 0.0;
    if (p->has_dose_hard_max)
        p->dose_hard_max_ml = e.dose.v[SM_HARD_MAX] * amount_to_canonical[amount_unit] / cpm;
    p->drug = drug;
    p->area = area;
    p->dose_unit = d->dose_unit;
    p->amount_unit = amount_unit;
    p->concentration = concentration;
    p->canonical_per_ml = cpm;
    p->rate = rate;
    p->rate_ml_h = rate_ml_h;
    p->vtbi_ml = vtbi;
    p->dose_amount = dose_amount;
    p->has_weight = has_weight;
    p->weight_kg = has_weight ? weight : 0.0;
    p->kvo_rate_ml_h = sm_pymin(e.kvo_rate_ml_h, e.max_rate_ml_h);
    p->max_rate_ml_h = e.max_rate_ml_h;
    p->has_titration = e.has_titration;
    p->titration_max_increase = e.titration_max_increase;
    p->titration_period_s = e.titration_period_s;
    p->override_fields = 0;
    p->has_override_reason = 0;
    return SM_E_NONE;
}

int sm_evaluate(const sm_library *lib, int drug, int area, double concentration, double rate, double vtbi_ml,
                double weight_kg, int32_t has_pca, const sm_pca_request *pca, sm_program *prog, sm_issue *issues,
                int32_t *n_issues) { /* evaluate */
    *n_issues = 0;
    int err = evaluate_body(lib, drug, area, concentration, rate, vtbi_ml, weight_kg, has_pca, pca, prog, issues,
                            n_issues);
    if (err) {
        add_issue(issues, n_issues, SM_F_REQUEST, SM_SEV_INVALID, err);
        return 0;
    }
    return 1;
}

/* ---------------------------------------- ledger.py (controller), monitor_ledger.py (monitor): same arithmetic */
#define KEEP_S (4 * 3600.0 + 60.0)

void sm_ledger_init(sm_ledger *l) {
    l->head = 0;
    l->n = 0;
    l->has_last_end = 0;
    l->last_end = 0.0;
    l->folded = 0;
}

static sm_segment *seg_at(sm_ledger *l, int i) { return &l->seg[(l->head + i) % SM_LEDGER_CAP]; }
static const sm_segment *cseg_at(const sm_ledger *l, int i) { return &l->seg[(l->head + i) % SM_LEDGER_CAP]; }

/* The ring is full (Python's list has no bound): fold an old segment into a later one of the same drug,
 * moving its amount later in time. A trailing window then counts at least as much as before, so the dose
 * windows stay conservative. It never happens in the differential traces (they stay far below the cap). */
static void fold_oldest(sm_ledger *l) {
    for (int i = 0; i < l->n; i++) {
        sm_segment *old = seg_at(l, i);
        for (int j = i + 1; j < l->n; j++) {
            sm_segment *s = seg_at(l, j);
            if (s->drug != old->drug || !(s->end > s->start)) continue;
            double amount = old->rate_ml_h * (old->end - old->start) / SM_SECONDS_PER_HOUR * old->canonical_per_ml;
            s->rate_ml_h += amount / s->canonical_per_ml * SM_SECONDS_PER_HOUR / (s->end - s->start);
            for (int k = i; k > 0; k--) *seg_at(l, k) = *seg_at(l, k - 1); /* close the gap at i */
            l->head = (l->head + 1) % SM_LEDGER_CAP;
            l->n--;
            l->folded++;
            return;
        }
    }
    l->head = (l->head + 1) % SM_LEDGER_CAP; /* only with more drugs than slots: drop the oldest */
    l->n--;
    l->folded++;
}

int sm_ledger_record(sm_ledger *l, int drug, double start, double end, double rate, double cpm, int bolus) {
    if (!sm_isfinite(start) || !sm_isfinite(end) || !sm_isfinite(rate)) return -1;
    if (end < start || rate < 0) return -1;
    if (l->has_last_end && start < l->last_end - 1e-9) return -1;
    l->has_last_end = 1;
    l->last_end = end;
    if (end == start || rate == 0) return 0;
    sm_segment *last = l->n ? seg_at(l, l->n - 1) : 0;
    if (last && last->end == start && last->drug == drug && last->rate_ml_h == rate &&
        last->canonical_per_ml == cpm && last->bolus == bolus) {
        /* contiguous and identical: extend */
        last->end = end;
    } else {
        if (l->n == SM_LEDGER_CAP) fold_oldest(l);
        sm_segment *s = seg_at(l, l->n);
        s->drug = drug;
        s->bolus = bolus;
        s->start = start;
        s->end = end;
        s->rate_ml_h = rate;
        s->canonical_per_ml = cpm;
        l->n++;
    }
    /* _prune */
    double cutoff = end - KEEP_S;
    while (l->n && seg_at(l, 0)->end < cutoff) {
        l->head = (l->head + 1) % SM_LEDGER_CAP;
        l->n--;
    }
    return 0;
}

double sm_ledger_amount_between(const sm_ledger *l, int drug, double t0, double t1) { /* amount_between */
    double total = 0.0;
    for (int i = 0; i < l->n; i++) {
        const sm_segment *s = cseg_at(l, i);
        if (s->drug != drug) continue;
        double lo = sm_pymax(s->start, t0), hi = sm_pymin(s->end, t1);
        double v = hi <= lo ? 0.0 : s->rate_ml_h * (hi - lo) / SM_SECONDS_PER_HOUR;
        total += v * s->canonical_per_ml;
    }
    return total;
}

/* ------------------------------------------------------------------------------------------ pca.py */
#define ONE_HOUR_S 3600.0
#define FOUR_HOURS_S (4 * 3600.0)

void sm_pca_init(sm_pca *p) {
    p->n_starts = 0;
    p->active = 0;
    p->started = p->target_ml = p->delivered_ml = 0.0;
    p->demands = p->denied = 0;
    p->program_boluses = 0;
}

static int boluses_in_last_hour(const sm_pca *p, double now) {
    int n = 0;
    for (int i = 0; i < p->n_starts; i++)
        if (now - p->starts[i] < ONE_HOUR_S) n++;
    return n;
}

int sm_pca_check(const sm_pca *p, const sm_pca_settings *s, const sm_ledger *l, const sm_program *prog, double now,
                 int32_t has_hold_off, double hold_off_until, double lockout_tolerance_s, int32_t has_reservoir,
                 double reservoir_ml) { /* PcaTracker.check */
    if (p->active) return SM_BD_IN_PROGRESS;
    if (has_hold_off && now < hold_off_until) return SM_BD_HOLD_OFF;
    if (has_reservoir && !(reservoir_ml >= SM_BOLUS_MIN_RESERVOIR_ML)) return SM_BD_RESERVOIR_LOW;
    if (sm_pca_count_exceeded(p, s)) return SM_BD_BOLUS_EXCEEDED;
    if (p->n_starts && now - p->starts[p->n_starts - 1] < s->lockout_s - lockout_tolerance_s) return SM_BD_LOCKOUT;
    if (boluses_in_last_hour(p, now) >= s->max_boluses_per_hour) return SM_BD_MAX_PER_HOUR;
    /* the start list is full (it holds only the last hour's starts): as many as the count allows, refused */
    if (p->n_starts >= SM_MAX_BOLUS_STARTS) return SM_BD_MAX_PER_HOUR;
    double demand = s->demand_ml * prog->canonical_per_ml;
    double used_1h = sm_ledger_amount_between(l, prog->drug, now - ONE_HOUR_S, now);
    if (used_1h + demand > s->limit_1h_canonical * (1 + 1e-9)) return SM_BD_LIMIT_1H;
    double used_4h = sm_ledger_amount_between(l, prog->drug, now - FOUR_HOURS_S, now);
    if (used_4h + demand > s->limit_4h_canonical * (1 + 1e-9)) return SM_BD_LIMIT_4H;
    return SM_BD_NONE;
}

int sm_pca_count_exceeded(const sm_pca *p, const sm_pca_settings *s) { /* PcaTracker.count_exceeded */
    return s->has_boluses_per_program && p->program_boluses >= s->boluses_per_program;
}

void sm_pca_start(sm_pca *p, double now, const sm_pca_settings *s) { /* PcaTracker.start */
    if (p->n_starts < SM_MAX_BOLUS_STARTS) p->starts[p->n_starts++] = now;
    p->program_boluses++;
    int k = 0;
    for (int i = 0; i < p->n_starts; i++)
        if (now - p->starts[i] < ONE_HOUR_S) p->starts[k++] = p->starts[i];
    p->n_starts = k;
    p->active = 1;
    p->started = now;
    p->target_ml = s->demand_ml;
    p->delivered_ml = 0.0;
}

double sm_pca_remaining_ml(const sm_pca *p) { return sm_pymax(0.0, p->target_ml - p->delivered_ml); }

void sm_pca_add_delivered(sm_pca *p, double volume_ml) { /* PcaTracker.add_delivered */
    if (!p->active) return;
    p->delivered_ml += volume_ml;
    if (sm_pca_remaining_ml(p) <= SM_VOLUME_EPS_ML) p->active = 0;
}

double sm_window_headroom_ml(const sm_program *prog, const sm_ledger *l, double now) { /* window_headroom_ml */
    if (!prog->has_pca) return sm_inf();
    double used_1h = sm_ledger_amount_between(l, prog->drug, now - ONE_HOUR_S, now);
    double used_4h = sm_ledger_amount_between(l, prog->drug, now - FOUR_HOURS_S, now);
    double room = sm_pymin(prog->pca.limit_1h_canonical - used_1h, prog->pca.limit_4h_canonical - used_4h);
    return sm_pymax(0.0, room / prog->canonical_per_ml);
}

double sm_kvo_rate_ml_h(const sm_program *prog) { return sm_pymin(prog->kvo_rate_ml_h, prog->rate_ml_h); }

/* ------------------------------------------------------------------------------------------ titration.py */
static int str_cmp(const char *a, const char *b) {
    while (*a && *a == *b) { a++; b++; }
    return (unsigned char)*a - (unsigned char)*b;
}

/* the order Python's sorted() gives the (time, drug id, rate) tuples */
static int entry_less(const sm_library *lib, double t1, int d1, double r1, double t2, int d2, double r2) {
    if (t1 != t2) return t1 < t2;
    int c = str_cmp(lib->drugs[d1].id, lib->drugs[d2].id);
    if (c) return c < 0;
    return r1 < r2;
}

int sm_rate_history_record(const sm_library *lib, sm_rate_history *h, double now, int drug, double rate) {
    /* keep what a window of a day could still need: every entry since the cutoff and the last one per drug
     * before it */
    double cutoff = now - 24 * 3600.0;
    int k = 0;
    for (int i = 0; i < h->n; i++) {
        int keep = !(h->t[i] < cutoff); /* (the new entry, at now, is never old) */
        if (!keep) { /* old: kept only if it is the last old entry of its drug (in list order) */
            keep = 1;
            for (int j = i + 1; j < h->n; j++)
                if (h->drug[j] == h->drug[i] && h->t[j] < cutoff) { keep = 0; break; }
        }
        if (keep) { h->t[k] = h->t[i]; h->rate[k] = h->rate[i]; h->drug[k] = h->drug[i]; k++; }
    }
    h->n = k;
    if (h->n >= SM_RATE_HISTORY_CAP) return -1;
    /* sorted insert */
    int pos = h->n;
    while (pos > 0 && entry_less(lib, now, drug, rate, h->t[pos - 1], h->drug[pos - 1], h->rate[pos - 1])) {
        h->t[pos] = h->t[pos - 1]; h->rate[pos] = h->rate[pos - 1]; h->drug[pos] = h->drug[pos - 1];
        pos--;
    }
    h->t[pos] = now; h->rate[pos] = rate; h->drug[pos] = drug;
    h->n++;
    return 0;
}

int sm_titration_check(const sm_library *lib, const sm_rate_history *h, const sm_program *p, double now) {
    (void)lib;
    if (!p->has_titration) return 0;
    /* RateHistory.lowest: the rate in effect at the window's start and every one set during it */
    double start = now - p->titration_period_s;
    int has_low = 0;
    double low = 0.0;
    int before = -1;
    for (int i = 0; i < h->n; i++)
        if (h->drug[i] == p->drug && h->t[i] <= start) before = i;
    if (before >= 0) { low = h->rate[before]; has_low = 1; }
    for (int i = 0; i < h->n; i++)
        if (h->drug[i] == p->drug && start < h->t[i] && h->t[i] <= now) {
            if (!has_low || h->rate[i] < low) low = h->rate[i];
            has_low = 1;
        }
    if (!has_low) return 0; /* a first program: its limits are the library's */
    double cap = low + p->titration_max_increase;
    if (p->rate <= cap * (1 + 1e-9) + 1e-12) return 0;
    return SM_D_TITRATION;
}

/* ------------------------------------------------------------------------------------------ alarms.py */
const int8_t sm_alarm_action[SM_N_ALARMS] = {
    SM_ACT_STOP, SM_ACT_STOP, SM_ACT_STOP, SM_ACT_STOP, SM_ACT_STOP, SM_ACT_STOP, SM_ACT_STOP,
    SM_ACT_LATCHED_FAULT, SM_ACT_LATCHED_FAULT, SM_ACT_LATCHED_FAULT, SM_ACT_LATCHED_FAULT, SM_ACT_LATCHED_FAULT,
    SM_ACT_ADVISORY, SM_ACT_ADVISORY, SM_ACT_ADVISORY, SM_ACT_ADVISORY, SM_ACT_ADVISORY, SM_ACT_ADVISORY,
    SM_ACT_ADVISORY};
/* reservoir-low is high priority (a nurse must come before the bag runs dry) */
const int8_t sm_alarm_priority[SM_N_ALARMS] = {3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 1, 1, 2, 1};
/* rank of each kind's name ("air-in-line" < "air-in-line-cumulative" < "clock-fault" < ...) */
const int8_t sm_alarm_name_rank[SM_N_ALARMS] = {0, 1, 10, 14, 5, 11, 16, 4, 8, 3, 9, 17, 15, 18, 12, 6, 7, 13, 2};
