/* (issue 7) What experiments.c, shadow.c and route_experiments.c share. */
#ifndef HS_SERVER_EXPERIMENTS_IMPL_H
#define HS_SERVER_EXPERIMENTS_IMPL_H

#include "ops/experiment.h"
#include "server/server_impl.h"

#include <pthread.h>
#include <stdint.h>

/* The most recent outcomes kept per variant for the rollback rules; a
 * window holds at most this many whatever its span. */
#define SRV_WIN_CAP 4096

struct srv_win_obs {
    int64_t ts_ms;
    float latency_ms; /* < 0: not counted in the latency (an error) */
    bool error, safety;
};

struct srv_win {
    struct srv_win_obs v[SRV_WIN_CAP];
    int head, n; /* a ring: head is the next slot */
};

struct srv_exp {
    struct hs_experiment def;
    struct hs_exp_state st;
    struct srv_win w[2]; /* A, B */
    uint64_t requests[2];
    uint64_t fallbacks;       /* B failed, A answered */
    uint64_t shadow_done, shadow_dropped, shadow_failed;
};

struct srv_shadow; /* shadow.c */

struct srv_exps {
    pthread_mutex_t mu;        /* the list; each experiment's st, windows and counters */
    pthread_mutex_t change_mu; /* one change at a time: store first, then st */
    struct srv_exp **v;        /* only ever appended to: pointers stay valid */
    int n, cap;
    pthread_t thread;
    pthread_cond_t cv;
    bool stop, running;
    struct srv_shadow *shadow;
};

struct srv_exp *hs_srv_exp_find(struct srv_exps *x, const char *name); /* under mu, or with the list fixed */
/* The window's outcomes since since_ms (scratch: SRV_WIN_CAP floats). Under mu. */
void hs_srv_win_summary(const struct srv_win *w, int64_t since_ms, struct hs_exp_window *out, float *scratch);
/* Writes next to the store with an event, then applies it. */
int hs_srv_exp_change(hs_server *s, struct srv_exp *e, const struct hs_exp_state *next, const char *kind,
                      const char *reason, hs_err *err);
/* B to 0 %, status rolled_back, a critical alert. */
int hs_srv_exp_rollback(hs_server *s, struct srv_exp *e, const char *reason, hs_err *err);
/* Adds (or redefines, keeping its state) an experiment; its targets must exist. */
int hs_srv_exp_put(hs_server *s, const struct hs_experiment *def, struct srv_exp **out, bool *created,
                   hs_err *err);
int hs_srv_exp_check_targets(hs_server *s, const struct hs_experiment *e, hs_err *err);

int hs_srv_shadow_start(hs_server *s, hs_err *err);
void hs_srv_shadow_stop(hs_server *s);
/* Copies waiting for B now (all experiments). */
int hs_srv_shadow_pending(hs_server *s);

#endif
