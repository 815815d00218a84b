/* The batched forward pass of the llama family (llama, mistral, qwen2).
 *
 * All tokens of a batch go through each weight matrix together (one matmul
 * per projection, whatever the mix of sequences), so that a prompt is
 * processed as matrix x matrix and every weight row is read from memory once
 * per layer. Between the matmuls, small row-parallel jobs on the context's
 * pool: norms (fused with the residual add), bias + rope + cache store, the
 * attention of each (token, head group), SwiGLU. Per layer:
 *
 *   xn = rmsnorm(x) * attn_norm            (x += tmp first, from the layer before)
 *   q, k, v = xn @ wq, wk, wv (+ biases); rope(q, k); k, v -> cache (f16)
 *   att = softmax(q k^T / sqrt(head_dim)) v   over the token's own sequence
 *   tmp = att @ wo
 *   xn = rmsnorm(x += tmp) * ffn_norm
 *   tmp = (silu(xn @ w_gate) * (xn @ w_up)) @ w_down
 *
 * and at the end logits = rmsnorm(x += tmp) * output_norm @ output, only for
 * the rows that asked for them (in embeddings mode the normed rows are the
 * result, and the output matmul is skipped). */
#include "model/context_impl.h"
#include "model/ops.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

/* Multiply-adds of attention below which it runs on the calling thread
 * (~10 us of work, a few times the cost of a pool wake-up). */
#define ATTN_MIN_PARALLEL (256L * 1024)

struct fwd {
    hs_ctx *c;
    const struct hs_ops *ops;
    int n;
    const int32_t *tokens, *pos, *seq;
    int layer;
    const struct hs_layer *ly;
    const float *norm_w; /* norm jobs: the weight */
    bool add;            /* norm jobs: x += tmp first */
    atomic_int err;      /* embed job: a bad row */
    /* attention */
    int gs;       /* query heads per task (they share one KV head) */
    int n_groups; /* n_head / gs */
    int n_tasks;  /* n * n_groups */
    const int *rows; /* row -> batch token, or NULL for the identity */
    atomic_int next;
};

/* Row-parallel work in chunks claimed from a counter; a few rows (a decode
 * step) are less work than waking the pool, so they run on the caller. */
#define ROWS_PER_CHUNK 4
static void run_rows(hs_ctx *c, hs_pool_range_fn fn, struct fwd *f, long n_rows) {
    hs_pool_for(c->pool, n_rows, ROWS_PER_CHUNK, fn, f);
}

/* Token embeddings and the rope angles of each token's position (the same
 * for every layer). */
static void embed_job(void *arg, long lo, long hi) {
    struct fwd *f = arg;
    hs_ctx *c = f->c;
    const struct hs_hparams *hp = c->hp;
    for (long i = lo; i < hi; i++) {
        if (hs_mat_get_row(&c->m->tok_embd, f->tokens[i], c->x + i * hp->n_embd))
            f->err = 1;
        float *cs = c->rope_cs + i * hp->n_rot;
        for (int j = 0; j < hp->n_rot / 2; j++) {
            const float theta = (float)f->pos[i] * c->freq[j];
            cs[2 * j] = cosf(theta);
            cs[2 * j + 1] = sinf(theta);
        }
    }
}

static void norm_job(void *arg, long lo, long hi) {
    struct fwd *f = arg;
    hs_ctx *c = f->c;
    const int E = c->hp->n_embd;
    for (long i = lo; i < hi; i++) {
        if (f->add)
            hs_add_rmsnorm(c->xn + i * E, c->x + i * E, c->tmp + i * E, f->norm_w, E, c->hp->rms_eps);
        else
            hs_rmsnorm(c->xn + i * E, c->x + i * E, f->norm_w, E, c->hp->rms_eps);
    }
}

static void add_bias(float *y, const float *b, int n) {
    for (int i = 0; i < n; i++)
        y[i] += b[i];
}

/* Biases, rope on every head of q and k, then the new keys and values go to
 * their sequence's cache (transposed: one value per row of n_ctx). */
