/* server/http: the libmicrohttpd transport, over real loopback sockets and a
 * client written here with plain sockets (so the test sees exactly the
 * bytes on the wire): port 0, status and headers, the body limit (declared
 * and chunked), a streamed body's pull seeing the client hang up, the idle
 * timeout, and the loopback check. */
#include "test_util.h"

#include "base/clock.h"
#include "server/http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct seen {
    atomic_int calls;
    atomic_bool too_large;
    atomic_size_t body_len;
    atomic_bool gone_seen;
    bool stream;
};

static long pull_until_gone(void *user, char *buf, size_t cap)
{
    struct seen *s = ((void **)user)[0];
    const struct hs_http_probe *probe = ((void **)user)[1];
    static const char chunk[] = "data: tick\n\n";
    /* the first call sends a chunk so the client sees headers; then wait */
    if (atomic_fetch_add(&s->calls, 1) == 1) {
        memcpy(buf, chunk, sizeof chunk - 1 < cap ? sizeof chunk - 1 : cap);
        return (long)(sizeof chunk - 1);
    }
    double t0 = hs_now_s();
    while (hs_now_s() - t0 < 5) {
        if (hs_http_probe_gone(probe)) {
            atomic_store(&s->gone_seen, true);
            return -1;
        }
        usleep(10000);
    }
    return 0;
}

static void free_pull(void *user)
{
    free(((void **)user)[1]);
    free(user);
}

static void handler(void *user, const struct hs_http_req *req, struct hs_http_resp *resp)
{
    struct seen *s = user;
    atomic_fetch_add(&s->calls, 1);
    atomic_store(&s->too_large, req->body_too_large);
    atomic_store(&s->body_len, req->body_len);
    hs_http_resp_header(resp, "X-Test", req->path);
    if (s->stream) {
        void **ctx = malloc(2 * sizeof *ctx);
        struct hs_http_probe *probe = malloc(sizeof *probe);
        *probe = req->gone;
        ctx[0] = s;
        ctx[1] = probe;
        resp->status = 200;
        resp->pull = pull_until_gone;
        resp->pull_user = ctx;
        resp->pull_free = free_pull;
        return;
    }
    resp->status = req->body_too_large ? 413 : 201;
    hs_buf_puts(&resp->body, "hi");
}

static hs_http *start(struct seen *s, size_t max_body, int timeout_s)
{
    struct hs_http_params p = {.host = "127.0.0.1",
                               .port = 0,
                               .max_body_bytes = max_body,
                               .timeout_s = timeout_s,
                               .max_connections = 16,
                               .handler = handler,
                               .user = s};
    hs_http *h = NULL;
    hs_err err = {0};
    assert_int_equal(hs_http_start(&p, &h, &err), HS_OK);
    assert_true(hs_http_port(h) > 0);
    return h;
}

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

static void send_all(int fd, const char *s, size_t n)
{
    while (n) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w <= 0)
            return; /* the server may close early (a 413 before the body) */
        s += w;
        n -= (size_t)w;
    }
}

/* Reads until the headers are complete (and a little more), up to 3 s. */
static size_t read_some(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    double t0 = hs_now_s();
    while (n + 1 < cap && hs_now_s() - t0 < 3) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t r = recv(fd, buf + n, cap - 1 - n, 0);
        if (r <= 0)
            break;
        n += (size_t)r;
        buf[n] = '\0';
        const char *e = strstr(buf, "\r\n\r\n");
        if (e && (size_t)(e + 4 - buf) < n)
            break; /* headers and some body */
    }
    buf[n] = '\0';
    return n;
}

static void get_on_port_zero_gives_status_headers_body(void **state)
{
    (void)state;
    struct seen s = {0};
    hs_http *h = start(&s, 1024, 5);
    int fd = connect_to(hs_http_port(h));
    const char *rq = "GET /some/path?x=1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    send_all(fd, rq, strlen(rq));
    char buf[4096];
    read_some(fd, buf, sizeof buf);
    close(fd);
    assert_non_null(strstr(buf, "HTTP/1.1 201"));
    assert_non_null(strcasestr(buf, "X-Test: /some/path\r\n")); /* the path without the query */
    assert_non_null(strstr(buf, "\r\n\r\nhi"));
    hs_http_stop(h);
}

static void declared_length_over_limit_is_answered_before_the_body(void **state)
{
    (void)state;
    struct seen s = {0};
    hs_http *h = start(&s, 100, 5);
    int fd = connect_to(hs_http_port(h));
    const char *rq = "POST /v1/x HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n";
    send_all(fd, rq, strlen(rq)); /* no body: the answer must not wait for it */
    char buf[4096];
    read_some(fd, buf, sizeof buf);
    close(fd);
    assert_non_null(strstr(buf, "HTTP/1.1 413"));
    assert_true(atomic_load(&s.too_large));
    assert_int_equal(atomic_load(&s.body_len), 0);
    hs_http_stop(h);
}

