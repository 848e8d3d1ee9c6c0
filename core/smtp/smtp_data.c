/* core/smtp/smtp_data.c: DATA and BDAT (RFC 5321 4.1.1.4, RFC 3030): the Received: header,
 * message octets through the data decoder into the transaction's buffer, the end-of-
 * message checks and on_data; the relay that follows is smtp_relay.c's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ev.h>

#include "net/conn.h"
#include "policy/hook.h"
#include "util/log.h"
#include "smtp/smtp_reply.h"
#include "smtp/smtp_session_internal.h"
#include "net/tls.h"

/* RFC 3848 / RFC 6531 section 3.7.4: the "with" keyword records TLS and AUTH. */
static const char *
smtp_with_keyword(const struct smtp_session *s)
{
    static const char *const kw[2][4] = {
        { "ESMTP", "ESMTPS", "ESMTPA", "ESMTPSA" },
        { "UTF8SMTP", "UTF8SMTPS", "UTF8SMTPA", "UTF8SMTPSA" },
    };

    return kw[s->tx->smtputf8][(s->tls ? 1 : 0) + (s->authenticated ? 2 : 0)];
}

/* The date of a Received: header now (RFC 5322 3.3, UTC) into out (at least 32 octets):
 * formatted once per second per thread, copied otherwise. */
static void
smtp_received_date(char out[32])
{
    static _Thread_local time_t cached_at = -1;
    static _Thread_local char   cached[32];
    time_t                      now = time(NULL);
    struct tm                   tm;

    if (now != cached_at) {
        gmtime_r(&now, &tm);
        strftime(cached, sizeof(cached), "%a, %d %b %Y %H:%M:%S +0000", &tm);
        cached_at = now;
    }
    memcpy(out, cached, sizeof(cached));
}

/* s into the header under construction: pieces appended, no format string parsed. */
static int
smtp_received_put(struct buf *b, const char *s, size_t cap)
{
    return buf_append(b, s, strlen(s), cap);
}

/* id as 8 lowercase hex digits at least (log.c prints "sid" so), '.', then k: written
 * from the end of out. */
static int
smtp_received_id(struct buf *b, unsigned long long id, size_t k, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    char              out[40]; /* 16 hex digits, '.', 20 decimal ones */
    size_t            i = sizeof(out);

    do {
        out[--i] = (char)('0' + k % 10);
        k /= 10;
    } while (k != 0);
    out[--i] = '.';
    for (int digits = 0; id != 0 || digits < 8; digits++) {
        out[--i] = hex[id & 15];
        id >>= 4;
    }
    return buf_append(b, out + i, sizeof(out) - i, cap);
}

/* RFC 5321 4.4: trace information, prepended. The user name is not disclosed
 * (Postfix's smtpd_sasl_authenticated_header=no); the session id ties it to the log,
 * so it is printed as log.c prints "sid" (%08 hex), here and in the 250. Built from
 * pieces (no printf: it runs for every message). */
static int
smtp_received_header(struct smtp_session *s)
{
    struct smtp_tx *tx = s->tx;
    struct buf     *b = &tx->msg;
    char            date[32];
    size_t          cap = s->cfg->max_message_size + SMTP_HEADER_ROOM;

    if (cap > tx->charged) /* MAIL charged a first chunk, more than this header needs */
        cap = tx->charged;
    smtp_received_date(date);
    if (smtp_received_put(b, "Received: from ", cap) ||
        smtp_received_put(b, s->helo != NULL ? s->helo : "", cap) ||
        smtp_received_put(b, " ([", cap) || smtp_received_put(b, s->peer, cap) ||
        smtp_received_put(b, "])\r\n\tby ", cap) ||
        smtp_received_put(b, s->cfg->hostname, cap) ||
        smtp_received_put(b, " (sluice) with ", cap) ||
        smtp_received_put(b, smtp_with_keyword(s), cap) || smtp_received_put(b, " id ", cap) ||
        smtp_received_id(b, (unsigned long long)s->id, s->messages + 1, cap))
        return -1;
    if (s->tls && (smtp_received_put(b, "\r\n\t(using ", cap) ||
                   smtp_received_put(b, tls_version_name(s->conn->ssl), cap) ||
                   smtp_received_put(b, " with cipher ", cap) ||
                   smtp_received_put(b, tls_cipher_name(s->conn->ssl), cap) ||
                   smtp_received_put(b, ")", cap)))
        return -1;
    if (tx->n_rcpts == 1 && (smtp_received_put(b, "\r\n\tfor <", cap) ||
                             smtp_received_put(b, tx->rcpts[0], cap) ||
                             smtp_received_put(b, ">", cap)))
        return -1;
    if (smtp_received_put(b, ";\r\n\t", cap) || smtp_received_put(b, date, cap) ||
        smtp_received_put(b, "\r\n", cap))
        return -1;
    tx->body_start = buf_used(&tx->msg);
    return 0;
}

static bool
smtp_message_start(struct smtp_session *s, enum data_mode mode)
{
    data_decoder_init(&s->tx->dec, mode, s->cfg->max_message_size, s->cfg->max_line_length);
    return smtp_received_header(s) == 0;
}

