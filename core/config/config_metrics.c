/* core/config/config_metrics.c: the `metrics` table of conf/sluice.lua (docs/configuration.md,
 * docs/metrics.md): where the Prometheus listener binds, which client networks may
 * scrape it, and its TLS files (`metrics.tls`: HTTPS instead of HTTP). Absent table: no
 * metrics listener. Serving it is daemon/metrics.c's; loading the certificate is
 * daemon/daemon_setup.c's, with the listeners' certificates. */
#include <arpa/inet.h>
#include <lua.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_internal.h"

#define CFG_METRICS_PORT 9465 /* Prometheus' port allocation list: unclaimed near 9464 */

/* "192.0.2.0/24", "::1/128", or a bare address (all its bits). */
int
config_metrics_parse_net(const char *s, struct config_metrics_net *out)
{
    char        addr[INET6_ADDRSTRLEN + 1];
    const char *slash = strchr(s, '/');
    size_t      len = slash != NULL ? (size_t)(slash - s) : strlen(s);
    unsigned    max, prefix = 0;
    char       *end;

    if (len == 0 || len >= sizeof(addr))
        return -1;
    memcpy(addr, s, len);
    addr[len] = '\0';
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, addr, out->addr) == 1) {
        out->family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, addr, out->addr) == 1) {
        out->family = AF_INET6;
        max = 128;
    } else {
        return -1;
    }
    if (slash == NULL) {
        out->prefix = max;
        return 0;
    }
    if (slash[1] < '0' || slash[1] > '9' || strlen(slash + 1) > 3)
        return -1;
    prefix = (unsigned)strtoul(slash + 1, &end, 10);
    if (*end != '\0' || prefix > max)
        return -1;
    out->prefix = prefix;
    return 0;
}

static bool
cfg_metrics_same_str(const char *a, const char *b)
{
    return a == NULL || b == NULL ? a == b : strcmp(a, b) == 0;
}

bool
config_metrics_same(const struct config_metrics *a, const struct config_metrics *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a->address, b->address) == 0 && a->port == b->port &&
           a->n_allow == b->n_allow &&
           memcmp(a->allow, b->allow, a->n_allow * sizeof(*a->allow)) == 0 &&
           cfg_metrics_same_str(a->tls.cert_file, b->tls.cert_file) &&
           cfg_metrics_same_str(a->tls.key_file, b->tls.key_file) &&
           cfg_metrics_same_str(a->client_ca, b->client_ca);
}

static int
cfg_metrics_allow(struct cfg_ctx *ctx, int t, struct config_metrics *m)
{
    static const char *const dflt[] = {"127.0.0.1/32", "::1/128"};
    char                   **list = NULL;
    size_t                   n = 0;
    int                      rc = 0;

    if (cfg_get_strings(ctx, t, "allow", false, false, &list) != 0)
        return -1;
    if (list != NULL)
        while (list[n] != NULL)
            n++;
    else
        n = 2;
    m->allow = calloc(n, sizeof(*m->allow));
    if (m->allow == NULL) {
        cfg_free_strings(list);
        return cfg_fail_key(ctx, "allow", "out of memory");
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (config_metrics_parse_net(list != NULL ? list[i] : dflt[i], &m->allow[i]) != 0)
            rc = cfg_fail_key(ctx, "allow",
                              "expected IPv4 or IPv6 networks ('127.0.0.1/32', '::1/128')");
        m->n_allow = i + 1;
    }
    cfg_free_strings(list);
    return rc;
}

/* metrics.tls = { cert = ..., key = ..., client_ca = ... }: every file readable now; whether
 * the key fits the certificate is found when the context is made (tls_single_ctx_new). */
static int
cfg_metrics_tls(struct cfg_ctx *ctx, int t, struct config_metrics *m)
{
    static const char *const keys[] = {"cert", "key", "client_ca", NULL};
    size_t                   mark;
    int                      rc = cfg_enter(ctx, t, "tls", keys, &mark);

    if (rc <= 0)
        return rc;
    if (cfg_get_path(ctx, -1, "cert", true, true, &m->tls.cert_file) != 0 ||
        cfg_get_path(ctx, -1, "key", true, true, &m->tls.key_file) != 0 ||
        cfg_get_path(ctx, -1, "client_ca", false, true, &m->client_ca) != 0)
        return -1;
    cfg_leave(ctx, mark);
    return 0;
}

int
cfg_metrics(struct cfg_ctx *ctx, int top, struct config *cfg)
{
    static const char *const keys[] = {"address", "port", "allow", "tls", NULL};
    struct config_metrics   *m;
    size_t                   mark;
    int                      t, rc;

    rc = cfg_enter(ctx, top, "metrics", keys, &mark);
    if (rc <= 0)
        return rc;
    t = lua_gettop(ctx->L);
    m = calloc(1, sizeof(*m));
    if (m == NULL) {
        cfg_leave(ctx, mark);
        return cfg_fail(ctx, "out of memory");
    }
    cfg->metrics = m;
    m->port = CFG_METRICS_PORT;
    rc = -1;
    if (cfg_strdup(ctx, "127.0.0.1", &m->address) || /* loopback by default */
        cfg_get_string(ctx, t, "address", false, &m->address) ||
        cfg_get_int(ctx, t, "port", 0, 65535, false, &m->port) ||
        cfg_metrics_allow(ctx, t, m) || cfg_metrics_tls(ctx, t, m))
        goto out;
    if (!cfg_is_ip(m->address)) {
        cfg_fail_key(ctx, "address", "expected an IPv4 or IPv6 address");
        goto out;
    }
    rc = 0;
out:
    cfg_leave(ctx, mark);
    return rc;
}

void
cfg_free_metrics(struct config_metrics *m)
{
    if (m == NULL)
        return;
    free(m->address);
    free(m->allow);
    free(m->tls.cert_file);
    free(m->tls.key_file);
    free(m->client_ca);
    free(m);
}
