/* 'hestia drift data|concept': the drift checks of ops/drift.h and
 * ops/drift_concept.h run by hand against any OpenAI-compatible server
 * (hestia included), through its serving path: the embeddings of two sets of
 * prompts (data drift), or the answers to a reference set of questions
 * (concept drift). Prints a short report or one JSON document; records the
 * run in the store when --store is given. Exit 3 says DRIFTED, so that a cron
 * job or CI step can act on it without parsing the output. */
#include "cli/cli.h"

#include "base/buf.h"
#include "base/mem.h"
#include "base/parse.h"
#include "base/pool.h"
#include "base/sys.h"
#include "engine/client.h"
#include "ops/drift.h"
#include "ops/drift_concept.h"
#include "ops/drift_job.h"
#include "ops/store.h"
#include "ops/store_ops.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CMD "drift"
#define EXIT_DRIFTED 3
#define DEFAULT_PARALLEL 4
#define DEFAULT_MAX_TOKENS 128
#define DEFAULT_TIMEOUT_S 300
#define BASELINE_NAME HS_DRIFT_BASELINE_NAME

static void usage(FILE *f)
{
    fprintf(f,
            "usage: hestia drift data --backend URL --model M --reference REF --current CUR [options]\n"
            "       hestia drift concept --backend URL --model M --reference REF.jsonl [options]\n"
            "\n"
            "data:    embeds two sets of prompts through the server's /v1/embeddings and compares\n"
            "         them: centroid cosine distance, MMD^2 with a permutation p-value, the share\n"
            "         of embedding dimensions whose mean moved (Welch t-tests, FDR-corrected).\n"
            "         REF and CUR: .txt (one text a line) or .jsonl (objects with a \"prompt\",\n"
            "         \"text\" or \"question\" string); blank lines are skipped; 2 texts at least.\n"
            "  --current FILE         the recent prompts\n"
            "  --permutations B       permutation test size (default 500)\n"
            "  --alpha A              DRIFTED when p < A; the per-dimension FDR (default 0.05)\n"
            "  --centroid-threshold T DRIFTED also when the centroid distance is above T\n"
            "                         (default 0.10; 0 = off)\n"
            "  --seed S               subsampling and permutations (default 42)\n"
            "concept: asks every question of REF.jsonl ({\"question\", \"expected\", \"facts\"?} a\n"
            "         line) at temperature 0, scores the answers and compares the accuracy with\n"
            "         the one recorded at deploy.\n"
            "  --recorded ACC         the recorded accuracy in percent (default: the store's\n"
            "                         '" BASELINE_NAME "' baseline, when --store has one)\n"
            "  --record               store this run's accuracy as the recorded one (needs --store)\n"
            "  --threshold POINTS     DRIFTED when the accuracy fell by more (default 15)\n"
            "  --similarity S         an answer without facts is right from this similarity\n"
            "                         on (default 0.8)\n"
            "  --max-tokens N         per answer (default %d)\n"
            "  --parallel N           questions in flight at once (default %d)\n"
            "both:\n"
            "  --backend URL          the server's API base, e.g. http://127.0.0.1:8000/v1\n"
            "                         (/v1 is added to a URL without a path)\n"
            "  --key K                API key (default: $HESTIA_API_KEY)\n"
            "  --model M              the model the requests name\n"
            "  --timeout S            seconds before a request is given up (default %d)\n"
            "  --store FILE           record the run in this store's drift_runs (created when\n"
            "                         absent); without --store nothing is recorded\n"
            "  --json                 one JSON document instead of the report\n"
            "Exit status: 0 STABLE, 3 DRIFTED, 1 when the check could not run (unreadable\n"
            "file, backend error), 2 for a usage error.\n",
            DEFAULT_MAX_TOKENS, DEFAULT_PARALLEL, DEFAULT_TIMEOUT_S);
}

