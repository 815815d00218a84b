/* model/lora_ctx: adapter sets per sequence (hs_ctx_seq_set_loras), so that
 * one batch mixes sequences of different adapters and of none. Random
 * low-rank adapters are written here as adapter GGUFs for the synthetic tiny
 * model and for stories260K. The guarantees checked, in batch-invariant
 * contexts (what the server runs):
 *   - a sequence with adapter X in a mixed batch gets the logits, bit for
 *     bit, it gets alone with X; a sequence without adapters those of the
 *     base model alone;
 *   - a sequence's own set X gives what the context's set X
 *     (hs_ctx_set_loras) gives: bit for bit here, within float rounding in
 *     an ordinary context (other kernels for the context's set);
 *   - clearing a sequence's set gives the base model back;
 *   - and the adapters do change the logits, so none of this holds
 *     vacuously. */
#include "test_util.h"

#include "base/rng.h"
#include "gguf/gguf.h"
#include "gguf/gguf_types.h"
#include "model/context.h"
#include "model/lora.h"
#include "model/model.h"
#include "tensor/qtype.h"
#include "tiny_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const PROJ[7] = {"attn_q.weight",   "attn_k.weight", "attn_v.weight", "attn_output.weight",
                                    "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight"};

/* A random LoRA adapter GGUF for the model: rank r on the projections of
 * proj_mask (bit i: PROJ[i]) in every layer; A, B entries N(0, 0.2^2),
 * alpha = r (so the factor is the caller's scale). Returns its path. */
static char *write_adapter(const hs_model *m, const char *name, uint64_t seed, int r, unsigned proj_mask)
{
    const hs_gguf *g = hs_model_gguf(m);
    const struct hs_hparams *hp = hs_model_hparams(m);
    char *path = hs_test_tmpfile(name);
    hs_gguf_writer *w;
    hs_err err = {0};
    assert_int_equal(hs_gguf_writer_open(path, &w, &err), HS_OK);
    hs_gguf_w_str(w, "general.architecture", hp->arch, strlen(hp->arch));
    hs_gguf_w_str(w, "general.type", "adapter", 7);
    hs_gguf_w_str(w, "adapter.type", "lora", 4);
    hs_gguf_w_f32(w, "adapter.lora.alpha", (float)r);
    for (int pass = 0; pass < 2; pass++) {
        hs_rng rng;
        hs_rng_seed(&rng, seed);
        if (pass == 1)
            assert_int_equal(hs_gguf_w_begin_data(w, &err), HS_OK);
        for (int l = 0; l < hp->n_layer; l++)
            for (int p = 0; p < 7; p++) {
                if (!(proj_mask & (1u << p)))
                    continue;
                char tn[96];
                snprintf(tn, sizeof tn, "blk.%d.%s", l, PROJ[p]);
                const struct hs_gguf_tensor *t = hs_gguf_find_tensor(g, tn);
                assert_non_null(t);
                const int64_t in = t->ne[0], out = t->ne[1];
                const int64_t ne_a[2] = {in, r}, ne_b[2] = {r, out};
                char an[112];
                if (pass == 0) {
                    snprintf(an, sizeof an, "%s.lora_a", tn);
                    assert_int_equal(hs_gguf_w_tensor(w, an, HS_TYPE_F32, 2, ne_a), HS_OK);
                    snprintf(an, sizeof an, "%s.lora_b", tn);
                    assert_int_equal(hs_gguf_w_tensor(w, an, HS_TYPE_F32, 2, ne_b), HS_OK);
                    continue;
                }
                const size_t n = (size_t)(in > out ? in : out) * (size_t)r;
                float *buf = malloc(n * sizeof(float));
                for (int half = 0; half < 2; half++) {
                    const size_t cnt = (size_t)(half ? out : in) * (size_t)r;
                    for (size_t i = 0; i < cnt; i++)
                        buf[i] = hs_rng_normal(&rng) * 0.2f;
                    assert_int_equal(hs_gguf_w_data(w, buf, cnt * sizeof(float), &err), HS_OK);
                }
                free(buf);
            }
    }
    assert_int_equal(hs_gguf_w_close(w, &err), HS_OK);
    return path;
}

static hs_lora *load_adapter(const hs_model *m, const char *path)
{
    hs_lora *l;
    hs_err err = {0};
    int rc = hs_lora_load(path, hs_model_gguf(m), &l, &err);
    if (rc)
        print_message("%s\n", err.msg);
    assert_int_equal(rc, HS_OK);
    return l;
}

/* One sequence's work: a prompt, then one generated token. */
struct seq_in {
    const int32_t *toks;
    int n;
    int32_t next;
};

