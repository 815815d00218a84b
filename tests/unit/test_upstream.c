/* engine/upstream: the gateway's client, against a real HTTP server on a
 * loopback port (libmicrohttpd, one thread per connection, in this process).
 * The fake server reports what it received (headers, body) in its answers and
 * records what it saw of each connection's end, so the tests check the wire,
 * not the client's own idea of it. */
#include "test_util.h"

#include "base/buf.h"
#include "base/clock.h"
#include "engine/upstream.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------
 * the fake upstream */

enum route { R_ECHO, R_MODELS, R_SSE, R_BUSY, R_STALL_BODY, R_STALL_HEAD, R_LONG, R_BIG, R_404 };

#define SSE_EVENTS 5
#define BIG_BYTES (32u << 20)

static struct {
    struct MHD_Daemon *d;
    int port;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;      /* teardown: every blocked handler returns */
    int sse_acked;  /* events the test has seen; the SSE route waits on it */
    int long_ended; /* /v1/long connections that ended */
    enum MHD_RequestTerminationCode long_toe;
    atomic_size_t big_produced;
} F;

struct conn {
    enum route route;
    hs_buf body;
    int next;     /* per-route progress of the response */
    char rid[32]; /* the client's x-request-id */
};

static int64_t ms_since(int64_t t0)
{
    return (hs_now_ns() - t0) / 1000000;
}

/* Waits (F.mu held) for a signal, at most ms; false once F.stop is set. */
static bool fake_wait(int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    if (!F.stop)
        pthread_cond_timedwait(&F.cv, &F.mu, &ts);
    return !F.stop;
}

static uint8_t big_byte(size_t i)
{
    return (uint8_t)(i * 31u + (i >> 13));
}

static ssize_t read_sse(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct conn *c = cls;
    (void)pos;
    if (c->next < SSE_EVENTS) {
        /* Event k goes out only once the client has seen event k-1: a client
         * that held the body back until the end would wait here forever. */
        pthread_mutex_lock(&F.mu);
        int64_t t0 = hs_now_ns();
        while (F.sse_acked < c->next && !F.stop && ms_since(t0) < 5000)
            fake_wait(100);
        bool ok = F.sse_acked >= c->next;
        pthread_mutex_unlock(&F.mu);
        if (!ok)
            return MHD_CONTENT_READER_END_WITH_ERROR;
        int n = snprintf(buf, max, "data: {\"i\":%d}\n\n", c->next);
        c->next++;
        return n;
    }
    if (c->next == SSE_EVENTS) {
        c->next++;
        return snprintf(buf, max, "data: [DONE]\n\n");
    }
    return MHD_CONTENT_READER_END_OF_STREAM;
}

static ssize_t read_stall_body(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct conn *c = cls;
    (void)pos;
    if (c->next++ == 0)
        return snprintf(buf, max, "data: 1\n\n");
    pthread_mutex_lock(&F.mu);
    int64_t t0 = hs_now_ns();
    while (!F.stop && ms_since(t0) < 10000)
        fake_wait(200);
    pthread_mutex_unlock(&F.mu);
    return MHD_CONTENT_READER_END_OF_STREAM;
}

/* An endless stream: one event every 5 ms until the client goes or teardown. */
static ssize_t read_long(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct conn *c = cls;
    (void)pos;
    pthread_mutex_lock(&F.mu);
    bool go = fake_wait(5);
    pthread_mutex_unlock(&F.mu);
    if (!go || c->next >= 6000)
        return MHD_CONTENT_READER_END_OF_STREAM;
    return snprintf(buf, max, "data: {\"n\":%d}\n\n", c->next++);
}

static ssize_t read_big(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)cls;
    if (pos >= BIG_BYTES)
        return MHD_CONTENT_READER_END_OF_STREAM;
    size_t n = BIG_BYTES - (size_t)pos < max ? BIG_BYTES - (size_t)pos : max;
    for (size_t i = 0; i < n; i++)
        buf[i] = (char)big_byte((size_t)pos + i);
    atomic_store(&F.big_produced, (size_t)pos + n);
    return (ssize_t)n;
}

