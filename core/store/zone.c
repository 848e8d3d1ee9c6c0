/* core/store/zone.c: the named zones of shared state; see zone.h. Each zone is today one
 * in-process dictionary (shdict.c) with SHDICT_EVICT or SHDICT_REFUSE; this file adds the
 * name, the "refusing" state, the rate-limited zone.full line and the key bounding that C
 * callers share with Lua. */
#include "store/zone.h"

#include <openssl/evp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "util/log.h"

struct zone {
    char            *name;     /* owns */
    bool             evict;    /* immutable */
    size_t           size;     /* immutable: the configured size */
    struct shdict   *local;    /* owns; the backend */
    atomic_bool      refusing; /* a write was refused and none succeeded since; relaxed: a
                                * hint for readers, ordered by nothing else */
    atomic_llong     logged;   /* ms since the epoch of the last zone.full line; CAS'd so
                                * that one thread of many writes it */
};

struct zones {
    struct zone *v; /* owns; n */
    size_t       n;
};

static unsigned
zone_shards(size_t size)
{
    size_t n = size / ZONE_SHARD_BYTES;

    return n < 1 ? 1 : n > ZONE_MAX_SHARDS ? ZONE_MAX_SHARDS : (unsigned)n;
}

struct zones *
zones_new(const struct config *cfg, char *err, size_t errlen)
{
    struct zones *zs = calloc(1, sizeof(*zs));
    char          why[256];

    if (zs == NULL || (zs->v = calloc(cfg->n_zones ? cfg->n_zones : 1, sizeof(*zs->v))) == NULL)
        goto nomem;
    for (; zs->n < cfg->n_zones; zs->n++) { /* counts what zones_free() must undo */
        const struct config_zone *c = &cfg->zones[zs->n];
        struct zone              *z = &zs->v[zs->n];

        z->evict = c->evict;
        z->size = c->size;
        atomic_init(&z->refusing, false);
        atomic_init(&z->logged, 0);
        if ((z->name = strdup(c->name)) == NULL)
            goto nomem;
        z->local = shdict_new(c->size, zone_shards(c->size),
                              c->evict ? SHDICT_EVICT : SHDICT_REFUSE, why, sizeof(why));
        if (z->local == NULL) {
            snprintf(err, errlen, "zones.%s: %s", c->name, why);
            zs->n++;
            goto fail;
        }
    }
    return zs;
nomem:
    snprintf(err, errlen, "zones: out of memory");
fail:
    zones_free(zs);
    return NULL;
}

void
zones_free(struct zones *zs)
{
    if (zs == NULL)
        return;
    for (size_t i = 0; i < zs->n; i++) {
        shdict_free(zs->v[i].local);
        free(zs->v[i].name);
    }
    free(zs->v);
    free(zs);
}

struct zone *
zones_at(struct zones *zs, size_t i)
{
    return zs != NULL && i < zs->n ? &zs->v[i] : NULL;
}

size_t
zones_count(const struct zones *zs)
{
    return zs != NULL ? zs->n : 0;
}

const char *
zone_name(const struct zone *z)
{
    return z->name;
}

bool
zone_evicts(const struct zone *z)
{
    return z->evict;
}

/* ---- the operations ---------------------------------------------------------------------- */

/* One warning every ZONE_FULL_LOG_EVERY seconds at most, however many writes are refused:
 * a client that fills a zone must not fill the log too. */
static void
zone_log_full(struct zone *z, enum shdict_rc rc, double now)
{
    long long           ms = (long long)(now * 1000);
    long long           last = atomic_load_explicit(&z->logged, memory_order_relaxed);
    struct shdict_stats st;
    struct logline      l;

    if (ms - last < (long long)(ZONE_FULL_LOG_EVERY * 1000) ||
        !atomic_compare_exchange_strong_explicit(&z->logged, &last, ms, memory_order_relaxed,
                                                 memory_order_relaxed))
        return;
    shdict_stats(z->local, &st);
    log_begin(&l, LOG_WARNING, "zone.full", 0);
    log_str(&l, "zone", z->name);
    log_int(&l, "capacity", (long long)z->size);
    log_int(&l, "bytes", (long long)st.bytes);
    log_int(&l, "entries", (long long)st.entries);
    log_int(&l, "refusals", (long long)st.refusals);
    log_str(&l, "msg", rc == SHDICT_FULL
                           ? "new entries are refused until there is room: remove entries, "
                             "or enlarge the zone (restart)"
                           : "an entry larger than the zone can hold was refused: enlarge "
                             "the zone (restart)");
    log_end(&l);
}