struct opts {
    const char *mode; /* "data" or "concept" */
    const char *backend, *key, *model, *reference, *current, *store;
    struct hs_drift_params data;
    struct hs_concept_params concept;
    double recorded; /* NaN: not given */
    bool record, json;
    int max_tokens, parallel, timeout_s;
};

static bool is_data(const struct opts *o)
{
    return !strcmp(o->mode, "data");
}

/* Parses argv[2..]; returns 0, -1 after --help, or the usage exit code. */
static int parse(int argc, char **argv, struct opts *o)
{
    static const char *const only_data[] = {"--current", "--permutations", "--alpha", "--centroid-threshold",
                                            "--seed"};
    static const char *const only_concept[] = {"--recorded",   "--record",     "--threshold",
                                               "--similarity", "--max-tokens", "--parallel"};
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return -1;
        }
        if (a[0] != '-')
            return hs_cli_usage(CMD, "unexpected argument '%s'", a);
        bool wrong_mode = false;
        for (size_t k = 0; k < sizeof only_data / sizeof only_data[0]; k++)
            wrong_mode |= !is_data(o) && !strcmp(a, only_data[k]);
        for (size_t k = 0; k < sizeof only_concept / sizeof only_concept[0]; k++)
            wrong_mode |= is_data(o) && !strcmp(a, only_concept[k]);
        if (wrong_mode)
            return hs_cli_usage(CMD, "%s is not an option of 'drift %s'", a, o->mode);
        if (!strcmp(a, "--json")) {
            o->json = true;
            continue;
        }
        if (!strcmp(a, "--record")) {
            o->record = true;
            continue;
        }
        static const char *const valued[] = {
            "--backend",  "--key",          "--model",      "--reference",          "--current",
            "--store",    "--permutations", "--alpha",      "--centroid-threshold", "--seed",
            "--recorded", "--threshold",    "--similarity", "--max-tokens",         "--parallel",
            "--timeout"};
        bool known = false;
        for (size_t k = 0; k < sizeof valued / sizeof valued[0]; k++)
            known |= !strcmp(a, valued[k]);
        if (!known)
            return hs_cli_usage(CMD, "unknown option '%s'", a);
        if (i + 1 >= argc)
            return hs_cli_usage(CMD, "%s needs a value", a);
        const char *v = argv[++i];
        double d = 0;
        if (!strcmp(a, "--backend"))
            o->backend = v;
        else if (!strcmp(a, "--key"))
            o->key = v;
        else if (!strcmp(a, "--model"))
            o->model = v;
        else if (!strcmp(a, "--reference"))
            o->reference = v;
        else if (!strcmp(a, "--current"))
            o->current = v;
        else if (!strcmp(a, "--store"))
            o->store = v;
        else if (!strcmp(a, "--permutations")) {
            if (hs_parse_int(v, 1, 1000000, &o->data.permutations))
                return hs_cli_usage(CMD, "--permutations '%s' is not a number from 1 to 1000000", v);
        } else if (!strcmp(a, "--alpha")) {
            if (hs_parse_f64(v, &d) || !(d > 0 && d < 1))
                return hs_cli_usage(CMD, "--alpha '%s' is not a number between 0 and 1", v);
            o->data.alpha = d;
        } else if (!strcmp(a, "--centroid-threshold")) {
            if (hs_parse_f64(v, &d) || !(d >= 0 && d <= 2))
                return hs_cli_usage(CMD, "--centroid-threshold '%s' is not a number from 0 to 2", v);
            o->data.centroid_threshold = d;
        } else if (!strcmp(a, "--seed")) {
            if (hs_parse_u64(v, &o->data.seed))
                return hs_cli_usage(CMD, "--seed '%s' is not a number from 0 up", v);
        } else if (!strcmp(a, "--recorded")) {
            if (hs_parse_f64(v, &d) || !(d >= 0 && d <= 100))
                return hs_cli_usage(CMD, "--recorded '%s' is not a percentage from 0 to 100", v);
            o->recorded = d;
        } else if (!strcmp(a, "--threshold")) {
            if (hs_parse_f64(v, &d) || !(d >= 0 && d <= 100))
                return hs_cli_usage(CMD, "--threshold '%s' is not a number of points from 0 to 100", v);
            o->concept.drop_points = d;
        } else if (!strcmp(a, "--similarity")) {
            if (hs_parse_f64(v, &d) || !(d >= 0 && d <= 1))
                return hs_cli_usage(CMD, "--similarity '%s' is not a number from 0 to 1", v);
            o->concept.similarity_threshold = d;
        } else if (!strcmp(a, "--max-tokens")) {
            if (hs_parse_int(v, 1, 16777216, &o->max_tokens))
                return hs_cli_usage(CMD, "--max-tokens '%s' is not a number from 1 to 16777216", v);
        } else if (!strcmp(a, "--parallel")) {
            if (hs_parse_int(v, 1, 256, &o->parallel))
                return hs_cli_usage(CMD, "--parallel '%s' is not a number from 1 to 256", v);
        } else if (!strcmp(a, "--timeout")) {
            if (hs_parse_int(v, 1, 86400, &o->timeout_s))
                return hs_cli_usage(CMD, "--timeout '%s' is not a number of seconds from 1 to 86400", v);
        }
    }
    if (!o->backend)
        return hs_cli_usage(CMD, "--backend URL is required");
    if (!o->model)
        return hs_cli_usage(CMD, "--model M is required");
    if (!o->reference)
        return hs_cli_usage(CMD, "--reference FILE is required");
    if (is_data(o) && !o->current)
        return hs_cli_usage(CMD, "--current FILE is required");
    if (o->record && !isnan(o->recorded))
        return hs_cli_usage(CMD, "--record and --recorded exclude each other");
    if (o->record && !o->store)
        return hs_cli_usage(CMD, "--record needs --store FILE to keep the accuracy in");
    return 0;
}

