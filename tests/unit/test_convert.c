/* model/convert: HF folder -> GGUF. The stories260K-derived folder must give
 * stories260K.gguf's tensors byte for byte; tiny folders written here check
 * values (dtype conversion, the Q/K permutation computed independently),
 * sharded input, and that bad input fails naming the file and field without
 * leaving an output file behind. */
#include "test_util.h"

#include "base/fp16.h"
#include "base/rng.h"
#include "gguf/gguf.h"
#include "model/convert.h"
#include "model/tokenizer.h"
#include "tensor/qtype.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- writing a tiny HF folder ---- */

enum { E = 64, FF = 72, NL = 2, NH = 4, NKV = 2, HD = 16, NV = 300 };

struct src_tensor {
    char name[96];
    const char *dtype; /* "F32", "F16", "BF16" */
    int nd;
    int64_t shape[2];
    float *vals; /* decoded values (exactly what the file holds) */
};

struct hf {
    struct src_tensor t[64];
    int n;
};

static int64_t nel(const struct src_tensor *t)
{
    return t->nd == 1 ? t->shape[0] : t->shape[0] * t->shape[1];
}

static size_t esz(const char *dt)
{
    return strcmp(dt, "F32") ? 2 : 4;
}

static void add(struct hf *h, hs_rng *rng, const char *name, const char *dtype, int64_t rows, int64_t cols)
{
    struct src_tensor *t = &h->t[h->n++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->dtype = dtype;
    t->nd = cols ? 2 : 1;
    t->shape[0] = rows;
    t->shape[1] = cols;
    t->vals = malloc((size_t)nel(t) * sizeof(float));
    for (int64_t i = 0; i < nel(t); i++) {
        float v = hs_rng_normal(rng) * 0.5f;
        if (!strcmp(dtype, "F16"))
            v = hs_fp16_to_f32(hs_f32_to_fp16(v));
        else if (!strcmp(dtype, "BF16"))
            v = hs_bf16_to_f32(hs_f32_to_bf16(v));
        t->vals[i] = v;
    }
}

static void build(struct hf *h, uint64_t seed)
{
    hs_rng rng;
    hs_rng_seed(&rng, seed);
    memset(h, 0, sizeof *h);
    char n[96];
    add(h, &rng, "model.embed_tokens.weight", "F32", NV, E);
    for (int l = 0; l < NL; l++) {
#define L(s, dt, r, c) (snprintf(n, sizeof n, "model.layers.%d.%s", l, s), add(h, &rng, n, dt, r, c))
        L("input_layernorm.weight", "F32", E, 0);
        L("self_attn.q_proj.weight", "F16", NH * HD, E);
        L("self_attn.k_proj.weight", "BF16", NKV * HD, E);
        L("self_attn.v_proj.weight", "F32", NKV * HD, E);
        L("self_attn.o_proj.weight", "BF16", E, NH * HD);
        L("post_attention_layernorm.weight", "F16", E, 0);
        L("mlp.gate_proj.weight", "F16", FF, E);
        L("mlp.up_proj.weight", "F32", FF, E);
        L("mlp.down_proj.weight", "BF16", E, FF);
#undef L
    }
    add(h, &rng, "model.norm.weight", "F32", E, 0);
    add(h, &rng, "lm_head.weight", "F16", NV, E);
}

static void free_hf(struct hf *h)
{
    for (int i = 0; i < h->n; i++)
        free(h->t[i].vals);
}

/* Writes tensors [from, to) of h into one safetensors file. */
static void write_st(const char *path, const struct hf *h, int from, int to)
{
    char json[16384];
    int k = snprintf(json, sizeof json, "{\"__metadata__\":{\"format\":\"pt\"}");
    size_t off = 0;
    for (int i = from; i < to; i++) {
        const struct src_tensor *t = &h->t[i];
        size_t nb = (size_t)nel(t) * esz(t->dtype);
        if (t->nd == 1)
            k += snprintf(json + k, sizeof json - (size_t)k, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[%lld],\"data_offsets\":[%zu,%zu]}",
                          t->name, t->dtype, (long long)t->shape[0], off, off + nb);
        else
            k += snprintf(json + k, sizeof json - (size_t)k,
                          ",\"%s\":{\"dtype\":\"%s\",\"shape\":[%lld,%lld],\"data_offsets\":[%zu,%zu]}", t->name, t->dtype,
                          (long long)t->shape[0], (long long)t->shape[1], off, off + nb);
        off += nb;
    }
    k += snprintf(json + k, sizeof json - (size_t)k, "}");
    while (k % 8)
        json[k++] = ' ';
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    uint64_t hl = (uint64_t)k;
    fwrite(&hl, 8, 1, f);
    fwrite(json, 1, (size_t)k, f);
    for (int i = from; i < to; i++) {
        const struct src_tensor *t = &h->t[i];
        for (int64_t j = 0; j < nel(t); j++) {
            if (!strcmp(t->dtype, "F32")) {
                fwrite(&t->vals[j], 4, 1, f);
            } else {
                uint16_t b = !strcmp(t->dtype, "F16") ? hs_f32_to_fp16(t->vals[j]) : hs_f32_to_bf16(t->vals[j]);
                fwrite(&b, 2, 1, f);
            }
        }
    }
    assert_int_equal(fclose(f), 0);
}

static void write_text(const char *dir, const char *name, const char *text)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static char CONFIG[1024];

static const char *config_json(const char *arch, int ff, int layers)
{
    snprintf(CONFIG, sizeof CONFIG,
             "{\"architectures\": [\"%s\"], \"hidden_size\": %d, \"intermediate_size\": %d,\n"
             " \"num_hidden_layers\": %d, \"num_attention_heads\": %d, \"num_key_value_heads\": %d,\n"
             " \"max_position_embeddings\": 128, \"rms_norm_eps\": 1e-06, \"rope_theta\": 50000.0,\n"
             " \"vocab_size\": %d, \"tie_word_embeddings\": false, \"torch_dtype\": \"float16\"}\n",
             arch, E, ff, layers, NH, NKV, NV);
    return CONFIG;
}

/* A fresh folder under the test's temp dir: <tmp>/<name>/m. */
static char *make_dir(const char *name)
{
    char *d = hs_test_tmpfile(name);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s/m'", d, d);
    assert_int_equal(system(cmd), 0);
    size_t len = strlen(d) + 3;
    char *m = malloc(len);
    snprintf(m, len, "%s/m", d);
    free(d);
    return m;
}

static void make_hf(const char *dir, const struct hf *h, const char *arch, bool sharded)
{
    write_text(dir, "config.json", config_json(arch, FF, NL));
    char p[1024];
    if (!sharded) {
        snprintf(p, sizeof p, "%s/model.safetensors", dir);
        write_st(p, h, 0, h->n);
        return;
    }
    int cut = h->n / 2;
    snprintf(p, sizeof p, "%s/model-00001-of-00002.safetensors", dir);
    write_st(p, h, 0, cut);
    snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", dir);
    write_st(p, h, cut, h->n);
    char idx[16384];
    int k = snprintf(idx, sizeof idx, "{\"metadata\": {\"total_size\": 0}, \"weight_map\": {");
    for (int i = 0; i < h->n; i++)
        k += snprintf(idx + k, sizeof idx - (size_t)k, "%s\"%s\": \"model-0000%d-of-00002.safetensors\"", i ? ", " : "",
                      h->t[i].name, i < cut ? 1 : 2);
    snprintf(idx + k, sizeof idx - (size_t)k, "}}\n");
    write_text(dir, "model.safetensors.index.json", idx);
}

static int convert(const char *dir, const char *out, uint32_t type, const char *vocab, hs_err *err)
{
    struct hs_convert_opts o = {.hf_dir = dir, .out_path = out, .outtype = type, .vocab_from = vocab};
    return hs_convert_hf(&o, err);
}

/* ---- checks ---- */

/* The GGUF name of HF tensor i of build()'s order. */
static void gguf_name(const char *hf, char *out)
{
    int layer;
    assert_int_equal(hs_convert_map_name(hf, out, 96, &layer), HS_OK);
}

/* Source row feeding GGUF row r of a permuted Q/K matrix, written from the
 * HF side: HF stores head h's rotary pairs (2i, 2i+1) at rows h*hd + i and
 * h*hd + hd/2 + i. */
static int64_t hf_row_for(int64_t r, int heads, int64_t rows)
{
    int64_t hd = rows / heads;
    for (int h = 0; h < heads; h++)
        for (int64_t i = 0; i < hd / 2; i++)
            for (int j = 0; j < 2; j++)
                if (h * hd + 2 * i + j == r)
                    return h * hd + j * (hd / 2) + i;
    fail();
    return -1;
}

static void check_values(const char *path, const struct hf *h, uint32_t outtype, bool permute)
{
    hs_gguf *g;
    hs_err err = {0};
    assert_int_equal(hs_gguf_open(path, &g, &err), HS_OK);
    assert_int_equal(hs_gguf_n_tensors(g), h->n);
    float *row = malloc(4 * 256);
    uint8_t *q = malloc(4 * 256);
    for (int i = 0; i < h->n; i++) {
        const struct src_tensor *s = &h->t[i];
        char name[96];
        gguf_name(s->name, name);
        const struct hs_gguf_tensor *t = hs_gguf_find_tensor(g, name);
        assert_non_null(t);
        assert_int_equal(t->n_dims, s->nd);
        int64_t rows = s->nd == 1 ? 1 : s->shape[0], cols = s->nd == 1 ? s->shape[0] : s->shape[1];
        assert_int_equal(t->ne[0], cols);
        assert_int_equal(t->ne[1], rows);
        uint32_t want = s->nd == 1 ? HS_TYPE_F32 : outtype;
        if (want == HS_TYPE_Q8_0 && cols % 32)
            want = HS_TYPE_F16;
        assert_int_equal(t->type, want);
        int heads = 0;
        if (permute && strstr(name, "attn_q.weight"))
            heads = NH;
        if (permute && strstr(name, "attn_k.weight"))
            heads = NKV;
        size_t rb = hs_type_row_bytes(t->type, cols);
        for (int64_t r = 0; r < rows; r++) {
            int64_t sr = heads ? hf_row_for(r, heads, rows) : r;
            const float *src = s->vals + sr * cols;
            const uint8_t *got = (const uint8_t *)t->data + (size_t)r * rb;
            if (t->type == HS_TYPE_Q8_0) {
                hs_qtype(HS_TYPE_Q8_0)->from_float_ref(src, q, cols);
                assert_memory_equal(got, q, rb);
                continue;
            }
            hs_qtype((int)t->type)->to_float(got, row, cols);
            for (int64_t c = 0; c < cols; c++) {
                float w = src[c];
                if (t->type == HS_TYPE_F16)
                    w = hs_fp16_to_f32(hs_f32_to_fp16(w));
                else if (t->type == HS_TYPE_BF16)
                    w = hs_bf16_to_f32(hs_f32_to_bf16(w));
                if (memcmp(&w, &row[c], 4))
                    fail_msg("%s row %lld col %lld: %g != %g", name, (long long)r, (long long)c, (double)row[c],
                             (double)w);
            }
        }
    }
    uint32_t u;
    float f;
    assert_int_equal(hs_gguf_get_u32(g, "general.file_type", &u, &err), HS_OK);
    assert_int_equal((int)u, hs_convert_file_type(outtype));
    const char *arch = permute ? "llama" : "qwen2";
    char key[64];
    snprintf(key, sizeof key, "%s.feed_forward_length", arch);
    assert_int_equal(hs_gguf_get_u32(g, key, &u, &err), HS_OK);
    assert_int_equal(u, FF);
    snprintf(key, sizeof key, "%s.attention.head_count_kv", arch);
    assert_int_equal(hs_gguf_get_u32(g, key, &u, &err), HS_OK);
    assert_int_equal(u, NKV);
    snprintf(key, sizeof key, "%s.rope.freq_base", arch);
    assert_int_equal(hs_gguf_get_f32(g, key, &f, &err), HS_OK);
    assert_true(f == 50000.0f);
    snprintf(key, sizeof key, "%s.rope.dimension_count", arch);
    assert_int_equal(hs_gguf_get_u32(g, key, &u, &err), HS_OK);
    assert_int_equal(u, HD);
    free(row);
    free(q);
    hs_gguf_close(g);
}

static bool exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

/* No file in the output's folder starts with the output's name. */
static void assert_no_output(const char *out)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", out);
    char *slash = strrchr(dir, '/');
    assert_non_null(slash);
    *slash = 0;
    const char *base = slash + 1;
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, base, strlen(base)))
            fail_msg("left behind: %s/%s", dir, e->d_name);
    closedir(d);
}

