/* IEEE half (fp16) and bfloat16 conversions, bit-exact with the F16C
 * instructions and with ggml: round to nearest even, NaN kept NaN.
 * bf16 rounding follows ggml (round to nearest even, quiet NaN). */
#ifndef HS_BASE_FP16_H
#define HS_BASE_FP16_H

#include <stdint.h>
#include <string.h>

typedef uint16_t hs_fp16;
typedef uint16_t hs_bf16;

static inline float hs_bits_to_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint32_t hs_f32_to_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* Exponent re-biasing with float arithmetic: scaling by 2^-112 moves the
 * half exponent range onto the single one, and a magic-number subtraction
 * handles subnormals without branches on the exponent. */
static inline float hs_fp16_to_f32(hs_fp16 h) {
    const uint32_t w = (uint32_t)h << 16;
    const uint32_t sign = w & 0x80000000u;
    const uint32_t two_w = w + w;
    const float normalized = hs_bits_to_f32((two_w >> 4) + (0xE0u << 23)) * 0x1.0p-112f;
    const float denormalized = hs_bits_to_f32((two_w >> 17) | (126u << 23)) - 0.5f;
    const uint32_t result =
        sign | (two_w < (1u << 27) ? hs_f32_to_bits(denormalized) : hs_f32_to_bits(normalized));
    return hs_bits_to_f32(result);
}

/* Scaling up then down by powers of two makes the FPU do the rounding to 10
 * mantissa bits (nearest even) and saturate to infinity where it must. */
static inline hs_fp16 hs_f32_to_fp16(float f) {
    float base = (__builtin_fabsf(f) * 0x1.0p+112f) * 0x1.0p-110f;
    const uint32_t w = hs_f32_to_bits(f);
    const uint32_t shl1_w = w + w;
    const uint32_t sign = w & 0x80000000u;
    uint32_t bias = shl1_w & 0xFF000000u;
    if (bias < 0x71000000u)
        bias = 0x71000000u;
    base = hs_bits_to_f32((bias >> 1) + 0x07800000u) + base;
    const uint32_t bits = hs_f32_to_bits(base);
    const uint32_t exp_bits = (bits >> 13) & 0x00007C00u;
    const uint32_t mantissa_bits = bits & 0x00000FFFu;
    const uint32_t nonsign = exp_bits + mantissa_bits;
    return (hs_fp16)((sign >> 16) | (shl1_w > 0xFF000000u ? 0x7E00u : nonsign));
}

static inline float hs_bf16_to_f32(hs_bf16 h) { return hs_bits_to_f32((uint32_t)h << 16); }

static inline hs_bf16 hs_f32_to_bf16(float f) {
    uint32_t u = hs_f32_to_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (hs_bf16)((u >> 16) | 64); /* quiet NaN */
    return (hs_bf16)((u + (0x7fffu + ((u >> 16) & 1))) >> 16);
}

/* Table of all 65536 fp16 values as floats, filled once (thread-safe). */
const float *hs_fp16_table(void);

#endif
