/* core/daemon/listener.c: bind, listen, accept; see listener.h. */
#include "daemon/listener.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/log.h"
#include "smtp/smtp_session.h"
#include "daemon/worker.h"
#include "daemon/worker_gen.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))
#define LISTENER_BACKLOG 1024
#define LISTENER_PAUSE   0.1 /* seconds without accept() when out of descriptors */

/* SO_REUSEPORT lets any process of the same user join a port, so a second sluice would
 * silently share it. A socket without SO_REUSEPORT cannot bind a port someone listens
 * on: bind one first, as a probe, and fail like a non-reuseport daemon would. */
static int
listener_probe(const struct addrinfo *ai, const char *addr, int port, char *err,
               size_t errlen)
{
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1, rc = 0;

    if (fd < 0)
        return 0; /* the real bind reports it */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ai->ai_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        snprintf(err, errlen, "listen %s port %d: %s", addr, port, strerror(errno));
        rc = -1;
    }
    close(fd);
    return rc;
}

static int
listener_bind_one(const char *addr, int port, bool probe, char *err, size_t errlen)
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE };
    struct addrinfo *ai;
    char             portstr[8];
    int              fd, one = 1, rc;

    snprintf(portstr, sizeof(portstr), "%d", port);
    rc = getaddrinfo(addr, portstr, &hints, &ai);
    if (rc != 0) {
        snprintf(err, errlen, "listen %s port %d: %s", addr, port, gai_strerror(rc));
        return -1;
    }
    if (probe && listener_probe(ai, addr, port, err, errlen) != 0) {
        freeaddrinfo(ai);
        return -1;
    }
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
        if (ai->ai_family == AF_INET6)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, LISTENER_BACKLOG) != 0) {
            snprintf(err, errlen, "listen %s port %d: %s", addr, port, strerror(errno));
            close(fd);
            fd = -1;
        }
    } else {
        snprintf(err, errlen, "socket: %s", strerror(errno));
    }
    freeaddrinfo(ai);
    return fd;
}

/* '*' means every IPv4 and IPv6 address. */
static size_t
listener_expand(const struct config_listener *l, const char **out, size_t max)
{
    size_t n = 0;

    for (char **a = l->addresses; *a != NULL && n + 2 <= max; a++) {
        if (strcmp(*a, "*") == 0) {
            out[n++] = "0.0.0.0";
            out[n++] = "::";
        } else {
            out[n++] = *a;
        }
    }
    return n;
}

int
listener_bind_all(const struct config *cfg, int n_workers, struct listener_set *out,
                  char *err, size_t errlen)
{
    const char *addrs[64];
    size_t      total = 0, k = 0;

    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < cfg->n_listeners; i++)
        total += listener_expand(&cfg->listeners[i], addrs, 64);
    out->fds = calloc(total * (size_t)n_workers, sizeof(int));
    out->cfgs = calloc(total, sizeof(*out->cfgs));
    if (out->fds == NULL || out->cfgs == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    out->n_per_worker = total;
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        size_t n = listener_expand(&cfg->listeners[i], addrs, 64);

        for (size_t j = 0; j < n; j++, k++) {
            out->cfgs[k] = &cfg->listeners[i];
            for (int w = 0; w < n_workers; w++) {
                int fd = listener_bind_one(addrs[j], cfg->listeners[i].port, w == 0,
                                           err, errlen);

                if (fd < 0)
                    return -1;
                out->fds[(size_t)w * total + k] = fd;
                out->n_workers = w + 1 > out->n_workers ? w + 1 : out->n_workers;
            }
        }
    }
    out->n_workers = n_workers;
    return 0;
}

void
listener_close_all(struct listener_set *ls)
{
    free(ls->fds); /* the workers own and close the fds */
    free(ls->cfgs);
    memset(ls, 0, sizeof(*ls));
}

static void
listener_resume_cb(int revents, void *arg)
{
    struct worker_listener *wl = arg;

    (void)revents;
    if (wl->fd >= 0) /* listener_stop() (drain) did not come meanwhile */
        ev_io_start(wl->worker->loop, &wl->io);
}

static void
listener_accept_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct worker_listener *wl = container_of(io, struct worker_listener, io);

    (void)revents;
    for (int i = 0; i < 64; i++) { /* bounded: other listeners get their turn */
        int fd = accept4(wl->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd < 0 && (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
                       errno == ENOMEM)) {
            /* The connection stays queued and the socket readable: retrying at once
             * would spin the loop, and the log, until a descriptor is free again. */
            log_msg(LOG_WARNING, "listener.error", 0, "accept: %s; pausing", strerror(errno));
            ev_io_stop(loop, &wl->io);
            ev_once(loop, -1, 0, LISTENER_PAUSE, listener_resume_cb, wl);
            return;
        }
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
                errno != ECONNABORTED)
                log_msg(LOG_WARNING, "listener.error", 0, "accept: %s", strerror(errno));
            return;
        }
        smtp_session_new(&wl->worker->server, &wl->worker->gen->cfg->listeners[wl->index], fd);
    }
}

void
listener_start(struct worker *w)
{
    for (size_t i = 0; i < w->n_listeners; i++) {
        struct worker_listener *wl = &w->listeners[i];

        wl->worker = w;
        ev_io_init(&wl->io, listener_accept_cb, wl->fd, EV_READ);
        ev_io_start(w->loop, &wl->io);
    }
}

void
listener_stop(struct worker *w)
{
    for (size_t i = 0; i < w->n_listeners; i++) {
        if (w->listeners[i].fd >= 0) {
            ev_io_stop(w->loop, &w->listeners[i].io);
            close(w->listeners[i].fd);
            w->listeners[i].fd = -1;
        }
    }
}
