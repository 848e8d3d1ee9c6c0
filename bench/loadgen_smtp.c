/* bench/loadgen_smtp.c: the SMTP client half of sluice-loadgen; see loadgen.h.
 * Sockets are non-blocking and every read and write waits in poll() with a deadline, so
 * no phase can hang the run. */
#include "loadgen.h"

const char *const fail_names[FAIL_COUNT] = {
    "none", "4xx", "5xx", "connect", "tls", "timeout", "closed", "protocol",
};

/* ---- connection I/O: every wait ends by its deadline ---- */

static enum fail
io_wait(int fd, short events, int64_t deadline)
{
    for (;;) {
        struct pollfd p = {.fd = fd, .events = events};
        int64_t       left = deadline - now_ns();
        int           n;

        if (left <= 0)
            return FAIL_TIMEOUT;
        n = poll(&p, 1, left > NS_PER_SEC ? 1000 : (int)((left + 999999) / 1000000));
        if (n > 0)
            return FAIL_NONE; /* errors and hangups surface in the next read or write */
        if (n < 0 && errno != EINTR)
            return FAIL_CLOSED;
    }
}

/* After an SSL call returned rc <= 0: FAIL_NONE means wait done, call it again. */
static enum fail
conn_ssl_wait(struct conn *c, int rc, int64_t deadline)
{
    switch (SSL_get_error(c->ssl, rc)) {
    case SSL_ERROR_WANT_READ:
        return io_wait(c->fd, POLLIN, deadline);
    case SSL_ERROR_WANT_WRITE:
        return io_wait(c->fd, POLLOUT, deadline);
    case SSL_ERROR_ZERO_RETURN:
    case SSL_ERROR_SYSCALL:
        return FAIL_CLOSED;
    default:
        return FAIL_TLS;
    }
}

static enum fail
conn_read_some(struct conn *c, int64_t deadline)
{
    for (;;) {
        size_t    room = LOADGEN_IN_MAX - c->in_len;
        ssize_t   n;
        enum fail f;

        if (c->ssl != NULL) {
            ERR_clear_error();
            n = SSL_read(c->ssl, c->in + c->in_len, (int)room);
            if (n > 0) {
                c->in_len += (size_t)n;
                return FAIL_NONE;
            }
            f = conn_ssl_wait(c, (int)n, deadline);
        } else {
            n = read(c->fd, c->in + c->in_len, room);
            if (n > 0) {
                c->in_len += (size_t)n;
                return FAIL_NONE;
            }
            if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
                return FAIL_CLOSED;
            f = io_wait(c->fd, POLLIN, deadline);
        }
        if (f != FAIL_NONE)
            return f;
    }
}

