/* The context: KV cache and scratch (all allocated once, at create), the
 * thread pool, batch checks and the sequence operations. The forward pass
 * itself is in forward.c. */
#include "model/context.h"

#include "base/log.h"
#include "base/mem.h"
#include "model/context_impl.h"
#include "model/ops.h"
#include "tensor/qtype.h"

#include <math.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_N_CTX 4096
#define DEFAULT_N_BATCH 512
#define MAX_N_SEQ 4096

/* Bytes of one activation row quantized for a product with w. */
static size_t act_row_bytes(const struct hs_mat *w) {
    const struct hs_qtype *qt = hs_qtype(w->type);
    if (!qt || qt->vec_dot_type == HS_TYPE_F32)
        return 0;
    return hs_qtype_row_bytes(qt->vec_dot_type, w->n_cols);
}

/* Bytes of quantized activations the largest matmul of a batch needs, so
 * that hs_matmul finds its scratch ready. */
static size_t mm_scratch_bytes(const hs_model *m, int n_batch) {
    size_t max_row = act_row_bytes(&m->output);
    for (int l = 0; l < m->hp.n_layer; l++) {
        const struct hs_layer *ly = &m->layers[l];
        const struct hs_mat *w[] = {&ly->wq, &ly->wk, &ly->wv, &ly->wo, &ly->w_gate, &ly->w_up, &ly->w_down};
        for (size_t i = 0; i < sizeof w / sizeof w[0]; i++) {
            size_t r = act_row_bytes(w[i]);
            max_row = r > max_row ? r : max_row;
        }
    }
    return max_row * (size_t)n_batch;
}

static float *falloc(size_t n) { return hs_aligned_alloc(64, n * sizeof(float)); }

static int alloc_all(hs_ctx *c) {
    const struct hs_hparams *hp = c->hp;
    const size_t B = (size_t)c->n_batch, E = (size_t)hp->n_embd;
    const size_t Q = (size_t)hp->n_head * hp->head_dim, KV = (size_t)c->kv_dim, F = (size_t)hp->n_ff;
    /* The cache comes from calloc, so its pages are mapped lazily, as the
     * sequences grow, rather than touched all at once here. */
    size_t cells = (size_t)c->n_seq * hp->n_layer * (size_t)c->n_ctx * KV;
    c->kv_bytes = 2 * cells * c->kv_elem;
    c->k = hs_calloc(cells, c->kv_elem);
    c->v = hs_calloc(cells, c->kv_elem);
    c->seq_len = hs_calloc((size_t)c->n_seq, sizeof(int));
    c->seq_next = hs_calloc((size_t)c->n_seq, sizeof(int));
    c->x = falloc(B * E);
    c->xn = falloc(B * E);
    c->tmp = falloc(B * E);
    c->q = falloc(B * Q);
    c->kc = falloc(B * KV);
    c->vc = falloc(B * KV);
    c->att = falloc(B * Q);
    c->gate = falloc(B * F);
    c->up = falloc(B * F);
    c->rope_cs = falloc(B * (size_t)hp->n_rot);
    c->freq = falloc((size_t)hp->n_rot / 2 + 1);
    c->scores = falloc((size_t)c->n_threads * HS_ATTN_MAX_HEADS * (size_t)c->n_ctx);
    c->out_idx = hs_calloc(B, sizeof(int));
    c->out_rows = hs_calloc(B, sizeof(int));
    c->pos_buf = hs_calloc(B, sizeof(int32_t));
    c->seq_buf = hs_calloc(B, sizeof(int32_t));
    /* Room for one logits row per sequence (a decode step of every slot);
     * a batch asking for more grows it once. */
    c->logits_cap = c->n_seq < c->n_batch ? c->n_seq : c->n_batch;
    c->logits = falloc((size_t)c->logits_cap * (size_t)hp->n_vocab);
    size_t mm_bytes = mm_scratch_bytes(c->m, c->n_batch);
    if (mm_bytes) {
        c->mm.buf = hs_aligned_alloc(64, mm_bytes);
        c->mm.cap = c->mm.buf ? mm_bytes : 0;
    }
    if (!c->k || !c->v || !c->seq_len || !c->seq_next || !c->x || !c->xn || !c->tmp || !c->q || !c->kc ||
        !c->vc || !c->att || !c->gate || !c->up || !c->rope_cs || !c->freq || !c->scores || !c->out_idx ||
        !c->out_rows || !c->pos_buf || !c->seq_buf || !c->logits || (mm_bytes && !c->mm.buf))
        return HS_ENOMEM;
    return HS_OK;
}

