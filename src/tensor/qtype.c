/* The two quant-type tables (see qtype.h): format facts and reference kernels
 * in k_types, per-CPU-level kernels in k_kernels. Rows are indexed by the
 * ggml type number; a type hestia does not handle has an empty row. */
#include "tensor/qtype.h"

#include "tensor/qtype_impl.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Storage facts (name, blck, bytes) are filled from gguf_types at first use,
 * so that they cannot disagree with what the reader validates. */
static struct hs_qtype k_types[HS_TYPE_COUNT] = {
    [HS_TYPE_F32] = {.is_quant = false,
                     .to_float = hs_f32_to_float,
                     .from_float_ref = hs_f32_from_float_ref,
                     .vec_dot_ref = hs_f32_vec_dot_ref,
                     .vec_dot_type = HS_TYPE_F32},
    [HS_TYPE_F16] = {.is_quant = false,
                     .to_float = hs_f16_to_float,
                     .from_float_ref = hs_f16_from_float_ref,
                     .vec_dot_ref = hs_f16_vec_dot_ref,
                     .vec_dot_type = HS_TYPE_F16},
    [HS_TYPE_BF16] = {.is_quant = false,
                      .to_float = hs_bf16_to_float,
                      .from_float_ref = hs_bf16_from_float_ref,
                      .vec_dot_ref = hs_bf16_vec_dot_ref,
                      .vec_dot_type = HS_TYPE_BF16},
    [HS_TYPE_Q4_0] = {.is_quant = true,
                      .to_float = hs_q4_0_to_float,
                      .from_float_ref = hs_q4_0_from_float_ref,
                      .vec_dot_ref = hs_q4_0_vec_dot_ref,
                      .vec_dot_type = HS_TYPE_Q8_0},
    [HS_TYPE_Q4_1] = {.is_quant = true,
                      .to_float = hs_q4_1_to_float,
                      .from_float_ref = hs_q4_1_from_float_ref,
                      .vec_dot_ref = hs_q4_1_vec_dot_ref,
                      .vec_dot_type = HS_TYPE_Q8_1},
    [HS_TYPE_Q5_0] = {.is_quant = true,
                      .to_float = hs_q5_0_to_float,
                      .from_float_ref = hs_q5_0_from_float_ref,
                      .vec_dot_ref = hs_q5_0_vec_dot_ref,
                      .vec_dot_type = HS_TYPE_Q8_0},
    [HS_TYPE_Q5_1] = {.is_quant = true,
                      .to_float = hs_q5_1_to_float,
                      .from_float_ref = hs_q5_1_from_float_ref,
                      .vec_dot_ref = hs_q5_1_vec_dot_ref,
                      .vec_dot_type = HS_TYPE_Q8_1},
    [HS_TYPE_Q8_0] = {.is_quant = true,
                      .to_float = hs_q8_0_to_float,
                      .from_float_ref = hs_q8_0_from_float_ref,
                      .vec_dot_ref = hs_q8_0_vec_dot_ref,
                      .vec_dot_type = HS_TYPE_Q8_0},
    [HS_TYPE_Q8_1] = {.is_quant = true,
                      .to_float = hs_q8_1_to_float,
                      .from_float_ref = hs_q8_1_from_float_ref,
                      .vec_dot_ref = hs_q8_1_vec_dot_ref,
                      .vec_dot_type = HS_TYPE_Q8_1},
    /* K-quants: rows added by q_k */
    [HS_TYPE_Q2_K] = {.is_quant = true,
                      .to_float = hs_q2_k_to_float,
                      .from_float_ref = hs_q2_k_from_float_ref,
                      .vec_dot_ref = hs_q2_k_vec_dot_ref,
                      .vec_dot_type = HS_TYPE_Q8_K},
    [HS_TYPE_Q3_K] = {.is_quant = true,
                      .to_float = hs_q3_k_to_float,
                      .from_float_ref = hs_q3_k_from_float_ref,
                      .vec_dot_ref = hs_q3_k_vec_dot_ref,
                      .vec_dot_type = HS_TYPE_Q8_K},
    [HS_TYPE_Q4_K] = {.is_quant = true,
                      .to_float = hs_q4_k_to_float,
                      .from_float_ref = hs_q4_k_from_float_ref,
                      .vec_dot_ref = hs_q4_k_vec_dot_ref,
                      .vec_dot_type = HS_TYPE_Q8_K},
    [HS_TYPE_Q5_K] = {.is_quant = true,
                      .to_float = hs_q5_k_to_float,
                      .from_float_ref = hs_q5_k_from_float_ref,
                      .vec_dot_ref = hs_q5_k_vec_dot_ref,
                      .vec_dot_type = HS_TYPE_Q8_K},
    [HS_TYPE_Q6_K] = {.is_quant = true,
                      .to_float = hs_q6_k_to_float,
                      .from_float_ref = hs_q6_k_from_float_ref,
                      .vec_dot_ref = hs_q6_k_vec_dot_ref,
                      .vec_dot_type = HS_TYPE_Q8_K},
    /* Activations only: its vec_dot (Q8_K x Q8_K) exists for the table's tests. */
    [HS_TYPE_Q8_K] = {.is_quant = true,
                      .to_float = hs_q8_k_to_float,
                      .from_float_ref = hs_q8_k_from_float_ref,
                      .vec_dot_ref = hs_q8_k_vec_dot_ref,
                      .vec_dot_type = HS_TYPE_Q8_K},
    /* end of K-quants */
};

