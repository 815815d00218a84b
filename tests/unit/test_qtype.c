/* tensor/qtype and tensor/matmul: walks the whole quant-type table, so a row
 * added to qtype.c is tested the day it lands. For every type:
 *  - from_float_ref + to_float round-trip error within a per-type limit;
 *  - every level's vec_dot against vec_dot_ref, and against a double-precision
 *    dot product of the dequantized values;
 *  - every level's fast from_float against from_float_ref, to_float likewise;
 *  - every level's gemm tile against that level's vec_dot;
 * at 1, 3, 7, 33 and 67 blocks. Then hand-built blocks whose bytes the test
 * derives from the format spec (byte compatibility with llama.cpp files),
 * F16/BF16 conversions including inf and NaN, and hs_matmul against a naive
 * float matmul for several shapes, batch sizes and thread counts.
 * $HESTIA_CPU does not matter here: hs_qtype_kernels_at reaches each level
 * the hardware runs. */
#include "test_util.h"

#include "base/fp16.h"
#include "base/mem.h"
#include "base/pool.h"
#include "base/rng.h"
#include "tensor/matmul.h"
#include "tensor/qtype.h"
#include "tensor/qtype_impl.h" /* the AMX kernels, which sit outside the level table */

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const int k_counts[] = {1, 3, 7, 33, 67};
/* Float types have one element per block; they also get lengths that run
 * their vector main loops and tails. */
static const int k_float_counts[] = {200, 1029};

/* ------------------------------------------------------------ helpers -- */

/* ggml's test-quantize-fns data: smooth, with both signs and an offset. */
static void gen_cos(float *x, int64_t n, float offset) {
    for (int64_t i = 0; i < n; i++)
        x[i] = 0.1f + 2.0f * cosf((float)i + offset);
}

/* Normal values with a per-32 block scale spread over three decades, so
 * blocks with very different scales meet in one dot product. */
static void gen_rand(float *x, int64_t n, uint64_t seed) {
    hs_rng r;
    hs_rng_seed(&r, seed);
    float scale = 1.0f;
    for (int64_t i = 0; i < n; i++) {
        if (i % 32 == 0)
            scale = powf(10.0f, -1.5f + 3.0f * hs_rng_f32(&r));
        x[i] = scale * hs_rng_normal(&r);
    }
}

static void *xalloc(size_t n) {
    void *p = hs_aligned_alloc(64, n ? n : 1);
    assert_non_null(p);
    return p;
}

/* Round-trip limit: RMS error / RMS of the data, for gen_cos data (amplitude
 * 2.1, RMS 1.42). A rounding quantizer with step D has RMS error D/sqrt(12);
 * the limits are that figure for each format's step with 1.5x margin:
 *   8-bit symmetric (Q8_0/Q8_1/Q8_K): D = amax/127 -> 0.0034, limit 0.005
 *   Q6_K: D = amax/32 -> 0.0134 -> 0.02      Q5_0: D = amax/16 -> 0.027 -> 0.04
 *   Q5_1/Q5_K: D = range/31 -> 0.028 -> 0.04  Q4_0: D = amax/8 -> 0.053 -> 0.08
 *   Q4_1/Q4_K: D = range/15 -> 0.057 -> 0.08  Q3_K: D = amax/4 -> 0.107 -> 0.16
 *   Q2_K: D = range/3 -> 0.285 -> 0.40
 * F16 rounds to 11 significant bits (relative error <= 2^-11), BF16 to 8
 * (<= 2^-8); F32 is exact. K types use sub-block scales, so they do at least
 * as well as the whole-block figure. */
static double roundtrip_limit(int type) {
    switch (type) {
    case HS_TYPE_F32: return 0.0;
    case HS_TYPE_F16: return 0x1p-11;
    case HS_TYPE_BF16: return 0x1p-8;
    case HS_TYPE_Q8_0:
    case HS_TYPE_Q8_1:
    case HS_TYPE_Q8_K: return 0.005;
    case HS_TYPE_Q6_K: return 0.02;
    case HS_TYPE_Q5_0:
    case HS_TYPE_Q5_1:
    case HS_TYPE_Q5_K: return 0.04;
    case HS_TYPE_Q4_0:
    case HS_TYPE_Q4_1:
    case HS_TYPE_Q4_K: return 0.08;
    case HS_TYPE_Q3_K: return 0.16;
    case HS_TYPE_Q2_K: return 0.40;
    default: return 0.0; /* a new type must add its limit here */
    }
}

/* Types whose fast quantizer is written to be bit-exact with the reference. */
static bool fast_quant_is_exact(int type) {
    switch (type) {
    case HS_TYPE_F32:
    case HS_TYPE_BF16:
    case HS_TYPE_Q8_0:
    case HS_TYPE_Q8_1:
        return true;
    case HS_TYPE_F16: /* F16C: exact except NaN payloads; the data has no NaN */
        return true;
    default:
        return false;
    }
}

/* Otherwise: the fast quantizer's dequantized output may differ from the
 * reference's by this much (RMS, relative), a tenth of the coarsest
 * round-trip limit it sits under. */
#define FAST_QUANT_TOLERANCE 0.0005

/* A quantized pair for dot-product tests: x (type t) and y (its vec_dot_type)
 * from random data, plus their dequantized values. */
struct dot_case {
    const struct hs_qtype *qt, *qv;
    int64_t n;
    void *x, *y;
    float *xd, *yd;
};

static void dot_case_make(struct dot_case *c, int type, int64_t n, uint64_t seed) {
    c->qt = hs_qtype(type);
    c->qv = hs_qtype(c->qt->vec_dot_type);
    assert_non_null(c->qv);
    c->n = n;
    float *xf = xalloc((size_t)n * sizeof(float)), *yf = xalloc((size_t)n * sizeof(float));
    gen_rand(xf, n, seed);
    gen_rand(yf, n, seed + 1000);
    c->x = xalloc(hs_qtype_row_bytes(type, n));
    c->y = xalloc(hs_qtype_row_bytes(c->qt->vec_dot_type, n));
    c->qt->from_float_ref(xf, c->x, n);
    c->qv->from_float_ref(yf, c->y, n);
    c->xd = xf;
    c->yd = yf;
    c->qt->to_float(c->x, c->xd, n);
    c->qv->to_float(c->y, c->yd, n);
}

