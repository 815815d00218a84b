/* Run-time LoRA: the adapter sets of a context and of its sequence slots,
 * and the delta each adapted projection adds after its matmul (see
 * hs_ctx_set_loras and hs_ctx_seq_set_loras in context.h).
 *
 * The adapters stay unmerged, so the base weights (shared, mapped, maybe
 * quantized) are never touched and any number of contexts and sequences can
 * use different sets. Two ways to apply them:
 *   - hs_ctx_lora_apply: the context's set on every row, A x then B of that
 *     through hs_matmul on f32 views of the adapter's own matrices (an
 *     ordinary context whose slots have no sets of their own);
 *   - hs_ctx_lora_apply_rows: each row its own set, computed row by row so
 *     that a row's result never depends on the others (batch-invariant
 *     contexts, and any context once a slot has a set of its own). */
#include "model/context_impl.h"
#include "model/lora.h"
#include "model/ops.h"

#include "base/mem.h"
#include "tensor/qtype.h"

#include <stdio.h>
#include <string.h>

static const char *const proj_names[HS_PROJ_COUNT] = {"attn_q.weight",   "attn_k.weight", "attn_v.weight",
                                                      "attn_output.weight", "ffn_gate.weight", "ffn_up.weight",
                                                      "ffn_down.weight"};

/* "blk.<l>.<proj>" -> layer and projection; -1 when the name is not one. */
static int parse_name(const char *name, int n_layer, int *layer, enum hs_proj *proj)
{
    if (strncmp(name, "blk.", 4))
        return -1;
    const char *p = name + 4;
    int l = 0, digits = 0;
    while (*p >= '0' && *p <= '9' && digits < 6) {
        l = l * 10 + (*p++ - '0');
        digits++;
    }
    if (!digits || *p != '.' || l >= n_layer)
        return -1;
    for (int i = 0; i < HS_PROJ_COUNT; i++)
        if (!strcmp(p + 1, proj_names[i])) {
            *layer = l;
            *proj = (enum hs_proj)i;
            return 0;
        }
    return -1;
}

static const struct hs_mat *base_mat(const hs_model *m, int layer, enum hs_proj proj)
{
    const struct hs_layer *ly = &m->layers[layer];
    const struct hs_mat *t[HS_PROJ_COUNT] = {&ly->wq, &ly->wk, &ly->wv, &ly->wo, &ly->w_gate, &ly->w_up, &ly->w_down};
    return t[proj];
}

static struct hs_mat f32_view(const float *data, int64_t rows, int64_t cols)
{
    return (struct hs_mat){.type = HS_TYPE_F32, .n_cols = cols, .n_rows = rows, .row_bytes = (size_t)cols * 4,
                           .data = data};
}

/* ---- run-time copies, shared by the sets of a context ----
 *
 * The per-row update (see "a set per row" below) reads A (r, in) and B^T
 * (r, out): the second a transposed copy of B. Where every value of A and B
 * is exactly a half float (an adapter written as F16, as llama.cpp's
 * converter writes them by default), both are kept as f16: the same numbers
 * in half the bytes, which is what a step that mixes a dozen adapters is
 * bound by; otherwise A is the adapter's own f32 and B^T an f32 copy. The
 * scan stops at the first value that does not fit, so an f32 adapter costs
 * nothing more. A context keeps one copy per adapted matrix, counted by the
 * sets that use it: many slots running the same adapter share it, and it
 * goes when the last of them does (so a freed adapter's address, reused by
 * a new one, never finds a stale copy). */
struct hs_lora_bt {
    const void *b; /* the adapter's B: the key */
    bool f16;      /* a and bt hold hs_fp16 */
    void *a;       /* f16: a copy of A (r, in); else NULL (the adapter's own A) */
    void *bt;      /* B^T (r, out), f16 or f32 */
    int refs;
};

static bool fits_f16(const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const float back = hs_fp16_to_f32(hs_f32_to_fp16(v[i]));
        if (memcmp(&back, &v[i], sizeof back))
            return false;
    }
    return true;
}

