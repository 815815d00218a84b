/* server/config: defaults, the example config/hestia.yaml, every error
 * naming file, line and key, and flags applied after the file; (issue 5)
 * adapters, agents and schemas, the shipped config/agents.yaml. */
#include "test_util.h"

#include "model/json_schema.h"
#include "server/config.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse(struct hs_serve_config *c, const char *text, hs_err *err)
{
    hs_err_clear(err);
    return hs_serve_config_parse(c, text, strlen(text), "t.yaml", err);
}

static void defaults(void **state)
{
    (void)state;
    struct hs_serve_config c;
    hs_serve_config_default(&c);
    assert_string_equal(c.host, "127.0.0.1");
    assert_int_equal(c.port, 8000);
    assert_int_equal(c.parallel, 4);
    assert_int_equal(c.n_ctx, 0);
    assert_int_equal(c.threads, 0);
    assert_int_equal(c.n_batch, 512);
    assert_int_equal(c.queue_max, 64);
    assert_false(c.insecure);
    assert_int_equal(c.timeout_s, 30);
    assert_int_equal(c.max_connections, 256);
    assert_string_equal(c.store_path, "./hestia.db");
    assert_false(c.log_bodies);
    assert_int_equal(c.max_body_bytes, 1 << 20);
    assert_int_equal(c.max_messages, 20);
    assert_int_equal(c.max_input_tokens, 4000);
    assert_int_equal(c.per_key.requests_per_minute, 0); /* off unless configured */
    assert_int_equal(c.per_address.tokens_per_minute, 0);
    assert_int_equal(c.n_models, 0);
    hs_err err;
    assert_int_equal(hs_serve_config_check(&c, &err), HS_OK);
    hs_serve_config_free(&c);
    hs_serve_config_free(&c); /* a freed config is empty: freeing again is harmless */
}

/* The shipped example parses and says what the guide says: 10/min and
 * 100/h per key, one local model. */
static void example_config_parses(void **state)
{
    (void)state;
    struct hs_serve_config c;
    hs_serve_config_default(&c);
    hs_err err;
    int rc = hs_serve_config_load(&c, "config/hestia.yaml", &err);
    if (rc)
        print_error("%s\n", err.msg);
    assert_int_equal(rc, HS_OK);
    assert_int_equal(hs_serve_config_check(&c, &err), HS_OK);
    assert_string_equal(c.host, "127.0.0.1");
    assert_int_equal(c.port, 8000);
    assert_int_equal(c.per_key.requests_per_minute, 10);
    assert_int_equal(c.per_key.requests_per_hour, 100);
    assert_int_equal(c.per_key.tokens_per_minute, 0);
    assert_int_equal(c.per_address.requests_per_minute, 0);
    assert_int_equal(c.max_body_bytes, 1048576);
    assert_int_equal(c.n_models, 1);
    assert_string_equal(c.models[0].name, "default");
    assert_string_equal(c.models[0].path, "models/default.gguf");
    assert_null(c.models[0].alias);
    assert_null(c.models[0].upstream_url);
    /* agents_file: config/agents.yaml */
    assert_int_equal(c.n_agents, 13);
    assert_int_equal(c.n_adapters, 0);
    assert_string_equal(c.agents[0].file, "config/agents.yaml");
    /* the same file again (--agents config/agents.yaml as well) */
    assert_int_equal(hs_serve_config_load_agents(&c, "config/agents.yaml", &err), HS_EINVAL);
    assert_non_null(strstr(err.msg, "already loaded"));
    assert_int_equal(c.n_agents, 13);
    hs_serve_config_free(&c);
}

/* The commented-out upstream in the example is valid once uncommented:
 * from "# - name: big" on, "# " is removed from each commented line, except
 * lines whose text is itself a comment (the alternative URLs). */
static void example_upstream_is_valid_when_uncommented(void **state)
{
    (void)state;
    FILE *f = fopen("config/hestia.yaml", "r");
    assert_non_null(f);
    static char out[32768];
    size_t o = 0;
    bool in_block = false;
    char line[512];
    while (fgets(line, sizeof(line), f)) {
        if (strstr(line, "# - name: big"))
            in_block = true;
        char *hash = strstr(line, "# ");
        bool blank_before = hash && strspn(line, " ") == (size_t)(hash - line);
        if (in_block && blank_before && hash[2 + strspn(hash + 2, " ")] != '#')
            memmove(hash, hash + 2, strlen(hash + 2) + 1);
        o += (size_t)snprintf(out + o, sizeof(out) - o, "%s", line);
    }
    fclose(f);
    assert_true(in_block);
    struct hs_serve_config c;
    hs_serve_config_default(&c);
    hs_err err;
    int rc = parse(&c, out, &err);
    if (rc)
        print_error("%s\n%s\n", err.msg, out);
    assert_int_equal(rc, HS_OK);
    assert_int_equal(c.n_models, 2);
    assert_string_equal(c.models[1].name, "big");
    assert_null(c.models[1].path);
    assert_string_equal(c.models[1].upstream_url, "http://127.0.0.1:8001/v1");
    assert_string_equal(c.models[1].upstream_model, "meta-llama/Llama-3.1-8B-Instruct");
    assert_string_equal(c.models[1].upstream_key, "sk-example");
    assert_int_equal(c.models[1].upstream_timeout_s, 120);
    assert_int_equal(hs_serve_config_check(&c, &err), HS_OK);
    hs_serve_config_free(&c);
}

