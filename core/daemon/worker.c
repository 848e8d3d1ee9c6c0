/* core/daemon/worker.c: one thread, one loop; see worker.h. Drain on request: stop accepting,
 * tell idle sessions 421, let transactions finish within timeout_drain, then leave.
 * Reload on request: take the pending worker generation for new sessions; free an old
 * one once its last session has gone. */
#include "daemon/worker.h"

#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/control_ops.h"
#include "daemon/generation.h"
#include "util/counter.h"
#include "net/listener.h"
#include "util/log.h"
#include "util/offload.h"
#include "policy/policy_vm.h"
#include "smtp/smtp_session.h"
#include "relay/upstream_pool.h"
#include "store/zone.h"
#include "daemon/worker_gen.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

/* The counters the metrics read start on a line of their own: no other worker's writes
 * share it (aligned_alloc wants a multiple of the alignment). */
#define WORKER_CACHE_LINE 64
#define WORKER_DOMAINS_SIZE (CONTROL_MAX_DOMAINS * 2 * sizeof(uint64_t)) /* lines already */
#define WORKER_UPSTREAMS_SIZE                                                              \
    ((CONTROL_MAX_UPSTREAMS * sizeof(struct upstream_pool_counters) + WORKER_CACHE_LINE - 1) / \
     WORKER_CACHE_LINE * WORKER_CACHE_LINE)

static void
worker_seed(struct worker *w)
{
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);

    if (fd < 0 || read(fd, &w->sid_state, sizeof(w->sid_state)) != sizeof(w->sid_state))
        w->sid_state = (uint64_t)getpid() * 0x9e3779b97f4a7c15ull + (uint64_t)w->index;
    if (fd >= 0)
        close(fd);
    if (w->sid_state == 0)
        w->sid_state = 1;
}

static uint64_t
worker_next_sid(struct worker *w)
{
    uint64_t x = w->sid_state; /* xorshift64*: unique enough to grep, not a secret */

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    w->sid_state = x;
    return x * 0x2545f4914f6cdd1dull;
}

static void worker_wake_cb(struct ev_loop *loop, ev_async *w, int revents);
static void worker_drain_timeout_cb(struct ev_loop *loop, ev_timer *t, int revents);
static void worker_reap_cb(struct ev_loop *loop, ev_idle *i, int revents);

static void worker_maybe_done(struct worker *w);

/* The generation as a pin's owner (smtp/ and policy/ hold it opaque). */
static void
worker_gen_pin_ref(void *gen)
{
    generation_ref(gen);
}

static void
worker_gen_pin_unref(void *gen)
{
    generation_unref(gen);
}

/* server->session_add: a session begins on the current generation, which it pins until
 * it is gone (pin->handle is that worker_gen). */
static uint64_t
worker_server_session_add(void *owner, struct smtp_session *s, struct smtp_server_pin *pin)
{
    struct worker     *w = owner;
    struct worker_gen *wg = w->gen;
    struct generation *g = wg->gen;

    s->next = w->sessions;
    s->prev = NULL;
    if (w->sessions != NULL)
        w->sessions->prev = s;
    w->sessions = s;
    w->n_sessions++;
    wg->sessions++;
    atomic_fetch_add_explicit(&w->stats.sessions, 1, memory_order_relaxed);
    WORKER_COUNT(w, sessions_total);
    counter_inc(&w->stats.states[s->state]); /* NEW: smtp_session_enter() moves it on */
    worker_trim_count(&w->trim, w->n_sessions);
    *pin = (struct smtp_server_pin){
        .cfg = wg->cfg,
        .tls = g->parts.tls,
        .pool = wg->pool,
        .vm = wg->vm,
        .gen = {g, worker_gen_pin_ref, worker_gen_pin_unref},
        .gen_id = g->id,
        .authdb = g->parts.authdb,
        .handle = wg,
        .domain_slots = wg->domain_slots,
    };
    return worker_next_sid(w);
}

/* server->session_gone: unlink s, unpin its generation (reaped when it was the last
 * session of a retired one). */
static void
worker_server_session_gone(void *owner, struct smtp_session *s)
{
    struct worker     *w = owner;
    struct worker_gen *wg = s->pin.handle;

    if (s->prev != NULL)
        s->prev->next = s->next;
    else if (w->sessions == s)
        w->sessions = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    w->n_sessions--;
    atomic_fetch_sub_explicit(&w->stats.sessions, 1, memory_order_relaxed);
    counter_dec(&w->stats.states[s->state]);
    if (--wg->sessions == 0 && wg != w->gen)
        ev_idle_start(w->loop, &w->reap);
    worker_trim_count(&w->trim, w->n_sessions);
    worker_maybe_done(w);
}

/* The worker's trim function (worker_trim.h): give back what ended sessions left. Their
 * Lua tables first (a full collection of each Lua state this worker runs, so that
 * LuaJIT's allocator can unmap them), then glibc's free heap: malloc_trim(0) returns the
 * free pages of every arena, not only its top (docs/benchmarks.md "Memory per idle
 * connection"). */
