/* core/policy/lapi_wait.c: the calls that suspend a hook: sluice.sleep (an ev_timer) and
 * sluice.passwd.verify (authdb_verify on the offload pool). Each registers its cancel
 * before yielding; its completion clears the cancel and resumes the hook. A session
 * freed meanwhile cancels: the timer stops, the offload job is orphaned and frees
 * itself when the pool hands it back (STYLE.md 3, late completions). What every binding
 * uses to find its hook run and check it may yield is lapi_run.c's. */
#include <ev.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth_cache.h"
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

/* One check in flight. Owns copies of what the pool thread reads. */
struct lapi_verify_job {
    struct offload_job   job;  /* first: the offload queue links through it */
    struct hook_run     *run;  /* NULL once cancelled (loop thread only) */
    struct pin           gen;  /* holds a reference: a reload may retire the session's
                                * generation while the hash is computed */
    const struct authdb *db;   /* gen's user files */
    char                *identity; /* owns */
    char                *password; /* owns; wiped before it is freed */
    enum authdb_rc       rc;   /* written by the pool thread */
    struct zone         *cache; /* borrows; where a success is remembered, or NULL */
    double               cache_ttl;
    char                 cache_key[AUTH_CACHE_KEY_MAX];
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

static void
lapi_verify_done(struct offload_job *job)
{
    struct lapi_verify_job *j = (struct lapi_verify_job *)job;
    struct hook_run        *run = j->run;
    bool                    ok = j->rc == AUTHDB_OK;
    const char             *rc_name = authdb_rc_name(j->rc);

    if (run == NULL) { /* the session is gone, or the hook ran out of time */
        lapi_verify_job_free(j);
        return;
    }
    if (ok && j->cache != NULL)
        lapi_remember_on_235(run, j->cache_key, j->cache_ttl);
    lapi_verify_job_free(j);
    run->cancel = NULL;
    run->wait = NULL;
    lua_pushboolean(run->co, ok);
    if (ok) {
        hook_run_resume(run, 1);
        return;
    }
    lua_pushstring(run->co, rc_name); /* for the policy's log line, never the reply */
    hook_run_resume(run, 2);
}

static void
lapi_verify_cancel(struct hook_run *run)
{
    struct lapi_verify_job *j = run->wait;

    j->run = NULL; /* lapi_verify_done frees it */
    offload_cancel(&j->job); /* and the hash is not computed for nobody */
    run->wait = NULL;
    run->cancel = NULL;
}

/* True when these credentials were verified a moment ago (auth_cache.h); otherwise j
 * learns where to remember a success. */
static bool
lapi_verify_cached(struct hook_run *run, struct lapi_verify_job *j, const char *identity,
                   const char *password)
{
    const struct hook_ctx *ctx = &run->ctx;
    struct zone           *cache = zones_at(ctx->zones, CONFIG_ZONE_AUTH_CACHE);

    if (ctx->cfg->auth_cache_ttl == 0 || cache == NULL ||
        auth_cache_key(ctx->gen_id, "file", identity, password, j->cache_key) != 0)
        return false;
    if (auth_cache_hit(cache, j->cache_key, ev_now(ctx->loop))) {
        log_msg(LOG_DEBUG, "auth.cache_hit", ctx->sid, "%s", identity);
        return true;
    }
    j->cache = cache;
    j->cache_ttl = (double)ctx->cfg->auth_cache_ttl;
    return false;
}

/* ok, err = sluice.passwd.verify(identity, password); yields (not when the check is
 * remembered from a moment ago). false comes with why: "wrong password", "unknown user",
 * "unknown domain" or "malformed identity" (all the same work and the same wait). */
static int
lapi_passwd_verify(lua_State *L)
{
    const char             *identity = luaL_checkstring(L, 1);
    const char             *password = luaL_checkstring(L, 2);
    struct hook_run        *run = lapi_hook_run(L, "sluice.passwd.verify");
    const struct hook_ctx  *ctx = &run->ctx;
    struct lapi_verify_job *j;
    enum offload_rc         rc;

    lapi_require_yieldable(L, run, "sluice.passwd.verify");
    if (ctx->offload == NULL) {
        lua_pushnil(L);
        lua_pushstring(L, "thread pool unavailable");
        return 2;
    }
    j = calloc(1, sizeof(*j));
    if (j == NULL || (j->identity = strdup(identity)) == NULL ||
        (j->password = strdup(password)) == NULL) {
        if (j != NULL)
            lapi_verify_job_free(j);
        lua_pushnil(L);
        lua_pushstring(L, "out of memory");
        return 2;
    }
    if (lapi_verify_cached(run, j, identity, password)) {
        lapi_verify_job_free(j);
        lua_pushboolean(L, 1);
        return 1;
    }
    j->run = run;
    j->gen = ctx->gen;
    pin_ref(&j->gen);
    j->db = ctx->authdb;
    j->job.work = lapi_verify_work;
    j->job.done = lapi_verify_done;
    rc = offload_submit_for(ctx->offload, ctx->offload_ret, &j->job,
                            ctx->client); /* its network, as iplimit counts */
    if (rc != OFFLOAD_QUEUED) {
        lapi_verify_job_free(j);
        log_msg(LOG_NOTICE, "auth.busy", ctx->sid, "%s: %s", ctx->client,
                rc == OFFLOAD_CLIENT_FULL ? "limits.max_auth_jobs_per_client reached"
                                          : "limits.max_auth_jobs reached");
        lua_pushnil(L);
        lua_pushstring(L, rc == OFFLOAD_CLIENT_FULL ? "busy: too many checks from this client"
                                                    : "busy: too many checks in progress");
        return 2;
    }
    run->wait = j;
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
