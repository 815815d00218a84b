/* Synthetic llama-shaped models: a tensor plan from the shape and the type
 * mix, metadata as llama.cpp's converter writes it, a SentencePiece vocabulary
 * made up to the size asked for, and weights generated, quantized and written
 * one chunk of rows at a time. */
#include "model/synth.h"

#include "base/log.h"
#include "base/mem.h"
#include "base/rng.h"
#include "gguf/gguf.h"
#include "model/ftype_mix.h"
#include "tensor/qtype.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

void hs_synth_params_default(struct hs_synth_params *p)
{
    memset(p, 0, sizeof *p);
    p->arch = "llama";
    p->n_ctx_train = 4096;
    p->ftype = "f32";
    p->seed = 42;
    p->init_scale = 0.02f;
    hs_synth_shape(p, "tiny", NULL);
}

int hs_synth_shape(struct hs_synth_params *p, const char *shape, hs_err *err)
{
    static const struct {
        const char *name;
        int n_embd, n_layer, n_head, n_head_kv, n_ff, n_vocab;
    } shapes[] = {
        {"1b", 2048, 16, 32, 8, 8192, 128256},
        {"360m", 960, 32, 15, 5, 2560, 49152},
        {"tiny", 256, 2, 4, 2, 512, 512},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        if (strcmp(shapes[i].name, shape) != 0)
            continue;
        p->n_embd = shapes[i].n_embd;
        p->n_layer = shapes[i].n_layer;
        p->n_head = shapes[i].n_head;
        p->n_head_kv = shapes[i].n_head_kv;
        p->n_ff = shapes[i].n_ff;
        p->n_vocab = shapes[i].n_vocab;
        p->tied_output = true;
        return HS_OK;
    }
    return hs_err_set(err, HS_EINVAL, "unknown shape '%s' (1b, 360m, tiny)", shape ? shape : "(null)");
}

/* ---- the tensor plan ---- */

#define NAME_MAX_LEN 64

enum init_kind { INIT_MATRIX, INIT_NORM, INIT_BIAS };

struct tplan {
    char name[NAME_MAX_LEN];
    int n_dims;
    int64_t ne[2]; /* ne[0]: row length; ne[1]: rows (1 for a vector) */
    int type;
    enum init_kind init;
    float scale;
};

struct plan {
    const struct hs_ftype *ft;
    bool qwen2;
    int n_vocab;
    struct tplan *t;
    int n, cap;
    uint64_t data_bytes, n_weights;
};

static void plan_free(struct plan *pl)
{
    hs_free(pl->t);
    pl->t = NULL;
}

static int plan_add(struct plan *pl, const struct hs_synth_params *p, const char *name, int n_dims,
                    int64_t ne0, int64_t ne1, enum init_kind init, float scale, hs_err *err)
{
    if (pl->n == pl->cap) {
        int cap = pl->cap ? pl->cap * 2 : 64;
        struct tplan *t = hs_realloc_array(pl->t, (size_t)cap, sizeof *t);
        if (!t)
            return hs_err_set(err, HS_ENOMEM, "synth: out of memory");
        pl->t = t;
        pl->cap = cap;
    }
    struct tplan *t = &pl->t[pl->n];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->n_dims = n_dims;
    t->ne[0] = ne0;
    t->ne[1] = ne1;
    t->init = init;
    t->scale = scale;
    struct hs_ftype_model fm = {
        .arch = p->arch,
        .n_layer = p->n_layer,
        .n_head = p->n_head,
        .n_head_kv = p->n_head_kv,
        .tied_output = p->tied_output,
    };
    int type = hs_ftype_tensor_type_of(pl->ft, name, n_dims, t->ne, HS_TYPE_F32, &fm, err);
    if (type < 0)
        return type;
    t->type = type;
    size_t row = hs_type_row_bytes((uint32_t)type, ne0);
    if (row == 0)
        return hs_err_set(err, HS_EINVAL, "synth: tensor %s: row of %lld does not fit type %d", name,
                          (long long)ne0, type);
    pl->data_bytes += (uint64_t)row * (uint64_t)ne1;
    pl->n_weights += (uint64_t)ne0 * (uint64_t)ne1;
    pl->n++;
    return HS_OK;
}

