/* model/lora: PEFT folder -> GGUF adapter (keys, names, shapes, values and
 * the Q/K row permutation of B computed here independently), merging
 * (W + scale * alpha / r * B @ A recomputed in double), scale 0 gives the
 * base, two adapters add up, and an adapter for another base model is refused
 * with a clear message and no output file. */
#include "test_util.h"

#include "base/rng.h"
#include "gguf/gguf.h"
#include "model/context.h"
#include "model/lora.h"
#include "model/model.h"
#include "tiny_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { R = 4, E = 64, NH = 4, NKV = 2, HD = 16, FF = 96, NL = 2 };
static const float ALPHA = 8.0f;

/* One adapted module: PEFT A (R, in) and B (out, R) row-major. */
struct mod {
    int layer;
    const char *hf;   /* "self_attn.q_proj" */
    const char *gguf; /* "attn_q.weight" */
    int in, out;
    float *a, *b;
};

struct peft {
    struct mod m[8];
    int n;
};

static void add_mod(struct peft *p, hs_rng *rng, int layer, const char *hf, const char *gguf, int in, int out)
{
    struct mod *m = &p->m[p->n++];
    m->layer = layer;
    m->hf = hf;
    m->gguf = gguf;
    m->in = in;
    m->out = out;
    m->a = malloc((size_t)R * in * sizeof(float));
    m->b = malloc((size_t)out * R * sizeof(float));
    for (int i = 0; i < R * in; i++)
        m->a[i] = hs_rng_normal(rng) * 0.1f;
    for (int i = 0; i < out * R; i++)
        m->b[i] = hs_rng_normal(rng) * 0.1f;
}

static void build_peft(struct peft *p, uint64_t seed, int q_rows)
{
    hs_rng rng;
    hs_rng_seed(&rng, seed);
    memset(p, 0, sizeof *p);
    add_mod(p, &rng, 0, "self_attn.q_proj", "attn_q.weight", E, q_rows);
    add_mod(p, &rng, 0, "self_attn.k_proj", "attn_k.weight", E, NKV * HD);
    add_mod(p, &rng, 1, "self_attn.v_proj", "attn_v.weight", E, NKV * HD);
    add_mod(p, &rng, 1, "mlp.down_proj", "ffn_down.weight", FF, E);
    add_mod(p, &rng, 1, "self_attn.o_proj", "attn_output.weight", NH * HD, E);
    add_mod(p, &rng, 0, "mlp.gate_proj", "ffn_gate.weight", E, FF);
    add_mod(p, &rng, 1, "mlp.up_proj", "ffn_up.weight", E, FF);
}

static void free_peft(struct peft *p)
{
    for (int i = 0; i < p->n; i++) {
        free(p->m[i].a);
        free(p->m[i].b);
    }
}

/* adapter_config.json + adapter_model.safetensors (F32) in dir. */
static void write_peft(const char *dir, const struct peft *p)
{
    mkdir(dir, 0755);
    char path[1024];
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "{\"peft_type\": \"LORA\", \"r\": %d, \"lora_alpha\": %g, \"target_modules\": "
               "[\"q_proj\", \"k_proj\", \"v_proj\", \"o_proj\", \"gate_proj\", \"up_proj\", \"down_proj\"]}\n",
            R, (double)ALPHA);
    fclose(f);
    char json[8192];
    int k = snprintf(json, sizeof json, "{\"__metadata__\":{\"format\":\"pt\"}");
    size_t off = 0;
    for (int i = 0; i < p->n; i++) {
        const struct mod *m = &p->m[i];
        for (int half = 0; half < 2; half++) {
            int rows = half ? m->out : R, cols = half ? R : m->in;
            size_t nb = (size_t)rows * cols * 4;
            k += snprintf(json + k, sizeof json - (size_t)k,
                          ",\"base_model.model.model.layers.%d.%s.lora_%c.weight\":{\"dtype\":\"F32\",\"shape\":[%d,%d],"
                          "\"data_offsets\":[%zu,%zu]}",
                          m->layer, m->hf, half ? 'B' : 'A', rows, cols, off, off + nb);
            off += nb;
        }
    }
    k += snprintf(json + k, sizeof json - (size_t)k, "}");
    while (k % 8)
        json[k++] = ' ';
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    f = fopen(path, "wb");
    assert_non_null(f);
    uint64_t hl = (uint64_t)k;
    fwrite(&hl, 8, 1, f);
    fwrite(json, 1, (size_t)k, f);
    for (int i = 0; i < p->n; i++) {
        fwrite(p->m[i].a, 4, (size_t)R * p->m[i].in, f);
        fwrite(p->m[i].b, 4, (size_t)p->m[i].out * R, f);
    }
    assert_int_equal(fclose(f), 0);
}

