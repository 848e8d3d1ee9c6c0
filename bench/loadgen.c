/* bench/loadgen.c: sluice-loadgen, an SMTP submission load generator.
 *
 * Client threads run SMTP transactions against one server, each with its own connection,
 * and record every message's latency and the time spent in each phase; main() merges them
 * into one summary (a table on stderr, JSON on stdout). --idle opens many connections and
 * holds them, to measure server memory per idle connection.
 *
 * Sockets are non-blocking and every read and write waits in poll() with a deadline:
 * now + --timeout, never later than the run's hard end (--duration + --timeout, moved
 * earlier when the run stops), so no phase can hang the run.
 *
 * It knows nothing of sluice: any SMTP submission server will do. Starting the server and
 * sweeping parameters are left to bench/sweep.sh.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define NS_PER_SEC        1000000000LL
#define LOADGEN_IN_MAX    4096     /* reply input buffer; RFC 5321 4.5.3.1.5: lines <= 512 */
#define LOADGEN_CMD_MAX   8192     /* one command line, AUTH with a long XOAUTH2 token */
#define LOADGEN_SAMPLES   10000000 /* latency samples kept when only --duration bounds */
#define LOADGEN_LINE_LEN  78       /* body line before CRLF: RFC 5322 2.1.1 "SHOULD" */
#define LOADGEN_LINES     64       /* distinct body lines, cycled */
#define LOADGEN_HDR_MAX   2048     /* room for the generated header block */
#define LOADGEN_MAX_TO    1000
#define LOADGEN_MAX_BIND  64
#define LOADGEN_MAX_SIZE  (64u * 1024 * 1024)

enum tls_mode { TLS_NONE, TLS_IMPLICIT, TLS_STARTTLS };
enum auth_mode { AUTH_NONE, AUTH_PLAIN, AUTH_LOGIN, AUTH_XOAUTH2 };

/* How one message or connection attempt ended; everything but FAIL_4XX/5XX drops the
 * connection. */
enum fail {
    FAIL_NONE,
    FAIL_4XX,     /* transient reply: RSET and go on */
    FAIL_5XX,     /* permanent reply: RSET and go on */
    FAIL_CONNECT, /* socket, bind or TCP connect failed or timed out */
    FAIL_TLS,     /* handshake or record layer error */
    FAIL_TIMEOUT, /* no reply within --timeout */
    FAIL_CLOSED,  /* EOF or reset from the server */
    FAIL_PROTO,   /* malformed reply, unexpected code, missing capability */
    FAIL_COUNT,
};

static const char *const fail_names[FAIL_COUNT] = {
    "none", "4xx", "5xx", "connect", "tls", "timeout", "closed", "protocol",
};

enum phase {
    PHASE_CONNECT,  /* socket .. TCP established */
    PHASE_TLS,      /* TLS handshake, implicit or after STARTTLS */
    PHASE_GREETING, /* waiting for 220 */
    PHASE_EHLO,     /* first EHLO */
    PHASE_STARTTLS, /* STARTTLS command and reply plus the second EHLO, not the handshake */
    PHASE_AUTH,     /* AUTH exchange until 235 */
    PHASE_TX,       /* MAIL .. final reply to end of data, per message */
    PHASE_COUNT,
};

static const char *const phase_names[PHASE_COUNT] = {
    "connect", "tls", "greeting", "ehlo", "starttls", "auth", "transaction",
};

enum {
    CAP_PIPELINING = 1 << 0,
    CAP_CHUNKING = 1 << 1,
    CAP_STARTTLS = 1 << 2,
    CAP_SIZE = 1 << 3,
    CAP_AUTH_PLAIN = 1 << 4,
    CAP_AUTH_LOGIN = 1 << 5,
    CAP_AUTH_XOAUTH2 = 1 << 6,
};

/* Read-only once parsed; strings borrow argv. */
struct options {
    const char    *host;
    const char    *port;       /* NULL: 465 with implicit TLS, else 587 */
    const char    *servername; /* SNI and the name verified; NULL: host */
    const char    *cafile;
    const char    *ehlo;
    const char    *bind;       /* comma-separated source addresses, used in turn */
    const char    *user;
    const char    *password;
    const char    *token;
    const char    *from;
    const char    *to[LOADGEN_MAX_TO];
    size_t         nto;
    enum tls_mode  tls;
    enum auth_mode auth;
    size_t         size;
    unsigned       concurrency;
    uint64_t       messages;   /* 0: bounded by duration only */
    double         duration;   /* seconds; 0: bounded by messages only */
    double         warmup;
    double         timeout;
    uint64_t       per_conn;   /* 0: one connection per client for the whole run */
    unsigned       idle;
    bool           pipelining, bdat, resume, insecure, progress, json;
};

struct conn {
    int      fd;     /* -1 when closed */
    SSL     *ssl;    /* owns; NULL in clear text */
    char    *in;     /* owns; LOADGEN_IN_MAX bytes of reply input */
    size_t   in_off; /* next unread byte */
    size_t   in_len;
    unsigned caps;   /* CAP_* from the last EHLO */
    uint64_t sent;   /* transactions on this connection */
};

struct reply {
    int    code;
    size_t len;
    char   text[LOADGEN_IN_MAX]; /* text after "ddd-" of each line, '\n'-terminated */
};

/* Written only by its client thread; main() reads it after pthread_join. */
struct stats {
    uint64_t ok;
    uint64_t fail[FAIL_COUNT];
    int64_t  phase_ns[PHASE_COUNT];
    uint64_t phase_n[PHASE_COUNT];
    uint64_t handshakes;
    uint64_t resumed;
    uint64_t quit_ok; /* --idle: connections closed with 221 */
    int64_t  last;    /* when the last measured message ended; 0: none */
};

