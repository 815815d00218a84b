/* Expert agents as plain data: initialisation, copying, freeing, and the
 * user message a scenario becomes. */
#include "engine/agent.h"

#include "base/mem.h"

#include <math.h>
#include <string.h>

void hs_agent_init(struct hs_agent *a)
{
    memset(a, 0, sizeof(*a));
    a->temperature = NAN;
    a->top_p = NAN;
    a->min_p = NAN;
    a->top_k = -1;
    a->max_tokens = -1;
}

void hs_agent_free(struct hs_agent *a)
{
    if (!a)
        return;
    hs_free(a->id);
    hs_free(a->name);
    hs_free(a->role);
    hs_free(a->expertise);
    hs_free(a->system_prompt);
    hs_free(a->model);
    for (int i = 0; i < a->n_loras; i++)
        hs_free(a->loras[i].adapter);
    hs_free(a->loras);
    hs_free(a->schema);
    hs_free(a->file);
    hs_agent_init(a);
}

/* A copy of an optional string: false only when the allocation failed. */
static bool dup_opt(char **dst, const char *src)
{
    *dst = src ? hs_strdup(src) : NULL;
    return !src || *dst;
}

int hs_agent_copy(struct hs_agent *dst, const struct hs_agent *src)
{
    *dst = *src;
    dst->loras = NULL;
    dst->n_loras = 0;
    bool ok = dup_opt(&dst->id, src->id) & dup_opt(&dst->name, src->name) & dup_opt(&dst->role, src->role) &
              dup_opt(&dst->expertise, src->expertise) & dup_opt(&dst->system_prompt, src->system_prompt) &
              dup_opt(&dst->model, src->model) & dup_opt(&dst->schema, src->schema) &
              dup_opt(&dst->file, src->file);
    if (ok && src->n_loras > 0) {
        dst->loras = hs_calloc((size_t)src->n_loras, sizeof(*dst->loras));
        ok = dst->loras != NULL;
        for (int i = 0; ok && i < src->n_loras; i++) {
            dst->loras[i].scale = src->loras[i].scale;
            ok = dup_opt(&dst->loras[i].adapter, src->loras[i].adapter);
            dst->n_loras = i + 1;
        }
    }
    if (!ok) {
        hs_agent_free(dst);
        return HS_ENOMEM;
    }
    return HS_OK;
}
