/* core/policy/lapi_zone.c: sluice.zone(name) and its get/set/add/incr/delete/ttl over the daemon's
 * zones (zone.h), and sluice.shdict.get/set/incr, the same calls on the zone 'default'.
 * Zones store numbers and strings; a Lua string is stored behind an 's' tag octet and a
 * boolean as the string "t" or "f", so that the three Lua types come back as they went in
 * and incr on either gives 'not a number'. None of these yield (a remote backend will:
 * docs/lua-api.md asks policies to call them only where a hook may yield, or at load).
 *
 * A zone handle is a userdata holding the zone's index in the configuration's zones, so
 * that `sluice check`, which has no zones, still checks the names policies ask for. */
#include <ev.h>
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "policy/lapi.h"
#include "store/zone.h"

#define LAPI_ZONE_META "sluice.zone"

struct lapi_zone_handle {
    size_t index; /* into cfg->zones and the daemon's zones */
};

static struct zone *
lapi_zone_at(lua_State *L, size_t index, const char *fn)
{
    struct lapi_env *env = lapi_env(L);
    struct zone     *z = zones_at(env->zones, index);

    if (z == NULL)
        luaL_error(L, "%s: not available here", fn);
    return z;
}

static double
lapi_zone_now(lua_State *L)
{
    struct lapi_env *env = lapi_env(L);

    return env->loop != NULL ? ev_now(env->loop) : ev_time();
}

static const char *
lapi_check_key(lua_State *L, int arg, size_t *klen)
{
    const char *key = luaL_checklstring(L, arg, klen);

    luaL_argcheck(L, *klen >= 1 && *klen <= SHDICT_MAX_KEY, arg, "expected 1..1024 octets");
    return key;
}

static double
lapi_check_ttl(lua_State *L, int arg)
{
    double ttl = luaL_optnumber(L, arg, 0);

    luaL_argcheck(L, ttl >= 0 && ttl == ttl, arg, "expected seconds >= 0");
    return ttl;
}

/* nil, reason: the runtime failures policies handle. */
static int
lapi_zone_fail(lua_State *L, const char *reason)
{
    lua_pushnil(L);
    lua_pushstring(L, reason);
    return 2;
}

/* A miss: nil, or nil, 'full' when the zone refused a write since its last good one. */
static int
lapi_zone_miss(lua_State *L, struct zone *z)
{
    if (zone_is_refusing(z))
        return lapi_zone_fail(L, "full");
    lua_pushnil(L);
    return 1;
}

static void
lapi_push_value(lua_State *L, const struct shdict_value *v)
{
    if (v->type == SHDICT_STRING && v->len == 0)
        lua_pushnil(L);
    else if (v->type == SHDICT_NUMBER)
        lua_pushnumber(L, v->num);
    else if (v->str[0] == 's')
        lua_pushlstring(L, v->str + 1, v->len - 1);
    else
        lua_pushboolean(L, v->str[0] == 't');
}

/* The value at arg as a zone value; a tagged string is pushed on the stack (pop it after
 * the call). nil only when allow_nil. */
static void
lapi_check_value(lua_State *L, int arg, bool allow_nil, struct shdict_value *v)
{
    luaL_Buffer b;
    const char *s;
    size_t      vlen;

    v->type = SHDICT_NIL;
    switch (lua_type(L, arg)) {
    case LUA_TNIL: case LUA_TNONE:
        luaL_argcheck(L, allow_nil, arg, "expected a string, number or boolean");
        break;
    case LUA_TNUMBER: v->type = SHDICT_NUMBER; v->num = lua_tonumber(L, arg); break;
    case LUA_TBOOLEAN:
        v->type = SHDICT_STRING;
        v->str = lua_toboolean(L, arg) ? "t" : "f";
        v->len = 1;
        break;
    case LUA_TSTRING:
        s = lua_tolstring(L, arg, &vlen);
        luaL_argcheck(L, vlen < SHDICT_MAX_VALUE, arg, "string over 64 KiB");
        luaL_buffinit(L, &b);
        luaL_addchar(&b, 's');
        luaL_addlstring(&b, s, vlen);
        luaL_pushresult(&b);
        v->type = SHDICT_STRING;
        v->str = lua_tolstring(L, -1, &v->len);
        break;
    default: luaL_argerror(L, arg, "expected a string, number, boolean or nil");
    }
}

/* ---- the operations; key at arg base ------------------------------------------------------ */

