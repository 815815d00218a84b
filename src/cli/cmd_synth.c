/* 'hestia synth': writes a synthetic llama-shaped GGUF model (random weights,
 * real shapes) for tests and benchmarks. */
#include "base/clock.h"
#include "base/parse.h"
#include "base/pool.h"
#include "cli/cli.h"
#include "model/ftype_mix.h"
#include "model/synth.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: hestia synth -o OUT.gguf [options]\n"
               "\n"
               "Writes a llama-shaped GGUF model with seeded random weights.\n"
               "\n"
               "  -o, --output FILE     the model to write (required)\n"
               "  --shape NAME          1b (Llama-3.2-1B), 360m (SmolLM2-360M) or tiny (default)\n"
               "  --n-embd N, --n-layer N, --n-head N, --n-head-kv N, --n-ff N, --n-vocab N\n"
               "                        override one dimension of the shape\n"
               "  --type T              f32 (default), f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1,\n"
               "                        q2_k, q3_k, q4_k, q5_k, q6_k, or a mix: q3_k_s, q3_k_m,\n"
               "                        q3_k_l, q4_k_s, q4_k_m, q5_k_s, q5_k_m\n"
               "  --vocab-from GGUF     copy the tokenizer.* keys of GGUF (default: a synthesized\n"
               "                        SentencePiece vocabulary of n_vocab tokens)\n"
               "  --vocab-only          write metadata and tokenizer only, no tensors\n"
               "  --seed S              weights seed (default 42)\n"
               "  --arch A              llama (default) or qwen2\n"
               "  --untied              write a separate output.weight\n"
               "  --ctx N               llama.context_length (default 4096)\n"
               "  -t, --threads N       quantization threads (default: all CPUs)\n"
               "  -q, --quiet           no progress bar\n"
               "\n"
               "  --lora-for BASE.gguf  write a random LoRA adapter for BASE instead of a model:\n"
               "                        every projection of every block, alpha = rank; with\n"
               "  --rank R              its rank (default 16), --seed S, and\n"
               "  --std X               the standard deviation of A and B (default 0.05), and\n"
               "  --lora-type T         f32 (default) or f16\n");
}

struct progress {
    double t0, last;
    uint64_t data_bytes;
    bool quiet;
};

static void fmt_eta(char *buf, size_t cap, double s)
{
    if (s < 0 || s > 359999)
        snprintf(buf, cap, "--:--");
    else
        snprintf(buf, cap, "%d:%02d", (int)s / 60, (int)s % 60);
}

/* One \r-refreshed line: bar, percent, write rate and time left. */
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
    double mb = frac * (double)pr->data_bytes / 1e6;
    double rate = el > 0 ? mb / el : 0;
    char eta[16];
    fmt_eta(eta, sizeof eta, frac > 0 ? el * (1 - frac) / frac : -1);
    char bar[31];
    int fill = (int)(frac * 30);
    for (int i = 0; i < 30; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[30] = 0;
    fprintf(stderr, "\r[%s] %5.1f%%  %8.1f MB  %7.1f MB/s  ETA %s ", bar, frac * 100, mb, rate, eta);
    if (done >= total)
        fputc('\n', stderr);
    fflush(stderr);
}

static int int_arg(const char *flag, const char *v, int min, int max, int *out)
{
    if (!v || hs_parse_int(v, min, max, out) != 0)
        return hs_cli_usage("synth", "%s needs a whole number in [%d, %d]", flag, min, max);
    return 0;
}

