/* core/cmd/main.c: argv -> subcommand; also `sluice --help` and `sluice --version`. */
#include <stdio.h>
#include <string.h>

#include "cmd/cmd.h"

static int
usage(FILE *f)
{
    fprintf(f, "usage: sluice run [-c FILE]       run the relay in the foreground\n"
               "       sluice check [-c FILE]     validate configuration, certificates, users\n"
               "       sluice check --dump-schema print the domains schema (lua/sluice/schema.lua)\n"
               "       sluice passwd [-s SCHEME]  hash a password read from stdin\n"
               "       sluice sink [OPTIONS]      capturing upstream SMTP server (--help)\n"
               "       sluice ctl [-c FILE] CMD   talk to the running daemon (--help)\n"
               "       sluice token [OPTIONS] USER  mint a test JWT from the dev key (--help)\n"
               "       sluice dkim keygen OPTIONS  make a DKIM key, print its DNS record (--help)\n"
               "       sluice --version           print the version\n"
               "every subcommand takes --help\n");
    return f == stdout ? 0 : EXIT_USAGE;
}

int
main(int argc, char **argv)
{
    if (argc < 2)
        return usage(stderr);
    if (strcmp(argv[1], "run") == 0)
        return cmd_run_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "check") == 0)
        return cmd_check_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "passwd") == 0)
        return cmd_passwd_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "sink") == 0)
        return cmd_sink_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "ctl") == 0)
        return cmd_ctl_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "token") == 0)
        return cmd_token_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "dkim") == 0)
        return cmd_dkim_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)
        return usage(stdout);
    if (strcmp(argv[1], "--version") == 0 && argc == 2) {
        printf("sluice %s\n", SLUICE_VERSION);
        return 0;
    }
    return usage(stderr);
}
