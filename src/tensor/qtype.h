/* The quant-type table: for each ggml type number, its storage facts and its
 * kernels. Format facts (name, block, bytes) come from gguf/gguf_types.h.
 *
 * Two tables, as in ggml:
 *  - hs_qtype(type): format kernels written for clarity: to_float,
 *    from_float_ref (the quantizer that writes model files), vec_dot_ref (the
 *    scalar reference dot product every fast kernel is tested against), and
 *    vec_dot_type, the type activations are quantized to before a dot product
 *    with a row of this type (Q4_K rows meet Q8_K activations).
 *  - hs_qtype_kernels(type): the fastest kernels this CPU runs (ref, AVX2 or
 *    AVX-512), chosen once from cpuid. hs_qtype_kernels_at gives one level's
 *    row, for tests and benchmarks.
 * Adding a type means adding a row to each; the table test then covers it. */
#ifndef HS_TENSOR_QTYPE_H
#define HS_TENSOR_QTYPE_H

#include "base/cpu.h"
#include "gguf/gguf_types.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* y[0..n) = the n values stored in x (n a multiple of the block size). */
typedef void (*hs_to_float_fn)(const void *x, float *y, int64_t n);
/* Quantizes n floats (a multiple of the block size) into blocks at y. */
typedef void (*hs_from_float_fn)(const float *x, void *y, int64_t n);
/* *s = dot(x, y) over n elements: x a row of this type, y a row of vec_dot_type. */
typedef void (*hs_vec_dot_fn)(int n, float *s, const void *x, const void *y);
/* Tile kernel: s[c * ldc + r] = dot(row r of x, row c of y) for r < nr, c < nc.
 * x rows are bx bytes apart, y rows by bytes apart; nr, nc at most the
 * kernel's declared tile (gemm_rows x gemm_cols). */
typedef void (*hs_gemm_fn)(int n, float *s, size_t ldc, const void *x, size_t bx, const void *y, size_t by,
                           int nr, int nc);

struct hs_qtype {
    int type;
    const char *name;
    int blck;
    size_t bytes;
    bool is_quant;
    hs_to_float_fn to_float;
    hs_from_float_fn from_float_ref;
    hs_vec_dot_fn vec_dot_ref;
    int vec_dot_type;
};

struct hs_qtype_kernels {
    const char *impl;            /* "ref", "avx2", "avx512" */
    hs_vec_dot_fn vec_dot;       /* required */
    hs_from_float_fn from_float; /* fast quantizer (activations); may equal the ref */
    hs_to_float_fn to_float;     /* fast dequantizer */
    hs_gemm_fn gemm;             /* optional tile kernel (NULL: loop vec_dot) */
    int gemm_rows, gemm_cols;
    /* (addition) gemm's s[c * ldc + r] equals vec_dot's result for the same
     * row and token bit for bit, whatever nr, nc and the token's place in the
     * tile: a batch then computes each token exactly as it would alone, so
     * hs_matmul_ex's HS_MM_BATCH_INVARIANT may use the tiles. */
    bool gemm_exact;
};

/* Row of the format table; NULL when hestia has no kernels for the type. */
const struct hs_qtype *hs_qtype(int type);

/* Best kernels for this CPU (never NULL for a type hs_qtype knows). Thread-safe. */
const struct hs_qtype_kernels *hs_qtype_kernels(int type);

/* Exactly that level's kernels, or NULL when the level has none for the type
 * (or the CPU cannot run it). Level REF always exists for a known type. */
const struct hs_qtype_kernels *hs_qtype_kernels_at(int type, enum hs_cpu_level level);

/* Bytes of a row of n elements (0 when n is not a whole number of blocks). */
size_t hs_qtype_row_bytes(int type, int64_t n);

#endif
