#include "tiny_model.h"

#include "base/err.h"
#include "base/fp16.h"
#include "base/rng.h"
#include "gguf/gguf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void tiny_params_default(struct tiny_params *p) {
    memset(p, 0, sizeof *p);
    p->arch = "llama";
    p->n_vocab = 300;
    p->n_embd = 64;
    p->n_layer = 2;
    p->n_head = 4;
    p->n_head_kv = 2;
    p->n_ff = 96;
    p->n_ctx_train = 256;
    p->type = HS_TYPE_F32;
    p->seed = 1;
    p->bad_type = -1;
}

struct entry {
    char name[64];
    int64_t ne0, ne1;
    int n_dims;
    bool matrix;
    float *data;
};

/* Values as the file will hold them: f16 matrices are rounded here, so the
 * float copy is exactly what the model reads. */
static float *fill(hs_rng *r, size_t n, float scale, float offset, bool round_f16) {
    float *a = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        a[i] = offset + scale * hs_rng_normal(r);
        if (round_f16)
            a[i] = hs_fp16_to_f32(hs_f32_to_fp16(a[i]));
    }
    return a;
}

static void add(struct entry *e, int *n, const char *name, int64_t ne0, int64_t ne1, bool matrix, float *data) {
    struct entry *x = &e[(*n)++];
    snprintf(x->name, sizeof x->name, "%s", name);
    x->ne0 = ne0;
    x->ne1 = ne1;
    x->n_dims = matrix ? 2 : 1;
    x->matrix = matrix;
    x->data = data;
}

static int write_vocab(hs_gguf_writer *w, int n_vocab) {
    char **toks = calloc((size_t)n_vocab, sizeof *toks);
    float *scores = calloc((size_t)n_vocab, sizeof *scores);
    int32_t *types = calloc((size_t)n_vocab, sizeof *types);
    for (int i = 0; i < n_vocab; i++) {
        toks[i] = malloc(32);
        if (i == 0) {
            snprintf(toks[i], 32, "<unk>");
            types[i] = 2;
        } else if (i == 1 || i == 2) {
            snprintf(toks[i], 32, i == 1 ? "<s>" : "</s>");
            types[i] = 3;
        } else if (i < 3 + 256) {
            snprintf(toks[i], 32, "<0x%02X>", i - 3);
            types[i] = 6;
        } else {
            snprintf(toks[i], 32, "\xe2\x96\x81w%d", i); /* "▁w<i>" */
            types[i] = 1;
        }
        scores[i] = -(float)i;
    }
    int rc = 0;
    rc |= hs_gguf_w_str(w, "tokenizer.ggml.model", "llama", 5);
    rc |= hs_gguf_w_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)toks, NULL, (uint64_t)n_vocab);
    rc |= hs_gguf_w_arr(w, "tokenizer.ggml.scores", HS_GGUF_FLOAT32, scores, (uint64_t)n_vocab);
    rc |= hs_gguf_w_arr(w, "tokenizer.ggml.token_type", HS_GGUF_INT32, types, (uint64_t)n_vocab);
    rc |= hs_gguf_w_u32(w, "tokenizer.ggml.bos_token_id", 1);
    rc |= hs_gguf_w_u32(w, "tokenizer.ggml.eos_token_id", 2);
    rc |= hs_gguf_w_u32(w, "tokenizer.ggml.unknown_token_id", 0);
    for (int i = 0; i < n_vocab; i++)
        free(toks[i]);
    free(toks);
    free(scores);
    free(types);
    return rc ? HS_EINVAL : HS_OK;
}

