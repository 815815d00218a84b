/* 'hestia bench': placeholder until its owner lands it. */
#include "cli/cli.h"

int hs_cmd_bench(int argc, char **argv) {
    (void)argc;
    (void)argv;
    return hs_cli_fail("bench", "not implemented yet");
}
