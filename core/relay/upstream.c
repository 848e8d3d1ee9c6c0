/* core/relay/upstream.c: the SMTP client for one upstream connection; see upstream.h.
 * One state machine on top of struct conn: connect, set-up (greeting, EHLO, STARTTLS,
 * AUTH), then transactions. Replies and EHLO keywords are parsed in upstream_reply.c;
 * what an outcome means for the client is decided in core/relay/relay_job.c.
 *
 * Nothing here calls its owner from inside a call the owner made: work started by
 * upstream_new() or upstream_transact() is finished from the loop (the `kick` watcher,
 * fed with ev_feed_event, never started), so the pool never sees re-entrant events. */
#include "relay/upstream.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "proto/smtp_replies.h"
#include "util/log.h"
#include "relay/upstream_reply.h"
#include "net/tls.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

#define UPSTREAM_CMD_MAX    2048       /* one command: a 256-octet path and parameters */
#define UPSTREAM_CRED_MAX   3072       /* "\0user\0password" for AUTH PLAIN */
/* "user=U\1auth=Bearer T\1\1" for AUTH XOAUTH2: a token up to 8192 octets
 * (OAUTH2_TOKEN_MAX); base64 of it and "AUTH XOAUTH2 " stay under RFC 4954's 12288. */
#define UPSTREAM_XOAUTH2_MAX 8800
/* Message octets queued per step, when c->out holds less than this. Dot-stuffing adds
 * at most one octet per 3 (".\r\n"), so c->out stays under ~600 KiB < CONN_OUT_MAX. */
#define UPSTREAM_BODY_CHUNK (256 * 1024)

enum upstream_state {
    U_CONNECTING, /* connect(2) in progress: connect_io watches writability */
    U_TLS,        /* handshake (implicit TLS, or after 220 to STARTTLS) */
    U_GREETING,
    U_EHLO,
    U_HELO,       /* EHLO was refused: RFC 5321 4.1.4 fallback, no extensions */
    U_STARTTLS,
    U_AUTH,
    U_READY,      /* idle, in sync; reading, so that a close or a 421 is noticed */
    U_XCLIENT,    /* waiting for the 220 to an XCLIENT line (upstream_xclient.h) */
    U_XEHLO,      /* waiting for the 250 to the EHLO after XCLIENT */
    U_TX,         /* [RSET] MAIL RCPT... replies */
    U_ABORT,      /* RSET after a refused recipient */
    U_DATA,       /* waiting for 354 */
    U_BODY,       /* sending the message */
    U_FINAL,      /* waiting for the reply to the end of the message */
    U_DEAD,       /* reported; waiting to be freed */
};

enum upstream_auth_step {
    AUTH_FINAL, /* waiting for 235 */
    AUTH_USER,  /* LOGIN: waiting for the 334 that asks for the user name */
    AUTH_PASS,  /* LOGIN: waiting for the 334 that asks for the password */
    AUTH_XOAUTH2_ERROR, /* XOAUTH2: answered the error challenge (334); waiting for 535 */
};

struct upstream {
    struct ev_loop                      *loop;     /* borrows */
    const struct config                 *cfg;      /* borrows */
    const struct config_upstream_server *srv;      /* borrows */
    SSL_CTX                             *ssl_ctx;  /* borrows; NULL for cleartext */
    struct sockaddr_storage              addr;
    socklen_t                            addrlen;
    char                                 name[300]; /* "host:port" */
    char                                 addr_text[INET6_ADDRSTRLEN]; /* addr, logged */
    uint64_t                             sid;       /* the job this connection serves */
    void                                *owner;     /* borrows */
    upstream_event_fn                    on_event;  /* NULL while being freed */
    struct conn                         *conn;      /* owns */
    ev_io                                connect_io;
    ev_timer                             kick;      /* fed, never started */
    bool                                 kick_report; /* the kick reports kick_event */
    enum upstream_event                  kick_event;
    enum upstream_state                  state;
    enum upstream_auth_step              auth_step;
    char                                *bearer;    /* owns, wiped on free: the XOAUTH2
                                                     * token it was given, or NULL */
    unsigned                             caps;      /* enum upstream_cap bits */
    unsigned long long                   size_max;  /* SIZE from EHLO, 0 = no limit */
    bool                                 tls_on;
    struct upstream_xoffer               xoffer;    /* XCLIENT/XFORWARD from the last EHLO */
    struct upstream_xstate              *x;         /* owns; NULL until the first XCLIENT or
                                                     * XFORWARD on this connection */
    unsigned                             transactions;
    /* the transaction in progress */
    const struct relay_envelope         *env;       /* borrows */
    const char                          *msg;       /* borrows */
    size_t                               msg_len;
    size_t                               msg_off;   /* octets queued so far */
    bool                                 add_crlf;  /* msg does not end with CRLF */
    bool                                 bol;       /* msg[msg_off] starts a line */
    bool                                 rset_first;
    bool                                 refused;   /* a command of the batch was refused */
    unsigned                             n_pre;     /* commands before MAIL: RSET, XFORWARD */
    unsigned                             n_cmds;    /* [RSET] [XFORWARD...] MAIL RCPT... */
    unsigned                             sent;
    unsigned                             answered;
    struct upstream_outcome              out;
};

/* The XCLIENT or XFORWARD lines of the transaction in progress, and the XCLIENT lines in
 * force on the connection (a later client with the same ones needs none). */
struct upstream_xstate {
    char   lines[UPSTREAM_XCLIENT_TEXT_MAX];
    size_t len;
    size_t off;                            /* XCLIENT: the next line to send */
    char   in_force[UPSTREAM_XCLIENT_TEXT_MAX]; /* "": none, or not known */
};

static enum conn_rc upstream_conn_cb(void *owner, struct conn *c, enum conn_event ev);
static enum conn_rc upstream_pump_body(struct upstream *u);

/* ---- small helpers ---- */

static enum conn_rc
upstream_report(struct upstream *u, enum upstream_event ev)
{
    return u->on_event(u->owner, u, ev);
}

static void
upstream_kick(struct upstream *u, bool report, enum upstream_event ev)
{
    u->kick_report = report;
    u->kick_event = ev;
    ev_feed_event(u->loop, &u->kick, EV_TIMER);
}

static int
upstream_printf(struct upstream *u, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
upstream_printf(struct upstream *u, const char *fmt, ...)
{
    char    line[UPSTREAM_CMD_MAX];
    va_list ap;
    int     n;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(line))
        return -1;
    return conn_write(u->conn, line, (size_t)n);
}

static void
upstream_copy_reply(struct upstream *u, const struct upstream_reply *r)
{
    u->out.code = r->code;
    memcpy(u->out.enhanced, r->enhanced, sizeof(u->out.enhanced));
    memcpy(u->out.text, r->text, sizeof(u->out.text));
}

