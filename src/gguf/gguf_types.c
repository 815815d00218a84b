#include "gguf/gguf_types.h"

#include <strings.h>

/* Block layouts are those of ggml's ggml-common.h; K types use 256-element
 * super-blocks. */
static const struct hs_type_size k_sizes[HS_TYPE_COUNT] = {
    [HS_TYPE_F32] = {"f32", 1, 4},
    [HS_TYPE_F16] = {"f16", 1, 2},
    [HS_TYPE_Q4_0] = {"q4_0", 32, 18},
    [HS_TYPE_Q4_1] = {"q4_1", 32, 20},
    [HS_TYPE_Q5_0] = {"q5_0", 32, 22},
    [HS_TYPE_Q5_1] = {"q5_1", 32, 24},
    [HS_TYPE_Q8_0] = {"q8_0", 32, 34},
    [HS_TYPE_Q8_1] = {"q8_1", 32, 36},
    [HS_TYPE_Q2_K] = {"q2_K", 256, 84},
    [HS_TYPE_Q3_K] = {"q3_K", 256, 110},
    [HS_TYPE_Q4_K] = {"q4_K", 256, 144},
    [HS_TYPE_Q5_K] = {"q5_K", 256, 176},
    [HS_TYPE_Q6_K] = {"q6_K", 256, 210},
    [HS_TYPE_Q8_K] = {"q8_K", 256, 292},
    [HS_TYPE_IQ2_XXS] = {"iq2_xxs", 256, 66},
    [HS_TYPE_IQ2_XS] = {"iq2_xs", 256, 74},
    [HS_TYPE_IQ3_XXS] = {"iq3_xxs", 256, 98},
    [HS_TYPE_IQ1_S] = {"iq1_s", 256, 50},
    [HS_TYPE_IQ4_NL] = {"iq4_nl", 32, 18},
    [HS_TYPE_IQ3_S] = {"iq3_s", 256, 110},
    [HS_TYPE_IQ2_S] = {"iq2_s", 256, 82},
    [HS_TYPE_IQ4_XS] = {"iq4_xs", 256, 136},
    [HS_TYPE_I8] = {"i8", 1, 1},
    [HS_TYPE_I16] = {"i16", 1, 2},
    [HS_TYPE_I32] = {"i32", 1, 4},
    [HS_TYPE_I64] = {"i64", 1, 8},
    [HS_TYPE_F64] = {"f64", 1, 8},
    [HS_TYPE_IQ1_M] = {"iq1_m", 256, 56},
    [HS_TYPE_BF16] = {"bf16", 1, 2},
    [HS_TYPE_TQ1_0] = {"tq1_0", 256, 54},
    [HS_TYPE_TQ2_0] = {"tq2_0", 256, 66},
    [HS_TYPE_MXFP4] = {"mxfp4", 32, 17},
};

const struct hs_type_size *hs_type_size(uint32_t type) {
    if (type >= HS_TYPE_COUNT || k_sizes[type].blck == 0)
        return NULL;
    return &k_sizes[type];
}

size_t hs_type_row_bytes(uint32_t type, int64_t n) {
    const struct hs_type_size *t = hs_type_size(type);
    if (!t || n < 0 || n % t->blck)
        return 0;
    return (size_t)(n / t->blck) * t->bytes;
}

int hs_type_from_name(const char *name) {
    for (int i = 0; i < HS_TYPE_COUNT; i++)
        if (k_sizes[i].blck && !strcasecmp(k_sizes[i].name, name))
            return i;
    return -1;
}
