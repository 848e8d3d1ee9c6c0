/* tests/unit/test_metrics_conn.c: core/daemon/metrics_conn.c -- one metrics client over a
 * socketpair: a TLS handshake, request and answer with a real OpenSSL client on a thread
 * of its own; a peer that sends nothing, or plain text, or is stopped, ends the handshake
 * with the outcome that says so, at the deadline at the latest; a plain connection reads,
 * answers and lingers until the client closes. */
#include <fcntl.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "config/config.h"
#include "daemon/metrics_conn.h"
#include "net/tls.h"
#include "tmpdir.h"
#include "util/fdwait.h"

static const char *dir; /* removed at exit (tmpdir.h) */
static SSL_CTX    *server_ctx;
static int         never_stop[2]; /* a stop pipe nobody writes to */

static int
make_server_ctx(void)
{
    char               cmd[1024], crt[256], key[256], err[512] = "";
    struct config_tls  policy = {0};
    struct config_cert cert = {crt, key};

    snprintf(crt, sizeof(crt), "%s/m.crt", dir);
    snprintf(key, sizeof(key), "%s/m.key", dir);
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
             "-keyout '%s' -out '%s' -subj '/CN=metrics.test' >/dev/null 2>&1",
             key, crt);
    if (system(cmd) != 0)
        return -1;
    server_ctx = tls_single_ctx_new(&policy, &cert, NULL, err, sizeof(err));
    if (server_ctx == NULL)
        fprintf(stderr, "tls_single_ctx_new: %s\n", err);
    return server_ctx != NULL ? 0 : -1;
}

/* fds[0]: the server's end, non-blocking, as accept4() gives it to the listener. */
static void
pair(int fds[2])
{
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
        abort();
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
}

/* ---- a TLS client on a thread ----------------------------------------------------------- */

struct client {
    int  fd;           /* blocking */
    char answer[256];  /* what it read until the server's close_notify or EOF */
    bool handshook;
};

static void *
client_run(void *arg)
{
    struct client *cl = arg;
    SSL_CTX       *ctx = SSL_CTX_new(TLS_client_method());
    SSL           *ssl = SSL_new(ctx);
    size_t         got = 0;
    int            n;

    SSL_set_fd(ssl, cl->fd);
    cl->handshook = SSL_connect(ssl) == 1;
    if (cl->handshook && SSL_write(ssl, "GET /metrics", 12) == 12)
        while (got < sizeof(cl->answer) - 1 &&
               (n = SSL_read(ssl, cl->answer + got, (int)(sizeof(cl->answer) - 1 - got))) > 0)
            got += (size_t)n;
    cl->answer[got] = '\0';
    if (cl->handshook)
        SSL_shutdown(ssl); /* answer the server's close_notify */
    shutdown(cl->fd, SHUT_WR);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    return NULL;
}

static void
a_tls_request_and_answer_go_through_and_end_with_a_close_notify(void)
{
    struct metrics_conn c;
    struct client       cl = {0};
    pthread_t           t;
    int                 fds[2];
    char                buf[64], err[256] = "";
    size_t              got = 0, n;

    pair(fds);
    cl.fd = fds[1];
    pthread_create(&t, NULL, client_run, &cl);
    metrics_conn_init(&c, fds[0], never_stop[0], fdwait_clock() + 5);
    CHECK_EQ_INT(metrics_conn_accept(&c, server_ctx, err, sizeof(err)), METRICS_CONN_OK);
    CHECK(metrics_conn_bytes_in(&c) > 0);
    while (got < 12 && metrics_conn_recv(&c, buf + got, sizeof(buf) - got, &n) ==
                           METRICS_CONN_OK)
        got += n;
    CHECK(got == 12 && memcmp(buf, "GET /metrics", 12) == 0);
    metrics_conn_send_all(&c, "HTTP/1.1 200 OK\r\n\r\nup 1\n", 24);
    metrics_conn_linger(&c); /* close_notify, then until the client closes */
    pthread_join(t, NULL);
    CHECK(cl.handshook);
    CHECK(strcmp(cl.answer, "HTTP/1.1 200 OK\r\n\r\nup 1\n") == 0);
    metrics_conn_cleanup(&c);
    close(fds[0]);
    close(fds[1]);
}

