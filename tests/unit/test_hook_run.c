/* tests/unit/test_hook_run.c: core/policy/hook_run.c and the waits of lapi_wait.c, driven
 * the way a session drives them but without one: a real LuaJIT state made from policy
 * files in a temporary directory, a real ev loop, and a struct hook_ctx whose owner is
 * a plain struct of the test. Nothing sleeps to synchronise: the loop is run one event
 * at a time (EVRUN_ONCE) until what the test waits for has happened, a bounded number of
 * times, with a watchdog timer so that a wait that never ends fails instead of hanging.
 * Run under ASan, the cancelled and orphaned waits also prove they leak nothing and
 * touch nothing freed. */
#include <ev.h>
#include <fcntl.h>
#include <lua.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "config/config.h"
#include "policy/hook.h"
#include "policy/hook_ctx.h"
#include "policy/hook_run.h"
#include "policy/policy_vm.h"
#include "testio.h"
#include "tmpdir.h"
#include "util/log.h"
#include "util/offload.h"

#define FAIL_TEXT "Temporary policy failure, try again later"

static const char *dir; /* removed at exit (tmpdir.h) */

/* ---- the scratch files, the config and the vm ---------------------------------------- */

/* One test's world: its config, loop, vm, and (when asked) offload pool. */
struct world {
    struct config         *cfg;
    struct ev_loop        *loop;
    struct policy_vm      *vm;
    struct offload        *pool;
    struct offload_return *ret;
};

/* x.lua holding policy, run with hook_timeout (seconds); pool_threads > 0: an offload
 * pool. Exits when any of it cannot be made (the test could not say anything). */
static void
world_init(struct world *w, const char *policy, const char *hook_timeout, int pool_threads)
{
    char text[1024], p[256], err[1024] = "";

    memset(w, 0, sizeof(*w));
    test_write_file(dir, "x.lua", policy);
    snprintf(text, sizeof(text),
             "return {\n"
             "  insecure = true,\n"
             "  listeners = { { name = 't', address = '127.0.0.1', port = 2587, tls = 'none' } },\n"
             "  upstreams = { default = { { host = '127.0.0.1', port = 2525, tls = 'none' } } },\n"
             "  hook_timeout = %s,\n"
             "  policies = { 'x.lua' },\n"
             "}\n",
             hook_timeout);
    test_write_file(dir, "sluice.lua", text);
    snprintf(p, sizeof(p), "%s/sluice.lua", dir);
    w->cfg = config_load(p, err, sizeof(err));
    w->loop = ev_loop_new(EVFLAG_AUTO);
    if (w->cfg != NULL && w->loop != NULL)
        w->vm = policy_vm_new(w->cfg, NULL, w->loop, err, sizeof(err));
    if (w->vm != NULL && pool_threads > 0) {
        w->pool = offload_new(pool_threads, 0, 0);
        w->ret = offload_return_new(w->loop);
    }
    if (w->vm == NULL || (pool_threads > 0 && (w->pool == NULL || w->ret == NULL))) {
        fprintf(stderr, "world_init: %s\n", err[0] ? err : "out of memory");
        exit(1);
    }
}

static void
world_cleanup(struct world *w)
{
    offload_free(w->pool);           /* joins the threads: nothing is running after it */
    if (w->ret != NULL)
        offload_return_free(w->ret); /* done() of what is left: each frees its job */
    policy_vm_free(w->vm);
    ev_loop_destroy(w->loop);
    config_free(w->cfg);
}

/* ---- the owner: what a session would be -------------------------------------------- */

/* The engine sees the generation only as a pin's owner to hold (hook_ctx.h); the test
 * counts what it holds. */
struct generation {
    int refs;
};

static void
gen_ref(void *g)
{
    ((struct generation *)g)->refs++;
}

static void
gen_unref(void *g)
{
    ((struct generation *)g)->refs--;
}

struct owner {
    int            done_calls;
    struct verdict v;
};

static int done_total; /* every owner's done calls, for owners that are freed */

static void
owner_done(void *arg, const struct verdict *v)
{
    struct owner *o = arg;

    o->done_calls++;
    o->v = *v;
    done_total++;
}

static struct hook_ctx
ctx_for(struct world *w, struct owner *o, struct generation *g)
{
    return (struct hook_ctx){
        .sid = 0x5eed,
        .client = "127.0.0.1",
        .cfg = w->cfg,
        .loop = w->loop,
        .offload = w->pool,
        .offload_ret = w->ret,
        .gen = {g, gen_ref, gen_unref},
        .owner = o,
        .done = owner_done,
    };
}

