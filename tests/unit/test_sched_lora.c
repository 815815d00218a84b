/* engine/sched with LoRA adapters per job: exact batching across adapter
 * sets, the prefix cache keyed by adapter set, adapters unloaded while a job
 * uses them, and the references a job holds on every path out. And jobs
 * with a JSON schema: every answer of a random model validates, alone or
 * batched, and its logprobs stay the model's own.
 *
 * Every promise is checked against the same jobs run another way: a job in
 * a batch mixing adapter sets (X, Y, none, X+Y) gets the tokens and the
 * logprobs, bit for bit, it gets alone; a prefix reused from the cache gives
 * what a fresh computation gives; and the adapters change the answer, so
 * none of this holds vacuously. The models: a tiny synthetic one written at
 * setup (runs anywhere) and stories260K when ../shared has it; adapters are
 * random GGUFs written for them (adapter_file.h). */
#include "test_util.h"
#include "adapter_file.h"
#include "tiny_model.h"

#include "base/mem.h"
#include "base/rng.h"
#include "engine/adapter.h"
#include "engine/sched.h"
#include "model/context.h"
#include "model/json_schema.h"
#include "model/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXT 1100
#define NTOP 3
#define WAIT_MS 60000

static char *g_tiny; /* tiny f32 llama, 300 tokens, trained context 2048 */

static int setup(void **state)
{
    (void)state;
    struct tiny_params tp;
    tiny_params_default(&tp);
    tp.seed = 5;
    tp.n_ctx_train = 2048;
    g_tiny = hs_test_tmpfile("sl_tiny.gguf");
    return tiny_model_write(g_tiny, &tp, NULL) ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    free(g_tiny);
    return 0;
}

static hs_model *load_model(const char *path)
{
    hs_model *m = NULL;
    hs_err err = {0};
    if (hs_model_load(path, NULL, &m, &err))
        fail_msg("load %s: %s", path, err.msg);
    return m;
}

/* A random adapter of m, loaded (one reference). Half: written as F16, so
 * that the context keeps it as f16 (lora_ctx.c), else F32. */
static hs_adapter *new_adapter_ex(const hs_model *m, const char *name, uint64_t seed, int r, unsigned mask,
                                  bool half)
{
    char file[64];
    snprintf(file, sizeof file, "%s-%llu%s.gguf", name, (unsigned long long)seed, half ? "-f16" : "");
    char *path = adapter_file_write(m, file, seed, r, mask, 0.2f, half);
    assert_non_null(path);
    hs_adapter *a = NULL;
    hs_err err = {0};
    if (hs_adapter_load(name, path, m, 1.0f, &a, &err))
        fail_msg("adapter %s: %s", name, err.msg);
    free(path);
    return a;
}

static hs_adapter *new_adapter(const hs_model *m, const char *name, uint64_t seed, int r, unsigned mask)
{
    return new_adapter_ex(m, name, seed, r, mask, false);
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
    hs_sched *s = NULL;
    hs_err err = {0};
    if (hs_sched_create(m, &p, &s, &err))
        fail_msg("sched: %s", err.msg);
    return s;
}

/* A job's adapter set: up to two adapters and their scales (scales NULL:
 * each adapter's default). */
struct aset {
    hs_adapter *a[2];
    float scale[2];
    int n;
    bool default_scales;
};

static struct hs_job_params job_params(const int32_t *prompt, int n, int max_tokens, float temperature,
                                       uint64_t seed, const struct aset *set)
{
    struct hs_job_params jp = {
        .prompt = prompt, .n_prompt = n, .max_tokens = max_tokens, .top_logprobs = NTOP, .ignore_eos = true};
    hs_sampler_params_default(&jp.sampling);
    jp.sampling.temperature = temperature;
    jp.sampling.seed = seed;
    if (set && set->n > 0) {
        jp.adapters = set->a;
        jp.adapter_scales = set->default_scales ? NULL : set->scale;
        jp.n_adapters = set->n;
    }
    return jp;
}

/* Everything a job sent. */
struct run {
    int n;
    int32_t toks[MAXT];
    struct hs_logprob chosen[MAXT];
    struct hs_logprob top[MAXT][NTOP];
    char text[8 * MAXT];
    size_t len;
    struct hs_job_event end; /* text cleared */
};

