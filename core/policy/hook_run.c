/* core/policy/hook_run.c: running one decision hook through the policies; see hook_run.h.
 * The calls policies make while it runs are lapi_*.c's; what the session does with the
 * verdict is the session's (core/smtp/smtp_hook.c gives the hook_ctx and gets the verdict
 * back through its done function). */
#include "policy/hook_run.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "proto/smtp_replies.h"
#include "policy/hook_stats.h"
#include "policy/lapi.h"
#include "util/log.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

/* Idle threads kept per Lua state for the next calls: making a coroutine for every call
 * (and collecting it) cost more than running a small hook. A thread whose function
 * returned is as good as new: lua_resume() on a thread with status 0 and no frame starts
 * the function on its stack afresh (Lua 5.1 manual, lua_resume; LuaJIT's lua_resume checks
 * the same). One that raised, or was cancelled while suspended, is left to the collector,
 * and so is one whose globals a policy changed (setfenv(0, ...)). */
#define HOOK_POOL_MAX  16
#define HOOK_SPARE_MAX 4

/* Also kept: a few freed runs, so that a steady stream of hook calls allocates nothing
 * from the C heap either. (What lies next to a connection's read buffer decides whether
 * conn.c's realloc of it grows in place or copies: docs/benchmarks.md, "Policy engine
 * cost".) */
struct hook_pool {
    const void *globals; /* the state's globals table: a reused thread must have them */
    int         n;
    struct {
        lua_State *L;
        int        ref; /* registry ref anchoring L */
    } idle[HOOK_POOL_MAX];
    int              n_spare;
    struct hook_run *spare[HOOK_SPARE_MAX]; /* owns */
};

/* Registry key of a state's pool: the address of this variable. */
static const char hook_pool_key = 0;

static void hook_budget_cb(struct ev_loop *loop, ev_timer *t, int revents);

/* __gc of the pool: the state is being closed. */
static int
hook_pool_gc(lua_State *L)
{
    struct hook_pool *p = lua_touserdata(L, 1);

    while (p->n_spare > 0)
        free(p->spare[--p->n_spare]);
    return 0;
}