static void
worker_give_back(void *arg, size_t peak, size_t sessions)
{
    struct worker *w = arg;
    struct logline l;
    double         t0 = ev_time();
    long           before = worker_trim_rss_kib();

    policy_vm_collect(w->gen->vm);
    for (struct worker_gen *wg = w->old; wg != NULL; wg = wg->next)
        policy_vm_collect(wg->vm);
    malloc_trim(0);
    log_begin(&l, LOG_INFO, "memory.trim", 0);
    log_int(&l, "worker", w->index);
    log_int(&l, "sessions_peak", (long long)peak);
    log_int(&l, "sessions", (long long)sessions);
    log_int(&l, "rss_kib_before", before);
    log_int(&l, "rss_kib_after", worker_trim_rss_kib());
    log_dbl(&l, "ms", (ev_time() - t0) * 1000.);
    log_end(&l);
}

/* What the worker's sessions borrow: smtp/ includes nothing of daemon/. The daemon's
 * shared parts are set before any worker thread starts (struct daemon), not always before
 * worker_new(): worker_start() fills this again. */
static void
worker_server_init(struct worker *w)
{
    struct daemon *d = w->daemon;

    w->server = (struct smtp_server){
        .loop = w->loop,
        .iplimit = d->iplimit,
        .inflight = d->inflight,
        .zones = d->zones,
        .offload = d->offload,
        .offload_ret = w->offload_ret,
        .messages_relayed = &w->stats.messages_relayed,
        .messages_failed = &w->stats.messages_failed,
        .auth = w->stats.auth,
        .domain_messages = w->stats.domain_messages,
        .states = w->stats.states,
        .refused = w->stats.refused,
        .hook_stats = &w->stats.hooks,
        .owner = w,
        .session_add = worker_server_session_add,
        .session_gone = worker_server_session_gone,
    };
}

struct worker *
worker_new(int index, struct daemon *d, const int *fds, const size_t *lindex, size_t n,
           char *err, size_t errlen)
{
    struct worker *w = calloc(1, sizeof(*w));

    if (w == NULL)
        return NULL;
    w->index = index;
    w->daemon = d;
    pthread_mutex_init(&w->pending_mu, NULL);
    w->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
    w->listeners = calloc(n ? n : 1, sizeof(*w->listeners));
    if (w->loop == NULL || w->listeners == NULL) {
        snprintf(err, errlen, "worker %d: out of memory", index);
        goto fail;
    }
    w->n_listeners = n;
    for (size_t i = 0; i < n; i++)
        listener_init(&w->listeners[i], fds[i], lindex[i]);
    w->offload_ret = offload_return_new(w->loop);
    if (w->offload_ret == NULL) {
        snprintf(err, errlen, "worker %d: out of memory", index);
        goto fail;
    }
    w->stats.upstreams = aligned_alloc(WORKER_CACHE_LINE, WORKER_UPSTREAMS_SIZE);
    w->stats.domain_messages = aligned_alloc(WORKER_CACHE_LINE, WORKER_DOMAINS_SIZE);
    if (w->stats.upstreams == NULL || w->stats.domain_messages == NULL) {
        snprintf(err, errlen, "worker %d: out of memory", index);
        goto fail;
    }
    memset(w->stats.upstreams, 0, WORKER_UPSTREAMS_SIZE);
    memset(w->stats.domain_messages, 0, WORKER_DOMAINS_SIZE);
    w->zlink = zone_link_new(d->zones, w->loop); /* NULL: no zone is remote */
    w->gen = worker_gen_new(d->gen, w->loop, d->zones, w->zlink, d->audit,
                            &(struct worker_gen_counts){&d->upstream_labels, w->stats.upstreams,
                                                        &d->domain_labels},
                            err, errlen);
    if (w->gen == NULL)
        goto fail;
    worker_seed(w);
    worker_server_init(w);
    ev_async_init(&w->wake, worker_wake_cb);
    ev_async_start(w->loop, &w->wake);
    ev_init(&w->drain_timer, worker_drain_timeout_cb);
    ev_idle_init(&w->reap, worker_reap_cb);
    worker_trim_init(&w->trim, w->loop, worker_give_back, w);
    return w;
fail:
    worker_free(w);
    return NULL;
}

static void
worker_maybe_done(struct worker *w)
{
    if (w->draining && w->sessions == NULL) {
        upstream_pool_drain(w->gen->pool);
        for (struct worker_gen *wg = w->old; wg != NULL; wg = wg->next)
            upstream_pool_drain(wg->pool);
        ev_timer_stop(w->loop, &w->drain_timer);
        worker_trim_stop(&w->trim); /* the process is about to end: nothing to give back */
        ev_async_stop(w->loop, &w->wake);
        zone_link_close(w->zlink); /* its socket and timer must not keep the loop alive */
    }
}

/* Free the old generations nobody uses any more. An idle watcher, not the session's
 * own free: that may run deep inside the generation's pool or Lua state. */
