/* AVX2 (+FMA, F16C) kernels for the legacy quants; see q_legacy.c for the
 * formats and the reference kernels these are tested against, and
 * q_legacy_avx512.c for the same kernels with VNNI.
 *
 * Without VNNI, a byte dot product is vpmaddubsw (unsigned x signed bytes to
 * int16 pairs) then vpmaddwd with ones (int16 pairs to int32). Sign trick:
 * |x| . (y * sign(x)); a pair sums to at most 2 * 127 * 128 < 32767 (x = -128
 * gives |x| = 128), so vpmaddubsw never saturates. The integer sums are
 * exact; the float accumulation order differs from the reference, so results
 * agree to rounding. The quantizers are bit-exact. */
#include "tensor/qtype_impl.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float h2f(hs_fp16 h) { return _cvtsh_ss(h); }

/* Exact sum of x[j] * y[j] with x unsigned (q4/q5 values 0..31), y signed. */
static inline __m256i dot32u(__m256i x, __m256i y) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(x, y), _mm256_set1_epi16(1));
}

/* Exact sum of x[j] * y[j] over 32 signed bytes, as 8 int32 lanes. */
static inline __m256i dot32(__m256i x, __m256i y) { return dot32u(_mm256_abs_epi8(x), _mm256_sign_epi8(y, x)); }

/* The 32 4-bit values of a q4 block, in element order: low nibbles are
 * elements 0-15, high nibbles 16-31. */
static inline __m256i unpack_nibbles(const uint8_t *qs) {
    const __m128i q = _mm_loadu_si128((const __m128i *)qs);
    const __m256i both = _mm256_inserti128_si256(_mm256_castsi128_si256(q), _mm_srli_epi16(q, 4), 1);
    return _mm256_and_si256(both, _mm256_set1_epi8(0x0f));
}

/* Bit 4 of each element of a q5 block: 0x10 where bit j of qh is set. Byte j
 * first gets byte j / 8 of qh, then is tested against its own bit. */
static inline __m256i unpack_high_bits(const uint8_t qh[4]) {
    uint32_t h;
    memcpy(&h, qh, 4);
    const __m256i spread = _mm256_shuffle_epi8(
        _mm256_set1_epi32((int)h),
        _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
    return _mm256_and_si256(set, _mm256_set1_epi8(0x10));
}

/* Weight rows stream from memory once per token: a software prefetch 4 KiB
 * ahead keeps the loads flowing across page boundaries, where the hardware
 * prefetcher stops (as in q_legacy_avx512.c). Only x, the weights, is
 * prefetched; prefetches past the end of the row never fault. */
#define PREFETCH_DIST 4096
static inline void prefetch_ahead(const void *p, size_t bytes) {
    const char *c = (const char *)p + PREFETCH_DIST;
    for (size_t o = 0; o < bytes; o += 64)
        _mm_prefetch(c + o, _MM_HINT_T1);
}

/* Four blocks per iteration with independent accumulators keep the FMA
 * latency hidden; the tail runs one block at a time. */
#define VEC_DOT_LOOP(XT, YT, INT_DOT)                                                                             \
    const XT *x = vx;                                                                                             \
    const YT *y = vy;                                                                                             \
    const int nb = n / 32;                                                                                        \
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};       \
    int i = 0;                                                                                                    \
    for (; i + 4 <= nb; i += 4) {                                                                                 \
        prefetch_ahead(&x[i], 4 * sizeof(XT));                                                                    \
        for (int u = 0; u < 4; u++) {                                                                             \
            const XT *xb = &x[i + u];                                                                             \
            const YT *yb = &y[i + u];                                                                             \
            const __m256 p = _mm256_cvtepi32_ps(INT_DOT);                                                         \
            acc[u] = _mm256_fmadd_ps(p, _mm256_set1_ps(h2f(xb->d) * h2f(yb->d)), acc[u]);                         \
        }                                                                                                         \
    }                                                                                                             \
    for (; i < nb; i++) {                                                                                         \
        const XT *xb = &x[i];                                                                                     \
        const YT *yb = &y[i];                                                                                     \
        const __m256 p = _mm256_cvtepi32_ps(INT_DOT);                                                             \
        acc[0] = _mm256_fmadd_ps(p, _mm256_set1_ps(h2f(xb->d) * h2f(yb->d)), acc[0]);                             \
    }                                                                                                             \
    __m256 sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));