/* One row per level; a level exists for a type when its row names an impl.
 * Fields left NULL are inherited from the level below at start-up, so a
 * level lists only what it speeds up (gemm included). */
#define REF_ROW(t) [HS_CPU_REF] = {.impl = "ref", .vec_dot = hs_##t##_vec_dot_ref}

static struct hs_qtype_kernels k_kernels[HS_TYPE_COUNT][3] = {
    [HS_TYPE_F32] =
        {
            REF_ROW(f32),
            [HS_CPU_AVX2] = {.impl = "avx2", .vec_dot = hs_f32_vec_dot_avx2},
            [HS_CPU_AVX512] = {.impl = "avx512",
                               .vec_dot = hs_f32_vec_dot_avx512,
                               .gemm = hs_f32_gemm_avx512,
                               .gemm_rows = 4,
                               .gemm_cols = 6},
        },
    [HS_TYPE_F16] =
        {
            REF_ROW(f16),
            [HS_CPU_AVX2] = {.impl = "avx2",
                             .vec_dot = hs_f16_vec_dot_avx2,
                             .from_float = hs_f16_from_float_avx2,
                             .to_float = hs_f16_to_float_avx2,
                             .gemm = hs_f16_gemm_avx2,
                             .gemm_rows = 4,
                             .gemm_cols = 3},
            [HS_CPU_AVX512] = {.impl = "avx512",
                               .vec_dot = hs_f16_vec_dot_avx512,
                               .gemm = hs_f16_gemm_avx512,
                               /* F16_TR x F16_TC in q_float_avx512.c */
                               .gemm_rows = 16,
                               .gemm_cols = 12},
        },
    [HS_TYPE_BF16] =
        {
            REF_ROW(bf16),
            [HS_CPU_AVX2] = {.impl = "avx2", .vec_dot = hs_bf16_vec_dot_avx2},
            [HS_CPU_AVX512] = {.impl = "avx512",
                               .vec_dot = hs_bf16_vec_dot_avx512,
                               .from_float = hs_bf16_from_float_avx512,
                               .gemm = hs_bf16_gemm_avx512,
                               /* F16_TR x F16_TC in q_float_avx512.c */
                               .gemm_rows = 16,
                               .gemm_cols = 12},
        },
    [HS_TYPE_Q4_0] =
        {
            REF_ROW(q4_0),
            [HS_CPU_AVX2] = {.impl = "avx2", .vec_dot = hs_q4_0_vec_dot_avx2},
            [HS_CPU_AVX512] = {.impl = "avx512", .vec_dot = hs_q4_0_vec_dot_avx512},
        },
    [HS_TYPE_Q4_1] =
        {
            REF_ROW(q4_1),
            [HS_CPU_AVX2] = {.impl = "avx2", .vec_dot = hs_q4_1_vec_dot_avx2},
            [HS_CPU_AVX512] = {.impl = "avx512", .vec_dot = hs_q4_1_vec_dot_avx512},
        },
    [HS_TYPE_Q5_0] =
        {
            REF_ROW(q5_0),
            [HS_CPU_AVX2] = {.impl = "avx2", .vec_dot = hs_q5_0_vec_dot_avx2},
            [HS_CPU_AVX512] = {.impl = "avx512", .vec_dot = hs_q5_0_vec_dot_avx512},
        },
    [HS_TYPE_Q5_1] =
        {
            REF_ROW(q5_1),
            [HS_CPU_AVX2] = {.impl = "avx2", .vec_dot = hs_q5_1_vec_dot_avx2},
            [HS_CPU_AVX512] = {.impl = "avx512", .vec_dot = hs_q5_1_vec_dot_avx512},
        },
    [HS_TYPE_Q8_0] =
        {
            REF_ROW(q8_0),
            [HS_CPU_AVX2] = {.impl = "avx2",
                             .vec_dot = hs_q8_0_vec_dot_avx2,
                             .from_float = hs_q8_0_from_float_avx2,
                             .gemm = hs_q8_0_gemm_avx2,
                             .gemm_rows = 4,
                             .gemm_cols = 2},
            [HS_CPU_AVX512] = {.impl = "avx512",
                               .vec_dot = hs_q8_0_vec_dot_avx512,
                               .from_float = hs_q8_0_from_float_avx512,
                               .gemm = hs_q8_0_gemm_avx512,
                               .gemm_rows = 4,
                               .gemm_cols = 4},
        },
    [HS_TYPE_Q8_1] =
        {
            REF_ROW(q8_1),
            [HS_CPU_AVX2] = {.impl = "avx2", .vec_dot = hs_q8_1_vec_dot_avx2, .from_float = hs_q8_1_from_float_avx2},
            [HS_CPU_AVX512] = {.impl = "avx512",
                               .vec_dot = hs_q8_1_vec_dot_avx512,
                               .from_float = hs_q8_1_from_float_avx512},
        },
    /* K-quants: rows added by q_k */
    [HS_TYPE_Q2_K] =
        {
            REF_ROW(q2_k),
            [HS_CPU_AVX2] = {.impl = "avx2", .vec_dot = hs_q2_k_vec_dot_avx2},
            [HS_CPU_AVX512] = {.impl = "avx512",
                               .vec_dot = hs_q2_k_vec_dot_avx512,
                               .gemm = hs_q2_k_gemm_avx512,
                               .gemm_rows = HS_Q_K_GEMM_ROWS,
                               .gemm_cols = HS_Q_K_GEMM_COLS,
                               .gemm_exact = true},
        },
    [HS_TYPE_Q3_K] =
        {
            REF_ROW(q3_k),
            [HS_CPU_AVX2] = {.impl = "avx2", .vec_dot = hs_q3_k_vec_dot_avx2},
            [HS_CPU_AVX512] = {.impl = "avx512",
                               .vec_dot = hs_q3_k_vec_dot_avx512,
                               .gemm = hs_q3_k_gemm_avx512,
                               .gemm_rows = HS_Q_K_GEMM_ROWS,
                               .gemm_cols = HS_Q_K_GEMM_COLS,
                               .gemm_exact = true},
        },
    [HS_TYPE_Q4_K] =
        {
            REF_ROW(q4_k),
            [HS_CPU_AVX2] = {.impl = "avx2", .vec_dot = hs_q4_k_vec_dot_avx2},
            [HS_CPU_AVX512] = {.impl = "avx512",
                               .vec_dot = hs_q4_k_vec_dot_avx512,
                               .gemm = hs_q4_k_gemm_avx512,
                               .gemm_rows = HS_Q_K_GEMM_ROWS,
                               .gemm_cols = HS_Q_K_GEMM_COLS,
                               .gemm_exact = true},
        },
    [HS_TYPE_Q5_K] =
        {
            REF_ROW(q5_k),
            [HS_CPU_AVX2] = {.impl = "avx2", .vec_dot = hs_q5_k_vec_dot_avx2},
            [HS_CPU_AVX512] = {.impl = "avx512",
                               .vec_dot = hs_q5_k_vec_dot_avx512,
                               .gemm = hs_q5_k_gemm_avx512,
                               .gemm_rows = HS_Q_K_GEMM_ROWS,
                               .gemm_cols = HS_Q_K_GEMM_COLS,
                               .gemm_exact = true},
        },
    [HS_TYPE_Q6_K] =
        {
            REF_ROW(q6_k),
            [HS_CPU_AVX2] = {.impl = "avx2", .vec_dot = hs_q6_k_vec_dot_avx2},
            [HS_CPU_AVX512] = {.impl = "avx512",
                               .vec_dot = hs_q6_k_vec_dot_avx512,
                               .gemm = hs_q6_k_gemm_avx512,
                               .gemm_rows = HS_Q_K_GEMM_ROWS,
                               .gemm_cols = HS_Q_K_GEMM_COLS,
                               .gemm_exact = true},
        },
    [HS_TYPE_Q8_K] =
        {
            REF_ROW(q8_k),
            [HS_CPU_AVX2] = {.impl = "avx2", .from_float = hs_q8_k_from_float_avx2},
            [HS_CPU_AVX512] = {.impl = "avx512", .from_float = hs_q8_k_from_float_avx512},
        },
    /* end of K-quants */
};

