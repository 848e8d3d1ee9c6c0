/* core/net/http_client.c: one HTTP/1.1 request per connection on a worker's loop. See
 * http_client.h. Steps, each from the loop: resolve (numeric at once, else getaddrinfo on
 * the offload pool) -> connect to the first address that answers (tcp_dial.c: every
 * address the name has, in getaddrinfo's order, staggered) -> TLS handshake (conn.c,
 * verifying the chain and the host name) -> send the request -> read until
 * http_response.c says the response is complete (or the peer closes) -> done(). One
 * deadline covers all of it; a second timer bounds connect + handshake. */
#include "net/http_client.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/buf.h"
#include "net/conn.h"
#include "proto/http_response.h"
#include "proto/http_url.h"
#include "util/log.h"
#include "util/offload.h"
#include "net/tcp_dial.h"
#include "net/tls.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

#define HTTP_REQUEST_MAX (64 * 1024 + HTTP_URL_MAX) /* request line, headers, body */

struct http_resolve_job {
    struct offload_job      job;     /* first: the offload queue links through it */
    struct http_client_req *req;     /* NULL once cancelled (loop thread only) */
    char                    host[256];
    char                    port[8];
    struct tcp_dial_addr    addrs[TCP_DIAL_ADDRS_MAX]; /* written by the pool thread */
    size_t                  n_addrs;
    int                     rc;      /* getaddrinfo's */
};

struct http_client_req {
    struct ev_loop          *loop;     /* borrows */
    struct offload          *offload;  /* borrows; NULL: numeric hosts only */
    struct offload_return   *ret;      /* borrows */
    struct http_url          url;
    struct buf               request;  /* the bytes to send */
    SSL_CTX                 *ssl_ctx;  /* owns; https only */
    struct conn             *conn;     /* owns, once connecting */
    struct http_resolve_job *resolving; /* the job on the pool, or NULL */
    struct tcp_dial          dial;      /* the connects, while dialing */
    bool                     dialing;
    ev_timer                 deadline;  /* the whole request */
    ev_timer                 start;     /* 0 s: the first step runs from the loop */
    ev_timer                 connecting; /* connect + TLS handshake */
    double                   connect_timeout;
    uint64_t                 sid;       /* for log lines */
    size_t                   body_max;
    bool                     insecure;
    http_client_done_fn      done;
    void                    *arg;
    char                     error[512];
};

static bool
http_is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;

        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return false;
}

/* ---- ending ------------------------------------------------------------------------- */

static void
http_client_release(struct http_client_req *req)
{
    if (req->resolving != NULL)
        req->resolving->req = NULL; /* http_resolve_done frees the job */
    ev_timer_stop(req->loop, &req->deadline);
    ev_timer_stop(req->loop, &req->start);
    ev_timer_stop(req->loop, &req->connecting);
    tcp_dial_stop(&req->dial);
    conn_free(req->conn);
    SSL_CTX_free(req->ssl_ctx);
    buf_cleanup(&req->request);
    free(req);
}

void
http_client_cancel(struct http_client_req *req)
{
    if (req != NULL)
        http_client_release(req);
}

/* Report res and free everything. The connection is closed before done() runs, so that
 * done() may start another request (or resume a hook that does). */
static void
http_client_finish(struct http_client_req *req, struct http_client_result *res)
{
    http_client_done_fn done = req->done;
    void               *arg = req->arg;

    http_client_release(req);
    done(arg, res);
}

