/* AVX2 + F16C kernels of the forward pass (see ops.h). */
#include "model/ops.h"

#include <immintrin.h>
#include <math.h>

/* The loops over heads and rows have compile-time trip counts (G, R) once
 * inlined; unrolling them whole is what keeps the accumulators in registers. */
#define HS_UNROLL _Pragma("GCC unroll 16")

static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline __attribute__((always_inline)) __m256 load8(const void *b, size_t i, const int F16) {
    if (F16)
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const hs_fp16 *)b + i)));
    return _mm256_loadu_ps((const float *)b + i);
}

static inline __attribute__((always_inline)) float load1(const void *b, size_t i, const int F16) {
    return F16 ? hs_fp16_to_f32(((const hs_fp16 *)b)[i]) : ((const float *)b)[i];
}

/* Weighted sum: R rows of V against the G softmax rows, 8 positions per
 * step, one accumulator per (head, row): G * R of the 16 registers. */
static inline __attribute__((always_inline)) void wsum_rows(int n, const int G, const int R, const float *w,
                                                            size_t ldw, const void *vT, size_t ldv, int d0, int hd,
                                                            float *out, const int F16) {
    __m256 acc[HS_ATTN_MAX_HEADS][4];
    HS_UNROLL
    for (int h = 0; h < G; h++)
        HS_UNROLL
        for (int r = 0; r < R; r++)
            acc[h][r] = _mm256_setzero_ps();
    int p = 0;
    for (; p + 8 <= n; p += 8) {
        __m256 v[4];
        HS_UNROLL
        for (int r = 0; r < R; r++)
            v[r] = load8(vT, (size_t)(d0 + r) * ldv + (size_t)p, F16);
        HS_UNROLL
        for (int h = 0; h < G; h++) {
            const __m256 wh = _mm256_loadu_ps(w + (size_t)h * ldw + p);
            HS_UNROLL
            for (int r = 0; r < R; r++)
                acc[h][r] = _mm256_fmadd_ps(wh, v[r], acc[h][r]);
        }
    }
    HS_UNROLL
    for (int h = 0; h < G; h++) {
        HS_UNROLL
        for (int r = 0; r < R; r++) {
            float t = hsum8(acc[h][r]);
            for (int q = p; q < n; q++)
                t += w[(size_t)h * ldw + q] * load1(vT, (size_t)(d0 + r) * ldv + (size_t)q, F16);
            out[h * hd + d0 + r] = t;
        }
    }
}

static inline __attribute__((always_inline)) void wsum_g(int n, int hd, const int G, const float *w, size_t ldw,
                                                         const void *vT, size_t ldv, float *out, const int F16) {
    const int R = G <= 2 ? 4 : G <= 4 ? 2 : 1;
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

HS_WSUM_DECL(hs_attn_wsum_f16_avx2) { WSUM_DISPATCH(1) }

HS_WSUM_DECL(hs_attn_wsum_f32_avx2) { WSUM_DISPATCH(0) }

/* Scores: 8 positions per vector, one accumulator per head; the last
 * n_kv % 8 positions one at a time. */
static inline __attribute__((always_inline)) void scores_g(int n_kv, int hd, const int G, const float *q,
                                                           const void *kT, size_t ldk, float *s, size_t lds,
                                                           float scale, const int F16) {
    const __m256 vs = _mm256_set1_ps(scale);
    int p = 0;
    for (; p + 8 <= n_kv; p += 8) {
        __m256 acc[HS_ATTN_MAX_HEADS];
        HS_UNROLL
        for (int h = 0; h < G; h++)
            acc[h] = _mm256_setzero_ps();
        for (int d = 0; d < hd; d++) {
            const __m256 k = load8(kT, (size_t)d * ldk + (size_t)p, F16);
            HS_UNROLL
            for (int h = 0; h < G; h++)
                acc[h] = _mm256_fmadd_ps(_mm256_set1_ps(q[h * hd + d]), k, acc[h]);
        }
        HS_UNROLL
        for (int h = 0; h < G; h++)
            _mm256_storeu_ps(s + (size_t)h * lds + p, _mm256_mul_ps(acc[h], vs));
    }
    for (; p < n_kv; p++) {
        float acc[HS_ATTN_MAX_HEADS] = {0};
        for (int d = 0; d < hd; d++) {
            const float k = load1(kT, (size_t)d * ldk + (size_t)p, F16);
            HS_UNROLL
            for (int h = 0; h < G; h++)
                acc[h] += q[h * hd + d] * k;
        }
        HS_UNROLL
        for (int h = 0; h < G; h++)
            s[(size_t)h * lds + p] = acc[h] * scale;
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

HS_SCORES_DECL(hs_attn_scores_f16_avx2) { SCORES_DISPATCH(1) }

HS_SCORES_DECL(hs_attn_scores_f32_avx2) { SCORES_DISPATCH(0) }

/* ---- e^x, softmax, SwiGLU (see hs_exp_fn in ops.h for the method) ---- */

static inline __m256 exp8(__m256 x) {
    const __m256 nan_mask = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
    const __m256 xc = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-104.0f)), _mm256_set1_ps(89.0f));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), xc);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.0f / 5040);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    /* 2^n in two halves so that each stays a normal float down to n = -150
     * (results in the subnormal range round once, at the last multiply) */
    const __m256i ni = _mm256_cvtps_epi32(n);
    const __m256i n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
    const __m256i bias = _mm256_set1_epi32(127);
    const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
    const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
    const __m256 y = _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
    return _mm256_blendv_ps(y, x, nan_mask);
}

