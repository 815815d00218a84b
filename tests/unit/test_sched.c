/* engine/sched: continuous batching, finish reasons, the queue, cancel, the
 * prefix cache, logprobs, embeddings, drain and free.
 *
 * The promises users rely on are checked against the same model run another
 * way: every job of a concurrent batch gets exactly the tokens it gets alone
 * (greedy and seeded sampling); a prompt whose prefix comes from the cache
 * gets exactly the tokens it gets without the cache; logprobs and embeddings
 * agree with a plain context's logits and hidden states, pooled here. The
 * models: stories260K when ../shared has it, and synthetic Q4_K_M and Q8_0
 * models written at setup, so the tests run anywhere. */
#include "test_util.h"
#include "tiny_model.h"

#include "base/mem.h"
#include "base/rng.h"
#include "engine/sched.h"
#include "model/context.h"
#include "model/model.h"
#include "model/synth.h"
#include "tensor/qtype.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAXT 1100 /* most tokens one test job generates */
#define WAIT_MS 60000

static char *g_q4;   /* synthetic Q4_K_M, 512-token vocabulary */
static char *g_q8;   /* synthetic Q8_0, 259 tokens: <unk>, <s>, </s> and the bytes */
static char *g_tiny; /* tiny f32 model whose weights the test keeps */
static struct tiny_weights g_tw;
static struct tiny_params g_tp;

static char *write_synth(const char *name, const char *ftype, int n_vocab, uint64_t seed)
{
    struct hs_synth_params p;
    hs_synth_params_default(&p);
    hs_err err = {0};
    if (hs_synth_shape(&p, "tiny", &err))
        return NULL;
    p.ftype = ftype;
    p.n_vocab = n_vocab;
    p.tied_output = false;
    p.seed = seed;
    p.init_scale = 0.05f; /* logits spread enough that greedy choices are not all near-ties */
    char *path = hs_test_tmpfile(name);
    if (hs_synth_write(path, &p, NULL, &err)) {
        fprintf(stderr, "synth %s: %s\n", name, err.msg);
        free(path);
        return NULL;
    }
    return path;
}

static int setup(void **state)
{
    (void)state;
    g_q4 = write_synth("sched_q4km.gguf", "q4_k_m", 512, 7);
    g_q8 = write_synth("sched_q8.gguf", "q8_0", 259, 8);
    tiny_params_default(&g_tp);
    g_tiny = hs_test_tmpfile("sched_tiny.gguf");
    if (!g_q4 || !g_q8 || tiny_model_write(g_tiny, &g_tp, &g_tw))
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    free(g_q4);
    free(g_q8);
    free(g_tiny);
    tiny_weights_free(&g_tw, g_tp.n_layer);
    return 0;
}

static hs_model *load(const char *path)
{
    hs_model *m = NULL;
    hs_err err = {0};
    if (hs_model_load(path, NULL, &m, &err))
        fail_msg("load %s: %s", path, err.msg);
    return m;
}

static hs_sched *sched_with(const hs_model *m, const struct hs_sched_params *p)
{
    hs_sched *s = NULL;
    hs_err err = {0};
    if (hs_sched_create(m, p, &s, &err))
        fail_msg("sched: %s", err.msg);
    return s;
}

static hs_sched *sched_new(const hs_model *m, int n_slots, int queue_max, int n_ctx, int n_batch, bool cache)
{
    struct hs_sched_params p;
    hs_sched_params_default(&p);
    p.n_slots = n_slots;
    p.queue_max = queue_max;
    p.n_ctx = n_ctx;
    p.n_batch = n_batch;
    p.n_threads = 2;
    p.prefix_cache = cache;
    return sched_with(m, &p);
}

static struct hs_job_params greedy_params(const int32_t *prompt, int n, int max_tokens)
{
    struct hs_job_params jp = {.prompt = prompt, .n_prompt = n, .max_tokens = max_tokens, .top_logprobs = -1};
    hs_sampler_params_default(&jp.sampling);
    jp.sampling.temperature = 0.0f;
    jp.sampling.seed = 1;
    return jp;
}

/* Everything a job sent, up to its last event (tokens and text past MAXT
 * are counted, not kept: a job cancelled from outside runs for a while). */
struct run {
    int32_t toks[MAXT];
    int n;
    char text[8 * MAXT];
    size_t len;
    bool cut;                /* text did not fit */
    struct hs_job_event end; /* text cleared */
    struct hs_job_event first;
};

static void add_text(struct run *r, const struct hs_job_event *ev)
{
    assert_non_null(ev->text);
    if (r->cut || r->len + ev->len >= sizeof r->text) {
        r->cut = true;
        return;
    }
    memcpy(r->text + r->len, ev->text, ev->len);
    r->len += ev->len;
    r->text[r->len] = 0;
}

static void collect(hs_job *j, struct run *r)
{
    memset(r, 0, sizeof *r);
    for (;;) {
        struct hs_job_event ev;
        assert_int_equal(hs_job_next(j, &ev, WAIT_MS), 1);
        add_text(r, &ev);
        if (ev.kind == HS_EV_TOKEN) {
            if (r->n == 0)
                r->first = ev;
            if (r->n < MAXT)
                r->toks[r->n] = ev.token;
            r->n++;
            hs_job_event_clear(&ev);
            continue;
        }
        hs_job_event_clear(&ev);
        r->end = ev;
        return;
    }
}

static void run_job(hs_sched *s, const struct hs_job_params *jp, struct run *r)
{
    hs_job *j;
    hs_err err = {0};
    if (hs_sched_submit(s, jp, &j, &err))
        fail_msg("submit: %s", err.msg);
    collect(j, r);
    hs_job_free(j);
}

/* n random prompt tokens (no <unk>, <s>, </s>: ids 0-2) */
static void random_prompt(hs_rng *rng, int32_t *out, int n, int n_vocab)
{
    out[0] = 1; /* <s> */
    for (int i = 1; i < n; i++)
        out[i] = 3 + (int32_t)(hs_rng_u64(rng) % (uint64_t)(n_vocab - 3));
}

static int32_t *encode(const hs_model *m, const char *text, int *n)
{
    int32_t *ids;
    size_t len;
    hs_err err = {0};
    if (hs_tok_encode(hs_model_tok(m), text, strlen(text), true, false, &ids, &len, &err))
        fail_msg("encode: %s", err.msg);
    *n = (int)len;
    return ids;
}

static void assert_same_run(const struct run *a, const struct run *b, const char *what, int i)
{
    if (a->n != b->n)
        fail_msg("%s, job %d: %d tokens alone, %d batched", what, i, a->n, b->n);
    assert_true(a->n <= MAXT && !a->cut && !b->cut);
    for (int t = 0; t < a->n; t++)
        if (a->toks[t] != b->toks[t])
            fail_msg("%s, job %d: token %d is %d alone, %d batched", what, i, t, a->toks[t], b->toks[t]);
    assert_int_equal(a->end.kind, b->end.kind);
    assert_string_equal(a->end.finish_reason, b->end.finish_reason);
    assert_int_equal(a->len, b->len);
    assert_memory_equal(a->text, b->text, a->len);
}

