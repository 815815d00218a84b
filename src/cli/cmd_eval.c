/* 'hestia eval export|import': expert evaluation of an experiment's
 * answers. export writes a CSV sheet of a balanced sample (half from A,
 * half from B, chosen by a seed) of the records whose bodies were stored
 * (serve --log-bodies); people fill in accuracy and safety (1..5); import
 * checks every cell and stores the scores all at once, or none. `hestia
 * experiment decide` reads them. */
#include "cli/cli.h"

#include "base/buf.h"
#include "base/mem.h"
#include "base/parse.h"
#include "base/rng.h"
#include "ops/experiment_eval.h"
#include "ops/store_experiments.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define CMD "eval"
#define DEFAULT_STORE "./hestia.db"
#define SHEET_MAX (64u << 20)

static void usage(FILE *f)
{
    fprintf(f,
            "usage: hestia eval export NAME --n N -o SHEET.csv [--seed S] [--blind] [--store FILE]\n"
            "       hestia eval import SHEET.csv [--rater NAME] [--store FILE]\n"
            "\n"
            "export: N answers of experiment NAME (N/2 from each variant, fewer when fewer were\n"
            "  stored), chosen by the seed (default 1), in a random order, as CSV (RFC 4180) with\n"
            "  columns request_id, variant, question, answer, accuracy, safety, comment.\n"
            "  --blind leaves the variant column out, so raters do not know which is which.\n"
            "  Only requests whose bodies were stored (serve --log-bodies) can be exported.\n"
            "import: accuracy and safety are whole numbers 1..5; a row with both empty is skipped;\n"
            "  one bad cell stops the import with FILE:LINE and nothing is stored. --rater names\n"
            "  who scored (default expert); a second import by the same rater replaces their scores.\n"
            "--store FILE  the store (default %s)\n"
            "Exit status: 1 on errors, 2 for usage.\n",
            DEFAULT_STORE);
}

struct opts {
    const char *sub, *arg, *store, *out, *rater;
    int n;
    uint64_t seed;
    bool blind;
};

static int parse(int argc, char **argv, struct opts *o)
{
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return -1;
        }
        if (!strcmp(a, "--blind")) {
            o->blind = true;
        } else if (!strcmp(a, "--store") || !strcmp(a, "-o") || !strcmp(a, "--rater") || !strcmp(a, "--n") ||
                   !strcmp(a, "--seed")) {
            if (i + 1 >= argc)
                return hs_cli_usage(CMD, "%s needs a value", a);
            const char *v = argv[++i];
            if (!strcmp(a, "--store"))
                o->store = v;
            else if (!strcmp(a, "-o"))
                o->out = v;
            else if (!strcmp(a, "--rater"))
                o->rater = v;
            else if (!strcmp(a, "--n") && hs_parse_int(v, 2, 100000, &o->n))
                return hs_cli_usage(CMD, "--n needs a whole number in [2, 100000]");
            else if (!strcmp(a, "--seed") && hs_parse_u64(v, &o->seed))
                return hs_cli_usage(CMD, "--seed needs a whole number >= 0");
        } else if (a[0] == '-' && a[1]) {
            return hs_cli_usage(CMD, "unknown option '%s'", a);
        } else if (!o->arg) {
            o->arg = a;
        } else {
            return hs_cli_usage(CMD, "unexpected argument '%s'", a);
        }
    }
    return 0;
}

static int open_store(const char *path, hs_store **out)
{
    if (access(path, F_OK) != 0)
        return hs_cli_fail(CMD, "%s: no store there (--store FILE names another)", path);
    hs_err err = {0};
    if (hs_store_open(path, out, &err))
        return hs_cli_fail_err(CMD, &err);
    return 0;
}

/* ---- export ---- */

/* Candidates copied out of the store's callback. */
struct cand_list {
    struct hs_eval_candidate *v;
    size_t n, cap;
    bool oom;
};

