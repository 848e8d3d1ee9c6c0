/* core/smtp/smtp_session.c: session lifecycle and the input loop. Reads lines (or DATA/BDAT
 * octets) from the conn, hands commands to smtp_verbs.c, and flushes the replies of a
 * pipelined batch together (RFC 2920 section 3.2). The per-verb rules live in
 * smtp_verbs.c, AUTH in smtp_auth.c, DATA/BDAT in smtp_data.c. */
#include "smtp/smtp_session.h"
#include "smtp/smtp_session_internal.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/conn.h"
#include "policy/hook.h"
#include "net/iplimit.h"
#include "util/log.h"
#include "smtp/smtp_reply.h"
#include "net/tls.h"
#include "relay/relay_job.h"

/* The state machine: every change of s->state goes through smtp_session_enter(), which
 * checks it against this table. docs/smtp.md's diagram is generated from the table and
 * unit.smtp_session compares them; a change here is a change of the diagram. */
#define T(a, b, why) {SMTP_STATE_##a, SMTP_STATE_##b, why}
const struct smtp_transition smtp_session_transitions[] = {
    T(NEW, PROXY, "proxy_protocol listener, trusted source"),
    T(NEW, TLS_ACCEPT, "implicit TLS listener"),
    T(NEW, POLICY, "on_connect takes time"),
    T(NEW, CMD, "greeting sent"),
    T(NEW, CLOSING, "on_connect refused"),
    T(PROXY, TLS_ACCEPT, "header read, implicit TLS listener"),
    T(PROXY, POLICY, "header read, on_connect takes time"),
    T(PROXY, CMD, "header read, greeting sent"),
    T(PROXY, CLOSING, "header read, on_connect refused"),
    T(TLS_ACCEPT, POLICY, "handshake done, on_connect takes time"),
    T(TLS_ACCEPT, CMD, "handshake done, greeting sent"),
    T(TLS_ACCEPT, CLOSING, "handshake done, on_connect refused"),
    T(POLICY, CMD, "verdict applied"),
    T(POLICY, CLOSING, "on_connect refused"),
    T(CMD, POLICY, "EHLO, MAIL, RCPT, AUTH or end of message: a hook takes time"),
    T(CMD, AUTH, "AUTH: 334 challenge"),
    T(CMD, AUTH_ERROR, "bearer token refused: 334 error challenge"),
    T(CMD, DATA, "DATA: 354"),
    T(CMD, BDAT, "BDAT: chunk follows"),
    T(CMD, STARTTLS, "STARTTLS: 220"),
    T(CMD, RELAY, "on_data accepted the message"),
    T(CMD, CLOSING, "QUIT, a 421, drain"),
    T(AUTH, POLICY, "credentials complete: on_auth takes time"),
    T(AUTH, CMD, "AUTH answered"),
    T(AUTH, CLOSING, "timeout, drain"),
    T(AUTH_ERROR, CMD, "client answered the error challenge: 535"),
    T(AUTH_ERROR, CLOSING, "timeout, drain"),
    T(DATA, CMD, "final dot"),
    T(DATA, CLOSING, "timeout"),
    T(BDAT, CMD, "chunk read"),
    T(BDAT, CLOSING, "timeout"),
    T(STARTTLS, CMD, "handshake done: the session starts over"),
    T(RELAY, CMD, "the client got the upstream's answer"),
    T(ANY, DISCONNECTED, "connection closed and freed, on_disconnect waits"),
};
#undef T
const size_t smtp_session_n_transitions =
    sizeof(smtp_session_transitions) / sizeof(smtp_session_transitions[0]);

const char *
smtp_session_state_name(enum smtp_state st)
{
    static const char *const names[SMTP_STATE_COUNT] = {
        [SMTP_STATE_NEW] = "NEW",           [SMTP_STATE_TLS_ACCEPT] = "TLS_ACCEPT",
        [SMTP_STATE_PROXY] = "PROXY",
        [SMTP_STATE_CMD] = "CMD",           [SMTP_STATE_AUTH] = "AUTH",
        [SMTP_STATE_AUTH_ERROR] = "AUTH_ERROR", [SMTP_STATE_DATA] = "DATA",
        [SMTP_STATE_BDAT] = "BDAT",         [SMTP_STATE_STARTTLS] = "STARTTLS",
        [SMTP_STATE_POLICY] = "POLICY",     [SMTP_STATE_RELAY] = "RELAY",
        [SMTP_STATE_CLOSING] = "CLOSING",   [SMTP_STATE_DISCONNECTED] = "DISCONNECTED",
    };

    if (st == SMTP_STATE_ANY)
        return "ANY";
    return (unsigned)st < SMTP_STATE_COUNT ? names[st] : "?";
}

