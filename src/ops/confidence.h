/* Confidence of an answer from the log-probabilities (natural log) of the
 * tokens the model chose, for the request record (issue 6):
 *   mean_prob      mean of exp(lp) over the answer's tokens
 *   low_share      share of tokens whose probability is below a line (0.2)
 *   min_prob       the least likely token's probability
 *   geo_mean_prob  exp(mean lp): the inverse of the answer's perplexity
 * An empty answer has no confidence: every figure is -1 ("unknown").
 *
 * The accumulator is plain data with no allocation, so the server can keep
 * one per request and add each token as it is sampled (local engine) or as
 * each streamed chunk arrives (upstream): O(1) per token, never blocking.
 * It is not locked; one request's thread owns it. */
#ifndef HS_OPS_CONFIDENCE_H
#define HS_OPS_CONFIDENCE_H

#include "base/err.h"

#include <stddef.h>
#include <stdint.h>

#define HS_CONF_LOW_PROB_DEFAULT 0.2

struct hs_conf_acc {
    double low_prob; /* the line: a token with p < low_prob counts as low */
    int64_t n;       /* tokens counted */
    int64_t n_low;   /* of which below the line */
    int64_t n_bad;   /* values skipped: NaN, +inf, clearly positive */
    double sum_p;    /* sum of exp(lp) */
    double sum_lp;   /* sum of lp; -inf once a token had probability 0 */
    double min_p;
};

/* What the record stores; -1 everywhere when no token was counted. */
struct hs_confidence {
    int64_t n_tokens;
    double mean_prob;
    double low_share;
    double min_prob;
    double geo_mean_prob;
};

/* low_prob outside (0, 1] (0, NaN) gives HS_CONF_LOW_PROB_DEFAULT. */
void hs_conf_init(struct hs_conf_acc *a, double low_prob);

/* One chosen token's log-probability. -inf (and OpenAI's -9999 floor) is a
 * probability of 0; a value a little above 0 (rounding) counts as 0; NaN,
 * +inf and values above 1e-3 are skipped and counted in n_bad. */
void hs_conf_add(struct hs_conf_acc *a, double logprob);
void hs_conf_add_array(struct hs_conf_acc *a, const double *logprobs, size_t n);

/* The figures so far (the accumulator stays usable). */
void hs_conf_result(struct hs_confidence *out, const struct hs_conf_acc *a);

/* All at once: out from n log-probabilities with the given line. */
void hs_confidence_compute(struct hs_confidence *out, const double *logprobs, size_t n, double low_prob);

/* --- upstream answers (OpenAI's logprobs JSON) ---
 * Adds the chosen-token log-probabilities of choice number `choice` (its
 * "index" member, or its position when it has none) of a response or of one
 * streamed chunk:
 *   chat:         choices[i].logprobs.content[k].logprob
 *   completions:  choices[i].logprobs.token_logprobs[k]  (null entries skipped)
 * A choice without logprobs (null or absent) adds nothing and is not an
 * error: *added tells how many tokens were added (may be NULL). Anything
 * else that is not that shape is HS_EFORMAT with the JSON path in err, and
 * adds nothing. The json_t is borrowed. */
struct json_t;
int hs_conf_add_json(struct hs_conf_acc *a, const struct json_t *resp, int choice, int64_t *added, hs_err *err);
/* The same from the JSON text (a response body, or one SSE data: payload). */
int hs_conf_add_json_text(struct hs_conf_acc *a, const char *text, size_t len, int choice, int64_t *added,
                          hs_err *err);

#endif
