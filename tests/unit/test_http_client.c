/* tests/unit/test_http_client.c: core/net/http_client.c against a real server on a loopback
 * listener (a thread of this test answering one connection with a canned response, in
 * plain text or TLS with a certificate made at test time for "localhost"), and
 * core/proto/http_response.c on its own, including every response cut at every byte.
 *
 * Here localhost resolves as on Debian, ::1 first, then 127.0.0.1 (fake_getaddrinfo.h),
 * whatever this machine's /etc/hosts says, while the server listens on 127.0.0.1 only:
 * every request to localhost goes through a refused ::1 first. Other names get
 * addresses that refuse or never answer, for the tests of what the client does then. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "fake_getaddrinfo.h"
#include "net/http_client.h"
#include "proto/http_response.h"
#include "loopback.h"
#include "util/offload.h"
#include "tmpdir.h"

static const char *dir; /* removed at exit (tmpdir.h) */
static char cert[128], key[128];

/* ---- the server --------------------------------------------------------------------- */

struct server {
    int         lfd;
    int         v6fd;      /* [::1]:port bound, not listening: a connect there is refused */
    int         port;
    SSL_CTX    *ctx;       /* NULL: plain */
    const char *resp;
    size_t      piece;     /* write the response this many octets at a time (0: at once) */
    int         delay_ms;  /* before answering */
    char        req[16384]; /* what the client sent */
    size_t      req_len;
    pthread_t   thread;
};

static void
sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

    nanosleep(&ts, NULL);
}

/* The request is complete at the empty line plus Content-Length octets. */
static bool
request_complete(const char *r, size_t n)
{
    const char *end = memmem(r, n, "\r\n\r\n", 4);
    const char *cl = memmem(r, n, "Content-Length: ", 16);

    if (end == NULL)
        return false;
    return cl == NULL || (size_t)(end + 4 - r) + strtoul(cl + 16, NULL, 10) <= n;
}

static void *
server_main(void *arg)
{
    struct server *s = arg;
    int            fd = accept(s->lfd, NULL, NULL);
    SSL           *ssl = NULL;
    size_t         len = strlen(s->resp), off = 0;

    if (fd < 0)
        return NULL;
    if (s->ctx != NULL) {
        ssl = SSL_new(s->ctx);
        SSL_set_fd(ssl, fd);
        if (SSL_accept(ssl) != 1)
            goto out;
    }
    while (!request_complete(s->req, s->req_len) && s->req_len < sizeof(s->req)) {
        ssize_t n = ssl ? SSL_read(ssl, s->req + s->req_len, (int)(sizeof(s->req) - s->req_len))
                        : read(fd, s->req + s->req_len, sizeof(s->req) - s->req_len);
        if (n <= 0)
            goto out;
        s->req_len += (size_t)n;
    }
    sleep_ms(s->delay_ms);
    while (off < len) {
        size_t  k = s->piece > 0 && s->piece < len - off ? s->piece : len - off;
        ssize_t n = ssl ? SSL_write(ssl, s->resp + off, (int)k) : write(fd, s->resp + off, k);

        if (n <= 0)
            break;
        off += (size_t)n;
        if (s->piece > 0)
            sleep_ms(1);
    }
    if (ssl != NULL)
        SSL_shutdown(ssl);
out:
    SSL_free(ssl);
    close(fd);
    return NULL;
}

static void
server_start(struct server *s, const char *resp, SSL_CTX *ctx)
{
    struct sockaddr_in sin = { .sin_family = AF_INET };
    socklen_t          sl = sizeof(sin);

    s->resp = resp;
    s->ctx = ctx;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    bind(s->lfd, (struct sockaddr *)&sin, sizeof(sin));
    listen(s->lfd, 4);
    getsockname(s->lfd, (struct sockaddr *)&sin, &sl);
    s->port = ntohs(sin.sin_port);
    s->v6fd = loopback_refusing_v6(s->port);
    pthread_create(&s->thread, NULL, server_main, s);
}

static void
server_stop(struct server *s)
{
    shutdown(s->lfd, SHUT_RDWR); /* an accept() never reached returns */
    pthread_join(s->thread, NULL);
    close(s->lfd);
    if (s->v6fd >= 0)
        close(s->v6fd);
}

/* ---- the client side ---------------------------------------------------------------- */

struct outcome {
    bool   called;
    int    status;
    char   error[512];
    char  *body;
    size_t body_len;
    char   ctype[128];
    struct ev_loop *loop;
};

