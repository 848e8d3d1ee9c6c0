/* core/smtp/smtp_dkim.c: DKIM signing of a message about to be relayed (docs/dkim.md).
 * The signing domain is the domain of the header From: (what DMARC aligns with, RFC 7489
 * section 3.1), signed when the session authenticated and that domain has `dkim` keys;
 * the policies (check_header_from, policies/sender_domain.lua) have decided by then that
 * the user may send as it. It runs after on_data, so a policy's edits are signed. The
 * fields are made by proto/dkim_sign.c and prepended above our Received:.
 *
 * The hashes (SHA-256 over the message) are made on the loop; the private-key operation
 * of a message with an RSA key (~300 us for 2048 bits) runs on the offload pool, so the
 * worker serves its other sessions meanwhile; a message with only Ed25519 keys (~56 us)
 * is signed on the loop, where that costs less than the round trip through the pool
 * (docs/benchmarks.md "DKIM signing"). */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "config/config.h"
#include "proto/dkim_sign.h"
#include "proto/message.h"
#include "util/log.h"
#include "util/offload.h"
#include "util/pin.h"
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

/* The signatures of one message on the offload pool. Touched by one thread at a time
 * (offload.h): the loop until submitted, a pool thread in work(), the loop in done(). */
struct smtp_dkim_job {
    struct offload_job          job;    /* first: the offload queue links through it */
    struct smtp_session        *s;      /* borrows; NULL once the session is gone */
    smtp_dkim_done_fn          *done;   /* what hears the outcome, on the loop */
    struct pin                  gen;    /* holds a ref: the keys are the generation's */
    const struct config_domain *d;      /* borrows: alive while gen is held */
    bool                        failed; /* a signature failed (work) */
    size_t                      n;
    struct dkim_draft          *drafts[]; /* owns each; one per key of d, in order */
};

static void
smtp_dkim_job_free(struct smtp_dkim_job *j)
{
    for (size_t i = 0; i < j->n; i++)
        dkim_draft_free(j->drafts[i]);
    if (j->gen.owner != NULL)
        pin_unref(&j->gen);
    free(j);
}