static int check_shape(const struct hs_synth_params *p, int n_vocab, hs_err *err)
{
    if (p->n_embd <= 0 || p->n_layer <= 0 || p->n_head <= 0 || p->n_head_kv <= 0 || p->n_ff <= 0)
        return hs_err_set(err, HS_EINVAL,
                          "synth: n_embd, n_layer, n_head, n_head_kv and n_ff must be positive");
    if (p->n_embd % p->n_head != 0)
        return hs_err_set(err, HS_EINVAL, "synth: n_embd %d is not a multiple of n_head %d", p->n_embd,
                          p->n_head);
    if (p->n_head % p->n_head_kv != 0)
        return hs_err_set(err, HS_EINVAL, "synth: n_head %d is not a multiple of n_head_kv %d", p->n_head,
                          p->n_head_kv);
    if ((p->n_embd / p->n_head) % 2 != 0)
        return hs_err_set(err, HS_EINVAL, "synth: head dimension %d is odd (rope rotates pairs)",
                          p->n_embd / p->n_head);
    if (p->n_layer > 10000 || p->n_embd > (1 << 20) || p->n_ff > (1 << 22))
        return hs_err_set(err, HS_EINVAL, "synth: shape too large");
    if (n_vocab < 259 || n_vocab > (1 << 24))
        return hs_err_set(
            err, HS_EINVAL,
            "synth: n_vocab %d out of range (at least 259: <unk>, <s>, </s> and 256 byte tokens)", n_vocab);
    return HS_OK;
}

/* Tensors in the order llama.cpp's converter writes a llama model. Weight
 * matrices are normal(0, scale); the two that write into the residual stream
 * (attn_output, ffn_down) are scaled down by sqrt(2 n_layer), as GPT-2 does at
 * initialisation, so the residual stays of order one over many layers. */
static int plan_build(struct plan *pl, const struct hs_synth_params *p, int n_vocab, hs_err *err)
{
    memset(pl, 0, sizeof *pl);
    pl->ft = hs_ftype_find(p->ftype);
    if (!pl->ft)
        return hs_err_set(err, HS_EINVAL, "synth: unknown type '%s'", p->ftype ? p->ftype : "(null)");
    const char *arch = p->arch ? p->arch : "llama";
    if (strcmp(arch, "llama") != 0 && strcmp(arch, "qwen2") != 0)
        return hs_err_set(err, HS_EUNSUPPORTED, "synth: architecture '%s' (llama, qwen2)", arch);
    pl->qwen2 = !strcmp(arch, "qwen2");
    int rc = check_shape(p, n_vocab, err);
    if (rc)
        return rc;
    pl->n_vocab = n_vocab;
    if (p->vocab_only)
        return HS_OK;

    const int64_t E = p->n_embd, F = p->n_ff, V = n_vocab;
    const int64_t KV = (int64_t)(p->n_embd / p->n_head) * p->n_head_kv;
    const float s = p->init_scale > 0 ? p->init_scale : 0.02f;
    const float s_res = s / sqrtf(2.0f * (float)p->n_layer);
    char name[NAME_MAX_LEN];

#define ADD(n_dims, ne0, ne1, init, scale)                                                                   \
    do {                                                                                                     \
        rc = plan_add(pl, p, name, n_dims, ne0, ne1, init, scale, err);                                      \
        if (rc)                                                                                              \
            goto fail;                                                                                       \
    } while (0)

    snprintf(name, sizeof name, "token_embd.weight");
    ADD(2, E, V, INIT_MATRIX, s);
    for (int il = 0; il < p->n_layer; il++) {
        snprintf(name, sizeof name, "blk.%d.attn_norm.weight", il);
        ADD(1, E, 1, INIT_NORM, s);
        snprintf(name, sizeof name, "blk.%d.attn_q.weight", il);
        ADD(2, E, E, INIT_MATRIX, s);
        if (pl->qwen2) {
            snprintf(name, sizeof name, "blk.%d.attn_q.bias", il);
            ADD(1, E, 1, INIT_BIAS, s);
        }
        snprintf(name, sizeof name, "blk.%d.attn_k.weight", il);
        ADD(2, E, KV, INIT_MATRIX, s);
        if (pl->qwen2) {
            snprintf(name, sizeof name, "blk.%d.attn_k.bias", il);
            ADD(1, KV, 1, INIT_BIAS, s);
        }
        snprintf(name, sizeof name, "blk.%d.attn_v.weight", il);
        ADD(2, E, KV, INIT_MATRIX, s);
        if (pl->qwen2) {
            snprintf(name, sizeof name, "blk.%d.attn_v.bias", il);
            ADD(1, KV, 1, INIT_BIAS, s);
        }
        snprintf(name, sizeof name, "blk.%d.attn_output.weight", il);
        ADD(2, E, E, INIT_MATRIX, s_res);
        snprintf(name, sizeof name, "blk.%d.ffn_norm.weight", il);
        ADD(1, E, 1, INIT_NORM, s);
        snprintf(name, sizeof name, "blk.%d.ffn_gate.weight", il);
        ADD(2, E, F, INIT_MATRIX, s);
        snprintf(name, sizeof name, "blk.%d.ffn_up.weight", il);
        ADD(2, E, F, INIT_MATRIX, s);
        snprintf(name, sizeof name, "blk.%d.ffn_down.weight", il);
        ADD(2, F, E, INIT_MATRIX, s_res);
    }
    snprintf(name, sizeof name, "output_norm.weight");
    ADD(1, E, 1, INIT_NORM, s);
    if (!p->tied_output) {
        snprintf(name, sizeof name, "output.weight");
        ADD(2, E, V, INIT_MATRIX, s);
    }
#undef ADD
    return HS_OK;
fail:
    plan_free(pl);
    return rc;
}

