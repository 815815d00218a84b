/* gguf/safetensors: header validation, tensor access, sharded sets. */
#include "test_util.h"

#include "base/mem.h"
#include "gguf/gguf_types.h"
#include "gguf/safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A file image: 8-byte length, the JSON as given, then data_len pattern bytes. */
static uint8_t *image(const char *json, size_t data_len, size_t *n)
{
    size_t hl = strlen(json);
    *n = 8 + hl + data_len;
    uint8_t *p = malloc(*n);
    assert_non_null(p);
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(p + 8, json, hl);
    for (size_t i = 0; i < data_len; i++)
        p[8 + hl + i] = (uint8_t)(i * 7 + 1);
    return p;
}

static void write_file(const char *path, const uint8_t *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* Opens json+data from an exact-size heap copy; returns the code and message. */
static int try_open(const char *json, size_t data_len, hs_err *err)
{
    size_t n;
    uint8_t *p = image(json, data_len, &n);
    hs_st *st = (hs_st *)1;
    int rc = hs_st_open_mem(p, n, "t.safetensors", &st, err);
    if (rc == HS_OK)
        hs_st_close(st);
    else
        assert_null(st);
    free(p);
    return rc;
}

static const char *GOOD = "{\"__metadata__\":{\"format\":\"pt\"},"
                          "\"b\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[24,32]},"
                          "\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
                          "\"c\":{\"dtype\":\"BF16\",\"shape\":[1,1,2,1],\"data_offsets\":[32,36]},"
                          "\"d\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[36,40]},"
                          "\"e\":{\"dtype\":\"F16\",\"shape\":[0,5],\"data_offsets\":[40,40]}}   ";

static void reads_a_valid_file(void **state)
{
    (void)state;
    size_t n;
    uint8_t *p = image(GOOD, 40, &n);
    char *path = hs_test_tmpfile("good.safetensors");
    write_file(path, p, n);
    hs_st *st;
    hs_err err = {0};
    assert_int_equal(hs_st_open(path, &st, &err), HS_OK);
    assert_int_equal(hs_st_n_tensors(st), 5);
    /* In data order, whatever the JSON order. */
    const char *order[] = {"a", "b", "c", "d", "e"};
    for (int i = 0; i < 5; i++)
        assert_string_equal(hs_st_tensor_at(st, i)->name, order[i]);
    const uint8_t *data0 = p + n - 40;
    const struct hs_st_tensor *a = hs_st_find(st, "a");
    assert_non_null(a);
    assert_int_equal(a->type, HS_TYPE_F32);
    assert_int_equal(a->n_dims, 2);
    assert_int_equal(a->shape[0], 2);
    assert_int_equal(a->shape[1], 3);
    assert_int_equal(a->n_elements, 6);
    assert_int_equal(a->nbytes, 24);
    assert_memory_equal(a->data, data0, 24);
    const struct hs_st_tensor *b = hs_st_find(st, "b");
    assert_int_equal(b->type, HS_TYPE_F16);
    assert_memory_equal(b->data, data0 + 24, 8);
    assert_int_equal(hs_st_find(st, "c")->type, HS_TYPE_BF16);
    assert_int_equal(hs_st_find(st, "c")->n_dims, 4);
    assert_int_equal(hs_st_find(st, "d")->n_dims, 0);
    assert_int_equal(hs_st_find(st, "d")->n_elements, 1);
    assert_int_equal(hs_st_find(st, "e")->nbytes, 0);
    assert_null(hs_st_find(st, "__metadata__"));
    assert_null(hs_st_find(st, "zz"));
    assert_string_equal(a->file, path);
    hs_st_close(st);
    free(path);
    free(p);
}

static void every_truncation_fails_cleanly(void **state)
{
    (void)state;
    size_t n;
    uint8_t *p = image(GOOD, 40, &n);
    for (size_t k = 0; k < n; k++) {
        uint8_t *c = malloc(k ? k : 1);
        memcpy(c, p, k);
        hs_st *st;
        hs_err err = {0};
        int rc = hs_st_open_mem(c, k, "t", &st, &err);
        /* Cutting the padding or the (empty) last tensor's bytes still fails:
         * the header length then runs past the end or an offset does. */
        assert_int_equal(rc, HS_EFORMAT);
        assert_non_null(strstr(err.msg, "t: "));
        free(c);
    }
    free(p);
}

static void expect(const char *json, size_t data_len, int code, const char *needle)
{
    hs_err err = {0};
    int rc = try_open(json, data_len, &err);
    if (rc != code || !strstr(err.msg, needle))
        fail_msg("%s\n -> %d '%s' (wanted %d with '%s')", json, rc, err.msg, code, needle);
    assert_non_null(strstr(err.msg, "t.safetensors"));
}

#define T(dt, shape, off) "{\"x\":{\"dtype\":\"" dt "\",\"shape\":" shape ",\"data_offsets\":" off "}}"

static void rejects_bad_headers(void **state)
{
    (void)state;
    hs_err err = {0};
    hs_st *st;
    uint8_t tiny[5] = {0};
    assert_int_equal(hs_st_open_mem(tiny, 5, "t.safetensors", &st, &err), HS_EFORMAT);
    /* Header length beyond the file. */
    uint8_t lie[16] = {100, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
    assert_int_equal(hs_st_open_mem(lie, 16, "t.safetensors", &st, &err), HS_EFORMAT);
    assert_non_null(strstr(err.msg, "header length"));
    uint8_t huge[16] = {0, 0, 0, 0, 0, 0, 0, 0x80, '{', '}'};
    assert_int_equal(hs_st_open_mem(huge, 16, "t.safetensors", &st, &err), HS_EFORMAT);

    expect("{\"x\":", 0, HS_EFORMAT, "JSON");
    expect("[1,2]", 0, HS_EFORMAT, "not an object");
    expect("{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
           "\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
           4, HS_EFORMAT, "JSON");
    expect(T("I64", "[1]", "[0,8]"), 8, HS_EUNSUPPORTED, "'x'");
    expect(T("F8_E4M3", "[1]", "[0,1]"), 1, HS_EUNSUPPORTED, "dtype");
    expect("{\"x\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, HS_EFORMAT, "dtype");
    expect("{\"x\":3}", 0, HS_EFORMAT, "'x'");
    expect(T("F32", "[-1]", "[0,4]"), 4, HS_EFORMAT, "shape[0]");
    expect(T("F32", "[1.5]", "[0,4]"), 4, HS_EFORMAT, "shape[0]");
    expect(T("F32", "1", "[0,4]"), 4, HS_EFORMAT, "shape");
    expect(T("F32", "[1,1,1,1,1]", "[0,4]"), 4, HS_EUNSUPPORTED, "dimensions");
    expect(T("F32", "[4294967296,4294967296]", "[0,4]"), 4, HS_EFORMAT, "overflow");
    expect(T("F32", "[2305843009213693952]", "[0,4]"), 4, HS_EFORMAT, "overflow");
    expect(T("F32", "[1]", "[0,8]"), 4, HS_EFORMAT, "outside");
    expect(T("F32", "[1]", "[-4,0]"), 4, HS_EFORMAT, "outside");
    expect(T("F32", "[1]", "[4,0]"), 4, HS_EFORMAT, "outside");
    expect(T("F32", "[2]", "[0,4]"), 8, HS_EFORMAT, "need 8");
    expect(T("F16", "[1]", "[0,4]"), 4, HS_EFORMAT, "need 2");
    expect(T("F32", "[1]", "[0]"), 4, HS_EFORMAT, "data_offsets");
    expect(T("F32", "[1]", "[0,\"4\"]"), 4, HS_EFORMAT, "data_offsets");
    expect("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
           "\"y\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
           12, HS_EFORMAT, "overlap");
    expect("{\"__metadata__\":[1]}", 0, HS_EFORMAT, "__metadata__");
    /* A bad file named by path reports the path. */
    assert_int_equal(hs_st_open("no/such.safetensors", &st, &err), HS_EIO);
    assert_non_null(strstr(err.msg, "no/such.safetensors"));
}

static void shard(const char *dir, const char *name, const char *json, size_t data_len)
{
    size_t n;
    uint8_t *p = image(json, data_len, &n);
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    write_file(path, p, n);
    free(p);
}

static void reads_sharded_sets(void **state)
{
    (void)state;
    char *dir = hs_test_tmpfile("sharded");
    char cmd[2048], path[1024];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
    assert_int_equal(system(cmd), 0);
    shard(dir, "m-1.safetensors", "{\"p\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8);
    shard(dir, "m-2.safetensors",
          "{\"q\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]},"
          "\"r\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[4,6]}}",
          6);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    FILE *f = fopen(path, "w");
    fputs("{\"metadata\":{\"total_size\":14},\"weight_map\":{\"q\":\"m-2.safetensors\","
          "\"p\":\"m-1.safetensors\",\"r\":\"m-2.safetensors\"}}",
          f);
    fclose(f);
    hs_st_set *set;
    hs_err err = {0};
    assert_int_equal(hs_st_set_open(dir, &set, &err), HS_OK);
    assert_int_equal(hs_st_set_n_tensors(set), 3);
    assert_int_equal(hs_st_set_find(set, "p")->type, HS_TYPE_F32);
    assert_int_equal(hs_st_set_find(set, "q")->type, HS_TYPE_F16);
    assert_non_null(strstr(hs_st_set_find(set, "r")->file, "m-2.safetensors"));
    assert_null(hs_st_set_find(set, "zz"));
    hs_st_set_close(set);

    /* The index lies: r is said to be in m-1. */
    f = fopen(path, "w");
    fputs("{\"weight_map\":{\"q\":\"m-2.safetensors\",\"p\":\"m-1.safetensors\",\"r\":\"m-1.safetensors\"}}", f);
    fclose(f);
    assert_int_equal(hs_st_set_open(dir, &set, &err), HS_EFORMAT);
    assert_non_null(strstr(err.msg, "'r'"));
    /* A tensor the map does not name. */
    f = fopen(path, "w");
    fputs("{\"weight_map\":{\"q\":\"m-2.safetensors\",\"p\":\"m-1.safetensors\"}}", f);
    fclose(f);
    assert_int_equal(hs_st_set_open(dir, &set, &err), HS_EFORMAT);
    assert_non_null(strstr(err.msg, "'r'"));
    /* A missing shard, a name leaving the folder, malformed JSON. */
    f = fopen(path, "w");
    fputs("{\"weight_map\":{\"p\":\"m-9.safetensors\"}}", f);
    fclose(f);
    assert_int_equal(hs_st_set_open(dir, &set, &err), HS_EIO);
    assert_non_null(strstr(err.msg, "m-9.safetensors"));
    f = fopen(path, "w");
    fputs("{\"weight_map\":{\"p\":\"../m-1.safetensors\"}}", f);
    fclose(f);
    assert_int_equal(hs_st_set_open(dir, &set, &err), HS_EFORMAT);
    f = fopen(path, "w");
    fputs("{\"weight_map\":", f);
    fclose(f);
    assert_int_equal(hs_st_set_open(dir, &set, &err), HS_EFORMAT);
    assert_non_null(strstr(err.msg, "index.json"));
    assert_null(set);
    free(dir);
}

static void reads_stories260k_derived(void **state)
{
    (void)state;
    const char *p = HS_SHARED_OR_SKIP("testdata/hf/stories260K-derived/model.safetensors");
    hs_st *st;
    hs_err err = {0};
    assert_int_equal(hs_st_open(p, &st, &err), HS_OK);
    assert_int_equal(hs_st_n_tensors(st), 47);
    const struct hs_st_tensor *t = hs_st_find(st, "model.embed_tokens.weight");
    assert_non_null(t);
    assert_int_equal(t->shape[0], 512);
    assert_int_equal(t->shape[1], 64);
    assert_int_equal(t->type, HS_TYPE_F32);
    hs_st_close(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reads_a_valid_file),
        cmocka_unit_test(every_truncation_fails_cleanly),
        cmocka_unit_test(rejects_bad_headers),
        cmocka_unit_test(reads_sharded_sets),
        cmocka_unit_test(reads_stories260k_derived),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