static void every_key_lands(void **state)
{
    (void)state;
    const char *yaml = "server:\n"
                       "  host: 0.0.0.0\n"
                       "  port: 0\n"
                       "  parallel: 8\n"
                       "  ctx: 2048\n"
                       "  threads: 2\n"
                       "  batch: 64\n"
                       "  queue: 0\n"
                       "  insecure: true\n"
                       "  timeout_s: 5\n"
                       "  max_connections: 9\n"
                       "store: {path: /tmp/x.db, log_bodies: True}\n"
                       "limits:\n"
                       "  max_body_bytes: 4096\n"
                       "  max_messages: 0\n"
                       "  max_input_tokens: 100\n"
                       "rate_limits:\n"
                       "  per_key: {requests_per_minute: 1, requests_per_hour: 2, tokens_per_minute: 3}\n"
                       "  per_address:\n"
                       "    requests_per_minute: 4\n"
                       "    requests_per_hour: 5\n"
                       "    tokens_per_minute: 6\n"
                       "models:\n"
                       "  - name: a\n"
                       "    path: \"a.gguf\"\n"
                       "    ctx: 512\n"
                       "    parallel: 2\n"
                       "    threads: 1\n"
                       "    chat_template: chatml\n"
                       "  - name: b\n"
                       "    upstream:\n"
                       "      url: https://api.example.com/v1\n"
                       "      api_key: ~\n"
                       "      timeout_s: 9\n";
    struct hs_serve_config c;
    hs_serve_config_default(&c);
    hs_err err;
    int rc = parse(&c, yaml, &err);
    if (rc)
        print_error("%s\n", err.msg);
    assert_int_equal(rc, HS_OK);
    assert_string_equal(c.host, "0.0.0.0");
    assert_int_equal(c.port, 0);
    assert_int_equal(c.parallel, 8);
    assert_int_equal(c.n_ctx, 2048);
    assert_int_equal(c.threads, 2);
    assert_int_equal(c.n_batch, 64);
    assert_int_equal(c.queue_max, 0);
    assert_true(c.insecure);
    assert_int_equal(c.timeout_s, 5);
    assert_int_equal(c.max_connections, 9);
    assert_string_equal(c.store_path, "/tmp/x.db");
    assert_true(c.log_bodies);
    assert_int_equal(c.max_body_bytes, 4096);
    assert_int_equal(c.max_messages, 0);
    assert_int_equal(c.max_input_tokens, 100);
    assert_int_equal(c.per_key.requests_per_minute, 1);
    assert_int_equal(c.per_key.requests_per_hour, 2);
    assert_int_equal(c.per_key.tokens_per_minute, 3);
    assert_int_equal(c.per_address.requests_per_minute, 4);
    assert_int_equal(c.per_address.requests_per_hour, 5);
    assert_int_equal(c.per_address.tokens_per_minute, 6);
    assert_int_equal(c.n_models, 2);
    assert_string_equal(c.models[0].path, "a.gguf");
    assert_int_equal(c.models[0].n_ctx, 512);
    assert_int_equal(c.models[0].parallel, 2);
    assert_int_equal(c.models[0].threads, 1);
    assert_string_equal(c.models[0].chat_template, "chatml");
    assert_null(c.models[1].path);
    assert_string_equal(c.models[1].upstream_url, "https://api.example.com/v1");
    assert_null(c.models[1].upstream_key);
    assert_null(c.models[1].upstream_model);
    assert_int_equal(c.models[1].upstream_timeout_s, 9);
    assert_int_equal(hs_serve_config_check(&c, &err), HS_OK);

    /* a second file goes over the first: only what it names changes, its
       models list replaces the old one */
    assert_int_equal(parse(&c, "server: {port: 9000}\nmodels:\n  - {name: z, path: z.gguf}\n", &err), HS_OK);
    assert_int_equal(c.port, 9000);
    assert_string_equal(c.host, "0.0.0.0");
    assert_int_equal(c.n_models, 1);
    assert_string_equal(c.models[0].name, "z");
    hs_serve_config_free(&c);
}

struct bad {
    const char *yaml;
    int line;        /* expected "t.yaml:LINE:" */
    const char *key; /* the message must name it */
};

static const struct bad bads[] = {
    {"server:\n  prot: 8000\n", 2, "server.prot"},
    {"sever:\n  port: 8000\n", 1, "sever"},
    {"server:\n  port: 70000\n", 2, "server.port"},
    {"server:\n  port: abc\n", 2, "server.port"},
    {"server:\n  port: '8000'\n", 2, "server.port"},
    {"server:\n  port: 8000.5\n", 2, "server.port"},
    {"server:\n  parallel: 0\n", 2, "server.parallel"},
    {"server:\n  insecure: yes\n", 2, "server.insecure"},
    {"server:\n  host: [a, b]\n", 2, "server.host"},
    {"server: 5\n", 1, "server"},
    {"server:\n  port: 1\n\nstore:\n  path: x\n  log_body: true\n", 6, "store.log_body"},
    {"limits:\n  max_body_bytes: 0\n", 2, "limits.max_body_bytes"},
    {"rate_limits:\n  per_key:\n    requests_per_minut: 10\n", 3, "rate_limits.per_key.requests_per_minut"},
    {"rate_limits:\n  per_key:\n    requests_per_minute: -1\n", 3, "rate_limits.per_key.requests_per_minute"},
    {"rate_limits:\n  per_user: {}\n", 2, "rate_limits.per_user"},
    {"models:\n  - name: a\n    path: a.gguf\n  - name: b\n    pth: b.gguf\n", 5, "models[1].pth"},
    {"models:\n  - name: a\n    path: a.gguf\n  - name: a\n    path: b.gguf\n", 4, "models[1]"},
    {"models:\n  - path: a.gguf\n", 2, "models[0]"},
    {"models:\n  - name: a\n", 2, "models[0]"},
    {"models:\n  - name: a\n    path: a.gguf\n    upstream: {url: http://x/v1}\n", 2, "models[0]"},
    {"models:\n  - name: a\n    upstream: {url: ftp://x/v1}\n", 2, "models[0]"},
    {"models:\n  - name: a\n    upstream:\n      url: http://x/v1\n      key: s\n", 5,
     "models[0].upstream.key"},
    {"models:\n  - a.gguf\n", 2, "models[0]"},
    {"models: {name: a}\n", 1, "models"},
    {"a: &x 1\nserver:\n  port: *x\n", 1, "a"},
    {"server:\n  port: &p 1\n  threads: *p\n", 3, "server.threads"},
    {"- 1\n- 2\n", 1, "(top level)"},
    /* libfyaml 0.7 mis-reads '' escapes in single quotes: refused, double quotes work */
    {"store:\n  path: 'it''s'\n", 2, "store.path"},
    {"store:\n  'pa''th': x\n", 2, "store"},
};

/* Each mistake is reported as "t.yaml:LINE: KEY: ..." */
static void errors_name_file_line_and_key(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
        struct hs_serve_config c;
        hs_serve_config_default(&c);
        hs_err err;
        int rc = parse(&c, bads[i].yaml, &err);
        char want[64];
        snprintf(want, sizeof(want), "t.yaml:%d: ", bads[i].line);
        if (rc == HS_OK || strncmp(err.msg, want, strlen(want)) != 0 || !strstr(err.msg, bads[i].key))
            print_error("case %zu:\n%s  -> rc %d: %s\n  want %s ... %s\n", i, bads[i].yaml, rc, err.msg, want,
                        bads[i].key);
        assert_int_not_equal(rc, HS_OK);
        assert_memory_equal(err.msg, want, strlen(want));
        assert_non_null(strstr(err.msg, bads[i].key));
        hs_serve_config_free(&c);
    }
}

/* An unknown key's message lists the keys that are known there. */
static void unknown_key_lists_known_keys(void **state)
{
    (void)state;
    struct hs_serve_config c;
    hs_serve_config_default(&c);
    hs_err err;
    assert_int_not_equal(parse(&c, "store:\n  pth: x\n", &err), HS_OK);
    assert_non_null(strstr(err.msg, "unknown key"));
    assert_non_null(strstr(err.msg, "path"));
    assert_non_null(strstr(err.msg, "log_bodies"));
    hs_serve_config_free(&c);
}

