/* Hugging Face folder -> GGUF (see convert.h). */
#include "model/convert.h"

#include "model/convert_vocab.h"

#include "base/fp16.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/sys.h"
#include "gguf/gguf.h"
#include "gguf/safetensors.h"
#include "tensor/qtype.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct cfg {
    const char *path; /* config.json's path, for messages */
    const char *arch; /* "llama" or "qwen2" */
    bool permute;     /* llama's Q/K rows */
    bool mistral;
    int64_t n_embd, n_ff, n_layer, n_head, n_head_kv, head_dim, n_ctx, n_vocab;
    double eps, theta;
    bool explicit_head_dim;
    double rope_linear; /* 0: none */
};

/* ---- config.json ---- */

/* Limits far above any real model keep a hostile config.json from asking
 * for absurd tables (num_hidden_layers = 2^31). */
#define MAX_DIM ((int64_t)1 << 20)
#define MAX_COUNT ((int64_t)1 << 12)
#define MAX_VOCAB ((int64_t)1 << 24)

static int get_int(const struct cfg *c, json_t *root, const char *key, bool required, int64_t def, int64_t max,
                   int64_t *out, hs_err *err)
{
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        if (required)
            return hs_err_set(err, HS_EFORMAT, "%s: field '%s' is missing", c->path, key);
        *out = def;
        return HS_OK;
    }
    if (!json_is_integer(v) || json_integer_value(v) <= 0 || json_integer_value(v) > max)
        return hs_err_set(err, HS_EFORMAT, "%s: field '%s' is not an integer in [1, %lld]", c->path, key,
                          (long long)max);
    *out = json_integer_value(v);
    return HS_OK;
}

static int get_num(const struct cfg *c, json_t *root, const char *key, double def, double *out, hs_err *err)
{
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return HS_OK;
    }
    if (!json_is_number(v) || !(json_number_value(v) > 0))
        return hs_err_set(err, HS_EFORMAT, "%s: field '%s' is not a positive number", c->path, key);
    *out = json_number_value(v);
    return HS_OK;
}

