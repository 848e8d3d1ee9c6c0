/* core/policy/lapi_ldap.c: sluice.ldap.verify (docs/lua-api.md), the hook's side of
 * ldap_client.c: it finds the identity's domain and its `ldap` settings, starts the
 * check (or joins the identical one in progress: auth_flight.h), registers the cancel and
 * yields; the check's completion resumes every hook waiting for it. The
 * directory's connections live in one ldap_client per Lua state (that is, per worker
 * and policy generation), kept in the registry and closed by its __gc when the state
 * is. Also the `ldap` table of sluice.domains: the settings without the service
 * password. */
#include <ev.h>
#include <lauxlib.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth_cache.h"
#include "auth/auth_flight.h"
#include "config/config.h"
#include "policy/hook_run.h"
#include "policy/lapi.h"
#include "auth/ldap_client.h"
#include "util/log.h"
#include "store/zone.h"

/* One hook waiting for a check's result: run->wait. Identical checks in progress share
 * one bind (auth_flight.h): the flight is the bind's done argument, and the bind is its
 * cancel's. */
struct lapi_ldap_wait {
    struct auth_flight_waiter waiter;
    struct hook_run          *run;   /* borrows */
    struct zone              *cache; /* borrows; where a success is remembered, or NULL */
    double                    cache_ttl;
    char                      key[AUTH_CACHE_KEY_MAX]; /* the flight's; "" for none */
};

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

/* Registry key of the state's client: the address of this variable. */
static const char lapi_ldap_key = 0;

static int
lapi_ldap_gc(lua_State *L)
{
    struct ldap_client **ud = lua_touserdata(L, 1);

    ldap_client_free(*ud);
    *ud = NULL;
    return 0;
}

