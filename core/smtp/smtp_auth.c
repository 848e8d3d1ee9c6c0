/* core/smtp/smtp_auth.c: the AUTH exchange (RFC 4954): checks, 334 challenges through
 * sasl.c, the decision through hook_auth_start(), and the replies. A refused bearer
 * token first gets the RFC 7628 error challenge, which the client must answer. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth_cache.h"
#include "net/conn.h"
#include "policy/hook.h"
#include "util/log.h"
#include "smtp/smtp_reply.h"
#include "smtp/smtp_session_internal.h"
#include "store/zone.h"

static void smtp_auth_result_done(struct smtp_session *s, const struct verdict *v);
static enum smtp_rc smtp_auth_send(struct smtp_session *s);

/* An AUTH that ends before any policy decided (a cancel, bad base64, a broken or
 * over-long line inside the exchange, no memory): a failed attempt like a wrong password
 * (docs/security.md "AUTH floods"). on_auth_result hears of it, so that the client's
 * limits count it, and smtp_auth_refuse() counts it towards limits.max_auth_failures.
 * why, when not NULL, is the log's reason (the verdict's, never sent). */
static enum smtp_rc
smtp_auth_fail(struct smtp_session *s, enum smtp_reply_id reply, const char *why)
{
    const struct smtp_reply_entry *r = smtp_replies_get(reply);
    struct verdict                *a;

    assert(s->auth != NULL); /* only inside an exchange smtp_auth_begin started */
    a = &s->auth->verdict;
    smtp_session_enter(s, SMTP_STATE_CMD);
    s->auth_mech = s->sasl.mech;
    verdict_set(a, r->code / 100 == 4 ? VERDICT_TEMPFAIL : VERDICT_REJECT, r->code, r->enhanced,
                r->text);
    snprintf(a->reason, sizeof(a->reason), "%s", why != NULL ? why : "");
    if (smtp_hook_auth_result(s, a, smtp_auth_result_done) == HOOK_PENDING)
        return smtp_session_wait(s);
    return smtp_auth_send(s);
}

enum smtp_rc
smtp_auth_abort(struct smtp_session *s, enum smtp_reply_id reply)
{
    return smtp_auth_fail(s, reply, NULL);
}

/* The client answered the RFC 7628 error challenge: the token's refusal (told to
 * on_auth_result already) is final now, 535, and counts; the limits.max_auth_failures-th
 * one also gets 421 and the end of the session (docs/smtp.md). */
static enum smtp_rc
smtp_auth_refused(struct smtp_session *s)
{
    sasl_reset(&s->sasl);
    smtp_session_enter(s, SMTP_STATE_CMD);
    if (smtp_session_error(s, SMTP_R_AUTH_INVALID) == SMTP_GONE)
        return SMTP_GONE;
    if (++s->auth_failures < s->cfg->max_auth_failures)
        return SMTP_CONTINUE;
    return smtp_session_close_with(s, SMTP_R_TOO_MANY_AUTH_FAILURES);
}

static void
smtp_auth_log_fail(struct smtp_session *s, const char *user, int code, const char *why)
{
    struct logline l;

    log_begin(&l, LOG_NOTICE, "auth.fail", s->id);
    log_str(&l, "mech", sasl_mech_name(s->sasl.mech));
    log_str(&l, "user", user);
    log_str(&l, "ip", s->peer);
    log_int(&l, "code", code);
    log_str(&l, "reason", why);
    log_end(&l);
}

static void smtp_auth_hook_done(struct smtp_session *s, const struct verdict *v);
static enum smtp_rc smtp_auth_apply(struct smtp_session *s, const struct verdict *v);

/* A bare user name ("alice") is alice@default_domain when one is configured, as the
 * Python design served its global users.txt: policies and logs only ever see addresses. */
static int
smtp_auth_qualify(struct smtp_session *s)
{
    struct sasl_creds *c = &s->sasl.creds;
    char              *full;

    if (s->cfg->default_domain == NULL || c->authcid == NULL || c->authcid[0] == '\0' ||
        strchr(c->authcid, '@') != NULL)
        return 0;
    if (asprintf(&full, "%s@%s", c->authcid, s->cfg->default_domain) < 0)
        return -1;
    free(c->authcid);
    c->authcid = full;
    return 0;
}

/* Credentials complete: ask the policies; wait if they take time. */
static enum smtp_rc
smtp_auth_decide(struct smtp_session *s)
{
    struct verdict v;

    s->auth_mech = s->sasl.mech;
    s->auth->cache_key[0] = '\0';
    if (smtp_auth_qualify(s) != 0)
        return smtp_auth_fail(s, SMTP_R_AUTH_NO_MEMORY, NULL);
    if (smtp_hook_auth(s, smtp_auth_hook_done, &v) == HOOK_DONE)
        return smtp_auth_apply(s, &v);
    return smtp_session_wait(s);
}

