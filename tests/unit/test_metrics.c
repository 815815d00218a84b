/* ops/metrics: the Prometheus exposition after known observations. The text
 * is read back by a small parser written here from the format's description
 * (exposition format 0.0.4), and every count, sum and bucket is checked
 * against numbers this test computes from its own observations. */
#include "test_util.h"

#include "base/buf.h"
#include "ops/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a parser for the text format ------------------------------------------ */

#define MAX_LABELS 4
#define MAX_SAMPLES 12000
#define MAX_FAMILIES 64

struct sample {
    char name[96];
    int n_labels;
    char key[MAX_LABELS][32];
    char val[MAX_LABELS][64];
    double value;
};

struct family {
    char name[96], type[16];
    bool has_help;
};

struct expo {
    struct sample s[MAX_SAMPLES];
    int n;
    struct family f[MAX_FAMILIES];
    int nf;
};

static struct family *family_of(struct expo *e, const char *name)
{
    for (int i = 0; i < e->nf; i++)
        if (!strcmp(e->f[i].name, name))
            return &e->f[i];
    return NULL;
}

static bool name_char(char c, bool first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
           (!first && c >= '0' && c <= '9');
}

/* Reads a metric or label name at *p into out. */
static void read_name(const char **p, char *out, size_t cap)
{
    size_t n = 0;
    assert_true(name_char(**p, true));
    while (name_char(**p, n == 0)) {
        assert_true(n + 1 < cap);
        out[n++] = *(*p)++;
    }
    out[n] = '\0';
}

/* "name[{k="v",...}] value\n"; label values unescaped. */
static void parse_sample(const char *line, struct sample *s)
{
    const char *p = line;
    memset(s, 0, sizeof *s);
    read_name(&p, s->name, sizeof s->name);
    if (*p == '{') {
        p++;
        while (*p != '}') {
            assert_true(s->n_labels < MAX_LABELS);
            read_name(&p, s->key[s->n_labels], sizeof s->key[0]);
            assert_int_equal(*p++, '=');
            assert_int_equal(*p++, '"');
            size_t n = 0;
            char *v = s->val[s->n_labels];
            while (*p != '"') {
                assert_true(*p != '\0' && *p != '\n');
                char c = *p++;
                if (c == '\\') {
                    c = *p++;
                    assert_true(c == '\\' || c == '"' || c == 'n');
                    if (c == 'n')
                        c = '\n';
                }
                assert_true(n + 1 < sizeof s->val[0]);
                v[n++] = c;
            }
            v[n] = '\0';
            p++;
            s->n_labels++;
            if (*p == ',')
                p++;
            else
                assert_int_equal(*p, '}');
        }
        p++;
    }
    assert_int_equal(*p++, ' ');
    if (!strcmp(p, "+Inf"))
        s->value = INFINITY;
    else if (!strcmp(p, "-Inf"))
        s->value = -INFINITY;
    else if (!strcmp(p, "NaN"))
        s->value = NAN;
    else {
        char *end;
        s->value = strtod(p, &end);
        assert_true(end != p && *end == '\0');
    }
}

/* The family a sample belongs to: its own name, or for a histogram's
 * _bucket/_sum/_count the name before the suffix. */
static struct family *owner(struct expo *e, const char *name)
{
    struct family *f = family_of(e, name);
    if (f)
        return f;
    static const char *const sfx[] = {"_bucket", "_sum", "_count"};
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(name), k = strlen(sfx[i]);
        if (n > k && !strcmp(name + n - k, sfx[i])) {
            char base[96];
            memcpy(base, name, n - k);
            base[n - k] = '\0';
            f = family_of(e, base);
            if (f && !strcmp(f->type, "histogram"))
                return f;
        }
    }
    return NULL;
}