/* HF keeps each rotary head as two halves [x0..x(hd/2-1) | y0..]; GGUF
 * interleaves them (x0 y0 x1 y1 ...). So HF row j of a head goes to GGUF row
 * 2j (first half) or 2(j - hd/2) + 1 (second half). Returns B in GGUF row order. */
static float *permuted_b(const struct mod *m, int heads)
{
    float *out = malloc((size_t)m->out * R * sizeof(float));
    int hd = m->out / heads;
    for (int h = 0; h < heads; h++)
        for (int j = 0; j < hd; j++) {
            int dst = h * hd + (j < hd / 2 ? 2 * j : 2 * (j - hd / 2) + 1);
            memcpy(out + (size_t)dst * R, m->b + (size_t)(h * hd + j) * R, R * sizeof(float));
        }
    return out;
}

/* B as it must appear in the GGUF (permuted for q and k of llama). */
static float *gguf_b(const struct mod *m)
{
    if (!strcmp(m->gguf, "attn_q.weight"))
        return permuted_b(m, NH);
    if (!strcmp(m->gguf, "attn_k.weight"))
        return permuted_b(m, NKV);
    float *b = malloc((size_t)m->out * R * sizeof(float));
    memcpy(b, m->b, (size_t)m->out * R * sizeof(float));
    return b;
}

static char *make_base(const char *name, int n_embd, struct tiny_weights *w)
{
    struct tiny_params tp;
    tiny_params_default(&tp);
    tp.n_embd = n_embd;
    tp.seed = 7;
    char *path = hs_test_tmpfile(name);
    assert_int_equal(tiny_model_write(path, &tp, w), 0);
    assert_int_equal(tp.n_head, NH);
    assert_int_equal(tp.n_head_kv, NKV);
    assert_int_equal(tp.n_ff, FF);
    assert_int_equal(tp.n_layer, NL);
    return path;
}

static char *convert(const char *tag, const struct peft *p, const char *base, uint32_t type)
{
    char *dir = hs_test_tmpfile(tag);
    write_peft(dir, p);
    size_t n = strlen(dir) + 16;
    char *out = malloc(n);
    snprintf(out, n, "%s.gguf", dir);
    struct hs_lora_convert_opts o = {.peft_dir = dir, .base_path = base, .out_path = out, .outtype = type};
    hs_err err = {0};
    int rc = hs_lora_convert(&o, &err);
    if (rc)
        print_message("convert: %s\n", err.msg);
    assert_int_equal(rc, HS_OK);
    free(dir);
    return out;
}

