/* core/smtp_session.h: one client's SMTP session: the state machine over a conn.
 * smtp_session.c owns the lifecycle and the input loop; smtp_verbs.c the per-verb
 * checks; smtp_auth.c the AUTH exchange; smtp_data.c DATA/BDAT and the relay. */
#ifndef SLUICE_SMTP_SESSION_H
#define SLUICE_SMTP_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "data_decoder.h"
#include "sasl.h"
#include "smtp_parse.h"
#include "upstream_pool.h"

struct conn;
struct worker;

enum smtp_state {
    SMTP_STATE_TLS_ACCEPT, /* implicit TLS: handshake before the greeting */
    SMTP_STATE_CMD,        /* reading commands */
    SMTP_STATE_AUTH,       /* waiting for a SASL response line */
    SMTP_STATE_AUTH_ERROR, /* token refused: waiting for the client's answer to the error */
    SMTP_STATE_DATA,       /* reading DATA content */
    SMTP_STATE_BDAT,       /* reading a BDAT chunk */
    SMTP_STATE_STARTTLS,   /* 220 sent, flushing, then handshaking */
    SMTP_STATE_BUSY,       /* waiting for an auth decision or the upstream */
    SMTP_STATE_CLOSING,    /* last reply queued; close when flushed */
};

struct smtp_tx {
    char              *mail_from;  /* owns; "" for <> */
    char             **rcpts;      /* owns each */
    size_t             n_rcpts;
    size_t             cap_rcpts;
    bool               smtputf8;
    bool               body_8bit;
    unsigned long long declared_size;
    bool               bdat_used;  /* CHUNKING: DATA no longer allowed in this tx */
    bool               failed;     /* a BDAT chunk failed: discard the rest */
    struct buf         msg;        /* Received: + message, unstuffed, CRLF */
    size_t             body_start; /* offset of the client's bytes in msg */
    struct data_decoder dec;
    struct relay_envelope env; /* borrows the strings above, for the relay */
};

struct smtp_session {
    uint64_t                      id;       /* printed in every log line */
    struct smtp_session          *next;     /* worker's list */
    struct smtp_session          *prev;
    struct worker                *worker;   /* borrows: outlives every session */
    const struct config          *cfg;      /* borrows */
    const struct config_listener *lcfg;     /* borrows */
    struct conn                  *conn;     /* owns */
    enum smtp_state               state;
    struct smtp_tx               *tx;       /* owns; NULL outside MAIL .. end of data */
    struct upstream_job          *relay;    /* the relay in progress, or NULL */
    void                         *auth_pending; /* hook.c's outstanding auth, or NULL */
    struct sasl                   sasl;

    char     peer[64];
    int      peer_port;
    char     helo[256];
    bool     ehlo_seen;   /* EHLO or HELO accepted since connect/STARTTLS */
    bool     esmtp;       /* EHLO (not HELO): parameters allowed */
    bool     tls;
    bool     authenticated;
    char     user[SASL_ID_MAX];
    char     domain[256];
    enum sasl_mech auth_mech;
    bool     counted;     /* holds an iplimit slot */
    bool     skip_line;   /* discarding the rest of an over-long line */

    unsigned long long bdat_left;  /* octets of the current chunk still to read */
    bool     bdat_last;
    bool     bdat_discard;         /* read the chunk but keep nothing (rejected BDAT) */
    int      bdat_reject_code;     /* reply to send after a discarded chunk */
    const char *bdat_reject_enh;
    const char *bdat_reject_text;

    size_t   errors;
    size_t   commands;
    size_t   messages;
    size_t   auth_failures;
    double   started;     /* ev_now at accept, for the close line */
};

/* Take ownership of an accepted fd. Returns NULL on allocation failure (fd closed). */
struct smtp_session *smtp_session_new(struct worker *w, const struct config_listener *lcfg,
                                      int fd);

/* The one teardown path: cancels any outstanding wait, logs session.close with reason,
 * releases the iplimit slot, unlinks from the worker, frees. */
void smtp_session_free(struct smtp_session *s, const char *reason);

/* The worker is draining: an idle session gets 421 4.3.2 now; a busy one after its
 * transaction. */
void smtp_session_drain(struct smtp_session *s);

/* The drain timeout ran out: 421 where the client can hear it, then free. */
void smtp_session_cut(struct smtp_session *s);

/* hook.c reports an auth decision. user/domain are copied when accepted. */
void smtp_session_auth_done(struct smtp_session *s, bool ok, const char *user,
                            const char *domain, int code, const char *enhanced,
                            const char *text);

/* --- between the smtp_*.c files only --- */
enum smtp_rc {
    SMTP_CONTINUE, /* keep processing input */
    SMTP_PAUSE,    /* stop processing: waiting for something */
    SMTP_GONE,     /* the session was freed */
};

enum smtp_rc smtp_verbs_dispatch(struct smtp_session *s, const struct smtp_cmd *cmd);
enum smtp_rc smtp_auth_begin(struct smtp_session *s, const struct smtp_cmd *cmd);
enum smtp_rc smtp_auth_line(struct smtp_session *s, const char *line, size_t len);
enum smtp_rc smtp_data_begin(struct smtp_session *s);
enum smtp_rc smtp_bdat_begin(struct smtp_session *s, const struct smtp_cmd *cmd);
enum smtp_rc smtp_data_input(struct smtp_session *s);
void         smtp_tx_free(struct smtp_tx *tx);
void         smtp_session_reset_tx(struct smtp_session *s);
enum smtp_rc smtp_session_error(struct smtp_session *s, int code, const char *enh,
                                const char *text);
enum smtp_rc smtp_session_close_with(struct smtp_session *s, int code, const char *enh,
                                     const char *text);
void         smtp_session_resume(struct smtp_session *s);
enum smtp_rc smtp_session_starttls(struct smtp_session *s);
void         smtp_session_set_timeout(struct smtp_session *s);

#endif
