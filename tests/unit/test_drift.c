/* ops/drift and ops/drift_concept: data drift between two samples of
 * embeddings, concept drift scoring, the reference file, drift runs in the
 * store.
 *
 * The statistics are checked against computations written out here (the
 * Welch test on R's `sleep` data as R prints it; MMD^2 and the median
 * bandwidth by plain loops), and the verdicts on samples whose answer is
 * known by construction: embeddings scattered around one random direction
 * (a "topic") against embeddings around another, and against fresh draws
 * from the first. With real embeddings (stories260K through the
 * scheduler's embedding path) the same on sentences of two topics. Every
 * p-value is printed. */
#include "test_util.h"

#include "base/mem.h"
#include "base/pool.h"
#include "base/rng.h"
#include "engine/sched.h"
#include "model/model.h"
#include "model/tokenizer.h"
#include "ops/drift.h"
#include "ops/store_ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void assert_close(double got, double want, double tol, const char *what)
{
    if (!(fabs(got - want) <= tol))
        fail_msg("%s: got %.9g, want %.9g (tolerance %g)", what, got, want, tol);
}

static void print_result(const char *what, const struct hs_drift_data_result *r)
{
    print_message("%-34s n=%d/%d dim=%d centroid=%.4f mmd2=%.5f sigma=%.4f p=%.4f dims=%d (%.1f%%) -> %s\n",
                  what, r->n_ref, r->n_cur, r->dim, r->centroid_distance, r->mmd2, r->sigma, r->p_value,
                  r->drifted_dims, 100 * r->drifted_share, hs_drift_status_name(r->status));
}

static struct hs_drift_data_result run_drift(const float *a, int na, const float *b, int nb, int dim,
                                             const struct hs_drift_params *p)
{
    struct hs_drift_data_result r;
    hs_err err = {0};
    if (hs_drift_data(a, na, b, nb, dim, p, &r, &err))
        fail_msg("drift: %s", err.msg);
    return r;
}

/* ---- the Welch test ---- */

/* R: t.test(extra ~ group, data = sleep) prints
 *   t = -1.8608, df = 17.776, p-value = 0.07939 */
static void welch_matches_r_on_sleep_data(void **state)
{
    (void)state;
    const double g1[] = {0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0};
    const double g2[] = {1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4};
    double m1 = 0, m2 = 0, v1 = 0, v2 = 0;
    for (int i = 0; i < 10; i++) {
        m1 += g1[i] / 10;
        m2 += g2[i] / 10;
    }
    for (int i = 0; i < 10; i++) {
        v1 += (g1[i] - m1) * (g1[i] - m1) / 9;
        v2 += (g2[i] - m2) * (g2[i] - m2) / 9;
    }
    double t, df;
    double p = hs_drift_welch(m1, v1, 10, m2, v2, 10, &t, &df);
    print_message("sleep data: t = %.4f, df = %.3f, p = %.5f (R: -1.8608, 17.776, 0.07939)\n", t, df, p);
    assert_close(t, -1.8608, 5e-5, "t");
    assert_close(df, 17.776, 5e-4, "df");
    assert_close(p, 0.07939, 5e-6, "p");
    /* degenerate: no spread */
    assert_close(hs_drift_welch(1, 0, 5, 1, 0, 5, NULL, NULL), 1, 0, "equal constants");
    assert_close(hs_drift_welch(1, 0, 5, 2, 0, 5, NULL, NULL), 0, 0, "different constants");
}

/* ---- synthetic embeddings ---- */

static void unit_vector(hs_rng *rng, double *v, int dim)
{
    double ss = 0;
    for (int e = 0; e < dim; e++) {
        v[e] = hs_rng_normal(rng);
        ss += v[e] * v[e];
    }
    for (int e = 0; e < dim; e++)
        v[e] /= sqrt(ss);
}

/* n embeddings near topic: topic + noise of about the same length, the
 * noise spread over all dim coordinates (rows are not normalised here). */
static float *around(hs_rng *rng, const double *topic, int n, int dim, double noise)
{
    float *x = malloc(sizeof *x * (size_t)n * (size_t)dim);
    for (int i = 0; i < n; i++)
        for (int e = 0; e < dim; e++)
            x[(size_t)i * dim + e] = (float)(topic[e] + noise * hs_rng_normal(rng) / sqrt(dim));
    return x;
}

/* MMD^2_u and the median bandwidth by plain loops, in double, straight from
 * the definitions (no Gram matrix, no row sums). */
