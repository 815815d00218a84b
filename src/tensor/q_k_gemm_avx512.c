/* Tile kernels for prompt processing: up to 4 rows of K-quant weights
 * (Q2_K .. Q6_K) against up to 16 rows of Q8_K activations per call
 * (hs_gemm_fn).
 *
 * The arithmetic is that of q_k_avx512.c's dot products; what changes is the
 * order. Each weight super-block is unpacked once (levels as bytes, scale
 * vectors, mins) and used for all the tile's tokens, so unpacking is spread
 * over up to 16 tokens, and the tile's activations (16 x 292 bytes per
 * super-block) stay in L1 while the 4 rows pass over them.
 *
 * With 512-bit instructions in flight only two ports execute vector uops, so
 * the loop is written to spend them on multiply-adds: each (row, token) pair
 * keeps a 16-lane float accumulator in L1 (its load and store go to the load
 * and store ports, which are idle), the products d * yd are computed 16 at a
 * time per row and block and read back as broadcast operands, and the final
 * sums are reduced four rows at a time by a transposing add tree.
 *
 * Each (row, token) result is bit for bit what hs_q*_k_vec_dot_avx512 gives
 * for that pair: the same integer sums, the same float multiply-adds per
 * block in the same order, the same final reduction (qk_hsum_tile) for a
 * partial tile as for a full one. So a token's result does not depend on the
 * batch it is in (qtype.h: gemm_exact).
 *
 * Generated tokens of a decode batch (a Q4_K_M model's Q6_K matrices, the
 * output head first of all) stream these rows from memory once per step:
 * each block of the next tile's rows is prefetched into L2 a tile ahead, as
 * the dot products do along their row. Measured at the head's size
 * (bench_gemm_qk REPS head, 65536 x 2048 Q6_K, one thread): 8 tokens took
 * 3.2-3.4 times one token's dot product without it, 1.7-2.5 times with it
 * (machine shared and noisy). */
#include "tensor/q_k_avx512_impl.h"

#define TR HS_Q_K_GEMM_ROWS
#define TC HS_Q_K_GEMM_COLS
/* token_scales and the per-row product arrays hold 16 tokens */
static_assert(TC <= 16, "gemm tile wider than 16 tokens");

/* The tile's accumulators: acc[r][c] for row r, token c, 16 lanes each. */
typedef struct {
    __m512 v[TR][TC];
} tile_acc;

/* s[c * ldc + r] = the sum of acc[r][c]'s lanes. Full-height columns are
 * reduced by a transposing tree: four vectors become one whose 128-bit lanes
 * each hold partial sums of all four, then the lanes are added. */
static void store_tile(float *s, size_t ldc, const tile_acc *acc, int nr, int nc)
{
    for (int c = 0; c < nc; c++) {
        if (nr == TR && TR == 4) {
            const __m512 a0 = acc->v[0][c], a1 = acc->v[1][c], a2 = acc->v[2][c], a3 = acc->v[3][c];
            /* per 128-bit lane: [a0+, a1+, a0+, a1+] then [a0, a1, a2, a3] partials */
            const __m512 t01 = _mm512_add_ps(_mm512_unpacklo_ps(a0, a1), _mm512_unpackhi_ps(a0, a1));
            const __m512 t23 = _mm512_add_ps(_mm512_unpacklo_ps(a2, a3), _mm512_unpackhi_ps(a2, a3));
            const __m512 q = _mm512_add_ps(
                _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t01), _mm512_castps_pd(t23))),
                _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t01), _mm512_castps_pd(t23))));
            const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(q),
                                           _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(q), 1)));
            _mm_storeu_ps(s + (size_t)c * ldc,
                          _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)));
        } else {
            for (int r = 0; r < nr; r++)
                s[(size_t)c * ldc + r] = qk_hsum_tile(acc->v[r][c]);
        }
    }
}

/* yd of block i for each token of the tile (unused lanes zero). */
static inline __m512 token_scales(const char *y, size_t by, int i, int nc)
{
    float yd[16] = {0};
    for (int c = 0; c < nc; c++)
        yd[c] = ((const hs_block_q8_k *)(y + (size_t)c * by))[i].d;
    return _mm512_loadu_ps(yd);
}

/* ------------------------------------------------------ one row's block -- */

