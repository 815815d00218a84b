/* libFuzzer target for experiment definitions (ops/experiment): any bytes,
 * read as the JSON body of POST /admin/experiments or as a YAML
 * configuration's `experiments:` list, give a definition that passes
 * hs_experiment_check or an error naming the place, never a crash or a
 * leak. A definition that reads is written back with hs_experiment_to_json
 * and must read again into the same text (what the store keeps survives a
 * restart). */
#include "base/mem.h"
#include "base/yaml.h"
#include "ops/experiment.h"

#include <libfyaml.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void check(const struct hs_experiment *e)
{
    if (hs_experiment_check(e, NULL) != HS_OK)
        abort();
    char *t1 = hs_experiment_to_json_text(e);
    struct hs_experiment back;
    hs_err err;
    if (!t1 || hs_experiment_from_json_text(&back, t1, &err) != HS_OK)
        abort();
    char *t2 = hs_experiment_to_json_text(&back);
    if (!t2 || strcmp(t1, t2) != 0)
        abort();
    hs_free(t1);
    hs_free(t2);
    struct hs_exp_state st;
    hs_exp_state_init(&st, e, 0);
    if (!(st.weight_b >= 0 && st.weight_b <= 1))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 16384)
        return 0;
    char *text = hs_strndup((const char *)data, size);
    if (!text)
        return 0;
    struct hs_experiment e;
    hs_err err;
    int rc = hs_experiment_from_json_text(&e, text, &err);
    if (rc == HS_OK)
        check(&e);
    else if (rc != HS_EINVAL || strncmp(err.msg, "experiment", 10) != 0)
        abort();

    hs_yaml y = {"fuzz.yaml", text, strlen(text), &err, HS_YAML_SAY_CONFIG};
    struct fy_document *doc = NULL;
    if (hs_yaml_load(&doc, &y) == HS_OK && doc) {
        struct fy_node *root = fy_document_root(doc);
        struct fy_node *list = root && fy_node_is_mapping(root)
                                   ? fy_node_mapping_lookup_by_string(root, "experiments", 11)
                                   : NULL;
        if (list && fy_node_is_sequence(list)) {
            void *it = NULL;
            struct fy_node *item;
            int i = 0;
            while ((item = fy_node_sequence_iterate(list, &it))) {
                rc = hs_experiment_parse_node(&e, item, "fuzz.yaml", i++, &err);
                if (rc == HS_OK)
                    check(&e);
                else if (rc != HS_EINVAL || strncmp(err.msg, "fuzz.yaml", 9) != 0)
                    abort();
            }
        }
        fy_document_destroy(doc);
    }
    hs_free(text);
    return 0;
}