static enum upstream_stage
upstream_stage_of(const struct upstream *u)
{
    static const enum upstream_stage by_state[] = {
        [U_CONNECTING] = UPSTREAM_STAGE_CONNECT, [U_TLS] = UPSTREAM_STAGE_TLS,
        [U_GREETING] = UPSTREAM_STAGE_GREETING,  [U_EHLO] = UPSTREAM_STAGE_EHLO,
        [U_HELO] = UPSTREAM_STAGE_EHLO,          [U_STARTTLS] = UPSTREAM_STAGE_STARTTLS,
        [U_AUTH] = UPSTREAM_STAGE_AUTH,          [U_READY] = UPSTREAM_STAGE_IDLE,
        [U_XCLIENT] = UPSTREAM_STAGE_XCLIENT,    [U_XEHLO] = UPSTREAM_STAGE_XCLIENT,
        [U_TX] = UPSTREAM_STAGE_MAIL,            [U_ABORT] = UPSTREAM_STAGE_RCPT,
        [U_DATA] = UPSTREAM_STAGE_DATA,          [U_BODY] = UPSTREAM_STAGE_BODY,
        [U_FINAL] = UPSTREAM_STAGE_BODY,         [U_DEAD] = UPSTREAM_STAGE_IDLE,
    };
    unsigned k = u->answered;

    if (u->state != U_TX)
        return by_state[u->state];
    if (k < u->n_pre)
        return u->rset_first && k == 0 ? UPSTREAM_STAGE_RSET : UPSTREAM_STAGE_XCLIENT;
    return k == u->n_pre ? UPSTREAM_STAGE_MAIL : UPSTREAM_STAGE_RCPT;
}

static const char *
upstream_stage_name(enum upstream_stage st)
{
    static const char *const names[] = {
        "connect", "tls", "greeting", "ehlo", "starttls", "auth", "idle",
        "rset",    "xclient", "mail", "rcpt", "data",     "body",
    };

    return names[st];
}

static bool
upstream_in_tx(const struct upstream *u)
{
    return u->state >= U_XCLIENT && u->state <= U_FINAL;
}

/* The connection is unusable: record why, log, and report it. The owner frees u. */
static enum conn_rc
upstream_fail(struct upstream *u, bool timed_out, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum conn_rc
upstream_fail(struct upstream *u, bool timed_out, const char *fmt, ...)
{
    enum upstream_event ev = upstream_in_tx(u) ? UPSTREAM_EV_DONE : UPSTREAM_EV_CLOSED;
    struct logline      l;
    va_list             ap;

    if (u->state != U_ABORT) { /* else the recipient's refusal stays the verdict */
        u->out.stage = upstream_stage_of(u);
        u->out.broken = true;
    }
    u->out.ok = false;
    u->out.timed_out = timed_out;
    va_start(ap, fmt);
    vsnprintf(u->out.error, sizeof(u->out.error), fmt, ap);
    va_end(ap);
    u->state = U_DEAD;
    log_begin(&l, LOG_WARNING, "upstream.error", u->sid);
    log_str(&l, "upstream", u->name);
    log_str(&l, "addr", u->addr_text);
    log_str(&l, "stage", upstream_stage_name(u->out.stage));
    log_str(&l, "error", u->out.error);
    if (u->out.code != 0) {
        log_int(&l, "code", u->out.code);
        log_str(&l, "text", u->out.text);
    }
    log_end(&l);
    if (u->conn != NULL)
        conn_set_timeout(u->conn, 0);
    return upstream_report(u, ev);
}

/* A set-up step got an unexpected reply: the server is skipped (failover). */
static enum conn_rc
upstream_fail_reply(struct upstream *u, const struct upstream_reply *r, const char *what)
{
    upstream_copy_reply(u, r);
    return upstream_fail(u, false, "%s refused: %d %s", what, r->code, r->text);
}

static enum conn_rc
upstream_flush(struct upstream *u)
{
    return conn_flush(u->conn, false);
}

static bool
upstream_is_loopback(const struct upstream *u)
{
    if (u->addr.ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)&u->addr;

        return (ntohl(sin->sin_addr.s_addr) >> 24) == 127; /* RFC 1122: 127/8 */
    }
    if (u->addr.ss_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&u->addr;

        return IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr) ||
               (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr) && sin6->sin6_addr.s6_addr[12] == 127);
    }
    return false;
}

/* ---- set-up: greeting, EHLO, STARTTLS, AUTH ---- */

static enum conn_rc
upstream_send_ehlo(struct upstream *u, const char *verb, enum upstream_state next)
{
    if (upstream_printf(u, "%s %s\r\n", verb, u->cfg->hostname) != 0)
        return upstream_fail(u, false, "cannot queue %s", verb);
    u->state = next;
    conn_set_timeout(u->conn, u->cfg->timeout_upstream);
    return upstream_flush(u);
}

/* Set-up is complete (or a transaction ended in sync): idle until the next one. */
static void
upstream_enter_ready(struct upstream *u)
{
    u->state = U_READY;
    u->env = NULL;
    u->msg = NULL;
    conn_set_timeout(u->conn, u->cfg->pool_idle_timeout);
}

/* "xclient", "xforward" or "none": what the connection's transactions will send. */
static const char *
upstream_xclient_name(const struct upstream *u)
{
    return u->xoffer.xclient ? "xclient" : u->xoffer.xforward ? "xforward" : "none";
}

static enum conn_rc
upstream_set_up_done(struct upstream *u)
{
    struct logline l;
    bool           offered = u->xoffer.xclient || u->xoffer.xforward;

    if (u->srv->xclient == CONFIG_XCLIENT_REQUIRED && !offered) {
        u->out.xclient = true;
        return upstream_fail(u, false, "upstream offers neither XCLIENT nor XFORWARD "
                                       "(xclient = 'required')");
    }
    if (u->srv->xclient == CONFIG_XCLIENT_ON && !offered) /* once per connection */
        log_msg(LOG_WARNING, "upstream.xclient", u->sid,
                "%s offers neither XCLIENT nor XFORWARD: its mail carries sluice's address, "
                "not the client's", u->name);
    upstream_enter_ready(u);
    log_begin(&l, LOG_INFO, "upstream.ready", u->sid);
    log_str(&l, "upstream", u->name);
    log_str(&l, "tls", u->tls_on ? tls_version_name(u->conn->ssl) : "none");
    if (u->tls_on) {
        log_str(&l, "cipher", tls_cipher_name(u->conn->ssl));
        log_bool(&l, "resumed", tls_client_resumed(u->conn->ssl));
    }
    log_bool(&l, "pipelining", (u->caps & CAP_PIPELINING) != 0);
    log_bool(&l, "chunking", (u->caps & CAP_CHUNKING) != 0);
    log_bool(&l, "auth", u->srv->auth_user != NULL);
    if (u->srv->xclient != CONFIG_XCLIENT_OFF)
        log_str(&l, "xclient", upstream_xclient_name(u));
    log_end(&l);
    return upstream_report(u, UPSTREAM_EV_READY);
}