/* ---- the kernels batch invariance rests on ---- */

/* The tile kernels that claim gemm_exact give, for every (row, token) and
 * every tile shape, the very bits of vec_dot: so a token's row does not
 * depend on the batch around it. */
static void exact_tiles_equal_dot_products(void **state)
{
    (void)state;
    const int N = 512, R = 4, C = 16;
    hs_rng rng;
    hs_rng_seed(&rng, 3);
    float *w = malloc(sizeof(float) * (size_t)N * R), *a = malloc(sizeof(float) * (size_t)N * C);
    for (int i = 0; i < N * R; i++)
        w[i] = hs_rng_normal(&rng);
    for (int i = 0; i < N * C; i++)
        a[i] = hs_rng_normal(&rng);
    int checked = 0;
    for (int type = 0; type < HS_TYPE_COUNT; type++) {
        const struct hs_qtype *qt = hs_qtype(type);
        const struct hs_qtype_kernels *k = qt ? hs_qtype_kernels(type) : NULL;
        if (!k || !k->gemm || !k->gemm_exact)
            continue;
        const size_t bx = hs_qtype_row_bytes(type, N), by = hs_qtype_row_bytes(qt->vec_dot_type, N);
        char *x = malloc(bx * R), *y = malloc(by * C);
        for (int r = 0; r < R; r++)
            qt->from_float_ref(w + (size_t)r * N, x + (size_t)r * bx, N);
        for (int c = 0; c < C; c++)
            hs_qtype_kernels(qt->vec_dot_type)->from_float(a + (size_t)c * N, y + (size_t)c * by, N);
        for (int nr = 1; nr <= k->gemm_rows && nr <= R; nr++)
            for (int nc = 1; nc <= k->gemm_cols && nc <= C; nc++) {
                float s[16 * 16];
                k->gemm(N, s, 16, x, bx, y, by, nr, nc);
                for (int c = 0; c < nc; c++)
                    for (int r = 0; r < nr; r++) {
                        float d;
                        k->vec_dot(N, &d, x + (size_t)r * bx, y + (size_t)c * by);
                        if (memcmp(&d, &s[c * 16 + r], sizeof d))
                            fail_msg("%s tile %dx%d, row %d token %d: gemm %.9g, vec_dot %.9g", qt->name, nr,
                                     nc, r, c, (double)s[c * 16 + r], (double)d);
                    }
            }
        free(x);
        free(y);
        checked++;
    }
    print_message("[          ] %d types with exact tiles at this CPU's level\n", checked);
    free(w);
    free(a);
}

/* ---- batch invariance of the context ---- */

/* A batch-invariant context computes each row as it would alone: 8 prompts
 * one by one vs all in one batch, one decode step per sequence alone vs 1..8
 * of them together, and decode rows beside a prompt in one batch. Logits
 * must be bit for bit equal. */
static void check_ctx_rows(const char *path)
{
    hs_model *m = load(path);
    const int V = hs_model_hparams(m)->n_vocab, NS = 8;
    struct hs_ctx_params cp = {
        .n_ctx = 128, .n_seq = NS, .n_batch = 256, .n_threads = 2, .batch_invariant = true};
    hs_ctx *c;
    hs_err err = {0};
    assert_int_equal(hs_ctx_create(m, &cp, &c, &err), HS_OK);
    hs_rng rng;
    hs_rng_seed(&rng, 11);
    int32_t prompts[8][40], L[8];
    for (int s = 0; s < NS; s++) {
        L[s] = 3 + 5 * s;
        random_prompt(&rng, prompts[s], L[s], V);
    }
    float *alone = malloc(sizeof(float) * (size_t)V * NS);
    for (int s = 0; s < NS; s++) {
        int32_t seq[40];
        for (int i = 0; i < L[s]; i++)
            seq[i] = s;
        struct hs_batch b = {.n = L[s], .tokens = prompts[s], .seq = seq, .n_prompt = L[s]};
        assert_int_equal(hs_decode(c, &b, &err), HS_OK);
        memcpy(alone + (size_t)s * V, hs_ctx_logits(c, L[s] - 1), sizeof(float) * (size_t)V);
    }
    float *prompt_last = malloc(sizeof(float) * (size_t)V);
    memcpy(prompt_last, alone + (size_t)(NS - 1) * V, sizeof(float) * (size_t)V);
    int32_t tok[256], seq[256];
    int8_t want[256];
    int n = 0, last[8];
    for (int s = 0; s < NS; s++) {
        hs_ctx_seq_clear(c, s);
        for (int i = 0; i < L[s]; i++) {
            tok[n] = prompts[s][i];
            seq[n] = s;
            want[n] = i == L[s] - 1;
            n++;
        }
        last[s] = n - 1;
    }
    struct hs_batch all = {.n = n, .tokens = tok, .seq = seq, .logits = want, .n_prompt = n};
    assert_int_equal(hs_decode(c, &all, &err), HS_OK);
    for (int s = 0; s < NS; s++)
        assert_memory_equal(hs_ctx_logits(c, last[s]), alone + (size_t)s * V, sizeof(float) * (size_t)V);
    for (int s = 0; s < NS; s++) {
        int32_t t = 5 + s, sq = s;
        struct hs_batch one = {.n = 1, .tokens = &t, .seq = &sq};
        assert_int_equal(hs_decode(c, &one, &err), HS_OK);
        memcpy(alone + (size_t)s * V, hs_ctx_logits(c, 0), sizeof(float) * (size_t)V);
        hs_ctx_seq_truncate(c, s, L[s]);
    }
    for (int k = 1; k <= NS; k++) {
        int32_t t[8], sq[8];
        int8_t w8[8];
        for (int s = 0; s < k; s++) {
            t[s] = 5 + s;
            sq[s] = s;
            w8[s] = 1;
        }
        struct hs_batch b = {.n = k, .tokens = t, .seq = sq, .logits = w8};
        assert_int_equal(hs_decode(c, &b, &err), HS_OK);
        for (int s = 0; s < k; s++) {
            if (memcmp(hs_ctx_logits(c, s), alone + (size_t)s * V, sizeof(float) * (size_t)V))
                fail_msg("%s: sequence %d's logits differ in a decode step of %d rows", path, s, k);
            hs_ctx_seq_truncate(c, s, L[s]);
        }
    }
    /* generated tokens of sequences 0-3 beside the whole prompt of 7 */
    hs_ctx_seq_clear(c, NS - 1);
    n = 0;
    for (int s = 0; s < 4; s++, n++) {
        tok[n] = 5 + s;
        seq[n] = s;
        want[n] = 1;
    }
    for (int i = 0; i < L[NS - 1]; i++, n++) {
        tok[n] = prompts[NS - 1][i];
        seq[n] = NS - 1;
        want[n] = i == L[NS - 1] - 1;
    }
    struct hs_batch mixed = {.n = n, .tokens = tok, .seq = seq, .logits = want, .n_prompt = L[NS - 1]};
    assert_int_equal(hs_decode(c, &mixed, &err), HS_OK);
    for (int s = 0; s < 4; s++)
        assert_memory_equal(hs_ctx_logits(c, s), alone + (size_t)s * V, sizeof(float) * (size_t)V);
    assert_memory_equal(hs_ctx_logits(c, n - 1), prompt_last, sizeof(float) * (size_t)V);
    struct hs_batch bad = {.n = 1, .tokens = tok, .seq = seq, .n_prompt = 2};
    assert_int_equal(hs_decode(c, &bad, &err), HS_EINVAL);
    free(prompt_last);
    free(alone);
    hs_ctx_free(c);
    hs_model_free(m);
}

