/* Generation throughput of the scheduler with LoRA adapters: N jobs at once
 * (greedy, ignore_eos), each with a prompt of P random tokens and G
 * generated tokens, run with no adapter, with one adapter shared by every
 * job, and with N distinct adapters (one per job), rank R on the
 * projections of MASK (bit i: q, k, v, o, gate, up, down; 0x7f all seven,
 * 0x05 q and v), random weights written to a temporary folder first.
 * Prints per run the decode throughput once every job is generating
 * (tokens of all jobs / time), the wall time and time to first token, then
 * each adapter run as a ratio to the one without. Not part of `make test`.
 *
 * Build by hand after a library build, e.g.:
 *   make BUILDROOT=build/me build/me/libhestia.a
 *   cc -O2 -std=c11 -D_GNU_SOURCE -Isrc bench/bench_sched_lora.c build/me/libhestia.a \
 *      $(pkg-config --libs jansson libpcre2-8 libutf8proc libmicrohttpd libcurl sqlite3 libfyaml \
 *      libsodium libxxhash gsl) -lm -pthread -o /tmp/bench_sched_lora
 *   /tmp/bench_sched_lora build/bench/1b-q4_k_m.gguf [threads=2] [jobs=13] [prompt=16] [gen=32]
 *                         [rank=16] [mask=0x7f] [reps=1] [f16=0] */
#include "base/clock.h"
#include "base/fp16.h"
#include "base/parse.h"
#include "base/rng.h"
#include "engine/adapter.h"
#include "engine/sched.h"
#include "gguf/gguf.h"
#include "gguf/gguf_types.h"
#include "model/context.h"
#include "model/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static int arg_int(int argc, char **argv, int i, int def)
{
    int v;
    if (argc <= i || hs_parse_int(argv[i], 0, 1 << 20, &v) != HS_OK)
        return def;
    return v;
}

static const char *const PROJ[7] = {"attn_q.weight",      "attn_k.weight",   "attn_v.weight",
                                    "attn_output.weight", "ffn_gate.weight", "ffn_up.weight",
                                    "ffn_down.weight"};

/* A random rank-r adapter of m (A, B ~ N(0, 0.01^2), alpha = r) at path,
 * its tensors F16 (as llama.cpp's converter writes them) or F32. */
static int write_adapter(const hs_model *m, const char *path, uint64_t seed, int r, unsigned mask, bool f16)
{
    const hs_gguf *g = hs_model_gguf(m);
    const struct hs_hparams *hp = hs_model_hparams(m);
    hs_gguf_writer *w;
    hs_err err = {0};
    if (hs_gguf_writer_open(path, &w, &err))
        return -1;
    hs_gguf_w_str(w, "general.architecture", hp->arch, strlen(hp->arch));
    hs_gguf_w_str(w, "general.type", "adapter", 7);
    hs_gguf_w_str(w, "adapter.type", "lora", 4);
    hs_gguf_w_f32(w, "adapter.lora.alpha", (float)r);
    hs_rng rng;
    hs_rng_seed(&rng, seed);
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1 && hs_gguf_w_begin_data(w, &err))
            break;
        for (int l = 0; l < hp->n_layer; l++)
            for (int p = 0; p < 7; p++) {
                if (!(mask & (1u << p)))
                    continue;
                char tn[96], an[112];
                snprintf(tn, sizeof tn, "blk.%d.%s", l, PROJ[p]);
                const struct hs_gguf_tensor *t = hs_gguf_find_tensor(g, tn);
                if (!t)
                    continue;
                const int64_t in = t->ne[0], out = t->ne[1];
                if (pass == 0) {
                    const int64_t ne_a[2] = {in, r}, ne_b[2] = {r, out};
                    snprintf(an, sizeof an, "%s.lora_a", tn);
                    hs_gguf_w_tensor(w, an, f16 ? HS_TYPE_F16 : HS_TYPE_F32, 2, ne_a);
                    snprintf(an, sizeof an, "%s.lora_b", tn);
                    hs_gguf_w_tensor(w, an, f16 ? HS_TYPE_F16 : HS_TYPE_F32, 2, ne_b);
                    continue;
                }
                for (int half = 0; half < 2; half++) {
                    const size_t cnt = (size_t)(half ? out : in) * (size_t)r;
                    float *buf = malloc(cnt * sizeof(float));
                    hs_fp16 *half = malloc(cnt * sizeof(hs_fp16));
                    for (size_t i = 0; i < cnt; i++) {
                        buf[i] = hs_rng_normal(&rng) * 0.01f;
                        half[i] = hs_f32_to_fp16(buf[i]);
                    }
                    if (f16)
                        hs_gguf_w_data(w, half, cnt * sizeof(hs_fp16), &err);
                    else
                        hs_gguf_w_data(w, buf, cnt * sizeof(float), &err);
                    free(buf);
                    free(half);
                }
            }
    }
    return hs_gguf_w_close(w, &err) ? -1 : 0;
}