static int write_keys(hs_gguf_writer *w, const struct tiny_params *p) {
    const char *a = p->arch;
    char k[128];
    int rc = 0;
    const char *archv = p->arch_key_value ? p->arch_key_value : a;
    rc |= hs_gguf_w_str(w, "general.architecture", archv, strlen(archv));
    rc |= hs_gguf_w_str(w, "general.name", "tiny", 4);
#define KEY(s) (snprintf(k, sizeof k, "%s.%s", a, s), k)
    rc |= hs_gguf_w_u32(w, KEY("context_length"), (uint32_t)p->n_ctx_train);
    rc |= hs_gguf_w_u32(w, KEY("embedding_length"), (uint32_t)p->n_embd);
    rc |= hs_gguf_w_u32(w, KEY("block_count"), (uint32_t)p->n_layer);
    rc |= hs_gguf_w_u32(w, KEY("feed_forward_length"), (uint32_t)p->n_ff);
    rc |= hs_gguf_w_u32(w, KEY("attention.head_count"), (uint32_t)p->n_head);
    rc |= hs_gguf_w_u32(w, KEY("attention.head_count_kv"), (uint32_t)p->n_head_kv);
    rc |= hs_gguf_w_f32(w, KEY("attention.layer_norm_rms_epsilon"), 1e-5f);
    rc |= hs_gguf_w_u32(w, KEY("rope.dimension_count"), (uint32_t)(p->n_embd / p->n_head));
    if (p->freq_base > 0)
        rc |= hs_gguf_w_f32(w, KEY("rope.freq_base"), p->freq_base);
    if (p->rope_scale > 0) {
        rc |= hs_gguf_w_str(w, KEY("rope.scaling.type"), "linear", 6);
        rc |= hs_gguf_w_f32(w, KEY("rope.scaling.factor"), p->rope_scale);
    }
#undef KEY
    return rc ? HS_EINVAL : write_vocab(w, p->n_vocab);
}

