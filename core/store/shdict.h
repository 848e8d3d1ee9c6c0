/* core/store/shdict.h: the in-process dictionary all workers share, the local backend of one
 * zone (core/store/zone.h: rate-limit counters, blocks, the token deny-list, caches). Keys map
 * to a number or a byte string, with an optional TTL. Names, configuration, logging and
 * the Lua binding are zone.c's and lapi_zone.c's; the control socket is control_cmd.c's.
 *
 * Thread-safety: every function but shdict_free() may be called from any thread at any
 * time. The dictionary is split into shards by a keyed hash of the key; each shard has
 * one mutex, held only for the duration of one call (and of each shdict_keys() callback).
 * Nothing here blocks on I/O, allocates or frees while holding a lock, or yields.
 *
 * Time: every call takes `now` (ev_now() in a worker, a fake clock in tests) in seconds.
 * An entry with a TTL expires when now >= set time + ttl. Expired entries are invisible;
 * they are removed lazily when touched, when a full shard needs room, or by
 * shdict_flush_expired().
 *
 * Memory: max_bytes bounds entries (header, key, value and an estimate of malloc's own
 * overhead) plus the bucket arrays. Each shard gets max_bytes / nshards and keeps one
 * eighth of that for its buckets; the rest is its share for entries. What happens when
 * there is no room is chosen at creation (enum shdict_full):
 *  - SHDICT_EVICT: each shard is bounded by its share. A full shard removes its expired
 *    entries first, then evicts the least recently used ones (get, set and incr count as
 *    use). Nothing is ever refused for lack of room. For counters and caches.
 *  - SHDICT_REFUSE: nothing is ever evicted. The dictionary as a whole is bounded by the
 *    sum of the shares (one atomic count, reserved before an entry goes in, so the bound
 *    holds under any concurrency and a shard may hold more than its share). A write that
 *    does not fit removes expired entries everywhere and tries once more; then it is
 *    refused with SHDICT_FULL and the dictionary is unchanged. For security state (the
 *    token deny-list, active blocks), which a client must not be able to push out. */
#ifndef SLUICE_SHDICT_H
#define SLUICE_SHDICT_H

#include <stddef.h>
#include <stdint.h>

#define SHDICT_MAX_KEY       1024          /* octets: a 512-octet SASL identity plus a prefix */
#define SHDICT_MAX_VALUE     (64u * 1024)  /* octets in a string value */
#define SHDICT_MIN_SHARD     4096          /* shdict_new() refuses a smaller share per shard */
#define SHDICT_MAX_SHARDS    1024

struct shdict;

/* What a write does when there is no room for it (see above). */
enum shdict_full {
    SHDICT_EVICT,  /* evict the least recently used entries of the shard */
    SHDICT_REFUSE, /* evict nothing: refuse the write with SHDICT_FULL */
};

enum shdict_type {
    SHDICT_NIL,    /* set: delete the key */
    SHDICT_NUMBER,
    SHDICT_STRING,
};

/* A value in or out. set reads type, num, str and len; get fills every field but buf and
 * cap, which the caller provides. */
struct shdict_value {
    enum shdict_type type;
    double           num;     /* SHDICT_NUMBER */
    const char      *str;     /* SHDICT_STRING: set borrows len octets (copied before it
                               * returns); after get it points into buf */
    size_t           len;     /* octets at str; after SHDICT_TOO_SMALL, the length needed */
    char            *buf;     /* get: caller's buffer for a string value; may be NULL if cap
                               * is 0. SHDICT_MAX_VALUE octets always suffice. */
    size_t           cap;     /* octets available at buf */
    double           expires; /* get: absolute expiry time, 0 = never; ignored by set */
};

enum shdict_rc {
    SHDICT_OK,
    SHDICT_NOT_FOUND,   /* get, delete: no such key, or it has expired */
    SHDICT_TOO_SMALL,   /* get: a string longer than out->cap; out->len says how long,
                         * nothing was copied */
    SHDICT_NOT_NUMBER,  /* incr: the key holds a string; it is unchanged */
    SHDICT_BAD_KEY,     /* klen is 0 or over SHDICT_MAX_KEY */
    SHDICT_BAD_VALUE,   /* string over SHDICT_MAX_VALUE, unknown type, ttl negative or
                         * not finite, incr by or init NaN */
    SHDICT_NO_MEMORY,   /* the entry is larger than a shard can ever hold, or malloc
                         * failed; the dictionary is unchanged */
    SHDICT_FULL,        /* set, add, incr (SHDICT_REFUSE only): no room without evicting,
                         * even after removing the expired entries; nothing changed */
    SHDICT_EXISTS,      /* add: the key is there and live; it is unchanged */
    SHDICT_UNAVAILABLE, /* never shdict's: a zone whose Redis could not answer and that
                         * fails closed (zone.h) */
};