/* The state's client, made on first use; NULL when out of memory. */
static struct ldap_client *
lapi_ldap_client(lua_State *L, struct hook_run *run)
{
    struct ldap_client **ud;

    lua_pushlightuserdata(L, (void *)&lapi_ldap_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    ud = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (ud != NULL)
        return *ud;
    lua_pushlightuserdata(L, (void *)&lapi_ldap_key);
    ud = lua_newuserdata(L, sizeof(*ud));
    *ud = ldap_client_new(run->loop, run->ctx.offload, run->ctx.offload_ret, &run->ctx.gen);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, lapi_ldap_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    lua_rawset(L, LUA_REGISTRYINDEX);
    return *ud;
}

/* The bind ended: everyone still waiting gets its result. */
static void
lapi_ldap_done(void *arg, enum ldap_client_rc rc, const char *reason)
{
    auth_flight_finish(arg, (int)rc, reason);
}

/* The flight's cancel: the last waiter left. */
static void
lapi_ldap_bind_cancel(void *arg)
{
    ldap_client_cancel(arg);
}

static void
lapi_ldap_wait_done(struct auth_flight_waiter *waiter, int rc, const char *reason)
{
    struct lapi_ldap_wait *w = container_of(waiter, struct lapi_ldap_wait, waiter);
    struct hook_run       *run = w->run;

    if (rc == LDAP_CLIENT_OK && w->cache != NULL)
        lapi_remember_on_235(run, w->key, w->cache_ttl);
    free(w);
    run->cancel = NULL;
    run->wait = NULL;
    if (rc == LDAP_CLIENT_OK) {
        lua_pushboolean(run->co, 1);
        hook_run_resume(run, 1);
        return;
    }
    if (rc == LDAP_CLIENT_UNAVAILABLE)
        lua_pushnil(run->co);
    else
        lua_pushboolean(run->co, 0);
    lua_pushstring(run->co, reason); /* for the logs, never the reply */
    hook_run_resume(run, 2);
}

/* The session is gone, or the hook ran out of time: the others keep waiting. */
static void
lapi_ldap_cancel(struct hook_run *run)
{
    struct lapi_ldap_wait *w = run->wait;

    auth_flight_leave(&w->waiter);
    free(w);
    run->wait = NULL;
    run->cancel = NULL;
}

/* True when these credentials were found right a moment ago (auth_cache.h, the same
 * cache as sluice.passwd.verify's, under the backend name "ldap"); otherwise w learns
 * where to remember a success. w->key is the flight's key either way ("" when none could
 * be made: the check then shares with nobody). */
static bool
lapi_ldap_cached(struct hook_run *run, struct lapi_ldap_wait *w, const char *identity,
                 const char *password, size_t password_len)
{
    const struct hook_ctx *ctx = &run->ctx;
    struct zone           *cache = zones_at(ctx->zones, CONFIG_ZONE_AUTH_CACHE);

    if (strlen(password) != password_len ||
        auth_cache_key(ctx->gen_id, "ldap", identity, password, w->key) != 0) {
        w->key[0] = '\0';
        return false;
    }
    if (ctx->cfg->auth_cache_ttl == 0 || cache == NULL)
        return false;
    if (auth_cache_hit(cache, w->key, ev_now(run->loop))) {
        log_msg(LOG_DEBUG, "auth.cache_hit", ctx->sid, "%s", identity);
        return true;
    }
    w->cache = cache;
    w->cache_ttl = (double)ctx->cfg->auth_cache_ttl;
    return false;
}

/* w waits on the flight of its key in progress, or on a new one whose bind this starts.
 * -1 when out of memory. */
static int
lapi_ldap_fly(lua_State *L, struct hook_run *run, struct lapi_ldap_wait *w,
              const struct config_domain *d, const char *identity, size_t local_len,
              const char *domain, const char *password, size_t pw_len)
{
    struct auth_flights *fs = lapi_flights(L);
    struct auth_flight  *f = NULL;
    struct ldap_client  *c;
    struct ldap_request *req;
    char                 solo[32];

    if (fs == NULL)
        return -1;
    if (w->key[0] != '\0' && (f = auth_flight_find(fs, w->key)) != NULL) {
        auth_flight_join(f, &w->waiter);
        lapi_log_flight(run->ctx.sid, "ldap", identity, auth_flight_waiters(f));
        return 0;
    }
    if (w->key[0] == '\0') /* a key of its own: nobody else can join */
        snprintf(solo, sizeof(solo), "solo:%p", (void *)w);
    if ((c = lapi_ldap_client(L, run)) == NULL ||
        (f = auth_flight_new(fs, w->key[0] != '\0' ? w->key : solo)) == NULL)
        return -1;
    auth_flight_join(f, &w->waiter);
    req = ldap_client_verify(c, d, run->ctx.sid, identity, local_len, domain, strlen(domain),
                             password, pw_len, lapi_ldap_done, f);
    if (req == NULL) {
        auth_flight_leave(&w->waiter); /* frees f: no cancel set yet */
        return -1;
    }
    auth_flight_set_cancel(f, lapi_ldap_bind_cancel, req);
    lapi_log_flight(run->ctx.sid, "ldap", identity, 1);
    return 0;
}

/* ok, err = sluice.ldap.verify(identity, password); yields (not for an identity no
 * directory can know: false at once; not when the check is remembered from a moment
 * ago: true at once). false and nil come with why, for the logs. */
static int
lapi_ldap_verify(lua_State *L)
{
    size_t                      id_len, pw_len, local_len;
    const char                 *identity = luaL_checklstring(L, 1, &id_len);
    const char                 *password = luaL_checklstring(L, 2, &pw_len);
    struct hook_run            *run = lapi_hook_run(L, "sluice.ldap.verify");
    const char                 *at = memrchr(identity, '@', id_len);
    const struct config_domain *d = NULL;
    struct lapi_ldap_wait      *w;
    char                        domain[256];

    lapi_require_yieldable(L, run, "sluice.ldap.verify");
    local_len = at != NULL ? (size_t)(at - identity) : 0;
    if (at != NULL && id_len - local_len - 1 < sizeof(domain)) {
        memcpy(domain, at + 1, id_len - local_len - 1);
        domain[id_len - local_len - 1] = '\0';
        d = config_domain_find(lapi_env(L)->cfg, domain);
    }
    /* No local part, a NUL in the name, no such domain or no directory for it: no user.
     * An empty password would be an unauthenticated bind, which servers answer with
     * success (RFC 4513 5.1.2): never sent. */
    if (d == NULL || d->ldap == NULL || local_len == 0 || pw_len == 0 ||
        memchr(identity, '\0', id_len) != NULL) {
        lua_pushboolean(L, 0);
        lua_pushstring(L, d == NULL || d->ldap == NULL ? "no directory for the domain"
                          : pw_len == 0                ? "empty password"
                                                       : "malformed identity");
        return 2;
    }
    if (run->ctx.offload == NULL) {
        lua_pushnil(L);
        lua_pushstring(L, "thread pool unavailable");
        return 2;
    }
    w = calloc(1, sizeof(*w));
    if (w != NULL && lapi_ldap_cached(run, w, identity, password, pw_len)) {
        free(w);
        lua_pushboolean(L, 1);
        return 1;
    }
    if (w != NULL) {
        w->run = run;
        w->waiter.done = lapi_ldap_wait_done;
    }
    if (w == NULL ||
        lapi_ldap_fly(L, run, w, d, identity, local_len, domain, password, pw_len) != 0) {
        free(w);
        lua_pushnil(L);
        lua_pushstring(L, "out of memory");
        return 2;
    }
    run->wait = w;
    run->cancel = lapi_ldap_cancel;
    return lua_yield(L, 0);
}

void
lapi_ldap_open(lua_State *L)
{
    lua_newtable(L);
    lua_pushcfunction(L, lapi_ldap_verify);
    lua_setfield(L, -2, "verify");
    lua_setfield(L, -2, "ldap");
}

static void
lapi_ldap_set_string(lua_State *L, const char *key, const char *value)
{
    if (value == NULL)
        return;
    lua_pushstring(L, value);
    lua_setfield(L, -2, key);
}

void
lapi_ldap_push_settings(lua_State *L, const struct config_ldap *l)
{
    lua_createtable(L, 0, 9);
    lua_createtable(L, (int)l->n_uris, 0);
    for (size_t i = 0; i < l->n_uris; i++) {
        lua_pushstring(L, l->uris[i]);
        lua_rawseti(L, -2, (int)i + 1);
    }
    lua_setfield(L, -2, "uris");
    lua_pushboolean(L, l->starttls);
    lua_setfield(L, -2, "starttls");
    lapi_ldap_set_string(L, "ca_file", l->ca_file);
    lapi_ldap_set_string(L, "base_dn", l->base_dn);
    lapi_ldap_set_string(L, "bind_dn", l->bind_dn);
    lapi_ldap_set_string(L, "filter", l->filter);
    lua_pushnumber(L, l->timeout);
    lua_setfield(L, -2, "timeout");
    lua_pushnumber(L, (lua_Number)l->max_connections);
    lua_setfield(L, -2, "max_connections");
}
