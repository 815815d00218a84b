/* Data drift between two samples of embeddings: centroid distance, MMD^2
 * with a permutation p-value, and per-dimension Welch tests (see drift.h).
 *
 * The pooled rows Z (m x dim, the reference sample first) meet three times:
 *   1. G = Z Z^T, once, through hs_matmul (f32), and from it the squared
 *      distances |z_i - z_j|^2 = G_ii + G_jj - 2 G_ij;
 *   2. the kernel matrix K = exp(-D / (2 s^2)), s^2 the median of D over
 *      i < j, kept whole;
 *   3. B + 1 evaluations of MMD^2 for a labelling of the rows (the observed
 *      one and B shuffles), each a pass over the upper triangle of K.
 *
 * For a labelling with nx rows in X and ny in Y, the unbiased estimate is
 *   MMD^2_u = Sxx / (nx (nx-1)) + Syy / (ny (ny-1)) - 2 Sxy / (nx ny)
 * with Sxx the sum of K over ordered pairs i != j both in X (twice the
 * upper-triangle sum), Syy likewise, Sxy over i in X, j in Y. The pass
 * computes, per row i, the sum of K_ij over j > i in X; with the row's
 * whole upper sum (the same for every labelling, precomputed) that splits
 * each row's pairs into the three sums. */
#include "ops/drift.h"

#include "base/mem.h"
#include "gguf/gguf_types.h"
#include "tensor/matmul.h"

#include <gsl/gsl_cdf.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <gsl/gsl_sort.h>
#include <gsl/gsl_statistics_double.h>
#include <gsl/gsl_statistics_float.h>
#include <jansson.h>
#include <math.h>
#include <stdatomic.h>
#include <string.h>

void hs_drift_params_default(struct hs_drift_params *p)
{
    memset(p, 0, sizeof *p);
    p->alpha = 0.05;
    p->centroid_threshold = 0.10;
    p->permutations = 500;
    p->seed = 42;
    p->max_samples = 500;
    p->l2_normalize = true;
}

const char *hs_drift_status_name(enum hs_drift_status s)
{
    return s == HS_DRIFT_DRIFTED ? "DRIFTED" : "STABLE";
}

double hs_drift_welch(double mean1, double var1, double n1, double mean2, double var2, double n2, double *t,
                      double *df)
{
    double a = var1 / n1, b = var2 / n2, se2 = a + b;
    if (!(se2 > 0)) {
        if (t)
            *t = mean1 == mean2 ? 0 : copysign(INFINITY, mean1 - mean2);
        if (df)
            *df = n1 + n2 - 2;
        return mean1 == mean2 ? 1.0 : 0.0;
    }
    double tt = (mean1 - mean2) / sqrt(se2);
    /* Welch-Satterthwaite degrees of freedom */
    double dd = se2 * se2 / (a * a / (n1 - 1) + b * b / (n2 - 1));
    if (t)
        *t = tt;
    if (df)
        *df = dd;
    double p = 2 * gsl_cdf_tdist_Q(fabs(tt), dd);
    return p > 1 ? 1 : p;
}

/* ---- the pooled rows ---- */

/* Copies n rows of src (or the seeded choice of keep of them, in their
 * original order) into dst, checking every value. */
static int take_rows(float *dst, const float *src, int n, int keep, int dim, gsl_rng *rng, const char *which,
                     hs_err *err)
{
    int *all = NULL, *pick = NULL;
    if (keep < n) {
        all = hs_malloc((size_t)n * sizeof *all);
        pick = hs_malloc((size_t)keep * sizeof *pick);
        if (!all || !pick) {
            hs_free(all);
            hs_free(pick);
            return hs_err_set(err, HS_ENOMEM, "drift: out of memory");
        }
        for (int i = 0; i < n; i++)
            all[i] = i;
        gsl_ran_choose(rng, pick, (size_t)keep, all, (size_t)n, sizeof *all);
    }
    int rc = HS_OK;
    for (int r = 0; r < keep && rc == HS_OK; r++) {
        int i = pick ? pick[r] : r;
        const float *row = src + (size_t)i * (size_t)dim;
        for (int e = 0; e < dim; e++) {
            if (!isfinite(row[e])) {
                rc = hs_err_set(err, HS_EINVAL, "drift: %s sample, row %d, value %d is not a finite number",
                                which, i, e);
                break;
            }
        }
        memcpy(dst + (size_t)r * (size_t)dim, row, (size_t)dim * sizeof *row);
    }
    hs_free(all);
    hs_free(pick);
    return rc;
}