bool
smtp_session_may_enter(enum smtp_state from, enum smtp_state to)
{
    if (from == to)
        return true;
    for (size_t i = 0; i < smtp_session_n_transitions; i++) {
        const struct smtp_transition *t = &smtp_session_transitions[i];

        if ((t->from == from || t->from == SMTP_STATE_ANY) && t->to == to)
            return true;
    }
    return false;
}

void
smtp_session_enter(struct smtp_session *s, enum smtp_state to)
{
    struct logline l;

    if (s->state == to)
        return;
    assert(smtp_session_may_enter(s->state, to));
    log_begin(&l, LOG_DEBUG, "session.state", s->id);
    log_str(&l, "from", smtp_session_state_name(s->state));
    log_str(&l, "to", smtp_session_state_name(to));
    log_end(&l);
    smtp_server_count_state(s->server, s->state, to);
    s->state = to;
}

static enum conn_rc smtp_session_event(void *owner, struct conn *c, enum conn_event ev);
static enum conn_rc smtp_session_flushed(struct smtp_session *s);
static void         smtp_session_disconnected(struct smtp_session *s, const struct verdict *v);

/* What the session waits for when its timer fires: names the log line's phase and
 * the reply. */
enum smtp_wait {
    SMTP_WAIT_NONE,     /* NEW, POLICY, RELAY, CLOSING: other timers rule */
    SMTP_WAIT_TLS,      /* the whole handshake, from its start */
    SMTP_WAIT_GREETING, /* the first command's first octet */
    SMTP_WAIT_COMMAND,  /* the next command's first octet */
    SMTP_WAIT_LINE,     /* the rest of a command line, from its first octet */
    SMTP_WAIT_AUTH,     /* a line answering our 334 */
    SMTP_WAIT_DATA,     /* message content, at limits.min_data_rate */
    SMTP_WAIT_PROXY,    /* the whole PROXY header, from the accept (proxy_timeout) */
};

static const char *const smtp_wait_phase[] = {
    "none", "tls", "greeting", "command", "command_line", "auth", "data", "proxy",
};

/* The deadline of the current wait (*at, an ev_now time) and what it is for. Every one
 * is fixed when its wait begins; see docs/security.md, "Connections and slow clients". */
static enum smtp_wait
smtp_session_deadline(const struct smtp_session *s, double *at, double *limit)
{
    const struct config *cfg = s->cfg;
    enum smtp_wait       w;

    switch (s->state) {
    case SMTP_STATE_PROXY:
        *limit = s->lcfg->proxy_timeout;
        *at = s->wait_since + *limit;
        return SMTP_WAIT_PROXY;
    case SMTP_STATE_TLS_ACCEPT:
    case SMTP_STATE_STARTTLS:
        *limit = cfg->timeout_tls;
        *at = s->wait_since + *limit;
        return SMTP_WAIT_TLS;
    case SMTP_STATE_DATA:
    case SMTP_STATE_BDAT:
        *limit = cfg->timeout_data;
        *at = s->data_deadline;
        return SMTP_WAIT_DATA;
    case SMTP_STATE_CMD:
    case SMTP_STATE_AUTH:
    case SMTP_STATE_AUTH_ERROR:
        break;
    default:
        return SMTP_WAIT_NONE;
    }
    if (s->line_since > 0) {
        *limit = cfg->timeout_command;
        *at = s->line_since + *limit;
        w = SMTP_WAIT_LINE;
    } else {
        *limit = s->commands == 0 ? cfg->timeout_greeting : cfg->timeout_command;
        *at = s->wait_since + *limit;
        w = s->commands == 0 ? SMTP_WAIT_GREETING : SMTP_WAIT_COMMAND;
    }
    if (s->state != SMTP_STATE_CMD)
        return SMTP_WAIT_AUTH;
    /* Between the chunks of a BDAT transaction the content's deadline still runs: a
     * client must not get a fresh one by sending its message one-octet chunk at a time. */
    if (s->tx != NULL && s->tx->bdat_used && s->data_deadline < *at) {
        *limit = cfg->timeout_data;
        *at = s->data_deadline;
        w = SMTP_WAIT_DATA;
    }
    return w;
}

void
smtp_session_set_timeout(struct smtp_session *s)
{
    double at, limit, left;

    if (smtp_session_deadline(s, &at, &limit) == SMTP_WAIT_NONE) {
        conn_set_timeout(s->conn, 0);
        return;
    }
    left = at - ev_now(s->server->loop);
    conn_set_timeout(s->conn, left > 0.001 ? left : 0.001); /* passed: fire at once */
}

/* A new wait begins now: the client was answered, or a handshake or a state began. */
static void
smtp_session_clock_start(struct smtp_session *s)
{
    s->wait_since = ev_now(s->server->loop);
    s->line_since = 0;
}

