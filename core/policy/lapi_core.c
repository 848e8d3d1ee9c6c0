/* core/policy/lapi_core.c: the `sluice.core` module table (docs/lua-api.md "How the module is
 * put together"): the state's environment, now, and the functions of lapi_log.c, lapi_zone.c,
 * lapi_wait.c (sleep, passwd.verify), lapi_crypto.c, lapi_ldap.c and lapi_http.c; the domains
 * table comes from lapi_domains.c. */
#include <ev.h>
#include <lauxlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "policy/lapi.h"

/* Registry key of the environment: the address of this variable. */
static const char lapi_env_key = 0;

void
lapi_set_env(lua_State *L, struct lapi_env *env)
{
    lua_pushlightuserdata(L, (void *)&lapi_env_key);
    lua_pushlightuserdata(L, env);
    lua_rawset(L, LUA_REGISTRYINDEX);
}

struct lapi_env *
lapi_env(lua_State *L)
{
    struct lapi_env *env;

    lua_pushlightuserdata(L, (void *)&lapi_env_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    env = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (env == NULL)
        luaL_error(L, "sluice.core: not in a sluice policy state");
    return env;
}

/* The seconds part is formatted once per second per thread (an audit line per message
 * would otherwise run gmtime and snprintf each time); the microseconds by hand. */
void
lapi_iso8601_us(double t, char *buf, size_t len)
{
    static _Thread_local time_t cached_at = -1;
    static _Thread_local char   cached[32]; /* "YYYY-MM-DDTHH:MM:SS." */
    static _Thread_local size_t cached_len;
    time_t                      secs = (time_t)t;
    long                        us = (long)((t - (double)secs) * 1e6);
    struct tm                   tm;

    if (us < 0)
        us = 0;
    if (us > 999999)
        us = 999999;
    if (secs != cached_at) {
        gmtime_r(&secs, &tm);
        cached_len = (size_t)snprintf(cached, sizeof(cached), "%04d-%02d-%02dT%02d:%02d:%02d.",
                                      tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                                      tm.tm_hour, tm.tm_min, tm.tm_sec);
        cached_at = secs;
    }
    if (len < cached_len + 8) {
        if (len > 0)
            buf[0] = '\0';
        return;
    }
    memcpy(buf, cached, cached_len);
    for (int i = 5; i >= 0; i--, us /= 10)
        buf[cached_len + (size_t)i] = (char)('0' + us % 10);
    buf[cached_len + 6] = 'Z';
    buf[cached_len + 7] = '\0';
}

/* t = sluice.now() */
static int
lapi_now(lua_State *L)
{
    struct lapi_env *env = lapi_env(L);

    lua_pushnumber(L, env->loop != NULL ? ev_now(env->loop) : ev_time());
    return 1;
}

int
lapi_core_open(lua_State *L)
{
    struct lapi_env *env = lapi_env(L);

    lua_newtable(L);
    lua_pushcfunction(L, lapi_now);
    lua_setfield(L, -2, "now");
    lapi_wait_open(L);
    lapi_domains_push(L, env->cfg);
    lua_setfield(L, -2, "domains");
    lapi_log_open(L);
    lapi_zone_open(L);
    lapi_crypto_open(L);
    lapi_ldap_open(L);
    lapi_http_open(L);
    return 1;
}
