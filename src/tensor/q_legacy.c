/* The legacy (non-K) block quants: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1.
 *
 * The quantizers are the reference ones llama.cpp uses to write model files
 * (ggml-quants.c, "reference implementation for deterministic creation of
 * model files"), so a file quantized here is byte-identical to one quantized
 * there: the scale is computed in float, its reciprocal from that float (not
 * from the rounded half), and values are rounded exactly as ggml does:
 *  - Q4_0 / Q5_0: d = (the value of largest magnitude, with its sign) / -8
 *    (resp. -16), so that value maps to q = 0 and the full range [-8, 7] is
 *    used; q = min(15, (int8_t)(x / d + 8.5)) (resp. 31, 16.5).
 *  - Q4_1 / Q5_1: d = (max - min) / 15 (resp. 31), m = min,
 *    q = (x - min) / d + 0.5 truncated (clamped to 15 for Q4_1).
 *  - Q8_0 / Q8_1: d = amax / 127, q = roundf(x / d).
 * The dot products are those of ggml's generic kernels: an exact integer sum
 * per block, scaled by the product of the two halves' float values and
 * accumulated in float. */
#include "tensor/qtype_impl.h"

#include <float.h>
#include <math.h>
#include <string.h>

static inline int imin(int a, int b) { return a < b ? a : b; }

static inline uint32_t load_qh(const uint8_t qh[4]) {
    uint32_t v;
    memcpy(&v, qh, 4); /* little-endian, as the file stores it */
    return v;
}

/* The value of largest magnitude in x[0..n), sign kept (the first one on ties). */
static float signed_amax(const float *x, int n) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; j++) {
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    return max;
}

/* ---------------------------------------------------------------- Q4_0 -- */

