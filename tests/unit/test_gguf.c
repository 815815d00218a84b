/* gguf/: reader validation, getters, writer, byte-exact round trips. */
#include "test_util.h"

#include "base/mem.h"
#include "base/sys.h"
#include "gguf/gguf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- helpers ---- */

static void put_u32le(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, 4);
}
static void put_u64le(uint8_t *p, uint64_t v)
{
    memcpy(p, &v, 8);
}

static uint8_t *slurp(const char *path, size_t *len)
{
    char *data;
    hs_err err = {0};
    assert_int_equal(hs_read_file(path, &data, len, &err), HS_OK);
    return (uint8_t *)data;
}

/* Opens a private heap copy of exactly n bytes, so that ASan sees any read
 * past the end. Returns the code; *gp is set on success (close it). */
static int open_copy(const uint8_t *data, size_t n, hs_gguf **gp, uint8_t **copy, hs_err *err)
{
    *copy = malloc(n ? n : 1);
    assert_non_null(*copy);
    if (n)
        memcpy(*copy, data, n);
    return hs_gguf_open_mem(*copy, n, "t.gguf", gp, err);
}

/* Touches everything a caller can reach, as a consumer would. */
static void walk(const hs_gguf *g)
{
    for (int64_t i = 0; i < hs_gguf_n_kv(g); i++) {
        const struct hs_gguf_kv *kv = hs_gguf_kv_at(g, i);
        assert_ptr_equal(hs_gguf_find_kv(g, kv->key), kv);
        if (kv->type != HS_GGUF_ARRAY)
            continue;
        for (uint64_t j = 0; j < kv->n; j++) {
            if (kv->arr_type == HS_GGUF_STRING) {
                size_t len;
                const char *s = hs_gguf_arr_str(g, kv, j, &len);
                volatile char sink = len ? s[len - 1] : 0;
                (void)sink;
            } else {
                (void)hs_gguf_arr_i64(kv, j);
            }
        }
    }
    for (int64_t i = 0; i < hs_gguf_n_tensors(g); i++) {
        const struct hs_gguf_tensor *t = hs_gguf_tensor_at(g, i);
        assert_ptr_equal(hs_gguf_find_tensor(g, t->name), t);
        if (t->nbytes) {
            volatile uint8_t a = ((const uint8_t *)t->data)[0], b = ((const uint8_t *)t->data)[t->nbytes - 1];
            (void)a;
            (void)b;
        }
    }
}

/* Writes the small file the corruption tests patch, and returns its bytes.
 * Its last tensor ends on an alignment boundary, so every proper prefix is
 * invalid. */
static uint8_t *small_file(size_t *len)
{
    char *path = hs_test_tmpfile("small.gguf");
    hs_gguf_writer *w;
    hs_err err = {0};
    assert_int_equal(hs_gguf_writer_open(path, &w, &err), HS_OK);
    assert_int_equal(hs_gguf_w_str(w, "general.architecture", "llama", 5), HS_OK);
    assert_int_equal(hs_gguf_w_u32(w, "general.alignment", 32), HS_OK);
    assert_int_equal(hs_gguf_w_bool(w, "a.flag", true), HS_OK);
    int32_t list[3] = {1, -2, 3};
    assert_int_equal(hs_gguf_w_arr(w, "a.list", HS_GGUF_INT32, list, 3), HS_OK);
    const char *strs[2] = {"x", "yz"};
    assert_int_equal(hs_gguf_w_arr_str(w, "a.strs", strs, NULL, 2), HS_OK);
    int64_t ne8[1] = {8}, ne32[2] = {32, 1};
    assert_int_equal(hs_gguf_w_tensor(w, "t0", HS_TYPE_F32, 1, ne8), HS_OK);
    assert_int_equal(hs_gguf_w_tensor(w, "t1", HS_TYPE_Q8_0, 2, ne32), HS_OK);
    assert_int_equal(hs_gguf_w_tensor(w, "t2", HS_TYPE_F32, 1, ne8), HS_OK);
    assert_int_equal(hs_gguf_w_begin_data(w, &err), HS_OK);
    uint8_t bytes[34];
    for (int i = 0; i < 34; i++)
        bytes[i] = (uint8_t)(i * 7 + 1);
    assert_int_equal(hs_gguf_w_data(w, bytes, 32, &err), HS_OK);
    assert_int_equal(hs_gguf_w_data(w, bytes, 34, &err), HS_OK);
    assert_int_equal(hs_gguf_w_data(w, bytes, 32, &err), HS_OK);
    assert_int_equal(hs_gguf_w_close(w, &err), HS_OK);
    uint8_t *data = slurp(path, len);
    free(path);
    return data;
}

/* Offset of the first occurrence of a string (as stored, without NUL). */
static size_t find(const uint8_t *data, size_t len, const char *s)
{
    const uint8_t *p = memmem(data, len, s, strlen(s));
    assert_non_null(p);
    return (size_t)(p - data);
}

/* Expects a format error whose message ends with `at byte <off>`. */
static void expect_bad(const uint8_t *data, size_t len, size_t off, const char *what)
{
    hs_gguf *g = NULL;
    uint8_t *copy;
    hs_err err = {0};
    int rc = open_copy(data, len, &g, &copy, &err);
    if (rc != HS_EFORMAT)
        fail_msg("%s: expected HS_EFORMAT, got %d (%s)", what, rc, err.msg);
    assert_null(g);
    char want[48];
    snprintf(want, sizeof want, "at byte %zu", off);
    size_t ml = strlen(err.msg), wl = strlen(want);
    if (ml < wl || strcmp(err.msg + ml - wl, want) != 0)
        fail_msg("%s: message '%s' does not end with '%s'", what, err.msg, want);
    if (!strstr(err.msg, "t.gguf: "))
        fail_msg("%s: message '%s' does not name the file", what, err.msg);
    free(copy);
}

