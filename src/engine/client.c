/* hs_client (engine/client.h): requests to an OpenAI-compatible server,
 * with retries, over engine/upstream's transport.
 *
 * Each call starts an upstream stream (its own curl easy handle), waits for
 * the status and reads the body. 429 and 503 answers and failures to connect
 * are retried after a wait (Retry-After in seconds when the server sent one,
 * else backoff_ms doubled each time, plus up to a quarter of jitter so that
 * many callers turned away together do not come back together). Nothing is
 * retried once any of the answer reached the caller, and timeouts are not
 * retried: the time they allow is already spent. */
#include "engine/client_impl.h"

#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/parse.h"
#include "base/rng.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

enum {
    DEFAULT_CONNECT_MS = 5000,
    DEFAULT_TIMEOUT_MS = 120000,
    DEFAULT_RETRIES = 3,
    DEFAULT_BACKOFF_MS = 500,
    MAX_RETRIES = 10,
    MAX_WAIT_MS = 30000,            /* the longest wait before a retry, Retry-After included */
    STREAM_TOTAL_MS = 24 * 3600000, /* a stream that keeps talking is never cut (a day at most) */
    ERROR_BODY_MAX = 64 * 1024,     /* of a non-2xx answer, what is read for its message */
    ERROR_TEXT_MAX = 400,           /* characters of a message that was not JSON */
};
#define WHOLE_BODY_MAX ((size_t)256 << 20) /* a whole answer (embeddings of many inputs) */

void hs_client_opts_default(struct hs_client_opts *o)
{
    memset(o, 0, sizeof *o);
    o->connect_timeout_ms = DEFAULT_CONNECT_MS;
    o->timeout_ms = DEFAULT_TIMEOUT_MS;
    o->max_retries = DEFAULT_RETRIES;
    o->backoff_ms = DEFAULT_BACKOFF_MS;
}

int hs_client_create(const struct hs_client_opts *o, hs_client **out, hs_err *err)
{
    if (!out)
        return hs_err_set(err, HS_EINVAL, "hs_client_create: out is NULL");
    *out = NULL;
    if (!o || !o->base_url || !o->base_url[0])
        return hs_err_set(err, HS_EINVAL, "client: a base URL is required (e.g. http://127.0.0.1:8000/v1)");
    int connect_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : DEFAULT_CONNECT_MS;
    int timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : DEFAULT_TIMEOUT_MS;
    hs_client *c = hs_calloc(1, sizeof *c);
    if (!c)
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    c->max_retries = o->max_retries < 0 ? 0 : o->max_retries > MAX_RETRIES ? MAX_RETRIES : o->max_retries;
    c->backoff_ms = o->backoff_ms > 0 ? o->backoff_ms : DEFAULT_BACKOFF_MS;
    struct hs_upstream_params p = {
        .url = o->base_url,
        .api_key = o->api_key,
        .connect_timeout_ms = connect_ms,
        .timeout_ms = timeout_ms,
        .idle_timeout_ms = timeout_ms,
    };
    int rc = hs_upstream_create(&p, &c->whole, err);
    if (!rc) {
        p.timeout_ms = STREAM_TOTAL_MS;
        rc = hs_upstream_create(&p, &c->stream, err);
    }
    if (rc) {
        hs_client_free(c);
        return rc;
    }
    *out = c;
    return HS_OK;
}

void hs_client_free(hs_client *c)
{
    if (!c)
        return;
    hs_upstream_free(c->whole);
    hs_upstream_free(c->stream);
    hs_free(c);
}

void hs_chat_req_init(struct hs_chat_req *r)
{
    memset(r, 0, sizeof *r);
    r->max_tokens = -1;
    r->temperature = NAN;
    r->top_p = NAN;
    r->seed = -1;
}

static void resp_init(struct hs_chat_resp *r)
{
    memset(r, 0, sizeof *r);
    r->prompt_tokens = -1;
    r->completion_tokens = -1;
}

void hs_chat_resp_free(struct hs_chat_resp *r)
{
    if (!r)
        return;
    hs_free(r->id);
    hs_free(r->content);
    hs_free(r->finish_reason);
    resp_init(r);
}