static void qkv_job(void *arg, long lo, long hi) {
    struct fwd *f = arg;
    hs_ctx *c = f->c;
    const struct hs_hparams *hp = c->hp;
    const struct hs_layer *ly = f->ly;
    const int hd = hp->head_dim, Qd = hp->n_head * hd, KV = c->kv_dim;
    for (long i = lo; i < hi; i++) {
        float *q = c->q + i * Qd, *k = c->kc + i * KV, *v = c->vc + i * KV;
        if (ly->bq)
            add_bias(q, ly->bq, Qd);
        if (ly->bk)
            add_bias(k, ly->bk, KV);
        if (ly->bv)
            add_bias(v, ly->bv, KV);
        const float *cs = c->rope_cs + i * hp->n_rot;
        void (*rope)(float *, int, const float *) = hp->rope_type == HS_ROPE_NEOX ? hs_rope_neox : hs_rope_norm;
        for (int h = 0; h < hp->n_head; h++)
            rope(q + h * hd, hp->n_rot, cs);
        for (int h = 0; h < hp->n_head_kv; h++)
            rope(k + h * hd, hp->n_rot, cs);
        const size_t off = hs_ctx_kv_off(c, f->seq[i], f->layer), p = (size_t)f->pos[i];
        const size_t N = (size_t)c->n_ctx;
        if (c->kv_type == HS_KV_F16) {
            hs_f32_to_f16_strided((hs_fp16 *)(c->k + off) + p, N, k, KV);
            hs_f32_to_f16_strided((hs_fp16 *)(c->v + off) + p, N, v, KV);
        } else {
            float *kt = (float *)(c->k + off) + p, *vt = (float *)(c->v + off) + p;
            for (int d = 0; d < KV; d++) {
                kt[(size_t)d * N] = k[d];
                vt[(size_t)d * N] = v[d];
            }
        }
    }
}

/* One task: gs query heads of token i (sharing one KV head) against
 * positions 0..pos[i] of the token's sequence. Tasks are taken from a shared
 * counter, latest tokens first: in a prompt they attend to the most positions,
 * so the long tasks start early and the short ones fill the gaps. */
static void attn_job(void *arg, int ith, int nth) {
    (void)nth;
    struct fwd *f = arg;
    hs_ctx *c = f->c;
    const struct hs_hparams *hp = c->hp;
    const int hd = hp->head_dim, Qd = hp->n_head * hd, gs = f->gs;
    const int g = hp->n_head / hp->n_head_kv;
    const float scale = 1.0f / sqrtf((float)hd);
    const bool f16 = c->kv_type == HS_KV_F16;
    const hs_attn_wsum_fn wsum = f16 ? f->ops->wsum_f16 : f->ops->wsum_f32;
    const hs_attn_scores_fn scores = f16 ? f->ops->scores_f16 : f->ops->scores_f32;
    const size_t es = c->kv_elem;
    float *sc = c->scores + (size_t)ith * HS_ATTN_MAX_HEADS * (size_t)c->n_ctx;
    for (;;) {
        const int t_rev = atomic_fetch_add_explicit(&f->next, 1, memory_order_relaxed);
        if (t_rev >= f->n_tasks)
            break;
        const int t = f->n_tasks - 1 - t_rev;
        const int i = t / f->n_groups, h0 = (t % f->n_groups) * gs, kvh = h0 / g;
        const int tok = f->rows ? f->rows[i] : i;
        const int n_kv = f->pos[tok] + 1;
        const size_t off = hs_ctx_kv_off(c, f->seq[tok], f->layer);
        const unsigned char *K = c->k + off + (size_t)kvh * hd * c->n_ctx * es;
        const unsigned char *V = c->v + off + (size_t)kvh * hd * c->n_ctx * es;
        const float *q = c->q + (size_t)i * Qd + (size_t)h0 * hd;
        scores(n_kv, hd, gs, q, K, (size_t)c->n_ctx, sc, (size_t)n_kv, scale);
        for (int h = 0; h < gs; h++)
            f->ops->softmax(sc + h * n_kv, n_kv);
        wsum(n_kv, hd, gs, sc, (size_t)n_kv, V, (size_t)c->n_ctx, c->att + (size_t)i * Qd + (size_t)h0 * hd);
    }
}

static void silu_job(void *arg, long lo, long hi) {
    struct fwd *f = arg;
    f->ops->silu_mul(f->c->gate + lo, f->c->up + lo, (size_t)(hi - lo));
}

