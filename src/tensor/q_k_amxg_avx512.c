/* Q4_K weights against Q8_K activations on AMX tiles, for generated tokens:
 * one kernel for 1 to 8 tokens, so a token's result is the same alone as in
 * a decode batch (matmul.c uses it for every non-prompt Q4_K product where
 * AMX is enabled; hs_q4_k_amxg_ref in q_k.c is its scalar definition).
 *
 * Why: the VNNI tiles (q_k_gemm_avx512.c) spend per (row, token, block)
 * about 13 vector uops; a tile multiply does the integer part of 16 rows x
 * 8 tokens in a few instructions, so what is left per (row, block) is the
 * unpacking of the levels and one scaling step for all 8 tokens at once.
 *
 * The integer sums. Levels go to the tiles as q - 8 (signed, [-8, 7]), so a
 * sub-block's sum S' = sum((q - 8) * y) is at most 32 * 8 * 127 = 32512 in
 * magnitude and fits the low 16 bits of its int32; vpdpwssd against (sc, 0)
 * pairs then applies the sub-block scales to C's lanes directly. The 8
 * removed from every level comes back as 8 * sum(sc * B) (B: the
 * activations' sub-block sums), one more vpdpwssd per two sub-block pairs,
 * so the integer total is sum(sc * S) exactly, as in the dot products.
 *
 * The tile layout: A = 16 weight rows x 64 levels (group g: sub-blocks 2g,
 * 2g + 1); B = the activations with one column per (token c, parity p):
 * column 2c + p holds token c's elements of sub-block 2g + p and zeros for
 * the other sub-block, so C[r][2c + p] is S' of (row r, token c, sub-block
 * 2g + p). Each C row is one zmm of 8 tokens x 2 parities.
 *
 * The float steps, per (row, token, parity p), per block: ai = fma(I_p,
 * d * yd, ai) and am = fma(M_p, -dmin * yd, am), where I_p = sum over the
 * sub-blocks j = p, p + 2, p + 4, p + 6 of sc_j * S_j and M_p = sum of
 * m_j * B_j over the same j; the result is (ai_0 + ai_1) + (am_0 + am_1)
 * (hs_q4_k_amxg_ref; hs_q4_k_vec_dot_amxg_avx512 does the same for one
 * token without tiles, as fast as the dot product). The lane of a (token,
 * parity) changes with the token's place in the group, the operations do
 * not: a token's bits do not depend on its batch.
 *
 * Measured (bench/bench_gemm_qk.c, one thread, 8192 x 2048): a call costs
 * about the same for 1 to 8 tokens, 2.0-2.3 times one token's dot product,
 * where the VNNI tile takes 4.2 times for 8 tokens. */
#include "tensor/amx_impl.h"
#include "tensor/q_k_avx512_impl.h"

size_t hs_q4_k_amxg_panel_bytes(int64_t n)
{
    return (size_t)(n / HS_QK_K) * sizeof(hs_q4_k_amxg_panel);
}

void hs_q4_k_amxg_pack(hs_q4_k_amxg_panel *out, const void *q, size_t q_row, int nc, int64_t n)
{
    const int nb = (int)(n / HS_QK_K);
    memset(out, 0, (size_t)nb * sizeof(*out));
    for (int c = 0; c < nc; c++) {
        const hs_block_q8_k *y = (const hs_block_q8_k *)((const uint8_t *)q + (size_t)c * q_row);
        for (int i = 0; i < nb; i++) {
            hs_q4_k_amxg_panel *p = &out[i];
            for (int g = 0; g < 4; g++)
                for (int kk = 0; kk < 16; kk++) /* kk < 8: sub-block 2g (column 2c), else 2g + 1 */
                    memcpy(&p->b[g][kk][4 * (2 * c + (kk >= 8))], y[i].qs + 64 * g + 4 * kk, 4);
            p->yd[2 * c] = y[i].d;
            p->yd[2 * c + 1] = y[i].d;
            int bs[8];
            for (int j = 0; j < 8; j++)
                bs[j] = y[i].bsums[2 * j] + y[i].bsums[2 * j + 1];
            for (int par = 0; par < 2; par++) {
                const int l = 2 * (2 * c + par);
                for (int h = 0; h < 2; h++) {
                    /* int16 pair (B of sub-block 4h + p, of 4h + 2 + p) */
                    p->bb[h][l] = (int16_t)bs[4 * h + par];
                    p->bb[h][l + 1] = (int16_t)bs[4 * h + 2 + par];
                    p->bb8[h][l] = (int16_t)(8 * bs[4 * h + par]);
                    p->bb8[h][l + 1] = (int16_t)(8 * bs[4 * h + 2 + par]);
                }
            }
        }
    }
}

