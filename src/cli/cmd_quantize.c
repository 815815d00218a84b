/* 'hestia quantize': llama-quantize's job, with llama.cpp's per-tensor type
 * mixes (model/quantize.h does the work; this parses, shows progress and
 * prints the summary). */
#include "base/clock.h"
#include "base/parse.h"
#include "base/pool.h"
#include "cli/cli.h"
#include "model/ftype_mix.h"
#include "model/quantize.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: hestia quantize IN.gguf OUT.gguf TYPE [options]\n"
               "\n"
               "Writes IN's model in file type TYPE, with llama.cpp's per-tensor type choice.\n"
               "\n"
               "  TYPE                  f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q2_k,\n"
               "                        q3_k_s, q3_k_m, q3_k_l, q4_k_s, q4_k_m, q5_k_s, q5_k_m,\n"
               "                        q6_k (also the pure q3_k, q4_k, q5_k)\n"
               "  -t, --threads N       threads (default: all CPUs)\n"
               "  --allow-requantize    accept an input that is already quantized\n"
               "  --pure                the base type for every matrix (no per-tensor rules)\n"
               "  -q, --quiet           no progress bar or summary\n");
}

struct progress {
    double t0, last;
    bool quiet;
};

/* One \r-refreshed line: bar, percent, MB of input done and the rate. */
static void on_progress(void *user, uint64_t done, uint64_t total)
{
    struct progress *pr = user;
    if (pr->quiet)
        return;
    double now = hs_now_s();
    if (done < total && now - pr->last < 0.2)
        return;
    pr->last = now;
    double frac = total ? (double)done / (double)total : 1.0;
    double el = now - pr->t0;
    double mb = (double)done / 1e6;
    char bar[31];
    int fill = (int)(frac * 30);
    for (int i = 0; i < 30; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[30] = 0;
    fprintf(stderr, "\r[%s] %5.1f%%  %8.1f MB  %7.1f MB/s ", bar, frac * 100, mb, el > 0 ? mb / el : 0.0);
    if (done >= total)
        fputc('\n', stderr);
    fflush(stderr);
}

int hs_cmd_quantize(int argc, char **argv)
{
    const char *pos[3] = {NULL, NULL, NULL};
    int n_pos = 0;
    int threads = hs_cpu_count();
    bool quiet = false;
    struct hs_quantize_params p = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (i + 1 >= argc || hs_parse_int(argv[i + 1], 1, 1024, &threads) != 0)
                return hs_cli_usage("quantize", "%s needs a whole number in [1, 1024]", a);
            i++;
        } else if (!strcmp(a, "--allow-requantize")) {
            p.allow_requantize = true;
        } else if (!strcmp(a, "--pure")) {
            p.pure = true;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            quiet = true;
        } else if (a[0] == '-' && a[1] != 0) {
            return hs_cli_usage("quantize", "unknown option '%s'", a);
        } else if (n_pos < 3) {
            pos[n_pos++] = a;
        } else {
            return hs_cli_usage("quantize", "unexpected argument '%s'", a);
        }
    }
    if (n_pos < 3)
        return hs_cli_usage("quantize", "needs IN.gguf OUT.gguf TYPE");
    if (!hs_ftype_find(pos[2]))
        return hs_cli_usage("quantize", "unknown type '%s'", pos[2]);
    p.ftype = pos[2];

    hs_pool *pool = NULL;
    if (hs_pool_create(threads, &pool) != HS_OK)
        return hs_cli_fail("quantize", "cannot start %d threads", threads);
    struct progress pr = {.t0 = hs_now_s(), .quiet = quiet};
    p.progress = on_progress;
    p.user = &pr;
    if (!quiet)
        fprintf(stderr, "quantize: %s -> %s, %s, %d threads\n", pos[0], pos[1], p.ftype, threads);
    struct hs_quantize_stats st;
    hs_err err = {0};
    int rc = hs_quantize_file(pos[0], pos[1], &p, pool, &st, &err);
    hs_pool_free(pool);
    if (rc != HS_OK)
        return hs_cli_fail_err("quantize", &err);
    if (!quiet) {
        double el = hs_now_s() - pr.t0;
        double bpw_in = st.n_weights ? 8.0 * (double)st.in_data_bytes / (double)st.n_weights : 0;
        double bpw_out = st.n_weights ? 8.0 * (double)st.out_data_bytes / (double)st.n_weights : 0;
        fprintf(stderr,
                "quantize: %s: %.2f MB (%.2f bpw) -> %s: %.2f MB (%.2f bpw), %d of %d tensors converted, "
                "%.1f s\n",
                pos[0], (double)st.in_file_bytes / 1e6, bpw_in, pos[1], (double)st.out_file_bytes / 1e6, bpw_out,
                st.n_converted, st.n_tensors, el);
    }
    return 0;
}
