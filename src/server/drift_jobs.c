/* The drift jobs inside the server (issue 6): data drift of the recent
 * prompts against a reference sample, and concept drift of a reference set
 * of questions, each on its own period (config `drift.data.every`,
 * `drift.concept.every`).
 *
 * One thread for both jobs sleeps on a condition variable until the next
 * due time. A job is first due one period after its last run in the store
 * (a restart does not reset the schedule), or one period after start when
 * it never ran; it runs only once the models are loaded. A run goes through
 * the server's own serving path as internal requests (hs_srv_handle_internal:
 * /v1/embeddings for data, /v1/chat/completions for concept), so it works for
 * local and upstream models alike and leaves records like any request; it is
 * stored in drift_runs (ts_ms = when it started) and a DRIFTED verdict raises
 * a warning alert (data_drift, concept_drift). Stopping sets a flag that the
 * internal requests' "client gone" probe reads: a run in progress gives up
 * at its next request, or within the scheduler's cancel check of the one
 * running.
 *
 * The recent-prompt sample is a ring of the last max_samples prompt texts
 * (each copied, cut to SAMPLE_MAX_BYTES) under a mutex of its own: the
 * request path pays one allocation and a pointer swap. Only prompts from the
 * network are sampled: the server's own internal requests (this job's, and
 * /v1/assess's fan-out of one scenario to many agents) and embeddings
 * requests are not. */
#include "base/log.h"
#include "base/mem.h"
#include "ops/drift_job.h"
#include "ops/store_ops.h"
#include "server/server_impl.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* A prompt longer than this is cut (at a character boundary): enough to
 * place it by topic, short enough for any model's context. */
#define SAMPLE_MAX_BYTES 1024
/* A run that failed (not one that was skipped) is tried again this soon, or
 * one period later when the period is shorter. */
#define RETRY_MS (15LL * 60 * 1000)
/* How often a due job looks again while the models load. */
#define NOT_READY_MS 500

enum { K_DATA = 0, K_CONCEPT = 1, K_N = 2 };
static const char *const k_kind[K_N] = {"data", "concept"};

struct srv_drift {
    hs_server *s;
    pthread_t th;
    bool running;
    pthread_mutex_t mu; /* stop and next_ms */
    pthread_cond_t cv;
    bool stop;
    atomic_bool cancel; /* stop, for the internal requests' probe */
    int64_t every_ms[K_N];
    int64_t next_ms[K_N]; /* unix ms; -1 = not scheduled */
    const char *model[K_N];
    /* the references, read at start */
    struct hs_drift_texts data_ref;
    struct hs_concept_ref concept_ref;
    /* the recent prompts: a ring of cap texts, the oldest at head once full */
    pthread_mutex_t ring_mu;
    char **ring;
    int cap, head, n;
    uint64_t seq; /* internal request ids */
};

/* ---- the recent prompts ---- */

void hs_srv_drift_note_prompt(hs_server *s, const char *text, size_t len)
{
    struct srv_drift *d = s->drift;
    if (!d || d->cap <= 0 || !text)
        return;
    if (len > SAMPLE_MAX_BYTES) {
        len = SAMPLE_MAX_BYTES;
        while (len > 0 && ((unsigned char)text[len] & 0xC0) == 0x80)
            len--; /* not inside a UTF-8 sequence */
    }
    char *copy = hs_strndup(text, len);
    if (!copy)
        return;
    pthread_mutex_lock(&d->ring_mu);
    char *old = NULL;
    if (d->n < d->cap) {
        d->ring[(d->head + d->n) % d->cap] = copy;
        d->n++;
    } else {
        old = d->ring[d->head];
        d->ring[d->head] = copy;
        d->head = (d->head + 1) % d->cap;
    }
    pthread_mutex_unlock(&d->ring_mu);
    hs_free(old);
}

