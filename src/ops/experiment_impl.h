/* Shared by experiment_json.c and experiment_yaml.c only: the one reader of
 * a definition, over a jansson tree. The YAML reader turns its mapping into
 * such a tree (every scalar a string, "lenient") and records the line of
 * each key, so both forms are checked by the same code and the YAML form's
 * messages still carry FILE:LINE. */
#ifndef HS_OPS_EXPERIMENT_IMPL_H
#define HS_OPS_EXPERIMENT_IMPL_H

#include "ops/experiment.h"

#include <jansson.h>

struct hs_exp_line {
    char path[96]; /* "canary[1].after" */
    int line;
};

struct hs_exp_src {
    const char *file; /* YAML: the configuration's name; NULL for JSON */
    int index;        /* YAML: the item's index in `experiments:` */
    int item_line;    /* YAML: the item's first line */
    bool lenient;     /* scalars are strings that may hold numbers (YAML) */
    struct hs_exp_line *lines;
    int n_lines;
    hs_err *err;
};

int hs_exp_read(struct hs_experiment *e, const json_t *obj, const struct hs_exp_src *src);

#endif