static void http_client_fail(struct http_client_req *req, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
http_client_fail(struct http_client_req *req, const char *fmt, ...)
{
    struct http_client_result res = { 0 };
    char                      why[sizeof(req->error)];
    va_list                   ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    res.error = why;
    http_client_finish(req, &res);
}

static void
http_client_succeed(struct http_client_req *req, const struct http_response *r)
{
    struct http_client_result  res = { 0 };
    struct http_client_header *hs = calloc(r->n_headers + 1, sizeof(*hs));
    char                      *body = malloc(r->body_len + 1);
    size_t                     i;

    for (i = 0; hs != NULL && i < r->n_headers; i++) {
        const struct http_header *h = &r->headers[i];

        hs[i].name = strndup(h->name, h->name_len);
        hs[i].value = strndup(h->value, h->value_len);
        if (hs[i].name == NULL || hs[i].value == NULL)
            break;
        for (char *c = hs[i].name; *c; c++)
            *c = (char)tolower((unsigned char)*c);
    }
    if (hs == NULL || body == NULL || i < r->n_headers) {
        http_client_fail(req, "out of memory");
    } else {
        memcpy(body, r->body, r->body_len);
        body[r->body_len] = '\0';
        res.status = r->status;
        res.body = body;
        res.body_len = r->body_len;
        res.headers = hs;
        res.n_headers = r->n_headers;
        http_client_finish(req, &res);
    }
    for (i = 0; hs != NULL && i < r->n_headers; i++) {
        free(hs[i].name);
        free(hs[i].value);
    }
    free(hs);
    free(body);
}

/* ---- reading the response ----------------------------------------------------------- */

/* CONN_GONE when the request ended. */
static enum conn_rc
http_client_parse(struct http_client_req *req, bool eof)
{
    struct conn          *c = req->conn;
    size_t                n = buf_used(&c->in);
    char                 *scratch = malloc(n + 1);
    struct http_response *r = malloc(sizeof(*r));
    enum http_response_rc rc;

    if (scratch == NULL || r == NULL) {
        free(scratch);
        free(r);
        http_client_fail(req, "out of memory");
        return CONN_GONE;
    }
    rc = http_response_parse(buf_head(&c->in), n, eof, scratch, req->body_max, r);
    if (rc == HTTP_RESPONSE_AGAIN && !eof && n >= c->in_max)
        rc = HTTP_RESPONSE_TOO_LARGE; /* framing overhead past the cap */
    switch (rc) {
    case HTTP_RESPONSE_OK:
        http_client_succeed(req, r);
        break;
    case HTTP_RESPONSE_AGAIN:
        if (eof)
            http_client_fail(req, "response cut short");
        break;
    case HTTP_RESPONSE_BAD:
        http_client_fail(req, "malformed HTTP response");
        break;
    case HTTP_RESPONSE_TOO_LARGE:
        http_client_fail(req, "response too large");
        break;
    }
    free(scratch);
    free(r);
    return rc == HTTP_RESPONSE_AGAIN && !eof ? CONN_OK : CONN_GONE;
}

static enum conn_rc
http_client_send(struct http_client_req *req)
{
    ev_timer_stop(req->loop, &req->connecting); /* the deadline alone bounds the rest */
    req->conn->in_max = 2 * req->body_max + HTTP_RESPONSE_HEAD_MAX + 65536;
    if (conn_write(req->conn, buf_head(&req->request), buf_used(&req->request)) != 0) {
        http_client_fail(req, "request too large");
        return CONN_GONE;
    }
    buf_cleanup(&req->request);
    conn_read_start(req->conn);
    return conn_flush(req->conn, false); /* a write error comes back as CONN_EV_CLOSED */
}

static enum conn_rc
http_client_conn_cb(void *owner, struct conn *c, enum conn_event ev)
{
    struct http_client_req *req = owner;

    switch (ev) {
    case CONN_EV_TLS:
        return http_client_send(req);
    case CONN_EV_INPUT:
        return http_client_parse(req, false);
    case CONN_EV_TIMEOUT: /* no conn_set_timeout: req->connecting, then the deadline */
        http_client_fail(req, "connection to %s timed out", req->url.host);
        return CONN_GONE;
    case CONN_EV_CLOSED:
        if (c->reading && !c->handshaking && strcmp(c->error, "peer closed") == 0)
            return http_client_parse(req, true); /* always ends the request */
        if (c->handshaking) {
            long v = SSL_get_verify_result(c->ssl);

            snprintf(req->error, sizeof(req->error), "%s: %s", req->url.host,
                     v != X509_V_OK ? X509_verify_cert_error_string(v) : "handshake failed");
            http_client_fail(req, "TLS with %s", req->error);
            return CONN_GONE;
        }
        http_client_fail(req, "connection %s", c->error);
        return CONN_GONE;
    case CONN_EV_FLUSHED:
        break;
    }
    return CONN_OK;
}

/* ---- connecting --------------------------------------------------------------------- */

static void
http_client_connected(struct http_client_req *req)
{
    if (req->url.is_https) {
        SSL *ssl = tls_client_ssl_new(req->ssl_ctx, req->conn->fd, req->url.host);

        if (ssl == NULL) {
            http_client_fail(req, "TLS setup failed");
            return;
        }
        conn_start_tls(req->conn, ssl);
        return;
    }
    (void)http_client_send(req);
}

static void
http_client_log_connect(const struct http_client_req *req, const struct tcp_dial_result *r)
{
    struct logline l;
    char           addr[64];

    tcp_dial_addr_text(r->addr, addr, sizeof(addr));
    log_begin(&l, r->fd < 0 ? LOG_INFO : r->failed > 0 ? LOG_NOTICE : LOG_DEBUG,
              r->fd < 0 ? "http.unreachable" : "http.connect", req->sid);
    log_str(&l, "host", req->url.host);
    log_str(&l, "addr", addr); /* the one that answered, or the last that failed */
    log_int(&l, "port", req->url.port);
    log_int(&l, "tried", (long long)r->tried);
    if (r->failed > 0) {
        log_int(&l, "failed", (long long)r->failed);
        log_str(&l, "error", strerror(r->error)); /* the last failure */
    }
    log_end(&l);
}

static void
http_client_dialed(void *owner, const struct tcp_dial_result *r)
{
    struct http_client_req *req = owner;

    req->dialing = false;
    http_client_log_connect(req, r);
    if (r->fd < 0) {
        tcp_dial_error(r, req->url.host, req->error, sizeof(req->error));
        http_client_fail(req, "%s", req->error);
        return;
    }
    req->conn = conn_new(req->loop, r->fd, req, http_client_conn_cb);
    if (req->conn == NULL) {
        close(r->fd);
        http_client_fail(req, "out of memory");
        return;
    }
    http_client_connected(req);
}

static void
http_client_connecting_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct http_client_req *req = container_of(w, struct http_client_req, connecting);

    (void)loop;
    (void)revents;
    if (req->dialing && req->dial.next > 1)
        http_client_fail(req, "connect to %s timed out (%zu addresses tried)", req->url.host,
                         req->dial.next);
    else
        http_client_fail(req, "connect to %s timed out", req->url.host);
}

