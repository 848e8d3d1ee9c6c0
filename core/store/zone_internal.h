/* core/store/zone_internal.h: what zone.c (the zones, the local dictionary) and
 * zone_remote.c (the Redis side: blocking calls, calls that wait on a worker's loop, the
 * fallback) share. Nothing outside core/store/ includes it. */
#ifndef SLUICE_ZONE_INTERNAL_H
#define SLUICE_ZONE_INTERNAL_H

#include <stdatomic.h>

#include "store/redis_link.h"
#include "store/zone.h"

struct config;
struct config_redis;
struct redis_sync;

struct zone {
    char            *name;     /* owns */
    bool             evict;    /* immutable */
    size_t           size;     /* immutable: the configured size */
    struct shdict   *local;    /* owns; the backend, or a Redis zone's fallback */
    atomic_bool      refusing; /* a write was refused and none succeeded since; relaxed: a
                                * hint for readers, ordered by nothing else */
    atomic_llong     logged;   /* ms since the epoch of the last zone.full line; CAS'd so
                                * that one thread of many writes it */
    bool             remote;   /* immutable: entries live in Redis */
    bool             fail_closed; /* immutable: see config_zone */
    struct zones    *zs;       /* borrows: the zones it is one of */
    atomic_ullong    fallbacks;   /* calls Redis did not answer */
    atomic_ullong    unlogged;    /* of those, since the last zone.fallback line */
    atomic_llong     fallback_logged; /* ms since the epoch of that line */
};

struct zones {
    struct zone            *v;     /* owns; n */
    size_t                  n;
    struct config_redis    *redis; /* owns a copy; NULL when no zone is remote */
    struct redis_sync      *sync;  /* owns; the blocking connection, NULL as redis */
    struct redis_link_stats links; /* every worker's link's */
};

/* zone.c */
void zone_exec_local(struct zone *z, const struct zone_op *op, struct zone_result *r);

/* zone_remote.c */
int    zones_redis_init(struct zones *zs, const struct config *cfg); /* -1: no memory */
void   zone_exec_remote(struct zone *z, const struct zone_op *op, struct zone_result *r);
size_t zone_keys_remote(struct zone *z, const char *prefix, size_t plen, double now,
                        shdict_key_fn *fn, void *ctx);

#endif
