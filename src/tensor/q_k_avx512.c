/* K-quant dot products against Q8_K with AVX-512 VNNI, and Q8_K's quantizer.
 *
 * All five dot products share one shape (q_k_avx512_impl.h has the cost
 * model and the unpacking): weights become unsigned bytes u, a stored level
 * plus a fixed offset where the level is signed (Q6_K stores q + 32, Q3_K's
 * levels read as q + 4), so that vpmaddubsw can multiply them by the signed
 * activation bytes; vpdpwssd then applies the sub-block scales per lane.
 * The offsets and the mins come out of Q8_K's bsums (sums of 16
 * activations): sum(sc * (u - off) * y) = sum(sc * u * y) - off * sum(sc *
 * bsum), and dmin * sum(m * bsum) for the types with mins, which have their
 * own float factor. Integer sums are exact; per block they are scaled in
 * float, 16 lanes at a time, and the lanes are summed once at the end.
 *
 * The float steps are exactly those of the tile kernels in
 * q_k_gemm_avx512.c (per block: the sums times d * yd, then the mins' sums
 * times -dmin * yd, each a multiply-add into one 16-lane accumulator; at the
 * end qk_hsum_tile), so that one token gives the same bits alone (here) as
 * in a batch (there). */
#include "tensor/q_k_avx512_impl.h"

/* One block's float step for the types with mins: the 16 lanes of sum(sc *
 * u * y) times d * yd, then the 8 lanes of sum(m * bsum) times -dmin * yd. */
static inline __m512 fold_mins(__m512 accf, __m512i acc, __m256i mm, const hs_fp16 *d, const hs_fp16 *dmin,
                               float yd)
{
    const __m512 a = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc), _mm512_set1_ps(_cvtsh_ss(*d) * yd), accf);
    return _mm512_fmadd_ps(_mm512_zextps256_ps512(_mm256_cvtepi32_ps(mm)), _mm512_set1_ps(-_cvtsh_ss(*dmin) * yd),
                           a);
}

/* One block's float step for the types with an offset (Q3_K, Q6_K). */
static inline __m512 fold_d(__m512 accf, __m512i acc, const hs_fp16 *d, float yd)
{
    return _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc), _mm512_set1_ps(_cvtsh_ss(*d) * yd), accf);
}

/* ----------------------------------------------------------------- Q8_K -- */
/* Bit-exact with hs_q8_k_from_float_ref: the same max (first value of
 * largest magnitude), the same product iscale * x rounded to nearest even by
 * vcvtps2dq, and |iscale * x| <= 127 so no clamp ever changes a value. */
void hs_q8_k_from_float_avx512(const float *x, void *vy, int64_t n)
{
    assert(n % HS_QK_K == 0);
    hs_block_q8_k *y = vy;
    const __m512 sign = _mm512_set1_ps(-0.0f);
    for (int64_t i = 0; i < n / HS_QK_K; i++, x += HS_QK_K) {
        __m512 amaxv = _mm512_setzero_ps();
        for (int j = 0; j < 16; j++)
            amaxv = _mm512_max_ps(amaxv, _mm512_andnot_ps(sign, _mm512_loadu_ps(x + 16 * j)));
        const float amax = _mm512_reduce_max_ps(amaxv);
        if (amax == 0.0f) {
            memset(&y[i], 0, sizeof(y[i]));
            continue;
        }
        float max = 0.0f;
        const __m512 av = _mm512_set1_ps(amax);
        for (int j = 0; j < 16; j++) {
            const __mmask16 k =
                _mm512_cmp_ps_mask(_mm512_andnot_ps(sign, _mm512_loadu_ps(x + 16 * j)), av, _CMP_EQ_OQ);
            if (k) {
                max = x[16 * j + __builtin_ctz(k)];
                break;
            }
        }
        const float iscale = -127.0f / max;
        const __m512 is = _mm512_set1_ps(iscale);
        const __m512i c127 = _mm512_set1_epi32(127);
        for (int j = 0; j < 16; j++) {
            __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(is, _mm512_loadu_ps(x + 16 * j)));
            q = _mm512_min_epi32(q, c127);
            _mm_storeu_si128((__m128i *)(y[i].qs + 16 * j), _mm512_cvtsepi32_epi8(q));
        }
        /* bsums: psadbw sums 8 bytes made unsigned by a +128 bias. */
        const __m512i bias = _mm512_set1_epi8((char)0x80);
        uint64_t sums[32];
        for (int j = 0; j < 4; j++)
            _mm512_storeu_si512(sums + 8 * j,
                                _mm512_sad_epu8(_mm512_xor_si512(qk_load512(y[i].qs + 64 * j), bias),
                                                _mm512_setzero_si512()));
        for (int j = 0; j < 16; j++)
            y[i].bsums[j] = (int16_t)((int)(sums[2 * j] + sums[2 * j + 1]) - 16 * 128);
        y[i].d = 1.0f / iscale;
    }
}

