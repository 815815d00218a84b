/* Named LoRA adapters and their registry (adapter.h).
 *
 * An adapter's reference count is guarded by its own mutex, and every drop
 * broadcasts its condition variable: hs_adapter_reg_remove holds a
 * reference of its own while it waits there for the others to go, so the
 * adapter cannot be freed under the waiter; when they are gone (only its
 * reference is left) it drops that one, and the adapter is freed then and
 * there. If the wait runs out, dropping its reference leaves the adapter to
 * whichever user ends last.
 *
 * Uids come from one process-wide counter that only grows: a key the prefix
 * cache remembers for a freed adapter can never match a new one, even one
 * loaded from the same file at the same address. */
#include "engine/adapter.h"

#include "base/log.h"
#include "base/mem.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

struct hs_adapter {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* a reference was dropped */
    int refs;          /* guarded by mu */
    char *name, *path;
    float default_scale;
    uint64_t uid;
    hs_lora *lora;
};

static atomic_uint_fast64_t g_next_uid = 1;

/* The seven projections of a block, the only tensors a context applies an
 * adapter to at run time (lora_ctx.c): checked here so that an adapter the
 * scheduler could not use fails when it is loaded, not at each request. */
static const char *const RUNTIME_PROJ[] = {"attn_q.weight",      "attn_k.weight",   "attn_v.weight",
                                           "attn_output.weight", "ffn_gate.weight", "ffn_up.weight",
                                           "ffn_down.weight"};

static bool runtime_name(const char *name)
{
    if (strncmp(name, "blk.", 4))
        return false;
    const char *p = name + 4;
    int digits = 0;
    while (*p >= '0' && *p <= '9' && digits < 7) {
        p++;
        digits++;
    }
    if (!digits || *p != '.')
        return false;
    for (size_t i = 0; i < sizeof RUNTIME_PROJ / sizeof *RUNTIME_PROJ; i++)
        if (!strcmp(p + 1, RUNTIME_PROJ[i]))
            return true;
    return false;
}

int hs_adapter_load(const char *name, const char *path, const hs_model *base, float default_scale,
                    hs_adapter **out, hs_err *err)
{
    *out = NULL;
    if (!name || !*name)
        return hs_err_set(err, HS_EINVAL, "adapter: empty name");
    if (!path || !base)
        return hs_err_set(err, HS_EINVAL, "adapter '%s': no path or base model", name);
    if (!isfinite(default_scale))
        return hs_err_set(err, HS_EINVAL, "adapter '%s': scale is not a finite number", name);
    hs_lora *l;
    int rc = hs_lora_load(path, hs_model_gguf(base), &l, err);
    if (rc)
        return rc;
    for (int64_t i = 0; i < hs_lora_n_pairs(l); i++) {
        const char *tn = hs_lora_pair_at(l, i)->name;
        if (!runtime_name(tn)) {
            hs_lora_free(l);
            return hs_err_set(
                err, HS_EUNSUPPORTED,
                "adapter '%s' (%s): tensor '%s' cannot be applied at run time (merge it instead)", name, path,
                tn);
        }
    }
    hs_adapter *a = hs_calloc(1, sizeof *a);
    if (!a || !(a->name = hs_strdup(name)) || !(a->path = hs_strdup(path))) {
        if (a)
            hs_free(a->name);
        hs_free(a);
        hs_lora_free(l);
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    }
    pthread_mutex_init(&a->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* remove's deadline */
    pthread_cond_init(&a->cv, &ca);
    pthread_condattr_destroy(&ca);
    a->refs = 1;
    a->default_scale = default_scale;
    a->uid = atomic_fetch_add(&g_next_uid, 1);
    a->lora = l;
    hs_log_info("adapter.load", "name=%s path=%s pairs=%lld uid=%llu", name, path,
                (long long)hs_lora_n_pairs(l), (unsigned long long)a->uid);
    *out = a;
    return HS_OK;
}

hs_adapter *hs_adapter_ref(hs_adapter *a)
{
    pthread_mutex_lock(&a->mu);
    a->refs++;
    pthread_mutex_unlock(&a->mu);
    return a;
}

void hs_adapter_unref(hs_adapter *a)
{
    if (!a)
        return;
    pthread_mutex_lock(&a->mu);
    const bool last = --a->refs == 0;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
    if (!last)
        return;
    hs_log_info("adapter.free", "name=%s uid=%llu", a->name, (unsigned long long)a->uid);
    hs_lora_free(a->lora);
    hs_free(a->name);
    hs_free(a->path);
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
    hs_free(a);
}

const char *hs_adapter_name(const hs_adapter *a)
{
    return a->name;
}
const char *hs_adapter_path(const hs_adapter *a)
{
    return a->path;
}
float hs_adapter_default_scale(const hs_adapter *a)
{
    return a->default_scale;
}
const struct hs_lora *hs_adapter_lora(const hs_adapter *a)
{
    return a->lora;
}
uint64_t hs_adapter_uid(const hs_adapter *a)
{
    return a->uid;
}

int hs_adapter_refs(const hs_adapter *a)
{
    hs_adapter *m = (hs_adapter *)a; /* the lock, not the adapter, changes */
    pthread_mutex_lock(&m->mu);
    const int n = m->refs;
    pthread_mutex_unlock(&m->mu);
    return n;
}

/* ---- the registry ---- */

struct hs_adapter_reg {
    pthread_mutex_t mu;
    hs_adapter **a; /* in the order they were added; each holds a reference */
    int n, cap;
};

int hs_adapter_reg_create(hs_adapter_reg **out, hs_err *err)
{
    *out = NULL;
    hs_adapter_reg *r = hs_calloc(1, sizeof *r);
    if (!r)
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    pthread_mutex_init(&r->mu, NULL);
    *out = r;
    return HS_OK;
}

void hs_adapter_reg_free(hs_adapter_reg *r)
{
    if (!r)
        return;
    for (int i = 0; i < r->n; i++)
        hs_adapter_unref(r->a[i]);
    hs_free(r->a);
    pthread_mutex_destroy(&r->mu);
    hs_free(r);
}

/* Index of name in r, or -1 (under r->mu). */
static int find_locked(const hs_adapter_reg *r, const char *name)
{
    for (int i = 0; i < r->n; i++)
        if (!strcmp(r->a[i]->name, name))
            return i;
    return -1;
}

int hs_adapter_reg_add(hs_adapter_reg *r, hs_adapter *a, hs_err *err)
{
    pthread_mutex_lock(&r->mu);
    int rc = HS_OK;
    if (find_locked(r, a->name) >= 0) {
        rc = hs_err_set(err, HS_EINVAL, "adapter '%s': the name is taken", a->name);
    } else if (r->n == r->cap) {
        const int cap = r->cap ? 2 * r->cap : 8;
        hs_adapter **na = hs_realloc_array(r->a, (size_t)cap, sizeof *na);
        if (!na)
            rc = hs_err_set(err, HS_ENOMEM, "out of memory");
        else {
            r->a = na;
            r->cap = cap;
        }
    }
    if (!rc)
        r->a[r->n++] = hs_adapter_ref(a);
    pthread_mutex_unlock(&r->mu);
    return rc;
}

hs_adapter *hs_adapter_reg_get(hs_adapter_reg *r, const char *name)
{
    if (!name)
        return NULL;
    pthread_mutex_lock(&r->mu);
    const int i = find_locked(r, name);
    hs_adapter *a = i >= 0 ? hs_adapter_ref(r->a[i]) : NULL;
    pthread_mutex_unlock(&r->mu);
    return a;
}

int hs_adapter_reg_list(hs_adapter_reg *r, hs_adapter ***out, int *n, hs_err *err)
{
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&r->mu);
    hs_adapter **v = hs_calloc(r->n > 0 ? (size_t)r->n : 1, sizeof *v);
    if (!v) {
        pthread_mutex_unlock(&r->mu);
        return hs_err_set(err, HS_ENOMEM, "out of memory");
    }
    for (int i = 0; i < r->n; i++)
        v[i] = hs_adapter_ref(r->a[i]);
    *n = r->n;
    pthread_mutex_unlock(&r->mu);
    *out = v;
    return HS_OK;
}

