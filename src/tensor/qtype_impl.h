/* Internal to tensor/: the block layouts and every kernel the two tables in
 * qtype.c point at. Only files of tensor/ include this.
 *
 * Block layouts are those of ggml (ggml-common.h), byte for byte, because
 * model files store them verbatim. In every layout a weight is x = d * q (+ m
 * for the _1 types); d and m are IEEE halves.
 *
 * Naming: hs_<type>_<op>_<level>, op one of to_float, from_float, vec_dot,
 * gemm; level ref (scalar, written for clarity: the one the tests trust),
 * avx2 or avx512 (in <file>_avx2.c / <file>_avx512.c, built with those flags
 * and only called after cpuid said yes). to_float has no level suffix when
 * there is only the scalar one. */
#ifndef HS_TENSOR_QTYPE_IMPL_H
#define HS_TENSOR_QTYPE_IMPL_H

#include "base/fp16.h"
#include "tensor/qtype.h"

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HS_QK4_0 32
#define HS_QK4_1 32
#define HS_QK5_0 32
#define HS_QK5_1 32
#define HS_QK8_0 32
#define HS_QK8_1 32

/* 4.5 bits per weight: x = d * (q - 8), q in [0, 15]. qs[j] holds element j in
 * its low nibble and element j + 16 in its high nibble. */
typedef struct {
    hs_fp16 d;
    uint8_t qs[HS_QK4_0 / 2];
} hs_block_q4_0;

/* 5 bits per weight: x = d * q + m, q in [0, 15]; nibbles as in q4_0. */
typedef struct {
    hs_fp16 d;
    hs_fp16 m;
    uint8_t qs[HS_QK4_1 / 2];
} hs_block_q4_1;

/* 5.5 bits per weight: x = d * (q - 16), q in [0, 31]. The low 4 bits are in
 * qs as in q4_0; bit 4 of element j is bit j of the little-endian word qh. */
typedef struct {
    hs_fp16 d;
    uint8_t qh[4];
    uint8_t qs[HS_QK5_0 / 2];
} hs_block_q5_0;

/* 6 bits per weight: x = d * q + m, q in [0, 31]; bits as in q5_0. */
typedef struct {
    hs_fp16 d;
    hs_fp16 m;
    uint8_t qh[4];
    uint8_t qs[HS_QK5_1 / 2];
} hs_block_q5_1;

/* 8.5 bits per weight: x = d * q, q in [-127, 127]. */
typedef struct {
    hs_fp16 d;
    int8_t qs[HS_QK8_0];
} hs_block_q8_0;

/* Activations for the _1 types: x = d * q, and s = d * sum(q) so that the
 * dot product with a block's offset m costs one multiply. */
typedef struct {
    hs_fp16 d;
    hs_fp16 s;
    int8_t qs[HS_QK8_1];
} hs_block_q8_1;

static_assert(sizeof(hs_block_q4_0) == 18, "q4_0 block");
static_assert(sizeof(hs_block_q4_1) == 20, "q4_1 block");
static_assert(sizeof(hs_block_q5_0) == 22, "q5_0 block");
static_assert(sizeof(hs_block_q5_1) == 24, "q5_1 block");
static_assert(sizeof(hs_block_q8_0) == 34, "q8_0 block");
static_assert(sizeof(hs_block_q8_1) == 36, "q8_1 block");

/* ---- float types (q_float.c, q_float_avx2.c, q_float_avx512.c) ---- */
void hs_f32_to_float(const void *x, float *y, int64_t n);
void hs_f32_from_float_ref(const float *x, void *y, int64_t n);
void hs_f32_vec_dot_ref(int n, float *s, const void *x, const void *y);
void hs_f32_vec_dot_avx2(int n, float *s, const void *x, const void *y);
void hs_f32_vec_dot_avx512(int n, float *s, const void *x, const void *y);
void hs_f32_gemm_avx512(int n, float *s, size_t ldc, const void *x, size_t bx, const void *y, size_t by, int nr,
                        int nc);

void hs_f16_to_float(const void *x, float *y, int64_t n);
void hs_f16_to_float_avx2(const void *x, float *y, int64_t n);
void hs_f16_from_float_ref(const float *x, void *y, int64_t n);
void hs_f16_from_float_avx2(const float *x, void *y, int64_t n);
void hs_f16_vec_dot_ref(int n, float *s, const void *x, const void *y);
void hs_f16_vec_dot_avx2(int n, float *s, const void *x, const void *y);
void hs_f16_vec_dot_avx512(int n, float *s, const void *x, const void *y);
void hs_f16_gemm_avx2(int n, float *s, size_t ldc, const void *x, size_t bx, const void *y, size_t by, int nr,
                      int nc);
