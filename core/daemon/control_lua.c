/* core/daemon/control_lua.c: the control plane's Lua state (control_lua.h) and sluice.ctl, the
 * key walk and delete that only `sluice ctl`'s modules need. Walks copy what they need in
 * the zone_keys() callback (no zone call there: the shard is locked) and build the Lua
 * entries afterwards. Which keys mean what is the Lua modules' business, not this file's. */
#include "daemon/control_lua.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "daemon/control_ops.h"
#include "policy/lapi.h"
#include "policy/policy_loader.h"
#include "policy/policy_vm.h"
#include "store/zone.h"

#define CONTROL_LUA_SHOW_VALUE  256   /* octets of a string value shown (value_cut beyond) */

struct control_lua {
    lua_State      *L;   /* owns */
    struct lapi_env env; /* the state's environment (lapi.h): cfg and zones borrowed */
};

/* ---- sluice.ctl ------------------------------------------------------------------------ */

static struct zone *
control_lua_zone(lua_State *L, int arg)
{
    const char      *name = luaL_checkstring(L, arg);
    struct lapi_env *env = lapi_env(L);

    for (size_t i = 0; i < zones_count(env->zones); i++)
        if (strcmp(zone_name(zones_at(env->zones, i)), name) == 0)
            return zones_at(env->zones, i);
    luaL_argerror(L, arg, "no such zone");
    return NULL;
}

/* names = ctl.zones(): every zone, in the configuration's order */
static int
control_lua_zones(lua_State *L)
{
    struct lapi_env *env = lapi_env(L);

    lua_createtable(L, (int)zones_count(env->zones), 0);
    for (size_t i = 0; i < zones_count(env->zones); i++) {
        lua_pushstring(L, zone_name(zones_at(env->zones, i)));
        lua_rawseti(L, -2, (int)i + 1);
    }
    return 1;
}

struct control_lua_entry {
    char  *key;  /* owns */
    size_t klen;
    enum shdict_type type;
    double num, expires;
    char  *str;  /* owns; the value's first slen octets (tag included), or NULL */
    size_t slen;
    bool   cut;
};

struct control_lua_walk {
    struct control_lua_entry *v;  /* owns */
    size_t      n, cap, max;
    const char *suffix;           /* borrows; only keys ending so, or NULL */
    size_t      suffix_len;
    bool        numbers_only, keys_only;
    bool        truncated, failed;
};

static char *
control_lua_memdup(const char *s, size_t n)
{
    char *p = malloc(n + 1);

    if (p != NULL) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

/* shdict_key_fn: runs with a shard locked; copies, and calls nothing in the zone. */
static int
control_lua_walk_cb(void *ctx, const char *key, size_t klen, const struct shdict_value *v)
{
    struct control_lua_walk  *w = ctx;
    struct control_lua_entry *e;
    size_t                    cap;

    if (w->numbers_only && v->type != SHDICT_NUMBER)
        return 0;
    if (w->suffix != NULL && (klen < w->suffix_len || memcmp(key + klen - w->suffix_len,
                                                             w->suffix, w->suffix_len) != 0))
        return 0;
    if (w->n == w->max) {
        w->truncated = true;
        return 1;
    }
    if (w->n == w->cap) {
        cap = w->cap ? w->cap * 2 : 16;
        e = realloc(w->v, cap * sizeof(*e));
        if (e == NULL) {
            w->failed = true;
            return 1;
        }
        w->v = e;
        w->cap = cap;
    }
    e = &w->v[w->n];
    memset(e, 0, sizeof(*e));
    e->key = control_lua_memdup(key, klen);
    e->klen = klen;
    e->type = v->type;
    e->num = v->num;
    e->expires = v->expires;
    if (!w->keys_only && v->type == SHDICT_STRING) {
        e->slen = v->len > CONTROL_LUA_SHOW_VALUE + 1 ? CONTROL_LUA_SHOW_VALUE + 1 : v->len;
        e->cut = e->slen < v->len;
        e->str = control_lua_memdup(v->str, e->slen);
    }
    if (e->key == NULL || (e->str == NULL && !w->keys_only && v->type == SHDICT_STRING)) {
        free(e->key);
        free(e->str);
        w->failed = true;
        return 1;
    }
    w->n++;
    return 0;
}

static void
control_lua_walk_cleanup(struct control_lua_walk *w)
{
    for (size_t i = 0; i < w->n; i++) {
        free(w->v[i].key);
        free(w->v[i].str);
    }
    free(w->v);
}

/* The value as sluice.zone(...):get returns it (lapi_zone.c's tagging): a number, a
 * string (its first CONTROL_LUA_SHOW_VALUE octets), a boolean, or nothing. */
static void
control_lua_push_value(lua_State *L, const struct control_lua_entry *e)
{
    if (e->type == SHDICT_NUMBER)
        lua_pushnumber(L, e->num);
    else if (e->type != SHDICT_STRING || e->slen == 0)
        return;
    else if (e->str[0] == 's')
        lua_pushlstring(L, e->str + 1, e->slen - 1);
    else
        lua_pushboolean(L, e->str[0] == 't');
    lua_setfield(L, -2, "value");
    if (e->cut) {
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, "value_cut");
    }
}

/* entries, truncated = ctl.keys(zone, prefix, now, max[, opts]): at most max entries
 * { key, value, value_cut, expires } (expires 0: none) of the live keys under prefix, in
 * no order; opts: keys_only (no values), suffix (only keys ending so), numbers_only. */
