/* core/cmd_run.c: `sluice run -c FILE`: load, bind, drop privileges, start workers,
 * wait for signals. TERM/INT drain and exit 0; HUP is logged (reload arrives with the
 * Lua engine). Exit codes in cmd.h. */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "authdb.h"
#include "cmd.h"
#include "config.h"
#include "daemon_setup.h"
#include "iplimit.h"
#include "listener.h"
#include "log.h"
#include "offload.h"
#include "shdict.h"
#include "worker.h"

#define CMD_RUN_SHDICT_SHARDS 64 /* sluice.shdict: one mutex each */

/* Started as root: bound the listeners, loaded the keys; now become cfg->user for good. */
static int
cmd_run_drop_privileges(const struct config *cfg, char *err, size_t errlen)
{
    struct passwd *pw;

    if (geteuid() != 0)
        return 0;
    pw = getpwnam(cfg->user);
    if (pw == NULL) {
        snprintf(err, errlen, "user '%s' does not exist", cfg->user);
        return -1;
    }
    if (setgroups(0, NULL) != 0 || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0) {
        snprintf(err, errlen, "cannot become user '%s': %s", cfg->user, strerror(errno));
        return -1;
    }
    if (setuid(0) == 0) { /* must be impossible now */
        snprintf(err, errlen, "privileges were not dropped");
        return -1;
    }
    return 0;
}

static void
cmd_run_log_ready(const struct config *cfg, const struct authdb *db)
{
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        const struct config_listener *l = &cfg->listeners[i];
        struct logline                lg;
        char                          addrs[512] = "";
        size_t                        n = 0;

        for (char **a = l->addresses; *a && n < sizeof(addrs); a++)
            n += (size_t)snprintf(addrs + n, sizeof(addrs) - n, "%s%s", n ? "," : "", *a);
        log_begin(&lg, LOG_NOTICE, "listener.ready", 0);
        log_str(&lg, "name", l->name);
        log_str(&lg, "addresses", addrs);
        log_int(&lg, "port", l->port);
        log_str(&lg, "tls", l->tls == CONFIG_TLS_IMPLICIT ? "implicit"
                            : l->tls == CONFIG_TLS_STARTTLS ? "starttls" : "none");
        log_end(&lg);
    }
    log_msg(LOG_NOTICE, "daemon.ready", 0, "pid %d, %d workers, %zu users, config %s",
            (int)getpid(), cfg->workers, authdb_count(db), cfg->path);
}

/* The main thread only waits for signals; workers run their loops. */
static void
cmd_run_wait(struct worker **workers, int n)
{
    sigset_t set;
    int      sig = 0;

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    for (;;) {
        if (sigwait(&set, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            log_msg(LOG_NOTICE, "reload.skip", 0, "reload is not supported yet; restart");
            continue;
        }
        break;
    }
    log_msg(LOG_NOTICE, "daemon.drain", 0, "signal %d: draining", sig);
    for (int i = 0; i < n; i++)
        worker_drain(workers[i]);
    for (int i = 0; i < n; i++)
        worker_join(workers[i]);
}

static void
cmd_run_block_signals(void)
{
    sigset_t set;

    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* inherited by every worker thread */
}

/* The workers are made while still root, like the listeners and the keys: each one's
 * upstream pool loads its CA files, which the unprivileged user may not be able to
 * read. Privileges are dropped before any thread starts. */
static int
cmd_run_serve(struct daemon_parts *p, struct listener_set *ls)
{
    struct daemon   d = { .cfg = p->cfg, .tls = p->tls, .authdb = p->authdb };
    int             n = p->cfg->workers, made = 0, started = 0;
    struct worker **workers = calloc((size_t)n, sizeof(*workers));
    char            err[512] = "out of memory";
    int             rc = EXIT_OSERR;

    d.shdict = shdict_new(p->cfg->shdict_size, CMD_RUN_SHDICT_SHARDS, err, sizeof(err));
    while (workers != NULL && d.shdict != NULL && made < n &&
           (workers[made] = worker_new(made, &d, &ls->fds[(size_t)made * ls->n_per_worker],
                                       ls->cfgs, ls->n_per_worker, err, sizeof(err))) != NULL)
        made++;
    if (workers != NULL && made == n && cmd_run_drop_privileges(p->cfg, err, sizeof(err)) == 0) {
        d.offload = offload_new(n < 2 ? 2 : n);
        d.iplimit = iplimit_new(p->cfg->max_connections, p->cfg->max_connections_per_ip);
        while (d.offload != NULL && d.iplimit != NULL && started < n &&
               worker_start(workers[started]) == 0)
            started++;
        if (started == n)
            rc = 0;
        else if (d.offload != NULL && d.iplimit != NULL)
            snprintf(err, sizeof(err), "cannot start worker threads");
    }
    if (rc == 0) {
        cmd_run_log_ready(p->cfg, p->authdb);
        cmd_run_wait(workers, n);
    } else {
        log_msg(LOG_ERR, "daemon.fail", 0, "%s", err);
        for (int i = 0; i < started; i++)
            worker_drain(workers[i]);
        for (int i = 0; i < started; i++)
            worker_join(workers[i]);
    }
    for (int i = 0; i < made; i++)
        worker_free(workers[i]);
    offload_free(d.offload);
    iplimit_free(d.iplimit);
    shdict_free(d.shdict);
    free(workers);
    return rc;
}

int
cmd_run_main(int argc, char **argv)
{
    const char         *path = daemon_config_arg(argc, argv);
    struct daemon_parts p;
    struct listener_set ls;
    char                err[1024];
    int                 rc;

    if (path == NULL) {
        fprintf(stderr, "usage: sluice run [-c FILE]\n");
        return EXIT_USAGE;
    }
    if (daemon_parts_load(path, &p, err, sizeof(err)) != 0) {
        log_msg(LOG_ERR, "config.fail", 0, "%s", err);
        return EXIT_CONFIG;
    }
    log_set_level(p.cfg->log_level);
    if (listener_bind_all(p.cfg, p.cfg->workers, &ls, err, sizeof(err)) != 0) {
        log_msg(LOG_ERR, "daemon.fail", 0, "%s", err);
        listener_close_all(&ls);
        daemon_parts_free(&p);
        return EXIT_OSERR;
    }
    cmd_run_block_signals();
    rc = cmd_run_serve(&p, &ls);
    listener_close_all(&ls);
    log_msg(LOG_NOTICE, "daemon.stop", 0, "exit %d", rc);
    daemon_parts_free(&p);
    return rc;
}