static enum smtp_rc
smtp_auth_result(struct smtp_session *s, enum sasl_rc rc)
{
    switch (rc) {
    case SASL_DONE:
        return smtp_auth_decide(s);
    case SASL_CHALLENGE:
        smtp_reply(s->conn, 334, NULL, "%s", s->sasl.challenge);
        smtp_session_enter(s, SMTP_STATE_AUTH);
        return SMTP_CONTINUE;
    case SASL_CANCELLED:
        return smtp_auth_fail(s, SMTP_R_AUTH_CANCELLED, NULL);
    case SASL_BAD_BASE64:
        return smtp_auth_fail(s, SMTP_R_AUTH_BAD_BASE64, NULL);
    case SASL_AUTHZ_DENIED:
        return smtp_auth_fail(s, SMTP_R_AUTH_INVALID,
                              "authzid differs from authcid");
    case SASL_BAD_SYNTAX:
    default:
        return smtp_auth_fail(s, SMTP_R_AUTH_MALFORMED, NULL);
    }
}

enum smtp_rc
smtp_auth_begin(struct smtp_session *s, const struct smtp_cmd *cmd)
{
    const char    *arg = cmd->arg.p, *sp;
    size_t         len = cmd->arg.len;
    enum sasl_mech mech;

    /* smtp_verbs.c checked EHLO, TLS, not yet authenticated, no transaction */
    sp = memchr(arg, ' ', len);
    mech = sasl_mech_from_name(arg, sp ? (size_t)(sp - arg) : len);
    if (mech == SASL_MECH_NONE || !(s->lcfg->sasl_mechs & SASL_MECH_BIT(mech)))
        return smtp_session_error(s, SMTP_R_AUTH_BAD_MECH);
    if (s->auth == NULL && (s->auth = calloc(1, sizeof(*s->auth))) == NULL)
        return smtp_session_error(s, SMTP_R_AUTH_NO_MEMORY);
    if (sp != NULL)
        return smtp_auth_result(s, sasl_start(&s->sasl, mech, sp + 1,
                                              len - (size_t)(sp + 1 - arg)));
    return smtp_auth_result(s, sasl_start(&s->sasl, mech, NULL, 0));
}

enum smtp_rc
smtp_auth_line(struct smtp_session *s, const char *line, size_t len)
{
    /* RFC 7628 3.2.3: whatever the client answers, the exchange has failed. */
    if (s->state == SMTP_STATE_AUTH_ERROR)
        return smtp_auth_refused(s);
    return smtp_auth_result(s, sasl_step(&s->sasl, line, len));
}

static void
smtp_auth_log_ok(struct smtp_session *s)
{
    struct logline l;

    log_begin(&l, LOG_INFO, "auth.ok", s->id);
    log_str(&l, "mech", sasl_mech_name(s->auth_mech));
    log_str(&l, "user", s->user);
    log_str(&l, "domain", s->domain);
    log_str(&l, "ip", s->peer);
    log_end(&l);
}

static void
smtp_auth_token_refused(struct smtp_session *s)
{
    char challenge[256];

    if (sasl_token_error_challenge(s->auth_mech, "smtp.send", challenge, sizeof(challenge)))
        smtp_reply(s->conn, 334, NULL, "%s", challenge);
    smtp_session_enter(s, SMTP_STATE_AUTH_ERROR);
}

/* The session's identity after an accepted AUTH: the user name with ASCII letters
 * lowercased, the domain its part after the last '@'. */