static enum fail
conn_write(struct conn *c, const char *buf, size_t len, int64_t deadline)
{
    while (len > 0) {
        ssize_t   n;
        enum fail f;

        if (c->ssl != NULL) {
            ERR_clear_error();
            n = SSL_write(c->ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
            if (n <= 0 && (f = conn_ssl_wait(c, (int)n, deadline)) != FAIL_NONE)
                return f;
        } else {
            n = send(c->fd, buf, len, MSG_NOSIGNAL);
            if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                return FAIL_CLOSED;
            if (n < 0 && (f = io_wait(c->fd, POLLOUT, deadline)) != FAIL_NONE)
                return f;
        }
        if (n > 0) {
            buf += n;
            len -= (size_t)n;
        }
    }
    return FAIL_NONE;
}

/* *line is NUL-terminated in place, without CRLF, valid until the next read. */
static enum fail
conn_read_line(struct conn *c, char **line, size_t *len, int64_t deadline)
{
    for (;;) {
        char     *start = c->in + c->in_off;
        char     *nl = memchr(start, '\n', c->in_len - c->in_off);
        enum fail f;

        if (nl != NULL) {
            size_t n = (size_t)(nl - start);

            if (n > 0 && start[n - 1] == '\r')
                n--;
            start[n] = '\0';
            *line = start;
            *len = n;
            c->in_off = (size_t)(nl + 1 - c->in);
            return FAIL_NONE;
        }
        memmove(c->in, start, c->in_len - c->in_off);
        c->in_len -= c->in_off;
        c->in_off = 0;
        if (c->in_len == LOADGEN_IN_MAX)
            return FAIL_PROTO;
        if ((f = conn_read_some(c, deadline)) != FAIL_NONE)
            return f;
    }
}

/* RFC 5321 4.2: "ddd-text" continues, "ddd text" or "ddd" ends; all lines the same code. */
static enum fail
conn_read_reply(struct conn *c, struct reply *r, int64_t deadline)
{
    r->code = 0;
    r->len = 0;
    r->text[0] = '\0';
    for (;;) {
        char     *line;
        size_t    n;
        int       code;
        enum fail f = conn_read_line(c, &line, &n, deadline);

        if (f != FAIL_NONE)
            return f;
        if (n < 3 || !isdigit((unsigned char)line[0]) || !isdigit((unsigned char)line[1]) ||
            !isdigit((unsigned char)line[2]) || (n > 3 && line[3] != ' ' && line[3] != '-'))
            return FAIL_PROTO;
        code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
        if (r->code != 0 && code != r->code)
            return FAIL_PROTO;
        r->code = code;
        if (n > 4 && r->len + (n - 4) + 2 < sizeof r->text) {
            memcpy(r->text + r->len, line + 4, n - 4);
            r->len += n - 4;
            r->text[r->len++] = '\n';
            r->text[r->len] = '\0';
        }
        if (n == 3 || line[3] == ' ')
            return FAIL_NONE;
    }
}

int
conn_init(struct conn *c)
{
    memset(c, 0, sizeof *c);
    c->fd = -1;
    c->in = malloc(LOADGEN_IN_MAX);
    return c->in != NULL ? 0 : -1;
}

/* clean: the session ended with QUIT/221, so send close_notify. Without it OpenSSL marks
 * the session not resumable. */
void
conn_close(struct conn *c, bool clean)
{
    if (c->ssl != NULL) {
        if (clean) {
            ERR_clear_error();
            SSL_shutdown(c->ssl);
        }
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->in_off = c->in_len = 0;
    c->caps = 0;
    c->sent = 0;
}

void
conn_cleanup(struct conn *c)
{
    if (c->in == NULL) /* never initialised: calloc'd fd 0 is not ours */
        return;
    conn_close(c, false);
    free(c->in);
    c->in = NULL;
}

/* ---- client helpers: deadlines, error notes, commands ---- */

static int64_t
client_deadline(const struct client *cl)
{
    int64_t d = now_ns() + secs_ns(cl->run->opt->timeout);
    int64_t end = atomic_load(&cl->run->hard_end);

    return d < end ? d : end;
}

/* Keeps the run's first error text for the summary; returns f. */
__attribute__((format(printf, 3, 4))) static enum fail
fail_note(struct client *cl, enum fail f, const char *fmt, ...)
{
    struct run *run = cl->run;
    va_list     ap;

    if (atomic_exchange(&run->noted, true))
        return f;
    va_start(ap, fmt);
    vsnprintf(run->first_error, sizeof run->first_error, fmt, ap);
    va_end(ap);
    return f;
}

bool
is_reply_fail(enum fail f)
{
    return f == FAIL_4XX || f == FAIL_5XX;
}

/* Reads one reply; want is the expected first digit. */
static enum fail
client_expect(struct client *cl, struct conn *c, struct reply *r, int want, const char *what)
{
    enum fail f = conn_read_reply(c, r, client_deadline(cl));

    if (f != FAIL_NONE)
        return fail_note(cl, f, "%s: %s", what, fail_names[f]);
    if (r->code / 100 == want)
        return FAIL_NONE;
    f = r->code / 100 == 4 ? FAIL_4XX : r->code / 100 == 5 ? FAIL_5XX : FAIL_PROTO;
    return fail_note(cl, f, "%s: %d %.*s", what, r->code, (int)strcspn(r->text, "\n"),
                     r->text);
}

static enum fail
client_write(struct client *cl, struct conn *c, const char *buf, size_t len, const char *what)
{
    enum fail f = conn_write(c, buf, len, client_deadline(cl));

    if (f != FAIL_NONE)
        return fail_note(cl, f, "%s: write: %s", what, fail_names[f]);
    return FAIL_NONE;
}

__attribute__((format(printf, 6, 7))) enum fail
client_cmd(struct client *cl, struct conn *c, struct reply *r, int want, const char *what,
           const char *fmt, ...)
{
    char      line[LOADGEN_CMD_MAX];
    va_list   ap;
    int       n;
    enum fail f;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof line - 2, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof line - 2)
        return fail_note(cl, FAIL_PROTO, "%s: command too long", what);
    memcpy(line + n, "\r\n", 2);
    if ((f = client_write(cl, c, line, (size_t)n + 2, what)) != FAIL_NONE)
        return f;
    return client_expect(cl, c, r, want, what);
}

/* Records one phase that began at t0, if this message counts; returns now. */
static int64_t
phase_done(struct client *cl, enum phase p, int64_t t0)
{
    int64_t t = now_ns();

    if (cl->measured) {
        cl->st.phase_ns[p] += t - t0;
        cl->st.phase_n[p]++;
    }
    return t;
}

/* ---- connection setup: TCP, TLS, greeting, EHLO, STARTTLS, AUTH ---- */

static enum fail
conn_tcp(struct client *cl, struct conn *c)
{
    struct run *run = cl->run;
    int         one = 1, err = 0;
    socklen_t   len = sizeof err;

    c->fd = socket(run->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return fail_note(cl, FAIL_CONNECT, "socket: %s", strerror(errno));
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (run->nbind > 0) {
        size_t i = atomic_fetch_add(&run->next_bind, 1) % run->nbind;

        /* many connections from one source: pick the port at connect(), not at bind() */
        setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (bind(c->fd, (struct sockaddr *)&run->bind[i], run->bindlen[i]) != 0)
            return fail_note(cl, FAIL_CONNECT, "bind: %s", strerror(errno));
    }
    if (connect(c->fd, (struct sockaddr *)&run->addr, run->addrlen) == 0)
        return FAIL_NONE;
    if (errno != EINPROGRESS)
        return fail_note(cl, FAIL_CONNECT, "connect: %s", strerror(errno));
    if (io_wait(c->fd, POLLOUT, client_deadline(cl)) != FAIL_NONE)
        return fail_note(cl, FAIL_CONNECT, "connect: timed out");
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0)
        return fail_note(cl, FAIL_CONNECT, "connect: %s", strerror(err));
    return FAIL_NONE;
}

static bool
is_ip_literal(const char *s)
{
    unsigned char buf[sizeof(struct in6_addr)];

    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

static enum fail
conn_tls(struct client *cl, struct conn *c)
{
    const struct options *o = cl->run->opt;
    const char           *name = o->servername != NULL ? o->servername : o->host;
    int64_t               deadline = client_deadline(cl);

    if ((c->ssl = SSL_new(cl->run->ssl_ctx)) == NULL || !SSL_set_fd(c->ssl, c->fd))
        return fail_note(cl, FAIL_TLS, "tls: SSL_new failed");
    if (!is_ip_literal(name))
        SSL_set_tlsext_host_name(c->ssl, name); /* RFC 6066 3: no SNI for an address */
    if ((SSL_CTX_get_verify_mode(cl->run->ssl_ctx) & SSL_VERIFY_PEER) &&
        !(is_ip_literal(name) ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), name)
                              : SSL_set1_host(c->ssl, name)))
        return fail_note(cl, FAIL_TLS, "tls: cannot set the name to verify");
    SSL_set_app_data(c->ssl, cl); /* for loadgen_keep_ticket_cb() */
    if (o->resume && cl->session != NULL) {
        SSL_set_session(c->ssl, cl->session); /* takes its own reference */
        if (SSL_SESSION_get_protocol_version(cl->session) == TLS1_3_VERSION) {
            SSL_SESSION_free(cl->session); /* RFC 8446 C.4: a 1.3 ticket once */
            cl->session = NULL;
        }
    }
    for (;;) {
        int       rc;
        enum fail f;

        ERR_clear_error();
        if ((rc = SSL_connect(c->ssl)) == 1)
            break;
        if ((f = conn_ssl_wait(c, rc, deadline)) == FAIL_TIMEOUT)
            return fail_note(cl, f, "tls: handshake timed out");
        if (f != FAIL_NONE)
            return fail_note(cl, FAIL_TLS, "tls: %s",
                             ERR_peek_last_error() != 0
                                 ? ERR_reason_error_string(ERR_peek_last_error())
                                 : "connection closed during handshake");
    }
    if (cl->measured) {
        cl->st.handshakes++;
        cl->st.resumed += SSL_session_reused(c->ssl) ? 1 : 0;
    }
    return FAIL_NONE;
}

