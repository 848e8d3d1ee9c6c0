/* core/net/conn.c: one socket, optionally TLS; buffers, watchers, timer. See conn.h.
 * Reads go into c->in until it is full or the socket would block; the owner consumes.
 * Writes go from c->out. TLS uses the socket BIO directly (SSL_set_fd). */
#include "net/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

#define CONN_READ_CHUNK  16384
#define CONN_READ_MIN    2048 /* octets of free buffer worth a read without growing it */
#define CONN_IN_DEFAULT  (64 * 1024)
/* The first write buffer: a reply or a few fit, and glibc's per-thread cache (tcache,
 * chunks up to 1,032 octets) serves it, so that making it again for every reply after
 * conn_flush() freed the last one costs little. */
#define CONN_OUT_FIRST   1000
#define CONN_OUT_KEEP    4096 /* a write buffer up to this size stays once it has grown */

enum io_rc {
    IO_OK,    /* progress */
    IO_AGAIN, /* would block */
    IO_FULL,  /* c->in is at its cap */
    IO_EOF,
    IO_ERR,
};

static void conn_readable_cb(struct ev_loop *loop, ev_io *w, int revents);
static void conn_writable_cb(struct ev_loop *loop, ev_io *w, int revents);
static void conn_timer_cb(struct ev_loop *loop, ev_timer *w, int revents);

struct conn *
conn_new(struct ev_loop *loop, int fd, void *owner, conn_event_fn on_event)
{
    struct conn *c = calloc(1, sizeof(*c));
    int          one = 1;

    if (c == NULL)
        return NULL;
    /* Without NODELAY a reply written right after the TLS tickets waits for a delayed
     * ACK (~40 ms on Linux): every greeting and every pipelined reply would pay it. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->fd = fd;
    c->loop = loop;
    c->owner = owner;
    c->on_event = on_event;
    c->in_max = CONN_IN_DEFAULT;
    ev_io_init(&c->rio, conn_readable_cb, fd, EV_READ);
    ev_io_init(&c->wio, conn_writable_cb, fd, EV_WRITE);
    ev_init(&c->timer, conn_timer_cb);
    return c;
}

void
conn_free(struct conn *c)
{
    if (c == NULL)
        return;
    ev_io_stop(c->loop, &c->rio);
    ev_io_stop(c->loop, &c->wio);
    ev_timer_stop(c->loop, &c->timer);
    if (c->ssl != NULL) {
        if (!c->closed && !c->handshaking)
            SSL_shutdown(c->ssl); /* one close_notify, best effort, never waits */
        tls_buffers_forget(&c->tls_link);
        SSL_free(c->ssl);
    }
    ERR_clear_error();
    close(c->fd);
    buf_cleanup(&c->in);
    buf_cleanup(&c->out);
    free(c);
}

static enum conn_rc
conn_report_closed(struct conn *c, const char *why)
{
    c->closed = true;
    c->error = why;
    ev_io_stop(c->loop, &c->rio);
    ev_io_stop(c->loop, &c->wio);
    return c->on_event(c->owner, c, CONN_EV_CLOSED);
}

static void
conn_update_read_watcher(struct conn *c)
{
    bool want = !c->closed && (c->handshaking || (c->reading && buf_used(&c->in) < c->in_max));

    if (want && !ev_is_active(&c->rio))
        ev_io_start(c->loop, &c->rio);
    else if (!want && ev_is_active(&c->rio))
        ev_io_stop(c->loop, &c->rio);
    /* With read-ahead OpenSSL buffers whole records (after a handshake, or when c->in
     * filled up); the socket will not signal them again, so read them from the loop. */
    if (want && c->ssl_more && !c->handshaking)
        ev_feed_event(c->loop, &c->rio, EV_READ);
}

void
conn_read_start(struct conn *c)
{
    c->reading = true;
    conn_update_read_watcher(c);
}

void
conn_read_stop(struct conn *c)
{
    c->reading = false;
    conn_update_read_watcher(c);
}

static enum io_rc
conn_read_plain(struct conn *c, char *dst, size_t room, size_t *got)
{
    ssize_t n = recv(c->fd, dst, room, 0);

    if (n > 0) {
        *got = (size_t)n;
        return IO_OK;
    }
    if (n == 0)
        return IO_EOF;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        return IO_AGAIN;
    return IO_ERR;
}

/* This thread's OpenSSL error queue emptied before an SSL call whose SSL_get_error() must
 * see only its own errors. Every failure path clears it already, so it is empty nearly
 * always: a peek (a few dozen instructions) instead of ERR_clear_error(), which wipes all
 * sixteen slots each time (about 300, twice per read and write of every message). */