static void parse_expo(const char *text, struct expo *e)
{
    memset(e, 0, sizeof *e);
    const char *p = text;
    assert_true(text[0] != '\0');
    assert_int_equal(text[strlen(text) - 1], '\n');
    while (*p) {
        const char *nl = strchr(p, '\n');
        assert_non_null(nl);
        char line[512];
        size_t n = (size_t)(nl - p);
        assert_true(n < sizeof line);
        memcpy(line, p, n);
        line[n] = '\0';
        p = nl + 1;
        if (!strncmp(line, "# HELP ", 7)) {
            const char *q = line + 7;
            char name[96];
            read_name(&q, name, sizeof name);
            assert_int_equal(*q, ' ');
            assert_null(family_of(e, name)); /* HELP comes first, once */
            assert_true(e->nf < MAX_FAMILIES);
            struct family *f = &e->f[e->nf++];
            snprintf(f->name, sizeof f->name, "%s", name);
            f->has_help = true;
        } else if (!strncmp(line, "# TYPE ", 7)) {
            const char *q = line + 7;
            char name[96];
            read_name(&q, name, sizeof name);
            assert_int_equal(*q++, ' ');
            struct family *f = family_of(e, name);
            assert_non_null(f);
            assert_true(f->type[0] == '\0');
            assert_true(!strcmp(q, "counter") || !strcmp(q, "gauge") || !strcmp(q, "histogram"));
            snprintf(f->type, sizeof f->type, "%s", q);
        } else {
            assert_true(line[0] != '#' && line[0] != '\0');
            assert_true(e->n < MAX_SAMPLES);
            struct sample *s = &e->s[e->n++];
            parse_sample(line, s);
            struct family *f = owner(e, s->name);
            if (!f)
                print_message("sample without a TYPE: %s\n", line);
            assert_non_null(f);
            /* samples of a family come right after its header: it is the last one declared */
            assert_ptr_equal(f, &e->f[e->nf - 1]);
        }
    }
}

static const char *label(const struct sample *s, const char *key)
{
    for (int i = 0; i < s->n_labels; i++)
        if (!strcmp(s->key[i], key))
            return s->val[i];
    return NULL;
}

/* The value of the one sample with this name, model and (optional) second
 * label; NAN when absent. */
static double value_of(const struct expo *e, const char *name, const char *model, const char *key,
                       const char *val)
{
    double v = NAN;
    int found = 0;
    for (int i = 0; i < e->n; i++) {
        const struct sample *s = &e->s[i];
        if (strcmp(s->name, name) || strcmp(label(s, "model"), model))
            continue;
        if (key && (!label(s, key) || strcmp(label(s, key), val)))
            continue;
        v = s->value;
        found++;
    }
    assert_true(found <= 1);
    return v;
}

/* ---- checks ----------------------------------------------------------------- */

/* A histogram against the observations it was given: for every le the
 * rendered count is the number of observations <= le; +Inf, _count, _sum. */
static void check_histogram(const struct expo *e, const char *base, const char *model, const double *obs,
                            int n_obs, double first_le, double last_le)
{
    char bucket[128], sum[128], count[128];
    snprintf(bucket, sizeof bucket, "%s_bucket", base);
    snprintf(sum, sizeof sum, "%s_sum", base);
    snprintf(count, sizeof count, "%s_count", base);
    int n_buckets = 0;
    double prev_le = -INFINITY, prev_count = 0, first = NAN, last_finite = NAN;
    bool saw_inf = false;
    for (int i = 0; i < e->n; i++) {
        const struct sample *s = &e->s[i];
        if (strcmp(s->name, bucket) || strcmp(label(s, "model"), model))
            continue;
        const char *les = label(s, "le");
        assert_non_null(les);
        double le = !strcmp(les, "+Inf") ? INFINITY : strtod(les, NULL);
        assert_true(le > prev_le);           /* in increasing order */
        assert_true(s->value >= prev_count); /* cumulative */
        int want = 0;
        for (int k = 0; k < n_obs; k++)
            want += obs[k] <= le;
        if (s->value != want)
            print_message("%s{model=%s,le=%s} = %g, want %d\n", bucket, model, les, s->value, want);
        assert_true(s->value == want);
        if (n_buckets == 0)
            first = le;
        if (isinf(le))
            saw_inf = true;
        else
            last_finite = le;
        prev_le = le;
        prev_count = s->value;
        n_buckets++;
    }
    assert_true(saw_inf);
    assert_true(n_buckets >= 10);
    assert_true(first == first_le);
    assert_true(last_finite == last_le);
    double want_sum = 0;
    for (int k = 0; k < n_obs; k++)
        want_sum += obs[k];
    assert_true(value_of(e, count, model, NULL, NULL) == n_obs);
    assert_true(fabs(value_of(e, sum, model, NULL, NULL) - want_sum) <= 1e-9 * (1 + want_sum));
}