struct result {
    double decode_tps, wall_s, ttft_ms;
    double cpu_s; /* user + system time of the whole run (prefill included), all threads */
};

static double cpu_now(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           (double)ru.ru_stime.tv_usec / 1e6;
}

/* n jobs at once, job i with adapters[i] (NULL: none). */
static struct result run(hs_sched *s, int n, int n_prompt, int n_gen, int n_vocab, hs_adapter **adapters,
                         uint64_t seed)
{
    hs_rng rng;
    hs_rng_seed(&rng, seed);
    int32_t *prompts = malloc(sizeof(int32_t) * (size_t)n * (size_t)n_prompt);
    hs_job **jobs = calloc((size_t)n, sizeof *jobs);
    for (int i = 0; i < n * n_prompt; i++)
        prompts[i] = i % n_prompt == 0 ? 1 : 3 + (int32_t)(hs_rng_u64(&rng) % (uint64_t)(n_vocab - 3));
    const double t0 = hs_now_s(), c0 = cpu_now();
    for (int i = 0; i < n; i++) {
        struct hs_job_params jp = {.prompt = prompts + (size_t)i * n_prompt,
                                   .n_prompt = n_prompt,
                                   .max_tokens = n_gen,
                                   .top_logprobs = -1,
                                   .ignore_eos = true};
        hs_sampler_params_default(&jp.sampling);
        jp.sampling.temperature = 0.0f;
        if (adapters && adapters[i]) {
            jp.adapters = &adapters[i];
            jp.n_adapters = 1;
        }
        hs_err err = {0};
        if (hs_sched_submit(s, &jp, &jobs[i], &err)) {
            fprintf(stderr, "submit: %s\n", err.msg);
            exit(1);
        }
    }
    /* Decode phase: from the last job's first token to the last job's end
     * (times from the DONE events, relative to each job's submit, which are
     * all within microseconds of t0). */
    double last_first = 0, last_end = 0, ttft = 0;
    int gen_after = 0;
    for (int i = 0; i < n; i++) {
        struct hs_job_event ev;
        while (hs_job_next(jobs[i], &ev, -1) == 1) {
            hs_job_event_clear(&ev);
            if (ev.kind != HS_EV_TOKEN)
                break;
        }
        if (ev.kind != HS_EV_DONE) {
            fprintf(stderr, "job %d: %s\n", i, ev.message);
            exit(1);
        }
        last_first = ev.ttft_ms > last_first ? ev.ttft_ms : last_first;
        last_end = ev.total_ms > last_end ? ev.total_ms : last_end;
        ttft += ev.ttft_ms;
        gen_after += ev.n_gen - 1;
        hs_job_free(jobs[i]);
    }
    struct result r = {.decode_tps = gen_after / ((last_end - last_first) / 1000.0),
                       .wall_s = hs_now_s() - t0,
                       .ttft_ms = ttft / n,
                       .cpu_s = cpu_now() - c0};
    free(prompts);
    free(jobs);
    return r;
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Seconds of CPU this thread has run: with one thread the pool runs every
 * job on the caller, so this is the step's own work, whatever else the
 * machine runs meanwhile (a shared machine's wall times swing by 2x). */
static double thread_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The decode step alone, without the scheduler: a batch-invariant context
 * with n sequences of n_prompt tokens each, then `steps` decode steps of one
 * token per sequence, sequence i with adapters[i] (NULL: none) as its own
 * set. Returns the median step time in ms (min in *min_ms): CPU time of
 * this thread with threads == 1, else wall time. */
static double ctx_steps(const hs_model *m, int threads, int n, int n_prompt, int steps, hs_adapter **adapters,
                        double *min_ms)
{
    const int V = hs_model_hparams(m)->n_vocab;
    const struct hs_ctx_params cp = {.n_ctx = n_prompt + steps + 1,
                                     .n_seq = n,
                                     .n_batch = n * n_prompt,
                                     .n_threads = threads,
                                     .batch_invariant = true};
    hs_ctx *c;
    hs_err err = {0};
    if (hs_ctx_create(m, &cp, &c, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    for (int i = 0; i < n; i++)
        if (adapters && adapters[i]) {
            const struct hs_lora *l = hs_adapter_lora(adapters[i]);
            const float sc = 1.0f;
            if (hs_ctx_seq_set_loras(c, i, &l, &sc, 1, &err)) {
                fprintf(stderr, "%s\n", err.msg);
                exit(1);
            }
        }
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)n * (size_t)n_prompt);
    int32_t *seq = malloc(sizeof(int32_t) * (size_t)n * (size_t)n_prompt);
    int8_t *want = calloc((size_t)n * (size_t)n_prompt, 1);
    hs_rng rng;
    hs_rng_seed(&rng, 5);
    for (int i = 0; i < n * n_prompt; i++) {
        tok[i] = 3 + (int32_t)(hs_rng_u64(&rng) % (uint64_t)(V - 3));
        seq[i] = i / n_prompt;
    }
    struct hs_batch b = {
        .n = n * n_prompt, .tokens = tok, .seq = seq, .logits = want, .n_prompt = n * n_prompt};
    if (hs_decode(c, &b, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    double *t = malloc(sizeof(double) * (size_t)steps);
    for (int s = 0; s < steps; s++) {
        for (int i = 0; i < n; i++) {
            tok[i] = 3 + (int32_t)(hs_rng_u64(&rng) % (uint64_t)(V - 3));
            seq[i] = i;
            want[i] = 1;
        }
        struct hs_batch d = {.n = n, .tokens = tok, .seq = seq, .logits = want};
        const double t0 = threads == 1 ? thread_cpu_s() : hs_now_s();
        if (hs_decode(c, &d, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            exit(1);
        }
        t[s] = ((threads == 1 ? thread_cpu_s() : hs_now_s()) - t0) * 1000.0;
    }
    qsort(t, (size_t)steps, sizeof *t, cmp_double);
    *min_ms = t[0];
    const double med = t[steps / 2];
    free(t);
    free(tok);
    free(seq);
    free(want);
    hs_ctx_free(c);
    return med;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL [threads] [jobs] [prompt] [gen] [rank] [mask] [reps] [f16]\n",
                argv[0]);
        return 2;
    }
    const int threads = arg_int(argc, argv, 2, 2), n = arg_int(argc, argv, 3, 13);
    const int n_prompt = arg_int(argc, argv, 4, 16), n_gen = arg_int(argc, argv, 5, 32);
    const int rank = arg_int(argc, argv, 6, 16), reps = arg_int(argc, argv, 8, 1);
    const bool f16 = arg_int(argc, argv, 9, 0) != 0;
    unsigned mask = 0x7f;
    if (argc > 7)
        mask = (unsigned)strtoul(argv[7], NULL, 0) & 0x7f;
    hs_model *m;
    hs_err err = {0};
    if (hs_model_load(argv[1], NULL, &m, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    const int V = hs_model_hparams(m)->n_vocab;

    char dir[] = "/tmp/hs-bench-lora-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    hs_adapter **distinct = calloc((size_t)n, sizeof *distinct), **shared = calloc((size_t)n, sizeof *shared);
    const double tw = hs_now_s();
    for (int i = 0; i < n; i++) {
        char path[128], name[32];
        snprintf(path, sizeof path, "%s/a%d.gguf", dir, i);
        snprintf(name, sizeof name, "agent%d", i);
        if (write_adapter(m, path, 1000 + (uint64_t)i, rank, mask, f16) ||
            hs_adapter_load(name, path, m, 1.0f, &distinct[i], &err)) {
            fprintf(stderr, "adapter %d: %s\n", i, err.msg);
            return 1;
        }
        unlink(path);
    }
    rmdir(dir);
    for (int i = 0; i < n; i++)
        shared[i] = distinct[0];
    printf("%d %s adapters of rank %d (mask 0x%02x) written and loaded in %.1f s\n", n, f16 ? "F16" : "F32",
           rank, mask, hs_now_s() - tw);

    const char *names[3] = {"no adapter", "1 adapter (shared)", "distinct adapters"};
    hs_adapter **which[3] = {NULL, shared, distinct};

    /* The decode step alone first: medians of 8 steps, the three kinds
     * interleaved, so that a burst of load elsewhere hits all three. */
    double med[3] = {1e30, 1e30, 1e30}, mn[3] = {1e30, 1e30, 1e30};
    for (int rep = 0; rep < (reps > 1 ? reps : 1); rep++)
        for (int k = 0; k < 3; k++) {
            double lo;
            const double md = ctx_steps(m, threads, n, 4, 8, which[k], &lo);
            med[k] = md < med[k] ? md : med[k];
            mn[k] = lo < mn[k] ? lo : mn[k];
        }
    for (int k = 0; k < 3; k++)
        printf("decode step, %-20s %2d rows: median %7.1f ms, min %7.1f ms -> %6.1f tok/s (%.3f of none)\n",
               names[k], n, med[k], mn[k], n * 1000.0 / med[k], med[0] / med[k]);
    fflush(stdout);
    if (getenv("BENCH_CTX_ONLY"))
        return 0;

    struct hs_sched_params p;
    hs_sched_params_default(&p);
    p.n_slots = n;
    p.n_threads = threads;
    p.n_ctx = 256;
    p.prefix_cache = false;
    hs_sched *s;
    if (hs_sched_create(m, &p, &s, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    run(s, n, 4, 2, V, distinct, 99); /* warm-up: pages the weights and the adapters in */
    double best[3] = {0};
    for (int rep = 0; rep < reps; rep++)
        for (int k = 0; k < 3; k++) {
            const struct result r = run(s, n, n_prompt, n_gen, V, which[k], 1 + (uint64_t)rep);
            printf("%-20s %2d jobs: decode %6.1f tok/s aggregate, wall %6.2f s, cpu %6.2f s, ttft %6.0f ms\n",
                   names[k], n, r.decode_tps, r.wall_s, r.cpu_s, r.ttft_ms);
            fflush(stdout);
            best[k] = r.decode_tps > best[k] ? r.decode_tps : best[k];
        }
    printf("best decode: none %.1f, shared %.1f (%.3f), distinct %.1f (%.3f) tok/s\n", best[0], best[1],
           best[1] / best[0], best[2], best[2] / best[0]);
    hs_sched_free(s);
    for (int i = 0; i < n; i++)
        hs_adapter_unref(distinct[i]);
    free(distinct);
    free(shared);
    hs_model_free(m);
    return 0;
}