/* The last residual add and the output norm (rows already compacted to the
 * ones with logits). */
static void final_job(void *arg, long lo, long hi) {
    struct fwd *f = arg;
    hs_ctx *c = f->c;
    const int E = c->hp->n_embd;
    for (long j = lo; j < hi; j++)
        hs_add_rmsnorm(c->xn + j * E, c->x + j * E, c->tmp + j * E, c->m->output_norm, E, c->hp->rms_eps);
}

/* In the last layer, once the cache has its new keys and values, only the
 * rows with logits matter: move their q and x rows to the front (row j from
 * row out_rows[j] >= j, in order, so nothing is overwritten before it is
 * read). Attention then maps row j back to its token through f->rows. */
static void compact_rows(hs_ctx *c) {
    const size_t E = (size_t)c->hp->n_embd, Qd = (size_t)c->hp->n_head * c->hp->head_dim;
    for (int j = 0; j < c->n_out; j++) {
        const int i = c->out_rows[j];
        if (i == j)
            continue;
        memcpy(c->x + j * E, c->x + i * E, E * sizeof(float));
        memcpy(c->q + j * Qd, c->q + i * Qd, Qd * sizeof(float));
    }
}

/* Heads per attention task: the whole group that shares a KV head (up to
 * what one kernel call takes), unless that leaves too few tasks to keep every
 * thread busy, as when one token is decoded with few KV heads. */
static int heads_per_task(const hs_ctx *c, int n) {
    const struct hs_hparams *hp = c->hp;
    const int g = hp->n_head / hp->n_head_kv;
    if ((long)n * hp->n_head_kv < 4L * c->n_threads)
        return 1;
    int gs = g < HS_ATTN_MAX_HEADS ? g : HS_ATTN_MAX_HEADS;
    while (g % gs)
        gs--;
    return gs;
}

/* y = x @ W^T for n rows. In a batch-invariant context the generated tokens
 * (rows [0, n_gen)) and the prompt tokens (the rest) each take their own
 * kernels: two products, each row's result independent of the others. */
static int mm_kinds(hs_ctx *c, const struct hs_mat *w, const float *x, size_t ldx, int n, int n_gen, float *y,
                    size_t ldy) {
    if (!(c->mm_flags & HS_MM_BATCH_INVARIANT))
        return hs_matmul_ex(c->pool, &c->mm, w, x, ldx, n, y, ldy, c->mm_flags);
    int rc = HS_OK;
    if (n_gen > 0)
        rc = hs_matmul_ex(c->pool, &c->mm, w, x, ldx, n_gen, y, ldy, c->mm_flags);
    if (rc == HS_OK && n > n_gen)
        rc = hs_matmul_ex(c->pool, &c->mm, w, x + (size_t)n_gen * ldx, ldx, n - n_gen, y + (size_t)n_gen * ldy, ldy,
                          c->mm_flags | HS_MM_PROMPT);
    return rc;
}

static int matmul(hs_ctx *c, const struct hs_mat *w, enum hs_proj proj, const float *x, int n, int n_gen, float *y,
                  int layer, const char *what, hs_err *err) {
    int rc = mm_kinds(c, w, x, (size_t)w->n_cols, n, n_gen, y, (size_t)w->n_rows);
    if (rc)
        return hs_err_set(err, rc, "matmul %s of layer %d failed: %s", what, layer, hs_err_name(rc));
    if (hs_ctx_lora_by_rows(c))
        hs_ctx_lora_apply_rows(c, layer, proj, x, (size_t)w->n_cols, n, y, (size_t)w->n_rows);
    else if (c->lora)
        return hs_ctx_lora_apply(c, layer, proj, x, (size_t)w->n_cols, n, y, (size_t)w->n_rows, err);
    return HS_OK;
}

