/* Perplexity and KLD (model/perplexity.h) against independent computations on
 * stories260K: the library's perplexity equals one computed here token by
 * token with a hand-written log-softmax; the model finds its own greedy text
 * easy and the same words shuffled hard; a model against itself has zero KLD
 * and full agreement; a Q8_0 copy has a small, non-zero KLD. */
#include "requant.h"
#include "test_util.h"

#include "base/buf.h"
#include "base/mem.h"
#include "base/rng.h"
#include "gguf/gguf.h"
#include "model/context.h"
#include "model/model.h"
#include "model/perplexity.h"
#include "model/tokenizer.h"
#include "tensor/qtype.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Simple English in the style of the stories the model was trained on. */
static const char STORY[] =
    "Once upon a time, there was a little boy named Tom. Tom liked to play with his red ball in the park. "
    "One day, Tom saw a big dog near the tree. The dog was brown and it had a long tail. Tom was scared at "
    "first, but the dog wagged its tail and smiled. Tom said, \"Hello, dog. Do you want to play with me?\" "
    "The dog barked and ran after the ball. Tom laughed and threw the ball again. They played all day in the "
    "sun. When the sun went down, Tom's mom came to the park. She said, \"Tom, it is time to go home.\" Tom "
    "was sad because he did not want to leave his new friend. His mom smiled and said, \"You can come back "
    "tomorrow and play with the dog again.\" Tom was happy. He hugged the dog and said goodbye. "
    "The next day, Tom went back to the park with his ball. The dog was there, waiting for him under the "
    "big tree. They "
    "played and ran and jumped until they were very tired. Then they sat under the tree and looked at the "
    "sky. Tom saw a bird flying high. He wanted to fly like the bird. The dog looked at Tom and barked. Tom "
    "knew that the dog was his best friend. Lily was a little girl who lived next to the park. She liked to "
    "draw pictures of flowers and cats. One day, she saw Tom and the dog playing. She asked, \"Can I play "
    "too?\" Tom said, \"Yes, you can play with us.\" Lily, Tom and the dog played together. They were all "
    "very happy. At the end of the day, Lily gave Tom a picture of the dog. Tom put it on his wall. Every "
    "time he looked at it, he smiled.";

static hs_model *load(const char *path)
{
    hs_model *m = NULL;
    hs_err err = {0};
    if (hs_model_load(path, NULL, &m, &err))
        fail_msg("%s", err.msg);
    return m;
}

/* ---- the independent computation ---- */

/* -log softmax(logits)[target], in long double, by the definition. */
static double nll_by_hand(const float *logits, int n, int32_t target)
{
    long double mx = logits[0];
    for (int i = 1; i < n; i++)
        if (logits[i] > mx)
            mx = logits[i];
    long double sum = 0;
    for (int i = 0; i < n; i++)
        sum += expl((long double)logits[i] - mx);
    return (double)(-((long double)logits[target] - mx - logl(sum)));
}

/* The method of llama.cpp's perplexity, one token per decode: chunk c holds
 * tokens [c*n_ctx, (c+1)*n_ctx) with the first replaced by BOS; positions
 * n_ctx/2 .. n_ctx-2 predict the next token. */
static double ppl_token_by_token(const hs_model *m, const char *text, int n_ctx, int n_chunks, long *n_scored)
{
    hs_err err = {0};
    const hs_tok *tok = hs_model_tok(m);
    int32_t *ids;
    size_t n;
    assert_int_equal(hs_tok_encode(tok, text, strlen(text), true, false, &ids, &n, &err), HS_OK);
    assert_true(n >= (size_t)(n_ctx * n_chunks));
    struct hs_ctx_params cp = {
        .n_ctx = n_ctx, .n_seq = 1, .n_batch = 1, .n_threads = 2, .kv_type = HS_KV_F32};
    hs_ctx *ctx;
    assert_int_equal(hs_ctx_create(m, &cp, &ctx, &err), HS_OK);
    const int n_vocab = hs_model_hparams(m)->n_vocab;
    double sum = 0;
    long count = 0;
    for (int c = 0; c < n_chunks; c++) {
        hs_ctx_seq_clear(ctx, 0);
        for (int j = 0; j < n_ctx; j++) {
            int32_t t = ids[c * n_ctx + j];
            if (j == 0 && hs_tok_add_bos(tok))
                t = hs_tok_bos(tok);
            int32_t pos = j, seq = 0;
            struct hs_batch b = {.n = 1, .tokens = &t, .pos = &pos, .seq = &seq};
            assert_int_equal(hs_decode(ctx, &b, &err), HS_OK);
            if (j >= n_ctx / 2 && j < n_ctx - 1) {
                sum += nll_by_hand(hs_ctx_logits(ctx, 0), n_vocab, ids[c * n_ctx + j + 1]);
                count++;
            }
        }
    }
    hs_ctx_free(ctx);
    hs_free(ids);
    *n_scored = count;
    return exp(sum / (double)count);
}

