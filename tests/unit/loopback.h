/* tests/unit/loopback.h: loopback addresses that fail in the ways a client must get
 * past: a port that refuses, a listener that never answers, and [::1] refusing beside a
 * server on 127.0.0.1 (Debian's localhost). Only 127.0.0.1 and ::1 are ever used. */
#ifndef SLUICE_TEST_LOOPBACK_H
#define SLUICE_TEST_LOOPBACK_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

/* A port on 127.0.0.1 (AF_INET) or ::1 (AF_INET6) where nothing listens: bound, then
 * closed, so a connect there is refused. */
static inline int
loopback_dead_port(int family)
{
    struct sockaddr_storage ss = { .ss_family = (sa_family_t)family };
    socklen_t               sl = family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                    : sizeof(struct sockaddr_in);
    int                     fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0), port;

    if (family == AF_INET6)
        ((struct sockaddr_in6 *)&ss)->sin6_addr = in6addr_loopback;
    else
        ((struct sockaddr_in *)&ss)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&ss, sl) != 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
        perror("loopback_dead_port");
        exit(1);
    }
    port = ntohs(((struct sockaddr_in *)&ss)->sin_port); /* same offset in sockaddr_in6 */
    close(fd);
    return port;
}

/* A listener on 127.0.0.1 that never answers: backlog 0 and its one slot taken by
 * *filler, so the kernel drops every further SYN and a connect stays in progress, as
 * with a host that drops them. Close *filler and the result afterwards. */
static inline int
loopback_blackhole(int *port, int *filler)
{
    struct sockaddr_in sin = { .sin_family = AF_INET };
    socklen_t          sl = sizeof(sin);
    int                fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 || listen(fd, 0) != 0 ||
        getsockname(fd, (struct sockaddr *)&sin, &sl) != 0) {
        perror("loopback_blackhole");
        exit(1);
    }
    *port = ntohs(sin.sin_port);
    *filler = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (*filler < 0 || connect(*filler, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
        perror("loopback_blackhole: filler");
        exit(1);
    }
    return fd;
}

/* Bind [::1]:port without listening, so that a connect there is refused and nothing
 * else can listen there meanwhile: the dead ::1 of a name that has 127.0.0.1 too. The
 * socket to close afterwards, or -1 without IPv6 (where a connect to ::1 fails at once
 * all the same). */
static inline int
loopback_refusing_v6(int port)
{
    struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
    int                 fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);

    sin6.sin6_port = htons((uint16_t)port);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sin6, sizeof(sin6)) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

#endif
