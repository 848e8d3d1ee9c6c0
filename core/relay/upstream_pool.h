/* core/relay/upstream_pool.h: this worker's pool of persistent upstream SMTP connections:
 * lease one for a transaction, get it back after, keep it idle for the next.
 *
 * One pool per worker thread (no locks); connections are keyed by everything that
 * identifies them (host, port, TLS mode, TLS name, AUTH credentials) so one domain's
 * credentials are never reused for another. A pooled connection is reused with RSET,
 * checked before reuse, capped per key (pool_max_per_worker), closed when idle or after
 * max_reuse messages; a lease that finds every connection of its key busy waits in a
 * FIFO for up to timeout_upstream.
 *
 * What the pool leases connections for, a relay job with its failover and its result,
 * is core/relay/relay_job.h: the pool knows a job only as a struct upstream_lease and
 * tells it what happens through struct upstream_lease_ops. */
#ifndef SLUICE_UPSTREAM_POOL_H
#define SLUICE_UPSTREAM_POOL_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "relay/upstream.h"

struct upstream_pool;
struct upstream_lease;
struct pool_conn;
struct pool_key;

/* One upstream's counters in one worker (sluice_upstream_* in docs/metrics.md, `upstreams`
 * of `sluice ctl status`). The worker owns them, one per configured host:port, and its
 * pools (the current generation's and older ones still finishing) are their one writer
 * (util/counter.h: relaxed atomics, plain adds); the metrics and control threads sum the
 * workers' on reading. Every key of the host:port adds into the same one. */
struct upstream_pool_counters {
    _Atomic uint64_t open;             /* gauge: connections open (setting up, busy, idle) */
    _Atomic uint64_t idle;             /* gauge: of which idle in the pool */
    _Atomic uint64_t waits;            /* leases that found every slot busy and queued */
    _Atomic uint64_t wait_timeouts;    /* ... and gave up after timeout_upstream */
    _Atomic uint64_t connect_failures; /* set-ups that failed: connect, TLS, greeting, EHLO,
                                        * AUTH */
    _Atomic uint64_t errors;           /* connections that broke carrying a transaction:
                                        * timeout, reset, out of sync */
};

/* A pool for one worker's loop. cfg is borrowed and must outlive the pool. counters, if
 * not NULL, has one pointer per server of cfg (set by set, server by server in order),
 * each to the counters of that server's host:port, borrowed (they outlive the pool);
 * NULL: the pool counts into counters of its own. Returns NULL and a reason in err (e.g.
 * a CA file that does not load). */
struct upstream_pool *upstream_pool_new(struct ev_loop *loop, const struct config *cfg,
                                        struct upstream_pool_counters *const *counters,
                                        char *err, size_t errlen);

/* Close every connection (QUIT to idle ones, best effort, no waiting) and free.
 * Every lease still attached gets ops->abort() first. NULL ok. */
void upstream_pool_free(struct upstream_pool *pool);

/* Counters for logs and status: connections open, idle, messages relayed. */
struct upstream_pool_stats {
    size_t open;
    size_t idle;
    size_t busy;
    size_t waiting_jobs;
    unsigned long long relayed;
    unsigned long long connects;
};
void upstream_pool_stats(const struct upstream_pool *pool, struct upstream_pool_stats *st);

/* Stop reusing: idle connections get QUIT now, busy ones are closed after their job. */
void upstream_pool_drain(struct upstream_pool *pool);

/* ---- leases: what core/relay/relay_job.c builds on ---- */

/* What a lease's transaction came to, as its holder judged it (ops->ended). */
enum upstream_lease_next {
    UPSTREAM_LEASE_FINISH,   /* the holder has its result */
    UPSTREAM_LEASE_RETRY,    /* same target, a new connection: the pooled one was dead */
    UPSTREAM_LEASE_FAILOVER, /* the next target */
};

/* How the pool tells a lease's holder what happens: from the connection's callbacks and
 * the wait timer, and, for leases waiting on a key, from whatever call frees a slot of
 * that key (upstream_pool_detach() of another lease included). */