/* ---------------------------------------------------------------------------
 * shared pieces */

static int make_client(const struct opts *o, const char *base, hs_client **out)
{
    struct hs_client_opts co;
    hs_client_opts_default(&co);
    co.base_url = base;
    co.api_key = o->key;
    co.timeout_ms = o->timeout_s * 1000;
    hs_err err = {0};
    if (hs_client_create(&co, out, &err))
        return hs_cli_fail(CMD, "--backend %s: %s", o->backend, err.msg);
    return 0;
}

static int open_store(const char *path, hs_store **out)
{
    *out = NULL;
    if (!path)
        return 0;
    hs_err err = {0};
    if (hs_store_open(path, out, &err))
        return hs_cli_fail(CMD, "--store %s: %s", path, err.msg);
    return 0;
}

static int record_run(hs_store *s, const char *kind, const char *status, double score, double p_value,
                      const char *details, int64_t *id)
{
    *id = 0;
    if (!s)
        return 0;
    hs_err err = {0};
    if (hs_drift_store_run(s, kind, status, score, p_value, details, 0, id, &err))
        return hs_cli_fail(CMD, "recording the run: %s", err.msg);
    return 0;
}

/* The backend of ops/drift_job.h over hs_client: any OpenAI-compatible
 * server's /v1/embeddings and /v1/chat/completions. */
struct cli_backend {
    hs_client *c;
    const char *model;
};

static int cli_embed(void *user, const char *const *texts, int n, float **vecs, int *dim, hs_err *err)
{
    struct cli_backend *b = user;
    return hs_client_embed(b->c, b->model, texts, n, vecs, dim, err);
}

static int cli_chat(void *user, const char *question, int max_tokens, char **answer, hs_err *err)
{
    struct cli_backend *b = user;
    struct hs_chat_msg msg = {.role = "user", .content = question};
    struct hs_chat_req req;
    hs_chat_req_init(&req);
    req.model = b->model;
    req.messages = &msg;
    req.n_messages = 1;
    req.max_tokens = max_tokens;
    req.temperature = 0.0f; /* the deploy-time answer is the greedy one */
    struct hs_chat_resp resp = {0};
    int rc = hs_client_chat(b->c, &req, &resp, err);
    if (!rc && !(*answer = hs_strdup(resp.content ? resp.content : "")))
        rc = hs_err_set(err, HS_ENOMEM, "out of memory");
    hs_chat_resp_free(&resp);
    return rc;
}

