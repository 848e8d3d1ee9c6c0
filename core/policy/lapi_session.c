/* core/policy/lapi_session.c: the `session`, `tx` and `auth` arguments of hooks
 * (docs/lua-api.md "The session", "The transaction", on_auth's `auth`). The session
 * table is made once per session (its `data` lives as long as the session) and its
 * fields are refreshed before every hook in which they changed; tx and auth tables are
 * made per call, tx tables with the methods of lapi_tx.c. The values come in views
 * (lapi_session.h) that core/smtp/smtp_hook.c fills from the session: how the tables look
 * to policies (read-only proxy, which fields, nil for "") is the API's and stays here;
 * where the values live is the session's, and the engine does not reach into it. */
#include <lauxlib.h>
#include <stdio.h>
#include <string.h>

#include "policy/hook.h"
#include "policy/lapi_session.h"
#include "policy/lapi_tx.h"
#include "proto/dsn.h"
#include "proto/sasl.h"

static void
lapi_set_str(lua_State *L, const char *key, const char *val)
{
    if (val != NULL && val[0] != '\0')
        lua_pushstring(L, val);
    else
        lua_pushnil(L);
    lua_setfield(L, -2, key);
}

/* The fields refreshed before each hook, in this order; NULL and "" are both nil. */
static const char *const lapi_session_fields[] = {
    "helo", "tls_version", "tls_cipher", "tls_sni", "user", "domain", "auth_mechanism",
};
#define LAPI_SESSION_N_FIELDS (sizeof(lapi_session_fields) / sizeof(lapi_session_fields[0]))
#define LAPI_SESSION_KEY_MAX  4096 /* the values end to end: helo, user, domain... fit */

static void
lapi_session_values(const struct lapi_session_view *s, const char *v[LAPI_SESSION_N_FIELDS])
{
    v[0] = s->helo;
    v[1] = s->tls_version;
    v[2] = s->tls_cipher;
    v[3] = s->tls_sni;
    v[4] = s->user;
    v[5] = s->domain;
    v[6] = s->auth_mechanism;
}

/* The values end to end, each with its NUL, into key: what the fields hold, as one
 * string. 0 when they do not fit (then the fields are refreshed every time). */
static size_t
lapi_session_key(const char *const v[LAPI_SESSION_N_FIELDS], char *key, size_t size)
{
    size_t i, n, len = 0;

    for (i = 0; i < LAPI_SESSION_N_FIELDS; i++) {
        n = v[i] != NULL ? strlen(v[i]) : 0;
        if (len + n + 1 > size)
            return 0;
        memcpy(key + len, v[i] != NULL ? v[i] : "", n);
        key[len + n] = '\0';
        len += n + 1;
    }
    return len;
}

/* The metatable of the session proxy is at the stack top: bring its fields table up to
 * date. The values they were last set from are kept as a string in the metatable ([1],
 * out of the policies' reach: __metatable hides it), so that an unchanged session (every
 * hook after AUTH, usually) costs a compare instead of seven stores. */
static void
lapi_session_fill(lua_State *L, const struct lapi_session_view *s)
{
    const char *v[LAPI_SESSION_N_FIELDS], *was;
    char        key[LAPI_SESSION_KEY_MAX];
    size_t      len, was_len, i;

    lapi_session_values(s, v);
    len = lapi_session_key(v, key, sizeof(key));
    lua_rawgeti(L, -1, 1);
    was = lua_tolstring(L, -1, &was_len);
    if (len > 0 && was != NULL && was_len == len && memcmp(was, key, len) == 0) {
        lua_pop(L, 1);
        return;
    }
    lua_pop(L, 1);
    lua_getfield(L, -1, "__index");
    for (i = 0; i < LAPI_SESSION_N_FIELDS; i++)
        lapi_set_str(L, lapi_session_fields[i], v[i]);
    lua_pop(L, 1);
    if (len > 0)
        lua_pushlstring(L, key, len);
    else
        lua_pushnil(L);
    lua_rawseti(L, -2, 1);
}

