/* core/net/tcp_dial.c: connection attempts to several addresses, staggered, first to connect
 * wins; see tcp_dial.h. Each address gets at most one attempt (attempts[i] is addrs[i]'s);
 * the one timer starts the first attempt from the loop and then each later one. What is
 * tried and in what order is the caller's; what a connection carries is the caller's. */
#include "net/tcp_dial.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

static void tcp_dial_io_cb(struct ev_loop *loop, ev_io *w, int revents);

static void
tcp_dial_close(struct tcp_dial *d, size_t i)
{
    struct tcp_dial_attempt *a = &d->attempts[i];

    if (!a->open)
        return;
    ev_io_stop(d->loop, &a->io);
    close(a->fd);
    a->open = false;
    d->n_open--;
}

void
tcp_dial_stop(struct tcp_dial *d)
{
    if (d->loop == NULL)
        return;
    ev_timer_stop(d->loop, &d->timer);
    for (size_t i = 0; i < d->n_addrs; i++)
        tcp_dial_close(d, i);
}

/* Report and end: the winner's fd goes to done(), every other attempt is closed. */
static void
tcp_dial_finish(struct tcp_dial *d, size_t i, int fd)
{
    struct tcp_dial_result r = {
        .fd = fd,
        .addr = &d->addrs[fd >= 0 ? i : d->last],
        .error = d->error,
        .tried = d->next,
        .failed = d->failed,
    };

    if (fd >= 0) {
        ev_io_stop(d->loop, &d->attempts[i].io);
        d->attempts[i].open = false; /* handed over */
        d->n_open--;
    }
    tcp_dial_stop(d);
    d->done(d->owner, &r); /* last: it may free d */
}

static void
tcp_dial_failed(struct tcp_dial *d, size_t i, int error)
{
    tcp_dial_close(d, i);
    d->failed++;
    d->last = i;
    d->error = error;
}

/* Start attempts until one is in progress (or connected): an address that fails at once
 * costs no wait. Then the timer starts the next one after the stagger. With nothing left
 * to try and nothing in progress, the dial has failed. */
static void
tcp_dial_next(struct tcp_dial *d)
{
    ev_timer_stop(d->loop, &d->timer);
    while (d->next < d->n_addrs) {
        size_t                      i = d->next++;
        const struct tcp_dial_addr *addr = &d->addrs[i];
        struct tcp_dial_attempt    *a = &d->attempts[i];
        int fd = socket(addr->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

        if (fd < 0) { /* e.g. EAFNOSUPPORT: a kernel without IPv6 */
            d->failed++;
            d->last = i;
            d->error = errno;
            continue;
        }
        a->fd = fd;
        a->open = true;
        d->n_open++;
        if (connect(fd, (const struct sockaddr *)&addr->ss, addr->len) == 0) {
            tcp_dial_finish(d, i, fd);
            return;
        }
        if (errno != EINPROGRESS) {
            tcp_dial_failed(d, i, errno);
            continue;
        }
        ev_io_init(&a->io, tcp_dial_io_cb, fd, EV_WRITE);
        ev_io_start(d->loop, &a->io);
        if (d->next < d->n_addrs) {
            ev_timer_set(&d->timer, d->stagger, 0.);
            ev_timer_start(d->loop, &d->timer);
        }
        return;
    }
    if (d->n_open == 0)
        tcp_dial_finish(d, d->last, -1);
}

static void
tcp_dial_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    tcp_dial_next(container_of(w, struct tcp_dial, timer));
}

static void
tcp_dial_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct tcp_dial_attempt *a = container_of(w, struct tcp_dial_attempt, io);
    struct tcp_dial         *d = a->dial;
    size_t                   i = (size_t)(a - d->attempts);
    int                      err = 0;
    socklen_t                len = sizeof(err);

    (void)loop;
    (void)revents;
    if (getsockopt(a->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    if (err == 0) {
        tcp_dial_finish(d, i, a->fd);
        return;
    }
    tcp_dial_failed(d, i, err);
    tcp_dial_next(d); /* RFC 8305 section 5: a failure starts the next attempt at once */
}

void
tcp_dial_start(struct tcp_dial *d, struct ev_loop *loop, const struct tcp_dial_addr *addrs,
               size_t n, double stagger, tcp_dial_done_fn done, void *owner)
{
    assert(n > 0);
    memset(d, 0, sizeof(*d));
    d->loop = loop;
    d->n_addrs = n < TCP_DIAL_ADDRS_MAX ? n : TCP_DIAL_ADDRS_MAX;
    memcpy(d->addrs, addrs, d->n_addrs * sizeof(*addrs));
    d->stagger = stagger;
    d->done = done;
    d->owner = owner;
    for (size_t i = 0; i < d->n_addrs; i++)
        d->attempts[i].dial = d;
    ev_timer_init(&d->timer, tcp_dial_timer_cb, 0., 0.); /* never done() before returning */
    ev_timer_start(loop, &d->timer);
}

void
tcp_dial_error(const struct tcp_dial_result *r, const char *host, char *out, size_t outlen)
{
    char addr[64];

    if (r->tried <= 1) {
        snprintf(out, outlen, "connect to %s: %s", host, strerror(r->error));
        return;
    }
    tcp_dial_addr_text(r->addr, addr, sizeof(addr));
    snprintf(out, outlen, "connect to %s: %s (%zu addresses tried, the last %s)", host,
             strerror(r->error), r->tried, addr);
}

void
tcp_dial_addr_text(const struct tcp_dial_addr *a, char *out, size_t outlen)
{
    const void *p = a->ss.ss_family == AF_INET6
                        ? (const void *)&((const struct sockaddr_in6 *)&a->ss)->sin6_addr
                        : (const void *)&((const struct sockaddr_in *)&a->ss)->sin_addr;

    if (inet_ntop(a->ss.ss_family, p, out, (socklen_t)outlen) == NULL)
        snprintf(out, outlen, "?");
}
