/* Speed of the K-quant kernels on Llama-3.2-1B-shaped matrices.
 *
 *   decode:  one token, every weight row against one Q8_K row (vec_dot), as
 *            GB/s of weights streamed. "cold" walks a set of copies larger
 *            than the caches (as a model does), "hot" repeats one matrix.
 *   prefill: 512 tokens through the gemm tile kernel (HS_Q_K_GEMM_ROWS x
 *            HS_Q_K_GEMM_COLS tiles, rows outermost), as GMAC/s.
 * With 1 thread the time is also taken as the thread's CPU time, which a
 * shared machine disturbs less than wall time.
 * Medians of several runs (the machine is shared). Not part of `make test`.
 *
 * Build by hand after a library build, e.g.:
 *   make BUILDROOT=build/me build/me/libhestia.a
 *   cc -O2 -std=c11 -D_GNU_SOURCE -Isrc bench/bench_q_k.c build/me/libhestia.a -lm -pthread -o /tmp/bench_q_k
 *   /tmp/bench_q_k [--quick] */
#include "base/clock.h"
#include "base/cpu.h"
#include "base/pool.h"
#include "tensor/qtype_impl.h"

#include "qk_bench_util.h"

#include <math.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MB (1024.0 * 1024.0)

struct kind {
    const char *name;
    int type;
    size_t bytes;
    hs_from_float_fn quant;
    hs_vec_dot_fn dot;
    hs_gemm_fn gemm;
};

struct job {
    const struct kind *k;
    const char *w; /* rows x row_bytes */
    int rows, cols;
    size_t row_bytes;
    const char *act; /* n_tok Q8_K rows */
    size_t act_row;
    int n_tok;
    float *out; /* n_tok x rows */
};

static void run_decode(void *arg, int ith, int nth)
{
    struct job *j = arg;
    long lo, hi;
    hs_pool_split(j->rows, ith, nth, &lo, &hi);
    for (long r = lo; r < hi; r++)
        j->k->dot(j->cols, &j->out[r], j->w + (size_t)r * j->row_bytes, j->act);
}

static void run_prefill(void *arg, int ith, int nth)
{
    struct job *j = arg;
    long lo, hi;
    const int TR = HS_Q_K_GEMM_ROWS, TCOL = HS_Q_K_GEMM_COLS;
    hs_pool_split((j->rows + TR - 1) / TR, ith, nth, &lo, &hi);
    for (long t = lo * TR; t < hi * TR && t < j->rows; t += TR) {
        const int nr = j->rows - t < TR ? (int)(j->rows - t) : TR;
        for (int c = 0; c < j->n_tok; c += TCOL) {
            const int nc = j->n_tok - c < TCOL ? j->n_tok - c : TCOL;
            j->k->gemm(j->cols, j->out + (size_t)c * j->rows + t, (size_t)j->rows,
                       j->w + (size_t)t * j->row_bytes, j->row_bytes, j->act + (size_t)c * j->act_row,
                       j->act_row, nr, nc);
        }
    }
}

/* Returns GB/s for decode of one rows x cols matrix on `pool` (wall time, or
 * the caller's CPU time when cpu is set: meaningful with 1 thread only). */
static double bench_decode(hs_pool *pool, const struct kind *k, int rows, int cols, bool cold, int reps,
                           bool cpu)
{
    size_t rb, ab;
    char *w0 = make_matrix(k->quant, k->bytes, rows, cols, &rb);
    const size_t mbytes = rb * (size_t)rows;
    /* cold: enough copies to pass 600 MB, more than L2 and the L3 share we get */
    const int copies = cold ? (int)(600.0 * MB / (double)mbytes) + 1 : 1;
    char **w = malloc(sizeof(char *) * (size_t)copies);
    w[0] = w0;
    for (int c = 1; c < copies; c++) {
        w[c] = aligned_alloc(64, (mbytes + 63) / 64 * 64);
        memcpy(w[c], w0, mbytes);
    }
    char *act = make_act(1, cols, &ab);
    float *out = malloc(sizeof(float) * (size_t)rows);
    struct job j = {k, w0, rows, cols, rb, act, ab, 1, out};
    double *t = malloc(sizeof(double) * (size_t)reps);
    for (int c = 0; c < copies; c++) { /* warm-up pass */
        j.w = w[c];
        hs_pool_run(pool, run_decode, &j);
    }
    for (int r = 0; r < reps; r++) {
        const int64_t t0 = hs_now_ns();
        const double c0 = cpu_s();
        for (int c = 0; c < copies; c++) {
            j.w = w[c];
            hs_pool_run(pool, run_decode, &j);
        }
        t[r] = (cpu ? cpu_s() - c0 : (double)(hs_now_ns() - t0) * 1e-9) / copies;
    }
    const double gbs = (double)mbytes / median(t, reps) * 1e-9;
    for (int c = 0; c < copies; c++)
        free(w[c]);
    free(w);
    free(act);
    free(out);
    free(t);
    return gbs;
}

