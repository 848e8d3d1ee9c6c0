/* core/relay/relay_job.h: relay one message to an upstream set, through this worker's pool
 * of upstream connections (upstream_pool.h).
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
 * on a fresh connection. Log line: upstream.relay, one per job. */
#ifndef SLUICE_RELAY_JOB_H
#define SLUICE_RELAY_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "relay/upstream.h"

struct upstream_pool;
struct relay_job;

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
    bool              dsn_dropped;   /* DSN parameters not sent: the upstream lacks DSN */
};

typedef void (*relay_done_fn)(void *ctx, const struct relay_result *res);

/* Relay msg (msg_len octets, unstuffed, CRLF line ends, including any header the
 * caller prepended) for env through upstream set `set` (index into cfg->upstreams).
 * env, its strings and msg are borrowed until done() runs or the job is cancelled.
 * done() is always called later from the loop, never before this returns; when the pool
 * is freed first, with RELAY_UNAVAILABLE. Returns NULL only on allocation failure. sid
 * is for log lines. */
struct relay_job *relay_job_start(struct upstream_pool *pool, int set, uint64_t sid,
                                  const struct relay_envelope *env, const char *msg,
                                  size_t msg_len, relay_done_fn done, void *ctx);

/* The client went away: done() will not be called. A connection in the middle of the
 * transaction is closed (never returned to the pool), so an unfinished message is never
 * completed upstream. */
void relay_job_cancel(struct relay_job *job);

#endif