static void
smtp_session_greet(struct smtp_session *s)
{
    smtp_reply(s->conn, 220, NULL, "%s ESMTP sluice ready", s->cfg->hostname);
    smtp_session_enter(s, SMTP_STATE_CMD);
    smtp_session_clock_start(s);
    smtp_session_set_timeout(s);
    conn_read_start(s->conn);
}

/* on_connect's verdict: the greeting, or the policy's reply instead and the end. */
static enum smtp_rc
smtp_connect_decided(struct smtp_session *s, const struct verdict *v)
{
    if (v->kind == VERDICT_REJECT || v->kind == VERDICT_TEMPFAIL)
        return smtp_session_close_text(s, v->code, v->enhanced, v->text);
    smtp_session_greet(s);
    return SMTP_CONTINUE;
}

static void
smtp_connect_hook_done(struct smtp_session *s, const struct verdict *v)
{
    if (smtp_connect_decided(s, v) == SMTP_GONE || s->state == SMTP_STATE_CLOSING)
        return;
    smtp_session_resume(s);
}

/* on_connect, then the greeting. A pending hook waits in POLICY without a timeout of
 * the session's own (the hook has its budget). */
static enum smtp_rc
smtp_session_open(struct smtp_session *s)
{
    struct verdict v;

    if (smtp_hook_connect(s, smtp_connect_hook_done, &v) == HOOK_PENDING) {
        smtp_session_enter(s, SMTP_STATE_POLICY);
        conn_set_timeout(s->conn, 0);
        return SMTP_PAUSE;
    }
    return smtp_connect_decided(s, &v);
}

static void
smtp_session_log_open(struct smtp_session *s)
{
    struct logline l;

    log_begin(&l, LOG_INFO, "session.open", s->id);
    log_str(&l, "listener", s->lcfg->name);
    log_str(&l, "ip", s->peer);
    log_int(&l, "port", s->peer_port);
    if (s->proxy_peer[0] != '\0')
        log_str(&l, "proxy", s->proxy_peer);
    log_end(&l);
}

static bool
smtp_session_admit(struct smtp_session *s)
{
    enum iplimit_rc rc = iplimit_acquire(s->server->iplimit, s->client);
    struct logline  l;

    if (rc == IPLIMIT_OK) {
        s->counted = true;
        return true;
    }
    log_begin(&l, LOG_NOTICE, "session.refuse", s->id);
    log_str(&l, "ip", s->peer);
    log_str(&l, "client", s->client);
    log_str(&l, "reason", rc == IPLIMIT_TOTAL ? "max_connections" : "max_connections_per_ip");
    log_end(&l);
    if (s->server->refused != NULL)
        smtp_server_count(&s->server->refused[rc == IPLIMIT_TOTAL ? 0 : 1]);
    return false;
}

struct smtp_session *
smtp_session_new(struct smtp_server *srv, const struct config_listener *lcfg, int fd)
{
    struct smtp_session *s = calloc(1, sizeof(*s));

    if (s == NULL || (s->conn = conn_new(srv->loop, fd, s, smtp_session_event)) == NULL) {
        free(s);
        close(fd);
        return NULL;
    }
    s->server = srv;
    s->domain = "";
    s->id = srv->session_add(srv->owner, s, &s->pin);
    s->cfg = s->pin.cfg;
    s->lcfg = lcfg;
    s->started = ev_now(srv->loop);
    conn_peer(s->conn, s->peer, sizeof(s->peer), &s->peer_port);
    if (!lcfg->proxy_protocol)
        return smtp_session_start(s) == SMTP_GONE ? NULL : s;
    if (!smtp_proxy_is_trusted(lcfg, s->peer)) {
        smtp_proxy_refuse(s, "proxy.refuse", "source not in proxy_trusted");
        return NULL;
    }
    smtp_session_enter(s, SMTP_STATE_PROXY);
    smtp_session_clock_start(s);
    smtp_session_set_timeout(s);
    if (smtp_proxy_input(s) == SMTP_GONE) /* asks for the header's first octets */
        return NULL;
    return s;
}