/* Base64 one AUTH line (RFC 4954 section 4) and wipe the stack copies afterwards. */
static int
upstream_write_b64(struct upstream *u, const char *prefix, const void *data, size_t n)
{
    size_t         cap = (n + 2) / 3 * 4 + 1;
    unsigned char *enc;
    int            len, rc = -1;

    if (n > UPSTREAM_XOAUTH2_MAX || (enc = malloc(cap)) == NULL)
        return -1;
    len = EVP_EncodeBlock(enc, data, (int)n);
    if (conn_write(u->conn, prefix, strlen(prefix)) == 0 &&
        conn_write(u->conn, enc, (size_t)len) == 0 && conn_write(u->conn, "\r\n", 2) == 0)
        rc = 0;
    OPENSSL_cleanse(enc, cap);
    free(enc);
    return rc;
}

/* AUTH XOAUTH2 with the bearer token the pool gave (upstream_set_bearer), as Google and
 * Microsoft specify it: base64("user=" U ^A "auth=Bearer " T ^A ^A) as the initial
 * response. No token (the fetch failed meanwhile): this server is skipped. */
static enum conn_rc
upstream_auth_xoauth2(struct upstream *u)
{
    char  *cred;
    size_t cap = UPSTREAM_XOAUTH2_MAX + 1;
    int    n, rc;

    if (!(u->caps & CAP_AUTH_XOAUTH2))
        return upstream_fail(u, false, "upstream does not offer AUTH XOAUTH2");
    if (u->bearer == NULL)
        return upstream_fail(u, false, "no OAuth2 token for AUTH XOAUTH2");
    if ((cred = malloc(cap)) == NULL)
        return upstream_fail(u, false, "cannot queue AUTH");
    n = snprintf(cred, cap, "user=%s\001auth=Bearer %s\001\001", u->srv->auth_user, u->bearer);
    rc = n > 0 && (size_t)n < cap ? upstream_write_b64(u, "AUTH XOAUTH2 ", cred, (size_t)n) : -1;
    OPENSSL_cleanse(cred, cap);
    free(cred);
    u->auth_step = AUTH_FINAL;
    if (rc != 0)
        return upstream_fail(u, false, "cannot queue AUTH");
    return upstream_flush(u);
}

/* AUTH PLAIN with an initial response, else LOGIN (or XOAUTH2 when configured). Never in
 * cleartext to a remote host: the password would be readable by anyone on the path. */
static enum conn_rc
upstream_auth_start(struct upstream *u)
{
    const char *user = u->srv->auth_user;
    const char *pass = u->srv->auth_password != NULL ? u->srv->auth_password : "";
    char        cred[UPSTREAM_CRED_MAX];
    size_t      ul = strlen(user), pl = strlen(pass);
    int         rc;

    if (!u->tls_on && !upstream_is_loopback(u))
        return upstream_fail(u, false, "refusing to send credentials in cleartext");
    u->state = U_AUTH;
    conn_set_timeout(u->conn, u->cfg->timeout_upstream);
    if (u->srv->auth_mech == CONFIG_AUTH_XOAUTH2)
        return upstream_auth_xoauth2(u);
    if (u->caps & CAP_AUTH_PLAIN) {
        if (ul + pl + 2 > sizeof(cred))
            return upstream_fail(u, false, "AUTH credentials too long");
        cred[0] = '\0';
        memcpy(cred + 1, user, ul);
        cred[ul + 1] = '\0';
        memcpy(cred + ul + 2, pass, pl);
        rc = upstream_write_b64(u, "AUTH PLAIN ", cred, ul + pl + 2);
        OPENSSL_cleanse(cred, sizeof(cred));
        u->auth_step = AUTH_FINAL;
    } else if (u->caps & CAP_AUTH_LOGIN) {
        rc = conn_write(u->conn, "AUTH LOGIN\r\n", 12);
        u->auth_step = AUTH_USER;
    } else {
        return upstream_fail(u, false, "upstream offers neither AUTH PLAIN nor AUTH LOGIN");
    }
    if (rc != 0)
        return upstream_fail(u, false, "cannot queue AUTH");
    return upstream_flush(u);
}

static enum conn_rc
upstream_on_auth(struct upstream *u, const struct upstream_reply *r)
{
    const char *pass = u->srv->auth_password != NULL ? u->srv->auth_password : "";

    if (u->auth_step == AUTH_FINAL && r->code == 334 &&
        u->srv->auth_mech == CONFIG_AUTH_XOAUTH2) {
        /* The token was refused: the challenge is a JSON error, answered with an empty
         * line, after which the server sends its 535 (Google's XOAUTH2 protocol). */
        u->auth_step = AUTH_XOAUTH2_ERROR;
        conn_set_timeout(u->conn, u->cfg->timeout_upstream);
        if (conn_write(u->conn, "\r\n", 2) != 0)
            return upstream_fail(u, false, "cannot queue AUTH");
        return upstream_flush(u);
    }
    if (u->auth_step == AUTH_FINAL || u->auth_step == AUTH_XOAUTH2_ERROR) {
        if (r->code != 235)
            return upstream_fail_reply(u, r, "AUTH");
        return upstream_set_up_done(u);
    }
    if (r->code != 334)
        return upstream_fail_reply(u, r, "AUTH LOGIN");
    conn_set_timeout(u->conn, u->cfg->timeout_upstream);
    if (u->auth_step == AUTH_USER) {
        u->auth_step = AUTH_PASS;
        if (upstream_write_b64(u, "", u->srv->auth_user, strlen(u->srv->auth_user)) != 0)
            return upstream_fail(u, false, "cannot queue AUTH");
    } else {
        u->auth_step = AUTH_FINAL;
        if (upstream_write_b64(u, "", pass, strlen(pass)) != 0)
            return upstream_fail(u, false, "cannot queue AUTH");
    }
    return upstream_flush(u);
}

/* After EHLO (or HELO): STARTTLS if configured and not yet done, then AUTH. A server
 * configured for STARTTLS that does not offer it is skipped, never used in cleartext. */
