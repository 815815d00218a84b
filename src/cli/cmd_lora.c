/* 'hestia lora convert|merge': LoRA adapters (model/lora.h does the work;
 * this parses and picks the exit code). */
#include "cli/cli.h"
#include "gguf/gguf_types.h"
#include "model/lora.h"

#include <stdio.h>
#include <string.h>

#define MAX_ADAPTERS 16

static void usage(FILE *f)
{
    fprintf(f, "usage: hestia lora convert PEFT_DIR --base BASE.gguf -o ADAPTER.gguf [--outtype f32|f16]\n"
               "       hestia lora merge BASE.gguf ADAPTER.gguf[:SCALE]... -o MERGED.gguf\n"
               "\n"
               "convert: a PEFT adapter folder (adapter_config.json + adapter_model.safetensors)\n"
               "  to a GGUF LoRA adapter in llama.cpp's layout, checked against the base model.\n"
               "merge: W' = W + scale * alpha / r * B @ A for every adapted tensor, re-quantized\n"
               "  to W's type; other tensors copied. SCALE defaults to 1.\n"
               "Outputs are written to a temporary file and renamed at the end.\n");
}

static int cmd_convert(int argc, char **argv)
{
    struct hs_lora_convert_opts o = {.outtype = HS_TYPE_F32};
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        bool has_val = i + 1 < argc;
        if (!strcmp(a, "-o") || !strcmp(a, "--output") || !strcmp(a, "--base") || !strcmp(a, "--outtype")) {
            if (!has_val)
                return hs_cli_usage("lora", "%s needs a value", a);
            const char *v = argv[++i];
            if (!strcmp(a, "--base"))
                o.base_path = v;
            else if (!strcmp(a, "--outtype")) {
                if (!strcmp(v, "f32"))
                    o.outtype = HS_TYPE_F32;
                else if (!strcmp(v, "f16"))
                    o.outtype = HS_TYPE_F16;
                else
                    return hs_cli_usage("lora", "--outtype '%s' is not f32 or f16", v);
            } else
                o.out_path = v;
        } else if (a[0] == '-' && a[1]) {
            return hs_cli_usage("lora", "unknown option '%s'", a);
        } else if (!o.peft_dir) {
            o.peft_dir = a;
        } else {
            return hs_cli_usage("lora", "one PEFT_DIR only (got '%s' and '%s')", o.peft_dir, a);
        }
    }
    if (!o.peft_dir || !o.base_path || !o.out_path)
        return hs_cli_usage("lora", "convert needs PEFT_DIR, --base BASE.gguf and -o ADAPTER.gguf");
    hs_err err = {0};
    if (hs_lora_convert(&o, &err))
        return hs_cli_fail_err("lora", &err);
    return 0;
}

static int cmd_merge(int argc, char **argv)
{
    const char *base = NULL, *out = NULL;
    struct hs_lora_spec specs[MAX_ADAPTERS];
    char paths[MAX_ADAPTERS][1024];
    int n = 0;
    hs_err err = {0};
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            if (i + 1 >= argc)
                return hs_cli_usage("lora", "%s needs a file name", a);
            out = argv[++i];
        } else if (a[0] == '-' && a[1]) {
            return hs_cli_usage("lora", "unknown option '%s'", a);
        } else if (!base) {
            base = a;
        } else {
            if (n == MAX_ADAPTERS)
                return hs_cli_usage("lora", "at most %d adapters", MAX_ADAPTERS);
            if (hs_lora_parse_spec(a, paths[n], sizeof paths[n], &specs[n].scale, &err))
                return hs_cli_usage("lora", "%s", err.msg);
            specs[n].path = paths[n];
            n++;
        }
    }
    if (!base || !n || !out)
        return hs_cli_usage("lora", "merge needs BASE.gguf, at least one ADAPTER.gguf[:SCALE] and -o MERGED.gguf");
    if (hs_lora_merge(base, specs, n, out, &err))
        return hs_cli_fail_err("lora", &err);
    return 0;
}

int hs_cmd_lora(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "convert"))
        return cmd_convert(argc, argv);
    if (!strcmp(argv[1], "merge"))
        return cmd_merge(argc, argv);
    return hs_cli_usage("lora", "unknown subcommand '%s' (convert, merge)", argv[1]);
}
