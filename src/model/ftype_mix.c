/* Per-tensor types of a file type; the rules are llama.cpp's
 * llama_tensor_get_type (src/llama-quant.cpp) restricted to what a dense
 * llama-family model contains (no experts, no IQ types). */
#include "model/ftype_mix.h"

#include "gguf/gguf_types.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* file_type numbers are llama.cpp's llama_ftype enum. The pure K types have no
 * llama_ftype of their own; they take the number of the "_s" mix, the closest
 * one (llama-quantize --pure keeps the mix's number the same way). */
static const struct hs_ftype k_ftypes[] = {
    {"f32", 0, HS_TYPE_F32, false},     {"f16", 1, HS_TYPE_F16, false},
    {"bf16", 32, HS_TYPE_BF16, false},  {"q8_0", 7, HS_TYPE_Q8_0, true},
    {"q4_0", 2, HS_TYPE_Q4_0, true},    {"q4_1", 3, HS_TYPE_Q4_1, true},
    {"q5_0", 8, HS_TYPE_Q5_0, true},    {"q5_1", 9, HS_TYPE_Q5_1, true},
    {"q2_k", 10, HS_TYPE_Q2_K, true},   {"q3_k_s", 11, HS_TYPE_Q3_K, true},
    {"q3_k_m", 12, HS_TYPE_Q3_K, true}, {"q3_k_l", 13, HS_TYPE_Q3_K, true},
    {"q4_k_s", 14, HS_TYPE_Q4_K, true}, {"q4_k_m", 15, HS_TYPE_Q4_K, true},
    {"q5_k_s", 16, HS_TYPE_Q5_K, true}, {"q5_k_m", 17, HS_TYPE_Q5_K, true},
    {"q6_k", 18, HS_TYPE_Q6_K, true},   {"q3_k", 11, HS_TYPE_Q3_K, false},
    {"q4_k", 14, HS_TYPE_Q4_K, false},  {"q5_k", 16, HS_TYPE_Q5_K, false},
};
#define N_FTYPES ((int)(sizeof k_ftypes / sizeof k_ftypes[0]))

const struct hs_ftype *hs_ftype_find(const char *name)
{
    if (!name)
        return NULL;
    for (int i = 0; i < N_FTYPES; i++)
        if (!strcasecmp(k_ftypes[i].name, name))
            return &k_ftypes[i];
    return NULL;
}

int hs_ftype_count(void)
{
    return N_FTYPES;
}

const struct hs_ftype *hs_ftype_at(int i)
{
    return i >= 0 && i < N_FTYPES ? &k_ftypes[i] : NULL;
}

/* Broad roles, found from names as llama.cpp does (substring matches, so the
 * same rules cover every architecture's naming of the same matrices). */
enum category {
    CAT_TOKEN_EMBD,
    CAT_OUTPUT,
    CAT_ATTN_Q,
    CAT_ATTN_K,
    CAT_ATTN_V, /* attn_v, and the fused attn_qkv / attn_kv_b that contain it */
    CAT_ATTN_OUT,
    CAT_FFN_UP,
    CAT_FFN_GATE,
    CAT_FFN_DOWN,
    CAT_OTHER
};

static enum category category_of(const char *name)
{
    if (!strcmp(name, "output.weight"))
        return CAT_OUTPUT;
    if (!strcmp(name, "token_embd.weight") || !strcmp(name, "per_layer_token_embd.weight"))
        return CAT_TOKEN_EMBD;
    if (strstr(name, "attn_qkv.weight") || strstr(name, "attn_kv_b.weight") || strstr(name, "attn_v.weight"))
        return CAT_ATTN_V;
    if (strstr(name, "attn_k.weight"))
        return CAT_ATTN_K;
    if (strstr(name, "attn_q.weight"))
        return CAT_ATTN_Q;
    if (strstr(name, "attn_output.weight"))
        return CAT_ATTN_OUT;
    if (strstr(name, "ffn_up"))
        return CAT_FFN_UP;
    if (strstr(name, "ffn_gate"))
        return CAT_FFN_GATE;
    if (strstr(name, "ffn_down"))
        return CAT_FFN_DOWN;
    return CAT_OTHER;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !memcmp(s + n - m, suffix, m);
}

bool hs_ftype_quantizable(const char *name, int n_dims)
{
    if (n_dims < 2 || !ends_with(name, "weight"))
        return false;
    /* norms are tiny and precision-critical; expert routers and position
     * tables are kept as llama.cpp keeps them */
    return !strstr(name, "_norm.weight") && !strstr(name, "ffn_gate_inp.weight") &&
           strcmp(name, "position_embd.weight") != 0 && strcmp(name, "token_types.weight") != 0;
}

/* Layer number from "blk.N."; 0 when the name has none. llama.cpp counts the
 * tensors of each role in layer order instead, which is the same number for a
 * dense model (one attn_v and one ffn_down per layer). */
static int layer_of(const char *name)
{
    if (strncmp(name, "blk.", 4) != 0)
        return 0;
    int n = 0;
    for (const char *p = name + 4; *p >= '0' && *p <= '9'; p++) {
        n = n * 10 + (*p - '0');
        if (n > 1000000)
            return 0;
    }
    return n;
}

/* llama.cpp's "use_more_bits": the first and last eighth of the layers and
 * every third one between them get more bits. */
static bool use_more_bits(int i, int n)
{
    return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

static int blck_of(int type)
{
    const struct hs_type_size *ts = hs_type_size((uint32_t)type);
    return ts ? ts->blck : 0;
}

/* A row length that is not a whole number of the type's blocks falls back to a
 * type with 32-element blocks of similar size, as llama.cpp does. llama.cpp
 * refuses a 32-block type whose rows do not divide by 32; f16 always fits, so
 * that is the answer here as it is for llama.cpp's second-level fallback. */
static int row_fallback(int type, int64_t nx)
{
    int b = blck_of(type);
    if (b <= 1 || nx % b == 0)
        return type;
    int r;
    switch (type) {
    case HS_TYPE_Q2_K:
    case HS_TYPE_Q3_K:
        r = HS_TYPE_Q4_0;
        break;
    case HS_TYPE_Q4_K:
        r = HS_TYPE_Q5_0;
        break;
    case HS_TYPE_Q5_K:
        r = HS_TYPE_Q5_1;
        break;
    case HS_TYPE_Q6_K:
        r = HS_TYPE_Q8_0;
        break;
    default:
        r = HS_TYPE_F16;
        break;
    }
    if (nx % blck_of(r) != 0)
        r = HS_TYPE_F16;
    return r;
}

/* The per-tensor rules of llama_tensor_get_type_impl for the ftypes above. */
static int mixed_type(const struct hs_ftype *ft, enum category cat, const char *name, int64_t nx,
                      const struct hs_ftype_model *m)
{
    const char *f = ft->name;
    int t = ft->base_type;
    const bool falcon = m->arch && !strcmp(m->arch, "falcon");
    const int n_layer = m->n_layer > 0 ? m->n_layer : 1;
    const int gqa = m->n_head_kv > 0 ? m->n_head / m->n_head_kv : 1;

    if (cat == CAT_OUTPUT || (m->tied_output && cat == CAT_TOKEN_EMBD)) {
        /* the output matrix decides every logit: q6_K, or q8_0 when its rows
         * do not divide into the base type's blocks */
        if (falcon || nx % blck_of(t) != 0)
            t = HS_TYPE_Q8_0;
        else if (t != HS_TYPE_Q8_0)
            t = HS_TYPE_Q6_K;
        return t;
    }
    int il = layer_of(name);
    switch (cat) {
    case CAT_ATTN_V: {
        if (!strcmp(f, "q2_k"))
            t = gqa >= 4 ? HS_TYPE_Q4_K : HS_TYPE_Q3_K;
        else if (!strcmp(f, "q3_k_m"))
            t = il < 2 ? HS_TYPE_Q5_K : HS_TYPE_Q4_K;
        else if (!strcmp(f, "q3_k_l"))
            t = HS_TYPE_Q5_K;
        else if ((!strcmp(f, "q4_k_m") || !strcmp(f, "q5_k_m")) && use_more_bits(il, n_layer))
            t = HS_TYPE_Q6_K;
        else if (!strcmp(f, "q4_k_s") && il < 4)
            t = HS_TYPE_Q5_K;
        /* llama.cpp's LLM_TYPE_70B: 8 query heads share each attn_v row, so
         * more bits there cost little */
        bool is_70b =
            (!m->arch || !strcmp(m->arch, "llama")) && m->n_layer == 80 && m->n_head != m->n_head_kv;
        if (is_70b && (t == HS_TYPE_Q3_K || t == HS_TYPE_Q4_K))
            t = HS_TYPE_Q5_K;
        break;
    }
    case CAT_FFN_DOWN:
        if (!strcmp(f, "q2_k"))
            t = HS_TYPE_Q3_K;
        else if (!strcmp(f, "q3_k_m"))
            t = il < n_layer / 16                       ? HS_TYPE_Q5_K
                : !falcon || use_more_bits(il, n_layer) ? HS_TYPE_Q4_K
                                                        : HS_TYPE_Q3_K;
        else if (!strcmp(f, "q3_k_l"))
            t = falcon ? HS_TYPE_Q4_K : HS_TYPE_Q5_K;
        else if (!strcmp(f, "q4_k_m")) {
            if (falcon)
                t = il < n_layer / 16            ? HS_TYPE_Q6_K
                    : use_more_bits(il, n_layer) ? HS_TYPE_Q5_K
                                                 : HS_TYPE_Q4_K;
            else if (use_more_bits(il, n_layer))
                t = HS_TYPE_Q6_K;
        } else if (!strcmp(f, "q5_k_m") && use_more_bits(il, n_layer))
            t = HS_TYPE_Q6_K;
        else if (!strcmp(f, "q4_k_s") && !falcon && il < n_layer / 8)
            t = HS_TYPE_Q5_K;
        break;
    case CAT_ATTN_OUT:
        if (!falcon) {
            if (!strcmp(f, "q2_k"))
                t = HS_TYPE_Q3_K;
            else if (!strcmp(f, "q3_k_m"))
                t = HS_TYPE_Q4_K;
            else if (!strcmp(f, "q3_k_l"))
                t = HS_TYPE_Q5_K;
        } else if (!strcmp(f, "q3_k_l")) {
            t = HS_TYPE_Q4_K;
        }
        break;
    default:
        break;
    }
    return t;
}

int hs_ftype_tensor_type_of(const struct hs_ftype *ft, const char *name, int n_dims, const int64_t *ne,
                            int src_type, const struct hs_ftype_model *m, hs_err *err)
{
    if (!ft || !name || !ne || !m || n_dims < 1)
        return hs_err_set(err, HS_EINVAL, "ftype: bad arguments for tensor %s", name ? name : "(null)");
    if (!hs_ftype_quantizable(name, n_dims))
        return src_type;
    int t = ft->base_type;
    if (blck_of(t) <= 1) /* f32, f16, bf16: a plain conversion, no rules */
        return t;
    if (ft->mix && !m->pure)
        t = mixed_type(ft, category_of(name), name, ne[0], m);
    t = row_fallback(t, ne[0]);
    if (!hs_type_size((uint32_t)t))
        return hs_err_set(err, HS_EUNSUPPORTED, "ftype %s: no type for tensor %s", ft->name, name);
    return t;
}

int hs_ftype_tensor_type(const char *ftype, const char *name, int n_dims, const int64_t *ne, int src_type,
                         const struct hs_ftype_model *m, hs_err *err)
{
    const struct hs_ftype *ft = hs_ftype_find(ftype);
    if (!ft)
        return hs_err_set(err, HS_EINVAL, "unknown file type '%s'", ftype ? ftype : "(null)");
    return hs_ftype_tensor_type_of(ft, name, n_dims, ne, src_type, m, err);
}