static enum conn_rc
upstream_after_ehlo(struct upstream *u)
{
    if (u->srv->tls == CONFIG_TLS_STARTTLS && !u->tls_on) {
        if (!(u->caps & CAP_STARTTLS))
            return upstream_fail(u, false, "upstream does not offer STARTTLS");
        if (conn_write(u->conn, "STARTTLS\r\n", 10) != 0)
            return upstream_fail(u, false, "cannot queue STARTTLS");
        u->state = U_STARTTLS;
        conn_set_timeout(u->conn, u->cfg->timeout_upstream);
        return upstream_flush(u);
    }
    if (u->srv->auth_user != NULL)
        return upstream_auth_start(u);
    return upstream_set_up_done(u);
}

static enum conn_rc
upstream_on_ehlo(struct upstream *u, const struct upstream_reply *r)
{
    bool needs_ehlo = u->srv->tls == CONFIG_TLS_STARTTLS || u->srv->auth_user != NULL;

    if (r->code == 250) {
        upstream_reply_caps(r, &u->caps, &u->size_max);
        upstream_xclient_offer(r, &u->xoffer);
        return upstream_after_ehlo(u);
    }
    /* RFC 5321 4.1.4: a server that does not know EHLO gets HELO, unless we need an
     * extension (STARTTLS, AUTH) that HELO cannot give us. */
    if (r->code >= 500 && !needs_ehlo)
        return upstream_send_ehlo(u, "HELO", U_HELO);
    return upstream_fail_reply(u, r, "EHLO");
}

/* RFC 3207 section 4: bytes the server sent after its 220 were sent in cleartext and
 * could have been injected; conn_start_tls() discards them unparsed. We only log. */
static enum conn_rc
upstream_start_tls(struct upstream *u)
{
    const char *name = u->srv->tls_name != NULL ? u->srv->tls_name : u->srv->host;
    SSL        *ssl = tls_client_ssl_new(u->ssl_ctx, u->conn->fd, name);

    if (ssl == NULL)
        return upstream_fail(u, false, "cannot create a TLS session");
    if (buf_used(&u->conn->in) > 0)
        log_msg(LOG_WARNING, "upstream.tls", u->sid,
                "%s: discarded %zu octets sent before the TLS handshake", u->name,
                buf_used(&u->conn->in));
    u->state = U_TLS;
    conn_set_timeout(u->conn, u->cfg->timeout_tls > 0 ? u->cfg->timeout_tls
                                                      : u->cfg->timeout_upstream);
    conn_start_tls(u->conn, ssl);
    return CONN_OK;
}

static enum conn_rc
upstream_on_tls(struct upstream *u)
{
    u->tls_on = true;
    conn_read_start(u->conn); /* a record OpenSSL already holds is delivered too */
    if (u->srv->tls == CONFIG_TLS_IMPLICIT) {
        u->state = U_GREETING; /* RFC 8314: the greeting comes inside TLS */
        conn_set_timeout(u->conn, u->cfg->timeout_upstream);
        return CONN_OK;
    }
    u->caps = 0; /* RFC 3207 section 4.2: forget everything learnt in cleartext */
    memset(&u->xoffer, 0, sizeof(u->xoffer));
    return upstream_send_ehlo(u, "EHLO", U_EHLO);
}

static enum conn_rc
upstream_on_set_up_reply(struct upstream *u, const struct upstream_reply *r)
{
    switch (u->state) {
    case U_GREETING:
        if (r->code != 220)
            return upstream_fail_reply(u, r, "greeting");
        return upstream_send_ehlo(u, "EHLO", U_EHLO);
    case U_EHLO:
        return upstream_on_ehlo(u, r);
    case U_HELO:
        if (r->code != 250)
            return upstream_fail_reply(u, r, "HELO");
        u->caps = 0;
        memset(&u->xoffer, 0, sizeof(u->xoffer));
        return upstream_after_ehlo(u);
    case U_STARTTLS:
        if (r->code != 220)
            return upstream_fail_reply(u, r, "STARTTLS");
        return upstream_start_tls(u);
    case U_AUTH:
        return upstream_on_auth(u, r);
    default:
        assert(!"not a set-up state");
        return CONN_OK;
    }
}

/* ---- XCLIENT and XFORWARD (upstream_xclient.h, docs/upstreams.md) ---- */

enum upstream_xplan {
    XPLAN_NONE,     /* nothing to send: off, not offered, or this client's XCLIENT in force */
    XPLAN_XCLIENT,  /* XCLIENT line(s), each answered by 220, then EHLO, then the envelope */
    XPLAN_XFORWARD, /* XFORWARD line(s) in the batch, after RSET and before MAIL (n_pre) */
    XPLAN_FAIL,     /* out of memory */
};

/* What this transaction tells the upstream about its client: XCLIENT when the EHLO
 * offers it (it sets what Postfix's access rules see, and the login), else XFORWARD (the
 * Received: header and the logs only). u->x->lines holds the lines. */
static enum upstream_xplan
upstream_x_plan(struct upstream *u)
{
    const struct relay_client *c = &u->env->client;
    bool                       xclient = u->xoffer.xclient;
    int                        n;

    if (u->srv->xclient == CONFIG_XCLIENT_OFF || c->addr == NULL ||
        (!u->xoffer.xclient && !u->xoffer.xforward))
        return XPLAN_NONE;
    if (u->x == NULL && (u->x = calloc(1, sizeof(*u->x))) == NULL)
        return XPLAN_FAIL;
    n = upstream_xclient_lines(xclient ? UPSTREAM_XCLIENT : UPSTREAM_XFORWARD,
                               xclient ? u->xoffer.xclient_attrs : u->xoffer.xforward_attrs,
                               c, u->x->lines, sizeof(u->x->lines), &u->x->len);
    u->x->off = 0;
    if (n < 0)
        return XPLAN_FAIL;
    if (n == 0)
        return XPLAN_NONE;
    if (!xclient) {
        u->n_pre += (unsigned)n;
        return XPLAN_XFORWARD;
    }
    /* XCLIENT holds until the next one: the same client's next message needs none */
    if (strcmp(u->x->lines, u->x->in_force) == 0)
        return XPLAN_NONE;
    u->x->in_force[0] = '\0'; /* until the EHLO after it says it took */
    return XPLAN_XCLIENT;
}

/* Queue the next line of u->x->lines. */
static int
upstream_x_send(struct upstream *u)
{
    size_t n = upstream_xclient_next_line(u->x->lines, u->x->len, &u->x->off);

    return n > 0 ? conn_write(u->conn, u->x->lines + u->x->off - n, n) : -1;
}

static int upstream_send_batch(struct upstream *u);

/* The EHLO after XCLIENT names the client's HELO name, as nginx's mail proxy does: Postfix
 * takes the name from this EHLO, over XCLIENT's HELO=; ours when the client's is not a
 * plain word (upstream_xclient_helo_ok). */
