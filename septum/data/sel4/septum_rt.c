/* Clock, serial lines and freestanding libc pieces for every PD (see septum_pd.h). */
#include "septum_pd.h"

static inline uint64_t counter(void)
{
    uint64_t v;
    __asm__ volatile("isb; mrs %0, cntpct_el0" : "=r"(v));
    return v;
}

static inline uint64_t counter_hz(void)
{
    uint64_t v;
    __asm__ volatile("mrs %0, cntfrq_el0" : "=r"(v));
    return v;
}

uint64_t septum_now_us(void)
{
    uint64_t hz = counter_hz();
    uint64_t c = counter();
    /* split to avoid overflowing c * 1e6 */
    return (c / hz) * 1000000u + ((c % hz) * 1000000u) / hz;
}

double septum_now_s(void)
{
    return (double)septum_now_us() / 1e6;
}

/* ------------------------------------------------------------------------------------ serial lines */
#define LINE_MAX 240
static char line[LINE_MAX + 2];
static size_t used;

static void put(const char *s)
{
    while (*s && used < LINE_MAX) {
        char c = *s++;
        line[used++] = (c == ' ' || c == '\n' || c == '\r' || c == '\t') ? '_' : c;
    }
}

static void put_raw(const char *s)
{
    while (*s && used < LINE_MAX) {
        line[used++] = *s++;
    }
}

static void put_u(uint64_t v)
{
    char buf[21];
    int i = 20;
    buf[i] = 0;
    do {
        buf[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v && i > 0);
    put_raw(&buf[i]);
}

void sl_begin(const char *event)
{
    used = 0;
    put_raw("septum: ");
    put(microkit_name[0] ? microkit_name : "?");
    put_raw(" ");
    put(event);
}

static void key(const char *k)
{
    put_raw(" ");
    put(k);
    put_raw("=");
}

void sl_str(const char *k, const char *value)
{
    key(k);
    put(value && *value ? value : "-");
}

void sl_u64(const char *k, uint64_t value)
{
    key(k);
    put_u(value);
}

void sl_i64(const char *k, int64_t value)
{
    key(k);
    if (value < 0) {
        put_raw("-");
        put_u((uint64_t)(-(value + 1)) + 1u);
    } else {
        put_u((uint64_t)value);
    }
}

void sl_hex(const char *k, uint64_t value)
{
    static const char digits[] = "0123456789abcdef";
    char buf[19];
    int i = 18;
    key(k);
    buf[i] = 0;
    do {
        buf[--i] = digits[value & 0xf];
        value >>= 4;
    } while (value && i > 2);
    buf[--i] = 'x';
    buf[--i] = '0';
    put_raw(&buf[i]);
}

void sl_fix3(const char *k, double value)
{
    key(k);
    if (value != value) {
        put_raw("nan");
        return;
    }
    if (value < 0) {
        put_raw("-");
        value = -value;
    }
    if (value > 1e15) {
        put_raw("inf");
        return;
    }
    uint64_t milli = (uint64_t)(value * 1000.0 + 0.5);
    put_u(milli / 1000u);
    put_raw(".");
    uint64_t frac = milli % 1000u;
    put_raw(frac < 100 ? (frac < 10 ? "00" : "0") : "");
    put_u(frac);
}

void sl_end(void)
{
    line[used++] = '\n';
    line[used] = 0;
    microkit_dbg_puts(line);
    used = 0;
}

/* ------------------------------------------------------------------------------------ libc pieces */
void *memcpy(void *dst, const void *src, size_t n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;
    while (n--) {
        *d++ = *s++;
    }
    return dst;
}

void *memmove(void *dst, const void *src, size_t n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;
    if (d < s) {
        while (n--) {
            *d++ = *s++;
        }
    } else {
        while (n--) {
            d[n] = s[n];
        }
    }
    return dst;
}

void *memset(void *dst, int c, size_t n)
{
    unsigned char *d = dst;
    while (n--) {
        *d++ = (unsigned char)c;
    }
    return dst;
}

int memcmp(const void *a, const void *b, size_t n)
{
    const unsigned char *x = a, *y = b;
    for (; n; n--, x++, y++) {
        if (*x != *y) {
            return *x < *y ? -1 : 1;
        }
    }
    return 0;
}

size_t strlen(const char *s)
{
    size_t n = 0;
    while (s[n]) {
        n++;
    }
    return n;
}
