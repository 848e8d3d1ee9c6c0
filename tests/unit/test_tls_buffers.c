/* tests/unit/test_tls_buffers.c: core/net/tls_buffers.c with real TLS 1.3 handshakes
 * between conns on socketpairs (both ends are conns on one loop, so both are in this
 * thread's list). A connection keeps OpenSSL's record buffers while it is busy, gives
 * them back once it has been quiet for TLS_BUFFERS_QUIET, works again afterwards, and no
 * number of connections makes the thread hold more than TLS_BUFFERS_HOT. Every wait is a
 * loop run bounded by a guard timer, ended by the event it waits for. */
#include <ev.h>
#include <fcntl.h>
#include <signal.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "net/conn.h"
#include "net/tls_buffers.h"

static struct ev_loop *loop;
static SSL_CTX        *server_ctx;
static SSL_CTX        *client_ctx;

struct end {
    struct conn *c;
    bool         tls;    /* the handshake completed */
    size_t       got;    /* octets received in all */
    bool         closed;
};

static bool (*waiting_for)(void);

static void
check_done(void)
{
    if (waiting_for != NULL && waiting_for())
        ev_break(loop, EVBREAK_ONE);
}

static enum conn_rc
end_event(void *arg, struct conn *c, enum conn_event ev)
{
    struct end *e = arg;

    if (ev == CONN_EV_TLS) {
        e->tls = true;
        conn_read_start(c);
    } else if (ev == CONN_EV_INPUT) {
        e->got += buf_used(&c->in);
        buf_consume(&c->in, buf_used(&c->in));
    } else if (ev == CONN_EV_CLOSED) {
        e->closed = true;
    }
    check_done();
    return CONN_OK;
}

static void
guard_cb(struct ev_loop *l, ev_timer *t, int revents)
{
    (void)t;
    (void)revents;
    ev_break(l, EVBREAK_ONE);
}

/* A timer that re-checks the condition: the sweep frees buffers without an event to us. */
static void
poll_cb(struct ev_loop *l, ev_timer *t, int revents)
{
    (void)l;
    (void)t;
    (void)revents;
    check_done();
}

/* Run the loop until until() holds, or secs pass; returns whether it holds. */
static bool
run_until(bool (*until)(void), double secs)
{
    ev_timer guard, poll;

    if (until())
        return true;
    waiting_for = until;
    ev_timer_init(&guard, guard_cb, secs, 0.);
    ev_timer_init(&poll, poll_cb, 0.02, 0.02);
    ev_timer_start(loop, &guard);
    ev_timer_start(loop, &poll);
    ev_run(loop, 0);
    ev_timer_stop(loop, &guard);
    ev_timer_stop(loop, &poll);
    waiting_for = NULL;
    return until();
}

/* A self-signed P-256 certificate made in memory. */
static int
make_server_ctx(void)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509     *x = X509_new();
    int       ok;

    server_ctx = SSL_CTX_new(TLS_server_method());
    client_ctx = SSL_CTX_new(TLS_client_method());
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"tls-buffers.test", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_set_pubkey(x, key);
    ok = key != NULL && X509_sign(x, key, EVP_sha256()) > 0 &&
         SSL_CTX_use_certificate(server_ctx, x) == 1 &&
         SSL_CTX_use_PrivateKey(server_ctx, key) == 1;
    SSL_CTX_set_read_ahead(server_ctx, 1); /* as tls.c's contexts */
    SSL_CTX_set_read_ahead(client_ctx, 1);
    SSL_CTX_set_min_proto_version(server_ctx, TLS1_3_VERSION);
    X509_free(x);
    EVP_PKEY_free(key);
    return ok ? 0 : -1;
}

struct pair {
    struct end server, client;
};

/* Both ends on one socketpair, the handshake started (it runs from the loop). */
static void
pair_open(struct pair *p)
{
    int  sv[2];
    SSL *s, *c;

    memset(p, 0, sizeof(*p));
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        abort();
    for (int i = 0; i < 2; i++)
        fcntl(sv[i], F_SETFL, fcntl(sv[i], F_GETFL) | O_NONBLOCK);
    p->server.c = conn_new(loop, sv[0], &p->server, end_event);
    p->client.c = conn_new(loop, sv[1], &p->client, end_event);
    s = SSL_new(server_ctx);
    c = SSL_new(client_ctx);
    SSL_set_fd(s, sv[0]);
    SSL_set_fd(c, sv[1]);
    SSL_set_accept_state(s);
    SSL_set_connect_state(c);
    conn_start_tls(p->server.c, s);
    conn_start_tls(p->client.c, c);
}

