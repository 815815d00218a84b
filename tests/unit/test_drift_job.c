/* Drift runs over a backend (ops/drift_job.h), the nested `drift:` section of
 * the configuration (ops/monitor_config.c), and the schedule's arithmetic.
 * The backend here is a fake: embeddings built from the text (a topic
 * direction plus noise seeded by the text's hash), answers looked up by
 * question. */
#include "test_util.h"

#include "base/mem.h"
#include "base/rng.h"
#include "ops/drift.h"
#include "ops/drift_job.h"
#include "ops/monitor.h"
#include "ops/store_ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DIM 16

/* ---- the fake backend ---- */

struct fake {
    int embedded;          /* texts embedded */
    char seen[64][32];     /* the first 64 of them */
    int fail_at_call;      /* 1-based embed or chat call that fails; 0 = none */
    int calls;
    int stop_after;        /* stopped() says true after this many calls; 0 = never */
    const char *const *qa; /* question, answer, question, answer, ..., NULL */
};

static uint64_t fnv(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* Topic A ("A ...") lies along the first axis, anything else along the
 * second; each text adds its own noise. */
static void text_vector(const char *t, float *v)
{
    hs_rng rng;
    hs_rng_seed(&rng, fnv(t));
    for (int k = 0; k < DIM; k++)
        v[k] = 0.4f * hs_rng_normal(&rng);
    v[t[0] == 'A' ? 0 : 1] += 1.0f;
}

static int fake_embed(void *user, const char *const *texts, int n, float **vecs, int *dim, hs_err *err)
{
    struct fake *f = user;
    if (++f->calls == f->fail_at_call)
        return hs_err_set(err, HS_EIO, "HTTP 503: overloaded");
    float *v = hs_malloc((size_t)n * DIM * sizeof *v);
    if (!v)
        return HS_ENOMEM;
    for (int i = 0; i < n; i++) {
        text_vector(texts[i], v + (size_t)i * DIM);
        if (f->embedded < 64)
            snprintf(f->seen[f->embedded], sizeof f->seen[0], "%s", texts[i]);
        f->embedded++;
    }
    *vecs = v;
    *dim = DIM;
    return HS_OK;
}

static int fake_chat(void *user, const char *question, int max_tokens, char **answer, hs_err *err)
{
    struct fake *f = user;
    (void)max_tokens;
    if (__atomic_add_fetch(&f->calls, 1, __ATOMIC_SEQ_CST) == f->fail_at_call)
        return hs_err_set(err, HS_EIO, "HTTP 500: broken");
    const char *a = "";
    for (int i = 0; f->qa && f->qa[i]; i += 2)
        if (!strcmp(f->qa[i], question))
            a = f->qa[i + 1];
    *answer = hs_strdup(a);
    return *answer ? HS_OK : HS_ENOMEM;
}

static bool fake_stopped(void *user)
{
    struct fake *f = user;
    return f->stop_after > 0 && __atomic_load_n(&f->calls, __ATOMIC_SEQ_CST) >= f->stop_after;
}

static struct hs_drift_backend backend(struct fake *f)
{
    return (struct hs_drift_backend){
        .user = f, .name = "fake", .embed = fake_embed, .chat = fake_chat, .stopped = fake_stopped};
}

static void make_texts(struct hs_drift_texts *t, char topic, int n, int from)
{
    memset(t, 0, sizeof *t);
    for (int i = 0; i < n; i++) {
        char s[32];
        int len = snprintf(s, sizeof s, "%c text %d", topic, from + i);
        assert_int_equal(hs_drift_texts_push(t, s, (size_t)len), HS_OK);
    }
}

static int count_calls_texts(const struct fake *f, char topic)
{
    int n = 0;
    for (int i = 0; i < f->embedded && i < 64; i++)
        n += f->seen[i][0] == topic;
    return n;
}

/* ---- data runs ---- */

static void data_run_matches_the_statistic_on_the_same_vectors(void **state)
{
    (void)state;
    struct hs_drift_texts ref, same, other;
    make_texts(&ref, 'A', 40, 0);
    make_texts(&same, 'A', 40, 1000);
    make_texts(&other, 'B', 40, 0);
    struct hs_drift_params p;
    hs_drift_params_default(&p);
    p.permutations = 200;
    struct fake f = {0};
    struct hs_drift_backend b = backend(&f);
    struct hs_drift_data_result r;
    char *details = NULL;
    hs_err err = {0};
    /* a topic shift: DRIFTED at the smallest p B = 200 can give */
    assert_int_equal(hs_drift_run_data(&b, &ref, "ref.txt", &other, "recent", &p, &r, &details, &err), HS_OK);
    assert_int_equal(r.status, HS_DRIFT_DRIFTED);
    assert_true(fabs(r.p_value - 1.0 / 201) < 1e-12);
    assert_int_equal(r.n_ref, 40);
    assert_int_equal(r.n_cur, 40);
    assert_int_equal(f.embedded, 80); /* every text once, in batches of at most 32 */
    assert_int_equal(f.calls, 4);     /* 32 + 8, twice */
    assert_non_null(strstr(details, "\"status\":\"DRIFTED\""));
    hs_free(details);
    /* the same vectors given to hs_drift_data directly give the same figures */
    float *vr = hs_malloc(40 * DIM * sizeof *vr), *vc = hs_malloc(40 * DIM * sizeof *vc);
    for (int i = 0; i < 40; i++) {
        text_vector(ref.v[i], vr + i * DIM);
        text_vector(other.v[i], vc + i * DIM);
    }
    struct hs_drift_data_result direct;
    assert_int_equal(hs_drift_data(vr, 40, vc, 40, DIM, &p, &direct, &err), HS_OK);
    assert_true(direct.mmd2 == r.mmd2 && direct.p_value == r.p_value);
    /* no shift: STABLE */
    assert_int_equal(hs_drift_run_data(&b, &ref, "ref.txt", &same, "recent", &p, &r, &details, &err), HS_OK);
    assert_int_equal(r.status, HS_DRIFT_STABLE);
    assert_true(r.p_value > 0.05);
    print_message("    no shift: p = %.4f, centroid %.4f\n", r.p_value, r.centroid_distance);
    hs_free(details);
    hs_free(vr);
    hs_free(vc);
    hs_drift_texts_free(&ref);
    hs_drift_texts_free(&same);
    hs_drift_texts_free(&other);
}

static void data_run_samples_before_embedding(void **state)
{
    (void)state;
    struct hs_drift_texts ref, cur;
    make_texts(&ref, 'A', 50, 0);
    make_texts(&cur, 'B', 12, 0);
    struct hs_drift_params p;
    hs_drift_params_default(&p);
    p.permutations = 50;
    p.max_samples = 10;
    char first[10][32];
    for (int round = 0; round < 2; round++) {
        struct fake f = {0};
        struct hs_drift_backend b = backend(&f);
        struct hs_drift_data_result r;
        char *details = NULL;
        hs_err err = {0};
        assert_int_equal(hs_drift_run_data(&b, &ref, "ref", &cur, "cur", &p, &r, &details, &err), HS_OK);
        hs_free(details);
        assert_int_equal(f.embedded, 20); /* 10 of each, not 50 + 12 */
        assert_int_equal(count_calls_texts(&f, 'A'), 10);
        assert_int_equal(r.n_ref, 10);
        assert_int_equal(r.n_cur, 10);
        /* distinct texts of the set, in file order, the same for the same seed */
        for (int i = 0; i < 10; i++) {
            int idx = (int)strtol(f.seen[i] + 7, NULL, 10);
            assert_true(idx >= 0 && idx < 50);
            if (i > 0)
                assert_true(idx > (int)strtol(f.seen[i - 1] + 7, NULL, 10));
            if (round == 0)
                snprintf(first[i], sizeof first[i], "%s", f.seen[i]);
            else
                assert_string_equal(first[i], f.seen[i]);
        }
    }
    hs_drift_texts_free(&ref);
    hs_drift_texts_free(&cur);
}

static void data_run_errors_name_the_backend_and_set(void **state)
{
    (void)state;
    struct hs_drift_texts ref, cur;
    make_texts(&ref, 'A', 40, 0);
    make_texts(&cur, 'B', 5, 0);
    struct hs_drift_data_result r;
    char *details = NULL;
    hs_err err = {0};
    struct fake f = {.fail_at_call = 3};
    struct hs_drift_backend b = backend(&f);
    assert_int_equal(hs_drift_run_data(&b, &ref, "ref.txt", &cur, "recent", NULL, &r, &details, &err), HS_EIO);
    assert_string_equal(err.msg, "fake: embedding recent: HTTP 503: overloaded");
    assert_null(details);
    /* stopping: the run gives up before its next request */
    struct fake g = {.stop_after = 1};
    b = backend(&g);
    assert_int_equal(hs_drift_run_data(&b, &ref, "ref.txt", &cur, "recent", NULL, &r, &details, &err),
                     HS_ECANCELED);
    assert_int_equal(g.calls, 1);
    hs_drift_texts_free(&ref);
    hs_drift_texts_free(&cur);
}

/* ---- concept runs ---- */

static const char k_ref[] = "{\"question\": \"q1\", \"expected\": \"Keep 50 metres away.\"}\n"
                            "\n"
                            "{\"question\": \"q2\", \"expected\": \"Call 112.\"}\n"
                            "{\"question\": \"q3\", \"expected\": \"Leave now\", \"facts\": []}\n"
                            "{\"question\": \"q4\", \"expected\": \"Wait for the crew.\"}\n";

static void concept_run_scores_the_answers(void **state)
{
    (void)state;
    struct hs_concept_ref ref;
    hs_err err = {0};
    assert_int_equal(hs_concept_ref_parse(&ref, k_ref, strlen(k_ref), "ref.jsonl", &err), HS_OK);
    /* q1 right by its number, q2 wrong (another number), q3 right by wording, q4 no answer */
    static const char *const qa[] = {"q1", "Stay at least 50 metres back.", "q2", "Call 911.", "q3", "leave now!",
                                     NULL};
    for (int parallel = 1; parallel <= 3; parallel += 2) {
        struct fake f = {.qa = qa};
        struct hs_drift_backend b = backend(&f);
        struct hs_concept_run run;
        assert_int_equal(hs_drift_run_concept(&b, &ref, "ref.jsonl", 100, NULL, 16, parallel, &run, &err), HS_OK);
        assert_int_equal(run.r.n, 4);
        assert_int_equal(run.r.n_correct, 2);
        assert_true(run.r.accuracy == 50.0);
        assert_true(run.r.drifted); /* 50 points down, over 15 */
        assert_true(run.scores[0].correct && !run.scores[1].correct && run.scores[2].correct);
        assert_string_equal(run.answers[3], "");
        assert_non_null(strstr(run.details, "\"accuracy\":50"));
        hs_concept_run_free(&run);
    }
    /* a failed request fails the run, naming the reference line */
    struct fake f = {.qa = qa, .fail_at_call = 2};
    struct hs_drift_backend b = backend(&f);
    struct hs_concept_run run;
    assert_int_equal(hs_drift_run_concept(&b, &ref, "ref.jsonl", NAN, NULL, 16, 1, &run, &err), HS_EIO);
    assert_string_equal(err.msg, "fake: ref.jsonl:3: HTTP 500: broken");
    assert_null(run.answers);
    hs_concept_ref_free(&ref);
}

/* ---- prompt files ---- */

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void texts_load_reads_txt_and_jsonl(void **state)
{
    (void)state;
    char *txt = hs_test_tmpfile("p.txt"), *jl = hs_test_tmpfile("p.jsonl"), *bad = hs_test_tmpfile("bad.jsonl");
    write_file(txt, "first line\r\n\n  \nsecond line\nthird");
    write_file(jl, "{\"prompt\": \"a\"}\n{\"text\": \"b\", \"x\": 1}\n\n{\"question\": \"c\"}\n");
    write_file(bad, "{\"prompt\": \"a\"}\n{\"body\": \"b\"}\n");
    struct hs_drift_texts t;
    hs_err err = {0};
    assert_int_equal(hs_drift_texts_load(&t, txt, &err), HS_OK);
    assert_int_equal(t.n, 3);
    assert_string_equal(t.v[0], "first line");
    assert_string_equal(t.v[2], "third");
    hs_drift_texts_free(&t);
    assert_int_equal(hs_drift_texts_load(&t, jl, &err), HS_OK);
    assert_int_equal(t.n, 3);
    assert_string_equal(t.v[1], "b");
    hs_drift_texts_free(&t);
    assert_int_equal(hs_drift_texts_load(&t, bad, &err), HS_EFORMAT);
    assert_non_null(strstr(err.msg, "bad.jsonl:2: no \"prompt\""));
    assert_int_equal(t.n, 0);
    free(txt);
    free(jl);
    free(bad);
}

/* ---- the store ---- */

static void store_keeps_runs_and_the_recorded_accuracy(void **state)
{
    (void)state;
    char *path = hs_test_tmpfile("job.db");
    unlink(path);
    hs_store *st = NULL;
    hs_err err = {0};
    assert_int_equal(hs_store_open(path, &st, &err), HS_OK);
    int64_t ts = -1;
    assert_int_equal(hs_drift_last_run_ms(st, "data", &ts, &err), HS_OK);
    assert_true(ts == 0);
    int64_t id = 0;
    assert_int_equal(hs_drift_store_run(st, "data", "DRIFTED", 0.2, 0.002, "{}", 5000, &id, &err), HS_OK);
    assert_true(id > 0);
    assert_int_equal(hs_drift_store_run(st, "concept", "STABLE", 90, NAN, NULL, 7000, NULL, &err), HS_OK);
    assert_int_equal(hs_drift_last_run_ms(st, "data", &ts, &err), HS_OK);
    assert_true(ts == 5000);
    assert_int_equal(hs_drift_last_run_ms(st, "concept", &ts, &err), HS_OK);
    assert_true(ts == 7000);
    double acc = -1;
    assert_int_equal(hs_drift_recorded_get(st, &acc, &err), HS_ENOTFOUND);
    struct hs_concept_result r = {.n = 4, .n_correct = 3, .accuracy = 75};
    assert_int_equal(hs_drift_recorded_put(st, &r, "m", NULL, &err), HS_OK);
    assert_int_equal(hs_drift_recorded_get(st, &acc, &err), HS_OK);
    assert_true(acc == 75);
    assert_int_equal(hs_store_baseline_put(st, HS_DRIFT_BASELINE_NAME, 0, "{\"accuracy\": 300}", &err), HS_OK);
    assert_int_equal(hs_drift_recorded_get(st, &acc, &err), HS_EFORMAT);
    hs_store_close(st);
    free(path);
}

/* ---- the schedule ---- */

static void schedule_arithmetic(void **state)
{
    (void)state;
    const int64_t H = 3600000, D = 24 * H, start = 1000 * D;
    /* never ran: one period after start */
    assert_true(hs_drift_due_ms(7 * D, 0, start, start) == start + 7 * D);
    /* ran two days before a restart: due five days after it, not seven */
    assert_true(hs_drift_due_ms(7 * D, start - 2 * D, start, start) == start + 5 * D);
    /* the server was down past the due time: due already (runs once ready) */
    assert_true(hs_drift_due_ms(7 * D, start - 9 * D, start, start) == start - 2 * D);
    assert_true(hs_drift_due_ms(7 * D, start - 9 * D, start, start) <= start);
    /* a last run stamped in the future (the clock went back) counts as now */
    assert_true(hs_drift_due_ms(H, start + 5 * D, start, start) == start + H);
    /* not scheduled */
    assert_true(hs_drift_due_ms(0, start, start, start) == -1);
    assert_true(hs_drift_due_ms(-5, 0, start, start) == -1);
    /* no overflow on absurd periods */
    assert_true(hs_drift_due_ms(INT64_MAX, start, start, start) == INT64_MAX);
}

/* ---- configuration ---- */

static const char k_yaml[] = "models:\n"
                             "  - name: x\n"
                             "drift:\n"
                             "  data:\n"
                             "    every: 12h\n"
                             "    reference: prompts.txt\n"
                             "    model: fire-commander\n"
                             "    alpha: 0.01\n"
                             "    centroid_threshold: 0\n"
                             "    permutations: 300\n"
                             "    seed: 7\n"
                             "    max_samples: 200\n"
                             "    min_samples: 30\n"
                             "  concept:\n"
                             "    every: 2w\n"
                             "    reference: ref.jsonl\n"
                             "    similarity_threshold: 0.7\n"
                             "    accuracy_drop_points: 10\n"
                             "    max_tokens: 64\n";

static int parse(struct hs_drift_config *dc, const char *yaml, hs_err *err)
{
    hs_drift_config_default(dc);
    return hs_monitor_config_parse(NULL, dc, yaml, strlen(yaml), "cfg.yaml", err);
}

static void config_reads_the_nested_section(void **state)
{
    (void)state;
    struct hs_drift_config dc;
    hs_err err = {0};
    int rc = parse(&dc, k_yaml, &err);
    if (rc)
        fail_msg("%s", err.msg);
    assert_true(dc.data.every_ms == 12 * 3600000LL);
    assert_string_equal(dc.data.reference, "prompts.txt");
    assert_string_equal(dc.data.model, "fire-commander");
    assert_true(dc.data.params.alpha == 0.01 && dc.data.params.centroid_threshold == 0);
    assert_int_equal(dc.data.params.permutations, 300);
    assert_true(dc.data.params.seed == 7);
    assert_int_equal(dc.data.params.max_samples, 200);
    assert_int_equal(dc.data.min_samples, 30);
    assert_true(dc.concept.every_ms == 14 * 86400000LL);
    assert_string_equal(dc.concept.reference, "ref.jsonl");
    assert_null(dc.concept.model); /* the first model */
    assert_true(dc.concept.params.similarity_threshold == 0.7 && dc.concept.params.drop_points == 10);
    assert_int_equal(dc.concept.max_tokens, 64);
    hs_drift_config_free(&dc);

    /* no section, or a null one: nothing scheduled, the defaults */
    assert_int_equal(parse(&dc, "server:\n  port: 1\n", &err), HS_OK);
    assert_true(dc.data.every_ms == 0 && dc.concept.every_ms == 0);
    assert_int_equal(dc.data.min_samples, 20);
    assert_int_equal(dc.concept.max_tokens, 128);
    assert_int_equal(dc.data.params.max_samples, 500);
    assert_int_equal(parse(&dc, "drift:\n  data:\n  concept: null\n", &err), HS_OK);
    assert_true(dc.data.every_ms == 0 && dc.concept.every_ms == 0);
    /* a section without `every`: the periods, 7d and 30d */
    assert_int_equal(parse(&dc, "drift:\n  data: {reference: p.txt}\n  concept:\n    reference: r.jsonl\n", &err),
                     HS_OK);
    assert_true(dc.data.every_ms == 7 * 86400000LL);
    assert_true(dc.concept.every_ms == 30 * 86400000LL);
    hs_drift_config_free(&dc);
    /* every: 0 keeps the settings for `hestia drift` by hand and schedules nothing */
    assert_int_equal(parse(&dc, "drift:\n  data:\n    every: 0\n    alpha: 0.2\n", &err), HS_OK);
    assert_true(dc.data.every_ms == 0 && dc.data.params.alpha == 0.2);
    hs_drift_config_free(&dc);
}

static void expect_error(const char *yaml, const char *want)
{
    struct hs_drift_config dc;
    hs_err err = {0};
    int rc = parse(&dc, yaml, &err);
    hs_drift_config_free(&dc);
    if (rc == HS_OK)
        fail_msg("accepted: %s", yaml);
    if (!strstr(err.msg, want))
        fail_msg("error \"%s\" does not contain \"%s\"", err.msg, want);
}

static void config_errors_name_line_and_key(void **state)
{
    (void)state;
    expect_error("drift:\n  data:\n    reference: p.txt\n    alpah: 0.1\n",
                 "cfg.yaml:4: drift.data.alpah: unknown key (known here: every, reference, model, alpha");
    /* the flat keys of before are refused, with the sections named */
    expect_error("drift:\n  every: 7d\n", "cfg.yaml:2: drift.every: unknown key (known here: data, concept)");
    expect_error("drift:\n  concept:\n    reference: r.jsonl\n    every: monthly\n",
                 "cfg.yaml:4: drift.concept.every: expected a duration");
    expect_error("drift:\n  concept:\n    reference: r.jsonl\n    max_tokens: 0\n",
                 "cfg.yaml:4: drift.concept.max_tokens: expected a whole number");
    expect_error("drift:\n  data:\n    reference: p.txt\n    alpha: 1.5\n", "cfg.yaml:4: drift.data.alpha");
    expect_error("drift:\n  data:\n    reference: p.txt\n    min_samples: 1\n", "cfg.yaml:4: drift.data.min_samples");
    expect_error("drift:\n  data: [1, 2]\n", "cfg.yaml:2: drift.data: expected a mapping");
    expect_error("drift:\n  concept:\n    reference: [a]\n", "cfg.yaml:3: drift.concept.reference: expected a string");
    /* a scheduled job needs its reference file; the line is the section's */
    expect_error("drift:\n  data:\n    alpha: 0.1\n  concept:\n    every: 1d\n",
                 "cfg.yaml:2: drift.data: a scheduled job needs its reference file");
    expect_error("drift:\n  concept:\n    every: 1d\n", "cfg.yaml:2: drift.concept: a scheduled job needs");
}

/* The commented-out example in config/hestia.yaml parses once uncommented. */
static void example_in_hestia_yaml_parses(void **state)
{
    (void)state;
    FILE *f = fopen("config/hestia.yaml", "r");
    assert_non_null(f);
    static char out[8192];
    size_t o = 0;
    bool in_block = false;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "# drift:", 8))
            in_block = true;
        else if (in_block && strncmp(line, "#  ", 3) != 0)
            break;
        if (in_block)
            o += (size_t)snprintf(out + o, sizeof out - o, "%s", line + 2);
    }
    fclose(f);
    assert_true(o > 0 && o < sizeof out);
    struct hs_drift_config dc;
    hs_err err = {0};
    int rc = parse(&dc, out, &err);
    if (rc)
        fail_msg("%s\n%s", err.msg, out);
    assert_true(dc.data.every_ms == 7 * 86400000LL && dc.concept.every_ms == 30 * 86400000LL);
    assert_string_equal(dc.data.reference, "data/reference_prompts.txt");
    assert_string_equal(dc.concept.model, "default");
    assert_int_equal(dc.concept.max_tokens, 128);
    hs_drift_config_free(&dc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(data_run_matches_the_statistic_on_the_same_vectors),
        cmocka_unit_test(data_run_samples_before_embedding),
        cmocka_unit_test(data_run_errors_name_the_backend_and_set),
        cmocka_unit_test(concept_run_scores_the_answers),
        cmocka_unit_test(texts_load_reads_txt_and_jsonl),
        cmocka_unit_test(store_keeps_runs_and_the_recorded_accuracy),
        cmocka_unit_test(schedule_arithmetic),
        cmocka_unit_test(config_reads_the_nested_section),
        cmocka_unit_test(config_errors_name_line_and_key),
        cmocka_unit_test(example_in_hestia_yaml_parses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
