/* engine/upstream_pool: load balancing, health checks, the circuit breaker
 * and retries, against real HTTP servers on loopback ports (libmicrohttpd,
 * several in this process). Each fake node counts what it received and
 * answers as the test sets it: a chat status, a /models status, requests
 * held open, a body that breaks off. Who answered is read from the answer
 * itself ({"node": i}), so the tests check the wire, not the pool's own idea. */
#include "test_util.h"

#include "base/buf.h"
#include "base/clock.h"
#include "engine/upstream_pool.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------
 * fake nodes */

#define N_NODES 3

struct node {
    int idx;
    struct MHD_Daemon *d;
    int port;
    char url[64];
    atomic_int chat_status;   /* what POST /v1/chat/completions answers (200: {"node": idx}) */
    atomic_int fail_first;    /* the first N chats answer 503 with Retry-After: 1 */
    atomic_int models_status; /* what GET /v1/models answers */
    atomic_bool hold;         /* chats wait until this clears */
    atomic_bool broken_body;  /* a 200 whose body breaks off after a few bytes */
    atomic_int chats, models;
};

static struct node NODES[N_NODES];
static atomic_bool g_stop;

struct conn {
    bool started;
};

static ssize_t read_broken(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)cls;
    if (pos > 0)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    const char part[] = "{\"node\": 0, \"partial\": \"";
    size_t n = sizeof part - 1 < max ? sizeof part - 1 : max;
    memcpy(buf, part, n);
    return (ssize_t)n;
}

static enum MHD_Result send_text(struct MHD_Connection *mc, unsigned code, const char *text,
                                 const char *retry_after)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, "Content-Type", "application/json");
    if (retry_after)
        MHD_add_response_header(r, "Retry-After", retry_after);
    enum MHD_Result ok = MHD_queue_response(mc, code, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *mc, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size,
                                  void **con_cls)
{
    (void)version;
    (void)upload;
    struct node *nd = cls;
    struct conn *c = *con_cls;
    if (!c) {
        *con_cls = calloc(1, sizeof *c);
        return *con_cls ? MHD_YES : MHD_NO;
    }
    if (*upload_size) {
        *upload_size = 0; /* the body does not matter here */
        return MHD_YES;
    }
    if (c->started)
        return MHD_YES;
    c->started = true;
    if (!strcmp(method, "GET") && !strcmp(url, "/v1/models")) {
        atomic_fetch_add(&nd->models, 1);
        int st = atomic_load(&nd->models_status);
        return send_text(mc, (unsigned)st, st == 200 ? "{\"object\":\"list\",\"data\":[]}" : "{\"error\":{}}",
                         NULL);
    }
    if (strcmp(method, "POST") || strcmp(url, "/v1/chat/completions"))
        return send_text(mc, 404, "{\"error\":{\"message\":\"no such route\"}}", NULL);
    atomic_fetch_add(&nd->chats, 1);
    while (atomic_load(&nd->hold) && !atomic_load(&g_stop))
        usleep(2000);
    if (atomic_load(&nd->fail_first) > 0) {
        atomic_fetch_sub(&nd->fail_first, 1);
        return send_text(mc, 503, "{\"error\":{\"message\":\"warming up\"}}", "1");
    }
    if (atomic_load(&nd->broken_body)) {
        struct MHD_Response *r =
            MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64, read_broken, NULL, NULL);
        enum MHD_Result ok = MHD_queue_response(mc, 200, r);
        MHD_destroy_response(r);
        return ok;
    }
    int st = atomic_load(&nd->chat_status);
    char body[64];
    if (st == 200)
        snprintf(body, sizeof body, "{\"node\": %d}", nd->idx);
    else
        snprintf(body, sizeof body, "{\"error\":{\"message\":\"node %d says %d\"}}", nd->idx, st);
    return send_text(mc, (unsigned)st, body, NULL);
}

static void on_completed(void *cls, struct MHD_Connection *mc, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)mc;
    (void)toe;
    free(*con_cls);
    *con_cls = NULL;
}

static void node_reset(struct node *nd)
{
    atomic_store(&nd->chat_status, 200);
    atomic_store(&nd->fail_first, 0);
    atomic_store(&nd->models_status, 200);
    atomic_store(&nd->hold, false);
    atomic_store(&nd->broken_body, false);
    atomic_store(&nd->chats, 0);
    atomic_store(&nd->models, 0);
}