static void add_event(struct run *r, const struct hs_job_event *ev)
{
    assert_non_null(ev->text);
    assert_true(r->len + ev->len < sizeof r->text);
    memcpy(r->text + r->len, ev->text, ev->len);
    r->len += ev->len;
    if (ev->kind != HS_EV_TOKEN)
        return;
    assert_true(r->n < MAXT);
    r->toks[r->n] = ev->token;
    r->chosen[r->n] = ev->chosen;
    assert_int_equal(ev->n_top, NTOP);
    memcpy(r->top[r->n], ev->top, sizeof r->top[0]);
    r->n++;
}

/* The rest of a job's events into r (which may hold some already). */
static void collect_more(hs_job *j, struct run *r)
{
    for (;;) {
        struct hs_job_event ev;
        assert_int_equal(hs_job_next(j, &ev, WAIT_MS), 1);
        add_event(r, &ev);
        const enum hs_ev_kind k = ev.kind;
        hs_job_event_clear(&ev);
        if (k != HS_EV_TOKEN) {
            r->end = ev;
            return;
        }
    }
}

static void collect(hs_job *j, struct run *r)
{
    memset(r, 0, sizeof *r);
    collect_more(j, r);
}

static hs_job *submit(hs_sched *s, const struct hs_job_params *jp)
{
    hs_job *j = NULL;
    hs_err err = {0};
    if (hs_sched_submit(s, jp, &j, &err))
        fail_msg("submit: %s", err.msg);
    return j;
}

static void run_job(hs_sched *s, const struct hs_job_params *jp, struct run *r)
{
    hs_job *j = submit(s, jp);
    collect(j, r);
    hs_job_free(j);
}

/* The job run alone: a fresh scheduler of one slot, no prefix cache. The
 * context is that of every scheduler here (a schema job's budget depends
 * on it). */
#define N_CTX 512
static void run_alone(const hs_model *m, const struct hs_job_params *jp, struct run *r)
{
    hs_sched *s = sched_new(m, 1, 4, N_CTX, 64, false);
    run_job(s, jp, r);
    hs_sched_free(s);
}

static void random_prompt(hs_rng *rng, int32_t *out, int n, int n_vocab)
{
    out[0] = 1;
    for (int i = 1; i < n; i++)
        out[i] = 3 + (int32_t)(hs_rng_u64(rng) % (uint64_t)(n_vocab - 3));
}

/* Same tokens, text, finish and logprobs, bit for bit. */
static void assert_same_run(const struct run *a, const struct run *b, const char *what, int i)
{
    if (a->n != b->n)
        fail_msg("%s, job %d: %d tokens alone, %d batched", what, i, a->n, b->n);
    for (int t = 0; t < a->n; t++) {
        if (a->toks[t] != b->toks[t])
            fail_msg("%s, job %d: token %d is %d alone, %d batched", what, i, t, a->toks[t], b->toks[t]);
        if (memcmp(&a->chosen[t], &b->chosen[t], sizeof a->chosen[t]) ||
            memcmp(a->top[t], b->top[t], sizeof a->top[t]))
            fail_msg("%s, job %d: logprobs of token %d differ (%.9g alone, %.9g batched)", what, i, t,
                     (double)a->chosen[t].logprob, (double)b->chosen[t].logprob);
    }
    assert_int_equal(a->end.kind, HS_EV_DONE);
    assert_int_equal(b->end.kind, HS_EV_DONE);
    assert_string_equal(a->end.finish_reason, b->end.finish_reason);
    assert_int_equal(a->len, b->len);
    assert_memory_equal(a->text, b->text, a->len);
}

/* ---- exact batching across adapter sets ---- */

/* Six jobs: X, Y, none, X+Y (scales of both signs), X and none again with
 * other prompts; each alone, then all concurrently (three submitted, the
 * rest once the first answer streams, so prompt chunks share steps with
 * decode rows of other sets; n_batch 16 cuts the prompts in pieces). */
