/* core/net/tls_internal.h: test hooks into core/net/tls.c, for tests/unit/test_tls.c only.
 * The daemon never calls these. */
#ifndef SLUICE_TLS_INTERNAL_H
#define SLUICE_TLS_INTERNAL_H

#include <time.h>

#include "net/tls.h"

/* Seconds on some steady clock; the default is CLOCK_MONOTONIC. */
typedef time_t tls_clock_fn(void *arg);

/* Make ticket-key rotation read clock(arg) instead of the monotonic clock, so a test
 * can step over rotations. The current key counts as created at clock(arg) now.
 * Call before the server is shared between threads. */
void tls_server_set_clock(struct tls_server *ts, tls_clock_fn *clock, void *arg);

#endif
