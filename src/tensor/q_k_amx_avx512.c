/* Products of Q4_K and Q6_K weights against Q8_0 activations on AMX tiles,
 * for prompt batches (the two types of a Q4_K_M model). matmul.c drives
 * them as it drives q_legacy_amx_avx512.c's kernels, and with the same
 * activation panels (hs_q8_0_amx_pack): only the weight side differs.
 *
 * Both formats become int8 per 32-value block, as the legacy ones do:
 *  - Q4_K: the levels q in [0, 15] as they are, the block's scale d * sc and
 *    its offset -dmin * m. The offset multiplies the sum of the block's
 *    activations, d_a * sum(q_a), which hs_q8_0_amx_sums computes once per
 *    matmul next to the panels; in the tile kernel it is one more
 *    multiply-add per row and block.
 *  - Q6_K: the levels q - 32 in [-32, 31]; its scales go by 16 values, so a
 *    block has two (d * sc of each half) and the kernel multiplies each half
 *    on its own tile (K = 16), the halves' B operands being rows 0-3 and 4-7
 *    of the panel.
 * Integer sums per block are exact; the float scaling and accumulation are
 * in another order than the Q8_K vec_dot, and the activations are Q8_0
 * (per 32) rather than Q8_K (per 256): results agree with a dot of the
 * dequantized weights and activations to rounding.
 *
 * Built with the AVX-512 flags; the AMX instructions are enabled per
 * function, and matmul.c calls these only when hs_amx_enabled(). */
#include "tensor/amx_impl.h"
#include "tensor/q_k_avx512_impl.h" /* qk_q45_scales */

#include <immintrin.h>
#include <string.h>

/* ---------------------------------------------------- activation sums -- */

void hs_q8_0_amx_sums(float *out, const void *q, size_t q_row, int nc, int64_t n)
{
    const int nb = (int)(n / HS_QK8_0);
    const __m256i ones8 = _mm256_set1_epi8(1);
    const __m256i ones16 = _mm256_set1_epi16(1);
    for (int k = 0; k < nb; k++)
        for (int c = 0; c < 16; c++) {
            if (c >= nc) {
                out[(size_t)k * 16 + (size_t)c] = 0.0f;
                continue;
            }
            const hs_block_q8_0 *b = (const hs_block_q8_0 *)((const uint8_t *)q + (size_t)c * q_row) + k;
            const __m256i v = _mm256_loadu_si256((const __m256i *)b->qs);
            /* 1 * q in pairs to int16, then pairs to int32: exact */
            const __m256i s32 = _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, v), ones16);
            const __m128i h = _mm_add_epi32(_mm256_castsi256_si128(s32), _mm256_extracti128_si256(s32, 1));
            const __m128i h2 = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0x4e));
            const int sum = _mm_cvtsi128_si32(_mm_add_epi32(h2, _mm_shuffle_epi32(h2, 0xb1)));
            out[(size_t)k * 16 + (size_t)c] = _cvtsh_ss(b->d) * (float)sum;
        }
}

/* ------------------------------------------------------------ unpack -- */

void hs_q4_k_amx_rows(hs_amx_k_rows *out, const void *x, size_t bx, int nr, int64_t n)
{
    const int nsb = (int)(n / HS_QK_K);
    const __m256i lo4 = _mm256_set1_epi8(0x0f);
    out->nr = nr;
    memset(out->d, 0, (size_t)nsb * 8 * 16 * sizeof(float));
    memset(out->m, 0, (size_t)nsb * 8 * 16 * sizeof(float));
    for (int r = 0; r < nr; r++) {
        const hs_block_q4_k *xr = (const hs_block_q4_k *)((const uint8_t *)x + (size_t)r * bx);
        int8_t *dst = out->q + (size_t)r * (size_t)n;
        for (int i = 0; i < nsb; i++) {
            const float d = _cvtsh_ss(xr[i].d), dmin = _cvtsh_ss(xr[i].dmin);
            /* qs[32g + l]: element 64g + l (low nibble), 64g + 32 + l (high) */
            for (int g = 0; g < 4; g++) {
                const __m256i v = _mm256_loadu_si256((const __m256i *)(xr[i].qs + 32 * g));
                _mm256_storeu_si256((__m256i *)(dst + 256 * i + 64 * g), _mm256_and_si256(v, lo4));
                _mm256_storeu_si256((__m256i *)(dst + 256 * i + 64 * g + 32),
                                    _mm256_and_si256(_mm256_srli_epi16(v, 4), lo4));
            }
            /* d * sc_j and -dmin * m_j, all 16 in one multiply */
            float dm[16];
            _mm512_storeu_ps(dm, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepu16_epi32(qk_q45_scales(xr[i].scales))),
                                               _mm512_insertf32x8(_mm512_set1_ps(d), _mm256_set1_ps(-dmin), 1)));
            for (int j = 0; j < 8; j++) {
                const size_t at = (size_t)(8 * i + j) * 16 + (size_t)r;
                out->d[at] = dm[j];
                out->m[at] = dm[8 + j];
            }
        }
    }
}

