/* Internal to q_k_avx512.c and q_k_gemm_avx512.c (built with AVX-512 flags):
 * unpacking K-quant blocks into registers for VNNI dot products.
 *
 * Cost model (measured on this project's Xeon): with 512-bit instructions in
 * flight only ports 0 and 5 execute vector uops. vpmaddubsw, vpmaddwd,
 * vpdpwssd, vpdpbusd, logic and adds issue on both (2 per cycle); shuffles,
 * permutes, packs and variable shifts on one (measured throughputs); loads,
 * broadcast loads included, and stores use other ports. So the kernels
 * count vector uops:
 *  - levels are unpacked to unsigned bytes u in element order, 64 per zmm;
 *  - P = vpdpbusd(0, u, y) holds per 32-bit lane the sum of 4 products of
 *    one sub-block, at most 4 * 63 * 127 = 32004 in magnitude, so two P
 *    vectors pack losslessly into int16 (vpackssdw), and one vpdpwssd applies
 *    the sub-block scales to both while it accumulates: 4 uops per 128
 *    multiply-adds with the scales included. (vpmaddubsw + vpdpwssd has the
 *    same count on paper and measured slower.)
 * The packed order (per 128-bit lane: 4 lanes of the first vector, then 4 of
 * the second) decides the scale vectors, built once per block by vpermw. */
#ifndef HS_TENSOR_Q_K_AVX512_IMPL_H
#define HS_TENSOR_Q_K_AVX512_IMPL_H

#include "tensor/qtype_impl.h"

#include <immintrin.h>
#include <string.h>

/* Loops over register-sized pieces must be unrolled, or GCC keeps the pieces
 * in a stack array. */
#define QK_UNROLL(n) _Pragma(QK_STR(GCC unroll n))
#define QK_STR(x) #x

static inline __m512i qk_load512(const void *p)
{
    return _mm512_loadu_si512(p);
}
static inline __m256i qk_load256(const void *p)
{
    return _mm256_loadu_si256((const __m256i *)p);
}

/* 32 bytes at p in both halves of a zmm: one load uop, no shuffle. */
static inline __m512i qk_bcast256(const void *p)
{
    return _mm512_broadcast_i64x4(qk_load256(p));
}

/* The 16 bsums of a Q8_K block (measured: ymm forms beat a masked zmm load). */
static inline __m256i qk_bsums(const hs_block_q8_k *q)
{
    return qk_load256(q->bsums);
}

/* vpermw indices (compile-time constants) for a packed pair of 64-weight
 * vectors, as int16 positions into the block's scales. In 128-bit lane L the
 * first 4 int16 come from lanes 4L..4L+3 of the first vector's P, that is its
 * weights 16L..16L+15, the next 4 from the second's. With 16-weight
 * sub-blocks those have scale a0 + L (b0 + L): QK_IDX16(a0, b0); with
 * 32-weight ones a0 + L/2 (b0 + L/2): QK_IDX32(a0, b0). Arguments are from
 * the highest element down. */
#define QK_IDX16(a0, b0)                                                                                     \
    _mm512_set_epi16((b0) + 3, (b0) + 3, (b0) + 3, (b0) + 3, (a0) + 3, (a0) + 3, (a0) + 3, (a0) + 3,         \
                     (b0) + 2, (b0) + 2, (b0) + 2, (b0) + 2, (a0) + 2, (a0) + 2, (a0) + 2, (a0) + 2,         \
                     (b0) + 1, (b0) + 1, (b0) + 1, (b0) + 1, (a0) + 1, (a0) + 1, (a0) + 1, (a0) + 1, (b0),   \
                     (b0), (b0), (b0), (a0), (a0), (a0), (a0))
