/* tensor/q_k: the K-quants (Q2_K..Q6_K) and Q8_K, beyond what the generic
 * table walk in test_qtype.c checks.
 *  - Hand-built blocks: the test writes chosen halves, scales, mins and levels
 *    into the bytes at the offsets and bit positions that ggml-common.h
 *    documents, computes each weight from the format's formula, and checks
 *    to_float and every level's vec_dot against that.
 *  - Quantizer properties: an all-zero block, constant blocks, a block with
 *    one huge outlier, negative-only data; and llama.cpp's exact bytes for a
 *    fixed input (hashes taken from llama.cpp's own quantizers).
 *  - Round-trip RMSE relative to the data's range, per type, against limits
 *    derived from each format's step.
 *  - Every level's vec_dot against vec_dot_ref on 1, 3 and 33 super-blocks,
 *    including blocks at the extremes of every level and scale.
 *  - The gemm tiles against vec_dot for every tile shape.
 *  - hs_matmul's AMX path for Q4_K and Q6_K batches (Q8_0 activations)
 *    against double-precision dots, on 1 and 2 threads. */
#include "test_util.h"

#include "base/err.h"
#include "base/fp16.h"
#include "base/mem.h"
#include "base/rng.h"
#include "tensor/matmul.h"
#include "tensor/qtype.h"
#include "tensor/qtype_impl.h" /* hs_amx_enabled */

#include <float.h>
#include <math.h>
#include <string.h>

#define QK 256

static const int k_types[] = {HS_TYPE_Q2_K, HS_TYPE_Q3_K, HS_TYPE_Q4_K, HS_TYPE_Q5_K, HS_TYPE_Q6_K};
#define N_TYPES ((int)(sizeof k_types / sizeof k_types[0]))

/* Block sizes and byte offsets from ggml-common.h, written down here rather
 * than taken from hestia's structs, so that a layout mistake cannot cancel. */
enum {
    Q2_SCALES = 0,
    Q2_QS = 16,
    Q2_D = 80,
    Q2_DMIN = 82,
    Q2_SIZE = 84,
    Q3_HMASK = 0,
    Q3_QS = 32,
    Q3_SCALES = 96,
    Q3_D = 108,
    Q3_SIZE = 110,
    Q4_D = 0,
    Q4_DMIN = 2,
    Q4_SCALES = 4,
    Q4_QS = 16,
    Q4_SIZE = 144,
    Q5_D = 0,
    Q5_DMIN = 2,
    Q5_SCALES = 4,
    Q5_QH = 16,
    Q5_QS = 48,
    Q5_SIZE = 176,
    Q6_QL = 0,
    Q6_QH = 128,
    Q6_SCALES = 192,
    Q6_D = 208,
    Q6_SIZE = 210,
    Q8_D = 0,
    Q8_QS = 4,
    Q8_BSUMS = 260,
    Q8_SIZE = 292,
};

static void *xalloc(size_t n)
{
    void *p = hs_aligned_alloc(64, n ? n : 1);
    assert_non_null(p);
    return p;
}

static void put_half(uint8_t *p, float v)
{
    const hs_fp16 h = hs_f32_to_fp16(v);
    memcpy(p, &h, 2);
}

/* Every kernel level this machine runs for a type. */
static int levels(int type, const struct hs_qtype_kernels *out[3])
{
    int n = 0;
    for (int l = HS_CPU_REF; l <= HS_CPU_AVX512; l++) {
        const struct hs_qtype_kernels *k = hs_qtype_kernels_at(type, (enum hs_cpu_level)l);
        if (k)
            out[n++] = k;
    }
    return n;
}

/* ------------------------------------------------ hand-built blocks ---- */

/* A Q8_K row whose values the test knows: d and qs chosen, bsums summed. */
static void make_q8_k(uint8_t *b, float d, const int8_t q[QK])
{
    memset(b, 0, Q8_SIZE);
    memcpy(b + Q8_D, &d, 4);
    memcpy(b + Q8_QS, q, QK);
    for (int j = 0; j < 16; j++) {
        int16_t s = 0;
        for (int l = 0; l < 16; l++)
            s = (int16_t)(s + q[16 * j + l]);
        memcpy(b + Q8_BSUMS + 2 * j, &s, 2);
    }
}

/* Q2_K and Q3_K store 2-bit fields in two 32-byte groups: field k sits in
 * byte 32 * (k / 128) + k % 32, at bit 2 * ((k % 128) / 32). */
static void put_2bit(uint8_t *qs, int k, int v)
{
    qs[32 * (k / 128) + k % 32] |= (uint8_t)((v & 3) << (2 * ((k % 128) / 32)));
}

/* Q4_K/Q5_K 6-bit scale and min of sub-block j: j < 4 in the low 6 bits of
 * bytes j (scale) and j + 4 (min); j >= 4 with low nibbles in byte j + 4
 * (scale low, min high) and the top two bits in bits 6-7 of bytes j - 4
 * (scale) and j (min). */
static void put_scale_min(uint8_t *s, int j, int sc, int m)
{
    if (j < 4) {
        s[j] |= (uint8_t)sc;
        s[j + 4] |= (uint8_t)m;
    } else {
        s[j + 4] |= (uint8_t)((sc & 15) | ((m & 15) << 4));
        s[j - 4] |= (uint8_t)((sc >> 4) << 6);
        s[j] |= (uint8_t)((m >> 4) << 6);
    }
}

/* Q4_K/Q5_K 4-bit field of element k: byte 32 * (k / 64) + k % 32, low
 * nibble for the first 32 of each 64, high nibble for the second. */
static void put_nibble(uint8_t *qs, int k, int v)
{
    qs[32 * (k / 64) + k % 32] |= (uint8_t)((v & 15) << ((k % 64) < 32 ? 0 : 4));
}

/* Fills `b` with a block of `type` built from chosen parameters and writes
 * the weight each element must decode to into w (double). `variant` picks
 * one of several parameter sets, extremes included. */
