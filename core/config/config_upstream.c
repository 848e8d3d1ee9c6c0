/* core/config/config_upstream.c: the relay side of the configuration: upstreams.* (named sets
 * of servers tried in order) and routes.* (sender domain -> set), and the route lookup
 * done for every MAIL FROM. Connecting to the servers is core/relay/upstream.c's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config.h"
#include "config/config_internal.h"
#include "config/config_schema.h"
#include "proto/http_url.h"

/* ---- upstreams ------------------------------------------------------------------------ */

#define CFG_UPSTREAM_MAX_PASSWORD 1024 /* AUTH PLAIN's whole line stays under 3072 octets */
#define CFG_UPSTREAM_MAX_SECRET   4096 /* a refresh token (Microsoft's run to ~2 KB) */

/* key or key_file (its first line, read through util/privfile.c: the file may be root's
 * alone, and a reload after the privileges dropped still reads it) of the table at the
 * stack top. *out stays NULL when neither is given. */
static int
cfg_secret(struct cfg_ctx *ctx, const char *key, size_t max, char **out)
{
    char   file_key[48], msg[96], *path = NULL, buf[CFG_UPSTREAM_MAX_SECRET + 2];
    size_t n;
    int    rc = 0;

    snprintf(file_key, sizeof(file_key), "%s_file", key);
    if (cfg_get_string(ctx, -1, key, false, out) ||
        cfg_get_path(ctx, -1, file_key, false, true, &path))
        return -1;
    if (path == NULL)
        return 0;
    if (*out != NULL) {
        free(path);
        snprintf(msg, sizeof(msg), "give %s or %s, not both", key, file_key);
        return cfg_fail_key(ctx, file_key, msg);
    }
    n = cfg_first_line(path, buf, sizeof(buf));
    snprintf(msg, sizeof(msg), n == 0 ? "no %s on the first line" : "%s too long", key);
    if (n == 0 || n > max)
        rc = cfg_fail_key(ctx, file_key, msg);
    else if ((*out = strdup(buf)) == NULL)
        rc = cfg_fail(ctx, "out of memory");
    explicit_bzero(buf, sizeof(buf));
    free(path);
    return rc;
}

static void
cfg_free_secret(char *s)
{
    if (s != NULL)
        explicit_bzero(s, strlen(s));
    free(s);
}

static void
cfg_free_upstream_oauth2(struct config_upstream_oauth2 *o)
{
    if (o == NULL)
        return;
    free(o->token_url);
    free(o->client_id);
    cfg_free_secret(o->client_secret);
    cfg_free_secret(o->refresh_token);
    free(o->scope);
    free(o->ca_file);
    free(o);
}

/* token_url: https, or http to a loopback host (as the policies' IdP URLs). */
static int
cfg_token_url(struct cfg_ctx *ctx, char **out)
{
    struct http_url u;
    char            err[128];

    if (cfg_get_string(ctx, -1, "token_url", true, out) != 0)
        return -1;
    if (http_url_parse(*out, &u, err, sizeof(err)) != 0)
        return cfg_fail_key(ctx, "token_url", err);
    if (!u.is_https && strcmp(u.host, "localhost") != 0 && strncmp(u.host, "127.", 4) != 0 &&
        strcmp(u.host, "::1") != 0)
        return cfg_fail_key(ctx, "token_url", "must be https:// (http:// only to a loopback host)");
    return 0;
}

/* The credentials' oauth2 = { ... } table (the schema's upstream_auth.oauth2), if any. */
static int
cfg_auth_oauth2(struct cfg_ctx *ctx, const struct config_schema_table *auth_schema,
                struct config_upstream_oauth2 **out)
{
    const struct config_schema_table *schema = config_schema_find(auth_schema, "oauth2")->table;
    struct config_upstream_oauth2    *o;
    size_t                            mark;
    int                               rc = cfg_enter_schema(ctx, -1, "oauth2", schema, &mark);