static struct hs_lora_bt *bt_get(hs_ctx *c, const struct hs_lora_mat *lm)
{
    const struct hs_mat *a = &lm->a, *b = &lm->b;
    for (int i = 0; i < c->n_bt; i++)
        if (c->bts[i]->b == b->data) {
            c->bts[i]->refs++;
            return c->bts[i];
        }
    if (c->n_bt == c->cap_bt) {
        const int cap = c->cap_bt ? 2 * c->cap_bt : 64;
        struct hs_lora_bt **nb = hs_realloc(c->bts, (size_t)cap * sizeof *nb);
        if (!nb)
            return NULL;
        c->bts = nb;
        c->cap_bt = cap;
    }
    struct hs_lora_bt *e = hs_calloc(1, sizeof *e);
    if (!e)
        return NULL;
    const size_t out = (size_t)b->n_rows, r = (size_t)b->n_cols, in = (size_t)a->n_cols;
    const float *sa = a->data, *sb = b->data;
    e->f16 = fits_f16(sa, r * in) && fits_f16(sb, out * r);
    e->bt = hs_malloc(out * r * (e->f16 ? sizeof(hs_fp16) : sizeof(float)));
    if (e->f16)
        e->a = hs_malloc(r * in * sizeof(hs_fp16));
    if (!e->bt || (e->f16 && !e->a)) {
        hs_free(e->bt);
        hs_free(e->a);
        hs_free(e);
        return NULL;
    }
    if (e->f16) {
        hs_fp16 *da = e->a, *dbt = e->bt;
        for (size_t i = 0; i < r * in; i++)
            da[i] = hs_f32_to_fp16(sa[i]);
        for (size_t o = 0; o < out; o++)
            for (size_t k = 0; k < r; k++)
                dbt[k * out + o] = hs_f32_to_fp16(sb[o * r + k]);
    } else {
        float *dbt = e->bt;
        for (size_t o = 0; o < out; o++)
            for (size_t k = 0; k < r; k++)
                dbt[k * out + o] = sb[o * r + k];
    }
    e->b = b->data;
    e->refs = 1;
    c->bts[c->n_bt++] = e;
    return e;
}

static void bt_put(hs_ctx *c, struct hs_lora_bt *e)
{
    if (!e || --e->refs > 0)
        return;
    for (int i = 0; i < c->n_bt; i++)
        if (c->bts[i] == e) {
            c->bts[i] = c->bts[--c->n_bt];
            break;
        }
    hs_free(e->a);
    hs_free(e->bt);
    hs_free(e);
}

static void set_free(hs_ctx *c, struct hs_ctx_lora *l)
{
    if (!l)
        return;
    for (int k = 0; k < l->n_mats; k++)
        bt_put(c, l->mats[k].bt);
    hs_free(l->mats);
    hs_free(l->key_first);
    hs_free(l->key_r);
    hs_free(l->t);
    hs_free(l->u);
    hs_free(l);
}

void hs_ctx_loras_free(hs_ctx *c)
{
    set_free(c, c->lora);
    c->lora = NULL;
    for (int s = 0; c->seq_lora && s < c->n_seq; s++)
        set_free(c, c->seq_lora[s]);
    hs_free(c->seq_lora);
    c->seq_lora = NULL;
    c->n_seq_lora = 0;
    hs_free(c->row_lora);
    c->row_lora = NULL;
    hs_free(c->lora_grp);
    c->lora_grp = NULL;
    hs_free(c->lora_t);
    c->lora_t = NULL;
    c->lora_t_r = 0;
    hs_free(c->bts);
    c->bts = NULL;
    c->n_bt = c->cap_bt = 0;
}

/* Checks the adapters against the model and builds their set (NULL when they
 * adapt nothing). Its mats go in (layer, proj) order by a counting sort,
 * which keeps the adapters' order within one projection, so the deltas add
 * up in the order they always did. scratch: the t and u buffers of
 * hs_ctx_lora_apply (the context's set only). */