/* Message content has a deadline rather than an idle timer (docs/security.md): it starts
 * timeouts.data after the 354 (or the first BDAT), and every n octets push it back by
 * n / limits.min_data_rate seconds, but never to more than timeouts.data ahead of now. A
 * client above the rate never meets it; one below it does, within timeouts.data /
 * (1 - its rate / min_data_rate); one that stops, within timeouts.data. Postfix's
 * smtpd_min_data_rate (with per-request deadlines) credits time the same way. */
void
smtp_data_clock_start(struct smtp_session *s)
{
    s->data_since = ev_now(s->server->loop);
    s->data_deadline = s->data_since + s->cfg->timeout_data;
    s->data_octets = 0;
}

void
smtp_data_credit(struct smtp_session *s, size_t n)
{
    double now = ev_now(s->server->loop);
    double cap = now + s->cfg->timeout_data;
    double d = s->data_deadline + (double)n / (double)s->cfg->min_data_rate;

    s->data_octets += n;
    if (s->data_deadline <= now) /* already late: octets do not revive it */
        return;
    s->data_deadline = d < cap ? d : cap;
}

enum smtp_rc
smtp_data_begin(struct smtp_session *s)
{
    /* smtp_verbs.c checked a transaction, no BDAT in it, a recipient (RFC 5321 3.3) */
    if (!smtp_message_start(s, DATA_MODE_DOT)) {
        smtp_session_reset_tx(s);
        return smtp_session_error(s, SMTP_R_OUT_OF_MEMORY);
    }
    smtp_reply_send(s->conn, SMTP_R_DATA_GO_AHEAD);
    smtp_session_enter(s, SMTP_STATE_DATA);
    smtp_data_clock_start(s);
    return SMTP_CONTINUE;
}

static enum smtp_rc smtp_bdat_chunk_done(struct smtp_session *s);

static enum smtp_rc
smtp_bdat_discard(struct smtp_session *s, enum smtp_reply_id reply)
{
    /* RFC 3030 section 3: the chunk's octets follow regardless; read and drop them. */
    s->bdat_discard = true;
    s->bdat_reject = reply;
    smtp_session_enter(s, SMTP_STATE_BDAT);
    return s->bdat_left == 0 ? smtp_bdat_chunk_done(s) : SMTP_CONTINUE;
}

enum smtp_rc
smtp_bdat_begin(struct smtp_session *s, const struct smtp_cmd *cmd)
{
    enum inflight_rc mem;

    s->bdat_left = cmd->chunk_size;
    s->bdat_last = cmd->last;
    s->bdat_discard = false;
    if (s->tx == NULL || !s->tx->bdat_used) /* later chunks share the first one's clock */
        smtp_data_clock_start(s);
    if (s->tx == NULL)
        return smtp_bdat_discard(s, SMTP_R_NEED_MAIL);
    if (s->tx->n_rcpts == 0)
        return smtp_bdat_discard(s, SMTP_R_NO_RECIPIENTS);
    if ((mem = smtp_budget_expect(s, cmd->chunk_size)) != INFLIGHT_OK) {
        smtp_session_reset_tx(s); /* as a chunk over the size limit: RFC 3030 4.2 */
        return smtp_bdat_discard(s, smtp_budget_refusal(s, mem));
    }
    if (!s->tx->bdat_used) {
        if (!smtp_message_start(s, DATA_MODE_CHUNK))
            return smtp_bdat_discard(s, SMTP_R_OUT_OF_MEMORY);
        s->tx->bdat_used = true;
    }
    smtp_session_enter(s, SMTP_STATE_BDAT);
    return s->bdat_left == 0 ? smtp_bdat_chunk_done(s) : SMTP_CONTINUE;
}

/* Decode into the message buffer, which grows only as far as the memory budget lets it
 * (smtp_budget.c). Past the size limit, or once the budget said no, the message is
 * refused at its end: its buffer goes at once and a scratch buffer takes the decoder's
 * output, so that the session still finds the real end. Input is fed no faster than the
 * buffer has room for: what follows the message in c->in (pipelined commands, the next
 * message) may be longer than the room left, and must never push message octets to
 * scratch. */
static enum data_rc
smtp_data_feed(struct smtp_session *s, const char *in, size_t len, size_t *used)
{
    struct smtp_tx *tx = s->tx;
    size_t          cap = s->cfg->max_message_size + SMTP_HEADER_ROOM + 4;
    size_t          room = cap - buf_used(&tx->msg); /* > 0: header + max_size < cap */
    size_t          n = len > 65536 ? 65536 : len, out_len = 0;
    char            scratch[4096];
    char           *out = scratch;
    bool            keep = !(tx->dec.errors & DATA_ERR_TOO_BIG) && tx->refused == INFLIGHT_OK;
    enum data_rc    rc;

    if (n > room && keep)
        n = room;
    if (keep && (tx->refused = smtp_budget_reserve(s, n, cap)) == INFLIGHT_OK)
        out = buf_tail(&tx->msg);
    else if (n > sizeof(scratch))
        n = sizeof(scratch);
    rc = data_decoder_feed(&tx->dec, in, n, out, &out_len, used);
    if (out != scratch)
        tx->msg.len += out_len;
    if (tx->charged > 0 && (tx->refused != INFLIGHT_OK || (tx->dec.errors & DATA_ERR_TOO_BIG)))
        smtp_budget_drop(s, tx); /* refused at its end whatever comes: free it now */
    return rc;
}

