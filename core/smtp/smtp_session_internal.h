/* core/smtp/smtp_session_internal.h: what the files of core/smtp share about a session and
 * nothing else includes: the input loop's return codes, the replies and waits of
 * smtp_session.c, and the entry points of smtp_verbs.c, smtp_auth.c, smtp_data.c,
 * smtp_budget.c and smtp_hook.c. Other folders use smtp_session.h. */
#ifndef SLUICE_SMTP_SESSION_INTERNAL_H
#define SLUICE_SMTP_SESSION_INTERNAL_H

#include <stdbool.h>

#include "smtp/smtp_reply.h"
#include "smtp/smtp_session.h"

/* One allowed change of state and what causes it. smtp_session_transitions lists them all;
 * docs/smtp.md's state diagram is generated from it (unit.smtp_session checks). */
struct smtp_transition {
    enum smtp_state from;
    enum smtp_state to;
    const char     *event;
};

/* A transition's `from` that stands for every state: the connection can close in any. */
#define SMTP_STATE_ANY SMTP_STATE_COUNT

extern const struct smtp_transition smtp_session_transitions[];
extern const size_t                 smtp_session_n_transitions;

/* True if the table allows from -> to (staying in a state is always allowed; a row from
 * SMTP_STATE_ANY allows its `to` from every state). */
bool        smtp_session_may_enter(enum smtp_state from, enum smtp_state to);
/* The only writer of s->state. A change is logged at debug level (session.state, with
 * from and to); one the table does not allow is our bug: an assert (debug builds). */
void        smtp_session_enter(struct smtp_session *s, enum smtp_state to);
#define SMTP_HEADER_ROOM 2048 /* our Received: header on top of max_message_size */
#define SMTP_HELO_MAX    256  /* an EHLO/HELO name is shorter (a domain: 255 octets) */

/* What one AUTH exchange needs until its answer is sent; s->auth, freed then. */
struct smtp_auth_answer {
    struct verdict verdict; /* the AUTH answer while on_auth_result runs */
    /* A password a backend found right during this AUTH, remembered (auth_cache.h) only
     * once 235 has been sent: "" when there is none. */
    char           cache_key[AUTH_CACHE_KEY_MAX];
    double         cache_ttl;
};

/* smtp_auth.c: the session is going: drop what an unfinished AUTH held. */
void         smtp_auth_forget(struct smtp_session *s);

enum smtp_rc {
    SMTP_CONTINUE, /* keep processing input */
    SMTP_PAUSE,    /* stop processing: waiting for something */
    SMTP_GONE,     /* the session was freed */
};

/* smtp_session.c: what follows the accept (or the PROXY header): the connection caps,
 * session.open, then the TLS handshake or on_connect and the greeting. */
enum smtp_rc smtp_session_start(struct smtp_session *s);

/* smtp_proxy.c: the PROXY protocol header. Is ip (the connection's peer) in the
 * listener's proxy_trusted? */
bool         smtp_proxy_is_trusted(const struct config_listener *l, const char *ip);
/* Input in SMTP_STATE_PROXY: waits for the rest (SMTP_PAUSE), or takes the header's
 * client address and calls smtp_session_start(), or refuses (proxy.bad, SMTP_GONE). */
enum smtp_rc smtp_proxy_input(struct smtp_session *s);
/* Log event (proxy.refuse, proxy.bad) with reason and free the session: SMTP_GONE. */
enum smtp_rc smtp_proxy_refuse(struct smtp_session *s, const char *event, const char *reason);

/* smtp_hook.c: the questions to the policies (policy/hook.h), each answered at once
 * (HOOK_DONE, *out holds the verdict, VERDICT_NONE: no policy decided) or later through
 * done (HOOK_PENDING: never before the call returns; the session waits in POLICY). */
/* on_connect, before the greeting. */
enum hook_rc smtp_hook_connect(struct smtp_session *s, hook_done_fn *done, struct verdict *out);
/* on_helo with the name sent; s->helo still holds the previous one. */
enum hook_rc smtp_hook_helo(struct smtp_session *s, const char *name, hook_done_fn *done,
                            struct verdict *out);
/* on_auth with s->sasl.creds (the session keeps and wipes them). */
enum hook_rc smtp_hook_auth(struct smtp_session *s, hook_done_fn *done, struct verdict *out);
/* on_mail_from for s->tx (set, with its sender). */
enum hook_rc smtp_hook_mail_from(struct smtp_session *s, hook_done_fn *done, struct verdict *out);
/* on_rcpt for rcpt, not yet in s->tx. */
enum hook_rc smtp_hook_rcpt(struct smtp_session *s, const char *rcpt, hook_done_fn *done,
                            struct verdict *out);