/* ---- reading real files ---- */

/* Facts below were read from the file with an independent Python parser of
 * the GGUF layout (struct.unpack over the spec), not from this reader. */
static void reads_stories260k(void **state)
{
    (void)state;
    const char *path = HS_SHARED_OR_SKIP("models/stories260K.gguf");
    hs_gguf *g;
    hs_err err = {0};
    assert_int_equal(hs_gguf_open(path, &g, &err), HS_OK);
    assert_int_equal(hs_gguf_version(g), 3);
    assert_int_equal(hs_gguf_n_kv(g), 19);
    assert_int_equal(hs_gguf_n_tensors(g), 48);
    assert_int_equal(hs_gguf_alignment(g), 32);
    assert_int_equal(hs_gguf_data_offset(g), 14176);
    assert_int_equal(hs_gguf_file_size(g), 1185376);

    uint32_t u;
    assert_int_equal(hs_gguf_get_u32(g, "llama.embedding_length", &u, &err), HS_OK);
    assert_int_equal(u, 64);
    assert_int_equal(hs_gguf_get_u32(g, "llama.block_count", &u, &err), HS_OK);
    assert_int_equal(u, 5);
    assert_int_equal(hs_gguf_get_u32(g, "tokenizer.ggml.seperator_token_id", &u, &err), HS_OK);
    assert_int_equal(u, 4294967295u);
    float eps;
    assert_int_equal(hs_gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", &eps, &err), HS_OK);
    assert_true(fabsf(eps - 1e-5f) < 1e-10f);
    const char *s;
    size_t len;
    assert_int_equal(hs_gguf_get_str(g, "general.architecture", &s, &len, &err), HS_OK);
    assert_int_equal(len, 5);
    assert_memory_equal(s, "llama", 5);

    const struct hs_gguf_kv *tok;
    assert_int_equal(hs_gguf_get_arr(g, "tokenizer.ggml.tokens", HS_GGUF_STRING, &tok, &err), HS_OK);
    assert_int_equal(tok->n, 512);
    s = hs_gguf_arr_str(g, tok, 1, &len);
    assert_int_equal(len, 3);
    assert_memory_equal(s, "<s>", 3);
    const struct hs_gguf_kv *tt;
    assert_int_equal(hs_gguf_get_arr(g, "tokenizer.ggml.token_type", HS_GGUF_INT32, &tt, &err), HS_OK);
    assert_int_equal(hs_gguf_arr_i64(tt, 0), 2);
    assert_int_equal(hs_gguf_arr_i64(tt, 1), 3);

    const struct hs_gguf_tensor *t = hs_gguf_find_tensor(g, "token_embd.weight");
    assert_non_null(t);
    assert_int_equal(t->type, HS_TYPE_F32);
    assert_int_equal(t->n_dims, 2);
    assert_int_equal(t->ne[0], 64);
    assert_int_equal(t->ne[1], 512);
    assert_int_equal(t->ne[2], 1);
    assert_int_equal(t->offset, 0);
    assert_int_equal(t->nbytes, 64 * 512 * 4);
    assert_ptr_equal(t->data, (const uint8_t *)hs_gguf_file_data(g) + 14176);
    t = hs_gguf_find_tensor(g, "blk.0.ffn_down.weight");
    assert_non_null(t);
    assert_int_equal(t->ne[0], 172);
    assert_int_equal(t->ne[1], 64);
    assert_int_equal(t->offset, 355840);
    assert_null(hs_gguf_find_tensor(g, "blk.9.ffn_down.weight"));
    assert_null(hs_gguf_find_kv(g, "llama.nope"));
    walk(g);
    hs_gguf_close(g);
}

/* Reads `rel`, writes every kv and tensor back in order, compares bytes. */
static void round_trip_file(const char *path)
{
    hs_gguf *g;
    hs_err err = {0};
    assert_int_equal(hs_gguf_open(path, &g, &err), HS_OK);
    char *out = hs_test_tmpfile("rt.gguf");
    hs_gguf_writer *w;
    assert_int_equal(hs_gguf_writer_open(out, &w, &err), HS_OK);
    assert_int_equal(hs_gguf_w_set_version(w, hs_gguf_version(g)), HS_OK);
    for (int64_t i = 0; i < hs_gguf_n_kv(g); i++)
        assert_int_equal(hs_gguf_w_kv_from(w, g, hs_gguf_kv_at(g, i)), HS_OK);
    for (int64_t i = 0; i < hs_gguf_n_tensors(g); i++) {
        const struct hs_gguf_tensor *t = hs_gguf_tensor_at(g, i);
        assert_int_equal(hs_gguf_w_tensor(w, t->name, t->type, t->n_dims, t->ne), HS_OK);
    }
    assert_int_equal(hs_gguf_w_begin_data(w, &err), HS_OK);
    for (int64_t i = 0; i < hs_gguf_n_tensors(g); i++) {
        const struct hs_gguf_tensor *t = hs_gguf_tensor_at(g, i);
        /* in two pieces, to exercise split writes */
        size_t half = (size_t)t->nbytes / 2;
        assert_int_equal(hs_gguf_w_data(w, t->data, half, &err), HS_OK);
        assert_int_equal(hs_gguf_w_data(w, (const uint8_t *)t->data + half, (size_t)t->nbytes - half, &err),
                         HS_OK);
    }
    if (hs_gguf_w_close(w, &err))
        fail_msg("%s", err.msg);
    size_t a_len, b_len;
    uint8_t *a = slurp(path, &a_len), *b = slurp(out, &b_len);
    if (a_len != b_len)
        fail_msg("%s: round trip wrote %zu bytes, original has %zu", path, b_len, a_len);
    size_t i = 0;
    while (i < a_len && a[i] == b[i])
        i++;
    if (i != a_len)
        fail_msg("%s: round trip differs at byte %zu", path, i);
    hs_free(a);
    hs_free(b);
    unlink(out);
    free(out);
    hs_gguf_close(g);
}

static void round_trips_shared_files_byte_for_byte(void **state)
{
    (void)state;
    static const char *const files[] = {
        "models/stories260K.gguf",
        "models/llama-2-tiny-random.gguf",
        "testdata/tokenizer/ggml-vocab-baichuan.gguf",
        "testdata/tokenizer/ggml-vocab-bert-bge.gguf",
        "testdata/tokenizer/ggml-vocab-deepseek-coder.gguf",
        "testdata/tokenizer/ggml-vocab-falcon.gguf",
        "testdata/tokenizer/ggml-vocab-gpt-2.gguf",
        "testdata/tokenizer/ggml-vocab-gpt-neox.gguf",
        "testdata/tokenizer/ggml-vocab-llama-spm.gguf",
        "testdata/tokenizer/ggml-vocab-mpt.gguf",
        "testdata/tokenizer/ggml-vocab-phi-3.gguf",
        "testdata/tokenizer/ggml-vocab-refact.gguf",
    };
    int done = 0;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        const char *p = hs_test_shared(files[i]);
        if (!p) {
            print_message("[  SKIP    ] ../shared/%s is absent\n", files[i]);
            continue;
        }
        char path[1024];
        snprintf(path, sizeof path, "%s", p);
        round_trip_file(path);
        done++;
    }
    if (!done)
        skip();
}