/* Whether some matrix of the model takes other kernels for prompt tokens. */
static bool model_has_prompt_kernels(const hs_model *m) {
    bool any = hs_matmul_prompt_kernels(m->output.type);
    for (int l = 0; l < m->hp.n_layer && !any; l++) {
        const struct hs_layer *ly = &m->layers[l];
        const struct hs_mat *w[] = {&ly->wq, &ly->wk, &ly->wv, &ly->wo, &ly->w_gate, &ly->w_up, &ly->w_down};
        for (size_t i = 0; i < sizeof w / sizeof w[0]; i++)
            any |= hs_matmul_prompt_kernels(w[i]->type);
    }
    return any;
}

/* Angle per position of rotation pair i: base^(-2i / n_rot), times the linear
 * scaling factor, divided by Llama-3's per-pair factor when the model has
 * one. Written as 1 / base^(2i / n_rot) to match the reference llama2.c. */
static void fill_freq(hs_ctx *c) {
    const struct hs_hparams *hp = c->hp;
    for (int i = 0; i < hp->n_rot / 2; i++) {
        float f = 1.0f / powf(hp->rope_freq_base, (float)(2 * i) / (float)hp->n_rot);
        f *= hp->rope_freq_scale;
        if (c->m->rope_freqs)
            f /= c->m->rope_freqs[i];
        c->freq[i] = f;
    }
}

int hs_ctx_create(const hs_model *m, const struct hs_ctx_params *params, hs_ctx **out, hs_err *err) {
    *out = NULL;
    const struct hs_hparams *hp = &m->hp;
    if (!m->layers)
        return hs_err_set(err, HS_EINVAL, "the model was loaded vocab_only: it has no weights");
    struct hs_ctx_params p = params ? *params : (struct hs_ctx_params){0};
    if (p.n_ctx < 0 || p.n_seq < 0 || p.n_batch < 0 || p.n_threads < 0)
        return hs_err_set(err, HS_EINVAL, "negative context parameter");
    if (p.n_ctx == 0)
        p.n_ctx = hp->n_ctx_train < DEFAULT_N_CTX ? hp->n_ctx_train : DEFAULT_N_CTX;
    if (p.n_seq == 0)
        p.n_seq = 1;
    if (p.n_batch == 0)
        p.n_batch = DEFAULT_N_BATCH;
    if (p.n_threads == 0)
        p.n_threads = hs_cpu_count();
    if (p.kv_type != HS_KV_F16 && p.kv_type != HS_KV_F32)
        return hs_err_set(err, HS_EINVAL, "unknown KV cache type %d", (int)p.kv_type);
    if (p.n_seq > MAX_N_SEQ)
        return hs_err_set(err, HS_EINVAL, "n_seq %d is more than %d", p.n_seq, MAX_N_SEQ);
    if (p.n_ctx > hp->n_ctx_train)
        hs_log_warn("ctx.create", "n_ctx=%d exceeds the trained context %d: quality may drop past it", p.n_ctx,
                    hp->n_ctx_train);
    /* The cache is touched lazily, so an absurd size would "work" until it
     * is filled; refuse what this machine cannot hold at all. */
    const double kv_need = 2.0 * p.n_seq * hp->n_layer * (double)p.n_ctx * hp->n_head_kv * hp->head_dim *
                           (p.kv_type == HS_KV_F32 ? 4 : 2);
    const double ram = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
    if (ram > 0 && kv_need > ram)
        return hs_err_set(err, HS_ENOMEM, "a KV cache of %d x %d positions needs %.1f GiB, more than this machine's %.1f GiB",
                          p.n_seq, p.n_ctx, kv_need / (1 << 30), ram / (1 << 30));
    hs_ctx *c = hs_calloc(1, sizeof *c);
    if (!c)
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    c->m = m;
    c->hp = hp;
    c->n_ctx = p.n_ctx;
    c->n_seq = p.n_seq;
    c->n_batch = p.n_batch;
    c->n_threads = p.n_threads;
    c->kv_dim = hp->n_head_kv * hp->head_dim;
    c->kv_type = p.kv_type;
    c->kv_elem = p.kv_type == HS_KV_F32 ? sizeof(float) : sizeof(hs_fp16);
    c->mm_flags = p.batch_invariant ? HS_MM_BATCH_INVARIANT : 0;
    c->kinds_differ = p.batch_invariant && model_has_prompt_kernels(m);
    if (alloc_all(c) || hs_pool_create(c->n_threads, &c->pool)) {
        hs_ctx_free(c);
        return hs_err_set(err, HS_ENOMEM, "out of memory for a context of %d x %d positions", p.n_seq, p.n_ctx);
    }
    fill_freq(c);
    hs_log_info("ctx.create", "n_ctx=%d n_seq=%d n_batch=%d threads=%d kv=%s kv_bytes=%zu ops=%s", c->n_ctx,
                c->n_seq, c->n_batch, c->n_threads, c->kv_type == HS_KV_F32 ? "f32" : "f16", c->kv_bytes,
                hs_ops_get()->impl);
    *out = c;
    return HS_OK;
}

