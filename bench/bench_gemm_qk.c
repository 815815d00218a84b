/* Speed of the K-quant tile kernels at decode-batch sizes: one weight matrix
 * against 1, 2, 4, 8 and 16 Q8_K tokens through hs_q*_k_gemm_avx512
 * (HS_Q_K_GEMM_ROWS-row tiles, all tokens in one tile), beside one token
 * through hs_q*_k_vec_dot_avx512. One thread; the time is the thread's CPU
 * time (a shared machine disturbs it less than wall time), the median of
 * many runs. Prints ms per matrix and, for the tiles, the cost per token
 * relative to vec_dot's one token. Not part of `make test`.
 *
 * Build by hand after a library build, e.g.:
 *   make BUILDROOT=build/me build/me/libhestia.a
 *   cc -O2 -std=c11 -D_GNU_SOURCE -Isrc bench/bench_gemm_qk.c build/me/libhestia.a -lm -pthread \
 *      -o /tmp/bench_gemm_qk
 *   /tmp/bench_gemm_qk [reps=31] [amxg|head]
 * Where AMX is enabled it also times the Q4_K generation kernels on AMX
 * (q_k_amxg_avx512.c) and checks their bits against hs_q4_k_amxg_ref;
 * "amxg" prints only that part. */
#include "base/cpu.h"
#include "base/err.h"
#include "base/mem.h"
#include "base/parse.h"
#include "tensor/qtype_impl.h"

#include "qk_bench_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct kind {
    const char *name;
    size_t bytes;
    hs_from_float_fn quant;
    hs_vec_dot_fn dot;
    hs_gemm_fn gemm;
};

/* Seconds (CPU) per pass over the matrix; n_tok 0 = vec_dot, one token. */
static double bench(const struct kind *k, const char *w, size_t rb, int rows, int cols, const char *act,
                    size_t ab, int n_tok, float *out, int reps)
{
    double *t = malloc(sizeof(double) * (size_t)reps);
    for (int r = -1; r < reps; r++) { /* r = -1: warm-up */
        const double c0 = cpu_s();
        if (n_tok == 0) {
            for (int i = 0; i < rows; i++)
                k->dot(cols, &out[i], w + (size_t)i * rb, act);
        } else {
            for (int i = 0; i < rows; i += HS_Q_K_GEMM_ROWS)
                k->gemm(cols, out + i, (size_t)rows, w + (size_t)i * rb, rb, act, ab, HS_Q_K_GEMM_ROWS, n_tok);
        }
        if (r >= 0)
            t[r] = cpu_s() - c0;
    }
    const double sec = median(t, reps);
    free(t);
    return sec;
}

/* Seconds (CPU) per pass of the AMX generation kernel over the matrix for
 * n_tok <= 8 tokens, the packing of their activations included; checks the
 * results against hs_q4_k_amxg_ref once. */
static double bench_amxg(const char *w, size_t rb, int rows, int cols, const char *act, size_t ab, int n_tok,
                         float *out, int reps)
{
    hs_q4_k_amxg_panel *p = hs_aligned_alloc(64, hs_q4_k_amxg_panel_bytes(cols));
    double *t = malloc(sizeof(double) * (size_t)reps);
    for (int r = -1; r < reps; r++) {
        const double c0 = cpu_s();
        hs_q4_k_amxg_pack(p, act, ab, n_tok, cols);
        for (int i = 0; i < rows; i += 512)
            hs_q4_k_amxg_gemm(cols, out + i, (size_t)rows, w + (size_t)i * rb, rb, p, rows - i < 512 ? rows - i : 512,
                              n_tok);
        if (r >= 0)
            t[r] = cpu_s() - c0;
    }
    int bad = 0;
    for (int c = 0; c < n_tok; c++)
        for (int i = 0; i < rows; i += 97) {
            float ref;
            hs_q4_k_amxg_ref(cols, &ref, w + (size_t)i * rb, act + (size_t)c * ab);
            if (memcmp(&ref, &out[(size_t)c * rows + i], sizeof ref) != 0 && bad++ < 3)
                fprintf(stderr, "amxg mismatch tok %d row %d: %.9g vs ref %.9g\n", c, i, out[(size_t)c * rows + i], ref);
        }
    const double sec = median(t, reps);
    free(t);
    hs_aligned_free(p);
    return sec;
}

