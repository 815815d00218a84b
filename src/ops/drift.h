/* Data drift: are the prompts coming in now like the ones the model was
 * deployed for? Two samples of embedding vectors (the engine's
 * /v1/embeddings of a reference set of prompts and of recent ones), n x dim
 * floats each, row-major, are compared three ways:
 *
 *   centroid distance   1 - cos(mean of ref, mean of cur): a cheap view of
 *                       a shift of the whole cloud;
 *   MMD^2 + p-value     the unbiased estimate of the squared maximum mean
 *                       discrepancy (Gretton et al., JMLR 2012) with the
 *                       Gaussian kernel k(x,y) = exp(-|x-y|^2 / (2 s^2)),
 *                       s^2 the median of the pooled pairwise squared
 *                       distances (the median heuristic); its p-value by a
 *                       permutation test: the pooled rows are relabelled B
 *                       times (seeded gsl_rng, gsl_ran_shuffle) and
 *                       p = (1 + #{permuted MMD^2 >= observed}) / (B + 1);
 *   drifted dimensions  a Welch t-test per coordinate (two-sided,
 *                       gsl_cdf_tdist_Q), corrected for the dim tests with
 *                       Benjamini-Hochberg at alpha (false discovery rate);
 *                       the share of coordinates it rejects.
 * The status is DRIFTED when p < alpha or the centroid distance is above
 * centroid_threshold, STABLE otherwise.
 *
 * Cost: the pooled Gram matrix is computed once (hs_matmul, f32) and the
 * kernel matrix kept (m^2 doubles for m = n_ref + n_cur rows); a permutation
 * is then m^2/2 multiply-adds over it, and the B permutations are split over
 * the thread pool. Samples above max_samples rows are subsampled (seeded). */
#ifndef HS_OPS_DRIFT_H
#define HS_OPS_DRIFT_H

#include "base/err.h"
#include "base/pool.h"
#include "ops/drift_concept.h"

#include <stdbool.h>
#include <stdint.h>

/* The most rows a sample may keep (the kernel matrix of two such samples
 * takes 128 MiB). */
#define HS_DRIFT_MAX_SAMPLES 2000

struct hs_drift_params {
    double alpha;              /* DRIFTED when p < alpha; the per-dimension FDR level; default 0.05 */
    double centroid_threshold; /* DRIFTED when 1 - cos(means) > this; 0 = off; default 0.10 */
    int permutations;          /* B, 1..1000000; default 500 */
    uint64_t seed;             /* subsampling and permutations; default 42 */
    int max_samples;           /* rows kept per sample, 2..HS_DRIFT_MAX_SAMPLES; default 500 */
    bool l2_normalize;         /* scale each row to unit length first; default true */
    hs_pool *pool;             /* threads for the Gram matrix and the permutations; NULL: the caller's */
};
void hs_drift_params_default(struct hs_drift_params *p);

enum hs_drift_status { HS_DRIFT_STABLE = 0, HS_DRIFT_DRIFTED = 1 };
const char *hs_drift_status_name(enum hs_drift_status s); /* "STABLE", "DRIFTED" */

struct hs_drift_data_result {
    int n_ref, n_cur, dim;    /* rows used (after subsampling) and their length */
    double centroid_distance; /* NaN when a mean is the zero vector */
    double mmd2;              /* unbiased; may be slightly negative under no drift */
    double sigma;             /* the kernel bandwidth s */
    double p_value;
    int permutations;
    int drifted_dims;
    double drifted_share;         /* drifted_dims / dim */
    bool by_p_value, by_centroid; /* which criterion said DRIFTED */
    enum hs_drift_status status;
};

/* Compares cur with ref (both n x dim floats, row-major; at least 2 rows
 * each). HS_EINVAL for sizes out of range or a non-finite value (naming the
 * sample and row), HS_ENOMEM. p NULL = defaults. Deterministic for a given
 * seed, whatever the pool's size. */
int hs_drift_data(const float *ref, int n_ref, const float *cur, int n_cur, int dim,
                  const struct hs_drift_params *p, struct hs_drift_data_result *out, hs_err *err);

/* The two-sided Welch t-test from two samples' means, (unbiased) variances
 * and sizes (each >= 2): returns the p-value and fills t and df (either may
 * be NULL). Equal means with zero variances give p = 1, different ones 0. */
double hs_drift_welch(double mean1, double var1, double n1, double mean2, double var2, double n2, double *t,
                      double *df);

/* The result as a JSON object (the drift_runs row's details):
 * {"n_ref":..,"n_cur":..,"dim":..,"centroid_distance":..,"mmd2":..,"sigma":..,
 *  "p_value":..,"permutations":..,"drifted_dims":..,"drifted_share":..,
 *  "alpha":..,"centroid_threshold":..,"status":"DRIFTED","by":["p_value"]}.
 * New string (hs_free) or NULL when out of memory. */
char *hs_drift_data_to_json(const struct hs_drift_data_result *r, const struct hs_drift_params *p);

/* ---- configuration: the `drift:` section of hestia.yaml ----
 * Two jobs the server runs on a schedule; an absent (or null) section, or
 * every: 0, schedules nothing (`hestia drift data|concept` still run them by
 * hand):
 *   drift:
 *     data:                       # the recent prompts against a reference sample
 *       every: 7d                 # s, m, h, d, w; default 7d when the section is there
 *       reference: prompts.txt    # required: .txt (a text a line) or .jsonl ("prompt")
 *       model: default            # whose embeddings; default the first model
 *       alpha: 0.05
 *       centroid_threshold: 0.10
 *       permutations: 500
 *       seed: 42
 *       max_samples: 500          # recent prompts kept (and reference rows used)
 *       min_samples: 20           # fewer recent prompts: the run is skipped
 *     concept:                    # a reference Q&A set against the recorded accuracy
 *       every: 30d                # default 30d when the section is there
 *       reference: ref.jsonl      # required: {question, expected, facts?} a line
 *       model: default
 *       similarity_threshold: 0.8
 *       accuracy_drop_points: 15
 *       max_tokens: 128
 * Read by hs_monitor_config_parse / hs_drift_config_parse_node (ops/monitor.h);
 * errors name FILE:LINE and the key (drift.data.alpha). */
#define HS_DRIFT_DATA_EVERY_MS (7LL * 24 * 3600 * 1000)
#define HS_DRIFT_CONCEPT_EVERY_MS (30LL * 24 * 3600 * 1000)
struct hs_drift_data_config {
    int64_t every_ms;              /* 0 = not scheduled (the default) */
    char *reference;               /* owned; NULL = none */
    char *model;                   /* owned; NULL = the first model */
    struct hs_drift_params params; /* pool is not in the file */
    int min_samples;               /* default 20 */
};
struct hs_drift_concept_config {
    int64_t every_ms; /* 0 = not scheduled (the default) */
    char *reference;  /* owned; NULL = none */
    char *model;      /* owned; NULL = the first model */
    struct hs_concept_params params;
    int max_tokens; /* per answer; default 128 */
};
struct hs_drift_config {
    struct hs_drift_data_config data;
    struct hs_drift_concept_config concept;
};
void hs_drift_config_default(struct hs_drift_config *c);
void hs_drift_config_free(struct hs_drift_config *c);

/* "45s", "30m", "12h", "7d", "2w" (a whole number and a unit) or "0" ->
 * milliseconds. HS_EINVAL otherwise. */
int hs_drift_parse_every(const char *s, int64_t *ms);

#endif