static bool
is_keyword(const char *s, size_t n, const char *word)
{
    size_t wl = strlen(word);

    return n >= wl && strncasecmp(s, word, wl) == 0 && (n == wl || s[wl] == ' ');
}

/* RFC 5321 4.1.1.1: the first EHLO line is the domain, each further line one keyword. */
static unsigned
ehlo_caps(const char *text)
{
    unsigned caps = 0;

    for (const char *nl = strchr(text, '\n'); nl != NULL; nl = strchr(nl + 1, '\n')) {
        const char *line = nl + 1;
        size_t      n = strcspn(line, "\n");

        if (is_keyword(line, n, "PIPELINING"))
            caps |= CAP_PIPELINING;
        else if (is_keyword(line, n, "CHUNKING"))
            caps |= CAP_CHUNKING;
        else if (is_keyword(line, n, "STARTTLS"))
            caps |= CAP_STARTTLS;
        else if (is_keyword(line, n, "SIZE"))
            caps |= CAP_SIZE;
        else if (is_keyword(line, n, "AUTH")) {
            for (size_t i = 4; i < n; i++) {
                size_t wl = strcspn(line + i + 1, " \n");

                caps |= is_keyword(line + i + 1, wl, "PLAIN") ? CAP_AUTH_PLAIN : 0;
                caps |= is_keyword(line + i + 1, wl, "LOGIN") ? CAP_AUTH_LOGIN : 0;
                caps |= is_keyword(line + i + 1, wl, "XOAUTH2") ? CAP_AUTH_XOAUTH2 : 0;
                i += wl;
            }
        }
    }
    return caps;
}