/* ---- writer-made files ---- */

#define N_ARR 5

static void write_all_types(const char *path, uint32_t alignment, const uint8_t *tdata[], size_t tbytes[])
{
    hs_gguf_writer *w;
    hs_err err = {0};
    assert_int_equal(hs_gguf_writer_open(path, &w, &err), HS_OK);
    if (alignment != HS_GGUF_DEFAULT_ALIGNMENT)
        assert_int_equal(hs_gguf_w_u32(w, "general.alignment", alignment), HS_OK);
    uint8_t u8 = 200;
    int8_t i8 = -100;
    uint16_t u16 = 60000;
    int16_t i16 = -30000;
    int64_t i64 = -((int64_t)1 << 40);
    double f64 = -2.5e300;
    assert_int_equal(hs_gguf_w_val(w, "s.u8", HS_GGUF_UINT8, &u8), HS_OK);
    assert_int_equal(hs_gguf_w_val(w, "s.i8", HS_GGUF_INT8, &i8), HS_OK);
    assert_int_equal(hs_gguf_w_val(w, "s.u16", HS_GGUF_UINT16, &u16), HS_OK);
    assert_int_equal(hs_gguf_w_val(w, "s.i16", HS_GGUF_INT16, &i16), HS_OK);
    assert_int_equal(hs_gguf_w_u32(w, "s.u32", 4000000000u), HS_OK);
    assert_int_equal(hs_gguf_w_i32(w, "s.i32", -2000000000), HS_OK);
    assert_int_equal(hs_gguf_w_f32(w, "s.f32", 0.125f), HS_OK);
    assert_int_equal(hs_gguf_w_bool(w, "s.bool", true), HS_OK);
    assert_int_equal(hs_gguf_w_str(w, "s.str", "h\0llo", 5), HS_OK);
    assert_int_equal(hs_gguf_w_str(w, "s.empty", "", 0), HS_OK);
    assert_int_equal(hs_gguf_w_u64(w, "s.u64", UINT64_MAX), HS_OK);
    assert_int_equal(hs_gguf_w_val(w, "s.i64", HS_GGUF_INT64, &i64), HS_OK);
    assert_int_equal(hs_gguf_w_val(w, "s.f64", HS_GGUF_FLOAT64, &f64), HS_OK);

    /* One array per numeric type, elements 0, -1, 2, -3, 4 (unsigned types
     * wrap, booleans are i & 1). */
    for (int t = 0; t < HS_GGUF_VTYPE_COUNT; t++) {
        size_t es = hs_gguf_vtype_size((enum hs_gguf_vtype)t);
        if (!es)
            continue;
        uint8_t buf[N_ARR * 8];
        for (int i = 0; i < N_ARR; i++) {
            int64_t v = (i & 1) ? -i : i;
            uint8_t *p = buf + (size_t)i * es;
            if (t == HS_GGUF_FLOAT32) {
                float f = (float)v;
                memcpy(p, &f, 4);
            } else if (t == HS_GGUF_FLOAT64) {
                double d = (double)v;
                memcpy(p, &d, 8);
            } else if (t == HS_GGUF_BOOL) {
                *p = (uint8_t)(i & 1);
            } else {
                memcpy(p, &v, es); /* little-endian truncation */
            }
        }
        char key[32];
        snprintf(key, sizeof key, "a.%s", hs_gguf_vtype_name((enum hs_gguf_vtype)t));
        assert_int_equal(hs_gguf_w_arr(w, key, (enum hs_gguf_vtype)t, buf, N_ARR), HS_OK);
    }
    const char *strs[] = {"", "one", "two words", "\xe4\xb8\xad"};
    assert_int_equal(hs_gguf_w_arr_str(w, "a.str", strs, NULL, 4), HS_OK);
    assert_int_equal(hs_gguf_w_arr(w, "a.empty", HS_GGUF_UINT32, NULL, 0), HS_OK);

    static const struct {
        const char *name;
        uint32_t type, n_dims;
        int64_t ne[4];
    } ts[] = {
        {"f32", HS_TYPE_F32, 2, {3, 5}},    {"f16", HS_TYPE_F16, 3, {7, 2, 3}},
        {"q4k", HS_TYPE_Q4_K, 2, {512, 3}}, {"q80", HS_TYPE_Q8_0, 4, {64, 2, 1, 2}},
        {"empty", HS_TYPE_F32, 2, {4, 0}},  {"i32", HS_TYPE_I32, 1, {9}},
    };
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
        assert_int_equal(hs_gguf_w_tensor(w, ts[i].name, ts[i].type, ts[i].n_dims, ts[i].ne), HS_OK);
    assert_int_equal(hs_gguf_w_begin_data(w, &err), HS_OK);
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) {
        /* Bytes per tensor, computed here from the block table rather than asked of the writer. */
        const struct hs_type_size *sz = hs_type_size(ts[i].type);
        int64_t nel = 1;
        for (uint32_t d = 0; d < ts[i].n_dims; d++)
            nel *= ts[i].ne[d];
        tbytes[i] = (size_t)(nel / sz->blck) * sz->bytes;
        uint8_t *p = malloc(tbytes[i] + 1);
        for (size_t j = 0; j < tbytes[i]; j++)
            p[j] = (uint8_t)(j * 31 + i);
        tdata[i] = p;
        /* byte by byte for the first tensor, whole for the rest */
        if (i == 0)
            for (size_t j = 0; j < tbytes[i]; j++)
                assert_int_equal(hs_gguf_w_data(w, p + j, 1, &err), HS_OK);
        else
            assert_int_equal(hs_gguf_w_data(w, p, tbytes[i], &err), HS_OK);
    }
    assert_int_equal(hs_gguf_w_close(w, &err), HS_OK);
}