enum smtp_rc
smtp_session_start(struct smtp_session *s)
{
    const struct config_listener *lcfg = s->lcfg;

    s->conn->in_max = SMTP_PARSE_AUTH_MAX * 2 + 65536;
    iplimit_client_key(s->peer, (unsigned)s->cfg->client_ipv6_prefix, s->client);
    smtp_session_log_open(s);
    if (!smtp_session_admit(s)) {
        /* RFC 5321 3.8: 421 instead of the greeting. Not for implicit TLS: there is no
         * SMTP channel before the handshake, so the socket is simply closed. */
        if (lcfg->tls != CONFIG_TLS_IMPLICIT) {
            smtp_reply_send(s->conn, SMTP_R_TOO_MANY_CONNECTIONS);
            conn_flush(s->conn, false);
        }
        smtp_session_free(s, "connection limit");
        return SMTP_GONE;
    }
    if (lcfg->tls == CONFIG_TLS_IMPLICIT) {
        SSL *ssl = tls_server_ssl_new(s->pin.tls, s->conn->fd);

        if (ssl == NULL) {
            smtp_session_free(s, "TLS setup failed");
            return SMTP_GONE;
        }
        smtp_session_enter(s, SMTP_STATE_TLS_ACCEPT);
        smtp_session_clock_start(s);
        smtp_session_set_timeout(s);
        conn_start_tls(s->conn, ssl);
        return SMTP_PAUSE;
    }
    if (smtp_session_open(s) == SMTP_GONE)
        return SMTP_GONE;
    if (s->state == SMTP_STATE_CLOSING) /* refused by a policy: closing once the reply is out */
        return SMTP_PAUSE;
    return conn_flush(s->conn, false) == CONN_GONE ? SMTP_GONE : SMTP_CONTINUE;
}

void
smtp_tx_free(struct smtp_tx *tx)
{
    if (tx == NULL)
        return;
    assert(tx->charged == 0); /* smtp_session_reset_tx released it */
    free(tx->mail_from);
    smtp_dsn_tx_cleanup(tx);
    for (size_t i = 0; i < tx->n_rcpts; i++)
        free(tx->rcpts[i]);
    free(tx->rcpts);
    buf_cleanup(&tx->msg);
    free(tx);
}

void
smtp_session_reset_tx(struct smtp_session *s)
{
    if (s->tx != NULL)
        smtp_budget_drop(s, s->tx);
    smtp_tx_free(s->tx);
    s->tx = NULL;
}

/* The first half of the end, the client's: whatever was in progress is dropped, the
 * session.close line written, the iplimit slot given back and the connection closed and
 * freed; then on_disconnect runs. true: it waits, and s stays in DISCONNECTED until it
 * ends (smtp_session_disconnected). */
static bool
smtp_session_hang_up(struct smtp_session *s, const char *reason)
{
    struct logline l;
    bool           ask;

    smtp_dkim_forget(s);
    if (s->relay != NULL)
        relay_job_cancel(s->relay);
    s->relay = NULL;
    ask = smtp_hook_session_closing(s, reason); /* before the conn goes: TLS names, reason */
    free(s->pending_arg);
    s->pending_arg = NULL;
    smtp_dsn_rcpt_cleanup(&s->pending_dsn);
    free(s->relayed);
    s->relayed = NULL;
    smtp_auth_forget(s);
    log_begin(&l, LOG_INFO, "session.close", s->id);
    log_str(&l, "reason", reason);
    log_int(&l, "messages", (long long)s->messages);
    log_int(&l, "commands", (long long)s->commands);
    log_dbl(&l, "duration", ev_now(s->server->loop) - s->started);
    log_end(&l);
    smtp_session_reset_tx(s);
    sasl_reset(&s->sasl);
    if (s->counted)
        iplimit_release(s->server->iplimit, s->client);
    s->counted = false;
    conn_free(s->conn); /* its watchers and timer stop with it: nothing fires for s now */
    s->conn = NULL;
    if (!ask || smtp_hook_disconnect(s, smtp_session_disconnected) != HOOK_PENDING)
        return false;
    smtp_session_enter(s, SMTP_STATE_DISCONNECTED);
    return true;
}

/* The second half: on_disconnect is over (or cancelled, why says so in a policy.cancel
 * line); the worker unlinks s and unpins its generation. */
static void
smtp_session_release(struct smtp_session *s, const char *why)
{
    struct logline l;

    if (smtp_hook_session_gone(s)) {
        log_begin(&l, LOG_NOTICE, "policy.cancel", s->id);
        log_str(&l, "hook", "on_disconnect");
        log_str(&l, "reason", why);
        log_end(&l);
    }
    s->server->session_gone(s->server->owner, s);
    free(s->helo);
    free(s->user);
    free(s);
}

static void
smtp_session_disconnected(struct smtp_session *s, const struct verdict *v)
{
    (void)v;
    smtp_session_release(s, NULL);
}

void
smtp_session_free(struct smtp_session *s, const char *reason)
{
    if (s->state == SMTP_STATE_DISCONNECTED || !smtp_session_hang_up(s, reason))
        smtp_session_release(s, reason);
}

void
smtp_session_free_now(struct smtp_session *s, const char *reason)
{
    if (s->state != SMTP_STATE_DISCONNECTED)
        smtp_session_hang_up(s, reason);
    smtp_session_release(s, reason);
}

/* Reply, count the error, and hang up when the client keeps erring (RFC 5321 4.5.3.1:
 * a server may close after too many errors; 421 says why). */
