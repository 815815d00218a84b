/* engine/assess: one scenario to several agents against the loopback mock
 * OpenAI server (mock_openai.h), which echoes back the system prompt, user
 * message and model it received, so each agent's request is checked on
 * the wire: model choice, sampling, response_format, the worker pool. */
#include "test_util.h"

#include "base/buf.h"
#include "base/clock.h"
#include "base/mem.h"
#include "engine/assess.h"
#include "mock_openai.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int g_port;

#define SCENARIO "{\"title\":\"Wildfire near Athens\",\"location\":\"Mandra\",\"wind_kmh\":60}"
#define SCHEMA                                                                                               \
    "{\"type\":\"object\",\"properties\":{\"system\":{\"type\":\"string\"},\"user\":{\"type\":\"string\"}}," \
    "\"required\":[\"system\",\"user\"]}"

static int setup(void **state)
{
    (void)state;
    g_port = mock_start();
    return g_port > 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    mock_stop();
    return 0;
}

static int reset(void **state)
{
    (void)state;
    mock_reset();
    return 0;
}

static hs_client *make_client(int port)
{
    char url[96];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1", port);
    struct hs_client_opts o;
    hs_client_opts_default(&o);
    o.base_url = url;
    o.max_retries = 0;
    hs_client *c = NULL;
    assert_int_equal(hs_client_create(&o, &c, NULL), HS_OK);
    return c;
}

static void agent(struct hs_agent *a, const char *id, const char *model, const char *prompt)
{
    hs_agent_init(a);
    a->id = hs_strdup(id);
    a->model = model ? hs_strdup(model) : NULL;
    a->system_prompt = hs_strdup(prompt);
}

/* fire: listed by the server under its own id; police: not listed, no
 * model; chem: not listed, its base model m2 is, and it has a schema and
 * sampling defaults. */
static void three_agents(struct hs_agent *a)
{
    agent(&a[0], "fire", NULL, "You are the fire commander.");
    agent(&a[1], "police", NULL, "You are the police chief.");
    agent(&a[2], "chem.expert", "m2", "You are the chemical plant's safety engineer.");
    a[2].schema = hs_strdup(SCHEMA);
    a[2].temperature = 0.2f;
    a[2].top_k = 40;
    a[2].max_tokens = 300;
}

static void free_agents(struct hs_agent *a, int n)
{
    for (int i = 0; i < n; i++)
        hs_agent_free(&a[i]);
}

/* The chat request the mock got whose system message is `prompt`. */
static json_t *request_with_prompt(const struct mock_request *r, int n, const char *prompt)
{
    json_t *found = NULL;
    for (int i = 0; i < n; i++) {
        if (strcmp(r[i].path, "/v1/chat/completions") != 0)
            continue;
        json_t *b = json_loads(r[i].body, 0, NULL);
        json_t *m0 = json_array_get(json_object_get(b, "messages"), 0);
        if (!found && !strcmp(json_string_value(json_object_get(m0, "content")), prompt))
            found = b;
        else
            json_decref(b);
    }
    assert_non_null(found);
    return found;
}