void hs_ctx_free(hs_ctx *c) {
    if (!c)
        return;
    hs_pool_free(c->pool);
    hs_mm_scratch_free(&c->mm);
    hs_ctx_loras_free(c);
    hs_free(c->k);
    hs_free(c->v);
    hs_free(c->seq_len);
    hs_free(c->seq_next);
    float *bufs[] = {c->x, c->xn, c->tmp, c->q, c->kc, c->vc, c->att, c->gate, c->up,
                     c->rope_cs, c->freq, c->scores, c->logits};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        hs_aligned_free(bufs[i]);
    hs_free(c->out_idx);
    hs_free(c->out_rows);
    hs_free(c->pos_buf);
    hs_free(c->seq_buf);
    hs_free(c);
}

int hs_ctx_n_ctx(const hs_ctx *ctx) { return ctx->n_ctx; }
int hs_ctx_n_seq(const hs_ctx *ctx) { return ctx->n_seq; }
hs_pool *hs_ctx_pool(hs_ctx *ctx) { return ctx->pool; }
size_t hs_ctx_kv_bytes(const hs_ctx *ctx) { return ctx->kv_bytes; }
const hs_model *hs_ctx_model(const hs_ctx *ctx) { return ctx->m; }
bool hs_ctx_kinds_differ(const hs_ctx *ctx) { return ctx->kinds_differ; }

/* ---- decode ---- */

/* Everything is checked before anything changes, so that an error leaves
 * every cache as it was. */
static int check_batch(hs_ctx *c, const struct hs_batch *b, hs_err *err) {
    if (!b || b->n <= 0 || !b->tokens)
        return hs_err_set(err, HS_EINVAL, "empty batch");
    if (b->n > c->n_batch)
        return hs_err_set(err, HS_EINVAL, "batch of %d tokens is larger than n_batch %d", b->n, c->n_batch);
    if (b->n_prompt < 0 || b->n_prompt > b->n)
        return hs_err_set(err, HS_EINVAL, "batch: n_prompt %d outside [0, %d]", b->n_prompt, b->n);
    memcpy(c->seq_next, c->seq_len, (size_t)c->n_seq * sizeof(int));
    for (int i = 0; i < b->n; i++) {
        int32_t tok = b->tokens[i];
        if (tok < 0 || tok >= c->hp->n_vocab)
            return hs_err_set(err, HS_EINVAL, "batch token %d: id %d is outside the vocabulary (%d)", i, tok,
                              c->hp->n_vocab);
        int32_t s = b->seq ? b->seq[i] : 0;
        if (s < 0 || s >= c->n_seq)
            return hs_err_set(err, HS_EINVAL, "batch token %d: sequence %d is outside [0, %d)", i, s, c->n_seq);
        int32_t p = b->pos ? b->pos[i] : c->seq_next[s];
        if (p >= c->n_ctx)
            return hs_err_set(err, HS_ERANGE, "context full: position %d >= n_ctx %d", p, c->n_ctx);
        if (p != c->seq_next[s])
            return hs_err_set(err, HS_EINVAL,
                              "batch token %d: position %d of sequence %d does not follow its cache (expected %d)",
                              i, p, s, c->seq_next[s]);
        c->seq_next[s]++;
    }
    return HS_OK;
}

