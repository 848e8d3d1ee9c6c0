/* tests/unit/test_upstream_pool.c: the upstream pool and client (core/relay/upstream_pool.c,
 * core/relay/upstream.c) against a real SMTP peer: a scripted server in a forked child on
 * 127.0.0.1 (ephemeral port) that answers from a script and records every byte it
 * received, read by read. The pool runs on a libev loop in the parent; each test
 * asserts the relay result and the exact bytes the upstream received. */
#include <arpa/inet.h>
#include <ev.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "config/config.h"
#include "fake_getaddrinfo.h"
#include "util/log.h"
#include "loopback.h"
#include "tmpdir.h"
#include "relay/relay_job.h"
#include "relay/upstream_pool.h"
#include "util/counter.h"

#define SRV_CONNS_MAX 8
#define SRV_READS_MAX 512
#define SRV_LIFETIME  60 /* seconds: a child left behind by a crashed parent exits */

static const char MSG[] = "Subject: t\r\n\r\nhello\r\n";

/* ---- the scripted server (runs in the child) ----
 * A script is one NULL-terminated list per connection, in accept order: the greeting,
 * then one reply per unit received (a command line; a whole DATA message up to
 * CRLF.CRLF; a BDAT command with its chunk). "<close>" at the end of a reply closes
 * after sending what comes before it; "<hold>" answers nothing from then on. After
 * the script, QUIT gets 221 and anything else 554. A 354 to DATA switches to message
 * mode; a 220 to STARTTLS starts TLS. */

struct srv_rec {
    char  *data; /* everything received (decrypted), in order */
    size_t len, cap;
    size_t reads[SRV_READS_MAX]; /* length of each read */
    size_t n_reads;
};

struct srv_conn {
    int                fd;
    SSL               *ssl;
    const char *const *script;
    size_t             step;
    char              *buf; /* received, not yet answered */
    size_t             len, cap;
    size_t             scanned; /* message mode: octets already searched for the end */
    bool               data_mode, hold, open;
    struct srv_rec    *rec;
};

struct srv {
    int                       lfd, ctl, out;
    SSL_CTX                  *tls;
    bool                      implicit;
    const char *const *const *scripts;
    size_t                    n_conns;
    struct srv_conn           conns[SRV_CONNS_MAX];
    struct srv_rec            recs[SRV_CONNS_MAX];
};

static void
grow_append(char **p, size_t *len, size_t *cap, const char *s, size_t n)
{
    if (*len + n > *cap) {
        *cap = (*len + n) * 2 + 4096;
        *p = realloc(*p, *cap);
        if (*p == NULL)
            abort();
    }
    memcpy(*p + *len, s, n);
    *len += n;
}

static void
srv_close(struct srv_conn *c)
{
    if (c->ssl != NULL) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    close(c->fd);
    c->open = false;
}

static void
srv_write(struct srv_conn *c, const char *s, size_t n)
{
    if (n == 0)
        return;
    if (c->ssl != NULL)
        SSL_write(c->ssl, s, (int)n);
    else if (write(c->fd, s, n) < 0)
        return; /* the client is gone: the test's assertions will say so */
}

/* Send one scripted reply, honouring <close> and <hold>. */
static void
srv_reply(struct srv_conn *c, const char *reply)
{
    const char *cl = strstr(reply, "<close>");
    const char *hd = strstr(reply, "<hold>");
    const char *end = cl != NULL ? cl : hd != NULL ? hd : reply + strlen(reply);

    srv_write(c, reply, (size_t)(end - reply));
    if (hd != NULL)
        c->hold = true;
    if (cl != NULL)
        srv_close(c);
}

static void
srv_tls_accept(struct srv *s, struct srv_conn *c)
{
    c->ssl = SSL_new(s->tls);
    SSL_set_fd(c->ssl, c->fd);
    if (SSL_accept(c->ssl) != 1) {
        ERR_clear_error();
        srv_close(c);
    }
}

/* Length of the next complete unit in c->buf, or 0. */
static size_t
srv_unit_len(struct srv_conn *c)
{
    const char *p;
    size_t      line, n, from = c->scanned > 4 ? c->scanned - 4 : 0;

    if (c->data_mode) {
        if (c->len >= 3 && memcmp(c->buf, ".\r\n", 3) == 0)
            return 3;
        p = memmem(c->buf + from, c->len - from, "\r\n.\r\n", 5);
        c->scanned = c->len; /* a big message is searched once, not once per read */
        return p != NULL ? (size_t)(p - c->buf) + 5 : 0;
    }
    p = memmem(c->buf, c->len, "\r\n", 2);
    if (p == NULL)
        return 0;
    line = (size_t)(p - c->buf) + 2;
    if (strncasecmp(c->buf, "BDAT ", 5) == 0) {
        n = strtoul(c->buf + 5, NULL, 10);
        return c->len >= line + n ? line + n : 0;
    }
    return line;
}

static void
srv_process(struct srv *s, struct srv_conn *c)
{
    size_t n;

    while (c->open && !c->hold && (n = srv_unit_len(c)) > 0) {
        bool        was_data = c->data_mode;
        bool        is_data = !was_data && n == 6 && strncasecmp(c->buf, "DATA\r\n", 6) == 0;
        bool        is_tls = !was_data && strncasecmp(c->buf, "STARTTLS\r\n", 10) == 0;
        bool        is_quit = !was_data && strncasecmp(c->buf, "QUIT\r\n", 6) == 0;
        const char *reply = c->script[c->step] != NULL ? c->script[c->step++]
                            : is_quit                  ? "221 bye\r\n<close>"
                                                       : "554 unscripted\r\n";

        memmove(c->buf, c->buf + n, c->len - n);
        c->len -= n;
        c->data_mode = false;
        c->scanned = 0;
        srv_reply(c, reply);
        if (!c->open)
            return;
        if (is_data && strncmp(reply, "354", 3) == 0)
            c->data_mode = true;
        if (is_tls && strncmp(reply, "220", 3) == 0) {
            c->len = 0; /* a client must not pipeline behind STARTTLS */
            srv_tls_accept(s, c);
        }
    }
}

static void
srv_accept(struct srv *s)
{
    int              fd = accept(s->lfd, NULL, NULL), one = 1;
    struct srv_conn *c;

    if (fd < 0 || s->n_conns >= SRV_CONNS_MAX || s->scripts[s->n_conns] == NULL) {
        if (fd >= 0)
            close(fd); /* unscripted connection: refuse it */
        return;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* a reply per write */
    c = &s->conns[s->n_conns];
    c->fd = fd;
    c->open = true;
    c->script = s->scripts[s->n_conns];
    c->rec = &s->recs[s->n_conns++];
    if (s->implicit)
        srv_tls_accept(s, c);
    if (c->open)
        srv_reply(c, c->script[c->step++]);
}

static void
srv_read(struct srv *s, struct srv_conn *c)
{
    char    chunk[65536];
    ssize_t n;

    do { /* drain what OpenSSL holds too: one record per SSL_read */
        n = c->ssl != NULL ? SSL_read(c->ssl, chunk, sizeof(chunk))
                           : read(c->fd, chunk, sizeof(chunk));
        if (n <= 0) {
            ERR_clear_error();
            srv_close(c);
            return;
        }
        grow_append(&c->rec->data, &c->rec->len, &c->rec->cap, chunk, (size_t)n);
        if (c->rec->n_reads < SRV_READS_MAX)
            c->rec->reads[c->rec->n_reads++] = (size_t)n;
        grow_append(&c->buf, &c->len, &c->cap, chunk, (size_t)n);
        srv_process(s, c);
    } while (c->open && c->ssl != NULL && SSL_pending(c->ssl) > 0);
}

static void
write_all(int fd, const void *p, size_t n)
{
    const char *q = p;

    while (n > 0) {
        ssize_t w = write(fd, q, n);

        if (w <= 0)
            return;
        q += w;
        n -= (size_t)w;
    }
}

/* Transcript: count, then per connection: length, bytes, read count, read lengths. */
static void
srv_dump(struct srv *s)
{
    size_t i;

    write_all(s->out, &s->n_conns, sizeof(s->n_conns));
    for (i = 0; i < s->n_conns; i++) {
        struct srv_rec *r = &s->recs[i];

        write_all(s->out, &r->len, sizeof(r->len));
        write_all(s->out, r->data, r->len);
        write_all(s->out, &r->n_reads, sizeof(r->n_reads));
        write_all(s->out, r->reads, r->n_reads * sizeof(r->reads[0]));
    }
}

/* Take in what the clients sent before the parent stopped us (a QUIT from
 * upstream_pool_free()), for up to 50 ms of silence. */
static void
srv_drain(struct srv *s)
{
    int rounds;

    for (rounds = 0; rounds < 100; rounds++) {
        struct pollfd pfd[SRV_CONNS_MAX];
        size_t        map[SRV_CONNS_MAX], n = 0, i;

        for (i = 0; i < s->n_conns; i++)
            if (s->conns[i].open) {
                map[n] = i;
                pfd[n++] = (struct pollfd){.fd = s->conns[i].fd, .events = POLLIN};
            }
        if (n == 0 || poll(pfd, n, 50) <= 0)
            return;
        for (i = 0; i < n; i++)
            if (pfd[i].revents != 0 && s->conns[map[i]].open)
                srv_read(s, &s->conns[map[i]]);
    }
}

static void
srv_run(struct srv *s)
{
    time_t end = time(NULL) + SRV_LIFETIME;

    while (time(NULL) < end) {
        struct pollfd pfd[SRV_CONNS_MAX + 2];
        size_t        map[SRV_CONNS_MAX], n = 2, i;

        pfd[0] = (struct pollfd){.fd = s->ctl, .events = POLLIN};
        pfd[1] = (struct pollfd){.fd = s->lfd, .events = POLLIN};
        for (i = 0; i < s->n_conns; i++)
            if (s->conns[i].open) {
                map[n - 2] = i;
                pfd[n++] = (struct pollfd){.fd = s->conns[i].fd, .events = POLLIN};
            }
        if (poll(pfd, n, 100) <= 0)
            continue;
        if (pfd[0].revents != 0) { /* the parent closed the control pipe */
            srv_drain(s);
            break;
        }
        if (pfd[1].revents & POLLIN)
            srv_accept(s);
        for (i = 2; i < n; i++)
            if (pfd[i].revents != 0 && s->conns[map[i - 2]].open)
                srv_read(s, &s->conns[map[i - 2]]);
    }
    srv_dump(s);
}

/* ---- the server as the parent sees it ---- */

struct rec {
    char  *data;
    size_t len;
    size_t reads[SRV_READS_MAX];
    size_t n_reads;
};

struct server {
    pid_t      pid;
    int        port;
    int        ctl, out;
    struct rec recs[SRV_CONNS_MAX];
    size_t     n_recs;
};

static int
listen_local(int *port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    socklen_t          sl = sizeof(sin);
    int                fd = socket(AF_INET, SOCK_STREAM, 0);

    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 || listen(fd, 16) != 0 ||
        getsockname(fd, (struct sockaddr *)&sin, &sl) != 0)
        abort();
    *port = ntohs(sin.sin_port);
    return fd;
}