static void dot_case_free(struct dot_case *c) {
    hs_aligned_free(c->x);
    hs_aligned_free(c->y);
    hs_aligned_free(c->xd);
    hs_aligned_free(c->yd);
}

/* Exact-as-can-be dot of the dequantized rows, and the tolerance any float
 * implementation must meet against it. A float sum of m terms is within
 * about m * eps * sum|terms| of the exact one; kernels add per-block sums, so
 * m is the number of blocks plus a few for the final reductions. The _1 types'
 * activation blocks store s = d * sum(q) rounded to a half (relative error
 * 2^-11), and the kernels use s for the m * sum(y) term, so they may differ
 * from the dequantized dot by 2^-11 * |m| * sum|y| per block, bounded here by
 * max|x| * sum|y|. */
static double ref_dot(const struct dot_case *c, double *tol) {
    double dot = 0.0, abs_sum = 0.0, ysum = 0.0, xmax = 0.0;
    for (int64_t i = 0; i < c->n; i++) {
        dot += (double)c->xd[i] * (double)c->yd[i];
        abs_sum += fabs((double)c->xd[i] * (double)c->yd[i]);
        ysum += fabs((double)c->yd[i]);
        xmax = fmax(xmax, fabs((double)c->xd[i]));
    }
    const double m = (double)(c->n / c->qt->blck) + 8.0;
    *tol = m * FLT_EPSILON * (abs_sum + xmax * ysum) + 1e-30;
    if (c->qt->vec_dot_type == HS_TYPE_Q8_1)
        *tol += 0x1p-11 * xmax * ysum;
    return dot;
}

/* |a - b| <= tol, and false for NaN (an unwritten output left NaN fails). */
static bool close_to(double a, double b, double tol) { return fabs(a - b) <= tol; }

static int64_t test_len(const struct hs_qtype *q, int i) {
    const int nc = (int)(sizeof k_counts / sizeof k_counts[0]);
    if (i < nc)
        return (int64_t)k_counts[i] * q->blck;
    if (q->blck == 1 && i - nc < (int)(sizeof k_float_counts / sizeof k_float_counts[0]))
        return k_float_counts[i - nc];
    return 0;
}

/* ------------------------------------------------------------ table ----- */

static void table_rows_match_gguf_sizes(void **state) {
    (void)state;
    int n_types = 0;
    for (int t = 0; t < HS_TYPE_COUNT; t++) {
        const struct hs_qtype *q = hs_qtype(t);
        if (!q)
            continue;
        n_types++;
        const struct hs_type_size *sz = hs_type_size((uint32_t)t);
        assert_non_null(sz);
        assert_int_equal(q->type, t);
        assert_string_equal(q->name, sz->name);
        assert_int_equal(q->blck, sz->blck);
        assert_int_equal(q->bytes, sz->bytes);
        assert_non_null(q->to_float);
        assert_non_null(q->from_float_ref);
        assert_non_null(q->vec_dot_ref);
        const struct hs_qtype *v = hs_qtype(q->vec_dot_type);
        assert_non_null(v);
        assert_int_equal(q->blck % v->blck, 0);
        assert_true(roundtrip_limit(t) > 0.0 || t == HS_TYPE_F32);
        /* The level REF always exists and best is one of the levels. */
        const struct hs_qtype_kernels *ref = hs_qtype_kernels_at(t, HS_CPU_REF);
        assert_non_null(ref);
        assert_string_equal(ref->impl, "ref");
        const struct hs_qtype_kernels *best = hs_qtype_kernels(t);
        assert_non_null(best);
        bool found = false;
        for (int l = HS_CPU_REF; l <= HS_CPU_AVX512; l++)
            found |= hs_qtype_kernels_at(t, (enum hs_cpu_level)l) == best;
        assert_true(found);
        assert_int_equal(hs_qtype_row_bytes(t, 7 * q->blck), 7 * q->bytes);
        if (q->blck > 1)
            assert_int_equal(hs_qtype_row_bytes(t, q->blck + 1), 0);
    }
    /* F32, F16, BF16 and the six legacy types at least. */
    assert_true(n_types >= 9);
    assert_null(hs_qtype(4)); /* retired Q4_2 */
    assert_null(hs_qtype(-1));
    assert_null(hs_qtype(HS_TYPE_COUNT));
    assert_int_equal(hs_qtype(HS_TYPE_F32)->vec_dot_type, HS_TYPE_F32);
    assert_int_equal(hs_qtype(HS_TYPE_F16)->vec_dot_type, HS_TYPE_F16);
    assert_int_equal(hs_qtype(HS_TYPE_BF16)->vec_dot_type, HS_TYPE_BF16);
    assert_int_equal(hs_qtype(HS_TYPE_Q4_0)->vec_dot_type, HS_TYPE_Q8_0);
    assert_int_equal(hs_qtype(HS_TYPE_Q5_0)->vec_dot_type, HS_TYPE_Q8_0);
    assert_int_equal(hs_qtype(HS_TYPE_Q8_0)->vec_dot_type, HS_TYPE_Q8_0);
    assert_int_equal(hs_qtype(HS_TYPE_Q4_1)->vec_dot_type, HS_TYPE_Q8_1);
    assert_int_equal(hs_qtype(HS_TYPE_Q5_1)->vec_dot_type, HS_TYPE_Q8_1);
    print_message("[  INFO    ] cpu level %s, %d types\n", hs_cpu_level_name(hs_cpu_level()), n_types);
}