static void engine_gauges(void *user, const char *model, struct hs_metrics_engine *out)
{
    int *calls = user;
    (*calls)++;
    assert_string_equal(model, "llama-1b");
    out->running = 3;
    out->waiting = 2;
    out->kv_usage = 0.25;
    out->prefix_queries = 1000;
    out->prefix_hits = 640;
}

static void exposition_counts_sums_and_buckets(void **state)
{
    (void)state;
    hs_metrics *m;
    assert_int_equal(hs_metrics_create(&m, NULL), HS_OK);
    int calls = 0;
    assert_int_equal(hs_metrics_add_model(m, "llama-1b", engine_gauges, &calls), HS_OK);
    assert_int_equal(hs_metrics_add_model(m, "gpt-up", NULL, NULL), HS_OK);

    /* Known observations, including values exactly on a boundary (le is
     * inclusive), past the last one, and unmeasured (< 0) ones. */
    const double ttft[] = {0.0005, 0.001, 0.003, 0.1, 0.1000001, 2.0, 79.9, 80.0, 95.0};
    const double e2e[] = {0.004, 0.3, 0.31, 1.7, 12.0, 7680.0, 9000.0, 0.05, 0.02};
    const double queue[] = {0.0, 0.0001, 0.002, 0.7, 30.0, 0.2, 0.01, 5.0, 1e4};
    const char *reasons[] = {"stop", "stop", "length", "stop", "length", "stop", "stop", "stop", "stop"};
    int n = (int)(sizeof ttft / sizeof ttft[0]);
    int prompt = 0, gen = 0;
    for (int i = 0; i < n; i++) {
        struct hs_metrics_request r = {.model = "llama-1b",
                                       .status = 200,
                                       .finish_reason = reasons[i],
                                       .prompt_tokens = 10 + i,
                                       .generation_tokens = 3 * i,
                                       .queue_s = queue[i],
                                       .ttft_s = ttft[i],
                                       .e2e_s = e2e[i]};
        prompt += r.prompt_tokens;
        gen += r.generation_tokens;
        hs_metrics_observe_request(m, &r);
    }
    /* errors: no first token, no success */
    struct hs_metrics_request bad = {
        .model = "llama-1b", .status = 400, .prompt_tokens = 0, .queue_s = -1, .ttft_s = -1, .e2e_s = 0.002};
    hs_metrics_observe_request(m, &bad);
    hs_metrics_observe_request(m, &bad);
    bad.status = 503;
    hs_metrics_observe_request(m, &bad);
    const double e2e_all[] = {0.004, 0.3, 0.31, 1.7, 12.0, 7680.0, 9000.0, 0.05, 0.02, 0.002, 0.002, 0.002};

    const double itl[] = {0.0004, 0.001, 0.0011, 0.01, 0.05, 0.049, 0.3, 81.0};
    for (size_t i = 0; i < sizeof itl / sizeof itl[0]; i++)
        hs_metrics_observe_itl(m, "llama-1b", itl[i]);
    hs_metrics_observe_itl(m, "llama-1b", -1);
    hs_metrics_observe_itl(m, "llama-1b", NAN);

    /* an upstream model and a name nobody registered, with awkward characters */
    const char *odd = "we\"ird\\name\nx";
    struct hs_metrics_request up = {.model = "gpt-up",
                                    .status = 200,
                                    .finish_reason = "stop",
                                    .prompt_tokens = 4,
                                    .generation_tokens = 6,
                                    .queue_s = 0.001,
                                    .ttft_s = 0.5,
                                    .e2e_s = 0.9};
    hs_metrics_observe_request(m, &up);
    struct hs_metrics_request q = {.model = odd, .status = 404, .queue_s = -1, .ttft_s = -1, .e2e_s = -1};
    hs_metrics_observe_request(m, &q);

    hs_buf out = {0};
    assert_int_equal(hs_metrics_render(m, &out), HS_OK);
    static struct expo e;
    parse_expo(out.data, &e);
    assert_int_equal(calls, 1);

    /* every family, with its type; every sample carries a model label */
    static const struct {
        const char *name, *type;
    } fam[] = {
        {"hestia:request_success_total", "counter"},
        {"hestia:requests_total", "counter"},
        {"hestia:prompt_tokens_total", "counter"},
        {"hestia:generation_tokens_total", "counter"},
        {"hestia:time_to_first_token_seconds", "histogram"},
        {"hestia:inter_token_latency_seconds", "histogram"},
        {"hestia:e2e_request_latency_seconds", "histogram"},
        {"hestia:request_queue_time_seconds", "histogram"},
        {"hestia:num_requests_running", "gauge"},
        {"hestia:num_requests_waiting", "gauge"},
        {"hestia:kv_cache_usage_perc", "gauge"},
        {"hestia:prefix_cache_queries_total", "counter"},
        {"hestia:prefix_cache_hits_total", "counter"},
    };
    for (size_t i = 0; i < sizeof fam / sizeof fam[0]; i++) {
        struct family *f = family_of(&e, fam[i].name);
        if (!f)
            print_message("missing family %s\n", fam[i].name);
        assert_non_null(f);
        assert_true(f->has_help);
        assert_string_equal(f->type, fam[i].type);
    }
    for (int i = 0; i < e.n; i++)
        assert_non_null(label(&e.s[i], "model"));

    /* counters */
    assert_true(value_of(&e, "hestia:requests_total", "llama-1b", "status", "200") == n);
    assert_true(value_of(&e, "hestia:requests_total", "llama-1b", "status", "400") == 2);
    assert_true(value_of(&e, "hestia:requests_total", "llama-1b", "status", "503") == 1);
    assert_true(value_of(&e, "hestia:request_success_total", "llama-1b", "finished_reason", "stop") == 7);
    assert_true(value_of(&e, "hestia:request_success_total", "llama-1b", "finished_reason", "length") == 2);
    assert_true(value_of(&e, "hestia:prompt_tokens_total", "llama-1b", NULL, NULL) == prompt);
    assert_true(value_of(&e, "hestia:generation_tokens_total", "llama-1b", NULL, NULL) == gen);
    assert_true(value_of(&e, "hestia:prompt_tokens_total", "gpt-up", NULL, NULL) == 4);
    assert_true(value_of(&e, "hestia:generation_tokens_total", "gpt-up", NULL, NULL) == 6);
    assert_true(value_of(&e, "hestia:requests_total", odd, "status", "404") == 1);
    assert_true(value_of(&e, "hestia:request_success_total", odd, "finished_reason", "stop") == 0);

    /* histograms, with the boundary ranges the header promises */
    check_histogram(&e, "hestia:time_to_first_token_seconds", "llama-1b", ttft, n, 0.001, 80);
    check_histogram(&e, "hestia:e2e_request_latency_seconds", "llama-1b", e2e_all, 12, 0.01, 7680);
    check_histogram(&e, "hestia:request_queue_time_seconds", "llama-1b", queue, n, 0.001, 7680);
    check_histogram(&e, "hestia:inter_token_latency_seconds", "llama-1b", itl, 8, 0.001, 80);
    const double up_ttft[] = {0.5};
    check_histogram(&e, "hestia:time_to_first_token_seconds", "gpt-up", up_ttft, 1, 0.001, 80);
    check_histogram(&e, "hestia:inter_token_latency_seconds", "gpt-up", NULL, 0, 0.001, 80);
    check_histogram(&e, "hestia:e2e_request_latency_seconds", odd, NULL, 0, 0.01, 7680);
    /* vLLM's own boundaries are among ours */
    assert_false(isnan(value_of(&e, "hestia:inter_token_latency_seconds_bucket", "llama-1b", "le", "0.01")));
    assert_false(isnan(value_of(&e, "hestia:e2e_request_latency_seconds_bucket", "llama-1b", "le", "0.3")));

    /* gauges from the callback, only for the model that has one */
    assert_true(value_of(&e, "hestia:num_requests_running", "llama-1b", NULL, NULL) == 3);
    assert_true(value_of(&e, "hestia:num_requests_waiting", "llama-1b", NULL, NULL) == 2);
    assert_true(value_of(&e, "hestia:kv_cache_usage_perc", "llama-1b", NULL, NULL) == 0.25);
    assert_true(value_of(&e, "hestia:prefix_cache_queries_total", "llama-1b", NULL, NULL) == 1000);
    assert_true(value_of(&e, "hestia:prefix_cache_hits_total", "llama-1b", NULL, NULL) == 640);
    assert_true(isnan(value_of(&e, "hestia:num_requests_running", "gpt-up", NULL, NULL)));

    hs_buf_free(&out);
    hs_metrics_free(m);
    hs_metrics_free(NULL);
}

