/* core/cmd/cmd_run.c: `sluice run -c FILE`: load, bind, drop privileges, start workers and
 * the control socket, wait for signals. TERM/INT drain and exit 0; HUP reloads
 * (daemon_ctl.c). Exit codes in cmd.h. */
#include <errno.h>
#include <grp.h>
#include <malloc.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/audit.h"
#include "auth/authdb.h"
#include "cmd/cmd.h"
#include "config/config.h"
#include "config/config_access.h"
#include "daemon/control.h"
#include "daemon/control_ops.h"
#include "daemon/daemon_ctl.h"
#include "daemon/metrics.h"
#include "daemon/daemon_setup.h"
#include "daemon/generation.h"
#include "daemon/stats_labels.h"
#include "util/inflight.h"
#include "net/iplimit.h"
#include "net/listener.h"
#include "util/log.h"
#include "util/notify.h"
#include "util/offload.h"
#include "util/privfile.h"
#include "store/zone.h"
#include "daemon/worker.h"

#define CMD_RUN_MMAP_THRESHOLD (1024 * 1024) /* malloc: own mappings from here up */

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

/* Started as root: the audit log belongs to cfg->user, who reopens it on SIGHUP after
 * logrotate (as squid does with its logs). */
static int
cmd_run_audit_owner(const struct config *cfg, char *err, size_t errlen)
{
    struct passwd *pw;
    int            fd;

    if (geteuid() != 0 || cfg->audit_log == NULL)
        return 0;
    pw = getpwnam(cfg->user);
    if (pw == NULL) {
        snprintf(err, errlen, "user '%s' does not exist", cfg->user);
        return -1;
    }
    /* The descriptor, never the path: a symlink or hard link the service user planted
     * there is refused (privfile.h), so root cannot be made to chown another file. */
    fd = privfile_open(cfg->audit_log, PRIVFILE_APPEND);
    if (fd < 0 || fchown(fd, pw->pw_uid, pw->pw_gid) != 0) {
        snprintf(err, errlen, "%s: cannot give it to user '%s': %s", cfg->audit_log,
                 cfg->user, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
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

/* systemd (Type=notify, docs/deployment.md): a failed notification is logged, never
 * fatal: the service manager then times the start or reload out by itself. */
static void
cmd_run_notify(int rc, const char *err)
{
    if (rc != 0)
        log_msg(LOG_WARNING, "notify.fail", 0, "%s", err);
}

/* The main thread only waits for signals; workers run their loops. HUP reloads (the
 * control thread may reload too: daemon_ctl serialises them). */
static void
cmd_run_wait(struct daemon_ctl *ctl)
{
    sigset_t set;
    int      sig = 0;
    char     msg[1024];

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    for (;;) {
        if (sigwait(&set, &sig) != 0)
            continue;
        if (sig != SIGHUP)
            break;
        daemon_ctl_reload(ctl, msg, sizeof(msg));
    }
    cmd_run_notify(notify_stopping(msg, sizeof(msg)), msg);
    log_msg(LOG_NOTICE, "daemon.drain", 0, "signal %d: draining", sig);
    for (int i = 0; i < ctl->n_workers; i++)
        worker_drain(ctl->workers[i]);
    for (int i = 0; i < ctl->n_workers; i++)
        worker_join(ctl->workers[i]);
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

/* Everything the running daemon owns besides the listening sockets. */
struct cmd_run_state {
    struct daemon      d;
    struct worker    **workers;
    int                n, made, started;
    bool               config_failed; /* the first generation did not load */
    struct control    *control;
    struct metrics    *metrics;
    struct daemon_ctl  ctl;
};

/* What needs root: the control socket (in a directory only root may write to) and the
 * audit log's owner. */
static int
cmd_run_as_root(struct cmd_run_state *st, const struct config *cfg, char *err, size_t errlen)
{
    if (cfg->audit_log != NULL && cmd_run_audit_owner(cfg, err, errlen) != 0)
        return -1;
    if (cfg->control_socket != NULL &&
        (st->control = control_open(cfg->control_socket, err, errlen)) == NULL)
        return -1;
    if (cfg->metrics != NULL && (st->metrics = metrics_open(cfg->metrics, err, errlen)) == NULL)
        return -1;
    st->ctl.metrics = st->metrics; /* reloads hand it the certificate they read */
    return 0;
}

/* Made as the service user, files read through privfile.h: the first generation (its
 * policies, users and certificates), the shared dictionary, the audit writer and the
 * workers (each one's Lua state and upstream pool). */
static int
cmd_run_make(struct cmd_run_state *st, struct config *cfg, const struct listener_set *ls,
             char *err, size_t errlen)
{
    size_t *lindex = calloc(ls->n_per_worker + 1, sizeof(*lindex));

    if (lindex == NULL || st->workers == NULL) {
        config_free(cfg);
        goto out;
    }
    for (size_t i = 0; i < ls->n_per_worker; i++)
        lindex[i] = (size_t)(ls->cfgs[i] - cfg->listeners);
    st->d.gen = generation_new(cfg, 1, err, errlen); /* takes cfg */
    if (st->d.gen == NULL) {
        st->config_failed = true;
        goto out;
    }
    st->d.zones = zones_new(cfg, err, errlen);
    if (st->d.zones == NULL)
        goto out;
    if (stats_labels_init(&st->d.upstream_labels, CONTROL_MAX_UPSTREAMS) != 0 ||
        stats_labels_init(&st->d.domain_labels, CONTROL_MAX_DOMAINS) != 0) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    if (cfg->audit_log != NULL && (st->d.audit = audit_open(cfg->audit_log, err, errlen)) == NULL)
        goto out;
    while (st->made < st->n &&
           (st->workers[st->made] = worker_new(st->made, &st->d,
                                               &ls->fds[(size_t)st->made * ls->n_per_worker],
                                               lindex, ls->n_per_worker, err, errlen)) != NULL)
        st->made++;
out:
    free(lindex);
    return st->made == st->n && st->n > 0 ? 0 : -1;
}

/* As the unprivileged user: the thread pool, the workers, the control thread. */
static int
cmd_run_start(struct cmd_run_state *st, char *err, size_t errlen)
{
    const struct config *cfg = st->d.gen->parts.cfg;
    struct control_ops   ops = { .ctx = &st->ctl, .reload = daemon_ctl_reload_cb,
                                 .status = daemon_ctl_status_cb,
                                 .config_hold = daemon_ctl_config_hold_cb,
                                 .config_release = daemon_ctl_config_release_cb };

#ifdef M_MMAP_THRESHOLD
    /* Message buffers of 1 MiB and more get mappings of their own: realloc moves their
     * pages instead of copying them (never old and new at once), and free gives them
     * back at once. A fixed threshold also stops glibc raising it after each large
     * free, which would put the next large buffers in worker arenas that keep freed
     * memory resident (docs/security.md "Memory for messages"). */
    mallopt(M_MMAP_THRESHOLD, CMD_RUN_MMAP_THRESHOLD);
#endif
    st->d.offload = offload_new(st->n < 2 ? 2 : st->n, (unsigned)cfg->max_auth_jobs,
                                (unsigned)cfg->max_auth_jobs_per_client);
    st->d.iplimit = iplimit_new(cfg->max_connections, cfg->max_connections_per_ip);
    st->d.inflight = inflight_new(cfg->max_inflight_bytes, cfg->max_inflight_bytes_per_client);
    while (st->d.offload != NULL && st->d.iplimit != NULL && st->d.inflight != NULL &&
           st->started < st->n && worker_start(st->workers[st->started]) == 0)
        st->started++;
    if (st->started < st->n) {
        snprintf(err, errlen,
                 st->d.offload != NULL && st->d.iplimit != NULL && st->d.inflight != NULL
                     ? "cannot start worker threads" : "out of memory");
        return -1;
    }
    /* Read with the first generation's certificates; before the control thread, which
     * may reload (and replace st->d.gen) from its start on. */
    if (st->metrics != NULL && st->d.gen->parts.metrics_tls != NULL)
        metrics_set_tls(st->metrics, st->d.gen->parts.metrics_tls);
    if (st->control != NULL &&
        control_start(st->control, &ops, st->d.zones, st->d.audit) != 0) {
        snprintf(err, errlen, "cannot start the control thread");
        return -1;
    }
    if (st->metrics != NULL && metrics_start(st->metrics, &ops, st->d.zones, st->d.audit) != 0) {
        snprintf(err, errlen, "cannot start the metrics thread");
        return -1;
    }
    return 0;
}

static void
cmd_run_cleanup(struct cmd_run_state *st)
{
    control_free(st->control); /* first: a reload in progress finishes */
    metrics_free(st->metrics);
    for (int i = 0; i < st->started; i++)
        worker_drain(st->workers[i]);
    for (int i = 0; i < st->started; i++)
        worker_join(st->workers[i]);
    offload_free(st->d.offload); /* before the workers: a job in flight returns to one */
    for (int i = 0; i < st->made; i++)
        worker_free(st->workers[i]);
    daemon_ctl_cleanup(&st->ctl);
    iplimit_free(st->d.iplimit);
    inflight_free(st->d.inflight); /* after worker_free: every transaction has ended */
    audit_free(st->d.audit);
    zones_free(st->d.zones);
    generation_unref(st->d.gen);
    stats_labels_cleanup(&st->d.upstream_labels); /* after every reader and writer */
    stats_labels_cleanup(&st->d.domain_labels);
    free(st->workers);
}

/* cfg was loaded and the listeners bound as root; the rest runs as the service user. */
static int
cmd_run_serve(struct config *cfg, const char *path, struct listener_set *ls)
{
    struct cmd_run_state st = { .n = cfg->workers };
    struct generation   *first = NULL; /* holds a ref: a reload may replace st.d.gen */
    char                 err[1024] = "out of memory";
    int                  rc = EXIT_OSERR;

    st.workers = calloc((size_t)st.n, sizeof(*st.workers));
    daemon_ctl_init(&st.ctl, path, &st.d, st.workers, st.n);
    if (cmd_run_as_root(&st, cfg, err, sizeof(err)) != 0 ||
        cmd_run_drop_privileges(cfg, err, sizeof(err)) != 0) {
        config_free(cfg);
    } else if (cmd_run_make(&st, cfg, ls, err, sizeof(err)) == 0) {
        privfile_seal(); /* before the first connection is accepted */
        /* From cmd_run_start() on, st.d.gen is the control thread's too (a `ctl reload`
         * may come before daemon.ready): read it under st.ctl.mu or, as here, through a
         * reference taken before. */
        first = generation_ref(st.d.gen);
        if (cmd_run_start(&st, err, sizeof(err)) == 0)
            rc = 0;
    }
    if (rc == 0) {
        cmd_run_log_ready(first->parts.cfg, first->parts.authdb);
        /* The workers' loops run and the listeners were bound before: a connection made
         * from here on is accepted. */
        char status[64];

        snprintf(status, sizeof(status), "serving, generation %u", first->id);
        cmd_run_notify(notify_ready(status, err, sizeof(err)), err);
        generation_unref(first);
        first = NULL;
        cmd_run_wait(&st.ctl);
        st.started = 0; /* drained and joined */
    } else if (st.config_failed) {
        log_msg(LOG_ERR, "config.fail", 0, "%s", err);
        rc = EXIT_CONFIG;
    } else {
        log_msg(LOG_ERR, "daemon.fail", 0, "%s", err);
    }
    generation_unref(first);
    cmd_run_cleanup(&st);
    return rc;
}

/* Root only forks the privileged reader, reads the configuration (data: the sandboxed
 * state of config_source.c), binds, and gives the control socket and the audit log away;
 * policies, users files and certificates are loaded after the drop (privfile.h). */
int
cmd_run_main(int argc, char **argv)
{
    const char         *path;
    char               *real;
    struct config      *cfg;
    struct listener_set ls;
    char                err[1024];
    int                 rc;

    if (cmd_is_help(argc, argv)) {
        printf("usage: sluice run [-c FILE]   (default conf/sluice.lua)\n");
        return 0;
    }
    path = daemon_config_arg(argc, argv);
    if (path == NULL) {
        fprintf(stderr, "usage: sluice run [-c FILE]\n");
        return EXIT_USAGE;
    }
    if (geteuid() == 0 && privfile_start(err, sizeof(err)) != 0) {
        log_msg(LOG_ERR, "daemon.fail", 0, "%s", err);
        return EXIT_OSERR;
    }
    cfg = config_load(path, err, sizeof(err));
    if (cfg == NULL) {
        log_msg(LOG_ERR, "config.fail", 0, "%s", err);
        privfile_stop();
        return EXIT_CONFIG;
    }
    log_set_level(cfg->log_level);
    config_access_warn(cfg);
    if (listener_bind_all(cfg, cfg->workers, &ls, err, sizeof(err)) != 0) {
        log_msg(LOG_ERR, "daemon.fail", 0, "%s", err);
        listener_close_all(&ls);
        config_free(cfg);
        privfile_stop();
        return EXIT_OSERR;
    }
    cmd_run_block_signals();
    /* Reloads read the file the root start-up found, by a path that needs no search
     * permission on the directories above it: the service user's realpath() would fail
     * under root's 0700 home, and relative paths would resolve differently. */
    real = realpath(path, NULL);
    rc = cmd_run_serve(cfg, real != NULL ? real : path, &ls); /* takes cfg */
    free(real);
    listener_close_all(&ls);
    privfile_stop();
    log_msg(LOG_NOTICE, "daemon.stop", 0, "exit %d", rc);
    return rc;
}
