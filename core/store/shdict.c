/* core/store/shdict.c: the sharded dictionary behind each local zone; see shdict.h for the
 * contract. Each shard is a chained hash table that doubles up to a fixed ceiling, an
 * intrusive LRU list and a byte count, all under one mutex; a SHDICT_REFUSE dictionary
 * also has one atomic count of its entries' bytes, reserved before an entry goes in.
 * malloc and free stay outside the lock: new entries and bucket arrays are made before
 * locking, and removed entries are collected on a list that is freed after unlocking, so
 * one slow allocation never stalls other workers. Zones, the Lua binding and the control
 * socket commands live elsewhere. */
#include "store/shdict.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define SHDICT_MALLOC_OVERHEAD 16 /* glibc's chunk header and rounding, roughly */
#define SHDICT_MIN_BUCKETS     16
#define SHDICT_CACHE_LINE      64

struct shdict_link {
    struct shdict_link *prev, *next;
};

struct shdict_entry {
    struct shdict_link   lru;     /* first member, so a link converts to its entry */
    struct shdict_entry *next;    /* hash chain; after removal, the list of entries to free */
    uint64_t             hash;
    double               expires; /* absolute; 0 = never */
    double               num;     /* SHDICT_NUMBER */
    uint32_t             vlen;    /* SHDICT_STRING: octets after the key */
    uint16_t             klen;
    uint8_t              type;    /* enum shdict_type, never SHDICT_NIL */
    char                 data[];  /* the key, then the string value */
};

struct shdict_shard {
    /* aligned so that two shards' mutexes never share a cache line */
    _Alignas(SHDICT_CACHE_LINE) pthread_mutex_t mu; /* guards the shard and its entries */
    struct shdict_entry **buckets;      /* owns; nbuckets chains */
    size_t                nbuckets;     /* a power of two, at most max_buckets */
    size_t                max_buckets;  /* immutable; its array is reserved in the share */
    size_t                entry_budget; /* immutable; the share minus that reserve */
    size_t                entry_bytes;  /* charged for the entries now in the table */
    size_t                count;
    atomic_size_t        *pool;         /* SHDICT_REFUSE: the dictionary's pool_used, which
                                         * counts this shard's entries too; NULL: EVICT */
    double                min_expires;  /* no entry expires earlier; INFINITY if none can */
    struct shdict_link    lru;          /* sentinel: next is most recent, prev least */
    uint64_t              evictions;
    uint64_t              expired;
};

struct shdict {
    uint64_t             key[2];     /* SipHash key from getrandom(); immutable */
    size_t               max_bytes;  /* immutable */
    enum shdict_full     full;       /* immutable */
    size_t               pool_budget; /* SHDICT_REFUSE: the shares' sum; immutable */
    atomic_size_t        pool_used;  /* SHDICT_REFUSE: bytes of all entries; only
                                      * shdict_reserve() adds, so it never passes the
                                      * budget; relaxed: it guards nothing but itself */
    atomic_uint_fast64_t refusals;   /* relaxed: a statistic */
    unsigned             nshards;    /* immutable once shdict_new() returns */
    atomic_uint          sweep_next; /* shard where a bounded flush resumes; relaxed is
                                      * enough, it only spreads the work */
    struct shdict_shard *shards;     /* owns; nshards */
};

/* ---- hashing ---- */

#define SHDICT_ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))
#define SHDICT_SIPROUND                                                                 \
    do {                                                                                \
        v0 += v1; v1 = SHDICT_ROTL(v1, 13); v1 ^= v0; v0 = SHDICT_ROTL(v0, 32);         \
        v2 += v3; v3 = SHDICT_ROTL(v3, 16); v3 ^= v2;                                   \
        v0 += v3; v3 = SHDICT_ROTL(v3, 21); v3 ^= v0;                                   \
        v2 += v1; v1 = SHDICT_ROTL(v1, 17); v1 ^= v2; v2 = SHDICT_ROTL(v2, 32);         \
    } while (0)