static void check_mixed(const char *path, float temperature)
{
    hs_model *m = load_model(path);
    const int V = hs_model_hparams(m)->n_vocab, NJ = 6, MAXTOK = 20;
    /* Y is F16: its rows take the f16 kernels, beside X's f32 ones (X+Y mixes both in one set) */
    hs_adapter *x = new_adapter(m, "x", 11, 8, 0x7f), *y = new_adapter_ex(m, "y", 12, 4, 0x55, true);
    const struct aset sets[6] = {{{x}, {1.0f}, 1, true},  {{y}, {0.9f}, 1, false},
                                 {{0}, {0}, 0, false},    {{x, y}, {0.8f, -0.5f}, 2, false},
                                 {{x}, {0.6f}, 1, false}, {{0}, {0}, 0, false}};
    int32_t prompts[6][40];
    int np[6];
    hs_rng rng;
    hs_rng_seed(&rng, 21);
    for (int i = 0; i < NJ; i++) {
        np[i] = 5 + 6 * i;
        random_prompt(&rng, prompts[i], np[i], V);
    }
    struct hs_job_params jp[6];
    for (int i = 0; i < NJ; i++)
        jp[i] = job_params(prompts[i], np[i], MAXTOK, temperature, 100 + (uint64_t)i, &sets[i]);

    struct run *alone = malloc(sizeof(struct run) * (size_t)NJ),
               *mixed = malloc(sizeof(struct run) * (size_t)NJ);
    for (int i = 0; i < NJ; i++)
        run_alone(m, &jp[i], &alone[i]);

    /* The adapters do change the answer: job 0's prompt without X. */
    struct run *base = malloc(sizeof *base);
    struct hs_job_params jb = job_params(prompts[0], np[0], MAXTOK, temperature, 100, NULL);
    run_alone(m, &jb, base);
    int differ = 0;
    for (int t = 0; t < MAXTOK; t++)
        differ += base->toks[t] != alone[0].toks[t];
    print_message("[          ] %s: %d of %d tokens differ with adapter X; first logprob %.4f vs %.4f\n",
                  path, differ, MAXTOK, (double)alone[0].chosen[0].logprob, (double)base->chosen[0].logprob);
    assert_true(differ > 0);
    assert_true(memcmp(&base->top[0], &alone[0].top[0], sizeof base->top[0]) != 0);
    free(base);

    hs_sched *s = sched_new(m, NJ, 8, N_CTX, 16, true);
    hs_job *jobs[6];
    for (int i = 0; i < 3; i++)
        jobs[i] = submit(s, &jp[i]);
    memset(&mixed[0], 0, sizeof mixed[0]);
    struct hs_job_event ev;
    assert_int_equal(hs_job_next(jobs[0], &ev, WAIT_MS), 1);
    assert_int_equal(ev.kind, HS_EV_TOKEN);
    add_event(&mixed[0], &ev);
    hs_job_event_clear(&ev);
    for (int i = 3; i < NJ; i++)
        jobs[i] = submit(s, &jp[i]);
    collect_more(jobs[0], &mixed[0]);
    for (int i = 1; i < NJ; i++)
        collect(jobs[i], &mixed[i]);
    for (int i = 0; i < NJ; i++) {
        assert_same_run(&alone[i], &mixed[i], path, i);
        hs_job_free(jobs[i]);
    }
    hs_sched_free(s);
    /* every job and slot let go of its adapters */
    assert_int_equal(hs_adapter_refs(x), 1);
    assert_int_equal(hs_adapter_refs(y), 1);
    hs_adapter_unref(x);
    hs_adapter_unref(y);
    free(alone);
    free(mixed);
    hs_model_free(m);
}

static void mixed_adapters_change_no_answer_greedy(void **state)
{
    (void)state;
    check_mixed(g_tiny, 0.0f);
}
static void mixed_adapters_change_no_answer_sampled(void **state)
{
    (void)state;
    check_mixed(g_tiny, 1.0f);
}
static void mixed_adapters_change_no_answer_stories(void **state)
{
    (void)state;
    check_mixed(HS_SHARED_OR_SKIP("models/stories260K.gguf"), 0.8f);
}

/* ---- the per-row update computes the adapters' delta ---- */

/* The first token's logprobs of a job under an adapter set agree, within
 * float rounding, with an ordinary context that applies the same set
 * through matrix products of the adapters' own f32 matrices
 * (hs_ctx_set_loras): for an F32 adapter, an F16 one (kept as f16 by the
 * context, other kernels) and both together. */
