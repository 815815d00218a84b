/* libmicrohttpd adapted to struct hs_http_req / hs_http_resp.
 *
 * Threads: MHD_USE_THREAD_PER_CONNECTION, so the handler and a streamed
 * body's pull function run on the connection's own thread and may block.
 * libmicrohttpd checks a connection's idle timeout after each callback
 * returns, measured from the last byte moved: a pull that blocked longer
 * than the timeout waiting for a token would get the connection closed
 * before its bytes went out. So the timeout is switched off while our code
 * runs and back on as it returns (setting it restarts the idle clock); a
 * client that stops reading is still cut, one that hangs up is seen by the
 * probe. */
#include "server/http.h"

#include "base/log.h"
#include "base/mem.h"
#include "base/parse.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define STREAM_BLOCK (16 * 1024)

struct hs_http {
    struct MHD_Daemon *d;
    struct hs_http_params p;
    char *host;
    int port;
    MHD_socket quiesced; /* the listening socket after hs_http_quiesce; closed after the stop */
};

/* ---- request / response helpers (transport-independent) ---- */

bool hs_http_probe_gone(const struct hs_http_probe *p)
{
    return p && p->fn && p->fn(p->user);
}

const char *hs_http_req_header(const struct hs_http_req *r, const char *name)
{
    return r->header ? r->header(r->header_user, name) : NULL;
}

const char *hs_http_req_query(const struct hs_http_req *r, const char *name)
{
    return r->query ? r->query(r->header_user, name) : NULL;
}

bool hs_http_req_gone(const struct hs_http_req *r)
{
    return hs_http_probe_gone(&r->gone);
}

int hs_http_resp_header(struct hs_http_resp *r, const char *name, const char *value)
{
    if (r->n_headers == r->cap_headers) {
        int cap = r->cap_headers ? r->cap_headers * 2 : 8;
        struct hs_http_header *h = hs_realloc_array(r->headers, (size_t)cap, sizeof *h);
        if (!h)
            return HS_ENOMEM;
        r->headers = h;
        r->cap_headers = cap;
    }
    char *n = hs_strdup(name), *v = hs_strdup(value);
    if (!n || !v) {
        hs_free(n);
        hs_free(v);
        return HS_ENOMEM;
    }
    r->headers[r->n_headers++] = (struct hs_http_header){n, v};
    return HS_OK;
}

const char *hs_http_resp_get_header(const struct hs_http_resp *r, const char *name)
{
    for (int i = 0; i < r->n_headers; i++)
        if (!strcasecmp(r->headers[i].name, name))
            return r->headers[i].value;
    return NULL;
}

void hs_http_resp_free(struct hs_http_resp *r)
{
    for (int i = 0; i < r->n_headers; i++) {
        hs_free(r->headers[i].name);
        hs_free(r->headers[i].value);
    }
    hs_free(r->headers);
    hs_buf_free(&r->body);
    if (r->pull_free)
        r->pull_free(r->pull_user);
    memset(r, 0, sizeof *r);
}

/* ---- addresses ---- */

static bool sa_is_loopback(const struct sockaddr *sa)
{
    if (!sa)
        return false;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(a))
            return true;
        return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
    }
    return false;
}

static void sa_text(const struct sockaddr *sa, char *out, size_t cap)
{
    out[0] = '\0';
    if (!sa)
        return;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)cap);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, (socklen_t)cap);
}

bool hs_http_host_is_loopback(const char *host)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC};
    struct addrinfo *res = NULL;
    if (!host || getaddrinfo(host, NULL, &hints, &res) != 0 || !res)
        return false;
    bool all = true;
    for (struct addrinfo *a = res; a; a = a->ai_next)
        if (!sa_is_loopback(a->ai_addr))
            all = false;
    freeaddrinfo(res);
    return all;
}

/* ---- one connection's request ---- */

struct conn {
    struct hs_http *h;
    struct MHD_Connection *c;
    MHD_socket fd;
    hs_buf body;
    bool too_large;
    bool done; /* a response was queued */
    char client[INET6_ADDRSTRLEN + 1];
    bool loopback;
};

/* The peer has closed its side (or the socket broke): a zero-byte peek, or
 * poll's hang-up bits. Bytes waiting to be read (a pipelined request) do not
 * count as gone. */
static bool fd_gone(void *user)
{
    int fd = (int)(intptr_t)user;
    if (fd < 0)
        return false;
    struct pollfd pfd = {.fd = fd, .events = POLLIN | POLLRDHUP};
    int n = poll(&pfd, 1, 0);
    if (n <= 0)
        return false;
    if (pfd.revents & (POLLHUP | POLLERR | POLLRDHUP | POLLNVAL))
        return true;
    if (pfd.revents & POLLIN) {
        char c;
        ssize_t r = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
        if (r == 0)
            return true;
        if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return true;
    }
    return false;
}

