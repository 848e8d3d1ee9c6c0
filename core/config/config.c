/* core/config/config.c: conf/sluice.lua -> immutable struct config (see config.h and
 * docs/configuration.md): which keys exist, their defaults, how sections depend on each
 * other, and the struct's lifetime. Running the file in a sandbox and finding lines is
 * config_source.c's; checking one value and writing "file:line: key: reason" is
 * config_value.c's. Using the result (TLS contexts, sockets, users files) is for the
 * rest of the core. */
#include "config/config.h"

#include <lua.h>
#include <openssl/tls1.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config_internal.h"
#include "util/limits.h"
#include "util/log.h"

#define CFG_MAX_WORKERS         1024
#define CFG_MAX_TICKET_LIFETIME 604800 /* a week */
#define CFG_MAX_SOCKET_PATH     107    /* sizeof(sockaddr_un.sun_path) - 1 on Linux */

/* Mozilla "intermediate" minus DHE: forward secrecy and AEAD only, ECDSA first. */
#define CFG_DEFAULT_CIPHERS                                                              \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                         \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                         \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
/* OpenSSL 3's own default TLS 1.3 list. */
#define CFG_DEFAULT_CIPHERSUITES                                                         \
    "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256"

/* ---- top-level scalars ---------------------------------------------------------------- */

/* control_socket: a path that fits in sockaddr_un.sun_path (108 octets with its NUL). */
static int
cfg_control_socket(struct cfg_ctx *ctx, int top, struct config *cfg)
{
    if (cfg_get_path(ctx, top, "control_socket", false, false, &cfg->control_socket) != 0)
        return -1;
    if (cfg->control_socket != NULL && strlen(cfg->control_socket) > CFG_MAX_SOCKET_PATH)
        return cfg_fail_key(ctx, "control_socket",
                            "path too long for a unix socket (at most 107 octets)");
    return 0;
}

static int
cfg_general(struct cfg_ctx *ctx, int top, struct config *cfg)
{
    static const char *const levels[] = {"debug", "info", "notice", "warning", "err", NULL};
    static const int level_values[] = {LOG_DEBUG, LOG_INFO, LOG_NOTICE, LOG_WARNING, LOG_ERR};

    if (cfg_get_string(ctx, top, "hostname", false, &cfg->hostname) != 0)
        return -1;
    if (!cfg_is_hostname(cfg->hostname, false)) /* the default always is one */
        return cfg_fail_key(ctx, "hostname", "expected a host name");
    if (cfg_get_int(ctx, top, "workers", 0, CFG_MAX_WORKERS, false, &cfg->workers) ||
        cfg_get_string(ctx, top, "user", false, &cfg->user) ||
        cfg_get_path(ctx, top, "users_dir", false, false, &cfg->users_dir) ||
        cfg_control_socket(ctx, top, cfg) ||
        cfg_get_bool(ctx, top, "insecure", &cfg->insecure) ||
        cfg_get_enum(ctx, top, "log_level", levels, level_values, false, &cfg->log_level))
        return -1;
    return 0;
}

/* limits.max_inflight_bytes{,_per_client}: 0 = not set, derived from max_message_size.
 * One message of the largest size must fit in a client's share, and the share in the
 * total; only a value the file sets can be wrong (the limits table is then on top). */
static int
cfg_inflight(struct cfg_ctx *ctx, struct config *cfg)
{
    size_t  one = cfg->max_message_size + LIMIT_INFLIGHT_MESSAGE_ROOM;
    size_t *share = &cfg->max_inflight_bytes_per_client, *total = &cfg->max_inflight_bytes;
    bool    set_share = *share != 0;

    if (*share == 0) /* two of the largest messages at once */
        *share = 2 * one > LIMIT_MAX_INFLIGHT_PER_CLIENT ? 2 * one : LIMIT_MAX_INFLIGHT_PER_CLIENT;
    if (*total == 0)
        *total = *share > LIMIT_MAX_INFLIGHT_BYTES / 4 ? 4 * *share : LIMIT_MAX_INFLIGHT_BYTES;
    else if (*share > *total && !set_share)
        *share = *total;
    if (*share < one)
        return cfg_fail_key(ctx, set_share ? "max_inflight_bytes_per_client"
                                           : "max_inflight_bytes",
                            "must hold one message of max_message_size + 131072 octets");
    if (*share > *total)
        return cfg_fail_key(ctx, "max_inflight_bytes_per_client",
                            "must not be larger than max_inflight_bytes");
    return 0;
}

