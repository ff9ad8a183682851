/* STAND-IN for the ui partition (septum_pump/ui.py is the real one): no keypad, display or PCA button. It
 * plays a scripted clinician: counting the monitor's periodic MonitorStatus on monitor_alarms as its clock,
 * it programs an infusion, starts it and confirms the start (the two-step start), all as UiRequests to auth.
 * It shows on the serial line what pump_control reports (pump_status) and what the monitor alarms.
 *
 * Script knobs (-D, chosen by the scenario build): UI_RATE_ML_H (default 20), UI_VTBI_ML (100).
 *
 * Serial lines: septum: ui standin-request action=A at=N | ui pump state=S rate=R | ui alarm name=A latched=L */
#define CH_ON_PUMP_STATUS on_pump_status
#define CH_ON_MONITOR_ALARMS on_alarms
#define CH_ON_AUTH_REPLIES on_reply
#include "pd_channels_ui.h"

#ifndef UI_RATE_ML_H
#define UI_RATE_ML_H 20.0
#endif
#ifndef UI_VTBI_ML
#define UI_VTBI_ML 100.0
#endif
#define UI_DRUG "normal-saline"

static septum_UiRequest_t req;
static uint64_t ticks, replies_ok, replies_refused;
static int32_t shown_state = -1;
static char shown_alarm[65] = "?";
static int shown_latched = -1;

static const char *const state_names[] = {"idle", "programmed", "running", "paused", "alarm", "complete", "fault"};

static void request(uint16_t action)
{
    memset(&req, 0, sizeof req);
    req.request_id = (int64_t)ticks;
    req.action = action;
    SEPTUM_SET_STR(req.user, "standin-clinician");
    if (action == SEPTUM_UIREQUEST_ACTION_PROGRAM_INFUSION) {
        SEPTUM_SET_STR(req.drug, UI_DRUG);
        req.concentration = 1.0;
        req.dose_rate = UI_RATE_ML_H;
        req.vtbi_ml = UI_VTBI_ML;
    }
    int why = septum_ch_ui_requests_send(&ch_tx_ui_requests, &req);
    sl_begin("standin-request");
    sl_u64("action", action);
    sl_u64("at", ticks);
    sl_u64("refused", (uint64_t)why);
    sl_end();
}

static void on_alarms(const septum_MonitorStatus_t *m)
{
    ticks++;
    if (ticks == 3) {
        request(SEPTUM_UIREQUEST_ACTION_PROGRAM_INFUSION);
    } else if (ticks == 5 || ticks == 7) {
        request(SEPTUM_UIREQUEST_ACTION_START_INFUSION); /* start, then confirm */
    }
    if (m->latched_fault != shown_latched || memcmp(shown_alarm, m->alarm.data, m->alarm.len + 1) != 0) {
        shown_latched = m->latched_fault;
        uint32_t n = m->alarm.len < sizeof shown_alarm ? m->alarm.len : 0;
        memcpy(shown_alarm, m->alarm.data, n);
        shown_alarm[n] = 0;
        sl_begin("alarm");
        sl_str("name", shown_alarm);
        sl_u64("latched", m->latched_fault);
        sl_end();
    }
}

static void on_pump_status(const septum_PumpStatus_t *m)
{
    if ((int32_t)m->state == shown_state) {
        return;
    }
    shown_state = m->state;
    sl_begin("pump");
    sl_str("state", m->state < SEPTUM_PUMPSTATUS_STATE_COUNT ? state_names[m->state] : "?");
    sl_fix3("rate", m->rate_ml_h);
    sl_str("message", m->message.data);
    sl_end();
}

static void on_reply(const septum_AuthReply_t *m)
{
    if (m->ok) {
        replies_ok++;
    } else {
        replies_refused++;
    }
}

void init(void)
{
    pd_channels_init();
}

void notified(microkit_channel ch)
{
    pd_channels_drain(ch);
}
