#include "requant.h"

#include "test_util.h"

#include "base/err.h"
#include "gguf/gguf.h"
#include "tensor/qtype.h"

#include <stdlib.h>
#include <string.h>

/* Copies src to dst with every 2-D tensor whose rows fit the type's blocks
 * quantized by the reference quantizer (the one that writes model files). */
void test_requantize(const char *src, const char *dst, int type) {
    hs_gguf *g;
    hs_err err = {0};
    assert_int_equal(hs_gguf_open(src, &g, &err), HS_OK);
    hs_gguf_writer *w;
    assert_int_equal(hs_gguf_writer_open(dst, &w, &err), HS_OK);
    for (int64_t i = 0; i < hs_gguf_n_kv(g); i++)
        assert_int_equal(hs_gguf_w_kv_from(w, g, hs_gguf_kv_at(g, i)), HS_OK);
    const struct hs_qtype *qt = hs_qtype(type);
    assert_non_null(qt);
    int64_t n_t = hs_gguf_n_tensors(g);
    int *types = calloc((size_t)n_t, sizeof *types);
    for (int64_t i = 0; i < n_t; i++) {
        const struct hs_gguf_tensor *t = hs_gguf_tensor_at(g, i);
        assert_int_equal(t->type, HS_TYPE_F32);
        types[i] = t->n_dims == 2 && t->ne[0] % qt->blck == 0 ? type : HS_TYPE_F32;
        assert_int_equal(hs_gguf_w_tensor(w, t->name, (uint32_t)types[i], t->n_dims, t->ne), HS_OK);
    }
    assert_int_equal(hs_gguf_w_begin_data(w, &err), HS_OK);
    for (int64_t i = 0; i < n_t; i++) {
        const struct hs_gguf_tensor *t = hs_gguf_tensor_at(g, i);
        if (types[i] == HS_TYPE_F32) {
            assert_int_equal(hs_gguf_w_data(w, t->data, t->nbytes, &err), HS_OK);
            continue;
        }
        const size_t row_bytes = hs_qtype_row_bytes(type, t->ne[0]);
        const int64_t rows = (int64_t)(t->nbytes / sizeof(float)) / t->ne[0];
        void *q = malloc(row_bytes);
        float *row = malloc((size_t)t->ne[0] * sizeof *row);
        for (int64_t r = 0; r < rows; r++) {
            memcpy(row, (const float *)t->data + r * t->ne[0], (size_t)t->ne[0] * sizeof *row);
            qt->from_float_ref(row, q, t->ne[0]);
            assert_int_equal(hs_gguf_w_data(w, q, row_bytes, &err), HS_OK);
        }
        free(q);
        free(row);
    }
    assert_int_equal(hs_gguf_w_close(w, &err), HS_OK);
    free(types);
    hs_gguf_close(g);
}
