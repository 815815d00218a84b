/* GGUF reader: parse and validate the whole header before handing anything out.
 *
 * Layout (little-endian; v2 and v3 are identical on little-endian machines,
 * v3 only added the possibility of big-endian files):
 *   magic "GGUF", u32 version, u64 n_tensors, u64 n_kv,
 *   n_kv x { string key, u32 type, value },
 *   n_tensors x { string name, u32 n_dims, i64 ne[n_dims], u32 type, u64 offset },
 *   padding to `alignment`, then the data section.
 * A string is a u64 length and that many bytes (no NUL). An array value is a
 * u32 element type, a u64 count and the elements. */
#include "gguf/gguf.h"

#include "base/mem.h"
#include "base/sys.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The spec caps keys at 65535 bytes and tensor names at 64 (ggml's
 * GGML_MAX_NAME, which counts the NUL, so 63 in practice; accept 64). */
#define KEY_MAX 65535u
#define NAME_MAX_LEN 64u
/* Smallest possible encodings, used to reject counts that cannot fit in the
 * file before allocating for them: a kv is key length (8) + >= 1 key byte +
 * type (4) + >= 1 value byte; a tensor info is name length (8) + >= 1 byte +
 * n_dims (4) + one ne (8) + type (4) + offset (8). */
#define KV_MIN_BYTES 14u
#define TENSOR_MIN_BYTES 33u

struct hs_gguf {
    hs_mapping map; /* addr NULL for hs_gguf_open_mem */
    const uint8_t *base;
    size_t size;
    char *name; /* path or caller's name, for messages */
    uint32_t version;
    size_t alignment;
    size_t data_offset;

    int64_t n_kv;
    struct hs_gguf_kv *kvs;
    size_t *kv_raw_off;   /* per kv: file offset of the encoded value (after the type) */
    size_t *kv_raw_len;   /* per kv: its encoded length */
    size_t *kv_str_first; /* per kv: first slot in str_off for a string array */
    size_t *str_off;      /* file offsets of every string-array element's length field */
    size_t n_str;

    int64_t n_tensors;
    struct hs_gguf_tensor *tensors;

    char *names; /* NUL-terminated copies of keys and tensor names */

    /* Open-addressing hash tables of indexes (-1 empty), capacity a power of two. */
    int64_t *kv_hash;
    size_t kv_hash_cap;
    int64_t *t_hash;
    size_t t_hash_cap;
};

/* ---- small helpers ---- */

static size_t vtype_size(uint32_t t)
{
    switch (t) {
    case HS_GGUF_UINT8:
    case HS_GGUF_INT8:
    case HS_GGUF_BOOL:
        return 1;
    case HS_GGUF_UINT16:
    case HS_GGUF_INT16:
        return 2;
    case HS_GGUF_UINT32:
    case HS_GGUF_INT32:
    case HS_GGUF_FLOAT32:
        return 4;
    case HS_GGUF_UINT64:
    case HS_GGUF_INT64:
    case HS_GGUF_FLOAT64:
        return 8;
    default:
        return 0;
    }
}

size_t hs_gguf_vtype_size(enum hs_gguf_vtype t)
{
    return vtype_size((uint32_t)t);
}

const char *hs_gguf_vtype_name(enum hs_gguf_vtype t)
{
    static const char *const names[HS_GGUF_VTYPE_COUNT] = {
        [HS_GGUF_UINT8] = "u8",    [HS_GGUF_INT8] = "i8",    [HS_GGUF_UINT16] = "u16",
        [HS_GGUF_INT16] = "i16",   [HS_GGUF_UINT32] = "u32", [HS_GGUF_INT32] = "i32",
        [HS_GGUF_FLOAT32] = "f32", [HS_GGUF_BOOL] = "bool",  [HS_GGUF_STRING] = "str",
        [HS_GGUF_ARRAY] = "arr",   [HS_GGUF_UINT64] = "u64", [HS_GGUF_INT64] = "i64",
        [HS_GGUF_FLOAT64] = "f64",
    };
    if ((unsigned)t >= HS_GGUF_VTYPE_COUNT)
        return "?";
    return names[t];
}

static uint16_t rd16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}
static uint32_t rd32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static uint64_t rd64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* FNV-1a: short keys, no adversarial pressure worth a keyed hash (a colliding
 * file only makes its own lookups slower). */
static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h ^= (uint8_t)*s;
        h *= 1099511628211ull;
    }
    return h;
}

static size_t hash_cap_for(int64_t n)
{
    size_t cap = 8;
    while (cap < (size_t)n * 2)
        cap *= 2;
    return cap;
}

/* Returns the index whose name equals s, or -1. */
static int64_t hash_find(const int64_t *tab, size_t cap, const char *s,
                         const char *(*name_at)(const hs_gguf *, int64_t), const hs_gguf *g)
{
    if (!tab)
        return -1;
    for (size_t i = hash_str(s) & (cap - 1);; i = (i + 1) & (cap - 1)) {
        int64_t v = tab[i];
        if (v < 0)
            return -1;
        if (!strcmp(name_at(g, v), s))
            return v;
    }
}