/* ---------------------------------------------------------------------------
 * errors and small JSON readers */

static const char *json_str(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* The first line of a body that is not JSON, trimmed, at most ERROR_TEXT_MAX
 * bytes (an HTML error page from a proxy says enough in its first line). */
static char *first_line(const char *body, size_t len)
{
    size_t a = 0;
    while (a < len && (body[a] == ' ' || body[a] == '\t' || body[a] == '\r' || body[a] == '\n'))
        a++;
    size_t b = a;
    while (b < len && body[b] != '\n' && body[b] != '\r' && b - a < ERROR_TEXT_MAX)
        b++;
    while (b > a && (body[b - 1] == ' ' || body[b - 1] == '\t'))
        b--;
    if (b == a)
        return NULL;
    char *s = hs_strndup(body + a, b - a);
    for (char *p = s; p && *p; p++)
        if ((unsigned char)*p < ' ')
            *p = ' ';
    return s;
}

char *hs_client_error_text(const char *body, size_t len)
{
    if (!body || !len)
        return NULL;
    json_t *root = json_loadb(body, len, 0, NULL);
    const char *msg = NULL;
    if (json_is_object(root)) {
        const json_t *e = json_object_get(root, "error");
        if (json_is_object(e))
            msg = json_str(e, "message");
        else if (json_is_string(e))
            msg = json_string_value(e);
        if (!msg)
            msg = json_str(root, "message");
        if (!msg)
            msg = json_str(root, "detail");
    }
    char *out = msg && msg[0] ? hs_strdup(msg) : NULL;
    json_decref(root);
    return out ? out : first_line(body, len);
}

/* What kind of failure an HTTP status is, for callers that branch on it. */
static int status_code_to_hs(int status)
{
    switch (status) {
    case 400:
    case 401:
    case 403:
    case 405:
    case 413:
    case 415:
    case 422:
        return HS_EINVAL;
    case 404:
        return HS_ENOTFOUND;
    case 408:
    case 504:
        return HS_ETIMEDOUT;
    case 429:
    case 503:
        return HS_EBUSY;
    default:
        return HS_EIO;
    }
}

void hs_client_read_usage(struct hs_chat_resp *r, const json_t *root)
{
    const json_t *u = json_object_get(root, "usage");
    if (!json_is_object(u))
        return;
    const json_t *p = json_object_get(u, "prompt_tokens");
    const json_t *q = json_object_get(u, "completion_tokens");
    if (json_is_integer(p) && json_integer_value(p) >= 0 && json_integer_value(p) <= INT32_MAX)
        r->prompt_tokens = (int)json_integer_value(p);
    if (json_is_integer(q) && json_integer_value(q) >= 0 && json_integer_value(q) <= INT32_MAX)
        r->completion_tokens = (int)json_integer_value(q);
}

bool hs_client_take_str(char **dst, const json_t *v)
{
    if (*dst || !json_is_string(v))
        return true;
    *dst = hs_strdup(json_string_value(v));
    return *dst != NULL;
}

int hs_client_parse_chat(struct hs_chat_resp *r, const char *body, size_t len, hs_err *err)
{
    json_error_t je;
    json_t *root = json_loadb(body, len, 0, &je);
    if (!json_is_object(root)) {
        json_decref(root);
        return hs_err_set(err, HS_EFORMAT, "the answer is not a JSON object (%s)", je.text);
    }
    int rc = HS_OK;
    const json_t *e = json_object_get(root, "error");
    const json_t *choices = json_object_get(root, "choices");
    const json_t *ch0 = json_array_get(choices, 0);
    const json_t *msg = json_object_get(ch0, "message");
    const json_t *content = json_object_get(msg, "content");
    if (e && !json_is_null(e)) {
        char *m = hs_client_error_text(body, len);
        rc = hs_err_set(err, HS_EIO, "the server answered with an error: %s", m ? m : "(no message)");
        hs_free(m);
    } else if (!json_is_object(ch0) || !json_is_object(msg)) {
        rc = hs_err_set(err, HS_EFORMAT, "the answer has no choices[0].message");
    } else if (content && !json_is_string(content) && !json_is_null(content)) {
        rc = hs_err_set(err, HS_EFORMAT, "choices[0].message.content is not a string");
    } else {
        /* A null content (an answer that is only tool calls) reads as "". */
        hs_free(r->content);
        r->content = hs_strdup(json_is_string(content) ? json_string_value(content) : "");
        if (!r->content || !hs_client_take_str(&r->id, json_object_get(root, "id")) ||
            !hs_client_take_str(&r->finish_reason, json_object_get(ch0, "finish_reason")))
            rc = hs_err_set(err, HS_ENOMEM, "out of memory");
        hs_client_read_usage(r, root);
    }
    json_decref(root);
    return rc;
}

/* ---------------------------------------------------------------------------
 * the retrying exchange */

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* The wait before retry number `retry` (1, 2, ...). Retry-After may also be
 * an HTTP date; that form is rare from API servers and gets the backoff. */
static int retry_wait_ms(const hs_client *c, int retry, const char *retry_after)
{
    int secs;
    if (retry_after && hs_parse_int(retry_after, 0, 86400, &secs) == HS_OK)
        return secs >= MAX_WAIT_MS / 1000 ? MAX_WAIT_MS : secs * 1000;
    int64_t ms = c->backoff_ms;
    for (int i = 1; i < retry && ms < MAX_WAIT_MS; i++)
        ms *= 2;
    if (ms > MAX_WAIT_MS)
        ms = MAX_WAIT_MS;
    hs_rng rng;
    hs_rng_seed(&rng, (uint64_t)hs_now_ns() ^ (uint64_t)(uintptr_t)&rng);
    ms += (int64_t)(hs_rng_f64(&rng) * (double)ms / 4.0);
    return (int)ms;
}

/* Reads a non-2xx body (up to ERROR_BODY_MAX) and sets err to "HTTP <status>:
 * <message>". */
static int http_error(hs_upstream_stream *st, int status, hs_err *err)
{
    hs_buf b = {0};
    char chunk[4096];
    hs_err rerr = {0};
    while (b.len < ERROR_BODY_MAX) {
        long n = hs_upstream_read(st, chunk, sizeof chunk, -1, &rerr);
        if (n <= 0 || hs_buf_append(&b, chunk, (size_t)n) != HS_OK)
            break;
    }
    char *msg = hs_client_error_text(b.data, b.len);
    int rc = status_code_to_hs(status);
    if (msg)
        hs_err_set(err, rc, "HTTP %d: %s", status, msg);
    else
        hs_err_set(err, rc, "HTTP %d", status);
    hs_free(msg);
    hs_buf_free(&b);
    return rc;
}

/* One attempt. *retryable says whether a failure may be tried again;
 * *retry_after is the server's Retry-After (a new string) when it sent one. */
static int attempt(hs_client *c, struct hs_client_call *call, const struct hs_client_sink *sink, void *ud,
                   bool *retryable, char **retry_after, hs_err *err)
{
    *retryable = false;
    hs_upstream *u = call->stream ? c->stream : c->whole;
    hs_upstream_stream *st = NULL;
    int rc = call->post ? hs_upstream_post(u, call->path, call->body, call->len, NULL, &st, err)
                        : hs_upstream_get(u, call->path, &st, err);
    if (rc)
        return rc;
    int status = hs_upstream_status(st, -1, err);
    if (status < 0) {
        /* No answer at all: refused, reset, DNS. A timeout is final. */
        *retryable = status == HS_EIO;
        hs_upstream_close(st);
        return status;
    }
    call->http_status = status;
    if (status < 200 || status > 299) {
        if (status == 429 || status == 503) {
            *retryable = true;
            const char *ra = hs_upstream_header(st, "Retry-After");
            *retry_after = ra ? hs_strdup(ra) : NULL;
        }
        rc = http_error(st, status, err);
        hs_upstream_close(st);
        return rc;
    }
    sink->begin(ud, st);
    char chunk[16384];
    for (;;) {
        hs_err rerr = {0};
        long n = hs_upstream_read(st, chunk, sizeof chunk, -1, &rerr);
        if (n < 0) {
            /* Transport messages name the URL. The connection broke
             * mid-answer: try again only if the caller has seen none of it. */
            rc = hs_err_set(err, (int)n, "%s", rerr.msg[0] ? rerr.msg : hs_err_name((int)n));
            *retryable = n == HS_EIO && !sink->delivered(ud);
            break;
        }
        rc = n == 0 ? sink->end(ud, err) : sink->feed(ud, chunk, (size_t)n, err);
        if (rc && rc != HS_ECANCELED) /* what the answer's parsing found: name the request */
            hs_err_prefix(err, "%s %s: ", call->post ? "POST" : "GET", call->path);
        if (rc || n == 0)
            break;
    }
    hs_upstream_close(st);
    return rc;
}

int hs_client_exchange(hs_client *c, struct hs_client_call *call, const struct hs_client_sink *sink, void *ud,
                       hs_err *err)
{
    call->http_status = 0;
    call->attempts = 0;
    for (;;) {
        call->attempts++;
        bool retryable = false;
        char *retry_after = NULL;
        int rc = attempt(c, call, sink, ud, &retryable, &retry_after, err);
        if (rc == HS_OK || !retryable || call->attempts > c->max_retries) {
            hs_free(retry_after);
            return rc;
        }
        int wait = retry_wait_ms(c, call->attempts, retry_after);
        hs_log_debug("client.retry", "path=%s attempt=%d wait_ms=%d why=\"%s\"", call->path, call->attempts,
                     wait, err ? err->msg : "");
        hs_free(retry_after);
        sleep_ms(wait);
    }
}

/* ---------------------------------------------------------------------------
 * the whole-body sink */

struct whole {
    hs_buf body;
};

static void whole_begin(void *ud, hs_upstream_stream *st)
{
    (void)st;
    hs_buf_reset(&((struct whole *)ud)->body);
}

static int whole_feed(void *ud, const char *data, size_t n, hs_err *err)
{
    struct whole *w = ud;
    if (w->body.len + n > WHOLE_BODY_MAX)
        return hs_err_set(err, HS_ERANGE, "the answer is larger than %zu MiB", WHOLE_BODY_MAX >> 20);
    if (hs_buf_append(&w->body, data, n) != HS_OK)
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    return HS_OK;
}

static int whole_end(void *ud, hs_err *err)
{
    (void)ud;
    (void)err;
    return HS_OK;
}

static bool whole_delivered(void *ud)
{
    (void)ud;
    return false; /* the caller sees nothing before the end */
}

static const struct hs_client_sink whole_sink = {whole_begin, whole_feed, whole_end, whole_delivered};

/* GET or POST with the whole answer in w->body. */
static int call_whole(hs_client *c, struct hs_client_call *call, struct whole *w, hs_err *err)
{
    return hs_client_exchange(c, call, &whole_sink, w, err);
}

/* ---------------------------------------------------------------------------
 * chat */

/* Adds the members of a JSON object's text to body (they win over what is
 * there). */
static int merge_object(json_t *body, const char *text, const char *what, hs_err *err)
{
    json_error_t je;
    json_t *o = json_loads(text, 0, &je);
    if (!json_is_object(o)) {
        json_decref(o);
        return hs_err_set(err, HS_EINVAL, "%s is not a JSON object: %s", what,
                          o ? "another JSON value" : je.text);
    }
    int rc = json_object_update(body, o) ? hs_err_set(err, HS_ENOMEM, "out of memory") : HS_OK;
    json_decref(o);
    return rc;
}

/* Steals v; false when v is NULL (out of memory, or a string that is not
 * UTF-8) or the set failed. */
static bool set_new(json_t *o, const char *key, json_t *v)
{
    return v && json_object_set_new(o, key, v) == 0;
}

static int build_chat_body(const struct hs_chat_req *req, bool stream, char **out, hs_err *err)
{
    *out = NULL;
    if (!req || !req->messages || req->n_messages < 1)
        return hs_err_set(err, HS_EINVAL, "chat: at least one message is required");
    json_t *body = json_object();
    json_t *msgs = json_array();
    bool ok = body && msgs && json_object_set(body, "messages", msgs) == 0;
    if (ok && req->model)
        ok = set_new(body, "model", json_string(req->model));
    for (int i = 0; ok && i < req->n_messages; i++) {
        const struct hs_chat_msg *m = &req->messages[i];
        if (!m->role || !m->content) {
            json_decref(msgs);
            json_decref(body);
            return hs_err_set(err, HS_EINVAL, "chat: messages[%d] needs a role and a content", i);
        }
        json_t *mo = json_object();
        ok = mo && set_new(mo, "role", json_string(m->role));
        if (ok && !set_new(mo, "content", json_string(m->content))) {
            json_decref(mo);
            json_decref(msgs);
            json_decref(body);
            return hs_err_set(err, HS_EINVAL, "chat: messages[%d].content is not valid UTF-8", i);
        }
        ok = ok && json_array_append_new(msgs, mo) == 0;
        if (!ok)
            json_decref(mo);
    }
    json_decref(msgs); /* body holds its own reference */
    if (ok && req->max_tokens > 0)
        ok = set_new(body, "max_tokens", json_integer(req->max_tokens));
    if (ok && isfinite(req->temperature))
        ok = set_new(body, "temperature", json_real(req->temperature));
    if (ok && isfinite(req->top_p))
        ok = set_new(body, "top_p", json_real(req->top_p));
    if (ok && req->seed >= 0)
        ok = set_new(body, "seed", json_integer(req->seed));
    if (ok && stream) {
        ok = set_new(body, "stream", json_true()) &&
             set_new(body, "stream_options", json_pack("{s:b}", "include_usage", 1));
    }
    if (!ok) {
        json_decref(body);
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    }
    int rc = HS_OK;
    if (req->response_format) {
        json_error_t je;
        json_t *rf = json_loads(req->response_format, 0, &je);
        if (!json_is_object(rf)) {
            json_decref(rf);
            rc = hs_err_set(err, HS_EINVAL, "chat: response_format is not a JSON object");
        } else if (json_object_set_new(body, "response_format", rf) != 0) {
            rc = hs_err_set(err, HS_ENOMEM, "out of memory");
        }
    }
    if (!rc && req->extra)
        rc = merge_object(body, req->extra, "chat: extra", err);
    if (!rc) {
        *out = json_dumps(body, JSON_COMPACT);
        if (!*out)
            rc = hs_err_set(err, HS_ENOMEM, "out of memory");
    }
    json_decref(body);
    return rc;
}

int hs_client_chat(hs_client *c, const struct hs_chat_req *req, struct hs_chat_resp *out, hs_err *err)
{
    if (!out)
        return hs_err_set(err, HS_EINVAL, "hs_client_chat: out is NULL");
    resp_init(out);
    if (!c)
        return hs_err_set(err, HS_EINVAL, "hs_client_chat: client is NULL");
    int64_t t0 = hs_now_ns();
    char *body;
    int rc = build_chat_body(req, false, &body, err);
    if (rc)
        return rc;
    struct hs_client_call call = {
        .post = true, .path = "/chat/completions", .body = body, .len = strlen(body)};
    struct whole w = {0};
    rc = call_whole(c, &call, &w, err);
    free(body); /* json_dumps: the C heap */
    if (!rc) {
        rc = hs_client_parse_chat(out, w.body.data ? w.body.data : "", w.body.len, err);
        if (rc)
            hs_err_prefix(err, "POST %s: ", call.path);
    }
    hs_buf_free(&w.body);
    out->http_status = call.http_status;
    out->attempts = call.attempts;
    out->latency_ms = (double)(hs_now_ns() - t0) / 1e6;
    out->ttft_ms = out->latency_ms;
    return rc;
}

int hs_client_chat_stream(hs_client *c, const struct hs_chat_req *req, hs_client_delta_fn on_delta, void *ud,
                          struct hs_chat_resp *out, hs_err *err)
{
    if (!out)
        return hs_err_set(err, HS_EINVAL, "hs_client_chat_stream: out is NULL");
    resp_init(out);
    if (!c)
        return hs_err_set(err, HS_EINVAL, "hs_client_chat_stream: client is NULL");
    int64_t t0 = hs_now_ns();
    char *body;
    int rc = build_chat_body(req, true, &body, err);
    if (rc)
        return rc;
    struct hs_client_call call = {
        .post = true, .stream = true, .path = "/chat/completions", .body = body, .len = strlen(body)};
    struct hs_client_sse sse;
    hs_client_sse_init(&sse, out, on_delta, ud, t0);
    rc = hs_client_exchange(c, &call, &hs_client_sse_sink, &sse, err);
    free(body);
    /* What came before a failure or a cancel stays readable. */
    if (!out->content && sse.content.len)
        out->content = hs_strndup(sse.content.data, sse.content.len);
    if (!out->content)
        out->content = hs_strdup("");
    hs_client_sse_free(&sse);
    out->http_status = call.http_status;
    out->attempts = call.attempts;
    out->latency_ms = (double)(hs_now_ns() - t0) / 1e6;
    if (!sse.delivered)
        out->ttft_ms = out->latency_ms;
    if (!rc && !out->content)
        rc = hs_err_set(err, HS_ENOMEM, "out of memory");
    return rc;
}

/* ---------------------------------------------------------------------------
 * embeddings and models */

int hs_client_embed(hs_client *c, const char *model, const char *const *inputs, int n, float **vecs, int *dim,
                    hs_err *err)
{
    if (!vecs || !dim)
        return hs_err_set(err, HS_EINVAL, "hs_client_embed: vecs and dim are required");
    *vecs = NULL;
    *dim = 0;
    if (!c || !inputs || n < 1)
        return hs_err_set(err, HS_EINVAL, "embeddings: at least one input is required");
    json_t *body = json_object();
    json_t *arr = json_array();
    bool ok = body && arr && json_object_set(body, "input", arr) == 0 &&
              set_new(body, "encoding_format", json_string("float"));
    if (ok && model)
        ok = set_new(body, "model", json_string(model));
    for (int i = 0; ok && i < n; i++) {
        if (!inputs[i] || json_array_append_new(arr, json_string(inputs[i])) != 0) {
            json_decref(arr);
            json_decref(body);
            return hs_err_set(err, HS_EINVAL, "embeddings: input %d is NULL or not valid UTF-8", i);
        }
    }
    json_decref(arr);
    char *text = ok ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text)
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    struct hs_client_call call = {.post = true, .path = "/embeddings", .body = text, .len = strlen(text)};
    struct whole w = {0};
    int rc = call_whole(c, &call, &w, err);
    free(text);
    if (rc) {
        hs_buf_free(&w.body);
        return rc;
    }
    json_error_t je;
    json_t *root = json_loadb(w.body.data ? w.body.data : "", w.body.len, 0, &je);
    hs_buf_free(&w.body);
    const json_t *data = json_object_get(root, "data");
    float *v = NULL;
    int d = 0;
    if (!json_is_array(data) || json_array_size(data) != (size_t)n) {
        rc = hs_err_set(err, HS_EFORMAT, "embeddings: the answer has %zu vectors in data, want %d",
                        json_array_size(data), n);
    }
    /* Vectors go where their "index" says (the order of data need not be the
     * inputs'); every input gets exactly one. */
    bool *seen = rc ? NULL : hs_calloc((size_t)n, sizeof *seen);
    if (!rc && !seen)
        rc = hs_err_set(err, HS_ENOMEM, "out of memory");
    for (int i = 0; !rc && i < n; i++) {
        const json_t *item = json_array_get(data, (size_t)i);
        const json_t *emb = json_object_get(item, "embedding");
        const json_t *idx = json_object_get(item, "index");
        json_int_t k = json_is_integer(idx) ? json_integer_value(idx) : i;
        if (!json_is_array(emb) || json_array_size(emb) == 0 || json_array_size(emb) > (1u << 20)) {
            rc = hs_err_set(err, HS_EFORMAT, "embeddings: data[%d].embedding is not an array of numbers", i);
            break;
        }
        if (k < 0 || k >= n || seen[k]) {
            rc = hs_err_set(err, HS_EFORMAT, "embeddings: data[%d].index %lld is out of range or repeated", i,
                            (long long)k);
            break;
        }
        seen[k] = true;
        if (!v) {
            d = (int)json_array_size(emb);
            v = hs_calloc((size_t)n * (size_t)d, sizeof *v);
            if (!v) {
                rc = hs_err_set(err, HS_ENOMEM, "out of memory");
                break;
            }
        } else if (json_array_size(emb) != (size_t)d) {
            rc = hs_err_set(err, HS_EFORMAT, "embeddings: data[%d] has %zu dimensions, data[0] %d", i,
                            json_array_size(emb), d);
            break;
        }
        for (int j = 0; j < d; j++) {
            const json_t *x = json_array_get(emb, (size_t)j);
            if (!json_is_number(x)) {
                rc = hs_err_set(err, HS_EFORMAT, "embeddings: data[%d].embedding[%d] is not a number", i, j);
                break;
            }
            v[(size_t)k * (size_t)d + (size_t)j] = (float)json_number_value(x);
        }
    }
    hs_free(seen);
    json_decref(root);
    if (rc) {
        hs_free(v);
        return rc;
    }
    *vecs = v;
    *dim = d;
    return HS_OK;
}

