/* The hestia command: one function per subcommand, argv starting at the
 * subcommand's name. Only cli/ parses argv, prints for humans, and picks exit
 * codes (0 ok, 1 runtime failure, 2 usage error). */
#ifndef HS_CLI_CLI_H
#define HS_CLI_CLI_H

#include "base/err.h"

int hs_cmd_run(int argc, char **argv);
int hs_cmd_tokenize(int argc, char **argv);
int hs_cmd_bench(int argc, char **argv);
int hs_cmd_synth(int argc, char **argv);
int hs_cmd_info(int argc, char **argv);
int hs_cmd_quantize(int argc, char **argv);
int hs_cmd_convert(int argc, char **argv);
int hs_cmd_perplexity(int argc, char **argv);
int hs_cmd_kld(int argc, char **argv);
int hs_cmd_lora(int argc, char **argv);
int hs_cmd_serve(int argc, char **argv);
int hs_cmd_keys(int argc, char **argv);
int hs_cmd_logs(int argc, char **argv);
int hs_cmd_assess(int argc, char **argv);
int hs_cmd_baseline(int argc, char **argv);
int hs_cmd_drift(int argc, char **argv);
int hs_cmd_report(int argc, char **argv);
int hs_cmd_experiment(int argc, char **argv);
int hs_cmd_eval(int argc, char **argv);

/* perplexity/kld: parses one of their shared value options into p (see
 * cmd_perplexity.c); 0 on success, else the usage exit code. */
struct hs_ppl_params;
int hs_cli_ppl_option(const char *cmd, const char *a, const char *v, struct hs_ppl_params *p);

/* Prints "hestia <cmd>: <message>" on one line to stderr; returns 1. */
int hs_cli_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Same for an hs_err; returns 1. */
int hs_cli_fail_err(const char *cmd, const hs_err *err);
/* Usage error: message + "try 'hestia <cmd> --help'"; returns 2. */
int hs_cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