/* YAML syntax errors carry libfyaml's line (and column). */
static void syntax_errors_have_lines(void **state)
{
    (void)state;
    struct hs_serve_config c;
    hs_serve_config_default(&c);
    hs_err err;
    assert_int_equal(parse(&c, "server:\n  port: 1\n  host: [a,\n", &err), HS_EFORMAT);
    assert_memory_equal(err.msg, "t.yaml:", 7);
    assert_true(err.msg[7] >= '1' && err.msg[7] <= '9');
    assert_int_equal(parse(&c, "server:\n  port: 1\n  port: 2\n", &err), HS_EFORMAT); /* duplicate key */
    assert_non_null(strstr(err.msg, "t.yaml:3:"));
    /* empty and comment-only files are no settings, not errors */
    assert_int_equal(parse(&c, "", &err), HS_OK);
    assert_int_equal(parse(&c, "# nothing here\n\n---\n", &err), HS_OK);
    assert_int_equal(parse(&c, "server:\n", &err), HS_OK);
    assert_int_equal(c.port, 8000);
    /* YAML is printable Unicode: other bytes are refused with their line (and
       never reach libfyaml, which can loop on them inside a %directive) */
    assert_int_equal(parse(&c, "server:\n  host: a\xff\n", &err), HS_EFORMAT);
    assert_non_null(strstr(err.msg, "t.yaml:2:"));
    assert_int_equal(parse(&c, "%\x9erve *p]\xd0\xfc", &err), HS_EFORMAT);
    assert_int_equal(parse(&c, "server:\n\n  host: a\x01\n", &err), HS_EFORMAT);
    assert_non_null(strstr(err.msg, "t.yaml:3:"));
    assert_int_equal(hs_serve_config_parse(&c, "a\0b", 3, "t.yaml", &err), HS_EFORMAT);
    assert_int_equal(parse(&c, "store: {path: \"it's \\u00e9\"}\n", &err), HS_OK);
    assert_string_equal(c.store_path, "it's \xc3\xa9");
    /* explicit keys never reach libfyaml, which crashes on this one (found by
       fuzz_config); a '?' inside a value, a quote or a comment is just text */
    assert_int_equal(parse(&c, "models:\n ? a n-me: \t>", &err), HS_EFORMAT);
    assert_non_null(strstr(err.msg, "t.yaml:2: explicit mapping keys"));
    assert_int_equal(parse(&c, "{? a: b}", &err), HS_EFORMAT);
    assert_int_equal(parse(&c, "server:\n  host: a? # what ? now\n", &err), HS_OK);
    assert_string_equal(c.host, "a?");
    assert_int_equal(parse(&c, "store: {path: \"x ? y\"}\n", &err), HS_OK);
    assert_string_equal(c.store_path, "x ? y");
    assert_int_equal(parse(&c, "store:\n  path: '? it is'\n", &err), HS_OK);
    assert_string_equal(c.store_path, "? it is");
    hs_serve_config_free(&c);

    hs_serve_config_default(&c);
    assert_int_equal(hs_serve_config_load(&c, "config/no-such-file.yaml", &err), HS_EIO);
    assert_non_null(strstr(err.msg, "no-such-file.yaml"));
    hs_serve_config_free(&c);
}

/* A bad models list leaves the previous list in place. */
static void failed_models_list_keeps_old_one(void **state)
{
    (void)state;
    struct hs_serve_config c;
    hs_serve_config_default(&c);
    hs_err err;
    assert_int_equal(parse(&c, "models:\n  - {name: a, path: a.gguf}\n", &err), HS_OK);
    assert_int_not_equal(parse(&c, "models:\n  - {name: b, path: b.gguf}\n  - {name: c}\n", &err), HS_OK);
    assert_int_equal(c.n_models, 1);
    assert_string_equal(c.models[0].name, "a");
    hs_serve_config_free(&c);
}

/* Flags come after the file: -m replaces the path of a model the file
 * named (keeping its other settings), or adds one. */
static void flags_after_file(void **state)
{
    (void)state;
    struct hs_serve_config c;
    hs_serve_config_default(&c);
    hs_err err;
    assert_int_equal(
        parse(&c,
              "models:\n"
              "  - {name: default, path: models/default.gguf, ctx: 1024, chat_template: llama3}\n"
              "  - name: remote\n"
              "    upstream: {url: http://127.0.0.1:9/v1, model: big, api_key: k}\n",
              &err),
        HS_OK);
    assert_int_equal(hs_serve_config_set_model(&c, "default", "other.gguf", &err), HS_OK);
    assert_int_equal(c.n_models, 2);
    assert_string_equal(c.models[0].path, "other.gguf");
    assert_int_equal(c.models[0].n_ctx, 1024);
    assert_string_equal(c.models[0].chat_template, "llama3");
    /* an upstream named by -m becomes local */
    assert_int_equal(hs_serve_config_set_model(&c, "remote", "r.gguf", &err), HS_OK);
    assert_string_equal(c.models[1].path, "r.gguf");
    assert_null(c.models[1].upstream_url);
    assert_null(c.models[1].upstream_key);
    assert_null(c.models[1].upstream_model);
    /* a new name is added */
    assert_int_equal(hs_serve_config_set_model(&c, "new", "n.gguf", &err), HS_OK);
    assert_int_equal(c.n_models, 3);
    assert_string_equal(c.models[2].name, "new");
    assert_int_equal(hs_serve_config_check(&c, &err), HS_OK);
    assert_int_equal(hs_serve_config_set_model(&c, "", "n.gguf", &err), HS_EINVAL);
    assert_int_equal(hs_serve_config_set_model(&c, "x", NULL, &err), HS_EINVAL);
    /* other flags are plain assignments after loading */
    assert_int_equal(hs_serve_config_set_str(&c.host, "::1"), HS_OK);
    assert_string_equal(c.host, "::1");
    assert_int_equal(hs_serve_config_set_str(&c.store_path, NULL), HS_OK);
    assert_null(c.store_path);
    assert_int_not_equal(hs_serve_config_check(&c, &err), HS_OK); /* store.path empty */
    assert_non_null(strstr(err.msg, "store.path"));
    hs_serve_config_free(&c);
}

