/* AVX-512 (F, BW, VL, VNNI) kernels for the legacy quants; see q_legacy.c for
 * the formats and the reference kernels these are tested against.
 *
 * Dot products use VNNI's vpdpbusd, which multiplies unsigned by signed
 * bytes. A signed weight block x meets a signed activation block y in one of
 * two ways:
 *  - the sign trick (vec_dot): |x| . (y * sign(x)), one block at a time;
 *  - the offset trick (gemm): (y + 128) . x = x . y + 128 * sum(x). The
 *    activation is offset once per token and reused by every weight row of the
 *    tile; 128 * sum(x) is computed once per weight row and handed to vpdpbusd
 *    negated as its accumulator, so each row x token pair costs one vpdpbusd.
 * The integer sums are exact; they are scaled by d_x * d_y in float, like the
 * reference, but accumulated in a different order, so results agree with the
 * reference to rounding, not bit for bit. The quantizers are bit-exact. */
#include "tensor/qtype_impl.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float h2f(hs_fp16 h) { return _cvtsh_ss(h); }

/* Exact sum of x[j] * y[j] over 32 signed bytes, as 8 int32 lanes. */
static inline __m256i dot32(__m256i x, __m256i y) {
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_abs_epi8(x), _mm256_sign_epi8(y, x));
}

/* Exact sum of x[j] * y[j] with x unsigned (0..255), y signed. */
static inline __m256i dot32u(__m256i x, __m256i y) { return _mm256_dpbusd_epi32(_mm256_setzero_si256(), x, y); }

/* The 32 4-bit values of a q4 block, in element order: low nibbles are
 * elements 0-15, high nibbles 16-31. */
static inline __m256i unpack_nibbles(const uint8_t *qs) {
    const __m128i q = _mm_loadu_si128((const __m128i *)qs);
    const __m256i both = _mm256_inserti128_si256(_mm256_castsi128_si256(q), _mm_srli_epi16(q, 4), 1);
    return _mm256_and_si256(both, _mm256_set1_epi8(0x0f));
}

/* Bit 4 of each element of a q5 block: 0x10 where bit j of qh is set. */
static inline __m256i unpack_high_bits(const uint8_t qh[4]) {
    uint32_t h;
    memcpy(&h, qh, 4);
    return _mm256_maskz_mov_epi8((__mmask32)h, _mm256_set1_epi8(0x10));
}

/* ------------------------------------------------------------ vec_dot -- */

/* Two blocks per zmm: bytes 0-31 hold block i, 32-63 block i + 1, so the
 * 8 int32 lanes of each half are one block's partial sums and the scale
 * vector is [d_i x8, d_i+1 x8]. A lone last block goes through the 256-bit
 * one-block path. */

/* [h_i x8, h_i+1 x8] as floats, from the halves at the start of two blocks
 * `words` 16-bit words apart; the masked load reads only those two blocks. */
static inline __m512 halves2(const void *p, int words) {
    const __m512i idx = _mm512_mask_blend_epi16(0xff00, _mm512_setzero_si512(), _mm512_set1_epi16((short)words));
    const __m512i w = _mm512_maskz_loadu_epi16((__mmask32)((1u << (words + 1)) - 1), p);
    return _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutexvar_epi16(idx, w)));
}

/* The 64 quants of two blocks whose qs are `stride` bytes apart. */
static inline __m512i bytes2(const int8_t *qs, size_t stride) {
    const __m256i lo = _mm256_loadu_si256((const __m256i *)qs);
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), _mm256_loadu_si256((const __m256i *)(qs + stride)), 1);
}

/* The 4-bit values of two q4/q5 blocks in element order (see unpack_nibbles). */
static inline __m512i nibbles2(const uint8_t *qs, size_t stride) {
    const __m128i a = _mm_loadu_si128((const __m128i *)qs), b = _mm_loadu_si128((const __m128i *)(qs + stride));
    const __m256i t = _mm256_inserti128_si256(_mm256_castsi128_si256(a), b, 1);
    /* [lo_i, lo_i+1, hi_i, hi_i+1] -> [lo_i, hi_i, lo_i+1, hi_i+1] */
    const __m512i z = _mm512_and_si512(_mm512_inserti64x4(_mm512_castsi256_si512(t), _mm256_srli_epi16(t, 4), 1),
                                       _mm512_set1_epi8(0x0f));
    return _mm512_permutexvar_epi64(_mm512_setr_epi64(0, 1, 4, 5, 2, 3, 6, 7), z);
}

