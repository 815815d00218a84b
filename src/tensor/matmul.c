/* hs_matmul: quantize the activations to W's vec_dot_type, then cut the
 * (rows x tokens) output into chunks that the threads claim from a shared
 * counter, so a thread slowed by another process does not hold the others
 * up at the end of the call.
 *
 * One token (generation) is memory-bound: a chunk is a run of rows, each a
 * vec_dot over one weight row streamed from memory once.
 * A batch (prompt) is compute-bound: a chunk is a block of rows x a block of
 * tokens, sized so that both blocks stay in L2 while the tile kernel (gemm)
 * walks them in gemm_rows x gemm_cols tiles, each weight block loaded once
 * per tile and reused for every token of the tile. Rows and tokens that do
 * not fill a whole tile get a smaller tile (the kernels take nr, nc).
 *
 * Batches of Q8_0, Q4_0 or Q5_0 weights on a CPU with AMX take their own
 * path (see q_legacy_amx_avx512.c): the activations are quantized and packed
 * into tile panels of 16 tokens, then chunks of 16-row weight groups x token
 * groups run on the tiles. The weight rows are first unpacked to int8, once
 * per chunk, into the thread's share of the scratch. Q4_K and Q6_K batches
 * (a Q4_K_M model) take the same path with their own unpacking and tile
 * kernels (q_k_amx_avx512.c); Q4_K's offsets also need each activation
 * block's sum, computed next to the panels.
 *
 * Q4_K's other products (generated tokens, small batches) take AMX too where
 * it is enabled, with kernels of their own whose bits do not depend on the
 * number of tokens (matmul_amxg below). */
#include "tensor/matmul.h"

#include "base/err.h"
#include "base/mem.h"
#include "tensor/qtype.h"
#include "tensor/qtype_impl.h"

#include <stdatomic.h>
#include <stdlib.h>
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

static void quant_rows(void *arg, long lo, long hi) {
    struct quant_job *j = arg;
    for (long t = lo; t < hi; t++)
        j->from_float(j->x + (size_t)t * j->ldx, (char *)j->q + (size_t)t * j->q_row, j->n_cols);
}

struct mm_job {
    const struct hs_mat *w;
    const struct hs_qtype_kernels *k;
    const char *q; /* activations in vec_dot_type, q_row bytes apart */
    size_t q_row;
    int n_tok;
    float *y;
    size_t ldy;
    long rows_per_chunk, toks_per_chunk;
    long n_row_chunks, n_chunks;
    bool tiles; /* the tile kernel, else vec_dot per (row, token) */
    atomic_long next;
};

/* Rows [r0, r1) x tokens [t0, t1) with the tile kernel. */
static void run_tiles(const struct mm_job *j, long r0, long r1, int t0, int t1) {
    const struct hs_mat *w = j->w;
    const struct hs_qtype_kernels *k = j->k;
    const int n = (int)w->n_cols, tr = k->gemm_rows, tc = k->gemm_cols;
    const char *wd = w->data;
    for (long r = r0; r < r1; r += tr) {
        const int nr = (int)(r1 - r < tr ? r1 - r : tr);
        for (int t = t0; t < t1; t += tc) {
            const int nc = t1 - t < tc ? t1 - t : tc;
            k->gemm(n, j->y + (size_t)t * j->ldy + (size_t)r, j->ldy, wd + (size_t)r * w->row_bytes, w->row_bytes,
                    j->q + (size_t)t * j->q_row, j->q_row, nr, nc);
        }
    }
}

/* Without a tile kernel: a few rows against every token of the chunk, so the
 * rows stay in L1 while the tokens stream past from L2. */