void hs_srv_drift_note_request(struct srv_call *c, const struct hs_gen_request *gr)
{
    if (!c->srv->drift || c->parent || gr->kind == HS_REQ_EMBEDDING)
        return;
    const char *text = NULL;
    if (gr->kind == HS_REQ_CHAT) {
        for (int i = gr->n_msgs - 1; i >= 0 && !text; i--) /* the user's latest words */
            if (gr->msgs[i].role && !strcmp(gr->msgs[i].role, "user"))
                text = gr->msgs[i].content;
    } else if (gr->n_prompts > 0 && gr->prompts) {
        text = gr->prompts[0];
    }
    if (text && text[0])
        hs_srv_drift_note_prompt(c->srv, text, strlen(text));
}

/* A copy of the ring, oldest first. */
static int ring_snapshot(struct srv_drift *d, struct hs_drift_texts *out)
{
    memset(out, 0, sizeof *out);
    int rc = HS_OK;
    pthread_mutex_lock(&d->ring_mu);
    for (int i = 0; rc == HS_OK && i < d->n; i++) {
        const char *t = d->ring[(d->head + i) % d->cap];
        rc = hs_drift_texts_push(out, t, strlen(t));
    }
    pthread_mutex_unlock(&d->ring_mu);
    if (rc)
        hs_drift_texts_free(out);
    return rc;
}

static int ring_count(struct srv_drift *d)
{
    pthread_mutex_lock(&d->ring_mu);
    int n = d->n;
    pthread_mutex_unlock(&d->ring_mu);
    return n;
}

/* ---- the backend: internal requests ---- */

struct internal_backend {
    struct srv_drift *d;
    const char *model;
    char name[160];     /* "model 'm'", in errors */
    char parent_id[64]; /* the records' parent_id: drift-KIND-T0 */
};

struct one_req {
    char id[96];
};

static const char *req_header(void *user, const char *name)
{
    struct one_req *r = user;
    if (!strcasecmp(name, "x-request-id"))
        return r->id;
    if (!strcasecmp(name, "content-type"))
        return "application/json";
    return NULL;
}

static bool req_gone(void *user)
{
    struct srv_drift *d = user;
    return atomic_load(&d->cancel);
}

static bool backend_stopped(void *user)
{
    struct internal_backend *b = user;
    return atomic_load(&b->d->cancel);
}

/* Runs body through path; *answer the parsed 200 answer. */
static int post(struct internal_backend *b, const char *path, json_t *body, json_t **answer, hs_err *err)
{
    *answer = NULL;
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    if (!text)
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    struct srv_drift *d = b->d;
    struct one_req one;
    pthread_mutex_lock(&d->mu);
    uint64_t seq = ++d->seq;
    pthread_mutex_unlock(&d->mu);
    snprintf(one.id, sizeof one.id, "%s-%llu", b->parent_id, (unsigned long long)seq);
    struct hs_http_req req = {
        .method = "POST",
        .path = path,
        .body = text,
        .body_len = strlen(text),
        .client = "drift",
        .loopback = true,
        .header = req_header,
        .header_user = &one,
        .gone = {req_gone, d},
    };
    struct srv_internal in = {.parent_id = b->parent_id, .keyed = false, .key_name = NULL, .client = "drift",
                              .cancel = &d->cancel};
    struct hs_http_resp resp;
    memset(&resp, 0, sizeof resp);
    hs_srv_handle_internal(d->s, &req, &resp, &in);
    free(text); /* jansson's allocator */
    json_t *j = resp.body.len ? json_loadb(resp.body.data, resp.body.len, 0, NULL) : NULL;
    int status = resp.status;
    hs_http_resp_free(&resp);
    if (atomic_load(&d->cancel)) {
        json_decref(j);
        return hs_err_set(err, HS_ECANCELED, "stopped");
    }
    if (status != 200) {
        const char *msg = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
        hs_err_set(err, HS_EIO, "HTTP %d: %s", status, msg ? msg : "no answer");
        json_decref(j);
        return HS_EIO;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        return hs_err_set(err, HS_EFORMAT, "the answer is not a JSON object");
    }
    *answer = j;
    return HS_OK;
}