enum smtp_rc
smtp_session_error_text(struct smtp_session *s, int code, const char *enh, const char *text)
{
    struct logline l;

    smtp_reply(s->conn, code, enh, "%s", text);
    log_begin(&l, LOG_INFO, "smtp.reject", s->id);
    log_int(&l, "code", code);
    log_str(&l, "enhanced", enh);
    log_str(&l, "text", text);
    log_end(&l);
    if (++s->errors >= s->cfg->max_errors)
        return smtp_session_close_with(s, SMTP_R_TOO_MANY_ERRORS);
    return SMTP_CONTINUE;
}

enum smtp_rc
smtp_session_error(struct smtp_session *s, enum smtp_reply_id reply)
{
    const struct smtp_reply_entry *r = smtp_replies_get(reply);

    return smtp_session_error_text(s, r->code, r->enhanced, r->text);
}

enum smtp_rc
smtp_session_close_text(struct smtp_session *s, int code, const char *enh, const char *text)
{
    smtp_reply(s->conn, code, enh, "%s", text);
    smtp_session_enter(s, SMTP_STATE_CLOSING);
    conn_read_stop(s->conn);
    conn_set_timeout(s->conn, 10); /* a client that never reads must not pin us */
    if (conn_flush(s->conn, true) == CONN_GONE)
        return SMTP_GONE;
    if (buf_used(&s->conn->out) == 0) {
        smtp_session_free(s, text);
        return SMTP_GONE;
    }
    return SMTP_PAUSE;
}

enum smtp_rc
smtp_session_close_with(struct smtp_session *s, enum smtp_reply_id reply)
{
    const struct smtp_reply_entry *r = smtp_replies_get(reply);

    return smtp_session_close_text(s, r->code, r->enhanced, r->text);
}

static enum smtp_rc
smtp_session_line(struct smtp_session *s, const char *line, size_t len)
{
    struct smtp_cmd cmd;
    enum parse_rc   rc;

    if (s->state == SMTP_STATE_AUTH || s->state == SMTP_STATE_AUTH_ERROR)
        return smtp_auth_line(s, line, len);
    if (++s->commands > s->cfg->max_commands)
        return smtp_session_close_with(s, SMTP_R_TOO_MANY_COMMANDS);
    rc = smtp_parse_command(line, len, &cmd);
    if (rc != PARSE_OK) {
        if (cmd.verb == SMTP_VERB_UNKNOWN)
            return smtp_session_error(s, SMTP_R_UNRECOGNIZED);
        return smtp_session_error(s, SMTP_R_SYNTAX);
    }
    return smtp_verbs_dispatch(s, &cmd);
}

static enum smtp_rc
smtp_session_skip_long_line(struct smtp_session *s)
{
    struct conn  *c = s->conn;
    size_t        used;
    enum parse_rc rc = smtp_parse_skip_line(buf_head(&c->in), buf_used(&c->in), &used);

    buf_consume(&c->in, used);
    if (rc != PARSE_OK)
        return SMTP_PAUSE;
    s->skip_line = false;
    s->lines_in++;
    return SMTP_CONTINUE;
}

/* One step of command input. SMTP_PAUSE means "no complete line yet". */
static enum smtp_rc
smtp_session_command_input(struct smtp_session *s)
{
    struct conn  *c = s->conn;
    const char   *line;
    size_t        line_len, used;
    size_t        cmd_max = s->state == SMTP_STATE_CMD ? SMTP_PARSE_CMD_MAX : SMTP_PARSE_AUTH_MAX;
    enum parse_rc rc;

    if (s->skip_line)
        return smtp_session_skip_long_line(s);
    rc = smtp_parse_line(buf_head(&c->in), buf_used(&c->in), cmd_max,
                                       SMTP_PARSE_AUTH_MAX, &line, &line_len, &used);

    switch (rc) {
    case PARSE_AGAIN:
        return SMTP_PAUSE;
    case PARSE_TOO_LONG:
        s->skip_line = true;
        if (s->state != SMTP_STATE_CMD) /* inside AUTH: a failed attempt (smtp_auth.c) */
            return smtp_auth_abort(s, SMTP_R_LINE_TOO_LONG);
        return smtp_session_error(s, SMTP_R_LINE_TOO_LONG);
    case PARSE_BAD_ENDING:
        buf_consume(&c->in, used);
        s->lines_in++;
        if (s->state != SMTP_STATE_CMD)
            return smtp_auth_abort(s, SMTP_R_BARE_CR_LF_COMMAND);
        return smtp_session_error(s, SMTP_R_BARE_CR_LF_COMMAND);
    default: {
        /* Copy out: the handler may consume or reset c->in (STARTTLS). */
        char         copy[SMTP_PARSE_AUTH_MAX];
        enum smtp_rc r;

        memcpy(copy, line, line_len);
        buf_consume(&c->in, used);
        s->lines_in++;
        r = smtp_session_line(s, copy, line_len);
        explicit_bzero(copy, line_len < sizeof(copy) ? line_len : sizeof(copy));
        return r;
    }
    }
}