static const char *kv_name_at(const hs_gguf *g, int64_t i)
{
    return g->kvs[i].key;
}
static const char *t_name_at(const hs_gguf *g, int64_t i)
{
    return g->tensors[i].name;
}

/* Inserts index idx; returns the index already holding that name, or -1. */
static int64_t hash_insert(int64_t *tab, size_t cap, int64_t idx,
                           const char *(*name_at)(const hs_gguf *, int64_t), const hs_gguf *g)
{
    const char *s = name_at(g, idx);
    for (size_t i = hash_str(s) & (cap - 1);; i = (i + 1) & (cap - 1)) {
        int64_t v = tab[i];
        if (v < 0) {
            tab[i] = idx;
            return -1;
        }
        if (!strcmp(name_at(g, v), s))
            return v;
    }
}

/* ---- the parser ---- */

struct cursor {
    const uint8_t *p;
    size_t size;
    size_t off;
    const char *name;
    hs_err *err;
};

static size_t left(const struct cursor *c)
{
    return c->size - c->off;
}

static int fail(struct cursor *c, size_t at, const char *what)
{
    return hs_err_set(c->err, HS_EFORMAT, "%s: %s at byte %zu", c->name, what, at);
}

static int need(struct cursor *c, size_t n, const char *what)
{
    if (n > left(c)) {
        char msg[160];
        snprintf(msg, sizeof msg, "truncated %s (%zu bytes needed, %zu left)", what, n, left(c));
        return fail(c, c->off, msg);
    }
    return HS_OK;
}

static int get_u32(struct cursor *c, uint32_t *v, const char *what)
{
    int rc = need(c, 4, what);
    if (rc)
        return rc;
    *v = rd32(c->p + c->off);
    c->off += 4;
    return HS_OK;
}

static int get_u64(struct cursor *c, uint64_t *v, const char *what)
{
    int rc = need(c, 8, what);
    if (rc)
        return rc;
    *v = rd64(c->p + c->off);
    c->off += 8;
    return HS_OK;
}

/* A string: *at is the offset of its bytes, *len its length (checked against
 * the bytes left, so at + len never passes the end). */
static int get_str(struct cursor *c, size_t *at, uint64_t *len, const char *what)
{
    size_t start = c->off;
    char w[96];
    snprintf(w, sizeof w, "%s length", what);
    int rc = need(c, 8, w);
    if (rc)
        return rc;
    uint64_t n = rd64(c->p + c->off);
    if (n > left(c) - 8) {
        char msg[200];
        snprintf(msg, sizeof msg, "%s length %" PRIu64 " runs past the end of the file", what, n);
        return fail(c, start, msg);
    }
    c->off += 8;
    *at = c->off;
    *len = n;
    c->off += (size_t)n;
    return HS_OK;
}

/* Pushes one file offset onto the string-array index. */
static int push_str(hs_gguf *g, size_t *cap, size_t off)
{
    if (g->n_str == *cap) {
        size_t ncap = *cap ? *cap * 2 : 1024;
        size_t *p = hs_realloc_array(g->str_off, ncap, sizeof *p);
        if (!p)
            return HS_ENOMEM;
        g->str_off = p;
        *cap = ncap;
    }
    g->str_off[g->n_str++] = off;
    return HS_OK;
}

/* Temporary per-name facts collected while parsing; the names are copied out
 * once the total size is known. */
struct name_ref {
    size_t off;
    size_t len;
};

static int has_nul(const uint8_t *p, size_t n)
{
    return memchr(p, 0, n) != NULL;
}

