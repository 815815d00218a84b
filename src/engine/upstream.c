/* The gateway's HTTP client (engine/upstream.h).
 *
 * Each stream owns a curl easy handle inside a multi handle of its own, driven
 * by one thread (curl_multi_perform + curl_multi_poll). Body bytes go into a
 * bounded ring under a mutex; when the ring is full the write callback waits,
 * so a slow client slows the upstream transfer (TCP flow control carries the
 * back-pressure to the upstream) instead of growing memory. The multi interface
 * is used instead of curl_easy_perform for one reason: curl_multi_wakeup lets
 * hs_upstream_close interrupt the poll at once rather than at the next progress
 * callback, and the idle timeout is checked in the same loop.
 *
 * Ownership: a stream copies everything it needs (URL, body, headers) when it
 * starts, so it does not reference its hs_upstream afterwards; an upstream may
 * be freed while its streams still run. */
#include "engine/upstream.h"

#include "base/buf.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* curl_multi_wakeup came in 7.68; newer calls below have fallbacks. */
#if LIBCURL_VERSION_NUM < 0x074400
#error "hestia needs libcurl 7.68 or newer"
#endif

enum {
    RING_BYTES = 64 * 1024, /* body bytes buffered per stream, at most */
    MAX_HEADERS = 128,      /* response headers kept; more are dropped */
    POLL_MAX_MS = 1000,     /* the loop re-checks idleness at least this often */
    DEFAULT_CONNECT_MS = 5000,
    DEFAULT_TOTAL_MS = 600000,
    DEFAULT_IDLE_MS = 60000,
};

struct hs_upstream {
    char *base;  /* scheme://host[:port]/path without trailing '/' and query */
    char *query; /* what followed '?', or NULL; appended after the path */
    char *api_key;
    char *model;
    int connect_ms, total_ms, idle_ms;
};

struct header {
    char *name;
    char *value;
};

struct hs_upstream_stream {
    char *url;
    char *body; /* malloc'd (jansson's json_dumps or hs_malloc, both plain malloc) */
    size_t body_len;
    int idle_ms;
    CURL *easy;
    CURLM *multi;
    struct curl_slist *req_headers;
    char curl_errbuf[CURL_ERROR_SIZE];
    pthread_t thread;
    bool thread_started;

    /* Touched only by the transfer thread until `headers_done` is published
     * under mu; from then on the list is frozen (trailers are ignored), so
     * hs_upstream_header may read it without the transfer thread's help. */
    struct header *hdrs;
    int n_hdrs;
    bool frozen;
    bool header_oom;
    int64_t last_activity_ns;
    size_t bytes_in;

    pthread_mutex_t mu;
    pthread_cond_t readable; /* bytes, headers or the end arrived */
    pthread_cond_t writable; /* ring space freed, or cancel */
    /* under mu */
    char *ring;
    size_t ring_head, ring_len;
    int status;
    bool headers_done;
    bool done;
    bool cancel;
    int result;
    char msg[HS_ERR_MSG_MAX];
};

static pthread_once_t g_curl_once = PTHREAD_ONCE_INIT;
static CURLcode g_curl_init_rc = CURLE_FAILED_INIT;

/* curl_global_init is not thread-safe and must run once per process; it is
 * never undone (curl_global_cleanup at exit would race with late streams). */
static void curl_init_once(void)
{
    g_curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---------------------------------------------------------------------------
 * the upstream */

static bool has_ctl_or_space(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s <= ' ' || *s == 0x7f)
            return true;
    return false;
}

/* A header value may hold spaces but no CR, LF or other control byte, which
 * would let it inject further headers. */
static bool header_value_ok(const char *s)
{
    for (; *s; s++)
        if (((unsigned char)*s < ' ' && *s != '\t') || *s == 0x7f)
            return false;
    return true;
}