static void check_against_plain_context(const char *path)
{
    hs_model *m = load_model(path);
    const int V = hs_model_hparams(m)->n_vocab;
    hs_adapter *x = new_adapter(m, "x", 101, 8, 0x7f), *h = new_adapter_ex(m, "h", 102, 4, 0x6b, true);
    const struct aset sets[3] = {
        {{x}, {0.9f}, 1, false}, {{h}, {1.1f}, 1, false}, {{x, h}, {0.7f, -1.2f}, 2, false}};
    int32_t prompt[10];
    hs_rng rng;
    hs_rng_seed(&rng, 103);
    random_prompt(&rng, prompt, 10, V);
    struct run *r = malloc(sizeof *r);
    double *lsm = malloc(sizeof(double) * (size_t)V);
    for (int k = 0; k < 3; k++) {
        const struct hs_job_params jp = job_params(prompt, 10, 1, 0.0f, 1, &sets[k]);
        run_alone(m, &jp, r);
        assert_int_equal(r->n, 1);

        const struct hs_ctx_params cp = {.n_ctx = 32, .n_seq = 1, .n_threads = 2};
        hs_ctx *c;
        hs_err err = {0};
        assert_int_equal(hs_ctx_create(m, &cp, &c, &err), HS_OK);
        const struct hs_lora *l[2] = {hs_adapter_lora(sets[k].a[0]),
                                      sets[k].n > 1 ? hs_adapter_lora(sets[k].a[1]) : NULL};
        assert_int_equal(hs_ctx_set_loras(c, l, sets[k].scale, sets[k].n, &err), HS_OK);
        const struct hs_batch b = {.n = 10, .tokens = prompt};
        assert_int_equal(hs_decode(c, &b, &err), HS_OK);
        const float *lg = hs_ctx_logits(c, 9);
        double mx = lg[0], sum = 0;
        for (int i = 1; i < V; i++)
            mx = lg[i] > mx ? lg[i] : mx;
        for (int i = 0; i < V; i++)
            sum += exp((double)lg[i] - mx);
        for (int i = 0; i < V; i++)
            lsm[i] = (double)lg[i] - mx - log(sum);
        hs_ctx_free(c);
        double worst = fabs(r->chosen[0].logprob - lsm[r->chosen[0].id]);
        for (int t = 0; t < NTOP; t++) {
            const double d = fabs(r->top[0][t].logprob - lsm[r->top[0][t].id]);
            worst = d > worst ? d : worst;
        }
        print_message("[          ] %s, set %d: logprobs within %.2g of the plain context's\n", path, k,
                      worst);
        assert_true(worst < 2e-3);
    }
    free(lsm);
    free(r);
    hs_adapter_unref(x);
    hs_adapter_unref(h);
    hs_model_free(m);
}

static void per_row_update_matches_matrix_products(void **state)
{
    (void)state;
    check_against_plain_context(g_tiny);
}
static void per_row_update_matches_matrix_products_stories(void **state)
{
    (void)state;
    check_against_plain_context(HS_SHARED_OR_SKIP("models/stories260K.gguf"));
}

/* ---- the prefix cache, keyed by adapter set ---- */

