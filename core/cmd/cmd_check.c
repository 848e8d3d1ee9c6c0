/* core/cmd/cmd_check.c: `sluice check -c FILE`: load what `run` loads, report, exit.
 * `sluice check --dump-schema` prints the schema of `domains` (config_schema.h) as the Lua
 * module lua/sluice/schema.lua, the busted double's copy of it. */
#include <stdio.h>
#include <string.h>

#include "auth/authdb.h"
#include "cmd/cmd.h"
#include "config/config.h"
#include "config/config_access.h"
#include "config/config_schema.h"
#include "daemon/daemon_setup.h"

/* docs/security.md "User enumeration by timing": a note, not an error */
static void
cmd_check_mixed(void *arg, const char *path, size_t n, const char *settings)
{
    (void)arg;
    printf("%s: %zu hash cost classes, every AUTH of the domain hashes %zu: %s\n", path, n, n,
           settings);
}

int
cmd_check_main(int argc, char **argv)
{
    const char         *path;
    struct daemon_parts p;
    char                err[1024];

    if (cmd_is_help(argc, argv)) {
        printf("usage: sluice check [-c FILE]   (default conf/sluice.lua)\n"
               "       sluice check --dump-schema   (the domains schema as Lua)\n");
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "--dump-schema") == 0)
        return config_schema_dump(stdout) == 0 && fflush(stdout) == 0 ? 0 : 1;
    path = daemon_config_arg(argc, argv);
    if (path == NULL) {
        fprintf(stderr, "usage: sluice check [-c FILE] | --dump-schema\n");
        return EXIT_USAGE;
    }
    if (daemon_parts_load(path, &p, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        return EXIT_CONFIG;
    }
    printf("%s: ok (%zu listeners, %zu upstream sets, %zu users)\n", path, p.cfg->n_listeners,
           p.cfg->n_upstreams, authdb_count(p.authdb));
    authdb_each_mixed_domain(p.authdb, cmd_check_mixed, NULL);
    config_access_warn(p.cfg); /* on stderr, with the other warnings (JSON lines) */
    daemon_parts_free(&p);
    return 0;
}