/* ----------------------------------------------------------------- Q2_K -- */

void hs_q2_k_vec_dot_avx512(int n, float *s, const void *vx, const void *vy)
{
    assert(n % HS_QK_K == 0);
    const hs_block_q2_k *x = vx;
    const hs_block_q8_k *y = vy;
    const __m512i idx0 = QK_PAIR_IDX16(0), idx1 = QK_PAIR_IDX16(1);
    __m512 accf = _mm512_setzero_ps();
    for (int i = 0; i < n / HS_QK_K; i++) {
        qk_prefetch(&x[i], sizeof(x[i]));
        const __m128i sb = _mm_loadu_si128((const __m128i *)x[i].scales);
        const __m512i sc =
            _mm512_castsi256_si512(_mm256_cvtepu8_epi16(_mm_and_si128(sb, _mm_set1_epi8(0x0f))));
        const __m256i mn = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sb, 4), _mm_set1_epi8(0x0f)));
        __m512i u[4], scv[2];
        qk_q2_unpack(x[i].qs, u);
        scv[0] = _mm512_permutexvar_epi16(idx0, sc);
        scv[1] = _mm512_permutexvar_epi16(idx1, sc);
        const __m512i acc = qk_dot256(qk_zero(), u, scv, y[i].qs);
        const __m256i mm = _mm256_madd_epi16(qk_bsums(&y[i]), mn);
        accf = fold_mins(accf, acc, mm, &x[i].d, &x[i].dmin, y[i].d);
    }
    *s = qk_hsum_tile(accf);
}

/* ----------------------------------------------------------------- Q3_K -- */

void hs_q3_k_vec_dot_avx512(int n, float *s, const void *vx, const void *vy)
{
    assert(n % HS_QK_K == 0);
    const hs_block_q3_k *x = vx;
    const hs_block_q8_k *y = vy;
    const __m512i idx0 = QK_PAIR_IDX16(0), idx1 = QK_PAIR_IDX16(1);
    __m512 accf = _mm512_setzero_ps();
    for (int i = 0; i < n / HS_QK_K; i++) {
        qk_prefetch(&x[i], sizeof(x[i]));
        const __m256i sc16 = _mm256_cvtepi8_epi16(qk_q3_scales(x[i].scales));
        const __m512i sc = _mm512_castsi256_si512(sc16);
        __m512i u[4], scv[2];
        qk_q2_unpack(x[i].qs, u);
        scv[0] = _mm512_permutexvar_epi16(idx0, sc);
        scv[1] = _mm512_permutexvar_epi16(idx1, sc);
        qk_q3_high(x[i].hmask, u);
        /* the -4 of every level: -4 * sum(sc * bsum) starts the sum */
        const __m256i corr = _mm256_slli_epi32(_mm256_madd_epi16(qk_bsums(&y[i]), sc16), 2);
        __m512i acc = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_zextsi256_si512(corr));
        acc = qk_dot256(acc, u, scv, y[i].qs);
        accf = fold_d(accf, acc, &x[i].d, y[i].d);
    }
    *s = qk_hsum_tile(accf);
}

