/* core/smtp/smtp_dkim.c: DKIM signing of a message about to be relayed (docs/dkim.md).
 * The signing domain is the domain of the header From: (what DMARC aligns with, RFC 7489
 * section 3.1), signed when the session authenticated and that domain has `dkim` keys;
 * the policies (check_header_from, policies/sender_domain.lua) have decided by then that
 * the user may send as it. It runs after on_data, so a policy's edits are signed. The
 * fields are made by proto/dkim_sign.c and prepended above our Received:. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "config/config.h"
#include "proto/dkim_sign.h"
#include "proto/message.h"
#include "util/log.h"
#include "smtp/smtp_session_internal.h"

#define SMTP_DKIM_DOMAIN_MAX 255

/* The domain of the one From: field of the client's message, lowercased, into out; false
 * when there is no From:, more than one (RFC 5322 section 3.6: exactly one), or no
 * address in it. The address is the last '@' in <...> when there are brackets. */
static bool
smtp_dkim_from_domain(const char *msg, size_t len, char out[SMTP_DKIM_DOMAIN_MAX + 1])
{
    struct message_header h, again;
    size_t                pos = 0, n, i, k = 0;
    char                 *v;
    const char           *at, *lt, *end;

    if (!message_header_find(msg, len, &pos, "From", 4, &h) ||
        message_header_find(msg, len, &pos, "From", 4, &again))
        return false;
    v = malloc(h.end - h.value + 1);
    if (v == NULL)
        return false;
    n = message_header_unfold(msg, &h, v);
    v[n] = '\0';
    lt = strrchr(v, '<');
    end = lt != NULL ? strchr(lt, '>') : v + n;
    if (end == NULL)
        end = v + n;
    at = NULL;
    for (i = (size_t)((lt != NULL ? lt : v) - v); v + i < end; i++)
        if (v[i] == '@')
            at = v + i;
    if (at != NULL)
        for (at++; at < end && k < SMTP_DKIM_DOMAIN_MAX && *at != ' ' && *at != '\t' &&
                   *at != '>' && *at != ',' && *at != ';';
             at++)
            out[k++] = (char)(*at >= 'A' && *at <= 'Z' ? *at + 32 : *at);
    out[k] = '\0';
    free(v);
    return k > 0;
}

/* Whether the session's user may have mail signed for d, the From: domain's entry: d is
 * the user's own domain, or `senders` gives the user an address in d. The policies'
 * check_header_from holds the From: to the same rule, but a domain may turn that off for
 * its users: their mail must still never get another domain's signature. */
static bool
smtp_dkim_user_may_sign(const struct smtp_session *s, const struct config_domain *d)
{
    const struct config_domain *own = config_domain_find(s->cfg, s->domain);
    const char                 *at;
    size_t                      i, k;

    if (own == d)
        return true;
    for (i = 0; own != NULL && i < own->n_senders; i++) {
        if (strcasecmp(own->senders[i].user, s->user) != 0)
            continue;
        for (k = 0; own->senders[i].addresses[k] != NULL; k++) {
            at = strrchr(own->senders[i].addresses[k], '@');
            if (at != NULL && config_domain_find(s->cfg, at + 1) == d)
                return true;
        }
    }
    return false;
}

/* Whether any domain the user may sign for has keys, before the From: is parsed: most
 * mail is of domains without any, and costs one lookup. */
static bool
smtp_dkim_user_may_sign_any(const struct smtp_session *s)
{
    const struct config_domain *own = config_domain_find(s->cfg, s->domain);

    return own != NULL && (own->n_dkim > 0 || own->n_senders > 0);
}

/* Every key's field, concatenated in *out (caller frees). 0, or -1 with err. */
static int
smtp_dkim_fields(const struct config_domain *d, const char *msg, size_t len, char **out,
                 size_t *out_len, char *err, size_t errlen)
{
    long long now = (long long)time(NULL);
    size_t    i, n;
    char     *all = NULL, *one, *grown;

    *out_len = 0;
    for (i = 0; i < d->n_dkim; i++) {
        struct dkim_signer sig = {
            .key = d->dkim[i].key,
            .domain = d->name,
            .selector = d->dkim[i].selector,
            .headers = (const char *const *)d->dkim[i].headers,
        };

        if (dkim_sign(&sig, msg, len, now, &one, &n, err, errlen) != 0)
            goto fail;
        grown = realloc(all, *out_len + n);
        if (grown == NULL) {
            free(one);
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        all = grown;
        memcpy(all + *out_len, one, n);
        *out_len += n;
        free(one);
    }
    *out = all;
    return 0;
fail:
    free(all);
    return -1;
}

static void
smtp_dkim_log(struct smtp_session *s, int level, const char *event,
              const struct config_domain *d, const char *err)
{
    struct logline l;
    char           sels[256] = "";
    size_t         i, o = 0;

    for (i = 0; i < d->n_dkim && o < sizeof(sels); i++)
        o += (size_t)snprintf(sels + o, sizeof(sels) - o, "%s%s:%s", i ? " " : "",
                              d->dkim[i].selector, dkim_alg_name(dkim_key_alg(d->dkim[i].key)));
    log_begin(&l, level, event, s->id);
    log_str(&l, "domain", d->name);
    log_str(&l, "selectors", sels);
    if (err != NULL)
        log_str(&l, "error", err);
    log_end(&l);
}

enum smtp_dkim_rc
smtp_dkim_sign(struct smtp_session *s)
{
    struct smtp_tx             *tx = s->tx;
    const struct config_domain *d;
    char                        dom[SMTP_DKIM_DOMAIN_MAX + 1], err[128], *fields = NULL;
    size_t                      n, used;
    char                       *head;

    if (!s->authenticated || !smtp_dkim_user_may_sign_any(s) ||
        !smtp_dkim_from_domain(buf_head(&tx->msg) + tx->body_start,
                               buf_used(&tx->msg) - tx->body_start, dom) ||
        (d = config_domain_find(s->cfg, dom)) == NULL || d->n_dkim == 0)
        return SMTP_DKIM_UNSIGNED;
    if (!smtp_dkim_user_may_sign(s, d)) {
        smtp_dkim_log(s, LOG_INFO, "dkim.skip", d, "the From: domain is not the user's");
        return SMTP_DKIM_UNSIGNED;
    }
    if (smtp_dkim_fields(d, buf_head(&tx->msg), buf_used(&tx->msg), &fields, &n, err,
                         sizeof(err)) != 0) {
        smtp_dkim_log(s, LOG_WARNING, "dkim.fail", d, err);
        return SMTP_DKIM_FAILED;
    }
    used = buf_used(&tx->msg);
    if (smtp_budget_reserve(s, n, used + n) != INFLIGHT_OK) {
        free(fields);
        smtp_dkim_log(s, LOG_WARNING, "dkim.fail", d, "no memory for the signature");
        return SMTP_DKIM_FAILED;
    }
    head = buf_head(&tx->msg);
    memmove(head + n, head, used);
    memcpy(head, fields, n);
    tx->msg.len += n;
    tx->body_start += n; /* the client's message moved down: on_relayed reads it there */
    if (tx->added_end != 0)
        tx->added_end += n;
    free(fields);
    smtp_dkim_log(s, LOG_DEBUG, "dkim.sign", d, NULL);
    return SMTP_DKIM_SIGNED;
}
