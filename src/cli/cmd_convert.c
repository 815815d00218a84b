/* 'hestia convert HF_DIR -o OUT.gguf': a Hugging Face model folder to GGUF
 * (model/convert.h does the work; this parses, shows progress, picks the
 * exit code). */
#include "base/clock.h"
#include "cli/cli.h"
#include "gguf/gguf_types.h"
#include "model/convert.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: hestia convert HF_DIR -o OUT.gguf [options]\n"
               "\n"
               "Converts a Hugging Face LlamaForCausalLM / MistralForCausalLM / Qwen2ForCausalLM\n"
               "folder (config.json, model.safetensors or model.safetensors.index.json + shards;\n"
               "F32/F16/BF16 tensors) to GGUF, with llama.cpp's names and metadata.\n"
               "\n"
               "  -o, --output FILE     the GGUF to write (required; written to a temporary\n"
               "                        file and renamed at the end)\n"
               "  --outtype T           type of 2-D weights: f32, f16 (default), bf16, q8_0;\n"
               "                        1-D tensors stay f32\n"
               "  --vocab-from GGUF     copy every tokenizer.* key of GGUF instead of reading\n"
               "                        HF_DIR/tokenizer.model (SentencePiece) or\n"
               "                        HF_DIR/tokenizer.json (byte-level BPE)\n"
               "  -q, --quiet           no progress bar\n");
}

struct progress {
    double t0, last;
    bool quiet;
};

static void on_progress(void *ud, int64_t done, int64_t total, const char *name)
{
    struct progress *pr = ud;
    if (pr->quiet)
        return;
    double now = hs_now_s();
    if (done < total && now - pr->last < 0.1)
        return;
    pr->last = now;
    double frac = total ? (double)done / (double)total : 1.0;
    char bar[31];
    int fill = (int)(frac * 30);
    for (int i = 0; i < 30; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[30] = 0;
    fprintf(stderr, "\r[%s] %5.1f%%  %lld/%lld tensors  %-32.32s", bar, frac * 100, (long long)done,
            (long long)total, name);
    if (done >= total)
        fprintf(stderr, "\n");
    fflush(stderr);
}

int hs_cmd_convert(int argc, char **argv)
{
    struct hs_convert_opts o = {.outtype = HS_TYPE_F16};
    struct progress pr = {.t0 = hs_now_s(), .quiet = !isatty(2)};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_val = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            if (!has_val)
                return hs_cli_usage("convert", "%s needs a file name", a);
            o.out_path = argv[++i];
        } else if (!strcmp(a, "--outtype")) {
            if (!has_val)
                return hs_cli_usage("convert", "--outtype needs a type");
            const char *t = argv[++i];
            if (!strcmp(t, "f32"))
                o.outtype = HS_TYPE_F32;
            else if (!strcmp(t, "f16"))
                o.outtype = HS_TYPE_F16;
            else if (!strcmp(t, "bf16"))
                o.outtype = HS_TYPE_BF16;
            else if (!strcmp(t, "q8_0"))
                o.outtype = HS_TYPE_Q8_0;
            else
                return hs_cli_usage("convert", "--outtype '%s' is not one of f32, f16, bf16, q8_0", t);
        } else if (!strcmp(a, "--vocab-from")) {
            if (!has_val)
                return hs_cli_usage("convert", "--vocab-from needs a GGUF file");
            o.vocab_from = argv[++i];
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            pr.quiet = true;
        } else if (a[0] == '-' && a[1]) {
            return hs_cli_usage("convert", "unknown option '%s'", a);
        } else if (!o.hf_dir) {
            o.hf_dir = a;
        } else {
            return hs_cli_usage("convert", "one HF_DIR only (got '%s' and '%s')", o.hf_dir, a);
        }
    }
    if (!o.hf_dir)
        return hs_cli_usage("convert", "missing HF_DIR");
    if (!o.out_path)
        return hs_cli_usage("convert", "missing -o OUT.gguf");
    o.progress = on_progress;
    o.progress_ud = &pr;
    hs_err err = {0};
    int rc = hs_convert_hf(&o, &err);
    if (rc)
        return hs_cli_fail_err("convert", &err);
    if (!pr.quiet)
        fprintf(stderr, "hestia convert: wrote %s in %.1fs\n", o.out_path, hs_now_s() - pr.t0);
    return 0;
}