static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void naive_mmd(const float *x, int nx, const float *y, int ny, int dim, double *mmd2, double *sigma)
{
    int m = nx + ny;
    const float **rows = malloc(sizeof *rows * (size_t)m);
    for (int i = 0; i < nx; i++)
        rows[i] = x + (size_t)i * dim;
    for (int i = 0; i < ny; i++)
        rows[nx + i] = y + (size_t)i * dim;
    size_t np = (size_t)m * (m - 1) / 2, q = 0;
    double *d = malloc(sizeof *d * np);
    for (int i = 0; i < m; i++)
        for (int j = i + 1; j < m; j++) {
            double s = 0;
            for (int e = 0; e < dim; e++) {
                double t = (double)rows[i][e] - rows[j][e];
                s += t * t;
            }
            d[q++] = s;
        }
    double *sorted = malloc(sizeof *sorted * np);
    memcpy(sorted, d, sizeof *d * np);
    qsort(sorted, np, sizeof *sorted, cmp_double);
    double s2 = np % 2 ? sorted[np / 2] : (sorted[np / 2 - 1] + sorted[np / 2]) / 2;
    free(sorted);
    double kxx = 0, kyy = 0, kxy = 0;
    q = 0;
    for (int i = 0; i < m; i++)
        for (int j = i + 1; j < m; j++) {
            double k = exp(-d[q++] / (2 * s2));
            if (i < nx && j < nx)
                kxx += 2 * k; /* (i, j) and (j, i) */
            else if (i >= nx && j >= nx)
                kyy += 2 * k;
            else
                kxy += k;
        }
    *mmd2 = kxx / ((double)nx * (nx - 1)) + kyy / ((double)ny * (ny - 1)) - 2 * kxy / ((double)nx * ny);
    *sigma = sqrt(s2);
    free(d);
    free(rows);
}

static void mmd_matches_plain_loops(void **state)
{
    (void)state;
    enum { D = 7, NX = 31, NY = 24 };
    hs_rng rng;
    hs_rng_seed(&rng, 5);
    double u[D], v[D];
    unit_vector(&rng, u, D);
    unit_vector(&rng, v, D);
    float *x = around(&rng, u, NX, D, 1.0), *y = around(&rng, v, NY, D, 1.0);
    struct hs_drift_params p;
    hs_drift_params_default(&p);
    p.l2_normalize = false;
    p.permutations = 99;
    struct hs_drift_data_result r = run_drift(x, NX, y, NY, D, &p);
    double mmd2, sigma;
    naive_mmd(x, NX, y, NY, D, &mmd2, &sigma);
    print_result("plain loops vs library", &r);
    print_message("plain loops: mmd2=%.6f sigma=%.6f\n", mmd2, sigma);
    /* the library's distances come through a float Gram matrix */
    assert_close(r.sigma, sigma, 1e-5 * sigma, "sigma");
    assert_close(r.mmd2, mmd2, 1e-5, "mmd2");
    assert_int_equal(r.n_ref, NX);
    assert_int_equal(r.n_cur, NY);
    assert_int_equal(r.permutations, 99);
    /* the smallest p a permutation test can give is 1 / (B + 1) */
    assert_true(r.p_value >= 1.0 / 100 - 1e-12);
    free(x);
    free(y);
}

/* The demonstration the issue asks for: prompts from another topic are
 * detected, fresh prompts from the same topic are not; a partial shift
 * (30% of the new sample from another topic) moves the centroid less than
 * its threshold but the two-sample test still sees it. */
static void topic_shift_detected_same_topic_not(void **state)
{
    (void)state;
    enum { D = 64, N = 150 };
    hs_rng rng;
    hs_rng_seed(&rng, 2024);
    double u[D], v[D];
    unit_vector(&rng, u, D);
    unit_vector(&rng, v, D);
    float *a = around(&rng, u, N, D, 1.0);
    float *shifted = around(&rng, v, N, D, 1.0);
    float *same = around(&rng, u, N, D, 1.0);
    float *partial = around(&rng, u, N, D, 1.0);
    float *other = around(&rng, v, N, D, 1.0);
    memcpy(partial, other, sizeof(float) * (size_t)(N * 3 / 10) * D); /* the first 30% */
    struct hs_drift_params p;
    hs_drift_params_default(&p); /* B = 500, seed 42, alpha 0.05, centroid 0.10 */

    struct hs_drift_data_result rs = run_drift(a, N, shifted, N, D, &p);
    struct hs_drift_data_result ru = run_drift(a, N, same, N, D, &p);
    struct hs_drift_data_result rp = run_drift(a, N, partial, N, D, &p);
    print_result("synthetic: another topic", &rs);
    print_result("synthetic: same topic", &ru);
    print_result("synthetic: 30% from another topic", &rp);

    assert_true(rs.p_value < 0.01);
    assert_int_equal(rs.status, HS_DRIFT_DRIFTED);
    assert_true(rs.by_p_value && rs.by_centroid);
    assert_true(rs.drifted_share > 0.5);

    assert_true(ru.p_value > 0.05);
    assert_int_equal(ru.status, HS_DRIFT_STABLE);
    assert_true(ru.centroid_distance < 0.02);
    assert_true(ru.drifted_share < 0.05);

    assert_true(rp.p_value < 0.01);
    assert_true(rp.centroid_distance < p.centroid_threshold);
    assert_true(rp.by_p_value && !rp.by_centroid);
    assert_int_equal(rp.status, HS_DRIFT_DRIFTED);

    /* the details that go to the drift_runs row */
    char *js = hs_drift_data_to_json(&rs, &p);
    assert_non_null(strstr(js, "\"status\":\"DRIFTED\""));
    assert_non_null(strstr(js, "\"by\":[\"p_value\",\"centroid_distance\"]"));
    hs_free(js);
    free(a);
    free(shifted);
    free(same);
    free(partial);
    free(other);
}