/* on_data for the whole message in s->tx. */
enum hook_rc smtp_hook_data(struct smtp_session *s, hook_done_fn *done, struct verdict *out);
/* Notifications: every policy with the hook runs; errors are only logged. on_auth_result
 * with the verdict the client is about to get; on_relayed with what the client is about
 * to be told about s->tx. */
enum hook_rc smtp_hook_auth_result(struct smtp_session *s, const struct verdict *v,
                                   hook_done_fn *done);
enum hook_rc smtp_hook_relayed(struct smtp_session *s, const struct smtp_relayed *r,
                               hook_done_fn *done);
/* The end, in three steps (smtp_session_free). The connection is still there: drop a
 * pending decision hook (its done() is never called) and, when some policy has
 * on_disconnect, push its arguments (the session table, reason) on the vm's stack: true.
 * Nothing may run Lua on that state before smtp_hook_disconnect pops them. */
bool         smtp_hook_session_closing(struct smtp_session *s, const char *reason);
/* The connection is gone: run on_disconnect with those arguments. HOOK_PENDING: a policy
 * waits (it may yield, as in every hook), done(s, verdict none) comes when the run ends,
 * within hook_timeout per policy, unless smtp_hook_session_gone comes first. */
enum hook_rc smtp_hook_disconnect(struct smtp_session *s, hook_done_fn *done);
/* The session is being freed: cancel a pending run (on_disconnect's: true), drop the
 * session's Lua table. */
bool         smtp_hook_session_gone(struct smtp_session *s);

/* A parsed command in CMD: the verb table's needs (EHLO first, ...), then its handler. */
enum smtp_rc smtp_verbs_dispatch(struct smtp_session *s, const struct smtp_cmd *cmd);
/* AUTH and DATA, called by the verb table once what they need is there. */
enum smtp_rc smtp_auth_begin(struct smtp_session *s, const struct smtp_cmd *cmd);
enum smtp_rc smtp_auth_line(struct smtp_session *s, const char *line, size_t len);
/* The AUTH exchange broke (a bare LF, an over-long line): answer reply and count it as a
 * failed attempt, as every AUTH that does not end in 235 is. */
enum smtp_rc smtp_auth_abort(struct smtp_session *s, enum smtp_reply_id reply);
enum smtp_rc smtp_data_begin(struct smtp_session *s);
enum smtp_rc smtp_bdat_begin(struct smtp_session *s, const struct smtp_cmd *cmd);
enum smtp_rc smtp_data_input(struct smtp_session *s);
/* smtp_relay.c. on_data accepted s->tx: hand it to the upstream pool; RELAY until the
 * client has the answer (SMTP_PAUSE), or 451 at once. */
enum smtp_rc smtp_relay_start(struct smtp_session *s);
/* smtp_dkim.c: sign tx->msg for its From: domain, the fields prepended (body_start moves
 * down with the client's message). FAILED has been logged (dkim.fail), BUSY too
 * (dkim.busy); the message is as it was then. */
enum smtp_dkim_rc {
    SMTP_DKIM_UNSIGNED, /* no session identity, no single From:, or no keys for its domain */
    SMTP_DKIM_SIGNED,
    SMTP_DKIM_FAILED,   /* OpenSSL or memory: the caller tempfails, the client retries */
    SMTP_DKIM_BUSY,     /* the offload pool's queue is full (limits.max_auth_jobs): 451 */
    SMTP_DKIM_PENDING,  /* an RSA signature is on the offload pool: done() will come */
};
/* The outcome of a PENDING signing (SIGNED or FAILED), on the loop; never called once the
 * session is gone. */
typedef void smtp_dkim_done_fn(struct smtp_session *s, enum smtp_dkim_rc rc);
/* Hash on the loop; sign there (Ed25519 only: any of the first three outcomes at once),
 * or on the offload pool (an RSA key: PENDING, s->dkim holds the job, done comes later,
 * never before the call returns; or BUSY). Neither frees nor yields. */
enum smtp_dkim_rc smtp_dkim_start(struct smtp_session *s, smtp_dkim_done_fn *done);
/* The session is going: a signature in progress is cancelled and its done() never
 * called (the job frees itself when the pool hands it back). */
void         smtp_dkim_forget(struct smtp_session *s);
void         smtp_tx_free(struct smtp_tx *tx);
/* smtp_dsn.c: RFC 3461 parameters. Each returns SMTP_DSN_NOT_OURS for a key that is not
 * a DSN parameter of its command, SMTP_DSN_TAKEN when the value was kept (in tx or *d),
 * SMTP_DSN_REFUSED with *reply set. Neither frees nor yields. */
