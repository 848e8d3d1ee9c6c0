/* core/smtp/smtp_verbs.c: the verb table. Each verb names the session states it is read in,
 * what it needs of the session (EHLO first, a transaction, ...) with the reply when that is
 * missing, and its handler, which checks its arguments and applies: one reply per command,
 * with the enhanced code RFC 5321/3463 give for it. DATA/BDAT continue in smtp_data.c,
 * AUTH in smtp_auth.c. */
#include <assert.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/conn.h"
#include "policy/hook.h"
#include "util/log.h"
#include "smtp/smtp_reply.h"
#include "smtp/smtp_session_internal.h"

static bool
smtp_auth_offered(const struct smtp_session *s)
{
    return (s->tls || !s->lcfg->require_tls_for_auth) && s->lcfg->sasl_mechs != 0;
}

static void
smtp_ehlo_auth_line(const struct smtp_session *s, char *out, size_t len)
{
    size_t n = (size_t)snprintf(out, len, "AUTH");

    for (int m = SASL_MECH_PLAIN; m <= SASL_MECH_OAUTHBEARER; m++) {
        if ((s->lcfg->sasl_mechs & SASL_MECH_BIT(m)) && n < len)
            n += (size_t)snprintf(out + n, len - n, " %s", sasl_mech_name((enum sasl_mech)m));
    }
}

/* RFC 5321 4.1.1.1: a domain or an address literal. Checked loosely (underscores and
 * UTF-8 U-labels pass, as real clients send them) but strictly enough that the name
 * cannot write comments, dates or header syntax into our Received: line. */
static bool
smtp_helo_is_valid(const char *p, size_t len)
{
    bool literal = len >= 2 && p[0] == '[' && p[len - 1] == ']';

    if (literal) {
        p++;
        len -= 2;
    }
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)p[i];

        if (isalnum(ch) || ch == '-' || ch == '.' || (!literal && (ch == '_' || ch >= 0x80)))
            continue;
        if (literal && ch == ':')
            continue;
        return false;
    }
    return true;
}

/* The EHLO/HELO reply for the name now in s->helo. */
static enum smtp_rc
smtp_ehlo_reply(struct smtp_session *s)
{
    char        first[640], size[48], auth[96];
    const char *lines[12];
    size_t      n = 0;

    snprintf(first, sizeof(first), "%s Hello %s [%s]", s->cfg->hostname, s->helo, s->peer);
    if (!s->esmtp) {
        smtp_reply(s->conn, 250, NULL, "%s", first);
        return SMTP_CONTINUE;
    }
    lines[n++] = first;
    lines[n++] = "PIPELINING";
    snprintf(size, sizeof(size), "SIZE %zu", s->cfg->max_message_size);
    lines[n++] = size;
    lines[n++] = "8BITMIME";
    lines[n++] = "SMTPUTF8";
    lines[n++] = "ENHANCEDSTATUSCODES";
    lines[n++] = "CHUNKING";
    lines[n++] = "DSN"; /* RFC 3461; always: docs/smtp.md "Delivery status notifications" */
    if (s->lcfg->tls == CONFIG_TLS_STARTTLS && !s->tls)
        lines[n++] = "STARTTLS";
    if (smtp_auth_offered(s) && !s->authenticated) {
        smtp_ehlo_auth_line(s, auth, sizeof(auth));
        lines[n++] = auth;
    }
    smtp_reply_lines(s->conn, 250, lines, n);
    return SMTP_CONTINUE;
}

/* on_helo's verdict for the name in s->pending_arg. */
static enum smtp_rc
smtp_ehlo_decided(struct smtp_session *s, const struct verdict *v)
{
    char *name = s->pending_arg;

    s->pending_arg = NULL;
    smtp_session_enter(s, SMTP_STATE_CMD);
    if (v->kind == VERDICT_REJECT || v->kind == VERDICT_TEMPFAIL) {
        free(name);
        return smtp_session_policy_reply(s, v);
    }
    free(s->helo);
    s->helo = name; /* handed over: pending_arg was NULLed above */
    smtp_session_reset_tx(s); /* RFC 5321 4.1.4: EHLO resets the transaction */
    s->ehlo_seen = true;
    s->esmtp = s->pending_esmtp;
    return smtp_ehlo_reply(s);
}