int hs_forward(hs_ctx *c, int n, const int32_t *tokens, const int32_t *pos, const int32_t *seq, hs_err *err) {
    const hs_model *m = c->m;
    const struct hs_hparams *hp = c->hp;
    struct fwd f = {.c = c, .ops = hs_ops_get(), .n = n, .tokens = tokens, .pos = pos, .seq = seq};
    int n_gen = c->n_gen; /* rows [0, n_gen) are generated tokens (see mm_kinds) */
    /* Adapters applied row by row: each row takes its sequence's own set,
     * or else the context's. */
    const bool lora_rows = hs_ctx_lora_by_rows(c);
    if (lora_rows)
        for (int i = 0; i < n; i++)
            c->row_lora[i] = c->seq_lora && c->seq_lora[seq[i]] ? c->seq_lora[seq[i]] : c->lora;
    run_rows(c, embed_job, &f, n);
    if (f.err)
        return hs_err_set(err, HS_EUNSUPPORTED, "token_embd rows cannot be read");
    int rc;
    for (int l = 0; l < hp->n_layer; l++) {
        const struct hs_layer *ly = &m->layers[l];
        f.layer = l;
        f.ly = ly;
        f.norm_w = ly->attn_norm;
        f.add = l > 0;
        run_rows(c, norm_job, &f, n);
        if ((rc = matmul(c, &ly->wq, HS_PROJ_Q, c->xn, n, n_gen, c->q, l, "attn_q", err)) ||
            (rc = matmul(c, &ly->wk, HS_PROJ_K, c->xn, n, n_gen, c->kc, l, "attn_k", err)) ||
            (rc = matmul(c, &ly->wv, HS_PROJ_V, c->xn, n, n_gen, c->vc, l, "attn_v", err)))
            return rc;
        run_rows(c, qkv_job, &f, n);
        if (l == hp->n_layer - 1) {
            if (c->n_out == 0)
                return HS_OK;
            compact_rows(c);
            if (lora_rows) /* like x and q: row j from out_rows[j] >= j */
                for (int j = 0; j < c->n_out; j++)
                    c->row_lora[j] = c->row_lora[c->out_rows[j]];
            f.rows = c->out_rows;
            n = f.n = c->n_out;
            int g = 0; /* out_rows ascend: the generated tokens' rows stay first */
            while (g < n && c->out_rows[g] < n_gen)
                g++;
            n_gen = g;
        }
        f.gs = heads_per_task(c, n);
        f.n_groups = hp->n_head / f.gs;
        f.n_tasks = n * f.n_groups;
        atomic_store_explicit(&f.next, 0, memory_order_relaxed);
        /* Tasks come from a counter, so a late thread is not waited for; a
         * handful of short rows (a decode step early in a sequence) is less
         * work than waking the pool. */
        long work = 0;
        for (int i = 0; i < n; i++)
            work += (long)f.pos[f.rows ? f.rows[i] : i] + 1;
        if (work * hp->n_head * hp->head_dim < ATTN_MIN_PARALLEL)
            attn_job(&f, 0, 1);
        else
            hs_pool_run_shared(c->pool, attn_job, &f);
        if ((rc = matmul(c, &ly->wo, HS_PROJ_O, c->att, n, n_gen, c->tmp, l, "attn_output", err)))
            return rc;
        f.norm_w = ly->ffn_norm;
        f.add = true;
        run_rows(c, norm_job, &f, n);
        if ((rc = matmul(c, &ly->w_gate, HS_PROJ_GATE, c->xn, n, n_gen, c->gate, l, "ffn_gate", err)) ||
            (rc = matmul(c, &ly->w_up, HS_PROJ_UP, c->xn, n, n_gen, c->up, l, "ffn_up", err)))
            return rc;
        /* elementwise; 16 KiB of floats per chunk */
        hs_pool_for(c->pool, (long)n * hp->n_ff, 4096, silu_job, &f);
        if ((rc = matmul(c, &ly->w_down, HS_PROJ_DOWN, c->gate, n, n_gen, c->tmp, l, "ffn_down", err)))
            return rc;
    }
    run_rows(c, final_job, &f, n);
    if (c->embd_mode)
        return HS_OK; /* the hidden states stay in xn (hs_ctx_embeddings) */
    rc = mm_kinds(c, &m->output, c->xn, (size_t)hp->n_embd, c->n_out, n_gen, c->logits, (size_t)hp->n_vocab);
    if (rc)
        return hs_err_set(err, rc, "matmul output failed: %s", hs_err_name(rc));
    return HS_OK;
}