static int read_config(struct cfg *c, const char *path, hs_err *err)
{
    memset(c, 0, sizeof *c);
    c->path = path;
    if (access(path, F_OK) != 0)
        return hs_err_set(err, HS_EIO, "%s: missing (a Hugging Face model folder has a config.json)", path);
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return hs_err_set(err, HS_EFORMAT, "%s: line %d column %d: %s", path, je.line, je.column, je.text);
    int rc = HS_OK;
    if (!json_is_object(root)) {
        rc = hs_err_set(err, HS_EFORMAT, "%s: not a JSON object", path);
        goto out;
    }
    json_t *archs = json_object_get(root, "architectures");
    const char *a = json_is_array(archs) ? json_string_value(json_array_get(archs, 0)) : NULL;
    if (!a) {
        rc = hs_err_set(err, HS_EFORMAT, "%s: field 'architectures' is missing or not a list of names", path);
        goto out;
    }
    if (!strcmp(a, "LlamaForCausalLM") || !strcmp(a, "MistralForCausalLM")) {
        c->arch = "llama";
        c->permute = true;
        c->mistral = a[0] == 'M';
    } else if (!strcmp(a, "Qwen2ForCausalLM")) {
        c->arch = "qwen2";
    } else {
        rc = hs_err_set(err, HS_EUNSUPPORTED,
                        "%s: field 'architectures': '%.64s' is not supported "
                        "(LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM are)",
                        path, a);
        goto out;
    }
    if ((rc = get_int(c, root, "hidden_size", true, 0, MAX_DIM, &c->n_embd, err)) ||
        (rc = get_int(c, root, "intermediate_size", true, 0, MAX_DIM, &c->n_ff, err)) ||
        (rc = get_int(c, root, "num_hidden_layers", true, 0, MAX_COUNT, &c->n_layer, err)) ||
        (rc = get_int(c, root, "num_attention_heads", true, 0, MAX_COUNT, &c->n_head, err)) ||
        (rc = get_int(c, root, "num_key_value_heads", false, c->n_head, MAX_COUNT, &c->n_head_kv, err)) ||
        (rc = get_int(c, root, "max_position_embeddings", true, 0, (int64_t)1 << 31, &c->n_ctx, err)) ||
        (rc = get_int(c, root, "vocab_size", false, -1, MAX_VOCAB, &c->n_vocab, err)) ||
        (rc = get_int(c, root, "head_dim", false, -1, MAX_COUNT, &c->head_dim, err)) ||
        (rc = get_num(c, root, "rms_norm_eps", 1e-6, &c->eps, err)) ||
        (rc = get_num(c, root, "rope_theta", 10000.0, &c->theta, err)))
        goto out;
    c->explicit_head_dim = c->head_dim > 0;
    if (!c->explicit_head_dim) {
        if (c->n_embd % c->n_head) {
            rc = hs_err_set(err, HS_EFORMAT, "%s: field 'hidden_size' (%lld) is not a multiple of 'num_attention_heads' (%lld)",
                            path, (long long)c->n_embd, (long long)c->n_head);
            goto out;
        }
        c->head_dim = c->n_embd / c->n_head;
    }
    if (c->n_head % c->n_head_kv) {
        rc = hs_err_set(err, HS_EFORMAT, "%s: field 'num_key_value_heads' (%lld) does not divide 'num_attention_heads' (%lld)",
                        path, (long long)c->n_head_kv, (long long)c->n_head);
        goto out;
    }
    if (c->permute && c->head_dim % 2) {
        rc = hs_err_set(err, HS_EFORMAT, "%s: head size %lld is odd: no rotary layout", path, (long long)c->head_dim);
        goto out;
    }
    json_t *rs = json_object_get(root, "rope_scaling");
    if (rs && !json_is_null(rs)) {
        json_t *ty = json_object_get(rs, "type");
        if (!ty)
            ty = json_object_get(rs, "rope_type");
        json_t *f = json_object_get(rs, "factor");
        if (!json_is_string(ty) || strcmp(json_string_value(ty), "linear") || !json_is_number(f) ||
            !(json_number_value(f) > 0)) {
            rc = hs_err_set(err, HS_EUNSUPPORTED, "%s: field 'rope_scaling': only {\"type\": \"linear\", \"factor\": x} is supported",
                            path);
            goto out;
        }
        c->rope_linear = json_number_value(f);
    }
out:
    json_decref(root);
    return rc;
}

/* ---- names and shapes ---- */

int hs_convert_map_name(const char *hf, char *out, size_t cap, int *layer)
{
    static const struct {
        const char *hf, *gguf;
    } top[] = {{"model.embed_tokens.weight", "token_embd.weight"},
               {"model.norm.weight", "output_norm.weight"},
               {"lm_head.weight", "output.weight"}},
      blk[] = {{"input_layernorm.weight", "attn_norm.weight"},
               {"post_attention_layernorm.weight", "ffn_norm.weight"},
               {"self_attn.q_proj.weight", "attn_q.weight"},
               {"self_attn.k_proj.weight", "attn_k.weight"},
               {"self_attn.v_proj.weight", "attn_v.weight"},
               {"self_attn.o_proj.weight", "attn_output.weight"},
               {"self_attn.q_proj.bias", "attn_q.bias"},
               {"self_attn.k_proj.bias", "attn_k.bias"},
               {"self_attn.v_proj.bias", "attn_v.bias"},
               {"mlp.gate_proj.weight", "ffn_gate.weight"},
               {"mlp.up_proj.weight", "ffn_up.weight"},
               {"mlp.down_proj.weight", "ffn_down.weight"}};
    *layer = -1;
    for (size_t i = 0; i < sizeof top / sizeof top[0]; i++)
        if (!strcmp(hf, top[i].hf))
            return (size_t)snprintf(out, cap, "%s", top[i].gguf) < cap ? HS_OK : HS_EUNSUPPORTED;
    const char *pre = "model.layers.";
    if (strncmp(hf, pre, strlen(pre)))
        return HS_EUNSUPPORTED;
    const char *p = hf + strlen(pre);
    int n = 0, digits = 0;
    while (*p >= '0' && *p <= '9' && digits < 6) {
        n = n * 10 + (*p++ - '0');
        digits++;
    }
    if (!digits || *p != '.' || (digits > 1 && hf[strlen(pre)] == '0'))
        return HS_EUNSUPPORTED;
    p++;
    if (!strcmp(p, "self_attn.rotary_emb.inv_freq")) {
        *layer = n;
        return HS_ENOTFOUND;
    }
    for (size_t i = 0; i < sizeof blk / sizeof blk[0]; i++)
        if (!strcmp(p, blk[i].hf)) {
            *layer = n;
            return (size_t)snprintf(out, cap, "blk.%d.%s", n, blk[i].gguf) < cap ? HS_OK : HS_EUNSUPPORTED;
        }
    return HS_EUNSUPPORTED;
}