/* ---- tests ---- */

static void converts_tiny_llama_every_outtype(void **state)
{
    (void)state;
    struct hf h;
    build(&h, 1);
    char *dir = make_dir("llama");
    make_hf(dir, &h, "LlamaForCausalLM", false);
    const uint32_t types[] = {HS_TYPE_F32, HS_TYPE_F16, HS_TYPE_BF16, HS_TYPE_Q8_0};
    for (int i = 0; i < 4; i++) {
        char *out = hs_test_tmpfile("llama.gguf");
        hs_err err = {0};
        int rc = convert(dir, out, types[i], NULL, &err);
        if (rc)
            fail_msg("%s", err.msg);
        check_values(out, &h, types[i], true);
        remove(out);
        free(out);
    }
    free(dir);
    free_hf(&h);
}

static void converts_qwen2_without_permutation(void **state)
{
    (void)state;
    struct hf h;
    build(&h, 2);
    char *dir = make_dir("qwen2");
    make_hf(dir, &h, "Qwen2ForCausalLM", false);
    char *out = hs_test_tmpfile("qwen2.gguf");
    hs_err err = {0};
    assert_int_equal(convert(dir, out, HS_TYPE_F32, NULL, &err), HS_OK);
    check_values(out, &h, HS_TYPE_F32, false);
    free(out);
    free(dir);
    free_hf(&h);
}