/* Four prompts of different lengths; ids below 300 fit both vocabularies. */
static const int32_t P0[] = {1, 17, 42, 99, 5}, P1[] = {1, 250, 3, 77}, P2[] = {1, 8, 64, 128, 200, 31},
                     P3[] = {1, 120, 9};
static const struct seq_in SEQS[4] = {{P0, 5, 33}, {P1, 4, 12}, {P2, 6, 250}, {P3, 3, 4}};

/* An adapter set: what hs_ctx_set_loras / hs_ctx_seq_set_loras take. */
struct set {
    const hs_lora *l[2];
    float scale[2];
    int n;
};

enum how { NONE, CTX_SET, SEQ_SET };

static hs_ctx *new_ctx(const hs_model *m, int n_seq, bool invariant)
{
    struct hs_ctx_params cp = {.n_ctx = 32, .n_seq = n_seq, .n_threads = 2, .kv_type = HS_KV_F32,
                               .batch_invariant = invariant};
    hs_ctx *ctx;
    hs_err err = {0};
    assert_int_equal(hs_ctx_create(m, &cp, &ctx, &err), HS_OK);
    return ctx;
}

static void decode(hs_ctx *ctx, const struct hs_batch *b)
{
    hs_err err = {0};
    int rc = hs_decode(ctx, b, &err);
    if (rc)
        print_message("%s\n", err.msg);
    assert_int_equal(rc, HS_OK);
}

/* The sequence run alone in slot 0 of a fresh context, its set given as
 * `how` says: the logits of every prompt token, then of the generated token
 * ((n + 1) * n_vocab floats). */
static float *run_alone(const hs_model *m, const struct seq_in *s, const struct set *set, enum how how,
                        bool invariant)
{
    const int V = hs_model_hparams(m)->n_vocab;
    hs_ctx *ctx = new_ctx(m, 1, invariant);
    hs_err err = {0};
    if (how == CTX_SET)
        assert_int_equal(hs_ctx_set_loras(ctx, set->l, set->scale, set->n, &err), HS_OK);
    else if (how == SEQ_SET)
        assert_int_equal(hs_ctx_seq_set_loras(ctx, 0, set->l, set->scale, set->n, &err), HS_OK);
    int8_t want[8];
    memset(want, 1, sizeof want);
    struct hs_batch b = {.n = s->n, .tokens = s->toks, .logits = want, .n_prompt = s->n};
    decode(ctx, &b);
    float *out = malloc((size_t)(s->n + 1) * V * sizeof(float));
    for (int i = 0; i < s->n; i++)
        memcpy(out + (size_t)i * V, hs_ctx_logits(ctx, i), (size_t)V * sizeof(float));
    struct hs_batch b2 = {.n = 1, .tokens = &s->next};
    decode(ctx, &b2);
    memcpy(out + (size_t)s->n * V, hs_ctx_logits(ctx, 0), (size_t)V * sizeof(float));
    hs_ctx_free(ctx);
    return out;
}

/* All four sequences in one context (slot k = SEQS[k]): their prompts
 * interleaved in one batch, then one generated token each in a second. The
 * prompt batch asks for logits of each prompt's last token and of P2's
 * second (so the last layer compacts rows); out[k] gets, in run_alone's
 * layout, the rows asked for (the others are left as they are). */
static void run_mixed(hs_ctx *ctx, int V, float *out[4])
{
    int32_t toks[32], seq[32], pos[32];
    int8_t want[32];
    int n = 0, at[4] = {0};
    for (int round = 0; round < 8; round++)
        for (int k = 0; k < 4; k++)
            if (at[k] < SEQS[k].n) {
                toks[n] = SEQS[k].toks[at[k]];
                seq[n] = k;
                pos[n] = at[k];
                want[n] = at[k] == SEQS[k].n - 1 || (k == 2 && at[k] == 1);
                at[k]++;
                n++;
            }
    struct hs_batch b = {.n = n, .tokens = toks, .pos = pos, .seq = seq, .logits = want, .n_prompt = n};
    decode(ctx, &b);
    for (int i = 0; i < n; i++)
        if (want[i])
            memcpy(out[seq[i]] + (size_t)pos[i] * V, hs_ctx_logits(ctx, i), (size_t)V * sizeof(float));
    int32_t nt[4], ns[4];
    for (int k = 0; k < 4; k++) {
        nt[k] = SEQS[k].next;
        ns[k] = k;
    }
    int8_t all[4] = {1, 1, 1, 1};
    struct hs_batch b2 = {.n = 4, .tokens = nt, .seq = ns, .logits = all};
    decode(ctx, &b2);
    for (int k = 0; k < 4; k++)
        memcpy(out[k] + (size_t)SEQS[k].n * V, hs_ctx_logits(ctx, k), (size_t)V * sizeof(float));
}

