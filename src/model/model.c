/* Model loading: hyper-parameters from "<arch>.*" keys, the tokenizer, and
 * every weight bound as a view into the GGUF mapping after its shape and type
 * were checked. Nothing is copied: the mapping is the model's memory. */
#include "model/model.h"

#include "base/log.h"
#include "base/mem.h"
#include "model/model_impl.h"
#include "tensor/qtype.h"

#include <stdio.h>
#include <string.h>

/* Limits that keep every size product below 2^62 and reject nonsense early. */
#define MAX_DIM (1 << 20)
#define MAX_LAYERS 4096

struct loader {
    hs_model *m;
    const char *arch;
    size_t type_bytes[HS_TYPE_COUNT]; /* bytes per tensor type, for the summary */
    hs_err *err;
};

/* ---- hyper-parameters ---- */

static void arch_key(char *key, size_t cap, const char *arch, const char *suffix) {
    snprintf(key, cap, "%s.%s", arch, suffix);
}

/* A positive integer key: required ones fail with HS_EFORMAT when absent,
 * optional ones keep *out (the default). */
static int get_dim(const hs_gguf *g, const char *arch, const char *suffix, bool required, int *out,
                   hs_err *err) {
    char key[128];
    arch_key(key, sizeof key, arch, suffix);
    uint32_t v;
    int rc = hs_gguf_get_u32(g, key, &v, err);
    if (rc == HS_ENOTFOUND) {
        if (required)
            return hs_err_set(err, HS_EFORMAT, "missing key %s", key);
        return HS_OK;
    }
    if (rc)
        return rc;
    if (v == 0 || v > MAX_DIM)
        return hs_err_set(err, HS_EFORMAT, "%s = %u is out of range", key, v);
    *out = (int)v;
    return HS_OK;
}

static int get_float(const hs_gguf *g, const char *arch, const char *suffix, float *out, hs_err *err) {
    char key[128];
    arch_key(key, sizeof key, arch, suffix);
    int rc = hs_gguf_get_f32(g, key, out, err);
    return rc == HS_ENOTFOUND ? HS_OK : rc;
}

