/* AVX-512 kernels of the forward pass (see ops.h): 16 values per step, and
 * the tail of a row handled with a mask instead of a scalar loop. */
#include "model/ops.h"

#include <immintrin.h>
#include <math.h>

/* The loops over heads and rows have compile-time trip counts (G, R) once
 * inlined; unrolling them whole is what keeps the accumulators in registers. */
#define HS_UNROLL _Pragma("GCC unroll 16")

static inline __attribute__((always_inline)) __m512 load16(const void *b, size_t i, __mmask16 m, const int F16) {
    if (F16)
        return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const hs_fp16 *)b + i));
    return _mm512_maskz_loadu_ps(m, (const float *)b + i);
}

/* Weighted sum: R rows of V against the G softmax rows, 16 positions per
 * step (the tail under a mask), one accumulator per (head, row): at most 16
 * of the 32 registers. */
static inline __attribute__((always_inline)) void wsum_rows(int n, const int G, const int R, const float *w,
                                                            size_t ldw, const void *vT, size_t ldv, int d0, int hd,
                                                            float *out, const int F16) {
    __m512 acc[HS_ATTN_MAX_HEADS][4];
    HS_UNROLL
    for (int h = 0; h < G; h++)
        HS_UNROLL
        for (int r = 0; r < R; r++)
            acc[h][r] = _mm512_setzero_ps();
    for (int p = 0; p < n; p += 16) {
        const __mmask16 m = n - p >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - p)) - 1);
        __m512 v[4];
        HS_UNROLL
        for (int r = 0; r < R; r++)
            v[r] = load16(vT, (size_t)(d0 + r) * ldv + (size_t)p, m, F16);
        HS_UNROLL
        for (int h = 0; h < G; h++) {
            const __m512 wh = _mm512_maskz_loadu_ps(m, w + (size_t)h * ldw + p);
            HS_UNROLL
            for (int r = 0; r < R; r++)
                acc[h][r] = _mm512_fmadd_ps(wh, v[r], acc[h][r]);
        }
    }
    HS_UNROLL
    for (int h = 0; h < G; h++)
        HS_UNROLL
        for (int r = 0; r < R; r++)
            out[h * hd + d0 + r] = _mm512_reduce_add_ps(acc[h][r]);
}

static inline __attribute__((always_inline)) void wsum_g(int n, int hd, const int G, const float *w, size_t ldw,
                                                         const void *vT, size_t ldv, float *out, const int F16) {
    const int R = G <= 4 ? 4 : 2;
    int d = 0;
    for (; d + R <= hd; d += R)
        wsum_rows(n, G, R, w, ldw, vT, ldv, d, hd, out, F16);
    for (; d < hd; d++)
        wsum_rows(n, G, 1, w, ldw, vT, ldv, d, hd, out, F16);
}

#define WSUM_DISPATCH(F16)                                                                                         \
    switch (g) {                                                                                                   \
    case 1: wsum_g(n_kv, hd, 1, w, ldw, vT, ldv, out, F16); break;                                                 \
    case 2: wsum_g(n_kv, hd, 2, w, ldw, vT, ldv, out, F16); break;                                                 \
    case 3: wsum_g(n_kv, hd, 3, w, ldw, vT, ldv, out, F16); break;                                                 \
    case 4: wsum_g(n_kv, hd, 4, w, ldw, vT, ldv, out, F16); break;                                                 \
    case 5: wsum_g(n_kv, hd, 5, w, ldw, vT, ldv, out, F16); break;                                                 \
    case 6: wsum_g(n_kv, hd, 6, w, ldw, vT, ldv, out, F16); break;                                                 \
    case 7: wsum_g(n_kv, hd, 7, w, ldw, vT, ldv, out, F16); break;                                                 \
    default: wsum_g(n_kv, hd, 8, w, ldw, vT, ldv, out, F16); break;                                                \
    }

HS_WSUM_DECL(hs_attn_wsum_f16_avx512) { WSUM_DISPATCH(1) }

HS_WSUM_DECL(hs_attn_wsum_f32_avx512) { WSUM_DISPATCH(0) }