static void normalize_rows(float *z, int m, int dim)
{
    for (int i = 0; i < m; i++) {
        float *row = z + (size_t)i * (size_t)dim;
        double ss = 0;
        for (int e = 0; e < dim; e++)
            ss += (double)row[e] * row[e];
        if (ss > 0) {
            double inv = 1 / sqrt(ss);
            for (int e = 0; e < dim; e++)
                row[e] = (float)(row[e] * inv);
        }
    }
}

/* 1 - cos between the means of rows [0, nx) and [nx, m). */
static double centroid_distance(const float *z, int nx, int m, int dim)
{
    double dot = 0, na = 0, nb = 0;
    for (int e = 0; e < dim; e++) {
        double a = 0, b = 0;
        for (int i = 0; i < nx; i++)
            a += z[(size_t)i * (size_t)dim + (size_t)e];
        for (int i = nx; i < m; i++)
            b += z[(size_t)i * (size_t)dim + (size_t)e];
        a /= nx;
        b /= (m - nx);
        dot += a * b;
        na += a * a;
        nb += b * b;
    }
    if (!(na > 0) || !(nb > 0))
        return NAN;
    double c = dot / sqrt(na * nb);
    if (c > 1)
        c = 1;
    if (c < -1)
        c = -1;
    return 1 - c;
}

/* Share of coordinates whose Welch test rejects after Benjamini-Hochberg at
 * level alpha: the largest k with p_(k) <= k alpha / dim rejects the k
 * smallest p-values. */
static int drifted_dims(const float *z, int nx, int m, int dim, double alpha, hs_err *err, int *out)
{
    double *p = hs_malloc((size_t)dim * sizeof *p);
    if (!p)
        return hs_err_set(err, HS_ENOMEM, "drift: out of memory");
    int ny = m - nx;
    for (int e = 0; e < dim; e++) {
        const float *x = z + e, *y = z + (size_t)nx * (size_t)dim + e;
        double mx = gsl_stats_float_mean(x, (size_t)dim, (size_t)nx);
        double my = gsl_stats_float_mean(y, (size_t)dim, (size_t)ny);
        double vx = gsl_stats_float_variance_m(x, (size_t)dim, (size_t)nx, mx);
        double vy = gsl_stats_float_variance_m(y, (size_t)dim, (size_t)ny, my);
        p[e] = hs_drift_welch(mx, vx, nx, my, vy, ny, NULL, NULL);
    }
    gsl_sort(p, 1, (size_t)dim);
    int k = 0;
    for (int i = dim; i >= 1; i--) {
        if (p[i - 1] <= alpha * i / dim) {
            k = i;
            break;
        }
    }
    hs_free(p);
    *out = k;
    return HS_OK;
}

/* ---- the kernel matrix ---- */

struct kern {
    int m, nx;
    double *k;     /* m x m, symmetric */
    double *upper; /* per row i: sum of K_ij over j > i */
    double s2;     /* the median squared distance */
};

