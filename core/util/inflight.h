/* core/util/inflight.h: the daemon-wide budget of memory for messages in transit
 * (limits.max_inflight_bytes) and each client's share of it
 * (limits.max_inflight_bytes_per_client), shared by all workers. A session reserves
 * before its message buffer grows and releases when the transaction ends
 * (smtp_budget.c; docs/security.md "Memory for messages"). Knows nothing of SMTP:
 * a client is a key string, counts are octets. */
#ifndef SLUICE_INFLIGHT_H
#define SLUICE_INFLIGHT_H

#include <stddef.h>
#include <stdint.h>

#define INFLIGHT_KEY_MAX 64 /* a client key, NUL included: an address or a prefix */

struct inflight;

enum inflight_rc {
    INFLIGHT_OK,
    INFLIGHT_TOTAL,  /* the daemon is at max_inflight_bytes (or malloc failed) */
    INFLIGHT_CLIENT, /* this client is at max_inflight_bytes_per_client */
};

struct inflight_stats {
    size_t   bytes;          /* reserved now, all clients together */
    size_t   max_bytes;      /* the limits in force */
    size_t   max_per_client;
    size_t   clients;        /* clients holding a reservation now */
    uint64_t refused;        /* transactions refused since start (inflight_refused) */
};

/* NULL on allocation failure. */
struct inflight *inflight_new(size_t max_total, size_t max_per_client);
/* Every reservation must have been released (asserted: a leak is our bug). NULL: no-op. */
void             inflight_free(struct inflight *f);

/* Reserve n octets for client (a key shorter than INFLIGHT_KEY_MAX). Thread-safe. On
 * INFLIGHT_OK the caller must release exactly n for the same key later, in as many
 * pieces as it likes; otherwise nothing was reserved. */
enum inflight_rc inflight_reserve(struct inflight *f, const char *client, size_t n);
void             inflight_release(struct inflight *f, const char *client, size_t n);

void   inflight_stats(struct inflight *f, struct inflight_stats *st);
/* Count one transaction refused for want of memory (a caller may try several
 * reservations before it gives up: it counts the outcome). */
void   inflight_refused(struct inflight *f);
/* New limits (reload). Reservations already made stay; below a lowered limit, new ones
 * are refused until enough is released. */
void   inflight_set_limits(struct inflight *f, size_t max_total, size_t max_per_client);

#endif