static int check_url(const char *url, hs_err *err)
{
    if (has_ctl_or_space(url))
        return hs_err_set(err, HS_EINVAL, "upstream url '%s': contains spaces or control characters", url);
    CURLU *h = curl_url();
    if (!h)
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    int rc = HS_OK;
    CURLUcode uc = curl_url_set(h, CURLUPART_URL, url, 0);
    char *scheme = NULL;
    if (uc != CURLUE_OK) {
#if LIBCURL_VERSION_NUM >= 0x075000 /* curl_url_strerror: 7.80 */
        rc = hs_err_set(err, HS_EINVAL, "upstream url '%s': %s", url, curl_url_strerror(uc));
#else
        rc = hs_err_set(err, HS_EINVAL, "upstream url '%s': malformed (curl URL error %d)", url, (int)uc);
#endif
    } else if (curl_url_get(h, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
               (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0)) {
        rc = hs_err_set(err, HS_EINVAL, "upstream url '%s': the scheme must be http or https", url);
    }
    curl_free(scheme);
    curl_url_cleanup(h);
    return rc;
}

int hs_upstream_create(const struct hs_upstream_params *p, hs_upstream **out, hs_err *err)
{
    if (!out)
        return hs_err_set(err, HS_EINVAL, "hs_upstream_create: out is NULL");
    *out = NULL;
    if (!p || !p->url || !p->url[0])
        return hs_err_set(err, HS_EINVAL, "upstream: url is required");
    pthread_once(&g_curl_once, curl_init_once);
    if (g_curl_init_rc != CURLE_OK)
        return hs_err_set(err, HS_EIO, "initialising libcurl: %s", curl_easy_strerror(g_curl_init_rc));
    int rc = check_url(p->url, err);
    if (rc)
        return rc;
    if (p->api_key && !header_value_ok(p->api_key))
        return hs_err_set(err, HS_EINVAL, "upstream '%s': api_key contains control characters", p->url);

    hs_upstream *u = hs_calloc(1, sizeof *u);
    if (!u)
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    const char *q = strchr(p->url, '?');
    size_t base_len = q ? (size_t)(q - p->url) : strlen(p->url);
    /* "http://h/v1/" and "http://h/v1" name the same base; never strip the
     * slashes of the scheme itself (check_url saw a host). */
    while (base_len > 0 && p->url[base_len - 1] == '/')
        base_len--;
    u->base = hs_strndup(p->url, base_len);
    u->query = q && q[1] ? hs_strdup(q + 1) : NULL;
    u->api_key = p->api_key && p->api_key[0] ? hs_strdup(p->api_key) : NULL;
    u->model = p->model && p->model[0] ? hs_strdup(p->model) : NULL;
    if (!u->base || (q && q[1] && !u->query) || (p->api_key && p->api_key[0] && !u->api_key) ||
        (p->model && p->model[0] && !u->model)) {
        hs_upstream_free(u);
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    }
    u->connect_ms = p->connect_timeout_ms > 0 ? p->connect_timeout_ms : DEFAULT_CONNECT_MS;
    u->total_ms = p->timeout_ms > 0 ? p->timeout_ms : DEFAULT_TOTAL_MS;
    u->idle_ms = p->idle_timeout_ms > 0 ? p->idle_timeout_ms : DEFAULT_IDLE_MS;
    *out = u;
    return HS_OK;
}

void hs_upstream_free(hs_upstream *u)
{
    if (!u)
        return;
    hs_free(u->base);
    hs_free(u->query);
    hs_free(u->api_key);
    hs_free(u->model);
    hs_free(u);
}

const char *hs_upstream_url(const hs_upstream *u)
{
    return u ? u->base : NULL;
}

/* ---------------------------------------------------------------------------
 * callbacks and the transfer thread */

static void deadline_after(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Waits on cv (mu held) until signalled or past the deadline; timeout_ms < 0
 * waits without limit. Returns false once the deadline has passed. */
static bool wait_cv(pthread_cond_t *cv, pthread_mutex_t *mu, int timeout_ms, const struct timespec *dl)
{
    if (timeout_ms < 0) {
        pthread_cond_wait(cv, mu);
        return true;
    }
    if (timeout_ms == 0)
        return false;
    return pthread_cond_timedwait(cv, mu, dl) != ETIMEDOUT;
}

static void free_headers(struct hs_upstream_stream *st)
{
    for (int i = 0; i < st->n_hdrs; i++) {
        hs_free(st->hdrs[i].name);
        hs_free(st->hdrs[i].value);
    }
    hs_free(st->hdrs);
    st->hdrs = NULL;
    st->n_hdrs = 0;
}

/* Publishes the status and freezes the header list (transfer thread only). */
static void publish_headers(struct hs_upstream_stream *st, long code)
{
    st->frozen = true;
    pthread_mutex_lock(&st->mu);
    st->status = (int)code;
    st->headers_done = true;
    pthread_cond_broadcast(&st->readable);
    pthread_mutex_unlock(&st->mu);
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* One call per header line, CRLF included. A status line starts a new
 * response (after a 100 Continue, say) and forgets the previous headers; the
 * blank line ends them. */
static size_t on_header(char *line, size_t size, size_t nitems, void *ud)
{
    struct hs_upstream_stream *st = ud;
    size_t n = size * nitems, len = n;
    st->last_activity_ns = hs_now_ns();
    if (st->frozen)
        return n; /* trailers: the list is already published */
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        len--;
    if (len >= 5 && !memcmp(line, "HTTP/", 5)) {
        free_headers(st);
        return n;
    }
    if (len == 0) {
        long code = 0;
        curl_easy_getinfo(st->easy, CURLINFO_RESPONSE_CODE, &code);
        if (code >= 100 && code < 200)
            return n; /* an interim response; the real one follows */
        publish_headers(st, code);
        return n;
    }
    if (is_ows(line[0]))
        return n; /* obsolete line folding: dropped */
    const char *colon = memchr(line, ':', len);
    if (!colon || colon == line || st->n_hdrs >= MAX_HEADERS)
        return n;
    size_t name_len = (size_t)(colon - line);
    const char *v = colon + 1, *end = line + len;
    while (v < end && is_ows(*v))
        v++;
    while (end > v && is_ows(end[-1]))
        end--;
    struct header *grown = hs_realloc_array(st->hdrs, (size_t)st->n_hdrs + 1, sizeof *grown);
    if (!grown) {
        st->header_oom = true;
        return 0; /* aborts the transfer */
    }
    st->hdrs = grown;
    struct header *h = &st->hdrs[st->n_hdrs];
    h->name = hs_strndup(line, name_len);
    h->value = hs_strndup(v, (size_t)(end - v));
    if (!h->name || !h->value) {
        hs_free(h->name);
        hs_free(h->value);
        st->header_oom = true;
        return 0;
    }
    st->n_hdrs++;
    return n;
}

/* Copies the body into the ring, waiting for room while it is full. Returning
 * less than n makes curl abort with CURLE_WRITE_ERROR: that is how a close
 * during the wait ends the transfer. */
static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct hs_upstream_stream *st = ud;
    size_t n = size * nmemb, put = 0;
    if (!st->frozen) {
        long code = 0;
        curl_easy_getinfo(st->easy, CURLINFO_RESPONSE_CODE, &code);
        publish_headers(st, code);
    }
    pthread_mutex_lock(&st->mu);
    while (put < n) {
        while (st->ring_len == RING_BYTES && !st->cancel)
            pthread_cond_wait(&st->writable, &st->mu);
        if (st->cancel)
            break;
        size_t tail = (st->ring_head + st->ring_len) % RING_BYTES;
        size_t k = n - put;
        if (k > RING_BYTES - st->ring_len)
            k = RING_BYTES - st->ring_len;
        if (k > RING_BYTES - tail)
            k = RING_BYTES - tail; /* up to the end of the ring; the loop wraps */
        memcpy(st->ring + tail, ptr + put, k);
        st->ring_len += k;
        put += k;
        pthread_cond_signal(&st->readable);
    }
    pthread_mutex_unlock(&st->mu);
    st->bytes_in += put;
    /* Time spent waiting for the reader is not the upstream's idleness. */
    st->last_activity_ns = hs_now_ns();
    return put;
}

static bool canceled(struct hs_upstream_stream *st)
{
    pthread_mutex_lock(&st->mu);
    bool c = st->cancel;
    pthread_mutex_unlock(&st->mu);
    return c;
}

static int curl_code_to_hs(CURLcode c)
{
    switch (c) {
    case CURLE_OPERATION_TIMEDOUT:
        return HS_ETIMEDOUT;
    case CURLE_OUT_OF_MEMORY:
        return HS_ENOMEM;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        return HS_EINVAL;
    default:
        return HS_EIO;
    }
}

/* The message of a curl failure: the verb says whether the response had
 * begun; curl's own text follows, then its error buffer when that says more
 * than the text and the URL do ("SSL certificate problem: ..."). */
static void describe_curl_error(struct hs_upstream_stream *st, CURLcode c, bool had_headers)
{
    const char *what = curl_easy_strerror(c);
    const char *detail = st->curl_errbuf;
    if (detail[0] && !strstr(detail, what))
        snprintf(st->msg, sizeof st->msg, "%s %s: %s (%s)", had_headers ? "reading from" : "connecting to",
                 st->url, what, detail);
    else
        snprintf(st->msg, sizeof st->msg, "%s %s: %s", had_headers ? "reading from" : "connecting to",
                 st->url, what);
}

static void *transfer_main(void *arg)
{
    struct hs_upstream_stream *st = arg;
    int64_t t0 = hs_now_ns();
    st->last_activity_ns = t0;
    int running = 1;
    bool idle_fired = false;
    CURLMcode mc = CURLM_OK;
    for (;;) {
        mc = curl_multi_perform(st->multi, &running);
        if (mc != CURLM_OK || !running || canceled(st))
            break;
        int64_t idle_left = st->idle_ms - (hs_now_ns() - st->last_activity_ns) / 1000000;
        if (idle_left <= 0) {
            idle_fired = true;
            break;
        }
        /* curl_multi_poll also wakes for curl's own timers (connect and total
         * timeouts) and for curl_multi_wakeup from hs_upstream_close. */
        int wait_ms = idle_left < POLL_MAX_MS ? (int)idle_left : POLL_MAX_MS;
        mc = curl_multi_poll(st->multi, NULL, 0, wait_ms, NULL);
        if (mc != CURLM_OK)
            break;
    }
    CURLcode res = CURLE_OK;
    if (mc == CURLM_OK && !running) {
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(st->multi, &left)))
            if (m->msg == CURLMSG_DONE)
                res = m->data.result;
    }
    long code = 0;
    curl_easy_getinfo(st->easy, CURLINFO_RESPONSE_CODE, &code);
    curl_multi_remove_handle(st->multi, st->easy);
    bool ok = false;

    pthread_mutex_lock(&st->mu);
    bool had_headers = st->headers_done;
    if (st->cancel) {
        st->result = HS_ECANCELED;
        snprintf(st->msg, sizeof st->msg, "request to %s canceled", st->url);
    } else if (idle_fired) {
        st->result = HS_ETIMEDOUT;
        snprintf(st->msg, sizeof st->msg, "%s %s: no data for %d ms",
                 had_headers ? "reading from" : "connecting to", st->url, st->idle_ms);
    } else if (mc != CURLM_OK) {
        st->result = HS_EIO;
        snprintf(st->msg, sizeof st->msg, "%s: %s", st->url, curl_multi_strerror(mc));
    } else if (st->header_oom) {
        st->result = HS_ENOMEM;
        snprintf(st->msg, sizeof st->msg, "%s: out of memory for the response headers", st->url);
    } else if (res != CURLE_OK) {
        st->result = curl_code_to_hs(res);
        describe_curl_error(st, res, had_headers);
    } else {
        st->result = HS_OK;
        ok = true;
        if (!st->headers_done) {
            /* A response without a blank line after its headers (no body, or
             * a server that closed early but cleanly): publish what came. */
            st->frozen = true;
            st->status = (int)code;
            st->headers_done = true;
        }
    }
    st->done = true;
    pthread_cond_broadcast(&st->readable);
    pthread_mutex_unlock(&st->mu);

    if (ok)
        hs_log_debug("upstream.done", "url=%s status=%ld bytes=%zu ms=%.1f", st->url, code, st->bytes_in,
                     (double)(hs_now_ns() - t0) / 1e6);
    else
        hs_log_debug("upstream.fail", "url=%s msg=\"%s\"", st->url, st->msg);
    return NULL;
}

