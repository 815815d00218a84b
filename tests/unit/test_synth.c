/* model/synth.c and model/ftype_mix.c: llama.cpp's per-tensor type mixes,
 * synthetic files that the reader accepts, determinism across threads. */
#include "test_util.h"

#include "base/buf.h"
#include "base/mem.h"
#include "base/pool.h"
#include "base/sys.h"
#include "gguf/gguf.h"
#include "model/context.h"
#include "model/ftype_mix.h"
#include "model/model.h"
#include "model/synth.h"
#include "model/tokenizer.h"
#include "tensor/qtype.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- type mixes ---- */

static int type_of(const char *ftype, const char *name, int n_dims, int64_t ne0,
                   const struct hs_ftype_model *m)
{
    int64_t ne[2] = {ne0, 4096};
    hs_err err = {0};
    int t = hs_ftype_tensor_type(ftype, name, n_dims, ne, HS_TYPE_F32, m, &err);
    if (t < 0)
        print_message("%s\n", err.msg);
    return t;
}

/* Spot checks of llama_tensor_get_type's rules on the Llama-3.2-1B shape (16
 * layers: the "use_more_bits" layers are 0, 1, 4, 7, 10, 13, 14, 15). */
static void mixes_pick_llamacpp_types(void **state)
{
    (void)state;
    struct hs_ftype_model m = {
        .arch = "llama", .n_layer = 16, .n_head = 32, .n_head_kv = 8, .tied_output = true};
    /* tied token_embd is the output matrix: q6_K in the K mixes and q4_0; q8_0 stays */
    assert_int_equal(type_of("q4_k_m", "token_embd.weight", 2, 2048, &m), HS_TYPE_Q6_K);
    assert_int_equal(type_of("q4_0", "token_embd.weight", 2, 2048, &m), HS_TYPE_Q6_K);
    assert_int_equal(type_of("q8_0", "token_embd.weight", 2, 2048, &m), HS_TYPE_Q8_0);
    m.tied_output = false;
    assert_int_equal(type_of("q4_k_m", "token_embd.weight", 2, 2048, &m), HS_TYPE_Q4_K);
    assert_int_equal(type_of("q4_k_m", "output.weight", 2, 2048, &m), HS_TYPE_Q6_K);
    m.tied_output = true;
    /* attn_v and ffn_down: q6_K in use_more_bits layers of q4_k_m */
    assert_int_equal(type_of("q4_k_m", "blk.0.attn_v.weight", 2, 2048, &m), HS_TYPE_Q6_K);
    assert_int_equal(type_of("q4_k_m", "blk.2.attn_v.weight", 2, 2048, &m), HS_TYPE_Q4_K);
    assert_int_equal(type_of("q4_k_m", "blk.4.attn_v.weight", 2, 2048, &m), HS_TYPE_Q6_K);
    assert_int_equal(type_of("q4_k_m", "blk.15.ffn_down.weight", 2, 8192, &m), HS_TYPE_Q6_K);
    assert_int_equal(type_of("q4_k_m", "blk.12.ffn_down.weight", 2, 8192, &m), HS_TYPE_Q4_K);
    assert_int_equal(type_of("q4_k_m", "blk.3.attn_q.weight", 2, 2048, &m), HS_TYPE_Q4_K);
    /* q3_k_m: attn_v q5_K in the first two layers, attn_output q4_K, ffn_down q5_K in the first n/16 */
    assert_int_equal(type_of("q3_k_m", "blk.1.attn_v.weight", 2, 2048, &m), HS_TYPE_Q5_K);
    assert_int_equal(type_of("q3_k_m", "blk.2.attn_v.weight", 2, 2048, &m), HS_TYPE_Q4_K);
    assert_int_equal(type_of("q3_k_m", "blk.5.attn_output.weight", 2, 2048, &m), HS_TYPE_Q4_K);
    assert_int_equal(type_of("q3_k_m", "blk.0.ffn_down.weight", 2, 8192, &m), HS_TYPE_Q5_K);
    assert_int_equal(type_of("q3_k_m", "blk.1.ffn_down.weight", 2, 8192, &m), HS_TYPE_Q4_K);
    assert_int_equal(type_of("q3_k_m", "blk.1.ffn_up.weight", 2, 2048, &m), HS_TYPE_Q3_K);
    /* q2_k: attn_v by GQA factor (32/8 = 4) */
    assert_int_equal(type_of("q2_k", "blk.1.attn_v.weight", 2, 2048, &m), HS_TYPE_Q4_K);
    m.n_head_kv = 16;
    assert_int_equal(type_of("q2_k", "blk.1.attn_v.weight", 2, 2048, &m), HS_TYPE_Q3_K);
    m.n_head_kv = 8;
    /* norms, 1-D tensors and biases keep their type */
    assert_int_equal(type_of("q4_k_m", "blk.0.attn_norm.weight", 1, 2048, &m), HS_TYPE_F32);
    assert_int_equal(type_of("q4_k_m", "blk.0.attn_q.bias", 1, 2048, &m), HS_TYPE_F32);
    assert_int_equal(type_of("f16", "output_norm.weight", 1, 2048, &m), HS_TYPE_F32);
    assert_int_equal(type_of("f16", "blk.0.attn_q.weight", 2, 2048, &m), HS_TYPE_F16);
    /* rows that do not divide into 256: K types fall back to 32-blocks */
    assert_int_equal(type_of("q4_k_m", "blk.0.attn_q.weight", 2, 960, &m), HS_TYPE_Q5_0);
    assert_int_equal(type_of("q4_k_m", "token_embd.weight", 2, 960, &m), HS_TYPE_Q8_0);
    assert_int_equal(type_of("q5_k_m", "blk.3.attn_q.weight", 2, 960, &m), HS_TYPE_Q5_1);
    assert_int_equal(type_of("q3_k_s", "blk.3.attn_q.weight", 2, 960, &m), HS_TYPE_Q4_0);
    assert_int_equal(type_of("q4_k_m", "blk.0.attn_v.weight", 2, 960, &m), HS_TYPE_Q8_0);
    assert_int_equal(type_of("q8_0", "blk.0.attn_q.weight", 2, 48, &m), HS_TYPE_F16);
    /* pure: no rules, only the fallback */
    m.pure = true;
    assert_int_equal(type_of("q4_k_m", "blk.0.attn_v.weight", 2, 2048, &m), HS_TYPE_Q4_K);
    assert_int_equal(type_of("q4_k_m", "token_embd.weight", 2, 2048, &m), HS_TYPE_Q4_K);
    m.pure = false;
    assert_int_equal(type_of("q4_k", "token_embd.weight", 2, 2048, &m), HS_TYPE_Q4_K);
    hs_err err = {0};
    int64_t ne[2] = {64, 64};
    assert_int_equal(hs_ftype_tensor_type("q9_z", "x.weight", 2, ne, 0, &m, &err), HS_EINVAL);
    assert_non_null(hs_ftype_find("Q4_K_M"));
    assert_int_equal(hs_ftype_find("q4_k_m")->file_type, 15);
}

