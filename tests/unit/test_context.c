/* model/context: batches (one matmul per projection for all tokens, several
 * sequences side by side), batch checks that leave the cache unchanged, the
 * sequence operations. Equalities are checked against the same model run
 * another way (one token at a time, one sequence alone, recomputed), on a
 * tiny model written by the test, and on stories260K when ../shared has it. */
#include "test_util.h"
#include "tiny_model.h"

#include "model/context.h"
#include "model/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Same model, same numbers, different grouping of the work. The matmul may
 * take another summation order (tile kernel vs. dot product), so values
 * differ in their last bits: with an f32 cache logits agree within TOL,
 * absolute below 1 and relative above. With the f16 cache, a key or value
 * that lands on the other side of an f16 rounding boundary moves by 2^-11
 * relative and the logits by up to ~1e-4 of the row's scale (measured), hence
 * TOL_F16 times the row's largest |logit|. Each test runs with both caches. */
#define TOL 1e-4
#define TOL_F16 1e-3

static const enum hs_kv_type k_kv_f32 = HS_KV_F32, k_kv_f16 = HS_KV_F16;
static enum hs_kv_type g_kv; /* the cache type of the running test */

static void use_kv(void **state) { g_kv = *state ? *(const enum hs_kv_type *)*state : HS_KV_F16; }

struct fixture {
    char *path;
    hs_model *m;
    int V;
};

static struct fixture g_tiny;