/* Copy key's value out: into small, or a heap buffer when it is longer. The entry is
 * read twice only then. Returns the rc; on SHDICT_OK v is filled and *heap may own. */
static enum shdict_rc
lapi_zone_read(lua_State *L, struct zone *z, const char *key, size_t klen,
               struct shdict_value *v, char **heap, const char *fn)
{
    enum shdict_rc rc = zone_get(z, key, klen, v, lapi_zone_now(L));

    *heap = NULL;
    if (rc != SHDICT_TOO_SMALL)
        return rc;
    v->cap = SHDICT_MAX_VALUE;
    if ((v->buf = *heap = malloc(v->cap)) == NULL)
        luaL_error(L, "%s: out of memory", fn);
    return zone_get(z, key, klen, v, lapi_zone_now(L));
}

/* value[, err] = get(key) */
static int
lapi_zone_do_get(lua_State *L, struct zone *z, int base, const char *fn)
{
    size_t              klen;
    const char         *key = lapi_check_key(L, base, &klen);
    char                small[512], *heap;
    struct shdict_value v = {.buf = small, .cap = sizeof(small)};
    enum shdict_rc      rc = lapi_zone_read(L, z, key, klen, &v, &heap, fn);

    if (rc == SHDICT_OK)
        lapi_push_value(L, &v);
    free(heap);
    return rc == SHDICT_OK ? 1 : lapi_zone_miss(L, z);
}

/* left[, err] = ttl(key): seconds left, 0 for a key without expiry, nil when absent */
static int
lapi_zone_do_ttl(lua_State *L, struct zone *z, int base, const char *fn)
{
    size_t              klen;
    const char         *key = lapi_check_key(L, base, &klen);
    struct shdict_value v = {.buf = NULL, .cap = 0};
    enum shdict_rc      rc = zone_get(z, key, klen, &v, lapi_zone_now(L));

    (void)fn;
    if (rc != SHDICT_OK && rc != SHDICT_TOO_SMALL)
        return lapi_zone_miss(L, z);
    lua_pushnumber(L, v.expires == 0 ? 0 : v.expires - lapi_zone_now(L));
    return 1;
}

/* ok, err = set(key, value, ttl) or add(key, value, ttl) */
static int
lapi_zone_do_store(lua_State *L, struct zone *z, int base, const char *fn, bool add)
{
    size_t              klen;
    const char         *key = lapi_check_key(L, base, &klen);
    double              ttl = lapi_check_ttl(L, base + 2);
    struct shdict_value v;
    enum shdict_rc      rc;

    lapi_check_value(L, base + 1, !add, &v);
    rc = add ? zone_add(z, key, klen, &v, ttl, lapi_zone_now(L))
             : zone_set(z, key, klen, &v, ttl, lapi_zone_now(L));
    if (rc == SHDICT_OK)
        return lua_pushboolean(L, 1), 1;
    if (rc != SHDICT_NO_MEMORY && rc != SHDICT_FULL && rc != SHDICT_EXISTS)
        return luaL_error(L, "%s: %s", fn, shdict_rc_str(rc)); /* a NaN */
    return lapi_zone_fail(L, shdict_rc_str(rc));
}

/* newval, err = incr(key, by, ttl) */
static int
lapi_zone_do_incr(lua_State *L, struct zone *z, int base, const char *fn)
{
    size_t         klen;
    const char    *key = lapi_check_key(L, base, &klen);
    double         by = luaL_checknumber(L, base + 1), ttl = lapi_check_ttl(L, base + 2), out = 0;
    enum shdict_rc rc;

    (void)fn;
    luaL_argcheck(L, by == by, base + 1, "expected a number");
    rc = zone_incr(z, key, klen, by, ttl, lapi_zone_now(L), &out);
    if (rc == SHDICT_OK)
        return lua_pushnumber(L, out), 1;
    return lapi_zone_fail(L, shdict_rc_str(rc));
}

/* removed = delete(key): true when the key was there */
static int
lapi_zone_do_delete(lua_State *L, struct zone *z, int base, const char *fn)
{
    size_t      klen;
    const char *key = lapi_check_key(L, base, &klen);

    (void)fn;
    lua_pushboolean(L, zone_delete(z, key, klen, lapi_zone_now(L)) == SHDICT_OK);
    return 1;
}

/* ---- zone handles: sluice.zone(name):op(...) --------------------------------------------- */