#define QK_IDX32(a0, b0)                                                                                     \
    _mm512_set_epi16((b0) + 1, (b0) + 1, (b0) + 1, (b0) + 1, (a0) + 1, (a0) + 1, (a0) + 1, (a0) + 1,         \
                     (b0) + 1, (b0) + 1, (b0) + 1, (b0) + 1, (a0) + 1, (a0) + 1, (a0) + 1, (a0) + 1, (b0),   \
                     (b0), (b0), (b0), (a0), (a0), (a0), (a0), (b0), (b0), (b0), (b0), (a0), (a0), (a0),     \
                     (a0))
/* Pair k = vectors 2k, 2k+1 of a block. */
#define QK_PAIR_IDX16(k) QK_IDX16(8 * (k), 8 * (k) + 4)
#define QK_PAIR_IDX32(k) QK_IDX32(4 * (k), 4 * (k) + 2)

/* Weights stream from memory once per token, row after row, and the
 * hardware prefetcher alone keeps too few lines in flight: measured on one
 * core, a Q4_K dot product streamed 6 GB/s from memory without help and 11
 * with every line of the block QK_PF_DIST bytes ahead requested into L2
 * (about what a plain read loop reaches). Past the end of a row this fetches
 * the next row, which is what comes next; prefetches never fault. */
#ifndef QK_PF_DIST
#define QK_PF_DIST 4096
#endif
static inline void qk_prefetch(const void *block, size_t bytes)
{
    const char *p = (const char *)block + QK_PF_DIST;
    QK_UNROLL(4)
    for (size_t o = 0; o < bytes; o += 64)
        _mm_prefetch(p + o, _MM_HINT_T1);
}

/* The zeroed accumulator of a vpdpbusd. (A vpxord zeroing idiom forced
 * through inline asm measured the same as the compiler's copies of one zero
 * register, so this stays plain C.) */
static inline __m512i qk_zero(void)
{
    return _mm512_setzero_si512();
}

/* Scale-weighted sum over 256 weights: sum(scale * u * y) as 16 int32
 * lanes, added to acc; scv[k] scales the packed pair (2k, 2k+1). */
static inline __m512i qk_dot256(__m512i acc, const __m512i u[4], const __m512i scv[2], const int8_t *y)
{
    QK_UNROLL(2)
    for (int k = 0; k < 2; k++) {
        const __m512i p0 = _mm512_dpbusd_epi32(qk_zero(), u[2 * k], qk_load512(y + 128 * k));
        const __m512i p1 = _mm512_dpbusd_epi32(qk_zero(), u[2 * k + 1], qk_load512(y + 128 * k + 64));
        acc = _mm512_dpwssd_epi32(acc, _mm512_packs_epi32(p0, p1), scv[k]);
    }
    return acc;
}

/* The sum of v's 16 lanes, in the order the tile kernel's transposing tree
 * adds a row (q_k_gemm_avx512.c, store_tile): within each 128-bit lane
 * (x0 + x2) + (x1 + x3), then lanes (0 + 2) + (1 + 3). The dot products
 * end with it too, so that a row against a token gives the same bits from
 * vec_dot as from a tile, whatever the tile's size: a batch then computes
 * each of its tokens exactly as it would alone (the scheduler relies on it). */
static inline float qk_hsum_tile(__m512 v)
{
    const __m512 a = _mm512_add_ps(v, _mm512_permute_ps(v, 0x4e)); /* x0 + x2, x1 + x3 per lane */
    const __m512 b = _mm512_add_ps(a, _mm512_permute_ps(a, 0xb1)); /* (x0 + x2) + (x1 + x3) */
    const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(b), 1));
    const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(b), hi);
    return _mm_cvtss_f32(_mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)));
}

/* The 8 six-bit scales and 8 mins of a Q4_K/Q5_K block as int16 elements
 * 0-7 (scales) and 8-15 (mins) of a zmm. Layout (q_k.c, pack_scale_min):
 * bytes 0-3 carry scales 0-3 and bytes 4-7 mins 0-3 in their low 6 bits;
 * bytes 8-11 carry the low nibbles of scales and mins 4-7, whose top 2 bits
 * are the top bits of bytes 0-3 and 4-7. Done in general-purpose registers,
 * whose ports are idle here; the empty asm keeps GCC from vectorizing it
 * into a dozen vector uops. */