static enum fail
client_ehlo(struct client *cl, struct conn *c, struct reply *r)
{
    enum fail f = client_cmd(cl, c, r, 2, "EHLO", "EHLO %s", cl->run->opt->ehlo);

    if (f == FAIL_NONE)
        c->caps = ehlo_caps(r->text);
    return f;
}

/* RFC 3207: STARTTLS, 220, handshake, and EHLO again; *t moves to the end. */
static enum fail
client_starttls(struct client *cl, struct conn *c, struct reply *r, int64_t *t)
{
    int64_t   t_cmd = *t, t_tls;
    enum fail f;

    if (!(c->caps & CAP_STARTTLS))
        return fail_note(cl, FAIL_PROTO, "EHLO: server does not offer STARTTLS");
    if ((f = client_cmd(cl, c, r, 2, "STARTTLS", "STARTTLS")) != FAIL_NONE)
        return f;
    if (c->in_off != c->in_len) /* CVE-2011-0411 style injection: drop it */
        return fail_note(cl, FAIL_PROTO, "STARTTLS: clear text after 220");
    t_tls = now_ns();
    if ((f = conn_tls(cl, c)) != FAIL_NONE)
        return f;
    *t = phase_done(cl, PHASE_TLS, t_tls);
    if ((f = client_ehlo(cl, c, r)) != FAIL_NONE)
        return f;
    if (cl->measured) {
        int64_t end = now_ns();

        cl->st.phase_ns[PHASE_STARTTLS] += (t_tls - t_cmd) + (end - *t);
        cl->st.phase_n[PHASE_STARTTLS]++;
        *t = end;
    }
    return FAIL_NONE;
}

/* out needs 4 * (len + 2) / 3 + 1 bytes. */
static void
base64(char *out, const void *in, size_t len)
{
    EVP_EncodeBlock((unsigned char *)out, in, (int)len);
}

