/* core/store/zone_remote.c: the Redis side of the zones (zone.h): blocking calls on the
 * daemon's one connection (redis_sync.c), calls that wait on a worker's own connection
 * (redis_link.c) with a deadline, walks of a zone's keys, and what happens when Redis
 * cannot answer: the zone's local dictionary answers (fail open), or nobody does (fail
 * closed: SHDICT_UNAVAILABLE), counted and logged (zone.fallback, rate-limited). */
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "store/redis_sync.h"
#include "store/zone_internal.h"
#include "store/zone_redis.h"
#include "util/log.h"

#define ZONE_SCAN_COUNT "512" /* keys SCAN looks at per call */

int
zones_redis_init(struct zones *zs, const struct config *cfg)
{
    bool any = false;

    atomic_init(&zs->links.up, 0);
    atomic_init(&zs->links.connects, 0);
    atomic_init(&zs->links.failures, 0);
    for (size_t i = 0; i < zs->n; i++) {
        atomic_init(&zs->v[i].fallbacks, 0);
        atomic_init(&zs->v[i].unlogged, 0);
        atomic_init(&zs->v[i].fallback_logged, 0);
        any = any || zs->v[i].remote;
    }
    if (!any || cfg->redis == NULL)
        return 0;
    if ((zs->redis = config_redis_copy(cfg->redis)) == NULL ||
        (zs->sync = redis_sync_new(zs->redis)) == NULL)
        return -1;
    return 0;
}

bool
zones_redis_stats(struct zones *zs, struct zones_redis_stats *st)
{
    int up;

    if (zs == NULL || zs->redis == NULL)
        return false;
    up = atomic_load_explicit(&zs->links.up, memory_order_relaxed);
    st->links_up = up > 0 ? (uint64_t)up : 0;
    st->connects = atomic_load_explicit(&zs->links.connects, memory_order_relaxed);
    st->failures = atomic_load_explicit(&zs->links.failures, memory_order_relaxed);
    return true;
}

/* ---- when Redis cannot answer ------------------------------------------------------------ */

/* One zone.fallback line every ZONE_FULL_LOG_EVERY seconds per zone at most, with the
 * count of the calls since the last one: an outage writes a line per 10 s, not per call. */
static void
zone_log_fallback(struct zone *z, const char *why, double now)
{
    long long      ms = (long long)(now * 1000);
    long long      last = atomic_load_explicit(&z->fallback_logged, memory_order_relaxed);
    struct logline l;

    atomic_fetch_add_explicit(&z->unlogged, 1, memory_order_relaxed);
    if (ms - last < (long long)(ZONE_FULL_LOG_EVERY * 1000) ||
        !atomic_compare_exchange_strong_explicit(&z->fallback_logged, &last, ms,
                                                 memory_order_relaxed, memory_order_relaxed))
        return;
    log_begin(&l, LOG_WARNING, "zone.fallback", 0);
    log_str(&l, "zone", z->name);
    log_str(&l, "error", why);
    log_int(&l, "calls", (long long)atomic_exchange_explicit(&z->unlogged, 0,
                                                              memory_order_relaxed));
    log_str(&l, "answer", z->fail_closed ? "refused (fail closed)"
                                         : "local entries of this node (fail open)");
    log_end(&l);
}

static void
zone_fallback(struct zone *z, const struct zone_op *op, struct zone_result *r, const char *why)
{
    atomic_fetch_add_explicit(&z->fallbacks, 1, memory_order_relaxed);
    zone_log_fallback(z, why, op->now);
    zone_result_cleanup(r);
    if (z->fail_closed) {
        memset(&r->v, 0, sizeof(r->v));
        r->rc = SHDICT_UNAVAILABLE;
    } else {
        zone_exec_local(z, op, r);
    }
    r->fallback = true;
}

/* ---- blocking calls ---------------------------------------------------------------------- */

/* A string borrowed from a reply, copied into r->v.buf or a heap buffer. */
static void
zone_keep_string(struct zone_result *r)
{
    char *to = r->v.buf;

    if (r->rc != SHDICT_OK || r->v.type != SHDICT_STRING)
        return;
    if (r->v.len > r->v.cap || to == NULL) {
        if ((to = r->heap = malloc(r->v.len ? r->v.len : 1)) == NULL) {
            r->rc = SHDICT_NO_MEMORY;
            return;
        }
    }
    memcpy(to, r->v.str, r->v.len);
    r->v.str = to;
}

