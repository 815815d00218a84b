/* Named LoRA adapters loaded against one base model, shared by every request
 * that uses them, and the registry a server looks them up in.
 *
 * An hs_adapter is reference counted: the registry holds one reference, each
 * job that uses it another (taken at hs_sched_submit, dropped when the job
 * ends), and the scheduler's slot one while it is set on the context. It is
 * freed when the last reference goes, so unloading never pulls an adapter
 * from under a running answer. Thread-safe. */
#ifndef HS_ENGINE_ADAPTER_H
#define HS_ENGINE_ADAPTER_H

#include "base/err.h"
#include "model/lora.h"
#include "model/model.h"

#include <stdint.h>

typedef struct hs_adapter hs_adapter;

/* Loads path (a GGUF LoRA) against base (hs_lora_load's checks: architecture,
 * every adapted tensor present, shapes; "adapter for another base model"
 * otherwise). default_scale is what a request that names no scale gets.
 * The result holds one reference. */
int hs_adapter_load(const char *name, const char *path, const hs_model *base, float default_scale,
                    hs_adapter **out, hs_err *err);
hs_adapter *hs_adapter_ref(hs_adapter *a); /* returns a */
void hs_adapter_unref(hs_adapter *a);      /* NULL is fine */

const char *hs_adapter_name(const hs_adapter *a);
const char *hs_adapter_path(const hs_adapter *a);
float hs_adapter_default_scale(const hs_adapter *a);
const struct hs_lora *hs_adapter_lora(const hs_adapter *a);
/* Unique for the life of the process (never reused after a free): what the
 * prefix cache keys a cached prompt's adapter set by. */
uint64_t hs_adapter_uid(const hs_adapter *a);
/* References held now, the registry's included. */
int hs_adapter_refs(const hs_adapter *a);

/* The registry: name -> adapter. */
typedef struct hs_adapter_reg hs_adapter_reg;

int hs_adapter_reg_create(hs_adapter_reg **out, hs_err *err);
/* Drops the registry's references (adapters still used stay alive). */
void hs_adapter_reg_free(hs_adapter_reg *r);
/* Adds a, taking a new reference. HS_EINVAL when the name is taken. */
int hs_adapter_reg_add(hs_adapter_reg *r, hs_adapter *a, hs_err *err);
/* A new reference to the adapter named name, or NULL. */
hs_adapter *hs_adapter_reg_get(hs_adapter_reg *r, const char *name);
/* New references to every adapter, in the order they were added; *out is a
 * new array (hs_free), each element to be unref'd. */
int hs_adapter_reg_list(hs_adapter_reg *r, hs_adapter ***out, int *n, hs_err *err);
/* Takes the adapter off the registry at once (new requests no longer find
 * it), then waits up to wait_ms (< 0: forever) for the requests using it to
 * finish. Returns HS_OK when it is freed, HS_ETIMEDOUT when users remain
 * (*users_left says how many; it is freed when the last one ends), HS_ENOTFOUND
 * for an unknown name. */
int hs_adapter_reg_remove(hs_adapter_reg *r, const char *name, int wait_ms, int *users_left, hs_err *err);

#endif
