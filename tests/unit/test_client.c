/* engine/client: hs_client against a loopback mock OpenAI server
 * (mock_openai.h) that records what it received, so the tests check the
 * wire: bodies, headers, retries, timeouts and streams. */
#include "test_util.h"

#include "base/buf.h"
#include "base/clock.h"
#include "base/mem.h"
#include "engine/client.h"
#include "mock_openai.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int g_port;

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

static hs_client *make_client(int port, const char *key, int timeout_ms, int retries, int backoff_ms)
{
    char url[96];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1", port);
    struct hs_client_opts o;
    hs_client_opts_default(&o);
    o.base_url = url;
    o.api_key = key;
    if (timeout_ms > 0)
        o.timeout_ms = timeout_ms;
    o.max_retries = retries;
    o.backoff_ms = backoff_ms;
    hs_client *c = NULL;
    hs_err err = {0};
    int rc = hs_client_create(&o, &c, &err);
    if (rc)
        print_message("hs_client_create: %s\n", err.msg);
    assert_int_equal(rc, HS_OK);
    return c;
}

static const struct hs_chat_msg k_msgs[] = {
    {.role = "system", .content = "You are the fire commander."},
    {.role = "user",
     .content = "A wildfire near Athens: \xce\x91\xce\xb8\xce\xae\xce\xbd\xce\xb1 (what now?)"},
};

static struct hs_chat_req chat_req(const char *model)
{
    struct hs_chat_req r;
    hs_chat_req_init(&r);
    r.model = model;
    r.messages = k_msgs;
    r.n_messages = 2;
    return r;
}

/* The echo answer the mock builds from what it received. */
static json_t *echo_of(const char *content)
{
    json_t *o = json_loads(content, 0, NULL);
    assert_non_null(o);
    return o;
}

/* The body of the last chat request the mock saw (*raw_len: its bytes). */
static json_t *last_chat_body(int want_count, size_t *raw_len)
{
    int n;
    struct mock_request *r = mock_requests(&n);
    assert_int_equal(n, want_count);
    assert_string_equal(r[n - 1].path, "/v1/chat/completions");
    *raw_len = strlen(r[n - 1].body);
    json_t *b = json_loads(r[n - 1].body, 0, NULL);
    mock_requests_free(r, n);
    assert_non_null(b);
    return b;
}

/* ---------------------------------------------------------------------------
 * tests */

static void chat_sends_the_request_and_reads_the_answer(void **state)
{
    (void)state;
    hs_client *c = make_client(g_port, "sk-test", 0, 0, 0);
    struct hs_chat_req req = chat_req("m1");
    req.max_tokens = 64;
    req.temperature = 0.25f;
    req.seed = 7;
    req.response_format = "{\"type\":\"json_object\"}";
    req.extra = "{\"top_k\":20,\"lora\":[{\"name\":\"fire\",\"scale\":0.5}]}";
    struct hs_chat_resp resp;
    hs_err err = {0};
    int rc = hs_client_chat(c, &req, &resp, &err);
    if (rc)
        print_message("chat: %s\n", err.msg);
    assert_int_equal(rc, HS_OK);
    assert_int_equal(resp.http_status, 200);
    assert_int_equal(resp.attempts, 1);
    assert_string_equal(resp.id, "mock-1");
    assert_string_equal(resp.finish_reason, "stop");
    assert_int_equal(resp.completion_tokens, 5);
    assert_true(resp.latency_ms > 0);

    /* What the server received, member by member. */
    int n;
    struct mock_request *r = mock_requests(&n);
    assert_int_equal(n, 1);
    assert_string_equal(r[0].method, "POST");
    assert_string_equal(r[0].auth, "Bearer sk-test");
    json_t *b = json_loads(r[0].body, 0, NULL);
    assert_int_equal(resp.prompt_tokens, (int)strlen(r[0].body)); /* the mock's usage: the body's length */
    mock_requests_free(r, n);
    assert_non_null(b);
    assert_string_equal(json_string_value(json_object_get(b, "model")), "m1");
    json_t *msgs = json_object_get(b, "messages");
    assert_int_equal(json_array_size(msgs), 2);
    for (size_t i = 0; i < 2; i++) {
        json_t *m = json_array_get(msgs, i);
        assert_string_equal(json_string_value(json_object_get(m, "role")), k_msgs[i].role);
        assert_string_equal(json_string_value(json_object_get(m, "content")), k_msgs[i].content);
    }
    assert_int_equal(json_integer_value(json_object_get(b, "max_tokens")), 64);
    assert_true(fabs(json_number_value(json_object_get(b, "temperature")) - 0.25) < 1e-6);
    assert_int_equal(json_integer_value(json_object_get(b, "seed")), 7);
    assert_null(json_object_get(b, "top_p")); /* unset: not sent */
    assert_null(json_object_get(b, "stream"));
    assert_string_equal(json_string_value(json_object_get(json_object_get(b, "response_format"), "type")),
                        "json_object");
    assert_int_equal(json_integer_value(json_object_get(b, "top_k")), 20);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(json_object_get(b, "lora"), 0), "name")), "fire");
    json_decref(b);

    /* The answer is the mock's echo of that request. */
    json_t *e = echo_of(resp.content);
    assert_string_equal(json_string_value(json_object_get(e, "system")), k_msgs[0].content);
    assert_string_equal(json_string_value(json_object_get(e, "user")), k_msgs[1].content);
    json_decref(e);
    hs_chat_resp_free(&resp);
    hs_client_free(c);
}