/* limits.*: positive integers, and client_ipv6_prefix, the bits of an IPv6 address that
 * name one client network (iplimit.h). */
static int
cfg_limits(struct cfg_ctx *ctx, int top, struct config *cfg)
{
    static const char *const keys[] = {
        "max_message_size", "max_recipients",    "max_line_length",
        "max_errors",       "max_commands",      "max_messages",
        "max_auth_failures", "max_connections",  "max_connections_per_ip",
        "max_auth_jobs",     "max_auth_jobs_per_client",
        "max_inflight_bytes", "max_inflight_bytes_per_client",
        "min_data_rate",    "client_ipv6_prefix", NULL,
    };
    size_t *const dst[] = {
        &cfg->max_message_size, &cfg->max_recipients,    &cfg->max_line_length,
        &cfg->max_errors,       &cfg->max_commands,      &cfg->max_messages,
        &cfg->max_auth_failures, &cfg->max_connections,  &cfg->max_connections_per_ip,
        &cfg->max_auth_jobs,     &cfg->max_auth_jobs_per_client,
        &cfg->max_inflight_bytes, &cfg->max_inflight_bytes_per_client,
        &cfg->min_data_rate,
    };
    size_t mark, i;
    int    rc = cfg_enter(ctx, top, "limits", keys, &mark);

    if (rc <= 0)
        return rc < 0 ? rc : cfg_inflight(ctx, cfg);
    for (i = 0; i < sizeof(dst) / sizeof(dst[0]); i++)
        if (cfg_get_uint(ctx, -1, keys[i], 1,
                         dst[i] == &cfg->max_auth_jobs ? LIMIT_MAX_AUTH_JOBS_CAP : CFG_INT_MAX,
                         dst[i]) != 0)
            return -1;
    if (cfg_get_uint(ctx, -1, "client_ipv6_prefix", 1, 128, &cfg->client_ipv6_prefix) != 0)
        return -1;
    if (cfg_inflight(ctx, cfg) != 0)
        return -1;
    cfg_leave(ctx, mark);
    return 0;
}

static int
cfg_timeouts(struct cfg_ctx *ctx, int top, struct config *cfg)
{
    static const char *const keys[] = {
        "greeting", "command", "data", "tls", "upstream", "upstream_data", "drain", NULL,
    };
    double *const dst[] = {
        &cfg->timeout_greeting, &cfg->timeout_command,       &cfg->timeout_data,
        &cfg->timeout_tls,      &cfg->timeout_upstream,      &cfg->timeout_upstream_data,
        &cfg->timeout_drain,
    };
    size_t mark, i;
    int    rc = cfg_enter(ctx, top, "timeouts", keys, &mark);

    if (rc <= 0)
        return rc;
    for (i = 0; keys[i] != NULL; i++)
        if (cfg_get_seconds(ctx, -1, keys[i], dst[i]) != 0)
            return -1;
    cfg_leave(ctx, mark);
    return 0;
}

static int
cfg_pool(struct cfg_ctx *ctx, int top, struct config *cfg)
{
    static const char *const keys[] = {"max_per_worker", "idle_timeout", "max_reuse", NULL};
    size_t mark;
    int    rc = cfg_enter(ctx, top, "pool", keys, &mark);

    if (rc <= 0)
        return rc;
    if (cfg_get_uint(ctx, -1, "max_per_worker", 1, CFG_INT_MAX, &cfg->pool_max_per_worker) ||
        cfg_get_seconds(ctx, -1, "idle_timeout", &cfg->pool_idle_timeout) ||
        cfg_get_uint(ctx, -1, "max_reuse", 1, CFG_INT_MAX, &cfg->pool_max_reuse))
        return -1;
    cfg_leave(ctx, mark);
    return 0;
}

/* ---- tls -------------------------------------------------------------------------------- */

/* t[key] = { { cert = ..., key = ... }, ... }: at least one pair, both files readable.
 * Absent: an error if required, else nothing. */
