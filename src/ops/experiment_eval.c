/* Expert evaluation sheets (see experiment_eval.h): what to show a person
 * from the stored bodies, the balanced sample's choice, and the CSV both
 * ways. */
#include "ops/experiment_eval.h"

#include "base/mem.h"
#include "base/parse.h"
#include "base/rng.h"

#include <jansson.h>
#include <string.h>

/* ---- what a person reads ---- */

/* A message's content: a string, or an array of parts whose text parts
 * are joined with newlines. */
static int content_text(hs_buf *out, const json_t *content)
{
    if (json_is_string(content))
        return hs_buf_append(out, json_string_value(content), json_string_length(content));
    size_t i;
    const json_t *part;
    bool first = true;
    json_array_foreach(content, i, part)
    {
        const json_t *t = json_object_get(part, "text");
        if (!json_is_string(t))
            continue;
        if ((!first && hs_buf_putc(out, '\n')) ||
            hs_buf_append(out, json_string_value(t), json_string_length(t)))
            return HS_ENOMEM;
        first = false;
    }
    return HS_OK;
}

static char *dup_or_empty(const char *s)
{
    return hs_strdup(s ? s : "");
}

char *hs_eval_question(const char *body)
{
    json_t *j = body ? json_loads(body, 0, NULL) : NULL;
    hs_buf out = {0};
    bool found = false;
    int rc = HS_OK;
    const json_t *msgs = json_object_get(j, "messages");
    for (size_t i = json_array_size(msgs); i-- > 0 && !found;) {
        const json_t *m = json_array_get(msgs, i);
        const json_t *role = json_object_get(m, "role");
        if (json_is_string(role) && !strcmp(json_string_value(role), "user")) {
            rc = content_text(&out, json_object_get(m, "content"));
            found = true;
        }
    }
    const json_t *prompt = json_object_get(j, "prompt");
    if (!found && json_is_string(prompt)) {
        rc = hs_buf_append(&out, json_string_value(prompt), json_string_length(prompt));
        found = true;
    }
    json_decref(j);
    if (rc) {
        hs_buf_free(&out);
        return NULL;
    }
    if (!found) {
        hs_buf_free(&out);
        return dup_or_empty(body);
    }
    return out.data ? hs_buf_steal(&out) : hs_strdup("");
}

/* The first choice's text of one response object (or chunk) into out. */
static int choice_text(hs_buf *out, const json_t *j, bool *found)
{
    const json_t *c = json_array_get(json_object_get(j, "choices"), 0);
    const json_t *msg = json_object_get(c, "message"), *delta = json_object_get(c, "delta");
    const json_t *text = json_object_get(c, "text");
    if (msg) {
        *found = true;
        return content_text(out, json_object_get(msg, "content"));
    }
    if (delta) {
        *found = true;
        const json_t *t = json_object_get(delta, "content");
        return json_is_string(t) ? content_text(out, t) : HS_OK;
    }
    if (json_is_string(text)) {
        *found = true;
        return hs_buf_append(out, json_string_value(text), json_string_length(text));
    }
    return HS_OK;
}

char *hs_eval_answer(const char *body)
{
    if (!body)
        return hs_strdup("");
    hs_buf out = {0};
    bool found = false;
    int rc = HS_OK;
    json_t *j = json_loads(body, 0, NULL);
    if (j) {
        rc = choice_text(&out, j, &found);
        json_decref(j);
    } else {
        /* a streamed answer as sent: "data: {chunk}" lines and "data: [DONE]" */
        const char *p = body;
        while (!rc && *p) {
            const char *eol = strchr(p, '\n');
            size_t n = eol ? (size_t)(eol - p) : strlen(p);
            if (n > 6 && !strncmp(p, "data: ", 6)) {
                json_t *chunk = json_loadb(p + 6, n - 6, 0, NULL);
                if (chunk)
                    rc = choice_text(&out, chunk, &found);
                json_decref(chunk);
            }
            p += n + (eol ? 1 : 0);
        }
    }
    if (rc) {
        hs_buf_free(&out);
        return NULL;
    }
    if (!found) {
        hs_buf_free(&out);
        return hs_strdup(body);
    }
    return out.data ? hs_buf_steal(&out) : hs_strdup("");
}

