/* A job's side of the scheduler: its event queue, the consumer's calls
 * (hs_job_next, hs_job_cancel, hs_job_free) and its lifetime.
 *
 * Two references keep a job alive: the consumer's, dropped by hs_job_free,
 * and the scheduler's, dropped when the job ends (its last event queued and
 * its slot freed). Whichever goes last frees it, so neither side frees the
 * job under the other: a client that disconnects mid-answer frees its job at
 * once, and the scheduler finds it cancelled at its next step. */
#include "engine/sched_impl.h"

#include "base/clock.h"
#include "base/mem.h"

#include <errno.h>
#include <string.h>
#include <time.h>

double hs_sched_now_ms(void)
{
    return (double)hs_now_ns() / 1e6;
}

void hs_job_event_clear(struct hs_job_event *ev)
{
    if (!ev)
        return;
    hs_free(ev->text);
    ev->text = NULL;
    ev->len = 0;
}

/* The job's own copy of the adapter set (checked by the caller), a
 * reference to each adapter and to the schema. */
static int take_extras(hs_job *j, const struct hs_job_params *p, hs_err *err)
{
    const int n = p->n_adapters;
    if (n > 0) {
        j->adapters = hs_calloc((size_t)n, sizeof *j->adapters);
        j->loras = hs_calloc((size_t)n, sizeof *j->loras);
        j->adapter_scales = hs_calloc((size_t)n, sizeof *j->adapter_scales);
        j->adapter_uids = hs_calloc((size_t)n, sizeof *j->adapter_uids);
        if (!j->adapters || !j->loras || !j->adapter_scales || !j->adapter_uids)
            return hs_err_set(err, HS_ENOMEM, "out of memory for %d adapters", n);
        for (int i = 0; i < n; i++) {
            j->adapters[i] = hs_adapter_ref(p->adapters[i]);
            j->loras[i] = hs_adapter_lora(p->adapters[i]);
            /* No scales: each adapter's own default. */
            j->adapter_scales[i] =
                p->adapter_scales ? p->adapter_scales[i] : hs_adapter_default_scale(p->adapters[i]);
            j->adapter_uids[i] = hs_adapter_uid(p->adapters[i]);
            j->n_adapters = i + 1;
        }
    }
    if (p->schema)
        j->schema = hs_jschema_ref(p->schema);
    return HS_OK;
}

void hs_job_release(hs_job *j)
{
    for (int i = 0; i < j->n_adapters; i++)
        hs_adapter_unref(j->adapters[i]);
    j->n_adapters = 0;
    hs_free(j->adapters);
    hs_free(j->loras);
    hs_free(j->adapter_scales);
    hs_free(j->adapter_uids);
    j->adapters = NULL;
    j->loras = NULL;
    j->adapter_scales = NULL;
    j->adapter_uids = NULL;
    hs_jmatch_free(j->jm);
    j->jm = NULL;
    hs_jschema_unref(j->schema);
    j->schema = NULL;
}

int hs_job_create(const struct hs_job_params *p, hs_job **out, hs_err *err)
{
    *out = NULL;
    hs_job *j = hs_calloc(1, sizeof *j);
    if (!j)
        return hs_err_set(err, HS_ENOMEM, "out of memory for a job");
    j->prompt = hs_malloc((size_t)p->n_prompt * sizeof *j->prompt);
    if (!j->prompt) {
        hs_free(j);
        return hs_err_set(err, HS_ENOMEM, "out of memory for a prompt of %d tokens", p->n_prompt);
    }
    int rc = hs_stop_create(p->stop, p->n_stop, &j->stop);
    if (rc) {
        hs_free(j->prompt);
        hs_free(j);
        return rc == HS_EINVAL ? hs_err_set(err, rc, "stop: a stop string is empty")
                               : hs_err_set(err, rc, "out of memory for the stop strings");
    }
    if ((rc = take_extras(j, p, err))) {
        hs_job_release(j);
        hs_stop_free(j->stop);
        hs_free(j->prompt);
        hs_free(j);
        return rc;
    }
    memcpy(j->prompt, p->prompt, (size_t)p->n_prompt * sizeof *j->prompt);
    j->n_prompt = p->n_prompt;
    j->max_tokens = p->max_tokens;
    j->top_logprobs = p->top_logprobs;
    j->ignore_eos = p->ignore_eos;
    j->sampling = p->sampling;
    j->refs = 2;
    j->slot = -1;
    j->state = HS_JOB_QUEUED;
    atomic_init(&j->cancel, false);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* timeouts immune to clock changes */
    pthread_cond_init(&j->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&j->mu, NULL);
    *out = j;
    return HS_OK;
}

