/* core/store/zone.h: named zones of state shared by all workers (docs/configuration.md `zones`,
 * docs/security.md "Shared state zones"): rate-limit counters, active blocks, the bearer
 * token deny-list, caches. Each zone has its own size and eviction rule, so that what a
 * client fills (counters keyed by names it chooses) can never push out what protects
 * against it (a deny entry, a block). A zone that evicts behaves as a cache; one that does
 * not refuses new entries when full (SHDICT_FULL), logs that (zone.full, at most once
 * every ZONE_FULL_LOG_EVERY seconds), and remembers it until a write succeeds again, so a
 * reader can tell "absent" from "maybe absent because it could not be written".
 *
 * The interface is small on purpose (get, set, add, incr, delete, and the expiry that get
 * returns), with values and results in shdict's types. A zone's backend is chosen in the
 * configuration (config.h enum config_zone_backend): the in-process dictionary
 * (core/store/shdict.c), or Redis (zone_redis.h), which every node shares. A Redis zone
 * keeps a local dictionary of its configured size too: when Redis cannot answer in time
 * (down, slow, refusing), a zone that fails open answers from it (zone.fallback, at most
 * one line every ZONE_FULL_LOG_EVERY seconds, and a count), one that fails closed answers
 * SHDICT_UNAVAILABLE. docs/deployment.md says what that means for each zone.
 *
 * Two ways to call: the functions below that return at once (a Redis zone does a blocking
 * round trip on the daemon's one blocking connection, redis_sync.c: for the control
 * socket and policies being loaded), and zone_call() (a Redis zone sends on the calling
 * worker's own connection, struct zone_link, and calls back: for hooks, which yield
 * meanwhile; a worker loop never blocks on Redis).
 *
 * Thread-safety: zones_new() and zones_free() run before and after the other threads; all
 * other calls may come from any thread at any time (the backend locks itself). */
#ifndef SLUICE_ZONE_H
#define SLUICE_ZONE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/shdict.h"
#include "store/zone_op.h"

struct config;
struct zone;
struct zones;

#define ZONE_FULL_LOG_EVERY 10.0 /* seconds between two zone.full lines of one zone */
#define ZONE_SHARD_BYTES    (128u * 1024) /* a zone gets one shard (mutex) per this much */
#define ZONE_MAX_SHARDS     64

/* `sluice ctl status`: one zone's usage. */
struct zone_stats {
    const char *name;      /* borrows the zone's */
    bool        evict;
    size_t      capacity;  /* bytes: the configured size */
    size_t      bytes;     /* charged now: entries and bucket arrays */
    size_t      entries;   /* including expired ones not yet removed */
    uint64_t    evictions; /* live entries evicted to make room (evict = true) */
    uint64_t    refusals;  /* writes refused for lack of room (evict = false), or for an
                            * entry larger than the zone can hold */
    uint64_t    expired;
    bool        redis;     /* the backend is Redis; the numbers above are its fallback's */
    uint64_t    fallbacks; /* calls Redis did not answer in time, answered locally or
                            * refused (fail closed) */
};

/* The zones of cfg->zones, each empty, or NULL with the reason in err. The caller owns the
 * result; zones_free() after every other thread has stopped using it. */
struct zones *zones_new(const struct config *cfg, char *err, size_t errlen);
void          zones_free(struct zones *zs);

/* The i-th zone, in cfg->zones order (the built-in ones at their enum config_zone_builtin
 * index), or NULL past the end. Borrowed: lives as long as zs. */
struct zone *zones_at(struct zones *zs, size_t i);
size_t       zones_count(const struct zones *zs);

const char *zone_name(const struct zone *z);
bool        zone_evicts(const struct zone *z);

/* shdict_get(), shdict_set(), shdict_add(), shdict_incr() (init 0), shdict_delete() on the
 * zone's backend; see shdict.h for each one's contract. A refusal for lack of room counts
 * in the zone's stats and logs zone.full (rate-limited). */