static void hand_block(int type, int variant, uint8_t *b, double *w)
{
    hs_rng r;
    hs_rng_seed(&r, 77 + (uint64_t)variant);
    const bool extreme = variant == 1;
    switch (type) {
    case HS_TYPE_Q2_K: {
        memset(b, 0, Q2_SIZE);
        const float d = extreme ? 1.0f : 0.375f, dmin = extreme ? 2.0f : 0.125f;
        put_half(b + Q2_D, d);
        put_half(b + Q2_DMIN, dmin);
        for (int j = 0; j < 16; j++) {
            const int sc = extreme ? 15 : (j * 7 + variant) % 16, m = extreme ? 15 : (j * 5 + 3) % 16;
            b[Q2_SCALES + j] = (uint8_t)(sc | (m << 4));
            for (int l = 0; l < 16; l++) {
                const int k = 16 * j + l, q = extreme ? 3 : (int)(hs_rng_u64(&r) % 4);
                put_2bit(b + Q2_QS, k, q);
                w[k] = (double)d * sc * q - (double)dmin * m;
            }
        }
        break;
    }
    case HS_TYPE_Q3_K: {
        memset(b, 0, Q3_SIZE);
        const float d = extreme ? 1.0f : 0.25f;
        put_half(b + Q3_D, d);
        for (int j = 0; j < 16; j++) {
            /* signed 6-bit scale, stored + 32: low nibble in byte j (j < 8,
             * low half) or j - 8 (high half); top 2 bits at bit 2 * (j / 4) of
             * byte 8 + j % 4 */
            const int sc = extreme ? (j % 2 ? 31 : -32) : (j * 11 + variant) % 64 - 32;
            const int biased = sc + 32;
            b[Q3_SCALES + (j < 8 ? j : j - 8)] |= (uint8_t)((biased & 15) << (j < 8 ? 0 : 4));
            b[Q3_SCALES + 8 + j % 4] |= (uint8_t)((biased >> 4) << (2 * (j / 4)));
            for (int l = 0; l < 16; l++) {
                const int k = 16 * j + l;
                const int q = extreme ? (l % 2 ? 3 : -4) : (int)(hs_rng_u64(&r) % 8) - 4;
                /* q = (2 low bits) - 4 + 4 * (hmask bit k / 32 of byte k % 32) */
                put_2bit(b + Q3_QS, k, (q + 4) & 3);
                if (q >= 0)
                    b[Q3_HMASK + k % 32] |= (uint8_t)(1u << (k / 32));
                w[k] = (double)d * sc * q;
            }
        }
        break;
    }
    case HS_TYPE_Q4_K:
    case HS_TYPE_Q5_K: {
        const bool five = type == HS_TYPE_Q5_K;
        const int size = five ? Q5_SIZE : Q4_SIZE, qmax = five ? 31 : 15;
        memset(b, 0, (size_t)size);
        const float d = extreme ? 1.0f : 0.0625f, dmin = extreme ? 1.0f : 0.03125f;
        put_half(b + Q4_D, d);
        put_half(b + Q4_DMIN, dmin);
        for (int j = 0; j < 8; j++) {
            const int sc = extreme ? 63 : (j * 9 + 20 + variant) % 64, m = extreme ? 63 : (j * 13 + 40) % 64;
            put_scale_min(b + Q4_SCALES, j, sc, m);
            for (int l = 0; l < 32; l++) {
                const int k = 32 * j + l;
                const int q = extreme ? qmax : (int)(hs_rng_u64(&r) % (uint64_t)(qmax + 1));
                put_nibble(b + (five ? Q5_QS : Q4_QS), k, q);
                /* Q5_K: bit 4 of element k is bit k / 32 of qh[k % 32] */
                if (five && q >= 16)
                    b[Q5_QH + k % 32] |= (uint8_t)(1u << (k / 32));
                w[k] = (double)d * sc * q - (double)dmin * m;
            }
        }
        break;
    }
    case HS_TYPE_Q6_K: {
        memset(b, 0, Q6_SIZE);
        const float d = extreme ? 1.0f : 0.0078125f;
        put_half(b + Q6_D, d);
        for (int j = 0; j < 16; j++) {
            const int sc = extreme ? (j % 2 ? 127 : -128) : (j * 37 + variant * 5) % 256 - 128;
            b[Q6_SCALES + j] = (uint8_t)(int8_t)sc;
            for (int l = 0; l < 16; l++) {
                const int k = 16 * j + l;
                const int q = extreme ? (l % 2 ? 31 : -32) : (int)(hs_rng_u64(&r) % 64) - 32;
                /* u = q + 32: per 128-element half h, element 128h + 32p + i keeps
                 * its low 4 bits in ql[64h + 32(p % 2) + i] (low nibble for
                 * p < 2, high for p >= 2) and its top 2 bits at bit 2p of
                 * qh[32h + i] */
                const int u = q + 32, h = k / 128, p = (k % 128) / 32, i = k % 32;
                b[Q6_QL + 64 * h + 32 * (p % 2) + i] |= (uint8_t)((u & 15) << (p < 2 ? 0 : 4));
                b[Q6_QH + 32 * h + i] |= (uint8_t)((u >> 4) << (2 * p));
                w[k] = (double)d * sc * q;
            }
        }
        break;
    }
    default:
        fail();
    }
}

static size_t block_size(int type)
{
    return hs_qtype(type)->bytes;
}

/* to_float decodes each hand-built weight to the value the format's formula
 * gives (rounded to float once). */
static void hand_built_blocks_decode_to_the_formula(void **state)
{
    (void)state;
    for (int ti = 0; ti < N_TYPES; ti++) {
        const int type = k_types[ti];
        for (int variant = 0; variant < 4; variant++) {
            uint8_t b[Q8_SIZE];
            double w[QK];
            float got[QK];
            hand_block(type, variant, b, w);
            hs_qtype(type)->to_float(b, got, QK);
            for (int k = 0; k < QK; k++)
                if (fabs((double)got[k] - w[k]) > 1e-6 * fabs(w[k]) + 1e-30)
                    fail_msg("%s variant %d element %d: %.9g, want %.9g", hs_qtype(type)->name, variant, k,
                             (double)got[k], w[k]);
        }
    }
    /* Q8_K: x = d * q */
    int8_t q[QK];
    for (int k = 0; k < QK; k++)
        q[k] = (int8_t)((k * 13) % 255 - 127);
    uint8_t b[Q8_SIZE];
    make_q8_k(b, 0.125f, q);
    float got[QK];
    hs_qtype(HS_TYPE_Q8_K)->to_float(b, got, QK);
    for (int k = 0; k < QK; k++)
        assert_true(got[k] == 0.125f * (float)q[k]);
}

