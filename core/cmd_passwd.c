/* core/cmd_passwd.c: `sluice passwd [-s yescrypt|bcrypt|sha512]`: read a password from
 * stdin (one line; prompted twice on a terminal) and print its crypt(3) hash for a
 * users file line "localpart:HASH". */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "authdb.h"
#include "cmd.h"

static const char *
cmd_passwd_prefix(const char *scheme)
{
    if (strcmp(scheme, "yescrypt") == 0)
        return "$y$";
    if (strcmp(scheme, "bcrypt") == 0)
        return "$2b$";
    if (strcmp(scheme, "sha512") == 0 || strcmp(scheme, "sha512-crypt") == 0)
        return "$6$";
    return NULL;
}

static int
cmd_passwd_read(const char *prompt, char *buf, size_t len)
{
    struct termios old, quiet;
    int            tty = isatty(STDIN_FILENO);
    char          *ok;

    if (tty) {
        fprintf(stderr, "%s", prompt);
        tcgetattr(STDIN_FILENO, &old);
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    ok = fgets(buf, (int)len, stdin);
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fprintf(stderr, "\n");
    }
    if (ok == NULL)
        return -1;
    buf[strcspn(buf, "\r\n")] = '\0';
    return 0;
}

int
cmd_passwd_main(int argc, char **argv)
{
    const char *prefix = "$y$";
    char        pw[1024], again[1024], hash[512];
    int         opt;

    optind = 1;
    while ((opt = getopt(argc, argv, "s:")) != -1) {
        if (opt != 's' || (prefix = cmd_passwd_prefix(optarg)) == NULL) {
            fprintf(stderr, "usage: sluice passwd [-s yescrypt|bcrypt|sha512] < password\n");
            return EXIT_USAGE;
        }
    }
    if (cmd_passwd_read("Password: ", pw, sizeof(pw)) != 0 || pw[0] == '\0') {
        fprintf(stderr, "sluice passwd: no password given\n");
        return 1;
    }
    if (isatty(STDIN_FILENO) &&
        (cmd_passwd_read("Again: ", again, sizeof(again)) != 0 || strcmp(pw, again) != 0)) {
        fprintf(stderr, "sluice passwd: passwords differ\n");
        return 1;
    }
    if (authdb_hash(pw, prefix, hash, sizeof(hash)) != 0) {
        fprintf(stderr, "sluice passwd: hashing failed\n");
        return 1;
    }
    explicit_bzero(pw, sizeof(pw));
    explicit_bzero(again, sizeof(again));
    printf("%s\n", hash);
    return 0;
}