static void check_prefix(const char *path)
{
    hs_model *m = load_model(path);
    const int V = hs_model_hparams(m)->n_vocab, NS = 24, NU = 4, MAXTOK = 8;
    hs_adapter *x = new_adapter(m, "x", 31, 8, 0x7f), *y = new_adapter_ex(m, "y", 32, 4, 0x3c, true);
    int32_t p1[28], p2[28];
    hs_rng rng;
    hs_rng_seed(&rng, 41);
    random_prompt(&rng, p1, NS + NU, V);
    memcpy(p2, p1, sizeof p1);
    for (int i = NS; i < NS + NU; i++)
        p2[i] = 3 + (p1[i] - 3 + 1 + i) % (V - 3); /* differs from p1 from position NS on */
    const struct aset X = {{x}, {1.0f}, 1, true}, X1 = {{x}, {1.0f}, 1, false}, Xh = {{x}, {0.5f}, 1, false},
                      Y = {{y}, {1.0f}, 1, false};
    /* job: prompt, set, and the positions it must find in the cache */
    struct {
        const int32_t *p;
        const struct aset *set;
        int want_cached;
    } jobs[] = {
        {p1, &X, 0},            /* slot 0 */
        {p2, &X, NS},           /* the system prompt from slot 0, copied */
        {p2, &Y, 0},            /* same prompt, another adapter: computed afresh */
        {p2, NULL, 0},          /* and without one */
        {p2, &Xh, 0},           /* X at another scale is another set */
        {p1, &X, NS + NU - 1},  /* all of slot 0 but the last token, copied to the empty slot */
        {p1, &Y, NS},           /* from the Y slot */
        {p2, &X1, NS + NU - 1}, /* X's default scale given explicitly is the same set */
    };
    const int NJ = (int)(sizeof jobs / sizeof jobs[0]);
    hs_sched *s = sched_new(m, 6, 8, N_CTX, 64, true);
    struct run *r = malloc(sizeof *r), *fresh = malloc(sizeof *fresh);
    for (int i = 0; i < NJ; i++) {
        const struct hs_job_params jp = job_params(jobs[i].p, NS + NU, MAXTOK, 0.0f, 1, jobs[i].set);
        run_job(s, &jp, r);
        if (r->end.n_cached != jobs[i].want_cached)
            fail_msg("%s, job %d: %d prompt tokens from the cache, expected %d", path, i, r->end.n_cached,
                     jobs[i].want_cached);
        run_alone(m, &jp, fresh);
        assert_same_run(fresh, r, "cached vs fresh", i);
    }
    struct hs_sched_stats st;
    hs_sched_stats(s, &st);
    assert_int_equal(st.prefix_queries_tokens, (uint64_t)(NJ * (NS + NU)));
    assert_int_equal(st.prefix_hits_tokens, (uint64_t)(2 * NS + 2 * (NS + NU - 1)));
    hs_sched_free(s);
    free(r);
    free(fresh);
    hs_adapter_unref(x);
    hs_adapter_unref(y);
    hs_model_free(m);
}

static void prefix_cache_keyed_by_adapter_set(void **state)
{
    (void)state;
    check_prefix(g_tiny);
}
static void prefix_cache_keyed_by_adapter_set_stories(void **state)
{
    (void)state;
    check_prefix(HS_SHARED_OR_SKIP("models/stories260K.gguf"));
}

/* ---- unloading an adapter in use ---- */

/* A long answer with X: the registry drops X while it streams (remove with
 * no wait: HS_ETIMEDOUT, users left), the answer goes on to the very tokens
 * it gets without the unload, and once it ends only the test's own
 * reference is left, whose drop frees the adapter (the sanitizer would see
 * a leak otherwise). Then remove with a wait: it returns HS_OK once the
 * running job has ended. */
static void unload_while_streaming(void **state)
{
    (void)state;
    hs_model *m = load_model(g_tiny);
    const int V = hs_model_hparams(m)->n_vocab, MAXTOK = 600;
    hs_adapter_reg *reg;
    hs_err err = {0};
    assert_int_equal(hs_adapter_reg_create(&reg, &err), HS_OK);
    hs_adapter *x0 = new_adapter(m, "x", 51, 8, 0x7f);
    assert_int_equal(hs_adapter_reg_add(reg, x0, &err), HS_OK);
    hs_adapter_unref(x0);
    hs_adapter *keep = hs_adapter_reg_get(reg, "x");
    assert_non_null(keep);

    int32_t prompt[8];
    hs_rng rng;
    hs_rng_seed(&rng, 61);
    random_prompt(&rng, prompt, 8, V);
    const struct aset X = {{keep}, {1.0f}, 1, true};
    const struct hs_job_params jp = job_params(prompt, 8, MAXTOK, 1.0f, 7, &X);
    struct run *ref = malloc(sizeof *ref), *r = malloc(sizeof *r);
    hs_sched *s = sched_new(m, 2, 4, 1024, 64, true);
    run_job(s, &jp, ref);
    assert_int_equal(ref->n, MAXTOK);
    assert_int_equal(hs_adapter_refs(keep), 2); /* the registry's and ours: the job's and slot's are gone */

    hs_job *j = submit(s, &jp);
    memset(r, 0, sizeof *r);
    struct hs_job_event ev;
    assert_int_equal(hs_job_next(j, &ev, WAIT_MS), 1);
    assert_int_equal(ev.kind, HS_EV_TOKEN);
    add_event(r, &ev);
    hs_job_event_clear(&ev);
    int left = -1;
    assert_int_equal(hs_adapter_reg_remove(reg, "x", 0, &left, &err), HS_ETIMEDOUT);
    /* ours and, unless the answer already ended, the job's and its slot's */
    print_message("[          ] users left at the unload: %d\n", left);
    assert_true(left >= 1);
    assert_null(hs_adapter_reg_get(reg, "x"));
    collect_more(j, r);
    hs_job_free(j);
    assert_same_run(ref, r, "unloaded while streaming", 0);
    assert_int_equal(hs_adapter_refs(keep), 1);
    hs_adapter_unref(keep); /* frees X */

    /* remove waiting for a running job: HS_OK when it has ended */
    hs_adapter *x2 = new_adapter(m, "x2", 51, 8, 0x7f);
    assert_int_equal(hs_adapter_reg_add(reg, x2, &err), HS_OK);
    const struct aset X2 = {{x2}, {1.0f}, 1, true};
    const struct hs_job_params jp2 = job_params(prompt, 8, MAXTOK, 1.0f, 7, &X2);
    j = submit(s, &jp2);
    hs_adapter_unref(x2); /* the registry's and the job's now */
    assert_int_equal(hs_adapter_reg_remove(reg, "x2", -1, &left, &err), HS_OK);
    assert_int_equal(left, 0);
    collect(j, r);
    hs_job_free(j);
    assert_same_run(ref, r, "removed with a wait", 0); /* same weights, another uid */

    hs_sched_free(s);
    hs_adapter_reg_free(reg);
    free(ref);
    free(r);
    hs_model_free(m);
}