/* ---- sampling ---- */

void hs_eval_sample(size_t n, size_t k, uint64_t seed, size_t *idx)
{
    size_t *all = hs_malloc((n ? n : 1) * sizeof *all);
    hs_rng rng;
    hs_rng_seed(&rng, seed);
    if (!all) {
        /* out of memory: the first k, still a valid (if unshuffled) choice */
        for (size_t i = 0; i < k; i++)
            idx[i] = i;
        return;
    }
    for (size_t i = 0; i < n; i++)
        all[i] = i;
    for (size_t i = 0; i < k; i++) {
        size_t j = i + (size_t)(hs_rng_u64(&rng) % (n - i));
        size_t t = all[i];
        all[i] = all[j];
        all[j] = t;
        idx[i] = all[i];
    }
    hs_free(all);
}

/* ---- writing ---- */

int hs_eval_sheet_header(hs_buf *out, bool blind)
{
    const char *full[] = {"request_id", "variant", "question", "answer", "accuracy", "safety", "comment"};
    const char *blinded[] = {"request_id", "question", "answer", "accuracy", "safety", "comment"};
    return blind ? hs_csv_row(out, blinded, 6) : hs_csv_row(out, full, 7);
}

/* A copy with a leading ' when a spreadsheet would read the cell as a formula. */
static char *defuse(char *s)
{
    if (!s || !s[0] || !strchr("=+-@\t\r", s[0]))
        return s;
    size_t n = strlen(s);
    char *d = hs_malloc(n + 2);
    if (d) {
        d[0] = '\'';
        memcpy(d + 1, s, n + 1);
    }
    hs_free(s);
    return d;
}

int hs_eval_sheet_row(hs_buf *out, const struct hs_eval_candidate *c, bool blind)
{
    char *q = defuse(hs_eval_question(c->request_body));
    char *a = defuse(hs_eval_answer(c->response_body));
    int rc = HS_ENOMEM;
    if (q && a) {
        const char *full[] = {c->request_id, c->variant, q, a, "", "", ""};
        const char *blinded[] = {c->request_id, q, a, "", "", ""};
        rc = blind ? hs_csv_row(out, blinded, 6) : hs_csv_row(out, full, 7);
    }
    hs_free(q);
    hs_free(a);
    return rc;
}

/* ---- reading ---- */

void hs_eval_sheet_free(struct hs_eval_sheet *s)
{
    if (!s)
        return;
    hs_free(s->scores);
    hs_free(s->lines);
    hs_csv_free(&s->csv);
    memset(s, 0, sizeof *s);
}

enum { C_ID, C_VARIANT, C_ACC, C_SAFETY, C_COMMENT, C_N };
static const char *const k_cols[C_N] = {"request_id", "variant", "accuracy", "safety", "comment"};

/* A 1..5 score cell: *v, or 0 for an empty cell. */
static int score(const char *cell, int *v)
{
    if (!cell[0]) {
        *v = 0;
        return HS_OK;
    }
    return hs_parse_int(cell, 1, 5, v);
}

