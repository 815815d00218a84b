/* 'hestia serve': the OpenAI-compatible HTTP server.
 *
 * Defaults, then the YAML file (--config), then flags: flags win. With no
 * model anywhere it serves models/default.gguf, else
 * ../shared/models/stories260K.gguf (relative to the current directory, as
 * `make run` starts it). SIGTERM and SIGINT only write a byte to a pipe; the
 * main thread, waiting on that pipe, does the graceful stop. */
#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/parse.h"
#include "cli/cli.h"
#include "model/chat.h"
#include "server/config.h"
#include "server/server.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define CMD "serve"

static const char *const k_default_models[] = {"models/default.gguf", "../shared/models/stories260K.gguf"};

struct serve_opts {
    const char *config;
    const char *agents;
    const char *model;
    const char *alias;
    const char *host;
    int port;
    bool port_set;
    const char *port_file;
    int parallel, n_ctx, threads, n_batch, queue;
    const char *store;
    bool log_bodies;
    bool insecure;
    int timeout_s;
    int drain_s;
    int64_t max_body;
    int max_messages, max_input_tokens;
    const char *tmpl;
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: hestia serve [options]\n"
            "\n"
            "Serves the OpenAI API (/v1/chat/completions, /v1/completions, /v1/embeddings,\n"
            "/v1/models), expert agents (/v1/agents, /v1/assess), /admin/adapters, /health\n"
            "and /metrics. Flags override the --config file.\n"
            "\n"
            "  --config FILE          YAML configuration (server, store, limits, rate_limits, models,\n"
            "                         adapters, agents)\n"
            "  --agents FILE          expert agents and adapters (e.g. config/agents.yaml), added to\n"
            "                         those of --config\n"
            "  -m, --model FILE       a local GGUF model (default: models/default.gguf, else\n"
            "                         ../shared/models/stories260K.gguf)\n"
            "  --alias NAME           the name clients use for -m (default: the file name\n"
            "                         without .gguf); the first model also answers to \"default\"\n"
            "  --host H               address to bind (default 127.0.0.1)\n"
            "  --port P               port (default 8000; 0 = any free port)\n"
            "  --port-file FILE       write the bound port to FILE once listening\n"
            "  --parallel N           concurrent sequences per model (default 4)\n"
            "  --ctx N                context positions per sequence (default: the model's, at most 4096)\n"
            "  --threads N            compute threads (default: all CPUs)\n"
            "  --batch N              most tokens per forward pass (default 512)\n"
            "  --queue N              requests waiting beyond the slots (default 64; more: 503)\n"
            "  --store FILE           the SQLite store (default ./hestia.db)\n"
            "  --log-bodies           keep request and response bodies (redacted) in the store\n"
            "  --insecure             allow a non-loopback --host while the store has no API key\n"
            "  --timeout S            cut a client idle for S seconds (default 30)\n"
            "  --drain-timeout S      on SIGTERM, let running answers finish for S seconds (default 30)\n"
            "  --max-body BYTES       largest request body (default 1048576; more: 413)\n"
            "  --max-messages N       most chat messages per request (default 20)\n"
            "  --max-input-tokens N   most prompt tokens per request (default 4000)\n"
            "  --chat-template NAME   override the model's chat template: %s\n",
            hs_tmpl_names());
}

static int bad_value(const char *flag, const char *v, const char *what)
{
    return hs_cli_usage(CMD, "%s: '%s' is not %s", flag, v, what);
}

