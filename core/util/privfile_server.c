/* core/util/privfile_server.c: the privileged reader (see privfile.h). A process forked from
 * `sluice run` while it is still root and has no threads; it keeps root, and does only
 * this: take a path, check it, open it, send the descriptor back. It runs no Lua, parses
 * no client data, has no other descriptor than the socket and stderr, and exits when the
 * daemon closes the socket (or dies). */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/log.h"
#include "util/privfile_internal.h"

/* What start-up opened: directories files were read from or listed (after symlinks), and
 * files appended to. Owned by the reader process; nothing else shares it. */
struct privfile_places {
    char  *dirs[PRIVFILE_PLACES_MAX];
    size_t n_dirs;
    char  *appends[PRIVFILE_PLACES_MAX];
    size_t n_appends;
    bool   sealed;
};

static bool
privfile_has(char *const *list, size_t n, const char *path)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], path) == 0)
            return true;
    return false;
}

static void
privfile_remember(char **list, size_t *n, const char *path)
{
    if (privfile_has(list, *n, path) || *n >= PRIVFILE_PLACES_MAX)
        return;
    list[*n] = strdup(path);
    if (list[*n] != NULL)
        (*n)++;
}

/* Append the next component of *rest (advancing it) to out, or handle "." and "..":
 * 1 when a name was appended, 0 when not, -1 when out would be too long. */
static int
privfile_step(char *out, const char **rest)
{
    const char *p = *rest;
    size_t      n, used = strlen(out);
    char       *slash;

    while (*p == '/')
        p++;
    n = strcspn(p, "/");
    *rest = p + n;
    if (n == 0 || (n == 1 && p[0] == '.'))
        return 0;
    if (n == 2 && p[0] == '.' && p[1] == '.') {
        slash = strrchr(out, '/');
        if (slash != NULL)
            *slash = '\0';
        return 0;
    }
    if (used + 1 + n >= PATH_MAX)
        return -1;
    out[used] = '/';
    memcpy(out + used + 1, p, n);
    out[used + 1 + n] = '\0';
    return 1;
}

/* True when nothing is left of rest but slashes. */
static bool
privfile_is_last(const char *rest)
{
    return rest[strspn(rest, "/")] == '\0';
}

/* Resolve path into real (PATH_MAX) as realpath() would, refusing any symbolic link that
 * root does not own: a link root made (/etc/letsencrypt/live/x/privkey.pem into
 * archive/) is followed, one the service user planted in a directory it can write to is
 * not. The last component is left unresolved unless follow_last (APPEND opens it with
 * O_NOFOLLOW). 0, or an errno (EPERM for a link that is not root's). */
static int
privfile_resolve(const char *path, bool follow_last, char *real)
{
    char        unresolved[2 * PATH_MAX + 2], target[PATH_MAX], out[PATH_MAX] = "";
    const char *rest;
    struct stat st;
    int         links = 0, step;
    ssize_t     n;

    if (strlen(path) >= PATH_MAX)
        return ENAMETOOLONG;
    if (path[0] != '/' && getcwd(out, sizeof(out)) == NULL)
        return errno;
    if (strcmp(out, "/") == 0)
        out[0] = '\0';
    strcpy(unresolved, path);
    rest = unresolved;
    while (!privfile_is_last(rest)) {
        if ((step = privfile_step(out, &rest)) <= 0) {
            if (step < 0)
                return ENAMETOOLONG;
            continue;
        }
        if (privfile_is_last(rest) && !follow_last)
            break;
        if (lstat(out, &st) != 0)
            return errno;
        if (!S_ISLNK(st.st_mode))
            continue;
        if (st.st_uid != 0)
            return EPERM;
        if (++links > 40)
            return ELOOP;
        n = readlink(out, target, sizeof(target) - 1);
        if (n < 0)
            return errno;
        target[n] = '\0';
        *strrchr(out, '/') = '\0'; /* the link's directory */
        if (target[0] == '/')
            out[0] = '\0';
        if (strlen(target) + 1 + strlen(rest) >= sizeof(unresolved))
            return ENAMETOOLONG;
        memmove(unresolved + strlen(target) + 1, rest, strlen(rest) + 1);
        memcpy(unresolved, target, strlen(target));
        unresolved[strlen(target)] = '/';
        rest = unresolved;
    }
    strcpy(real, out[0] != '\0' ? out : "/");
    return 0;
}

/* After the seal: only where start-up opened. */
static bool
privfile_allowed(const struct privfile_places *p, int op, const char *real)
{
    char copy[PATH_MAX];

    if (op == PRIVFILE_OP_APPEND)
        return privfile_has(p->appends, p->n_appends, real);
    if (op == PRIVFILE_OP_DIR)
        return privfile_has(p->dirs, p->n_dirs, real);
    snprintf(copy, sizeof(copy), "%s", real);
    return privfile_has(p->dirs, p->n_dirs, dirname(copy));
}

