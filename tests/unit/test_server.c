/* server/server: the request pipeline through hs_server_handle, without
 * sockets, on a tiny synthetic model: /health through loading, ready and
 * draining; x-request-id handling; routes, 404 and 405; collected and
 * streamed answers agreeing; one store record per request; a client that
 * hangs up mid-stream; keys and scopes; rate limits; body size; the refusal
 * to listen on a public address without keys. What the store holds is read
 * back through SQLite directly. */
#include "test_util.h"

#include "base/mem.h"
#include "model/synth.h"
#include "ops/store.h"
#include "server/config.h"
#include "server/server.h"

#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static char *g_model;

static int write_model(void **state)
{
    (void)state;
    g_model = hs_test_tmpfile("server-tiny.gguf");
    struct hs_synth_params p;
    hs_synth_params_default(&p);
    p.n_embd = 64;
    p.n_layer = 1;
    p.n_head = 4;
    p.n_head_kv = 2;
    p.n_ff = 128;
    p.n_vocab = 512;
    p.n_ctx_train = 512;
    hs_err err = {0};
    return hs_synth_write(g_model, &p, NULL, &err) == HS_OK ? 0 : -1;
}

static int free_model(void **state)
{
    (void)state;
    free(g_model);
    return 0;
}

/* ---- a server ---- */

struct srv {
    struct hs_serve_config cfg;
    hs_server *s;
    char *db;
};

static void srv_start(struct srv *v, const char *name, const char *extra, int cap, bool load)
{
    char file[64];
    snprintf(file, sizeof file, "%s.db", name);
    v->db = hs_test_tmpfile(file);
    unlink(v->db);
    char yaml[2048];
    snprintf(yaml, sizeof yaml,
             "server: {parallel: 2, ctx: 128, threads: 1, batch: 64, queue: 4}\n"
             "store: {path: \"%s\"}\n"
             "limits: {max_body_bytes: 2048, max_messages: 4, max_input_tokens: 64}\n"
             "%s"
             "models:\n  - {name: tiny, path: \"%s\"}\n",
             v->db, extra ? extra : "", g_model);
    hs_err err = {0};
    hs_serve_config_default(&v->cfg);
    assert_int_equal(hs_serve_config_parse(&v->cfg, yaml, strlen(yaml), "test.yaml", &err), HS_OK);
    struct hs_server_opts o = {.max_tokens_cap = cap, .no_http = true};
    assert_int_equal(hs_server_create(&v->cfg, &o, &v->s, &err), HS_OK);
    assert_int_equal(hs_server_listen(v->s, &err), HS_OK);
    if (load)
        assert_int_equal(hs_server_load_models(v->s, &err), HS_OK);
}

static void srv_stop(struct srv *v)
{
    hs_server_free(v->s);
    hs_serve_config_free(&v->cfg);
    free(v->db);
}

/* ---- a request ---- */

struct treq {
    const char *names[4];
    const char *values[4];
    int n;
    int gone_after; /* probes before the client is gone; < 0 never */
    bool public_client;
    bool too_large;
};

static const char *thdr(void *u, const char *name)
{
    struct treq *t = u;
    for (int i = 0; i < t->n; i++)
        if (!strcasecmp(t->names[i], name))
            return t->values[i];
    return NULL;
}

static bool tgone(void *u)
{
    struct treq *t = u;
    if (t->gone_after < 0)
        return false;
    return t->gone_after-- <= 0;
}

static void call(hs_server *s, const char *method, const char *path, const char *body, struct treq *t,
                 struct hs_http_resp *resp)
{
    struct treq none = {.gone_after = -1};
    if (!t)
        t = &none;
    struct hs_http_req req = {
        .method = method,
        .path = path,
        .body = body ? body : "",
        .body_len = body ? strlen(body) : 0,
        .body_too_large = t->too_large,
        .client = t->public_client ? "192.0.2.9" : "127.0.0.1",
        .loopback = !t->public_client,
        .header = thdr,
        .header_user = t,
        .gone = {tgone, t},
    };
    memset(resp, 0, sizeof *resp);
    hs_server_handle(s, &req, resp);
    assert_non_null(hs_http_resp_get_header(resp, "x-request-id"));
}