struct deltas {
    hs_buf text;
    int calls;
    int stop_after; /* return false on this call (0: never) */
};

static bool on_delta(void *ud, const char *text, size_t len)
{
    struct deltas *d = ud;
    d->calls++;
    assert_true(len > 0);
    assert_int_equal(hs_buf_append(&d->text, text, len), HS_OK);
    return d->stop_after == 0 || d->calls < d->stop_after;
}

static void stream_concatenates_deltas_and_reads_usage(void **state)
{
    (void)state;
    hs_client *c = make_client(g_port, NULL, 0, 0, 0);
    struct hs_chat_req req = chat_req("m2");
    struct deltas d = {0};
    struct hs_chat_resp resp;
    hs_err err = {0};
    int rc = hs_client_chat_stream(c, &req, on_delta, &d, &resp, &err);
    if (rc)
        print_message("stream: %s\n", err.msg);
    assert_int_equal(rc, HS_OK);
    /* The mock sends the answer in 5 deltas, its bytes a few at a time. */
    assert_int_equal(d.calls, 5);
    assert_string_equal(d.text.data, resp.content);
    json_t *e = echo_of(resp.content);
    assert_string_equal(json_string_value(json_object_get(e, "model")), "m2");
    assert_string_equal(json_string_value(json_object_get(e, "user")), k_msgs[1].content);
    json_decref(e);
    assert_string_equal(resp.id, "mock-1");
    assert_string_equal(resp.finish_reason, "stop");
    assert_int_equal(resp.completion_tokens, 5);
    assert_true(resp.ttft_ms > 0 && resp.ttft_ms <= resp.latency_ms);

    size_t raw_len;
    json_t *b = last_chat_body(1, &raw_len);
    assert_true(json_is_true(json_object_get(b, "stream")));
    assert_true(json_is_true(json_object_get(json_object_get(b, "stream_options"), "include_usage")));
    assert_int_equal(resp.prompt_tokens, (int)raw_len); /* the mock's usage chunk: the body's length */
    json_decref(b);
    hs_chat_resp_free(&resp);
    hs_buf_free(&d.text);
    hs_client_free(c);
}

