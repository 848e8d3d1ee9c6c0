/* core/util/notify.c: the sd_notify datagram protocol over a Unix socket; see notify.h.
 * A socket per message: they are a handful per process lifetime (start, reloads, stop),
 * and no descriptor is kept that a reload or a fork would have to think about. */
#include "util/notify.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* The address $NOTIFY_SOCKET names: 1 and sa, len filled, 0 when unset, -1 if bad. */
static int
notify_address(struct sockaddr_un *sa, socklen_t *len, char *err, size_t errlen)
{
    const char *name = getenv("NOTIFY_SOCKET");
    size_t      n;

    if (name == NULL || name[0] == '\0')
        return 0;
    n = strlen(name);
    if ((name[0] != '/' && name[0] != '@') || n >= sizeof(sa->sun_path)) {
        snprintf(err, errlen, "NOTIFY_SOCKET '%s': not an absolute path or '@' name "
                 "of at most %zu octets", name, sizeof(sa->sun_path) - 1);
        return -1;
    }
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    memcpy(sa->sun_path, name, n);
    if (name[0] == '@') /* abstract namespace: a NUL first, the length says where it ends */
        sa->sun_path[0] = '\0';
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (name[0] == '/'));
    return 1;
}

int
notify_send(const char *state, char *err, size_t errlen)
{
    struct sockaddr_un sa;
    socklen_t          len = 0;
    int                fd, rc;
    ssize_t            sent;

    rc = notify_address(&sa, &len, err, errlen);
    if (rc <= 0)
        return rc;
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        snprintf(err, errlen, "NOTIFY_SOCKET: socket: %s", strerror(errno));
        return -1;
    }
    sent = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, len);
    if (sent < 0)
        snprintf(err, errlen, "NOTIFY_SOCKET %s: %s", getenv("NOTIFY_SOCKET"),
                 strerror(errno));
    close(fd);
    return sent == (ssize_t)strlen(state) ? 0 : -1;
}

int
notify_ready(const char *status, char *err, size_t errlen)
{
    char msg[512];

    if (status == NULL)
        return notify_send("READY=1", err, errlen);
    snprintf(msg, sizeof(msg), "READY=1\nSTATUS=%s", status);
    return notify_send(msg, err, errlen);
}

int
notify_reloading(char *err, size_t errlen)
{
    struct timespec ts;
    char            msg[96];

    clock_gettime(CLOCK_MONOTONIC, &ts);
    snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
             (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000);
    return notify_send(msg, err, errlen);
}

int
notify_stopping(char *err, size_t errlen)
{
    return notify_send("STOPPING=1", err, errlen);
}
