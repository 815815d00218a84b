/* Token sampling: penalties, top-k, temperature, top-p, min-p, seeded draw.
 *
 * The order follows llama.cpp's common sampler chain: penalties over the last
 * repeat_last_n accepted tokens, then top-k on the logits, temperature, top-p
 * on the softmax of what is left, min-p relative to the best token, and one
 * draw from the renormalised distribution. Everything a draw depends on is
 * the logits, the history and the rng state, so the same seed gives the same
 * tokens on every run and machine.
 *
 * Vocabularies reach 150k entries, so no step sorts the whole vocabulary:
 * top-k keeps a k-sized heap, and top-p without top-k buckets the tokens by
 * their distance from the best logit and sorts only the bucket where the
 * nucleus ends. The weights come from a polynomial exp in plain float
 * arithmetic (four lanes at a time with SSE2), not from libm. */
#include "model/sampler.h"

#include "base/clock.h"
#include "base/mem.h"
#include "base/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

struct cand {
    float z; /* logit, divided by the temperature once that step has run */
    float w; /* exp(z - z_max): the unnormalised probability */
    int32_t id;
};

struct hs_sampler {
    struct hs_sampler_params p;
    int n_vocab;
    hs_rng rng;

    /* Penalty history: the last `hist_cap` accepted tokens as a ring (or the
     * whole history, growing, when repeat_last_n is -1). */
    int32_t *hist;
    size_t hist_cap, hist_len, hist_head;

    int32_t *counts;    /* (n_vocab) scratch, all zero between calls */
    float *logits;      /* (n_vocab) penalised copy */
    struct cand *cands; /* (n_vocab) */
    struct cand *tmp;   /* (n_vocab) bucket scatter */
};

void hs_sampler_params_default(struct hs_sampler_params *p)
{
    p->temperature = 0.8f;
    p->top_k = 40;
    p->top_p = 0.95f;
    p->min_p = 0.05f;
    p->repeat_penalty = 1.0f;
    p->repeat_last_n = 64;
    p->frequency_penalty = 0.0f;
    p->presence_penalty = 0.0f;
    /* A different stream per run unless the caller fixes the seed. */
    p->seed = (uint64_t)hs_now_ns() ^ 0x5eed5eed5eed5eedull;
}

int hs_sampler_params_check(const struct hs_sampler_params *p, hs_err *err)
{
    if (!isfinite(p->temperature))
        return hs_err_set(err, HS_EINVAL, "temperature must be a finite number");
    if (!isfinite(p->top_p) || p->top_p < 0.0f || p->top_p > 1.0f)
        return hs_err_set(err, HS_EINVAL, "top_p must be in [0, 1] (got %g)", (double)p->top_p);
    if (!isfinite(p->min_p) || p->min_p < 0.0f || p->min_p > 1.0f)
        return hs_err_set(err, HS_EINVAL, "min_p must be in [0, 1] (got %g)", (double)p->min_p);
    if (!isfinite(p->repeat_penalty) || p->repeat_penalty <= 0.0f)
        return hs_err_set(err, HS_EINVAL, "repeat_penalty must be > 0 (got %g)", (double)p->repeat_penalty);
    if (p->repeat_last_n < -1)
        return hs_err_set(err, HS_EINVAL, "repeat_last_n must be >= -1 (got %d)", p->repeat_last_n);
    /* The OpenAI API's documented range for both penalties. */
    if (!isfinite(p->frequency_penalty) || fabsf(p->frequency_penalty) > 2.0f)
        return hs_err_set(err, HS_EINVAL, "frequency_penalty must be in [-2, 2] (got %g)",
                          (double)p->frequency_penalty);
    if (!isfinite(p->presence_penalty) || fabsf(p->presence_penalty) > 2.0f)
        return hs_err_set(err, HS_EINVAL, "presence_penalty must be in [-2, 2] (got %g)",
                          (double)p->presence_penalty);
    return HS_OK;
}

