/* Quantized weights decide like the f32 ones: stories260K (a trained model,
 * whose greedy choices are confident) re-written with its matrices in Q8_0,
 * Q4_0 and F16 must pick the same 32 greedy tokens as the f32 original, each
 * model fed its own choices (free-running, as `hestia run --temp 0` does).
 * Matrices whose rows are not a whole number of blocks (ffn_down: 172 wide)
 * stay f32, as llama.cpp's quantizer falls back for them. The synthetic-model
 * version of this check (random weights, where near-ties do occur) is in
 * test_synth.c. */
#include "requant.h"
#include "test_util.h"

#include "base/mem.h"
#include "gguf/gguf.h"
#include "model/context.h"
#include "model/model.h"
#include "model/tokenizer.h"
#include "tensor/qtype.h"

#include <stdlib.h>
#include <string.h>

#define STEPS 32

static int32_t argmax(const float *l, int n) {
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (l[i] > l[best])
            best = i;
    return best;
}

/* Greedy tokens after the prompt, each fed back (the cache grows by one). */
static void greedy(const char *path, const char *prompt, int32_t out[STEPS]) {
    hs_model *m;
    hs_err err = {0};
    assert_int_equal(hs_model_load(path, NULL, &m, &err), HS_OK);
    struct hs_ctx_params cp = {.n_ctx = 128, .n_seq = 1, .n_batch = 64, .n_threads = 2};
    hs_ctx *ctx;
    assert_int_equal(hs_ctx_create(m, &cp, &ctx, &err), HS_OK);
    int32_t *ids;
    size_t n;
    assert_int_equal(hs_tok_encode(hs_model_tok(m), prompt, strlen(prompt), true, false, &ids, &n, &err), HS_OK);
    int32_t pos[64], seq[64] = {0};
    assert_true(n < 64);
    for (size_t i = 0; i < n; i++)
        pos[i] = (int32_t)i;
    struct hs_batch b = {.n = (int)n, .tokens = ids, .pos = pos, .seq = seq};
    assert_int_equal(hs_decode(ctx, &b, &err), HS_OK);
    const int n_vocab = hs_model_hparams(m)->n_vocab;
    for (int s = 0; s < STEPS; s++) {
        out[s] = argmax(hs_ctx_logits(ctx, b.n - 1), n_vocab);
        int32_t p = (int32_t)n + s;
        struct hs_batch one = {.n = 1, .tokens = &out[s], .pos = &p, .seq = seq};
        assert_int_equal(hs_decode(ctx, &one, &err), HS_OK);
        b.n = 1;
    }
    hs_free(ids);
    hs_ctx_free(ctx);
    hs_model_free(m);
}

static void check_type(int type, const char *name) {
    const char *src = HS_SHARED_OR_SKIP("models/stories260K.gguf");
    char *dst = hs_test_tmpfile(name);
    test_requantize(src, dst, type);
    static const char *prompts[] = {"Once upon a time", "The fire", "Lily and Tom"};
    for (size_t p = 0; p < sizeof prompts / sizeof prompts[0]; p++) {
        int32_t want[STEPS], got[STEPS];
        greedy(src, prompts[p], want);
        greedy(dst, prompts[p], got);
        for (int s = 0; s < STEPS; s++)
            if (want[s] != got[s])
                fail_msg("%s, prompt '%s': step %d picks %d, f32 picks %d", name, prompts[p], s, got[s], want[s]);
    }
    free(dst);
}

static void q8_0_decodes_like_f32(void **state) {
    (void)state;
    check_type(HS_TYPE_Q8_0, "stories-q8_0.gguf");
}

static void f16_decodes_like_f32(void **state) {
    (void)state;
    check_type(HS_TYPE_F16, "stories-f16.gguf");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(q8_0_decodes_like_f32),
        cmocka_unit_test(f16_decodes_like_f32),
    };
    return cmocka_run_group_tests_name("quant_greedy", tests, NULL, NULL);
}
