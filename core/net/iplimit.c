/* core/net/iplimit.c: sharded counters of connections per client network, and the name of a
 * client network; see iplimit.h. */
#include "net/iplimit.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IPLIMIT_SHARDS  64
#define IPLIMIT_BUCKETS 256 /* per shard */

struct iplimit_entry {
    char                  ip[IPLIMIT_CLIENT_MAX];
    size_t                count;
    struct iplimit_entry *next;
};

struct iplimit_shard {
    pthread_mutex_t       mu; /* guards buckets */
    struct iplimit_entry *buckets[IPLIMIT_BUCKETS];
};

struct iplimit {
    _Atomic size_t       max_total;  /* a reload may change them */
    _Atomic size_t       max_per_client;
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
iplimit_new(size_t max_total, size_t max_per_client)
{
    struct iplimit *l = calloc(1, sizeof(*l));

    if (l == NULL)
        return NULL;
    l->max_total = max_total;
    l->max_per_client = max_per_client;
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
    if (e == NULL || e->count >= l->max_per_client)
        rc = IPLIMIT_PER_CLIENT;
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

size_t
iplimit_count(struct iplimit *l, const char *client)
{
    uint32_t              h = iplimit_hash(client);
    struct iplimit_shard *sh = &l->shards[h % IPLIMIT_SHARDS];
    struct iplimit_entry *e;
    size_t                n;

    pthread_mutex_lock(&sh->mu);
    e = *iplimit_find(sh, h, client);
    n = e != NULL ? e->count : 0;
    pthread_mutex_unlock(&sh->mu);
    return n;
}

void
iplimit_set_limits(struct iplimit *l, size_t max_total, size_t max_per_client)
{
    atomic_store_explicit(&l->max_total, max_total, memory_order_relaxed);
    atomic_store_explicit(&l->max_per_client, max_per_client, memory_order_relaxed);
}

/* RFC 5952 section 4: lowercase hex without leading zeros; the longest run of two or
 * more zero groups (the first of equals) as "::"; no IPv4 dotted tail (section 5 keeps
 * that for well-known prefixes only, and a key must not change form with the bits). */
static void
iplimit_format_v6(const unsigned char a[16], char *out, size_t len)
{
    unsigned w[8];
    int      best = -1, best_len = 1, run = -1, i;
    size_t   n = 0;

    for (i = 0; i < 8; i++)
        w[i] = (unsigned)a[2 * i] << 8 | a[2 * i + 1];
    for (i = 0; i <= 8; i++) {
        if (i < 8 && w[i] == 0) {
            if (run < 0)
                run = i;
            continue;
        }
        if (run >= 0 && i - run > best_len) {
            best = run;
            best_len = i - run;
        }
        run = -1;
    }
    for (i = 0; i < 8; i++) {
        if (i == best) {
            n += (size_t)snprintf(out + n, len - n, "::");
            i += best_len - 1;
            continue;
        }
        n += (size_t)snprintf(out + n, len - n, "%s%x", n > 0 && out[n - 1] != ':' ? ":" : "",
                              w[i]);
    }
    if (n == 0)
        snprintf(out, len, "::");
}

void
iplimit_client_key(const char *addr, unsigned ipv6_prefix, char out[IPLIMIT_CLIENT_MAX])
{
    static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    unsigned char              a[16];
    char                       text[40]; /* 8 groups of 4, 7 colons, NUL */
    unsigned                   bits = ipv6_prefix < 1 ? 1 : ipv6_prefix > 128 ? 128 : ipv6_prefix;

    if (inet_pton(AF_INET6, addr, a) != 1) {
        /* IPv4 text is its own key; anything else (no address at all) is kept as is */
        snprintf(out, IPLIMIT_CLIENT_MAX, "%s", addr);
        return;
    }
    if (memcmp(a, v4mapped, sizeof(v4mapped)) == 0) {
        inet_ntop(AF_INET, a + 12, out, IPLIMIT_CLIENT_MAX);
        return;
    }
    for (unsigned i = 0; i < 16; i++) {
        unsigned keep = bits >= 8 * (i + 1) ? 8 : bits > 8 * i ? bits - 8 * i : 0;

        a[i] &= (unsigned char)(0xff00u >> keep);
    }
    iplimit_format_v6(a, text, sizeof(text));
    snprintf(out, IPLIMIT_CLIENT_MAX, "%s/%u", text, bits);
}