int hs_synth_data_bytes(const struct hs_synth_params *p, uint64_t *bytes, uint64_t *n_weights, hs_err *err)
{
    struct plan pl;
    int rc = plan_build(&pl, p, p->n_vocab, err);
    if (rc)
        return rc;
    if (bytes)
        *bytes = pl.data_bytes;
    if (n_weights)
        *n_weights = pl.n_weights;
    plan_free(&pl);
    return HS_OK;
}

/* ---- the vocabulary ---- */

/* A SentencePiece ("llama") vocabulary: <unk>, <s>, </s>, the 256 byte tokens
 * <0x00>..<0xFF> (so any text encodes, by byte fallback), the single
 * characters "▁" (the SentencePiece space) and printable ASCII, then pieces of
 * 2, 3, ... letters, optionally starting with "▁", in a fixed order. Every
 * piece's substrings come earlier with a higher score, so BPE merging can
 * reach every piece. */
struct vocab {
    int n;
    char *text;        /* all pieces, NUL-separated */
    const char **strs; /* n pointers into text */
    float *scores;
    int32_t *types; /* enum hs_tok_type numbers */
};

static void vocab_free(struct vocab *v)
{
    hs_free(v->text);
    hs_free(v->strs);
    hs_free(v->scores);
    hs_free(v->types);
    memset(v, 0, sizeof *v);
}

#define SPM_SPACE "\xe2\x96\x81" /* U+2581, the SentencePiece space */

static const char k_letters[] = "etaoinshrdlucmwfgypbvkjxqz"; /* English letter frequency */