/* SipHash-1-3 (the variant Rust's HashMap uses): keys come from clients (addresses, IPs),
 * and a keyed PRF is what stops them from choosing keys that share a bucket. A seeded
 * FNV-1a does not: its low bits depend only on the low bits of the seed and input. Words
 * are read in host order, which is SipHash on little-endian hosts and as good elsewhere. */
static uint64_t
shdict_hash(const uint64_t k[2], const char *p, size_t n)
{
    uint64_t v0 = 0x736f6d6570736575ULL ^ k[0], v1 = 0x646f72616e646f6dULL ^ k[1];
    uint64_t v2 = 0x6c7967656e657261ULL ^ k[0], v3 = 0x7465646279746573ULL ^ k[1];
    uint64_t m, b = (uint64_t)n << 56;
    size_t   i;

    for (i = 0; i + 8 <= n; i += 8) {
        memcpy(&m, p + i, 8);
        v3 ^= m;
        SHDICT_SIPROUND;
        v0 ^= m;
    }
    for (size_t j = 0; i + j < n; j++)
        b |= (uint64_t)(unsigned char)p[i + j] << (8 * j);
    v3 ^= b;
    SHDICT_SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SHDICT_SIPROUND;
    SHDICT_SIPROUND;
    SHDICT_SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* The high half picks the shard and the low half the bucket, so the two are independent. */
static struct shdict_shard *
shdict_shard_of(struct shdict *d, uint64_t h)
{
    return &d->shards[(h >> 32) % d->nshards];
}

/* ---- entries, under the shard lock ---- */

size_t
shdict_entry_size(size_t klen, size_t vlen)
{
    return sizeof(struct shdict_entry) + klen + vlen + SHDICT_MALLOC_OVERHEAD;
}

static bool
shdict_is_live(const struct shdict_entry *e, double now)
{
    return e->expires == 0 || now < e->expires;
}

static struct shdict_entry **
shdict_find(struct shdict_shard *sh, uint64_t h, const char *key, size_t klen)
{
    struct shdict_entry **pp = &sh->buckets[h & (sh->nbuckets - 1)];

    for (; *pp != NULL; pp = &(*pp)->next) {
        const struct shdict_entry *e = *pp;

        if (e->hash == h && e->klen == klen && memcmp(e->data, key, klen) == 0)
            break;
    }
    return pp;
}

/* The chain slot that points at e, which must be in the table. */
static struct shdict_entry **
shdict_slot_of(struct shdict_shard *sh, const struct shdict_entry *e)
{
    struct shdict_entry **pp = &sh->buckets[e->hash & (sh->nbuckets - 1)];

    while (*pp != e)
        pp = &(*pp)->next;
    return pp;
}

static void
shdict_lru_push(struct shdict_shard *sh, struct shdict_entry *e)
{
    e->lru.prev = &sh->lru;
    e->lru.next = sh->lru.next;
    sh->lru.next->prev = &e->lru;
    sh->lru.next = &e->lru;
}

static void
shdict_lru_unlink(struct shdict_entry *e)
{
    e->lru.prev->next = e->lru.next;
    e->lru.next->prev = e->lru.prev;
}

static void
shdict_touch(struct shdict_shard *sh, struct shdict_entry *e)
{
    if (sh->lru.next != &e->lru) {
        shdict_lru_unlink(e);
        shdict_lru_push(sh, e);
    }
}

static void
shdict_note_expiry(struct shdict_shard *sh, double expires)
{
    if (expires != 0 && expires < sh->min_expires)
        sh->min_expires = expires;
}

static void
shdict_insert(struct shdict_shard *sh, struct shdict_entry *e)
{
    struct shdict_entry **head = &sh->buckets[e->hash & (sh->nbuckets - 1)];

    e->next = *head;
    *head = e;
    shdict_lru_push(sh, e);
    sh->count++;
    sh->entry_bytes += shdict_entry_size(e->klen, e->vlen);
    shdict_note_expiry(sh, e->expires);
}

/* Unlink *pp from the table and put it on *dead, to be freed once the lock is dropped.
 * Its bytes stay charged to the pool: the caller hands them on to a replacement. */
static void
shdict_unlink(struct shdict_shard *sh, struct shdict_entry **pp, struct shdict_entry **dead)
{
    struct shdict_entry *e = *pp;

    *pp = e->next;
    shdict_lru_unlink(e);
    sh->count--;
    sh->entry_bytes -= shdict_entry_size(e->klen, e->vlen);
    e->next = *dead;
    *dead = e;
}

/* Unlink *pp and give its bytes back to the pool. */
static void
shdict_remove(struct shdict_shard *sh, struct shdict_entry **pp, struct shdict_entry **dead)
{
    size_t size = shdict_entry_size((*pp)->klen, (*pp)->vlen);

    shdict_unlink(sh, pp, dead);
    if (sh->pool != NULL)
        atomic_fetch_sub_explicit(sh->pool, size, memory_order_relaxed);
}

/* SHDICT_REFUSE: take n bytes from the pool, or false when they are not there. A
 * compare-and-swap, so that two shards can never both take the last bytes. */
static bool
shdict_reserve(struct shdict *d, size_t n)
{
    size_t used = atomic_load_explicit(&d->pool_used, memory_order_relaxed);

    do {
        if (n > d->pool_budget - used)
            return false;
    } while (!atomic_compare_exchange_weak_explicit(&d->pool_used, &used, used + n,
                                                    memory_order_relaxed,
                                                    memory_order_relaxed));
    return true;
}

static void
shdict_free_list(struct shdict_entry *e)
{
    struct shdict_entry *next;

    for (; e != NULL; e = next) {
        next = e->next;
        free(e);
    }
}

/* Remove up to max expired entries. Only a complete pass learns the true earliest expiry;
 * a partial one leaves min_expires as the lower bound it still is. */
static size_t
shdict_sweep(struct shdict_shard *sh, double now, size_t max, struct shdict_entry **dead)
{
    double min = INFINITY;
    size_t n = 0;

    for (size_t b = 0; b < sh->nbuckets; b++) {
        struct shdict_entry **pp = &sh->buckets[b];

        while (*pp != NULL) {
            if (shdict_is_live(*pp, now)) {
                if ((*pp)->expires != 0 && (*pp)->expires < min)
                    min = (*pp)->expires;
                pp = &(*pp)->next;
                continue;
            }
            if (n == max) {
                sh->expired += n;
                return n;
            }
            shdict_remove(sh, pp, dead);
            n++;
        }
    }
    sh->expired += n;
    sh->min_expires = min;
    return n;
}

/* Make room for need more bytes: expired entries go first (one full pass, and only when
 * min_expires says there can be any), then live ones from the cold end of the LRU list.
 * The caller has checked that need fits in an empty shard. */
static void
shdict_make_room(struct shdict_shard *sh, size_t need, double now, struct shdict_entry **dead)
{
    bool swept = false;

    while (sh->entry_bytes + need > sh->entry_budget) {
        if (!swept && now >= sh->min_expires) {
            shdict_sweep(sh, now, SIZE_MAX, dead);
            swept = true;
            continue;
        }
        assert(sh->lru.prev != &sh->lru);
        shdict_remove(sh, shdict_slot_of(sh, (struct shdict_entry *)sh->lru.prev), dead);
        sh->evictions++;
    }
}

/* Under the lock: the bucket count to grow from, or 0. Doubling at load factor 1 keeps
 * chains short until the reserved array size is reached; past that, chains grow instead. */
static size_t
shdict_grow_from(const struct shdict_shard *sh)
{
    return sh->count > sh->nbuckets && sh->nbuckets < sh->max_buckets ? sh->nbuckets : 0;
}

/* Without the lock: allocate the doubled array, then rehash under the lock unless another
 * thread grew the shard meanwhile. A failed calloc only means longer chains. */
static void
shdict_grow(struct shdict_shard *sh, size_t from)
{
    struct shdict_entry **nb = calloc(2 * from, sizeof(*nb)), **old = nb;
    size_t                mask = 2 * from - 1;

    if (nb == NULL)
        return;
    pthread_mutex_lock(&sh->mu);
    if (sh->nbuckets == from) {
        for (size_t b = 0; b < from; b++) {
            struct shdict_entry *e = sh->buckets[b], *next;

            for (; e != NULL; e = next) {
                next = e->next;
                e->next = nb[e->hash & mask];
                nb[e->hash & mask] = e;
            }
        }
        old = sh->buckets;
        sh->buckets = nb;
        sh->nbuckets = 2 * from;
    }
    pthread_mutex_unlock(&sh->mu);
    free(old);
}

/* The one way out of a locked section: unlock, then free and grow, which need no lock. */
static void
shdict_unlock(struct shdict_shard *sh, struct shdict_entry *dead)
{
    size_t from = shdict_grow_from(sh);

    pthread_mutex_unlock(&sh->mu);
    shdict_free_list(dead);
    if (from != 0)
        shdict_grow(sh, from);
}

/* ---- arguments and values ---- */

static bool
shdict_key_ok(const char *key, size_t klen)
{
    assert(key != NULL || klen == 0);
    return klen >= 1 && klen <= SHDICT_MAX_KEY;
}

static bool
shdict_ttl_ok(double ttl)
{
    return ttl >= 0 && isfinite(ttl); /* NaN fails the first test */
}

static double
shdict_expiry(double ttl, double now)
{
    return ttl > 0 ? now + ttl : 0;
}

static enum shdict_rc
shdict_check_value(const char *key, size_t klen, const struct shdict_value *v, double ttl)
{
    if (!shdict_key_ok(key, klen))
        return SHDICT_BAD_KEY;
    if (v->type != SHDICT_NUMBER && v->type != SHDICT_STRING)
        return SHDICT_BAD_VALUE;
    if (v->type == SHDICT_STRING && v->len > SHDICT_MAX_VALUE)
        return SHDICT_BAD_VALUE;
    assert(v->type != SHDICT_STRING || v->str != NULL || v->len == 0);
    return shdict_ttl_ok(ttl) ? SHDICT_OK : SHDICT_BAD_VALUE;
}

/* A new entry, not yet in any table; called without a lock. */
static struct shdict_entry *
shdict_entry_new(uint64_t h, const char *key, size_t klen, const struct shdict_value *v,
                 double expires)
{
    size_t               vlen = v->type == SHDICT_STRING ? v->len : 0;
    struct shdict_entry *e = malloc(sizeof(*e) + klen + vlen);

    if (e == NULL)
        return NULL;
    e->hash = h;
    e->expires = expires;
    e->num = v->type == SHDICT_NUMBER ? v->num : 0;
    e->vlen = (uint32_t)vlen;
    e->klen = (uint16_t)klen;
    e->type = (uint8_t)v->type;
    memcpy(e->data, key, klen);
    if (vlen != 0)
        memcpy(e->data + klen, v->str, vlen);
    return e;
}

static enum shdict_rc
shdict_copy_out(const struct shdict_entry *e, struct shdict_value *out)
{
    out->type = (enum shdict_type)e->type;
    out->num = e->num;
    out->str = NULL;
    out->len = e->vlen;
    out->expires = e->expires;
    if (e->type != SHDICT_STRING)
        return SHDICT_OK;
    if (e->vlen > out->cap)
        return SHDICT_TOO_SMALL;
    if (e->vlen != 0)
        memcpy(out->buf, e->data + e->klen, e->vlen);
    out->str = out->buf;
    return SHDICT_OK;
}

/* ---- the API ---- */

enum shdict_rc
shdict_get(struct shdict *d, const char *key, size_t klen, struct shdict_value *out,
           double now)
{
    struct shdict_entry *e, **pp, *dead = NULL;
    struct shdict_shard *sh;
    enum shdict_rc       rc = SHDICT_NOT_FOUND;
    uint64_t             h;

    if (!shdict_key_ok(key, klen))
        return SHDICT_BAD_KEY;
    h = shdict_hash(d->key, key, klen);
    sh = shdict_shard_of(d, h);
    pthread_mutex_lock(&sh->mu);
    pp = shdict_find(sh, h, key, klen);
    if ((e = *pp) != NULL && !shdict_is_live(e, now)) {
        shdict_remove(sh, pp, &dead);
        sh->expired++;
    } else if (e != NULL) {
        rc = shdict_copy_out(e, out);
        shdict_touch(sh, e);
    }
    shdict_unlock(sh, dead);
    return rc;
}

/* Under the lock: put e (not in any table yet) under its key, replacing the entry there
 * unless only_if_absent and that one is live. SHDICT_EVICT makes room by evicting;
 * SHDICT_REFUSE reserves the difference in size, or gives SHDICT_FULL with nothing
 * changed. On success the table owns e. */
static enum shdict_rc
shdict_put(struct shdict *d, struct shdict_shard *sh, struct shdict_entry *e,
           bool only_if_absent, double now, struct shdict_entry **dead)
{
    size_t                size = shdict_entry_size(e->klen, e->vlen), old;
    struct shdict_entry **pp = shdict_find(sh, e->hash, e->data, e->klen);

    if (*pp != NULL && !shdict_is_live(*pp, now)) {
        shdict_remove(sh, pp, dead);
        sh->expired++;
        pp = shdict_find(sh, e->hash, e->data, e->klen); /* *pp is NULL now */
    }
    if (*pp != NULL && only_if_absent)
        return SHDICT_EXISTS;
    if (d->full == SHDICT_EVICT) {
        if (*pp != NULL)
            shdict_remove(sh, pp, dead);
        shdict_make_room(sh, size, now, dead);
    } else {
        old = *pp != NULL ? shdict_entry_size((*pp)->klen, (*pp)->vlen) : 0;
        if (size > old && !shdict_reserve(d, size - old))
            return SHDICT_FULL;
        if (size < old)
            atomic_fetch_sub_explicit(&d->pool_used, old - size, memory_order_relaxed);
        if (*pp != NULL)
            shdict_unlink(sh, pp, dead); /* its bytes now count for e */
    }
    shdict_insert(sh, e);
    return SHDICT_OK;
}

/* A refused write is counted; a SHDICT_FULL one is tried once more if removing the expired
 * entries of every shard freed anything. */
static bool
shdict_retry_full(struct shdict *d, enum shdict_rc rc, double now)
{
    return rc == SHDICT_FULL && shdict_flush_expired(d, now, 0) > 0;
}

static enum shdict_rc
shdict_refused(struct shdict *d, enum shdict_rc rc)
{
    if (rc == SHDICT_FULL)
        atomic_fetch_add_explicit(&d->refusals, 1, memory_order_relaxed);
    return rc;
}

static enum shdict_rc
shdict_store(struct shdict *d, const char *key, size_t klen, const struct shdict_value *v,
             double ttl, double now, bool only_if_absent)
{
    struct shdict_entry *e, *dead = NULL;
    struct shdict_shard *sh;
    enum shdict_rc       rc;
    uint64_t             h;
    size_t               size;

    if ((rc = shdict_check_value(key, klen, v, ttl)) != SHDICT_OK)
        return rc;
    h = shdict_hash(d->key, key, klen);
    sh = shdict_shard_of(d, h);
    size = shdict_entry_size(klen, v->type == SHDICT_STRING ? v->len : 0);
    if (size > sh->entry_budget) { /* refuse before evicting anything for it */
        atomic_fetch_add_explicit(&d->refusals, 1, memory_order_relaxed);
        return SHDICT_NO_MEMORY;
    }
    if ((e = shdict_entry_new(h, key, klen, v, shdict_expiry(ttl, now))) == NULL)
        return SHDICT_NO_MEMORY;
    for (int attempt = 0;; attempt++) {
        pthread_mutex_lock(&sh->mu);
        rc = shdict_put(d, sh, e, only_if_absent, now, &dead);
        shdict_unlock(sh, dead);
        dead = NULL;
        if (rc == SHDICT_OK)
            return rc;
        if (attempt > 0 || !shdict_retry_full(d, rc, now))
            break;
    }
    free(e);
    return shdict_refused(d, rc);
}

enum shdict_rc
shdict_set(struct shdict *d, const char *key, size_t klen, const struct shdict_value *v,
           double ttl, double now)
{
    enum shdict_rc rc;

    if (v->type == SHDICT_NIL) {
        rc = shdict_delete(d, key, klen, now);
        return rc == SHDICT_NOT_FOUND ? SHDICT_OK : rc;
    }
    return shdict_store(d, key, klen, v, ttl, now, false);
}

enum shdict_rc
shdict_add(struct shdict *d, const char *key, size_t klen, const struct shdict_value *v,
           double ttl, double now)
{
    return v->type == SHDICT_NIL ? SHDICT_BAD_VALUE
                                 : shdict_store(d, key, klen, v, ttl, now, true);
}

/* Under the lock, for incr: the entry for key, or NULL. An expired number is restarted in
 * place at init with a fresh expiry, which spares a free and a malloc at every window of a
 * fixed-window counter; an expired string is removed. */
static struct shdict_entry *
shdict_incr_find(struct shdict_shard *sh, uint64_t h, const char *key, size_t klen,
                 double init, double expires, double now, struct shdict_entry **dead)
{
    struct shdict_entry **pp = shdict_find(sh, h, key, klen), *e = *pp;

    if (e == NULL || shdict_is_live(e, now))
        return e;
    sh->expired++;
    if (e->type != SHDICT_NUMBER) {
        shdict_remove(sh, pp, dead);
        return NULL;
    }
    e->num = init;
    e->expires = expires;
    shdict_note_expiry(sh, expires);
    return e;
}

/* Under the lock: make room for a new counter (SHDICT_EVICT evicts, SHDICT_REFUSE
 * reserves or says no). */
static bool
shdict_room_for(struct shdict *d, struct shdict_shard *sh, size_t size, double now,
                struct shdict_entry **dead)
{
    if (d->full == SHDICT_REFUSE)
        return shdict_reserve(d, size);
    shdict_make_room(sh, size, now, dead);
    return true;
}

static enum shdict_rc
shdict_incr_once(struct shdict *d, const char *key, size_t klen, uint64_t h, double by,
                 double init, double expires, double now, double *newval)
{
    struct shdict_value  v = {.type = SHDICT_NUMBER, .num = init};
    struct shdict_entry *e, *spare = NULL, *dead = NULL;
    struct shdict_shard *sh = shdict_shard_of(d, h);
    enum shdict_rc       rc = SHDICT_OK;

    pthread_mutex_lock(&sh->mu);
    /* A missing key needs an entry: make it without the lock, then look again, because
     * another thread may have created the key in between. */
    while ((e = shdict_incr_find(sh, h, key, klen, init, expires, now, &dead)) == NULL &&
           spare == NULL) {
        pthread_mutex_unlock(&sh->mu);
        if ((spare = shdict_entry_new(h, key, klen, &v, expires)) == NULL) {
            shdict_free_list(dead);
            return SHDICT_NO_MEMORY;
        }
        pthread_mutex_lock(&sh->mu);
    }
    if (e == NULL && shdict_room_for(d, sh, shdict_entry_size(klen, 0), now, &dead)) {
        shdict_insert(sh, spare);
        e = spare;
        spare = NULL;
    }
    if (e == NULL) {
        rc = SHDICT_FULL;
    } else if (e->type == SHDICT_NUMBER) {
        e->num += by;
        *newval = e->num;
        shdict_touch(sh, e);
    } else {
        rc = SHDICT_NOT_NUMBER;
    }
    shdict_unlock(sh, dead);
    free(spare);
    return rc;
}

enum shdict_rc
shdict_incr(struct shdict *d, const char *key, size_t klen, double by, double init,
            double ttl, double now, double *newval)
{
    enum shdict_rc rc;
    uint64_t       h;

    if (!shdict_key_ok(key, klen))
        return SHDICT_BAD_KEY;
    if (!shdict_ttl_ok(ttl) || isnan(by) || isnan(init)) /* NaN would pass every limit */
        return SHDICT_BAD_VALUE;
    h = shdict_hash(d->key, key, klen);
    rc = shdict_incr_once(d, key, klen, h, by, init, shdict_expiry(ttl, now), now, newval);
    if (shdict_retry_full(d, rc, now))
        rc = shdict_incr_once(d, key, klen, h, by, init, shdict_expiry(ttl, now), now, newval);
    return shdict_refused(d, rc);
}

enum shdict_rc
shdict_delete(struct shdict *d, const char *key, size_t klen, double now)
{
    struct shdict_entry *e, **pp, *dead = NULL;
    struct shdict_shard *sh;
    enum shdict_rc       rc = SHDICT_NOT_FOUND;
    uint64_t             h;

    if (!shdict_key_ok(key, klen))
        return SHDICT_BAD_KEY;
    h = shdict_hash(d->key, key, klen);
    sh = shdict_shard_of(d, h);
    pthread_mutex_lock(&sh->mu);
    pp = shdict_find(sh, h, key, klen);
    if ((e = *pp) != NULL) {
        if (shdict_is_live(e, now))
            rc = SHDICT_OK;
        else
            sh->expired++;
        shdict_remove(sh, pp, &dead);
    }
    shdict_unlock(sh, dead);
    return rc;
}

size_t
shdict_flush_expired(struct shdict *d, double now, size_t max)
{
    size_t   limit = max != 0 ? max : SIZE_MAX, n = 0;
    unsigned start = atomic_load_explicit(&d->sweep_next, memory_order_relaxed);

    for (unsigned i = 0; i < d->nshards && n < limit; i++) {
        unsigned             s = (start + i) % d->nshards;
        struct shdict_shard *sh = &d->shards[s];
        struct shdict_entry *dead = NULL;

        pthread_mutex_lock(&sh->mu);
        if (now >= sh->min_expires) /* nothing here can have expired yet */
            n += shdict_sweep(sh, now, limit - n, &dead);
        pthread_mutex_unlock(&sh->mu);
        shdict_free_list(dead);
        if (n == limit)
            atomic_store_explicit(&d->sweep_next, s, memory_order_relaxed);
    }
    return n;
}

/* Under the lock: call fn for the shard's matching live keys; true if fn asked to stop. */
static bool
shdict_keys_shard(struct shdict_shard *sh, const char *prefix, size_t plen, double now,
                  shdict_key_fn *fn, void *ctx, size_t *n)
{
    for (size_t b = 0; b < sh->nbuckets; b++) {
        for (const struct shdict_entry *e = sh->buckets[b]; e != NULL; e = e->next) {
            struct shdict_value v = {.type = (enum shdict_type)e->type, .num = e->num,
                                     .len = e->vlen, .expires = e->expires};

            if (!shdict_is_live(e, now) || e->klen < plen ||
                (plen != 0 && memcmp(e->data, prefix, plen) != 0))
                continue;
            if (e->type == SHDICT_STRING)
                v.str = e->data + e->klen;
            ++*n;
            if (fn(ctx, e->data, e->klen, &v) != 0)
                return true;
        }
    }
    return false;
}

size_t
shdict_keys(struct shdict *d, const char *prefix, size_t plen, double now,
            shdict_key_fn *fn, void *ctx)
{
    size_t n = 0;
    bool   stop = false;

    for (unsigned s = 0; s < d->nshards && !stop; s++) {
        struct shdict_shard *sh = &d->shards[s];

        pthread_mutex_lock(&sh->mu);
        stop = shdict_keys_shard(sh, prefix, plen, now, fn, ctx, &n);
        pthread_mutex_unlock(&sh->mu);
    }
    return n;
}

void
shdict_stats(struct shdict *d, struct shdict_stats *st)
{
    memset(st, 0, sizeof(*st));
    st->max_bytes = d->max_bytes;
    st->refusals = atomic_load_explicit(&d->refusals, memory_order_relaxed);
    for (unsigned s = 0; s < d->nshards; s++) {
        struct shdict_shard *sh = &d->shards[s];

        pthread_mutex_lock(&sh->mu);
        st->entries += sh->count;
        st->bytes += sh->entry_bytes + sh->nbuckets * sizeof(*sh->buckets);
        st->evictions += sh->evictions;
        st->expired += sh->expired;
        pthread_mutex_unlock(&sh->mu);
    }
}

const char *
shdict_rc_str(enum shdict_rc rc)
{
    switch (rc) {
    case SHDICT_OK:         return "ok";
    case SHDICT_NOT_FOUND:  return "not found";
    case SHDICT_TOO_SMALL:  return "buffer too small";
    case SHDICT_NOT_NUMBER: return "not a number";
    case SHDICT_BAD_KEY:    return "bad key";
    case SHDICT_BAD_VALUE:  return "bad value";
    case SHDICT_NO_MEMORY:  return "no memory";
    case SHDICT_FULL:       return "full";
    case SHDICT_EXISTS:     return "exists";
    case SHDICT_UNAVAILABLE: return "unavailable";
    }
    return "unknown";
}

/* ---- life cycle ---- */

/* One eighth of the share is set aside for the largest bucket array the shard may grow
 * to, so growing never has to evict; the rest is for entries. */
static int
shdict_shard_init(struct shdict_shard *sh, size_t share, atomic_size_t *pool)
{
    size_t max_buckets = SHDICT_MIN_BUCKETS;

    while (2 * max_buckets * sizeof(*sh->buckets) <= share / 8)
        max_buckets *= 2;
    sh->buckets = calloc(SHDICT_MIN_BUCKETS, sizeof(*sh->buckets));
    if (sh->buckets == NULL)
        return -1;
    if (pthread_mutex_init(&sh->mu, NULL) != 0) {
        free(sh->buckets);
        return -1;
    }
    sh->nbuckets = SHDICT_MIN_BUCKETS;
    sh->max_buckets = max_buckets;
    sh->entry_budget = share - max_buckets * sizeof(*sh->buckets);
    sh->min_expires = INFINITY;
    sh->pool = pool;
    sh->lru.prev = sh->lru.next = &sh->lru;
    return 0;
}

static int
shdict_seed(uint64_t key[2], char *err, size_t errlen)
{
    ssize_t n;

    do
        n = getrandom(key, 2 * sizeof(key[0]), 0);
    while (n < 0 && errno == EINTR);
    if (n == (ssize_t)(2 * sizeof(key[0])))
        return 0;
    snprintf(err, errlen, "shdict: getrandom: %s", n < 0 ? strerror(errno) : "short read");
    return -1;
}

struct shdict *
shdict_new(size_t max_bytes, unsigned nshards, enum shdict_full full, char *err,
           size_t errlen)
{
    struct shdict *d;

    if (nshards == 0 || nshards > SHDICT_MAX_SHARDS) {
        snprintf(err, errlen, "shdict: %u shards, want 1..%d", nshards, SHDICT_MAX_SHARDS);
        return NULL;
    }
    if (max_bytes / nshards < SHDICT_MIN_SHARD) {
        snprintf(err, errlen, "shdict: %zu bytes over %u shards is under %d bytes a shard",
                 max_bytes, nshards, SHDICT_MIN_SHARD);
        return NULL;
    }
    if ((d = calloc(1, sizeof(*d))) == NULL)
        goto nomem;
    if (shdict_seed(d->key, err, errlen) != 0)
        goto fail;
    d->max_bytes = max_bytes;
    d->full = full;
    atomic_init(&d->pool_used, 0);
    atomic_init(&d->refusals, 0);
    d->shards = aligned_alloc(SHDICT_CACHE_LINE, nshards * sizeof(*d->shards));
    if (d->shards == NULL)
        goto nomem;
    memset(d->shards, 0, nshards * sizeof(*d->shards));
    for (; d->nshards < nshards; d->nshards++) { /* counts what shdict_free() must undo */
        if (shdict_shard_init(&d->shards[d->nshards], max_bytes / nshards,
                              full == SHDICT_REFUSE ? &d->pool_used : NULL) != 0)
            goto nomem;
        d->pool_budget += d->shards[d->nshards].entry_budget;
    }
    return d;
nomem:
    snprintf(err, errlen, "shdict: out of memory");
fail:
    shdict_free(d);
    return NULL;
}

void
shdict_free(struct shdict *d)
{
    if (d == NULL)
        return;
    for (unsigned s = 0; s < d->nshards; s++) {
        struct shdict_shard *sh = &d->shards[s];

        for (size_t b = 0; b < sh->nbuckets; b++)
            shdict_free_list(sh->buckets[b]);
        free(sh->buckets);
        pthread_mutex_destroy(&sh->mu);
    }
    free(d->shards);
    free(d);
}