static void check_all_types(const char *path, uint32_t alignment, const uint8_t *tdata[],
                            const size_t tbytes[])
{
    hs_gguf *g;
    hs_err err = {0};
    assert_int_equal(hs_gguf_open(path, &g, &err), HS_OK);
    assert_int_equal(hs_gguf_version(g), 3);
    assert_int_equal(hs_gguf_alignment(g), alignment);
    uint32_t u32;
    uint64_t u64;
    int64_t i64;
    float f;
    bool b;
    assert_int_equal(hs_gguf_get_u32(g, "s.u8", &u32, &err), HS_OK);
    assert_int_equal(u32, 200);
    assert_int_equal(hs_gguf_get_i64(g, "s.i8", &i64, &err), HS_OK);
    assert_int_equal(i64, -100);
    assert_int_equal(hs_gguf_get_u32(g, "s.u16", &u32, &err), HS_OK);
    assert_int_equal(u32, 60000);
    assert_int_equal(hs_gguf_get_i64(g, "s.i16", &i64, &err), HS_OK);
    assert_int_equal(i64, -30000);
    assert_int_equal(hs_gguf_get_u32(g, "s.u32", &u32, &err), HS_OK);
    assert_int_equal(u32, 4000000000u);
    assert_int_equal(hs_gguf_get_i64(g, "s.i32", &i64, &err), HS_OK);
    assert_int_equal(i64, -2000000000);
    assert_int_equal(hs_gguf_get_f32(g, "s.f32", &f, &err), HS_OK);
    assert_true(f == 0.125f);
    assert_int_equal(hs_gguf_get_bool(g, "s.bool", &b, &err), HS_OK);
    assert_true(b);
    const char *s;
    size_t len;
    assert_int_equal(hs_gguf_get_str(g, "s.str", &s, &len, &err), HS_OK);
    assert_int_equal(len, 5);
    assert_memory_equal(s, "h\0llo", 5);
    assert_int_equal(hs_gguf_get_str(g, "s.empty", &s, &len, &err), HS_OK);
    assert_int_equal(len, 0);
    assert_int_equal(hs_gguf_get_u64(g, "s.u64", &u64, &err), HS_OK);
    assert_true(u64 == UINT64_MAX);
    assert_int_equal(hs_gguf_get_i64(g, "s.i64", &i64, &err), HS_OK);
    assert_true(i64 == -((int64_t)1 << 40));
    assert_int_equal(hs_gguf_get_f32(g, "s.f64", &f, &err), HS_OK);
    assert_true(isinf(f) && f < 0); /* -2.5e300 does not fit a float */

    for (int t = 0; t < HS_GGUF_VTYPE_COUNT; t++) {
        if (!hs_gguf_vtype_size((enum hs_gguf_vtype)t))
            continue;
        char key[32];
        snprintf(key, sizeof key, "a.%s", hs_gguf_vtype_name((enum hs_gguf_vtype)t));
        const struct hs_gguf_kv *kv;
        assert_int_equal(hs_gguf_get_arr(g, key, t, &kv, &err), HS_OK);
        assert_int_equal(kv->n, N_ARR);
        bool is_unsigned =
            t == HS_GGUF_UINT8 || t == HS_GGUF_UINT16 || t == HS_GGUF_UINT32 || t == HS_GGUF_UINT64;
        for (int i = 0; i < N_ARR; i++) {
            int64_t want = (i & 1) ? -i : i;
            if (t == HS_GGUF_BOOL)
                want = i & 1;
            else if (is_unsigned && want < 0 && t != HS_GGUF_UINT64)
                want += (int64_t)1 << (8 * hs_gguf_vtype_size((enum hs_gguf_vtype)t));
            if (is_unsigned && want < 0) /* u64 of -i saturates in i64 */
                assert_int_equal(hs_gguf_arr_i64(kv, (uint64_t)i), INT64_MAX);
            else
                assert_int_equal(hs_gguf_arr_i64(kv, (uint64_t)i), want);
            if (!(is_unsigned && want < 0))
                assert_true(hs_gguf_arr_f64(kv, (uint64_t)i) == (double)want);
        }
    }
    const struct hs_gguf_kv *kv;
    assert_int_equal(hs_gguf_get_arr(g, "a.str", HS_GGUF_STRING, &kv, &err), HS_OK);
    assert_int_equal(kv->n, 4);
    const char *want[] = {"", "one", "two words", "\xe4\xb8\xad"};
    for (uint64_t i = 0; i < 4; i++) {
        s = hs_gguf_arr_str(g, kv, i, &len);
        assert_int_equal(len, strlen(want[i]));
        assert_memory_equal(s, want[i], len);
    }
    assert_int_equal(hs_gguf_get_arr(g, "a.empty", -1, &kv, &err), HS_OK);
    assert_int_equal(kv->n, 0);

    assert_int_equal(hs_gguf_n_tensors(g), 6);
    assert_int_equal(hs_gguf_data_offset(g) % alignment, 0);
    uint64_t expect_off = 0;
    for (int64_t i = 0; i < 6; i++) {
        const struct hs_gguf_tensor *t = hs_gguf_tensor_at(g, i);
        assert_int_equal(t->offset, expect_off);
        assert_int_equal(t->nbytes, tbytes[i]);
        if (tbytes[i])
            assert_memory_equal(t->data, tdata[i], tbytes[i]);
        expect_off = (t->offset + t->nbytes + alignment - 1) / alignment * alignment;
    }
    const struct hs_gguf_tensor *t = hs_gguf_find_tensor(g, "q80");
    assert_int_equal(t->n_dims, 4);
    assert_int_equal(t->ne[3], 2);
    assert_int_equal(hs_gguf_file_size(g), hs_gguf_data_offset(g) + expect_off);
    walk(g);
    hs_gguf_close(g);
}