/* check() catches what flags can break without a file line to point at. */
static void check_catches_inconsistent_values(void **state)
{
    (void)state;
    struct hs_serve_config c;
    hs_err err;
    hs_serve_config_default(&c);
    c.port = 70000;
    assert_int_not_equal(hs_serve_config_check(&c, &err), HS_OK);
    assert_non_null(strstr(err.msg, "port"));
    c.port = 8000;
    c.parallel = 0;
    assert_int_not_equal(hs_serve_config_check(&c, &err), HS_OK);
    c.parallel = 1;
    assert_int_equal(hs_serve_config_set_model(&c, "a", "a.gguf", &err), HS_OK);
    assert_int_equal(hs_serve_config_set_model(&c, "b", "b.gguf", &err), HS_OK);
    assert_int_equal(hs_serve_config_set_str(&c.models[1].name, "a"), HS_OK);
    assert_int_not_equal(hs_serve_config_check(&c, &err), HS_OK);
    assert_non_null(strstr(err.msg, "twice"));
    assert_int_equal(hs_serve_config_set_str(&c.models[1].name, "b"), HS_OK);
    assert_int_equal(hs_serve_config_set_str(&c.models[1].upstream_url, "http://x/v1"), HS_OK);
    assert_int_not_equal(hs_serve_config_check(&c, &err), HS_OK); /* path and upstream */
    hs_serve_config_free(&c);
}

/* ---- (issue 5) adapters, agents, schemas ---- */

static int parse_agents(struct hs_serve_config *c, const char *text, hs_err *err)
{
    hs_err_clear(err);
    return hs_serve_config_parse_agents(c, text, strlen(text), "a.yaml", err);
}

/* A file under the test's temporary folder holding text; returns its path
 * (free with free). */
static char *write_tmp(const char *name, const char *text)
{
    char *path = hs_test_tmpfile(name);
    assert_non_null(path);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
    return path;
}

/* Every field of an agents file lands where it belongs; a schema written as
 * YAML becomes compact JSON in the order written, with plain scalars typed
 * as YAML 1.2 types them and quoted ones kept as strings. */
static void agents_every_field_lands(void **state)
{
    (void)state;
    const char *yaml = "adapters:\n"                                             /* 1 */
                       "  - name: fire-lora\n"                                   /* 2 */
                       "    path: models/fire.gguf\n"                            /* 3 */
                       "    model: base\n"                                       /* 4 */
                       "    scale: 0.75\n"                                       /* 5 */
                       "  - {name: calm, path: calm.gguf}\n"                     /* 6 */
                       "agents:\n"                                               /* 7 */
                       "  - id: fire-commander\n"                                /* 8 */
                       "    name: \"Fire Commander (Πυροσβεστικό Σώμα)\"\n"      /* 9 */
                       "    role: Leads suppression.\n"                          /* 10 */
                       "    expertise: Wildfires.\n"                             /* 11 */
                       "    model: base\n"                                       /* 12 */
                       "    system_prompt: >-\n"                                 /* 13 */
                       "      You are a fire\n"                                  /* 14 */
                       "      commander.\n"                                      /* 15 */
                       "    adapters: [fire-lora, {name: calm, scale: -0.5}]\n"  /* 16 */
                       "    sampling:\n"                                         /* 17 */
                       "      temperature: 0.4\n"                                /* 18 */
                       "      top_p: 0.9\n"                                      /* 19 */
                       "      top_k: 40\n"                                       /* 20 */
                       "      min_p: 0.05\n"                                     /* 21 */
                       "      max_tokens: 400\n"                                 /* 22 */
                       "    schema:\n"                                           /* 23 */
                       "      type: object\n"                                    /* 24 */
                       "      properties:\n"                                     /* 25 */
                       "        n: {type: number, minimum: 0.1, maximum: 1e3}\n" /* 26 */
                       "        i: {type: integer, minimum: -5}\n"               /* 27 */
                       "        s: {enum: [\"1\", 'yes', plain words, true, null, ~, 2.50]}\n"
                       "        b: {const: False}\n" /* 29 */
                       "      required: [n, i]\n"    /* 30 */
                       "  - id: police\n"            /* 31 */
                       "    system_prompt: |\n"      /* 32 */
                       "      Line one.\n"           /* 33 */
                       "      Line two.\n"           /* 34 */
                       "    schema: '{\"type\": \"object\", \"properties\": {\"a\": {\"maximum\": 0.3}}}'\n"
                       "  - id: named\n"                           /* 36 */
                       "    system_prompt: p\n"                    /* 37 */
                       "    schema: shared\n"                      /* 38 */
                       "schemas:\n"                                /* 39 */
                       "  shared: {type: object, required: []}\n"; /* 40 */
    struct hs_serve_config c;
    hs_serve_config_default(&c);
    hs_err err;
    int rc = parse_agents(&c, yaml, &err);
    if (rc)
        print_error("%s\n", err.msg);
    assert_int_equal(rc, HS_OK);
    assert_int_equal(c.n_adapters, 2);
    assert_string_equal(c.adapters[0].name, "fire-lora");
    assert_string_equal(c.adapters[0].path, "models/fire.gguf");
    assert_string_equal(c.adapters[0].model, "base");
    assert_true(c.adapters[0].scale == 0.75f);
    assert_string_equal(c.adapters[0].file, "a.yaml");
    assert_int_equal(c.adapters[0].line, 2);
    assert_string_equal(c.adapters[1].name, "calm");
    assert_null(c.adapters[1].model);
    assert_true(c.adapters[1].scale == 1.0f); /* the default */
    assert_int_equal(c.adapters[1].line, 6);

    assert_int_equal(c.n_agents, 3);
    const struct hs_agent *a = &c.agents[0];
    assert_string_equal(a->id, "fire-commander");
    assert_string_equal(a->name, "Fire Commander (Πυροσβεστικό Σώμα)");
    assert_string_equal(a->role, "Leads suppression.");
    assert_string_equal(a->expertise, "Wildfires.");
    assert_string_equal(a->model, "base");
    assert_string_equal(a->system_prompt, "You are a fire commander."); /* folded */
    assert_int_equal(a->n_loras, 2);
    assert_string_equal(a->loras[0].adapter, "fire-lora");
    assert_true(isnan(a->loras[0].scale)); /* the adapter's own */
    assert_string_equal(a->loras[1].adapter, "calm");
    assert_true(a->loras[1].scale == -0.5f);
    assert_true(a->temperature == 0.4f);
    assert_true(a->top_p == 0.9f);
    assert_int_equal(a->top_k, 40);
    assert_true(a->min_p == 0.05f);
    assert_int_equal(a->max_tokens, 400);
    assert_string_equal(a->schema, "{\"type\":\"object\",\"properties\":{"
                                   "\"n\":{\"type\":\"number\",\"minimum\":0.1,\"maximum\":1000.0},"
                                   "\"i\":{\"type\":\"integer\",\"minimum\":-5},"
                                   "\"s\":{\"enum\":[\"1\",\"yes\",\"plain words\",true,null,null,2.5]},"
                                   "\"b\":{\"const\":false}},"
                                   "\"required\":[\"n\",\"i\"]}");
    assert_string_equal(a->file, "a.yaml");
    assert_int_equal(a->line, 8);

    a = &c.agents[1];
    assert_string_equal(a->id, "police");
    assert_string_equal(a->name, "police"); /* the display name defaults to the id */
    assert_null(a->role);
    assert_null(a->model);
    assert_string_equal(a->system_prompt, "Line one.\nLine two.\n"); /* literal */
    assert_int_equal(a->n_loras, 0);
    assert_true(isnan(a->temperature) && isnan(a->top_p) && isnan(a->min_p));
    assert_int_equal(a->top_k, -1);
    assert_int_equal(a->max_tokens, -1);
    assert_string_equal(a->schema, "{\"type\":\"object\",\"properties\":{\"a\":{\"maximum\":0.3}}}");
    assert_int_equal(a->line, 31);

    /* a name under schemas:, even one written below the agent */
    assert_string_equal(c.agents[2].schema, "{\"type\":\"object\",\"required\":[]}");
    assert_int_equal(c.agents[2].line, 36);

    assert_int_equal(hs_serve_config_find_agent(&c, "police"), 1);
    assert_int_equal(hs_serve_config_find_adapter(&c, "calm"), 1);
    assert_int_equal(hs_serve_config_find_agent(&c, "calm"), -1);

    /* a second file adds to the first */
    assert_int_equal(parse_agents(&c, "agents:\n  - {id: more, system_prompt: p}\n", &err), HS_OK);
    assert_int_equal(c.n_agents, 4);
    assert_string_equal(c.agents[3].id, "more");
    hs_serve_config_free(&c);
}

