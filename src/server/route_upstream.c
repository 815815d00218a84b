/* The gateway path: a model entry that names an upstream OpenAI-compatible
 * server. The request has passed the same auth, limits and validation as a
 * local one; its body goes upstream as the client sent it (the model name
 * replaced by the remote one), and the answer comes back as it arrives:
 * status, content type and Retry-After passed on, a stream passed through
 * chunk by chunk. Time to first token is the first body byte; the usage
 * comes from the JSON body, or from the stream's usage chunk when there is
 * one. An upstream that cannot be reached is a 502 with an OpenAI error.
 * (issue 7) The model's upstreams are a pool (engine/upstream_pool.h): the
 * pool picks the member and retries a failure before the status is handed
 * out, so nothing here is retried; no usable member is a 503 with
 * Retry-After. */
#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "ops/confidence.h"
#include "server/openai.h"
#include "server/server_impl.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define WAIT_MS 100
#define MAX_BODY (64u << 20) /* a collected (non-streamed) answer, at most */
#define MAX_EVENT (4u << 20) /* one SSE event held for the usage scan, at most */

struct up {
    struct srv_call *c;
    hs_upstream_pool_stream *st;
    struct hs_http_probe gone;
    bool ended;
    bool cut;         /* ended early: an error event was sent, or the client left */
    bool strip_usage; /* usage was asked upstream for the record; the client did not ask */
    struct hs_conf_acc conf; /* (issue 6) the first choice's token probabilities, when the upstream sends them */
    hs_buf answer;           /* (issue 6) the answer's text, for the safety checks at the end */
    hs_buf ev;        /* the SSE event being received */
    hs_buf out;       /* bytes ready for the client */
    size_t out_off;
};

static const char *finish_literal(const char *f)
{
    static const char *const k[] = {"stop", "length", "tool_calls", "content_filter", "function_call"};
    for (size_t i = 0; f && i < sizeof k / sizeof k[0]; i++)
        if (!strcmp(f, k[i]))
            return k[i];
    return NULL;
}

/* (issue 6) The text of each choice of an answer (message.content or text)
 * or of a chunk (delta.content or text), appended to out. */
static void take_text(hs_buf *out, const json_t *o)
{
    const json_t *choices = json_is_object(o) ? json_object_get(o, "choices") : NULL;
    size_t i;
    const json_t *ch;
    json_array_foreach(choices, i, ch) {
        const json_t *m = json_object_get(ch, "message");
        if (!m)
            m = json_object_get(ch, "delta");
        const json_t *t = m ? json_object_get(m, "content") : json_object_get(ch, "text");
        if (json_is_string(t))
            hs_buf_append(out, json_string_value(t), json_string_length(t));
    }
}

/* Usage and finish reason from one JSON answer or chunk; true when o is a
 * usage-only chunk ("choices": [] and a usage object). */
static bool take_usage(struct srv_call *c, const json_t *o)
{
    if (!json_is_object(o))
        return false;
    const json_t *u = json_object_get(o, "usage");
    if (json_is_object(u)) {
        const json_t *pt = json_object_get(u, "prompt_tokens");
        const json_t *ct = json_object_get(u, "completion_tokens");
        if (json_is_integer(pt))
            c->tokens_in = (int)json_integer_value(pt);
        if (json_is_integer(ct))
            c->tokens_out = (int)json_integer_value(ct);
        const json_t *d = json_object_get(u, "prompt_tokens_details");
        const json_t *cached = json_is_object(d) ? json_object_get(d, "cached_tokens") : NULL;
        if (json_is_integer(cached))
            c->tokens_cached = (int)json_integer_value(cached);
    }
    const json_t *choices = json_object_get(o, "choices");
    const json_t *ch0 = json_is_array(choices) ? json_array_get(choices, 0) : NULL;
    const json_t *fr = json_is_object(ch0) ? json_object_get(ch0, "finish_reason") : NULL;
    if (json_is_string(fr))
        c->finish_reason = finish_literal(json_string_value(fr));
    return json_is_object(u) && json_is_array(choices) && json_array_size(choices) == 0;
}

/* One whole SSE event (its lines, without the blank line that ends it):
 * its data is scanned for usage; it is passed on unless it is the usage
 * chunk only hestia asked for. */