/* Every level's vec_dot on hand-built blocks, extremes included (all levels
 * and scales at their limits, activations at +-127), against the formula. */
static void hand_built_blocks_dot_to_the_formula(void **state)
{
    (void)state;
    for (int ti = 0; ti < N_TYPES; ti++) {
        const int type = k_types[ti];
        const size_t bs = block_size(type);
        enum { NB = 3 };
        uint8_t *x = xalloc(bs * NB), *y = xalloc(Q8_SIZE * NB);
        double w[NB][QK];
        for (int act = 0; act < 3; act++) {
            for (int i = 0; i < NB; i++) {
                hand_block(type, i == 0 ? 1 : i + act, x + bs * (size_t)i, w[i]);
                int8_t q[QK];
                for (int k = 0; k < QK; k++)
                    q[k] = (int8_t)(act == 0   ? 127
                                    : act == 1 ? (k % 2 ? 127 : -127)
                                               : (k * 29 + i) % 255 - 127);
                make_q8_k(y + Q8_SIZE * (size_t)i, 0.5f + (float)i, q);
            }
            const struct hs_qtype_kernels *ks[3];
            const int nl = levels(type, ks);
            for (int l = 0; l < nl; l++) {
                for (int nb = 1; nb <= NB; nb++) {
                    double want_nb = 0.0, mag_nb = 0.0;
                    for (int i = 0; i < nb; i++) {
                        for (int k = 0; k < QK; k++) {
                            float yd;
                            memcpy(&yd, y + Q8_SIZE * (size_t)i + Q8_D, 4);
                            const int8_t yq = (int8_t)y[Q8_SIZE * (size_t)i + Q8_QS + k];
                            want_nb += w[i][k] * yd * yq;
                            mag_nb += fabs(w[i][k] * yd * yq);
                        }
                    }
                    float s = 0.0f;
                    ks[l]->vec_dot(nb * QK, &s, x, y);
                    /* float accumulation over a few blocks: 1e-6 of the magnitude */
                    if (fabs((double)s - want_nb) > 1e-6 * mag_nb)
                        fail_msg("%s/%s act %d nb %d: %.9g, want %.9g", hs_qtype(type)->name, ks[l]->impl,
                                 act, nb, (double)s, want_nb);
                }
            }
        }
        hs_aligned_free(x);
        hs_aligned_free(y);
    }
}

/* ------------------------------------------------ quantizer properties -- */

static void quantize_block(int type, const float *x, uint8_t *b, float *back)
{
    const struct hs_qtype *q = hs_qtype(type);
    q->from_float_ref(x, b, QK);
    q->to_float(b, back, QK);
}

/* All-zero input: every weight decodes to exactly 0 and the halves are 0. */
static void zero_block_stays_zero(void **state)
{
    (void)state;
    const int all[] = {HS_TYPE_Q2_K, HS_TYPE_Q3_K, HS_TYPE_Q4_K, HS_TYPE_Q5_K, HS_TYPE_Q6_K, HS_TYPE_Q8_K};
    float x[QK] = {0}, back[QK];
    for (int ti = 0; ti < 6; ti++) {
        uint8_t b[Q8_SIZE];
        memset(b, 0xa5, sizeof b);
        quantize_block(all[ti], x, b, back);
        for (int k = 0; k < QK; k++)
            assert_true(back[k] == 0.0f);
        const size_t bs = block_size(all[ti]);
        /* no scale, no level, no bsum: every byte is zero */
        for (size_t i = 0; i < bs; i++)
            assert_int_equal(b[i], 0);
    }
}

/* A constant block decodes to that constant within the rounding of the
 * half that carries it (2^-11 relative) and of the 6-bit scale grid. The
 * constants are large enough for the super-block halves (about c / (levels
 * x 64) for the finest type) to be normal halves: below 2^-14 a half keeps
 * fewer significant bits, in llama.cpp's files as here. */
static void constant_blocks_round_trip(void **state)
{
    (void)state;
    const float consts[] = {1.5f, -1.5f, 0.75f, -250.0f};
    for (int ti = 0; ti < N_TYPES; ti++) {
        for (int c = 0; c < 4; c++) {
            float x[QK], back[QK];
            uint8_t b[Q8_SIZE];
            for (int k = 0; k < QK; k++)
                x[k] = consts[c];
            quantize_block(k_types[ti], x, b, back);
            for (int k = 0; k < QK; k++)
                if (fabsf(back[k] - consts[c]) > 0.01f * fabsf(consts[c]))
                    fail_msg("%s constant %g: element %d decodes to %g", hs_qtype(k_types[ti])->name,
                             (double)consts[c], k, (double)back[k]);
        }
    }
}

/* One value 10^4 times the others: it survives within its sub-block's step
 * (range / levels, with slack for the scale grid), everything stays finite,
 * and the small values are off by at most their own magnitude (their
 * sub-blocks' scales may round to zero next to the outlier's). */
static void outlier_keeps_its_value(void **state)
{
    (void)state;
    const double levels_of[] = {3, 7, 15, 31, 63};
    hs_rng r;
    hs_rng_seed(&r, 5);
    for (int ti = 0; ti < N_TYPES; ti++) {
        for (int pos = 0; pos < QK; pos += 67) {
            float x[QK], back[QK];
            uint8_t b[Q8_SIZE];
            for (int k = 0; k < QK; k++)
                x[k] = 0.01f * (2.0f * hs_rng_f32(&r) - 1.0f);
            x[pos] = pos % 2 ? 100.0f : -100.0f;
            quantize_block(k_types[ti], x, b, back);
            /* one step of the outlier's sub-block, whose range is ~100 */
            const double step = 100.0 / levels_of[ti];
            if (fabs((double)back[pos] - x[pos]) > step)
                fail_msg("%s outlier at %d: %g decodes to %g", hs_qtype(k_types[ti])->name, pos,
                         (double)x[pos], (double)back[pos]);
            for (int k = 0; k < QK; k++) {
                assert_true(isfinite(back[k]));
                if (k == pos || (k / 16 == pos / 16) ||
                    (k_types[ti] >= HS_TYPE_Q4_K && k_types[ti] <= HS_TYPE_Q5_K && k / 32 == pos / 32))
                    continue; /* the outlier's own sub-block shares its coarse step */
                if (fabsf(back[k] - x[k]) > 0.021f)
                    fail_msg("%s outlier at %d: small value %d (%g) decodes to %g",
                             hs_qtype(k_types[ti])->name, pos, k, (double)x[k], (double)back[k]);
            }
        }
    }
}

