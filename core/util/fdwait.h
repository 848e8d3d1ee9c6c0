/* core/util/fdwait.h: blocking waits with a deadline and a stop pipe, for the threads
 * that serve one short connection at a time outside the workers' event loops (the
 * control socket, daemon/control.c; the metrics listener, daemon/metrics.c): wait for
 * a socket to be ready, or for the owner's stop pipe, or for the deadline; send all of
 * a reply before the deadline. A client that trickles or stops reading cannot hold the
 * thread past the deadline. */
#ifndef SLUICE_FDWAIT_H
#define SLUICE_FDWAIT_H

#include <stddef.h>

enum fdwait_rc {
    FDWAIT_READY,   /* fd has the events asked for */
    FDWAIT_TIMEOUT, /* the deadline passed first (or poll failed for lack of memory) */
    FDWAIT_STOP,    /* stop_fd became readable: the owner is shutting down */
};

/* Seconds on the monotonic clock: what deadlines are measured in. */
double fdwait_clock(void);

/* Wait for events on fd (fd < 0: only for stop_fd) until deadline (fdwait_clock()). */
enum fdwait_rc fdwait(int stop_fd, int fd, short events, double deadline);

/* Send all of p on the non-blocking fd before deadline; a peer that does not read, or an
 * error, loses the rest silently (the caller closes). */
void fdwait_send_all(int stop_fd, int fd, const char *p, size_t len, double deadline);

#endif