    if (rc <= 0)
        return rc;
    if ((o = *out = calloc(1, sizeof(*o))) == NULL)
        return cfg_fail(ctx, "out of memory");
    if (cfg_token_url(ctx, &o->token_url) != 0 ||
        cfg_get_string(ctx, -1, "client_id", true, &o->client_id) != 0 ||
        cfg_secret(ctx, "client_secret", CFG_UPSTREAM_MAX_PASSWORD, &o->client_secret) != 0 ||
        cfg_secret(ctx, "refresh_token", CFG_UPSTREAM_MAX_SECRET, &o->refresh_token) != 0 ||
        cfg_get_string(ctx, -1, "scope", false, &o->scope) != 0 ||
        cfg_get_path(ctx, -1, "ca_file", false, true, &o->ca_file) != 0)
        return -1;
    /* RFC 6749 4.4: the client-credentials grant is for confidential clients only. */
    if (o->client_secret == NULL && o->refresh_token == NULL)
        return cfg_fail_missing(ctx, "client_secret");
    cfg_leave(ctx, mark);
    return 0;
}

/* The credentials table at the stack top (a server's auth, a domain's upstream_auth):
 * user, and a password (mechanism 'password', the default) or an oauth2 table (mechanism
 * 'xoauth2'). Into a's auth_* fields; on failure the caller frees what was set. */
static int
cfg_auth_fields(struct cfg_ctx *ctx, struct config_upstream_server *a)
{
    const struct config_schema_table *schema =
        config_schema_find(&config_schema_domain, "upstream_auth")->table;
    char *mech = NULL;
    bool  has_password;
    int   rc;

    if (cfg_get_string(ctx, -1, "user", true, &a->auth_user) != 0 ||
        cfg_get_string(ctx, -1, "mechanism", false, &mech) != 0)
        return -1;
    a->auth_mech = mech != NULL && strcmp(mech, "xoauth2") == 0 ? CONFIG_AUTH_XOAUTH2
                                                               : CONFIG_AUTH_PASSWORD;
    rc = mech != NULL && strcmp(mech, "xoauth2") != 0 && strcmp(mech, "password") != 0;
    free(mech);
    if (rc)
        return cfg_fail_key(ctx, "mechanism", "expected 'password' or 'xoauth2'");
    if (cfg_secret(ctx, "password", CFG_UPSTREAM_MAX_PASSWORD, &a->auth_password) != 0 ||
        cfg_auth_oauth2(ctx, schema, &a->oauth2) != 0)
        return -1;
    has_password = a->auth_password != NULL;
    if (has_password && a->oauth2 != NULL)
        return cfg_fail_key(ctx, "oauth2", "give a password or oauth2, not both");
    if (!has_password && a->oauth2 == NULL)
        return cfg_fail_missing(ctx, "password");
    if (a->oauth2 != NULL && a->auth_mech != CONFIG_AUTH_XOAUTH2)
        return cfg_fail_key(ctx, "oauth2", "needs mechanism = 'xoauth2'");
    if (has_password && a->auth_mech == CONFIG_AUTH_XOAUTH2)
        return cfg_fail_key(ctx, "password", "not with mechanism = 'xoauth2' (it takes oauth2 = { ... })");
    return 0;
}

/* like Postfix's smtp_sasl_security_options = noplaintext */
static int
cfg_auth_needs_tls(struct cfg_ctx *ctx, const struct config *cfg,
                   const struct config_upstream_server *u)
{
    if (u->tls == CONFIG_TLS_NONE && !cfg->insecure)
        return cfg_fail(ctx, "sends a password in clear: needs tls = 'starttls' or "
                             "'implicit' (or insecure = true)");
    return 0;
}

static int
cfg_upstream_auth(struct cfg_ctx *ctx, const struct config *cfg,
                  struct config_upstream_server *u)
{
    const struct config_schema_table *schema =
        config_schema_find(&config_schema_domain, "upstream_auth")->table;
    size_t mark;
    int    rc = cfg_enter_schema(ctx, -1, "auth", schema, &mark);

    if (rc <= 0)
        return rc;
    if (cfg_auth_fields(ctx, u) != 0 || cfg_auth_needs_tls(ctx, cfg, u) != 0)
        return -1;
    cfg_leave(ctx, mark);
    return 0;
}

/* xclient = false | true | 'required' (docs/upstreams.md "XCLIENT and XFORWARD") */
static int
cfg_upstream_xclient(struct cfg_ctx *ctx, struct config_upstream_server *u)
{
    lua_State *L = ctx->L;
    int        type;

    lua_getfield(L, -1, "xclient");
    type = lua_type(L, -1);
    if (type == LUA_TBOOLEAN)
        u->xclient = lua_toboolean(L, -1) ? CONFIG_XCLIENT_ON : CONFIG_XCLIENT_OFF;
    else if (type == LUA_TSTRING && strcmp(lua_tostring(L, -1), "required") == 0)
        u->xclient = CONFIG_XCLIENT_REQUIRED;
    lua_pop(L, 1);
    if (type != LUA_TNIL && type != LUA_TBOOLEAN && u->xclient != CONFIG_XCLIENT_REQUIRED)
        return cfg_fail_key(ctx, "xclient", "expected true, false or 'required'");
    return 0;
}