/* The HF shape (outermost first) a GGUF-named tensor must have: rows x cols,
 * cols 0 for a 1-D tensor. n_vocab < 0 accepts any row count. */
static void expected_shape(const struct cfg *c, const char *g, int64_t *rows, int64_t *cols)
{
    const char *s = strncmp(g, "blk.", 4) ? g : strchr(g + 4, '.') + 1;
    int64_t q = c->n_head * c->head_dim, kv = c->n_head_kv * c->head_dim;
    *cols = 0;
    if (!strcmp(s, "token_embd.weight") || !strcmp(s, "output.weight")) {
        *rows = c->n_vocab;
        *cols = c->n_embd;
    } else if (!strcmp(s, "output_norm.weight") || !strcmp(s, "attn_norm.weight") || !strcmp(s, "ffn_norm.weight")) {
        *rows = c->n_embd;
    } else if (!strcmp(s, "attn_q.weight")) {
        *rows = q;
        *cols = c->n_embd;
    } else if (!strcmp(s, "attn_k.weight") || !strcmp(s, "attn_v.weight")) {
        *rows = kv;
        *cols = c->n_embd;
    } else if (!strcmp(s, "attn_output.weight")) {
        *rows = c->n_embd;
        *cols = q;
    } else if (!strcmp(s, "attn_q.bias")) {
        *rows = q;
    } else if (!strcmp(s, "attn_k.bias") || !strcmp(s, "attn_v.bias")) {
        *rows = kv;
    } else if (!strcmp(s, "ffn_gate.weight") || !strcmp(s, "ffn_up.weight")) {
        *rows = c->n_ff;
        *cols = c->n_embd;
    } else { /* ffn_down */
        *rows = c->n_embd;
        *cols = c->n_ff;
    }
}

static int check_shape(const struct cfg *c, const struct hs_st_tensor *t, const char *g, hs_err *err)
{
    int64_t rows, cols;
    expected_shape(c, g, &rows, &cols);
    uint32_t want_dims = cols ? 2 : 1;
    bool ok = t->n_dims == want_dims && (rows < 0 || t->shape[0] == rows) && (!cols || t->shape[1] == cols);
    if (ok)
        return HS_OK;
    char got[96];
    int k = snprintf(got, sizeof got, "[");
    for (uint32_t i = 0; i < t->n_dims && k < (int)sizeof got - 24; i++)
        k += snprintf(got + k, sizeof got - (size_t)k, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
    snprintf(got + k, sizeof got - (size_t)k, "]");
    if (cols)
        return hs_err_set(err, HS_EFORMAT, "%s: tensor '%s' has shape %s but %s says [%lld, %lld]", t->file, t->name,
                          got, c->path, (long long)rows, (long long)cols);
    return hs_err_set(err, HS_EFORMAT, "%s: tensor '%s' has shape %s but %s says [%lld]", t->file, t->name, got,
                      c->path, (long long)rows);
}

/* ---- conversion ---- */

struct item {
    const struct hs_st_tensor *src;
    char name[96];
    uint32_t type; /* output type */
    int perm_heads; /* > 0: permute rows in this many heads */
};

int hs_convert_file_type(uint32_t outtype)
{
    switch (outtype) {
    case HS_TYPE_F32:
        return 0;
    case HS_TYPE_F16:
        return 1;
    case HS_TYPE_Q8_0:
        return 7;
    case HS_TYPE_BF16:
        return 32;
    default:
        return -1;
    }
}

static uint32_t out_type_for(uint32_t outtype, const struct hs_st_tensor *t)
{
    if (t->n_dims < 2 || outtype == HS_TYPE_F32)
        return HS_TYPE_F32;
    if (outtype == HS_TYPE_Q8_0 && t->shape[t->n_dims - 1] % 32)
        return HS_TYPE_F16;
    return outtype;
}

static void row_to_f32(const struct hs_st_tensor *t, const uint8_t *src, float *dst, int64_t n)
{
    if (t->type == HS_TYPE_F32) {
        memcpy(dst, src, (size_t)n * 4);
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, src + 2 * i, 2);
        dst[i] = t->type == HS_TYPE_F16 ? hs_fp16_to_f32(h) : hs_bf16_to_f32(h);
    }
}