static int read_hparams(struct hs_hparams *hp, const hs_gguf *g, hs_err *err) {
    const char *a = hp->arch;
    int rc;
    hp->n_ctx_train = 2048;
    if ((rc = get_dim(g, a, "context_length", false, &hp->n_ctx_train, err)) ||
        (rc = get_dim(g, a, "embedding_length", true, &hp->n_embd, err)) ||
        (rc = get_dim(g, a, "block_count", true, &hp->n_layer, err)) ||
        (rc = get_dim(g, a, "feed_forward_length", true, &hp->n_ff, err)) ||
        (rc = get_dim(g, a, "attention.head_count", true, &hp->n_head, err)))
        return rc;
    if (hp->n_layer > MAX_LAYERS)
        return hs_err_set(err, HS_EFORMAT, "%s.block_count = %d is out of range", a, hp->n_layer);
    hp->n_head_kv = hp->n_head;
    if ((rc = get_dim(g, a, "attention.head_count_kv", false, &hp->n_head_kv, err)))
        return rc;
    if (hp->n_head % hp->n_head_kv != 0)
        return hs_err_set(err, HS_EFORMAT, "%s.attention.head_count %d is not a multiple of head_count_kv %d", a,
                          hp->n_head, hp->n_head_kv);
    hp->head_dim = hp->n_embd / hp->n_head;
    if ((rc = get_dim(g, a, "attention.key_length", false, &hp->head_dim, err)))
        return rc;
    int v_len = hp->head_dim;
    if ((rc = get_dim(g, a, "attention.value_length", false, &v_len, err)))
        return rc;
    if (hp->head_dim == 0)
        return hs_err_set(err, HS_EFORMAT, "%s: head_count %d exceeds embedding_length %d", a, hp->n_head,
                          hp->n_embd);
    if (v_len != hp->head_dim)
        return hs_err_set(err, HS_EUNSUPPORTED, "%s: key_length %d != value_length %d", a, hp->head_dim, v_len);
    hp->n_rot = hp->head_dim;
    if ((rc = get_dim(g, a, "rope.dimension_count", false, &hp->n_rot, err)))
        return rc;
    if (hp->n_rot > hp->head_dim || hp->n_rot % 2)
        return hs_err_set(err, HS_EFORMAT, "%s.rope.dimension_count = %d does not fit head_dim %d", a, hp->n_rot,
                          hp->head_dim);
    hp->rms_eps = 1e-5f;
    hp->rope_freq_base = 10000.0f;
    float factor = 0.0f;
    if ((rc = get_float(g, a, "attention.layer_norm_rms_epsilon", &hp->rms_eps, err)) ||
        (rc = get_float(g, a, "rope.freq_base", &hp->rope_freq_base, err)) ||
        (rc = get_float(g, a, "rope.scale_linear", &factor, err)))
        return rc;
    if (!(hp->rms_eps > 0.0f && hp->rms_eps < 1.0f))
        return hs_err_set(err, HS_EFORMAT, "%s.attention.layer_norm_rms_epsilon = %g is out of range", a,
                          (double)hp->rms_eps);
    if (!(hp->rope_freq_base > 1.0f))
        return hs_err_set(err, HS_EFORMAT, "%s.rope.freq_base = %g is out of range", a,
                          (double)hp->rope_freq_base);

    /* Rope scaling: "linear" divides positions by the factor; "none" (or no
     * key) leaves them; yarn and the rest change the numbers we would compute,
     * so they are refused rather than silently ignored. */
    char key[128];
    arch_key(key, sizeof key, a, "rope.scaling.type");
    const char *st;
    size_t st_len;
    rc = hs_gguf_get_str(g, key, &st, &st_len, err);
    if (rc && rc != HS_ENOTFOUND)
        return rc;
    bool linear = rc == HS_OK && st_len == 6 && !memcmp(st, "linear", 6);
    bool none = rc == HS_OK && st_len == 4 && !memcmp(st, "none", 4);
    if (rc == HS_OK && !linear && !none)
        return hs_err_set(err, HS_EUNSUPPORTED, "rope scaling type '%.*s' is not supported", (int)st_len, st);
    if (none)
        factor = 0.0f;
    if (linear && (rc = get_float(g, a, "rope.scaling.factor", &factor, err)))
        return rc;
    if (!(factor >= 0.0f))
        return hs_err_set(err, HS_EFORMAT, "%s: rope scaling factor %g is out of range", a, (double)factor);
    hp->rope_freq_scale = factor > 0.0f ? 1.0f / factor : 1.0f;
    return HS_OK;
}

/* ---- weight binding ---- */

static const char *type_name(uint32_t type) {
    const struct hs_type_size *ts = hs_type_size(type);
    return ts ? ts->name : "unknown";
}

/* Finds `name`; HS_ENOTFOUND (err untouched) when absent and optional. */
static int find(struct loader *L, const char *name, bool required, const struct hs_gguf_tensor **out) {
    *out = hs_gguf_find_tensor(L->m->gguf, name);
    if (*out)
        return HS_OK;
    if (required)
        return hs_err_set(L->err, HS_EFORMAT, "missing tensor '%s'", name);
    return HS_ENOTFOUND;
}

static int check_shape(struct loader *L, const struct hs_gguf_tensor *t, int64_t ne0, int64_t ne1) {
    bool ok = t->ne[0] == ne0 && t->ne[1] == ne1 && t->ne[2] == 1 && t->ne[3] == 1;
    if (ok)
        return HS_OK;
    char got[96];
    if (t->n_dims <= 1)
        snprintf(got, sizeof got, "[%lld]", (long long)t->ne[0]);
    else if (t->n_dims == 2)
        snprintf(got, sizeof got, "[%lld, %lld]", (long long)t->ne[0], (long long)t->ne[1]);
    else
        snprintf(got, sizeof got, "[%lld, %lld, %lld, %lld]", (long long)t->ne[0], (long long)t->ne[1],
                 (long long)t->ne[2], (long long)t->ne[3]);
    if (ne1 == 1)
        return hs_err_set(L->err, HS_EFORMAT, "tensor '%s' has shape %s, expected [%lld]", t->name, got,
                          (long long)ne0);
    return hs_err_set(L->err, HS_EFORMAT, "tensor '%s' has shape %s, expected [%lld, %lld]", t->name, got,
                      (long long)ne0, (long long)ne1);
}