enum shdict_rc zone_get(struct zone *z, const char *key, size_t klen, struct shdict_value *out,
                        double now);
enum shdict_rc zone_set(struct zone *z, const char *key, size_t klen,
                        const struct shdict_value *v, double ttl, double now);
enum shdict_rc zone_add(struct zone *z, const char *key, size_t klen,
                        const struct shdict_value *v, double ttl, double now);
enum shdict_rc zone_incr(struct zone *z, const char *key, size_t klen, double by, double ttl,
                         double now, double *newval);
enum shdict_rc zone_delete(struct zone *z, const char *key, size_t klen, double now);

/* op on z, returning at once (a Redis zone: a blocking round trip, see above). A get
 * copies a string into r->v.buf (cap r->v.cap, set by the caller), or into a heap buffer
 * r->heap when it is longer; zone_result_cleanup() frees that. */
void zone_exec(struct zone *z, const struct zone_op *op, struct zone_result *r);
void zone_result_cleanup(struct zone_result *r);

/* True when z's entries live in Redis. */
bool zone_is_remote(const struct zone *z);

/* ---- calls that wait on a worker's loop ------------------------------------------------- */

struct ev_loop;
struct zone_link; /* one worker's connection to Redis */
struct zone_call; /* one operation in flight */

/* The worker's connection, opened when first used; NULL when no zone of zs is remote
 * (then zone_call() never waits). Made and freed on the loop's thread. */
struct zone_link *zone_link_new(struct zones *zs, struct ev_loop *loop);
/* No more calls (a drained worker): nothing of it stays on the loop. NULL-safe. */
void              zone_link_close(struct zone_link *l);
void              zone_link_free(struct zone_link *l);

typedef void zone_call_done_fn(void *arg, const struct zone_result *r);

/* op on z: true when it is done already (a local zone, or Redis unreachable: the fallback
 * answered) with the result in *r; false when it waits: done(arg, result) is called from
 * link's loop within max_wait seconds (never before this returns), unless
 * zone_call_cancel(*pending) comes first. A string value in a done result borrows from
 * the reply: copy it before returning. */
bool zone_call(struct zone *z, struct zone_link *link, const struct zone_op *op,
               double max_wait, struct zone_result *r, zone_call_done_fn *done, void *arg,
               struct zone_call **pending);
void zone_call_cancel(struct zone_call *c);

/* True when a write to z was refused for lack of room and none has succeeded since: a key
 * that is absent may be absent only because it could not be written. Never true for a zone
 * that evicts (there, absence is normal). */
bool zone_is_refusing(const struct zone *z);

/* shdict_keys() over the zone: for the control socket, which walks what it shows. */
size_t zone_keys(struct zone *z, const char *prefix, size_t plen, double now,
                 shdict_key_fn *fn, void *ctx);

void zone_stats(struct zone *z, struct zone_stats *st);

/* Every worker's connection to Redis, summed: false (and *st untouched) when no zone is
 * in Redis. */
struct zones_redis_stats {
    uint64_t links_up; /* workers connected now */
    uint64_t connects; /* connections set up since start */
    uint64_t failures; /* connects that failed, connections lost or dropped */
};
bool zones_redis_stats(struct zones *zs, struct zones_redis_stats *st);

/* Keys from client-chosen strings (user names, token ids) are bounded this way, here and
 * in Lua (sluice.key_part, lua/sluice/init.lua), so that both build the same key: s itself
 * when it is at most max octets; otherwise its first max - 64 octets, '~' and the 64 hex
 * digits of its SHA-256, max + 1 octets in all, so that it can never equal a string that
 * was kept. max is at least 64 and at most ZONE_KEY_PART_MAX. out has room for max + 2
 * octets; returns the length written (NUL-terminated), or 0 when max is out of range. */
#define ZONE_KEY_PART_MAX 512
size_t zone_key_part(const char *s, size_t n, size_t max, char *out);

#endif
