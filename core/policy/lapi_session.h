/* core/policy/lapi_session.h: the tables hooks get as arguments (lapi_session.c). Each pushes
 * onto L, the vm's main state. What goes into them comes as views the caller fills
 * (core/smtp/smtp_hook.c, from the session): the engine never sees the session itself. */
#ifndef SLUICE_LAPI_SESSION_H
#define SLUICE_LAPI_SESSION_H

#include <lua.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dsn_rcpt;
struct sasl_creds;
struct verdict;

/* What the session table shows (docs/lua-api.md "The session"). The strings are borrowed
 * for the call. */
struct lapi_session_view {
    uint64_t    id;
    const char *listener;       /* the listener's name */
    const char *client_address;
    const char *client;         /* the connection caps' key (iplimit.h) */
    int         client_port;
    /* Refreshed before every hook; NULL and "" are both nil. */
    const char *helo;           /* once EHLO or HELO was accepted */
    const char *tls_version;
    const char *tls_cipher;
    const char *tls_sni;
    const char *user;           /* once authenticated, with domain and auth_mechanism */
    const char *domain;
    const char *auth_mechanism;
    int        *lua_ref;        /* borrows: the session table's registry ref, 0 until the
                                 * first push makes it; the caller keeps it for the next */
};

/* What a tx table shows (docs/lua-api.md "The transaction"). Borrowed for the call. */
struct lapi_tx_view {
    uint64_t           sid;
    size_t             number;            /* this message's in the session, from 1 */
    const char        *sender;            /* "" for <> */
    char *const       *rcpts;
    size_t             n_rcpts;
    bool               declared_size_set; /* MAIL had SIZE= */
    unsigned long long declared_size;
    bool               with_size;         /* the message has arrived: size is set */
    size_t             size;              /* its octets as received */
    bool               smtputf8;
    /* DSN (RFC 3461), docs/lua-api.md "The transaction" */
    int                dsn_ret;           /* enum dsn_ret */
    const char        *dsn_envid;         /* xtext as sent, or NULL */
    const struct dsn_rcpt *dsn_rcpts;     /* n_rcpts entries, or NULL */
    const struct dsn_rcpt *dsn_pending;   /* on_rcpt: the recipient being decided, or NULL */
};

/* The session table, made on first use and kept in *v->lua_ref, fields refreshed. */
void lapi_push_session(lua_State *L, const struct lapi_session_view *v);
/* Drop the session table (the session is being freed); *lua_ref becomes 0. */
void lapi_session_release(lua_State *L, int *lua_ref);
/* A tx table with the methods of lapi_tx.c. */
void lapi_push_tx(lua_State *L, const struct lapi_tx_view *tx);
/* on_auth's auth table: mechanism, user, and (with_secret) password or token. */
void lapi_push_auth(lua_State *L, const struct sasl_creds *creds, bool with_secret);
/* on_auth_result's verdict: { kind, code, enhanced, text } as the client gets it. */
void lapi_push_verdict(lua_State *L, const struct verdict *v);
/* on_relayed's reply: { success, code, enhanced, text, queue_id, upstream }; queue_id
 * and upstream "" when unknown. */
void lapi_push_relayed(lua_State *L, int code, const char *enhanced, const char *text,
                       const char *queue_id, const char *upstream);

#endif