/* Shared by all threads. Plain fields are set before the threads start and then only read;
 * atomics are how threads talk to each other and to main(). */
struct run {
    const struct options   *opt;       /* borrows */
    SSL_CTX                *ssl_ctx;   /* owns; SSL_new from several threads is safe */
    struct sockaddr_storage addr;
    socklen_t               addrlen;
    struct sockaddr_storage bind[LOADGEN_MAX_BIND];
    socklen_t               bindlen[LOADGEN_MAX_BIND];
    size_t                  nbind;
    const char             *domain;    /* borrows opt->from: right side of Message-ID */
    char                   *lines;     /* owns; LOADGEN_LINES body lines of LOADGEN_LINE_LEN */
    uint64_t                run_id;    /* left part of every Message-ID */
    size_t                  cmd_max;   /* room for MAIL, all RCPTs and DATA/BDAT */
    size_t                  msg_max;   /* room for one message plus ".\r\n" */
    int64_t                 start;
    int64_t                 measure_start; /* start + warmup */
    _Atomic int64_t         hard_end;  /* no I/O waits past this; main moves it on stop */
    atomic_uint_fast64_t    issued;    /* measured messages begun, for --messages */
    atomic_uint_fast64_t    ok;        /* live counters for --progress */
    atomic_uint_fast64_t    failed;
    atomic_uint             running;   /* client threads in their main loop or setup */
    atomic_bool             hold_over; /* --idle: main is done holding; QUIT now */
    atomic_uint_fast64_t    next_bind;
    uint32_t               *samples;   /* owns; microseconds, filled through nsamples */
    atomic_size_t           nsamples;  /* may pass cap: samples past cap are dropped */
    size_t                  cap;
    atomic_bool             noted;     /* first_error is claimed by one thread, once */
    char                    first_error[256];
    struct conn            *idle;      /* owns; --idle connections, client i has i + k*C */
};

struct client {
    struct run  *run;     /* borrows */
    unsigned     id;
    pthread_t    thread;
    struct conn  conn;    /* the load connection; unused with --idle */
    SSL_SESSION *session; /* owns; the last resumable session, --resume */
    char        *cmd;     /* owns; cmd_max bytes of MAIL/RCPT/DATA commands */
    size_t      *cmd_end; /* owns; cmd_end[i] is the end of command line i */
    char        *buf;     /* owns; cmd_max bytes of room, then the message */
    char        *msg;     /* borrows buf + cmd_max, so a command can be put in front */
    uint64_t     seq;
    bool         measured; /* the current message is past warmup */
    struct stats st;
};

/* Set by SIGINT/SIGTERM and by main() when --duration is up; clients finish the message in
 * flight and stop. */
static atomic_int stop_flag;

static void
on_signal(int sig)
{
    (void)sig;
    atomic_store(&stop_flag, 1);
}

static int64_t
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * NS_PER_SEC + ts.tv_nsec;
}

static int64_t
secs_ns(double secs)
{
    return (int64_t)(secs * 1e9);
}

static void
sleep_ns(int64_t ns)
{
    struct timespec ts = {.tv_sec = ns / NS_PER_SEC, .tv_nsec = ns % NS_PER_SEC};

    nanosleep(&ts, NULL);
}

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

static int
conn_init(struct conn *c)
{
    memset(c, 0, sizeof *c);
    c->fd = -1;
    c->in = malloc(LOADGEN_IN_MAX);
    return c->in != NULL ? 0 : -1;
}

/* clean: the session ended with QUIT/221, so send close_notify. Without it OpenSSL marks
 * the session not resumable. */
static void
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

static void
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

static bool
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

__attribute__((format(printf, 6, 7))) static enum fail
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
    if (o->resume && cl->session != NULL)
        SSL_set_session(c->ssl, cl->session);
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

/* Keeps the newest resumable session; TLS 1.3 tickets arrive after the handshake and are
 * taken in by the SSL_read of the greeting or EHLO reply. */
static void
client_keep_session(struct client *cl, struct conn *c)
{
    SSL_SESSION *s = SSL_get1_session(c->ssl);

    if (s == NULL || !SSL_SESSION_is_resumable(s)) {
        SSL_SESSION_free(s);
        return;
    }
    SSL_SESSION_free(cl->session);
    cl->session = s;
}

/* Opens c and takes it to where MAIL may be sent. On failure c is half open: close it. */
static enum fail
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
    if (o->resume && c->ssl != NULL)
        client_keep_session(cl, c);
    return FAIL_NONE;
}

static void
client_quit(struct client *cl, struct conn *c)
{
    struct reply r;
    bool         ok = client_cmd(cl, c, &r, 2, "QUIT", "QUIT") == FAIL_NONE;

    cl->st.quit_ok += ok ? 1 : 0;
    conn_close(c, ok);
}

/* ---- the message ---- */