void hs_exp_avx2(float *y, const float *x, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, exp8(_mm256_loadu_ps(x + i)));
    if (i < n) {
        float in[8] = {0}, out[8];
        for (size_t j = i; j < n; j++)
            in[j - i] = x[j];
        _mm256_storeu_ps(out, exp8(_mm256_loadu_ps(in)));
        for (size_t j = i; j < n; j++)
            y[j] = out[j - i];
    }
}

/* The sum in two double accumulators of 4 lanes, each e^ widened exactly;
 * the tail through a padded block whose extra lanes are -inf (e^ = 0). */
double hs_log_sum_exp_avx2(const float *x, int n) {
    __m256 vmax = _mm256_set1_ps(-INFINITY);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(x + i));
    float m = -INFINITY, buf[8];
    _mm256_storeu_ps(buf, vmax);
    for (int k = 0; k < 8; k++)
        m = buf[k] > m ? buf[k] : m;
    for (int k = i; k < n; k++)
        m = x[k] > m ? x[k] : m;
    if (!isfinite(m))
        return m;
    const __m256 mx = _mm256_set1_ps(m);
    __m256d lo = _mm256_setzero_pd(), hi = _mm256_setzero_pd();
    for (i = 0; i + 8 <= n; i += 8) {
        const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), mx));
        lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
    }
    if (i < n) {
        for (int k = 0; k < 8; k++)
            buf[k] = i + k < n ? x[i + k] : -INFINITY;
        const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(buf), mx));
        lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
    }
    double s[4];
    _mm256_storeu_pd(s, _mm256_add_pd(lo, hi));
    return (double)m + log((s[0] + s[1]) + (s[2] + s[3]));
}

void hs_softmax_avx2(float *x, int n) {
    float max = x[0];
    for (int i = 1; i < n; i++)
        max = x[i] > max ? x[i] : max;
    const __m256 vmax = _mm256_set1_ps(max);
    __m256 vsum = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), vmax));
        _mm256_storeu_ps(x + i, e);
        vsum = _mm256_add_ps(vsum, e);
    }
    float sum = hsum8(vsum);
    if (i < n) {
        float in[8], out[8];
        for (int j = 0; j < 8; j++)
            in[j] = i + j < n ? x[i + j] - max : -INFINITY;
        _mm256_storeu_ps(out, exp8(_mm256_loadu_ps(in)));
        for (int j = 0; i + j < n; j++) {
            x[i + j] = out[j];
            sum += out[j];
        }
    }
    const __m256 inv = _mm256_set1_ps(1.0f / sum);
    for (i = 0; i + 8 <= n; i += 8)
        _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), inv));
    for (; i < n; i++)
        x[i] *= 1.0f / sum;
}

void hs_silu_mul_avx2(float *g, const float *u, size_t n) {
    size_t i = 0;
    const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    for (; i + 8 <= n; i += 8) {
        const __m256 x = _mm256_loadu_ps(g + i);
        const __m256 e = exp8(_mm256_sub_ps(zero, x));
        _mm256_storeu_ps(g + i, _mm256_mul_ps(_mm256_div_ps(x, _mm256_add_ps(one, e)), _mm256_loadu_ps(u + i)));
    }
    for (; i < n; i++) {
        float e;
        float mx = -g[i];
        hs_exp_avx2(&e, &mx, 1);
        g[i] = g[i] / (1.0f + e) * u[i];
    }
}