/* Returns 0 to go on, 1 after --help, or 2 (usage error, printed). */
static int parse_args(int argc, char **argv, struct serve_opts *o)
{
    memset(o, 0, sizeof *o);
    o->parallel = o->n_ctx = o->threads = o->n_batch = o->queue = -1;
    o->timeout_s = o->max_messages = o->max_input_tokens = -1;
    o->max_body = -1;
    o->drain_s = 30;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 1;
        }
        if (!strcmp(a, "--log-bodies")) {
            o->log_bodies = true;
            continue;
        }
        if (!strcmp(a, "--insecure")) {
            o->insecure = true;
            continue;
        }
        if (i + 1 >= argc)
            return hs_cli_usage(CMD, "%s needs a value, or is unknown", a);
        const char *v = argv[++i];
        if (!strcmp(a, "--config")) {
            o->config = v;
        } else if (!strcmp(a, "--agents")) {
            o->agents = v;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            o->model = v;
        } else if (!strcmp(a, "--alias")) {
            if (!*v)
                return hs_cli_usage(CMD, "--alias: the name is empty");
            o->alias = v;
        } else if (!strcmp(a, "--host")) {
            o->host = v;
        } else if (!strcmp(a, "--port")) {
            if (hs_parse_int(v, 0, 65535, &o->port))
                return bad_value(a, v, "a port (0..65535)");
            o->port_set = true;
        } else if (!strcmp(a, "--port-file")) {
            o->port_file = v;
        } else if (!strcmp(a, "--parallel")) {
            if (hs_parse_int(v, 1, 1024, &o->parallel))
                return bad_value(a, v, "a slot count (1..1024)");
        } else if (!strcmp(a, "--ctx")) {
            if (hs_parse_int(v, 1, 1 << 24, &o->n_ctx))
                return bad_value(a, v, "a positive integer");
        } else if (!strcmp(a, "--threads")) {
            if (hs_parse_int(v, 1, 1024, &o->threads))
                return bad_value(a, v, "a thread count (1..1024)");
        } else if (!strcmp(a, "--batch")) {
            if (hs_parse_int(v, 1, 1 << 20, &o->n_batch))
                return bad_value(a, v, "a positive integer");
        } else if (!strcmp(a, "--queue")) {
            if (hs_parse_int(v, 0, 1 << 20, &o->queue))
                return bad_value(a, v, "an integer >= 0");
        } else if (!strcmp(a, "--store")) {
            o->store = v;
        } else if (!strcmp(a, "--timeout")) {
            if (hs_parse_int(v, 0, 86400, &o->timeout_s))
                return bad_value(a, v, "seconds (0..86400)");
        } else if (!strcmp(a, "--drain-timeout")) {
            if (hs_parse_int(v, 0, 86400, &o->drain_s))
                return bad_value(a, v, "seconds (0..86400)");
        } else if (!strcmp(a, "--max-body")) {
            if (hs_parse_i64(v, 1, (int64_t)1 << 40, &o->max_body))
                return bad_value(a, v, "a byte count");
        } else if (!strcmp(a, "--max-messages")) {
            if (hs_parse_int(v, 1, 1 << 20, &o->max_messages))
                return bad_value(a, v, "a positive integer");
        } else if (!strcmp(a, "--max-input-tokens")) {
            if (hs_parse_int(v, 1, 1 << 24, &o->max_input_tokens))
                return bad_value(a, v, "a positive integer");
        } else if (!strcmp(a, "--chat-template")) {
            if (hs_tmpl_from_name(v) == HS_TMPL_UNKNOWN)
                return hs_cli_usage(CMD, "--chat-template: unknown template '%s' (known: %s)", v,
                                    hs_tmpl_names());
            o->tmpl = v;
        } else {
            return hs_cli_usage(CMD, "unknown option '%s'", a);
        }
    }
    if (o->alias && !o->model)
        return hs_cli_usage(CMD, "--alias names the -m model; give -m too");
    return 0;
}

/* The file name without its folders and a .gguf ending. */
static char *model_name_of(const char *path)
{
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    size_t n = strlen(b);
    if (n > 5 && !strcmp(b + n - 5, ".gguf"))
        n -= 5;
    return hs_strndup(b, n ? n : strlen(b));
}

/* Puts models[i] first: the first model answers to "default". */
static void make_first(struct hs_serve_config *c, int i)
{
    if (i <= 0 || i >= c->n_models)
        return;
    struct hs_model_entry e = c->models[i];
    memmove(&c->models[1], &c->models[0], (size_t)i * sizeof e);
    c->models[0] = e;
}

static int apply_flags(struct hs_serve_config *c, const struct serve_opts *o, hs_err *err)
{
    if ((o->host && hs_serve_config_set_str(&c->host, o->host)) ||
        (o->store && hs_serve_config_set_str(&c->store_path, o->store)))
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    if (o->port_set)
        c->port = o->port;
    if (o->parallel > 0)
        c->parallel = o->parallel;
    if (o->n_ctx > 0)
        c->n_ctx = o->n_ctx;
    if (o->threads > 0)
        c->threads = o->threads;
    if (o->n_batch > 0)
        c->n_batch = o->n_batch;
    if (o->queue >= 0)
        c->queue_max = o->queue;
    if (o->timeout_s >= 0)
        c->timeout_s = o->timeout_s;
    if (o->max_body > 0)
        c->max_body_bytes = (size_t)o->max_body;
    if (o->max_messages > 0)
        c->max_messages = o->max_messages;
    if (o->max_input_tokens > 0)
        c->max_input_tokens = o->max_input_tokens;
    if (o->log_bodies)
        c->log_bodies = true;
    if (o->insecure)
        c->insecure = true;

    const char *path = o->model;
    if (!path && c->n_models == 0) {
        for (size_t i = 0; i < sizeof k_default_models / sizeof k_default_models[0] && !path; i++)
            if (access(k_default_models[i], R_OK) == 0)
                path = k_default_models[i];
        if (!path)
            return hs_err_set(err, HS_ENOTFOUND,
                              "no model: pass -m MODEL.gguf, put one at models/default.gguf, or make a small "
                              "one with 'hestia synth -o models/default.gguf --shape tiny'");
    }
    if (path) {
        char *name = o->alias ? hs_strdup(o->alias) : model_name_of(path);
        if (!name)
            return hs_err_set(err, HS_ENOMEM, "out of memory");
        int rc = hs_serve_config_set_model(c, name, path, err);
        if (!rc) {
            for (int i = 0; i < c->n_models; i++)
                if (!strcmp(c->models[i].name, name)) {
                    make_first(c, i);
                    if (o->tmpl && hs_serve_config_set_str(&c->models[0].chat_template, o->tmpl))
                        rc = hs_err_set(err, HS_ENOMEM, "out of memory");
                    break;
                }
        }
        hs_free(name);
        if (rc)
            return rc;
    } else if (o->tmpl) {
        for (int i = 0; i < c->n_models; i++)
            if (c->models[i].path && !c->models[i].chat_template &&
                hs_serve_config_set_str(&c->models[i].chat_template, o->tmpl))
                return hs_err_set(err, HS_ENOMEM, "out of memory");
    }
    return HS_OK;
}