static int parse_kv(hs_gguf *g, struct cursor *c, int64_t i, struct name_ref *ref, size_t *str_cap)
{
    struct hs_gguf_kv *kv = &g->kvs[i];
    size_t kv_start = c->off;
    uint64_t klen;
    size_t kat;
    char msg[200];
    int rc = get_str(c, &kat, &klen, "key");
    if (rc)
        return rc;
    if (klen == 0)
        return fail(c, kv_start, "empty key");
    if (klen > KEY_MAX) {
        snprintf(msg, sizeof msg, "key length %" PRIu64 " exceeds %u", klen, KEY_MAX);
        return fail(c, kv_start, msg);
    }
    if (has_nul(c->p + kat, (size_t)klen))
        return fail(c, kat, "key contains a NUL byte");
    ref->off = kat;
    ref->len = (size_t)klen;

    size_t tat = c->off;
    uint32_t t;
    if ((rc = get_u32(c, &t, "value type")))
        return rc;
    if (t >= HS_GGUF_VTYPE_COUNT) {
        snprintf(msg, sizeof msg, "unknown value type %" PRIu32 " for key '%.*s'", t,
                 (int)(klen > 80 ? 80 : klen), (const char *)c->p + kat);
        return fail(c, tat, msg);
    }
    kv->type = (enum hs_gguf_vtype)t;
    kv->arr_type = (enum hs_gguf_vtype)t;
    kv->n = 1;
    g->kv_str_first[i] = SIZE_MAX;
    size_t vat = c->off;
    g->kv_raw_off[i] = vat;

    if (t == HS_GGUF_STRING) {
        size_t sat;
        uint64_t slen;
        if ((rc = get_str(c, &sat, &slen, "string value")))
            return rc;
        kv->data = c->p + sat;
        kv->n = slen;
    } else if (t == HS_GGUF_ARRAY) {
        uint32_t at;
        size_t at_off = c->off;
        if ((rc = get_u32(c, &at, "array element type")))
            return rc;
        if (at == HS_GGUF_ARRAY)
            return fail(c, at_off, "nested arrays are not supported");
        if (at >= HS_GGUF_VTYPE_COUNT) {
            snprintf(msg, sizeof msg, "unknown array element type %" PRIu32, at);
            return fail(c, at_off, msg);
        }
        uint64_t n;
        size_t n_off = c->off;
        if ((rc = get_u64(c, &n, "array length")))
            return rc;
        kv->arr_type = (enum hs_gguf_vtype)at;
        kv->n = n;
        kv->data = c->p + c->off;
        if (at == HS_GGUF_STRING) {
            /* Each element takes at least its 8-byte length. */
            if (n > left(c) / 8) {
                snprintf(msg, sizeof msg, "string array length %" PRIu64 " runs past the end of the file", n);
                return fail(c, n_off, msg);
            }
            g->kv_str_first[i] = g->n_str;
            for (uint64_t j = 0; j < n; j++) {
                size_t el = c->off, sat;
                uint64_t slen;
                if ((rc = get_str(c, &sat, &slen, "array string")))
                    return rc;
                if (push_str(g, str_cap, el))
                    return hs_err_set(c->err, HS_ENOMEM, "%s: out of memory indexing strings", c->name);
            }
        } else {
            size_t es = vtype_size(at);
            /* n * es cannot overflow once n <= left / es. */
            if (n > left(c) / es) {
                snprintf(msg, sizeof msg, "array of %" PRIu64 " %s runs past the end of the file", n,
                         hs_gguf_vtype_name((enum hs_gguf_vtype)at));
                return fail(c, n_off, msg);
            }
            if (at == HS_GGUF_BOOL) {
                for (uint64_t j = 0; j < n; j++)
                    if (c->p[c->off + j] > 1)
                        return fail(c, c->off + (size_t)j, "bool array element is neither 0 nor 1");
            }
            c->off += (size_t)(n * es);
        }
    } else {
        size_t es = vtype_size(t);
        if ((rc = need(c, es, "value")))
            return rc;
        if (t == HS_GGUF_BOOL && c->p[c->off] > 1)
            return fail(c, c->off, "bool value is neither 0 nor 1");
        kv->data = c->p + c->off;
        c->off += es;
    }
    g->kv_raw_len[i] = c->off - vat;
    return HS_OK;
}

static int parse_tensor(hs_gguf *g, struct cursor *c, int64_t i, struct name_ref *ref)
{
    struct hs_gguf_tensor *t = &g->tensors[i];
    size_t start = c->off;
    uint64_t nlen;
    size_t nat;
    char msg[200];
    int rc = get_str(c, &nat, &nlen, "tensor name");
    if (rc)
        return rc;
    if (nlen == 0)
        return fail(c, start, "empty tensor name");
    if (nlen > NAME_MAX_LEN) {
        snprintf(msg, sizeof msg, "tensor name length %" PRIu64 " exceeds %u", nlen, NAME_MAX_LEN);
        return fail(c, start, msg);
    }
    if (has_nul(c->p + nat, (size_t)nlen))
        return fail(c, nat, "tensor name contains a NUL byte");
    ref->off = nat;
    ref->len = (size_t)nlen;
    int nl = (int)nlen;
    const char *nm = (const char *)c->p + nat;

    size_t d_off = c->off;
    uint32_t nd;
    if ((rc = get_u32(c, &nd, "tensor n_dims")))
        return rc;
    if (nd == 0 || nd > HS_GGUF_MAX_DIMS) {
        snprintf(msg, sizeof msg, "tensor '%.*s' has %" PRIu32 " dims (1..%d allowed)", nl, nm, nd,
                 HS_GGUF_MAX_DIMS);
        return fail(c, d_off, msg);
    }
    t->n_dims = nd;
    uint64_t nel = 1;
    for (int j = 0; j < HS_GGUF_MAX_DIMS; j++)
        t->ne[j] = 1;
    size_t ne_off = c->off;
    for (uint32_t j = 0; j < nd; j++) {
        size_t e_off = c->off;
        uint64_t v;
        if ((rc = get_u64(c, &v, "tensor dimension")))
            return rc;
        if (v > (uint64_t)INT64_MAX) {
            snprintf(msg, sizeof msg, "tensor '%.*s' dimension %" PRIu32 " is negative", nl, nm, j);
            return fail(c, e_off, msg);
        }
        if (v && nel > (uint64_t)INT64_MAX / v) {
            snprintf(msg, sizeof msg, "tensor '%.*s' element count overflows", nl, nm);
            return fail(c, e_off, msg);
        }
        nel *= v;
        t->ne[j] = (int64_t)v;
    }
    size_t ty_off = c->off;
    uint32_t ty;
    if ((rc = get_u32(c, &ty, "tensor type")))
        return rc;
    const struct hs_type_size *ts = hs_type_size(ty);
    if (!ts) {
        snprintf(msg, sizeof msg, "tensor '%.*s' has unknown type %" PRIu32, nl, nm, ty);
        return fail(c, ty_off, msg);
    }
    if (t->ne[0] % ts->blck) {
        snprintf(msg, sizeof msg,
                 "tensor '%.*s' row length %" PRId64 " is not a multiple of %s's block size %d", nl, nm,
                 t->ne[0], ts->name, ts->blck);
        return fail(c, ne_off, msg);
    }
    t->type = ty;
    /* bytes = (nel / blck) * bytes_per_block; nel / blck is exact because
     * ne[0] is a whole number of blocks. */
    uint64_t blocks = nel / (uint64_t)ts->blck;
    if (blocks && ts->bytes > SIZE_MAX / blocks) {
        snprintf(msg, sizeof msg, "tensor '%.*s' byte size overflows", nl, nm);
        return fail(c, ne_off, msg);
    }
    t->nbytes = blocks * ts->bytes;
    size_t o_off = c->off;
    if ((rc = get_u64(c, &t->offset, "tensor offset")))
        return rc;
    /* Alignment is known (all kvs come first); the data section's position is
     * not yet, so range checks happen after the loop. */
    if (t->offset % g->alignment) {
        snprintf(msg, sizeof msg, "tensor '%.*s' offset %" PRIu64 " is not a multiple of the alignment %zu",
                 nl, nm, t->offset, g->alignment);
        return fail(c, o_off, msg);
    }
    return HS_OK;
}