/* Scores: 32 positions per step (two vectors, so each cache line of a
 * transposed f16 key row is used whole), one pair of accumulators per head;
 * the tail 16 positions at a time under a mask. */
static inline __attribute__((always_inline)) void scores_g(int n_kv, int hd, const int G, const float *q,
                                                           const void *kT, size_t ldk, float *s, size_t lds,
                                                           float scale, const int F16) {
    const __m512 vs = _mm512_set1_ps(scale);
    int p = 0;
    for (; p + 32 <= n_kv; p += 32) {
        __m512 a0[HS_ATTN_MAX_HEADS], a1[HS_ATTN_MAX_HEADS];
        HS_UNROLL
        for (int h = 0; h < G; h++)
            a0[h] = a1[h] = _mm512_setzero_ps();
        for (int d = 0; d < hd; d++) {
            const size_t at = (size_t)d * ldk + (size_t)p;
            const __m512 k0 = load16(kT, at, 0xffff, F16), k1 = load16(kT, at + 16, 0xffff, F16);
            HS_UNROLL
            for (int h = 0; h < G; h++) {
                const __m512 qb = _mm512_set1_ps(q[h * hd + d]);
                a0[h] = _mm512_fmadd_ps(qb, k0, a0[h]);
                a1[h] = _mm512_fmadd_ps(qb, k1, a1[h]);
            }
        }
        HS_UNROLL
        for (int h = 0; h < G; h++) {
            _mm512_storeu_ps(s + (size_t)h * lds + p, _mm512_mul_ps(a0[h], vs));
            _mm512_storeu_ps(s + (size_t)h * lds + p + 16, _mm512_mul_ps(a1[h], vs));
        }
    }
    for (; p < n_kv; p += 16) {
        const __mmask16 m = n_kv - p >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n_kv - p)) - 1);
        __m512 a0[HS_ATTN_MAX_HEADS];
        HS_UNROLL
        for (int h = 0; h < G; h++)
            a0[h] = _mm512_setzero_ps();
        for (int d = 0; d < hd; d++) {
            const __m512 k0 = load16(kT, (size_t)d * ldk + (size_t)p, m, F16);
            HS_UNROLL
            for (int h = 0; h < G; h++)
                a0[h] = _mm512_fmadd_ps(_mm512_set1_ps(q[h * hd + d]), k0, a0[h]);
        }
        HS_UNROLL
        for (int h = 0; h < G; h++)
            _mm512_mask_storeu_ps(s + (size_t)h * lds + p, m, _mm512_mul_ps(a0[h], vs));
    }
}

#define SCORES_DISPATCH(F16)                                                                                       \
    switch (g) {                                                                                                   \
    case 1: scores_g(n_kv, hd, 1, q, kT, ldk, s, lds, scale, F16); break;                                          \
    case 2: scores_g(n_kv, hd, 2, q, kT, ldk, s, lds, scale, F16); break;                                          \
    case 3: scores_g(n_kv, hd, 3, q, kT, ldk, s, lds, scale, F16); break;                                          \
    case 4: scores_g(n_kv, hd, 4, q, kT, ldk, s, lds, scale, F16); break;                                          \
    case 5: scores_g(n_kv, hd, 5, q, kT, ldk, s, lds, scale, F16); break;                                          \
    case 6: scores_g(n_kv, hd, 6, q, kT, ldk, s, lds, scale, F16); break;                                          \
    case 7: scores_g(n_kv, hd, 7, q, kT, ldk, s, lds, scale, F16); break;                                          \
    default: scores_g(n_kv, hd, 8, q, kT, ldk, s, lds, scale, F16); break;                                         \
    }

HS_SCORES_DECL(hs_attn_scores_f16_avx512) { SCORES_DISPATCH(1) }

HS_SCORES_DECL(hs_attn_scores_f32_avx512) { SCORES_DISPATCH(0) }

/* ---- e^x, softmax, SwiGLU (see hs_exp_fn in ops.h for the method) ---- */

