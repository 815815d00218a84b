/* The alerts configuration: defaults, checks, and the `alerts:` section of a
 * YAML document (libfyaml's document API), laid out in alerts.h.
 *
 * Messages follow the server's configuration: "FILE:LINE: alerts.KEY.PATH:
 * what is wrong", with the line of the offending key or value, and keys
 * nobody knows are errors (a misspelt sink setting must not be ignored).
 *
 * Fuzzing the server's reader showed that some inputs must be kept away from
 * libfyaml 0.7.12: text that is not printable UTF-8 (it can loop forever),
 * explicit keys "? k" (it can crash) and single-quoted scalars with ''
 * inside (it reads them wrong). base/yaml.h holds those guards for every
 * reader; this one uses them too. Aliases are refused, as there. */
#include "ops/alerts_impl.h"

#include "base/mem.h"
#include "base/parse.h"
#include "base/yaml.h"

#include <curl/curl.h>
#include <libfyaml.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

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

/* A string (NULL for null); replaces *out. Aliases and collections are
 * refused in this reader's words. */
static int get_str(const hs_yaml *w, struct fy_node *v, const char *path, int line, char **out)
{
    if (v && fy_node_is_alias(v))
        return hs_yaml_fail(w, line, path, "YAML aliases are not supported; write the value out");
    if (!hs_yaml_plain_null(v) && !fy_node_is_scalar(v))
        return hs_yaml_fail(w, line, path, "expected a single value");
    return hs_yaml_string(w, v, path, line, out);
}

/* A plain whole number in [min, max]. */
static int get_int(const hs_yaml *w, struct fy_node *v, const char *path, int line, int min, int max,
                   int *out)
{
    int64_t x;
    int rc = hs_yaml_int(w, v, path, line, min, max, &x);
    if (rc == HS_OK)
        *out = (int)x;
    return rc;
}

/* Iterates a mapping's pairs: *key gets the key's text (NUL-terminated in
 * kbuf), *line its line. Returns 1 for a pair, 0 at the end, < 0 on error. */
static int next_pair(const hs_yaml *w, struct fy_node *map, void **it, const char *path, int line, char *kbuf,
                     size_t cap, struct fy_node **value, int *kline)
{
    struct fy_node_pair *p = fy_node_mapping_iterate(map, it);
    if (!p)
        return 0;
    struct fy_node *k = fy_node_pair_key(p);
    *value = fy_node_pair_value(p);
    *kline = hs_yaml_line_or(k, line);
    const char *ks;
    size_t klen;
    if (!k || !fy_node_is_scalar(k) || fy_node_is_alias(k))
        return hs_yaml_fail(w, *kline, path, "keys must be plain words");
    int rc = hs_yaml_scalar(w, k, path, *kline, &ks, &klen);
    if (rc)
        return rc;
    if (klen >= cap || memchr(ks, 0, klen))
        return hs_yaml_fail(w, *kline, path, "key '%.40s...' is too long", ks);
    memcpy(kbuf, ks, klen);
    kbuf[klen] = '\0';
    if (*value && fy_node_is_alias(*value)) {
        char sub[320];
        snprintf(sub, sizeof sub, "%.200s.%.64s", path, kbuf);
        return hs_yaml_fail(w, *kline, sub, "YAML aliases are not supported; write the value out");
    }
    return 1;
}

static int parse_severity(const hs_yaml *w, struct fy_node *v, const char *path, int line,
                          enum hs_alert_severity *out)
{
    char *s = NULL;
    int rc = get_str(w, v, path, hs_yaml_line_or(v, line), &s);
    if (!rc && hs_alert_severity_parse(s, out) != HS_OK)
        rc = hs_yaml_fail(w, hs_yaml_line_or(v, line), path, "expected info, warning or critical");
    hs_free(s);
    return rc;
}