static void sharded_equals_single_file(void **state)
{
    (void)state;
    struct hf h;
    build(&h, 3);
    char *one = make_dir("single"), *two = make_dir("sharded");
    make_hf(one, &h, "MistralForCausalLM", false);
    make_hf(two, &h, "MistralForCausalLM", true);
    char *o1 = hs_test_tmpfile("single.gguf"), *o2 = hs_test_tmpfile("sharded.gguf");
    hs_err err = {0};
    assert_int_equal(convert(one, o1, HS_TYPE_F16, NULL, &err), HS_OK);
    assert_int_equal(convert(two, o2, HS_TYPE_F16, NULL, &err), HS_OK);
    check_values(o2, &h, HS_TYPE_F16, true);
    /* Same folder name "m": the files must be identical. */
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", o1, o2);
    assert_int_equal(system(cmd), 0);
    free(o1);
    free(o2);
    free(one);
    free(two);
    free_hf(&h);
}

static void expect_fail(const char *dir, int code, const char *n1, const char *n2)
{
    char *out = hs_test_tmpfile("bad.gguf");
    hs_err err = {0};
    int rc = convert(dir, out, HS_TYPE_F16, NULL, &err);
    if (rc != code || !strstr(err.msg, n1) || (n2 && !strstr(err.msg, n2)))
        fail_msg("got %d '%s', wanted %d naming '%s' and '%s'", rc, err.msg, code, n1, n2 ? n2 : "");
    assert_false(exists(out));
    assert_no_output(out);
    free(out);
}

