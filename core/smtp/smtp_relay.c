/* core/smtp/smtp_relay.c: a finished message goes to the upstream (relay/upstream_pool.h),
 * and the client hears what became of it: the relay.done log line, on_relayed, then the
 * upstream's answer or "250 2.0.0 Ok: queued as". The client's 250 waits for the
 * upstream's (DESIGN.md: a message held only in memory is never acknowledged). A message
 * to DKIM-sign with an RSA key waits in RELAY for its signature from the offload pool
 * (smtp_dkim.c) before it goes. Reading the message is smtp_data.c's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/conn.h"
#include "policy/hook.h"
#include "util/log.h"
#include "smtp/smtp_reply.h"
#include "smtp/smtp_session_internal.h"
#include "relay/relay_job.h"

static void
smtp_relay_log(struct smtp_session *s, const struct relay_result *res)
{
    struct logline l;

    log_begin(&l, res->status == RELAY_OK ? LOG_INFO : LOG_NOTICE, "relay.done", s->id);
    log_str(&l, "from", s->tx->mail_from);
    log_int(&l, "rcpts", (long long)s->tx->n_rcpts);
    log_int(&l, "size", (long long)(buf_used(&s->tx->msg) - s->tx->body_start));
    log_str(&l, "upstream", res->upstream);
    log_int(&l, "code", res->code);
    log_str(&l, "enhanced", res->enhanced);
    log_str(&l, "text", res->text);
    log_str(&l, "queue_id", res->queue_id);
    log_bool(&l, "reused", res->reused);
    if (res->dsn_dropped)
        log_str(&l, "dsn", "dropped");
    log_end(&l);
}

/* Tell the client what became of its message (s->relayed), end the transaction, and
 * go on with what it pipelined. */
static void
smtp_relay_reply(struct smtp_session *s)
{
    struct smtp_relayed *r = s->relayed;

    s->relayed = NULL;
    if (r->code / 100 == 2)
        s->messages++;
    smtp_reply(s->conn, r->code, r->enhanced, "%s", r->text);
    free(r);
    smtp_session_reset_tx(s);
    smtp_session_enter(s, SMTP_STATE_CMD);
    smtp_session_resume(s);
}

static void
smtp_relayed_done(struct smtp_session *s, const struct verdict *v)
{
    (void)v;
    smtp_relay_reply(s);
}

static void
smtp_relayed_fill(struct smtp_session *s, const struct relay_result *res,
                  struct smtp_relayed *r)
{
    if (res->status == RELAY_OK) { /* s->messages counts it once the client is told */
        r->code = 250;
        snprintf(r->enhanced, sizeof(r->enhanced), "2.0.0");
        /* RFC 3461 section 5.2.2 asks for a "relayed" DSN here; sluice has no queue to
         * send one from, so the client hears it now (docs/smtp.md). */
        snprintf(r->text, sizeof(r->text), "Ok: queued as %08llx.%zu%s%s%s",
                 (unsigned long long)s->id, s->messages + 1, res->queue_id[0] ? " upstream " : "",
                 res->queue_id,
                 res->dsn_dropped ? "; DSN not relayed: the upstream does not offer it" : "");
    } else {
        r->code = res->code;
        snprintf(r->enhanced, sizeof(r->enhanced), "%s", res->enhanced);
        snprintf(r->text, sizeof(r->text), "%s", res->text);
    }
    snprintf(r->queue_id, sizeof(r->queue_id), "%s", res->queue_id);
    snprintf(r->upstream, sizeof(r->upstream), "%s", res->upstream);
}

/* A relay attempt ended (sluice_messages_total, sluice_domain_messages_total): the
 * domain's series when the session authenticated in a domain its generation declares,
 * else "other" (slot 0). The slot is the generation's, so a reload in between cannot
 * move it. */
static void
smtp_relay_count(struct smtp_session *s, bool ok)
{
    const struct config_domain *d = NULL;
    size_t                      slot = 0;

    smtp_server_count(ok ? s->server->messages_relayed : s->server->messages_failed);
    if (s->server->domain_messages == NULL)
        return;
    if (s->authenticated && s->pin.domain_slots != NULL)
        d = config_domain_find(s->cfg, s->domain);
    if (d != NULL)
        slot = s->pin.domain_slots[d - s->cfg->domains];
    smtp_server_count(&s->server->domain_messages[slot][ok ? 0 : 1]);
}