static void
smtp_ehlo_hook_done(struct smtp_session *s, const struct verdict *v)
{
    smtp_session_decided(s, smtp_ehlo_decided(s, v));
}

static enum smtp_rc
smtp_verb_ehlo(struct smtp_session *s, const struct smtp_cmd *cmd)
{
    struct verdict v;

    if (cmd->arg.len == 0 || cmd->arg.len >= SMTP_HELO_MAX ||
        !smtp_helo_is_valid(cmd->arg.p, cmd->arg.len))
        return smtp_session_error(s, SMTP_R_EHLO_BAD_NAME);
    s->pending_arg = strndup(cmd->arg.p, cmd->arg.len);
    if (s->pending_arg == NULL)
        return smtp_session_error(s, SMTP_R_OUT_OF_MEMORY);
    s->pending_esmtp = cmd->verb == SMTP_VERB_EHLO;
    if (smtp_hook_helo(s, s->pending_arg, smtp_ehlo_hook_done, &v) == HOOK_PENDING)
        return smtp_session_wait(s);
    return smtp_ehlo_decided(s, &v);
}

static enum smtp_rc
smtp_verb_starttls(struct smtp_session *s, const struct smtp_cmd *cmd)
{
    (void)cmd;
    return smtp_session_starttls(s);
}

static bool
smtp_param_fail(struct smtp_session *s, enum smtp_rc *rc, enum smtp_reply_id reply)
{
    *rc = smtp_session_error(s, reply);
    return false;
}

/* MAIL FROM parameters: SIZE (RFC 1870), BODY (RFC 6152), SMTPUTF8 (RFC 6531),
 * RET and ENVID (RFC 3461, smtp_dsn.c), AUTH (RFC 4954 section 5, accepted and ignored).
 * Anything else: 555 5.5.4. */
static bool
smtp_mail_params(struct smtp_session *s, const struct smtp_cmd *cmd, struct smtp_tx *tx,
                 enum smtp_rc *rc)
{
    struct smtp_str    cur = cmd->params, key, val;
    bool               bad = false;
    enum smtp_dsn_rc   dsn;
    enum smtp_reply_id reply;

    while (smtp_parse_param_next(&cur, &key, &val, &bad)) {
        if (!s->esmtp)
            return smtp_param_fail(s, rc, SMTP_R_PARAMS_NEED_EHLO);
        if ((dsn = smtp_dsn_mail_param(tx, key, val, &reply)) != SMTP_DSN_NOT_OURS) {
            if (dsn == SMTP_DSN_REFUSED)
                return smtp_param_fail(s, rc, reply);
        } else if (smtp_str_ieq(key, "SIZE")) {
            if (!smtp_parse_ull(val, &tx->declared_size))
                return smtp_param_fail(s, rc, SMTP_R_BAD_SIZE);
            tx->declared_size_set = true;
            if (tx->declared_size > s->cfg->max_message_size)
                return smtp_param_fail(s, rc, SMTP_R_TOO_BIG);
        } else if (smtp_str_ieq(key, "BODY")) {
            if (smtp_str_ieq(val, "8BITMIME"))
                tx->body_8bit = true;
            else if (!smtp_str_ieq(val, "7BIT"))
                return smtp_param_fail(s, rc, SMTP_R_BAD_BODY);
        } else if (smtp_str_ieq(key, "SMTPUTF8") && val.len == 0) {
            tx->smtputf8 = true;
        } else if (!smtp_str_ieq(key, "AUTH")) {
            return smtp_param_fail(s, rc, SMTP_R_BAD_MAIL_PARAM);
        }
    }
    if (bad)
        return smtp_param_fail(s, rc, SMTP_R_MALFORMED_MAIL_PARAMS);
    return true;
}

