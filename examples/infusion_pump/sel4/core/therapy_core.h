/* Therapy rules shared by the C safety monitor and pump_control cores: limits and "most restrictive
 * wins", program evaluation against the drug library, the delivery ledger (sliding dose windows), PCA
 * checks, alarm kinds. Each function mirrors the Python function named in its comment, operation for
 * operation, so that both compute the same IEEE doubles (no fused multiply-add: build with
 * -ffp-contract=off; Python 3.11's sum() adds left to right, as these loops do).
 */
#ifndef SEPTUM_THERAPY_CORE_H
#define SEPTUM_THERAPY_CORE_H

#include <stdint.h>

#include "sm_library.h"

/* ---------------------------------------------------------------------------- numbers (no libm) */
double sm_inf(void);
int sm_isfinite(double x);
double sm_pymax(double a, double b); /* Python max(a, b): a unless b > a */
double sm_pymin(double a, double b); /* Python min(a, b): a unless b < a */
int sm_isclose(double a, double b, double rel_tol); /* math.isclose(a, b, rel_tol=rel_tol, abs_tol=0) */

/* ---------------------------------------------------------------------------- strings (no libc) */
int sm_streq(const char *a, const char *b);
int sm_strlen(const char *s, int max);
void sm_strcpy(char *dst, const char *src, int cap); /* always terminated */

/* ---------------------------------------------------------------------------- limits.py */
enum sm_outcome { SM_WITHIN = 0, SM_SOFT_LOW, SM_SOFT_HIGH, SM_HARD_LOW, SM_HARD_HIGH };
int sm_limits_check(const sm_limits *l, double value);
sm_limits sm_most_restrictive(const sm_limits *a, const sm_limits *b);
int sm_within(double value, double ceiling);

/* ---------------------------------------------------------------------------- drug_library.py DrugEntry */
typedef struct {
    const sm_drug *drug;
    int32_t drug_index, area_index;
    sm_limits rate, dose, bolus, weight_kg;
    double max_rate_ml_h, kvo_rate_ml_h;
    int32_t has_pca;
    sm_pca_rules pca;
    int32_t has_titration;
    double titration_max_increase, titration_period_s;
} sm_entry;
int sm_find_drug(const sm_library *lib, const char *id);
int sm_find_area(const sm_library *lib, const char *id);
/* 0 on success; else an sm_error (unknown area, drug not in area) */
int sm_entry_for(const sm_library *lib, int drug, int area, sm_entry *out);

/* ---------------------------------------------------------------------------- program.py */
/* why a request cannot be interpreted (a TherapyError in Python) */
enum sm_error {
    SM_E_NONE = 0,
    SM_E_DRUG_UNKNOWN,
    SM_E_CONC_NOT_POSITIVE,
    SM_E_CONC_NOT_FINITE,
    SM_E_PLAIN_FLUID,
    SM_E_AREA_UNKNOWN,
    SM_E_DRUG_NOT_IN_AREA,
    SM_E_PCA_NO_BOUND,
    SM_E_CONC_MISMATCH,
    SM_E_WEIGHT_NOT_FINITE,
    SM_E_WEIGHT_REQUIRED,
    SM_E_RATE_NOT_FINITE,
    SM_E_RATE_NEGATIVE,
    SM_E_RATE_ZERO,
    SM_E_VTBI_NOT_FINITE,
    SM_E_VTBI_RANGE,
    SM_E_PCA_UNIT,
    SM_E_PCA_VALUES,
    SM_E_AREA_ID,
    SM_E_PCA_COUNT,
    SM_E_PCA_NOT_SET_UP,
    SM_E_PCA_INCOMPLETE,
    SM_E_PCA_WHOLE,
    SM_E_N
};
enum sm_field {
    SM_F_WEIGHT = 1, SM_F_RATE, SM_F_DOSE, SM_F_PCA_DEMAND, SM_F_PCA_LOCKOUT, SM_F_PCA_COUNT, SM_F_PCA_1H,
    SM_F_PCA_4H, SM_F_REQUEST, SM_F_OVERRIDE, SM_F_TIME, SM_F_PROGRAM, SM_F_OVERRIDE_REASON, SM_F_PRINCIPAL,
    SM_F_DRUG_ID, SM_F_PCA_PER_PROGRAM
};
enum sm_severity { SM_SEV_INVALID = 1, SM_SEV_UNAUTHORISED, SM_SEV_HARD, SM_SEV_SOFT };
/* detail of an issue: an sm_outcome for a limit check, else one of these (or an sm_error for REQUEST) */
enum { SM_D_PUMP_MAX = 10, SM_D_DEMAND_OVER_1H, SM_D_1H_OVER_4H, SM_D_BASAL_OVER_WINDOW, SM_D_UNCONFIRMED,
       SM_D_CLOCK, SM_D_TITRATION, SM_D_HISTORY_FULL, SM_D_ALARM_STATE, SM_D_CHANGE_DRUG, SM_D_NOT_CLINICIAN,
       SM_D_REASON };
