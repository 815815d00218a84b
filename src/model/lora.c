/* LoRA adapters (see lora.h). */
#include "model/lora.h"

#include "model/convert.h"

#include "base/fp16.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/parse.h"
#include "gguf/safetensors.h"
#include "tensor/qtype.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- shared helpers ---- */

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

static char *tmp_name(const char *out)
{
    size_t n = strlen(out) + 32;
    char *t = hs_malloc(n);
    if (t)
        snprintf(t, n, "%s.tmp-%ld", out, (long)getpid());
    return t;
}

/* Closes w and renames tmp to out; on any failure nothing is left behind. */
static int finish(hs_gguf_writer *w, const char *tmp, const char *out, hs_err *err)
{
    int rc = hs_gguf_w_close(w, err);
    if (rc)
        return rc;
    if (rename(tmp, out) != 0) {
        unlink(tmp);
        return hs_err_set(err, HS_EIO, "%s: cannot rename the finished file into place", out);
    }
    return HS_OK;
}

/* Row-major f32 copy of a 2-D GGUF tensor of any type with a to_float. */
static int tensor_to_f32(const char *file, const struct hs_gguf_tensor *t, float **out, hs_err *err)
{
    const struct hs_qtype *qt = hs_qtype((int)t->type);
    if (!qt || !qt->to_float)
        return hs_err_set(err, HS_EUNSUPPORTED, "%s: tensor '%s' has a type without a dequantizer", file, t->name);
    int64_t n = t->ne[0] * t->ne[1];
    float *f = hs_malloc((size_t)n * sizeof *f);
    if (!f)
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    qt->to_float(t->data, f, n);
    *out = f;
    return HS_OK;
}

static int str_key(const hs_gguf *g, const char *key, char *out, size_t cap)
{
    const char *s;
    size_t len;
    if (hs_gguf_get_str(g, key, &s, &len, NULL) || len >= cap)
        return HS_ENOTFOUND;
    memcpy(out, s, len);
    out[len] = 0;
    return HS_OK;
}

/* ---- PEFT folder -> GGUF ---- */

struct conv_item {
    char name[96]; /* base tensor name */
    const struct hs_st_tensor *a, *b;
    const struct hs_gguf_tensor *base;
    int perm_heads; /* > 0: permute B's rows in this many heads */
};

static int read_adapter_config(const char *path, int64_t *r, double *alpha, hs_err *err)
{
    if (access(path, F_OK) != 0)
        return hs_err_set(err, HS_EIO, "%s: missing (a PEFT adapter folder has an adapter_config.json)", path);
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return hs_err_set(err, HS_EFORMAT, "%s: line %d column %d: %s", path, je.line, je.column, je.text);
    int rc = HS_OK;
    json_t *jr = json_object_get(root, "r"), *ja = json_object_get(root, "lora_alpha");
    json_t *tm = json_object_get(root, "target_modules");
    if (!json_is_object(root))
        rc = hs_err_set(err, HS_EFORMAT, "%s: not a JSON object", path);
    else if (!json_is_integer(jr) || json_integer_value(jr) <= 0 || json_integer_value(jr) > 65536)
        rc = hs_err_set(err, HS_EFORMAT, "%s: field 'r' is missing or not an integer in [1, 65536]", path);
    else if (!json_is_number(ja) || json_number_value(ja) < 0)
        rc = hs_err_set(err, HS_EFORMAT, "%s: field 'lora_alpha' is missing or not a non-negative number", path);
    else if (tm && !json_is_null(tm) && !json_is_array(tm) && !json_is_string(tm))
        rc = hs_err_set(err, HS_EFORMAT, "%s: field 'target_modules' is not a list of names", path);
    if (!rc) {
        *r = json_integer_value(jr);
        *alpha = json_number_value(ja);
    }
    json_decref(root);
    return rc;
}