static void bad_input_fails_cleanly(void **state)
{
    (void)state;
    struct hf h;
    build(&h, 4);
    char *dir = make_dir("bad");
    char p[1024];
    make_hf(dir, &h, "LlamaForCausalLM", false);
    snprintf(p, sizeof p, "%s/config.json", dir);
    remove(p);
    expect_fail(dir, HS_EIO, "config.json", "missing");
    write_text(dir, "config.json", "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 64,");
    expect_fail(dir, HS_EFORMAT, "config.json", "line");
    write_text(dir, "config.json", "{\"architectures\": [\"LlamaForCausalLM\"]}");
    expect_fail(dir, HS_EFORMAT, "config.json", "'hidden_size'");
    write_text(dir, "config.json", config_json("LlamaForCausalLM", FF, 2000000000));
    expect_fail(dir, HS_EFORMAT, "config.json", "'num_hidden_layers'");
    write_text(dir, "config.json", config_json("GPT2LMHeadModel", FF, NL));
    expect_fail(dir, HS_EUNSUPPORTED, "config.json", "'architectures'");
    /* Shapes that do not match the config. */
    write_text(dir, "config.json", config_json("LlamaForCausalLM", FF + 8, NL));
    expect_fail(dir, HS_EFORMAT, "model.safetensors", "'model.layers.0.mlp.gate_proj.weight'");
    write_text(dir, "config.json", config_json("LlamaForCausalLM", FF, NL + 1));
    expect_fail(dir, HS_EFORMAT, "config.json", "layer 2");
    write_text(dir, "config.json", config_json("LlamaForCausalLM", FF, NL - 1));
    expect_fail(dir, HS_EFORMAT, "'model.layers.1.", "num_hidden_layers");
    write_text(dir, "config.json", config_json("LlamaForCausalLM", FF, NL));
    /* A header that lies about offsets, then about a dtype. */
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    struct hf lie = h;
    lie.t[0].shape[0] = NV + 1; /* header says more than the data holds */
    lie.t[0].vals = malloc((size_t)(NV + 1) * E * 4);
    memcpy(lie.t[0].vals, h.t[0].vals, (size_t)NV * E * 4);
    memset(lie.t[0].vals + NV * E, 0, E * 4);
    write_st(p, &lie, 0, lie.n);
    expect_fail(dir, HS_EFORMAT, "model.safetensors", "'model.embed_tokens.weight'");
    {
        /* Truncate the data: the last tensor's offsets now run past the end. */
        write_st(p, &h, 0, h.n);
        struct stat st;
        assert_int_equal(stat(p, &st), 0);
        assert_int_equal(truncate(p, st.st_size - 2), 0);
        expect_fail(dir, HS_EFORMAT, "model.safetensors", "'lm_head.weight'");
    }
    free(lie.t[0].vals);
    write_st(p, &h, 0, h.n);
    {
        /* Rewrite one dtype in place: "F16" -> "I16" keeps every offset. */
        FILE *f = fopen(p, "r+b");
        char buf[16384];
        size_t n = fread(buf, 1, sizeof buf, f);
        char *at = strstr(buf + 8, "\"F16\"");
        assert_non_null(at);
        assert_true((size_t)(at - buf) < n);
        at[1] = 'I';
        fseek(f, 0, SEEK_SET);
        fwrite(buf, 1, n, f);
        fclose(f);
        expect_fail(dir, HS_EUNSUPPORTED, "model.safetensors", "dtype 'I16'");
    }
    /* A tensor with no GGUF name. */
    char saved[96];
    memcpy(saved, h.t[1].name, sizeof saved);
    snprintf(h.t[1].name, sizeof h.t[1].name, "model.vision_tower.weight");
    write_st(p, &h, 0, h.n);
    expect_fail(dir, HS_EUNSUPPORTED, "model.safetensors", "'model.vision_tower.weight'");
    memcpy(h.t[1].name, saved, sizeof saved);
    free(dir);
    free_hf(&h);
}

static void stories260k_derived_equals_gguf(void **state)
{
    (void)state;
    const char *dir0 = HS_SHARED_OR_SKIP("testdata/hf/stories260K-derived/config.json");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", dir0);
    *strrchr(dir, '/') = 0;
    char ref_path[1024];
    snprintf(ref_path, sizeof ref_path, "%s", HS_SHARED_OR_SKIP("models/stories260K.gguf"));
    char *out = hs_test_tmpfile("stories.gguf");
    hs_err err = {0};
    int rc = convert(dir, out, HS_TYPE_F32, ref_path, &err);
    if (rc)
        fail_msg("%s", err.msg);
    hs_gguf *g, *ref;
    assert_int_equal(hs_gguf_open(out, &g, &err), HS_OK);
    assert_int_equal(hs_gguf_open(ref_path, &ref, &err), HS_OK);
    int64_t matched = 0;
    for (int64_t i = 0; i < hs_gguf_n_tensors(ref); i++) {
        const struct hs_gguf_tensor *r = hs_gguf_tensor_at(ref, i);
        const struct hs_gguf_tensor *t = hs_gguf_find_tensor(g, r->name);
        if (!t) {
            /* Only a tied output may be left out. */
            assert_string_equal(r->name, "output.weight");
            const struct hs_gguf_tensor *e = hs_gguf_find_tensor(ref, "token_embd.weight");
            assert_int_equal(e->nbytes, r->nbytes);
            assert_memory_equal(e->data, r->data, r->nbytes);
            continue;
        }
        assert_int_equal(t->type, r->type);
        assert_int_equal(t->n_dims, r->n_dims);
        for (int d = 0; d < HS_GGUF_MAX_DIMS; d++)
            assert_int_equal(t->ne[d], r->ne[d]);
        assert_int_equal(t->nbytes, r->nbytes);
        if (memcmp(t->data, r->data, r->nbytes))
            fail_msg("tensor %s differs", r->name);
        matched++;
    }
    assert_int_equal(matched, hs_gguf_n_tensors(g));
    /* Every tokenizer key came over, value for value. */
    for (int64_t i = 0; i < hs_gguf_n_kv(ref); i++) {
        const struct hs_gguf_kv *kv = hs_gguf_kv_at(ref, i);
        if (strncmp(kv->key, "tokenizer.", 10))
            continue;
        const struct hs_gguf_kv *o = hs_gguf_find_kv(g, kv->key);
        assert_non_null(o);
        size_t la, lb;
        const void *a = hs_gguf_kv_raw(ref, kv, &la), *b = hs_gguf_kv_raw(g, o, &lb);
        assert_int_equal(la, lb);
        assert_memory_equal(a, b, la);
    }
    hs_gguf_close(g);
    hs_gguf_close(ref);
    free(out);
}