static void chunked_body_over_limit_is_flagged_and_not_kept(void **state)
{
    (void)state;
    struct seen s = {0};
    hs_http *h = start(&s, 100, 5);
    int fd = connect_to(hs_http_port(h));
    char rq[1024];
    char chunk[81];
    memset(chunk, 'a', 80);
    chunk[80] = '\0';
    snprintf(rq, sizeof rq,
             "POST /v1/x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
             "50\r\n%s\r\n50\r\n%s\r\n0\r\n\r\n",
             chunk, chunk);
    send_all(fd, rq, strlen(rq));
    char buf[4096];
    read_some(fd, buf, sizeof buf);
    close(fd);
    assert_non_null(strstr(buf, "HTTP/1.1 413"));
    assert_true(atomic_load(&s.too_large));
    assert_int_equal(atomic_load(&s.body_len), 0);

    /* under the limit: kept whole */
    fd = connect_to(hs_http_port(h));
    snprintf(rq, sizeof rq,
             "POST /v1/x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
             "50\r\n%s\r\n0\r\n\r\n",
             chunk);
    send_all(fd, rq, strlen(rq));
    read_some(fd, buf, sizeof buf);
    close(fd);
    assert_non_null(strstr(buf, "HTTP/1.1 201"));
    assert_false(atomic_load(&s.too_large));
    assert_int_equal(atomic_load(&s.body_len), 80);
    hs_http_stop(h);
}

static void stream_pull_sees_the_client_hang_up(void **state)
{
    (void)state;
    struct seen s = {.stream = true};
    hs_http *h = start(&s, 1024, 1); /* a 1 s idle timeout must not cut a pull that waits */
    int fd = connect_to(hs_http_port(h));
    const char *rq = "GET /stream HTTP/1.1\r\nHost: t\r\n\r\n";
    send_all(fd, rq, strlen(rq));
    char buf[4096];
    read_some(fd, buf, sizeof buf);
    assert_non_null(strstr(buf, "HTTP/1.1 200"));
    assert_non_null(strcasestr(buf, "Transfer-Encoding: chunked"));
    assert_non_null(strstr(buf, "data: tick"));
    usleep(1500 * 1000); /* longer than the idle timeout: the connection must still be there */
    assert_false(atomic_load(&s.gone_seen));
    close(fd);
    double t0 = hs_now_s();
    while (!atomic_load(&s.gone_seen) && hs_now_s() - t0 < 2)
        usleep(10000);
    assert_true(atomic_load(&s.gone_seen));
    assert_true(hs_now_s() - t0 < 1.0);
    hs_http_stop(h);
}

static void idle_client_is_cut_after_the_timeout(void **state)
{
    (void)state;
    struct seen s = {0};
    hs_http *h = start(&s, 1024, 1);
    int fd = connect_to(hs_http_port(h));
    const char *partial = "GET / HTTP/1.1\r\nHost: t\r\n"; /* never finished */
    send_all(fd, partial, strlen(partial));
    double t0 = hs_now_s();
    char c;
    ssize_t r = 1;
    while (hs_now_s() - t0 < 5) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 100) > 0) {
            r = recv(fd, &c, 1, 0);
            if (r <= 0)
                break;
        }
    }
    close(fd);
    assert_true(r <= 0);
    assert_true(hs_now_s() - t0 < 4);
    assert_int_equal(atomic_load(&s.calls), 0);
    hs_http_stop(h);
}

static void loopback_hosts(void **state)
{
    (void)state;
    assert_true(hs_http_host_is_loopback("127.0.0.1"));
    assert_true(hs_http_host_is_loopback("127.0.0.2"));
    assert_true(hs_http_host_is_loopback("::1"));
    assert_true(hs_http_host_is_loopback("localhost"));
    assert_false(hs_http_host_is_loopback("0.0.0.0"));
    assert_false(hs_http_host_is_loopback("::"));
    assert_false(hs_http_host_is_loopback("192.0.2.1"));
    assert_false(hs_http_host_is_loopback(NULL));
}

static void bad_port_and_busy_port_are_errors(void **state)
{
    (void)state;
    struct seen s = {0};
    hs_http *h = start(&s, 1024, 5);
    struct hs_http_params p = {
        .host = "127.0.0.1", .port = hs_http_port(h), .max_body_bytes = 10, .handler = handler, .user = &s};
    hs_http *h2 = NULL;
    hs_err err = {0};
    assert_int_equal(hs_http_start(&p, &h2, &err), HS_EIO);
    assert_null(h2);
    assert_non_null(strstr(err.msg, "127.0.0.1"));
    p.port = 70000;
    assert_int_equal(hs_http_start(&p, &h2, &err), HS_EINVAL);
    hs_http_stop(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(get_on_port_zero_gives_status_headers_body),
        cmocka_unit_test(declared_length_over_limit_is_answered_before_the_body),
        cmocka_unit_test(chunked_body_over_limit_is_flagged_and_not_kept),
        cmocka_unit_test(stream_pull_sees_the_client_hang_up),
        cmocka_unit_test(idle_client_is_cut_after_the_timeout),
        cmocka_unit_test(loopback_hosts),
        cmocka_unit_test(bad_port_and_busy_port_are_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
