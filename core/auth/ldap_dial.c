/* core/auth/ldap_dial.c: one directory connection, opened on an offload thread; see
 * ldap_dial.h.
 *
 * Why the TCP connect is ours (ldap_init_fd) rather than libldap's: with
 * LDAP_OPT_NETWORK_TIMEOUT alone, libldap 2.5 makes the socket non-blocking for the TLS
 * handshake and then retries SSL_connect in a loop without polling, so a server that
 * accepts the connection but never answers (a stopped slapd) holds the thread at 100 %
 * CPU for ever. With LDAP_OPT_CONNECT_ASYNC its handshake loop polls with what is left of
 * the network timeout instead; that option would also make its own connect return before
 * the TCP handshake is done, which we do not want, so we connect the socket ourselves
 * and hand it over. Ours also tries every address of the host (tcp_dial.c, on a loop of
 * the offload thread's own), where libldap's would give up at the first silent one. */
#include "auth/ldap_dial.h"

#include <errno.h>
#include <ev.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openldap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "net/tcp_dial.h"

static double
ldap_dial_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct timeval
ldap_dial_left(double deadline)
{
    double         left = deadline - ldap_dial_now();
    struct timeval tv;

    if (left < 0.001)
        left = 0.001;
    tv.tv_sec = (time_t)left;
    tv.tv_usec = (suseconds_t)((left - (double)tv.tv_sec) * 1e6);
    return tv;
}

/* A dial on a loop of this thread's own (an offload thread: the worker's loop is never
 * touched), ended by the deadline. */
struct ldap_dial_wait {
    struct ev_loop        *loop;
    struct tcp_dial        dial;
    ev_timer               deadline;
    struct tcp_dial_result r;    /* r.addr points into dial */
    bool                   done;
};

static void
ldap_dial_connected(void *owner, const struct tcp_dial_result *r)
{
    struct ldap_dial_wait *w = owner;

    w->r = *r;
    w->done = true;
    ev_break(w->loop, EVBREAK_ALL);
}

static void
ldap_dial_deadline_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)t;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

/* Socket options for libldap's part. It polls before each step of the TLS handshake,
 * then makes the socket blocking (ldap_int_poll): a server that stops half-way through
 * a flight would hold that read for ever. The timeouts bound it; on the worker's loop
 * the socket is non-blocking. TCP_NODELAY: without it a TLS record and its ACK wait for
 * each other, 40 ms per bind. */
static void
ldap_dial_sockopts(int fd, double deadline)
{
    struct timeval left = ldap_dial_left(deadline);
    int            one = 1;

    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &left, sizeof(left));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &left, sizeof(left));
}

/* A connected TCP socket to the URI's host and port, or -1 and why in err. Every address
 * of the host is tried in order within the deadline, as tcp_dial.h does it: a refused
 * one costs nothing, a silent one 250 ms before the next starts beside it. */
static int
ldap_dial_tcp(const LDAPURLDesc *lud, double deadline, char *err, size_t errlen)
{
    struct addrinfo       hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo      *res, *ai;
    struct tcp_dial_addr  addrs[TCP_DIAL_ADDRS_MAX];
    struct ldap_dial_wait w = {0};
    size_t                n = 0;
    char                  port[16];
    int                   rc;
    bool                  tls = strcmp(lud->lud_scheme, "ldaps") == 0;

    snprintf(port, sizeof(port), "%d", lud->lud_port ? lud->lud_port : tls ? 636 : 389);
    rc = getaddrinfo(lud->lud_host, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve %s: %s", lud->lud_host, gai_strerror(rc));
        return -1;
    }
    for (ai = res; ai != NULL && n < TCP_DIAL_ADDRS_MAX; ai = ai->ai_next) {
        if (ai->ai_addrlen > sizeof(addrs[0].ss))
            continue;
        memcpy(&addrs[n].ss, ai->ai_addr, ai->ai_addrlen);
        addrs[n++].len = ai->ai_addrlen;
    }
    freeaddrinfo(res);
    if (n == 0 || (w.loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK)) == NULL) {
        snprintf(err, errlen, n == 0 ? "no usable address for %s" : "cannot make a loop (%s)",
                 lud->lud_host);
        return -1;
    }
    tcp_dial_start(&w.dial, w.loop, addrs, n, TCP_DIAL_STAGGER, ldap_dial_connected, &w);
    ev_timer_init(&w.deadline, ldap_dial_deadline_cb, deadline - ldap_dial_now(), 0.);
    ev_timer_start(w.loop, &w.deadline);
    ev_run(w.loop, 0); /* until connected, every address failed, or the deadline */
    ev_timer_stop(w.loop, &w.deadline);
    tcp_dial_stop(&w.dial); /* the deadline: close the attempts still in progress */
    ev_loop_destroy(w.loop);
    if (!w.done) {
        snprintf(err, errlen, "connect to %s timed out", lud->lud_host);
        if (w.dial.next > 1)
            snprintf(err + strlen(err), errlen - strlen(err), " (%zu addresses tried)",
                     w.dial.next);
        return -1;
    }
    if (w.r.fd < 0) {
        tcp_dial_error(&w.r, lud->lud_host, err, errlen);
        return -1;
    }
    ldap_dial_sockopts(w.r.fd, deadline);
    return w.r.fd;
}