static enum smtp_rc smtp_message_end(struct smtp_session *s);

static enum smtp_rc
smtp_data_dot_input(struct smtp_session *s)
{
    struct conn *c = s->conn;
    size_t       used;
    enum data_rc rc = smtp_data_feed(s, buf_head(&c->in), buf_used(&c->in), &used);

    buf_consume(&c->in, used);
    smtp_data_credit(s, used);
    if (rc == DATA_DONE)
        return smtp_message_end(s);
    return SMTP_CONTINUE;
}

static enum smtp_rc
smtp_bdat_chunk_done(struct smtp_session *s)
{
    char msg[64];

    smtp_session_enter(s, SMTP_STATE_CMD);
    if (s->bdat_discard) {
        s->bdat_discard = false;
        return smtp_session_error(s, s->bdat_reject);
    }
    if (s->bdat_last) {
        data_decoder_finish(&s->tx->dec);
        return smtp_message_end(s);
    }
    if (s->tx->dec.errors & DATA_ERR_TOO_BIG) { /* fail early: RFC 3030 section 4.2 */
        smtp_session_reset_tx(s);
        return smtp_session_error(s, SMTP_R_TOO_BIG);
    }
    if (s->tx->refused != INFLIGHT_OK) { /* the same for memory: the rest would not fit */
        enum inflight_rc mem = s->tx->refused;

        smtp_session_reset_tx(s);
        return smtp_budget_refuse(s, mem);
    }
    snprintf(msg, sizeof(msg), "%llu octets received", (unsigned long long)s->tx->dec.size);
    smtp_reply(s->conn, 250, "2.0.0", "%s", msg);
    return SMTP_CONTINUE;
}

static enum smtp_rc
smtp_bdat_input(struct smtp_session *s)
{
    struct conn *c = s->conn;
    size_t       avail = buf_used(&c->in), used = avail;

    if (avail > s->bdat_left)
        avail = s->bdat_left;
    if (s->bdat_discard)
        used = avail;
    else
        smtp_data_feed(s, buf_head(&c->in), avail, &used);
    buf_consume(&c->in, used);
    smtp_data_credit(s, used);
    s->bdat_left -= used;
    if (s->bdat_left == 0)
        return smtp_bdat_chunk_done(s);
    return SMTP_CONTINUE;
}

enum smtp_rc
smtp_data_input(struct smtp_session *s)
{
    return s->state == SMTP_STATE_DATA ? smtp_data_dot_input(s) : smtp_bdat_input(s);
}

/* A decoder error found at the end, or no memory to keep the message (decoder errors
 * first: they are permanent): the whole message is refused, the session goes on. */
static enum smtp_rc
smtp_message_refuse(struct smtp_session *s, unsigned errors)
{
    enum inflight_rc mem = s->tx->refused;
    char             text[96];

    smtp_session_reset_tx(s);
    if (errors == 0)
        return smtp_budget_refuse(s, mem);
    if (errors & DATA_ERR_TOO_BIG)
        return smtp_session_error(s, SMTP_R_TOO_BIG);
    if (errors & (DATA_ERR_BARE_CR | DATA_ERR_BARE_LF))
        return smtp_session_error(s, SMTP_R_BARE_CR_LF_MESSAGE);
    snprintf(text, sizeof(text), "Message has a line longer than %zu octets",
             s->cfg->max_line_length);
    return smtp_session_error_text(s, 550, "5.6.0", text);
}

/* on_data's verdict: relay the message, or the policy's reply. */
static enum smtp_rc
smtp_data_decided(struct smtp_session *s, const struct verdict *v)
{
    smtp_session_enter(s, SMTP_STATE_CMD);
    if (v->kind == VERDICT_REJECT || v->kind == VERDICT_TEMPFAIL) {
        smtp_session_reset_tx(s);
        return smtp_session_policy_reply(s, v);
    }
    if (conn_flush(s->conn, false) == CONN_GONE) /* replies before DATA's end go now */
        return SMTP_GONE;
    return smtp_relay_start(s);
}

static void
smtp_data_hook_done(struct smtp_session *s, const struct verdict *v)
{
    smtp_session_decided(s, smtp_data_decided(s, v));
}

static enum smtp_rc
smtp_message_end(struct smtp_session *s)
{
    unsigned       errors = s->tx->dec.errors;
    struct verdict v;

    smtp_session_enter(s, SMTP_STATE_CMD);
    if (errors != 0 || s->tx->refused != INFLIGHT_OK)
        return smtp_message_refuse(s, errors);
    if (smtp_hook_data(s, smtp_data_hook_done, &v) == HOOK_PENDING)
        return smtp_session_wait(s);
    return smtp_data_decided(s, &v);
}