#define SM_MAX_ISSUES 16
typedef struct {
    int32_t field, severity, detail, pad;
} sm_issue;

typedef struct {
    double demand_dose, lockout_min, limit_1h, limit_4h;
    int32_t max_boluses_per_hour;
    int32_t has_boluses_per_program, boluses_per_program;
} sm_pca_request;

typedef struct {
    double demand_dose, demand_ml, lockout_s;
    int32_t max_boluses_per_hour;
    double limit_1h, limit_4h, limit_1h_canonical, limit_4h_canonical, bolus_rate_ml_h;
    int32_t has_boluses_per_program; /* a per-prescription patient-bolus count (none from the standard protocol) */
    int32_t boluses_per_program;
} sm_pca_settings;

typedef struct {
    int32_t drug, area;            /* library indexes */
    int32_t dose_unit, amount_unit;
    double concentration;          /* amount per mL as entered */
    double canonical_per_ml;
    double rate, rate_ml_h, vtbi_ml, dose_amount;
    int32_t has_weight;
    double weight_kg;
    int32_t has_pca;
    sm_pca_request pca_request;
    sm_pca_settings pca;
    double kvo_rate_ml_h, max_rate_ml_h;
    int32_t has_dose_hard_max;
    double dose_hard_max_ml;
    int32_t has_titration;          /* the library's cap on raising this drug's rate */
    double titration_max_increase, titration_period_s;
    uint32_t override_fields;       /* bit (1 << sm_field) of each soft excess a clinician confirmed */
    int32_t has_override_reason;
} sm_program;

/* therapy_io.program_request + program.evaluate: rebuild a program from the values a message carries.
 * Returns 0 and fills *prog (issues may still hold soft or hard limit excesses), or an sm_error (the
 * Python request-building errors, before any evaluation) with prog untouched. issue list: *n_issues. */
typedef struct {
    char drug[SM_ID_MAX + 1];
    char care_area[SM_ID_MAX + 1];
    double concentration, dose_rate, vtbi_ml, weight_kg;
    /* the per-patient PCA prescription as entered: demand dose, lockout (min), boluses per hour, 1-h limit,
     * 4-h limit, per-prescription bolus count; all zero: the library's standard protocol */
    double pca[6];
} sm_prescription;
int sm_program_request_check(const sm_library *lib, const sm_prescription *rx, int *drug, int *area,
                             sm_pca_request *pca, int32_t *has_pca);
/* program.evaluate: returns 1 if a program was built (prog valid), 0 if not (the last issue is REQUEST
 * INVALID with the sm_error as detail). */
int sm_evaluate(const sm_library *lib, int drug, int area, double concentration, double rate, double vtbi_ml,
                double weight_kg /* 0: not given */, int32_t has_pca, const sm_pca_request *pca,
                sm_program *prog, sm_issue *issues, int32_t *n_issues);

/* ---------------------------------------------------------------------------- ledger.py */
#ifndef SM_LEDGER_CAP
#define SM_LEDGER_CAP 4096
#endif
typedef struct {
    int32_t drug, bolus;
    double start, end, rate_ml_h, canonical_per_ml;
} sm_segment;
typedef struct {
    int32_t head, n; /* ring of segments, oldest at head */
    sm_segment seg[SM_LEDGER_CAP];
    int32_t has_last_end;
    double last_end;
    uint32_t folded; /* segments folded because the ring was full (never in Python; see ledger fold) */
} sm_ledger;
void sm_ledger_init(sm_ledger *l);
/* returns 0, or -1 where Python raises (overlap / bad segment) */
int sm_ledger_record(sm_ledger *l, int drug, double start, double end, double rate, double cpm, int bolus);
double sm_ledger_amount_between(const sm_ledger *l, int drug, double t0, double t1);

