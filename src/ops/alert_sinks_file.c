/* The sinks that stay on this machine: the store's alerts table and a JSONL
 * file. */
#include "ops/alerts_impl.h"
#include "ops/store_alerts.h"

#include "base/mem.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

/* ---- the store ---------------------------------------------------------------- */

static int store_deliver(hs_alert_sink *s, void *state, const struct hs_alert *al, int64_t *retry_after_ms,
                         hs_err *err)
{
    (void)s;
    (void)retry_after_ms;
    struct hs_alert_row r = {0,           al->ts_ms, al->type,     hs_alert_severity_name(al->severity),
                             al->message, al->count, al->first_ms, al->details};
    int rc = hs_store_alerts_insert(state, &r, NULL, err);
    return rc == HS_EINVAL ? HS_EIO : rc; /* a row the manager built is never invalid: keep retrying */
}

static void store_destroy(void *state)
{
    hs_store_alerts_close(state);
}

static const struct hs_alert_sink_ops k_store_ops = {store_deliver, store_destroy};

int hs_alert_sink_store_new(hs_store *store, const struct hs_alert_sink_ops **ops, void **state, hs_err *err)
{
    hs_store_alerts *w;
    int rc = hs_store_alerts_open(store, &w, err);
    if (rc) {
        hs_err_prefix(err, "alerts: the store sink: ");
        return rc;
    }
    *ops = &k_store_ops;
    *state = w;
    return HS_OK;
}

/* ---- JSONL ------------------------------------------------------------------- */

struct jsonl {
    char *path;
    char *source;
};

/* The file is opened for each alert: alerts are rare, and a file that was
 * rotated or removed since is simply created again. One write() with
 * O_APPEND puts the whole line at the end even when another process appends
 * to the same file. Flushed (it is in the kernel once write returns), not
 * fsynced. */
static int append_line(const char *path, const char *line, size_t len, hs_err *err)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return hs_err_set(err, HS_EIO, "%s: cannot open for appending: %s", path, strerror(errno));
    int rc = HS_OK;
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, line + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = hs_err_set(err, HS_EIO, "%s: write failed: %s", path,
                            n < 0 ? strerror(errno) : "no progress");
            break;
        }
        off += (size_t)n;
    }
    if (close(fd) != 0 && rc == HS_OK)
        rc = hs_err_set(err, HS_EIO, "%s: close failed: %s", path, strerror(errno));
    return rc;
}

static int jsonl_deliver(hs_alert_sink *s, void *state, const struct hs_alert *al, int64_t *retry_after_ms,
                         hs_err *err)
{
    (void)s;
    (void)retry_after_ms;
    struct jsonl *j = state;
    char *text = hs_alert_to_json(al, j->source);
    if (!text)
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    size_t n = strlen(text);
    char *line = hs_realloc(text, n + 2);
    if (!line) {
        hs_free(text);
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    }
    line[n] = '\n';
    line[n + 1] = '\0';
    int rc = append_line(j->path, line, n + 1, err);
    hs_free(line);
    return rc;
}

static void jsonl_destroy(void *state)
{
    struct jsonl *j = state;
    if (!j)
        return;
    hs_free(j->path);
    hs_free(j->source);
    hs_free(j);
}

static const struct hs_alert_sink_ops k_jsonl_ops = {jsonl_deliver, jsonl_destroy};

int hs_alert_sink_jsonl_new(const struct hs_alert_sink_config *c, const char *source,
                            const struct hs_alert_sink_ops **ops, void **state, hs_err *err)
{
    if (!c->path || !c->path[0])
        return hs_err_set(err, HS_EINVAL, "a jsonl sink needs a path");
    /* A path that cannot be appended to is a configuration error: say so at
       start, not at the first alert. */
    int fd = open(c->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return hs_err_set(err, HS_EIO, "%s: cannot open for appending: %s", c->path, strerror(errno));
    close(fd);
    struct jsonl *j = hs_calloc(1, sizeof *j);
    if (j) {
        j->path = hs_strdup(c->path);
        j->source = hs_strdup(source);
    }
    if (!j || !j->path || !j->source) {
        jsonl_destroy(j);
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    }
    *ops = &k_jsonl_ops;
    *state = j;
    return HS_OK;
}
