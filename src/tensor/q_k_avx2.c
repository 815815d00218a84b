/* K-quant dot products against Q8_K with AVX2, and Q8_K's quantizer.
 *
 * Weights are unpacked to unsigned bytes u (level plus a fixed offset where
 * the level is signed: Q6_K stores q + 32, Q3_K's levels read as q + 4) so
 * that vpmaddubsw can multiply them by the signed activation bytes; pairs
 * stay within 2 * 63 * 127, far from int16 saturation. vpmaddwd then applies
 * the sub-block scales (a 32-weight vector holds one sub-block of 32, or two
 * of 16, one per 128-bit lane) and sums to int32. Offsets and mins are taken
 * from Q8_K's bsums, as in q_k_avx512.c. */
#include "tensor/qtype_impl.h"

#include <immintrin.h>
#include <string.h>

static inline float h2f(hs_fp16 h)
{
    return _cvtsh_ss(h);
}

/* Loops over register-sized pieces must be unrolled, or GCC keeps the pieces
 * in a stack array. */
#define UNROLL(n) _Pragma(HS_STR(GCC unroll n))
#define HS_STR(x) #x

/* Lines QK_PF_DIST bytes ahead into L2: the hardware prefetcher alone keeps
 * too few lines in flight for a stream of weights (see q_k_avx512_impl.h). */
#define QK_PF_DIST 4096
static inline void prefetch_block(const void *block, size_t bytes)
{
    const char *p = (const char *)block + QK_PF_DIST;
    UNROLL(4)
    for (size_t o = 0; o < bytes; o += 64)
        _mm_prefetch(p + o, _MM_HINT_T1);
}

static inline __m256i load256(const void *p)
{
    return _mm256_loadu_si256((const __m256i *)p);
}

static inline float hsum256(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* sum(sc * u * y) over 32 weights, as 8 int32 lanes. */
static inline __m256i dot32(__m256i u, const int8_t *y, __m256i sc)
{
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, load256(y)), sc);
}

/* A vector of int16 scales for a 32-weight vector holding sub-blocks a (low
 * 128-bit lane) and a+1 (high lane), a even; s holds 8 int16 scales in each
 * lane (scales base..base+7) and j = a - base. */
static inline __m256i pair_scales(__m256i s, int j)
{
    const __m256i ctrl = _mm256_setr_epi8(
        (char)(2 * j), (char)(2 * j + 1), (char)(2 * j), (char)(2 * j + 1), (char)(2 * j), (char)(2 * j + 1),
        (char)(2 * j), (char)(2 * j + 1), (char)(2 * j), (char)(2 * j + 1), (char)(2 * j), (char)(2 * j + 1),
        (char)(2 * j), (char)(2 * j + 1), (char)(2 * j), (char)(2 * j + 1), (char)(2 * j + 2),
        (char)(2 * j + 3), (char)(2 * j + 2), (char)(2 * j + 3), (char)(2 * j + 2), (char)(2 * j + 3),
        (char)(2 * j + 2), (char)(2 * j + 3), (char)(2 * j + 2), (char)(2 * j + 3), (char)(2 * j + 2),
        (char)(2 * j + 3), (char)(2 * j + 2), (char)(2 * j + 3), (char)(2 * j + 2), (char)(2 * j + 3));
    return _mm256_shuffle_epi8(s, ctrl);
}

/* One int16 scale j (0..7) of s (8 int16 scales per lane) in every lane. */
static inline __m256i bcast_scale(__m256i s, int j)
{
    return _mm256_shuffle_epi8(s, _mm256_set1_epi16((short)((2 * j) | ((2 * j + 1) << 8))));
}

/* The 2-bit fields of a 32-byte group: bit pair p of byte l is element 32p + l. */
static inline __m256i bits2(__m256i q, int p)
{
    return _mm256_and_si256(_mm256_srli_epi16(q, 2 * p), _mm256_set1_epi8(3));
}

/* ----------------------------------------------------------------- Q8_K -- */

