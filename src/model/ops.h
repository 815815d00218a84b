/* Internal to model/: the kernels of the forward pass around the matmuls:
 * attention over the KV cache, e^x, softmax, SwiGLU, norms, rope. Scalar
 * versions in ops.c; AVX2 / AVX-512 versions of the hot ones in ops_avx2.c /
 * ops_avx512.c, picked once from cpuid (hs_ops_get). */
#ifndef HS_MODEL_OPS_H
#define HS_MODEL_OPS_H

#include "base/fp16.h"

#include <stddef.h>

/* Attention over a cache that stores K and V transposed: for each of the
 * kv_dim dimensions, one row of positions (ld values apart), f16 or f32.
 * One call serves g query heads that share a KV head, so every cached value
 * is loaded (and converted) once for all of them, and positions run along
 * the vectors.
 *
 * scores: s[h * lds + p] = scale * sum_d q[h * hd + d] * kT[d * ldk + p]
 *         for h < g, p < n_kv (no horizontal sum per score);
 * wsum:   out[h * hd + d] = sum_p w[h * ldw + p] * vT[d * ldv + p]
 *         for h < g, d < hd: the softmax rows against several rows of V at
 *         once, so that the FMAs outnumber the loads. */
typedef void (*hs_attn_scores_fn)(int n_kv, int hd, int g, const float *q, const void *kT, size_t ldk, float *s,
                                  size_t lds, float scale);
typedef void (*hs_attn_wsum_fn)(int n_kv, int hd, int g, const float *w, size_t ldw, const void *vT, size_t ldv,
                                float *out);

/* The most heads one call takes; callers split larger groups. */
#define HS_ATTN_MAX_HEADS 8

/* y[i] = e^x[i]. The vector versions reduce x = n ln2 + r (|r| <= ln2 / 2,
 * ln2 split in two for an exact reduction), take e^r from its degree-7
 * Taylor polynomial (truncation < 1e-8 relative) and scale by 2^n, keeping
 * overflow (inf), underflow (subnormals, 0) and NaN as expf does. They stay
 * within 1 ulp of the exact value over the whole range (0.86 measured; the
 * test checks 1), libm's expf within 0.5. */
typedef void (*hs_exp_fn)(float *y, const float *x, size_t n);
typedef void (*hs_softmax_fn)(float *x, int n);
typedef void (*hs_silu_mul_fn)(float *g, const float *u, size_t n);
/* ln(sum(e^x[i])) over n >= 1 values, as max + ln(sum(e^(x - max))) with
 * the sum in double (a row of 150k logits summed in float loses digits):
 * the normaliser of a softmax, for log-probabilities. Every e^ within 1 ulp
 * (hs_exp_fn), so the result is within a few 1e-7 of the exact value. A row
 * whose max is not finite gives that max. */
typedef double (*hs_log_sum_exp_fn)(const float *x, int n);

struct hs_ops {
    const char *impl;
    hs_attn_scores_fn scores_f16; /* kT is hs_fp16 */
    hs_attn_scores_fn scores_f32; /* kT is float */
    hs_attn_wsum_fn wsum_f16;     /* vT is hs_fp16 */
    hs_attn_wsum_fn wsum_f32;     /* vT is float */
    hs_softmax_fn softmax;
    hs_silu_mul_fn silu_mul;
    hs_log_sum_exp_fn log_sum_exp;
};

/* Best kernels for this CPU ($HESTIA_CPU caps the level). Thread-safe. */
const struct hs_ops *hs_ops_get(void);

/* Every level's kernels, for tests (_ref: scalar, written for clarity). */
#define HS_SCORES_DECL(name)                                                                                       \
    void name(int n_kv, int hd, int g, const float *q, const void *kT, size_t ldk, float *s, size_t lds, float scale)
#define HS_WSUM_DECL(name)                                                                                         \
    void name(int n_kv, int hd, int g, const float *w, size_t ldw, const void *vT, size_t ldv, float *out)
HS_SCORES_DECL(hs_attn_scores_f16_ref);
HS_SCORES_DECL(hs_attn_scores_f16_avx2);
HS_SCORES_DECL(hs_attn_scores_f16_avx512);
HS_SCORES_DECL(hs_attn_scores_f32_ref);
HS_SCORES_DECL(hs_attn_scores_f32_avx2);
HS_SCORES_DECL(hs_attn_scores_f32_avx512);
HS_WSUM_DECL(hs_attn_wsum_f16_ref);
HS_WSUM_DECL(hs_attn_wsum_f16_avx2);
HS_WSUM_DECL(hs_attn_wsum_f16_avx512);
HS_WSUM_DECL(hs_attn_wsum_f32_ref);
HS_WSUM_DECL(hs_attn_wsum_f32_avx2);
HS_WSUM_DECL(hs_attn_wsum_f32_avx512);

/* y = x / rms(x) * w over n values; the sum of squares is taken in double.
 * y may equal x. */
void hs_rmsnorm(float *y, const float *x, const float *w, int n, float eps);

/* x[i] += d[i], then y = rmsnorm(x) * w: the residual add fused into the norm
 * that follows it. */
void hs_add_rmsnorm(float *y, float *x, const float *d, const float *w, int n, float eps);

/* g[i] = silu(g[i]) * u[i] (SwiGLU), silu(z) = z / (1 + e^-z). Best kernel
 * for this CPU; the _ref versions use libm's expf. */
void hs_silu_mul(float *g, const float *u, size_t n);
void hs_silu_mul_ref(float *g, const float *u, size_t n);
void hs_silu_mul_avx2(float *g, const float *u, size_t n);
void hs_silu_mul_avx512(float *g, const float *u, size_t n);

/* Softmax of x[0..n) in place, in f32 (n >= 1): e^(x - max) / sum. */
void hs_softmax(float *x, int n);
void hs_softmax_ref(float *x, int n);
void hs_softmax_avx2(float *x, int n);
void hs_softmax_avx512(float *x, int n);

/* hs_log_sum_exp_fn: the best kernel for this CPU, and each level's. */
double hs_log_sum_exp(const float *x, int n);
double hs_log_sum_exp_ref(const float *x, int n);
double hs_log_sum_exp_avx2(const float *x, int n);
double hs_log_sum_exp_avx512(const float *x, int n);

void hs_exp_ref(float *y, const float *x, size_t n);
void hs_exp_avx2(float *y, const float *x, size_t n);
void hs_exp_avx512(float *y, const float *x, size_t n);

/* Rotates the first n_rot values of one head by the angles whose cosines and
 * sines are cs[2i], cs[2i + 1] (i < n_rot / 2). NORM: pairs (2i, 2i + 1);
 * NEOX: pairs (i, i + n_rot / 2). */
void hs_rope_norm(float *x, int n_rot, const float *cs);
void hs_rope_neox(float *x, int n_rot, const float *cs);

/* y[i * stride] = f16(x[i]): one position of the transposed K and V rows. */
void hs_f32_to_f16_strided(hs_fp16 *y, size_t stride, const float *x, int n);

#endif
