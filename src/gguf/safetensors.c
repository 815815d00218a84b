/* Safetensors reader (see safetensors.h). The header is parsed with jansson;
 * tensor names are borrowed from the parsed JSON, which lives as long as the
 * reader. */
#include "gguf/safetensors.h"

#include "base/mem.h"
#include "base/sys.h"
#include "gguf/gguf_types.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* A header larger than this is not a model header but an attack or a wrong
 * file: refuse before handing it to the JSON parser. */
#define ST_MAX_HEADER ((uint64_t)100 << 20)

struct hs_st {
    hs_mapping map; /* addr NULL for open_mem */
    const uint8_t *data;
    size_t size;
    char *name;
    json_t *root;
    struct hs_st_tensor *t;
    int64_t n;
};

struct hs_st_set {
    hs_st **files;
    int64_t n_files;
    const struct hs_st_tensor **t;
    int64_t n;
};

static int dtype_of(const char *s, uint32_t *type, size_t *size)
{
    if (!strcmp(s, "F32")) {
        *type = HS_TYPE_F32;
        *size = 4;
    } else if (!strcmp(s, "F16")) {
        *type = HS_TYPE_F16;
        *size = 2;
    } else if (!strcmp(s, "BF16")) {
        *type = HS_TYPE_BF16;
        *size = 2;
    } else {
        return -1;
    }
    return 0;
}

static int cmp_begin(const void *a, const void *b)
{
    const struct hs_st_tensor *x = a, *y = b;
    uintptr_t px = (uintptr_t)x->data, py = (uintptr_t)y->data;
    if (px != py)
        return px < py ? -1 : 1;
    /* Equal starts: the empty one first, so that only real overlaps remain. */
    return x->nbytes < y->nbytes ? -1 : (x->nbytes > y->nbytes);
}

/* One "name": {dtype, shape, data_offsets} entry into *t. */
static int parse_entry(hs_st *st, const char *name, json_t *v, const uint8_t *base, uint64_t data_size,
                       struct hs_st_tensor *t, hs_err *err)
{
    const char *fn = st->name;
    if (!json_is_object(v))
        return hs_err_set(err, HS_EFORMAT, "%s: tensor '%s': entry is not an object", fn, name);
    json_t *dt = json_object_get(v, "dtype"), *sh = json_object_get(v, "shape"),
           *off = json_object_get(v, "data_offsets");
    if (!json_is_string(dt))
        return hs_err_set(err, HS_EFORMAT, "%s: tensor '%s': missing or non-string 'dtype'", fn, name);
    size_t esize;
    if (dtype_of(json_string_value(dt), &t->type, &esize))
        return hs_err_set(err, HS_EUNSUPPORTED, "%s: tensor '%s': dtype '%.32s' is not supported (F32, F16, BF16 are)",
                          fn, name, json_string_value(dt));
    if (!json_is_array(sh))
        return hs_err_set(err, HS_EFORMAT, "%s: tensor '%s': missing or non-array 'shape'", fn, name);
    size_t nd = json_array_size(sh);
    if (nd > HS_ST_MAX_DIMS)
        return hs_err_set(err, HS_EUNSUPPORTED, "%s: tensor '%s': %zu dimensions (at most %d supported)", fn, name,
                          nd, HS_ST_MAX_DIMS);
    uint64_t nel = 1;
    t->n_dims = (uint32_t)nd;
    for (size_t i = 0; i < nd; i++) {
        json_t *d = json_array_get(sh, i);
        if (!json_is_integer(d) || json_integer_value(d) < 0)
            return hs_err_set(err, HS_EFORMAT, "%s: tensor '%s': shape[%zu] is not a non-negative integer", fn, name,
                              i);
        uint64_t dim = (uint64_t)json_integer_value(d);
        if (dim && nel > (uint64_t)INT64_MAX / dim)
            return hs_err_set(err, HS_EFORMAT, "%s: tensor '%s': shape overflows", fn, name);
        nel *= dim;
        t->shape[i] = (int64_t)dim;
    }
    for (size_t i = nd; i < HS_ST_MAX_DIMS; i++)
        t->shape[i] = 1;
    if (nel > (uint64_t)INT64_MAX / esize)
        return hs_err_set(err, HS_EFORMAT, "%s: tensor '%s': shape overflows", fn, name);
    if (!json_is_array(off) || json_array_size(off) != 2 || !json_is_integer(json_array_get(off, 0)) ||
        !json_is_integer(json_array_get(off, 1)))
        return hs_err_set(err, HS_EFORMAT, "%s: tensor '%s': 'data_offsets' is not [begin, end]", fn, name);
    json_int_t b = json_integer_value(json_array_get(off, 0)), e = json_integer_value(json_array_get(off, 1));
    if (b < 0 || e < b || (uint64_t)e > data_size)
        return hs_err_set(err, HS_EFORMAT,
                          "%s: tensor '%s': data_offsets [%lld, %lld] outside the data section (%llu bytes)", fn,
                          name, (long long)b, (long long)e, (unsigned long long)data_size);
    if ((uint64_t)(e - b) != nel * esize)
        return hs_err_set(err, HS_EFORMAT,
                          "%s: tensor '%s': data_offsets hold %lld bytes but shape and dtype need %llu", fn, name,
                          (long long)(e - b), (unsigned long long)(nel * esize));
    t->name = name;
    t->file = st->name;
    t->n_elements = (int64_t)nel;
    t->nbytes = nel * esize;
    t->data = base + b;
    t->mapped = st->map.addr != NULL;
    return HS_OK;
}