static enum conn_rc
upstream_send_xehlo(struct upstream *u)
{
    const char *helo = u->env->client.helo;

    if (!upstream_xclient_helo_ok(helo))
        helo = u->cfg->hostname;
    if (upstream_printf(u, "EHLO %s\r\n", helo) != 0)
        return upstream_fail(u, false, "cannot queue EHLO");
    u->state = U_XEHLO;
    conn_set_timeout(u->conn, u->cfg->timeout_upstream);
    return upstream_flush(u);
}

/* Postfix answers XCLIENT as it greets a new connection (220), after which the client
 * says EHLO again; then the envelope. Anything else fails closed (docs/upstreams.md): the
 * message is not relayed under sluice's identity when the site asked for the client's,
 * and the job tries the set's next server. */
static enum conn_rc
upstream_on_xclient_reply(struct upstream *u, const struct upstream_reply *r)
{
    if (r->code == 421) { /* RFC 5321 3.8: the server is closing; nothing was decided */
        upstream_copy_reply(u, r);
        return upstream_fail(u, false, "upstream is closing: 421 %s", r->text);
    }
    u->out.replies++;
    u->out.xclient = r->code != 220 && r->code != 250;
    if (u->state == U_XCLIENT) {
        if (r->code != 220)
            return upstream_fail_reply(u, r, "XCLIENT");
        if (u->x->off < u->x->len) { /* the attributes did not fit in one line */
            if (upstream_x_send(u) != 0)
                return upstream_fail(u, false, "cannot queue XCLIENT");
            conn_set_timeout(u->conn, u->cfg->timeout_upstream);
            return upstream_flush(u);
        }
        return upstream_send_xehlo(u);
    }
    if (r->code != 250)
        return upstream_fail_reply(u, r, "EHLO after XCLIENT");
    upstream_reply_caps(r, &u->caps, &u->size_max);
    upstream_xclient_offer(r, &u->xoffer);
    memcpy(u->x->in_force, u->x->lines, u->x->len + 1);
    u->n_cmds = 1u + (unsigned)u->env->n_rcpts;
    if (upstream_send_batch(u) != 0)
        return upstream_fail(u, false, "cannot queue the envelope");
    conn_set_timeout(u->conn, u->cfg->timeout_upstream);
    return upstream_flush(u);
}

/* ---- the transaction ---- */

/* RCPT for recipient i, with its NOTIFY and ORCPT as the client sent them when this
 * connection's upstream offers DSN (RFC 3461 section 5.2.1: passed on unchanged). */
static int
upstream_send_rcpt(struct upstream *u, size_t i)
{
    const struct relay_envelope *env = u->env;
    const struct dsn_rcpt *d = env->dsn_rcpts != NULL ? &env->dsn_rcpts[i] : NULL;

    if (d == NULL || !(u->caps & CAP_DSN) || (d->notify == NULL && d->orcpt == NULL))
        return upstream_printf(u, "RCPT TO:<%s>\r\n", env->rcpts[i]);
    return upstream_printf(u, "RCPT TO:<%s>%s%s%s%s\r\n", env->rcpts[i],
                           d->notify ? " NOTIFY=" : "", d->notify ? d->notify : "",
                           d->orcpt ? " ORCPT=" : "", d->orcpt ? d->orcpt : "");
}

/* Command k of the batch: [RSET] [XFORWARD...] MAIL RCPT... */
static int
upstream_send_tx_cmd(struct upstream *u, unsigned k)
{
    const struct relay_envelope *env = u->env;
    char                         params[96 + DSN_ENVID_MAX] = "";
    size_t                       pl = 0;

    if (u->rset_first && k-- == 0)
        return conn_write(u->conn, "RSET\r\n", 6);
    if (k < u->n_pre - (u->rset_first ? 1u : 0u)) /* the XFORWARD lines, in order */
        return upstream_x_send(u);
    k -= u->n_pre - (u->rset_first ? 1u : 0u);
    if (k > 0)
        return upstream_send_rcpt(u, k - 1);
    if (u->caps & CAP_SIZE) /* RFC 1870: our estimate, the stuffed size may differ a bit */
        pl += (size_t)snprintf(params + pl, sizeof(params) - pl, " SIZE=%zu",
                               u->msg_len + (u->add_crlf ? 2 : 0));
    if (env->body_8bit && (u->caps & CAP_8BITMIME))
        pl += (size_t)snprintf(params + pl, sizeof(params) - pl, " BODY=8BITMIME");
    if (env->smtputf8)
        pl += (size_t)snprintf(params + pl, sizeof(params) - pl, " SMTPUTF8");
    if (env->dsn_ret != DSN_RET_NONE && (u->caps & CAP_DSN))
        pl += (size_t)snprintf(params + pl, sizeof(params) - pl, " RET=%s",
                               env->dsn_ret == DSN_RET_FULL ? "FULL" : "HDRS");
    if (env->dsn_envid != NULL && (u->caps & CAP_DSN))
        snprintf(params + pl, sizeof(params) - pl, " ENVID=%s", env->dsn_envid);
    return upstream_printf(u, "MAIL FROM:<%s>%s\r\n", env->mail_from, params);
}

/* Refuse before sending anything what the upstream said it cannot take. */
static bool
upstream_precheck(struct upstream *u)
{
    struct upstream_outcome       *o = &u->out;
    unsigned long long             size = u->msg_len + (u->add_crlf ? 2 : 0);
    const struct smtp_reply_entry *r;

    if (u->env->smtputf8 && !(u->caps & CAP_SMTPUTF8)) /* RFC 6531 section 3.2 */
        r = smtp_replies_get(SMTP_R_UPSTREAM_NO_SMTPUTF8);
    else if (u->env->body_8bit && !(u->caps & CAP_8BITMIME)) /* RFC 6152 section 3 */
        r = smtp_replies_get(SMTP_R_UPSTREAM_NO_8BITMIME);
    else if (u->size_max > 0 && size > u->size_max) /* RFC 1870 section 6 */
        r = smtp_replies_get(SMTP_R_UPSTREAM_TOO_BIG);
    else
        return true;
    o->stage = UPSTREAM_STAGE_MAIL;
    o->code = r->code;
    snprintf(o->enhanced, sizeof(o->enhanced), "%s", r->enhanced);
    snprintf(o->text, sizeof(o->text), "%s", r->text);
    return false;
}

/* The envelope from command 0: all of it in one write when pipelining (RFC 2920), else
 * one command per reply. */
static int
upstream_send_batch(struct upstream *u)
{
    unsigned k;

    u->state = U_TX;
    for (k = 0; k < ((u->caps & CAP_PIPELINING) ? u->n_cmds : 1u); k++, u->sent++)
        if (upstream_send_tx_cmd(u, k) != 0)
            return -1;
    return 0;
}

