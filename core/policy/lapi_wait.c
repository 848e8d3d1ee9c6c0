/* core/policy/lapi_wait.c: the calls that suspend a hook: sluice.sleep (an ev_timer) and
 * sluice.passwd.verify (authdb_verify on the offload pool, one computation for identical
 * checks in progress: auth_flight.h). Each registers its cancel before yielding; its
 * completion clears the cancel and resumes the hook. A session freed meanwhile cancels:
 * the timer stops, or the wait leaves its flight; the last to leave orphans the offload
 * job, which frees itself when the pool hands it back (STYLE.md 3, late completions).
 * What every binding uses to find its hook run and check it may yield is lapi_run.c's. */
#include <ev.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth_cache.h"
#include "auth/auth_flight.h"
#include "auth/authdb.h"
#include "config/config.h"
#include "policy/hook_run.h"
#include "policy/lapi.h"
#include "util/log.h"
#include "util/offload.h"
#include "store/zone.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

/* ---- sluice.sleep ---------------------------------------------------------------------- */

static void
lapi_sleep_cancel(struct hook_run *run)
{
    ev_timer_stop(run->loop, &run->timer);
    run->cancel = NULL;
}

static void
lapi_sleep_done_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct hook_run *run = container_of(t, struct hook_run, timer);

    (void)loop;
    (void)revents;
    run->cancel = NULL;
    lua_pushboolean(run->co, 1);
    hook_run_resume(run, 1);
}

/* ok = sluice.sleep(seconds); yields */
static int
lapi_sleep(lua_State *L)
{
    struct hook_run *run = lapi_hook_run(L, "sluice.sleep");
    lua_Number       secs = luaL_checknumber(L, 1);

    luaL_argcheck(L, secs >= 0 && secs <= run->budget_end - ev_now(run->loop), 1,
                  "out of range (0 .. what is left of hook_timeout)");
    lapi_require_yieldable(L, run, "sluice.sleep");
    ev_timer_init(&run->timer, lapi_sleep_done_cb, secs, 0.);
    ev_timer_start(run->loop, &run->timer);
    run->cancel = lapi_sleep_cancel;
    return lua_yield(L, 0);
}

/* ---- sluice.passwd.verify --------------------------------------------------------------- */

/* Identical checks in progress share one hash (auth_flight.h): the first starts a
 * lapi_verify_job on the offload pool, and it and every later one wait on its flight with
 * a lapi_verify_wait each, as their hook run's wait. A session going, or a hook running out
 * of budget, only takes its own wait off the flight. */

/* The computation: one hash in flight. Owns copies of what the pool thread reads. */
struct lapi_verify_job {
    struct offload_job   job;  /* first: the offload queue links through it */
    struct auth_flight  *flight; /* who waits for the result; NULL once nobody does
                                  * (loop thread only) */
    struct pin           gen;  /* holds a reference: a reload may retire the session's
                                * generation while the hash is computed */
    const struct authdb *db;   /* gen's user files */
    char                *identity; /* owns */
    char                *password; /* owns; wiped before it is freed */
    enum authdb_rc       rc;   /* written by the pool thread */
};

/* One hook waiting for a flight's result: run->wait. */
struct lapi_verify_wait {
    struct auth_flight_waiter waiter;
    struct hook_run          *run;   /* borrows */
    struct zone              *cache; /* borrows; where a success is remembered, or NULL */
    double                    cache_ttl;
    char                      key[AUTH_CACHE_KEY_MAX]; /* auth_cache_key(): the flight's */
};

static void
lapi_verify_job_free(struct lapi_verify_job *j)
{
    if (j->password != NULL)
        explicit_bzero(j->password, strlen(j->password));
    free(j->password);
    free(j->identity);
    pin_unref(&j->gen);
    free(j);
}

static void
lapi_verify_work(struct offload_job *job)
{
    struct lapi_verify_job *j = (struct lapi_verify_job *)job;

    j->rc = j->db != NULL ? authdb_verify(j->db, j->identity, j->password, NULL)
                          : AUTHDB_NO_DOMAIN;
}

/* Back on the loop: everyone still waiting gets the result. */
static void
lapi_verify_done(struct offload_job *job)
{
    struct lapi_verify_job *j = (struct lapi_verify_job *)job;
    struct auth_flight     *f = j->flight;

    j->flight = NULL;
    if (f != NULL) /* NULL: every waiter left (the flight cancelled it) */
        auth_flight_finish(f, (int)j->rc, authdb_rc_name(j->rc));
    lapi_verify_job_free(j);
}

/* The flight's cancel: the last waiter left. The hash is not computed for nobody. */
static void
lapi_verify_job_cancel(void *arg)
{
    struct lapi_verify_job *j = arg;

    j->flight = NULL; /* lapi_verify_done frees it */
    offload_cancel(&j->job);
}

static void
lapi_verify_wait_done(struct auth_flight_waiter *waiter, int rc, const char *reason)
{
    struct lapi_verify_wait *w = container_of(waiter, struct lapi_verify_wait, waiter);
    struct hook_run         *run = w->run;
    bool                     ok = rc == AUTHDB_OK;

    if (ok && w->cache != NULL)
        lapi_remember_on_235(run, w->key, w->cache_ttl);
    free(w);
    run->cancel = NULL;
    run->wait = NULL;
    lua_pushboolean(run->co, ok);
    if (ok) {
        hook_run_resume(run, 1);
        return;
    }
    lua_pushstring(run->co, reason); /* for the policy's log line, never the reply */
    hook_run_resume(run, 2);
}

/* The session is gone, or the hook ran out of time: the others keep waiting. */
static void
lapi_verify_cancel(struct hook_run *run)
{
    struct lapi_verify_wait *w = run->wait;

    auth_flight_leave(&w->waiter);
    free(w);
    run->wait = NULL;
    run->cancel = NULL;
}