/* Connect to addrs in order (all of them: the first may be ::1 where the server listens
 * on 127.0.0.1 only). Plain http goes only to loopback addresses: the others are dropped. */
static void
http_client_dial(struct http_client_req *req, const struct tcp_dial_addr *addrs, size_t n)
{
    struct tcp_dial_addr ok[TCP_DIAL_ADDRS_MAX];
    size_t               k = 0;

    for (size_t i = 0; i < n && k < TCP_DIAL_ADDRS_MAX; i++)
        if (req->url.is_https || req->insecure ||
            http_is_loopback((const struct sockaddr *)&addrs[i].ss))
            ok[k++] = addrs[i];
    if (k == 0) {
        http_client_fail(req, "plain http only to a loopback address (%s)", req->url.host);
        return;
    }
    ev_timer_set(&req->connecting, req->connect_timeout, 0.);
    ev_timer_start(req->loop, &req->connecting);
    req->dialing = true;
    tcp_dial_start(&req->dial, req->loop, ok, k, TCP_DIAL_STAGGER, http_client_dialed, req);
}

/* ---- resolving ---------------------------------------------------------------------- */

static void
http_resolve_work(struct offload_job *job)
{
    struct http_resolve_job *j = (struct http_resolve_job *)job;
    struct addrinfo          hints = { 0 }, *res = NULL, *ai;

    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_ADDRCONFIG | AI_NUMERICSERV;
    j->rc = getaddrinfo(j->host, j->port, &hints, &res);
    if (j->rc != 0)
        return;
    for (ai = res; ai != NULL && j->n_addrs < TCP_DIAL_ADDRS_MAX; ai = ai->ai_next) {
        if (ai->ai_addrlen > sizeof(j->addrs[0].ss))
            continue;
        memcpy(&j->addrs[j->n_addrs].ss, ai->ai_addr, ai->ai_addrlen);
        j->addrs[j->n_addrs++].len = ai->ai_addrlen;
    }
    freeaddrinfo(res);
    if (j->n_addrs == 0)
        j->rc = EAI_FAMILY;
}

