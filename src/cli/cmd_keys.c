/* 'hestia keys create|list|revoke': the API keys in the store (ops/store.h
 * does the work). A new key is printed once, alone on stdout, so that
 * `KEY=$(hestia keys create --name ci)` captures exactly the key. */
#include "cli/cli.h"

#include "base/mem.h"
#include "ops/store.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_STORE "./hestia.db"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: hestia keys create --name NAME [--scope user|admin] [--store FILE]\n"
            "       hestia keys list [--store FILE]\n"
            "       hestia keys revoke --name NAME [--store FILE]\n"
            "\n"
            "create: makes a random key, prints it once on stdout and keeps only its hash.\n"
            "  --scope user (default) may call the API; admin may also call /admin/*.\n"
            "list:   name, scope, the key's first characters, created and revoked times (UTC).\n"
            "revoke: the key stops working within 2 seconds, also in a running server.\n"
            "--store FILE  the store (default %s)\n",
            DEFAULT_STORE);
}

struct opts {
    const char *name, *scope, *store;
};

/* Parses argv[2..]; returns 0 or the usage exit code. */
static int parse(int argc, char **argv, struct opts *o)
{
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return -1;
        }
        if (!strcmp(a, "--name") || !strcmp(a, "--scope") || !strcmp(a, "--store")) {
            if (i + 1 >= argc)
                return hs_cli_usage("keys", "%s needs a value", a);
            const char *v = argv[++i];
            if (!strcmp(a, "--name"))
                o->name = v;
            else if (!strcmp(a, "--scope"))
                o->scope = v;
            else
                o->store = v;
        } else if (a[0] == '-' && a[1]) {
            return hs_cli_usage("keys", "unknown option '%s'", a);
        } else {
            return hs_cli_usage("keys", "unexpected argument '%s'", a);
        }
    }
    return 0;
}

/* Opens the store; an existing one unless create is true, so that a typo in
 * --store does not leave an empty database behind. */
static int open_store(const char *path, bool create, hs_store **out)
{
    if (!create && access(path, F_OK) != 0)
        return hs_cli_fail("keys", "%s: no store there (--store FILE names another)", path);
    hs_err err = {0};
    if (hs_store_open(path, out, &err))
        return hs_cli_fail_err("keys", &err);
    return 0;
}

static int cmd_create(const struct opts *o)
{
    if (!o->name)
        return hs_cli_usage("keys", "create needs --name NAME");
    enum hs_key_scope scope = HS_SCOPE_USER;
    if (o->scope && hs_key_scope_parse(o->scope, &scope))
        return hs_cli_usage("keys", "--scope '%s' is not user or admin", o->scope);
    hs_store *s;
    int rc = open_store(o->store, true, &s);
    if (rc)
        return rc;
    char key[HS_STORE_KEY_CAP];
    hs_err err = {0};
    rc = hs_store_key_create(s, o->name, scope, key, sizeof key, &err);
    hs_store_close(s);
    if (rc)
        return hs_cli_fail_err("keys", &err);
    printf("%s\n", key);
    memset(key, 0, sizeof key);
    if (fflush(stdout) != 0)
        return hs_cli_fail("keys", "could not write the key to stdout; revoke '%s' and create another",
                           o->name);
    fprintf(stderr, "hestia keys: created %s key '%s'; it is shown only this once, so keep it now\n",
            hs_key_scope_name(scope), o->name);
    return 0;
}

static int cmd_revoke(const struct opts *o)
{
    if (!o->name)
        return hs_cli_usage("keys", "revoke needs --name NAME");
    if (o->scope)
        return hs_cli_usage("keys", "revoke takes no --scope");
    hs_store *s;
    int rc = open_store(o->store, false, &s);
    if (rc)
        return rc;
    hs_err err = {0};
    rc = hs_store_key_revoke(s, o->name, &err);
    hs_store_close(s);
    if (rc)
        return hs_cli_fail_err("keys", &err);
    printf("revoked key '%s'\n", o->name);
    return 0;
}

struct rows {
    struct hs_key_info *v;
    size_t n, cap;
    bool oom;
};

static void collect(void *user, const struct hs_key_info *k)
{
    struct rows *r = user;
    if (r->n == r->cap) {
        size_t ncap = r->cap ? r->cap * 2 : 16;
        struct hs_key_info *nv = hs_realloc_array(r->v, ncap, sizeof *nv);
        if (!nv) {
            r->oom = true;
            return;
        }
        r->v = nv;
        r->cap = ncap;
    }
    r->v[r->n++] = *k;
}

/* "2026-11-26T12:00:00Z", or "-" for 0 */
static void fmt_time(char *out, size_t cap, int64_t ms)
{
    if (ms <= 0) {
        snprintf(out, cap, "-");
        return;
    }
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (!gmtime_r(&t, &tm) || !strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(out, cap, "%" PRId64, ms);
}

static int cmd_list(const struct opts *o)
{
    if (o->name || o->scope)
        return hs_cli_usage("keys", "list takes only --store");
    hs_store *s;
    int rc = open_store(o->store, false, &s);
    if (rc)
        return rc;
    struct rows r = {0};
    hs_err err = {0};
    rc = hs_store_key_list(s, collect, &r, &err);
    hs_store_close(s);
    if (rc || r.oom) {
        hs_free(r.v);
        return rc ? hs_cli_fail_err("keys", &err) : hs_cli_fail("keys", "out of memory");
    }
    int w = 4;
    for (size_t i = 0; i < r.n; i++)
        if ((int)strlen(r.v[i].name) > w)
            w = (int)strlen(r.v[i].name);
    printf("%-*s  %-5s  %-11s  %-20s  %s\n", w, "NAME", "SCOPE", "PREFIX", "CREATED", "REVOKED");
    for (size_t i = 0; i < r.n; i++) {
        char created[32], revoked[32];
        fmt_time(created, sizeof created, r.v[i].created_ms);
        fmt_time(revoked, sizeof revoked, r.v[i].revoked_ms);
        printf("%-*s  %-5s  %-11s  %-20s  %s\n", w, r.v[i].name, hs_key_scope_name(r.v[i].scope),
               r.v[i].prefix, created, revoked);
    }
    hs_free(r.v);
    return 0;
}

int hs_cmd_keys(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    struct opts o = {.store = DEFAULT_STORE};
    int rc = parse(argc, argv, &o);
    if (rc)
        return rc < 0 ? 0 : rc;
    if (!strcmp(argv[1], "create"))
        return cmd_create(&o);
    if (!strcmp(argv[1], "list"))
        return cmd_list(&o);
    if (!strcmp(argv[1], "revoke"))
        return cmd_revoke(&o);
    return hs_cli_usage("keys", "unknown subcommand '%s' (create, list, revoke)", argv[1]);
}
