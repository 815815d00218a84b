/* The store's alerts table (schema 3): rows that the alerts' store sink
 * writes, and the listing GET /api/alerts reads. */
#ifndef HS_OPS_STORE_ALERTS_H
#define HS_OPS_STORE_ALERTS_H

#include "ops/store.h"

#include <stdint.h>

/* One row. Strings are borrowed: on insert for the call, in a listing for
 * the callback. */
struct hs_alert_row {
    int64_t id;           /* set by the store (rowid); ignored on insert */
    int64_t ts_ms;        /* when the alert went out, unix ms */
    const char *type;     /* "high_latency" */
    const char *severity; /* "critical", "warning" or "info" (the table's CHECK) */
    const char *message;
    int64_t count;       /* 1, or how many alerts a grouped one stands for */
    int64_t first_ms;    /* the first of them */
    const char *details; /* JSON object text, or NULL */
};

/* A connection of its own for writing alerts, used by one thread at a time
 * (the store sink's). Alerts do not go through the request writer's queue,
 * nor through the connection that key verification shares, so a slow write
 * here never holds up a request. The store must outlive it. */
typedef struct hs_store_alerts hs_store_alerts;

int hs_store_alerts_open(hs_store *s, hs_store_alerts **out, hs_err *err);
void hs_store_alerts_close(hs_store_alerts *w); /* NULL is fine */
/* Writes one row; *id (when not NULL) gets its id. HS_EINVAL when type,
 * severity or message is missing or the severity is not one of the three;
 * HS_EBUSY when the file stayed locked past the busy timeout; HS_EIO
 * otherwise. */
int hs_store_alerts_insert(hs_store_alerts *w, const struct hs_alert_row *r, int64_t *id, hs_err *err);

/* Calls fn for the alerts with ts_ms >= since_ms, newest first, at most
 * limit of them (limit <= 0: all). fn runs with the store's shared read
 * connection held: it must not call the store. Thread-safe. */
typedef void (*hs_alert_row_fn)(void *user, const struct hs_alert_row *r);
int hs_store_alerts_list(hs_store *s, int64_t since_ms, int limit, hs_alert_row_fn fn, void *user,
                         hs_err *err);

#endif