struct shdict_stats {
    size_t   entries;   /* in the table, including expired ones not yet removed */
    size_t   bytes;     /* charged against max_bytes: entries and bucket arrays */
    size_t   max_bytes;
    uint64_t evictions; /* live entries evicted to make room: lost counters, lost cache */
    uint64_t expired;   /* expired entries removed (lazily, for room, or by a sweep) */
    uint64_t refusals;  /* writes refused with SHDICT_FULL or for an entry too large */
};

/* Called by shdict_keys() for each live key with the key's shard locked: it must not
 * call any shdict function on the same dictionary (that may deadlock), must not longjmp
 * (no Lua API calls that can raise), and should be quick. key and v->str are borrowed
 * for the duration of the call. Return 0 to go on, anything else to stop. */
typedef int shdict_key_fn(void *ctx, const char *key, size_t klen,
                          const struct shdict_value *v);

/* A new empty dictionary, or NULL with the reason in err. The hash key is drawn from
 * getrandom(2) so that clients cannot choose keys that collide. The caller owns the
 * result and frees it with shdict_free() after every other thread has stopped using it. */
struct shdict *shdict_new(size_t max_bytes, unsigned nshards, enum shdict_full full,
                          char *err, size_t errlen);
void           shdict_free(struct shdict *d);

/* Copy the value of key into *out. A string is copied into out->buf only if it fits in
 * out->cap; otherwise SHDICT_TOO_SMALL and out->len is the length needed. */
enum shdict_rc shdict_get(struct shdict *d, const char *key, size_t klen,
                          struct shdict_value *out, double now);

/* Store a copy of *v under key, replacing any value and its TTL. ttl > 0 sets an expiry
 * of now + ttl; ttl 0 means none. A SHDICT_NIL value deletes the key and returns SHDICT_OK
 * whether or not it existed. SHDICT_EVICT: may evict other entries, and never fails for
 * lack of room unless the entry alone is larger than its shard's share. SHDICT_REFUSE:
 * SHDICT_FULL when the new value does not fit; the old one, if any, stays. */
enum shdict_rc shdict_set(struct shdict *d, const char *key, size_t klen,
                          const struct shdict_value *v, double ttl, double now);

/* As shdict_set, but only when key is absent or expired: SHDICT_EXISTS otherwise, and
 * the live entry is unchanged (its TTL too). v must not be SHDICT_NIL. */
enum shdict_rc shdict_add(struct shdict *d, const char *key, size_t klen,
                          const struct shdict_value *v, double ttl, double now);

/* Atomically add by to the number under key and store the result in *newval. A missing
 * or expired key is created as init + by, with expiry now + ttl (ttl 0: none). An existing
 * key keeps its expiry: incr never refreshes a TTL, so a counter created with ttl W counts
 * a fixed window of W seconds. Creating a key may evict (SHDICT_EVICT) or be refused with
 * SHDICT_FULL (SHDICT_REFUSE); adding to an existing one never is. On any error *newval is
 * not written. */
enum shdict_rc shdict_incr(struct shdict *d, const char *key, size_t klen, double by,
                           double init, double ttl, double now, double *newval);

/* Remove key. SHDICT_OK if it was there and live, SHDICT_NOT_FOUND otherwise. */
enum shdict_rc shdict_delete(struct shdict *d, const char *key, size_t klen, double now);

/* Remove up to max expired entries (max 0: all of them) and return how many were removed.
 * Meant for a periodic timer, so that memory held by dead keys comes back without waiting
 * for pressure. Successive calls with a max start where the previous one stopped. */
size_t shdict_flush_expired(struct shdict *d, double now, size_t max);

/* Call fn for each live key starting with prefix (plen 0: every key), shard by shard, in
 * no particular order; stop early when fn returns non-zero. Returns the number of calls.
 * Keys changed in other shards during the walk may or may not be seen. */
size_t shdict_keys(struct shdict *d, const char *prefix, size_t plen, double now,
                   shdict_key_fn *fn, void *ctx);

/* Totals over all shards, each shard read under its lock (not one atomic snapshot). */
void shdict_stats(struct shdict *d, struct shdict_stats *st);

/* The bytes one entry is charged against max_bytes, to size the dictionary. */
size_t shdict_entry_size(size_t klen, size_t vlen);

/* A fixed English phrase for rc, for logs and Lua's nil, 'reason' ("no memory"). */
const char *shdict_rc_str(enum shdict_rc rc);

#endif