/* Builds K from the rows through G = Z Z^T. */
static int kernel_matrix(struct kern *kn, const float *z, int m, int dim, hs_pool *pool, hs_err *err)
{
    size_t mm = (size_t)m * (size_t)m, npairs = (size_t)m * (size_t)(m - 1) / 2;
    float *g = hs_malloc(mm * sizeof *g);
    double *d2 = hs_malloc(npairs * sizeof *d2);
    kn->k = hs_malloc(mm * sizeof *kn->k);
    kn->upper = hs_calloc((size_t)m, sizeof *kn->upper);
    hs_pool *own = NULL;
    int rc = HS_OK;
    if (!g || !d2 || !kn->k || !kn->upper) {
        rc = hs_err_set(err, HS_ENOMEM, "drift: out of memory for %d x %d kernel matrix", m, m);
        goto done;
    }
    if (!pool) {
        if (hs_pool_create(1, &own) != HS_OK) {
            rc = hs_err_set(err, HS_ENOMEM, "drift: out of memory");
            goto done;
        }
        pool = own;
    }
    hs_mm_scratch scratch = {0};
    struct hs_mat w = {
        .type = HS_TYPE_F32, .n_cols = dim, .n_rows = m, .row_bytes = (size_t)dim * sizeof(float), .data = z};
    rc = hs_matmul(pool, &scratch, &w, z, (size_t)dim, m, g, (size_t)m);
    hs_mm_scratch_free(&scratch);
    if (rc != HS_OK) {
        rc = hs_err_set(err, rc, "drift: Gram matrix failed (%s)", hs_err_name(rc));
        goto done;
    }
    size_t q = 0;
    for (int i = 0; i < m; i++) {
        double gii = g[(size_t)i * (size_t)m + (size_t)i];
        for (int j = i + 1; j < m; j++) {
            double v =
                gii + g[(size_t)j * (size_t)m + (size_t)j] - 2.0 * g[(size_t)i * (size_t)m + (size_t)j];
            d2[q++] = v > 0 ? v : 0;
        }
    }
    /* K is filled from the same d2 order before d2 is sorted for the median */
    double *kk = kn->k;
    q = 0;
    for (int i = 0; i < m; i++) {
        kk[(size_t)i * (size_t)m + (size_t)i] = 1;
        for (int j = i + 1; j < m; j++) {
            double v = d2[q++];
            kk[(size_t)i * (size_t)m + (size_t)j] = v; /* distance for now */
            kk[(size_t)j * (size_t)m + (size_t)i] = v;
        }
    }
    gsl_sort(d2, 1, npairs);
    double s2 = gsl_stats_median_from_sorted_data(d2, 1, npairs);
    /* identical rows everywhere: any bandwidth gives K = 1 and MMD^2 = 0 */
    kn->s2 = s2 > 0 ? s2 : 1;
    double inv = -1 / (2 * kn->s2);
    for (int i = 0; i < m; i++) {
        double up = 0;
        for (int j = i + 1; j < m; j++) {
            double v = exp(kk[(size_t)i * (size_t)m + (size_t)j] * inv);
            kk[(size_t)i * (size_t)m + (size_t)j] = v;
            kk[(size_t)j * (size_t)m + (size_t)i] = v;
            up += v;
        }
        kn->upper[i] = up;
    }
done:
    hs_pool_free(own);
    hs_free(g);
    hs_free(d2);
    return rc;
}

/* MMD^2_u for the labelling lab (1 = in X). mask is m doubles of scratch. */
static double mmd2_of(const struct kern *kn, const unsigned char *lab, double *mask)
{
    int m = kn->m;
    int nx = 0;
    for (int i = 0; i < m; i++) {
        mask[i] = lab[i];
        nx += lab[i];
    }
    int ny = m - nx;
    double sxx = 0, syy = 0, sxy = 0;
    for (int i = 0; i < m; i++) {
        const double *row = kn->k + (size_t)i * (size_t)m;
        /* four partial sums: the additions need not wait on each other */
        double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        int j = i + 1;
        for (; j + 3 < m; j += 4) {
            a0 += row[j] * mask[j];
            a1 += row[j + 1] * mask[j + 1];
            a2 += row[j + 2] * mask[j + 2];
            a3 += row[j + 3] * mask[j + 3];
        }
        for (; j < m; j++)
            a0 += row[j] * mask[j];
        double to_x = (a0 + a1) + (a2 + a3), to_y = kn->upper[i] - to_x;
        if (lab[i]) {
            sxx += to_x;
            sxy += to_y;
        } else {
            sxy += to_x;
            syy += to_y;
        }
    }
    return 2 * sxx / ((double)nx * (nx - 1)) + 2 * syy / ((double)ny * (ny - 1)) -
           2 * sxy / ((double)nx * ny);
}

/* Labellings are drawn in blocks of this many, so memory stays
 * PERM_BLOCK x m bytes whatever B. */
#define PERM_BLOCK 256

struct perm_job {
    const struct kern *kn;
    const unsigned char *labels; /* n labellings of m bytes */
    double *stat;                /* their statistics */
    atomic_bool oom;
};

static void perm_range(void *arg, long lo, long hi)
{
    struct perm_job *j = arg;
    double *mask = hs_malloc((size_t)j->kn->m * sizeof *mask);
    if (!mask) {
        atomic_store(&j->oom, true);
        return;
    }
    for (long b = lo; b < hi; b++)
        j->stat[b] = mmd2_of(j->kn, j->labels + (size_t)b * (size_t)j->kn->m, mask);
    hs_free(mask);
}

/* ---- the whole comparison ---- */