static void every_type_round_trips_within_its_limit(void **state) {
    (void)state;
    for (int t = 0; t < HS_TYPE_COUNT; t++) {
        const struct hs_qtype *q = hs_qtype(t);
        if (!q)
            continue;
        for (int li = 0; test_len(q, li); li++) {
            const int64_t n = test_len(q, li);
            float *x = xalloc((size_t)n * sizeof(float)), *y = xalloc((size_t)n * sizeof(float));
            void *b = xalloc(hs_qtype_row_bytes(t, n));
            gen_cos(x, n, (float)li * 0.37f);
            q->from_float_ref(x, b, n);
            q->to_float(b, y, n);
            double err = 0.0, ref = 0.0;
            for (int64_t i = 0; i < n; i++) {
                err += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
                ref += (double)x[i] * x[i];
            }
            const double rel = sqrt(err / ref);
            if (rel > roundtrip_limit(t))
                fail_msg("%s n=%lld: round-trip error %g > limit %g", q->name, (long long)n, rel,
                         roundtrip_limit(t));
            /* Every level's to_float reads the blocks the same way. */
            for (int l = HS_CPU_AVX2; l <= HS_CPU_AVX512; l++) {
                const struct hs_qtype_kernels *k = hs_qtype_kernels_at(t, (enum hs_cpu_level)l);
                if (!k)
                    continue;
                float *z = xalloc((size_t)n * sizeof(float));
                k->to_float(b, z, n);
                if (memcmp(y, z, (size_t)n * sizeof(float)))
                    fail_msg("%s/%s n=%lld: to_float differs from the reference", q->name, k->impl, (long long)n);
                hs_aligned_free(z);
            }
            hs_aligned_free(x);
            hs_aligned_free(y);
            hs_aligned_free(b);
        }
    }
}

static void every_level_vec_dot_matches_reference_and_double_dot(void **state) {
    (void)state;
    for (int t = 0; t < HS_TYPE_COUNT; t++) {
        const struct hs_qtype *q = hs_qtype(t);
        if (!q)
            continue;
        for (int li = 0; test_len(q, li); li++) {
            const int64_t n = test_len(q, li);
            struct dot_case c;
            dot_case_make(&c, t, n, 17u * (uint64_t)t + (uint64_t)li);
            double tol;
            const double exact = ref_dot(&c, &tol);
            float r_ref;
            q->vec_dot_ref((int)n, &r_ref, c.x, c.y);
            if (!close_to(r_ref, exact, tol))
                fail_msg("%s n=%lld: vec_dot_ref %.9g vs double %.9g (tol %g)", q->name, (long long)n, r_ref, exact,
                         tol);
            for (int l = HS_CPU_REF; l <= HS_CPU_AVX512; l++) {
                const struct hs_qtype_kernels *k = hs_qtype_kernels_at(t, (enum hs_cpu_level)l);
                if (!k || !k->vec_dot)
                    continue;
                float r;
                k->vec_dot((int)n, &r, c.x, c.y);
                if (!close_to(r, exact, tol) || !close_to(r, r_ref, tol))
                    fail_msg("%s/%s n=%lld: vec_dot %.9g, ref %.9g, double %.9g (tol %g)", q->name, k->impl,
                             (long long)n, r, r_ref, exact, tol);
                if (l == HS_CPU_REF && r != r_ref)
                    fail_msg("%s: the ref level must be vec_dot_ref", q->name);
            }
            dot_case_free(&c);
        }
    }
}

static void every_level_from_float_matches_reference(void **state) {
    (void)state;
    for (int t = 0; t < HS_TYPE_COUNT; t++) {
        const struct hs_qtype *q = hs_qtype(t);
        if (!q)
            continue;
        for (int li = 0; test_len(q, li); li++) {
            const int64_t n = test_len(q, li);
            const size_t rb = hs_qtype_row_bytes(t, n);
            float *x = xalloc((size_t)n * sizeof(float));
            void *want = xalloc(rb), *got = xalloc(rb);
            gen_rand(x, n, 99u + (uint64_t)li);
            x[0] = 0.0f; /* an exact zero and a block of zeros (d = 0) */
            if (n >= 2 * q->blck)
                memset(x + q->blck, 0, (size_t)q->blck * sizeof(float));
            q->from_float_ref(x, want, n);
            for (int l = HS_CPU_REF; l <= HS_CPU_AVX512; l++) {
                const struct hs_qtype_kernels *k = hs_qtype_kernels_at(t, (enum hs_cpu_level)l);
                if (!k || !k->from_float)
                    continue;
                memset(got, 0xa5, rb);
                k->from_float(x, got, n);
                if (!memcmp(want, got, rb))
                    continue;
                if (fast_quant_is_exact(t))
                    fail_msg("%s/%s n=%lld: from_float not bit-exact with the reference", q->name, k->impl,
                             (long long)n);
                float *a = xalloc((size_t)n * sizeof(float)), *b = xalloc((size_t)n * sizeof(float));
                q->to_float(want, a, n);
                q->to_float(got, b, n);
                double err = 0.0, ref = 0.0;
                for (int64_t i = 0; i < n; i++) {
                    err += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
                    ref += (double)a[i] * a[i];
                }
                if (sqrt(err / (ref + 1e-30)) > FAST_QUANT_TOLERANCE)
                    fail_msg("%s/%s n=%lld: fast from_float off by %g", q->name, k->impl, (long long)n,
                             sqrt(err / ref));
                hs_aligned_free(a);
                hs_aligned_free(b);
            }
            hs_aligned_free(x);
            hs_aligned_free(want);
            hs_aligned_free(got);
        }
    }
}

/* A tile of nr weight rows x nc tokens from gemm against vec_dot of the same
 * level, for every tile size up to the declared one, with ldc > nr. */