static void
http_resolve_done(struct offload_job *job)
{
    struct http_resolve_job *j = (struct http_resolve_job *)job;
    struct http_client_req  *req = j->req;

    if (req == NULL) {
        free(j); /* cancelled meanwhile */
        return;
    }
    req->resolving = NULL;
    if (j->rc != 0) {
        snprintf(req->error, sizeof(req->error), "%s: %s", req->url.host, gai_strerror(j->rc));
        free(j);
        http_client_fail(req, "cannot resolve %s", req->error);
        return;
    }
    http_client_dial(req, j->addrs, j->n_addrs);
    free(j);
}

static bool
http_numeric_host(const struct http_client_req *req, struct tcp_dial_addr *a)
{
    struct sockaddr_in  *sin = (struct sockaddr_in *)&a->ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a->ss;

    memset(a, 0, sizeof(*a));
    if (inet_pton(AF_INET, req->url.host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)req->url.port);
        a->len = sizeof(*sin);
        return true;
    }
    if (inet_pton(AF_INET6, req->url.host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)req->url.port);
        a->len = sizeof(*sin6);
        return true;
    }
    return false;
}

static void
http_client_start_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct http_client_req  *req = container_of(w, struct http_client_req, start);
    struct http_resolve_job *j;
    struct tcp_dial_addr     numeric;

    (void)loop;
    (void)revents;
    if (http_numeric_host(req, &numeric)) {
        http_client_dial(req, &numeric, 1);
        return;
    }
    if (req->offload == NULL || (j = calloc(1, sizeof(*j))) == NULL) {
        http_client_fail(req, "cannot resolve %s: no resolver", req->url.host);
        return;
    }
    j->req = req;
    snprintf(j->host, sizeof(j->host), "%s", req->url.host);
    snprintf(j->port, sizeof(j->port), "%d", req->url.port);
    j->job.work = http_resolve_work;
    j->job.done = http_resolve_done;
    req->resolving = j;
    offload_submit(req->offload, req->ret, &j->job);
}

static void
http_client_deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct http_client_req *req = container_of(w, struct http_client_req, deadline);

    (void)loop;
    (void)revents;
    if (req->dialing && req->dial.next > 1)
        http_client_fail(req, "request to %s timed out connecting (%zu addresses tried)",
                         req->url.host, req->dial.next);
    else
        http_client_fail(req, "request to %s timed out", req->url.host);
}

/* ---- the request -------------------------------------------------------------------- */

static bool
http_is_header_line(const char *h)
{
    const char *colon = strchr(h, ':');

    if (colon == NULL || colon == h)
        return false;
    for (const char *p = h; *p; p++)
        if (*p == '\r' || *p == '\n' || *p == '\0')
            return false;
    for (const char *p = h; p < colon; p++)
        if (!(isalnum((unsigned char)*p) || *p == '-' || *p == '_'))
            return false;
    return true;
}

static bool
http_has_header(const char *const *headers, const char *name)
{
    size_t n = strlen(name);

    for (size_t i = 0; headers != NULL && headers[i] != NULL; i++)
        if (strncasecmp(headers[i], name, n) == 0 && headers[i][n] == ':')
            return true;
    return false;
}

