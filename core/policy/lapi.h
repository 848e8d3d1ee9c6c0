/* core/policy/lapi.h: what the lapi_*.c files (the C half of the Lua API, `sluice.core`) share:
 * the environment they work in, kept as a light userdata in the state's registry. */
#ifndef SLUICE_LAPI_H
#define SLUICE_LAPI_H

#include <lua.h>
#include <stddef.h>
#include <stdint.h>

struct config;
struct zones;
struct zone_link;
struct ev_loop;
struct hook_run;
struct audit;

/* Owned by the policy vm; lives as long as its lua_State. */
struct lapi_env {
    const struct config *cfg;    /* borrows; the configuration the state was made from */
    struct zones        *zones;  /* borrows; NULL: zone operations raise (sluice check) */
    struct ev_loop      *loop;   /* borrows; NULL: sluice.now is the wall clock */
    struct audit        *audit;  /* borrows; NULL: sluice.audit discards */
    const char          *policy; /* borrows; file of the policy running now, or NULL */
    struct hook_run     *run;    /* borrows; the hook being resumed now, or NULL */
    struct zone_link    *zlink;  /* borrows; the worker's Redis connection (zone.h), or
                                  * NULL: Redis zones answer over the blocking one */
};

/* Store env in L's registry; lapi_env() finds it again. */
void             lapi_set_env(lua_State *L, struct lapi_env *env);
struct lapi_env *lapi_env(lua_State *L);

/* The loader behind package.preload['sluice.core']: returns the module table. */
int lapi_core_open(lua_State *L);

/* The domains configuration (cfg->domains) as the table sluice.domains shows: pushed on the
 * stack top (lapi_domains.c). */
void lapi_domains_push(lua_State *L, const struct config *cfg);

/* Each adds its functions to the table at the stack top. */
void lapi_log_open(lua_State *L);     /* log, audit */
void lapi_zone_open(lua_State *L);    /* zone(name), shdict = { get, set, incr } */
void lapi_crypto_open(lua_State *L);  /* crypto = { b64url_*, sha256, random, jwk } */
void lapi_ldap_open(lua_State *L);    /* ldap = { verify } (lapi_ldap.c) */
void lapi_http_open(lua_State *L);    /* http = { request } (lapi_http.c) */

struct config_ldap;
/* A domain's ldap settings as sluice.domains shows them: without the service password. */
void lapi_ldap_push_settings(lua_State *L, const struct config_ldap *l);

/* lapi_run.c, for every binding. The hook running now; raises outside a hook. */
struct hook_run *lapi_hook_run(lua_State *L, const char *fn);
/* Raise unless L is the hook's own coroutine (a policy's nested coroutine cannot yield
 * to the engine). */
void lapi_require_yieldable(lua_State *L, struct hook_run *run, const char *fn);

/* A backend found the password right (cache_key as auth_cache_key() made it): remember it
 * for ttl seconds once the session has sent 235, not before (passed on to the caller's
 * hook_ctx.remember_on_235; nothing without one). */
void lapi_remember_on_235(struct hook_run *run, const char *cache_key, double ttl);
struct auth_flights;
/* The state's table of checks in progress (auth_flight.h), made on first use and freed
 * with the state; NULL when out of memory. */
struct auth_flights *lapi_flights(lua_State *L);
/* Log a check of identity against backend joining a flight that waiters (this one
 * included) now wait on: auth.verify (debug) when it is the first and the computation
 * starts, auth.verify_shared (debug) when it shares one in progress. */
void lapi_log_flight(uint64_t sid, const char *backend, const char *identity, size_t waiters);
/* Raise in a hook past its budget that runs without yielding (a count hook). */
void lapi_budget_install(lua_State *L);
/* sleep and passwd.verify (lapi_wait.c) into the table at the stack top. */
void lapi_wait_open(lua_State *L);

/* "2026-11-25T16:10:00.123456Z" for t (seconds since the epoch) into buf (>= 28). */
void lapi_iso8601_us(double t, char *buf, size_t len);

#endif