static inline __m256i qk_q45_scales(const uint8_t s[12])
{
    uint32_t u0, u1, u2;
    memcpy(&u0, s, 4);
    memcpy(&u1, s + 4, 4);
    memcpy(&u2, s + 8, 4);
    __asm__("" : "+r"(u0), "+r"(u1), "+r"(u2));
    const uint32_t sc_hi = (u2 & 0x0f0f0f0fu) | (((u0 >> 6) & 0x03030303u) << 4);
    const uint32_t m_hi = ((u2 >> 4) & 0x0f0f0f0fu) | (((u1 >> 6) & 0x03030303u) << 4);
    const uint64_t sc = (u0 & 0x3f3f3f3fu) | ((uint64_t)sc_hi << 32);
    const uint64_t m = (u1 & 0x3f3f3f3fu) | ((uint64_t)m_hi << 32);
    return _mm256_cvtepu8_epi16(_mm_set_epi64x((long long)m, (long long)sc));
}

/* The mins doubled up (m_j at int16 positions 2j and 2j+1) for vpmaddwd
 * against the 16 bsums. */
static inline __m256i qk_q45_mins(__m256i v)
{
    return _mm256_permutexvar_epi16(
        _mm256_set_epi16(15, 15, 14, 14, 13, 13, 12, 12, 11, 11, 10, 10, 9, 9, 8, 8), v);
}

/* The 4-bit levels of Q4_K/Q5_K as four 64-weight vectors in element order:
 * qs[32g + l] holds element 64g + l in its low nibble and 64g + 32 + l in its
 * high one, so 32 bytes broadcast to both halves and shifted right by 0 and 4
 * per half give elements 64g .. 64g+63 (bits shifted across bytes are masked). */
static inline void qk_q4_unpack(const uint8_t *qs, __m512i u[4])
{
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    const __m512i cnt = _mm512_set_epi64(4, 4, 4, 4, 0, 0, 0, 0);
    QK_UNROLL(4)
    for (int g = 0; g < 4; g++)
        u[g] = _mm512_and_si512(_mm512_srlv_epi64(qk_bcast256(qs + 32 * g), cnt), m4);
}

/* Q5_K: bit 4 of element k is bit k/32 of qh[k % 32]; vector v takes bit 2v
 * in its first half and 2v+1 in its second. */
static inline void qk_q5_high(const uint8_t *qh, __m512i u[4])
{
    const __m512i h = qk_bcast256(qh);
    const __m512i c16 = _mm512_set1_epi8(16);
    QK_UNROLL(4)
    for (int v = 0; v < 4; v++) {
        const __m512i bit = _mm512_inserti64x4(_mm512_set1_epi8((char)(1 << (2 * v))),
                                               _mm256_set1_epi8((char)(1 << (2 * v + 1))), 1);
        u[v] = _mm512_mask_add_epi8(u[v], _mm512_test_epi8_mask(h, bit), u[v], c16);
    }
}

/* The 16 signed 6-bit scales of a Q3_K block as int8 (layout at q3_k_scale
 * in q_k.c): low nibbles from bytes 0-7 (scales 0-7 low nibble, 8-15 high
 * nibble), top bit pairs from bytes 8-11 (pair j/4 of byte 8 + j%4). */
static inline __m128i qk_q3_scales(const uint8_t s[12])
{
    uint32_t u0, u1, u2;
    memcpy(&u0, s, 4);
    memcpy(&u1, s + 4, 4);
    memcpy(&u2, s + 8, 4);
    __asm__("" : "+r"(u0), "+r"(u1), "+r"(u2));
    const uint32_t a = (u0 & 0x0f0f0f0fu) | ((u2 & 0x03030303u) << 4);
    const uint32_t b = (u1 & 0x0f0f0f0fu) | (((u2 >> 2) & 0x03030303u) << 4);
    const uint32_t c = ((u0 >> 4) & 0x0f0f0f0fu) | (((u2 >> 4) & 0x03030303u) << 4);
    const uint32_t d = ((u1 >> 4) & 0x0f0f0f0fu) | (((u2 >> 6) & 0x03030303u) << 4);
    return _mm_sub_epi8(_mm_set_epi32((int)d, (int)c, (int)b, (int)a), _mm_set1_epi8(32));
}

