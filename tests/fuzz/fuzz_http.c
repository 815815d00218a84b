/* libFuzzer target for the server's request pipeline: fuzz-derived method,
 * path, headers and body go through hs_server_handle (auth, rate limits,
 * size, parsing, routing, the local engine or the upstream path, the
 * response builders, the record and the metrics) without sockets. Every
 * answer must carry an x-request-id and a status of a real HTTP class; an
 * error status must come with an OpenAI error object; a streamed answer is
 * read to its end (or cut, when the input says the client hangs up).
 *
 * Two servers share one tiny synthetic model (written once to a temporary
 * folder): an open one, and a keyed one with per-key and per-address rate
 * limits. Generation is capped at a few tokens (hs_server_opts.max_tokens_cap),
 * so the time goes to parsing, routing and errors. A model entry names an
 * upstream on a closed port, so the gateway's 502 path runs too.
 *
 * Input: byte 0 holds flags (bit 0: the keyed server; bit 1: send its valid
 * key; bit 2: the client hangs up after (byte0 >> 5) probes; bit 3: the body
 * was too large for the transport; bit 4: a loopback client), then
 * "METHOD PATH\n", header lines "Name: value\n", an empty line, the body. */
#include "base/buf.h"
#include "base/log.h"
#include "base/mem.h"
#include "model/synth.h"
#include "ops/store.h"
#include "server/config.h"
#include "server/server.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define MAX_HEADERS 16

struct fuzz_srv {
    struct hs_serve_config cfg;
    hs_server *srv;
    char key[HS_STORE_KEY_CAP];
};

static struct fuzz_srv g_open, g_keyed;
static char g_dir[64];

static void die(const char *what, const hs_err *err)
{
    fprintf(stderr, "fuzz_http: %s: %s\n", what, err ? err->msg : "");
    abort();
}

static void setup(struct fuzz_srv *f, const char *model, const char *name, bool keyed)
{
    char yaml[2048];
    snprintf(yaml, sizeof yaml,
             "server: {parallel: 2, ctx: 96, threads: 1, batch: 64, queue: 4, timeout_s: 5}\n"
             "store: {path: \"%s/%s.db\"}\n"
             "limits: {max_body_bytes: 4096, max_messages: 6, max_input_tokens: 48}\n"
             "%s"
             "models:\n"
             "  - {name: tiny, path: \"%s\"}\n"
             "  - {name: remote, upstream: {url: \"http://127.0.0.1:9/v1\", timeout_s: 2}}\n",
             g_dir, name,
             keyed ? "rate_limits: {per_key: {requests_per_minute: 40, tokens_per_minute: 400},"
                     " per_address: {requests_per_minute: 60}}\n"
                   : "",
             model);
    hs_err err = {0};
    hs_serve_config_default(&f->cfg);
    if (hs_serve_config_parse(&f->cfg, yaml, strlen(yaml), "fuzz.yaml", &err) ||
        hs_serve_config_check(&f->cfg, &err))
        die("config", &err);
    struct hs_server_opts opts = {.max_tokens_cap = 3, .no_http = true};
    if (hs_server_create(&f->cfg, &opts, &f->srv, &err))
        die("server", &err);
    if (keyed &&
        hs_store_key_create(hs_server_store(f->srv), "fuzz", HS_SCOPE_USER, f->key, sizeof f->key, &err))
        die("key", &err);
    if (hs_server_listen(f->srv, &err) || hs_server_load_models(f->srv, &err))
        die("start", &err);
}