/* Negative-only data on [-2, -1]: the types with mins (Q2_K, Q4_K, Q5_K)
 * carry the offset in dmin * m and spend their levels on the range 1; the
 * symmetric ones (Q3_K, Q6_K) spend theirs on [-2, 2]. Every decoded value
 * stays negative, and the RMSE stays within 1.5 x step / sqrt(12):
 *   Q2_K 1/3 -> 0.144, Q3_K 4/8 -> 0.217, Q4_K 1/15 -> 0.029,
 *   Q5_K 1/31 -> 0.014, Q6_K 4/64 -> 0.027. */
static void negative_only_data_round_trips(void **state)
{
    (void)state;
    const double limit[] = {0.144, 0.217, 0.029, 0.014, 0.027};
    hs_rng r;
    hs_rng_seed(&r, 9);
    for (int ti = 0; ti < N_TYPES; ti++) {
        float x[QK], back[QK];
        uint8_t b[Q8_SIZE];
        for (int k = 0; k < QK; k++)
            x[k] = -1.0f - hs_rng_f32(&r);
        quantize_block(k_types[ti], x, b, back);
        double se = 0.0;
        for (int k = 0; k < QK; k++) {
            se += ((double)back[k] - x[k]) * ((double)back[k] - x[k]);
            assert_true(back[k] < 0.0f);
        }
        const double rmse = sqrt(se / QK);
        if (rmse > limit[ti])
            fail_msg("%s negative-only rmse %g > %g", hs_qtype(k_types[ti])->name, rmse, limit[ti]);
    }
}

/* ------------------------------------------------ llama.cpp's bytes --- */

/* Deterministic data from exact float operations only (an integer hash
 * divided by a power of ten), with an outlier every 509 values, a block
 * shifted to mostly negative values and an all-zero sub-block. */
static void gen_golden(float *x, int n)
{
    uint32_t h = 2166136261u;
    for (int i = 0; i < n; i++) {
        h = (h ^ (uint32_t)i) * 16777619u;
        const int v = (int)(h % 20001u) - 10000;
        const float scale = (float)(1 + (i / 32) % 5) / 1000.0f;
        x[i] = (float)v * scale;
        if (i % 509 == 17)
            x[i] = 40.0f;
        if (i / 256 == 2 && i % 2)
            x[i] = -x[i] - 3.0f;
        if (i / 16 == 70)
            x[i] = 0.0f;
    }
}

static uint64_t fnv1a(const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* The reference quantizers write llama.cpp's bytes. The hashes (FNV-1a 64 of
 * 4 blocks) and leading bytes are those of llama.cpp's own
 * quantize_row_q*_K_ref (ggml 0.5.0, libggml-base) on gen_golden's data, the
 * path `llama-quantize` takes without an importance matrix. */
static void reference_quantizers_write_llama_cpp_bytes(void **state)
{
    (void)state;
    static const struct {
        int type;
        uint64_t fnv;
        uint8_t head[4];
    } want[] = {
        {HS_TYPE_Q2_K, 0x274ec9befe1424c6ull, {0x34, 0x4a, 0x87, 0x67}},
        {HS_TYPE_Q3_K, 0x4ca48ae98b878a58ull, {0x8a, 0x06, 0x07, 0x6e}},
        {HS_TYPE_Q4_K, 0x11359ea4c4a57d8cull, {0x38, 0x2d, 0x88, 0x38}},
        {HS_TYPE_Q5_K, 0x7ee239c20e9ebcadull, {0x3a, 0x29, 0x85, 0x38}},
        {HS_TYPE_Q6_K, 0xdfc090b6355418e5ull, {0xb9, 0xd5, 0xad, 0xa0}},
        {HS_TYPE_Q8_K, 0xd83bea1623856a3dull, {0x78, 0xef, 0xaa, 0xbe}},
    };
    enum { N = 4 * QK };
    float x[N];
    gen_golden(x, N);
    for (size_t t = 0; t < sizeof want / sizeof want[0]; t++) {
        const struct hs_qtype *q = hs_qtype(want[t].type);
        uint8_t b[4 * Q8_SIZE];
        q->from_float_ref(x, b, N);
        assert_memory_equal(b, want[t].head, 4);
        if (fnv1a(b, 4 * q->bytes) != want[t].fnv)
            fail_msg("%s: bytes differ from llama.cpp's", q->name);
    }
}

/* ------------------------------------------------ round-trip error ----- */

/* RMSE / range for uniform data on [-1, 1] (range 2). A rounding quantizer
 * with step D has RMSE D / sqrt(12); each limit is that figure for the
 * format's coarsest step over the whole block's range, times 1.5:
 *   Q2_K: 4 levels with a min, D = range/3      -> 0.096 -> 0.15
 *   Q3_K: 8 symmetric levels,  D = range/8      -> 0.036 -> 0.055
 *   Q4_K: 16 levels with a min, D = range/15    -> 0.019 -> 0.029
 *   Q5_K: 32 levels with a min, D = range/31    -> 0.0093 -> 0.014
 *   Q6_K: 64 symmetric levels, D = range/64     -> 0.0045 -> 0.0068
 *   Q8_K: 255 symmetric levels, D = range/254   -> 0.00114 -> 0.0017
 * Sub-block scales only make the steps finer, so real errors sit well below. */