static void every_gemm_matches_vec_dot(void **state) {
    (void)state;
    for (int t = 0; t < HS_TYPE_COUNT; t++) {
        const struct hs_qtype *q = hs_qtype(t);
        if (!q)
            continue;
        for (int l = HS_CPU_REF; l <= HS_CPU_AVX512; l++) {
            const struct hs_qtype_kernels *k = hs_qtype_kernels_at(t, (enum hs_cpu_level)l);
            if (!k || !k->gemm)
                continue;
            assert_true(k->gemm_rows >= 1 && k->gemm_cols >= 1);
            const int R = k->gemm_rows, C = k->gemm_cols;
            for (int li = 0; test_len(q, li); li++) {
                const int64_t n = test_len(q, li);
                const struct hs_qtype *qv = hs_qtype(q->vec_dot_type);
                const size_t bx = hs_qtype_row_bytes(t, n), by = hs_qtype_row_bytes(q->vec_dot_type, n);
                float *f = xalloc((size_t)n * sizeof(float));
                uint8_t *x = xalloc(bx * (size_t)R), *y = xalloc(by * (size_t)C);
                for (int r = 0; r < R; r++) {
                    gen_rand(f, n, 1000u + (uint64_t)r);
                    q->from_float_ref(f, x + (size_t)r * bx, n);
                }
                for (int c = 0; c < C; c++) {
                    gen_rand(f, n, 2000u + (uint64_t)c);
                    qv->from_float_ref(f, y + (size_t)c * by, n);
                }
                /* vec_dot and the tolerance for every (row, token) pair, once. */
                float *want = xalloc((size_t)R * (size_t)C * sizeof(float));
                double *tol = xalloc((size_t)R * (size_t)C * sizeof(double));
                float *xd = xalloc((size_t)n * sizeof(float)), *yd = xalloc((size_t)n * sizeof(float));
                for (int r = 0; r < R; r++) {
                    q->to_float(x + (size_t)r * bx, xd, n);
                    for (int c = 0; c < C; c++) {
                        qv->to_float(y + (size_t)c * by, yd, n);
                        k->vec_dot((int)n, &want[r * C + c], x + (size_t)r * bx, y + (size_t)c * by);
                        struct dot_case dc = {q, qv, n, NULL, NULL, xd, yd};
                        ref_dot(&dc, &tol[r * C + c]);
                    }
                }
                hs_aligned_free(xd);
                hs_aligned_free(yd);
                const size_t ldc = (size_t)R + 3;
                float *s = xalloc(ldc * (size_t)C * sizeof(float));
                for (int nr = 1; nr <= R; nr++) {
                    for (int nc = 1; nc <= C; nc++) {
                        for (size_t i = 0; i < ldc * (size_t)C; i++)
                            s[i] = NAN;
                        k->gemm((int)n, s, ldc, x, bx, y, by, nr, nc);
                        for (int c = 0; c < C; c++) {
                            for (int r = 0; r < (int)ldc; r++) {
                                const float got = s[(size_t)c * ldc + (size_t)r];
                                if (r >= nr || c >= nc) {
                                    if (!isnan(got))
                                        fail_msg("%s/%s gemm %dx%d wrote outside its tile", q->name, k->impl, nr,
                                                 nc);
                                    continue;
                                }
                                if (!close_to(got, want[r * C + c], 2.0 * tol[r * C + c]))
                                    fail_msg("%s/%s gemm %dx%d n=%lld [%d,%d]: %.9g vs vec_dot %.9g (tol %g)",
                                             q->name, k->impl, nr, nc, (long long)n, r, c, got, want[r * C + c],
                                             tol[r * C + c]);
                            }
                        }
                    }
                }
                hs_aligned_free(f);
                hs_aligned_free(x);
                hs_aligned_free(y);
                hs_aligned_free(s);
                hs_aligned_free(want);
                hs_aligned_free(tol);
            }
        }
    }
}

/* The AMX kernels (hs_matmul's path for batches of Q8_0, Q4_0 and Q5_0
 * weights when the CPU has them) against vec_dot: rows unpacked to int8,
 * activations packed into panels; partial row groups, partial and several
 * token groups. */
static void amx_gemm_matches_vec_dot(void **state) {
    (void)state;
    if (!hs_amx_available()) {
        print_message("[  SKIP    ] no AMX-INT8 on this CPU (or the kernel refused the tile state)\n");
        skip();
    }
    static const struct {
        int type;
        void (*unpack)(hs_amx_rows *, const void *, size_t, int, int64_t);
    } k_amx[] = {{HS_TYPE_Q8_0, hs_q8_0_amx_rows}, {HS_TYPE_Q4_0, hs_q4_0_amx_rows}, {HS_TYPE_Q5_0, hs_q5_0_amx_rows}};
    const int64_t n = 7 * HS_QK8_0;
    const int R = 16, T = 37; /* 3 token groups, the last with 5 tokens */
    const struct hs_qtype *q8 = hs_qtype(HS_TYPE_Q8_0);
    const size_t yb = hs_qtype_row_bytes(HS_TYPE_Q8_0, n);
    uint8_t *y = xalloc(yb * T);
    float *f = xalloc((size_t)n * sizeof(float));
    for (int t = 0; t < T; t++) {
        gen_rand(f, n, 400u + (uint64_t)t);
        q8->from_float_ref(f, y + (size_t)t * yb, n);
    }
    const int n_groups = (T + 15) / 16;
    const size_t pb = hs_q8_0_amx_panel_bytes(n);
    hs_q8_0_amx_panel *panels = xalloc(pb * (size_t)n_groups);
    for (int g = 0; g < n_groups; g++)
        hs_q8_0_amx_pack((hs_q8_0_amx_panel *)((uint8_t *)panels + (size_t)g * pb), y + (size_t)g * 16 * yb, yb,
                         T - 16 * g < 16 ? T - 16 * g : 16, n);
    hs_amx_rows rows = {0, xalloc(16 * (size_t)n), xalloc((size_t)n / 2 * sizeof(float))};
    const size_t ldc = R + 2;
    float *s = xalloc(ldc * T * sizeof(float));
    float *xd = xalloc((size_t)n * sizeof(float)), *yd = xalloc((size_t)n * sizeof(float));
    for (size_t ti = 0; ti < sizeof k_amx / sizeof k_amx[0]; ti++) {
        const struct hs_qtype *q = hs_qtype(k_amx[ti].type);
        const size_t bx = hs_qtype_row_bytes(q->type, n);
        uint8_t *x = xalloc(bx * R);
        for (int r = 0; r < R; r++) {
            gen_rand(f, n, 300u + (uint64_t)r);
            q->from_float_ref(f, x + (size_t)r * bx, n);
        }
        static const int nrs[] = {1, 5, 16};
        for (size_t i = 0; i < sizeof nrs / sizeof nrs[0]; i++) {
            const int nr = nrs[i];
            for (size_t j = 0; j < ldc * T; j++)
                s[j] = NAN;
            k_amx[ti].unpack(&rows, x, bx, nr, n);
            hs_i8_amx_gemm((int)n, s, ldc, &rows, panels, pb, n_groups, T - 16 * (n_groups - 1));
            for (int t = 0; t < T; t++) {
                for (int r = 0; r < (int)ldc; r++) {
                    const float got = s[(size_t)t * ldc + (size_t)r];
                    if (r >= nr) {
                        if (!isnan(got))
                            fail_msg("%s amx gemm wrote row %d of %d", q->name, r, nr);
                        continue;
                    }
                    float want;
                    q->vec_dot_ref((int)n, &want, x + (size_t)r * bx, y + (size_t)t * yb);
                    q->to_float(x + (size_t)r * bx, xd, n);
                    q8->to_float(y + (size_t)t * yb, yd, n);
                    struct dot_case dc = {q, q8, n, NULL, NULL, xd, yd};
                    double tol;
                    ref_dot(&dc, &tol);
                    if (!close_to(got, want, 2.0 * tol))
                        fail_msg("%s amx gemm nr=%d [%d,%d]: %.9g vs vec_dot %.9g (tol %g)", q->name, nr, r, t, got,
                                 want, tol);
                }
            }
        }
        hs_aligned_free(x);
    }
    hs_aligned_free(y);
    hs_aligned_free(f);
    hs_aligned_free(panels);
    hs_aligned_free(rows.q);
    hs_aligned_free(rows.d);
    hs_aligned_free(s);
    hs_aligned_free(xd);
    hs_aligned_free(yd);
}

