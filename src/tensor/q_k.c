/* The K-quants (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K) and their activation type Q8_K:
 * scalar reference kernels.
 *
 * A K-quant block covers 256 weights ("super-block") cut into sub-blocks of 16
 * or 32 that each carry a small integer scale (and, for Q2_K/Q4_K/Q5_K, a
 * min), and those are scaled by one or two halves per super-block. The
 * layouts are ggml's (ggml-common.h), documented at the structs in
 * qtype_impl.h.
 *
 * The quantizers reproduce llama.cpp's reference quantizers
 * (quantize_row_q*_K_ref in ggml-quants.c, the path `llama-quantize` takes
 * without an importance matrix) operation for operation, so a file quantized
 * here is byte-identical to one quantized there. That is why the float
 * expressions below keep ggml's order of evaluation (a*b*c is (a*b)*c), why
 * a cast to uint8_t or int8_t sits where ggml's assignment truncates, and why
 * a sub-block whose requantization scale is zero keeps the levels of its
 * first fit: all of it changes bytes. It also relies on the C11 default of
 * no floating-point contraction (this file is built without -mfma, and GCC in
 * ISO C mode does not contract), as ggml-base is built.
 *
 * The dot products compute, per super-block, the exact integer sums of
 * scale * q * y and min * bsum, and combine them in float with the block's
 * halves: sum += yd * (d * sumi - dmin * summ). */
#include "tensor/qtype_impl.h"

#include <math.h>
#include <string.h>

/* ggml's GROUP_MAX_EPS: a group whose largest magnitude is below it is zero. */
#define GROUP_MAX_EPS 1e-15f

static inline int imin(int a, int b)
{
    return a < b ? a : b;
}
static inline int imax(int a, int b)
{
    return a > b ? a : b;
}

/* Round to nearest, ties to even, by adding 1.5 * 2^23: the float's low
 * mantissa bits then hold the integer (valid for |f| < 2^22). ggml asserts
 * that range; files are written with asserts off, so an out-of-range value
 * gives the same (meaningless but deterministic) bits here as there. */
static inline int nearest_int(float f)
{
    float v = f + 12582912.0f;
    int32_t i;
    memcpy(&i, &v, sizeof(i));
    return (i & 0x007fffff) - 0x00400000;
}

/* ------------------------------------------------------ shared fitting -- */

/* Symmetric fit of n values to levels [-nmax, nmax), weighted by x^2
 * (ggml's make_qx_quants with rmse_type 1 and no importance weights): start
 * from the scale that maps the largest magnitude to -nmax, then try 18 nearby
 * scales and keep the one with the best weighted least-squares error.
 * L receives level + nmax; returns the scale. */
static float fit_symmetric(int n, int nmax, const float *x, int8_t *L)
{
    float max = 0.0f, amax = 0.0f;
    for (int i = 0; i < n; i++) {
        const float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    float iscale = (float)-nmax / max;
    float sumlx = 0.0f, suml2 = 0.0f;
    for (int i = 0; i < n; i++) {
        int l = imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i])));
        L[i] = (int8_t)(l + nmax);
        const float w = x[i] * x[i];
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0)
            continue;
        iscale = -((float)nmax + 0.1f * (float)is) / max;
        sumlx = suml2 = 0.0f;
        for (int i = 0; i < n; i++) {
            const int l = imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i])));
            const float w = x[i] * x[i];
            sumlx += w * x[i] * (float)l;
            suml2 += w * (float)l * (float)l;
        }
        if (suml2 > 0.0f && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++)
                L[i] = (int8_t)(nmax + imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i]))));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* Q3_K's symmetric fit (ggml's make_q3_quants with do_rmse): levels
 * [-nmax, nmax), weighted by x^2, improved by moving one level at a time
 * while the weighted error drops (at most 5 passes). L receives level + nmax
 * (all zero for an all-zero group); returns the scale. */