/* Rows of run_mixed's out[k] that it fills, against run_alone's. */
static void assert_rows_equal(const float *mixed, const float *alone, int k, int V)
{
    const int n = SEQS[k].n;
    for (int i = 0; i <= n; i++) {
        if (i < n && i != n - 1 && !(k == 2 && i == 1))
            continue;
        if (memcmp(mixed + (size_t)i * V, alone + (size_t)i * V, (size_t)V * sizeof(float)))
            fail_msg("sequence %d row %d: mixed batch differs from the sequence alone", k, i);
    }
}

static double max_rel_diff(const float *a, const float *b, size_t n)
{
    double scale = 0, d = 0;
    for (size_t i = 0; i < n; i++) {
        if (fabs(b[i]) > scale)
            scale = fabs(b[i]);
        if (fabs(a[i] - b[i]) > d)
            d = fabs(a[i] - b[i]);
    }
    return d / (scale > 0 ? scale : 1);
}

static void check_model(const char *model_path)
{
    hs_model *m;
    hs_err err = {0};
    assert_int_equal(hs_model_load(model_path, NULL, &m, &err), HS_OK);
    const int V = hs_model_hparams(m)->n_vocab;
    /* X adapts all seven projections; Y is two adapters of other ranks on
     * some of them, with scales of both signs. */
    char *px = write_adapter(m, "x.gguf", 11, 8, 0x7f);
    char *py1 = write_adapter(m, "y1.gguf", 12, 4, 0x55);
    char *py2 = write_adapter(m, "y2.gguf", 13, 16, 0x0e);
    hs_lora *lx = load_adapter(m, px), *ly1 = load_adapter(m, py1), *ly2 = load_adapter(m, py2);
    const struct set X = {{lx}, {0.8f}, 1}, Y = {{ly1, ly2}, {1.5f, -0.7f}, 2}, X2 = {{lx}, {0.8f}, 1};
    const struct set *sets[4] = {&X, &Y, NULL, &X2};

    /* The references: each sequence alone, with its set and with none. */
    float *alone[4], *base[4];
    for (int k = 0; k < 4; k++) {
        alone[k] = sets[k] ? run_alone(m, &SEQS[k], sets[k], SEQ_SET, true) : NULL;
        base[k] = run_alone(m, &SEQS[k], NULL, NONE, true);
    }
    const size_t n0 = (size_t)(SEQS[0].n + 1) * V;
    print_message("adapter X vs base: max relative difference %.3g\n", max_rel_diff(alone[0], base[0], n0));
    assert_true(max_rel_diff(alone[0], base[0], n0) > 1e-3);
    assert_true(max_rel_diff(alone[1], base[1], (size_t)(SEQS[1].n + 1) * V) > 1e-3);

    /* (3) a sequence's own set equals the context's set: bit for bit in a
     * batch-invariant context, within float rounding in an ordinary one. */
    float *ctx_set = run_alone(m, &SEQS[0], &X, CTX_SET, true);
    assert_memory_equal(ctx_set, alone[0], n0 * sizeof(float));
    free(ctx_set);
    float *plain_ctx = run_alone(m, &SEQS[0], &X, CTX_SET, false);
    float *plain_seq = run_alone(m, &SEQS[0], &X, SEQ_SET, false);
    const double d = max_rel_diff(plain_seq, plain_ctx, n0);
    print_message("ordinary context: own set vs context set: max relative difference %.3g\n", d);
    assert_true(d < 1e-5);
    free(plain_ctx);
    free(plain_seq);

    /* (1), (2) the mixed batch: X, Y, none, X again. */
    hs_ctx *ctx = new_ctx(m, 4, true);
    for (int k = 0; k < 4; k++)
        if (sets[k])
            assert_int_equal(hs_ctx_seq_set_loras(ctx, k, sets[k]->l, sets[k]->scale, sets[k]->n, &err), HS_OK);
    float *mixed[4];
    for (int k = 0; k < 4; k++)
        mixed[k] = calloc((size_t)(SEQS[k].n + 1) * V, sizeof(float));
    run_mixed(ctx, V, mixed);
    for (int k = 0; k < 4; k++)
        assert_rows_equal(mixed[k], sets[k] ? alone[k] : base[k], k, V);

    /* The context's set is the default of the slots without their own:
     * slot 0 now takes X from the context, slot 2 keeps none of its own and
     * so takes X too. */
    for (int k = 0; k < 4; k++)
        hs_ctx_seq_clear(ctx, k);
    assert_int_equal(hs_ctx_seq_set_loras(ctx, 0, NULL, NULL, 0, &err), HS_OK);
    assert_int_equal(hs_ctx_set_loras(ctx, X.l, X.scale, X.n, &err), HS_OK);
    float *alone2_x = run_alone(m, &SEQS[2], &X, CTX_SET, true);
    run_mixed(ctx, V, mixed);
    assert_rows_equal(mixed[0], alone[0], 0, V);
    assert_rows_equal(mixed[1], alone[1], 1, V);
    assert_rows_equal(mixed[2], alone2_x, 2, V);
    assert_rows_equal(mixed[3], alone[3], 3, V); /* shares X's B^T with the context's set */
    free(alone2_x);

    /* (4) clearing: without the context's set, slot 0 (no set of its own
     * now) is the base model again, while slot 1 keeps Y; then with no set
     * anywhere every slot is the base model. */
    for (int k = 0; k < 4; k++)
        hs_ctx_seq_clear(ctx, k);
    assert_int_equal(hs_ctx_set_loras(ctx, NULL, NULL, 0, &err), HS_OK);
    assert_int_equal(hs_ctx_seq_set_loras(ctx, 3, NULL, NULL, 0, &err), HS_OK);
    run_mixed(ctx, V, mixed);
    assert_rows_equal(mixed[0], base[0], 0, V);
    assert_rows_equal(mixed[1], alone[1], 1, V);
    assert_rows_equal(mixed[3], base[3], 3, V);
    for (int k = 0; k < 4; k++)
        hs_ctx_seq_clear(ctx, k);
    assert_int_equal(hs_ctx_seq_set_loras(ctx, 1, NULL, NULL, 0, &err), HS_OK);
    run_mixed(ctx, V, mixed);
    for (int k = 0; k < 4; k++)
        assert_rows_equal(mixed[k], base[k], k, V);

    /* A bad slot is refused and changes nothing. */
    assert_int_equal(hs_ctx_seq_set_loras(ctx, 4, X.l, X.scale, X.n, &err), HS_EINVAL);
    assert_int_equal(hs_ctx_seq_set_loras(ctx, -1, X.l, X.scale, X.n, &err), HS_EINVAL);

    hs_ctx_free(ctx);
    for (int k = 0; k < 4; k++) {
        free(alone[k]);
        free(base[k]);
        free(mixed[k]);
    }
    hs_lora_free(lx);
    hs_lora_free(ly1);
    hs_lora_free(ly2);
    free(px);
    free(py1);
    free(py2);
    hs_model_free(m);
}

