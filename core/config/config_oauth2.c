/* core/config/config_oauth2.c: a domain's `oauth2` table (docs/authentication.md): which issuer,
 * audience, scope and keys its bearer tokens must have, which clients may present them,
 * the clock leeway and the longest token lifetime accepted. Checking tokens is
 * policies/oauth2.lua's (with lua/sluice/jwt.lua); this only validates and stores.
 * Keys come from a JWKS file or a JWKS URL (fetched by lua/sluice/jwks.lua through
 * sluice.http); opaque tokens go to an RFC 7662 introspection endpoint, whose client
 * secret stays in C (lapi_http.c sends it). */
#include <lua.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_internal.h"
#include "config/config_schema.h"
#include "proto/http_url.h"
#include "util/privfile.h"

#define CFG_OAUTH2_SCOPE    "smtp.send"
#define CFG_OAUTH2_LEEWAY   60     /* seconds: RFC 7519 4.1.4 "a small leeway" */
#define CFG_OAUTH2_LIFETIME 86400  /* seconds: a day, longer than any provider's default */
#define CFG_OAUTH2_MAX_LEEWAY   600
#define CFG_OAUTH2_MAX_LIFETIME (366 * 86400)
#define CFG_OAUTH2_REFRESH      3600   /* seconds a fetched JWKS is kept */
#define CFG_OAUTH2_INTROSPECTION_CACHE 300 /* seconds: the Python design's 5 minutes */
#define CFG_OAUTH2_HTTP_TIMEOUT 5.0
#define CFG_OAUTH2_MAX_SECRET   1024
#define CFG_OAUTH2_MAX_JWKS     (1024 * 1024) /* octets of a JWKS file; real ones: a few KiB */

void
cfg_free_oauth2(struct config_oauth2 *o)
{
    if (o == NULL)
        return;
    free(o->issuer);
    cfg_free_strings(o->audience);
    free(o->scope);
    free(o->jwks_file);
    free(o->jwks_text);
    free(o->jwks_url);
    free(o->introspection_url);
    free(o->client_id);
    if (o->client_secret != NULL)
        explicit_bzero(o->client_secret, strlen(o->client_secret));
    free(o->client_secret);
    free(o->ca_file);
    cfg_free_strings(o->clients);
    free(o);
}

static bool
cfg_has_backend(const struct config_domain *d, const char *name)
{
    for (size_t i = 0; d->auth != NULL && d->auth[i] != NULL; i++)
        if (strcmp(d->auth[i], name) == 0)
            return true;
    return false;
}

/* clients = { 'a', ... }: an empty list means any client, as leaving it out does. */
static int
cfg_oauth2_clients(struct cfg_ctx *ctx, int t, struct config_oauth2 *o)
{
    lua_State *L = ctx->L;
    int        top = lua_gettop(L);
    bool       empty;

    lua_pushstring(L, "clients");
    lua_rawget(L, t < 0 ? top + 1 + t : t);
    empty = lua_type(L, -1) == LUA_TTABLE && (lua_pushnil(L), lua_next(L, -2) == 0);
    lua_settop(L, top);
    if (empty)
        return 0;
    return cfg_get_strings(ctx, t, "clients", false, false, &o->clients);
}

/* An https URL, or http to a loopback host (a local proxy or a test). */
static int
cfg_oauth2_url(struct cfg_ctx *ctx, int t, const char *key, char **out)
{
    struct http_url u;
    char            err[128];

    if (cfg_get_string(ctx, t, key, false, out) != 0)
        return -1;
    if (*out == NULL)
        return 0;
    if (http_url_parse(*out, &u, err, sizeof(err)) != 0)
        return cfg_fail_key(ctx, key, err);
    if (!u.is_https && strcmp(u.host, "localhost") != 0 && strncmp(u.host, "127.", 4) != 0 &&
        strcmp(u.host, "::1") != 0)
        return cfg_fail_key(ctx, key, "must be https:// (http:// only to a loopback host)");
    return 0;
}

/* client_secret or client_secret_file (its first line), for introspection. */
static int
cfg_oauth2_secret(struct cfg_ctx *ctx, int t, struct config_oauth2 *o)
{
    char  *path = NULL, buf[CFG_OAUTH2_MAX_SECRET + 2];
    size_t n;
    int    rc = 0;

    if (cfg_get_string(ctx, t, "client_secret", false, &o->client_secret) ||
        cfg_get_path(ctx, t, "client_secret_file", false, true, &path))
        return -1;
    if (path == NULL)
        return 0;
    if (o->client_secret != NULL) {
        free(path);
        return cfg_fail_key(ctx, "client_secret_file",
                            "give client_secret or client_secret_file, not both");
    }
    n = cfg_first_line(path, buf, sizeof(buf));
    if (n == 0 || n > CFG_OAUTH2_MAX_SECRET)
        rc = cfg_fail_key(ctx, "client_secret_file",
                          n == 0 ? "no secret on the first line" : "secret too long");
    else if ((o->client_secret = strdup(buf)) == NULL)
        rc = cfg_fail(ctx, "out of memory");
    explicit_bzero(buf, sizeof(buf));
    free(path);
    return rc;
}