static void run_dots(const struct mm_job *j, long r0, long r1, int t0, int t1) {
    const struct hs_mat *w = j->w;
    const int n = (int)w->n_cols;
    const char *wd = w->data;
    const long RB = 4;
    for (long rb = r0; rb < r1; rb += RB) {
        const long re = rb + RB < r1 ? rb + RB : r1;
        for (int t = t0; t < t1; t++) {
            const char *qt = j->q + (size_t)t * j->q_row;
            float *yt = j->y + (size_t)t * j->ldy;
            for (long r = rb; r < re; r++)
                j->k->vec_dot(n, &yt[r], wd + (size_t)r * w->row_bytes, qt);
        }
    }
}

static void mm_worker(void *arg, int ith, int nth) {
    struct mm_job *j = arg;
    (void)ith;
    (void)nth;
    const bool tiles = j->tiles;
    for (;;) {
        const long c = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (c >= j->n_chunks)
            break;
        /* Consecutive chunks share a row block (tokens vary fastest), so
         * the threads working at the same time read the same weights. */
        const long rc = c / (j->n_chunks / j->n_row_chunks), tcn = c % (j->n_chunks / j->n_row_chunks);
        const long r0 = rc * j->rows_per_chunk;
        const long r1 = r0 + j->rows_per_chunk < j->w->n_rows ? r0 + j->rows_per_chunk : (long)j->w->n_rows;
        const long t0 = tcn * j->toks_per_chunk;
        const long t1 = t0 + j->toks_per_chunk < j->n_tok ? t0 + j->toks_per_chunk : j->n_tok;
        if (tiles)
            run_tiles(j, r0, r1, (int)t0, (int)t1);
        else
            run_dots(j, r0, r1, (int)t0, (int)t1);
    }
}

static long round_up(long v, long m) { return (v + m - 1) / m * m; }

/* Chunk shape. A batch chunk holds about 128 KiB of weight rows and as many
 * tokens' activations, at most 64 (both then sit in L2 while the tiles sweep
 * them), in whole tiles; a generation chunk is a run of rows small enough that every
 * thread gets several (load balance) and large enough that claiming one is
 * noise. */
static void plan_chunks(struct mm_job *j, int nth) {
    const long n_rows = (long)j->w->n_rows;
    const bool tiles = j->tiles;
    const long tr = tiles ? j->k->gemm_rows : 1, tc = tiles ? j->k->gemm_cols : 1;
    const size_t budget = 128 * 1024;
    long rows, toks;
    if (j->n_tok == 1) {
        rows = n_rows / ((long)nth * 8);
        if (rows < 16)
            rows = 16;
        toks = 1;
    } else {
        rows = (long)(budget / (j->w->row_bytes ? j->w->row_bytes : 1));
        toks = (long)(budget / (j->q_row ? j->q_row : 1));
        if (rows < tr * 2)
            rows = tr * 2;
        if (toks < tc * 2)
            toks = tc * 2;
        if (toks > 64)
            toks = 64;
        /* Enough chunks for every thread several times over. */
        while (rows > tr * 2 && ((n_rows + rows - 1) / rows) * ((j->n_tok + toks - 1) / toks) < (long)nth * 4)
            rows /= 2;
        rows = round_up(rows, tr);
        toks = round_up(toks, tc);
    }
    if (rows > n_rows)
        rows = n_rows;
    if (toks > j->n_tok)
        toks = j->n_tok;
    j->rows_per_chunk = rows;
    j->toks_per_chunk = toks;
    j->n_row_chunks = (n_rows + rows - 1) / rows;
    j->n_chunks = j->n_row_chunks * ((j->n_tok + toks - 1) / toks);
}

/* ------------------------------------------------------------- AMX ---- */

/* Below this many tokens the packing does not pay for itself. */
#define AMX_MIN_TOK 16
#define AMX_ROWS 16
#define AMX_TOK 16