static int node_start(struct node *nd, int idx)
{
    nd->idx = idx;
    node_reset(nd);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    nd->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL,
                             on_request, nd, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                             MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_END);
    if (!nd->d)
        return -1;
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(nd->d, MHD_DAEMON_INFO_BIND_PORT);
    nd->port = info ? info->port : 0;
    snprintf(nd->url, sizeof nd->url, "http://127.0.0.1:%d/v1", nd->port);
    return nd->port ? 0 : -1;
}

/* Stops a node for good: its port refuses connections from now on. */
static void node_kill(struct node *nd)
{
    if (nd->d)
        MHD_stop_daemon(nd->d);
    nd->d = NULL;
}

static int setup(void **state)
{
    (void)state;
    atomic_store(&g_stop, false);
    for (int i = 0; i < N_NODES; i++)
        if (node_start(&NODES[i], i))
            return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    atomic_store(&g_stop, true);
    for (int i = 0; i < N_NODES; i++)
        node_kill(&NODES[i]);
    return 0;
}

/* ---------------------------------------------------------------------------
 * helpers */

static _Atomic int64_t g_fake_ms;

static int64_t fake_clock(void *user)
{
    (void)user;
    return atomic_load(&g_fake_ms);
}

struct pool_opts {
    int n;
    int weights[N_NODES];
    int retries; /* as the params: < 0 default */
    int health_ms;
    int breaker_failures;
    int cooldown_ms;
    int ra_cap_ms;
    bool fake;
};

static hs_upstream_pool *make_pool(const struct pool_opts *o)
{
    struct hs_upstream_member_params mp[N_NODES];
    for (int i = 0; i < o->n; i++)
        mp[i] = (struct hs_upstream_member_params){NODES[i].url, NULL, NULL, o->weights[i]};
    struct hs_upstream_pool_params pp = {
        .name = "pool-test",
        .members = mp,
        .n_members = o->n,
        .connect_timeout_ms = 1000,
        .timeout_ms = 5000,
        .idle_timeout_ms = 5000,
        .retries = o->retries,
        .health_interval_ms = o->health_ms,
        .health_timeout_ms = 1000,
        .breaker_failures = o->breaker_failures,
        .breaker_cooldown_ms = o->cooldown_ms,
        .backoff_ms = 5,
        .retry_after_cap_ms = o->ra_cap_ms,
        .clock_ms = o->fake ? fake_clock : NULL,
    };
    hs_upstream_pool *p = NULL;
    hs_err err = {0};
    int rc = hs_upstream_pool_create(&pp, &p, &err);
    if (rc)
        fail_msg("hs_upstream_pool_create: %s", err.msg);
    return p;
}

static const char BODY[] = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";

static hs_upstream_pool_stream *post(hs_upstream_pool *p)
{
    hs_upstream_pool_stream *s = NULL;
    hs_err err = {0};
    int rc = hs_upstream_pool_post(p, "/chat/completions", BODY, strlen(BODY), "rid-1", &s, &err);
    if (rc)
        fail_msg("hs_upstream_pool_post: %s", err.msg);
    return s;
}

/* The node index named in a stream's URL. */
static int node_of(const hs_upstream_pool_stream *s)
{
    const char *u = hs_upstream_pool_stream_url(s);
    for (int i = 0; u && i < N_NODES; i++)
        if (!strcmp(u, NODES[i].url))
            return i;
    return -1;
}

/* One whole request: the status; *who = the node that answered (-1 if not a 200). */
static int roundtrip(hs_upstream_pool *p, int *who, hs_buf *body_out)
{
    hs_upstream_pool_stream *s = post(p);
    hs_err err = {0};
    int st = hs_upstream_pool_status(s, 5000, &err);
    hs_buf b = {0};
    if (st > 0) {
        char buf[512];
        long n;
        while ((n = hs_upstream_pool_read(s, buf, sizeof buf, 5000, &err)) > 0)
            hs_buf_append(&b, buf, (size_t)n);
    }
    if (who) {
        *who = -1;
        json_t *o = st == 200 && b.len ? json_loadb(b.data, b.len, 0, NULL) : NULL;
        if (json_is_integer(json_object_get(o, "node")))
            *who = (int)json_integer_value(json_object_get(o, "node"));
        json_decref(o);
    }
    if (body_out)
        hs_buf_append(body_out, b.data ? b.data : "", b.len);
    hs_buf_free(&b);
    hs_upstream_pool_close(s);
    return st;
}

