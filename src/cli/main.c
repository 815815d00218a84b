/* hestia: the command. Dispatches to one function per subcommand. */
#include "cli/cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
};

static const struct command k_commands[] = {
    {"run", hs_cmd_run, "generate text from a prompt or chat in the terminal"},
    {"tokenize", hs_cmd_tokenize, "print the tokens of a text"},
    {"bench", hs_cmd_bench, "prompt and generation speed (table + JSON)"},
    {"synth", hs_cmd_synth, "write a synthetic llama-shaped GGUF model"},
    {"info", hs_cmd_info, "show a GGUF file's metadata and tensors"},
    {"convert", hs_cmd_convert, "convert a Hugging Face model folder to GGUF"},
    {"quantize", hs_cmd_quantize, "quantize a GGUF model (llama.cpp type mixes)"},
    {"perplexity", hs_cmd_perplexity, "perplexity of a model on a text"},
    {"kld", hs_cmd_kld, "KL divergence of a quantized model against its f16 parent"},
    {"lora", hs_cmd_lora, "LoRA adapters: convert a PEFT folder, merge into a base model"},
    {"serve", hs_cmd_serve, "the OpenAI-compatible HTTP server"},
    {"keys", hs_cmd_keys, "API keys in the store: create, list, revoke"},
    {"logs", hs_cmd_logs, "request records in the store: export as JSON Lines"},
    {"assess", hs_cmd_assess, "a scenario to every expert agent, on any OpenAI-compatible server"},
    {"baseline", hs_cmd_baseline, "the monitor's baseline in the store: set from recent requests, show, clear"},
    {"report", hs_cmd_report, "the retraining criteria from the store, each with its value and verdict"},
    {"drift", hs_cmd_drift, "drift checks on any OpenAI-compatible server: data (embeddings) and concept (answers)"},
    {"experiment", hs_cmd_experiment, "A/B tests, shadows and canaries in the store: report, decide, rollback, promote"},
    {"eval", hs_cmd_eval, "expert evaluation of an experiment: export a CSV sheet, import the scores"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: hestia COMMAND [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof k_commands / sizeof k_commands[0]; i++)
        fprintf(f, "  %-10s %s\n", k_commands[i].name, k_commands[i].help);
    fprintf(f, "\n'hestia COMMAND --help' shows a command's options.\n");
}

int hs_cli_fail(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "hestia %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

int hs_cli_fail_err(const char *cmd, const hs_err *err) {
    return hs_cli_fail(cmd, "%s", err && err->msg[0] ? err->msg : hs_err_name(err ? err->code : -1));
}

int hs_cli_usage(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "hestia %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (try 'hestia %s --help')\n", cmd);
    va_end(ap);
    return 2;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof k_commands / sizeof k_commands[0]; i++)
        if (!strcmp(argv[1], k_commands[i].name))
            return k_commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "hestia: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
