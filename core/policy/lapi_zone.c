/* core/policy/lapi_zone.c: sluice.zone(name) and its get/set/add/incr/incr_peek/delete/ttl over
 * the daemon's zones (zone.h), and sluice.shdict.get/set/incr, the same calls on the zone
 * 'default'. Zones store numbers and strings; a Lua string is stored behind an 's' tag
 * octet and a boolean as the string "t" or "f", so that the three Lua types come back as
 * they went in and incr on either gives 'not a number'. On a local zone nothing yields;
 * on a Redis zone a call in a hook yields until the worker's connection answers (or the
 * deadline gives the zone's fallback answer: zone.h), so a coroutine of the policy's own
 * cannot make it (docs/lua-api.md).
 *
 * A zone handle is a userdata holding the zone's index in the configuration's zones, so
 * that `sluice check`, which has no zones, still checks the names policies ask for. */
#include <ev.h>
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "policy/hook_run.h"
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
    case LUA_TNUMBER:
        v->type = SHDICT_NUMBER;
        v->num = lua_tonumber(L, arg);
        luaL_argcheck(L, v->num == v->num, arg, "expected a number, not NaN");
        break;
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

/* ---- running an operation: at once, or waiting on Redis ---------------------------------- */

/* What the caller asked, for pushing the answer (the same for an answer now and later). */
enum lapi_zone_ask { LAPI_ZONE_GET, LAPI_ZONE_TTL, LAPI_ZONE_STORE, LAPI_ZONE_INCR,
                     LAPI_ZONE_INCR_PEEK, LAPI_ZONE_DELETE };

/* One call of a hook waiting on Redis (run->wait). */
struct lapi_zone_wait {
    struct hook_run   *run;
    struct zone       *z;
    enum lapi_zone_ask ask;
    double             now; /* for ttl */
    struct zone_call  *call;
};

/* The answer to ask as Lua values on L; returns how many. */
static int
lapi_zone_push(lua_State *L, struct zone *z, enum lapi_zone_ask ask, double now,
               const struct zone_result *r)
{
    if (r->rc == SHDICT_UNAVAILABLE) /* a Redis zone that fails closed, Redis down */
        return lapi_zone_fail(L, shdict_rc_str(r->rc));
    switch (ask) {
    case LAPI_ZONE_GET:
        if (r->rc != SHDICT_OK)
            return lapi_zone_miss(L, z);
        lapi_push_value(L, &r->v);
        return 1;
    case LAPI_ZONE_TTL:
        if (r->rc != SHDICT_OK && r->rc != SHDICT_TOO_SMALL)
            return lapi_zone_miss(L, z);
        lua_pushnumber(L, r->v.expires == 0 ? 0 : r->v.expires - now);
        return 1;
    case LAPI_ZONE_STORE:
        if (r->rc != SHDICT_OK)
            return lapi_zone_fail(L, shdict_rc_str(r->rc));
        lua_pushboolean(L, 1);
        return 1;
    case LAPI_ZONE_INCR: case LAPI_ZONE_INCR_PEEK:
        if (r->rc != SHDICT_OK)
            return lapi_zone_fail(L, shdict_rc_str(r->rc));
        lua_pushnumber(L, r->num);
        if (ask == LAPI_ZONE_INCR)
            return 1;
        lua_pushnumber(L, r->peek);
        return 2;
    case LAPI_ZONE_DELETE:
        lua_pushboolean(L, r->rc == SHDICT_OK);
        return 1;
    }
    return 0;
}

static void
lapi_zone_done_cb(void *arg, const struct zone_result *r)
{
    struct lapi_zone_wait *w = arg;
    struct hook_run       *run = w->run;
    int                    n;

    run->cancel = NULL;
    run->wait = NULL;
    n = lapi_zone_push(run->co, w->z, w->ask, w->now, r);
    free(w);
    hook_run_resume(run, n);
}

static void
lapi_zone_cancel(struct hook_run *run)
{
    struct lapi_zone_wait *w = run->wait;

    zone_call_cancel(w->call);
    free(w);
    run->wait = NULL;
    run->cancel = NULL;
}

/* op on z: answered now (returns the number of values pushed), or, on a Redis zone in a
 * hook, sent on the worker's connection while the hook yields (the answer is pushed
 * when it comes, within redis.timeout and what is left of hook_timeout). Elsewhere (a
 * policy being loaded, the control socket) a Redis zone answers over the blocking
 * connection. */