/* True when these credentials were verified a moment ago (auth_cache.h); otherwise w
 * learns where to remember a success. w->key is the flight's key either way ("" when
 * none could be made: the check then shares with nobody). */
static bool
lapi_verify_cached(struct hook_run *run, struct lapi_verify_wait *w, const char *identity,
                   const char *password)
{
    const struct hook_ctx *ctx = &run->ctx;
    struct zone           *cache = zones_at(ctx->zones, CONFIG_ZONE_AUTH_CACHE);

    if (auth_cache_key(ctx->gen_id, "file", identity, password, w->key) != 0) {
        w->key[0] = '\0';
        return false;
    }
    if (ctx->cfg->auth_cache_ttl == 0 || cache == NULL)
        return false;
    if (auth_cache_hit(cache, w->key, ev_now(ctx->loop))) {
        log_msg(LOG_DEBUG, "auth.cache_hit", ctx->sid, "%s", identity);
        return true;
    }
    w->cache = cache;
    w->cache_ttl = (double)ctx->cfg->auth_cache_ttl;
    return false;
}

/* A check of (identity, password) on a new flight of w->key (or of no key): the job is
 * queued and w waits on it. nil and why (pushed) when the pool refused it. */
static int
lapi_verify_start(lua_State *L, struct hook_run *run, struct lapi_verify_wait *w,
                  const char *identity, const char *password)
{
    const struct hook_ctx  *ctx = &run->ctx;
    struct auth_flights    *fs = lapi_flights(L);
    struct lapi_verify_job *j = calloc(1, sizeof(*j));
    struct auth_flight     *f = NULL;
    enum offload_rc         rc;
    char                    solo[32];

    if (w->key[0] == '\0') /* a key of its own: nobody else can join */
        snprintf(solo, sizeof(solo), "solo:%p", (void *)w);
    if (j == NULL || fs == NULL || (j->identity = strdup(identity)) == NULL ||
        (j->password = strdup(password)) == NULL ||
        (f = auth_flight_new(fs, w->key[0] != '\0' ? w->key : solo)) == NULL) {
        if (j != NULL)
            lapi_verify_job_free(j);
        lua_pushnil(L);
        lua_pushstring(L, "out of memory");
        return 2;
    }
    auth_flight_join(f, &w->waiter);
    j->flight = f;
    j->gen = ctx->gen;
    pin_ref(&j->gen);
    j->db = ctx->authdb;
    j->job.work = lapi_verify_work;
    j->job.done = lapi_verify_done;
    rc = offload_submit_for(ctx->offload, ctx->offload_ret, &j->job,
                            ctx->client); /* its network, as iplimit counts */
    if (rc != OFFLOAD_QUEUED) {
        auth_flight_leave(&w->waiter); /* frees f: no cancel set yet */
        lapi_verify_job_free(j);
        log_msg(LOG_NOTICE, "auth.busy", ctx->sid, "%s: %s", ctx->client,
                rc == OFFLOAD_CLIENT_FULL ? "limits.max_auth_jobs_per_client reached"
                                          : "limits.max_auth_jobs reached");
        lua_pushnil(L);
        lua_pushstring(L, rc == OFFLOAD_CLIENT_FULL ? "busy: too many checks from this client"
                                                    : "busy: too many checks in progress");
        return 2;
    }
    auth_flight_set_cancel(f, lapi_verify_job_cancel, j);
    lapi_log_flight(ctx->sid, "file", identity, 1);
    return 0;
}

/* ok, err = sluice.passwd.verify(identity, password); yields (not when the check is
 * remembered from a moment ago). false comes with why: "wrong password", "unknown user",
 * "unknown domain" or "malformed identity" (all the same work and the same wait). The same
 * check already in progress for another session is not started again: this one waits
 * for its result. */
static int
lapi_passwd_verify(lua_State *L)
{
    const char              *identity = luaL_checkstring(L, 1);
    const char              *password = luaL_checkstring(L, 2);
    struct hook_run         *run = lapi_hook_run(L, "sluice.passwd.verify");
    const struct hook_ctx   *ctx = &run->ctx;
    struct lapi_verify_wait *w;
    struct auth_flight      *f;
    struct auth_flights     *fs;
    int                      nres;

    lapi_require_yieldable(L, run, "sluice.passwd.verify");
    if (ctx->offload == NULL) {
        lua_pushnil(L);
        lua_pushstring(L, "thread pool unavailable");
        return 2;
    }
    w = calloc(1, sizeof(*w));
    if (w == NULL) {
        lua_pushnil(L);
        lua_pushstring(L, "out of memory");
        return 2;
    }
    if (lapi_verify_cached(run, w, identity, password)) {
        free(w);
        lua_pushboolean(L, 1);
        return 1;
    }
    w->run = run;
    w->waiter.done = lapi_verify_wait_done;
    fs = lapi_flights(L);
    if (w->key[0] != '\0' && fs != NULL && (f = auth_flight_find(fs, w->key)) != NULL) {
        auth_flight_join(f, &w->waiter);
        lapi_log_flight(ctx->sid, "file", identity, auth_flight_waiters(f));
    } else if ((nres = lapi_verify_start(L, run, w, identity, password)) != 0) {
        free(w);
        return nres;
    }
    run->wait = w;
    run->cancel = lapi_verify_cancel;
    return lua_yield(L, 0);
}

void
lapi_wait_open(lua_State *L)
{
    lua_pushcfunction(L, lapi_sleep);
    lua_setfield(L, -2, "sleep");
    lua_newtable(L);
    lua_pushcfunction(L, lapi_passwd_verify);
    lua_setfield(L, -2, "verify");
    lua_setfield(L, -2, "passwd");
}