/* RFC 4954 with PLAIN (RFC 4616), LOGIN, or XOAUTH2 (Google's SASL profile). */
static enum fail
client_auth(struct client *cl, struct conn *c, struct reply *r)
{
    const struct options *o = cl->run->opt;
    char                  raw[LOADGEN_CMD_MAX / 2], b64[LOADGEN_CMD_MAX - 64];
    int                   n;
    enum fail             f;
    static const unsigned need[] = {0, CAP_AUTH_PLAIN, CAP_AUTH_LOGIN, CAP_AUTH_XOAUTH2};

    if (!(c->caps & need[o->auth]))
        return fail_note(cl, FAIL_PROTO, "EHLO: server does not offer that AUTH mechanism");
    switch (o->auth) {
    case AUTH_PLAIN:
        n = snprintf(raw, sizeof raw, "%c%s%c%s", 0, o->user, 0, o->password);
        base64(b64, raw, (size_t)n);
        return client_cmd(cl, c, r, 2, "AUTH", "AUTH PLAIN %s", b64);
    case AUTH_LOGIN:
        if ((f = client_cmd(cl, c, r, 3, "AUTH", "AUTH LOGIN")) != FAIL_NONE)
            return f;
        base64(b64, o->user, strlen(o->user));
        if ((f = client_cmd(cl, c, r, 3, "AUTH", "%s", b64)) != FAIL_NONE)
            return f;
        base64(b64, o->password, strlen(o->password));
        return client_cmd(cl, c, r, 2, "AUTH", "%s", b64);
    case AUTH_XOAUTH2:
        n = snprintf(raw, sizeof raw, "user=%s\001auth=Bearer %s\001\001", o->user, o->token);
        base64(b64, raw, (size_t)n);
        f = client_cmd(cl, c, r, 2, "AUTH", "AUTH XOAUTH2 %s", b64);
        if (f == FAIL_PROTO && r->code == 334) /* error details; an empty line ends it */
            f = client_cmd(cl, c, r, 2, "AUTH", "%s", "");
        return f;
    default:
        return FAIL_NONE;
    }
}

/* --resume: OpenSSL hands over every session it could resume with: a TLS 1.3 ticket
 * when its NewSessionTicket is read (after the handshake, with the greeting or a reply), a
 * TLS 1.2 session when the handshake ends. The newest one is kept for the client's next
 * connection. A TLS 1.3 ticket is then used once, as RFC 8446 C.4 asks of clients (and as
 * browsers and OpenSSL's own client cache do): a server that issues no ticket on a resumed
 * handshake is resumed on every other connection only, and `tickets` shows it. A 1.2
 * session is reused for as long as the server resumes it (RFC 5077).
 * The SSL belongs to the client thread, apart from --idle's hold, when main() reads the
 * idle connections while their client threads wait for hold_over. */
int
loadgen_keep_ticket_cb(SSL *ssl, SSL_SESSION *s)
{
    struct client *cl = SSL_get_app_data(ssl);

    if (cl == NULL || !SSL_SESSION_is_resumable(s))
        return 0; /* not kept: OpenSSL frees it */
    SSL_SESSION_free(cl->session);
    cl->session = s;
    if (cl->measured)
        cl->st.tickets++;
    return 1; /* the reference is cl's now */
}

/* Opens c and takes it to where MAIL may be sent. On failure c is half open: close it. */
enum fail
client_open(struct client *cl, struct conn *c)
{
    const struct options *o = cl->run->opt;
    struct reply          r;
    int64_t               t = now_ns();
    enum fail             f;

    if ((f = conn_tcp(cl, c)) != FAIL_NONE)
        return f;
    t = phase_done(cl, PHASE_CONNECT, t);
    if (o->tls == TLS_IMPLICIT) {
        if ((f = conn_tls(cl, c)) != FAIL_NONE)
            return f;
        t = phase_done(cl, PHASE_TLS, t);
    }
    if ((f = client_expect(cl, c, &r, 2, "greeting")) != FAIL_NONE)
        return f;
    t = phase_done(cl, PHASE_GREETING, t);
    if ((f = client_ehlo(cl, c, &r)) != FAIL_NONE)
        return f;
    t = phase_done(cl, PHASE_EHLO, t);
    if (o->tls == TLS_STARTTLS && (f = client_starttls(cl, c, &r, &t)) != FAIL_NONE)
        return f;
    if (o->auth != AUTH_NONE) {
        if ((f = client_auth(cl, c, &r)) != FAIL_NONE)
            return f;
        phase_done(cl, PHASE_AUTH, t);
    }
    return FAIL_NONE;
}