static void ctx_rows_invariant_stories(void **state)
{
    (void)state;
    check_ctx_rows(HS_SHARED_OR_SKIP("models/stories260K.gguf"));
}
static void ctx_rows_invariant_q4_k_m(void **state)
{
    (void)state;
    check_ctx_rows(g_q4);
}
static void ctx_rows_invariant_q8_0(void **state)
{
    (void)state;
    check_ctx_rows(g_q8);
}

/* ---- batching changes no answer ---- */

/* 8 jobs, each run alone (one at a time, no prefix cache), then all 8
 * concurrently with the cache on: 4 submitted at once, the other 4 once the
 * first answer is streaming, so prompt chunks share steps with decode rows
 * (n_batch 48 cuts the longer prompts in pieces). Same tokens, same text. */
static void check_concurrent(const char *path, const char *const *texts, float temperature)
{
    hs_model *m = load(path);
    const int V = hs_model_hparams(m)->n_vocab, NJ = 8, MAXTOK = 24;
    int32_t *prompts[8];
    int np[8];
    hs_rng rng;
    hs_rng_seed(&rng, 5);
    for (int i = 0; i < NJ; i++) {
        if (texts) {
            prompts[i] = encode(m, texts[i], &np[i]);
        } else {
            np[i] = 4 + 7 * i;
            prompts[i] = malloc(sizeof(int32_t) * (size_t)np[i]);
            random_prompt(&rng, prompts[i], np[i], V);
        }
    }
    struct hs_job_params jp[8];
    for (int i = 0; i < NJ; i++) {
        jp[i] = greedy_params(prompts[i], np[i], MAXTOK);
        jp[i].sampling.temperature = temperature;
        jp[i].sampling.seed = 100 + (uint64_t)i;
    }
    struct run *alone = malloc(sizeof(struct run) * NJ), *batched = malloc(sizeof(struct run) * NJ);
    hs_sched *s = sched_new(m, NJ, 8, 256, 48, false);
    for (int i = 0; i < NJ; i++)
        run_job(s, &jp[i], &alone[i]);
    hs_sched_free(s);

    s = sched_new(m, NJ, 8, 256, 48, true);
    hs_job *jobs[8];
    hs_err err = {0};
    for (int i = 0; i < 4; i++)
        assert_int_equal(hs_sched_submit(s, &jp[i], &jobs[i], &err), HS_OK);
    struct hs_job_event ev;
    assert_int_equal(hs_job_next(jobs[0], &ev, WAIT_MS), 1);
    struct hs_job_event first0 = ev; /* put back below */
    for (int i = 4; i < NJ; i++)
        assert_int_equal(hs_sched_submit(s, &jp[i], &jobs[i], &err), HS_OK);
    for (int i = 0; i < NJ; i++)
        collect(jobs[i], &batched[i]);
    /* job 0's first event was read above */
    memmove(batched[0].toks + 1, batched[0].toks, sizeof(int32_t) * (size_t)batched[0].n);
    batched[0].toks[0] = first0.token;
    batched[0].n++;
    memmove(batched[0].text + first0.len, batched[0].text, batched[0].len + 1);
    memcpy(batched[0].text, first0.text, first0.len);
    batched[0].len += first0.len;
    hs_job_event_clear(&first0);
    for (int i = 0; i < NJ; i++) {
        assert_int_equal(alone[i].end.kind, HS_EV_DONE);
        assert_same_run(&alone[i], &batched[i], path, i);
        hs_job_free(jobs[i]);
    }
    struct hs_sched_stats st;
    hs_sched_stats(s, &st);
    assert_int_equal(st.running, 0);
    assert_int_equal(st.waiting, 0);
    hs_sched_free(s);
    for (int i = 0; i < NJ; i++)
        hs_free(prompts[i]);
    free(alone);
    free(batched);
    hs_model_free(m);
}

static const char *const k_stories[8] = {
    "Once upon a time",
    "The little dog",
    "Lily and Tom went to the park",
    "One day, a big bird",
    "Sam had a red ball. He",
    "There was a girl named Sue",
    "The sun was hot and",
    "Tim wanted to play with his friends",
};

static void concurrent_greedy_stories(void **state)
{
    (void)state;
    check_concurrent(HS_SHARED_OR_SKIP("models/stories260K.gguf"), k_stories, 0.0f);
}
static void concurrent_sampled_stories(void **state)
{
    (void)state;
    check_concurrent(HS_SHARED_OR_SKIP("models/stories260K.gguf"), k_stories, 0.8f);
}
static void concurrent_greedy_q4_k_m(void **state)
{
    (void)state;
    check_concurrent(g_q4, NULL, 0.0f);
}
static void concurrent_greedy_q8_0(void **state)
{
    (void)state;
    check_concurrent(g_q8, NULL, 0.0f);
}
static void concurrent_sampled_q4_k_m(void **state)
{
    (void)state;
    check_concurrent(g_q4, NULL, 1.0f);
}

/* ---- finish reasons ---- */

/* A stop string taken from the middle of an answer: the answer with it ends
 * just before its first occurrence, with "stop"; max_tokens gives "length"
 * after exactly that many tokens. */
