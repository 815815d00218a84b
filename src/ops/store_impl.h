/* The store's insides, shared by store.c, store_keys.c, store_export.c and
 * store_redact.c only. Nothing outside src/ops/store*.c includes this. */
#ifndef HS_OPS_STORE_IMPL_H
#define HS_OPS_STORE_IMPL_H

#include "ops/store.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>

#define HS_STORE_QUEUE_CAP 4096        /* records waiting for the writer; callers wait beyond it */
#define HS_STORE_BATCH_MAX 1024        /* records per transaction */
#define HS_STORE_BUSY_MS 5000          /* how long a statement waits for another connection's lock */
#define HS_KEY_HASH_BYTES 32           /* crypto_generichash output kept per key */
#define HS_KEY_REFRESH_NS 2000000000LL /* the active-key list is at most this old */

/* One queued record: the struct's strings point into text[] (one allocation). */
struct hs_store_item {
    struct hs_request_record r;
    char text[];
};

/* An active key as verify sees it. */
struct hs_key_entry {
    unsigned char hash[HS_KEY_HASH_BYTES];
    struct hs_key_info info;
};

struct hs_store {
    char *path;

    /* The writer thread's own connection and statements; nobody else touches them. */
    sqlite3 *wdb;
    sqlite3_stmt *ins_req, *ins_body;
    pthread_t writer;
    struct hs_store_item *batch[HS_STORE_BATCH_MAX]; /* the records being committed */

    /* The queue: a ring of HS_STORE_QUEUE_CAP items. queued counts every record
     * ever accepted and committed every record that reached the file (or was
     * given up on), so flush waits for committed >= queued-at-the-call. */
    pthread_mutex_t qlock;
    pthread_cond_t q_nonempty, q_nonfull, q_done;
    struct hs_store_item **ring;
    size_t head, count;
    uint64_t queued, committed;
    bool stopping;

    /* The second connection, for keys and counts, used under dblock by any thread. */
    pthread_mutex_t dblock;
    sqlite3 *db;

    /* The active-key cache that verify reads (keylock), and when it was filled
     * (monotonic ns; 0 = never, so the next verify reloads it). */
    pthread_mutex_t keylock;
    struct hs_key_entry *keys;
    size_t n_keys;
    size_t n_key_rows; /* active rows in the file, usable hashes or not */
    _Atomic int64_t keys_loaded_ns;
    _Atomic bool keys_ok; /* the last load read the file (false: key count fails closed) */

    /* The body redactor (default: hs_store_redact_default). */
    pthread_mutex_t redlock;
    hs_redact_fn redact;
    void *redact_user;
};

/* Wall-clock unix milliseconds. */
int64_t hs_store_now_ms(void);

/* Opens one connection to path with the store's pragmas (WAL, busy timeout).
 * readonly opens without creating. */
int hs_store_connect(const char *path, bool readonly, sqlite3 **out, hs_err *err);

/* Fills err from db's last error, naming what was being done; returns code. */
int hs_store_sql_err(hs_err *err, int code, sqlite3 *db, const char *what);

/* The default redactor (store_redact.c); user is unused. */
char *hs_store_redact_default(void *user, const char *text);

/* Reloads the active-key cache from the database (store_keys.c). */
int hs_store_keys_reload(hs_store *s, hs_err *err);
void hs_store_keys_free(hs_store *s);

#endif
