/* The sinks that POST over HTTP (libcurl): a Slack-compatible incoming
 * webhook, PagerDuty Events API v2 and a generic webhook. One request per
 * alert, on the sink's own thread; the verdict on the answer decides what the
 * shared retry loop (alert_sinks.c) does:
 *   2xx                      delivered
 *   408, 429, 5xx, no answer retried with backoff (Retry-After respected)
 *   other 4xx, 3xx           refused for good (retrying cannot help)
 * PagerDuty documents exactly this split for its Events API v2 (202
 * accepted; 400 do not retry; 429 and 5xx retry). Every request has a
 * connect and a total timeout, and gives up within POLL_MS once the
 * manager's shutdown deadline passes.
 *
 * URLs are never logged: a Slack webhook URL is itself the secret. */
#include "ops/alerts_impl.h"

#include "base/buf.h"
#include "base/mem.h"

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <string.h>

#define CONNECT_TIMEOUT_MS 5000
#define PD_SUMMARY_MAX 1024 /* PagerDuty: payload.summary is at most 1024 characters */
#define SNIPPET_MAX 200     /* bytes of an error answer kept for the log */
#define POLL_MS 50          /* how often a transfer looks at the shutdown deadline */

struct http_sink {
    enum hs_alert_sink_kind kind;
    char *url;
    char *routing_key;
    char *source;
    struct curl_slist *headers;
    int timeout_ms;
};

static pthread_once_t g_curl_once = PTHREAD_ONCE_INIT;
static CURLcode g_curl_rc = CURLE_FAILED_INIT;

/* curl_global_init must run once per process before any thread uses curl;
 * it is never undone (a cleanup at exit would race other curl users). */
static void curl_init_once(void)
{
    g_curl_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- bodies ------------------------------------------------------------------ */

/* jansson's text as an hs_ string (NULL stays NULL). Takes o. */
static char *dump(json_t *o)
{
    char *t = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    char *copy = t ? hs_strdup(t) : NULL;
    free(t);
    return copy;
}

/* Slack reads &, < and > in text as markup (links, mentions), so they are
 * escaped as its documentation asks; the rest is plain text. */
static void slack_escape(hs_buf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '&')
            hs_buf_puts(b, "&amp;");
        else if (*s == '<')
            hs_buf_puts(b, "&lt;");
        else if (*s == '>')
            hs_buf_puts(b, "&gt;");
        else
            hs_buf_putc(b, *s);
    }
}

/* {"text": "[CRITICAL] high_latency (hestia): <message>"} */
static char *slack_body(const struct http_sink *h, const struct hs_alert *al)
{
    static const char *const upper[] = {"INFO", "WARNING", "CRITICAL"};
    hs_buf t = {0};
    hs_buf_printf(&t, "[%s] ", upper[al->severity]);
    slack_escape(&t, al->type);
    hs_buf_puts(&t, " (");
    slack_escape(&t, h->source);
    hs_buf_puts(&t, "): ");
    slack_escape(&t, al->message);
    char *body = t.data ? dump(json_pack("{s:s}", "text", t.data)) : NULL;
    hs_buf_free(&t);
    return body;
}

/* At most max bytes of s, cut on a whole UTF-8 character. */
static char *utf8_prefix(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n > max) {
        n = max;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    return hs_strndup(s, n);
}

/* A trigger event (Events API v2). dedup_key is the alert type, so repeats
 * of a type update one open PagerDuty alert instead of paging again. */
static char *pagerduty_body(const struct http_sink *h, const struct hs_alert *al)
{
    char ts[40];
    hs_alert_iso_time(ts, sizeof ts, al->ts_ms);
    json_t *details = al->details ? json_loads(al->details, 0, NULL) : NULL;
    if (!json_is_object(details)) {
        json_decref(details);
        details = json_object();
    }
    char *summary = utf8_prefix(al->message, PD_SUMMARY_MAX);
    if (!summary) {
        json_decref(details);
        return NULL;
    }
    /* "o" steals details */
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:s, s:{s:s, s:s, s:s, s:s, s:s, s:o}}", "routing_key", h->routing_key,
                  "event_action", "trigger", "dedup_key", al->type, "client", "hestia", "payload", "summary",
                  summary, "source", h->source, "severity", hs_alert_severity_name(al->severity), "timestamp",
                  ts, "class", al->type, "custom_details", details);
    hs_free(summary);
    return dump(o);
}