static int internal_embed(void *user, const char *const *texts, int n, float **vecs, int *dim, hs_err *err)
{
    struct internal_backend *b = user;
    *vecs = NULL;
    *dim = 0;
    json_t *input = json_array();
    for (int i = 0; input && i < n; i++)
        if (json_array_append_new(input, json_string(texts[i]))) {
            json_decref(input);
            input = NULL;
        }
    json_t *body = input ? json_pack("{s:s, s:o}", "model", b->model, "input", input) : NULL;
    json_t *ans = NULL;
    int rc = post(b, "/v1/embeddings", body, &ans, err);
    json_decref(body);
    if (rc)
        return rc;
    json_t *data = json_object_get(ans, "data");
    if (!json_is_array(data) || (int)json_array_size(data) != n) {
        json_decref(ans);
        return hs_err_set(err, HS_EFORMAT, "%d embeddings for %d inputs", (int)json_array_size(data), n);
    }
    float *v = NULL;
    int d = 0;
    for (int i = 0; !rc && i < n; i++) {
        json_t *item = json_array_get(data, (size_t)i);
        json_t *ix = json_object_get(item, "index");
        int at = json_is_integer(ix) ? (int)json_integer_value(ix) : i;
        json_t *e = json_object_get(item, "embedding");
        if (!json_is_array(e) || at < 0 || at >= n) {
            rc = hs_err_set(err, HS_EFORMAT, "embedding %d is not an array of numbers (base64 is not read)", i);
            break;
        }
        if (!v) {
            d = (int)json_array_size(e);
            v = d > 0 ? hs_calloc((size_t)n * (size_t)d, sizeof *v) : NULL;
            if (!v) {
                rc = d > 0 ? hs_err_set(err, HS_ENOMEM, "out of memory")
                           : hs_err_set(err, HS_EFORMAT, "an embedding of no dimension");
                break;
            }
        }
        if ((int)json_array_size(e) != d) {
            rc = hs_err_set(err, HS_EFORMAT, "embeddings of %d then %d dimensions", d, (int)json_array_size(e));
            break;
        }
        for (int k = 0; k < d; k++) {
            json_t *x = json_array_get(e, (size_t)k);
            if (!json_is_number(x)) {
                rc = hs_err_set(err, HS_EFORMAT, "embedding %d holds a value that is not a number", i);
                break;
            }
            v[(size_t)at * (size_t)d + (size_t)k] = (float)json_number_value(x);
        }
    }
    json_decref(ans);
    if (rc) {
        hs_free(v);
        return rc;
    }
    *vecs = v;
    *dim = d;
    return HS_OK;
}

static int internal_chat(void *user, const char *question, int max_tokens, char **answer, hs_err *err)
{
    struct internal_backend *b = user;
    *answer = NULL;
    json_t *body = json_pack("{s:s, s:[{s:s, s:s}], s:i, s:f}", "model", b->model, "messages", "role", "user",
                             "content", question, "max_tokens", max_tokens, "temperature", 0.0);
    json_t *ans = NULL;
    int rc = post(b, "/v1/chat/completions", body, &ans, err);
    json_decref(body);
    if (rc)
        return rc;
    json_t *msg = json_object_get(json_array_get(json_object_get(ans, "choices"), 0), "message");
    json_t *content = json_object_get(msg, "content");
    const char *t = json_is_string(content) ? json_string_value(content) : "";
    *answer = hs_strdup(t);
    json_decref(ans);
    return *answer ? HS_OK : hs_err_set(err, HS_ENOMEM, "out of memory");
}

/* ---- the runs ---- */

/* details with more members: a new string (free()) or NULL. */
static char *details_with(const char *details, json_t *extra)
{
    json_t *j = details ? json_loads(details, 0, NULL) : NULL;
    char *out = NULL;
    if (json_is_object(j) && !json_object_update(j, extra))
        out = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(10));
    json_decref(j);
    json_decref(extra);
    return out;
}