/* A port on 127.0.0.1 where nothing listens: bound, then closed. */
static int
dead_port(void)
{
    int port, fd = listen_local(&port);

    close(fd);
    return port;
}

static bool
read_all(int fd, void *p, size_t n)
{
    char *q = p;

    while (n > 0) {
        ssize_t r = read(fd, q, n);

        if (r <= 0)
            return false;
        q += r;
        n -= (size_t)r;
    }
    return true;
}

static void
server_start(struct server *sv, const char *const *const *scripts, SSL_CTX *tls, bool implicit)
{
    int  ctl[2], out[2], lfd;
    char ready;

    memset(sv, 0, sizeof(*sv));
    lfd = listen_local(&sv->port);
    if (pipe(ctl) != 0 || pipe(out) != 0)
        abort();
    sv->pid = fork();
    if (sv->pid == 0) {
        static struct srv s; /* child only: too big for the stack */
        int               fd;

        /* Keep nothing of the parent's: another server's control pipe held open here
         * would keep that server from ever seeing its EOF. */
        for (fd = 3; fd < 1024; fd++)
            if (fd != lfd && fd != ctl[0] && fd != out[1])
                close(fd);
        write_all(out[1], "R", 1); /* running: the parent may start its clock */
        s.lfd = lfd;
        s.ctl = ctl[0];
        s.out = out[1];
        s.tls = tls;
        s.implicit = implicit;
        s.scripts = scripts;
        srv_run(&s);
        _exit(0);
    }
    close(lfd);
    close(ctl[0]);
    close(out[1]);
    sv->ctl = ctl[1];
    sv->out = out[0];
    if (!read_all(sv->out, &ready, 1))
        abort();
}

/* Stop the child and collect what every connection received. */
static void
server_stop(struct server *sv)
{
    size_t i, n = 0;

    close(sv->ctl);
    if (read_all(sv->out, &n, sizeof(n)))
        for (i = 0; i < n && i < SRV_CONNS_MAX; i++) {
            struct rec *r = &sv->recs[i];

            if (!read_all(sv->out, &r->len, sizeof(r->len)))
                break;
            r->data = calloc(1, r->len + 1);
            if (!read_all(sv->out, r->data, r->len) ||
                !read_all(sv->out, &r->n_reads, sizeof(r->n_reads)) ||
                !read_all(sv->out, r->reads, r->n_reads * sizeof(r->reads[0])))
                break;
            sv->n_recs++;
        }
    close(sv->out);
    waitpid(sv->pid, NULL, 0);
}

static void
server_cleanup(struct server *sv)
{
    size_t i;

    for (i = 0; i < SRV_CONNS_MAX; i++)
        free(sv->recs[i].data);
}

/* Did one single read(2) on the server get exactly s? (pipelining in one write) */
static bool
rec_has_read(const struct rec *r, const char *s)
{
    size_t i, off = 0;

    for (i = 0; i < r->n_reads; i++) {
        if (r->reads[i] == strlen(s) && memcmp(r->data + off, s, r->reads[i]) == 0)
            return true;
        off += r->reads[i];
    }
    return false;
}

/* ---- the pool side ---- */

struct done_rec {
    int                 calls;
    struct relay_result res;
};

static void
on_done(void *ctx, const struct relay_result *res)
{
    struct done_rec *d = ctx;

    d->calls++;
    d->res = *res;
}

struct env {
    struct ev_loop               *loop;
    struct config                 cfg;
    struct config_upstream        set;
    struct config_upstream_server srv[2];
    struct upstream_pool         *pool;
    ev_timer                      tick; /* keeps ev_run(EVRUN_ONCE) from sleeping forever */
};

static void
tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
}

static void
env_init(struct env *e)
{
    memset(e, 0, sizeof(*e));
    e->loop = ev_loop_new(EVFLAG_AUTO);
    e->cfg.hostname = "relay.test";
    e->cfg.upstreams = &e->set;
    e->cfg.n_upstreams = 1;
    e->set.name = "default";
    e->set.servers = e->srv;
    e->cfg.timeout_upstream = 2;
    e->cfg.timeout_upstream_data = 2;
    e->cfg.timeout_tls = 2;
    e->cfg.pool_max_per_worker = 4;
    e->cfg.pool_idle_timeout = 30;
    e->cfg.pool_max_reuse = 100;
    ev_timer_init(&e->tick, tick_cb, 0.02, 0.02);
    ev_timer_start(e->loop, &e->tick);
}

static void
env_add_server(struct env *e, int port)
{
    struct config_upstream_server *s = &e->srv[e->set.n_servers++];

    s->host = "127.0.0.1";
    s->port = port;
    s->tls = CONFIG_TLS_NONE;
}

static void
env_pool(struct env *e)
{
    char err[256] = "";

    e->pool = upstream_pool_new(e->loop, &e->cfg, NULL, err, sizeof(err));
    if (e->pool == NULL)
        fprintf(stderr, "upstream_pool_new: %s\n", err);
    CHECK(e->pool != NULL);
}

static void
env_done(struct env *e)
{
    upstream_pool_free(e->pool);
    ev_timer_stop(e->loop, &e->tick);
    ev_loop_destroy(e->loop);
}

static void
run_for(struct env *e, double secs)
{
    ev_tstamp end = ev_time() + secs;

    while (ev_time() < end) /* bounded by the deadline; the tick wakes us */
        ev_run(e->loop, EVRUN_ONCE);
}

static void
run_until(struct env *e, struct done_rec *d, size_t n, double secs)
{
    ev_tstamp end = ev_time() + secs;

    while (ev_time() < end) { /* bounded by the deadline; the tick wakes us */
        size_t i, got = 0;

        for (i = 0; i < n; i++)
            got += d[i].calls > 0;
        if (got == n)
            return;
        ev_run(e->loop, EVRUN_ONCE);
    }
}

/* The set-up most tests share: a scripted server (cleartext) and a pool on a loop with
 * that server as its only upstream. */
static void
fixture_start(struct server *sv, struct env *e, const char *const *const *scripts)
{
    server_start(sv, scripts, NULL, false);
    env_init(e);
    env_add_server(e, sv->port);
    env_pool(e);
}

/* Free the pool (QUIT to its idle connections), then stop the server and collect what
 * it received (sv->recs; server_cleanup() frees them). */
static void
fixture_stop(struct server *sv, struct env *e)
{
    env_done(e);
    server_stop(sv);
}

static const char *rcpt_b[] = {"b@y"};

static const struct relay_envelope ENV_B = {.mail_from = "a@x", .rcpts = rcpt_b, .n_rcpts = 1};

static void
relay(struct env *e, const struct relay_envelope *env, const char *msg, size_t len,
      struct done_rec *d)
{
    struct relay_job *job = relay_job_start(e->pool, 0, 0x5e55, env, msg, len, on_done, d);

    CHECK(job != NULL);
    CHECK_EQ_INT(d->calls, 0); /* never before relay_job_start returns */
}

#define EHLO_PIPE "250-up.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
#define EHLO_CHUNK "250-up.test\r\n250-PIPELINING\r\n250-CHUNKING\r\n250 8BITMIME\r\n"
#define TX_B "MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\n"
#define EHLO_TX "EHLO relay.test\r\n" TX_B
#define DATA_MSG "DATA\r\nSubject: t\r\n\r\nhello\r\n.\r\n"

/* ---- tests ---- */
/* ---- one message on one connection: the cases alike enough for a table ---- */

#define ANY (-99) /* an int field of struct one_message_case that is not checked */

static const char *rcpts_bc[] = {"b@y", "c@y"};

static const struct relay_envelope ENV_BC = {.mail_from = "a@x", .rcpts = rcpts_bc,
                                             .n_rcpts = 2};

struct one_message_case {
    const char                  *name;         /* the behaviour, as a sentence */
    const char *const           *script;       /* the one connection's (see the server) */
    const struct relay_envelope *env;          /* NULL: a@x to b@y (ENV_B) */
    const char                  *msg;          /* NULL: MSG */
    double                       data_timeout; /* 0: env_init()'s */
    enum relay_status            status;
    int                          code;         /* ANY or the reply for the client */
    const char                  *enhanced;     /* NULL: not checked */
    const char                  *text;         /* NULL: not checked */
    const char                  *text_has;     /* NULL: not checked; a part of the text */
    int                          failed_rcpt;  /* ANY, -1 (none) or the refused one */
    int                          idle;         /* ANY or the pooled connections after it */
    int                          relayed;      /* ANY or the pool's count of relayed */
    const char                  *received;     /* NULL or every byte the upstream got */
    const char                  *one_read;     /* NULL or what one read(2) got, exactly */
};