void hs_f16_gemm_avx512(int n, float *s, size_t ldc, const void *x, size_t bx, const void *y, size_t by, int nr,
                        int nc);

void hs_bf16_to_float(const void *x, float *y, int64_t n);
void hs_bf16_from_float_ref(const float *x, void *y, int64_t n);
void hs_bf16_from_float_avx512(const float *x, void *y, int64_t n);
void hs_bf16_vec_dot_ref(int n, float *s, const void *x, const void *y);
void hs_bf16_vec_dot_avx2(int n, float *s, const void *x, const void *y);
void hs_bf16_vec_dot_avx512(int n, float *s, const void *x, const void *y);
void hs_bf16_gemm_avx512(int n, float *s, size_t ldc, const void *x, size_t bx, const void *y, size_t by, int nr,
                         int nc);

/* ---- legacy quants (q_legacy.c, q_legacy_avx2.c, q_legacy_avx512.c) ---- */
void hs_q4_0_to_float(const void *x, float *y, int64_t n);
void hs_q4_0_from_float_ref(const float *x, void *y, int64_t n);
void hs_q4_0_vec_dot_ref(int n, float *s, const void *x, const void *y);
void hs_q4_0_vec_dot_avx2(int n, float *s, const void *x, const void *y);
void hs_q4_0_vec_dot_avx512(int n, float *s, const void *x, const void *y);

void hs_q4_1_to_float(const void *x, float *y, int64_t n);
void hs_q4_1_from_float_ref(const float *x, void *y, int64_t n);
void hs_q4_1_vec_dot_ref(int n, float *s, const void *x, const void *y);
void hs_q4_1_vec_dot_avx2(int n, float *s, const void *x, const void *y);
void hs_q4_1_vec_dot_avx512(int n, float *s, const void *x, const void *y);

void hs_q5_0_to_float(const void *x, float *y, int64_t n);
void hs_q5_0_from_float_ref(const float *x, void *y, int64_t n);
void hs_q5_0_vec_dot_ref(int n, float *s, const void *x, const void *y);
void hs_q5_0_vec_dot_avx2(int n, float *s, const void *x, const void *y);
void hs_q5_0_vec_dot_avx512(int n, float *s, const void *x, const void *y);

void hs_q5_1_to_float(const void *x, float *y, int64_t n);
void hs_q5_1_from_float_ref(const float *x, void *y, int64_t n);
void hs_q5_1_vec_dot_ref(int n, float *s, const void *x, const void *y);
void hs_q5_1_vec_dot_avx2(int n, float *s, const void *x, const void *y);
void hs_q5_1_vec_dot_avx512(int n, float *s, const void *x, const void *y);

void hs_q8_0_to_float(const void *x, float *y, int64_t n);
void hs_q8_0_from_float_ref(const float *x, void *y, int64_t n);
void hs_q8_0_from_float_avx2(const float *x, void *y, int64_t n);
void hs_q8_0_from_float_avx512(const float *x, void *y, int64_t n);
void hs_q8_0_vec_dot_ref(int n, float *s, const void *x, const void *y);
void hs_q8_0_vec_dot_avx2(int n, float *s, const void *x, const void *y);
void hs_q8_0_vec_dot_avx512(int n, float *s, const void *x, const void *y);
void hs_q8_0_gemm_avx2(int n, float *s, size_t ldc, const void *x, size_t bx, const void *y, size_t by, int nr,
                       int nc);
void hs_q8_0_gemm_avx512(int n, float *s, size_t ldc, const void *x, size_t bx, const void *y, size_t by, int nr,
                         int nc);

void hs_q8_1_to_float(const void *x, float *y, int64_t n);
void hs_q8_1_from_float_ref(const float *x, void *y, int64_t n);
void hs_q8_1_from_float_avx2(const float *x, void *y, int64_t n);
void hs_q8_1_from_float_avx512(const float *x, void *y, int64_t n);
void hs_q8_1_vec_dot_ref(int n, float *s, const void *x, const void *y);
void hs_q8_1_vec_dot_avx2(int n, float *s, const void *x, const void *y);
void hs_q8_1_vec_dot_avx512(int n, float *s, const void *x, const void *y);

/* ---- AMX (q_legacy_amx_avx512.c), driven by matmul.c for batches of Q8_0,
 * Q4_0 and Q5_0 weights (all meet Q8_0 activations) ---- */

