/* core/net/listener.h: listening sockets. Bound once in the main thread (before dropping
 * privileges, so 465 and 587 work), one SO_REUSEPORT socket per worker per address so
 * the kernel spreads connections without a shared accept lock. Accepting is done on the
 * owner's loop (a worker's); what a connection becomes is the owner's callback. */
#ifndef SLUICE_LISTENER_H
#define SLUICE_LISTENER_H

#include <ev.h>
#include <stddef.h>

#include "config/config.h"

struct listener_set {
    int                           *fds;   /* owns; [worker * n_per_worker + i] */
    const struct config_listener **cfgs;  /* borrows; [i] for i < n_per_worker */
    size_t                         n_per_worker;
    int                            n_workers;
};

/* Bind every address of every listener, once per worker. 0, or -1 with err. */
int  listener_bind_all(const struct config *cfg, int n_workers, struct listener_set *out,
                       char *err, size_t errlen);
void listener_close_all(struct listener_set *ls);

/* A new connection: fd (non-blocking, close-on-exec) is the callee's. index is the
 * listener's, as given to listener_init(). */
typedef void (*listener_accept_fn)(void *owner, size_t index, int fd);

/* One listening socket on one loop. */
struct listener {
    int                fd;        /* owns; -1 once stopped */
    size_t             index;     /* the owner's tag, passed to on_accept */
    ev_io              io;
    struct ev_loop    *loop;      /* borrows */
    listener_accept_fn on_accept;
    void              *owner;     /* borrows */
};

/* Take fd (bound and listening, from listener_bind_all()) with the owner's index. */
void listener_init(struct listener *l, int fd, size_t index);
/* Start accepting on loop: every connection goes to on_accept(owner, index, fd), up to 64
 * per wake-up. Out of descriptors, accepting pauses for a moment (listener.error). */
void listener_start(struct listener *l, struct ev_loop *loop, listener_accept_fn on_accept,
                    void *owner);
/* Stop accepting and close the socket. Again, or never started: fine. */
void listener_stop(struct listener *l);

#endif
