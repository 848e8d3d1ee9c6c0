/* core/dev/cmd_sink_smtp.c: one `sluice sink` connection (see cmd_sink_smtp.h).
 *
 * It is the witness the relay is tested against, so it has its own line reader, DATA/BDAT
 * decoder and SASL and includes no other core header but cmd_sink_output.h. Blocking I/O with
 * 64 KiB reads; replies are buffered and flushed only when the input is drained, so
 * pipelined commands get their replies in one write. Enhanced status codes (RFC 2034) on
 * every reply except the 220 greeting, the HELO/EHLO replies and the 334/354 prompts.
 * Left to others: listening, threads and signals, the --log writer and the Maildir
 * (cmd_sink.c, cmd_sink_output.c). */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "dev/cmd_sink_smtp.h"

#define SINK_LINE_MAX 4096 /* octets with CRLF; longer lines get 500 */
#define SINK_MAX_RCPT 1000 /* RFC 5321 4.5.3.1.8 asks for at least 100 */
#define SINK_IDLE_SECS 300 /* RFC 5321 4.5.3.2.7; also bounds a stalled write */

enum sink_mode { MODE_CMD, MODE_SKIP, MODE_DATA, MODE_BDAT, MODE_PLAIN, MODE_USER, MODE_PASS };
enum sink_dstate { DS_BOL, DS_MID, DS_CR, DS_DOT, DS_DOTCR };
enum sink_io { IO_OK, IO_EOF, IO_ERR, IO_TIMEOUT };
enum sink_trans { T_IN, T_OUT, T_READS, T_COUNT }; /* conn-<session>.in, .out, .reads */

struct sink_tx {
    char    *from;   /* owns; NULL outside a transaction */
    char   **rcpt;   /* owns the array and each string */
    int      nrcpt;
    bool     utf8;   /* MAIL had SMTPUTF8 */
    bool     bdat;   /* a BDAT chunk was accepted: DATA and RCPT are out of sequence */
    bool     bare;   /* a bare CR or LF was seen in DATA */
    char    *msg;    /* owns; kept between messages of a connection */
    size_t   len, cap;
    uint64_t total;  /* octets received, including those past max_size */
};

struct sink_conn {
    const struct sink_config *cfg; /* borrows */
    int               fd;     /* borrows: the caller closes it */
    SSL              *ssl;    /* owns; NULL in cleartext */
    uint64_t          id;
    const char       *peer;   /* borrows */
    int               helo;   /* 0 none, 1 HELO, 2 EHLO */
    char             *user;   /* owns; the authenticated user or NULL */
    char              login_user[SINK_LINE_MAX];
    enum sink_mode    mode;
    enum sink_dstate  ds;
    uint64_t          bdat_left;
    bool              bdat_last;
    const char       *bdat_err; /* reply for the chunk being skipped, or NULL */
    unsigned          msgs;     /* transactions that reached end of data */
    bool              closing, dead;
    const char       *reason;   /* why the connection closed, for sink.close */
    int               trans[T_COUNT]; /* owns; --transcript files or -1 */
    struct sink_tx    tx;
    size_t            in_start, in_end, out_len;
    char              in[64 * 1024];
    char              out[16 * 1024];
};

/* ---- small helpers ---------------------------------------------------------------- */

static bool
sink_has_8bit(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80)
            return true;
    return false;
}

static const char *
sink_match_any(const struct sink_match *m, const void *hay, size_t len)
{
    for (int i = 0; i < m->n; i++)
        if (memmem(hay, len, m->v[i], strlen(m->v[i])))
            return m->v[i];
    return NULL;
}

