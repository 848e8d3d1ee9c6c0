/* tests/unit/test_notify.c: the sd_notify datagrams a real Unix datagram socket receives,
 * at a path and at an abstract '@' name, and what happens without or with a bad
 * $NOTIFY_SOCKET. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "tmpdir.h"
#include "util/notify.h"

/* A datagram socket bound at name ('@' for abstract); exits if it cannot be made. */
static int
listen_at(const char *name)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    size_t             n = strlen(name);
    int                fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct timeval     tv = { .tv_sec = 5 };

    memcpy(sa.sun_path, name, n);
    if (name[0] == '@')
        sa.sun_path[0] = '\0';
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa,
                       (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0) {
        perror(name);
        exit(1);
    }
    return fd;
}

/* The next datagram as a string ("" after 5 s without one). */
static const char *
next_datagram(int fd, char *buf, size_t len)
{
    ssize_t n = recv(fd, buf, len - 1, 0);

    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

static void
ready_stopping_and_status_arrive_at_a_path_socket(void)
{
    char path[160], buf[512], err[256] = "";
    int  fd;

    snprintf(path, sizeof(path), "%s/notify", test_tmpdir("notify"));
    fd = listen_at(path);
    setenv("NOTIFY_SOCKET", path, 1);
    CHECK_EQ_INT(notify_ready(NULL, err, sizeof(err)), 0);
    CHECK(strcmp(next_datagram(fd, buf, sizeof(buf)), "READY=1") == 0);
    CHECK_EQ_INT(notify_ready("generation 2", err, sizeof(err)), 0);
    CHECK(strcmp(next_datagram(fd, buf, sizeof(buf)), "READY=1\nSTATUS=generation 2") == 0);
    CHECK_EQ_INT(notify_stopping(err, sizeof(err)), 0);
    CHECK(strcmp(next_datagram(fd, buf, sizeof(buf)), "STOPPING=1") == 0);
    CHECK(err[0] == '\0');
    close(fd);
    unsetenv("NOTIFY_SOCKET");
}

static void
an_abstract_name_with_an_at_sign_is_reached(void)
{
    char name[64], buf[512], err[256] = "";
    int  fd;

    snprintf(name, sizeof(name), "@sluice-test-notify-%d", (int)getpid());
    fd = listen_at(name);
    setenv("NOTIFY_SOCKET", name, 1);
    CHECK_EQ_INT(notify_send("READY=1", err, sizeof(err)), 0);
    CHECK(strcmp(next_datagram(fd, buf, sizeof(buf)), "READY=1") == 0);
    close(fd);
    unsetenv("NOTIFY_SOCKET");
}

static void
reloading_carries_the_monotonic_clock_in_microseconds(void)
{
    char               path[160], buf[512], err[256] = "";
    struct timespec    t0, t1;
    unsigned long long usec = 0, lo, hi;
    int                fd;

    snprintf(path, sizeof(path), "%s/notify-reload", test_tmpdir("notify"));
    fd = listen_at(path);
    setenv("NOTIFY_SOCKET", path, 1);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK_EQ_INT(notify_reloading(err, sizeof(err)), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    next_datagram(fd, buf, sizeof(buf));
    CHECK(sscanf(buf, "RELOADING=1\nMONOTONIC_USEC=%llu", &usec) == 1);
    lo = (unsigned long long)t0.tv_sec * 1000000ULL + (unsigned long long)t0.tv_nsec / 1000;
    hi = (unsigned long long)t1.tv_sec * 1000000ULL + (unsigned long long)t1.tv_nsec / 1000;
    CHECK(usec >= lo && usec <= hi);
    CHECK(strchr(buf + strlen("RELOADING=1\n"), '\n') == NULL); /* two lines, no more */
    close(fd);
    unsetenv("NOTIFY_SOCKET");
}

static void
without_notify_socket_nothing_is_sent_and_nothing_fails(void)
{
    char err[256] = "";

    unsetenv("NOTIFY_SOCKET");
    CHECK_EQ_INT(notify_ready(NULL, err, sizeof(err)), 0);
    setenv("NOTIFY_SOCKET", "", 1);
    CHECK_EQ_INT(notify_stopping(err, sizeof(err)), 0);
    CHECK(err[0] == '\0');
    unsetenv("NOTIFY_SOCKET");
}

static void
a_relative_or_missing_socket_is_an_error_with_its_name(void)
{
    char path[160], err[256] = "";

    setenv("NOTIFY_SOCKET", "relative/notify", 1);
    CHECK_EQ_INT(notify_ready(NULL, err, sizeof(err)), -1);
    CHECK(strstr(err, "relative/notify") != NULL);
    snprintf(path, sizeof(path), "%s/nobody-listens", test_tmpdir("notify"));
    setenv("NOTIFY_SOCKET", path, 1);
    err[0] = '\0';
    CHECK_EQ_INT(notify_ready(NULL, err, sizeof(err)), -1);
    CHECK(strstr(err, "nobody-listens") != NULL);
    unsetenv("NOTIFY_SOCKET");
}

int
main(void)
{
    RUN(ready_stopping_and_status_arrive_at_a_path_socket);
    RUN(an_abstract_name_with_an_at_sign_is_reached);
    RUN(reloading_carries_the_monotonic_clock_in_microseconds);
    RUN(without_notify_socket_nothing_is_sent_and_nothing_fails);
    RUN(a_relative_or_missing_socket_is_an_error_with_its_name);
    return check_summary();
}