/* The JWKS file read now, with the configuration: a reload reads it again, and the
 * policies get the text (lapi_core.c), since the service user may not be allowed to open
 * it (privfile.h). Parsing it is lua/sluice/jwks.lua's. */
static int
cfg_oauth2_jwks_text(struct cfg_ctx *ctx, struct config_oauth2 *o)
{
    char   err[512];
    size_t len;

    o->jwks_text = privfile_read(o->jwks_file, CFG_OAUTH2_MAX_JWKS, &len, err, sizeof(err));
    return o->jwks_text == NULL ? cfg_fail_key(ctx, "jwks_file", err) : 0;
}

/* Where keys and answers come from: a JWKS file or URL (not both), and introspection
 * with its client; at least one of the three. */
static int
cfg_oauth2_sources(struct cfg_ctx *ctx, int t, struct config_oauth2 *o)
{
    if (cfg_get_path(ctx, t, "jwks_file", false, true, &o->jwks_file) ||
        cfg_oauth2_url(ctx, t, "jwks_url", &o->jwks_url) ||
        cfg_get_uint(ctx, t, "jwks_refresh", 60, 7 * 86400, &o->jwks_refresh) ||
        cfg_oauth2_url(ctx, t, "introspection_url", &o->introspection_url) ||
        cfg_get_string(ctx, t, "client_id", false, &o->client_id) ||
        cfg_oauth2_secret(ctx, t, o) ||
        cfg_get_uint(ctx, t, "introspection_cache", 0, 86400, &o->introspection_cache) ||
        cfg_get_path(ctx, t, "ca_file", false, true, &o->ca_file) ||
        cfg_get_seconds(ctx, t, "timeout", &o->http_timeout))
        return -1;
    if (o->jwks_file != NULL && o->jwks_url != NULL)
        return cfg_fail_key(ctx, "jwks_url", "give jwks_file or jwks_url, not both");
    if (o->jwks_file != NULL && cfg_oauth2_jwks_text(ctx, o) != 0)
        return -1;
    if (o->jwks_file == NULL && o->jwks_url == NULL && o->introspection_url == NULL)
        return cfg_fail_key(ctx, "jwks_file",
                            "required (or jwks_url, or introspection_url for opaque tokens)");
    if (o->introspection_url != NULL && o->client_id == NULL)
        return cfg_fail_key(ctx, "client_id", "required with introspection_url (RFC 7662 2.1)");
    if (o->introspection_url != NULL && o->client_secret == NULL)
        return cfg_fail_key(ctx, "client_secret",
                            "required with introspection_url (or client_secret_file)");
    if (o->introspection_url == NULL && (o->client_id != NULL || o->client_secret != NULL))
        return cfg_fail_key(ctx, "client_id", "only with introspection_url");
    return 0;
}

int
cfg_domain_oauth2(struct cfg_ctx *ctx, int t, struct config_domain *d)
{
    struct config_oauth2 *o;
    size_t                mark;
    int                   rc = cfg_enter_schema(
        ctx, t, "oauth2", config_schema_find(&config_schema_domain, "oauth2")->table, &mark);

    if (rc < 0)
        return -1;
    if (rc == 0) {
        if (cfg_has_backend(d, "oauth2"))
            return cfg_fail_key(ctx, "auth",
                                "lists 'oauth2' but the domain has no oauth2 table");
        return 0;
    }
    o = d->oauth2 = calloc(1, sizeof(*o));
    if (o == NULL)
        return cfg_fail(ctx, "out of memory");
    o->leeway = CFG_OAUTH2_LEEWAY;
    o->max_token_lifetime = CFG_OAUTH2_LIFETIME;
    o->jwks_refresh = CFG_OAUTH2_REFRESH;
    o->introspection_cache = CFG_OAUTH2_INTROSPECTION_CACHE;
    o->http_timeout = CFG_OAUTH2_HTTP_TIMEOUT;
    if (cfg_get_string(ctx, -1, "issuer", true, &o->issuer) ||
        cfg_get_strings(ctx, -1, "audience", true, true, &o->audience) ||
        cfg_get_string(ctx, -1, "scope", false, &o->scope) ||
        cfg_oauth2_sources(ctx, -1, o) ||
        cfg_oauth2_clients(ctx, -1, o) ||
        cfg_get_uint(ctx, -1, "leeway", 0, CFG_OAUTH2_MAX_LEEWAY, &o->leeway) ||
        cfg_get_uint(ctx, -1, "max_token_lifetime", 60, CFG_OAUTH2_MAX_LIFETIME,
                     &o->max_token_lifetime))
        return -1;
    if (o->scope == NULL && cfg_strdup(ctx, CFG_OAUTH2_SCOPE, &o->scope) != 0)
        return -1;
    cfg_leave(ctx, mark);
    return 0;
}
