/* core/daemon/daemon_setup.h: what `run` and `check` share: load the configuration, the user
 * files and the certificates, with errors that name the file and line. */
#ifndef SLUICE_DAEMON_SETUP_H
#define SLUICE_DAEMON_SETUP_H

#include <stddef.h>

#include <openssl/ssl.h>

struct config;
struct authdb;
struct tls_server;

struct daemon_parts {
    struct config     *cfg;         /* owns */
    struct authdb     *authdb;      /* owns */
    struct tls_server *tls;         /* owns; NULL when no listener needs TLS */
    SSL_CTX           *metrics_tls; /* owns; from metrics.tls, NULL without it */
};

/* Parse "-c FILE" (default conf/sluice.lua) from argv. NULL on a usage error. */
const char *daemon_config_arg(int argc, char **argv);

/* Load everything. 0, or -1 with "file:line: reason" in err; *p is then empty. */
int  daemon_parts_load(const char *path, struct daemon_parts *p, char *err, size_t errlen);
/* The rest of everything for a configuration loaded already: the policies (loaded once
 * to prove they do), the user files, the certificates (the listeners' and the metrics
 * listener's). Takes cfg, even on failure. */
int  daemon_parts_build(struct config *cfg, struct daemon_parts *p, char *err, size_t errlen);
void daemon_parts_free(struct daemon_parts *p);

#endif