static void
a_peer_that_sends_nothing_times_out_at_the_deadline_with_nothing_read(void)
{
    struct metrics_conn c;
    int                 fds[2];
    char                err[256] = "";
    double              t0 = fdwait_clock();

    pair(fds);
    metrics_conn_init(&c, fds[0], never_stop[0], t0 + 0.3);
    CHECK_EQ_INT(metrics_conn_accept(&c, server_ctx, err, sizeof(err)), METRICS_CONN_TIMEOUT);
    CHECK(fdwait_clock() - t0 >= 0.3 && fdwait_clock() - t0 < 2);
    CHECK_EQ_INT(metrics_conn_bytes_in(&c), 0);
    metrics_conn_cleanup(&c);
    close(fds[0]);
    close(fds[1]);
}

static void
plain_http_on_a_tls_connection_is_a_tls_error_that_says_so(void)
{
    static const char   req[] = "GET /metrics HTTP/1.1\r\n\r\n";
    struct metrics_conn c;
    int                 fds[2];
    char                err[256] = "", rest[64];
    double              t0 = fdwait_clock();

    pair(fds);
    CHECK(write(fds[1], req, sizeof(req) - 1) == (ssize_t)sizeof(req) - 1);
    metrics_conn_init(&c, fds[0], never_stop[0], t0 + 5);
    CHECK_EQ_INT(metrics_conn_accept(&c, server_ctx, err, sizeof(err)),
                 METRICS_CONN_TLS_ERROR);
    CHECK(strcmp(err, "http request") == 0);
    CHECK(metrics_conn_bytes_in(&c) > 0);
    shutdown(fds[1], SHUT_WR);
    metrics_conn_linger(&c); /* reads the rest, sees the client's EOF: no wait */
    CHECK(fdwait_clock() - t0 < 2);
    CHECK_EQ_INT(read(fds[1], rest, sizeof(rest)), 0); /* no answer, no alert: EOF */
    metrics_conn_cleanup(&c);
    close(fds[0]);
    close(fds[1]);
}

static void
the_stop_pipe_ends_a_handshake_that_waits(void)
{
    struct metrics_conn c;
    int                 fds[2], stop[2];
    char                err[256] = "";
    double              t0 = fdwait_clock();

    pair(fds);
    if (pipe(stop) != 0 || write(stop[1], "x", 1) != 1)
        abort();
    metrics_conn_init(&c, fds[0], stop[0], t0 + 5);
    CHECK_EQ_INT(metrics_conn_accept(&c, server_ctx, err, sizeof(err)), METRICS_CONN_STOP);
    CHECK(fdwait_clock() - t0 < 1);
    metrics_conn_cleanup(&c);
    close(stop[0]);
    close(stop[1]);
    close(fds[0]);
    close(fds[1]);
}

static void
a_plain_connection_reads_answers_and_lingers_until_the_client_closes(void)
{
    struct metrics_conn c;
    int                 fds[2];
    char                buf[64];
    size_t              n = 0;
    ssize_t             k;

    pair(fds);
    CHECK(write(fds[1], "GET /", 5) == 5);
    metrics_conn_init(&c, fds[0], never_stop[0], fdwait_clock() + 5);
    CHECK_EQ_INT(metrics_conn_recv(&c, buf, sizeof(buf), &n), METRICS_CONN_OK);
    CHECK(n == 5 && memcmp(buf, "GET /", 5) == 0);
    CHECK_EQ_INT(metrics_conn_bytes_in(&c), 0); /* counted for TLS only */
    metrics_conn_send_all(&c, "answer", 6);
    CHECK(write(fds[1], "more", 4) == 4); /* unread input: the linger reads it */
    shutdown(fds[1], SHUT_WR);
    metrics_conn_linger(&c);
    k = read(fds[1], buf, sizeof(buf));
    CHECK(k == 6 && memcmp(buf, "answer", 6) == 0);
    CHECK_EQ_INT(read(fds[1], buf, sizeof(buf)), 0); /* our side ended */
    CHECK_EQ_INT(metrics_conn_recv(&c, buf, sizeof(buf), &n), METRICS_CONN_CLOSED);
    metrics_conn_cleanup(&c);
    close(fds[0]);
    close(fds[1]);
}

int
main(void)
{
    dir = test_tmpdir("metrics-conn");
    if (pipe(never_stop) != 0 || make_server_ctx() != 0) {
        fprintf(stderr, "cannot make a test certificate in %s (is openssl installed?)\n", dir);
        return 1;
    }
    RUN(a_tls_request_and_answer_go_through_and_end_with_a_close_notify);
    RUN(a_peer_that_sends_nothing_times_out_at_the_deadline_with_nothing_read);
    RUN(plain_http_on_a_tls_connection_is_a_tls_error_that_says_so);
    RUN(the_stop_pipe_ends_a_handshake_that_waits);
    RUN(a_plain_connection_reads_answers_and_lingers_until_the_client_closes);
    SSL_CTX_free(server_ctx);
    return check_summary();
}