void hs_q6_k_amx_rows(hs_amx_k_rows *out, const void *x, size_t bx, int nr, int64_t n)
{
    const int nsb = (int)(n / HS_QK_K);
    const __m256i lo4 = _mm256_set1_epi8(0x0f), hi2 = _mm256_set1_epi8(0x30), off = _mm256_set1_epi8(32);
    out->nr = nr;
    memset(out->d, 0, (size_t)nsb * 8 * 16 * sizeof(float));
    memset(out->m, 0, (size_t)nsb * 8 * 16 * sizeof(float));
    for (int r = 0; r < nr; r++) {
        const hs_block_q6_k *xr = (const hs_block_q6_k *)((const uint8_t *)x + (size_t)r * bx);
        int8_t *dst = out->q + (size_t)r * (size_t)n;
        for (int i = 0; i < nsb; i++) {
            const float d = _cvtsh_ss(xr[i].d);
            /* Half h: ql[64h + l] holds +0 (low) and +64 (high), ql[64h + 32
             * + l] +32 and +96, qh[32h + l] their top bits in pairs 0-1 ..
             * 6-7; shifting 16-bit lanes only moves a neighbour's bits into
             * positions the masks drop. */
            for (int h = 0; h < 2; h++) {
                const __m256i a = _mm256_loadu_si256((const __m256i *)(xr[i].ql + 64 * h));
                const __m256i b = _mm256_loadu_si256((const __m256i *)(xr[i].ql + 64 * h + 32));
                const __m256i t = _mm256_loadu_si256((const __m256i *)(xr[i].qh + 32 * h));
                const __m256i v0 =
                    _mm256_or_si256(_mm256_and_si256(a, lo4), _mm256_and_si256(_mm256_slli_epi16(t, 4), hi2));
                const __m256i v1 =
                    _mm256_or_si256(_mm256_and_si256(b, lo4), _mm256_and_si256(_mm256_slli_epi16(t, 2), hi2));
                const __m256i v2 =
                    _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(a, 4), lo4), _mm256_and_si256(t, hi2));
                const __m256i v3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b, 4), lo4),
                                                   _mm256_and_si256(_mm256_srli_epi16(t, 2), hi2));
                int8_t *o = dst + 256 * i + 128 * h;
                _mm256_storeu_si256((__m256i *)o, _mm256_sub_epi8(v0, off));
                _mm256_storeu_si256((__m256i *)(o + 32), _mm256_sub_epi8(v1, off));
                _mm256_storeu_si256((__m256i *)(o + 64), _mm256_sub_epi8(v2, off));
                _mm256_storeu_si256((__m256i *)(o + 96), _mm256_sub_epi8(v3, off));
            }
            for (int j = 0; j < 8; j++) {
                const size_t at = (size_t)(8 * i + j) * 16 + (size_t)r;
                out->d[at] = d * (float)xr[i].scales[2 * j];
                out->m[at] = d * (float)xr[i].scales[2 * j + 1];
            }
        }
    }
}

/* ------------------------------------------------------------- gemm -- */

/* acc (row r, 16 tokens) to s[c * ldc + r] for the group's nc tokens: each
 * token's column gathered from the transposed tile, one masked store. */
static void store_group(float *s, size_t ldc, const __m512 acc[16], int nr, int nc)
{
    float out[16][16] __attribute__((aligned(64)));
    for (int r = 0; r < 16; r++)
        _mm512_store_ps(out[r], acc[r]);
    const __m512i col = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), _mm512_set1_epi32(16));
    const __mmask16 m = nr >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << nr) - 1);
    for (int c = 0; c < nc; c++)
        _mm512_mask_storeu_ps(s + (size_t)c * ldc, m, _mm512_i32gather_ps(col, &out[0][c], 4));
}

