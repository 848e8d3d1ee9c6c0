/* core/daemon/control_token.c: the control socket's `token deny` and `token allow` (docs/ctl.md):
 * the bearer-token deny-list that policies/oauth2.lua reads from the zone denylist,
 *   oauth2:deny:jti:VALUE   oauth2:deny:sub:VALUE   oauth2:deny:client:VALUE
 * each holding the time it was written, with a TTL: by default the longest token lifetime
 * policies accept (a day), after which any token it could match has expired anyway.
 * A VALUE over CONTROL_TOKEN_VALUE_MAX octets is bounded as zone_key_part() says, as
 * oauth2.lua bounds it with sluice.key_part, so any token can be denied and no entry is
 * larger than a short key. The zone is never evicted; when it is full the deny is refused
 * (and oauth2.lua then refuses every bearer token with 454 until a deny succeeds again).
 * Runs on the control thread; the zone locks itself. */
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/control_cmd.h"
#include "util/log.h"
#include "config/config.h"
#include "store/zone.h"

#define CONTROL_TOKEN_PREFIX "oauth2:deny:"
#define CONTROL_TOKEN_TTL    86400.0        /* max_token_lifetime's default */
#define CONTROL_TOKEN_MAX_TTL (366 * 86400.0)
#define CONTROL_TOKEN_VALUE_MAX 64          /* octets kept as they are in a key */

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

void
control_token_run(const struct control_env *env, const char *s, size_t n,
                  struct control_request *rq, struct control_out *out)
{
    char                key[64 + CONTROL_TOKEN_VALUE_MAX + 2];
    char                part[CONTROL_TOKEN_VALUE_MAX + 2];
    struct zone        *zone;
    const char         *verb, *kind, *value, *secs;
    size_t              vlen, klen, valen, slen, keylen, plen;
    double              ttl = CONTROL_TOKEN_TTL, now = ev_time();
    struct shdict_value v = {.type = SHDICT_NUMBER, .num = now};
    bool                deny, extra;
    enum shdict_rc      rc;

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
    plen = zone_key_part(value, valen, CONTROL_TOKEN_VALUE_MAX, part);
    keylen = (size_t)snprintf(key, sizeof(key), CONTROL_TOKEN_PREFIX "%.*s:%.*s", (int)klen,
                              kind, (int)plen, part);
    if ((zone = zones_at(env->zones, CONFIG_ZONE_DENYLIST)) == NULL) {
        control_out_error(out, "the zone denylist is not available");
        return;
    }
    if (deny && (rc = zone_set(zone, key, keylen, &v, ttl, now)) != SHDICT_OK) {
        control_out_error(out, rc == SHDICT_FULL
                                   ? "the zone denylist is full: nothing was denied, and "
                                     "bearer-token AUTH gets 454 until a deny succeeds; "
                                     "remove entries (token allow) or enlarge "
                                     "zones.denylist (restart)"
                                   : "out of memory: nothing was denied");
        return;
    }
    control_out_begin_ok(out);
    control_out_text(out, "key", key, keylen);
    if (deny)
        control_out_secs(out, "ttl", ttl);
    else
        control_out_bool(out, "removed", zone_delete(zone, key, keylen, now) == SHDICT_OK);
    control_out_finish(out);
}