/* ---------------------------------------------------------------------------- pca.py */
enum sm_bolus_denial {
    SM_BD_NONE = 0, SM_BD_NOT_PCA, SM_BD_NOT_RUNNING, SM_BD_NOT_PATIENT_BUTTON, SM_BD_IN_PROGRESS, SM_BD_LOCKOUT,
    SM_BD_MAX_PER_HOUR, SM_BD_LIMIT_1H, SM_BD_LIMIT_4H, SM_BD_HOLD_OFF, SM_BD_BOLUS_EXCEEDED, SM_BD_RESERVOIR_LOW
};
#define SM_BOLUS_MIN_RESERVOIR_ML 1.0 /* pca.py BOLUS_MIN_RESERVOIR_ML: no bolus below this */
#define SM_MAX_BOLUS_STARTS 64
typedef struct {
    int32_t n_starts;
    double starts[SM_MAX_BOLUS_STARTS];
    int32_t active;
    double started, target_ml, delivered_ml;
    int64_t demands, denied;
    int64_t program_boluses; /* boluses started under the current prescription */
} sm_pca;
void sm_pca_init(sm_pca *p);
int sm_pca_check(const sm_pca *p, const sm_pca_settings *s, const sm_ledger *l, const sm_program *prog, double now,
                 int32_t has_hold_off, double hold_off_until, double lockout_tolerance_s, int32_t has_reservoir,
                 double reservoir_ml);
int sm_pca_count_exceeded(const sm_pca *p, const sm_pca_settings *s);
void sm_pca_start(sm_pca *p, double now, const sm_pca_settings *s);
void sm_pca_add_delivered(sm_pca *p, double volume_ml);
double sm_pca_remaining_ml(const sm_pca *p);
double sm_window_headroom_ml(const sm_program *prog, const sm_ledger *l, double now);
double sm_kvo_rate_ml_h(const sm_program *prog);

/* ---------------------------------------------------------------------------- titration.py */
#define SM_RATE_HISTORY_CAP 256 /* full: a raise is refused (SM_D_HISTORY_FULL), lowering never needs it */
typedef struct {
    int32_t n;
    double t[SM_RATE_HISTORY_CAP], rate[SM_RATE_HISTORY_CAP];
    int32_t drug[SM_RATE_HISTORY_CAP];
} sm_rate_history;
/* 0: the raise is allowed; SM_D_TITRATION / SM_D_HISTORY_FULL otherwise (titration_issue) */
int sm_titration_check(const sm_library *lib, const sm_rate_history *h, const sm_program *p, double now);
/* RateHistory.record; -1 if the history is full (nothing recorded) */
int sm_rate_history_record(const sm_library *lib, sm_rate_history *h, double now, int drug, double rate);

/* ---------------------------------------------------------------------------- alarms.py */
enum sm_alarm {
    SM_A_AIR_IN_LINE, SM_A_AIR_CUMULATIVE, SM_A_OCCLUSION, SM_A_RESERVOIR_EMPTY, SM_A_DOOR_OPEN, SM_A_OVER_INFUSION,
    SM_A_SENSOR_FAULT, SM_A_CONTROLLER_SILENT, SM_A_WATCHDOG, SM_A_CLOCK_FAULT, SM_A_MOTOR_FAULT,
    SM_A_SENSOR_LINK_FAULT, SM_A_RESERVOIR_LOW, SM_A_UNDER_INFUSION, SM_A_PAUSED_TOO_LONG, SM_A_DOSE_LIMIT,
    SM_A_INFUSION_COMPLETE, SM_A_RECORDS_LOST, SM_A_BOLUS_EXCEEDED, SM_N_ALARMS
};
enum sm_action { SM_ACT_NONE = 0, SM_ACT_ADVISORY = 1, SM_ACT_STOP = 2, SM_ACT_LATCHED_FAULT = 3 };
extern const int8_t sm_alarm_action[SM_N_ALARMS];
extern const int8_t sm_alarm_priority[SM_N_ALARMS];
extern const int8_t sm_alarm_name_rank[SM_N_ALARMS]; /* order of the kinds' names (the display's tie-break) */

/* AlarmConfig defaults */
#define SM_AIR_SINGLE_BUBBLE_UL 50.0
#define SM_AIR_CUMULATIVE_UL 500.0
#define SM_AIR_CUMULATIVE_WINDOW_S (15 * 60.0)
#define SM_OCCLUSION_MMHG 600.0
#define SM_OCCLUSION_HOLD_OFF_S (5 * 60.0)
#define SM_RESERVOIR_LOW_ML 10.0
#define SM_RESERVOIR_EMPTY_ML 0.5
#define SM_OVER_TOL_ML 0.2
#define SM_OVER_FRACTION 0.05
#define SM_UNDER_TOL_ML 0.5
#define SM_UNDER_FRACTION 0.10

#define SM_SECONDS_PER_HOUR 3600.0
#define SM_VOLUME_EPS_ML 1e-9

#endif