static struct hs_upstream_member_state member(hs_upstream_pool *p, int i)
{
    struct hs_upstream_member_state ms;
    memset(&ms, 0, sizeof ms);
    assert_int_equal(hs_upstream_pool_member(p, i, &ms), HS_OK);
    return ms;
}

/* ---------------------------------------------------------------------------
 * tests */

static void sequential_traffic_is_weighted_round_robin(void **state)
{
    (void)state;
    struct pool_opts o = {.n = 2, .weights = {2, 1}, .retries = 0, .health_ms = -1};
    hs_upstream_pool *p = make_pool(&o);
    int count[N_NODES] = {0};
    for (int i = 0; i < 30; i++) {
        int who;
        assert_int_equal(roundtrip(p, &who, NULL), 200);
        assert_true(who == 0 || who == 1);
        count[who]++;
    }
    /* one at a time nothing is outstanding: every pick is a tie, split 2:1 */
    assert_int_equal(count[0], 20);
    assert_int_equal(count[1], 10);
    assert_int_equal(atomic_load(&NODES[0].chats), 20);
    assert_int_equal(atomic_load(&NODES[1].chats), 10);
    assert_int_equal(member(p, 0).outstanding, 0);
    assert_int_equal(member(p, 1).outstanding, 0);
    hs_upstream_pool_free(p);
}

static void the_least_outstanding_member_is_picked(void **state)
{
    (void)state;
    atomic_store(&NODES[0].hold, true);
    atomic_store(&NODES[1].hold, true);
    atomic_store(&NODES[2].hold, true);
    struct pool_opts o = {.n = 3, .weights = {1, 1, 1}, .retries = 0, .health_ms = -1};
    hs_upstream_pool *p = make_pool(&o);
    hs_upstream_pool_stream *s[8] = {0};
    /* three requests held open: one per member */
    int seen = 0;
    for (int i = 0; i < 3; i++) {
        s[i] = post(p);
        int k = node_of(s[i]);
        assert_true(k >= 0);
        seen |= 1 << k;
    }
    assert_int_equal(seen, 7);
    /* the member whose request ends is the only one at 0: it gets the next
     * two picks' first, whatever the round-robin position says */
    int freed = node_of(s[1]);
    hs_upstream_pool_close(s[1]);
    s[1] = NULL;
    assert_int_equal(member(p, freed).outstanding, 0);
    s[3] = post(p);
    assert_int_equal(node_of(s[3]), freed);
    freed = node_of(s[0]);
    hs_upstream_pool_close(s[0]);
    s[0] = NULL;
    s[4] = post(p);
    assert_int_equal(node_of(s[4]), freed);
    for (int i = 0; i < 3; i++)
        assert_int_equal(member(p, i).outstanding, 1);
    for (int i = 0; i < 8; i++)
        hs_upstream_pool_close(s[i]);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(member(p, i).outstanding, 0);
        atomic_store(&NODES[i].hold, false);
    }
    hs_upstream_pool_free(p);
}

static void a_500_is_retried_on_another_member(void **state)
{
    (void)state;
    atomic_store(&NODES[0].chat_status, 500);
    struct pool_opts o = {.n = 2, .weights = {1, 1}, .retries = -1, .health_ms = -1};
    hs_upstream_pool *p = make_pool(&o);
    for (int i = 0; i < 6; i++) {
        int who;
        hs_upstream_pool_stream *s = post(p);
        hs_err err = {0};
        int st = hs_upstream_pool_status(s, 5000, &err);
        assert_int_equal(st, 200);
        assert_int_equal(node_of(s), 1);
        hs_upstream_pool_close(s);
        assert_int_equal(roundtrip(p, &who, NULL), 200);
        assert_int_equal(who, 1);
    }
    /* node 0 saw requests (and failed them), every client got node 1's answer */
    assert_true(atomic_load(&NODES[0].chats) >= 1);
    assert_int_equal((int)hs_upstream_pool_retries(p), atomic_load(&NODES[0].chats));
    struct hs_upstream_member_state m0 = member(p, 0);
    assert_int_equal((int)m0.failures, atomic_load(&NODES[0].chats));
    hs_upstream_pool_free(p);
}