static float fit_q3(int n, int nmax, const float *x, int8_t *L)
{
    float max = 0.0f, amax = 0.0f;
    for (int i = 0; i < n; i++) {
        const float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    const float iscale = (float)-nmax / max;
    float sumlx = 0.0f, suml2 = 0.0f;
    for (int i = 0; i < n; i++) {
        const int l = imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i])));
        L[i] = (int8_t)l;
        const float w = x[i] * x[i];
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    for (int itry = 0; itry < 5; itry++) {
        int n_changed = 0;
        for (int i = 0; i < n; i++) {
            const float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * (float)L[i];
            if (slx > 0.0f) {
                float sl2 = suml2 - w * (float)L[i] * (float)L[i];
                const int new_l = imax(-nmax, imin(nmax - 1, nearest_int(x[i] * sl2 / slx)));
                if (new_l != L[i]) {
                    slx += w * x[i] * (float)new_l;
                    sl2 += w * (float)new_l * (float)new_l;
                    if (sl2 > 0.0f && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (int8_t)new_l;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed++;
                    }
                }
            }
        }
        if (!n_changed)
            break;
    }
    for (int i = 0; i < n; i++)
        L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/* Asymmetric fit x ~ scale * l - the_min, l in [0, nmax], with weights
 * (ggml's make_qkx2_quants): start from the range [min(0, min x), max x],
 * then for nstep+1 candidate scales solve the weighted least-squares scale
 * and min for the resulting levels, keeping the candidate with the smallest
 * weighted error (absolute when use_mad, squared otherwise). The min is
 * never above 0, so the_min >= 0 is what gets subtracted. */