/* After a batch of input: a completed line or a new state starts a new wait; the first
 * octets of a line start its line deadline. Nothing else moves a deadline. */
static void
smtp_session_clock_update(struct smtp_session *s, unsigned long long lines_before,
                          enum smtp_state state_before)
{
    bool in_line = s->state == SMTP_STATE_CMD || s->state == SMTP_STATE_AUTH ||
                   s->state == SMTP_STATE_AUTH_ERROR;

    if (s->lines_in != lines_before)
        smtp_session_clock_start(s);
    else if (s->state != state_before)
        s->wait_since = ev_now(s->server->loop);
    if (in_line && s->line_since == 0 && (buf_used(&s->conn->in) > 0 || s->skip_line))
        s->line_since = ev_now(s->server->loop);
}

/* Replies a client has not read: past this, its input waits (RFC 2920 section 3.1: a
 * client must not pipeline more than it can take the replies of; one that sends without
 * reading would otherwise make us hold every reply, and only CONN_OUT_MAX stopped it). */
#define SMTP_SESSION_OUT_HIGH (64 * 1024)

static bool
smtp_session_out_full(const struct smtp_session *s)
{
    return buf_used(&s->conn->out) >= SMTP_SESSION_OUT_HIGH;
}

/* Process everything buffered, then flush the batch of replies. */
static enum conn_rc
smtp_session_process_batch(struct smtp_session *s, enum smtp_rc *rc)
{
    enum smtp_rc       r = SMTP_CONTINUE;
    unsigned long long lines_before = s->lines_in;
    enum smtp_state    state_before = s->state;

    *rc = SMTP_PAUSE;
    while (r == SMTP_CONTINUE && buf_used(&s->conn->in) > 0 && !smtp_session_out_full(s)) {
        switch (s->state) {
        case SMTP_STATE_PROXY:
            r = smtp_proxy_input(s);
            break;
        case SMTP_STATE_CMD:
        case SMTP_STATE_AUTH:
        case SMTP_STATE_AUTH_ERROR:
            r = smtp_session_command_input(s);
            break;
        case SMTP_STATE_DATA:
        case SMTP_STATE_BDAT:
            r = smtp_data_input(s);
            break;
        default:
            r = SMTP_PAUSE;
        }
    }
    if (r == SMTP_GONE)
        return CONN_GONE;
    if (s->state == SMTP_STATE_CLOSING || s->state == SMTP_STATE_STARTTLS)
        return CONN_OK;
    smtp_session_clock_update(s, lines_before, state_before);
    if (s->state != SMTP_STATE_POLICY && s->state != SMTP_STATE_RELAY)
        smtp_session_set_timeout(s);
    if (s->server->draining && s->state == SMTP_STATE_CMD && s->tx == NULL) {
        if (smtp_session_close_with(s, SMTP_R_SHUTTING_DOWN) == SMTP_GONE)
            return CONN_GONE;
        return CONN_OK;
    }
    *rc = r;
    return conn_flush(s->conn, false);
}

/* Batches until the input is used up or waits; one stopped by unread replies goes on once
 * they are sent, or pauses the input until CONN_EV_FLUSHED (smtp_session_flushed). */
static enum conn_rc
smtp_session_process(struct smtp_session *s)
{
    enum smtp_rc r;

    for (;;) {
        if (smtp_session_process_batch(s, &r) == CONN_GONE)
            return CONN_GONE;
        if (r != SMTP_CONTINUE || buf_used(&s->conn->in) == 0)
            return CONN_OK;
        if (smtp_session_out_full(s)) {
            s->out_paused = true;
            conn_read_stop(s->conn);
            return conn_flush(s->conn, true);
        }
    }
}

/* Input is read again after a wait or a pause, unless the session waits still (or
 * again), is closing, is in a handshake, or has replies the client has not taken. */
static void
smtp_session_read_on(struct smtp_session *s)
{
    if (!s->out_paused && s->state != SMTP_STATE_CLOSING && s->state != SMTP_STATE_POLICY &&
        s->state != SMTP_STATE_RELAY && s->state != SMTP_STATE_STARTTLS)
        conn_read_start(s->conn);
}

/* A wait (auth decision, relay) ended: handle what the client pipelined meanwhile. */
void
smtp_session_resume(struct smtp_session *s)
{
    smtp_session_clock_start(s); /* the answer goes out now: the client's turn begins */
    if (smtp_session_process(s) == CONN_GONE)
        return;
    smtp_session_read_on(s);
}

