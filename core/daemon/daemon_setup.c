/* core/daemon/daemon_setup.c: load configuration, user files and certificates; see header. */
#include "daemon/daemon_setup.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "auth/authdb.h"
#include "config/config.h"
#include "policy/policy_vm.h"
#include "net/tls.h"

const char *
daemon_config_arg(int argc, char **argv)
{
    const char *path = "conf/sluice.lua";
    int         opt;

    optind = 1;
    while ((opt = getopt(argc, argv, "c:")) != -1) {
        if (opt != 'c')
            return NULL;
        path = optarg;
    }
    return optind == argc ? path : NULL;
}

static int
daemon_needs_tls(const struct config *cfg)
{
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        if (cfg->listeners[i].tls != CONFIG_TLS_NONE)
            return 1;
    }
    return 0;
}

/* Load the policies once in a throwaway state: a policy that does not load fails here,
 * with its file and line, before anything listens. */
static int
daemon_check_policies(const struct config *cfg, char *err, size_t errlen)
{
    struct policy_vm *vm = policy_vm_new(cfg, NULL, NULL, err, errlen);

    policy_vm_free(vm);
    return vm == NULL ? -1 : 0;
}

/* The metrics listener's certificate, read with the listeners' (through privfile.h, so
 * start-up and every reload read it alike) and under their cipher policy (tls). */
static int
daemon_metrics_tls(struct daemon_parts *p, char *err, size_t errlen)
{
    const struct config_metrics *mc = p->cfg->metrics;
    char                         why[768];

    if (mc == NULL || mc->tls.cert_file == NULL)
        return 0;
    p->metrics_tls = tls_single_ctx_new(&p->cfg->tls, &mc->tls, mc->client_ca, why,
                                        sizeof(why));
    if (p->metrics_tls == NULL) {
        snprintf(err, errlen, "metrics.tls: %s", why);
        return -1;
    }
    return 0;
}

int
daemon_parts_load(const char *path, struct daemon_parts *p, char *err, size_t errlen)
{
    struct config *cfg = config_load(path, err, errlen);

    if (cfg == NULL) {
        memset(p, 0, sizeof(*p));
        return -1;
    }
    return daemon_parts_build(cfg, p, err, errlen);
}

int
daemon_parts_build(struct config *cfg, struct daemon_parts *p, char *err, size_t errlen)
{
    memset(p, 0, sizeof(*p));
    p->cfg = cfg;
    if (daemon_check_policies(p->cfg, err, errlen) != 0)
        goto fail;
    p->authdb = authdb_load(p->cfg->users_dir, err, errlen);
    if (p->authdb == NULL)
        goto fail;
    if (daemon_needs_tls(p->cfg)) {
        p->tls = tls_server_new(&p->cfg->tls, err, errlen);
        if (p->tls == NULL)
            goto fail;
    }
    if (daemon_metrics_tls(p, err, errlen) != 0)
        goto fail;
    return 0;
fail:
    daemon_parts_free(p);
    return -1;
}

void
daemon_parts_free(struct daemon_parts *p)
{
    SSL_CTX_free(p->metrics_tls);
    tls_server_free(p->tls);
    authdb_free(p->authdb);
    config_free(p->cfg);
    memset(p, 0, sizeof(*p));
}
