/* core/policy/lapi_run.c: what every binding that needs the running hook uses (lapi.h):
 * finding the hook run of the calling state, refusing a yield the engine cannot resume,
 * the count hook that enforces hook_timeout on a hook that never yields, passing a
 * verified password on to be remembered after 235, and the state's table of password
 * checks in progress that identical ones share (auth_flight.h). The bindings themselves
 * are the other lapi_*.c files'; the waits (sleep, passwd.verify) are lapi_wait.c's. */
#include <ev.h>
#include <lauxlib.h>

#include "auth/auth_flight.h"
#include "config/config.h"
#include "policy/hook_run.h"
#include "policy/lapi.h"
#include "util/log.h"

struct hook_run *
lapi_hook_run(lua_State *L, const char *fn)
{
    struct hook_run *run = lapi_env(L)->run;

    if (run == NULL)
        luaL_error(L, "%s: only available while a hook runs", fn);
    return run;
}

/* Every hook may wait, on_disconnect too: the session outlives its connection until that
 * run ends (core/smtp/smtp_session.c, DISCONNECTED). */
void
lapi_require_yieldable(lua_State *L, struct hook_run *run, const char *fn)
{
    if (L != run->co)
        luaL_error(L, "%s: cannot yield from a coroutine of the policy's own", fn);
}

/* ---- the budget of a hook that never yields ------------------------------------------- */

/* Every LAPI_BUDGET_STEP instructions: a hook past its budget raises where it runs, so
 * that a loop without a yield cannot hold the worker. LuaJIT calls no hooks from
 * machine code, so the policy states run interpreted (policy_vm.c turns the JIT off). */
#define LAPI_BUDGET_STEP 100000

static void
lapi_budget_hook(lua_State *L, lua_Debug *ar)
{
    struct hook_run *run = lapi_env(L)->run;

    (void)ar;
    if (run != NULL && ev_time() > run->budget_end)
        luaL_error(L, "hook_timeout (%g s) exceeded", run->ctx.cfg->hook_timeout);
}

void
lapi_budget_install(lua_State *L)
{
    lua_sethook(L, lapi_budget_hook, LUA_MASKCOUNT, LAPI_BUDGET_STEP);
}

/* ---- passing a verified password on -------------------------------------------------- */

void
lapi_remember_on_235(struct hook_run *run, const char *cache_key, double ttl)
{
    if (run->ctx.remember_on_235 != NULL)
        run->ctx.remember_on_235(run->ctx.owner, cache_key, ttl);
}


/* ---- checks in progress, shared ------------------------------------------------------ */

/* Registry key of the state's table: the address of this variable. */
static const char lapi_flights_key = 0;

static int
lapi_flights_gc(lua_State *L)
{
    struct auth_flights **ud = lua_touserdata(L, 1);

    auth_flights_free(*ud);
    *ud = NULL;
    return 0;
}

struct auth_flights *
lapi_flights(lua_State *L)
{
    struct auth_flights **ud;

    lua_pushlightuserdata(L, (void *)&lapi_flights_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    ud = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (ud != NULL)
        return *ud;
    lua_pushlightuserdata(L, (void *)&lapi_flights_key);
    ud = lua_newuserdata(L, sizeof(*ud));
    *ud = auth_flights_new();
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, lapi_flights_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    lua_rawset(L, LUA_REGISTRYINDEX);
    return *ud;
}

void
lapi_log_flight(uint64_t sid, const char *backend, const char *identity, size_t waiters)
{
    struct logline l;

    log_begin(&l, LOG_DEBUG, waiters <= 1 ? "auth.verify" : "auth.verify_shared", sid);
    log_str(&l, "backend", backend);
    log_str(&l, "user", identity);
    if (waiters > 1)
        log_int(&l, "waiters", (long long)waiters);
    log_end(&l);
}