static int
lapi_zone_run(lua_State *L, struct zone *z, const struct zone_op *op, enum lapi_zone_ask ask,
              const char *fn)
{
    struct lapi_env       *env = lapi_env(L);
    char                   small[512];
    struct zone_result     r = {.v = {.buf = small, .cap = ask == LAPI_ZONE_TTL ? 0
                                                                         : sizeof(small)}};
    struct zone_call      *call;
    struct lapi_zone_wait *w;
    int                    n;

    if (zone_is_remote(z) && env->run != NULL && env->zlink != NULL) {
        struct hook_run *run = env->run;

        lapi_require_yieldable(L, run, fn);
        if ((w = calloc(1, sizeof(*w))) == NULL)
            return luaL_error(L, "%s: out of memory", fn);
        *w = (struct lapi_zone_wait){.run = run, .z = z, .ask = ask, .now = op->now};
        if (!zone_call(z, env->zlink, op, run->budget_end - ev_now(run->loop), &r,
                       lapi_zone_done_cb, w, &call)) {
            w->call = call;
            run->wait = w;
            run->cancel = lapi_zone_cancel;
            return lua_yield(L, 0);
        }
        free(w);
    } else {
        zone_exec(z, op, &r);
    }
    n = lapi_zone_push(L, z, ask, op->now, &r);
    zone_result_cleanup(&r);
    return n;
}

/* ---- the operations; key at arg base ------------------------------------------------------ */

static struct zone_op
lapi_zone_op(lua_State *L, enum zone_op_kind kind, int base)
{
    struct zone_op op = {.kind = kind, .now = lapi_zone_now(L)};

    op.key = lapi_check_key(L, base, &op.klen);
    return op;
}

/* value[, err] = get(key) */
static int
lapi_zone_do_get(lua_State *L, struct zone *z, int base, const char *fn)
{
    struct zone_op op = lapi_zone_op(L, ZONE_GET, base);

    return lapi_zone_run(L, z, &op, LAPI_ZONE_GET, fn);
}

/* left[, err] = ttl(key): seconds left, 0 for a key without expiry, nil when absent */
static int
lapi_zone_do_ttl(lua_State *L, struct zone *z, int base, const char *fn)
{
    struct zone_op op = lapi_zone_op(L, ZONE_GET, base);

    return lapi_zone_run(L, z, &op, LAPI_ZONE_TTL, fn);
}

/* ok, err = set(key, value, ttl) or add(key, value, ttl) */
static int
lapi_zone_do_store(lua_State *L, struct zone *z, int base, const char *fn, bool add)
{
    struct zone_op op = lapi_zone_op(L, add ? ZONE_ADD : ZONE_SET, base);

    op.ttl = lapi_check_ttl(L, base + 2);
    lapi_check_value(L, base + 1, !add, &op.value); /* a string stays on the stack */
    return lapi_zone_run(L, z, &op, LAPI_ZONE_STORE, fn);
}

/* The key, by and ttl of incr and incr_peek. */
static struct zone_op
lapi_zone_incr_op(lua_State *L, int base)
{
    struct zone_op op = lapi_zone_op(L, ZONE_INCR, base);

    op.by = luaL_checknumber(L, base + 1);
    op.ttl = lapi_check_ttl(L, base + 2);
    luaL_argcheck(L, op.by == op.by, base + 1, "expected a number");
    return op;
}

/* newval, err = incr(key, by, ttl) */
static int
lapi_zone_do_incr(lua_State *L, struct zone *z, int base, const char *fn)
{
    struct zone_op op = lapi_zone_incr_op(L, base);

    return lapi_zone_run(L, z, &op, LAPI_ZONE_INCR, fn);
}

/* newval, peeked = incr_peek(key, by, ttl[, peek_key]): incr (by 0: only read, 0 when
 * absent) and the number under peek_key (0 when absent), in one step; nil, err */
static int
lapi_zone_do_incr_peek(lua_State *L, struct zone *z, int base, const char *fn)
{
    struct zone_op op = lapi_zone_incr_op(L, base);

    op.readonly = op.by == 0;
    if (!lua_isnoneornil(L, base + 3))
        op.peek = lapi_check_key(L, base + 3, &op.plen);
    return lapi_zone_run(L, z, &op, LAPI_ZONE_INCR_PEEK, fn);
}

/* removed = delete(key): true when the key was there */
static int
lapi_zone_do_delete(lua_State *L, struct zone *z, int base, const char *fn)
{
    struct zone_op op = lapi_zone_op(L, ZONE_DELETE, base);

    return lapi_zone_run(L, z, &op, LAPI_ZONE_DELETE, fn);
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
lapi_zone_m_incr_peek(lua_State *L)
{
    return lapi_zone_do_incr_peek(L, lapi_zone_self(L, "zone:incr_peek"), 2,
                                  "zone:incr_peek");
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
        {"incr", lapi_zone_m_incr}, {"incr_peek", lapi_zone_m_incr_peek},
        {"delete", lapi_zone_m_delete}, {"ttl", lapi_zone_m_ttl},
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