static void store_and_alert(struct srv_drift *d, int kind, bool drifted, double score, double p_value,
                            const char *details, int64_t t0, const char *message)
{
    hs_server *s = d->s;
    int64_t id = 0;
    hs_err err = {0};
    const char *status = drifted ? "DRIFTED" : "STABLE";
    if (hs_drift_store_run(s->store, k_kind[kind], status, score, p_value, details, t0, &id, &err))
        hs_log_warn("drift.store", "kind=%s msg=\"%s\"", k_kind[kind], err.msg);
    if (drifted)
        hs_alert_raise(s->alerts, kind == K_DATA ? "data_drift" : "concept_drift", HS_ALERT_WARNING, message,
                       details);
}

static int run_data(struct srv_drift *d, struct internal_backend *b, int64_t t0, hs_err *err)
{
    const struct hs_drift_data_config *cfg = &d->s->cfg->drift.data;
    struct hs_drift_texts cur;
    if (ring_snapshot(d, &cur))
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    int need = cfg->min_samples < cfg->params.max_samples ? cfg->min_samples : cfg->params.max_samples;
    if (need < 2)
        need = 2;
    if (cur.n < need) {
        hs_log_info("drift.skip", "kind=data recent=%d need=%d msg=\"too few recent prompts for a data run\"",
                    cur.n, need);
        hs_drift_texts_free(&cur);
        return HS_OK;
    }
    struct hs_drift_data_result r;
    char *details = NULL;
    struct hs_drift_params p = cfg->params;
    p.pool = NULL; /* one thread: the permutations must not take the cores serving answers */
    int rc = hs_drift_run_data(&(struct hs_drift_backend){.user = b,
                                                          .name = b->name,
                                                          .embed = internal_embed,
                                                          .chat = internal_chat,
                                                          .stopped = backend_stopped},
                               &d->data_ref, cfg->reference, &cur, "the recent prompts", &p, &r, &details, err);
    hs_drift_texts_free(&cur);
    if (rc)
        return rc;
    char *full = details_with(details, json_pack("{s:s, s:s}", "model", b->model, "reference", cfg->reference));
    char msg[320];
    snprintf(msg, sizeof msg,
             "data drift on '%s': p = %.4g (alpha %.4g), centroid distance %.4f, %d recent prompts against %d of %s",
             b->model, r.p_value, p.alpha, r.centroid_distance, r.n_cur, r.n_ref, cfg->reference);
    hs_log_info("drift.run", "kind=data model=%s status=%s p_value=%.4g mmd2=%.6g centroid=%.4g n_ref=%d n_cur=%d",
                b->model, hs_drift_status_name(r.status), r.p_value, r.mmd2, r.centroid_distance, r.n_ref,
                r.n_cur);
    store_and_alert(d, K_DATA, r.status == HS_DRIFT_DRIFTED, r.mmd2, r.p_value, full ? full : details, t0, msg);
    free(full); /* jansson's allocator */
    hs_free(details);
    return HS_OK;
}