static void f32_to_row(uint32_t type, const float *src, uint8_t *dst, int64_t n)
{
    if (type == HS_TYPE_F32) {
        memcpy(dst, src, (size_t)n * 4);
    } else if (type == HS_TYPE_F16 || type == HS_TYPE_BF16) {
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = type == HS_TYPE_F16 ? hs_f32_to_fp16(src[i]) : hs_f32_to_bf16(src[i]);
            memcpy(dst + 2 * i, &h, 2);
        }
    } else {
        hs_qtype(type)->from_float_ref(src, dst, n);
    }
}

/* Output row r of a permuted Q/K matrix comes from this input row: HF keeps
 * each head's rotary pairs as two halves; GGUF interleaves them. */
static int64_t perm_src_row(int64_t r, int64_t rows, int heads)
{
    int64_t hd = rows / heads, h = r / hd, w = r % hd;
    return h * hd + (w % 2) * (hd / 2) + w / 2;
}

static int stream_tensor(hs_gguf_writer *w, const struct item *it, float *fbuf, uint8_t *obuf, hs_err *err)
{
    const struct hs_st_tensor *t = it->src;
    int64_t row_len = t->n_dims ? t->shape[t->n_dims - 1] : 1;
    int64_t rows = row_len ? t->n_elements / row_len : 0;
    size_t in_row = t->n_elements ? (size_t)(t->nbytes / (uint64_t)t->n_elements) * (size_t)row_len : 0;
    size_t out_row = hs_type_row_bytes(it->type, row_len);
    for (int64_t r = 0; r < rows; r++) {
        int64_t s = it->perm_heads ? perm_src_row(r, rows, it->perm_heads) : r;
        const uint8_t *src = (const uint8_t *)t->data + (size_t)s * in_row;
        int rc;
        if (t->type == it->type) {
            rc = hs_gguf_w_data(w, src, in_row, err);
        } else {
            row_to_f32(t, src, fbuf, row_len);
            f32_to_row(it->type, fbuf, obuf, row_len);
            rc = hs_gguf_w_data(w, obuf, out_row, err);
        }
        if (rc)
            return rc;
    }
    return HS_OK;
}

static char *path_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = hs_malloc(a + b + 2);
    if (p) {
        memcpy(p, dir, a);
        p[a] = '/';
        memcpy(p + a + 1, name, b + 1);
    }
    return p;
}