void
zone_exec_remote(struct zone *z, const struct zone_op *op, struct zone_result *r)
{
    struct zone_redis_cmd cmd;
    redisReply           *reply;
    const char           *why = "no answer";
    char                 *buf = r->v.buf;
    size_t                cap = r->v.cap;
    bool                  broken;

    if (zone_redis_cmd_build(&cmd, z->zs->redis->prefix, z->name, op) != 0) {
        zone_redis_cmd_cleanup(&cmd);
        r->rc = SHDICT_BAD_KEY;
        return;
    }
    reply = redis_sync_call(z->zs->sync, &cmd, &why);
    zone_redis_cmd_cleanup(&cmd);
    zone_redis_result(op, reply, op->now, r, &broken);
    r->v.buf = buf;
    r->v.cap = cap;
    if (r->rc == SHDICT_UNAVAILABLE || broken)
        zone_fallback(z, op, r, reply != NULL && reply->type == REDIS_REPLY_ERROR
                                    ? reply->str : why);
    else
        zone_keep_string(r);
    if (reply != NULL)
        freeReplyObject(reply);
}

/* ---- walks ------------------------------------------------------------------------------- */

/* prefix with Redis' glob characters escaped, then '*'. */
static size_t
zone_scan_pattern(char *out, size_t cap, const char *head, const char *prefix, size_t plen)
{
    size_t n = strlen(head);

    if (n + 2 * plen + 2 > cap)
        return 0;
    memcpy(out, head, n);
    for (size_t i = 0; i < plen; i++) {
        if (strchr("*?[]\\", prefix[i]) != NULL)
            out[n++] = '\\';
        out[n++] = prefix[i];
    }
    out[n++] = '*';
    out[n] = '\0';
    return n;
}

/* fn for one key SCAN found (full: with the zone's prefix): its value read with the get
 * script; 1 to stop. */
static int
zone_walk_one(struct zone *z, const char *full, size_t flen, size_t head, double now,
              shdict_key_fn *fn, void *ctx)
{
    struct zone_op     op = {.kind = ZONE_GET, .key = full + head, .klen = flen - head,
                             .now = now};
    struct zone_result r = {0};
    int                stop;

    zone_exec_remote(z, &op, &r);
    if (r.rc != SHDICT_OK || r.fallback) {
        zone_result_cleanup(&r);
        return 0; /* gone meanwhile */
    }
    stop = fn(ctx, op.key, op.klen, &r.v);
    zone_result_cleanup(&r);
    return stop;
}

size_t
zone_keys_remote(struct zone *z, const char *prefix, size_t plen, double now,
                 shdict_key_fn *fn, void *ctx)
{
    char        head[ZONE_REDIS_KEY_MAX], pattern[2 * ZONE_REDIS_KEY_MAX + 2], cursor[32] = "0";
    const char *argv[6] = {"SCAN", cursor, "MATCH", pattern, "COUNT", ZONE_SCAN_COUNT};
    size_t      lens[6], calls = 0, hlen;
    const char *why;
    bool        stop = false;

    hlen = (size_t)snprintf(head, sizeof(head), "%s%s:", z->zs->redis->prefix, z->name);
    if (zone_scan_pattern(pattern, sizeof(pattern), head, prefix, plen) == 0)
        return 0;
    do {
        redisReply *r;

        for (int i = 0; i < 6; i++)
            lens[i] = strlen(argv[i]);
        r = redis_sync_argv(z->zs->sync, 6, argv, lens, &why);
        if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[0]->type != REDIS_REPLY_STRING ||
            r->element[1]->type != REDIS_REPLY_ARRAY || r->element[0]->len >= sizeof(cursor)) {
            if (r != NULL)
                freeReplyObject(r);
            zone_log_fallback(z, "cannot walk the keys", now);
            break;
        }
        memcpy(cursor, r->element[0]->str, r->element[0]->len + 1);
        for (size_t i = 0; i < r->element[1]->elements && !stop; i++) {
            const redisReply *k = r->element[1]->element[i];

            if (k->type != REDIS_REPLY_STRING || k->len <= hlen)
                continue;
            stop = zone_walk_one(z, k->str, k->len, hlen, now, fn, ctx) != 0;
            calls++;
        }
        freeReplyObject(r);
    } while (!stop && strcmp(cursor, "0") != 0);
    return calls;
}

/* ---- calls that wait on a worker's loop -------------------------------------------------- */

struct zone_link {
    struct zones      *zs;   /* borrows */
    struct ev_loop    *loop; /* borrows */
    struct redis_link *rl;   /* owns */
};

struct zone_call {
    struct zone       *z;
    struct zone_link  *link;
    struct zone_op     op;   /* its key and peek point into keys below */
    zone_call_done_fn *done; /* NULL once answered or cancelled */
    void              *arg;
    ev_timer           deadline;
    char               keys[]; /* op.key NUL, op.peek NUL, a set's string */
};

struct zone_link *
zone_link_new(struct zones *zs, struct ev_loop *loop)
{
    struct zone_link *l;

    if (zs == NULL || zs->redis == NULL || (l = calloc(1, sizeof(*l))) == NULL)
        return NULL;
    l->zs = zs;
    l->loop = loop;
    if ((l->rl = redis_link_new(zs->redis, loop, &zs->links)) == NULL) {
        free(l);
        return NULL;
    }
    return l;
}

void
zone_link_close(struct zone_link *l)
{
    if (l != NULL)
        redis_link_close(l->rl);
}