static void check_stop_and_length(const char *path, const int32_t *prompt, int n_prompt)
{
    hs_model *m = load(path);
    hs_sched *s = sched_new(m, 2, 4, 256, 64, true);
    struct hs_job_params jp = greedy_params(prompt, n_prompt, 40);
    jp.ignore_eos = true;
    struct run *full = malloc(sizeof *full), *r = malloc(sizeof *r);
    run_job(s, &jp, full);
    assert_int_equal(full->end.kind, HS_EV_DONE);
    assert_string_equal(full->end.finish_reason, "length");
    assert_int_equal(full->n, 40);
    assert_int_equal(full->end.n_gen, 40);
    assert_int_equal(full->end.n_prompt, n_prompt);

    /* A 3-byte stop from the middle that does not occur earlier. */
    size_t at = full->len / 2;
    char stop[4] = {0};
    for (; at + 3 <= full->len; at++) {
        memcpy(stop, full->text + at, 3);
        if (!memchr(stop, 0, 3) && !memmem(full->text, at + 2, stop, 3))
            break;
    }
    assert_true(at + 3 <= full->len);
    const char *stops[] = {"never-seen-stop", stop};
    jp.stop = stops;
    jp.n_stop = 2;
    run_job(s, &jp, r);
    assert_int_equal(r->end.kind, HS_EV_DONE);
    assert_string_equal(r->end.finish_reason, "stop");
    assert_int_equal(r->len, at);
    assert_memory_equal(r->text, full->text, at);
    for (int t = 0; t < r->n; t++)
        assert_int_equal(r->toks[t], full->toks[t]);

    jp.stop = NULL;
    jp.n_stop = 0;
    jp.max_tokens = 7;
    run_job(s, &jp, r);
    assert_string_equal(r->end.finish_reason, "length");
    assert_int_equal(r->n, 7);
    assert_int_equal(r->end.n_gen, 7);
    for (int t = 0; t < 7; t++)
        assert_int_equal(r->toks[t], full->toks[t]);
    assert_true(r->end.ttft_ms >= r->end.queue_ms);
    assert_true(r->end.total_ms >= r->end.ttft_ms);
    free(full);
    free(r);
    hs_sched_free(s);
    hs_model_free(m);
}

static void stop_string_and_max_tokens_stories(void **state)
{
    (void)state;
    const char *path = HS_SHARED_OR_SKIP("models/stories260K.gguf");
    hs_model *m = load(path);
    int n;
    int32_t *p = encode(m, "Once upon a time, there was a little", &n);
    hs_model_free(m);
    check_stop_and_length(path, p, n);
    hs_free(p);
}

static void stop_string_and_max_tokens_q4_k_m(void **state)
{
    (void)state;
    hs_rng rng;
    hs_rng_seed(&rng, 9);
    int32_t p[12];
    random_prompt(&rng, p, 12, 512);
    check_stop_and_length(g_q4, p, 12);
}

/* The context ends an answer with "length": n_ctx 32, a 20-token prompt. */
static void context_full_is_length(void **state)
{
    (void)state;
    hs_model *m = load(g_q4);
    hs_sched *s = sched_new(m, 1, 1, 32, 32, true);
    hs_rng rng;
    hs_rng_seed(&rng, 4);
    int32_t p[20];
    random_prompt(&rng, p, 20, 512);
    struct hs_job_params jp = greedy_params(p, 20, 0);
    jp.ignore_eos = true;
    struct run *r = malloc(sizeof *r);
    run_job(s, &jp, r);
    assert_string_equal(r->end.finish_reason, "length");
    assert_int_equal(r->n, 32 - 20 + 1); /* the last one is sampled but has no position to go to */
    free(r);
    hs_sched_free(s);
    hs_model_free(m);
}

/* End of generation: with a 259-token vocabulary and temperature 1, </s> is
 * drawn sooner or later; the answer then ends with "stop" and no TOKEN for
 * it. The same seed with ignore_eos draws the same tokens, then </s> as a
 * token of its own, and goes on. */
static void eog_token_stops_unless_ignored(void **state)
{
    (void)state;
    hs_model *m = load(g_q8);
    const hs_tok *tok = hs_model_tok(m);
    hs_sched *s = sched_new(m, 2, 2, 1024, 64, true);
    int32_t p[4] = {1, 70, 80, 90};
    struct run *a = malloc(sizeof *a), *b = malloc(sizeof *b);
    bool seen = false;
    for (uint64_t seed = 1; seed <= 8 && !seen; seed++) {
        struct hs_job_params jp = greedy_params(p, 4, 0);
        jp.sampling.temperature = 1.0f;
        jp.sampling.top_k = 0;
        jp.sampling.top_p = 1.0f;
        jp.sampling.min_p = 0.0f;
        jp.sampling.seed = seed;
        run_job(s, &jp, a);
        assert_int_equal(a->end.kind, HS_EV_DONE);
        for (int t = 0; t < a->n; t++)
            assert_false(hs_tok_is_eog(tok, a->toks[t]));
        if (strcmp(a->end.finish_reason, "stop") != 0)
            continue; /* the context filled first: try another seed */
        seen = true;
        assert_int_equal(a->end.n_gen, a->n + 1); /* </s> was generated, not sent */
        jp.ignore_eos = true;
        jp.max_tokens = a->n + 3;
        run_job(s, &jp, b);
        assert_string_equal(b->end.finish_reason, "length");
        assert_int_equal(b->n, a->n + 3);
        for (int t = 0; t < a->n; t++)
            assert_int_equal(a->toks[t], b->toks[t]);
        assert_true(hs_tok_is_eog(tok, b->toks[a->n]));
    }
    assert_true(seen);
    free(a);
    free(b);
    hs_sched_free(s);
    hs_model_free(m);
}

/* ---- the queue, cancel ---- */

static void queue_full_busy_and_cancel_frees_slot(void **state)
{
    (void)state;
    hs_model *m = load(g_q4);
    /* n_ctx 4096: job a must not reach the end of its context on its own */
    hs_sched *s = sched_new(m, 1, 1, 4096, 64, true);
    int32_t p[6] = {1, 10, 20, 30, 40, 50};
    struct hs_job_params forever = greedy_params(p, 6, 0);
    forever.ignore_eos = true;
    hs_job *a, *b, *c = NULL;
    hs_err err = {0};
    assert_int_equal(hs_sched_submit(s, &forever, &a, &err), HS_OK);
    struct hs_job_event ev;
    assert_int_equal(hs_job_next(a, &ev, WAIT_MS), 1); /* a runs */
    assert_int_equal(ev.kind, HS_EV_TOKEN);
    hs_job_event_clear(&ev);
    struct hs_job_params short_job = greedy_params(p, 6, 4);
    assert_int_equal(hs_sched_submit(s, &short_job, &b, &err), HS_OK);
    assert_int_equal(hs_sched_submit(s, &short_job, &c, &err), HS_EBUSY);
    assert_null(c);
    struct hs_sched_stats st;
    hs_sched_stats(s, &st);
    assert_int_equal(st.running, 1);
    assert_int_equal(st.waiting, 1);
    assert_int_equal(st.n_slots, 1);
    assert_true(st.kv_usage > 0.0 && st.kv_usage <= 1.0);
    assert_int_equal(hs_job_next(b, &ev, 50), 0); /* b waits */

    hs_job_cancel(a);
    hs_job_cancel(a); /* any number of times */
    struct run *r = malloc(sizeof *r);
    collect(b, r);
    assert_int_equal(r->end.kind, HS_EV_DONE);
    assert_string_equal(r->end.finish_reason, "length");
    assert_int_equal(r->n, 4);
    assert_true(r->end.queue_ms > 0);
    /* a ended with an error; its events are still there to read */
    collect(a, r);
    assert_int_equal(r->end.kind, HS_EV_ERROR);
    assert_int_equal(r->end.err_code, HS_ECANCELED);
    /* and its last event comes again */
    assert_int_equal(hs_job_next(a, &ev, 0), 1);
    assert_int_equal(ev.kind, HS_EV_ERROR);
    hs_job_event_clear(&ev);
    hs_job_free(a);
    hs_job_free(b);

    /* A job freed while queued never runs. */
    assert_int_equal(hs_sched_submit(s, &forever, &a, &err), HS_OK);
    assert_int_equal(hs_job_next(a, &ev, WAIT_MS), 1);
    hs_job_event_clear(&ev);
    assert_int_equal(hs_sched_submit(s, &short_job, &b, &err), HS_OK);
    hs_job_free(b);
    hs_job_free(a);
    for (int i = 0; i < 200; i++) {
        hs_sched_stats(s, &st);
        if (st.running + st.waiting == 0)
            break;
        usleep(10000);
    }
    assert_int_equal(st.running + st.waiting, 0);
    free(r);
    hs_sched_free(s);
    hs_model_free(m);
}