/* Builds the list of tensors to write and checks it against the config. */
static int plan(const struct cfg *c, const hs_st_set *set, uint32_t outtype, struct item **items_out, int64_t *n_out,
                hs_err *err)
{
    int64_t n = hs_st_set_n_tensors(set), k = 0;
    struct item *items = hs_calloc(n ? (size_t)n : 1, sizeof *items);
    uint8_t *seen = hs_calloc((size_t)c->n_layer * 9 + 2, 1);
    if (!items || !seen) {
        hs_free(items);
        hs_free(seen);
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    }
    static const char *const need[9] = {"attn_norm.weight", "ffn_norm.weight", "attn_q.weight",
                                        "attn_k.weight",    "attn_v.weight",   "attn_output.weight",
                                        "ffn_gate.weight",  "ffn_up.weight",   "ffn_down.weight"};
    int rc = HS_OK;
    for (int64_t i = 0; i < n && !rc; i++) {
        const struct hs_st_tensor *t = hs_st_set_tensor_at(set, i);
        struct item *it = &items[k];
        int layer;
        int m = hs_convert_map_name(t->name, it->name, sizeof it->name, &layer);
        if (m == HS_ENOTFOUND)
            continue;
        if (m) {
            rc = hs_err_set(err, HS_EUNSUPPORTED, "%s: tensor '%s' has no GGUF name for %s", t->file, t->name, c->arch);
            break;
        }
        if (layer >= c->n_layer) {
            rc = hs_err_set(err, HS_EFORMAT, "%s: tensor '%s' is in layer %d but %s says num_hidden_layers = %lld",
                            t->file, t->name, layer, c->path, (long long)c->n_layer);
            break;
        }
        if ((rc = check_shape(c, t, it->name, err)))
            break;
        it->src = t;
        it->type = out_type_for(outtype, t);
        const char *s = layer >= 0 ? strchr(it->name + 4, '.') + 1 : it->name;
        if (c->permute && !strcmp(s, "attn_q.weight"))
            it->perm_heads = (int)c->n_head;
        if (c->permute && !strcmp(s, "attn_k.weight"))
            it->perm_heads = (int)c->n_head_kv;
        if (!strcmp(it->name, "token_embd.weight"))
            seen[(size_t)c->n_layer * 9] = 1;
        else if (!strcmp(it->name, "output_norm.weight"))
            seen[(size_t)c->n_layer * 9 + 1] = 1;
        for (int j = 0; j < 9 && layer >= 0; j++)
            if (!strcmp(s, need[j]))
                seen[(size_t)layer * 9 + (size_t)j] = 1;
        k++;
    }
    for (int64_t j = 0; j < c->n_layer * 9 + 2 && !rc; j++) {
        if (seen[j])
            continue;
        if (j == c->n_layer * 9)
            rc = hs_err_set(err, HS_EFORMAT, "%s: the checkpoint has no 'model.embed_tokens.weight'", c->path);
        else if (j == c->n_layer * 9 + 1)
            rc = hs_err_set(err, HS_EFORMAT, "%s: the checkpoint has no 'model.norm.weight'", c->path);
        else
            rc = hs_err_set(err, HS_EFORMAT, "%s: num_hidden_layers = %lld but layer %lld has no '%s' tensor", c->path,
                            (long long)c->n_layer, (long long)(j / 9), need[j % 9]);
    }
    hs_free(seen);
    if (rc) {
        hs_free(items);
        return rc;
    }
    *items_out = items;
    *n_out = k;
    return HS_OK;
}