/* Tile numbers: literal because the intrinsics paste them into the asm. */
#define TILE_A 6
#define TILE_B 7

/* The tiles are software-pipelined: block k + 1's products go to the other
 * C tile and buffer before block k's are scaled, so the tile unit works while
 * the vector units scale, instead of each waiting on the other. */

/* Block k of the rows (aq, stride n) times block k of the group's panels
 * (pg) into tile ct, stored to buf. */
#define Q4_TILES(ct, buf, k)                                                                                 \
    do {                                                                                                     \
        _tile_loadd(TILE_A, aq + (size_t)(k) * HS_QK8_0, (long)n);                                           \
        _tile_loadd(TILE_B, pg[k].b, 64);                                                                    \
        _tile_zero(ct);                                                                                      \
        _tile_dpbssd(ct, TILE_A, TILE_B);                                                                    \
        _tile_stored(ct, buf, 64);                                                                           \
    } while (0)

static inline __attribute__((always_inline)) void
q4_scale(__m512 acc[16], const int32_t (*is)[16], const float *dk, const float *mk, __m512 dy, __m512 sy)
{
#pragma GCC unroll 16
    for (int r = 0; r < 16; r++) {
        const __m512 p = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_load_si512(is[r])), dy);
        acc[r] = _mm512_fmadd_ps(p, _mm512_set1_ps(dk[r]), acc[r]);
        acc[r] = _mm512_fmadd_ps(sy, _mm512_set1_ps(mk[r]), acc[r]);
    }
}

AMX void hs_q4_k_amx_gemm(int n, float *s, size_t ldc, const hs_amx_k_rows *rows,
                          const hs_q8_0_amx_panel *panels, size_t panel_stride, const float *sums,
                          size_t sums_stride, int n_groups, int nc_last)
{
    const int nr = rows->nr;
    const int nb = n / HS_QK8_0; /* even: n is a multiple of 256 */
    const int8_t *aq = rows->q;
    const float *rd = rows->d, *rm = rows->m;
    struct hs_tilecfg cfg;
    hs_tilecfg_init(&cfg);
    hs_tile_shape(&cfg, 0, nr, 64);
    hs_tile_shape(&cfg, 1, nr, 64);
    hs_tile_shape(&cfg, TILE_A, nr, 32);
    hs_tile_shape(&cfg, TILE_B, 8, 64);
    _tile_loadconfig(&cfg);

    int32_t is0[16][16] __attribute__((aligned(64)));
    int32_t is1[16][16] __attribute__((aligned(64)));
    memset(is0, 0, sizeof is0); /* rows past nr are never stored by the tile */
    memset(is1, 0, sizeof is1);

    for (int g = 0; g < n_groups; g++) {
        const hs_q8_0_amx_panel *pg =
            (const hs_q8_0_amx_panel *)((const uint8_t *)panels + (size_t)g * panel_stride);
        const float *sg = (const float *)((const uint8_t *)sums + (size_t)g * sums_stride);
        __m512 acc[16];
        for (int r = 0; r < 16; r++)
            acc[r] = _mm512_setzero_ps();
        Q4_TILES(0, is0, 0);
        for (int k = 0; k < nb; k += 2) {
            Q4_TILES(1, is1, k + 1);
            q4_scale(acc, (const int32_t(*)[16])is0, rd + (size_t)k * 16, rm + (size_t)k * 16,
                     _mm512_load_ps(pg[k].d), _mm512_load_ps(sg + (size_t)k * 16));
            if (k + 2 < nb)
                Q4_TILES(0, is0, k + 2);
            q4_scale(acc, (const int32_t(*)[16])is1, rd + (size_t)(k + 1) * 16, rm + (size_t)(k + 1) * 16,
                     _mm512_load_ps(pg[k + 1].d), _mm512_load_ps(sg + (size_t)(k + 1) * 16));
        }
        store_group(s + (size_t)(16 * g) * ldc, ldc, acc, nr, g == n_groups - 1 ? nc_last : 16);
    }
    _tile_release();
}

#define TILE_A2 4
#define TILE_B2 5

