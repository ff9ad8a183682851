/* STAND-IN for the auth service (septum/services/auth_service.py is the real one): it authenticates NOBODY.
 * It forwards the ui stand-in's scripted requests as Commands to pump_control with the principal
 * "standin-clinician" (role clinician) and answers each with an AuthReply. Every other channel it holds is
 * initialised and drained (pd_channels_auth.h). It is here so that pump_control receives commands the way the
 * model says (ui -> auth -> pump_control), not to show authentication on seL4. */
#define CH_ON_UI_REQUESTS on_request
#define CH_ON_UPDATE_RESULTS on_update_result
#include "pd_channels_auth.h"

static septum_Command_t cmd;
static septum_AuthReply_t reply;
static int library_installed;

static int command_action(uint16_t ui_action, uint16_t *out)
{
    switch (ui_action) {
    case SEPTUM_UIREQUEST_ACTION_PROGRAM_INFUSION: *out = SEPTUM_COMMAND_ACTION_PROGRAM_INFUSION; return 1;
    case SEPTUM_UIREQUEST_ACTION_START_INFUSION: *out = SEPTUM_COMMAND_ACTION_START_INFUSION; return 1;
    case SEPTUM_UIREQUEST_ACTION_PAUSE_INFUSION: *out = SEPTUM_COMMAND_ACTION_PAUSE_INFUSION; return 1;
    case SEPTUM_UIREQUEST_ACTION_STOP_INFUSION: *out = SEPTUM_COMMAND_ACTION_STOP_INFUSION; return 1;
    case SEPTUM_UIREQUEST_ACTION_EMERGENCY_STOP: *out = SEPTUM_COMMAND_ACTION_EMERGENCY_STOP; return 1;
    default: return 0;
    }
}

static void on_request(const septum_UiRequest_t *m)
{
    uint16_t action;
    memset(&reply, 0, sizeof reply);
    reply.request_id = m->request_id;
    if (!command_action(m->action, &action)) {
        SEPTUM_SET_STR(reply.reason, "stand-in: action not forwarded");
        septum_ch_auth_replies_send(&ch_tx_auth_replies, &reply);
        return;
    }
    memset(&cmd, 0, sizeof cmd);
    cmd.request_id = m->request_id;
    cmd.action = action;
    SEPTUM_SET_STR(cmd.principal, "standin-clinician");
    SEPTUM_SET_STR(cmd.role, "clinician");
    SEPTUM_COPY_STR(cmd.drug, m->drug);
    cmd.concentration = m->concentration;
    cmd.dose_rate = m->dose_rate;
    cmd.vtbi_ml = m->vtbi_ml;
    cmd.weight_kg = m->weight_kg;
    int why = septum_ch_commands_send(&ch_tx_commands, &cmd);
    reply.ok = why == 0;
    septum_ch_auth_replies_send(&ch_tx_auth_replies, &reply);
    sl_begin("standin-forward");
    sl_u64("request", (uint64_t)m->request_id);
    sl_u64("action", action);
    sl_u64("refused", (uint64_t)why);
    sl_u64("library", (uint64_t)library_installed);
    sl_end();
}

static void on_update_result(const septum_UpdateResult_t *m)
{
    library_installed = m->installed;
}

void init(void)
{
    pd_channels_init();
}

void notified(microkit_channel ch)
{
    pd_channels_drain(ch);
}