/* A matrix (ne1 rows of ne0) of any type the matmul has kernels for. */
static int bind_mat(struct loader *L, const char *name, int64_t ne0, int64_t ne1, bool required,
                    struct hs_mat *out) {
    const struct hs_gguf_tensor *t;
    int rc = find(L, name, required, &t);
    if (rc)
        return rc;
    if ((rc = check_shape(L, t, ne0, ne1)))
        return rc;
    const struct hs_qtype *qt = hs_qtype((int)t->type);
    const struct hs_qtype *vt = qt ? hs_qtype(qt->vec_dot_type) : NULL;
    if (!qt || !vt || !hs_qtype_kernels((int)t->type))
        return hs_err_set(L->err, HS_EUNSUPPORTED, "tensor '%s' has type %s, which has no kernels", name,
                          type_name(t->type));
    size_t row_bytes = hs_qtype_row_bytes((int)t->type, ne0);
    if (!row_bytes || row_bytes * (uint64_t)ne1 > t->nbytes)
        return hs_err_set(L->err, HS_EFORMAT, "tensor '%s': rows of %lld %s elements do not fit its %llu bytes",
                          name, (long long)ne0, type_name(t->type), (unsigned long long)t->nbytes);
    *out = (struct hs_mat){.type = (int)t->type, .n_cols = ne0, .n_rows = ne1, .row_bytes = row_bytes,
                           .data = t->data};
    L->type_bytes[t->type] += t->nbytes;
    L->m->weight_bytes += t->nbytes;
    return HS_OK;
}

/* A vector of n F32 values (norm weights, biases, rope factors). The reader
 * aligns tensor data to at least 32 bytes, so the float pointer is aligned. */
static int bind_vec(struct loader *L, const char *name, int64_t n, bool required, const float **out) {
    const struct hs_gguf_tensor *t;
    int rc = find(L, name, required, &t);
    if (rc)
        return rc;
    if ((rc = check_shape(L, t, n, 1)))
        return rc;
    if (t->type != HS_TYPE_F32)
        return hs_err_set(L->err, HS_EUNSUPPORTED, "tensor '%s' has type %s; vectors must be f32", name,
                          type_name(t->type));
    if (((uintptr_t)t->data & (sizeof(float) - 1)) != 0)
        return hs_err_set(L->err, HS_EFORMAT, "tensor '%s' data is not 4-byte aligned", name);
    *out = t->data;
    L->type_bytes[t->type] += t->nbytes;
    L->m->weight_bytes += t->nbytes;
    return HS_OK;
}

static int bind_layer(struct loader *L, int il, struct hs_layer *ly) {
    const struct hs_hparams *hp = &L->m->hp;
    const int64_t E = hp->n_embd, Q = (int64_t)hp->n_head * hp->head_dim;
    const int64_t KV = (int64_t)hp->n_head_kv * hp->head_dim, F = hp->n_ff;
    const bool qwen2 = !strcmp(hp->arch, "qwen2");
    char n[96];
    int rc;
#define NAME(s) (snprintf(n, sizeof n, "blk.%d.%s", il, s), n)
    if ((rc = bind_vec(L, NAME("attn_norm.weight"), E, true, &ly->attn_norm)) ||
        (rc = bind_mat(L, NAME("attn_q.weight"), E, Q, true, &ly->wq)) ||
        (rc = bind_mat(L, NAME("attn_k.weight"), E, KV, true, &ly->wk)) ||
        (rc = bind_mat(L, NAME("attn_v.weight"), E, KV, true, &ly->wv)) ||
        (rc = bind_mat(L, NAME("attn_output.weight"), Q, E, true, &ly->wo)) ||
        (rc = bind_vec(L, NAME("ffn_norm.weight"), E, true, &ly->ffn_norm)) ||
        (rc = bind_mat(L, NAME("ffn_gate.weight"), E, F, true, &ly->w_gate)) ||
        (rc = bind_mat(L, NAME("ffn_up.weight"), E, F, true, &ly->w_up)) ||
        (rc = bind_mat(L, NAME("ffn_down.weight"), F, E, true, &ly->w_down)))
        return rc;
    /* qwen2 always has QKV biases; some llama-architecture fine-tunes do too. */
    if ((rc = bind_vec(L, NAME("attn_q.bias"), Q, qwen2, &ly->bq)) && rc != HS_ENOTFOUND)
        return rc;
    if ((rc = bind_vec(L, NAME("attn_k.bias"), KV, qwen2, &ly->bk)) && rc != HS_ENOTFOUND)
        return rc;
    if ((rc = bind_vec(L, NAME("attn_v.bias"), KV, qwen2, &ly->bv)) && rc != HS_ENOTFOUND)
        return rc;
#undef NAME
    return HS_OK;
}