struct amx_job {
    const struct hs_mat *w;
    void (*unpack)(hs_amx_rows *out, const void *x, size_t bx, int nr, int64_t n);
    /* K-quants: these instead of unpack and hs_i8_amx_gemm */
    void (*unpack_k)(hs_amx_k_rows *out, const void *x, size_t bx, int nr, int64_t n);
    void (*gemm_k)(int n, float *s, size_t ldc, const hs_amx_k_rows *rows, const hs_q8_0_amx_panel *panels,
                   size_t panel_stride, const float *sums, size_t sums_stride, int n_groups, int nc_last);
    float *sums; /* Q4_K: n_groups x sums_bytes of block sums, else NULL */
    size_t sums_bytes;
    char *rows_buf; /* per thread: rows_bytes of unpacked quants and scales */
    size_t rows_bytes;
    const float *x;
    size_t ldx;
    int n_tok, n_groups;
    char *q; /* Q8_0 activations, q_row bytes apart */
    size_t q_row;
    char *panels; /* n_groups x panel_bytes */
    size_t panel_bytes;
    hs_from_float_fn from_float;
    float *y;
    size_t ldy;
    long groups_per_chunk, n_tok_chunks, n_chunks;
    atomic_long next;
};

static void amx_pack(void *arg, long g0, long g1) {
    struct amx_job *j = arg;
    for (long g = g0; g < g1; g++) {
        const int t0 = (int)g * AMX_TOK;
        const int nc = j->n_tok - t0 < AMX_TOK ? j->n_tok - t0 : AMX_TOK;
        for (int t = t0; t < t0 + nc; t++)
            j->from_float(j->x + (size_t)t * j->ldx, j->q + (size_t)t * j->q_row, j->w->n_cols);
        hs_q8_0_amx_pack((hs_q8_0_amx_panel *)(j->panels + (size_t)g * j->panel_bytes), j->q + (size_t)t0 * j->q_row,
                         j->q_row, nc, j->w->n_cols);
        if (j->sums)
            hs_q8_0_amx_sums((float *)((char *)j->sums + (size_t)g * j->sums_bytes), j->q + (size_t)t0 * j->q_row,
                             j->q_row, nc, j->w->n_cols);
    }
}

static void amx_worker(void *arg, int ith, int nth) {
    struct amx_job *j = arg;
    const struct hs_mat *w = j->w;
    (void)nth;
    hs_amx_rows rows = {0, (int8_t *)(j->rows_buf + (size_t)ith * j->rows_bytes), NULL};
    rows.d = (float *)(rows.q + 16 * (size_t)w->n_cols);
    /* K-quants: a second n / 2 floats after d */
    hs_amx_k_rows krows = {0, rows.q, rows.d, rows.d + (size_t)w->n_cols / 2};
    long unpacked = -1; /* the row group now in rows */
    for (;;) {
        const long c = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (c >= j->n_chunks)
            break;
        const long r0 = c / j->n_tok_chunks * AMX_ROWS;
        const long g0 = c % j->n_tok_chunks * j->groups_per_chunk;
        const long g1 = g0 + j->groups_per_chunk < j->n_groups ? g0 + j->groups_per_chunk : j->n_groups;
        const int nr = (int)(w->n_rows - r0 < AMX_ROWS ? w->n_rows - r0 : AMX_ROWS);
        const int last = j->n_tok - (int)(g1 - 1) * AMX_TOK;
        const int nc_last = last < AMX_TOK ? last : AMX_TOK;
        float *yc = j->y + (size_t)g0 * AMX_TOK * j->ldy + (size_t)r0;
        const char *wr = (const char *)w->data + (size_t)r0 * w->row_bytes;
        const hs_q8_0_amx_panel *pc = (const hs_q8_0_amx_panel *)(j->panels + (size_t)g0 * j->panel_bytes);
        /* Chunks of one row group are consecutive, so a thread usually
         * unpacks a group once for all the token groups it takes. */
        if (j->unpack_k) {
            if (unpacked != r0) {
                j->unpack_k(&krows, wr, w->row_bytes, nr, w->n_cols);
                unpacked = r0;
            }
            const float *sc = j->sums ? (const float *)((const char *)j->sums + (size_t)g0 * j->sums_bytes) : NULL;
            j->gemm_k((int)w->n_cols, yc, j->ldy, &krows, pc, j->panel_bytes, sc, j->sums_bytes, (int)(g1 - g0),
                      nc_last);
            continue;
        }
        if (unpacked != r0) {
            j->unpack(&rows, wr, w->row_bytes, nr, w->n_cols);
            unpacked = r0;
        }
        hs_i8_amx_gemm((int)w->n_cols, yc, j->ldy, &rows, pc, j->panel_bytes, (int)(g1 - g0), nc_last);
    }
}