/* True when the CPU has AMX-INT8, the kernel granted this process the tile
 * state, the level is AVX512 (not capped by $HESTIA_CPU) and $HESTIA_NO_AMX
 * is unset. Decided once; thread-safe. */
bool hs_amx_enabled(void);
/* Same, ignoring $HESTIA_CPU and $HESTIA_NO_AMX: for tests of the kernels. */
bool hs_amx_available(void);

/* One block of 16 tokens' Q8_0 activations in the tile B layout:
 * b[kk][4 c + i] = q of token c, element 4 kk + i; d[c] its scale. */
typedef struct {
    int8_t b[8][64];
    float d[16];
} __attribute__((aligned(64))) hs_q8_0_amx_panel;

/* Bytes of the panels of one 16-token group for rows of n values. */
size_t hs_q8_0_amx_panel_bytes(int64_t n);
void hs_q8_0_amx_pack(hs_q8_0_amx_panel *out, const void *q, size_t q_row, int nc, int64_t n);
/* Up to 16 weight rows unpacked to int8: q is nr x n (row stride n), d the
 * block scales as floats, d[k * 16 + r] (rows past nr zero). The caller
 * provides q (16 n bytes) and d (n / 2 floats), 64-byte aligned. */
typedef struct {
    int nr;
    int8_t *q;
    float *d;
} hs_amx_rows;

void hs_q8_0_amx_rows(hs_amx_rows *out, const void *x, size_t bx, int nr, int64_t n);
void hs_q4_0_amx_rows(hs_amx_rows *out, const void *x, size_t bx, int nr, int64_t n);
void hs_q5_0_amx_rows(hs_amx_rows *out, const void *x, size_t bx, int nr, int64_t n);
/* s[c * ldc + r] for r < rows->nr and c < 16 (n_groups - 1) + nc_last
 * tokens of the panels (n_groups groups of 16 tokens, panel_stride bytes
 * apart). */
void hs_i8_amx_gemm(int n, float *s, size_t ldc, const hs_amx_rows *rows, const hs_q8_0_amx_panel *panels,
                    size_t panel_stride, int n_groups, int nc_last);

/* K-quants: rows added by q_k */

/* K-quants (q_k.c, q_k_avx2.c, q_k_avx512.c, q_k_gemm_avx512.c): 256 weights
 * per super-block, cut into sub-blocks of 16 or 32 with integer scales that
 * the halves d (and dmin) scale. Activations for all of them are Q8_K. */
#define HS_QK_K 256

/* 2.625 bits per weight: x = d * sc * q - dmin * m, q in [0, 3]; scales[j]
 * holds sub-block j's (16 values) sc in its low nibble and m in its high one.
 * qs: byte l of 32-byte group g holds elements 128g + l, +32, +64, +96 in
 * bit pairs 0-1, 2-3, 4-5, 6-7. */
typedef struct {
    uint8_t scales[HS_QK_K / 16];
    uint8_t qs[HS_QK_K / 4];
    hs_fp16 d;
    hs_fp16 dmin;
} hs_block_q2_k;

/* 3.4375 bits per weight: x = d * sc * q, q in [-4, 3]: 2 low bits in qs as
 * in Q2_K, minus 4 unless bit k/32 of hmask[k % 32] is set; sc a 6-bit signed
 * scale per 16 values (+32 bias; low nibbles in bytes 0-7, top bit pairs in
 * bytes 8-11). */
typedef struct {
    uint8_t hmask[HS_QK_K / 8];
    uint8_t qs[HS_QK_K / 4];
    uint8_t scales[12];
    hs_fp16 d;
} hs_block_q3_k;

/* 4.5 bits per weight: x = d * sc * q - dmin * m, q in [0, 15]; 6-bit sc and
 * m per 32 values, packed in 12 bytes (hs_q_k_scale_min); qs[32g + l] holds
 * element 64g + l in its low nibble and 64g + 32 + l in its high one. */
typedef struct {
    hs_fp16 d;
    hs_fp16 dmin;
    uint8_t scales[12];
    uint8_t qs[HS_QK_K / 2];
} hs_block_q4_k;

/* 5.5 bits per weight: as Q4_K with q in [0, 31]; bit 4 of element k is bit
 * k/32 of qh[k % 32]. */
typedef struct {
    hs_fp16 d;
    hs_fp16 dmin;
    uint8_t scales[12];
    uint8_t qh[HS_QK_K / 8];
    uint8_t qs[HS_QK_K / 2];
} hs_block_q5_k;

