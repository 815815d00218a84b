/* The ggml tensor type numbers and their storage facts (elements per block,
 * bytes per block) as the GGUF format defines them. Only storage facts live
 * here, because the reader needs them to validate sizes; kernels live in the
 * tensor/ layer's table (tensor/qtype.h), which reuses these numbers.
 * Numbers are part of the file format: retired types keep their number. */
#ifndef HS_GGUF_GGUF_TYPES_H
#define HS_GGUF_GGUF_TYPES_H

#include <stddef.h>
#include <stdint.h>

enum hs_ggml_type {
    HS_TYPE_F32 = 0,
    HS_TYPE_F16 = 1,
    HS_TYPE_Q4_0 = 2,
    HS_TYPE_Q4_1 = 3,
    /* 4, 5: Q4_2, Q4_3, retired */
    HS_TYPE_Q5_0 = 6,
    HS_TYPE_Q5_1 = 7,
    HS_TYPE_Q8_0 = 8,
    HS_TYPE_Q8_1 = 9,
    HS_TYPE_Q2_K = 10,
    HS_TYPE_Q3_K = 11,
    HS_TYPE_Q4_K = 12,
    HS_TYPE_Q5_K = 13,
    HS_TYPE_Q6_K = 14,
    HS_TYPE_Q8_K = 15,
    HS_TYPE_IQ2_XXS = 16,
    HS_TYPE_IQ2_XS = 17,
    HS_TYPE_IQ3_XXS = 18,
    HS_TYPE_IQ1_S = 19,
    HS_TYPE_IQ4_NL = 20,
    HS_TYPE_IQ3_S = 21,
    HS_TYPE_IQ2_S = 22,
    HS_TYPE_IQ4_XS = 23,
    HS_TYPE_I8 = 24,
    HS_TYPE_I16 = 25,
    HS_TYPE_I32 = 26,
    HS_TYPE_I64 = 27,
    HS_TYPE_F64 = 28,
    HS_TYPE_IQ1_M = 29,
    HS_TYPE_BF16 = 30,
    /* 31-33: Q4_0_4_4 etc., retired */
    HS_TYPE_TQ1_0 = 34,
    HS_TYPE_TQ2_0 = 35,
    /* 36-38: IQ4_NL_4_4 etc., retired */
    HS_TYPE_MXFP4 = 39,
    HS_TYPE_COUNT = 40
};

/* Storage facts of one type. blck == 0 marks an unknown or retired number. */
struct hs_type_size {
    const char *name; /* "q4_K", as ggml names it */
    int blck;         /* elements per block */
    size_t bytes;     /* bytes per block */
};

/* Facts for `type`, or NULL when the number is unknown or retired. */
const struct hs_type_size *hs_type_size(uint32_t type);

/* Bytes of a row of n elements; 0 when n is not a whole number of blocks or
 * the type is unknown. */
size_t hs_type_row_bytes(uint32_t type, int64_t n);

/* Looks a type up by name (case-insensitive, "q4_k", "Q4_K", "f16"); -1 if none. */
int hs_type_from_name(const char *name);

#endif
