/* Rate limits per subject (an API key's name, or a client address): requests
 * per minute and per hour, tokens per minute, as sliding windows. Off where a
 * limit is 0. Time is passed in (tests use a fake clock). Thread-safe;
 * subjects idle for over an hour are forgotten, so memory stays bounded. */
#ifndef HS_SERVER_RATELIMIT_H
#define HS_SERVER_RATELIMIT_H

#include "server/config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct hs_ratelimit hs_ratelimit;

int hs_ratelimit_create(const struct hs_rate_limit *limits, hs_ratelimit **out);
void hs_ratelimit_free(hs_ratelimit *rl);
/* Past this many subjects the least recently active one is forgotten
 * (default 65536; memory is about 256 bytes per enabled limit per subject). */
void hs_ratelimit_set_max_subjects(hs_ratelimit *rl, size_t max_subjects);
/* How many subjects are remembered now (tests, metrics). */
size_t hs_ratelimit_subjects(hs_ratelimit *rl);
/* True when any limit is on (false for NULL: a NULL limiter admits all). */
bool hs_ratelimit_enabled(const hs_ratelimit *rl);

/* What the x-ratelimit-* headers say (OpenAI's names): limit-requests,
 * remaining-requests, reset-requests, limit-tokens, remaining-tokens,
 * reset-tokens. Limits of 0 are off and their headers are left out. */
struct hs_rl_verdict {
    bool allowed;
    int retry_after_s;      /* when refused: seconds until a request would pass */
    int limit_requests;     /* the tightest request window's limit */
    int remaining_requests;
    int reset_requests_s;
    int limit_tokens;
    int remaining_tokens;
    int reset_tokens_s;
};

/* Counts one request of subject at now_ms if every window has room; when one
 * is full, counts nothing and says when to come back. */
bool hs_ratelimit_admit(hs_ratelimit *rl, const char *subject, int64_t now_ms, struct hs_rl_verdict *out);
/* Adds the tokens a finished request used (prompt + completion); a subject
 * over its tokens-per-minute is refused until the window slides. */
void hs_ratelimit_add_tokens(hs_ratelimit *rl, const char *subject, int64_t now_ms, int tokens);
/* Appends the x-ratelimit-* header values for v (name, value pairs) via fn. */
void hs_ratelimit_headers(const struct hs_rl_verdict *v, void (*fn)(void *user, const char *name, const char *value),
                          void *user);

#endif