static void writer_round_trips_every_type(void **state)
{
    (void)state;
    const uint32_t aligns[] = {32, 64, 1};
    for (size_t k = 0; k < 3; k++) {
        char *path = hs_test_tmpfile("types.gguf");
        const uint8_t *tdata[6];
        size_t tbytes[6];
        write_all_types(path, aligns[k], tdata, tbytes);
        check_all_types(path, aligns[k], tdata, tbytes);
        round_trip_file(path); /* and the reader/writer pair reproduces it */
        for (int i = 0; i < 6; i++)
            free((void *)tdata[i]);
        unlink(path);
        free(path);
    }
}

/* ---- bad input ---- */

static void every_truncation_fails_cleanly(void **state)
{
    (void)state;
    size_t len;
    uint8_t *data = small_file(&len);
    hs_gguf *g;
    uint8_t *copy;
    hs_err err = {0};
    assert_int_equal(open_copy(data, len, &g, &copy, &err), HS_OK);
    walk(g);
    hs_gguf_close(g);
    free(copy);
    for (size_t n = 0; n < len; n++) {
        int rc = open_copy(data, n, &g, &copy, &err);
        if (rc != HS_EFORMAT)
            fail_msg("prefix of %zu bytes: rc %d", n, rc);
        assert_null(g);
        assert_non_null(strstr(err.msg, "at byte "));
        free(copy);
    }
    hs_free(data);
}

/* Flipping any one byte must never crash; when the file still opens,
 * everything in it is reachable. */
static void every_byte_flip_is_safe(void **state)
{
    (void)state;
    size_t len;
    uint8_t *data = small_file(&len);
    static const uint8_t xors[] = {0xff, 0x01, 0x80, 0x20};
    for (size_t i = 0; i < len; i++) {
        for (size_t k = 0; k < sizeof xors; k++) {
            data[i] ^= xors[k];
            hs_gguf *g;
            uint8_t *copy;
            hs_err err = {0};
            int rc = open_copy(data, len, &g, &copy, &err);
            if (rc == HS_OK) {
                walk(g);
                hs_gguf_close(g);
            } else {
                assert_int_equal(rc, HS_EFORMAT);
                assert_non_null(strstr(err.msg, "at byte "));
            }
            free(copy);
            data[i] ^= xors[k];
        }
    }
    hs_free(data);
}