static void round_trip_error_within_step(void **state)
{
    (void)state;
    const int all[] = {HS_TYPE_Q2_K, HS_TYPE_Q3_K, HS_TYPE_Q4_K, HS_TYPE_Q5_K, HS_TYPE_Q6_K, HS_TYPE_Q8_K};
    const double limit[] = {0.15, 0.055, 0.029, 0.014, 0.0068, 0.0017};
    const int nb = 16, n = nb * QK;
    float *x = xalloc(sizeof(float) * (size_t)n), *back = xalloc(sizeof(float) * (size_t)n);
    hs_rng r;
    hs_rng_seed(&r, 11);
    for (int k = 0; k < n; k++)
        x[k] = 2.0f * hs_rng_f32(&r) - 1.0f;
    for (int ti = 0; ti < 6; ti++) {
        const struct hs_qtype *q = hs_qtype(all[ti]);
        void *b = xalloc(hs_qtype_row_bytes(all[ti], n));
        q->from_float_ref(x, b, n);
        q->to_float(b, back, n);
        for (int i = 0; i < nb; i++) {
            double se = 0.0, lo = INFINITY, hi = -INFINITY;
            for (int k = i * QK; k < (i + 1) * QK; k++) {
                se += ((double)back[k] - x[k]) * ((double)back[k] - x[k]);
                lo = fmin(lo, x[k]);
                hi = fmax(hi, x[k]);
            }
            const double rel = sqrt(se / QK) / (hi - lo);
            if (rel > limit[ti])
                fail_msg("%s block %d: rmse/range %g > %g", q->name, i, rel, limit[ti]);
        }
        hs_aligned_free(b);
    }
    hs_aligned_free(x);
    hs_aligned_free(back);
}

/* ------------------------------------------------ fast vs reference ---- */

/* Tolerance for a fast vec_dot against vec_dot_ref. Both add exact integer
 * sums per super-block and differ only in how the float products are
 * grouped (16 lanes, fused multiply-adds), so they agree to a few float
 * roundings of the largest term; the scale of the terms is bounded by
 * T = max|w| * sum|a| (dequantized weights w, activations a), and a few dozen
 * roundings of 2^-24 stay below 1e-6 * T. One wrong weight in 33 blocks
 * would move the result by about T / 8448 ~ 1.2e-4 * T. */
#define DOT_TOLERANCE 1e-6

struct row_pair {
    int nb;
    void *x, *y;
    double T;
};

static void row_pair_make(struct row_pair *p, int type, int nb, uint64_t seed, bool extreme)
{
    const int n = nb * QK;
    float *xf = xalloc(sizeof(float) * (size_t)n), *yf = xalloc(sizeof(float) * (size_t)n);
    hs_rng r;
    hs_rng_seed(&r, seed);
    for (int k = 0; k < n; k++) {
        /* per-32 scales over 3 decades; "extreme": +-max only, so levels sit at their ends */
        const float s = powf(10.0f, -1.5f + 3.0f * (float)((k / 32) % 7) / 6.0f);
        xf[k] = extreme ? ((k * 7 / 3) % 2 ? s : -s) : s * hs_rng_normal(&r);
        yf[k] = extreme ? ((k % 3) ? 1.0f : -1.0f) : hs_rng_normal(&r);
    }
    p->nb = nb;
    p->x = xalloc(hs_qtype_row_bytes(type, n));
    p->y = xalloc(hs_qtype_row_bytes(HS_TYPE_Q8_K, n));
    hs_qtype(type)->from_float_ref(xf, p->x, n);
    hs_qtype(HS_TYPE_Q8_K)->from_float_ref(yf, p->y, n);
    hs_qtype(type)->to_float(p->x, xf, n);
    hs_qtype(HS_TYPE_Q8_K)->to_float(p->y, yf, n);
    double wmax = 0.0, asum = 0.0;
    for (int k = 0; k < n; k++) {
        wmax = fmax(wmax, fabs((double)xf[k]));
        asum += fabs((double)yf[k]);
    }
    p->T = wmax * asum;
    hs_aligned_free(xf);
    hs_aligned_free(yf);
}

static void row_pair_free(struct row_pair *p)
{
    hs_aligned_free(p->x);
    hs_aligned_free(p->y);
}

static void every_level_vec_dot_matches_ref(void **state)
{
    (void)state;
    const int counts[] = {1, 3, 33};
    for (int ti = 0; ti < N_TYPES; ti++) {
        const int type = k_types[ti];
        const struct hs_qtype *q = hs_qtype(type);
        const struct hs_qtype_kernels *ks[3];
        const int nl = levels(type, ks);
        for (int ci = 0; ci < 3; ci++) {
            for (int ex = 0; ex < 2; ex++) {
                struct row_pair p;
                row_pair_make(&p, type, counts[ci], 100 + (uint64_t)(ci * 2 + ex), ex == 1);
                float want;
                q->vec_dot_ref(p.nb * QK, &want, p.x, p.y);
                for (int l = 0; l < nl; l++) {
                    float got;
                    ks[l]->vec_dot(p.nb * QK, &got, p.x, p.y);
                    if (fabs((double)got - want) > DOT_TOLERANCE * p.T)
                        fail_msg("%s/%s nb %d%s: %.9g vs ref %.9g (tol %g)", q->name, ks[l]->impl, p.nb,
                                 ex ? " extreme" : "", (double)got, (double)want, DOT_TOLERANCE * p.T);
                }
                row_pair_free(&p);
            }
        }
    }
}

/* Q8_K's fast quantizers write the reference's bytes, ties and all. */
static void q8_k_fast_quantizers_are_exact(void **state)
{
    (void)state;
    const int n = 8 * QK;
    float *x = xalloc(sizeof(float) * (size_t)n);
    uint8_t *want = xalloc(Q8_SIZE * 8), *got = xalloc(Q8_SIZE * 8);
    hs_rng r;
    hs_rng_seed(&r, 3);
    for (int k = 0; k < n; k++)
        x[k] = hs_rng_normal(&r);
    /* block 1: halfway cases (x / d = m + 0.5 exactly); block 2: the largest
     * magnitude twice with opposite signs (the first one sets the sign);
     * block 3: all zero */
    for (int k = QK; k < 2 * QK; k++)
        x[k] = (float)((k % 254) - 127) + 0.5f;
    x[QK] = 127.0f;
    x[2 * QK + 5] = -9.0f;
    x[2 * QK + 9] = 9.0f;
    for (int k = 3 * QK; k < 4 * QK; k++)
        x[k] = 0.0f;
    hs_qtype(HS_TYPE_Q8_K)->from_float_ref(x, want, n);
    const struct hs_qtype_kernels *ks[3];
    const int nl = levels(HS_TYPE_Q8_K, ks);
    for (int l = 0; l < nl; l++) {
        memset(got, 0x5a, Q8_SIZE * 8);
        ks[l]->from_float(x, got, n);
        assert_memory_equal(got, want, Q8_SIZE * 8);
    }
    float d;
    memcpy(&d, want + 2 * Q8_SIZE + Q8_D, 4);
    assert_true(d > 0.0f); /* -9 came first: d = -9 / -127 */
    hs_aligned_free(x);
    hs_aligned_free(want);
    hs_aligned_free(got);
}