/* llama.cpp's figures (../shared/perf/llamacpp-cpu.md) are file sizes: tensor
 * data plus the header, metadata and a 128256-token vocabulary, which do not
 * depend on the type. So the difference between a figure and our tensor bytes
 * must be one constant for every quantized mix of a shape (F16's header lacks
 * general.quantization_version, so it may sit one 32-byte alignment step
 * lower), and that constant must be the size of a vocabulary's metadata. A
 * single tensor typed differently from llama.cpp moves one mix's difference by
 * at least tens of kilobytes. */
static void mix_bytes_match_llamacpp_figures(void **state)
{
    (void)state;
    static const struct {
        const char *shape, *ftype;
        uint64_t llamacpp_bytes;
    } figs[] = {
        {"1b", "q4_k_m", 803179776ull},   {"1b", "q8_0", 1316568320ull}, {"1b", "q5_k_m", 906988800ull},
        {"1b", "q3_k_m", 686329088ull},   {"1b", "f16", 2475080928ull},  {"360m", "q8_0", 385799136ull},
        {"360m", "q4_k_m", 269984736ull},
    };
    int64_t d_1b = -1, d_360m = -1;
    for (size_t i = 0; i < sizeof figs / sizeof figs[0]; i++) {
        struct hs_synth_params p;
        hs_synth_params_default(&p);
        hs_err err = {0};
        assert_int_equal(hs_synth_shape(&p, figs[i].shape, &err), HS_OK);
        p.ftype = figs[i].ftype;
        uint64_t bytes = 0, n_weights = 0;
        assert_int_equal(hs_synth_data_bytes(&p, &bytes, &n_weights, &err), HS_OK);
        int64_t d = (int64_t)figs[i].llamacpp_bytes - (int64_t)bytes;
        print_message("%-5s %-7s tensors %11llu  llama.cpp file %11llu  difference %lld\n", figs[i].shape,
                      figs[i].ftype, (unsigned long long)bytes, (unsigned long long)figs[i].llamacpp_bytes,
                      (long long)d);
        /* metadata of an n-token vocabulary: 8-byte length + text + 4-byte type
         * (+ score) per token, plus the tensor index and the hparams */
        assert_true(d > 16 * (int64_t)p.n_vocab);
        assert_true(d < 32 * (int64_t)p.n_vocab);
        int64_t *ref = !strcmp(figs[i].shape, "1b") ? &d_1b : &d_360m;
        if (!strcmp(figs[i].ftype, "f16")) {
            assert_true(*ref >= 0);
            assert_true(*ref - d == 0 || *ref - d == 32);
        } else if (*ref < 0) {
            *ref = d;
        } else {
            assert_int_equal(d, *ref);
        }
        if (!strcmp(figs[i].shape, "1b")) /* 1,235.8 M parameters */
            assert_int_equal(n_weights / 100000, 12358);
        else /* 361.8 M */
            assert_int_equal(n_weights / 100000, 3618);
    }
    assert_true(d_1b > d_360m);
}