int hs_eval_sheet_read(const char *text, size_t len, const char *name, const char *rater,
                       struct hs_eval_sheet *out, hs_err *err)
{
    memset(out, 0, sizeof *out);
    name = name ? name : "sheet";
    int rc = hs_csv_parse(text, len, name, &out->csv, err);
    if (rc)
        return rc;
    const struct hs_csv *c = &out->csv;
    if (c->n == 0) {
        hs_eval_sheet_free(out);
        return hs_err_set(err, HS_EFORMAT,
                          "%s: empty (want a header line: request_id,...,accuracy,safety,...)", name);
    }
    int col[C_N];
    for (int k = 0; k < C_N; k++) {
        col[k] = -1;
        for (int i = 0; i < c->rows[0].n; i++)
            if (!strcmp(c->rows[0].fields[i], k_cols[k]))
                col[k] = i;
    }
    for (int k = 0; k < C_N; k++) {
        if (col[k] < 0 && (k == C_ID || k == C_ACC || k == C_SAFETY)) {
            rc = hs_err_set(err, HS_EFORMAT, "%s:%d: no column %s in the header", name, c->rows[0].line,
                            k_cols[k]);
            hs_eval_sheet_free(out);
            return rc;
        }
    }
    out->scores = hs_calloc(c->n, sizeof *out->scores);
    out->lines = hs_calloc(c->n, sizeof *out->lines);
    if (!out->scores || !out->lines) {
        hs_eval_sheet_free(out);
        return hs_err_set(err, HS_ENOMEM, "%s: out of memory", name);
    }
    for (size_t r = 1; r < c->n; r++) {
        const struct hs_csv_record *row = &c->rows[r];
        const char *cell[C_N];
        for (int k = 0; k < C_N; k++) {
            if (col[k] >= 0 && col[k] >= row->n) {
                rc = hs_err_set(err, HS_EFORMAT, "%s:%d: the row has %d cells; column %s is number %d", name,
                                row->line, row->n, k_cols[k], col[k] + 1);
                hs_eval_sheet_free(out);
                return rc;
            }
            cell[k] = col[k] >= 0 ? row->fields[col[k]] : NULL;
        }
        int acc, safe;
        const char *bad = NULL;
        if (score(cell[C_ACC], &acc))
            bad = k_cols[C_ACC];
        else if (score(cell[C_SAFETY], &safe))
            bad = k_cols[C_SAFETY];
        if (bad) {
            rc = hs_err_set(err, HS_EFORMAT, "%s:%d: column %s: expected a whole number 1..5, got '%.40s'",
                            name, row->line, bad, cell[bad == k_cols[C_ACC] ? C_ACC : C_SAFETY]);
            hs_eval_sheet_free(out);
            return rc;
        }
        if (!acc && !safe) {
            out->unrated++;
            continue;
        }
        if (!acc || !safe) {
            rc = hs_err_set(err, HS_EFORMAT,
                            "%s:%d: column %s: empty while %s is given (score both or neither)", name,
                            row->line, acc ? "safety" : "accuracy", acc ? "accuracy" : "safety");
            hs_eval_sheet_free(out);
            return rc;
        }
        if (!cell[C_ID][0]) {
            rc = hs_err_set(err, HS_EFORMAT, "%s:%d: column request_id: empty", name, row->line);
            hs_eval_sheet_free(out);
            return rc;
        }
        for (size_t i = 0; i < out->n; i++) {
            if (!strcmp(out->scores[i].request_id, cell[C_ID])) {
                rc = hs_err_set(err, HS_EFORMAT,
                                "%s:%d: column request_id: '%.80s' was already scored on line %d", name,
                                row->line, cell[C_ID], out->lines[i]);
                hs_eval_sheet_free(out);
                return rc;
            }
        }
        const char *variant = cell[C_VARIANT] && cell[C_VARIANT][0] ? cell[C_VARIANT] : NULL;
        if (variant && strcmp(variant, "A") && strcmp(variant, "B")) {
            rc = hs_err_set(err, HS_EFORMAT, "%s:%d: column variant: expected A or B, got '%.20s'", name,
                            row->line, variant);
            hs_eval_sheet_free(out);
            return rc;
        }
        out->scores[out->n] = (struct hs_eval_score){
            .request_id = cell[C_ID],
            .variant = variant,
            .rater = rater,
            .accuracy = acc,
            .safety = safe,
            .comment = cell[C_COMMENT] && cell[C_COMMENT][0] ? cell[C_COMMENT] : NULL,
        };
        out->lines[out->n++] = row->line;
    }
    return HS_OK;
}
