/* core/smtp/smtp_server.h: what a session borrows from the thread that runs it: the event
 * loop, the limits shared by all threads, the drain flag, the counters of `sluice ctl
 * status`, and two calls for a session's start and end. core/daemon/worker.c fills one per
 * worker and owns it; every session on that worker borrows it (it outlives them). This is
 * how core/smtp reaches its worker without including core/daemon: the worker registers
 * itself here from above (STYLE.md: a callback registered from above replaces an include
 * that would point up). */
#ifndef SLUICE_SMTP_SERVER_H
#define SLUICE_SMTP_SERVER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "proto/sasl.h"
#include "util/counter.h"
#include "util/pin.h"

struct authdb;
struct config;
struct ev_loop;
struct hook_stats;
struct inflight;
struct iplimit;
struct offload;
struct offload_return;
struct policy_vm;
struct smtp_session;
struct tls_server;
struct upstream_pool;
struct zones;

/* The parts of the generation a session pinned at its start that the session itself uses;
 * all borrowed, alive until the session is gone (the worker keeps that generation). */
struct smtp_server_pin {
    const struct config  *cfg;
    struct tls_server    *tls;    /* the listeners' certificates */
    struct upstream_pool *pool;   /* where messages are relayed */
    struct policy_vm     *vm;     /* the policies' Lua state; NULL: no policies */
    struct pin            gen;    /* the generation itself, opaque: a hook's offloaded
                                   * work pins it (policy/hook_ctx.h) */
    unsigned              gen_id; /* its id (auth cache keys) */
    const struct authdb  *authdb; /* its user files */
    void                 *handle; /* the worker's own handle of it; never read here */
    /* The slot in smtp_server.domain_messages of each of cfg->domains (same index) */
    const uint16_t       *domain_slots;
};

struct smtp_server {
    struct ev_loop  *loop;     /* borrows: the worker's; sessions run on it only */
    struct iplimit  *iplimit;  /* borrows; shared by all workers, internally locked */
    struct inflight *inflight; /* borrows; memory for messages, internally locked */
    struct zones    *zones;    /* borrows; sluice.zone (the auth cache), internally locked */
    struct offload  *offload;  /* borrows; the daemon's thread pool, NULL: none */
    struct offload_return *offload_ret; /* borrows: where offloaded work completes */
    bool             draining; /* set once by the worker: idle sessions end with 421 */
    /* Counters read by another thread: relaxed atomics, owned by the worker. */
    _Atomic uint64_t *messages_relayed;
    _Atomic uint64_t *messages_failed;
    _Atomic uint64_t (*auth)[2]; /* [enum sasl_mech][0: 235, 1: refused] */
    /* [slot][0: relayed, 1: failed]: slot 0 "other", the others a declared domain's
     * (smtp_server_pin.domain_slots); NULL: not counted */
    _Atomic uint64_t (*domain_messages)[2];
    /* Gauges, by enum smtp_state: sessions in each state now. The worker counts a new
     * session in SMTP_STATE_NEW and takes a gone one out of its last state; every change
     * between is smtp_session_enter()'s (smtp_server_count_state). NULL: not counted. */
    _Atomic uint64_t *states;
    /* Connections refused at accept: [0] limits.max_connections, [1] .._per_ip */
    _Atomic uint64_t *refused;
    struct hook_stats *hook_stats; /* the policies' durations; NULL: not counted */
    void            *owner;    /* borrows: the worker, for the two calls */
    /* A session begins: returns its id, links it, pins the current generation and fills
     * *pin. Neither frees nor yields. */
    uint64_t (*session_add)(void *owner, struct smtp_session *s, struct smtp_server_pin *pin);
    /* The session is going (smtp_session_free): unlink it, unpin its generation. */
    void (*session_gone)(void *owner, struct smtp_session *s);
};

#define SMTP_SERVER_AUTH_MECHS (SASL_MECH_OAUTHBEARER + 1) /* rows of auth */

static inline void
smtp_server_count(_Atomic uint64_t *counter)
{
    atomic_fetch_add_explicit(counter, 1, memory_order_relaxed);
}

/* A session moves from one state to another (the worker's thread only: util/counter.h). */
static inline void
smtp_server_count_state(struct smtp_server *srv, unsigned from, unsigned to)
{
    if (srv->states != NULL) {
        counter_dec(&srv->states[from]);
        counter_inc(&srv->states[to]);
    }
}

/* An AUTH exchange ended: with 235 (ok) or refused, by its mechanism. */
static inline void
smtp_server_count_auth(struct smtp_server *srv, enum sasl_mech mech, bool ok)
{
    if ((unsigned)mech < SMTP_SERVER_AUTH_MECHS)
        smtp_server_count(&srv->auth[mech][ok ? 0 : 1]);
}

#endif
