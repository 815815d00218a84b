/* 'hestia synth': placeholder until its owner lands it. */
#include "cli/cli.h"

int hs_cmd_synth(int argc, char **argv) {
    (void)argc;
    (void)argv;
    return hs_cli_fail("synth", "not implemented yet");
}