/* ---- files ---- */

static char *synth_tiny_as(const char *name, const char *ftype, bool tied, hs_pool *pool)
{
    struct hs_synth_params p;
    hs_synth_params_default(&p);
    p.ftype = ftype;
    p.tied_output = tied;
    p.seed = 7;
    char *path = hs_test_tmpfile(name);
    hs_err err = {0};
    int rc = hs_synth_write(path, &p, pool, &err);
    if (rc)
        print_message("synth: %s\n", err.msg);
    assert_int_equal(rc, HS_OK);
    return path;
}

static char *synth_tiny(const char *name, const char *ftype, hs_pool *pool)
{
    return synth_tiny_as(name, ftype, true, pool);
}

static void file_passes_the_reader(void **state)
{
    (void)state;
    char *path = synth_tiny("tiny-q8.gguf", "q8_0", NULL);
    hs_gguf *g;
    hs_err err = {0};
    assert_int_equal(hs_gguf_open(path, &g, &err), HS_OK);
    const char *s;
    size_t len;
    assert_int_equal(hs_gguf_get_str(g, "general.architecture", &s, &len, &err), HS_OK);
    assert_int_equal(len, 5);
    assert_memory_equal(s, "llama", 5);
    uint32_t v;
    assert_int_equal(hs_gguf_get_u32(g, "general.file_type", &v, &err), HS_OK);
    assert_int_equal(v, 7);
    assert_int_equal(hs_gguf_get_u32(g, "llama.block_count", &v, &err), HS_OK);
    assert_int_equal(v, 2);
    assert_int_equal(hs_gguf_get_u32(g, "llama.attention.head_count_kv", &v, &err), HS_OK);
    assert_int_equal(v, 2);
    assert_int_equal(hs_gguf_get_u32(g, "llama.rope.dimension_count", &v, &err), HS_OK);
    assert_int_equal(v, 64);
    const struct hs_gguf_kv *kv;
    assert_int_equal(hs_gguf_get_arr(g, "tokenizer.ggml.tokens", HS_GGUF_STRING, &kv, &err), HS_OK);
    assert_int_equal(kv->n, 512);
    const char *t = hs_gguf_arr_str(g, kv, 3 + 0x0A, &len);
    assert_int_equal(len, 6);
    assert_memory_equal(t, "<0x0A>", 6);

    /* 2 layers x 9 tensors + token_embd + output_norm, tied: no output.weight */
    assert_int_equal(hs_gguf_n_tensors(g), 20);
    assert_null(hs_gguf_find_tensor(g, "output.weight"));
    const struct hs_gguf_tensor *te = hs_gguf_find_tensor(g, "token_embd.weight");
    assert_non_null(te);
    assert_int_equal(te->type, HS_TYPE_Q8_0);
    assert_int_equal(te->ne[0], 256);
    assert_int_equal(te->ne[1], 512);
    const struct hs_gguf_tensor *down = hs_gguf_find_tensor(g, "blk.1.ffn_down.weight");
    assert_non_null(down);
    assert_int_equal(down->ne[0], 512);
    assert_int_equal(down->ne[1], 256);
    assert_int_equal(hs_gguf_find_tensor(g, "blk.0.attn_norm.weight")->type, HS_TYPE_F32);

    struct hs_synth_params p;
    hs_synth_params_default(&p);
    p.ftype = "q8_0";
    uint64_t bytes = 0, sum = 0;
    assert_int_equal(hs_synth_data_bytes(&p, &bytes, NULL, &err), HS_OK);
    for (int64_t i = 0; i < hs_gguf_n_tensors(g); i++)
        sum += hs_gguf_tensor_at(g, i)->nbytes;
    assert_int_equal(sum, bytes);

    /* norms are near 1; matrices are small, centred and not constant */
    const struct hs_gguf_tensor *norm = hs_gguf_find_tensor(g, "output_norm.weight");
    const float *nw = norm->data;
    for (int i = 0; i < 256; i++)
        assert_true(fabsf(nw[i] - 1.0f) < 0.2f);
    hs_gguf_close(g);
    free(path);
}