static const char *const SC_BDAT[] = {"220 up\r\n", EHLO_CHUNK, "250 Ok\r\n", "250 Ok\r\n",
                                      "250 Ok: queued as Q1\r\n", NULL};
static const char *const SC_DATA[] = {"220 up\r\n", EHLO_PIPE, "250 Ok\r\n", "250 Ok\r\n",
                                      "354 go\r\n", "250 Ok\r\n", NULL};
static const char *const SC_RCPT_550[] = {
    "220 up\r\n", EHLO_PIPE, "250 Ok\r\n", "250 Ok\r\n",
    "550-5.1.1 User unknown\r\n550 5.1.1 in virtual table\r\n", "250 2.0.0 Ok\r\n", NULL};
static const char *const SC_NO_PIPELINING[] = {"220 up\r\n", "250-up\r\n250 SIZE 1000\r\n",
                                               "250 Ok\r\n", "550 5.1.1 No such user\r\n",
                                               NULL};
static const char *const SC_MAIL_451[] = {"220 up\r\n", EHLO_PIPE,
                                          "451 4.7.1 Try again later\r\n",
                                          "503 5.5.1 No MAIL\r\n", NULL};
static const char *const SC_FINAL_554[] = {"220 up\r\n", EHLO_CHUNK, "250 Ok\r\n", "250 Ok\r\n",
                                           "554 5.7.1 Spam\r\n", NULL};
static const char *const SC_GREET_CLOSE[] = {"220 up\r\n<close>", NULL};
static const char *const SC_FINAL_HOLD[] = {"220 up\r\n", EHLO_CHUNK, "250 Ok\r\n", "250 Ok\r\n",
                                            "<hold>", NULL};
static const char *const SC_MIXED_CODES[] = {"220 up\r\n", "250-up\r\n251 PIPELINING\r\n", NULL};
static const char *const SC_MAIL_354[] = {"220 up\r\n", EHLO_PIPE, "354 what\r\n", "250 Ok\r\n",
                                          NULL};

static const struct one_message_case one_message_cases[] = {
    {.name = "bdat_last_carries_the_message_unstuffed_when_chunking_is_offered",
     .script = SC_BDAT, .msg = ".leading dot\r\n.\r\nlast line without end", .status = RELAY_OK,
     .code = ANY, .failed_rcpt = ANY, .idle = ANY, .relayed = ANY,
     /* RFC 3030: exact octets, no stuffing; the CRLF we add is counted in the size. */
     .received = "EHLO relay.test\r\n" TX_B
                 "BDAT 40 LAST\r\n.leading dot\r\n.\r\nlast line without end\r\nQUIT\r\n"},
    {.name = "data_dot_stuffs_every_line_that_starts_with_a_dot", .script = SC_DATA,
     .msg = ".a\r\nb\r\n..c\r\n.\r\nd.\r\n.", .status = RELAY_OK, .code = ANY,
     .failed_rcpt = ANY, .idle = ANY, .relayed = ANY,
     /* RFC 5321 4.5.2; a message without a final CRLF gets one before the dot. */
     .received = "EHLO relay.test\r\n" TX_B
                 "DATA\r\n..a\r\nb\r\n...c\r\n..\r\nd.\r\n..\r\n.\r\nQUIT\r\n"},
    {.name = "a_refused_recipient_abandons_the_message_for_everyone_with_rset",
     .script = SC_RCPT_550, .env = &ENV_BC, .status = RELAY_REJECTED, .code = 550,
     .enhanced = "5.1.1", .text = "<c@y>: upstream said: User unknown in virtual table",
     .failed_rcpt = 1, .idle = 1 /* RSET put it back in sync: reusable */, .relayed = ANY,
     .received = "EHLO relay.test\r\n" TX_B "RCPT TO:<c@y>\r\nRSET\r\nQUIT\r\n"},
    {.name = "without_pipelining_one_command_waits_for_each_reply",
     .script = SC_NO_PIPELINING, .env = &ENV_BC, .status = RELAY_REJECTED, .code = ANY,
     .failed_rcpt = 0, .idle = ANY, .relayed = ANY,
     /* The second RCPT is never sent; SIZE (RFC 1870) is declared. */
     .received = "EHLO relay.test\r\nMAIL FROM:<a@x> SIZE=21\r\nRCPT TO:<b@y>\r\nRSET\r\n",
     .one_read = "MAIL FROM:<a@x> SIZE=21\r\n"},
    {.name = "an_upstream_4xx_to_mail_is_a_tempfail_with_its_code", .script = SC_MAIL_451,
     .status = RELAY_TEMPFAIL, .code = 451, .enhanced = "4.7.1", .text = "Try again later",
     .failed_rcpt = -1, .idle = ANY, .relayed = ANY,
     .received = "EHLO relay.test\r\n" TX_B "QUIT\r\n"},
    {.name = "a_5xx_final_reply_is_rejected_and_the_connection_stays_pooled",
     .script = SC_FINAL_554, .status = RELAY_REJECTED, .code = 554, .text = "Spam",
     .failed_rcpt = ANY, .idle = 1, .relayed = 0},
    {.name = "a_server_that_drops_the_connection_during_set_up_is_451_4_4_2",
     .script = SC_GREET_CLOSE, .status = RELAY_UNAVAILABLE, .code = 451, .enhanced = "4.4.2",
     .failed_rcpt = ANY, .idle = ANY, .relayed = ANY},
    {.name = "no_final_reply_within_the_data_timeout_is_451_4_4_2", .script = SC_FINAL_HOLD,
     .data_timeout = 0.3, .status = RELAY_UNAVAILABLE, .code = ANY, .enhanced = "4.4.2",
     .text_has = "timed out", .failed_rcpt = ANY, .idle = ANY, .relayed = ANY},
    {.name = "a_reply_with_mixed_codes_on_its_lines_is_a_broken_upstream",
     .script = SC_MIXED_CODES, .status = RELAY_UNAVAILABLE, .code = ANY,
     .text_has = "malformed reply", .failed_rcpt = ANY, .idle = ANY, .relayed = ANY,
     .received = "EHLO relay.test\r\n"},
    {.name = "a_3xx_reply_to_mail_is_a_broken_upstream_not_a_verdict", .script = SC_MAIL_354,
     .status = RELAY_UNAVAILABLE, .code = 451, .failed_rcpt = ANY, .idle = ANY,
     .relayed = ANY},
};

/* Relay one message over the case's one scripted connection and check what it says. */
static void
one_message_case_run(const struct one_message_case *c)
{
    const char *const *const   scripts[] = {c->script, NULL};
    const char                *msg = c->msg != NULL ? c->msg : MSG;
    struct server              sv;
    struct env                 e;
    struct done_rec            d = {0};
    struct upstream_pool_stats st;

    server_start(&sv, scripts, NULL, false);
    env_init(&e);
    if (c->data_timeout > 0)
        e.cfg.timeout_upstream_data = c->data_timeout;
    env_add_server(&e, sv.port);
    env_pool(&e);
    relay(&e, c->env != NULL ? c->env : &ENV_B, msg, strlen(msg), &d);
    run_until(&e, &d, 1, 5);
    CHECK_EQ_INT(d.res.status, c->status);
    if (c->code != ANY)
        CHECK_EQ_INT(d.res.code, c->code);
    if (c->enhanced != NULL)
        CHECK(strcmp(d.res.enhanced, c->enhanced) == 0);
    if (c->text != NULL)
        CHECK(strcmp(d.res.text, c->text) == 0);
    if (c->text_has != NULL)
        CHECK(strstr(d.res.text, c->text_has) != NULL);
    if (c->failed_rcpt != ANY)
        CHECK_EQ_INT(d.res.failed_rcpt, c->failed_rcpt);
    upstream_pool_stats(e.pool, &st);
    if (c->idle != ANY)
        CHECK_EQ_INT(st.idle, c->idle);
    if (c->relayed != ANY)
        CHECK_EQ_INT(st.relayed, c->relayed);
    fixture_stop(&sv, &e);
    if (c->received != NULL) {
        CHECK_EQ_INT(sv.n_recs, 1);
        CHECK_MEM(sv.recs[0].data, sv.recs[0].len, c->received);
    }
    if (c->one_read != NULL)
        CHECK(rec_has_read(&sv.recs[0], c->one_read));
    server_cleanup(&sv);
}

static void
each_one_message_case_gets_its_result_and_sends_exactly_its_bytes(void)
{
    for (size_t i = 0; i < sizeof(one_message_cases) / sizeof(one_message_cases[0]); i++) {
        int before = check_failures;

        one_message_case_run(&one_message_cases[i]);
        fprintf(stderr, "     %s %s\n", check_failures == before ? "ok  " : "FAIL",
                one_message_cases[i].name);
    }
}


