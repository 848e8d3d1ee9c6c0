/* core/daemon/metrics_conn.c: one client connection of the metrics listener, plain or TLS,
 * against its deadline; see metrics_conn.h. The same loop for every operation: try it,
 * and when the socket (or OpenSSL, for the socket) is not ready, wait with fdwait() for
 * what it needs, until the deadline or the stop pipe. */
#include "daemon/metrics_conn.h"

#include <errno.h>
#include <openssl/err.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <openssl/x509.h>

#include "util/fdwait.h"

void
metrics_conn_init(struct metrics_conn *c, int fd, int stop_fd, double deadline)
{
    memset(c, 0, sizeof(*c));
    c->fd = fd;
    c->stop_fd = stop_fd;
    c->deadline = deadline;
}

static enum metrics_conn_rc
metrics_conn_wait(struct metrics_conn *c, short events)
{
    switch (fdwait(c->stop_fd, c->fd, events, c->deadline)) {
    case FDWAIT_READY: return METRICS_CONN_OK;
    case FDWAIT_STOP: return METRICS_CONN_STOP;
    case FDWAIT_TIMEOUT: break;
    }
    return METRICS_CONN_TIMEOUT;
}

/* After SSL_*() returned n <= 0: the wait it asks for (OK when it is over), or why the
 * connection is over. Call with this thread's error queue holding only that call's. */
static enum metrics_conn_rc
metrics_conn_ssl_wait(struct metrics_conn *c, int n)
{
    switch (SSL_get_error(c->ssl, n)) {
    case SSL_ERROR_WANT_READ: return metrics_conn_wait(c, POLLIN);
    case SSL_ERROR_WANT_WRITE: return metrics_conn_wait(c, POLLOUT);
    case SSL_ERROR_ZERO_RETURN: return METRICS_CONN_CLOSED; /* close_notify: no more input */
    default: break;
    }
    c->failed = true;
    return METRICS_CONN_TLS_ERROR;
}

/* What went wrong, in OpenSSL's words without its codes ("wrong version number"), and
 * why a client certificate was refused when it was. Clears the error queue. */
static void
metrics_conn_reason(struct metrics_conn *c, int saved_errno, char *err, size_t errlen)
{
    unsigned long e = ERR_peek_last_error();
    const char   *why = e != 0 ? ERR_reason_error_string(e) : NULL;
    long          v = SSL_get_verify_result(c->ssl);

    if (why == NULL)
        why = saved_errno != 0 ? strerror(saved_errno) : "closed by the client";
    if (v != X509_V_OK)
        snprintf(err, errlen, "%s: %s", why, X509_verify_cert_error_string(v));
    else
        snprintf(err, errlen, "%s", why);
    ERR_clear_error();
}

enum metrics_conn_rc
metrics_conn_accept(struct metrics_conn *c, SSL_CTX *ctx, char *err, size_t errlen)
{
    enum metrics_conn_rc rc;
    int                  n;

    c->ssl = SSL_new(ctx);
    if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
        snprintf(err, errlen, "out of memory");
        c->failed = true;
        return METRICS_CONN_TLS_ERROR;
    }
    SSL_set_accept_state(c->ssl);
    for (;;) {
        ERR_clear_error();
        errno = 0;
        n = SSL_do_handshake(c->ssl);
        if (n == 1)
            return METRICS_CONN_OK;
        rc = metrics_conn_ssl_wait(c, n);
        if (rc == METRICS_CONN_TLS_ERROR || rc == METRICS_CONN_CLOSED) {
            metrics_conn_reason(c, errno, err, errlen);
            return rc;
        }
        if (rc != METRICS_CONN_OK)
            return rc;
    }
}

size_t
metrics_conn_bytes_in(const struct metrics_conn *c)
{
    return c->ssl != NULL ? (size_t)BIO_number_read(SSL_get_rbio(c->ssl)) : 0;
}

enum metrics_conn_rc
metrics_conn_recv(struct metrics_conn *c, char *buf, size_t cap, size_t *got)
{
    enum metrics_conn_rc rc;
    ssize_t              n;
    int                  k;

    *got = 0;
    for (;;) {
        if (c->ssl != NULL) {
            ERR_clear_error();
            k = SSL_read(c->ssl, buf, cap > 65536 ? 65536 : (int)cap);
            if (k > 0) {
                *got = (size_t)k;
                return METRICS_CONN_OK;
            }
            rc = metrics_conn_ssl_wait(c, k);
            ERR_clear_error();
            if (rc == METRICS_CONN_TLS_ERROR)
                return METRICS_CONN_CLOSED; /* after the handshake: a broken connection */
        } else {
            n = recv(c->fd, buf, cap, 0);
            if (n > 0) {
                *got = (size_t)n;
                return METRICS_CONN_OK;
            }
            if (n < 0 && errno == EINTR)
                continue;
            if (n == 0 || errno != EAGAIN)
                return METRICS_CONN_CLOSED;
            rc = metrics_conn_wait(c, POLLIN);
        }
        if (rc != METRICS_CONN_OK)
            return rc;
    }
}

void
metrics_conn_send_all(struct metrics_conn *c, const char *p, size_t len)
{
    int k;

    if (c->ssl == NULL) {
        fdwait_send_all(c->stop_fd, c->fd, p, len, c->deadline);
        return;
    }
    while (len > 0) {
        ERR_clear_error();
        k = SSL_write(c->ssl, p, len > 65536 ? 65536 : (int)len);
        if (k > 0) {
            p += k;
            len -= (size_t)k;
        } else if (metrics_conn_ssl_wait(c, k) != METRICS_CONN_OK) {
            ERR_clear_error();
            return;
        }
    }
}

/* One close_notify, unless the connection failed (OpenSSL forbids SSL_shutdown() then) or
 * never finished its handshake. Its answer is not waited for: the linger reads it. */
static void
metrics_conn_close_notify(struct metrics_conn *c)
{
    int n;

    if (c->ssl == NULL || c->failed || !SSL_is_init_finished(c->ssl))
        return;
    for (;;) {
        ERR_clear_error();
        n = SSL_shutdown(c->ssl);
        if (n >= 0 || SSL_get_error(c->ssl, n) != SSL_ERROR_WANT_WRITE ||
            metrics_conn_wait(c, POLLOUT) != METRICS_CONN_OK)
            break;
    }
    ERR_clear_error();
}

void
metrics_conn_linger(struct metrics_conn *c)
{
    char    sink[4096];
    ssize_t n;

    metrics_conn_close_notify(c);
    if (shutdown(c->fd, SHUT_WR) != 0)
        return;
    for (;;) {
        n = recv(c->fd, sink, sizeof(sink), 0);
        if (n > 0 || (n < 0 && errno == EINTR))
            continue;
        if (n == 0 || errno != EAGAIN || metrics_conn_wait(c, POLLIN) != METRICS_CONN_OK)
            return;
    }
}

void
metrics_conn_cleanup(struct metrics_conn *c)
{
    SSL_free(c->ssl);
    c->ssl = NULL;
}