static void without_retries_the_500_is_the_answer(void **state)
{
    (void)state;
    atomic_store(&NODES[0].chat_status, 500);
    struct pool_opts o = {.n = 1, .weights = {1}, .retries = 0, .health_ms = -1};
    hs_upstream_pool *p = make_pool(&o);
    hs_buf body = {0};
    assert_int_equal(roundtrip(p, NULL, &body), 500);
    assert_non_null(strstr(body.data, "node 0 says 500"));
    assert_int_equal(atomic_load(&NODES[0].chats), 1);
    hs_buf_free(&body);
    hs_upstream_pool_free(p);
}

static void a_refused_connection_is_retried_elsewhere(void **state)
{
    (void)state;
    node_kill(&NODES[0]);
    struct pool_opts o = {.n = 2, .weights = {1, 1}, .retries = 1, .health_ms = -1};
    hs_upstream_pool *p = make_pool(&o);
    for (int i = 0; i < 4; i++) {
        int who;
        assert_int_equal(roundtrip(p, &who, NULL), 200);
        assert_int_equal(who, 1);
    }
    assert_true(member(p, 0).failures >= 1);
    hs_upstream_pool_free(p);
}

static void a_lone_member_is_retried_after_its_retry_after(void **state)
{
    (void)state;
    atomic_store(&NODES[0].fail_first, 1); /* 503, Retry-After: 1 */
    struct pool_opts o = {.n = 1, .weights = {1}, .retries = 1, .health_ms = -1, .ra_cap_ms = 300};
    hs_upstream_pool *p = make_pool(&o);
    hs_upstream_pool_stream *s = post(p);
    int64_t t0 = hs_now_ns();
    hs_err err = {0};
    int st;
    /* polled as the server does: a backoff in progress reads as "not yet" */
    while ((st = hs_upstream_pool_status(s, 20, &err)) == 0) {
    }
    int64_t ms = (hs_now_ns() - t0) / 1000000;
    assert_int_equal(st, 200);
    assert_int_equal(hs_upstream_pool_stream_attempts(s), 2);
    assert_int_equal(atomic_load(&NODES[0].chats), 2);
    /* Retry-After: 1 s, capped at 300 ms */
    assert_true(ms >= 290);
    assert_true(ms < 1000);
    hs_upstream_pool_close(s);
    hs_upstream_pool_free(p);
}

static void no_retry_once_the_body_has_begun(void **state)
{
    (void)state;
    atomic_store(&NODES[0].broken_body, true);
    struct pool_opts o = {.n = 2, .weights = {1, 1}, .retries = 3, .health_ms = -1};
    hs_upstream_pool *p = make_pool(&o);
    hs_upstream_pool_stream *s = post(p);
    assert_int_equal(node_of(s), 0); /* the first pick of a fresh pool */
    hs_err err = {0};
    assert_int_equal(hs_upstream_pool_status(s, 5000, &err), 200);
    char buf[256];
    long n, got = 0;
    while ((n = hs_upstream_pool_read(s, buf, sizeof buf, 5000, &err)) > 0)
        got += n;
    assert_true(got > 0);
    assert_true(n < 0); /* the break reaches the reader */
    hs_upstream_pool_close(s);
    assert_int_equal(atomic_load(&NODES[1].chats), 0);
    assert_int_equal(atomic_load(&NODES[0].chats), 1);
    assert_int_equal((int)hs_upstream_pool_retries(p), 0);
    hs_upstream_pool_free(p);
}

