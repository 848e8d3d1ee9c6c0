/* core/util/privfile.c: the daemon's side of the privileged reader (see privfile.h): start
 * it, ask it, and open directly when there is none or it refuses. */
#include "util/privfile.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/log.h"
#include "util/privfile_internal.h"

/* The one reader of this process. sock and pid are set by privfile_start() before any
 * thread exists and cleared by privfile_stop() after they are joined; mu serialises the
 * request/reply pairs of the threads that ask (a reload, a worker's lazy require). */
static struct {
    int             sock;
    pid_t           pid;
    pthread_mutex_t mu;
} privfile = { .sock = -1, .pid = -1, .mu = PTHREAD_MUTEX_INITIALIZER };

int
privfile_start(char *err, size_t errlen)
{
    int   sv[2];
    pid_t pid;

    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        snprintf(err, errlen, "privileged reader: socketpair: %s", strerror(errno));
        return -1;
    }
    pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "privileged reader: fork: %s", strerror(errno));
        close(sv[0]);
        close(sv[1]);
        return -1;
    }
    if (pid == 0) {
        close(sv[0]);
        privfile_server_run(sv[1]);
    }
    close(sv[1]);
    privfile.sock = sv[0];
    privfile.pid = pid;
    log_msg(LOG_INFO, "privfile.start", 0, "privileged reader: pid %d", (int)pid);
    return 0;
}

void
privfile_seal(void)
{
    char op = PRIVFILE_OP_SEAL;

    pthread_mutex_lock(&privfile.mu);
    if (privfile.sock >= 0)
        (void)send(privfile.sock, &op, 1, MSG_NOSIGNAL);
    pthread_mutex_unlock(&privfile.mu);
}

void
privfile_stop(void)
{
    if (privfile.sock < 0)
        return;
    close(privfile.sock);
    while (waitpid(privfile.pid, NULL, 0) < 0 && errno == EINTR)
        ;
    privfile.sock = -1;
    privfile.pid = -1;
}

/* The audit log, as the reader opens it too: no symlink followed, a regular file with one
 * name only. (Not a regular file at all, a FIFO to a log shipper, is the unprivileged
 * start's affair: the reader takes regular files only.) */
static int
privfile_open_append(const char *path)
{
    int         fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW,
                          0640);
    struct stat st;

    if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink != 1) {
        close(fd);
        errno = EMLINK;
        return -1;
    }
    return fd;
}

static int
privfile_open_local(const char *path, enum privfile_mode mode)
{
    switch (mode) {
    case PRIVFILE_DIR:
        return open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    case PRIVFILE_APPEND:
        return privfile_open_append(path);
    case PRIVFILE_READ:
    default:
        return open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    }
}

/* The descriptor attached to a reply, or -1. */
static int
privfile_take_fd(struct msghdr *msg)
{
    struct cmsghdr *cm = CMSG_FIRSTHDR(msg);
    int             fd = -1;

    if (cm != NULL && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
        cm->cmsg_len == CMSG_LEN(sizeof(int)))
        memcpy(&fd, CMSG_DATA(cm), sizeof(int));
    return fd;
}

/* One request and its reply, under mu. *status as the reader sent it; the descriptor or
 * -1. -2 when the reader cannot be asked (gone): the caller opens itself. */
static int
privfile_ask(int op, const char *path, int32_t *status)
{
    char            req[PRIVFILE_REQ_MAX], ctl[CMSG_SPACE(sizeof(int))];
    size_t          n = strlen(path);
    struct iovec    iov = { .iov_base = status, .iov_len = sizeof(*status) };
    struct msghdr   msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
                            .msg_controllen = sizeof(ctl) };
    ssize_t         got;

    req[0] = (char)op;
    memcpy(req + 1, path, n);
    if (send(privfile.sock, req, n + 1, MSG_NOSIGNAL) != (ssize_t)(n + 1))
        return -2;
    while ((got = recvmsg(privfile.sock, &msg, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
        ;
    if (got != (ssize_t)sizeof(*status))
        return -2;
    return privfile_take_fd(&msg);
}

int
privfile_open(const char *path, enum privfile_mode mode)
{
    static const int ops[] = { [PRIVFILE_READ] = PRIVFILE_OP_READ,
                               [PRIVFILE_DIR] = PRIVFILE_OP_DIR,
                               [PRIVFILE_APPEND] = PRIVFILE_OP_APPEND };
    int32_t          status = 0;
    int              fd;

    if (strlen(path) >= PATH_MAX) {
        errno = ENAMETOOLONG;
        return -1;
    }
    pthread_mutex_lock(&privfile.mu);
    fd = privfile.sock >= 0 ? privfile_ask(ops[mode], path, &status) : -2;
    pthread_mutex_unlock(&privfile.mu);
    if (fd == -2) {
        if (privfile.sock >= 0)
            log_msg(LOG_ERR, "privfile.error", 0, "the privileged reader does not answer");
        return privfile_open_local(path, mode);
    }
    if (status == 0 && fd >= 0)
        return fd;
    if (fd >= 0)
        close(fd);
    if (status == PRIVFILE_REFUSED)
        return privfile_open_local(path, mode);
    errno = status > 0 ? status : EIO;
    return -1;
}

char *
privfile_read(const char *path, size_t max, size_t *len, char *err, size_t errlen)
{
    int     fd = privfile_open(path, PRIVFILE_READ);
    char   *buf;
    size_t  n = 0;
    ssize_t got = 1;
    int     saved;

    if (fd < 0) {
        saved = errno;
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(saved));
        errno = saved;
        return NULL;
    }
    buf = malloc(max + 1);
    while (buf != NULL && n <= max && got != 0) {
        got = read(fd, buf + n, max + 1 - n);
        if (got < 0 && errno != EINTR)
            break;
        n += got > 0 ? (size_t)got : 0;
    }
    close(fd);
    if (buf == NULL || got < 0 || n > max) {
        if (buf == NULL)
            snprintf(err, errlen, "%s: out of memory", path);
        else if (got < 0)
            snprintf(err, errlen, "%s: read error: %s", path, strerror(errno));
        else
            snprintf(err, errlen, "%s: file too large (over %zu bytes)", path, max);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

int
privfile_check(const char *path)
{
    int fd = privfile_open(path, PRIVFILE_READ);

    if (fd < 0)
        return -1;
    close(fd);
    return 0;
}

DIR *
privfile_opendir(const char *path)
{
    int  fd = privfile_open(path, PRIVFILE_DIR);
    DIR *d;
    int  saved;

    if (fd < 0)
        return NULL;
    d = fdopendir(fd);
    if (d == NULL) {
        saved = errno;
        close(fd);
        errno = saved;
    }
    return d;
}
