/* core/daemon/control_cmd.c: one control request line -> one JSON reply line (control_cmd.h,
 * docs/ctl.md): status (with every zone's usage), reload, and the rate-limit commands
 * over lua/sluice/ratelimit.lua's key layout in the zones limits and blocks:
 *   limits: NAME:W:INDEX   a window's counter
 *   blocks: NAME:block     the block's end time (in limits when blocks refused it)
 * where NAME is the name a policy gave, bounded as the library bounds it (zone_key_part,
 * CONTROL_NAME_MAX). A name is "blocked" exactly when ratelimit.blocked() says so:
 * NAME:block holds a number later than now. `now` is the wall clock (ev_time()), the clock
 * workers' ev_now() follows, so TTLs here and in policies agree. `ratelimit show` and
 * `reset` look at every zone, so they also show and clear other keys under a prefix (the
 * deny-list's oauth2:deny:...).
 *
 * Walks copy what they need inside the zone_keys() callback (no zone call there: the
 * shard is locked) and act on the copy afterwards. The JSON is written here; there is
 * no Lua on this thread. */
#include "daemon/control_cmd.h"

#include <ev.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/audit.h"
#include "util/log.h"
#include "config/config.h"
#include "store/zone.h"

#define CONTROL_BLOCK_SUFFIX ":block"
#define CONTROL_RESET_PASSES 64 /* walks of CONTROL_MAX_ENTRIES keys one reset may make */
#define CONTROL_NAME_MAX     128 /* lua/sluice/ratelimit.lua's NAME_MAX: longer names are
                                  * bounded with zone_key_part() */

/* ---- JSON output ---------------------------------------------------------------------- */