static int print_json(const char *details, json_t *extra)
{
    json_error_t je;
    json_t *root = json_loads(details, 0, &je);
    int rc = 0;
    if (!json_is_object(root) || json_object_update(root, extra))
        rc = hs_cli_fail(CMD, "out of memory");
    else if (json_dumpf(root, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(10)))
        rc = hs_cli_fail(CMD, "writing the JSON failed");
    else
        fputc('\n', stdout);
    json_decref(root);
    return rc;
}

/* ---------------------------------------------------------------------------
 * data drift */

static int load_texts(const char *path, struct hs_drift_texts *t)
{
    hs_err err = {0};
    return hs_drift_texts_load(t, path, &err) ? hs_cli_fail_err(CMD, &err) : 0;
}

static void print_data(const struct opts *o, const struct hs_drift_data_result *r, int64_t run_id)
{
    printf("reference    %s: %d texts\n", o->reference, r->n_ref);
    printf("current      %s: %d texts\n", o->current, r->n_cur);
    printf("embeddings   %s, %d dimensions\n", o->model, r->dim);
    if (o->data.centroid_threshold > 0)
        printf("centroid     cosine distance %.4f (threshold %.4g)\n", r->centroid_distance,
               o->data.centroid_threshold);
    else
        printf("centroid     cosine distance %.4f (threshold off)\n", r->centroid_distance);
    printf("MMD^2        %.6f (kernel width %.4g), p = %.4g over %d permutations (alpha %.4g)\n", r->mmd2,
           r->sigma, r->p_value, r->permutations, o->data.alpha);
    printf("dimensions   %d of %d drifted (%.1f%%)\n", r->drifted_dims, r->dim, 100.0 * r->drifted_share);
    const char *by = r->by_p_value && r->by_centroid ? " (p-value and centroid distance)"
                     : r->by_p_value                 ? " (p-value)"
                     : r->by_centroid                ? " (centroid distance)"
                                                     : "";
    printf("verdict      %s%s\n", hs_drift_status_name(r->status), by);
    if (run_id > 0)
        printf("recorded     run %lld in %s\n", (long long)run_id, o->store);
}
static int cmd_data(const struct opts *o, const struct hs_drift_backend *b, hs_store *s)
{
    struct hs_drift_texts ref = {0}, cur = {0};
    char *details = NULL;
    int rc = load_texts(o->reference, &ref);
    if (!rc)
        rc = load_texts(o->current, &cur);
    struct hs_drift_data_result r;
    struct hs_drift_params p = o->data;
    hs_pool *pool = NULL;
    if (!rc && hs_pool_create(hs_cpu_count(), &pool))
        rc = hs_cli_fail(CMD, "could not start the threads");
    p.pool = pool;
    hs_err err = {0};
    if (!rc && hs_drift_run_data(b, &ref, o->reference, &cur, o->current, &p, &r, &details, &err))
        rc = hs_cli_fail_err(CMD, &err);
    hs_pool_free(pool);
    int64_t run_id = 0;
    if (!rc)
        rc = record_run(s, "data", hs_drift_status_name(r.status), r.mmd2, r.p_value, details, &run_id);
    if (!rc && o->json) {
        json_t *extra = json_pack("{s:s, s:s, s:s, s:s, s:o}", "kind", "data", "model", o->model, "reference",
                                  o->reference, "current", o->current, "run_id",
                                  run_id > 0 ? json_integer(run_id) : json_null());
        rc = extra ? print_json(details, extra) : hs_cli_fail(CMD, "out of memory");
        json_decref(extra);
    } else if (!rc) {
        print_data(o, &r, run_id);
    }
    if (!rc && r.status == HS_DRIFT_DRIFTED)
        rc = EXIT_DRIFTED;
    hs_free(details);
    hs_drift_texts_free(&ref);
    hs_drift_texts_free(&cur);
    return rc;
}