static int build_set(hs_ctx *c, const struct hs_lora *const *loras, const float *scales, int n, bool scratch,
                     struct hs_ctx_lora **out, hs_err *err)
{
    const hs_model *m = c->m;
    *out = NULL;
    int64_t total = 0;
    for (int i = 0; i < n; i++)
        total += hs_lora_n_pairs(loras[i]);
    if (total == 0)
        return HS_OK;
    const int n_keys = c->hp->n_layer * HS_PROJ_COUNT;
    struct hs_ctx_lora *l = hs_calloc(1, sizeof *l);
    struct hs_lora_mat *in = hs_calloc((size_t)total, sizeof *in);
    if (!l || !in || !(l->mats = hs_calloc((size_t)total, sizeof *l->mats)) ||
        !(l->key_first = hs_calloc((size_t)n_keys + 1, sizeof *l->key_first)) ||
        !(l->key_r = hs_calloc((size_t)n_keys, sizeof *l->key_r))) {
        hs_free(in);
        set_free(c, l);
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    }
    int64_t max_out = 1;
    for (int i = 0; i < n; i++) {
        for (int64_t j = 0; j < hs_lora_n_pairs(loras[i]); j++) {
            const struct hs_lora_pair *p = hs_lora_pair_at(loras[i], j);
            struct hs_lora_mat *lm = &in[l->n_mats];
            if (parse_name(p->name, c->hp->n_layer, &lm->layer, &lm->proj)) {
                hs_free(in);
                set_free(c, l);
                return hs_err_set(err, HS_EUNSUPPORTED, "%s: tensor '%s' cannot be adapted at run time (merge instead)",
                                  hs_lora_path(loras[i]), p->name);
            }
            const struct hs_mat *w = base_mat(m, lm->layer, lm->proj);
            if (w->n_cols != p->n_in || w->n_rows != p->n_out) {
                hs_free(in);
                set_free(c, l);
                return hs_err_set(err, HS_EINVAL, "%s: adapter for another base model: %s is [%lld, %lld] in the model but [%lld, %lld] in the adapter",
                                  hs_lora_path(loras[i]), p->name, (long long)w->n_cols, (long long)w->n_rows,
                                  (long long)p->n_in, (long long)p->n_out);
            }
            lm->a = f32_view(p->a, p->r, p->n_in);
            lm->b = f32_view(p->b, p->n_out, p->r);
            lm->scale = hs_lora_pair_scale(loras[i], p, scales ? scales[i] : 1.0f);
            if (p->r > l->max_r)
                l->max_r = (int)p->r;
            if (p->n_out > max_out)
                max_out = p->n_out;
            l->n_mats++;
        }
    }
    for (int k = 0; k < l->n_mats; k++) {
        const int key = in[k].layer * HS_PROJ_COUNT + (int)in[k].proj;
        l->key_first[key + 1]++;
        if (in[k].scale != 0)
            l->key_r[key] += (int)in[k].a.n_rows;
    }
    for (int key = 0; key < n_keys; key++) {
        l->key_first[key + 1] += l->key_first[key];
        if (l->key_r[key] > l->max_key_r)
            l->max_key_r = l->key_r[key];
    }
    int *fill = hs_calloc((size_t)n_keys, sizeof *fill);
    if (!fill) {
        hs_free(in);
        set_free(c, l);
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    }
    for (int k = 0; k < l->n_mats; k++) {
        const int key = in[k].layer * HS_PROJ_COUNT + (int)in[k].proj;
        l->mats[l->key_first[key] + fill[key]++] = in[k];
    }
    hs_free(fill);
    hs_free(in);
    for (int k = 0; k < l->n_mats; k++)
        if (!(l->mats[k].bt = bt_get(c, &l->mats[k]))) {
            set_free(c, l);
            return hs_err_set(err, HS_ENOMEM, "out of memory");
        }
    if (scratch) {
        l->t = hs_malloc((size_t)c->n_batch * (size_t)l->max_r * sizeof(float));
        l->u = hs_malloc((size_t)c->n_batch * (size_t)max_out * sizeof(float));
        if (!l->t || !l->u) {
            set_free(c, l);
            return hs_err_set(err, HS_ENOMEM, "out of memory");
        }
    }
    *out = l;
    return HS_OK;
}

/* Room in lora_t for r values of A x per row. */
static int reserve_t(hs_ctx *c, int r, hs_err *err)
{
    if (r <= c->lora_t_r)
        return HS_OK;
    float *t = hs_malloc((size_t)c->n_batch * (size_t)r * sizeof(float));
    if (!t)
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    hs_free(c->lora_t);
    c->lora_t = t;
    c->lora_t_r = r;
    return HS_OK;
}

/* The per-slot sets and the per-row set pointers, at the first call. */
static int alloc_rows(hs_ctx *c, hs_err *err)
{
    if (c->seq_lora)
        return HS_OK;
    c->seq_lora = hs_calloc((size_t)c->n_seq, sizeof *c->seq_lora);
    c->row_lora = hs_calloc((size_t)c->n_batch, sizeof *c->row_lora);
    c->lora_grp = hs_calloc((size_t)c->n_batch + 1, sizeof *c->lora_grp);
    if (!c->seq_lora || !c->row_lora || !c->lora_grp) {
        hs_free(c->seq_lora);
        hs_free(c->row_lora);
        hs_free(c->lora_grp);
        c->seq_lora = NULL;
        c->row_lora = NULL;
        c->lora_grp = NULL;
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    }
    return HS_OK;
}