static void converts_peft_to_llama_cpp_layout(void **state)
{
    (void)state;
    char *base = make_base("base.gguf", E, NULL);
    struct peft p;
    build_peft(&p, 11, NH * HD);
    char *out = convert("peft1", &p, base, 0);
    hs_gguf *g;
    hs_err err = {0};
    assert_int_equal(hs_gguf_open(out, &g, &err), HS_OK);
    const char *s;
    size_t len;
    assert_int_equal(hs_gguf_get_str(g, "general.type", &s, &len, NULL), HS_OK);
    assert_true(len == 7 && !memcmp(s, "adapter", 7));
    assert_int_equal(hs_gguf_get_str(g, "adapter.type", &s, &len, NULL), HS_OK);
    assert_true(len == 4 && !memcmp(s, "lora", 4));
    assert_int_equal(hs_gguf_get_str(g, "general.architecture", &s, &len, NULL), HS_OK);
    assert_true(len == 5 && !memcmp(s, "llama", 5));
    float alpha;
    assert_int_equal(hs_gguf_get_f32(g, "adapter.lora.alpha", &alpha, NULL), HS_OK);
    assert_true(alpha == ALPHA);
    assert_int_equal(hs_gguf_n_tensors(g), 2 * p.n);
    for (int i = 0; i < p.n; i++) {
        const struct mod *m = &p.m[i];
        char name[128];
        snprintf(name, sizeof name, "blk.%d.%s.lora_a", m->layer, m->gguf);
        const struct hs_gguf_tensor *ta = hs_gguf_find_tensor(g, name);
        assert_non_null(ta);
        assert_int_equal(ta->type, HS_TYPE_F32);
        assert_int_equal(ta->n_dims, 2);
        assert_int_equal(ta->ne[0], m->in);
        assert_int_equal(ta->ne[1], R);
        assert_memory_equal(ta->data, m->a, (size_t)R * m->in * 4);
        snprintf(name, sizeof name, "blk.%d.%s.lora_b", m->layer, m->gguf);
        const struct hs_gguf_tensor *tb = hs_gguf_find_tensor(g, name);
        assert_non_null(tb);
        assert_int_equal(tb->ne[0], R);
        assert_int_equal(tb->ne[1], m->out);
        float *want = gguf_b(m);
        assert_memory_equal(tb->data, want, (size_t)R * m->out * 4);
        free(want);
    }
    hs_gguf_close(g);
    /* f16 output: same names, values rounded. */
    char *out16 = convert("peft1h", &p, base, HS_TYPE_F16);
    assert_int_equal(hs_gguf_open(out16, &g, &err), HS_OK);
    const struct hs_gguf_tensor *t = hs_gguf_find_tensor(g, "blk.1.ffn_down.weight.lora_b");
    assert_non_null(t);
    assert_int_equal(t->type, HS_TYPE_F16);
    hs_gguf_close(g);
    free_peft(&p);
    free(out16);
    free(out);
    free(base);
}

/* expected W' = W + sum_j s_j * alpha / R * B_j @ A_j for one tensor. */
static void check_tensor(const hs_gguf *mg, const char *name, const float *w, int rows, int cols,
                         const struct mod *const *mods, const float *scales, int n_mods)
{
    const struct hs_gguf_tensor *t = hs_gguf_find_tensor(mg, name);
    assert_non_null(t);
    assert_int_equal(t->type, HS_TYPE_F32);
    const float *got = t->data;
    float *bs[4];
    for (int j = 0; j < n_mods; j++)
        bs[j] = gguf_b(mods[j]);
    double max_err = 0;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            double want = w[(size_t)r * cols + c];
            for (int j = 0; j < n_mods; j++) {
                double d = 0;
                for (int k = 0; k < R; k++)
                    d += (double)bs[j][r * R + k] * mods[j]->a[(size_t)k * cols + c];
                want += (double)scales[j] * ALPHA / R * d;
            }
            double e = fabs(got[(size_t)r * cols + c] - want);
            if (e > max_err)
                max_err = e;
        }
    for (int j = 0; j < n_mods; j++)
        free(bs[j]);
    assert_true(max_err < 1e-5);
}

static const float *base_w(const struct tiny_weights *w, const struct mod *m)
{
    const struct tiny_layer *l = &w->layers[m->layer];
    if (!strcmp(m->gguf, "attn_q.weight"))
        return l->wq;
    if (!strcmp(m->gguf, "attn_k.weight"))
        return l->wk;
    if (!strcmp(m->gguf, "attn_v.weight"))
        return l->wv;
    if (!strcmp(m->gguf, "attn_output.weight"))
        return l->wo;
    if (!strcmp(m->gguf, "ffn_gate.weight"))
        return l->w_gate;
    if (!strcmp(m->gguf, "ffn_up.weight"))
        return l->w_up;
    return l->w_down;
}