/* ---- a SentencePiece tokenizer.model written from a GGUF's vocabulary ---- */

struct pbw {
    uint8_t *p;
    size_t n, cap;
};

static void pb_put(struct pbw *b, const void *d, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}

static void pb_varint(struct pbw *b, uint64_t v)
{
    do {
        uint8_t c = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v)
            c |= 0x80;
        pb_put(b, &c, 1);
    } while (v);
}

static void pb_bytes(struct pbw *b, uint32_t field, const void *d, size_t n)
{
    pb_varint(b, (uint64_t)field << 3 | 2);
    pb_varint(b, n);
    pb_put(b, d, n);
}

/* ModelProto with every piece of ref's vocabulary, a trainer_spec with the
 * special ids (pad -1, encoded as protobuf encodes a negative int32), and an
 * unknown field the reader must skip. */
static void write_spm(const char *path, const hs_gguf *ref)
{
    hs_err err = {0};
    const struct hs_gguf_kv *toks, *scores, *types;
    assert_int_equal(hs_gguf_get_arr(ref, "tokenizer.ggml.tokens", HS_GGUF_STRING, &toks, &err), HS_OK);
    assert_int_equal(hs_gguf_get_arr(ref, "tokenizer.ggml.scores", HS_GGUF_FLOAT32, &scores, &err), HS_OK);
    assert_int_equal(hs_gguf_get_arr(ref, "tokenizer.ggml.token_type", HS_GGUF_INT32, &types, &err), HS_OK);
    struct pbw m = {0};
    for (uint64_t i = 0; i < toks->n; i++) {
        struct pbw pc = {0};
        size_t len;
        const char *s = hs_gguf_arr_str(ref, toks, i, &len);
        pb_bytes(&pc, 1, s, len);
        float f = (float)hs_gguf_arr_f64(scores, i);
        pb_varint(&pc, 2 << 3 | 5);
        pb_put(&pc, &f, 4);
        int64_t ty = hs_gguf_arr_i64(types, i);
        if (ty != 1) { /* NORMAL is the default: leave it out, as protobuf does */
            pb_varint(&pc, 3 << 3 | 0);
            pb_varint(&pc, (uint64_t)ty);
        }
        pb_bytes(&m, 1, pc.p, pc.n);
        free(pc.p);
    }
    struct pbw ts = {0};
    pb_varint(&ts, 3 << 3 | 0);
    pb_varint(&ts, 2); /* model_type BPE */
    uint32_t unk, bos, eos;
    assert_int_equal(hs_gguf_get_u32(ref, "tokenizer.ggml.unknown_token_id", &unk, &err), HS_OK);
    assert_int_equal(hs_gguf_get_u32(ref, "tokenizer.ggml.bos_token_id", &bos, &err), HS_OK);
    assert_int_equal(hs_gguf_get_u32(ref, "tokenizer.ggml.eos_token_id", &eos, &err), HS_OK);
    pb_varint(&ts, 40 << 3 | 0);
    pb_varint(&ts, unk);
    pb_varint(&ts, 41 << 3 | 0);
    pb_varint(&ts, bos);
    pb_varint(&ts, 42 << 3 | 0);
    pb_varint(&ts, eos);
    pb_varint(&ts, 43 << 3 | 0);
    pb_varint(&ts, (uint64_t)(int64_t)-1);
    pb_bytes(&m, 2, ts.p, ts.n);
    pb_bytes(&m, 3, "\x0a\x04nmt_", 6); /* normalizer_spec: skipped */
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fwrite(m.p, 1, m.n, f);
    assert_int_equal(fclose(f), 0);
    free(m.p);
    free(ts.p);
}

static void same_kv(const hs_gguf *a, const hs_gguf *b, const char *key)
{
    const struct hs_gguf_kv *x = hs_gguf_find_kv(a, key), *y = hs_gguf_find_kv(b, key);
    if (!x || !y)
        fail_msg("%s: missing", key);
    size_t la, lb;
    const void *pa = hs_gguf_kv_raw(a, x, &la), *pb = hs_gguf_kv_raw(b, y, &lb);
    if (x->type != y->type || la != lb || memcmp(pa, pb, la))
        fail_msg("%s differs", key);
}

