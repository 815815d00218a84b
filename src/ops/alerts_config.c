/* The alerts configuration: defaults, checks, and the `alerts:` section of a
 * YAML document (libfyaml's document API), laid out in alerts.h.
 *
 * Messages follow the server's configuration: "FILE:LINE: alerts.KEY.PATH:
 * what is wrong", with the line of the offending key or value, and keys
 * nobody knows are errors (a misspelt sink setting must not be ignored).
 *
 * The server's configuration reader (server/config.c) learned, by fuzzing,
 * to keep some inputs away from libfyaml 0.7.12: text that is not printable
 * UTF-8 (it can loop forever), explicit keys "? k" (it can crash) and
 * single-quoted scalars with '' inside (it reads them wrong). This reader
 * sits a layer below and cannot call that code, so it applies the same
 * three guards itself. Aliases are refused, as there. */
#include "ops/alerts_impl.h"

#include "base/mem.h"
#include "base/parse.h"

#include <curl/curl.h>
#include <libfyaml.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <utf8proc.h>

#define THROTTLE_S_MAX 2592000 /* 30 days */
#define RETRY_INITIAL_MS_MAX 3600000
#define RETRY_MAX_MS_MAX 86400000
#define FLUSH_TIMEOUT_MS_MAX 600000
#define SINK_TIMEOUT_MS_MAX 600000
#define SINK_QUEUE_MAX 100000
#define SOURCE_MAX 255
#define NAME_MAX_LEN 63 /* fits hs_alert_sink_stats.name */

/* ---- defaults, freeing ---------------------------------------------------------- */

void hs_alerts_config_default(struct hs_alerts_config *c)
{
    memset(c, 0, sizeof *c);
    c->throttle_s = 3600;
    c->retry_initial_ms = 1000;
    c->retry_max_ms = 300000;
    c->flush_timeout_ms = 5000;
    c->tick_ms = 1000;
}

static void sink_free(struct hs_alert_sink_config *s)
{
    hs_free(s->name);
    hs_free(s->url);
    hs_free(s->routing_key);
    hs_free(s->path);
    for (int i = 0; i < s->n_headers; i++) {
        hs_free(s->headers[i].name);
        hs_free(s->headers[i].value);
    }
    hs_free(s->headers);
    memset(s, 0, sizeof *s);
}

static void sinks_free(struct hs_alert_sink_config *s, int n)
{
    for (int i = 0; i < n; i++)
        sink_free(&s[i]);
    hs_free(s);
}

static void throttles_free(struct hs_alert_throttle *t, int n)
{
    for (int i = 0; i < n; i++)
        hs_free(t[i].type);
    hs_free(t);
}

void hs_alerts_config_free(struct hs_alerts_config *c)
{
    if (!c)
        return;
    throttles_free(c->throttles, c->n_throttles);
    sinks_free(c->sinks, c->n_sinks);
    hs_free(c->source);
    memset(c, 0, sizeof *c);
}

/* ---- checks ------------------------------------------------------------------- */

