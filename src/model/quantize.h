/* Quantizing a GGUF model file into another file type (llama-quantize): every
 * metadata pair copied, general.file_type set to the new type's llama.cpp
 * number, tensors in order, each weight matrix converted to the type
 * model/ftype_mix.h picks for its name (source type -> float -> target type,
 * with the reference quantizers, so the bytes equal llama.cpp's), other
 * tensors copied. Streams: memory stays at a few chunks of rows whatever the
 * model's size. The output is written to OUT.tmp-XXXXXX in OUT's folder and
 * renamed at the end; on any error nothing is left behind. */
#ifndef HS_MODEL_QUANTIZE_H
#define HS_MODEL_QUANTIZE_H

#include "base/err.h"
#include "base/pool.h"

#include <stdbool.h>
#include <stdint.h>

struct hs_quantize_params {
    const char *ftype;      /* "q4_k_m", "q8_0", "f16", ... (model/ftype_mix.h) */
    bool allow_requantize;  /* accept a source with quantized tensors (quality suffers) */
    bool pure;              /* no per-tensor rules: base type everywhere (row fallbacks only) */
    /* progress: bytes of source tensor data done / total; may be NULL */
    void (*progress)(void *user, uint64_t done, uint64_t total);
    void *user;
};

/* What a quantization did (for the summary line). */
struct hs_quantize_stats {
    uint64_t in_file_bytes, out_file_bytes;
    uint64_t in_data_bytes, out_data_bytes; /* tensor data only */
    uint64_t n_weights;                     /* elements of all tensors */
    int n_tensors, n_converted;             /* converted: type changed */
};

/* Quantizes `in` into `out` (which is replaced only on success). Runs on
 * `pool` (NULL: the calling thread); the result does not depend on the
 * number of threads. Errors: HS_EINVAL unknown ftype, or a quantized input
 * without allow_requantize ("... is already quantized ..."); HS_EUNSUPPORTED
 * a source type hestia cannot read back to floats; HS_EIO / HS_EFORMAT from
 * reading or writing. stats may be NULL. */
int hs_quantize_file(const char *in, const char *out, const struct hs_quantize_params *p, hs_pool *pool,
                     struct hs_quantize_stats *stats, hs_err *err);

#endif