enum smtp_dsn_rc {
    SMTP_DSN_NOT_OURS,
    SMTP_DSN_TAKEN,
    SMTP_DSN_REFUSED,
};
enum smtp_dsn_rc smtp_dsn_mail_param(struct smtp_tx *tx, struct smtp_str key,
                                     struct smtp_str val, enum smtp_reply_id *reply);
enum smtp_dsn_rc smtp_dsn_rcpt_param(const struct smtp_tx *tx, struct dsn_rcpt *d,
                                     struct smtp_str key, struct smtp_str val,
                                     enum smtp_reply_id *reply);
/* Move *d (zeroed after) into tx as recipient n_rcpts's, before n_rcpts grows; the rcpts
 * array already has room for it. 0, or -1 out of memory (d untouched). */
int          smtp_dsn_rcpt_keep(struct smtp_tx *tx, struct dsn_rcpt *d);
/* Grow tx's DSN array (when there is one) from cap_rcpts to ncap entries, with the
 * rcpts array, before cap_rcpts changes. 0, or -1 out of memory (unchanged). */
int          smtp_dsn_rcpts_grow(struct smtp_tx *tx, size_t ncap);
/* Free d's strings and zero it. */
void         smtp_dsn_rcpt_cleanup(struct dsn_rcpt *d);
/* Free tx's DSN strings and arrays (smtp_tx_free). */
void         smtp_dsn_tx_cleanup(struct smtp_tx *tx);
void         smtp_session_reset_tx(struct smtp_session *s);
/* Reply (from the table), log smtp.reject, count the error; 421 and close past
 * limits.max_errors. */
enum smtp_rc smtp_session_error(struct smtp_session *s, enum smtp_reply_id reply);
/* The same for a reply whose text varies (a policy's verdict, a limit in the text). */
enum smtp_rc smtp_session_error_text(struct smtp_session *s, int code, const char *enh,
                                     const char *text);
/* Reply, then close once it is flushed (CLOSING; the session may be gone already). */
enum smtp_rc smtp_session_close_with(struct smtp_session *s, enum smtp_reply_id reply);
enum smtp_rc smtp_session_close_text(struct smtp_session *s, int code, const char *enh,
                                     const char *text);
void         smtp_session_resume(struct smtp_session *s);
/* A policy decision is pending: POLICY, reading stopped, earlier replies flushed. */
enum smtp_rc smtp_session_wait(struct smtp_session *s);
/* A pending decision was applied with result rc: go on with the input. */
void         smtp_session_decided(struct smtp_session *s, enum smtp_rc rc);
/* A policy's refusal: its reply (counted as an error), or 421 and the end. */
enum smtp_rc smtp_session_policy_reply(struct smtp_session *s, const struct verdict *v);
enum smtp_rc smtp_session_starttls(struct smtp_session *s);
/* Arm the connection's timer for the deadline of the current state (see the fields). */
void         smtp_session_set_timeout(struct smtp_session *s);
/* smtp_budget.c. MAIL: reserve a first chunk for tx (not yet s->tx), or all of a
 * declared SIZE; nothing is held unless INFLIGHT_OK. */
enum inflight_rc smtp_budget_open(struct smtp_session *s, struct smtp_tx *tx);
/* BDAT: charge for the chunk's `more` octets before they come. INFLIGHT_OK or the limit
 * (nothing more charged then). */
enum inflight_rc smtp_budget_expect(struct smtp_session *s, unsigned long long more);
/* Free tx's message buffer and release all it holds (a refused or ended message). */
void         smtp_budget_drop(struct smtp_session *s, struct smtp_tx *tx);
/* 452 4.3.1 for a refusal of the budget, counted as an error; or, to send it later, the
 * reply alone. Either counts the refusal once in `sluice ctl status`. */
enum smtp_rc       smtp_budget_refuse(struct smtp_session *s, enum inflight_rc rc);
enum smtp_reply_id smtp_budget_refusal(struct smtp_session *s, enum inflight_rc rc);
/* DATA/BDAT: n more octets of content arrived; the deadline moves by n/min_data_rate
 * seconds, never to more than timeouts.data from now and never once it has passed. */
void         smtp_data_credit(struct smtp_session *s, size_t n);
/* DATA or the first BDAT of a transaction: the content's clock starts. */
void         smtp_data_clock_start(struct smtp_session *s);

#endif