static void take_event(struct up *u, const char *p, size_t n, const char *end, size_t end_len)
{
    bool usage_only = false;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && p[j] != '\n')
            j++;
        size_t len = j - i;
        if (len && p[i + len - 1] == '\r')
            len--;
        if (len > 5 && !strncmp(p + i, "data:", 5)) {
            size_t k = i + 5;
            while (k < i + len && p[k] == ' ')
                k++;
            if (k < i + len && p[k] == '{') {
                json_t *o = json_loadb(p + k, i + len - k, 0, NULL);
                if (take_usage(u->c, o))
                    usage_only = true;
                hs_conf_add_json(&u->conf, o, 0, NULL, NULL);
                if (u->answer.len < MAX_BODY)
                    take_text(&u->answer, o);
                json_decref(o);
            }
        }
        i = j + 1;
    }
    if (usage_only && u->strip_usage)
        return;
    hs_buf_append(&u->out, p, n);
    hs_buf_append(&u->out, end, end_len);
    hs_srv_call_capture(u->c, p, n);
    hs_srv_call_capture(u->c, end, end_len);
}

/* Moves every complete event of u->ev to u->out; with flush, the rest too. */
static void take_events(struct up *u, bool flush)
{
    size_t start = 0;
    const char *d = u->ev.data;
    for (size_t i = 0; i + 1 < u->ev.len; i++) {
        if (d[i] != '\n')
            continue;
        size_t blank = 0; /* the empty line after this newline */
        if (d[i + 1] == '\n')
            blank = 1;
        else if (d[i + 1] == '\r' && i + 2 < u->ev.len && d[i + 2] == '\n')
            blank = 2;
        if (!blank)
            continue;
        take_event(u, d + start, i + 1 - start, d + i + 1, blank);
        start = i + 1 + blank;
        i = start - 1;
    }
    if (flush || u->ev.len - start > MAX_EVENT) {
        /* no end in sight: pass it on unread rather than hold it */
        hs_buf_append(&u->out, d + start, u->ev.len - start);
        hs_srv_call_capture(u->c, d + start, u->ev.len - start);
        start = u->ev.len;
    }
    if (start) {
        memmove(u->ev.data, u->ev.data + start, u->ev.len - start);
        u->ev.len -= start;
        u->ev.data[u->ev.len] = '\0';
    }
}

static void first_byte(struct srv_call *c)
{
    if (c->ttft_ms < 0)
        c->ttft_ms = (hs_now_s() - c->t0) * 1000.0;
}

/* Ends a broken stream the way a local one ends: an error event, then [DONE]. */
static void stream_error(struct up *u, int status, const char *msg)
{
    struct hs_api_error e;
    hs_api_error_set(&e, status, status == 503 ? "service_unavailable" : "server_error", NULL, NULL, "%s",
                     msg);
    json_t *j = hs_oai_error(&e);
    if (u->out.len && u->out.data[u->out.len - 1] != '\n')
        hs_buf_puts(&u->out, "\n\n");
    if (j)
        hs_sse_append(&u->out, j);
    json_decref(j);
    hs_sse_done(&u->out);
    hs_srv_call_set_error(u->c, msg);
    u->cut = true;
}

static long up_pull(void *user, char *buf, size_t cap)
{
    struct up *u = user;
    struct srv_call *c = u->c;
    char in[16384];
    for (;;) {
        if (u->out_off < u->out.len) {
            size_t n = u->out.len - u->out_off;
            n = n < cap ? n : cap;
            memcpy(buf, u->out.data + u->out_off, n);
            u->out_off += n;
            return (long)n;
        }
        hs_buf_reset(&u->out);
        u->out_off = 0;
        if (u->ended)
            return 0;
        hs_err err = {0};
        long n = hs_upstream_pool_read(u->st, in, sizeof in, WAIT_MS, &err);
        if (n > 0) {
            first_byte(c);
            hs_buf_append(&u->ev, in, (size_t)n);
            take_events(u, false);
            continue;
        }
        if (n == 0) {
            take_events(u, true);
            u->ended = true;
            continue;
        }
        if (n == HS_ETIMEDOUT && err.code == HS_OK) { /* our wait ran out, not the upstream's */
            if (hs_http_probe_gone(&u->gone)) {
                u->cut = true;
                hs_srv_call_set_error(c, "the client closed the connection");
                c->status = 499;
                return -1;
            }
            if (atomic_load(&c->srv->cut)) {
                take_events(u, true);
                stream_error(u, 503, "the server is shutting down");
                u->ended = true;
            }
            continue;
        }
        char msg[HS_ERR_MSG_MAX + 32];
        snprintf(msg, sizeof msg, "upstream: %s", err.msg[0] ? err.msg : hs_err_name((int)n));
        take_events(u, true);
        stream_error(u, 502, msg);
        u->ended = true;
    }
}