/* on_mail_from's verdict: the transaction begins, or the policy's reply. */
static enum smtp_rc
smtp_mail_decided(struct smtp_session *s, const struct verdict *v)
{
    smtp_session_enter(s, SMTP_STATE_CMD);
    if (v->kind == VERDICT_REJECT || v->kind == VERDICT_TEMPFAIL) {
        smtp_session_reset_tx(s);
        return smtp_session_policy_reply(s, v);
    }
    smtp_reply_send(s->conn, SMTP_R_SENDER_OK);
    return SMTP_CONTINUE;
}

static void
smtp_mail_hook_done(struct smtp_session *s, const struct verdict *v)
{
    smtp_session_decided(s, smtp_mail_decided(s, v));
}

static enum smtp_rc
smtp_verb_mail(struct smtp_session *s, const struct smtp_cmd *cmd)
{
    struct smtp_tx  *tx;
    struct verdict   v;
    enum smtp_rc     rc;
    enum inflight_rc mem;

    if (s->messages >= s->cfg->max_messages) /* RFC 5321 3.8: 421 closes the channel */
        return smtp_session_close_with(s, SMTP_R_TOO_MANY_MESSAGES);
    tx = calloc(1, sizeof(*tx));
    if (tx == NULL)
        return smtp_session_error(s, SMTP_R_OUT_OF_MEMORY);
    if (!smtp_mail_params(s, cmd, tx, &rc)) {
        smtp_tx_free(tx);
        return rc;
    }
    if (cmd->addr_utf8 && !tx->smtputf8) {
        smtp_tx_free(tx);
        return smtp_session_error(s, SMTP_R_NEED_SMTPUTF8);
    }
    tx->mail_from = strndup(cmd->addr.p, cmd->addr.len);
    if (tx->mail_from == NULL) {
        smtp_tx_free(tx);
        return smtp_session_error(s, SMTP_R_OUT_OF_MEMORY);
    }
    if ((mem = smtp_budget_open(s, tx)) != INFLIGHT_OK) {
        smtp_tx_free(tx);
        return smtp_budget_refuse(s, mem);
    }
    s->tx = tx; /* dropped again if the policies refuse the sender */
    if (smtp_hook_mail_from(s, smtp_mail_hook_done, &v) == HOOK_PENDING)
        return smtp_session_wait(s);
    return smtp_mail_decided(s, &v);
}

/* Add rcpt (owned) and its DSN parameters (s->pending_dsn) to the transaction. */
static enum smtp_rc
smtp_rcpt_add(struct smtp_session *s, char *rcpt)
{
    struct smtp_tx *tx = s->tx;

    if (tx->n_rcpts == tx->cap_rcpts) {
        size_t ncap = tx->cap_rcpts ? tx->cap_rcpts * 2 : 4;
        char **p = realloc(tx->rcpts, ncap * sizeof(*p));

        if (p != NULL)
            tx->rcpts = p;
        if (p == NULL || smtp_dsn_rcpts_grow(tx, ncap) != 0)
            goto oom;
        tx->cap_rcpts = ncap;
    }
    if (smtp_dsn_rcpt_keep(tx, &s->pending_dsn) != 0)
        goto oom;
    tx->rcpts[tx->n_rcpts++] = rcpt;
    smtp_reply_send(s->conn, SMTP_R_RECIPIENT_OK);
    return SMTP_CONTINUE;
oom:
    free(rcpt);
    smtp_dsn_rcpt_cleanup(&s->pending_dsn);
    return smtp_session_error(s, SMTP_R_OUT_OF_MEMORY);
}

/* on_rcpt's verdict for s->pending_arg. */
static enum smtp_rc
smtp_rcpt_decided(struct smtp_session *s, const struct verdict *v)
{
    char *rcpt = s->pending_arg;

    s->pending_arg = NULL;
    smtp_session_enter(s, SMTP_STATE_CMD);
    if (v->kind == VERDICT_REJECT || v->kind == VERDICT_TEMPFAIL) {
        free(rcpt);
        smtp_dsn_rcpt_cleanup(&s->pending_dsn);
        return smtp_session_policy_reply(s, v);
    }
    return smtp_rcpt_add(s, rcpt);
}