/* Raw (unnormalised) Gaussian rows, 5 of 20 coordinates shifted by 1.5
 * standard deviations: the Welch + Benjamini-Hochberg count finds them and
 * (almost) nothing else. Each coordinate's p-value is also recomputed here
 * from the formula, for one shifted and one unshifted coordinate. */
static void drifted_dimensions_are_the_shifted_ones(void **state)
{
    (void)state;
    enum { D = 20, N = 100, K = 5 };
    hs_rng rng;
    hs_rng_seed(&rng, 99);
    float *x = malloc(sizeof *x * N * D), *y = malloc(sizeof *y * N * D);
    for (int i = 0; i < N * D; i++) {
        x[i] = hs_rng_normal(&rng);
        y[i] = hs_rng_normal(&rng) + ((i % D) < K ? 1.5f : 0.0f);
    }
    struct hs_drift_params p;
    hs_drift_params_default(&p);
    p.l2_normalize = false;
    p.permutations = 200;
    struct hs_drift_data_result r = run_drift(x, N, y, N, D, &p);
    print_result("5 of 20 coordinates shifted", &r);
    assert_true(r.drifted_dims >= K && r.drifted_dims <= K + 1);
    assert_int_equal(r.status, HS_DRIFT_DRIFTED);
    for (int e = 0; e <= K; e += K) { /* coordinate 0 (shifted) and K (not) */
        double mx = 0, my = 0, vx = 0, vy = 0;
        for (int i = 0; i < N; i++) {
            mx += x[i * D + e] / (double)N;
            my += y[i * D + e] / (double)N;
        }
        for (int i = 0; i < N; i++) {
            vx += (x[i * D + e] - mx) * (x[i * D + e] - mx) / (N - 1);
            vy += (y[i * D + e] - my) * (y[i * D + e] - my) / (N - 1);
        }
        double t, df;
        double pw = hs_drift_welch(mx, vx, N, my, vy, N, &t, &df);
        double want_t = (mx - my) / sqrt(vx / N + vy / N);
        assert_close(t, want_t, 1e-9, "t");
        print_message("coordinate %d: t = %.3f, df = %.1f, p = %.3g\n", e, t, df, pw);
        if (e == 0)
            assert_true(pw < 1e-6);
    }
    free(x);
    free(y);
}

/* Same seed, same answer, with or without threads; samples above
 * max_samples are cut down to it. */
static void deterministic_across_threads_and_subsampled(void **state)
{
    (void)state;
    enum { D = 16, NA = 90, NB = 70 };
    hs_rng rng;
    hs_rng_seed(&rng, 8);
    double u[D], v[D];
    unit_vector(&rng, u, D);
    unit_vector(&rng, v, D);
    for (int e = 0; e < D; e++)
        v[e] = 0.8 * u[e] + 0.2 * v[e];
    float *a = around(&rng, u, NA, D, 1.0), *b = around(&rng, v, NB, D, 1.0);
    struct hs_drift_params p;
    hs_drift_params_default(&p);
    p.permutations = 300;
    struct hs_drift_data_result r1 = run_drift(a, NA, b, NB, D, &p);
    hs_pool *pool = NULL;
    assert_int_equal(hs_pool_create(2, &pool), HS_OK);
    p.pool = pool;
    struct hs_drift_data_result r2 = run_drift(a, NA, b, NB, D, &p);
    assert_true(r1.p_value == r2.p_value);
    assert_true(r1.mmd2 == r2.mmd2);
    print_result("one thread", &r1);
    print_result("two threads", &r2);
    p.max_samples = 40;
    struct hs_drift_data_result r3 = run_drift(a, NA, b, NB, D, &p);
    assert_int_equal(r3.n_ref, 40);
    assert_int_equal(r3.n_cur, 40);
    struct hs_drift_data_result r4 = run_drift(a, NA, b, NB, D, &p);
    assert_true(r3.p_value == r4.p_value && r3.mmd2 == r4.mmd2);
    p.seed = 43;
    struct hs_drift_data_result r5 = run_drift(a, NA, b, NB, D, &p);
    assert_true(r5.mmd2 != r3.mmd2); /* another subsample */
    hs_pool_free(pool);
    free(a);
    free(b);
}

