/* core/iplimit.h: connection counts for the whole daemon and per client IP, shared by
 * all workers. One mutex per shard; an entry lives while its count is above zero. */
#ifndef SLUICE_IPLIMIT_H
#define SLUICE_IPLIMIT_H

#include <stdbool.h>
#include <stddef.h>

struct iplimit;

struct iplimit *iplimit_new(size_t max_total, size_t max_per_ip);
void            iplimit_free(struct iplimit *l);

enum iplimit_rc {
    IPLIMIT_OK,
    IPLIMIT_TOTAL, /* the daemon is at max_connections */
    IPLIMIT_PER_IP, /* this address is at max_connections_per_ip */
};

/* Count one connection from ip (text form). On IPLIMIT_OK the caller must call
 * iplimit_release() exactly once later; otherwise nothing was counted. */
enum iplimit_rc iplimit_acquire(struct iplimit *l, const char *ip);
void            iplimit_release(struct iplimit *l, const char *ip);
size_t          iplimit_total(struct iplimit *l);
/* New caps (reload); connections already counted stay. */
void            iplimit_set_limits(struct iplimit *l, size_t max_total, size_t max_per_ip);

#endif
