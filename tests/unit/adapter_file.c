#include "adapter_file.h"

#include "base/fp16.h"
#include "base/rng.h"
#include "gguf/gguf.h"
#include "gguf/gguf_types.h"
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const PROJ[7] = {"attn_q.weight",      "attn_k.weight",   "attn_v.weight",
                                    "attn_output.weight", "ffn_gate.weight", "ffn_up.weight",
                                    "ffn_down.weight"};

/* Pass 0 declares the tensors, pass 1 writes their data from the same
 * random stream, so the values depend on the seed only. */
static int write_pass(hs_gguf_writer *w, const hs_model *m, int pass, uint64_t seed, int r, unsigned mask,
                      float sd, bool half, hs_err *err)
{
    const hs_gguf *g = hs_model_gguf(m);
    const struct hs_hparams *hp = hs_model_hparams(m);
    hs_rng rng;
    hs_rng_seed(&rng, seed);
    for (int l = 0; l < hp->n_layer; l++)
        for (int p = 0; p < 7; p++) {
            if (!(mask & (1u << p)))
                continue;
            char tn[96], an[112];
            snprintf(tn, sizeof tn, "blk.%d.%s", l, PROJ[p]);
            const struct hs_gguf_tensor *t = hs_gguf_find_tensor(g, tn);
            if (!t)
                return HS_ENOTFOUND;
            const int64_t in = t->ne[0], out = t->ne[1];
            if (pass == 0) {
                const int64_t ne_a[2] = {in, r}, ne_b[2] = {r, out};
                snprintf(an, sizeof an, "%s.lora_a", tn);
                const uint32_t type = half ? HS_TYPE_F16 : HS_TYPE_F32;
                int rc = hs_gguf_w_tensor(w, an, type, 2, ne_a);
                snprintf(an, sizeof an, "%s.lora_b", tn);
                rc = rc ? rc : hs_gguf_w_tensor(w, an, type, 2, ne_b);
                if (rc)
                    return rc;
                continue;
            }
            for (int ab = 0; ab < 2; ab++) {
                const size_t cnt = (size_t)(ab ? out : in) * (size_t)r;
                float *buf = malloc(cnt * sizeof(float));
                if (!buf)
                    return HS_ENOMEM;
                hs_fp16 *h = (hs_fp16 *)buf; /* half: the same buffer holds the halves */
                for (size_t i = 0; i < cnt; i++) {
                    const float v = hs_rng_normal(&rng) * sd;
                    if (half)
                        h[i] = hs_f32_to_fp16(v);
                    else
                        buf[i] = v;
                }
                const int rc = hs_gguf_w_data(w, buf, cnt * (half ? sizeof(hs_fp16) : sizeof(float)), err);
                free(buf);
                if (rc)
                    return rc;
            }
        }
    return HS_OK;
}

char *adapter_file_write(const hs_model *m, const char *name, uint64_t seed, int r, unsigned proj_mask,
                         float sd, bool half)
{
    const struct hs_hparams *hp = hs_model_hparams(m);
    char *path = hs_test_tmpfile(name);
    hs_gguf_writer *w;
    hs_err err = {0};
    if (!path || hs_gguf_writer_open(path, &w, &err)) {
        free(path);
        return NULL;
    }
    hs_gguf_w_str(w, "general.architecture", hp->arch, strlen(hp->arch));
    hs_gguf_w_str(w, "general.type", "adapter", 7);
    hs_gguf_w_str(w, "adapter.type", "lora", 4);
    hs_gguf_w_f32(w, "adapter.lora.alpha", (float)r);
    int rc = write_pass(w, m, 0, seed, r, proj_mask, sd, half, &err);
    rc = rc ? rc : hs_gguf_w_begin_data(w, &err);
    rc = rc ? rc : write_pass(w, m, 1, seed, r, proj_mask, sd, half, &err);
    const int rc_close = hs_gguf_w_close(w, &err);
    if (rc || rc_close) {
        fprintf(stderr, "adapter_file_write %s: %s\n", name, err.msg);
        free(path);
        return NULL;
    }
    return path;
}
