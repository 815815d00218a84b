/* 'hestia run': placeholder until its owner lands it. */
#include "cli/cli.h"

int hs_cmd_run(int argc, char **argv) {
    (void)argc;
    (void)argv;
    return hs_cli_fail("run", "not implemented yet");
}
