/* Products against Q8_0 activations on AMX tiles (Sapphire Rapids and
 * later), for prompt batches of Q8_0, Q4_0 and Q5_0 weights, unpacked 16
 * rows at a time to contiguous int8 rows and float scales (for Q8_0 a copy:
 * contiguous rows load faster into tiles than 34-byte-strided blocks, and the
 * scales come out ready for every token group). Built with the AVX-512 flags;
 * the AMX instructions are enabled per function, and matmul.c calls these
 * only when hs_amx_enabled() said the CPU has AMX-INT8 and the kernel granted
 * this process the tile state.
 *
 * One tdpbssd multiplies a 16 x 32 tile of weight quants (16 rows, one block
 * each) by a 32 x 16 tile of activation quants (one block of 16 tokens) into
 * 16 x 16 exact int32 block sums. The B operand must be in the "VNNI" layout,
 * four consecutive k of one column side by side: b[kk][4 c + i] =
 * y_c[4 kk + i]. Activations are packed into that layout once per matmul
 * (hs_q8_0_amx_pack), with their scales as floats, and every weight row group
 * then reuses them. Each block's int32 sums are scaled by d_x * d_y and
 * accumulated in float, as the reference does, but in a different order:
 * results agree with the reference to rounding, not bit for bit. */
#include "tensor/amx_impl.h"
#include "tensor/qtype_impl.h"

#include <immintrin.h>
#include <string.h>

/* Tile numbers: literal because the intrinsics paste them into the asm. */
#define TILE_C 0
#define TILE_A 1
#define TILE_B 2

static inline __m512i lane_offsets(size_t stride) {
    return _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                              _mm512_set1_epi32((int)stride));
}

/* 16 halves, one at each of base + lane * stride (lanes in m), as floats. */
static inline __m512 gather_halves(const uint8_t *base, __m512i offsets, __mmask16 m) {
    const __m512i dw = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m, offsets, base, 1);
    return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dw));
}

size_t hs_q8_0_amx_panel_bytes(int64_t n) { return (size_t)(n / HS_QK8_0) * sizeof(hs_q8_0_amx_panel); }

/* Packs tokens [0, nc) (nc <= 16) of Q8_0 rows q (q_row bytes apart, n
 * values each) into one panel per block; tokens past nc are zero, so they
 * add nothing. Output row kk gathers dword kk of every token's block. */
void hs_q8_0_amx_pack(hs_q8_0_amx_panel *out, const void *q, size_t q_row, int nc, int64_t n) {
    const uint8_t *base = q;
    const __mmask16 m = nc >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << nc) - 1);
    const __m512i tok = lane_offsets(q_row);
    for (int64_t k = 0; k < n / HS_QK8_0; k++) {
        const uint8_t *blk = base + (size_t)k * sizeof(hs_block_q8_0);
        for (int kk = 0; kk < 8; kk++) {
            const __m512i v = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m, tok, blk + 2 + 4 * kk, 1);
            _mm512_store_si512(out[k].b[kk], v);
        }
        _mm512_store_ps(out[k].d, gather_halves(blk, tok, m));
    }
}

/* s[c * ldc + r] for the rows' r < nr and c < 16 (n_groups - 1) + nc_last
 * tokens of the panels. */
AMX void hs_i8_amx_gemm(int n, float *s, size_t ldc, const hs_amx_rows *rows, const hs_q8_0_amx_panel *panels,
                        size_t panel_stride, int n_groups, int nc_last) {
    const int nr = rows->nr;
    const int nb = n / HS_QK8_0;
    struct hs_tilecfg cfg;
    hs_tilecfg_init(&cfg);
    hs_tile_shape(&cfg, TILE_C, nr, 64);
    hs_tile_shape(&cfg, TILE_A, nr, 32);
    hs_tile_shape(&cfg, TILE_B, 8, 64);
    _tile_loadconfig(&cfg);

    int32_t sums[16][16] __attribute__((aligned(64)));
    float out[16][16] __attribute__((aligned(64)));
    memset(sums, 0, sizeof sums); /* rows past nr are never stored by the tile */

    for (int g = 0; g < n_groups; g++) {
        const hs_q8_0_amx_panel *pg = (const hs_q8_0_amx_panel *)((const uint8_t *)panels + (size_t)g * panel_stride);
        __m512 acc[16];
        for (int r = 0; r < 16; r++)
            acc[r] = _mm512_setzero_ps();
        for (int k = 0; k < nb; k++) {
            _tile_loadd(TILE_A, rows->q + (size_t)k * HS_QK8_0, (long)n);
            _tile_loadd(TILE_B, pg[k].b, 64);
            _tile_zero(TILE_C);
            _tile_dpbssd(TILE_C, TILE_A, TILE_B);
            _tile_stored(TILE_C, sums, 64);
            const float *dk = rows->d + (size_t)k * 16;
            const __m512 dy = _mm512_load_ps(pg[k].d);
            for (int r = 0; r < 16; r++) {
                const __m512 p = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_load_si512(sums[r])), dy);
                acc[r] = _mm512_fmadd_ps(p, _mm512_set1_ps(dk[r]), acc[r]);
            }
        }
        /* acc[r] holds row r for 16 tokens; the output is token-major. */
        for (int r = 0; r < 16; r++)
            _mm512_store_ps(out[r], acc[r]);
        const int nc = g == n_groups - 1 ? nc_last : 16;
        for (int c = 0; c < nc; c++)
            for (int r = 0; r < nr; r++)
                s[(size_t)(16 * g + c) * ldc + (size_t)r] = out[r][c];
    }
    _tile_release();
}