static void
privfile_note(struct privfile_places *p, int op, const char *real)
{
    char copy[PATH_MAX];

    if (op == PRIVFILE_OP_APPEND) {
        privfile_remember(p->appends, &p->n_appends, real);
    } else if (op == PRIVFILE_OP_DIR) {
        privfile_remember(p->dirs, &p->n_dirs, real);
    } else {
        snprintf(copy, sizeof(copy), "%s", real);
        privfile_remember(p->dirs, &p->n_dirs, dirname(copy));
    }
}

/* Open real as op says, refusing what is not a regular file (a FIFO would block the
 * reader: O_NONBLOCK until checked) or, for appending, a file with other names: root must
 * not append through a hard link the service user made. fd, or -errno. */
static int
privfile_open_real(int op, const char *real)
{
    int         flags = O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
    struct stat st;
    int         fd, bad;

    flags |= op == PRIVFILE_OP_DIR      ? O_RDONLY | O_DIRECTORY
             : op == PRIVFILE_OP_APPEND ? O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW
                                        : O_RDONLY;
    fd = open(real, flags, 0640);
    if (fd < 0)
        return -errno;
    bad = fstat(fd, &st) != 0                               ? errno
          : op == PRIVFILE_OP_DIR                           ? (S_ISDIR(st.st_mode) ? 0 : ENOTDIR)
          : !S_ISREG(st.st_mode)                            ? EINVAL
          : op == PRIVFILE_OP_APPEND && st.st_nlink != 1 ? EMLINK
                                                            : 0;
    if (bad == 0 && fcntl(fd, F_SETFL, op == PRIVFILE_OP_APPEND ? O_APPEND : 0) != 0)
        bad = errno;
    if (bad != 0) {
        close(fd);
        return -bad;
    }
    return fd;
}

static void
privfile_reply(int sock, int32_t status, int fd)
{
    char            ctl[CMSG_SPACE(sizeof(int))];
    struct iovec    iov = { .iov_base = &status, .iov_len = sizeof(status) };
    struct msghdr   msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    struct cmsghdr *cm;

    if (fd >= 0) {
        memset(ctl, 0, sizeof(ctl));
        msg.msg_control = ctl;
        msg.msg_controllen = sizeof(ctl);
        cm = CMSG_FIRSTHDR(&msg);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &fd, sizeof(int));
    }
    while (sendmsg(sock, &msg, MSG_NOSIGNAL) < 0 && errno == EINTR)
        ;
}

/* One request: a status and, on success, the descriptor. */
static void
privfile_serve_one(struct privfile_places *p, int sock, int op, const char *path)
{
    char real[PATH_MAX];
    int  rc, fd;

    rc = privfile_resolve(path, op != PRIVFILE_OP_APPEND, real);
    if (rc == EPERM)
        log_msg(LOG_WARNING, "privfile.refuse", 0,
                "%s: a symbolic link on the way is not root's: not followed", path);
    if (rc != 0) {
        privfile_reply(sock, rc, -1);
        return;
    }
    if (p->sealed && !privfile_allowed(p, op, real)) {
        log_msg(LOG_NOTICE, "privfile.refuse", 0,
                "%s: not where start-up read or wrote; it must be %s by the service user",
                real, op == PRIVFILE_OP_APPEND ? "writable" : "readable");
        privfile_reply(sock, PRIVFILE_REFUSED, -1);
        return;
    }
    fd = privfile_open_real(op, real);
    if (fd < 0) {
        privfile_reply(sock, -fd, -1);
        return;
    }
    if (!p->sealed)
        privfile_note(p, op, real);
    privfile_reply(sock, 0, fd);
    close(fd);
}

static bool
privfile_is_op(int op)
{
    return op == PRIVFILE_OP_READ || op == PRIVFILE_OP_DIR || op == PRIVFILE_OP_APPEND;
}

void
privfile_server_run(int sock)
{
    static struct privfile_places places; /* this process's only state; zeroed */
    char                          req[PRIVFILE_REQ_MAX + 1];
    ssize_t                       n;

    signal(SIGINT, SIG_IGN); /* Ctrl-C reaches the whole process group: the daemon */
    signal(SIGTERM, SIG_IGN); /* drains, then closes the socket, and that ends us */
    signal(SIGHUP, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* besides EOF, should the daemon be killed */
    if (sock > 3)
        close_range(3, (unsigned)sock - 1, 0);
    close_range((unsigned)sock + 1, ~0U, 0);
    for (;;) {
        n = recv(sock, req, PRIVFILE_REQ_MAX, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            _exit(0); /* the daemon closed its end or exited */
        req[n] = '\0';
        if (req[0] == PRIVFILE_OP_SEAL && n == 1) {
            places.sealed = true;
        } else if (n < 2 || !privfile_is_op(req[0]) || memchr(req + 1, '\0', (size_t)n - 1)) {
            privfile_reply(sock, EINVAL, -1);
        } else {
            privfile_serve_one(&places, sock, req[0], req + 1);
        }
    }
}