static int
cfg_cert_list(struct cfg_ctx *ctx, int t, const char *key, bool required,
              struct config_cert **out, size_t *n_out)
{
    static const char *const keys[] = {"cert", "key", NULL};
    size_t mark, imark, n, i;
    int    rc = cfg_enter(ctx, t, key, NULL, &mark);

    if (rc == 0)
        return required ? cfg_fail_missing(ctx, key) : 0;
    if (rc < 0 || cfg_check_list(ctx, -1, &n) != 0)
        return -1;
    if (n == 0)
        return cfg_fail(ctx, "expected a non-empty list of { cert = ..., key = ... }");
    *out = calloc(n, sizeof(**out));
    if (*out == NULL)
        return cfg_fail(ctx, "out of memory");
    *n_out = n;
    for (i = 0; i < n; i++) {
        imark = cfg_push_index(ctx, i + 1);
        lua_rawgeti(ctx->L, -1, (int)i + 1);
        if (cfg_check_keys(ctx, -1, keys) != 0 ||
            cfg_get_path(ctx, -1, "cert", true, true, &(*out)[i].cert_file) != 0 ||
            cfg_get_path(ctx, -1, "key", true, true, &(*out)[i].key_file) != 0)
            return -1;
        cfg_leave(ctx, imark);
    }
    cfg_leave(ctx, mark);
    return 0;
}

static int
cfg_sni_cmp(const void *a, const void *b)
{
    return strcmp(((const struct config_sni *)a)->name, ((const struct config_sni *)b)->name);
}

/* One tls.sni entry; the name is the key at -2, the table at -3. */
static int
cfg_sni_entry(struct cfg_ctx *ctx, struct config_tls *tls)
{
    struct config_sni *e = &tls->sni[tls->n_sni];
    const char        *name = lua_tostring(ctx->L, -2);
    size_t             i;

    if (cfg_strdup(ctx, name, &e->name) != 0)
        return -1;
    tls->n_sni++;
    cfg_lowercase(e->name);
    if (!cfg_is_hostname(e->name, true))
        return cfg_fail_key(ctx, name, "expected a host name or '*.domain'");
    for (i = 0; i + 1 < tls->n_sni; i++)
        if (strcmp(tls->sni[i].name, e->name) == 0)
            return cfg_fail_key(ctx, name, "the same name appears twice");
    return cfg_cert_list(ctx, -3, name, true, &e->certs, &e->n_certs);
}

/* tls.sni = { ['example.net'] = { { cert = ..., key = ... } }, ... } */
static int
cfg_sni(struct cfg_ctx *ctx, int t, struct config_tls *tls)
{
    lua_State *L = ctx->L;
    size_t     mark, n = 0;
    int        rc = cfg_enter(ctx, t, "sni", NULL, &mark);

    if (rc <= 0)
        return rc;
    if (cfg_count_named(ctx, "host name keys: { ['example.net'] = { ... } }", &n) != 0)
        return -1;
    tls->sni = calloc(n ? n : 1, sizeof(*tls->sni));
    if (tls->sni == NULL)
        return cfg_fail(ctx, "out of memory");
    for (lua_pushnil(L); lua_next(L, -2) != 0; lua_pop(L, 1))
        if (cfg_sni_entry(ctx, tls) != 0)
            return -1;
    qsort(tls->sni, tls->n_sni, sizeof(*tls->sni), cfg_sni_cmp);
    cfg_leave(ctx, mark);
    return 0;
}

/* Cipher strings go to OpenSSL as they are; tls.c reports what it cannot use. */
static int
cfg_cipher_string(struct cfg_ctx *ctx, int t, const char *key, char **out)
{
    if (cfg_get_string(ctx, t, key, false, out) != 0)
        return -1;
    if (strpbrk(*out, " \t") != NULL)
        return cfg_fail_key(ctx, key, "expected names separated by ':' without spaces");
    return 0;
}

