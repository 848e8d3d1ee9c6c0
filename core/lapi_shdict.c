/* core/lapi_shdict.c: sluice.shdict.get/set/incr over the daemon's struct shdict.
 * shdict stores numbers and strings; a Lua string is stored behind a 's' tag octet and
 * a boolean as the string "t" or "f", so that the three Lua types come back as they
 * went in and incr on either gives 'not a number'. None of these yield. */
#include <ev.h>
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "lapi.h"
#include "shdict.h"

static struct shdict *
lapi_dict(lua_State *L)
{
    struct lapi_env *env = lapi_env(L);

    if (env->dict == NULL)
        luaL_error(L, "sluice.shdict: not available here");
    return env->dict;
}

static double
lapi_dict_now(lua_State *L)
{
    struct lapi_env *env = lapi_env(L);

    return env->loop != NULL ? ev_now(env->loop) : ev_time();
}

static const char *
lapi_check_key(lua_State *L, size_t *klen)
{
    const char *key = luaL_checklstring(L, 1, klen);

    luaL_argcheck(L, *klen >= 1 && *klen <= SHDICT_MAX_KEY, 1, "expected 1..1024 octets");
    return key;
}

static double
lapi_check_ttl(lua_State *L, int arg)
{
    double ttl = luaL_optnumber(L, arg, 0);

    luaL_argcheck(L, ttl >= 0 && ttl == ttl, arg, "expected seconds >= 0");
    return ttl;
}

static void
lapi_push_value(lua_State *L, enum shdict_rc rc, const struct shdict_value *v)
{
    if (rc != SHDICT_OK || (v->type == SHDICT_STRING && v->len == 0))
        lua_pushnil(L);
    else if (v->type == SHDICT_NUMBER)
        lua_pushnumber(L, v->num);
    else if (v->str[0] == 's')
        lua_pushlstring(L, v->str + 1, v->len - 1);
    else
        lua_pushboolean(L, v->str[0] == 't');
}

/* value = sluice.shdict.get(key) */
static int
lapi_shdict_get(lua_State *L)
{
    size_t              klen;
    const char         *key = lapi_check_key(L, &klen);
    struct shdict      *d = lapi_dict(L);
    char                small[512];
    struct shdict_value v = {.buf = small, .cap = sizeof(small)};
    enum shdict_rc      rc = shdict_get(d, key, klen, &v, lapi_dict_now(L));

    if (rc == SHDICT_TOO_SMALL) { /* a long string: once more, with room for it */
        v.cap = SHDICT_MAX_VALUE;
        v.buf = malloc(v.cap);
        if (v.buf == NULL)
            return luaL_error(L, "sluice.shdict.get: out of memory");
        rc = shdict_get(d, key, klen, &v, lapi_dict_now(L));
        lapi_push_value(L, rc, &v);
        free(v.buf);
        return 1;
    }
    lapi_push_value(L, rc, &v);
    return 1;
}

/* ok, err = sluice.shdict.set(key, value, ttl) */
static int
lapi_shdict_set(lua_State *L)
{
    size_t              klen, vlen;
    const char         *key = lapi_check_key(L, &klen), *s;
    double              ttl = lapi_check_ttl(L, 3);
    struct shdict      *d = lapi_dict(L);
    struct shdict_value v = {.type = SHDICT_NIL};
    luaL_Buffer         b;
    enum shdict_rc      rc;

    switch (lua_type(L, 2)) {
    case LUA_TNIL: case LUA_TNONE: break;
    case LUA_TNUMBER: v.type = SHDICT_NUMBER; v.num = lua_tonumber(L, 2); break;
    case LUA_TBOOLEAN:
        v.type = SHDICT_STRING;
        v.str = lua_toboolean(L, 2) ? "t" : "f";
        v.len = 1;
        break;
    case LUA_TSTRING:
        s = lua_tolstring(L, 2, &vlen);
        luaL_argcheck(L, vlen < SHDICT_MAX_VALUE, 2, "string over 64 KiB");
        luaL_buffinit(L, &b);
        luaL_addchar(&b, 's');
        luaL_addlstring(&b, s, vlen);
        luaL_pushresult(&b);
        v.type = SHDICT_STRING;
        v.str = lua_tolstring(L, -1, &v.len);
        break;
    default: return luaL_argerror(L, 2, "expected a string, number, boolean or nil");
    }
    rc = shdict_set(d, key, klen, &v, ttl, lapi_dict_now(L));
    if (rc == SHDICT_OK)
        return lua_pushboolean(L, 1), 1;
    if (rc != SHDICT_NO_MEMORY)
        return luaL_error(L, "sluice.shdict.set: %s", shdict_rc_str(rc)); /* a NaN */
    lua_pushnil(L);
    lua_pushstring(L, shdict_rc_str(rc));
    return 2;
}

/* newval, err = sluice.shdict.incr(key, by, ttl) */
static int
lapi_shdict_incr(lua_State *L)
{
    size_t         klen;
    const char    *key = lapi_check_key(L, &klen);
    double         by = luaL_checknumber(L, 2), ttl = lapi_check_ttl(L, 3), out = 0;
    struct shdict *d = lapi_dict(L);
    enum shdict_rc rc;

    luaL_argcheck(L, by == by, 2, "expected a number");
    rc = shdict_incr(d, key, klen, by, 0, ttl, lapi_dict_now(L), &out);
    if (rc == SHDICT_OK)
        return lua_pushnumber(L, out), 1;
    lua_pushnil(L);
    lua_pushstring(L, rc == SHDICT_NOT_NUMBER ? "not a number" : shdict_rc_str(rc));
    return 2;
}

void
lapi_shdict_open(lua_State *L)
{
    lua_createtable(L, 0, 3);
    lua_pushcfunction(L, lapi_shdict_get);
    lua_setfield(L, -2, "get");
    lua_pushcfunction(L, lapi_shdict_set);
    lua_setfield(L, -2, "set");
    lua_pushcfunction(L, lapi_shdict_incr);
    lua_setfield(L, -2, "incr");
    lua_setfield(L, -2, "shdict");
}
