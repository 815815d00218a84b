/* The HTTP transport and the plain-data request/response it hands to the
 * routes. Route handlers see only struct hs_http_req and fill struct
 * hs_http_resp, so they never touch libmicrohttpd and a test or a fuzz target
 * can call the dispatcher directly, without sockets.
 *
 * The transport runs one thread per connection (libmicrohttpd's
 * MHD_USE_THREAD_PER_CONNECTION): a handler may block while its answer is
 * generated, and a streamed body's pull function may block until it has
 * bytes. While either waits, the connection's idle timeout is suspended and
 * the handler is expected to poll hs_http_req_gone, so a client that hangs up
 * frees its resources at once while a client that stops reading is still cut
 * by the timeout. */
#ifndef HS_SERVER_HTTP_H
#define HS_SERVER_HTTP_H

#include "base/buf.h"
#include "base/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* "Is the client gone?" A cheap, non-blocking check; safe to call from the
 * thread serving the request, for as long as the request or its streamed
 * body is being produced. fn NULL means "never gone". */
struct hs_http_probe {
    bool (*fn)(void *user);
    void *user;
};
bool hs_http_probe_gone(const struct hs_http_probe *p);

/* One request, borrowed by the handler for the duration of the call. */
struct hs_http_req {
    const char *method; /* "GET", "POST", ... */
    const char *path;   /* without the query string */
    const char *body;   /* body_len bytes, NUL-terminated; "" when none */
    size_t body_len;
    bool body_too_large; /* the transport stopped keeping the body at its limit (-> 413) */
    const char *client;  /* client address as text ("127.0.0.1", "::1"); "" when unknown */
    bool loopback;       /* the client connected over a loopback address */
    /* Header lookup, case-insensitive; NULL when absent. */
    const char *(*header)(void *user, const char *name);
    void *header_user;
    /* Query-string argument lookup (decoded, the header's user); NULL when
     * absent or when the transport has none. */
    const char *(*query)(void *user, const char *name);
    struct hs_http_probe gone;
};
const char *hs_http_req_header(const struct hs_http_req *r, const char *name);
const char *hs_http_req_query(const struct hs_http_req *r, const char *name);
bool hs_http_req_gone(const struct hs_http_req *r);

/* A streamed body: called until it returns 0 (the end) or < 0 (cut the
 * connection: the client is gone or the answer cannot go on). It may block
 * until it has bytes; it must return within a few hundred milliseconds of
 * the probe saying the client is gone. Returns bytes written to buf (<= cap). */
typedef long (*hs_http_pull_fn)(void *user, char *buf, size_t cap);

struct hs_http_header {
    char *name;
    char *value;
};

/* What a handler answers. Zero-initialise; set status, headers and either
 * body or pull (a chunked, streamed body). */
struct hs_http_resp {
    int status;
    struct hs_http_header *headers;
    int n_headers, cap_headers;
    hs_buf body;
    hs_http_pull_fn pull;
    void *pull_user;
    /* Called once when the transport is done with the response (after the
     * last pull, or when the client went away early); frees pull_user. */
    void (*pull_free)(void *user);
};
/* Adds a header (both strings copied). HS_ENOMEM. */
int hs_http_resp_header(struct hs_http_resp *r, const char *name, const char *value);
const char *hs_http_resp_get_header(const struct hs_http_resp *r, const char *name);
/* Frees headers and body; calls pull_free if the response still owns a stream. */
void hs_http_resp_free(struct hs_http_resp *r);

/* The single entry point of the application: fills resp for req. Called on
 * the connection's thread; any number at once. */
typedef void (*hs_http_handler_fn)(void *user, const struct hs_http_req *req, struct hs_http_resp *resp);

struct hs_http_params {
    const char *host;      /* an address or name to bind; "127.0.0.1" when NULL */
    int port;              /* 0 = any free port (hs_http_port says which) */
    size_t max_body_bytes; /* bodies beyond this are not kept: req.body_too_large */
    int timeout_s;         /* a client idle for this long is cut (0 = never) */
    int max_connections;
    hs_http_handler_fn handler;
    void *user;
};

typedef struct hs_http hs_http;

/* Binds and starts serving. HS_EIO (message names host:port and the reason)
 * when the address cannot be bound. */
int hs_http_start(const struct hs_http_params *p, hs_http **out, hs_err *err);
/* The bound port. */
int hs_http_port(const hs_http *h);
/* Stops accepting new connections; open connections go on. */
void hs_http_quiesce(hs_http *h);
/* Closes every connection (waits for running handlers to return) and frees. */
void hs_http_stop(hs_http *h);

/* Whether a host name or address resolves only to loopback addresses. */
bool hs_http_host_is_loopback(const char *host);

#endif