/* ------------------------------------------------- byte compatibility -- */

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

/* Quantizes one block with the reference and with every fast quantizer, and
 * checks the bytes against `want`. */
static void check_block_bytes(int type, const float *x, const uint8_t *want) {
    const struct hs_qtype *q = hs_qtype(type);
    uint8_t got[64];
    assert_true(q->bytes <= sizeof got);
    q->from_float_ref(x, got, q->blck);
    assert_memory_equal(got, want, q->bytes);
    for (int l = HS_CPU_REF; l <= HS_CPU_AVX512; l++) {
        const struct hs_qtype_kernels *k = hs_qtype_kernels_at(type, (enum hs_cpu_level)l);
        if (!k || !k->from_float)
            continue;
        memset(got, 0, sizeof got);
        k->from_float(x, got, q->blck);
        assert_memory_equal(got, want, q->bytes);
    }
}

/* Expected bytes are written from ggml-common.h's layouts: the half scale(s)
 * first, little-endian; then for q5 the 32 high bits as a little-endian word;
 * then the quants, element j in the low nibble of byte j and element j + 16
 * in its high nibble for 4- and 5-bit types. Inputs are chosen so that d and
 * every quant are exact and known in advance. */
static void legacy_blocks_have_llama_cpp_bytes(void **state) {
    (void)state;
    float x[32];
    uint8_t want[40];

    /* Every value below sits a quarter step off its grid point (except the
     * extremes, which set the scales), so a quantizer that truncates instead
     * of rounding, or rounds the wrong way, gets different bytes. */
    static const float k_off[4] = {0.25f, -0.45f, 0.45f, -0.125f};

    /* Q4_0: values near -8..7; the largest magnitude is -8 (element 0), so
     * d = -8 / -8 = 1 and q = round(x) + 8. */
    for (int j = 0; j < 16; j++) {
        x[j] = (float)(j - 8) + (j == 0 ? 0.0f : j == 15 ? -0.25f : k_off[j % 4]);
        x[j + 16] = (float)(7 - j) + (j == 15 ? 0.25f : j == 0 ? -0.25f : k_off[j % 4]);
    }
    want[0] = 0x00, want[1] = 0x3c; /* half 1.0 */
    for (int j = 0; j < 16; j++)
        want[2 + j] = (uint8_t)(j | ((15 - j) << 4));
    check_block_bytes(HS_TYPE_Q4_0, x, want);

    /* Q4_1: 1 + 0.5 (q + off) with q 0..15; q = 0 and q = 15 exact, so min 1,
     * d = 7.5 / 15 = 0.5. */
    for (int j = 0; j < 16; j++) {
        x[j] = 1.0f + 0.5f * ((float)j + (j == 0 || j == 15 ? 0.0f : k_off[j % 4]));
        x[j + 16] = 1.0f + 0.5f * ((float)(15 - j) + (j == 0 || j == 15 ? 0.0f : k_off[j % 4]));
    }
    want[0] = 0x00, want[1] = 0x38; /* half 0.5 */
    want[2] = 0x00, want[3] = 0x3c; /* half 1.0 */
    for (int j = 0; j < 16; j++)
        want[4 + j] = (uint8_t)(j | ((15 - j) << 4));
    check_block_bytes(HS_TYPE_Q4_1, x, want);

    /* Q5_0: x_j = j - 16 (+ off): the largest magnitude is -16, d = 1, q_j = j.
     * Low nibbles: q_j & 15 = j and q_{j+16} & 15 = j; bit 4 set for j >= 16. */
    for (int j = 0; j < 32; j++)
        x[j] = (float)(j - 16) + (j == 0 ? 0.0f : j == 31 ? -0.25f : k_off[j % 4]);
    want[0] = 0x00, want[1] = 0x3c;
    want[2] = 0x00, want[3] = 0x00, want[4] = 0xff, want[5] = 0xff;
    for (int j = 0; j < 16; j++)
        want[6 + j] = (uint8_t)(j | (j << 4));
    check_block_bytes(HS_TYPE_Q5_0, x, want);

    /* Q5_1: x_j = 2 + 0.25 (q_j + off) with q_j = 7j mod 32 (a permutation
     * of 0..31; q = 0 at j = 0 and 31 at j = 9 are exact): min 2,
     * d = 7.75 / 31 = 0.25. */
    uint32_t qh = 0;
    int qv[32];
    for (int j = 0; j < 32; j++) {
        qv[j] = (7 * j) % 32;
        x[j] = 2.0f + 0.25f * ((float)qv[j] + (qv[j] == 0 || qv[j] == 31 ? 0.0f : k_off[j % 4]));
        qh |= (uint32_t)(qv[j] >> 4) << j;
    }
    want[0] = 0x00, want[1] = 0x34; /* half 0.25 */
    want[2] = 0x00, want[3] = 0x40; /* half 2.0 */
    for (int b = 0; b < 4; b++)
        want[4 + b] = (uint8_t)(qh >> (8 * b));
    for (int j = 0; j < 16; j++)
        want[8 + j] = (uint8_t)((qv[j] & 15) | ((qv[j + 16] & 15) << 4));
    check_block_bytes(HS_TYPE_Q5_1, x, want);

    /* Q8_0: x_j = (j - 16) * 127 / 128, all exact in float; amax 15.875 at
     * j = 0, so d = amax / 127 = 0.125 and x_j / d = 127 (j - 16) / 16. */
    for (int j = 0; j < 32; j++)
        x[j] = (float)(j - 16) * 127.0f / 128.0f;
    want[0] = 0x00, want[1] = 0x30; /* half 0.125 */
    for (int j = 0; j < 32; j++) {
        /* num / 16 rounded half away from zero (j = 8 and 24 are ties) */
        const int num = 127 * (j - 16);
        const int mag = (abs(num) + 8) / 16;
        want[2 + j] = (uint8_t)(int8_t)(num < 0 ? -mag : mag);
    }
    check_block_bytes(HS_TYPE_Q8_0, x, want);

    /* Q8_1: the same quants, d, then s = half(d * sum(q)). */
    int sum = 0;
    for (int j = 0; j < 32; j++)
        sum += (int8_t)want[2 + j];
    uint8_t w1[36];
    w1[0] = 0x00, w1[1] = 0x30;
    const hs_fp16 s = hs_f32_to_fp16(0.125f * (float)sum);
    w1[2] = (uint8_t)(s & 0xff), w1[3] = (uint8_t)(s >> 8);
    memcpy(w1 + 4, want + 2, 32);
    check_block_bytes(HS_TYPE_Q8_1, x, w1);
    assert_true(sum != 0);
}

