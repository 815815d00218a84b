/* Confidence from chosen-token log-probabilities (see confidence.h). */
#include "ops/confidence.h"

#include <jansson.h>
#include <math.h>
#include <stdbool.h>

/* A log-probability above 0 is impossible; engines that compute it in float
 * may round a certain token to a hair above 0, so small excesses count as 0. */
#define LP_ROUNDING 1e-3

void hs_conf_init(struct hs_conf_acc *a, double low_prob)
{
    a->low_prob = (low_prob > 0 && low_prob <= 1) ? low_prob : HS_CONF_LOW_PROB_DEFAULT;
    a->n = 0;
    a->n_low = 0;
    a->n_bad = 0;
    a->sum_p = 0;
    a->sum_lp = 0;
    a->min_p = 1;
}

void hs_conf_add(struct hs_conf_acc *a, double lp)
{
    if (isnan(lp) || lp > LP_ROUNDING) { /* +inf included */
        a->n_bad++;
        return;
    }
    if (lp > 0)
        lp = 0;
    double p = exp(lp); /* exp(-inf) = 0 */
    a->n++;
    a->sum_p += p;
    a->sum_lp += lp;
    if (p < a->low_prob)
        a->n_low++;
    if (p < a->min_p)
        a->min_p = p;
}

void hs_conf_add_array(struct hs_conf_acc *a, const double *lps, size_t n)
{
    for (size_t i = 0; i < n; i++)
        hs_conf_add(a, lps[i]);
}

void hs_conf_result(struct hs_confidence *out, const struct hs_conf_acc *a)
{
    out->n_tokens = a->n;
    if (a->n <= 0) {
        out->mean_prob = out->low_share = out->min_prob = out->geo_mean_prob = -1;
        return;
    }
    double n = (double)a->n;
    out->mean_prob = a->sum_p / n;
    out->low_share = (double)a->n_low / n;
    out->min_prob = a->min_p;
    out->geo_mean_prob = exp(a->sum_lp / n); /* -inf / n -> 0 */
    /* sums of many values may drift a hair outside [0, 1] */
    if (out->mean_prob > 1)
        out->mean_prob = 1;
    if (out->geo_mean_prob > 1)
        out->geo_mean_prob = 1;
}

void hs_confidence_compute(struct hs_confidence *out, const double *lps, size_t n, double low_prob)
{
    struct hs_conf_acc a;
    hs_conf_init(&a, low_prob);
    hs_conf_add_array(&a, lps, n);
    hs_conf_result(out, &a);
}

/* --- OpenAI logprobs JSON --- */

/* The choice whose "index" is `choice`; when the choices carry no index, the
 * one at that position. NULL when there is none (a chunk for another choice,
 * the usage-only last chunk). */
static json_t *find_choice(json_t *choices, int choice, size_t *pos)
{
    size_t i;
    json_t *c;
    bool any_index = false;
    json_array_foreach(choices, i, c) {
        json_t *idx = json_is_object(c) ? json_object_get(c, "index") : NULL;
        if (json_is_integer(idx)) {
            any_index = true;
            if (json_integer_value(idx) == choice) {
                *pos = i;
                return c;
            }
        }
    }
    if (!any_index && choice >= 0 && (size_t)choice < json_array_size(choices)) {
        *pos = (size_t)choice;
        return json_array_get(choices, (size_t)choice);
    }
    return NULL;
}

int hs_conf_add_json(struct hs_conf_acc *a, const struct json_t *resp_c, int choice, int64_t *added, hs_err *err)
{
    /* jansson's getters take non-const pointers; nothing here writes */
    json_t *resp = (json_t *)resp_c;
    if (added)
        *added = 0;
    if (!json_is_object(resp))
        return hs_err_set(err, HS_EFORMAT, "logprobs: expected a JSON object (a response or a chunk)");
    json_t *choices = json_object_get(resp, "choices");
    if (!json_is_array(choices))
        return hs_err_set(err, HS_EFORMAT, "choices: expected an array");
    size_t pos = 0;
    json_t *c = find_choice(choices, choice, &pos);
    if (!c)
        return HS_OK;
    if (!json_is_object(c))
        return hs_err_set(err, HS_EFORMAT, "choices[%zu]: expected an object", pos);
    json_t *lp = json_object_get(c, "logprobs");
    if (!lp || json_is_null(lp))
        return HS_OK;
    if (!json_is_object(lp))
        return hs_err_set(err, HS_EFORMAT, "choices[%zu].logprobs: expected an object or null", pos);

    /* Added into a copy and committed at the end, so a malformed entry half
     * way leaves the accumulator as it was. */
    struct hs_conf_acc t = *a;
    json_t *content = json_object_get(lp, "content");
    json_t *tlp = json_object_get(lp, "token_logprobs");
    size_t k;
    json_t *e;
    if (content && !json_is_null(content)) {
        if (!json_is_array(content))
            return hs_err_set(err, HS_EFORMAT, "choices[%zu].logprobs.content: expected an array", pos);
        json_array_foreach(content, k, e) {
            json_t *v = json_is_object(e) ? json_object_get(e, "logprob") : NULL;
            if (!json_is_number(v))
                return hs_err_set(err, HS_EFORMAT,
                                  "choices[%zu].logprobs.content[%zu].logprob: expected a number", pos, k);
            hs_conf_add(&t, json_number_value(v));
        }
    } else if (tlp && !json_is_null(tlp)) {
        if (!json_is_array(tlp))
            return hs_err_set(err, HS_EFORMAT, "choices[%zu].logprobs.token_logprobs: expected an array", pos);
        json_array_foreach(tlp, k, e) {
            if (json_is_null(e)) /* the first token of an echoed prompt has none */
                continue;
            if (!json_is_number(e))
                return hs_err_set(err, HS_EFORMAT,
                                  "choices[%zu].logprobs.token_logprobs[%zu]: expected a number or null", pos, k);
            hs_conf_add(&t, json_number_value(e));
        }
    } else if (!content && !tlp) {
        return hs_err_set(err, HS_EFORMAT,
                          "choices[%zu].logprobs: expected content (chat) or token_logprobs (completions)", pos);
    }
    if (added)
        *added = t.n - a->n;
    *a = t;
    return HS_OK;
}

int hs_conf_add_json_text(struct hs_conf_acc *a, const char *text, size_t len, int choice, int64_t *added,
                          hs_err *err)
{
    if (added)
        *added = 0;
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return hs_err_set(err, HS_EFORMAT, "logprobs JSON: line %d column %d: %s", je.line, je.column, je.text);
    int rc = hs_conf_add_json(a, root, choice, added, err);
    json_decref(root);
    return rc;
}
