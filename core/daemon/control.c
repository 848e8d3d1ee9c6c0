/* core/daemon/control.c: the control socket (control.h, docs/ctl.md): binding it safely, the
 * serving thread, who may talk (SO_PEERCRED), reading one bounded request line against a
 * deadline and writing the reply. What each request does and the JSON it answers is
 * control_cmd.c's; the daemon's status and reload are the caller's control_ops.
 *
 * The thread does blocking work only in ops->reload; every socket is non-blocking and
 * every wait is a poll(2) that also watches the stop pipe, so control_free() never waits
 * for a client. */
#include "daemon/control.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "daemon/control_cmd.h"
#include "util/fdwait.h"
#include "util/log.h"

#define CONTROL_BACKLOG 16

struct control {
    char              *path;    /* owns */
    int                fd;      /* owns; listening, non-blocking */
    int                stop[2]; /* owns; control_free() writes a byte to stop[1] */
    dev_t              dev;     /* the socket file bind(2) made: unlink only that one */
    ino_t              ino;
    pthread_t          thread;
    bool               started;
    struct control_env env;     /* what requests run against (control_cmd.h) */
};

/* ---- opening ------------------------------------------------------------------------ */

static int
control_addr(const char *path, struct sockaddr_un *sa, char *err, size_t errlen)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    if (path[0] == '\0' || strlen(path) >= sizeof(sa->sun_path)) {
        snprintf(err, errlen, "control socket '%s': path empty or too long for a unix socket",
                 path);
        return -1;
    }
    memcpy(sa->sun_path, path, strlen(path) + 1);
    return 0;
}

/* Whatever is at path must go only if it is a socket nobody answers on. */
static int
control_clear_stale(const char *path, const struct sockaddr_un *sa, char *err, size_t errlen)
{
    struct stat st;
    int         fd, rc, e;

    if (lstat(path, &st) != 0) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "control socket %s: %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen, "control socket %s: exists and is not a socket", path);
        return -1;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        snprintf(err, errlen, "control socket %s: socket: %s", path, strerror(errno));
        return -1;
    }
    rc = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
    e = errno;
    close(fd);
    if (rc == 0 || e == EAGAIN) { /* EAGAIN: alive, its backlog is full */
        snprintf(err, errlen, "another sluice is running on %s", path);
        return -1;
    }
    if (e != ECONNREFUSED) {
        snprintf(err, errlen, "control socket %s: cannot tell whether it is in use: %s", path,
                 strerror(e));
        return -1;
    }
    if (unlink(path) != 0 && errno != ENOENT) {
        snprintf(err, errlen, "control socket %s: cannot remove the stale socket: %s", path,
                 strerror(errno));
        return -1;
    }
    log_msg(LOG_NOTICE, "control.stale", 0, "removed the stale socket %s", path);
    return 0;
}

static int
control_bind(struct control *c, const struct sockaddr_un *sa, char *err, size_t errlen)
{
    struct stat st;
    mode_t      old;
    int         rc, e;

    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (c->fd < 0) {
        snprintf(err, errlen, "control socket %s: socket: %s", c->path, strerror(errno));
        return -1;
    }
    old = umask(0177); /* the file is made 0600 from the start: no window to connect in */
    rc = bind(c->fd, (const struct sockaddr *)sa, sizeof(*sa));
    e = errno;
    umask(old);
    if (rc != 0) {
        snprintf(err, errlen, "control socket %s: cannot bind: %s%s", c->path, strerror(e),
                 e == ENOENT ? " (its directory must exist)" : "");
        return -1;
    }
    if (lstat(c->path, &st) != 0 || listen(c->fd, CONTROL_BACKLOG) != 0) {
        snprintf(err, errlen, "control socket %s: %s", c->path, strerror(errno));
        unlink(c->path);
        return -1;
    }
    c->dev = st.st_dev;
    c->ino = st.st_ino;
    return 0;
}