int hs_decode(hs_ctx *c, const struct hs_batch *b, hs_err *err) {
    c->n_out = 0;
    int rc = check_batch(c, b, err);
    if (rc)
        return rc;
    /* Which tokens want logits: the ones flagged, or only the last. */
    for (int i = 0; i < b->n; i++) {
        bool want = b->logits ? b->logits[i] != 0 : i == b->n - 1;
        c->out_idx[i] = want ? c->n_out : -1;
        if (want)
            c->out_rows[c->n_out++] = i;
    }
    c->embd_out = c->embd_mode;
    c->n_gen = b->n - b->n_prompt;
    if (c->n_out > c->logits_cap && !c->embd_mode) {
        float *nl = falloc((size_t)c->n_out * (size_t)c->hp->n_vocab);
        if (!nl) {
            c->n_out = 0;
            return hs_err_set(err, HS_ENOMEM, "out of memory for %d rows of logits", b->n);
        }
        hs_aligned_free(c->logits);
        c->logits = nl;
        c->logits_cap = c->n_out;
    }
    /* The forward pass reads positions and sequences from arrays; fill them
     * in when the batch left them implicit. */
    const int32_t *pos = b->pos, *seq = b->seq;
    if (!pos || !seq) {
        memcpy(c->seq_next, c->seq_len, (size_t)c->n_seq * sizeof(int));
        for (int i = 0; i < b->n; i++) {
            c->seq_buf[i] = seq ? seq[i] : 0;
            c->pos_buf[i] = pos ? pos[i] : c->seq_next[c->seq_buf[i]]++;
        }
        pos = c->pos_buf;
        seq = c->seq_buf;
    }
    rc = hs_forward(c, b->n, b->tokens, pos, seq, err);
    if (rc == HS_OK) {
        for (int i = 0; i < b->n; i++)
            if (pos[i] + 1 > c->seq_len[seq[i]])
                c->seq_len[seq[i]] = pos[i] + 1;
    } else {
        c->n_out = 0;
    }
    return rc;
}

const float *hs_ctx_logits(hs_ctx *c, int i) {
    if (c->embd_out || i < 0 || i >= c->n_batch || c->n_out == 0 || c->out_idx[i] < 0 ||
        c->out_idx[i] >= c->n_out)
        return NULL;
    return c->logits + (size_t)c->out_idx[i] * (size_t)c->hp->n_vocab;
}

void hs_ctx_set_embeddings(hs_ctx *c, bool on) { c->embd_mode = on; }

/* The output norm leaves the rows with outputs, compacted, in xn (forward.c). */
const float *hs_ctx_embeddings(hs_ctx *c, int i) {
    if (!c->embd_out || i < 0 || i >= c->n_batch || c->n_out == 0 || c->out_idx[i] < 0 ||
        c->out_idx[i] >= c->n_out)
        return NULL;
    return c->xn + (size_t)c->out_idx[i] * (size_t)c->hp->n_embd;
}

int hs_ctx_n_logits(const hs_ctx *c) { return c->n_out; }

/* ---- sequence operations ---- */

int hs_ctx_seq_len(const hs_ctx *c, int seq) {
    if (seq < 0 || seq >= c->n_seq)
        return 0;
    return c->seq_len[seq];
}

void hs_ctx_seq_clear(hs_ctx *c, int seq) {
    if (seq >= 0 && seq < c->n_seq)
        c->seq_len[seq] = 0;
}

void hs_ctx_seq_truncate(hs_ctx *c, int seq, int n_keep) {
    if (seq < 0 || seq >= c->n_seq || n_keep < 0)
        return;
    if (n_keep < c->seq_len[seq])
        c->seq_len[seq] = n_keep;
}

int hs_ctx_seq_copy(hs_ctx *c, int src, int dst, int n) {
    if (src < 0 || src >= c->n_seq || dst < 0 || dst >= c->n_seq)
        return HS_EINVAL;
    if (n < 0 || n > c->seq_len[src])
        return HS_EINVAL;
    if (src == dst) {
        c->seq_len[dst] = n;
        return HS_OK;
    }
    const size_t KV = (size_t)c->kv_dim, row = (size_t)c->n_ctx * c->kv_elem, es = c->kv_elem;
    for (int l = 0; l < c->hp->n_layer; l++) {
        const size_t so = hs_ctx_kv_off(c, src, l), dof = hs_ctx_kv_off(c, dst, l);
        for (size_t d = 0; d < KV; d++) { /* transposed: the first n of each row */
            memcpy(c->k + dof + d * row, c->k + so + d * row, (size_t)n * es);
            memcpy(c->v + dof + d * row, c->v + so + d * row, (size_t)n * es);
        }
    }
    c->seq_len[dst] = n;
    return HS_OK;
}