/* ---- the prefix cache ---- */

/* An agent's system prompt (a long prefix) is computed once: the second
 * request finds it, in its own slot once the first is done, or copied from
 * a busy slot while the first still runs; and answers exactly as without
 * the cache. So does a chat's next turn (first prompt, its answer, a new
 * question), whose cached part is at least the first prompt. */
static void check_prefix(const char *path, const int32_t *prefix, int n_prefix, const int32_t *q1, int n1,
                         const int32_t *q2, int n2)
{
    hs_model *m = load(path);
    int32_t a[300], b[300];
    memcpy(a, prefix, sizeof(int32_t) * (size_t)n_prefix);
    memcpy(a + n_prefix, q1, sizeof(int32_t) * (size_t)n1);
    memcpy(b, prefix, sizeof(int32_t) * (size_t)n_prefix);
    memcpy(b + n_prefix, q2, sizeof(int32_t) * (size_t)n2);
    struct run *ref = malloc(sizeof *ref), *r = malloc(sizeof *r);

    hs_sched *s = sched_new(m, 2, 4, 512, 32, false);
    struct hs_job_params jb = greedy_params(b, n_prefix + n2, 16);
    run_job(s, &jb, ref);
    assert_int_equal(ref->end.n_cached, 0);
    hs_sched_free(s);

    /* after the first request has ended */
    s = sched_new(m, 2, 4, 512, 32, true);
    struct hs_job_params ja = greedy_params(a, n_prefix + n1, 16);
    struct run *ra = malloc(sizeof *ra);
    run_job(s, &ja, ra);
    assert_int_equal(ra->end.n_cached, 0);
    run_job(s, &jb, r);
    assert_true(r->end.n_cached >= n_prefix);
    assert_true(r->end.n_cached < n_prefix + n2);
    assert_same_run(ref, r, "prefix cache (same slot)", 0);
    struct hs_sched_stats st;
    hs_sched_stats(s, &st);
    assert_int_equal(st.prefix_queries_tokens, (uint64_t)(2 * n_prefix + n1 + n2));
    assert_int_equal(st.prefix_hits_tokens, (uint64_t)r->end.n_cached);
    /* the same prompt again: all but its last token from the cache */
    run_job(s, &jb, r);
    assert_int_equal(r->end.n_cached, n_prefix + n2 - 1);
    assert_same_run(ref, r, "prefix cache (whole prompt)", 0);

    /* the next turn of a's chat, against the same without the cache */
    int32_t t2[400];
    int nt = n_prefix + n1;
    memcpy(t2, a, sizeof(int32_t) * (size_t)nt);
    memcpy(t2 + nt, ra->toks, sizeof(int32_t) * (size_t)ra->n);
    nt += ra->n;
    memcpy(t2 + nt, q2, sizeof(int32_t) * (size_t)n2);
    nt += n2;
    struct hs_job_params jt = greedy_params(t2, nt, 16);
    run_job(s, &jt, r);
    assert_true(r->end.n_cached >= n_prefix + n1);
    hs_sched *cold = sched_new(m, 2, 4, 512, 32, false);
    struct run *r2 = malloc(sizeof *r2);
    run_job(cold, &jt, r2);
    hs_sched_free(cold);
    assert_same_run(r2, r, "prefix cache (next turn of a chat)", 0);
    free(r2);
    free(ra);
    hs_sched_free(s);

    /* while the first request still runs: copied from its busy slot */
    s = sched_new(m, 2, 4, 512, 32, true);
    struct hs_job_params forever = greedy_params(a, n_prefix + n1, 0);
    forever.ignore_eos = true;
    hs_job *busy;
    hs_err err = {0};
    assert_int_equal(hs_sched_submit(s, &forever, &busy, &err), HS_OK);
    struct hs_job_event ev;
    assert_int_equal(hs_job_next(busy, &ev, WAIT_MS), 1);
    hs_job_event_clear(&ev);
    run_job(s, &jb, r);
    assert_true(r->end.n_cached >= n_prefix);
    assert_same_run(ref, r, "prefix cache (copied from a busy slot)", 0);
    hs_job_free(busy);
    hs_sched_free(s);
    free(ref);
    free(r);
    hs_model_free(m);
}

static void prefix_cache_reuses_system_prompt_stories(void **state)
{
    (void)state;
    const char *path = HS_SHARED_OR_SKIP("models/stories260K.gguf");
    hs_model *m = load(path);
    int np, n1, n2;
    int32_t *pre =
        encode(m,
               "You are a kind teacher who tells short stories to small children. Every story has a "
               "dog, a cat and a red ball, and it ends well. The children listen and smile.",
               &np);
    int32_t *q1 = encode(m, "Tell me about the dog.", &n1);
    int32_t *q2 = encode(m, "Tell me about the cat and the ball.", &n2);
    hs_model_free(m);
    /* encode adds <s> to each part: drop it from the questions */
    check_prefix(path, pre, np, q1 + 1, n1 - 1, q2 + 1, n2 - 1);
    hs_free(pre);
    hs_free(q1);
    hs_free(q2);
}

static void prefix_cache_reuses_system_prompt_q4_k_m(void **state)
{
    (void)state;
    hs_rng rng;
    hs_rng_seed(&rng, 21);
    int32_t pre[100], q1[9], q2[13];
    random_prompt(&rng, pre, 100, 512);
    random_prompt(&rng, q1, 9, 512);
    random_prompt(&rng, q2, 13, 512);
    q1[0] = 300; /* the questions differ from their first token */
    q2[0] = 301;
    check_prefix(g_q4, pre, 100, q1, 9, q2, 13);
}