/* What a tile needs from one weight block: the levels as bytes (u), the scale
 * vectors of the two packed pairs, and either the mins (doubled up for the
 * types whose mins go by 32, as they are for those by 16) with their factor
 * dmin, or the offset term's scales (-offset * sc, for Q3_K and Q6_K, whose
 * levels are stored shifted up). The layouts are explained at the helpers in
 * q_k_avx512_impl.h. */
struct unpacked {
    __m512i u[4], scv[2];
    __m256i mins;   /* types with mins: for vpmaddwd against the bsums */
    __m512i negoff; /* types with an offset: -offset * sc, zero-extended */
    float d, dmin;
};

static inline __attribute__((always_inline)) void unpack(int type, const void *blk, struct unpacked *o)
{
    switch (type) {
    case HS_TYPE_Q2_K: {
        const hs_block_q2_k *b = blk;
        const __m128i sb = _mm_loadu_si128((const __m128i *)b->scales);
        const __m512i sc =
            _mm512_castsi256_si512(_mm256_cvtepu8_epi16(_mm_and_si128(sb, _mm_set1_epi8(0x0f))));
        o->mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sb, 4), _mm_set1_epi8(0x0f)));
        qk_q2_unpack(b->qs, o->u);
        o->scv[0] = _mm512_permutexvar_epi16(QK_PAIR_IDX16(0), sc);
        o->scv[1] = _mm512_permutexvar_epi16(QK_PAIR_IDX16(1), sc);
        o->d = _cvtsh_ss(b->d);
        o->dmin = _cvtsh_ss(b->dmin);
        break;
    }
    case HS_TYPE_Q3_K: {
        const hs_block_q3_k *b = blk;
        const __m256i sc16 = _mm256_cvtepi8_epi16(qk_q3_scales(b->scales));
        const __m512i sc = _mm512_castsi256_si512(sc16);
        qk_q2_unpack(b->qs, o->u);
        qk_q3_high(b->hmask, o->u);
        o->scv[0] = _mm512_permutexvar_epi16(QK_PAIR_IDX16(0), sc);
        o->scv[1] = _mm512_permutexvar_epi16(QK_PAIR_IDX16(1), sc);
        o->negoff = _mm512_zextsi256_si512(_mm256_mullo_epi16(sc16, _mm256_set1_epi16(-4)));
        o->d = _cvtsh_ss(b->d);
        break;
    }
    case HS_TYPE_Q4_K:
    case HS_TYPE_Q5_K: {
        /* Q5_K is Q4_K's layout with qh after the scales */
        const hs_block_q4_k *b = blk;
        const __m256i v16y = qk_q45_scales(b->scales);
        const __m512i v16 = _mm512_castsi256_si512(v16y);
        if (type == HS_TYPE_Q5_K) {
            const hs_block_q5_k *b5 = blk;
            qk_q4_unpack(b5->qs, o->u);
            qk_q5_high(b5->qh, o->u);
        } else {
            qk_q4_unpack(b->qs, o->u);
        }
        o->scv[0] = _mm512_permutexvar_epi16(QK_PAIR_IDX32(0), v16);
        o->scv[1] = _mm512_permutexvar_epi16(QK_PAIR_IDX32(1), v16);
        o->mins = qk_q45_mins(v16y);
        o->d = _cvtsh_ss(b->d);
        o->dmin = _cvtsh_ss(b->dmin);
        break;
    }
    default: { /* HS_TYPE_Q6_K */
        const hs_block_q6_k *b = blk;
        const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)b->scales));
        const __m512i sc = _mm512_castsi256_si512(sc16);
        qk_q6_unpack(b->ql, b->qh, o->u);
        o->scv[0] = _mm512_permutexvar_epi16(QK_PAIR_IDX16(0), sc);
        o->scv[1] = _mm512_permutexvar_epi16(QK_PAIR_IDX16(1), sc);
        o->negoff = _mm512_zextsi256_si512(_mm256_mullo_epi16(sc16, _mm256_set1_epi16(-32)));
        o->d = _cvtsh_ss(b->d);
        break;
    }
    }
}

static inline bool has_mins(int type)
{
    return type == HS_TYPE_Q2_K || type == HS_TYPE_Q4_K || type == HS_TYPE_Q5_K;
}

/* ------------------------------------------------------------- the tile -- */

/* For each block, each row is unpacked once and then met by every token:
 * sum(scale * u * y) in int32 lanes (starting from the offset term for Q3_K
 * and Q6_K), scaled by d * yd into the (row, token) accumulator, and for the
 * types with mins, sum(m * bsum) scaled by -dmin * yd beside it. */