static void every_agent_gets_its_prompt_model_and_sampling(void **state)
{
    (void)state;
    mock_list_model("fire");
    hs_client *c = make_client(g_port);
    struct hs_agent a[3];
    three_agents(a);
    struct hs_assess_opts o;
    hs_assess_opts_default(&o);
    o.seed = 11;
    struct hs_assess_result *res = NULL;
    hs_err err = {0};
    int rc = hs_assess_run(c, a, 3, SCENARIO, strlen(SCENARIO), &o, &res, &err);
    if (rc)
        print_message("assess: %s\n", err.msg);
    assert_int_equal(rc, HS_OK);

    hs_buf user = {0};
    assert_int_equal(hs_agent_scenario_text(&user, SCENARIO, strlen(SCENARIO), NULL), HS_OK);
    const char *want_model[3] = {"fire", "m1", "m2"};
    for (int i = 0; i < 3; i++) {
        if (res[i].rc)
            print_message("agent %s: %s\n", a[i].id, res[i].error);
        assert_int_equal(res[i].rc, HS_OK);
        assert_ptr_equal(res[i].agent, &a[i]);
        assert_string_equal(res[i].model, want_model[i]);
        assert_true(res[i].resp.completion_tokens == 5 && res[i].resp.prompt_tokens > 0);
        assert_true(res[i].resp.ttft_ms > 0 && res[i].resp.latency_ms >= res[i].resp.ttft_ms);
        /* the mock's echo: what this agent's request carried */
        json_t *e = json_loads(res[i].resp.content, 0, NULL);
        assert_non_null(e);
        assert_string_equal(json_string_value(json_object_get(e, "system")), a[i].system_prompt);
        assert_string_equal(json_string_value(json_object_get(e, "user")), user.data);
        assert_string_equal(json_string_value(json_object_get(e, "model")), want_model[i]);
        json_decref(e);
    }
    /* chem's schema holds for the echo (an object with system and user) */
    assert_true(res[2].schema_valid);
    assert_false(res[0].schema_valid);

    int n;
    struct mock_request *r = mock_requests(&n);
    assert_int_equal(n, 4); /* GET /models, then one chat each */
    assert_string_equal(r[0].path, "/v1/models");
    json_t *b = request_with_prompt(r, n, a[0].system_prompt);
    assert_int_equal(json_integer_value(json_object_get(b, "max_tokens")), 512); /* no default anywhere */
    assert_null(json_object_get(b, "temperature"));
    assert_null(json_object_get(b, "response_format"));
    assert_null(json_object_get(b, "top_k"));
    assert_int_equal(json_integer_value(json_object_get(b, "seed")), 11);
    json_decref(b);
    b = request_with_prompt(r, n, a[2].system_prompt);
    assert_int_equal(json_integer_value(json_object_get(b, "max_tokens")), 300);
    assert_true(fabs(json_number_value(json_object_get(b, "temperature")) - 0.2) < 1e-6);
    assert_int_equal(json_integer_value(json_object_get(b, "top_k")), 40);
    json_t *rf = json_object_get(b, "response_format");
    assert_string_equal(json_string_value(json_object_get(rf, "type")), "json_schema");
    json_t *js = json_object_get(rf, "json_schema");
    assert_string_equal(json_string_value(json_object_get(js, "name")), "chem_expert");
    json_t *want_schema = json_loads(SCHEMA, 0, NULL);
    assert_true(json_equal(json_object_get(js, "schema"), want_schema));
    json_decref(want_schema);
    json_decref(b);
    mock_requests_free(r, n);
    hs_buf_free(&user);
    hs_assess_results_free(res, 3);
    free_agents(a, 3);
    hs_client_free(c);
}

static void options_override_the_agents(void **state)
{
    (void)state;
    hs_client *c = make_client(g_port);
    struct hs_agent a[3];
    three_agents(a);
    struct hs_assess_opts o;
    hs_assess_opts_default(&o);
    o.model = "m9";
    o.max_tokens = 32;
    o.temperature = 0.0f;
    struct hs_assess_result *res = NULL;
    assert_int_equal(hs_assess_run(c, a, 3, "plain text scenario", 19, &o, &res, NULL), HS_OK);
    int n;
    struct mock_request *r = mock_requests(&n);
    assert_int_equal(n, 3); /* a given model needs no GET /models */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(res[i].rc, HS_OK);
        assert_string_equal(res[i].model, "m9");
        json_t *b = request_with_prompt(r, n, a[i].system_prompt);
        assert_string_equal(json_string_value(json_object_get(b, "model")), "m9");
        assert_int_equal(json_integer_value(json_object_get(b, "max_tokens")), 32);
        assert_true(json_number_value(json_object_get(b, "temperature")) == 0.0);
        assert_null(json_object_get(b, "seed"));
        assert_string_equal(
            json_string_value(json_object_get(json_array_get(json_object_get(b, "messages"), 1), "content")),
            "plain text scenario");
        json_decref(b);
    }
    mock_requests_free(r, n);
    hs_assess_results_free(res, 3);
    free_agents(a, 3);
    hs_client_free(c);
}

static double run_slow(hs_client *c, struct hs_agent *a, int n, int parallel)
{
    struct hs_assess_opts o;
    hs_assess_opts_default(&o);
    o.model = "slow";
    o.parallel = parallel;
    struct hs_assess_result *res = NULL;
    int64_t t0 = hs_now_ns();
    assert_int_equal(hs_assess_run(c, a, n, "x", 1, &o, &res, NULL), HS_OK);
    double ms = (double)(hs_now_ns() - t0) / 1e6;
    for (int i = 0; i < n; i++)
        assert_int_equal(res[i].rc, HS_OK);
    hs_assess_results_free(res, n);
    return ms;
}