static void cleanup(void)
{
    char path[128];
    static const char *const files[] = {"tiny.gguf", "open.db",      "open.db-wal", "open.db-shm",
                                        "keyed.db",  "keyed.db-wal", "keyed.db-shm"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", g_dir, files[i]);
        unlink(path);
    }
    rmdir(g_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (!getenv("HESTIA_LOG"))
        hs_log_set_level(HS_LOG_OFF);
    snprintf(g_dir, sizeof g_dir, "/tmp/hs-fuzz-http-XXXXXX");
    if (!mkdtemp(g_dir))
        die("mkdtemp", NULL);
    atexit(cleanup);
    char model[128];
    snprintf(model, sizeof model, "%s/tiny.gguf", g_dir);
    struct hs_synth_params p;
    hs_synth_params_default(&p);
    p.n_embd = 64;
    p.n_layer = 1;
    p.n_head = 4;
    p.n_head_kv = 2;
    p.n_ff = 128;
    p.n_vocab = 512;
    p.n_ctx_train = 256;
    hs_err err = {0};
    if (hs_synth_write(model, &p, NULL, &err))
        die("synth", &err);
    setup(&g_open, model, "open", false);
    setup(&g_keyed, model, "keyed", true);
    return 0;
}

/* ---- the request ---- */

struct freq {
    char *names[MAX_HEADERS];
    char *values[MAX_HEADERS];
    int n;
    int gone_after; /* probes until the client is gone; < 0 never */
};

static const char *get_header(void *user, const char *name)
{
    struct freq *f = user;
    for (int i = 0; i < f->n; i++)
        if (!strcasecmp(f->names[i], name))
            return f->values[i];
    return NULL;
}

static bool gone(void *user)
{
    struct freq *f = user;
    if (f->gone_after < 0)
        return false;
    if (f->gone_after == 0)
        return true;
    f->gone_after--;
    return false;
}

/* The next line of [*p, end) as a new string (NULs kept out), *p moved past it. */
static char *take_line(const char **p, const char *end)
{
    const char *s = *p, *nl = memchr(s, '\n', (size_t)(end - s));
    const char *e = nl ? nl : end;
    *p = nl ? nl + 1 : end;
    size_t n = (size_t)(e - s);
    if (n && s[n - 1] == '\r')
        n--;
    char *line = hs_strndup(s, n);
    if (line)
        line[strnlen(line, n)] = '\0';
    return line;
}

static void check_response(const struct hs_http_resp *r, bool streamed)
{
    if (!hs_http_resp_get_header(r, "x-request-id"))
        abort();
    if (r->status < 200 || r->status > 599)
        abort();
    if (r->status >= 400 && r->status != 499 && !streamed) {
        json_t *j = json_loadb(r->body.data ? r->body.data : "", r->body.len, 0, NULL);
        json_t *e = json_object_get(j, "error");
        if (!json_is_object(e) || !json_is_string(json_object_get(e, "message")) ||
            !json_is_string(json_object_get(e, "type")))
            abort();
        json_decref(j);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t flags = data[0];
    const char *p = (const char *)data + 1, *end = (const char *)data + size;
    struct fuzz_srv *fs = (flags & 1) ? &g_keyed : &g_open;
    struct freq f = {.gone_after = (flags & 4) ? flags >> 5 : -1};

    char *line = take_line(&p, end);
    char *method = line ? line : hs_strdup("");
    char *sp = line ? strchr(line, ' ') : NULL;
    const char *path = "/";
    if (sp) {
        *sp = '\0';
        path = sp + 1;
    }
    if (flags & 2) {
        char auth[sizeof fs->key + 16];
        snprintf(auth, sizeof auth, "Bearer %s", fs->key);
        f.names[f.n] = hs_strdup("Authorization");
        f.values[f.n++] = hs_strdup(auth);
    }
    while (p < end && f.n < MAX_HEADERS) {
        char *h = take_line(&p, end);
        if (!h || !*h) {
            hs_free(h);
            break;
        }
        char *colon = strchr(h, ':');
        const char *v = "";
        if (colon) {
            *colon = '\0';
            v = colon + 1;
            while (*v == ' ')
                v++;
        }
        f.names[f.n] = h;
        f.values[f.n++] = hs_strdup(v);
    }
    size_t body_len = (size_t)(end - p);
    char *body = hs_strndup(p, body_len); /* NUL-terminated, as the transport gives it */

    struct hs_http_req req = {
        .method = method,
        .path = path,
        .body = body ? body : "",
        .body_len = body ? body_len : 0,
        .body_too_large = (flags & 8) != 0,
        .client = (flags & 16) ? "127.0.0.1" : "203.0.113.7",
        .loopback = (flags & 16) != 0,
        .header = get_header,
        .header_user = &f,
        .gone = {gone, &f},
    };
    struct hs_http_resp resp = {0};
    hs_server_handle(fs->srv, &req, &resp);
    bool streamed = resp.pull != NULL;
    check_response(&resp, streamed);
    if (streamed) {
        char buf[1024];
        for (int i = 0; i < 100000; i++)
            if (resp.pull(resp.pull_user, buf, sizeof buf) <= 0)
                break;
    }
    hs_http_resp_free(&resp); /* ends the stream: its record is written now */

    hs_free(body);
    hs_free(method);
    for (int i = 0; i < f.n; i++) {
        hs_free(f.names[i]);
        hs_free(f.values[i]);
    }
    return 0;
}