static int
lapi_session_write(lua_State *L)
{
    return luaL_error(L, "session.%s is read-only (notes go in session.data)",
                      lua_isstring(L, 2) ? lua_tostring(L, 2) : "?");
}

/* The fields table, and a read-only proxy over it for policies; the proxy is kept in
 * the registry (*s->lua_ref), the fields table as its metatable's __index. */
static void
lapi_session_make(lua_State *L, const struct lapi_session_view *s)
{
    char id[24];

    lua_newtable(L);                 /* the proxy */
    lua_createtable(L, 1, 3);        /* its metatable; [1]: see lapi_session_fill */
    lua_createtable(L, 0, 13);       /* the fields */
    snprintf(id, sizeof(id), "%08llx", (unsigned long long)s->id);
    lapi_set_str(L, "id", id);
    lapi_set_str(L, "listener", s->listener);
    lapi_set_str(L, "client_address", s->client_address);
    lapi_set_str(L, "client", s->client); /* the connection caps' key (iplimit.h) */
    lua_pushinteger(L, s->client_port);
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
    *s->lua_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

void
lapi_push_session(lua_State *L, const struct lapi_session_view *s)
{
    if (*s->lua_ref > 0)
        lua_rawgeti(L, LUA_REGISTRYINDEX, *s->lua_ref);
    else
        lapi_session_make(L, s);
    lua_getmetatable(L, -1);
    lapi_session_fill(L, s);
    lua_pop(L, 1);
}

void
lapi_session_release(lua_State *L, int *lua_ref)
{
    if (*lua_ref > 0)
        luaL_unref(L, LUA_REGISTRYINDEX, *lua_ref);
    *lua_ref = 0;
}

/* "%08llx.%zu" of the session id and the message number, without snprintf (a tx table
 * is made for every hook call): the transaction id of the 250 reply and the Received:
 * header (smtp_data.c). Returns the length; buf has room for 16 + 1 + 20 digits. */
static size_t
lapi_tx_id(char *buf, unsigned long long sid, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    char              tmp[24];
    size_t            len = 0, k = 0;
    int               shift;

    for (shift = 60; shift >= 0; shift -= 4)
        if ((sid >> shift) != 0 || shift < 32) /* at least 8 digits */
            buf[len++] = hex[(sid >> shift) & 0xf];
    buf[len++] = '.';
    do {
        tmp[k++] = (char)('0' + n % 10);
        n /= 10;
    } while (n != 0);
    while (k > 0)
        buf[len++] = tmp[--k];
    return len;
}

/* An xtext value decoded (RFC 3461 section 4), pushed; value was checked on input. */
static void
lapi_push_xtext(lua_State *L, const char *p, size_t len)
{
    char  *scratch = lua_newuserdata(L, len + 1);
    size_t n = dsn_xtext_decode((struct smtp_str){p, len}, scratch);

    lua_pushlstring(L, scratch, n);
    lua_remove(L, -2);
}

/* ORCPT as policies see it: "rfc822;" and the address decoded; "utf-8;..." (RFC 6533) as
 * sent, its \x{..} escapes being no xtext. */
static void
lapi_push_orcpt(lua_State *L, const char *orcpt)
{
    const char *semi = strchr(orcpt, ';');
    size_t      tl = (size_t)(semi - orcpt);

    if (!smtp_str_ieq((struct smtp_str){orcpt, tl}, "rfc822")) {
        lua_pushstring(L, orcpt);
        return;
    }
    lua_pushlstring(L, orcpt, tl + 1);
    lapi_push_xtext(L, semi + 1, strlen(semi + 1));
    lua_concat(L, 2);
}

/* NOTIFY as policies see it: upper case ("SUCCESS,DELAY"); false when absent. */
static void
lapi_push_notify(lua_State *L, const char *notify)
{
    size_t i, len;
    char  *up;

    if (notify == NULL) {
        lua_pushboolean(L, 0);
        return;
    }
    len = strlen(notify);
    up = lua_newuserdata(L, len);
    for (i = 0; i < len; i++) /* ASCII letters and ',' only: checked on input */
        up[i] = notify[i] >= 'a' && notify[i] <= 'z' ? (char)(notify[i] - 'a' + 'A') : notify[i];
    lua_pushlstring(L, up, len);
    lua_remove(L, -2);
}

/* tx.dsn_ret, dsn_envid, dsn_notify[i], dsn_orcpt[i], and in on_rcpt rcpt_notify and
 * rcpt_orcpt: only what the client sent, so a transaction without DSN costs one test. */
static void
lapi_push_tx_dsn(lua_State *L, const struct lapi_tx_view *tx)
{
    size_t i;

    if (tx->dsn_ret != DSN_RET_NONE)
        lapi_set_str(L, "dsn_ret", tx->dsn_ret == DSN_RET_FULL ? "FULL" : "HDRS");
    if (tx->dsn_envid != NULL) {
        lapi_push_xtext(L, tx->dsn_envid, strlen(tx->dsn_envid));
        lua_setfield(L, -2, "dsn_envid");
    }
    if (tx->dsn_rcpts != NULL) {
        lua_createtable(L, (int)tx->n_rcpts, 0);
        for (i = 0; i < tx->n_rcpts; i++) {
            lapi_push_notify(L, tx->dsn_rcpts[i].notify);
            lua_rawseti(L, -2, (int)i + 1);
        }
        lua_setfield(L, -2, "dsn_notify");
        lua_createtable(L, (int)tx->n_rcpts, 0);
        for (i = 0; i < tx->n_rcpts; i++) {
            if (tx->dsn_rcpts[i].orcpt != NULL)
                lapi_push_orcpt(L, tx->dsn_rcpts[i].orcpt);
            else
                lua_pushboolean(L, 0);
            lua_rawseti(L, -2, (int)i + 1);
        }
        lua_setfield(L, -2, "dsn_orcpt");
    }
    if (tx->dsn_pending != NULL && tx->dsn_pending->notify != NULL) {
        lapi_push_notify(L, tx->dsn_pending->notify);
        lua_setfield(L, -2, "rcpt_notify");
    }
    if (tx->dsn_pending != NULL && tx->dsn_pending->orcpt != NULL) {
        lapi_push_orcpt(L, tx->dsn_pending->orcpt);
        lua_setfield(L, -2, "rcpt_orcpt");
    }
}

void
lapi_push_tx(lua_State *L, const struct lapi_tx_view *tx)
{
    char   id[48];
    size_t i;

    lua_createtable(L, 0, 6);
    lua_pushlstring(L, id, lapi_tx_id(id, (unsigned long long)tx->sid, tx->number));
    lua_setfield(L, -2, "id");
    lua_pushstring(L, tx->sender);
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
    if (tx->with_size) {
        /* as received: tx:add_header/remove_header do not change it */
        lua_pushnumber(L, (lua_Number)tx->size);
        lua_setfield(L, -2, "size");
    }
    lua_pushboolean(L, tx->smtputf8);
    lua_setfield(L, -2, "smtputf8");
    lapi_push_tx_dsn(L, tx);
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
    lua_createtable(L, 0, 5);
    lapi_set_str(L, "kind", v->kind == VERDICT_ACCEPT   ? "accept"
                            : v->kind == VERDICT_REJECT ? "reject"
                                                        : "tempfail");
    lua_pushinteger(L, v->code);
    lua_setfield(L, -2, "code");
    lapi_set_str(L, "enhanced", v->enhanced);
    lapi_set_str(L, "text", v->text);
    if (v->reason[0] != '\0')
        lapi_set_str(L, "reason", v->reason);
}

void
lapi_push_relayed(lua_State *L, int code, const char *enhanced, const char *text,
                  const char *queue_id, const char *upstream)
{
    lua_createtable(L, 0, 6);
    lua_pushboolean(L, code / 100 == 2);
    lua_setfield(L, -2, "success");
    lua_pushinteger(L, code);
    lua_setfield(L, -2, "code");
    lapi_set_str(L, "enhanced", enhanced);
    lapi_set_str(L, "text", text);
    lapi_set_str(L, "queue_id", queue_id);
    lapi_set_str(L, "upstream", upstream);
}