static int
cfg_tls(struct cfg_ctx *ctx, int top, struct config_tls *tls)
{
    static const char *const keys[] = {"certificates", "ciphers", "ciphersuites",
                                       "min_version",  "sni",     "ticket_key_lifetime", NULL};
    static const char *const versions[] = {"1.2", "1.3", NULL};
    static const int version_values[] = {TLS1_2_VERSION, TLS1_3_VERSION};
    size_t mark;
    int    rc = cfg_enter(ctx, top, "tls", keys, &mark);

    if (rc <= 0)
        return rc;
    if (cfg_cert_list(ctx, -1, "certificates", false, &tls->certs, &tls->n_certs) != 0 ||
        cfg_sni(ctx, -1, tls) != 0 ||
        cfg_get_enum(ctx, -1, "min_version", versions, version_values, false,
                     &tls->min_version) != 0 ||
        cfg_cipher_string(ctx, -1, "ciphers", &tls->ciphers) != 0 ||
        cfg_cipher_string(ctx, -1, "ciphersuites", &tls->ciphersuites) != 0 ||
        cfg_get_int(ctx, -1, "ticket_key_lifetime", 1, CFG_MAX_TICKET_LIFETIME, false,
                    &tls->ticket_lifetime) != 0)
        return -1;
    if (tls->n_sni > 0 && tls->n_certs == 0)
        return cfg_fail_missing(ctx, "certificates");
    cfg_leave(ctx, mark);
    return 0;
}

/* ---- listeners -------------------------------------------------------------------------- */

/* address = '*' | '127.0.0.1' | { '127.0.0.1', '::1' } -> NULL-terminated array */
static int
cfg_addresses(struct cfg_ctx *ctx, int t, char ***out)
{
    size_t i;

    if (cfg_get_strings(ctx, t, "address", true, true, out) != 0)
        return -1;
    for (i = 0; (*out)[i] != NULL; i++) {
        if (strcmp((*out)[i], "*") == 0 || cfg_is_ip((*out)[i]))
            continue;
        cfg_push_key(ctx, "address");
        if (i > 0 || (*out)[1] != NULL)
            cfg_push_index(ctx, i + 1);
        return cfg_fail(ctx, "expected an IP address or '*', not '%s'", (*out)[i]);
    }
    return 0;
}

/* sasl = { 'PLAIN', ... } -> SASL_MECH_BIT() set; absent: all four. */
static int
cfg_sasl(struct cfg_ctx *ctx, int t, unsigned *mechs)
{
    char         **names = NULL;
    enum sasl_mech m;
    size_t         i;
    int            rc = cfg_get_strings(ctx, t, "sasl", false, false, &names);

    *mechs = names == NULL ? SASL_MECHS_ALL : 0;
    for (i = 0; rc == 0 && names != NULL && names[i] != NULL; i++) {
        m = sasl_mech_from_name(names[i], strlen(names[i]));
        if (m == SASL_MECH_NONE) {
            cfg_push_key(ctx, "sasl");
            cfg_push_index(ctx, i + 1);
            rc = cfg_fail(ctx, "expected 'PLAIN', 'LOGIN', 'XOAUTH2' or 'OAUTHBEARER'");
        }
        *mechs |= SASL_MECH_BIT(m);
    }
    cfg_free_strings(names);
    return rc;
}

/* proxy_protocol = true, proxy_trusted = { '10.0.0.0/8', '::1' }, proxy_timeout = 5:
 * the trusted list is required with the protocol and meaningless without it. */
static int
cfg_listener_proxy(struct cfg_ctx *ctx, int t, struct config_listener *l)
{
    char **nets = NULL;
    size_t i;
    int    rc;

    l->proxy_timeout = 5;
    if (cfg_get_bool(ctx, t, "proxy_protocol", &l->proxy_protocol) != 0 ||
        cfg_get_seconds(ctx, t, "proxy_timeout", &l->proxy_timeout) != 0 ||
        cfg_get_strings(ctx, t, "proxy_trusted", true, l->proxy_protocol, &nets) != 0)
        return -1;
    if (nets != NULL && !l->proxy_protocol) {
        cfg_free_strings(nets);
        return cfg_fail_key(ctx, "proxy_trusted", "needs proxy_protocol = true");
    }
    for (i = 0; nets != NULL && nets[i] != NULL;)
        i++;
    rc = 0;
    l->proxy_trusted = i > 0 ? calloc(i, sizeof(*l->proxy_trusted)) : NULL;
    if (i > 0 && l->proxy_trusted == NULL)
        rc = cfg_fail(ctx, "out of memory");
    for (l->n_proxy_trusted = 0; rc == 0 && l->n_proxy_trusted < i; l->n_proxy_trusted++) {
        if (cidr_parse(nets[l->n_proxy_trusted], &l->proxy_trusted[l->n_proxy_trusted]) != 0) {
            cfg_push_key(ctx, "proxy_trusted");
            cfg_push_index(ctx, l->n_proxy_trusted + 1);
            rc = cfg_fail(ctx, "expected a network like '10.0.0.0/8' or an address, not '%s'",
                          nets[l->n_proxy_trusted]);
        }
    }
    cfg_free_strings(nets);
    return rc;
}

