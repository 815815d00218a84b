/* 'hestia assess': one scenario to every expert agent of an agents file, in
 * parallel, against any OpenAI-compatible server (engine/assess.h does the
 * work); prints a table and each agent's answer, or one JSON document. */
#include "cli/cli.h"

#include "base/buf.h"
#include "base/clock.h"
#include "base/mem.h"
#include "base/parse.h"
#include "base/sys.h"
#include "engine/assess.h"
#include "server/config.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CMD "assess"
#define DEFAULT_AGENTS "config/agents.yaml"
#define DEFAULT_TIMEOUT_S 300

static void usage(FILE *f)
{
    fprintf(f,
            "usage: hestia assess --backend URL [options] SCENARIO\n"
            "\n"
            "Sends SCENARIO (a .json object, a .txt text, or - for stdin) to every agent of the\n"
            "agents file at once, each with its own system prompt, sampling and answer schema,\n"
            "and prints each agent's status, tokens, time to first token, latency and answer.\n"
            "Works with any OpenAI-compatible server: hestia, vLLM, llama.cpp's server, Ollama,\n"
            "LM Studio.\n"
            "  --backend URL      the server's API base, e.g. http://127.0.0.1:8000/v1\n"
            "                     (/v1 is added to a URL without a path)\n"
            "  --key K            API key (default: $HESTIA_API_KEY)\n"
            "  --model M          the model every agent's request names (default: the agent's\n"
            "                     id when the server lists it, else the server's first model)\n"
            "  --agents FILE      agents file (default %s)\n"
            "  --only ID,ID,...   only these agents\n"
            "  --max-tokens N     per answer (default: each agent's own, else 512)\n"
            "  --temperature T    for every agent (default: each agent's own)\n"
            "  --seed S           sent with every request\n"
            "  --parallel N       requests in flight at once (default: all)\n"
            "  --timeout S        seconds of silence before a request is given up (default %d)\n"
            "  --json             one JSON document instead of the table\n"
            "Exit status: 0 when every agent answered, 1 when some failed (the table still\n"
            "shows them) or the backend cannot be reached, 2 for a usage error.\n",
            DEFAULT_AGENTS, DEFAULT_TIMEOUT_S);
}

struct opts {
    const char *backend, *key, *model, *agents, *only, *scenario;
    int max_tokens, parallel, timeout_s;
    float temperature;
    long long seed;
    bool json;
};

/* Parses argv[1..]; returns 0, -1 after --help, or the usage exit code. */
static int parse(int argc, char **argv, struct opts *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return -1;
        }
        if (!strcmp(a, "--json")) {
            o->json = true;
            continue;
        }
        if (a[0] != '-' || !strcmp(a, "-")) {
            if (o->scenario)
                return hs_cli_usage(CMD, "unexpected argument '%s' (one SCENARIO only)", a);
            o->scenario = a;
            continue;
        }
        static const char *const valued[] = {"--backend",  "--key",        "--model",       "--agents",
                                             "--only",     "--max-tokens", "--temperature", "--seed",
                                             "--parallel", "--timeout"};
        bool known = false;
        for (size_t k = 0; k < sizeof valued / sizeof valued[0]; k++)
            known |= !strcmp(a, valued[k]);
        if (!known)
            return hs_cli_usage(CMD, "unknown option '%s'", a);
        if (i + 1 >= argc)
            return hs_cli_usage(CMD, "%s needs a value", a);
        const char *v = argv[++i];
        int64_t seed;
        if (!strcmp(a, "--backend"))
            o->backend = v;
        else if (!strcmp(a, "--key"))
            o->key = v;
        else if (!strcmp(a, "--model"))
            o->model = v;
        else if (!strcmp(a, "--agents"))
            o->agents = v;
        else if (!strcmp(a, "--only"))
            o->only = v;
        else if (!strcmp(a, "--max-tokens") && hs_parse_int(v, 1, 16777216, &o->max_tokens))
            return hs_cli_usage(CMD, "--max-tokens '%s' is not a number from 1 to 16777216", v);
        else if (!strcmp(a, "--temperature") &&
                 (hs_parse_f32(v, &o->temperature) || !(o->temperature >= 0 && o->temperature <= 2)))
            return hs_cli_usage(CMD, "--temperature '%s' is not a number from 0 to 2", v);
        else if (!strcmp(a, "--parallel") && hs_parse_int(v, 1, 1024, &o->parallel))
            return hs_cli_usage(CMD, "--parallel '%s' is not a number from 1 to 1024", v);
        else if (!strcmp(a, "--timeout") && hs_parse_int(v, 1, 86400, &o->timeout_s))
            return hs_cli_usage(CMD, "--timeout '%s' is not a number of seconds from 1 to 86400", v);
        else if (!strcmp(a, "--seed")) {
            if (hs_parse_i64(v, 0, INT64_MAX, &seed))
                return hs_cli_usage(CMD, "--seed '%s' is not a number from 0 up", v);
            o->seed = seed;
        }
    }
    if (!o->backend)
        return hs_cli_usage(CMD, "--backend URL is required");
    if (!o->scenario)
        return hs_cli_usage(CMD, "a SCENARIO file (.json, .txt, or - for stdin) is required");
    return 0;
}