struct control *
control_open(const char *path, char *err, size_t errlen)
{
    struct control    *c = calloc(1, sizeof(*c));
    struct sockaddr_un sa;

    if (c == NULL || (c->path = strdup(path)) == NULL) {
        snprintf(err, errlen, "control socket %s: out of memory", path);
        free(c);
        return NULL;
    }
    c->fd = c->stop[0] = c->stop[1] = -1;
    if (control_addr(path, &sa, err, errlen) != 0 ||
        control_clear_stale(path, &sa, err, errlen) != 0)
        goto fail;
    if (pipe2(c->stop, O_CLOEXEC | O_NONBLOCK) != 0) {
        snprintf(err, errlen, "control socket %s: pipe: %s", path, strerror(errno));
        goto fail;
    }
    if (control_bind(c, &sa, err, errlen) != 0)
        goto fail;
    return c;
fail:
    if (c->fd >= 0)
        close(c->fd);
    if (c->stop[0] >= 0) {
        close(c->stop[0]);
        close(c->stop[1]);
    }
    free(c->path);
    free(c);
    return NULL;
}

/* ---- one connection --------------------------------------------------------------- */

enum control_read {
    CONTROL_READ_LINE,     /* line[0..*len) without the LF (or everything before EOF) */
    CONTROL_READ_NOTHING,  /* closed, or failed, before sending a byte */
    CONTROL_READ_TIMEOUT,  /* no complete line within CONTROL_TIMEOUT */
    CONTROL_READ_TOO_LONG, /* CONTROL_MAX_REQUEST octets without a LF */
    CONTROL_READ_STOP,
};

/* One request line, LF-terminated; a client that closes after its line without a LF
 * gets it read too. Octets after the LF are ignored. */
static enum control_read
control_read_line(const struct control *c, int fd, char *line, size_t *len)
{
    double  deadline = fdwait_clock() + CONTROL_TIMEOUT;
    char   *lf;
    ssize_t n;

    *len = 0;
    for (;;) {
        n = recv(fd, line + *len, CONTROL_MAX_REQUEST - *len, 0);
        if (n > 0) {
            lf = memchr(line + *len, '\n', (size_t)n);
            *len += (size_t)n;
            if (lf != NULL) {
                *len = (size_t)(lf - line);
                return CONTROL_READ_LINE;
            }
            if (*len == CONTROL_MAX_REQUEST)
                return CONTROL_READ_TOO_LONG;
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EINTR))
            return *len > 0 && n == 0 ? CONTROL_READ_LINE : CONTROL_READ_NOTHING;
        if (errno == EINTR)
            continue;
        switch (fdwait(c->stop[0], fd, POLLIN, deadline)) {
        case FDWAIT_READY: break;
        case FDWAIT_TIMEOUT: return CONTROL_READ_TIMEOUT;
        case FDWAIT_STOP: return CONTROL_READ_STOP;
        }
    }
}

/* The reply, within CONTROL_TIMEOUT: a client that does not read loses it. */
static void
control_write(const struct control *c, int fd, const char *p, size_t len)
{
    fdwait_send_all(c->stop[0], fd, p, len, fdwait_clock() + CONTROL_TIMEOUT);
}

static void
control_log(const struct control_request *rq, const struct ucred *peer, bool ok,
            const char *error)
{
    struct logline l;

    log_begin(&l, ok ? rq->log_level : LOG_WARNING, "control.command", 0);
    log_str(&l, "command", rq->command);
    if (rq->name != NULL)
        log_strn(&l, "name", rq->name, rq->name_len);
    log_int(&l, "uid", (long long)peer->uid);
    log_int(&l, "pid", (long long)peer->pid);
    log_bool(&l, "ok", ok);
    if (!ok)
        log_str(&l, "error", error);
    log_end(&l);
}

/* Answer a request that never reached a command (refused peer, bad line) with an error. */
static void
control_refuse(const struct control *c, int fd, const struct ucred *peer, const char *command,
               const char *error)
{
    struct control_request rq = {.command = command, .log_level = LOG_WARNING};
    struct control_out     out = {0};

    control_out_error(&out, error);
    control_write(c, fd, out.p, out.len);
    control_log(&rq, peer, false, error);
    control_out_cleanup(&out);
}

