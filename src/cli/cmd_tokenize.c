/* 'hestia tokenize': placeholder until its owner lands it. */
#include "cli/cli.h"

int hs_cmd_tokenize(int argc, char **argv) {
    (void)argc;
    (void)argv;
    return hs_cli_fail("tokenize", "not implemented yet");
}