static int parse_headers(const hs_yaml *w, struct fy_node *map, struct hs_alert_sink_config *s,
                         const char *path, int line)
{
    if (hs_yaml_plain_null(map))
        return HS_OK;
    if (!fy_node_is_mapping(map))
        return hs_yaml_fail(w, line, path, "expected a mapping of header names to values");
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
        rc = get_str(w, v, sub, hs_yaml_line_or(v, kline), &hs[got - 1].value);
        if (rc)
            break;
        if (!header_name_ok(key))
            rc =
                hs_yaml_fail(w, kline, sub, "a header name is a token: letters, digits and !#$%%&'*+-.^_`|~");
        else if (!header_value_ok(hs[got - 1].value))
            rc = hs_yaml_fail(w, hs_yaml_line_or(v, kline), sub,
                              "expected a non-empty value without control characters");
        else if (!strcasecmp(key, "Content-Type") || !strcasecmp(key, "Content-Length"))
            rc = hs_yaml_fail(w, kline, sub, "hestia sets this header itself");
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

static int parse_kind(const hs_yaml *w, struct fy_node *v, const char *path, int line,
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
    return found ? HS_OK : hs_yaml_fail(w, line, path, "expected jsonl, slack, pagerduty or webhook");
}

static int parse_sink(const hs_yaml *w, struct fy_node *map, struct hs_alert_sink_config *s, const char *path,
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
        int vline = hs_yaml_line_or(v, kline);
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
            rc = hs_yaml_fail(w, kline, sub, "unknown key (known here: %s)", known);
        }
        if (rc)
            return rc;
    }
    if (rc < 0)
        return rc;
    if (!have_kind)
        return hs_yaml_fail(w, line, path, "a sink needs a kind (jsonl, slack, pagerduty or webhook)");
    char msg[200];
    sink_problem(s, msg, sizeof msg);
    return msg[0] ? hs_yaml_fail(w, line, path, "%s", msg) : HS_OK;
}