int hs_cmd_synth(int argc, char **argv)
{
    struct hs_synth_params p;
    hs_synth_params_default(&p);
    const char *out = NULL;
    int threads = hs_cpu_count();
    bool quiet = false;
    const char *lora_for = NULL;
    int lora_rank = 16;
    float lora_std = 0.05f;
    bool lora_f16 = false;
    /* dimension overrides apply after the shape, whatever the flag order */
    int ov_embd = 0, ov_layer = 0, ov_head = 0, ov_head_kv = 0, ov_ff = 0, ov_vocab = 0;
    hs_err err = {0};

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = 0;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            if (!v)
                return hs_cli_usage("synth", "%s needs a file name", a);
            out = v;
            i++;
        } else if (!strcmp(a, "--shape")) {
            if (!v)
                return hs_cli_usage("synth", "--shape needs a name");
            if (hs_synth_shape(&p, v, &err) != HS_OK)
                return hs_cli_usage("synth", "%s", err.msg);
            i++;
        } else if (!strcmp(a, "--n-embd")) {
            rc = int_arg(a, v, 1, 1 << 20, &ov_embd), i++;
        } else if (!strcmp(a, "--n-layer")) {
            rc = int_arg(a, v, 1, 10000, &ov_layer), i++;
        } else if (!strcmp(a, "--n-head")) {
            rc = int_arg(a, v, 1, 1 << 16, &ov_head), i++;
        } else if (!strcmp(a, "--n-head-kv")) {
            rc = int_arg(a, v, 1, 1 << 16, &ov_head_kv), i++;
        } else if (!strcmp(a, "--n-ff")) {
            rc = int_arg(a, v, 1, 1 << 22, &ov_ff), i++;
        } else if (!strcmp(a, "--n-vocab")) {
            rc = int_arg(a, v, 259, 1 << 24, &ov_vocab), i++;
        } else if (!strcmp(a, "--ctx")) {
            rc = int_arg(a, v, 1, 1 << 24, &p.n_ctx_train), i++;
        } else if (!strcmp(a, "--type")) {
            if (!v || !hs_ftype_find(v))
                return hs_cli_usage("synth", "--type: unknown type '%s'", v ? v : "");
            p.ftype = v;
            i++;
        } else if (!strcmp(a, "--vocab-from")) {
            if (!v)
                return hs_cli_usage("synth", "--vocab-from needs a GGUF file");
            p.vocab_from = v;
            i++;
        } else if (!strcmp(a, "--vocab-only")) {
            p.vocab_only = true;
        } else if (!strcmp(a, "--seed")) {
            if (!v || hs_parse_u64(v, &p.seed) != 0)
                return hs_cli_usage("synth", "--seed needs a whole number");
            i++;
        } else if (!strcmp(a, "--arch")) {
            if (!v || (strcmp(v, "llama") != 0 && strcmp(v, "qwen2") != 0))
                return hs_cli_usage("synth", "--arch is llama or qwen2");
            p.arch = v;
            i++;
        } else if (!strcmp(a, "--lora-for")) {
            if (!v)
                return hs_cli_usage("synth", "--lora-for needs the base model's GGUF");
            lora_for = v;
            i++;
        } else if (!strcmp(a, "--rank")) {
            rc = int_arg(a, v, 1, 4096, &lora_rank), i++;
        } else if (!strcmp(a, "--lora-type")) {
            if (!v || (strcmp(v, "f32") && strcmp(v, "f16")))
                return hs_cli_usage("synth", "--lora-type is f32 or f16");
            lora_f16 = !strcmp(v, "f16");
            i++;
        } else if (!strcmp(a, "--std")) {
            double x = 0;
            if (!v || hs_parse_f64(v, &x) != 0 || !(x > 0 && x < 100))
                return hs_cli_usage("synth", "--std needs a number in (0, 100)");
            lora_std = (float)x;
            i++;
        } else if (!strcmp(a, "--untied")) {
            p.tied_output = false;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            rc = int_arg(a, v, 1, 1024, &threads), i++;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            quiet = true;
        } else {
            return hs_cli_usage("synth", "unknown option '%s'", a);
        }
        if (rc)
            return rc;
    }
    if (!out)
        return hs_cli_usage("synth", "-o OUT.gguf is required");
    if (lora_for) {
        if (hs_synth_lora_write(out, lora_for, lora_rank, lora_std, p.seed, lora_f16, &err) != HS_OK)
            return hs_cli_fail_err("synth", &err);
        if (!quiet)
            fprintf(stderr, "synth: wrote the rank-%d adapter %s for %s\n", lora_rank, out, lora_for);
        return 0;
    }
    bool untied = !p.tied_output;
    if (ov_embd)
        p.n_embd = ov_embd;
    if (ov_layer)
        p.n_layer = ov_layer;
    if (ov_head)
        p.n_head = ov_head;
    if (ov_head_kv)
        p.n_head_kv = ov_head_kv;
    if (ov_ff)
        p.n_ff = ov_ff;
    if (ov_vocab)
        p.n_vocab = ov_vocab;
    if (untied)
        p.tied_output = false;

    uint64_t data_bytes = 0, n_weights = 0;
    if (hs_synth_data_bytes(&p, &data_bytes, &n_weights, &err) != HS_OK)
        return hs_cli_fail_err("synth", &err);
    hs_pool *pool = NULL;
    if (hs_pool_create(threads, &pool) != HS_OK)
        return hs_cli_fail("synth", "cannot start %d threads", threads);
    struct progress pr = {.t0 = hs_now_s(), .data_bytes = data_bytes, .quiet = quiet || p.vocab_only};
    p.progress = on_progress;
    p.user = &pr;
    if (!quiet)
        fprintf(stderr,
                "synth: %s, %s, n_embd %d, %d layers, %d/%d heads, n_ff %d, %.1f M weights, %.1f MB, %d "
                "threads\n",
                out, p.ftype, p.n_embd, p.n_layer, p.n_head, p.n_head_kv, p.n_ff, (double)n_weights / 1e6,
                (double)data_bytes / 1e6, threads);
    int rc = hs_synth_write(out, &p, pool, &err);
    hs_pool_free(pool);
    if (rc != HS_OK)
        return hs_cli_fail_err("synth", &err);
    if (!quiet)
        fprintf(stderr, "synth: wrote %s in %.1f s\n", out, hs_now_s() - pr.t0);
    return 0;
}