/* Bit 4 of the elements of two q5 blocks whose qh are `stride` bytes apart. */
static inline __m512i high_bits2(const uint8_t *qh, size_t stride) {
    uint32_t a, b;
    memcpy(&a, qh, 4);
    memcpy(&b, qh + stride, 4);
    return _mm512_maskz_mov_epi8((__mmask64)a | ((__mmask64)b << 32), _mm512_set1_epi8(0x10));
}

/* Signed x . signed y over 64 bytes by the sign trick. */
static inline __m512i dot64(__m512i x, __m512i y) {
    const __m512i sy = _mm512_mask_sub_epi8(y, _mm512_movepi8_mask(x), _mm512_setzero_si512(), y);
    return _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_abs_epi8(x), sy);
}

/* (u - bias) . y for unsigned u: u . y - bias * sum(y), two vpdpbusd. */
static inline __m512i dot64_biased(__m512i u, __m512i y, char bias) {
    const __m512i uy = _mm512_dpbusd_epi32(_mm512_setzero_si512(), u, y);
    return _mm512_sub_epi32(uy, _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(bias), y));
}

/* Generation streams each weight row from memory once: asking for the lines
 * 4 KiB ahead keeps enough loads in flight to run near the memory's speed,
 * where the hardware prefetcher alone stalls at page boundaries (measured on
 * the K-quants: ~6 -> ~11 GB/s per core). */
#define PREFETCH_DIST 4096
static inline void prefetch_ahead(const void *p, size_t bytes) {
    const char *c = (const char *)p + PREFETCH_DIST;
    for (size_t o = 0; o < bytes; o += 64)
        _mm_prefetch(c + o, _MM_HINT_T1);
}

#define VEC_DOT_LOOP(XT, YT, INT_DOT2, INT_DOT)                                                                   \
    const XT *x = vx;                                                                                             \
    const YT *y = vy;                                                                                             \
    const int nb = n / 32;                                                                                        \
    const size_t bx = sizeof(XT), by = sizeof(YT);                                                                \
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();                                               \
    int i = 0;                                                                                                    \
    for (; i + 2 <= nb; i += 2) {                                                                                 \
        const XT *xb = &x[i];                                                                                     \
        const YT *yb = &y[i];                                                                                     \
        prefetch_ahead(xb, 2 * bx);                                                                               \
        const __m512 d = _mm512_mul_ps(halves2(xb, (int)(bx / 2)), halves2(yb, (int)(by / 2)));                  \
        const __m512 p = _mm512_cvtepi32_ps(INT_DOT2);                                                            \
        if (i & 2)                                                                                                \
            acc1 = _mm512_fmadd_ps(p, d, acc1);                                                                   \
        else                                                                                                      \
            acc0 = _mm512_fmadd_ps(p, d, acc0);                                                                   \
    }                                                                                                             \
    float sum = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));                                                  \
    if (i < nb) {                                                                                                 \
        const XT *xb = &x[i];                                                                                     \
        const YT *yb = &y[i];                                                                                     \
        const __m256 p = _mm256_cvtepi32_ps(INT_DOT);                                                             \
        sum += hsum256(_mm256_mul_ps(p, _mm256_set1_ps(h2f(xb->d) * h2f(yb->d))));                               \
    }

#define LOADY(yb) _mm256_loadu_si256((const __m256i *)(yb)->qs)

void hs_q8_0_vec_dot_avx512(int n, float *s, const void *vx, const void *vy) {
    VEC_DOT_LOOP(hs_block_q8_0, hs_block_q8_0, dot64(bytes2(xb->qs, bx), bytes2(yb->qs, by)),
                 dot32(_mm256_loadu_si256((const __m256i *)xb->qs), LOADY(yb)))
    *s = sum;
}

void hs_q8_1_vec_dot_avx512(int n, float *s, const void *vx, const void *vy) {
    VEC_DOT_LOOP(hs_block_q8_1, hs_block_q8_1, dot64(bytes2(xb->qs, bx), bytes2(yb->qs, by)),
                 dot32(_mm256_loadu_si256((const __m256i *)xb->qs), LOADY(yb)))
    *s = sum;
}

void hs_q4_0_vec_dot_avx512(int n, float *s, const void *vx, const void *vy) {
    VEC_DOT_LOOP(hs_block_q4_0, hs_block_q8_0, dot64_biased(nibbles2(xb->qs, bx), bytes2(yb->qs, by), 8),
                 dot32(_mm256_sub_epi8(unpack_nibbles(xb->qs), _mm256_set1_epi8(8)), LOADY(yb)))
    *s = sum;
}