static int cmp_by_offset(const void *a, const void *b, void *ctx)
{
    const struct hs_gguf_tensor *t = ctx;
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    if (t[x].offset != t[y].offset)
        return t[x].offset < t[y].offset ? -1 : 1;
    return x < y ? -1 : x > y;
}

/* Tensor data must lie inside the file and not overlap. Zero-byte tensors
 * take no space and may share an offset with anything. */
static int check_tensor_data(hs_gguf *g, struct cursor *c, const size_t *info_off)
{
    char msg[300];
    size_t data_len = g->size >= g->data_offset ? g->size - g->data_offset : 0;
    for (int64_t i = 0; i < g->n_tensors; i++) {
        struct hs_gguf_tensor *t = &g->tensors[i];
        if (t->offset > data_len || t->nbytes > data_len - t->offset) {
            snprintf(msg, sizeof msg,
                     "tensor '%s' data (offset %" PRIu64 ", %" PRIu64 " bytes) runs past the end of the file "
                     "(data section %zu bytes)",
                     t->name, t->offset, t->nbytes, data_len);
            return fail(c, info_off[i], msg);
        }
        t->data = g->base + g->data_offset + t->offset;
    }
    if (g->n_tensors < 2)
        return HS_OK;
    int64_t *order = hs_malloc((size_t)g->n_tensors * sizeof *order);
    if (!order)
        return hs_err_set(c->err, HS_ENOMEM, "%s: out of memory", c->name);
    for (int64_t i = 0; i < g->n_tensors; i++)
        order[i] = i;
    qsort_r(order, (size_t)g->n_tensors, sizeof *order, cmp_by_offset, g->tensors);
    int rc = HS_OK;
    int64_t prev = -1;
    for (int64_t k = 0; k < g->n_tensors; k++) {
        const struct hs_gguf_tensor *t = &g->tensors[order[k]];
        if (t->nbytes == 0)
            continue;
        if (prev >= 0) {
            const struct hs_gguf_tensor *p = &g->tensors[prev];
            if (p->offset + p->nbytes > t->offset) {
                snprintf(msg, sizeof msg, "tensor '%s' data overlaps tensor '%s'", t->name, p->name);
                rc = fail(c, info_off[order[k]], msg);
                break;
            }
        }
        prev = order[k];
    }
    hs_free(order);
    return rc;
}

static int build_names(hs_gguf *g, struct cursor *c, const struct name_ref *kref, const struct name_ref *tref)
{
    size_t total = 0;
    for (int64_t i = 0; i < g->n_kv; i++)
        total += kref[i].len + 1;
    for (int64_t i = 0; i < g->n_tensors; i++)
        total += tref[i].len + 1;
    g->names = hs_malloc(total ? total : 1);
    if (!g->names)
        return hs_err_set(c->err, HS_ENOMEM, "%s: out of memory", c->name);
    char *p = g->names;
    for (int64_t i = 0; i < g->n_kv; i++) {
        memcpy(p, g->base + kref[i].off, kref[i].len);
        p[kref[i].len] = '\0';
        g->kvs[i].key = p;
        p += kref[i].len + 1;
    }
    for (int64_t i = 0; i < g->n_tensors; i++) {
        memcpy(p, g->base + tref[i].off, tref[i].len);
        p[tref[i].len] = '\0';
        g->tensors[i].name = p;
        p += tref[i].len + 1;
    }
    return HS_OK;
}

