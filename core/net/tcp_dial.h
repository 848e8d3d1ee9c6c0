/* core/net/tcp_dial.h: a TCP connection to the first of several addresses that answers, on a
 * worker's libev loop, for a client whose host name resolved to more than one address
 * (localhost is ::1 and 127.0.0.1 on Debian, ::1 first).
 *
 * RFC 8305 ("Happy Eyeballs v2") section 5, without its address sorting: the addresses
 * are tried in the order given. The next address's connect starts as soon as the
 * previous attempt fails (refused, unreachable: no wait), or after `stagger` seconds
 * without an answer while the earlier attempts go on. The first connection made wins;
 * the other attempts are closed. There is no timer for giving up: the caller's deadline
 * ends the dial with tcp_dial_stop(), so that one deadline bounds the whole request.
 *
 * The dial is embedded in its owner (no allocation). done() runs from the loop, never
 * before tcp_dial_start() returns, and exactly once unless tcp_dial_stop() comes first;
 * it may free the owner (and so the dial). */
#ifndef SLUICE_TCP_DIAL_H
#define SLUICE_TCP_DIAL_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#define TCP_DIAL_ADDRS_MAX 8    /* addresses tried per dial; more are ignored */
#define TCP_DIAL_STAGGER   0.25 /* RFC 8305 section 8: the Connection Attempt Delay */

struct tcp_dial_addr {
    struct sockaddr_storage ss;
    socklen_t               len;
};

struct tcp_dial_result {
    int                         fd;     /* connected, non-blocking, close-on-exec; done()
                                           owns it; -1 when every address failed */
    const struct tcp_dial_addr *addr;   /* the one that answered, or the last that failed */
    int                         error;  /* errno of the last failure, 0 if none failed */
    size_t                      tried;  /* connects started */
    size_t                      failed; /* of those, how many failed */
};

typedef void (*tcp_dial_done_fn)(void *owner, const struct tcp_dial_result *r);

struct tcp_dial;

struct tcp_dial_attempt {
    struct tcp_dial *dial; /* borrows: the dial it belongs to */
    int              fd;   /* owns while open */
    bool             open;
    ev_io            io;
};

struct tcp_dial {
    struct ev_loop         *loop;    /* borrows; NULL until started */
    struct tcp_dial_addr    addrs[TCP_DIAL_ADDRS_MAX];
    struct tcp_dial_attempt attempts[TCP_DIAL_ADDRS_MAX]; /* one per address */
    size_t                  n_addrs;
    size_t                  next;    /* the next address to try: so many connects were
                                        started (the owner may read it) */
    size_t                  n_open;  /* attempts in progress */
    size_t                  failed;
    size_t                  last;    /* the address that failed last */
    int                     error;   /* its errno */
    double                  stagger;
    ev_timer                timer;   /* starts the next attempt */
    tcp_dial_done_fn        done;
    void                   *owner;   /* borrows */
};

/* Start connecting to addrs[0 .. n) (1 <= n; copied; at most TCP_DIAL_ADDRS_MAX used),
 * waiting stagger seconds (TCP_DIAL_STAGGER) for an attempt before starting the next. */
void tcp_dial_start(struct tcp_dial *d, struct ev_loop *loop, const struct tcp_dial_addr *addrs,
                    size_t n, double stagger, tcp_dial_done_fn done, void *owner);

/* Close every attempt in progress; done() will not be called. A zeroed dial, one that
 * never started or that already finished is fine. */
void tcp_dial_stop(struct tcp_dial *d);

/* For a failed dial (r->fd < 0): "connect to HOST: Connection refused", and when more
 * than one address was tried, " (2 addresses tried, the last 127.0.0.1)". */
void tcp_dial_error(const struct tcp_dial_result *r, const char *host, char *out,
                    size_t outlen);

/* "127.0.0.1", "::1": the address as text, for messages and log lines. */
void tcp_dial_addr_text(const struct tcp_dial_addr *a, char *out, size_t outlen);

#endif