/* ------------------------------------------------ unpacking to int8 -- */

/* The 32 values of a q4 block in element order, as int8 (see q_legacy.c). */
static inline __m256i q4_values(const uint8_t *qs) {
    const __m128i q = _mm_loadu_si128((const __m128i *)qs);
    const __m256i both = _mm256_inserti128_si256(_mm256_castsi128_si256(q), _mm_srli_epi16(q, 4), 1);
    return _mm256_and_si256(both, _mm256_set1_epi8(0x0f));
}

void hs_q8_0_amx_rows(hs_amx_rows *out, const void *x, size_t bx, int nr, int64_t n) {
    const int nb = (int)(n / HS_QK8_0);
    out->nr = nr;
    memset(out->d, 0, (size_t)nb * 16 * sizeof(float));
    for (int r = 0; r < nr; r++) {
        const hs_block_q8_0 *xr = (const hs_block_q8_0 *)((const uint8_t *)x + (size_t)r * bx);
        int8_t *dst = out->q + (size_t)r * (size_t)n;
        for (int k = 0; k < nb; k++) {
            _mm256_storeu_si256((__m256i *)(dst + 32 * k), _mm256_loadu_si256((const __m256i *)xr[k].qs));
            out->d[(size_t)k * 16 + (size_t)r] = _cvtsh_ss(xr[k].d);
        }
    }
}

void hs_q4_0_amx_rows(hs_amx_rows *out, const void *x, size_t bx, int nr, int64_t n) {
    const int nb = (int)(n / HS_QK4_0);
    out->nr = nr;
    memset(out->d, 0, (size_t)nb * 16 * sizeof(float));
    for (int r = 0; r < nr; r++) {
        const hs_block_q4_0 *xr = (const hs_block_q4_0 *)((const uint8_t *)x + (size_t)r * bx);
        int8_t *dst = out->q + (size_t)r * (size_t)n;
        for (int k = 0; k < nb; k++) {
            const __m256i v = _mm256_sub_epi8(q4_values(xr[k].qs), _mm256_set1_epi8(8));
            _mm256_storeu_si256((__m256i *)(dst + 32 * k), v);
            out->d[(size_t)k * 16 + (size_t)r] = _cvtsh_ss(xr[k].d);
        }
    }
}

void hs_q5_0_amx_rows(hs_amx_rows *out, const void *x, size_t bx, int nr, int64_t n) {
    const int nb = (int)(n / HS_QK5_0);
    out->nr = nr;
    memset(out->d, 0, (size_t)nb * 16 * sizeof(float));
    for (int r = 0; r < nr; r++) {
        const hs_block_q5_0 *xr = (const hs_block_q5_0 *)((const uint8_t *)x + (size_t)r * bx);
        int8_t *dst = out->q + (size_t)r * (size_t)n;
        for (int k = 0; k < nb; k++) {
            uint32_t qh;
            memcpy(&qh, xr[k].qh, 4);
            const __m256i hi = _mm256_maskz_mov_epi8((__mmask32)qh, _mm256_set1_epi8(0x10));
            const __m256i v = _mm256_sub_epi8(_mm256_or_si256(q4_values(xr[k].qs), hi), _mm256_set1_epi8(16));
            _mm256_storeu_si256((__m256i *)(dst + 32 * k), v);
            out->d[(size_t)k * 16 + (size_t)r] = _cvtsh_ss(xr[k].d);
        }
    }
}
