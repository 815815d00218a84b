/* model/quantize.c: every file type of the issue on tiny synthetic f32 models.
 * The output must hold the input's metadata (file type and quantization
 * version updated), the type llama.cpp's rules give each tensor, blocks
 * byte-identical to the reference quantizer applied to the source rows, and
 * load and decode in the engine. Bad inputs leave no output file behind. */
#include "test_util.h"

#include "base/mem.h"
#include "base/pool.h"
#include "base/sys.h"
#include "gguf/gguf.h"
#include "model/context.h"
#include "model/ftype_mix.h"
#include "model/model.h"
#include "model/quantize.h"
#include "model/synth.h"
#include "tensor/qtype.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>

/* "base": rows that divide into 256 (tied output, 2 layers, GQA 2).
 * "odd": 288-wide rows (K types fall back to 32-blocks) and a 172-wide
 * ffn_down (not even a multiple of 32: f16), untied output. */
static char *g_base, *g_odd;

static const char *const k_types[] = {"f32",    "f16",    "bf16",   "q8_0",   "q4_0",   "q4_1",
                                      "q5_0",   "q5_1",   "q2_k",   "q3_k_s", "q3_k_m", "q3_k_l",
                                      "q4_k_s", "q4_k_m", "q5_k_s", "q5_k_m", "q6_k"};
#define N_TYPES ((int)(sizeof k_types / sizeof k_types[0]))

static bool exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* Files in the temporary directory whose name starts with prefix. */
static int count_prefixed(const char *prefix)
{
    DIR *d = opendir(hs_test_tmpdir());
    assert_non_null(d);
    int n = 0;
    size_t len = strlen(prefix);
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += strncmp(e->d_name, prefix, len) == 0;
    closedir(d);
    return n;
}