static void
pair_close(struct pair *p)
{
    conn_free(p->client.c);
    conn_free(p->server.c);
}

static struct pair *the_pair;
static size_t       the_expect;

static bool
pair_is_up(void)
{
    return the_pair->server.tls && the_pair->client.tls;
}

static bool
pair_got_it(void)
{
    return the_pair->server.got >= the_expect;
}

static bool
nothing_held(void)
{
    return tls_buffers_held() == 0;
}

/* The client sends n octets; true once the server has them all. */
static bool
pair_send(struct pair *p, size_t n)
{
    static char data[4096];

    the_pair = p;
    the_expect = p->server.got + n;
    memset(data, 'x', sizeof(data));
    conn_write(p->client.c, data, n);
    conn_flush(p->client.c, false);
    return run_until(pair_got_it, 5.);
}

static void
a_quiet_connection_gives_its_buffers_back_and_works_again(void)
{
    struct pair p;
    ev_tstamp   t0;

    pair_open(&p);
    the_pair = &p;
    CHECK(run_until(pair_is_up, 5.));
    CHECK(pair_send(&p, 2000));
    CHECK_EQ_INT(tls_buffers_held(), 2); /* both ends just did I/O: busy */
    ev_now_update(loop);
    t0 = ev_now(loop);
    CHECK(run_until(nothing_held, 5.));
    ev_now_update(loop);
    CHECK(ev_now(loop) - t0 >= TLS_BUFFERS_QUIET * 0.9); /* not before it was quiet */
    CHECK(pair_send(&p, 3000)); /* the buffers come back for the next record */
    CHECK_EQ_INT(p.server.got, 5000);
    CHECK_EQ_INT(tls_buffers_held(), 2);
    pair_close(&p);
    CHECK_EQ_INT(tls_buffers_held(), 0); /* a freed connection leaves the list */
}

#define MANY (TLS_BUFFERS_HOT / 2 + 8) /* pairs: 2 * MANY ends, more than TLS_BUFFERS_HOT */
static struct pair many[MANY];
static unsigned    max_held;

static bool
all_up(void)
{
    unsigned held = tls_buffers_held();

    max_held = held > max_held ? held : max_held;
    for (int i = 0; i < MANY; i++)
        if (!many[i].server.tls || !many[i].client.tls)
            return false;
    return true;
}

static void
no_more_than_hot_connections_hold_buffers_and_each_still_works(void)
{
    max_held = 0;
    for (int i = 0; i < MANY; i++)
        pair_open(&many[i]);
    CHECK(run_until(all_up, 10.));
    CHECK(max_held <= TLS_BUFFERS_HOT);
    for (int i = 0; i < MANY; i++) {
        CHECK(pair_send(&many[i], 1000));
        CHECK(tls_buffers_held() <= TLS_BUFFERS_HOT);
    }
    CHECK_EQ_INT(tls_buffers_held(), TLS_BUFFERS_HOT); /* the most recent ones */
    for (int i = 0; i < MANY; i++)
        pair_close(&many[i]);
    CHECK_EQ_INT(tls_buffers_held(), 0);
}

/* The sweep timer must not keep a loop alive that has nothing else to do. */
static void
the_sweep_does_not_keep_the_loop_running(void)
{
    struct pair p;
    ev_tstamp   t0;

    pair_open(&p);
    the_pair = &p;
    CHECK(run_until(pair_is_up, 5.));
    CHECK(pair_send(&p, 100));
    conn_read_stop(p.server.c);
    conn_read_stop(p.client.c);
    CHECK(tls_buffers_held() > 0);
    t0 = ev_time();
    ev_run(loop, 0); /* only the sweep timer is active: returns at once */
    CHECK(ev_time() - t0 < TLS_BUFFERS_QUIET / 2);
    pair_close(&p);
}

int
main(void)
{
    signal(SIGPIPE, SIG_IGN); /* a close_notify to a freed peer: the daemon ignores it too */
    loop = ev_default_loop(0);
    if (make_server_ctx() != 0) {
        fprintf(stderr, "cannot make the test's certificate\n");
        return 1;
    }
    RUN(a_quiet_connection_gives_its_buffers_back_and_works_again);
    RUN(no_more_than_hot_connections_hold_buffers_and_each_still_works);
    RUN(the_sweep_does_not_keep_the_loop_running);
    SSL_CTX_free(server_ctx);
    SSL_CTX_free(client_ctx);
    return check_summary();
}