static struct zone *
lapi_zone_self(lua_State *L, const char *fn)
{
    struct lapi_zone_handle *h = luaL_checkudata(L, 1, LAPI_ZONE_META);

    return lapi_zone_at(L, h->index, fn);
}

static int
lapi_zone_m_get(lua_State *L)
{
    return lapi_zone_do_get(L, lapi_zone_self(L, "zone:get"), 2, "zone:get");
}

static int
lapi_zone_m_ttl(lua_State *L)
{
    return lapi_zone_do_ttl(L, lapi_zone_self(L, "zone:ttl"), 2, "zone:ttl");
}

static int
lapi_zone_m_set(lua_State *L)
{
    return lapi_zone_do_store(L, lapi_zone_self(L, "zone:set"), 2, "zone:set", false);
}

static int
lapi_zone_m_add(lua_State *L)
{
    return lapi_zone_do_store(L, lapi_zone_self(L, "zone:add"), 2, "zone:add", true);
}

static int
lapi_zone_m_incr(lua_State *L)
{
    return lapi_zone_do_incr(L, lapi_zone_self(L, "zone:incr"), 2, "zone:incr");
}

static int
lapi_zone_m_delete(lua_State *L)
{
    return lapi_zone_do_delete(L, lapi_zone_self(L, "zone:delete"), 2, "zone:delete");
}

static int
lapi_zone_tostring(lua_State *L)
{
    struct lapi_zone_handle *h = luaL_checkudata(L, 1, LAPI_ZONE_META);
    const struct config     *cfg = lapi_env(L)->cfg;

    lua_pushfstring(L, "sluice.zone('%s')", cfg->zones[h->index].name);
    return 1;
}

/* zone = sluice.zone(name): raises for a name the configuration does not have */
static int
lapi_zone_open_one(lua_State *L)
{
    size_t                    n;
    const char               *name = luaL_checklstring(L, 1, &n);
    const struct config      *cfg = lapi_env(L)->cfg;
    const struct config_zone *c = config_zone_find(cfg, name, n);
    struct lapi_zone_handle  *h;

    if (c == NULL)
        return luaL_error(L, "sluice.zone: no zone named '%s' (zones in the configuration, "
                             "docs/configuration.md)", name);
    h = lua_newuserdata(L, sizeof(*h));
    h->index = (size_t)(c - cfg->zones);
    luaL_getmetatable(L, LAPI_ZONE_META);
    lua_setmetatable(L, -2);
    return 1;
}

/* ---- sluice.shdict: the zone 'default' --------------------------------------------------- */

static int
lapi_shdict_get(lua_State *L)
{
    return lapi_zone_do_get(L, lapi_zone_at(L, CONFIG_ZONE_DEFAULT, "sluice.shdict.get"), 1,
                            "sluice.shdict.get");
}

static int
lapi_shdict_set(lua_State *L)
{
    return lapi_zone_do_store(L, lapi_zone_at(L, CONFIG_ZONE_DEFAULT, "sluice.shdict.set"), 1,
                              "sluice.shdict.set", false);
}

static int
lapi_shdict_incr(lua_State *L)
{
    return lapi_zone_do_incr(L, lapi_zone_at(L, CONFIG_ZONE_DEFAULT, "sluice.shdict.incr"), 1,
                             "sluice.shdict.incr");
}

void
lapi_zone_open(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"get", lapi_zone_m_get}, {"set", lapi_zone_m_set},   {"add", lapi_zone_m_add},
        {"incr", lapi_zone_m_incr}, {"delete", lapi_zone_m_delete}, {"ttl", lapi_zone_m_ttl},
        {NULL, NULL},
    };

    if (luaL_newmetatable(L, LAPI_ZONE_META)) {
        lua_newtable(L);
        luaL_register(L, NULL, methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, lapi_zone_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_pushliteral(L, "sluice.zone");
        lua_setfield(L, -2, "__metatable");
    }
    lua_pop(L, 1);
    lua_pushcfunction(L, lapi_zone_open_one);
    lua_setfield(L, -2, "zone");
    lua_createtable(L, 0, 3);
    lua_pushcfunction(L, lapi_shdict_get);
    lua_setfield(L, -2, "get");
    lua_pushcfunction(L, lapi_shdict_set);
    lua_setfield(L, -2, "set");
    lua_pushcfunction(L, lapi_shdict_incr);
    lua_setfield(L, -2, "incr");
    lua_setfield(L, -2, "shdict");
}