/* Bit-exact with hs_q8_k_from_float_ref (see q_k_avx512.c for why). */
void hs_q8_k_from_float_avx2(const float *x, void *vy, int64_t n)
{
    assert(n % HS_QK_K == 0);
    hs_block_q8_k *y = vy;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int64_t i = 0; i < n / HS_QK_K; i++, x += HS_QK_K) {
        __m256 amaxv = _mm256_setzero_ps();
        for (int j = 0; j < 32; j++)
            amaxv = _mm256_max_ps(amaxv, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + 8 * j)));
        __m128 m = _mm_max_ps(_mm256_castps256_ps128(amaxv), _mm256_extractf128_ps(amaxv, 1));
        m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        m = _mm_max_ss(m, _mm_movehdup_ps(m));
        const float amax = _mm_cvtss_f32(m);
        if (amax == 0.0f) {
            memset(&y[i], 0, sizeof(y[i]));
            continue;
        }
        float max = 0.0f;
        const __m256 av = _mm256_set1_ps(amax);
        for (int j = 0; j < 32; j++) {
            const int k = _mm256_movemask_ps(
                _mm256_cmp_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + 8 * j)), av, _CMP_EQ_OQ));
            if (k) {
                max = x[8 * j + __builtin_ctz((unsigned)k)];
                break;
            }
        }
        const float iscale = -127.0f / max;
        const __m256 is = _mm256_set1_ps(iscale);
        for (int j = 0; j < 8; j++) {
            const float *xj = x + 32 * j;
            const __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(is, _mm256_loadu_ps(xj)));
            const __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(is, _mm256_loadu_ps(xj + 8)));
            const __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(is, _mm256_loadu_ps(xj + 16)));
            const __m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(is, _mm256_loadu_ps(xj + 24)));
            /* the packs interleave 128-bit lanes; the permute restores order */
            const __m256i b = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
            _mm256_storeu_si256((__m256i *)(y[i].qs + 32 * j), _mm256_permutevar8x32_epi32(b, order));
        }
        const __m256i bias = _mm256_set1_epi8((char)0x80);
        for (int j = 0; j < 8; j++) {
            uint64_t s[4];
            _mm256_storeu_si256(
                (__m256i *)s,
                _mm256_sad_epu8(_mm256_xor_si256(load256(y[i].qs + 32 * j), bias), _mm256_setzero_si256()));
            y[i].bsums[2 * j] = (int16_t)((int)(s[0] + s[1]) - 16 * 128);
            y[i].bsums[2 * j + 1] = (int16_t)((int)(s[2] + s[3]) - 16 * 128);
        }
        y[i].d = 1.0f / iscale;
    }
}

/* ----------------------------------------------------------------- Q2_K -- */

void hs_q2_k_vec_dot_avx2(int n, float *s, const void *vx, const void *vy)
{
    assert(n % HS_QK_K == 0);
    const hs_block_q2_k *x = vx;
    const hs_block_q8_k *y = vy;
    __m256 accf = _mm256_setzero_ps();
    for (int i = 0; i < n / HS_QK_K; i++) {
        prefetch_block(&x[i], sizeof(x[i]));
        const __m128i sb = _mm_loadu_si128((const __m128i *)x[i].scales);
        const __m128i sc8 = _mm_and_si128(sb, _mm_set1_epi8(0x0f));
        const __m256i mn = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sb, 4), _mm_set1_epi8(0x0f)));
        const __m256i s_lo = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(sc8));
        const __m256i s_hi = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_srli_si128(sc8, 8)));
        __m256i acc = _mm256_setzero_si256();
        UNROLL(4)
        for (int g = 0; g < 2; g++) {
            const __m256i q = load256(x[i].qs + 32 * g);
            const __m256i sg = g ? s_hi : s_lo;
            UNROLL(4)
            for (int p = 0; p < 4; p++)
                acc = _mm256_add_epi32(
                    acc, dot32(bits2(q, p), y[i].qs + 128 * g + 32 * p, pair_scales(sg, 2 * p)));
        }
        const __m256i mm = _mm256_madd_epi16(load256(y[i].bsums), mn);
        const float yd = y[i].d;
        accf = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc), _mm256_set1_ps(yd * h2f(x[i].d)), accf);
        accf = _mm256_fmadd_ps(_mm256_cvtepi32_ps(mm), _mm256_set1_ps(-yd * h2f(x[i].dmin)), accf);
    }
    *s = hsum256(accf);
}

/* ----------------------------------------------------------------- Q3_K -- */

static inline __m128i q3_k_scales(const uint8_t s[12])
{
    uint32_t u0, u1, u2;
    memcpy(&u0, s, 4);
    memcpy(&u1, s + 4, 4);
    memcpy(&u2, s + 8, 4);
    const uint32_t a = (u0 & 0x0f0f0f0fu) | ((u2 & 0x03030303u) << 4);
    const uint32_t b = (u1 & 0x0f0f0f0fu) | (((u2 >> 2) & 0x03030303u) << 4);
    const uint32_t c = ((u0 >> 4) & 0x0f0f0f0fu) | (((u2 >> 4) & 0x03030303u) << 4);
    const uint32_t d = ((u1 >> 4) & 0x0f0f0f0fu) | (((u2 >> 6) & 0x03030303u) << 4);
    return _mm_sub_epi8(_mm_set_epi32((int)d, (int)c, (int)b, (int)a), _mm_set1_epi8(32));
}