#undef REF_ROW

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static enum hs_cpu_level g_hw_level;              /* what the hardware runs, uncapped */
static const struct hs_qtype_kernels *g_best[HS_TYPE_COUNT]; /* capped by $HESTIA_CPU */

/* The level the hardware runs, by the rule of base/cpu.h but without the
 * $HESTIA_CPU cap: tests exercise every level the machine can execute. */
static enum hs_cpu_level hw_level(void) {
    const struct hs_cpu_features *f = hs_cpu_features();
    if (!(f->avx2 && f->fma && f->f16c))
        return HS_CPU_REF;
    if (f->avx512f && f->avx512bw && f->avx512vl && f->avx512dq && f->avx512vnni && f->avx512bf16)
        return HS_CPU_AVX512;
    return HS_CPU_AVX2;
}

static void init_tables(void) {
    for (int t = 0; t < HS_TYPE_COUNT; t++) {
        struct hs_qtype *q = &k_types[t];
        const struct hs_type_size *sz = hs_type_size((uint32_t)t);
        if (!q->to_float || !sz) {
            q->to_float = NULL; /* an empty row: no kernels, or a retired number */
            continue;
        }
        q->type = t;
        q->name = sz->name;
        q->blck = sz->blck;
        q->bytes = sz->bytes;
        struct hs_qtype_kernels *rows = k_kernels[t];
        /* The reference row always exists: complete it from the format row. */
        rows[HS_CPU_REF].impl = "ref";
        if (!rows[HS_CPU_REF].vec_dot)
            rows[HS_CPU_REF].vec_dot = q->vec_dot_ref;
        if (!rows[HS_CPU_REF].from_float)
            rows[HS_CPU_REF].from_float = q->from_float_ref;
        if (!rows[HS_CPU_REF].to_float)
            rows[HS_CPU_REF].to_float = q->to_float;
        for (int l = HS_CPU_AVX2; l <= HS_CPU_AVX512; l++) {
            struct hs_qtype_kernels *r = &rows[l];
            const struct hs_qtype_kernels *below = &rows[l - 1];
            if (!r->impl)
                continue;
            if (!below->impl) /* a level builds on the one below; a gap inherits from REF */
                below = &rows[HS_CPU_REF];
            if (!r->vec_dot)
                r->vec_dot = below->vec_dot;
            if (!r->from_float)
                r->from_float = below->from_float;
            if (!r->to_float)
                r->to_float = below->to_float;
            if (!r->gemm) {
                r->gemm = below->gemm;
                r->gemm_rows = below->gemm_rows;
                r->gemm_cols = below->gemm_cols;
            }
        }
    }
    g_hw_level = hw_level();
    const enum hs_cpu_level cap = hs_cpu_level();
    for (int t = 0; t < HS_TYPE_COUNT; t++) {
        if (!k_types[t].to_float)
            continue;
        for (int l = cap; l >= HS_CPU_REF; l--) {
            if (k_kernels[t][l].impl) {
                g_best[t] = &k_kernels[t][l];
                break;
            }
        }
    }
}