static char *body_for(const struct http_sink *h, const struct hs_alert *al)
{
    switch (h->kind) {
    case HS_ALERT_SINK_SLACK:
        return slack_body(h, al);
    case HS_ALERT_SINK_PAGERDUTY:
        return pagerduty_body(h, al);
    default:
        return hs_alert_to_json(al, h->source);
    }
}

/* ---- the request ------------------------------------------------------------- */

struct answer {
    char head[SNIPPET_MAX + 1]; /* the first bytes of the body, for the log */
    size_t len;
};

static size_t on_body(char *p, size_t size, size_t n, void *user)
{
    struct answer *a = user;
    size_t bytes = size * n;
    for (size_t i = 0; i < bytes && a->len < SNIPPET_MAX; i++) {
        unsigned char c = (unsigned char)p[i];
        a->head[a->len++] = c < 0x20 || c == 0x7f ? ' ' : (char)c; /* one log line */
    }
    a->head[a->len] = '\0';
    return bytes; /* the rest is read and dropped */
}

/* Runs the transfer, looking every POLL_MS at whether the sink must give up
 * (its shutdown deadline passed), which curl_easy_perform's progress
 * callback would notice only about once a second. */
static CURLcode perform(hs_alert_sink *s, CURL *c)
{
    CURLM *m = curl_multi_init();
    if (!m)
        return CURLE_OUT_OF_MEMORY;
    if (curl_multi_add_handle(m, c) != CURLM_OK) {
        curl_multi_cleanup(m);
        return CURLE_OUT_OF_MEMORY;
    }
    CURLcode result = CURLE_OK;
    int running = 1;
    for (;;) {
        if (curl_multi_perform(m, &running) != CURLM_OK) {
            result = CURLE_OUT_OF_MEMORY;
            break;
        }
        if (!running) {
            int left;
            CURLMsg *msg = curl_multi_info_read(m, &left);
            result = msg && msg->msg == CURLMSG_DONE ? msg->data.result : CURLE_RECV_ERROR;
            break;
        }
        if (hs_alert_sink_should_abort(s)) {
            result = CURLE_ABORTED_BY_CALLBACK;
            break;
        }
        if (curl_multi_poll(m, NULL, 0, POLL_MS, NULL) != CURLM_OK) {
            result = CURLE_RECV_ERROR;
            break;
        }
    }
    curl_multi_remove_handle(m, c);
    curl_multi_cleanup(m);
    return result;
}

static int verdict(long status, const struct answer *ans, hs_err *err)
{
    if (status >= 200 && status < 300)
        return HS_OK;
    if (status == 408 || status == 429 || status >= 500)
        return hs_err_set(err, HS_EIO, "HTTP %ld: %s", status, ans->head);
    return hs_err_set(err, HS_EINVAL, "HTTP %ld (not retried): %s", status, ans->head);
}