void hs_q4_0_from_float_ref(const float *x, void *vy, int64_t n) {
    assert(n % HS_QK4_0 == 0);
    hs_block_q4_0 *y = vy;
    for (int64_t i = 0; i < n / HS_QK4_0; i++, x += HS_QK4_0) {
        const float d = signed_amax(x, HS_QK4_0) / -8.0f;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = hs_f32_to_fp16(d);
        for (int j = 0; j < HS_QK4_0 / 2; j++) {
            const int q0 = imin(15, (int8_t)(x[j] * id + 8.5f));
            const int q1 = imin(15, (int8_t)(x[j + HS_QK4_0 / 2] * id + 8.5f));
            y[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

void hs_q4_0_to_float(const void *vx, float *y, int64_t n) {
    const hs_block_q4_0 *x = vx;
    for (int64_t i = 0; i < n / HS_QK4_0; i++, y += HS_QK4_0) {
        const float d = hs_fp16_to_f32(x[i].d);
        for (int j = 0; j < HS_QK4_0 / 2; j++) {
            y[j] = (float)((x[i].qs[j] & 0x0f) - 8) * d;
            y[j + HS_QK4_0 / 2] = (float)((x[i].qs[j] >> 4) - 8) * d;
        }
    }
}

void hs_q4_0_vec_dot_ref(int n, float *s, const void *vx, const void *vy) {
    assert(n % HS_QK4_0 == 0);
    const hs_block_q4_0 *x = vx;
    const hs_block_q8_0 *y = vy;
    float sum = 0.0f;
    for (int i = 0; i < n / HS_QK4_0; i++) {
        int sumi = 0;
        for (int j = 0; j < HS_QK4_0 / 2; j++) {
            sumi += ((x[i].qs[j] & 0x0f) - 8) * y[i].qs[j];
            sumi += ((x[i].qs[j] >> 4) - 8) * y[i].qs[j + HS_QK4_0 / 2];
        }
        sum += (float)sumi * (hs_fp16_to_f32(x[i].d) * hs_fp16_to_f32(y[i].d));
    }
    *s = sum;
}

/* ---------------------------------------------------------------- Q4_1 -- */

void hs_q4_1_from_float_ref(const float *x, void *vy, int64_t n) {
    assert(n % HS_QK4_1 == 0);
    hs_block_q4_1 *y = vy;
    for (int64_t i = 0; i < n / HS_QK4_1; i++, x += HS_QK4_1) {
        float min = FLT_MAX, max = -FLT_MAX;
        for (int j = 0; j < HS_QK4_1; j++) {
            if (x[j] < min)
                min = x[j];
            if (x[j] > max)
                max = x[j];
        }
        const float d = (max - min) / 15.0f;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = hs_f32_to_fp16(d);
        y[i].m = hs_f32_to_fp16(min);
        for (int j = 0; j < HS_QK4_1 / 2; j++) {
            const int q0 = imin(15, (int8_t)((x[j] - min) * id + 0.5f));
            const int q1 = imin(15, (int8_t)((x[j + HS_QK4_1 / 2] - min) * id + 0.5f));
            y[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

void hs_q4_1_to_float(const void *vx, float *y, int64_t n) {
    const hs_block_q4_1 *x = vx;
    for (int64_t i = 0; i < n / HS_QK4_1; i++, y += HS_QK4_1) {
        const float d = hs_fp16_to_f32(x[i].d), m = hs_fp16_to_f32(x[i].m);
        for (int j = 0; j < HS_QK4_1 / 2; j++) {
            y[j] = (float)(x[i].qs[j] & 0x0f) * d + m;
            y[j + HS_QK4_1 / 2] = (float)(x[i].qs[j] >> 4) * d + m;
        }
    }
}

/* sum_j (d q_j + m)(dy qy_j) = d dy sum(q qy) + m (dy sum(qy)) = ... + m s. */
void hs_q4_1_vec_dot_ref(int n, float *s, const void *vx, const void *vy) {
    assert(n % HS_QK4_1 == 0);
    const hs_block_q4_1 *x = vx;
    const hs_block_q8_1 *y = vy;
    float sum = 0.0f;
    for (int i = 0; i < n / HS_QK4_1; i++) {
        int sumi = 0;
        for (int j = 0; j < HS_QK4_1 / 2; j++) {
            sumi += (x[i].qs[j] & 0x0f) * y[i].qs[j];
            sumi += (x[i].qs[j] >> 4) * y[i].qs[j + HS_QK4_1 / 2];
        }
        sum += (float)sumi * (hs_fp16_to_f32(x[i].d) * hs_fp16_to_f32(y[i].d)) +
               hs_fp16_to_f32(x[i].m) * hs_fp16_to_f32(y[i].s);
    }
    *s = sum;
}

/* ---------------------------------------------------------------- Q5_0 -- */

void hs_q5_0_from_float_ref(const float *x, void *vy, int64_t n) {
    assert(n % HS_QK5_0 == 0);
    hs_block_q5_0 *y = vy;
    for (int64_t i = 0; i < n / HS_QK5_0; i++, x += HS_QK5_0) {
        const float d = signed_amax(x, HS_QK5_0) / -16.0f;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = hs_f32_to_fp16(d);
        uint32_t qh = 0;
        for (int j = 0; j < HS_QK5_0 / 2; j++) {
            const int q0 = imin(31, (int8_t)(x[j] * id + 16.5f));
            const int q1 = imin(31, (int8_t)(x[j + HS_QK5_0 / 2] * id + 16.5f));
            y[i].qs[j] = (uint8_t)((q0 & 0x0f) | ((q1 & 0x0f) << 4));
            qh |= (uint32_t)((q0 >> 4) & 1) << j;
            qh |= (uint32_t)((q1 >> 4) & 1) << (j + HS_QK5_0 / 2);
        }
        memcpy(y[i].qh, &qh, 4);
    }
}

/* Element j of a q5 block: its 4 low bits from qs, bit 4 from qh. */
static inline int q5_get(const uint8_t *qs, uint32_t qh, int j) {
    const int lo = j < 16 ? (qs[j] & 0x0f) : (qs[j - 16] >> 4);
    return lo | (int)(((qh >> j) & 1) << 4);
}

void hs_q5_0_to_float(const void *vx, float *y, int64_t n) {
    const hs_block_q5_0 *x = vx;
    for (int64_t i = 0; i < n / HS_QK5_0; i++, y += HS_QK5_0) {
        const float d = hs_fp16_to_f32(x[i].d);
        const uint32_t qh = load_qh(x[i].qh);
        for (int j = 0; j < HS_QK5_0; j++)
            y[j] = (float)(q5_get(x[i].qs, qh, j) - 16) * d;
    }
}

void hs_q5_0_vec_dot_ref(int n, float *s, const void *vx, const void *vy) {
    assert(n % HS_QK5_0 == 0);
    const hs_block_q5_0 *x = vx;
    const hs_block_q8_0 *y = vy;
    float sum = 0.0f;
    for (int i = 0; i < n / HS_QK5_0; i++) {
        const uint32_t qh = load_qh(x[i].qh);
        int sumi = 0;
        for (int j = 0; j < HS_QK5_0; j++)
            sumi += (q5_get(x[i].qs, qh, j) - 16) * y[i].qs[j];
        sum += (float)sumi * (hs_fp16_to_f32(x[i].d) * hs_fp16_to_f32(y[i].d));
    }
    *s = sum;
}

/* ---------------------------------------------------------------- Q5_1 -- */

void hs_q5_1_from_float_ref(const float *x, void *vy, int64_t n) {
    assert(n % HS_QK5_1 == 0);
    hs_block_q5_1 *y = vy;
    for (int64_t i = 0; i < n / HS_QK5_1; i++, x += HS_QK5_1) {
        float min = FLT_MAX, max = -FLT_MAX;
        for (int j = 0; j < HS_QK5_1; j++) {
            if (x[j] < min)
                min = x[j];
            if (x[j] > max)
                max = x[j];
        }
        const float d = (max - min) / 31.0f;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = hs_f32_to_fp16(d);
        y[i].m = hs_f32_to_fp16(min);
        uint32_t qh = 0;
        for (int j = 0; j < HS_QK5_1 / 2; j++) {
            /* No clamp here in ggml either: (x - min) / d <= 31 up to rounding. */
            const int q0 = (uint8_t)((x[j] - min) * id + 0.5f);
            const int q1 = (uint8_t)((x[j + HS_QK5_1 / 2] - min) * id + 0.5f);
            y[i].qs[j] = (uint8_t)((q0 & 0x0f) | ((q1 & 0x0f) << 4));
            qh |= (uint32_t)((q0 >> 4) & 1) << j;
            qh |= (uint32_t)((q1 >> 4) & 1) << (j + HS_QK5_1 / 2);
        }
        memcpy(y[i].qh, &qh, 4);
    }
}

void hs_q5_1_to_float(const void *vx, float *y, int64_t n) {
    const hs_block_q5_1 *x = vx;
    for (int64_t i = 0; i < n / HS_QK5_1; i++, y += HS_QK5_1) {
        const float d = hs_fp16_to_f32(x[i].d), m = hs_fp16_to_f32(x[i].m);
        const uint32_t qh = load_qh(x[i].qh);
        for (int j = 0; j < HS_QK5_1; j++)
            y[j] = (float)q5_get(x[i].qs, qh, j) * d + m;
    }
}

void hs_q5_1_vec_dot_ref(int n, float *s, const void *vx, const void *vy) {
    assert(n % HS_QK5_1 == 0);
    const hs_block_q5_1 *x = vx;
    const hs_block_q8_1 *y = vy;
    float sum = 0.0f;
    for (int i = 0; i < n / HS_QK5_1; i++) {
        const uint32_t qh = load_qh(x[i].qh);
        int sumi = 0;
        for (int j = 0; j < HS_QK5_1; j++)
            sumi += q5_get(x[i].qs, qh, j) * y[i].qs[j];
        sum += (float)sumi * (hs_fp16_to_f32(x[i].d) * hs_fp16_to_f32(y[i].d)) +
               hs_fp16_to_f32(x[i].m) * hs_fp16_to_f32(y[i].s);
    }
    *s = sum;
}

/* ---------------------------------------------------------------- Q8_0 -- */

void hs_q8_0_from_float_ref(const float *x, void *vy, int64_t n) {
    assert(n % HS_QK8_0 == 0);
    hs_block_q8_0 *y = vy;
    for (int64_t i = 0; i < n / HS_QK8_0; i++, x += HS_QK8_0) {
        float amax = 0.0f;
        for (int j = 0; j < HS_QK8_0; j++)
            amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / 127.0f;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = hs_f32_to_fp16(d);
        for (int j = 0; j < HS_QK8_0; j++)
            y[i].qs[j] = (int8_t)roundf(x[j] * id);
    }
}

void hs_q8_0_to_float(const void *vx, float *y, int64_t n) {
    const hs_block_q8_0 *x = vx;
    for (int64_t i = 0; i < n / HS_QK8_0; i++, y += HS_QK8_0) {
        const float d = hs_fp16_to_f32(x[i].d);
        for (int j = 0; j < HS_QK8_0; j++)
            y[j] = (float)x[i].qs[j] * d;
    }
}

void hs_q8_0_vec_dot_ref(int n, float *s, const void *vx, const void *vy) {
    assert(n % HS_QK8_0 == 0);
    const hs_block_q8_0 *x = vx, *y = vy;
    float sum = 0.0f;
    for (int i = 0; i < n / HS_QK8_0; i++) {
        int sumi = 0;
        for (int j = 0; j < HS_QK8_0; j++)
            sumi += x[i].qs[j] * y[i].qs[j];
        sum += (float)sumi * (hs_fp16_to_f32(x[i].d) * hs_fp16_to_f32(y[i].d));
    }
    *s = sum;
}

/* ---------------------------------------------------------------- Q8_1 -- */

void hs_q8_1_from_float_ref(const float *x, void *vy, int64_t n) {
    assert(n % HS_QK8_1 == 0);
    hs_block_q8_1 *y = vy;
    for (int64_t i = 0; i < n / HS_QK8_1; i++, x += HS_QK8_1) {
        float amax = 0.0f;
        for (int j = 0; j < HS_QK8_1; j++)
            amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / 127.0f;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = hs_f32_to_fp16(d);
        int sum = 0;
        for (int j = 0; j < HS_QK8_1; j++) {
            y[i].qs[j] = (int8_t)roundf(x[j] * id);
            sum += y[i].qs[j];
        }
        /* s uses the float d, not the rounded half, as ggml does. */
        y[i].s = hs_f32_to_fp16((float)sum * d);
    }
}

void hs_q8_1_to_float(const void *vx, float *y, int64_t n) {
    const hs_block_q8_1 *x = vx;
    for (int64_t i = 0; i < n / HS_QK8_1; i++, y += HS_QK8_1) {
        const float d = hs_fp16_to_f32(x[i].d);
        for (int j = 0; j < HS_QK8_1; j++)
            y[j] = (float)x[i].qs[j] * d;
    }
}

void hs_q8_1_vec_dot_ref(int n, float *s, const void *vx, const void *vy) {
    assert(n % HS_QK8_1 == 0);
    const hs_block_q8_1 *x = vx, *y = vy;
    float sum = 0.0f;
    for (int i = 0; i < n / HS_QK8_1; i++) {
        int sumi = 0;
        for (int j = 0; j < HS_QK8_1; j++)
            sumi += x[i].qs[j] * y[i].qs[j];
        sum += (float)sumi * (hs_fp16_to_f32(x[i].d) * hs_fp16_to_f32(y[i].d));
    }
    *s = sum;
}
