/* The loopback mock OpenAI server of mock_openai.h. */
#include "mock_openai.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { MAX_RECORDED = 128, MAX_LISTED = 16, SSE_SLICE = 7 };

static struct {
    struct MHD_Daemon *d;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    int flaky_seen;
    int long_ended;
    struct mock_request rec[MAX_RECORDED];
    int n_rec;
    char *listed[MAX_LISTED];
    int n_listed;
} M = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

enum kind {
    K_SLOW,
    K_ECHO,
    K_BAD,
    K_BUSY,
    K_FLAKY_FAIL,
    K_STALL,
    K_LONG,
    K_DROP,
    K_ERRCHUNK,
    K_EMBED,
    K_MODELS,
    K_404
};

struct conn {
    char *body; /* the upload so far */
    size_t len;
    bool started;
    /* a streamed answer: text written SSE_SLICE bytes per call */
    char *out;
    size_t out_len, out_pos;
    enum kind kind;
    int n_sent;
};

/* Waits (M.mu held) up to ms for a signal; false once M.stop is set. */
static bool mock_wait(int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    if (!M.stop)
        pthread_cond_timedwait(&M.cv, &M.mu, &ts);
    return !M.stop;
}

static void record(const char *method, const char *url, struct MHD_Connection *mc, const char *body,
                   size_t len)
{
    pthread_mutex_lock(&M.mu);
    if (M.n_rec < MAX_RECORDED) {
        struct mock_request *r = &M.rec[M.n_rec++];
        snprintf(r->method, sizeof r->method, "%s", method);
        snprintf(r->path, sizeof r->path, "%s", url);
        const char *auth = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "Authorization");
        snprintf(r->auth, sizeof r->auth, "%s", auth ? auth : "");
        r->body = malloc(len + 1);
        if (len)
            memcpy(r->body, body, len);
        r->body[len] = '\0';
    }
    pthread_mutex_unlock(&M.mu);
}

static enum MHD_Result send_json(struct MHD_Connection *mc, unsigned code, json_t *o, const char *retry_after)
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

static void append(char **buf, size_t *len, const char *s)
{
    size_t n = strlen(s);
    *buf = realloc(*buf, *len + n + 1);
    memcpy(*buf + *len, s, n + 1);
    *len += n;
}

/* "data: <compact JSON>\n\n" appended (json stolen). */
static void append_event(char **buf, size_t *len, json_t *o, bool crlf)
{
    char *t = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    append(buf, len, "data: ");
    append(buf, len, t);
    append(buf, len, crlf ? "\r\n\r\n" : "\n\n");
    free(t);
}

static json_t *chunk(const char *content, const char *finish)
{
    json_t *delta = json_object();
    if (content)
        json_object_set_new(delta, "content", json_string(content));
    return json_pack("{s:s, s:s, s:[{s:i, s:o, s:o}]}", "id", "mock-1", "object", "chat.completion.chunk",
                     "choices", "index", 0, "delta", delta, "finish_reason",
                     finish ? json_string(finish) : json_null());
}

/* The echo answer's content (a new string). */
static char *echo_content(json_t *req)
{
    const char *sys = NULL, *user = NULL;
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(req, "messages"), i, m)
    {
        const char *role = json_string_value(json_object_get(m, "role"));
        const char *content = json_string_value(json_object_get(m, "content"));
        if (role && !strcmp(role, "system") && !sys)
            sys = content;
        if (role && !strcmp(role, "user"))
            user = content;
    }
    json_t *o = json_pack("{s:s?, s:s?, s:s?}", "model", json_string_value(json_object_get(req, "model")),
                          "system", sys, "user", user);
    char *t = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return t;
}

