/* libFuzzer target for the GGUF reader: any input must either open cleanly
 * or fail with HS_EFORMAT; when it opens, everything a caller can reach is
 * read (every kv through the getters, every array element, every tensor's
 * first and last byte), so the sanitizers see any reach past the buffer. */
#include "gguf/gguf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static volatile uint64_t sink;

static void walk_kv(const hs_gguf *g, const struct hs_gguf_kv *kv)
{
    hs_err err;
    uint32_t u32;
    uint64_t u64;
    int64_t i64;
    float f;
    bool b;
    const char *s;
    size_t len;
    const struct hs_gguf_kv *arr;
    if (hs_gguf_find_kv(g, kv->key) != kv)
        abort();
    /* Every getter on every key: the mismatches must fail cleanly. */
    if (hs_gguf_get_u32(g, kv->key, &u32, &err) == HS_OK)
        sink += u32;
    if (hs_gguf_get_u64(g, kv->key, &u64, &err) == HS_OK)
        sink += u64;
    if (hs_gguf_get_i64(g, kv->key, &i64, &err) == HS_OK)
        sink += (uint64_t)i64;
    if (hs_gguf_get_f32(g, kv->key, &f, &err) == HS_OK)
        sink += (uint64_t)(f == f);
    if (hs_gguf_get_bool(g, kv->key, &b, &err) == HS_OK)
        sink += b;
    if (hs_gguf_get_str(g, kv->key, &s, &len, &err) == HS_OK && len)
        sink += (uint8_t)s[len - 1];
    if (hs_gguf_get_arr(g, kv->key, -1, &arr, &err) != HS_OK)
        return;
    for (uint64_t i = 0; i < arr->n; i++) {
        if (arr->arr_type == HS_GGUF_STRING) {
            s = hs_gguf_arr_str(g, arr, i, &len);
            if (len)
                sink += (uint8_t)s[0] + (uint8_t)s[len - 1];
        } else {
            sink += (uint64_t)hs_gguf_arr_i64(arr, i);
            sink += (uint64_t)(hs_gguf_arr_f64(arr, i) == 0.0);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hs_gguf *g;
    hs_err err;
    int rc = hs_gguf_open_mem(data, size, "fuzz", &g, &err);
    if (rc != HS_OK) {
        if (rc != HS_EFORMAT || g || !strstr(err.msg, "fuzz: "))
            abort();
        return 0;
    }
    for (int64_t i = 0; i < hs_gguf_n_kv(g); i++)
        walk_kv(g, hs_gguf_kv_at(g, i));
    for (int64_t i = 0; i < hs_gguf_n_tensors(g); i++) {
        const struct hs_gguf_tensor *t = hs_gguf_tensor_at(g, i);
        if (hs_gguf_find_tensor(g, t->name) != t || t->n_dims < 1 || t->n_dims > HS_GGUF_MAX_DIMS)
            abort();
        if (t->nbytes) {
            const uint8_t *p = t->data;
            sink += p[0] + p[t->nbytes - 1];
        }
    }
    hs_gguf_close(g);
    return 0;
}