static void ppl_equals_token_by_token(void **state)
{
    (void)state;
    hs_model *m = load(HS_SHARED_OR_SKIP("models/stories260K.gguf"));
    const int n_ctx = 64, n_chunks = 3;
    long want_n;
    double want = ppl_token_by_token(m, STORY, n_ctx, n_chunks, &want_n);
    /* Batches smaller than a chunk and a last batch cut short, too. */
    const int batches[] = {0, 24};
    for (size_t k = 0; k < sizeof batches / sizeof batches[0]; k++) {
        struct hs_ppl_params p = {.n_ctx = n_ctx,
                                  .n_batch = batches[k],
                                  .n_threads = 2,
                                  .n_chunks = n_chunks,
                                  .kv_type = HS_KV_F32};
        struct hs_ppl_result r;
        hs_err err = {0};
        assert_int_equal(hs_perplexity(m, STORY, strlen(STORY), &p, NULL, NULL, &r, &err), HS_OK);
        assert_int_equal(r.n_chunks, n_chunks);
        assert_int_equal(r.n_tokens, want_n);
        assert_int_equal(r.n_tokens, n_chunks * (n_ctx - 1 - n_ctx / 2));
        print_message("ppl n_batch=%d: library %.9f, token by token %.9f\n", batches[k], r.ppl, want);
        assert_true(fabs(r.ppl - want) <= 1e-6 * want);
        assert_true(fabs(exp(r.nll.mean) - r.ppl) <= 1e-12 * r.ppl);
        assert_true(r.ppl_err > 0 && r.ppl_err < r.ppl);
    }
    hs_model_free(m);
}

/* ---- greedy vs shuffled ---- */

/* The model's own greedy continuation of a prompt, as text. */
static char *greedy_text(const hs_model *m, const char *prompt, int steps)
{
    hs_err err = {0};
    const hs_tok *tok = hs_model_tok(m);
    int32_t *ids;
    size_t n;
    assert_int_equal(hs_tok_encode(tok, prompt, strlen(prompt), true, false, &ids, &n, &err), HS_OK);
    struct hs_ctx_params cp = {.n_ctx = (int)n + steps, .n_seq = 1, .n_batch = 64, .n_threads = 2};
    hs_ctx *ctx;
    assert_int_equal(hs_ctx_create(m, &cp, &ctx, &err), HS_OK);
    struct hs_batch b = {.n = (int)n, .tokens = ids};
    assert_int_equal(hs_decode(ctx, &b, &err), HS_OK);
    const int n_vocab = hs_model_hparams(m)->n_vocab;
    int32_t *gen = malloc((size_t)steps * sizeof *gen);
    for (int s = 0; s < steps; s++) {
        const float *l = hs_ctx_logits(ctx, s == 0 ? (int)n - 1 : 0);
        int32_t best = 0;
        for (int i = 1; i < n_vocab; i++)
            if (l[i] > l[best])
                best = i;
        gen[s] = best;
        struct hs_batch one = {.n = 1, .tokens = &gen[s]};
        assert_int_equal(hs_decode(ctx, &one, &err), HS_OK);
    }
    hs_buf out = {0};
    assert_int_equal(hs_tok_decode(tok, gen, (size_t)steps, false, &out), HS_OK);
    char *text = malloc(strlen(prompt) + out.len + 1);
    memcpy(text, prompt, strlen(prompt));
    memcpy(text + strlen(prompt), out.data, out.len);
    text[strlen(prompt) + out.len] = 0;
    hs_buf_free(&out);
    free(gen);
    hs_ctx_free(ctx);
    hs_free(ids);
    return text;
}

