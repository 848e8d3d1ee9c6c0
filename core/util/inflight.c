/* core/util/inflight.c: the budget of memory for messages in transit; see inflight.h.
 * Synchronisation: the total is one atomic, changed only with compare-and-swap so that it
 * never runs past the limit, not even for a moment (a concurrent reservation is never
 * refused because of one that is about to fail). Per-client sums live in a hash table of
 * INFLIGHT_SHARDS shards, each behind its own mutex; an entry exists while its sum is
 * above zero. A reservation takes its client's shard lock, checks the share, then adds
 * to the total: both or neither. Sessions reserve in chunks (smtp_budget.c), so this is
 * a lock and a CAS per 64 KiB..1 MiB of message, not per read. */
#include "util/inflight.h"

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INFLIGHT_SHARDS  32
#define INFLIGHT_BUCKETS 64 /* per shard; only clients with a message in transit */

struct inflight_entry {
    char                   key[INFLIGHT_KEY_MAX];
    size_t                 bytes;
    struct inflight_entry *next;
};

struct inflight_shard {
    pthread_mutex_t        mu; /* guards buckets and every entry in them */
    struct inflight_entry *buckets[INFLIGHT_BUCKETS];
};

struct inflight {
    _Atomic size_t        max_total; /* a reload may change them */
    _Atomic size_t        max_per_client;
    _Atomic size_t        total;
    _Atomic size_t        clients;
    _Atomic uint64_t      refused;
    struct inflight_shard shards[INFLIGHT_SHARDS];
};

static uint32_t
inflight_hash(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

struct inflight *
inflight_new(size_t max_total, size_t max_per_client)
{
    struct inflight *f = calloc(1, sizeof(*f));

    if (f == NULL)
        return NULL;
    f->max_total = max_total;
    f->max_per_client = max_per_client;
    for (int i = 0; i < INFLIGHT_SHARDS; i++)
        pthread_mutex_init(&f->shards[i].mu, NULL);
    return f;
}

void
inflight_free(struct inflight *f)
{
    if (f == NULL)
        return;
    assert(atomic_load(&f->total) == 0 && atomic_load(&f->clients) == 0);
    for (int i = 0; i < INFLIGHT_SHARDS; i++) {
        for (int b = 0; b < INFLIGHT_BUCKETS; b++) {
            struct inflight_entry *e = f->shards[i].buckets[b], *next;

            for (; e != NULL; e = next) {
                next = e->next;
                free(e);
            }
        }
        pthread_mutex_destroy(&f->shards[i].mu);
    }
    free(f);
}

static struct inflight_shard *
inflight_shard(struct inflight *f, const char *client, struct inflight_entry ***pp)
{
    uint32_t               h = inflight_hash(client);
    struct inflight_shard *sh = &f->shards[h % INFLIGHT_SHARDS];

    *pp = &sh->buckets[(h / INFLIGHT_SHARDS) % INFLIGHT_BUCKETS];
    return sh;
}

/* The entry for client in the bucket at *pp, or where it would go. Under the lock. */
static struct inflight_entry **
inflight_find(struct inflight_entry **pp, const char *client)
{
    while (*pp != NULL && strncmp((*pp)->key, client, INFLIGHT_KEY_MAX - 1) != 0)
        pp = &(*pp)->next;
    return pp;
}

/* Add n to the total unless that passes the limit. */
static bool
inflight_add_total(struct inflight *f, size_t n)
{
    size_t max = atomic_load_explicit(&f->max_total, memory_order_relaxed);
    size_t cur = atomic_load(&f->total);

    do {
        if (cur > max || n > max - cur)
            return false;
    } while (!atomic_compare_exchange_weak(&f->total, &cur, cur + n));
    return true;
}

static void
inflight_unlink(struct inflight *f, struct inflight_entry **pp)
{
    struct inflight_entry *e = *pp;

    *pp = e->next;
    free(e);
    atomic_fetch_sub(&f->clients, 1);
}

enum inflight_rc
inflight_reserve(struct inflight *f, const char *client, size_t n)
{
    size_t                  share = atomic_load_explicit(&f->max_per_client,
                                                         memory_order_relaxed);
    struct inflight_entry **bucket, **pp, *e;
    struct inflight_shard  *sh = inflight_shard(f, client, &bucket);
    enum inflight_rc        rc = INFLIGHT_OK;

    pthread_mutex_lock(&sh->mu);
    pp = inflight_find(bucket, client);
    if (*pp == NULL && (e = calloc(1, sizeof(*e))) != NULL) {
        snprintf(e->key, sizeof(e->key), "%s", client);
        *pp = e;
        atomic_fetch_add(&f->clients, 1);
    }
    e = *pp;
    if (e == NULL)
        rc = INFLIGHT_TOTAL; /* no memory for the entry: the system is full */
    else if (e->bytes > share || n > share - e->bytes)
        rc = INFLIGHT_CLIENT;
    else if (!inflight_add_total(f, n))
        rc = INFLIGHT_TOTAL;
    else
        e->bytes += n;
    if (e != NULL && e->bytes == 0)
        inflight_unlink(f, pp);
    pthread_mutex_unlock(&sh->mu);
    return rc;
}

void
inflight_release(struct inflight *f, const char *client, size_t n)
{
    struct inflight_entry **bucket, **pp;
    struct inflight_shard  *sh = inflight_shard(f, client, &bucket);
    size_t                  before;

    if (n == 0)
        return;
    pthread_mutex_lock(&sh->mu);
    pp = inflight_find(bucket, client);
    assert(*pp != NULL && (*pp)->bytes >= n); /* releasing what was never reserved */
    if (*pp != NULL) {
        (*pp)->bytes -= n < (*pp)->bytes ? n : (*pp)->bytes;
        if ((*pp)->bytes == 0)
            inflight_unlink(f, pp);
    }
    pthread_mutex_unlock(&sh->mu);
    before = atomic_fetch_sub(&f->total, n);
    assert(before >= n);
    (void)before;
}

void
inflight_stats(struct inflight *f, struct inflight_stats *st)
{
    st->bytes = atomic_load(&f->total);
    st->max_bytes = atomic_load_explicit(&f->max_total, memory_order_relaxed);
    st->max_per_client = atomic_load_explicit(&f->max_per_client, memory_order_relaxed);
    st->clients = atomic_load(&f->clients);
    st->refused = atomic_load_explicit(&f->refused, memory_order_relaxed);
}

void
inflight_refused(struct inflight *f)
{
    atomic_fetch_add_explicit(&f->refused, 1, memory_order_relaxed);
}

void
inflight_set_limits(struct inflight *f, size_t max_total, size_t max_per_client)
{
    atomic_store_explicit(&f->max_total, max_total, memory_order_relaxed);
    atomic_store_explicit(&f->max_per_client, max_per_client, memory_order_relaxed);
}