static int
http_client_build(struct http_client_req *req, const struct http_client_opts *o, char *err,
                  size_t errlen)
{
    struct buf *b = &req->request;
    bool        v6 = strchr(req->url.host, ':') != NULL;
    bool        post = strcmp(o->method, "POST") == 0;
    bool        dflt_port = req->url.port == (req->url.is_https ? 443 : 80);
    int         rc = 0;

    rc |= buf_printf(b, HTTP_REQUEST_MAX, "%s %s HTTP/1.1\r\nHost: %s%s%s", o->method,
                     req->url.path, v6 ? "[" : "", req->url.host, v6 ? "]" : "");
    if (!dflt_port)
        rc |= buf_printf(b, HTTP_REQUEST_MAX, ":%d", req->url.port);
    rc |= buf_printf(b, HTTP_REQUEST_MAX, "\r\nConnection: close\r\n");
    if (!http_has_header(o->headers, "User-Agent"))
        rc |= buf_printf(b, HTTP_REQUEST_MAX, "User-Agent: sluice\r\n");
    if (!http_has_header(o->headers, "Accept"))
        rc |= buf_printf(b, HTTP_REQUEST_MAX, "Accept: application/json\r\n");
    for (size_t i = 0; o->headers != NULL && o->headers[i] != NULL; i++) {
        static const char *const ours[] = { "Host", "Connection", "Content-Length",
                                            "Transfer-Encoding", NULL };

        if (!http_is_header_line(o->headers[i])) {
            snprintf(err, errlen, "header %zu is not a \"Name: value\" line", i + 1);
            return -1;
        }
        for (size_t k = 0; ours[k] != NULL; k++)
            if (strncasecmp(o->headers[i], ours[k], strlen(ours[k])) == 0 &&
                o->headers[i][strlen(ours[k])] == ':') {
                snprintf(err, errlen, "header %s is set by sluice", ours[k]);
                return -1;
            }
        rc |= buf_printf(b, HTTP_REQUEST_MAX, "%s\r\n", o->headers[i]);
    }
    if (post && !http_has_header(o->headers, "Content-Type"))
        rc |= buf_printf(b, HTTP_REQUEST_MAX,
                         "Content-Type: application/x-www-form-urlencoded\r\n");
    if (post || o->body_len > 0)
        rc |= buf_printf(b, HTTP_REQUEST_MAX, "Content-Length: %zu\r\n", o->body_len);
    rc |= buf_printf(b, HTTP_REQUEST_MAX, "\r\n");
    if (o->body_len > 0)
        rc |= buf_append(b, o->body, o->body_len, HTTP_REQUEST_MAX);
    if (rc != 0) {
        snprintf(err, errlen, "request larger than %d octets", HTTP_REQUEST_MAX);
        return -1;
    }
    return 0;
}

struct http_client_req *
http_client_request(struct ev_loop *loop, struct offload *offload, struct offload_return *ret,
                    const struct http_client_opts *o, http_client_done_fn done, void *arg,
                    char *err, size_t errlen)
{
    struct http_client_req *req;

    if (o->method == NULL || (strcmp(o->method, "GET") != 0 && strcmp(o->method, "POST") != 0)) {
        snprintf(err, errlen, "method must be GET or POST");
        return NULL;
    }
    if (!(o->timeout > 0)) {
        snprintf(err, errlen, "timeout must be positive");
        return NULL;
    }
    req = calloc(1, sizeof(*req));
    if (req == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    req->loop = loop;
    req->offload = offload;
    req->ret = ret;
    req->done = done;
    req->arg = arg;
    req->insecure = o->insecure;
    req->sid = o->sid;
    req->body_max = o->body_max > 0 ? o->body_max : HTTP_RESPONSE_BODY_MAX;
    req->connect_timeout =
        o->connect_timeout > 0 && o->connect_timeout < o->timeout ? o->connect_timeout
                                                                  : o->timeout;
    if (http_url_parse(o->url != NULL ? o->url : "", &req->url, err, errlen) != 0 ||
        http_client_build(req, o, err, errlen) != 0)
        goto fail;
    if (req->url.is_https &&
        (req->ssl_ctx = tls_client_ctx_new(o->ca_file, true, err, errlen)) == NULL)
        goto fail;
    ev_timer_init(&req->deadline, http_client_deadline_cb, o->timeout, 0.);
    ev_timer_start(loop, &req->deadline);
    ev_timer_init(&req->start, http_client_start_cb, 0., 0.);
    ev_timer_start(loop, &req->start);
    ev_init(&req->connecting, http_client_connecting_cb);
    return req;
fail:
    http_client_release(req);
    return NULL;
}