/* ------------------------------------------------ gemm ------------------ */

/* Every tile shape of every gemm against vec_dot on the same rows: the tile
 * computes the same per-block integers, so it agrees to float rounding. */
static void gemm_tiles_match_vec_dot(void **state)
{
    (void)state;
    for (int ti = 0; ti < N_TYPES; ti++) {
        const int type = k_types[ti];
        const struct hs_qtype_kernels *ks[3];
        const int nl = levels(type, ks);
        for (int l = 0; l < nl; l++) {
            if (!ks[l]->gemm)
                continue;
            const int R = ks[l]->gemm_rows, C = ks[l]->gemm_cols;
            for (int nb = 1; nb <= 9; nb += 8) {
                const int n = nb * QK;
                const size_t bx = hs_qtype_row_bytes(type, n), by = hs_qtype_row_bytes(HS_TYPE_Q8_K, n);
                struct row_pair rows[32], toks[32];
                assert_true(R <= 32 && C <= 32);
                uint8_t *x = xalloc(bx * (size_t)R), *y = xalloc(by * (size_t)C);
                double T = 0.0;
                for (int i = 0; i < R; i++) {
                    row_pair_make(&rows[i], type, nb, 500 + (uint64_t)i, i == 1);
                    memcpy(x + bx * (size_t)i, rows[i].x, bx);
                    T = fmax(T, rows[i].T);
                }
                for (int c = 0; c < C; c++) {
                    row_pair_make(&toks[c], type, nb, 600 + (uint64_t)c, c == 2);
                    memcpy(y + by * (size_t)c, toks[c].y, by);
                    T = fmax(T, toks[c].T);
                }
                const size_t ldc = (size_t)R + 3;
                for (int nr = 1; nr <= R; nr++) {
                    for (int nc = 1; nc <= C; nc++) {
                        float *out = xalloc(sizeof(float) * ldc * (size_t)C);
                        for (size_t i = 0; i < ldc * (size_t)C; i++)
                            out[i] = 12345.0f;
                        ks[l]->gemm(n, out, ldc, x, bx, y, by, nr, nc);
                        for (int c = 0; c < C; c++) {
                            for (size_t r = 0; r < ldc; r++) {
                                const float v = out[(size_t)c * ldc + r];
                                if ((int)r >= nr || c >= nc) {
                                    assert_true(v == 12345.0f); /* outside the tile: untouched */
                                    continue;
                                }
                                float want;
                                ks[l]->vec_dot(n, &want, x + bx * r, y + by * (size_t)c);
                                if (fabs((double)v - want) > DOT_TOLERANCE * 4.0 * T)
                                    fail_msg("%s/%s gemm %dx%d nb %d [%zu,%d]: %.9g vs vec_dot %.9g",
                                             hs_qtype(type)->name, ks[l]->impl, nr, nc, nb, r, c, (double)v,
                                             (double)want);
                            }
                        }
                        hs_aligned_free(out);
                    }
                }
                for (int i = 0; i < R; i++)
                    row_pair_free(&rows[i]);
                for (int c = 0; c < C; c++)
                    row_pair_free(&toks[c]);
                hs_aligned_free(x);
                hs_aligned_free(y);
            }
        }
    }
}

/* ------------------------------------------------ AMX batches ---------- */

/* hs_matmul on a CPU with AMX sends batches of >= 16 tokens of Q4_K and Q6_K
 * weights to the tiles with Q8_0 activations (a scale per 32 values, not per
 * 256 as Q8_K), so it is checked against double-precision dots, twice:
 *  - against the float activations, within the activation quantization
 *    error: a Q8_0 value is off by at most half a step, amax / 254, plus the
 *    rounding of its scale to a half (127 steps x 2^-11 relative), so the dot
 *    is off by at most sum_k |w_k| * amax(block of k) * (1/254 + 2^-10);
 *  - against the activations as Q8_0 dequantizes them (reference quantizer),
 *    where only float rounding remains: 1e-5 * sum |w a| (one wrong weight
 *    moves a 256-value dot by ~1/256 of that sum).
 * Shapes: rows not a multiple of 16, tokens not a multiple of 16, more than
 * one chunk of token groups; the output's padding must stay untouched. */
