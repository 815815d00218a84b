/* Concept drift: does the model still give the answers it gave at deploy?
 * A reference set of questions with expected answers (JSONL) is put to the
 * model; each answer is scored against the expected one, the accuracy over
 * the set is compared with the accuracy recorded at deploy, and a drop of
 * more than drop_points percentage points is DRIFTED.
 *
 * Scoring one answer:
 *   - both texts are normalised: Unicode NFKC with compatibility mappings,
 *     case folded, combining marks stripped (Greek tonos, accents), every
 *     punctuation, symbol, separator or control character turned into a
 *     space, runs of spaces collapsed, ends trimmed (utf8proc);
 *   - similarity = 1 - lev(a, b) / max(|a|, |b|), the Levenshtein distance
 *     over code points of the normalised texts (1 when both are empty);
 *   - facts: the item's "facts" list when it has one (an empty list: no
 *     facts), otherwise every number in the expected answer (a run of
 *     digits, with '.' or ',' between digits). A number is found when the answer holds the same number: the
 *     same digits and separators (',' read as '.'), or the same digits when
 *     one side is written in groups of three ("1,000" = "1000" = "1.000").
 *     A listed fact is found when its normalised words appear in the
 *     normalised answer as consecutive whole words;
 *   - the item is correct when every fact is found and, for an item without
 *     facts, similarity >= similarity_threshold. So an item with facts is
 *     judged by its facts alone (a long answer worded nothing like the
 *     expected one is right if it carries them), and a missing fact makes an
 *     answer wrong however close its wording ("keep 5 metres away" against
 *     "keep 50 metres away" has similarity 0.95 and is wrong).
 * Accuracy is the share of correct items in percent. */
#ifndef HS_OPS_DRIFT_CONCEPT_H
#define HS_OPS_DRIFT_CONCEPT_H

#include "base/err.h"

#include <stdbool.h>
#include <stddef.h>

struct hs_concept_params {
    double similarity_threshold; /* an item is correct from this similarity on; default 0.8 */
    double drop_points;          /* DRIFTED when accuracy fell by more than this; default 15 */
};
void hs_concept_params_default(struct hs_concept_params *p);

/* The normalised form of text (see above). Returns a new string (free with
 * hs_free); HS_EFORMAT when text is not valid UTF-8. */
int hs_concept_normalize(const char *text, char **out, hs_err *err);

/* 1 - Levenshtein / longer length over the code points of two already
 * normalised UTF-8 strings (texts longer than 4096 code points are compared
 * on their first 4096). */
double hs_concept_similarity_normalized(const char *a, const char *b);

struct hs_concept_score {
    double similarity;
    int facts_total, facts_found;
    bool correct;
};

/* Scores answer against expected. facts: n_facts strings (n_facts 0: no
 * facts), or NULL to take the numbers of expected. answer NULL is an empty answer. p NULL = defaults. */
int hs_concept_score(const char *answer, const char *expected, const char *const *facts, int n_facts,
                     const struct hs_concept_params *p, struct hs_concept_score *out, hs_err *err);

/* ---- the reference set ---- */

struct hs_concept_item {
    char *id; /* the line's "id", or NULL */
    char *question;
    char *expected;
    char **facts; /* n_facts strings; NULL when the line has no "facts" */
    int n_facts;
    int line; /* 1-based line in the file */
};

struct hs_concept_ref {
    struct hs_concept_item *items;
    int n;
};

/* One JSON object per line: {"question": "...", "expected": "..."} with
 * optional "id" (string) and "facts" (array of strings); other keys are
 * ignored; blank lines are skipped. Errors read "NAME:LINE: what is wrong"
 * (HS_EFORMAT); an empty set is an error too. On error *out is empty. */
int hs_concept_ref_parse(struct hs_concept_ref *out, const char *text, size_t len, const char *name,
                         hs_err *err);
/* Reads the file path (HS_EIO when it cannot be read) and parses it. */
int hs_concept_ref_load(struct hs_concept_ref *out, const char *path, hs_err *err);
void hs_concept_ref_free(struct hs_concept_ref *r);

/* ---- the verdict ---- */

struct hs_concept_result {
    int n, n_correct;
    double accuracy; /* percent, 0..100 */
    double mean_similarity;
    double recorded; /* the accuracy at deploy (percent); NaN when none */
    double drop;     /* recorded - accuracy, in points; NaN without a record */
    /* One-sided exact binomial p-value of seeing n_correct or fewer correct
     * answers if the deploy accuracy still held (gsl_cdf_binomial_P); NaN
     * without a record. Reported beside the verdict, which goes by drop. */
    double p_value;
    bool drifted; /* drop > drop_points */
};

/* Scores answers[i] (NULL = no answer, scored as empty) against every item
 * of ref, and compares the accuracy with recorded (NaN or < 0: no record,
 * never DRIFTED). items, when not NULL, receives ref->n scores. */
int hs_concept_evaluate(const struct hs_concept_ref *ref, const char *const *answers, double recorded,
                        const struct hs_concept_params *p, struct hs_concept_result *out,
                        struct hs_concept_score *items, hs_err *err);

/* The result as a JSON object (the drift_runs row's details):
 * {"n":..,"correct":..,"accuracy":..,"mean_similarity":..,"recorded":..,
 *  "drop_points":..,"p_value":..,"threshold_points":..,"status":"STABLE"}.
 * New string (hs_free) or NULL when out of memory. */
char *hs_concept_result_to_json(const struct hs_concept_result *r, const struct hs_concept_params *p);

#endif