static int parse(hs_st *st, hs_err *err)
{
    const char *fn = st->name;
    if (st->size < 8)
        return hs_err_set(err, HS_EFORMAT, "%s: %zu bytes, too short for a safetensors header", fn, st->size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | st->data[i];
    if (hlen > st->size - 8 || hlen > ST_MAX_HEADER)
        return hs_err_set(err, HS_EFORMAT, "%s: header length %llu runs past the end of the file (%zu bytes)", fn,
                          (unsigned long long)hlen, st->size);
    json_error_t je;
    st->root = json_loadb((const char *)st->data + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &je);
    if (!st->root)
        return hs_err_set(err, HS_EFORMAT, "%s: header JSON: %s at byte %d", fn, je.text, je.position + 8);
    if (!json_is_object(st->root))
        return hs_err_set(err, HS_EFORMAT, "%s: header JSON is not an object", fn);
    const uint8_t *base = st->data + 8 + hlen;
    uint64_t data_size = st->size - 8 - hlen;
    size_t cap = json_object_size(st->root);
    st->t = hs_calloc(cap ? cap : 1, sizeof *st->t);
    if (!st->t)
        return hs_err_set(err, HS_ENOMEM, "%s: out of memory", fn);
    const char *key;
    json_t *v;
    json_object_foreach(st->root, key, v)
    {
        if (!strcmp(key, "__metadata__")) {
            if (!json_is_object(v))
                return hs_err_set(err, HS_EFORMAT, "%s: '__metadata__' is not an object", fn);
            continue;
        }
        int rc = parse_entry(st, key, v, base, data_size, &st->t[st->n], err);
        if (rc)
            return rc;
        st->n++;
    }
    qsort(st->t, (size_t)st->n, sizeof *st->t, cmp_begin);
    for (int64_t i = 1; i < st->n; i++) {
        const struct hs_st_tensor *a = &st->t[i - 1], *b = &st->t[i];
        if (a->nbytes && (const uint8_t *)a->data + a->nbytes > (const uint8_t *)b->data)
            return hs_err_set(err, HS_EFORMAT, "%s: tensors '%s' and '%s' overlap", fn, a->name, b->name);
    }
    return HS_OK;
}

static int open_common(hs_st *st, hs_st **out, hs_err *err)
{
    int rc = st->name ? parse(st, err) : hs_err_set(err, HS_ENOMEM, "out of memory");
    if (rc) {
        hs_st_close(st);
        return rc;
    }
    *out = st;
    return HS_OK;
}

int hs_st_open_mem(const void *data, size_t size, const char *name, hs_st **out, hs_err *err)
{
    *out = NULL;
    hs_st *st = hs_calloc(1, sizeof *st);
    if (!st)
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    st->data = data;
    st->size = size;
    st->name = hs_strdup(name ? name : "safetensors");
    return open_common(st, out, err);
}

int hs_st_open(const char *path, hs_st **out, hs_err *err)
{
    *out = NULL;
    hs_st *st = hs_calloc(1, sizeof *st);
    if (!st)
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    int rc = hs_map_file(path, &st->map, err);
    if (rc) {
        hs_free(st);
        return rc;
    }
    st->data = st->map.addr;
    st->size = st->map.size;
    st->name = hs_strdup(path);
    return open_common(st, out, err);
}

void hs_st_close(hs_st *st)
{
    if (!st)
        return;
    if (st->root)
        json_decref(st->root);
    hs_free(st->t);
    hs_free(st->name);
    hs_unmap(&st->map);
    hs_free(st);
}

int64_t hs_st_n_tensors(const hs_st *st)
{
    return st->n;
}

const struct hs_st_tensor *hs_st_tensor_at(const hs_st *st, int64_t i)
{
    return (i >= 0 && i < st->n) ? &st->t[i] : NULL;
}

const struct hs_st_tensor *hs_st_find(const hs_st *st, const char *name)
{
    for (int64_t i = 0; i < st->n; i++)
        if (!strcmp(st->t[i].name, name))
            return &st->t[i];
    return NULL;
}

void hs_st_release(const struct hs_st_tensor *t)
{
    if (!t || !t->nbytes || !t->mapped)
        return;
    /* Whole pages inside the tensor only: a neighbour's bytes stay put. */
    long pg = sysconf(_SC_PAGESIZE);
    uintptr_t a = (uintptr_t)t->data, e = a + (uintptr_t)t->nbytes;
    if (pg <= 0)
        return;
    uintptr_t pa = (a + (uintptr_t)pg - 1) & ~((uintptr_t)pg - 1), pe = e & ~((uintptr_t)pg - 1);
    if (pe > pa)
        madvise((void *)pa, pe - pa, MADV_DONTNEED);
}

/* ---- sharded sets ---- */

void hs_st_set_close(hs_st_set *set)
{
    if (!set)
        return;
    for (int64_t i = 0; i < set->n_files; i++)
        hs_st_close(set->files[i]);
    hs_free(set->files);
    hs_free(set->t);
    hs_free(set);
}

static int set_add_file(hs_st_set *set, const char *path, hs_err *err)
{
    hs_st **f = hs_realloc_array(set->files, (size_t)set->n_files + 1, sizeof *f);
    if (!f)
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    set->files = f;
    int rc = hs_st_open(path, &set->files[set->n_files], err);
    if (rc)
        return rc;
    hs_st *st = set->files[set->n_files++];
    const struct hs_st_tensor **t = hs_realloc_array(set->t, (size_t)(set->n + st->n) + 1, sizeof *t);
    if (!t)
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    set->t = t;
    for (int64_t i = 0; i < st->n; i++)
        set->t[set->n++] = &st->t[i];
    return HS_OK;
}

static char *join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = hs_malloc(a + b + 2);
    if (p) {
        memcpy(p, dir, a);
        p[a] = '/';
        memcpy(p + a + 1, name, b + 1);
    }
    return p;
}