static int check_params(const struct hs_drift_params *p, int n_ref, int n_cur, int dim, hs_err *err)
{
    if (n_ref < 2 || n_cur < 2)
        return hs_err_set(err, HS_EINVAL,
                          "drift: each sample needs at least 2 rows (reference %d, current %d)", n_ref,
                          n_cur);
    if (dim < 1 || dim > (1 << 20))
        return hs_err_set(err, HS_EINVAL, "drift: embedding size %d is out of range 1..%d", dim, 1 << 20);
    if (!(p->alpha > 0 && p->alpha < 1))
        return hs_err_set(err, HS_EINVAL, "drift: alpha must be between 0 and 1, not %g", p->alpha);
    if (!(p->centroid_threshold >= 0))
        return hs_err_set(err, HS_EINVAL, "drift: centroid_threshold must be >= 0");
    if (p->permutations < 1 || p->permutations > 1000000)
        return hs_err_set(err, HS_EINVAL, "drift: permutations must be 1..1000000, not %d", p->permutations);
    if (p->max_samples < 2 || p->max_samples > HS_DRIFT_MAX_SAMPLES)
        return hs_err_set(err, HS_EINVAL, "drift: max_samples must be 2..%d, not %d", HS_DRIFT_MAX_SAMPLES,
                          p->max_samples);
    return HS_OK;
}

int hs_drift_data(const float *ref, int n_ref, const float *cur, int n_cur, int dim,
                  const struct hs_drift_params *params, struct hs_drift_data_result *out, hs_err *err)
{
    struct hs_drift_params p;
    if (params)
        p = *params;
    else
        hs_drift_params_default(&p);
    int rc = check_params(&p, n_ref, n_cur, dim, err);
    if (rc != HS_OK)
        return rc;
    int nx = n_ref < p.max_samples ? n_ref : p.max_samples;
    int ny = n_cur < p.max_samples ? n_cur : p.max_samples;
    int m = nx + ny;
    int B = p.permutations;

    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    float *z = hs_malloc((size_t)m * (size_t)dim * sizeof *z);
    int *idx = hs_malloc((size_t)m * sizeof *idx);
    unsigned char *labels = hs_malloc((size_t)PERM_BLOCK * (size_t)m);
    double *stat = hs_malloc((size_t)(B + 1) * sizeof *stat);
    struct kern kn = {.m = m, .nx = nx};
    if (!rng || !z || !idx || !labels || !stat) {
        rc = hs_err_set(err, HS_ENOMEM, "drift: out of memory");
        goto done;
    }
    /* mt19937 takes an unsigned long seed; 0 means its default seed */
    gsl_rng_set(rng, (unsigned long)p.seed);
    rc = take_rows(z, ref, n_ref, nx, dim, rng, "reference", err);
    if (rc == HS_OK)
        rc = take_rows(z + (size_t)nx * (size_t)dim, cur, n_cur, ny, dim, rng, "current", err);
    if (rc != HS_OK)
        goto done;
    if (p.l2_normalize)
        normalize_rows(z, m, dim);

    struct hs_drift_data_result r;
    memset(&r, 0, sizeof r);
    r.n_ref = nx;
    r.n_cur = ny;
    r.dim = dim;
    r.permutations = B;
    r.centroid_distance = centroid_distance(z, nx, m, dim);
    rc = drifted_dims(z, nx, m, dim, p.alpha, err, &r.drifted_dims);
    if (rc != HS_OK)
        goto done;
    r.drifted_share = (double)r.drifted_dims / dim;

    rc = kernel_matrix(&kn, z, m, dim, p.pool, err);
    if (rc != HS_OK)
        goto done;
    r.sigma = sqrt(kn.s2);

    /* labelling 0 is the observed one; 1..B are shuffles, drawn here in
       order, block by block, so that the threads change nothing */
    for (int i = 0; i < m; i++) {
        labels[i] = i < nx;
        idx[i] = i;
    }
    struct perm_job job = {.kn = &kn, .labels = labels, .stat = stat};
    atomic_init(&job.oom, false);
    hs_pool_for(p.pool, 1, 1, perm_range, &job);
    for (int first = 1; first <= B && !atomic_load(&job.oom); first += PERM_BLOCK) {
        int n = B - first + 1 < PERM_BLOCK ? B - first + 1 : PERM_BLOCK;
        for (int b = 0; b < n; b++) {
            gsl_ran_shuffle(rng, idx, (size_t)m, sizeof *idx);
            unsigned char *lab = labels + (size_t)b * (size_t)m;
            for (int k = 0; k < m; k++)
                lab[idx[k]] = k < nx;
        }
        job.stat = stat + first;
        hs_pool_for(p.pool, n, 8, perm_range, &job);
    }
    if (atomic_load(&job.oom)) {
        rc = hs_err_set(err, HS_ENOMEM, "drift: out of memory");
        goto done;
    }
    r.mmd2 = stat[0];
    int ge = 0;
    for (int b = 1; b <= B; b++)
        ge += stat[b] >= stat[0];
    r.p_value = (1.0 + ge) / (B + 1.0);

    r.by_p_value = r.p_value < p.alpha;
    r.by_centroid = p.centroid_threshold > 0 && isfinite(r.centroid_distance) &&
                    r.centroid_distance > p.centroid_threshold;
    r.status = r.by_p_value || r.by_centroid ? HS_DRIFT_DRIFTED : HS_DRIFT_STABLE;
    *out = r;
done:
    gsl_rng_free(rng);
    hs_free(z);
    hs_free(idx);
    hs_free(labels);
    hs_free(stat);
    hs_free(kn.k);
    hs_free(kn.upper);
    return rc;
}