/* Q8_0's rounding is roundf's (ties away from zero), not the SIMD default
 * (ties to even): with amax 127, d = 1 and x / d is x itself. */
static void q8_rounds_ties_away_from_zero(void **state) {
    (void)state;
    float x[32];
    for (int j = 0; j < 32; j++)
        x[j] = (float)j - 15.5f; /* -15.5 ... 15.5, every one a tie */
    x[31] = 127.0f;              /* amax 127 -> d = 1 exactly */
    uint8_t want[34] = {0x00, 0x3c};
    for (int j = 0; j < 31; j++) {
        const int v = j - 15; /* j - 15.5 rounded away from zero */
        want[2 + j] = (uint8_t)(int8_t)(j < 16 ? v - 1 : v);
    }
    want[33] = 127;
    check_block_bytes(HS_TYPE_Q8_0, x, want);
    /* 0.49999997 is not a tie: x + 0.5 rounds up in float, roundf does not. */
    x[0] = 0.49999997f;
    want[2] = 0;
    check_block_bytes(HS_TYPE_Q8_0, x, want);
}

/* The _0 quantizers use the signed value of largest magnitude: a block whose
 * extreme is positive gets a negative d, and the extreme maps to q = 0. */
static void q4_0_scale_takes_the_sign_of_the_extreme(void **state) {
    (void)state;
    float x[32] = {0};
    x[5] = 4.0f; /* d = 4 / -8 = -0.5, q = x / d + 8 */
    x[6] = -3.5f;
    const struct hs_qtype *q = hs_qtype(HS_TYPE_Q4_0);
    uint8_t b[18];
    q->from_float_ref(x, b, 32);
    assert_int_equal(rd16(b), 0xb800); /* half -0.5 */
    assert_int_equal(b[2 + 5] & 0x0f, 0);  /* 4 / -0.5 + 8 = 0 */
    assert_int_equal(b[2 + 6] & 0x0f, 15); /* min(15, (int)(7 + 8.5)) */
    assert_int_equal(b[2 + 0] & 0x0f, 8);  /* zero */
    float y[32];
    q->to_float(b, y, 32);
    assert_true(y[5] == 4.0f && y[6] == -3.5f && y[0] == 0.0f);
}

/* ------------------------------------------------------ F16 and BF16 -- */

static void check_f16(float f, uint16_t want) {
    const struct hs_qtype *q = hs_qtype(HS_TYPE_F16);
    /* 24 copies so that the vector paths see the value too. */
    float x[24];
    uint16_t h[24];
    for (int i = 0; i < 24; i++)
        x[i] = f;
    for (int l = HS_CPU_REF; l <= HS_CPU_AVX512; l++) {
        const struct hs_qtype_kernels *k = hs_qtype_kernels_at(HS_TYPE_F16, (enum hs_cpu_level)l);
        hs_from_float_fn fn = k ? k->from_float : NULL;
        if (l == HS_CPU_REF)
            fn = q->from_float_ref;
        if (!fn)
            continue;
        fn(x, h, 24);
        for (int i = 0; i < 24; i++) {
            if (isnan(f)) {
                if ((h[i] & 0x7c00) != 0x7c00 || !(h[i] & 0x03ff))
                    fail_msg("f16 of NaN is 0x%04x", h[i]);
            } else if (h[i] != want) {
                fail_msg("f16(%g) = 0x%04x, want 0x%04x", (double)f, h[i], want);
            }
        }
    }
}