int main(int argc, char **argv)
{
    int reps = 31;
    if (argc > 1 && hs_parse_int(argv[1], 1, 10000, &reps) != HS_OK) {
        fprintf(stderr, "usage: bench_gemm_qk [reps [amxg|head]]\n");
        return 1;
    }
    if (hs_cpu_level() < HS_CPU_AVX512) { /* the kernels below are called by name */
        fprintf(stderr, "bench_gemm_qk: needs AVX-512\n");
        return 1;
    }
    const struct kind kinds[] = {
        {"q4_K", sizeof(hs_block_q4_k), hs_q4_k_from_float_ref, hs_q4_k_vec_dot_avx512, hs_q4_k_gemm_avx512},
        {"q6_K", sizeof(hs_block_q6_k), hs_q6_k_from_float_ref, hs_q6_k_vec_dot_avx512, hs_q6_k_gemm_avx512},
        {"q5_K", sizeof(hs_block_q5_k), hs_q5_k_from_float_ref, hs_q5_k_vec_dot_avx512, hs_q5_k_gemm_avx512},
    };
    /* bench_gemm_qk REPS amxg: the AMX generation kernel's table only;
     * bench_gemm_qk REPS head: Q6_K at the output head's size (a Q4_K_M
     * model's largest matrix, far beyond the caches), 1 and 8 tokens */
    if (argc > 2 && strcmp(argv[2], "head") == 0) {
        const int rows = 65536, cols = 2048;
        size_t rb, ab;
        char *w = make_matrix(kinds[1].quant, kinds[1].bytes, rows, cols, &rb);
        char *act = make_act(16, cols, &ab);
        float *out = malloc(sizeof(float) * (size_t)rows * 16);
        const double one = bench(&kinds[1], w, rb, rows, cols, act, ab, 0, out, reps);
        const double g1 = bench(&kinds[1], w, rb, rows, cols, act, ab, 1, out, reps);
        const double g8 = bench(&kinds[1], w, rb, rows, cols, act, ab, 8, out, reps);
        printf("q6_K %5dx%-5d vec_dot %7.3f  gemm1 %7.3f  gemm8 %7.3f (%4.2f x vec_dot)\n", rows, cols, one * 1e3,
               g1 * 1e3, g8 * 1e3, g8 / one);
        free(w);
        free(act);
        free(out);
        return 0;
    }
    const int shapes[][2] = {{8192, 2048}, {2048, 2048}};
    const int toks[] = {0, 1, 2, 4, 8, 16};
    printf("ms per matrix, 1 thread (CPU time, median of %d); (x) = per-token cost / vec_dot's\n", reps);
    printf("%-5s %-10s %8s", "type", "rows x cols", "vec_dot");
    for (size_t t = 1; t < sizeof(toks) / sizeof(toks[0]); t++)
        printf("   gemm%-2d (x)   ", toks[t]);
    printf("\n");
    const bool only_amxg = argc > 2 && strcmp(argv[2], "amxg") == 0;
    for (size_t k = 0; k < (only_amxg ? 0 : sizeof(kinds) / sizeof(kinds[0])); k++) {
        for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
            const int rows = shapes[s][0], cols = shapes[s][1];
            size_t rb, ab;
            char *w = make_matrix(kinds[k].quant, kinds[k].bytes, rows, cols, &rb);
            char *act = make_act(16, cols, &ab);
            float *out = malloc(sizeof(float) * (size_t)rows * 16);
            printf("%-5s %5dx%-5d", kinds[k].name, rows, cols);
            double base = 0;
            for (size_t t = 0; t < sizeof(toks) / sizeof(toks[0]); t++) {
                const double sec = bench(&kinds[k], w, rb, rows, cols, act, ab, toks[t], out, reps);
                if (t == 0) {
                    base = sec;
                    printf(" %8.3f", sec * 1e3);
                } else {
                    printf("  %7.3f (%4.2f)", sec * 1e3, sec / toks[t] / base);
                }
                fflush(stdout);
            }
            printf("\n");
            free(w);
            free(act);
            free(out);
        }
    }
    if (hs_amx_enabled()) {
        printf("q4_K: the AMX generation kernels; one token through hs_q4_k_vec_dot_amxg_avx512, then\n"
               "1..8 through hs_q4_k_amxg_gemm (packing included); (x) as above:\n");
        for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
            const struct kind *kd = &kinds[0];
            const int rows = shapes[s][0], cols = shapes[s][1];
            size_t rb, ab;
            char *w = make_matrix(kd->quant, kd->bytes, rows, cols, &rb);
            char *act = make_act(16, cols, &ab);
            float *out = malloc(sizeof(float) * (size_t)rows * 16);
            const double base = bench(kd, w, rb, rows, cols, act, ab, 0, out, reps);
            printf("%-5s %5dx%-5d %8.3f", kd->name, rows, cols, base * 1e3);
            const struct kind k1 = {"", 0, NULL, hs_q4_k_vec_dot_amxg_avx512, NULL};
            const double one = bench(&k1, w, rb, rows, cols, act, ab, 0, out, reps);
            int bad = 0;
            for (int i = 0; i < rows; i += 97) {
                float ref;
                hs_q4_k_amxg_ref(cols, &ref, w + (size_t)i * rb, act);
                if (memcmp(&ref, &out[i], sizeof ref) != 0 && bad++ < 3)
                    fprintf(stderr, "vec_dot_amxg mismatch row %d: %.9g vs ref %.9g\n", i, out[i], ref);
            }
            printf("  dot_amxg %7.3f (%4.2f)", one * 1e3, one / base);
            const int at[] = {1, 2, 4, 8};
            for (size_t t = 0; t < 4; t++) {
                const double sec = bench_amxg(w, rb, rows, cols, act, ab, at[t], out, reps);
                printf("   amxg%-2d %7.3f (%4.2f)", at[t], sec * 1e3, sec / at[t] / base);
                fflush(stdout);
            }
            printf("\n");
            free(w);
            free(act);
            free(out);
        }
    }
    return 0;
}
