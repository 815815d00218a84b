/* 'hestia info': placeholder until its owner lands it. */
#include "cli/cli.h"

int hs_cmd_info(int argc, char **argv) {
    (void)argc;
    (void)argv;
    return hs_cli_fail("info", "not implemented yet");
}
