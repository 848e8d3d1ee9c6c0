/* core/store/zone.c: the named zones of shared state; see zone.h. Each zone has an
 * in-process dictionary (shdict.c) with SHDICT_EVICT or SHDICT_REFUSE: its backend, or a
 * Redis zone's fallback. This file adds the name, the "refusing" state, the rate-limited
 * zone.full line, the key bounding that C callers share with Lua, and the dispatch to
 * the Redis side (zone_remote.c) for a zone whose entries live there. */
#include "store/zone.h"

#include <openssl/evp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "store/redis_sync.h"
#include "store/zone_internal.h"
#include "util/log.h"

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
        z->remote = c->backend == CONFIG_ZONE_REDIS;
        z->fail_closed = c->fail_closed;
        z->zs = zs;
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
    if (zones_redis_init(zs, cfg) != 0)
        goto nomem;
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
    redis_sync_free(zs->sync);
    if (zs->redis != NULL)
        config_redis_free(zs->redis);
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

/* A get of the local dictionary into r->v's buffer, or a heap one (r->heap) when the
 * string is longer. */
static void
zone_local_get(struct zone *z, const struct zone_op *op, struct zone_result *r)
{
    r->rc = shdict_get(z->local, op->key, op->klen, &r->v, op->now);
    if (r->rc != SHDICT_TOO_SMALL || op->kind != ZONE_GET)
        return;
    r->v.cap = r->v.len;
    if ((r->v.buf = r->heap = malloc(r->v.cap ? r->v.cap : 1)) == NULL) {
        r->rc = SHDICT_NO_MEMORY;
        return;
    }
    r->rc = shdict_get(z->local, op->key, op->klen, &r->v, op->now);
}

/* incr, or its read-only form, and the peek: on the local dictionary. */
static void
zone_local_incr(struct zone *z, const struct zone_op *op, struct zone_result *r)
{
    struct shdict_value v = {.buf = NULL, .cap = 0};

    if (op->readonly) {
        r->rc = shdict_get(z->local, op->key, op->klen, &v, op->now);
        r->num = r->rc == SHDICT_OK && v.type == SHDICT_NUMBER ? v.num : 0;
        if (r->rc == SHDICT_TOO_SMALL || (r->rc == SHDICT_OK && v.type != SHDICT_NUMBER))
            r->rc = SHDICT_NOT_NUMBER;
        else
            r->rc = SHDICT_OK;
    } else {
        r->rc = zone_wrote(z, shdict_incr(z->local, op->key, op->klen, op->by, 0, op->ttl,
                                          op->now, &r->num), op->now);
    }
    r->peek = 0;
    if (r->rc == SHDICT_OK && op->peek != NULL &&
        shdict_get(z->local, op->peek, op->plen, &v, op->now) == SHDICT_OK &&
        v.type == SHDICT_NUMBER)
        r->peek = v.num;
}

void
zone_exec_local(struct zone *z, const struct zone_op *op, struct zone_result *r)
{
    switch (op->kind) {
    case ZONE_GET: zone_local_get(z, op, r); break;
    case ZONE_SET:
        r->rc = shdict_set(z->local, op->key, op->klen, &op->value, op->ttl, op->now);
        if (op->value.type != SHDICT_NIL)
            zone_wrote(z, r->rc, op->now);
        break;
    case ZONE_ADD:
        r->rc = zone_wrote(z, shdict_add(z->local, op->key, op->klen, &op->value, op->ttl,
                                         op->now), op->now);
        break;
    case ZONE_INCR: zone_local_incr(z, op, r); break;
    case ZONE_DELETE: r->rc = shdict_delete(z->local, op->key, op->klen, op->now); break;
    }
}

void
zone_exec(struct zone *z, const struct zone_op *op, struct zone_result *r)
{
    r->heap = NULL;
    r->fallback = false;
    if (z->remote)
        zone_exec_remote(z, op, r);
    else
        zone_exec_local(z, op, r);
}

void
zone_result_cleanup(struct zone_result *r)
{
    free(r->heap);
    r->heap = NULL;
}

bool
zone_is_remote(const struct zone *z)
{
    return z->remote;
}

/* The calls of old, through zone_exec(). */
static enum shdict_rc
zone_exec_rc(struct zone *z, const struct zone_op *op, struct zone_result *r)
{
    zone_exec(z, op, r);
    zone_result_cleanup(r);
    return r->rc;
}

enum shdict_rc
zone_get(struct zone *z, const char *key, size_t klen, struct shdict_value *out, double now)
{
    struct zone_op     op = {.kind = ZONE_GET, .key = key, .klen = klen, .now = now};
    struct zone_result r = {.v = {.buf = out->buf, .cap = out->cap}};

    if (!z->remote)
        return shdict_get(z->local, key, klen, out, now);
    zone_exec(z, &op, &r);
    if (r.heap != NULL) { /* longer than out->cap: as shdict_get says it */
        r.rc = SHDICT_TOO_SMALL;
        r.v.str = NULL;
        r.v.buf = out->buf;
        r.v.cap = out->cap;
    }
    zone_result_cleanup(&r);
    *out = r.v;
    return r.rc;
}

enum shdict_rc
zone_set(struct zone *z, const char *key, size_t klen, const struct shdict_value *v,
         double ttl, double now)
{
    struct zone_op     op = {.kind = ZONE_SET, .key = key, .klen = klen, .value = *v,
                             .ttl = ttl, .now = now};
    struct zone_result r = {0};

    return zone_exec_rc(z, &op, &r);
}

enum shdict_rc
zone_add(struct zone *z, const char *key, size_t klen, const struct shdict_value *v,
         double ttl, double now)
{
    struct zone_op     op = {.kind = ZONE_ADD, .key = key, .klen = klen, .value = *v,
                             .ttl = ttl, .now = now};
    struct zone_result r = {0};

    return zone_exec_rc(z, &op, &r);
}

enum shdict_rc
zone_incr(struct zone *z, const char *key, size_t klen, double by, double ttl, double now,
          double *newval)
{
    struct zone_op     op = {.kind = ZONE_INCR, .key = key, .klen = klen, .by = by,
                             .ttl = ttl, .now = now};
    struct zone_result r = {0};

    if (zone_exec_rc(z, &op, &r) == SHDICT_OK)
        *newval = r.num;
    return r.rc;
}

enum shdict_rc
zone_delete(struct zone *z, const char *key, size_t klen, double now)
{
    struct zone_op     op = {.kind = ZONE_DELETE, .key = key, .klen = klen, .now = now};
    struct zone_result r = {0};

    return zone_exec_rc(z, &op, &r);
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
    if (z->remote)
        return zone_keys_remote(z, prefix, plen, now, fn, ctx);
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
    st->redis = z->remote;
    st->fallbacks = atomic_load_explicit(&z->fallbacks, memory_order_relaxed);
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