static const char *conn_header(void *user, const char *name)
{
    struct conn *cn = user;
    return MHD_lookup_connection_value(cn->c, MHD_HEADER_KIND, name);
}

static const char *conn_query(void *user, const char *name)
{
    struct conn *cn = user;
    return MHD_lookup_connection_value(cn->c, MHD_GET_ARGUMENT_KIND, name);
}

static void set_timeout(struct MHD_Connection *c, unsigned s)
{
    MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, s);
}

struct stream {
    hs_http_pull_fn pull;
    void *user;
    void (*free_fn)(void *user);
    struct MHD_Connection *c;
    unsigned timeout_s;
};

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    struct stream *s = cls;
    set_timeout(s->c, 0);
    long n = s->pull(s->user, buf, max);
    set_timeout(s->c, s->timeout_s);
    if (n > 0)
        return (ssize_t)n;
    return n == 0 ? MHD_CONTENT_READER_END_OF_STREAM : MHD_CONTENT_READER_END_WITH_ERROR;
}

static void stream_free(void *cls)
{
    struct stream *s = cls;
    if (s->free_fn)
        s->free_fn(s->user);
    hs_free(s);
}

static void free_body(void *p)
{
    hs_free(p);
}

/* Turns resp into an MHD response and queues it; takes what resp owns. */
static enum MHD_Result queue(struct conn *cn, struct hs_http_resp *resp)
{
    struct MHD_Response *r = NULL;
    if (resp->pull) {
        struct stream *s = hs_calloc(1, sizeof *s);
        if (s) {
            *s = (struct stream){resp->pull, resp->pull_user, resp->pull_free, cn->c,
                                 (unsigned)(cn->h->p.timeout_s > 0 ? cn->h->p.timeout_s : 0)};
            r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, STREAM_BLOCK, stream_read, s,
                                                  stream_free);
            if (r) {
                resp->pull = NULL; /* the MHD response owns the stream now */
                resp->pull_free = NULL;
                resp->pull_user = NULL;
            } else {
                hs_free(s);
            }
        }
    } else {
        size_t len = resp->body.len;
        char *data = hs_buf_steal(&resp->body);
        r = MHD_create_response_from_buffer_with_free_callback(len, data ? data : (char *)"",
                                                               data ? free_body : NULL);
        if (!r)
            hs_free(data);
    }
    if (!r) {
        hs_log_error("http.response", "msg=\"cannot create a response (out of memory)\"");
        hs_http_resp_free(resp);
        return MHD_NO;
    }
    for (int i = 0; i < resp->n_headers; i++)
        if (MHD_add_response_header(r, resp->headers[i].name, resp->headers[i].value) != MHD_YES)
            hs_log_warn("http.header", "name=%s msg=\"rejected by libmicrohttpd\"", resp->headers[i].name);
    enum MHD_Result ret = MHD_queue_response(cn->c, (unsigned)(resp->status > 0 ? resp->status : 500), r);
    MHD_destroy_response(r);
    hs_http_resp_free(resp);
    cn->done = true;
    return ret;
}