static void
done_cb(void *arg, const struct http_client_result *res)
{
    struct outcome *o = arg;

    o->called = true;
    o->status = res->status;
    snprintf(o->error, sizeof(o->error), "%s", res->error ? res->error : "");
    if (res->body != NULL) {
        o->body = malloc(res->body_len + 1);
        memcpy(o->body, res->body, res->body_len + 1);
        o->body_len = res->body_len;
    }
    for (size_t i = 0; i < res->n_headers; i++)
        if (strcmp(res->headers[i].name, "content-type") == 0)
            snprintf(o->ctype, sizeof(o->ctype), "%s", res->headers[i].value);
    ev_break(o->loop, EVBREAK_ALL);
}

static struct ev_loop        *loop;
static struct offload        *pool;
static struct offload_return *pool_ret;

/* Run one request to completion. */
static void
fetch(struct http_client_opts *opts, struct outcome *o)
{
    char                    err[256];
    struct http_client_req *req;

    memset(o, 0, sizeof(*o));
    o->loop = loop;
    if (opts->timeout == 0)
        opts->timeout = 5;
    req = http_client_request(loop, pool, pool_ret, opts, done_cb, o, err, sizeof(err));
    if (req == NULL) {
        snprintf(o->error, sizeof(o->error), "start: %s", err);
        return;
    }
    CHECK(!o->called); /* never before returning */
    ev_run(loop, 0);
}

static char *
url(const char *scheme, const char *host, int port, const char *path)
{
    static char buf[256];

    snprintf(buf, sizeof(buf), "%s://%s:%d%s", scheme, host, port, path);
    return buf;
}

#define JSON_OK "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"keys\":[]}"

static void
a_get_sends_host_and_connection_close_and_reads_a_content_length_body(void)
{
    struct server           s = { 0 };
    struct outcome          o;
    struct http_client_opts opts = { .method = "GET" };

    server_start(&s, JSON_OK, NULL);
    opts.url = url("http", "127.0.0.1", s.port, "/jwks?x=1");
    fetch(&opts, &o);
    server_stop(&s);
    CHECK_EQ_INT(o.status, 200);
    CHECK_MEM(o.body, o.body_len, "{\"keys\":[]}");
    CHECK(strcmp(o.ctype, "application/json") == 0);
    s.req[s.req_len] = '\0';
    CHECK(strncmp(s.req, "GET /jwks?x=1 HTTP/1.1\r\nHost: 127.0.0.1:", 40) == 0);
    CHECK(strstr(s.req, "\r\nConnection: close\r\n") != NULL);
    CHECK(strstr(s.req, "Content-Length") == NULL);
    free(o.body);
}

static void
a_post_sends_its_body_and_headers_and_reads_a_chunked_reply_in_pieces(void)
{
    struct server           s = { 0 };
    struct outcome          o;
    const char *const       hdrs[] = { "Authorization: Basic YTpi", NULL };
    struct http_client_opts opts = { .method = "POST", .headers = hdrs,
                                     .body = "token=abc&token_type_hint=access_token",
                                     .body_len = 38 };

    s.piece = 3;
    server_start(&s, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "5\r\n{\"act\r\n9;ext=1\r\nive\":true\r\n1\r\n}\r\n0\r\n\r\n", NULL);
    opts.url = url("http", "127.0.0.1", s.port, "/introspect");
    fetch(&opts, &o);
    server_stop(&s);
    CHECK_EQ_INT(o.status, 200);
    CHECK_MEM(o.body, o.body_len, "{\"active\":true}");
    s.req[s.req_len] = '\0';
    CHECK(strncmp(s.req, "POST /introspect HTTP/1.1\r\n", 27) == 0);
    CHECK(strstr(s.req, "\r\nAuthorization: Basic YTpi\r\n") != NULL);
    CHECK(strstr(s.req, "\r\nContent-Type: application/x-www-form-urlencoded\r\n") != NULL);
    CHECK(strstr(s.req, "\r\nContent-Length: 38\r\n\r\ntoken=abc&token_type_hint=access_token") !=
          NULL);
    free(o.body);
}

static void
a_body_without_a_length_ends_at_eof_and_an_error_status_is_a_status(void)
{
    struct server           s = { 0 };
    struct outcome          o;
    struct http_client_opts opts = { .method = "GET" };

    server_start(&s, "HTTP/1.0 503 Unavailable\r\n\r\ntry later", NULL);
    opts.url = url("http", "localhost", s.port, "/"); /* resolved on the pool */
    fetch(&opts, &o);
    server_stop(&s);
    CHECK_EQ_INT(o.status, 503);
    CHECK_MEM(o.body, o.body_len, "try later");
    free(o.body);
}