/* Reads a streamed body to its end; *rc gets the last pull's result. */
static char *drain(struct hs_http_resp *r, long *rc)
{
    hs_buf all = {0};
    char buf[256];
    long n = 0;
    for (int i = 0; i < 100000; i++) {
        n = r->pull(r->pull_user, buf, sizeof buf);
        if (n <= 0)
            break;
        hs_buf_append(&all, buf, (size_t)n);
    }
    if (rc)
        *rc = n;
    char *s = hs_buf_steal(&all);
    return s ? s : hs_strdup("");
}

static json_t *body_json(const struct hs_http_resp *r)
{
    json_t *j = json_loadb(r->body.data ? r->body.data : "", r->body.len, 0, NULL);
    assert_non_null(j);
    return j;
}

static void assert_error(const struct hs_http_resp *r, int status, const char *type, const char *code)
{
    assert_int_equal(r->status, status);
    json_t *j = body_json(r);
    json_t *e = json_object_get(j, "error");
    assert_true(json_is_object(e));
    assert_string_equal(json_string_value(json_object_get(e, "type")), type);
    if (code)
        assert_string_equal(json_string_value(json_object_get(e, "code")), code);
    assert_true(json_is_string(json_object_get(e, "message")));
    json_decref(j);
}

static int64_t sql_i64(const char *db_path, const char *sql)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static const char k_chat[] = "{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}],"
                             "\"max_tokens\":4,\"temperature\":0}";
static const char k_chat_stream[] =
    "{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}],"
    "\"max_tokens\":4,\"temperature\":0,\"stream\":true,"
    "\"stream_options\":{\"include_usage\":true}}";

/* ---- tests ---- */

static void health_follows_loading_ready_draining(void **state)
{
    (void)state;
    struct srv v;
    srv_start(&v, "health", NULL, 4, false);
    struct hs_http_resp r;
    call(v.s, "GET", "/health", NULL, NULL, &r);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.body.data, "\"loading\""));
    hs_http_resp_free(&r);
    call(v.s, "POST", "/v1/chat/completions", k_chat, NULL, &r);
    assert_error(&r, 503, "service_unavailable", NULL);
    assert_non_null(hs_http_resp_get_header(&r, "Retry-After"));
    hs_http_resp_free(&r);

    hs_err err = {0};
    assert_int_equal(hs_server_load_models(v.s, &err), HS_OK);
    call(v.s, "GET", "/health", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body.data, "\"ok\""));
    hs_http_resp_free(&r);

    hs_server_shutdown(v.s, 0);
    call(v.s, "GET", "/health", NULL, NULL, &r);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.body.data, "\"draining\""));
    hs_http_resp_free(&r);
    call(v.s, "POST", "/v1/chat/completions", k_chat, NULL, &r);
    assert_error(&r, 503, "service_unavailable", NULL);
    hs_http_resp_free(&r);
    srv_stop(&v);
}