static void an_openai_error_body_becomes_the_message(void **state)
{
    (void)state;
    hs_client *c = make_client(g_port, NULL, 0, 3, 10);
    struct hs_chat_req req = chat_req("bad");
    struct hs_chat_resp resp;
    hs_err err = {0};
    int rc = hs_client_chat(c, &req, &resp, &err);
    assert_int_equal(rc, HS_EINVAL);
    assert_non_null(strstr(err.msg, "HTTP 400: " MOCK_BAD_MESSAGE));
    assert_int_equal(resp.http_status, 400);
    assert_int_equal(resp.attempts, 1); /* a 400 is not retried */
    hs_chat_resp_free(&resp);
    /* the same from a stream */
    rc = hs_client_chat_stream(c, &req, NULL, NULL, &resp, &err);
    assert_int_equal(rc, HS_EINVAL);
    assert_non_null(strstr(err.msg, "HTTP 400: " MOCK_BAD_MESSAGE));
    hs_chat_resp_free(&resp);
    hs_client_free(c);
}

static void a_503_is_retried_after_its_retry_after(void **state)
{
    (void)state;
    hs_client *c = make_client(g_port, NULL, 0, 2, 10);
    struct hs_chat_req req = chat_req("flaky");
    struct hs_chat_resp resp;
    hs_err err = {0};
    int64_t t0 = hs_now_ns();
    int rc = hs_client_chat(c, &req, &resp, &err);
    double ms = (double)(hs_now_ns() - t0) / 1e6;
    if (rc)
        print_message("flaky: %s\n", err.msg);
    assert_int_equal(rc, HS_OK);
    assert_int_equal(resp.attempts, 2);
    assert_int_equal(resp.http_status, 200);
    /* Retry-After: 1 (seconds) wins over the 10 ms backoff. */
    assert_true(ms >= 950);
    assert_true(resp.latency_ms >= 950);
    int n;
    struct mock_request *r = mock_requests(&n);
    mock_requests_free(r, n);
    assert_int_equal(n, 2);
    hs_chat_resp_free(&resp);
    hs_client_free(c);
}

static void a_429_that_persists_exhausts_the_retries(void **state)
{
    (void)state;
    hs_client *c = make_client(g_port, NULL, 0, 2, 40);
    struct hs_chat_req req = chat_req("busy");
    struct hs_chat_resp resp;
    hs_err err = {0};
    int64_t t0 = hs_now_ns();
    int rc = hs_client_chat_stream(c, &req, NULL, NULL, &resp, &err);
    double ms = (double)(hs_now_ns() - t0) / 1e6;
    assert_int_equal(rc, HS_EBUSY);
    assert_non_null(strstr(err.msg, "HTTP 429: slow down"));
    assert_int_equal(resp.attempts, 3);
    assert_int_equal(resp.http_status, 429);
    /* backoff 40 ms then 80 ms (plus jitter), no Retry-After */
    assert_true(ms >= 120);
    assert_true(ms < 5000);
    int n;
    struct mock_request *r = mock_requests(&n);
    mock_requests_free(r, n);
    assert_int_equal(n, 3);
    hs_chat_resp_free(&resp);
    hs_client_free(c);
}

