/* Shadow copies (issue 7): in shadow mode A answers every request; once A's
 * answer is complete, a copy of the request goes on a bounded queue, and
 * workers of their own send it to B through the server's serving path (an
 * internal request that writes no record and feeds no monitor). A's answer
 * and B's are stored side by side with their latencies and a similarity
 * (ops/drift_concept.h: 1 - edit distance over the normalised texts).
 *
 * Nothing here runs on A's path but the enqueue, which copies two strings
 * and never waits: when an experiment's copies already fill its
 * shadow_queue, the copy is dropped and counted. */
#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "ops/drift_concept.h"
#include "ops/store_experiments.h"
#include "server/experiments_impl.h"

#include <stdatomic.h>
#include <string.h>

#define SHADOW_WORKERS 2

struct shadow_job {
    struct shadow_job *next;
    struct srv_exp *e;
    char request_id[176];
    char endpoint[64];
    char key_name[64];
    bool keyed;
    char *body;     /* the request as the client sent it */
    char *answer_a; /* A's answer text */
    double latency_a_ms;
};

struct srv_shadow {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct shadow_job *head, *tail;
    int len;
    int *pending; /* per experiment index: copies queued or running */
    int n_pending;
    pthread_t th[SHADOW_WORKERS];
    int n_th;
    bool stop;
    atomic_bool cancel; /* a copy in flight gives up (shutdown) */
};

static void job_free(struct shadow_job *j)
{
    if (!j)
        return;
    hs_free(j->body);
    hs_free(j->answer_a);
    hs_free(j);
}

static int exp_index(hs_server *s, const struct srv_exp *e)
{
    struct srv_exps *x = s->exps;
    pthread_mutex_lock(&x->mu);
    int idx = -1;
    for (int i = 0; i < x->n && idx < 0; i++)
        if (x->v[i] == e)
            idx = i;
    pthread_mutex_unlock(&x->mu);
    return idx;
}

/* pending[idx], growing the table (under sh->mu). NULL when out of memory. */
static int *pending_slot(struct srv_shadow *sh, int idx)
{
    if (idx >= sh->n_pending) {
        int n = idx + 8;
        int *p = hs_realloc(sh->pending, (size_t)n * sizeof *p);
        if (!p)
            return NULL;
        memset(p + sh->n_pending, 0, (size_t)(n - sh->n_pending) * sizeof *p);
        sh->pending = p;
        sh->n_pending = n;
    }
    return &sh->pending[idx];
}

bool hs_srv_shadow_enqueue(hs_server *s, struct srv_exp *e, const struct srv_call *c)
{
    struct srv_shadow *sh = s->exps ? s->exps->shadow : NULL;
    int idx = exp_index(s, e);
    if (!sh || idx < 0 || !c->shadow_body)
        return false;
    pthread_mutex_lock(&sh->mu);
    int *pending = pending_slot(sh, idx);
    bool room = pending && !sh->stop && *pending < e->def.shadow_queue;
    if (room)
        (*pending)++;
    pthread_mutex_unlock(&sh->mu);
    if (!room)
        return false;
    struct shadow_job *j = hs_calloc(1, sizeof *j);
    if (j) {
        j->e = e;
        snprintf(j->request_id, sizeof j->request_id, "%s", c->record_id);
        snprintf(j->endpoint, sizeof j->endpoint, "%s", c->endpoint);
        snprintf(j->key_name, sizeof j->key_name, "%s", c->key_name);
        j->keyed = c->keyed;
        j->body = hs_strdup(c->shadow_body);
        j->answer_a = hs_strndup(c->answer.data ? c->answer.data : "", c->answer.len);
        j->latency_a_ms = c->latency_ms;
    }
    pthread_mutex_lock(&sh->mu);
    if (!j || !j->body || !j->answer_a) {
        (*pending_slot(sh, idx))--;
        pthread_mutex_unlock(&sh->mu);
        job_free(j);
        return false;
    }
    if (sh->tail)
        sh->tail->next = j;
    else
        sh->head = j;
    sh->tail = j;
    sh->len++;
    pthread_cond_signal(&sh->cv);
    pthread_mutex_unlock(&sh->mu);
    return true;
}

int hs_srv_shadow_pending(hs_server *s)
{
    struct srv_shadow *sh = s->exps ? s->exps->shadow : NULL;
    if (!sh)
        return 0;
    pthread_mutex_lock(&sh->mu);
    int n = 0;
    for (int i = 0; i < sh->n_pending; i++)
        n += sh->pending[i];
    pthread_mutex_unlock(&sh->mu);
    return n;
}

static bool shadow_gone(void *user)
{
    return atomic_load((atomic_bool *)user);
}

/* The first choice's text of a chat or text completion. */
static char *answer_text(const char *body, size_t len)
{
    json_t *o = json_loadb(body, len, 0, NULL);
    const json_t *ch = json_array_get(json_object_get(o, "choices"), 0);
    const json_t *m = json_object_get(ch, "message");
    const json_t *t = m ? json_object_get(m, "content") : json_object_get(ch, "text");
    char *out = json_is_string(t) ? hs_strndup(json_string_value(t), json_string_length(t)) : NULL;
    json_decref(o);
    return out;
}

static double similarity(const char *a, const char *b)
{
    char *na = NULL, *nb = NULL;
    hs_err err = {0};
    double sim = -1;
    if (!hs_concept_normalize(a, &na, &err) && !hs_concept_normalize(b, &nb, &err))
        sim = hs_concept_similarity_normalized(na, nb);
    hs_free(na);
    hs_free(nb);
    return sim;
}

