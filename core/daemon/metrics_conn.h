/* core/daemon/metrics_conn.h: one client connection of the metrics listener, plain TCP or
 * TLS: the handshake, reads, writes and the close, each bounded by the client's one
 * deadline and the listener's stop pipe (util/fdwait.h). The socket is non-blocking;
 * OpenSSL's SSL_ERROR_WANT_READ/WANT_WRITE become a wait for the socket, so a client that
 * trickles or stalls its handshake cannot hold the thread past the deadline. Who may
 * connect and what to answer are metrics.c's. */
#ifndef SLUICE_METRICS_CONN_H
#define SLUICE_METRICS_CONN_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>

enum metrics_conn_rc {
    METRICS_CONN_OK,
    METRICS_CONN_TIMEOUT,   /* the deadline passed first */
    METRICS_CONN_STOP,      /* the listener is stopping */
    METRICS_CONN_CLOSED,    /* the peer closed or reset, or the socket failed */
    METRICS_CONN_TLS_ERROR, /* the handshake failed (protocol, version, certificate) */
};

struct metrics_conn {
    int    fd;       /* borrows; non-blocking; the caller closes it after the cleanup */
    int    stop_fd;  /* borrows; readable once the listener stops */
    double deadline; /* on fdwait_clock(): every wait of this connection ends by then */
    SSL   *ssl;      /* owns; NULL on a plain connection */
    bool   failed;   /* the TLS connection had a fatal error: no close_notify */
};

void metrics_conn_init(struct metrics_conn *c, int fd, int stop_fd, double deadline);

/* Speak TLS from now on: a server SSL from ctx (SSL_new takes its own reference, so a
 * reload may replace ctx meanwhile), its handshake done before the deadline. OK, or
 * another outcome; METRICS_CONN_TLS_ERROR and METRICS_CONN_CLOSED put the reason
 * ("wrong version number", "unexpected eof while reading") in err. */
enum metrics_conn_rc metrics_conn_accept(struct metrics_conn *c, SSL_CTX *ctx, char *err,
                                         size_t errlen);

/* Octets the peer sent so far, TLS records included: 0 is a connection on which nothing
 * arrived (a TCP probe), not worth a log line. */
size_t metrics_conn_bytes_in(const struct metrics_conn *c);

/* Up to cap (> 0) octets of the request, waiting for some: OK with *got > 0, or the
 * outcome that ended the wait. */
enum metrics_conn_rc metrics_conn_recv(struct metrics_conn *c, char *buf, size_t cap,
                                       size_t *got);

/* Send all of p before the deadline; a peer that does not read, or an error, loses the
 * rest silently (the caller closes). */
void metrics_conn_send_all(struct metrics_conn *c, const char *p, size_t len);

/* End our side (a TLS close_notify first) and read what the client still sends until it
 * closes or the deadline passes: closing with unread input would reset the connection,
 * and the client could lose the answer (or the TLS alert) it has not read yet. */
void metrics_conn_linger(struct metrics_conn *c);

/* Free the SSL; the socket stays the caller's. */
void metrics_conn_cleanup(struct metrics_conn *c);

#endif