static void rejects_bad_header(void **state)
{
    (void)state;
    size_t len;
    uint8_t *data = small_file(&len);
    uint8_t *b = malloc(len);

    memcpy(b, data, len);
    b[0] = 'X';
    expect_bad(b, len, 0, "bad magic");

    memcpy(b, data, len);
    put_u32le(b + 4, 1);
    expect_bad(b, len, 4, "version 1");
    hs_err err = {0};
    hs_gguf *g;
    uint8_t *copy;
    open_copy(b, len, &g, &copy, &err);
    assert_non_null(strstr(err.msg, "version 1"));
    free(copy);

    memcpy(b, data, len);
    put_u32le(b + 4, 4);
    expect_bad(b, len, 4, "version 4");

    /* version 2 has the same layout and is accepted */
    memcpy(b, data, len);
    put_u32le(b + 4, 2);
    assert_int_equal(open_copy(b, len, &g, &copy, &err), HS_OK);
    assert_int_equal(hs_gguf_version(g), 2);
    hs_gguf_close(g);
    free(copy);

    memcpy(b, data, len);
    put_u64le(b + 8, UINT64_MAX);
    expect_bad(b, len, 8, "huge tensor count");
    memcpy(b, data, len);
    put_u64le(b + 8, (uint64_t)1 << 40);
    expect_bad(b, len, 8, "large tensor count");
    memcpy(b, data, len);
    put_u64le(b + 16, UINT64_MAX / 2);
    expect_bad(b, len, 16, "huge kv count");

    /* The first key's length field is at byte 24, right after the header. */
    memcpy(b, data, len);
    put_u64le(b + 24, len);
    expect_bad(b, len, 24, "key length past EOF");
    memcpy(b, data, len);
    put_u64le(b + 24, UINT64_MAX);
    expect_bad(b, len, 24, "key length 2^64-1");
    memcpy(b, data, len);
    put_u64le(b + 24, 0);
    expect_bad(b, len, 24, "empty key");

    free(b);
    hs_free(data);
}

static void rejects_bad_metadata(void **state)
{
    (void)state;
    size_t len;
    uint8_t *data = small_file(&len);
    uint8_t *b = malloc(len);

    /* general.architecture: key, then u32 type at +20, string length at +24 */
    size_t arch = find(data, len, "general.architecture");
    memcpy(b, data, len);
    put_u32le(b + arch + 20, 13);
    expect_bad(b, len, arch + 20, "unknown value type");
    memcpy(b, data, len);
    put_u64le(b + arch + 24, len);
    expect_bad(b, len, arch + 24, "string value past EOF");

    /* general.alignment: value at +17+4 */
    size_t al = find(data, len, "general.alignment");
    memcpy(b, data, len);
    put_u32le(b + al + 21, 48);
    expect_bad(b, len, al + 21, "alignment not a power of two");
    memcpy(b, data, len);
    put_u32le(b + al + 21, 0);
    expect_bad(b, len, al + 21, "alignment 0");
    memcpy(b, data, len);
    put_u32le(b + al + 17, HS_GGUF_INT32);
    expect_bad(b, len, al - 8, "alignment of the wrong type");

    size_t flag = find(data, len, "a.flag");
    memcpy(b, data, len);
    b[flag + 10] = 2;
    expect_bad(b, len, flag + 10, "bool 2");

    /* a.list: type at +6, element type at +10, count at +14 */
    size_t list = find(data, len, "a.list");
    memcpy(b, data, len);
    put_u32le(b + list + 10, HS_GGUF_ARRAY);
    expect_bad(b, len, list + 10, "nested array");
    memcpy(b, data, len);
    put_u32le(b + list + 10, 99);
    expect_bad(b, len, list + 10, "unknown element type");
    memcpy(b, data, len);
    put_u64le(b + list + 14, UINT64_MAX / 2);
    expect_bad(b, len, list + 14, "array count overflowing n*4");
    memcpy(b, data, len);
    put_u32le(b + list + 10, HS_GGUF_FLOAT64);
    put_u64le(b + list + 14, len / 8);
    expect_bad(b, len, list + 14, "array past EOF");

    size_t strs = find(data, len, "a.strs");
    memcpy(b, data, len);
    put_u64le(b + strs + 14, (uint64_t)1 << 61);
    expect_bad(b, len, strs + 14, "string array count");
    /* first element's length (at +22) */
    memcpy(b, data, len);
    put_u64le(b + strs + 22, 1000);
    expect_bad(b, len, strs + 22, "array string past EOF");

    /* a.list -> a.flag: a duplicate key (same length) */
    memcpy(b, data, len);
    memcpy(b + list, "a.flag", 6);
    expect_bad(b, len, list - 8, "duplicate key");

    /* a NUL inside a key */
    memcpy(b, data, len);
    b[list + 1] = 0;
    expect_bad(b, len, list, "NUL in key");

    free(b);
    hs_free(data);
}

static void rejects_bad_tensors(void **state)
{
    (void)state;
    size_t len;
    uint8_t *data = small_file(&len);
    uint8_t *b = malloc(len);

    /* Tensor info "t1": name (2), n_dims at +2, ne at +6 and +14, type at +22,
     * offset at +26. "t0": n_dims +2, ne +6, type +14, offset +18. */
    size_t t0 = find(data, len, "t0"), t1 = find(data, len, "t1"), t2 = find(data, len, "t2");
    memcpy(b, data, len);
    put_u32le(b + t1 + 22, 4); /* retired Q4_2 */
    expect_bad(b, len, t1 + 22, "retired type");
    memcpy(b, data, len);
    put_u32le(b + t1 + 22, 1000);
    expect_bad(b, len, t1 + 22, "unknown type");

    memcpy(b, data, len);
    put_u64le(b + t1 + 26, 48);
    expect_bad(b, len, t1 + 26, "misaligned offset");
    memcpy(b, data, len);
    put_u64le(b + t1 + 26, 0);
    expect_bad(b, len, t1 - 8, "overlapping offsets");
    memcpy(b, data, len);
    put_u64le(b + t2 + 18, 4096);
    expect_bad(b, len, t2 - 8, "offset out of the file");
    memcpy(b, data, len);
    put_u64le(b + t2 + 18, UINT64_MAX & ~(uint64_t)31);
    expect_bad(b, len, t2 - 8, "offset near 2^64");

    memcpy(b, data, len);
    put_u32le(b + t1 + 2, 5);
    expect_bad(b, len, t1 + 2, "5 dims");
    memcpy(b, data, len);
    put_u32le(b + t1 + 2, 0);
    expect_bad(b, len, t1 + 2, "0 dims");
    memcpy(b, data, len);
    put_u64le(b + t1 + 14, (uint64_t)-1);
    expect_bad(b, len, t1 + 14, "negative ne");
    memcpy(b, data, len);
    put_u64le(b + t1 + 14, (uint64_t)1 << 62);
    expect_bad(b, len, t1 + 14, "element count overflow");
    memcpy(b, data, len);
    put_u64le(b + t1 + 6, 16);
    expect_bad(b, len, t1 + 6, "row not a whole number of blocks");
    memcpy(b, data, len);
    put_u64le(b + t0 + 6, (uint64_t)1 << 61); /* nel fits int64, bytes overflow nothing but pass the file */
    expect_bad(b, len, t0 - 8, "huge tensor");

    memcpy(b, data, len);
    memcpy(b + t2, "t0", 2);
    expect_bad(b, len, t2 - 8, "duplicate tensor name");

    memcpy(b, data, len);
    put_u64le(b + t0 - 8, 65);
    expect_bad(b, len, t0 - 8, "long tensor name");

    free(b);
    hs_free(data);
}