static void up_free(void *user)
{
    struct up *u = user;
    struct srv_call *c = u->c;
    if (!u->ended && !u->cut) {
        c->status = 499;
        hs_srv_call_set_error(c, "the client closed the connection");
    }
    struct hs_confidence conf;
    hs_conf_result(&conf, &u->conf);
    c->confidence = conf.mean_prob;
    c->low_prob_share = conf.low_share;
    if (u->ended && !u->cut)
        hs_srv_safety_check(c, u->answer.data, u->answer.len);
    hs_buf_free(&u->answer);
    hs_upstream_pool_close(u->st);
    hs_buf_free(&u->ev);
    hs_buf_free(&u->out);
    hs_free(u);
    hs_srv_call_finish(c);
}

static void pass_header(struct hs_http_resp *resp, hs_upstream_pool_stream *st, const char *name)
{
    const char *v = hs_upstream_pool_header(st, name);
    if (v)
        hs_http_resp_header(resp, name, v);
}

void hs_route_upstream(struct srv_call *c, const struct hs_http_req *req, struct hs_http_resp *resp,
                       struct hs_gen_request *gr, const char *upstream_path)
{
    const struct srv_model *m = c->m;
    bool want_stream = gr->stream;
    /* A stream's record needs its token counts: ask the upstream for the
     * usage chunk, and keep it from a client that did not ask for it. */
    bool strip_usage = false;
    hs_buf body = {0};
    if (gr->stream && !gr->include_usage && gr->kind != HS_REQ_EMBEDDING && json_is_object(gr->root)) {
        json_t *so = json_object_get(gr->root, "stream_options");
        if (!json_is_object(so)) {
            so = json_object();
            json_object_set_new(gr->root, "stream_options", so); /* steals so; NULL is refused */
        }
        if (json_is_object(so) && !json_object_set_new(so, "include_usage", json_true()) &&
            !hs_oai_dump(&body, gr->root))
            strip_usage = true;
        else
            hs_buf_free(&body);
    }
    hs_srv_drift_note_request(c, gr); /* (issue 6) the data-drift sample of recent prompts */
    hs_req_free(gr);
    hs_upstream_pool_stream *st = NULL;
    hs_err err = {0};
    int status = 0;
    int prc = strip_usage
                  ? hs_upstream_pool_post(m->pool, upstream_path, body.data, body.len, c->id, &st, &err)
                  : hs_upstream_pool_post(m->pool, upstream_path, req->body, req->body_len, c->id, &st, &err);
    hs_buf_free(&body);
    if (prc == HS_OK) {
        for (;;) {
            status = hs_upstream_pool_status(st, WAIT_MS, &err);
            if (status != 0)
                break;
            if (hs_http_req_gone(req)) {
                hs_upstream_pool_close(st);
                resp->status = 499;
                c->status = 499;
                hs_srv_call_set_error(c, "the client closed the connection");
                return;
            }
            if (atomic_load(&c->srv->cut)) {
                hs_upstream_pool_close(st);
                hs_srv_fail(c, resp, 503, "service_unavailable", NULL, NULL, "the server is shutting down");
                return;
            }
        }
    } else {
        status = prc;
    }
    if (st && hs_upstream_pool_stream_url(st)) /* the member that answered, for the record */
        snprintf(c->backend_url, sizeof c->backend_url, "%s", hs_upstream_pool_stream_url(st));
    if (prc == HS_EBUSY) {
        /* (issue 7) every member is down or behind an open breaker */
        char ra[16];
        snprintf(ra, sizeof ra, "%d", hs_upstream_pool_retry_after_s(m->pool));
        hs_log_warn("serve.upstream", "id=%s model=%s msg=\"%s\"", c->id, m->name, err.msg);
        hs_http_resp_header(resp, "Retry-After", ra);
        hs_srv_fail(c, resp, 503, "service_unavailable", "upstream_unavailable", NULL, "%s", err.msg);
        return;
    }
    if (status < 0) {
        hs_log_warn("serve.upstream", "id=%s model=%s url=%s attempts=%d msg=\"%s\"", c->id, m->name,
                    st ? hs_upstream_pool_stream_url(st) : m->entry->upstream_url,
                    hs_upstream_pool_stream_attempts(st), err.msg);
        hs_upstream_pool_close(st);
        hs_srv_fail(c, resp, 502, "server_error", "upstream_unreachable", NULL,
                    "The upstream server for '%s' "
                    "could not be reached: %s",
                    m->name, err.msg[0] ? err.msg : hs_err_name(status));
        return;
    }
    c->status = status;
    resp->status = status;
    pass_header(resp, st, "Content-Type");
    pass_header(resp, st, "Retry-After");
    const char *ct = hs_upstream_pool_header(st, "Content-Type");
    bool sse = ct && !strncasecmp(ct, "text/event-stream", 17);
    if (want_stream && status == 200 && sse) {
        struct up *u = hs_calloc(1, sizeof *u);
        if (!u) {
            hs_upstream_pool_close(st);
            hs_srv_fail(c, resp, 500, "server_error", NULL, NULL, "out of memory");
            return;
        }
        u->c = c;
        u->st = st;
        u->gone = req->gone;
        u->strip_usage = strip_usage;
        hs_conf_init(&u->conf, hs_srv_low_prob(c->srv));
        hs_http_resp_header(resp, "Cache-Control", "no-cache");
        hs_http_resp_header(resp, "X-Accel-Buffering", "no");
        resp->pull = up_pull;
        resp->pull_user = u;
        resp->pull_free = up_free;
        return;
    }
    /* A whole answer: collected, then sent as it came. */
    char buf[16384];
    for (;;) {
        long n = hs_upstream_pool_read(st, buf, sizeof buf, WAIT_MS, &err);
        if (n > 0) {
            first_byte(c);
            if (resp->body.len + (size_t)n > MAX_BODY || hs_buf_append(&resp->body, buf, (size_t)n)) {
                hs_upstream_pool_close(st);
                hs_buf_reset(&resp->body);
                hs_srv_fail(c, resp, 502, "server_error", "upstream_error", NULL,
                            "The upstream answer is larger than %u bytes", MAX_BODY);
                return;
            }
            continue;
        }
        if (n == 0)
            break;
        if (n == HS_ETIMEDOUT && err.code == HS_OK) {
            if (hs_http_req_gone(req)) {
                hs_upstream_pool_close(st);
                resp->status = 499;
                c->status = 499;
                hs_srv_call_set_error(c, "the client closed the connection");
                return;
            }
            if (!atomic_load(&c->srv->cut))
                continue;
            err.msg[0] = '\0';
            snprintf(err.msg, sizeof err.msg, "the server is shutting down");
        }
        hs_upstream_pool_close(st);
        hs_buf_reset(&resp->body);
        hs_srv_fail(c, resp, 502, "server_error", "upstream_error", NULL, "The upstream answer broke off: %s",
                    err.msg[0] ? err.msg : hs_err_name((int)n));
        return;
    }
    hs_upstream_pool_close(st);
    hs_srv_call_capture(c, resp->body.data ? resp->body.data : "", resp->body.len);
    json_t *o = resp->body.len ? json_loadb(resp->body.data, resp->body.len, 0, NULL) : NULL;
    if (status >= 200 && status < 300) {
        take_usage(c, o);
        struct hs_conf_acc acc;
        struct hs_confidence conf;
        hs_conf_init(&acc, hs_srv_low_prob(c->srv));
        hs_conf_add_json(&acc, o, 0, NULL, NULL);
        hs_conf_result(&conf, &acc);
        c->confidence = conf.mean_prob;
        c->low_prob_share = conf.low_share;
        hs_buf text = {0};
        take_text(&text, o);
        hs_srv_safety_check(c, text.data, text.len);
        hs_buf_free(&text);
    } else {
        const json_t *e = json_is_object(o) ? json_object_get(o, "error") : NULL;
        const json_t *msg = json_is_object(e) ? json_object_get(e, "message") : NULL;
        char text[256];
        snprintf(text, sizeof text, "upstream status %d%s%.200s", status, json_is_string(msg) ? ": " : "",
                 json_is_string(msg) ? json_string_value(msg) : "");
        hs_srv_call_set_error(c, text);
    }
    json_decref(o);
}