static void
failures_come_back_as_errors(void)
{
    static const struct {
        const char *resp;
        const char *error;
    } cases[] = {
        { "HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n", "too large" },
        { "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "cut short" },
        { "HTTP/1.1 2OO OK\r\n\r\n", "malformed" },
        { "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", "malformed" },
        { "", "cut short" },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct server           s = { 0 };
        struct outcome          o;
        struct http_client_opts opts = { .method = "GET", .body_max = 1000 };

        server_start(&s, cases[i].resp, NULL);
        opts.url = url("http", "127.0.0.1", s.port, "/");
        fetch(&opts, &o);
        server_stop(&s);
        CHECK_EQ_INT(o.status, 0);
        if (strstr(o.error, cases[i].error) == NULL)
            fprintf(stderr, "case %zu: %s\n", i, o.error);
        CHECK(strstr(o.error, cases[i].error) != NULL);
        CHECK(o.body == NULL);
    }
}

static void
a_server_that_does_not_answer_times_out(void)
{
    struct server           s = { 0 };
    struct outcome          o;
    struct http_client_opts opts = { .method = "GET", .timeout = 0.3 };
    double                  t0 = ev_time();

    s.delay_ms = 800;
    server_start(&s, JSON_OK, NULL);
    opts.url = url("http", "127.0.0.1", s.port, "/");
    fetch(&opts, &o);
    CHECK(ev_time() - t0 < 0.7);
    server_stop(&s);
    CHECK(strstr(o.error, "timed out") != NULL);
}

static void
plain_http_is_refused_off_loopback_and_a_closed_port_is_an_error(void)
{
    struct outcome          o;
    struct http_client_opts opts = { .method = "GET", .url = "http://192.0.2.1/" };
    struct server           s = { 0 };

    fetch(&opts, &o);
    CHECK(strstr(o.error, "plain http only to a loopback address") != NULL);
    server_start(&s, "", NULL);
    server_stop(&s); /* the port is closed now */
    opts.url = url("http", "127.0.0.1", s.port, "/");
    fetch(&opts, &o);
    CHECK(strstr(o.error, "connect") != NULL);
    opts.url = "ftp://x/";
    fetch(&opts, &o);
    CHECK(strstr(o.error, "start: not an http") != NULL);
    opts.url = "http://127.0.0.1/";
    opts.method = "PUT";
    fetch(&opts, &o);
    CHECK(strstr(o.error, "start: method") != NULL);
}

static SSL_CTX *
server_ctx(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

    SSL_CTX_use_certificate_chain_file(ctx, cert);
    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM);
    return ctx;
}

static void
https_verifies_the_chain_and_the_host_name(void)
{
    SSL_CTX                *ctx = server_ctx();
    struct server           s = { 0 };
    struct outcome          o;
    struct http_client_opts opts = { .method = "GET", .ca_file = cert };

    server_start(&s, JSON_OK, ctx);
    opts.url = url("https", "localhost", s.port, "/jwks");
    fetch(&opts, &o);
    server_stop(&s);
    CHECK_EQ_INT(o.status, 200);
    CHECK_MEM(o.body, o.body_len, "{\"keys\":[]}");
    free(o.body);

    memset(&s, 0, sizeof(s)); /* the certificate names localhost, not 127.0.0.1 */
    server_start(&s, JSON_OK, ctx);
    opts.url = url("https", "127.0.0.1", s.port, "/jwks");
    fetch(&opts, &o);
    server_stop(&s);
    CHECK_EQ_INT(o.status, 0);
    CHECK(strstr(o.error, "TLS with 127.0.0.1") != NULL);

    memset(&s, 0, sizeof(s)); /* not trusted without ca_file */
    server_start(&s, JSON_OK, ctx);
    opts.url = url("https", "localhost", s.port, "/jwks");
    opts.ca_file = NULL;
    fetch(&opts, &o);
    server_stop(&s);
    CHECK_EQ_INT(o.status, 0);
    CHECK(strstr(o.error, "TLS with localhost") != NULL);
    SSL_CTX_free(ctx);
}

static void
stop_cb(struct ev_loop *l, ev_timer *t, int revents)
{
    (void)t;
    (void)revents;
    ev_break(l, EVBREAK_ALL);
}