/* Hash tables; also where duplicate keys and names are found. */
static int build_hashes(hs_gguf *g, struct cursor *c, const struct name_ref *kref,
                        const struct name_ref *tref)
{
    char msg[200];
    g->kv_hash_cap = hash_cap_for(g->n_kv);
    g->t_hash_cap = hash_cap_for(g->n_tensors);
    g->kv_hash = hs_malloc(g->kv_hash_cap * sizeof *g->kv_hash);
    g->t_hash = hs_malloc(g->t_hash_cap * sizeof *g->t_hash);
    if (!g->kv_hash || !g->t_hash)
        return hs_err_set(c->err, HS_ENOMEM, "%s: out of memory", c->name);
    memset(g->kv_hash, 0xff, g->kv_hash_cap * sizeof *g->kv_hash);
    memset(g->t_hash, 0xff, g->t_hash_cap * sizeof *g->t_hash);
    for (int64_t i = 0; i < g->n_kv; i++) {
        if (hash_insert(g->kv_hash, g->kv_hash_cap, i, kv_name_at, g) >= 0) {
            snprintf(msg, sizeof msg, "duplicate key '%.100s'", g->kvs[i].key);
            return fail(c, kref[i].off - 8, msg);
        }
    }
    for (int64_t i = 0; i < g->n_tensors; i++) {
        if (hash_insert(g->t_hash, g->t_hash_cap, i, t_name_at, g) >= 0) {
            snprintf(msg, sizeof msg, "duplicate tensor name '%s'", g->tensors[i].name);
            return fail(c, tref[i].off - 8, msg);
        }
    }
    return HS_OK;
}

static int parse(hs_gguf *g, hs_err *err)
{
    struct cursor c = {g->base, g->size, 0, g->name, err};
    char msg[200];
    int rc;
    if (g->size < 4 || memcmp(g->base, "GGUF", 4) != 0) {
        if (g->size >= 4 && !memcmp(g->base, "FUGG", 4))
            return fail(&c, 0, "bad magic (a big-endian GGUF file; only little-endian is supported)");
        return fail(&c, 0, g->size < 4 ? "truncated magic" : "bad magic (not a GGUF file)");
    }
    c.off = 4;
    if ((rc = get_u32(&c, &g->version, "version")))
        return rc;
    if (g->version == 1)
        return fail(&c, 4, "GGUF version 1 is not supported (convert the file with a newer llama.cpp)");
    if (g->version != 2 && g->version != 3) {
        if ((g->version & 0xffff) == 0 && g->version)
            snprintf(msg, sizeof msg, "unsupported GGUF version %" PRIu32 " (a big-endian file?)",
                     g->version);
        else
            snprintf(msg, sizeof msg, "unsupported GGUF version %" PRIu32 " (2 and 3 are supported)",
                     g->version);
        return fail(&c, 4, msg);
    }
    uint64_t nt, nkv;
    if ((rc = get_u64(&c, &nt, "tensor count")) || (rc = get_u64(&c, &nkv, "kv count")))
        return rc;
    if (nkv > left(&c) / KV_MIN_BYTES) {
        snprintf(msg, sizeof msg, "kv count %" PRIu64 " is too large for a %zu-byte file", nkv, g->size);
        return fail(&c, 16, msg);
    }
    if (nt > left(&c) / TENSOR_MIN_BYTES) {
        snprintf(msg, sizeof msg, "tensor count %" PRIu64 " is too large for a %zu-byte file", nt, g->size);
        return fail(&c, 8, msg);
    }
    g->n_kv = (int64_t)nkv;
    g->n_tensors = (int64_t)nt;

    size_t nk = nkv ? (size_t)nkv : 1, ntt = nt ? (size_t)nt : 1;
    g->kvs = hs_calloc(nk, sizeof *g->kvs);
    g->kv_raw_off = hs_calloc(nk, sizeof *g->kv_raw_off);
    g->kv_raw_len = hs_calloc(nk, sizeof *g->kv_raw_len);
    g->kv_str_first = hs_calloc(nk, sizeof *g->kv_str_first);
    g->tensors = hs_calloc(ntt, sizeof *g->tensors);
    struct name_ref *kref = hs_calloc(nk, sizeof *kref);
    struct name_ref *tref = hs_calloc(ntt, sizeof *tref);
    size_t *info_off = hs_calloc(ntt, sizeof *info_off);
    if (!g->kvs || !g->kv_raw_off || !g->kv_raw_len || !g->kv_str_first || !g->tensors || !kref || !tref ||
        !info_off) {
        rc = hs_err_set(err, HS_ENOMEM, "%s: out of memory", g->name);
        goto done;
    }

    size_t str_cap = 0;
    g->alignment = HS_GGUF_DEFAULT_ALIGNMENT;
    for (int64_t i = 0; i < g->n_kv; i++) {
        size_t kv_off = c.off;
        if ((rc = parse_kv(g, &c, i, &kref[i], &str_cap)))
            goto done;
        if (kref[i].len == 17 && !memcmp(g->base + kref[i].off, "general.alignment", 17)) {
            const struct hs_gguf_kv *kv = &g->kvs[i];
            if (kv->type != HS_GGUF_UINT32) {
                rc = fail(&c, kv_off, "general.alignment is not a uint32");
                goto done;
            }
            uint32_t a = rd32(kv->data);
            if (a == 0 || (a & (a - 1))) {
                snprintf(msg, sizeof msg, "general.alignment %" PRIu32 " is not a power of two", a);
                rc = fail(&c, g->kv_raw_off[i], msg);
                goto done;
            }
            g->alignment = a;
        }
    }
    for (int64_t i = 0; i < g->n_tensors; i++) {
        info_off[i] = c.off;
        if ((rc = parse_tensor(g, &c, i, &tref[i])))
            goto done;
    }
    /* The data section starts at the next multiple of the alignment. A file
     * without tensors may end right after the header (llama.cpp writes no
     * padding then). */
    size_t a = g->alignment;
    if (c.off > SIZE_MAX - (a - 1)) {
        rc = fail(&c, c.off, "data section offset overflows");
        goto done;
    }
    g->data_offset = (c.off + a - 1) / a * a;
    if (g->n_tensors > 0 && g->data_offset > g->size) {
        rc = fail(&c, c.off, "truncated padding before the data section");
        goto done;
    }
    if ((rc = build_names(g, &c, kref, tref)) || (rc = build_hashes(g, &c, kref, tref)) ||
        (rc = check_tensor_data(g, &c, info_off)))
        goto done;
done:
    hs_free(kref);
    hs_free(tref);
    hs_free(info_off);
    return rc;
}