int hs_ctx_set_loras(hs_ctx *c, const struct hs_lora *const *loras, const float *scales, int n, hs_err *err)
{
    struct hs_ctx_lora *l;
    int rc = alloc_rows(c, err);
    if (rc)
        return rc;
    rc = build_set(c, loras, scales, n, true, &l, err);
    if (!rc && l)
        rc = reserve_t(c, l->max_key_r, err);
    if (rc) {
        set_free(c, l);
        return rc;
    }
    set_free(c, c->lora);
    c->lora = l;
    return HS_OK;
}

int hs_ctx_seq_set_loras(hs_ctx *c, int seq, const struct hs_lora *const *loras, const float *scales, int n,
                         hs_err *err)
{
    if (seq < 0 || seq >= c->n_seq)
        return hs_err_set(err, HS_EINVAL, "sequence %d is outside [0, %d)", seq, c->n_seq);
    struct hs_ctx_lora *l;
    int rc = alloc_rows(c, err);
    if (rc)
        return rc;
    rc = build_set(c, loras, scales, n, false, &l, err);
    if (!rc && l)
        rc = reserve_t(c, l->max_key_r, err);
    if (rc) {
        set_free(c, l);
        return rc;
    }
    c->n_seq_lora += (l != NULL) - (c->seq_lora[seq] != NULL);
    set_free(c, c->seq_lora[seq]);
    c->seq_lora[seq] = l;
    return HS_OK;
}

int hs_ctx_lora_apply(hs_ctx *c, int layer, enum hs_proj proj, const float *x, size_t ldx, int n, float *y,
                      size_t ldy, hs_err *err)
{
    struct hs_ctx_lora *l = c->lora;
    for (int k = 0; l && k < l->n_mats; k++) {
        const struct hs_lora_mat *lm = &l->mats[k];
        if (lm->layer != layer || lm->proj != proj || lm->scale == 0)
            continue;
        const size_t r = (size_t)lm->a.n_rows, out = (size_t)lm->b.n_rows;
        int rc = hs_matmul_ex(c->pool, &c->mm, &lm->a, x, ldx, n, l->t, r, c->mm_flags);
        if (!rc)
            rc = hs_matmul_ex(c->pool, &c->mm, &lm->b, l->t, r, n, l->u, out, c->mm_flags);
        if (rc)
            return hs_err_set(err, rc, "LoRA matmul %s of layer %d failed: %s", proj_names[proj], layer,
                              hs_err_name(rc));
        for (int i = 0; i < n; i++)
            for (size_t j = 0; j < out; j++)
                y[(size_t)i * ldy + j] += lm->scale * l->u[(size_t)i * out + j];
    }
    return HS_OK;
}

/* ---- a set per row ----
 *
 * The rows of a call are cut into groups: runs of at most GMAX consecutive
 * rows that share one set (a prompt's rows; decode rows of one agent that
 * were admitted one after another). Two passes over the pool, each over a
 * flat range of independent items:
 *   1. (group, adapter a of the set): t_a = A_a x for each row of the group,
 *      one call of the attention kernels' weighted sum (ops.h: the rows of A
 *      as rows of V, the group's rows of x as the softmax rows), which
 *      reads A once for the group;
 *   2. (group, block of OBB outputs): u = scale_a * B_a t_a for each
 *      adapter a of the set in order, one call of the score kernel (the
 *      rows of B^T as the transposed keys, t_a as the queries), then
 *      y += u for each row.
 * Both kernels compute every output from its own row alone by a sequence
 * of operations that depends on neither the number of rows in the call nor
 * the others' values, and the output blocks are fixed by the matrix's
 * shape; so a row's result does not depend on which rows share its group,
 * its call or its batch, nor on how the items are cut into chunks.
 *
 * t_a of group G sits in lora_t at G's first row * R + g * (ranks of the
 * set's earlier adapters), g rows of r_a values: the layout the kernels
 * read and write (R is the most stacked ranks of any row of the call, so a
 * group's g rows have g * R floats). */

/* Rows per group: the kernels' most heads per call. */
#define GMAX HS_ATTN_MAX_HEADS
/* Outputs per item of pass 2. */
#define OBB 256

struct rows_job {
    hs_ctx *c;
    int key;
    const float *x;
    size_t ldx;
    float *y;
    size_t ldy;
    long R;          /* see above */
    long n_grp;      /* groups; c->lora_grp[0 .. n_grp] their first rows */
    long M;          /* most adapters of any set for this key */
    long n_in, n_out, n_blk;
    const struct hs_ops *ops;
};

/* Group gi's rows [*i0, *i0 + *g), their set (NULL: none) and where its
 * t values start. */