static json_t *num(double x)
{
    return isfinite(x) ? json_real(x) : json_null();
}

char *hs_drift_data_to_json(const struct hs_drift_data_result *r, const struct hs_drift_params *p)
{
    json_t *by = json_array();
    if (by && r->by_p_value)
        json_array_append_new(by, json_string("p_value"));
    if (by && r->by_centroid)
        json_array_append_new(by, json_string("centroid_distance"));
    json_t *o =
        json_pack("{s:i,s:i,s:i,s:o,s:o,s:o,s:o,s:i,s:i,s:o,s:o,s:o,s:s,s:o}", "n_ref", r->n_ref, "n_cur",
                  r->n_cur, "dim", r->dim, "centroid_distance", num(r->centroid_distance), "mmd2",
                  num(r->mmd2), "sigma", num(r->sigma), "p_value", num(r->p_value), "permutations",
                  r->permutations, "drifted_dims", r->drifted_dims, "drifted_share", num(r->drifted_share),
                  "alpha", num(p ? p->alpha : NAN), "centroid_threshold",
                  num(p ? p->centroid_threshold : NAN), "status", hs_drift_status_name(r->status), "by", by);
    if (!o)
        return NULL;
    char *txt = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(o);
    char *copy = txt ? hs_strdup(txt) : NULL;
    free(txt);
    return copy;
}

/* ---- configuration ---- */

void hs_drift_config_default(struct hs_drift_config *c)
{
    memset(c, 0, sizeof *c);
    hs_drift_params_default(&c->data.params);
    c->data.min_samples = 20;
    hs_concept_params_default(&c->concept.params);
    c->concept.max_tokens = 128;
}

void hs_drift_config_free(struct hs_drift_config *c)
{
    if (!c)
        return;
    hs_free(c->data.reference);
    hs_free(c->data.model);
    hs_free(c->concept.reference);
    hs_free(c->concept.model);
    c->data.reference = c->data.model = c->concept.reference = c->concept.model = NULL;
}

int hs_drift_parse_every(const char *s, int64_t *ms)
{
    if (!s || !s[0])
        return HS_EINVAL;
    int64_t v = 0;
    size_t i = 0;
    while (s[i] >= '0' && s[i] <= '9') {
        if (v > 1000000000)
            return HS_EINVAL;
        v = v * 10 + (s[i] - '0');
        i++;
    }
    if (i == 0)
        return HS_EINVAL;
    if (!s[i] && v == 0) {
        *ms = 0;
        return HS_OK;
    }
    int64_t unit;
    if (!strcmp(s + i, "s"))
        unit = 1000;
    else if (!strcmp(s + i, "m"))
        unit = 60 * 1000;
    else if (!strcmp(s + i, "h"))
        unit = 3600 * 1000;
    else if (!strcmp(s + i, "d"))
        unit = 24LL * 3600 * 1000;
    else if (!strcmp(s + i, "w"))
        unit = 7LL * 24 * 3600 * 1000;
    else
        return HS_EINVAL;
    *ms = v * unit;
    return HS_OK;
}