static void bad_input_is_refused(void **state)
{
    (void)state;
    float x[3 * 2] = {1, 2, 3, 4, 5, 6}, y[3 * 2] = {1, 2, 3, NAN, 5, 6};
    struct hs_drift_data_result r;
    hs_err err = {0};
    assert_int_equal(hs_drift_data(x, 3, y, 3, 2, NULL, &r, &err), HS_EINVAL);
    assert_non_null(strstr(err.msg, "current sample, row 1"));
    assert_int_equal(hs_drift_data(x, 1, x, 3, 2, NULL, &r, &err), HS_EINVAL);
    struct hs_drift_params p;
    hs_drift_params_default(&p);
    p.alpha = 0;
    assert_int_equal(hs_drift_data(x, 3, x, 3, 2, &p, &r, &err), HS_EINVAL);
    /* identical samples: no drift, and no division by a zero bandwidth */
    float same[4 * 2] = {1, 1, 1, 1, 1, 1, 1, 1};
    assert_int_equal(hs_drift_data(same, 2, same + 4, 2, 2, NULL, &r, &err), HS_OK);
    assert_int_equal(r.status, HS_DRIFT_STABLE);
    assert_close(r.mmd2, 0, 1e-12, "mmd2 of identical rows");
}

/* ---- real embeddings ---- */

static const char *const k_fire[] = {
    "The fire spread quickly through the dry forest near the village.",
    "Firefighters arrived with two trucks and a water tanker.",
    "Smoke filled the sky and the people left their homes.",
    "The alarm rang and everyone ran out of the burning house.",
    "A strong wind pushed the flames toward the road.",
    "The firemen sprayed water on the roof to stop the fire.",
    "The helicopter dropped water over the burning hills.",
    "The police closed the road because of the fire.",
    "An ambulance took the hurt man to the hospital.",
    "The family waited outside while the fire burned.",
    "The fire truck raced down the street with its siren on.",
    "Hot ash fell on the cars parked near the forest.",
    "The mayor told everyone to leave the town at once.",
    "The flames were taller than the trees.",
    "A firefighter carried a little girl out of the smoke.",
    "The old barn burned down in the night.",
    "The smoke was so thick that nobody could see the sun.",
    "Rescue workers searched the burned houses for people.",
    "The fire alarm in the school went off during class.",
    "The children walked out of the school in a line, away from the smoke.",
    "The forest fire burned for three days.",
    "The firemen used axes to break the door of the burning room.",
    "Sparks from the power line started a fire in the grass.",
    "The wind changed and the fire turned toward the farm.",
    "Neighbors helped each other carry water to the fire.",
    "The emergency team set up a camp for the people who lost their homes.",
    "The fire chief said the fire was under control.",
    "Burned trees stood black on the hill after the fire.",
    "The red fire engine parked in front of the burning shop.",
    "People covered their faces because of the smoke.",
    "A plane flew low and dropped red powder on the flames.",
    "The firemen worked all night to save the village.",
    "The fire burned the bridge and the road was cut.",
    "Sirens could be heard across the whole city.",
    "The brave firefighter climbed the ladder to the window.",
    "The smoke alarm woke the family just in time.",
    "Everyone had to leave the building because of the fire.",
    "The fire reached the gas station and there was a loud boom.",
    "Hot smoke and flames came out of the windows.",
    "After the fire the town was quiet and grey with ash.",
};

static const char *const k_cooking[] = {
    "Mom baked a chocolate cake with sugar and eggs.",
    "Put the flour, butter and milk in a big bowl and mix.",
    "The soup needs more salt and a little pepper.",
    "Cut the carrots and potatoes into small pieces.",
    "Bake the bread in the oven for thirty minutes.",
    "Grandma made sweet cookies with honey.",
    "Stir the rice slowly so it does not stick to the pot.",
    "The cook put tomatoes and cheese on the pizza.",
    "We ate warm pancakes with jam for breakfast.",
    "Boil the pasta in salty water until it is soft.",
    "Add two spoons of sugar to the tea.",
    "She cut the apple pie into eight pieces.",
    "Fry the onions in oil until they are golden.",
    "The chef tasted the sauce and smiled.",
    "Mix the eggs and milk to make the batter.",
    "Dad grilled fish and vegetables for dinner.",
    "The kitchen smelled of fresh bread and butter.",
    "Put the cake on a plate and add cream on top.",
    "Slice the cucumbers and put them in the salad.",
    "The children helped make sandwiches for lunch.",
    "Melt the chocolate and pour it over the cookies.",
    "Cook the beans with garlic and lemon.",
    "The recipe needs one cup of flour and one egg.",
    "We made lemonade with lemons, water and sugar.",
    "Roast the chicken with potatoes and herbs.",
    "The baker made small sweet buns with raisins.",
    "Wash the strawberries before you eat them.",
    "Spread butter on the toast and add honey.",
    "The soup was hot so we waited before we ate it.",
    "Cut the cheese into thin slices for the plate.",
    "Beat the cream until it is thick and sweet.",
    "The pie was full of cherries and sugar.",
    "Put the cookies in the oven and wait ten minutes.",
    "Grandpa cooked a big pot of vegetable soup.",
    "Pour the milk into the bowl with the cereal.",
    "The cake had three layers and strawberries on top.",
    "Add a pinch of salt to the eggs before you cook them.",
    "The cook cut the meat and put it in the pan.",
    "We shared the warm bread and cheese at the table.",
    "Mix the fruit with yogurt and honey for dessert.",
};