static int http_deliver(hs_alert_sink *s, void *state, const struct hs_alert *al, int64_t *retry_after_ms,
                        hs_err *err)
{
    struct http_sink *h = state;
    char *body = body_for(h, al);
    if (!body)
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    CURL *c = curl_easy_init();
    if (!c) {
        hs_free(body);
        return hs_err_set(err, HS_ENOMEM, "cannot start an HTTP request");
    }
    struct answer ans = {{0}, 0};
    char cerr[CURL_ERROR_SIZE] = "";
    long connect_ms = h->timeout_ms < CONNECT_TIMEOUT_MS ? h->timeout_ms : CONNECT_TIMEOUT_MS;
    curl_easy_setopt(c, CURLOPT_URL, h->url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L); /* threads: no SIGALRM for DNS timeouts */
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h->headers);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "hestia-alerts");
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)h->timeout_ms);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &ans);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
    CURLcode cc = perform(s, c);
    int rc;
    if (cc == CURLE_OK) {
        long status = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        rc = verdict(status, &ans, err);
        curl_off_t after = 0;
        if (rc != HS_OK && curl_easy_getinfo(c, CURLINFO_RETRY_AFTER, &after) == CURLE_OK && after > 0)
            *retry_after_ms = after > 86400 ? 86400000 : (int64_t)after * 1000;
    } else {
        const char *why = cerr[0] ? cerr : curl_easy_strerror(cc);
        if (cc == CURLE_OPERATION_TIMEDOUT)
            rc = hs_err_set(err, HS_ETIMEDOUT, "no answer within %d ms: %s", h->timeout_ms, why);
        else if (cc == CURLE_ABORTED_BY_CALLBACK)
            rc = hs_err_set(err, HS_ECANCELED, "cut short: shutting down");
        else if (cc == CURLE_URL_MALFORMAT || cc == CURLE_UNSUPPORTED_PROTOCOL)
            rc = hs_err_set(err, HS_EINVAL, "%s", why);
        else
            rc = hs_err_set(err, HS_EIO, "%s", why);
    }
    curl_easy_cleanup(c);
    hs_free(body);
    return rc;
}

static void http_destroy(void *state)
{
    struct http_sink *h = state;
    if (!h)
        return;
    hs_free(h->url);
    hs_free(h->routing_key);
    hs_free(h->source);
    curl_slist_free_all(h->headers);
    hs_free(h);
}

static const struct hs_alert_sink_ops k_http_ops = {http_deliver, http_destroy};

static int add_header(struct curl_slist **list, const char *line)
{
    struct curl_slist *n = curl_slist_append(*list, line);
    if (!n)
        return HS_ENOMEM;
    *list = n;
    return HS_OK;
}

int hs_alert_sink_http_new(const struct hs_alert_sink_config *c, const char *source,
                           const struct hs_alert_sink_ops **ops, void **state, hs_err *err)
{
    pthread_once(&g_curl_once, curl_init_once);
    if (g_curl_rc != CURLE_OK)
        return hs_err_set(err, HS_EIO, "libcurl failed to start: %s", curl_easy_strerror(g_curl_rc));
    const char *url = c->url;
    if (c->kind == HS_ALERT_SINK_PAGERDUTY && !url)
        url = HS_ALERT_PAGERDUTY_URL;
    if (!url || !url[0])
        return hs_err_set(err, HS_EINVAL, "a %s sink needs a url", hs_alert_sink_kind_name(c->kind));
    if (c->kind == HS_ALERT_SINK_PAGERDUTY && (!c->routing_key || !c->routing_key[0]))
        return hs_err_set(err, HS_EINVAL, "a pagerduty sink needs a routing_key");
    struct http_sink *h = hs_calloc(1, sizeof *h);
    if (!h)
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    h->kind = c->kind;
    h->timeout_ms = c->timeout_ms > 0 ? c->timeout_ms : HS_ALERT_TIMEOUT_DEFAULT;
    h->url = hs_strdup(url);
    h->source = hs_strdup(source);
    h->routing_key = c->routing_key ? hs_strdup(c->routing_key) : NULL;
    /* An empty Expect: stops curl from waiting for "100 Continue" on bodies
       over 1 KiB, which some receivers never send. */
    int rc = !h->url || !h->source || (c->routing_key && !h->routing_key) ? HS_ENOMEM : HS_OK;
    if (!rc)
        rc = add_header(&h->headers, "Content-Type: application/json");
    if (!rc)
        rc = add_header(&h->headers, "Expect:");
    for (int i = 0; !rc && i < c->n_headers; i++) {
        hs_buf line = {0};
        rc = hs_buf_printf(&line, "%s: %s", c->headers[i].name, c->headers[i].value);
        if (!rc)
            rc = add_header(&h->headers, line.data);
        hs_buf_free(&line);
    }
    if (rc) {
        http_destroy(h);
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    }
    *ops = &k_http_ops;
    *state = h;
    return HS_OK;
}
