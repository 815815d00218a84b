/* Drift runs over a backend (see drift_job.h): prompt files, embedding in
 * batches, asking a reference set, and the drift rows and recorded accuracy
 * in the store. */
#include "ops/drift_job.h"

#include "base/mem.h"
#include "base/pool.h"
#include "base/rng.h"
#include "base/sys.h"
#include "ops/store_ops.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- prompt sets ---- */

int hs_drift_texts_push(struct hs_drift_texts *t, const char *s, size_t len)
{
    if (t->n == t->cap) {
        int ncap = t->cap ? t->cap * 2 : 64;
        char **nv = hs_realloc_array(t->v, (size_t)ncap, sizeof *nv);
        if (!nv)
            return HS_ENOMEM;
        t->v = nv;
        t->cap = ncap;
    }
    char *c = hs_strndup(s, len);
    if (!c)
        return HS_ENOMEM;
    t->v[t->n++] = c;
    return HS_OK;
}

void hs_drift_texts_free(struct hs_drift_texts *t)
{
    if (!t)
        return;
    for (int i = 0; i < t->n; i++)
        hs_free(t->v[i]);
    hs_free(t->v);
    memset(t, 0, sizeof *t);
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

static bool blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
            return false;
    return true;
}

int hs_drift_texts_load(struct hs_drift_texts *t, const char *path, hs_err *err)
{
    memset(t, 0, sizeof *t);
    char *data = NULL;
    size_t len = 0;
    int rc = hs_read_file(path, &data, &len, err);
    if (rc)
        return rc;
    bool jsonl = ends_with(path, ".jsonl") || ends_with(path, ".ndjson");
    int line = 0;
    for (size_t pos = 0; !rc && pos < len;) {
        const char *s = data + pos;
        const char *nl = memchr(s, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - s) : len - pos;
        pos += n + 1;
        line++;
        if (n && s[n - 1] == '\r')
            n--;
        if (blank(s, n))
            continue;
        if (!jsonl) {
            if (hs_drift_texts_push(t, s, n))
                rc = hs_err_set(err, HS_ENOMEM, "out of memory");
            continue;
        }
        json_error_t je;
        json_t *j = json_loadb(s, n, 0, &je);
        const char *text = NULL;
        static const char *const keys[] = {"prompt", "text", "question"};
        for (size_t k = 0; !text && k < sizeof keys / sizeof keys[0]; k++)
            text = json_string_value(json_object_get(j, keys[k]));
        if (!j)
            rc = hs_err_set(err, HS_EFORMAT, "%s:%d: invalid JSON: %s", path, line, je.text);
        else if (!json_is_object(j))
            rc = hs_err_set(err, HS_EFORMAT, "%s:%d: not a JSON object", path, line);
        else if (!text)
            rc = hs_err_set(err, HS_EFORMAT, "%s:%d: no \"prompt\", \"text\" or \"question\" string", path,
                            line);
        else if (hs_drift_texts_push(t, text, strlen(text)))
            rc = hs_err_set(err, HS_ENOMEM, "out of memory");
        json_decref(j);
    }
    hs_free(data);
    if (rc)
        hs_drift_texts_free(t);
    return rc;
}

/* ---- data drift ---- */

static bool stopped(const struct hs_drift_backend *b)
{
    return b->stopped && b->stopped(b->user);
}