static void requests_run_in_parallel_up_to_the_limit(void **state)
{
    (void)state;
    hs_client *c = make_client(g_port);
    struct hs_agent a[4];
    three_agents(a);
    agent(&a[3], "health", NULL, "You run the hospitals.");
    /* Each answer takes MOCK_SLOW_MS: all at once is about one of them
     * (bounded loosely: the machine may be busy), two at a time at least
     * two, one at a time at least four. */
    double all = run_slow(c, a, 4, 0);
    double two = run_slow(c, a, 4, 2);
    double one = run_slow(c, a, 4, 1);
    print_message("wall ms: all %.0f, two %.0f, one %.0f\n", all, two, one);
    assert_true(all >= MOCK_SLOW_MS && all < 3 * MOCK_SLOW_MS);
    assert_true(two >= 2 * MOCK_SLOW_MS);
    assert_true(one >= 4 * MOCK_SLOW_MS);
    free_agents(a, 4);
    hs_client_free(c);
}

static void a_failing_agent_does_not_stop_the_others(void **state)
{
    (void)state;
    mock_list_model("bad"); /* an agent named "bad" is answered with a 400 */
    hs_client *c = make_client(g_port);
    struct hs_agent a[2];
    agent(&a[0], "bad", NULL, "You are a bad agent.");
    agent(&a[1], "fire", NULL, "You are the fire commander.");
    struct hs_assess_opts o;
    hs_assess_opts_default(&o);
    struct hs_assess_result *res = NULL;
    assert_int_equal(hs_assess_run(c, a, 2, SCENARIO, strlen(SCENARIO), &o, &res, NULL), HS_OK);
    assert_int_equal(res[0].rc, HS_EINVAL);
    assert_non_null(strstr(res[0].error, "HTTP 400: " MOCK_BAD_MESSAGE));
    assert_int_equal(res[1].rc, HS_OK);
    assert_string_equal(res[1].model, "m1");
    hs_assess_results_free(res, 2);
    free_agents(a, 2);
    hs_client_free(c);
}

/* A loopback port with nothing listening (bound, then released). */
static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

static void what_stops_the_whole_run_is_an_error(void **state)
{
    (void)state;
    struct hs_agent a[1];
    agent(&a[0], "fire", NULL, "You are the fire commander.");
    struct hs_assess_opts o;
    hs_assess_opts_default(&o);
    struct hs_assess_result *res = (void *)1;
    hs_err err = {0};
    hs_client *c = make_client(g_port);
    assert_int_equal(hs_assess_run(c, a, 0, "x", 1, &o, &res, &err), HS_EINVAL);
    assert_null(res);
    assert_int_equal(hs_assess_run(c, a, 1, " ", 1, &o, &res, &err), HS_EINVAL); /* an empty scenario */
    hs_client_free(c);
    /* no model given and the server cannot list its own */
    c = make_client(closed_port());
    assert_int_equal(hs_assess_run(c, a, 1, "x", 1, &o, &res, &err), HS_EIO);
    assert_null(res);
    assert_non_null(strstr(err.msg, "/models"));
    hs_client_free(c);
    free_agents(a, 1);
}

static void the_json_span_drops_fences_and_space(void **state)
{
    (void)state;
    size_t len;
    const char *p = hs_assess_json_span("  {\"a\":1}\n", &len);
    assert_int_equal(len, 7);
    assert_memory_equal(p, "{\"a\":1}", 7);
    p = hs_assess_json_span("```json\n{\"a\":1}\n```\n", &len);
    assert_int_equal(len, 7);
    assert_memory_equal(p, "{\"a\":1}", 7);
    p = hs_assess_json_span("no json here", &len);
    assert_int_equal(len, 12);
    hs_assess_json_span(NULL, &len);
    assert_int_equal(len, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(every_agent_gets_its_prompt_model_and_sampling, reset),
        cmocka_unit_test_setup(options_override_the_agents, reset),
        cmocka_unit_test_setup(requests_run_in_parallel_up_to_the_limit, reset),
        cmocka_unit_test_setup(a_failing_agent_does_not_stop_the_others, reset),
        cmocka_unit_test_setup(what_stops_the_whole_run_is_an_error, reset),
        cmocka_unit_test(the_json_span_drops_fences_and_space),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
