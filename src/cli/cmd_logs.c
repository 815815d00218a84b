/* 'hestia logs export' and 'hestia logs import': the request records in the
 * store as JSON Lines and back (ops/store.h writes them, ops/store_import.h
 * reads them; this parses flags and picks the files). */
#include "cli/cli.h"

#include "base/buf.h"
#include "base/mem.h"
#include "base/parse.h"
#include "ops/store.h"
#include "ops/store_import.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_STORE "./hestia.db"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: hestia logs export [--jsonl] [--since TIME] [-o FILE] [--store FILE]\n"
            "       hestia logs import [--skip-existing] [--store FILE] FILE.jsonl|-\n"
            "\n"
            "export\n"
            "Writes every request record as one JSON object per line, oldest first, with the\n"
            "request and response bodies when the server stored them (serve --log-bodies).\n"
            "  --jsonl        the format (the only one, and the default)\n"
            "  --since TIME   records from TIME on: unix milliseconds, or an ISO 8601 date or\n"
            "                 time (2026-11-26, 2026-11-26T12:00:00Z, ...+01:00; UTC when no zone)\n"
            "  -o FILE        write to FILE (via a temporary file and a rename) instead of stdout\n"
            "  --store FILE   the store (default %s)\n"
            "\n"
            "import\n"
            "Reads what export writes (one record per line; \"-\" is stdin), with the\n"
            "bodies and the \"feedback\" object when present, into the store in one\n"
            "transaction: a bad line is reported as FILE:LINE and nothing is imported.\n"
            "  --skip-existing  skip records whose id is already stored (default: an error)\n"
            "  --store FILE     the store (default %s; created when absent)\n",
            DEFAULT_STORE, DEFAULT_STORE);
}

/* n digits at *p into *out; advances *p. */
static bool digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return true;
}

/* YYYY-MM-DD[(T| )HH:MM[:SS[.fff...]]][Z|(+|-)HH[:]MM] -> unix ms. */
static bool parse_iso(const char *s, int64_t *out)
{
    const char *p = s;
    int y, mo, d, h = 0, mi = 0, sec = 0, ms = 0, tz = 0;
    if (!digits(&p, 4, &y) || *p++ != '-' || !digits(&p, 2, &mo) || *p++ != '-' || !digits(&p, 2, &d))
        return false;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        p++;
        if (!digits(&p, 2, &h) || *p++ != ':' || !digits(&p, 2, &mi))
            return false;
        if (*p == ':') {
            p++;
            if (!digits(&p, 2, &sec))
                return false;
            if (*p == '.' || *p == ',') {
                p++;
                int scale = 100, nd = 0;
                while (*p >= '0' && *p <= '9') {
                    ms += (*p - '0') * scale;
                    scale /= 10;
                    p++;
                    nd++;
                }
                if (!nd)
                    return false;
            }
        }
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int sign = *p++ == '-' ? -1 : 1, th, tm;
            if (!digits(&p, 2, &th))
                return false;
            if (*p == ':')
                p++;
            if (!digits(&p, 2, &tm) || th > 23 || tm > 59)
                return false;
            tz = sign * (th * 60 + tm);
        }
    }
    if (*p || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return false;
    struct tm tm = {
        .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi, .tm_sec = sec};
    time_t t = timegm(&tm);
    /* timegm normalises Feb 30 into March; a date that moved was not a date */
    if (t == (time_t)-1 || tm.tm_mday != d || tm.tm_mon != mo - 1)
        return false;
    *out = ((int64_t)t - (int64_t)tz * 60) * 1000 + ms;
    return true;
}

static int parse_since(const char *v, int64_t *out)
{
    if (v[0] >= '0' && v[0] <= '9' && !strchr(v, '-') && !strchr(v, ':'))
        return hs_parse_i64(v, 0, INT64_MAX, out);
    return parse_iso(v, out) && *out >= 0 ? HS_OK : HS_EINVAL;
}

