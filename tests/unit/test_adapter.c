/* engine/adapter: loading named adapters against a base model, their
 * reference counts and uids, and the registry (add, get, list, remove with
 * and without users). Adapters are random GGUFs written for the tiny
 * synthetic model (adapter_file.h). */
#include "test_util.h"
#include "adapter_file.h"
#include "tiny_model.h"

#include "base/mem.h"
#include "engine/adapter.h"
#include "model/model.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static char *g_model_path, *g_x, *g_y, *g_other;
static hs_model *g_m;

static int setup(void **state)
{
    (void)state;
    struct tiny_params tp;
    tiny_params_default(&tp);
    g_model_path = hs_test_tmpfile("adapter_base.gguf");
    hs_err err = {0};
    if (tiny_model_write(g_model_path, &tp, NULL) || hs_model_load(g_model_path, NULL, &g_m, &err))
        return -1;
    g_x = adapter_file_write(g_m, "ax.gguf", 1, 4, 0x7f, 0.1f, false);
    g_y = adapter_file_write(g_m, "ay.gguf", 2, 2, 0x05, 0.1f, true);
    /* an adapter of a model with another feed-forward width */
    char *po = hs_test_tmpfile("adapter_other.gguf");
    tp.n_ff = 128;
    hs_model *mo = NULL;
    if (tiny_model_write(po, &tp, NULL) || hs_model_load(po, NULL, &mo, &err))
        return -1;
    g_other = adapter_file_write(mo, "aother.gguf", 3, 4, 0x20, 0.1f, false);
    hs_model_free(mo);
    free(po);
    return g_x && g_y && g_other ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    hs_model_free(g_m);
    free(g_model_path);
    free(g_x);
    free(g_y);
    free(g_other);
    return 0;
}

static hs_adapter *load(const char *name, const char *path, float scale)
{
    hs_adapter *a = NULL;
    hs_err err = {0};
    if (hs_adapter_load(name, path, g_m, scale, &a, &err))
        fail_msg("load %s: %s", name, err.msg);
    return a;
}

static void load_sets_fields_and_unique_uids(void **state)
{
    (void)state;
    hs_adapter *a = load("x", g_x, 0.75f), *b = load("x-again", g_x, 1.0f);
    assert_string_equal(hs_adapter_name(a), "x");
    assert_string_equal(hs_adapter_path(a), g_x);
    assert_true(hs_adapter_default_scale(a) == 0.75f);
    assert_non_null(hs_adapter_lora(a));
    assert_int_equal(hs_adapter_refs(a), 1);
    /* the same file twice: two adapters, two uids */
    assert_true(hs_adapter_uid(a) != hs_adapter_uid(b));
    const uint64_t ua = hs_adapter_uid(a), ub = hs_adapter_uid(b);
    assert_ptr_equal(hs_adapter_ref(a), a);
    assert_int_equal(hs_adapter_refs(a), 2);
    hs_adapter_unref(a);
    assert_int_equal(hs_adapter_refs(a), 1);
    hs_adapter_unref(a);
    hs_adapter_unref(b);
    hs_adapter_unref(NULL);
    /* a uid is never handed out again, even where the memory is reused */
    hs_adapter *c = load("x", g_x, 1.0f);
    assert_true(hs_adapter_uid(c) != ua && hs_adapter_uid(c) != ub);
    hs_adapter_unref(c);
}

static void load_refuses_bad_input(void **state)
{
    (void)state;
    hs_adapter *a = (hs_adapter *)1;
    hs_err err = {0};
    assert_int_not_equal(hs_adapter_load("o", g_other, g_m, 1.0f, &a, &err), HS_OK); /* hs_lora_load's code */
    assert_null(a);
    assert_non_null(strstr(err.msg, "another base model"));
    assert_int_equal(hs_adapter_load("", g_x, g_m, 1.0f, &a, &err), HS_EINVAL);
    assert_int_equal(hs_adapter_load("x", g_x, g_m, NAN, &a, &err), HS_EINVAL);
    assert_int_equal(hs_adapter_load("x", g_x, g_m, INFINITY, &a, &err), HS_EINVAL);
    char *missing = hs_test_tmpfile("no-such-adapter.gguf");
    assert_int_not_equal(hs_adapter_load("x", missing, g_m, 1.0f, &a, &err), HS_OK);
    assert_null(a);
    free(missing);
}