static void
smtp_rcpt_hook_done(struct smtp_session *s, const struct verdict *v)
{
    smtp_session_decided(s, smtp_rcpt_decided(s, v));
}

/* RCPT TO parameters: NOTIFY and ORCPT (RFC 3461, smtp_dsn.c) into s->pending_dsn.
 * Anything else: 555 5.5.4. */
static bool
smtp_rcpt_params(struct smtp_session *s, const struct smtp_cmd *cmd, enum smtp_rc *rc)
{
    struct smtp_str    cur = cmd->params, key, val;
    bool               bad = false;
    enum smtp_dsn_rc   dsn;
    enum smtp_reply_id reply = SMTP_R_BAD_RCPT_PARAM;

    while (smtp_parse_param_next(&cur, &key, &val, &bad)) {
        if (!s->esmtp)
            reply = SMTP_R_PARAMS_NEED_EHLO;
        else if ((dsn = smtp_dsn_rcpt_param(s->tx, &s->pending_dsn, key, val, &reply)) ==
                 SMTP_DSN_TAKEN)
            continue;
        smtp_dsn_rcpt_cleanup(&s->pending_dsn);
        return smtp_param_fail(s, rc, reply); /* NOT_OURS leaves BAD_RCPT_PARAM */
    }
    return true; /* smtp_parse_command() refused malformed parameters already */
}

static enum smtp_rc
smtp_verb_rcpt(struct smtp_session *s, const struct smtp_cmd *cmd)
{
    struct verdict v;
    enum smtp_rc   rc;

    if (cmd->addr_utf8 && !s->tx->smtputf8)
        return smtp_session_error(s, SMTP_R_NEED_SMTPUTF8);
    if (s->tx->n_rcpts >= s->cfg->max_recipients) /* RFC 5321 4.5.3.1.10 */
        return smtp_session_error(s, SMTP_R_TOO_MANY_RECIPIENTS);
    if (!smtp_rcpt_params(s, cmd, &rc))
        return rc;
    s->pending_arg = strndup(cmd->addr.p, cmd->addr.len);
    if (s->pending_arg == NULL) {
        smtp_dsn_rcpt_cleanup(&s->pending_dsn);
        return smtp_session_error(s, SMTP_R_OUT_OF_MEMORY);
    }
    if (smtp_hook_rcpt(s, s->pending_arg, smtp_rcpt_hook_done, &v) == HOOK_PENDING)
        return smtp_session_wait(s);
    return smtp_rcpt_decided(s, &v);
}

static enum smtp_rc
smtp_verb_data(struct smtp_session *s, const struct smtp_cmd *cmd)
{
    (void)cmd;
    return smtp_data_begin(s);
}

static enum smtp_rc
smtp_verb_rset(struct smtp_session *s, const struct smtp_cmd *cmd)
{
    (void)cmd;
    smtp_session_reset_tx(s);
    smtp_reply_send(s->conn, SMTP_R_RESET);
    return SMTP_CONTINUE;
}

static enum smtp_rc
smtp_verb_noop(struct smtp_session *s, const struct smtp_cmd *cmd)
{
    (void)cmd;
    smtp_reply_send(s->conn, SMTP_R_OK);
    return SMTP_CONTINUE;
}

/* RFC 5321 3.5.3: 252 never confirms or denies a user */
static enum smtp_rc
smtp_verb_vrfy(struct smtp_session *s, const struct smtp_cmd *cmd)
{
    (void)cmd;
    smtp_reply_send(s->conn, SMTP_R_VRFY);
    return SMTP_CONTINUE;
}

static enum smtp_rc
smtp_verb_expn(struct smtp_session *s, const struct smtp_cmd *cmd)
{
    (void)cmd;
    return smtp_session_error(s, SMTP_R_EXPN);
}