/* ---------------------------------------------------------------------------
 * (issue 7) the pools on /metrics */

/* A label value with \\, " and newline escaped (exposition format 0.0.4). */
static int put_label(hs_buf *b, const char *v)
{
    int rc = 0;
    for (; v && *v; v++) {
        if (*v == '\\' || *v == '"')
            rc |= hs_buf_putc(b, '\\') | hs_buf_putc(b, *v);
        else if (*v == '\n')
            rc |= hs_buf_puts(b, "\\n");
        else
            rc |= hs_buf_putc(b, *v);
    }
    return rc;
}

enum up_series { S_UP, S_BREAKER, S_OUTSTANDING, S_REQUESTS, S_FAILURES, S_OPENS, S_N };

int hs_srv_upstream_metrics(hs_server *s, hs_buf *out)
{
    static const struct {
        const char *name, *type, *help;
    } k[S_N] = {
        {"hestia:upstream_up", "gauge",
         "1 when the upstream passes its health check and its breaker is not open"},
        {"hestia:upstream_breaker_state", "gauge",
         "the upstream's circuit breaker: 0 closed, 1 open, 2 half-open"},
        {"hestia:upstream_outstanding", "gauge", "requests sent to the upstream and not yet finished"},
        {"hestia:upstream_requests_total", "counter", "attempts sent to the upstream, retries included"},
        {"hestia:upstream_failures_total", "counter",
         "attempts that failed before the answer (connection, timeout, HTTP 5xx or 429)"},
        {"hestia:upstream_breaker_opens_total", "counter", "times the upstream's circuit breaker opened"},
    };
    int rc = 0;
    bool any = false;
    for (int i = 0; i < s->n_models; i++)
        any |= s->models[i].pool != NULL;
    if (!any)
        return HS_OK;
    for (int q = 0; q < S_N; q++) {
        rc |= hs_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", k[q].name, k[q].help, k[q].name, k[q].type);
        for (int i = 0; i < s->n_models; i++) {
            hs_upstream_pool *p = s->models[i].pool;
            for (int j = 0; p && j < hs_upstream_pool_size(p); j++) {
                struct hs_upstream_member_state ms;
                if (hs_upstream_pool_member(p, j, &ms))
                    continue;
                double v = 0;
                switch (q) {
                case S_UP:
                    v = ms.up && ms.breaker != HS_BREAKER_OPEN;
                    break;
                case S_BREAKER:
                    v = ms.breaker == HS_BREAKER_OPEN ? 1 : ms.breaker == HS_BREAKER_HALF_OPEN ? 2 : 0;
                    break;
                case S_OUTSTANDING:
                    v = ms.outstanding;
                    break;
                case S_REQUESTS:
                    v = (double)ms.requests;
                    break;
                case S_FAILURES:
                    v = (double)ms.failures;
                    break;
                default:
                    v = (double)ms.breaker_opens;
                    break;
                }
                rc |= hs_buf_printf(out, "%s{model=\"", k[q].name);
                rc |= put_label(out, s->models[i].name);
                rc |= hs_buf_puts(out, "\",url=\"");
                rc |= put_label(out, ms.url);
                rc |= hs_buf_printf(out, "\"} %.0f\n", v);
            }
        }
    }
    rc |= hs_buf_puts(out, "# HELP hestia:upstream_retries_total requests tried again on an upstream\n"
                           "# TYPE hestia:upstream_retries_total counter\n");
    for (int i = 0; i < s->n_models; i++) {
        if (!s->models[i].pool)
            continue;
        rc |= hs_buf_puts(out, "hestia:upstream_retries_total{model=\"");
        rc |= put_label(out, s->models[i].name);
        unsigned long long n = (unsigned long long)hs_upstream_pool_retries(s->models[i].pool);
        rc |= hs_buf_printf(out, "\"} %llu\n", n);
    }
    return rc ? HS_ENOMEM : HS_OK;
}