static bool has_ctl(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

/* http:// or https:// with a host, as libcurl parses it. */
static bool url_ok(const char *url)
{
    if (!url || has_ctl(url) || strchr(url, ' '))
        return false;
    CURLU *u = curl_url();
    if (!u)
        return false;
    char *scheme = NULL, *host = NULL;
    bool ok = curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
              curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
              curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK && host && host[0] &&
              (!strcmp(scheme, "http") || !strcmp(scheme, "https"));
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return ok;
}

/* An HTTP header name is a token (RFC 9110, section 5.6.2). */
static bool header_name_ok(const char *s)
{
    if (!s || !s[0])
        return false;
    for (; *s; s++) {
        char c = *s;
        bool tchar = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                     (c && strchr("!#$%&'*+-.^_`|~", c));
        if (!tchar)
            return false;
    }
    return true;
}

/* A header value may hold spaces and tabs, never CR, LF or another control
 * byte, which would let it add headers of its own. */
static bool header_value_ok(const char *s)
{
    if (!s || !s[0])
        return false;
    for (; *s; s++)
        if (((unsigned char)*s < 0x20 && *s != '\t') || *s == 0x7f)
            return false;
    return true;
}

/* What is wrong with one sink, in msg (empty when nothing is). The path
 * prefix is the caller's. */
static void sink_problem(const struct hs_alert_sink_config *s, char *msg, size_t cap)
{
    msg[0] = '\0';
    const char *kind = hs_alert_sink_kind_name(s->kind);
    if ((int)s->kind < HS_ALERT_SINK_JSONL || s->kind > HS_ALERT_SINK_WEBHOOK) {
        snprintf(msg, cap, "kind must be jsonl, slack, pagerduty or webhook");
    } else if (s->name && (!s->name[0] || strlen(s->name) > NAME_MAX_LEN || has_ctl(s->name))) {
        snprintf(msg, cap, "name must be 1..%d printable characters", NAME_MAX_LEN);
    } else if (s->kind == HS_ALERT_SINK_JSONL) {
        if (!s->path || !s->path[0])
            snprintf(msg, cap, "a jsonl sink needs a path");
        else if (s->url || s->routing_key || s->n_headers)
            snprintf(msg, cap, "a jsonl sink takes a path, not a url, routing_key or headers");
    } else {
        if (s->path)
            snprintf(msg, cap, "a %s sink posts to a url; path is for jsonl sinks", kind);
        else if (s->kind != HS_ALERT_SINK_PAGERDUTY && !s->url)
            snprintf(msg, cap, "a %s sink needs a url", kind);
        else if (s->url && !url_ok(s->url))
            snprintf(msg, cap, "url must be an http:// or https:// URL with a host, without spaces");
        else if (s->kind == HS_ALERT_SINK_PAGERDUTY && (!s->routing_key || !s->routing_key[0]))
            snprintf(msg, cap, "a pagerduty sink needs a routing_key (the integration key)");
        else if (s->kind != HS_ALERT_SINK_PAGERDUTY && s->routing_key)
            snprintf(msg, cap, "routing_key is for pagerduty sinks");
        else if (s->routing_key && has_ctl(s->routing_key))
            snprintf(msg, cap, "routing_key holds control characters");
    }
    for (int i = 0; !msg[0] && i < s->n_headers; i++) {
        const struct hs_alert_header *h = &s->headers[i];
        if (!header_name_ok(h->name))
            snprintf(msg, cap, "header name '%.40s' is not an HTTP token", h->name ? h->name : "");
        else if (!strcasecmp(h->name, "Content-Type") || !strcasecmp(h->name, "Content-Length"))
            snprintf(msg, cap, "header %s is set by hestia", h->name);
        else if (!header_value_ok(h->value))
            snprintf(msg, cap, "header %s: the value must be non-empty, without control characters", h->name);
    }
    if (msg[0])
        return;
    if ((int)s->min_severity < HS_ALERT_INFO || s->min_severity > HS_ALERT_CRITICAL)
        snprintf(msg, cap, "min_severity must be info, warning or critical");
    else if (s->timeout_ms < 0 || s->timeout_ms > SINK_TIMEOUT_MS_MAX)
        snprintf(msg, cap, "timeout_ms must be in 1..%d (0 = the default)", SINK_TIMEOUT_MS_MAX);
    else if (s->queue < 0 || s->queue > SINK_QUEUE_MAX)
        snprintf(msg, cap, "queue must be in 1..%d (0 = the default)", SINK_QUEUE_MAX);
}

static const char *sink_name(const struct hs_alert_sink_config *s)
{
    return s->name ? s->name : hs_alert_sink_kind_name(s->kind);
}

int hs_alerts_config_check(const struct hs_alerts_config *c, hs_err *err)
{
    if (c->throttle_s < 0 || c->throttle_s > THROTTLE_S_MAX)
        return hs_err_set(err, HS_EINVAL, "alerts.throttle_s must be in 0..%d (got %d)", THROTTLE_S_MAX,
                          c->throttle_s);
    for (int i = 0; i < c->n_throttles; i++) {
        const struct hs_alert_throttle *t = &c->throttles[i];
        if (!hs_alert_type_ok(t->type))
            return hs_err_set(err, HS_EINVAL,
                              "alerts.throttle: '%.80s' is not an alert type ([a-z0-9_.-], 1..%d)",
                              t->type ? t->type : "", HS_ALERT_TYPE_MAX);
        if (t->seconds < 0 || t->seconds > THROTTLE_S_MAX)
            return hs_err_set(err, HS_EINVAL, "alerts.throttle.%s must be in 0..%d (got %d)", t->type,
                              THROTTLE_S_MAX, t->seconds);
        for (int j = 0; j < i; j++)
            if (!strcmp(c->throttles[j].type, t->type))
                return hs_err_set(err, HS_EINVAL, "alerts.throttle: '%s' is given twice", t->type);
    }
    if (c->retry_initial_ms < 1 || c->retry_initial_ms > RETRY_INITIAL_MS_MAX)
        return hs_err_set(err, HS_EINVAL, "alerts.retry_initial_ms must be in 1..%d (got %d)",
                          RETRY_INITIAL_MS_MAX, c->retry_initial_ms);
    if (c->retry_max_ms < c->retry_initial_ms || c->retry_max_ms > RETRY_MAX_MS_MAX)
        return hs_err_set(err, HS_EINVAL, "alerts.retry_max_ms must be in retry_initial_ms (%d)..%d (got %d)",
                          c->retry_initial_ms, RETRY_MAX_MS_MAX, c->retry_max_ms);
    if (c->flush_timeout_ms < 0 || c->flush_timeout_ms > FLUSH_TIMEOUT_MS_MAX)
        return hs_err_set(err, HS_EINVAL, "alerts.flush_timeout_ms must be in 0..%d (got %d)",
                          FLUSH_TIMEOUT_MS_MAX, c->flush_timeout_ms);
    if (c->source && (!c->source[0] || strlen(c->source) > SOURCE_MAX || has_ctl(c->source)))
        return hs_err_set(err, HS_EINVAL, "alerts.source must be 1..%d printable characters", SOURCE_MAX);
    for (int i = 0; i < c->n_sinks; i++) {
        char msg[200];
        sink_problem(&c->sinks[i], msg, sizeof msg);
        if (msg[0])
            return hs_err_set(err, HS_EINVAL, "alerts.sinks[%d]: %s", i, msg);
        for (int j = 0; j < i; j++)
            if (!strcmp(sink_name(&c->sinks[i]), sink_name(&c->sinks[j])))
                return hs_err_set(err, HS_EINVAL,
                                  "alerts.sinks[%d]: the name '%s' is taken by sinks[%d]; give each a name",
                                  i, sink_name(&c->sinks[i]), j);
        if (!strcmp(sink_name(&c->sinks[i]), "store"))
            return hs_err_set(err, HS_EINVAL,
                              "alerts.sinks[%d]: the name 'store' belongs to the store's sink", i);
    }
    return HS_OK;
}

/* ---- the YAML walk ---------------------------------------------------------------- */

struct walk {
    const char *name; /* file name for messages */
    hs_err *err;
    const char *text;
    size_t len;
};

static int fail(struct walk *w, int line, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(struct walk *w, int line, const char *path, const char *fmt, ...)
{
    char msg[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (line > 0)
        return hs_err_set(w->err, HS_EINVAL, "%s:%d: %s: %s", w->name, line, path, msg);
    return hs_err_set(w->err, HS_EINVAL, "%s: %s: %s", w->name, path, msg);
}

/* 1-based line of a scalar node; 0 for a collection (callers use its key's). */
static int node_line(struct fy_node *n)
{
    if (!n || !fy_node_is_scalar(n))
        return 0;
    struct fy_token *t = fy_node_get_scalar_token(n);
    const struct fy_mark *m = t ? fy_token_start_mark(t) : NULL;
    return m ? m->line + 1 : 0;
}

static int line_or(struct fy_node *n, int dflt)
{
    int l = node_line(n);
    return l ? l : dflt;
}

static bool plain_null(struct fy_node *v)
{
    if (!v)
        return true;
    if (!fy_node_is_scalar(v) || fy_node_get_style(v) != FYNS_PLAIN)
        return false;
    size_t len;
    const char *s = fy_node_get_scalar(v, &len);
    if (!s || len == 0)
        return true;
    return (len == 1 && s[0] == '~') ||
           (len == 4 && (!memcmp(s, "null", 4) || !memcmp(s, "Null", 4) || !memcmp(s, "NULL", 4)));
}

/* The text of a scalar; single-quoted ones with '' inside are refused (see
 * the top of the file), judged on the raw source between the quotes. */
static int scalar(struct walk *w, struct fy_node *n, const char *path, int line, const char **s, size_t *len)
{
    if (!n || fy_node_is_alias(n))
        return fail(w, line, path, "YAML aliases are not supported; write the value out");
    if (!fy_node_is_scalar(n))
        return fail(w, line, path, "expected a single value");
    if (fy_node_get_style(n) == FYNS_SINGLE_QUOTED) {
        struct fy_token *t = fy_node_get_scalar_token(n);
        const struct fy_mark *a = t ? fy_token_start_mark(t) : NULL;
        const struct fy_mark *b = t ? fy_token_end_mark(t) : NULL;
        if (!a || !b || a->input_pos >= b->input_pos || b->input_pos > w->len)
            return fail(w, line, path, "unreadable quoted string");
        size_t rlen = b->input_pos - a->input_pos;
        rlen = rlen >= 2 ? rlen - 2 : 0;
        if (memmem(w->text + a->input_pos + 1, rlen, "''", 2))
            return fail(w, line, path,
                        "a single-quoted string with '' inside is not supported; use double quotes");
    }
    *s = fy_node_get_scalar(n, len);
    if (!*s)
        return fail(w, line, path, "unreadable value");
    return HS_OK;
}

/* A string (NULL for null); replaces *out. */
static int get_str(struct walk *w, struct fy_node *v, const char *path, int line, char **out)
{
    if (plain_null(v)) {
        hs_free(*out);
        *out = NULL;
        return HS_OK;
    }
    const char *s;
    size_t len;
    int rc = scalar(w, v, path, line, &s, &len);
    if (rc)
        return rc;
    if (memchr(s, 0, len))
        return fail(w, line, path, "expected a string without NUL bytes");
    char *copy = hs_strndup(s, len);
    if (!copy)
        return hs_err_set(w->err, HS_ENOMEM, "out of memory");
    hs_free(*out);
    *out = copy;
    return HS_OK;
}

/* A plain whole number in [min, max]. */
static int get_int(struct walk *w, struct fy_node *v, const char *path, int line, int min, int max, int *out)
{
    char buf[32];
    size_t len = 0;
    const char *s =
        v && fy_node_is_scalar(v) && fy_node_get_style(v) == FYNS_PLAIN ? fy_node_get_scalar(v, &len) : NULL;
    int64_t x;
    if (!s || len == 0 || len >= sizeof buf)
        return fail(w, line, path, "expected a whole number in %d..%d", min, max);
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (hs_parse_i64(buf, min, max, &x) != HS_OK)
        return fail(w, line, path, "expected a whole number in %d..%d", min, max);
    *out = (int)x;
    return HS_OK;
}

/* Iterates a mapping's pairs: *key gets the key's text (NUL-terminated in
 * kbuf), *line its line. Returns 1 for a pair, 0 at the end, < 0 on error. */
static int next_pair(struct walk *w, struct fy_node *map, void **it, const char *path, int line, char *kbuf,
                     size_t cap, struct fy_node **value, int *kline)
{
    struct fy_node_pair *p = fy_node_mapping_iterate(map, it);
    if (!p)
        return 0;
    struct fy_node *k = fy_node_pair_key(p);
    *value = fy_node_pair_value(p);
    *kline = line_or(k, line);
    const char *ks;
    size_t klen;
    if (!k || !fy_node_is_scalar(k) || fy_node_is_alias(k))
        return fail(w, *kline, path, "keys must be plain words");
    int rc = scalar(w, k, path, *kline, &ks, &klen);
    if (rc)
        return rc;
    if (klen >= cap || memchr(ks, 0, klen))
        return fail(w, *kline, path, "key '%.40s...' is too long", ks);
    memcpy(kbuf, ks, klen);
    kbuf[klen] = '\0';
    if (*value && fy_node_is_alias(*value)) {
        char sub[320];
        snprintf(sub, sizeof sub, "%.200s.%.64s", path, kbuf);
        return fail(w, *kline, sub, "YAML aliases are not supported; write the value out");
    }
    return 1;
}

static int parse_severity(struct walk *w, struct fy_node *v, const char *path, int line,
                          enum hs_alert_severity *out)
{
    char *s = NULL;
    int rc = get_str(w, v, path, line_or(v, line), &s);
    if (!rc && hs_alert_severity_parse(s, out) != HS_OK)
        rc = fail(w, line_or(v, line), path, "expected info, warning or critical");
    hs_free(s);
    return rc;
}

static int parse_headers(struct walk *w, struct fy_node *map, struct hs_alert_sink_config *s,
                         const char *path, int line)
{
    if (plain_null(map))
        return HS_OK;
    if (!fy_node_is_mapping(map))
        return fail(w, line, path, "expected a mapping of header names to values");
    int n = fy_node_mapping_item_count(map);
    struct hs_alert_header *hs = n > 0 ? hs_calloc((size_t)n, sizeof *hs) : NULL;
    if (n > 0 && !hs)
        return hs_err_set(w->err, HS_ENOMEM, "out of memory");
    int got = 0, rc = HS_OK;
    void *it = NULL;
    char key[256];
    struct fy_node *v;
    int kline;
    while (got < n && (rc = next_pair(w, map, &it, path, line, key, sizeof key, &v, &kline)) == 1) {
        char sub[320];
        snprintf(sub, sizeof sub, "%.200s.%.64s", path, key);
        hs[got].name = hs_strdup(key);
        if (!hs[got].name) {
            rc = hs_err_set(w->err, HS_ENOMEM, "out of memory");
            break;
        }
        got++;
        rc = get_str(w, v, sub, line_or(v, kline), &hs[got - 1].value);
        if (rc)
            break;
        if (!header_name_ok(key))
            rc = fail(w, kline, sub, "a header name is a token: letters, digits and !#$%%&'*+-.^_`|~");
        else if (!header_value_ok(hs[got - 1].value))
            rc = fail(w, line_or(v, kline), sub, "expected a non-empty value without control characters");
        else if (!strcasecmp(key, "Content-Type") || !strcasecmp(key, "Content-Length"))
            rc = fail(w, kline, sub, "hestia sets this header itself");
        if (rc)
            break;
    }
    if (rc < 0) {
        for (int i = 0; i < got; i++) {
            hs_free(hs[i].name);
            hs_free(hs[i].value);
        }
        hs_free(hs);
        return rc;
    }
    for (int i = 0; i < s->n_headers; i++) {
        hs_free(s->headers[i].name);
        hs_free(s->headers[i].value);
    }
    hs_free(s->headers);
    s->headers = hs;
    s->n_headers = got;
    return HS_OK;
}

static int parse_kind(struct walk *w, struct fy_node *v, const char *path, int line,
                      enum hs_alert_sink_kind *out)
{
    static const enum hs_alert_sink_kind all[] = {HS_ALERT_SINK_JSONL, HS_ALERT_SINK_SLACK,
                                                  HS_ALERT_SINK_PAGERDUTY, HS_ALERT_SINK_WEBHOOK};
    char *s = NULL;
    int rc = get_str(w, v, path, line, &s);
    if (rc)
        return rc;
    bool found = false;
    for (size_t i = 0; s && !found && i < sizeof all / sizeof all[0]; i++)
        if (!strcmp(s, hs_alert_sink_kind_name(all[i]))) {
            *out = all[i];
            found = true;
        }
    hs_free(s);
    return found ? HS_OK : fail(w, line, path, "expected jsonl, slack, pagerduty or webhook");
}

static int parse_sink(struct walk *w, struct fy_node *map, struct hs_alert_sink_config *s, const char *path,
                      int line)
{
    static const char known[] =
        "kind, name, url, routing_key, path, headers, min_severity, timeout_ms, queue";
    void *it = NULL;
    char key[64];
    struct fy_node *v;
    int kline, rc;
    bool have_kind = false;
    while ((rc = next_pair(w, map, &it, path, line, key, sizeof key, &v, &kline)) == 1) {
        char sub[240];
        snprintf(sub, sizeof sub, "%.160s.%s", path, key);
        int vline = line_or(v, kline);
        if (!strcmp(key, "kind")) {
            rc = parse_kind(w, v, sub, vline, &s->kind);
            have_kind = true;
        } else if (!strcmp(key, "name")) {
            rc = get_str(w, v, sub, vline, &s->name);
        } else if (!strcmp(key, "url")) {
            rc = get_str(w, v, sub, vline, &s->url);
        } else if (!strcmp(key, "routing_key")) {
            rc = get_str(w, v, sub, vline, &s->routing_key);
        } else if (!strcmp(key, "path")) {
            rc = get_str(w, v, sub, vline, &s->path);
        } else if (!strcmp(key, "headers")) {
            rc = parse_headers(w, v, s, sub, kline);
        } else if (!strcmp(key, "min_severity")) {
            rc = parse_severity(w, v, sub, vline, &s->min_severity);
        } else if (!strcmp(key, "timeout_ms")) {
            rc = get_int(w, v, sub, vline, 1, SINK_TIMEOUT_MS_MAX, &s->timeout_ms);
        } else if (!strcmp(key, "queue")) {
            rc = get_int(w, v, sub, vline, 1, SINK_QUEUE_MAX, &s->queue);
        } else {
            rc = fail(w, kline, sub, "unknown key (known here: %s)", known);
        }
        if (rc)
            return rc;
    }
    if (rc < 0)
        return rc;
    if (!have_kind)
        return fail(w, line, path, "a sink needs a kind (jsonl, slack, pagerduty or webhook)");
    char msg[200];
    sink_problem(s, msg, sizeof msg);
    return msg[0] ? fail(w, line, path, "%s", msg) : HS_OK;
}

/* The line of a list item: its first key's. */
static int item_line(struct fy_node *item, int dflt)
{
    if (item && fy_node_is_mapping(item) && fy_node_mapping_item_count(item) > 0) {
        void *it = NULL;
        struct fy_node_pair *p = fy_node_mapping_iterate(item, &it);
        return line_or(p ? fy_node_pair_key(p) : NULL, dflt);
    }
    return line_or(item, dflt);
}

static int parse_sinks(struct walk *w, struct fy_node *seq, struct hs_alerts_config *t, const char *path,
                       int line)
{
    if (plain_null(seq))
        return HS_OK; /* "sinks:" with nothing: none */
    if (!fy_node_is_sequence(seq))
        return fail(w, line, path, "expected a list of sinks (lines starting with '-')");
    int n = fy_node_sequence_item_count(seq);
    struct hs_alert_sink_config *sinks = n > 0 ? hs_calloc((size_t)n, sizeof *sinks) : NULL;
    if (n > 0 && !sinks)
        return hs_err_set(w->err, HS_ENOMEM, "out of memory");
    int rc = HS_OK, i = 0, prev = line;
    void *it = NULL;
    struct fy_node *item;
    while (i < n && (item = fy_node_sequence_iterate(seq, &it))) {
        char sub[200];
        snprintf(sub, sizeof sub, "%.160s[%d]", path, i);
        int l = item_line(item, prev);
        prev = l;
        if (fy_node_is_alias(item) || !fy_node_is_mapping(item)) {
            rc = fail(w, l, sub, "expected a mapping (kind: ..., url: ... or path: ...)");
            break;
        }
        rc = parse_sink(w, item, &sinks[i], sub, l);
        i++;
        for (int j = 0; !rc && j < i - 1; j++)
            if (!strcmp(sink_name(&sinks[j]), sink_name(&sinks[i - 1])))
                rc = fail(w, l, sub, "the name '%s' is taken by %.160s[%d]; give each sink a name",
                          sink_name(&sinks[i - 1]), path, j);
        if (!rc && !strcmp(sink_name(&sinks[i - 1]), "store"))
            rc = fail(w, l, sub, "the name 'store' belongs to the store's own sink");
        if (rc)
            break;
    }
    if (rc) {
        sinks_free(sinks, n);
        return rc;
    }
    t->sinks = sinks;
    t->n_sinks = i;
    return HS_OK;
}

static int parse_throttle(struct walk *w, struct fy_node *map, struct hs_alerts_config *t, const char *path,
                          int line)
{
    if (plain_null(map))
        return HS_OK;
    if (!fy_node_is_mapping(map))
        return fail(w, line, path, "expected a mapping of alert types to seconds (high_latency: 600)");
    int n = fy_node_mapping_item_count(map);
    struct hs_alert_throttle *ts = n > 0 ? hs_calloc((size_t)n, sizeof *ts) : NULL;
    if (n > 0 && !ts)
        return hs_err_set(w->err, HS_ENOMEM, "out of memory");
    int got = 0, rc = HS_OK;
    void *it = NULL;
    char key[HS_ALERT_TYPE_MAX + 2];
    struct fy_node *v;
    int kline;
    while (got < n && (rc = next_pair(w, map, &it, path, line, key, sizeof key, &v, &kline)) == 1) {
        char sub[240];
        snprintf(sub, sizeof sub, "%.160s.%s", path, key);
        rc = HS_OK;
        if (!hs_alert_type_ok(key))
            rc = fail(w, kline, sub, "an alert type is 1..%d of a-z 0-9 _ . -", HS_ALERT_TYPE_MAX);
        for (int j = 0; !rc && j < got; j++)
            if (!strcmp(ts[j].type, key))
                rc = fail(w, kline, sub, "given twice");
        if (!rc)
            rc = get_int(w, v, sub, line_or(v, kline), 0, THROTTLE_S_MAX, &ts[got].seconds);
        if (!rc && !(ts[got].type = hs_strdup(key)))
            rc = hs_err_set(w->err, HS_ENOMEM, "out of memory");
        if (rc)
            break;
        got++;
    }
    if (rc < 0) {
        throttles_free(ts, got);
        return rc;
    }
    t->throttles = ts;
    t->n_throttles = got;
    return HS_OK;
}

/* What the section sets; lists and the source replace c's only when given. */
struct pending {
    struct hs_alerts_config t;
    bool throttles_set, sinks_set, source_set;
};

static int parse_section(struct walk *w, struct fy_node *map, struct pending *p, int line)
{
    static const char known[] =
        "throttle_s, throttle, retry_initial_ms, retry_max_ms, flush_timeout_ms, source, sinks";
    if (plain_null(map))
        return HS_OK;
    if (fy_node_is_alias(map) || !fy_node_is_mapping(map))
        return fail(w, line_or(map, line), "alerts", "expected a mapping (throttle_s:, sinks:, ...)");
    void *it = NULL;
    char key[64];
    struct fy_node *v;
    int kline, rc;
    while ((rc = next_pair(w, map, &it, "alerts", line, key, sizeof key, &v, &kline)) == 1) {
        char sub[96];
        snprintf(sub, sizeof sub, "alerts.%s", key);
        int vline = line_or(v, kline);
        struct hs_alerts_config *t = &p->t;
        if (!strcmp(key, "throttle_s")) {
            rc = get_int(w, v, sub, vline, 0, THROTTLE_S_MAX, &t->throttle_s);
        } else if (!strcmp(key, "throttle")) {
            throttles_free(t->throttles, t->n_throttles);
            t->throttles = NULL;
            t->n_throttles = 0;
            rc = parse_throttle(w, v, t, sub, kline);
            p->throttles_set = true;
        } else if (!strcmp(key, "retry_initial_ms")) {
            rc = get_int(w, v, sub, vline, 1, RETRY_INITIAL_MS_MAX, &t->retry_initial_ms);
        } else if (!strcmp(key, "retry_max_ms")) {
            rc = get_int(w, v, sub, vline, 1, RETRY_MAX_MS_MAX, &t->retry_max_ms);
        } else if (!strcmp(key, "flush_timeout_ms")) {
            rc = get_int(w, v, sub, vline, 0, FLUSH_TIMEOUT_MS_MAX, &t->flush_timeout_ms);
        } else if (!strcmp(key, "source")) {
            rc = get_str(w, v, sub, vline, &t->source);
            if (!rc && t->source && (!t->source[0] || strlen(t->source) > SOURCE_MAX || has_ctl(t->source)))
                rc = fail(w, vline, sub, "expected 1..%d printable characters", SOURCE_MAX);
            p->source_set = true;
        } else if (!strcmp(key, "sinks")) {
            sinks_free(t->sinks, t->n_sinks);
            t->sinks = NULL;
            t->n_sinks = 0;
            rc = parse_sinks(w, v, t, sub, kline);
            p->sinks_set = true;
        } else {
            rc = fail(w, kline, sub, "unknown key (known here: %s)", known);
        }
        if (rc)
            return rc;
    }
    if (rc < 0)
        return rc;
    if (p->t.retry_max_ms < p->t.retry_initial_ms)
        return fail(w, line, "alerts.retry_max_ms", "must be at least retry_initial_ms (%d)",
                    p->t.retry_initial_ms);
    return HS_OK;
}

/* ---- guards before libfyaml (see the top of the file) ------------------------------ */

/* YAML 1.2 (section 5.1) allows only printable Unicode: tab, LF, CR,
 * U+0020..U+007E, U+0085, U+00A0..U+D7FF, U+E000..U+FFFD and the planes above. */
static int check_text(struct walk *w)
{
    const utf8proc_uint8_t *u = (const utf8proc_uint8_t *)w->text;
    int line = 1;
    for (size_t i = 0; i < w->len;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(u + i, (utf8proc_ssize_t)(w->len - i), &cp);
        if (k <= 0)
            return hs_err_set(w->err, HS_EFORMAT, "%s:%d: not UTF-8 text (byte %zu)", w->name, line, i);
        bool ok = cp == 0x09 || cp == 0x0A || cp == 0x0D || (cp >= 0x20 && cp <= 0x7E) || cp == 0x85 ||
                  (cp >= 0xA0 && cp <= 0xD7FF) || (cp >= 0xE000 && cp <= 0xFFFD) || cp >= 0x10000;
        if (!ok)
            return hs_err_set(w->err, HS_EFORMAT, "%s:%d: control character U+%04X is not allowed in YAML",
                              w->name, line, (unsigned)cp);
        line += cp == 0x0A;
        i += (size_t)k;
    }
    return HS_OK;
}

/* A '?' followed by a blank that starts a node (first on its line or after
 * - { [ , :) is an explicit key. Quoted scalars and comments are skipped. */
static int check_explicit_keys(struct walk *w)
{
    const char *t = w->text;
    int line = 1;
    char quote = 0, prev = '\n', last = '\n';
    for (size_t i = 0; i < w->len; i++) {
        char ch = t[i];
        line += ch == '\n';
        if (quote) {
            if (quote == '"' && ch == '\\' && i + 1 < w->len)
                i++;
            else if (ch == quote && !(quote == '\'' && i + 1 < w->len && t[i + 1] == '\''))
                quote = 0;
            else if (ch == '\'' && quote == '\'')
                i++;
            last = ch;
            continue;
        }
        bool at_node = strchr(" \t\n{[,", last) != NULL;
        if (ch == '#' && at_node) {
            while (i + 1 < w->len && t[i + 1] != '\n')
                i++;
            continue;
        }
        if ((ch == '"' || ch == '\'') && at_node)
            quote = ch;
        else if (ch == '?' && (i + 1 == w->len || strchr(" \t\n\r", t[i + 1])) && strchr("\n-{[,:", prev))
            return hs_err_set(w->err, HS_EFORMAT,
                              "%s:%d: explicit mapping keys ('? key') are not supported in the configuration",
                              w->name, line);
        if (ch != ' ' && ch != '\t' && ch != '\r')
            prev = ch;
        last = ch;
    }
    return HS_OK;
}

static void quiet(struct fy_diag *diag, void *user, const char *buf, size_t len)
{
    (void)diag;
    (void)user;
    (void)buf;
    (void)len;
}

/* ---- the entry point ----------------------------------------------------------------- */

int hs_alerts_config_parse(struct hs_alerts_config *c, const char *yaml_text, size_t len, const char *name,
                           hs_err *err)
{
    struct walk w = {name ? name : "config", err, yaml_text ? yaml_text : "", yaml_text ? len : 0};
    int rc = check_text(&w);
    if (!rc)
        rc = check_explicit_keys(&w);
    if (rc)
        return rc;
    struct fy_diag_cfg dc;
    fy_diag_cfg_default(&dc);
    dc.fp = NULL;
    dc.output_fn = quiet;
    dc.level = FYET_ERROR;
    struct fy_diag *diag = fy_diag_create(&dc);
    if (!diag)
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    fy_diag_set_collect_errors(diag, true);
    struct fy_parse_cfg pc;
    memset(&pc, 0, sizeof pc);
    pc.flags = FYPCF_QUIET;
    pc.diag = diag;
    struct fy_document *doc = w.len ? fy_document_build_from_string(&pc, w.text, w.len) : NULL;
    if (!doc) {
        void *it = NULL;
        struct fy_diag_error *de = fy_diag_errors_iterate(diag, &it);
        if (de)
            rc = hs_err_set(err, HS_EFORMAT, "%s:%d:%d: %s", w.name, de->line, de->column,
                            de->msg ? de->msg : "YAML syntax error");
        /* otherwise blank, comments only: no alerts section */
        fy_diag_destroy(diag);
        return rc;
    }
    struct pending p = {.t = *c};
    p.t.throttles = NULL;
    p.t.n_throttles = 0;
    p.t.sinks = NULL;
    p.t.n_sinks = 0;
    p.t.source = NULL;
    struct fy_node *root = fy_document_root(doc);
    if (root && !plain_null(root)) {
        if (!fy_node_is_mapping(root)) {
            rc = fail(&w, line_or(root, 1), "(top level)", "expected a mapping of sections (alerts:, ...)");
        } else {
            /* Other sections belong to the server's reader: their keys are
               neither judged nor read here. */
            void *it = NULL;
            struct fy_node_pair *pr;
            bool seen = false;
            while (!rc && (pr = fy_node_mapping_iterate(root, &it))) {
                struct fy_node *k = fy_node_pair_key(pr), *v = fy_node_pair_value(pr);
                size_t kl = 0;
                const char *ks =
                    k && fy_node_is_scalar(k) && !fy_node_is_alias(k) ? fy_node_get_scalar(k, &kl) : NULL;
                if (!ks || kl != 6 || memcmp(ks, "alerts", 6) != 0)
                    continue;
                int kline = line_or(k, 1);
                if (seen)
                    rc = fail(&w, kline, "alerts", "given twice");
                else if (v && fy_node_is_alias(v))
                    rc = fail(&w, kline, "alerts", "YAML aliases are not supported; write the value out");
                else
                    rc = parse_section(&w, v, &p, kline);
                seen = true;
            }
        }
    }
    fy_document_destroy(doc);
    fy_diag_destroy(diag);
    if (rc) {
        throttles_free(p.t.throttles, p.t.n_throttles);
        sinks_free(p.t.sinks, p.t.n_sinks);
        hs_free(p.t.source);
        return rc;
    }
    c->throttle_s = p.t.throttle_s;
    c->retry_initial_ms = p.t.retry_initial_ms;
    c->retry_max_ms = p.t.retry_max_ms;
    c->flush_timeout_ms = p.t.flush_timeout_ms;
    if (p.throttles_set) {
        throttles_free(c->throttles, c->n_throttles);
        c->throttles = p.t.throttles;
        c->n_throttles = p.t.n_throttles;
    }
    if (p.sinks_set) {
        sinks_free(c->sinks, c->n_sinks);
        c->sinks = p.t.sinks;
        c->n_sinks = p.t.n_sinks;
    }
    if (p.source_set) {
        hs_free(c->source);
        c->source = p.t.source;
    }
    return HS_OK;
}