/* A shard name must stay inside the folder. */
static bool plain_name(const char *s)
{
    return *s && !strchr(s, '/') && strcmp(s, ".") && strcmp(s, "..");
}

static int set_from_index(hs_st_set *set, const char *dir, const char *ipath, hs_err *err)
{
    json_error_t je;
    json_t *root = json_load_file(ipath, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return hs_err_set(err, HS_EFORMAT, "%s: line %d: %s", ipath, je.line, je.text);
    int rc = HS_OK;
    json_t *wm = json_object_get(root, "weight_map");
    const char *key;
    json_t *v;
    if (!json_is_object(root) || !json_is_object(wm)) {
        rc = hs_err_set(err, HS_EFORMAT, "%s: missing 'weight_map' object", ipath);
        goto out;
    }
    /* Open every named file once, in order of first appearance. */
    json_t *seen = json_object();
    if (!seen) {
        rc = hs_err_set(err, HS_ENOMEM, "out of memory");
        goto out;
    }
    json_object_foreach(wm, key, v)
    {
        if (!json_is_string(v) || !plain_name(json_string_value(v))) {
            rc = hs_err_set(err, HS_EFORMAT, "%s: weight_map['%s'] is not a file name in the folder", ipath, key);
            break;
        }
        const char *f = json_string_value(v);
        if (json_object_get(seen, f))
            continue;
        json_object_set_new(seen, f, json_true());
        char *p = join(dir, f);
        rc = p ? set_add_file(set, p, err) : hs_err_set(err, HS_ENOMEM, "out of memory");
        hs_free(p);
        if (rc)
            break;
    }
    json_decref(seen);
    if (rc)
        goto out;
    /* Each mapped tensor must be in its file; each file's tensor in the map,
     * pointing at that file. */
    json_object_foreach(wm, key, v)
    {
        const struct hs_st_tensor *t = hs_st_set_find(set, key);
        if (!t) {
            rc = hs_err_set(err, HS_EFORMAT, "%s: tensor '%s' is not in %s", ipath, key, json_string_value(v));
            goto out;
        }
    }
    for (int64_t i = 0; i < set->n; i++) {
        const struct hs_st_tensor *t = set->t[i];
        json_t *f = json_object_get(wm, t->name);
        const char *base = strrchr(t->file, '/');
        base = base ? base + 1 : t->file;
        if (!f || strcmp(json_string_value(f), base)) {
            rc = hs_err_set(err, HS_EFORMAT, "%s: tensor '%s' is in %s but weight_map says %s", ipath, t->name,
                            t->file, f ? json_string_value(f) : "nothing");
            goto out;
        }
    }
out:
    json_decref(root);
    return rc;
}

int hs_st_set_open(const char *dir, hs_st_set **out, hs_err *err)
{
    *out = NULL;
    hs_st_set *set = hs_calloc(1, sizeof *set);
    char *ipath = join(dir, "model.safetensors.index.json");
    char *spath = join(dir, "model.safetensors");
    int rc;
    if (!set || !ipath || !spath)
        rc = hs_err_set(err, HS_ENOMEM, "out of memory");
    else if (access(ipath, F_OK) == 0)
        rc = set_from_index(set, dir, ipath, err);
    else if (access(spath, F_OK) == 0)
        rc = set_add_file(set, spath, err);
    else
        rc = hs_err_set(err, HS_EIO, "%s: neither model.safetensors nor model.safetensors.index.json", dir);
    hs_free(ipath);
    hs_free(spath);
    if (rc) {
        hs_st_set_close(set);
        return rc;
    }
    *out = set;
    return HS_OK;
}

int64_t hs_st_set_n_tensors(const hs_st_set *set)
{
    return set->n;
}

const struct hs_st_tensor *hs_st_set_tensor_at(const hs_st_set *set, int64_t i)
{
    return (i >= 0 && i < set->n) ? set->t[i] : NULL;
}

const struct hs_st_tensor *hs_st_set_find(const hs_st_set *set, const char *name)
{
    for (int64_t i = 0; i < set->n; i++)
        if (!strcmp(set->t[i]->name, name))
            return set->t[i];
    return NULL;
}