static bool
cfg_listeners_overlap(const struct config_listener *a, const struct config_listener *b)
{
    char *const *x, *const *y;

    if (a->port != b->port)
        return false;
    for (x = a->addresses; *x; x++)
        for (y = b->addresses; *y; y++)
            if (strcmp(*x, *y) == 0 || strcmp(*x, "*") == 0 || strcmp(*y, "*") == 0)
                return true;
    return false;
}

/* What one listener may not do given the others and the rest of the config. */
static int
cfg_listener_check(struct cfg_ctx *ctx, const struct config *cfg, size_t i)
{
    const struct config_listener *l = &cfg->listeners[i];
    size_t                        j;

    if (l->tls == CONFIG_TLS_NONE && !cfg->insecure)
        return cfg_fail_key(ctx, "tls", "'none' is only allowed with insecure = true");
    if (l->tls != CONFIG_TLS_NONE && cfg->tls.n_certs == 0)
        return cfg_fail_key(ctx, "tls", "needs tls.certificates");
    for (j = 0; j < i; j++) {
        if (strcmp(cfg->listeners[j].name, l->name) == 0)
            return cfg_fail_key(ctx, "name", "another listener has this name");
        if (cfg_listeners_overlap(&cfg->listeners[j], l)) {
            cfg_push_key(ctx, "port");
            return cfg_fail(ctx, "%d is already used by listener '%s' on the same address",
                            l->port, cfg->listeners[j].name);
        }
    }
    return 0;
}

static int
cfg_listener(struct cfg_ctx *ctx, struct config *cfg, size_t i)
{
    static const char *const keys[] = {"name",           "address",       "port",
                                                "tls",            "sasl",          "proxy_protocol",
                                                "proxy_trusted",  "proxy_timeout", NULL};
    struct config_listener  *l = &cfg->listeners[i];
    int                      tls = CONFIG_TLS_NONE;

    if (cfg_check_keys(ctx, -1, keys) != 0 ||
        cfg_get_string(ctx, -1, "name", true, &l->name) != 0 ||
        cfg_addresses(ctx, -1, &l->addresses) != 0 ||
        cfg_get_int(ctx, -1, "port", 1, 65535, true, &l->port) != 0 ||
        cfg_get_enum(ctx, -1, "tls", cfg_tls_mode_names, cfg_tls_mode_values, true, &tls) != 0 ||
        cfg_sasl(ctx, -1, &l->sasl_mechs) != 0 || cfg_listener_proxy(ctx, -1, l) != 0)
        return -1;
    l->tls = (enum config_tls_mode)tls;
    l->require_tls_for_auth = !cfg->insecure;
    return cfg_listener_check(ctx, cfg, i);
}

static int
cfg_listeners(struct cfg_ctx *ctx, int top, struct config *cfg)
{
    size_t mark, imark, n, i;

    if (cfg_enter_list(ctx, top, "listeners", &n, &mark) != 0)
        return -1;
    cfg->listeners = calloc(n, sizeof(*cfg->listeners));
    if (cfg->listeners == NULL)
        return cfg_fail(ctx, "out of memory");
    for (i = 0; i < n; i++) {
        imark = cfg_push_index(ctx, i + 1);
        lua_rawgeti(ctx->L, -1, (int)i + 1);
        cfg->n_listeners++;
        if (cfg_listener(ctx, cfg, i) != 0)
            return -1;
        cfg_leave(ctx, imark);
    }
    cfg_leave(ctx, mark);
    return 0;
}

/* ---- walking the table ------------------------------------------------------------------ */

struct cfg_walk {
    struct cfg_ctx *ctx;
    struct config  *cfg;
    int             rc;
};