/* The same words in a random order (Fisher-Yates over the space-split words). */
static char *shuffle_words(const char *text, uint64_t seed)
{
    size_t len = strlen(text);
    char *copy = strdup(text);
    char **words = malloc((len / 2 + 2) * sizeof *words);
    size_t nw = 0;
    for (char *p = copy; *p;) {
        while (*p == ' ' || *p == '\n')
            *p++ = 0;
        if (!*p)
            break;
        words[nw++] = p;
        while (*p && *p != ' ' && *p != '\n')
            p++;
    }
    hs_rng rng;
    hs_rng_seed(&rng, seed);
    for (size_t i = nw; i > 1; i--) {
        size_t j = (size_t)(hs_rng_u64(&rng) % i);
        char *t = words[i - 1];
        words[i - 1] = words[j];
        words[j] = t;
    }
    char *out = malloc(len + 2);
    size_t o = 0;
    for (size_t i = 0; i < nw; i++) {
        size_t wl = strlen(words[i]);
        memcpy(out + o, words[i], wl);
        o += wl;
        out[o++] = ' ';
    }
    out[o ? o - 1 : 0] = 0;
    free(words);
    free(copy);
    return out;
}

static void greedy_text_is_easy_shuffled_is_hard(void **state)
{
    (void)state;
    hs_model *m = load(HS_SHARED_OR_SKIP("models/stories260K.gguf"));
    char *greedy = greedy_text(m, "Once upon a time", 300);
    char *shuffled = shuffle_words(greedy, 42);
    struct hs_ppl_params p = {.n_ctx = 128, .n_threads = 2};
    struct hs_ppl_result rg, rs;
    hs_err err = {0};
    assert_int_equal(hs_perplexity(m, greedy, strlen(greedy), &p, NULL, NULL, &rg, &err), HS_OK);
    assert_int_equal(hs_perplexity(m, shuffled, strlen(shuffled), &p, NULL, NULL, &rs, &err), HS_OK);
    print_message("ppl greedy %.4f (%d chunks), shuffled %.4f (%d chunks)\n", rg.ppl, rg.n_chunks, rs.ppl,
                  rs.n_chunks);
    assert_true(rg.n_chunks >= 2);
    assert_true(rg.ppl < 3.0);
    assert_true(rs.ppl > 3.0 * rg.ppl);
    free(greedy);
    free(shuffled);
    hs_model_free(m);
}

/* ---- KLD ---- */

static void kld_self_is_zero(void **state)
{
    (void)state;
    hs_model *m = load(HS_SHARED_OR_SKIP("models/stories260K.gguf"));
    struct hs_ppl_params p = {.n_ctx = 64, .n_threads = 2};
    struct hs_kld_result r;
    hs_err err = {0};
    assert_int_equal(hs_kld(m, m, STORY, strlen(STORY), &p, NULL, NULL, &r, &err), HS_OK);
    assert_true(r.n_chunks >= 3);
    assert_int_equal(r.n_tokens, (long)r.n_chunks * (64 - 1 - 32));
    assert_true(r.kld.mean < 1e-9);
    assert_true(r.kld_max < 1e-9);
    assert_true(r.top1.mean == 1.0);
    assert_true(fabs(r.ppl_ratio - 1.0) < 1e-12);
    assert_true(r.base.ppl == r.quant.ppl);
    /* kld's own perplexity agrees with hs_perplexity over the same chunks. */
    struct hs_ppl_result pr;
    assert_int_equal(hs_perplexity(m, STORY, strlen(STORY), &p, NULL, NULL, &pr, &err), HS_OK);
    assert_true(fabs(pr.ppl - r.base.ppl) <= 1e-12 * pr.ppl);
    hs_model_free(m);
}