static int
cfg_upstream_server(struct cfg_ctx *ctx, const struct config *cfg,
                    struct config_upstream_server *u)
{
    static const char *const keys[] = {"host", "port", "tls", "verify", "ca_file",
                                       "tls_name", "auth", "xclient", NULL};
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
        (u->tls_name == NULL && cfg_strdup(ctx, u->host, &u->tls_name) != 0) ||
        cfg_upstream_xclient(ctx, u) != 0)
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

/* ---- domains[name].upstream and upstream_auth: the domain's routing in one place ------ */

/* Index of the set named name, or -1. */
static int
cfg_set_index(const struct config *cfg, const char *name)
{
    size_t i;

    for (i = 0; i < cfg->n_upstreams; i++)
        if (strcmp(cfg->upstreams[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* The routes entry of domain (lowercase), or NULL. */
static struct config_route *
cfg_route_find(struct config *cfg, const char *domain)
{
    size_t i;

    for (i = 0; i < cfg->n_routes; i++)
        if (strcmp(cfg->routes[i].sender_domain, domain) == 0)
            return &cfg->routes[i];
    return NULL;
}

static int
cfg_copy_str(const char *from, char **to)
{
    *to = from != NULL ? strdup(from) : NULL;
    return from != NULL && *to == NULL ? -1 : 0;
}

static int
cfg_oauth2_copy(const struct config_upstream_oauth2 *from, struct config_upstream_oauth2 **out)
{
    struct config_upstream_oauth2 *o = *out = calloc(1, sizeof(*o));

    if (o == NULL || cfg_copy_str(from->token_url, &o->token_url) != 0 ||
        cfg_copy_str(from->client_id, &o->client_id) != 0 ||
        cfg_copy_str(from->client_secret, &o->client_secret) != 0 ||
        cfg_copy_str(from->refresh_token, &o->refresh_token) != 0 ||
        cfg_copy_str(from->scope, &o->scope) != 0 || cfg_copy_str(from->ca_file, &o->ca_file))
        return -1;
    return 0;
}

/* from's connection settings with cred's credentials (user, password or oauth2). */
static int
cfg_server_copy(const struct config_upstream_server *from,
                const struct config_upstream_server *cred, struct config_upstream_server *to)
{
    *to = *from;
    to->host = to->ca_file = to->tls_name = NULL;
    to->auth_user = to->auth_password = NULL;
    to->auth_mech = cred->auth_mech;
    to->oauth2 = NULL;
    if (cfg_copy_str(from->host, &to->host) != 0 ||
        cfg_copy_str(from->ca_file, &to->ca_file) != 0 ||
        cfg_copy_str(from->tls_name, &to->tls_name) != 0 ||
        cfg_copy_str(cred->auth_user, &to->auth_user) != 0 ||
        cfg_copy_str(cred->auth_password, &to->auth_password) != 0 ||
        (cred->oauth2 != NULL && cfg_oauth2_copy(cred->oauth2, &to->oauth2) != 0))
        return -1;
    return 0;
}

/* A new set "<base>/<domain>": base's servers in base's order, each with the domain's
 * credentials (cred's auth_* fields) instead of the set's own. The pool keys connections
 * by server and credentials (upstream_pool.c), so the domain's connections are never
 * another's. */
static int
cfg_domain_set(struct cfg_ctx *ctx, struct config *cfg, int base, const char *domain,
               const struct config_upstream_server *cred, int *out)
{
    struct config_upstream *sets, *set;
    const struct config_upstream *b;
    size_t                  i, len;

    sets = realloc(cfg->upstreams, (cfg->n_upstreams + 1) * sizeof(*sets));
    if (sets == NULL)
        return cfg_fail(ctx, "out of memory");
    cfg->upstreams = sets;
    b = &sets[base];
    set = &sets[cfg->n_upstreams];
    memset(set, 0, sizeof(*set));
    cfg->n_upstreams++;
    len = strlen(b->name) + strlen(domain) + 2;
    set->name = malloc(len);
    set->servers = calloc(b->n_servers, sizeof(*set->servers));
    if (set->name == NULL || set->servers == NULL)
        return cfg_fail(ctx, "out of memory");
    snprintf(set->name, len, "%s/%s", b->name, domain);
    for (i = 0; i < b->n_servers; i++) {
        if (b->servers[i].tls == CONFIG_TLS_NONE && !cfg->insecure)
            return cfg_fail(ctx, "would send a password in clear to %s (upstreams.%s has "
                                 "tls = 'none'; insecure = true allows it)",
                            b->servers[i].host, b->name);
        set->n_servers++;
        if (cfg_server_copy(&b->servers[i], cred, &set->servers[i]) != 0)
            return cfg_fail(ctx, "out of memory");
    }
    *out = (int)(cfg->n_upstreams - 1);
    return 0;
}

/* Point domain's mail at set: its routes entry, or a new one (routes stay sorted). */
static int
cfg_domain_route(struct cfg_ctx *ctx, struct config *cfg, const char *domain, int set)
{
    struct config_route *r = cfg_route_find(cfg, domain), *routes;

    if (r != NULL) {
        r->upstream = set;
        return 0;
    }
    routes = realloc(cfg->routes, (cfg->n_routes + 1) * sizeof(*routes));
    if (routes == NULL)
        return cfg_fail(ctx, "out of memory");
    cfg->routes = routes;
    r = &routes[cfg->n_routes];
    r->upstream = set;
    r->sender_domain = NULL;
    if (cfg_strdup(ctx, domain, &r->sender_domain) != 0)
        return -1;
    cfg->n_routes++;
    qsort(cfg->routes, cfg->n_routes, sizeof(*cfg->routes), cfg_route_cmp);
    return 0;
}

/* upstream_auth = { user = ..., password = ... | password_file = ... | mechanism =
 * 'xoauth2', oauth2 = { ... } } at t. */
static int
cfg_domain_upstream_auth(struct cfg_ctx *ctx, int t, struct config *cfg, const char *domain,
                         int *set)
{
    const struct config_schema_table *schema =
        config_schema_find(&config_schema_domain, "upstream_auth")->table;
    struct config_upstream_server cred;
    size_t                        mark;
    int                           rc = cfg_enter_schema(ctx, t, "upstream_auth", schema, &mark);

    if (rc <= 0)
        return rc;
    memset(&cred, 0, sizeof(cred));
    rc = cfg_auth_fields(ctx, &cred);
    if (rc == 0)
        rc = cfg_domain_set(ctx, cfg, *set, domain, &cred, set);
    free(cred.auth_user);
    cfg_free_secret(cred.auth_password);
    cfg_free_upstream_oauth2(cred.oauth2);
    if (rc == 0)
        cfg_leave(ctx, mark);
    return rc;
}

int
cfg_domain_upstream(struct cfg_ctx *ctx, int t, struct config *cfg, const char *domain)
{
    const struct config_route *route = cfg_route_find(cfg, domain);
    char                      *name = NULL;
    int                        set = route != NULL ? route->upstream : 0;
    bool                       named, has_auth;
    size_t                     mark;

    if (cfg_get_string(ctx, t, "upstream", false, &name) != 0)
        return -1;
    named = name != NULL;
    if (named) {
        set = cfg_set_index(cfg, name);
        mark = cfg_push_key(ctx, "upstream");
        if (set < 0)
            cfg_fail(ctx, "no upstream set named '%s'", name);
        else if (route != NULL)
            cfg_fail(ctx, "routes names this domain too: give one of them (routes is the "
                          "older spelling)");
        free(name);
        if (set < 0 || route != NULL)
            return -1;
        cfg_pop(ctx, mark);
    }
    lua_getfield(ctx->L, t, "upstream_auth");
    has_auth = !lua_isnil(ctx->L, -1);
    lua_pop(ctx->L, 1);
    if (!named && !has_auth)
        return 0;
    if (cfg_domain_upstream_auth(ctx, t, cfg, domain, &set) != 0)
        return -1;
    return cfg_domain_route(ctx, cfg, domain, set);
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
        cfg_free_secret(u->auth_password);
        cfg_free_upstream_oauth2(u->oauth2);
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