/* on_connect with an empty session table, as the session would start it. */
static enum hook_rc
start_connect(struct world *w, const struct hook_ctx *ctx, struct verdict *out,
              struct hook_run **run)
{
    lua_newtable(policy_vm_state(w->vm));
    return hook_run_start(ctx, w->vm, POLICY_ON_CONNECT, 1, out, run);
}

/* ---- driving the loop -------------------------------------------------------------- */

static void
watchdog_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop, (void)t, (void)revents;
}

/* Run the loop one event at a time until *v == want: true, or false after 1000 events
 * or 5 s without one (the watchdog wakes the loop, it synchronises nothing). */
static bool
drive_until(struct ev_loop *loop, const int *v, int want)
{
    ev_timer watchdog;
    int      n;

    ev_timer_init(&watchdog, watchdog_cb, 5., 5.);
    ev_timer_start(loop, &watchdog);
    for (n = 0; n < 1000 && *v != want; n++) {
        ev_tstamp before = ev_now(loop);

        ev_run(loop, EVRUN_ONCE);
        if (*v != want && ev_now(loop) - before >= 5.)
            break;
    }
    ev_timer_stop(loop, &watchdog);
    return *v == want;
}

/* ---- the log lines ----------------------------------------------------------------- */

static int  saved_stderr = -1, pipe_rd = -1;
static char captured[16384];

static void
capture_start(void)
{
    int p[2];

    if (pipe(p) != 0)
        abort();
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    fflush(stderr);
    saved_stderr = dup(2);
    dup2(p[1], 2);
    close(p[1]);
    pipe_rd = p[0];
}

static const char *
capture_end(void)
{
    ssize_t n = read(pipe_rd, captured, sizeof(captured) - 1);

    captured[n > 0 ? n : 0] = '\0';
    dup2(saved_stderr, 2);
    close(saved_stderr);
    close(pipe_rd);
    return captured;
}

static bool
is_tempfail_451(const struct verdict *v)
{
    return v->kind == VERDICT_TEMPFAIL && v->code == 451 && strcmp(v->enhanced, "4.3.0") == 0 &&
           strcmp(v->text, FAIL_TEXT) == 0;
}

/* ---- the tests ----------------------------------------------------------------------- */

static const char sleeper[] = "local sluice = require('sluice')\n"
                              "return { on_connect = function(s)\n"
                              "  sluice.sleep(0.01)\n"
                              "  return sluice.reject(550, '5.7.1', 'Not after a nap')\n"
                              "end }\n";

static void
a_hook_cancelled_while_it_sleeps_never_completes(void)
{
    struct world     w;
    struct owner     o = { 0 };
    struct hook_ctx  ctx;
    struct hook_run *run = NULL;
    struct verdict   out;

    world_init(&w, sleeper, "5", 0);
    ctx = ctx_for(&w, &o, NULL);
    CHECK_EQ_INT(start_connect(&w, &ctx, &out, &run), HOOK_PENDING);
    CHECK(run != NULL);
    hook_run_cancel(run);
    /* Without a flag: ev_run returns once no watcher is active. The sleep's timer (and the
     * budget's) left running would fire in 10 ms and resume a freed run. */
    ev_run(w.loop, 0);
    CHECK_EQ_INT(o.done_calls, 0);
    /* The state is fit for the next hook: it sleeps and ends with its verdict. */
    CHECK_EQ_INT(start_connect(&w, &ctx, &out, &run), HOOK_PENDING);
    CHECK(drive_until(w.loop, &o.done_calls, 1));
    CHECK(o.v.kind == VERDICT_REJECT && o.v.code == 550);
    world_cleanup(&w);
}

static const char verifier[] = "local sluice = require('sluice')\n"
                               "return { on_connect = function(s)\n"
                               "  local ok, err = sluice.passwd.verify('ann@example.org', 'pw')\n"
                               "  return sluice.accept()\n"
                               "end }\n";

