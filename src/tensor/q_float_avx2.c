/* AVX2 (+FMA, F16C) kernels for F32, F16 and BF16 rows; see q_float.c. They
 * accumulate in float with several independent accumulators, so they agree
 * with the double-precision reference to rounding, not bit for bit. The F16
 * conversions are the F16C instructions, bit-exact with base/fp16.h except
 * for NaN payloads. */
#include "tensor/qtype_impl.h"

#include <immintrin.h>

static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline __m256 load_f16(const hs_fp16 *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }

static inline __m256 load_bf16(const hs_bf16 *p) {
    const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}

/* Weight rows stream from memory once per token: a software prefetch 4 KiB
 * ahead keeps the loads flowing across page boundaries, where the hardware
 * prefetcher stops (as in q_legacy_avx512.c). Only x, the weights, is
 * prefetched; prefetches past the end of the row never fault. */
#define PREFETCH_DIST 4096
static inline void prefetch_ahead(const void *p, size_t bytes) {
    const char *c = (const char *)p + PREFETCH_DIST;
    for (size_t o = 0; o < bytes; o += 64)
        _mm_prefetch(c + o, _MM_HINT_T1);
}

/* One dot-product body for the three element types: 32 elements per
 * iteration in four accumulators, then 8 at a time, then a scalar tail. */
#define FLOAT_DOT(T, LOAD, TO_F32)                                                                                \
    const T *a = x, *b = y;                                                                                       \
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();                                               \
    __m256 acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();                                               \
    int i = 0;                                                                                                    \
    for (; i + 32 <= n; i += 32) {                                                                                \
        prefetch_ahead(a + i, 32 * sizeof(T));                                                                    \
        acc0 = _mm256_fmadd_ps(LOAD(a + i), LOAD(b + i), acc0);                                                   \
        acc1 = _mm256_fmadd_ps(LOAD(a + i + 8), LOAD(b + i + 8), acc1);                                           \
        acc2 = _mm256_fmadd_ps(LOAD(a + i + 16), LOAD(b + i + 16), acc2);                                         \
        acc3 = _mm256_fmadd_ps(LOAD(a + i + 24), LOAD(b + i + 24), acc3);                                         \
    }                                                                                                             \
    for (; i + 8 <= n; i += 8)                                                                                    \
        acc0 = _mm256_fmadd_ps(LOAD(a + i), LOAD(b + i), acc0);                                                   \
    float sum = hsum256(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));                    \
    for (; i < n; i++)                                                                                            \
        sum += TO_F32(a[i]) * TO_F32(b[i]);                                                                       \
    *s = sum;

static inline float id_f32(float v) { return v; }

void hs_f32_vec_dot_avx2(int n, float *s, const void *x, const void *y) {
    FLOAT_DOT(float, _mm256_loadu_ps, id_f32)
}

void hs_f16_vec_dot_avx2(int n, float *s, const void *x, const void *y) {
    FLOAT_DOT(hs_fp16, load_f16, hs_fp16_to_f32)
}

void hs_bf16_vec_dot_avx2(int n, float *s, const void *x, const void *y) {
    FLOAT_DOT(hs_bf16, load_bf16, hs_bf16_to_f32)
}

void hs_f16_to_float_avx2(const void *x, float *y, int64_t n) {
    const hs_fp16 *h = x;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, load_f16(h + i));
    for (; i < n; i++)
        y[i] = hs_fp16_to_f32(h[i]);
}

void hs_f16_from_float_avx2(const float *x, void *y, int64_t n) {
    hs_fp16 *h = y;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(h + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++)
        h[i] = hs_f32_to_fp16(x[i]);
}

/* F16 tile: NR (<= 4) rows x NC (<= 3) tokens, 8 elements per step; 12
 * accumulators, 3 token vectors and one row vector fill the 16 registers. */
static inline __attribute__((always_inline)) void f16_tile(int n, float *s, size_t ldc, const uint8_t *x,
                                                             size_t bx, const uint8_t *y, size_t by, const int NR,
                                                             const int NC) {
    __m256 acc[4][3];
    for (int r = 0; r < NR; r++)
        for (int c = 0; c < NC; c++)
            acc[r][c] = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 yv[3];
        for (int c = 0; c < NC; c++)
            yv[c] = load_f16((const hs_fp16 *)(y + c * by) + i);
        for (int r = 0; r < NR; r++) {
            const __m256 xv = load_f16((const hs_fp16 *)(x + r * bx) + i);
            for (int c = 0; c < NC; c++)
                acc[r][c] = _mm256_fmadd_ps(xv, yv[c], acc[r][c]);
        }
    }
    for (int c = 0; c < NC; c++) {
        for (int r = 0; r < NR; r++) {
            const hs_fp16 *xr = (const hs_fp16 *)(x + r * bx), *yc = (const hs_fp16 *)(y + c * by);
            float sum = hsum256(acc[r][c]);
            for (int j = i; j < n; j++)
                sum += hs_fp16_to_f32(xr[j]) * hs_fp16_to_f32(yc[j]);
            s[c * ldc + r] = sum;
        }
    }
}

#define TILE_CASE(R, C)                                                                                           \
    case (R) * 8 + (C):                                                                                           \
        f16_tile(n, s, ldc, x, bx, y, by, R, C);                                                                  \
        break;

void hs_f16_gemm_avx2(int n, float *s, size_t ldc, const void *vx, size_t bx, const void *vy, size_t by, int nr,
                      int nc) {
    const uint8_t *x = vx, *y = vy;
    switch (nr * 8 + nc) {
        TILE_CASE(4, 3) TILE_CASE(4, 2) TILE_CASE(4, 1)
        TILE_CASE(3, 3) TILE_CASE(3, 2) TILE_CASE(3, 1)
        TILE_CASE(2, 3) TILE_CASE(2, 2) TILE_CASE(2, 1)
        TILE_CASE(1, 3) TILE_CASE(1, 2) TILE_CASE(1, 1)
    default:
        assert(0 && "gemm tile larger than declared");
    }
}