static void amx_k_matmul_matches_double_dot(void **state)
{
    (void)state;
    if (!hs_amx_enabled()) {
        print_message("[  SKIP    ] no AMX-INT8 on this CPU or OS (or $HESTIA_NO_AMX / $HESTIA_CPU)\n");
        skip();
    }
    static const int types[] = {HS_TYPE_Q4_K, HS_TYPE_Q6_K};
    static const struct {
        int n, rows, toks;
    } shapes[] = {{256, 37, 37}, {768, 16, 16}, {512, 21, 130}};
    const struct hs_qtype *q8 = hs_qtype(HS_TYPE_Q8_0);
    for (int threads = 1; threads <= 2; threads++) {
        hs_pool *pool;
        assert_int_equal(hs_pool_create(threads, &pool), HS_OK);
        hs_mm_scratch scratch = {0};
        for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
            const struct hs_qtype *q = hs_qtype(types[ti]);
            for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
                const int n = shapes[si].n, R = shapes[si].rows, T = shapes[si].toks;
                const size_t bx = hs_qtype_row_bytes(q->type, n), ldx = (size_t)n + 5, ldy = (size_t)R + 3;
                uint8_t *w = xalloc(bx * (size_t)R);
                float *wf = xalloc(sizeof(float) * (size_t)n * (size_t)R);
                float *x = xalloc(sizeof(float) * ldx * (size_t)T), *xq = xalloc(sizeof(float) * (size_t)n);
                uint8_t *x8 = xalloc(hs_qtype_row_bytes(HS_TYPE_Q8_0, n));
                float *y = xalloc(sizeof(float) * ldy * (size_t)T);
                hs_rng rng;
                hs_rng_seed(&rng, 700 + (uint64_t)(ti * 10 + si));
                for (int r = 0; r < R; r++) {
                    for (int k = 0; k < n; k++) {
                        /* per-32 scales over 3 decades, some rows all positive (large mins) */
                        const float sc = powf(10.0f, -1.5f + 3.0f * (float)((k / 32 + r) % 7) / 6.0f);
                        const float v = sc * hs_rng_normal(&rng);
                        wf[(size_t)r * (size_t)n + (size_t)k] = r % 3 == 1 ? fabsf(v) + sc : v;
                    }
                    q->from_float_ref(wf + (size_t)r * (size_t)n, w + bx * (size_t)r, n);
                    q->to_float(w + bx * (size_t)r, wf + (size_t)r * (size_t)n, n);
                }
                for (int t = 0; t < T; t++)
                    for (int k = 0; k < n; k++)
                        x[(size_t)t * ldx + (size_t)k] = hs_rng_normal(&rng) + (t % 2 ? 0.5f : 0.0f);
                for (size_t i = 0; i < ldy * (size_t)T; i++)
                    y[i] = NAN;
                const struct hs_mat m = {q->type, n, R, bx, w};
                assert_int_equal(hs_matmul(pool, &scratch, &m, x, ldx, T, y, ldy), HS_OK);
                for (int t = 0; t < T; t++) {
                    const float *xt = x + (size_t)t * ldx;
                    q8->from_float_ref(xt, x8, n);
                    q8->to_float(x8, xq, n);
                    for (size_t r = 0; r < ldy; r++) {
                        const float got = y[(size_t)t * ldy + r];
                        if ((int)r >= R) {
                            if (!isnan(got))
                                fail_msg("%s amx matmul wrote padding row %zu of %d", q->name, r, R);
                            continue;
                        }
                        const float *wr = wf + r * (size_t)n;
                        double want = 0.0, want_q = 0.0, qerr = 0.0, mag_q = 0.0, mag = 0.0;
                        for (int b = 0; b < n / 32; b++) {
                            double amax = 0.0;
                            for (int l = 0; l < 32; l++)
                                amax = fmax(amax, fabs((double)xt[32 * b + l]));
                            for (int l = 0; l < 32; l++) {
                                const int k = 32 * b + l;
                                want += (double)wr[k] * xt[k];
                                want_q += (double)wr[k] * xq[k];
                                mag += fabs((double)wr[k] * xt[k]);
                                mag_q += fabs((double)wr[k] * xq[k]);
                                qerr += fabs((double)wr[k]) * amax * (1.0 / 254.0 + 1.0 / 1024.0);
                            }
                        }
                        if (fabs(got - want) > qerr + 1e-5 * mag)
                            fail_msg("%s amx %d thr n %d [%zu,%d] of %dx%d: %.9g vs float dot %.9g (tol %g)", q->name,
                                     threads, n, r, t, R, T, (double)got, want, qerr + 1e-5 * mag);
                        if (fabs(got - want_q) > 1e-5 * mag_q)
                            fail_msg("%s amx %d thr n %d [%zu,%d] of %dx%d: %.9g vs Q8_0 dot %.9g (tol %g)", q->name,
                                     threads, n, r, t, R, T, (double)got, want_q, 1e-5 * mag_q);
                    }
                }
                hs_aligned_free(w);
                hs_aligned_free(wf);
                hs_aligned_free(x);
                hs_aligned_free(xq);
                hs_aligned_free(x8);
                hs_aligned_free(y);
            }
        }
        hs_mm_scratch_free(&scratch);
        hs_pool_free(pool);
    }
}

/* The AMX kernel for generated Q4_K tokens (hs_q4_k_amxg_gemm) and its
 * one-token twin (hs_q4_k_vec_dot_amxg_avx512) against their scalar
 * definition hs_q4_k_amxg_ref, bit for bit, for every group size 1..8 and
 * every place of a token in its group, rows not a multiple of 16; the
 * definition against a double dot of the dequantized values (it is the same
 * arithmetic as the dot product, in another float order). Hand-built blocks
 * take the integer sums to their bounds: levels all 0 or all 15 with scales
 * 63 against activations all +127 or -127 (sub-block sums of (q - 8) * y of
 * -32512 and +28448, which the kernel keeps in 16 bits). Then hs_matmul_ex,
 * batch-invariant: each token alone gives the bits it gives among 8. */