void hs_q5_0_vec_dot_avx512(int n, float *s, const void *vx, const void *vy) {
    VEC_DOT_LOOP(hs_block_q5_0, hs_block_q8_0,
                 dot64_biased(_mm512_or_si512(nibbles2(xb->qs, bx), high_bits2(xb->qh, bx)), bytes2(yb->qs, by), 16),
                 dot32(_mm256_sub_epi8(_mm256_or_si256(unpack_nibbles(xb->qs), unpack_high_bits(xb->qh)),
                                       _mm256_set1_epi8(16)),
                       LOADY(yb)))
    *s = sum;
}

/* The _1 types add m * s per block: a scalar sum beside the vector one. */
void hs_q4_1_vec_dot_avx512(int n, float *s, const void *vx, const void *vy) {
    VEC_DOT_LOOP(hs_block_q4_1, hs_block_q8_1,
                 _mm512_dpbusd_epi32(_mm512_setzero_si512(), nibbles2(xb->qs, bx), bytes2(yb->qs, by)),
                 dot32u(unpack_nibbles(xb->qs), LOADY(yb)))
    float ms = 0.0f;
    for (int b = 0; b < nb; b++)
        ms += h2f(x[b].m) * h2f(y[b].s);
    *s = sum + ms;
}

void hs_q5_1_vec_dot_avx512(int n, float *s, const void *vx, const void *vy) {
    VEC_DOT_LOOP(hs_block_q5_1, hs_block_q8_1,
                 _mm512_dpbusd_epi32(_mm512_setzero_si512(),
                                     _mm512_or_si512(nibbles2(xb->qs, bx), high_bits2(xb->qh, bx)),
                                     bytes2(yb->qs, by)),
                 dot32u(_mm256_or_si256(unpack_nibbles(xb->qs), unpack_high_bits(xb->qh)), LOADY(yb)))
    float ms = 0.0f;
    for (int b = 0; b < nb; b++)
        ms += h2f(x[b].m) * h2f(y[b].s);
    *s = sum + ms;
}

/* ------------------------------------------------------------ quantizers -- */

/* roundf: to nearest, ties away from zero (the SIMD rounding modes only tie
 * to even). v - trunc(v) is exact, so comparing it with 0.5 decides ties
 * exactly as roundf does. */
static inline __m512 round_away(__m512 v) {
    const __m512 t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m512 frac = _mm512_abs_ps(_mm512_sub_ps(v, t));
    const __mmask16 up = _mm512_cmp_ps_mask(frac, _mm512_set1_ps(0.5f), _CMP_GE_OQ);
    const __m512 one = _mm512_or_ps(_mm512_set1_ps(1.0f), _mm512_and_ps(v, _mm512_set1_ps(-0.0f)));
    return _mm512_mask_add_ps(t, up, t, one);
}

/* One block of 32 floats to d and 32 int8 as the reference does it; returns
 * the sum of the quants (for q8_1) and the float d through *dout. */
static inline int quant_block32(const float *x, hs_fp16 *dh, float *dout, int8_t *qs) {
    const __m512 a = _mm512_loadu_ps(x), b = _mm512_loadu_ps(x + 16);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(a), _mm512_abs_ps(b)));
    const float d = amax / 127.0f;
    const float id = d ? 1.0f / d : 0.0f;
    *dh = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
    *dout = d;
    const __m512 vid = _mm512_set1_ps(id);
    const __m512i qa = _mm512_cvttps_epi32(round_away(_mm512_mul_ps(a, vid)));
    const __m512i qb = _mm512_cvttps_epi32(round_away(_mm512_mul_ps(b, vid)));
    _mm_storeu_si128((__m128i *)qs, _mm512_cvtepi32_epi8(qa));
    _mm_storeu_si128((__m128i *)(qs + 16), _mm512_cvtepi32_epi8(qb));
    return _mm512_reduce_add_epi32(_mm512_add_epi32(qa, qb));
}

void hs_q8_0_from_float_avx512(const float *x, void *vy, int64_t n) {
    hs_block_q8_0 *y = vy;
    float d;
    for (int64_t i = 0; i < n / HS_QK8_0; i++)
        quant_block32(x + i * HS_QK8_0, &y[i].d, &d, y[i].qs);
}

void hs_q8_1_from_float_avx512(const float *x, void *vy, int64_t n) {
    hs_block_q8_1 *y = vy;
    float d;
    for (int64_t i = 0; i < n / HS_QK8_1; i++) {
        const int sum = quant_block32(x + i * HS_QK8_1, &y[i].d, &d, y[i].qs);
        y[i].s = _cvtss_sh((float)sum * d, _MM_FROUND_TO_NEAREST_INT);
    }
}

