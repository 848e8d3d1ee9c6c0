/* core/daemon/worker.h: one thread: a libev loop, its listening sockets (SO_REUSEPORT, one per
 * worker per address), its sessions, its offload return queue, and its worker
 * generations (policies and upstream pool, worker_gen.h): the current one that new
 * sessions pin, and older ones still finishing sessions after a reload.
 * Nothing here is shared with other workers except through struct daemon, whose
 * mutable parts say how they are synchronised. */
#ifndef SLUICE_WORKER_H
#define SLUICE_WORKER_H

#include <ev.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "daemon/control_ops.h"
#include "policy/hook_stats.h"
#include "daemon/stats_labels.h"
#include "daemon/worker_trim.h"
#include "smtp/smtp_server.h"

struct audit;
struct generation;
struct offload;
struct offload_return;
struct smtp_session;
struct inflight;
struct iplimit;
struct zones;
struct worker_gen;
struct zone_link;
struct listener;
struct upstream_pool_counters;

/* What all workers share. The pointers are set before any thread starts; a worker reads
 * gen and audit only in worker_new() (it then reaches its generation through its own
 * worker_gen, handed over by worker_set_gen()), the other three for its whole life. */
struct daemon {
    struct generation *gen;     /* holds a ref: the current generation. Rewritten by
                                 * every reload, on the main or the control thread:
                                 * once those run, read and written under daemon_ctl.mu */
    struct offload    *offload; /* borrows; internally locked (offload.h) */
    struct iplimit    *iplimit; /* borrows; a mutex per shard, atomic totals and limits */
    struct inflight   *inflight; /* borrows; memory for messages, internally locked */
    struct zones      *zones;   /* borrows; sluice.zone, a mutex per shard of each zone */
    struct audit      *audit;   /* borrows; internally locked. NULL: none yet; a reload
                                 * may set it (under daemon_ctl.mu), never change it */
    int                exit_code;
    /* Label slots of the per-worker counter families (stats_labels.h: one writer at a
     * time, worker_gen_new() at start and in reloads; any thread reads) */
    struct stats_labels upstream_labels; /* host:port of every upstream ever configured */
    struct stats_labels domain_labels;   /* every declared domain ever configured */
};

/* Counters for `sluice ctl status` and the metrics listener: written by the worker
 * (relaxed atomics), read by the control and metrics threads. */
struct worker_stats {
    _Atomic size_t   sessions;       /* open now */
    _Atomic size_t   old_generations; /* older worker generations still in use */
    _Atomic uint64_t sessions_total;
    _Atomic uint64_t messages_relayed;
    _Atomic uint64_t messages_failed;
    _Atomic uint64_t auth[SMTP_SERVER_AUTH_MECHS][2]; /* [enum sasl_mech][0 ok, 1 failed] */
    _Atomic uint64_t states[CONTROL_MAX_STATES]; /* sessions by enum smtp_state, now */
    _Atomic uint64_t refused[2]; /* connections: max_connections, max_connections_per_ip */
    struct hook_stats hooks;     /* how long the policy hooks took */
    /* owns; CONTROL_MAX_UPSTREAMS, by slot of daemon.upstream_labels; written by this
     * worker's pools only (util/counter.h), on cache lines of their own */
    struct upstream_pool_counters *upstreams;
    /* owns; CONTROL_MAX_DOMAINS, by slot of daemon.domain_labels: [0] relayed, [1] failed */
    _Atomic uint64_t (*domain_messages)[2];
};

#define WORKER_COUNT(w, field) \
    atomic_fetch_add_explicit(&(w)->stats.field, 1, memory_order_relaxed)

struct worker {
    int                     index;
    struct daemon          *daemon;   /* borrows */
    struct ev_loop         *loop;     /* owns; run by this thread only: others only
                                       * ev_async_send() to it (wake, offload returns) */
    pthread_t               thread;
    struct listener        *listeners; /* owns; index: into every generation's
                                        * cfg->listeners (a reload that changes
                                        * listeners is refused) */
    size_t                  n_listeners;
    struct offload_return  *offload_ret; /* owns */
    struct zone_link       *zlink;    /* owns; its connection to Redis, NULL: no Redis zone */
    struct worker_gen      *gen;      /* owns; current: new sessions pin it */
    struct worker_gen      *old;      /* owns; older ones with sessions still on them */
    struct worker_gen      *pending;  /* owns; the next current one (guarded by pending_mu) */
    pthread_mutex_t         pending_mu;
    ev_idle                 reap;     /* frees old generations out of any callback */
    struct worker_stats     stats;
    struct smtp_session    *sessions; /* owns the list (linked through session->next) */
    size_t                  n_sessions;
    uint64_t                sid_state; /* session id generator (xorshift) */
    bool                    draining;
    struct smtp_server      server;   /* what its sessions borrow (smtp_server.h) */
    ev_async                wake;     /* another thread asks: drain, or take pending */
    ev_timer                drain_timer;
    _Atomic int             drain_requested;
    struct worker_trim      trim;     /* memory back to the system after a drop in sessions */
};

/* Create a worker on d->gen with the given pre-bound listening fds (the worker owns
 * them; lindex[i] is fds[i]'s index in cfg->listeners). Returns NULL and a reason in
 * err. */
struct worker *worker_new(int index, struct daemon *d, const int *fds, const size_t *lindex,
                          size_t n, char *err, size_t errlen);
int  worker_start(struct worker *w);  /* spawn the thread */
void worker_drain(struct worker *w);  /* thread-safe: stop accepting, finish, exit */
/* Thread-safe: new sessions of w use wg from now on (made by worker_gen_new() for w's
 * loop; w owns it). Sessions in flight keep theirs. */
void worker_set_gen(struct worker *w, struct worker_gen *wg);
void worker_join(struct worker *w);
void worker_free(struct worker *w);

#endif
