/* core/smtp/smtp_dsn.c: the DSN parameters (RFC 3461) of MAIL and RCPT in a transaction:
 * which reply a refused value gets, a parameter given twice, and where the values are kept
 * (the transaction, in the recipients' order) until the relay passes them on. The syntax of
 * each value is proto/dsn.c's; what the relay does with them is relay/upstream.c's, and
 * docs/smtp.md "Delivery status notifications" says both. */
#include <stdlib.h>
#include <string.h>

#include "proto/dsn.h"
#include "smtp/smtp_session_internal.h"

static enum smtp_reply_id
smtp_dsn_reply(enum dsn_rc rc)
{
    switch (rc) {
    case DSN_BAD_RET: return SMTP_R_DSN_BAD_RET;
    case DSN_BAD_ENVID: return SMTP_R_DSN_BAD_ENVID;
    case DSN_BAD_NOTIFY: return SMTP_R_DSN_BAD_NOTIFY;
    case DSN_NOTIFY_NEVER_MIXED: return SMTP_R_DSN_NOTIFY_NEVER;
    case DSN_BAD_ORCPT: return SMTP_R_DSN_BAD_ORCPT;
    case DSN_ORCPT_TYPE: return SMTP_R_DSN_ORCPT_TYPE;
    case DSN_OK: break;
    }
    return SMTP_R_SYNTAX; /* not reached: DSN_OK is not a refusal */
}

static enum smtp_dsn_rc
smtp_dsn_refuse(enum smtp_reply_id *reply, enum smtp_reply_id id)
{
    *reply = id;
    return SMTP_DSN_REFUSED;
}

/* A copy of val as a C string into *slot (NULL before), or the out-of-memory refusal. */
static enum smtp_dsn_rc
smtp_dsn_keep(char **slot, struct smtp_str val, enum smtp_reply_id *reply)
{
    *slot = strndup(val.p, val.len);
    return *slot != NULL ? SMTP_DSN_TAKEN : smtp_dsn_refuse(reply, SMTP_R_OUT_OF_MEMORY);
}

enum smtp_dsn_rc
smtp_dsn_mail_param(struct smtp_tx *tx, struct smtp_str key, struct smtp_str val,
                    enum smtp_reply_id *reply)
{
    enum dsn_rc rc;

    if (smtp_str_ieq(key, "RET")) {
        if (tx->dsn_ret != DSN_RET_NONE)
            return smtp_dsn_refuse(reply, SMTP_R_DSN_DUPLICATE);
        if ((rc = dsn_parse_ret(val, &tx->dsn_ret)) != DSN_OK)
            return smtp_dsn_refuse(reply, smtp_dsn_reply(rc));
        return SMTP_DSN_TAKEN;
    }
    if (smtp_str_ieq(key, "ENVID")) {
        if (tx->dsn_envid != NULL)
            return smtp_dsn_refuse(reply, SMTP_R_DSN_DUPLICATE);
        if ((rc = dsn_parse_envid(val)) != DSN_OK)
            return smtp_dsn_refuse(reply, smtp_dsn_reply(rc));
        return smtp_dsn_keep(&tx->dsn_envid, val, reply);
    }
    return SMTP_DSN_NOT_OURS;
}

enum smtp_dsn_rc
smtp_dsn_rcpt_param(const struct smtp_tx *tx, struct dsn_rcpt *d, struct smtp_str key,
                    struct smtp_str val, enum smtp_reply_id *reply)
{
    struct smtp_str type, addr;
    unsigned        mask;
    enum dsn_rc     rc;

    if (smtp_str_ieq(key, "NOTIFY")) {
        if (d->notify != NULL)
            return smtp_dsn_refuse(reply, SMTP_R_DSN_DUPLICATE);
        if ((rc = dsn_parse_notify(val, &mask)) != DSN_OK)
            return smtp_dsn_refuse(reply, smtp_dsn_reply(rc));
        return smtp_dsn_keep(&d->notify, val, reply);
    }
    if (smtp_str_ieq(key, "ORCPT")) {
        if (d->orcpt != NULL)
            return smtp_dsn_refuse(reply, SMTP_R_DSN_DUPLICATE);
        if ((rc = dsn_parse_orcpt(val, tx->smtputf8, &type, &addr)) != DSN_OK)
            return smtp_dsn_refuse(reply, smtp_dsn_reply(rc));
        return smtp_dsn_keep(&d->orcpt, val, reply);
    }
    return SMTP_DSN_NOT_OURS;
}

int
smtp_dsn_rcpt_keep(struct smtp_tx *tx, struct dsn_rcpt *d)
{
    if (d->notify == NULL && d->orcpt == NULL)
        return 0; /* the array is made for the first recipient that has some */
    if (tx->dsn_rcpts == NULL) {
        tx->dsn_rcpts = calloc(tx->cap_rcpts, sizeof(*tx->dsn_rcpts));
        if (tx->dsn_rcpts == NULL)
            return -1;
    }
    tx->dsn_rcpts[tx->n_rcpts] = *d;
    memset(d, 0, sizeof(*d));
    return 0;
}

int
smtp_dsn_rcpts_grow(struct smtp_tx *tx, size_t ncap)
{
    struct dsn_rcpt *p;

    if (tx->dsn_rcpts == NULL)
        return 0;
    p = realloc(tx->dsn_rcpts, ncap * sizeof(*p));
    if (p == NULL)
        return -1;
    memset(p + tx->cap_rcpts, 0, (ncap - tx->cap_rcpts) * sizeof(*p));
    tx->dsn_rcpts = p;
    return 0;
}

void
smtp_dsn_rcpt_cleanup(struct dsn_rcpt *d)
{
    free(d->notify);
    free(d->orcpt);
    memset(d, 0, sizeof(*d));
}

void
smtp_dsn_tx_cleanup(struct smtp_tx *tx)
{
    if (tx->dsn_rcpts != NULL)
        for (size_t i = 0; i < tx->n_rcpts; i++)
            smtp_dsn_rcpt_cleanup(&tx->dsn_rcpts[i]);
    free(tx->dsn_rcpts);
    tx->dsn_rcpts = NULL;
    free(tx->dsn_envid);
    tx->dsn_envid = NULL;
}
