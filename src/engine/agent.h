/* An expert agent: a persona (system prompt) over a base model, optionally
 * with LoRA adapters, default sampling and a JSON schema for structured
 * assessments. Plain data: the server's config fills it from YAML
 * (server/config.h); the server answers as an agent, and `hestia assess`
 * (engine/assess.h) sends a scenario to every agent against any server. */
#ifndef HS_ENGINE_AGENT_H
#define HS_ENGINE_AGENT_H

#include "base/buf.h"
#include "base/err.h"

#include <stdbool.h>
#include <stddef.h>

struct hs_agent_lora {
    char *adapter; /* an adapter's name (config `adapters`) */
    float scale;   /* NAN = the adapter's default scale */
};

struct hs_agent {
    char *id;            /* what clients put in "model"; unique among agents, adapters and models */
    char *name;          /* display name, e.g. "Fire Commander (Hellenic Fire Service)" */
    char *role;          /* one line: what the agent is responsible for */
    char *expertise;     /* one line: what it knows */
    char *system_prompt; /* the persona */
    char *model;         /* the base model entry; NULL = the first model */
    struct hs_agent_lora *loras;
    int n_loras;
    /* Default sampling; a request's own values win. NAN / -1 = unset. */
    float temperature, top_p, min_p;
    int top_k, max_tokens;
    char *schema; /* JSON Schema text for structured answers; NULL = free text */
    char *file;   /* where the agent is declared, for messages */
    int line;
};

/* Unset sampling, everything else NULL / 0. */
void hs_agent_init(struct hs_agent *a);
void hs_agent_free(struct hs_agent *a); /* the fields; not a itself */
/* Deep copy of src into dst (dst is overwritten, not freed first). */
int hs_agent_copy(struct hs_agent *dst, const struct hs_agent *src);

/* The user message an agent receives for a scenario: the scenario text as
 * is, or, for a JSON scenario (an object), its fields laid out readably
 * (title, location, time, description, then the rest, nested values as
 * indented JSON). Appends to out. HS_EINVAL for an empty scenario. */
int hs_agent_scenario_text(hs_buf *out, const char *scenario, size_t len, hs_err *err);

#endif
