/* core/policy/lapi_domains.c: the `domains` configuration as Lua sees it (sluice.domains,
 * docs/lua-api.md): one plain table per domain, defaults filled in, secrets left out. Parsing
 * and checking the configuration is config/'s job; this file only copies it into Lua. */
#include <lauxlib.h>

#include "config/config.h"
#include "policy/lapi.h"

/* A NULL-terminated string array as a Lua list at the stack top. */
static void
lapi_push_strings(lua_State *L, char *const *list)
{
    int i;

    lua_newtable(L);
    for (i = 0; list != NULL && list[i] != NULL; i++) {
        lua_pushstring(L, list[i]);
        lua_rawseti(L, -2, i + 1);
    }
}

static void
lapi_push_limits(lua_State *L, const struct config_domain_limits *lim)
{
    lua_newtable(L);
#define LAPI_LIMIT(f)                                                                    \
    if (lim->f != 0) {                                                                   \
        lua_pushnumber(L, (lua_Number)lim->f);                                           \
        lua_setfield(L, -2, #f);                                                         \
    }
    LAPI_LIMIT(messages_per_hour)
    LAPI_LIMIT(user_messages_per_hour)
    LAPI_LIMIT(user_auth_failures_per_hour)
    LAPI_LIMIT(domain_auth_failures_per_hour)
#undef LAPI_LIMIT
}

/* A domain's oauth2 table (config_oauth2.c), defaults filled in; nothing when absent. */
static void
lapi_push_oauth2(lua_State *L, const struct config_oauth2 *o)
{
    if (o == NULL)
        return;
    lua_createtable(L, 0, 7);
    lua_pushstring(L, o->issuer);
    lua_setfield(L, -2, "issuer");
    lapi_push_strings(L, o->audience);
    lua_setfield(L, -2, "audience");
    lua_pushstring(L, o->scope);
    lua_setfield(L, -2, "scope");
    lua_pushstring(L, o->jwks_file); /* nil when absent, as the URLs below */
    lua_setfield(L, -2, "jwks_file");
    lua_pushstring(L, o->jwks_text); /* read with the configuration (privfile.h) */
    lua_setfield(L, -2, "jwks_text");
    lua_pushstring(L, o->jwks_url);
    lua_setfield(L, -2, "jwks_url");
    lua_pushnumber(L, (lua_Number)o->jwks_refresh);
    lua_setfield(L, -2, "jwks_refresh");
    lua_pushstring(L, o->introspection_url);
    lua_setfield(L, -2, "introspection_url");
    lua_pushstring(L, o->client_id);
    lua_setfield(L, -2, "client_id"); /* the secret stays in C: lapi_http.c sends it */
    lua_pushnumber(L, (lua_Number)o->introspection_cache);
    lua_setfield(L, -2, "introspection_cache");
    lua_pushstring(L, o->ca_file);
    lua_setfield(L, -2, "ca_file");
    lua_pushnumber(L, o->http_timeout);
    lua_setfield(L, -2, "timeout");
    lapi_push_strings(L, o->clients);
    lua_setfield(L, -2, "clients");
    lua_pushnumber(L, (lua_Number)o->leeway);
    lua_setfield(L, -2, "leeway");
    lua_pushnumber(L, (lua_Number)o->max_token_lifetime);
    lua_setfield(L, -2, "max_token_lifetime");
    lua_setfield(L, -2, "oauth2");
}

/* One domain's settings as a plain table, defaults filled in. */
static void
lapi_push_domain(lua_State *L, const struct config_domain *d)
{
    size_t i;

    lua_createtable(L, 0, 7);
    lua_pushboolean(L, d->enabled);
    lua_setfield(L, -2, "enabled");
    lapi_push_strings(L, d->auth);
    lua_setfield(L, -2, "auth");
    lua_newtable(L);
    for (i = 0; i < d->n_senders; i++) {
        lapi_push_strings(L, d->senders[i].addresses);
        lua_setfield(L, -2, d->senders[i].user);
    }
    lua_setfield(L, -2, "senders");
    lua_pushboolean(L, d->allow_subdomains);
    lua_setfield(L, -2, "allow_subdomains");
    lua_pushboolean(L, d->allow_null_sender);
    lua_setfield(L, -2, "allow_null_sender");
    lua_pushboolean(L, d->check_header_from);
    lua_setfield(L, -2, "check_header_from");
    lapi_push_limits(L, &d->limits);
    lua_setfield(L, -2, "limits");
    lapi_push_oauth2(L, d->oauth2);
    if (d->ldap != NULL) {
        lapi_ldap_push_settings(L, d->ldap);
        lua_setfield(L, -2, "ldap");
    }
}

void
lapi_domains_push(lua_State *L, const struct config *cfg)
{
    size_t i;

    lua_createtable(L, 0, (int)cfg->n_domains);
    for (i = 0; i < cfg->n_domains; i++) {
        lapi_push_domain(L, &cfg->domains[i]);
        lua_setfield(L, -2, cfg->domains[i].name);
    }
}