static enum MHD_Result dispatch(struct conn *cn, const char *method, const char *url)
{
    struct hs_http *h = cn->h;
    struct hs_http_req req = {
        .method = method,
        .path = url,
        .body = cn->body.data ? cn->body.data : "",
        .body_len = cn->body.len,
        .body_too_large = cn->too_large,
        .client = cn->client,
        .loopback = cn->loopback,
        .header = conn_header,
        .header_user = cn,
        .query = conn_query,
        .gone = {fd_gone, (void *)(intptr_t)cn->fd},
    };
    struct hs_http_resp resp = {0};
    set_timeout(cn->c, 0);
    h->p.handler(h->p.user, &req, &resp);
    set_timeout(cn->c, (unsigned)(h->p.timeout_s > 0 ? h->p.timeout_s : 0));
    hs_buf_free(&cn->body); /* the handler has copied what it keeps */
    return queue(cn, &resp);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    (void)version;
    struct hs_http *h = cls;
    struct conn *cn = *con_cls;
    if (!cn) {
        cn = hs_calloc(1, sizeof *cn);
        if (!cn)
            return MHD_NO;
        cn->h = h;
        cn->c = c;
        cn->fd = -1;
        const union MHD_ConnectionInfo *fi = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (fi)
            cn->fd = fi->connect_fd;
        const union MHD_ConnectionInfo *ai = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (ai) {
            sa_text(ai->client_addr, cn->client, sizeof cn->client);
            cn->loopback = sa_is_loopback(ai->client_addr);
        }
        *con_cls = cn;
        /* A declared length over the limit is answered before the body is
         * read (libmicrohttpd then closes the connection instead of reading
         * the rest). */
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        uint64_t v = 0;
        if (cl) {
            /* over 2^64 or not a number: libmicrohttpd refuses the latter itself */
            bool big = hs_parse_u64(cl, &v) != HS_OK && strspn(cl, "0123456789") == strlen(cl) && *cl;
            if (big || v > h->p.max_body_bytes) {
                cn->too_large = true;
                return dispatch(cn, method, url);
            }
        }
        return MHD_YES;
    }
    if (cn->done) {
        *upload_data_size = 0; /* answered early: drop whatever still comes */
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        if (!cn->too_large && cn->body.len + n > h->p.max_body_bytes) {
            cn->too_large = true; /* a chunked body past the limit: keep reading, keep nothing */
            hs_buf_free(&cn->body);
        }
        if (!cn->too_large && hs_buf_append(&cn->body, upload_data, n))
            return MHD_NO;
        *upload_data_size = 0;
        return MHD_YES;
    }
    return dispatch(cn, method, url);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    struct conn *cn = *con_cls;
    if (toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED)
        hs_log_info("http.timeout", "client=%s", cn ? cn->client : "?");
    if (cn) {
        hs_buf_free(&cn->body);
        hs_free(cn);
    }
    *con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    for (char *p = msg; *p; p++)
        if (*p == '"')
            *p = '\'';
    /* our pull function cutting a stream (the client left) is routine, not a warning */
    bool routine = strstr(msg, "application error generating response") != NULL;
    hs_log(routine ? HS_LOG_DEBUG : HS_LOG_WARN, "http.mhd", "msg=\"%s\"", msg);
}

int hs_http_start(const struct hs_http_params *p, hs_http **out, hs_err *err)
{
    *out = NULL;
    const char *host = p->host && *p->host ? p->host : "127.0.0.1";
    if (p->port < 0 || p->port > 65535)
        return hs_err_set(err, HS_EINVAL, "port %d is out of range (0..65535)", p->port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC, .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(host, NULL, &hints, &res);
    if (gai != 0 || !res)
        return hs_err_set(err, HS_EIO, "cannot resolve host '%s': %s", host, gai_strerror(gai));
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    memcpy(&ss, res->ai_addr, res->ai_addrlen < sizeof ss ? res->ai_addrlen : sizeof ss);
    freeaddrinfo(res);
    unsigned flags =
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG | MHD_USE_ITC;
    if (ss.ss_family == AF_INET6) {
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)p->port);
        flags |= MHD_USE_IPv6;
    } else {
        ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)p->port);
    }

    hs_http *h = hs_calloc(1, sizeof *h);
    if (!h)
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    h->p = *p;
    h->quiesced = MHD_INVALID_SOCKET;
    h->host = hs_strdup(host);
    if (!h->host) {
        hs_free(h);
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    }
    h->p.host = h->host;
    unsigned limit = (unsigned)(p->max_connections > 0 ? p->max_connections : 256);
    errno = 0;
    /* clang-format off */
    h->d = MHD_start_daemon(flags, (uint16_t)p->port, NULL, NULL, on_request, h,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h, /* first, or early messages escape it */
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)(p->timeout_s > 0 ? p->timeout_s : 0),
                            MHD_OPTION_CONNECTION_LIMIT, limit,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
                            MHD_OPTION_END);
    /* clang-format on */
    if (!h->d) {
        int e = errno;
        hs_free(h->host);
        hs_free(h);
        return hs_err_set(err, HS_EIO, "cannot listen on %s:%d%s%s", host, p->port, e ? ": " : "",
                          e ? strerror(e) : "");
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = di ? di->port : p->port;
    *out = h;
    return HS_OK;
}

int hs_http_port(const hs_http *h)
{
    return h->port;
}

void hs_http_quiesce(hs_http *h)
{
    if (h && h->d && h->quiesced == MHD_INVALID_SOCKET)
        h->quiesced = MHD_quiesce_daemon(h->d);
}

void hs_http_stop(hs_http *h)
{
    if (!h)
        return;
    if (h->d)
        MHD_stop_daemon(h->d);
    if (h->quiesced != MHD_INVALID_SOCKET)
        close(h->quiesced);
    hs_free(h->host);
    hs_free(h);
}
