/* Concept drift: normalising and scoring answers against expected ones,
 * the reference set (JSONL), and the verdict against the deploy accuracy.
 * The rules are in drift_concept.h. */
#include "ops/drift_concept.h"

#include "base/buf.h"
#include "base/mem.h"
#include "base/sys.h"
#include "ops/drift.h"

#include <gsl/gsl_cdf.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <utf8proc.h>

#define MAX_CODEPOINTS 4096 /* longer texts are compared on their start (the DP is n x m) */

void hs_concept_params_default(struct hs_concept_params *p)
{
    p->similarity_threshold = 0.8;
    p->drop_points = 15;
}

/* ---- normalisation ---- */

/* NFKC, case folded, marks stripped, default-ignorable characters dropped:
 * the text both the similarity and the number search start from. */
static int fold(const char *text, char **out, hs_err *err)
{
    utf8proc_uint8_t *mapped = NULL;
    utf8proc_ssize_t n =
        utf8proc_map((const utf8proc_uint8_t *)(text ? text : ""), 0, &mapped,
                     UTF8PROC_NULLTERM | UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT |
                         UTF8PROC_CASEFOLD | UTF8PROC_STRIPMARK | UTF8PROC_IGNORE);
    if (n < 0)
        return hs_err_set(err, n == UTF8PROC_ERROR_NOMEM ? HS_ENOMEM : HS_EFORMAT, "concept drift: %s",
                          utf8proc_errmsg(n));
    /* utf8proc allocates with malloc; hand the caller an hs_ string */
    *out = hs_strdup((const char *)mapped);
    free(mapped);
    return *out ? HS_OK : hs_err_set(err, HS_ENOMEM, "concept drift: out of memory");
}

/* Letters, marks and numbers are kept; everything else separates words. */
static bool word_char(utf8proc_int32_t cp)
{
    switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
        return true;
    default:
        return false;
    }
}

/* Words of folded text, one space between them, no space at the ends. */
static int words_of(const char *folded, char **out, hs_err *err)
{
    hs_buf b = {0};
    const utf8proc_uint8_t *s = (const utf8proc_uint8_t *)folded;
    utf8proc_ssize_t len = (utf8proc_ssize_t)strlen(folded);
    bool gap = false;
    int rc = HS_OK;
    for (utf8proc_ssize_t i = 0; i < len && rc == HS_OK;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(s + i, len - i, &cp);
        if (k <= 0) /* fold() produced it, so it is valid; stop rather than loop */
            break;
        if (word_char(cp)) {
            if (gap && b.len)
                rc = hs_buf_putc(&b, ' ');
            if (rc == HS_OK)
                rc = hs_buf_append(&b, s + i, (size_t)k);
            gap = false;
        } else {
            gap = true;
        }
        i += k;
    }
    if (rc == HS_OK && !b.data)
        rc = hs_buf_puts(&b, "");
    if (rc != HS_OK) {
        hs_buf_free(&b);
        return hs_err_set(err, HS_ENOMEM, "concept drift: out of memory");
    }
    *out = hs_buf_steal(&b);
    return HS_OK;
}

int hs_concept_normalize(const char *text, char **out, hs_err *err)
{
    char *f = NULL;
    int rc = fold(text, &f, err);
    if (rc != HS_OK)
        return rc;
    rc = words_of(f, out, err);
    hs_free(f);
    return rc;
}

/* ---- similarity ---- */

/* Up to cap code points of a valid UTF-8 string; returns the count. */
static int decode(const char *s, int32_t *cps, int cap)
{
    const utf8proc_uint8_t *u = (const utf8proc_uint8_t *)s;
    utf8proc_ssize_t len = (utf8proc_ssize_t)strlen(s);
    int n = 0;
    for (utf8proc_ssize_t i = 0; i < len && n < cap;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(u + i, len - i, &cp);
        if (k <= 0) { /* not valid UTF-8: compare the byte as it is */
            cp = u[i];
            k = 1;
        }
        cps[n++] = cp;
        i += k;
    }
    return n;
}