/* ---------------------------------------------------------------------------
 * concept drift */

/* The recorded accuracy: --recorded, else the store's baseline; NaN when
 * neither. *from says where it came from. */
static int recorded_accuracy(const struct opts *o, hs_store *s, double *acc, const char **from)
{
    *acc = o->recorded;
    *from = "--recorded";
    if (!isnan(*acc) || !s)
        return 0;
    hs_err err = {0};
    double a = NAN;
    int rc = hs_drift_recorded_get(s, &a, &err);
    if (rc == HS_ENOTFOUND)
        return 0;
    if (rc)
        return hs_cli_fail(CMD, "--store %s: %s", o->store, err.msg);
    *acc = a;
    *from = "the store";
    return 0;
}

static void put_short(const char *s, size_t max)
{
    size_t n = strlen(s);
    for (size_t i = 0; i < n && i < max; i++)
        putchar(s[i] == '\n' || s[i] == '\r' || s[i] == '\t' ? ' ' : s[i]);
    if (n > max)
        fputs("...", stdout);
}

static void print_concept(const struct opts *o, const struct hs_concept_ref *ref, char **answers,
                          const struct hs_concept_score *sc, const struct hs_concept_result *r,
                          const char *from, int64_t run_id)
{
    printf("reference    %s: %d questions\n", o->reference, r->n);
    printf("accuracy     %.1f%% (%d of %d right), mean similarity %.3f\n", r->accuracy, r->n_correct, r->n,
           r->mean_similarity);
    if (isnan(r->recorded)) {
        printf("recorded     none (give --recorded ACC, or --record with --store)\n");
        printf("verdict      STABLE (nothing to compare with)\n");
    } else {
        printf("recorded     %.1f%% (from %s)\n", r->recorded, from);
        printf("drop         %.1f points (threshold %.4g), p = %.4g\n", r->drop, o->concept.drop_points,
               r->p_value);
        printf("verdict      %s\n", r->drifted ? "DRIFTED" : "STABLE");
    }
    if (r->n_correct < r->n)
        printf("failed items:\n");
    for (int i = 0; i < ref->n; i++) {
        if (sc[i].correct)
            continue;
        const struct hs_concept_item *it = &ref->items[i];
        printf("  line %d%s%s%s: similarity %.2f", it->line, it->id ? " (" : "", it->id ? it->id : "",
               it->id ? ")" : "", sc[i].similarity);
        if (sc[i].facts_total)
            printf(", facts %d of %d", sc[i].facts_found, sc[i].facts_total);
        fputs("\n    question: ", stdout);
        put_short(it->question, 200);
        fputs("\n    expected: ", stdout);
        put_short(it->expected, 200);
        fputs("\n    answer:   ", stdout);
        put_short(answers[i], 200);
        putchar('\n');
    }
    if (run_id > 0)
        printf("recorded     run %lld in %s\n", (long long)run_id, o->store);
    if (o->record)
        printf("baseline     %.1f%% kept as the recorded accuracy in %s\n", r->accuracy, o->store);
}