static int
control_lua_keys(lua_State *L)
{
    struct zone            *z = control_lua_zone(L, 1);
    size_t                  plen;
    const char             *prefix = luaL_checklstring(L, 2, &plen);
    double                  now = luaL_checknumber(L, 3);
    lua_Number              max = luaL_checknumber(L, 4);
    struct control_lua_walk w = {0};

    luaL_argcheck(L, max >= 0 && max <= CONTROL_MAX_ENTRIES, 4, "expected 0..10000");
    w.max = (size_t)max;
    if (lua_istable(L, 5)) {
        lua_getfield(L, 5, "keys_only");
        w.keys_only = lua_toboolean(L, -1);
        lua_getfield(L, 5, "numbers_only");
        w.numbers_only = lua_toboolean(L, -1);
        lua_getfield(L, 5, "suffix");
        w.suffix = lua_tolstring(L, -1, &w.suffix_len); /* stays on the stack */
    }
    zone_keys(z, prefix, plen, now, control_lua_walk_cb, &w);
    if (w.failed) {
        control_lua_walk_cleanup(&w);
        return luaL_error(L, "out of memory");
    }
    lua_createtable(L, (int)w.n, 0);
    for (size_t i = 0; i < w.n; i++) {
        lua_createtable(L, 0, 4);
        lua_pushlstring(L, w.v[i].key, w.v[i].klen);
        lua_setfield(L, -2, "key");
        lua_pushnumber(L, w.v[i].expires);
        lua_setfield(L, -2, "expires");
        if (!w.keys_only)
            control_lua_push_value(L, &w.v[i]);
        lua_rawseti(L, -2, (int)i + 1);
    }
    lua_pushboolean(L, w.truncated);
    control_lua_walk_cleanup(&w);
    return 2;
}

/* removed = ctl.delete(zone, key, now): true when the key was there */
static int
control_lua_delete(lua_State *L)
{
    struct zone *z = control_lua_zone(L, 1);
    size_t       klen;
    const char  *key = luaL_checklstring(L, 2, &klen);

    lua_pushboolean(L, zone_delete(z, key, klen, luaL_checknumber(L, 3)) == SHDICT_OK);
    return 1;
}

static int
control_lua_open_ctl(lua_State *L)
{
    lua_createtable(L, 0, 3);
    lua_pushcfunction(L, control_lua_zones);
    lua_setfield(L, -2, "zones");
    lua_pushcfunction(L, control_lua_keys);
    lua_setfield(L, -2, "keys");
    lua_pushcfunction(L, control_lua_delete);
    lua_setfield(L, -2, "delete");
    return 1;
}

/* ---- the state -------------------------------------------------------------------------- */

struct control_lua *
control_lua_new(const struct config *cfg, struct zones *zones, char *err, size_t errlen)
{
    struct control_lua *cl = calloc(1, sizeof(*cl));

    if (cl == NULL || (cl->L = luaL_newstate()) == NULL) {
        snprintf(err, errlen, "out of memory");
        free(cl);
        return NULL;
    }
    cl->env.cfg = cfg;
    cl->env.zones = zones;
    luaL_openlibs(cl->L);
    lapi_set_env(cl->L, &cl->env);
    lua_getfield(cl->L, LUA_GLOBALSINDEX, "package");
    lua_pushfstring(cl->L, "%s/?.lua;%s/?/init.lua", cfg->lua_dir, cfg->lua_dir);
    lua_setfield(cl->L, -2, "path");
    lua_pushstring(cl->L, POLICY_VM_CPATH);
    lua_setfield(cl->L, -2, "cpath");
    lua_getfield(cl->L, -1, "preload");
    lua_pushcfunction(cl->L, lapi_core_open);
    lua_setfield(cl->L, -2, "sluice.core");
    lua_pushcfunction(cl->L, control_lua_open_ctl);
    lua_setfield(cl->L, -2, "sluice.ctl");
    lua_pop(cl->L, 2);
    policy_loader_install(cl->L);
    return cl;
}

void
control_lua_free(struct control_lua *cl)
{
    if (cl == NULL)
        return;
    lua_close(cl->L);
    free(cl);
}

lua_State *
control_lua_state(struct control_lua *cl)
{
    return cl->L;
}

/* require(module) as a protected call: the module table, or the error, on the top. */
static int
control_lua_require(lua_State *L)
{
    lua_getfield(L, LUA_GLOBALSINDEX, "require");
    lua_pushvalue(L, 1);
    lua_call(L, 1, 1);
    return 1;
}

int
control_lua_call(struct control_lua *cl, const char *what, const char *module,
                 const char *fn, int nargs, int nresults, char *err, size_t errlen)
{
    lua_State *L = cl->L;
    int        base = lua_gettop(L) - nargs;

    lua_pushcfunction(L, control_lua_require);
    lua_pushstring(L, module);
    if (lua_pcall(L, 1, 1, 0) != 0) {
        snprintf(err, errlen, "%s: cannot load %s: %s", what, module, lua_tostring(L, -1));
        goto fail;
    }
    if (lua_istable(L, -1))
        lua_getfield(L, -1, fn);
    else
        lua_pushnil(L);
    if (!lua_isfunction(L, -1)) {
        snprintf(err, errlen, "%s: module %s has no %s", what, module, fn);
        goto fail;
    }
    lua_replace(L, -2);         /* the function where the module was */
    lua_insert(L, base + 1);    /* below the arguments */
    if (lua_pcall(L, nargs, nresults, 0) != 0) {
        snprintf(err, errlen, "%s: %s.%s: %s", what, module, fn, lua_tostring(L, -1));
        lua_settop(L, base);
        return -1;
    }
    return 0;
fail:
    lua_settop(L, base);
    return -1;
}
