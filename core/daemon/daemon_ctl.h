/* core/daemon/daemon_ctl.h: what SIGHUP and the control socket ask of the running daemon:
 * reload (a new generation for every worker, or nothing at all) and status. Reloads
 * are serialised by a mutex: SIGHUP arrives on the main thread, `sluice ctl reload` on
 * the control thread. */
#ifndef SLUICE_DAEMON_CTL_H
#define SLUICE_DAEMON_CTL_H

#include <pthread.h>
#include <stddef.h>

struct config;
struct control_status;
struct daemon;
struct metrics;
struct worker;

struct daemon_ctl {
    const char     *path;      /* borrows; the configuration file, read again on reload */
    struct daemon  *d;         /* borrows; d->gen is the current generation (under mu) */
    struct worker **workers;   /* borrows */
    int             n_workers;
    struct metrics *metrics;   /* borrows, or NULL; set before the first reload: each
                                * successful one gives it the TLS context it read */
    double          started;   /* wall clock */
    pthread_mutex_t mu;        /* one reload at a time; guards the fields below and d->gen */
    unsigned        reloads_ok, reloads_failed;
    char            last_error[512];
};

void daemon_ctl_init(struct daemon_ctl *c, const char *path, struct daemon *d,
                     struct worker **workers, int n_workers);
void daemon_ctl_cleanup(struct daemon_ctl *c);

/* Load the configuration, policies, user files and certificates afresh and give every
 * worker the new generation; on any error nothing changes. 0 and "generation N" in msg,
 * or -1 and the error in msg. Either way the audit log is reopened (logrotate). Logs
 * reload.ok or reload.fail. Any thread; blocks while loading. */
int daemon_ctl_reload(struct daemon_ctl *c, char *msg, size_t msglen);

/* Current generation, counters summed over the workers. Any thread. */
void daemon_ctl_status(struct daemon_ctl *c, struct control_status *st);

/* control_ops callbacks over a struct daemon_ctl (ctx). */
int  daemon_ctl_reload_cb(void *ctx, char *msg, size_t msglen);
void daemon_ctl_status_cb(void *ctx, struct control_status *st);
/* The current generation's configuration, held (*ref) until the release. */
const struct config *daemon_ctl_config_hold_cb(void *ctx, void **ref);
void                 daemon_ctl_config_release_cb(void *ctx, void *ref);

#endif
