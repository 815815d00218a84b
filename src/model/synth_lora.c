/* Random LoRA adapters for any base model: what the adapter tests and
 * `make bench-agents` serve (13 distinct adapters over the 1B-class model)
 * without a training run. */
#include "base/fp16.h"
#include "base/mem.h"
#include "base/rng.h"
#include "gguf/gguf.h"
#include "gguf/gguf_types.h"
#include "model/synth.h"

#include <stdio.h>
#include <string.h>

static const char *const k_proj[7] = {"attn_q.weight",   "attn_k.weight", "attn_v.weight", "attn_output.weight",
                                      "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight"};

static int declare(hs_gguf_writer *w, const hs_gguf *base, int r, uint32_t type, int *n_pairs, hs_err *err)
{
    *n_pairs = 0;
    for (int l = 0;; l++) {
        int found = 0;
        for (int p = 0; p < 7; p++) {
            char tn[96], an[112];
            snprintf(tn, sizeof tn, "blk.%d.%s", l, k_proj[p]);
            const struct hs_gguf_tensor *t = hs_gguf_find_tensor(base, tn);
            if (!t)
                continue;
            if (t->n_dims != 2)
                return hs_err_set(err, HS_EFORMAT, "synth lora: %s is not a matrix", tn);
            found++;
            const int64_t ne_a[2] = {t->ne[0], r}, ne_b[2] = {r, t->ne[1]};
            snprintf(an, sizeof an, "%s.lora_a", tn);
            int rc = hs_gguf_w_tensor(w, an, type, 2, ne_a);
            snprintf(an, sizeof an, "%s.lora_b", tn);
            if (!rc)
                rc = hs_gguf_w_tensor(w, an, type, 2, ne_b);
            if (rc)
                return hs_err_set(err, rc, "synth lora: declaring %s failed", an);
            (*n_pairs)++;
        }
        if (!found)
            break;
    }
    return *n_pairs ? HS_OK : hs_err_set(err, HS_EFORMAT, "synth lora: the base has no blk.0 projections");
}

/* The data, in the order declared: for each pair A then B. */
static int fill(hs_gguf_writer *w, const hs_gguf *base, int r, float std, uint64_t seed, bool f16, hs_err *err)
{
    hs_rng rng;
    hs_rng_seed(&rng, seed);
    float *buf = NULL;
    size_t cap = 0;
    int rc = HS_OK;
    for (int l = 0; rc == HS_OK; l++) {
        int found = 0;
        for (int p = 0; p < 7 && rc == HS_OK; p++) {
            char tn[96];
            snprintf(tn, sizeof tn, "blk.%d.%s", l, k_proj[p]);
            const struct hs_gguf_tensor *t = hs_gguf_find_tensor(base, tn);
            if (!t)
                continue;
            found++;
            for (int half = 0; half < 2 && rc == HS_OK; half++) {
                size_t n = (size_t)(half ? t->ne[1] : t->ne[0]) * (size_t)r;
                if (n > cap) {
                    float *nb = hs_realloc_array(buf, n, sizeof *nb);
                    if (!nb) {
                        rc = hs_err_set(err, HS_ENOMEM, "synth lora: out of memory");
                        break;
                    }
                    buf = nb;
                    cap = n;
                }
                for (size_t i = 0; i < n; i++)
                    buf[i] = hs_rng_normal(&rng) * std;
                if (f16) { /* in place: the halves fit in the floats' first half */
                    hs_fp16 *h = (hs_fp16 *)(void *)buf;
                    for (size_t i = 0; i < n; i++)
                        h[i] = hs_f32_to_fp16(buf[i]);
                }
                rc = hs_gguf_w_data(w, buf, n * (f16 ? sizeof(hs_fp16) : sizeof *buf), err);
            }
        }
        if (!found)
            break;
    }
    hs_free(buf);
    return rc;
}

int hs_synth_lora_write(const char *path, const char *base_path, int r, float std, uint64_t seed, bool f16,
                        hs_err *err)
{
    if (r < 1 || r > 4096)
        return hs_err_set(err, HS_EINVAL, "synth lora: rank %d is outside 1..4096", r);
    hs_gguf *base = NULL;
    int rc = hs_gguf_open(base_path, &base, err);
    if (rc)
        return rc;
    const char *arch = NULL;
    size_t arch_len = 0;
    if (hs_gguf_get_str(base, "general.architecture", &arch, &arch_len, err)) {
        hs_gguf_close(base);
        return hs_err_prefix(err, "%s: ", base_path);
    }
    hs_gguf_writer *w = NULL;
    rc = hs_gguf_writer_open(path, &w, err);
    if (rc) {
        hs_gguf_close(base);
        return rc;
    }
    int n_pairs = 0;
    hs_gguf_w_str(w, "general.architecture", arch, arch_len);
    hs_gguf_w_str(w, "general.type", "adapter", 7);
    hs_gguf_w_str(w, "adapter.type", "lora", 4);
    hs_gguf_w_f32(w, "adapter.lora.alpha", (float)r);
    rc = declare(w, base, r, f16 ? HS_TYPE_F16 : HS_TYPE_F32, &n_pairs, err);
    if (!rc)
        rc = hs_gguf_w_begin_data(w, err);
    if (!rc)
        rc = fill(w, base, r, std, seed, f16, err);
    if (rc)
        hs_gguf_w_abort(w);
    else
        rc = hs_gguf_w_close(w, err);
    hs_gguf_close(base);
    return rc;
}
