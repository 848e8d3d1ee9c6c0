/* core/net/conn.h: one non-blocking socket with optional TLS: input and output buffers,
 * read/write watchers, one timer, and the TLS handshake. It knows nothing about SMTP;
 * it reports to its owner (a session or an upstream client) through one callback.
 *
 * Ownership: the owner owns the conn and frees it with conn_free(). The event callback
 * may free the owner and the conn; it then returns CONN_GONE and conn touches nothing. */
#ifndef SLUICE_CONN_H
#define SLUICE_CONN_H

#include <ev.h>
#include <openssl/ssl.h>
#include <stdbool.h>

#include "net/tls_buffers.h"
#include "util/buf.h"

enum conn_rc {
    CONN_OK,
    CONN_GONE, /* the owner freed the conn: the caller must return without touching it */
};

enum conn_event {
    CONN_EV_INPUT,   /* new bytes in c->in */
    CONN_EV_TLS,     /* the TLS handshake completed */
    CONN_EV_FLUSHED, /* c->out became empty after a conn_flush that had to wait */
    CONN_EV_TIMEOUT, /* the timer set with conn_set_timeout fired */
    CONN_EV_CLOSED,  /* EOF, I/O error or TLS failure; c->error says which */
};

struct conn;
typedef enum conn_rc (*conn_event_fn)(void *owner, struct conn *c, enum conn_event ev);

struct conn {
    int             fd;       /* owns */
    SSL            *ssl;      /* owns; NULL in cleartext */
    struct ev_loop *loop;     /* borrows */
    ev_io           rio;
    ev_io           wio;
    ev_timer        timer;
    struct buf      in;       /* bytes received (decrypted) not yet consumed by the owner */
    struct buf      out;      /* bytes to send (plaintext; encrypted on write) */
    size_t          in_max;   /* cap on c->in; reading pauses when full */
    void           *owner;    /* borrows */
    conn_event_fn   on_event;
    const char     *error;    /* static text for CONN_EV_CLOSED ("peer closed", ...) */
    bool            handshaking;
    bool            is_server;
    bool            reading;  /* the owner wants input */
    bool            closed;   /* EOF or error seen; no more I/O */
    bool            notify_flushed;
    bool            ssl_more; /* OpenSSL may hold whole records the socket won't signal */
    struct tls_buffers_link tls_link; /* whether OpenSSL's record buffers stay (tls_buffers.h) */
};

/* Wrap a connected non-blocking fd (takes ownership; sets TCP_NODELAY). */
struct conn *conn_new(struct ev_loop *loop, int fd, void *owner, conn_event_fn on_event);
/* Close the socket (TLS close_notify best effort), stop watchers and free. NULL ok. */
void conn_free(struct conn *c);

/* Start or stop delivering CONN_EV_INPUT. Reading starts paused. */
void conn_read_start(struct conn *c);
void conn_read_stop(struct conn *c);

/* Begin a TLS handshake on this socket with ssl (takes ownership). CONN_EV_TLS or
 * CONN_EV_CLOSED follows, never before this returns. Bytes already in c->in are
 * discarded: they arrived before the handshake (RFC 3207 section 4, CVE-2011-0411). */
void conn_start_tls(struct conn *c, SSL *ssl);

/* Queue bytes (cap: no more than out_max buffered; -1 means the peer is not reading). */
int conn_write(struct conn *c, const void *p, size_t n);

/* Try to send c->out now. Returns CONN_OK or CONN_GONE (a write error was reported
 * through CONN_EV_CLOSED and the owner freed the conn). If bytes remain, a write watcher
 * finishes the job and CONN_EV_FLUSHED follows when want_flushed_event is set. */
enum conn_rc conn_flush(struct conn *c, bool want_flushed_event);

/* (Re)arm the one timer: CONN_EV_TIMEOUT after secs of no call to conn_set_timeout.
 * secs <= 0 stops it. */
void conn_set_timeout(struct conn *c, double secs);

/* Peer address as text ("192.0.2.1", "2001:db8::1") and port. */
void conn_peer(const struct conn *c, char *addr, size_t addrlen, int *port);

#define CONN_OUT_MAX (1024 * 1024)

#endif