void
zone_link_free(struct zone_link *l)
{
    if (l == NULL)
        return;
    redis_link_free(l->rl); /* every call still waiting is answered (NULL) and freed */
    free(l);
}

/* The reply came (or NULL: the link broke). The call is freed here, always. */
static void
zone_call_reply_cb(redisAsyncContext *ac, void *rep, void *arg)
{
    struct zone_call   *c = arg;
    redisReply         *reply = rep;
    struct zone_result  r = {0};
    zone_call_done_fn  *done = c->done;
    bool                broken = false;

    (void)ac;
    if (done != NULL) {
        ev_timer_stop(c->link->loop, &c->deadline);
        c->done = NULL;
        zone_redis_result(&c->op, reply, c->op.now, &r, &broken);
        if (broken)
            redis_link_break(c->link->rl, "a reply of the wrong shape, or NOSCRIPT");
        if (r.rc == SHDICT_UNAVAILABLE || broken)
            zone_fallback(c->z, &c->op, &r, reply == NULL ? "connection lost"
                                            : reply->type == REDIS_REPLY_ERROR ? reply->str
                                                                               : "bad reply");
        done(c->arg, &r);
        zone_result_cleanup(&r);
    }
    free(c);
}

/* No reply within the deadline: answer without Redis, and drop the connection (a reply
 * this late says Redis is stuck; every other call on it is answered the same way now). */
static void
zone_call_deadline_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct zone_call  *c = (struct zone_call *)((char *)t - offsetof(struct zone_call, deadline));
    struct zone_result r = {0};
    zone_call_done_fn *done = c->done;
    void              *arg = c->arg;

    (void)loop;
    (void)revents;
    c->done = NULL;
    zone_fallback(c->z, &c->op, &r, "no answer within redis.timeout");
    redis_link_break(c->link->rl, "no answer within redis.timeout"); /* frees c */
    done(arg, &r);
    zone_result_cleanup(&r);
}

static struct zone_call *
zone_call_new(struct zone *z, struct zone_link *link, const struct zone_op *op)
{
    size_t            plen = op->peek != NULL ? op->plen : 0;
    size_t            vlen = op->value.type == SHDICT_STRING ? op->value.len : 0;
    struct zone_call *c = malloc(sizeof(*c) + op->klen + plen + vlen + 2);

    if (c == NULL)
        return NULL;
    c->z = z;
    c->link = link;
    c->op = *op;
    c->done = NULL;
    memcpy(c->keys, op->key, op->klen);
    c->keys[op->klen] = '\0';
    c->op.key = c->keys;
    if (op->peek != NULL) {
        memcpy(c->keys + op->klen + 1, op->peek, plen);
        c->keys[op->klen + 1 + plen] = '\0';
        c->op.peek = c->keys + op->klen + 1;
    }
    if (vlen > 0) { /* the fallback may store it after the caller's copy is gone */
        memcpy(c->keys + op->klen + 1 + plen + 1, op->value.str, vlen);
        c->op.value.str = c->keys + op->klen + 1 + plen + 1;
    }
    return c;
}

bool
zone_call(struct zone *z, struct zone_link *link, const struct zone_op *op, double max_wait,
          struct zone_result *r, zone_call_done_fn *done, void *arg, struct zone_call **pending)
{
    struct zone_redis_cmd cmd;
    struct zone_call     *c;
    double                wait;

    *pending = NULL;
    if (!z->remote || link == NULL) {
        zone_exec(z, op, r);
        return true;
    }
    r->heap = NULL;
    r->fallback = false;
    wait = max_wait < z->zs->redis->timeout ? max_wait : z->zs->redis->timeout;
    if (zone_redis_cmd_build(&cmd, z->zs->redis->prefix, z->name, op) != 0) {
        zone_redis_cmd_cleanup(&cmd);
        memset(r, 0, sizeof(*r));
        r->rc = SHDICT_BAD_KEY;
        return true;
    }
    if (wait <= 0 || (c = zone_call_new(z, link, op)) == NULL) {
        zone_redis_cmd_cleanup(&cmd);
        zone_fallback(z, op, r, wait <= 0 ? "no time left" : "out of memory");
        return true;
    }
    if (redis_link_send(link->rl, &cmd, zone_call_reply_cb, c) != 0) {
        zone_redis_cmd_cleanup(&cmd);
        free(c);
        zone_fallback(z, op, r, "Redis unreachable (backing off)");
        return true;
    }
    zone_redis_cmd_cleanup(&cmd);
    c->done = done;
    c->arg = arg;
    ev_timer_init(&c->deadline, zone_call_deadline_cb, wait, 0.);
    ev_timer_start(link->loop, &c->deadline);
    *pending = c;
    return false;
}

void
zone_call_cancel(struct zone_call *c)
{
    if (c == NULL || c->done == NULL)
        return;
    c->done = NULL;
    ev_timer_stop(c->link->loop, &c->deadline);
    /* freed by zone_call_reply_cb when its reply (or the link's end) comes */
}