static int read_scenario(const char *path, char **data, size_t *len)
{
    hs_err err = {0};
    if (strcmp(path, "-") != 0) {
        if (hs_read_file(path, data, len, &err))
            return hs_cli_fail_err(CMD, &err);
        return 0;
    }
    hs_buf b = {0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0)
        if (hs_buf_append(&b, chunk, n)) {
            hs_buf_free(&b);
            return hs_cli_fail(CMD, "out of memory reading the scenario from stdin");
        }
    if (ferror(stdin)) {
        hs_buf_free(&b);
        return hs_cli_fail(CMD, "reading the scenario from stdin failed");
    }
    *len = b.len;
    *data = hs_buf_steal(&b);
    if (!*data)
        *data = hs_strdup("");
    return *data ? 0 : hs_cli_fail(CMD, "out of memory");
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

/* Keeps only the agents --only names (in the file's order); each name must
 * be an agent. */
static int select_agents(struct hs_serve_config *cfg, const char *only, const char *file)
{
    char *list = hs_strdup(only);
    if (!list)
        return hs_cli_fail(CMD, "out of memory");
    bool *keep = hs_calloc((size_t)cfg->n_agents + 1, sizeof *keep);
    int rc = keep ? 0 : hs_cli_fail(CMD, "out of memory");
    for (char *p = list; !rc && p;) {
        char *comma = strchr(p, ',');
        if (comma)
            *comma = '\0';
        if (*p) {
            int found = -1;
            for (int i = 0; i < cfg->n_agents; i++)
                if (!strcmp(cfg->agents[i].id, p))
                    found = i;
            if (found < 0)
                rc = hs_cli_usage(CMD, "--only: %s has no agent '%s'", file, p);
            else
                keep[found] = true;
        }
        p = comma ? comma + 1 : NULL;
    }
    int k = 0;
    for (int i = 0; !rc && i < cfg->n_agents; i++) {
        if (keep[i]) {
            if (k != i)
                cfg->agents[k] = cfg->agents[i];
            k++;
        } else {
            hs_agent_free(&cfg->agents[i]);
        }
    }
    if (!rc) {
        cfg->n_agents = k;
        if (k == 0)
            rc = hs_cli_usage(CMD, "--only names no agent");
    }
    hs_free(keep);
    hs_free(list);
    return rc;
}

/* ---------------------------------------------------------------------------
 * output */

static void fmt_tokens(char *buf, size_t cap, int v)
{
    if (v < 0)
        snprintf(buf, cap, "-");
    else
        snprintf(buf, cap, "%d", v);
}

static const char *schema_word(const struct hs_assess_result *r)
{
    if (!r->agent->schema || r->rc)
        return "-";
    return r->schema_valid ? "valid" : "invalid";
}

static void print_table(const struct hs_assess_result *res, int n, double wall_ms)
{
    int w_id = 5, w_model = 5;
    for (int i = 0; i < n; i++) {
        int a = (int)strlen(res[i].agent->id), m = res[i].model ? (int)strlen(res[i].model) : 1;
        w_id = a > w_id ? a : w_id;
        w_model = m > w_model ? m : w_model;
    }
    if (w_model > 40)
        w_model = 40;
    printf("%-*s  %-*s  %-6s  %-7s  %7s  %7s  %8s  %10s\n", w_id, "agent", w_model, "model", "status",
           "schema", "in", "out", "TTFT ms", "latency ms");
    int ok = 0;
    for (int i = 0; i < n; i++) {
        const struct hs_assess_result *r = &res[i];
        char in[16], out[16];
        fmt_tokens(in, sizeof in, r->resp.prompt_tokens);
        fmt_tokens(out, sizeof out, r->resp.completion_tokens);
        ok += r->rc == HS_OK;
        printf("%-*s  %-*.*s  %-6s  %-7s  %7s  %7s  %8.0f  %10.0f\n", w_id, r->agent->id, w_model, w_model,
               r->model ? r->model : "-", r->rc ? "failed" : "ok", schema_word(r), in, out, r->resp.ttft_ms,
               r->resp.latency_ms);
    }
    printf("\n%d of %d agents answered in %.1f s\n", ok, n, wall_ms / 1000.0);
    for (int i = 0; i < n; i++) {
        const struct hs_assess_result *r = &res[i];
        const char *name = r->agent->name ? r->agent->name : r->agent->id;
        printf("\n== %s [%s] ==\n", name, r->agent->id);
        if (r->rc)
            printf("error: %s\n", r->error ? r->error : "failed");
        if (r->resp.content && r->resp.content[0]) {
            if (r->rc)
                printf("(partial answer)\n");
            size_t len = strlen(r->resp.content);
            fputs(r->resp.content, stdout);
            if (r->resp.content[len - 1] != '\n')
                fputc('\n', stdout);
        }
    }
}

/* Steals v (NULL is stored as null). */
static void put(json_t *o, const char *key, json_t *v)
{
    json_object_set_new(o, key, v ? v : json_null());
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *tokens_json(int v)
{
    return v < 0 ? json_null() : json_integer(v);
}

static int print_json(const char *scenario, size_t scen_len, const char *backend,
                      const struct hs_assess_result *res, int n, double wall_ms)
{
    json_t *root = json_object();
    if (!root)
        return hs_cli_fail(CMD, "out of memory");
    json_t *scen = json_loadb(scenario, scen_len, 0, NULL);
    if (!json_is_object(scen)) {
        json_decref(scen);
        scen = json_stringn(scenario, scen_len);
    }
    put(root, "scenario", scen);
    put(root, "backend", json_string(backend));
    put(root, "wall_ms", json_real(round(wall_ms * 10) / 10));
    json_t *arr = json_array();
    put(root, "agents", arr);
    for (int i = 0; arr && i < n; i++) {
        const struct hs_assess_result *r = &res[i];
        json_t *o = json_object();
        if (!o)
            break;
        put(o, "id", json_string(r->agent->id));
        put(o, "name", str_or_null(r->agent->name));
        put(o, "model", str_or_null(r->model));
        put(o, "status", json_string(r->rc ? "error" : "ok"));
        put(o, "error", r->rc ? str_or_null(r->error ? r->error : "failed") : json_null());
        put(o, "content", str_or_null(r->resp.content));
        size_t len;
        const char *doc = hs_assess_json_span(r->resp.content, &len);
        json_t *parsed = len ? json_loadb(doc, len, 0, NULL) : NULL;
        put(o, "parsed", parsed);
        put(o, "schema_valid", r->agent->schema && !r->rc ? json_boolean(r->schema_valid) : json_null());
        put(o, "finish_reason", str_or_null(r->resp.finish_reason));
        put(o, "prompt_tokens", tokens_json(r->resp.prompt_tokens));
        put(o, "completion_tokens", tokens_json(r->resp.completion_tokens));
        put(o, "ttft_ms", json_real(round(r->resp.ttft_ms * 10) / 10));
        put(o, "latency_ms", json_real(round(r->resp.latency_ms * 10) / 10));
        put(o, "attempts", json_integer(r->resp.attempts));
        json_array_append_new(arr, o);
    }
    /* 10 significant digits: milliseconds print as 80.6, not 80.599999999999994 */
    int rc = json_dumpf(root, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(10))
                 ? hs_cli_fail(CMD, "writing the JSON failed")
                 : 0;
    json_decref(root);
    if (!rc)
        fputc('\n', stdout);
    return rc;
}

/* ---------------------------------------------------------------------------
 * the command */

int hs_cmd_assess(int argc, char **argv)
{
    struct opts o = {
        .agents = DEFAULT_AGENTS, .timeout_s = DEFAULT_TIMEOUT_S, .temperature = NAN, .seed = -1};
    int rc = parse(argc, argv, &o);
    if (rc)
        return rc < 0 ? 0 : rc;
    if (!o.key) {
        const char *k = getenv("HESTIA_API_KEY");
        o.key = k && k[0] ? k : NULL;
    }

    char *scenario = NULL;
    size_t scen_len = 0;
    rc = read_scenario(o.scenario, &scenario, &scen_len);
    if (rc)
        return rc;
    if (ends_with(o.scenario, ".json")) {
        json_error_t je;
        json_t *j = json_loadb(scenario, scen_len, 0, &je);
        bool obj = json_is_object(j);
        json_decref(j);
        if (!obj) {
            hs_free(scenario);
            return j ? hs_cli_fail(CMD, "%s: not a JSON object", o.scenario)
                     : hs_cli_fail(CMD, "%s:%d:%d: invalid JSON: %s", o.scenario, je.line, je.column,
                                   je.text);
        }
    }
    hs_buf probe = {0};
    hs_err err = {0};
    if (hs_agent_scenario_text(&probe, scenario, scen_len, &err)) {
        hs_buf_free(&probe);
        hs_free(scenario);
        return hs_cli_fail(CMD, "%s: %s", o.scenario, err.msg);
    }
    hs_buf_free(&probe);

    struct hs_serve_config cfg;
    hs_serve_config_default(&cfg);
    if (hs_serve_config_load_agents(&cfg, o.agents, &err) || hs_serve_config_check(&cfg, &err)) {
        hs_serve_config_free(&cfg);
        hs_free(scenario);
        return hs_cli_fail_err(CMD, &err);
    }
    if (cfg.n_agents == 0)
        rc = hs_cli_fail(CMD, "%s declares no agents", o.agents);
    if (!rc && o.only)
        rc = select_agents(&cfg, o.only, o.agents);

    char *base = rc ? NULL : hs_client_api_base(o.backend);
    if (!rc && !base)
        rc = hs_cli_fail(CMD, "out of memory");
    hs_client *client = NULL;
    if (!rc) {
        struct hs_client_opts co;
        hs_client_opts_default(&co);
        co.base_url = base;
        co.api_key = o.key;
        co.timeout_ms = o.timeout_s * 1000;
        if (hs_client_create(&co, &client, &err))
            rc = hs_cli_fail(CMD, "--backend %s: %s", o.backend, err.msg);
    }
    /* One GET /models first: an unreachable backend or a wrong key is one
     * line here, not the same failure once per agent. */
    if (!rc) {
        char **names = NULL;
        int n_names = 0;
        if (hs_client_models(client, &names, &n_names, &err))
            rc = strstr(err.msg, base) ? hs_cli_fail_err(CMD, &err)
                                       : hs_cli_fail(CMD, "backend %s: %s", base, err.msg);
        hs_client_names_free(names, n_names);
    }

    struct hs_assess_result *res = NULL;
    double wall_ms = 0;
    if (!rc) {
        struct hs_assess_opts ao;
        hs_assess_opts_default(&ao);
        ao.model = o.model;
        ao.parallel = o.parallel;
        ao.max_tokens = o.max_tokens;
        ao.temperature = o.temperature;
        ao.seed = o.seed;
        int64_t t0 = hs_now_ns();
        if (hs_assess_run(client, cfg.agents, cfg.n_agents, scenario, scen_len, &ao, &res, &err))
            rc = hs_cli_fail(CMD, "backend %s: %s", base, err.msg);
        wall_ms = (double)(hs_now_ns() - t0) / 1e6;
    }
    if (!rc) {
        if (o.json)
            rc = print_json(scenario, scen_len, base, res, cfg.n_agents, wall_ms);
        else
            print_table(res, cfg.n_agents, wall_ms);
        for (int i = 0; !rc && i < cfg.n_agents; i++)
            if (res[i].rc)
                rc = 1;
        if (fflush(stdout) != 0 && !rc)
            rc = hs_cli_fail(CMD, "writing to stdout failed");
    }
    hs_assess_results_free(res, cfg.n_agents);
    hs_client_free(client);
    hs_free(base);
    hs_serve_config_free(&cfg);
    hs_free(scenario);
    return rc;
}