/* ---- references on every way out ---- */

static void submit_checks_adapters(void **state)
{
    (void)state;
    hs_model *m = load_model(g_tiny);
    hs_adapter *x = new_adapter(m, "x", 71, 4, 0x7f);
    hs_sched *s = sched_new(m, 1, 0, 1024, 64, true);
    const int32_t prompt[4] = {1, 40, 50, 60};
    hs_adapter *list[2] = {x, NULL};
    float scales[2] = {1.0f, 1.0f};
    struct hs_job_params jp = job_params(prompt, 4, 4, 0.0f, 1, NULL);
    hs_job *j = NULL;
    hs_err err = {0};
    jp.n_adapters = -1;
    assert_int_equal(hs_sched_submit(s, &jp, &j, &err), HS_EINVAL);
    assert_non_null(strstr(err.msg, "n_adapters"));
    jp.n_adapters = 1;
    assert_int_equal(hs_sched_submit(s, &jp, &j, &err), HS_EINVAL);
    assert_non_null(strstr(err.msg, "adapters"));
    jp.adapters = list;
    jp.n_adapters = 2;
    assert_int_equal(hs_sched_submit(s, &jp, &j, &err), HS_EINVAL);
    assert_non_null(strstr(err.msg, "adapters[1]"));
    jp.n_adapters = 1;
    jp.adapter_scales = scales;
    scales[0] = NAN;
    assert_int_equal(hs_sched_submit(s, &jp, &j, &err), HS_EINVAL);
    assert_non_null(strstr(err.msg, "adapter_scales[0]"));
    scales[0] = INFINITY;
    assert_int_equal(hs_sched_submit(s, &jp, &j, &err), HS_EINVAL);
    assert_null(j);
    assert_int_equal(hs_adapter_refs(x), 1);
    hs_sched_free(s);
    hs_adapter_unref(x);
    hs_model_free(m);
}

/* Refused (queue full), cancelled, cut by shutdown, failed at admission
 * (an adapter of another model): each drops the job's references. */