/* The 2-bit fields of Q2_K/Q3_K: byte l of 32-byte group g holds elements
 * 128g + 32p + l at bit pair p, so vector 2g (elements 128g..+63) is the
 * group broadcast and shifted by 0 | 2, vector 2g+1 by 4 | 6. */
static inline void qk_q2_unpack(const uint8_t *qs, __m512i u[4])
{
    const __m512i m3 = _mm512_set1_epi8(3);
    const __m512i cnt01 = _mm512_set_epi64(2, 2, 2, 2, 0, 0, 0, 0);
    const __m512i cnt23 = _mm512_set_epi64(6, 6, 6, 6, 4, 4, 4, 4);
    QK_UNROLL(2)
    for (int g = 0; g < 2; g++) {
        const __m512i qb = qk_bcast256(qs + 32 * g);
        u[2 * g] = _mm512_and_si512(_mm512_srlv_epi64(qb, cnt01), m3);
        u[2 * g + 1] = _mm512_and_si512(_mm512_srlv_epi64(qb, cnt23), m3);
    }
}

/* Q3_K: element 128g + 32p + l has its third bit at bit 4g + p of
 * hmask[l]; vector v holds p = 2(v%2), 2(v%2)+1 of group v/2. */
static inline void qk_q3_high(const uint8_t *hmask, __m512i u[4])
{
    const __m512i hm = qk_bcast256(hmask);
    const __m512i c4 = _mm512_set1_epi8(4);
    QK_UNROLL(4)
    for (int v = 0; v < 4; v++) {
        const int b0 = 4 * (v / 2) + 2 * (v % 2);
        const __m512i bit =
            _mm512_inserti64x4(_mm512_set1_epi8((char)(1 << b0)), _mm256_set1_epi8((char)(1 << (b0 + 1))), 1);
        u[v] = _mm512_mask_add_epi8(u[v], _mm512_test_epi8_mask(hm, bit), u[v], c4);
    }
}

/* Q6_K levels + 32 as bytes in element order. Per half h, ql's 64 bytes hold
 * [0..31 | 32..63] in their low nibbles and [64..95 | 96..127] in their high
 * ones; the top bits of quarter p are bit pair p of qh[32h + l], moved to
 * bits 4-5 by a per-half shift and merged by one ternary-logic op
 * ((a & 0x0f) | b: truth table 0xec for A=f0, B=cc, C=aa). */
static inline void qk_q6_unpack(const uint8_t *ql, const uint8_t *qh, __m512i u[4])
{
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    const __m512i m30 = _mm512_set1_epi8(0x30);
    const __m512i sl01 = _mm512_set_epi64(2, 2, 2, 2, 4, 4, 4, 4);
    const __m512i sr23 = _mm512_set_epi64(2, 2, 2, 2, 0, 0, 0, 0);
    QK_UNROLL(2)
    for (int h = 0; h < 2; h++) {
        const __m512i q = qk_load512(ql + 64 * h);
        const __m512i hb = qk_bcast256(qh + 32 * h);
        const __m512i h01 = _mm512_and_si512(_mm512_sllv_epi64(hb, sl01), m30);
        const __m512i h23 = _mm512_and_si512(_mm512_srlv_epi64(hb, sr23), m30);
        u[2 * h] = _mm512_ternarylogic_epi64(q, h01, m4, 0xec);
        u[2 * h + 1] = _mm512_ternarylogic_epi64(_mm512_srli_epi16(q, 4), h23, m4, 0xec);
    }
}

#endif