double hs_concept_similarity_normalized(const char *a, const char *b)
{
    int32_t *x = hs_malloc(MAX_CODEPOINTS * sizeof *x), *y = hs_malloc(MAX_CODEPOINTS * sizeof *y);
    int *row = hs_malloc((MAX_CODEPOINTS + 1) * sizeof *row);
    double sim = 0;
    if (!x || !y || !row)
        goto done;
    int n = decode(a ? a : "", x, MAX_CODEPOINTS), m = decode(b ? b : "", y, MAX_CODEPOINTS);
    if (n == 0 && m == 0) {
        sim = 1;
        goto done;
    }
    /* Levenshtein with one row: row[j] = distance(x[0..i), y[0..j)) */
    for (int j = 0; j <= m; j++)
        row[j] = j;
    for (int i = 1; i <= n; i++) {
        int diag = row[0];
        row[0] = i;
        for (int j = 1; j <= m; j++) {
            int up = row[j];
            int best = diag + (x[i - 1] != y[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    sim = 1.0 - (double)row[m] / (n > m ? n : m);
done:
    hs_free(x);
    hs_free(y);
    hs_free(row);
    return sim;
}

/* ---- facts ---- */

/* One number as written: canon has ',' read as '.', digits only the digits;
 * grouped when it is written in groups of three ("1,000", "12.500.000"). */
struct number {
    char canon[48], digits[48];
    bool grouped;
};

/* The numbers of folded text, at most cap (longer ones are cut at 47 chars). */
static int numbers_of(const char *s, struct number *out, int cap)
{
    int n = 0;
    size_t i = 0, len = strlen(s);
    while (i < len && n < cap) {
        if (!(s[i] >= '0' && s[i] <= '9')) {
            i++;
            continue;
        }
        struct number *num = &out[n++];
        memset(num, 0, sizeof *num);
        size_t c = 0, d = 0;
        int groups = 0, first_len = 0, cur_len = 0;
        bool all_three = true;
        for (;;) {
            while (i < len && s[i] >= '0' && s[i] <= '9') {
                if (c < sizeof num->canon - 1)
                    num->canon[c++] = s[i];
                if (d < sizeof num->digits - 1)
                    num->digits[d++] = s[i];
                cur_len++;
                i++;
            }
            if (groups == 0)
                first_len = cur_len;
            else if (cur_len != 3)
                all_three = false;
            groups++;
            cur_len = 0;
            /* a separator counts only between digits */
            if (i + 1 < len && (s[i] == '.' || s[i] == ',') && s[i + 1] >= '0' && s[i + 1] <= '9') {
                if (c < sizeof num->canon - 1)
                    num->canon[c++] = '.';
                i++;
                continue;
            }
            break;
        }
        num->grouped = groups > 1 && all_three && first_len <= 3;
    }
    return n;
}

static bool same_number(const struct number *a, const struct number *b)
{
    if (!strcmp(a->canon, b->canon))
        return true;
    return (a->grouped || b->grouped) && !strcmp(a->digits, b->digits);
}

/* Whether the words of fact appear in words as consecutive whole words. */
static bool has_words(const char *words, const char *fact)
{
    size_t fl = strlen(fact), wl = strlen(words);
    if (fl == 0)
        return true;
    for (const char *p = words; (p = strstr(p, fact)) != NULL; p++) {
        bool start = p == words || p[-1] == ' ';
        size_t end = (size_t)(p - words) + fl;
        if (start && (end == wl || words[end] == ' '))
            return true;
    }
    return false;
}

#define MAX_NUMBERS 256

/* Scores one item from the folded answer, its words, its numbers. */
struct answer_view {
    char *folded, *words;
    struct number *nums;
    int n_nums;
};

static void view_free(struct answer_view *v)
{
    hs_free(v->folded);
    hs_free(v->words);
    hs_free(v->nums);
}

static int view_make(struct answer_view *v, const char *text, hs_err *err)
{
    memset(v, 0, sizeof *v);
    int rc = fold(text, &v->folded, err);
    if (rc == HS_OK)
        rc = words_of(v->folded, &v->words, err);
    if (rc == HS_OK) {
        v->nums = hs_malloc(MAX_NUMBERS * sizeof *v->nums);
        if (!v->nums)
            rc = hs_err_set(err, HS_ENOMEM, "concept drift: out of memory");
        else
            v->n_nums = numbers_of(v->folded, v->nums, MAX_NUMBERS);
    }
    if (rc != HS_OK)
        view_free(v);
    return rc;
}

static bool has_number(const struct answer_view *a, const struct number *n)
{
    for (int i = 0; i < a->n_nums; i++)
        if (same_number(&a->nums[i], n))
            return true;
    return false;
}

/* A listed fact: a number when it is one number and nothing else, words
 * otherwise. Returns -1 when it has no words at all (not counted). */
static int listed_fact_found(const struct answer_view *a, const char *fact, hs_err *err, int *rc)
{
    struct answer_view f;
    *rc = view_make(&f, fact, err);
    if (*rc != HS_OK)
        return 0;
    int found;
    if (!f.words[0])
        found = -1;
    else if (f.n_nums == 1 && strspn(f.words, "0123456789 ") == strlen(f.words))
        found = has_number(a, &f.nums[0]);
    else
        found = has_words(a->words, f.words);
    view_free(&f);
    return found;
}

int hs_concept_score(const char *answer, const char *expected, const char *const *facts, int n_facts,
                     const struct hs_concept_params *params, struct hs_concept_score *out, hs_err *err)
{
    struct hs_concept_params p;
    if (params)
        p = *params;
    else
        hs_concept_params_default(&p);
    struct answer_view a, e;
    int rc = view_make(&a, answer ? answer : "", err);
    if (rc != HS_OK)
        return rc;
    rc = view_make(&e, expected ? expected : "", err);
    if (rc != HS_OK) {
        view_free(&a);
        return rc;
    }
    struct hs_concept_score s = {0};
    s.similarity = hs_concept_similarity_normalized(a.words, e.words);
    if (facts) {
        for (int i = 0; i < n_facts && rc == HS_OK; i++) {
            int found = listed_fact_found(&a, facts[i] ? facts[i] : "", err, &rc);
            if (rc == HS_OK && found >= 0) {
                s.facts_total++;
                s.facts_found += found;
            }
        }
    } else {
        for (int i = 0; i < e.n_nums; i++) {
            s.facts_total++;
            s.facts_found += has_number(&a, &e.nums[i]);
        }
    }
    s.correct =
        s.facts_found == s.facts_total && (s.facts_total > 0 || s.similarity >= p.similarity_threshold);
    view_free(&a);
    view_free(&e);
    if (rc == HS_OK)
        *out = s;
    return rc;
}

/* ---- the reference set ---- */

static void item_free(struct hs_concept_item *it)
{
    hs_free(it->id);
    hs_free(it->question);
    hs_free(it->expected);
    for (int i = 0; i < it->n_facts; i++)
        hs_free(it->facts[i]);
    hs_free(it->facts);
}

void hs_concept_ref_free(struct hs_concept_ref *r)
{
    if (!r)
        return;
    for (int i = 0; i < r->n; i++)
        item_free(&r->items[i]);
    hs_free(r->items);
    r->items = NULL;
    r->n = 0;
}

/* A required non-empty string member. */
static int member_str(json_t *o, const char *key, bool required, char **out, const char *name, int line,
                      hs_err *err)
{
    json_t *v = json_object_get(o, key);
    if (!v) {
        if (required)
            return hs_err_set(err, HS_EFORMAT, "%s:%d: \"%s\" is missing", name, line, key);
        return HS_OK;
    }
    if (json_is_integer(v) && !strcmp(key, "id")) {
        char tmp[32];
        snprintf(tmp, sizeof tmp, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        *out = hs_strdup(tmp);
    } else if (!json_is_string(v)) {
        return hs_err_set(err, HS_EFORMAT, "%s:%d: \"%s\" must be a string", name, line, key);
    } else {
        if (required && json_string_length(v) == 0)
            return hs_err_set(err, HS_EFORMAT, "%s:%d: \"%s\" is empty", name, line, key);
        *out = hs_strdup(json_string_value(v));
    }
    return *out ? HS_OK : hs_err_set(err, HS_ENOMEM, "%s:%d: out of memory", name, line);
}

static int parse_line(struct hs_concept_item *it, const char *text, size_t len, const char *name, int line,
                      hs_err *err)
{
    json_error_t je;
    json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!o)
        return hs_err_set(err, HS_EFORMAT, "%s:%d: not JSON (column %d: %s)", name, line, je.column, je.text);
    int rc = HS_OK;
    memset(it, 0, sizeof *it);
    it->line = line;
    if (!json_is_object(o)) {
        rc = hs_err_set(err, HS_EFORMAT, "%s:%d: expected an object {\"question\": ..., \"expected\": ...}",
                        name, line);
        goto done;
    }
    if ((rc = member_str(o, "question", true, &it->question, name, line, err)) ||
        (rc = member_str(o, "expected", true, &it->expected, name, line, err)) ||
        (rc = member_str(o, "id", false, &it->id, name, line, err)))
        goto done;
    json_t *facts = json_object_get(o, "facts");
    if (facts) {
        if (!json_is_array(facts)) {
            rc = hs_err_set(err, HS_EFORMAT, "%s:%d: \"facts\" must be a list of strings", name, line);
            goto done;
        }
        size_t n = json_array_size(facts);
        if (n > 1000) {
            rc =
                hs_err_set(err, HS_EFORMAT, "%s:%d: \"facts\" has %zu entries (at most 1000)", name, line, n);
            goto done;
        }
        it->facts = hs_calloc(n ? n : 1, sizeof *it->facts);
        if (!it->facts) {
            rc = hs_err_set(err, HS_ENOMEM, "%s:%d: out of memory", name, line);
            goto done;
        }
        for (size_t i = 0; i < n; i++) {
            json_t *f = json_array_get(facts, i);
            if (!json_is_string(f)) {
                rc = hs_err_set(err, HS_EFORMAT, "%s:%d: facts[%zu] must be a string", name, line, i);
                goto done;
            }
            it->facts[i] = hs_strdup(json_string_value(f));
            if (!it->facts[i]) {
                rc = hs_err_set(err, HS_ENOMEM, "%s:%d: out of memory", name, line);
                goto done;
            }
            it->n_facts++;
        }
    }
done:
    json_decref(o);
    if (rc != HS_OK)
        item_free(it);
    return rc;
}

int hs_concept_ref_parse(struct hs_concept_ref *out, const char *text, size_t len, const char *name,
                         hs_err *err)
{
    memset(out, 0, sizeof *out);
    name = name ? name : "reference";
    struct hs_concept_ref r = {0};
    int cap = 0, line = 0, rc = HS_OK;
    size_t i = 0;
    while (i < len && rc == HS_OK) {
        size_t e = i;
        while (e < len && text[e] != '\n')
            e++;
        line++;
        size_t a = i, z = e;
        while (a < z && (text[a] == ' ' || text[a] == '\t' || text[a] == '\r'))
            a++;
        while (z > a && (text[z - 1] == ' ' || text[z - 1] == '\t' || text[z - 1] == '\r'))
            z--;
        i = e + 1;
        if (a == z)
            continue;
        if (r.n == cap) {
            int ncap = cap ? cap * 2 : 64;
            struct hs_concept_item *ni = hs_realloc_array(r.items, (size_t)ncap, sizeof *ni);
            if (!ni) {
                rc = hs_err_set(err, HS_ENOMEM, "%s:%d: out of memory", name, line);
                break;
            }
            r.items = ni;
            cap = ncap;
        }
        rc = parse_line(&r.items[r.n], text + a, z - a, name, line, err);
        if (rc == HS_OK)
            r.n++;
    }
    if (rc == HS_OK && r.n == 0)
        rc = hs_err_set(err, HS_EFORMAT, "%s: no items (one {\"question\", \"expected\"} object per line)",
                        name);
    if (rc != HS_OK) {
        hs_concept_ref_free(&r);
        return rc;
    }
    *out = r;
    return HS_OK;
}

int hs_concept_ref_load(struct hs_concept_ref *out, const char *path, hs_err *err)
{
    memset(out, 0, sizeof *out);
    char *data = NULL;
    size_t len = 0;
    int rc = hs_read_file(path, &data, &len, err);
    if (rc != HS_OK)
        return rc;
    rc = hs_concept_ref_parse(out, data, len, path, err);
    hs_free(data);
    return rc;
}

/* ---- the verdict ---- */

int hs_concept_evaluate(const struct hs_concept_ref *ref, const char *const *answers, double recorded,
                        const struct hs_concept_params *params, struct hs_concept_result *out,
                        struct hs_concept_score *items, hs_err *err)
{
    struct hs_concept_params p;
    if (params)
        p = *params;
    else
        hs_concept_params_default(&p);
    if (!ref || ref->n < 1)
        return hs_err_set(err, HS_EINVAL, "concept drift: the reference set is empty");
    struct hs_concept_result r;
    memset(&r, 0, sizeof r);
    double sim_sum = 0;
    for (int i = 0; i < ref->n; i++) {
        const struct hs_concept_item *it = &ref->items[i];
        struct hs_concept_score s;
        int rc = hs_concept_score(answers ? answers[i] : NULL, it->expected, (const char *const *)it->facts,
                                  it->n_facts, &p, &s, err);
        if (rc != HS_OK) {
            hs_err_prefix(err, "item at line %d: ", it->line);
            return rc;
        }
        if (items)
            items[i] = s;
        r.n++;
        r.n_correct += s.correct;
        sim_sum += s.similarity;
    }
    r.accuracy = 100.0 * r.n_correct / r.n;
    r.mean_similarity = sim_sum / r.n;
    r.recorded = r.drop = r.p_value = NAN;
    if (isfinite(recorded) && recorded >= 0) {
        r.recorded = recorded;
        r.drop = recorded - r.accuracy;
        double p0 = recorded / 100;
        if (p0 > 1)
            p0 = 1;
        r.p_value = gsl_cdf_binomial_P((unsigned)r.n_correct, p0, (unsigned)r.n);
        r.drifted = r.drop > p.drop_points;
    }
    *out = r;
    return HS_OK;
}

static json_t *num(double x)
{
    return isfinite(x) ? json_real(x) : json_null();
}

char *hs_concept_result_to_json(const struct hs_concept_result *r, const struct hs_concept_params *p)
{
    json_t *o = json_pack("{s:i,s:i,s:o,s:o,s:o,s:o,s:o,s:o,s:s}", "n", r->n, "correct", r->n_correct,
                          "accuracy", num(r->accuracy), "mean_similarity", num(r->mean_similarity),
                          "recorded", num(r->recorded), "drop_points", num(r->drop), "p_value",
                          num(r->p_value), "threshold_points", num(p ? p->drop_points : NAN), "status",
                          hs_drift_status_name(r->drifted ? HS_DRIFT_DRIFTED : HS_DRIFT_STABLE));
    if (!o)
        return NULL;
    char *txt = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(o);
    char *copy = txt ? hs_strdup(txt) : NULL;
    free(txt);
    return copy;
}
