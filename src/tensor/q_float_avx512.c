/* AVX-512 kernels for F32, F16 and BF16 rows; see q_float.c. Tails are
 * handled with masked loads, so every length runs in the vector loop. BF16
 * dot products use AVX512_BF16's vdpbf16ps: the bf16 x bf16 products are
 * exact in float, but the instruction treats subnormal inputs as zero, one of
 * the reasons these agree with the double-precision reference to a
 * tolerance rather than bit for bit. */
#include "tensor/qtype_impl.h"

#include <immintrin.h>

static inline __m512 load_f32(const float *p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); }

static inline __m512 load_f16(const hs_fp16 *p, __mmask16 m) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
}

static inline __mmask16 tail_mask(int left) { return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1); }

#define FLOAT_DOT(T, LOAD)                                                                                        \
    const T *a = x, *b = y;                                                                                       \
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();                                               \
    __m512 acc2 = _mm512_setzero_ps(), acc3 = _mm512_setzero_ps();                                               \
    int i = 0;                                                                                                    \
    for (; i + 64 <= n; i += 64) {                                                                                \
        acc0 = _mm512_fmadd_ps(LOAD(a + i, 0xffff), LOAD(b + i, 0xffff), acc0);                                   \
        acc1 = _mm512_fmadd_ps(LOAD(a + i + 16, 0xffff), LOAD(b + i + 16, 0xffff), acc1);                         \
        acc2 = _mm512_fmadd_ps(LOAD(a + i + 32, 0xffff), LOAD(b + i + 32, 0xffff), acc2);                         \
        acc3 = _mm512_fmadd_ps(LOAD(a + i + 48, 0xffff), LOAD(b + i + 48, 0xffff), acc3);                         \
    }                                                                                                             \
    for (; i < n; i += 16) {                                                                                      \
        const __mmask16 m = tail_mask(n - i);                                                                     \
        acc0 = _mm512_fmadd_ps(LOAD(a + i, m), LOAD(b + i, m), acc0);                                             \
    }                                                                                                             \
    *s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc0, acc1), _mm512_add_ps(acc2, acc3)));

void hs_f32_vec_dot_avx512(int n, float *s, const void *x, const void *y) { FLOAT_DOT(float, load_f32) }

void hs_f16_vec_dot_avx512(int n, float *s, const void *x, const void *y) { FLOAT_DOT(hs_fp16, load_f16) }

/* 32 bf16 pairs per vdpbf16ps; the masked tail loads zeros past n. */
void hs_bf16_vec_dot_avx512(int n, float *s, const void *x, const void *y) {
    const hs_bf16 *a = x, *b = y;
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int i = 0;
    for (; i + 64 <= n; i += 64) {
        acc0 = _mm512_dpbf16_ps(acc0, (__m512bh)_mm512_loadu_si512(a + i), (__m512bh)_mm512_loadu_si512(b + i));
        acc1 = _mm512_dpbf16_ps(acc1, (__m512bh)_mm512_loadu_si512(a + i + 32),
                                (__m512bh)_mm512_loadu_si512(b + i + 32));
    }
    for (; i < n; i += 32) {
        const int left = n - i;
        const __mmask32 m = left >= 32 ? (__mmask32)0xffffffffu : (__mmask32)((1u << left) - 1);
        acc0 = _mm512_dpbf16_ps(acc0, (__m512bh)_mm512_maskz_loadu_epi16(m, a + i),
                                (__m512bh)_mm512_maskz_loadu_epi16(m, b + i));
    }
    *s = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

/* The reference rounding in integer arithmetic (round to nearest even, quiet
 * NaN), so it is bit-exact with base/fp16.h, subnormals included, which
 * vcvtneps2bf16 would flush. */
void hs_bf16_from_float_avx512(const float *x, void *y, int64_t n) {
    hs_bf16 *h = y;
    const __m512i abs_mask = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000);
    for (int64_t i = 0; i < n; i += 16) {
        const int64_t left = n - i;
        const __mmask16 m = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
        const __m512i u = _mm512_castps_si512(_mm512_maskz_loadu_ps(m, x + i));
        const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, abs_mask), inf);
        const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
        __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
        r = _mm512_mask_or_epi32(r, nan, _mm512_srli_epi32(u, 16), _mm512_set1_epi32(64));
        _mm256_mask_storeu_epi16(h + i, m, _mm512_cvtepi32_epi16(r));
    }
}