void
client_quit(struct client *cl, struct conn *c)
{
    struct reply r;
    bool         ok = client_cmd(cl, c, &r, 2, "QUIT", "QUIT") == FAIL_NONE;

    cl->st.quit_ok += ok ? 1 : 0;
    conn_close(c, ok);
}

/* ---- the message ---- */

char *
body_lines_new(void)
{
    static const char set[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ,;:-";
    char             *b = malloc(LOADGEN_LINES * LOADGEN_LINE_LEN);
    uint32_t          x = 2463534242u;

    for (size_t i = 0; b != NULL && i < LOADGEN_LINES * LOADGEN_LINE_LEN; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        /* a letter first: never a leading '.' (no dot-stuffing needed) or space */
        b[i] = i % LOADGEN_LINE_LEN == 0 ? (char)('A' + x % 26) : set[x % (sizeof set - 1)];
    }
    return b;
}

/* Fills exactly want bytes with CRLF lines of at most 78 characters, or want - 1 when want
 * is 1 (a lone byte cannot be a line). */
static size_t
body_fill(char *out, size_t want, const char *lines)
{
    size_t done = 0;

    for (size_t i = 0; want - done >= 2; i++) {
        size_t left = want - done;
        size_t n = left - 2 > LOADGEN_LINE_LEN ? LOADGEN_LINE_LEN : left - 2;

        if (left - (n + 2) == 1) /* a lone byte would be left: shorten this line */
            n--;
        memcpy(out + done, lines + (i % LOADGEN_LINES) * LOADGEN_LINE_LEN, n);
        memcpy(out + done + n, "\r\n", 2);
        done += n + 2;
    }
    return done;
}

/* Writes the next message at cl->msg, followed by ".\r\n" for DATA; returns its length
 * without the terminator. --size counts headers and body; it is a floor of the header
 * size (about 300 bytes). */
static size_t
message_build(struct client *cl)
{
    const struct options *o = cl->run->opt;
    char                  date[64];
    struct tm             tm;
    time_t                now = time(NULL);
    int                   h;
    size_t                len;

    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm); /* RFC 5322 3.3 */
    cl->seq++;
    h = snprintf(cl->msg, LOADGEN_HDR_MAX,
                 "Date: %s\r\nFrom: <%s>\r\nTo: <%s>\r\n"
                 "Subject: sluice-loadgen client %u message %llu\r\n"
                 "Message-ID: <%016llx.%u.%llu@%s>\r\n"
                 "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n",
                 date, o->from, o->to[0], cl->id, (unsigned long long)cl->seq,
                 (unsigned long long)cl->run->run_id, cl->id, (unsigned long long)cl->seq,
                 cl->run->domain);
    len = (size_t)h;
    if (o->size > len)
        len += body_fill(cl->msg + len, o->size - len, cl->run->lines);
    memcpy(cl->msg + len, ".\r\n", 3);
    return len;
}

/* ---- one transaction ---- */

/* Formats MAIL, each RCPT, and DATA or BDAT into cl->cmd; cl->cmd_end[i] ends line i. */
static size_t
tx_commands(struct client *cl, const struct conn *c, size_t mlen, bool bdat)
{
    const struct options *o = cl->run->opt;
    size_t                cap = cl->run->cmd_max, n;
    char                  size[32] = "";

    if (c->caps & CAP_SIZE) /* RFC 1870 */
        snprintf(size, sizeof size, " SIZE=%zu", mlen);
    n = (size_t)snprintf(cl->cmd, cap, "MAIL FROM:<%s>%s%s\r\n", o->from, size,
                         o->dsn ? " RET=HDRS ENVID=bench+2B1" : "");
    cl->cmd_end[0] = n;
    for (size_t i = 0; i < o->nto; i++) {
        if (o->dsn) /* RFC 3461: the address is xtext as long as it has no '+' or '=' */
            n += (size_t)snprintf(cl->cmd + n, cap - n,
                                  "RCPT TO:<%s> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;%s\r\n",
                                  o->to[i], o->to[i]);
        else
            n += (size_t)snprintf(cl->cmd + n, cap - n, "RCPT TO:<%s>\r\n", o->to[i]);
        cl->cmd_end[i + 1] = n;
    }
    if (bdat) /* RFC 3030: the whole message as one chunk */
        n += (size_t)snprintf(cl->cmd + n, cap - n, "BDAT %zu LAST\r\n", mlen);
    else
        n += (size_t)snprintf(cl->cmd + n, cap - n, "DATA\r\n");
    cl->cmd_end[o->nto + 1] = n;
    return n;
}

