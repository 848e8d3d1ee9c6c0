/* core/smtp/smtp_session.h: one client's SMTP session: the state machine over a conn.
 * smtp_session.c owns the lifecycle, the input loop and the state (smtp_session_enter);
 * smtp_verbs.c the verb table; smtp_auth.c the AUTH exchange; smtp_data.c DATA/BDAT;
 * smtp_relay.c the relay; smtp_budget.c the message's memory; smtp_reply.c the replies;
 * smtp_server.h what a session borrows from its worker. This header
 * is what other folders use (the worker, the listener, the policies' view of a session);
 * what only core/smtp's files share is in smtp_session_internal.h. */
#ifndef SLUICE_SMTP_SESSION_H
#define SLUICE_SMTP_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/auth_cache.h"
#include "util/buf.h"
#include "config/config.h"
#include "proto/data_decoder.h"
#include "policy/hook.h"
#include "util/inflight.h"
#include "net/iplimit.h"
#include "proto/sasl.h"
#include "proto/smtp_parse.h"
#include "relay/relay_job.h"
#include "smtp/smtp_reply.h"
#include "smtp/smtp_server.h"

struct conn;
struct hook_run;
struct smtp_auth_answer;
struct smtp_dkim_job;
struct smtp_session;

/* The verdict of a policy decision that returned HOOK_PENDING (smtp_hook.c). */
typedef void hook_done_fn(struct smtp_session *s, const struct verdict *v);

/* The session's states; smtp_session_enter() is the only writer of s->state, and the
 * transitions it allows are the table in smtp_session.c (docs/smtp.md draws it). */
enum smtp_state {
    SMTP_STATE_NEW,        /* accepted: nothing sent or read yet */
    SMTP_STATE_PROXY,      /* proxy_protocol listener: reading the PROXY header */
    SMTP_STATE_TLS_ACCEPT, /* implicit TLS: handshake before the greeting */
    SMTP_STATE_CMD,        /* reading commands */
    SMTP_STATE_AUTH,       /* waiting for a SASL response line */
    SMTP_STATE_AUTH_ERROR, /* token refused: waiting for the client's answer to the error */
    SMTP_STATE_DATA,       /* reading DATA content */
    SMTP_STATE_BDAT,       /* reading a BDAT chunk */
    SMTP_STATE_STARTTLS,   /* 220 sent, flushing, then handshaking */
    SMTP_STATE_POLICY,     /* a policy hook decides (on_connect .. on_auth_result): reading
                            * stopped, no timeout of the session's own (the hook's budget) */
    SMTP_STATE_RELAY,      /* the message is signed (DKIM, an RSA key: on the offload pool),
                            * the upstream has it, then on_relayed hears its answer:
                            * reading goes on (to see a client leave), nothing is consumed */
    SMTP_STATE_CLOSING,    /* last reply queued; close when flushed */
    SMTP_STATE_DISCONNECTED, /* the connection is closed and released (conn NULL); on_disconnect
                              * waits, bounded by hook_timeout: then the session is freed */
    SMTP_STATE_COUNT
};

/* "CMD" for SMTP_STATE_CMD; "?" out of range. Static text (the session.state log line,
 * the sluice_sessions metric's state label). */
const char *smtp_session_state_name(enum smtp_state st);

struct smtp_tx {
    char              *mail_from;  /* owns; "" for <> */
    char             **rcpts;      /* owns each */
    size_t             n_rcpts;
    size_t             cap_rcpts;
    bool               smtputf8;
    bool               body_8bit;
    unsigned long long declared_size;
    bool               declared_size_set; /* MAIL had SIZE= */
    enum dsn_ret       dsn_ret;    /* MAIL had RET= (RFC 3461 section 4.3) */
    char              *dsn_envid;  /* owns; ENVID's value as sent, or NULL */
    struct dsn_rcpt *dsn_rcpts; /* owns, with each one's strings: cap_rcpts entries
                                       * parallel to rcpts, or NULL while no recipient had
                                       * NOTIFY or ORCPT (smtp_dsn.c) */
    bool               bdat_used;  /* CHUNKING: DATA no longer allowed in this tx */
    bool               failed;     /* a BDAT chunk failed: discard the rest */
    struct buf         msg;        /* Received: + message, unstuffed, CRLF */
    size_t             charged;    /* octets reserved for msg in the daemon's inflight
                                    * budget (smtp_budget.c): always >= msg.cap */
    enum inflight_rc   refused;    /* the budget would not let msg grow: msg was dropped,
                                    * the rest is read and the message refused with 452 */
    size_t             body_start; /* offset of the client's bytes in msg */
    size_t             added_end;  /* offset past the headers tx:add_header put below our
                                    * Received: (lapi_tx.c); 0 until the first */
    struct data_decoder dec;
    struct relay_envelope env; /* borrows the strings above, for the relay */
};

/* What the client is told about a relayed message; on_relayed's `reply`. */
struct smtp_relayed {
    int  code;
    char enhanced[16];
    char text[600];
    char queue_id[64];  /* the upstream's, "" when unknown */
    char upstream[300]; /* "host:port" that answered, "" when none did */
};