int hs_sampler_create(const struct hs_sampler_params *p, int n_vocab, hs_sampler **out, hs_err *err)
{
    *out = NULL;
    int rc = hs_sampler_params_check(p, err);
    if (rc)
        return rc;
    if (n_vocab <= 0)
        return hs_err_set(err, HS_EINVAL, "sampler: n_vocab must be > 0 (got %d)", n_vocab);
    hs_sampler *s = hs_calloc(1, sizeof *s);
    if (!s)
        return hs_err_set(err, HS_ENOMEM, "sampler: out of memory");
    s->p = *p;
    s->n_vocab = n_vocab;
    hs_rng_seed(&s->rng, p->seed);
    s->hist_cap = p->repeat_last_n > 0 ? (size_t)p->repeat_last_n : (p->repeat_last_n < 0 ? 64 : 0);
    s->hist = s->hist_cap ? hs_malloc(s->hist_cap * sizeof *s->hist) : NULL;
    s->counts = hs_calloc((size_t)n_vocab, sizeof *s->counts);
    s->logits = hs_malloc((size_t)n_vocab * sizeof *s->logits);
    s->cands = hs_malloc((size_t)n_vocab * sizeof *s->cands);
    s->tmp = hs_malloc((size_t)n_vocab * sizeof *s->tmp);
    if ((s->hist_cap && !s->hist) || !s->counts || !s->logits || !s->cands || !s->tmp) {
        hs_sampler_free(s);
        return hs_err_set(err, HS_ENOMEM, "sampler: out of memory (n_vocab %d)", n_vocab);
    }
    *out = s;
    return HS_OK;
}

void hs_sampler_free(hs_sampler *s)
{
    if (!s)
        return;
    hs_free(s->hist);
    hs_free(s->counts);
    hs_free(s->logits);
    hs_free(s->cands);
    hs_free(s->tmp);
    hs_free(s);
}

void hs_sampler_accept(hs_sampler *s, int32_t tok)
{
    if (s->p.repeat_last_n == 0)
        return;
    if (s->p.repeat_last_n < 0) {
        /* Whole history: grow, never wrap. */
        if (s->hist_len == s->hist_cap) {
            int32_t *h = hs_realloc_array(s->hist, s->hist_cap * 2, sizeof *h);
            if (!h)
                return; /* out of memory: the penalty window stops growing */
            s->hist = h;
            s->hist_cap *= 2;
        }
        s->hist[s->hist_len++] = tok;
        return;
    }
    s->hist[s->hist_head] = tok;
    s->hist_head = (s->hist_head + 1) % s->hist_cap;
    if (s->hist_len < s->hist_cap)
        s->hist_len++;
}

void hs_sampler_reset(hs_sampler *s)
{
    s->hist_len = 0;
    s->hist_head = 0;
}

static bool penalties_active(const struct hs_sampler_params *p)
{
    return p->repeat_last_n != 0 &&
           (p->repeat_penalty != 1.0f || p->frequency_penalty != 0.0f || p->presence_penalty != 0.0f);
}

/* Copies logits to s->logits and applies the penalties to every token that
 * occurs in the window; `counts` is used as scratch and left zeroed. */
static const float *apply_penalties(hs_sampler *s, const float *logits)
{
    if (!penalties_active(&s->p) || s->hist_len == 0)
        return logits;
    memcpy(s->logits, logits, (size_t)s->n_vocab * sizeof *logits);
    for (size_t i = 0; i < s->hist_len; i++) {
        int32_t t = s->hist[i];
        if (t >= 0 && t < s->n_vocab)
            s->counts[t]++;
    }
    for (size_t i = 0; i < s->hist_len; i++) {
        int32_t t = s->hist[i];
        if (t < 0 || t >= s->n_vocab || s->counts[t] == 0)
            continue; /* out of range, or already handled */
        float l = s->logits[t];
        /* llama.cpp's repeat penalty: push the logit towards "less likely"
         * whatever its sign. */
        if (s->p.repeat_penalty != 1.0f)
            l = l > 0.0f ? l / s->p.repeat_penalty : l * s->p.repeat_penalty;
        l -= (float)s->counts[t] * s->p.frequency_penalty + s->p.presence_penalty;
        s->logits[t] = l;
        s->counts[t] = 0;
    }
    return s->logits;
}

/* a ranks before b: higher logit, then lower id (so ties are deterministic). */
static inline bool better(const struct cand *a, const struct cand *b)
{
    return a->z > b->z || (a->z == b->z && a->id < b->id);
}

static int cand_cmp(const void *pa, const void *pb)
{
    const struct cand *a = pa, *b = pb;
    if (better(a, b))
        return -1;
    if (better(b, a))
        return 1;
    return 0;
}

/* Lowest id among the maxima. The running maximum stays in a register: the
 * branch is rarely taken, so this runs at about one logit per cycle. */
