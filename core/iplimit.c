/* core/iplimit.c: sharded counters of connections per client IP; see iplimit.h. */
#include "iplimit.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define IPLIMIT_SHARDS  64
#define IPLIMIT_BUCKETS 256 /* per shard */
#define IPLIMIT_IP_MAX  48  /* INET6_ADDRSTRLEN + margin */

struct iplimit_entry {
    char                  ip[IPLIMIT_IP_MAX];
    size_t                count;
    struct iplimit_entry *next;
};

struct iplimit_shard {
    pthread_mutex_t       mu; /* guards buckets */
    struct iplimit_entry *buckets[IPLIMIT_BUCKETS];
};

struct iplimit {
    _Atomic size_t       max_total;  /* a reload may change them */
    _Atomic size_t       max_per_ip;
    _Atomic size_t       total;
    struct iplimit_shard shards[IPLIMIT_SHARDS];
};

static uint32_t
iplimit_hash(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

struct iplimit *
iplimit_new(size_t max_total, size_t max_per_ip)
{
    struct iplimit *l = calloc(1, sizeof(*l));

    if (l == NULL)
        return NULL;
    l->max_total = max_total;
    l->max_per_ip = max_per_ip;
    for (int i = 0; i < IPLIMIT_SHARDS; i++)
        pthread_mutex_init(&l->shards[i].mu, NULL);
    return l;
}

void
iplimit_free(struct iplimit *l)
{
    if (l == NULL)
        return;
    for (int i = 0; i < IPLIMIT_SHARDS; i++) {
        for (int b = 0; b < IPLIMIT_BUCKETS; b++) {
            struct iplimit_entry *e = l->shards[i].buckets[b], *next;

            for (; e != NULL; e = next) {
                next = e->next;
                free(e);
            }
        }
        pthread_mutex_destroy(&l->shards[i].mu);
    }
    free(l);
}

static struct iplimit_entry **
iplimit_find(struct iplimit_shard *sh, uint32_t h, const char *ip)
{
    struct iplimit_entry **pp = &sh->buckets[(h / IPLIMIT_SHARDS) % IPLIMIT_BUCKETS];

    while (*pp != NULL && strcmp((*pp)->ip, ip) != 0)
        pp = &(*pp)->next;
    return pp;
}

enum iplimit_rc
iplimit_acquire(struct iplimit *l, const char *ip)
{
    uint32_t              h = iplimit_hash(ip);
    struct iplimit_shard *sh = &l->shards[h % IPLIMIT_SHARDS];
    struct iplimit_entry **pp, *e;
    enum iplimit_rc       rc = IPLIMIT_OK;

    if (atomic_fetch_add(&l->total, 1) >= l->max_total) {
        atomic_fetch_sub(&l->total, 1);
        return IPLIMIT_TOTAL;
    }
    pthread_mutex_lock(&sh->mu);
    pp = iplimit_find(sh, h, ip);
    e = *pp;
    if (e == NULL && (e = calloc(1, sizeof(*e))) != NULL) {
        strncpy(e->ip, ip, sizeof(e->ip) - 1);
        *pp = e;
    }
    if (e == NULL || e->count >= l->max_per_ip)
        rc = IPLIMIT_PER_IP;
    else
        e->count++;
    pthread_mutex_unlock(&sh->mu);
    if (rc != IPLIMIT_OK)
        atomic_fetch_sub(&l->total, 1);
    return rc;
}

void
iplimit_release(struct iplimit *l, const char *ip)
{
    uint32_t              h = iplimit_hash(ip);
    struct iplimit_shard *sh = &l->shards[h % IPLIMIT_SHARDS];
    struct iplimit_entry **pp, *e;

    pthread_mutex_lock(&sh->mu);
    pp = iplimit_find(sh, h, ip);
    e = *pp;
    if (e != NULL && e->count > 0 && --e->count == 0) {
        *pp = e->next;
        free(e);
    }
    pthread_mutex_unlock(&sh->mu);
    atomic_fetch_sub(&l->total, 1);
}

size_t
iplimit_total(struct iplimit *l)
{
    return atomic_load(&l->total);
}

void
iplimit_set_limits(struct iplimit *l, size_t max_total, size_t max_per_ip)
{
    atomic_store_explicit(&l->max_total, max_total, memory_order_relaxed);
    atomic_store_explicit(&l->max_per_ip, max_per_ip, memory_order_relaxed);
}