static void write_metadata(hs_gguf_writer *w, const struct cfg *c, const char *name, uint32_t outtype)
{
    char key[128];
#define K(suffix) (snprintf(key, sizeof key, "%s." suffix, c->arch), key)
    hs_gguf_w_str(w, "general.architecture", c->arch, strlen(c->arch));
    hs_gguf_w_str(w, "general.name", name, strlen(name));
    hs_gguf_w_u32(w, K("block_count"), (uint32_t)c->n_layer);
    hs_gguf_w_u32(w, K("context_length"), (uint32_t)c->n_ctx);
    hs_gguf_w_u32(w, K("embedding_length"), (uint32_t)c->n_embd);
    hs_gguf_w_u32(w, K("feed_forward_length"), (uint32_t)c->n_ff);
    hs_gguf_w_u32(w, K("attention.head_count"), (uint32_t)c->n_head);
    hs_gguf_w_u32(w, K("attention.head_count_kv"), (uint32_t)c->n_head_kv);
    hs_gguf_w_f32(w, K("rope.freq_base"), (float)c->theta);
    hs_gguf_w_f32(w, K("attention.layer_norm_rms_epsilon"), (float)c->eps);
    if (c->explicit_head_dim) {
        hs_gguf_w_u32(w, K("attention.key_length"), (uint32_t)c->head_dim);
        hs_gguf_w_u32(w, K("attention.value_length"), (uint32_t)c->head_dim);
    }
    if (c->rope_linear > 0) {
        hs_gguf_w_str(w, K("rope.scaling.type"), "linear", 6);
        hs_gguf_w_f32(w, K("rope.scaling.factor"), (float)c->rope_linear);
    }
    hs_gguf_w_u32(w, "general.file_type", (uint32_t)hs_convert_file_type(outtype));
    hs_gguf_w_u32(w, K("vocab_size"), (uint32_t)c->n_vocab);
    hs_gguf_w_u32(w, K("rope.dimension_count"), (uint32_t)c->head_dim);
    hs_gguf_w_u32(w, "general.quantization_version", 2);
#undef K
}

/* The folder's base name, for general.name. */
static void dir_name(const char *dir, char *out, size_t cap)
{
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/')
        len--;
    size_t b = len;
    while (b > 0 && dir[b - 1] != '/')
        b--;
    size_t n = len - b < cap - 1 ? len - b : cap - 1;
    memcpy(out, dir + b, n);
    out[n] = 0;
}