static void
a_reused_connection_pipelines_rset_mail_and_rcpt_in_one_write(void)
{
    static const char *const c0[] = {
        "220 up.test ESMTP\r\n", EHLO_PIPE, "250 2.1.0 Ok\r\n", "250 2.1.5 Ok\r\n",
        "354 go\r\n", "250 2.0.0 Ok: queued as ABC123\r\n", "250 2.0.0 Ok\r\n",
        "250 2.1.0 Ok\r\n", "250 2.1.5 Ok\r\n", "354 go\r\n", "250 OK id=1rXy-00A\r\n", NULL};
    static const char *const *const scripts[] = {c0, NULL};
    struct server              sv;
    struct env                 e;
    struct done_rec            d[2] = {{0}};
    struct upstream_pool_stats st;

    fixture_start(&sv, &e, scripts);
    relay(&e, &ENV_B, MSG, strlen(MSG), &d[0]);
    run_until(&e, &d[0], 1, 5);
    relay(&e, &ENV_B, MSG, strlen(MSG), &d[1]);
    run_until(&e, &d[1], 1, 5);
    CHECK_EQ_INT(d[0].res.status, RELAY_OK);
    CHECK_EQ_INT(d[0].res.code, 250);
    CHECK(strcmp(d[0].res.enhanced, "2.0.0") == 0);
    CHECK(strcmp(d[0].res.queue_id, "ABC123") == 0);
    CHECK(!d[0].res.reused);
    CHECK_EQ_INT(d[1].res.status, RELAY_OK);
    CHECK(strcmp(d[1].res.queue_id, "1rXy-00A") == 0);
    CHECK(d[1].res.reused);
    upstream_pool_stats(e.pool, &st);
    CHECK_EQ_INT(st.connects, 1);
    CHECK_EQ_INT(st.idle, 1);
    CHECK_EQ_INT(st.relayed, 2);
    env_done(&e); /* QUIT to the idle connection */
    server_stop(&sv);
    CHECK_EQ_INT(sv.n_recs, 1);
    CHECK_MEM(sv.recs[0].data, sv.recs[0].len,
              "EHLO relay.test\r\n" TX_B DATA_MSG "RSET\r\n" TX_B DATA_MSG "QUIT\r\n");
    CHECK(rec_has_read(&sv.recs[0], TX_B));
    CHECK(rec_has_read(&sv.recs[0], "RSET\r\n" TX_B));
    server_cleanup(&sv);
}

static void
a_message_of_several_mebibytes_arrives_intact_through_data(void)
{
    static const char *const c0[] = {"220 up\r\n", EHLO_PIPE, "250 Ok\r\n", "250 Ok\r\n",
                                     "354 go\r\n", "250 Ok\r\n", NULL};
    static const char *const *const scripts[] = {c0, NULL};
    size_t          n = 6u * 1024 * 1024, i, want_len = 0;
    char           *msg = malloc(n), *want = malloc(n + n / 4 + 64);
    struct server   sv;
    struct env      e;
    struct done_rec d = {0};
    ev_tstamp       t0;

    for (i = 0; i < n; i++) /* 64-octet lines, every third one starting with a dot */
        msg[i] = i % 64 == 62 ? '\r' : i % 64 == 63 ? '\n' : (i % 192 == 0 ? '.' : 'x');
    for (i = 0; i < n; i++) {
        if (i % 64 == 0 && msg[i] == '.')
            want[want_len++] = '.';
        want[want_len++] = msg[i];
    }
    memcpy(want + want_len, ".\r\nQUIT\r\n", 10);
    fixture_start(&sv, &e, scripts);
    t0 = ev_time();
    relay(&e, &ENV_B, msg, n, &d);
    run_until(&e, &d, 1, 20);
    fprintf(stderr, "     6 MiB through DATA with stuffing: %.0f ms\n", (ev_time() - t0) * 1e3);
    CHECK_EQ_INT(d.res.status, RELAY_OK);
    fixture_stop(&sv, &e);
    CHECK(sv.recs[0].len == strlen("EHLO relay.test\r\n" TX_B "DATA\r\n") + want_len + 9);
    CHECK(sv.recs[0].len > want_len &&
          memcmp(sv.recs[0].data + sv.recs[0].len - want_len - 9, want, want_len + 9) == 0);
    server_cleanup(&sv);
    free(msg);
    free(want);
}

static void
connection_refused_on_the_first_server_fails_over_to_the_second(void)
{
    static const char *const c0[] = {"220 up\r\n", EHLO_CHUNK, "250 Ok\r\n", "250 Ok\r\n",
                                     "250 Ok\r\n", NULL};
    static const char *const *const scripts[] = {c0, NULL};
    struct server   sv;
    struct env      e;
    struct done_rec d = {0};
    char            want[64];

    server_start(&sv, scripts, NULL, false);
    env_init(&e);
    env_add_server(&e, dead_port());
    env_add_server(&e, sv.port);
    env_pool(&e);
    relay(&e, &ENV_B, MSG, strlen(MSG), &d);
    run_until(&e, &d, 1, 5);
    CHECK_EQ_INT(d.res.status, RELAY_OK);
    snprintf(want, sizeof(want), "127.0.0.1:%d", sv.port);
    CHECK(strcmp(d.res.upstream, want) == 0);
    fixture_stop(&sv, &e);
    CHECK_EQ_INT(sv.n_recs, 1);
    server_cleanup(&sv);
}

/* Debian's localhost: ::1 first, where nothing listens, then 127.0.0.1 where the
 * upstream does. Both addresses are tried within the one relay attempt. */
static void
a_name_whose_first_address_refuses_relays_through_the_next(void)
{
    static const char *const c0[] = {"220 up\r\n", EHLO_CHUNK, "250 Ok\r\n", "250 Ok\r\n",
                                     "250 Ok\r\n", NULL};
    static const char *const *const scripts[] = {c0, NULL};
    static const struct fake_addr   localhost[] = {{"::1", 0}, {"127.0.0.1", 0}};
    struct server                   sv;
    struct env                      e;
    struct done_rec                 d = {0};
    struct upstream_pool_stats      st;
    char                            want[64];
    int                             v6fd;

    fake_getaddrinfo_set("localhost", localhost, 2);
    server_start(&sv, scripts, NULL, false);
    v6fd = loopback_refusing_v6(sv.port);
    env_init(&e);
    env_add_server(&e, sv.port);
    e.srv[0].host = "localhost";
    env_pool(&e);
    relay(&e, &ENV_B, MSG, strlen(MSG), &d);
    run_until(&e, &d, 1, 5);
    CHECK_EQ_INT(d.res.status, RELAY_OK);
    snprintf(want, sizeof(want), "localhost:%d", sv.port);
    CHECK(strcmp(d.res.upstream, want) == 0);
    upstream_pool_stats(e.pool, &st);
    CHECK_EQ_INT(st.connects, 2); /* ::1, then 127.0.0.1 */
    fixture_stop(&sv, &e);
    CHECK_EQ_INT(sv.n_recs, 1);
    CHECK_MEM(sv.recs[0].data, sv.recs[0].len,
              "EHLO relay.test\r\n" TX_B "BDAT 21 LAST\r\nSubject: t\r\n\r\nhello\r\nQUIT\r\n");
    server_cleanup(&sv);
    if (v6fd >= 0)
        close(v6fd);
    fake_getaddrinfo_set("localhost", NULL, 0);
}

static void
no_server_answering_is_unavailable_451_4_4_1(void)
{
    struct env      e;
    struct done_rec d = {0};

    env_init(&e);
    env_add_server(&e, dead_port());
    env_pool(&e);
    relay(&e, &ENV_B, MSG, strlen(MSG), &d);
    run_until(&e, &d, 1, 5);
    CHECK_EQ_INT(d.res.status, RELAY_UNAVAILABLE);
    CHECK_EQ_INT(d.res.code, 451);
    CHECK(strcmp(d.res.enhanced, "4.4.1") == 0);
    CHECK(strstr(d.res.text, "connection refused") != NULL);
    CHECK(strcmp(d.res.upstream, "") == 0);
    env_done(&e);
}

static void
a_refused_greeting_or_a_timeout_before_mail_fails_over(void)
{
    static const char *const a0[] = {"554 5.3.2 Not now\r\n", NULL};
    static const char *const a1[] = {"220 up\r\n", EHLO_PIPE, "<hold>", NULL};
    static const char *const b0[] = {"220 up\r\n", EHLO_CHUNK, "250 Ok\r\n", "250 Ok\r\n",
                                     "250 Ok\r\n", NULL};
    static const char *const b1[] = {"220 up\r\n", EHLO_CHUNK, "250 Ok\r\n", "250 Ok\r\n",
                                     "250 Ok\r\n", NULL};
    static const char *const *const sa[] = {a0, a1, NULL};
    static const char *const *const sb[] = {b0, b1, NULL};
    struct server   a, b;
    struct env      e;
    struct done_rec d[2] = {{0}};

    server_start(&a, sa, NULL, false);
    server_start(&b, sb, NULL, false);
    env_init(&e);
    e.cfg.timeout_upstream = 0.3;
    env_add_server(&e, a.port);
    env_add_server(&e, b.port);
    env_pool(&e);
    relay(&e, &ENV_B, MSG, strlen(MSG), &d[0]);
    run_until(&e, &d[0], 1, 5);
    CHECK_EQ_INT(d[0].res.status, RELAY_OK);
    run_for(&e, 0.05);
    upstream_pool_free(e.pool); /* a fresh pool forgets that a failed: it is tried first */
    env_pool(&e);
    relay(&e, &ENV_B, MSG, strlen(MSG), &d[1]);
    run_until(&e, &d[1], 1, 5);
    CHECK_EQ_INT(d[1].res.status, RELAY_OK);
    env_done(&e);
    server_stop(&a);
    server_stop(&b);
    CHECK_EQ_INT(a.n_recs, 2);
    CHECK_MEM(a.recs[0].data, a.recs[0].len, "");
    CHECK_MEM(a.recs[1].data, a.recs[1].len, "EHLO relay.test\r\n" TX_B);
    CHECK_EQ_INT(b.n_recs, 2);
    server_cleanup(&a);
    server_cleanup(&b);
}