void hs_client_names_free(char **names, int n)
{
    if (!names)
        return;
    for (int i = 0; i < n; i++)
        hs_free(names[i]);
    hs_free(names);
}

int hs_client_models(hs_client *c, char ***names, int *n, hs_err *err)
{
    if (!names || !n)
        return hs_err_set(err, HS_EINVAL, "hs_client_models: names and n are required");
    *names = NULL;
    *n = 0;
    if (!c)
        return hs_err_set(err, HS_EINVAL, "hs_client_models: client is NULL");
    struct hs_client_call call = {.post = false, .path = "/models"};
    struct whole w = {0};
    int rc = call_whole(c, &call, &w, err);
    if (rc) {
        hs_buf_free(&w.body);
        return rc;
    }
    json_t *root = json_loadb(w.body.data ? w.body.data : "", w.body.len, 0, NULL);
    hs_buf_free(&w.body);
    const json_t *data = json_object_get(root, "data");
    if (!json_is_array(data)) {
        json_decref(root);
        return hs_err_set(err, HS_EFORMAT, "GET /models: the answer has no data array");
    }
    size_t cnt = json_array_size(data);
    char **v = cnt ? hs_calloc(cnt, sizeof *v) : NULL;
    if (cnt && !v) {
        json_decref(root);
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    }
    int k = 0;
    for (size_t i = 0; i < cnt; i++) {
        const char *id = json_str(json_array_get(data, i), "id");
        if (!id)
            continue; /* an entry without an id names nothing one could ask for */
        v[k] = hs_strdup(id);
        if (!v[k]) {
            hs_client_names_free(v, k);
            json_decref(root);
            return hs_err_set(err, HS_ENOMEM, "out of memory");
        }
        k++;
    }
    json_decref(root);
    *names = v;
    *n = k;
    return HS_OK;
}

char *hs_client_api_base(const char *url)
{
    const char *p = strstr(url, "://");
    const char *host = p ? p + 3 : url;
    const char *path = strpbrk(host, "/?#");
    if (path && !(path[0] == '/' && (path[1] == '\0' || path[1] == '?' || path[1] == '#')))
        return hs_strdup(url);
    hs_buf b = {0};
    size_t host_end = path ? (size_t)(path - url) : strlen(url);
    const char *rest = path ? (path[0] == '/' ? path + 1 : path) : "";
    if (hs_buf_append(&b, url, host_end) || hs_buf_printf(&b, "/v1%s", rest)) {
        hs_buf_free(&b);
        return NULL;
    }
    return hs_buf_steal(&b);
}
