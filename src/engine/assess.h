/* One scenario to many expert agents at once against any OpenAI-compatible
 * server (hs_client): what `hestia assess` runs. Each agent's request is its
 * system prompt plus the scenario (hs_agent_scenario_text), with its default
 * sampling unless the options say otherwise and its schema as response_format
 * json_schema; all are in flight together (at most `parallel`). */
#ifndef HS_ENGINE_ASSESS_H
#define HS_ENGINE_ASSESS_H

#include "base/err.h"
#include "engine/agent.h"
#include "engine/client.h"

struct hs_assess_opts {
    const char *model; /* sent as "model" for every agent; NULL = each agent's id when the server lists it
                          (a hestia serving these agents), else the server's first model */
    int parallel;      /* requests in flight at once; default (0) = all */
    int max_tokens;    /* <= 0: the agent's default, else 512 */
    float temperature; /* NAN: the agent's default */
    long long seed;    /* < 0: not sent */
};
void hs_assess_opts_default(struct hs_assess_opts *o);

struct hs_assess_result {
    const struct hs_agent *agent; /* borrowed */
    char *model;                  /* the model name sent */
    int rc;                       /* HS_OK or the error */
    char *error;                  /* the message when rc != HS_OK */
    struct hs_chat_resp resp;     /* content, tokens, latencies */
    bool schema_valid;            /* the agent has a schema and the answer validates under it */
};

/* Runs every agent; results[i] is agents[i]'s (the array is allocated with
 * n entries; free with hs_assess_results_free). Returns HS_OK when the run
 * happened, even if some agents failed (their rc says so); an error only for
 * what stops the whole run (no agents, a client that cannot be created). */
int hs_assess_run(hs_client *c, const struct hs_agent *agents, int n, const char *scenario, size_t len,
                  const struct hs_assess_opts *o, struct hs_assess_result **results, hs_err *err);
void hs_assess_results_free(struct hs_assess_result *r, int n);

/* The JSON document in an answer: content without surrounding whitespace
 * and without a ```json ... ``` fence around it (servers that do not
 * enforce response_format often add one). Points into content; *len is its
 * length. What schema_valid checks, and what `hestia assess --json` parses. */
const char *hs_assess_json_span(const char *content, size_t *len);

#endif