static void
a_cancelled_request_never_calls_back(void)
{
    struct server           s = { 0 };
    struct outcome          o = { 0 };
    struct http_client_opts opts = { .method = "GET", .timeout = 5 };
    char                    err[128];
    struct http_client_req *req;
    ev_timer                t;

    s.delay_ms = 200;
    server_start(&s, JSON_OK, NULL);
    opts.url = url("http", "localhost", s.port, "/");
    req = http_client_request(loop, pool, pool_ret, &opts, done_cb, &o, err, sizeof(err));
    CHECK(req != NULL);
    http_client_cancel(req); /* while the name is on the pool */
    ev_timer_init(&t, stop_cb, 0.1, 0.);
    ev_timer_start(loop, &t);
    ev_run(loop, 0);
    CHECK(!o.called);
    server_stop(&s);
}

/* ---- names with several addresses -------------------------------------------------- */

static void
localhost_with_a_refusing_ipv6_address_first_is_reached_on_127_0_0_1(void)
{
    struct server           s = { 0 };
    struct outcome          o;
    struct http_client_opts opts = { .method = "GET" };
    double                  t0 = ev_time();

    server_start(&s, JSON_OK, NULL); /* 127.0.0.1 only; [::1]:port refuses */
    opts.url = url("http", "localhost", s.port, "/jwks");
    fetch(&opts, &o);
    server_stop(&s);
    CHECK_EQ_INT(o.status, 200);
    CHECK_MEM(o.body, o.body_len, "{\"keys\":[]}");
    CHECK(ev_time() - t0 < 0.25); /* a refusal costs no stagger */
    s.req[s.req_len] = '\0';
    CHECK(strncmp(s.req, "GET /jwks HTTP/1.1\r\nHost: localhost:", 36) == 0);
    free(o.body);
}

static void
a_name_whose_first_address_never_answers_is_reached_on_the_next(void)
{
    struct server           s = { 0 };
    struct outcome          o;
    struct http_client_opts opts = { .method = "GET" };
    int                     bport, filler, bfd = loopback_blackhole(&bport, &filler);
    const struct fake_addr  addrs[] = { { "127.0.0.1", bport }, { "127.0.0.1", 0 } };
    double                  t0 = ev_time(), elapsed;

    fake_getaddrinfo_set("silent-first.test", addrs, 2);
    server_start(&s, JSON_OK, NULL);
    opts.url = url("http", "silent-first.test", s.port, "/");
    fetch(&opts, &o);
    elapsed = ev_time() - t0;
    server_stop(&s);
    CHECK_EQ_INT(o.status, 200);
    CHECK(elapsed >= 0.25 && elapsed < 2); /* the second connect began after 250 ms */
    free(o.body);
    close(filler);
    close(bfd);
}

static void
when_every_address_refuses_the_error_names_the_last_one_and_the_count(void)
{
    struct outcome          o;
    struct http_client_opts opts = { .method = "GET", .timeout = 5 };
    const struct fake_addr  addrs[] = { { "::1", loopback_dead_port(AF_INET6) },
                                        { "127.0.0.1", loopback_dead_port(AF_INET) } };
    double                  t0 = ev_time();

    fake_getaddrinfo_set("all-refuse.test", addrs, 2);
    opts.url = "http://all-refuse.test:8080/";
    fetch(&opts, &o);
    CHECK_EQ_INT(o.status, 0);
    CHECK(ev_time() - t0 < 1);
    if (strcmp(o.error, "connect to all-refuse.test: Connection refused "
                        "(2 addresses tried, the last 127.0.0.1)") != 0)
        fprintf(stderr, "got: %s\n", o.error);
    CHECK(strcmp(o.error, "connect to all-refuse.test: Connection refused "
                          "(2 addresses tried, the last 127.0.0.1)") == 0);
}

