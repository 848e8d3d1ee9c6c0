/* tests/unit/test_fdwait.c: the waits of core/util/fdwait.c on real pipes and a socketpair:
 * ready, stopped, past the deadline, and a send to a peer that never reads. */
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "util/fdwait.h"

static void
a_readable_socket_is_ready_and_a_stop_pipe_wins_over_it(void)
{
    int sv[2], stop[2];

    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0 && pipe(stop) == 0);
    CHECK(write(sv[0], "x", 1) == 1);
    CHECK_EQ_INT(fdwait(stop[0], sv[1], POLLIN, fdwait_clock() + 1), FDWAIT_READY);
    CHECK(write(stop[1], "s", 1) == 1);
    CHECK_EQ_INT(fdwait(stop[0], sv[1], POLLIN, fdwait_clock() + 1), FDWAIT_STOP);
    CHECK_EQ_INT(fdwait(stop[0], -1, 0, fdwait_clock() + 1), FDWAIT_STOP);
    close(sv[0]), close(sv[1]), close(stop[0]), close(stop[1]);
}

static void
a_silent_socket_times_out_at_the_deadline(void)
{
    int    sv[2], stop[2];
    double t0 = fdwait_clock();

    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0 && pipe(stop) == 0);
    CHECK_EQ_INT(fdwait(stop[0], sv[1], POLLIN, t0 + 0.05), FDWAIT_TIMEOUT);
    CHECK(fdwait_clock() - t0 >= 0.05);
    CHECK_EQ_INT(fdwait(stop[0], sv[1], POLLIN, t0 - 1), FDWAIT_TIMEOUT); /* already past */
    close(sv[0]), close(sv[1]), close(stop[0]), close(stop[1]);
}

static void
a_send_to_a_peer_that_never_reads_gives_up_at_the_deadline(void)
{
    static char big[8 << 20];
    int         sv[2], stop[2];
    double      t0 = fdwait_clock();

    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0 && pipe(stop) == 0);
    CHECK(fcntl(sv[1], F_SETFL, O_NONBLOCK) == 0);
    fdwait_send_all(stop[0], sv[1], big, sizeof(big), t0 + 0.1);
    CHECK(fdwait_clock() - t0 >= 0.1 && fdwait_clock() - t0 < 5);
    close(sv[0]), close(sv[1]), close(stop[0]), close(stop[1]);
}

int
main(void)
{
    RUN(a_readable_socket_is_ready_and_a_stop_pipe_wins_over_it);
    RUN(a_silent_socket_times_out_at_the_deadline);
    RUN(a_send_to_a_peer_that_never_reads_gives_up_at_the_deadline);
    return check_summary();
}