/* RFC 4648 base64, strict: length a multiple of 4, padding only at the end. */
static int
sink_b64_decode(const char *s, unsigned char *out, size_t *outlen)
{
    static const char abc[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = strlen(s), o = 0;

    if (n % 4)
        return -1;
    for (size_t i = 0; i < n; i += 4) {
        unsigned long w = 0;
        int           pad = 0;
        for (int j = 0; j < 4; j++) {
            const char *p = s[i + j] ? strchr(abc, s[i + j]) : NULL;
            if (s[i + j] == '=' && i + 4 == n && j >= 2)
                pad++;
            else if (!p || pad)
                return -1;
            w = w << 6 | (p ? (unsigned long)(p - abc) : 0);
        }
        out[o++] = (unsigned char)(w >> 16);
        if (pad < 2)
            out[o++] = (unsigned char)(w >> 8);
        if (pad < 1)
            out[o++] = (unsigned char)w;
    }
    *outlen = o;
    return 0;
}

static void
sink_log_conn(struct sink_conn *c, const char *event)
{
    struct sink_record r = { .event = event, .session = c->id, .peer = c->peer,
                             .reason = c->reason, .tls = c->ssl != NULL, .msg = c->msgs };

    cmd_sink_log(c->cfg, &r);
}

/* sink.message (file set), sink.reject (code set) or sink.drop for one transaction. */
static void
sink_log_tx(struct sink_conn *c, const char *event, const char *file, int code)
{
    struct sink_record r = { .event = event, .session = c->id, .tls = c->ssl != NULL,
                             .is_tx = true, .msg = c->msgs, .file = file,
                             .from = c->tx.from, .rcpt = c->tx.rcpt, .nrcpt = c->tx.nrcpt,
                             .size = c->tx.total, .user = c->user, .code = code };

    cmd_sink_log(c->cfg, &r);
}

/* ---- connection I/O ------------------------------------------------------------------ */

static enum sink_io
sink_fill(struct sink_conn *c)
{
    size_t  room;
    ssize_t n;

    if (c->in_start > 0) {
        memmove(c->in, c->in + c->in_start, c->in_end - c->in_start);
        c->in_end -= c->in_start;
        c->in_start = 0;
    }
    room = sizeof(c->in) - c->in_end;
    assert(room > 0); /* a partial command line is at most SINK_LINE_MAX octets */
    if (c->ssl) {
        ERR_clear_error();
        int r = SSL_read(c->ssl, c->in + c->in_end, (int)room);
        int e = r > 0 ? SSL_ERROR_NONE : SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_ZERO_RETURN)
            return IO_EOF;
        if (e == SSL_ERROR_WANT_READ || (e == SSL_ERROR_SYSCALL && errno == EAGAIN))
            return IO_TIMEOUT; /* SO_RCVTIMEO */
        if (e != SSL_ERROR_NONE)
            return IO_ERR;
        n = r;
    } else {
        do
            n = recv(c->fd, c->in + c->in_end, room, 0);
        while (n < 0 && errno == EINTR);
        if (n == 0)
            return IO_EOF;
        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK ? IO_TIMEOUT : IO_ERR;
    }
    if (c->trans[T_IN] >= 0)
        (void)cmd_sink_write_all(c->trans[T_IN], c->in + c->in_end, (size_t)n);
    if (c->trans[T_READS] >= 0)
        dprintf(c->trans[T_READS], "%zd\n", n); /* one line per read: shows pipelining */
    c->in_end += (size_t)n;
    return IO_OK;
}

static void
sink_flush(struct sink_conn *c)
{
    size_t off = 0;

    if (c->trans[T_OUT] >= 0 && c->out_len > 0)
        (void)cmd_sink_write_all(c->trans[T_OUT], c->out, c->out_len);
    while (off < c->out_len && !c->dead) {
        ssize_t n;
        if (c->ssl) {
            ERR_clear_error();
            n = SSL_write(c->ssl, c->out + off, (int)(c->out_len - off));
        } else {
            do
                n = send(c->fd, c->out + off, c->out_len - off, MSG_NOSIGNAL);
            while (n < 0 && errno == EINTR);
        }
        if (n <= 0) {
            c->dead = true;
            c->reason = "write error";
        } else {
            off += (size_t)n;
        }
    }
    c->out_len = 0;
}

__attribute__((format(printf, 2, 3))) static void
sink_reply(struct sink_conn *c, const char *fmt, ...)
{
    char    line[SINK_LINE_MAX];
    va_list ap;
    int     n;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof(line) - 3)
        n = (int)sizeof(line) - 3;
    memcpy(line + n, "\r\n", 2);
    n += 2;
    if (c->out_len + (size_t)n > sizeof(c->out))
        sink_flush(c);
    memcpy(c->out + c->out_len, line, (size_t)n);
    c->out_len += (size_t)n;
}

static int
sink_tls_start(struct sink_conn *c)
{
    c->ssl = SSL_new(c->cfg->tls);
    ERR_clear_error();
    if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1 || SSL_accept(c->ssl) != 1) {
        SSL_free(c->ssl);
        c->ssl = NULL;
        c->dead = true;
        c->reason = "tls handshake failed";
        return -1;
    }
    if (c->trans[T_READS] >= 0)
        dprintf(c->trans[T_READS], "tls\n");
    return 0;
}

/* ---- transactions ------------------------------------------------------------------- */

