/* core/cmd/cmd.h: the subcommands; core/cmd/main.c dispatches argv[1] to one of these.
 * Each takes argv with argv[0] the subcommand's name and returns the exit code. */
#ifndef SLUICE_CMD_H
#define SLUICE_CMD_H

#include <stdbool.h>
#include <string.h>

/* Exit codes (sysexits.h): what a supervisor or a script can act on. */
#define EXIT_USAGE  64 /* EX_USAGE: bad command line */
#define EXIT_UNAVAILABLE 69 /* EX_UNAVAILABLE: ctl: no daemon answers on the control socket */
#define EXIT_OSERR  71 /* EX_OSERR: cannot bind, drop privileges, start threads */
#define EXIT_CONFIG 78 /* EX_CONFIG: configuration, certificates or user files invalid */

/* True if the arguments after argv[0] ask for help (-h or --help, before any "--"): the
 * subcommand then prints its usage on stdout and exits 0. */
static inline bool
cmd_is_help(int argc, char **argv)
{
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
            return true;
    return false;
}

int cmd_run_main(int argc, char **argv);
int cmd_check_main(int argc, char **argv);
int cmd_passwd_main(int argc, char **argv);
int cmd_sink_main(int argc, char **argv);
int cmd_ctl_main(int argc, char **argv);
int cmd_token_main(int argc, char **argv);
int cmd_dkim_main(int argc, char **argv);

#endif
