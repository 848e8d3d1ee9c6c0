/* core/relay/upstream_pool.h: relay one message to an upstream set through this worker's pool
 * of persistent upstream SMTP connections.
 *
 * One pool per worker thread (no locks); connections are keyed by everything that
 * identifies them (host, port, TLS mode, TLS name, AUTH credentials) so one domain's
 * credentials are never reused for another. A pooled connection is reused with RSET,
 * checked before reuse, capped per key, closed when idle or after max_reuse messages.
 *
 * Transaction (per job): lease a connection (or open one: connect, greeting, EHLO,
 * STARTTLS + EHLO, AUTH), send MAIL + every RCPT pipelined when the upstream offers
 * PIPELINING (preceded by RSET on a reused connection), and if and only if every
 * recipient was accepted, send the message (BDAT LAST when the upstream offers CHUNKING,
 * else DATA with dot-stuffing) and wait for the final reply. If any recipient is
 * refused, the upstream transaction is abandoned with RSET and the job fails with that
 * recipient's reply: nothing is delivered to anyone (docs/relay.md explains why).
 * Failover: a server that cannot be connected, refuses the greeting, fails TLS or AUTH,
 * or times out before MAIL is accepted is skipped for the next one in the set. A pooled
 * connection found dead before anything of the transaction was answered is retried once
 * on a fresh connection. */
#ifndef SLUICE_UPSTREAM_POOL_H
#define SLUICE_UPSTREAM_POOL_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "relay/upstream.h"

struct upstream_pool;
struct upstream_job;

enum relay_status {
    RELAY_OK,          /* the upstream accepted the message: the client may get 250 */
    RELAY_REJECTED,    /* a 5xx from the upstream: the client gets it as is */
    RELAY_TEMPFAIL,    /* a 4xx from the upstream: the client gets it as is */
    RELAY_UNAVAILABLE, /* no upstream answered, timed out or dropped: 451 4.4.x */
};

struct relay_result {
    enum relay_status status;
    int               code;          /* the reply for the client: 250, 5xx, 4xx */
    char              enhanced[16];  /* "2.0.0", "5.1.1", "4.4.1" */
    char              text[512];     /* reply text (upstream's, sanitised), no CR/LF */
    char              upstream[300]; /* "host:port" that answered, "" if none did */
    char              queue_id[64];  /* best effort from the upstream's 250 text, or "" */
    int               failed_rcpt;   /* index of the refused recipient, or -1 */
    bool              reused;        /* the connection had carried a message before */
};

typedef void (*relay_done_fn)(void *ctx, const struct relay_result *res);

/* A pool for one worker's loop. cfg is borrowed and must outlive the pool.
 * Returns NULL and a reason in err (e.g. a CA file that does not load). */
struct upstream_pool *upstream_pool_new(struct ev_loop *loop, const struct config *cfg,
                                        char *err, size_t errlen);

/* Close every connection (QUIT to idle ones, best effort, no waiting) and free.
 * Jobs still running get their callback with RELAY_UNAVAILABLE first. NULL ok. */
void upstream_pool_free(struct upstream_pool *pool);

/* Relay msg (msg_len octets, unstuffed, CRLF line ends, including any header the
 * caller prepended) for env through upstream set `set` (index into cfg->upstreams).
 * env, its strings and msg are borrowed until done() runs or the job is cancelled.
 * done() is always called later from the loop, never before this returns.
 * Returns NULL only on allocation failure. sid is for log lines. */
struct upstream_job *upstream_pool_relay(struct upstream_pool *pool, int set, uint64_t sid,
                                         const struct relay_envelope *env, const char *msg,
                                         size_t msg_len, relay_done_fn done, void *ctx);

/* The client went away: done() will not be called. A connection in the middle of the
 * transaction is closed (never returned to the pool), so an unfinished message is never
 * completed upstream. */
void upstream_job_cancel(struct upstream_job *job);

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

#endif
