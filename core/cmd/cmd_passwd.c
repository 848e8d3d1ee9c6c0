/* core/cmd/cmd_passwd.c: `sluice passwd [-s yescrypt|bcrypt|sha512|argon2id]`: read a
 * password from stdin (one line; prompted twice on a terminal) and print its hash for a
 * users file line "localpart:HASH". `--import` is cmd_passwd_import.c's. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "auth/authdb.h"
#include "cmd/cmd.h"
#include "cmd/cmd_passwd.h"

static const char *
cmd_passwd_prefix(const char *scheme)
{
    if (strcmp(scheme, "yescrypt") == 0)
        return "$y$";
    if (strcmp(scheme, "bcrypt") == 0)
        return "$2b$";
    if (strcmp(scheme, "sha512") == 0 || strcmp(scheme, "sha512-crypt") == 0)
        return "$6$";
    if (strcmp(scheme, "argon2id") == 0 || strcmp(scheme, "argon2") == 0)
        return "$argon2id$";
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

/* The usage on f: stdout for --help (exit 0), stderr for a bad command line. */
static int
cmd_passwd_usage(FILE *f)
{
    fprintf(f, "usage: sluice passwd [-s yescrypt|bcrypt|sha512|argon2id] < password\n"
               "       sluice passwd --import --out DIR [-s SCHEME] "
               "[--default-domain DOMAIN] FILE...\n");
    return f == stdout ? 0 : EXIT_USAGE;
}

int
cmd_passwd_main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "import", no_argument, NULL, 'i' },
        { "out", required_argument, NULL, 'o' },
        { "default-domain", required_argument, NULL, 'd' },
        { NULL, 0, NULL, 0 },
    };
    const char *prefix = "$y$", *out = NULL, *default_domain = NULL;
    char        pw[1024], again[1024], hash[512];
    int         opt, import = 0;

    if (cmd_is_help(argc, argv))
        return cmd_passwd_usage(stdout);
    optind = 1;
    while ((opt = getopt_long(argc, argv, "s:", longopts, NULL)) != -1) {
        if (opt == 'i')
            import = 1;
        else if (opt == 'o')
            out = optarg;
        else if (opt == 'd')
            default_domain = optarg;
        else if (opt != 's' || (prefix = cmd_passwd_prefix(optarg)) == NULL)
            return cmd_passwd_usage(stderr);
    }
    if (import)
        return cmd_passwd_import(prefix, out, default_domain, argv + optind, argc - optind);
    if (optind != argc || out != NULL || default_domain != NULL) {
        fprintf(stderr, "usage: sluice passwd [-s yescrypt|bcrypt|sha512|argon2id] < password\n");
        return EXIT_USAGE;
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