/* The relay is over: on_relayed hears the answer before the client does. */
static void
smtp_relay_done(void *ctx, const struct relay_result *res)
{
    struct smtp_session *s = ctx;

    s->relay = NULL;
    smtp_relay_log(s, res);
    smtp_relay_count(s, res->status == RELAY_OK);
    s->relayed = calloc(1, sizeof(*s->relayed));
    if (s->relayed == NULL) {
        smtp_reply_send(s->conn, SMTP_R_OUT_OF_MEMORY);
        smtp_session_reset_tx(s);
        smtp_session_enter(s, SMTP_STATE_CMD);
        smtp_session_resume(s);
        return;
    }
    smtp_relayed_fill(s, res, s->relayed);
    if (smtp_hook_relayed(s, s->relayed, smtp_relayed_done) == HOOK_PENDING)
        return; /* still RELAY; reading goes on as during the relay */
    smtp_relay_reply(s);
}

static const char *
smtp_domain_of(const char *addr)
{
    const char *at = strrchr(addr, '@');

    return at ? at + 1 : "";
}

/* The message, signed or not, goes to the upstream. From CMD (signed on the loop) or
 * RELAY (signed on the pool). */
static enum smtp_rc
smtp_relay_send(struct smtp_session *s)
{
    struct smtp_tx *tx = s->tx;
    const char     *dom = smtp_domain_of(tx->mail_from);
    int             set = config_route_for_domain(s->cfg, dom, strlen(dom));

    tx->env.mail_from = tx->mail_from;
    tx->env.rcpts = (const char **)tx->rcpts;
    tx->env.n_rcpts = tx->n_rcpts;
    tx->env.smtputf8 = tx->smtputf8;
    tx->env.body_8bit = tx->body_8bit;
    tx->env.dsn_ret = tx->dsn_ret;
    tx->env.dsn_envid = tx->dsn_envid;
    tx->env.dsn_rcpts = tx->dsn_rcpts;
    /* for XCLIENT/XFORWARD (docs/upstreams.md): borrowed from the session, which outlives
     * the job */
    tx->env.client.addr = s->peer;
    tx->env.client.port = s->peer_port;
    tx->env.client.helo = s->helo;
    tx->env.client.login = s->authenticated ? s->user : NULL;
    tx->env.client.esmtp = s->esmtp;
    snprintf(tx->env.client.ident, sizeof(tx->env.client.ident), "%08llx.%zu",
             (unsigned long long)s->id, s->messages + 1);
    s->relay = relay_job_start(s->pin.pool, set, s->id, &tx->env, buf_head(&tx->msg),
                               buf_used(&tx->msg), smtp_relay_done, s);
    if (s->relay == NULL) {
        smtp_session_enter(s, SMTP_STATE_CMD);
        smtp_session_reset_tx(s);
        return smtp_session_error(s, SMTP_R_OUT_OF_MEMORY);
    }
    /* Reading goes on, so that a client that leaves is seen and its job cancelled
     * (docs/relay.md); what it pipelines waits in c->in, as RELAY consumes nothing. */
    smtp_session_enter(s, SMTP_STATE_RELAY);
    conn_set_timeout(s->conn, 0);
    return SMTP_PAUSE;
}

/* Signing did not give a signed message: 451, not unsigned mail that a DMARC p=reject
 * domain's recipients would refuse (docs/dkim.md). Logged already (dkim.fail, dkim.busy). */
static enum smtp_rc
smtp_relay_unsigned(struct smtp_session *s, enum smtp_dkim_rc rc)
{
    smtp_session_enter(s, SMTP_STATE_CMD);
    smtp_session_reset_tx(s);
    return smtp_session_error_text(s, 451, "4.3.0",
                                   rc == SMTP_DKIM_BUSY
                                       ? "Too busy to sign the message, try again later"
                                       : "DKIM signing failed, try again later");
}

/* The signature came back from the offload pool (the session waited in RELAY). */
static void
smtp_relay_signed(struct smtp_session *s, enum smtp_dkim_rc rc)
{
    smtp_session_decided(s, rc == SMTP_DKIM_SIGNED ? smtp_relay_send(s)
                                                   : smtp_relay_unsigned(s, rc));
}

enum smtp_rc
smtp_relay_start(struct smtp_session *s)
{
    enum smtp_dkim_rc rc = smtp_dkim_start(s, smtp_relay_signed); /* after on_data: its
                                                                    * edits are signed */

    switch (rc) {
    case SMTP_DKIM_PENDING:
        /* The client waits as for the upstream: RELAY, reading on to see it leave */
        smtp_session_enter(s, SMTP_STATE_RELAY);
        conn_set_timeout(s->conn, 0);
        return SMTP_PAUSE;
    case SMTP_DKIM_FAILED:
    case SMTP_DKIM_BUSY:
        return smtp_relay_unsigned(s, rc);
    case SMTP_DKIM_UNSIGNED:
    case SMTP_DKIM_SIGNED:
        break;
    }
    return smtp_relay_send(s);
}