enum smtp_rc
smtp_session_wait(struct smtp_session *s)
{
    smtp_session_enter(s, SMTP_STATE_POLICY);
    conn_read_stop(s->conn);
    conn_set_timeout(s->conn, 0);
    if (conn_flush(s->conn, false) == CONN_GONE)
        return SMTP_GONE;
    return SMTP_PAUSE;
}

void
smtp_session_decided(struct smtp_session *s, enum smtp_rc rc)
{
    if (rc == SMTP_GONE || s->state == SMTP_STATE_CLOSING)
        return;
    if (s->state == SMTP_STATE_RELAY) { /* relaying now: reading goes on, as after DATA */
        conn_read_start(s->conn);
        if (conn_flush(s->conn, false) == CONN_GONE)
            return;
        return;
    }
    smtp_session_resume(s);
}

enum smtp_rc
smtp_session_policy_reply(struct smtp_session *s, const struct verdict *v)
{
    if (v->code == 421)
        return smtp_session_close_text(s, 421, v->enhanced, v->text);
    return smtp_session_error_text(s, v->code, v->enhanced, v->text);
}

static enum conn_rc
smtp_session_tls_ready(struct smtp_session *s)
{
    struct logline l;

    s->tls = true;
    log_begin(&l, LOG_INFO, "tls.established", s->id);
    log_str(&l, "version", tls_version_name(s->conn->ssl));
    log_str(&l, "cipher", tls_cipher_name(s->conn->ssl));
    log_str(&l, "sni", tls_sni_name(s->conn->ssl));
    log_bool(&l, "resumed", SSL_session_reused(s->conn->ssl));
    log_end(&l);
    if (s->state == SMTP_STATE_TLS_ACCEPT) {
        if (smtp_session_open(s) == SMTP_GONE)
            return CONN_GONE;
        if (s->state == SMTP_STATE_CLOSING)
            return CONN_OK;
        return conn_flush(s->conn, false);
    }
    /* RFC 3207 section 4.2: forget everything learnt before the handshake. */
    smtp_session_enter(s, SMTP_STATE_CMD);
    s->ehlo_seen = false;
    s->esmtp = false;
    free(s->helo);
    s->helo = NULL;
    smtp_session_reset_tx(s);
    if (s->server->draining) /* it came during the handshake: idle now, so 421 */
        return smtp_session_close_with(s, SMTP_R_SHUTTING_DOWN) == SMTP_GONE
                   ? CONN_GONE
                   : CONN_OK;
    smtp_session_clock_start(s);
    smtp_session_set_timeout(s);
    conn_read_start(s->conn);
    return CONN_OK;
}

/* STARTTLS accepted: the 220 must leave in cleartext before the handshake begins. */
enum smtp_rc
smtp_session_starttls(struct smtp_session *s)
{
    smtp_reply_send(s->conn, SMTP_R_STARTTLS_READY);
    /* RFC 3207 section 4 / CVE-2011-0411: whatever the client pipelined behind
     * STARTTLS was sent in cleartext and is thrown away, unread. */
    buf_reset(&s->conn->in);
    smtp_session_enter(s, SMTP_STATE_STARTTLS);
    conn_read_stop(s->conn);
    smtp_session_clock_start(s); /* timeouts.tls covers flushing the 220 and the handshake */
    smtp_session_set_timeout(s);
    if (conn_flush(s->conn, true) == CONN_GONE)
        return SMTP_GONE;
    if (buf_used(&s->conn->out) == 0) {
        s->conn->notify_flushed = false;
        if (smtp_session_flushed(s) == CONN_GONE)
            return SMTP_GONE;
    }
    return SMTP_PAUSE;
}

static enum conn_rc
smtp_session_flushed(struct smtp_session *s)
{
    if (s->state == SMTP_STATE_CLOSING) {
        smtp_session_free(s, "closed after reply");
        return CONN_GONE;
    }
    if (s->state == SMTP_STATE_STARTTLS && s->conn->ssl == NULL) {
        SSL *ssl = tls_server_ssl_new(s->pin.tls, s->conn->fd);

        if (ssl == NULL) {
            smtp_session_free(s, "TLS setup failed");
            return CONN_GONE;
        }
        conn_start_tls(s->conn, ssl);
    }
    if (s->out_paused) { /* the client read its replies: on with what it sent */
        s->out_paused = false;
        if (smtp_session_process(s) == CONN_GONE)
            return CONN_GONE;
        smtp_session_read_on(s);
    }
    return CONN_OK;
}

/* A deadline passed: one session.timeout line, then 421 4.4.2 (RFC 5321 4.5.3.2: a
 * server that times out should say so), or just the close where there is no SMTP channel
 * (mid-handshake) or no one listening (CLOSING: the client does not read). */