/* AMX tile data is off by default for a process on Linux: it must ask with
 * arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) before the first tile
 * instruction, or that instruction faults. */
#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

static pthread_once_t g_amx_once = PTHREAD_ONCE_INIT;
static bool g_amx_available, g_amx_enabled;

static void init_amx(void) {
    const struct hs_cpu_features *f = hs_cpu_features();
    if (hw_level() == HS_CPU_AVX512 && f->amx_tile && f->amx_int8) {
#ifdef SYS_arch_prctl
        g_amx_available = syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
#endif
    }
    g_amx_enabled = g_amx_available && hs_cpu_level() == HS_CPU_AVX512 && !getenv("HESTIA_NO_AMX");
}

bool hs_amx_available(void) {
    pthread_once(&g_amx_once, init_amx);
    return g_amx_available;
}

bool hs_amx_enabled(void) {
    pthread_once(&g_amx_once, init_amx);
    return g_amx_enabled;
}

const struct hs_qtype *hs_qtype(int type) {
    pthread_once(&g_once, init_tables);
    if (type < 0 || type >= HS_TYPE_COUNT || !k_types[type].to_float)
        return NULL;
    return &k_types[type];
}

const struct hs_qtype_kernels *hs_qtype_kernels(int type) {
    if (!hs_qtype(type))
        return NULL;
    return g_best[type];
}

const struct hs_qtype_kernels *hs_qtype_kernels_at(int type, enum hs_cpu_level level) {
    if (!hs_qtype(type) || (int)level < HS_CPU_REF || (int)level > HS_CPU_AVX512 || level > g_hw_level)
        return NULL;
    return k_kernels[type][level].impl ? &k_kernels[type][level] : NULL;
}

size_t hs_qtype_row_bytes(int type, int64_t n) {
    const struct hs_qtype *q = hs_qtype(type);
    if (!q || n < 0 || n % q->blck)
        return 0;
    return (size_t)(n / q->blck) * q->bytes;
}
