/* core/worker.h: one thread: a libev loop, its listening sockets (SO_REUSEPORT, one per
 * worker per address), its sessions, its upstream pool, its offload return queue.
 * Nothing here is shared with other workers except through struct daemon, whose
 * mutable parts say how they are synchronised. */
#ifndef SLUICE_WORKER_H
#define SLUICE_WORKER_H

#include <ev.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"

struct authdb;
struct offload;
struct offload_return;
struct tls_server;
struct upstream_pool;
struct smtp_session;
struct iplimit;
struct shdict;
struct policy_vm;

/* What all workers share. Read-only after start-up except where noted. */
struct daemon {
    const struct config *cfg;      /* borrows */
    struct tls_server   *tls;      /* borrows */
    struct authdb       *authdb;   /* borrows */
    struct offload      *offload;  /* borrows */
    struct iplimit      *iplimit;  /* borrows; internally locked */
    struct shdict       *shdict;   /* borrows; sluice.shdict, internally locked (sharded) */
    int                  exit_code;
};

struct worker_listener {
    int                           fd;   /* owns */
    const struct config_listener *cfg;  /* borrows */
    ev_io                         io;
    struct worker                *worker;
};

struct worker {
    int                     index;
    struct daemon          *daemon;   /* borrows */
    struct ev_loop         *loop;     /* owns */
    pthread_t               thread;
    struct worker_listener *listeners; /* owns */
    size_t                  n_listeners;
    struct upstream_pool   *pool;     /* owns */
    struct offload_return  *offload_ret; /* owns */
    struct policy_vm       *vm;       /* owns; the policies, used by this thread only */
    struct smtp_session    *sessions; /* owns the list (linked through session->next) */
    size_t                  n_sessions;
    uint64_t                sid_state; /* session id generator (xorshift) */
    bool                    draining;
    ev_async                wake;     /* another thread asks: drain */
    ev_timer                drain_timer;
    _Atomic int             drain_requested;
};

/* Create a worker with the given pre-bound listening fds (dup'ed per worker by the
 * caller; the worker owns them). Returns NULL and a reason in err. */
struct worker *worker_new(int index, struct daemon *d, const int *fds,
                          const struct config_listener *const *lcfgs, size_t n,
                          char *err, size_t errlen);
int  worker_start(struct worker *w);  /* spawn the thread */
void worker_drain(struct worker *w);  /* thread-safe: stop accepting, finish, exit */
void worker_join(struct worker *w);
void worker_free(struct worker *w);

uint64_t worker_next_sid(struct worker *w);

/* A session began (smtp_session_new) or ended (smtp_session_free): link, unlink. */
void worker_session_add(struct worker *w, struct smtp_session *s);
void worker_session_gone(struct worker *w, struct smtp_session *s);

#endif