static void imports_sentencepiece_tokenizer_model(void **state)
{
    (void)state;
    const char *cfg = HS_SHARED_OR_SKIP("testdata/hf/stories260K-derived/config.json");
    char src[1024], ref_path[1024], cmd[4096], p[1024];
    snprintf(src, sizeof src, "%s", cfg);
    *strrchr(src, '/') = 0;
    snprintf(ref_path, sizeof ref_path, "%s", HS_SHARED_OR_SKIP("models/stories260K.gguf"));
    char *dir = make_dir("spm");
    snprintf(cmd, sizeof cmd, "cp '%s/config.json' '%s/model.safetensors' '%s/'", src, src, dir);
    assert_int_equal(system(cmd), 0);
    hs_gguf *ref, *g;
    hs_err err = {0};
    assert_int_equal(hs_gguf_open(ref_path, &ref, &err), HS_OK);
    snprintf(p, sizeof p, "%s/tokenizer.model", dir);
    write_spm(p, ref);
    write_text(dir, "tokenizer_config.json",
               "{\"add_bos_token\": true, \"add_eos_token\": false, \"chat_template\": \"{{ messages }}\"}");
    char *out = hs_test_tmpfile("spm.gguf");
    int rc = convert(dir, out, HS_TYPE_F32, NULL, &err);
    if (rc)
        fail_msg("%s", err.msg);
    assert_int_equal(hs_gguf_open(out, &g, &err), HS_OK);
    same_kv(g, ref, "tokenizer.ggml.model");
    same_kv(g, ref, "tokenizer.ggml.tokens");
    same_kv(g, ref, "tokenizer.ggml.scores");
    same_kv(g, ref, "tokenizer.ggml.token_type");
    same_kv(g, ref, "tokenizer.ggml.bos_token_id");
    same_kv(g, ref, "tokenizer.ggml.eos_token_id");
    same_kv(g, ref, "tokenizer.ggml.unknown_token_id");
    assert_null(hs_gguf_find_kv(g, "tokenizer.ggml.padding_token_id"));
    const char *s;
    size_t len;
    assert_int_equal(hs_gguf_get_str(g, "tokenizer.chat_template", &s, &len, &err), HS_OK);
    assert_int_equal(len, 14);
    assert_memory_equal(s, "{{ messages }}", 14);
    /* Both vocabularies tokenize alike. */
    hs_tok *ta, *tb;
    assert_int_equal(hs_tok_load(ref, &ta, &err), HS_OK);
    assert_int_equal(hs_tok_load(g, &tb, &err), HS_OK);
    const char *text = "Once upon a time, Lily saw a big dog. \xe2\x9c\x93 x\n";
    int32_t *ia, *ib;
    size_t na, nb;
    assert_int_equal(hs_tok_encode(ta, text, strlen(text), true, false, &ia, &na, &err), HS_OK);
    assert_int_equal(hs_tok_encode(tb, text, strlen(text), true, false, &ib, &nb, &err), HS_OK);
    assert_int_equal(na, nb);
    assert_memory_equal(ia, ib, na * sizeof *ia);
    free(ia);
    free(ib);
    hs_tok_free(ta);
    hs_tok_free(tb);
    hs_gguf_close(g);
    remove(out);

    /* A truncated protobuf. */
    FILE *f = fopen(p, "r+b");
    assert_non_null(f);
    assert_int_equal(ftruncate(fileno(f), 1000), 0);
    fclose(f);
    rc = convert(dir, out, HS_TYPE_F32, NULL, &err);
    assert_int_equal(rc, HS_EFORMAT);
    assert_non_null(strstr(err.msg, "tokenizer.model"));
    assert_false(exists(out));
    assert_no_output(out);
    hs_gguf_close(ref);
    free(out);
    free(dir);
}

/* n pieces "t0".."t<n-1>" with default trainer_spec ids. */
static void write_spm_n(const char *path, int n)
{
    struct pbw m = {0};
    for (int i = 0; i < n; i++) {
        struct pbw pc = {0};
        char t[16];
        int len = snprintf(t, sizeof t, "t%d", i);
        pb_bytes(&pc, 1, t, (size_t)len);
        pb_bytes(&m, 1, pc.p, pc.n);
        free(pc.p);
    }
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fwrite(m.p, 1, m.n, f);
    assert_int_equal(fclose(f), 0);
    free(m.p);
}

static void pads_or_refuses_sentencepiece_vocab_sizes(void **state)
{
    (void)state;
    struct hf h;
    build(&h, 5);
    char *dir = make_dir("spmpad");
    make_hf(dir, &h, "LlamaForCausalLM", false);
    char p[1024];
    snprintf(p, sizeof p, "%s/tokenizer.model", dir);
    write_spm_n(p, NV - 3);
    char *out = hs_test_tmpfile("spmpad.gguf");
    hs_err err = {0};
    int rc = convert(dir, out, HS_TYPE_F32, NULL, &err);
    if (rc)
        fail_msg("%s", err.msg);
    hs_gguf *g;
    assert_int_equal(hs_gguf_open(out, &g, &err), HS_OK);
    const struct hs_gguf_kv *toks, *types;
    assert_int_equal(hs_gguf_get_arr(g, "tokenizer.ggml.tokens", HS_GGUF_STRING, &toks, &err), HS_OK);
    assert_int_equal(hs_gguf_get_arr(g, "tokenizer.ggml.token_type", HS_GGUF_INT32, &types, &err), HS_OK);
    assert_int_equal(toks->n, NV);
    size_t len;
    const char *s = hs_gguf_arr_str(g, toks, 5, &len);
    assert_int_equal(len, 2);
    assert_memory_equal(s, "t5", 2);
    assert_int_equal(hs_gguf_arr_i64(types, 5), 1);
    s = hs_gguf_arr_str(g, toks, NV - 1, &len);
    char want[32];
    snprintf(want, sizeof want, "[PAD%d]", NV - 1);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(s, want, len);
    assert_int_equal(hs_gguf_arr_i64(types, NV - 1), 5);
    hs_gguf_close(g);
    remove(out);
    write_spm_n(p, NV + 1);
    rc = convert(dir, out, HS_TYPE_F32, NULL, &err);
    assert_int_equal(rc, HS_EFORMAT);
    assert_non_null(strstr(err.msg, "tokenizer.model"));
    assert_non_null(strstr(err.msg, "vocab_size"));
    assert_no_output(out);
    free(out);
    free(dir);
    free_hf(&h);
}

/* ---- a byte-level BPE tokenizer.json ---- */

/* GPT-2's byte -> character map, written out from its definition: printable
 * bytes keep their code point, the rest take 256, 257, ... in byte order. */