static void a_server_that_never_answers_times_out(void **state)
{
    (void)state;
    hs_client *c = make_client(g_port, NULL, 300, 3, 10);
    struct hs_chat_req req = chat_req("stall");
    struct hs_chat_resp resp;
    hs_err err = {0};
    int64_t t0 = hs_now_ns();
    int rc = hs_client_chat(c, &req, &resp, &err);
    double ms = (double)(hs_now_ns() - t0) / 1e6;
    assert_int_equal(rc, HS_ETIMEDOUT);
    assert_int_equal(resp.attempts, 1); /* the time was spent: no retry */
    assert_true(ms >= 250 && ms < 3000);
    hs_chat_resp_free(&resp);
    /* a stream: the silence timeout */
    t0 = hs_now_ns();
    rc = hs_client_chat_stream(c, &req, NULL, NULL, &resp, &err);
    ms = (double)(hs_now_ns() - t0) / 1e6;
    assert_int_equal(rc, HS_ETIMEDOUT);
    assert_true(ms >= 250 && ms < 3000);
    hs_chat_resp_free(&resp);
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

static void a_refused_connection_is_retried_then_reported(void **state)
{
    (void)state;
    hs_client *c = make_client(closed_port(), NULL, 0, 2, 10);
    struct hs_chat_req req = chat_req("m1");
    struct hs_chat_resp resp;
    hs_err err = {0};
    int rc = hs_client_chat(c, &req, &resp, &err);
    assert_int_equal(rc, HS_EIO);
    assert_int_equal(resp.attempts, 3);
    assert_int_equal(resp.http_status, 0);
    assert_non_null(strstr(err.msg, "127.0.0.1"));
    hs_chat_resp_free(&resp);
    char **names = NULL;
    int n = 0;
    assert_int_equal(hs_client_models(c, &names, &n, &err), HS_EIO);
    assert_null(names);
    hs_client_free(c);
}

static void on_delta_returning_false_cancels(void **state)
{
    (void)state;
    hs_client *c = make_client(g_port, NULL, 0, 3, 10);
    struct hs_chat_req req = chat_req("long");
    struct deltas d = {.stop_after = 3};
    struct hs_chat_resp resp;
    hs_err err = {0};
    int64_t t0 = hs_now_ns();
    int rc = hs_client_chat_stream(c, &req, on_delta, &d, &resp, &err);
    assert_int_equal(rc, HS_ECANCELED);
    assert_int_equal(d.calls, 3);
    assert_int_equal(resp.attempts, 1);
    assert_string_equal(resp.content, "xxx"); /* what came before the stop */
    assert_true((double)(hs_now_ns() - t0) / 1e6 < 3000);
    /* The server sees the connection go (the endless stream would run 20 s). */
    for (int i = 0; i < 200 && mock_long_ended() == 0; i++)
        usleep(10000);
    assert_int_equal(mock_long_ended(), 1);
    hs_chat_resp_free(&resp);
    hs_buf_free(&d.text);
    hs_client_free(c);
}

static void no_retry_once_the_stream_delivered_content(void **state)
{
    (void)state;
    hs_client *c = make_client(g_port, NULL, 0, 3, 10);
    struct hs_chat_req req = chat_req("drop");
    struct deltas d = {0};
    struct hs_chat_resp resp;
    hs_err err = {0};
    int rc = hs_client_chat_stream(c, &req, on_delta, &d, &resp, &err);
    assert_true(rc < 0);
    assert_int_equal(resp.attempts, 1);
    assert_int_equal(d.calls, 1);
    assert_string_equal(resp.content, "partial");
    hs_chat_resp_free(&resp);
    hs_buf_free(&d.text);

    /* an error event in the stream ends the call with its message */
    req = chat_req("errchunk");
    rc = hs_client_chat_stream(c, &req, NULL, NULL, &resp, &err);
    assert_int_equal(rc, HS_EIO);
    assert_non_null(strstr(err.msg, "model crashed"));
    assert_string_equal(resp.content, "before");
    hs_chat_resp_free(&resp);
    hs_client_free(c);
}

static void embeddings_land_by_index(void **state)
{
    (void)state;
    hs_client *c = make_client(g_port, NULL, 0, 0, 0);
    const char *inputs[] = {"a", "bb", "ccc \xce\xb1"};
    float *v = NULL;
    int dim = 0;
    hs_err err = {0};
    int rc = hs_client_embed(c, "emb", inputs, 3, &v, &dim, &err);
    if (rc)
        print_message("embed: %s\n", err.msg);
    assert_int_equal(rc, HS_OK);
    assert_int_equal(dim, 3);
    for (int i = 0; i < 3; i++) {
        /* the mock answers in reverse order; index puts each back */
        assert_true(v[i * 3 + 0] == (float)i);
        assert_true(v[i * 3 + 1] == (float)(2 * i));
        assert_true(v[i * 3 + 2] == (float)strlen(inputs[i]));
    }
    hs_free(v);
    int n;
    struct mock_request *r = mock_requests(&n);
    assert_int_equal(n, 1);
    assert_string_equal(r[0].path, "/v1/embeddings");
    json_t *b = json_loads(r[0].body, 0, NULL);
    mock_requests_free(r, n);
    assert_string_equal(json_string_value(json_object_get(b, "model")), "emb");
    assert_string_equal(json_string_value(json_object_get(b, "encoding_format")), "float");
    assert_int_equal(json_array_size(json_object_get(b, "input")), 3);
    json_decref(b);
    hs_client_free(c);
}

static void models_lists_the_ids(void **state)
{
    (void)state;
    mock_list_model("fire_commander");
    hs_client *c = make_client(g_port, NULL, 0, 0, 0);
    char **names = NULL;
    int n = 0;
    hs_err err = {0};
    assert_int_equal(hs_client_models(c, &names, &n, &err), HS_OK);
    assert_int_equal(n, 3);
    assert_string_equal(names[0], "m1");
    assert_string_equal(names[1], "m2");
    assert_string_equal(names[2], "fire_commander");
    hs_client_names_free(names, n);
    hs_client_free(c);
}

static void bad_arguments_are_refused(void **state)
{
    (void)state;
    struct hs_client_opts o;
    hs_client_opts_default(&o);
    hs_client *c = NULL;
    hs_err err = {0};
    assert_int_equal(hs_client_create(&o, &c, &err), HS_EINVAL); /* no URL */
    o.base_url = "ftp://127.0.0.1/v1";
    assert_int_equal(hs_client_create(&o, &c, &err), HS_EINVAL);
    assert_null(c);

    c = make_client(g_port, NULL, 0, 0, 0);
    struct hs_chat_req req = chat_req("m1");
    struct hs_chat_resp resp;
    req.response_format = "[1,2]";
    assert_int_equal(hs_client_chat(c, &req, &resp, &err), HS_EINVAL);
    hs_chat_resp_free(&resp);
    req = chat_req("m1");
    req.extra = "{not json";
    assert_int_equal(hs_client_chat(c, &req, &resp, &err), HS_EINVAL);
    hs_chat_resp_free(&resp);
    req.extra = NULL;
    req.n_messages = 0;
    assert_int_equal(hs_client_chat(c, &req, &resp, &err), HS_EINVAL);
    hs_chat_resp_free(&resp);
    struct hs_chat_msg bad[] = {{.role = "user", .content = "\xff\xfe"}};
    req.messages = bad;
    req.n_messages = 1;
    assert_int_equal(hs_client_chat(c, &req, &resp, &err), HS_EINVAL);
    assert_non_null(strstr(err.msg, "UTF-8"));
    hs_chat_resp_free(&resp);
    /* nothing of that reached the server */
    int n;
    struct mock_request *r = mock_requests(&n);
    mock_requests_free(r, n);
    assert_int_equal(n, 0);
    hs_client_free(c);
}

/* A typed backend URL gets /v1 only when it has no path of its own. */
static void api_base_adds_v1_only_without_a_path(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"http://127.0.0.1:8000", "http://127.0.0.1:8000/v1"},
        {"http://127.0.0.1:8000/", "http://127.0.0.1:8000/v1"},
        {"http://h:1/v1", "http://h:1/v1"},
        {"https://api.example.org/openai/v1", "https://api.example.org/openai/v1"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *b = hs_client_api_base(cases[i][0]);
        assert_non_null(b);
        assert_string_equal(b, cases[i][1]);
        hs_free(b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(api_base_adds_v1_only_without_a_path),
        cmocka_unit_test_setup(chat_sends_the_request_and_reads_the_answer, reset),
        cmocka_unit_test_setup(stream_concatenates_deltas_and_reads_usage, reset),
        cmocka_unit_test_setup(an_openai_error_body_becomes_the_message, reset),
        cmocka_unit_test_setup(a_503_is_retried_after_its_retry_after, reset),
        cmocka_unit_test_setup(a_429_that_persists_exhausts_the_retries, reset),
        cmocka_unit_test_setup(a_server_that_never_answers_times_out, reset),
        cmocka_unit_test_setup(a_refused_connection_is_retried_then_reported, reset),
        cmocka_unit_test_setup(on_delta_returning_false_cancels, reset),
        cmocka_unit_test_setup(no_retry_once_the_stream_delivered_content, reset),
        cmocka_unit_test_setup(embeddings_land_by_index, reset),
        cmocka_unit_test_setup(models_lists_the_ids, reset),
        cmocka_unit_test_setup(bad_arguments_are_refused, reset),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