/* ---- signals: the handler writes one byte; main waits for it ---- */

static int g_sig_pipe[2] = {-1, -1};

static void on_signal(int sig)
{
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    ssize_t w = write(g_sig_pipe[1], &b, 1);
    (void)w; /* a full pipe already holds a wake-up */
    errno = saved;
}

static int install_signals(void)
{
    if (pipe(g_sig_pipe) != 0)
        return -1;
    for (int i = 0; i < 2; i++) {
        fcntl(g_sig_pipe[i], F_SETFD, FD_CLOEXEC);
        fcntl(g_sig_pipe[i], F_SETFL, O_NONBLOCK);
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (sigaction(SIGTERM, &sa, NULL) || sigaction(SIGINT, &sa, NULL))
        return -1;
    signal(SIGPIPE, SIG_IGN); /* a client that hangs up mid-write is an error code, not a death */
    return 0;
}

static int wait_signal(void)
{
    for (;;) {
        struct pollfd p = {.fd = g_sig_pipe[0], .events = POLLIN};
        int n = poll(&p, 1, -1);
        if (n < 0 && errno == EINTR)
            continue;
        unsigned char b = 0;
        if (n > 0 && read(g_sig_pipe[0], &b, 1) == 1)
            return b;
        if (n < 0)
            return 0;
    }
}

/* Written to a temporary name and renamed, so a reader never sees half. */
static int write_port_file(const char *path, int port, hs_err *err)
{
    size_t n = strlen(path) + 8;
    char *tmp = hs_malloc(n);
    if (!tmp)
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    snprintf(tmp, n, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    int rc = HS_OK;
    if (!f || fprintf(f, "%d\n", port) < 0 || fclose(f) != 0 || rename(tmp, path) != 0)
        rc = hs_err_set(err, HS_EIO, "cannot write the port file %s: %s", path, strerror(errno));
    hs_free(tmp);
    return rc;
}

int hs_cmd_serve(int argc, char **argv)
{
    struct serve_opts o;
    int rc = parse_args(argc, argv, &o);
    if (rc)
        return rc == 1 ? 0 : rc;

    struct hs_serve_config cfg;
    hs_serve_config_default(&cfg);
    hs_err err = {0};
    hs_server *srv = NULL;
    int status = 1;
    if ((o.config && hs_serve_config_load(&cfg, o.config, &err)) ||
        (o.agents && hs_serve_config_load_agents(&cfg, o.agents, &err)) || apply_flags(&cfg, &o, &err) ||
        hs_serve_config_check(&cfg, &err)) {
        status = hs_cli_fail_err(CMD, &err);
        goto out;
    }
    if (install_signals()) {
        status = hs_cli_fail(CMD, "cannot install the signal handlers: %s", strerror(errno));
        goto out;
    }
    if (hs_server_create(&cfg, NULL, &srv, &err) || hs_server_listen(srv, &err)) {
        status = hs_cli_fail_err(CMD, &err);
        goto out;
    }
    int keys = hs_store_key_count(hs_server_store(srv));
    hs_log_info("serve.store", "path=%s keys=%d auth=%s log_bodies=%s", cfg.store_path, keys > 0 ? keys : 0,
                keys > 0 ? "keyed" : "open", cfg.log_bodies ? "yes" : "no");
    if (o.port_file && write_port_file(o.port_file, hs_server_port(srv), &err)) {
        status = hs_cli_fail_err(CMD, &err);
        goto out;
    }
    if (hs_server_load_models(srv, &err)) {
        status = hs_cli_fail_err(CMD, &err);
        goto out;
    }
    const char *host = cfg.host && *cfg.host ? cfg.host : "127.0.0.1";
    bool v6 = strchr(host, ':') != NULL;
    hs_log_info("serve.listening", "address=http://%s%s%s:%d models=%d timeout_s=%d max_body=%zu",
                v6 ? "[" : "", host, v6 ? "]" : "", hs_server_port(srv), cfg.n_models, cfg.timeout_s,
                cfg.max_body_bytes);
    int sig = wait_signal();
    hs_log_info("serve.signal", "signal=%s", sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "?");
    hs_server_shutdown(srv, o.drain_s * 1000);
    status = 0;
out:
    hs_server_free(srv);
    hs_serve_config_free(&cfg);
    return status;
}