void hs_q3_k_vec_dot_avx2(int n, float *s, const void *vx, const void *vy)
{
    assert(n % HS_QK_K == 0);
    const hs_block_q3_k *x = vx;
    const hs_block_q8_k *y = vy;
    const __m256i c4 = _mm256_set1_epi8(4);
    __m256 accf = _mm256_setzero_ps();
    for (int i = 0; i < n / HS_QK_K; i++) {
        prefetch_block(&x[i], sizeof(x[i]));
        const __m128i sc8 = q3_k_scales(x[i].scales);
        const __m256i sc = _mm256_cvtepi8_epi16(sc8);
        const __m256i s_lo = _mm256_broadcastsi128_si256(_mm256_castsi256_si128(sc));
        const __m256i s_hi = _mm256_broadcastsi128_si256(_mm256_extracti128_si256(sc, 1));
        const __m256i hm = load256(x[i].hmask);
        /* the -4 of every level: 4 * sum(sc * bsum) */
        __m256i acc = _mm256_sub_epi32(_mm256_setzero_si256(),
                                       _mm256_slli_epi32(_mm256_madd_epi16(load256(y[i].bsums), sc), 2));
        UNROLL(4)
        for (int g = 0; g < 2; g++) {
            const __m256i q = load256(x[i].qs + 32 * g);
            const __m256i sg = g ? s_hi : s_lo;
            UNROLL(4)
            for (int p = 0; p < 4; p++) {
                /* element 128g + 32p + l has its third bit at bit 4g + p of hmask[l] */
                const __m256i bit = _mm256_set1_epi8((char)(1 << (4 * g + p)));
                const __m256i h = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hm, bit), bit), c4);
                const __m256i u = _mm256_add_epi8(bits2(q, p), h);
                acc = _mm256_add_epi32(acc, dot32(u, y[i].qs + 128 * g + 32 * p, pair_scales(sg, 2 * p)));
            }
        }
        accf = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc), _mm256_set1_ps(y[i].d * h2f(x[i].d)), accf);
    }
    *s = hsum256(accf);
}

/* ----------------------------------------------------------- Q4_K, Q5_K -- */

/* The 8 scales and 8 mins of a Q4_K/Q5_K block (layout in q_k_avx512.c). */
static inline void unpack_scale_min(const uint8_t s[12], uint64_t *sc, uint64_t *m)
{
    uint32_t u0, u1, u2;
    memcpy(&u0, s, 4);
    memcpy(&u1, s + 4, 4);
    memcpy(&u2, s + 8, 4);
    const uint32_t sc_hi = (u2 & 0x0f0f0f0fu) | (((u0 >> 6) & 0x03030303u) << 4);
    const uint32_t m_hi = ((u2 >> 4) & 0x0f0f0f0fu) | (((u1 >> 6) & 0x03030303u) << 4);
    *sc = (u0 & 0x3f3f3f3fu) | ((uint64_t)sc_hi << 32);
    *m = (u1 & 0x3f3f3f3fu) | ((uint64_t)m_hi << 32);
}

/* Scales as int16 in both lanes, and the mins doubled up (m_j at int16
 * positions 2j, 2j+1) for vpmaddwd against the 16 bsums. */
static inline void q45_scales(const uint8_t s[12], __m256i *scales, __m256i *mins)
{
    uint64_t sc, m;
    unpack_scale_min(s, &sc, &m);
    *scales = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)sc)));
    const __m128i mb = _mm_cvtsi64_si128((long long)m);
    *mins = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(mb, mb));
}

void hs_q4_k_vec_dot_avx2(int n, float *s, const void *vx, const void *vy)
{
    assert(n % HS_QK_K == 0);
    const hs_block_q4_k *x = vx;
    const hs_block_q8_k *y = vy;
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    __m256 accf = _mm256_setzero_ps();
    for (int i = 0; i < n / HS_QK_K; i++) {
        prefetch_block(&x[i], sizeof(x[i]));
        __m256i sc, mins;
        q45_scales(x[i].scales, &sc, &mins);
        __m256i acc = _mm256_setzero_si256();
        UNROLL(4)
        for (int g = 0; g < 4; g++) {
            /* qs[32g + l]: element 64g + l low, 64g + 32 + l high */
            const __m256i q = load256(x[i].qs + 32 * g);
            const int8_t *yq = y[i].qs + 64 * g;
            acc = _mm256_add_epi32(acc, dot32(_mm256_and_si256(q, m4), yq, bcast_scale(sc, 2 * g)));
            acc = _mm256_add_epi32(acc, dot32(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4), yq + 32,
                                              bcast_scale(sc, 2 * g + 1)));
        }
        const __m256i mm = _mm256_madd_epi16(load256(y[i].bsums), mins);
        const float yd = y[i].d;
        accf = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc), _mm256_set1_ps(yd * h2f(x[i].d)), accf);
        accf = _mm256_fmadd_ps(_mm256_cvtepi32_ps(mm), _mm256_set1_ps(-yd * h2f(x[i].dmin)), accf);
    }
    *s = hsum256(accf);
}

