/* core/hook_run.c: running one decision hook through the policies; see hook_run.h.
 * The calls policies make while it runs are lapi_*.c's; what the session does with the
 * verdict is the session's (smtp_*.c through hook.c). */
#include "hook_run.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "lapi.h"
#include "log.h"
#include "smtp_session.h"
#include "worker.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

#define HOOK_FAIL_TEXT "Temporary policy failure, try again later"

static void hook_budget_cb(struct ev_loop *loop, ev_timer *t, int revents);

/* The current call is over: its coroutine goes to the collector. */
static void
hook_call_end(struct hook_run *run)
{
    ev_timer_stop(run->loop, &run->budget);
    luaL_unref(policy_vm_state(run->vm), LUA_REGISTRYINDEX, run->co_ref);
    run->co_ref = LUA_NOREF;
    run->co = NULL;
}

static void
hook_run_free(struct hook_run *run)
{
    if (run->cancel != NULL)
        run->cancel(run);
    ev_timer_stop(run->loop, &run->timer);
    hook_call_end(run);
    luaL_unref(policy_vm_state(run->vm), LUA_REGISTRYINDEX, run->args);
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

/* 451 4.3.0 for the client, policy.error for the log. */
static void
hook_policy_error(struct hook_run *run, const char *msg, int line)
{
    struct logline l;

    log_begin(&l, LOG_ERR, "policy.error", run->session ? run->session->id : 0);
    log_str(&l, "policy", policy_vm_path(run->vm, run->current));
    log_int(&l, "line", line > 0 ? line : hook_defined_line(run));
    log_str(&l, "hook", policy_hook_names[run->hook]);
    log_str(&l, "error", msg);
    log_end(&l);
    verdict_set(&run->verdict, VERDICT_TEMPFAIL, 451, "4.3.0", HOOK_FAIL_TEXT);
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

/* Begin the next policy's call: a fresh coroutine with the function and the arguments.
 * false when no policy is left. */
static bool
hook_next_call(struct hook_run *run)
{
    lua_State *L = policy_vm_state(run->vm);
    size_t     n = policy_vm_n_policies(run->vm), i;
    int        j, t;

    for (i = run->next; i < n && !policy_vm_push_hook(run->vm, L, i, run->hook); i++)
        ;
    run->next = i + 1;
    if (i >= n)
        return false;
    run->current = i;
    run->co = lua_newthread(L);
    lua_insert(L, -2);
    lua_xmove(L, run->co, 1); /* the function */
    run->co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_rawgeti(run->co, LUA_REGISTRYINDEX, run->args);
    t = lua_gettop(run->co);
    for (j = 1; j <= run->nargs; j++)
        lua_rawgeti(run->co, t, j);
    lua_remove(run->co, t);
    run->budget_end = ev_now(run->loop) + run->session->cfg->hook_timeout;
    ev_timer_set(&run->budget, run->session->cfg->hook_timeout, 0.);
    ev_timer_start(run->loop, &run->budget);
    return true;
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
        if (rc == LUA_YIELD && run->cancel != NULL)
            return HOOK_PENDING;
        if (rc == LUA_YIELD)
            hook_policy_error(run, "yielded other than through the sluice API", 0);
        else if (rc != 0)
            hook_lua_error(run);
        else if (!run->notify && lua_gettop(run->co) > 0 && !lua_isnil(run->co, 1))
            hook_take_verdict(run);
        if (run->notify)
            verdict_set(&run->verdict, VERDICT_NONE, 0, NULL, NULL);
        hook_call_end(run);
        if (run->verdict.kind != VERDICT_NONE || !hook_next_call(run))
            return HOOK_DONE;
        nres = run->nargs;
    }
}

/* The run is over after a wait: free it, then tell the session. */
static void
hook_finish(struct hook_run *run)
{
    struct smtp_session *s = run->session;
    hook_done_fn        *done = run->done;
    struct verdict       v = run->verdict;

    s->hook = NULL;
    hook_run_free(run);
    done(s, &v);
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
    snprintf(msg, sizeof(msg), "hook_timeout (%g s) exceeded", run->session->cfg->hook_timeout);
    hook_policy_error(run, msg, 0);
    if (run->notify) { /* the next policy still runs */
        verdict_set(&run->verdict, VERDICT_NONE, 0, NULL, NULL);
        hook_call_end(run);
        if (hook_next_call(run) && hook_step(run, run->nargs) == HOOK_PENDING)
            return;
    }
    hook_finish(run);
}

static enum hook_rc
hook_run_begin(struct smtp_session *s, struct policy_vm *vm, enum policy_hook hook,
               int nargs, bool notify, hook_done_fn *done, struct verdict *out)
{
    lua_State       *L = policy_vm_state(vm);
    struct hook_run *run = policy_vm_hook_count(vm, hook) ? calloc(1, sizeof(*run)) : NULL;
    int              j;

    verdict_set(out, VERDICT_NONE, 0, NULL, NULL);
    if (run == NULL) {
        if (policy_vm_hook_count(vm, hook) != 0 && !notify)
            verdict_set(out, VERDICT_TEMPFAIL, 451, "4.3.0", HOOK_FAIL_TEXT); /* no memory */
        lua_pop(L, nargs);
        return HOOK_DONE;
    }
    *run = (struct hook_run){.session = s, .vm = vm, .loop = s->worker->loop, .hook = hook,
                             .nargs = nargs, .co_ref = LUA_NOREF, .done = done,
                             .notify = notify};
    ev_init(&run->budget, hook_budget_cb);
    ev_init(&run->timer, NULL);
    lua_createtable(L, nargs, 0);
    lua_insert(L, -(nargs + 1));
    for (j = nargs; j >= 1; j--)
        lua_rawseti(L, -(j + 1), j);
    run->args = luaL_ref(L, LUA_REGISTRYINDEX);
    if (hook_next_call(run) && hook_step(run, nargs) == HOOK_PENDING) {
        s->hook = run;
        return HOOK_PENDING;
    }
    *out = run->verdict;
    hook_run_free(run);
    return HOOK_DONE;
}

enum hook_rc
hook_run_start(struct smtp_session *s, struct policy_vm *vm, enum policy_hook hook,
               int nargs, hook_done_fn *done, struct verdict *out)
{
    return hook_run_begin(s, vm, hook, nargs, false, done, out);
}

enum hook_rc
hook_run_notify(struct smtp_session *s, struct policy_vm *vm, enum policy_hook hook,
                int nargs, hook_done_fn *done)
{
    struct verdict v;

    return hook_run_begin(s, vm, hook, nargs, true, done, &v);
}

void
hook_run_cancel(struct hook_run *run)
{
    run->session->hook = NULL;
    hook_run_free(run);
}
