/* libFuzzer target for the safetensors reader: any input must either open
 * cleanly or fail with HS_EFORMAT / HS_EUNSUPPORTED naming the input; when it
 * opens, every tensor's first and last byte is read (the sanitizers see any
 * reach past the buffer) and the tensors must be in order without overlap. */
#include "gguf/safetensors.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static volatile uint64_t sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hs_st *st;
    hs_err err;
    int rc = hs_st_open_mem(data, size, "fuzz", &st, &err);
    if (rc != HS_OK) {
        if ((rc != HS_EFORMAT && rc != HS_EUNSUPPORTED) || st || strncmp(err.msg, "fuzz: ", 6))
            abort();
        return 0;
    }
    const uint8_t *prev_end = NULL;
    for (int64_t i = 0; i < hs_st_n_tensors(st); i++) {
        const struct hs_st_tensor *t = hs_st_tensor_at(st, i);
        if (hs_st_find(st, t->name) != t || t->n_dims > HS_ST_MAX_DIMS)
            abort();
        const uint8_t *p = t->data;
        if (p < data || p + t->nbytes > data + size || (t->nbytes && prev_end && p < prev_end))
            abort();
        if (t->nbytes) {
            sink += p[0] + p[t->nbytes - 1];
            prev_end = p + t->nbytes;
        }
    }
    hs_st_close(st);
    return 0;
}