static enum conn_rc
smtp_session_timed_out(struct smtp_session *s)
{
    static const enum smtp_reply_id reply[] = {
        [SMTP_WAIT_GREETING] = SMTP_R_TIMEOUT_COMMAND,
        [SMTP_WAIT_COMMAND] = SMTP_R_TIMEOUT_COMMAND,
        [SMTP_WAIT_LINE] = SMTP_R_TIMEOUT_LINE,
        [SMTP_WAIT_AUTH] = SMTP_R_TIMEOUT_AUTH,
        [SMTP_WAIT_DATA] = SMTP_R_TIMEOUT_DATA,
    };
    double         at, limit, now = ev_now(s->server->loop), since;
    enum smtp_wait w = smtp_session_deadline(s, &at, &limit);
    struct logline l;

    if (w == SMTP_WAIT_NONE) {
        smtp_session_free(s, "timeout");
        return CONN_GONE;
    }
    if (w == SMTP_WAIT_PROXY && at <= now + 0.001) { /* no SMTP channel yet: no 421 */
        smtp_proxy_refuse(s, "proxy.bad", "header incomplete at proxy_timeout");
        return CONN_GONE;
    }
    if (at > now + 0.001) { /* moved since the timer was set (DATA octets): not yet */
        smtp_session_set_timeout(s);
        return CONN_OK;
    }
    since = w == SMTP_WAIT_DATA ? s->data_since : s->line_since > 0 ? s->line_since
                                                                     : s->wait_since;
    log_begin(&l, LOG_NOTICE, "session.timeout", s->id);
    log_str(&l, "phase", smtp_wait_phase[w]);
    log_str(&l, "ip", s->peer);
    log_dbl(&l, "limit", limit);
    log_dbl(&l, "elapsed", now - since);
    if (w == SMTP_WAIT_DATA)
        log_int(&l, "octets", (long long)s->data_octets);
    log_end(&l);
    if (w == SMTP_WAIT_TLS) {
        smtp_session_free(s, "TLS handshake timeout");
        return CONN_GONE;
    }
    sasl_reset(&s->sasl);
    return smtp_session_close_with(s, reply[w]) == SMTP_GONE ? CONN_GONE
                                                                          : CONN_OK;
}

static enum conn_rc
smtp_session_event(void *owner, struct conn *c, enum conn_event ev)
{
    struct smtp_session *s = owner;

    (void)c;
    switch (ev) {
    case CONN_EV_INPUT:
        return smtp_session_process(s);
    case CONN_EV_TLS:
        return smtp_session_tls_ready(s);
    case CONN_EV_FLUSHED:
        return smtp_session_flushed(s);
    case CONN_EV_TIMEOUT:
        return smtp_session_timed_out(s);
    case CONN_EV_CLOSED:
    default:
        if (s->state == SMTP_STATE_PROXY) { /* a truncated header, or none at all */
            smtp_proxy_refuse(s, "proxy.bad", "connection closed before the header's end");
            return CONN_GONE;
        }
        smtp_session_free(s, c->error ? c->error : "closed");
        return CONN_GONE;
    }
}

void
smtp_session_drain(struct smtp_session *s)
{
    /* RFC 5321 3.8: a server shutting down says 421 first, even to a client that is
     * halfway through AUTH; only before the TLS handshake is there no one to tell. */
    if ((s->state == SMTP_STATE_CMD && s->tx == NULL && buf_used(&s->conn->in) == 0) ||
        s->state == SMTP_STATE_AUTH || s->state == SMTP_STATE_AUTH_ERROR) {
        sasl_reset(&s->sasl);
        smtp_session_close_with(s, SMTP_R_SHUTTING_DOWN);
    } else if (s->state == SMTP_STATE_TLS_ACCEPT || s->state == SMTP_STATE_PROXY) {
        smtp_session_free(s, "shutdown");
    }
    /* DATA, BDAT, POLICY, RELAY: the transaction finishes; smtp_session_process closes
     * after. (NEW lasts only inside smtp_session_new.) DISCONNECTED: on_disconnect ends
     * within its budget; the drain waits for it as for any session.
     * STARTTLS: smtp_session_tls_ready closes once the handshake is done. */
}

/* The drain timeout: whatever this session was waiting for, it is over. A client
 * that can hear us gets 421 (its message, if any, was never acknowledged). */
void
smtp_session_cut(struct smtp_session *s)
{
    bool can_reply = s->state != SMTP_STATE_TLS_ACCEPT && s->state != SMTP_STATE_PROXY &&
                     s->state != SMTP_STATE_CLOSING && s->state != SMTP_STATE_DISCONNECTED &&
                     !s->conn->handshaking;

    if (can_reply) {
        smtp_reply_send(s->conn, SMTP_R_SHUTTING_DOWN_CUT);
        if (conn_flush(s->conn, false) == CONN_GONE)
            return;
    }
    smtp_session_free_now(s, "drain timeout");
}