/* ---------------------------------------------------------------------------
 * starting a stream */

static int build_url(const hs_upstream *u, const char *path, char **out, hs_err *err)
{
    hs_buf b = {0};
    int rc = hs_buf_puts(&b, u->base);
    while (*path == '/')
        path++;
    if (!rc && *path)
        rc = hs_buf_putc(&b, '/');
    if (!rc)
        rc = hs_buf_puts(&b, path);
    if (!rc && u->query)
        rc = hs_buf_printf(&b, "%s%s", strchr(path, '?') ? "&" : "?", u->query);
    if (rc) {
        hs_buf_free(&b);
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    }
    *out = hs_buf_steal(&b);
    return HS_OK;
}

/* The body to send: the client's bytes, or with "model" replaced when the
 * upstream has a remote name. Without a remote name the bytes pass through
 * untouched (the server has validated them). */
static int prepare_body(const hs_upstream *u, struct hs_upstream_stream *st, const char *body, size_t len,
                        hs_err *err)
{
    if (!u->model) {
        st->body = hs_malloc(len + 1);
        if (!st->body)
            return hs_err_set(err, HS_ENOMEM, "out of memory");
        if (len)
            memcpy(st->body, body, len);
        st->body[len] = '\0';
        st->body_len = len;
        return HS_OK;
    }
    json_error_t jerr;
    json_t *root = json_loadb(body, len, 0, &jerr);
    if (!root)
        return hs_err_set(err, HS_EINVAL, "request body for %s: invalid JSON at line %d column %d: %s",
                          st->url, jerr.line, jerr.column, jerr.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return hs_err_set(err, HS_EINVAL, "request body for %s: not a JSON object", st->url);
    }
    /* json_object_set_new steals the new string's reference. */
    if (json_object_set_new(root, "model", json_string(u->model)) != 0) {
        json_decref(root);
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    }
    st->body = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (!st->body)
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    st->body_len = strlen(st->body);
    return HS_OK;
}