void hs_gguf_close(hs_gguf *g)
{
    if (!g)
        return;
    hs_unmap(&g->map);
    hs_free(g->name);
    hs_free(g->kvs);
    hs_free(g->kv_raw_off);
    hs_free(g->kv_raw_len);
    hs_free(g->kv_str_first);
    hs_free(g->str_off);
    hs_free(g->tensors);
    hs_free(g->names);
    hs_free(g->kv_hash);
    hs_free(g->t_hash);
    hs_free(g);
}

static int open_common(hs_gguf *g, hs_gguf **out, hs_err *err)
{
    int rc = parse(g, err);
    if (rc) {
        hs_gguf_close(g);
        return rc;
    }
    *out = g;
    return HS_OK;
}

int hs_gguf_open_mem(const void *data, size_t size, const char *name, hs_gguf **out, hs_err *err)
{
    *out = NULL;
    if (!name)
        name = "<memory>";
    if (!data && size)
        return hs_err_set(err, HS_EINVAL, "%s: NULL buffer", name);
    hs_gguf *g = hs_calloc(1, sizeof *g);
    if (!g || !(g->name = hs_strdup(name))) {
        hs_free(g);
        return hs_err_set(err, HS_ENOMEM, "%s: out of memory", name);
    }
    g->base = data ? data : (const uint8_t *)"";
    g->size = size;
    return open_common(g, out, err);
}

int hs_gguf_open(const char *path, hs_gguf **out, hs_err *err)
{
    *out = NULL;
    hs_gguf *g = hs_calloc(1, sizeof *g);
    if (!g || !(g->name = hs_strdup(path))) {
        hs_free(g);
        return hs_err_set(err, HS_ENOMEM, "%s: out of memory", path);
    }
    int rc = hs_map_file(path, &g->map, err);
    if (rc) {
        hs_gguf_close(g);
        return rc;
    }
    g->base = g->map.addr;
    g->size = g->map.size;
    return open_common(g, out, err);
}

/* ---- accessors ---- */

uint32_t hs_gguf_version(const hs_gguf *g)
{
    return g->version;
}
size_t hs_gguf_alignment(const hs_gguf *g)
{
    return g->alignment;
}
size_t hs_gguf_data_offset(const hs_gguf *g)
{
    return g->data_offset;
}
size_t hs_gguf_file_size(const hs_gguf *g)
{
    return g->size;
}
const void *hs_gguf_file_data(const hs_gguf *g)
{
    return g->base;
}
const char *hs_gguf_name(const hs_gguf *g)
{
    return g->name;
}

int64_t hs_gguf_n_kv(const hs_gguf *g)
{
    return g->n_kv;
}

const struct hs_gguf_kv *hs_gguf_kv_at(const hs_gguf *g, int64_t i)
{
    if (i < 0 || i >= g->n_kv)
        return NULL;
    return &g->kvs[i];
}

const struct hs_gguf_kv *hs_gguf_find_kv(const hs_gguf *g, const char *key)
{
    int64_t i = hash_find(g->kv_hash, g->kv_hash_cap, key, kv_name_at, g);
    return i < 0 ? NULL : &g->kvs[i];
}

/* Index of a kv that belongs to g, or -1. */
static int64_t kv_index(const hs_gguf *g, const struct hs_gguf_kv *kv)
{
    if (!kv || kv < g->kvs || kv >= g->kvs + g->n_kv)
        return -1;
    return kv - g->kvs;
}

const void *hs_gguf_kv_raw(const hs_gguf *g, const struct hs_gguf_kv *kv, size_t *len)
{
    int64_t i = kv_index(g, kv);
    if (i < 0) {
        *len = 0;
        return NULL;
    }
    *len = g->kv_raw_len[i];
    return g->base + g->kv_raw_off[i];
}

size_t hs_gguf_kv_offset(const hs_gguf *g, const struct hs_gguf_kv *kv)
{
    int64_t i = kv_index(g, kv);
    return i < 0 ? 0 : g->kv_raw_off[i];
}