void hs_q5_k_vec_dot_avx2(int n, float *s, const void *vx, const void *vy)
{
    assert(n % HS_QK_K == 0);
    const hs_block_q5_k *x = vx;
    const hs_block_q8_k *y = vy;
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const __m256i c16 = _mm256_set1_epi8(16);
    __m256 accf = _mm256_setzero_ps();
    for (int i = 0; i < n / HS_QK_K; i++) {
        prefetch_block(&x[i], sizeof(x[i]));
        __m256i sc, mins;
        q45_scales(x[i].scales, &sc, &mins);
        const __m256i qh = load256(x[i].qh);
        __m256i acc = _mm256_setzero_si256();
        UNROLL(4)
        for (int g = 0; g < 4; g++) {
            const __m256i q = load256(x[i].qs + 32 * g);
            /* bit 4 of element 64g + l is bit 2g of qh[l]; of 64g + 32 + l, bit 2g+1 */
            const __m256i b0 = _mm256_set1_epi8((char)(1 << (2 * g)));
            const __m256i b1 = _mm256_set1_epi8((char)(1 << (2 * g + 1)));
            const __m256i h0 = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, b0), b0), c16);
            const __m256i h1 = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, b1), b1), c16);
            const __m256i u0 = _mm256_or_si256(_mm256_and_si256(q, m4), h0);
            const __m256i u1 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4), h1);
            const int8_t *yq = y[i].qs + 64 * g;
            acc = _mm256_add_epi32(acc, dot32(u0, yq, bcast_scale(sc, 2 * g)));
            acc = _mm256_add_epi32(acc, dot32(u1, yq + 32, bcast_scale(sc, 2 * g + 1)));
        }
        const __m256i mm = _mm256_madd_epi16(load256(y[i].bsums), mins);
        const float yd = y[i].d;
        accf = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc), _mm256_set1_ps(yd * h2f(x[i].d)), accf);
        accf = _mm256_fmadd_ps(_mm256_cvtepi32_ps(mm), _mm256_set1_ps(-yd * h2f(x[i].dmin)), accf);
    }
    *s = hsum256(accf);
}

/* ----------------------------------------------------------------- Q6_K -- */

void hs_q6_k_vec_dot_avx2(int n, float *s, const void *vx, const void *vy)
{
    assert(n % HS_QK_K == 0);
    const hs_block_q6_k *x = vx;
    const hs_block_q8_k *y = vy;
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const __m256i m3 = _mm256_set1_epi8(3);
    __m256 accf = _mm256_setzero_ps();
    for (int i = 0; i < n / HS_QK_K; i++) {
        prefetch_block(&x[i], sizeof(x[i]));
        const __m256i sc = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x[i].scales));
        const __m256i s_lo = _mm256_broadcastsi128_si256(_mm256_castsi256_si128(sc));
        const __m256i s_hi = _mm256_broadcastsi128_si256(_mm256_extracti128_si256(sc, 1));
        /* the -32 of every level: 32 * sum(sc * bsum) */
        __m256i acc = _mm256_sub_epi32(_mm256_setzero_si256(),
                                       _mm256_slli_epi32(_mm256_madd_epi16(load256(y[i].bsums), sc), 5));
        UNROLL(4)
        for (int h = 0; h < 2; h++) {
            /* ql[64h + l]: +l low, +64 + l high; ql[64h + 32 + l]: +32 + l, +96 + l;
             * bit pair p of qh[32h + l] tops element 128h + 32p + l */
            const __m256i ql0 = load256(x[i].ql + 64 * h);
            const __m256i ql1 = load256(x[i].ql + 64 * h + 32);
            const __m256i qh = load256(x[i].qh + 32 * h);
            const __m256i u0 =
                _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m3), 4));
            const __m256i u1 =
                _mm256_or_si256(_mm256_and_si256(ql1, m4),
                                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m3), 4));
            const __m256i u2 =
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m3), 4));
            const __m256i u3 =
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m3), 4));
            const __m256i sg = h ? s_hi : s_lo;
            const int8_t *yq = y[i].qs + 128 * h;
            acc = _mm256_add_epi32(acc, dot32(u0, yq, pair_scales(sg, 0)));
            acc = _mm256_add_epi32(acc, dot32(u1, yq + 32, pair_scales(sg, 2)));
            acc = _mm256_add_epi32(acc, dot32(u2, yq + 64, pair_scales(sg, 4)));
            acc = _mm256_add_epi32(acc, dot32(u3, yq + 96, pair_scales(sg, 6)));
        }
        accf = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc), _mm256_set1_ps(y[i].d * h2f(x[i].d)), accf);
    }
    *s = hsum256(accf);
}