static void
worker_reap_cb(struct ev_loop *loop, ev_idle *i, int revents)
{
    struct worker      *w = container_of(i, struct worker, reap);
    struct worker_gen **p = &w->old;

    (void)revents;
    ev_idle_stop(loop, i);
    while (*p != NULL) {
        struct worker_gen *wg = *p;

        if (wg->sessions > 0) {
            p = &wg->next;
            continue;
        }
        *p = wg->next;
        log_msg(LOG_INFO, "reload.retired", 0, "worker %d: generation %u finished", w->index,
                wg->gen->id);
        worker_gen_free(wg);
        atomic_fetch_sub_explicit(&w->stats.old_generations, 1, memory_order_relaxed);
    }
}

/* The pending generation becomes current; the current one is kept while sessions
 * still use it. */
static void
worker_adopt_pending(struct worker *w)
{
    struct worker_gen *wg;

    pthread_mutex_lock(&w->pending_mu);
    wg = w->pending;
    w->pending = NULL;
    pthread_mutex_unlock(&w->pending_mu);
    if (wg == NULL)
        return;
    w->gen->next = w->old;
    w->old = w->gen;
    w->gen = wg;
    upstream_pool_set_offload(wg->pool, w->server.offload, w->offload_ret);
    atomic_fetch_add_explicit(&w->stats.old_generations, 1, memory_order_relaxed);
    ev_idle_start(w->loop, &w->reap);
}

void
worker_set_gen(struct worker *w, struct worker_gen *wg)
{
    struct worker_gen *unused;

    pthread_mutex_lock(&w->pending_mu);
    unused = w->pending; /* a reload the worker has not taken yet: never used */
    w->pending = wg;
    pthread_mutex_unlock(&w->pending_mu);
    worker_gen_free(unused);
    ev_async_send(w->loop, &w->wake);
}

static void
worker_drain_timeout_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct worker *w = container_of(t, struct worker, drain_timer);

    (void)loop;
    (void)revents;
    log_msg(LOG_WARNING, "worker.drain_timeout", 0, "worker %d: %zu sessions cut off",
            w->index, w->n_sessions);
    while (w->sessions != NULL)
        smtp_session_cut(w->sessions);
}

/* A connection accepted on one of w's listeners becomes a session of w's. */
static void
worker_accept_cb(void *owner, size_t index, int fd)
{
    struct worker *w = owner;

    smtp_session_new(&w->server, &w->gen->cfg->listeners[index], fd);
}

static void
worker_listeners_stop(struct worker *w)
{
    for (size_t i = 0; i < w->n_listeners; i++)
        listener_stop(&w->listeners[i]);
}

static void
worker_start_drain(struct worker *w)
{
    struct smtp_session *s, *next;

    if (w->draining)
        return;
    w->draining = true;
    w->server.draining = true;
    worker_listeners_stop(w);
    ev_timer_set(&w->drain_timer, w->gen->cfg->timeout_drain, 0.);
    ev_timer_start(w->loop, &w->drain_timer);
    for (s = w->sessions; s != NULL; s = next) {
        next = s->next;
        smtp_session_drain(s);
    }
    worker_maybe_done(w);
}

static void
worker_wake_cb(struct ev_loop *loop, ev_async *a, int revents)
{
    struct worker *w = container_of(a, struct worker, wake);

    (void)loop;
    (void)revents;
    worker_adopt_pending(w);
    if (w->drain_requested)
        worker_start_drain(w);
}

static void *
worker_main(void *arg)
{
    struct worker *w = arg;

    for (size_t i = 0; i < w->n_listeners; i++)
        listener_start(&w->listeners[i], w->loop, worker_accept_cb, w);
    ev_run(w->loop, 0);
    return NULL;
}

int
worker_start(struct worker *w)
{
    worker_server_init(w); /* the daemon's shared parts may be set after worker_new() */
    upstream_pool_set_offload(w->gen->pool, w->server.offload, w->offload_ret);
    return pthread_create(&w->thread, NULL, worker_main, w) == 0 ? 0 : -1;
}

void
worker_drain(struct worker *w)
{
    w->drain_requested = 1;
    ev_async_send(w->loop, &w->wake);
}

void
worker_join(struct worker *w)
{
    pthread_join(w->thread, NULL);
}

void
worker_free(struct worker *w)
{
    if (w == NULL)
        return;
    while (w->sessions != NULL) /* the loop is over: a waiting on_disconnect never ends */
        smtp_session_free_now(w->sessions, "shutdown");
    if (w->loop != NULL) {
        worker_listeners_stop(w);
        ev_idle_stop(w->loop, &w->reap);
        worker_trim_stop(&w->trim);
    }
    while (w->old != NULL) {
        struct worker_gen *next = w->old->next;

        worker_gen_free(w->old);
        w->old = next;
    }
    worker_gen_free(w->gen);
    worker_gen_free(w->pending);
    zone_link_free(w->zlink);
    offload_return_free(w->offload_ret);
    if (w->loop != NULL)
        ev_loop_destroy(w->loop);
    pthread_mutex_destroy(&w->pending_mu);
    free(w->stats.upstreams);
    free(w->stats.domain_messages);
    free(w->listeners);
    free(w);
}