int hs_adapter_reg_remove(hs_adapter_reg *r, const char *name, int wait_ms, int *users_left, hs_err *err)
{
    if (users_left)
        *users_left = 0;
    if (!name)
        return hs_err_set(err, HS_EINVAL, "adapter: no name");
    pthread_mutex_lock(&r->mu);
    const int i = find_locked(r, name);
    if (i < 0) {
        pthread_mutex_unlock(&r->mu);
        return hs_err_set(err, HS_ENOTFOUND, "adapter '%s' is not loaded", name);
    }
    /* The registry's reference becomes the waiter's own. */
    hs_adapter *a = r->a[i];
    memmove(&r->a[i], &r->a[i + 1], (size_t)(r->n - i - 1) * sizeof *r->a);
    r->n--;
    pthread_mutex_unlock(&r->mu);

    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    if (wait_ms > 0) {
        dl.tv_sec += wait_ms / 1000;
        dl.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
        if (dl.tv_nsec >= 1000000000L) {
            dl.tv_sec++;
            dl.tv_nsec -= 1000000000L;
        }
    }
    pthread_mutex_lock(&a->mu);
    while (a->refs > 1 && wait_ms != 0) {
        const int w =
            wait_ms < 0 ? pthread_cond_wait(&a->cv, &a->mu) : pthread_cond_timedwait(&a->cv, &a->mu, &dl);
        if (w == ETIMEDOUT)
            break;
    }
    const int left = a->refs - 1;
    pthread_mutex_unlock(&a->mu);
    hs_log_info("adapter.remove", "name=%s uid=%llu users_left=%d", name, (unsigned long long)a->uid, left);
    if (users_left)
        *users_left = left;
    int rc = HS_OK;
    if (left > 0)
        rc = hs_err_set(err, HS_ETIMEDOUT,
                        "adapter '%s': %d reference%s still held; it is freed when the last ends", name, left,
                        left == 1 ? "" : "s");
    /* The name is logged above: after this drop a may be gone. */
    hs_adapter_unref(a);
    return rc;
}