static int
smtp_auth_identity(struct smtp_session *s, const char *authcid)
{
    const char *at;
    char       *user, *p;

    if ((user = strdup(authcid != NULL ? authcid : "")) == NULL)
        return -1;
    for (p = user; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    free(s->user);
    s->user = user;
    at = strrchr(user, '@');
    s->domain = at != NULL ? at + 1 : "";
    s->authenticated = true;
    return 0;
}

/* A refusal: a bearer token first gets the error challenge; any other answer counts
 * towards limits.max_auth_failures; 421 closes. */
static enum smtp_rc
smtp_auth_refuse(struct smtp_session *s, const struct verdict *v)
{
    smtp_auth_log_fail(s, s->sasl.creds.authcid, v->code, v->reason[0] ? v->reason : v->text);
    smtp_server_count_auth(s->server, s->auth_mech, false);
    if (v->code == 535 && (s->auth_mech == SASL_MECH_XOAUTH2 ||
                           s->auth_mech == SASL_MECH_OAUTHBEARER)) {
        smtp_auth_token_refused(s);
        sasl_reset(&s->sasl);
        return SMTP_CONTINUE;
    }
    sasl_reset(&s->sasl);
    if (v->code == 421)
        return smtp_session_close_text(s, 421, v->enhanced, v->text);
    smtp_reply(s->conn, v->code, v->enhanced, "%s", v->text);
    /* Every answer but 235 counts: a 454 (busy, blocked) or a 451 (a policy failed) as
     * much as a 535, or a flood of them would be free guessing. */
    if (++s->auth_failures >= s->cfg->max_auth_failures)
        return smtp_session_close_with(s, SMTP_R_TOO_MANY_AUTH_FAILURES);
    return SMTP_CONTINUE;
}

/* 235 is on its way to a live session: now, and only now, the password a backend found
 * right is remembered (auth_cache.h). A success computed for a session that is gone or
 * whose hook ran out of time never gets here. */
static void
smtp_auth_remember(struct smtp_session *s, const struct smtp_auth_answer *a)
{
    struct zone *cache = zones_at(s->server->zones, CONFIG_ZONE_AUTH_CACHE);

    if (a->cache_key[0] != '\0' && cache != NULL)
        auth_cache_store(cache, a->cache_key, a->cache_ttl, ev_now(s->server->loop));
}

static void
smtp_auth_answer_free(struct smtp_auth_answer *a)
{
    if (a == NULL)
        return;
    explicit_bzero(a->cache_key, sizeof(a->cache_key)); /* derived from the password */
    free(a);
}

void
smtp_auth_forget(struct smtp_session *s)
{
    smtp_auth_answer_free(s->auth);
    s->auth = NULL;
}

/* Send the AUTH answer decided in s->auth, which ends here. */
static enum smtp_rc
smtp_auth_send(struct smtp_session *s)
{
    struct smtp_auth_answer *a = s->auth;
    enum smtp_rc             rc = SMTP_CONTINUE;

    s->auth = NULL; /* ours now: a refusal below may free the session */
    smtp_session_enter(s, SMTP_STATE_CMD);
    if (a->verdict.kind == VERDICT_ACCEPT) {
        sasl_reset(&s->sasl);
        smtp_auth_log_ok(s);
        smtp_server_count_auth(s->server, s->auth_mech, true);
        smtp_reply_send(s->conn, SMTP_R_AUTH_OK);
        smtp_auth_remember(s, a);
    } else {
        rc = smtp_auth_refuse(s, &a->verdict);
    }
    smtp_auth_answer_free(a);
    return rc;
}

static void
smtp_auth_result_done(struct smtp_session *s, const struct verdict *v)
{
    (void)v;
    smtp_session_decided(s, smtp_auth_send(s));
}

static void
smtp_auth_verdict_set(struct verdict *v, enum verdict_kind kind, enum smtp_reply_id reply)
{
    const struct smtp_reply_entry *r = smtp_replies_get(reply);

    verdict_set(v, kind, r->code, r->enhanced, r->text);
}

/* What the client hears about its AUTH; no verdict is the on_auth default, 535. An
 * accept fixes the identity first; on_auth_result sees the answer before it is sent. */
static enum smtp_rc
smtp_auth_apply(struct smtp_session *s, const struct verdict *v)
{
    struct verdict *a = &s->auth->verdict;

    smtp_session_enter(s, SMTP_STATE_CMD);
    *a = *v;
    if (a->kind == VERDICT_ACCEPT &&
        smtp_auth_identity(s, a->user[0] != '\0' ? a->user : s->sasl.creds.authcid) != 0)
        return smtp_auth_fail(s, SMTP_R_AUTH_NO_MEMORY, NULL);
    if (a->kind == VERDICT_ACCEPT) {
        smtp_auth_verdict_set(a, VERDICT_ACCEPT, SMTP_R_AUTH_OK);
    } else if (a->kind == VERDICT_NONE) {
        smtp_auth_verdict_set(a, VERDICT_REJECT, SMTP_R_AUTH_INVALID);
    }
    if (smtp_hook_auth_result(s, a, smtp_auth_result_done) == HOOK_PENDING)
        return smtp_session_wait(s);
    return smtp_auth_send(s);
}

static void
smtp_auth_hook_done(struct smtp_session *s, const struct verdict *v)
{
    smtp_session_decided(s, smtp_auth_apply(s, v));
}