static int setup_tiny(void **state) {
    (void)state;
    struct tiny_params p;
    tiny_params_default(&p);
    p.n_layer = 3;
    p.seed = 5;
    g_tiny.path = hs_test_tmpfile("ctx_tiny.gguf");
    if (tiny_model_write(g_tiny.path, &p, NULL))
        return -1;
    hs_err err = {0};
    if (hs_model_load(g_tiny.path, NULL, &g_tiny.m, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    g_tiny.V = hs_model_hparams(g_tiny.m)->n_vocab;
    return 0;
}

static int teardown_tiny(void **state) {
    (void)state;
    hs_model_free(g_tiny.m);
    free(g_tiny.path);
    return 0;
}

static hs_ctx *make_ctx(const hs_model *m, int n_ctx, int n_seq, int n_threads) {
    struct hs_ctx_params cp = {.n_ctx = n_ctx, .n_seq = n_seq, .n_batch = 64, .n_threads = n_threads,
                               .kv_type = g_kv};
    hs_ctx *c = NULL;
    hs_err err = {0};
    int rc = hs_ctx_create(m, &cp, &c, &err);
    if (rc)
        print_message("ctx: %s\n", err.msg);
    assert_int_equal(rc, HS_OK);
    return c;
}

static void assert_close(const float *got, const float *want, int n, const char *what) {
    double row = 1.0;
    for (int i = 0; i < n; i++)
        row = fabs(want[i]) > row ? fabs(want[i]) : row;
    for (int i = 0; i < n; i++) {
        double scale = g_kv == HS_KV_F16 ? TOL_F16 * row : TOL * (fabs(want[i]) > 1.0 ? fabs(want[i]) : 1.0);
        if (!(fabs((double)got[i] - want[i]) <= scale)) {
            print_message("%s: logit %d is %.7g, expected %.7g\n", what, i, got[i], want[i]);
            fail();
        }
    }
}

static int decode(hs_ctx *c, int n, const int32_t *tok, const int32_t *pos, const int32_t *seq, const int8_t *want,
                  hs_err *err) {
    struct hs_batch b = {.n = n, .tokens = tok, .pos = pos, .seq = seq, .logits = want};
    return hs_decode(c, &b, err);
}

/* Logits of each token of `toks` in sequence `seq`, fed one at a time. */
static float *one_by_one(hs_ctx *c, const int32_t *toks, int n, int seq, int V) {
    float *out = malloc((size_t)n * V * sizeof(float));
    for (int i = 0; i < n; i++) {
        int32_t pos = hs_ctx_seq_len(c, seq);
        hs_err err = {0};
        assert_int_equal(decode(c, 1, &toks[i], &pos, &seq, NULL, &err), HS_OK);
        memcpy(out + (size_t)i * V, hs_ctx_logits(c, 0), (size_t)V * sizeof(float));
    }
    return out;
}

/* ids below 300: valid in the tiny vocabulary and in stories260K's */
static const int32_t k_prompt_a[12] = {1, 103, 207, 261, 278, 32, 183, 286, 261, 76, 298, 15};
static const int32_t k_prompt_b[9] = {1, 290, 38, 201, 296, 267, 137, 210, 208};

static void batch_equals_single_on(const hs_model *m, int n_threads) {
    const int V = hs_model_hparams(m)->n_vocab;
    hs_ctx *c = make_ctx(m, 64, 1, n_threads);
    const int n = 12;
    float *single = one_by_one(c, k_prompt_a, n, 0, V);
    hs_ctx_seq_clear(c, 0);
    int8_t want[12];
    memset(want, 1, sizeof want);
    hs_err err = {0};
    assert_int_equal(decode(c, n, k_prompt_a, NULL, NULL, want, &err), HS_OK);
    assert_int_equal(hs_ctx_n_logits(c), n);
    for (int i = 0; i < n; i++) {
        char what[64];
        snprintf(what, sizeof what, "batch row %d (%d threads)", i, n_threads);
        assert_close(hs_ctx_logits(c, i), single + (size_t)i * V, V, what);
    }
    free(single);
    hs_ctx_free(c);
}

static void batch_equals_single(void **state) {
    use_kv(state);
    batch_equals_single_on(g_tiny.m, 1);
    batch_equals_single_on(g_tiny.m, 2);
}

/* A prompt long enough that attention is split over the pool (the short
 * ones run on the caller) gives the logits of feeding it token by token. */
static void long_batch_equals_single(void **state) {
    use_kv(state);
    const int V = g_tiny.V, n = 160;
    struct hs_ctx_params cp = {.n_ctx = 256, .n_batch = n, .n_threads = 2, .kv_type = g_kv};
    hs_ctx *c = NULL;
    assert_int_equal(hs_ctx_create(g_tiny.m, &cp, &c, NULL), HS_OK);
    int32_t toks[160];
    for (int i = 0; i < n; i++)
        toks[i] = (int32_t)((i * 53 + 11) % V);
    float *single = one_by_one(c, toks, n, 0, V);
    hs_ctx_seq_clear(c, 0);
    int8_t want[160];
    memset(want, 1, sizeof want);
    hs_err err = {0};
    assert_int_equal(decode(c, n, toks, NULL, NULL, want, &err), HS_OK);
    for (int i = 0; i < n; i++) {
        char what[64];
        snprintf(what, sizeof what, "long batch row %d", i);
        assert_close(hs_ctx_logits(c, i), single + (size_t)i * V, V, what);
    }
    free(single);
    hs_ctx_free(c);
}

static void batch_equals_single_stories(void **state) {
    use_kv(state);
    hs_model *m = NULL;
    assert_int_equal(hs_model_load(HS_SHARED_OR_SKIP("models/stories260K.gguf"), NULL, &m, NULL), HS_OK);
    batch_equals_single_on(m, 2);
    hs_model_free(m);
}

/* Two prompts interleaved in one batch (A0 B0 A1 B1 ...) give each the
 * logits it gets alone; then one more step of both together. */
static void two_sequences_side_by_side(void **state) {
    use_kv(state);
    const int V = g_tiny.V, na = 12, nb = 9;
    hs_ctx *solo = make_ctx(g_tiny.m, 64, 1, 2);
    float *alone_a = one_by_one(solo, k_prompt_a, na, 0, V);
    hs_ctx_seq_clear(solo, 0);
    float *alone_b = one_by_one(solo, k_prompt_b, nb, 0, V);
    hs_ctx_free(solo);

    hs_ctx *c = make_ctx(g_tiny.m, 64, 2, 2);
    int32_t tok[21], pos[21], seq[21];
    int8_t want[21];
    int n = 0, ia = 0, ib = 0;
    while (ia < na - 1 || ib < nb - 1) { /* all but the last token of each */
        if (ia < na - 1) {
            tok[n] = k_prompt_a[ia], pos[n] = ia, seq[n] = 0, want[n++] = 1;
            ia++;
        }
        if (ib < nb - 1) {
            tok[n] = k_prompt_b[ib], pos[n] = ib, seq[n] = 1, want[n++] = 1;
            ib++;
        }
    }
    hs_err err = {0};
    assert_int_equal(decode(c, n, tok, pos, seq, want, &err), HS_OK);
    for (int i = 0; i < n; i++) {
        const float *ref = (seq[i] == 0 ? alone_a : alone_b) + (size_t)pos[i] * V;
        assert_close(hs_ctx_logits(c, i), ref, V, seq[i] == 0 ? "seq A" : "seq B");
    }
    assert_int_equal(hs_ctx_seq_len(c, 0), na - 1);
    assert_int_equal(hs_ctx_seq_len(c, 1), nb - 1);
    /* a decode step of both: B first this time */
    int32_t t2[2] = {k_prompt_b[nb - 1], k_prompt_a[na - 1]}, p2[2] = {nb - 1, na - 1}, s2[2] = {1, 0};
    int8_t w2[2] = {1, 1};
    assert_int_equal(decode(c, 2, t2, p2, s2, w2, &err), HS_OK);
    assert_close(hs_ctx_logits(c, 0), alone_b + (size_t)(nb - 1) * V, V, "step B");
    assert_close(hs_ctx_logits(c, 1), alone_a + (size_t)(na - 1) * V, V, "step A");
    free(alone_a);
    free(alone_b);
    hs_ctx_free(c);
}

/* seq_copy of a prefix, then a different continuation, equals computing the
 * whole thing; truncate and clear give the same as fresh sequences. */
static void seq_copy_truncate_clear(void **state) {
    use_kv(state);
    const int V = g_tiny.V;
    hs_ctx *c = make_ctx(g_tiny.m, 64, 3, 2);
    /* reference: prefix a[0..6) + b[1..9) computed in one go in slot 2 */
    int32_t mixed[14];
    memcpy(mixed, k_prompt_a, 6 * sizeof(int32_t));
    memcpy(mixed + 6, k_prompt_b + 1, 8 * sizeof(int32_t));
    float *fresh = one_by_one(c, mixed, 14, 2, V);
    hs_ctx_seq_clear(c, 2);

    hs_err err = {0};
    assert_int_equal(decode(c, 12, k_prompt_a, NULL, NULL, NULL, &err), HS_OK);
    assert_int_equal(hs_ctx_seq_len(c, 0), 12);
    assert_int_equal(hs_ctx_seq_copy(c, 0, 1, 6), HS_OK);
    assert_int_equal(hs_ctx_seq_len(c, 1), 6);
    float *copied = one_by_one(c, mixed + 6, 8, 1, V);
    for (int i = 0; i < 8; i++)
        assert_close(copied + (size_t)i * V, fresh + (size_t)(6 + i) * V, V, "after seq_copy");
    assert_int_equal(hs_ctx_seq_len(c, 0), 12); /* the source is untouched */

    hs_ctx_seq_truncate(c, 0, 6);
    assert_int_equal(hs_ctx_seq_len(c, 0), 6);
    hs_ctx_seq_truncate(c, 0, 100); /* never grows */
    assert_int_equal(hs_ctx_seq_len(c, 0), 6);
    float *trunc = one_by_one(c, mixed + 6, 8, 0, V);
    for (int i = 0; i < 8; i++)
        assert_close(trunc + (size_t)i * V, fresh + (size_t)(6 + i) * V, V, "after truncate");

    hs_ctx_seq_clear(c, 0);
    assert_int_equal(hs_ctx_seq_len(c, 0), 0);
    float *again = one_by_one(c, mixed, 14, 0, V);
    for (int i = 0; i < 14; i++)
        assert_close(again + (size_t)i * V, fresh + (size_t)i * V, V, "after clear");

    assert_int_equal(hs_ctx_seq_copy(c, 0, 1, 15), HS_EINVAL); /* longer than the source */
    assert_int_equal(hs_ctx_seq_copy(c, 0, 3, 1), HS_EINVAL);  /* no slot 3 */
    assert_int_equal(hs_ctx_seq_copy(c, 0, 0, 4), HS_OK);      /* onto itself: truncates */
    assert_int_equal(hs_ctx_seq_len(c, 0), 4);
    free(fresh);
    free(copied);
    free(trunc);
    free(again);
    hs_ctx_free(c);
}

/* Bad batches fail with the right code and message and change no cache. */
static void bad_batches_leave_cache_unchanged(void **state) {
    use_kv(state);
    const int V = g_tiny.V;
    hs_ctx *c = make_ctx(g_tiny.m, 8, 2, 2);
    hs_err err = {0};
    assert_int_equal(decode(c, 8, k_prompt_a, NULL, NULL, NULL, &err), HS_OK);
    float *before = malloc((size_t)V * sizeof(float));
    memcpy(before, hs_ctx_logits(c, 7), (size_t)V * sizeof(float));

    int32_t tok = 5, pos = 8, seq = 0;
    assert_int_equal(decode(c, 1, &tok, &pos, &seq, NULL, &err), HS_ERANGE);
    assert_string_equal(err.msg, "context full: position 8 >= n_ctx 8");
    assert_int_equal(hs_ctx_seq_len(c, 0), 8);
    assert_null(hs_ctx_logits(c, 0)); /* a failed decode has no logits */
    assert_int_equal(hs_ctx_n_logits(c), 0);

    /* slot 1: a good token, then a bad one in the same batch */
    int32_t t2[2] = {5, V}, p2[2] = {0, 1}, s2[2] = {1, 1};
    assert_int_equal(decode(c, 2, t2, p2, s2, NULL, &err), HS_EINVAL);
    assert_non_null(strstr(err.msg, "outside the vocabulary"));
    t2[1] = -1;
    assert_int_equal(decode(c, 2, t2, p2, s2, NULL, &err), HS_EINVAL);
    assert_int_equal(hs_ctx_seq_len(c, 1), 0);
    t2[1] = 6;
    p2[1] = 2; /* a gap */
    assert_int_equal(decode(c, 2, t2, p2, s2, NULL, &err), HS_EINVAL);
    assert_non_null(strstr(err.msg, "expected 1"));
    p2[1] = 0; /* a repeat */
    assert_int_equal(decode(c, 2, t2, p2, s2, NULL, &err), HS_EINVAL);
    s2[1] = 2; /* no such slot */
    p2[1] = 0;
    assert_int_equal(decode(c, 2, t2, p2, s2, NULL, &err), HS_EINVAL);
    assert_int_equal(hs_ctx_seq_len(c, 1), 0);
    assert_int_equal(decode(c, 0, t2, NULL, NULL, NULL, &err), HS_EINVAL);
    int32_t many[65] = {0};
    assert_int_equal(decode(c, 65, many, NULL, NULL, NULL, &err), HS_EINVAL); /* n_batch is 64 */

    /* slot 0 is as it was: truncating one position and re-feeding it
     * reproduces the same logits */
    hs_ctx_seq_truncate(c, 0, 7);
    pos = 7;
    assert_int_equal(decode(c, 1, &k_prompt_a[7], &pos, &seq, NULL, &err), HS_OK);
    assert_close(hs_ctx_logits(c, 0), before, V, "after errors");
    free(before);
    hs_ctx_free(c);
}

/* Logits exist only for the tokens that asked; NULL flags mean the last. */
static void logits_only_where_asked(void **state) {
    use_kv(state);
    hs_ctx *c = make_ctx(g_tiny.m, 32, 1, 2);
    hs_err err = {0};
    int8_t want[6] = {0, 1, 0, 0, 1, 0};
    assert_int_equal(decode(c, 6, k_prompt_a, NULL, NULL, want, &err), HS_OK);
    assert_int_equal(hs_ctx_n_logits(c), 2);
    for (int i = 0; i < 6; i++)
        assert_true((hs_ctx_logits(c, i) != NULL) == (want[i] != 0));
    assert_null(hs_ctx_logits(c, -1));
    assert_null(hs_ctx_logits(c, 64));
    float *row4 = malloc((size_t)g_tiny.V * sizeof(float));
    memcpy(row4, hs_ctx_logits(c, 4), (size_t)g_tiny.V * sizeof(float));
    hs_ctx_seq_clear(c, 0);
    assert_int_equal(decode(c, 5, k_prompt_a, NULL, NULL, NULL, &err), HS_OK);
    assert_int_equal(hs_ctx_n_logits(c), 1);
    for (int i = 0; i < 4; i++)
        assert_null(hs_ctx_logits(c, i));
    assert_close(hs_ctx_logits(c, 4), row4, g_tiny.V, "last only");
    /* no logits at all still fills the cache */
    hs_ctx_seq_clear(c, 0);
    memset(want, 0, sizeof want);
    assert_int_equal(decode(c, 4, k_prompt_a, NULL, NULL, want, &err), HS_OK);
    assert_int_equal(hs_ctx_n_logits(c), 0);
    assert_int_equal(hs_ctx_seq_len(c, 0), 4);
    int32_t t = k_prompt_a[4];
    assert_int_equal(decode(c, 1, &t, NULL, NULL, NULL, &err), HS_OK);
    assert_close(hs_ctx_logits(c, 0), row4, g_tiny.V, "after a batch without logits");
    free(row4);
    hs_ctx_free(c);
}

static void create_defaults_and_sizes(void **state) {
    (void)state;
    hs_ctx *c = NULL;
    assert_int_equal(hs_ctx_create(g_tiny.m, NULL, &c, NULL), HS_OK);
    /* n_ctx defaults to the training context (256 in the tiny model) */
    assert_int_equal(hs_ctx_n_ctx(c), 256);
    assert_int_equal(hs_ctx_n_seq(c), 1);
    assert_non_null(hs_ctx_pool(c));
    assert_ptr_equal(hs_ctx_model(c), g_tiny.m);
    /* K and V, f16: 3 layers x 256 positions x (2 KV heads x 16) */
    assert_int_equal(hs_ctx_kv_bytes(c), (size_t)2 * 3 * 256 * 32 * 2);
    hs_ctx_free(c);
    struct hs_ctx_params cp = {.n_ctx = -1};
    hs_err err = {0};
    assert_int_equal(hs_ctx_create(g_tiny.m, &cp, &c, &err), HS_EINVAL);
    assert_null(c);
}

/* Each test once with each cache type (the name says which). */
#define KV_TESTS(fn)                                                                                               \
    {#fn "_f32", fn, NULL, NULL, (void *)&k_kv_f32}, { #fn "_f16", fn, NULL, NULL, (void *)&k_kv_f16 }

int main(void) {
    const struct CMUnitTest tests[] = {
        KV_TESTS(batch_equals_single),
        KV_TESTS(long_batch_equals_single),
        KV_TESTS(batch_equals_single_stories),
        KV_TESTS(two_sequences_side_by_side),
        KV_TESTS(seq_copy_truncate_clear),
        KV_TESTS(bad_batches_leave_cache_unchanged),
        KV_TESTS(logits_only_where_asked),
        cmocka_unit_test(create_defaults_and_sizes),
    };
    return cmocka_run_group_tests(tests, setup_tiny, teardown_tiny);
}