static void
sink_tx_reset(struct sink_tx *tx)
{
    free(tx->from);
    for (int i = 0; i < tx->nrcpt; i++)
        free(tx->rcpt[i]);
    free(tx->rcpt);
    if (tx->cap > (1u << 20)) { /* do not keep a big message's buffer for the next one */
        free(tx->msg);
        tx->msg = NULL;
        tx->cap = 0;
    }
    *tx = (struct sink_tx){ .msg = tx->msg, .cap = tx->cap };
}

/* Past max_size octets are counted, not kept: the end of data then answers 552. */
static void
sink_msg_put(struct sink_conn *c, const void *p, size_t n)
{
    struct sink_tx *tx = &c->tx;

    tx->total += n;
    if (tx->total > c->cfg->max_size)
        return;
    if (tx->len + n > tx->cap) {
        size_t cap = tx->cap ? tx->cap : 64 * 1024;
        while (cap < tx->len + n)
            cap *= 2;
        char *m = realloc(tx->msg, cap);
        if (!m) {
            tx->total = (uint64_t)c->cfg->max_size + 1; /* answered like an oversize message */
            return;
        }
        tx->msg = m;
        tx->cap = cap;
    }
    memcpy(tx->msg + tx->len, p, n);
    tx->len += n;
}

/* The reply a complete message gets: NULL to accept it, "" to close without a reply. */
static const char *
sink_verdict(const struct sink_config *cfg, const struct sink_tx *tx)
{
    if (tx->total > cfg->max_size)
        return "552 5.3.4 Message size exceeds fixed maximum message size";
    if (tx->bare)
        return "550 5.6.0 Bare CR or LF in message content";
    if (sink_match_any(&cfg->drop_data, tx->msg, tx->len))
        return "";
    if (sink_match_any(&cfg->reject_data, tx->msg, tx->len))
        return "554 5.6.0 Message content rejected";
    if (sink_match_any(&cfg->tempfail_data, tx->msg, tx->len))
        return "451 4.3.0 Message content temporarily rejected";
    return NULL;
}

/* End of DATA or of BDAT LAST: decide, store, reply, log, and reset the transaction. */
static void
sink_end_of_data(struct sink_conn *c)
{
    const struct sink_config *cfg = c->cfg;
    const char               *verdict;
    char                      name[256], file[300];

    c->msgs++;
    c->mode = MODE_CMD;
    if (cfg->delay_ms) {
        struct timespec d = { (time_t)(cfg->delay_ms / 1000),
                              (long)(cfg->delay_ms % 1000) * 1000000 };
        while (nanosleep(&d, &d) < 0 && errno == EINTR)
            ;
    }
    verdict = sink_verdict(cfg, &c->tx);
    if (verdict && !*verdict) {
        sink_log_tx(c, "sink.drop", NULL, 0);
        sink_flush(c); /* replies to earlier pipelined commands still go out */
        c->dead = true; /* no more writes, not even a TLS close_notify: the upstream died */
        c->reason = "dropped at end of data";
        return;
    }
    if (!verdict && !cfg->maildir)
        snprintf(name, sizeof(name), "discarded.S%lluN%u", (unsigned long long)c->id, c->msgs);
    else if (!verdict && cmd_sink_store(cfg, c->tx.msg, c->tx.len, c->id, c->msgs, name,
                                        sizeof(name)) < 0)
        verdict = "451 4.3.0 Local error in processing";
    if (verdict) {
        sink_reply(c, "%s", verdict);
        sink_log_tx(c, "sink.reject", NULL, atoi(verdict));
    } else {
        sink_reply(c, "250 2.0.0 Ok: queued as %s", name);
        snprintf(file, sizeof(file), "new/%s", name);
        sink_log_tx(c, "sink.message", cfg->maildir ? file : NULL, 0);
    }
    sink_tx_reset(&c->tx);
}

/* ---- DATA and BDAT decoding ---------------------------------------------------------- */

/* RFC 5321 4.5.2: a leading '.' is removed; CRLF.CRLF ends the data. Only CRLF ends a line,
 * so a bare LF can never end the data (no smuggling); a bare CR or LF rejects the message. */
