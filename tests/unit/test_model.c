/* model/: loading (hparams, weight binding, errors) and the forward pass
 * against independent references: llama2.c's logits and greedy runs for
 * stories260K (../shared), and a naive float forward pass written here for
 * tiny llama and qwen2 models written by the test. */
#include "test_util.h"
#include "tiny_model.h"

#include "base/cpu.h"
#include "base/fp16.h"
#include "base/rng.h"
#include "gguf/gguf.h"
#include "model/context.h"
#include "model/model.h"
#include "model/ops.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* With an f32 KV cache the engine computes what a float reference
 * computes, up to summation order: logits agree when
 * |got - want| <= TOL * max(1, |want|) (absolute below 1, relative above;
 * logits of stories260K reach ~20).
 * The f16 cache rounds each K and V value to 11 significant bits, an error
 * proportional to the value (2^-11 relative), so logits move in proportion
 * to the row's scale: |got - want| <= TOL_F16 * max(1, max_j |want_j|).
 * Measured: 3e-4 of the row's scale for stories260K against llama2.c. */
#define TOL 1e-4
#define TOL_F16 1e-3

static void assert_logits_close(const float *got, const float *want, int n, double tol, bool row_scaled,
                                const char *what) {
    double row = 1.0;
    for (int i = 0; row_scaled && i < n; i++)
        row = fabs(want[i]) > row ? fabs(want[i]) : row;
    for (int i = 0; i < n; i++) {
        double scale = row_scaled ? row : fabs(want[i]) > 1.0 ? fabs(want[i]) : 1.0;
        if (!(fabs((double)got[i] - want[i]) <= tol * scale)) {
            print_message("%s: logit %d is %.7g, expected %.7g\n", what, i, got[i], want[i]);
            fail();
        }
    }
}

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) /* first of equal maxima, as llama2.c */
            best = i;
    return best;
}

static hs_model *load_ok(const char *path) {
    hs_model *m = NULL;
    hs_err err = {0};
    int rc = hs_model_load(path, NULL, &m, &err);
    if (rc)
        print_message("load %s: %s\n", path, err.msg);
    assert_int_equal(rc, HS_OK);
    return m;
}

static hs_ctx *ctx_ok(const hs_model *m, int n_ctx, int n_seq, int n_threads, enum hs_kv_type kv) {
    struct hs_ctx_params cp = {.n_ctx = n_ctx, .n_seq = n_seq, .n_batch = 64, .n_threads = n_threads, .kv_type = kv};
    hs_ctx *c = NULL;
    hs_err err = {0};
    int rc = hs_ctx_create(m, &cp, &c, &err);
    if (rc)
        print_message("ctx: %s\n", err.msg);
    assert_int_equal(rc, HS_OK);
    return c;
}

/* Decodes tokens [0, n) of one sequence as one batch, logits for all. */
static void decode_all(hs_ctx *c, const int32_t *toks, int n, int seq, int pos0) {
    int32_t pos[64], sq[64];
    int8_t want[64];
    assert_true(n <= 64);
    for (int i = 0; i < n; i++) {
        pos[i] = pos0 + i;
        sq[i] = seq;
        want[i] = 1;
    }
    struct hs_batch b = {.n = n, .tokens = toks, .pos = pos, .seq = sq, .logits = want};
    hs_err err = {0};
    int rc = hs_decode(c, &b, &err);
    if (rc)
        print_message("decode: %s\n", err.msg);
    assert_int_equal(rc, HS_OK);
}

/* ---- stories260K against llama2.c ---- */

static json_t *load_json(const char *path) {
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    if (!j)
        print_message("%s: %s\n", path, je.text);
    assert_non_null(j);
    return j;
}

static void stories_logits_match_llama2c(void **state) {
    (void)state;
    const char *mp = HS_SHARED_OR_SKIP("models/stories260K.gguf");
    char model_path[1024];
    snprintf(model_path, sizeof model_path, "%s", mp);
    json_t *ref = load_json(HS_SHARED_OR_SKIP("testdata/reference/stories260K_logits_once_upon_a_time.json"));
    hs_model *m = load_ok(model_path);
    const int V = hs_model_hparams(m)->n_vocab;
    assert_int_equal(V, 512);
    json_t *positions = json_object_get(ref, "positions");
    int n = (int)json_array_size(positions);
    assert_true(n >= 6 && n <= 64);
    int32_t toks[64];
    for (int i = 0; i < n; i++) {
        json_t *p = json_array_get(positions, (size_t)i);
        assert_int_equal(json_integer_value(json_object_get(p, "pos")), i);
        toks[i] = (int32_t)json_integer_value(json_object_get(p, "input_token"));
    }
    float *want = malloc((size_t)V * sizeof(float));
    for (int kv = HS_KV_F16; kv <= HS_KV_F32; kv++) {
        hs_ctx *c = ctx_ok(m, 512, 1, 2, (enum hs_kv_type)kv);
        decode_all(c, toks, n, 0, 0);
        for (int i = 0; i < n; i++) {
            json_t *p = json_array_get(positions, (size_t)i);
            json_t *lg = json_object_get(p, "logits");
            assert_int_equal(json_array_size(lg), V);
            for (int t = 0; t < V; t++)
                want[t] = (float)json_number_value(json_array_get(lg, (size_t)t));
            const float *got = hs_ctx_logits(c, i);
            assert_non_null(got);
            char what[64];
            snprintf(what, sizeof what, "%s cache, position %d", kv == HS_KV_F32 ? "f32" : "f16", i);
            assert_logits_close(got, want, V, kv == HS_KV_F32 ? TOL : TOL_F16, kv == HS_KV_F16, what);
            assert_int_equal(argmax(got, V), json_integer_value(json_object_get(p, "argmax")));
        }
        hs_ctx_free(c);
    }
    free(want);
    json_decref(ref);
    hs_model_free(m);
}