static int vocab_build(struct vocab *v, int n, hs_err *err)
{
    memset(v, 0, sizeof *v);
    /* below 2^24 tokens no piece has more than 6 symbols (8 bytes with "▁"): 16 bytes each is ample */
    size_t cap = (size_t)n * 16;
    v->text = hs_malloc(cap);
    v->strs = hs_calloc((size_t)n, sizeof *v->strs);
    v->scores = hs_calloc((size_t)n, sizeof *v->scores);
    v->types = hs_calloc((size_t)n, sizeof *v->types);
    if (!v->text || !v->strs || !v->scores || !v->types) {
        vocab_free(v);
        return hs_err_set(err, HS_ENOMEM, "synth: out of memory for a %d-token vocabulary", n);
    }
    size_t used = 0;
    int k = 0;
#define PUSH(str, type, score)                                                                               \
    do {                                                                                                     \
        size_t len_ = strlen(str);                                                                           \
        memcpy(v->text + used, str, len_ + 1);                                                               \
        v->strs[k] = v->text + used;                                                                         \
        v->types[k] = (type);                                                                                \
        v->scores[k] = (score);                                                                              \
        used += len_ + 1;                                                                                    \
        k++;                                                                                                 \
    } while (0)
    /* token types: 1 normal, 2 unknown, 3 control, 6 byte (tokenizer.ggml.token_type) */
    PUSH("<unk>", 2, 0.0f);
    PUSH("<s>", 3, 0.0f);
    PUSH("</s>", 3, 0.0f);
    for (int b = 0; b < 256; b++) {
        char s[8];
        snprintf(s, sizeof s, "<0x%02X>", b);
        PUSH(s, 6, 0.0f);
    }
    int piece = 0;
    char s[32];
    if (k < n)
        PUSH(SPM_SPACE, 1, -(float)piece++);
    for (int c = 0x21; c < 0x7f && k < n; c++) {
        s[0] = (char)c;
        s[1] = 0;
        PUSH(s, 1, -(float)piece++);
    }
    /* length len: the first symbol is "▁" or a letter (27 choices), the others
     * letters (26); counted in a mixed radix */
    for (int len = 2; k < n && len < 12; len++) {
        uint64_t total = 27;
        for (int i = 1; i < len; i++)
            total *= 26;
        for (uint64_t idx = 0; idx < total && k < n; idx++) {
            uint64_t x = idx;
            char digits[12];
            for (int i = len - 1; i >= 1; i--) {
                digits[i] = k_letters[x % 26];
                x /= 26;
            }
            size_t o = 0;
            if (x == 0) {
                memcpy(s, SPM_SPACE, 3);
                o = 3;
            } else {
                s[o++] = k_letters[x - 1];
            }
            for (int i = 1; i < len; i++)
                s[o++] = digits[i];
            s[o] = 0;
            PUSH(s, 1, -(float)piece++);
        }
    }
#undef PUSH
    v->n = k;
    return HS_OK;
}

/* ---- metadata ---- */

static void arch_key(char *buf, size_t cap, const char *arch, const char *key)
{
    snprintf(buf, cap, "%s.%s", arch, key);
}

static int write_vocab_from(hs_gguf_writer *w, const char *path, hs_err *err)
{
    hs_gguf *g;
    int rc = hs_gguf_open(path, &g, err);
    if (rc)
        return rc;
    for (int64_t i = 0; i < hs_gguf_n_kv(g) && rc == HS_OK; i++) {
        const struct hs_gguf_kv *kv = hs_gguf_kv_at(g, i);
        if (!strncmp(kv->key, "tokenizer.", 10))
            rc = hs_gguf_w_kv_from(w, g, kv);
    }
    hs_gguf_close(g);
    if (rc)
        return hs_err_set(err, rc, "synth: copying the tokenizer keys of %s failed", path);
    return HS_OK;
}

/* n_vocab of a vocab GGUF: the length of tokenizer.ggml.tokens. */
static int vocab_size_of(const char *path, int *n, hs_err *err)
{
    hs_gguf *g;
    int rc = hs_gguf_open(path, &g, err);
    if (rc)
        return rc;
    const struct hs_gguf_kv *kv;
    rc = hs_gguf_get_arr(g, "tokenizer.ggml.tokens", HS_GGUF_STRING, &kv, err);
    if (rc == HS_ENOTFOUND)
        rc = hs_err_set(err, HS_EFORMAT, "%s: no tokenizer.ggml.tokens to copy a vocabulary from", path);
    else if (rc == HS_OK && (kv->n == 0 || kv->n > (1u << 24)))
        rc = hs_err_set(err, HS_EFORMAT, "%s: %llu tokens", path, (unsigned long long)kv->n);
    if (rc == HS_OK)
        *n = (int)kv->n;
    hs_gguf_close(g);
    return rc;
}