static const struct hs_ctx_lora *group(const struct rows_job *j, long gi, int *i0, int *g, float **t)
{
    *i0 = j->c->lora_grp[gi];
    *g = j->c->lora_grp[gi + 1] - *i0;
    *t = j->c->lora_t + (size_t)*i0 * (size_t)j->R;
    return j->c->row_lora[*i0];
}

static void rows_a_job(void *arg, long lo, long hi)
{
    const struct rows_job *j = arg;
    for (long idx = lo; idx < hi; idx++) {
        const long gi = idx / j->M, slot = idx % j->M;
        int i0, g;
        float *t;
        const struct hs_ctx_lora *l = group(j, gi, &i0, &g, &t);
        if (!l || slot >= l->key_first[j->key + 1] - l->key_first[j->key])
            continue;
        long r0 = 0;
        const int k0 = l->key_first[j->key];
        for (int k = k0; k < k0 + slot; k++)
            if (l->mats[k].scale != 0)
                r0 += l->mats[k].a.n_rows;
        const struct hs_lora_mat *lm = &l->mats[k0 + slot];
        if (lm->scale == 0)
            continue;
        const int r = (int)lm->a.n_rows;
        const bool f16 = lm->bt->f16;
        (f16 ? j->ops->wsum_f16 : j->ops->wsum_f32)((int)j->n_in, r, g, j->x + (size_t)i0 * j->ldx, j->ldx,
                                                     f16 ? lm->bt->a : lm->a.data, (size_t)j->n_in,
                                                     t + (size_t)g * (size_t)r0);
    }
}

static void rows_b_job(void *arg, long lo, long hi)
{
    const struct rows_job *j = arg;
    float u[GMAX * OBB];
    for (long idx = lo; idx < hi; idx++) {
        const long gi = idx / j->n_blk, o0 = idx % j->n_blk * OBB;
        const int nb = (int)(j->n_out - o0 < OBB ? j->n_out - o0 : OBB);
        int i0, g;
        float *t;
        const struct hs_ctx_lora *l = group(j, gi, &i0, &g, &t);
        if (!l)
            continue;
        for (int k = l->key_first[j->key]; k < l->key_first[j->key + 1]; k++) {
            const struct hs_lora_mat *lm = &l->mats[k];
            if (lm->scale == 0)
                continue;
            const int r = (int)lm->b.n_cols;
            const bool f16 = lm->bt->f16;
            const void *bt = f16 ? (const void *)((const hs_fp16 *)lm->bt->bt + o0)
                                 : (const void *)((const float *)lm->bt->bt + o0);
            (f16 ? j->ops->scores_f16 : j->ops->scores_f32)(nb, r, g, t, bt, (size_t)j->n_out, u, OBB, lm->scale);
            for (int h = 0; h < g; h++) {
                float *y = j->y + (size_t)(i0 + h) * j->ldy + (size_t)o0;
                const float *uh = u + (size_t)h * OBB;
                for (int o = 0; o < nb; o++)
                    y[o] += uh[o];
            }
            t += (size_t)g * (size_t)r;
        }
    }
}

void hs_ctx_lora_apply_rows(hs_ctx *c, int layer, enum hs_proj proj, const float *x, size_t ldx, int n, float *y,
                            size_t ldy)
{
    const int key = layer * HS_PROJ_COUNT + (int)proj;
    long R = 0, M = 0, n_grp = 0;
    for (int i = 0; i < n; i++) {
        const struct hs_ctx_lora *l = c->row_lora[i];
        if (l && l->key_r[key] > R)
            R = l->key_r[key];
        if (l && l->key_first[key + 1] - l->key_first[key] > M)
            M = l->key_first[key + 1] - l->key_first[key];
        if (i == 0 || l != c->row_lora[i - 1] || i - c->lora_grp[n_grp - 1] == GMAX)
            c->lora_grp[n_grp++] = i;
    }
    if (R == 0)
        return;
    c->lora_grp[n_grp] = n;
    const struct hs_mat *w = base_mat(c->m, layer, proj);
    struct rows_job j = {.c = c, .key = key, .x = x, .ldx = ldx, .y = y, .ldy = ldy, .R = R, .n_grp = n_grp,
                         .M = M, .n_in = (long)w->n_cols, .n_out = (long)w->n_rows,
                         .n_blk = ((long)w->n_rows + OBB - 1) / OBB, .ops = hs_ops_get()};
    /* An item of pass 1 is at least r * n_in multiply-adds, of pass 2 r * OBB. */
    hs_pool_for(c->pool, n_grp * M, 1, rows_a_job, &j);
    hs_pool_for(c->pool, n_grp * j.n_blk, 4, rows_b_job, &j);
}