static void summarize_types(struct loader *L) {
    hs_model *m = L->m;
    bool used[HS_TYPE_COUNT] = {0};
    size_t len = 0;
    m->type_name[0] = '\0';
    for (;;) { /* types by bytes, largest first */
        int best = -1;
        for (int t = 0; t < HS_TYPE_COUNT; t++)
            if (!used[t] && L->type_bytes[t] && (best < 0 || L->type_bytes[t] > L->type_bytes[best]))
                best = t;
        if (best < 0)
            break;
        used[best] = true;
        int w = snprintf(m->type_name + len, sizeof m->type_name - len, "%s%s", len ? "/" : "",
                         type_name((uint32_t)best));
        if (w < 0 || (size_t)w >= sizeof m->type_name - len)
            break;
        len += (size_t)w;
    }
}

static int bind_weights(struct loader *L) {
    hs_model *m = L->m;
    struct hs_hparams *hp = &m->hp;
    const struct hs_gguf_tensor *te = hs_gguf_find_tensor(m->gguf, "token_embd.weight");
    if (!te)
        return hs_err_set(L->err, HS_EFORMAT, "missing tensor 'token_embd.weight'");
    if (te->ne[1] <= 0 || te->ne[1] > INT32_MAX)
        return hs_err_set(L->err, HS_EFORMAT, "tensor 'token_embd.weight' has %lld rows", (long long)te->ne[1]);
    hp->n_vocab = (int)te->ne[1];
    int rc;
    if ((rc = bind_mat(L, "token_embd.weight", hp->n_embd, hp->n_vocab, true, &m->tok_embd)) ||
        (rc = bind_vec(L, "output_norm.weight", hp->n_embd, true, &m->output_norm)))
        return rc;
    rc = bind_mat(L, "output.weight", hp->n_embd, hp->n_vocab, false, &m->output);
    if (rc == HS_ENOTFOUND) {
        m->output = m->tok_embd;
        hp->tied_output = true;
    } else if (rc) {
        return rc;
    }
    rc = bind_vec(L, "rope_freqs.weight", hp->n_rot / 2, false, &m->rope_freqs);
    if (rc && rc != HS_ENOTFOUND)
        return rc;
    m->layers = hs_calloc((size_t)hp->n_layer, sizeof *m->layers);
    if (!m->layers)
        return hs_err_set(L->err, HS_ENOMEM, "out of memory");
    for (int il = 0; il < hp->n_layer; il++)
        if ((rc = bind_layer(L, il, &m->layers[il])))
            return rc;
    hp->has_qkv_bias = m->layers[0].bq != NULL;
    summarize_types(L);
    return HS_OK;
}

/* ---- load / free ---- */

