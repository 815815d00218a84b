/* Tile kernels for prompt processing: up to 4 rows of Q4_K or Q6_K weights
 * against up to 16 rows of Q8_K activations per call (hs_gemm_fn).
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
 * sums are reduced four rows at a time by a transposing add tree. */
#include "tensor/q_k_avx512_impl.h"

#define TR HS_Q_K_GEMM_ROWS
#define TC HS_Q_K_GEMM_COLS

/* The tile's accumulators: acc[r][c] for row r, token c, 16 lanes each. */
typedef struct {
    __m512 v[TR][TC];
} tile_acc;

/* s[c * ldc + r] = the sum of acc[r][c]'s lanes. Full-height columns are
 * reduced by a transposing tree: four vectors become one whose 128-bit lanes
 * each hold partial sums of all four, then the lanes are added. */
static void store_tile(float *s, size_t ldc, const tile_acc *acc, int nr, int nc) {
    for (int c = 0; c < nc; c++) {
        if (nr == TR && TR == 4) {
            const __m512 a0 = acc->v[0][c], a1 = acc->v[1][c], a2 = acc->v[2][c], a3 = acc->v[3][c];
            /* per 128-bit lane: [a0+, a1+, a0+, a1+] then [a0, a1, a2, a3] partials */
            const __m512 t01 = _mm512_add_ps(_mm512_unpacklo_ps(a0, a1), _mm512_unpackhi_ps(a0, a1));
            const __m512 t23 = _mm512_add_ps(_mm512_unpacklo_ps(a2, a3), _mm512_unpackhi_ps(a2, a3));
            const __m512 q = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t01), _mm512_castps_pd(t23))),
                                           _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t01), _mm512_castps_pd(t23))));
            const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(q),
                                           _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(q), 1)));
            _mm_storeu_ps(s + (size_t)c * ldc, _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)));
        } else {
            for (int r = 0; r < nr; r++)
                s[(size_t)c * ldc + r] = _mm512_reduce_add_ps(acc->v[r][c]);
        }
    }
}

/* yd of block i for each token of the tile (unused lanes zero). */
static inline __m512 token_scales(const char *y, size_t by, int i, int nc) {
    float yd[16] = {0};
    for (int c = 0; c < nc; c++)
        yd[c] = ((const hs_block_q8_k *)(y + (size_t)c * by))[i].d;
    return _mm512_loadu_ps(yd);
}

/* ----------------------------------------------------------------- Q4_K -- */

void hs_q4_k_gemm_avx512(int n, float *s, size_t ldc, const void *vx, size_t bx, const void *vy, size_t by, int nr,
                         int nc) {
    assert(n % HS_QK_K == 0 && nr >= 1 && nr <= TR && nc >= 1 && nc <= TC);
    const char *x = vx, *y = vy;
    const __m512i idx0 = qk_pair_idx(0, 0), idx1 = qk_pair_idx(1, 0);
    tile_acc acc;
    memset(&acc, 0, sizeof(acc));
    for (int i = 0; i < n / HS_QK_K; i++) {
        const __m512 ydv = token_scales(y, by, i, nc);
        for (int r = 0; r < nr; r++) {
            const hs_block_q4_k *b = (const hs_block_q4_k *)(x + (size_t)r * bx) + i;
            const __m256i v16y = qk_q45_scales(b->scales);
            const __m512i v16 = _mm512_castsi256_si512(v16y);
            __m512i u[4], scv[2];
            qk_q4_unpack(b->qs, u);
            scv[0] = _mm512_permutexvar_epi16(idx0, v16);
            scv[1] = _mm512_permutexvar_epi16(idx1, v16);
            const __m256i mins = qk_q45_mins(v16y);
            /* d * yd and -dmin * yd for every token, read back as broadcasts */
            float dd[16], dm[16];
            _mm512_storeu_ps(dd, _mm512_mul_ps(_mm512_set1_ps(_cvtsh_ss(b->d)), ydv));
            _mm512_storeu_ps(dm, _mm512_mul_ps(_mm512_set1_ps(-_cvtsh_ss(b->dmin)), ydv));
            for (int c = 0; c < nc; c++) {
                const hs_block_q8_k *q = (const hs_block_q8_k *)(y + (size_t)c * by) + i;
                const __m512i ai = qk_dot256(qk_zero(), u, scv, q->qs);
                const __m256 mm = _mm256_cvtepi32_ps(_mm256_madd_epi16(qk_bsums(q), mins));
                const __m512 a = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ai), _mm512_set1_ps(dd[c]), acc.v[r][c]);
                acc.v[r][c] = _mm512_fmadd_ps(_mm512_zextps256_ps512(mm), _mm512_set1_ps(dm[c]), a);
            }
        }
    }
    store_tile(s, ldc, &acc, nr, nc);
}

/* ----------------------------------------------------------------- Q6_K -- */

void hs_q6_k_gemm_avx512(int n, float *s, size_t ldc, const void *vx, size_t bx, const void *vy, size_t by, int nr,
                         int nc) {
    assert(n % HS_QK_K == 0 && nr >= 1 && nr <= TR && nc >= 1 && nc <= TC);
    const char *x = vx, *y = vy;
    const __m512i idx0 = qk_pair_idx(0, 1), idx1 = qk_pair_idx(1, 1);
    tile_acc acc;
    memset(&acc, 0, sizeof(acc));
    for (int i = 0; i < n / HS_QK_K; i++) {
        const __m512 ydv = token_scales(y, by, i, nc);
        for (int r = 0; r < nr; r++) {
            const hs_block_q6_k *b = (const hs_block_q6_k *)(x + (size_t)r * bx) + i;
            __m512i u[4], scv[2];
            qk_q6_unpack(b->ql, b->qh, u);
            const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)b->scales));
            const __m512i sc = _mm512_castsi256_si512(sc16);
            scv[0] = _mm512_permutexvar_epi16(idx0, sc);
            scv[1] = _mm512_permutexvar_epi16(idx1, sc);
            const __m512i neg32 = _mm512_zextsi256_si512(_mm256_mullo_epi16(sc16, _mm256_set1_epi16(-32)));
            float dd[16];
            _mm512_storeu_ps(dd, _mm512_mul_ps(_mm512_set1_ps(_cvtsh_ss(b->d)), ydv));
            for (int c = 0; c < nc; c++) {
                const hs_block_q8_k *q = (const hs_block_q8_k *)(y + (size_t)c * by) + i;
                /* the -32 of every level: -32 * sum(sc * bsum) */
                const __m512i ai = qk_dot256(_mm512_madd_epi16(_mm512_zextsi256_si512(qk_bsums(q)), neg32), u, scv, q->qs);
                acc.v[r][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ai), _mm512_set1_ps(dd[c]), acc.v[r][c]);
            }
        }
    }
    store_tile(s, ldc, &acc, nr, nc);
}
