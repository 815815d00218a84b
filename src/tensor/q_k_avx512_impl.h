/* Internal to q_k_avx512.c and q_k_gemm_avx512.c (built with AVX-512 flags):
 * unpacking K-quant blocks into registers for VNNI dot products.
 *
 * Cost model (measured on this project's Xeon): with 512-bit instructions in
 * flight only ports 0 and 5 execute vector uops. vpmaddubsw, vpmaddwd,
 * vpdpwssd, vpdpbusd, logic and adds issue on both (2 per cycle); shuffles,
 * permutes, packs and variable shifts on one; broadcast loads cost no vector
 * uop, and neither do the load and store ports; register-to-register zmm
 * copies are not eliminated. So the kernels count vector uops:
 *  - levels are unpacked to unsigned bytes u in element order, 64 per zmm;
 *  - P = vpdpbusd(0, u, y) holds per 32-bit lane the sum of 4 products of
 *    one sub-block, at most 4 * 63 * 127 = 32004 in magnitude, so two P
 *    vectors pack losslessly into int16 (vpackssdw), and one vpdpwssd applies
 *    the sub-block scales to both while it accumulates: 4 uops per 128
 *    multiply-adds with the scales included. (vpmaddubsw + vpdpwssd has the
 *    same count on paper and measured slower.) The zeroed accumulator of each
 *    vpdpbusd comes from a zeroing idiom, which costs no port; left to itself
 *    GCC copies one zero register instead, a real uop per copy.
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

static inline __m512i qk_load512(const void *p) { return _mm512_loadu_si512(p); }
static inline __m256i qk_load256(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }

/* 32 bytes at p in both halves of a zmm: one load uop, no shuffle. */
static inline __m512i qk_bcast256(const void *p) { return _mm512_broadcast_i64x4(qk_load256(p)); }

/* The 16 bsums of a Q8_K block (measured: ymm forms beat a masked zmm load). */
static inline __m256i qk_bsums(const hs_block_q8_k *q) { return qk_load256(q->bsums); }

/* vpermw indices for the packed pair of vectors v0 = 2k, v1 = 2k+1 (each
 * 64 weights), as int16 positions into 16 scales. In 128-bit lane L the
 * first 4 int16 come from lanes 4L..4L+3 of P(v0), that is weights
 * 64 v0 + 16L .. +15, the next 4 from P(v1). With 32-weight sub-blocks those
 * weights have scale 2 v + L/2; with 16-weight ones, 4 v + L. */
static inline __m512i qk_pair_idx(int k, int sub16) {
    short e[32];
    for (int L = 0; L < 4; L++) {
        for (int j = 0; j < 4; j++) {
            e[8 * L + j] = (short)(sub16 ? 4 * (2 * k) + L : 2 * (2 * k) + L / 2);
            e[8 * L + 4 + j] = (short)(sub16 ? 4 * (2 * k + 1) + L : 2 * (2 * k + 1) + L / 2);
        }
    }
    return _mm512_loadu_si512(e);
}

/* A zeroed register from the zeroing idiom (see above). */
static inline __m512i qk_zero(void) {
    __m512i z;
    z = _mm512_setzero_si512();
    return z;
}

/* Scale-weighted sum over 256 weights: sum(scale * u * y) as 16 int32
 * lanes, added to acc; scv[k] scales the packed pair (2k, 2k+1). */
static inline __m512i qk_dot256(__m512i acc, const __m512i u[4], const __m512i scv[2], const int8_t *y) {
    QK_UNROLL(2)
    for (int k = 0; k < 2; k++) {
        const __m512i p0 = _mm512_dpbusd_epi32(qk_zero(), u[2 * k], qk_load512(y + 128 * k));
        const __m512i p1 = _mm512_dpbusd_epi32(qk_zero(), u[2 * k + 1], qk_load512(y + 128 * k + 64));
        acc = _mm512_dpwssd_epi32(acc, _mm512_packs_epi32(p0, p1), scv[k]);
    }
    return acc;
}

/* The 8 six-bit scales and 8 mins of a Q4_K/Q5_K block as int16 elements
 * 0-7 (scales) and 8-15 (mins) of a zmm. Layout (q_k.c, pack_scale_min):
 * bytes 0-3 carry scales 0-3 and bytes 4-7 mins 0-3 in their low 6 bits;
 * bytes 8-11 carry the low nibbles of scales and mins 4-7, whose top 2 bits
 * are the top bits of bytes 0-3 and 4-7. Done in general-purpose registers,
 * whose ports are idle here; the empty asm keeps GCC from vectorizing it
 * into a dozen vector uops. */
static inline __m256i qk_q45_scales(const uint8_t s[12]) {
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
static inline __m256i qk_q45_mins(__m256i v) {
    return _mm256_permutexvar_epi16(_mm256_set_epi16(15, 15, 14, 14, 13, 13, 12, 12, 11, 11, 10, 10, 9, 9, 8, 8), v);
}

/* The 4-bit levels of Q4_K/Q5_K as four 64-weight vectors in element order:
 * qs[32g + l] holds element 64g + l in its low nibble and 64g + 32 + l in its
 * high one, so 32 bytes broadcast to both halves and shifted right by 0 and 4
 * per half give elements 64g .. 64g+63 (bits shifted across bytes are masked). */
static inline void qk_q4_unpack(const uint8_t *qs, __m512i u[4]) {
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    const __m512i cnt = _mm512_set_epi64(4, 4, 4, 4, 0, 0, 0, 0);
    QK_UNROLL(4)
    for (int g = 0; g < 4; g++)
        u[g] = _mm512_and_si512(_mm512_srlv_epi64(qk_bcast256(qs + 32 * g), cnt), m4);
}

/* Q5_K: bit 4 of element k is bit k/32 of qh[k % 32]; vector v takes bit 2v
 * in its first half and 2v+1 in its second. */
static inline void qk_q5_high(const uint8_t *qh, __m512i u[4]) {
    const __m512i h = qk_bcast256(qh);
    const __m512i c16 = _mm512_set1_epi8(16);
    QK_UNROLL(4)
    for (int v = 0; v < 4; v++) {
        const __m512i bit = _mm512_inserti64x4(_mm512_set1_epi8((char)(1 << (2 * v))),
                                               _mm256_set1_epi8((char)(1 << (2 * v + 1))), 1);
        u[v] = _mm512_mask_add_epi8(u[v], _mm512_test_epi8_mask(h, bit), u[v], c16);
    }
}

/* Q6_K levels + 32 as bytes in element order. Per half h, ql's 64 bytes hold
 * [0..31 | 32..63] in their low nibbles and [64..95 | 96..127] in their high
 * ones; the top bits of quarter p are bit pair p of qh[32h + l], moved to
 * bits 4-5 by a per-half shift and merged by one ternary-logic op
 * ((a & 0x0f) | b: truth table 0xec for A=f0, B=cc, C=aa). */
static inline void qk_q6_unpack(const uint8_t *ql, const uint8_t *qh, __m512i u[4]) {
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
