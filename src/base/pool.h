/* A fixed thread pool for data-parallel work (every matmul runs through it).
 * hs_pool_run(pool, fn, arg) calls fn(arg, ith, nth) once on each of the nth
 * threads (the caller is thread 0) and returns when all have finished. Workers
 * spin briefly between jobs (a token's forward pass issues hundreds of jobs)
 * and then sleep. One caller at a time: hs_pool_run is not reentrant. */
#ifndef HS_BASE_POOL_H
#define HS_BASE_POOL_H

typedef struct hs_pool hs_pool;
typedef void (*hs_pool_fn)(void *arg, int ith, int nth);

/* n_threads >= 1 (1 = run everything on the caller). */
int hs_pool_create(int n_threads, hs_pool **out);
void hs_pool_free(hs_pool *pool);
int hs_pool_size(const hs_pool *pool);
void hs_pool_run(hs_pool *pool, hs_pool_fn fn, void *arg);
/* For jobs whose fn claims work from a shared counter until none is left: a
 * worker that is late (descheduled by another process) is not waited for and
 * may not be called at all, so one slow thread cannot stall the call. The
 * caller always runs fn, so all the work gets done. */
void hs_pool_run_shared(hs_pool *pool, hs_pool_fn fn, void *arg);

/* Parallel for: fn(arg, lo, hi) over chunks of [0, n) of about `grain`
 * items, claimed from a shared counter (hs_pool_run_shared), so a thread that
 * another process delays holds nobody up. n <= grain runs on the caller. */
typedef void (*hs_pool_range_fn)(void *arg, long lo, long hi);
void hs_pool_for(hs_pool *pool, long n, long grain, hs_pool_range_fn fn, void *arg);

/* Splits [0, n) into nth nearly equal parts; part ith is [*lo, *hi). */
static inline void hs_pool_split(long n, int ith, int nth, long *lo, long *hi) {
    long per = n / nth, rem = n % nth;
    *lo = ith * per + (ith < rem ? ith : rem);
    *hi = *lo + per + (ith < rem ? 1 : 0);
}

/* Number of online CPUs (at least 1). */
int hs_cpu_count(void);

#endif