/* ---- logprobs ---- */

/* The chosen token's log-probability and the top alternatives, against the
 * log-softmax computed here (in double) from a plain context's logits for
 * the same tokens. */
static void logprobs_match_log_softmax(void **state)
{
    (void)state;
    hs_model *m = load(g_q4);
    const int V = hs_model_hparams(m)->n_vocab, K = 5, STEPS = 8;
    hs_rng rng;
    hs_rng_seed(&rng, 13);
    int32_t p[16 + 8];
    random_prompt(&rng, p, 16, V);
    hs_sched *s = sched_new(m, 2, 2, 128, 64, true);
    struct hs_job_params jp = greedy_params(p, 16, STEPS);
    jp.top_logprobs = K;
    jp.ignore_eos = true;
    hs_job *j;
    hs_err err = {0};
    assert_int_equal(hs_sched_submit(s, &jp, &j, &err), HS_OK);
    struct hs_job_event evs[8];
    for (int t = 0; t < STEPS; t++) {
        assert_int_equal(hs_job_next(j, &evs[t], WAIT_MS), 1);
        assert_int_equal(evs[t].kind, HS_EV_TOKEN);
        hs_job_event_clear(&evs[t]);
    }
    hs_job_free(j);
    hs_sched_free(s);

    /* batch-invariant like the scheduler's, so the logits are the same bits */
    struct hs_ctx_params cp = {
        .n_ctx = 128, .n_seq = 1, .n_batch = 64, .n_threads = 2, .batch_invariant = true};
    hs_ctx *c;
    assert_int_equal(hs_ctx_create(m, &cp, &c, &err), HS_OK);
    struct hs_batch b = {.n = 16, .tokens = p, .n_prompt = 16}; /* a prompt, as in the scheduler */
    assert_int_equal(hs_decode(c, &b, &err), HS_OK);
    int idx = 15;
    for (int t = 0; t < STEPS; t++) {
        const float *l = hs_ctx_logits(c, idx);
        double mx = l[0], sum = 0;
        for (int v = 1; v < V; v++)
            mx = l[v] > mx ? l[v] : mx;
        for (int v = 0; v < V; v++)
            sum += exp(l[v] - mx);
        const double lse = mx + log(sum);
        const struct hs_job_event *e = &evs[t];
        assert_int_equal(e->chosen.id, e->token);
        assert_float_equal(e->chosen.logprob, l[e->token] - lse, 1e-4);
        assert_int_equal(e->n_top, K);
        assert_int_equal(e->top[0].id, e->token); /* greedy picks the best */
        double mass = 0;
        for (int k = 0; k < K; k++) {
            assert_float_equal(e->top[k].logprob, l[e->top[k].id] - lse, 1e-4);
            assert_true(e->top[k].logprob <= 0.0f);
            if (k > 0)
                assert_true(e->top[k].logprob <= e->top[k - 1].logprob);
            mass += exp(e->top[k].logprob);
            /* nothing outside the list beats its last entry */
            for (int v = 0; k == K - 1 && v < V; v++) {
                bool listed = false;
                for (int q = 0; q < K; q++)
                    listed |= e->top[q].id == v;
                assert_true(listed || l[v] <= l[e->top[K - 1].id]);
            }
        }
        assert_true(mass <= 1.0 + 1e-5);
        int32_t next = e->token;
        struct hs_batch one = {.n = 1, .tokens = &next};
        assert_int_equal(hs_decode(c, &one, &err), HS_OK);
        idx = 0;
    }
    hs_ctx_free(c);
    hs_model_free(m);
}

/* ---- embeddings ---- */

/* Reference: a plain context in embeddings mode gives each token's final
 * hidden state h, checked here against the logits (output . h, in double);
 * their mean, L2-normalised, must be the scheduler's embedding. */
static void reference_embedding(const hs_model *m, const float *out_w, const int32_t *toks, int n,
                                double *ref)
{
    const struct hs_hparams *hp = hs_model_hparams(m);
    const int E = hp->n_embd, V = hp->n_vocab;
    struct hs_ctx_params cp = {
        .n_ctx = 128, .n_seq = 1, .n_batch = 128, .n_threads = 2, .batch_invariant = true};
    hs_ctx *he, *hl;
    hs_err err = {0};
    assert_int_equal(hs_ctx_create(m, &cp, &he, &err), HS_OK);
    assert_int_equal(hs_ctx_create(m, &cp, &hl, &err), HS_OK);
    int8_t all[128];
    memset(all, 1, sizeof all);
    struct hs_batch b = {.n = n, .tokens = toks, .logits = all, .n_prompt = n};
    hs_ctx_set_embeddings(he, true);
    assert_int_equal(hs_decode(he, &b, &err), HS_OK);
    assert_int_equal(hs_decode(hl, &b, &err), HS_OK);
    assert_null(hs_ctx_logits(he, 0));
    assert_null(hs_ctx_embeddings(hl, 0));
    memset(ref, 0, sizeof(double) * (size_t)E);
    for (int i = 0; i < n; i++) {
        const float *h = hs_ctx_embeddings(he, i), *l = hs_ctx_logits(hl, i);
        assert_non_null(h);
        for (int v = 0; v < V; v += 7) {
            double d = 0;
            for (int e = 0; e < E; e++)
                d += (double)out_w[(size_t)v * E + e] * h[e];
            assert_float_equal(d, l[v], 1e-4 * (1 + fabs(d)));
        }
        for (int e = 0; e < E; e++)
            ref[e] += h[e];
    }
    double norm = 0;
    for (int e = 0; e < E; e++) {
        ref[e] /= n;
        norm += ref[e] * ref[e];
    }
    for (int e = 0; e < E; e++)
        ref[e] /= sqrt(norm);
    hs_ctx_free(he);
    hs_ctx_free(hl);
}