/* Same seed: the f32 and q8_0 files hold the same weights (q8_0 within its
 * rounding step), and the thread count does not change a byte. */
static void same_seed_same_weights(void **state)
{
    (void)state;
    hs_pool *pool;
    assert_int_equal(hs_pool_create(3, &pool), HS_OK);
    char *f32 = synth_tiny("w-f32.gguf", "f32", NULL);
    char *q1 = synth_tiny("w-q8-1.gguf", "q8_0", NULL);
    char *q3 = synth_tiny("w-q8-3.gguf", "q8_0", pool);
    char *a, *b;
    size_t la, lb;
    hs_err err = {0};
    assert_int_equal(hs_read_file(q1, &a, &la, &err), HS_OK);
    assert_int_equal(hs_read_file(q3, &b, &lb, &err), HS_OK);
    assert_int_equal(la, lb);
    assert_memory_equal(a, b, la);
    hs_free(a);
    hs_free(b);

    hs_gguf *gf, *gq;
    assert_int_equal(hs_gguf_open(f32, &gf, &err), HS_OK);
    assert_int_equal(hs_gguf_open(q1, &gq, &err), HS_OK);
    const struct hs_gguf_tensor *tf = hs_gguf_find_tensor(gf, "blk.0.ffn_up.weight");
    const struct hs_gguf_tensor *tq = hs_gguf_find_tensor(gq, "blk.0.ffn_up.weight");
    assert_int_equal(tf->type, HS_TYPE_F32);
    assert_int_equal(tq->type, HS_TYPE_Q8_0);
    int64_t n = tf->ne[0] * tf->ne[1];
    float *deq = malloc((size_t)n * sizeof(float));
    hs_qtype(HS_TYPE_Q8_0)->to_float(tq->data, deq, n);
    const float *w = tf->data;
    double ss = 0, mean = 0;
    for (int64_t i = 0; i < n; i++) {
        /* a q8_0 step is max|x|/127 of its block; weights stay below 4 * 0.02 */
        assert_true(fabsf(deq[i] - w[i]) <= 0.1f / 127.0f);
        ss += (double)w[i] * w[i];
        mean += w[i];
    }
    double sd = sqrt(ss / (double)n);
    assert_true(sd > 0.018 && sd < 0.022);
    assert_true(fabs(mean / (double)n) < 0.001);
    /* the residual-writing matrices are scaled down by sqrt(2 n_layer) = 2 */
    const struct hs_gguf_tensor *to = hs_gguf_find_tensor(gf, "blk.0.attn_output.weight");
    const float *wo = to->data;
    ss = 0;
    for (int64_t i = 0; i < to->ne[0] * to->ne[1]; i++)
        ss += (double)wo[i] * wo[i];
    sd = sqrt(ss / (double)(to->ne[0] * to->ne[1]));
    assert_true(sd > 0.009 && sd < 0.011);
    free(deq);
    hs_gguf_close(gf);
    hs_gguf_close(gq);
    free(f32);
    free(q1);
    free(q3);
    hs_pool_free(pool);
}