static int matmul_amx(hs_pool *pool, hs_mm_scratch *scratch, const struct hs_mat *w, const float *x, size_t ldx,
                      int n_tok, float *y, size_t ldy) {
    struct amx_job j = {.w = w, .x = x, .ldx = ldx, .n_tok = n_tok, .y = y, .ldy = ldy};
    j.unpack = w->type == HS_TYPE_Q4_0   ? hs_q4_0_amx_rows
               : w->type == HS_TYPE_Q5_0 ? hs_q5_0_amx_rows
                                         : hs_q8_0_amx_rows;
    if (w->type == HS_TYPE_Q4_K) {
        j.unpack_k = hs_q4_k_amx_rows;
        j.gemm_k = hs_q4_k_amx_gemm;
    } else if (w->type == HS_TYPE_Q6_K) {
        j.unpack_k = hs_q6_k_amx_rows;
        j.gemm_k = hs_q6_k_amx_gemm;
    }

    j.n_groups = (n_tok + AMX_TOK - 1) / AMX_TOK;
    j.q_row = hs_qtype_row_bytes(HS_TYPE_Q8_0, w->n_cols);
    j.panel_bytes = hs_q8_0_amx_panel_bytes(w->n_cols);
    const size_t q_bytes = (j.q_row * (size_t)n_tok + 63) / 64 * 64;
    const size_t panels_bytes = j.panel_bytes * (size_t)j.n_groups;
    /* n / 2 floats per group, a multiple of 64 bytes as n is of 256 */
    j.sums_bytes = w->type == HS_TYPE_Q4_K ? (size_t)w->n_cols / 2 * sizeof(float) : 0;
    const size_t sums_total = j.sums_bytes * (size_t)j.n_groups;
    /* 16 rows of int8 and their scales (16 floats per block; K-quants: two
     * sets) per thread. */
    const size_t scale_sets = j.unpack_k ? 2 : 1;
    j.rows_bytes = (16 * (size_t)w->n_cols + (size_t)w->n_cols / HS_QK8_0 * 64 * scale_sets + 63) / 64 * 64;
    if (scratch_reserve(scratch, q_bytes + panels_bytes + sums_total + j.rows_bytes * (size_t)hs_pool_size(pool)))
        return HS_ENOMEM;
    j.q = scratch->buf;
    j.panels = (char *)scratch->buf + q_bytes;
    j.sums = sums_total ? (float *)(j.panels + panels_bytes) : NULL;
    j.rows_buf = j.panels + panels_bytes + sums_total;
    j.from_float = hs_qtype_kernels(HS_TYPE_Q8_0)->from_float;
    hs_pool_for(pool, j.n_groups, 1, amx_pack, &j);
    /* A chunk: one 16-row weight group against up to 8 token groups (128
     * tokens), so a group is unpacked once per 8 and the threads still share
     * out a hundred chunks or more for a 2048 x 2048 matrix and 512 tokens. */
    j.groups_per_chunk = 8;
    j.n_tok_chunks = (j.n_groups + j.groups_per_chunk - 1) / j.groups_per_chunk;
    j.n_chunks = (long)((w->n_rows + AMX_ROWS - 1) / AMX_ROWS) * j.n_tok_chunks;
    atomic_init(&j.next, 0);
    hs_pool_run_shared(pool, amx_worker, &j);
    return HS_OK;
}

int hs_matmul(hs_pool *pool, hs_mm_scratch *scratch, const struct hs_mat *w, const float *x, size_t ldx,
              int n_tok, float *y, size_t ldy) {
    return hs_matmul_ex(pool, scratch, w, x, ldx, n_tok, y, ldy, 0);
}

