/* libFuzzer target for the server's YAML configuration: any bytes give a
 * configuration or an error naming the place, never a crash or a leak; what
 * parses goes through the checks and the -m flag path. The same bytes are
 * also read as an agents file (adapters, agents, schemas), over a
 * configuration that already holds a model, an adapter and an agent, so
 * that names collide and agents refer to what exists. */
#include "server/config.h"

#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char base_config[] = "models:\n  - {name: default, alias: m, path: m.gguf}\n"
                                  "adapters:\n  - {name: lora, path: lora.gguf}\n"
                                  "agents:\n  - {id: fire-commander, system_prompt: p, adapters: [lora]}\n";

/* What a successful parse promises about every adapter and agent. */
static void check_entries(const struct hs_serve_config *c)
{
    for (int i = 0; i < c->n_adapters; i++) {
        const struct hs_adapter_entry *a = &c->adapters[i];
        if (!a->name || !a->path || !a->file || a->line < 1 || !(a->scale >= -10 && a->scale <= 10))
            abort();
    }
    for (int i = 0; i < c->n_agents; i++) {
        const struct hs_agent *a = &c->agents[i];
        if (!a->id || !a->name || !a->system_prompt || !a->file || a->line < 1)
            abort();
        if (!isnan(a->temperature) && !(a->temperature >= 0 && a->temperature <= 2))
            abort();
        for (int j = 0; j < a->n_loras; j++)
            if (!a->loras[j].adapter)
                abort();
        if (a->schema) { /* always a JSON object */
            json_t *s = json_loads(a->schema, 0, NULL);
            if (!json_is_object(s))
                abort();
            json_decref(s);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct hs_serve_config c;
    hs_serve_config_default(&c);
    hs_err err;
    hs_err_clear(&err);
    int rc = hs_serve_config_parse(&c, (const char *)data, size, "fuzz.yaml", &err);
    if (rc != HS_OK) {
        /* every error names the file (or, for agents_file, the one it names) */
        if (!err.msg[0])
            abort();
    } else {
        hs_serve_config_check(&c, &err);
        for (int i = 0; i < c.n_models; i++)
            if (!c.models[i].name || (!c.models[i].path && !c.models[i].upstream_url))
                abort(); /* parse-time checks hold */
        check_entries(&c);
        if (hs_serve_config_set_model(&c, "default", "x.gguf", &err) != HS_OK)
            abort();
    }
    hs_serve_config_free(&c);

    hs_serve_config_default(&c);
    if (hs_serve_config_parse(&c, base_config, sizeof(base_config) - 1, "base.yaml", &err) != HS_OK)
        abort();
    hs_err_clear(&err);
    rc = hs_serve_config_parse_agents(&c, (const char *)data, size, "fuzz-agents.yaml", &err);
    if (rc != HS_OK) {
        if (strncmp(err.msg, "fuzz-agents.yaml", 16) != 0)
            abort(); /* every error names the file */
        if (c.n_agents != 1 || c.n_adapters != 1)
            abort(); /* a failed file adds nothing */
    } else {
        check_entries(&c);
        hs_serve_config_check(&c, &err);
    }
    hs_serve_config_free(&c);
    return 0;
}