/* Tile numbers: literal because the intrinsics paste them into the asm. */
#define T_A0 4
#define T_A1 5
#define T_B0 6
#define T_B1 7

/* Per-row scale patterns of one block, as int16 in 8 qwords, each broadcast
 * to a vpdpwssd operand: q0-q3 (sc_2g, 0, sc_2g+1, 0) against C of group g;
 * q4, q5 (sc_4h, sc_4h+2, sc_4h+1, sc_4h+3) against bb8[h]; q6, q7 the same
 * with the mins, against bb[h]. From qk_q45_scales' sc 0-7, m 8-15; zeros
 * where the mask is clear. */
static inline __m512i scale_patterns(const uint8_t scales[12])
{
    const __m512i idx = _mm512_set_epi16(15, 13, 14, 12, 11, 9, 10, 8, 7, 5, 6, 4, 3, 1, 2, 0, /* q7 .. q4 */
                                         0, 7, 0, 6, 0, 5, 0, 4, 0, 3, 0, 2, 0, 1, 0, 0);      /* q3 .. q0 */
    return _mm512_maskz_permutexvar_epi16(0xffff5555u, idx, _mm512_castsi256_si512(qk_q45_scales(scales)));
}

/* One group of 16 rows in flight: block i + 2 is unpacked while block i + 1
 * is on the tiles and block i is scaled (slots i % 3 and i % 2), which keeps
 * each block's stores a whole phase ahead of the loads that read them (on
 * this machine it measured the same as two slots, within noise). */
struct group {
    int8_t a[3][4][16][64];  /* unpacked levels - 8, per slot, group g, row */
    int32_t c[2][4][16][16]; /* tile results */
    int64_t pat[3][16][8];   /* scale_patterns per row */
    float dm[3][16][2];      /* d and dmin per row */
};

/* Block i of rows r < nr into slot b. */
static inline void unpack_block(struct group *G, int b, const uint8_t *x, size_t bx, int i, int nr)
{
    const __m512i m4 = _mm512_set1_epi8(0x0f), c8 = _mm512_set1_epi8(8);
    const __m512i cnt = _mm512_set_epi64(4, 4, 4, 4, 0, 0, 0, 0);
    for (int r = 0; r < nr; r++) {
        const hs_block_q4_k *blk = (const hs_block_q4_k *)(x + (size_t)r * bx) + i;
        /* the same block of the next group's row: what the group after
         * this one reads (prefetches never fault) */
        const char *pf = (const char *)blk + 16 * bx;
        _mm_prefetch(pf, _MM_HINT_T1);
        _mm_prefetch(pf + 64, _MM_HINT_T1);
        _mm_prefetch(pf + sizeof(*blk) - 1, _MM_HINT_T1);
        QK_UNROLL(4)
        for (int g = 0; g < 4; g++) {
            const __m512i u = _mm512_and_si512(_mm512_srlv_epi64(qk_bcast256(blk->qs + 32 * g), cnt), m4);
            _mm512_store_si512(G->a[b][g][r], _mm512_sub_epi8(u, c8));
        }
        _mm512_store_si512(G->pat[b][r], scale_patterns(blk->scales));
        /* d and dmin are adjacent halves: one load, one conversion */
        uint32_t h;
        memcpy(&h, &blk->d, 4);
        _mm_storel_pi((__m64 *)G->dm[b][r], _mm_cvtph_ps(_mm_cvtsi32_si128((int)h)));
    }
}

AMX static inline void tiles_block(struct group *G, int a, int b, const hs_q4_k_amxg_panel *p)
{
    /* the four groups on C tiles 0-3, A and B alternating between two tiles */
#define QK_AMXG_G(g, ta, tb)                                                                                 \
    do {                                                                                                     \
        _tile_loadd(ta, G->a[a][g], 64);                                                                     \
        _tile_loadd(tb, p->b[g], 64);                                                                        \
        _tile_zero(g);                                                                                       \
        _tile_dpbssd(g, ta, tb);                                                                             \
        _tile_stored(g, G->c[b][g], 64);                                                                     \
    } while (0)
    QK_AMXG_G(0, T_A0, T_B0);
    QK_AMXG_G(1, T_A1, T_B1);
    QK_AMXG_G(2, T_A0, T_B0);
    QK_AMXG_G(3, T_A1, T_B1);
#undef QK_AMXG_G
}

