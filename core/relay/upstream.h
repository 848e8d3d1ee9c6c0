/* core/relay/upstream.h: the SMTP client for one upstream connection. Non-blocking connect,
 * greeting, EHLO (capabilities), STARTTLS or implicit TLS, AUTH PLAIN, LOGIN or XOAUTH2, then
 * transactions: [RSET] [XFORWARD] MAIL RCPT... (pipelined when offered; XCLIENT and
 * EHLO before them when the client changed, upstream_xclient.h), and only when every
 * recipient was accepted the message (BDAT LAST when CHUNKING is offered, else DATA
 * with dot-stuffing) and its final reply. A refused recipient abandons the transaction
 * with RSET.
 *
 * It decides nothing about pooling, failover, retries or what the client is told: it
 * reports outcomes: core/relay/upstream_pool.c decides about pooling, core/relay/relay_job.c
 * about failover and the reply. It never logs credentials or message content. Built on
 * struct conn (core/net/conn.h). */
#ifndef SLUICE_UPSTREAM_H
#define SLUICE_UPSTREAM_H

#include <ev.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config/config.h"
#include "net/conn.h"
#include "proto/dsn.h"
#include "relay/upstream_reply.h"
#include "relay/upstream_xclient.h"

struct upstream;

/* The envelope of one transaction, as the client gave it. */
struct relay_envelope {
    const char  *mail_from; /* borrows; mailbox without <>, "" for the null sender */
    const char **rcpts;     /* borrows; n_rcpts mailboxes without <> */
    size_t       n_rcpts;
    bool         smtputf8;  /* the client used SMTPUTF8: pass it on (or fail if not offered) */
    bool         body_8bit; /* BODY=8BITMIME */
    /* DSN (RFC 3461): sent on when the connection's EHLO offered DSN, else dropped */
    enum dsn_ret dsn_ret;   /* RET= */
    const char  *dsn_envid; /* borrows; ENVID's value as sent, or NULL */
    const struct dsn_rcpt *dsn_rcpts; /* borrows; n_rcpts entries, or NULL: none had
                                             * NOTIFY or ORCPT */
    struct relay_client client; /* who sent it: XCLIENT/XFORWARD, for a server with xclient */
};


enum upstream_event {
    UPSTREAM_EV_READY,  /* set up (greeting, EHLO, TLS, AUTH done): a transaction may start */
    UPSTREAM_EV_DONE,   /* the transaction ended; upstream_outcome() says how. The
                         * connection is reusable iff upstream_is_ready(); else the owner
                         * must free it */
    UPSTREAM_EV_CLOSED, /* unusable outside a transaction (setup failed; dropped, timed out
                         * or spoke while idle): the owner must free it */
};

/* Where a connection or transaction ended, in protocol order: everything before
 * UPSTREAM_STAGE_IDLE is setup, and a transaction that ended at or before
 * UPSTREAM_STAGE_MAIL had no MAIL accepted yet. */
enum upstream_stage {
    UPSTREAM_STAGE_CONNECT,
    UPSTREAM_STAGE_TLS,
    UPSTREAM_STAGE_GREETING,
    UPSTREAM_STAGE_EHLO,
    UPSTREAM_STAGE_STARTTLS,
    UPSTREAM_STAGE_AUTH,
    UPSTREAM_STAGE_IDLE,
    UPSTREAM_STAGE_RSET,
    UPSTREAM_STAGE_XCLIENT, /* XCLIENT and the EHLO after it, or XFORWARD */
    UPSTREAM_STAGE_MAIL,
    UPSTREAM_STAGE_RCPT,
    UPSTREAM_STAGE_DATA,
    UPSTREAM_STAGE_BODY, /* sending the message or waiting for its final reply */
};

struct upstream_outcome {
    enum upstream_stage stage;       /* where it ended */
    bool                ok;          /* the final reply accepted the message */
    bool                broken;      /* no verdict: the connection failed (error says how) */
    bool                timed_out;   /* broken by a timeout */
    bool                dropped;     /* broken by the connection: closed, reset, TLS failed */
    bool                xclient;     /* broken because the server refused XCLIENT or XFORWARD,
                                      * or offers neither under xclient = 'required' */
    int                 code;        /* the deciding reply, 0 if none came */
    char                enhanced[16];/* its RFC 3463 code ("5.1.1"), "" if it had none */
    char                text[UPSTREAM_TEXT_MAX]; /* its text, lines joined by a space,
                                                    enhanced codes stripped, printable ASCII */
    char                error[160];  /* when broken: "connection refused", "timeout", ... */
    int                 failed_rcpt; /* index of the first refused recipient, or -1 */
    unsigned            replies;     /* replies to this transaction's commands (a 421 does
                                        not count: it says the connection was dead) */
    bool                dsn_dropped; /* the envelope had DSN parameters and this connection's
                                        upstream does not offer DSN: they were not sent */
};

/* The owner's callback. It may free u (upstream_free) and then returns CONN_GONE;
 * u touches nothing afterwards. Never called before the call that caused it returns. */
typedef enum conn_rc (*upstream_event_fn)(void *owner, struct upstream *u,
                                          enum upstream_event ev);

/* Start connecting to addr (a resolved address of srv) and set the session up.
 * cfg (hostname for EHLO, timeouts), srv and ssl_ctx (NULL for cleartext) are borrowed
 * and must outlive u. UPSTREAM_EV_READY or UPSTREAM_EV_CLOSED follows from the loop.
 * Returns NULL only on allocation failure. sid is for log lines. */
struct upstream *upstream_new(struct ev_loop *loop, const struct config *cfg,
                              const struct config_upstream_server *srv, SSL_CTX *ssl_ctx,
                              const struct sockaddr *addr, socklen_t addrlen, uint64_t sid,
                              void *owner, upstream_event_fn on_event);

/* Close and free without calling back. An idle connection gets QUIT first (best
 * effort, no waiting); one in the middle of a transaction is just closed, so an
 * unfinished message is never completed upstream. NULL ok. */
void upstream_free(struct upstream *u);

/* Start a transaction (only when upstream_is_ready()). env, its strings and msg
 * (unstuffed, CRLF line ends) are borrowed until UPSTREAM_EV_DONE. RSET goes first
 * when the connection has carried a transaction before. */
void upstream_transact(struct upstream *u, uint64_t sid, const struct relay_envelope *env,
                       const char *msg, size_t msg_len);

/* Idle between transactions and in sync with the upstream. */
bool upstream_is_ready(const struct upstream *u);

/* The last transaction's or the failed setup's outcome. Valid until the next call to
 * upstream_transact() or upstream_free(). */
const struct upstream_outcome *upstream_outcome(const struct upstream *u);

/* "host:port" as configured ("[::1]:25" for a bare IPv6 host). */
const char *upstream_name(const struct upstream *u);
/* The same name for a configured server, into buf (len octets; 300 hold any). */
void upstream_server_name(const struct config_upstream_server *srv, char *buf, size_t len);

/* Transactions started on this connection (the one in progress included). */
unsigned upstream_transactions(const struct upstream *u);

/* The bearer token for AUTH XOAUTH2 (servers with mechanism 'xoauth2'), copied; set it
 * before the set-up reaches AUTH (right after upstream_new()). NULL: none, and AUTH fails
 * with "no OAuth2 token". 0, or -1 when out of memory. Never logged. */
int upstream_set_bearer(struct upstream *u, const char *token);
/* The token it was given (borrowed), or NULL: which one an upstream refused. */
const char *upstream_bearer(const struct upstream *u);

#endif
