/* core/net/tls_buffers.h: which TLS connections keep OpenSSL's record buffers.
 *
 * OpenSSL gives every connection a read and a write buffer of about 17 KiB each. With
 * SSL_MODE_RELEASE_BUFFERS it frees them after every read and write that leaves them
 * empty, which keeps idle connections small but costs two allocations and frees per
 * record, some forty per relayed message. Instead the buffers stay while a connection is
 * busy: each worker thread keeps its TLS connections that hold buffers in one list, most
 * recently active first, and frees the buffers (SSL_free_buffers) of a connection that
 * has been quiet for TLS_BUFFERS_QUIET seconds, or that falls off the end of a list longer
 * than TLS_BUFFERS_HOT. So an idle connection holds none after a second, and no number
 * of connections, busy or stalled in a handshake, makes a worker hold more than
 * TLS_BUFFERS_HOT pairs at once.
 *
 * conn.c calls tls_buffers_touch() after each SSL call and tls_buffers_forget() before
 * SSL_free(), with the link embedded in its struct conn; nothing else does. A thread's
 * list and its sweep timer live on the loop of the connections it holds: one loop per
 * thread. */
#ifndef SLUICE_TLS_BUFFERS_H
#define SLUICE_TLS_BUFFERS_H

#include <ev.h>
#include <openssl/ssl.h>
#include <stdbool.h>

#define TLS_BUFFERS_QUIET 1.0 /* seconds without I/O before a connection's buffers go */
#define TLS_BUFFERS_HOT   64  /* connections per thread that may hold buffers at once */

/* A connection's place in its thread's list (embedded in struct conn). */
struct tls_buffers_link {
    struct tls_buffers_link *prev;    /* borrows: more recently active */
    struct tls_buffers_link *next;    /* borrows: less recently active */
    SSL                     *ssl;     /* borrows: the connection's */
    ev_tstamp                last_io; /* ev_now() of the last SSL call */
    bool                     linked;
};

/* The connection of k did an SSL call on ssl: it holds buffers now, and is the most
 * recently active. */
void tls_buffers_touch(struct tls_buffers_link *k, SSL *ssl, struct ev_loop *loop);
/* The connection of k is going away: out of the list (no-op when it is not in it). */
void tls_buffers_forget(struct tls_buffers_link *k);
/* How many connections of this thread hold buffers (tests). */
unsigned tls_buffers_held(void);

#endif