/* ----------------------------------------------- AMX, generated tokens -- */

/* Q4_K products of generated tokens (and of small non-invariant batches)
 * where AMX is enabled: the activations are quantized to Q8_K; one token
 * takes hs_q4_k_vec_dot_amxg_avx512 row by row, more are packed into panels
 * of 8 (q_k_amxg_avx512.c) that every chunk of rows meets while the rows are
 * in L2. Both give a token the same bits (hs_q4_k_amxg_ref), so a token's
 * result does not depend on its batch; eight tokens cost about two alone. */
/* $HESTIA_NO_AMXG keeps Q4_K generation on the dot products and VNNI tiles
 * (other bits), to compare the two on one binary. Read once. */
static bool getenv_noamxg(void) {
    static atomic_int v = -1;
    int c = atomic_load(&v);
    if (c < 0) {
        c = getenv("HESTIA_NO_AMXG") != NULL;
        atomic_store(&v, c);
    }
    return c != 0;
}

struct amxg_job {
    const struct hs_mat *w;
    const char *q;
    size_t q_row;
    char *panels;
    size_t panel_bytes;
    int n_tok, n_groups;
    float *y;
    size_t ldy;
    long rows_per_chunk, n_chunks;
    atomic_long next;
};

static void amxg_pack(void *arg, long g0, long g1) {
    struct amxg_job *j = arg;
    for (long g = g0; g < g1; g++) {
        const int nc = j->n_tok - 8 * (int)g < 8 ? j->n_tok - 8 * (int)g : 8;
        hs_q4_k_amxg_pack((hs_q4_k_amxg_panel *)(j->panels + (size_t)g * j->panel_bytes),
                          j->q + (size_t)g * 8 * j->q_row, j->q_row, nc, j->w->n_cols);
    }
}

static void amxg_worker(void *arg, int ith, int nth) {
    struct amxg_job *j = arg;
    (void)ith;
    (void)nth;
    const struct hs_mat *w = j->w;
    const int n = (int)w->n_cols;
    for (;;) {
        const long c = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (c >= j->n_chunks)
            break;
        const long r0 = c * j->rows_per_chunk;
        const long r1 = r0 + j->rows_per_chunk < w->n_rows ? r0 + j->rows_per_chunk : (long)w->n_rows;
        const char *wr = (const char *)w->data + (size_t)r0 * w->row_bytes;
        if (j->n_tok == 1) {
            for (long r = r0; r < r1; r++, wr += w->row_bytes)
                hs_q4_k_vec_dot_amxg_avx512(n, &j->y[r], wr, j->q);
            continue;
        }
        for (int g = 0; g < j->n_groups; g++) {
            const int nc = j->n_tok - 8 * g < 8 ? j->n_tok - 8 * g : 8;
            hs_q4_k_amxg_gemm(n, j->y + (size_t)(8 * g) * j->ldy + (size_t)r0, j->ldy, wr, w->row_bytes,
                              (const hs_q4_k_amxg_panel *)(j->panels + (size_t)g * j->panel_bytes), (int)(r1 - r0),
                              nc);
        }
    }
}

