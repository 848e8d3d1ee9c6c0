/* core/control_token.c: the control socket's `token deny` and `token allow` (docs/ctl.md):
 * the bearer-token deny-list that policies/oauth2.lua reads from the shared dictionary,
 *   oauth2:deny:jti:VALUE   oauth2:deny:sub:VALUE   oauth2:deny:client:VALUE
 * each holding the time it was written, with a TTL: by default the longest token lifetime
 * policies accept (a day), after which any token it could match has expired anyway.
 * Runs on the control thread; the dictionary locks itself. */
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control_cmd.h"
#include "log.h"
#include "shdict.h"

#define CONTROL_TOKEN_PREFIX "oauth2:deny:"
#define CONTROL_TOKEN_TTL    86400.0        /* max_token_lifetime's default */
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

void
control_token_run(const struct control_env *env, const char *s, size_t n,
                  struct control_request *rq, struct control_out *out)
{
    char                key[SHDICT_MAX_KEY + 1];
    const char         *verb, *kind, *value, *secs;
    size_t              vlen, klen, valen, slen, keylen;
    double              ttl = CONTROL_TOKEN_TTL, now = ev_time();
    struct shdict_value v = {.type = SHDICT_NUMBER, .num = now};
    bool                deny, extra;

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
    keylen = (size_t)snprintf(key, sizeof(key), CONTROL_TOKEN_PREFIX "%.*s:%.*s", (int)klen,
                              kind, (int)valen, value);
    rq->name = value;
    rq->name_len = valen;
    rq->log_level = LOG_NOTICE;
    if (keylen >= sizeof(key)) {
        control_out_error(out, "value too long for the dictionary");
        return;
    }
    if (env->dict == NULL) {
        control_out_error(out, "the shared dictionary is not available");
        return;
    }
    if (deny && shdict_set(env->dict, key, keylen, &v, ttl, now) != SHDICT_OK) {
        control_out_error(out, "the shared dictionary is full");
        return;
    }
    control_out_begin_ok(out);
    control_out_text(out, "key", key, keylen);
    if (deny)
        control_out_secs(out, "ttl", ttl);
    else
        control_out_bool(out, "removed", shdict_delete(env->dict, key, keylen, now) == SHDICT_OK);
    control_out_finish(out);
}