static int32_t argmax(const float *l, int n)
{
    int32_t best = 0;
    float bv = l[0];
    for (int i = 1; i < n; i++) {
        if (l[i] > bv) {
            bv = l[i];
            best = i;
        }
    }
    return best;
}

/* e^x for x in [-88, 0] (the weights exp(z - z_max)), to within about 2e-7
 * relative: x / ln 2 = k + f with f in [-1/2, 1/2], 2^f by its Taylor series
 * to the 6th power (remainder (ln 2 / 2)^7 / 7! < 1.3e-7), 2^k put straight
 * into the exponent bits. Plain float arithmetic, so every machine computes
 * the same bits (C11 mode does not contract to FMA), and no libm call in the
 * loop over the vocabulary. */
static inline float exp_neg(float x)
{
    x = x < -87.0f ? -87.0f : x; /* keeps 2^k a normal number */
    float t = x * 1.44269504f;
    /* round to nearest via the 1.5 * 2^23 trick (|t| < 2^22) */
    float k = (t + 12582912.0f) - 12582912.0f;
    float f = t - k;
    float p =
        1.0f +
        f * (0.693147181f +
             f * (0.240226507f +
                  f * (0.0555041087f + f * (0.00961812911f + f * (0.00133335581f + f * 1.54035304e-4f)))));
    int32_t bits = ((int32_t)k + 127) * (1 << 23);
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* Restores the heap order below node j: every parent worse than (or equal
 * to) its children, so the root is the worst of the heap. */
static void sift_down(struct cand *c, int k, int j)
{
    for (;;) {
        int m = j, a = 2 * j + 1, b = 2 * j + 2;
        if (a < k && better(&c[m], &c[a]))
            m = a;
        if (b < k && better(&c[m], &c[b]))
            m = b;
        if (m == j)
            return;
        struct cand t = c[j];
        c[j] = c[m];
        c[m] = t;
        j = m;
    }
}

/* Keeps the k best of n logits in c[0..k), sorted best first. A min-heap of
 * the k best so far: most tokens lose against its root in one comparison, so
 * this costs about n comparisons plus k log k, not a sort of the vocabulary. */
static void top_k_select(struct cand *c, const float *l, int n, int k)
{
    for (int i = 0; i < k; i++)
        c[i] = (struct cand){.z = l[i], .id = i};
    for (int i = k / 2 - 1; i >= 0; i--)
        sift_down(c, k, i);
    float worst = c[0].z; /* the heap root's logit, kept in a register */
    for (int i = k; i < n; i++) {
        if (l[i] < worst)
            continue;
        struct cand x = {.z = l[i], .id = i};
        if (!better(&x, &c[0]))
            continue;
        c[0] = x;
        sift_down(c, k, 0);
        worst = c[0].z;
    }
    qsort(c, (size_t)k, sizeof *c, cand_cmp);
}

/* Number of leading candidates (c sorted best first, weights set) whose
 * probabilities sum to at least top_p. */
static int top_p_cut_sorted(const struct cand *c, int n, float top_p)
{
    double total = 0.0;
    for (int i = 0; i < n; i++)
        total += c[i].w;
    double want = (double)top_p * total, cum = 0.0;
    for (int i = 0; i < n; i++) {
        cum += c[i].w;
        if (cum >= want)
            return i + 1;
    }
    return n;
}

/* Tokens this far below the best (in z, after the temperature) have a
 * probability under e^-40 = 4e-18 of the best one's; 150k of them together
 * stay below float resolution, so they are dropped before any exp. */
#define Z_FLOOR 40.0f

/* Without top-k: the candidates straight from the n_vocab logits, in id
 * order, with top-p and min-p applied. Returns their number.
 *
 * Top-p needs the best tokens in order without a sort of the vocabulary.
 * Tokens are bucketed by how far z lies below the best (bucket width BUCKET_W;
 * the last bucket takes everything further away). Every token of bucket b is
 * worse than every token of bucket b-1, so the bucket masses tell which bucket
 * the nucleus ends in: the buckets before it are in whole, and only that one
 * bucket is sorted to find the exact cut. The masses count every token, but
 * only tokens that pass min-p are stored: min-p runs after top-p and keeps the
 * best tokens, so filtering early gives the same set. */
#define N_BUCKETS 512
#define BUCKET_W (1.0f / 16.0f) /* z units: the 512 buckets span 32 below the best */

static inline int bucket_of(float zmax, float z)
{
    float d = (zmax - z) * (1.0f / BUCKET_W);
    d = d < (float)(N_BUCKETS - 1) ? d : (float)(N_BUCKETS - 1); /* also catches NaN */
    return (int)d;
}

/* w[j] = exp_neg(z[j] - zmax) and the bucket of z[j], for a block of 16. With
 * SSE2 (every x86-64) four lanes at a time: the same operations in the same
 * order, so the bits match the scalar code (cvtps2dq rounds to nearest even,
 * as the 1.5 * 2^23 trick does; maxps/minps pick as the selects do). */
enum { BLOCK = 16 };

static void block_weights(const float *z, float zmax, float *w, int *bucket)
{
#ifdef __SSE2__
    const __m128 vmax = _mm_set1_ps(zmax);
    for (int j = 0; j < BLOCK; j += 4) {
        __m128 vz = _mm_loadu_ps(z + j);
        __m128 x = _mm_max_ps(_mm_sub_ps(vz, vmax), _mm_set1_ps(-87.0f));
        __m128 t = _mm_mul_ps(x, _mm_set1_ps(1.44269504f));
        __m128i ki = _mm_cvtps_epi32(t);
        __m128 f = _mm_sub_ps(t, _mm_cvtepi32_ps(ki));
        __m128 p = _mm_set1_ps(1.54035304e-4f);
        p = _mm_add_ps(_mm_mul_ps(f, p), _mm_set1_ps(0.00133335581f));
        p = _mm_add_ps(_mm_mul_ps(f, p), _mm_set1_ps(0.00961812911f));
        p = _mm_add_ps(_mm_mul_ps(f, p), _mm_set1_ps(0.0555041087f));
        p = _mm_add_ps(_mm_mul_ps(f, p), _mm_set1_ps(0.240226507f));
        p = _mm_add_ps(_mm_mul_ps(f, p), _mm_set1_ps(0.693147181f));
        p = _mm_add_ps(_mm_mul_ps(f, p), _mm_set1_ps(1.0f));
        __m128 scale = _mm_castsi128_ps(_mm_slli_epi32(_mm_add_epi32(ki, _mm_set1_epi32(127)), 23));
        _mm_storeu_ps(w + j, _mm_mul_ps(p, scale));
        __m128 d = _mm_mul_ps(_mm_sub_ps(vmax, vz), _mm_set1_ps(1.0f / BUCKET_W));
        d = _mm_min_ps(d, _mm_set1_ps((float)(N_BUCKETS - 1)));
        _mm_storeu_si128((__m128i *)(bucket + j), _mm_cvttps_epi32(d));
    }
#else
    for (int j = 0; j < BLOCK; j++) {
        w[j] = exp_neg(z[j] - zmax);
        bucket[j] = bucket_of(zmax, z[j]);
    }
#endif
}

static int candidates_untruncated(hs_sampler *s, const float *l, float inv_t, float zmax)
{
    const float top_p = s->p.top_p, min_w = s->p.min_p;
    const float zfloor = zmax - Z_FLOOR;
    const int n_vocab = s->n_vocab;
    struct cand *c = s->cands;
    int n = 0;
    if (top_p >= 1.0f) {
        /* Only min-p: tokens below its threshold need no exp at all. The
         * threshold is lowered a little so that rounding in logf cannot drop
         * a token that the exact test on w keeps. */
        float zlo = min_w > 0.0f ? zmax + logf(min_w) - 1e-3f : zfloor;
        if (zlo < zfloor)
            zlo = zfloor;
        for (int i = 0; i < n_vocab; i++) {
            float z = l[i] * inv_t;
            if (z < zlo)
                continue;
            float w = exp_neg(z - zmax);
            if (w >= min_w)
                c[n++] = (struct cand){.z = z, .w = w, .id = i};
        }
        return n;
    }

    /* Pass 1: the mass of each bucket (nothing stored). */
    double mass[N_BUCKETS] = {0};
    for (int i0 = 0; i0 < n_vocab; i0 += BLOCK) {
        float zb[BLOCK] = {0}, wb[BLOCK];
        int bb[BLOCK];
        int len = n_vocab - i0 < BLOCK ? n_vocab - i0 : BLOCK;
        for (int j = 0; j < len; j++)
            zb[j] = l[i0 + j] * inv_t;
        block_weights(zb, zmax, wb, bb);
        for (int j = 0; j < len; j++)
            if (zb[j] >= zfloor)
                mass[bb[j]] += wb[j];
    }
    double total = 0.0;
    for (int b = 0; b < N_BUCKETS; b++)
        total += mass[b];
    double want = (double)top_p * total, before = 0.0;
    int last = N_BUCKETS - 1;
    for (int b = 0; b < N_BUCKETS; b++) {
        if (before + mass[b] >= want) {
            last = b;
            break;
        }
        before += mass[b];
    }

    /* Pass 2: the tokens of the whole buckets go to c in id order, those of
     * the last bucket to tmp, to be sorted. zcut, a bucket below the last,
     * lets most tokens go by with one comparison; bucket_of decides. */
    float zcut = zmax - (float)(last + 2) * BUCKET_W;
    if (zcut < zfloor)
        zcut = zfloor;
    int m = 0, t = 0;
    for (int i = 0; i < n_vocab; i++) {
        float z = l[i] * inv_t;
        if (z < zcut)
            continue;
        int b = bucket_of(zmax, z);
        if (b > last)
            continue;
        float w = exp_neg(z - zmax);
        if (w < min_w)
            continue;
        if (b < last)
            c[m++] = (struct cand){.z = z, .w = w, .id = i};
        else
            s->tmp[t++] = (struct cand){.z = z, .w = w, .id = i};
    }
    qsort(s->tmp, (size_t)t, sizeof *s->tmp, cand_cmp);
    double cum = before;
    for (int i = 0; i < t; i++) {
        c[m++] = s->tmp[i];
        cum += s->tmp[i].w;
        if (cum >= want)
            break; /* short by rounding or by min-p: then the whole bucket */
    }
    return m;
}

/* softmax at temperature 1 of token `tok` over all n logits */
static float full_softmax_prob(const float *l, int n, int32_t tok)
{
    float m = l[argmax(l, n)];
    double sum = 0.0;
    for (int i = 0; i < n; i++)
        sum += exp((double)(l[i] - m));
    return (float)(exp((double)(l[tok] - m)) / sum);
}

int32_t hs_sampler_sample(hs_sampler *s, const float *logits, float *prob)
{
    const struct hs_sampler_params *p = &s->p;
    const int n_vocab = s->n_vocab;
    const float *l = apply_penalties(s, logits);

    struct cand *c = s->cands;
    const bool use_top_k = p->top_k > 0 && p->top_k < n_vocab;
    if (use_top_k && p->temperature > 0.0f)
        top_k_select(c, l, n_vocab, p->top_k); /* c[0] is the argmax */
    int32_t best = use_top_k && p->temperature > 0.0f ? c[0].id : argmax(l, n_vocab);
    if (p->temperature <= 0.0f || !isfinite(l[best])) {
        if (prob)
            *prob = isfinite(l[best]) ? full_softmax_prob(l, n_vocab, best) : 1.0f;
        return best;
    }

    const float inv_t = 1.0f / p->temperature;
    /* Multiplying by a positive number keeps the order, so zmax is exact. */
    const float zmax = l[best] * inv_t;
    int n;
    if (use_top_k) {
        n = p->top_k;
        for (int i = 0; i < n; i++) {
            c[i].z *= inv_t;
            c[i].w = exp_neg(c[i].z - zmax);
        }
        if (p->top_p < 1.0f)
            n = top_p_cut_sorted(c, n, p->top_p);
        if (p->min_p > 0.0f && n > 1) {
            /* p_i >= min_p * p_max  <=>  w_i >= min_p, as w_max = 1 */
            int m = 0;
            for (int i = 0; i < n; i++)
                if (c[i].w >= p->min_p)
                    c[m++] = c[i];
            n = m; /* the best token always passes */
        }
    } else {
        n = candidates_untruncated(s, l, inv_t, zmax);
    }

    double sum = 0.0;
    for (int i = 0; i < n; i++)
        sum += c[i].w;
    double u = hs_rng_f64(&s->rng) * sum, cum = 0.0;
    int pick = n - 1; /* rounding can leave u just above the last partial sum */
    for (int i = 0; i < n; i++) {
        cum += c[i].w;
        if (u < cum) {
            pick = i;
            break;
        }
    }
    if (prob)
        *prob = (float)(c[pick].w / sum);
    return c[pick].id;
}