static char *
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
    n = (size_t)snprintf(cl->cmd, cap, "MAIL FROM:<%s>%s\r\n", o->from, size);
    cl->cmd_end[0] = n;
    for (size_t i = 0; i < o->nto; i++) {
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

static enum fail
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

/* ---- the load loop ---- */

/* Decides whether to begin another message and whether it counts. */
static bool
client_next(struct client *cl)
{
    struct run *run = cl->run;

    if (atomic_load(&stop_flag))
        return false;
    cl->measured = now_ns() >= run->measure_start;
    if (!cl->measured || run->opt->messages == 0)
        return true;
    return atomic_fetch_add(&run->issued, 1) < run->opt->messages;
}

static void
client_count(struct client *cl, enum fail f, int64_t t0)
{
    struct run *run = cl->run;
    int64_t     t = now_ns();

    if (!cl->measured)
        return;
    if (f == FAIL_NONE) {
        size_t  i = atomic_fetch_add(&run->nsamples, 1);
        int64_t us = (t - t0) / 1000;

        if (i < run->cap)
            run->samples[i] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
        cl->st.ok++;
        atomic_fetch_add(&run->ok, 1);
    } else {
        cl->st.fail[f]++;
        atomic_fetch_add(&run->failed, 1);
    }
    cl->st.last = t;
}

static void *
client_main(void *arg)
{
    struct client        *cl = arg;
    const struct options *o = cl->run->opt;
    struct conn          *c = &cl->conn;

    while (client_next(cl)) {
        int64_t      t0 = now_ns();
        enum fail    f = FAIL_NONE;
        struct reply r;

        if (c->fd < 0 && (f = client_open(cl, c)) != FAIL_NONE) {
            conn_close(c, false);
            client_count(cl, f, t0);
            sleep_ns(NS_PER_SEC / 20); /* a refusing server must not spin us */
            continue;
        }
        if (o->per_conn != 1)
            t0 = now_ns();
        f = client_transaction(cl, c);
        c->sent++;
        client_count(cl, f, t0);
        if (is_reply_fail(f) && client_cmd(cl, c, &r, 2, "RSET", "RSET") != FAIL_NONE)
            conn_close(c, false);
        else if (f != FAIL_NONE && !is_reply_fail(f))
            conn_close(c, false);
        if (c->fd >= 0 && o->per_conn != 0 && c->sent >= o->per_conn)
            client_quit(cl, c);
    }
    if (c->fd >= 0)
        client_quit(cl, c);
    atomic_fetch_sub(&cl->run->running, 1);
    return NULL;
}

/* ---- --idle: open, hold, QUIT ---- */

/* Client i opens connections i, i + C, i + 2C, ...; waits for main() to hold them; QUITs. */
static void *
idle_main(void *arg)
{
    struct client *cl = arg;
    struct run    *run = cl->run;
    unsigned       n = run->opt->idle, step = run->opt->concurrency;

    cl->measured = true;
    for (unsigned i = cl->id; i < n && !atomic_load(&stop_flag); i += step) {
        int64_t   t0 = now_ns();
        enum fail f = client_open(cl, &run->idle[i]);

        if (f != FAIL_NONE)
            conn_close(&run->idle[i], false);
        client_count(cl, f, t0);
    }
    atomic_fetch_sub(&run->running, 1);
    while (!atomic_load(&run->hold_over))
        sleep_ns(NS_PER_SEC / 50);
    for (unsigned i = cl->id; i < n; i += step)
        if (run->idle[i].fd >= 0)
            client_quit(cl, &run->idle[i]);
    return NULL;
}

/* An idle connection is readable only when the server closed it or said something
 * (421); a TLS 1.3 ticket is read and ignored. */
static bool
idle_is_alive(struct conn *c)
{
    char    buf[512];
    ssize_t n;

    if (c->ssl != NULL) {
        ERR_clear_error();
        n = SSL_read(c->ssl, buf, sizeof buf);
        return n <= 0 && SSL_get_error(c->ssl, (int)n) == SSL_ERROR_WANT_READ;
    }
    n = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

/* Holds every open connection until hold_end or a signal; returns how many the server
 * dropped meanwhile. */
static uint64_t
idle_hold(struct run *run, int64_t hold_end)
{
    unsigned       n = run->opt->idle;
    struct pollfd *p = calloc(n, sizeof *p);
    uint64_t       dropped = 0, open = 0;
    int64_t        tick = now_ns() + NS_PER_SEC;

    for (unsigned i = 0; p != NULL && i < n; i++) {
        p[i].fd = run->idle[i].fd; /* poll skips the -1 of failed ones */
        p[i].events = POLLIN;
        open += p[i].fd >= 0;
    }
    while (p != NULL && !atomic_load(&stop_flag) && now_ns() < hold_end) {
        int64_t left = hold_end - now_ns();

        if (poll(p, n, left > NS_PER_SEC ? 1000 : (int)(left / 1000000) + 1) > 0) {
            for (unsigned i = 0; i < n; i++) {
                if (p[i].revents == 0 || idle_is_alive(&run->idle[i]))
                    continue;
                conn_close(&run->idle[i], false);
                p[i].fd = -1;
                dropped++;
            }
        }
        if (run->opt->progress && now_ns() >= tick) {
            fprintf(stderr, "[idle] holding: %llu open, %llu dropped\n",
                    (unsigned long long)(open - dropped), (unsigned long long)dropped);
            tick += NS_PER_SEC;
        }
    }
    free(p);
    return dropped;
}

/* ---- options ---- */

static void
usage(FILE *f)
{
    fputs("usage: sluice-loadgen [options]  (--messages N and/or --duration S required)\n"
          "  --host H              server address (127.0.0.1)\n"
          "  --port P              server port (465 with --tls implicit, else 587)\n"
          "  --tls MODE            none|implicit|starttls (none)\n"
          "  --auth MECH           none|plain|login|xoauth2 (none)\n"
          "  --user U --password P --token T   credentials; --token for xoauth2\n"
          "  --from ADDR --to ADDR sender; recipients, repeatable (one default each)\n"
          "  --size BYTES          message size with headers (2048)\n"
          "  --concurrency N, -c   client threads (1)\n"
          "  --messages N, -n      measured messages in all\n"
          "  --duration S, -d      measured seconds; --idle: how long to hold\n"
          "  --warmup S            run unmeasured for S seconds first (0)\n"
          "  --per-conn M          messages per connection; 0 = reuse one (0)\n"
          "  --pipelining          RFC 2920 when the server offers it\n"
          "  --bdat                RFC 3030 BDAT when the server offers CHUNKING\n"
          "  --resume              resume TLS sessions across a client's connections\n"
          "  --cafile F            verify the server certificate against F\n"
          "  --insecure            do not verify, and say nothing about it\n"
          "  --servername N        SNI and verified name (--host)\n"
          "  --ehlo NAME           EHLO argument (loadgen.localhost)\n"
          "  --bind A[,A...]       source addresses, used in turn\n"
          "  --timeout S           per read/write/connect (30)\n"
          "  --idle N              open N connections, hold --duration, QUIT\n"
          "  --progress            one line per second on stderr\n"
          "  --json                summary as one JSON object on stdout\n",
          f);
}

static int
parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char              *end;
    unsigned long long v;

    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || *s == '-' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int
parse_secs(const char *s, double *out)
{
    char  *end;
    double v = strtod(s, &end);

    if (end == s || *end != '\0' || !(v >= 0 && v <= 1e6))
        return -1;
    *out = v;
    return 0;
}

static int
parse_enum(const char *s, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

enum {
    OPT_HOST = 256, OPT_PORT, OPT_TLS, OPT_AUTH, OPT_USER, OPT_PASSWORD, OPT_TOKEN, OPT_FROM,
    OPT_TO, OPT_SIZE, OPT_PER_CONN, OPT_PIPELINING, OPT_BDAT, OPT_RESUME, OPT_INSECURE,
    OPT_CAFILE, OPT_SERVERNAME, OPT_EHLO, OPT_BIND, OPT_PROGRESS, OPT_JSON, OPT_WARMUP,
    OPT_TIMEOUT, OPT_IDLE,
};

static const struct option long_options[] = {
    {"host", 1, NULL, OPT_HOST},         {"port", 1, NULL, OPT_PORT},
    {"tls", 1, NULL, OPT_TLS},           {"auth", 1, NULL, OPT_AUTH},
    {"user", 1, NULL, OPT_USER},         {"password", 1, NULL, OPT_PASSWORD},
    {"token", 1, NULL, OPT_TOKEN},       {"from", 1, NULL, OPT_FROM},
    {"to", 1, NULL, OPT_TO},             {"size", 1, NULL, OPT_SIZE},
    {"concurrency", 1, NULL, 'c'},       {"messages", 1, NULL, 'n'},
    {"duration", 1, NULL, 'd'},          {"per-conn", 1, NULL, OPT_PER_CONN},
    {"pipelining", 0, NULL, OPT_PIPELINING}, {"bdat", 0, NULL, OPT_BDAT},
    {"resume", 0, NULL, OPT_RESUME},     {"insecure", 0, NULL, OPT_INSECURE},
    {"cafile", 1, NULL, OPT_CAFILE},     {"servername", 1, NULL, OPT_SERVERNAME},
    {"ehlo", 1, NULL, OPT_EHLO},         {"bind", 1, NULL, OPT_BIND},
    {"progress", 0, NULL, OPT_PROGRESS}, {"json", 0, NULL, OPT_JSON},
    {"warmup", 1, NULL, OPT_WARMUP},     {"timeout", 1, NULL, OPT_TIMEOUT},
    {"idle", 1, NULL, OPT_IDLE},         {"help", 0, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* Options that take a number or a name; -1 on a bad value. */
static int
option_value(struct options *o, int opt, const char *arg)
{
    static const char *const tls_names[] = {"none", "implicit", "starttls"};
    static const char *const auth_names[] = {"none", "plain", "login", "xoauth2"};
    uint64_t                 v = 0;
    int                      rc = 0;

    switch (opt) {
    case OPT_TLS:
        if ((rc = parse_enum(arg, tls_names, 3)) >= 0)
            o->tls = (enum tls_mode)rc;
        break;
    case OPT_AUTH:
        if ((rc = parse_enum(arg, auth_names, 4)) >= 0)
            o->auth = (enum auth_mode)rc;
        break;
    case OPT_SIZE:
        rc = parse_u64(arg, 1, LOADGEN_MAX_SIZE, &v);
        o->size = (size_t)v;
        break;
    case 'c':
        rc = parse_u64(arg, 1, 4096, &v);
        o->concurrency = (unsigned)v;
        break;
    case 'n':
        rc = parse_u64(arg, 1, UINT32_MAX, &o->messages);
        break;
    case OPT_PER_CONN:
        rc = parse_u64(arg, 0, UINT64_MAX, &o->per_conn);
        break;
    case OPT_IDLE:
        rc = parse_u64(arg, 1, 1000000, &v);
        o->idle = (unsigned)v;
        break;
    case 'd':
        return parse_secs(arg, &o->duration);
    case OPT_WARMUP:
        return parse_secs(arg, &o->warmup);
    case OPT_TIMEOUT:
        return parse_secs(arg, &o->timeout);
    }
    return rc < 0 ? -1 : 0;
}

static int
option_set(struct options *o, int opt, const char *arg)
{
    switch (opt) {
    case OPT_HOST: o->host = arg; break;
    case OPT_PORT: o->port = arg; break;
    case OPT_USER: o->user = arg; break;
    case OPT_PASSWORD: o->password = arg; break;
    case OPT_TOKEN: o->token = arg; break;
    case OPT_FROM: o->from = arg; break;
    case OPT_CAFILE: o->cafile = arg; break;
    case OPT_SERVERNAME: o->servername = arg; break;
    case OPT_EHLO: o->ehlo = arg; break;
    case OPT_BIND: o->bind = arg; break;
    case OPT_PIPELINING: o->pipelining = true; break;
    case OPT_BDAT: o->bdat = true; break;
    case OPT_RESUME: o->resume = true; break;
    case OPT_INSECURE: o->insecure = true; break;
    case OPT_PROGRESS: o->progress = true; break;
    case OPT_JSON: o->json = true; break;
    case OPT_TO:
        if (o->nto == LOADGEN_MAX_TO)
            return -1;
        o->to[o->nto++] = arg;
        break;
    default:
        return option_value(o, opt, arg);
    }
    return 0;
}

static const char *
options_check(struct options *o)
{
    if (o->nto == 0)
        o->to[o->nto++] = "sink@example.test";
    if (o->port == NULL)
        o->port = o->tls == TLS_IMPLICIT ? "465" : "587";
    if (o->messages == 0 && o->duration <= 0)
        return "refusing to run unbounded: give --messages and/or --duration";
    if (o->idle > 0 && o->duration <= 0)
        return "--idle needs --duration (how long to hold the connections)";
    if (o->timeout <= 0)
        return "--timeout must be positive";
    if (o->auth != AUTH_NONE && o->user == NULL)
        return "--auth needs --user";
    if ((o->auth == AUTH_PLAIN || o->auth == AUTH_LOGIN) && o->password == NULL)
        return "--auth plain/login needs --password";
    if (o->auth == AUTH_XOAUTH2 && o->token == NULL)
        return "--auth xoauth2 needs --token";
    if (strlen(o->user ? o->user : "") + strlen(o->password ? o->password : "") > 1024 ||
        strlen(o->token ? o->token : "") > 3000)
        return "credentials too long";
    if (strlen(o->from) > 256 || strlen(o->ehlo) > 255)
        return "--from or --ehlo too long";
    for (size_t i = 0; i < o->nto; i++)
        if (strlen(o->to[i]) > 256)
            return "--to too long";
    return NULL;
}

static int
options_parse(struct options *o, int argc, char **argv)
{
    const char *err;
    int         opt, idx = -1;

    *o = (struct options){
        .host = "127.0.0.1", .ehlo = "loadgen.localhost", .from = "loadgen@example.test",
        .size = 2048, .concurrency = 1, .timeout = 30,
    };
    while ((opt = getopt_long(argc, argv, "c:n:d:h", long_options, &idx)) != -1) {
        if (opt == 'h') {
            usage(stdout);
            exit(0);
        }
        if (opt == '?' || option_set(o, opt, optarg) != 0) {
            if (opt != '?')
                fprintf(stderr, "sluice-loadgen: bad value for %s%s: %s\n", idx >= 0 ? "--" : "-",
                        idx >= 0 ? long_options[idx].name : (char[]){(char)opt, 0}, optarg);
            fputs("sluice-loadgen: --help lists the options\n", stderr);
            return -1;
        }
        idx = -1;
    }
    if (optind < argc || (err = options_check(o)) != NULL) {
        fprintf(stderr, "sluice-loadgen: %s\n", optind < argc ? "unexpected argument" : err);
        return -1;
    }
    return 0;
}

/* ---- run setup ---- */

static int
resolve(const char *host, const char *port, struct sockaddr_storage *ss, socklen_t *len)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
    int             rc = getaddrinfo(host, port, &hints, &ai);

    if (rc != 0) {
        fprintf(stderr, "sluice-loadgen: %s port %s: %s\n", host, port ? port : "0",
                gai_strerror(rc));
        return -1;
    }
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    *len = ai->ai_addrlen;
    freeaddrinfo(ai);
    return 0;
}

static int
run_binds(struct run *run, const char *list)
{
    char  *copy = strdup(list), *save = NULL;
    int    rc = 0;

    for (char *a = strtok_r(copy, ",", &save); a != NULL; a = strtok_r(NULL, ",", &save)) {
        if (run->nbind == LOADGEN_MAX_BIND ||
            resolve(a, NULL, &run->bind[run->nbind], &run->bindlen[run->nbind]) != 0) {
            rc = -1;
            break;
        }
        run->nbind++;
    }
    free(copy);
    return rc;
}

static int
raise_nofile(rlim_t need)
{
    struct rlimit rl;

    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur >= need)
        return 0;
    rl.rlim_cur = need;
    if (rl.rlim_max < need)
        rl.rlim_max = need; /* works as root */
    if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
        return 0;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur >= need)
        return 0;
    fprintf(stderr, "sluice-loadgen: need %llu file descriptors, RLIMIT_NOFILE allows %llu\n",
            (unsigned long long)need, (unsigned long long)rl.rlim_max);
    return -1;
}

static SSL_CTX *
ssl_ctx_new(const struct options *o)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    if (ctx == NULL)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    if (o->cafile != NULL && !o->insecure) {
        if (SSL_CTX_load_verify_locations(ctx, o->cafile, NULL) != 1) {
            fprintf(stderr, "sluice-loadgen: cannot load --cafile %s\n", o->cafile);
            SSL_CTX_free(ctx);
            return NULL;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    } else if (!o->insecure) {
        fputs("sluice-loadgen: note: no --cafile, server certificate not verified\n", stderr);
    }
    return ctx;
}

static int
run_init(struct run *run, const struct options *o)
{
    const char *at = strrchr(o->from, '@');
    size_t      need = o->idle > 0 ? o->idle : 0;

    run->opt = o;
    run->domain = at != NULL && at[1] != '\0' ? at + 1 : "localhost";
    run->run_id = ((uint64_t)time(NULL) << 20) ^ ((uint64_t)getpid() << 1) ^ (uint64_t)now_ns();
    run->cmd_max = 128 + strlen(o->from);
    for (size_t i = 0; i < o->nto; i++)
        run->cmd_max += strlen(o->to[i]) + 16;
    run->msg_max = o->size + LOADGEN_HDR_MAX + 3;
    run->cap = o->idle > 0 ? o->idle : o->messages > 0 ? o->messages : LOADGEN_SAMPLES;
    run->cap = run->cap < LOADGEN_SAMPLES ? run->cap : LOADGEN_SAMPLES;
    run->samples = malloc(run->cap * sizeof *run->samples);
    run->lines = body_lines_new();
    if (run->samples == NULL || run->lines == NULL)
        return -1;
    if (resolve(o->host, o->port, &run->addr, &run->addrlen) != 0)
        return -1;
    if (o->bind != NULL && run_binds(run, o->bind) != 0)
        return -1;
    if (raise_nofile((rlim_t)(need + o->concurrency + 64)) != 0)
        return -1;
    if (o->tls != TLS_NONE && (run->ssl_ctx = ssl_ctx_new(o)) == NULL)
        return -1;
    return 0;
}

static void
run_cleanup(struct run *run)
{
    for (unsigned i = 0; run->idle != NULL && i < run->opt->idle; i++)
        conn_cleanup(&run->idle[i]);
    free(run->idle);
    free(run->samples);
    free(run->lines);
    SSL_CTX_free(run->ssl_ctx);
}

static int
client_init(struct client *cl, struct run *run, unsigned id)
{
    memset(cl, 0, sizeof *cl);
    cl->run = run;
    cl->id = id;
    cl->cmd = malloc(run->cmd_max);
    cl->cmd_end = calloc(run->opt->nto + 2, sizeof *cl->cmd_end);
    cl->buf = malloc(run->cmd_max + run->msg_max);
    cl->msg = cl->buf + run->cmd_max;
    if (conn_init(&cl->conn) != 0 || cl->cmd == NULL || cl->cmd_end == NULL || cl->buf == NULL)
        return -1;
    return 0;
}

static void
client_cleanup(struct client *cl)
{
    conn_cleanup(&cl->conn);
    SSL_SESSION_free(cl->session);
    free(cl->cmd);
    free(cl->cmd_end);
    free(cl->buf);
}

/* ---- summary ---- */

static int
cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted microsecond samples, in ms; permille: 500 = p50. */
static double
percentile_ms(const uint32_t *s, size_t n, unsigned permille)
{
    size_t rank = (permille * n + 999) / 1000;

    if (n == 0)
        return 0;
    return s[rank == 0 ? 0 : rank - 1] / 1000.0;
}

struct summary {
    struct stats st;          /* all clients added up */
    uint64_t     failed;
    size_t       nsamples;    /* kept and sorted */
    size_t       dropped;     /* samples past the cap */
    double       elapsed;     /* measured seconds */
    double       pct[5];      /* p50, p90, p99, p99.9, max in ms */
    uint64_t     idle_dropped; /* --idle: dropped by the server while held */
    double       setup_secs;   /* --idle: time to open all */
    double       cpu_user;     /* this process's CPU seconds (getrusage), warmup included */
    double       cpu_sys;
};

static void
summary_fill(struct summary *sm, struct run *run, const struct client *cls, int64_t end)
{
    static const unsigned pcts[5] = {500, 900, 990, 999, 1000};
    size_t                taken = atomic_load(&run->nsamples);
    int64_t               last = 0;
    struct rusage         ru;

    for (unsigned i = 0; i < run->opt->concurrency; i++) {
        const struct stats *s = &cls[i].st;

        sm->st.ok += s->ok;
        for (int f = 0; f < FAIL_COUNT; f++) {
            sm->st.fail[f] += s->fail[f];
            sm->failed += s->fail[f];
        }
        for (int p = 0; p < PHASE_COUNT; p++) {
            sm->st.phase_ns[p] += s->phase_ns[p];
            sm->st.phase_n[p] += s->phase_n[p];
        }
        sm->st.handshakes += s->handshakes;
        sm->st.resumed += s->resumed;
        sm->st.quit_ok += s->quit_ok;
        last = s->last > last ? s->last : last;
    }
    sm->nsamples = taken < run->cap ? taken : run->cap;
    sm->dropped = taken - sm->nsamples;
    qsort(run->samples, sm->nsamples, sizeof *run->samples, cmp_u32);
    for (int i = 0; i < 5; i++)
        sm->pct[i] = percentile_ms(run->samples, sm->nsamples, pcts[i]);
    end = last > 0 ? last : end;
    sm->elapsed = end > run->measure_start ? (end - run->measure_start) / 1e9 : 0;
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        sm->cpu_user = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6;
        sm->cpu_sys = ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    }
}

static double
phase_mean_ms(const struct stats *st, int p)
{
    return st->phase_n[p] > 0 ? st->phase_ns[p] / 1e6 / st->phase_n[p] : 0;
}

static void
summary_print(const struct summary *sm, const struct run *run)
{
    const struct options *o = run->opt;
    const char           *tls[] = {"none", "implicit", "starttls"};
    const char           *auth[] = {"none", "plain", "login", "xoauth2"};

    fprintf(stderr, "\nsluice-loadgen %s:%s tls=%s auth=%s concurrency=%u per-conn=%llu "
            "size=%zu rcpts=%zu%s%s%s\n", o->host, o->port, tls[o->tls], auth[o->auth],
            o->concurrency, (unsigned long long)o->per_conn, o->size, o->nto,
            o->pipelining ? " pipelining" : "", o->bdat ? " bdat" : "",
            o->resume ? " resume" : "");
    if (o->idle > 0)
        fprintf(stderr, "  idle          %u requested, %llu opened in %.3f s, %llu dropped "
                "while held %.1f s, %llu closed with QUIT\n", o->idle,
                (unsigned long long)sm->st.ok, sm->setup_secs,
                (unsigned long long)sm->idle_dropped, o->duration,
                (unsigned long long)sm->st.quit_ok);
    else
        fprintf(stderr, "  messages      %llu ok, %llu failed\n  elapsed       %.3f s\n"
                "  throughput    %.1f msg/s\n", (unsigned long long)sm->st.ok,
                (unsigned long long)sm->failed, sm->elapsed,
                sm->elapsed > 0 ? sm->st.ok / sm->elapsed : 0);
    fprintf(stderr, "  failures     ");
    for (int f = 1; f < FAIL_COUNT; f++)
        fprintf(stderr, " %s %llu", fail_names[f], (unsigned long long)sm->st.fail[f]);
    fprintf(stderr, "\n  %s  p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  "
            "(%zu samples%s)\n", o->idle > 0 ? "setup ms   " : "latency ms  ", sm->pct[0],
            sm->pct[1], sm->pct[2], sm->pct[3], sm->pct[4], sm->nsamples,
            sm->dropped > 0 ? ", cap reached" : "");
    fprintf(stderr, "  phase         mean ms      count\n");
    for (int p = 0; p < PHASE_COUNT; p++)
        if (sm->st.phase_n[p] > 0)
            fprintf(stderr, "    %-11s %9.3f %10llu\n", phase_names[p],
                    phase_mean_ms(&sm->st, p), (unsigned long long)sm->st.phase_n[p]);
    if (o->tls != TLS_NONE)
        fprintf(stderr, "  tls           %llu handshakes, %llu resumed\n",
                (unsigned long long)sm->st.handshakes, (unsigned long long)sm->st.resumed);
    fprintf(stderr, "  cpu           %.3f s user, %.3f s system (this process, whole run)\n",
            sm->cpu_user, sm->cpu_sys);
    if (run->first_error[0] != '\0')
        fprintf(stderr, "  first error   %s\n", run->first_error);
}

static void
json_str(const char *s)
{
    putchar('"');
    for (; *s != '\0'; s++) {
        if (*s == '"' || *s == '\\')
            printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            printf("\\u%04x", (unsigned char)*s);
        else
            putchar(*s);
    }
    putchar('"');
}

static void
summary_json(const struct summary *sm, const struct run *run)
{
    const struct options *o = run->opt;
    const char           *tls[] = {"none", "implicit", "starttls"};
    const char           *auth[] = {"none", "plain", "login", "xoauth2"};

    printf("{\"mode\":\"%s\",\"host\":", o->idle > 0 ? "idle" : "load");
    json_str(o->host);
    printf(",\"port\":");
    json_str(o->port);
    printf(",\"tls\":\"%s\",\"auth\":\"%s\",\"concurrency\":%u,\"per_conn\":%llu,"
           "\"size\":%zu,\"rcpts\":%zu,\"pipelining\":%s,\"bdat\":%s,\"resume\":%s,",
           tls[o->tls], auth[o->auth], o->concurrency, (unsigned long long)o->per_conn,
           o->size, o->nto, o->pipelining ? "true" : "false", o->bdat ? "true" : "false",
           o->resume ? "true" : "false");
    if (o->idle > 0)
        printf("\"requested\":%u,\"open\":%llu,\"setup_s\":%.3f,\"held_s\":%.3f,"
               "\"dropped\":%llu,\"quit_ok\":%llu,", o->idle, (unsigned long long)sm->st.ok,
               sm->setup_secs, o->duration, (unsigned long long)sm->idle_dropped,
               (unsigned long long)sm->st.quit_ok);
    printf("\"ok\":%llu,\"failed\":%llu,\"failures\":{", (unsigned long long)sm->st.ok,
           (unsigned long long)sm->failed);
    for (int f = 1; f < FAIL_COUNT; f++)
        printf("%s\"%s\":%llu", f > 1 ? "," : "", fail_names[f],
               (unsigned long long)sm->st.fail[f]);
    printf("},\"elapsed_s\":%.3f,\"msg_per_s\":%.1f,\"latency_ms\":{\"p50\":%.3f,\"p90\":%.3f,"
           "\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f,\"samples\":%zu},\"phase_ms\":{",
           sm->elapsed, sm->elapsed > 0 ? sm->st.ok / sm->elapsed : 0, sm->pct[0], sm->pct[1],
           sm->pct[2], sm->pct[3], sm->pct[4], sm->nsamples);
    for (int p = 0; p < PHASE_COUNT; p++)
        printf("%s\"%s\":{\"mean\":%.3f,\"n\":%llu}", p > 0 ? "," : "", phase_names[p],
               phase_mean_ms(&sm->st, p), (unsigned long long)sm->st.phase_n[p]);
    printf("},\"tls_handshakes\":%llu,\"tls_resumed\":%llu,\"cpu_user_s\":%.3f,"
           "\"cpu_sys_s\":%.3f,\"first_error\":", (unsigned long long)sm->st.handshakes,
           (unsigned long long)sm->st.resumed, sm->cpu_user, sm->cpu_sys);
    json_str(run->first_error);
    printf("}\n");
}

/* ---- the two modes ---- */

/* Returns how many threads started; on a shortfall the stop flag ends those that did. */
static unsigned
clients_start(struct run *run, struct client *cls, void *(*fn)(void *))
{
    pthread_attr_t attr;
    unsigned       i;

    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    for (i = 0; i < run->opt->concurrency; i++) {
        atomic_fetch_add(&run->running, 1);
        if (client_init(&cls[i], run, i) != 0 ||
            pthread_create(&cls[i].thread, &attr, fn, &cls[i]) != 0) {
            atomic_fetch_sub(&run->running, 1);
            fprintf(stderr, "sluice-loadgen: cannot start client %u\n", i);
            atomic_store(&stop_flag, 1);
            break;
        }
    }
    pthread_attr_destroy(&attr);
    return i;
}

static void
progress_line(struct run *run, uint64_t *prev, int64_t now)
{
    uint64_t ok = atomic_load(&run->ok);

    if (run->opt->idle > 0)
        fprintf(stderr, "[idle %5.1fs] opening: %llu open, %llu failed\n",
                (now - run->start) / 1e9, (unsigned long long)ok,
                (unsigned long long)atomic_load(&run->failed));
    else if (now < run->measure_start)
        fprintf(stderr, "[warmup %5.1fs]\n", (now - run->start) / 1e9);
    else
        fprintf(stderr, "[%6.1fs] sent %llu  %llu msg/s  errors %llu\n",
                (now - run->measure_start) / 1e9, (unsigned long long)ok,
                (unsigned long long)(ok - *prev), (unsigned long long)atomic_load(&run->failed));
    *prev = ok;
}

/* Waits until the clients are done or until end; then stops them, and no I/O may wait
 * longer than --timeout from then on. Returns when that happened. */
static int64_t
run_wait(struct run *run, int64_t end)
{
    int64_t  tick = run->start + NS_PER_SEC, now, stopped = 0;
    uint64_t prev = 0;

    while (atomic_load(&run->running) > 0) {
        sleep_ns(NS_PER_SEC / 50);
        now = now_ns();
        if (stopped == 0 && (atomic_load(&stop_flag) || now >= end)) {
            atomic_store(&stop_flag, 1);
            stopped = now;
            if (now + secs_ns(run->opt->timeout) < atomic_load(&run->hard_end))
                atomic_store(&run->hard_end, now + secs_ns(run->opt->timeout));
        }
        if (run->opt->progress && now >= tick) {
            progress_line(run, &prev, now);
            tick += NS_PER_SEC;
        }
    }
    return stopped != 0 ? stopped : now_ns();
}

static int
run_load(struct run *run, struct client *cls)
{
    const struct options *o = run->opt;
    struct summary        sm = {0};
    int64_t               end;
    unsigned              started;

    run->start = now_ns();
    run->measure_start = run->start + secs_ns(o->warmup);
    end = o->duration > 0 ? run->measure_start + secs_ns(o->duration) : INT64_MAX;
    atomic_store(&run->hard_end, o->duration > 0 ? end + secs_ns(o->timeout) : INT64_MAX);
    started = clients_start(run, cls, client_main);
    end = run_wait(run, end);
    for (unsigned i = 0; i < started; i++)
        pthread_join(cls[i].thread, NULL);
    summary_fill(&sm, run, cls, end);
    summary_print(&sm, run);
    if (o->json)
        summary_json(&sm, run);
    return sm.failed == 0 && sm.st.ok > 0 ? 0 : 1;
}

static int
run_idle(struct run *run, struct client *cls)
{
    const struct options *o = run->opt;
    struct summary        sm = {0};
    int64_t               t;
    unsigned              started;

    if ((run->idle = calloc(o->idle, sizeof *run->idle)) == NULL)
        return 1;
    for (unsigned i = 0; i < o->idle; i++)
        if (conn_init(&run->idle[i]) != 0)
            return 1;
    run->start = run->measure_start = now_ns();
    atomic_store(&run->hard_end, run->start + secs_ns(o->duration + o->timeout));
    started = clients_start(run, cls, idle_main);
    t = run_wait(run, INT64_MAX);
    sm.setup_secs = (t - run->start) / 1e9;
    fprintf(stderr, "sluice-loadgen: %llu of %u connections open after %.3f s; holding "
            "%.1f s\n", (unsigned long long)atomic_load(&run->ok), o->idle, sm.setup_secs,
            o->duration);
    sm.idle_dropped = idle_hold(run, now_ns() + secs_ns(o->duration));
    atomic_store(&run->hard_end, now_ns() + secs_ns(o->timeout));
    atomic_store(&run->hold_over, true);
    for (unsigned i = 0; i < started; i++)
        pthread_join(cls[i].thread, NULL);
    summary_fill(&sm, run, cls, t);
    summary_print(&sm, run);
    if (o->json)
        summary_json(&sm, run);
    return sm.failed == 0 && sm.idle_dropped == 0 ? 0 : 1;
}

int
main(int argc, char **argv)
{
    struct options   o;
    struct run       run;
    struct client   *cls;
    struct sigaction sa = {.sa_handler = on_signal};
    int              rc = 2;

    memset(&run, 0, sizeof run);
    if (options_parse(&o, argc, argv) != 0)
        return 2;
    run.opt = &o;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    cls = calloc(o.concurrency, sizeof *cls);
    if (cls != NULL && run_init(&run, &o) == 0)
        rc = o.idle > 0 ? run_idle(&run, cls) : run_load(&run, cls);
    for (unsigned i = 0; cls != NULL && i < o.concurrency; i++)
        if (cls[i].run != NULL)
            client_cleanup(&cls[i]);
    free(cls);
    run_cleanup(&run);
    return rc;
}