static json_t *failed_json(const struct hs_concept_ref *ref, char **answers,
                           const struct hs_concept_score *sc)
{
    json_t *arr = json_array();
    for (int i = 0; arr && i < ref->n; i++) {
        if (sc[i].correct)
            continue;
        const struct hs_concept_item *it = &ref->items[i];
        json_t *e = json_pack("{s:i, s:o, s:s, s:s, s:s, s:f, s:i, s:i}", "line", it->line, "id",
                              it->id ? json_string(it->id) : json_null(), "question", it->question,
                              "expected", it->expected, "answer", answers[i], "similarity", sc[i].similarity,
                              "facts_total", sc[i].facts_total, "facts_found", sc[i].facts_found);
        if (!e || json_array_append_new(arr, e)) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}
static int cmd_concept(const struct opts *o, const struct hs_drift_backend *b, hs_store *s)
{
    struct hs_concept_ref ref = {0};
    hs_err err = {0};
    if (hs_concept_ref_load(&ref, o->reference, &err))
        return hs_cli_fail_err(CMD, &err);
    double recorded;
    const char *from;
    int rc = recorded_accuracy(o, s, &recorded, &from);
    struct hs_concept_run run = {0};
    if (!rc && hs_drift_run_concept(b, &ref, o->reference, recorded, &o->concept, o->max_tokens, o->parallel,
                                    &run, &err))
        rc = hs_cli_fail_err(CMD, &err);
    const struct hs_concept_result *r = &run.r;
    int64_t run_id = 0;
    if (!rc)
        rc = record_run(s, "concept", r->drifted ? "DRIFTED" : "STABLE", r->accuracy, r->p_value, run.details,
                        &run_id);
    if (!rc && o->record && hs_drift_recorded_put(s, r, o->model, o->reference, &err))
        rc = hs_cli_fail(CMD, "--store %s: %s", o->store, err.msg);
    if (!rc && o->json) {
        json_t *failed = failed_json(&ref, run.answers, run.scores);
        json_t *extra =
            failed ? json_pack("{s:s, s:s, s:s, s:o, s:o, s:b}", "kind", "concept", "model", o->model,
                               "reference", o->reference, "failed", failed, "run_id",
                               run_id > 0 ? json_integer(run_id) : json_null(), "recorded_now", o->record)
                   : NULL;
        rc = extra ? print_json(run.details, extra) : hs_cli_fail(CMD, "out of memory");
        json_decref(extra);
    } else if (!rc) {
        print_concept(o, &ref, run.answers, run.scores, r, from, run_id);
    }
    if (!rc && r->drifted)
        rc = EXIT_DRIFTED;
    hs_concept_run_free(&run);
    hs_concept_ref_free(&ref);
    return rc;
}

/* ---------------------------------------------------------------------------
 * the command */

int hs_cmd_drift(int argc, char **argv)
{
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        usage(stdout);
        return 0;
    }
    if (argc < 2)
        return hs_cli_usage(CMD, "which check? 'data' or 'concept'");
    if (strcmp(argv[1], "data") != 0 && strcmp(argv[1], "concept") != 0)
        return hs_cli_usage(CMD, "unknown check '%s' (data or concept)", argv[1]);
    struct opts o = {.mode = argv[1],
                     .recorded = NAN,
                     .max_tokens = DEFAULT_MAX_TOKENS,
                     .parallel = DEFAULT_PARALLEL,
                     .timeout_s = DEFAULT_TIMEOUT_S};
    hs_drift_params_default(&o.data);
    hs_concept_params_default(&o.concept);
    int rc = parse(argc, argv, &o);
    if (rc)
        return rc < 0 ? 0 : rc;
    if (!o.key) {
        const char *k = getenv("HESTIA_API_KEY");
        o.key = k && k[0] ? k : NULL;
    }
    char *base = hs_client_api_base(o.backend);
    if (!base)
        return hs_cli_fail(CMD, "out of memory");
    hs_client *c = NULL;
    hs_store *s = NULL;
    rc = make_client(&o, base, &c);
    if (!rc)
        rc = open_store(o.store, &s);
    char who[512];
    snprintf(who, sizeof who, "backend %s", base);
    struct cli_backend cb = {.c = c, .model = o.model};
    struct hs_drift_backend b = {.user = &cb, .name = who, .embed = cli_embed, .chat = cli_chat};
    if (!rc)
        rc = is_data(&o) ? cmd_data(&o, &b, s) : cmd_concept(&o, &b, s);
    if (fflush(stdout) != 0 && (rc == 0 || rc == EXIT_DRIFTED))
        rc = hs_cli_fail(CMD, "writing to stdout failed");
    hs_store_close(s);
    hs_client_free(c);
    hs_free(base);
    return rc;
}