static ssize_t read_stream(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct conn *c = cls;
    (void)pos;
    if (c->kind == K_LONG) {
        pthread_mutex_lock(&M.mu);
        bool go = mock_wait(5);
        pthread_mutex_unlock(&M.mu);
        if (!go || c->n_sent >= 4000)
            return MHD_CONTENT_READER_END_OF_STREAM;
        c->n_sent++;
        char *t = NULL;
        size_t len = 0;
        append_event(&t, &len, chunk("x", NULL), false);
        size_t n = len < max ? len : max;
        memcpy(buf, t, n);
        free(t);
        return (ssize_t)n;
    }
    if (c->out_pos >= c->out_len) {
        if (c->kind == K_DROP) {
            /* Give the client time to read the first delta, then break. */
            pthread_mutex_lock(&M.mu);
            mock_wait(50);
            pthread_mutex_unlock(&M.mu);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        return MHD_CONTENT_READER_END_OF_STREAM;
    }
    size_t n = c->out_len - c->out_pos;
    if (n > SSE_SLICE)
        n = SSE_SLICE;
    if (n > max)
        n = max;
    memcpy(buf, c->out + c->out_pos, n);
    c->out_pos += n;
    return (ssize_t)n;
}

static enum MHD_Result send_stream(struct MHD_Connection *mc, struct conn *c)
{
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 1024, read_stream, c, NULL);
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    enum MHD_Result ret = MHD_queue_response(mc, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

/* The echo answer as SSE in c->out. */
static void build_echo_stream(struct conn *c, json_t *req, const char *content)
{
    size_t n = strlen(content), step = (n + 4) / 5;
    append(&c->out, &c->out_len, ": a comment the client skips\n");
    json_t *first = chunk(NULL, NULL);
    json_object_set_new(json_object_get(json_array_get(json_object_get(first, "choices"), 0), "delta"),
                        "role", json_string("assistant"));
    append_event(&c->out, &c->out_len, first, false);
    for (size_t i = 0, k; i < n; i += k) {
        k = n - i < step ? n - i : step;
        while (i + k < n && ((unsigned char)content[i + k] & 0xC0) == 0x80)
            k++; /* a piece ends on a whole UTF-8 character */
        char *piece = strndup(content + i, k);
        append_event(&c->out, &c->out_len, chunk(piece, NULL), i == 0);
        free(piece);
    }
    append_event(&c->out, &c->out_len, chunk(NULL, "stop"), false);
    json_t *so = json_object_get(req, "stream_options");
    if (json_is_true(json_object_get(so, "include_usage"))) {
        json_t *u = json_pack("{s:s, s:s, s:[], s:{s:i, s:i, s:i}}", "id", "mock-1", "object",
                              "chat.completion.chunk", "choices", "usage", "prompt_tokens", (int)c->len,
                              "completion_tokens", 5, "total_tokens", (int)c->len + 5);
        append_event(&c->out, &c->out_len, u, false);
    }
    append(&c->out, &c->out_len, "data: [DONE]\n\n");
}

static enum kind chat_kind(const char *model)
{
    static const struct {
        const char *name;
        enum kind k;
    } t[] = {{"bad", K_BAD},   {"busy", K_BUSY}, {"flaky", K_FLAKY_FAIL},  {"stall", K_STALL},
             {"long", K_LONG}, {"drop", K_DROP}, {"errchunk", K_ERRCHUNK}, {"slow", K_SLOW}};
    for (size_t i = 0; model && i < sizeof t / sizeof t[0]; i++)
        if (!strcmp(model, t[i].name))
            return t[i].k;
    return K_ECHO;
}

static enum MHD_Result answer_chat(struct MHD_Connection *mc, struct conn *c)
{
    json_t *req = json_loadb(c->body ? c->body : "", c->len, 0, NULL);
    if (!req)
        return send_json(mc, 400, json_pack("{s:{s:s}}", "error", "message", "the body is not JSON"), NULL);
    const char *model = json_string_value(json_object_get(req, "model"));
    bool stream = json_is_true(json_object_get(req, "stream"));
    c->kind = chat_kind(model);
    if (c->kind == K_FLAKY_FAIL) {
        pthread_mutex_lock(&M.mu);
        bool first = M.flaky_seen++ == 0;
        pthread_mutex_unlock(&M.mu);
        if (first) {
            json_decref(req);
            return send_json(mc, 503, json_pack("{s:{s:s}}", "error", "message", "warming up"), "1");
        }
        c->kind = K_ECHO;
    }
    if (c->kind == K_SLOW) {
        usleep(MOCK_SLOW_MS * 1000);
        c->kind = K_ECHO;
    }
    enum MHD_Result ret;
    switch (c->kind) {
    case K_BAD:
        ret = send_json(mc, 400,
                        json_pack("{s:{s:s, s:s, s:s}}", "error", "message", MOCK_BAD_MESSAGE, "type",
                                  "invalid_request_error", "param", "messages"),
                        NULL);
        break;
    case K_BUSY:
        ret = send_json(mc, 429, json_pack("{s:{s:s, s:s}}", "error", "message", "slow down", "type", "rate"),
                        NULL);
        break;
    case K_STALL:
        pthread_mutex_lock(&M.mu);
        for (int i = 0; i < 100 && mock_wait(100); i++)
            ;
        pthread_mutex_unlock(&M.mu);
        ret = send_json(mc, 200, json_object(), NULL);
        break;
    case K_LONG:
        ret = send_stream(mc, c);
        break;
    case K_DROP:
        append_event(&c->out, &c->out_len, chunk("partial", NULL), false);
        ret = send_stream(mc, c);
        break;
    case K_ERRCHUNK:
        append_event(&c->out, &c->out_len, chunk("before", NULL), false);
        append_event(&c->out, &c->out_len, json_pack("{s:{s:s}}", "error", "message", "model crashed"),
                     false);
        append(&c->out, &c->out_len, "data: [DONE]\n\n");
        ret = send_stream(mc, c);
        break;
    default: {
        char *content = echo_content(req);
        if (stream) {
            build_echo_stream(c, req, content);
            ret = send_stream(mc, c);
        } else {
            json_t *o =
                json_pack("{s:s, s:s, s:[{s:i, s:{s:s, s:s}, s:s}], s:{s:i, s:i, s:i}}", "id", "mock-1",
                          "object", "chat.completion", "choices", "index", 0, "message", "role", "assistant",
                          "content", content, "finish_reason", "stop", "usage", "prompt_tokens", (int)c->len,
                          "completion_tokens", 5, "total_tokens", (int)c->len + 5);
            ret = send_json(mc, 200, o, NULL);
        }
        free(content);
    }
    }
    json_decref(req);
    return ret;
}

static enum MHD_Result answer_embed(struct MHD_Connection *mc, struct conn *c)
{
    json_t *req = json_loadb(c->body ? c->body : "", c->len, 0, NULL);
    json_t *in = json_object_get(req, "input");
    json_t *data = json_array();
    for (size_t i = json_array_size(in); i-- > 0;) {
        double len = (double)json_string_length(json_array_get(in, i));
        json_array_append_new(data, json_pack("{s:s, s:i, s:[f, f, f]}", "object", "embedding", "index",
                                              (int)i, "embedding", (double)i, 2.0 * (double)i, len));
    }
    json_decref(req);
    return send_json(mc, 200, json_pack("{s:s, s:o}", "object", "list", "data", data), NULL);
}

static enum MHD_Result answer_models(struct MHD_Connection *mc)
{
    json_t *data = json_array();
    json_array_append_new(data, json_pack("{s:s, s:s}", "id", "m1", "object", "model"));
    json_array_append_new(data, json_pack("{s:s, s:s}", "id", "m2", "object", "model"));
    pthread_mutex_lock(&M.mu);
    for (int i = 0; i < M.n_listed; i++)
        json_array_append_new(data, json_pack("{s:s, s:s}", "id", M.listed[i], "object", "model"));
    pthread_mutex_unlock(&M.mu);
    return send_json(mc, 200, json_pack("{s:s, s:o}", "object", "list", "data", data), NULL);
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
        *con_cls = c;
        return MHD_YES;
    }
    if (*upload_size) {
        c->body = realloc(c->body, c->len + *upload_size + 1);
        memcpy(c->body + c->len, upload, *upload_size);
        c->len += *upload_size;
        c->body[c->len] = '\0';
        *upload_size = 0;
        return MHD_YES;
    }
    if (c->started)
        return MHD_YES;
    c->started = true;
    record(method, url, mc, c->body ? c->body : "", c->len);
    if (!strcmp(method, "POST") && !strcmp(url, "/v1/chat/completions"))
        return answer_chat(mc, c);
    if (!strcmp(method, "POST") && !strcmp(url, "/v1/embeddings"))
        return answer_embed(mc, c);
    if (!strcmp(method, "GET") && !strcmp(url, "/v1/models"))
        return answer_models(mc);
    return send_json(mc, 404, json_pack("{s:{s:s}}", "error", "message", "no such route"), NULL);
}

static void on_completed(void *cls, struct MHD_Connection *mc, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)mc;
    (void)toe;
    struct conn *c = *con_cls;
    if (!c)
        return;
    if (c->kind == K_LONG) {
        pthread_mutex_lock(&M.mu);
        M.long_ended++;
        pthread_cond_broadcast(&M.cv);
        pthread_mutex_unlock(&M.mu);
    }
    free(c->body);
    free(c->out);
    free(c);
    *con_cls = NULL;
}