void
upstream_transact(struct upstream *u, uint64_t sid, const struct relay_envelope *env,
                  const char *msg, size_t msg_len)
{
    enum upstream_xplan plan;

    assert(u->state == U_READY && env->n_rcpts > 0);
    memset(&u->out, 0, sizeof(u->out));
    u->out.failed_rcpt = -1;
    /* RFC 3461 section 5.2.2: a server without DSN gets none of the parameters; what
     * sluice does instead (it has no queue to send a "relayed" DSN from) is in
     * docs/smtp.md "Delivery status notifications". Per connection: its own EHLO. */
    u->out.dsn_dropped = !(u->caps & CAP_DSN) && (env->dsn_ret != DSN_RET_NONE ||
                                                  env->dsn_envid != NULL || env->dsn_rcpts != NULL);
    u->sid = sid;
    u->env = env;
    u->msg = msg;
    u->msg_len = msg_len;
    u->add_crlf = msg_len > 0 && (msg_len < 2 || memcmp(msg + msg_len - 2, "\r\n", 2) != 0);
    u->rset_first = u->transactions++ > 0; /* reused: RSET, and it checks the connection */
    u->refused = false;
    u->n_pre = u->rset_first ? 1u : 0u;
    u->sent = u->answered = 0;
    if (!upstream_precheck(u)) {
        upstream_kick(u, true, UPSTREAM_EV_DONE);
        return;
    }
    plan = upstream_x_plan(u);
    u->n_cmds = u->n_pre + 1u + (unsigned)env->n_rcpts;
    if (plan == XPLAN_XCLIENT) {
        /* XCLIENT resets the session as a new connection would (and checks a reused one,
         * as RSET would): no RSET; the envelope follows the EHLO after it. */
        u->rset_first = false;
        u->n_pre = 0;
        u->state = U_XCLIENT;
    }
    if (plan == XPLAN_FAIL ||
        (plan == XPLAN_XCLIENT ? upstream_x_send(u) : upstream_send_batch(u)) != 0) {
        snprintf(u->out.error, sizeof(u->out.error), "cannot queue the envelope");
        u->out.stage = plan == XPLAN_NONE ? UPSTREAM_STAGE_MAIL : UPSTREAM_STAGE_XCLIENT;
        u->out.broken = true;
        u->state = U_DEAD;
        upstream_kick(u, true, UPSTREAM_EV_DONE);
        return;
    }
    conn_set_timeout(u->conn, u->cfg->timeout_upstream);
    upstream_kick(u, false, UPSTREAM_EV_DONE);
}

static enum conn_rc
upstream_start_message(struct upstream *u)
{
    u->msg_off = 0;
    u->bol = true;
    conn_set_timeout(u->conn, u->cfg->timeout_upstream);
    if (u->caps & CAP_CHUNKING) { /* RFC 3030: one chunk, no stuffing, no 354 round trip */
        if (upstream_printf(u, "BDAT %zu LAST\r\n", u->msg_len + (u->add_crlf ? 2 : 0)) != 0)
            return upstream_fail(u, false, "cannot queue BDAT");
        u->state = U_BODY;
        return upstream_pump_body(u);
    }
    if (conn_write(u->conn, "DATA\r\n", 6) != 0)
        return upstream_fail(u, false, "cannot queue DATA");
    u->state = U_DATA;
    return upstream_flush(u);
}

/* Every reply of the envelope is in: abandon with RSET, finish, or send the message. */
static enum conn_rc
upstream_tx_decide(struct upstream *u)
{
    if (!u->refused)
        return upstream_start_message(u);
    if (u->out.stage == UPSTREAM_STAGE_RSET)
        return upstream_fail(u, false, "RSET refused: %d %s", u->out.code, u->out.text);
    if (u->out.stage == UPSTREAM_STAGE_XCLIENT) { /* fails closed, as XCLIENT does */
        u->state = U_XCLIENT;                      /* the stage upstream_fail records */
        u->out.xclient = true;
        return upstream_fail(u, false, "XFORWARD refused: %d %s", u->out.code, u->out.text);
    }
    if (u->out.stage == UPSTREAM_STAGE_MAIL) { /* no transaction was opened */
        upstream_enter_ready(u);
        return upstream_report(u, UPSTREAM_EV_DONE);
    }
    if (conn_write(u->conn, "RSET\r\n", 6) != 0)
        return upstream_fail(u, false, "cannot queue RSET");
    u->state = U_ABORT;
    conn_set_timeout(u->conn, u->cfg->timeout_upstream);
    return upstream_flush(u);
}

static enum conn_rc
upstream_on_tx_reply(struct upstream *u, const struct upstream_reply *r)
{
    enum upstream_stage st = upstream_stage_of(u);

    if (r->code == 421) { /* RFC 5321 3.8: the server is closing; nothing was decided */
        upstream_copy_reply(u, r);
        return upstream_fail(u, false, "upstream is closing: 421 %s", r->text);
    }
    if (r->code / 100 == 3)
        return upstream_fail(u, false, "unexpected reply %d %s", r->code, r->text);
    u->answered++;
    u->out.replies++;
    if (r->code / 100 != 2 && !u->refused) {
        /* The first refusal decides; a MAIL refusal makes the RCPTs fail with 503. */
        u->refused = true;
        upstream_copy_reply(u, r);
        u->out.stage = st;
        if (st == UPSTREAM_STAGE_RCPT)
            u->out.failed_rcpt = (int)(u->answered - u->n_pre - 2);
        if (u->sent < u->n_cmds)
            u->n_cmds = u->sent; /* not pipelining: send no more */
    }
    if (u->answered < u->n_cmds) {
        conn_set_timeout(u->conn, u->cfg->timeout_upstream);
        if (u->sent == u->answered) {
            if (upstream_send_tx_cmd(u, u->sent++) != 0)
                return upstream_fail(u, false, "cannot queue the envelope");
            return upstream_flush(u);
        }
        return CONN_OK;
    }
    return upstream_tx_decide(u);
}

/* RFC 5321 4.5.2: a line that starts with "." gets one more. */
static int
upstream_queue_stuffed(struct conn *c, const char *p, size_t n, bool *bol)
{
    size_t i = 0;

    while (i < n) { /* one line, or the rest, per pass */
        const char *nl;
        size_t      end;

        if (*bol && p[i] == '.' && conn_write(c, ".", 1) != 0)
            return -1;
        nl = memchr(p + i, '\n', n - i);
        end = nl != NULL ? (size_t)(nl - p) + 1 : n;
        if (conn_write(c, p + i, end - i) != 0)
            return -1;
        *bol = nl != NULL;
        i = end;
    }
    return 0;
}

/* Queue the next chunk; the last one carries the CRLF we may add and, for DATA, the
 * ".\r\n" terminator (RFC 5321 4.1.1.4). */