static enum smtp_rc
smtp_verb_help(struct smtp_session *s, const struct smtp_cmd *cmd)
{
    static const char *const help[] = {
        "2.0.0 sluice: authenticated mail submission",
        "2.0.0 Commands: EHLO HELO STARTTLS AUTH MAIL RCPT DATA BDAT RSET NOOP VRFY HELP QUIT",
    };

    (void)cmd;
    smtp_reply_lines(s->conn, 214, help, 2);
    return SMTP_CONTINUE;
}

static enum smtp_rc
smtp_verb_quit(struct smtp_session *s, const struct smtp_cmd *cmd)
{
    (void)cmd;
    return smtp_session_close_with(s, SMTP_R_BYE);
}

/* What a verb needs of the session before its handler runs. */
enum smtp_need {
    SMTP_NEED_NOTHING,   /* the end of a verb's list */
    SMTP_NEED_EHLO,      /* EHLO or HELO accepted since connect or STARTTLS */
    SMTP_NEED_ESMTP,     /* EHLO (not HELO) accepted */
    SMTP_NEED_NO_TLS,    /* not under TLS yet */
    SMTP_NEED_STARTTLS,  /* a listener with tls = 'starttls' */
    SMTP_NEED_AUTH_TLS,  /* TLS, or a listener that allows AUTH without it */
    SMTP_NEED_AUTH,      /* authenticated */
    SMTP_NEED_NO_AUTH,   /* not authenticated yet */
    SMTP_NEED_TX,        /* a transaction: MAIL accepted */
    SMTP_NEED_NO_TX,     /* no transaction */
    SMTP_NEED_NO_BDAT,   /* no BDAT chunk in this transaction yet */
    SMTP_NEED_RCPT,      /* at least one recipient */
};

static bool
smtp_verbs_has(const struct smtp_session *s, enum smtp_need need)
{
    switch (need) {
    case SMTP_NEED_EHLO:
        return s->ehlo_seen;
    case SMTP_NEED_ESMTP:
        return s->ehlo_seen && s->esmtp;
    case SMTP_NEED_NO_TLS:
        return !s->tls;
    case SMTP_NEED_STARTTLS:
        return s->lcfg->tls == CONFIG_TLS_STARTTLS;
    case SMTP_NEED_AUTH_TLS: /* RFC 3207 section 4 */
        return s->tls || !s->lcfg->require_tls_for_auth;
    case SMTP_NEED_AUTH:
        return s->authenticated;
    case SMTP_NEED_NO_AUTH:
        return !s->authenticated;
    case SMTP_NEED_TX:
        return s->tx != NULL;
    case SMTP_NEED_NO_TX:
        return s->tx == NULL;
    case SMTP_NEED_NO_BDAT:
        return s->tx == NULL || !s->tx->bdat_used;
    case SMTP_NEED_RCPT:
        return s->tx != NULL && s->tx->n_rcpts > 0;
    case SMTP_NEED_NOTHING:
    default:
        return true;
    }
}

typedef enum smtp_rc smtp_verb_fn(struct smtp_session *s, const struct smtp_cmd *cmd);

#define SMTP_VERB_NEEDS_MAX 4
#define SMTP_IN(st)         (1u << (st))

struct smtp_verb_entry {
    unsigned      states; /* SMTP_IN(state): where the verb may be read */
    struct {
        enum smtp_need     need;
        enum smtp_reply_id refusal; /* counted as an error */
    } needs[SMTP_VERB_NEEDS_MAX];     /* checked in order; the first one missing answers */
    smtp_verb_fn *handler;
};

/* Commands are read in CMD only (AUTH and content lines are not commands). BDAT checks
 * its own needs: a refused chunk must still be read (smtp_data.c). RFC 5321 4.1.4 for
 * the order of commands, RFC 4954 section 4 for AUTH, RFC 3207 section 4 for STARTTLS. */
