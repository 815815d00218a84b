/* server/config: defaults, the example config/hestia.yaml, every error
 * naming file, line and key, and flags applied after the file. */
#include "test_util.h"

#include "server/config.h"

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
    assert_null(c.models[0].upstream_url);
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