static void the_breaker_opens_half_opens_and_closes(void **state)
{
    (void)state;
    atomic_store(&g_fake_ms, 1000000);
    atomic_store(&NODES[0].chat_status, 500);
    struct pool_opts o = {.n = 1,
                          .weights = {1},
                          .retries = 0,
                          .health_ms = -1,
                          .breaker_failures = 3,
                          .cooldown_ms = 5000,
                          .fake = true};
    hs_upstream_pool *p = make_pool(&o);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(member(p, 0).breaker, HS_BREAKER_CLOSED);
        assert_int_equal(roundtrip(p, NULL, NULL), 500);
    }
    struct hs_upstream_member_state m = member(p, 0);
    assert_int_equal(m.breaker, HS_BREAKER_OPEN);
    assert_int_equal((int)m.breaker_opens, 1);
    assert_int_equal(m.consecutive_failures, 3);

    /* open: no traffic; the refusal names the model */
    hs_upstream_pool_stream *s = NULL;
    hs_err err = {0};
    assert_int_equal(hs_upstream_pool_post(p, "/chat/completions", BODY, strlen(BODY), NULL, &s, &err),
                     HS_EBUSY);
    assert_null(s);
    assert_string_equal(err.msg, "no healthy upstream for 'pool-test'");
    assert_int_equal(hs_upstream_pool_retry_after_s(p), 5);
    atomic_fetch_add(&g_fake_ms, 4000);
    assert_int_equal(hs_upstream_pool_retry_after_s(p), 1);
    assert_int_equal(hs_upstream_pool_post(p, "/chat/completions", BODY, strlen(BODY), NULL, &s, &err),
                     HS_EBUSY);
    assert_int_equal(atomic_load(&NODES[0].chats), 3);

    /* cooled down: one trial at a time, and its failure opens it again */
    atomic_fetch_add(&g_fake_ms, 1000);
    hs_upstream_pool_stream *trial = post(p);
    assert_int_equal(member(p, 0).breaker, HS_BREAKER_HALF_OPEN);
    assert_int_equal(hs_upstream_pool_post(p, "/chat/completions", BODY, strlen(BODY), NULL, &s, &err),
                     HS_EBUSY);
    assert_int_equal(hs_upstream_pool_status(trial, 5000, &err), 500);
    hs_upstream_pool_close(trial);
    m = member(p, 0);
    assert_int_equal(m.breaker, HS_BREAKER_OPEN);
    assert_int_equal((int)m.breaker_opens, 2);

    /* a trial canceled before its answer frees the slot without a verdict */
    atomic_fetch_add(&g_fake_ms, 5000);
    atomic_store(&NODES[0].hold, true);
    trial = post(p);
    hs_upstream_pool_close(trial);
    atomic_store(&NODES[0].hold, false);
    assert_int_equal(member(p, 0).breaker, HS_BREAKER_HALF_OPEN);

    /* the member recovers: the next trial closes the breaker */
    atomic_store(&NODES[0].chat_status, 200);
    int who;
    assert_int_equal(roundtrip(p, &who, NULL), 200);
    m = member(p, 0);
    assert_int_equal(m.breaker, HS_BREAKER_CLOSED);
    assert_int_equal(m.consecutive_failures, 0);
    assert_int_equal(roundtrip(p, &who, NULL), 200);
    assert_int_equal(roundtrip(p, &who, NULL), 200);
    hs_upstream_pool_free(p);
}

static void open_breakers_send_traffic_to_the_others(void **state)
{
    (void)state;
    atomic_store(&g_fake_ms, 0);
    atomic_store(&NODES[0].chat_status, 429);
    struct pool_opts o = {.n = 2,
                          .weights = {1, 1},
                          .retries = 1,
                          .health_ms = -1,
                          .breaker_failures = 2,
                          .cooldown_ms = 60000,
                          .fake = true};
    hs_upstream_pool *p = make_pool(&o);
    for (int i = 0; i < 10; i++) {
        int who;
        assert_int_equal(roundtrip(p, &who, NULL), 200);
        assert_int_equal(who, 1);
    }
    assert_int_equal(member(p, 0).breaker, HS_BREAKER_OPEN);
    assert_int_equal(atomic_load(&NODES[0].chats), 2); /* no traffic once open */
    hs_upstream_pool_free(p);
}

static void health_checks_mark_members_down_and_up(void **state)
{
    (void)state;
    struct pool_opts o = {.n = 2, .weights = {1, 1}, .retries = 0, .health_ms = -1};
    hs_upstream_pool *p = make_pool(&o);
    assert_true(member(p, 0).up && member(p, 1).up);
    atomic_store(&NODES[1].models_status, 500);
    hs_upstream_pool_check_health(p);
    assert_int_equal(atomic_load(&NODES[1].models), 1);
    assert_true(member(p, 0).up);
    assert_false(member(p, 1).up);
    for (int i = 0; i < 6; i++) {
        int who;
        assert_int_equal(roundtrip(p, &who, NULL), 200);
        assert_int_equal(who, 0);
    }
    assert_int_equal(atomic_load(&NODES[1].chats), 0);
    /* a 401 or 429 is a live server */
    atomic_store(&NODES[1].models_status, 401);
    hs_upstream_pool_check_health(p);
    assert_true(member(p, 1).up);
    /* every member down: refused with the model's name */
    atomic_store(&NODES[0].models_status, 503);
    atomic_store(&NODES[1].models_status, 502);
    hs_upstream_pool_check_health(p);
    hs_upstream_pool_stream *s = NULL;
    hs_err err = {0};
    assert_int_equal(hs_upstream_pool_post(p, "/chat/completions", BODY, strlen(BODY), NULL, &s, &err),
                     HS_EBUSY);
    assert_non_null(strstr(err.msg, "pool-test"));
    atomic_store(&NODES[0].models_status, 200);
    hs_upstream_pool_check_health(p);
    assert_true(member(p, 0).up);
    hs_upstream_pool_free(p);
}