static void
ldap_dial_nonblock(LDAP *ld)
{
    Sockbuf *sb = NULL;

    if (ldap_get_option(ld, LDAP_OPT_SOCKBUF, &sb) == LDAP_OPT_SUCCESS && sb != NULL)
        ber_sockbuf_ctrl(sb, LBER_SB_OPT_SET_NONBLOCK, (void *)1);
}

/* The options every handle gets; NULL, or the name of the one that was refused. The
 * TLS context (CA store, TLS 1.2 at least, chain verification) is config_ldap.c's. */
static const char *
ldap_dial_options(LDAP *ld, const struct config_ldap *cfg, double deadline)
{
    int            version = LDAP_VERSION3, demand = LDAP_OPT_X_TLS_DEMAND;
    struct timeval left = ldap_dial_left(deadline);

#define LDAP_DIAL_SET(opt, val)                                                            \
    if (ldap_set_option(ld, opt, val) != LDAP_OPT_SUCCESS)                                 \
        return #opt;
    LDAP_DIAL_SET(LDAP_OPT_PROTOCOL_VERSION, &version)
    LDAP_DIAL_SET(LDAP_OPT_REFERRALS, LDAP_OPT_OFF)
    LDAP_DIAL_SET(LDAP_OPT_NETWORK_TIMEOUT, &left)
    LDAP_DIAL_SET(LDAP_OPT_TIMEOUT, &left)
    LDAP_DIAL_SET(LDAP_OPT_CONNECT_ASYNC, LDAP_OPT_ON)
    LDAP_DIAL_SET(LDAP_OPT_X_TLS_REQUIRE_CERT, &demand) /* and so the host name check */
    LDAP_DIAL_SET(LDAP_OPT_X_TLS_CTX, cfg->tls_ctx)     /* libldap takes a reference */
#undef LDAP_DIAL_SET
    return NULL;
}

/* "what: ldap_err2string: diagnostic message". libldap over GnuTLS says no more than
 * "Connect error" when the handshake fails: say what that usually means. */
static void
ldap_dial_error(LDAP *ld, int rc, const char *what, char *err, size_t errlen)
{
    char *diag = NULL;
    bool  useful;

    ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag);
    useful = diag != NULL && diag[0] != '\0' && strcmp(diag, "(unknown error code)") != 0;
    snprintf(err, errlen, "%s: %s%s%s", what, ldap_err2string(rc), useful ? ": " : "",
             useful ? diag : rc == LDAP_CONNECT_ERROR ? " (the certificate did not verify "
                                                        "against ca_file or the host name, or "
                                                        "the handshake failed)" : "");
    ldap_memfree(diag);
}

LDAP *
ldap_dial(const struct config_ldap *cfg, size_t i, char *err, size_t errlen)
{
    double       deadline = ldap_dial_now() + cfg->timeout;
    LDAPURLDesc *lud = NULL;
    LDAP        *ld = NULL;
    const char  *what;
    int          fd, rc;
    bool         ldaps;

    if (ldap_url_parse(cfg->uris[i], &lud) != LDAP_URL_SUCCESS) { /* config_ldap.c checked */
        snprintf(err, errlen, "not an LDAP URI");
        return NULL;
    }
    ldaps = strcmp(lud->lud_scheme, "ldaps") == 0;
    fd = ldap_dial_tcp(lud, deadline, err, errlen);
    ldap_free_urldesc(lud);
    if (fd < 0)
        return NULL;
    rc = ldap_init_fd(fd, LDAP_PROTO_TCP, cfg->uris[i], &ld);
    if (rc != LDAP_SUCCESS) {
        close(fd);
        snprintf(err, errlen, "ldap_init_fd: %s", ldap_err2string(rc));
        return NULL;
    }
    if ((what = ldap_dial_options(ld, cfg, deadline)) != NULL) {
        ldap_dial_error(ld, LDAP_PARAM_ERROR, what, err, errlen);
        goto fail;
    }
    ldap_dial_nonblock(ld);
    rc = LDAP_SUCCESS;
    if (ldaps)
        rc = ldap_install_tls(ld);
    else if (cfg->starttls)
        rc = ldap_start_tls_s(ld, NULL, NULL);
    if (rc != LDAP_SUCCESS) {
        ldap_dial_error(ld, rc, ldaps ? "TLS" : "StartTLS", err, errlen);
        goto fail;
    }
    ldap_dial_nonblock(ld); /* the handshake may leave it blocking */
    return ld;
fail:
    ldap_unbind_ext(ld, NULL, NULL); /* closes fd */
    return NULL;
}