static int add_header(struct curl_slist **list, const char *fmt, const char *value)
{
    char line[2048];
    int n = snprintf(line, sizeof line, fmt, value);
    if (n < 0 || (size_t)n >= sizeof line)
        return HS_EINVAL;
    struct curl_slist *grown = curl_slist_append(*list, line);
    if (!grown)
        return HS_ENOMEM;
    *list = grown;
    return HS_OK;
}

static void stream_destroy(struct hs_upstream_stream *st)
{
    if (st->multi && st->easy)
        curl_multi_remove_handle(st->multi, st->easy); /* no-op when already removed */
    if (st->easy)
        curl_easy_cleanup(st->easy);
    if (st->multi)
        curl_multi_cleanup(st->multi);
    curl_slist_free_all(st->req_headers);
    free_headers(st);
    pthread_cond_destroy(&st->readable);
    pthread_cond_destroy(&st->writable);
    pthread_mutex_destroy(&st->mu);
    hs_free(st->ring);
    free(st->body); /* json_dumps' result or hs_malloc: both the C heap */
    hs_free(st->url);
    hs_free(st);
}

static int setup_easy(const hs_upstream *u, struct hs_upstream_stream *st, bool post)
{
    CURL *e = st->easy;
    CURLcode c = CURLE_OK;
#define SET(opt, val)                                                                                        \
    do {                                                                                                     \
        if (c == CURLE_OK)                                                                                   \
            c = curl_easy_setopt(e, opt, val);                                                               \
    } while (0)
    SET(CURLOPT_URL, st->url);
#if LIBCURL_VERSION_NUM >= 0x075500 /* the long form is deprecated from 7.85 */
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
#else
    SET(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    SET(CURLOPT_NOSIGNAL, 1L); /* threads: no SIGALRM for DNS timeouts */
    SET(CURLOPT_HTTPHEADER, st->req_headers);
    SET(CURLOPT_USERAGENT, "hestia");
    SET(CURLOPT_CONNECTTIMEOUT_MS, (long)u->connect_ms);
    SET(CURLOPT_TIMEOUT_MS, (long)u->total_ms);
    SET(CURLOPT_TCP_KEEPALIVE, 1L);
    SET(CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L); /* a proxy's CONNECT reply is not the response */
    SET(CURLOPT_ERRORBUFFER, st->curl_errbuf);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, st);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, st);
    if (post) {
        SET(CURLOPT_POST, 1L);
        SET(CURLOPT_POSTFIELDS, st->body);
        SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)st->body_len);
    } else {
        SET(CURLOPT_HTTPGET, 1L);
    }