static void merges_and_adds_up(void **state)
{
    (void)state;
    struct tiny_weights w;
    char *base = make_base("mbase.gguf", E, &w);
    struct peft p1, p2;
    build_peft(&p1, 21, NH * HD);
    build_peft(&p2, 22, NH * HD);
    char *a1 = convert("m1", &p1, base, 0), *a2 = convert("m2", &p2, base, 0);
    char *merged = hs_test_tmpfile("merged.gguf");
    hs_err err = {0};
    /* one adapter at 0.5, then both (0.5 and -1.5) */
    for (int both = 0; both < 2; both++) {
        struct hs_lora_spec specs[2] = {{a1, 0.5f}, {a2, -1.5f}};
        assert_int_equal(hs_lora_merge(base, specs, both ? 2 : 1, merged, &err), HS_OK);
        hs_gguf *mg, *bg;
        assert_int_equal(hs_gguf_open(merged, &mg, &err), HS_OK);
        assert_int_equal(hs_gguf_open(base, &bg, &err), HS_OK);
        assert_int_equal(hs_gguf_n_tensors(mg), hs_gguf_n_tensors(bg));
        assert_int_equal(hs_gguf_n_kv(mg), hs_gguf_n_kv(bg));
        for (int i = 0; i < p1.n; i++) {
            const struct mod *mods[2] = {&p1.m[i], &p2.m[i]};
            char name[96];
            snprintf(name, sizeof name, "blk.%d.%s", p1.m[i].layer, p1.m[i].gguf);
            check_tensor(mg, name, base_w(&w, &p1.m[i]), p1.m[i].out, p1.m[i].in, mods, (float[]){0.5f, -1.5f},
                         both ? 2 : 1);
        }
        /* untouched tensors are copied byte for byte */
        const char *same[] = {"token_embd.weight", "blk.0.attn_v.weight", "blk.1.attn_q.weight", "output.weight"};
        for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
            const struct hs_gguf_tensor *x = hs_gguf_find_tensor(mg, same[i]), *y = hs_gguf_find_tensor(bg, same[i]);
            assert_non_null(x);
            assert_non_null(y);
            assert_int_equal(x->nbytes, y->nbytes);
            assert_memory_equal(x->data, y->data, (size_t)x->nbytes);
        }
        hs_gguf_close(mg);
        hs_gguf_close(bg);
    }
    /* scale 0 gives the base's values */
    struct hs_lora_spec zero = {a1, 0.0f};
    assert_int_equal(hs_lora_merge(base, &zero, 1, merged, &err), HS_OK);
    hs_gguf *mg, *bg;
    assert_int_equal(hs_gguf_open(merged, &mg, &err), HS_OK);
    assert_int_equal(hs_gguf_open(base, &bg, &err), HS_OK);
    for (int64_t i = 0; i < hs_gguf_n_tensors(bg); i++) {
        const struct hs_gguf_tensor *y = hs_gguf_tensor_at(bg, i), *x = hs_gguf_find_tensor(mg, y->name);
        assert_non_null(x);
        assert_int_equal(x->nbytes, y->nbytes);
        const float *xf = x->data, *yf = y->data;
        for (uint64_t k = 0; k < y->nbytes / 4; k++)
            assert_true(xf[k] == yf[k]);
    }
    hs_gguf_close(mg);
    hs_gguf_close(bg);
    free(merged);
    free(a1);
    free(a2);
    free(base);
    free_peft(&p1);
    free_peft(&p2);
    tiny_weights_free(&w, NL);
}