/* ----------------------------------------------------------------- gemm -- */

/* Q8_0 x Q8_0 tile, NR weight rows x NC tokens, two blocks (64 values) per
 * step in one zmm: lanes 0-7 hold block k's partial sums, lanes 8-15 block
 * k+1's, and the scale vectors are laid out the same way. */
static const int16_t k_lane_half[32] = {0, 0, 0, 0, 0, 0, 0, 0, 17, 17, 17, 17, 17, 17, 17, 17};

/* The scales of blocks k and k + 1 (the halves at bytes 0 and 34 of p) as
 * [d_k x8, d_k+1 x8]: one 64-byte load, a word permute and a conversion.
 * The load stays inside the two blocks (68 bytes); for a lone last block
 * only its own half is read and d_k+1 comes out 0. */
static inline __m512 scales2(const uint8_t *p, int two, __m512i idx) {
    const __m512i w = two ? _mm512_loadu_si512(p) : _mm512_maskz_loadu_epi16(1, p);
    return _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutexvar_epi16(idx, w)));
}

/* 64 quants: qs of block k and of block k + 1 (34 bytes further). When
 * `two` is false the upper half is zero, which adds nothing to any sum. */
static inline __m512i load2(const uint8_t *qs, int two) {
    const __m256i lo = _mm256_loadu_si256((const __m256i *)qs);
    if (!two)
        return _mm512_zextsi256_si512(lo);
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), _mm256_loadu_si256((const __m256i *)(qs + 34)), 1);
}

static inline __attribute__((always_inline)) void q8_0_tile(int n, float *s, size_t ldc, const uint8_t *x,
                                                              size_t bx, const uint8_t *y, size_t by, const int NR,
                                                              const int NC) {
    const int nb = n / HS_QK8_0;
    const __m512i idx = _mm512_loadu_si512(k_lane_half);
    const __m512i off = _mm512_set1_epi8((char)0x80);
    __m512 acc[4][4];
    for (int r = 0; r < NR; r++)
        for (int c = 0; c < NC; c++)
            acc[r][c] = _mm512_setzero_ps();
    for (int k = 0; k < nb; k += 2) {
        const int two = k + 1 < nb;
        const size_t o = (size_t)k * sizeof(hs_block_q8_0);
        __m512i xv[4], negc[4];
        __m512 dx[4];
        for (int r = 0; r < NR; r++) {
            const uint8_t *xb = x + r * bx + o;
            xv[r] = load2(xb + 2, two);
            negc[r] = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(), off, xv[r]));
            dx[r] = scales2(xb, two, idx);
        }
        for (int c = 0; c < NC; c++) {
            const uint8_t *yb = y + c * by + o;
            const __m512i yu = _mm512_xor_si512(load2(yb + 2, two), off);
            const __m512 dy = scales2(yb, two, idx);
            for (int r = 0; r < NR; r++) {
                const __m512 p = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_dpbusd_epi32(negc[r], yu, xv[r])), dy);
                acc[r][c] = _mm512_fmadd_ps(p, dx[r], acc[r][c]);
            }
        }
    }
    for (int c = 0; c < NC; c++)
        for (int r = 0; r < NR; r++)
            s[c * ldc + r] = _mm512_reduce_add_ps(acc[r][c]);
}

#define TILE_CASE(R, C)                                                                                           \
    case (R) * 8 + (C):                                                                                           \
        q8_0_tile(n, s, ldc, x, bx, y, by, R, C);                                                                 \
        break;

void hs_q8_0_gemm_avx512(int n, float *s, size_t ldc, const void *vx, size_t bx, const void *vy, size_t by, int nr,
                         int nc) {
    const uint8_t *x = vx, *y = vy;
    switch (nr * 8 + nc) {
        TILE_CASE(4, 4) TILE_CASE(4, 3) TILE_CASE(4, 2) TILE_CASE(4, 1)
        TILE_CASE(3, 4) TILE_CASE(3, 3) TILE_CASE(3, 2) TILE_CASE(3, 1)
        TILE_CASE(2, 4) TILE_CASE(2, 3) TILE_CASE(2, 2) TILE_CASE(2, 1)
        TILE_CASE(1, 4) TILE_CASE(1, 3) TILE_CASE(1, 2) TILE_CASE(1, 1)
    default:
        assert(0 && "gemm tile larger than declared");
    }
}