static float fit_scale_min(int n, int nmax, const float *x, const float *weights, uint8_t *L, float *the_min,
                           uint8_t *Laux, float rmin, float rdelta, int nstep, bool use_mad)
{
    float min = x[0], max = x[0];
    float sum_w = weights[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min)
            min = x[i];
        if (x[i] > max)
            max = x[i];
        const float w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0.0f)
        min = 0.0f;
    if (max == min) {
        memset(L, 0, (size_t)n);
        *the_min = -min;
        return 0.0f;
    }
    float iscale = (float)nmax / (max - min);
    float scale = 1.0f / iscale;
    float best_error = 0.0f;
    for (int i = 0; i < n; i++) {
        const int l = nearest_int(iscale * (x[i] - min));
        L[i] = (uint8_t)imax(0, imin(nmax, l));
        float diff = scale * (float)L[i] + min - x[i];
        diff = use_mad ? fabsf(diff) : diff * diff;
        best_error += weights[i] * diff;
    }
    if (nstep < 1) {
        *the_min = -min;
        return scale;
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * (float)is + (float)nmax) / (max - min);
        float sum_l = 0.0f, sum_l2 = 0.0f, sum_xl = 0.0f;
        for (int i = 0; i < n; i++) {
            const int l = imax(0, imin(nmax, nearest_int(iscale * (x[i] - min))));
            Laux[i] = (uint8_t)l;
            const float w = weights[i];
            sum_l += w * (float)l;
            sum_l2 += w * (float)l * (float)l;
            sum_xl += w * (float)l * x[i];
        }
        const float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0.0f) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0.0f) {
                this_min = 0.0f;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0.0f;
            for (int i = 0; i < n; i++) {
                float diff = this_scale * (float)Laux[i] + this_min - x[i];
                diff = use_mad ? fabsf(diff) : diff * diff;
                cur_error += weights[i] * diff;
            }
            if (cur_error < best_error) {
                memcpy(L, Laux, (size_t)n);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

/* Packs 256 2-bit levels: byte l of each 32-byte group g holds levels
 * 128g + l, +32, +64, +96 in bits 0-1, 2-3, 4-5, 6-7 (Q2_K and Q3_K). */
static void pack_2bit(uint8_t qs[64], const uint8_t *L)
{
    for (int j = 0; j < HS_QK_K; j += 128)
        for (int l = 0; l < 32; l++)
            qs[j / 4 + l] =
                (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
}

/* The 6-bit scales and mins of Q4_K/Q5_K, packed into 12 bytes: sub-blocks
 * 0-3 have their scale in bytes 0-3 and min in bytes 4-7 (low 6 bits);
 * sub-blocks 4-7 have the low 4 bits of scale and min in the nibbles of
 * bytes 8-11 and their top 2 bits in bits 6-7 of bytes 0-3 (scale) and
 * 4-7 (min). */
static void pack_scale_min(uint8_t s[12], const uint8_t ls[8], const uint8_t lm[8])
{
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            s[j] = ls[j];
            s[j + 4] = lm[j];
        } else {
            s[j + 4] = (uint8_t)((ls[j] & 0x0f) | ((lm[j] & 0x0f) << 4));
            s[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
            s[j] |= (uint8_t)((lm[j] >> 4) << 6);
        }
    }
}

/* --------------------------------------------------------------- Q2_K -- */

void hs_q2_k_from_float_ref(const float *x, void *vy, int64_t n)
{
    assert(n % HS_QK_K == 0);
    hs_block_q2_k *y = vy;
    uint8_t L[HS_QK_K], Laux[16];
    float weights[16], mins[16], scales[16];
    const float q4scale = 15.0f;
    for (int64_t i = 0; i < n / HS_QK_K; i++, x += HS_QK_K) {
        float max_scale = 0.0f, max_min = 0.0f;
        for (int j = 0; j < 16; j++) {
            for (int l = 0; l < 16; l++)
                weights[l] = fabsf(x[16 * j + l]);
            scales[j] =
                fit_scale_min(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f, 15, true);
            if (scales[j] > max_scale)
                max_scale = scales[j];
            if (mins[j] > max_min)
                max_min = mins[j];
        }
        if (max_scale > 0.0f) {
            const float iscale = q4scale / max_scale;
            for (int j = 0; j < 16; j++)
                y[i].scales[j] = (uint8_t)nearest_int(iscale * scales[j]);
            y[i].d = hs_f32_to_fp16(max_scale / q4scale);
        } else {
            memset(y[i].scales, 0, 16);
            y[i].d = hs_f32_to_fp16(0.0f);
        }
        if (max_min > 0.0f) {
            const float iscale = q4scale / max_min;
            for (int j = 0; j < 16; j++)
                y[i].scales[j] |= (uint8_t)((unsigned)nearest_int(iscale * mins[j]) << 4);
            y[i].dmin = hs_f32_to_fp16(max_min / q4scale);
        } else {
            y[i].dmin = hs_f32_to_fp16(0.0f);
        }
        /* Requantize against the scales as stored (rounded to 4 bits and a half). */
        for (int j = 0; j < 16; j++) {
            const float d = hs_fp16_to_f32(y[i].d) * (float)(y[i].scales[j] & 0x0f);
            if (d == 0.0f)
                continue;
            const float dm = hs_fp16_to_f32(y[i].dmin) * (float)(y[i].scales[j] >> 4);
            for (int l = 0; l < 16; l++)
                L[16 * j + l] = (uint8_t)imax(0, imin(3, nearest_int((x[16 * j + l] + dm) / d)));
        }
        pack_2bit(y[i].qs, L);
    }
}

void hs_q2_k_to_float(const void *vx, float *y, int64_t n)
{
    const hs_block_q2_k *x = vx;
    for (int64_t i = 0; i < n / HS_QK_K; i++) {
        const float d = hs_fp16_to_f32(x[i].d);
        const float dmin = hs_fp16_to_f32(x[i].dmin);
        for (int k = 0; k < HS_QK_K; k++) {
            /* element k: group k/128, byte k%32 of it, bit pair (k%128)/32 */
            const int q = (x[i].qs[(k / 128) * 32 + k % 32] >> (2 * ((k % 128) / 32))) & 3;
            const uint8_t sc = x[i].scales[k / 16];
            *y++ = d * (float)(sc & 0x0f) * (float)q - dmin * (float)(sc >> 4);
        }
    }
}

void hs_q2_k_vec_dot_ref(int n, float *s, const void *vx, const void *vy)
{
    assert(n % HS_QK_K == 0);
    const hs_block_q2_k *x = vx;
    const hs_block_q8_k *y = vy;
    float sum = 0.0f;
    for (int i = 0; i < n / HS_QK_K; i++) {
        int sumi = 0, summ = 0;
        for (int j = 0; j < 16; j++) {
            int dot = 0;
            for (int l = 0; l < 16; l++) {
                const int k = 16 * j + l;
                const int q = (x[i].qs[(k / 128) * 32 + k % 32] >> (2 * ((k % 128) / 32))) & 3;
                dot += q * y[i].qs[k];
            }
            sumi += (x[i].scales[j] & 0x0f) * dot;
            summ += (x[i].scales[j] >> 4) * y[i].bsums[j];
        }
        const float yd = y[i].d;
        sum += yd * hs_fp16_to_f32(x[i].d) * (float)sumi - yd * hs_fp16_to_f32(x[i].dmin) * (float)summ;
    }
    *s = sum;
}

/* --------------------------------------------------------------- Q3_K -- */

/* Signed 6-bit scale j of a Q3_K block: low 4 bits in the nibbles of bytes
 * 0-7 (j < 8: low nibble of byte j; else high nibble of byte j-8), top 2
 * bits in bits 2(j/4)..2(j/4)+1 of byte 8 + j%4; stored with a +32 bias. */
static int q3_k_scale(const uint8_t s[12], int j)
{
    const int lo = j < 8 ? s[j] & 0x0f : s[j - 8] >> 4;
    const int hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
    return (lo | (hi << 4)) - 32;
}

void hs_q3_k_from_float_ref(const float *x, void *vy, int64_t n)
{
    assert(n % HS_QK_K == 0);
    hs_block_q3_k *y = vy;
    int8_t L[HS_QK_K];
    float scales[16];
    for (int64_t i = 0; i < n / HS_QK_K; i++, x += HS_QK_K) {
        float max_scale = 0.0f, amax = 0.0f;
        for (int j = 0; j < 16; j++) {
            scales[j] = fit_q3(16, 4, x + 16 * j, L + 16 * j);
            const float a = fabsf(scales[j]);
            if (a > amax) {
                amax = a;
                max_scale = scales[j];
            }
        }
        memset(y[i].scales, 0, 12);
        if (max_scale != 0.0f) {
            const float iscale = -32.0f / max_scale;
            for (int j = 0; j < 16; j++) {
                int8_t l = (int8_t)nearest_int(iscale * scales[j]);
                l = (int8_t)(imax(-32, imin(31, l)) + 32);
                if (j < 8)
                    y[i].scales[j] = (uint8_t)(l & 0x0f);
                else
                    y[i].scales[j - 8] |= (uint8_t)((l & 0x0f) << 4);
                y[i].scales[j % 4 + 8] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
            }
            y[i].d = hs_f32_to_fp16(1.0f / iscale);
        } else {
            y[i].d = hs_f32_to_fp16(0.0f);
        }
        for (int j = 0; j < 16; j++) {
            const float d = hs_fp16_to_f32(y[i].d) * (float)q3_k_scale(y[i].scales, j);
            if (d == 0.0f)
                continue;
            for (int l = 0; l < 16; l++)
                L[16 * j + l] = (int8_t)(imax(-4, imin(3, nearest_int(x[16 * j + l] / d))) + 4);
        }
        /* Bit 2 of level k goes to bit k/32 of hmask[k%32]; the low 2 bits pack like Q2_K. */
        memset(y[i].hmask, 0, 32);
        uint8_t low[HS_QK_K];
        for (int k = 0; k < HS_QK_K; k++) {
            if (L[k] > 3) {
                y[i].hmask[k % 32] |= (uint8_t)(1u << (k / 32));
                L[k] = (int8_t)(L[k] - 4);
            }
            low[k] = (uint8_t)L[k];
        }
        pack_2bit(y[i].qs, low);
    }
}

/* Level of element k of a Q3_K block, in [-4, 3]: 2 bits as in Q2_K, minus 4
 * unless its hmask bit is set. */
static int q3_k_level(const hs_block_q3_k *b, int k)
{
    const int lo = (b->qs[(k / 128) * 32 + k % 32] >> (2 * ((k % 128) / 32))) & 3;
    return lo - ((b->hmask[k % 32] >> (k / 32)) & 1 ? 0 : 4);
}

void hs_q3_k_to_float(const void *vx, float *y, int64_t n)
{
    const hs_block_q3_k *x = vx;
    for (int64_t i = 0; i < n / HS_QK_K; i++) {
        const float d = hs_fp16_to_f32(x[i].d);
        for (int k = 0; k < HS_QK_K; k++)
            *y++ = d * (float)q3_k_scale(x[i].scales, k / 16) * (float)q3_k_level(&x[i], k);
    }
}

void hs_q3_k_vec_dot_ref(int n, float *s, const void *vx, const void *vy)
{
    assert(n % HS_QK_K == 0);
    const hs_block_q3_k *x = vx;
    const hs_block_q8_k *y = vy;
    float sum = 0.0f;
    for (int i = 0; i < n / HS_QK_K; i++) {
        int sumi = 0;
        for (int j = 0; j < 16; j++) {
            int dot = 0;
            for (int l = 0; l < 16; l++)
                dot += q3_k_level(&x[i], 16 * j + l) * y[i].qs[16 * j + l];
            sumi += q3_k_scale(x[i].scales, j) * dot;
        }
        sum += y[i].d * hs_fp16_to_f32(x[i].d) * (float)sumi;
    }
    *s = sum;
}

/* ---------------------------------------------------------- Q4_K, Q5_K -- */

void hs_q_k_scale_min(const uint8_t s[12], int j, int *sc, int *m)
{
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4);
        *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

/* The common part of the Q4_K and Q5_K quantizers: fit each 32-value
 * sub-block (weights |x| + rms of the sub-block), quantize the 8 scales and 8
 * mins to 6 bits against their maxima, store them with the block's halves,
 * and requantize the levels (0..nmax) against what was stored. */
static void quantize_scale_min_6bit(const float *x, int nmax, float rmin, int nstep, hs_fp16 *d_out,
                                    hs_fp16 *dmin_out, uint8_t s[12], uint8_t L[HS_QK_K])
{
    uint8_t Laux[32];
    float weights[32], mins[8], scales[8];
    float max_scale = 0.0f, max_min = 0.0f;
    for (int j = 0; j < 8; j++) {
        float sum_x2 = 0.0f;
        for (int l = 0; l < 32; l++)
            sum_x2 += x[32 * j + l] * x[32 * j + l];
        const float av_x = sqrtf(sum_x2 / 32.0f);
        for (int l = 0; l < 32; l++)
            weights[l] = av_x + fabsf(x[32 * j + l]);
        scales[j] = fit_scale_min(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, rmin, 0.1f,
                                  nstep, false);
        if (scales[j] > max_scale)
            max_scale = scales[j];
        if (mins[j] > max_min)
            max_min = mins[j];
    }
    const float inv_scale = max_scale > 0.0f ? 63.0f / max_scale : 0.0f;
    const float inv_min = max_min > 0.0f ? 63.0f / max_min : 0.0f;
    uint8_t ls[8], lm[8];
    for (int j = 0; j < 8; j++) {
        ls[j] = (uint8_t)nearest_int(inv_scale * scales[j]);
        lm[j] = (uint8_t)nearest_int(inv_min * mins[j]);
        ls[j] = (uint8_t)imin(63, ls[j]);
        lm[j] = (uint8_t)imin(63, lm[j]);
    }
    memset(s, 0, 12);
    pack_scale_min(s, ls, lm);
    *d_out = hs_f32_to_fp16(max_scale / 63.0f);
    *dmin_out = hs_f32_to_fp16(max_min / 63.0f);
    for (int j = 0; j < 8; j++) {
        int sc, m;
        hs_q_k_scale_min(s, j, &sc, &m);
        const float d = hs_fp16_to_f32(*d_out) * (float)sc;
        if (d == 0.0f)
            continue;
        const float dm = hs_fp16_to_f32(*dmin_out) * (float)m;
        for (int l = 0; l < 32; l++)
            L[32 * j + l] = (uint8_t)imax(0, imin(nmax, nearest_int((x[32 * j + l] + dm) / d)));
    }
}

void hs_q4_k_from_float_ref(const float *x, void *vy, int64_t n)
{
    assert(n % HS_QK_K == 0);
    hs_block_q4_k *y = vy;
    uint8_t L[HS_QK_K];
    for (int64_t i = 0; i < n / HS_QK_K; i++, x += HS_QK_K) {
        quantize_scale_min_6bit(x, 15, -1.0f, 20, &y[i].d, &y[i].dmin, y[i].scales, L);
        /* qs[32g + l]: level 64g + l in the low nibble, 64g + 32 + l in the high one */
        for (int g = 0; g < 4; g++)
            for (int l = 0; l < 32; l++)
                y[i].qs[32 * g + l] = (uint8_t)(L[64 * g + l] | (L[64 * g + 32 + l] << 4));
    }
}

static inline int q4_k_level(const hs_block_q4_k *b, int k)
{
    const uint8_t byte = b->qs[32 * (k / 64) + k % 32];
    return (k % 64) < 32 ? byte & 0x0f : byte >> 4;
}

void hs_q4_k_to_float(const void *vx, float *y, int64_t n)
{
    const hs_block_q4_k *x = vx;
    for (int64_t i = 0; i < n / HS_QK_K; i++) {
        const float d = hs_fp16_to_f32(x[i].d);
        const float dmin = hs_fp16_to_f32(x[i].dmin);
        for (int j = 0; j < 8; j++) {
            int sc, m;
            hs_q_k_scale_min(x[i].scales, j, &sc, &m);
            const float d1 = d * (float)sc, m1 = dmin * (float)m;
            for (int l = 0; l < 32; l++)
                *y++ = d1 * (float)q4_k_level(&x[i], 32 * j + l) - m1;
        }
    }
}

void hs_q4_k_vec_dot_ref(int n, float *s, const void *vx, const void *vy)
{
    assert(n % HS_QK_K == 0);
    const hs_block_q4_k *x = vx;
    const hs_block_q8_k *y = vy;
    float sum = 0.0f;
    for (int i = 0; i < n / HS_QK_K; i++) {
        int sumi = 0, summ = 0;
        for (int j = 0; j < 8; j++) {
            int sc, m, dot = 0;
            hs_q_k_scale_min(x[i].scales, j, &sc, &m);
            for (int l = 0; l < 32; l++)
                dot += q4_k_level(&x[i], 32 * j + l) * y[i].qs[32 * j + l];
            sumi += sc * dot;
            summ += m * (y[i].bsums[2 * j] + y[i].bsums[2 * j + 1]);
        }
        const float yd = y[i].d;
        sum += yd * hs_fp16_to_f32(x[i].d) * (float)sumi - yd * hs_fp16_to_f32(x[i].dmin) * (float)summ;
    }
    *s = sum;
}

/* The float steps of hs_q4_k_amxg_gemm (q_k_amxg_avx512.c) and
 * hs_q4_k_vec_dot_amxg_avx512, which both must reproduce bit for bit: per
 * parity p, the sub-blocks j = p, p + 2, p + 4, p + 6 give the exact
 * integers I_p = sum(sc_j * dot_j) and M_p = sum(m_j * B_j); per block
 * ai_p = fma(I_p, d * yd, ai_p) and am_p = fma(M_p, -dmin * yd, am_p); the
 * result is (ai_0 + ai_1) + (am_0 + am_1). */
void hs_q4_k_amxg_ref(int n, float *s, const void *vx, const void *vy)
{
    assert(n % HS_QK_K == 0);
    const hs_block_q4_k *x = vx;
    const hs_block_q8_k *y = vy;
    float ai[2] = {0.0f, 0.0f}, am[2] = {0.0f, 0.0f};
    for (int i = 0; i < n / HS_QK_K; i++) {
        const float yd = y[i].d;
        const float dd = hs_fp16_to_f32(x[i].d) * yd, dm = -hs_fp16_to_f32(x[i].dmin) * yd;
        for (int p = 0; p < 2; p++) {
            int sumi = 0, summ = 0;
            for (int j = p; j < 8; j += 2) {
                int sc, m, dot = 0;
                hs_q_k_scale_min(x[i].scales, j, &sc, &m);
                for (int l = 0; l < 32; l++)
                    dot += q4_k_level(&x[i], 32 * j + l) * y[i].qs[32 * j + l];
                sumi += sc * dot;
                summ += m * (y[i].bsums[2 * j] + y[i].bsums[2 * j + 1]);
            }
            ai[p] = fmaf((float)sumi, dd, ai[p]);
            am[p] = fmaf((float)summ, dm, am[p]);
        }
    }
    *s = (ai[0] + ai[1]) + (am[0] + am[1]);
}

void hs_q5_k_from_float_ref(const float *x, void *vy, int64_t n)
{
    assert(n % HS_QK_K == 0);
    hs_block_q5_k *y = vy;
    uint8_t L[HS_QK_K];
    for (int64_t i = 0; i < n / HS_QK_K; i++, x += HS_QK_K) {
        quantize_scale_min_6bit(x, 31, -0.5f, 15, &y[i].d, &y[i].dmin, y[i].scales, L);
        /* Low 4 bits as in Q4_K; bit 4 of level 64g + l (+32) is bit 2g (2g+1) of qh[l]. */
        memset(y[i].qh, 0, 32);
        for (int g = 0; g < 4; g++) {
            for (int l = 0; l < 32; l++) {
                const int l1 = L[64 * g + l], l2 = L[64 * g + 32 + l];
                y[i].qh[l] |= (uint8_t)(((l1 >> 4) << (2 * g)) | ((l2 >> 4) << (2 * g + 1)));
                y[i].qs[32 * g + l] = (uint8_t)((l1 & 0x0f) | ((l2 & 0x0f) << 4));
            }
        }
    }
}

static inline int q5_k_level(const hs_block_q5_k *b, int k)
{
    const uint8_t byte = b->qs[32 * (k / 64) + k % 32];
    const int lo = (k % 64) < 32 ? byte & 0x0f : byte >> 4;
    return lo | (((b->qh[k % 32] >> (k / 32)) & 1) << 4);
}

void hs_q5_k_to_float(const void *vx, float *y, int64_t n)
{
    const hs_block_q5_k *x = vx;
    for (int64_t i = 0; i < n / HS_QK_K; i++) {
        const float d = hs_fp16_to_f32(x[i].d);
        const float dmin = hs_fp16_to_f32(x[i].dmin);
        for (int j = 0; j < 8; j++) {
            int sc, m;
            hs_q_k_scale_min(x[i].scales, j, &sc, &m);
            const float d1 = d * (float)sc, m1 = dmin * (float)m;
            for (int l = 0; l < 32; l++)
                *y++ = d1 * (float)q5_k_level(&x[i], 32 * j + l) - m1;
        }
    }
}

void hs_q5_k_vec_dot_ref(int n, float *s, const void *vx, const void *vy)
{
    assert(n % HS_QK_K == 0);
    const hs_block_q5_k *x = vx;
    const hs_block_q8_k *y = vy;
    float sum = 0.0f;
    for (int i = 0; i < n / HS_QK_K; i++) {
        int sumi = 0, summ = 0;
        for (int j = 0; j < 8; j++) {
            int sc, m, dot = 0;
            hs_q_k_scale_min(x[i].scales, j, &sc, &m);
            for (int l = 0; l < 32; l++)
                dot += q5_k_level(&x[i], 32 * j + l) * y[i].qs[32 * j + l];
            sumi += sc * dot;
            summ += m * (y[i].bsums[2 * j] + y[i].bsums[2 * j + 1]);
        }
        const float yd = y[i].d;
        sum += yd * hs_fp16_to_f32(x[i].d) * (float)sumi - yd * hs_fp16_to_f32(x[i].dmin) * (float)summ;
    }
    *s = sum;
}

/* --------------------------------------------------------------- Q6_K -- */

void hs_q6_k_from_float_ref(const float *x, void *vy, int64_t n)
{
    assert(n % HS_QK_K == 0);
    hs_block_q6_k *y = vy;
    int8_t L[HS_QK_K];
    float scales[16];
    for (int64_t i = 0; i < n / HS_QK_K; i++, x += HS_QK_K) {
        float max_scale = 0.0f, max_abs_scale = 0.0f;
        for (int j = 0; j < 16; j++) {
            scales[j] = fit_symmetric(16, 32, x + 16 * j, L + 16 * j);
            const float a = fabsf(scales[j]);
            if (a > max_abs_scale) {
                max_abs_scale = a;
                max_scale = scales[j];
            }
        }
        if (max_abs_scale < GROUP_MAX_EPS) {
            memset(&y[i], 0, sizeof(y[i]));
            continue;
        }
        const float iscale = -128.0f / max_scale;
        y[i].d = hs_f32_to_fp16(1.0f / iscale);
        for (int j = 0; j < 16; j++)
            y[i].scales[j] = (int8_t)imin(127, nearest_int(iscale * scales[j]));
        for (int j = 0; j < 16; j++) {
            const float d = hs_fp16_to_f32(y[i].d) * (float)y[i].scales[j];
            if (d == 0.0f)
                continue;
            for (int l = 0; l < 16; l++)
                L[16 * j + l] = (int8_t)(imax(-32, imin(31, nearest_int(x[16 * j + l] / d))) + 32);
        }
        /* Per 128-value half h: ql[64h + l] holds levels 128h + l (low nibble)
         * and +64 (high); ql[64h + 32 + l] holds +32 and +96; the top 2 bits of
         * +0, +32, +64, +96 are bit pairs 0-1 .. 6-7 of qh[32h + l]. */
        for (int h = 0; h < 2; h++) {
            const int8_t *Lh = L + 128 * h;
            for (int l = 0; l < 32; l++) {
                y[i].ql[64 * h + l] = (uint8_t)((Lh[l] & 0x0f) | ((Lh[l + 64] & 0x0f) << 4));
                y[i].ql[64 * h + 32 + l] = (uint8_t)((Lh[l + 32] & 0x0f) | ((Lh[l + 96] & 0x0f) << 4));
                y[i].qh[32 * h + l] = (uint8_t)((Lh[l] >> 4) | ((Lh[l + 32] >> 4) << 2) |
                                                ((Lh[l + 64] >> 4) << 4) | ((Lh[l + 96] >> 4) << 6));
            }
        }
    }
}

/* Level of element k of a Q6_K block, in [-32, 31]. */
static inline int q6_k_level(const hs_block_q6_k *b, int k)
{
    const int h = k / 128, r = k % 128, l = r % 32, quarter = r / 32;
    const uint8_t lbyte = b->ql[64 * h + 32 * (quarter & 1) + l];
    const int lo = quarter < 2 ? lbyte & 0x0f : lbyte >> 4;
    const int hi = (b->qh[32 * h + l] >> (2 * quarter)) & 3;
    return (lo | (hi << 4)) - 32;
}

void hs_q6_k_to_float(const void *vx, float *y, int64_t n)
{
    const hs_block_q6_k *x = vx;
    for (int64_t i = 0; i < n / HS_QK_K; i++) {
        const float d = hs_fp16_to_f32(x[i].d);
        for (int k = 0; k < HS_QK_K; k++)
            *y++ = d * (float)x[i].scales[k / 16] * (float)q6_k_level(&x[i], k);
    }
}

void hs_q6_k_vec_dot_ref(int n, float *s, const void *vx, const void *vy)
{
    assert(n % HS_QK_K == 0);
    const hs_block_q6_k *x = vx;
    const hs_block_q8_k *y = vy;
    float sum = 0.0f;
    for (int i = 0; i < n / HS_QK_K; i++) {
        int sumi = 0;
        for (int j = 0; j < 16; j++) {
            int dot = 0;
            for (int l = 0; l < 16; l++)
                dot += q6_k_level(&x[i], 16 * j + l) * y[i].qs[16 * j + l];
            sumi += x[i].scales[j] * dot;
        }
        sum += y[i].d * hs_fp16_to_f32(x[i].d) * (float)sumi;
    }
    *s = sum;
}

/* --------------------------------------------------------------- Q8_K -- */

/* d = max / -127 for the value of largest magnitude (sign kept, first on
 * ties), q = round(x / d) clamped to 127, bsums the sums of 16. ggml leaves
 * bsums unwritten for an all-zero block; here they are zero. */
void hs_q8_k_from_float_ref(const float *x, void *vy, int64_t n)
{
    assert(n % HS_QK_K == 0);
    hs_block_q8_k *y = vy;
    for (int64_t i = 0; i < n / HS_QK_K; i++, x += HS_QK_K) {
        float max = 0.0f, amax = 0.0f;
        for (int j = 0; j < HS_QK_K; j++) {
            const float ax = fabsf(x[j]);
            if (ax > amax) {
                amax = ax;
                max = x[j];
            }
        }
        if (amax == 0.0f) {
            memset(&y[i], 0, sizeof(y[i]));
            continue;
        }
        const float iscale = -127.0f / max;
        for (int j = 0; j < HS_QK_K; j++)
            y[i].qs[j] = (int8_t)imin(127, nearest_int(iscale * x[j]));
        for (int j = 0; j < 16; j++) {
            int sum = 0;
            for (int l = 0; l < 16; l++)
                sum += y[i].qs[16 * j + l];
            y[i].bsums[j] = (int16_t)sum;
        }
        y[i].d = 1.0f / iscale;
    }
}

void hs_q8_k_to_float(const void *vx, float *y, int64_t n)
{
    const hs_block_q8_k *x = vx;
    for (int64_t i = 0; i < n / HS_QK_K; i++)
        for (int j = 0; j < HS_QK_K; j++)
            *y++ = x[i].d * (float)x[i].qs[j];
}

void hs_q8_k_vec_dot_ref(int n, float *s, const void *vx, const void *vy)
{
    assert(n % HS_QK_K == 0);
    const hs_block_q8_k *x = vx;
    const hs_block_q8_k *y = vy;
    float sum = 0.0f;
    for (int i = 0; i < n / HS_QK_K; i++) {
        int sumi = 0;
        for (int j = 0; j < HS_QK_K; j++)
            sumi += x[i].qs[j] * y[i].qs[j];
        sum += x[i].d * y[i].d * (float)sumi;
    }
    *s = sum;
}
