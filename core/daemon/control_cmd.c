/* core/daemon/control_cmd.c: one control request line -> one JSON reply line (control_cmd.h,
 * docs/ctl.md): status (with every zone's usage), reload, and the rate-limit commands.
 * Which keys a rate-limit name has is lua/sluice/ratelimit.lua's business: show, reset and
 * list call its ctl_show, ctl_reset and ctl_list in a state over the running configuration
 * (control_lua.h) and write what they return; a site whose lua_dir lacks them gets an
 * error naming the missing function. The JSON is written here. */
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
#include "daemon/control_lua.h"
#include "store/zone.h"


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
        out_text(o, "backend", st.redis ? "redis" : "local", 5);
        out_u64(o, "fallbacks", st.fallbacks);
        out_put(o, "}", 1);
    }
    out_put(o, "}", 1);
}

/* "redis": { links_up, connects, failures } when some zone is in Redis. */
static void
control_status_redis(struct zones *zs, struct control_out *o)
{
    struct zones_redis_stats st;

    if (!zones_redis_stats(zs, &st))
        return;
    out_key(o, "redis");
    out_put(o, "{", 1);
    out_u64(o, "links_up", st.links_up);
    out_u64(o, "connects", st.connects);
    out_u64(o, "failures", st.failures);
    out_put(o, "}", 1);
}

/* "sessions_by_state": { "NEW": N, ... }, "connections_refused": { reason: N, ... } */
static void
control_status_sessions(const struct control_status *st, struct control_out *o)
{
    out_key(o, "sessions_by_state");
    out_put(o, "{", 1);
    for (size_t k = 0; k < st->n_states; k++)
        out_u64(o, st->state_names[k], st->states[k]);
    out_put(o, "}", 1);
    out_key(o, "connections_refused");
    out_put(o, "{", 1);
    out_u64(o, "max_connections", st->refused_max_connections);
    out_u64(o, "max_connections_per_ip", st->refused_max_connections_per_ip);
    out_put(o, "}", 1);
}

/* "hooks": { "on_connect": { "runs": N, "seconds": S }, ... } */
static void
control_status_hooks(const struct control_status *st, struct control_out *o)
{
    out_key(o, "hooks");
    out_put(o, "{", 1);
    for (int h = 0; h < POLICY_N_HOOKS; h++) {
        uint64_t runs = 0;

        for (int b = 0; b <= HOOK_STATS_BUCKETS; b++)
            runs += st->hook_runs[h][b];
        out_key(o, policy_hook_names[h]);
        out_put(o, "{", 1);
        out_u64(o, "runs", runs);
        out_secs(o, "seconds", (double)st->hook_sum_us[h] / 1e6);
        out_put(o, "}", 1);
    }
    out_put(o, "}", 1);
}

/* "auth": { "plain": { "ok": N, "failed": N }, ... } */
static void
control_status_auth(const struct control_status *st, struct control_out *o)
{
    out_key(o, "auth");
    out_put(o, "{", 1);
    for (int m = SASL_MECH_NONE + 1; m < CONTROL_AUTH_MECHS; m++) {
        char name[16];

        snprintf(name, sizeof(name), "%s", sasl_mech_name((enum sasl_mech)m));
        for (char *p = name; *p != '\0'; p++)
            *p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
        out_key(o, name);
        out_put(o, "{", 1);
        out_u64(o, "ok", st->auth[m][0]);
        out_u64(o, "failed", st->auth[m][1]);
        out_put(o, "}", 1);
    }
    out_put(o, "}", 1);
}

/* "domains": { "other": { "relayed": N, "failed": N }, "example.org": ... } */
static void
control_status_domains(const struct control_status *st, struct control_out *o)
{
    out_key(o, "domains");
    out_put(o, "{", 1);
    for (size_t i = 0; i < st->n_domains; i++) {
        out_key(o, st->domains[i].name);
        out_put(o, "{", 1);
        out_u64(o, "relayed", st->domains[i].relayed);
        out_u64(o, "failed", st->domains[i].failed);
        out_put(o, "}", 1);
    }
    out_put(o, "}", 1);
}

