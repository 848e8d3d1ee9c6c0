/* core/config/config_upstream.c: the relay side of the configuration: upstreams.* (named sets
 * of servers tried in order) and routes.* (sender domain -> set), and the route lookup
 * done for every MAIL FROM. Connecting to the servers is core/relay/upstream.c's. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config.h"
#include "config/config_internal.h"

/* ---- upstreams ------------------------------------------------------------------------ */

static int
cfg_upstream_auth(struct cfg_ctx *ctx, const struct config *cfg,
                  struct config_upstream_server *u)
{
    static const char *const keys[] = {"user", "password", NULL};
    size_t mark;
    int    rc = cfg_enter(ctx, -1, "auth", keys, &mark);

    if (rc <= 0)
        return rc;
    if (cfg_get_string(ctx, -1, "user", true, &u->auth_user) != 0 ||
        cfg_get_string(ctx, -1, "password", true, &u->auth_password) != 0)
        return -1;
    /* like Postfix's smtp_sasl_security_options = noplaintext */
    if (u->tls == CONFIG_TLS_NONE && !cfg->insecure)
        return cfg_fail(ctx, "sends a password in clear: needs tls = 'starttls' or "
                             "'implicit' (or insecure = true)");
    cfg_leave(ctx, mark);
    return 0;
}

static int
cfg_upstream_server(struct cfg_ctx *ctx, const struct config *cfg,
                    struct config_upstream_server *u)
{
    static const char *const keys[] = {"host", "port", "tls", "verify", "ca_file",
                                       "tls_name", "auth", NULL};
    int tls = CONFIG_TLS_STARTTLS;

    u->verify = true;
    if (cfg_check_keys(ctx, -1, keys) != 0 || cfg_get_string(ctx, -1, "host", true, &u->host) ||
        cfg_get_enum(ctx, -1, "tls", cfg_tls_mode_names, cfg_tls_mode_values, false, &tls))
        return -1;
    if (!cfg_is_hostname(u->host, false) && !cfg_is_ip(u->host))
        return cfg_fail_key(ctx, "host", "expected a host name or an IP address");
    u->tls = (enum config_tls_mode)tls;
    u->port = u->tls == CONFIG_TLS_IMPLICIT ? 465 : 25;
    if (cfg_get_int(ctx, -1, "port", 1, 65535, false, &u->port) != 0 ||
        cfg_get_bool(ctx, -1, "verify", &u->verify) != 0 ||
        cfg_get_path(ctx, -1, "ca_file", false, true, &u->ca_file) != 0 ||
        cfg_get_string(ctx, -1, "tls_name", false, &u->tls_name) != 0 ||
        (u->tls_name == NULL && cfg_strdup(ctx, u->host, &u->tls_name) != 0))
        return -1;
    return cfg_upstream_auth(ctx, cfg, u);
}

/* upstreams.<name> = { server, ... } */
static int
cfg_upstream_set(struct cfg_ctx *ctx, const struct config *cfg, const char *name,
                 struct config_upstream *set)
{
    size_t mark, imark, n, i;

    if (cfg_strdup(ctx, name, &set->name) != 0 || cfg_enter_list(ctx, -1, name, &n, &mark))
        return -1;
    set->servers = calloc(n, sizeof(*set->servers));
    if (set->servers == NULL)
        return cfg_fail(ctx, "out of memory");
    set->n_servers = n;
    for (i = 0; i < n; i++) {
        imark = cfg_push_index(ctx, i + 1);
        lua_rawgeti(ctx->L, -1, (int)i + 1);
        if (lua_type(ctx->L, -1) != LUA_TTABLE)
            return cfg_fail(ctx, "expected a table { host = ..., port = ... }");
        if (cfg_upstream_server(ctx, cfg, &set->servers[i]) != 0)
            return -1;
        cfg_leave(ctx, imark);
    }
    cfg_leave(ctx, mark);
    return 0;
}

/* 'default' first, then by name, so indices do not depend on hash order. */
static int
cfg_set_name_cmp(const void *a, const void *b)
{
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;

    if (strcmp(x, y) == 0)
        return 0;
    if (strcmp(x, "default") == 0)
        return -1;
    if (strcmp(y, "default") == 0)
        return 1;
    return strcmp(x, y);
}

/* The set names (borrowed from the table on the stack top, which outlives them). */
static const char **
cfg_set_names(struct cfg_ctx *ctx, size_t *n)
{
    lua_State   *L = ctx->L;
    const char **names;

    *n = 0;
    for (lua_pushnil(L); lua_next(L, -2) != 0; lua_pop(L, 1), (*n)++)
        if (lua_type(L, -2) != LUA_TSTRING) {
            cfg_fail(ctx, "expected named sets: { default = { ... }, other = { ... } }");
            return NULL;
        }
    names = calloc(*n ? *n : 1, sizeof(*names));
    if (names == NULL) {
        cfg_fail(ctx, "out of memory");
        return NULL;
    }
    *n = 0;
    for (lua_pushnil(L); lua_next(L, -2) != 0; lua_pop(L, 1))
        names[(*n)++] = lua_tostring(L, -2);
    qsort(names, *n, sizeof(*names), cfg_set_name_cmp);
    return names;
}