static void rejects_bad_shapes_and_types(void **state)
{
    (void)state;
    struct hs_synth_params p;
    hs_synth_params_default(&p);
    hs_err err = {0};
    char *path = hs_test_tmpfile("bad.gguf");
    p.n_head = 3; /* 256 / 3 */
    assert_int_equal(hs_synth_write(path, &p, NULL, &err), HS_EINVAL);
    hs_synth_params_default(&p);
    p.ftype = "q7_k";
    assert_int_equal(hs_synth_write(path, &p, NULL, &err), HS_EINVAL);
    hs_synth_params_default(&p);
    p.n_vocab = 100; /* fewer than the 259 special and byte tokens */
    assert_int_equal(hs_synth_write(path, &p, NULL, &err), HS_EINVAL);
    assert_int_equal(hs_synth_shape(&p, "7b", &err), HS_EINVAL);
    free(path);
}

/* ---- loading and decoding (model/, tokenizer) ---- */

static int32_t argmax(const float *x, int n)
{
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

struct decoder {
    hs_model *m;
    hs_ctx *ctx;
    int n_vocab;
};

static void decoder_open(struct decoder *d, const char *path)
{
    hs_err err = {0};
    int rc = hs_model_load(path, NULL, &d->m, &err);
    if (rc)
        print_message("load: %s\n", err.msg);
    assert_int_equal(rc, HS_OK);
    struct hs_ctx_params cp = {.n_ctx = 128, .n_seq = 1, .n_batch = 64, .n_threads = 2};
    assert_int_equal(hs_ctx_create(d->m, &cp, &d->ctx, &err), HS_OK);
    d->n_vocab = hs_model_hparams(d->m)->n_vocab;
}

static void decoder_close(struct decoder *d)
{
    hs_ctx_free(d->ctx);
    hs_model_free(d->m);
}

/* Decodes n tokens at positions pos0.. and returns the last one's logits. */
static const float *decoder_step(struct decoder *d, const int32_t *toks, int n, int pos0)
{
    int32_t pos[64], seq[64];
    assert_true(n <= 64);
    for (int i = 0; i < n; i++) {
        pos[i] = pos0 + i;
        seq[i] = 0;
    }
    struct hs_batch b = {.n = n, .tokens = toks, .pos = pos, .seq = seq, .logits = NULL};
    hs_err err = {0};
    assert_int_equal(hs_decode(d->ctx, &b, &err), HS_OK);
    const float *l = hs_ctx_logits(d->ctx, n - 1);
    assert_non_null(l);
    return l;
}

/* The same seed in f32 and in q8_0 is the same model: greedy decoding of 32
 * steps picks the same tokens. Both models are fed the f32 model's choice, so
 * they always see the same context. A step may disagree only where f32's own
 * top two logits are closer than q8_0's rounding can move them: 4x the
 * logits' rms difference at that step, about 2.8 standard deviations of the
 * noise on the difference of two logits. The output matrix is untied: with a
 * tied one, a random model just repeats its input token. */
static void f32_and_q8_0_decode_alike(void **state)
{
    (void)state;
    char *f32 = synth_tiny_as("d-f32.gguf", "f32", false, NULL);
    char *q8 = synth_tiny_as("d-q8.gguf", "q8_0", false, NULL);
    struct decoder a, b;
    decoder_open(&a, f32);
    decoder_open(&b, q8);
    const char *prompt = "Once upon a time there was a little";
    int32_t *ids;
    size_t n;
    hs_err err = {0};
    assert_int_equal(hs_tok_encode(hs_model_tok(a.m), prompt, strlen(prompt), true, false, &ids, &n, &err),
                     HS_OK);
    assert_true(n >= 2 && n < 64);
    const float *la = decoder_step(&a, ids, (int)n, 0);
    const float *lb = decoder_step(&b, ids, (int)n, 0);
    int32_t out_a[32], out_b[32];
    int near_ties = 0, distinct = 0;
    for (int s = 0; s < 32; s++) {
        int32_t ta = argmax(la, a.n_vocab), tb = argmax(lb, b.n_vocab);
        double ss = 0, sd = 0, second = -1e30;
        for (int i = 0; i < a.n_vocab; i++) {
            ss += (double)la[i] * la[i];
            sd += ((double)la[i] - lb[i]) * ((double)la[i] - lb[i]);
            if (i != ta && la[i] > second)
                second = la[i];
        }
        double rms = sqrt(ss / a.n_vocab), rms_diff = sqrt(sd / a.n_vocab);
        /* q8_0 keeps the logits within a few percent */
        assert_true(rms_diff < 0.05 * rms);
        if (la[ta] - second < 4 * rms_diff)
            near_ties++;
        else
            assert_int_equal(ta, tb);
        out_a[s] = ta;
        out_b[s] = tb;
        distinct += s == 0 || ta != out_a[s - 1];
        la = decoder_step(&a, &ta, 1, (int)n + s);
        lb = decoder_step(&b, &ta, 1, (int)n + s);
    }
    for (int s = 0; s < 32; s++)
        print_message("%d/%d ", out_a[s], out_b[s]);
    print_message("\n%d near ties\n", near_ties);
    assert_true(near_ties <= 8); /* most steps are checked */
    assert_true(distinct >= 8);  /* a real sequence, not one token repeated */
    hs_free(ids);
    decoder_close(&a);
    decoder_close(&b);
    free(f32);
    free(q8);
}

/* A synthesized 128256-token vocabulary (the Llama-3 size) loads in the
 * SentencePiece tokenizer, every entry is distinct, common words are single
 * pieces, and text of any kind round-trips. */
static void synthesized_vocab_loads_and_round_trips(void **state)
{
    (void)state;
    struct hs_synth_params p;
    hs_synth_params_default(&p);
    p.n_vocab = 128256;
    p.vocab_only = true;
    char *path = hs_test_tmpfile("vocab.gguf");
    hs_err err = {0};
    assert_int_equal(hs_synth_write(path, &p, NULL, &err), HS_OK);
    hs_gguf *g;
    assert_int_equal(hs_gguf_open(path, &g, &err), HS_OK);
    assert_int_equal(hs_gguf_n_tensors(g), 0);
    hs_tok *t;
    int rc = hs_tok_load(g, &t, &err);
    if (rc)
        print_message("tok: %s\n", err.msg);
    assert_int_equal(rc, HS_OK);
    hs_gguf_close(g);
    assert_int_equal(hs_tok_n_vocab(t), 128256);
    assert_int_equal(hs_tok_bos(t), 1);
    assert_int_equal(hs_tok_eos(t), 2);
    for (int32_t id = 0; id < 128256; id++) {
        size_t len;
        const char *s = hs_tok_text(t, id, &len);
        assert_int_equal(hs_tok_find(t, s, len), id);
    }
    assert_int_equal(hs_tok_type(t, 3 + 'A'), HS_TOK_BYTE);
    assert_int_equal(hs_tok_type(t, 1), HS_TOK_CONTROL);

    int32_t *ids;
    size_t n;
    assert_int_equal(hs_tok_encode(t, "the", 3, false, false, &ids, &n, &err), HS_OK);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], hs_tok_find(t, "\xe2\x96\x81the", 6));
    hs_free(ids);

    static const char *texts[] = {
        "Hello world",
        "the quick brown fox jumps over the lazy dog",
        "  two  spaces, then\ttab and\nnewline\n",
        "numbers 3.14159 and 1,000,000; punctuation!?",
        "h\xc3\xa9llo w\xc3\xb6rld \xe2\x80\x94 \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\x99\x82",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        const char *s = texts[i];
        assert_int_equal(hs_tok_encode(t, s, strlen(s), true, false, &ids, &n, &err), HS_OK);
        assert_int_equal(ids[0], 1);
        hs_buf out = {0};
        assert_int_equal(hs_tok_decode(t, ids, n, false, &out), HS_OK);
        assert_string_equal(out.data, s);
        /* fewer tokens than bytes: pieces, not only byte fallback */
        assert_true(n - 1 < strlen(s));
        hs_buf_free(&out);
        hs_free(ids);
    }
    hs_tok_free(t);
    free(path);
}

