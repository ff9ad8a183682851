/* STAND-IN for the update partition (septum/services/update_service.py is the real one): no bundle, no
 * signature check, no anti-rollback here. At start it announces the drug library version the C cores were
 * compiled with on drug_library_pc and drug_library_sm, and tells auth on update_results. Its other channels
 * are initialised and drained (pd_channels_update.h), nothing more. */
#include "pd_channels_update.h"
#include "drug_library_version.h" /* septum/sel4/build.py: drug_library.yaml's 'version' (the cores' table) */

#define LIBRARY_VERSION SEPTUM_DRUG_LIBRARY_VERSION

static septum_DrugLibrary_t lib;
static septum_UpdateResult_t result;

void init(void)
{
    pd_channels_init();
    lib.version = LIBRARY_VERSION;
    int a = septum_ch_drug_library_pc_send(&ch_tx_drug_library_pc, &lib);
    int b = septum_ch_drug_library_sm_send(&ch_tx_drug_library_sm, &lib);
    SEPTUM_SET_STR(result.bundle_id, "standin-drug-library");
    result.installed = 1;
    result.version = LIBRARY_VERSION;
    SEPTUM_SET_STR(result.reason, "stand-in: compiled-in table announced");
    int c = septum_ch_update_results_send(&ch_tx_update_results, &result);
    sl_begin("standin-library");
    sl_u64("version", LIBRARY_VERSION);
    sl_u64("refused", (uint64_t)(a != 0) + (b != 0) + (c != 0));
    sl_end();
}

void notified(microkit_channel ch)
{
    pd_channels_drain(ch);
}