static void amxg_matches_its_definition(void **state)
{
    (void)state;
    if (!hs_amx_available()) {
        print_message("[  SKIP    ] no AMX-INT8 on this CPU or OS\n");
        skip();
    }
    enum { R = 21, T = 10 };
    const int ns[] = {256, 768};
    for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
        const int n = ns[ni];
        const size_t bx = hs_qtype_row_bytes(HS_TYPE_Q4_K, n), by = hs_qtype_row_bytes(HS_TYPE_Q8_K, n);
        uint8_t *w = xalloc(bx * R), *act = xalloc(by * T);
        float *wf = xalloc(sizeof(float) * (size_t)n * R), *xf = xalloc(sizeof(float) * (size_t)n * T);
        float *yq = xalloc(sizeof(float) * (size_t)n);
        hs_rng rng;
        hs_rng_seed(&rng, 900 + (uint64_t)n);
        for (int r = 0; r < R; r++) {
            for (int k = 0; k < n; k++) {
                const float sc = powf(10.0f, -1.0f + 2.0f * (float)((k / 32 + r) % 5) / 4.0f);
                const float v = sc * hs_rng_normal(&rng);
                wf[(size_t)r * n + k] = r % 3 == 1 ? fabsf(v) + sc : v;
            }
            hs_q4_k_from_float_ref(wf + (size_t)r * n, w + bx * r, n);
        }
        /* rows 0 and 1: every level 0 (row 0) or 15 (row 1), scales and mins 63 */
        for (int r = 0; r < 2; r++)
            for (int i = 0; i < n / QK; i++) {
                hs_block_q4_k *b = (hs_block_q4_k *)(w + bx * r) + i;
                b->d = hs_f32_to_fp16(0.01f);
                b->dmin = hs_f32_to_fp16(0.02f);
                memset(b->scales, 0xff, sizeof b->scales);
                memset(b->qs, r ? 0xff : 0x00, sizeof b->qs);
            }
        for (int t = 0; t < T; t++) {
            for (int k = 0; k < n; k++)
                xf[(size_t)t * n + k] = t == 0 ? 1.0f : t == 1 ? -1.0f : hs_rng_normal(&rng) + (t % 2 ? 0.5f : 0.0f);
            hs_q8_k_from_float_ref(xf + (size_t)t * n, act + by * t, n);
        }
        float ref[T][R];
        for (int t = 0; t < T; t++)
            for (int r = 0; r < R; r++) {
                hs_q4_k_amxg_ref(n, &ref[t][r], w + bx * r, act + by * t);
                float one;
                hs_q4_k_vec_dot_amxg_avx512(n, &one, w + bx * r, act + by * t);
                if (memcmp(&one, &ref[t][r], sizeof one) != 0)
                    fail_msg("vec_dot_amxg n %d [%d,%d]: %.9g vs ref %.9g", n, r, t, (double)one, (double)ref[t][r]);
                /* the definition against a double dot of what it multiplies */
                float *wr = wf + (size_t)r * n;
                hs_q4_k_to_float(w + bx * r, wr, n);
                hs_q8_k_to_float(act + by * t, yq, n);
                double want = 0.0, mag = 0.0;
                for (int k = 0; k < n; k++) {
                    want += (double)wr[k] * yq[k];
                    mag += fabs((double)wr[k] * yq[k]);
                }
                if (fabs(ref[t][r] - want) > 1e-5 * mag + 1e-30)
                    fail_msg("amxg ref n %d [%d,%d]: %.9g vs double dot %.9g", n, r, t, (double)ref[t][r], want);
            }
        hs_q4_k_amxg_panel *panel = hs_aligned_alloc(64, hs_q4_k_amxg_panel_bytes(n));
        assert_non_null(panel);
        const size_t ldc = R + 3;
        float *s = xalloc(sizeof(float) * ldc * 8);
        for (int nc = 1; nc <= 8; nc++)
            for (int t0 = 0; t0 + nc <= T; t0 += 1 + nc / 2) {
                hs_q4_k_amxg_pack(panel, act + by * t0, by, nc, n);
                for (size_t i = 0; i < ldc * 8; i++)
                    s[i] = NAN;
                /* rows in two calls: 16 then 5 */
                hs_q4_k_amxg_gemm(n, s, ldc, w, bx, panel, 16, nc);
                hs_q4_k_amxg_gemm(n, s + 16, ldc, w + bx * 16, bx, panel, R - 16, nc);
                for (int c = 0; c < 8; c++)
                    for (size_t r = 0; r < ldc; r++) {
                        const float got = s[(size_t)c * ldc + r];
                        if (c >= nc || (int)r >= R) {
                            if (!isnan(got))
                                fail_msg("amxg wrote [%zu,%d] outside %d x %d", r, c, R, nc);
                        } else if (memcmp(&got, &ref[t0 + c][r], sizeof got) != 0) {
                            fail_msg("amxg n %d nc %d [%zu,%d]: %.9g vs ref %.9g", n, nc, r, t0 + c, (double)got,
                                     (double)ref[t0 + c][r]);
                        }
                    }
            }
        if (hs_amx_enabled()) {
            hs_pool *pool;
            assert_int_equal(hs_pool_create(2, &pool), HS_OK);
            hs_mm_scratch scratch = {0};
            const struct hs_mat m = {HS_TYPE_Q4_K, n, R, bx, w};
            float *y8 = xalloc(sizeof(float) * R * 8), *y1 = xalloc(sizeof(float) * R);
            assert_int_equal(hs_matmul_ex(pool, &scratch, &m, xf + (size_t)2 * n, (size_t)n, 8, y8, R,
                                          HS_MM_BATCH_INVARIANT),
                             HS_OK);
            for (int t = 0; t < 8; t++) {
                assert_int_equal(hs_matmul_ex(pool, &scratch, &m, xf + (size_t)(2 + t) * n, (size_t)n, 1, y1, R,
                                              HS_MM_BATCH_INVARIANT),
                                 HS_OK);
                for (int r = 0; r < R; r++) {
                    if (memcmp(&y1[r], &y8[(size_t)t * R + r], sizeof(float)) != 0)
                        fail_msg("matmul n %d [%d,%d]: alone %.9g, in 8 %.9g", n, r, t, (double)y1[r],
                                 (double)y8[(size_t)t * R + r]);
                    if (memcmp(&y1[r], &ref[2 + t][r], sizeof(float)) != 0)
                        fail_msg("matmul n %d [%d,%d]: %.9g vs ref %.9g", n, r, t, (double)y1[r], (double)ref[2 + t][r]);
                }
            }
            hs_aligned_free(y8);
            hs_aligned_free(y1);
            hs_mm_scratch_free(&scratch);
            hs_pool_free(pool);
        }
        hs_aligned_free(panel);
        hs_aligned_free(s);
        hs_aligned_free(w);
        hs_aligned_free(act);
        hs_aligned_free(wf);
        hs_aligned_free(xf);
        hs_aligned_free(yq);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hand_built_blocks_decode_to_the_formula),
        cmocka_unit_test(hand_built_blocks_dot_to_the_formula),
        cmocka_unit_test(zero_block_stays_zero),
        cmocka_unit_test(constant_blocks_round_trip),
        cmocka_unit_test(outlier_keeps_its_value),
        cmocka_unit_test(negative_only_data_round_trips),
        cmocka_unit_test(reference_quantizers_write_llama_cpp_bytes),
        cmocka_unit_test(round_trip_error_within_step),
        cmocka_unit_test(every_level_vec_dot_matches_ref),
        cmocka_unit_test(q8_k_fast_quantizers_are_exact),
        cmocka_unit_test(gemm_tiles_match_vec_dot),
        cmocka_unit_test(amx_k_matmul_matches_double_dot),
        cmocka_unit_test(amxg_matches_its_definition),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