static int write_metadata(hs_gguf_writer *w, const struct hs_synth_params *p, const struct plan *pl,
                          hs_err *err)
{
    const char *arch = pl->qwen2 ? "qwen2" : "llama";
    const int head_dim = p->n_embd / p->n_head;
    char key[96], name[96];
    snprintf(name, sizeof name, "hestia synthetic %s %s", arch, pl->ft->name);

    hs_gguf_w_str(w, "general.architecture", arch, strlen(arch));
    hs_gguf_w_str(w, "general.type", "model", 5);
    hs_gguf_w_str(w, "general.name", name, strlen(name));
    arch_key(key, sizeof key, arch, "block_count");
    hs_gguf_w_u32(w, key, (uint32_t)p->n_layer);
    arch_key(key, sizeof key, arch, "context_length");
    hs_gguf_w_u32(w, key, (uint32_t)(p->n_ctx_train > 0 ? p->n_ctx_train : 4096));
    arch_key(key, sizeof key, arch, "embedding_length");
    hs_gguf_w_u32(w, key, (uint32_t)p->n_embd);
    arch_key(key, sizeof key, arch, "feed_forward_length");
    hs_gguf_w_u32(w, key, (uint32_t)p->n_ff);
    arch_key(key, sizeof key, arch, "attention.head_count");
    hs_gguf_w_u32(w, key, (uint32_t)p->n_head);
    arch_key(key, sizeof key, arch, "attention.head_count_kv");
    hs_gguf_w_u32(w, key, (uint32_t)p->n_head_kv);
    arch_key(key, sizeof key, arch, "rope.freq_base");
    float base = p->rope_freq_base > 0 ? p->rope_freq_base : pl->qwen2 ? 1000000.0f : 10000.0f;
    hs_gguf_w_f32(w, key, base);
    arch_key(key, sizeof key, arch, "attention.layer_norm_rms_epsilon");
    hs_gguf_w_f32(w, key, pl->qwen2 ? 1e-6f : 1e-5f);
    arch_key(key, sizeof key, arch, "attention.key_length");
    hs_gguf_w_u32(w, key, (uint32_t)head_dim);
    arch_key(key, sizeof key, arch, "attention.value_length");
    hs_gguf_w_u32(w, key, (uint32_t)head_dim);
    hs_gguf_w_u32(w, "general.file_type", (uint32_t)pl->ft->file_type);
    arch_key(key, sizeof key, arch, "vocab_size");
    hs_gguf_w_u32(w, key, (uint32_t)pl->n_vocab);
    arch_key(key, sizeof key, arch, "rope.dimension_count");
    int rc = hs_gguf_w_u32(w, key, (uint32_t)head_dim);
    if (rc)
        return hs_err_set(err, rc, "synth: writing metadata failed");

    if (p->vocab_from) {
        rc = write_vocab_from(w, p->vocab_from, err);
    } else {
        struct vocab v;
        rc = vocab_build(&v, pl->n_vocab, err);
        if (rc)
            return rc;
        hs_gguf_w_str(w, "tokenizer.ggml.model", "llama", 5);
        hs_gguf_w_str(w, "tokenizer.ggml.pre", "default", 7);
        hs_gguf_w_arr_str(w, "tokenizer.ggml.tokens", v.strs, NULL, (uint64_t)v.n);
        hs_gguf_w_arr(w, "tokenizer.ggml.scores", HS_GGUF_FLOAT32, v.scores, (uint64_t)v.n);
        hs_gguf_w_arr(w, "tokenizer.ggml.token_type", HS_GGUF_INT32, v.types, (uint64_t)v.n);
        hs_gguf_w_u32(w, "tokenizer.ggml.bos_token_id", 1);
        hs_gguf_w_u32(w, "tokenizer.ggml.eos_token_id", 2);
        hs_gguf_w_u32(w, "tokenizer.ggml.unknown_token_id", 0);
        hs_gguf_w_bool(w, "tokenizer.ggml.add_bos_token", true);
        rc = hs_gguf_w_bool(w, "tokenizer.ggml.add_eos_token", false);
        vocab_free(&v);
        if (rc)
            rc = hs_err_set(err, rc, "synth: writing the vocabulary failed");
    }
    if (rc)
        return rc;
    rc = hs_gguf_w_u32(w, "general.quantization_version", 2);
    if (rc)
        return hs_err_set(err, rc, "synth: writing metadata failed");
    return HS_OK;
}

