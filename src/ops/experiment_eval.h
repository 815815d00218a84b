/* (issue 7) Expert evaluation sheets: `hestia eval export` writes a CSV of
 * sampled answers for people to score, `hestia eval import` reads it back.
 *
 * Columns, in this order (the variant column is left out when blinded):
 *   request_id, variant, question, answer, accuracy, safety, comment
 * accuracy and safety are whole numbers 1..5 (5 best); a row with both
 * empty is not rated yet and is skipped; comment is free text. The reader
 * finds columns by their header names, so a spreadsheet may reorder them or
 * add its own. */
#ifndef HS_OPS_EXPERIMENT_EVAL_H
#define HS_OPS_EXPERIMENT_EVAL_H

#include "base/buf.h"
#include "ops/csv.h"
#include "ops/store_experiments.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a person reads from a stored request body: the last user message
 * of a chat request (text parts joined), or a completion's prompt; from a
 * stored response: the first choice's message or text, or the deltas of a
 * streamed (SSE) answer put together. Text that is none of these comes back
 * as it is. NULL in, "" out. New string (hs_free), NULL when out of memory. */
char *hs_eval_question(const char *request_body);
char *hs_eval_answer(const char *response_body);

/* Chooses k of n items (k <= n) by a seeded partial Fisher-Yates shuffle:
 * idx gets k distinct indices in 0..n-1. The same seed gives the same choice. */
void hs_eval_sample(size_t n, size_t k, uint64_t seed, size_t *idx);

/* The header line, and one row for a candidate. A cell that a spreadsheet
 * would run as a formula (starting with =, +, -, @, tab or CR) is written
 * with a leading ' (OWASP's advice on CSV injection): the sheet goes to
 * people's spreadsheets, the answers come from a model. */
int hs_eval_sheet_header(hs_buf *out, bool blind);
int hs_eval_sheet_row(hs_buf *out, const struct hs_eval_candidate *c, bool blind);

struct hs_eval_sheet {
    struct hs_eval_score *scores; /* their strings point into csv */
    int *lines;                   /* the line of each score's row */
    size_t n;
    size_t unrated; /* rows skipped with both scores empty */
    struct hs_csv csv;
};

/* Reads a filled sheet (name for messages). Every cell is checked before
 * anything is returned: errors are HS_EFORMAT "NAME:LINE: column accuracy:
 * expected a whole number 1..5, got 'x'", a missing column, a row with too
 * few cells, or a request id given twice. rater is stored with each score.
 * Free with hs_eval_sheet_free. */
int hs_eval_sheet_read(const char *text, size_t len, const char *name, const char *rater,
                       struct hs_eval_sheet *out, hs_err *err);
void hs_eval_sheet_free(struct hs_eval_sheet *s);

#endif
