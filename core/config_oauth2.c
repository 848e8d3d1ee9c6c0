/* core/config_oauth2.c: a domain's `oauth2` table (docs/authentication.md): which issuer,
 * audience, scope and keys its bearer tokens must have, which clients may present them,
 * the clock leeway and the longest token lifetime accepted. Checking tokens is
 * policies/oauth2.lua's (with lua/sluice/jwt.lua); this only validates and stores.
 * Keys come from a JWKS file now; a jwks_url key joins here with the fetcher. */
#include <lua.h>
#include <stdlib.h>
#include <string.h>

#include "config_internal.h"

#define CFG_OAUTH2_SCOPE    "smtp.send"
#define CFG_OAUTH2_LEEWAY   60     /* seconds: RFC 7519 4.1.4 "a small leeway" */
#define CFG_OAUTH2_LIFETIME 86400  /* seconds: a day, longer than any provider's default */
#define CFG_OAUTH2_MAX_LEEWAY   600
#define CFG_OAUTH2_MAX_LIFETIME (366 * 86400)

void
cfg_free_oauth2(struct config_oauth2 *o)
{
    if (o == NULL)
        return;
    free(o->issuer);
    cfg_free_strings(o->audience);
    free(o->scope);
    free(o->jwks_file);
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

int
cfg_domain_oauth2(struct cfg_ctx *ctx, int t, struct config_domain *d)
{
    static const char *const keys[] = {
        "issuer", "audience", "scope", "jwks_file", "clients", "leeway",
        "max_token_lifetime", NULL,
    };
    struct config_oauth2 *o;
    size_t                mark;
    int                   rc = cfg_enter(ctx, t, "oauth2", keys, &mark);

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
    if (cfg_get_string(ctx, -1, "issuer", true, &o->issuer) ||
        cfg_get_strings(ctx, -1, "audience", true, true, &o->audience) ||
        cfg_get_string(ctx, -1, "scope", false, &o->scope) ||
        cfg_get_path(ctx, -1, "jwks_file", true, true, &o->jwks_file) ||
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
