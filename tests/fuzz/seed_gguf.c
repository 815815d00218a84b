/* Writes a few small GGUF files into the directory given as argv[1], as the
 * starting corpus for fuzz_gguf (scripts/fuzz.sh builds and runs it). They
 * cover every value type, string arrays, several tensor types and a
 * non-default alignment, so the fuzzer starts deep inside the format. */
#include "gguf/gguf.h"

#include <stdio.h>
#include <string.h>

static int seed(const char *dir, int which)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/seed-%d.gguf", dir, which);
    hs_gguf_writer *w;
    hs_err err;
    if (hs_gguf_writer_open(path, &w, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    if (which == 1)
        hs_gguf_w_u32(w, "general.alignment", 64);
    if (which == 2)
        hs_gguf_w_set_version(w, 2);
    hs_gguf_w_str(w, "general.architecture", "llama", 5);
    hs_gguf_w_u32(w, "llama.block_count", 1);
    hs_gguf_w_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    hs_gguf_w_bool(w, "tokenizer.ggml.add_bos_token", true);
    uint64_t u64 = 1;
    int64_t i64 = -1;
    double f64 = 0.5;
    uint8_t u8 = 7;
    int8_t i8 = -7;
    uint16_t u16 = 700;
    int16_t i16 = -700;
    hs_gguf_w_val(w, "v.u64", HS_GGUF_UINT64, &u64);
    hs_gguf_w_val(w, "v.i64", HS_GGUF_INT64, &i64);
    hs_gguf_w_val(w, "v.f64", HS_GGUF_FLOAT64, &f64);
    hs_gguf_w_val(w, "v.u8", HS_GGUF_UINT8, &u8);
    hs_gguf_w_val(w, "v.i8", HS_GGUF_INT8, &i8);
    hs_gguf_w_val(w, "v.u16", HS_GGUF_UINT16, &u16);
    hs_gguf_w_val(w, "v.i16", HS_GGUF_INT16, &i16);
    hs_gguf_w_i32(w, "v.i32", -70000);
    const char *toks[] = {"<unk>", "<s>", "</s>", "a", "b", "ab", "\xe2\x96\x81"};
    hs_gguf_w_arr_str(w, "tokenizer.ggml.tokens", toks, NULL, 7);
    float scores[7] = {0, 0, 0, -1, -2, -3, -4};
    hs_gguf_w_arr(w, "tokenizer.ggml.scores", HS_GGUF_FLOAT32, scores, 7);
    int32_t types[7] = {2, 3, 3, 1, 1, 1, 1};
    hs_gguf_w_arr(w, "tokenizer.ggml.token_type", HS_GGUF_INT32, types, 7);
    uint8_t bools[3] = {0, 1, 0};
    hs_gguf_w_arr(w, "v.bools", HS_GGUF_BOOL, bools, 3);
    static const struct {
        const char *name;
        uint32_t type, n_dims;
        int64_t ne[4];
    } ts[] = {
        {"token_embd.weight", HS_TYPE_F32, 2, {4, 7}},
        {"blk.0.attn_q.weight", HS_TYPE_Q8_0, 2, {32, 2}},
        {"blk.0.ffn_up.weight", HS_TYPE_Q4_K, 2, {256, 1}},
        {"output_norm.weight", HS_TYPE_F16, 1, {5}},
        {"x.4d", HS_TYPE_I8, 4, {1, 2, 1, 3}},
    };
    size_t n_ts = which == 3 ? 0 : sizeof ts / sizeof ts[0];
    for (size_t i = 0; i < n_ts; i++)
        hs_gguf_w_tensor(w, ts[i].name, ts[i].type, ts[i].n_dims, ts[i].ne);
    if (hs_gguf_w_begin_data(w, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    uint8_t buf[512];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)(i * 37);
    for (size_t i = 0; i < n_ts; i++) {
        size_t n = hs_type_row_bytes(ts[i].type, ts[i].ne[0]);
        for (uint32_t d = 1; d < ts[i].n_dims; d++)
            n *= (size_t)ts[i].ne[d];
        hs_gguf_w_data(w, buf, n, &err);
    }
    if (hs_gguf_w_close(w, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: seed_gguf DIR\n");
        return 2;
    }
    int bad = 0;
    for (int i = 0; i < 4; i++)
        bad |= seed(argv[1], i);
    return bad;
}
