/* (issue 6) User feedback on answers: one row per request id; a repeat
 * replaces the earlier one (its first time is kept), never a second row. */
#ifndef HS_OPS_STORE_FEEDBACK_H
#define HS_OPS_STORE_FEEDBACK_H

#include "ops/store.h"

#include <stdbool.h>
#include <stdint.h>

/* value is 1 (thumbs up) or -1 (down); comment may be NULL. key_name
 * non-NULL: only a request made with that key may be rated (a user rates
 * their own answers; NULL for an admin or an open server). Records still
 * queued are written first, so an answer's id is known the moment the
 * client has it. HS_ENOTFOUND when no such request, HS_EINVAL for a bad
 * value. *updated says whether an earlier feedback was replaced. */
int hs_store_feedback_set(hs_store *s, const char *request_id, const char *key_name, int value,
                          const char *comment, int64_t now_ms, bool *updated, hs_err *err);

struct hs_feedback {
    char request_id[176];
    int64_t ts_ms, updated_ms;
    int value;
    char comment[1024]; /* cut to fit */
};
/* The feedback of one request: HS_OK, or HS_ENOTFOUND when it has none. */
int hs_store_feedback_get(hs_store *s, const char *request_id, struct hs_feedback *out, hs_err *err);

#endif