static void
a_server_that_failed_set_up_is_tried_last_for_a_while(void)
{
    static const char *const b0[] = {"220 up\r\n", EHLO_CHUNK, "250 Ok\r\n", "250 Ok\r\n",
                                     "250 Ok\r\n", "250 Ok\r\n", "250 Ok\r\n", "250 Ok\r\n",
                                     "250 Ok\r\n", NULL};
    static const char *const *const sb[] = {b0, NULL};
    struct server              b;
    struct env                 e;
    struct done_rec            d[2] = {{0}};
    struct upstream_pool_stats st;

    server_start(&b, sb, NULL, false);
    env_init(&e);
    env_add_server(&e, dead_port());
    env_add_server(&e, b.port);
    env_pool(&e);
    relay(&e, &ENV_B, MSG, strlen(MSG), &d[0]);
    run_until(&e, &d[0], 1, 5);
    relay(&e, &ENV_B, MSG, strlen(MSG), &d[1]);
    run_until(&e, &d[1], 1, 5);
    CHECK_EQ_INT(d[0].res.status, RELAY_OK);
    CHECK_EQ_INT(d[1].res.status, RELAY_OK);
    CHECK(d[1].res.reused);
    upstream_pool_stats(e.pool, &st);
    CHECK_EQ_INT(st.connects, 2); /* the dead one once, then only the pooled one */
    env_done(&e);
    server_stop(&b);
    server_cleanup(&b);
}

static void
a_pooled_connection_the_server_closed_while_idle_is_not_reused(void)
{
    static const char *const c0[] = {"220 up\r\n", EHLO_CHUNK, "250 Ok\r\n", "250 Ok\r\n",
                                     "250 Ok\r\n<close>", NULL};
    static const char *const c1[] = {"220 up\r\n", EHLO_CHUNK, "250 Ok\r\n", "250 Ok\r\n",
                                     "250 Ok\r\n", NULL};
    static const char *const *const scripts[] = {c0, c1, NULL};
    struct server              sv;
    struct env                 e;
    struct done_rec            d[2] = {{0}};
    struct upstream_pool_stats st;

    fixture_start(&sv, &e, scripts);
    relay(&e, &ENV_B, MSG, strlen(MSG), &d[0]);
    run_until(&e, &d[0], 1, 5);
    run_for(&e, 0.2);
    upstream_pool_stats(e.pool, &st);
    CHECK_EQ_INT(st.open, 0); /* the EOF was noticed while idle */
    relay(&e, &ENV_B, MSG, strlen(MSG), &d[1]);
    run_until(&e, &d[1], 1, 5);
    CHECK_EQ_INT(d[1].res.status, RELAY_OK);
    CHECK(!d[1].res.reused);
    fixture_stop(&sv, &e);
    CHECK_EQ_INT(sv.n_recs, 2);
    CHECK(sv.recs[1].len > sizeof(EHLO_TX) &&
          memcmp(sv.recs[1].data, EHLO_TX, sizeof(EHLO_TX) - 1) == 0); /* no RSET */
    server_cleanup(&sv);
}

static void
a_pooled_connection_found_dead_at_rset_is_retried_once_on_a_new_one(void)
{
    static const char *const c0[] = {"220 up\r\n", EHLO_CHUNK, "250 Ok\r\n", "250 Ok\r\n",
                                     "250 Ok\r\n", "<close>", NULL};
    static const char *const c1[] = {"220 up\r\n", EHLO_CHUNK, "250 Ok\r\n", "250 Ok\r\n",
                                     "250 Ok: queued as R2\r\n", NULL};
    static const char *const *const scripts[] = {c0, c1, NULL};
    struct server              sv;
    struct env                 e;
    struct done_rec            d[2] = {{0}};
    struct upstream_pool_stats st;

    fixture_start(&sv, &e, scripts);
    relay(&e, &ENV_B, MSG, strlen(MSG), &d[0]);
    run_until(&e, &d[0], 1, 5);
    relay(&e, &ENV_B, MSG, strlen(MSG), &d[1]);
    run_until(&e, &d[1], 1, 5);
    CHECK_EQ_INT(d[1].res.status, RELAY_OK);
    CHECK(strcmp(d[1].res.queue_id, "R2") == 0);
    CHECK(!d[1].res.reused);
    upstream_pool_stats(e.pool, &st);
    CHECK_EQ_INT(st.connects, 2);
    fixture_stop(&sv, &e);
    CHECK_EQ_INT(sv.n_recs, 2);
    CHECK(strncmp(sv.recs[0].data + sv.recs[0].len - strlen("RSET\r\n" TX_B), "RSET\r\n" TX_B,
                  strlen("RSET\r\n" TX_B)) == 0);
    CHECK_MEM(sv.recs[1].data, sv.recs[1].len,
              "EHLO relay.test\r\n" TX_B "BDAT 21 LAST\r\nSubject: t\r\n\r\nhello\r\nQUIT\r\n");
    server_cleanup(&sv);
}

static void
a_drop_in_the_middle_of_data_is_unavailable_451_4_4_2(void)
{
    static const char *const c0[] = {"220 up\r\n", EHLO_PIPE, "250 Ok\r\n", "250 Ok\r\n",
                                     "354 go\r\n<close>", NULL};
    static const char *const *const scripts[] = {c0, NULL};
    size_t                     n = 4u * 1024 * 1024;
    char                      *msg = malloc(n);
    struct server              sv;
    struct env                 e;
    struct done_rec            d = {0};
    struct upstream_pool_stats st;

    memset(msg, 'x', n);
    fixture_start(&sv, &e, scripts);
    relay(&e, &ENV_B, msg, n, &d);
    run_until(&e, &d, 1, 5);
    CHECK_EQ_INT(d.res.status, RELAY_UNAVAILABLE);
    CHECK_EQ_INT(d.res.code, 451);
    CHECK(strcmp(d.res.enhanced, "4.4.2") == 0);
    CHECK(d.res.upstream[0] != '\0');
    upstream_pool_stats(e.pool, &st);
    CHECK_EQ_INT(st.open, 0);
    fixture_stop(&sv, &e);
    server_cleanup(&sv);
    free(msg);
}

static void
jobs_over_the_cap_wait_and_run_in_order_on_the_one_connection(void)
{
    static const char *const c0[] = {
        "220 up\r\n", EHLO_CHUNK, "250 Ok\r\n", "250 Ok\r\n", "250 Ok: queued as J1\r\n",
        "250 Ok\r\n", "250 Ok\r\n", "250 Ok\r\n", "250 Ok: queued as J2\r\n",
        "250 Ok\r\n", "250 Ok\r\n", "250 Ok\r\n", "250 Ok: queued as J3\r\n", NULL};
    static const char *const *const scripts[] = {c0, NULL};
    struct server              sv;
    struct env                 e;
    struct done_rec            d[3] = {{0}};
    struct upstream_pool_stats st;
    int                        i;

    server_start(&sv, scripts, NULL, false);
    env_init(&e);
    e.cfg.pool_max_per_worker = 1;
    env_add_server(&e, sv.port);
    env_pool(&e);
    for (i = 0; i < 3; i++)
        relay(&e, &ENV_B, MSG, strlen(MSG), &d[i]);
    upstream_pool_stats(e.pool, &st);
    CHECK_EQ_INT(st.open, 1);
    CHECK_EQ_INT(st.waiting_jobs, 2);
    run_until(&e, d, 3, 5);
    CHECK(strcmp(d[0].res.queue_id, "J1") == 0);
    CHECK(strcmp(d[1].res.queue_id, "J2") == 0);
    CHECK(strcmp(d[2].res.queue_id, "J3") == 0);
    upstream_pool_stats(e.pool, &st);
    CHECK_EQ_INT(st.connects, 1);
    CHECK_EQ_INT(st.waiting_jobs, 0);
    fixture_stop(&sv, &e);
    CHECK_EQ_INT(sv.n_recs, 1);
    server_cleanup(&sv);
}

#define GET(c, f) ((long long)counter_get(&(c).f))

/* The counters the metrics read (docs/metrics.md sluice_upstream_*): open and idle follow
 * the connections, a job that finds the one slot busy is a wait, and none of them is
 * lost on the way back to zero when the pool is freed. */
static void
the_counters_follow_connections_and_waits_back_to_zero(void)
{
    static const char *const c0[] = {"220 up\r\n", EHLO_CHUNK, "250 Ok\r\n", "250 Ok\r\n",
                                     "250 Ok\r\n", "250 Ok\r\n", "250 Ok\r\n", "250 Ok\r\n",
                                     "250 Ok\r\n", NULL};
    static const char *const *const scripts[] = {c0, NULL};
    struct upstream_pool_counters   ctr = {0}, *ctrs[] = {&ctr};
    struct server                   sv;
    struct env                      e;
    struct done_rec                 d[2] = {{0}};
    char                            err[256] = "";

    server_start(&sv, scripts, NULL, false);
    env_init(&e);
    e.cfg.pool_max_per_worker = 1;
    env_add_server(&e, sv.port);
    e.pool = upstream_pool_new(e.loop, &e.cfg, ctrs, err, sizeof(err));
    CHECK(e.pool != NULL);
    relay(&e, &ENV_B, MSG, strlen(MSG), &d[0]);
    relay(&e, &ENV_B, MSG, strlen(MSG), &d[1]);
    CHECK_EQ_INT(GET(ctr, open), 1);
    CHECK_EQ_INT(GET(ctr, idle), 0);
    CHECK_EQ_INT(GET(ctr, waits), 1);
    run_until(&e, d, 2, 5);
    CHECK_EQ_INT(d[1].res.status, RELAY_OK);
    CHECK_EQ_INT(GET(ctr, open), 1);
    CHECK_EQ_INT(GET(ctr, idle), 1);
    CHECK_EQ_INT(GET(ctr, waits), 1);
    CHECK_EQ_INT(GET(ctr, wait_timeouts) + GET(ctr, connect_failures) + GET(ctr, errors), 0);
    fixture_stop(&sv, &e);
    CHECK_EQ_INT(GET(ctr, open), 0);
    CHECK_EQ_INT(GET(ctr, idle), 0);
    server_cleanup(&sv);
}

