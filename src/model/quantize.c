/* llama-quantize for hestia: plan every tensor's type from the ftype's rules,
 * copy the metadata, then stream the tensors one chunk of rows at a time,
 * dequantizing and requantizing each chunk's rows in parallel. */
#include "model/quantize.h"

#include "base/log.h"
#include "base/mem.h"
#include "gguf/gguf.h"
#include "model/ftype_mix.h"
#include "tensor/qtype.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK_BYTES (8u << 20) /* bytes per chunk (the larger of source and output): memory and progress */

static bool is_float_type(uint32_t t)
{
    return t == HS_TYPE_F32 || t == HS_TYPE_F16 || t == HS_TYPE_BF16;
}

static const char *type_name(uint32_t t)
{
    const struct hs_type_size *ts = hs_type_size(t);
    return ts ? ts->name : "?";
}

/* The facts the type rules look at, from the file's metadata. Missing keys
 * leave zeros, which the rules treat as a one-layer model without GQA. */
static void model_facts(const hs_gguf *g, struct hs_ftype_model *m, char *arch, size_t arch_cap, bool pure)
{
    memset(m, 0, sizeof *m);
    const char *s = NULL;
    size_t len = 0;
    snprintf(arch, arch_cap, "llama");
    if (hs_gguf_get_str(g, "general.architecture", &s, &len, NULL) == HS_OK && len > 0 && len < arch_cap) {
        memcpy(arch, s, len);
        arch[len] = 0;
    }
    char key[128];
    uint32_t v = 0;
    snprintf(key, sizeof key, "%s.block_count", arch);
    if (hs_gguf_get_u32(g, key, &v, NULL) == HS_OK && v <= 1000000)
        m->n_layer = (int)v;
    snprintf(key, sizeof key, "%s.attention.head_count", arch);
    if (hs_gguf_get_u32(g, key, &v, NULL) == HS_OK && v <= 1000000)
        m->n_head = (int)v;
    m->n_head_kv = m->n_head;
    snprintf(key, sizeof key, "%s.attention.head_count_kv", arch);
    if (hs_gguf_get_u32(g, key, &v, NULL) == HS_OK && v > 0 && v <= 1000000)
        m->n_head_kv = (int)v;
    m->arch = arch;
    m->tied_output = hs_gguf_find_tensor(g, "output.weight") == NULL;
    m->pure = pure;
}

/* Target type of every tensor; checks that each conversion has kernels. */
static int plan_types(const hs_gguf *g, const struct hs_ftype *ft, const struct hs_quantize_params *p,
                      uint32_t *types, hs_err *err)
{
    const char *path = hs_gguf_name(g);
    struct hs_ftype_model m;
    char arch[64];
    model_facts(g, &m, arch, sizeof arch, p->pure);
    const int64_t n = hs_gguf_n_tensors(g);
    for (int64_t i = 0; i < n; i++) {
        const struct hs_gguf_tensor *t = hs_gguf_tensor_at(g, i);
        if (!is_float_type(t->type) && !p->allow_requantize)
            return hs_err_set(err, HS_EINVAL,
                              "%s is already quantized (tensor %s is %s): requantizing loses quality; "
                              "quantize the f32/f16/bf16 model, or pass --allow-requantize",
                              path, t->name, type_name(t->type));
    }
    for (int64_t i = 0; i < n; i++) {
        const struct hs_gguf_tensor *t = hs_gguf_tensor_at(g, i);
        int ty = hs_ftype_tensor_type_of(ft, t->name, (int)t->n_dims, t->ne, (int)t->type, &m, err);
        if (ty < 0)
            return ty;
        types[i] = (uint32_t)ty;
        if (types[i] == t->type)
            continue;
        const struct hs_qtype *src = hs_qtype((int)t->type), *dst = hs_qtype(ty);
        if (!src || !src->to_float)
            return hs_err_set(err, HS_EUNSUPPORTED, "%s: tensor %s: cannot read type %s back to floats", path,
                              t->name, type_name(t->type));
        if (!dst || !dst->from_float_ref)
            return hs_err_set(err, HS_EUNSUPPORTED, "%s: tensor %s: no quantizer for type %s", path, t->name,
                              type_name(types[i]));
        if (hs_type_row_bytes(types[i], t->ne[0]) == 0 || hs_type_row_bytes(t->type, t->ne[0]) == 0)
            return hs_err_set(err, HS_EFORMAT, "%s: tensor %s: rows of %lld do not fit type %s", path, t->name,
                              (long long)t->ne[0], type_name(types[i]));
    }
    return HS_OK;
}

static uint64_t n_rows_of(const struct hs_gguf_tensor *t)
{
    uint64_t r = 1;
    for (uint32_t d = 1; d < t->n_dims && d < HS_GGUF_MAX_DIMS; d++)
        r *= (uint64_t)t->ne[d];
    return r;
}