static void getters_check_types(void **state)
{
    (void)state;
    size_t len;
    uint8_t *data = small_file(&len);
    hs_gguf *g;
    uint8_t *copy;
    hs_err err = {0};
    assert_int_equal(open_copy(data, len, &g, &copy, &err), HS_OK);

    uint32_t u;
    int64_t i;
    float f;
    bool bo;
    const char *s;
    size_t n;
    const struct hs_gguf_kv *kv;
    /* absent: HS_ENOTFOUND, err untouched */
    hs_err_set(&err, HS_OK, "untouched");
    assert_int_equal(hs_gguf_get_u32(g, "nope", &u, &err), HS_ENOTFOUND);
    assert_int_equal(hs_gguf_get_str(g, "nope", &s, &n, &err), HS_ENOTFOUND);
    assert_int_equal(hs_gguf_get_arr(g, "nope", -1, &kv, &err), HS_ENOTFOUND);
    assert_string_equal(err.msg, "untouched");

    assert_int_equal(hs_gguf_get_u32(g, "general.architecture", &u, &err), HS_EFORMAT);
    assert_non_null(strstr(err.msg, "general.architecture"));
    assert_non_null(strstr(err.msg, "at byte "));
    assert_int_equal(hs_gguf_get_str(g, "general.alignment", &s, &n, &err), HS_EFORMAT);
    assert_int_equal(hs_gguf_get_f32(g, "general.alignment", &f, &err), HS_EFORMAT);
    assert_int_equal(hs_gguf_get_bool(g, "a.list", &bo, &err), HS_EFORMAT);
    assert_int_equal(hs_gguf_get_u32(g, "a.flag", &u, &err), HS_EFORMAT);
    assert_int_equal(hs_gguf_get_arr(g, "a.list", HS_GGUF_STRING, &kv, &err), HS_EFORMAT);
    assert_non_null(strstr(err.msg, "i32[3]"));
    assert_int_equal(hs_gguf_get_arr(g, "a.flag", -1, &kv, &err), HS_EFORMAT);
    assert_int_equal(hs_gguf_get_arr(g, "a.list", HS_GGUF_INT32, &kv, &err), HS_OK);
    assert_int_equal(hs_gguf_arr_i64(kv, 1), -2);
    assert_true(hs_gguf_arr_f64(kv, 2) == 3.0);
    assert_int_equal(hs_gguf_get_u32(g, "general.alignment", &u, &err), HS_OK);
    assert_int_equal(u, 32);
    assert_int_equal(hs_gguf_get_i64(g, "general.alignment", &i, &err), HS_OK);
    assert_int_equal(i, 32);
    assert_int_equal(hs_gguf_get_bool(g, "a.flag", &bo, &err), HS_OK);
    assert_true(bo);
    assert_null(hs_gguf_kv_at(g, -1));
    assert_null(hs_gguf_kv_at(g, hs_gguf_n_kv(g)));
    assert_null(hs_gguf_tensor_at(g, 3));
    hs_gguf_close(g);
    free(copy);
    hs_free(data);
}

/* Negative values do not fit unsigned getters; u64 above INT64_MAX does not fit i64. */
static void getters_check_ranges(void **state)
{
    (void)state;
    char *path = hs_test_tmpfile("ranges.gguf");
    hs_gguf_writer *w;
    hs_err err = {0};
    assert_int_equal(hs_gguf_writer_open(path, &w, &err), HS_OK);
    int8_t neg = -1;
    assert_int_equal(hs_gguf_w_val(w, "neg", HS_GGUF_INT8, &neg), HS_OK);
    assert_int_equal(hs_gguf_w_u64(w, "big", (uint64_t)1 << 63), HS_OK);
    assert_int_equal(hs_gguf_w_u64(w, "u33", (uint64_t)1 << 32), HS_OK);
    assert_int_equal(hs_gguf_w_close(w, &err), HS_OK);
    hs_gguf *g;
    assert_int_equal(hs_gguf_open(path, &g, &err), HS_OK);
    assert_int_equal(hs_gguf_n_tensors(g), 0);
    uint32_t u;
    uint64_t u64;
    int64_t i;
    assert_int_equal(hs_gguf_get_u32(g, "neg", &u, &err), HS_EFORMAT);
    assert_int_equal(hs_gguf_get_u64(g, "neg", &u64, &err), HS_EFORMAT);
    assert_int_equal(hs_gguf_get_i64(g, "neg", &i, &err), HS_OK);
    assert_int_equal(i, -1);
    assert_int_equal(hs_gguf_get_i64(g, "big", &i, &err), HS_EFORMAT);
    assert_int_equal(hs_gguf_get_u64(g, "big", &u64, &err), HS_OK);
    assert_true(u64 == (uint64_t)1 << 63);
    assert_int_equal(hs_gguf_get_u32(g, "u33", &u, &err), HS_EFORMAT);
    assert_non_null(strstr(err.msg, "4294967296"));
    hs_gguf_close(g);
    unlink(path);
    free(path);
}