/* Every greedy (-t 0) run of llama2.c: the prompt as one batch, then one
 * argmax token at a time. llama2.c's -n counts every position, prompt
 * included, so sampled_ids holds steps - (prompt length - 1) tokens; the run
 * that stopped on BOS ends with that 1, which is not fed back. */
static void stories_greedy_runs_match_llama2c(void **state) {
    (void)state;
    const char *mp = HS_SHARED_OR_SKIP("models/stories260K.gguf");
    char model_path[1024];
    snprintf(model_path, sizeof model_path, "%s", mp);
    json_t *ref = load_json(HS_SHARED_OR_SKIP("testdata/reference/stories260K_runs.json"));
    hs_model *m = load_ok(model_path);
    const int V = hs_model_hparams(m)->n_vocab;
    /* the default f16 cache; one thread keeps ~1700 decode steps quick */
    hs_ctx *c = ctx_ok(m, 512, 1, 1, HS_KV_F16);
    json_t *runs = json_object_get(ref, "runs");
    int n_checked = 0;
    for (size_t r = 0; r < json_array_size(runs); r++) {
        json_t *run = json_array_get(runs, r);
        const char *label = json_string_value(json_object_get(run, "label"));
        if (!label || strncmp(label, "greedy", 6) != 0)
            continue;
        json_t *prompt = json_object_get(run, "prompt_ids"), *sampled = json_object_get(run, "sampled_ids");
        int np = (int)json_array_size(prompt), ns = (int)json_array_size(sampled);
        if (json_is_true(json_object_get(run, "stopped_on_bos"))) {
            assert_int_equal(json_integer_value(json_array_get(sampled, (size_t)ns - 1)), 1);
            ns--;
        }
        int32_t toks[64];
        for (int i = 0; i < np; i++)
            toks[i] = (int32_t)json_integer_value(json_array_get(prompt, (size_t)i));
        hs_ctx_seq_clear(c, 0);
        struct hs_batch b = {.n = np, .tokens = toks};
        hs_err err = {0};
        assert_int_equal(hs_decode(c, &b, &err), HS_OK);
        for (int s = 0; s < ns; s++) {
            int got = argmax(hs_ctx_logits(c, b.n - 1), V);
            int want = (int)json_integer_value(json_array_get(sampled, (size_t)s));
            if (got != want) {
                print_message("run '%s' %d: token %d is %d, llama2.c chose %d\n", label, (int)r, s, got, want);
                fail();
            }
            int32_t t = got;
            struct hs_batch one = {.n = 1, .tokens = &t};
            assert_int_equal(hs_decode(c, &one, &err), HS_OK);
            b.n = 1;
        }
        n_checked++;
    }
    assert_true(n_checked >= 5);
    json_decref(ref);
    hs_ctx_free(c);
    hs_model_free(m);
}

/* ../shared's F16 llama (32000-token vocabulary, head_dim 4) loads and gives
 * finite logits. */
static void tiny_random_f16_loads_and_decodes(void **state) {
    (void)state;
    hs_model *m = load_ok(HS_SHARED_OR_SKIP("models/llama-2-tiny-random.gguf"));
    const struct hs_hparams *hp = hs_model_hparams(m);
    assert_int_equal(hp->n_vocab, 32000);
    assert_int_equal(hp->head_dim, 4);
    assert_int_equal(hp->file_type, 1);
    assert_non_null(strstr(hs_model_type_name(m), "f16"));
    hs_ctx *c = ctx_ok(m, 64, 1, 2, HS_KV_F16);
    int32_t toks[5] = {1, 450, 4996, 17354, 1701};
    decode_all(c, toks, 5, 0, 0);
    for (int i = 0; i < 5; i++) {
        const float *lg = hs_ctx_logits(c, i);
        for (int t = 0; t < hp->n_vocab; t++)
            assert_true(isfinite(lg[t]));
    }
    hs_ctx_free(c);
    hs_model_free(m);
}

/* ---- a naive reference forward pass ----
 * Plain float C, one token at a time, sums in double, rope angles in double,
 * written from the math and not from forward.c. With f16_cache, K and V are
 * rounded to f16 as they are cached, as the engine's default cache does. */

struct ref {
    const struct tiny_params *p;
    const struct tiny_weights *w;
    int E, hd, Q, KV, F, V;
    float *kc, *vc; /* (layer, pos, KV) */
    int max_pos;
    bool f16_cache;
};

static void ref_init(struct ref *R, const struct tiny_params *p, const struct tiny_weights *w, int max_pos,
                     bool f16_cache) {
    R->p = p;
    R->f16_cache = f16_cache;
    R->w = w;
    R->E = p->n_embd;
    R->hd = p->n_embd / p->n_head;
    R->Q = p->n_head * R->hd;
    R->KV = p->n_head_kv * R->hd;
    R->F = p->n_ff;
    R->V = p->n_vocab;
    R->max_pos = max_pos;
    R->kc = calloc((size_t)p->n_layer * max_pos * R->KV, sizeof(float));
    R->vc = calloc((size_t)p->n_layer * max_pos * R->KV, sizeof(float));
}

static void ref_free(struct ref *R) {
    free(R->kc);
    free(R->vc);
}

static void matvec(float *y, const float *W, const float *x, int rows, int cols) {
    for (int r = 0; r < rows; r++) {
        double s = 0;
        for (int c = 0; c < cols; c++)
            s += (double)W[(size_t)r * cols + c] * x[c];
        y[r] = (float)s;
    }
}

static void rmsnorm(float *y, const float *x, const float *w, int n) {
    double ss = 0;
    for (int i = 0; i < n; i++)
        ss += (double)x[i] * x[i];
    double k = 1.0 / sqrt(ss / n + 1e-5);
    for (int i = 0; i < n; i++)
        y[i] = (float)(x[i] * k * w[i]);
}

