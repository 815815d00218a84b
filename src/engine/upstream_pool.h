/* Several upstream OpenAI-compatible servers behind one model name (issue 7):
 * how hestia fronts a cluster when one machine is not enough.
 *
 * Per request the pool picks the usable member with the fewest outstanding
 * requests relative to its weight (outstanding counts from the pick until the
 * stream is closed); ties go round robin, weighted (smooth weighted round
 * robin among the tied members). A member is usable when its last health
 * check passed and its circuit breaker lets traffic through.
 *
 * Health: one thread per pool GETs every member's /models each interval
 * (all members at once, a short timeout each). No answer, a timeout or an
 * HTTP 5xx marks the member down; any other answer marks it up again (a 401
 * or 429 is a live server). Members start up.
 *
 * Circuit breaker, per member: closed; opens after breaker_failures
 * consecutive failed requests (connection error, timeout before the
 * headers, HTTP 5xx or 429); while open no request goes there; after the
 * cooldown it is half-open: the next pick is a single trial request, and
 * its success closes the breaker, its failure opens it for another cooldown.
 *
 * Retries: a request that failed before any of its body was read (the
 * failures above) is retried up to `retries` times on another usable member,
 * or on the same one when it is the only one, after a short backoff (longer
 * when the same member answered with Retry-After, up to a cap). Once the
 * status is handed out nothing is retried: the caller may have passed bytes
 * on. When no member is usable for a retry, the last failure is the answer.
 *
 * Every change of state is logged: upstream.down, upstream.up,
 * upstream.breaker (state=open|half_open|closed).
 *
 * Thread-safety: any number of threads may start streams at once; a stream
 * has one consumer, as an hs_upstream_stream. */
#ifndef HS_ENGINE_UPSTREAM_POOL_H
#define HS_ENGINE_UPSTREAM_POOL_H

#include "base/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct hs_upstream_pool hs_upstream_pool;
typedef struct hs_upstream_pool_stream hs_upstream_pool_stream;

struct hs_upstream_member_params {
    const char *url;     /* base up to and including /v1 (as hs_upstream_params) */
    const char *api_key; /* NULL or "" = none */
    const char *model;   /* the remote model name; NULL keeps the client's */
    int weight;          /* share of traffic relative to the others; <= 0 = 1 */
};

/* Zero (or less, where noted) takes the default. */
struct hs_upstream_pool_params {
    const char *name; /* the model's name, in logs and messages; required */
    const struct hs_upstream_member_params *members;
    int n_members; /* 1..64 */
    /* per member, as in hs_upstream_params (defaults there) */
    int connect_timeout_ms, timeout_ms, idle_timeout_ms;
    int retries;             /* < 0 = default 1; 0 = none */
    int health_interval_ms;  /* default 10000; < 0 = no health thread (checks only by
                                hs_upstream_pool_check_health) */
    int health_timeout_ms;   /* one check, connect included; default 2000 */
    int breaker_failures;    /* default 5 */
    int breaker_cooldown_ms; /* default 30000 */
    int backoff_ms;          /* before retry k: k * this; default 50 */
    int retry_after_cap_ms;  /* Retry-After is honoured up to this; default 2000 */
    /* The breaker's clock in milliseconds; NULL = the monotonic clock. Tests
     * pass a fake one to step through the cooldown. */
    int64_t (*clock_ms)(void *user);
    void *clock_user;
};

/* Creates the members (HS_EINVAL naming the member for a bad URL or key) and
 * starts the health thread, whose first round runs at once. */
int hs_upstream_pool_create(const struct hs_upstream_pool_params *p, hs_upstream_pool **out, hs_err *err);
/* Stops the health thread and drops the pool; streams still open keep what
 * they use until their hs_upstream_pool_close. NULL does nothing. */
void hs_upstream_pool_free(hs_upstream_pool *p);

enum hs_breaker { HS_BREAKER_CLOSED = 0, HS_BREAKER_OPEN, HS_BREAKER_HALF_OPEN };
const char *hs_breaker_name(enum hs_breaker b);

/* One member as it is now (a snapshot). */
struct hs_upstream_member_state {
    const char *url; /* valid while the pool lives */
    int weight;
    bool up; /* the last health check passed (true before the first) */
    enum hs_breaker breaker;
    int outstanding; /* requests picked and not yet closed */
    int consecutive_failures;
    uint64_t requests;      /* attempts started here, retries included */
    uint64_t failures;      /* attempts that failed before the body */
    uint64_t breaker_opens; /* times the breaker opened */
};
int hs_upstream_pool_size(const hs_upstream_pool *p);
/* HS_EINVAL for an index out of range. */
int hs_upstream_pool_member(hs_upstream_pool *p, int i, struct hs_upstream_member_state *out);
/* Retries started over the pool's life. */
uint64_t hs_upstream_pool_retries(hs_upstream_pool *p);
/* Runs one round of health checks now and returns when it is over (the
 * thread calls the same; tests call it directly). */
void hs_upstream_pool_check_health(hs_upstream_pool *p);
/* Seconds a client should wait before trying again when no member is usable:
 * until the first breaker turns half-open, or the next health round; >= 1. */
int hs_upstream_pool_retry_after_s(hs_upstream_pool *p);

/* Starts POST path on a picked member (as hs_upstream_post; the body and id
 * are copied, for retries). HS_EBUSY with "no healthy upstream for 'NAME'"
 * when no member is usable; other failures as hs_upstream_post. */
int hs_upstream_pool_post(hs_upstream_pool *p, const char *path, const char *body, size_t len,
                          const char *request_id, hs_upstream_pool_stream **out, hs_err *err);
/* As hs_upstream_status, retries included: a failed attempt is retried
 * within this call or a later one (a backoff in progress reads as 0, "not
 * yet"), so the status given out is final: > 0 an HTTP status (perhaps the
 * last failure's 5xx, whose body the reads then give), or a negative HS_E*
 * when the last attempt got no answer (err says why). */
int hs_upstream_pool_status(hs_upstream_pool_stream *s, int timeout_ms, hs_err *err);
/* As hs_upstream_header / hs_upstream_read, after a positive status. */
const char *hs_upstream_pool_header(hs_upstream_pool_stream *s, const char *name);
long hs_upstream_pool_read(hs_upstream_pool_stream *s, char *buf, size_t cap, int timeout_ms, hs_err *err);
/* The base URL of the member of the current (last) attempt. */
const char *hs_upstream_pool_stream_url(const hs_upstream_pool_stream *s);
/* Attempts started for this request (1 + retries). */
int hs_upstream_pool_stream_attempts(const hs_upstream_pool_stream *s);
/* Safe from any thread until hs_upstream_pool_close: the current transfer is
 * cut and no retry starts. */
void hs_upstream_pool_cancel(hs_upstream_pool_stream *s);
/* Cuts the transfer if still running and frees the stream; its member's
 * outstanding count drops. NULL does nothing. */
void hs_upstream_pool_close(hs_upstream_pool_stream *s);

#endif
