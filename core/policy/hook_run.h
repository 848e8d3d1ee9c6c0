/* core/policy/hook_run.h: one decision hook running through the policies (docs/lua-api.md
 * "Hooks"): each policy that has the hook is called in configuration order in a
 * coroutine with a budget of hook_timeout; the first verdict wins, nil asks the next.
 * A Lua error, a yield not through the sluice API, a non-verdict or the budget running
 * out gives 451 4.3.0 and a policy.error log line. The run knows its caller only through
 * the struct hook_ctx it was given (hook_ctx.h), never the session. */
#ifndef SLUICE_HOOK_RUN_H
#define SLUICE_HOOK_RUN_H

#include <ev.h>
#include <lua.h>
#include <stdbool.h>

#include "policy/hook.h"
#include "policy/hook_ctx.h"
#include "policy/policy_vm.h"

struct hook_run;
struct hook_pool;

/* Owned by the caller (the handle *pending) while pending; freed by the runner when it
 * ends (before ctx.done is called), or by hook_run_cancel() when the caller goes first. */
struct hook_run {
    struct hook_ctx      ctx;      /* a copy of the caller's */
    struct policy_vm    *vm;       /* borrows: the worker's */
    struct ev_loop      *loop;     /* borrows */
    enum policy_hook     hook;
    size_t               next;     /* the next policy to ask */
    size_t               current;  /* the policy whose hook runs now */
    struct hook_pool    *pool;     /* borrows: the vm state's idle threads (hook_run.c) */
    lua_State           *argv;     /* a thread holding the hook's arguments on its stack */
    int                  argv_ref; /* registry ref anchoring argv */
    int                  nargs;
    lua_State           *co;       /* the running call's coroutine, or NULL */
    int                  co_ref;   /* registry ref anchoring co */
    double               budget_end; /* ev_now() when hook_timeout runs out */
    ev_timer             budget;   /* fires at budget_end; runs only while the call waits
                                    * (the count hook bounds it while it runs) */
    ev_timer             timer;    /* sluice.sleep's wait */
    void               (*cancel)(struct hook_run *run); /* drops the pending wait, or NULL */
    void                *wait;     /* the pending wait's object (lapi_wait.c), or NULL */
    struct verdict       verdict;
    bool                 notify;   /* a notification hook: every policy runs, errors are
                                    * logged and skipped, return values ignored */
    double               started;  /* ev_now() at hook_run_start(): its duration's origin */
};

/* Run hook with the nargs values on top of the vm's state (popped), for the caller that
 * ctx describes (copied: it need not outlive the call). HOOK_DONE: the verdict is in *out.
 * HOOK_PENDING: *pending is the run, which calls ctx->done(ctx->owner, verdict) when it
 * ends (never before this returns) unless hook_run_cancel() comes first. With no policy
 * having the hook, HOOK_DONE and VERDICT_NONE without touching Lua. */
enum hook_rc hook_run_start(const struct hook_ctx *ctx, struct policy_vm *vm,
                            enum policy_hook hook, int nargs, struct verdict *out,
                            struct hook_run **pending);

/* The same for a notification hook (on_auth_result, on_relayed, on_disconnect): every
 * policy that has it runs; the verdict is always VERDICT_NONE. */
enum hook_rc hook_run_notify(const struct hook_ctx *ctx, struct policy_vm *vm,
                             enum policy_hook hook, int nargs, struct hook_run **pending);

/* The caller is going (a session being freed): drop the wait, free the run; ctx.done
 * is never called, nor anything else of ctx. */
void hook_run_cancel(struct hook_run *run);

/* A wait of lapi_wait.c finished (run->cancel already cleared): resume the coroutine
 * with the nres values on top of run->co. */
void hook_run_resume(struct hook_run *run, int nres);

#endif