int hs_convert_hf(const struct hs_convert_opts *o, hs_err *err)
{
    if (hs_convert_file_type(o->outtype) < 0)
        return hs_err_set(err, HS_EINVAL, "output type %u is not one of f32, f16, bf16, q8_0", o->outtype);
    struct cfg c;
    hs_st_set *set = NULL;
    hs_gguf *vocab = NULL;
    hs_gguf_writer *w = NULL;
    struct item *items = NULL;
    int64_t n_items = 0;
    float *fbuf = NULL;
    uint8_t *obuf = NULL;
    char *tmp = NULL;
    char *cpath = path_join(o->hf_dir, "config.json");
    int rc;
    if (!cpath)
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    if ((rc = read_config(&c, cpath, err)) || (rc = hs_st_set_open(o->hf_dir, &set, err)))
        goto out;
    if (c.n_vocab < 0) {
        const struct hs_st_tensor *e = hs_st_set_find(set, "model.embed_tokens.weight");
        c.n_vocab = e && e->n_dims == 2 ? e->shape[0] : -1;
    }
    if ((rc = plan(&c, set, o->outtype, &items, &n_items, err)))
        goto out;
    if (o->vocab_from) {
        if ((rc = hs_gguf_open(o->vocab_from, &vocab, err)))
            goto out;
        const struct hs_gguf_kv *toks = hs_gguf_find_kv(vocab, "tokenizer.ggml.tokens");
        if (!toks || toks->type != HS_GGUF_ARRAY) {
            rc = hs_err_set(err, HS_EFORMAT, "%s: no 'tokenizer.ggml.tokens' array to take the vocabulary from",
                            o->vocab_from);
            goto out;
        }
        if ((int64_t)toks->n > c.n_vocab) {
            rc = hs_err_set(err, HS_EFORMAT, "%s: 'tokenizer.ggml.tokens' has %llu tokens but %s has vocab_size %lld",
                            o->vocab_from, (unsigned long long)toks->n, cpath, (long long)c.n_vocab);
            goto out;
        }
    }
    char *spm_path = path_join(o->hf_dir, "tokenizer.model");
    char *bpe_path = path_join(o->hf_dir, "tokenizer.json");
    bool has_spm = spm_path && access(spm_path, F_OK) == 0;
    bool has_bpe = !has_spm && bpe_path && access(bpe_path, F_OK) == 0;
    hs_free(spm_path);
    hs_free(bpe_path);
    /* llama.cpp picks tokenizer.ggml.pre by hashing the HF tokenizer's output;
     * without Python's tokenizers here, the architecture decides: Qwen2's own
     * pre-tokenizer, Llama 3's for a Llama with a BPE tokenizer.json. */
    const char *pre = !strcmp(c.arch, "qwen2") ? "qwen2" : "llama-bpe";
    if (!vocab && has_bpe && c.mistral) {
        rc = hs_err_set(err, HS_EUNSUPPORTED,
                        "%s/tokenizer.json: a Mistral BPE vocabulary is not supported yet (use --vocab-from)", o->hf_dir);
        goto out;
    }
    if (!vocab && !has_spm && !has_bpe)
        hs_log_warn("convert.no_tokenizer",
                    "dir=%s no --vocab-from, tokenizer.model or tokenizer.json: the output has no tokenizer", o->hf_dir);
    int64_t max_row = 1;
    for (int64_t i = 0; i < n_items; i++) {
        const struct hs_st_tensor *t = items[i].src;
        int64_t rl = t->n_dims ? t->shape[t->n_dims - 1] : 1;
        if (rl > max_row)
            max_row = rl;
    }
    fbuf = hs_malloc((size_t)max_row * sizeof *fbuf);
    obuf = hs_malloc((size_t)max_row * 4 + 64);
    size_t tl = strlen(o->out_path) + 32;
    tmp = hs_malloc(tl);
    if (!fbuf || !obuf || !tmp) {
        rc = hs_err_set(err, HS_ENOMEM, "out of memory");
        goto out;
    }
    snprintf(tmp, tl, "%s.tmp-%ld", o->out_path, (long)getpid());
    if ((rc = hs_gguf_writer_open(tmp, &w, err)))
        goto out;
    char name[256];
    dir_name(o->hf_dir, name, sizeof name);
    write_metadata(w, &c, name, o->outtype);
    for (int64_t i = 0; vocab && i < hs_gguf_n_kv(vocab); i++) {
        const struct hs_gguf_kv *kv = hs_gguf_kv_at(vocab, i);
        if (!strncmp(kv->key, "tokenizer.", 10))
            hs_gguf_w_kv_from(w, vocab, kv);
    }
    if (!vocab && has_spm && (rc = hs_convert_vocab_spm(w, o->hf_dir, c.n_vocab, err)))
        goto out;
    if (!vocab && has_bpe && (rc = hs_convert_vocab_bpe(w, o->hf_dir, c.n_vocab, pre, err)))
        goto out;
    for (int64_t i = 0; i < n_items; i++) {
        const struct hs_st_tensor *t = items[i].src;
        int64_t ne[HS_GGUF_MAX_DIMS];
        uint32_t nd = t->n_dims ? t->n_dims : 1;
        ne[0] = 1;
        for (uint32_t d = 0; d < t->n_dims; d++)
            ne[d] = t->shape[t->n_dims - 1 - d];
        hs_gguf_w_tensor(w, items[i].name, items[i].type, nd, ne);
    }
    if ((rc = hs_gguf_w_begin_data(w, err)))
        goto out;
    for (int64_t i = 0; i < n_items; i++) {
        if ((rc = stream_tensor(w, &items[i], fbuf, obuf, err))) {
            hs_err_prefix(err, "writing %s: ", items[i].name);
            goto out;
        }
        hs_st_release(items[i].src);
        if (o->progress)
            o->progress(o->progress_ud, i + 1, n_items, items[i].name);
    }
    rc = hs_gguf_w_close(w, err);
    w = NULL;
    if (rc)
        goto out;
    if (rename(tmp, o->out_path) != 0) {
        rc = hs_err_set(err, HS_EIO, "%s: cannot rename the finished file into place", o->out_path);
        unlink(tmp);
        goto out;
    }
    hs_log_info("convert.done", "in=%s out=%s tensors=%lld", o->hf_dir, o->out_path, (long long)n_items);
out:
    if (w)
        hs_gguf_w_abort(w);
    hs_gguf_close(vocab);
    hs_st_set_close(set);
    hs_free(items);
    hs_free(fbuf);
    hs_free(obuf);
    hs_free(tmp);
    hs_free(cpath);
    return rc;
}