static void refuses_other_base(void **state)
{
    (void)state;
    char *base = make_base("obase.gguf", E, NULL);
    char *other = make_base("other.gguf", 2 * E, NULL);
    /* an adapter for a model whose q has 128 rows, against a 64-wide base */
    struct peft p;
    build_peft(&p, 31, 2 * NH * HD);
    char *dir = hs_test_tmpfile("badpeft");
    write_peft(dir, &p);
    char *out = hs_test_tmpfile("bad.gguf");
    struct hs_lora_convert_opts o = {.peft_dir = dir, .base_path = base, .out_path = out};
    hs_err err = {0};
    assert_int_equal(hs_lora_convert(&o, &err), HS_EFORMAT);
    assert_non_null(strstr(err.msg, "adapter for another base model: blk.0.attn_q.weight is [64, 64] in the base "
                                    "but the adapter's B has 128 rows"));
    assert_non_null(strstr(err.msg, "adapter_model.safetensors"));
    assert_int_equal(access(out, F_OK), -1);
    /* a good adapter loaded or merged against another base is refused too */
    struct peft good;
    build_peft(&good, 32, NH * HD);
    char *a = convert("goodpeft", &good, base, 0);
    hs_gguf *og;
    assert_int_equal(hs_gguf_open(other, &og, &err), HS_OK);
    hs_lora *l = (hs_lora *)1;
    assert_int_equal(hs_lora_load(a, og, &l, &err), HS_EFORMAT);
    assert_null(l);
    assert_non_null(strstr(err.msg, "adapter for another base model"));
    hs_gguf_close(og);
    struct hs_lora_spec spec = {a, 1.0f};
    char *merged = hs_test_tmpfile("badmerge.gguf");
    assert_int_equal(hs_lora_merge(other, &spec, 1, merged, &err), HS_EFORMAT);
    assert_int_equal(access(merged, F_OK), -1);
    /* a missing adapter_config.json names the file */
    char cfg[1024];
    snprintf(cfg, sizeof cfg, "%s/adapter_config.json", dir);
    unlink(cfg);
    assert_int_not_equal(hs_lora_convert(&o, &err), HS_OK);
    assert_non_null(strstr(err.msg, "adapter_config.json"));
    assert_int_equal(access(out, F_OK), -1);
    free(merged);
    free(a);
    free_peft(&good);
    free_peft(&p);
    free(dir);
    free(out);
    free(other);
    free(base);
}

/* Logits of every token of a short prompt (f32 KV cache), with the given
 * adapters applied at run time. Returns n_tok * n_vocab floats. */
static float *run_logits(const char *model_path, const char *const *adapters, const float *scales, int n_ad,
                         int *n_vocab)
{
    hs_model *m;
    hs_err err = {0};
    assert_int_equal(hs_model_load(model_path, NULL, &m, &err), HS_OK);
    struct hs_ctx_params cp = {.n_ctx = 64, .n_threads = 2, .kv_type = HS_KV_F32};
    hs_ctx *ctx;
    assert_int_equal(hs_ctx_create(m, &cp, &ctx, &err), HS_OK);
    hs_lora *ls[2] = {0};
    for (int i = 0; i < n_ad; i++) {
        int rc = hs_lora_load(adapters[i], hs_model_gguf(m), &ls[i], &err);
        if (rc)
            print_message("%s\n", err.msg);
        assert_int_equal(rc, HS_OK);
    }
    assert_int_equal(hs_ctx_set_loras(ctx, (const hs_lora *const *)ls, scales, n_ad, &err), HS_OK);
    enum { T = 7 };
    const int32_t toks[T] = {1, 17, 42, 99, 5, 250, 3};
    int8_t want[T];
    memset(want, 1, sizeof want);
    struct hs_batch b = {.n = T, .tokens = toks, .logits = want};
    int rc = hs_decode(ctx, &b, &err);
    if (rc)
        print_message("%s\n", err.msg);
    assert_int_equal(rc, HS_OK);
    *n_vocab = hs_model_hparams(m)->n_vocab;
    float *out = malloc((size_t)T * *n_vocab * sizeof(float));
    for (int i = 0; i < T; i++)
        memcpy(out + (size_t)i * *n_vocab, hs_ctx_logits(ctx, i), (size_t)*n_vocab * sizeof(float));
    /* one more token through the decode path (a single row) */
    int32_t next = 77;
    struct hs_batch b2 = {.n = 1, .tokens = &next};
    assert_int_equal(hs_decode(ctx, &b2, &err), HS_OK);
    hs_ctx_free(ctx);
    for (int i = 0; i < n_ad; i++)
        hs_lora_free(ls[i]);
    hs_model_free(m);
    return out;
}

