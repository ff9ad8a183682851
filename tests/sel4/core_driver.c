/* Host-only test driver for the C safety core (hosted C: stdio). Reads traces on stdin, writes the core's
 * outputs on stdout, so the core can run under ASan/UBSan in its own process (tests/sel4/core_harness.py).
 *
 * stdin, repeated until EOF: int32 n_events, sm_config, double t0, then n_events x sm_input.
 * stdout, per trace: the init sm_output, then one sm_output per event.
 * Also exports the layout of the structs for the ctypes side (sm_shim_layout). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "control_core.h"
#include "monitor_core.h"

long sm_shim_layout(int i) {
    static const long v[] = {
        (long)sizeof(sm_input), (long)sizeof(sm_output), (long)sizeof(sm_config),
        (long)offsetof(sm_input, sensors), (long)offsetof(sm_input, program), (long)offsetof(sm_input, approval),
        (long)offsetof(sm_output, issues), (long)offsetof(sm_output, approval_result),
        (long)offsetof(sm_output, delivered_ml), (long)offsetof(sm_config, care_area),
        (long)sizeof(sm_control_input), (long)sizeof(sm_control_output), (long)offsetof(sm_control_output, delivered_ml),
    };
    return (i >= 0 && i < (int)(sizeof v / sizeof v[0])) ? v[i] : -1;
}

#ifdef SM_DRIVER_MAIN
static sm_monitor state;

int main(void) {
    int32_t n;
    while (fread(&n, sizeof n, 1, stdin) == 1) {
        sm_config cfg;
        double t0;
        sm_output out;
        if (fread(&cfg, sizeof cfg, 1, stdin) != 1 || fread(&t0, sizeof t0, 1, stdin) != 1) return 2;
        cfg.care_area[SM_ID_MAX] = 0;
        sm_monitor_init(&state, &sm_drug_library, &cfg, t0, &out);
        fwrite(&out, sizeof out, 1, stdout);
        for (int32_t i = 0; i < n; i++) {
            sm_input in;
            if (fread(&in, sizeof in, 1, stdin) != 1) return 2;
            sm_monitor_step(&state, &in, &out);
            fwrite(&out, sizeof out, 1, stdout);
        }
    }
    return 0;
}
#endif