static void f16_conversions_follow_ieee(void **state) {
    (void)state;
    check_f16(1.0f, 0x3c00);
    check_f16(-2.0f, 0xc000);
    check_f16(0.1f, 0x2e66);
    check_f16(65504.0f, 0x7bff);
    check_f16(65520.0f, 0x7c00); /* halfway to the next binade: rounds to inf */
    check_f16(1e-8f, 0x0000);    /* below half the smallest subnormal */
    check_f16(0x1p-24f, 0x0001); /* smallest subnormal */
    check_f16(-0.0f, 0x8000);
    check_f16(1.0f + 0x1p-11f, 0x3c00); /* tie: to even */
    check_f16(1.0f + 3 * 0x1p-11f, 0x3c02);
    check_f16(INFINITY, 0x7c00);
    check_f16(-INFINITY, 0xfc00);
    check_f16(NAN, 0x7e00);

    const uint16_t h[8] = {0x3c00, 0xc000, 0x0001, 0x7bff, 0x7c00, 0xfc00, 0x7e00, 0x8000};
    float y[8];
    for (int l = HS_CPU_REF; l <= HS_CPU_AVX512; l++) {
        const struct hs_qtype_kernels *k = hs_qtype_kernels_at(HS_TYPE_F16, (enum hs_cpu_level)l);
        if (!k)
            continue;
        k->to_float(h, y, 8);
        assert_true(y[0] == 1.0f && y[1] == -2.0f && y[2] == 0x1p-24f && y[3] == 65504.0f);
        assert_true(isinf(y[4]) && y[4] > 0 && isinf(y[5]) && y[5] < 0 && isnan(y[6]));
        assert_true(y[7] == 0.0f && signbit(y[7]));
    }
}

static void check_bf16(float f, uint16_t want) {
    float x[40];
    uint16_t h[40];
    for (int i = 0; i < 40; i++)
        x[i] = f;
    for (int l = HS_CPU_REF; l <= HS_CPU_AVX512; l++) {
        const struct hs_qtype_kernels *k = hs_qtype_kernels_at(HS_TYPE_BF16, (enum hs_cpu_level)l);
        hs_from_float_fn fn = k ? k->from_float : NULL;
        if (l == HS_CPU_REF)
            fn = hs_qtype(HS_TYPE_BF16)->from_float_ref;
        if (!fn)
            continue;
        fn(x, h, 40);
        for (int i = 0; i < 40; i++)
            if (h[i] != want)
                fail_msg("bf16(%g) = 0x%04x, want 0x%04x", (double)f, h[i], want);
    }
}

static void bf16_conversions_round_to_nearest_even(void **state) {
    (void)state;
    check_bf16(1.0f, 0x3f80);
    check_bf16(-2.0f, 0xc000);
    check_bf16(1.0f + 0x1p-8f, 0x3f80);     /* tie: to even (down) */
    check_bf16(1.0f + 3 * 0x1p-8f, 0x3f82); /* tie: to even (up) */
    check_bf16(1.0f + 0x1p-8f + 0x1p-20f, 0x3f81);
    check_bf16(FLT_MAX, 0x7f80); /* rounds up to inf */
    check_bf16(INFINITY, 0x7f80);
    check_bf16(-INFINITY, 0xff80);
    check_bf16(0x1p-130f, 0x0008); /* subnormals are kept, not flushed */
    check_bf16(hs_bits_to_f32(0x7f800001u), 0x7fc0); /* signalling NaN comes out quiet */
    check_bf16(hs_bits_to_f32(0xffc00000u), 0xffc0);
    const uint16_t h[4] = {0x3f80, 0x7f80, 0x7fc0, 0x0001};
    float y[4];
    hs_qtype(HS_TYPE_BF16)->to_float(h, y, 4);
    assert_true(y[0] == 1.0f && isinf(y[1]) && isnan(y[2]) && y[3] == 0x1p-133f);
}

/* ------------------------------------------------------------ matmul --- */

/* y = x W^T for n_tok tokens against a dequantized copy of W and of x after
 * its trip through vec_dot_type, in double, with the pools pools[0..n_pools)
 * (1, 2, 3 threads). */