static unsigned byte_cp(int b)
{
    int n = 0;
    for (int x = 0; x < 256; x++) {
        bool keep = (x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255);
        if (x == b)
            return keep ? (unsigned)x : 256u + (unsigned)n;
        if (!keep)
            n++;
    }
    return 0;
}

static const char *const BPE_MERGES[][2] = {{"h", "e"}, {"l", "l"}, {"he", "ll"}, {"hell", "o"},
                                           {"\\u0120", "w"}, {"o", "r"}, {"\\u0120w", "or"}};
static const char *const BPE_MERGED[] = {"he", "ll", "hell", "hello", "\\u0120w", "or", "\\u0120wor"};
enum { N_MERGES = 7 };

static void write_bpe(const char *dir, bool hf_json)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, hf_json ? "tokenizer.json" : "vocab.json");
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    if (hf_json)
        fputs("{\"version\": \"1.0\", \"added_tokens\": [{\"id\": 263, \"content\": \"<|endoftext|>\", \"special\": true},"
              " {\"id\": 264, \"content\": \"<tool>\", \"special\": false}],\n"
              " \"pre_tokenizer\": {\"type\": \"ByteLevel\"},\n"
              " \"model\": {\"type\": \"BPE\", \"byte_fallback\": false, \"vocab\": {",
              f);
    else
        fputs("{", f);
    for (int b = 0; b < 256; b++)
        fprintf(f, "%s\"\\u%04x\": %d", b ? ", " : "", byte_cp(b), b);
    for (int i = 0; i < N_MERGES; i++)
        fprintf(f, ", \"%s\": %d", BPE_MERGED[i], 256 + i);
    if (!hf_json) {
        fputs(", \"<|endoftext|>\": 263, \"<tool>\": 264}\n", f);
        fclose(f);
        snprintf(p, sizeof p, "%s/merges.txt", dir);
        f = fopen(p, "w");
        fputs("#version: 0.2\n", f);
        for (int i = 0; i < N_MERGES; i++)
            fprintf(f, "%s %s\n", !strcmp(BPE_MERGES[i][0], "\\u0120") ? "\xc4\xa0" :
                                  !strcmp(BPE_MERGES[i][0], "\\u0120w") ? "\xc4\xa0w" : BPE_MERGES[i][0],
                    BPE_MERGES[i][1]);
        fclose(f);
        return;
    }
    fputs("}, \"merges\": [", f);
    for (int i = 0; i < N_MERGES; i++) {
        if (i % 2) /* both spellings: "a b" and ["a", "b"] */
            fprintf(f, "%s\"%s %s\"", i ? ", " : "", BPE_MERGES[i][0], BPE_MERGES[i][1]);
        else
            fprintf(f, "%s[\"%s\", \"%s\"]", i ? ", " : "", BPE_MERGES[i][0], BPE_MERGES[i][1]);
    }
    fputs("]}}\n", f);
    fclose(f);
}