static void run_job(hs_server *s, struct srv_shadow *sh, struct shadow_job *j)
{
    struct srv_exps *x = s->exps;
    char target_b[HS_EXP_TARGET_MAX + 1];
    char name[HS_EXP_NAME_MAX + 1];
    pthread_mutex_lock(&x->mu);
    memcpy(target_b, j->e->def.target_b, sizeof target_b);
    memcpy(name, j->e->def.name, sizeof name);
    pthread_mutex_unlock(&x->mu);
    /* B answers the same request, whole (not streamed) */
    json_t *root = json_loads(j->body, 0, NULL);
    char *body = NULL;
    if (json_is_object(root) && !json_object_set_new(root, "model", json_string(target_b)) &&
        !json_object_set_new(root, "stream", json_false())) {
        json_object_del(root, "stream_options");
        body = json_dumps(root, JSON_COMPACT);
    }
    json_decref(root);
    struct srv_internal in = {
        .parent_id = j->request_id,
        .keyed = j->keyed,
        .key_name = j->key_name,
        .client = "shadow",
        .cancel = &sh->cancel,
        .quiet = true,
        .latency_ms = -1,
    };
    struct hs_http_req req = {
        .method = "POST",
        .path = j->endpoint,
        .body = body ? body : "",
        .body_len = body ? strlen(body) : 0,
        .client = "shadow",
        .loopback = true,
        .gone = {shadow_gone, &sh->cancel},
    };
    struct hs_http_resp resp;
    memset(&resp, 0, sizeof resp);
    double t0 = hs_now_s();
    if (body)
        hs_srv_handle_internal(s, &req, &resp, &in);
    else
        resp.status = 0;
    double latency_b = in.latency_ms >= 0 ? in.latency_ms : (hs_now_s() - t0) * 1000.0;
    bool ok = resp.status >= 200 && resp.status < 300;
    char *answer_b = ok ? answer_text(resp.body.data ? resp.body.data : "", resp.body.len) : NULL;
    struct hs_shadow_result r = {
        .request_id = j->request_id,
        .experiment = name,
        .latency_a_ms = j->latency_a_ms,
        .latency_b_ms = resp.status ? latency_b : -1,
        .status_b = resp.status,
        .similarity = answer_b ? similarity(j->answer_a, answer_b) : -1,
        .answer_a = j->answer_a,
        .answer_b = answer_b,
    };
    hs_err err = {0};
    if (hs_store_shadow_add(s->store, &r, &err))
        hs_log_error("shadow.record", "experiment=%s id=%s msg=\"%s\"", name, j->request_id, err.msg);
    pthread_mutex_lock(&x->mu);
    if (ok)
        j->e->shadow_done++;
    else
        j->e->shadow_failed++;
    pthread_mutex_unlock(&x->mu);
    hs_log_debug("shadow.done", "experiment=%s id=%s status_b=%d latency_a_ms=%.1f latency_b_ms=%.1f sim=%.3f",
                 name, j->request_id, resp.status, j->latency_a_ms, latency_b, r.similarity);
    hs_free(answer_b);
    hs_free(body);
    hs_http_resp_free(&resp);
}

static void *shadow_main(void *arg)
{
    hs_server *s = arg;
    struct srv_shadow *sh = s->exps->shadow;
    pthread_mutex_lock(&sh->mu);
    for (;;) {
        while (!sh->stop && !sh->head)
            pthread_cond_wait(&sh->cv, &sh->mu);
        if (sh->stop)
            break;
        struct shadow_job *j = sh->head;
        sh->head = j->next;
        if (!sh->head)
            sh->tail = NULL;
        sh->len--;
        pthread_mutex_unlock(&sh->mu);
        if (hs_srv_ready(s))
            run_job(s, sh, j);
        int idx = exp_index(s, j->e);
        pthread_mutex_lock(&sh->mu);
        int *p = idx >= 0 ? pending_slot(sh, idx) : NULL;
        if (p && *p > 0)
            (*p)--;
        job_free(j);
    }
    pthread_mutex_unlock(&sh->mu);
    return NULL;
}

int hs_srv_shadow_start(hs_server *s, hs_err *err)
{
    struct srv_shadow *sh = hs_calloc(1, sizeof *sh);
    if (!sh)
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    pthread_mutex_init(&sh->mu, NULL);
    pthread_cond_init(&sh->cv, NULL);
    atomic_init(&sh->cancel, false);
    s->exps->shadow = sh;
    for (int i = 0; i < SHADOW_WORKERS; i++) {
        if (pthread_create(&sh->th[i], NULL, shadow_main, s))
            return hs_err_set(err, HS_EIO, "cannot start the shadow workers");
        sh->n_th++;
    }
    return HS_OK;
}

void hs_srv_shadow_stop(hs_server *s)
{
    struct srv_shadow *sh = s->exps ? s->exps->shadow : NULL;
    if (!sh)
        return;
    pthread_mutex_lock(&sh->mu);
    sh->stop = true;
    atomic_store(&sh->cancel, true);
    pthread_cond_broadcast(&sh->cv);
    pthread_mutex_unlock(&sh->mu);
    for (int i = 0; i < sh->n_th; i++)
        pthread_join(sh->th[i], NULL);
    int dropped = sh->len;
    while (sh->head) {
        struct shadow_job *j = sh->head;
        sh->head = j->next;
        job_free(j);
    }
    if (dropped)
        hs_log_info("shadow.stop", "dropped=%d", dropped);
    hs_free(sh->pending);
    pthread_cond_destroy(&sh->cv);
    pthread_mutex_destroy(&sh->mu);
    hs_free(sh);
    s->exps->shadow = NULL;
}