static int parse_sinks(const hs_yaml *w, struct fy_node *seq, struct hs_alerts_config *t, const char *path,
                       int line)
{
    if (hs_yaml_plain_null(seq))
        return HS_OK; /* "sinks:" with nothing: none */
    if (!fy_node_is_sequence(seq))
        return hs_yaml_fail(w, line, path, "expected a list of sinks (lines starting with '-')");
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
        int l = hs_yaml_item_line(item, prev);
        prev = l;
        if (fy_node_is_alias(item) || !fy_node_is_mapping(item)) {
            rc = hs_yaml_fail(w, l, sub, "expected a mapping (kind: ..., url: ... or path: ...)");
            break;
        }
        rc = parse_sink(w, item, &sinks[i], sub, l);
        i++;
        for (int j = 0; !rc && j < i - 1; j++)
            if (!strcmp(sink_name(&sinks[j]), sink_name(&sinks[i - 1])))
                rc = hs_yaml_fail(w, l, sub, "the name '%s' is taken by %.160s[%d]; give each sink a name",
                                  sink_name(&sinks[i - 1]), path, j);
        if (!rc && !strcmp(sink_name(&sinks[i - 1]), "store"))
            rc = hs_yaml_fail(w, l, sub, "the name 'store' belongs to the store's own sink");
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

static int parse_throttle(const hs_yaml *w, struct fy_node *map, struct hs_alerts_config *t, const char *path,
                          int line)
{
    if (hs_yaml_plain_null(map))
        return HS_OK;
    if (!fy_node_is_mapping(map))
        return hs_yaml_fail(w, line, path,
                            "expected a mapping of alert types to seconds (high_latency: 600)");
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
            rc = hs_yaml_fail(w, kline, sub, "an alert type is 1..%d of a-z 0-9 _ . -", HS_ALERT_TYPE_MAX);
        for (int j = 0; !rc && j < got; j++)
            if (!strcmp(ts[j].type, key))
                rc = hs_yaml_fail(w, kline, sub, "given twice");
        if (!rc)
            rc = get_int(w, v, sub, hs_yaml_line_or(v, kline), 0, THROTTLE_S_MAX, &ts[got].seconds);
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

static int parse_section(const hs_yaml *w, struct fy_node *map, struct pending *p, int line)
{
    static const char known[] =
        "throttle_s, throttle, retry_initial_ms, retry_max_ms, flush_timeout_ms, source, sinks";
    if (hs_yaml_plain_null(map))
        return HS_OK;
    if (fy_node_is_alias(map) || !fy_node_is_mapping(map))
        return hs_yaml_fail(w, hs_yaml_line_or(map, line), "alerts",
                            "expected a mapping (throttle_s:, sinks:, ...)");
    void *it = NULL;
    char key[64];
    struct fy_node *v;
    int kline, rc;
    while ((rc = next_pair(w, map, &it, "alerts", line, key, sizeof key, &v, &kline)) == 1) {
        char sub[96];
        snprintf(sub, sizeof sub, "alerts.%s", key);
        int vline = hs_yaml_line_or(v, kline);
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
                rc = hs_yaml_fail(w, vline, sub, "expected 1..%d printable characters", SOURCE_MAX);
            p->source_set = true;
        } else if (!strcmp(key, "sinks")) {
            sinks_free(t->sinks, t->n_sinks);
            t->sinks = NULL;
            t->n_sinks = 0;
            rc = parse_sinks(w, v, t, sub, kline);
            p->sinks_set = true;
        } else {
            rc = hs_yaml_fail(w, kline, sub, "unknown key (known here: %s)", known);
        }
        if (rc)
            return rc;
    }
    if (rc < 0)
        return rc;
    if (p->t.retry_max_ms < p->t.retry_initial_ms)
        return hs_yaml_fail(w, line, "alerts.retry_max_ms", "must be at least retry_initial_ms (%d)",
                            p->t.retry_initial_ms);
    return HS_OK;
}

/* ---- the entry point ----------------------------------------------------------------- */

int hs_alerts_config_parse(struct hs_alerts_config *c, const char *yaml_text, size_t len, const char *name,
                           hs_err *err)
{
    hs_yaml w = {name ? name : "config", yaml_text ? yaml_text : "", yaml_text ? len : 0, err,
                 HS_YAML_SAY_CONFIG};
    struct fy_document *doc;
    int rc = hs_yaml_load(&doc, &w);
    if (rc || !doc)
        return rc; /* no document: blank, comments only, no alerts section */
    struct pending p = {.t = *c};
    p.t.throttles = NULL;
    p.t.n_throttles = 0;
    p.t.sinks = NULL;
    p.t.n_sinks = 0;
    p.t.source = NULL;
    struct fy_node *root = fy_document_root(doc);
    if (root && !hs_yaml_plain_null(root)) {
        if (!fy_node_is_mapping(root)) {
            rc = hs_yaml_fail(&w, hs_yaml_line_or(root, 1), "(top level)",
                              "expected a mapping of sections (alerts:, ...)");
        } else {
            /* Other sections belong to the server's reader: their values are
               not read here. Their keys are read through hs_yaml_scalar, which
               refuses the scalars libfyaml mis-reads (and leaks on: found by
               fuzz_alerts_config) as the server's reader does. */
            void *it = NULL;
            struct fy_node_pair *pr;
            bool seen = false;
            while (!rc && (pr = fy_node_mapping_iterate(root, &it))) {
                struct fy_node *k = fy_node_pair_key(pr), *v = fy_node_pair_value(pr);
                size_t kl = 0;
                const char *ks = NULL;
                if (k && fy_node_is_scalar(k) && !fy_node_is_alias(k))
                    rc = hs_yaml_scalar(&w, k, "(top level)", hs_yaml_line_or(k, 1), &ks, &kl);
                if (rc || !ks || kl != 6 || memcmp(ks, "alerts", 6) != 0)
                    continue;
                int kline = hs_yaml_line_or(k, 1);
                if (seen)
                    rc = hs_yaml_fail(&w, kline, "alerts", "given twice");
                else if (v && fy_node_is_alias(v))
                    rc = hs_yaml_fail(&w, kline, "alerts",
                                      "YAML aliases are not supported; write the value out");
                else
                    rc = parse_section(&w, v, &p, kline);
                seen = true;
            }
        }
    }
    fy_document_destroy(doc);
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