static int
upstream_queue_chunk(struct upstream *u)
{
    size_t n = u->msg_len - u->msg_off;
    bool   bdat = (u->caps & CAP_CHUNKING) != 0;
    int    rc;

    if (n > UPSTREAM_BODY_CHUNK)
        n = UPSTREAM_BODY_CHUNK;
    /* One allocation for the chunk, stuffed, plus the end: conn frees c->out between. */
    if (buf_reserve(&u->conn->out, n + n / 3 + 8, CONN_OUT_MAX) != 0)
        return -1;
    rc = bdat ? conn_write(u->conn, u->msg + u->msg_off, n)
              : upstream_queue_stuffed(u->conn, u->msg + u->msg_off, n, &u->bol);
    u->msg_off += n;
    if (rc != 0 || u->msg_off < u->msg_len)
        return rc;
    if (u->add_crlf && conn_write(u->conn, "\r\n", 2) != 0)
        return -1;
    return bdat ? 0 : conn_write(u->conn, ".\r\n", 3);
}

/* Write the message as the socket drains (CONN_EV_FLUSHED), one chunk at a time:
 * c->out never holds much more than two chunks (< CONN_OUT_MAX), whatever the message
 * size. A small message leaves in the same write as the BDAT line before it. */
static enum conn_rc
upstream_pump_body(struct upstream *u)
{
    for (;;) { /* each pass queues a chunk of a finite message, or returns */
        if (u->state == U_BODY && buf_used(&u->conn->out) < UPSTREAM_BODY_CHUNK) {
            if (upstream_queue_chunk(u) != 0)
                return upstream_fail(u, false, "cannot queue the message");
            if (u->msg_off == u->msg_len) {
                u->state = U_FINAL; /* RFC 5321 4.5.3.2.6: 10 minutes by default */
                conn_set_timeout(u->conn, u->cfg->timeout_upstream_data);
            } else {
                conn_set_timeout(u->conn, u->cfg->timeout_upstream);
            }
        }
        if (conn_flush(u->conn, true) == CONN_GONE)
            return CONN_GONE;
        if (u->state != U_BODY || buf_used(&u->conn->out) > 0)
            return CONN_OK; /* done, or CONN_EV_FLUSHED brings us back */
    }
}

/* Replies after the envelope: to DATA, to the end of the message, to the RSET that
 * abandons a refused transaction, or one that came early, while we were still sending. */
static enum conn_rc
upstream_on_message_reply(struct upstream *u, const struct upstream_reply *r)
{
    enum upstream_state st = u->state;
    int                 cls = r->code / 100;

    if (st == U_ABORT) { /* the refusal recorded in u->out stands */
        if (cls == 2)
            upstream_enter_ready(u);
        else
            u->state = U_DEAD; /* out of sync: the owner frees it */
        return upstream_report(u, UPSTREAM_EV_DONE);
    }
    if (st == U_DATA && r->code == 354) {
        u->state = U_BODY;
        return upstream_pump_body(u);
    }
    u->out.stage = upstream_stage_of(u);
    upstream_copy_reply(u, r);
    /* Only the final reply may accept; 421 means the server is going away (RFC 5321 3.8). */
    if (r->code == 421 || cls == 3 || (cls == 2 && st != U_FINAL))
        return upstream_fail(u, false, "unexpected reply %d %s", r->code, r->text);
    u->out.replies++;
    u->out.ok = cls == 2;
    if (st == U_BODY)
        u->state = U_DEAD; /* refused mid-message: we cannot resynchronise */
    else
        upstream_enter_ready(u);
    return upstream_report(u, UPSTREAM_EV_DONE);
}

/* ---- events ---- */

static enum conn_rc
upstream_on_reply(struct upstream *u, const struct upstream_reply *r)
{
    if (u->state < U_READY)
        return upstream_on_set_up_reply(u, r);
    if (u->state == U_READY) { /* unsolicited, typically "421 idle timeout" */
        upstream_copy_reply(u, r);
        return upstream_fail(u, false, "unsolicited reply while idle: %d %s", r->code,
                             r->text);
    }
    if (u->state == U_XCLIENT || u->state == U_XEHLO)
        return upstream_on_xclient_reply(u, r);
    if (u->state == U_TX)
        return upstream_on_tx_reply(u, r);
    return upstream_on_message_reply(u, r);
}

static enum conn_rc
upstream_on_input(struct upstream *u)
{
    struct buf *in = &u->conn->in;

    while (buf_used(in) > 0 && u->state != U_DEAD && u->state != U_TLS) {
        struct upstream_reply r;
        size_t                used = 0;
        enum reply_rc         rc = upstream_reply_parse(buf_head(in), buf_used(in), &r, &used);

        if (rc == REPLY_AGAIN)
            return CONN_OK;
        if (rc == REPLY_BAD)
            return upstream_fail(u, false, "malformed reply");
        /* Consumed first: handling may start TLS, which empties c->in. r.raw stays
         * readable, as nothing writes c->in until the next read. */
        buf_consume(in, used);
        if (upstream_on_reply(u, &r) == CONN_GONE)
            return CONN_GONE;
    }
    return CONN_OK;
}

static enum conn_rc
upstream_on_closed(struct upstream *u)
{
    long vr;

    u->out.dropped = true;
    if (u->state == U_READY) /* idle: the reply in u->out was the last transaction's */
        u->out.code = 0;
    if (u->state == U_TLS && u->conn->ssl != NULL &&
        (vr = SSL_get_verify_result(u->conn->ssl)) != X509_V_OK)
        return upstream_fail(u, false, "certificate verification failed: %s",
                             X509_verify_cert_error_string(vr));
    return upstream_fail(u, false, "%s", u->conn->error != NULL ? u->conn->error : "closed");
}

static enum conn_rc
upstream_on_timeout(struct upstream *u)
{
    if (u->state == U_READY) { /* pool_idle_timeout: upstream_free() sends QUIT */
        snprintf(u->out.error, sizeof(u->out.error), "idle timeout");
        return upstream_report(u, UPSTREAM_EV_CLOSED);
    }
    return upstream_fail(u, true, "timeout (%s)", upstream_stage_name(upstream_stage_of(u)));
}

static enum conn_rc
upstream_conn_cb(void *owner, struct conn *c, enum conn_event ev)
{
    struct upstream *u = owner;

    (void)c;
    if (u->on_event == NULL || u->state == U_DEAD)
        return CONN_OK; /* being freed, or already reported */
    switch (ev) {
    case CONN_EV_INPUT:
        return upstream_on_input(u);
    case CONN_EV_TLS:
        return upstream_on_tls(u);
    case CONN_EV_FLUSHED:
        return u->state == U_BODY ? upstream_pump_body(u) : CONN_OK;
    case CONN_EV_TIMEOUT:
        return upstream_on_timeout(u);
    case CONN_EV_CLOSED:
        return upstream_on_closed(u);
    }
    return CONN_OK;
}