/* Models get an alias: a second name, in the same name space. */
static void model_alias(void **state)
{
    (void)state;
    struct hs_serve_config c;
    hs_serve_config_default(&c);
    hs_err err;
    assert_int_equal(
        parse(&c, "models:\n  - {name: a, alias: small, path: a.gguf}\n  - {name: b, path: b.gguf}\n", &err),
        HS_OK);
    assert_string_equal(c.models[0].alias, "small");
    assert_null(c.models[1].alias);
    assert_int_equal(hs_serve_config_find_model(&c, "small"), 0);
    assert_int_equal(hs_serve_config_find_model(&c, "b"), 1);
    assert_int_equal(hs_serve_config_find_model(&c, "c"), -1);
    assert_int_equal(hs_serve_config_check(&c, &err), HS_OK);
    /* a flag that adds a model named like an alias */
    assert_int_equal(hs_serve_config_set_model(&c, "small", "s.gguf", &err), HS_OK);
    assert_int_not_equal(hs_serve_config_check(&c, &err), HS_OK);
    assert_non_null(strstr(err.msg, "small"));
    hs_serve_config_free(&c);
}

static const struct bad agent_bads[] = {
    /* unknown keys */
    {"agents:\n  - id: x\n    system_prompt: p\n    rol: r\n", 4, "agents[0].rol"},
    {"adapters:\n  - name: a\n    path: a.gguf\n    scal: 1\n", 4, "adapters[0].scal"},
    {"agents:\n  - id: x\n    system_prompt: p\n    sampling:\n      temp: 1\n", 5,
     "agents[0].sampling.temp"},
    {"agents:\n  - id: x\n    system_prompt: p\n    adapters: [{nam: a}]\n", 4, "agents[0].adapters[0].nam"},
    {"agents_file: x.yaml\n", 1, "agents_file"}, /* only the main config has it */
    {"server:\n  port: 1\n", 1, "server"},
    /* wrong types */
    {"agents:\n  - id: x\n    system_prompt: [a]\n", 3, "agents[0].system_prompt"},
    {"agents:\n  - id: x\n    system_prompt: p\n    sampling: {temperature: hot}\n", 4,
     "agents[0].sampling.temperature"},
    {"agents:\n  - id: x\n    system_prompt: p\n    sampling: {max_tokens: 1.5}\n", 4,
     "agents[0].sampling.max_tokens"},
    {"agents:\n  - id: x\n    system_prompt: p\n    sampling: 0.5\n", 4, "agents[0].sampling"},
    {"agents:\n  - id: x\n    system_prompt: p\n    adapters: a\n", 4, "agents[0].adapters"},
    {"agents:\n  - id: x\n    system_prompt: p\n    adapters: [[a]]\n", 4, "agents[0].adapters[0]"},
    {"agents: {id: x}\n", 1, "agents"},
    {"adapters:\n  - a.gguf\n", 2, "adapters[0]"},
    {"agents:\n  - id: x\n    system_prompt: p\n    sampling: {temperature: '0.5'}\n", 4,
     "agents[0].sampling.temperature"},
    /* out of range */
    {"agents:\n  - id: x\n    system_prompt: p\n    sampling:\n      temperature: 2.5\n", 5, "temperature"},
    {"agents:\n  - id: x\n    system_prompt: p\n    sampling:\n      top_p: 1.01\n", 5, "top_p"},
    {"agents:\n  - id: x\n    system_prompt: p\n    sampling:\n      min_p: -0.1\n", 5, "min_p"},
    {"agents:\n  - id: x\n    system_prompt: p\n    sampling:\n      top_k: -1\n", 5, "top_k"},
    {"agents:\n  - id: x\n    system_prompt: p\n    sampling:\n      max_tokens: 0\n", 5, "max_tokens"},
    {"agents:\n  - id: x\n    system_prompt: p\n    sampling:\n      temperature: .nan\n", 5, "temperature"},
    {"adapters:\n  - name: a\n    path: a.gguf\n    scale: 11\n", 4, "adapters[0].scale"},
    {"adapters:\n  - name: a\n    path: a.gguf\n    scale: .inf\n", 4, "adapters[0].scale"},
    {"agents:\n  - id: x\n    system_prompt: p\n    adapters:\n      - {name: a, scale: -1e9}\n", 5,
     "agents[0].adapters[0].scale"},
    /* missing or malformed names */
    {"agents:\n  - name: x\n    system_prompt: p\n", 2, "agents[0]"},
    {"agents:\n  - id: x\n    name: X\n", 2, "agents[0] (x)"},
    {"agents:\n  - id: x\n    system_prompt: \"\"\n", 2, "agents[0] (x)"},
    {"agents:\n  - id: a b\n    system_prompt: p\n", 2, "agents[0]"},
    {"adapters:\n  - name: a\n", 2, "adapters[0] (a)"},
    {"adapters:\n  - path: a.gguf\n", 2, "adapters[0]"},
    /* duplicates within a file */
    {"agents:\n  - id: x\n    system_prompt: p\n  - id: x\n    system_prompt: q\n", 4, "agents[1] (x)"},
    {"adapters:\n  - {name: x, path: a.gguf}\nagents:\n  - id: x\n    system_prompt: p\n", 4,
     "agents[0] (x)"},
    {"agents:\n  - {id: x, system_prompt: p}\nadapters:\n  - {name: x, path: a.gguf}\n", 4,
     "adapters[0] (x)"},
    {"adapters:\n  - {name: a, path: a.gguf}\n  - {name: a, path: b.gguf}\n", 3, "adapters[1] (a)"},
    {"agents:\n  - id: x\n    system_prompt: p\n    adapters: [a, b,\n      a]\n", 5,
     "agents[0].adapters[2]"},
    /* schemas */
    {"agents:\n  - id: x\n    system_prompt: p\n    schema: [a]\n", 4, "agents[0].schema"},
    {"agents:\n  - id: x\n    system_prompt: p\n    schema: '{\"type\": }'\n", 4, "agents[0].schema"},
    {"agents:\n  - id: x\n    system_prompt: p\n    schema: '{\"a\": 1} x'\n", 4, "agents[0].schema"},
    {"agents:\n  - id: x\n    system_prompt: p\n    schema: '{\"a\": 1, \"a\": 2}'\n", 4, "agents[0].schema"},
    {"agents:\n  - id: x\n    system_prompt: p\n    schema: nosuch\n", 4, "agents[0] (x).schema"},
    {"agents:\n  - id: x\n    system_prompt: p\n    schema: not a name\n", 4, "agents[0].schema"},
    {"agents:\n  - id: x\n    system_prompt: p\n    schema:\n      type: object\n      properties:\n"
     "        a: &t {type: string}\n        b: *t\n",
     8, "agents[0].schema.properties.b"},
    {"schemas:\n  s: {type: object}\n  t: [1]\n", 3, "schemas.t"},
    {"schemas:\n  s: {type: object}\n  t: other\n", 3, "schemas.t"},
    {"schemas:\n  s:\n", 2, "schemas.s"},
    {"schemas: [a]\n", 1, "schemas"},
};