static int run_concept(struct srv_drift *d, struct internal_backend *b, int64_t t0, hs_err *err)
{
    hs_server *s = d->s;
    const struct hs_drift_concept_config *cfg = &s->cfg->drift.concept;
    double recorded = NAN;
    hs_err e = {0};
    int rc = hs_drift_recorded_get(s->store, &recorded, &e);
    if (rc && rc != HS_ENOTFOUND)
        hs_log_warn("drift.recorded", "msg=\"%s; the run has nothing to compare with\"", e.msg);
    struct hs_concept_run run;
    rc = hs_drift_run_concept(&(struct hs_drift_backend){.user = b,
                                                         .name = b->name,
                                                         .embed = internal_embed,
                                                         .chat = internal_chat,
                                                         .stopped = backend_stopped},
                              &d->concept_ref, cfg->reference, recorded, &cfg->params, cfg->max_tokens, 1, &run,
                              err);
    if (rc)
        return rc;
    const struct hs_concept_result *r = &run.r;
    /* Without a recorded accuracy the first run is the deploy's: it becomes
       the record that later runs are compared with. */
    bool recorded_now = false;
    if (isnan(recorded)) {
        recorded_now = hs_drift_recorded_put(s->store, r, b->model, cfg->reference, &e) == HS_OK;
        if (!recorded_now)
            hs_log_warn("drift.recorded", "msg=\"%s\"", e.msg);
    }
    char *full = details_with(run.details, json_pack("{s:s, s:s, s:b}", "model", b->model, "reference",
                                                     cfg->reference, "recorded_now", recorded_now));
    char msg[320];
    snprintf(msg, sizeof msg, "concept drift on '%s': accuracy %.1f%% against %.1f%% recorded (%.1f points down, "
             "threshold %.4g) on %s",
             b->model, r->accuracy, r->recorded, r->drop, cfg->params.drop_points, cfg->reference);
    hs_log_info("drift.run", "kind=concept model=%s status=%s accuracy=%.1f recorded=%.1f n=%d recorded_now=%d",
                b->model, r->drifted ? "DRIFTED" : "STABLE", r->accuracy, r->recorded, r->n, recorded_now);
    store_and_alert(d, K_CONCEPT, r->drifted, r->accuracy, r->p_value, full ? full : run.details, t0, msg);
    free(full);
    hs_concept_run_free(&run);
    return HS_OK;
}

/* Runs one job now (started at t0); returns when it is next due. */
static int64_t run_job(struct srv_drift *d, int kind, int64_t t0)
{
    struct internal_backend b = {.d = d, .model = d->model[kind]};
    snprintf(b.name, sizeof b.name, "model '%.128s'", b.model);
    snprintf(b.parent_id, sizeof b.parent_id, "drift-%s-%lld", k_kind[kind], (long long)t0);
    hs_err err = {0};
    int rc = kind == K_DATA ? run_data(d, &b, t0, &err) : run_concept(d, &b, t0, &err);
    int64_t every = d->every_ms[kind];
    int64_t now = hs_srv_unix_ms();
    if (rc == HS_ECANCELED || atomic_load(&d->cancel)) {
        hs_log_info("drift.stopped", "kind=%s msg=\"the run gave up: the server is stopping\"", k_kind[kind]);
        return -1;
    }
    if (rc) {
        int64_t retry = every < RETRY_MS ? every : RETRY_MS;
        hs_log_warn("drift.failed", "kind=%s model=%s retry_in_s=%lld msg=\"%s\"", k_kind[kind], b.model,
                    (long long)(retry / 1000), err.msg);
        return now + retry;
    }
    return hs_drift_due_ms(every, t0, t0, now);
}