static int write_header(hs_gguf_writer *w, const hs_gguf *g, const struct hs_ftype *ft, const uint32_t *types,
                        hs_err *err)
{
    bool have_qv = false, have_ft = false;
    int rc = HS_OK;
    for (int64_t i = 0; i < hs_gguf_n_kv(g) && rc == HS_OK; i++) {
        const struct hs_gguf_kv *kv = hs_gguf_kv_at(g, i);
        /* kept in place, as llama.cpp's gguf_set_val does for an existing key */
        if (!strcmp(kv->key, "general.file_type")) {
            rc = hs_gguf_w_u32(w, kv->key, (uint32_t)ft->file_type);
            have_ft = true;
        } else if (!strcmp(kv->key, "general.quantization_version")) {
            rc = hs_gguf_w_u32(w, kv->key, 2);
            have_qv = true;
        } else {
            rc = hs_gguf_w_kv_from(w, g, kv);
        }
    }
    if (rc == HS_OK && !have_qv)
        rc = hs_gguf_w_u32(w, "general.quantization_version", 2);
    if (rc == HS_OK && !have_ft)
        rc = hs_gguf_w_u32(w, "general.file_type", (uint32_t)ft->file_type);
    for (int64_t i = 0; i < hs_gguf_n_tensors(g) && rc == HS_OK; i++) {
        const struct hs_gguf_tensor *t = hs_gguf_tensor_at(g, i);
        rc = hs_gguf_w_tensor(w, t->name, types[i], t->n_dims, t->ne);
    }
    /* begin_data reports the first sticky error's message */
    int rc2 = hs_gguf_w_begin_data(w, err);
    return rc2 ? rc2 : rc ? hs_err_set(err, rc, "writing the metadata failed") : HS_OK;
}

struct conv_job {
    const uint8_t *src;
    uint8_t *dst;
    size_t src_row, dst_row;
    int64_t ne0;
    hs_to_float_fn to_float;
    hs_from_float_fn quant;
    atomic_int failed;
};

static void conv_range(void *arg, long lo, long hi)
{
    struct conv_job *j = arg;
    float *x = hs_aligned_alloc(64, (size_t)j->ne0 * sizeof(float));
    if (!x) {
        atomic_store(&j->failed, 1);
        return;
    }
    for (long r = lo; r < hi; r++) {
        j->to_float(j->src + (size_t)r * j->src_row, x, j->ne0);
        j->quant(x, j->dst + (size_t)r * j->dst_row, j->ne0);
    }
    hs_aligned_free(x);
}

/* Drops the pages of the input mapping below `end` that were read since the
 * last call: the mapping is read-only and read once, front to back, so the
 * resident set stays at a chunk or two instead of growing to the model's size
 * (the pages stay in the page cache; this only unmaps them from us). */
struct reclaim {
    const uint8_t *base;
    size_t done, page;
};

static void reclaim_to(struct reclaim *rc, const uint8_t *end)
{
    size_t to = (size_t)(end - rc->base) / rc->page * rc->page;
    if (to > rc->done) {
        (void)madvise((void *)(uintptr_t)(rc->base + rc->done), to - rc->done, MADV_DONTNEED);
        rc->done = to;
    }
}

static int write_tensors(hs_gguf_writer *w, const hs_gguf *g, const uint32_t *types, hs_pool *pool,
                         const struct hs_quantize_params *p, uint64_t total, hs_err *err)
{
    const int64_t n = hs_gguf_n_tensors(g);
    const int nth = pool ? hs_pool_size(pool) : 1;
    uint8_t *buf = NULL;
    size_t buf_cap = 0;
    uint64_t done = 0;
    int rc = HS_OK;
    long page = sysconf(_SC_PAGESIZE);
    struct reclaim rec = {.base = hs_gguf_file_data(g), .page = page > 0 ? (size_t)page : 4096};
    if (p->progress)
        p->progress(p->user, 0, total);
    for (int64_t i = 0; i < n && rc == HS_OK; i++) {
        const struct hs_gguf_tensor *t = hs_gguf_tensor_at(g, i);
        const uint8_t *src = t->data;
        if (types[i] == t->type) { /* unchanged: the bytes as they are */
            for (uint64_t off = 0; off < t->nbytes && rc == HS_OK; off += CHUNK_BYTES) {
                size_t len = t->nbytes - off < CHUNK_BYTES ? (size_t)(t->nbytes - off) : CHUNK_BYTES;
                rc = hs_gguf_w_data(w, src + off, len, err);
                reclaim_to(&rec, src + off + len);
                done += len;
                if (p->progress)
                    p->progress(p->user, done, total);
            }
            continue;
        }
        struct conv_job job = {
            .src_row = hs_type_row_bytes(t->type, t->ne[0]),
            .dst_row = hs_type_row_bytes(types[i], t->ne[0]),
            .ne0 = t->ne[0],
            .to_float = hs_qtype((int)t->type)->to_float,
            .quant = hs_qtype((int)types[i])->from_float_ref,
        };
        atomic_init(&job.failed, 0);
        size_t widest = job.src_row > job.dst_row ? job.src_row : job.dst_row;
        uint64_t rows_total = n_rows_of(t);
        uint64_t chunk = CHUNK_BYTES / widest;
        if (chunk < 1)
            chunk = 1;
        if (chunk > rows_total)
            chunk = rows_total;
        if (chunk * job.dst_row > buf_cap) {
            hs_aligned_free(buf);
            buf_cap = (size_t)chunk * job.dst_row;
            buf = hs_aligned_alloc(64, buf_cap);
            if (!buf) {
                rc = hs_err_set(err, HS_ENOMEM, "out of memory for a %zu-byte chunk", buf_cap);
                break;
            }
        }
        job.dst = buf;
        for (uint64_t r0 = 0; r0 < rows_total && rc == HS_OK; r0 += chunk) {
            long nr = (long)(rows_total - r0 < chunk ? rows_total - r0 : chunk);
            job.src = src + (size_t)r0 * job.src_row;
            /* a few ranges per thread, so a delayed thread leaves its share to others */
            long grain = nr / (4L * nth);
            if (grain < 1)
                grain = 1;
            if (pool)
                hs_pool_for(pool, nr, grain, conv_range, &job);
            else
                conv_range(&job, 0, nr);
            if (atomic_load(&job.failed)) {
                rc = hs_err_set(err, HS_ENOMEM, "out of memory converting tensor %s", t->name);
                break;
            }
            rc = hs_gguf_w_data(w, buf, (size_t)nr * job.dst_row, err);
            reclaim_to(&rec, job.src + (size_t)nr * job.src_row);
            done += (uint64_t)nr * job.src_row;
            if (p->progress)
                p->progress(p->user, done, total);
        }
    }
    hs_aligned_free(buf);
    return rc;
}

