/* Register layout of the simulated motor and sensor boards (hw.c) as the safety monitor sees them.
 *
 * On a real board these are the driver chips' registers at the addresses of the model's address plan. In
 * the QEMU image they are two pages of ordinary memory that only two PDs map: `safety_monitor` (the model's
 * owner of the `motor` and `sensors` interfaces, at the addresses of its generated header) and the `hw` PD
 * that plays the hardware. No partition of the model can reach them: the kernel maps them nowhere else.
 *
 * Writes are ordered with a full barrier before the sequence number, so a reader that sees a new sequence
 * sees the values written before it.
 */
#ifndef SEPTUM_SIM_DEVICES_H
#define SEPTUM_SIM_DEVICES_H

#include <stdint.h>

#define SIM_MOTOR_MAGIC 0x4d4f544fu  /* "MOTO" */
#define SIM_SENSOR_MAGIC 0x53454e53u /* "SENS" */

/* the sensor board publishes a frame every monitor period: the frame is also the monitor's period timer */
#define SIM_FRAME_US 10000u

struct sim_motor_regs {
    /* written by the monitor */
    double rate_ml_h;        /* wanted rate; 0 stops */
    double lease_s;          /* the motor stops by itself this long after the write unless renewed */
    uint32_t bolus;          /* the rate is a bolus */
    uint32_t frame;          /* the sensor frame the monitor acted on (for the serial trace) */
    uint32_t seq;            /* bumped last: a new command */
    uint32_t pad0;
    /* written by the hardware */
    uint32_t magic;
    uint32_t applied_seq;
    double running_rate_ml_h; /* what the motor is doing now */
    double pumped_ml;         /* encoder: volume pumped since power-on */
};

struct sim_sensor_regs {
    uint32_t magic;
    uint32_t frame;          /* bumped last: a new frame */
    uint64_t at_us;
    double line_pressure_mmhg;
    double largest_bubble_ul;
    double air_ul;
    double reservoir_ml;
    double motor_volume_ml;
    int32_t door_open;
    int32_t pad0;
};

static inline void sim_barrier(void)
{
    __asm__ volatile("dmb sy" ::: "memory");
}

#endif