static enum route route_of(const char *url)
{
    static const struct {
        const char *path;
        enum route r;
    } table[] = {
        {"/v1/chat/completions", R_ECHO},
        {"/v1/models", R_MODELS},
        {"/v1/stream", R_SSE},
        {"/v1/busy", R_BUSY},
        {"/v1/stall-body", R_STALL_BODY},
        {"/v1/stall-head", R_STALL_HEAD},
        {"/v1/long", R_LONG},
        {"/v1/big", R_BIG},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (!strcmp(url, table[i].path))
            return table[i].r;
    return R_404;
}

static void set_header_or_null(json_t *o, struct MHD_Connection *mc, const char *key, const char *name)
{
    const char *v = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, name);
    json_object_set_new(o, key, v ? json_string(v) : json_null());
}

static enum MHD_Result queue_json(struct MHD_Connection *mc, unsigned code, json_t *o,
                                  const char *retry_after)
{
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", "application/json");
    if (retry_after)
        MHD_add_response_header(r, "Retry-After", retry_after);
    enum MHD_Result ret = MHD_queue_response(mc, code, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result queue_stream(struct MHD_Connection *mc, struct conn *c, uint64_t size,
                                    MHD_ContentReaderCallback fn, const char *type)
{
    struct MHD_Response *r = MHD_create_response_from_callback(size, 16 * 1024, fn, c, NULL);
    MHD_add_response_header(r, "Content-Type", type);
    enum MHD_Result ret = MHD_queue_response(mc, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *mc, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size,
                                  void **con_cls)
{
    (void)cls;
    (void)version;
    struct conn *c = *con_cls;
    if (!c) {
        c = calloc(1, sizeof *c);
        c->route = route_of(url);
        const char *rid = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "x-request-id");
        snprintf(c->rid, sizeof c->rid, "%s", rid ? rid : "");
        *con_cls = c;
        return MHD_YES;
    }
    if (*upload_size) {
        hs_buf_append(&c->body, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    switch (c->route) {
    case R_ECHO: {
        json_t *o = json_object();
        json_object_set_new(o, "method", json_string(method));
        set_header_or_null(o, mc, "authorization", "Authorization");
        set_header_or_null(o, mc, "x_request_id", "x-request-id");
        set_header_or_null(o, mc, "content_type", "Content-Type");
        set_header_or_null(o, mc, "expect", "Expect");
        json_object_set_new(o, "raw", json_stringn(c->body.data ? c->body.data : "", c->body.len));
        json_t *parsed = json_loadb(c->body.data ? c->body.data : "", c->body.len, 0, NULL);
        json_object_set_new(o, "body", parsed ? parsed : json_null());
        return queue_json(mc, MHD_HTTP_OK, o, NULL);
    }
    case R_MODELS: {
        const char *v = MHD_lookup_connection_value(mc, MHD_GET_ARGUMENT_KIND, "api-version");
        return queue_json(mc, MHD_HTTP_OK,
                          json_pack("{s:s, s:s, s:[{s:s}]}", "object", "list", "api_version", v ? v : "",
                                    "data", "id", "m1"),
                          NULL);
    }
    case R_BUSY:
        return queue_json(
            mc, 429, json_pack("{s:{s:s, s:s}}", "error", "message", "slow down", "type", "rate_limit"), "7");
    case R_SSE:
        return queue_stream(mc, c, MHD_SIZE_UNKNOWN, read_sse, "text/event-stream");
    case R_STALL_BODY:
        return queue_stream(mc, c, MHD_SIZE_UNKNOWN, read_stall_body, "text/event-stream");
    case R_LONG:
        return queue_stream(mc, c, MHD_SIZE_UNKNOWN, read_long, "text/event-stream");
    case R_BIG:
        return queue_stream(mc, c, BIG_BYTES, read_big, "application/octet-stream");
    case R_STALL_HEAD: {
        /* Holds the answer back (this connection's own thread) until teardown. */
        pthread_mutex_lock(&F.mu);
        int64_t t0 = hs_now_ns();
        while (!F.stop && ms_since(t0) < 10000)
            fake_wait(200);
        pthread_mutex_unlock(&F.mu);
        return queue_json(mc, MHD_HTTP_OK, json_object(), NULL);
    }
    case R_404:
        break;
    }
    return queue_json(mc, MHD_HTTP_NOT_FOUND, json_pack("{s:s}", "error", "no such route"), NULL);
}

static void on_completed(void *cls, struct MHD_Connection *mc, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)mc;
    struct conn *c = *con_cls;
    if (!c)
        return;
    if (c->route == R_LONG && !strcmp(c->rid, "close-me")) {
        pthread_mutex_lock(&F.mu);
        F.long_ended++;
        F.long_toe = toe;
        pthread_cond_broadcast(&F.cv);
        pthread_mutex_unlock(&F.mu);
    }
    hs_buf_free(&c->body);
    free(c);
    *con_cls = NULL;
}

static int fake_start(void **state)
{
    (void)state;
    pthread_mutex_init(&F.mu, NULL);
    pthread_cond_init(&F.cv, NULL);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    F.d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL,
                           on_request, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                           MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_END);
    if (!F.d)
        return -1;
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(F.d, MHD_DAEMON_INFO_BIND_PORT);
    F.port = info ? info->port : 0;
    return F.port > 0 ? 0 : -1;
}

static int fake_stop(void **state)
{
    (void)state;
    pthread_mutex_lock(&F.mu);
    F.stop = true;
    pthread_cond_broadcast(&F.cv);
    pthread_mutex_unlock(&F.mu);
    if (F.d)
        MHD_stop_daemon(F.d);
    pthread_cond_destroy(&F.cv);
    pthread_mutex_destroy(&F.mu);
    return 0;
}

/* ---------------------------------------------------------------------------
 * helpers */

static hs_upstream *make_upstream(const char *suffix, const char *key, const char *model, int idle_ms,
                                  int total_ms)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", F.port, suffix);
    struct hs_upstream_params p = {
        .url = url, .api_key = key, .model = model, .idle_timeout_ms = idle_ms, .timeout_ms = total_ms};
    hs_upstream *u = NULL;
    hs_err err = {0};
    int rc = hs_upstream_create(&p, &u, &err);
    if (rc)
        print_message("hs_upstream_create: %s\n", err.msg);
    assert_int_equal(rc, HS_OK);
    return u;
}

/* Reads the body to its end; asserts it ends cleanly. */
static void read_all(hs_upstream_stream *st, hs_buf *out)
{
    char chunk[4096];
    for (;;) {
        hs_err err = {0};
        long n = hs_upstream_read(st, chunk, sizeof chunk, 5000, &err);
        if (n < 0)
            print_message("read: %ld %s\n", n, err.msg);
        assert_true(n >= 0);
        if (n == 0)
            return;
        assert_int_equal(hs_buf_append(out, chunk, (size_t)n), HS_OK);
    }
}

static json_t *post_json(hs_upstream *u, const char *path, const char *body, const char *rid)
{
    hs_upstream_stream *st = NULL;
    hs_err err = {0};
    assert_int_equal(hs_upstream_post(u, path, body, strlen(body), rid, &st, &err), HS_OK);
    assert_int_equal(hs_upstream_status(st, 5000, &err), 200);
    assert_string_equal(hs_upstream_header(st, "CONTENT-type"), "application/json");
    hs_buf b = {0};
    read_all(st, &b);
    hs_upstream_close(st);
    json_t *o = json_loadb(b.data, b.len, 0, NULL);
    hs_buf_free(&b);
    assert_non_null(o);
    return o;
}

static const char *jstr(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* A loopback port with nothing listening (bound, then released). */
static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

/* ---------------------------------------------------------------------------
 * tests */

static void post_sends_key_request_id_and_remote_model(void **state)
{
    (void)state;
    /* a trailing slash on the base URL names the same base */
    hs_upstream *u = make_upstream("/v1/", "sk-test", "remote-7b", 0, 0);
    char want_url[64];
    snprintf(want_url, sizeof want_url, "http://127.0.0.1:%d/v1", F.port);
    assert_string_equal(hs_upstream_url(u), want_url);
    /* over 1 KiB, where curl would otherwise send Expect: 100-continue */
    char content[3001];
    memset(content, 'x', 3000);
    content[3000] = '\0';
    json_t *req = json_pack("{s:s, s:[{s:s, s:s}], s:f, s:b}", "model", "agent-x", "messages", "role", "user",
                            "content", content, "temperature", 0.5, "stream", 0);
    char *body = json_dumps(req, 0);
    json_t *o = post_json(u, "/chat/completions", body, "req-42");
    assert_string_equal(jstr(o, "method"), "POST");
    assert_string_equal(jstr(o, "authorization"), "Bearer sk-test");
    assert_string_equal(jstr(o, "x_request_id"), "req-42");
    assert_string_equal(jstr(o, "content_type"), "application/json");
    assert_true(json_is_null(json_object_get(o, "expect")));
    json_t *got = json_object_get(o, "body");
    assert_string_equal(jstr(got, "model"), "remote-7b");
    /* everything else arrives as sent */
    json_object_set_new(req, "model", json_string("remote-7b"));
    assert_true(json_equal(req, got));
    json_decref(o);
    free(body);
    json_decref(req);
    hs_upstream_free(u);
}

static void without_remote_name_the_body_passes_verbatim(void **state)
{
    (void)state;
    hs_upstream *u = make_upstream("/v1", NULL, NULL, 0, 0);
    const char *body = "{ \"model\" : \"mine\", \"x\": 0.1000 }";
    json_t *o = post_json(u, "chat/completions", body, NULL);
    assert_string_equal(jstr(o, "raw"), body);
    assert_true(json_is_null(json_object_get(o, "authorization")));
    assert_true(json_is_null(json_object_get(o, "x_request_id")));
    json_decref(o);
    hs_upstream_free(u);
}

static void bad_arguments_are_refused_before_any_transfer(void **state)
{
    (void)state;
    hs_upstream *u = make_upstream("/v1", "k", "remote", 0, 0);
    hs_upstream_stream *st = (hs_upstream_stream *)&st;
    hs_err err = {0};
    assert_int_equal(hs_upstream_post(u, "/chat/completions", "{\"model\":", 9, NULL, &st, &err), HS_EINVAL);
    assert_null(st);
    assert_non_null(strstr(err.msg, "invalid JSON"));
    assert_int_equal(hs_upstream_post(u, "/chat/completions", "[1]", 3, NULL, &st, &err), HS_EINVAL);
    assert_int_equal(hs_upstream_post(u, "/chat/completions", "{}", 2, "a\r\nX-Evil: 1", &st, &err),
                     HS_EINVAL);
    assert_int_equal(hs_upstream_post(u, "/chat/ completions", "{}", 2, NULL, &st, &err), HS_EINVAL);
    assert_null(st);
    hs_upstream_free(u);

    const char *bad[] = {"", "ftp://127.0.0.1/v1", "not a url", "http://"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct hs_upstream_params p = {.url = bad[i]};
        hs_upstream *v = (hs_upstream *)&v;
        assert_int_equal(hs_upstream_create(&p, &v, &err), HS_EINVAL);
        assert_null(v);
    }
    struct hs_upstream_params p = {.url = "http://127.0.0.1:1/v1", .api_key = "k\nX: y"};
    assert_int_equal(hs_upstream_create(&p, &u, &err), HS_EINVAL);
}

static void get_keeps_the_base_urls_query(void **state)
{
    (void)state;
    hs_upstream *u = make_upstream("/v1/?api-version=3", NULL, NULL, 0, 0);
    hs_upstream_stream *st = NULL;
    hs_err err = {0};
    assert_int_equal(hs_upstream_get(u, "/models", &st, &err), HS_OK);
    assert_int_equal(hs_upstream_status(st, 5000, &err), 200);
    hs_buf b = {0};
    read_all(st, &b);
    hs_upstream_close(st);
    json_t *o = json_loadb(b.data, b.len, 0, NULL);
    assert_non_null(o);
    assert_string_equal(jstr(o, "api_version"), "3");
    assert_string_equal(jstr(json_array_get(json_object_get(o, "data"), 0), "id"), "m1");
    json_decref(o);
    hs_buf_free(&b);
    hs_upstream_free(u);
}

static void sse_events_arrive_one_by_one(void **state)
{
    (void)state;
    pthread_mutex_lock(&F.mu);
    F.sse_acked = 0;
    pthread_mutex_unlock(&F.mu);
    hs_upstream *u = make_upstream("/v1", NULL, NULL, 0, 0);
    hs_upstream_stream *st = NULL;
    hs_err err = {0};
    assert_int_equal(hs_upstream_post(u, "/stream", "{\"stream\":true}", 15, NULL, &st, &err), HS_OK);
    assert_int_equal(hs_upstream_status(st, 5000, &err), 200);
    assert_string_equal(hs_upstream_header(st, "content-type"), "text/event-stream");
    hs_buf b = {0};
    char chunk[256];
    for (int i = 0; i <= SSE_EVENTS; i++) {
        char want[64];
        if (i < SSE_EVENTS)
            snprintf(want, sizeof want, "data: {\"i\":%d}\n\n", i);
        else
            snprintf(want, sizeof want, "data: [DONE]\n\n");
        /* The server sends event i only after we acknowledged event i-1, so
         * each must be readable while the stream is still open. */
        while (!strstr(b.data ? b.data : "", want)) {
            long n = hs_upstream_read(st, chunk, sizeof chunk, 3000, &err);
            if (n <= 0)
                print_message("waiting for event %d: read returned %ld (%s)\n", i, n, err.msg);
            assert_true(n > 0);
            hs_buf_append(&b, chunk, (size_t)n);
        }
        pthread_mutex_lock(&F.mu);
        F.sse_acked = i + 1;
        pthread_cond_broadcast(&F.cv);
        pthread_mutex_unlock(&F.mu);
    }
    assert_int_equal(hs_upstream_read(st, chunk, sizeof chunk, 3000, &err), 0);
    assert_int_equal(hs_upstream_read(st, chunk, sizeof chunk, 3000, &err), 0); /* the end stays the end */
    hs_upstream_close(st);
    hs_buf_free(&b);
    hs_upstream_free(u);
}

static void rate_limit_status_and_retry_after_pass_through(void **state)
{
    (void)state;
    hs_upstream *u = make_upstream("/v1", NULL, NULL, 0, 0);
    hs_upstream_stream *st = NULL;
    hs_err err = {0};
    assert_int_equal(hs_upstream_post(u, "/busy", "{}", 2, NULL, &st, &err), HS_OK);
    assert_int_equal(hs_upstream_status(st, 5000, &err), 429);
    assert_string_equal(hs_upstream_header(st, "retry-after"), "7");
    assert_string_equal(hs_upstream_header(st, "Retry-After"), "7");
    assert_null(hs_upstream_header(st, "x-no-such-header"));
    hs_buf b = {0};
    read_all(st, &b);
    json_t *o = json_loadb(b.data, b.len, 0, NULL);
    assert_non_null(o);
    assert_string_equal(jstr(json_object_get(o, "error"), "type"), "rate_limit");
    json_decref(o);
    hs_buf_free(&b);
    hs_upstream_close(st);
    hs_upstream_free(u);
}

static void idle_timeout_cuts_a_stalled_body(void **state)
{
    (void)state;
    hs_upstream *u = make_upstream("/v1", NULL, NULL, 300, 0);
    hs_upstream_stream *st = NULL;
    hs_err err = {0};
    assert_int_equal(hs_upstream_post(u, "/stall-body", "{}", 2, NULL, &st, &err), HS_OK);
    assert_int_equal(hs_upstream_status(st, 5000, &err), 200);
    char chunk[256];
    long n = hs_upstream_read(st, chunk, sizeof chunk, 3000, &err);
    assert_int_equal(n, 9);
    assert_memory_equal(chunk, "data: 1\n\n", 9);
    /* a short wait of the reader's own runs out: try again, err stays clear */
    assert_int_equal(hs_upstream_read(st, chunk, sizeof chunk, 20, &err), HS_ETIMEDOUT);
    assert_int_equal(err.code, HS_OK);
    int64_t t0 = hs_now_ns();
    assert_int_equal(hs_upstream_read(st, chunk, sizeof chunk, 5000, &err), HS_ETIMEDOUT);
    assert_int_equal(err.code, HS_ETIMEDOUT);
    assert_true(ms_since(t0) < 4000);
    char want[128];
    snprintf(want, sizeof want, "reading from http://127.0.0.1:%d/v1/stall-body: no data for 300 ms", F.port);
    assert_string_equal(err.msg, want);
    /* the failure is final: later reads repeat it at once */
    t0 = hs_now_ns();
    hs_err_clear(&err);
    assert_int_equal(hs_upstream_read(st, chunk, sizeof chunk, 5000, &err), HS_ETIMEDOUT);
    assert_int_equal(err.code, HS_ETIMEDOUT);
    assert_true(ms_since(t0) < 1000);
    hs_upstream_close(st);
    hs_upstream_free(u);
}

static void idle_timeout_before_the_headers(void **state)
{
    (void)state;
    hs_upstream *u = make_upstream("/v1", NULL, NULL, 300, 0);
    hs_upstream_stream *st = NULL;
    hs_err err = {0};
    assert_int_equal(hs_upstream_post(u, "/stall-head", "{}", 2, NULL, &st, &err), HS_OK);
    assert_int_equal(hs_upstream_status(st, 0, &err), 0);  /* not yet */
    assert_int_equal(hs_upstream_status(st, 20, &err), 0); /* still not */
    assert_int_equal(hs_upstream_status(st, 5000, &err), HS_ETIMEDOUT);
    assert_non_null(strstr(err.msg, "connecting to http://127.0.0.1:"));
    assert_non_null(strstr(err.msg, "/v1/stall-head: no data for 300 ms"));
    assert_null(hs_upstream_header(st, "content-type"));
    hs_upstream_close(st);
    hs_upstream_free(u);
}

static void total_timeout_cuts_an_endless_stream(void **state)
{
    (void)state;
    hs_upstream *u = make_upstream("/v1", NULL, NULL, 0, 400);
    hs_upstream_stream *st = NULL;
    hs_err err = {0};
    assert_int_equal(hs_upstream_post(u, "/long", "{}", 2, NULL, &st, &err), HS_OK);
    assert_int_equal(hs_upstream_status(st, 5000, &err), 200);
    char chunk[4096];
    long n, total = 0;
    int64_t t0 = hs_now_ns();
    while ((n = hs_upstream_read(st, chunk, sizeof chunk, 5000, &err)) > 0)
        total += n;
    assert_true(total > 0);
    assert_int_equal(n, HS_ETIMEDOUT);
    assert_int_equal(err.code, HS_ETIMEDOUT);
    assert_non_null(strstr(err.msg, "Timeout was reached"));
    assert_true(ms_since(t0) < 4000);
    hs_upstream_close(st);
    hs_upstream_free(u);
}

static void refused_connection_names_the_url(void **state)
{
    (void)state;
    int port = closed_port();
    char url[64], want[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1", port);
    snprintf(want, sizeof want,
             "connecting to http://127.0.0.1:%d/v1/chat/completions: Couldn't connect to server", port);
    struct hs_upstream_params p = {.url = url};
    hs_upstream *u = NULL;
    hs_err err = {0};
    assert_int_equal(hs_upstream_create(&p, &u, &err), HS_OK);
    hs_upstream_stream *st = NULL;
    assert_int_equal(hs_upstream_post(u, "/chat/completions", "{}", 2, NULL, &st, &err), HS_OK);
    assert_int_equal(hs_upstream_status(st, 5000, &err), HS_EIO);
    print_message("refused: %s\n", err.msg);
    assert_memory_equal(err.msg, want, strlen(want));
    char chunk[16];
    hs_err_clear(&err);
    assert_int_equal(hs_upstream_read(st, chunk, sizeof chunk, 1000, &err), HS_EIO);
    assert_memory_equal(err.msg, want, strlen(want));
    hs_upstream_close(st);
    hs_upstream_free(u);
}

static void close_mid_stream_is_prompt_and_the_server_sees_it(void **state)
{
    (void)state;
    pthread_mutex_lock(&F.mu);
    int ended_before = F.long_ended;
    pthread_mutex_unlock(&F.mu);
    hs_upstream *u = make_upstream("/v1", NULL, NULL, 0, 0);
    hs_upstream_stream *st = NULL;
    hs_err err = {0};
    assert_int_equal(hs_upstream_post(u, "/long", "{}", 2, "close-me", &st, &err), HS_OK);
    /* the stream outlives its upstream */
    hs_upstream_free(u);
    assert_int_equal(hs_upstream_status(st, 5000, &err), 200);
    hs_buf b = {0};
    char chunk[256];
    while (!strstr(b.data ? b.data : "", "data: {\"n\":3}\n\n")) {
        long n = hs_upstream_read(st, chunk, sizeof chunk, 3000, &err);
        assert_true(n > 0);
        hs_buf_append(&b, chunk, (size_t)n);
    }
    hs_buf_free(&b);
    int64_t t0 = hs_now_ns();
    hs_upstream_close(st);
    int64_t close_ms = ms_since(t0);
    print_message("close took %lld ms\n", (long long)close_ms);
    assert_true(close_ms < 1000);
    /* the server's next write fails and it ends the connection with an error */
    pthread_mutex_lock(&F.mu);
    t0 = hs_now_ns();
    while (F.long_ended == ended_before && ms_since(t0) < 5000)
        fake_wait(50);
    int ended = F.long_ended;
    enum MHD_RequestTerminationCode toe = F.long_toe;
    pthread_mutex_unlock(&F.mu);
    assert_int_equal(ended, ended_before + 1);
    assert_int_not_equal(toe, MHD_REQUEST_TERMINATED_COMPLETED_OK);
}

struct blocked_read {
    hs_upstream_stream *st;
    long rc;
    hs_err err;
};

static void *read_forever(void *arg)
{
    struct blocked_read *b = arg;
    char chunk[64];
    b->rc = hs_upstream_read(b->st, chunk, sizeof chunk, -1, &b->err);
    return NULL;
}

/* The consumer's going, told from another thread, wakes a reader that waits
 * without limit on a silent upstream. */
static void cancel_from_another_thread_wakes_the_reader(void **state)
{
    (void)state;
    hs_upstream *u = make_upstream("/v1", NULL, NULL, 0, 0);
    struct blocked_read b = {0};
    hs_err err = {0};
    assert_int_equal(hs_upstream_post(u, "/stall-body", "{}", 2, NULL, &b.st, &err), HS_OK);
    assert_int_equal(hs_upstream_status(b.st, 5000, &err), 200);
    char chunk[64];
    assert_int_equal(hs_upstream_read(b.st, chunk, sizeof chunk, 3000, &err), 9);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, read_forever, &b), 0);
    usleep(50 * 1000);
    int64_t t0 = hs_now_ns();
    hs_upstream_cancel(b.st);
    hs_upstream_cancel(b.st);
    pthread_join(t, NULL);
    assert_true(ms_since(t0) < 1000);
    assert_int_equal(b.rc, HS_ECANCELED);
    assert_int_equal(b.err.code, HS_ECANCELED);
    assert_int_equal(hs_upstream_read(b.st, chunk, sizeof chunk, 3000, &err), HS_ECANCELED);
    hs_upstream_close(b.st);
    hs_upstream_free(u);
}

/* Closing at once, before any byte, and closing a stream that failed, both
 * free everything (ASan and valgrind watch). */
static void close_right_away_and_after_failure(void **state)
{
    (void)state;
    hs_upstream *u = make_upstream("/v1", "k", NULL, 0, 0);
    hs_err err = {0};
    for (int i = 0; i < 8; i++) {
        hs_upstream_stream *st = NULL;
        assert_int_equal(hs_upstream_post(u, i % 2 ? "/long" : "/stall-head", "{}", 2, "r", &st, &err),
                         HS_OK);
        if (i >= 4) /* after the headers of a stream, or while the headers are awaited */
            assert_int_equal(hs_upstream_status(st, i % 2 ? 5000 : 50, &err), i % 2 ? 200 : 0);
        int64_t t0 = hs_now_ns();
        hs_upstream_close(st);
        assert_true(ms_since(t0) < 1000);
    }
    hs_upstream_close(NULL);
    hs_upstream_free(u);
    hs_upstream_free(NULL);
}

/* A reader that does not read holds the transfer back: the upstream cannot
 * run far ahead of it (only the ring and the sockets' buffers fill). */
static void a_slow_reader_slows_the_transfer(void **state)
{
    (void)state;
    atomic_store(&F.big_produced, 0);
    hs_upstream *u = make_upstream("/v1", NULL, NULL, 0, 0);
    hs_upstream_stream *st = NULL;
    hs_err err = {0};
    assert_int_equal(hs_upstream_get(u, "/big", &st, &err), HS_OK);
    assert_int_equal(hs_upstream_status(st, 5000, &err), 200);
    usleep(300 * 1000);
    size_t early = atomic_load(&F.big_produced);
    print_message("produced while nobody read: %zu of %u bytes\n", early, BIG_BYTES);
    assert_true(early < BIG_BYTES * 3 / 4);
    char *chunk = malloc(100000);
    size_t total = 0;
    long n;
    bool same = true;
    /* odd sizes, so the reads straddle the ring's wrap */
    size_t caps[] = {1, 7, 4093, 100000, 65536};
    for (int k = 0; (n = hs_upstream_read(st, chunk, caps[k % 5], 5000, &err)) > 0; k++) {
        for (long i = 0; i < n; i++)
            same &= (uint8_t)chunk[i] == big_byte(total + (size_t)i);
        total += (size_t)n;
    }
    assert_int_equal(n, 0);
    assert_int_equal(total, BIG_BYTES);
    assert_true(same);
    free(chunk);
    hs_upstream_close(st);
    hs_upstream_free(u);
}

int main(void)
{
    /* The tests talk to loopback; a proxy from the environment must not step in. */
    setenv("no_proxy", "*", 1);
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(post_sends_key_request_id_and_remote_model),
        cmocka_unit_test(without_remote_name_the_body_passes_verbatim),
        cmocka_unit_test(bad_arguments_are_refused_before_any_transfer),
        cmocka_unit_test(get_keeps_the_base_urls_query),
        cmocka_unit_test(sse_events_arrive_one_by_one),
        cmocka_unit_test(rate_limit_status_and_retry_after_pass_through),
        cmocka_unit_test(idle_timeout_cuts_a_stalled_body),
        cmocka_unit_test(idle_timeout_before_the_headers),
        cmocka_unit_test(total_timeout_cuts_an_endless_stream),
        cmocka_unit_test(refused_connection_names_the_url),
        cmocka_unit_test(close_mid_stream_is_prompt_and_the_server_sees_it),
        cmocka_unit_test(cancel_from_another_thread_wakes_the_reader),
        cmocka_unit_test(close_right_away_and_after_failure),
        cmocka_unit_test(a_slow_reader_slows_the_transfer),
    };
    return cmocka_run_group_tests(tests, fake_start, fake_stop);
}
