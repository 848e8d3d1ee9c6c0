/* tests/unit/test_tcp_dial.c: core/net/tcp_dial.c against loopback addresses only: a closed
 * port (refused at once), a listener that never answers (backlog 0, its one slot taken:
 * the kernel drops further SYNs, as a host that blackholes them would) and a live
 * listener, on 127.0.0.1 and ::1. Every test waits for done() (or for the dial to reach
 * a state), bounded by a guard timer; none waits for a sleep to pass. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <ev.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "loopback.h"
#include "net/tcp_dial.h"

static struct ev_loop *loop;

/* ---- addresses --------------------------------------------------------------------- */

static struct tcp_dial_addr
addr_of(int family, int port)
{
    struct tcp_dial_addr a;

    memset(&a, 0, sizeof(a));
    if (family == AF_INET6) {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)&a.ss;

        s->sin6_family = AF_INET6;
        s->sin6_addr = in6addr_loopback;
        s->sin6_port = htons((uint16_t)port);
        a.len = sizeof(*s);
    } else {
        struct sockaddr_in *s = (struct sockaddr_in *)&a.ss;

        s->sin_family = AF_INET;
        s->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        s->sin_port = htons((uint16_t)port);
        a.len = sizeof(*s);
    }
    return a;
}

static int
port_of(const struct tcp_dial_addr *a)
{
    return a->ss.ss_family == AF_INET6 ? ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port)
                                       : ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
}

/* A listening socket on the family's loopback address (ephemeral port in *port). */
static int
listen_on(int family, int backlog, int *port)
{
    struct tcp_dial_addr a = addr_of(family, 0);
    int                  fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0 || bind(fd, (struct sockaddr *)&a.ss, a.len) != 0 || listen(fd, backlog) != 0 ||
        getsockname(fd, (struct sockaddr *)&a.ss, &a.len) != 0) {
        perror("listen_on");
        exit(1);
    }
    *port = port_of(&a);
    return fd;
}

static int
open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int  n = 0;

    while (d != NULL && readdir(d) != NULL)
        n++;
    if (d != NULL)
        closedir(d);
    return n;
}

/* ---- the dial ---------------------------------------------------------------------- */

struct outcome {
    bool                   called;
    struct tcp_dial_result r;
    struct tcp_dial_addr   addr; /* *r.addr, copied */
    ev_tstamp              at;
};

static void
done_cb(void *owner, const struct tcp_dial_result *r)
{
    struct outcome *o = owner;

    o->called = true;
    o->r = *r;
    o->addr = *r->addr;
    o->at = ev_time();
    ev_break(loop, EVBREAK_ALL);
}

static void
guard_cb(struct ev_loop *l, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(l, EVBREAK_ALL);
}

/* Dial and run the loop until done() or guard seconds; *elapsed: start to done(). */
static void
dial(struct tcp_dial *d, const struct tcp_dial_addr *addrs, size_t n, double stagger,
     double guard, struct outcome *o, double *elapsed)
{
    ev_timer  g;
    ev_tstamp t0 = ev_time();

    memset(o, 0, sizeof(*o));
    tcp_dial_start(d, loop, addrs, n, stagger, done_cb, o);
    CHECK(!o->called); /* never before returning */
    ev_timer_init(&g, guard_cb, guard, 0.);
    ev_timer_start(loop, &g);
    ev_run(loop, 0);
    ev_timer_stop(loop, &g);
    *elapsed = o->called ? o->at - t0 : guard;
}

static void
a_refused_address_moves_on_to_the_next_at_once(void)
{
    struct tcp_dial      d;
    struct outcome       o;
    double               elapsed;
    int                  port, lfd = listen_on(AF_INET, 4, &port), afd;
    struct tcp_dial_addr addrs[3];

    addrs[0] = addr_of(AF_INET6, loopback_dead_port(AF_INET6)); /* Debian: ::1 first */
    addrs[1] = addr_of(AF_INET, loopback_dead_port(AF_INET));
    addrs[2] = addr_of(AF_INET, port);
    dial(&d, addrs, 3, 30, 5, &o, &elapsed); /* a 30 s stagger: only "at once" passes */
    CHECK(o.called);
    CHECK(o.r.fd >= 0);
    CHECK_EQ_INT(o.r.tried, 3);
    CHECK_EQ_INT(o.r.failed, 2);
    CHECK_EQ_INT(o.r.error, ECONNREFUSED);
    CHECK_EQ_INT(port_of(&o.addr), port);
    CHECK(elapsed < 2);
    afd = accept(lfd, NULL, NULL); /* the connection is really there */
    CHECK(afd >= 0);
    CHECK(write(o.r.fd, "x", 1) == 1);
    if (o.r.fd >= 0)
        close(o.r.fd);
    if (afd >= 0)
        close(afd);
    close(lfd);
}