/* A refused connect counts against its server's host:port, a connection that breaks
 * during DATA is an error of the other's, and a job that waited out timeout_upstream
 * is a wait timeout. */
static void
the_counters_tell_failed_set_ups_broken_connections_and_wait_timeouts_apart(void)
{
    static const char *const c0[] = {"220 up\r\n", EHLO_PIPE, "250 Ok\r\n", "250 Ok\r\n",
                                     "354 go\r\n<close>", NULL};
    static const char *const h0[] = {"220 up\r\n", EHLO_CHUNK, "<hold>", NULL};
    static const char *const *const scripts[] = {c0, NULL}, *const *const held[] = {h0, NULL};
    struct upstream_pool_counters   dead = {0}, live = {0}, *ctrs[] = {&dead, &live};
    struct server                   sv;
    struct env                      e;
    struct done_rec                 d[2] = {{0}};
    char                            err[256] = "";

    server_start(&sv, scripts, NULL, false);
    env_init(&e);
    env_add_server(&e, dead_port());
    env_add_server(&e, sv.port);
    e.pool = upstream_pool_new(e.loop, &e.cfg, ctrs, err, sizeof(err));
    CHECK(e.pool != NULL);
    relay(&e, &ENV_B, MSG, strlen(MSG), &d[0]);
    run_until(&e, d, 1, 5);
    CHECK_EQ_INT(d[0].res.status, RELAY_UNAVAILABLE);
    CHECK_EQ_INT(GET(dead, connect_failures), 1);
    CHECK_EQ_INT(GET(dead, errors) + GET(live, connect_failures), 0);
    CHECK_EQ_INT(GET(live, errors), 1);
    CHECK_EQ_INT(GET(dead, open) + GET(live, open), 0);
    fixture_stop(&sv, &e);
    server_cleanup(&sv);

    memset(&live, 0, sizeof(live));
    memset(d, 0, sizeof(d));
    server_start(&sv, held, NULL, false);
    env_init(&e);
    e.cfg.pool_max_per_worker = 1;
    e.cfg.timeout_upstream = 0.3;
    env_add_server(&e, sv.port);
    e.pool = upstream_pool_new(e.loop, &e.cfg, &ctrs[1], err, sizeof(err));
    CHECK(e.pool != NULL);
    relay(&e, &ENV_B, MSG, strlen(MSG), &d[0]);
    relay(&e, &ENV_B, MSG, strlen(MSG), &d[1]);
    run_until(&e, &d[1], 1, 5);
    CHECK_EQ_INT(d[1].res.status, RELAY_UNAVAILABLE);
    CHECK_EQ_INT(GET(live, waits), 1);
    CHECK_EQ_INT(GET(live, wait_timeouts), 1);
    fixture_stop(&sv, &e);
    server_cleanup(&sv);
}

static void
a_job_waiting_longer_than_the_timeout_is_unavailable_451_4_4_5(void)
{
    static const char *const c0[] = {"220 up\r\n", EHLO_CHUNK, "<hold>", NULL};
    static const char *const *const scripts[] = {c0, NULL};
    struct server   sv;
    struct env      e;
    struct done_rec d[2] = {{0}};

    server_start(&sv, scripts, NULL, false);
    env_init(&e);
    e.cfg.pool_max_per_worker = 1;
    e.cfg.timeout_upstream = 0.3;
    env_add_server(&e, sv.port);
    env_pool(&e);
    relay(&e, &ENV_B, MSG, strlen(MSG), &d[0]);
    relay(&e, &ENV_B, MSG, strlen(MSG), &d[1]);
    run_until(&e, &d[1], 1, 5);
    CHECK_EQ_INT(d[1].res.status, RELAY_UNAVAILABLE);
    CHECK(strcmp(d[1].res.enhanced, "4.4.5") == 0);
    fixture_stop(&sv, &e);
    server_cleanup(&sv);
}

static void
a_cancelled_job_never_calls_back_and_its_message_is_never_completed(void)
{
    static const char *const c0[] = {"220 up\r\n", EHLO_PIPE, "250 Ok\r\n", "250 Ok\r\n",
                                     "354 go\r\n", "<hold>", NULL};
    static const char *const *const scripts[] = {c0, NULL};
    struct server              sv;
    struct env                 e;
    struct done_rec            d[2] = {{0}};
    struct relay_job       *job;
    struct upstream_pool_stats st;

    fixture_start(&sv, &e, scripts);
    job = relay_job_start(e.pool, 0, 1, &ENV_B, MSG, strlen(MSG), on_done, &d[0]);
    run_for(&e, 0.3); /* the message is out; the final reply is held */
    relay_job_cancel(job);
    job = relay_job_start(e.pool, 0, 2, &ENV_B, MSG, strlen(MSG), on_done, &d[1]);
    relay_job_cancel(job); /* before it even started */
    run_for(&e, 0.2);
    CHECK_EQ_INT(d[0].calls, 0);
    CHECK_EQ_INT(d[1].calls, 0);
    upstream_pool_stats(e.pool, &st);
    CHECK_EQ_INT(st.open, 0); /* closed, never returned to the pool */
    fixture_stop(&sv, &e);
    CHECK_EQ_INT(sv.n_recs, 1);
    CHECK_MEM(sv.recs[0].data, sv.recs[0].len, "EHLO relay.test\r\n" TX_B DATA_MSG);
    server_cleanup(&sv);
}

static void
an_idle_connection_gets_quit_after_the_idle_timeout(void)
{
    static const char *const c0[] = {"220 up\r\n", EHLO_CHUNK, "250 Ok\r\n", "250 Ok\r\n",
                                     "250 Ok\r\n", NULL};
    static const char *const *const scripts[] = {c0, NULL};
    struct server              sv;
    struct env                 e;
    struct done_rec            d = {0};
    struct upstream_pool_stats st;

    server_start(&sv, scripts, NULL, false);
    env_init(&e);
    e.cfg.pool_idle_timeout = 0.2;
    env_add_server(&e, sv.port);
    env_pool(&e);
    relay(&e, &ENV_B, MSG, strlen(MSG), &d);
    run_until(&e, &d, 1, 5);
    run_for(&e, 0.5);
    upstream_pool_stats(e.pool, &st);
    CHECK_EQ_INT(st.open, 0);
    fixture_stop(&sv, &e);
    CHECK(sv.recs[0].len > 6 && memcmp(sv.recs[0].data + sv.recs[0].len - 6, "QUIT\r\n", 6) == 0);
    server_cleanup(&sv);
}

static void
a_connection_that_reached_max_reuse_is_closed_with_quit(void)
{
    static const char *const c0[] = {"220 up\r\n", EHLO_CHUNK, "250 Ok\r\n", "250 Ok\r\n",
                                     "250 Ok\r\n", NULL};
    static const char *const *const scripts[] = {c0, c0, NULL};
    struct server              sv;
    struct env                 e;
    struct done_rec            d[2] = {{0}};
    struct upstream_pool_stats st;

    server_start(&sv, scripts, NULL, false);
    env_init(&e);
    e.cfg.pool_max_reuse = 1;
    env_add_server(&e, sv.port);
    env_pool(&e);
    relay(&e, &ENV_B, MSG, strlen(MSG), &d[0]);
    run_until(&e, &d[0], 1, 5);
    upstream_pool_stats(e.pool, &st);
    CHECK_EQ_INT(st.open, 0);
    relay(&e, &ENV_B, MSG, strlen(MSG), &d[1]);
    run_until(&e, &d[1], 1, 5);
    CHECK_EQ_INT(d[1].res.status, RELAY_OK);
    CHECK(!d[1].res.reused);
    fixture_stop(&sv, &e);
    CHECK_EQ_INT(sv.n_recs, 2);
    CHECK(sv.recs[0].len > 6 && memcmp(sv.recs[0].data + sv.recs[0].len - 6, "QUIT\r\n", 6) == 0);
    server_cleanup(&sv);
}

static void
what_the_upstream_cannot_take_is_refused_before_mail(void)
{
    static const char *const c0[] = {"220 up\r\n", "250-up\r\n250-PIPELINING\r\n250 SIZE 10\r\n",
                                     NULL};
    static const char *const *const scripts[] = {c0, NULL};
    static const struct relay_envelope utf8 = {
        .mail_from = "a@x", .rcpts = rcpt_b, .n_rcpts = 1, .smtputf8 = true};
    static const struct relay_envelope bit8 = {
        .mail_from = "a@x", .rcpts = rcpt_b, .n_rcpts = 1, .body_8bit = true};
    struct server   sv;
    struct env      e;
    struct done_rec d[3] = {{0}};

    fixture_start(&sv, &e, scripts);
    relay(&e, &utf8, MSG, strlen(MSG), &d[0]);
    run_until(&e, &d[0], 1, 5);
    relay(&e, &bit8, MSG, strlen(MSG), &d[1]);
    run_until(&e, &d[1], 1, 5);
    relay(&e, &ENV_B, MSG, strlen(MSG), &d[2]);
    run_until(&e, &d[2], 1, 5);
    CHECK_EQ_INT(d[0].res.code, 553);
    CHECK(strcmp(d[0].res.enhanced, "5.6.7") == 0);
    CHECK_EQ_INT(d[1].res.code, 554);
    CHECK(strcmp(d[1].res.enhanced, "5.6.3") == 0);
    CHECK_EQ_INT(d[2].res.status, RELAY_REJECTED);
    CHECK_EQ_INT(d[2].res.code, 552);
    CHECK(strcmp(d[2].res.enhanced, "5.3.4") == 0);
    fixture_stop(&sv, &e);
    CHECK_MEM(sv.recs[0].data, sv.recs[0].len, "EHLO relay.test\r\nQUIT\r\n");
    server_cleanup(&sv);
}