#define LOADY(yb) _mm256_loadu_si256((const __m256i *)(yb)->qs)

void hs_q8_0_vec_dot_avx2(int n, float *s, const void *vx, const void *vy) {
    VEC_DOT_LOOP(hs_block_q8_0, hs_block_q8_0, dot32(_mm256_loadu_si256((const __m256i *)xb->qs), LOADY(yb)))
    *s = hsum256(sum);
}

void hs_q8_1_vec_dot_avx2(int n, float *s, const void *vx, const void *vy) {
    VEC_DOT_LOOP(hs_block_q8_1, hs_block_q8_1, dot32(_mm256_loadu_si256((const __m256i *)xb->qs), LOADY(yb)))
    *s = hsum256(sum);
}

void hs_q4_0_vec_dot_avx2(int n, float *s, const void *vx, const void *vy) {
    VEC_DOT_LOOP(hs_block_q4_0, hs_block_q8_0,
                 dot32(_mm256_sub_epi8(unpack_nibbles(xb->qs), _mm256_set1_epi8(8)), LOADY(yb)))
    *s = hsum256(sum);
}

void hs_q5_0_vec_dot_avx2(int n, float *s, const void *vx, const void *vy) {
    VEC_DOT_LOOP(hs_block_q5_0, hs_block_q8_0,
                 dot32(_mm256_sub_epi8(_mm256_or_si256(unpack_nibbles(xb->qs), unpack_high_bits(xb->qh)),
                                       _mm256_set1_epi8(16)),
                       LOADY(yb)))
    *s = hsum256(sum);
}

/* The _1 types add m * s per block: a scalar sum beside the vector one. */
void hs_q4_1_vec_dot_avx2(int n, float *s, const void *vx, const void *vy) {
    VEC_DOT_LOOP(hs_block_q4_1, hs_block_q8_1, dot32u(unpack_nibbles(xb->qs), LOADY(yb)))
    float ms = 0.0f;
    for (int b = 0; b < nb; b++)
        ms += h2f(x[b].m) * h2f(y[b].s);
    *s = hsum256(sum) + ms;
}

void hs_q5_1_vec_dot_avx2(int n, float *s, const void *vx, const void *vy) {
    VEC_DOT_LOOP(hs_block_q5_1, hs_block_q8_1,
                 dot32u(_mm256_or_si256(unpack_nibbles(xb->qs), unpack_high_bits(xb->qh)), LOADY(yb)))
    float ms = 0.0f;
    for (int b = 0; b < nb; b++)
        ms += h2f(x[b].m) * h2f(y[b].s);
    *s = hsum256(sum) + ms;
}

/* ------------------------------------------------------------ quantizers -- */

/* roundf: to nearest, ties away from zero (the SIMD rounding modes only tie
 * to even). v - trunc(v) is exact, so comparing it with 0.5 decides ties
 * exactly as roundf does. */
static inline __m256 round_away(__m256 v) {
    const __m256 sign = _mm256_and_ps(v, _mm256_set1_ps(-0.0f));
    const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 frac = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), _mm256_sub_ps(v, t));
    const __m256 up = _mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ);
    return _mm256_add_ps(t, _mm256_and_ps(up, _mm256_or_ps(_mm256_set1_ps(1.0f), sign)));
}

/* One block of 32 floats to d and 32 int8 as the reference does it; returns
 * the sum of the quants (for q8_1) and the float d through *dout. */
