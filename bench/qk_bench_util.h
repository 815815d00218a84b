/* What the K-quant kernel benchmarks (bench_q_k.c, bench_gemm_qk.c) share:
 * a seeded random source, thread CPU time, medians, and matrices of
 * quantized weights and Q8_K activations. Header-only: each benchmark is one
 * translation unit built by hand (see their headers). */
#ifndef HS_BENCH_QK_BENCH_UTIL_H
#define HS_BENCH_QK_BENCH_UTIL_H

#include "tensor/qtype_impl.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static inline float frand(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (float)((double)(g_rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static inline double cpu_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static inline int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static inline double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* A rows x cols matrix of blocks of `bytes` per 256 values, quantized by
 * quant: 64 distinct rows, repeated (the kernels' speed does not depend on
 * the values). */
static inline char *make_matrix(hs_from_float_fn quant, size_t bytes, int rows, int cols, size_t *row_bytes)
{
    *row_bytes = (size_t)cols / HS_QK_K * bytes;
    char *w = aligned_alloc(64, (*row_bytes * (size_t)rows + 63) / 64 * 64);
    float *x = malloc(sizeof(float) * (size_t)cols);
    for (int r = 0; r < rows && r < 64; r++) {
        for (int i = 0; i < cols; i++)
            x[i] = frand() * 0.05f;
        quant(x, w + (size_t)r * *row_bytes, cols);
    }
    for (int r = 64; r < rows; r++)
        memcpy(w + (size_t)r * *row_bytes, w + (size_t)(r % 64) * *row_bytes, *row_bytes);
    free(x);
    return w;
}

/* n_tok rows of Q8_K activations. */
static inline char *make_act(int n_tok, int cols, size_t *act_row)
{
    *act_row = (size_t)cols / HS_QK_K * sizeof(hs_block_q8_k);
    char *a = aligned_alloc(64, (*act_row * (size_t)n_tok + 63) / 64 * 64);
    float *x = malloc(sizeof(float) * (size_t)cols);
    for (int t = 0; t < n_tok; t++) {
        for (int i = 0; i < cols; i++)
            x[i] = frand();
        hs_q8_k_from_float_ref(x, a + (size_t)t * *act_row, cols);
    }
    free(x);
    return a;
}

#endif