static int
cfg_walk_cb(lua_State *L)
{
    static const char *const keys[] = {
        "hostname", "workers", "user",      "users_dir", "insecure", "log_level", "listeners",
        "tls",      "limits",  "timeouts",  "upstreams", "routes",   "pool",
        "policies", "hook_timeout", "audit_log", "lua_dir", "shdict_size", "domains",
        "control_socket", "auth_cache_ttl", "default_domain", "zones", "metrics", "redis", NULL,
    };
    struct cfg_walk *w = lua_touserdata(L, 1);
    struct cfg_ctx  *ctx = w->ctx;
    int              top;

    ctx->L = L;
    lua_getfield(L, LUA_REGISTRYINDEX, CFG_CHUNK);
    top = lua_gettop(L);
    w->rc = -1;
    if (cfg_check_keys(ctx, top, keys) || cfg_general(ctx, top, w->cfg) ||
        cfg_limits(ctx, top, w->cfg) || cfg_timeouts(ctx, top, w->cfg) ||
        cfg_pool(ctx, top, w->cfg) || cfg_tls(ctx, top, &w->cfg->tls) ||
        cfg_listeners(ctx, top, w->cfg) || cfg_upstreams(ctx, top, w->cfg) ||
        cfg_routes(ctx, top, w->cfg) || cfg_redis(ctx, top, w->cfg) ||
        cfg_policy(ctx, top, w->cfg) ||
        cfg_metrics(ctx, top, w->cfg))
        return 0;
    w->rc = 0;
    return 0;
}

/* Everything a file may leave out. Strings are heap copies: getters replace them. */
static int
cfg_defaults(struct cfg_ctx *ctx, struct config *cfg)
{
    char host[256] = "";

    if (gethostname(host, sizeof(host) - 1) != 0 || !cfg_is_hostname(host, false))
        snprintf(host, sizeof(host), "localhost");
    cfg->workers = 0;
    cfg->log_level = LOG_INFO;
    cfg->max_message_size = LIMIT_MAX_MESSAGE_SIZE;
    cfg->max_recipients = LIMIT_MAX_RECIPIENTS;
    cfg->max_line_length = LIMIT_MAX_LINE_LENGTH;
    cfg->max_errors = LIMIT_MAX_ERRORS;
    cfg->max_commands = LIMIT_MAX_COMMANDS;
    cfg->max_messages = LIMIT_MAX_MESSAGES;
    cfg->max_auth_failures = LIMIT_MAX_AUTH_FAILURES;
    cfg->max_auth_jobs = LIMIT_MAX_AUTH_JOBS;
    cfg->max_auth_jobs_per_client = LIMIT_MAX_AUTH_JOBS_PER_CLIENT;
    cfg->max_connections = LIMIT_MAX_CONNECTIONS;
    cfg->max_connections_per_ip = LIMIT_MAX_CONNECTIONS_PER_IP;
    cfg->min_data_rate = LIMIT_MIN_DATA_RATE;
    cfg->client_ipv6_prefix = LIMIT_CLIENT_IPV6_PREFIX;
    cfg->timeout_greeting = TIMEOUT_GREETING;
    cfg->timeout_command = TIMEOUT_COMMAND;
    cfg->timeout_data = TIMEOUT_DATA_BLOCK;
    cfg->timeout_tls = TIMEOUT_TLS;
    cfg->timeout_upstream = TIMEOUT_UPSTREAM;
    cfg->timeout_upstream_data = TIMEOUT_UPSTREAM_DATA_END;
    cfg->timeout_drain = TIMEOUT_DRAIN;
    cfg->pool_max_per_worker = POOL_MAX_PER_WORKER;
    cfg->pool_idle_timeout = POOL_IDLE_TIMEOUT;
    cfg->pool_max_reuse = POOL_MAX_REUSE;
    cfg->tls.min_version = TLS1_2_VERSION;
    cfg->tls.ticket_lifetime = 3600;
    cfg_policy_defaults(cfg);
    cfg->users_dir = cfg_resolve(ctx, "users");
    if (cfg_strdup(ctx, host, &cfg->hostname) || cfg_strdup(ctx, "sluice", &cfg->user) ||
        cfg_strdup(ctx, CFG_DEFAULT_CIPHERS, &cfg->tls.ciphers) ||
        cfg_strdup(ctx, CFG_DEFAULT_CIPHERSUITES, &cfg->tls.ciphersuites) ||
        cfg_strdup(ctx, ctx->file, &cfg->path) || cfg->users_dir == NULL)
        return cfg_fail(ctx, "out of memory");
    return 0;
}