static void embeddings_mean_pooled_normalised(void **state)
{
    (void)state;
    hs_model *m = load(g_tiny);
    const int E = hs_model_hparams(m)->n_embd, V = hs_model_hparams(m)->n_vocab;
    const float *out_w = g_tw.output ? g_tw.output : g_tw.tok_embd;
    hs_rng rng;
    hs_rng_seed(&rng, 17);
    int32_t a[40], b[12];
    random_prompt(&rng, a, 40, V);
    random_prompt(&rng, b, 12, V);
    /* n_batch 16: the 40 tokens take three decodes */
    hs_sched *s = sched_new(m, 2, 2, 128, 16, true);
    float *ea = malloc(sizeof(float) * (size_t)E), *ea2 = malloc(sizeof(float) * (size_t)E);
    float *eb = malloc(sizeof(float) * (size_t)E);
    double *ref = malloc(sizeof(double) * (size_t)E);

    /* a job runs meanwhile: the spare slot must not disturb it */
    struct run *alone = malloc(sizeof *alone), *r = malloc(sizeof *r);
    struct hs_job_params jp = greedy_params(b, 12, 20);
    jp.ignore_eos = true;
    run_job(s, &jp, alone);
    hs_job *j;
    hs_err err = {0};
    assert_int_equal(hs_sched_submit(s, &jp, &j, &err), HS_OK);
    assert_int_equal(hs_sched_embed(s, a, 40, ea, &err), HS_OK);
    collect(j, r);
    hs_job_free(j);
    assert_same_run(alone, r, "job beside an embedding", 0);

    assert_int_equal(hs_sched_embed(s, a, 40, ea2, &err), HS_OK);
    assert_memory_equal(ea, ea2, sizeof(float) * (size_t)E);
    assert_int_equal(hs_sched_embed(s, b, 12, eb, &err), HS_OK);
    double na = 0, nb = 0, diff = 0;
    for (int e = 0; e < E; e++) {
        na += (double)ea[e] * ea[e];
        nb += (double)eb[e] * eb[e];
        diff += fabs((double)ea[e] - eb[e]);
    }
    assert_float_equal(na, 1.0, 1e-5);
    assert_float_equal(nb, 1.0, 1e-5);
    assert_true(diff > 1e-3);

    reference_embedding(m, out_w, a, 40, ref);
    for (int e = 0; e < E; e++)
        assert_float_equal(ea[e], ref[e], 1e-5);
    reference_embedding(m, out_w, b, 12, ref);
    for (int e = 0; e < E; e++)
        assert_float_equal(eb[e], ref[e], 1e-5);

    int32_t bad = V;
    assert_int_equal(hs_sched_embed(s, &bad, 1, ea, &err), HS_EINVAL);
    assert_int_equal(hs_sched_embed(s, a, 0, ea, &err), HS_EINVAL);
    int32_t *big = calloc(200, sizeof *big);
    assert_int_equal(hs_sched_embed(s, big, 200, ea, &err), HS_ERANGE);
    free(big);
    struct hs_sched_stats st;
    hs_sched_stats(s, &st);
    assert_true(st.steps > 0);
    hs_sched_free(s);
    free(ea);
    free(ea2);
    free(eb);
    free(ref);
    free(alone);
    free(r);
    hs_model_free(m);
}

/* ---- drain, free, parameters, idling ---- */

static void drain_finishes_then_refuses(void **state)
{
    (void)state;
    hs_model *m = load(g_q4);
    hs_sched *s = sched_new(m, 1, 4, 256, 64, true);
    int32_t p[5] = {1, 11, 12, 13, 14};
    struct hs_job_params jp = greedy_params(p, 5, 6);
    jp.ignore_eos = true;
    hs_job *jobs[3];
    hs_err err = {0};
    for (int i = 0; i < 3; i++)
        assert_int_equal(hs_sched_submit(s, &jp, &jobs[i], &err), HS_OK);
    hs_sched_drain(s, WAIT_MS);
    struct run *r = malloc(sizeof *r);
    for (int i = 0; i < 3; i++) {
        collect(jobs[i], r);
        assert_int_equal(r->end.kind, HS_EV_DONE);
        assert_int_equal(r->n, 6);
        hs_job_free(jobs[i]);
    }
    hs_job *late = NULL;
    assert_int_equal(hs_sched_submit(s, &jp, &late, &err), HS_ECANCELED);
    assert_null(late);
    float e[256];
    assert_int_equal(hs_sched_embed(s, p, 5, e, &err), HS_ECANCELED);
    hs_sched_free(s);

    /* out of time: what is left is cut (n_ctx 4096: the jobs cannot end on their own in time) */
    s = sched_new(m, 1, 4, 4096, 64, true);
    jp.max_tokens = 0;
    for (int i = 0; i < 3; i++)
        assert_int_equal(hs_sched_submit(s, &jp, &jobs[i], &err), HS_OK);
    hs_sched_drain(s, 20);
    for (int i = 0; i < 3; i++) {
        collect(jobs[i], r);
        assert_int_equal(r->end.kind, HS_EV_ERROR);
        assert_int_equal(r->end.err_code, HS_ECANCELED);
        hs_job_free(jobs[i]);
    }
    free(r);
    hs_sched_free(s);
    hs_model_free(m);
}

static void free_cuts_jobs_which_stay_valid(void **state)
{
    (void)state;
    hs_model *m = load(g_q4);
    hs_sched *s = sched_new(m, 1, 4, 512, 64, true);
    int32_t p[5] = {1, 11, 12, 13, 14};
    struct hs_job_params jp = greedy_params(p, 5, 0);
    jp.ignore_eos = true;
    hs_job *a, *b;
    hs_err err = {0};
    assert_int_equal(hs_sched_submit(s, &jp, &a, &err), HS_OK);
    assert_int_equal(hs_sched_submit(s, &jp, &b, &err), HS_OK);
    struct hs_job_event ev;
    assert_int_equal(hs_job_next(a, &ev, WAIT_MS), 1);
    hs_job_event_clear(&ev);
    hs_sched_free(s);
    struct run *r = malloc(sizeof *r);
    collect(a, r);
    assert_int_equal(r->end.kind, HS_EV_ERROR);
    assert_int_equal(r->end.err_code, HS_ECANCELED);
    collect(b, r);
    assert_int_equal(r->end.kind, HS_EV_ERROR);
    hs_job_cancel(a); /* the scheduler is gone: nothing to wake */
    hs_job_free(a);
    hs_job_free(b);
    free(r);
    hs_model_free(m);
}

static void bad_parameters_are_refused(void **state)
{
    (void)state;
    hs_model *m = load(g_q4);
    hs_sched *s = sched_new(m, 1, 1, 64, 32, true);
    int32_t p[3] = {1, 2, 3}, big[65] = {0};
    hs_job *j = NULL;
    hs_err err = {0};
    struct hs_job_params jp = greedy_params(p, 3, 4);
    jp.top_logprobs = HS_MAX_TOP_LOGPROBS + 1;
    assert_int_equal(hs_sched_submit(s, &jp, &j, &err), HS_EINVAL);
    assert_non_null(strstr(err.msg, "top_logprobs"));
    jp = greedy_params(p, 0, 4);
    assert_int_equal(hs_sched_submit(s, &jp, &j, &err), HS_EINVAL);
    p[1] = 512;
    jp = greedy_params(p, 3, 4);
    assert_int_equal(hs_sched_submit(s, &jp, &j, &err), HS_EINVAL);
    assert_non_null(strstr(err.msg, "prompt[1]"));
    p[1] = 2;
    const char *stops[] = {""};
    jp.stop = stops;
    jp.n_stop = 1;
    assert_int_equal(hs_sched_submit(s, &jp, &j, &err), HS_EINVAL);
    jp = greedy_params(p, 3, 4);
    jp.sampling.top_p = 2.0f;
    assert_int_equal(hs_sched_submit(s, &jp, &j, &err), HS_EINVAL);
    assert_non_null(strstr(err.msg, "top_p"));
    jp = greedy_params(big, 65, 4);
    assert_int_equal(hs_sched_submit(s, &jp, &j, &err), HS_ERANGE);
    assert_null(j);
    assert_int_equal(hs_sched_n_ctx(s), 64);
    assert_ptr_equal(hs_sched_model(s), m);
    hs_sched_free(s);

    struct hs_sched_params sp;
    hs_sched_params_default(&sp);
    sp.n_slots = 8;
    sp.n_batch = 4;
    assert_int_equal(hs_sched_create(m, &sp, &s, &err), HS_EINVAL);
    assert_null(s);
    hs_model_free(m);
}