int tiny_model_write(const char *path, const struct tiny_params *p, struct tiny_weights *out) {
    const int E = p->n_embd, hd = p->n_embd / p->n_head, Q = p->n_head * hd, KV = p->n_head_kv * hd;
    const int F = p->n_ff, V = p->n_vocab, L = p->n_layer;
    const bool f16 = p->type == HS_TYPE_F16;
    hs_rng r;
    hs_rng_seed(&r, p->seed);
    struct tiny_weights w = {0};
    w.layers = calloc((size_t)L, sizeof *w.layers);
    w.tok_embd = fill(&r, (size_t)V * E, 1.0f, 0.0f, f16);
    w.output_norm = fill(&r, (size_t)E, 0.1f, 1.0f, false);
    if (!p->tied)
        w.output = fill(&r, (size_t)V * E, 1.0f / sqrtf((float)E), 0.0f, f16);
    if (p->rope_freqs) {
        w.rope_freqs = malloc((size_t)hd / 2 * sizeof(float));
        for (int i = 0; i < hd / 2; i++)
            w.rope_freqs[i] = 1.0f + 0.5f * (float)i;
    }
    for (int l = 0; l < L; l++) {
        struct tiny_layer *y = &w.layers[l];
        y->attn_norm = fill(&r, (size_t)E, 0.1f, 1.0f, false);
        y->wq = fill(&r, (size_t)Q * E, 1.0f / sqrtf((float)E), 0.0f, f16);
        y->wk = fill(&r, (size_t)KV * E, 1.0f / sqrtf((float)E), 0.0f, f16);
        y->wv = fill(&r, (size_t)KV * E, 1.0f / sqrtf((float)E), 0.0f, f16);
        y->wo = fill(&r, (size_t)E * Q, 1.0f / sqrtf((float)Q), 0.0f, f16);
        if (p->biases) {
            y->bq = fill(&r, (size_t)Q, 0.2f, 0.0f, false);
            y->bk = fill(&r, (size_t)KV, 0.2f, 0.0f, false);
            y->bv = fill(&r, (size_t)KV, 0.2f, 0.0f, false);
        }
        y->ffn_norm = fill(&r, (size_t)E, 0.1f, 1.0f, false);
        y->w_gate = fill(&r, (size_t)F * E, 1.0f / sqrtf((float)E), 0.0f, f16);
        y->w_up = fill(&r, (size_t)F * E, 1.0f / sqrtf((float)E), 0.0f, f16);
        y->w_down = fill(&r, (size_t)E * F, 1.0f / sqrtf((float)F), 0.0f, f16);
    }

    struct entry *e = calloc((size_t)(8 + 16 * L), sizeof *e);
    int n = 0;
    char name[64];
    add(e, &n, "token_embd.weight", E, V, true, w.tok_embd);
    add(e, &n, "output_norm.weight", E, 1, false, w.output_norm);
    if (!p->tied)
        add(e, &n, "output.weight", E, V, true, w.output);
    if (p->rope_freqs)
        add(e, &n, "rope_freqs.weight", hd / 2, 1, false, w.rope_freqs);
    for (int l = 0; l < L; l++) {
        struct tiny_layer *y = &w.layers[l];
#define NM(s) (snprintf(name, sizeof name, "blk.%d.%s", l, s), name)
        add(e, &n, NM("attn_norm.weight"), E, 1, false, y->attn_norm);
        add(e, &n, NM("attn_q.weight"), E, Q, true, y->wq);
        add(e, &n, NM("attn_k.weight"), E, KV, true, y->wk);
        add(e, &n, NM("attn_v.weight"), E, KV, true, y->wv);
        if (y->bq) {
            add(e, &n, NM("attn_q.bias"), Q, 1, false, y->bq);
            add(e, &n, NM("attn_k.bias"), KV, 1, false, y->bk);
            add(e, &n, NM("attn_v.bias"), KV, 1, false, y->bv);
        }
        add(e, &n, NM("attn_output.weight"), Q, E, true, y->wo);
        add(e, &n, NM("ffn_norm.weight"), E, 1, false, y->ffn_norm);
        add(e, &n, NM("ffn_gate.weight"), E, F, true, y->w_gate);
        add(e, &n, NM("ffn_up.weight"), E, F, true, y->w_up);
        add(e, &n, NM("ffn_down.weight"), F, E, true, y->w_down);
#undef NM
    }

    hs_gguf_writer *gw;
    hs_err err = {0};
    int rc = hs_gguf_writer_open(path, &gw, &err);
    if (rc)
        goto out;
    rc = write_keys(gw, p);
    int types[512];
    for (int i = 0; i < n && !rc; i++) {
        bool bad = p->bad_tensor && !strcmp(p->bad_tensor, e[i].name);
        types[i] = e[i].matrix ? p->type : HS_TYPE_F32;
        if (bad && p->bad_type >= 0)
            types[i] = p->bad_type;
        int64_t ne[2] = {e[i].ne0, e[i].ne1 + (bad ? p->bad_extra_rows : 0)};
        if (e[i].n_dims == 1 && bad && p->bad_extra_rows)
            ne[0] += p->bad_extra_rows;
        rc = hs_gguf_w_tensor(gw, e[i].name, (uint32_t)types[i], (uint32_t)e[i].n_dims, ne);
    }
    if (rc || (rc = hs_gguf_w_begin_data(gw, &err))) {
        hs_gguf_w_abort(gw);
        goto out;
    }
    for (int i = 0; i < n && !rc; i++) {
        bool bad = p->bad_tensor && !strcmp(p->bad_tensor, e[i].name);
        int64_t ne0 = e[i].ne0, ne1 = e[i].ne1;
        if (bad && p->bad_extra_rows) {
            if (e[i].n_dims == 1)
                ne0 += p->bad_extra_rows;
            else
                ne1 += p->bad_extra_rows;
        }
        size_t count = (size_t)(ne0 * ne1), have = (size_t)(e[i].ne0 * e[i].ne1);
        size_t bytes = hs_type_row_bytes((uint32_t)types[i], ne0) * (size_t)ne1;
        unsigned char *buf = calloc(1, bytes ? bytes : 1);
        for (size_t j = 0; j < count && j < have; j++) {
            if (types[i] == HS_TYPE_F32)
                memcpy(buf + 4 * j, &e[i].data[j], 4);
            else if (types[i] == HS_TYPE_F16) {
                hs_fp16 h = hs_f32_to_fp16(e[i].data[j]);
                memcpy(buf + 2 * j, &h, 2);
            }
        }
        rc = hs_gguf_w_data(gw, buf, bytes, &err);
        free(buf);
    }
    if (rc)
        hs_gguf_w_abort(gw);
    else
        rc = hs_gguf_w_close(gw, &err);
out:
    if (rc)
        fprintf(stderr, "tiny_model_write: %s\n", err.msg);
    free(e);
    if (out)
        *out = w;
    else
        tiny_weights_free(&w, L);
    return rc;
}

void tiny_weights_free(struct tiny_weights *w, int n_layer) {
    free(w->tok_embd);
    free(w->output_norm);
    free(w->output);
    free(w->rope_freqs);
    for (int l = 0; w->layers && l < n_layer; l++) {
        struct tiny_layer *y = &w->layers[l];
        float *a[] = {y->attn_norm, y->wq, y->wk, y->wv, y->wo, y->bq, y->bk, y->bv,
                      y->ffn_norm, y->w_gate, y->w_up, y->w_down};
        for (size_t i = 0; i < sizeof a / sizeof a[0]; i++)
            free(a[i]);
    }
    free(w->layers);
    memset(w, 0, sizeof *w);
}