/* After a write: remember a refusal (in a zone that does not evict), forget it after a
 * success. A malloc failure is a refusal too: the entry is not there. */
static enum shdict_rc
zone_wrote(struct zone *z, enum shdict_rc rc, double now)
{
    if (rc == SHDICT_FULL || rc == SHDICT_NO_MEMORY) {
        if (!z->evict)
            atomic_store_explicit(&z->refusing, true, memory_order_relaxed);
        zone_log_full(z, rc, now);
    } else if (rc == SHDICT_OK && atomic_load_explicit(&z->refusing, memory_order_relaxed)) {
        atomic_store_explicit(&z->refusing, false, memory_order_relaxed);
    }
    return rc;
}

enum shdict_rc
zone_get(struct zone *z, const char *key, size_t klen, struct shdict_value *out, double now)
{
    return shdict_get(z->local, key, klen, out, now);
}

enum shdict_rc
zone_set(struct zone *z, const char *key, size_t klen, const struct shdict_value *v,
         double ttl, double now)
{
    enum shdict_rc rc = shdict_set(z->local, key, klen, v, ttl, now);

    return v->type == SHDICT_NIL ? rc : zone_wrote(z, rc, now);
}

enum shdict_rc
zone_add(struct zone *z, const char *key, size_t klen, const struct shdict_value *v,
         double ttl, double now)
{
    return zone_wrote(z, shdict_add(z->local, key, klen, v, ttl, now), now);
}

enum shdict_rc
zone_incr(struct zone *z, const char *key, size_t klen, double by, double ttl, double now,
          double *newval)
{
    return zone_wrote(z, shdict_incr(z->local, key, klen, by, 0, ttl, now, newval), now);
}

enum shdict_rc
zone_delete(struct zone *z, const char *key, size_t klen, double now)
{
    return shdict_delete(z->local, key, klen, now);
}

bool
zone_is_refusing(const struct zone *z)
{
    return atomic_load_explicit(&((struct zone *)z)->refusing, memory_order_relaxed);
}

size_t
zone_keys(struct zone *z, const char *prefix, size_t plen, double now, shdict_key_fn *fn,
          void *ctx)
{
    return shdict_keys(z->local, prefix, plen, now, fn, ctx);
}

void
zone_stats(struct zone *z, struct zone_stats *st)
{
    struct shdict_stats s;

    shdict_stats(z->local, &s);
    memset(st, 0, sizeof(*st));
    st->name = z->name;
    st->evict = z->evict;
    st->capacity = z->size;
    st->bytes = s.bytes;
    st->entries = s.entries;
    st->evictions = s.evictions;
    st->refusals = s.refusals;
    st->expired = s.expired;
}

/* ---- keys -------------------------------------------------------------------------------- */

size_t
zone_key_part(const char *s, size_t n, size_t max, char *out)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char     md[EVP_MAX_MD_SIZE];
    unsigned int      mdlen = 0;
    size_t            keep;

    if (max < 64 || max > ZONE_KEY_PART_MAX)
        return 0;
    if (n <= max) {
        memcpy(out, s, n);
        out[n] = '\0';
        return n;
    }
    if (EVP_Digest(s, n, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
        return 0;
    keep = max - 64;
    memcpy(out, s, keep);
    out[keep] = '~';
    for (unsigned i = 0; i < 32; i++) {
        out[keep + 1 + 2 * i] = hex[md[i] >> 4];
        out[keep + 2 + 2 * i] = hex[md[i] & 15];
    }
    out[max + 1] = '\0';
    return max + 1;
}
