/* core/policy/lapi_log.c: sluice.log (a line in sluice's JSON log) and sluice.audit (a line in
 * audit_log, encoded by lua-cjson, queued to the audit writer). Names and fields are
 * checked here; misuse raises. */
#include <ev.h>
#include <lauxlib.h>
#include <stdbool.h>
#include <string.h>

#include "policy/hook_run.h"
#include "policy/lapi.h"
#include "policy/lapi_json.h"
#include "util/audit.h"
#include "util/log.h"

#define LAPI_AUDIT_MAX 65536 /* octets of one audit line */

/* Lowercase letters, digits and '_', plus '.' when dots; non-empty. */
static bool
lapi_is_name(const char *s, size_t len, bool dots)
{
    size_t i;

    if (len == 0 || len > 64)
        return false;
    for (i = 0; i < len; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
              (dots && s[i] == '.')))
            return false;
    return true;
}

static int
lapi_log_level(lua_State *L, int arg)
{
    static const char *const names[] = {"debug", "info", "notice", "warning", "err", NULL};
    static const int         levels[] = {LOG_DEBUG, LOG_INFO, LOG_NOTICE, LOG_WARNING, LOG_ERR};

    return levels[luaL_checkoption(L, arg, NULL, names)];
}

/* Raise unless the fields table at index 3 holds only allowed names and scalars. */
static void
lapi_log_check_fields(lua_State *L)
{
    static const char *const reserved[] = {"ts", "level", "event", "sid", "policy", NULL};
    const char              *k;
    int                      i;

    for (lua_pushnil(L); lua_next(L, 3) != 0; lua_pop(L, 1)) {
        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_argerror(L, 3, "field names must be strings");
        k = lua_tostring(L, -2);
        for (i = 0; reserved[i] != NULL; i++)
            if (strcmp(k, reserved[i]) == 0)
                luaL_error(L, "sluice.log: field name '%s' is reserved", k);
        if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER &&
            lua_type(L, -1) != LUA_TBOOLEAN)
            luaL_error(L, "sluice.log: field '%s' must be a string, number or boolean", k);
    }
}

/* The field names of the table at index 3, sorted, in a new table at the stack top: a
 * line's fields come in the same order every time (pairs() has none). */
static int
lapi_log_sorted_names(lua_State *L)
{
    int n = 0;

    lua_newtable(L);
    for (lua_pushnil(L); lua_next(L, 3) != 0; lua_pop(L, 1)) {
        lua_pushvalue(L, -2);
        lua_rawseti(L, -4, ++n);
    }
    lua_getfield(L, LUA_GLOBALSINDEX, "table");
    lua_getfield(L, -1, "sort");
    lua_remove(L, -2);
    lua_pushvalue(L, -2);
    lua_call(L, 1, 0);
    return n;
}

/* One field of the table at index 3 (its name at the stack top) into l. */
static void
lapi_log_field(lua_State *L, struct logline *l)
{
    const char *k = lua_tostring(L, -1);

    lua_pushvalue(L, -1);
    lua_rawget(L, 3);
    if (lua_type(L, -1) == LUA_TBOOLEAN)
        log_bool(l, k, lua_toboolean(L, -1));
    else if (lua_type(L, -1) == LUA_TNUMBER)
        log_dbl(l, k, lua_tonumber(L, -1));
    else
        log_str(l, k, lua_tostring(L, -1));
    lua_pop(L, 1);
}

/* sluice.log(level, event, fields) */
static int
lapi_log(lua_State *L)
{
    int              level = lapi_log_level(L, 1);
    size_t           elen;
    const char      *event = luaL_checklstring(L, 2, &elen);
    struct lapi_env *env = lapi_env(L);
    struct logline   l;
    int              i, n;

    luaL_argcheck(L, lapi_is_name(event, elen, true) && strchr(event, '.') != NULL, 2,
                  "expected an event name like 'policy.reject'");
    if (!lua_isnoneornil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        lapi_log_check_fields(L);
    }
    n = lua_isnoneornil(L, 3) ? 0 : lapi_log_sorted_names(L);
    log_begin(&l, level, event, env->run != NULL ? env->run->ctx.sid : 0);
    if (env->policy != NULL)
        log_str(&l, "policy", env->policy);
    for (i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, i);
        lapi_log_field(L, &l);
        lua_pop(L, 1);
    }
    log_end(&l);
    return 0;
}

/* cjson.encode(fields) at the stack top; raises what cjson raises. */
static const char *
lapi_audit_encode(lua_State *L, size_t *len)
{
    lua_getfield(L, LUA_GLOBALSINDEX, "require");
    lua_pushstring(L, "cjson");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "encode");
    lua_pushvalue(L, 2);
    lua_call(L, 1, 1);
    return lua_tolstring(L, -1, len);
}