static void
conn_err_reset(void)
{
    if (ERR_peek_error() != 0)
        ERR_clear_error();
}

static enum io_rc
conn_read_tls(struct conn *c, char *dst, size_t room, size_t *got)
{
    int n;

    conn_err_reset(); /* SSL_get_error() reads this thread's queue: only our errors */
    n = SSL_read(c->ssl, dst, (int)room);
    tls_buffers_touch(&c->tls_link, c->ssl, c->loop);

    if (n > 0) {
        *got = (size_t)n;
        return IO_OK;
    }
    switch (SSL_get_error(c->ssl, n)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        return IO_AGAIN;
    case SSL_ERROR_ZERO_RETURN:
        return IO_EOF;
    case SSL_ERROR_SYSCALL:
        ERR_clear_error();
        return errno == 0 ? IO_EOF : IO_ERR;
    default:
        ERR_clear_error();
        return IO_ERR;
    }
}

/* Read until the socket would block or c->in is full. */
static enum io_rc
conn_fill(struct conn *c, bool *progress)
{
    *progress = false;
    for (;;) {
        size_t     room, got = 0;
        enum io_rc rc;

        if (buf_used(&c->in) >= c->in_max) {
            c->ssl_more = c->ssl != NULL;
            return IO_FULL;
        }
        room = c->in_max - buf_used(&c->in);
        if (room > CONN_READ_CHUNK)
            room = CONN_READ_CHUNK;
        /* Read into the space the buffer has when there is a fair amount of it: reserving
         * a whole chunk on top of a partly filled one reallocated (and copied) the buffer
         * on nearly every readable event, for a read that then said EAGAIN. */
        if (c->in.cap - c->in.len >= CONN_READ_MIN && c->in.cap - c->in.len < room)
            room = c->in.cap - c->in.len;
        if (buf_reserve(&c->in, room, c->in_max) != 0)
            return IO_ERR;
        rc = c->ssl ? conn_read_tls(c, buf_tail(&c->in), room, &got)
                    : conn_read_plain(c, buf_tail(&c->in), room, &got);
        if (rc != IO_OK) {
            c->ssl_more = false; /* drained: only the socket can bring more */
            return rc;
        }
        c->in.len += got;
        *progress = true;
    }
}

static enum conn_rc
conn_handshake_step(struct conn *c)
{
    int r;

    ERR_clear_error();
    r = c->is_server ? SSL_accept(c->ssl) : SSL_connect(c->ssl);
    tls_buffers_touch(&c->tls_link, c->ssl, c->loop);

    if (r == 1) {
        c->handshaking = false;
        c->ssl_more = true; /* the peer's first records may have come with its Finished */
        ev_io_stop(c->loop, &c->wio);
        conn_update_read_watcher(c);
        return c->on_event(c->owner, c, CONN_EV_TLS);
    }
    switch (SSL_get_error(c->ssl, r)) {
    case SSL_ERROR_WANT_READ:
        ev_io_stop(c->loop, &c->wio);
        conn_update_read_watcher(c);
        return CONN_OK;
    case SSL_ERROR_WANT_WRITE:
        ev_io_start(c->loop, &c->wio);
        return CONN_OK;
    default:
        ERR_clear_error();
        return conn_report_closed(c, "TLS handshake failed");
    }
}

static void
conn_readable_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct conn *c = container_of(w, struct conn, rio);
    bool         progress;
    enum io_rc   rc;

    (void)loop;
    (void)revents;
    if (c->handshaking) {
        conn_handshake_step(c);
        return;
    }
    if (c->closed)
        return;
    rc = conn_fill(c, &progress);
    if (progress && c->reading) {
        if (c->on_event(c->owner, c, CONN_EV_INPUT) == CONN_GONE)
            return;
    }
    /* An idle connection keeps no read buffer: 10,000 idle sessions must cost KiB each. */
    if (buf_used(&c->in) == 0)
        buf_cleanup(&c->in);
    if (rc == IO_EOF || rc == IO_ERR) {
        conn_report_closed(c, rc == IO_EOF ? "peer closed" : "read error");
        return;
    }
    conn_update_read_watcher(c);
}

void
conn_start_tls(struct conn *c, SSL *ssl)
{
    buf_reset(&c->in); /* RFC 3207 section 4: nothing from before the handshake counts */
    c->ssl = ssl;
    c->is_server = SSL_is_server(ssl);
    c->handshaking = true;
    /* Not SSL_MODE_RELEASE_BUFFERS: tls_buffers.c frees them once the connection is quiet. */
    SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* The first step runs from the loop so that the completion never fires before the
     * caller has returned (STYLE.md: never complete before returning). */
    ev_io_start(c->loop, &c->wio);
}