static void run_matmul_case(hs_pool **pools, int n_pools, int type, int n_rows, int64_t n_cols, int n_tok) {
    const struct hs_qtype *q = hs_qtype(type);
    /* Batches (16 tokens or more) of Q4_K and Q6_K weights on AMX meet Q8_0
     * activations, not Q8_K (matmul.c, q_k_amx_avx512.c). */
    const bool k_amx = (type == HS_TYPE_Q4_K || type == HS_TYPE_Q6_K) && n_tok >= 16 && hs_amx_enabled();
    const struct hs_qtype *qv = hs_qtype(k_amx ? HS_TYPE_Q8_0 : q->vec_dot_type);
    const size_t rb = hs_qtype_row_bytes(type, n_cols) + 64; /* rows padded: row_bytes is honoured */
    uint8_t *w = xalloc(rb * (size_t)n_rows);
    float *f = xalloc((size_t)n_cols * sizeof(float));
    float *wd = xalloc((size_t)n_rows * (size_t)n_cols * sizeof(float));
    for (int r = 0; r < n_rows; r++) {
        gen_rand(f, n_cols, 5000u + (uint64_t)r);
        q->from_float_ref(f, w + (size_t)r * rb, n_cols);
        q->to_float(w + (size_t)r * rb, wd + (size_t)r * (size_t)n_cols, n_cols);
    }
    const size_t ldx = (size_t)n_cols + 5, ldy = (size_t)n_rows + 3;
    float *x = xalloc(ldx * (size_t)n_tok * sizeof(float));
    float *xd = xalloc((size_t)n_cols * (size_t)n_tok * sizeof(float));
    void *xq = xalloc(hs_qtype_row_bytes(qv->type, n_cols));
    for (int t = 0; t < n_tok; t++) {
        gen_rand(x + (size_t)t * ldx, n_cols, 7000u + (uint64_t)t);
        qv->from_float_ref(x + (size_t)t * ldx, xq, n_cols);
        qv->to_float(xq, xd + (size_t)t * (size_t)n_cols, n_cols);
    }
    struct hs_mat m = {type, n_cols, n_rows, rb, w};
    float *y = xalloc(ldy * (size_t)n_tok * sizeof(float));
    for (int p = 0; p < n_pools; p++) {
        hs_mm_scratch sc = {0};
        for (size_t i = 0; i < ldy * (size_t)n_tok; i++)
            y[i] = NAN;
        assert_int_equal(hs_matmul(pools[p], &sc, &m, x, ldx, n_tok, y, ldy), 0);
        for (int t = 0; t < n_tok; t++) {
            for (int r = 0; r < (int)ldy; r++) {
                const float got = y[(size_t)t * ldy + (size_t)r];
                if (r >= n_rows) {
                    if (!isnan(got))
                        fail_msg("%s matmul wrote past n_rows", q->name);
                    continue;
                }
                struct dot_case dc = {q, qv, n_cols, NULL, NULL, wd + (size_t)r * (size_t)n_cols,
                                      xd + (size_t)t * (size_t)n_cols};
                double tol;
                const double want = ref_dot(&dc, &tol);
                /* The activations the kernels see are quantized by the fast
                 * quantizer, which may differ from the reference one for
                 * types not listed as exact. */
                if (!fast_quant_is_exact(qv->type))
                    tol += 4.0 * FAST_QUANT_TOLERANCE * fabs(want) + 1e-3 * tol;
                if (!close_to(got, want, 2.0 * tol))
                    fail_msg("%s matmul %dx%lld, %d tok, %d thr: y[%d][%d] = %.9g, want %.9g (tol %g)", q->name,
                             n_rows, (long long)n_cols, n_tok, hs_pool_size(pools[p]), t, r, got, want, tol);
            }
        }
        hs_mm_scratch_free(&sc);
    }
    hs_aligned_free(w);
    hs_aligned_free(f);
    hs_aligned_free(wd);
    hs_aligned_free(x);
    hs_aligned_free(xd);
    hs_aligned_free(xq);
    hs_aligned_free(y);
}

static void matmul_matches_naive_product(void **state) {
    (void)state;
    hs_pool *pools[3];
    for (int p = 0; p < 3; p++)
        assert_int_equal(hs_pool_create(p + 1, &pools[p]), 0);
    static const int rows[] = {1, 5, 17, 64};
    static const int toks[] = {1, 2, 5, 9, 20};
    for (int t = 0; t < HS_TYPE_COUNT; t++) {
        const struct hs_qtype *q = hs_qtype(t);
        if (!q || !hs_qtype_kernels(t)->vec_dot || !hs_qtype_kernels(q->vec_dot_type)->from_float)
            continue;
        const int64_t n_cols = q->blck == 1 ? 67 : 3 * (int64_t)(q->blck > 32 ? q->blck : 64);
        /* Every shape on one thread; on 2 and 3 threads (a pool larger than
         * the 2-core CI machine included) the uneven splits only: the thread
         * pool's hand-offs are slow when cores are oversubscribed. */
        for (size_t ri = 0; ri < sizeof rows / sizeof rows[0]; ri++)
            for (size_t ti = 0; ti < sizeof toks / sizeof toks[0]; ti++)
                run_matmul_case(pools, (rows[ri] == 17 || rows[ri] == 64) && (toks[ti] == 1 || toks[ti] == 20) ? 3 : 1,
                                t, rows[ri], n_cols, toks[ti]);
    }
    /* Batches longer than one chunk of tokens, for a type with a tile kernel
     * and one without. */
    run_matmul_case(pools, 3, HS_TYPE_Q8_0, 13, 96, 150);
    run_matmul_case(pools, 3, HS_TYPE_Q4_0, 13, 96, 150);
    run_matmul_case(pools, 3, HS_TYPE_F16, 13, 40, 150);
    for (int p = 0; p < 3; p++)
        hs_pool_free(pools[p]);
}

static void matmul_rejects_types_without_kernels(void **state) {
    (void)state;
    hs_pool *pool;
    assert_int_equal(hs_pool_create(1, &pool), 0);
    hs_mm_scratch sc = {0};
    float x[32] = {0}, y[1];
    uint8_t w[64] = {0};
    struct hs_mat m = {HS_TYPE_I32, 32, 1, 128, w};
    assert_int_not_equal(hs_matmul(pool, &sc, &m, x, 32, 1, y, 1), 0);
    float row[32];
    struct hs_mat q8 = {HS_TYPE_Q8_0, 32, 1, 34, w};
    assert_int_equal(hs_mat_get_row(&q8, 0, row), 0);
    assert_int_not_equal(hs_mat_get_row(&q8, 1, row), 0);
    hs_mm_scratch_free(&sc);
    hs_pool_free(pool);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(table_rows_match_gguf_sizes),
        cmocka_unit_test(every_type_round_trips_within_its_limit),
        cmocka_unit_test(every_level_vec_dot_matches_reference_and_double_dot),
        cmocka_unit_test(every_level_from_float_matches_reference),
        cmocka_unit_test(every_gemm_matches_vec_dot),
        cmocka_unit_test(amx_gemm_matches_vec_dot),
        cmocka_unit_test(legacy_blocks_have_llama_cpp_bytes),
        cmocka_unit_test(q8_rounds_ties_away_from_zero),
        cmocka_unit_test(q4_0_scale_takes_the_sign_of_the_extreme),
        cmocka_unit_test(f16_conversions_follow_ieee),
        cmocka_unit_test(bf16_conversions_round_to_nearest_even),
        cmocka_unit_test(matmul_matches_naive_product),
        cmocka_unit_test(matmul_rejects_types_without_kernels),
    };
    return cmocka_run_group_tests_name("qtype", tests, NULL, NULL);
}
