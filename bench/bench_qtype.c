/* Speed of the float and legacy kernels and of hs_matmul on a 2048 x 2048
 * matrix (a 1B-class model's attention projection).
 *
 *   vec_dot:  one thread, every weight row against one activation row, as
 *             GB/s of weights read. "hot" repeats one matrix (L2/L3),
 *             "cold" walks copies larger than the caches, as a model does.
 *   matmul:   hs_matmul with 1 token (generation: GB/s) and with 512 tokens
 *             (prompt: GFLOP/s counted as 2 * rows * cols * tokens), for 1
 *             and 2 threads.
 * Medians and best of several runs (the machine is shared). Not part of `make test`.
 *
 * Build by hand after a library build, e.g.:
 *   make BUILDROOT=build/me build/me/libhestia.a
 *   cc -O2 -std=c11 -D_GNU_SOURCE -Isrc bench/bench_qtype.c build/me/libhestia.a -lm -pthread -o /tmp/bench_qtype
 *   /tmp/bench_qtype [--quick] [type ...]      (types by name: q8_0 f16 ...) */
#include "base/clock.h"
#include "base/mem.h"
#include "base/pool.h"
#include "base/rng.h"
#include "tensor/matmul.h"
#include "tensor/qtype.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N 2048
#define PP_TOK 512
#define COLD_BYTES (256u << 20)

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

/* The best run: what the code does when nothing else competes for the core
 * (the medians show what it does on a busy machine). */
static double best(double *v, int n) {
    double b = v[0];
    for (int i = 1; i < n; i++)
        b = v[i] > b ? v[i] : b;
    return b;
}

static void fill(float *x, size_t n, uint64_t seed) {
    hs_rng r;
    hs_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++)
        x[i] = hs_rng_normal(&r);
}

static void bench_type(int type, int reps, hs_pool **pools) {
    const struct hs_qtype *q = hs_qtype(type);
    const struct hs_qtype *qv = hs_qtype(q->vec_dot_type);
    const size_t rb = hs_qtype_row_bytes(type, N), mat = rb * N;
    const size_t n_copies = COLD_BYTES / mat + 1;
    uint8_t *w = hs_aligned_alloc(64, mat * n_copies);
    float *f = hs_aligned_alloc(64, (size_t)N * N * sizeof(float)); /* N >= PP_TOK */
    float *y = hs_aligned_alloc(64, (size_t)N * PP_TOK * sizeof(float));
    if (!w || !f || !y) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    fill(f, (size_t)N * N, 1);
    q->from_float_ref(f, w, (int64_t)N * N);
    for (size_t c = 1; c < n_copies; c++)
        memcpy(w + c * mat, w, mat);
    fill(f, (size_t)N * PP_TOK, 2);
    uint8_t *act = hs_aligned_alloc(64, hs_qtype_row_bytes(q->vec_dot_type, N));
    qv->from_float_ref(f, act, N);

    printf("%-5s row %zu B\n", q->name, rb);
    for (int l = HS_CPU_REF; l <= HS_CPU_AVX512; l++) {
        const struct hs_qtype_kernels *k = hs_qtype_kernels_at(type, (enum hs_cpu_level)l);
        if (!k || (l == HS_CPU_REF && reps < 5))
            continue;
        double hot[32], cold[32];
        int nrep = l == HS_CPU_REF ? 3 : reps;
        for (int r = 0; r < nrep; r++) {
            double t0 = hs_now_s();
            for (int i = 0; i < N; i++)
                k->vec_dot(N, &y[i], w + (size_t)i * rb, act);
            hot[r] = (double)mat / (hs_now_s() - t0) / 1e9;
            const uint8_t *m = w + (size_t)(r % (int)n_copies) * mat;
            t0 = hs_now_s();
            for (int i = 0; i < N; i++)
                k->vec_dot(N, &y[i], m + (size_t)i * rb, act);
            cold[r] = (double)mat / (hs_now_s() - t0) / 1e9;
        }
        printf("  vec_dot %-6s 1 thread: hot %6.1f GB/s (best %5.1f)  cold %6.1f GB/s (best %5.1f)\n", k->impl,
               median(hot, nrep), best(hot, nrep), median(cold, nrep), best(cold, nrep));
    }
    for (int p = 0; p < 2; p++) {
        hs_mm_scratch sc = {0};
        double tg[32], pp[32];
        for (int r = 0; r < reps; r++) {
            /* A fresh copy each time so the weights come from memory. */
            struct hs_mat m = {type, N, N, rb, w + (size_t)(r % (int)n_copies) * mat};
            double t0 = hs_now_s();
            hs_matmul(pools[p], &sc, &m, f, N, 1, y, N);
            tg[r] = (double)mat / (hs_now_s() - t0) / 1e9;
        }
        const int pp_reps = reps < 5 ? 2 : 5;
        for (int r = 0; r < pp_reps; r++) {
            struct hs_mat m = {type, N, N, rb, w};
            double t0 = hs_now_s();
            hs_matmul(pools[p], &sc, &m, f, N, PP_TOK, y, N);
            pp[r] = 2.0 * N * N * PP_TOK / (hs_now_s() - t0) / 1e9;
        }
        printf("  matmul %d thread%s: tg %6.1f GB/s (best %5.1f)   pp%d %6.1f GFLOP/s (best %6.1f) (%s)\n", p + 1,
               p ? "s" : " ", median(tg, reps), best(tg, reps), PP_TOK, median(pp, pp_reps), best(pp, pp_reps),
               hs_qtype_kernels(type)->impl);
        hs_mm_scratch_free(&sc);
    }
    hs_aligned_free(w);
    hs_aligned_free(f);
    hs_aligned_free(y);
    hs_aligned_free(act);
}

int main(int argc, char **argv) {
    int reps = 15, first = 1;
    if (argc > 1 && !strcmp(argv[1], "--quick")) {
        reps = 3;
        first = 2;
    }
    hs_pool *pools[2];
    if (hs_pool_create(1, &pools[0]) || hs_pool_create(2, &pools[1]))
        return 1;
    static const int k_default[] = {HS_TYPE_Q8_0, HS_TYPE_Q4_0, HS_TYPE_F16};
    if (first < argc) {
        for (int i = first; i < argc; i++) {
            const int t = hs_type_from_name(argv[i]);
            if (t < 0 || !hs_qtype(t)) {
                fprintf(stderr, "unknown type %s\n", argv[i]);
                return 1;
            }
            bench_type(t, reps, pools);
        }
    } else {
        for (size_t i = 0; i < sizeof k_default / sizeof k_default[0]; i++)
            bench_type(k_default[i], reps, pools);
    }
    hs_pool_free(pools[0]);
    hs_pool_free(pools[1]);
    return 0;
}