static void
an_address_with_a_control_character_never_reaches_the_upstream(void)
{
    static const char *bad[] = {"b@y\r\nDATA"};
    static const struct relay_envelope env = {.mail_from = "a@x", .rcpts = bad, .n_rcpts = 1};
    struct env                         e;
    struct done_rec                    d = {0};
    struct upstream_pool_stats         st;

    env_init(&e);
    env_add_server(&e, dead_port());
    env_pool(&e);
    relay(&e, &env, MSG, strlen(MSG), &d);
    run_until(&e, &d, 1, 5);
    CHECK_EQ_INT(d.res.status, RELAY_REJECTED);
    CHECK_EQ_INT(d.res.code, 501);
    upstream_pool_stats(e.pool, &st);
    CHECK_EQ_INT(st.connects, 0);
    env_done(&e);
}

static void
freeing_the_pool_reports_running_jobs_as_unavailable(void)
{
    static const char *const c0[] = {"220 up\r\n", EHLO_CHUNK, "<hold>", NULL};
    static const char *const *const scripts[] = {c0, NULL};
    struct server   sv;
    struct env      e;
    struct done_rec d = {0};

    fixture_start(&sv, &e, scripts);
    relay(&e, &ENV_B, MSG, strlen(MSG), &d);
    run_for(&e, 0.2);
    upstream_pool_free(e.pool);
    e.pool = NULL;
    CHECK_EQ_INT(d.calls, 1);
    CHECK_EQ_INT(d.res.status, RELAY_UNAVAILABLE);
    CHECK_EQ_INT(d.res.code, 451);
    fixture_stop(&sv, &e);
    server_cleanup(&sv);
}

static void
auth_goes_in_cleartext_only_to_a_loopback_upstream(void)
{
    static const char *const c0[] = {"220 up\r\n", "250-up\r\n250-CHUNKING\r\n250 AUTH PLAIN\r\n",
                                     "235 Ok\r\n", "250 Ok\r\n", "250 Ok\r\n", "250 Ok\r\n", NULL};
    static const char *const *const scripts[] = {c0, NULL};
    struct server   sv;
    struct env      e;
    struct done_rec d = {0};

    server_start(&sv, scripts, NULL, false);
    env_init(&e);
    env_add_server(&e, sv.port); /* 127.0.0.1: no one else on the path */
    e.srv[0].auth_user = "alice";
    e.srv[0].auth_password = "secret";
    env_pool(&e);
    relay(&e, &ENV_B, MSG, strlen(MSG), &d);
    run_until(&e, &d, 1, 5);
    CHECK_EQ_INT(d.res.status, RELAY_OK);
    fixture_stop(&sv, &e);
    CHECK_MEM(sv.recs[0].data, sv.recs[0].len,
              "EHLO relay.test\r\nAUTH PLAIN AGFsaWNlAHNlY3JldA==\r\nMAIL FROM:<a@x>\r\n"
              "RCPT TO:<b@y>\r\nBDAT 21 LAST\r\nSubject: t\r\n\r\nhello\r\nQUIT\r\n");
    server_cleanup(&sv);
}

static void
a_421_to_rset_on_a_pooled_connection_is_retried_on_a_new_one(void)
{
    static const char *const c0[] = {"220 up\r\n", EHLO_CHUNK, "250 Ok\r\n", "250 Ok\r\n",
                                     "250 Ok\r\n", "421 4.4.2 Idle too long\r\n<close>", NULL};
    static const char *const c1[] = {"220 up\r\n", EHLO_CHUNK, "250 Ok\r\n", "250 Ok\r\n",
                                     "250 Ok\r\n", NULL};
    static const char *const *const scripts[] = {c0, c1, NULL};
    struct server   sv;
    struct env      e;
    struct done_rec d[2] = {{0}};

    fixture_start(&sv, &e, scripts);
    relay(&e, &ENV_B, MSG, strlen(MSG), &d[0]);
    run_until(&e, &d[0], 1, 5);
    relay(&e, &ENV_B, MSG, strlen(MSG), &d[1]);
    run_until(&e, &d[1], 1, 5);
    CHECK_EQ_INT(d[1].res.status, RELAY_OK);
    fixture_stop(&sv, &e);
    CHECK_EQ_INT(sv.n_recs, 2);
    server_cleanup(&sv);
}

static void
draining_quits_idle_connections_now_and_busy_ones_after_their_job(void)
{
    static const char *const c0[] = {"220 up\r\n", EHLO_CHUNK, "250 Ok\r\n", "250 Ok\r\n",
                                     "250 Ok\r\n", "250 Ok\r\n", "250 Ok\r\n", "250 Ok\r\n",
                                     "250 Ok\r\n", NULL};
    static const char *const c1[] = {"220 up\r\n", EHLO_CHUNK, "250 Ok\r\n", "250 Ok\r\n",
                                     "250 Ok\r\n", NULL};
    static const char *const *const scripts[] = {c0, c1, NULL};
    struct server              sv;
    struct env                 e;
    struct done_rec            d[3] = {{0}};
    struct upstream_pool_stats st;

    fixture_start(&sv, &e, scripts);
    relay(&e, &ENV_B, MSG, strlen(MSG), &d[0]);
    run_until(&e, &d[0], 1, 5);
    relay(&e, &ENV_B, MSG, strlen(MSG), &d[1]); /* the pooled connection */
    relay(&e, &ENV_B, MSG, strlen(MSG), &d[2]); /* a new one */
    upstream_pool_drain(e.pool);
    run_until(&e, &d[1], 2, 5);
    CHECK_EQ_INT(d[1].res.status, RELAY_OK);
    CHECK_EQ_INT(d[2].res.status, RELAY_OK);
    upstream_pool_stats(e.pool, &st);
    CHECK_EQ_INT(st.open, 0);
    fixture_stop(&sv, &e);
    CHECK_EQ_INT(sv.n_recs, 2);
    CHECK(sv.recs[0].len > 6 && memcmp(sv.recs[0].data + sv.recs[0].len - 6, "QUIT\r\n", 6) == 0);
    CHECK(sv.recs[1].len > 6 && memcmp(sv.recs[1].data + sv.recs[1].len - 6, "QUIT\r\n", 6) == 0);
    server_cleanup(&sv);
}

static void
a_multi_line_greeting_and_a_server_without_ehlo_are_understood(void)
{
    static const char *const c0[] = {"220-up.test\r\n220-no UCE\r\n220 ready\r\n",
                                     "502 5.5.1 EHLO not implemented\r\n", "250 up.test\r\n",
                                     "250 Ok\r\n", "250 Ok\r\n", "354 go\r\n", "250 Ok\r\n",
                                     NULL};
    static const char *const *const scripts[] = {c0, NULL};
    struct server   sv;
    struct env      e;
    struct done_rec d = {0};

    fixture_start(&sv, &e, scripts);
    relay(&e, &ENV_B, MSG, strlen(MSG), &d);
    run_until(&e, &d, 1, 5);
    CHECK_EQ_INT(d.res.status, RELAY_OK);
    fixture_stop(&sv, &e);
    /* RFC 5321 4.1.4: HELO after a refused EHLO; no extension, so nothing pipelined. */
    CHECK_MEM(sv.recs[0].data, sv.recs[0].len,
              "EHLO relay.test\r\nHELO relay.test\r\n" TX_B DATA_MSG "QUIT\r\n");
    CHECK(rec_has_read(&sv.recs[0], "MAIL FROM:<a@x>\r\n"));
    server_cleanup(&sv);
}

static void
a_refusal_stands_when_the_rset_that_follows_it_gets_no_answer(void)
{
    static const char *const c0[] = {"220 up\r\n", EHLO_PIPE, "250 Ok\r\n",
                                     "452 4.2.2 Mailbox full\r\n", "<hold>", NULL};
    static const char *const *const scripts[] = {c0, NULL};
    struct server              sv;
    struct env                 e;
    struct done_rec            d = {0};
    struct upstream_pool_stats st;

    server_start(&sv, scripts, NULL, false);
    env_init(&e);
    e.cfg.timeout_upstream = 0.3;
    env_add_server(&e, sv.port);
    env_pool(&e);
    relay(&e, &ENV_B, MSG, strlen(MSG), &d);
    run_until(&e, &d, 1, 5);
    CHECK_EQ_INT(d.res.status, RELAY_TEMPFAIL);
    CHECK_EQ_INT(d.res.code, 452);
    CHECK(strcmp(d.res.enhanced, "4.2.2") == 0);
    CHECK_EQ_INT(d.res.failed_rcpt, 0);
    upstream_pool_stats(e.pool, &st);
    CHECK_EQ_INT(st.open, 0); /* out of sync: not pooled */
    fixture_stop(&sv, &e);
    server_cleanup(&sv);
}

/* ---- TLS ---- */

struct tls_fixture {
    SSL_CTX *server;
    char     ca_file[128];
};

static void
tls_fixture_init(struct tls_fixture *t)
{
    EVP_PKEY       *key = EVP_EC_gen("P-256");
    X509           *x = X509_new();
    X509_NAME      *name = X509_get_subject_name(x);
    X509V3_CTX      v3;
    X509_EXTENSION *ext;
    FILE           *f;
    int             fd;

    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1,
                               -1, 0);
    X509_set_issuer_name(x, name);
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, "DNS:localhost");
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    X509_sign(x, key, EVP_sha256());
    snprintf(t->ca_file, sizeof(t->ca_file), "%s/ca-XXXXXX", test_tmpdir("upstream-pool"));
    fd = mkstemp(t->ca_file);
    f = fdopen(fd, "w");
    PEM_write_X509(f, x);
    fclose(f);
    t->server = SSL_CTX_new(TLS_server_method());
    SSL_CTX_use_certificate(t->server, x);
    SSL_CTX_use_PrivateKey(t->server, key);
    X509_free(x);
    EVP_PKEY_free(key);
}