/* A fresh OUT.tmp-XXXXXX next to `out` (same file system, so rename is atomic). */
static int make_temp(const char *out, char **tmp_out, hs_err *err)
{
    size_t len = strlen(out);
    char *tmp = hs_malloc(len + 16);
    if (!tmp)
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    memcpy(tmp, out, len);
    memcpy(tmp + len, ".tmp-XXXXXX", 12);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int rc = hs_err_set(err, HS_EIO, "%s: cannot create a temporary file next to it", out);
        hs_free(tmp);
        return rc;
    }
    (void)fchmod(fd, 0644); /* mkstemp's 0600 is too private for a model file */
    close(fd);
    *tmp_out = tmp;
    return HS_OK;
}

int hs_quantize_file(const char *in, const char *out, const struct hs_quantize_params *p, hs_pool *pool,
                     struct hs_quantize_stats *stats, hs_err *err)
{
    if (!in || !out || !p)
        return hs_err_set(err, HS_EINVAL, "quantize: bad arguments");
    const struct hs_ftype *ft = hs_ftype_find(p->ftype);
    if (!ft)
        return hs_err_set(err, HS_EINVAL, "unknown type '%s'", p->ftype ? p->ftype : "(null)");
    hs_gguf *g = NULL;
    int rc = hs_gguf_open(in, &g, err);
    if (rc)
        return rc;
    const int64_t n = hs_gguf_n_tensors(g);
    uint32_t *types = hs_calloc(n > 0 ? (size_t)n : 1, sizeof *types);
    char *tmp = NULL;
    hs_gguf_writer *w = NULL;
    struct hs_quantize_stats st = {.in_file_bytes = hs_gguf_file_size(g), .n_tensors = (int)n};
    if (!types) {
        rc = hs_err_set(err, HS_ENOMEM, "out of memory");
        goto done;
    }
    rc = plan_types(g, ft, p, types, err);
    if (rc)
        goto done;
    for (int64_t i = 0; i < n; i++) {
        const struct hs_gguf_tensor *t = hs_gguf_tensor_at(g, i);
        st.in_data_bytes += t->nbytes;
        st.out_data_bytes += (uint64_t)hs_type_row_bytes(types[i], t->ne[0]) * n_rows_of(t);
        st.n_weights += (uint64_t)t->ne[0] * n_rows_of(t);
        st.n_converted += types[i] != t->type;
    }
    rc = make_temp(out, &tmp, err);
    if (rc)
        goto done;
    rc = hs_gguf_writer_open(tmp, &w, err);
    if (rc)
        goto done;
    rc = write_header(w, g, ft, types, err);
    if (rc == HS_OK)
        rc = write_tensors(w, g, types, pool, p, st.in_data_bytes, err);
    if (rc) {
        hs_gguf_w_abort(w);
        goto done;
    }
    rc = hs_gguf_w_close(w, err);
    if (rc)
        goto done;
    struct stat sb;
    if (stat(tmp, &sb) == 0)
        st.out_file_bytes = (uint64_t)sb.st_size;
    if (rename(tmp, out) != 0) {
        rc = hs_err_set(err, HS_EIO, "%s: cannot rename %s to it", out, tmp);
        goto done;
    }
    hs_log_info("quantize.done", "in=%s out=%s type=%s tensors=%d converted=%d bytes=%llu", in, out, ft->name,
                st.n_tensors, st.n_converted, (unsigned long long)st.out_file_bytes);
    if (stats)
        *stats = st;
done:
    if (rc && tmp)
        unlink(tmp); /* no partial output, whatever failed */
    hs_free(tmp);
    hs_free(types);
    hs_gguf_close(g);
    return rc;
}