/* Q6_K: the two halves of block k (K = 16 each) into tiles c0 and c1. */
#define Q6_TILES(c0, c1, buf0, buf1, k)                                                                      \
    do {                                                                                                     \
        const int8_t *qk_ = aq + (size_t)(k) * HS_QK8_0;                                                     \
        _tile_loadd(TILE_A, qk_, (long)n);                                                                   \
        _tile_loadd(TILE_B, pg[k].b[0], 64);                                                                 \
        _tile_zero(c0);                                                                                      \
        _tile_dpbssd(c0, TILE_A, TILE_B);                                                                    \
        _tile_loadd(TILE_A2, qk_ + 16, (long)n);                                                             \
        _tile_loadd(TILE_B2, pg[k].b[4], 64);                                                                \
        _tile_zero(c1);                                                                                      \
        _tile_dpbssd(c1, TILE_A2, TILE_B2);                                                                  \
        _tile_stored(c0, buf0, 64);                                                                          \
        _tile_stored(c1, buf1, 64);                                                                          \
    } while (0)

static inline __attribute__((always_inline)) void q6_scale(__m512 acc[16], const int32_t (*is0)[16],
                                                           const int32_t (*is1)[16], const float *d0,
                                                           const float *d1, __m512 dy)
{
#pragma GCC unroll 16
    for (int r = 0; r < 16; r++) {
        const __m512 h0 = _mm512_cvtepi32_ps(_mm512_load_si512(is0[r]));
        const __m512 h1 = _mm512_cvtepi32_ps(_mm512_load_si512(is1[r]));
        const __m512 w = _mm512_fmadd_ps(h1, _mm512_set1_ps(d1[r]), _mm512_mul_ps(h0, _mm512_set1_ps(d0[r])));
        acc[r] = _mm512_fmadd_ps(w, dy, acc[r]);
    }
}

AMX void hs_q6_k_amx_gemm(int n, float *s, size_t ldc, const hs_amx_k_rows *rows,
                          const hs_q8_0_amx_panel *panels, size_t panel_stride, const float *sums,
                          size_t sums_stride, int n_groups, int nc_last)
{
    (void)sums;
    (void)sums_stride;
    const int nr = rows->nr;
    const int nb = n / HS_QK8_0; /* even: n is a multiple of 256 */
    const int8_t *aq = rows->q;
    const float *rd = rows->d, *rm = rows->m;
    struct hs_tilecfg cfg;
    hs_tilecfg_init(&cfg);
    for (int t = 0; t < 4; t++)
        hs_tile_shape(&cfg, t, nr, 64);
    hs_tile_shape(&cfg, TILE_A, nr, 16);
    hs_tile_shape(&cfg, TILE_A2, nr, 16);
    hs_tile_shape(&cfg, TILE_B, 4, 64);
    hs_tile_shape(&cfg, TILE_B2, 4, 64);
    _tile_loadconfig(&cfg);

    /* [stage][half] */
    int32_t is[2][2][16][16] __attribute__((aligned(64)));
    memset(is, 0, sizeof is); /* rows past nr are never stored by the tile */

    for (int g = 0; g < n_groups; g++) {
        const hs_q8_0_amx_panel *pg =
            (const hs_q8_0_amx_panel *)((const uint8_t *)panels + (size_t)g * panel_stride);
        __m512 acc[16];
        for (int r = 0; r < 16; r++)
            acc[r] = _mm512_setzero_ps();
        Q6_TILES(0, 1, is[0][0], is[0][1], 0);
        for (int k = 0; k < nb; k += 2) {
            Q6_TILES(2, 3, is[1][0], is[1][1], k + 1);
            q6_scale(acc, (const int32_t(*)[16])is[0][0], (const int32_t(*)[16])is[0][1], rd + (size_t)k * 16,
                     rm + (size_t)k * 16, _mm512_load_ps(pg[k].d));
            if (k + 2 < nb)
                Q6_TILES(0, 1, is[0][0], is[0][1], k + 2);
            q6_scale(acc, (const int32_t(*)[16])is[1][0], (const int32_t(*)[16])is[1][1],
                     rd + (size_t)(k + 1) * 16, rm + (size_t)(k + 1) * 16, _mm512_load_ps(pg[k + 1].d));
        }
        store_group(s + (size_t)(16 * g) * ldc, ldc, acc, nr, g == n_groups - 1 ? nc_last : 16);
    }
    _tile_release();
}