static void
sink_data_feed(struct sink_conn *c)
{
    const char *p = c->in + c->in_start, *end = c->in + c->in_end;

    while (p < end) {
        char ch = *p++;

        if (c->ds == DS_BOL && ch == '.') {
            c->ds = DS_DOT;
            continue;
        }
        if (c->ds == DS_DOT && ch == '\r') {
            c->ds = DS_DOTCR;
            continue;
        }
        if (c->ds == DS_DOTCR && ch == '\n') {
            c->in_start = (size_t)(p - c->in);
            sink_end_of_data(c);
            return;
        }
        if ((c->ds == DS_CR || c->ds == DS_DOTCR) && ch == '\n') {
            sink_msg_put(c, "\r\n", 2);
            c->ds = DS_BOL;
            continue;
        }
        if (c->ds == DS_CR || c->ds == DS_DOTCR) {
            c->tx.bare = true;
            sink_msg_put(c, "\r", 1);
        }
        if (ch == '\r') {
            c->ds = DS_CR;
            continue;
        }
        const char *run = p - 1, *cr = memchr(p, '\r', (size_t)(end - p));
        p = cr ? cr : end;
        if (memchr(run, '\n', (size_t)(p - run)))
            c->tx.bare = true;
        sink_msg_put(c, run, (size_t)(p - run));
        c->ds = DS_MID;
    }
    c->in_start = c->in_end;
}

static void
sink_bdat_done(struct sink_conn *c)
{
    c->mode = MODE_CMD;
    if (c->bdat_err) {
        sink_reply(c, "%s", c->bdat_err);
    } else if (c->tx.total > c->cfg->max_size) {
        c->msgs++;
        sink_reply(c, "552 5.3.4 Message size exceeds fixed maximum message size");
        sink_log_tx(c, "sink.reject", NULL, 552);
        sink_tx_reset(&c->tx);
    } else if (c->bdat_last) {
        sink_end_of_data(c);
    } else {
        sink_reply(c, "250 2.0.0 %llu octets received", (unsigned long long)c->tx.total);
    }
}

static void
sink_bdat_feed(struct sink_conn *c)
{
    size_t n = c->in_end - c->in_start;

    if (n > c->bdat_left)
        n = (size_t)c->bdat_left;
    if (!c->bdat_err)
        sink_msg_put(c, c->in + c->in_start, n);
    c->in_start += n;
    c->bdat_left -= n;
    if (c->bdat_left == 0)
        sink_bdat_done(c);
}

/* ---- commands ------------------------------------------------------------------------ */

/* "<addr>[ params]" after "FROM:"/"TO:"; returns the address and the parameters. */
static int
sink_parse_path(char *arg, const char *prefix, char **addr, char **params)
{
    size_t plen = strlen(prefix);
    char  *gt;

    if (strncasecmp(arg, prefix, plen) != 0)
        return -1;
    arg += plen;
    while (*arg == ' ')
        arg++;
    if (*arg != '<' || !(gt = strchr(arg, '>')) || (gt[1] && gt[1] != ' '))
        return -1;
    *gt = '\0';
    *addr = arg + 1;
    *params = gt + 1;
    return 0;
}

static void
sink_cmd_helo(struct sink_conn *c, char *arg, bool ehlo)
{
    const struct sink_config *cfg = c->cfg;
    const char               *ext[10];
    int                       n = 0;
    char                      size[32];

    if (!*arg) {
        sink_reply(c, "501 5.5.4 Syntax: %s hostname", ehlo ? "EHLO" : "HELO");
        return;
    }
    sink_tx_reset(&c->tx);
    c->helo = ehlo ? 2 : 1;
    if (!ehlo) {
        sink_reply(c, "250 %s", cfg->host);
        return;
    }
    snprintf(size, sizeof(size), "SIZE %lu", cfg->max_size);
    ext[n++] = cfg->host;
    if (cfg->pipelining)
        ext[n++] = "PIPELINING";
    ext[n++] = "8BITMIME";
    ext[n++] = "SMTPUTF8";
    ext[n++] = size;
    ext[n++] = "ENHANCEDSTATUSCODES";
    if (cfg->chunking)
        ext[n++] = "CHUNKING";
    if (cfg->tls && !c->ssl)
        ext[n++] = "STARTTLS";
    if (cfg->auth_user && (c->ssl || !cfg->require_tls))
        ext[n++] = "AUTH PLAIN LOGIN";
    for (int i = 0; i < n; i++)
        sink_reply(c, "250%c%s", i + 1 < n ? '-' : ' ', ext[i]);
}

