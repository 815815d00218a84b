/* The dashboard's history from the store (issue 6):
 *   GET /api/timeseries?hours=H&bucket=S  per-bucket numbers, zero-filled
 *   GET /api/agents?hours=H[&bucket=S]    the same range per agent
 * Buckets are aligned to multiples of bucket_ms in unix time and the last
 * one holds now, so a chart's points stay put from one refresh to the next;
 * the range is [from_ms, to_ms) with to_ms the end of that last bucket. Both
 * routes read the store (ops/store_timeseries.h), never the monitor's
 * in-memory windows, so they show what happened before a restart too. */
#include "ops/store_timeseries.h"
#include "server/server_impl.h"

#include "base/mem.h"
#include "base/parse.h"

#define HOURS_DEFAULT 24
#define HOURS_MAX 720
#define BUCKET_DEFAULT_S 3600
#define BUCKET_MIN_S 60
#define BUCKET_MAX_S 86400
#define BUCKETS_MAX 2000

struct range {
    int64_t from_ms, to_ms, bucket_ms;
    size_t n;
};

/* hours and bucket from the query into r; false with resp filled (400). */
static bool parse_range(struct srv_call *c, const struct hs_http_req *req, struct hs_http_resp *resp, struct range *r)
{
    int hours = HOURS_DEFAULT;
    int64_t bucket = BUCKET_DEFAULT_S;
    const char *h = hs_http_req_query(req, "hours"), *b = hs_http_req_query(req, "bucket");
    if (h && hs_parse_int(h, 1, HOURS_MAX, &hours)) {
        hs_srv_fail(c, resp, 400, "invalid_request_error", "invalid_value", "hours",
                    "'hours' must be a whole number of hours from 1 to %d", HOURS_MAX);
        return false;
    }
    if (b && hs_parse_i64(b, BUCKET_MIN_S, BUCKET_MAX_S, &bucket)) {
        hs_srv_fail(c, resp, 400, "invalid_request_error", "invalid_value", "bucket",
                    "'bucket' must be a whole number of seconds from %d to %d", BUCKET_MIN_S, BUCKET_MAX_S);
        return false;
    }
    int64_t span_s = (int64_t)hours * 3600;
    int64_t n = (span_s + bucket - 1) / bucket;
    if (n > BUCKETS_MAX) {
        hs_srv_fail(c, resp, 400, "invalid_request_error", "invalid_value", "bucket",
                    "%d hours in buckets of %lld s make %lld buckets; at most %d (use a larger 'bucket')", hours,
                    (long long)bucket, (long long)n, BUCKETS_MAX);
        return false;
    }
    r->bucket_ms = bucket * 1000;
    r->n = (size_t)n;
    r->to_ms = (hs_srv_unix_ms() / r->bucket_ms + 1) * r->bucket_ms;
    r->from_ms = r->to_ms - n * r->bucket_ms;
    return true;
}

static json_t *ratio(int64_t num, int64_t den)
{
    return den > 0 ? json_real((double)num / (double)den) : json_null();
}

static json_t *value_or_null(int64_t n, double v)
{
    return n > 0 ? json_real(v) : json_null();
}

/* The fields every point, the totals and every agent share, into o. */
static void put_stats(json_t *o, const struct hs_ts_stats *t)
{
    json_object_set_new(o, "requests", json_integer(t->requests));
    json_object_set_new(o, "errors", json_integer(t->errors));
    json_object_set_new(o, "error_rate", ratio(t->errors, t->requests));
    json_object_set_new(o, "latency_p50", value_or_null(t->n_latency, t->latency_p50));
    json_object_set_new(o, "latency_p95", value_or_null(t->n_latency, t->latency_p95));
    json_object_set_new(o, "thumbs_up", json_integer(t->thumbs_up));
    json_object_set_new(o, "thumbs_down", json_integer(t->thumbs_down));
    json_object_set_new(o, "satisfaction", ratio(t->thumbs_up, t->thumbs_up + t->thumbs_down));
    json_object_set_new(o, "safety_flagged", json_integer(t->safety_flagged));
    json_object_set_new(o, "safety_rate", ratio(t->safety_flagged, t->requests));
    json_object_set_new(o, "confidence_mean", value_or_null(t->n_confidence, t->confidence_mean));
}

