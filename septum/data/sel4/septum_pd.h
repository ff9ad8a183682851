/* What every protection domain of the pump image shares: the clock, serial lines, and the few libc
 * functions a freestanding build needs (septum_rt.c).
 *
 * Serial lines. Each line a PD prints is built in a buffer and written with one microkit_dbg_puts, in the
 * form the tests and the benchmark parse (septum/sel4/serial.py):
 *
 *     septum: <pd> <event> key=value key=value ...
 *
 * Values never contain spaces. Only the debug configuration of the SDK prints anything.
 *
 * Time. KernelArmExportPCNTUser is on for qemu_virt_aarch64, so a PD may read the generic timer's physical
 * counter (CNTPCT_EL0) and its frequency. There is no timer service in Microkit 1.2.6: the simulated
 * hardware PD (hw.c) is the only thing that waits for time to pass, and it tells the safety monitor.
 */
#ifndef SEPTUM_PD_H
#define SEPTUM_PD_H

#include <stddef.h>
#include <stdint.h>

#include <microkit.h>

uint64_t septum_now_us(void);
double septum_now_s(void);

void sl_begin(const char *event);
void sl_str(const char *key, const char *value);
void sl_u64(const char *key, uint64_t value);
void sl_i64(const char *key, int64_t value);
void sl_hex(const char *key, uint64_t value);
void sl_fix3(const char *key, double value); /* three decimals; NaN and infinities by name */
void sl_end(void);

/* set a generated message's bounded string field from a C string (the stand-ins' scripted values) */
#define SEPTUM_SET_STR(field, text)                                                                  \
    do {                                                                                             \
        (field).len = (uint32_t)strlen(text);                                                        \
        memcpy((field).data, (text), (field).len);                                                   \
        (field).data[(field).len] = 0;                                                               \
    } while (0)

/* copy one bounded string field into another (their anonymous struct types differ); too long: empty */
#define SEPTUM_COPY_STR(dst, src)                                                                    \
    do {                                                                                             \
        uint32_t n_ = (src).len < sizeof (dst).data ? (src).len : 0u;                                \
        memcpy((dst).data, (src).data, n_);                                                          \
        (dst).data[n_] = 0;                                                                          \
        (dst).len = n_;                                                                              \
    } while (0)

/* freestanding libc pieces (the compiler may call these for struct copies) */
void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);

#endif