/* Returns seconds per call of a 512-token prefill of one matrix. */
static double bench_prefill(hs_pool *pool, const struct kind *k, int rows, int cols, int n_tok, int reps,
                            bool cpu)
{
    size_t rb, ab;
    char *w = make_matrix(k->quant, k->bytes, rows, cols, &rb);
    char *act = make_act(n_tok, cols, &ab);
    float *out = malloc(sizeof(float) * (size_t)rows * (size_t)n_tok);
    struct job j = {k, w, rows, cols, rb, act, ab, n_tok, out};
    double *t = malloc(sizeof(double) * (size_t)reps);
    hs_pool_run(pool, run_prefill, &j);
    for (int r = 0; r < reps; r++) {
        const int64_t t0 = hs_now_ns();
        const double c0 = cpu_s();
        hs_pool_run(pool, run_prefill, &j);
        t[r] = cpu ? cpu_s() - c0 : (double)(hs_now_ns() - t0) * 1e-9;
    }
    const double sec = median(t, reps);
    free(w);
    free(act);
    free(out);
    free(t);
    return sec;
}

int main(int argc, char **argv)
{
    const bool quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    if (hs_cpu_level() < HS_CPU_AVX512) { /* the kernels below are called by name */
        fprintf(stderr, "bench_q_k: needs AVX-512 (this CPU: %s)\n", hs_cpu_level_name(hs_cpu_level()));
        return 1;
    }
    const struct kind kinds[] = {
        {"q4_K", HS_TYPE_Q4_K, sizeof(hs_block_q4_k), hs_q4_k_from_float_ref, hs_q4_k_vec_dot_avx512,
         hs_q4_k_gemm_avx512},
        {"q6_K", HS_TYPE_Q6_K, sizeof(hs_block_q6_k), hs_q6_k_from_float_ref, hs_q6_k_vec_dot_avx512,
         hs_q6_k_gemm_avx512},
        {"q5_K", HS_TYPE_Q5_K, sizeof(hs_block_q5_k), hs_q5_k_from_float_ref, hs_q5_k_vec_dot_avx512, NULL},
        {"q3_K", HS_TYPE_Q3_K, sizeof(hs_block_q3_k), hs_q3_k_from_float_ref, hs_q3_k_vec_dot_avx512, NULL},
        {"q2_K", HS_TYPE_Q2_K, sizeof(hs_block_q2_k), hs_q2_k_from_float_ref, hs_q2_k_vec_dot_avx512, NULL},
        {"q4_K/avx2", HS_TYPE_Q4_K, sizeof(hs_block_q4_k), hs_q4_k_from_float_ref, hs_q4_k_vec_dot_avx2,
         NULL},
        {"q6_K/avx2", HS_TYPE_Q6_K, sizeof(hs_block_q6_k), hs_q6_k_from_float_ref, hs_q6_k_vec_dot_avx2,
         NULL},
    };
    const int shapes[][2] = {{2048, 2048}, {8192, 2048}, {2048, 8192}};
    const int reps = quick ? 3 : 7;
    hs_pool *pools[2];
    hs_pool_create(1, &pools[0]);
    hs_pool_create(2, &pools[1]);

    printf("decode (1 token, vec_dot), GB/s of weights; cold = from memory, hot = cache-resident;\n"
           "1t = one thread (wall), 1t cpu = its CPU time, 2t = two threads (wall)\n");
    printf("%-10s %-11s %9s %9s %9s %9s %9s %9s\n", "type", "rows x cols", "cold 1t", "cold cpu", "cold 2t",
           "hot 1t", "hot cpu", "hot 2t");
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
            if (quick && s > 0)
                continue;
            if (k >= 2 && s > 0) /* the other types: one shape is enough */
                continue;
            double g[6];
            for (int p = 0; p < 6; p++) /* cold 1t, cold 1t cpu, cold 2t, hot ... */
                g[p] = bench_decode(pools[p % 3 == 2], &kinds[k], shapes[s][0], shapes[s][1], p < 3, reps,
                                    p % 3 == 1);
            printf("%-10s %5dx%-5d %9.2f %9.2f %9.2f %9.2f %9.2f %9.2f\n", kinds[k].name, shapes[s][0],
                   shapes[s][1], g[0], g[1], g[2], g[3], g[4], g[5]);
            fflush(stdout);
        }
    }

    const int n_tok = 512;
    printf("\nprefill (%d tokens, gemm %dx%d tiles), GMAC/s (int8 multiply-adds) and ms per matrix\n", n_tok,
           HS_Q_K_GEMM_ROWS, HS_Q_K_GEMM_COLS);
    printf("%-10s %-11s %9s %9s %9s %9s %9s\n", "type", "rows x cols", "GMAC 1t", "GMAC cpu", "GMAC 2t",
           "ms cpu", "ms 2t");
    for (size_t k = 0; k < 2; k++) {
        for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
            if (quick && s > 0)
                continue;
            const double macs = (double)shapes[s][0] * shapes[s][1] * n_tok;
            double sec[3];
            for (int p = 0; p < 3; p++)
                sec[p] = bench_prefill(pools[p == 2], &kinds[k], shapes[s][0], shapes[s][1], n_tok,
                                       quick ? 3 : 5, p == 1);
            printf("%-10s %5dx%-5d %9.1f %9.1f %9.1f %9.1f %9.1f\n", kinds[k].name, shapes[s][0],
                   shapes[s][1], macs / sec[0] * 1e-9, macs / sec[1] * 1e-9, macs / sec[2] * 1e-9,
                   sec[1] * 1e3, sec[2] * 1e3);
            fflush(stdout);
        }
    }
    hs_pool_free(pools[0]);
    hs_pool_free(pools[1]);
    return 0;
}
