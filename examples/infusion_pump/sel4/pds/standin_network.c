/* STAND-IN for the network partition (septum_pump/network.py is the real one): no TCP/IP, no TLS, no
 * hospital. It holds exactly the partition's channels (pd_channels_network.h), drains what pump_control sends
 * it and counts it.
 *
 * HOSTILE builds (-DNETWORK_HOSTILE=N, the scenarios' "compromised network partition"): after
 * HOSTILE_AFTER_MS of its own time (therapy is running by then) it announces one write and makes it:
 *   1  past the end of its own orders_in ring, into the guard page after it: a region it does not map;
 *   2  to the motor's registers, at the physical address the model's address plan gives them (the motor
 *      region is mapped into no address space of this PD, at any address);
 *   3  into its order_replies ring, which it maps read-only: a channel used in the wrong direction.
 * The kernel stops the PD at that write; the Microkit monitor reports the fault with this PD's name and the
 * address. If the write ever returned, the PD says so ("attack-survived"): the scenario fails on that line.
 */
#define CH_ON_PUMP_EVENTS on_event
#include "pd_channels_network.h"
#include "network.h"          /* 'septum gen microkit': this PD's channel ids and addresses */
#include "device_addresses.h" /* septum/sel4/build.py: the address plan's physical device addresses */

#ifndef NETWORK_HOSTILE
#define NETWORK_HOSTILE 0
#endif
#ifndef HOSTILE_AFTER_MS
#define HOSTILE_AFTER_MS 1500
#endif

static uint64_t events;

static void on_event(const septum_PumpEvent_t *m)
{
    (void)m;
    events++;
}

static void attack(void)
{
    uint64_t start = septum_now_us();
    while (septum_now_us() - start < (uint64_t)HOSTILE_AFTER_MS * 1000u) {
        /* waiting: the kernel's budget/period for this PD lets everyone else run meanwhile */
    }
    const char *kind;
    uintptr_t addr;
    switch (NETWORK_HOSTILE) {
    case 1:
        kind = "unmapped";
        addr = SEPTUM_CH_ORDERS_IN_VADDR + SEPTUM_CH_ORDERS_IN_SIZE;
        break;
    case 2:
        kind = "motor";
        addr = SEPTUM_PADDR_MOTOR;
        break;
    default:
        kind = "wrong-direction";
        addr = SEPTUM_CH_ORDER_REPLIES_VADDR;
        break;
    }
    sl_begin("attack");
    sl_str("kind", kind);
    sl_hex("addr", addr);
    sl_end();
    *(volatile uint64_t *)addr = 0x5e97u; /* a motor "run" word, a forged ring header, ... */
    sl_begin("attack-survived");
    sl_str("kind", kind);
    sl_hex("addr", addr);
    sl_end();
}

void init(void)
{
    pd_channels_init();
    sl_begin("standin");
    sl_u64("hostile", NETWORK_HOSTILE);
    sl_end();
    if (NETWORK_HOSTILE) {
        attack();
    }
}

void notified(microkit_channel ch)
{
    pd_channels_drain(ch);
}