static const struct smtp_verb_entry smtp_verbs[] = {
    [SMTP_VERB_EHLO] = {SMTP_IN(SMTP_STATE_CMD), {{0}}, smtp_verb_ehlo},
    [SMTP_VERB_HELO] = {SMTP_IN(SMTP_STATE_CMD), {{0}}, smtp_verb_ehlo},
    [SMTP_VERB_STARTTLS] = {SMTP_IN(SMTP_STATE_CMD),
                            {{SMTP_NEED_NO_TLS, SMTP_R_TLS_ACTIVE},
                             {SMTP_NEED_STARTTLS, SMTP_R_STARTTLS_NOT_OFFERED},
                             {SMTP_NEED_NO_TX, SMTP_R_STARTTLS_IN_TX}},
                            smtp_verb_starttls},
    [SMTP_VERB_AUTH] = {SMTP_IN(SMTP_STATE_CMD),
                        {{SMTP_NEED_ESMTP, SMTP_R_SEND_EHLO_FIRST},
                         {SMTP_NEED_AUTH_TLS, SMTP_R_AUTH_NEED_TLS},
                         {SMTP_NEED_NO_AUTH, SMTP_R_AUTH_ALREADY},
                         {SMTP_NEED_NO_TX, SMTP_R_AUTH_IN_TX}},
                        smtp_auth_begin},
    [SMTP_VERB_MAIL] = {SMTP_IN(SMTP_STATE_CMD),
                        {{SMTP_NEED_EHLO, SMTP_R_SEND_EHLO_FIRST},
                         {SMTP_NEED_AUTH, SMTP_R_AUTH_REQUIRED},
                         {SMTP_NEED_NO_TX, SMTP_R_NESTED_MAIL}},
                        smtp_verb_mail},
    [SMTP_VERB_RCPT] = {SMTP_IN(SMTP_STATE_CMD),
                        {{SMTP_NEED_TX, SMTP_R_NEED_MAIL},
                         {SMTP_NEED_NO_BDAT, SMTP_R_RCPT_AFTER_BDAT}},
                        smtp_verb_rcpt},
    [SMTP_VERB_DATA] = {SMTP_IN(SMTP_STATE_CMD),
                        {{SMTP_NEED_TX, SMTP_R_NEED_MAIL},
                         {SMTP_NEED_NO_BDAT, SMTP_R_DATA_AFTER_BDAT},
                         {SMTP_NEED_RCPT, SMTP_R_NO_RECIPIENTS}}, /* RFC 5321 3.3 */
                        smtp_verb_data},
    [SMTP_VERB_BDAT] = {SMTP_IN(SMTP_STATE_CMD), {{0}}, smtp_bdat_begin},
    [SMTP_VERB_RSET] = {SMTP_IN(SMTP_STATE_CMD), {{0}}, smtp_verb_rset},
    [SMTP_VERB_NOOP] = {SMTP_IN(SMTP_STATE_CMD), {{0}}, smtp_verb_noop},
    [SMTP_VERB_VRFY] = {SMTP_IN(SMTP_STATE_CMD), {{0}}, smtp_verb_vrfy},
    [SMTP_VERB_EXPN] = {SMTP_IN(SMTP_STATE_CMD), {{0}}, smtp_verb_expn},
    [SMTP_VERB_HELP] = {SMTP_IN(SMTP_STATE_CMD), {{0}}, smtp_verb_help},
    [SMTP_VERB_QUIT] = {SMTP_IN(SMTP_STATE_CMD), {{0}}, smtp_verb_quit},
};

enum smtp_rc
smtp_verbs_dispatch(struct smtp_session *s, const struct smtp_cmd *cmd)
{
    const struct smtp_verb_entry *e;

    if ((size_t)cmd->verb >= sizeof(smtp_verbs) / sizeof(smtp_verbs[0]) ||
        smtp_verbs[cmd->verb].handler == NULL)
        return smtp_session_error(s, SMTP_R_UNRECOGNIZED);
    e = &smtp_verbs[cmd->verb];
    assert(e->states & SMTP_IN(s->state)); /* smtp_session.c reads commands in CMD only */
    for (size_t i = 0; i < SMTP_VERB_NEEDS_MAX && e->needs[i].need != SMTP_NEED_NOTHING; i++) {
        if (!smtp_verbs_has(s, e->needs[i].need))
            return smtp_session_error(s, e->needs[i].refusal);
    }
    return e->handler(s, cmd);
}
