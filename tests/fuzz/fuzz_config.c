/* libFuzzer target for the server's YAML configuration: any bytes give a
 * configuration or an error naming the place, never a crash or a leak; what
 * parses goes through the checks and the -m flag path. */
#include "server/config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct hs_serve_config c;
    hs_serve_config_default(&c);
    hs_err err;
    hs_err_clear(&err);
    int rc = hs_serve_config_parse(&c, (const char *)data, size, "fuzz.yaml", &err);
    if (rc != HS_OK) {
        if (!err.msg[0] || strncmp(err.msg, "fuzz.yaml", 9) != 0)
            abort(); /* every error names the file */
    } else {
        hs_serve_config_check(&c, &err);
        for (int i = 0; i < c.n_models; i++)
            if (!c.models[i].name || (!c.models[i].path && !c.models[i].upstream_url))
                abort(); /* parse-time checks hold */
        if (hs_serve_config_set_model(&c, "default", "x.gguf", &err) != HS_OK)
            abort();
    }
    hs_serve_config_free(&c);
    return 0;
}
