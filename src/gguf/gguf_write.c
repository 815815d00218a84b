/* GGUF writer. Keys and tensor infos are encoded into memory as they come
 * (small next to the tensor data); hs_gguf_w_begin_data writes them out and
 * tensor data is then streamed straight to the file.
 *
 * Padding follows llama.cpp so that a read/write round trip is byte exact:
 * the data section starts at the next multiple of the alignment and every
 * tensor's data, the last one included, is followed by zeros up to the next
 * multiple. A file without tensors ends right after the tensor infos, with no
 * padding (as the vocab-only files llama.cpp ships do). */
#include "gguf/gguf.h"

#include "base/buf.h"
#include "base/mem.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define KEY_MAX 65535u
#define NAME_MAX_LEN 64u

struct wtensor {
    char *name;
    uint32_t type;
    uint32_t n_dims;
    int64_t ne[HS_GGUF_MAX_DIMS];
    uint64_t nbytes;
    uint64_t offset;
};

struct hs_gguf_writer {
    FILE *f;
    char *path;
    uint32_t version;
    size_t alignment;

    hs_buf kvbuf; /* the encoded kv section */
    char **keys;  /* for the uniqueness check */
    int64_t n_kv;
    size_t keys_cap;

    struct wtensor *ts;
    int64_t n_ts;
    size_t ts_cap;

    bool begun;
    int64_t cur;       /* tensor whose data comes next */
    uint64_t cur_done; /* bytes of it written so far */
    uint64_t pos;      /* bytes written to the file */

    hs_err err; /* first error; every later call returns its code */
};