static int setup(void **state)
{
    (void)state;
    hs_err err = {0};
    struct hs_synth_params p;
    hs_synth_params_default(&p);
    p.n_embd = 256, p.n_layer = 2, p.n_head = 4, p.n_head_kv = 2, p.n_ff = 512, p.n_vocab = 300;
    p.tied_output = true;
    g_base = hs_test_tmpfile("in-base.gguf");
    if (hs_synth_write(g_base, &p, NULL, &err) != HS_OK) {
        fprintf(stderr, "synth: %s\n", err.msg);
        return -1;
    }
    p.n_embd = 288, p.n_head = 6, p.n_head_kv = 3, p.n_ff = 172, p.tied_output = false, p.seed = 7;
    g_odd = hs_test_tmpfile("in-odd.gguf");
    if (hs_synth_write(g_odd, &p, NULL, &err) != HS_OK) {
        fprintf(stderr, "synth: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    free(g_base);
    free(g_odd);
    return 0;
}

static int quantize(const char *in, const char *out, const char *ftype, bool allow, hs_pool *pool, hs_err *err)
{
    struct hs_quantize_params p = {.ftype = ftype, .allow_requantize = allow};
    return hs_quantize_file(in, out, &p, pool, NULL, err);
}

static uint32_t kv_u32(const hs_gguf *g, const char *key)
{
    uint32_t v = 0;
    hs_err err = {0};
    assert_int_equal(hs_gguf_get_u32(g, key, &v, &err), HS_OK);
    return v;
}

static int64_t rows_of(const struct hs_gguf_tensor *t)
{
    int64_t r = 1;
    for (uint32_t d = 1; d < t->n_dims; d++)
        r *= t->ne[d];
    return r;
}

/* Metadata: every input pair is in the output, in order, with the same bytes,
 * except general.file_type (the new type's llama.cpp number) and
 * general.quantization_version (2). */
static void check_metadata(const hs_gguf *in, const hs_gguf *out, const struct hs_ftype *ft)
{
    assert_int_equal(kv_u32(out, "general.file_type"), (uint32_t)ft->file_type);
    assert_int_equal(kv_u32(out, "general.quantization_version"), 2);
    assert_int_equal(hs_gguf_n_kv(out), hs_gguf_n_kv(in));
    for (int64_t i = 0; i < hs_gguf_n_kv(in); i++) {
        const struct hs_gguf_kv *a = hs_gguf_kv_at(in, i), *b = hs_gguf_kv_at(out, i);
        assert_string_equal(a->key, b->key);
        if (!strcmp(a->key, "general.file_type") || !strcmp(a->key, "general.quantization_version"))
            continue;
        size_t la = 0, lb = 0;
        const void *ra = hs_gguf_kv_raw(in, a, &la), *rb = hs_gguf_kv_raw(out, b, &lb);
        assert_int_equal(a->type, b->type);
        assert_int_equal(la, lb);
        assert_memory_equal(ra, rb, la);
    }
}

/* Tensors: same names, order and shapes; the type hs_ftype_tensor_type picks;
 * data equal to the reference quantizer on the source rows read back to
 * floats, or the source bytes when the type did not change. */
static void check_tensors(const hs_gguf *in, const hs_gguf *out, const char *ftype,
                          const struct hs_ftype_model *fm)
{
    assert_int_equal(hs_gguf_n_tensors(out), hs_gguf_n_tensors(in));
    for (int64_t i = 0; i < hs_gguf_n_tensors(in); i++) {
        const struct hs_gguf_tensor *a = hs_gguf_tensor_at(in, i), *b = hs_gguf_tensor_at(out, i);
        assert_string_equal(a->name, b->name);
        assert_int_equal(a->n_dims, b->n_dims);
        for (int d = 0; d < HS_GGUF_MAX_DIMS; d++)
            assert_int_equal(a->ne[d], b->ne[d]);
        hs_err err = {0};
        int want = hs_ftype_tensor_type(ftype, a->name, (int)a->n_dims, a->ne, (int)a->type, fm, &err);
        assert_true(want >= 0);
        if ((int)b->type != want)
            print_message("%s %s: type %u, want %d\n", ftype, a->name, b->type, want);
        assert_int_equal(b->type, want);
        if (b->type == a->type) {
            assert_int_equal(a->nbytes, b->nbytes);
            assert_memory_equal(a->data, b->data, a->nbytes);
            continue;
        }
        const struct hs_qtype *q = hs_qtype((int)b->type);
        assert_non_null(q);
        const int64_t n = a->ne[0], rows = rows_of(a);
        const size_t rb = hs_qtype_row_bytes((int)b->type, n);
        assert_int_equal(b->nbytes, rb * (size_t)rows);
        const struct hs_qtype *qa = hs_qtype((int)a->type);
        assert_non_null(qa);
        const size_t ra = hs_qtype_row_bytes((int)a->type, n);
        uint8_t *blk = hs_malloc(rb);
        float *y = hs_malloc((size_t)n * sizeof *y), *x = hs_malloc((size_t)n * sizeof *x);
        for (int64_t r = 0; r < rows; r++) {
            qa->to_float((const uint8_t *)a->data + (size_t)r * ra, x, n);
            const uint8_t *got = (const uint8_t *)b->data + (size_t)r * rb;
            q->from_float_ref(x, blk, n);
            if (memcmp(blk, got, rb) != 0) {
                print_message("%s %s: row %lld differs from the reference quantizer\n", ftype, a->name,
                              (long long)r);
                fail();
            }
            /* and it reads back as finite values near the source */
            q->to_float(got, y, n);
            for (int64_t k = 0; k < n; k++) {
                assert_true(isfinite(y[k]));
                assert_true(fabsf(y[k] - x[k]) < 0.1f);
            }
        }
        hs_free(blk);
        hs_free(y);
        hs_free(x);
    }
}

/* Loads the model and decodes a few tokens: logits finite and not all equal. */
static void check_decodes(const char *path)
{
    hs_err err = {0};
    hs_model *m = NULL;
    int rc = hs_model_load(path, NULL, &m, &err);
    if (rc)
        print_message("load %s: %s\n", path, err.msg);
    assert_int_equal(rc, HS_OK);
    hs_ctx *ctx = NULL;
    struct hs_ctx_params cp = {.n_ctx = 16, .n_seq = 1, .n_batch = 8, .n_threads = 2};
    rc = hs_ctx_create(m, &cp, &ctx, &err);
    if (rc)
        print_message("ctx %s: %s\n", path, err.msg);
    assert_int_equal(rc, HS_OK);
    const int n_vocab = hs_model_hparams(m)->n_vocab;
    const int32_t toks[4] = {1, 70, 200, 33};
    int8_t want[4] = {1, 1, 1, 1};
    struct hs_batch b = {.n = 4, .tokens = toks, .logits = want};
    rc = hs_decode(ctx, &b, &err);
    if (rc)
        print_message("decode %s: %s\n", path, err.msg);
    assert_int_equal(rc, HS_OK);
    for (int i = 0; i < 4; i++) {
        const float *l = hs_ctx_logits(ctx, i);
        assert_non_null(l);
        float lo = l[0], hi = l[0];
        for (int v = 0; v < n_vocab; v++) {
            assert_true(isfinite(l[v]));
            lo = l[v] < lo ? l[v] : lo;
            hi = l[v] > hi ? l[v] : hi;
        }
        assert_true(hi > lo);
    }
    hs_ctx_free(ctx);
    hs_model_free(m);
}

/* The facts of the two synthetic shapes, as written in setup (the "odd" one,
 * and files made from it, have 6 heads). */
static void facts(bool odd, struct hs_ftype_model *fm)
{
    memset(fm, 0, sizeof *fm);
    fm->arch = "llama";
    fm->n_layer = 2;
    if (!odd) {
        fm->n_head = 4, fm->n_head_kv = 2, fm->tied_output = true;
    } else {
        fm->n_head = 6, fm->n_head_kv = 3, fm->tied_output = false;
    }
}

static void quantize_and_check(const char *in, bool odd, const char *ftype, const char *tag, bool allow)
{
    char name[64];
    snprintf(name, sizeof name, "%s-%s.gguf", tag, ftype);
    char *out = hs_test_tmpfile(name);
    hs_err err = {0};
    int rc = quantize(in, out, ftype, allow, NULL, &err);
    if (rc)
        print_message("quantize %s: %s\n", ftype, err.msg);
    assert_int_equal(rc, HS_OK);
    hs_gguf *gi = NULL, *go = NULL;
    assert_int_equal(hs_gguf_open(in, &gi, &err), HS_OK);
    assert_int_equal(hs_gguf_open(out, &go, &err), HS_OK);
    struct hs_ftype_model fm;
    facts(odd, &fm);
    check_metadata(gi, go, hs_ftype_find(ftype));
    check_tensors(gi, go, ftype, &fm);
    hs_gguf_close(go);
    hs_gguf_close(gi);
    check_decodes(out);
    remove(out);
    free(out);
}

static void every_type_base(void **state)
{
    (void)state;
    for (int i = 0; i < N_TYPES; i++)
        quantize_and_check(g_base, false, k_types[i], "base", false);
}

static void every_type_odd_rows(void **state)
{
    (void)state;
    for (int i = 0; i < N_TYPES; i++)
        quantize_and_check(g_odd, true, k_types[i], "odd", false);
}

/* f16 and bf16 sources: read back to floats, then quantized; and the same
 * checks on a requantized q8_0 model. */
static void other_sources(void **state)
{
    (void)state;
    const char *const src[] = {"f16", "bf16", "q8_0"};
    for (int i = 0; i < 3; i++) {
        char name[64];
        snprintf(name, sizeof name, "src-%s.gguf", src[i]);
        char *in = hs_test_tmpfile(name);
        hs_err err = {0};
        assert_int_equal(quantize(g_odd, in, src[i], false, NULL, &err), HS_OK);
        bool requant = !strcmp(src[i], "q8_0");
        quantize_and_check(in, true, "q4_k_m", src[i], requant);
        quantize_and_check(in, true, "f32", src[i], requant);
        quantize_and_check(in, true, "q6_k", src[i], requant);
        remove(in);
        free(in);
    }
}

static int type_in(const hs_gguf *g, const char *name)
{
    const struct hs_gguf_tensor *t = hs_gguf_find_tensor(g, name);
    assert_non_null(t);
    return (int)t->type;
}

/* llama.cpp's rules, by hand: 2 layers, so use_more_bits holds for layer 1
 * only (i >= 7n/8), not layer 0. */
static void q4_k_m_by_hand(void **state)
{
    (void)state;
    char *out = hs_test_tmpfile("hand-q4_k_m.gguf");
    char *out2 = hs_test_tmpfile("hand-odd-q4_k_m.gguf");
    hs_err err = {0};
    assert_int_equal(quantize(g_base, out, "q4_k_m", false, NULL, &err), HS_OK);
    assert_int_equal(quantize(g_odd, out2, "q4_k_m", false, NULL, &err), HS_OK);
    hs_gguf *g = NULL;
    assert_int_equal(hs_gguf_open(out, &g, &err), HS_OK);
    assert_int_equal(type_in(g, "token_embd.weight"), HS_TYPE_Q6_K); /* tied: it is the output */
    assert_int_equal(type_in(g, "blk.1.attn_v.weight"), HS_TYPE_Q6_K);
    assert_int_equal(type_in(g, "blk.1.ffn_down.weight"), HS_TYPE_Q6_K);
    assert_int_equal(type_in(g, "blk.0.attn_v.weight"), HS_TYPE_Q4_K);
    assert_int_equal(type_in(g, "blk.0.ffn_down.weight"), HS_TYPE_Q4_K);
    assert_int_equal(type_in(g, "blk.0.attn_q.weight"), HS_TYPE_Q4_K);
    assert_int_equal(type_in(g, "blk.1.ffn_up.weight"), HS_TYPE_Q4_K);
    assert_int_equal(type_in(g, "blk.0.attn_norm.weight"), HS_TYPE_F32);
    assert_int_equal(type_in(g, "output_norm.weight"), HS_TYPE_F32);
    assert_int_equal(kv_u32(g, "general.file_type"), 15); /* LLAMA_FTYPE_MOSTLY_Q4_K_M */
    hs_gguf_close(g);
    assert_int_equal(hs_gguf_open(out2, &g, &err), HS_OK);
    assert_int_equal(type_in(g, "output.weight"), HS_TYPE_Q8_0); /* q6_K does not fit 288: q8_0 */
    assert_int_equal(type_in(g, "token_embd.weight"), HS_TYPE_Q5_0); /* q4_K -> q5_0 */
    assert_int_equal(type_in(g, "blk.0.attn_q.weight"), HS_TYPE_Q5_0);
    assert_int_equal(type_in(g, "blk.1.attn_v.weight"), HS_TYPE_Q8_0); /* q6_K -> q8_0 */
    assert_int_equal(type_in(g, "blk.0.ffn_down.weight"), HS_TYPE_F16); /* 172: no 32-block fits */
    assert_int_equal(type_in(g, "blk.0.ffn_norm.weight"), HS_TYPE_F32);
    hs_gguf_close(g);
    remove(out);
    remove(out2);
    free(out);
    free(out2);
}

/* The result does not depend on the number of threads. */
static void threads_do_not_matter(void **state)
{
    (void)state;
    char *a = hs_test_tmpfile("thr1.gguf"), *b = hs_test_tmpfile("thr3.gguf");
    hs_err err = {0};
    hs_pool *pool = NULL;
    assert_int_equal(hs_pool_create(3, &pool), HS_OK);
    assert_int_equal(quantize(g_odd, a, "q3_k_m", false, NULL, &err), HS_OK);
    assert_int_equal(quantize(g_odd, b, "q3_k_m", false, pool, &err), HS_OK);
    hs_pool_free(pool);
    hs_mapping ma, mb;
    assert_int_equal(hs_map_file(a, &ma, &err), HS_OK);
    assert_int_equal(hs_map_file(b, &mb, &err), HS_OK);
    assert_int_equal(ma.size, mb.size);
    assert_memory_equal(ma.addr, mb.addr, ma.size);
    hs_unmap(&ma);
    hs_unmap(&mb);
    remove(a);
    remove(b);
    free(a);
    free(b);
}

static void requantize_needs_the_flag(void **state)
{
    (void)state;
    char *q8 = hs_test_tmpfile("rq-q8_0.gguf"), *out = hs_test_tmpfile("rq-out.gguf");
    hs_err err = {0};
    assert_int_equal(quantize(g_base, q8, "q8_0", false, NULL, &err), HS_OK);
    int rc = quantize(q8, out, "q4_0", false, NULL, &err);
    assert_int_equal(rc, HS_EINVAL);
    assert_non_null(strstr(err.msg, "already quantized"));
    assert_non_null(strstr(err.msg, "--allow-requantize"));
    assert_false(exists(out));
    assert_int_equal(count_prefixed("rq-out.gguf"), 0);
    rc = quantize(q8, out, "q4_0", true, NULL, &err);
    if (rc)
        print_message("%s\n", err.msg);
    assert_int_equal(rc, HS_OK);
    check_decodes(out);
    remove(q8);
    remove(out);
    free(q8);
    free(out);
}

static void bad_input_leaves_nothing(void **state)
{
    (void)state;
    char *out = hs_test_tmpfile("bad-out.gguf");
    char *missing = hs_test_tmpfile("no-such-model.gguf");
    char *trunc = hs_test_tmpfile("truncated.gguf");
    hs_err err = {0};
    assert_int_not_equal(quantize(missing, out, "q4_k_m", false, NULL, &err), HS_OK);
    assert_false(exists(out));

    /* the first half of a good model */
    hs_mapping m;
    assert_int_equal(hs_map_file(g_base, &m, &err), HS_OK);
    FILE *f = fopen(trunc, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(m.addr, 1, m.size / 2, f), m.size / 2);
    fclose(f);
    hs_unmap(&m);
    int rc = quantize(trunc, out, "q4_k_m", false, NULL, &err);
    assert_int_not_equal(rc, HS_OK);
    assert_non_null(strstr(err.msg, "truncated.gguf"));
    assert_false(exists(out));

    /* an unknown type, and an output folder that does not exist */
    assert_int_equal(quantize(g_base, out, "q9_k", false, NULL, &err), HS_EINVAL);
    char *nodir = hs_test_tmpfile("no-such-dir/out.gguf");
    assert_int_not_equal(quantize(g_base, nodir, "q8_0", false, NULL, &err), HS_OK);
    assert_false(exists(out));
    assert_int_equal(count_prefixed("bad-out.gguf"), 0);
    free(nodir);
    free(out);
    free(missing);
    free(trunc);
}

/* A write that fails half way (the file size limit: EFBIG, SIGXFSZ
 * ignored) removes the temporary file. */
static void failed_write_leaves_nothing(void **state)
{
    (void)state;
    char *out = hs_test_tmpfile("efbig.gguf");
    hs_err err = {0};
    struct rlimit old;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    struct rlimit lim = {.rlim_cur = 200000, .rlim_max = old.rlim_max};
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    int rc = quantize(g_base, out, "q8_0", false, NULL, &err);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, old_handler);
    assert_int_not_equal(rc, HS_OK);
    print_message("expected error: %s\n", err.msg);
    assert_false(exists(out));
    assert_int_equal(count_prefixed("efbig.gguf"), 0);
    free(out);
}

/* An existing output is replaced only when quantizing succeeds. */
static void failure_keeps_old_output(void **state)
{
    (void)state;
    char *out = hs_test_tmpfile("keep.gguf");
    FILE *f = fopen(out, "wb");
    assert_non_null(f);
    fputs("old", f);
    fclose(f);
    char *q8 = hs_test_tmpfile("keep-q8.gguf");
    hs_err err = {0};
    assert_int_equal(quantize(g_base, q8, "q8_0", false, NULL, &err), HS_OK);
    assert_int_not_equal(quantize(q8, out, "q4_k_m", false, NULL, &err), HS_OK);
    struct stat sb;
    assert_int_equal(stat(out, &sb), 0);
    assert_int_equal(sb.st_size, 3);
    assert_int_equal(count_prefixed("keep.gguf.tmp-"), 0);
    remove(out);
    remove(q8);
    free(out);
    free(q8);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(q4_k_m_by_hand),
        cmocka_unit_test(every_type_base),
        cmocka_unit_test(every_type_odd_rows),
        cmocka_unit_test(other_sources),
        cmocka_unit_test(threads_do_not_matter),
        cmocka_unit_test(requantize_needs_the_flag),
        cmocka_unit_test(bad_input_leaves_nothing),
        cmocka_unit_test(failure_keeps_old_output),
        cmocka_unit_test(failed_write_leaves_nothing),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
