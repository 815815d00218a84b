/* (issue 6) JSONL import: the records `hestia logs export` writes, read back
 * into a store. How an operator moves logs between stores, and how tests
 * seed a store with known data. */
#ifndef HS_OPS_STORE_IMPORT_H
#define HS_OPS_STORE_IMPORT_H

#include "ops/store.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct hs_import_stats {
    int64_t records;  /* request records inserted */
    int64_t feedback; /* feedback rows inserted with them */
    int64_t skipped;  /* records whose id was already stored (skip_existing) */
};

/* Reads one JSON object per line from in (the fields of
 * hs_store_export_jsonl, plus an optional "feedback": {"value": 1|-1,
 * "comment"?, "ts_ms"?, "updated_ms"?}) and inserts every record, its bodies
 * and its feedback in ONE transaction: either the whole file goes in or
 * nothing does. Blank lines are skipped. "id", "ts_ms" and "status" are
 * required; every other field may be absent or null; "time" is ignored (ts_ms
 * is the truth); an unknown field is an error. (issue 7) "experiment" (a
 * non-empty string) and "variant" ("A" or "B") come together or not at all. A record whose id is already
 * stored (or repeated in the file) is an error naming it, or is skipped with
 * its feedback when skip_existing. Bodies are stored as given: they were
 * redacted when first stored. Errors name the place as "NAME:LINE: ...",
 * name being what the caller calls the input. Flushes this handle's queue
 * first and writes through a connection of its own. stats may be NULL; it
 * holds zeros unless HS_OK. */
int hs_store_import_jsonl(hs_store *s, FILE *in, const char *name, bool skip_existing, struct hs_import_stats *stats,
                          hs_err *err);

#endif