/* ---- weights ---- */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

static uint64_t name_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
    return h;
}

/* Each row has its own seed (model seed, tensor name, row), so the weights do
 * not depend on the type, the chunking or the number of threads: an f32 and a
 * q8_0 file of the same seed hold the same model. The normal deviates are
 * Irwin-Hall sums of four 16-bit uniforms from one 64-bit draw: close enough
 * to a normal for synthetic weights, and a billion of them take seconds where
 * Box-Muller would take a minute. */
static void fill_row(float *x, int64_t n, uint64_t seed, enum init_kind init, float scale)
{
    hs_rng r;
    hs_rng_seed(&r, seed);
    const float k = 1.7320508f / 65536.0f; /* 1 / std of the sum: sqrt(3) / 2^16 */
    for (int64_t i = 0; i < n; i++) {
        uint64_t u = hs_rng_u64(&r);
        uint32_t sum = (uint32_t)(u & 0xffff) + (uint32_t)((u >> 16) & 0xffff) +
                       (uint32_t)((u >> 32) & 0xffff) + (uint32_t)(u >> 48);
        float z = ((float)sum - 131070.0f) * k;
        x[i] = init == INIT_NORM ? 1.0f + scale * z : scale * z;
    }
}

struct chunk_job {
    const struct tplan *t;
    uint64_t tseed;
    int64_t row0, nrows;
    size_t row_bytes;
    uint8_t *out;
    float *scratch; /* one row of ne[0] floats per thread */
    hs_from_float_fn quant;
};

static void chunk_run(void *arg, int ith, int nth)
{
    struct chunk_job *j = arg;
    long lo, hi;
    hs_pool_split((long)j->nrows, ith, nth, &lo, &hi);
    const int64_t n = j->t->ne[0];
    float *x = j->scratch + (size_t)ith * (size_t)n;
    for (long r = lo; r < hi; r++) {
        fill_row(x, n, mix64(j->tseed ^ mix64((uint64_t)(j->row0 + r) + 1)), j->t->init, j->t->scale);
        j->quant(x, j->out + (size_t)r * j->row_bytes, n);
    }
}

/* Every type in the plan needs a quantizer; checked before the file is created. */
static int check_quantizers(const struct plan *pl, hs_err *err)
{
    for (int i = 0; i < pl->n; i++) {
        const struct tplan *t = &pl->t[i];
        const struct hs_qtype *q = hs_qtype(t->type);
        if (!q || !q->from_float_ref) {
            const struct hs_type_size *ts = hs_type_size((uint32_t)t->type);
            return hs_err_set(err, HS_EUNSUPPORTED, "synth: no quantizer for type %s (tensor %s) yet",
                              ts ? ts->name : "?", t->name);
        }
    }
    return HS_OK;
}

#define CHUNK_BYTES (8u << 20) /* quantized bytes per chunk: progress granularity and memory */