static inline int quant_block32(const float *x, hs_fp16 *dh, float *dout, int8_t *qs) {
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 v[4], m = _mm256_setzero_ps();
    for (int u = 0; u < 4; u++) {
        v[u] = _mm256_loadu_ps(x + 8 * u);
        m = _mm256_max_ps(m, _mm256_and_ps(v[u], abs_mask));
    }
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float amax = _mm_cvtss_f32(m4);
    const float d = amax / 127.0f;
    const float id = d ? 1.0f / d : 0.0f;
    *dh = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
    *dout = d;
    const __m256 vid = _mm256_set1_ps(id);
    __m256i q[4];
    for (int u = 0; u < 4; u++)
        q[u] = _mm256_cvttps_epi32(round_away(_mm256_mul_ps(v[u], vid)));
    __m256i sum = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
    /* int32 -> int16 -> int8; the packs interleave 128-bit lanes, undone by
     * the final permute. */
    const __m256i p16a = _mm256_packs_epi32(q[0], q[1]);
    const __m256i p16b = _mm256_packs_epi32(q[2], q[3]);
    const __m256i p8 = _mm256_packs_epi16(p16a, p16b);
    _mm256_storeu_si256((__m256i *)qs,
                        _mm256_permutevar8x32_epi32(p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
    return _mm_cvtsi128_si32(s4);
}

void hs_q8_0_from_float_avx2(const float *x, void *vy, int64_t n) {
    hs_block_q8_0 *y = vy;
    float d;
    for (int64_t i = 0; i < n / HS_QK8_0; i++)
        quant_block32(x + i * HS_QK8_0, &y[i].d, &d, y[i].qs);
}

void hs_q8_1_from_float_avx2(const float *x, void *vy, int64_t n) {
    hs_block_q8_1 *y = vy;
    float d;
    for (int64_t i = 0; i < n / HS_QK8_1; i++) {
        const int sum = quant_block32(x + i * HS_QK8_1, &y[i].d, &d, y[i].qs);
        y[i].s = _cvtss_sh((float)sum * d, _MM_FROUND_TO_NEAREST_INT);
    }
}

/* ----------------------------------------------------------------- gemm -- */

/* Q8_0 x Q8_0 tile, NR (<= 4) weight rows x NC (<= 2) tokens, one block per
 * step: |x| is computed once per row and reused by both tokens. */
static inline __attribute__((always_inline)) void q8_0_tile(int n, float *s, size_t ldc, const uint8_t *x,
                                                              size_t bx, const uint8_t *y, size_t by, const int NR,
                                                              const int NC) {
    const int nb = n / HS_QK8_0;
    __m256 acc[4][2];
    for (int r = 0; r < NR; r++)
        for (int c = 0; c < NC; c++)
            acc[r][c] = _mm256_setzero_ps();
    for (int k = 0; k < nb; k++) {
        const size_t o = (size_t)k * sizeof(hs_block_q8_0);
        __m256i xv[4], ax[4];
        float dx[4];
        for (int r = 0; r < NR; r++) {
            const hs_block_q8_0 *xb = (const hs_block_q8_0 *)(x + r * bx + o);
            xv[r] = _mm256_loadu_si256((const __m256i *)xb->qs);
            ax[r] = _mm256_abs_epi8(xv[r]);
            dx[r] = h2f(xb->d);
        }
        for (int c = 0; c < NC; c++) {
            const hs_block_q8_0 *yb = (const hs_block_q8_0 *)(y + c * by + o);
            const __m256i yv = _mm256_loadu_si256((const __m256i *)yb->qs);
            const float dy = h2f(yb->d);
            for (int r = 0; r < NR; r++) {
                const __m256 p = _mm256_cvtepi32_ps(dot32u(ax[r], _mm256_sign_epi8(yv, xv[r])));
                acc[r][c] = _mm256_fmadd_ps(p, _mm256_set1_ps(dx[r] * dy), acc[r][c]);
            }
        }
    }
    for (int c = 0; c < NC; c++)
        for (int r = 0; r < NR; r++)
            s[c * ldc + r] = hsum256(acc[r][c]);
}

#define TILE_CASE(R, C)                                                                                           \
    case (R) * 8 + (C):                                                                                           \
        q8_0_tile(n, s, ldc, x, bx, y, by, R, C);                                                                 \
        break;

void hs_q8_0_gemm_avx2(int n, float *s, size_t ldc, const void *vx, size_t bx, const void *vy, size_t by, int nr,
                       int nc) {
    const uint8_t *x = vx, *y = vy;
    switch (nr * 8 + nc) {
        TILE_CASE(4, 2) TILE_CASE(4, 1)
        TILE_CASE(3, 2) TILE_CASE(3, 1)
        TILE_CASE(2, 2) TILE_CASE(2, 1)
        TILE_CASE(1, 2) TILE_CASE(1, 1)
    default:
        assert(0 && "gemm tile larger than declared");
    }
}
