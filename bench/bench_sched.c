/* Throughput of the scheduler: 1 job alone, then N jobs at once, each with
 * a prompt of P random tokens and G generated tokens (ignore_eos), greedy.
 * Prints per run: wall time, aggregate generated tokens/s, mean time to
 * first token, and the decode rate after the first token. Not part of
 * `make test`.
 *
 * Build by hand after a library build, e.g.:
 *   make BUILDROOT=build/me build/me/libhestia.a
 *   cc -O2 -std=c11 -D_GNU_SOURCE -Isrc bench/bench_sched.c build/me/libhestia.a \
 *      $(pkg-config --libs jansson libpcre2-8 libutf8proc libmicrohttpd libcurl sqlite3 libfyaml \
 *      libsodium libxxhash gsl) -lm -pthread -o /tmp/bench_sched
 *   /tmp/bench_sched build/bench/1b-q4_k_m.gguf [threads=2] [clients=8] [prompt=53] [gen=64] [exact=1] */
#include "base/clock.h"
#include "base/parse.h"
#include "base/rng.h"
#include "engine/sched.h"
#include "model/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int arg_int(int argc, char **argv, int i, int def) {
    int v;
    if (argc <= i || hs_parse_int(argv[i], 1, 1 << 20, &v) != HS_OK)
        return def;
    return v;
}

/* Runs n jobs at once; returns aggregate generated tokens/s. */
static double run(hs_sched *s, int n, int n_prompt, int n_gen, int n_vocab, uint64_t seed) {
    hs_rng rng;
    hs_rng_seed(&rng, seed);
    int32_t *prompts = malloc(sizeof(int32_t) * (size_t)n * (size_t)n_prompt);
    hs_job **jobs = calloc((size_t)n, sizeof *jobs);
    for (int i = 0; i < n * n_prompt; i++)
        prompts[i] = i % n_prompt == 0 ? 1 : 3 + (int32_t)(hs_rng_u64(&rng) % (uint64_t)(n_vocab - 3));
    const double t0 = hs_now_s();
    for (int i = 0; i < n; i++) {
        struct hs_job_params jp = {.prompt = prompts + (size_t)i * n_prompt, .n_prompt = n_prompt,
                                   .max_tokens = n_gen, .top_logprobs = -1, .ignore_eos = true};
        hs_sampler_params_default(&jp.sampling);
        jp.sampling.temperature = 0.0f;
        hs_err err = {0};
        if (hs_sched_submit(s, &jp, &jobs[i], &err)) {
            fprintf(stderr, "submit: %s\n", err.msg);
            exit(1);
        }
    }
    int total = 0;
    double ttft = 0, decode_rate = 0;
    for (int i = 0; i < n; i++) {
        struct hs_job_event ev;
        while (hs_job_next(jobs[i], &ev, -1) == 1) {
            hs_job_event_clear(&ev);
            if (ev.kind != HS_EV_TOKEN)
                break;
        }
        total += ev.n_gen;
        ttft += ev.ttft_ms;
        decode_rate += (ev.n_gen - 1) / ((ev.total_ms - ev.ttft_ms) / 1000.0);
        hs_job_free(jobs[i]);
    }
    const double wall = hs_now_s() - t0;
    printf("%2d job(s): %6.2f s, %6.1f tok/s aggregate, ttft %6.0f ms, decode %5.1f tok/s per job\n", n, wall,
           total / wall, ttft / n, decode_rate / n);
    fflush(stdout);
    free(prompts);
    free(jobs);
    return total / wall;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL [threads] [clients] [prompt] [gen]\n", argv[0]);
        return 2;
    }
    const int threads = arg_int(argc, argv, 2, 2), clients = arg_int(argc, argv, 3, 8);
    const int n_prompt = arg_int(argc, argv, 4, 53), n_gen = arg_int(argc, argv, 5, 64);
    const bool exact = argc <= 6 || strcmp(argv[6], "0") != 0;
    hs_model *m;
    hs_err err = {0};
    if (hs_model_load(argv[1], NULL, &m, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    struct hs_sched_params p;
    hs_sched_params_default(&p);
    p.n_slots = clients;
    p.n_threads = threads;
    p.n_ctx = 512;
    p.prefix_cache = false; /* every prompt computed in full, as the numbers compare runs */
    p.exact_batching = exact;
    hs_sched *s;
    if (hs_sched_create(m, &p, &s, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    run(s, 1, n_prompt, 4, hs_model_hparams(m)->n_vocab, 99); /* warm-up: pages the weights in */
    const double one = run(s, 1, n_prompt, n_gen, hs_model_hparams(m)->n_vocab, 1);
    const double many = run(s, clients, n_prompt, n_gen, hs_model_hparams(m)->n_vocab, 2);
    printf("ratio %d jobs / 1 job: %.2f (exact_batching %d)\n", clients, many / one, (int)exact);
    hs_sched_free(s);
    hs_model_free(m);
    return 0;
}