static void
control_serve(struct control *c, int fd)
{
    struct ucred           peer = {.pid = 0, .uid = (uid_t)-1, .gid = (gid_t)-1};
    socklen_t              plen = sizeof(peer);
    char                   line[CONTROL_MAX_REQUEST], msg[96];
    size_t                 len;
    bool                   allowed;
    enum control_read      rc;
    struct control_request rq;
    struct control_out     out = {0};

    allowed = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &plen) == 0 &&
              (peer.uid == 0 || peer.uid == geteuid());
    /* The line is read even from a peer that is refused: closing on unread input would
     * reset the connection, and the peer might never see why. */
    rc = control_read_line(c, fd, line, &len);
    if (rc == CONTROL_READ_NOTHING || rc == CONTROL_READ_STOP)
        return;
    if (!allowed) {
        snprintf(msg, sizeof(msg), "uid %ld may not use the control socket", (long)peer.uid);
        control_refuse(c, fd, &peer, "(refused)", msg);
    } else if (rc == CONTROL_READ_TIMEOUT) {
        control_refuse(c, fd, &peer, "(timeout)", "no request line within 2 seconds");
    } else if (rc == CONTROL_READ_TOO_LONG) {
        control_refuse(c, fd, &peer, "(too long)", "request line over 4096 octets");
    } else {
        if (len > 0 && line[len - 1] == '\r')
            len--;
        control_cmd_run(&c->env, line, len, &rq, &out);
        control_write(c, fd, out.p, out.len);
        control_log(&rq, &peer, out.ok, out.error);
        control_out_cleanup(&out);
    }
}

/* ---- the thread ---------------------------------------------------------------------- */

static void *
control_thread(void *arg)
{
    struct control *c = arg;
    int             fd;

    for (;;) {
        if (fdwait(c->stop[0], c->fd, POLLIN, fdwait_clock() + 3600) == FDWAIT_STOP)
            break;
        fd = accept4(c->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd >= 0) {
            control_serve(c, fd);
            close(fd);
        } else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
            /* EMFILE and the like: say so, and do not spin while it lasts */
            log_msg(LOG_WARNING, "control.accept", 0, "%s: %s", c->path, strerror(errno));
            if (fdwait(c->stop[0], -1, 0, fdwait_clock() + 0.5) == FDWAIT_STOP)
                break;
        }
    }
    return NULL;
}

int
control_start(struct control *c, const struct control_ops *ops, struct zones *zones,
              struct audit *audit)
{
    sigset_t all, old;
    int      rc;

    if (c->started)
        return -1;
    c->env.ops = *ops;
    c->env.zones = zones;
    c->env.audit = audit;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* signals are the main thread's business */
    rc = pthread_create(&c->thread, NULL, control_thread, c);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        log_msg(LOG_ERR, "control.fail", 0, "cannot start the control thread: %s",
                strerror(rc));
        return -1;
    }
    c->started = true;
    return 0;
}

void
control_free(struct control *c)
{
    struct stat st;
    ssize_t     n;

    if (c == NULL)
        return;
    if (c->started) {
        do
            n = write(c->stop[1], "x", 1);
        while (n < 0 && errno == EINTR);
        pthread_join(c->thread, NULL);
    }
    close(c->fd);
    close(c->stop[0]);
    close(c->stop[1]);
    /* Only our own file: a second daemon may have replaced a socket it thought stale. */
    if (lstat(c->path, &st) == 0 && st.st_dev == c->dev && st.st_ino == c->ino &&
        unlink(c->path) != 0 && errno != EACCES && errno != EPERM && errno != ENOENT)
        log_msg(LOG_WARNING, "control.unlink", 0, "%s: %s", c->path, strerror(errno));
    free(c->path);
    free(c);
}