static inline __attribute__((always_inline)) void tile(int type, size_t block_bytes, int n, float *s,
                                                       size_t ldc, const char *x, size_t bx, const char *y,
                                                       size_t by, int nr, int nc)
{
    assert(n % HS_QK_K == 0 && nr >= 1 && nr <= TR && nc >= 1 && nc <= TC);
    tile_acc acc;
    memset(&acc, 0, sizeof(acc));
    for (int i = 0; i < n / HS_QK_K; i++) {
        const __m512 ydv = token_scales(y, by, i, nc);
        for (int r = 0; r < nr; r++) {
            const char *blk = x + (size_t)r * bx + (size_t)i * block_bytes;
            /* the same block of the next tile's row, which matmul.c's run of
             * tiles reads next: the 4 interleaved row streams outrun the
             * hardware prefetcher (generated tokens wait on memory here
             * otherwise); prefetches never fault */
            const char *pf = blk + (size_t)TR * bx;
            QK_UNROLL(4)
            for (size_t o = 0; o < block_bytes; o += 64)
                _mm_prefetch(pf + o, _MM_HINT_T1);
            _mm_prefetch(pf + block_bytes - 1, _MM_HINT_T1);
            struct unpacked w;
            unpack(type, blk, &w);
            /* d * yd and -dmin * yd for every token, read back as broadcasts */
            float dd[16], dm[16];
            _mm512_storeu_ps(dd, _mm512_mul_ps(_mm512_set1_ps(w.d), ydv));
            if (has_mins(type))
                _mm512_storeu_ps(dm, _mm512_mul_ps(_mm512_set1_ps(-w.dmin), ydv));
            for (int c = 0; c < nc; c++) {
                const hs_block_q8_k *q = (const hs_block_q8_k *)(y + (size_t)c * by) + i;
                if (has_mins(type)) {
                    const __m512i ai = qk_dot256(qk_zero(), w.u, w.scv, q->qs);
                    const __m256 mm = _mm256_cvtepi32_ps(_mm256_madd_epi16(qk_bsums(q), w.mins));
                    const __m512 a =
                        _mm512_fmadd_ps(_mm512_cvtepi32_ps(ai), _mm512_set1_ps(dd[c]), acc.v[r][c]);
                    acc.v[r][c] = _mm512_fmadd_ps(_mm512_zextps256_ps512(mm), _mm512_set1_ps(dm[c]), a);
                } else {
                    const __m512i off = _mm512_madd_epi16(_mm512_zextsi256_si512(qk_bsums(q)), w.negoff);
                    const __m512i ai = qk_dot256(off, w.u, w.scv, q->qs);
                    acc.v[r][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ai), _mm512_set1_ps(dd[c]), acc.v[r][c]);
                }
            }
        }
    }
    store_tile(s, ldc, &acc, nr, nc);
}

void hs_q2_k_gemm_avx512(int n, float *s, size_t ldc, const void *x, size_t bx, const void *y, size_t by,
                         int nr, int nc)
{
    tile(HS_TYPE_Q2_K, sizeof(hs_block_q2_k), n, s, ldc, x, bx, y, by, nr, nc);
}

void hs_q3_k_gemm_avx512(int n, float *s, size_t ldc, const void *x, size_t bx, const void *y, size_t by,
                         int nr, int nc)
{
    tile(HS_TYPE_Q3_K, sizeof(hs_block_q3_k), n, s, ldc, x, bx, y, by, nr, nc);
}

void hs_q4_k_gemm_avx512(int n, float *s, size_t ldc, const void *x, size_t bx, const void *y, size_t by,
                         int nr, int nc)
{
    tile(HS_TYPE_Q4_K, sizeof(hs_block_q4_k), n, s, ldc, x, bx, y, by, nr, nc);
}

void hs_q5_k_gemm_avx512(int n, float *s, size_t ldc, const void *x, size_t bx, const void *y, size_t by,
                         int nr, int nc)
{
    tile(HS_TYPE_Q5_K, sizeof(hs_block_q5_k), n, s, ldc, x, bx, y, by, nr, nc);
}

void hs_q6_k_gemm_avx512(int n, float *s, size_t ldc, const void *x, size_t bx, const void *y, size_t by,
                         int nr, int nc)
{
    tile(HS_TYPE_Q6_K, sizeof(hs_block_q6_k), n, s, ldc, x, bx, y, by, nr, nc);
}