/* A reply failure earlier in the transaction wins over a later one; a broken connection
 * wins over both. */
static enum fail
tx_merge(enum fail first, enum fail f)
{
    if (f != FAIL_NONE && !is_reply_fail(f))
        return f;
    return first != FAIL_NONE ? first : f;
}

static enum fail
tx_data_end(struct client *cl, struct conn *c, size_t mlen)
{
    struct reply r;
    enum fail    f = client_write(cl, c, cl->msg, mlen + 3, "DATA");

    return f != FAIL_NONE ? f : client_expect(cl, c, &r, 2, "end of data");
}

/* RFC 2920: all commands in one write, then the replies in order. With BDAT the chunk
 * goes in the same write. */
static enum fail
tx_pipelined(struct client *cl, struct conn *c, size_t mlen, bool bdat)
{
    size_t       n = tx_commands(cl, c, mlen, bdat);
    enum fail    f, first = FAIL_NONE;
    struct reply r;

    if (bdat) {
        memcpy(cl->msg - n, cl->cmd, n);
        f = client_write(cl, c, cl->msg - n, n + mlen, "MAIL");
    } else {
        f = client_write(cl, c, cl->cmd, n, "MAIL");
    }
    if (f != FAIL_NONE)
        return f;
    for (size_t i = 0; i <= cl->run->opt->nto; i++) {
        f = client_expect(cl, c, &r, 2, i == 0 ? "MAIL" : "RCPT");
        if (f != FAIL_NONE && !is_reply_fail(f))
            return f;
        first = tx_merge(first, f);
    }
    if (bdat)
        return tx_merge(first, client_expect(cl, c, &r, 2, "BDAT"));
    f = client_expect(cl, c, &r, 3, "DATA");
    if (f == FAIL_NONE) /* 354 despite a failure before: the server wants the data */
        f = tx_data_end(cl, c, mlen);
    return tx_merge(first, f);
}

/* One command, one reply; the first failure ends the transaction. */
static enum fail
tx_serial(struct client *cl, struct conn *c, size_t mlen, bool bdat)
{
    size_t       n = tx_commands(cl, c, mlen, bdat), prev = 0, i;
    enum fail    f;
    struct reply r;

    for (i = 0; i <= cl->run->opt->nto; prev = cl->cmd_end[i++]) {
        const char *what = i == 0 ? "MAIL" : "RCPT";

        if ((f = client_write(cl, c, cl->cmd + prev, cl->cmd_end[i] - prev, what)) != FAIL_NONE ||
            (f = client_expect(cl, c, &r, 2, what)) != FAIL_NONE)
            return f;
    }
    if (bdat) {
        memcpy(cl->msg - (n - prev), cl->cmd + prev, n - prev);
        if ((f = client_write(cl, c, cl->msg - (n - prev), n - prev + mlen, "BDAT")) != FAIL_NONE)
            return f;
        return client_expect(cl, c, &r, 2, "BDAT");
    }
    if ((f = client_write(cl, c, cl->cmd + prev, n - prev, "DATA")) != FAIL_NONE ||
        (f = client_expect(cl, c, &r, 3, "DATA")) != FAIL_NONE)
        return f;
    return tx_data_end(cl, c, mlen);
}

enum fail
client_transaction(struct client *cl, struct conn *c)
{
    const struct options *o = cl->run->opt;
    size_t                mlen = message_build(cl);
    bool                  bdat = o->bdat && (c->caps & CAP_CHUNKING);
    int64_t               t = now_ns();
    enum fail             f;

    if (o->pipelining && (c->caps & CAP_PIPELINING))
        f = tx_pipelined(cl, c, mlen, bdat);
    else
        f = tx_serial(cl, c, mlen, bdat);
    if (f == FAIL_NONE || is_reply_fail(f))
        phase_done(cl, PHASE_TX, t);
    return f;
}