/* A draft per key of d: the hashes, on the loop. NULL with err. */
static struct smtp_dkim_job *
smtp_dkim_drafts(const struct config_domain *d, const char *msg, size_t len, char *err,
                 size_t errlen)
{
    struct smtp_dkim_job *j = calloc(1, sizeof(*j) + d->n_dkim * sizeof(j->drafts[0]));
    long long             now = (long long)time(NULL);

    if (j == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    j->d = d;
    for (j->n = 0; j->n < d->n_dkim; j->n++) {
        struct dkim_signer sig = {
            .key = d->dkim[j->n].key,
            .domain = d->name,
            .selector = d->dkim[j->n].selector,
            .headers = (const char *const *)d->dkim[j->n].headers,
        };

        j->drafts[j->n] = dkim_draft_new(&sig, msg, len, now, err, errlen);
        if (j->drafts[j->n] == NULL) {
            smtp_dkim_job_free(j);
            return NULL;
        }
    }
    return j;
}

/* The private-key operations: on a pool thread, or on the loop for Ed25519 only. */
static void
smtp_dkim_work(struct offload_job *job)
{
    struct smtp_dkim_job *j = (struct smtp_dkim_job *)job;

    for (size_t i = 0; i < j->n && !j->failed; i++)
        if (dkim_draft_sign(j->drafts[i]) != 0)
            j->failed = true;
}

static bool
smtp_dkim_has_rsa(const struct smtp_dkim_job *j)
{
    for (size_t i = 0; i < j->n; i++)
        if (dkim_draft_alg(j->drafts[i]) == DKIM_ALG_RSA_SHA256)
            return true;
    return false;
}

/* The signed fields, concatenated, put on top of tx->msg (body_start moves down with the
 * client's message), charged to the budget for messages in transit first. */
static enum smtp_dkim_rc
smtp_dkim_prepend(struct smtp_session *s, struct smtp_dkim_job *j)
{
    struct smtp_tx *tx = s->tx;
    char            err[128], *one, *head, *fields = NULL, *grown;
    size_t          i, n = 0, len, used;

    if (j->failed) {
        smtp_dkim_log(s, LOG_WARNING, "dkim.fail", j->d, "signing failed (out of memory or "
                                                         "OpenSSL error)");
        return SMTP_DKIM_FAILED;
    }
    for (i = 0; i < j->n; i++) {
        if (dkim_draft_finish(j->drafts[i], &one, &len, err, sizeof(err)) != 0)
            goto fail;
        grown = realloc(fields, n + len);
        if (grown == NULL) {
            free(one);
            snprintf(err, sizeof(err), "out of memory");
            goto fail;
        }
        fields = grown;
        memcpy(fields + n, one, len);
        n += len;
        free(one);
    }
    used = buf_used(&tx->msg);
    if (smtp_budget_reserve(s, n, used + n) != INFLIGHT_OK) {
        snprintf(err, sizeof(err), "no memory for the signature");
        goto fail;
    }
    head = buf_head(&tx->msg);
    memmove(head + n, head, used);
    memcpy(head, fields, n);
    tx->msg.len += n;
    tx->body_start += n; /* the client's message moved down: on_relayed reads it there */
    if (tx->added_end != 0)
        tx->added_end += n;
    free(fields);
    smtp_dkim_log(s, LOG_DEBUG, "dkim.sign", j->d, NULL);
    return SMTP_DKIM_SIGNED;
fail:
    free(fields);
    smtp_dkim_log(s, LOG_WARNING, "dkim.fail", j->d, err);
    return SMTP_DKIM_FAILED;
}

/* Back on the loop. A session that went meanwhile let go of the job (s NULL): only the
 * job is freed, nothing of the session is touched. */
static void
smtp_dkim_done(struct offload_job *job)
{
    struct smtp_dkim_job *j = (struct smtp_dkim_job *)job;
    struct smtp_session  *s = j->s;
    smtp_dkim_done_fn    *done = j->done;
    enum smtp_dkim_rc     rc;

    if (s == NULL) {
        smtp_dkim_job_free(j);
        return;
    }
    s->dkim = NULL;
    rc = smtp_dkim_prepend(s, j);
    smtp_dkim_job_free(j);
    done(s, rc);
}

/* The key a signing job counts under in the pool's bounds: the session's own, so that it
 * counts against limits.max_auth_jobs but never against the client's share (a session
 * has one signature in flight at most; see docs/dkim.md "Signing off the loop"). */
static void
smtp_dkim_client_key(const struct smtp_session *s, char out[OFFLOAD_CLIENT_MAX])
{
    snprintf(out, OFFLOAD_CLIENT_MAX, "dkim:%016llx", (unsigned long long)s->id);
}

enum smtp_dkim_rc
smtp_dkim_start(struct smtp_session *s, smtp_dkim_done_fn *done)
{
    struct smtp_tx             *tx = s->tx;
    const struct config_domain *d;
    struct smtp_dkim_job       *j;
    char                        dom[SMTP_DKIM_DOMAIN_MAX + 1], err[128];
    char                        key[OFFLOAD_CLIENT_MAX];
    enum smtp_dkim_rc           rc;
    enum offload_rc             orc;

    if (!s->authenticated || !smtp_dkim_user_may_sign_any(s) ||
        !smtp_dkim_from_domain(buf_head(&tx->msg) + tx->body_start,
                               buf_used(&tx->msg) - tx->body_start, dom) ||
        (d = config_domain_find(s->cfg, dom)) == NULL || d->n_dkim == 0)
        return SMTP_DKIM_UNSIGNED;
    if (!smtp_dkim_user_may_sign(s, d)) {
        smtp_dkim_log(s, LOG_INFO, "dkim.skip", d, "the From: domain is not the user's");
        return SMTP_DKIM_UNSIGNED;
    }
    j = smtp_dkim_drafts(d, buf_head(&tx->msg), buf_used(&tx->msg), err, sizeof(err));
    if (j == NULL) {
        smtp_dkim_log(s, LOG_WARNING, "dkim.fail", d, err);
        return SMTP_DKIM_FAILED;
    }
    if (!smtp_dkim_has_rsa(j) || s->server->offload == NULL) {
        smtp_dkim_work(&j->job); /* Ed25519: cheaper here than a trip through the pool */
        rc = smtp_dkim_prepend(s, j);
        smtp_dkim_job_free(j);
        return rc;
    }
    j->job.work = smtp_dkim_work;
    j->job.done = smtp_dkim_done;
    j->done = done;
    j->s = s;
    j->gen = s->pin.gen; /* the keys must outlive a reload while the pool signs */
    pin_ref(&j->gen);
    smtp_dkim_client_key(s, key);
    orc = offload_submit_for(s->server->offload, s->server->offload_ret, &j->job, key);
    if (orc != OFFLOAD_QUEUED) { /* not taken: still ours, done() will not come */
        smtp_dkim_job_free(j);
        smtp_dkim_log(s, LOG_NOTICE, "dkim.busy", d, "limits.max_auth_jobs reached");
        return SMTP_DKIM_BUSY;
    }
    s->dkim = j;
    return SMTP_DKIM_PENDING;
}

void
smtp_dkim_forget(struct smtp_session *s)
{
    if (s->dkim == NULL)
        return;
    s->dkim->s = NULL; /* its done() frees it and touches nothing else */
    offload_cancel(&s->dkim->job);
    s->dkim = NULL;
}