static void
a_silent_address_is_overtaken_after_the_stagger_and_closed(void)
{
    struct tcp_dial      d;
    struct outcome       o;
    double               elapsed;
    int                  bport, filler, bfd = loopback_blackhole(&bport, &filler);
    int                  port, lfd = listen_on(AF_INET, 4, &port);
    int                  fds = open_fds();
    struct tcp_dial_addr addrs[2] = { addr_of(AF_INET, bport), addr_of(AF_INET, port) };

    dial(&d, addrs, 2, 0.05, 5, &o, &elapsed);
    CHECK(o.called);
    CHECK(o.r.fd >= 0);
    CHECK_EQ_INT(o.r.tried, 2);
    CHECK_EQ_INT(o.r.failed, 0);
    CHECK_EQ_INT(port_of(&o.addr), port);
    CHECK(elapsed >= 0.05 && elapsed < 2);
    if (o.r.fd >= 0)
        close(o.r.fd);
    CHECK_EQ_INT(open_fds(), fds); /* the attempt on the silent one was closed */
    close(lfd);
    close(filler);
    close(bfd);
}

static void
when_every_address_fails_done_gets_the_last_error_from_the_loop(void)
{
    struct tcp_dial      d;
    struct outcome       o;
    double               elapsed;
    int                  fds = open_fds();
    struct tcp_dial_addr addrs[2] = { addr_of(AF_INET, loopback_dead_port(AF_INET)),
                                      addr_of(AF_INET6, loopback_dead_port(AF_INET6)) };

    dial(&d, addrs, 2, 30, 5, &o, &elapsed);
    CHECK(o.called);
    CHECK_EQ_INT(o.r.fd, -1);
    CHECK_EQ_INT(o.r.error, ECONNREFUSED);
    CHECK_EQ_INT(o.r.tried, 2);
    CHECK_EQ_INT(o.r.failed, 2);
    CHECK_EQ_INT(o.addr.ss.ss_family, AF_INET6); /* the last one tried */
    CHECK(elapsed < 2);
    CHECK_EQ_INT(open_fds(), fds);
}

static void
stop_closes_every_attempt_and_done_never_runs(void)
{
    struct tcp_dial      d;
    struct outcome       o = { 0 };
    int                  bport, filler, bfd = loopback_blackhole(&bport, &filler);
    int                  fds = open_fds();
    struct tcp_dial_addr addrs[2] = { addr_of(AF_INET, bport), addr_of(AF_INET, bport) };
    ev_timer             g;

    tcp_dial_start(&d, loop, addrs, 2, 0.01, done_cb, &o);
    ev_timer_init(&g, guard_cb, 5, 0.);
    ev_timer_start(loop, &g);
    for (int i = 0; i < 1000 && d.n_open < 2 && ev_is_active(&g); i++)
        ev_run(loop, EVRUN_ONCE); /* the first attempt, then the stagger starts the second */
    ev_timer_stop(loop, &g);
    CHECK_EQ_INT(d.n_open, 2);
    CHECK_EQ_INT(open_fds(), fds + 2);
    tcp_dial_stop(&d);
    CHECK_EQ_INT(open_fds(), fds);
    ev_run(loop, EVRUN_NOWAIT);
    CHECK(!o.called);
    tcp_dial_stop(&d); /* twice is fine */
    close(filler);
    close(bfd);
}

static void
addresses_read_as_text(void)
{
    struct tcp_dial_addr a4 = addr_of(AF_INET, 1), a6 = addr_of(AF_INET6, 1);
    char                 buf[64];

    tcp_dial_addr_text(&a4, buf, sizeof(buf));
    CHECK(strcmp(buf, "127.0.0.1") == 0);
    tcp_dial_addr_text(&a6, buf, sizeof(buf));
    CHECK(strcmp(buf, "::1") == 0);
}

int
main(void)
{
    loop = ev_loop_new(EVFLAG_AUTO);
    RUN(a_refused_address_moves_on_to_the_next_at_once);
    RUN(a_silent_address_is_overtaken_after_the_stagger_and_closed);
    RUN(when_every_address_fails_done_gets_the_last_error_from_the_loop);
    RUN(stop_closes_every_attempt_and_done_never_runs);
    RUN(addresses_read_as_text);
    ev_loop_destroy(loop);
    return check_summary();
}