static void imports_bpe_tokenizer_json(void **state)
{
    (void)state;
    struct hf h;
    build(&h, 6);
    char *dir = make_dir("bpe");
    make_hf(dir, &h, "Qwen2ForCausalLM", false);
    write_bpe(dir, true);
    write_text(dir, "tokenizer_config.json",
               "{\"bos_token\": null, \"eos_token\": {\"content\": \"<|endoftext|>\"}, \"pad_token\": \"<|endoftext|>\","
               " \"add_bos_token\": false, \"chat_template\": \"{% for m in messages %}{{ m.content }}{% endfor %}\"}");
    char *out = hs_test_tmpfile("bpe.gguf");
    hs_err err = {0};
    int rc = convert(dir, out, HS_TYPE_F32, NULL, &err);
    if (rc)
        fail_msg("%s", err.msg);
    hs_gguf *g;
    assert_int_equal(hs_gguf_open(out, &g, &err), HS_OK);
    const char *s;
    size_t len;
    assert_int_equal(hs_gguf_get_str(g, "tokenizer.ggml.model", &s, &len, &err), HS_OK);
    assert_memory_equal(s, "gpt2", 4);
    assert_int_equal(hs_gguf_get_str(g, "tokenizer.ggml.pre", &s, &len, &err), HS_OK);
    assert_memory_equal(s, "qwen2", 5);
    const struct hs_gguf_kv *toks, *types, *merges;
    assert_int_equal(hs_gguf_get_arr(g, "tokenizer.ggml.tokens", HS_GGUF_STRING, &toks, &err), HS_OK);
    assert_int_equal(hs_gguf_get_arr(g, "tokenizer.ggml.token_type", HS_GGUF_INT32, &types, &err), HS_OK);
    assert_int_equal(hs_gguf_get_arr(g, "tokenizer.ggml.merges", HS_GGUF_STRING, &merges, &err), HS_OK);
    assert_int_equal(toks->n, NV);
    assert_int_equal(merges->n, N_MERGES);
    s = hs_gguf_arr_str(g, merges, 4, &len);
    assert_int_equal(len, 4);
    assert_memory_equal(s, "\xc4\xa0 w", 4);
    s = hs_gguf_arr_str(g, merges, 3, &len);
    assert_memory_equal(s, "hell o", 6);
    assert_int_equal(hs_gguf_arr_i64(types, 65), 1);
    assert_int_equal(hs_gguf_arr_i64(types, 263), 3);
    assert_int_equal(hs_gguf_arr_i64(types, 264), 4);
    assert_int_equal(hs_gguf_arr_i64(types, 299), 5);
    s = hs_gguf_arr_str(g, toks, 299, &len);
    assert_int_equal(len, 8);
    assert_memory_equal(s, "[PAD299]", 8);
    uint32_t id;
    assert_int_equal(hs_gguf_get_u32(g, "tokenizer.ggml.eos_token_id", &id, &err), HS_OK);
    assert_int_equal(id, 263);
    assert_int_equal(hs_gguf_get_u32(g, "tokenizer.ggml.padding_token_id", &id, &err), HS_OK);
    assert_int_equal(id, 263);
    assert_null(hs_gguf_find_kv(g, "tokenizer.ggml.bos_token_id"));
    assert_non_null(hs_gguf_find_kv(g, "tokenizer.chat_template"));
    /* The converted vocabulary encodes as the same one loaded from
     * vocab.json + merges.txt does. */
    write_bpe(dir, false);
    char vj[1024], mt[1024];
    snprintf(vj, sizeof vj, "%s/vocab.json", dir);
    snprintf(mt, sizeof mt, "%s/merges.txt", dir);
    hs_tok *ta, *tb;
    assert_int_equal(hs_tok_load(g, &ta, &err), HS_OK);
    rc = hs_tok_load_bpe_files(vj, mt, "qwen2", &tb, &err);
    if (rc)
        fail_msg("%s", err.msg);
    const char *text = "hello world, hello\nworld";
    int32_t *ia, *ib;
    size_t na, nb;
    assert_int_equal(hs_tok_encode(ta, text, strlen(text), false, false, &ia, &na, &err), HS_OK);
    assert_int_equal(hs_tok_encode(tb, text, strlen(text), false, false, &ib, &nb, &err), HS_OK);
    assert_int_equal(na, nb);
    assert_memory_equal(ia, ib, na * sizeof *ia);
    assert_int_equal(ia[0], 259); /* "hello" */
    free(ia);
    free(ib);
    hs_tok_free(ta);
    hs_tok_free(tb);
    hs_gguf_close(g);
    remove(out);
    /* Bad tokenizer files: named, nothing left behind. */
    write_text(dir, "tokenizer_config.json", "{\"eos_token\": \"<|nope|>\"}");
    assert_int_equal(convert(dir, out, HS_TYPE_F32, NULL, &err), HS_EFORMAT);
    assert_non_null(strstr(err.msg, "tokenizer_config.json"));
    assert_non_null(strstr(err.msg, "'eos_token'"));
    assert_no_output(out);
    write_text(dir, "tokenizer.json", "{\"model\": {\"type\": \"Unigram\"}}");
    assert_int_equal(convert(dir, out, HS_TYPE_F32, NULL, &err), HS_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, "'model.type'"));
    assert_no_output(out);
    write_text(dir, "tokenizer.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 999}, \"merges\": []}}");
    assert_int_equal(convert(dir, out, HS_TYPE_F32, NULL, &err), HS_EFORMAT);
    assert_non_null(strstr(err.msg, "model.vocab['a']"));
    assert_no_output(out);
    write_text(dir, "tokenizer.json", "{\"model\": ");
    assert_int_equal(convert(dir, out, HS_TYPE_F32, NULL, &err), HS_EFORMAT);
    assert_non_null(strstr(err.msg, "tokenizer.json"));
    assert_no_output(out);
    free(out);
    free(dir);
    free_hf(&h);
}

static void maps_names_like_llama_cpp(void **state)
{
    (void)state;
    char out[96];
    int layer;
    assert_int_equal(hs_convert_map_name("model.layers.12.self_attn.o_proj.weight", out, sizeof out, &layer), HS_OK);
    assert_string_equal(out, "blk.12.attn_output.weight");
    assert_int_equal(layer, 12);
    assert_int_equal(hs_convert_map_name("model.layers.0.mlp.down_proj.weight", out, sizeof out, &layer), HS_OK);
    assert_string_equal(out, "blk.0.ffn_down.weight");
    assert_int_equal(hs_convert_map_name("model.layers.3.self_attn.k_proj.bias", out, sizeof out, &layer), HS_OK);
    assert_string_equal(out, "blk.3.attn_k.bias");
    assert_int_equal(hs_convert_map_name("lm_head.weight", out, sizeof out, &layer), HS_OK);
    assert_string_equal(out, "output.weight");
    assert_int_equal(layer, -1);
    assert_int_equal(hs_convert_map_name("model.layers.1.self_attn.rotary_emb.inv_freq", out, sizeof out, &layer),
                     HS_ENOTFOUND);
    assert_int_equal(hs_convert_map_name("model.layers.x.mlp.up_proj.weight", out, sizeof out, &layer),
                     HS_EUNSUPPORTED);
    assert_int_equal(hs_convert_map_name("model.layers.01.mlp.up_proj.weight", out, sizeof out, &layer),
                     HS_EUNSUPPORTED);
    assert_int_equal(hs_convert_map_name("vision.tower.weight", out, sizeof out, &layer), HS_EUNSUPPORTED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(maps_names_like_llama_cpp),
        cmocka_unit_test(converts_tiny_llama_every_outtype),
        cmocka_unit_test(converts_qwen2_without_permutation),
        cmocka_unit_test(sharded_equals_single_file),
        cmocka_unit_test(bad_input_fails_cleanly),
        cmocka_unit_test(stories260k_derived_equals_gguf),
        cmocka_unit_test(imports_sentencepiece_tokenizer_model),
        cmocka_unit_test(pads_or_refuses_sentencepiece_vocab_sizes),
        cmocka_unit_test(imports_bpe_tokenizer_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