static void rope(const struct ref *R, float *x, int pos) {
    const struct tiny_params *p = R->p;
    const bool neox = !strcmp(p->arch, "qwen2");
    const int n = R->hd; /* rope.dimension_count == head_dim in the tiny models */
    const double base = p->freq_base > 0 ? p->freq_base : 10000.0;
    for (int i = 0; i < n / 2; i++) {
        double theta = pos * pow(base, -2.0 * i / n);
        if (p->rope_scale > 0)
            theta /= p->rope_scale;
        if (R->w->rope_freqs)
            theta /= R->w->rope_freqs[i];
        int a = neox ? i : 2 * i, b = neox ? i + n / 2 : 2 * i + 1;
        double x0 = x[a], x1 = x[b];
        x[a] = (float)(x0 * cos(theta) - x1 * sin(theta));
        x[b] = (float)(x0 * sin(theta) + x1 * cos(theta));
    }
}

static float f16r(float x) { return hs_fp16_to_f32(hs_f32_to_fp16(x)); }

static void ref_token(struct ref *R, int token, int pos, float *logits) {
    const struct tiny_params *p = R->p;
    const struct tiny_weights *w = R->w;
    const int E = R->E, hd = R->hd, Q = R->Q, KV = R->KV, F = R->F;
    float *x = malloc(E * sizeof(float)), *xn = malloc(E * sizeof(float)), *t = malloc(E * sizeof(float));
    float *q = malloc(Q * sizeof(float)), *k = malloc(KV * sizeof(float)), *v = malloc(KV * sizeof(float));
    float *att = malloc(Q * sizeof(float)), *g = malloc(F * sizeof(float)), *u = malloc(F * sizeof(float));
    double *sc = malloc((size_t)(pos + 1) * sizeof(double));
    memcpy(x, w->tok_embd + (size_t)token * E, E * sizeof(float));
    for (int l = 0; l < p->n_layer; l++) {
        const struct tiny_layer *y = &w->layers[l];
        rmsnorm(xn, x, y->attn_norm, E);
        matvec(q, y->wq, xn, Q, E);
        matvec(k, y->wk, xn, KV, E);
        matvec(v, y->wv, xn, KV, E);
        if (y->bq) {
            for (int i = 0; i < Q; i++)
                q[i] += y->bq[i];
            for (int i = 0; i < KV; i++) {
                k[i] += y->bk[i];
                v[i] += y->bv[i];
            }
        }
        for (int h = 0; h < p->n_head; h++)
            rope(R, q + h * hd, pos);
        for (int h = 0; h < p->n_head_kv; h++)
            rope(R, k + h * hd, pos);
        float *kc = R->kc + ((size_t)l * R->max_pos + pos) * KV, *vc = R->vc + ((size_t)l * R->max_pos + pos) * KV;
        for (int i = 0; i < KV; i++) {
            kc[i] = R->f16_cache ? f16r(k[i]) : k[i];
            vc[i] = R->f16_cache ? f16r(v[i]) : v[i];
        }
        for (int h = 0; h < p->n_head; h++) {
            int kvh = h / (p->n_head / p->n_head_kv);
            double mx = -INFINITY, sum = 0;
            for (int s = 0; s <= pos; s++) {
                const float *ks = R->kc + ((size_t)l * R->max_pos + s) * KV + kvh * hd;
                double d = 0;
                for (int i = 0; i < hd; i++)
                    d += (double)q[h * hd + i] * ks[i];
                sc[s] = d / sqrt((double)hd);
                mx = sc[s] > mx ? sc[s] : mx;
            }
            for (int s = 0; s <= pos; s++) {
                sc[s] = exp(sc[s] - mx);
                sum += sc[s];
            }
            for (int i = 0; i < hd; i++) {
                double o = 0;
                for (int s = 0; s <= pos; s++)
                    o += sc[s] / sum * R->vc[((size_t)l * R->max_pos + s) * KV + kvh * hd + i];
                att[h * hd + i] = (float)o;
            }
        }
        matvec(t, y->wo, att, E, Q);
        for (int i = 0; i < E; i++)
            x[i] += t[i];
        rmsnorm(xn, x, y->ffn_norm, E);
        matvec(g, y->w_gate, xn, F, E);
        matvec(u, y->w_up, xn, F, E);
        for (int i = 0; i < F; i++)
            g[i] = (float)(g[i] / (1.0 + exp(-(double)g[i])) * u[i]);
        matvec(t, y->w_down, g, E, F);
        for (int i = 0; i < E; i++)
            x[i] += t[i];
    }
    rmsnorm(xn, x, w->output_norm, E);
    matvec(logits, w->output ? w->output : w->tok_embd, xn, R->V, E);
    free(x), free(xn), free(t), free(q), free(k), free(v), free(att), free(g), free(u), free(sc);
}

/* Writes the tiny model, decodes a prompt chunk then single tokens, and
 * compares every position's logits with the reference: to TOL with an f32
 * cache; with the f16 cache against a reference that rounds its cache the
 * same way, where a value that lands on the other side of an f16 rounding
 * boundary (the two sum in different orders) still moves logits (TOL_F16). */
static void check_against_reference(const struct tiny_params *p, const char *file) {
    char *path = hs_test_tmpfile(file);
    struct tiny_weights w;
    assert_int_equal(tiny_model_write(path, p, &w), HS_OK);
    hs_model *m = load_ok(path);
    const int n = 20, V = p->n_vocab;
    int32_t toks[20];
    for (int i = 0; i < n; i++)
        toks[i] = (int32_t)((i * 37 + 5) % V);
    float *want = malloc((size_t)V * sizeof(float));
    for (int kv = HS_KV_F16; kv <= HS_KV_F32; kv++) {
        hs_ctx *c = ctx_ok(m, 64, 1, 2, (enum hs_kv_type)kv);
        decode_all(c, toks, 12, 0, 0);
        struct ref R;
        ref_init(&R, p, &w, n, kv == HS_KV_F16);
        for (int i = 0; i < n; i++) {
            if (i >= 12)
                decode_all(c, toks + i, 1, 0, i);
            ref_token(&R, toks[i], i, want);
            char what[64];
            snprintf(what, sizeof what, "%s %s cache, position %d", p->arch, kv == HS_KV_F32 ? "f32" : "f16", i);
            assert_logits_close(hs_ctx_logits(c, i >= 12 ? 0 : i), want, V, kv == HS_KV_F32 ? TOL : TOL_F16,
                                kv == HS_KV_F16, what);
        }
        ref_free(&R);
        hs_ctx_free(c);
    }
    free(want);
    tiny_weights_free(&w, p->n_layer);
    hs_model_free(m);
    free(path);
}