static int load(hs_model *m, const char *path, const struct hs_model_params *params, hs_err *err) {
    int rc;
    if ((rc = hs_gguf_open(path, &m->gguf, err)))
        return rc;
    const char *arch;
    size_t arch_len;
    rc = hs_gguf_get_str(m->gguf, "general.architecture", &arch, &arch_len, err);
    if (rc == HS_ENOTFOUND)
        return hs_err_set(err, HS_EFORMAT, "%s: missing key general.architecture", path);
    if (rc)
        return hs_err_prefix(err, "%s: ", path);
    if (arch_len >= sizeof m->hp.arch)
        arch_len = sizeof m->hp.arch - 1;
    memcpy(m->hp.arch, arch, arch_len);
    m->hp.arch[arch_len] = '\0';
    bool vocab_only = params && params->vocab_only;
    /* A vocabulary file may carry any architecture's name; only the weights
     * decide whether we can run it. */
    if (!vocab_only && strcmp(m->hp.arch, "llama") && strcmp(m->hp.arch, "qwen2"))
        return hs_err_set(err, HS_EUNSUPPORTED, "%s: unsupported architecture '%s'", path, m->hp.arch);
    m->hp.rope_type = !strcmp(m->hp.arch, "qwen2") ? HS_ROPE_NEOX : HS_ROPE_NORM;
    uint32_t ft;
    m->hp.file_type = hs_gguf_get_u32(m->gguf, "general.file_type", &ft, NULL) == HS_OK ? (int)ft : -1;

    if ((rc = hs_tok_load(m->gguf, &m->tok, err)))
        return hs_err_prefix(err, "%s: ", path);
    const char *tmpl;
    size_t tmpl_len;
    if (hs_gguf_get_str(m->gguf, "tokenizer.chat_template", &tmpl, &tmpl_len, NULL) == HS_OK) {
        m->chat_template = hs_strndup(tmpl, tmpl_len);
        if (!m->chat_template)
            return hs_err_set(err, HS_ENOMEM, "out of memory");
    }
    if (vocab_only) {
        m->hp.n_vocab = hs_tok_n_vocab(m->tok);
        return HS_OK;
    }

    if ((rc = read_hparams(&m->hp, m->gguf, err)))
        return hs_err_prefix(err, "%s: ", path);
    struct loader L = {.m = m, .arch = m->hp.arch, .err = err};
    if ((rc = bind_weights(&L)))
        return hs_err_prefix(err, "%s: ", path);
    if (hs_tok_n_vocab(m->tok) > m->hp.n_vocab)
        return hs_err_set(err, HS_EFORMAT, "%s: the tokenizer has %d tokens but token_embd only %d rows", path,
                          hs_tok_n_vocab(m->tok), m->hp.n_vocab);
    return HS_OK;
}

int hs_model_load(const char *path, const struct hs_model_params *params, hs_model **out, hs_err *err) {
    *out = NULL;
    hs_model *m = hs_calloc(1, sizeof *m);
    if (!m)
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    int rc = load(m, path, params, err);
    if (rc) {
        hs_model_free(m);
        return rc;
    }
    const struct hs_hparams *hp = &m->hp;
    hs_log_info("model.load",
                "path=%s arch=%s vocab=%d embd=%d layers=%d heads=%d/%d head_dim=%d ff=%d ctx_train=%d types=%s "
                "bytes=%zu",
                path, hp->arch, hp->n_vocab, hp->n_embd, hp->n_layer, hp->n_head, hp->n_head_kv, hp->head_dim,
                hp->n_ff, hp->n_ctx_train, m->type_name[0] ? m->type_name : "none", m->weight_bytes);
    *out = m;
    return HS_OK;
}

void hs_model_free(hs_model *m) {
    if (!m)
        return;
    hs_free(m->layers);
    hs_free(m->chat_template);
    hs_tok_free(m->tok);
    hs_gguf_close(m->gguf);
    hs_free(m);
}

const struct hs_hparams *hs_model_hparams(const hs_model *m) { return &m->hp; }
const hs_tok *hs_model_tok(const hs_model *m) { return m->tok; }
const hs_gguf *hs_model_gguf(const hs_model *m) { return m->gguf; }
const char *hs_model_chat_template(const hs_model *m) { return m->chat_template; }
size_t hs_model_weight_bytes(const hs_model *m) { return m->weight_bytes; }
const char *hs_model_type_name(const hs_model *m) { return m->type_name; }