static int write_tensors(hs_gguf_writer *w, const struct hs_synth_params *p, const struct plan *pl,
                         hs_pool *pool, hs_err *err)
{
    const int nth = pool ? hs_pool_size(pool) : 1;
    int64_t max_ne0 = 1;
    size_t max_chunk = 1;
    for (int i = 0; i < pl->n; i++) {
        const struct tplan *t = &pl->t[i];
        size_t row = hs_type_row_bytes((uint32_t)t->type, t->ne[0]);
        int64_t rows = (int64_t)(CHUNK_BYTES / row);
        if (rows < 1)
            rows = 1;
        if (rows > t->ne[1])
            rows = t->ne[1];
        if ((size_t)rows * row > max_chunk)
            max_chunk = (size_t)rows * row;
        if (t->ne[0] > max_ne0)
            max_ne0 = t->ne[0];
    }
    uint8_t *out = hs_aligned_alloc(64, max_chunk);
    float *scratch = hs_aligned_alloc(64, (size_t)nth * (size_t)max_ne0 * sizeof(float));
    if (!out || !scratch) {
        hs_aligned_free(out);
        hs_aligned_free(scratch);
        return hs_err_set(err, HS_ENOMEM, "synth: out of memory for the write buffers");
    }
    int rc = HS_OK;
    uint64_t done = 0;
    if (p->progress)
        p->progress(p->user, 0, pl->n_weights);
    for (int i = 0; i < pl->n && rc == HS_OK; i++) {
        const struct tplan *t = &pl->t[i];
        struct chunk_job job = {
            .t = t,
            .tseed = mix64(p->seed ^ name_hash(t->name)),
            .row_bytes = hs_type_row_bytes((uint32_t)t->type, t->ne[0]),
            .out = out,
            .scratch = scratch,
            .quant = hs_qtype(t->type)->from_float_ref,
        };
        int64_t rows = (int64_t)(max_chunk / job.row_bytes);
        if (rows < 1)
            rows = 1;
        for (int64_t r0 = 0; r0 < t->ne[1]; r0 += rows) {
            job.row0 = r0;
            job.nrows = t->ne[1] - r0 < rows ? t->ne[1] - r0 : rows;
            if (pool)
                hs_pool_run(pool, chunk_run, &job);
            else
                chunk_run(&job, 0, 1);
            rc = hs_gguf_w_data(w, out, (size_t)job.nrows * job.row_bytes, err);
            if (rc)
                break;
            done += (uint64_t)job.nrows * (uint64_t)t->ne[0];
            if (p->progress)
                p->progress(p->user, done, pl->n_weights);
        }
    }
    hs_aligned_free(out);
    hs_aligned_free(scratch);
    return rc;
}

int hs_synth_write(const char *path, const struct hs_synth_params *p, hs_pool *pool, hs_err *err)
{
    int n_vocab = p->n_vocab;
    int rc;
    if (p->vocab_from) {
        rc = vocab_size_of(p->vocab_from, &n_vocab, err);
        if (rc)
            return rc;
    }
    struct plan pl;
    rc = plan_build(&pl, p, n_vocab, err);
    if (rc)
        return rc;
    hs_gguf_writer *w = NULL;
    rc = check_quantizers(&pl, err);
    if (rc == HS_OK)
        rc = hs_gguf_writer_open(path, &w, err);
    if (rc)
        goto done;
    rc = write_metadata(w, p, &pl, err);
    for (int i = 0; i < pl.n && rc == HS_OK; i++) {
        rc = hs_gguf_w_tensor(w, pl.t[i].name, (uint32_t)pl.t[i].type, (uint32_t)pl.t[i].n_dims, pl.t[i].ne);
        if (rc)
            rc = hs_err_set(err, rc, "synth: declaring tensor %s failed", pl.t[i].name);
    }
    if (rc == HS_OK)
        rc = hs_gguf_w_begin_data(w, err);
    if (rc == HS_OK)
        rc = write_tensors(w, p, &pl, pool, err);
    if (rc) {
        hs_gguf_w_abort(w);
        goto done;
    }
    rc = hs_gguf_w_close(w, err);
    if (rc == HS_OK)
        hs_log_info("synth.write", "path=%s arch=%s type=%s tensors=%d weights=%llu bytes=%llu", path,
                    pl.qwen2 ? "qwen2" : "llama", pl.ft->name, pl.n, (unsigned long long)pl.n_weights,
                    (unsigned long long)pl.data_bytes);
done:
    plan_free(&pl);
    return rc;
}