/* GQA 4:2, Llama-3 rope factors, linear rope scaling, untied output. */
static void tiny_llama_matches_reference(void **state) {
    (void)state;
    struct tiny_params p;
    tiny_params_default(&p);
    p.rope_freqs = true;
    p.rope_scale = 2.0f;
    p.freq_base = 500000.0f;
    p.seed = 11;
    check_against_reference(&p, "llama_ref.gguf");
}

/* QKV biases, NEOX rope, tied output (as Qwen2-0.5B), 8:2 heads. */
static void tiny_qwen2_matches_reference(void **state) {
    (void)state;
    struct tiny_params p;
    tiny_params_default(&p);
    p.arch = "qwen2";
    p.biases = true;
    p.n_head = 8;
    p.n_head_kv = 2;
    p.n_embd = 128;
    p.tied = true;
    p.freq_base = 1000000.0f;
    p.seed = 12;
    check_against_reference(&p, "qwen2_ref.gguf");
}

/* The same random weights stored as F32 and as F16 give close logits. */
static void tiny_f16_close_to_f32(void **state) {
    (void)state;
    struct tiny_params p;
    tiny_params_default(&p);
    char *p32 = hs_test_tmpfile("w32.gguf"), *p16 = hs_test_tmpfile("w16.gguf");
    assert_int_equal(tiny_model_write(p32, &p, NULL), HS_OK);
    p.type = HS_TYPE_F16;
    assert_int_equal(tiny_model_write(p16, &p, NULL), HS_OK);
    hs_model *m32 = load_ok(p32), *m16 = load_ok(p16);
    assert_true(hs_model_weight_bytes(m16) < hs_model_weight_bytes(m32));
    assert_string_equal(hs_model_type_name(m16), "f16/f32");
    hs_ctx *c32 = ctx_ok(m32, 32, 1, 2, HS_KV_F32), *c16 = ctx_ok(m16, 32, 1, 2, HS_KV_F32);
    int32_t toks[8] = {1, 300 - 1, 42, 7, 260, 261, 262, 2};
    decode_all(c32, toks, 8, 0, 0);
    decode_all(c16, toks, 8, 0, 0);
    for (int i = 0; i < 8; i++) {
        const float *a = hs_ctx_logits(c32, i), *b = hs_ctx_logits(c16, i);
        double num = 0, den = 0;
        for (int t = 0; t < p.n_vocab; t++) {
            num += (a[t] - b[t]) * (a[t] - b[t]);
            den += (double)a[t] * a[t];
        }
        /* f16 keeps 11 significant bits (~5e-4 relative per weight) */
        assert_true(sqrt(num / den) < 1e-2);
        assert_true(sqrt(num / den) > 0);
    }
    hs_ctx_free(c32);
    hs_ctx_free(c16);
    hs_model_free(m32);
    hs_model_free(m16);
    free(p32);
    free(p16);
}

/* ---- kernels ---- */

/* The attention's weighted sum of values (every head count, head sizes
 * that leave row remainders, lengths around the vector widths, f16 and f32
 * values) against a double-precision sum, for each level this CPU runs. The
 * bound is the float rounding of a sum of n products:
 * n * 2^-24 * sum |w_p v_p|, times 4 for headroom. */
