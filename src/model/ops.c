#include "model/ops.h"

#include "base/cpu.h"

#include <math.h>
#include <pthread.h>
#include <stdbool.h>

/* Scalar scores, one dimension at a time over all positions (the order the
 * vector versions use, so they agree closely). */
static void scores_ref(int n_kv, int hd, int g, const float *q, const void *kT, size_t ldk, float *s, size_t lds,
                       float scale, bool f16) {
    const float *tab = hs_fp16_table();
    for (int h = 0; h < g; h++)
        for (int p = 0; p < n_kv; p++)
            s[(size_t)h * lds + p] = 0.0f;
    for (int d = 0; d < hd; d++) {
        for (int p = 0; p < n_kv; p++) {
            const size_t at = (size_t)d * ldk + (size_t)p;
            const float k = f16 ? tab[((const hs_fp16 *)kT)[at]] : ((const float *)kT)[at];
            for (int h = 0; h < g; h++)
                s[(size_t)h * lds + p] += q[h * hd + d] * k;
        }
    }
    for (int h = 0; h < g; h++)
        for (int p = 0; p < n_kv; p++)
            s[(size_t)h * lds + p] *= scale;
}

HS_SCORES_DECL(hs_attn_scores_f16_ref) { scores_ref(n_kv, hd, g, q, kT, ldk, s, lds, scale, true); }
HS_SCORES_DECL(hs_attn_scores_f32_ref) { scores_ref(n_kv, hd, g, q, kT, ldk, s, lds, scale, false); }

static void wsum_ref(int n_kv, int hd, int g, const float *w, size_t ldw, const void *vT, size_t ldv, float *out,
                     bool f16) {
    const float *tab = hs_fp16_table();
    for (int h = 0; h < g; h++) {
        for (int d = 0; d < hd; d++) {
            float acc = 0.0f;
            for (int p = 0; p < n_kv; p++) {
                const size_t at = (size_t)d * ldv + (size_t)p;
                const float v = f16 ? tab[((const hs_fp16 *)vT)[at]] : ((const float *)vT)[at];
                acc += w[(size_t)h * ldw + p] * v;
            }
            out[h * hd + d] = acc;
        }
    }
}

HS_WSUM_DECL(hs_attn_wsum_f16_ref) { wsum_ref(n_kv, hd, g, w, ldw, vT, ldv, out, true); }
HS_WSUM_DECL(hs_attn_wsum_f32_ref) { wsum_ref(n_kv, hd, g, w, ldw, vT, ldv, out, false); }

static struct hs_ops g_ops;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void pick(void) {
    g_ops.impl = "ref";
    g_ops.wsum_f16 = hs_attn_wsum_f16_ref;
    g_ops.wsum_f32 = hs_attn_wsum_f32_ref;
    g_ops.scores_f16 = hs_attn_scores_f16_ref;
    g_ops.scores_f32 = hs_attn_scores_f32_ref;
    g_ops.softmax = hs_softmax_ref;
    g_ops.silu_mul = hs_silu_mul_ref;
    g_ops.log_sum_exp = hs_log_sum_exp_ref;
    enum hs_cpu_level lv = hs_cpu_level();
    if (lv >= HS_CPU_AVX2) {
        g_ops.impl = "avx2";
        g_ops.wsum_f16 = hs_attn_wsum_f16_avx2;
        g_ops.wsum_f32 = hs_attn_wsum_f32_avx2;
        g_ops.scores_f16 = hs_attn_scores_f16_avx2;
        g_ops.scores_f32 = hs_attn_scores_f32_avx2;
        g_ops.softmax = hs_softmax_avx2;
        g_ops.silu_mul = hs_silu_mul_avx2;
        g_ops.log_sum_exp = hs_log_sum_exp_avx2;
    }
    if (lv >= HS_CPU_AVX512) {
        g_ops.impl = "avx512";
        g_ops.wsum_f16 = hs_attn_wsum_f16_avx512;
        g_ops.wsum_f32 = hs_attn_wsum_f32_avx512;
        g_ops.scores_f16 = hs_attn_scores_f16_avx512;
        g_ops.scores_f32 = hs_attn_scores_f32_avx512;
        g_ops.softmax = hs_softmax_avx512;
        g_ops.silu_mul = hs_silu_mul_avx512;
        g_ops.log_sum_exp = hs_log_sum_exp_avx512;
    }
}

const struct hs_ops *hs_ops_get(void) {
    pthread_once(&g_once, pick);
    return &g_ops;
}

void hs_rmsnorm(float *y, const float *x, const float *w, int n, float eps) {
    double ss = 0.0;
    for (int i = 0; i < n; i++)
        ss += (double)x[i] * x[i];
    const float scale = (float)(1.0 / sqrt(ss / n + eps));
    for (int i = 0; i < n; i++)
        y[i] = x[i] * scale * w[i];
}

void hs_add_rmsnorm(float *y, float *x, const float *d, const float *w, int n, float eps) {
    double ss = 0.0;
    for (int i = 0; i < n; i++) {
        x[i] += d[i];
        ss += (double)x[i] * x[i];
    }
    const float scale = (float)(1.0 / sqrt(ss / n + eps));
    for (int i = 0; i < n; i++)
        y[i] = x[i] * scale * w[i];
}

void hs_exp_ref(float *y, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        y[i] = expf(x[i]);
}

void hs_silu_mul_ref(float *g, const float *u, size_t n) {
    for (size_t i = 0; i < n; i++)
        g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

void hs_silu_mul(float *g, const float *u, size_t n) { hs_ops_get()->silu_mul(g, u, n); }

void hs_softmax(float *x, int n) { hs_ops_get()->softmax(x, n); }

double hs_log_sum_exp(const float *x, int n) { return hs_ops_get()->log_sum_exp(x, n); }

double hs_log_sum_exp_ref(const float *x, int n) {
    float mx = x[0];
    for (int i = 1; i < n; i++)
        mx = x[i] > mx ? x[i] : mx;
    if (!isfinite(mx))
        return mx;
    double sum = 0.0;
    for (int i = 0; i < n; i++)
        sum += exp((double)x[i] - (double)mx);
    return (double)mx + log(sum);
}

void hs_softmax_ref(float *x, int n) {
    float max = x[0];
    for (int i = 1; i < n; i++)
        max = x[i] > max ? x[i] : max;
    float sum = 0.0f;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += x[i];
    }
    const float inv = 1.0f / sum;
    for (int i = 0; i < n; i++)
        x[i] *= inv;
}

void hs_rope_norm(float *x, int n_rot, const float *cs) {
    for (int i = 0; i < n_rot / 2; i++) {
        const float c = cs[2 * i], s = cs[2 * i + 1];
        const float x0 = x[2 * i], x1 = x[2 * i + 1];
        x[2 * i] = x0 * c - x1 * s;
        x[2 * i + 1] = x0 * s + x1 * c;
    }
}

void hs_rope_neox(float *x, int n_rot, const float *cs) {
    const int half = n_rot / 2;
    for (int i = 0; i < half; i++) {
        const float c = cs[2 * i], s = cs[2 * i + 1];
        const float x0 = x[i], x1 = x[i + half];
        x[i] = x0 * c - x1 * s;
        x[i + half] = x0 * s + x1 * c;
    }
}

void hs_f32_to_f16_strided(hs_fp16 *y, size_t stride, const float *x, int n) {
    for (int i = 0; i < n; i++)
        y[(size_t)i * stride] = hs_f32_to_fp16(x[i]);
}