static void
cfg_finish(struct config *cfg)
{
    long n;

    if (cfg->workers == 0) {
        n = sysconf(_SC_NPROCESSORS_ONLN);
        cfg->workers = n < 1 ? 1 : n > CFG_MAX_WORKERS ? CFG_MAX_WORKERS : (int)n;
    }
}

static int
cfg_load_into(struct cfg_ctx *ctx, struct config *cfg)
{
    struct cfg_walk w = {ctx, cfg, -1};

    if (cfg_run(ctx) != 0)
        return -1;
    if (lua_cpcall(ctx->L, cfg_walk_cb, &w) != 0) {
        cfg_lua_error(ctx, lua_tostring(ctx->L, -1)); /* out of memory */
        return -1;
    }
    if (w.rc == 0)
        cfg_finish(cfg);
    return w.rc;
}

struct config *
config_load(const char *path, char *err, size_t errlen)
{
    char           dummy[1];
    struct cfg_ctx ctx = {.file = path, .err = err ? err : dummy, .errlen = err ? errlen : 1};
    struct config *cfg = calloc(1, sizeof(*cfg));
    char          *src = NULL, *dir = NULL, *real;
    int            rc = -1;

    if (ctx.errlen > 0)
        ctx.err[0] = '\0';
    if (cfg == NULL) {
        snprintf(ctx.err, ctx.errlen, "%s: out of memory", path);
        return NULL;
    }
    src = cfg_read_file(path, &ctx.src_len, ctx.err, ctx.errlen);
    dir = cfg_dir_of(path);
    ctx.src = src;
    ctx.dir = dir;
    ctx.L = cfg_sandbox();
    ctx.cfg = cfg;
    real = src != NULL ? realpath(path, NULL) : NULL;
    if (src != NULL && (dir == NULL || ctx.L == NULL))
        snprintf(ctx.err, ctx.errlen, "%s: out of memory", path);
    else if (src != NULL && cfg_note_file(&ctx, real != NULL ? real : path) == 0 &&
             cfg_defaults(&ctx, cfg) == 0)
        rc = cfg_load_into(&ctx, cfg);
    free(real);
    if (ctx.L != NULL)
        lua_close(ctx.L);
    free(src);
    free(dir);
    if (rc == 0)
        return cfg;
    config_free(cfg);
    return NULL;
}

/* ---- freeing and lookups ------------------------------------------------------------ */

static void
cfg_free_certs(struct config_cert *certs, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        free(certs[i].cert_file);
        free(certs[i].key_file);
    }
    free(certs);
}

static void
cfg_free_tls(struct config_tls *tls)
{
    size_t i;

    cfg_free_certs(tls->certs, tls->n_certs);
    for (i = 0; i < tls->n_sni; i++) {
        free(tls->sni[i].name);
        cfg_free_certs(tls->sni[i].certs, tls->sni[i].n_certs);
    }
    free(tls->sni);
    free(tls->ciphers);
    free(tls->ciphersuites);
}

void
config_free(struct config *cfg)
{
    size_t i;
    char **a;

    if (cfg == NULL)
        return;
    for (i = 0; i < cfg->n_listeners; i++) {
        free(cfg->listeners[i].name);
        for (a = cfg->listeners[i].addresses; a != NULL && *a != NULL; a++)
            free(*a);
        free(cfg->listeners[i].addresses);
        free(cfg->listeners[i].proxy_trusted);
    }
    free(cfg->listeners);
    cfg_free_tls(&cfg->tls);
    for (i = 0; i < cfg->n_upstreams; i++)
        cfg_free_upstream(&cfg->upstreams[i]);
    free(cfg->upstreams);
    for (i = 0; i < cfg->n_routes; i++)
        free(cfg->routes[i].sender_domain);
    free(cfg->routes);
    cfg_free_policy(cfg);
    free(cfg->path);
    free(cfg->hostname);
    free(cfg->user);
    free(cfg->users_dir);
    free(cfg->control_socket);
    cfg_free_metrics(cfg->metrics);
    config_redis_free(cfg->redis);
    for (i = 0; i < cfg->n_files; i++) {
        free(cfg->files[i].key);
        free(cfg->files[i].path);
    }
    free(cfg->files);
    free(cfg);
}