int mock_start(void)
{
    M.stop = false;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    M.d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL,
                           on_request, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                           MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_END);
    if (!M.d)
        return 0;
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(M.d, MHD_DAEMON_INFO_BIND_PORT);
    return info ? info->port : 0;
}

void mock_stop(void)
{
    pthread_mutex_lock(&M.mu);
    M.stop = true;
    pthread_cond_broadcast(&M.cv);
    pthread_mutex_unlock(&M.mu);
    if (M.d)
        MHD_stop_daemon(M.d);
    M.d = NULL;
    mock_reset();
}

void mock_reset(void)
{
    pthread_mutex_lock(&M.mu);
    for (int i = 0; i < M.n_rec; i++)
        free(M.rec[i].body);
    M.n_rec = 0;
    for (int i = 0; i < M.n_listed; i++)
        free(M.listed[i]);
    M.n_listed = 0;
    M.flaky_seen = 0;
    M.long_ended = 0;
    pthread_mutex_unlock(&M.mu);
}

void mock_list_model(const char *name)
{
    pthread_mutex_lock(&M.mu);
    if (M.n_listed < MAX_LISTED)
        M.listed[M.n_listed++] = strdup(name);
    pthread_mutex_unlock(&M.mu);
}

struct mock_request *mock_requests(int *n)
{
    pthread_mutex_lock(&M.mu);
    struct mock_request *r = calloc((size_t)M.n_rec + 1, sizeof *r);
    for (int i = 0; i < M.n_rec; i++) {
        r[i] = M.rec[i];
        r[i].body = strdup(M.rec[i].body);
    }
    *n = M.n_rec;
    pthread_mutex_unlock(&M.mu);
    return r;
}

void mock_requests_free(struct mock_request *r, int n)
{
    for (int i = 0; r && i < n; i++)
        free(r[i].body);
    free(r);
}

int mock_long_ended(void)
{
    pthread_mutex_lock(&M.mu);
    int n = M.long_ended;
    pthread_mutex_unlock(&M.mu);
    return n;
}