static int matmul_amxg(hs_pool *pool, hs_mm_scratch *scratch, const struct hs_mat *w, const float *x, size_t ldx,
                       int n_tok, float *y, size_t ldy) {
    struct amxg_job j = {.w = w, .n_tok = n_tok, .y = y, .ldy = ldy};
    const struct hs_qtype_kernels *kq = hs_qtype_kernels(HS_TYPE_Q8_K);
    j.q_row = hs_qtype_row_bytes(HS_TYPE_Q8_K, w->n_cols);
    if (!j.q_row || !kq || !kq->from_float)
        return HS_EUNSUPPORTED;
    j.n_groups = (n_tok + 7) / 8;
    j.panel_bytes = n_tok > 1 ? hs_q4_k_amxg_panel_bytes(w->n_cols) : 0;
    const size_t q_bytes = (j.q_row * (size_t)n_tok + 63) / 64 * 64;
    if (scratch_reserve(scratch, q_bytes + j.panel_bytes * (size_t)j.n_groups))
        return HS_ENOMEM;
    j.q = scratch->buf;
    j.panels = (char *)scratch->buf + q_bytes;
    struct quant_job qj = {x, ldx, n_tok, w->n_cols, scratch->buf, j.q_row, kq->from_float};
    hs_pool_for(pool, n_tok, 4, quant_rows, &qj);
    if (n_tok > 1)
        hs_pool_for(pool, j.n_groups, 1, amxg_pack, &j);
    /* as for one token: several runs of rows per thread, in whole tiles */
    const int nth = hs_pool_size(pool);
    long rows = (long)w->n_rows / ((long)nth * 8);
    rows = rows < 16 ? 16 : round_up(rows, 16);
    j.rows_per_chunk = rows;
    j.n_chunks = ((long)w->n_rows + rows - 1) / rows;
    atomic_init(&j.next, 0);
    hs_pool_run_shared(pool, amxg_worker, &j);
    return HS_OK;
}

static bool amx_type(int type) {
    return type == HS_TYPE_Q8_0 || type == HS_TYPE_Q4_0 || type == HS_TYPE_Q5_0 || type == HS_TYPE_Q4_K ||
           type == HS_TYPE_Q6_K;
}

bool hs_matmul_prompt_kernels(int type) { return amx_type(type) && hs_amx_enabled(); }

int hs_matmul_ex(hs_pool *pool, hs_mm_scratch *scratch, const struct hs_mat *w, const float *x, size_t ldx,
                 int n_tok, float *y, size_t ldy, unsigned flags) {
    const bool invariant = flags & HS_MM_BATCH_INVARIANT;
    /* Batch-invariant: AMX for every prompt call or for none. Otherwise from
     * AMX_MIN_TOK tokens, where it pays for its packing. */
    const bool amx_ok = invariant ? (flags & HS_MM_PROMPT) != 0 : n_tok >= AMX_MIN_TOK;
    const struct hs_qtype *qt = hs_qtype(w->type);
    if (!qt)
        return HS_EUNSUPPORTED;
    if (n_tok <= 0 || w->n_rows <= 0)
        return HS_OK;
    const struct hs_qtype_kernels *k = hs_qtype_kernels(w->type);
    if (!k->vec_dot)
        return HS_EUNSUPPORTED;
    if (amx_ok && amx_type(w->type) && hs_amx_enabled())
        return matmul_amx(pool, scratch, w, x, ldx, n_tok, y, ldy);
    /* the rest (generated tokens, small batches) of Q4_K: its own AMX
     * kernel, for every n_tok alike */
    if (w->type == HS_TYPE_Q4_K && hs_amx_enabled() && !getenv_noamxg())
        return matmul_amxg(pool, scratch, w, x, ldx, n_tok, y, ldy);
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
        hs_pool_for(pool, n_tok, 4, quant_rows, &qj);
        q = scratch->buf;
    }
    struct mm_job j = {.w = w, .k = k, .q = q, .q_row = q_row, .n_tok = n_tok, .y = y, .ldy = ldy};
    j.tiles = k->gemm && n_tok > 1 && (!invariant || k->gemm_exact);
    atomic_init(&j.next, 0);
    plan_chunks(&j, hs_pool_size(pool));
    hs_pool_run_shared(pool, mm_worker, &j);
    return HS_OK;
}

int hs_mat_get_row(const struct hs_mat *w, int64_t row, float *out) {
    const struct hs_qtype *qt = hs_qtype(w->type);
    if (!qt || row < 0 || row >= w->n_rows)
        return HS_EINVAL;
    qt->to_float((const char *)w->data + (size_t)row * w->row_bytes, out, w->n_cols);
    return HS_OK;
}