static inline __m512i bq(const int64_t *p)
{
    return _mm512_set1_epi64(*p);
}

/* The block unpacked in slot a, with its tile results in slot b, into the
 * rows' accumulators. */
static inline void scale_block(__m512 *ai, __m512 *am, const struct group *G, int a, int b,
                               const hs_q4_k_amxg_panel *p, int nr)
{
    const __m512 yd = _mm512_load_ps(p->yd);
    /* dmin * -yd is -dmin * yd exactly */
    const __m512 nyd = _mm512_xor_ps(yd, _mm512_set1_ps(-0.0f));
    const __m512i bb0 = _mm512_load_si512(p->bb[0]), bb1 = _mm512_load_si512(p->bb[1]);
    const __m512i b80 = _mm512_load_si512(p->bb8[0]), b81 = _mm512_load_si512(p->bb8[1]);
    for (int r = 0; r < nr; r++) {
        const int64_t *q = G->pat[a][r];
        __m512i I = _mm512_madd_epi16(b80, bq(q + 4));
        I = _mm512_dpwssd_epi32(I, b81, bq(q + 5));
        I = _mm512_dpwssd_epi32(I, _mm512_load_si512(G->c[b][0][r]), bq(q + 0));
        I = _mm512_dpwssd_epi32(I, _mm512_load_si512(G->c[b][1][r]), bq(q + 1));
        I = _mm512_dpwssd_epi32(I, _mm512_load_si512(G->c[b][2][r]), bq(q + 2));
        I = _mm512_dpwssd_epi32(I, _mm512_load_si512(G->c[b][3][r]), bq(q + 3));
        __m512i M = _mm512_madd_epi16(bb0, bq(q + 6));
        M = _mm512_dpwssd_epi32(M, bb1, bq(q + 7));
        ai[r] =
            _mm512_fmadd_ps(_mm512_cvtepi32_ps(I), _mm512_mul_ps(yd, _mm512_set1_ps(G->dm[a][r][0])), ai[r]);
        am[r] =
            _mm512_fmadd_ps(_mm512_cvtepi32_ps(M), _mm512_mul_ps(nyd, _mm512_set1_ps(G->dm[a][r][1])), am[r]);
    }
}

AMX void hs_q4_k_amxg_gemm(int n, float *s, size_t ldc, const void *vx, size_t bx,
                           const hs_q4_k_amxg_panel *p, int nr, int nc)
{
    assert(n % HS_QK_K == 0 && nc >= 1 && nc <= 8 && nr >= 1);
    const int nb = n / HS_QK_K;
    struct hs_tilecfg cfg;
    hs_tilecfg_init(&cfg);
    for (int t = 0; t < 8; t++)
        hs_tile_shape(&cfg, t, 16, 64);
    _tile_loadconfig(&cfg);
    static _Thread_local struct group G __attribute__((aligned(64)));
    for (int r0 = 0; r0 < nr; r0 += 16) {
        const int gr = nr - r0 < 16 ? nr - r0 : 16;
        const uint8_t *x = (const uint8_t *)vx + (size_t)r0 * bx;
        if (gr < 16) /* rows past gr meet the tiles as zeros */
            memset(G.a, 0, sizeof(G.a));
        __m512 ai[16], am[16];
        for (int r = 0; r < 16; r++) {
            ai[r] = _mm512_setzero_ps();
            am[r] = _mm512_setzero_ps();
        }
        unpack_block(&G, 0, x, bx, 0, gr);
        if (nb > 1)
            unpack_block(&G, 1, x, bx, 1, gr);
        tiles_block(&G, 0, 0, &p[0]);
        for (int i = 0; i < nb; i++) {
            if (i + 2 < nb)
                unpack_block(&G, (i + 2) % 3, x, bx, i + 2, gr);
            if (i + 1 < nb)
                tiles_block(&G, (i + 1) % 3, (i + 1) & 1, &p[i + 1]);
            scale_block(ai, am, &G, i % 3, i & 1, &p[i], gr);
        }
        for (int r = 0; r < gr; r++) {
            float vi[16] __attribute__((aligned(64))), vm[16] __attribute__((aligned(64)));
            _mm512_store_ps(vi, ai[r]);
            _mm512_store_ps(vm, am[r]);
            for (int c = 0; c < nc; c++)
                s[(size_t)c * ldc + (size_t)(r0 + r)] =
                    (vi[2 * c] + vi[2 * c + 1]) + (vm[2 * c] + vm[2 * c + 1]);
        }
    }
    _tile_release();
}
