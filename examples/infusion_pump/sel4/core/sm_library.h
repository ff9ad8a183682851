/* The drug library as the C safety core sees it: plain constant tables, generated from drug_library.yaml
 * by septum_pump/sel4_drug_table.py (no YAML parser in C). The tables hold each level of the library as
 * written (device, care area, drug-wide, drug in a care area); the core combines them itself
 * ("most restrictive wins", therapy_core.c: sm_entry), exactly as drug_library.py does.
 *
 * Freestanding: no libc, no allocation. Numbers are IEEE doubles, emitted as hexadecimal literals so the
 * C table holds bit for bit what the Python loader holds.
 */
#ifndef SEPTUM_SM_LIBRARY_H
#define SEPTUM_SM_LIBRARY_H

#include <stdint.h>

#define SM_ID_MAX 64 /* drug and care area ids: 1-64 characters (program.py MAX_ID_LEN) */
#define SM_MAX_CONCENTRATIONS 4
#define SM_MAX_AREAS_PER_DRUG 4

/* amount units (units.py AmountUnit) */
enum sm_amount_unit { SM_AU_G, SM_AU_MG, SM_AU_MCG, SM_AU_UNITS, SM_AU_ML };
/* dimensions (units.py Dimension) */
enum sm_dimension { SM_DIM_MASS, SM_DIM_ACTIVITY, SM_DIM_VOLUME };
/* dose rate units (units.py DoseUnit) */
enum sm_dose_unit { SM_DU_ML_H, SM_DU_MG_H, SM_DU_MCG_H, SM_DU_UNITS_H, SM_DU_MCG_KG_MIN, SM_DU_UNITS_KG_H };

/* A limit set (limits.py Limits): each bound may be absent. Index order: hard_min, soft_min, soft_max,
 * hard_max. */
enum { SM_HARD_MIN, SM_SOFT_MIN, SM_SOFT_MAX, SM_HARD_MAX };
typedef struct {
    double v[4];
    uint8_t has[4];
} sm_limits;

typedef struct {
    sm_limits demand_dose;
    sm_limits lockout_min;
    sm_limits max_boluses_per_hour;
    sm_limits limit_1h;
    sm_limits limit_4h;
    double bolus_rate_ml_h;
    uint8_t has_boluses_per_program; /* patient boluses one prescription may give in all */
    sm_limits boluses_per_program;
} sm_pca_rules;

/* One level of drug rules (drug_library.py DrugRules). */
typedef struct {
    sm_limits rate, dose, bolus, weight_kg;
    uint8_t has_kvo;
    double kvo_rate_ml_h;
    uint8_t has_pca;
    sm_pca_rules pca;
    uint8_t has_titration; /* titration: {max_increase, period_min} (titration.py) */
    double titration_max_increase, titration_period_s;
} sm_drug_rules;

typedef struct {
    int32_t unit;              /* enum sm_amount_unit */
    double canonical_per_ml;   /* as units.py Concentration.canonical_per_ml computed it */
} sm_concentration;

typedef struct {
    int32_t area; /* index into sm_library.areas */
    sm_drug_rules rules;
} sm_local_rules;

typedef struct {
    char id[SM_ID_MAX + 1];
    int32_t dose_unit; /* enum sm_dose_unit */
    int32_t n_concentrations;
    sm_concentration concentrations[SM_MAX_CONCENTRATIONS];
    sm_drug_rules general;
    int32_t n_local;
    sm_local_rules local[SM_MAX_AREAS_PER_DRUG];
} sm_drug;

typedef struct {
    char id[SM_ID_MAX + 1];
    double max_rate_ml_h;
    sm_limits weight_kg;
} sm_care_area;

typedef struct {
    int64_t version;
    double device_max_rate_ml_h;
    double kvo_rate_ml_h;
    int32_t n_areas;
    const sm_care_area *areas;
    int32_t n_drugs;
    const sm_drug *drugs;
} sm_library;

/* The library generated from examples/infusion_pump/drug_library.yaml (drug_table.c). */
extern const sm_library sm_drug_library;

#endif