/* 6.5625 bits per weight: x = d * sc * q, q in [-32, 31] stored +32, sc an
 * int8 per 16 values. Per half h (128 values): ql[64h + l] holds 128h + l
 * (low nibble) and +64 (high), ql[64h + 32 + l] holds +32 and +96; qh[32h + l]
 * holds the top 2 bits of +0, +32, +64, +96 in bit pairs 0-1 .. 6-7. */
typedef struct {
    uint8_t ql[HS_QK_K / 2];
    uint8_t qh[HS_QK_K / 4];
    int8_t scales[HS_QK_K / 16];
    hs_fp16 d;
} hs_block_q6_k;

/* Activations: x = d * q, q in [-127, 127], d a float; bsums[j] = sum of
 * q[16j .. 16j+15], so that a min or an offset costs one multiply per 16. */
typedef struct {
    float d;
    int8_t qs[HS_QK_K];
    int16_t bsums[HS_QK_K / 16];
} hs_block_q8_k;

static_assert(sizeof(hs_block_q2_k) == 84, "q2_K block");
static_assert(sizeof(hs_block_q3_k) == 110, "q3_K block");
static_assert(sizeof(hs_block_q4_k) == 144, "q4_K block");
static_assert(sizeof(hs_block_q5_k) == 176, "q5_K block");
static_assert(sizeof(hs_block_q6_k) == 210, "q6_K block");
static_assert(sizeof(hs_block_q8_k) == 292, "q8_K block");

/* Scale and min (6 bits each) of sub-block j < 8 of a Q4_K/Q5_K block. */
void hs_q_k_scale_min(const uint8_t scales[12], int j, int *sc, int *m);

void hs_q2_k_to_float(const void *x, float *y, int64_t n);
void hs_q2_k_from_float_ref(const float *x, void *y, int64_t n);
void hs_q2_k_vec_dot_ref(int n, float *s, const void *x, const void *y);
void hs_q2_k_vec_dot_avx2(int n, float *s, const void *x, const void *y);
void hs_q2_k_vec_dot_avx512(int n, float *s, const void *x, const void *y);
void hs_q2_k_gemm_avx512(int n, float *s, size_t ldc, const void *x, size_t bx, const void *y, size_t by,
                         int nr, int nc);

void hs_q3_k_to_float(const void *x, float *y, int64_t n);
void hs_q3_k_from_float_ref(const float *x, void *y, int64_t n);
void hs_q3_k_vec_dot_ref(int n, float *s, const void *x, const void *y);
void hs_q3_k_vec_dot_avx2(int n, float *s, const void *x, const void *y);
void hs_q3_k_vec_dot_avx512(int n, float *s, const void *x, const void *y);
void hs_q3_k_gemm_avx512(int n, float *s, size_t ldc, const void *x, size_t bx, const void *y, size_t by,
                         int nr, int nc);

void hs_q4_k_to_float(const void *x, float *y, int64_t n);
void hs_q4_k_from_float_ref(const float *x, void *y, int64_t n);
void hs_q4_k_vec_dot_ref(int n, float *s, const void *x, const void *y);
void hs_q4_k_vec_dot_avx2(int n, float *s, const void *x, const void *y);
void hs_q4_k_vec_dot_avx512(int n, float *s, const void *x, const void *y);
/* Tile of the K-quant gemm kernels (weight rows x activation rows). */
#define HS_Q_K_GEMM_ROWS 4
#define HS_Q_K_GEMM_COLS 16
void hs_q4_k_gemm_avx512(int n, float *s, size_t ldc, const void *x, size_t bx, const void *y, size_t by,
                         int nr, int nc);

void hs_q5_k_to_float(const void *x, float *y, int64_t n);
void hs_q5_k_from_float_ref(const float *x, void *y, int64_t n);
void hs_q5_k_vec_dot_ref(int n, float *s, const void *x, const void *y);
void hs_q5_k_vec_dot_avx2(int n, float *s, const void *x, const void *y);
void hs_q5_k_vec_dot_avx512(int n, float *s, const void *x, const void *y);
void hs_q5_k_gemm_avx512(int n, float *s, size_t ldc, const void *x, size_t bx, const void *y, size_t by,
                         int nr, int nc);

void hs_q6_k_to_float(const void *x, float *y, int64_t n);
void hs_q6_k_from_float_ref(const float *x, void *y, int64_t n);
void hs_q6_k_vec_dot_ref(int n, float *s, const void *x, const void *y);
void hs_q6_k_vec_dot_avx2(int n, float *s, const void *x, const void *y);
void hs_q6_k_vec_dot_avx512(int n, float *s, const void *x, const void *y);
void hs_q6_k_gemm_avx512(int n, float *s, size_t ldc, const void *x, size_t bx, const void *y, size_t by,
                         int nr, int nc);