static void the_health_thread_notices_a_dead_member(void **state)
{
    (void)state;
    struct pool_opts o = {.n = 2, .weights = {1, 1}, .retries = 1, .health_ms = 50};
    hs_upstream_pool *p = make_pool(&o);
    int64_t t0 = hs_now_ns();
    while (atomic_load(&NODES[1].models) < 2 && hs_now_ns() - t0 < 3000000000LL)
        usleep(5000);
    assert_true(atomic_load(&NODES[1].models) >= 2); /* rounds keep coming */
    node_kill(&NODES[1]);
    t0 = hs_now_ns();
    while (member(p, 1).up && hs_now_ns() - t0 < 3000000000LL)
        usleep(5000);
    assert_false(member(p, 1).up);
    assert_true(member(p, 0).up);
    int chats = atomic_load(&NODES[0].chats);
    for (int i = 0; i < 4; i++) {
        int who;
        assert_int_equal(roundtrip(p, &who, NULL), 200);
        assert_int_equal(who, 0);
    }
    assert_int_equal(atomic_load(&NODES[0].chats), chats + 4); /* no attempt went to the dead one */
    /* freeing stops the thread promptly */
    t0 = hs_now_ns();
    hs_upstream_pool_free(p);
    assert_true(hs_now_ns() - t0 < 1500000000LL);
}

static void a_stream_outlives_its_pool(void **state)
{
    (void)state;
    struct pool_opts o = {.n = 1, .weights = {1}, .retries = 0, .health_ms = 1000};
    hs_upstream_pool *p = make_pool(&o);
    hs_upstream_pool_stream *s = post(p);
    hs_upstream_pool_free(p);
    hs_err err = {0};
    assert_int_equal(hs_upstream_pool_status(s, 5000, &err), 200);
    char buf[128];
    long n = hs_upstream_pool_read(s, buf, sizeof buf, 5000, &err);
    assert_true(n > 0);
    hs_upstream_pool_close(s);
}

static void bad_members_are_refused(void **state)
{
    (void)state;
    struct hs_upstream_member_params mp[2] = {{NODES[0].url, NULL, NULL, 1}, {"ftp://x/v1", NULL, NULL, 1}};
    struct hs_upstream_pool_params pp = {
        .name = "bad", .members = mp, .n_members = 2, .health_interval_ms = -1};
    hs_upstream_pool *p = (hs_upstream_pool *)1;
    hs_err err = {0};
    assert_int_equal(hs_upstream_pool_create(&pp, &p, &err), HS_EINVAL);
    assert_null(p);
    assert_non_null(strstr(err.msg, "upstream 2 of 'bad'"));
    pp.n_members = 0;
    assert_int_equal(hs_upstream_pool_create(&pp, &p, &err), HS_EINVAL);
    hs_upstream_pool_free(NULL);
    hs_upstream_pool_close(NULL);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(sequential_traffic_is_weighted_round_robin),
        T(the_least_outstanding_member_is_picked),
        T(a_500_is_retried_on_another_member),
        T(without_retries_the_500_is_the_answer),
        T(a_refused_connection_is_retried_elsewhere),
        T(a_lone_member_is_retried_after_its_retry_after),
        T(no_retry_once_the_body_has_begun),
        T(the_breaker_opens_half_opens_and_closes),
        T(open_breakers_send_traffic_to_the_others),
        T(health_checks_mark_members_down_and_up),
        T(the_health_thread_notices_a_dead_member),
        T(a_stream_outlives_its_pool),
        T(bad_members_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