/* ----------------------------------------------------------- Q4_K, Q5_K -- */

void hs_q4_k_vec_dot_avx512(int n, float *s, const void *vx, const void *vy)
{
    assert(n % HS_QK_K == 0);
    const hs_block_q4_k *x = vx;
    const hs_block_q8_k *y = vy;
    const __m512i idx0 = QK_PAIR_IDX32(0), idx1 = QK_PAIR_IDX32(1);
    __m512 accf = _mm512_setzero_ps();
    for (int i = 0; i < n / HS_QK_K; i++) {
        qk_prefetch(&x[i], sizeof(x[i]));
        const __m256i v16y = qk_q45_scales(x[i].scales);
        const __m512i v16 = _mm512_castsi256_si512(v16y);
        __m512i u[4], scv[2];
        qk_q4_unpack(x[i].qs, u);
        scv[0] = _mm512_permutexvar_epi16(idx0, v16);
        scv[1] = _mm512_permutexvar_epi16(idx1, v16);
        const __m512i acc = qk_dot256(qk_zero(), u, scv, y[i].qs);
        const __m256i mm = _mm256_madd_epi16(qk_bsums(&y[i]), qk_q45_mins(v16y));
        accf = fold_mins(accf, acc, mm, &x[i].d, &x[i].dmin, y[i].d);
    }
    *s = qk_hsum_tile(accf);
}

/* One token of hs_q4_k_amxg_gemm (the AMX kernel for generated tokens), bit
 * for bit (hs_q4_k_amxg_ref): the integers as in the dot product above,
 * then per block the four totals I_0, I_1 (scaled sums of the even and odd
 * sub-blocks) and M_0, M_1 (their mins' sums), each on its own float lane.
 * In the scale-weighted sums, 128-bit lane L holds weights 16L .. 16L + 15
 * of every vector, which belong to sub-blocks of parity L / 2: I_0 is the
 * low half's sum, I_1 the high half's; the mins' lane j has sub-block j. */
void hs_q4_k_vec_dot_amxg_avx512(int n, float *s, const void *vx, const void *vy)
{
    assert(n % HS_QK_K == 0);
    const hs_block_q4_k *x = vx;
    const hs_block_q8_k *y = vy;
    const __m512i idx0 = QK_PAIR_IDX32(0), idx1 = QK_PAIR_IDX32(1);
    /* lanes [I_0, M_0, I_1, M_1] out of the reduced sums (c) and mins (e) */
    const __m512i pick = _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 17, 8, 16, 0);
    const __m128 sign = _mm_castsi128_ps(_mm_set_epi32((int)0x80000000u, 0, (int)0x80000000u, 0));
    __m128 acc = _mm_setzero_ps(); /* [ai_0, am_0, ai_1, am_1] */
    for (int i = 0; i < n / HS_QK_K; i++) {
        qk_prefetch(&x[i], sizeof(x[i]));
        const __m256i v16y = qk_q45_scales(x[i].scales);
        const __m512i v16 = _mm512_castsi256_si512(v16y);
        __m512i u[4], scv[2];
        qk_q4_unpack(x[i].qs, u);
        scv[0] = _mm512_permutexvar_epi16(idx0, v16);
        scv[1] = _mm512_permutexvar_epi16(idx1, v16);
        const __m512i a = qk_dot256(qk_zero(), u, scv, y[i].qs);
        const __m256i mm = _mm256_madd_epi16(qk_bsums(&y[i]), qk_q45_mins(v16y));
        /* each 128-bit lane's sum, then lanes 0 + 1 and 2 + 3 */
        const __m512i a1 = _mm512_add_epi32(a, _mm512_shuffle_epi32(a, 0x4e));
        const __m512i a2 = _mm512_add_epi32(a1, _mm512_shuffle_epi32(a1, 0xb1));
        const __m512i c = _mm512_add_epi32(a2, _mm512_shuffle_i32x4(a2, a2, 0xb1));
        /* mins: even and odd j */
        const __m256i m1 = _mm256_add_epi32(mm, _mm256_shuffle_epi32(mm, 0x4e));
        const __m128i e = _mm_add_epi32(_mm256_castsi256_si128(m1), _mm256_extracti128_si256(m1, 1));
        const __m128i t = _mm512_castsi512_si128(_mm512_permutex2var_epi32(c, pick, _mm512_castsi128_si512(e)));
        /* [d, dmin, d, dmin] * [yd, -yd, yd, -yd] */
        uint32_t dd;
        memcpy(&dd, &x[i].d, 4);
        const __m128 f = _mm_mul_ps(_mm_cvtph_ps(_mm_set1_epi32((int)dd)), _mm_xor_ps(_mm_set1_ps(y[i].d), sign));
        acc = _mm_fmadd_ps(_mm_cvtepi32_ps(t), f, acc);
    }
    /* (ai_0 + ai_1) + (am_0 + am_1) */
    const __m128 h = _mm_add_ps(acc, _mm_movehl_ps(acc, acc));
    *s = _mm_cvtss_f32(_mm_add_ss(h, _mm_shuffle_ps(h, h, 1)));
}