/* Tiles: NR (<= 4) rows x NC (<= 6) tokens, 16 elements per step, 24
 * accumulators; the main loop loads whole vectors, the last partial step is
 * masked. */
#define TILE_STEP(T, LOAD, M)                                                                                     \
    do {                                                                                                          \
        __m512 xv[4];                                                                                             \
        for (int r = 0; r < NR; r++)                                                                              \
            xv[r] = LOAD((const T *)(x + r * bx) + i, M);                                                         \
        for (int c = 0; c < NC; c++) {                                                                            \
            const __m512 yv = LOAD((const T *)(y + c * by) + i, M);                                               \
            for (int r = 0; r < NR; r++)                                                                          \
                acc[r][c] = _mm512_fmadd_ps(xv[r], yv, acc[r][c]);                                               \
        }                                                                                                         \
    } while (0)

#define FLOAT_TILE(NAME, T, LOAD, LOAD_FULL)                                                                      \
    static inline __attribute__((always_inline)) void NAME(int n, float *s, size_t ldc, const uint8_t *x,        \
                                                           size_t bx, const uint8_t *y, size_t by, const int NR,  \
                                                           const int NC) {                                        \
        __m512 acc[4][6];                                                                                         \
        for (int r = 0; r < NR; r++)                                                                              \
            for (int c = 0; c < NC; c++)                                                                          \
                acc[r][c] = _mm512_setzero_ps();                                                                  \
        int i = 0;                                                                                                \
        for (; i + 16 <= n; i += 16)                                                                              \
            TILE_STEP(T, LOAD_FULL, 0xffff);                                                                      \
        if (i < n) {                                                                                              \
            const __mmask16 m = tail_mask(n - i);                                                                 \
            TILE_STEP(T, LOAD, m);                                                                                \
        }                                                                                                         \
        for (int c = 0; c < NC; c++)                                                                              \
            for (int r = 0; r < NR; r++)                                                                          \
                s[c * ldc + r] = _mm512_reduce_add_ps(acc[r][c]);                                                 \
    }

static inline __m512 load_f32_full(const float *p, __mmask16 m) {
    (void)m;
    return _mm512_loadu_ps(p);
}

static inline __m512 load_f16_full(const hs_fp16 *p, __mmask16 m) {
    (void)m;
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}

FLOAT_TILE(f32_tile, float, load_f32, load_f32_full)
FLOAT_TILE(f16_tile, hs_fp16, load_f16, load_f16_full)

#define TILE_CASES(FN)                                                                                            \
    switch (nr * 8 + nc) {                                                                                        \
        TILE_CASE(FN, 4) TILE_CASE(FN, 3) TILE_CASE(FN, 2) TILE_CASE(FN, 1)                                       \
    default:                                                                                                      \
        assert(0 && "gemm tile larger than declared");                                                           \
    }
#define TILE_CASE(FN, R)                                                                                          \
    case (R) * 8 + 6:                                                                                             \
        FN(n, s, ldc, x, bx, y, by, R, 6);                                                                        \
        break;                                                                                                    \
    case (R) * 8 + 5:                                                                                             \
        FN(n, s, ldc, x, bx, y, by, R, 5);                                                                        \
        break;                                                                                                    \
    case (R) * 8 + 4:                                                                                             \
        FN(n, s, ldc, x, bx, y, by, R, 4);                                                                        \
        break;                                                                                                    \
    case (R) * 8 + 3:                                                                                             \
        FN(n, s, ldc, x, bx, y, by, R, 3);                                                                        \
        break;                                                                                                    \
    case (R) * 8 + 2:                                                                                             \
        FN(n, s, ldc, x, bx, y, by, R, 2);                                                                        \
        break;                                                                                                    \
    case (R) * 8 + 1:                                                                                             \
        FN(n, s, ldc, x, bx, y, by, R, 1);                                                                        \
        break;

void hs_f32_gemm_avx512(int n, float *s, size_t ldc, const void *vx, size_t bx, const void *vy, size_t by, int nr,
                        int nc) {
    const uint8_t *x = vx, *y = vy;
    TILE_CASES(f32_tile)
}

void hs_f16_gemm_avx512(int n, float *s, size_t ldc, const void *vx, size_t bx, const void *vy, size_t by, int nr,
                        int nc) {
    const uint8_t *x = vx, *y = vy;
    TILE_CASES(f16_tile)
}