static inline __m512 exp16(__m512 x) {
    const __mmask16 nan_mask = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    const __m512 xc = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-104.0f)), _mm512_set1_ps(89.0f));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), xc);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.0f / 5040);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    /* scalef rounds once, into the subnormal range when it must */
    return _mm512_mask_mov_ps(_mm512_scalef_ps(p, n), nan_mask, x);
}

void hs_exp_avx512(float *y, const float *x, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, exp16(_mm512_loadu_ps(x + i)));
    if (i < n) {
        const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(y + i, m, exp16(_mm512_maskz_loadu_ps(m, x + i)));
    }
}

/* The largest of x[0..n), n >= 1. */
static inline float max_of(const float *x, int n) {
    __m512 vmax = _mm512_set1_ps(-INFINITY);
    int i = 0;
    for (; i + 16 <= n; i += 16)
        vmax = _mm512_max_ps(vmax, _mm512_loadu_ps(x + i));
    if (i < n)
        vmax = _mm512_max_ps(vmax, _mm512_mask_loadu_ps(vmax, (__mmask16)((1u << (n - i)) - 1), x + i));
    return _mm512_reduce_max_ps(vmax);
}

/* The mask of the last n % 16 lanes of a row of n. */
static inline __mmask16 tail_mask(int n) { return (__mmask16)((1u << (n % 16)) - 1); }

void hs_softmax_avx512(float *x, int n) {
    const __mmask16 tail = tail_mask(n);
    const __m512 mx = _mm512_set1_ps(max_of(x, n));
    __m512 vsum = _mm512_setzero_ps();
    int i;
    for (i = 0; i + 16 <= n; i += 16) {
        const __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), mx));
        _mm512_storeu_ps(x + i, e);
        vsum = _mm512_add_ps(vsum, e);
    }
    if (i < n) {
        const __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, x + i), mx));
        _mm512_mask_storeu_ps(x + i, tail, e);
        vsum = _mm512_add_ps(vsum, _mm512_maskz_mov_ps(tail, e));
    }
    const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(vsum));
    for (i = 0; i + 16 <= n; i += 16)
        _mm512_storeu_ps(x + i, _mm512_mul_ps(_mm512_loadu_ps(x + i), inv));
    if (i < n)
        _mm512_mask_storeu_ps(x + i, tail, _mm512_mul_ps(_mm512_maskz_loadu_ps(tail, x + i), inv));
}

/* e's 16 lanes widened (exactly) into two double accumulators of 8. */
static inline void add_widened(__m512d *lo, __m512d *hi, __m512 e) {
    *lo = _mm512_add_pd(*lo, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
    *hi = _mm512_add_pd(*hi, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e), 1))));
}

double hs_log_sum_exp_avx512(const float *x, int n) {
    const float m = max_of(x, n);
    if (!isfinite(m))
        return m;
    const __m512 mx = _mm512_set1_ps(m);
    __m512d lo = _mm512_setzero_pd(), hi = _mm512_setzero_pd();
    int i;
    for (i = 0; i + 16 <= n; i += 16)
        add_widened(&lo, &hi, exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), mx)));
    if (i < n) { /* lanes past n: x - max = 0 before the mask clears them */
        const __mmask16 tail = tail_mask(n);
        add_widened(&lo, &hi, _mm512_maskz_mov_ps(tail, exp16(_mm512_sub_ps(_mm512_mask_loadu_ps(mx, tail, x + i), mx))));
    }
    return (double)m + log(_mm512_reduce_add_pd(_mm512_add_pd(lo, hi)));
}

void hs_silu_mul_avx512(float *g, const float *u, size_t n) {
    const __m512 one = _mm512_set1_ps(1.0f), zero = _mm512_setzero_ps();
    size_t i = 0;
    for (; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        const __m512 x = _mm512_maskz_loadu_ps(m, g + i);
        const __m512 e = exp16(_mm512_sub_ps(zero, x));
        const __m512 y = _mm512_mul_ps(_mm512_div_ps(x, _mm512_add_ps(one, e)), _mm512_maskz_loadu_ps(m, u + i));
        _mm512_mask_storeu_ps(g + i, m, y);
    }
}
