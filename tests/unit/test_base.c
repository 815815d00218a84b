/* base/: parsing, buffers, fp16/bf16 conversion, rng, thread pool. */
#include "test_util.h"

#include "base/buf.h"
#include "base/fp16.h"
#include "base/heap.h"
#include "base/parse.h"
#include "base/pool.h"
#include "base/rng.h"

#include <math.h>
#include <stdatomic.h>
#include <string.h>

static void parse_rejects_garbage_and_out_of_range(void **state) {
    (void)state;
    int v;
    assert_int_equal(hs_parse_int("42", 0, 100, &v), 0);
    assert_int_equal(v, 42);
    assert_int_not_equal(hs_parse_int("42x", 0, 100, &v), 0);
    assert_int_not_equal(hs_parse_int("", 0, 100, &v), 0);
    assert_int_not_equal(hs_parse_int("101", 0, 100, &v), 0);
    assert_int_not_equal(hs_parse_int("99999999999999999999", 0, 100, &v), 0);
    float f;
    assert_int_equal(hs_parse_f32("0.25", &f), 0);
    assert_true(f == 0.25f);
    assert_int_not_equal(hs_parse_f32("nan", &f), 0);
    assert_int_not_equal(hs_parse_f32("1e999", &f), 0);
    int list[4], n;
    assert_int_equal(hs_parse_int_list("1,2,4", 1, 8, list, 4, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(list[2], 4);
    assert_int_not_equal(hs_parse_int_list("1,,2", 1, 8, list, 4, &n), 0);
    assert_int_not_equal(hs_parse_int_list("1,2,", 1, 8, list, 4, &n), 0);
}

static void buf_grows_and_stays_terminated(void **state) {
    (void)state;
    hs_buf b = {0};
    for (int i = 0; i < 1000; i++)
        assert_int_equal(hs_buf_printf(&b, "%d,", i), 0);
    assert_int_equal(b.len, strlen(b.data));
    assert_memory_equal(b.data, "0,1,2,", 6);
    hs_buf_free(&b);
}

/* Every fp16 value converts to float and back unchanged (NaNs stay NaN). */
static void fp16_round_trips_every_value(void **state) {
    (void)state;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = hs_fp16_to_f32((hs_fp16)h);
        if (isnan(f)) {
            assert_true(isnan(hs_fp16_to_f32(hs_f32_to_fp16(f))));
            continue;
        }
        assert_int_equal(hs_f32_to_fp16(f), h);
    }
    /* rounding to nearest even: 1 + 2^-11 is halfway between 1 and 1+2^-10 */
    assert_int_equal(hs_f32_to_fp16(1.0f + 0x1.0p-11f), 0x3c00);
    assert_int_equal(hs_f32_to_fp16(1.0f + 0x1.8p-10f), 0x3c02);
    assert_int_equal(hs_f32_to_fp16(65520.0f), 0x7c00); /* overflows to inf */
    assert_int_equal(hs_f32_to_fp16(-0.0f), 0x8000);
}

static void bf16_rounds_to_nearest_even(void **state) {
    (void)state;
    assert_int_equal(hs_f32_to_bf16(1.0f), 0x3f80);
    assert_int_equal(hs_f32_to_bf16(hs_bits_to_f32(0x3f808000u)), 0x3f80); /* tie -> even */
    assert_int_equal(hs_f32_to_bf16(hs_bits_to_f32(0x3f818000u)), 0x3f82);
    assert_true(hs_bf16_to_f32(0x4049) == hs_bits_to_f32(0x40490000u));
}

static void rng_is_deterministic_per_seed(void **state) {
    (void)state;
    hs_rng a, b;
    hs_rng_seed(&a, 7);
    hs_rng_seed(&b, 7);
    for (int i = 0; i < 100; i++)
        assert_true(hs_rng_u64(&a) == hs_rng_u64(&b));
    double sum = 0;
    for (int i = 0; i < 10000; i++) {
        float u = hs_rng_f32(&a);
        assert_true(u >= 0.0f && u < 1.0f);
        sum += u;
    }
    assert_true(fabs(sum / 10000 - 0.5) < 0.02);
}

struct sum_job {
    long n;
    long partial[8];
};

static void sum_part(void *arg, int ith, int nth) {
    struct sum_job *j = arg;
    long lo, hi, s = 0;
    hs_pool_split(j->n, ith, nth, &lo, &hi);
    for (long i = lo; i < hi; i++)
        s += i;
    j->partial[ith] = s;
}

/* Many short jobs in a row: every thread runs each job exactly once. */
static void pool_runs_every_part_once(void **state) {
    (void)state;
    hs_pool *pool;
    assert_int_equal(hs_pool_create(3, &pool), 0);
    for (int rep = 0; rep < 200; rep++) {
        struct sum_job j = {.n = 1000 + rep};
        hs_pool_run(pool, sum_part, &j);
        long total = j.partial[0] + j.partial[1] + j.partial[2];
        assert_true(total == j.n * (j.n - 1) / 2);
    }
    hs_pool_free(pool);
}

struct claim_job {
    long n;
    atomic_long next;
    atomic_long sum;
};

static void claim_part(void *arg, int ith, int nth) {
    struct claim_job *j = arg;
    (void)ith;
    (void)nth;
    for (;;) {
        long i = atomic_fetch_add(&j->next, 1);
        if (i >= j->n)
            break;
        atomic_fetch_add(&j->sum, i);
    }
}

/* Shared-counter jobs: all work done exactly once even when workers come late
 * (more threads than cores makes late workers common). */
static void pool_shared_jobs_do_all_work(void **state) {
    (void)state;
    hs_pool *pool;
    assert_int_equal(hs_pool_create(4, &pool), 0);
    for (int rep = 0; rep < 200; rep++) {
        struct claim_job j = {.n = 100 + rep};
        atomic_init(&j.next, 0);
        atomic_init(&j.sum, 0);
        hs_pool_run_shared(pool, claim_part, &j);
        assert_true(atomic_load(&j.sum) == j.n * (j.n - 1) / 2);
        /* a static job right after: every thread still runs it once */
        struct sum_job s = {.n = 1000};
        hs_pool_run(pool, sum_part, &s);
        assert_true(s.partial[0] + s.partial[1] + s.partial[2] + s.partial[3] == 1000 * 999 / 2);
    }
    hs_pool_free(pool);
}

static bool int_less(const void *a, const void *b) { return *(const int *)a < *(const int *)b; }

/* Pops come out in order whatever the push order, duplicates included. */
static void heap_pops_in_order(void **state) {
    (void)state;
    hs_heap h;
    hs_heap_init(&h, sizeof(int), int_less);
    hs_rng r;
    hs_rng_seed(&r, 3);
    int counts[100] = {0};
    for (int i = 0; i < 5000; i++) {
        int v = (int)(hs_rng_u64(&r) % 100);
        counts[v]++;
        assert_int_equal(hs_heap_push(&h, &v), 0);
    }
    int prev = -1, v, n = 0;
    while (hs_heap_pop(&h, &v)) {
        assert_true(v >= prev);
        counts[v]--;
        prev = v;
        n++;
    }
    assert_int_equal(n, 5000);
    for (int i = 0; i < 100; i++)
        assert_int_equal(counts[i], 0);
    assert_false(hs_heap_pop(&h, &v));
    hs_heap_free(&h);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_rejects_garbage_and_out_of_range),
        cmocka_unit_test(buf_grows_and_stays_terminated),
        cmocka_unit_test(fp16_round_trips_every_value),
        cmocka_unit_test(bf16_rounds_to_nearest_even),
        cmocka_unit_test(rng_is_deterministic_per_seed),
        cmocka_unit_test(pool_runs_every_part_once),
        cmocka_unit_test(pool_shared_jobs_do_all_work),
        cmocka_unit_test(heap_pops_in_order),
    };
    return cmocka_run_group_tests_name("base", tests, NULL, NULL);
}