int
conn_write(struct conn *c, const void *p, size_t n)
{
    if (c->closed)
        return -1;
    if (n <= CONN_OUT_FIRST && buf_reserve_first(&c->out, CONN_OUT_FIRST) != 0)
        return -1;
    return buf_append(&c->out, p, n, CONN_OUT_MAX);
}

static enum io_rc
conn_send_some(struct conn *c, size_t *sent)
{
    size_t n = buf_used(&c->out);

    if (c->ssl == NULL) {
        ssize_t w = send(c->fd, buf_head(&c->out), n, MSG_NOSIGNAL);

        if (w >= 0) {
            *sent = (size_t)w;
            return IO_OK;
        }
        return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? IO_AGAIN : IO_ERR;
    }
    int w;

    conn_err_reset();
    w = SSL_write(c->ssl, buf_head(&c->out), n > 65536 ? 65536 : (int)n);
    tls_buffers_touch(&c->tls_link, c->ssl, c->loop);

    if (w > 0) {
        *sent = (size_t)w;
        return IO_OK;
    }
    switch (SSL_get_error(c->ssl, w)) {
    case SSL_ERROR_WANT_WRITE:
    case SSL_ERROR_WANT_READ:
        return IO_AGAIN;
    default:
        ERR_clear_error();
        return IO_ERR;
    }
}

enum conn_rc
conn_flush(struct conn *c, bool want_flushed_event)
{
    if (c->closed || c->handshaking)
        return CONN_OK;
    while (buf_used(&c->out) > 0) {
        size_t     sent = 0;
        enum io_rc rc = conn_send_some(c, &sent);

        if (rc == IO_AGAIN) {
            c->notify_flushed = c->notify_flushed || want_flushed_event;
            ev_io_start(c->loop, &c->wio);
            return CONN_OK;
        }
        if (rc != IO_OK)
            return conn_report_closed(c, "write error");
        buf_consume(&c->out, sent);
    }
    ev_io_stop(c->loop, &c->wio);
    /* Sent. An idle connection keeps no reply-sized write buffer (the greeting's 4 KiB
     * were a fifth of an idle TLS session): the next reply takes one from malloc's
     * per-thread cache again. A large burst does not pin its buffer either. One in
     * between (an upstream connection's, a message at a time) is kept: making it again
     * for every message cost 1 % of the CPU per message (bench/policy_instr.sh). */
    if (c->out.cap <= CONN_OUT_FIRST || c->out.cap > CONN_OUT_KEEP)
        buf_cleanup(&c->out);
    return CONN_OK;
}

static void
conn_writable_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct conn *c = container_of(w, struct conn, wio);

    (void)loop;
    (void)revents;
    if (c->handshaking) {
        conn_handshake_step(c);
        return;
    }
    if (conn_flush(c, false) == CONN_GONE)
        return;
    if (buf_used(&c->out) == 0 && c->notify_flushed) {
        c->notify_flushed = false;
        c->on_event(c->owner, c, CONN_EV_FLUSHED);
    }
}

static void
conn_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct conn *c = container_of(w, struct conn, timer);

    (void)loop;
    (void)revents;
    ev_timer_stop(c->loop, &c->timer);
    c->on_event(c->owner, c, CONN_EV_TIMEOUT);
}

void
conn_set_timeout(struct conn *c, double secs)
{
    if (secs <= 0) {
        ev_timer_stop(c->loop, &c->timer);
        return;
    }
    c->timer.repeat = secs;
    ev_timer_again(c->loop, &c->timer);
}

void
conn_peer(const struct conn *c, char *addr, size_t addrlen, int *port)
{
    struct sockaddr_storage ss;
    socklen_t               sl = sizeof(ss);

    addr[0] = '\0';
    *port = 0;
    if (getpeername(c->fd, (struct sockaddr *)&ss, &sl) != 0)
        return;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

        inet_ntop(AF_INET, &sin->sin_addr, addr, (socklen_t)addrlen);
        *port = ntohs(sin->sin_port);
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

        if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))
            inet_ntop(AF_INET, &sin6->sin6_addr.s6_addr[12], addr, (socklen_t)addrlen);
        else
            inet_ntop(AF_INET6, &sin6->sin6_addr, addr, (socklen_t)addrlen);
        *port = ntohs(sin6->sin6_port);
    }
}