static void request_id_is_echoed_sanitized_or_new(void **state)
{
    (void)state;
    struct srv v;
    srv_start(&v, "ids", NULL, 4, true);
    struct hs_http_resp r;
    struct treq t = {.names = {"x-request-id"}, .values = {"ab c\x01-9"}, .n = 1, .gone_after = -1};
    call(v.s, "POST", "/v1/chat/completions", k_chat, &t, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(hs_http_resp_get_header(&r, "x-request-id"), "abc-9");
    json_t *j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "id")), "abc-9");
    json_decref(j);
    hs_http_resp_free(&r);

    /* the same id again: echoed, and recorded under a name of its own */
    call(v.s, "POST", "/v1/chat/completions", k_chat, &t, &r);
    assert_string_equal(hs_http_resp_get_header(&r, "x-request-id"), "abc-9");
    hs_http_resp_free(&r);
    hs_store_flush(hs_server_store(v.s));
    assert_int_equal(sql_i64(v.db, "SELECT count(*) FROM requests WHERE id = 'abc-9' OR id LIKE 'abc-9.%'"),
                     2);

    char longid[300];
    memset(longid, 'x', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    t.values[0] = longid;
    call(v.s, "GET", "/v1/models", NULL, &t, &r);
    assert_int_equal(strlen(hs_http_resp_get_header(&r, "x-request-id")), 128);
    hs_http_resp_free(&r);

    static const struct {
        const char *path, *prefix;
    } k[] = {{"/v1/chat/completions", "chatcmpl-"},
             {"/v1/completions", "cmpl-"},
             {"/v1/embeddings", "embd-"},
             {"/v1/models", "req-"}};
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        call(v.s, "POST", k[i].path, "{}", NULL, &r);
        const char *id = hs_http_resp_get_header(&r, "x-request-id");
        assert_int_equal(strncmp(id, k[i].prefix, strlen(k[i].prefix)), 0);
        assert_true(strlen(id) > strlen(k[i].prefix) + 16);
        hs_http_resp_free(&r);
    }
    srv_stop(&v);
}

static void routes_models_404_405(void **state)
{
    (void)state;
    struct srv v;
    srv_start(&v, "routes", NULL, 4, true);
    struct hs_http_resp r;
    call(v.s, "GET", "/v1/models", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    json_t *j = body_json(&r);
    assert_int_equal(json_array_size(json_object_get(j, "data")), 1);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(json_object_get(j, "data"), 0), "id")), "tiny");
    json_decref(j);
    hs_http_resp_free(&r);
    call(v.s, "GET", "/v1/models/tiny", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    hs_http_resp_free(&r);
    call(v.s, "GET", "/v1/models/other", NULL, NULL, &r);
    assert_error(&r, 404, "invalid_request_error", "model_not_found");
    hs_http_resp_free(&r);
    call(v.s, "GET", "/v2/nothing", NULL, NULL, &r);
    assert_error(&r, 404, "not_found_error", "unknown_url");
    hs_http_resp_free(&r);
    call(v.s, "GET", "/v1/chat/completions", NULL, NULL, &r);
    assert_error(&r, 405, "invalid_request_error", "method_not_allowed");
    assert_string_equal(hs_http_resp_get_header(&r, "Allow"), "POST");
    hs_http_resp_free(&r);
    /* "default" names the first model; an unknown one is a 404 naming the field */
    call(v.s, "POST", "/v1/completions", "{\"model\":\"default\",\"prompt\":\"a\",\"max_tokens\":1}", NULL,
         &r);
    assert_int_equal(r.status, 200);
    hs_http_resp_free(&r);
    call(v.s, "POST", "/v1/completions", "{\"model\":\"nope\",\"prompt\":\"a\"}", NULL, &r);
    assert_error(&r, 404, "invalid_request_error", "model_not_found");
    hs_http_resp_free(&r);
    srv_stop(&v);
}

