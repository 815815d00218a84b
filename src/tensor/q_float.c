/* F32, F16 and BF16: one element per "block". The reference dot products
 * accumulate in double, as ggml's scalar path does, so that they are the most
 * accurate of the levels and the SIMD ones are checked against them. */
#include "tensor/qtype_impl.h"

#include <string.h>

void hs_f32_to_float(const void *x, float *y, int64_t n) { memcpy(y, x, (size_t)n * sizeof(float)); }

void hs_f32_from_float_ref(const float *x, void *y, int64_t n) { memcpy(y, x, (size_t)n * sizeof(float)); }

void hs_f32_vec_dot_ref(int n, float *s, const void *x, const void *y) {
    const float *a = x, *b = y;
    double sum = 0.0;
    for (int i = 0; i < n; i++)
        sum += (double)a[i] * (double)b[i];
    *s = (float)sum;
}

void hs_f16_to_float(const void *x, float *y, int64_t n) {
    const hs_fp16 *h = x;
    for (int64_t i = 0; i < n; i++)
        y[i] = hs_fp16_to_f32(h[i]);
}

void hs_f16_from_float_ref(const float *x, void *y, int64_t n) {
    hs_fp16 *h = y;
    for (int64_t i = 0; i < n; i++)
        h[i] = hs_f32_to_fp16(x[i]);
}

void hs_f16_vec_dot_ref(int n, float *s, const void *x, const void *y) {
    const hs_fp16 *a = x, *b = y;
    double sum = 0.0;
    for (int i = 0; i < n; i++)
        sum += (double)hs_fp16_to_f32(a[i]) * (double)hs_fp16_to_f32(b[i]);
    *s = (float)sum;
}

void hs_bf16_to_float(const void *x, float *y, int64_t n) {
    const hs_bf16 *h = x;
    for (int64_t i = 0; i < n; i++)
        y[i] = hs_bf16_to_f32(h[i]);
}

void hs_bf16_from_float_ref(const float *x, void *y, int64_t n) {
    hs_bf16 *h = y;
    for (int64_t i = 0; i < n; i++)
        h[i] = hs_f32_to_bf16(x[i]);
}

void hs_bf16_vec_dot_ref(int n, float *s, const void *x, const void *y) {
    const hs_bf16 *a = x, *b = y;
    double sum = 0.0;
    for (int i = 0; i < n; i++)
        sum += (double)hs_bf16_to_f32(a[i]) * (double)hs_bf16_to_f32(b[i]);
    *s = (float)sum;
}