static void mixed_batch_tiny_model(void **state)
{
    (void)state;
    struct tiny_params tp;
    tiny_params_default(&tp);
    tp.seed = 5;
    char *path = hs_test_tmpfile("tiny.gguf");
    assert_int_equal(tiny_model_write(path, &tp, NULL), 0);
    check_model(path);
    free(path);
}

static void mixed_batch_stories260k(void **state)
{
    (void)state;
    check_model(HS_SHARED_OR_SKIP("models/stories260K.gguf"));
}

/* An adapter written for another model is refused for a slot as for the
 * context, and the slot keeps its set. */
static void refuses_other_model(void **state)
{
    (void)state;
    struct tiny_params tp;
    tiny_params_default(&tp);
    char *pa = hs_test_tmpfile("base_a.gguf"), *pb = hs_test_tmpfile("base_b.gguf");
    assert_int_equal(tiny_model_write(pa, &tp, NULL), 0);
    tp.n_ff = 128;
    assert_int_equal(tiny_model_write(pb, &tp, NULL), 0);
    hs_model *ma, *mb;
    hs_err err = {0};
    assert_int_equal(hs_model_load(pa, NULL, &ma, &err), HS_OK);
    assert_int_equal(hs_model_load(pb, NULL, &mb, &err), HS_OK);
    /* Adapts ffn_up, whose shape differs between the two; it loads against
     * b's own file, then goes to a context of a. */
    char *px = write_adapter(mb, "xb.gguf", 3, 4, 0x20);
    hs_lora *lx = load_adapter(mb, px);
    hs_ctx *ctx = new_ctx(ma, 2, true);
    const hs_lora *ls[1] = {lx};
    assert_int_equal(hs_ctx_seq_set_loras(ctx, 1, ls, NULL, 1, &err), HS_EINVAL);
    assert_non_null(strstr(err.msg, "another base model"));
    assert_int_equal(hs_ctx_set_loras(ctx, ls, NULL, 1, &err), HS_EINVAL);
    hs_ctx_free(ctx);
    hs_lora_free(lx);
    hs_model_free(ma);
    hs_model_free(mb);
    free(px);
    free(pa);
    free(pb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(mixed_batch_tiny_model),
        cmocka_unit_test(mixed_batch_stories260k),
        cmocka_unit_test(refuses_other_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