static double max_rel_diff(const float *a, const float *b, size_t n)
{
    double scale = 0, d = 0;
    for (size_t i = 0; i < n; i++) {
        if (fabs(b[i]) > scale)
            scale = fabs(b[i]);
        if (fabs(a[i] - b[i]) > d)
            d = fabs(a[i] - b[i]);
    }
    return d / (scale > 0 ? scale : 1);
}

static void runtime_equals_merged(void **state)
{
    (void)state;
    char *base = make_base("rbase.gguf", E, NULL);
    struct peft p1, p2;
    build_peft(&p1, 41, NH * HD);
    build_peft(&p2, 42, NH * HD);
    char *a1 = convert("r1", &p1, base, 0), *a2 = convert("r2", &p2, base, HS_TYPE_F16);
    char *merged = hs_test_tmpfile("rmerged.gguf");
    hs_err err = {0};
    const char *ads[2] = {a1, a2};
    const float sc[2] = {0.75f, -1.25f};
    struct hs_lora_spec specs[2] = {{a1, sc[0]}, {a2, sc[1]}};
    int nv;
    float *plain = run_logits(base, NULL, NULL, 0, &nv);
    const size_t n = (size_t)7 * nv;
    for (int k = 1; k <= 2; k++) {
        assert_int_equal(hs_lora_merge(base, specs, k, merged, &err), HS_OK);
        float *mg = run_logits(merged, NULL, NULL, 0, &nv);
        float *rt = run_logits(base, ads, sc, k, &nv);
        double d = max_rel_diff(rt, mg, n);
        print_message("adapters=%d max relative difference run-time vs merged: %.3g (vs base %.3g)\n", k, d,
                      max_rel_diff(plain, mg, n));
        assert_true(d < 1e-4);
        /* and the adapters do change the output */
        assert_true(max_rel_diff(plain, mg, n) > 1e-3);
        free(mg);
        free(rt);
    }
    /* scale 0 at run time gives the base's logits exactly */
    const float zero[1] = {0.0f};
    float *z = run_logits(base, ads, zero, 1, &nv);
    assert_memory_equal(z, plain, n * sizeof(float));
    free(z);
    free(plain);
    free(merged);
    free(a1);
    free(a2);
    free(base);
    free_peft(&p1);
    free_peft(&p2);
}

static void parses_specs(void **state)
{
    (void)state;
    char path[64];
    float s;
    hs_err err = {0};
    assert_int_equal(hs_lora_parse_spec("a.gguf:0.25", path, sizeof path, &s, &err), HS_OK);
    assert_string_equal(path, "a.gguf");
    assert_true(s == 0.25f);
    assert_int_equal(hs_lora_parse_spec("a.gguf", path, sizeof path, &s, &err), HS_OK);
    assert_string_equal(path, "a.gguf");
    assert_true(s == 1.0f);
    assert_int_equal(hs_lora_parse_spec("dir:x/a.gguf", path, sizeof path, &s, &err), HS_OK);
    assert_string_equal(path, "dir:x/a.gguf");
    assert_int_equal(hs_lora_parse_spec(":2", path, sizeof path, &s, &err), HS_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(converts_peft_to_llama_cpp_layout),
        cmocka_unit_test(merges_and_adds_up),
        cmocka_unit_test(refuses_other_base),
        cmocka_unit_test(runtime_equals_merged),
        cmocka_unit_test(parses_specs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