void hs_q5_k_vec_dot_avx512(int n, float *s, const void *vx, const void *vy)
{
    assert(n % HS_QK_K == 0);
    const hs_block_q5_k *x = vx;
    const hs_block_q8_k *y = vy;
    const __m512i idx0 = QK_PAIR_IDX32(0), idx1 = QK_PAIR_IDX32(1);
    __m512 accf = _mm512_setzero_ps();
    for (int i = 0; i < n / HS_QK_K; i++) {
        qk_prefetch(&x[i], sizeof(x[i]));
        const __m256i v16y = qk_q45_scales(x[i].scales);
        const __m512i v16 = _mm512_castsi256_si512(v16y);
        __m512i u[4], scv[2];
        qk_q4_unpack(x[i].qs, u);
        qk_q5_high(x[i].qh, u);
        scv[0] = _mm512_permutexvar_epi16(idx0, v16);
        scv[1] = _mm512_permutexvar_epi16(idx1, v16);
        const __m512i acc = qk_dot256(qk_zero(), u, scv, y[i].qs);
        const __m256i mm = _mm256_madd_epi16(qk_bsums(&y[i]), qk_q45_mins(v16y));
        accf = fold_mins(accf, acc, mm, &x[i].d, &x[i].dmin, y[i].d);
    }
    *s = qk_hsum_tile(accf);
}

/* ----------------------------------------------------------------- Q6_K -- */

void hs_q6_k_vec_dot_avx512(int n, float *s, const void *vx, const void *vy)
{
    assert(n % HS_QK_K == 0);
    const hs_block_q6_k *x = vx;
    const hs_block_q8_k *y = vy;
    const __m512i idx0 = QK_PAIR_IDX16(0), idx1 = QK_PAIR_IDX16(1);
    __m512 accf = _mm512_setzero_ps();
    for (int i = 0; i < n / HS_QK_K; i++) {
        qk_prefetch(&x[i], sizeof(x[i]));
        __m512i u[4], scv[2];
        qk_q6_unpack(x[i].ql, x[i].qh, u);
        const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x[i].scales));
        const __m512i sc = _mm512_castsi256_si512(sc16);
        scv[0] = _mm512_permutexvar_epi16(idx0, sc);
        scv[1] = _mm512_permutexvar_epi16(idx1, sc);
        /* the -32 of every level: -32 * sum(sc * bsum) starts the sum */
        const __m256i corr = _mm256_slli_epi32(_mm256_madd_epi16(qk_bsums(&y[i]), sc16), 5);
        __m512i acc = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_zextsi256_si512(corr));
        acc = qk_dot256(acc, u, scv, y[i].qs);
        accf = fold_d(accf, acc, &x[i].d, y[i].d);
    }
    *s = qk_hsum_tile(accf);
}