static void every_end_drops_the_references(void **state)
{
    (void)state;
    hs_model *m = load_model(g_tiny);
    hs_adapter *x = new_adapter(m, "x", 81, 4, 0x7f);
    const struct aset X = {{x}, {1.0f}, 1, true};
    const int32_t prompt[4] = {1, 40, 50, 60};
    const struct hs_job_params long_x = job_params(prompt, 4, 0, 1.0f, 1, &X); /* until the context is full */
    hs_err err = {0};
    struct run *r = malloc(sizeof *r);

    /* refused: one slot, no queue, the slot taken */
    hs_sched *s = sched_new(m, 1, 0, 1024, 64, true);
    hs_job *a = submit(s, &long_x), *b = NULL;
    assert_int_equal(hs_sched_submit(s, &long_x, &b, &err), HS_EBUSY);
    assert_null(b);
    /* cancelled mid-answer */
    struct hs_job_event ev;
    assert_int_equal(hs_job_next(a, &ev, WAIT_MS), 1);
    hs_job_event_clear(&ev);
    hs_job_cancel(a);
    collect(a, r);
    assert_int_equal(r->end.kind, HS_EV_ERROR);
    assert_int_equal(r->end.err_code, HS_ECANCELED);
    assert_int_equal(hs_adapter_refs(x), 1);
    hs_job_free(a);

    /* cut by hs_sched_free; the job stays valid */
    a = submit(s, &long_x);
    assert_int_equal(hs_job_next(a, &ev, WAIT_MS), 1);
    hs_job_event_clear(&ev);
    hs_sched_free(s);
    collect(a, r);
    assert_int_equal(r->end.kind, HS_EV_ERROR);
    assert_int_equal(hs_adapter_refs(x), 1);
    hs_job_free(a);

    /* an adapter of another base model fails at admission */
    struct tiny_params tp;
    tiny_params_default(&tp);
    tp.n_ff = 128;
    char *po = hs_test_tmpfile("sl_other.gguf");
    assert_int_equal(tiny_model_write(po, &tp, NULL), 0);
    hs_model *mo = load_model(po);
    hs_adapter *o = new_adapter(mo, "o", 82, 4, 0x20);
    s = sched_new(m, 1, 0, 1024, 64, true);
    const struct aset O = {{o}, {1.0f}, 1, true};
    const struct hs_job_params jo = job_params(prompt, 4, 4, 0.0f, 1, &O);
    run_job(s, &jo, r);
    assert_int_equal(r->end.kind, HS_EV_ERROR);
    assert_non_null(strstr(r->end.message, "another base model"));
    assert_int_equal(hs_adapter_refs(o), 1);
    /* and the slot still serves the next job */
    const struct hs_job_params jx = job_params(prompt, 4, 4, 0.0f, 1, &X);
    run_job(s, &jx, r);
    assert_int_equal(r->end.kind, HS_EV_DONE);
    assert_int_equal(r->n, 4);
    hs_sched_free(s);
    hs_adapter_unref(o);
    hs_model_free(mo);
    free(po);

    assert_int_equal(hs_adapter_refs(x), 1);
    hs_adapter_unref(x);
    free(r);
    hs_model_free(m);
}

/* ---- structured output ---- */

static const char k_schema[] =
    "{\"type\":\"object\",\"properties\":{"
    "\"level\":{\"type\":\"string\",\"enum\":[\"low\",\"medium\",\"high\"]},"
    "\"steps\":{\"type\":\"array\",\"items\":{\"type\":\"string\",\"maxLength\":12},\"maxItems\":3},"
    "\"count\":{\"type\":\"integer\"},"
    "\"urgent\":{\"type\":\"boolean\"},"
    "\"who\":{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"minLength\":1}},"
    "\"required\":[\"name\"]}},"
    "\"required\":[\"level\",\"steps\",\"count\",\"urgent\",\"who\"],\"additionalProperties\":false}";

static hs_jschema *compile_schema(void)
{
    hs_jschema *js = NULL;
    hs_err err = {0};
    if (hs_jschema_compile(k_schema, sizeof k_schema - 1, &js, &err))
        fail_msg("schema: %s", err.msg);
    return js;
}

static void assert_valid_doc(const hs_jschema *js, const struct run *r, const char *what, int i)
{
    hs_err err = {0};
    if (r->end.kind != HS_EV_DONE || strcmp(r->end.finish_reason, "stop"))
        fail_msg("%s %d: ended with %s (%s) after %d tokens", what, i,
                 r->end.kind == HS_EV_DONE ? r->end.finish_reason : "an error", r->end.message, r->n);
    if (hs_jschema_validate(js, r->text, r->len, &err))
        fail_msg("%s %d: '%.*s' does not validate: %s", what, i, (int)r->len, r->text, err.msg);
}

/* Answers of a random model at temperature 1 under the schema: each a
 * valid document, ended ("stop") as soon as it is whole, within max_tokens;
 * the same answers when they share their steps with adapter jobs and free
 * text; the first token's logprobs those of the model (the same prompt
 * without a schema has them too); and a budget too small for any document
 * ends the answer with "length". */