/* "upstreams": { "HOST:PORT": { pool counters }, ... } */
static void
control_status_upstreams(const struct control_status *st, struct control_out *o)
{
    out_key(o, "upstreams");
    out_put(o, "{", 1);
    for (size_t i = 0; i < st->n_upstreams; i++) {
        const struct control_upstream *u = &st->upstreams[i];

        out_key(o, u->name);
        out_put(o, "{", 1);
        out_u64(o, "open", u->open);
        out_u64(o, "idle", u->idle);
        out_u64(o, "waits", u->waits);
        out_u64(o, "wait_timeouts", u->wait_timeouts);
        out_u64(o, "connect_failures", u->connect_failures);
        out_u64(o, "errors", u->errors);
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
    control_status_sessions(&st, o);
    control_status_auth(&st, o);
    control_status_domains(&st, o);
    control_status_upstreams(&st, o);
    control_status_hooks(&st, o);
    if (env->zones != NULL) {
        control_status_zones(env->zones, o);
        control_status_redis(env->zones, o);
    }
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

/* ---- the Lua modules that own zone keys ------------------------------------------------ */

struct control_lua *
control_cmd_lua_begin(const struct control_env *env, void **ref, struct control_out *out)
{
    const struct config *cfg;
    struct control_lua  *cl;
    char                 err[256];

    if (env->ops.config_hold == NULL || (cfg = env->ops.config_hold(env->ops.ctx, ref)) == NULL) {
        control_out_error(out, "the configuration is not available");
        return NULL;
    }
    cl = control_lua_new(cfg, env->zones, err, sizeof(err));
    if (cl == NULL) {
        env->ops.config_release(env->ops.ctx, *ref);
        control_out_error(out, err);
    }
    return cl;
}

void
control_cmd_lua_end(const struct control_env *env, struct control_lua *cl, void *ref)
{
    control_lua_free(cl);
    env->ops.config_release(env->ops.ctx, ref);
}

/* Call sluice.ratelimit's fn(arg): 0 with its result table on the stack top, or -1 with
 * the error (the call's, or the nil, 'reason' it returned) replied. */
static int
control_ratelimit_call(struct control_lua *cl, const char *fn, const char *arg, size_t n,
                       struct control_out *o)
{
    lua_State *L = control_lua_state(cl);
    char       err[512];

    lua_pushlstring(L, arg, n);
    if (control_lua_call(cl, "ratelimit", "sluice.ratelimit", fn, 1, 2, err, sizeof(err)) != 0) {
        control_out_error(o, err);
        return -1;
    }
    if (!lua_istable(L, -2)) { /* nil, 'reason': the reply's error as it is */
        snprintf(err, sizeof(err), "ratelimit: sluice.ratelimit.%s returned no table", fn);
        control_out_error(o, lua_isstring(L, -1) ? lua_tostring(L, -1) : err);
        lua_pop(L, 2);
        return -1;
    }
    lua_pop(L, 1);
    return 0;
}

/* t[key] of the table at the stack top as a string ("" when it is none). */
static const char *
control_lua_str(lua_State *L, const char *key, size_t *n)
{
    const char *s;

    lua_getfield(L, -1, key);
    s = lua_isstring(L, -1) ? lua_tolstring(L, -1, n) : (*n = 0, "");
    lua_pop(L, 1); /* the table still holds the string */
    return s;
}

static bool
control_lua_bool(lua_State *L, const char *key)
{
    bool b;

    lua_getfield(L, -1, key);
    b = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return b;
}

/* t[key] as seconds, or NAN when it is not a number. */
static double
control_lua_secs(lua_State *L, const char *key)
{
    double v;

    lua_getfield(L, -1, key);
    v = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : NAN;
    lua_pop(L, 1);
    return v;
}

/* An entry's value as sluice.zone(...):get returns it; JSON null for none. */
static void
control_out_value(struct control_out *o, lua_State *L)
{
    size_t      n;
    const char *s;

    out_key(o, "value");
    lua_getfield(L, -1, "value");
    if (lua_type(L, -1) == LUA_TNUMBER && isfinite(lua_tonumber(L, -1))) {
        out_fmt(o, "%.17g", lua_tonumber(L, -1));
    } else if (lua_type(L, -1) == LUA_TSTRING) {
        s = lua_tolstring(L, -1, &n);
        out_str(o, s, n);
    } else if (lua_type(L, -1) == LUA_TBOOLEAN) {
        out_put(o, lua_toboolean(L, -1) ? "true" : "false", lua_toboolean(L, -1) ? 4 : 5);
    } else {
        out_put(o, "null", 4);
    }
    lua_pop(L, 1);
    if (control_lua_bool(L, "value_cut"))
        out_put(o, ",\"value_cut\":true", 17);
}

/* ratelimit.ctl_show(name): every key of the name in every zone, and its block. */
static void
control_show(struct control_lua *cl, const char *name, size_t n, struct control_out *o)
{
    lua_State  *L = control_lua_state(cl);
    const char *s;
    size_t      len, count;
    double      v;

    if (control_ratelimit_call(cl, "ctl_show", name, n, o) != 0)
        return;
    out_begin_ok(o);
    s = control_lua_str(L, "name", &len);
    out_text(o, "name", s, len);
    if ((v = control_lua_secs(L, "blocked")) > 0)
        out_secs(o, "blocked", v);
    else
        out_put(o, ",\"blocked\":false", 16);
    out_key(o, "keys");
    out_put(o, "[", 1);
    lua_getfield(L, -1, "keys");
    count = lua_istable(L, -1) ? lua_objlen(L, -1) : 0;
    for (size_t i = 0; i < count; i++) {
        lua_rawgeti(L, -1, (int)i + 1);
        out_put(o, i ? ",{" : "{", i ? 2 : 1);
        s = control_lua_str(L, "key", &len);
        out_text(o, "key", s, len);
        s = control_lua_str(L, "zone", &len);
        out_text(o, "zone", s, len);
        control_out_value(o, L);
        if (!isnan(v = control_lua_secs(L, "ttl")))
            out_secs(o, "ttl", v);
        else
            out_put(o, ",\"ttl\":null", 11);
        out_put(o, "}", 1);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    out_put(o, "]", 1);
    if (control_lua_bool(L, "truncated"))
        out_put(o, ",\"truncated\":true", 17);
    out_finish(o);
}

/* ratelimit.ctl_reset(name): every key of the name removed, in bounded batches. */
static void
control_reset(struct control_lua *cl, const char *name, size_t n, struct control_out *o)
{
    lua_State  *L = control_lua_state(cl);
    const char *s;
    size_t      len;
    double      removed;

    if (control_ratelimit_call(cl, "ctl_reset", name, n, o) != 0)
        return;
    out_begin_ok(o);
    s = control_lua_str(L, "name", &len);
    out_text(o, "name", s, len);
    removed = control_lua_secs(L, "removed");
    out_u64(o, "removed", removed > 0 ? (uint64_t)removed : 0);
    if (control_lua_bool(L, "truncated"))
        out_put(o, ",\"truncated\":true", 17);
    out_finish(o);
}

/* ratelimit.ctl_list(prefix): the names blocked now. */
static void
control_list(struct control_lua *cl, const char *prefix, size_t plen, struct control_out *o)
{
    lua_State  *L = control_lua_state(cl);
    const char *s;
    size_t      len, count;

    if (control_ratelimit_call(cl, "ctl_list", prefix, plen, o) != 0)
        return;
    out_begin_ok(o);
    out_text(o, "prefix", prefix, plen);
    out_key(o, "blocked");
    out_put(o, "[", 1);
    lua_getfield(L, -1, "blocked");
    count = lua_istable(L, -1) ? lua_objlen(L, -1) : 0;
    for (size_t i = 0; i < count; i++) {
        lua_rawgeti(L, -1, (int)i + 1);
        out_put(o, i ? ",{" : "{", i ? 2 : 1);
        s = control_lua_str(L, "name", &len);
        out_text(o, "name", s, len);
        out_secs(o, "seconds_left", control_lua_secs(L, "seconds_left"));
        out_put(o, "}", 1);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    out_put(o, "]", 1);
    if (control_lua_bool(L, "truncated"))
        out_put(o, ",\"truncated\":true", 17);
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
    bool                show = false, reset = false, list = false;
    struct control_lua *cl;
    void               *ref = NULL;

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
    if (env->zones == NULL) {
        control_out_error(out, "the zones are not available");
        return;
    }
    if ((cl = control_cmd_lua_begin(env, &ref, out)) == NULL)
        return;
    if (show)
        control_show(cl, s, n, out);
    else if (reset)
        control_reset(cl, s, n, out);
    else
        control_list(cl, s, n, out);
    control_cmd_lua_end(env, cl, ref);
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