int
cfg_upstreams(struct cfg_ctx *ctx, int top, struct config *cfg)
{
    const char **names;
    size_t       mark, n, i;
    int          rc = cfg_enter(ctx, top, "upstreams", NULL, &mark);

    if (rc == 0)
        return cfg_fail_missing(ctx, "upstreams");
    if (rc < 0 || (names = cfg_set_names(ctx, &n)) == NULL)
        return -1;
    if (n == 0 || strcmp(names[0], "default") != 0) {
        free(names);
        return cfg_fail_missing(ctx, "default");
    }
    cfg->upstreams = calloc(n, sizeof(*cfg->upstreams));
    rc = cfg->upstreams == NULL ? cfg_fail(ctx, "out of memory") : 0;
    for (i = 0; rc == 0 && i < n; i++) {
        cfg->n_upstreams++;
        rc = cfg_upstream_set(ctx, cfg, names[i], &cfg->upstreams[i]);
    }
    free(names);
    if (rc != 0)
        return -1;
    cfg_leave(ctx, mark);
    return 0;
}

/* ---- routes ------------------------------------------------------------------------- */

static int
cfg_route_cmp(const void *a, const void *b)
{
    return strcmp(((const struct config_route *)a)->sender_domain,
                  ((const struct config_route *)b)->sender_domain);
}

/* One routes entry: the domain at -2, the set name at -1. */
static int
cfg_route(struct cfg_ctx *ctx, struct config *cfg)
{
    struct config_route *r = &cfg->routes[cfg->n_routes];
    const char          *domain = lua_tostring(ctx->L, -2), *set;
    size_t               mark = cfg_push_key(ctx, domain), i;

    if (cfg_strdup(ctx, domain, &r->sender_domain) != 0)
        return -1;
    cfg->n_routes++;
    cfg_lowercase(r->sender_domain);
    if (!cfg_is_hostname(r->sender_domain, false))
        return cfg_fail(ctx, "expected a domain name as the key");
    for (i = 0; i + 1 < cfg->n_routes; i++)
        if (strcmp(cfg->routes[i].sender_domain, r->sender_domain) == 0)
            return cfg_fail(ctx, "the same domain appears twice");
    if (lua_type(ctx->L, -1) != LUA_TSTRING)
        return cfg_fail(ctx, "expected the name of an upstream set");
    set = lua_tostring(ctx->L, -1);
    for (i = 0; i < cfg->n_upstreams; i++)
        if (strcmp(cfg->upstreams[i].name, set) == 0)
            break;
    if (i == cfg->n_upstreams)
        return cfg_fail(ctx, "no upstream set named '%s'", set);
    r->upstream = (int)i;
    cfg_pop(ctx, mark);
    return 0;
}

int
cfg_routes(struct cfg_ctx *ctx, int top, struct config *cfg)
{
    lua_State *L = ctx->L;
    size_t     mark, n = 0;
    int        rc = cfg_enter(ctx, top, "routes", NULL, &mark);

    if (rc <= 0)
        return rc;
    for (lua_pushnil(L); lua_next(L, -2) != 0; lua_pop(L, 1), n++)
        if (lua_type(L, -2) != LUA_TSTRING)
            return cfg_fail(ctx, "expected { ['example.net'] = 'set name', ... }");
    cfg->routes = calloc(n ? n : 1, sizeof(*cfg->routes));
    if (cfg->routes == NULL)
        return cfg_fail(ctx, "out of memory");
    for (lua_pushnil(L); lua_next(L, -2) != 0; lua_pop(L, 1))
        if (cfg_route(ctx, cfg) != 0)
            return -1;
    qsort(cfg->routes, cfg->n_routes, sizeof(*cfg->routes), cfg_route_cmp);
    cfg_leave(ctx, mark);
    return 0;
}

void
cfg_free_upstream(struct config_upstream *set)
{
    struct config_upstream_server *u;
    size_t                         i;

    for (i = 0; i < set->n_servers; i++) {
        u = &set->servers[i];
        free(u->host);
        free(u->ca_file);
        free(u->tls_name);
        free(u->auth_user);
        if (u->auth_password != NULL)
            memset(u->auth_password, 0, strlen(u->auth_password));
        free(u->auth_password);
    }
    free(set->servers);
    free(set->name);
}

/* ---- lookups ------------------------------------------------------------------------ */

/* Compare a lowercase NUL-terminated route domain with domain[0..len), ignoring case. */
static int
cfg_domain_cmp(const char *route, const char *domain, size_t len)
{
    int c = strncasecmp(route, domain, len);

    if (c != 0)
        return c;
    return route[len] == '\0' ? 0 : 1;
}

int
config_route_for_domain(const struct config *cfg, const char *domain, size_t len)
{
    size_t lo = 0, hi = cfg->n_routes, mid;
    int    c;

    if (domain == NULL || len == 0 || memchr(domain, '\0', len) != NULL)
        return 0;
    while (lo < hi) { /* routes are sorted by lowercase domain */
        mid = lo + (hi - lo) / 2;
        c = cfg_domain_cmp(cfg->routes[mid].sender_domain, domain, len);
        if (c == 0)
            return cfg->routes[mid].upstream;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}