/* Each mistake in an agents file is reported as "a.yaml:LINE: KEY: ...",
 * and a file with a mistake adds nothing. */
static void agent_errors_name_file_line_and_key(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(agent_bads) / sizeof(agent_bads[0]); i++) {
        struct hs_serve_config c;
        hs_serve_config_default(&c);
        hs_err err;
        assert_int_equal(parse_agents(&c, "agents:\n  - {id: keep, system_prompt: p}\n", &err), HS_OK);
        int rc = parse_agents(&c, agent_bads[i].yaml, &err);
        char want[64];
        snprintf(want, sizeof(want), "a.yaml:%d: ", agent_bads[i].line);
        if (rc == HS_OK || strncmp(err.msg, want, strlen(want)) != 0 || !strstr(err.msg, agent_bads[i].key))
            print_error("case %zu:\n%s  -> rc %d: %s\n  want %s ... %s\n", i, agent_bads[i].yaml, rc, err.msg,
                        want, agent_bads[i].key);
        assert_int_not_equal(rc, HS_OK);
        assert_memory_equal(err.msg, want, strlen(want));
        assert_non_null(strstr(err.msg, agent_bads[i].key));
        assert_int_equal(c.n_agents, 1);
        assert_int_equal(c.n_adapters, 0);
        assert_string_equal(c.agents[0].id, "keep");
        hs_serve_config_free(&c);
    }
}

/* Names are one space across files: a second file's agent, adapter or a
 * model already holding the name fails with the second file's line. */