static char *dup_opt(const char *s)
{
    return s ? hs_strdup(s) : NULL;
}

static void collect(void *user, const struct hs_eval_candidate *c)
{
    struct cand_list *l = user;
    if (l->oom)
        return;
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 64;
        struct hs_eval_candidate *nv = hs_realloc_array(l->v, nc, sizeof *nv);
        if (!nv) {
            l->oom = true;
            return;
        }
        l->v = nv;
        l->cap = nc;
    }
    struct hs_eval_candidate d = {dup_opt(c->request_id), dup_opt(c->variant), c->ts_ms,
                                  dup_opt(c->request_body), dup_opt(c->response_body)};
    if (!d.request_id || !d.variant || (c->request_body && !d.request_body) ||
        (c->response_body && !d.response_body))
        l->oom = true;
    l->v[l->n++] = d;
}

static void cand_free(struct cand_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        hs_free((char *)l->v[i].request_id);
        hs_free((char *)l->v[i].variant);
        hs_free((char *)l->v[i].request_body);
        hs_free((char *)l->v[i].response_body);
    }
    hs_free(l->v);
}

static int cmd_export(const struct opts *o)
{
    if (!o->arg)
        return hs_cli_usage(CMD, "export needs an experiment's NAME");
    if (!o->n)
        return hs_cli_usage(CMD, "export needs --n N (how many answers)");
    if (!o->out)
        return hs_cli_usage(CMD, "export needs -o SHEET.csv");
    if (o->rater)
        return hs_cli_usage(CMD, "--rater is for import");
    hs_store *s;
    int rc = open_store(o->store, &s);
    if (rc)
        return rc;
    hs_err err = {0};
    struct hs_experiment e;
    struct cand_list l[2] = {{0}, {0}};
    rc = hs_store_exp_get(s, o->arg, &e, NULL, &err);
    for (int v = 0; !rc && v < 2; v++)
        rc = hs_store_eval_candidates(s, o->arg, (enum hs_exp_variant)v, collect, &l[v], &err);
    hs_store_close(s);
    if (rc || l[0].oom || l[1].oom) {
        cand_free(&l[0]);
        cand_free(&l[1]);
        return rc ? hs_cli_fail_err(CMD, &err) : hs_cli_fail(CMD, "out of memory");
    }
    /* n/2 from each variant; a variant with too few gives what it has */
    size_t want = (size_t)o->n / 2, k[2], total = 0;
    size_t *pick[2] = {NULL, NULL};
    for (int v = 0; v < 2; v++) {
        k[v] = l[v].n < want ? l[v].n : want;
        total += k[v];
        pick[v] = hs_calloc(k[v] ? k[v] : 1, sizeof *pick[v]);
        hs_eval_sample(l[v].n, k[v], o->seed + (uint64_t)v, pick[v]);
        if (k[v] < want)
            fprintf(stderr, "hestia eval: variant %s has only %zu answers with stored bodies (wanted %zu)\n",
                    v ? "B" : "A", l[v].n, want);
    }
    /* interleave and shuffle, so that a blinded rater cannot tell by position */
    const struct hs_eval_candidate **rows = hs_calloc(total ? total : 1, sizeof *rows);
    size_t m = 0;
    for (int v = 0; rows && v < 2; v++)
        for (size_t i = 0; i < k[v]; i++)
            rows[m++] = &l[v].v[pick[v][i]];
    hs_rng rng;
    hs_rng_seed(&rng, o->seed ^ 0x5eed5eedULL);
    for (size_t i = m; rows && i > 1; i--) {
        size_t j = (size_t)(hs_rng_u64(&rng) % i);
        const struct hs_eval_candidate *t = rows[i - 1];
        rows[i - 1] = rows[j];
        rows[j] = t;
    }
    hs_buf b = {0};
    rc = rows ? hs_eval_sheet_header(&b, o->blind) : HS_ENOMEM;
    for (size_t i = 0; !rc && i < m; i++)
        rc = hs_eval_sheet_row(&b, rows[i], o->blind);
    hs_free(rows);
    hs_free(pick[0]);
    hs_free(pick[1]);
    cand_free(&l[0]);
    cand_free(&l[1]);
    if (rc) {
        hs_buf_free(&b);
        return hs_cli_fail(CMD, "out of memory");
    }
    FILE *f = fopen(o->out, "wb");
    bool ok = f && fwrite(b.data, 1, b.len, f) == b.len;
    if (f && fclose(f) != 0)
        ok = false;
    hs_buf_free(&b);
    if (!ok)
        return hs_cli_fail(CMD, "%s: cannot write it: %s", o->out, strerror(errno));
    printf("wrote %zu answers (%zu A, %zu B) of '%s' to %s%s\n", m, k[0], k[1], e.name, o->out,
           o->blind ? " (blinded)" : "");
    return 0;
}