static void job_destroy(hs_job *j)
{
    for (int i = 0; i < j->ev_len; i++)
        hs_job_event_clear(&j->evq[(j->ev_head + i) % j->ev_cap]);
    hs_free(j->evq);
    hs_job_event_clear(&j->last);
    hs_sampler_free(j->smp);
    hs_job_release(j);
    hs_stop_free(j->stop);
    hs_buf_free(&j->piece);
    hs_free(j->prompt);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    hs_free(j);
}

void hs_job_unref(hs_job *j)
{
    pthread_mutex_lock(&j->mu);
    const bool last = --j->refs == 0;
    pthread_mutex_unlock(&j->mu);
    if (last)
        job_destroy(j);
}

/* Appends under j->mu. The ring doubles when full; if that fails the event
 * is dropped (its text freed) rather than stalling the scheduler. */
static void push_locked(hs_job *j, struct hs_job_event *ev)
{
    if (j->ev_len == j->ev_cap) {
        const int cap = j->ev_cap ? 2 * j->ev_cap : 16;
        struct hs_job_event *q = hs_malloc((size_t)cap * sizeof *q);
        if (!q) {
            hs_job_event_clear(ev);
            return;
        }
        for (int i = 0; i < j->ev_len; i++)
            q[i] = j->evq[(j->ev_head + i) % j->ev_cap];
        hs_free(j->evq);
        j->evq = q;
        j->ev_cap = cap;
        j->ev_head = 0;
    }
    j->evq[(j->ev_head + j->ev_len) % j->ev_cap] = *ev;
    j->ev_len++;
    ev->text = NULL;
    pthread_cond_broadcast(&j->cv);
}

void hs_job_push(hs_job *j, struct hs_job_event *ev)
{
    pthread_mutex_lock(&j->mu);
    push_locked(j, ev);
    pthread_mutex_unlock(&j->mu);
}

void hs_job_push_end(hs_job *j, struct hs_job_event *ev)
{
    pthread_mutex_lock(&j->mu);
    j->last = *ev;
    j->last.text = ev->text ? hs_strndup(ev->text, ev->len) : NULL;
    if (ev->text && !j->last.text)
        j->last.len = 0;
    push_locked(j, ev);
    j->ended = true;
    j->s = NULL;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

/* An absolute CLOCK_MONOTONIC time timeout_ms from now. */
static struct timespec deadline_after(int timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

int hs_job_next(hs_job *j, struct hs_job_event *ev, int timeout_ms)
{
    memset(ev, 0, sizeof *ev);
    pthread_mutex_lock(&j->mu);
    const struct timespec dl = deadline_after(timeout_ms > 0 ? timeout_ms : 0);
    while (j->ev_len == 0 && !j->ended) {
        if (timeout_ms == 0) {
            pthread_mutex_unlock(&j->mu);
            return 0;
        }
        const int rc =
            timeout_ms < 0 ? pthread_cond_wait(&j->cv, &j->mu) : pthread_cond_timedwait(&j->cv, &j->mu, &dl);
        if (rc == ETIMEDOUT && j->ev_len == 0 && !j->ended) {
            pthread_mutex_unlock(&j->mu);
            return 0;
        }
    }
    if (j->ev_len > 0) {
        *ev = j->evq[j->ev_head];
        j->ev_head = (j->ev_head + 1) % j->ev_cap;
        j->ev_len--;
    } else {
        /* Ended and taken: the last event again, with its own copy of the text. */
        *ev = j->last;
        ev->text = j->last.text ? hs_strndup(j->last.text, j->last.len) : NULL;
        if (!ev->text)
            ev->len = 0;
    }
    pthread_mutex_unlock(&j->mu);
    return 1;
}

/* The scheduler is woken under j->mu: it cannot end the job (which needs
 * j->mu) and be freed in between, since j->s is cleared under j->mu when
 * the job ends, before the scheduler may go. */
void hs_job_cancel(hs_job *j)
{
    if (!j)
        return;
    pthread_mutex_lock(&j->mu);
    if (!j->ended) {
        atomic_store(&j->cancel, true);
        hs_sched *s = j->s;
        if (s) {
            pthread_mutex_lock(&s->mu);
            pthread_cond_signal(&s->cv);
            pthread_mutex_unlock(&s->mu);
        }
    }
    pthread_mutex_unlock(&j->mu);
}

void hs_job_free(hs_job *j)
{
    if (!j)
        return;
    hs_job_cancel(j);
    hs_job_unref(j);
}
