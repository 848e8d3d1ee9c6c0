/* core/daemon/control_token.c: the control socket's `token deny` and `token allow` (docs/ctl.md):
 * parses the request and calls lua/sluice/denylist.lua's deny and allow, which own the
 * deny-list's keys in the zone denylist (policies/oauth2.lua reads them through the same
 * module), in a state over the running configuration (control_lua.h). The zone is never
 * evicted; when it is full the deny is refused (and oauth2.lua then refuses every bearer
 * token with 454 until a deny succeeds again). Runs on the control thread. */
#include <lua.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/control_cmd.h"
#include "daemon/control_lua.h"
#include "util/log.h"
#include "config/config.h"
#include "store/zone.h"

#define CONTROL_TOKEN_MAX_TTL (366 * 86400.0)

static const char control_token_usage[] =
    "usage: token deny jti|sub|client VALUE [SECONDS] | token allow jti|sub|client VALUE";

/* Split off the next space-separated word of s. */
static bool
control_token_word(const char **s, size_t *n, const char **w, size_t *wlen)
{
    const char *sp;

    if (*n == 0)
        return false;
    sp = memchr(*s, ' ', *n);
    *w = *s;
    *wlen = sp != NULL ? (size_t)(sp - *s) : *n;
    *s += *wlen + (sp != NULL);
    *n -= *wlen + (sp != NULL);
    return *wlen > 0;
}

static bool
control_token_is(const char *w, size_t n, const char *word)
{
    return n == strlen(word) && memcmp(w, word, n) == 0;
}

/* "SECONDS" -> ttl, or false. */
static bool
control_token_ttl(const char *w, size_t n, double *ttl)
{
    char  buf[32], *end;
    double v;

    if (n == 0 || n >= sizeof(buf))
        return false;
    memcpy(buf, w, n);
    buf[n] = '\0';
    v = strtod(buf, &end);
    if (*end != '\0' || !(v > 0) || v > CONTROL_TOKEN_MAX_TTL)
        return false;
    *ttl = v;
    return true;
}

/* Why a deny was not written, for the operator. */
static const char *
control_token_why(const char *reason)
{
    if (reason != NULL && strcmp(reason, "full") == 0)
        return "the zone denylist is full: nothing was denied, and bearer-token AUTH gets "
               "454 until a deny succeeds; remove entries (token allow) or enlarge "
               "zones.denylist (restart)";
    if (reason != NULL && strcmp(reason, "unavailable") == 0)
        return "Redis is unavailable (the zone denylist is in Redis and fails closed): "
               "nothing was denied; bearer-token AUTH gets 454 until Redis is back";
    return "out of memory: nothing was denied";
}

/* denylist.deny(kind, value[, ttl]) -> key, ttl | nil, reason, as a reply. */
static void
control_token_deny(struct control_lua *cl, bool has_ttl, struct control_out *out)
{
    lua_State  *L = control_lua_state(cl);
    char        err[512];
    const char *key;
    size_t      keylen;

    if (control_lua_call(cl, "token", "sluice.denylist", "deny", has_ttl ? 3 : 2, 2, err,
                         sizeof(err)) != 0) {
        control_out_error(out, err);
    } else if (!lua_isstring(L, -2)) {
        control_out_error(out, control_token_why(lua_tostring(L, -1)));
    } else {
        key = lua_tolstring(L, -2, &keylen);
        control_out_begin_ok(out);
        control_out_text(out, "key", key, keylen);
        control_out_secs(out, "ttl", lua_tonumber(L, -1));
        control_out_finish(out);
    }
}

/* denylist.allow(kind, value) -> key, removed[, why], as a reply. */
static void
control_token_allow(struct control_lua *cl, struct control_out *out)
{
    lua_State  *L = control_lua_state(cl);
    char        err[512];
    const char *key;
    size_t      keylen;

    if (control_lua_call(cl, "token", "sluice.denylist", "allow", 2, 3, err, sizeof(err)) != 0) {
        control_out_error(out, err);
        return;
    }
    if (lua_isstring(L, -1)) { /* why nothing was done */
        control_out_error(out, strcmp(lua_tostring(L, -1), "unavailable") == 0
                                   ? "Redis is unavailable (the zone denylist is in Redis): "
                                     "nothing was allowed"
                                   : lua_tostring(L, -1));
        return;
    }
    lua_pop(L, 1);
    key = lua_isstring(L, -2) ? lua_tolstring(L, -2, &keylen) : (keylen = 0, "");
    control_out_begin_ok(out);
    control_out_text(out, "key", key, keylen);
    control_out_bool(out, "removed", lua_toboolean(L, -1));
    control_out_finish(out);
}

void
control_token_run(const struct control_env *env, const char *s, size_t n,
                  struct control_request *rq, struct control_out *out)
{
    const char         *verb, *kind, *value, *secs;
    size_t              vlen, klen, valen, slen;
    double              ttl = 0;
    bool                deny, extra;
    struct control_lua *cl;
    void               *ref = NULL;

    if (!control_token_word(&s, &n, &verb, &vlen) || !control_token_word(&s, &n, &kind, &klen) ||
        !control_token_word(&s, &n, &value, &valen) ||
        !(control_token_is(kind, klen, "jti") || control_token_is(kind, klen, "sub") ||
          control_token_is(kind, klen, "client"))) {
        control_out_error(out, control_token_usage);
        return;
    }
    deny = control_token_is(verb, vlen, "deny");
    rq->command = deny ? "token deny" : "token allow";
    extra = control_token_word(&s, &n, &secs, &slen);
    if ((!deny && !control_token_is(verb, vlen, "allow")) || n != 0 || (extra && !deny) ||
        (extra && !control_token_ttl(secs, slen, &ttl))) {
        rq->command = "(unknown)";
        control_out_error(out, control_token_usage);
        return;
    }
    rq->name = value;
    rq->name_len = valen;
    rq->log_level = LOG_NOTICE;
    if (zones_at(env->zones, CONFIG_ZONE_DENYLIST) == NULL) {
        control_out_error(out, "the zone denylist is not available");
        return;
    }
    if ((cl = control_cmd_lua_begin(env, &ref, out)) == NULL)
        return;
    lua_pushlstring(control_lua_state(cl), kind, klen);
    lua_pushlstring(control_lua_state(cl), value, valen);
    if (extra)
        lua_pushnumber(control_lua_state(cl), ttl);
    if (deny)
        control_token_deny(cl, extra, out);
    else
        control_token_allow(cl, out);
    control_cmd_lua_end(env, cl, ref);
}