static bool have_store(struct srv_call *c, struct hs_http_resp *resp)
{
    if (c->srv->store)
        return true;
    hs_srv_fail(c, resp, 503, "server_error", NULL, NULL, "this server keeps no store");
    return false;
}

void hs_route_api_timeseries(struct srv_call *c, const struct hs_http_req *req, struct hs_http_resp *resp)
{
    struct range r;
    if (!parse_range(c, req, resp, &r) || !have_store(c, resp))
        return;
    struct hs_ts_stats *b = hs_calloc(r.n, sizeof *b), totals;
    hs_err err = {0};
    if (!b) {
        hs_srv_fail(c, resp, 500, "server_error", NULL, NULL, "out of memory");
        return;
    }
    if (hs_store_timeseries(c->srv->store, r.from_ms, r.to_ms, r.bucket_ms, b, r.n, &totals, &err)) {
        hs_free(b);
        hs_srv_fail(c, resp, 500, "server_error", NULL, NULL, "cannot read the store: %s", err.msg);
        return;
    }
    json_t *points = json_array(), *tot = json_object(), *o = json_object();
    for (size_t i = 0; points && i < r.n; i++) {
        json_t *p = json_object();
        if (!p)
            break;
        json_object_set_new(p, "t", json_integer(r.from_ms + (int64_t)i * r.bucket_ms));
        put_stats(p, &b[i]);
        json_array_append_new(points, p);
    }
    hs_free(b);
    if (tot)
        put_stats(tot, &totals);
    if (!points || !tot || !o || json_array_size(points) != r.n) {
        json_decref(points);
        json_decref(tot);
        json_decref(o);
        hs_srv_fail(c, resp, 500, "server_error", NULL, NULL, "out of memory");
        return;
    }
    json_object_set_new(o, "from_ms", json_integer(r.from_ms));
    json_object_set_new(o, "to_ms", json_integer(r.to_ms));
    json_object_set_new(o, "bucket_ms", json_integer(r.bucket_ms));
    json_object_set_new(o, "points", points);
    json_object_set_new(o, "totals", tot);
    hs_srv_reply_json(c, resp, 200, o);
}

void hs_route_api_agents(struct srv_call *c, const struct hs_http_req *req, struct hs_http_resp *resp)
{
    struct range r;
    if (!parse_range(c, req, resp, &r) || !have_store(c, resp))
        return;
    struct hs_ts_agent *a = NULL;
    size_t n = 0;
    hs_err err = {0};
    if (hs_store_agent_stats(c->srv->store, r.from_ms, r.to_ms, &a, &n, &err)) {
        hs_srv_fail(c, resp, 500, "server_error", NULL, NULL, "cannot read the store: %s", err.msg);
        return;
    }
    json_t *list = json_array(), *o = json_object();
    for (size_t i = 0; list && i < n; i++) {
        json_t *e = json_object();
        if (!e)
            break;
        json_object_set_new(e, "agent", a[i].agent ? json_string(a[i].agent) : json_null());
        put_stats(e, &a[i].st);
        json_array_append_new(list, e);
    }
    hs_ts_agents_free(a, n);
    if (!list || !o || json_array_size(list) != n) {
        json_decref(list);
        json_decref(o);
        hs_srv_fail(c, resp, 500, "server_error", NULL, NULL, "out of memory");
        return;
    }
    json_object_set_new(o, "from_ms", json_integer(r.from_ms));
    json_object_set_new(o, "to_ms", json_integer(r.to_ms));
    json_object_set_new(o, "agents", list);
    hs_srv_reply_json(c, resp, 200, o);
}