const char *hs_gguf_arr_str(const hs_gguf *g, const struct hs_gguf_kv *kv, uint64_t i, size_t *len)
{
    int64_t k = kv_index(g, kv);
    assert(k >= 0 && kv->type == HS_GGUF_ARRAY && kv->arr_type == HS_GGUF_STRING && i < kv->n);
    if (k < 0 || kv->type != HS_GGUF_ARRAY || kv->arr_type != HS_GGUF_STRING || i >= kv->n) {
        *len = 0;
        return NULL;
    }
    size_t off = g->str_off[g->kv_str_first[k] + i];
    *len = (size_t)rd64(g->base + off);
    return (const char *)g->base + off + 8;
}

/* Reads one numeric element as int64 or double. */
static int read_num(enum hs_gguf_vtype t, const uint8_t *p, int64_t *iv, double *dv)
{
    switch (t) {
    case HS_GGUF_UINT8:
    case HS_GGUF_BOOL:
        *iv = p[0];
        break;
    case HS_GGUF_INT8:
        *iv = (int8_t)p[0];
        break;
    case HS_GGUF_UINT16:
        *iv = rd16(p);
        break;
    case HS_GGUF_INT16:
        *iv = (int16_t)rd16(p);
        break;
    case HS_GGUF_UINT32:
        *iv = rd32(p);
        break;
    case HS_GGUF_INT32:
        *iv = (int32_t)rd32(p);
        break;
    case HS_GGUF_INT64:
        *iv = (int64_t)rd64(p);
        break;
    case HS_GGUF_UINT64: {
        uint64_t u = rd64(p);
        *iv = u > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)u;
        *dv = (double)u;
        return 1;
    }
    case HS_GGUF_FLOAT32: {
        float f;
        memcpy(&f, p, 4);
        *dv = f;
        *iv = (f != f) ? 0 : f >= 9.2e18f ? INT64_MAX : f <= -9.2e18f ? INT64_MIN : (int64_t)f;
        return 1;
    }
    case HS_GGUF_FLOAT64: {
        double d;
        memcpy(&d, p, 8);
        *dv = d;
        *iv = (d != d) ? 0 : d >= 9.2e18 ? INT64_MAX : d <= -9.2e18 ? INT64_MIN : (int64_t)d;
        return 1;
    }
    default:
        *iv = 0;
        *dv = 0;
        return 0;
    }
    *dv = (double)*iv;
    return 1;
}

double hs_gguf_arr_f64(const struct hs_gguf_kv *kv, uint64_t i)
{
    size_t es = vtype_size(kv->arr_type);
    assert(kv->type == HS_GGUF_ARRAY && es && i < kv->n);
    if (kv->type != HS_GGUF_ARRAY || !es || i >= kv->n)
        return 0;
    int64_t iv;
    double dv;
    read_num(kv->arr_type, (const uint8_t *)kv->data + i * es, &iv, &dv);
    return dv;
}

int64_t hs_gguf_arr_i64(const struct hs_gguf_kv *kv, uint64_t i)
{
    size_t es = vtype_size(kv->arr_type);
    assert(kv->type == HS_GGUF_ARRAY && es && i < kv->n);
    if (kv->type != HS_GGUF_ARRAY || !es || i >= kv->n)
        return 0;
    int64_t iv;
    double dv;
    read_num(kv->arr_type, (const uint8_t *)kv->data + i * es, &iv, &dv);
    return iv;
}

/* ---- typed getters ---- */

static int type_err(const hs_gguf *g, const struct hs_gguf_kv *kv, const char *want, hs_err *err)
{
    char have[32];
    if (kv->type == HS_GGUF_ARRAY)
        snprintf(have, sizeof have, "%s[%" PRIu64 "]", hs_gguf_vtype_name(kv->arr_type), kv->n);
    else
        snprintf(have, sizeof have, "%s", hs_gguf_vtype_name(kv->type));
    return hs_err_set(err, HS_EFORMAT, "%s: key '%s' is %s, expected %s at byte %zu", g->name, kv->key, have,
                      want, hs_gguf_kv_offset(g, kv));
}

static int is_int_type(enum hs_gguf_vtype t)
{
    return t == HS_GGUF_UINT8 || t == HS_GGUF_INT8 || t == HS_GGUF_UINT16 || t == HS_GGUF_INT16 ||
           t == HS_GGUF_UINT32 || t == HS_GGUF_INT32 || t == HS_GGUF_UINT64 || t == HS_GGUF_INT64;
}

/* An integer kv as (negative?, magnitude) so that u64 and i64 both fit. */
static int get_int(const hs_gguf *g, const char *key, const struct hs_gguf_kv **kvp, bool *neg, uint64_t *mag,
                   const char *want, hs_err *err)
{
    const struct hs_gguf_kv *kv = hs_gguf_find_kv(g, key);
    *kvp = kv;
    if (!kv)
        return HS_ENOTFOUND;
    if (!is_int_type(kv->type))
        return type_err(g, kv, want, err);
    const uint8_t *p = kv->data;
    *neg = false;
    if (kv->type == HS_GGUF_UINT64) {
        *mag = rd64(p);
        return HS_OK;
    }
    int64_t iv;
    double dv;
    read_num(kv->type, p, &iv, &dv);
    *neg = iv < 0;
    *mag = iv < 0 ? (uint64_t)0 - (uint64_t)iv : (uint64_t)iv;
    return HS_OK;
}