static void duplicates_across_files(void **state)
{
    (void)state;
    char *adapter = write_tmp("dup-adapter.gguf", "an adapter file");
    char yaml[512];
    snprintf(yaml, sizeof(yaml),
             "models:\n  - {name: m, alias: mm, path: m.gguf}\n"
             "agents:\n  - {id: x, system_prompt: p}\n"
             "adapters:\n  - {name: a, path: %s}\n",
             adapter);
    struct hs_serve_config c;
    hs_serve_config_default(&c);
    hs_err err;
    assert_int_equal(parse(&c, yaml, &err), HS_OK);
    assert_int_equal(c.agents[0].line, 4);
    assert_string_equal(c.agents[0].file, "t.yaml");
    const char *cases[][2] = {
        {"agents:\n  - {id: y, system_prompt: p}\n  - {id: x, system_prompt: p}\n",
         "a.yaml:3: agents[1] (x)"},
        {"\nadapters:\n  - {name: x, path: b.gguf}\n", "a.yaml:3: adapters[0] (x)"},
        {"agents:\n  - {id: a, system_prompt: p}\n", "a.yaml:2: agents[0] (a)"},
        {"agents:\n  - {id: m, system_prompt: p}\n", "a.yaml:2: agents[0] (m)"},
        {"agents:\n  - {id: mm, system_prompt: p}\n", "a.yaml:2: agents[0] (mm)"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = parse_agents(&c, cases[i][0], &err);
        if (rc == HS_OK || strncmp(err.msg, cases[i][1], strlen(cases[i][1])) != 0)
            print_error("case %zu: rc %d: %s\n  want %s\n", i, rc, err.msg, cases[i][1]);
        assert_int_not_equal(rc, HS_OK);
        assert_memory_equal(err.msg, cases[i][1], strlen(cases[i][1]));
        assert_int_equal(c.n_agents, 1);
        assert_int_equal(c.n_adapters, 1);
    }
    /* the first one says where the name is taken */
    parse_agents(&c, cases[0][0], &err);
    assert_non_null(strstr(err.msg, "t.yaml:4"));
    /* a model added later by a flag: check names the agent's line */
    assert_int_equal(hs_serve_config_set_model(&c, "x", "x.gguf", &err), HS_OK);
    assert_int_not_equal(hs_serve_config_check(&c, &err), HS_OK);
    assert_memory_equal(err.msg, "t.yaml:4: agents[0] (x): ", strlen("t.yaml:4: agents[0] (x): "));
    hs_serve_config_free(&c);
    free(adapter);
}

struct bad_check {
    const char *yaml;  /* the main config, "t.yaml" */
    const char *want;  /* the message starts with it */
    const char *words; /* and holds this */
};

/* Mistakes only the whole configuration shows, found by check with the
 * entry's file and line. ADAPTER is replaced with an existing file. */
static const struct bad_check check_bads[] = {
    {"models:\n  - {name: m, path: m.gguf}\n"
     "agents:\n  - id: x\n    system_prompt: p\n    adapters: [nosuch]\n",
     "t.yaml:4: agents[0] (x): ", "unknown adapter 'nosuch'"},
    {"models:\n  - {name: m, path: m.gguf}\n"
     "agents:\n  - id: x\n    system_prompt: p\n  - id: y\n    model: nosuch\n    system_prompt: p\n",
     "t.yaml:6: agents[1] (y): ", "model 'nosuch'"},
    {"models:\n  - {name: m, path: m.gguf}\n"
     "adapters:\n  - {name: a, path: ADAPTER}\n  - name: b\n    path: no/such/file.gguf\n",
     "t.yaml:5: adapters[1] (b): ", "no/such/file.gguf"},
    {"models:\n  - {name: m1, path: m1.gguf}\n  - {name: m2, path: m2.gguf}\n"
     "adapters:\n  - {name: a2, path: ADAPTER, model: m2}\n"
     "agents:\n  - id: x\n    system_prompt: p\n    adapters: [a2]\n",
     "t.yaml:7: agents[0] (x): ", "another base"},
    {"models:\n  - {name: m1, path: m1.gguf}\n  - {name: m2, path: m2.gguf}\n"
     "adapters:\n  - {name: a1, path: ADAPTER}\n"
     "agents:\n  - id: x\n    model: m2\n    system_prompt: p\n    adapters: [{name: a1, scale: 2}]\n",
     "t.yaml:7: agents[0] (x): ", "another base"},
    {"models:\n  - {name: m, path: m.gguf}\n  - name: up\n    upstream: {url: http://x/v1}\n"
     "adapters:\n  - {name: a, path: ADAPTER, model: up}\n",
     "t.yaml:6: adapters[0] (a): ", "upstream"},
    {"models:\n  - {name: m, path: m.gguf}\n"
     "adapters:\n  - {name: a, path: ADAPTER, model: nosuch}\n",
     "t.yaml:4: adapters[0] (a): ", "nosuch"},
    {"models:\n  - name: up\n    upstream: {url: http://x/v1}\n"
     "adapters:\n  - {name: a, path: ADAPTER}\n",
     "t.yaml:5: adapters[0] (a): ", "no local model"},
    {"agents:\n  - id: x\n    system_prompt: p\n    schema: {type: object, patternProperties: {}}\n",
     "t.yaml:2: agents[0] (x): ", "schema"}, /* the structured-output compiler refuses it */
    {"models:\n  - {name: m, path: m.gguf}\n"
     "adapters:\n  - {name: a, path: .}\n",
     "t.yaml:4: adapters[0] (a): ", "not a regular file"},
};

static void check_names_entry_file_and_line(void **state)
{
    (void)state;
    char *adapter = write_tmp("adapter.gguf", "not really a GGUF; check only looks for the file");
    for (size_t i = 0; i < sizeof(check_bads) / sizeof(check_bads[0]); i++) {
        char yaml[1024];
        const char *src = check_bads[i].yaml;
        const char *mark = strstr(src, "ADAPTER");
        if (mark)
            snprintf(yaml, sizeof(yaml), "%.*s%s%s", (int)(mark - src), src, adapter, mark + 7);
        else
            snprintf(yaml, sizeof(yaml), "%s", src);
        struct hs_serve_config c;
        hs_serve_config_default(&c);
        hs_err err;
        int rc = parse(&c, yaml, &err);
        if (rc)
            print_error("case %zu: %s\n", i, err.msg);
        assert_int_equal(rc, HS_OK);
        rc = hs_serve_config_check(&c, &err);
        if (rc == HS_OK || strncmp(err.msg, check_bads[i].want, strlen(check_bads[i].want)) != 0 ||
            !strstr(err.msg, check_bads[i].words))
            print_error("case %zu:\n%s  -> rc %d: %s\n  want %s ... %s\n", i, yaml, rc, err.msg,
                        check_bads[i].want, check_bads[i].words);
        assert_int_not_equal(rc, HS_OK);
        assert_memory_equal(err.msg, check_bads[i].want, strlen(check_bads[i].want));
        assert_non_null(strstr(err.msg, check_bads[i].words));
        hs_serve_config_free(&c);
    }

    /* the same entries, consistent, pass; an agent's model may be an alias */
    char yaml[1024];
    snprintf(yaml, sizeof(yaml),
             "models:\n  - {name: m1, alias: one, path: m1.gguf}\n  - {name: m2, path: m2.gguf}\n"
             "adapters:\n  - {name: a1, path: %s}\n  - {name: a2, path: %s, model: m2, scale: -2}\n"
             "agents:\n  - {id: x, system_prompt: p, adapters: [a1], model: one}\n"
             "  - {id: y, system_prompt: p, adapters: [{name: a2, scale: 0.5}], model: m2}\n"
             "  - {id: z, system_prompt: p, model: m2}\n",
             adapter, adapter);
    struct hs_serve_config c;
    hs_serve_config_default(&c);
    hs_err err;
    assert_int_equal(parse(&c, yaml, &err), HS_OK);
    int rc = hs_serve_config_check(&c, &err);
    if (rc)
        print_error("%s\n", err.msg);
    assert_int_equal(rc, HS_OK);
    /* without models (hestia assess) the model-bound checks wait: a missing
       adapter file and an unknown model are the server's business */
    hs_serve_config_free(&c);
    hs_serve_config_default(&c);
    assert_int_equal(parse_agents(&c,
                                  "adapters:\n  - {name: a, path: no/such.gguf}\n"
                                  "agents:\n  - {id: x, system_prompt: p, model: elsewhere, adapters: [a]}\n",
                                  &err),
                     HS_OK);
    assert_int_equal(hs_serve_config_check(&c, &err), HS_OK);
    /* but an unknown adapter is a mistake anywhere */
    const char *more = "agents:\n  - {id: y, system_prompt: p, adapters: [b]}\n";
    assert_int_equal(hs_serve_config_parse_agents(&c, more, strlen(more), "b.yaml", &err), HS_OK);
    assert_int_not_equal(hs_serve_config_check(&c, &err), HS_OK);
    /* the index counts within b.yaml */
    assert_memory_equal(err.msg, "b.yaml:2: agents[0] (y): ", strlen("b.yaml:2: agents[0] (y): "));
    hs_serve_config_free(&c);
    free(adapter);
}

/* agents_file in the main config: loaded after the main file's own entries;
 * its mistakes name it and its lines; a missing one names the main file's
 * line. */
static void agents_file_from_main_config(void **state)
{
    (void)state;
    char *good = write_tmp("good-agents.yaml", "agents:\n  - {id: from-file, system_prompt: p}\n");
    char *bad = write_tmp("bad-agents.yaml", "agents:\n  - {id: ok, system_prompt: p}\n  - {id: b}\n");
    char *dup = write_tmp("dup-agents.yaml", "\n\nagents:\n  - {id: here, system_prompt: p}\n");
    char yaml[1024];
    struct hs_serve_config c;
    hs_serve_config_default(&c);
    hs_err err;
    snprintf(yaml, sizeof(yaml), "agents_file: %s\nagents:\n  - {id: here, system_prompt: p}\n", good);
    assert_int_equal(parse(&c, yaml, &err), HS_OK);
    assert_int_equal(c.n_agents, 2);
    assert_string_equal(c.agents[0].id, "here");
    assert_string_equal(c.agents[1].id, "from-file");
    assert_string_equal(c.agents[1].file, good);
    assert_int_equal(c.agents[1].line, 2);
    hs_serve_config_free(&c);

    char want[1200];
    hs_serve_config_default(&c);
    snprintf(yaml, sizeof(yaml), "server: {port: 1}\nagents_file: %s\n", bad);
    assert_int_not_equal(parse(&c, yaml, &err), HS_OK);
    snprintf(want, sizeof(want), "%s:3: agents[1] (b): ", bad);
    assert_memory_equal(err.msg, want, strlen(want));
    assert_int_equal(c.n_agents, 0);

    snprintf(yaml, sizeof(yaml), "agents:\n  - {id: here, system_prompt: p}\nagents_file: %s\n", dup);
    assert_int_not_equal(parse(&c, yaml, &err), HS_OK);
    snprintf(want, sizeof(want), "%s:4: agents[0] (here): ", dup);
    assert_memory_equal(err.msg, want, strlen(want));
    assert_non_null(strstr(err.msg, "t.yaml:2"));

    hs_serve_config_free(&c);
    hs_serve_config_default(&c);
    assert_int_equal(parse(&c, "\nagents_file: config/no-such-agents.yaml\n", &err), HS_EIO);
    assert_memory_equal(err.msg, "t.yaml:2: agents_file: ", strlen("t.yaml:2: agents_file: "));
    assert_non_null(strstr(err.msg, "config/no-such-agents.yaml"));
    assert_int_equal(parse(&c, "agents_file: config\n", &err), HS_EIO); /* a folder */
    assert_non_null(strstr(err.msg, "not a regular file"));
    assert_int_equal(parse(&c, "agents_file:\n", &err), HS_EINVAL);
    assert_int_equal(hs_serve_config_load_agents(&c, "config/no-such-agents.yaml", &err), HS_EIO);
    hs_serve_config_free(&c);
    free(good);
    free(bad);
    free(dup);
}

static const char *const expected_ids[13] = {
    "fire-commander",         "police-commander",     "ekab-physician",
    "civil-protection",       "coast-guard",          "meteorologist",
    "seismologist",           "hazmat-specialist",    "eody-public-health",
    "municipal-emergency",    "armed-forces-liaison", "infrastructure-engineer",
    "public-information-112",
};

static int count_words(const char *s)
{
    int n = 0;
    bool in = false;
    for (; *s; s++) {
        bool space = *s == ' ' || *s == '\n' || *s == '\t';
        if (!space && !in)
            n++;
        in = !space;
    }
    return n;
}

/* The shipped experts: 13 agents, the ids the assess tool and the schema's
 * coordinate_with list use, each with a real persona, sampling defaults and
 * the shared assessment schema, which the structured-output compiler takes. */
static void shipped_agents_load_and_check(void **state)
{
    (void)state;
    struct hs_serve_config c;
    hs_serve_config_default(&c);
    hs_err err;
    int rc = hs_serve_config_load_agents(&c, "config/agents.yaml", &err);
    if (rc)
        print_error("%s\n", err.msg);
    assert_int_equal(rc, HS_OK);
    rc = hs_serve_config_check(&c, &err);
    if (rc)
        print_error("%s\n", err.msg);
    assert_int_equal(rc, HS_OK);
    assert_int_equal(c.n_agents, 13);
    assert_int_equal(c.n_adapters, 0);
    for (int i = 0; i < 13; i++) {
        const struct hs_agent *a = &c.agents[i];
        assert_string_equal(a->id, expected_ids[i]);
        for (int j = 0; j < i; j++)
            assert_string_not_equal(c.agents[j].id, a->id);
        assert_non_null(a->name);
        assert_non_null(strchr(a->name, '(')); /* "Role (Service)" */
        assert_true(a->role && strlen(a->role) > 20);
        assert_true(a->expertise && strlen(a->expertise) > 20);
        assert_null(a->model); /* the first model: what `make run` serves */
        assert_int_equal(a->n_loras, 0);
        int words = count_words(a->system_prompt);
        if (words < 120 || words > 250)
            print_error("%s: %d words\n", a->id, words);
        assert_true(words >= 120 && words <= 250);
        assert_true(a->temperature >= 0.3f && a->temperature <= 0.5f);
        assert_true(a->max_tokens >= 300 && a->max_tokens <= 600);
        assert_string_equal(a->file, "config/agents.yaml");
        assert_true(a->line > 1);

        /* the schema: an object with the assessment fields, coordinate_with
           limited to exactly these 13 ids */
        assert_non_null(a->schema);
        json_error_t je;
        json_t *s = json_loads(a->schema, 0, &je);
        assert_non_null(s);
        json_t *props = json_object_get(s, "properties");
        const char *fields[] = {"risk_level",       "summary",         "immediate_actions",
                                "resources_needed", "coordinate_with", "confidence"};
        for (size_t k = 0; k < sizeof(fields) / sizeof(fields[0]); k++)
            assert_non_null(json_object_get(props, fields[k]));
        json_t *levels = json_object_get(json_object_get(props, "risk_level"), "enum");
        assert_int_equal(json_array_size(levels), 4);
        assert_string_equal(json_string_value(json_array_get(levels, 3)), "critical");
        assert_int_equal(
            json_integer_value(json_object_get(json_object_get(props, "immediate_actions"), "maxItems")), 6);
        json_t *conf = json_object_get(props, "confidence");
        assert_string_equal(json_string_value(json_object_get(conf, "type")), "number");
        json_t *ids =
            json_object_get(json_object_get(json_object_get(props, "coordinate_with"), "items"), "enum");
        assert_int_equal(json_array_size(ids), 13);
        for (int k = 0; k < 13; k++)
            assert_string_equal(json_string_value(json_array_get(ids, (size_t)k)), expected_ids[k]);
        json_decref(s);

        hs_jschema *js = NULL;
        hs_err jerr;
        rc = hs_jschema_compile(a->schema, strlen(a->schema), &js, &jerr);
        if (rc)
            print_error("%s: %s\n", a->id, jerr.msg);
        assert_int_equal(rc, HS_OK);
        hs_jschema_unref(js);
    }
    hs_serve_config_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults),
        cmocka_unit_test(example_config_parses),
        cmocka_unit_test(example_upstream_is_valid_when_uncommented),
        cmocka_unit_test(every_key_lands),
        cmocka_unit_test(errors_name_file_line_and_key),
        cmocka_unit_test(unknown_key_lists_known_keys),
        cmocka_unit_test(syntax_errors_have_lines),
        cmocka_unit_test(failed_models_list_keeps_old_one),
        cmocka_unit_test(flags_after_file),
        cmocka_unit_test(check_catches_inconsistent_values),
        cmocka_unit_test(agents_every_field_lands),
        cmocka_unit_test(model_alias),
        cmocka_unit_test(agent_errors_name_file_line_and_key),
        cmocka_unit_test(duplicates_across_files),
        cmocka_unit_test(check_names_entry_file_and_line),
        cmocka_unit_test(agents_file_from_main_config),
        cmocka_unit_test(shipped_agents_load_and_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