static void
when_no_address_answers_the_request_fails_at_its_deadline(void)
{
    static const struct {
        double      connect_timeout;
        const char *error;
    } cases[] = {
        { 0, "request to all-silent.test timed out connecting (2 addresses tried)" },
        { 0.4, "connect to all-silent.test timed out (2 addresses tried)" },
    };
    int                    bport, filler, bfd = loopback_blackhole(&bport, &filler);
    const struct fake_addr addrs[] = { { "127.0.0.1", bport }, { "127.0.0.1", bport } };

    fake_getaddrinfo_set("all-silent.test", addrs, 2);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct outcome          o;
        struct http_client_opts opts = { .method = "GET", .timeout = 0.6,
                                         .connect_timeout = cases[i].connect_timeout,
                                         .url = "http://all-silent.test/" };
        double                  t0 = ev_time(), elapsed;

        fetch(&opts, &o);
        elapsed = ev_time() - t0;
        CHECK_EQ_INT(o.status, 0);
        CHECK(elapsed < 1.2); /* never past the deadline (plus scheduling) */
        if (strcmp(o.error, cases[i].error) != 0)
            fprintf(stderr, "case %zu: %s\n", i, o.error);
        CHECK(strcmp(o.error, cases[i].error) == 0);
    }
    close(filler);
    close(bfd);
}

/* ---- the parser alone --------------------------------------------------------------- */

static void
every_response_cut_short_is_incomplete(void)
{
    static const char *const good[] = {
        JSON_OK,
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nT: 1\r\n\r\n",
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
    };

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        size_t               n = strlen(good[i]);
        char                 scratch[256];
        struct http_response r;

        CHECK(http_response_parse(good[i], n, false, scratch, 100, &r) == HTTP_RESPONSE_OK);
        for (size_t cut = 0; cut < n; cut++)
            CHECK(http_response_parse(good[i], cut, false, scratch, 100, &r) ==
                  HTTP_RESPONSE_AGAIN);
    }
}

static void
ambiguous_framing_is_malformed(void)
{
    static const char *const bad[] = {
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\nx",
        "HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX : a\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n",
        "HTTP/1.1 101 Switching\r\n\r\n",
        "HTTP/2 200 OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char                 scratch[256];
        struct http_response r;
        enum http_response_rc rc = http_response_parse(bad[i], strlen(bad[i]), true, scratch,
                                                       100, &r);
        if (rc != HTTP_RESPONSE_BAD)
            fprintf(stderr, "case %zu: rc %d\n", i, rc);
        CHECK(rc == HTTP_RESPONSE_BAD);
    }
}

static void
a_huge_chunk_size_is_too_large_not_an_overflow(void)
{
    const char          *p = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "ffffffffffffffffffff\r\n";
    char                 scratch[256];
    struct http_response r;

    CHECK(http_response_parse(p, strlen(p), false, scratch, 100, &r) ==
          HTTP_RESPONSE_TOO_LARGE);
}

int
main(void)
{
    static const struct fake_addr debian_localhost[] = { { "::1", 0 }, { "127.0.0.1", 0 } };
    char                          cmd[512];

    dir = test_tmpdir("http-client");
    snprintf(cert, sizeof(cert), "%s/localhost.crt", dir);
    snprintf(key, sizeof(key), "%s/localhost.key", dir);
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
             "-keyout '%s' -out '%s' -subj '/CN=localhost' "
             "-addext 'subjectAltName=DNS:localhost' >/dev/null 2>&1",
             key, cert);
    if (system(cmd) != 0)
        return 1;
    fake_getaddrinfo_set("localhost", debian_localhost, 2);
    loop = ev_loop_new(EVFLAG_AUTO);
    pool = offload_new(1, 0, 0);
    pool_ret = offload_return_new(loop);
    RUN(every_response_cut_short_is_incomplete);
    RUN(ambiguous_framing_is_malformed);
    RUN(a_huge_chunk_size_is_too_large_not_an_overflow);
    RUN(a_get_sends_host_and_connection_close_and_reads_a_content_length_body);
    RUN(a_post_sends_its_body_and_headers_and_reads_a_chunked_reply_in_pieces);
    RUN(a_body_without_a_length_ends_at_eof_and_an_error_status_is_a_status);
    RUN(failures_come_back_as_errors);
    RUN(a_server_that_does_not_answer_times_out);
    RUN(plain_http_is_refused_off_loopback_and_a_closed_port_is_an_error);
    RUN(https_verifies_the_chain_and_the_host_name);
    RUN(a_cancelled_request_never_calls_back);
    RUN(localhost_with_a_refusing_ipv6_address_first_is_reached_on_127_0_0_1);
    RUN(a_name_whose_first_address_never_answers_is_reached_on_the_next);
    RUN(when_every_address_refuses_the_error_names_the_last_one_and_the_count);
    RUN(when_no_address_answers_the_request_fails_at_its_deadline);
    offload_free(pool);
    offload_return_free(pool_ret);
    ev_loop_destroy(loop);
    return check_summary();
}