int hs_drift_embed(const struct hs_drift_backend *b, const struct hs_drift_texts *t, const char *what,
                   float **out, int *dim, hs_err *err)
{
    float *all = NULL;
    *out = NULL;
    *dim = 0;
    const char *who = b->name ? b->name : "backend";
    for (int i = 0; i < t->n; i += HS_DRIFT_EMBED_BATCH) {
        if (stopped(b)) {
            hs_free(all);
            return hs_err_set(err, HS_ECANCELED, "%s: embedding %s: stopped", who, what);
        }
        int nb = t->n - i < HS_DRIFT_EMBED_BATCH ? t->n - i : HS_DRIFT_EMBED_BATCH;
        float *vecs = NULL;
        int d = 0;
        hs_err e = {0};
        int rc = b->embed(b->user, (const char *const *)t->v + i, nb, &vecs, &d, &e);
        if (rc) {
            hs_free(all);
            return hs_err_set(err, rc, "%s: embedding %s: %s", who, what, e.msg);
        }
        if (!all) {
            *dim = d;
            all = d > 0 ? hs_malloc((size_t)t->n * (size_t)d * sizeof *all) : NULL;
            if (!all) {
                hs_free(vecs);
                return d > 0 ? hs_err_set(err, HS_ENOMEM, "out of memory")
                             : hs_err_set(err, HS_EFORMAT, "%s: embeddings of no dimension", who);
            }
        } else if (d != *dim) {
            hs_free(vecs);
            hs_free(all);
            return hs_err_set(err, HS_EFORMAT, "%s: embeddings of %d then %d dimensions", who, *dim, d);
        }
        memcpy(all + (size_t)i * (size_t)d, vecs, (size_t)nb * (size_t)d * sizeof *all);
        hs_free(vecs);
    }
    *out = all;
    return HS_OK;
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* At most max of t's texts, a seeded choice kept in file order; the strings
 * are borrowed (view->v is owned, its entries are not). */
static int sample_view(const struct hs_drift_texts *t, int max, uint64_t seed, struct hs_drift_texts *view)
{
    memset(view, 0, sizeof *view);
    int n = t->n <= max ? t->n : max;
    view->v = hs_malloc((size_t)(n > 0 ? n : 1) * sizeof *view->v);
    int *idx = hs_malloc((size_t)(t->n > 0 ? t->n : 1) * sizeof *idx);
    if (!view->v || !idx) {
        hs_free(view->v);
        hs_free(idx);
        view->v = NULL;
        return HS_ENOMEM;
    }
    for (int i = 0; i < t->n; i++)
        idx[i] = i;
    if (n < t->n) { /* a partial Fisher-Yates shuffle picks n uniformly */
        hs_rng rng;
        hs_rng_seed(&rng, seed);
        for (int i = 0; i < n; i++) {
            int j = i + (int)(hs_rng_u64(&rng) % (uint64_t)(t->n - i));
            int tmp = idx[i];
            idx[i] = idx[j];
            idx[j] = tmp;
        }
        qsort(idx, (size_t)n, sizeof *idx, cmp_int);
    }
    for (int i = 0; i < n; i++)
        view->v[i] = t->v[idx[i]];
    view->n = view->cap = n;
    hs_free(idx);
    return HS_OK;
}

int hs_drift_run_data(const struct hs_drift_backend *b, const struct hs_drift_texts *ref, const char *ref_name,
                      const struct hs_drift_texts *cur, const char *cur_name, const struct hs_drift_params *p,
                      struct hs_drift_data_result *out, char **details, hs_err *err)
{
    struct hs_drift_params dp;
    if (p)
        dp = *p;
    else
        hs_drift_params_default(&dp);
    *details = NULL;
    int max = dp.max_samples >= 2 && dp.max_samples <= HS_DRIFT_MAX_SAMPLES ? dp.max_samples : HS_DRIFT_MAX_SAMPLES;
    struct hs_drift_texts vr = {0}, vc = {0};
    float *eref = NULL, *ecur = NULL;
    int dref = 0, dcur = 0;
    int rc = sample_view(ref, max, dp.seed, &vr);
    if (!rc)
        rc = sample_view(cur, max, dp.seed ^ 0x9e3779b97f4a7c15ULL, &vc);
    if (rc)
        rc = hs_err_set(err, HS_ENOMEM, "out of memory");
    if (!rc)
        rc = hs_drift_embed(b, &vr, ref_name, &eref, &dref, err);
    if (!rc)
        rc = hs_drift_embed(b, &vc, cur_name, &ecur, &dcur, err);
    if (!rc && dref != dcur)
        rc = hs_err_set(err, HS_EFORMAT, "%s: the reference has %d dimensions, the current set %d",
                        b->name ? b->name : "backend", dref, dcur);
    if (!rc)
        rc = hs_drift_data(eref, vr.n, ecur, vc.n, dref, &dp, out, err);
    if (!rc && !(*details = hs_drift_data_to_json(out, &dp)))
        rc = hs_err_set(err, HS_ENOMEM, "out of memory");
    hs_free(eref);
    hs_free(ecur);
    hs_free(vr.v); /* the views borrow their strings */
    hs_free(vc.v);
    return rc;
}

/* ---- concept drift ---- */

void hs_concept_run_free(struct hs_concept_run *run)
{
    if (!run)
        return;
    for (int i = 0; run->answers && i < run->n; i++)
        hs_free(run->answers[i]);
    hs_free(run->answers);
    hs_free(run->scores);
    hs_free(run->details);
    memset(run, 0, sizeof *run);
}

struct ask_job {
    const struct hs_drift_backend *b;
    const struct hs_concept_ref *ref;
    int max_tokens;
    char **answers;
    int *rcs;
    hs_err *errs;
};

static void ask_range(void *arg, long lo, long hi)
{
    struct ask_job *j = arg;
    for (long i = lo; i < hi; i++) {
        if (stopped(j->b)) {
            j->rcs[i] = hs_err_set(&j->errs[i], HS_ECANCELED, "stopped");
            continue;
        }
        j->rcs[i] = j->b->chat(j->b->user, j->ref->items[i].question, j->max_tokens, &j->answers[i], &j->errs[i]);
        if (!j->rcs[i] && !j->answers[i] && !(j->answers[i] = hs_strdup("")))
            j->rcs[i] = hs_err_set(&j->errs[i], HS_ENOMEM, "out of memory");
    }
}

int hs_drift_run_concept(const struct hs_drift_backend *b, const struct hs_concept_ref *ref, const char *ref_name,
                         double recorded, const struct hs_concept_params *p, int max_tokens, int parallel,
                         struct hs_concept_run *out, hs_err *err)
{
    memset(out, 0, sizeof *out);
    struct hs_concept_params cp;
    if (p)
        cp = *p;
    else
        hs_concept_params_default(&cp);
    int n = ref->n;
    out->n = n;
    out->answers = hs_calloc((size_t)(n > 0 ? n : 1), sizeof *out->answers);
    out->scores = hs_calloc((size_t)(n > 0 ? n : 1), sizeof *out->scores);
    int *rcs = hs_calloc((size_t)(n > 0 ? n : 1), sizeof *rcs);
    hs_err *errs = hs_calloc((size_t)(n > 0 ? n : 1), sizeof *errs);
    int rc = !out->answers || !out->scores || !rcs || !errs ? hs_err_set(err, HS_ENOMEM, "out of memory") : HS_OK;
    struct ask_job job = {.b = b, .ref = ref, .max_tokens = max_tokens, .answers = out->answers, .rcs = rcs,
                          .errs = errs};
    if (!rc && parallel > 1 && n > 1) {
        hs_pool *pool = NULL;
        if (hs_pool_create(parallel < n ? parallel : n, &pool))
            rc = hs_err_set(err, HS_ENOMEM, "could not start the threads");
        else
            hs_pool_for(pool, n, 1, ask_range, &job);
        hs_pool_free(pool);
    } else if (!rc) {
        ask_range(&job, 0, n);
    }
    for (int i = 0; !rc && i < n; i++)
        if (rcs[i])
            rc = hs_err_set(err, rcs[i], "%s: %s:%d: %s", b->name ? b->name : "backend", ref_name,
                            ref->items[i].line, errs[i].msg);
    if (!rc)
        rc = hs_concept_evaluate(ref, (const char *const *)out->answers, recorded, &cp, &out->r, out->scores, err);
    if (!rc && !(out->details = hs_concept_result_to_json(&out->r, &cp)))
        rc = hs_err_set(err, HS_ENOMEM, "out of memory");
    hs_free(rcs);
    hs_free(errs);
    if (rc)
        hs_concept_run_free(out);
    return rc;
}

/* ---- the store ---- */

int hs_drift_recorded_get(hs_store *s, double *accuracy, hs_err *err)
{
    char *details = NULL;
    int rc = hs_store_baseline_get(s, HS_DRIFT_BASELINE_NAME, NULL, &details, err);
    if (rc)
        return rc;
    json_t *j = json_loads(details, 0, NULL);
    json_t *a = json_object_get(j, "accuracy");
    if (json_is_number(a) && json_number_value(a) >= 0 && json_number_value(a) <= 100)
        *accuracy = json_number_value(a);
    else
        rc = hs_err_set(err, HS_EFORMAT, "the '" HS_DRIFT_BASELINE_NAME "' baseline has no accuracy from 0 to 100");
    json_decref(j);
    hs_free(details);
    return rc;
}

int hs_drift_recorded_put(hs_store *s, const struct hs_concept_result *r, const char *model,
                          const char *reference, hs_err *err)
{
    json_t *bj = json_pack("{s:f, s:i, s:i, s:s?, s:s?}", "accuracy", r->accuracy, "n", r->n, "correct",
                           r->n_correct, "model", model, "reference", reference);
    char *b = bj ? json_dumps(bj, JSON_COMPACT | JSON_REAL_PRECISION(10)) : NULL;
    json_decref(bj);
    int rc = b ? hs_store_baseline_put(s, HS_DRIFT_BASELINE_NAME, 0, b, err)
               : hs_err_set(err, HS_ENOMEM, "out of memory");
    free(b); /* jansson's allocator */
    return rc;
}

int hs_drift_store_run(hs_store *s, const char *kind, const char *status, double score, double p_value,
                       const char *details, int64_t ts_ms, int64_t *id, hs_err *err)
{
    struct hs_drift_run r = {
        .ts_ms = ts_ms, .kind = kind, .status = status, .score = score, .p_value = p_value, .details = details};
    return hs_store_drift_add(s, &r, id, err);
}

static void newest(void *user, const struct hs_drift_run *r)
{
    int64_t *ts = user;
    if (r->ts_ms > *ts)
        *ts = r->ts_ms;
}

int hs_drift_last_run_ms(hs_store *s, const char *kind, int64_t *ts_ms, hs_err *err)
{
    *ts_ms = 0;
    return hs_store_drift_list(s, kind, 1, newest, ts_ms, err);
}

/* ---- the schedule ---- */

int64_t hs_drift_due_ms(int64_t every_ms, int64_t last_ms, int64_t start_ms, int64_t now_ms)
{
    if (every_ms <= 0)
        return -1;
    int64_t base = last_ms > 0 ? last_ms : start_ms;
    if (base > now_ms)
        base = now_ms;
    return base > INT64_MAX - every_ms ? INT64_MAX : base + every_ms;
}