static void check_schema(const char *path, int max_tokens)
{
    hs_model *m = load_model(path);
    const int V = hs_model_hparams(m)->n_vocab, NJ = 4;
    hs_jschema *js = compile_schema();
    hs_adapter *x = new_adapter(m, "x", 91, 4, 0x7f);
    const struct aset X = {{x}, {1.0f}, 1, true};
    int32_t prompts[4][12];
    hs_rng rng;
    hs_rng_seed(&rng, 93);
    struct hs_job_params jp[4], free_text[4];
    for (int i = 0; i < NJ; i++) {
        random_prompt(&rng, prompts[i], 12, V);
        /* schema jobs 0-3 (1 and 3 with X); free-text jobs beside them */
        jp[i] = job_params(prompts[i], 12, max_tokens, 1.0f, 500 + (uint64_t)i, i % 2 ? &X : NULL);
        jp[i].ignore_eos = false;
        jp[i].schema = js;
        free_text[i] = job_params(prompts[i], 12, 24, 1.0f, 600 + (uint64_t)i, i < 2 ? &X : NULL);
    }
    struct run *alone = malloc(sizeof(struct run) * (size_t)NJ), *r = malloc(sizeof *r);
    for (int i = 0; i < NJ; i++) {
        run_alone(m, &jp[i], &alone[i]);
        assert_valid_doc(js, &alone[i], path, i);
        assert_true(alone[i].n <= max_tokens);
        print_message("[          ] %s: schema job %d: a valid document in %d tokens (%zu bytes)\n", path, i,
                      alone[i].n, alone[i].len);
    }
    /* logprobs are the model's: job 0's prompt without the schema */
    struct hs_job_params jf = jp[0];
    jf.schema = NULL;
    jf.max_tokens = 1;
    run_alone(m, &jf, r);
    assert_memory_equal(r->top[0], alone[0].top[0], sizeof r->top[0]);

    /* batched with free text and adapters */
    hs_sched *s = sched_new(m, 2 * NJ, 8, N_CTX, 32, true);
    hs_job *jobs[8];
    for (int i = 0; i < NJ; i++) {
        jobs[2 * i] = submit(s, &jp[i]);
        jobs[2 * i + 1] = submit(s, &free_text[i]);
    }
    for (int i = 0; i < 2 * NJ; i++) {
        collect(jobs[i], r);
        if (i % 2 == 0)
            assert_same_run(&alone[i / 2], r, "schema job batched", i / 2);
        else
            assert_int_equal(r->end.kind, HS_EV_DONE);
        hs_job_free(jobs[i]);
    }

    /* no room for a document: "length" at once */
    struct hs_job_params jt = jp[0];
    jt.max_tokens = 3;
    run_job(s, &jt, r);
    assert_int_equal(r->end.kind, HS_EV_DONE);
    assert_string_equal(r->end.finish_reason, "length");
    assert_true(r->n <= 3);
    hs_sched_free(s);

    /* the jobs let go of the schema: ours is the last reference */
    hs_jschema_unref(js);
    assert_int_equal(hs_adapter_refs(x), 1);
    hs_adapter_unref(x);
    free(alone);
    free(r);
    hs_model_free(m);
}

static void schema_answers_validate(void **state)
{
    (void)state;
    check_schema(g_tiny, 300);
}
static void schema_answers_validate_stories(void **state)
{
    (void)state;
    check_schema(HS_SHARED_OR_SKIP("models/stories260K.gguf"), 200);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(mixed_adapters_change_no_answer_greedy),
        cmocka_unit_test(mixed_adapters_change_no_answer_sampled),
        cmocka_unit_test(mixed_adapters_change_no_answer_stories),
        cmocka_unit_test(per_row_update_matches_matrix_products),
        cmocka_unit_test(per_row_update_matches_matrix_products_stories),
        cmocka_unit_test(prefix_cache_keyed_by_adapter_set),
        cmocka_unit_test(prefix_cache_keyed_by_adapter_set_stories),
        cmocka_unit_test(unload_while_streaming),
        cmocka_unit_test(submit_checks_adapters),
        cmocka_unit_test(every_end_drops_the_references),
        cmocka_unit_test(schema_answers_validate),
        cmocka_unit_test(schema_answers_validate_stories),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