/* Queue the line; never waits for the disk (audit.h). */
static int
lapi_audit_write(lua_State *L, struct audit *a, luaL_Buffer *b)
{
    size_t      len;
    const char *line;

    luaL_pushresult(b);
    line = lua_tolstring(L, -1, &len);
    if (len > LAPI_AUDIT_MAX)
        return luaL_error(L, "sluice.audit: line of %d octets is too long", (int)len);
    if (audit_write(a, line, len) == 0) {
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_pushnil(L);
    lua_pushstring(L, "audit queue full");
    return 2;
}

/* The line into a buffer of C, the fields by lapi_json.c: true when written (the result
 * pushed), false when the fields need cjson (nothing pushed). */
static bool
lapi_audit_fast(lua_State *L, struct audit *a, const char *event, size_t elen,
                const char *ts, int *nres)
{
    struct buf b = {0};
    int        rc;

    rc = buf_append(&b, "{\"timestamp\":\"", 14, LAPI_AUDIT_MAX) == 0 &&
                 buf_append(&b, ts, strlen(ts), LAPI_AUDIT_MAX) == 0 &&
                 buf_append(&b, "\",\"event_type\":\"", 16, LAPI_AUDIT_MAX) == 0 &&
                 buf_append(&b, event, elen, LAPI_AUDIT_MAX) == 0 &&
                 buf_append(&b, "\"", 1, LAPI_AUDIT_MAX) == 0
             ? lapi_json_members(L, 2, &b, LAPI_AUDIT_MAX, true)
             : LAPI_JSON_NOMEM;
    if (rc == LAPI_JSON_OK && buf_append(&b, "}\n", 2, LAPI_AUDIT_MAX) != 0)
        rc = LAPI_JSON_NOMEM;
    if (rc == LAPI_JSON_OTHER) {
        buf_cleanup(&b);
        return false;
    }
    if (rc != LAPI_JSON_OK) {
        buf_cleanup(&b);
        luaL_error(L, "sluice.audit: line of over %d octets is too long", (int)LAPI_AUDIT_MAX);
    }
    if (audit_write(a, buf_head(&b), buf_used(&b)) == 0) {
        lua_pushboolean(L, 1);
        *nres = 1;
    } else {
        lua_pushnil(L);
        lua_pushstring(L, "audit queue full");
        *nres = 2;
    }
    buf_cleanup(&b);
    return true;
}

/* ok, err = sluice.audit(event, fields) */
static int
lapi_audit(lua_State *L)
{
    size_t           elen, jlen;
    const char      *event = luaL_checklstring(L, 1, &elen), *json;
    struct lapi_env *env = lapi_env(L);
    char             ts[40];
    luaL_Buffer      b;

    luaL_argcheck(L, lapi_is_name(event, elen, false), 1,
                  "expected lowercase letters, digits and '_'");
    if (lua_isnoneornil(L, 2)) {
        lua_settop(L, 1);
        lua_newtable(L);
    }
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_getfield(L, 2, "timestamp");
    lua_getfield(L, 2, "event_type");
    if (!lua_isnil(L, -1) || !lua_isnil(L, -2))
        return luaL_error(L, "sluice.audit: 'timestamp' and 'event_type' are the core's");
    lua_settop(L, 2);
    if (env->audit != NULL) {
        int nres;

        lapi_iso8601_us(env->loop != NULL ? ev_now(env->loop) : ev_time(), ts, sizeof(ts));
        if (lapi_audit_fast(L, env->audit, event, elen, ts, &nres))
            return nres;
    }
    json = lapi_audit_encode(L, &jlen); /* raises on what JSON cannot hold */
    if (jlen < 2 || json[0] != '{')
        return luaL_error(L, "sluice.audit: fields must be a table of names");
    if (env->audit == NULL)
        return lua_pushboolean(L, 1), 1;
    lapi_iso8601_us(env->loop != NULL ? ev_now(env->loop) : ev_time(), ts, sizeof(ts));
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "{\"timestamp\":\"");
    luaL_addstring(&b, ts);
    luaL_addstring(&b, "\",\"event_type\":\"");
    luaL_addlstring(&b, event, elen);
    luaL_addstring(&b, jlen > 2 ? "\"," : "\"");
    luaL_addlstring(&b, json + 1, jlen - 1);
    luaL_addchar(&b, '\n');
    return lapi_audit_write(L, env->audit, &b);
}

void
lapi_log_open(lua_State *L)
{
    lua_pushcfunction(L, lapi_log);
    lua_setfield(L, -2, "log");
    lua_pushcfunction(L, lapi_audit);
    lua_setfield(L, -2, "audit");
}