static int werr(hs_gguf_writer *w, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Records the first error (later ones are consequences) and returns its code. */
static int werr(hs_gguf_writer *w, int code, const char *fmt, ...)
{
    if (w->err.code)
        return w->err.code;
    char msg[HS_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return hs_err_set(&w->err, code, "%s: %s", w->path, msg);
}

static int put(hs_gguf_writer *w, const void *p, size_t n)
{
    if (n && fwrite(p, 1, n, w->f) != n)
        return werr(w, HS_EIO, "write failed at byte %" PRIu64 ": %s", w->pos, strerror(errno));
    w->pos += n;
    return HS_OK;
}

static int pad_to_alignment(hs_gguf_writer *w)
{
    static const uint8_t zeros[256];
    size_t a = w->alignment;
    size_t n = (size_t)((a - w->pos % a) % a);
    while (n) {
        size_t k = n < sizeof zeros ? n : sizeof zeros;
        int rc = put(w, zeros, k);
        if (rc)
            return rc;
        n -= k;
    }
    return HS_OK;
}

int hs_gguf_writer_open(const char *path, hs_gguf_writer **out, hs_err *err)
{
    *out = NULL;
    hs_gguf_writer *w = hs_calloc(1, sizeof *w);
    if (!w || !(w->path = hs_strdup(path))) {
        hs_free(w);
        return hs_err_set(err, HS_ENOMEM, "%s: out of memory", path);
    }
    w->f = fopen(path, "wb");
    if (!w->f) {
        int rc = hs_err_set(err, HS_EIO, "%s: %s", path, strerror(errno));
        hs_free(w->path);
        hs_free(w);
        return rc;
    }
    w->version = 3;
    w->alignment = HS_GGUF_DEFAULT_ALIGNMENT;
    *out = w;
    return HS_OK;
}

int hs_gguf_w_set_version(hs_gguf_writer *w, uint32_t version)
{
    if (w->err.code)
        return w->err.code;
    if (w->begun)
        return werr(w, HS_EINVAL, "version set after the data began");
    if (version != 2 && version != 3)
        return werr(w, HS_EINVAL, "cannot write GGUF version %" PRIu32, version);
    w->version = version;
    return HS_OK;
}

static void free_writer(hs_gguf_writer *w)
{
    for (int64_t i = 0; i < w->n_kv; i++)
        hs_free(w->keys[i]);
    hs_free(w->keys);
    for (int64_t i = 0; i < w->n_ts; i++)
        hs_free(w->ts[i].name);
    hs_free(w->ts);
    hs_buf_free(&w->kvbuf);
    hs_free(w->path);
    hs_free(w);
}

void hs_gguf_w_abort(hs_gguf_writer *w)
{
    if (!w)
        return;
    if (w->f) {
        fclose(w->f);
        unlink(w->path);
    }
    free_writer(w);
}

/* ---- metadata ---- */

static int put_u32(hs_buf *b, uint32_t v)
{
    return hs_buf_append(b, &v, 4);
}
static int put_u64(hs_buf *b, uint64_t v)
{
    return hs_buf_append(b, &v, 8);
}

/* Checks and records a new key, then encodes "key, type" into the kv buffer.
 * The caller appends the value. */
static int begin_kv(hs_gguf_writer *w, const char *key, enum hs_gguf_vtype type)
{
    if (w->err.code)
        return w->err.code;
    if (w->begun)
        return werr(w, HS_EINVAL, "key '%.100s' added after the data began", key ? key : "");
    if (!key || !key[0])
        return werr(w, HS_EINVAL, "empty key");
    size_t klen = strlen(key);
    if (klen > KEY_MAX)
        return werr(w, HS_EINVAL, "key of %zu bytes is too long", klen);
    for (int64_t i = 0; i < w->n_kv; i++)
        if (!strcmp(w->keys[i], key))
            return werr(w, HS_EINVAL, "duplicate key '%.100s'", key);
    if ((size_t)w->n_kv == w->keys_cap) {
        size_t cap = w->keys_cap ? w->keys_cap * 2 : 32;
        char **k = hs_realloc_array(w->keys, cap, sizeof *k);
        if (!k)
            return werr(w, HS_ENOMEM, "out of memory");
        w->keys = k;
        w->keys_cap = cap;
    }
    char *copy = hs_strdup(key);
    if (!copy)
        return werr(w, HS_ENOMEM, "out of memory");
    w->keys[w->n_kv++] = copy;
    if (put_u64(&w->kvbuf, klen) || hs_buf_append(&w->kvbuf, key, klen) || put_u32(&w->kvbuf, (uint32_t)type))
        return werr(w, HS_ENOMEM, "out of memory");
    return HS_OK;
}

static int appended(hs_gguf_writer *w, int rc)
{
    return rc ? werr(w, HS_ENOMEM, "out of memory") : HS_OK;
}

/* general.alignment decides the data layout, so it is checked when added. */
static int note_alignment(hs_gguf_writer *w, const char *key, enum hs_gguf_vtype type, const void *v)
{
    if (strcmp(key, "general.alignment") != 0)
        return HS_OK;
    if (type != HS_GGUF_UINT32)
        return werr(w, HS_EINVAL, "general.alignment must be a uint32");
    uint32_t a;
    memcpy(&a, v, 4);
    if (a == 0 || (a & (a - 1)))
        return werr(w, HS_EINVAL, "general.alignment %" PRIu32 " is not a power of two", a);
    w->alignment = a;
    return HS_OK;
}

int hs_gguf_w_val(hs_gguf_writer *w, const char *key, enum hs_gguf_vtype type, const void *v)
{
    size_t es = hs_gguf_vtype_size(type);
    if (!es)
        return werr(w, HS_EINVAL, "key '%.100s': type %d is not a scalar", key ? key : "", (int)type);
    if (type == HS_GGUF_BOOL && *(const uint8_t *)v > 1)
        return werr(w, HS_EINVAL, "key '%.100s': bool byte is neither 0 nor 1", key);
    int rc = begin_kv(w, key, type);
    if (rc)
        return rc;
    if ((rc = note_alignment(w, key, type, v)))
        return rc;
    return appended(w, hs_buf_append(&w->kvbuf, v, es));
}

int hs_gguf_w_u32(hs_gguf_writer *w, const char *key, uint32_t v)
{
    return hs_gguf_w_val(w, key, HS_GGUF_UINT32, &v);
}
int hs_gguf_w_i32(hs_gguf_writer *w, const char *key, int32_t v)
{
    return hs_gguf_w_val(w, key, HS_GGUF_INT32, &v);
}
int hs_gguf_w_u64(hs_gguf_writer *w, const char *key, uint64_t v)
{
    return hs_gguf_w_val(w, key, HS_GGUF_UINT64, &v);
}
int hs_gguf_w_f32(hs_gguf_writer *w, const char *key, float v)
{
    return hs_gguf_w_val(w, key, HS_GGUF_FLOAT32, &v);
}

int hs_gguf_w_bool(hs_gguf_writer *w, const char *key, bool v)
{
    uint8_t b = v ? 1 : 0;
    return hs_gguf_w_val(w, key, HS_GGUF_BOOL, &b);
}

int hs_gguf_w_str(hs_gguf_writer *w, const char *key, const char *s, size_t len)
{
    int rc = begin_kv(w, key, HS_GGUF_STRING);
    if (rc)
        return rc;
    return appended(w, put_u64(&w->kvbuf, len) || hs_buf_append(&w->kvbuf, s, len));
}

int hs_gguf_w_arr(hs_gguf_writer *w, const char *key, enum hs_gguf_vtype arr_type, const void *data,
                  uint64_t n)
{
    size_t es = hs_gguf_vtype_size(arr_type);
    if (!es)
        return werr(w, HS_EINVAL, "key '%.100s': array element type %d is not numeric", key ? key : "",
                    (int)arr_type);
    if (n > SIZE_MAX / es)
        return werr(w, HS_EINVAL, "key '%.100s': array of %" PRIu64 " elements is too large", key, n);
    if (arr_type == HS_GGUF_BOOL)
        for (uint64_t i = 0; i < n; i++)
            if (((const uint8_t *)data)[i] > 1)
                return werr(w, HS_EINVAL, "key '%.100s': bool element %" PRIu64 " is neither 0 nor 1", key,
                            i);
    int rc = begin_kv(w, key, HS_GGUF_ARRAY);
    if (rc)
        return rc;
    return appended(w, put_u32(&w->kvbuf, (uint32_t)arr_type) || put_u64(&w->kvbuf, n) ||
                           hs_buf_append(&w->kvbuf, data, (size_t)(n * es)));
}

int hs_gguf_w_arr_str(hs_gguf_writer *w, const char *key, const char *const *strs, const size_t *lens,
                      uint64_t n)
{
    int rc = begin_kv(w, key, HS_GGUF_ARRAY);
    if (rc)
        return rc;
    if (put_u32(&w->kvbuf, HS_GGUF_STRING) || put_u64(&w->kvbuf, n))
        return appended(w, 1);
    for (uint64_t i = 0; i < n; i++) {
        size_t len = lens ? lens[i] : strlen(strs[i]);
        if (put_u64(&w->kvbuf, len) || hs_buf_append(&w->kvbuf, strs[i], len))
            return appended(w, 1);
    }
    return HS_OK;
}

/* The reader has validated the value, so its encoding is copied as it is. */
int hs_gguf_w_kv_from(hs_gguf_writer *w, const hs_gguf *src, const struct hs_gguf_kv *kv)
{
    size_t len;
    const void *raw = hs_gguf_kv_raw(src, kv, &len);
    if (!raw)
        return werr(w, HS_EINVAL, "key '%.100s' does not belong to %s", kv && kv->key ? kv->key : "",
                    hs_gguf_name(src));
    int rc = begin_kv(w, kv->key, kv->type);
    if (rc)
        return rc;
    if ((rc = note_alignment(w, kv->key, kv->type, kv->data)))
        return rc;
    return appended(w, hs_buf_append(&w->kvbuf, raw, len));
}

/* ---- tensors ---- */

int hs_gguf_w_tensor(hs_gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims, const int64_t *ne)
{
    if (w->err.code)
        return w->err.code;
    if (w->begun)
        return werr(w, HS_EINVAL, "tensor '%.64s' added after the data began", name ? name : "");
    size_t nlen = name ? strlen(name) : 0;
    if (nlen == 0 || nlen > NAME_MAX_LEN)
        return werr(w, HS_EINVAL, "tensor name '%.80s' must have 1 to %u bytes", name ? name : "",
                    NAME_MAX_LEN);
    const struct hs_type_size *ts = hs_type_size(type);
    if (!ts)
        return werr(w, HS_EINVAL, "tensor '%s': unknown type %" PRIu32, name, type);
    if (n_dims == 0 || n_dims > HS_GGUF_MAX_DIMS)
        return werr(w, HS_EINVAL, "tensor '%s': %" PRIu32 " dims (1..%d allowed)", name, n_dims,
                    HS_GGUF_MAX_DIMS);
    uint64_t nel = 1;
    for (uint32_t i = 0; i < n_dims; i++) {
        if (ne[i] < 0 || (ne[i] && nel > (uint64_t)INT64_MAX / (uint64_t)ne[i]))
            return werr(w, HS_EINVAL, "tensor '%s': bad dimension %" PRId64, name, ne[i]);
        nel *= (uint64_t)ne[i];
    }
    if (ne[0] % ts->blck)
        return werr(w, HS_EINVAL, "tensor '%s': row length %" PRId64 " is not a multiple of %d (%s)", name,
                    ne[0], ts->blck, ts->name);
    uint64_t blocks = nel / (uint64_t)ts->blck;
    if (blocks && ts->bytes > SIZE_MAX / blocks)
        return werr(w, HS_EINVAL, "tensor '%s': size overflows", name);
    for (int64_t i = 0; i < w->n_ts; i++)
        if (!strcmp(w->ts[i].name, name))
            return werr(w, HS_EINVAL, "duplicate tensor name '%s'", name);
    if ((size_t)w->n_ts == w->ts_cap) {
        size_t cap = w->ts_cap ? w->ts_cap * 2 : 64;
        struct wtensor *p = hs_realloc_array(w->ts, cap, sizeof *p);
        if (!p)
            return werr(w, HS_ENOMEM, "out of memory");
        w->ts = p;
        w->ts_cap = cap;
    }
    struct wtensor *t = &w->ts[w->n_ts];
    memset(t, 0, sizeof *t);
    if (!(t->name = hs_strdup(name)))
        return werr(w, HS_ENOMEM, "out of memory");
    w->n_ts++;
    t->type = type;
    t->n_dims = n_dims;
    for (int i = 0; i < HS_GGUF_MAX_DIMS; i++)
        t->ne[i] = (uint32_t)i < n_dims ? ne[i] : 1;
    t->nbytes = blocks * ts->bytes;
    return HS_OK;
}

/* Pads after every finished tensor and moves on, so zero-byte tensors need
 * no hs_gguf_w_data call. */
static int advance(hs_gguf_writer *w)
{
    while (w->cur < w->n_ts && w->cur_done == w->ts[w->cur].nbytes) {
        int rc = pad_to_alignment(w);
        if (rc)
            return rc;
        w->cur++;
        w->cur_done = 0;
    }
    return HS_OK;
}

int hs_gguf_w_begin_data(hs_gguf_writer *w, hs_err *err)
{
    if (!w->err.code && w->begun)
        werr(w, HS_EINVAL, "hs_gguf_w_begin_data called twice");
    if (w->err.code)
        goto fail;
    w->begun = true;

    /* Offsets in declaration order, each at the next multiple of the alignment. */
    uint64_t off = 0;
    size_t a = w->alignment;
    for (int64_t i = 0; i < w->n_ts; i++) {
        w->ts[i].offset = off;
        uint64_t end = off + w->ts[i].nbytes;
        if (end < off || end > UINT64_MAX - a) {
            werr(w, HS_EINVAL, "tensor data exceeds 2^64 bytes");
            goto fail;
        }
        off = (end + a - 1) / a * a;
    }

    hs_buf h = {0};
    int bad = hs_buf_append(&h, "GGUF", 4) || put_u32(&h, w->version) || put_u64(&h, (uint64_t)w->n_ts) ||
              put_u64(&h, (uint64_t)w->n_kv);
    if (bad || put(w, h.data, h.len) || put(w, w->kvbuf.data, w->kvbuf.len)) {
        hs_buf_free(&h);
        if (bad)
            werr(w, HS_ENOMEM, "out of memory");
        goto fail;
    }
    hs_buf_free(&w->kvbuf);
    hs_buf_reset(&h);
    for (int64_t i = 0; i < w->n_ts && !bad; i++) {
        const struct wtensor *t = &w->ts[i];
        size_t nlen = strlen(t->name);
        bad = put_u64(&h, nlen) || hs_buf_append(&h, t->name, nlen) || put_u32(&h, t->n_dims);
        for (uint32_t j = 0; j < t->n_dims && !bad; j++)
            bad = put_u64(&h, (uint64_t)t->ne[j]);
        bad = bad || put_u32(&h, t->type) || put_u64(&h, t->offset);
    }
    if (bad) {
        hs_buf_free(&h);
        werr(w, HS_ENOMEM, "out of memory");
        goto fail;
    }
    int rc = put(w, h.data, h.len);
    hs_buf_free(&h);
    if (rc || (w->n_ts > 0 && pad_to_alignment(w)) || advance(w))
        goto fail;
    return HS_OK;
fail:
    if (err)
        *err = w->err;
    return w->err.code;
}

int hs_gguf_w_data(hs_gguf_writer *w, const void *data, size_t n, hs_err *err)
{
    const uint8_t *p = data;
    if (!w->err.code && !w->begun)
        werr(w, HS_EINVAL, "tensor data before hs_gguf_w_begin_data");
    while (!w->err.code && n) {
        if (w->cur >= w->n_ts) {
            werr(w, HS_EINVAL, "%zu bytes of data past the last tensor", n);
            break;
        }
        uint64_t room = w->ts[w->cur].nbytes - w->cur_done;
        size_t k = room < n ? (size_t)room : n;
        if (put(w, p, k))
            break;
        p += k;
        n -= k;
        w->cur_done += k;
        if (advance(w))
            break;
    }
    if (w->err.code) {
        if (err)
            *err = w->err;
        return w->err.code;
    }
    return HS_OK;
}

int hs_gguf_w_close(hs_gguf_writer *w, hs_err *err)
{
    if (!w->err.code && !w->begun)
        hs_gguf_w_begin_data(w, NULL);
    if (!w->err.code && w->cur < w->n_ts)
        werr(w, HS_EINVAL, "tensor '%s' got %" PRIu64 " of its %" PRIu64 " bytes of data", w->ts[w->cur].name,
             w->cur_done, w->ts[w->cur].nbytes);
    FILE *f = w->f;
    w->f = NULL;
    if (fflush(f) != 0 && !w->err.code)
        werr(w, HS_EIO, "flush failed: %s", strerror(errno));
    if (fclose(f) != 0 && !w->err.code)
        werr(w, HS_EIO, "close failed: %s", strerror(errno));
    int rc = w->err.code;
    if (rc) {
        unlink(w->path);
        if (err)
            *err = w->err;
    }
    free_writer(w);
    return rc;
}