#define N_SENT 40

/* Embeds every sentence through the scheduler's embedding path (what
 * /v1/embeddings serves): n x n_embd floats, each row L2-normalised. */
static float *embed_all(hs_sched *s, const hs_tok *tok, const char *const *texts, int n, int dim)
{
    float *out = malloc(sizeof *out * (size_t)n * (size_t)dim);
    for (int i = 0; i < n; i++) {
        int32_t *ids = NULL;
        size_t nid = 0;
        hs_err err = {0};
        if (hs_tok_encode(tok, texts[i], strlen(texts[i]), true, false, &ids, &nid, &err))
            fail_msg("encode: %s", err.msg);
        if (hs_sched_embed(s, ids, (int)nid, out + (size_t)i * dim, &err))
            fail_msg("embed: %s", err.msg);
        hs_free(ids);
    }
    return out;
}

static void real_embeddings_two_topics(void **state)
{
    (void)state;
    _Static_assert(sizeof k_fire / sizeof k_fire[0] == N_SENT, "40 fire sentences");
    _Static_assert(sizeof k_cooking / sizeof k_cooking[0] == N_SENT, "40 cooking sentences");
    const char *path = HS_SHARED_OR_SKIP("models/stories260K.gguf");
    hs_model *m = NULL;
    hs_err err = {0};
    if (hs_model_load(path, NULL, &m, &err))
        fail_msg("load: %s", err.msg);
    struct hs_sched_params sp;
    hs_sched_params_default(&sp);
    sp.n_slots = 1;
    sp.n_ctx = 128;
    sp.n_threads = 1;
    hs_sched *s = NULL;
    if (hs_sched_create(m, &sp, &s, &err))
        fail_msg("sched: %s", err.msg);
    int dim = hs_model_hparams(m)->n_embd;
    float *fire = embed_all(s, hs_model_tok(m), k_fire, N_SENT, dim);
    float *cook = embed_all(s, hs_model_tok(m), k_cooking, N_SENT, dim);
    hs_sched_free(s);

    struct hs_drift_params p;
    hs_drift_params_default(&p);
    struct hs_drift_data_result topics = run_drift(fire, N_SENT, cook, N_SENT, dim, &p);
    print_result("stories260K: fire vs cooking", &topics);
    assert_true(topics.p_value < 0.01);
    assert_int_equal(topics.status, HS_DRIFT_DRIFTED);

    /* two halves of the fire sentences, split at random (seeded): the same
       topic on both sides */
    int idx[N_SENT];
    for (int i = 0; i < N_SENT; i++)
        idx[i] = i;
    hs_rng rng;
    hs_rng_seed(&rng, 1);
    for (int i = N_SENT - 1; i > 0; i--) {
        int j = (int)(hs_rng_u64(&rng) % (uint64_t)(i + 1));
        int t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
    float *h1 = malloc(sizeof *h1 * (N_SENT / 2) * (size_t)dim),
          *h2 = malloc(sizeof *h2 * (N_SENT / 2) * (size_t)dim);
    for (int i = 0; i < N_SENT / 2; i++) {
        memcpy(h1 + (size_t)i * dim, fire + (size_t)idx[i] * dim, sizeof(float) * (size_t)dim);
        memcpy(h2 + (size_t)i * dim, fire + (size_t)idx[N_SENT / 2 + i] * dim, sizeof(float) * (size_t)dim);
    }
    struct hs_drift_data_result halves = run_drift(h1, N_SENT / 2, h2, N_SENT / 2, dim, &p);
    print_result("stories260K: fire, two halves", &halves);
    assert_true(halves.p_value > 0.05);
    assert_int_equal(halves.status, HS_DRIFT_STABLE);
    free(h1);
    free(h2);
    free(fire);
    free(cook);
    hs_model_free(m);
}

/* ---- concept drift: scoring ---- */

static struct hs_concept_score score(const char *answer, const char *expected, const char *const *facts,
                                     int n_facts)
{
    struct hs_concept_score s;
    hs_err err = {0};
    if (hs_concept_score(answer, expected, facts, n_facts, NULL, &s, &err))
        fail_msg("score: %s", err.msg);
    return s;
}

static void normalisation_and_similarity(void **state)
{
    (void)state;
    char *n = NULL;
    hs_err err = {0};
    /* case, Greek tonos, punctuation and spacing go */
    assert_int_equal(hs_concept_normalize("  Ο ΚΑΎΣΩΝΑΣ,  έφτασε!! ", &n, &err), HS_OK);
    assert_string_equal(n, "ο καυσωνασ εφτασε");
    hs_free(n);
    /* compatibility forms: the "ﬁ" ligature and full-width digits */
    assert_int_equal(hs_concept_normalize("Conﬁrm ＵＮ１２０３.", &n, &err), HS_OK);
    assert_string_equal(n, "confirm un1203");
    hs_free(n);
    assert_int_equal(hs_concept_normalize("\xff\xfe", &n, &err), HS_EFORMAT);

    /* kitten -> sitting: 3 edits over 7 code points */
    assert_close(hs_concept_similarity_normalized("kitten", "sitting"), 1 - 3.0 / 7, 1e-12, "kitten");
    assert_close(hs_concept_similarity_normalized("", ""), 1, 0, "empty");
    assert_close(hs_concept_similarity_normalized("abc", ""), 0, 0, "one empty");
    /* code points, not bytes: one Greek letter differs out of 5 */
    assert_close(hs_concept_similarity_normalized("αβγδε", "αβγδζ"), 0.8, 1e-12, "greek");

    struct hs_concept_score s = score("Evacuate the area!", "evacuate the area", NULL, 0);
    assert_close(s.similarity, 1, 0, "same after normalising");
    assert_true(s.correct);
    assert_int_equal(s.facts_total, 0);
}

static void facts_decide_long_answers(void **state)
{
    (void)state;
    const char *expected = "Evacuate 1,500 residents within a 3.5 km radius.";
    /* a longer answer, far from the expected text, with both numbers
       (written differently): correct by its facts */
    struct hs_concept_score s =
        score("Given the wind, the team should evacuate about 1500 residents; keep a radius of 3,5 km.",
              expected, NULL, 0);
    print_message("facts answer: similarity %.3f, facts %d/%d\n", s.similarity, s.facts_found, s.facts_total);
    assert_true(s.similarity < 0.8);
    assert_int_equal(s.facts_total, 2);
    assert_int_equal(s.facts_found, 2);
    assert_true(s.correct);
    /* a wrong radius: 35 is not 3.5 */
    s = score("Evacuate 1500 residents within 35 km.", expected, NULL, 0);
    assert_int_equal(s.facts_found, 1);
    assert_false(s.correct);
    /* close in wording but a number off: a missing fact makes it wrong */
    s = score("Evacuate 1,500 residents within a 3.6 km radius.", expected, NULL, 0);
    assert_true(s.similarity >= 0.8);
    assert_int_equal(s.facts_found, 1);
    assert_false(s.correct);
    /* without facts the wording decides */
    const char *none[1] = {NULL};
    s = score("Evacuate 1,500 residents within a 3.6 km radius.", expected, none, 0);
    assert_int_equal(s.facts_total, 0);
    assert_true(s.correct);
    s = score("Stay at hom.", "Stay at home.", NULL, 0); /* a typo: 1 edit over 12 */
    assert_true(s.similarity >= 0.8 && s.correct);
    s = score("Go outside.", "Stay at home.", NULL, 0);
    assert_false(s.correct);

    /* listed facts: words as whole words, a lone number as a number */
    const char *facts[] = {"UN 1203", "foam", "1,000"};
    s = score("Gasoline (UN 1203): use alcohol-resistant foam and keep 1000 m away.",
              "Use foam on UN 1203; isolate 1000 metres.", facts, 3);
    assert_int_equal(s.facts_total, 3);
    assert_int_equal(s.facts_found, 3);
    assert_true(s.correct);
    s = score("Gasoline UN1203: use water fog, keep away.", "Use foam on UN 1203; isolate 1000 metres.",
              facts, 3);
    assert_int_equal(s.facts_found, 0); /* "un1203" is not the words "un 1203"; "foams" would not be "foam" */
    assert_false(s.correct);
    const char *empty_fact[] = {"  ", "foam"};
    s = score("foam", "x", empty_fact, 2);
    assert_int_equal(s.facts_total, 1);
    assert_true(s.correct);
}

/* ---- concept drift: the reference set and the verdict ---- */

static const char k_ref[] = "{\"id\": 1, \"question\": \"q1\", \"expected\": \"Call 112 now.\"}\n"
                            "{\"question\": \"q2\", \"expected\": \"Move upwind.\"}\n"
                            "\n"
                            "{\"question\": \"q3\", \"expected\": \"Evacuate 300 people.\"}\n"
                            "{\"question\": \"q4\", \"expected\": \"Use foam.\", \"facts\": [\"foam\"]}\n"
                            "{\"question\": \"q5\", \"expected\": \"Shelter in place.\"}\n"
                            "{\"question\": \"q6\", \"expected\": \"Close the windows.\"}\n"
                            "{\"question\": \"q7\", \"expected\": \"Wait for the fire brigade.\"}\n"
                            "{\"question\": \"q8\", \"expected\": \"Keep 50 metres away.\"}\n"
                            "{\"question\": \"q9\", \"expected\": \"Turn off the gas.\"}\n"
                            "{\"question\": \"q10\", \"expected\": \"Do not use the lift.\"}\r\n";

/* binomial P(X <= k) for n trials of probability q, summed term by term */
static double binom_cdf(int k, int n, double q)
{
    double total = 0;
    for (int i = 0; i <= k; i++) {
        double c = 1;
        for (int j = 1; j <= i; j++)
            c = c * (n - i + j) / j;
        total += c * pow(q, i) * pow(1 - q, n - i);
    }
    return total;
}

static void concept_accuracy_and_verdict(void **state)
{
    (void)state;
    struct hs_concept_ref ref;
    hs_err err = {0};
    if (hs_concept_ref_parse(&ref, k_ref, strlen(k_ref), "ref.jsonl", &err))
        fail_msg("%s", err.msg);
    assert_int_equal(ref.n, 10);
    assert_string_equal(ref.items[0].id, "1");
    assert_int_equal(ref.items[2].line, 4); /* the blank line is skipped, not forgotten */
    assert_int_equal(ref.items[3].n_facts, 1);
    assert_string_equal(ref.items[9].expected, "Do not use the lift.");
    /* 7 right (three of them by their numbers or facts), 3 wrong: the
       opposite action, a wrong distance however close the wording, no answer */
    const char *answers[10] = {
        "Call 112 immediately, then wait.",
        "move upwind!",
        "Evacuate everyone (about 300 people) now.",
        "Apply foam to the spill.",
        "Shelter in place.",
        "Open the windows.",
        "Wait for the fire brigade",
        "Keep 5 metres away.",
        NULL,
        "Do not use the lift",
    };
    struct hs_concept_score items[10];
    struct hs_concept_result r;
    assert_int_equal(hs_concept_evaluate(&ref, answers, 90, NULL, &r, items, &err), HS_OK);
    for (int i = 0; i < 10; i++)
        print_message("item %2d: similarity %.3f facts %d/%d %s\n", i + 1, items[i].similarity,
                      items[i].facts_found, items[i].facts_total, items[i].correct ? "correct" : "wrong");
    assert_int_equal(r.n, 10);
    assert_int_equal(r.n_correct, 7);
    assert_close(r.accuracy, 70, 1e-12, "accuracy");
    assert_close(r.drop, 20, 1e-12, "drop");
    assert_true(r.drifted); /* 20 points > 15 */
    assert_close(r.p_value, binom_cdf(7, 10, 0.9), 1e-9, "binomial p");
    print_message("concept: accuracy %.0f%%, recorded 90%%, drop %.0f points, p = %.4f -> %s\n", r.accuracy,
                  r.drop, r.p_value, r.drifted ? "DRIFTED" : "STABLE");
    char *js = hs_concept_result_to_json(&r, NULL);
    assert_non_null(strstr(js, "\"status\":\"DRIFTED\""));
    hs_free(js);

    assert_int_equal(hs_concept_evaluate(&ref, answers, 80, NULL, &r, NULL, &err), HS_OK);
    assert_false(r.drifted); /* 10 points */
    assert_int_equal(hs_concept_evaluate(&ref, answers, NAN, NULL, &r, NULL, &err), HS_OK);
    assert_false(r.drifted);
    assert_true(isnan(r.drop));
    hs_concept_ref_free(&ref);
}

static void expect_ref_error(const char *text, const char *want)
{
    struct hs_concept_ref ref;
    hs_err err = {0};
    assert_int_not_equal(hs_concept_ref_parse(&ref, text, strlen(text), "ref.jsonl", &err), HS_OK);
    assert_int_equal(ref.n, 0);
    if (!strstr(err.msg, want))
        fail_msg("error \"%s\" does not contain \"%s\"", err.msg, want);
}

static void reference_errors_name_the_line(void **state)
{
    (void)state;
    expect_ref_error("{\"question\":\"a\",\"expected\":\"b\"}\n{\"question\":\"a\"}\n",
                     "ref.jsonl:2: \"expected\" is missing");
    expect_ref_error("{\"question\":\"a\",\"expected\":\"b\"}\n\n{oops}\n", "ref.jsonl:3: not JSON");
    expect_ref_error("[1]\n", "ref.jsonl:1: expected an object");
    expect_ref_error("{\"question\":\"a\",\"expected\":7}\n", "ref.jsonl:1: \"expected\" must be a string");
    expect_ref_error("{\"question\":\"\",\"expected\":\"b\"}\n", "ref.jsonl:1: \"question\" is empty");
    expect_ref_error("{\"question\":\"a\",\"expected\":\"b\",\"facts\":[1]}\n", "ref.jsonl:1: facts[0]");
    expect_ref_error("\n\n", "no items");
    expect_ref_error("{\"question\":\"a\",\"question\":\"b\",\"expected\":\"c\"}\n", "ref.jsonl:1: not JSON");
    struct hs_concept_ref ref;
    hs_err err = {0};
    assert_int_equal(hs_concept_ref_load(&ref, "no/such/file.jsonl", &err), HS_EIO);
}

/* ---- drift runs in the store ---- */

struct runs {
    int n;
    int64_t ids[8];
    char kinds[8][16];
    double p[8];
};

static void collect(void *user, const struct hs_drift_run *r)
{
    struct runs *c = user;
    if (c->n < 8) {
        c->ids[c->n] = r->id;
        snprintf(c->kinds[c->n], sizeof c->kinds[0], "%s", r->kind);
        c->p[c->n] = r->p_value;
    }
    c->n++;
}

static void drift_runs_stored_newest_first(void **state)
{
    (void)state;
    char *path = hs_test_tmpfile("drift.db");
    unlink(path);
    hs_store *st = NULL;
    hs_err err = {0};
    assert_int_equal(hs_store_open(path, &st, &err), HS_OK);
    struct hs_drift_run a = {.ts_ms = 1000,
                             .kind = "data",
                             .status = "STABLE",
                             .score = 0.001,
                             .p_value = 0.4,
                             .details = "{\"dim\":64}"};
    struct hs_drift_run b = {
        .ts_ms = 2000, .kind = "concept", .status = "DRIFTED", .score = 70, .p_value = NAN, .details = NULL};
    struct hs_drift_run c = {
        .ts_ms = 3000, .kind = "data", .status = "DRIFTED", .score = 0.2, .p_value = 0.002, .details = "{}"};
    int64_t ida, idb, idc;
    assert_int_equal(hs_store_drift_add(st, &a, &ida, &err), HS_OK);
    assert_int_equal(hs_store_drift_add(st, &b, &idb, &err), HS_OK);
    assert_int_equal(hs_store_drift_add(st, &c, &idc, &err), HS_OK);
    struct runs all = {0}, data = {0}, last = {0};
    assert_int_equal(hs_store_drift_list(st, NULL, 0, collect, &all, &err), HS_OK);
    assert_int_equal(all.n, 3);
    assert_true(all.ids[0] == idc && all.ids[1] == idb && all.ids[2] == ida);
    assert_true(isnan(all.p[1]));
    assert_int_equal(hs_store_drift_list(st, "data", 0, collect, &data, &err), HS_OK);
    assert_int_equal(data.n, 2);
    assert_string_equal(data.kinds[1], "data");
    assert_close(data.p[1], 0.4, 0, "stored p");
    assert_int_equal(hs_store_drift_list(st, NULL, 1, collect, &last, &err), HS_OK);
    assert_int_equal(last.n, 1);
    struct hs_drift_run bad = {.kind = "vibes", .status = "STABLE"};
    assert_int_equal(hs_store_drift_add(st, &bad, NULL, &err), HS_EINVAL);
    bad.kind = "data";
    bad.status = "MAYBE";
    assert_int_equal(hs_store_drift_add(st, &bad, NULL, &err), HS_EINVAL);
    hs_store_close(st);
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(welch_matches_r_on_sleep_data),
        cmocka_unit_test(mmd_matches_plain_loops),
        cmocka_unit_test(topic_shift_detected_same_topic_not),
        cmocka_unit_test(drifted_dimensions_are_the_shifted_ones),
        cmocka_unit_test(deterministic_across_threads_and_subsampled),
        cmocka_unit_test(bad_input_is_refused),
        cmocka_unit_test(real_embeddings_two_topics),
        cmocka_unit_test(normalisation_and_similarity),
        cmocka_unit_test(facts_decide_long_answers),
        cmocka_unit_test(concept_accuracy_and_verdict),
        cmocka_unit_test(reference_errors_name_the_line),
        cmocka_unit_test(drift_runs_stored_newest_first),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
