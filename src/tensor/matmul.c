#include "tensor/matmul.h"

#include "base/err.h"
#include "base/mem.h"
#include "tensor/qtype.h"

#include <string.h>

void hs_mm_scratch_free(hs_mm_scratch *s) {
    hs_aligned_free(s->buf);
    s->buf = NULL;
    s->cap = 0;
}

static int scratch_reserve(hs_mm_scratch *s, size_t size) {
    if (size <= s->cap)
        return HS_OK;
    hs_aligned_free(s->buf);
    s->buf = hs_aligned_alloc(64, size);
    s->cap = s->buf ? size : 0;
    return s->buf ? HS_OK : HS_ENOMEM;
}

struct quant_job {
    const float *x;
    size_t ldx;
    int n_tok;
    int64_t n_cols;
    void *q;
    size_t q_row;
    hs_from_float_fn from_float;
};

static void quant_rows(void *arg, int ith, int nth) {
    struct quant_job *j = arg;
    long lo, hi;
    hs_pool_split(j->n_tok, ith, nth, &lo, &hi);
    for (long t = lo; t < hi; t++)
        j->from_float(j->x + (size_t)t * j->ldx, (char *)j->q + (size_t)t * j->q_row, j->n_cols);
}

struct mm_job {
    const struct hs_mat *w;
    const struct hs_qtype_kernels *k;
    const void *q; /* activations in vec_dot_type, q_row bytes apart */
    size_t q_row;
    int n_tok;
    float *y;
    size_t ldy;
};

/* Rows are handed out in chunks aligned to the tile height so that every
 * thread runs whole tiles; the work per thread differs by at most one chunk. */
static void mm_rows(void *arg, int ith, int nth) {
    struct mm_job *j = arg;
    const struct hs_mat *w = j->w;
    const int tr = j->k->gemm ? j->k->gemm_rows : 1;
    const int tc = j->k->gemm ? j->k->gemm_cols : 1;
    long n_chunks = (long)((w->n_rows + tr - 1) / tr);
    long c0, c1;
    hs_pool_split(n_chunks, ith, nth, &c0, &c1);
    long r0 = c0 * tr, r1 = c1 * tr < w->n_rows ? c1 * tr : (long)w->n_rows;
    const int n = (int)w->n_cols;
    const char *wd = w->data;
    const char *qd = j->q;
    if (j->k->gemm && j->n_tok > 1) {
        for (long r = r0; r < r1; r += tr) {
            int nr = (int)(r1 - r < tr ? r1 - r : tr);
            for (int t = 0; t < j->n_tok; t += tc) {
                int nc = j->n_tok - t < tc ? j->n_tok - t : tc;
                j->k->gemm(n, j->y + (size_t)t * j->ldy + r, j->ldy, wd + (size_t)r * w->row_bytes, w->row_bytes,
                           qd + (size_t)t * j->q_row, j->q_row, nr, nc);
            }
        }
        return;
    }
    /* Without a tile kernel: a block of rows against every token, so the rows
     * stay in cache while the tokens stream past. */
    const long RB = 16;
    for (long rb = r0; rb < r1; rb += RB) {
        long re = rb + RB < r1 ? rb + RB : r1;
        for (int t = 0; t < j->n_tok; t++) {
            const void *qt = qd + (size_t)t * j->q_row;
            float *yt = j->y + (size_t)t * j->ldy;
            for (long r = rb; r < re; r++)
                j->k->vec_dot(n, &yt[r], wd + (size_t)r * w->row_bytes, qt);
        }
    }
}

int hs_matmul(hs_pool *pool, hs_mm_scratch *scratch, const struct hs_mat *w, const float *x, size_t ldx,
              int n_tok, float *y, size_t ldy) {
    const struct hs_qtype *qt = hs_qtype(w->type);
    if (!qt)
        return HS_EUNSUPPORTED;
    const struct hs_qtype_kernels *k = hs_qtype_kernels(w->type);
    const void *q = x;
    size_t q_row = ldx * sizeof(float);
    if (qt->vec_dot_type != HS_TYPE_F32) {
        const struct hs_qtype_kernels *kq = hs_qtype_kernels(qt->vec_dot_type);
        q_row = hs_qtype_row_bytes(qt->vec_dot_type, w->n_cols);
        if (!q_row || !kq || !kq->from_float)
            return HS_EUNSUPPORTED;
        if (scratch_reserve(scratch, q_row * (size_t)n_tok))
            return HS_ENOMEM;
        struct quant_job qj = {x, ldx, n_tok, w->n_cols, scratch->buf, q_row, kq->from_float};
        if (n_tok > 1)
            hs_pool_run(pool, quant_rows, &qj);
        else
            quant_rows(&qj, 0, 1);
        q = scratch->buf;
    }
    struct mm_job j = {w, k, q, q_row, n_tok, y, ldy};
    hs_pool_run(pool, mm_rows, &j);
    return HS_OK;
}

int hs_mat_get_row(const struct hs_mat *w, int64_t row, float *out) {
    const struct hs_qtype *qt = hs_qtype(w->type);
    if (!qt || row < 0 || row >= w->n_rows)
        return HS_EINVAL;
    qt->to_float((const char *)w->data + (size_t)row * w->row_bytes, out, w->n_cols);
    return HS_OK;
}