static void
out_put(struct control_out *o, const char *s, size_t n)
{
    size_t cap;
    char  *p;

    if (o->failed)
        return;
    if (o->len + n + 1 > o->cap) {
        cap = o->cap ? o->cap : 512;
        while (cap < o->len + n + 1)
            cap *= 2;
        p = cap <= CONTROL_MAX_REPLY ? realloc(o->p, cap) : NULL;
        if (p == NULL) {
            o->failed = true;
            return;
        }
        o->p = p;
        o->cap = cap;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
    o->p[o->len] = '\0';
}

static void
out_fmt(struct control_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
out_fmt(struct control_out *o, const char *fmt, ...)
{
    char    tmp[64];
    va_list ap;
    int     n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n > 0 && (size_t)n < sizeof(tmp))
        out_put(o, tmp, (size_t)n);
    else
        o->failed = true; /* only numbers come through here: cannot happen */
}

/* A JSON string, escaped as in the log (log_json_char), so a key looks the same in both. */
static void
out_str(struct control_out *o, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t               i = 0, len, used;
    char                 out[8];

    out_put(o, "\"", 1);
    while (i < n) {
        len = log_json_char(p + i, n - i, out, &used);
        out_put(o, out, len);
        i += used;
    }
    out_put(o, "\"", 1);
}

/* "key": with the comma a previous member needs. */
static void
out_key(struct control_out *o, const char *key)
{
    if (o->len > 0 && o->p[o->len - 1] != '{' && o->p[o->len - 1] != '[')
        out_put(o, ",", 1);
    out_str(o, key, strlen(key));
    out_put(o, ":", 1);
}

static void
out_u64(struct control_out *o, const char *key, uint64_t v)
{
    out_key(o, key);
    out_fmt(o, "%" PRIu64, v);
}

/* Seconds, to the millisecond. */
static void
out_secs(struct control_out *o, const char *key, double v)
{
    out_key(o, key);
    if (isfinite(v))
        out_fmt(o, "%.3f", v);
    else
        out_put(o, "null", 4);
}

static void
out_text(struct control_out *o, const char *key, const char *s, size_t n)
{
    out_key(o, key);
    out_str(o, s, n);
}

static void
out_begin_ok(struct control_out *o)
{
    out_put(o, "{\"ok\":true", 10);
    o->ok = true;
}

void
control_out_cleanup(struct control_out *out)
{
    free(out->p);
    out->p = NULL;
    out->len = out->cap = 0;
    out->failed = false;
}

/* {"ok":false,"error":error and nothing else yet: *out is emptied first. */
static void
out_begin_error(struct control_out *out, const char *error)
{
    control_out_cleanup(out);
    out->ok = false;
    snprintf(out->error, sizeof(out->error), "%s", error);
    out_put(out, "{\"ok\":false", 11);
    out_text(out, "error", error, strlen(error));
}

void
control_out_error(struct control_out *out, const char *error)
{
    out_begin_error(out, error);
    out_put(out, "}\n", 2);
}

static void
out_finish(struct control_out *o)
{
    out_put(o, "}\n", 2);
    if (o->failed)
        control_out_error(o, "reply too large, or out of memory");
}

void
control_out_begin_ok(struct control_out *out)
{
    out_begin_ok(out);
}

void
control_out_text(struct control_out *out, const char *key, const char *s, size_t n)
{
    out_text(out, key, s, n);
}

void
control_out_secs(struct control_out *out, const char *key, double v)
{
    out_secs(out, key, v);
}

void
control_out_bool(struct control_out *out, const char *key, bool v)
{
    out_key(out, key);
    out_put(out, v ? "true" : "false", v ? 4 : 5);
}

void
control_out_finish(struct control_out *out)
{
    out_finish(out);
}

/* ---- status and reload ------------------------------------------------------------- */

/* "zones": { "NAME": { usage }, ... } in the configuration's order. */
static void
control_status_zones(struct zones *zs, struct control_out *o)
{
    struct zone_stats st;

    out_key(o, "zones");
    out_put(o, "{", 1);
    for (size_t i = 0; i < zones_count(zs); i++) {
        zone_stats(zones_at(zs, i), &st);
        out_key(o, st.name);
        out_put(o, "{", 1);
        out_key(o, "evict");
        out_put(o, st.evict ? "true" : "false", st.evict ? 4 : 5);
        out_u64(o, "capacity", st.capacity);
        out_u64(o, "bytes", st.bytes);
        out_u64(o, "entries", st.entries);
        out_u64(o, "evictions", st.evictions);
        out_u64(o, "refusals", st.refusals);
        out_u64(o, "expired", st.expired);
        out_put(o, "}", 1);
    }
    out_put(o, "}", 1);
}

static void
control_status(const struct control_env *env, struct control_out *o)
{
    struct control_status st;
    struct audit_stats    as;
    double                now = ev_time();

    memset(&st, 0, sizeof(st));
    if (env->ops.status != NULL)
        env->ops.status(env->ops.ctx, &st);
    st.last_reload_error[sizeof(st.last_reload_error) - 1] = '\0';
    out_begin_ok(o);
    out_u64(o, "pid", (uint64_t)getpid());
    out_u64(o, "generation", st.generation);
    out_secs(o, "started", st.started);
    out_secs(o, "loaded", st.loaded);
    out_secs(o, "uptime", st.started > 0 ? now - st.started : 0);
    out_u64(o, "reloads_ok", st.reloads_ok);
    out_u64(o, "reloads_failed", st.reloads_failed);
    out_key(o, "last_reload_error");
    if (st.last_reload_error[0] != '\0')
        out_str(o, st.last_reload_error, strlen(st.last_reload_error));
    else
        out_put(o, "null", 4);
    out_u64(o, "workers", st.workers > 0 ? (uint64_t)st.workers : 0);
    out_u64(o, "sessions", st.sessions);
    out_u64(o, "sessions_total", st.sessions_total);
    out_u64(o, "messages_relayed", st.messages_relayed);
    out_u64(o, "messages_failed", st.messages_failed);
    out_u64(o, "auth_ok", st.auth_ok);
    out_u64(o, "auth_failed", st.auth_failed);
    out_u64(o, "old_generations", st.old_generations);
    if (st.inflight_max_bytes > 0) {
        out_key(o, "inflight");
        out_put(o, "{", 1);
        out_u64(o, "bytes", st.inflight_bytes);
        out_u64(o, "max_bytes", st.inflight_max_bytes);
        out_u64(o, "max_bytes_per_client", st.inflight_max_per_client);
        out_u64(o, "clients", st.inflight_clients);
        out_u64(o, "refused", st.inflight_refused);
        out_put(o, "}", 1);
    }
    if (env->zones != NULL)
        control_status_zones(env->zones, o);
    if (env->audit != NULL) {
        audit_stats(env->audit, &as);
        out_key(o, "audit");
        out_put(o, "{", 1);
        out_u64(o, "lines_written", as.lines_written);
        out_u64(o, "lines_dropped", as.lines_dropped);
        out_u64(o, "write_errors", as.write_errors);
        out_u64(o, "queued_bytes", as.queued_bytes);
        out_put(o, "}", 1);
    }
    out_finish(o);
}

static void
control_reload(const struct control_env *env, struct control_out *o)
{
    struct control_status st;
    char                  msg[1024] = "";
    int                   rc;

    if (env->ops.reload == NULL) {
        control_out_error(o, "reload is not available");
        return;
    }
    rc = env->ops.reload(env->ops.ctx, msg, sizeof(msg));
    msg[sizeof(msg) - 1] = '\0';
    if (rc != 0) {
        out_begin_error(o, msg[0] != '\0' ? msg : "reload failed");
    } else {
        out_begin_ok(o);
        out_text(o, "message", msg, strlen(msg));
    }
    if (env->ops.status != NULL) { /* the one in force, new or not */
        memset(&st, 0, sizeof(st));
        env->ops.status(env->ops.ctx, &st);
        out_u64(o, "generation", st.generation);
    }
    out_finish(o);
}

/* ---- walking the zones ------------------------------------------------------------------ */

struct control_entry {
    char            *key;     /* owns; klen octets and a NUL */
    size_t           klen;
    const char      *zone;    /* borrows the zone's name */
    enum shdict_type type;
    double           num;
    char            *str;     /* owns; SHDICT_STRING: the first slen octets, tag included */
    size_t           slen;
    bool             cut;     /* the string was longer than CONTROL_SHOW_VALUE */
    double           expires; /* 0 = no TTL */
};

struct control_walk {
    struct control_entry *v;           /* owns */
    size_t                n, cap;
    const char           *zone;        /* the zone being walked: entries get its name */
    bool                  keys_only;   /* reset: no values */
    bool                  blocks_only; /* list: only NAME:block keys holding a number */
    bool                  truncated;   /* stopped at CONTROL_MAX_ENTRIES */
    bool                  failed;      /* out of memory */
};

static bool
control_is_block_key(const char *key, size_t klen)
{
    size_t n = sizeof(CONTROL_BLOCK_SUFFIX) - 1;

    return klen > n && memcmp(key + klen - n, CONTROL_BLOCK_SUFFIX, n) == 0;
}

static char *
control_memdup(const char *s, size_t n)
{
    char *p = malloc(n + 1);

    if (p != NULL) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

/* shdict_key_fn: runs with a shard locked; copies, and calls nothing in the zone. */
static int
control_walk_cb(void *ctx, const char *key, size_t klen, const struct shdict_value *v)
{
    struct control_walk  *w = ctx;
    struct control_entry *e;
    size_t                cap;

    if (w->blocks_only && !(v->type == SHDICT_NUMBER && control_is_block_key(key, klen)))
        return 0;
    if (w->n == CONTROL_MAX_ENTRIES) {
        w->truncated = true;
        return 1;
    }
    if (w->n == w->cap) {
        cap = w->cap ? w->cap * 2 : 16;
        e = realloc(w->v, cap * sizeof(*e));
        if (e == NULL) {
            w->failed = true;
            return 1;
        }
        w->v = e;
        w->cap = cap;
    }
    e = &w->v[w->n];
    memset(e, 0, sizeof(*e));
    e->key = control_memdup(key, klen);
    e->klen = klen;
    e->zone = w->zone;
    e->type = v->type;
    e->num = v->num;
    e->expires = v->expires;
    if (!w->keys_only && v->type == SHDICT_STRING) {
        e->slen = v->len > CONTROL_SHOW_VALUE + 1 ? CONTROL_SHOW_VALUE + 1 : v->len;
        e->cut = e->slen < v->len;
        e->str = control_memdup(v->str, e->slen);
    }
    if (e->key == NULL || (e->str == NULL && !w->keys_only && v->type == SHDICT_STRING)) {
        free(e->key);
        free(e->str);
        w->failed = true;
        return 1;
    }
    w->n++;
    return 0;
}

static void
control_walk_cleanup(struct control_walk *w)
{
    for (size_t i = 0; i < w->n; i++) {
        free(w->v[i].key);
        free(w->v[i].str);
    }
    free(w->v);
    w->v = NULL;
    w->n = w->cap = 0;
}

static int
control_entry_cmp(const void *a, const void *b)
{
    const struct control_entry *x = a, *y = b;
    int c = memcmp(x->key, y->key, x->klen < y->klen ? x->klen : y->klen);

    if (c == 0)
        c = (x->klen > y->klen) - (x->klen < y->klen);
    return c != 0 ? c : strcmp(x->zone, y->zone);
}

/* Walk the zones of which[] (n of them; which NULL: every zone), then sort by key. */
static void
control_walk_run(struct zones *zs, const size_t *which, size_t n, const char *prefix,
                 size_t plen, double now, struct control_walk *w)
{
    size_t count = which != NULL ? n : zones_count(zs);

    for (size_t i = 0; i < count && !w->truncated && !w->failed; i++) {
        struct zone *z = zones_at(zs, which != NULL ? which[i] : i);

        w->zone = zone_name(z);
        zone_keys(z, prefix, plen, now, control_walk_cb, w);
    }
    if (w->n > 1)
        qsort(w->v, w->n, sizeof(*w->v), control_entry_cmp);
}

/* ---- ratelimit show / reset / list ------------------------------------------------------ */

/* Where blocks are: the zone blocks, and limits, which takes those blocks refused. */
static const size_t control_block_zones[] = {CONFIG_ZONE_BLOCKS, CONFIG_ZONE_LIMITS};

/* A name already bounded: what `ratelimit list` shows for a long one. */
static bool
control_is_bounded_name(const char *name, size_t n)
{
    size_t keep = CONTROL_NAME_MAX - 64;

    if (n != CONTROL_NAME_MAX + 1 || name[keep] != '~')
        return false;
    for (size_t i = keep + 1; i < n; i++)
        if (!((name[i] >= '0' && name[i] <= '9') || (name[i] >= 'a' && name[i] <= 'f')))
            return false;
    return true;
}

/* "NAME:" into buf (SHDICT_MAX_KEY + 1 octets), NAME bounded as the library bounds it, or
 * an error in *out. */
static int
control_name_prefix(const char *name, size_t n, char *buf, size_t *plen,
                    struct control_out *out)
{
    if (n == 0) {
        control_out_error(out, "a rate-limit name must not be empty");
        return -1;
    }
    if (n + sizeof(CONTROL_BLOCK_SUFFIX) - 1 > SHDICT_MAX_KEY) {
        control_out_error(out, "rate-limit name too long");
        return -1;
    }
    if (control_is_bounded_name(name, n)) {
        memcpy(buf, name, n);
        *plen = n;
    } else {
        *plen = zone_key_part(name, n, CONTROL_NAME_MAX, buf);
    }
    if (*plen == 0) {
        control_out_error(out, "out of memory");
        return -1;
    }
    buf[(*plen)++] = ':';
    return 0;
}

/* The value as sluice.zone(...):get would return it (lapi_zone.c's tagging). */
static void
control_out_value(struct control_out *o, const struct control_entry *e)
{
    out_key(o, "value");
    if (e->type == SHDICT_NUMBER && isfinite(e->num))
        out_fmt(o, "%.17g", e->num);
    else if (e->type != SHDICT_STRING || e->slen == 0)
        out_put(o, "null", 4);
    else if (e->str[0] == 's')
        out_str(o, e->str + 1, e->slen - 1);
    else
        out_put(o, e->str[0] == 't' ? "true" : "false", e->str[0] == 't' ? 4 : 5);
    if (e->cut)
        out_put(o, ",\"value_cut\":true", 17);
}

/* Seconds left on NAME's block, or 0 when it is not blocked (ratelimit.blocked()). */
static double
control_block_left(struct zones *zs, const char *prefix, size_t plen, double now)
{
    char   key[SHDICT_MAX_KEY + 1];
    size_t n = plen - 1 + sizeof(CONTROL_BLOCK_SUFFIX) - 1;
    double left = 0;

    memcpy(key, prefix, plen - 1);
    memcpy(key + plen - 1, CONTROL_BLOCK_SUFFIX, sizeof(CONTROL_BLOCK_SUFFIX) - 1);
    for (size_t i = 0; i < sizeof(control_block_zones) / sizeof(*control_block_zones); i++) {
        struct shdict_value v = {0};

        if (zone_get(zones_at(zs, control_block_zones[i]), key, n, &v, now) == SHDICT_OK &&
            v.type == SHDICT_NUMBER && v.num - now > left)
            left = v.num - now;
    }
    return left;
}

static void
control_show(struct zones *zs, const char *name, size_t n, struct control_out *o)
{
    char                prefix[SHDICT_MAX_KEY + 1];
    size_t              plen;
    double              now = ev_time(), left;
    struct control_walk w = {0};

    if (control_name_prefix(name, n, prefix, &plen, o) != 0)
        return;
    control_walk_run(zs, NULL, 0, prefix, plen, now, &w);
    left = control_block_left(zs, prefix, plen, now);
    out_begin_ok(o);
    out_text(o, "name", prefix, plen - 1);
    if (left > 0)
        out_secs(o, "blocked", left);
    else
        out_put(o, ",\"blocked\":false", 16);
    out_key(o, "keys");
    out_put(o, "[", 1);
    for (size_t i = 0; i < w.n; i++) {
        out_put(o, i ? ",{" : "{", i ? 2 : 1);
        out_text(o, "key", w.v[i].key, w.v[i].klen);
        out_text(o, "zone", w.v[i].zone, strlen(w.v[i].zone));
        control_out_value(o, &w.v[i]);
        if (w.v[i].expires > 0)
            out_secs(o, "ttl", w.v[i].expires - now);
        else
            out_put(o, ",\"ttl\":null", 11);
        out_put(o, "}", 1);
    }
    out_put(o, "]", 1);
    if (w.truncated)
        out_put(o, ",\"truncated\":true", 17);
    if (w.failed)
        o->failed = true;
    control_walk_cleanup(&w);
    out_finish(o);
}

/* Collect a bounded batch of keys, delete them, again until a walk finds the end: memory
 * stays bounded however many keys the name has. Zone by zone. */
static void
control_reset(struct zones *zs, const char *name, size_t n, struct control_out *o)
{
    char                prefix[SHDICT_MAX_KEY + 1];
    size_t              plen, removed = 0;
    double              now = ev_time();
    struct control_walk w = {.keys_only = true};
    int                 pass = 0;

    if (control_name_prefix(name, n, prefix, &plen, o) != 0)
        return;
    for (size_t zi = 0; zi < zones_count(zs) && !w.failed; zi++) {
        struct zone *z = zones_at(zs, zi);

        for (; pass < CONTROL_RESET_PASSES; pass++) {
            w.truncated = false;
            zone_keys(z, prefix, plen, now, control_walk_cb, &w);
            for (size_t i = 0; i < w.n; i++)
                if (zone_delete(z, w.v[i].key, w.v[i].klen, now) == SHDICT_OK)
                    removed++;
            control_walk_cleanup(&w);
            if (!w.truncated || w.failed)
                break;
        }
    }
    if (w.failed) {
        control_out_error(o, "out of memory (some keys may have been removed)");
        return;
    }
    out_begin_ok(o);
    out_text(o, "name", prefix, plen - 1);
    out_u64(o, "removed", removed);
    if (pass == CONTROL_RESET_PASSES)
        out_put(o, ",\"truncated\":true", 17);
    out_finish(o);
}

static void
control_list(struct zones *zs, const char *prefix, size_t plen, struct control_out *o)
{
    double              now = ev_time();
    struct control_walk w = {.blocks_only = true};
    size_t              nlen, shown = 0;

    control_walk_run(zs, control_block_zones,
                     sizeof(control_block_zones) / sizeof(*control_block_zones), prefix, plen,
                     now, &w);
    out_begin_ok(o);
    out_text(o, "prefix", prefix, plen);
    out_key(o, "blocked");
    out_put(o, "[", 1);
    for (size_t i = 0; i < w.n; i++) {
        if (!(w.v[i].num > now)) /* ended, its key not expired yet: not blocked */
            continue;
        if (i > 0 && w.v[i].klen == w.v[i - 1].klen && w.v[i - 1].num > now &&
            memcmp(w.v[i].key, w.v[i - 1].key, w.v[i].klen) == 0)
            continue; /* in both zones (blocks took it after limits did): once */
        nlen = w.v[i].klen - (sizeof(CONTROL_BLOCK_SUFFIX) - 1);
        out_put(o, shown > 0 ? ",{" : "{", shown > 0 ? 2 : 1);
        shown++;
        out_text(o, "name", w.v[i].key, nlen);
        out_secs(o, "seconds_left", w.v[i].num - now);
        out_put(o, "}", 1);
    }
    out_put(o, "]", 1);
    if (w.truncated)
        out_put(o, ",\"truncated\":true", 17);
    if (w.failed)
        o->failed = true;
    control_walk_cleanup(&w);
    out_finish(o);
}

/* ---- parsing ------------------------------------------------------------------------- */

/* s starts with word (and then a space or the end): the rest, after the space. */
static bool
control_word(const char **s, size_t *n, const char *word)
{
    size_t k = strlen(word);

    if (*n < k || memcmp(*s, word, k) != 0 || (*n > k && (*s)[k] != ' '))
        return false;
    k += *n > k;
    *s += k;
    *n -= k;
    return true;
}

static void
control_ratelimit(const struct control_env *env, const char *s, size_t n,
                  struct control_request *rq, struct control_out *out)
{
    bool show = false, reset = false, list = false;

    if ((show = control_word(&s, &n, "show")))
        rq->command = "ratelimit show";
    else if ((reset = control_word(&s, &n, "reset")))
        rq->command = "ratelimit reset";
    else if ((list = control_word(&s, &n, "list")))
        rq->command = "ratelimit list";
    else {
        control_out_error(out, "usage: ratelimit show NAME | ratelimit reset NAME | "
                               "ratelimit list [PREFIX]");
        return;
    }
    rq->name = s;
    rq->name_len = n;
    if (reset)
        rq->log_level = LOG_NOTICE;
    if (env->zones == NULL)
        control_out_error(out, "the zones are not available");
    else if (show)
        control_show(env->zones, s, n, out);
    else if (reset)
        control_reset(env->zones, s, n, out);
    else
        control_list(env->zones, s, n, out);
}

void
control_cmd_run(const struct control_env *env, const char *line, size_t len,
                struct control_request *rq, struct control_out *out)
{
    const char *s = line;
    size_t      n = len;

    memset(rq, 0, sizeof(*rq));
    rq->log_level = LOG_INFO;
    rq->command = "(unknown)";
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f) {
            rq->command = "(bad request)";
            control_out_error(out, "control characters in the request line");
            return;
        }
    }
    if (control_word(&s, &n, "status") && n == 0) {
        rq->command = "status";
        control_status(env, out);
    } else if (control_word(&s, &n, "reload") && n == 0) {
        rq->command = "reload";
        rq->log_level = LOG_NOTICE;
        control_reload(env, out);
    } else if (control_word(&s, &n, "ratelimit")) {
        control_ratelimit(env, s, n, rq, out);
    } else if (control_word(&s, &n, "token")) {
        control_token_run(env, s, n, rq, out);
    } else {
        control_out_error(out, "unknown command; the commands are status, reload, "
                               "ratelimit show NAME, ratelimit reset NAME, "
                               "ratelimit list [PREFIX], token deny|allow jti|sub|client VALUE");
    }
}