static void attention_wsum_kernels_match_double(void **state) {
    (void)state;
    struct level {
        const char *name;
        bool ok;
        hs_attn_wsum_fn f16, f32;
    } lv[] = {
        {"ref", true, hs_attn_wsum_f16_ref, hs_attn_wsum_f32_ref},
        {"avx2", hs_cpu_level() >= HS_CPU_AVX2, hs_attn_wsum_f16_avx2, hs_attn_wsum_f32_avx2},
        {"avx512", hs_cpu_level() >= HS_CPU_AVX512, hs_attn_wsum_f16_avx512, hs_attn_wsum_f32_avx512},
    };
    const int lens[] = {1, 3, 7, 8, 9, 15, 16, 17, 31, 33, 64, 100, 257};
    const int hds[] = {4, 7, 8, 64};
    const int max_n = 257, ldv = 263;
    hs_rng r;
    hs_rng_seed(&r, 3);
    float *w = malloc((size_t)HS_ATTN_MAX_HEADS * (max_n + 5) * sizeof(float));
    hs_fp16 *v16 = malloc((size_t)64 * ldv * sizeof(hs_fp16));
    float *v32 = malloc((size_t)64 * ldv * sizeof(float));
    float *out = malloc((size_t)HS_ATTN_MAX_HEADS * 64 * sizeof(float));
    for (int i = 0; i < HS_ATTN_MAX_HEADS * (max_n + 5); i++)
        w[i] = hs_rng_f32(&r);
    for (int i = 0; i < 64 * ldv; i++) {
        v16[i] = hs_f32_to_fp16(hs_rng_normal(&r));
        v32[i] = hs_rng_normal(&r);
    }
    for (size_t k = 0; k < sizeof lv / sizeof lv[0]; k++) {
        if (!lv[k].ok)
            continue;
        for (size_t hi = 0; hi < sizeof hds / sizeof hds[0]; hi++) {
            const int hd = hds[hi];
            for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
                const int n = lens[li];
                const size_t ldw = (size_t)n + 5; /* rows apart, not packed */
                for (int g = 1; g <= HS_ATTN_MAX_HEADS; g++) {
                    for (int f16 = 0; f16 <= 1; f16++) {
                        (f16 ? lv[k].f16 : lv[k].f32)(n, hd, g, w, ldw, f16 ? (const void *)v16 : v32, (size_t)ldv,
                                                      out);
                        for (int h = 0; h < g; h++) {
                            for (int d = 0; d < hd; d++) {
                                double want = 0, mag = 0;
                                for (int p = 0; p < n; p++) {
                                    double vv = f16 ? hs_fp16_to_f32(v16[d * ldv + p]) : v32[d * ldv + p];
                                    want += (double)w[h * ldw + p] * vv;
                                    mag += fabs((double)w[h * ldw + p] * vv);
                                }
                                if (fabs(out[h * hd + d] - want) > 4.0 * n * 0x1p-24 * mag + 1e-30) {
                                    print_message("%s %s hd=%d n=%d g=%d h=%d d=%d: %.9g vs %.9g\n", lv[k].name,
                                                  f16 ? "f16" : "f32", hd, n, g, h, d, out[h * hd + d], want);
                                    fail();
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    free(w);
    free(v16);
    free(v32);
    free(out);
}

/* The attention scores over a transposed key cache, for every level, head
 * count, head size and a range of lengths (whole vector blocks and tails),
 * against a double-precision sum with the same bound as above. */
static void attention_score_kernels_match_double(void **state) {
    (void)state;
    struct level {
        const char *name;
        bool ok;
        hs_attn_scores_fn f16, f32;
    } lv[] = {
        {"ref", true, hs_attn_scores_f16_ref, hs_attn_scores_f32_ref},
        {"avx2", hs_cpu_level() >= HS_CPU_AVX2, hs_attn_scores_f16_avx2, hs_attn_scores_f32_avx2},
        {"avx512", hs_cpu_level() >= HS_CPU_AVX512, hs_attn_scores_f16_avx512, hs_attn_scores_f32_avx512},
    };
    const int lens[] = {1, 5, 8, 15, 16, 17, 31, 32, 33, 47, 64, 70, 100};
    const int hds[] = {4, 8, 64};
    const int ldk = 107; /* positions per key row (n_ctx), larger than any length */
    hs_rng r;
    hs_rng_seed(&r, 4);
    float *q = malloc((size_t)HS_ATTN_MAX_HEADS * 64 * sizeof(float));
    hs_fp16 *k16 = malloc((size_t)64 * ldk * sizeof(hs_fp16));
    float *k32 = malloc((size_t)64 * ldk * sizeof(float));
    float *s = malloc((size_t)HS_ATTN_MAX_HEADS * ldk * sizeof(float));
    for (int i = 0; i < HS_ATTN_MAX_HEADS * 64; i++)
        q[i] = hs_rng_normal(&r);
    for (int i = 0; i < 64 * ldk; i++) {
        k16[i] = hs_f32_to_fp16(hs_rng_normal(&r));
        k32[i] = hs_rng_normal(&r);
    }
    const float scale = 0.125f;
    for (size_t k = 0; k < sizeof lv / sizeof lv[0]; k++) {
        if (!lv[k].ok)
            continue;
        for (size_t hi = 0; hi < sizeof hds / sizeof hds[0]; hi++) {
            const int hd = hds[hi];
            for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
                const int n = lens[li];
                for (int g = 1; g <= HS_ATTN_MAX_HEADS; g++) {
                    for (int f16 = 0; f16 <= 1; f16++) {
                        const size_t lds = (size_t)n + 3;
                        for (int i = 0; i < g * (int)lds; i++)
                            s[i] = 12345.0f; /* the gaps between rows stay untouched */
                        (f16 ? lv[k].f16 : lv[k].f32)(n, hd, g, q, f16 ? (const void *)k16 : k32, (size_t)ldk, s,
                                                      lds, scale);
                        for (int h = 0; h < g; h++) {
                            for (int p = 0; p < n; p++) {
                                double want = 0, mag = 0;
                                for (int d = 0; d < hd; d++) {
                                    double kv = f16 ? hs_fp16_to_f32(k16[d * ldk + p]) : k32[d * ldk + p];
                                    want += (double)q[h * hd + d] * kv;
                                    mag += fabs((double)q[h * hd + d] * kv);
                                }
                                want *= scale;
                                mag *= scale;
                                if (fabs(s[h * lds + p] - want) > 4.0 * hd * 0x1p-24 * mag + 1e-30) {
                                    print_message("%s %s hd=%d n=%d g=%d h=%d p=%d: %.9g vs %.9g\n", lv[k].name,
                                                  f16 ? "f16" : "f32", hd, n, g, h, p, s[h * lds + p], want);
                                    fail();
                                }
                            }
                            for (size_t p = (size_t)n; p < lds; p++)
                                assert_true(s[h * lds + p] == 12345.0f);
                        }
                    }
                }
            }
        }
    }
    free(q);
    free(k16);
    free(k32);
    free(s);
}

/* Distance in units in the last place between a float and the exact value
 * (ulp of the exact value's binade; subnormals share the smallest ulp). */
static double ulp_error(float got, double want) {
    if (isnan(want))
        return isnan(got) ? 0 : INFINITY;
    if (isinf((float)want) || isinf(got)) /* past FLT_MAX the right answer is inf */
        return got == (float)want ? 0 : INFINITY;
    int e;
    frexp(want, &e);
    if (e < -125)
        e = -125;
    return fabs(got - want) / ldexp(1.0, e - 24);
}

/* The vector e^x of every level within 1 ulp of the exact value across the
 * whole float range (overflow, subnormal results, underflow, inf, NaN), and
 * softmax / SwiGLU built on it against double-precision definitions. */
static void exp_softmax_silu_kernels_are_accurate(void **state) {
    (void)state;
    struct level {
        const char *name;
        bool ok;
        hs_exp_fn exp;
        hs_softmax_fn softmax;
        hs_silu_mul_fn silu;
    } lv[] = {
        {"ref", true, hs_exp_ref, hs_softmax_ref, hs_silu_mul_ref},
        {"avx2", hs_cpu_level() >= HS_CPU_AVX2, hs_exp_avx2, hs_softmax_avx2, hs_silu_mul_avx2},
        {"avx512", hs_cpu_level() >= HS_CPU_AVX512, hs_exp_avx512, hs_softmax_avx512, hs_silu_mul_avx512},
    };
    enum { N = 200003 };
    float *x = malloc(N * sizeof(float)), *y = malloc(N * sizeof(float)), *u = malloc(N * sizeof(float));
    const float special[] = {0.0f, -0.0f, 1.0f, -1.0f, 88.72f, 88.73f, -87.33f, -87.34f, -103.0f, -103.97f,
                             -104.0f, -150.0f, 1e-30f, -1e-30f, INFINITY, -INFINITY, NAN};
    const int ns = (int)(sizeof special / sizeof special[0]);
    for (int i = 0; i < N; i++)
        x[i] = i < ns ? special[i] : -110.0f + 200.0f * (float)(i - ns) / (float)(N - ns);
    for (size_t k = 0; k < sizeof lv / sizeof lv[0]; k++) {
        if (!lv[k].ok)
            continue;
        /* odd lengths exercise the tails */
        lv[k].exp(y, x, N);
        double worst = 0;
        for (int i = 0; i < N; i++) {
            double e = ulp_error(y[i], exp((double)x[i]));
            if (e > worst)
                worst = e;
            if (!(e <= 1.0)) {
                print_message("%s exp(%.9g) = %.9g, expected %.9g\n", lv[k].name, x[i], y[i], exp((double)x[i]));
                fail();
            }
        }
        for (int n = 1; n <= 40; n++) {
            float s[40];
            double z = 0;
            for (int i = 0; i < n; i++) {
                s[i] = 3.0f * sinf((float)(i * n));
                z += exp((double)s[i]);
            }
            float orig[40];
            memcpy(orig, s, sizeof s);
            lv[k].softmax(s, n);
            double mx = orig[0];
            for (int i = 1; i < n; i++)
                mx = orig[i] > mx ? orig[i] : mx;
            z = 0;
            for (int i = 0; i < n; i++)
                z += exp((double)orig[i] - mx);
            for (int i = 0; i < n; i++)
                assert_true(fabs(s[i] - exp((double)orig[i] - mx) / z) < 1e-6);
        }
        for (int i = 0; i < 1001; i++) {
            y[i] = -30.0f + 0.06f * (float)i;
            u[i] = 0.5f + 0.001f * (float)i;
        }
        y[1000] = -200.0f; /* e^200 overflows: silu is -0 */
        memcpy(x + N - 1001, y, 1001 * sizeof(float));
        lv[k].silu(y, u, 1001);
        for (int i = 0; i < 1001; i++) {
            double g = x[N - 1001 + i], want = g / (1.0 + exp(-g)) * u[i];
            assert_true(fabs(y[i] - want) <= 4e-7 * fabs(want) + 1e-30);
        }
        print_message("%s: exp within %.2f ulp\n", lv[k].name, worst);
    }
    free(x);
    free(y);
    free(u);
}

/* ln(sum(e^x)) of every level against a long-double definition: lengths
 * around the vector widths (tails), a vocabulary-sized row of logits, rows
 * with -inf entries (masked tokens) and huge spreads, and rows whose max is
 * not finite (the max comes back). */
static void log_sum_exp_kernels_are_accurate(void **state) {
    (void)state;
    struct level {
        const char *name;
        bool ok;
        hs_log_sum_exp_fn lse;
    } lv[] = {
        {"ref", true, hs_log_sum_exp_ref},
        {"avx2", hs_cpu_level() >= HS_CPU_AVX2, hs_log_sum_exp_avx2},
        {"avx512", hs_cpu_level() >= HS_CPU_AVX512, hs_log_sum_exp_avx512},
    };
    enum { N = 150001 };
    float *x = malloc(N * sizeof(float));
    assert_non_null(x);
    const int lens[] = {1, 2, 7, 8, 9, 15, 16, 17, 31, 33, 100, 1000, N};
    for (size_t k = 0; k < sizeof lv / sizeof lv[0]; k++) {
        if (!lv[k].ok)
            continue;
        for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++)
            for (int kind = 0; kind < 3; kind++) {
                const int n = lens[li];
                uint64_t r = 0x9e3779b97f4a7c15ull + (uint64_t)(n * 3 + kind);
                for (int i = 0; i < n; i++) {
                    r ^= r << 13, r ^= r >> 7, r ^= r << 17;
                    const float u = (float)((double)(r >> 11) / 9007199254740992.0);
                    /* kind 0: logits in [-10, 10]; 1: a spread of 200 (most
                     * terms underflow); 2: every third masked to -inf */
                    x[i] = kind == 1 ? -150.0f + 200.0f * u : 20.0f * u - 10.0f;
                    if (kind == 2 && i % 3 == 1)
                        x[i] = -INFINITY;
                }
                long double mx = x[0], sum = 0;
                for (int i = 1; i < n; i++)
                    mx = x[i] > mx ? x[i] : mx;
                for (int i = 0; i < n; i++)
                    sum += expl((long double)x[i] - mx);
                const double want = (double)(mx + logl(sum)), got = lv[k].lse(x, n);
                if (!(fabs(got - want) <= 1e-6 * (1.0 + fabs(want))))
                    fail_msg("%s log_sum_exp n %d kind %d: %.12g, expected %.12g", lv[k].name, n, kind, got, want);
            }
        /* a max that is not finite comes back as it is */
        x[0] = 1.0f, x[1] = INFINITY, x[2] = -3.0f;
        assert_true(isinf(lv[k].lse(x, 3)) && lv[k].lse(x, 3) > 0);
        x[0] = x[1] = x[2] = -INFINITY;
        assert_true(isinf(lv[k].lse(x, 3)) && lv[k].lse(x, 3) < 0);
        /* one value: itself */
        x[0] = 4.25f;
        assert_true(fabs(lv[k].lse(x, 1) - 4.25) < 1e-12);
    }
    free(x);
}

static void small_ops_match_definitions(void **state) {
    (void)state;
    float x[8] = {1, -2, 3, -4, 0.5f, 0.25f, -8, 2}, w[8] = {1, 1, 2, 2, 0.5f, 1, 1, -1}, y[8];
    hs_rmsnorm(y, x, w, 8, 1e-5f);
    double ss = 0;
    for (int i = 0; i < 8; i++)
        ss += x[i] * x[i];
    for (int i = 0; i < 8; i++)
        assert_true(fabs(y[i] - x[i] / sqrt(ss / 8 + 1e-5) * w[i]) < 1e-6);
    float s[5] = {1, 2, 3, -1, 1000};
    hs_softmax(s, 4);
    double z = exp(1) + exp(2) + exp(3) + exp(-1);
    assert_true(fabs(s[2] - exp(3) / z) < 1e-6);
    assert_true(s[4] == 1000); /* untouched past n */
    float g[3] = {-1, 0, 2}, u[3] = {2, 3, 4};
    hs_silu_mul(g, u, 3);
    assert_true(fabs(g[0] - (-1 / (1 + exp(1)) * 2)) < 1e-6);
    assert_true(g[1] == 0);
    assert_true(fabs(g[2] - (2 / (1 + exp(-2)) * 4)) < 1e-6);
    /* rope by 90 degrees: (a, b) -> (-b, a), NORM on adjacent pairs, NEOX on halves */
    float cs[4] = {0, 1, 1, 0}; /* pair 0 by pi/2, pair 1 by 0 */
    float v[4] = {1, 2, 3, 4};
    hs_rope_norm(v, 4, cs);
    assert_true(v[0] == -2 && v[1] == 1 && v[2] == 3 && v[3] == 4);
    float v2[4] = {1, 2, 3, 4};
    hs_rope_neox(v2, 4, cs);
    assert_true(v2[0] == -3 && v2[2] == 1 && v2[1] == 2 && v2[3] == 4);
}

/* ---- loading ---- */

static void hparams_and_tied_output(void **state) {
    (void)state;
    struct tiny_params p;
    tiny_params_default(&p);
    p.tied = true;
    p.rope_scale = 4.0f;
    char *path = hs_test_tmpfile("tied.gguf");
    assert_int_equal(tiny_model_write(path, &p, NULL), HS_OK);
    hs_model *m = load_ok(path);
    const struct hs_hparams *hp = hs_model_hparams(m);
    assert_string_equal(hp->arch, "llama");
    assert_int_equal(hp->n_vocab, 300);
    assert_int_equal(hp->n_embd, 64);
    assert_int_equal(hp->n_layer, 2);
    assert_int_equal(hp->n_head, 4);
    assert_int_equal(hp->n_head_kv, 2);
    assert_int_equal(hp->head_dim, 16);
    assert_int_equal(hp->n_rot, 16);
    assert_int_equal(hp->n_ff, 96);
    assert_int_equal(hp->n_ctx_train, 256);
    assert_true(hp->rms_eps == 1e-5f);
    assert_true(hp->rope_freq_base == 10000.0f);
    assert_true(hp->rope_freq_scale == 0.25f);
    assert_int_equal(hp->rope_type, HS_ROPE_NORM);
    assert_true(hp->tied_output);
    assert_false(hp->has_qkv_bias);
    assert_int_equal(hp->file_type, -1);
    assert_int_equal(hs_tok_n_vocab(hs_model_tok(m)), 300);
    assert_null(hs_model_chat_template(m));
    /* every tensor counted once: embeddings, norms and 2 layers of matrices */
    size_t want = (size_t)4 * (300 * 64 + 64 + 2 * (64 + 64 * 64 + 2 * 64 * 32 + 64 * 64 + 64 + 3 * 64 * 96));
    assert_int_equal(hs_model_weight_bytes(m), want);
    hs_model_free(m);
    free(path);
}

static void expect_load_error(const char *path, int code, const char *needle) {
    hs_model *m = (hs_model *)path; /* must be reset to NULL */
    hs_err err = {0};
    int rc = hs_model_load(path, NULL, &m, &err);
    if (rc != code || !strstr(err.msg, needle))
        print_message("got %d '%s', expected %d with '%s'\n", rc, err.msg, code, needle);
    assert_int_equal(rc, code);
    assert_non_null(strstr(err.msg, needle));
    assert_null(m);
}

static void load_rejects_unsupported_arch(void **state) {
    (void)state;
    struct tiny_params p;
    tiny_params_default(&p);
    p.arch_key_value = "gpt2";
    char *path = hs_test_tmpfile("gpt2.gguf");
    assert_int_equal(tiny_model_write(path, &p, NULL), HS_OK);
    expect_load_error(path, HS_EUNSUPPORTED, "unsupported architecture 'gpt2'");
    /* vocab_only does not care about the architecture */
    hs_model *m = NULL;
    struct hs_model_params mp = {.vocab_only = true};
    assert_int_equal(hs_model_load(path, &mp, &m, NULL), HS_OK);
    assert_int_equal(hs_model_hparams(m)->n_vocab, 300);
    hs_ctx *c = NULL;
    assert_int_equal(hs_ctx_create(m, NULL, &c, NULL), HS_EINVAL);
    assert_null(c);
    hs_model_free(m);
    free(path);
}

/* llama.cpp's vocabulary files have metadata and no tensors: vocab_only
 * loads them, a full load names the first missing tensor. */
static void vocab_file_loads_vocab_only(void **state) {
    (void)state;
    const char *path = HS_SHARED_OR_SKIP("testdata/tokenizer/ggml-vocab-llama-spm.gguf");
    hs_model *m = NULL;
    struct hs_model_params mp = {.vocab_only = true};
    hs_err err = {0};
    int rc = hs_model_load(path, &mp, &m, &err);
    if (rc)
        print_message("%s\n", err.msg);
    assert_int_equal(rc, HS_OK);
    assert_int_equal(hs_model_hparams(m)->n_vocab, 32000);
    assert_string_equal(hs_model_hparams(m)->arch, "llama");
    assert_int_equal(hs_model_weight_bytes(m), 0);
    hs_model_free(m);
    expect_load_error(path, HS_EFORMAT, "missing");
}

static void load_rejects_truncated_file(void **state) {
    (void)state;
    struct tiny_params p;
    tiny_params_default(&p);
    char *path = hs_test_tmpfile("whole.gguf"), *cut = hs_test_tmpfile("cut.gguf");
    assert_int_equal(tiny_model_write(path, &p, NULL), HS_OK);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)size);
    assert_int_equal(fread(buf, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    long cuts[] = {size - 100, size / 2, 1000, 20};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        f = fopen(cut, "wb");
        fwrite(buf, 1, (size_t)cuts[i], f);
        fclose(f);
        hs_model *m = NULL;
        hs_err err = {0};
        int rc = hs_model_load(cut, NULL, &m, &err);
        assert_int_not_equal(rc, HS_OK);
        assert_null(m);
        assert_true(err.msg[0] != '\0');
    }
    expect_load_error("no/such/file.gguf", HS_EIO, "no/such/file.gguf");
    free(buf);
    free(path);
    free(cut);
}

static void load_rejects_bad_shape(void **state) {
    (void)state;
    struct tiny_params p;
    tiny_params_default(&p);
    p.bad_tensor = "blk.1.attn_k.weight";
    p.bad_extra_rows = 1;
    char *path = hs_test_tmpfile("shape.gguf");
    assert_int_equal(tiny_model_write(path, &p, NULL), HS_OK);
    expect_load_error(path, HS_EFORMAT, "tensor 'blk.1.attn_k.weight' has shape [64, 33], expected [64, 32]");
    p.bad_tensor = "output_norm.weight";
    assert_int_equal(tiny_model_write(path, &p, NULL), HS_OK);
    expect_load_error(path, HS_EFORMAT, "tensor 'output_norm.weight' has shape [65], expected [64]");
    free(path);
}

static void load_rejects_type_without_kernels(void **state) {
    (void)state;
    struct tiny_params p;
    tiny_params_default(&p);
    p.bad_tensor = "blk.0.ffn_up.weight";
    p.bad_type = HS_TYPE_I32;
    char *path = hs_test_tmpfile("type.gguf");
    assert_int_equal(tiny_model_write(path, &p, NULL), HS_OK);
    expect_load_error(path, HS_EUNSUPPORTED, "tensor 'blk.0.ffn_up.weight' has type i32");
    p.bad_tensor = "blk.0.attn_norm.weight"; /* vectors must be f32 */
    p.bad_type = HS_TYPE_F16;
    assert_int_equal(tiny_model_write(path, &p, NULL), HS_OK);
    expect_load_error(path, HS_EUNSUPPORTED, "tensor 'blk.0.attn_norm.weight' has type f16");
    free(path);
}

static void load_rejects_missing_tensor(void **state) {
    (void)state;
    struct tiny_params p;
    tiny_params_default(&p);
    p.arch = "qwen2";
    p.biases = true;
    char *path = hs_test_tmpfile("qwen2.gguf");
    assert_int_equal(tiny_model_write(path, &p, NULL), HS_OK);
    hs_model *m = load_ok(path);
    assert_true(hs_model_hparams(m)->has_qkv_bias);
    assert_int_equal(hs_model_hparams(m)->rope_type, HS_ROPE_NEOX);
    hs_model_free(m);
    p.biases = false; /* qwen2 always has QKV biases */
    assert_int_equal(tiny_model_write(path, &p, NULL), HS_OK);
    expect_load_error(path, HS_EFORMAT, "missing tensor 'blk.0.attn_q.bias'");
    /* a llama file relabelled qwen2 lacks the qwen2.* keys */
    p.arch = "llama";
    p.arch_key_value = "qwen2";
    assert_int_equal(tiny_model_write(path, &p, NULL), HS_OK);
    expect_load_error(path, HS_EFORMAT, "missing key qwen2.embedding_length");
    free(path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stories_logits_match_llama2c),
        cmocka_unit_test(stories_greedy_runs_match_llama2c),
        cmocka_unit_test(tiny_random_f16_loads_and_decodes),
        cmocka_unit_test(tiny_llama_matches_reference),
        cmocka_unit_test(tiny_qwen2_matches_reference),
        cmocka_unit_test(tiny_f16_close_to_f32),
        cmocka_unit_test(attention_wsum_kernels_match_double),
        cmocka_unit_test(attention_score_kernels_match_double),
        cmocka_unit_test(exp_softmax_silu_kernels_are_accurate),
        cmocka_unit_test(log_sum_exp_kernels_are_accurate),
        cmocka_unit_test(small_ops_match_definitions),
        cmocka_unit_test(hparams_and_tied_output),
        cmocka_unit_test(load_rejects_unsupported_arch),
        cmocka_unit_test(load_rejects_truncated_file),
        cmocka_unit_test(vocab_file_loads_vocab_only),
        cmocka_unit_test(load_rejects_bad_shape),
        cmocka_unit_test(load_rejects_type_without_kernels),
        cmocka_unit_test(load_rejects_missing_tensor),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