/* The pool of L, a userdata in its registry, made on first use. */
static struct hook_pool *
hook_pool_of(lua_State *L)
{
    struct hook_pool *p;

    lua_pushlightuserdata(L, (void *)&hook_pool_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    p = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (p != NULL)
        return p;
    lua_pushlightuserdata(L, (void *)&hook_pool_key);
    p = lua_newuserdata(L, sizeof(*p));
    p->globals = lua_topointer(L, LUA_GLOBALSINDEX);
    p->n = 0;
    p->n_spare = 0;
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, hook_pool_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    lua_rawset(L, LUA_REGISTRYINDEX);
    return p;
}

/* A thread with an empty stack, anchored in the registry by *ref. */
static lua_State *
hook_thread_take(struct hook_run *run, int *ref)
{
    struct hook_pool *p = run->pool;
    lua_State        *L = policy_vm_state(run->vm), *co;

    if (p->n > 0) {
        p->n--;
        *ref = p->idle[p->n].ref;
        return p->idle[p->n].L;
    }
    co = lua_newthread(L);
    *ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return co;
}

/* Done with co: back to the pool when reusable (finished: its function returned, or it
 * never ran one), else its anchor goes and the collector takes it. */
static void
hook_thread_return(struct hook_run *run, lua_State *co, int ref, bool finished)
{
    struct hook_pool *p = run->pool;
    lua_State        *L = policy_vm_state(run->vm);

    if (finished && p->n < HOOK_POOL_MAX && lua_status(co) == 0) {
        lua_settop(co, 0);
        if (lua_topointer(co, LUA_GLOBALSINDEX) == p->globals) {
            p->idle[p->n].L = co;
            p->idle[p->n].ref = ref;
            p->n++;
            return;
        }
    }
    luaL_unref(L, LUA_REGISTRYINDEX, ref);
}

/* The current call is over; finished: its function returned. */
static void
hook_call_end(struct hook_run *run, bool finished)
{
    ev_timer_stop(run->loop, &run->budget);
    if (run->co != NULL)
        hook_thread_return(run, run->co, run->co_ref, finished);
    run->co_ref = LUA_NOREF;
    run->co = NULL;
}

static void
hook_run_free(struct hook_run *run)
{
    hook_stats_add(run->ctx.stats, run->hook, ev_now(run->loop) - run->started);
    if (run->cancel != NULL)
        run->cancel(run);
    ev_timer_stop(run->loop, &run->timer);
    hook_call_end(run, false);
    if (run->argv != NULL)
        hook_thread_return(run, run->argv, run->argv_ref, true);
    if (run->pool->n_spare < HOOK_SPARE_MAX)
        run->pool->spare[run->pool->n_spare++] = run;
    else
        free(run);
}

/* "file:12: message" -> 12; 0 when the message carries no position. */
static int
hook_error_line(const char *msg)
{
    const char *p = msg;
    char       *end;
    long        n;

    while ((p = strchr(p, ':')) != NULL) {
        n = strtol(p + 1, &end, 10);
        if (end > p + 1 && *end == ':' && n > 0)
            return (int)n;
        p++;
    }
    return 0;
}

/* Where the current policy's hook function is defined. */
static int
hook_defined_line(struct hook_run *run)
{
    lua_State *L = policy_vm_state(run->vm);
    lua_Debug  ar;

    if (!policy_vm_push_hook(run->vm, L, run->current, run->hook))
        return 0;
    if (lua_getinfo(L, ">S", &ar) == 0)
        return 0;
    return ar.linedefined;
}

/* The verdict of a hook that failed, whichever policy it was: 451 4.3.0. */
static void
hook_run_tempfail(struct verdict *v)
{
    const struct smtp_reply_entry *r = smtp_replies_get(SMTP_R_POLICY_TEMPFAIL);

    verdict_set(v, VERDICT_TEMPFAIL, r->code, r->enhanced, r->text);
}

/* 451 4.3.0 for the client, policy.error for the log. */
static void
hook_policy_error(struct hook_run *run, const char *msg, int line)
{
    struct logline l;

    log_begin(&l, LOG_ERR, "policy.error", run->ctx.sid);
    log_str(&l, "policy", policy_vm_path(run->vm, run->current));
    log_int(&l, "line", line > 0 ? line : hook_defined_line(run));
    log_str(&l, "hook", policy_hook_names[run->hook]);
    log_str(&l, "error", msg);
    log_end(&l);
    hook_run_tempfail(&run->verdict);
}

/* The coroutine raised: its message is at its stack top. */
static void
hook_lua_error(struct hook_run *run)
{
    const char *msg = lua_isstring(run->co, -1) ? lua_tostring(run->co, -1) : NULL;

    if (msg == NULL)
        hook_policy_error(run, "error object is not a string", 0);
    else
        hook_policy_error(run, msg, hook_error_line(msg));
}

/* Begin the next policy's call: a coroutine with the function and the arguments.
 * false when no policy is left. The budget starts now; its timer only when the call
 * waits (hook_step). */
static bool
hook_next_call(struct hook_run *run)
{
    size_t     n = policy_vm_n_policies(run->vm), i;
    lua_State *co;
    int        co_ref, j;

    if (run->next >= n)
        return false;
    co = hook_thread_take(run, &co_ref);
    lua_checkstack(co, run->nargs + 1);
    for (i = run->next; i < n && !policy_vm_push_hook(run->vm, co, i, run->hook); i++)
        ;
    run->next = i + 1;
    if (i >= n) {
        hook_thread_return(run, co, co_ref, true);
        return false;
    }
    run->current = i;
    run->co = co;
    run->co_ref = co_ref;
    for (j = 1; j <= run->nargs; j++)
        lua_pushvalue(run->argv, j);
    lua_xmove(run->argv, co, run->nargs);
    run->budget_end = ev_now(run->loop) + run->ctx.cfg->hook_timeout;
    return true;
}

/* The call waits: the budget's timer runs for what is left of it. */
static void
hook_budget_start(struct hook_run *run)
{
    double left = run->budget_end - ev_now(run->loop);

    ev_timer_stop(run->loop, &run->budget);
    ev_timer_set(&run->budget, left > 0. ? left : 0., 0.);
    ev_timer_start(run->loop, &run->budget);
}

/* verdict.check(v), then v into run->verdict. v is at index 1 of run->co. */
static void
hook_take_verdict(struct hook_run *run)
{
    lua_State  *L = policy_vm_state(run->vm);
    int         base = lua_gettop(L);
    const char *kind;

    lua_pushvalue(run->co, 1);
    lua_xmove(run->co, L, 1);
    policy_vm_push_check(run->vm, L);
    lua_pushvalue(L, base + 1);
    if (lua_pcall(L, 1, 2, 0) != 0 || !lua_toboolean(L, -2)) {
        hook_policy_error(run, lua_isstring(L, -1) ? lua_tostring(L, -1) : "not a verdict", 0);
        lua_settop(L, base);
        return;
    }
    lua_getfield(L, base + 1, "kind");
    lua_getfield(L, base + 1, "code");
    lua_getfield(L, base + 1, "enhanced");
    lua_getfield(L, base + 1, "text");
    kind = lua_tostring(L, base + 4);
    verdict_set(&run->verdict,
                strcmp(kind, "accept") == 0   ? VERDICT_ACCEPT
                : strcmp(kind, "reject") == 0 ? VERDICT_REJECT
                                              : VERDICT_TEMPFAIL,
                (int)lua_tointeger(L, base + 5), lua_tostring(L, base + 6),
                lua_tostring(L, base + 7));
    lua_getfield(L, base + 1, "user"); /* sluice.accept(identity); verdict.check saw it */
    if (lua_type(L, -1) == LUA_TSTRING)
        snprintf(run->verdict.user, sizeof(run->verdict.user), "%s", lua_tostring(L, -1));
    lua_getfield(L, base + 1, "reason"); /* for the log line; verdict.check saw it */
    if (lua_type(L, -1) == LUA_TSTRING)
        snprintf(run->verdict.reason, sizeof(run->verdict.reason), "%s", lua_tostring(L, -1));
    lua_settop(L, base);
}

/* Resume run->co with nres values; go on through the policies until a verdict, a wait,
 * or the end. */
static enum hook_rc
hook_step(struct hook_run *run, int nres)
{
    struct lapi_env *env = policy_vm_env(run->vm);
    int              rc;

    for (;;) {
        env->run = run;
        env->policy = policy_vm_path(run->vm, run->current);
        rc = lua_resume(run->co, nres);
        env->run = NULL;
        env->policy = NULL;
        if (rc == LUA_YIELD && run->cancel != NULL) {
            hook_budget_start(run);
            return HOOK_PENDING;
        }
        if (rc == LUA_YIELD)
            hook_policy_error(run, "yielded other than through the sluice API", 0);
        else if (rc != 0)
            hook_lua_error(run);
        else if (!run->notify && lua_gettop(run->co) > 0 && !lua_isnil(run->co, 1))
            hook_take_verdict(run);
        if (run->notify)
            verdict_set(&run->verdict, VERDICT_NONE, 0, NULL, NULL);
        hook_call_end(run, rc == 0);
        if (run->verdict.kind != VERDICT_NONE || !hook_next_call(run))
            return HOOK_DONE;
        nres = run->nargs;
    }
}

/* The run is over after a wait: free it, then tell the caller. */
static void
hook_finish(struct hook_run *run)
{
    hook_ctx_done_fn *done = run->ctx.done;
    void             *owner = run->ctx.owner;
    struct verdict    v = run->verdict;

    hook_run_free(run);
    if (done != NULL)
        done(owner, &v);
}

void
hook_run_resume(struct hook_run *run, int nres)
{
    if (hook_step(run, nres) == HOOK_DONE)
        hook_finish(run);
}

static void
hook_budget_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct hook_run *run = container_of(t, struct hook_run, budget);
    char             msg[96];

    (void)loop;
    (void)revents;
    if (run->cancel != NULL)
        run->cancel(run);
    snprintf(msg, sizeof(msg), "hook_timeout (%g s) exceeded", run->ctx.cfg->hook_timeout);
    hook_policy_error(run, msg, 0);
    if (run->notify) { /* the next policy still runs */
        verdict_set(&run->verdict, VERDICT_NONE, 0, NULL, NULL);
        hook_call_end(run, false);
        if (hook_next_call(run) && hook_step(run, run->nargs) == HOOK_PENDING)
            return;
    }
    hook_finish(run);
}