static void kld_q8_0_is_small(void **state)
{
    (void)state;
    const char *src = HS_SHARED_OR_SKIP("models/stories260K.gguf");
    char *dst = hs_test_tmpfile("stories-q8_0.gguf");
    test_requantize(src, dst, HS_TYPE_Q8_0);
    hs_model *base = load(src), *quant = load(dst);
    struct hs_ppl_params p = {.n_ctx = 64, .n_threads = 2};
    struct hs_kld_result r;
    hs_err err = {0};
    assert_int_equal(hs_kld(base, quant, STORY, strlen(STORY), &p, NULL, NULL, &r, &err), HS_OK);
    print_message("q8_0: kld %.3g +/- %.3g, median %.3g, p99 %.3g, max %.3g, top1 %.2f%%, ppl %.4f -> %.4f\n",
                  r.kld.mean, r.kld.err, r.kld_median, r.kld_p99, r.kld_max, 100 * r.top1.mean, r.base.ppl,
                  r.quant.ppl);
    assert_true(r.kld.mean > 0);
    assert_true(r.kld.mean < 0.01);
    assert_true(r.kld_min <= r.kld_median && r.kld_median <= r.kld_p90 && r.kld_p90 <= r.kld_p99 &&
                r.kld_p99 <= r.kld_max);
    assert_true(r.kld.mean <= r.kld_max);
    assert_true(r.top1.mean > 0.9);
    assert_true(fabs(r.ppl_ratio - r.quant.ppl / r.base.ppl) < 1e-9 * r.ppl_ratio);
    assert_true(fabs(r.ppl_ratio - 1.0) < 0.05);
    hs_model_free(quant);
    hs_model_free(base);
    free(dst);
}

/* ---- errors and the log-softmax ---- */

static void too_short_text_names_the_need(void **state)
{
    (void)state;
    hs_model *m = load(HS_SHARED_OR_SKIP("models/stories260K.gguf"));
    struct hs_ppl_params p = {.n_ctx = 64, .n_threads = 1};
    struct hs_ppl_result r;
    hs_err err = {0};
    const char *text = "Once upon a time";
    assert_int_equal(hs_perplexity(m, text, strlen(text), &p, NULL, NULL, &r, &err), HS_ERANGE);
    assert_non_null(strstr(err.msg, "needs at least 64"));
    struct hs_kld_result k;
    hs_err_clear(&err);
    assert_int_equal(hs_kld(m, m, text, strlen(text), &p, NULL, NULL, &k, &err), HS_ERANGE);
    assert_non_null(strstr(err.msg, "needs at least 64"));
    p.n_ctx = 2;
    assert_int_equal(hs_perplexity(m, STORY, strlen(STORY), &p, NULL, NULL, &r, &err), HS_EINVAL);
    hs_model_free(m);
}

static void log_softmax_is_stable(void **state)
{
    (void)state;
    const float x[4] = {1000.0f, 1001.0f, -1000.0f, 999.0f};
    double out[4];
    hs_log_softmax(out, x, 4);
    double sum = 0;
    for (int i = 0; i < 4; i++) {
        assert_true(isfinite(out[i]) || i == 2);
        sum += exp(out[i]);
    }
    assert_true(fabs(sum - 1.0) < 1e-12);
    /* log(e^0 + e^1 + e^-1) relative to the max element */
    const double lse = 1001.0 + log(exp(-1.0) + 1.0 + exp(-2.0));
    assert_true(fabs(out[0] - (1000.0 - lse)) < 1e-9);
    assert_true(fabs(out[1] - (1001.0 - lse)) < 1e-9);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(log_softmax_is_stable),
        cmocka_unit_test(ppl_equals_token_by_token),
        cmocka_unit_test(greedy_text_is_easy_shuffled_is_hard),
        cmocka_unit_test(kld_self_is_zero),
        cmocka_unit_test(kld_q8_0_is_small),
        cmocka_unit_test(too_short_text_names_the_need),
    };
    return cmocka_run_group_tests_name("perplexity", tests, NULL, NULL);
}