static void
upstream_kick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct upstream *u = container_of(w, struct upstream, kick);

    (void)loop;
    (void)revents;
    if (u->kick_report) {
        u->kick_report = false;
        upstream_report(u, u->kick_event);
        return;
    }
    if (u->state != U_DEAD)
        conn_flush(u->conn, false);
}

/* ---- connect ---- */

static const char *
upstream_errno_text(int err)
{
    switch (err) {
    case ECONNREFUSED: return "connection refused";
    case ETIMEDOUT: return "connection timed out";
    case EHOSTUNREACH: return "host unreachable";
    case ENETUNREACH: return "network unreachable";
    case EADDRNOTAVAIL: return "no local address available";
    case ECONNRESET: return "connection reset";
    default: return "connect failed";
    }
}

static enum conn_rc
upstream_connected(struct upstream *u)
{
    struct logline l;

    log_begin(&l, LOG_INFO, "upstream.connect", u->sid);
    log_str(&l, "upstream", u->name);
    log_str(&l, "addr", u->addr_text);
    log_str(&l, "tls", u->srv->tls == CONFIG_TLS_IMPLICIT   ? "implicit"
                       : u->srv->tls == CONFIG_TLS_STARTTLS ? "starttls"
                                                            : "none");
    log_end(&l);
    conn_read_start(u->conn);
    if (u->srv->tls != CONFIG_TLS_IMPLICIT) {
        u->state = U_GREETING;
        conn_set_timeout(u->conn, u->cfg->timeout_upstream);
        return CONN_OK;
    }
    return upstream_start_tls(u);
}

static void
upstream_connect_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct upstream *u = container_of(w, struct upstream, connect_io);
    int              err = 0;
    socklen_t        len = sizeof(err);

    (void)revents;
    ev_io_stop(loop, w);
    if (getsockopt(u->conn->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    if (err != 0) {
        upstream_fail(u, err == ETIMEDOUT, "%s (errno %d)", upstream_errno_text(err), err);
        return;
    }
    upstream_connected(u);
}

/* Non-blocking connect: completion (or failure) shows as writability, then SO_ERROR.
 * An immediate failure is reported from the loop, never from upstream_new(). */
static void
upstream_connect(struct upstream *u)
{
    int fd = socket(u->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd >= 0)
        u->conn = conn_new(u->loop, fd, u, upstream_conn_cb);
    if (u->conn == NULL) {
        int err = errno;

        if (fd >= 0)
            close(fd);
        snprintf(u->out.error, sizeof(u->out.error), "socket: errno %d", err);
    } else if (connect(fd, (const struct sockaddr *)&u->addr, u->addrlen) == 0 ||
               errno == EINPROGRESS) {
        ev_io_init(&u->connect_io, upstream_connect_cb, fd, EV_WRITE);
        ev_io_start(u->loop, &u->connect_io);
        conn_set_timeout(u->conn, u->cfg->timeout_upstream);
        return;
    } else {
        snprintf(u->out.error, sizeof(u->out.error), "%s (errno %d)",
                 upstream_errno_text(errno), errno);
    }
    u->out.broken = true;
    u->out.stage = UPSTREAM_STAGE_CONNECT;
    u->state = U_DEAD;
    upstream_kick(u, true, UPSTREAM_EV_CLOSED);
}

struct upstream *
upstream_new(struct ev_loop *loop, const struct config *cfg,
             const struct config_upstream_server *srv, SSL_CTX *ssl_ctx,
             const struct sockaddr *addr, socklen_t addrlen, uint64_t sid, void *owner,
             upstream_event_fn on_event)
{
    struct upstream *u = calloc(1, sizeof(*u));

    if (u == NULL)
        return NULL;
    assert(addrlen <= sizeof(u->addr));
    assert(srv->tls == CONFIG_TLS_NONE || ssl_ctx != NULL);
    u->loop = loop;
    u->cfg = cfg;
    u->srv = srv;
    u->ssl_ctx = ssl_ctx;
    memcpy(&u->addr, addr, addrlen);
    u->addrlen = addrlen;
    upstream_server_name(srv, u->name, sizeof(u->name));
    if (inet_ntop(addr->sa_family,
                  addr->sa_family == AF_INET6
                      ? (const void *)&((const struct sockaddr_in6 *)addr)->sin6_addr
                      : (const void *)&((const struct sockaddr_in *)addr)->sin_addr,
                  u->addr_text, sizeof(u->addr_text)) == NULL)
        snprintf(u->addr_text, sizeof(u->addr_text), "?");
    u->sid = sid;
    u->owner = owner;
    u->on_event = on_event;
    u->out.failed_rcpt = -1;
    u->state = U_CONNECTING;
    ev_init(&u->kick, upstream_kick_cb);
    ev_init(&u->connect_io, upstream_connect_cb);
    upstream_connect(u);
    return u;
}

void
upstream_free(struct upstream *u)
{
    if (u == NULL)
        return;
    u->on_event = NULL; /* a write error while flushing QUIT must not call back */
    ev_io_stop(u->loop, &u->connect_io);
    ev_timer_stop(u->loop, &u->kick); /* also clears a pending feed */
    if (u->conn != NULL) {
        if (u->state == U_READY && !u->conn->closed &&
            conn_write(u->conn, "QUIT\r\n", 6) == 0) /* RFC 5321 4.1.1.10 */
            conn_flush(u->conn, false);
        conn_free(u->conn);
    }
    if (u->bearer != NULL) {
        OPENSSL_cleanse(u->bearer, strlen(u->bearer));
        free(u->bearer);
    }
    free(u->x);
    free(u);
}

bool
upstream_is_ready(const struct upstream *u)
{
    return u->state == U_READY && !u->conn->closed;
}

const struct upstream_outcome *
upstream_outcome(const struct upstream *u)
{
    return &u->out;
}

void
upstream_server_name(const struct config_upstream_server *srv, char *buf, size_t len)
{
    snprintf(buf, len, strchr(srv->host, ':') ? "[%s]:%d" : "%s:%d", srv->host, srv->port);
}

const char *
upstream_name(const struct upstream *u)
{
    return u->name;
}

unsigned
upstream_transactions(const struct upstream *u)
{
    return u->transactions;
}

int
upstream_set_bearer(struct upstream *u, const char *token)
{
    if (u->bearer != NULL) {
        OPENSSL_cleanse(u->bearer, strlen(u->bearer));
        free(u->bearer);
    }
    u->bearer = token != NULL ? strdup(token) : NULL;
    return token != NULL && u->bearer == NULL ? -1 : 0;
}

const char *
upstream_bearer(const struct upstream *u)
{
    return u->bearer;
}
