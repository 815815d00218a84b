/* Run-time LoRA: the context's adapter set and the delta each adapted
 * projection adds after its matmul (see hs_ctx_set_loras in context.h).
 *
 * The adapters stay unmerged: A x is a small (n, r) product, then B of that
 * an (n, out) one, both through hs_matmul on f32 views of the adapter's own
 * matrices, so the base weights (shared, mapped, maybe quantized) are never
 * touched and any number of contexts can use different sets. */
#include "model/context_impl.h"
#include "model/lora.h"

#include "base/mem.h"

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

void hs_ctx_lora_free(struct hs_ctx_lora *l)
{
    if (!l)
        return;
    hs_free(l->mats);
    hs_free(l->t);
    hs_free(l->u);
    hs_free(l);
}

int hs_ctx_set_loras(hs_ctx *c, const struct hs_lora *const *loras, const float *scales, int n, hs_err *err)
{
    const hs_model *m = c->m;
    int64_t total = 0;
    for (int i = 0; i < n; i++)
        total += hs_lora_n_pairs(loras[i]);
    if (total == 0) {
        hs_ctx_lora_free(c->lora);
        c->lora = NULL;
        return HS_OK;
    }
    struct hs_ctx_lora *l = hs_calloc(1, sizeof *l);
    if (!l || !(l->mats = hs_calloc((size_t)total, sizeof *l->mats))) {
        hs_ctx_lora_free(l);
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    }
    int64_t max_out = 1;
    for (int i = 0; i < n; i++) {
        for (int64_t j = 0; j < hs_lora_n_pairs(loras[i]); j++) {
            const struct hs_lora_pair *p = hs_lora_pair_at(loras[i], j);
            struct hs_lora_mat *lm = &l->mats[l->n_mats];
            if (parse_name(p->name, c->hp->n_layer, &lm->layer, &lm->proj)) {
                hs_ctx_lora_free(l);
                return hs_err_set(err, HS_EUNSUPPORTED, "%s: tensor '%s' cannot be adapted at run time (merge instead)",
                                  hs_lora_path(loras[i]), p->name);
            }
            const struct hs_mat *w = base_mat(m, lm->layer, lm->proj);
            if (w->n_cols != p->n_in || w->n_rows != p->n_out) {
                hs_ctx_lora_free(l);
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
    l->t = hs_malloc((size_t)c->n_batch * (size_t)l->max_r * sizeof(float));
    l->u = hs_malloc((size_t)c->n_batch * (size_t)max_out * sizeof(float));
    if (!l->t || !l->u) {
        hs_ctx_lora_free(l);
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    }
    hs_ctx_lora_free(c->lora);
    c->lora = l;
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