static void streamed_equals_collected_and_each_request_is_recorded_once(void **state)
{
    (void)state;
    struct srv v;
    srv_start(&v, "stream", NULL, 4, true);
    struct hs_http_resp r;
    call(v.s, "POST", "/v1/chat/completions", k_chat, NULL, &r);
    assert_int_equal(r.status, 200);
    json_t *j = body_json(&r);
    json_t *msg = json_object_get(json_array_get(json_object_get(j, "choices"), 0), "message");
    char *want = strdup(json_string_value(json_object_get(msg, "content")));
    int want_tokens =
        (int)json_integer_value(json_object_get(json_object_get(j, "usage"), "completion_tokens"));
    json_decref(j);
    hs_http_resp_free(&r);

    call(v.s, "POST", "/v1/chat/completions", k_chat_stream, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(r.pull);
    assert_string_equal(hs_http_resp_get_header(&r, "Content-Type"), "text/event-stream");
    long rc;
    char *sse = drain(&r, &rc);
    hs_http_resp_free(&r);
    assert_int_equal(rc, 0);
    size_t n = strlen(sse);
    assert_true(n > 14 && !strcmp(sse + n - 14, "data: [DONE]\n\n"));
    hs_buf text = {0};
    int usage_tokens = -1;
    /* walk the events by hand: "data: {...}\n\n" */
    for (char *p = sse; (p = strstr(p, "data: {")) != NULL;) {
        char *end = strstr(p, "\n\n");
        assert_non_null(end);
        json_t *c = json_loadb(p + 6, (size_t)(end - p - 6), 0, NULL);
        assert_non_null(c);
        json_t *ch = json_array_get(json_object_get(c, "choices"), 0);
        json_t *content = ch ? json_object_get(json_object_get(ch, "delta"), "content") : NULL;
        if (json_is_string(content))
            hs_buf_puts(&text, json_string_value(content));
        json_t *u = json_object_get(c, "usage");
        if (json_is_object(u))
            usage_tokens = (int)json_integer_value(json_object_get(u, "completion_tokens"));
        json_decref(c);
        p = end;
    }
    assert_string_equal(text.data ? text.data : "", want);
    assert_int_equal(usage_tokens, want_tokens);
    hs_buf_free(&text);
    free(sse);
    free(want);

    call(v.s, "POST", "/v1/embeddings", "{\"model\":\"tiny\",\"input\":[\"a\",\"b c\"]}", NULL, &r);
    assert_int_equal(r.status, 200);
    j = body_json(&r);
    json_t *e0 = json_object_get(json_array_get(json_object_get(j, "data"), 0), "embedding");
    assert_int_equal(json_array_size(e0), 64);
    json_decref(j);
    hs_http_resp_free(&r);
    call(v.s, "GET", "/health", NULL, NULL, &r); /* a probe: not recorded */
    hs_http_resp_free(&r);
    call(v.s, "POST", "/v1/chat/completions", "{\"model\":\"tiny\",\"messages\":[{\"role\":\"x\"}]}", NULL,
         &r);
    assert_int_equal(r.status, 400);
    hs_http_resp_free(&r);
    hs_store_flush(hs_server_store(v.s));
    assert_int_equal(sql_i64(v.db, "SELECT count(*) FROM requests"), 4);
    assert_int_equal(sql_i64(v.db, "SELECT count(*) FROM requests WHERE stream = 1 AND status = 200 "
                                   "AND tokens_out > 0 AND ttft_ms >= 0"),
                     1);
    assert_int_equal(sql_i64(v.db, "SELECT count(*) FROM requests WHERE status = 400 AND error IS NOT NULL"),
                     1);
    srv_stop(&v);
}

static void client_gone_mid_stream_cuts_and_records_499(void **state)
{
    (void)state;
    struct srv v;
    srv_start(&v, "gone", NULL, 0, true);
    struct hs_http_resp r;
    struct treq t = {.names = {"x-request-id"}, .values = {"gone-1"}, .n = 1, .gone_after = 0};
    call(v.s, "POST", "/v1/completions",
         "{\"model\":\"tiny\",\"prompt\":\"a\",\"max_tokens\":100,\"ignore_eos\":true,\"stream\":true}", &t,
         &r);
    assert_int_equal(r.status, 200);
    long rc;
    char *sse = drain(&r, &rc);
    assert_true(rc < 0);
    assert_null(strstr(sse, "[DONE]"));
    free(sse);
    hs_http_resp_free(&r);

    /* a collected answer whose client leaves: cut too */
    struct treq t2 = {.names = {"x-request-id"}, .values = {"gone-2"}, .n = 1, .gone_after = 0};
    call(v.s, "POST", "/v1/completions",
         "{\"model\":\"tiny\",\"prompt\":\"a\",\"max_tokens\":100,\"ignore_eos\":true}", &t2, &r);
    assert_int_equal(r.status, 499);
    hs_http_resp_free(&r);
    hs_store_flush(hs_server_store(v.s));
    assert_int_equal(sql_i64(v.db,
                             "SELECT count(*) FROM requests WHERE id IN ('gone-1','gone-2') AND status = 499 "
                             "AND tokens_out < 100"),
                     2);
    srv_stop(&v);
}

static void keys_scopes_and_open_probes(void **state)
{
    (void)state;
    struct srv v;
    srv_start(&v, "keys", NULL, 4, true);
    char user[HS_STORE_KEY_CAP], admin[HS_STORE_KEY_CAP];
    hs_err err = {0};
    assert_int_equal(hs_store_key_create(hs_server_store(v.s), "u", HS_SCOPE_USER, user, sizeof user, &err),
                     HS_OK);
    assert_int_equal(
        hs_store_key_create(hs_server_store(v.s), "a", HS_SCOPE_ADMIN, admin, sizeof admin, &err), HS_OK);
    char bu[80], ba[80];
    snprintf(bu, sizeof bu, "Bearer %s", user);
    snprintf(ba, sizeof ba, "bearer   %s ", admin);
    struct hs_http_resp r;
    call(v.s, "POST", "/v1/chat/completions", k_chat, NULL, &r);
    assert_error(&r, 401, "authentication_error", "invalid_api_key");
    assert_string_equal(hs_http_resp_get_header(&r, "WWW-Authenticate"), "Bearer");
    hs_http_resp_free(&r);
    struct treq wrong = {.names = {"Authorization"}, .values = {"Bearer hs-nope"}, .n = 1, .gone_after = -1};
    call(v.s, "GET", "/v1/models", NULL, &wrong, &r);
    assert_error(&r, 401, "authentication_error", "invalid_api_key");
    hs_http_resp_free(&r);

    /* key store reloads within 2 s; the keys were made through this handle */
    struct treq tu = {.names = {"Authorization"}, .values = {bu}, .n = 1, .gone_after = -1};
    struct treq ta = {.names = {"Authorization"}, .values = {ba}, .n = 1, .gone_after = -1};
    for (int i = 0; i < 30; i++) {
        call(v.s, "GET", "/v1/models", NULL, &tu, &r);
        int st = r.status;
        hs_http_resp_free(&r);
        if (st == 200)
            break;
        usleep(100000);
    }
    call(v.s, "POST", "/v1/chat/completions", k_chat, &tu, &r);
    assert_int_equal(r.status, 200);
    hs_http_resp_free(&r);
    call(v.s, "GET", "/admin/keys", NULL, &tu, &r);
    assert_error(&r, 403, "permission_error", NULL);
    hs_http_resp_free(&r);
    call(v.s, "GET", "/admin/keys", NULL, &ta, &r);
    assert_int_equal(r.status, 200);
    assert_null(strstr(r.body.data, user + 6)); /* names and prefixes, never a secret */
    assert_null(strstr(r.body.data, admin + 6));
    assert_non_null(strstr(r.body.data, "\"u\""));
    hs_http_resp_free(&r);

    /* probes: /health is open; /metrics is open on loopback only */
    struct treq pub = {.gone_after = -1, .public_client = true};
    call(v.s, "GET", "/health", NULL, &pub, &r);
    assert_int_equal(r.status, 200);
    hs_http_resp_free(&r);
    call(v.s, "GET", "/metrics", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body.data, "hestia:"));
    hs_http_resp_free(&r);
    call(v.s, "GET", "/metrics", NULL, &pub, &r);
    assert_int_equal(r.status, 401);
    hs_http_resp_free(&r);

    /* every key revoked: loopback clients are served, network clients are not
       (the server must not turn open to the network it listens on) */
    assert_int_equal(hs_store_key_revoke(hs_server_store(v.s), "u", &err), HS_OK);
    assert_int_equal(hs_store_key_revoke(hs_server_store(v.s), "a", &err), HS_OK);
    call(v.s, "GET", "/v1/models", NULL, &pub, &r);
    assert_error(&r, 401, "authentication_error", "invalid_api_key");
    hs_http_resp_free(&r);
    call(v.s, "GET", "/v1/models", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    hs_http_resp_free(&r);
    hs_store_flush(hs_server_store(v.s));
    assert_int_equal(sql_i64(v.db, "SELECT count(*) FROM requests WHERE endpoint = '/v1/chat/completions' "
                                   "AND status = 200 AND key_name = 'u'"),
                     1);
    srv_stop(&v);
}

static void rate_limit_size_and_public_bind(void **state)
{
    (void)state;
    struct srv v;
    srv_start(&v, "limits", "rate_limits: {per_address: {requests_per_minute: 2}}\n", 4, true);
    struct hs_http_resp r;
    for (int i = 0; i < 2; i++) {
        call(v.s, "POST", "/v1/chat/completions", k_chat, NULL, &r);
        assert_int_equal(r.status, 200);
        assert_string_equal(hs_http_resp_get_header(&r, "x-ratelimit-limit-requests"), "2");
        hs_http_resp_free(&r);
    }
    call(v.s, "POST", "/v1/chat/completions", k_chat, NULL, &r);
    assert_error(&r, 429, "rate_limit_error", "rate_limit_exceeded");
    assert_non_null(hs_http_resp_get_header(&r, "Retry-After"));
    assert_string_equal(hs_http_resp_get_header(&r, "x-ratelimit-remaining-requests"), "0");
    hs_http_resp_free(&r);
    /* another address has its own window; with no key it is refused as a
       network client unless the server runs insecure */
    struct treq other = {.gone_after = -1, .public_client = true, .too_large = true};
    call(v.s, "POST", "/v1/chat/completions", "", &other, &r);
    assert_error(&r, 401, "authentication_error", "invalid_api_key");
    hs_http_resp_free(&r);
    v.cfg.insecure = true;
    call(v.s, "POST", "/v1/chat/completions", "", &other, &r);
    assert_error(&r, 413, "invalid_request_error", "request_too_large");
    hs_http_resp_free(&r);
    srv_stop(&v);

    /* no keys and a public address: refused unless insecure */
    struct hs_serve_config cfg;
    hs_serve_config_default(&cfg);
    char *db = hs_test_tmpfile("public.db");
    hs_serve_config_set_str(&cfg.store_path, db);
    hs_serve_config_set_str(&cfg.host, "0.0.0.0");
    struct hs_server_opts o = {.no_http = true};
    hs_server *s = NULL;
    hs_err err = {0};
    assert_int_equal(hs_server_create(&cfg, &o, &s, &err), HS_OK);
    assert_int_equal(hs_server_listen(s, &err), HS_EINVAL);
    assert_non_null(strstr(err.msg, "--insecure"));
    cfg.insecure = true;
    assert_int_equal(hs_server_listen(s, &err), HS_OK);
    hs_server_free(s);
    hs_serve_config_free(&cfg);
    free(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(health_follows_loading_ready_draining),
        cmocka_unit_test(request_id_is_echoed_sanitized_or_new),
        cmocka_unit_test(routes_models_404_405),
        cmocka_unit_test(streamed_equals_collected_and_each_request_is_recorded_once),
        cmocka_unit_test(client_gone_mid_stream_cuts_and_records_499),
        cmocka_unit_test(keys_scopes_and_open_probes),
        cmocka_unit_test(rate_limit_size_and_public_bind),
    };
    return cmocka_run_group_tests(tests, write_model, free_model);
}