void hs_q8_k_to_float(const void *x, float *y, int64_t n);
void hs_q8_k_from_float_ref(const float *x, void *y, int64_t n);
void hs_q8_k_from_float_avx2(const float *x, void *y, int64_t n);
void hs_q8_k_from_float_avx512(const float *x, void *y, int64_t n);
void hs_q8_k_vec_dot_ref(int n, float *s, const void *x, const void *y);

/* AMX for batches of Q4_K and Q6_K weights (q_k_amx_avx512.c), driven by
 * matmul.c like the legacy AMX kernels and meeting the same Q8_0 activation
 * panels. Up to 16 weight rows unpacked to int8 per 32-value block: q is
 * nr x n (row stride n); d[k * 16 + r] the block's scale; m[k * 16 + r] for
 * Q4_K the block's offset -dmin * m (it multiplies the activations' block
 * sum), for Q6_K, whose scales go by 16, the scale of the block's second half
 * (d then scales the first). Rows past nr zero. The caller provides q (16 n
 * bytes), d and m (n / 2 floats each), 64-byte aligned. */
typedef struct {
    int nr;
    int8_t *q;
    float *d, *m;
} hs_amx_k_rows;

/* out[k * 16 + c] = d * sum(q) of block k of token c < nc (Q8_0 rows q_row
 * bytes apart), zero for c >= nc: n / 2 floats per 16-token group. */
void hs_q8_0_amx_sums(float *out, const void *q, size_t q_row, int nc, int64_t n);
void hs_q4_k_amx_rows(hs_amx_k_rows *out, const void *x, size_t bx, int nr, int64_t n);
void hs_q6_k_amx_rows(hs_amx_k_rows *out, const void *x, size_t bx, int nr, int64_t n);
/* As hs_i8_amx_gemm; sums: each group's hs_q8_0_amx_sums, sums_stride bytes
 * apart (Q6_K ignores them). */
void hs_q4_k_amx_gemm(int n, float *s, size_t ldc, const hs_amx_k_rows *rows, const hs_q8_0_amx_panel *panels,
                      size_t panel_stride, const float *sums, size_t sums_stride, int n_groups, int nc_last);
void hs_q6_k_amx_gemm(int n, float *s, size_t ldc, const hs_amx_k_rows *rows, const hs_q8_0_amx_panel *panels,
                      size_t panel_stride, const float *sums, size_t sums_stride, int n_groups, int nc_last);

/* Q4_K against Q8_K on AMX tiles for generated tokens (q_k_amxg_avx512.c):
 * 1 to 8 tokens per call, each token's result independent of the others.
 * The activations of a group of up to 8 tokens are first packed, per
 * 256-block: b[g] the tile B of sub-blocks 2g, 2g + 1 (column 2c + p holds
 * token c's elements of sub-block 2g + p, zeros elsewhere), yd[2c + p] the
 * token's scale, bb[h] and bb8[h] int16 pairs (B_{4h+p}, B_{4h+2+p}) of the
 * sub-block sums B (times 8 in bb8) at pair 2c + p. Unused columns zero. */
typedef struct {
    int8_t b[4][16][64];
    float yd[16];
    int16_t bb[2][32];
    int16_t bb8[2][32];
} __attribute__((aligned(64))) hs_q4_k_amxg_panel;

size_t hs_q4_k_amxg_panel_bytes(int64_t n);
/* nc <= 8 tokens of Q8_K rows q_row bytes apart; out: n / 256 panels. */
void hs_q4_k_amxg_pack(hs_q4_k_amxg_panel *out, const void *q, size_t q_row, int nc, int64_t n);
/* s[c * ldc + r] for rows r < nr (any number, bx bytes apart) and the
 * panels' nc tokens. Needs hs_amx_enabled(). */
void hs_q4_k_amxg_gemm(int n, float *s, size_t ldc, const void *x, size_t bx, const hs_q4_k_amxg_panel *p,
                       int nr, int nc);
/* Its scalar definition for one row and one Q8_K token (q_k.c), and the
 * same for one token with AVX-512 VNNI, without tiles (q_k_avx512.c): what
 * a lone generated token uses, as fast as the dot product. */
void hs_q4_k_amxg_ref(int n, float *s, const void *x, const void *y);
void hs_q4_k_vec_dot_amxg_avx512(int n, float *s, const void *x, const void *y);

/* end of K-quants */

#endif