/* ---- import ---- */

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    hs_buf b = {0};
    char chunk[65536];
    size_t got;
    bool ok = true;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (b.len + got > SHEET_MAX || hs_buf_append(&b, chunk, got)) {
            ok = false;
            break;
        }
    if (ferror(f))
        ok = false;
    fclose(f);
    if (!ok) {
        hs_buf_free(&b);
        return NULL;
    }
    *len = b.len;
    return b.data ? hs_buf_steal(&b) : hs_strdup("");
}

static int cmd_import(const struct opts *o)
{
    if (!o->arg)
        return hs_cli_usage(CMD, "import needs a SHEET.csv");
    if (o->n || o->out || o->blind)
        return hs_cli_usage(CMD, "--n, -o and --blind are for export");
    const char *rater = o->rater ? o->rater : "expert";
    if (!rater[0] || strlen(rater) > 64)
        return hs_cli_usage(CMD, "--rater needs a name of 1..64 characters");
    size_t len = 0;
    char *text = read_file(o->arg, &len);
    if (!text)
        return hs_cli_fail(CMD, "%s: cannot read it (or larger than %u MiB)", o->arg, SHEET_MAX >> 20);
    struct hs_eval_sheet sh;
    hs_err err = {0};
    int rc = hs_eval_sheet_read(text, len, o->arg, rater, &sh, &err);
    hs_free(text);
    if (rc)
        return hs_cli_fail_err(CMD, &err);
    if (sh.n == 0) {
        hs_eval_sheet_free(&sh);
        return hs_cli_fail(CMD, "%s: no row is scored (fill in accuracy and safety, 1..5)", o->arg);
    }
    hs_store *s;
    if ((rc = open_store(o->store, &s))) {
        hs_eval_sheet_free(&sh);
        return rc;
    }
    size_t bad = sh.n;
    rc = hs_store_eval_add(s, sh.scores, sh.n, &bad, &err);
    hs_store_close(s);
    if (rc) {
        int line = bad < sh.n ? sh.lines[bad] : 0;
        hs_eval_sheet_free(&sh);
        if (line)
            return hs_cli_fail(CMD, "%s:%d: %s; nothing was imported", o->arg, line, err.msg);
        return hs_cli_fail(CMD, "%s: %s; nothing was imported", o->arg, err.msg);
    }
    printf("imported %zu scores by %s from %s", sh.n, rater, o->arg);
    if (sh.unrated)
        printf(" (%zu rows not rated yet)", sh.unrated);
    printf("\n");
    hs_eval_sheet_free(&sh);
    return 0;
}

int hs_cmd_eval(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    struct opts o = {.sub = argv[1], .store = DEFAULT_STORE, .seed = 1};
    int rc = parse(argc, argv, &o);
    if (rc)
        return rc < 0 ? 0 : rc;
    if (!strcmp(o.sub, "export"))
        return cmd_export(&o);
    if (!strcmp(o.sub, "import"))
        return cmd_import(&o);
    return hs_cli_usage(CMD, "unknown subcommand '%s' (export, import)", o.sub);
}