/* --vocab-from: the tokenizer keys are copied, n_vocab follows the vocabulary,
 * and the model's tokenizer encodes like the source file's. */
static void vocab_copied_from_a_gguf(void **state)
{
    (void)state;
    const char *src = HS_SHARED_OR_SKIP("testdata/tokenizer/ggml-vocab-llama-spm.gguf");
    struct hs_synth_params p;
    hs_synth_params_default(&p);
    p.ftype = "q8_0";
    p.vocab_from = src;
    char *path = hs_test_tmpfile("vf.gguf");
    hs_err err = {0};
    int rc = hs_synth_write(path, &p, NULL, &err);
    if (rc)
        print_message("synth: %s\n", err.msg);
    assert_int_equal(rc, HS_OK);

    hs_gguf *g;
    assert_int_equal(hs_gguf_open(src, &g, &err), HS_OK);
    hs_tok *ts;
    assert_int_equal(hs_tok_load(g, &ts, &err), HS_OK);
    hs_gguf_close(g);
    hs_model *m;
    rc = hs_model_load(path, NULL, &m, &err);
    if (rc)
        print_message("load: %s\n", err.msg);
    assert_int_equal(rc, HS_OK);
    const hs_tok *tm = hs_model_tok(m);
    assert_int_equal(hs_tok_n_vocab(tm), hs_tok_n_vocab(ts));
    assert_int_equal(hs_model_hparams(m)->n_vocab, hs_tok_n_vocab(ts));
    const struct hs_gguf_tensor *te = hs_gguf_find_tensor(hs_model_gguf(m), "token_embd.weight");
    assert_int_equal(te->ne[1], hs_tok_n_vocab(ts));
    const char *text = "Hello world, this is a test of the copied vocabulary.";
    int32_t *a, *b;
    size_t na, nb;
    assert_int_equal(hs_tok_encode(ts, text, strlen(text), true, false, &a, &na, &err), HS_OK);
    assert_int_equal(hs_tok_encode(tm, text, strlen(text), true, false, &b, &nb, &err), HS_OK);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na * sizeof *a);
    hs_free(a);
    hs_free(b);
    hs_tok_free(ts);
    hs_model_free(m);
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(mixes_pick_llamacpp_types),
        cmocka_unit_test(mix_bytes_match_llamacpp_figures),
        cmocka_unit_test(file_passes_the_reader),
        cmocka_unit_test(same_seed_same_weights),
        cmocka_unit_test(rejects_bad_shapes_and_types),
        cmocka_unit_test(f32_and_q8_0_decode_alike),
        cmocka_unit_test(synthesized_vocab_loads_and_round_trips),
        cmocka_unit_test(vocab_copied_from_a_gguf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