/* The order of MAIL's preconditions: TLS when required, a greeting, then AUTH. */
static bool
sink_may_mail(struct sink_conn *c)
{
    if (c->cfg->require_tls && !c->ssl)
        sink_reply(c, "530 5.7.0 Must issue a STARTTLS command first");
    else if (!c->helo)
        sink_reply(c, "503 5.5.1 Send EHLO or HELO first");
    else if (c->cfg->auth_user && !c->user)
        sink_reply(c, "530 5.7.0 Authentication required");
    else if (c->tx.from)
        sink_reply(c, "503 5.5.1 Nested MAIL command");
    else
        return true;
    return false;
}

/* RFC 1870 SIZE, RFC 6152 BODY, RFC 6531 SMTPUTF8, RFC 4954 AUTH; nothing else. */
static const char *
sink_mail_params(struct sink_conn *c, char *params)
{
    char         *save = NULL;
    unsigned long size;

    for (char *t = strtok_r(params, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
        char *val = strchr(t, '=');
        if (val)
            *val++ = '\0';
        if (!strcasecmp(t, "SIZE") && val) {
            if (cmd_sink_parse_num(val, ~0ul, &size) < 0)
                return "501 5.5.4 Bad SIZE parameter";
            if (size > c->cfg->max_size)
                return "552 5.3.4 Message size exceeds fixed maximum message size";
        } else if (!strcasecmp(t, "BODY") && val) {
            if (strcasecmp(val, "7BIT") && strcasecmp(val, "8BITMIME"))
                return "501 5.5.4 Unsupported BODY type";
        } else if (!strcasecmp(t, "SMTPUTF8") && !val) {
            c->tx.utf8 = true;
        } else if (strcasecmp(t, "AUTH") || !val) {
            return "555 5.5.4 Unsupported MAIL parameter";
        }
    }
    return NULL;
}

static void
sink_cmd_mail(struct sink_conn *c, char *arg)
{
    char       *addr, *params;
    const char *err;

    if (!sink_may_mail(c))
        return;
    if (sink_parse_path(arg, "FROM:", &addr, &params) < 0) {
        sink_reply(c, "501 5.5.4 Syntax: MAIL FROM:<address>");
        return;
    }
    c->tx.utf8 = false;
    if ((err = sink_mail_params(c, params))) {
        sink_reply(c, "%s", err);
        return;
    }
    if (sink_has_8bit(addr) && !c->tx.utf8) {
        sink_reply(c, "553 5.6.7 Non-ASCII address needs SMTPUTF8");
        return;
    }
    c->tx.from = strdup(addr);
    sink_reply(c, c->tx.from ? "250 2.1.0 Sender ok" : "451 4.3.0 Out of memory");
}

static void
sink_cmd_rcpt(struct sink_conn *c, char *arg)
{
    struct sink_tx *tx = &c->tx;
    char           *addr, *params;

    if (!tx->from || tx->bdat) {
        sink_reply(c, "503 5.5.1 Need MAIL before RCPT");
    } else if (sink_parse_path(arg, "TO:", &addr, &params) < 0 || !*addr) {
        sink_reply(c, "501 5.5.4 Syntax: RCPT TO:<address>");
    } else if (*params) {
        sink_reply(c, "555 5.5.4 Unsupported RCPT parameter");
    } else if (sink_has_8bit(addr) && !tx->utf8) {
        sink_reply(c, "553 5.6.7 Non-ASCII address needs SMTPUTF8");
    } else if (tx->nrcpt >= SINK_MAX_RCPT) {
        sink_reply(c, "452 4.5.3 Too many recipients");
    } else if (sink_match_any(&c->cfg->reject_rcpt, addr, strlen(addr))) {
        sink_reply(c, "550 5.1.1 Recipient rejected");
    } else if (sink_match_any(&c->cfg->tempfail_rcpt, addr, strlen(addr))) {
        sink_reply(c, "451 4.3.0 Recipient temporarily rejected");
    } else {
        if (!tx->rcpt && !(tx->rcpt = calloc(SINK_MAX_RCPT, sizeof(*tx->rcpt)))) {
            sink_reply(c, "451 4.3.0 Out of memory");
            return;
        }
        if (!(tx->rcpt[tx->nrcpt] = strdup(addr))) {
            sink_reply(c, "451 4.3.0 Out of memory");
            return;
        }
        tx->nrcpt++;
        sink_reply(c, "250 2.1.5 Recipient ok");
    }
}

static void
sink_cmd_data(struct sink_conn *c, char *arg)
{
    if (*arg) {
        sink_reply(c, "501 5.5.4 DATA takes no argument");
    } else if (!c->tx.from || c->tx.bdat) {
        sink_reply(c, "503 5.5.1 Need MAIL before DATA");
    } else if (c->tx.nrcpt == 0) {
        sink_reply(c, "554 5.5.1 No valid recipients");
    } else {
        sink_reply(c, "354 End data with <CR><LF>.<CR><LF>");
        c->mode = MODE_DATA;
        c->ds = DS_BOL;
    }
}

/* RFC 3030: the chunk's octets follow the line. They are consumed even when the command
 * is refused, so that they are never read as commands. */
static void
sink_cmd_bdat(struct sink_conn *c, char *arg)
{
    char         *sp = strchr(arg, ' ');
    unsigned long n;

    if (sp)
        *sp++ = '\0';
    if (cmd_sink_parse_num(arg, ~0ul, &n) < 0 || (sp && strcasecmp(sp, "LAST"))) {
        sink_reply(c, "501 5.5.4 Syntax: BDAT size [LAST]");
        return;
    }
    c->bdat_err = NULL;
    if (!c->cfg->chunking)
        c->bdat_err = "502 5.5.1 CHUNKING not offered";
    else if (!c->tx.from)
        c->bdat_err = "503 5.5.1 Need MAIL before BDAT";
    else if (c->tx.nrcpt == 0)
        c->bdat_err = "554 5.5.1 No valid recipients";
    c->tx.bdat = !c->bdat_err;
    c->bdat_left = n;
    c->bdat_last = sp != NULL;
    c->mode = MODE_BDAT;
    if (n == 0)
        sink_bdat_done(c);
}

/* RFC 3207: input pipelined behind STARTTLS is discarded, and the session starts over. */
static void
sink_cmd_starttls(struct sink_conn *c, char *arg)
{
    if (!c->cfg->tls) {
        sink_reply(c, "502 5.5.1 STARTTLS not offered");
        return;
    }
    if (c->ssl || *arg) {
        sink_reply(c, c->ssl ? "503 5.5.1 TLS already active" : "501 5.5.4 Syntax: STARTTLS");
        return;
    }
    sink_reply(c, "220 2.0.0 Ready to start TLS");
    if (c->cfg->inject)
        sink_reply(c, "250 injected"); /* same write as the 220, as an attacker would */
    sink_flush(c);
    c->in_start = c->in_end;
    if (c->dead || sink_tls_start(c) < 0)
        return;
    sink_tx_reset(&c->tx);
    c->helo = 0;
    free(c->user);
    c->user = NULL;
}

/* user and pass are one of the --auth USER:PASS pairs. */
static bool
sink_auth_known(const struct sink_config *cfg, const char *user, const char *pass)
{
    size_t ul = strlen(user);

    for (int i = 0; i < cfg->auth.n; i++)
        if (strncmp(cfg->auth.v[i], user, ul) == 0 && cfg->auth.v[i][ul] == ':' &&
            strcmp(cfg->auth.v[i] + ul + 1, pass) == 0)
            return true;
    return false;
}

static void
sink_auth_check(struct sink_conn *c, const char *user, const char *pass)
{
    c->mode = MODE_CMD;
    if (!sink_auth_known(c->cfg, user, pass)) {
        sink_reply(c, "535 5.7.8 Authentication credentials invalid");
    } else if (!(c->user = strdup(user))) {
        sink_reply(c, "454 4.7.0 Temporary authentication failure");
    } else {
        sink_reply(c, "235 2.7.0 Authentication successful");
    }
}

/* One base64 line of an AUTH exchange (initial response or reply to a 334). */
static void
sink_auth_step(struct sink_conn *c, const char *b64)
{
    unsigned char buf[SINK_LINE_MAX];
    size_t        len;

    if (!strcmp(b64, "*")) {
        c->mode = MODE_CMD;
        sink_reply(c, "501 5.0.0 Authentication cancelled");
        return;
    }
    if (strcmp(b64, "=") == 0)
        len = 0; /* RFC 4954: an empty initial response */
    else if (sink_b64_decode(b64, buf, &len) < 0
             || (c->mode != MODE_PLAIN && memchr(buf, '\0', len))) {
        c->mode = MODE_CMD;
        sink_reply(c, "501 5.5.2 Cannot decode response");
        return;
    }
    buf[len] = '\0';
    if (c->mode == MODE_USER) {
        memcpy(c->login_user, buf, len + 1);
        c->mode = MODE_PASS;
        sink_reply(c, "334 UGFzc3dvcmQ6"); /* "Password:" */
    } else if (c->mode == MODE_PASS) {
        sink_auth_check(c, c->login_user, (char *)buf);
    } else {
        /* RFC 4616: [authzid] NUL authcid NUL passwd; an authzid must name the authcid */
        char *authcid = memchr(buf, '\0', len), *pass;
        pass = authcid ? memchr(authcid + 1, '\0', len - (size_t)(authcid + 1 - (char *)buf))
                       : NULL;
        if (!pass || (authcid != (char *)buf && strcmp((char *)buf, authcid + 1))) {
            c->mode = MODE_CMD;
            sink_reply(c, "535 5.7.8 Authentication credentials invalid");
            return;
        }
        sink_auth_check(c, authcid + 1, pass + 1);
    }
}

static void
sink_cmd_auth(struct sink_conn *c, char *arg)
{
    char *ir = strchr(arg, ' ');

    if (ir)
        *ir++ = '\0';
    if (!c->cfg->auth_user || (c->cfg->require_tls && !c->ssl)) {
        sink_reply(c, c->cfg->auth_user ? "530 5.7.0 Must issue a STARTTLS command first"
                                       : "502 5.5.1 AUTH not offered");
    } else if (c->user || c->tx.from || !c->helo) {
        sink_reply(c, "503 5.5.1 AUTH not allowed now");
    } else if (!strcasecmp(arg, "PLAIN")) {
        c->mode = MODE_PLAIN;
        if (ir)
            sink_auth_step(c, ir);
        else
            sink_reply(c, "334 ");
    } else if (!strcasecmp(arg, "LOGIN")) {
        c->mode = MODE_USER;
        if (ir)
            sink_auth_step(c, ir);
        else
            sink_reply(c, "334 VXNlcm5hbWU6"); /* "Username:" */
    } else {
        sink_reply(c, "504 5.5.4 Unrecognized authentication type");
    }
}

/* ---- the session --------------------------------------------------------------------- */

static void
sink_command(struct sink_conn *c, char *line)
{
    char *arg = strchr(line, ' ');

    if (arg)
        *arg++ = '\0';
    else
        arg = line + strlen(line);
    if (!strcasecmp(line, "QUIT")) {
        sink_reply(c, "221 2.0.0 Bye");
        c->closing = true;
        c->reason = "quit";
    } else if (c->cfg->greeting != 220) {
        sink_reply(c, "503 5.5.1 No service here; send QUIT"); /* RFC 5321 3.1 */
    } else if (!strcasecmp(line, "EHLO") || !strcasecmp(line, "HELO")) {
        sink_cmd_helo(c, arg, line[0] == 'E' || line[0] == 'e');
    } else if (!strcasecmp(line, "MAIL")) {
        sink_cmd_mail(c, arg);
    } else if (!strcasecmp(line, "RCPT")) {
        sink_cmd_rcpt(c, arg);
    } else if (!strcasecmp(line, "DATA")) {
        sink_cmd_data(c, arg);
    } else if (!strcasecmp(line, "BDAT")) {
        sink_cmd_bdat(c, arg);
    } else if (!strcasecmp(line, "RSET")) {
        if (!*arg)
            sink_tx_reset(&c->tx);
        sink_reply(c, *arg ? "501 5.5.4 RSET takes no argument" : "250 2.0.0 Ok");
    } else if (!strcasecmp(line, "NOOP")) {
        sink_reply(c, "250 2.0.0 Ok");
    } else if (!strcasecmp(line, "STARTTLS")) {
        sink_cmd_starttls(c, arg);
    } else if (!strcasecmp(line, "AUTH")) {
        sink_cmd_auth(c, arg);
    } else if (!strcasecmp(line, "VRFY")) {
        sink_reply(c, "252 2.5.2 Cannot VRFY user");
    } else {
        sink_reply(c, "500 5.5.1 Command unrecognized");
    }
}

/* The next line without its CRLF into line[SINK_LINE_MAX]. Returns 1 with a line, 0 when
 * more input is needed, -1 after replying to a bad one. RFC 5321 2.3.8: only CRLF ends a
 * line; a bare CR or LF, or a NUL, makes the line a syntax error. */
static int
sink_get_line(struct sink_conn *c, char *line)
{
    size_t avail = c->in_end - c->in_start, len;
    char  *start = c->in + c->in_start;
    char  *lf = memchr(start, '\n', avail < SINK_LINE_MAX ? avail : SINK_LINE_MAX);

    if (!lf && avail < SINK_LINE_MAX)
        return 0;
    if (!lf) {
        c->in_start += SINK_LINE_MAX; /* MODE_SKIP drops the rest of the line */
        c->mode = MODE_SKIP;
        sink_reply(c, "500 5.5.2 Line too long");
        return -1;
    }
    len = (size_t)(lf - start);
    c->in_start += len + 1;
    if (len == 0 || start[len - 1] != '\r' || memchr(start, '\r', len - 1)
        || memchr(start, '\0', len)) {
        c->mode = MODE_CMD;
        sink_reply(c, "500 5.5.2 Bare CR or LF, or NUL, in command line");
        return -1;
    }
    memcpy(line, start, len - 1);
    line[len - 1] = '\0';
    return 1;
}

/* Consumes all complete input, replying into c->out. Returns when more input is needed. */
static void
sink_process(struct sink_conn *c)
{
    char line[SINK_LINE_MAX];

    while (!c->dead && !c->closing) {
        size_t avail = c->in_end - c->in_start;
        char  *lf;

        if (c->mode == MODE_DATA || c->mode == MODE_BDAT) {
            if (avail == 0)
                return;
            if (c->mode == MODE_DATA)
                sink_data_feed(c);
            else
                sink_bdat_feed(c);
        } else if (c->mode == MODE_SKIP) {
            lf = memchr(c->in + c->in_start, '\n', avail);
            c->in_start = lf ? (size_t)(lf + 1 - c->in) : c->in_end;
            if (!lf)
                return;
            c->mode = MODE_CMD;
        } else {
            int rc = sink_get_line(c, line);
            if (rc == 0)
                return;
            if (rc > 0 && c->mode == MODE_CMD)
                sink_command(c, line);
            else if (rc > 0)
                sink_auth_step(c, line);
        }
    }
}

static void
sink_greet(struct sink_conn *c)
{
    int code = c->cfg->greeting;

    if (code == 220) {
        sink_reply(c, "220 %s ESMTP sluice sink", c->cfg->host);
        return;
    }
    sink_reply(c, "%d %d.3.2 %s Service not available", code, code / 100, c->cfg->host);
    if (code == 421) {
        c->closing = true;
        c->reason = "refused at greeting";
    }
}

static void
sink_loop(struct sink_conn *c)
{
    while (!c->dead && !c->closing) {
        sink_process(c);
        if (c->dead || c->closing)
            break;
        sink_flush(c);
        enum sink_io rc = sink_fill(c);
        if (rc == IO_TIMEOUT) {
            sink_reply(c, "421 4.4.2 %s Idle timeout, closing", c->cfg->host);
            c->reason = "idle timeout";
            break;
        }
        if (rc != IO_OK) {
            c->reason = rc == IO_EOF ? "client closed" : "read error";
            c->dead = rc != IO_EOF;
            break;
        }
    }
    sink_flush(c);
}

static void
sink_transcript_open(struct sink_conn *c)
{
    static const char *const ext[T_COUNT] = { "in", "out", "reads" };
    char                     path[4096];

    for (int i = 0; i < T_COUNT; i++) {
        c->trans[i] = -1;
        if (!c->cfg->transcript)
            continue;
        snprintf(path, sizeof(path), "%s/conn-%llu.%s", c->cfg->transcript,
                 (unsigned long long)c->id, ext[i]);
        c->trans[i] = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (c->trans[i] < 0)
            fprintf(stderr, "sink: %s: %s\n", path, strerror(errno));
    }
}

void
cmd_sink_smtp_run(const struct sink_config *cfg, int fd, uint64_t session, const char *peer)
{
    struct sink_conn *c = calloc(1, sizeof(*c));
    struct timeval    idle = { SINK_IDLE_SECS, 0 };

    if (!c)
        return;
    c->cfg = cfg;
    c->fd = fd;
    c->id = session;
    c->peer = peer;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &idle, sizeof(idle));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &idle, sizeof(idle));
    sink_transcript_open(c);
    sink_log_conn(c, "sink.open");
    if (!cfg->implicit_tls || sink_tls_start(c) == 0) {
        sink_greet(c);
        sink_loop(c);
    }
    if (!c->reason)
        c->reason = "closed";
    sink_log_conn(c, "sink.close");
    if (c->ssl && !c->dead)
        SSL_shutdown(c->ssl); /* close_notify only; do not wait for the peer's */
    SSL_free(c->ssl);
    for (int i = 0; i < T_COUNT; i++)
        if (c->trans[i] >= 0)
            close(c->trans[i]);
    sink_tx_reset(&c->tx);
    free(c->tx.msg);
    free(c->user);
    free(c);
}