#define ITL_THREADS 4
#define ITL_EACH 2000

static void *observe_many(void *arg)
{
    hs_metrics *m = arg;
    for (int i = 0; i < ITL_EACH; i++) {
        hs_metrics_observe_itl(m, "m", 0.002);
        struct hs_metrics_request r = {.model = "m",
                                       .status = 200,
                                       .finish_reason = "stop",
                                       .prompt_tokens = 1,
                                       .generation_tokens = 2,
                                       .queue_s = 0,
                                       .ttft_s = 0.01,
                                       .e2e_s = 0.02};
        hs_metrics_observe_request(m, &r);
    }
    return NULL;
}

/* Concurrent updates and renders lose nothing; a render mid-way is itself consistent. */
static void concurrent_updates_are_all_counted(void **state)
{
    (void)state;
    hs_metrics *m;
    assert_int_equal(hs_metrics_create(&m, NULL), HS_OK);
    pthread_t th[ITL_THREADS];
    for (int i = 0; i < ITL_THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, observe_many, m), 0);
    static struct expo e;
    for (int k = 0; k < 5; k++) {
        hs_buf out = {0};
        assert_int_equal(hs_metrics_render(m, &out), HS_OK);
        parse_expo(out.data, &e);
        double c = value_of(&e, "hestia:requests_total", "m", "status", "200");
        if (!isnan(c)) /* one snapshot: the counters agree with each other */
            assert_true(value_of(&e, "hestia:generation_tokens_total", "m", NULL, NULL) == 2 * c);
        hs_buf_free(&out);
    }
    for (int i = 0; i < ITL_THREADS; i++)
        pthread_join(th[i], NULL);
    hs_buf out = {0};
    assert_int_equal(hs_metrics_render(m, &out), HS_OK);
    parse_expo(out.data, &e);
    const double total = ITL_THREADS * ITL_EACH;
    assert_true(value_of(&e, "hestia:inter_token_latency_seconds_count", "m", NULL, NULL) == total);
    assert_true(value_of(&e, "hestia:inter_token_latency_seconds_bucket", "m", "le", "0.0025") == total);
    assert_true(value_of(&e, "hestia:inter_token_latency_seconds_bucket", "m", "le", "0.001") == 0);
    assert_true(value_of(&e, "hestia:requests_total", "m", "status", "200") == total);
    assert_true(value_of(&e, "hestia:prompt_tokens_total", "m", NULL, NULL) == total);
    hs_buf_free(&out);
    hs_metrics_free(m);
}

/* Client-chosen model names cannot grow the exposition without bound. */
static void unregistered_names_are_capped(void **state)
{
    (void)state;
    hs_metrics *m;
    assert_int_equal(hs_metrics_create(&m, NULL), HS_OK);
    for (int i = 0; i < 500; i++) {
        char name[32];
        snprintf(name, sizeof name, "junk-%d", i);
        struct hs_metrics_request r = {
            .model = name, .status = 404, .queue_s = -1, .ttft_s = -1, .e2e_s = -1};
        hs_metrics_observe_request(m, &r);
    }
    hs_buf out = {0};
    assert_int_equal(hs_metrics_render(m, &out), HS_OK);
    static struct expo e;
    parse_expo(out.data, &e);
    int models = 0;
    double total = 0;
    for (int i = 0; i < e.n; i++)
        if (!strcmp(e.s[i].name, "hestia:requests_total")) {
            models++;
            total += e.s[i].value;
        }
    assert_true(models <= 100);
    assert_true(total == 500); /* nothing is lost, only grouped */
    hs_buf_free(&out);
    hs_metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(exposition_counts_sums_and_buckets),
        cmocka_unit_test(concurrent_updates_are_all_counted),
        cmocka_unit_test(unregistered_names_are_capped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