struct upstream_lease_ops {
    /* A connection is the lease's: start the transaction on u (upstream_transact). */
    void (*start)(struct upstream_lease *l, struct upstream *u);
    /* The transaction on u ended (UPSTREAM_EV_DONE) or u's set-up failed
     * (UPSTREAM_EV_CLOSED): judge it while u is there. What it returns goes to resume()
     * once the connection is back in the pool or closed (only FINISH if it is back;
     * after a failed set-up, RETRY on the same target or else FAILOVER). */
    enum upstream_lease_next (*ended)(struct upstream_lease *l, struct upstream *u,
                                      enum upstream_event ev);
    void (*resume)(struct upstream_lease *l, enum upstream_lease_next next);
    /* No connection: every one of the key stayed busy for timeout_upstream (timed_out),
     * or there was no memory for one. The lease holds nothing now. */
    void (*fail)(struct upstream_lease *l, bool timed_out);
    /* The pool is being freed: the lease is detached already; the holder finishes. */
    void (*abort)(struct upstream_lease *l);
};

enum upstream_lease_state {
    UPSTREAM_LEASE_NONE,       /* holds nothing */
    UPSTREAM_LEASE_WAITING,    /* in a key's FIFO for a slot */
    UPSTREAM_LEASE_CONNECTING, /* a new connection is being set up for it */
    UPSTREAM_LEASE_RUNNING,    /* its connection carries its transaction */
};

/* Embedded in its holder (a relay job); the holder writes set, target and fresh, the
 * pool the rest. */
struct upstream_lease {
    const struct upstream_lease_ops *ops;
    struct upstream_pool            *pool;       /* borrows */
    uint64_t                         sid;        /* for log lines */
    int                              set;        /* index into cfg->upstreams */
    size_t                           target;     /* index into that set's targets */
    bool                             fresh;      /* prefer a new connection (a retry) */
    enum upstream_lease_state        state;
    struct pool_conn                *pc;         /* borrows; CONNECTING and RUNNING */
    struct pool_key                 *waiting_on; /* WAITING */
    struct upstream_lease           *wait_next;
    struct upstream_lease           *prev, *next; /* pool->leases */
    ev_timer                         wait;       /* WAITING: how long it may wait */
};

/* Attach l (state NONE) to pool: until upstream_pool_detach(), upstream_pool_free()
 * calls ops->abort(l). */
void upstream_pool_attach(struct upstream_pool *pool, struct upstream_lease *l,
                          const struct upstream_lease_ops *ops, uint64_t sid);

/* Run l (state NONE) on target l->target of set l->set: an idle connection of its key
 * (ops->start is called before this returns), a new one (CONNECTING: ops->start or
 * ops->ended follows from the loop), or the key's FIFO (WAITING). -1 when out of memory:
 * the lease holds nothing. */
int upstream_pool_lease(struct upstream_lease *l);

/* Detach l: leave the FIFO; a connection being set up for it goes on and joins the pool;
 * one carrying its transaction is closed (never returned), so an unfinished message is
 * never completed upstream. */
void upstream_pool_detach(struct upstream_lease *l);

/* The set is configured (set indexes cfg->upstreams). */
bool upstream_pool_has_set(const struct upstream_pool *pool, int set);
/* Targets of a configured set: every resolved address of every server, in order. */
size_t upstream_pool_targets(const struct upstream_pool *pool, int set);
/* Setting a connection up on that target failed within the last few seconds. */
bool upstream_pool_target_is_down(const struct upstream_pool *pool, int set, size_t t);

struct ev_loop *upstream_pool_loop(const struct upstream_pool *pool);
/* The server behind target t of a configured set (borrowed from the configuration). */
const struct config_upstream_server *upstream_pool_target_server(const struct upstream_pool *pool,
                                                                 int set, size_t t);

/* The pool's XOAUTH2 bearer tokens (relay/upstream_token.h; borrowed, freed with the
 * pool). Connections of mechanism 'xoauth2' take theirs from it when they open. */
struct upstream_tokens *upstream_pool_tokens(const struct upstream_pool *pool);
/* Where the token endpoints' host names are resolved (worker's offload pool and return
 * queue; borrowed, they outlive the pool). Unset: numeric hosts only. */
struct offload;
struct offload_return;
void upstream_pool_set_offload(struct upstream_pool *pool, struct offload *offload,
                               struct offload_return *ret);
/* Count a message the upstream accepted, for upstream_pool_stats(). */
void upstream_pool_count_relayed(struct upstream_pool *pool);

#endif