struct smtp_session {
    uint64_t                      id;       /* printed in every log line */
    struct smtp_session          *next;     /* worker's list */
    struct smtp_session          *prev;
    struct smtp_server           *server;   /* borrows: the worker's; outlives the session */
    struct smtp_server_pin        pin;      /* borrows: the pinned generation's parts */
    const struct config          *cfg;      /* borrows: pin.cfg */
    const struct config_listener *lcfg;     /* borrows */
    struct conn                  *conn;     /* owns; NULL in DISCONNECTED */
    enum smtp_state               state;    /* written only by smtp_session_enter() */
    struct smtp_tx               *tx;       /* owns; NULL outside MAIL .. end of data */
    struct relay_job             *relay;    /* the relay in progress, or NULL */
    struct smtp_dkim_job         *dkim;     /* the message's signature on the offload
                                             * pool (smtp_dkim.c), before relay; or NULL */
    struct hook_run              *hook;     /* owns; the policy hook running, or NULL */
    hook_done_fn                 *hook_done; /* what gets hook's verdict (smtp_hook.c) */
    int                           lua_session; /* registry ref of the session table, 0 none */
    char                         *pending_arg; /* owns; RCPT address or EHLO name while
                                                 * on_rcpt or on_helo runs */
    bool                          pending_esmtp; /* EHLO (not HELO) while on_helo runs */
    struct dsn_rcpt         pending_dsn; /* owns its strings: pending_arg's NOTIFY
                                                * and ORCPT while on_rcpt runs */
    struct smtp_auth_answer      *auth;     /* owns; from AUTH until its answer is sent
                                             * (smtp_auth.c), else NULL */
    struct smtp_relayed          *relayed;  /* owns; the relay's answer while on_relayed runs */
    struct sasl                   sasl;

    char     peer[64];    /* the client: the PROXY header's source, else the socket's */
    int      peer_port;
    char     proxy_peer[64]; /* the socket's peer on a proxy_protocol listener, else "" */
    char     client[IPLIMIT_CLIENT_MAX]; /* peer's client network: the iplimit key and
                                          * session.client; fixed at accept */
    /* An idle session holds only what it needs (docs/benchmarks.md "Memory per idle
     * connection"): names sized to what the client sent, the AUTH exchange's state
     * (struct smtp_auth_answer) only while it lasts. */
    char    *helo;        /* owns; the EHLO/HELO name accepted, NULL before one */
    bool     ehlo_seen;   /* EHLO or HELO accepted since connect/STARTTLS */
    bool     esmtp;       /* EHLO (not HELO): parameters allowed */
    bool     tls;
    bool     authenticated;
    char    *user;        /* owns; the identity an accepted AUTH fixed, NULL before */
    const char *domain;   /* borrows: user's part after its last '@'; "" without one */
    enum sasl_mech auth_mech;
    bool     counted;     /* holds an iplimit slot */
    bool     skip_line;   /* discarding the rest of an over-long line */
    bool     out_paused;  /* replies past SMTP_SESSION_OUT_HIGH wait: input is not read */

    unsigned long long bdat_left;  /* octets of the current chunk still to read */
    bool     bdat_last;
    bool     bdat_discard;         /* read the chunk but keep nothing (rejected BDAT) */
    enum smtp_reply_id bdat_reject; /* reply to send after a discarded chunk */

    /* Deadlines (ev_now times; smtp_session_set_timeout() turns them into the timer).
     * Only a completed line, a state change or DATA octets at limits.min_data_rate move
     * them; a byte that trickles in does not. */
    double   wait_since;    /* the current wait began: reply sent, handshake started */
    double   line_since;    /* first octet of the command line still incomplete; 0 none */
    double   data_since;    /* 354, or the transaction's first BDAT */
    double   data_deadline; /* message content must have arrived by then (smtp_data.c) */
    unsigned long long data_octets; /* of this message so far, for the log */
    unsigned long long lines_in;    /* complete command and AUTH lines consumed */

    size_t   errors;
    size_t   commands;
    size_t   messages;
    size_t   auth_failures;
    double   started;     /* ev_now at accept, for the close line */
};

/* Take ownership of an accepted fd. Returns NULL on allocation failure (fd closed). */
struct smtp_session *smtp_session_new(struct smtp_server *srv,
                                      const struct config_listener *lcfg, int fd);

/* The one teardown path: cancels any outstanding wait, logs session.close with reason,
 * releases the iplimit slot, closes and frees the connection, then runs on_disconnect;
 * then unlinks from the worker and frees. If on_disconnect waits (a yielding call), s lives
 * on in DISCONNECTED, still listed and still pinning its generation, until the run ends
 * (within hook_timeout per policy) and frees it: the caller must not touch s again either
 * way. Called on a session in DISCONNECTED it cancels that run and frees s at once, as
 * smtp_session_free_now does. */
void smtp_session_free(struct smtp_session *s, const char *reason);

/* The same, but nothing is waited for: on_disconnect runs up to its first wait, which is
 * cancelled (a policy.cancel line), as is one already waiting; s is gone on return. For
 * the worker's hard shutdown, when its loop no longer runs. */
void smtp_session_free_now(struct smtp_session *s, const char *reason);

/* The worker is draining: an idle session gets 421 4.3.2 now; a busy one after its
 * transaction; one in DISCONNECTED is left to finish its on_disconnect. */
void smtp_session_drain(struct smtp_session *s);

/* The drain timeout ran out: 421 where the client can hear it, then free at once (a
 * pending on_disconnect is cancelled, never waited for). */
void smtp_session_cut(struct smtp_session *s);

/* Room for n more octets in s->tx->msg, charged to the daemon's budget for messages in
 * transit before the buffer grows (smtp_budget.c); our own growth steps stop at cap.
 * INFLIGHT_OK, or the limit that said no (a failed malloc counts as INFLIGHT_TOTAL);
 * the buffer is unchanged then. Neither frees nor yields. */
enum inflight_rc smtp_budget_reserve(struct smtp_session *s, size_t n, size_t cap);

#endif