static int range_err(const hs_gguf *g, const struct hs_gguf_kv *kv, bool neg, uint64_t mag, const char *want,
                     hs_err *err)
{
    return hs_err_set(err, HS_EFORMAT, "%s: key '%s' value %s%" PRIu64 " does not fit %s at byte %zu",
                      g->name, kv->key, neg ? "-" : "", mag, want, hs_gguf_kv_offset(g, kv));
}

int hs_gguf_get_u32(const hs_gguf *g, const char *key, uint32_t *out, hs_err *err)
{
    const struct hs_gguf_kv *kv;
    bool neg = false;
    uint64_t mag = 0;
    int rc = get_int(g, key, &kv, &neg, &mag, "an integer", err);
    if (rc)
        return rc;
    if (neg || mag > UINT32_MAX)
        return range_err(g, kv, neg, mag, "a uint32", err);
    *out = (uint32_t)mag;
    return HS_OK;
}

int hs_gguf_get_u64(const hs_gguf *g, const char *key, uint64_t *out, hs_err *err)
{
    const struct hs_gguf_kv *kv;
    bool neg = false;
    uint64_t mag = 0;
    int rc = get_int(g, key, &kv, &neg, &mag, "an integer", err);
    if (rc)
        return rc;
    if (neg && mag)
        return range_err(g, kv, neg, mag, "a uint64", err);
    *out = mag;
    return HS_OK;
}

int hs_gguf_get_i64(const hs_gguf *g, const char *key, int64_t *out, hs_err *err)
{
    const struct hs_gguf_kv *kv;
    bool neg = false;
    uint64_t mag = 0;
    int rc = get_int(g, key, &kv, &neg, &mag, "an integer", err);
    if (rc)
        return rc;
    if (!neg && mag > (uint64_t)INT64_MAX)
        return range_err(g, kv, neg, mag, "an int64", err);
    *out = neg ? (int64_t)(0 - mag) : (int64_t)mag;
    return HS_OK;
}

int hs_gguf_get_f32(const hs_gguf *g, const char *key, float *out, hs_err *err)
{
    const struct hs_gguf_kv *kv = hs_gguf_find_kv(g, key);
    if (!kv)
        return HS_ENOTFOUND;
    if (kv->type == HS_GGUF_FLOAT32) {
        memcpy(out, kv->data, 4);
        return HS_OK;
    }
    if (kv->type == HS_GGUF_FLOAT64) {
        double d;
        memcpy(&d, kv->data, 8);
        *out = (float)d;
        return HS_OK;
    }
    return type_err(g, kv, "a float", err);
}

int hs_gguf_get_bool(const hs_gguf *g, const char *key, bool *out, hs_err *err)
{
    const struct hs_gguf_kv *kv = hs_gguf_find_kv(g, key);
    if (!kv)
        return HS_ENOTFOUND;
    if (kv->type != HS_GGUF_BOOL)
        return type_err(g, kv, "a bool", err);
    *out = *(const uint8_t *)kv->data != 0;
    return HS_OK;
}

int hs_gguf_get_str(const hs_gguf *g, const char *key, const char **s, size_t *len, hs_err *err)
{
    const struct hs_gguf_kv *kv = hs_gguf_find_kv(g, key);
    if (!kv)
        return HS_ENOTFOUND;
    if (kv->type != HS_GGUF_STRING)
        return type_err(g, kv, "a string", err);
    *s = kv->data;
    *len = (size_t)kv->n;
    return HS_OK;
}

int hs_gguf_get_arr(const hs_gguf *g, const char *key, int expect_type, const struct hs_gguf_kv **out,
                    hs_err *err)
{
    const struct hs_gguf_kv *kv = hs_gguf_find_kv(g, key);
    if (!kv)
        return HS_ENOTFOUND;
    if (kv->type != HS_GGUF_ARRAY || (expect_type >= 0 && (int)kv->arr_type != expect_type)) {
        char want[48];
        if (expect_type >= 0)
            snprintf(want, sizeof want, "an array of %s",
                     hs_gguf_vtype_name((enum hs_gguf_vtype)expect_type));
        else
            snprintf(want, sizeof want, "an array");
        return type_err(g, kv, want, err);
    }
    *out = kv;
    return HS_OK;
}

/* ---- tensors ---- */

int64_t hs_gguf_n_tensors(const hs_gguf *g)
{
    return g->n_tensors;
}

const struct hs_gguf_tensor *hs_gguf_tensor_at(const hs_gguf *g, int64_t i)
{
    if (i < 0 || i >= g->n_tensors)
        return NULL;
    return &g->tensors[i];
}

const struct hs_gguf_tensor *hs_gguf_find_tensor(const hs_gguf *g, const char *name)
{
    int64_t i = hash_find(g->t_hash, g->t_hash_cap, name, t_name_at, g);
    return i < 0 ? NULL : &g->tensors[i];
}