static void *drift_main(void *arg)
{
    struct srv_drift *d = arg;
    pthread_mutex_lock(&d->mu);
    while (!d->stop) {
        int64_t now = hs_srv_unix_ms();
        int due = -1;
        int64_t wake = INT64_MAX;
        for (int k = 0; k < K_N; k++) {
            if (d->next_ms[k] < 0)
                continue;
            if (d->next_ms[k] <= now && (due < 0 || d->next_ms[k] < d->next_ms[due]))
                due = k;
            else if (d->next_ms[k] > now && d->next_ms[k] < wake)
                wake = d->next_ms[k];
        }
        if (due >= 0 && !hs_srv_ready(d->s)) { /* loading (or draining): look again soon */
            due = -1;
            wake = now + NOT_READY_MS;
        }
        if (due < 0) {
            if (wake == INT64_MAX) {
                pthread_cond_wait(&d->cv, &d->mu);
            } else {
                struct timespec ts = {.tv_sec = (time_t)(wake / 1000), .tv_nsec = (long)(wake % 1000) * 1000000L};
                pthread_cond_timedwait(&d->cv, &d->mu, &ts);
            }
            continue;
        }
        pthread_mutex_unlock(&d->mu);
        int64_t next = run_job(d, due, now);
        pthread_mutex_lock(&d->mu);
        d->next_ms[due] = next;
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

/* ---- life ---- */

static void drift_free(struct srv_drift *d)
{
    if (!d)
        return;
    for (int i = 0; d->ring && i < d->n; i++)
        hs_free(d->ring[(d->head + i) % d->cap]);
    hs_free(d->ring);
    hs_drift_texts_free(&d->data_ref);
    hs_concept_ref_free(&d->concept_ref);
    pthread_cond_destroy(&d->cv);
    pthread_mutex_destroy(&d->mu);
    pthread_mutex_destroy(&d->ring_mu);
    hs_free(d);
}

/* The model a job names, or the first model. */
static const char *job_model(const hs_server *s, const char *named)
{
    if (named)
        return named;
    return s->cfg->n_models > 0 ? s->cfg->models[0].name : "default";
}

int hs_srv_drift_start(hs_server *s, hs_err *err)
{
    s->drift = NULL;
    const struct hs_drift_config *dc = &s->cfg->drift;
    bool on[K_N] = {dc->data.every_ms > 0, dc->concept.every_ms > 0};
    if (!on[K_DATA] && !on[K_CONCEPT])
        return HS_OK;
    struct srv_drift *d = hs_calloc(1, sizeof *d);
    if (!d)
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    d->s = s;
    pthread_mutex_init(&d->mu, NULL);
    pthread_mutex_init(&d->ring_mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    atomic_init(&d->cancel, false);
    d->every_ms[K_DATA] = on[K_DATA] ? dc->data.every_ms : 0;
    d->every_ms[K_CONCEPT] = on[K_CONCEPT] ? dc->concept.every_ms : 0;
    d->model[K_DATA] = job_model(s, dc->data.model);
    d->model[K_CONCEPT] = job_model(s, dc->concept.model);
    int rc = HS_OK;
    if (on[K_DATA]) {
        if (!dc->data.reference)
            rc = hs_err_set(err, HS_EINVAL, "drift.data: a scheduled job needs its reference file");
        else if ((rc = hs_drift_texts_load(&d->data_ref, dc->data.reference, err)) != HS_OK)
            hs_err_prefix(err, "drift.data.reference: ");
        else if (d->data_ref.n < 2)
            rc = hs_err_set(err, HS_EFORMAT, "drift.data.reference: %s holds %d texts; 2 at least are needed",
                            dc->data.reference, d->data_ref.n);
        d->cap = dc->data.params.max_samples;
        if (!rc && !(d->ring = hs_calloc((size_t)d->cap, sizeof *d->ring)))
            rc = hs_err_set(err, HS_ENOMEM, "out of memory");
    }
    if (!rc && on[K_CONCEPT]) {
        if (!dc->concept.reference)
            rc = hs_err_set(err, HS_EINVAL, "drift.concept: a scheduled job needs its reference file");
        else if ((rc = hs_concept_ref_load(&d->concept_ref, dc->concept.reference, err)) != HS_OK)
            hs_err_prefix(err, "drift.concept.reference: ");
    }
    int64_t now = hs_srv_unix_ms();
    for (int k = 0; !rc && k < K_N; k++) {
        d->next_ms[k] = -1;
        if (!on[k])
            continue;
        int64_t last = 0;
        hs_err e = {0};
        if (hs_drift_last_run_ms(s->store, k_kind[k], &last, &e))
            hs_log_warn("drift.schedule", "kind=%s msg=\"cannot read the last run: %s\"", k_kind[k], e.msg);
        d->next_ms[k] = hs_drift_due_ms(d->every_ms[k], last, now, now);
        hs_log_info("drift.schedule", "kind=%s model=%s every_s=%lld last_ms=%lld next_in_s=%.1f", k_kind[k],
                    d->model[k], (long long)(d->every_ms[k] / 1000), (long long)last,
                    (double)(d->next_ms[k] - now) / 1000.0);
    }
    if (rc) {
        d->cap = 0;
        drift_free(d);
        return rc;
    }
    s->drift = d;
    if (pthread_create(&d->th, NULL, drift_main, d)) {
        s->drift = NULL;
        drift_free(d);
        return hs_err_set(err, HS_EIO, "cannot start the drift thread");
    }
    d->running = true;
    return HS_OK;
}

void hs_srv_drift_stop(hs_server *s)
{
    struct srv_drift *d = s->drift;
    if (!d)
        return;
    if (d->running) {
        pthread_mutex_lock(&d->mu);
        d->stop = true;
        atomic_store(&d->cancel, true);
        pthread_cond_broadcast(&d->cv);
        pthread_mutex_unlock(&d->mu);
        pthread_join(d->th, NULL);
        d->running = false;
    }
    /* The sample stays while the transport may still deliver a request
       (hs_server_shutdown calls this before the drain); it goes once the
       transport has stopped (the call in hs_server_free). */
    if (!s->http) {
        s->drift = NULL;
        drift_free(d);
    }
}

/* ---- GET /api/drift ---- */

struct latest {
    json_t *run;
};

static json_t *num_or_null(double x)
{
    return isfinite(x) ? json_real(x) : json_null();
}

static void take_latest(void *user, const struct hs_drift_run *r)
{
    struct latest *l = user;
    if (l->run)
        return;
    json_t *details = r->details ? json_loads(r->details, 0, NULL) : NULL;
    l->run = json_pack("{s:I, s:I, s:s, s:o, s:o, s:o}", "id", (json_int_t)r->id, "ts_ms", (json_int_t)r->ts_ms,
                       "status", r->status, "score", num_or_null(r->score), "p_value", num_or_null(r->p_value),
                       "details", details ? details : json_null());
}

static json_t *ms_or_null(int64_t ms)
{
    return ms >= 0 ? json_integer((json_int_t)ms) : json_null();
}

void hs_route_api_drift(struct srv_call *c, const struct hs_http_req *req, struct hs_http_resp *resp)
{
    (void)req;
    hs_server *s = c->srv;
    json_t *o = json_object();
    hs_err err = {0};
    for (int k = 0; o && k < K_N; k++) {
        struct latest l = {NULL};
        if (hs_store_drift_list(s->store, k_kind[k], 1, take_latest, &l, &err)) {
            json_decref(l.run);
            json_decref(o);
            hs_srv_fail(c, resp, 500, "server_error", NULL, NULL, "cannot list the drift runs: %s", err.msg);
            return;
        }
        json_object_set_new(o, k_kind[k], l.run ? l.run : json_null());
    }
    struct srv_drift *d = s->drift;
    json_t *sched = json_null();
    if (d) {
        pthread_mutex_lock(&d->mu);
        int64_t next[K_N] = {d->next_ms[K_DATA], d->next_ms[K_CONCEPT]};
        pthread_mutex_unlock(&d->mu);
        sched = json_pack("{s:I, s:I, s:o, s:o, s:s, s:s, s:i}", "data_every_ms", (json_int_t)d->every_ms[K_DATA],
                          "concept_every_ms", (json_int_t)d->every_ms[K_CONCEPT], "next_data_ms",
                          ms_or_null(next[K_DATA]), "next_concept_ms", ms_or_null(next[K_CONCEPT]), "data_model",
                          d->model[K_DATA], "concept_model", d->model[K_CONCEPT], "recent_prompts",
                          ring_count(d));
    }
    if (o)
        json_object_set_new(o, "schedule", sched ? sched : json_null());
    else
        json_decref(sched);
    hs_srv_reply_json(c, resp, 200, o);
}