static void
a_password_check_done_after_its_owner_went_resumes_nothing(void)
{
    struct world      w;
    struct owner     *o = calloc(1, sizeof(*o));
    struct generation g = { 1 };
    struct hook_ctx   ctx;
    struct hook_run  *run = NULL;
    struct verdict    out;

    world_init(&w, verifier, "5", 1);
    ctx = ctx_for(&w, o, &g);
    done_total = 0;
    CHECK_EQ_INT(start_connect(&w, &ctx, &out, &run), HOOK_PENDING);
    CHECK_EQ_INT(g.refs, 2); /* the check holds the generation while it is queued */
    hook_run_cancel(run);    /* the session is freed ... */
    free(o);                 /* ... and its memory with it (ASan: any touch is an error) */
    /* The check's completion still comes back through the loop, finds no run, and frees
     * the job, dropping its reference. */
    CHECK(drive_until(w.loop, &g.refs, 1));
    CHECK_EQ_INT(done_total, 0);
    world_cleanup(&w);
}

/* The pool's one thread waits here until the test writes to the pipe. */
struct blocker {
    struct offload_job job; /* first */
    int                fd;
    int                done;
};

static void
blocker_work(struct offload_job *job)
{
    struct blocker *b = (struct blocker *)job;
    char            c;

    if (read(b->fd, &c, 1) != 1)
        perror("blocker");
}

static void
blocker_done(struct offload_job *job)
{
    ((struct blocker *)job)->done = 1;
}

static void
a_hook_waiting_past_its_budget_gets_451_and_policy_error(void)
{
    struct world      w;
    struct owner      o = { 0 };
    struct generation g = { 1 };
    struct blocker    b = { .job = { .work = blocker_work, .done = blocker_done } };
    struct hook_ctx   ctx;
    struct hook_run  *run = NULL;
    struct verdict    out;
    const char       *log;
    int               p[2];

    if (pipe(p) != 0)
        abort();
    world_init(&w, verifier, "0.05", 1);
    b.fd = p[0];
    offload_submit(w.pool, w.ret, &b.job); /* the check queues behind it: it never ends */
    ctx = ctx_for(&w, &o, &g);
    capture_start();
    CHECK_EQ_INT(start_connect(&w, &ctx, &out, &run), HOOK_PENDING);
    CHECK(drive_until(w.loop, &o.done_calls, 1)); /* the budget's timer, 50 ms on */
    log = capture_end();
    CHECK(is_tempfail_451(&o.v));
    CHECK(strstr(log, "\"event\":\"policy.error\"") != NULL);
    CHECK(strstr(log, "\"sid\":\"00005eed\"") != NULL);
    CHECK(strstr(log, "x.lua\"") != NULL);
    CHECK(strstr(log, "\"hook\":\"on_connect\"") != NULL);
    CHECK(strstr(log, "hook_timeout (0.05 s) exceeded") != NULL);
    /* The blocker goes; the cancelled check is skipped and its job freed. */
    if (write(p[1], "x", 1) != 1)
        abort();
    CHECK(drive_until(w.loop, &b.done, 1));
    CHECK(drive_until(w.loop, &g.refs, 1));
    CHECK_EQ_INT(o.done_calls, 1);
    world_cleanup(&w);
    close(p[0]);
    close(p[1]);
}

static void
a_hook_running_past_its_budget_gets_451_and_policy_error(void)
{
    struct world     w;
    struct owner     o = { 0 };
    struct hook_ctx  ctx;
    struct hook_run *run = NULL;
    struct verdict   out;
    const char      *log;

    world_init(&w,
               "return { on_connect = function(s)\n"
               "  local n = 0\n"
               "  while true do n = n + 1 end\n"
               "end }\n",
               "0.05", 0);
    ctx = ctx_for(&w, &o, NULL);
    capture_start();
    CHECK_EQ_INT(start_connect(&w, &ctx, &out, &run), HOOK_DONE); /* never yielded */
    log = capture_end();
    CHECK(run == NULL);
    CHECK(is_tempfail_451(&out));
    CHECK(strstr(log, "\"event\":\"policy.error\"") != NULL);
    CHECK(strstr(log, "hook_timeout (0.05 s) exceeded") != NULL);
    /* The count hook raises where no line is known: the hook's own line is named. */
    CHECK(strstr(log, "\"line\":1,") != NULL);
    CHECK_EQ_INT(o.done_calls, 0);
    world_cleanup(&w);
}

