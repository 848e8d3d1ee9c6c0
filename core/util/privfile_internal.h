/* core/util/privfile_internal.h: the wire between privfile.c (the daemon's side) and
 * privfile_server.c (the privileged reader). One SOCK_SEQPACKET message each way:
 * a request is one op octet and the path (no NUL); the reply is one int32 status, with
 * the descriptor attached (SCM_RIGHTS) when the status is 0. */
#ifndef SLUICE_PRIVFILE_INTERNAL_H
#define SLUICE_PRIVFILE_INTERNAL_H

#include <linux/limits.h> /* PATH_MAX; <limits.h> would find core/util/limits.h */
#include <stdint.h>

enum privfile_op {
    PRIVFILE_OP_READ = 'R',
    PRIVFILE_OP_DIR = 'D',
    PRIVFILE_OP_APPEND = 'A',
    PRIVFILE_OP_SEAL = 'S', /* no path, no reply */
};

#define PRIVFILE_REQ_MAX (1 + PATH_MAX)
#define PRIVFILE_REFUSED (-1)  /* status: not where start-up opened; open it yourself */
#define PRIVFILE_PLACES_MAX 512 /* directories and appended files the reader remembers */

/* The reader's loop on sock; never returns. Called in the child right after fork(). */
void privfile_server_run(int sock) __attribute__((noreturn));

#endif
