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

/* Weight rows stream from memory once per token: a software prefetch 4 KiB
 * ahead keeps the loads flowing across page boundaries, where the hardware
 * prefetcher stops (as in q_legacy_avx512.c). Only x, the weights, is
 * prefetched; y, the activations, stays in cache. Prefetches past the end
 * of the row are harmless (they never fault). */
#define PREFETCH_DIST 4096
static inline void prefetch_ahead(const void *p, size_t bytes) {
    const char *c = (const char *)p + PREFETCH_DIST;
    for (size_t o = 0; o < bytes; o += 64)
        _mm_prefetch(c + o, _MM_HINT_T1);
}

static inline __mmask16 tail_mask(int left) { return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1); }

#define FLOAT_DOT(T, LOAD)                                                                                        \
    const T *a = x, *b = y;                                                                                       \
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();                                               \
    __m512 acc2 = _mm512_setzero_ps(), acc3 = _mm512_setzero_ps();                                               \
    int i = 0;                                                                                                    \
    for (; i + 64 <= n; i += 64) {                                                                                \
        prefetch_ahead(a + i, 64 * sizeof(T));                                                                    \
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
        prefetch_ahead(a + i, 128);
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

FLOAT_TILE(f32_tile, float, load_f32, load_f32_full)

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

/* F16 tile: up to F16_TR rows x F16_TC tokens. Converting halves costs two
 * uops on the FMA ports, so converting both operands for every FMA (a plain
 * register tile) leaves the FMA units idle half the time. Instead, each
 * slice of F16_KB elements of all the tile's rows and tokens is converted to
 * float once, into buffers that stay in L1, and a 4 x 6 register tile sweeps
 * them (10 loads per 24 FMAs): about one conversion per 7 FMAs. The partial
 * sums (one vector per row x token) wait on the stack between slices; rows
 * and tokens past nr, nc are zeros, rounded up to the register tile. Sizes
 * measured on 2048-wide rows: 256 x 16 x 12 beat 128-element slices and
 * 16 x 16, 16 x 18, 24 x 12 tiles. */
#define F16_KB 256
#define F16_TR 16
#define F16_TC 12
#define F16_MR 4 /* register tile */
#define F16_MC 6

static inline __attribute__((always_inline)) void f16_micro(__m512 *acc, const float *wf, const float *yf,
                                                              int steps) {
    __m512 a[F16_MR][F16_MC];
    _Pragma("GCC unroll 8") for (int r = 0; r < F16_MR; r++)
        _Pragma("GCC unroll 8") for (int c = 0; c < F16_MC; c++)
            a[r][c] = acc[r * F16_TC + c];
    for (int j = 0; j < steps; j++) {
        __m512 wv[F16_MR];
        _Pragma("GCC unroll 8") for (int r = 0; r < F16_MR; r++)
            wv[r] = _mm512_load_ps(wf + r * F16_KB + 16 * j);
        _Pragma("GCC unroll 8") for (int c = 0; c < F16_MC; c++) {
            const __m512 yv = _mm512_load_ps(yf + c * F16_KB + 16 * j);
            _Pragma("GCC unroll 8") for (int r = 0; r < F16_MR; r++)
                a[r][c] = _mm512_fmadd_ps(wv[r], yv, a[r][c]);
        }
    }
    _Pragma("GCC unroll 8") for (int r = 0; r < F16_MR; r++)
        _Pragma("GCC unroll 8") for (int c = 0; c < F16_MC; c++)
            acc[r * F16_TC + c] = a[r][c];
}

static inline __m512 load_bf16(const hs_bf16 *p, __mmask16 m) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
}

/* Rows [0, nr) of x (stride bx) from element k0, len elements, to float;
 * lanes past len are zeros. */
#define HALF_SLICE(NAME, T, LOAD)                                                                                 \
    static inline void NAME(float *out, const uint8_t *x, size_t bx, int nr, int k0, int len) {                  \
        for (int r = 0; r < nr; r++) {                                                                            \
            const T *p = (const T *)(x + r * bx) + k0;                                                            \
            for (int j = 0; j < len; j += 16)                                                                     \
                _mm512_store_ps(out + r * F16_KB + j, LOAD(p + j, tail_mask(len - j)));                           \
        }                                                                                                         \
    }
HALF_SLICE(f16_slice, hs_fp16, load_f16)
HALF_SLICE(bf16_slice, hs_bf16, load_bf16)

static inline __attribute__((always_inline)) void half_gemm(int n, float *s, size_t ldc, const uint8_t *x, size_t bx,
                                                             const uint8_t *y, size_t by, int nr, int nc,
                                                             const bool bf16) {
    assert(nr <= F16_TR && nc <= F16_TC);
    const int nr4 = (nr + F16_MR - 1) / F16_MR * F16_MR, nc4 = (nc + F16_MC - 1) / F16_MC * F16_MC;
    _Alignas(64) float wf[F16_TR * F16_KB];
    _Alignas(64) float yf[F16_TC * F16_KB];
    __m512 acc[F16_TR * F16_TC];
    for (int r = 0; r < nr4; r++)
        for (int c = 0; c < nc4; c++)
            acc[r * F16_TC + c] = _mm512_setzero_ps();
    /* Padding rows and tokens are never written by f16_slice. */
    for (int r = nr; r < nr4; r++)
        for (int j = 0; j < F16_KB; j += 16)
            _mm512_store_ps(wf + r * F16_KB + j, _mm512_setzero_ps());
    for (int c = nc; c < nc4; c++)
        for (int j = 0; j < F16_KB; j += 16)
            _mm512_store_ps(yf + c * F16_KB + j, _mm512_setzero_ps());
    for (int k0 = 0; k0 < n; k0 += F16_KB) {
        const int len = n - k0 < F16_KB ? n - k0 : F16_KB, steps = (len + 15) / 16;
        if (bf16) {
            bf16_slice(wf, x, bx, nr, k0, len);
            bf16_slice(yf, y, by, nc, k0, len);
        } else {
            f16_slice(wf, x, bx, nr, k0, len);
            f16_slice(yf, y, by, nc, k0, len);
        }
        for (int r = 0; r < nr4; r += F16_MR)
            for (int c = 0; c < nc4; c += F16_MC)
                f16_micro(acc + r * F16_TC + c, wf + r * F16_KB, yf + c * F16_KB, steps);
    }
    for (int c = 0; c < nc; c++)
        for (int r = 0; r < nr; r++)
            s[c * ldc + r] = _mm512_reduce_add_ps(acc[r * F16_TC + c]);
}

void hs_f16_gemm_avx512(int n, float *s, size_t ldc, const void *x, size_t bx, const void *y, size_t by, int nr,
                        int nc) {
    half_gemm(n, s, ldc, x, bx, y, by, nr, nc, false);
}

/* BF16 the same way: widening to float is exact and cheap, and float FMAs
 * from L1 measured faster here than vdpbf16ps straight from the rows (which
 * would also flush subnormals). */
void hs_bf16_gemm_avx512(int n, float *s, size_t ldc, const void *x, size_t bx, const void *y, size_t by, int nr,
                         int nc) {
    half_gemm(n, s, ldc, x, bx, y, by, nr, nc, true);
}