static enum hook_rc
hook_run_begin(const struct hook_ctx *ctx, struct policy_vm *vm, enum policy_hook hook,
               int nargs, bool notify, struct verdict *out, struct hook_run **pending)
{
    lua_State        *L = policy_vm_state(vm);
    struct hook_pool *pool = hook_pool_of(L);
    struct hook_run  *run = NULL;

    *pending = NULL;
    verdict_set(out, VERDICT_NONE, 0, NULL, NULL);
    if (policy_vm_hook_count(vm, hook) != 0)
        run = pool->n_spare > 0 ? pool->spare[--pool->n_spare] : malloc(sizeof(*run));
    if (run == NULL) {
        if (policy_vm_hook_count(vm, hook) != 0 && !notify)
            hook_run_tempfail(out); /* no memory */
        lua_pop(L, nargs);
        return HOOK_DONE;
    }
    *run = (struct hook_run){.ctx = *ctx, .vm = vm, .loop = ctx->loop, .hook = hook,
                             .pool = pool, .argv_ref = LUA_NOREF, .nargs = nargs,
                             .co_ref = LUA_NOREF, .notify = notify,
                             .started = ev_now(ctx->loop)};
    ev_init(&run->budget, hook_budget_cb);
    ev_init(&run->timer, NULL);
    run->argv = hook_thread_take(run, &run->argv_ref);
    lua_checkstack(run->argv, 2 * nargs);
    lua_xmove(L, run->argv, nargs);
    if (hook_next_call(run) && hook_step(run, nargs) == HOOK_PENDING) {
        *pending = run;
        return HOOK_PENDING;
    }
    *out = run->verdict;
    hook_run_free(run);
    return HOOK_DONE;
}

enum hook_rc
hook_run_start(const struct hook_ctx *ctx, struct policy_vm *vm, enum policy_hook hook,
               int nargs, struct verdict *out, struct hook_run **pending)
{
    return hook_run_begin(ctx, vm, hook, nargs, false, out, pending);
}

enum hook_rc
hook_run_notify(const struct hook_ctx *ctx, struct policy_vm *vm, enum policy_hook hook,
                int nargs, struct hook_run **pending)
{
    struct verdict v;

    return hook_run_begin(ctx, vm, hook, nargs, true, &v, pending);
}

void
hook_run_cancel(struct hook_run *run)
{
    hook_run_free(run);
}