static void
tls_fixture_cleanup(struct tls_fixture *t)
{
    SSL_CTX_free(t->server);
    unlink(t->ca_file);
}

static void
starttls_ignores_replies_injected_before_the_handshake_and_auth_goes_inside(void)
{
    static const char *const c0[] = {
        "220 up\r\n", "250-up\r\n250-STARTTLS\r\n250 PIPELINING\r\n",
        "220 2.0.0 Ready\r\n250-injected\r\n250 AUTH PLAIN\r\n",
        "250-up\r\n250-PIPELINING\r\n250-CHUNKING\r\n250 AUTH PLAIN LOGIN\r\n",
        "235 2.7.0 Ok\r\n", "250 Ok\r\n", "250 Ok\r\n", "250 Ok: queued as T1\r\n", NULL};
    static const char *const *const scripts[] = {c0, NULL};
    struct tls_fixture t;
    struct server      sv;
    struct env         e;
    struct done_rec    d = {0};

    tls_fixture_init(&t);
    server_start(&sv, scripts, t.server, false);
    env_init(&e);
    env_add_server(&e, sv.port);
    e.srv[0].tls = CONFIG_TLS_STARTTLS;
    e.srv[0].verify = true;
    e.srv[0].ca_file = t.ca_file;
    e.srv[0].tls_name = "localhost";
    e.srv[0].auth_user = "alice";
    e.srv[0].auth_password = "secret";
    env_pool(&e);
    relay(&e, &ENV_B, MSG, strlen(MSG), &d);
    run_until(&e, &d, 1, 5);
    CHECK_EQ_INT(d.res.status, RELAY_OK);
    CHECK(strcmp(d.res.queue_id, "T1") == 0);
    fixture_stop(&sv, &e);
    /* base64("\0alice\0secret") = AGFsaWNlAHNlY3JldA== (RFC 4616) */
    CHECK_MEM(sv.recs[0].data, sv.recs[0].len,
              "EHLO relay.test\r\nSTARTTLS\r\n"
              "EHLO relay.test\r\nAUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n" TX_B
              "BDAT 21 LAST\r\nSubject: t\r\n\r\nhello\r\nQUIT\r\n");
    server_cleanup(&sv);
    tls_fixture_cleanup(&t);
}

static void
implicit_tls_with_auth_login_when_plain_is_not_offered(void)
{
    static const char *const c0[] = {"220 up\r\n", "250-up\r\n250-PIPELINING\r\n250 AUTH LOGIN\r\n",
                                     "334 VXNlcm5hbWU6\r\n", "334 UGFzc3dvcmQ6\r\n",
                                     "235 Ok\r\n", "250 Ok\r\n", "250 Ok\r\n", "354 go\r\n",
                                     "250 Ok\r\n", NULL};
    static const char *const *const scripts[] = {c0, NULL};
    struct tls_fixture t;
    struct server      sv;
    struct env         e;
    struct done_rec    d = {0};

    tls_fixture_init(&t);
    server_start(&sv, scripts, t.server, true);
    env_init(&e);
    env_add_server(&e, sv.port);
    e.srv[0].tls = CONFIG_TLS_IMPLICIT;
    e.srv[0].verify = true;
    e.srv[0].ca_file = t.ca_file;
    e.srv[0].tls_name = "localhost";
    e.srv[0].auth_user = "alice";
    e.srv[0].auth_password = "secret";
    env_pool(&e);
    relay(&e, &ENV_B, MSG, strlen(MSG), &d);
    run_until(&e, &d, 1, 5);
    CHECK_EQ_INT(d.res.status, RELAY_OK);
    fixture_stop(&sv, &e);
    CHECK_MEM(sv.recs[0].data, sv.recs[0].len,
              "EHLO relay.test\r\nAUTH LOGIN\r\nYWxpY2U=\r\nc2VjcmV0\r\n" TX_B DATA_MSG
              "QUIT\r\n");
    server_cleanup(&sv);
    tls_fixture_cleanup(&t);
}

static void
a_certificate_for_another_name_fails_over_without_sending_anything(void)
{
    static const char *const a0[] = {"220 up\r\n", "250-up\r\n250 STARTTLS\r\n", "220 go\r\n",
                                     NULL};
    static const char *const b0[] = {"220 up\r\n", EHLO_CHUNK, "250 Ok\r\n", "250 Ok\r\n",
                                     "250 Ok\r\n", NULL};
    static const char *const *const sa[] = {a0, NULL};
    static const char *const *const sb[] = {b0, NULL};
    struct tls_fixture t;
    struct server      a, b;
    struct env         e;
    struct done_rec    d = {0};

    tls_fixture_init(&t);
    server_start(&a, sa, t.server, false);
    server_start(&b, sb, NULL, false);
    env_init(&e);
    env_add_server(&e, a.port);
    e.srv[0].tls = CONFIG_TLS_STARTTLS;
    e.srv[0].verify = true;
    e.srv[0].ca_file = t.ca_file;
    e.srv[0].tls_name = "mx.example.org";
    e.srv[0].auth_user = "alice";
    e.srv[0].auth_password = "secret";
    env_add_server(&e, b.port);
    env_pool(&e);
    relay(&e, &ENV_B, MSG, strlen(MSG), &d);
    run_until(&e, &d, 1, 5);
    CHECK_EQ_INT(d.res.status, RELAY_OK);
    env_done(&e);
    server_stop(&a);
    server_stop(&b);
    CHECK_MEM(a.recs[0].data, a.recs[0].len, "EHLO relay.test\r\nSTARTTLS\r\n");
    server_cleanup(&a);
    server_cleanup(&b);
    tls_fixture_cleanup(&t);
}

static void
a_server_configured_for_starttls_that_does_not_offer_it_is_never_used(void)
{
    static const char *const c0[] = {"220 up\r\n", EHLO_CHUNK, NULL};
    static const char *const *const scripts[] = {c0, NULL};
    struct tls_fixture t;
    struct server      sv;
    struct env         e;
    struct done_rec    d = {0};

    tls_fixture_init(&t);
    server_start(&sv, scripts, NULL, false);
    env_init(&e);
    env_add_server(&e, sv.port);
    e.srv[0].tls = CONFIG_TLS_STARTTLS;
    e.srv[0].verify = true;
    e.srv[0].ca_file = t.ca_file;
    env_pool(&e);
    relay(&e, &ENV_B, MSG, strlen(MSG), &d);
    run_until(&e, &d, 1, 5);
    CHECK_EQ_INT(d.res.status, RELAY_UNAVAILABLE);
    CHECK(strstr(d.res.text, "does not offer STARTTLS") != NULL);
    CHECK(strcmp(d.res.enhanced, "4.4.1") == 0);
    fixture_stop(&sv, &e);
    CHECK_MEM(sv.recs[0].data, sv.recs[0].len, "EHLO relay.test\r\n");
    server_cleanup(&sv);
    tls_fixture_cleanup(&t);
}

int
main(void)
{
    signal(SIGPIPE, SIG_IGN);
    log_set_level(getenv("SLUICE_TEST_LOG") ? LOG_DEBUG : LOG_ERR + 1);
    RUN(each_one_message_case_gets_its_result_and_sends_exactly_its_bytes);
    RUN(a_reused_connection_pipelines_rset_mail_and_rcpt_in_one_write);
    RUN(a_message_of_several_mebibytes_arrives_intact_through_data);
    RUN(connection_refused_on_the_first_server_fails_over_to_the_second);
    RUN(a_name_whose_first_address_refuses_relays_through_the_next);
    RUN(no_server_answering_is_unavailable_451_4_4_1);
    RUN(a_refused_greeting_or_a_timeout_before_mail_fails_over);
    RUN(a_server_that_failed_set_up_is_tried_last_for_a_while);
    RUN(a_pooled_connection_the_server_closed_while_idle_is_not_reused);
    RUN(a_pooled_connection_found_dead_at_rset_is_retried_once_on_a_new_one);
    RUN(a_drop_in_the_middle_of_data_is_unavailable_451_4_4_2);
    RUN(jobs_over_the_cap_wait_and_run_in_order_on_the_one_connection);
    RUN(a_job_waiting_longer_than_the_timeout_is_unavailable_451_4_4_5);
    RUN(the_counters_follow_connections_and_waits_back_to_zero);
    RUN(the_counters_tell_failed_set_ups_broken_connections_and_wait_timeouts_apart);
    RUN(a_cancelled_job_never_calls_back_and_its_message_is_never_completed);
    RUN(an_idle_connection_gets_quit_after_the_idle_timeout);
    RUN(a_connection_that_reached_max_reuse_is_closed_with_quit);
    RUN(what_the_upstream_cannot_take_is_refused_before_mail);
    RUN(an_address_with_a_control_character_never_reaches_the_upstream);
    RUN(freeing_the_pool_reports_running_jobs_as_unavailable);
    RUN(auth_goes_in_cleartext_only_to_a_loopback_upstream);
    RUN(a_421_to_rset_on_a_pooled_connection_is_retried_on_a_new_one);
    RUN(draining_quits_idle_connections_now_and_busy_ones_after_their_job);
    RUN(a_multi_line_greeting_and_a_server_without_ehlo_are_understood);
    RUN(a_refusal_stands_when_the_rset_that_follows_it_gets_no_answer);
    RUN(starttls_ignores_replies_injected_before_the_handshake_and_auth_goes_inside);
    RUN(implicit_tls_with_auth_login_when_plain_is_not_offered);
    RUN(a_certificate_for_another_name_fails_over_without_sending_anything);
    RUN(a_server_configured_for_starttls_that_does_not_offer_it_is_never_used);
    return check_summary();
}