static void registry_add_get_list(void **state)
{
    (void)state;
    hs_adapter_reg *r;
    hs_err err = {0};
    assert_int_equal(hs_adapter_reg_create(&r, &err), HS_OK);
    hs_adapter *x = load("x", g_x, 1.0f), *y = load("y", g_y, 0.5f), *x2 = load("x", g_y, 1.0f);
    assert_int_equal(hs_adapter_reg_add(r, y, &err), HS_OK);
    assert_int_equal(hs_adapter_reg_add(r, x, &err), HS_OK);
    assert_int_equal(hs_adapter_refs(x), 2);
    /* a taken name is refused and takes no reference */
    assert_int_equal(hs_adapter_reg_add(r, x2, &err), HS_EINVAL);
    assert_non_null(strstr(err.msg, "taken"));
    assert_int_equal(hs_adapter_refs(x2), 1);
    hs_adapter_unref(x2);

    assert_null(hs_adapter_reg_get(r, "nope"));
    assert_null(hs_adapter_reg_get(r, NULL));
    hs_adapter *g = hs_adapter_reg_get(r, "x");
    assert_ptr_equal(g, x);
    assert_int_equal(hs_adapter_refs(x), 3);
    hs_adapter_unref(g);

    hs_adapter **list;
    int n;
    assert_int_equal(hs_adapter_reg_list(r, &list, &n, &err), HS_OK);
    assert_int_equal(n, 2);
    assert_ptr_equal(list[0], y); /* the order they were added */
    assert_ptr_equal(list[1], x);
    for (int i = 0; i < n; i++)
        hs_adapter_unref(list[i]);
    hs_free(list);

    /* freeing the registry drops its references only */
    hs_adapter_reg_free(r);
    assert_int_equal(hs_adapter_refs(x), 1);
    assert_int_equal(hs_adapter_refs(y), 1);
    hs_adapter_unref(x);
    hs_adapter_unref(y);
    hs_adapter_reg_free(NULL);
}

struct holder {
    hs_adapter *a;
    int delay_ms;
};

static void *drop_later(void *arg)
{
    struct holder *h = arg;
    const struct timespec ts = {.tv_sec = h->delay_ms / 1000,
                                .tv_nsec = (long)(h->delay_ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    hs_adapter_unref(h->a);
    return NULL;
}

static void registry_remove(void **state)
{
    (void)state;
    hs_adapter_reg *r;
    hs_err err = {0};
    int left = -1;
    assert_int_equal(hs_adapter_reg_create(&r, &err), HS_OK);
    hs_adapter *x = load("x", g_x, 1.0f), *y = load("y", g_y, 1.0f);
    assert_int_equal(hs_adapter_reg_add(r, x, &err), HS_OK);
    assert_int_equal(hs_adapter_reg_add(r, y, &err), HS_OK);
    hs_adapter_unref(x); /* the registry's reference is the only one now */
    assert_int_equal(hs_adapter_reg_remove(r, "nope", 0, &left, &err), HS_ENOTFOUND);

    /* no users: removed and freed at once (the sanitizer sees any leak) */
    assert_int_equal(hs_adapter_reg_remove(r, "x", 0, &left, &err), HS_OK);
    assert_int_equal(left, 0);
    assert_null(hs_adapter_reg_get(r, "x"));
    assert_int_equal(hs_adapter_reg_remove(r, "x", 0, &left, &err), HS_ENOTFOUND);

    /* a user that lets go while remove waits: HS_OK once it has */
    hs_adapter *u = hs_adapter_reg_get(r, "y");
    hs_adapter_unref(y); /* now the registry's and u's */
    struct holder h = {.a = u, .delay_ms = 100};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, drop_later, &h), 0);
    assert_int_equal(hs_adapter_reg_remove(r, "y", 10000, &left, &err), HS_OK);
    assert_int_equal(left, 0);
    pthread_join(t, NULL);

    /* a user that stays past the wait: HS_ETIMEDOUT, off the registry at
     * once, alive for the user, freed by its last unref */
    hs_adapter *z = load("z", g_y, 1.0f);
    assert_int_equal(hs_adapter_reg_add(r, z, &err), HS_OK);
    assert_int_equal(hs_adapter_reg_remove(r, "z", 50, &left, &err), HS_ETIMEDOUT);
    assert_int_equal(left, 1);
    assert_null(hs_adapter_reg_get(r, "z"));
    assert_int_equal(hs_adapter_refs(z), 1);
    assert_non_null(hs_adapter_lora(z));
    hs_adapter_unref(z);

    hs_adapter **list;
    int n;
    assert_int_equal(hs_adapter_reg_list(r, &list, &n, &err), HS_OK);
    assert_int_equal(n, 0);
    hs_free(list);
    hs_adapter_reg_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(load_sets_fields_and_unique_uids),
        cmocka_unit_test(load_refuses_bad_input),
        cmocka_unit_test(registry_add_get_list),
        cmocka_unit_test(registry_remove),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
