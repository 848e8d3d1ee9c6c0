/* core/config/config_access.c: open a configuration's files as its service user, in a
 * child, and report the ones that fail (config_access.h). Decides nothing: callers warn. */
#include "config/config_access.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/log.h"

/* The users files authdb.c loads: DOMAIN.txt in users_dir. */
static bool
config_access_is_users_file(const char *name)
{
    size_t n = strlen(name);

    return name[0] != '.' && n > 4 && strcmp(name + n - 4, ".txt") == 0;
}

/* paths[]: cfg->files, then users_dir and its users files; keys[] alike (borrowed or
 * owned in owned[]). -1 when out of memory. */
struct config_access_list {
    const char **paths;
    const char **keys;
    char       **owned; /* owns; the users files' paths */
    size_t       n, n_owned;
};

static int
config_access_add(struct config_access_list *l, const char *key, const char *path)
{
    const char **p = realloc(l->paths, (l->n + 1) * sizeof(*p));

    if (p == NULL)
        return -1;
    l->paths = p;
    p = realloc(l->keys, (l->n + 1) * sizeof(*p));
    if (p == NULL)
        return -1;
    l->keys = p;
    l->paths[l->n] = path;
    l->keys[l->n++] = key;
    return 0;
}

static int
config_access_list(const struct config *cfg, struct config_access_list *l)
{
    DIR           *d;
    struct dirent *e;
    char          *path, **owned;
    size_t         i;
    int            rc = 0;

    for (i = 0; i < cfg->n_files; i++) {
        if (config_access_add(l, cfg->files[i].key, cfg->files[i].path) != 0)
            return -1;
    }
    if (cfg->users_dir == NULL || config_access_add(l, "users_dir", cfg->users_dir) != 0)
        return cfg->users_dir == NULL ? 0 : -1;
    d = opendir(cfg->users_dir); /* as root: the files start-up loads */
    while (d != NULL && rc == 0 && (e = readdir(d)) != NULL) {
        if (!config_access_is_users_file(e->d_name))
            continue;
        owned = realloc(l->owned, (l->n_owned + 1) * sizeof(*owned));
        if (owned == NULL || asprintf(&path, "%s/%s", cfg->users_dir, e->d_name) < 0) {
            if (owned != NULL)
                l->owned = owned;
            rc = -1;
            break;
        }
        l->owned = owned;
        l->owned[l->n_owned++] = path;
        rc = config_access_add(l, "users_dir", path);
    }
    if (d != NULL)
        closedir(d);
    return rc;
}

/* The child: become pw, open each path, write each errno (0: it opened) to fd. */
static void __attribute__((noreturn))
config_access_child(const struct passwd *pw, const struct config_access_list *l, int fd)
{
    size_t i;
    int    e, f;

    if (initgroups(pw->pw_name, pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 ||
        setuid(pw->pw_uid) != 0)
        _exit(2);
    for (i = 0; i < l->n; i++) {
        /* O_NONBLOCK: a FIFO must not hang the check (the reader refuses one anyway) */
        f = open(l->paths[i], O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
        e = f < 0 ? errno : 0;
        if (f >= 0)
            close(f);
        if (write(fd, &e, sizeof(e)) != (ssize_t)sizeof(e))
            _exit(3);
    }
    _exit(0);
}

static int
config_access_run(const struct passwd *pw, const struct config_access_list *l,
                  config_access_fn *fn, void *arg, char *err, size_t errlen)
{
    int    fds[2], e, status = 0;
    size_t i;
    pid_t  pid;
    bool   ok = true;

    if (pipe2(fds, O_CLOEXEC) != 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        return -1;
    }
    pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "fork: %s", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        close(fds[0]);
        config_access_child(pw, l, fds[1]);
    }
    close(fds[1]);
    for (i = 0; i < l->n && ok; i++) {
        ok = read(fds[0], &e, sizeof(e)) == (ssize_t)sizeof(e);
        if (ok && e != 0)
            fn(arg, l->keys[i], l->paths[i], strerror(e));
    }
    close(fds[0]);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (!ok || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        snprintf(err, errlen, "checking files as user '%s' failed (status %d)", pw->pw_name,
                 status);
        return -1;
    }
    return 0;
}

static void
config_access_log(void *arg, const char *key, const char *path, const char *reason)
{
    struct logline l;

    /* A notice, not a warning: a root-only key is the recommended set-up and works (the
     * reader serves it); what the line is for is the day the file moves. */
    log_begin(&l, LOG_NOTICE, "config.unreadable", 0);
    log_str(&l, "key", key);
    log_str(&l, "path", path);
    log_str(&l, "user", arg);
    log_str(&l, "error", reason);
    log_str(&l, "msg", "read through the privileged reader of a daemon started as root: "
                       "works at start and on every reload while the file stays in a "
                       "directory start-up read from; a reload that finds it elsewhere, or "
                       "a start without root, fails. Nothing to do for a key meant to be "
                       "root's alone; otherwise make it root:USER mode 0640");
    log_end(&l);
}

void
config_access_warn(const struct config *cfg)
{
    char err[256];

    if (config_access_check(cfg, config_access_log, cfg->user, err, sizeof(err)) != 0)
        log_msg(LOG_WARNING, "config.unreadable", 0, "%s", err);
}

int
config_access_check(const struct config *cfg, config_access_fn *fn, void *arg, char *err,
                    size_t errlen)
{
    struct config_access_list l = {0};
    struct passwd            *pw;
    size_t                    i;
    int                       rc = -1;

    if (geteuid() != 0 || cfg->user == NULL)
        return 0;
    pw = getpwnam(cfg->user);
    if (pw == NULL) {
        snprintf(err, errlen, "no user '%s'", cfg->user);
        return -1;
    }
    if (config_access_list(cfg, &l) != 0)
        snprintf(err, errlen, "out of memory");
    else
        rc = config_access_run(pw, &l, fn, arg, err, errlen);
    for (i = 0; i < l.n_owned; i++)
        free(l.owned[i]);
    free(l.owned);
    free(l.paths);
    free(l.keys);
    return rc;
}