static void writer_rejects_misuse(void **state)
{
    (void)state;
    char *path = hs_test_tmpfile("bad.gguf");
    hs_gguf_writer *w;
    hs_err err = {0};
    int64_t ne[2] = {32, 2};

    /* duplicate key: sticky error, close fails and removes the file */
    assert_int_equal(hs_gguf_writer_open(path, &w, &err), HS_OK);
    assert_int_equal(hs_gguf_w_u32(w, "k", 1), HS_OK);
    assert_int_equal(hs_gguf_w_u32(w, "k", 2), HS_EINVAL);
    assert_int_equal(hs_gguf_w_u32(w, "other", 2), HS_EINVAL);
    assert_int_equal(hs_gguf_w_close(w, &err), HS_EINVAL);
    assert_non_null(strstr(err.msg, "duplicate key 'k'"));
    assert_int_not_equal(access(path, F_OK), 0);

    assert_int_equal(hs_gguf_writer_open(path, &w, &err), HS_OK);
    assert_int_equal(hs_gguf_w_u32(w, "general.alignment", 24), HS_EINVAL);
    hs_gguf_w_abort(w);
    assert_int_not_equal(access(path, F_OK), 0);

    assert_int_equal(hs_gguf_writer_open(path, &w, &err), HS_OK);
    assert_int_equal(hs_gguf_w_tensor(w, "q", HS_TYPE_Q4_K, 2, ne), HS_EINVAL); /* 32 % 256 */
    hs_gguf_w_abort(w);

    assert_int_equal(hs_gguf_writer_open(path, &w, &err), HS_OK);
    assert_int_equal(hs_gguf_w_tensor(w, "a", HS_TYPE_Q8_0, 2, ne), HS_OK);
    assert_int_equal(hs_gguf_w_tensor(w, "a", HS_TYPE_Q8_0, 2, ne), HS_EINVAL);
    hs_gguf_w_abort(w);

    /* short data */
    assert_int_equal(hs_gguf_writer_open(path, &w, &err), HS_OK);
    assert_int_equal(hs_gguf_w_tensor(w, "a", HS_TYPE_Q8_0, 2, ne), HS_OK);
    assert_int_equal(hs_gguf_w_begin_data(w, &err), HS_OK);
    uint8_t buf[100] = {0};
    assert_int_equal(hs_gguf_w_data(w, buf, 67, &err), HS_OK);
    assert_int_equal(hs_gguf_w_close(w, &err), HS_EINVAL);
    assert_non_null(strstr(err.msg, "67 of its 68"));
    assert_int_not_equal(access(path, F_OK), 0);

    /* too much data; keys after begin */
    assert_int_equal(hs_gguf_writer_open(path, &w, &err), HS_OK);
    assert_int_equal(hs_gguf_w_tensor(w, "a", HS_TYPE_Q8_0, 2, ne), HS_OK);
    assert_int_equal(hs_gguf_w_begin_data(w, &err), HS_OK);
    assert_int_equal(hs_gguf_w_data(w, buf, 69, &err), HS_EINVAL);
    hs_gguf_w_abort(w);
    assert_int_equal(hs_gguf_writer_open(path, &w, &err), HS_OK);
    assert_int_equal(hs_gguf_w_begin_data(w, &err), HS_OK);
    assert_int_equal(hs_gguf_w_u32(w, "late", 1), HS_EINVAL);
    hs_gguf_w_abort(w);
    assert_int_not_equal(access(path, F_OK), 0);
    free(path);
}

static void open_reports_missing_and_empty_files(void **state)
{
    (void)state;
    hs_gguf *g = (hs_gguf *)1;
    hs_err err = {0};
    char *path = hs_test_tmpfile("missing.gguf");
    assert_int_equal(hs_gguf_open(path, &g, &err), HS_EIO);
    assert_null(g);
    FILE *f = fopen(path, "wb");
    fclose(f);
    assert_int_not_equal(hs_gguf_open(path, &g, &err), HS_OK);
    assert_null(g);
    unlink(path);
    free(path);
    assert_int_equal(hs_gguf_open_mem("GGU", 3, "mem", &g, &err), HS_EFORMAT);
    assert_string_equal(err.msg, "mem: truncated magic at byte 0");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reads_stories260k),
        cmocka_unit_test(round_trips_shared_files_byte_for_byte),
        cmocka_unit_test(writer_round_trips_every_type),
        cmocka_unit_test(every_truncation_fails_cleanly),
        cmocka_unit_test(every_byte_flip_is_safe),
        cmocka_unit_test(rejects_bad_header),
        cmocka_unit_test(rejects_bad_metadata),
        cmocka_unit_test(rejects_bad_tensors),
        cmocka_unit_test(getters_check_types),
        cmocka_unit_test(getters_check_ranges),
        cmocka_unit_test(writer_rejects_misuse),
        cmocka_unit_test(open_reports_missing_and_empty_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
