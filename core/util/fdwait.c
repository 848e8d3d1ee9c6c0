/* core/util/fdwait.c: waits with a deadline and a stop pipe; see fdwait.h. */
#include "util/fdwait.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>

double
fdwait_clock(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

enum fdwait_rc
fdwait(int stop_fd, int fd, short events, double deadline)
{
    struct pollfd p[2] = {{.fd = stop_fd, .events = POLLIN}, {.fd = fd, .events = events}};
    double        left;
    int           n;

    for (;;) {
        left = deadline - fdwait_clock();
        if (left <= 0)
            return FDWAIT_TIMEOUT;
        n = poll(p, fd >= 0 ? 2 : 1, (int)(left * 1000) + 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) { /* ENOMEM: wait a little rather than spin, and give up on this wait */
            nanosleep(&(struct timespec){.tv_nsec = 100000000}, NULL);
            return FDWAIT_TIMEOUT;
        }
        if (p[0].revents != 0)
            return FDWAIT_STOP;
        if (n > 0)
            return FDWAIT_READY;
    }
}

void
fdwait_send_all(int stop_fd, int fd, const char *p, size_t len, double deadline)
{
    ssize_t n;

    while (len > 0) {
        n = send(fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && errno == EAGAIN) {
            if (fdwait(stop_fd, fd, POLLOUT, deadline) != FDWAIT_READY)
                return;
        } else {
            return;
        }
    }
}
