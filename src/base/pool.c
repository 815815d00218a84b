#include "base/pool.h"

#include "base/err.h"
#include "base/mem.h"

#include <immintrin.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

/* Spin this many pause-loops for the next job before sleeping: long enough to
 * bridge the gap between two matmuls of one token, short enough not to burn a
 * core while the server is idle. */
#define SPIN_ITERS 200000

struct worker {
    hs_pool *pool;
    int ith;
    pthread_t thread;
};

struct hs_pool {
    int n;
    struct worker *workers;
    hs_pool_fn fn;
    void *arg;
    bool shared;         /* the current job was started with hs_pool_run_shared */
    atomic_uint gen;     /* bumped for each job */
    atomic_int pending;  /* static jobs: workers still to finish the current job */
    atomic_int active;   /* workers inside a job's fn right now */
    atomic_uint closed;  /* shared jobs: the gen the caller has finished */
    atomic_int stop;
    pthread_mutex_t lock;
    pthread_cond_t wake; /* workers sleeping for a job */
    atomic_int sleepers;
};

static void *worker_main(void *p) {
    struct worker *w = p;
    hs_pool *pool = w->pool;
    unsigned seen = 0;
    for (;;) {
        unsigned g;
        int spins = 0;
        while ((g = atomic_load_explicit(&pool->gen, memory_order_acquire)) == seen) {
            if (atomic_load(&pool->stop))
                return NULL;
            if (++spins < SPIN_ITERS) {
                _mm_pause();
                continue;
            }
            pthread_mutex_lock(&pool->lock);
            atomic_fetch_add(&pool->sleepers, 1);
            while (atomic_load(&pool->gen) == seen && !atomic_load(&pool->stop))
                pthread_cond_wait(&pool->wake, &pool->lock);
            atomic_fetch_sub(&pool->sleepers, 1);
            pthread_mutex_unlock(&pool->lock);
            spins = 0;
        }
        seen = g;
        if (atomic_load(&pool->stop))
            return NULL;
        /* Announce, then check that the job is still open (both seq_cst): either
         * the caller sees us active and waits, or we see the job closed, or a
         * newer one started, and stay out. fn and arg are read only after. */
        atomic_fetch_add(&pool->active, 1);
        if (atomic_load(&pool->gen) != g || atomic_load(&pool->closed) == g) {
            atomic_fetch_sub(&pool->active, 1);
            continue;
        }
        const bool shared = pool->shared;
        pool->fn(pool->arg, w->ith, pool->n);
        if (!shared)
            atomic_fetch_sub_explicit(&pool->pending, 1, memory_order_release);
        atomic_fetch_sub(&pool->active, 1);
    }
}

int hs_pool_create(int n_threads, hs_pool **out) {
    *out = NULL;
    if (n_threads < 1)
        n_threads = 1;
    hs_pool *pool = hs_calloc(1, sizeof *pool);
    if (!pool)
        return HS_ENOMEM;
    pool->n = n_threads;
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->wake, NULL);
    pool->workers = hs_calloc((size_t)n_threads, sizeof *pool->workers);
    if (!pool->workers) {
        hs_free(pool);
        return HS_ENOMEM;
    }
    for (int i = 1; i < n_threads; i++) {
        pool->workers[i].pool = pool;
        pool->workers[i].ith = i;
        if (pthread_create(&pool->workers[i].thread, NULL, worker_main, &pool->workers[i]) != 0) {
            pool->n = i; /* join the ones already started */
            hs_pool_free(pool);
            return HS_ENOMEM;
        }
    }
    *out = pool;
    return HS_OK;
}

void hs_pool_free(hs_pool *pool) {
    if (!pool)
        return;
    pthread_mutex_lock(&pool->lock);
    atomic_store(&pool->stop, 1);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    for (int i = 1; i < pool->n; i++)
        pthread_join(pool->workers[i].thread, NULL);
    pthread_mutex_destroy(&pool->lock);
    pthread_cond_destroy(&pool->wake);
    hs_free(pool->workers);
    hs_free(pool);
}

int hs_pool_size(const hs_pool *pool) { return pool ? pool->n : 1; }

static unsigned start_job(hs_pool *pool, hs_pool_fn fn, void *arg, bool shared) {
    pool->fn = fn;
    pool->arg = arg;
    pool->shared = shared;
    atomic_store_explicit(&pool->pending, pool->n - 1, memory_order_relaxed);
    unsigned g = atomic_fetch_add(&pool->gen, 1) + 1;
    if (atomic_load(&pool->sleepers) > 0) {
        pthread_mutex_lock(&pool->lock);
        pthread_cond_broadcast(&pool->wake);
        pthread_mutex_unlock(&pool->lock);
    }
    return g;
}

void hs_pool_run(hs_pool *pool, hs_pool_fn fn, void *arg) {
    if (!pool || pool->n == 1) {
        fn(arg, 0, 1);
        return;
    }
    start_job(pool, fn, arg, false);
    fn(arg, 0, pool->n);
    while (atomic_load_explicit(&pool->pending, memory_order_acquire) > 0)
        _mm_pause();
}

void hs_pool_run_shared(hs_pool *pool, hs_pool_fn fn, void *arg) {
    if (!pool || pool->n == 1) {
        fn(arg, 0, 1);
        return;
    }
    unsigned g = start_job(pool, fn, arg, true);
    fn(arg, 0, pool->n);
    /* All work is claimed once fn returns here; wait only for the workers
     * still inside fn, and keep late ones out. */
    atomic_store(&pool->closed, g);
    while (atomic_load(&pool->active) > 0)
        _mm_pause();
}

struct for_job {
    long n, grain;
    hs_pool_range_fn fn;
    void *arg;
    atomic_long next;
};

static void for_worker(void *p, int ith, int nth) {
    struct for_job *j = p;
    (void)ith;
    (void)nth;
    for (;;) {
        long lo = atomic_fetch_add_explicit(&j->next, j->grain, memory_order_relaxed);
        if (lo >= j->n)
            return;
        j->fn(j->arg, lo, lo + j->grain < j->n ? lo + j->grain : j->n);
    }
}

void hs_pool_for(hs_pool *pool, long n, long grain, hs_pool_range_fn fn, void *arg) {
    if (n <= 0)
        return;
    if (grain < 1)
        grain = 1;
    if (!pool || pool->n == 1 || n <= grain) {
        fn(arg, 0, n);
        return;
    }
    struct for_job j = {.n = n, .grain = grain, .fn = fn, .arg = arg};
    atomic_init(&j.next, 0);
    hs_pool_run_shared(pool, for_worker, &j);
}

int hs_cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}