#undef SET
    return c == CURLE_OK ? HS_OK : HS_EINVAL;
}

static int stream_start(hs_upstream *u, bool post, const char *path, const char *body, size_t len,
                        const char *request_id, hs_upstream_stream **out, hs_err *err)
{
    if (!out)
        return hs_err_set(err, HS_EINVAL, "upstream: out is NULL");
    *out = NULL;
    if (!u || !path)
        return hs_err_set(err, HS_EINVAL, "upstream: upstream and path are required");
    if (post && !body && len)
        return hs_err_set(err, HS_EINVAL, "upstream: body is NULL");
    if (has_ctl_or_space(path))
        return hs_err_set(err, HS_EINVAL, "upstream path '%s': contains spaces or control characters", path);
    if (request_id && !header_value_ok(request_id))
        return hs_err_set(err, HS_EINVAL, "upstream: x-request-id contains control characters");

    struct hs_upstream_stream *st = hs_calloc(1, sizeof *st);
    if (!st)
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    st->idle_ms = u->idle_ms;
    pthread_mutex_init(&st->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* timed waits immune to clock steps */
    pthread_cond_init(&st->readable, &ca);
    pthread_cond_init(&st->writable, &ca);
    pthread_condattr_destroy(&ca);

    int rc = build_url(u, path, &st->url, err);
    if (!rc && post)
        rc = prepare_body(u, st, body ? body : "", len, err);
    if (rc) {
        stream_destroy(st);
        return rc;
    }
    /* "Expect:" turns off curl's Expect: 100-continue for larger bodies,
     * which costs a round trip (or a second's wait on servers that ignore it). */
    rc = add_header(&st->req_headers, "%s", "Expect:");
    if (!rc && post)
        rc = add_header(&st->req_headers, "%s", "Content-Type: application/json");
    if (!rc && u->api_key)
        rc = add_header(&st->req_headers, "Authorization: Bearer %s", u->api_key);
    if (!rc && request_id && request_id[0])
        rc = add_header(&st->req_headers, "x-request-id: %s", request_id);
    if (rc) {
        hs_err_set(err, rc, "%s: %s", st->url,
                   rc == HS_ENOMEM ? "out of memory" : "a request header is too long");
        stream_destroy(st);
        return rc;
    }
    st->ring = hs_malloc(RING_BYTES);
    st->easy = curl_easy_init();
    st->multi = curl_multi_init();
    if (!st->ring || !st->easy || !st->multi) {
        stream_destroy(st);
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    }
    if (setup_easy(u, st, post) != HS_OK || curl_multi_add_handle(st->multi, st->easy) != CURLM_OK) {
        rc = hs_err_set(err, HS_EINVAL, "%s: libcurl refused the request's options", st->url);
        stream_destroy(st);
        return rc;
    }
    int prc = pthread_create(&st->thread, NULL, transfer_main, st);
    if (prc != 0) {
        rc = hs_err_set(err, HS_EIO, "%s: starting the transfer thread: %s", st->url, strerror(prc));
        stream_destroy(st);
        return rc;
    }
    st->thread_started = true;
    *out = st;
    return HS_OK;
}

int hs_upstream_post(hs_upstream *u, const char *path, const char *body, size_t len, const char *request_id,
                     hs_upstream_stream **out, hs_err *err)
{
    return stream_start(u, true, path, body, len, request_id, out, err);
}

int hs_upstream_get(hs_upstream *u, const char *path, hs_upstream_stream **out, hs_err *err)
{
    return stream_start(u, false, path, NULL, 0, NULL, out, err);
}

/* ---------------------------------------------------------------------------
 * the reader's side */

int hs_upstream_status(hs_upstream_stream *st, int timeout_ms, hs_err *err)
{
    if (!st)
        return hs_err_set(err, HS_EINVAL, "hs_upstream_status: stream is NULL");
    struct timespec dl;
    if (timeout_ms > 0)
        deadline_after(&dl, timeout_ms);
    pthread_mutex_lock(&st->mu);
    while (!st->headers_done && !st->done)
        if (!wait_cv(&st->readable, &st->mu, timeout_ms, &dl))
            break;
    int rc;
    if (st->headers_done && st->status <= 0) /* 0 would read as "not yet" */
        rc = hs_err_set(err, HS_EIO, "%s: the response has no HTTP status", st->url);
    else if (st->headers_done)
        rc = st->status;
    else if (st->done)
        rc = hs_err_set(err, st->result, "%s", st->msg);
    else
        rc = 0;
    pthread_mutex_unlock(&st->mu);
    return rc;
}

const char *hs_upstream_header(hs_upstream_stream *st, const char *name)
{
    if (!st || !name)
        return NULL;
    pthread_mutex_lock(&st->mu);
    bool ready = st->headers_done;
    pthread_mutex_unlock(&st->mu);
    if (!ready)
        return NULL;
    /* Frozen once headers_done was published (see the struct). */
    for (int i = 0; i < st->n_hdrs; i++)
        if (!strcasecmp(st->hdrs[i].name, name))
            return st->hdrs[i].value;
    return NULL;
}

long hs_upstream_read(hs_upstream_stream *st, char *buf, size_t cap, int timeout_ms, hs_err *err)
{
    if (!st || !buf || !cap)
        return hs_err_set(err, HS_EINVAL, "hs_upstream_read: stream, buffer and capacity are required");
    struct timespec dl;
    if (timeout_ms > 0)
        deadline_after(&dl, timeout_ms);
    pthread_mutex_lock(&st->mu);
    while (st->ring_len == 0 && !st->done) {
        if (!wait_cv(&st->readable, &st->mu, timeout_ms, &dl)) {
            pthread_mutex_unlock(&st->mu);
            hs_err_clear(err); /* a wait that ran out, not a failure: err stays clear */
            return HS_ETIMEDOUT;
        }
    }
    if (st->ring_len > 0) {
        size_t k = st->ring_len < cap ? st->ring_len : cap;
        size_t first = RING_BYTES - st->ring_head;
        if (first > k)
            first = k;
        memcpy(buf, st->ring + st->ring_head, first);
        memcpy(buf + first, st->ring, k - first);
        st->ring_head = (st->ring_head + k) % RING_BYTES;
        st->ring_len -= k;
        pthread_cond_signal(&st->writable);
        pthread_mutex_unlock(&st->mu);
        return (long)k;
    }
    int result = st->result;
    if (result != HS_OK)
        hs_err_set(err, result, "%s", st->msg);
    pthread_mutex_unlock(&st->mu);
    return result;
}

void hs_upstream_cancel(hs_upstream_stream *st)
{
    if (!st || !st->thread_started)
        return;
    pthread_mutex_lock(&st->mu);
    st->cancel = true;
    pthread_cond_broadcast(&st->writable);
    pthread_mutex_unlock(&st->mu);
    /* The multi handle lives until hs_upstream_close has joined the thread,
     * so the wakeup always has a target; it is harmless once the transfer has
     * ended. The transfer thread then publishes `done`, waking the readers. */
    curl_multi_wakeup(st->multi);
}

void hs_upstream_close(hs_upstream_stream *st)
{
    if (!st)
        return;
    if (st->thread_started) {
        hs_upstream_cancel(st);
        pthread_join(st->thread, NULL);
    }
    stream_destroy(st);
}