static void
an_error_in_a_nested_coroutine_after_a_wait_names_its_line(void)
{
    struct world     w;
    struct owner     o = { 0 };
    struct hook_ctx  ctx;
    struct hook_run *run = NULL;
    struct verdict   out;
    const char      *log;

    world_init(&w,
               "local sluice = require('sluice')\n"
               "local function inner()\n"
               "  coroutine.yield(1)\n"
               "  error('boom after the yield')\n" /* line 4 */
               "end\n"
               "return { on_connect = function(s)\n"
               "  sluice.sleep(0)\n"
               "  local co = coroutine.wrap(inner)\n"
               "  co()\n"
               "  co()\n" /* line 10 */
               "  return sluice.accept()\n"
               "end }\n",
               "5", 0);
    ctx = ctx_for(&w, &o, NULL);
    capture_start();
    CHECK_EQ_INT(start_connect(&w, &ctx, &out, &run), HOOK_PENDING);
    CHECK(drive_until(w.loop, &o.done_calls, 1));
    log = capture_end();
    CHECK(is_tempfail_451(&o.v));
    CHECK(strstr(log, "\"event\":\"policy.error\"") != NULL);
    /* coroutine.wrap raises again where co() was called (line 10), the inner position
     * (line 4) kept in the message. */
    CHECK(strstr(log, "\"line\":10,") != NULL);
    CHECK(strstr(log, "x.lua:4: boom after the yield") != NULL);
    world_cleanup(&w);
}

static void
sleeping_inside_a_nested_coroutine_is_an_error_naming_its_line(void)
{
    struct world     w;
    struct owner     o = { 0 };
    struct hook_ctx  ctx;
    struct hook_run *run = NULL;
    struct verdict   out;
    const char      *log;

    world_init(&w,
               "local sluice = require('sluice')\n"
               "return { on_connect = function(s)\n"
               "  sluice.sleep(0)\n"
               "  local co = coroutine.wrap(function()\n"
               "    sluice.sleep(0)\n" /* line 5: the engine cannot resume this one */
               "  end)\n"
               "  co()\n" /* line 7 */
               "  return sluice.accept()\n"
               "end }\n",
               "5", 0);
    ctx = ctx_for(&w, &o, NULL);
    capture_start();
    CHECK_EQ_INT(start_connect(&w, &ctx, &out, &run), HOOK_PENDING);
    CHECK(drive_until(w.loop, &o.done_calls, 1));
    log = capture_end();
    CHECK(is_tempfail_451(&o.v));
    CHECK(strstr(log, "\"line\":7,") != NULL);
    CHECK(strstr(log, "x.lua:5: sluice.sleep: cannot yield from a coroutine of the policy's "
                      "own") != NULL);
    world_cleanup(&w);
}

/* on_disconnect may wait like every hook (the session outlives its connection for it):
 * the run is pending, then ends through done with no verdict and no error. */
static void
on_disconnect_may_wait_and_ends_through_done(void)
{
    struct world     w;
    struct owner     o = { .v.kind = VERDICT_REJECT };
    struct hook_ctx  ctx;
    struct hook_run *run = NULL;
    const char      *log;
    lua_State       *L;

    world_init(&w,
               "local sluice = require('sluice')\n"
               "return { on_disconnect = function(s, reason)\n"
               "  sluice.sleep(0.01)\n"
               "  sluice.log('err', 'test.bye', { reason = reason })\n"
               "end }\n",
               "5", 0);
    ctx = ctx_for(&w, &o, NULL);
    L = policy_vm_state(w.vm);
    lua_newtable(L);
    lua_pushstring(L, "client quit");
    capture_start();
    CHECK_EQ_INT(hook_run_notify(&ctx, w.vm, POLICY_ON_DISCONNECT, 2, &run), HOOK_PENDING);
    CHECK(run != NULL);
    CHECK(drive_until(w.loop, &o.done_calls, 1));
    log = capture_end();
    CHECK(o.v.kind == VERDICT_NONE);
    CHECK(strstr(log, "\"event\":\"test.bye\"") != NULL);
    CHECK(strstr(log, "\"reason\":\"client quit\"") != NULL);
    CHECK(strstr(log, "policy.error") == NULL);
    world_cleanup(&w);
}

int
main(void)
{
    log_set_level(LOG_ERR); /* policy.error is under test */
    dir = test_tmpdir("hook_run");
    RUN(a_hook_cancelled_while_it_sleeps_never_completes);
    RUN(a_password_check_done_after_its_owner_went_resumes_nothing);
    RUN(a_hook_waiting_past_its_budget_gets_451_and_policy_error);
    RUN(a_hook_running_past_its_budget_gets_451_and_policy_error);
    RUN(an_error_in_a_nested_coroutine_after_a_wait_names_its_line);
    RUN(sleeping_inside_a_nested_coroutine_is_an_error_naming_its_line);
    RUN(on_disconnect_may_wait_and_ends_through_done);
    return check_summary();
}