static void shape_str(char *out, size_t cap, const struct hs_st_tensor *t)
{
    int k = snprintf(out, cap, "[");
    for (uint32_t i = 0; i < t->n_dims && k < (int)cap - 24; i++)
        k += snprintf(out + k, cap - (size_t)k, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
    snprintf(out + k, cap - (size_t)k, "]");
}

/* PEFT "base_model.model.<hf module>.lora_{A,B}.weight" -> base GGUF name and
 * which half; HS_EUNSUPPORTED for a name that is not a LoRA half. */
static int map_peft(const char *peft, char *out, size_t cap, int *is_b)
{
    const char *pre = "base_model.model.";
    size_t lp = strlen(pre), n = strlen(peft);
    const char *sa = ".lora_A.weight", *sb = ".lora_B.weight";
    size_t ls = strlen(sa);
    if (strncmp(peft, pre, lp) || n < lp + ls)
        return HS_EUNSUPPORTED;
    if (!strcmp(peft + n - ls, sa))
        *is_b = 0;
    else if (!strcmp(peft + n - ls, sb))
        *is_b = 1;
    else
        return HS_EUNSUPPORTED;
    char hf[256];
    size_t m = n - lp - ls;
    if (m + 8 >= sizeof hf)
        return HS_EUNSUPPORTED;
    memcpy(hf, peft + lp, m);
    memcpy(hf + m, ".weight", 8);
    int layer;
    return hs_convert_map_name(hf, out, cap, &layer) == HS_OK ? HS_OK : HS_EUNSUPPORTED;
}

static int plan_convert(const hs_st *st, const char *st_path, const hs_gguf *base, const char *base_path, int64_t r,
                        bool permute, int n_head, int n_head_kv, struct conv_item **out, int64_t *n_out, hs_err *err)
{
    int64_t n = hs_st_n_tensors(st), k = 0;
    struct conv_item *items = hs_calloc(n ? (size_t)n : 1, sizeof *items);
    if (!items)
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    int rc = HS_OK;
    for (int64_t i = 0; i < n && !rc; i++) {
        const struct hs_st_tensor *t = hs_st_tensor_at(st, i);
        char name[96];
        int is_b;
        if (map_peft(t->name, name, sizeof name, &is_b)) {
            rc = hs_err_set(err, HS_EUNSUPPORTED, "%s: tensor '%s' is not a LoRA A/B matrix of a module hestia knows",
                            st_path, t->name);
            break;
        }
        struct conv_item *it = NULL;
        for (int64_t j = 0; j < k; j++)
            if (!strcmp(items[j].name, name))
                it = &items[j];
        if (!it) {
            it = &items[k++];
            snprintf(it->name, sizeof it->name, "%s", name);
            it->base = hs_gguf_find_tensor(base, name);
            if (!it->base || it->base->n_dims != 2) {
                rc = hs_err_set(err, HS_EFORMAT, "%s: adapter for another base model: tensor '%s' (from '%s') is not a matrix in %s",
                                st_path, name, t->name, base_path);
                break;
            }
            const char *s = strchr(name + 4, '.') + 1;
            if (permute && !strcmp(s, "attn_q.weight"))
                it->perm_heads = n_head;
            if (permute && !strcmp(s, "attn_k.weight"))
                it->perm_heads = n_head_kv;
        }
        if ((is_b ? it->b : it->a)) {
            rc = hs_err_set(err, HS_EFORMAT, "%s: tensor '%s' appears twice", st_path, t->name);
            break;
        }
        if (is_b)
            it->b = t;
        else
            it->a = t;
        const int64_t in = it->base->ne[0], outr = it->base->ne[1];
        char got[96];
        shape_str(got, sizeof got, t);
        if (t->n_dims != 2) {
            rc = hs_err_set(err, HS_EFORMAT, "%s: tensor '%s' has shape %s, not a matrix", st_path, t->name, got);
        } else if (!is_b && t->shape[1] != in) {
            rc = hs_err_set(err, HS_EFORMAT,
                            "%s: adapter for another base model: %s is [%lld, %lld] in the base but the adapter's A has %lld columns",
                            st_path, name, (long long)in, (long long)outr, (long long)t->shape[1]);
        } else if (is_b && t->shape[0] != outr) {
            rc = hs_err_set(err, HS_EFORMAT,
                            "%s: adapter for another base model: %s is [%lld, %lld] in the base but the adapter's B has %lld rows",
                            st_path, name, (long long)in, (long long)outr, (long long)t->shape[0]);
        } else if (t->shape[is_b ? 1 : 0] != r) {
            rc = hs_err_set(err, HS_EFORMAT, "%s: tensor '%s' has shape %s but adapter_config.json says r = %lld", st_path,
                            t->name, got, (long long)r);
        } else if (is_b && it->perm_heads && outr % (2 * it->perm_heads)) {
            rc = hs_err_set(err, HS_EFORMAT, "%s: %s has %lld rows, not a whole number of rotary heads", base_path, name,
                            (long long)outr);
        }
    }
    for (int64_t j = 0; j < k && !rc; j++)
        if (!items[j].a || !items[j].b)
            rc = hs_err_set(err, HS_EFORMAT, "%s: %s has a lora_%c but no lora_%c", st_path, items[j].name,
                            items[j].a ? 'A' : 'B', items[j].a ? 'B' : 'A');
    if (!rc && k == 0)
        rc = hs_err_set(err, HS_EFORMAT, "%s: no LoRA tensors", st_path);
    if (rc) {
        hs_free(items);
        return rc;
    }
    *out = items;
    *n_out = k;
    return HS_OK;
}

static void st_row_to_f32(const struct hs_st_tensor *t, int64_t row, float *dst)
{
    const int64_t cols = t->shape[1];
    const size_t es = t->type == HS_TYPE_F32 ? 4 : 2;
    const uint8_t *src = (const uint8_t *)t->data + (size_t)row * (size_t)cols * es;
    for (int64_t i = 0; i < cols; i++) {
        if (t->type == HS_TYPE_F32) {
            memcpy(&dst[i], src + 4 * i, 4);
        } else {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            dst[i] = t->type == HS_TYPE_F16 ? hs_fp16_to_f32(h) : hs_bf16_to_f32(h);
        }
    }
}

/* Row s of B lands in row r of the GGUF B (the base's Q/K permutation). */
static int64_t perm_src_row(int64_t r, int64_t rows, int heads)
{
    int64_t hd = rows / heads, h = r / hd, w = r % hd;
    return h * hd + (w % 2) * (hd / 2) + w / 2;
}

static int write_st_tensor(hs_gguf_writer *w, const struct hs_st_tensor *t, int perm_heads, uint32_t type, float *fbuf,
                           uint16_t *hbuf, hs_err *err)
{
    const int64_t rows = t->shape[0], cols = t->shape[1];
    for (int64_t r = 0; r < rows; r++) {
        st_row_to_f32(t, perm_heads ? perm_src_row(r, rows, perm_heads) : r, fbuf);
        int rc;
        if (type == HS_TYPE_F32) {
            rc = hs_gguf_w_data(w, fbuf, (size_t)cols * 4, err);
        } else {
            for (int64_t i = 0; i < cols; i++)
                hbuf[i] = hs_f32_to_fp16(fbuf[i]);
            rc = hs_gguf_w_data(w, hbuf, (size_t)cols * 2, err);
        }
        if (rc)
            return rc;
    }
    return HS_OK;
}

int hs_lora_convert(const struct hs_lora_convert_opts *o, hs_err *err)
{
    uint32_t type = o->outtype ? o->outtype : HS_TYPE_F32;
    if (type != HS_TYPE_F32 && type != HS_TYPE_F16)
        return hs_err_set(err, HS_EINVAL, "adapter output type %u is not f32 or f16", type);
    char *cpath = path_join(o->peft_dir, "adapter_config.json");
    char *spath = path_join(o->peft_dir, "adapter_model.safetensors");
    char *tmp = tmp_name(o->out_path);
    hs_st *st = NULL;
    hs_gguf *base = NULL;
    hs_gguf_writer *w = NULL;
    struct conv_item *items = NULL;
    int64_t n_items = 0, r = 0;
    double alpha = 0;
    float *fbuf = NULL;
    uint16_t *hbuf = NULL;
    int rc;
    if (!cpath || !spath || !tmp) {
        rc = hs_err_set(err, HS_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = read_adapter_config(cpath, &r, &alpha, err)) || (rc = hs_st_open(spath, &st, err)) ||
        (rc = hs_gguf_open(o->base_path, &base, err)))
        goto out;
    char arch[32];
    if (str_key(base, "general.architecture", arch, sizeof arch)) {
        rc = hs_err_set(err, HS_EFORMAT, "%s: no 'general.architecture'", o->base_path);
        goto out;
    }
    char key[96];
    uint32_t n_head = 0, n_head_kv = 0;
    snprintf(key, sizeof key, "%s.attention.head_count", arch);
    if (hs_gguf_get_u32(base, key, &n_head, NULL) || n_head == 0) {
        rc = hs_err_set(err, HS_EFORMAT, "%s: no '%s'", o->base_path, key);
        goto out;
    }
    snprintf(key, sizeof key, "%s.attention.head_count_kv", arch);
    if (hs_gguf_get_u32(base, key, &n_head_kv, NULL) || n_head_kv == 0)
        n_head_kv = n_head;
    if ((rc = plan_convert(st, spath, base, o->base_path, r, !strcmp(arch, "llama"), (int)n_head, (int)n_head_kv,
                           &items, &n_items, err)))
        goto out;
    int64_t max_cols = 1;
    for (int64_t i = 0; i < n_items; i++) {
        if (items[i].a->shape[1] > max_cols)
            max_cols = items[i].a->shape[1];
        if (items[i].b->shape[1] > max_cols)
            max_cols = items[i].b->shape[1];
    }
    fbuf = hs_malloc((size_t)max_cols * sizeof *fbuf);
    hbuf = hs_malloc((size_t)max_cols * sizeof *hbuf);
    if (!fbuf || !hbuf) {
        rc = hs_err_set(err, HS_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = hs_gguf_writer_open(tmp, &w, err)))
        goto out;
    hs_gguf_w_str(w, "general.architecture", arch, strlen(arch));
    hs_gguf_w_str(w, "general.type", "adapter", 7);
    hs_gguf_w_str(w, "adapter.type", "lora", 4);
    hs_gguf_w_f32(w, "adapter.lora.alpha", (float)alpha);
    hs_gguf_w_u32(w, "general.file_type", type == HS_TYPE_F32 ? 0 : 1);
    for (int64_t i = 0; i < n_items; i++) {
        char tn[128];
        int64_t ne_a[2] = {items[i].a->shape[1], items[i].a->shape[0]};
        int64_t ne_b[2] = {items[i].b->shape[1], items[i].b->shape[0]};
        snprintf(tn, sizeof tn, "%s.lora_a", items[i].name);
        hs_gguf_w_tensor(w, tn, type, 2, ne_a);
        snprintf(tn, sizeof tn, "%s.lora_b", items[i].name);
        hs_gguf_w_tensor(w, tn, type, 2, ne_b);
    }
    if ((rc = hs_gguf_w_begin_data(w, err)))
        goto out;
    for (int64_t i = 0; i < n_items; i++) {
        if ((rc = write_st_tensor(w, items[i].a, 0, type, fbuf, hbuf, err)) ||
            (rc = write_st_tensor(w, items[i].b, items[i].perm_heads, type, fbuf, hbuf, err))) {
            hs_err_prefix(err, "writing %s: ", items[i].name);
            goto out;
        }
    }
    rc = finish(w, tmp, o->out_path, err);
    w = NULL;
    if (!rc)
        hs_log_info("lora.convert", "in=%s out=%s tensors=%lld r=%lld alpha=%g", o->peft_dir, o->out_path,
                    (long long)n_items, (long long)r, alpha);
out:
    if (w)
        hs_gguf_w_abort(w);
    hs_gguf_close(base);
    hs_st_close(st);
    hs_free(items);
    hs_free(fbuf);
    hs_free(hbuf);
    hs_free(tmp);
    hs_free(spath);
    hs_free(cpath);
    return rc;
}

/* ---- loading an adapter GGUF ---- */

struct hs_lora {
    char *path;
    float alpha;
    struct hs_lora_pair *pairs;
    int64_t n_pairs;
};

void hs_lora_free(hs_lora *l)
{
    if (!l)
        return;
    for (int64_t i = 0; i < l->n_pairs; i++) {
        hs_free(l->pairs[i].a);
        hs_free(l->pairs[i].b);
    }
    hs_free(l->pairs);
    hs_free(l->path);
    hs_free(l);
}

float hs_lora_alpha(const hs_lora *l) { return l->alpha; }
const char *hs_lora_path(const hs_lora *l) { return l->path; }
int64_t hs_lora_n_pairs(const hs_lora *l) { return l->n_pairs; }
const struct hs_lora_pair *hs_lora_pair_at(const hs_lora *l, int64_t i) { return &l->pairs[i]; }

const struct hs_lora_pair *hs_lora_find(const hs_lora *l, const char *name)
{
    for (int64_t i = 0; i < l->n_pairs; i++)
        if (!strcmp(l->pairs[i].name, name))
            return &l->pairs[i];
    return NULL;
}

float hs_lora_pair_scale(const hs_lora *l, const struct hs_lora_pair *p, float scale)
{
    return l->alpha != 0 ? scale * l->alpha / (float)p->r : scale;
}

static bool ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

static int load_pairs(hs_lora *l, const hs_gguf *g, const hs_gguf *base, hs_err *err)
{
    const char *path = l->path;
    int64_t n = hs_gguf_n_tensors(g);
    l->pairs = hs_calloc(n ? (size_t)n : 1, sizeof *l->pairs);
    if (!l->pairs)
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    for (int64_t i = 0; i < n; i++) {
        const struct hs_gguf_tensor *ta = hs_gguf_tensor_at(g, i);
        if (ends_with(ta->name, ".lora_b"))
            continue;
        if (!ends_with(ta->name, ".lora_a"))
            return hs_err_set(err, HS_EFORMAT, "%s: tensor '%s' is neither a .lora_a nor a .lora_b", path, ta->name);
        struct hs_lora_pair *p = &l->pairs[l->n_pairs++];
        size_t bl = strlen(ta->name) - strlen(".lora_a");
        if (bl >= sizeof p->name)
            return hs_err_set(err, HS_EFORMAT, "%s: tensor name '%s' is too long", path, ta->name);
        memcpy(p->name, ta->name, bl);
        p->name[bl] = 0;
        char bn[128];
        snprintf(bn, sizeof bn, "%s.lora_b", p->name);
        const struct hs_gguf_tensor *tb = hs_gguf_find_tensor(g, bn);
        const struct hs_gguf_tensor *w = hs_gguf_find_tensor(base, p->name);
        if (!tb)
            return hs_err_set(err, HS_EFORMAT, "%s: '%s' has no '%s'", path, ta->name, bn);
        if (!w || w->n_dims != 2)
            return hs_err_set(err, HS_EFORMAT, "%s: adapter for another base model: '%s' is not a matrix in %s", path,
                              p->name, hs_gguf_name(base));
        if (ta->n_dims != 2 || tb->n_dims != 2 || ta->ne[1] != tb->ne[0] || ta->ne[1] <= 0)
            return hs_err_set(err, HS_EFORMAT, "%s: '%s' and '%s' are not [in, r] and [r, out] matrices", path,
                              ta->name, bn);
        if (ta->ne[0] != w->ne[0])
            return hs_err_set(err, HS_EFORMAT,
                              "%s: adapter for another base model: %s is [%lld, %lld] in the base but the adapter's A has %lld columns",
                              path, p->name, (long long)w->ne[0], (long long)w->ne[1], (long long)ta->ne[0]);
        if (tb->ne[1] != w->ne[1])
            return hs_err_set(err, HS_EFORMAT,
                              "%s: adapter for another base model: %s is [%lld, %lld] in the base but the adapter's B has %lld rows",
                              path, p->name, (long long)w->ne[0], (long long)w->ne[1], (long long)tb->ne[1]);
        p->r = ta->ne[1];
        p->n_in = w->ne[0];
        p->n_out = w->ne[1];
        int rc;
        if ((rc = tensor_to_f32(path, ta, &p->a, err)) || (rc = tensor_to_f32(path, tb, &p->b, err)))
            return rc;
    }
    /* Every lora_b belongs to a lora_a. */
    for (int64_t i = 0; i < n; i++) {
        const struct hs_gguf_tensor *t = hs_gguf_tensor_at(g, i);
        if (!ends_with(t->name, ".lora_b"))
            continue;
        char an[128];
        size_t bl = strlen(t->name) - strlen(".lora_b");
        snprintf(an, sizeof an, "%.*s.lora_a", (int)bl, t->name);
        if (!hs_gguf_find_tensor(g, an))
            return hs_err_set(err, HS_EFORMAT, "%s: '%s' has no '%s'", path, t->name, an);
    }
    return HS_OK;
}

int hs_lora_load(const char *path, const hs_gguf *base, hs_lora **out, hs_err *err)
{
    *out = NULL;
    hs_gguf *g = NULL;
    int rc = hs_gguf_open(path, &g, err);
    if (rc)
        return rc;
    hs_lora *l = hs_calloc(1, sizeof *l);
    size_t pl = strlen(path) + 1;
    if (!l || !(l->path = hs_malloc(pl))) {
        hs_free(l);
        hs_gguf_close(g);
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    }
    memcpy(l->path, path, pl);
    char s[64], barch[64];
    if (str_key(g, "general.type", s, sizeof s) || strcmp(s, "adapter")) {
        rc = hs_err_set(err, HS_EFORMAT, "%s: field 'general.type' is not \"adapter\": not a LoRA adapter", path);
    } else if (str_key(g, "adapter.type", s, sizeof s) || strcmp(s, "lora")) {
        rc = hs_err_set(err, HS_EUNSUPPORTED, "%s: field 'adapter.type' is not \"lora\"", path);
    } else if (str_key(g, "general.architecture", s, sizeof s) ||
               str_key(base, "general.architecture", barch, sizeof barch) || strcmp(s, barch)) {
        rc = hs_err_set(err, HS_EFORMAT, "%s: adapter for another base model: field 'general.architecture' is not %s's",
                        path, hs_gguf_name(base));
    } else {
        float alpha = 0;
        int a = hs_gguf_get_f32(g, "adapter.lora.alpha", &alpha, err);
        if (a && a != HS_ENOTFOUND)
            rc = a;
        else if (!(alpha >= 0))
            rc = hs_err_set(err, HS_EFORMAT, "%s: field 'adapter.lora.alpha' is negative", path);
        else {
            l->alpha = alpha;
            rc = load_pairs(l, g, base, err);
        }
    }
    hs_gguf_close(g);
    if (rc) {
        hs_lora_free(l);
        return rc;
    }
    *out = l;
    return HS_OK;
}

int hs_lora_parse_spec(const char *arg, char *path_out, size_t cap, float *scale, hs_err *err)
{
    /* A suffix that is not a number belongs to the file name (paths may hold ':'). */
    const char *colon = strrchr(arg, ':');
    float s = 1.0f;
    if (colon && hs_parse_f32(colon + 1, &s))
        colon = NULL;
    size_t n = colon ? (size_t)(colon - arg) : strlen(arg);
    *scale = colon ? s : 1.0f;
    if (n == 0 || n >= cap)
        return hs_err_set(err, HS_EINVAL, "'%s': no adapter file name", arg);
    memcpy(path_out, arg, n);
    path_out[n] = 0;
    return HS_OK;
}

/* ---- merging ---- */

/* row += f * B[row, :] @ A  (A is (r, n_in) row-major). */
static void add_delta_row(float *row, const struct hs_lora_pair *p, int64_t i, float f)
{
    const float *b = p->b + i * p->r;
    for (int64_t k = 0; k < p->r; k++) {
        const float c = f * b[k];
        const float *a = p->a + k * p->n_in;
        for (int64_t j = 0; j < p->n_in; j++)
            row[j] += c * a[j];
    }
}

int hs_lora_merge(const char *base_path, const struct hs_lora_spec *specs, int n_specs, const char *out_path,
                  hs_err *err)
{
    hs_gguf *base = NULL;
    hs_lora **ls = hs_calloc(n_specs > 0 ? (size_t)n_specs : 1, sizeof *ls);
    hs_gguf_writer *w = NULL;
    char *tmp = tmp_name(out_path);
    float *fbuf = NULL;
    uint8_t *obuf = NULL;
    int rc;
    if (!ls || !tmp) {
        rc = hs_err_set(err, HS_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = hs_gguf_open(base_path, &base, err)))
        goto out;
    for (int i = 0; i < n_specs; i++)
        if ((rc = hs_lora_load(specs[i].path, base, &ls[i], err)))
            goto out;
    int64_t nt = hs_gguf_n_tensors(base), max_row = 1;
    for (int64_t i = 0; i < nt; i++)
        if (hs_gguf_tensor_at(base, i)->ne[0] > max_row)
            max_row = hs_gguf_tensor_at(base, i)->ne[0];
    fbuf = hs_malloc((size_t)max_row * sizeof *fbuf);
    obuf = hs_malloc((size_t)max_row * 4 + 64);
    if (!fbuf || !obuf) {
        rc = hs_err_set(err, HS_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = hs_gguf_writer_open(tmp, &w, err)))
        goto out;
    for (int64_t i = 0; i < hs_gguf_n_kv(base); i++)
        hs_gguf_w_kv_from(w, base, hs_gguf_kv_at(base, i));
    for (int64_t i = 0; i < nt; i++) {
        const struct hs_gguf_tensor *t = hs_gguf_tensor_at(base, i);
        hs_gguf_w_tensor(w, t->name, t->type, t->n_dims, t->ne);
    }
    if ((rc = hs_gguf_w_begin_data(w, err)))
        goto out;
    int64_t n_merged = 0;
    for (int64_t i = 0; i < nt; i++) {
        const struct hs_gguf_tensor *t = hs_gguf_tensor_at(base, i);
        bool adapted = false;
        for (int j = 0; j < n_specs && !adapted; j++)
            adapted = hs_lora_find(ls[j], t->name) != NULL;
        if (!adapted) {
            if ((rc = hs_gguf_w_data(w, t->data, (size_t)t->nbytes, err)))
                goto out;
            continue;
        }
        const struct hs_qtype *qt = hs_qtype((int)t->type);
        if (!qt || !qt->to_float || !qt->from_float_ref) {
            rc = hs_err_set(err, HS_EUNSUPPORTED, "%s: tensor '%s' has a type hestia cannot requantize", base_path,
                            t->name);
            goto out;
        }
        const size_t rb = hs_qtype_row_bytes((int)t->type, t->ne[0]);
        for (int64_t r = 0; r < t->ne[1]; r++) {
            const uint8_t *src = (const uint8_t *)t->data + (size_t)r * rb;
            qt->to_float(src, fbuf, t->ne[0]);
            for (int j = 0; j < n_specs; j++) {
                const struct hs_lora_pair *p = hs_lora_find(ls[j], t->name);
                if (p)
                    add_delta_row(fbuf, p, r, hs_lora_pair_scale(ls[j], p, specs[j].scale));
            }
            qt->from_float_ref(fbuf, obuf, t->ne[0]);
            if ((rc = hs_gguf_w_data(w, obuf, rb, err)))
                goto out;
        }
        n_merged++;
    }
    rc = finish(w, tmp, out_path, err);
    w = NULL;
    if (!rc)
        hs_log_info("lora.merge", "base=%s adapters=%d out=%s merged_tensors=%lld", base_path, n_specs, out_path,
                    (long long)n_merged);
out:
    if (w)
        hs_gguf_w_abort(w);
    for (int i = 0; ls && i < n_specs; i++)
        hs_lora_free(ls[i]);
    hs_free(ls);
    hs_gguf_close(base);
    hs_free(fbuf);
    hs_free(obuf);
    hs_free(tmp);
    return rc;
}