/* Idle, the scheduler sleeps: the process uses (almost) no CPU. */
static void idle_scheduler_sleeps(void **state)
{
    (void)state;
    hs_model *m = load(g_q4);
    hs_sched *s = sched_new(m, 2, 2, 64, 32, true);
    int32_t p[3] = {1, 5, 6};
    struct hs_job_params jp = greedy_params(p, 3, 2);
    struct run *r = malloc(sizeof *r);
    run_job(s, &jp, r);
    usleep(100000); /* the pool's workers stop spinning */
    struct timespec c0, c1;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
    usleep(300000);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
    const double cpu_ms = (double)(c1.tv_sec - c0.tv_sec) * 1e3 + (double)(c1.tv_nsec - c0.tv_nsec) / 1e6;
    print_message("[          ] idle for 300 ms: %.1f ms of CPU\n", cpu_ms);

    assert_true(cpu_ms < 30.0);
    free(r);
    hs_sched_free(s);
    hs_model_free(m);
}

/* Waves (hs_sched_params.wave_wait_ms). Three jobs submitted back to back
 * to an idle scheduler share their prompt step. They end; the next three
 * arrive 20 ms apart. Waiting for them, the scheduler runs
 * the three prompts in one step: the wave of 4-token answers takes 4 steps
 * in all, and the wait ends when the third arrives, not at its deadline.
 * Without waiting (0), the first runs alone and the wave takes more steps.
 * A job at a scheduler that ran no wave starts at once. */
static hs_sched *sched_waves(const hs_model *m, int wait_ms)
{
    struct hs_sched_params p;
    hs_sched_params_default(&p);
    p.n_slots = 4;
    p.n_ctx = 64;
    p.n_batch = 64;
    p.n_threads = 2;
    p.wave_wait_ms = wait_ms;
    return sched_with(m, &p);
}

static void submit_three(hs_sched *s, int32_t (*prompts)[4], hs_job **jobs, int gap_ms)
{
    for (int i = 0; i < 3; i++) {
        struct hs_job_params jp = greedy_params(prompts[i], 4, 4);
        jp.ignore_eos = true;
        hs_err err = {0};
        if (i > 0 && gap_ms > 0)
            usleep((useconds_t)gap_ms * 1000);
        if (hs_sched_submit(s, &jp, &jobs[i], &err))
            fail_msg("submit: %s", err.msg);
    }
}

static void a_returning_wave_shares_its_prompt_step(void **state)
{
    (void)state;
    hs_model *m = load(g_q4);
    int32_t prompts[3][4] = {{1, 5, 6, 7}, {1, 8, 9, 10}, {1, 11, 12, 13}};
    struct run *r = malloc(sizeof *r);
    for (int mode = 0; mode < 2; mode++) {
        hs_sched *s = sched_waves(m, mode == 0 ? 3000 : 0);
        hs_job *jobs[3];
        submit_three(s, prompts, jobs, 0); /* the first wave, submitted back to back */
        for (int i = 0; i < 3; i++) {
            collect(jobs[i], r);
            hs_job_free(jobs[i]);
        }
        struct hs_sched_stats st0, st1;
        hs_sched_stats(s, &st0);
        if (mode == 0) /* gathered at the idle scheduler: one prompt step */
            assert_int_equal(st0.steps, 4);
        submit_three(s, prompts, jobs, 20); /* its return, 20 ms apart */
        double ttft0 = 0;
        for (int i = 0; i < 3; i++) {
            collect(jobs[i], r);
            assert_int_equal(r->n, 4);
            if (i == 0)
                ttft0 = r->end.ttft_ms;
            hs_job_free(jobs[i]);
        }
        hs_sched_stats(s, &st1);
        const uint64_t steps = st1.steps - st0.steps;
        print_message("[          ] wave wait %s: the returning wave took %llu steps, its first job's TTFT %.0f ms\n",
                      mode == 0 ? "on" : "off", (unsigned long long)steps, ttft0);
        if (mode == 0) {
            assert_int_equal(steps, 4);
            assert_true(ttft0 >= 35.0 && ttft0 < 2500.0); /* waited for the third (40 ms), not 3 s */
        } else {
            assert_true(steps > 4);
        }
        hs_sched_free(s);
    }
    /* no wave before it: a lone job does not wait */
    hs_sched *s = sched_waves(m, 3000);
    struct hs_job_params jp = greedy_params(prompts[0], 4, 2);
    run_job(s, &jp, r);
    assert_true(r->end.ttft_ms < 2000.0);
    hs_sched_free(s);
    free(r);
    hs_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(exact_tiles_equal_dot_products),
        cmocka_unit_test(ctx_rows_invariant_stories),
        cmocka_unit_test(ctx_rows_invariant_q4_k_m),
        cmocka_unit_test(ctx_rows_invariant_q8_0),
        cmocka_unit_test(concurrent_greedy_stories),
        cmocka_unit_test(concurrent_sampled_stories),
        cmocka_unit_test(concurrent_greedy_q4_k_m),
        cmocka_unit_test(concurrent_greedy_q8_0),
        cmocka_unit_test(concurrent_sampled_q4_k_m),
        cmocka_unit_test(stop_string_and_max_tokens_stories),
        cmocka_unit_test(stop_string_and_max_tokens_q4_k_m),
        cmocka_unit_test(context_full_is_length),
        cmocka_unit_test(eog_token_stops_unless_ignored),
        cmocka_unit_test(queue_full_busy_and_cancel_frees_slot),
        cmocka_unit_test(prefix_cache_reuses_system_prompt_stories),
        cmocka_unit_test(prefix_cache_reuses_system_prompt_q4_k_m),
        cmocka_unit_test(logprobs_match_log_softmax),
        cmocka_unit_test(embeddings_mean_pooled_normalised),
        cmocka_unit_test(drain_finishes_then_refuses),
        cmocka_unit_test(free_cuts_jobs_which_stay_valid),
        cmocka_unit_test(bad_parameters_are_refused),
        cmocka_unit_test(idle_scheduler_sleeps),
        cmocka_unit_test(a_returning_wave_shares_its_prompt_step),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
