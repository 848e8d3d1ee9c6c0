/* core/daemon/listener.h: listening sockets. Bound once in the main thread (before dropping
 * privileges, so 465 and 587 work), one SO_REUSEPORT socket per worker per address so
 * the kernel spreads connections without a shared accept lock. */
#ifndef SLUICE_LISTENER_H
#define SLUICE_LISTENER_H

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

struct worker;
/* Start accepting on the worker's listening fds (worker.c calls this). */
void listener_start(struct worker *w);
void listener_stop(struct worker *w);

#endif
