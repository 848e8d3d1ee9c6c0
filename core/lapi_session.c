/* core/lapi_session.c: the `session`, `tx` and `auth` arguments of hooks
 * (docs/lua-api.md "The session", "The transaction", on_auth's `auth`). The session
 * table is made once per session (its `data` lives as long as the session) and its
 * fields are refreshed before every hook; tx and auth tables are made per call, tx
 * tables with the methods of lapi_tx.c. */
#include <lauxlib.h>
#include <stdio.h>

#include "conn.h"
#include "lapi_session.h"
#include "lapi_tx.h"
#include "smtp_session.h"
#include "tls.h"

static void
lapi_set_str(lua_State *L, const char *key, const char *val)
{
    if (val != NULL && val[0] != '\0')
        lua_pushstring(L, val);
    else
        lua_pushnil(L);
    lua_setfield(L, -2, key);
}

static void
lapi_session_fill(lua_State *L, struct smtp_session *s)
{
    SSL *ssl = s->tls ? s->conn->ssl : NULL;

    lapi_set_str(L, "helo", s->ehlo_seen ? s->helo : NULL);
    lapi_set_str(L, "tls_version", ssl ? tls_version_name(ssl) : NULL);
    lapi_set_str(L, "tls_cipher", ssl ? tls_cipher_name(ssl) : NULL);
    lapi_set_str(L, "tls_sni", ssl ? tls_sni_name(ssl) : NULL);
    lapi_set_str(L, "user", s->authenticated ? s->user : NULL);
    lapi_set_str(L, "domain", s->authenticated ? s->domain : NULL);
    lapi_set_str(L, "auth_mechanism", s->authenticated ? sasl_mech_name(s->auth_mech) : NULL);
}

static int
lapi_session_write(lua_State *L)
{
    return luaL_error(L, "session.%s is read-only (notes go in session.data)",
                      lua_isstring(L, 2) ? lua_tostring(L, 2) : "?");
}

/* The fields table, and a read-only proxy over it for policies; the proxy is kept in
 * the registry (s->lua_session), the fields table as its metatable's __index. */
static void
lapi_session_make(lua_State *L, struct smtp_session *s)
{
    char id[24];

    lua_newtable(L);                 /* the proxy */
    lua_createtable(L, 0, 3);        /* its metatable */
    lua_createtable(L, 0, 12);       /* the fields */
    snprintf(id, sizeof(id), "%08llx", (unsigned long long)s->id);
    lapi_set_str(L, "id", id);
    lapi_set_str(L, "listener", s->lcfg->name);
    lapi_set_str(L, "client_address", s->peer);
    lua_pushinteger(L, s->peer_port);
    lua_setfield(L, -2, "client_port");
    lua_newtable(L);
    lua_setfield(L, -2, "data");
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, lapi_session_write);
    lua_setfield(L, -2, "__newindex");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable"); /* getmetatable() and setmetatable() stay out */
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    s->lua_session = luaL_ref(L, LUA_REGISTRYINDEX);
}

void
lapi_push_session(lua_State *L, struct smtp_session *s)
{
    if (s->lua_session > 0)
        lua_rawgeti(L, LUA_REGISTRYINDEX, s->lua_session);
    else
        lapi_session_make(L, s);
    lua_getmetatable(L, -1);
    lua_getfield(L, -1, "__index");
    lapi_session_fill(L, s);
    lua_pop(L, 2);
}

void
lapi_session_release(lua_State *L, struct smtp_session *s)
{
    if (s->lua_session > 0)
        luaL_unref(L, LUA_REGISTRYINDEX, s->lua_session);
    s->lua_session = 0;
}

void
lapi_push_tx(lua_State *L, struct smtp_session *s, bool with_size)
{
    const struct smtp_tx *tx = s->tx;
    char                  id[48];
    size_t                i;

    lua_createtable(L, 0, 6);
    snprintf(id, sizeof(id), "%08llx.%zu", (unsigned long long)s->id, s->messages + 1);
    lapi_set_str(L, "id", id);
    lua_pushstring(L, tx->mail_from);
    lua_setfield(L, -2, "sender");
    lua_createtable(L, (int)tx->n_rcpts, 0);
    for (i = 0; i < tx->n_rcpts; i++) {
        lua_pushstring(L, tx->rcpts[i]);
        lua_rawseti(L, -2, (int)i + 1);
    }
    lua_setfield(L, -2, "recipients");
    if (tx->declared_size_set) {
        lua_pushnumber(L, (lua_Number)tx->declared_size);
        lua_setfield(L, -2, "declared_size");
    }
    if (with_size) {
        /* as received: tx:add_header/remove_header do not change it */
        lua_pushnumber(L, (lua_Number)tx->dec.size);
        lua_setfield(L, -2, "size");
    }
    lua_pushboolean(L, tx->smtputf8);
    lua_setfield(L, -2, "smtputf8");
    lapi_tx_methods(L);
}

void
lapi_push_auth(lua_State *L, const struct sasl_creds *creds, bool with_secret)
{
    lua_createtable(L, 0, 3);
    lua_pushstring(L, sasl_mech_name(creds->mech));
    lua_setfield(L, -2, "mechanism");
    lua_pushstring(L, creds->authcid != NULL ? creds->authcid : "");
    lua_setfield(L, -2, "user");
    if (!with_secret)
        return;
    lua_pushlstring(L, creds->secret != NULL ? creds->secret : "", creds->secret_len);
    lua_setfield(L, -2, creds->is_token ? "token" : "password");
}

void
lapi_push_verdict(lua_State *L, const struct verdict *v)
{
    lua_createtable(L, 0, 4);
    lapi_set_str(L, "kind", v->kind == VERDICT_ACCEPT   ? "accept"
                            : v->kind == VERDICT_REJECT ? "reject"
                                                        : "tempfail");
    lua_pushinteger(L, v->code);
    lua_setfield(L, -2, "code");
    lapi_set_str(L, "enhanced", v->enhanced);
    lapi_set_str(L, "text", v->text);
}

void
lapi_push_relayed(lua_State *L, const struct smtp_relayed *r)
{
    lua_createtable(L, 0, 6);
    lua_pushboolean(L, r->code / 100 == 2);
    lua_setfield(L, -2, "success");
    lua_pushinteger(L, r->code);
    lua_setfield(L, -2, "code");
    lapi_set_str(L, "enhanced", r->enhanced);
    lapi_set_str(L, "text", r->text);
    lapi_set_str(L, "queue_id", r->queue_id);
    lapi_set_str(L, "upstream", r->upstream);
}