static int export_to(hs_store *s, const char *out_path, int64_t since)
{
    hs_err err = {0};
    if (!out_path || !strcmp(out_path, "-")) {
        if (hs_store_export_jsonl(s, stdout, since, &err))
            return hs_cli_fail_err("logs", &err);
        return 0;
    }
    /* A temporary file beside the target, renamed at the end: an interrupted
     * export never leaves a half file under the name asked for. */
    hs_buf tmp = {0};
    if (hs_buf_printf(&tmp, "%s.tmp.%ld", out_path, (long)getpid()))
        return hs_cli_fail("logs", "out of memory");
    FILE *f = fopen(tmp.data, "w");
    if (!f) {
        int rc = hs_cli_fail("logs", "%s: %s", tmp.data, strerror(errno));
        hs_buf_free(&tmp);
        return rc;
    }
    int rc = hs_store_export_jsonl(s, f, since, &err);
    if (fclose(f) != 0 && !rc)
        rc = hs_err_set(&err, HS_EIO, "%s: %s", out_path, strerror(errno));
    if (!rc && rename(tmp.data, out_path) != 0)
        rc = hs_err_set(&err, HS_EIO, "%s: %s", out_path, strerror(errno));
    if (rc)
        unlink(tmp.data);
    hs_buf_free(&tmp);
    return rc ? hs_cli_fail_err("logs", &err) : 0;
}

static int cmd_export(int argc, char **argv)
{
    const char *store = DEFAULT_STORE, *out = NULL;
    int64_t since = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--jsonl"))
            continue;
        if (!strcmp(a, "--since") || !strcmp(a, "-o") || !strcmp(a, "--output") || !strcmp(a, "--store")) {
            if (i + 1 >= argc)
                return hs_cli_usage("logs", "%s needs a value", a);
            const char *v = argv[++i];
            if (!strcmp(a, "--store"))
                store = v;
            else if (!strcmp(a, "--since")) {
                if (parse_since(v, &since))
                    return hs_cli_usage("logs", "--since '%s' is not unix milliseconds or an ISO 8601 time",
                                        v);
            } else
                out = v;
        } else if (a[0] == '-' && a[1]) {
            return hs_cli_usage("logs", "unknown option '%s'", a);
        } else {
            return hs_cli_usage("logs", "unexpected argument '%s'", a);
        }
    }
    if (access(store, F_OK) != 0)
        return hs_cli_fail("logs", "%s: no store there (--store FILE names another)", store);
    hs_store *s;
    hs_err err = {0};
    if (hs_store_open(store, &s, &err))
        return hs_cli_fail_err("logs", &err);
    int rc = export_to(s, out, since);
    hs_store_close(s);
    return rc;
}

static int cmd_import(int argc, char **argv)
{
    const char *store = DEFAULT_STORE, *file = NULL;
    bool skip = false;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--skip-existing")) {
            skip = true;
        } else if (!strcmp(a, "--store")) {
            if (i + 1 >= argc)
                return hs_cli_usage("logs", "%s needs a value", a);
            store = argv[++i];
        } else if (a[0] == '-' && a[1]) {
            return hs_cli_usage("logs", "unknown option '%s'", a);
        } else if (file) {
            return hs_cli_usage("logs", "unexpected argument '%s' (one file per import)", a);
        } else {
            file = a;
        }
    }
    if (!file)
        return hs_cli_usage("logs", "import needs a file (or - for stdin)");
    bool std_in = !strcmp(file, "-");
    FILE *in = std_in ? stdin : fopen(file, "r");
    if (!in)
        return hs_cli_fail("logs", "%s: %s", file, strerror(errno));
    hs_store *s;
    hs_err err = {0};
    int rc = hs_store_open(store, &s, &err);
    struct hs_import_stats st;
    if (!rc) {
        rc = hs_store_import_jsonl(s, in, std_in ? "stdin" : file, skip, &st, &err);
        hs_store_close(s);
    }
    if (!std_in)
        fclose(in);
    if (rc)
        return hs_cli_fail_err("logs", &err);
    fprintf(stderr, "imported %lld records (%lld with feedback) into %s", (long long)st.records,
            (long long)st.feedback, store);
    if (st.skipped)
        fprintf(stderr, "; skipped %lld already there", (long long)st.skipped);
    fputc('\n', stderr);
    return 0;
}

int hs_cmd_logs(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "export"))
        return cmd_export(argc, argv);
    if (!strcmp(argv[1], "import"))
        return cmd_import(argc, argv);
    return hs_cli_usage("logs", "unknown subcommand '%s' (export, import)", argv[1]);
}
