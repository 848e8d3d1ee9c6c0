/* tests/unit/test_tls.c: core/net/tls.c with real handshakes over socketpairs. Certificates
 * are made at test time with the openssl command (RSA and ECDSA defaults, ECDSA for SNI
 * names), the client side is a plain OpenSSL client, and both sides are driven by
 * non-blocking calls in one thread. */
#include <fcntl.h>
#include <pthread.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "net/tls.h"
#include "net/tls_internal.h"
#include "tmpdir.h"

static const char *dir; /* removed at exit (tmpdir.h) */

/* Files made by make_certs(), relative names resolved by path() */
static char *
path(const char *name)
{
    static char buf[8][256];
    static int  next;
    char       *p = buf[next++ % 8];

    snprintf(p, 256, "%s/%s", dir, name);
    return p;
}

static int
make_cert(const char *base, const char *keyspec, const char *cn)
{
    char cmd[1024];

    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey %s -nodes -days 2 -keyout '%s/%s.key' "
             "-out '%s/%s.crt' -subj '/CN=%s' -addext 'subjectAltName=DNS:%s' "
             ">/dev/null 2>&1",
             keyspec, dir, base, dir, base, cn, cn);
    return system(cmd);
}

static int
make_certs(void)
{
    const char *ec = "ec -pkeyopt ec_paramgen_curve:P-256";

    return make_cert("rsa", "rsa:2048", "rsa.default.test") ||
           make_cert("ecdsa", ec, "ecdsa.default.test") ||
           make_cert("mail", ec, "mail.example.net") || make_cert("wild", ec, "*.wild.test") ||
           make_cert("rsa2", "rsa:2048", "second.rsa.test");
}

/* ---- a server built like the daemon's ---------------------------------------------- */

static struct config_cert default_certs[2];
static struct config_cert mail_certs[1];
static struct config_cert wild_certs[1];
static struct config_sni  snis[3];

static struct config_tls
tls_config(int min_version)
{
    struct config_tls cfg = {0};

    default_certs[0] = (struct config_cert){path("ecdsa.crt"), path("ecdsa.key")};
    default_certs[1] = (struct config_cert){path("rsa.crt"), path("rsa.key")};
    mail_certs[0] = (struct config_cert){path("mail.crt"), path("mail.key")};
    wild_certs[0] = (struct config_cert){path("wild.crt"), path("wild.key")};
    /* alias.example.net serves a certificate that does not name it */
    snis[0] = (struct config_sni){"*.wild.test", wild_certs, 1};
    snis[1] = (struct config_sni){"alias.example.net", mail_certs, 1};
    snis[2] = (struct config_sni){"mail.example.net", mail_certs, 1};
    cfg.certs = default_certs;
    cfg.n_certs = 2;
    cfg.sni = snis;
    cfg.n_sni = 3;
    cfg.min_version = min_version;
    cfg.ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                  "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
    cfg.ciphersuites = "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:"
                       "TLS_AES_128_GCM_SHA256";
    cfg.ticket_lifetime = 3600;
    return cfg;
}

static struct tls_server *
server_new(int min_version)
{
    struct config_tls  cfg = tls_config(min_version);
    char               err[512] = "";
    struct tls_server *ts = tls_server_new(&cfg, err, sizeof(err));

    if (ts == NULL)
        fprintf(stderr, "tls_server_new: %s\n", err);
    return ts;
}

/* ---- clients and handshakes ---------------------------------------------------------- */

/* A client context: max_version 0 = any; ciphers/sigalgs NULL = OpenSSL's defaults. */
static SSL_CTX *
client_ctx(int max_version, const char *ciphers, const char *sigalgs)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    if (max_version)
        SSL_CTX_set_max_proto_version(ctx, max_version);
    if (ciphers)
        SSL_CTX_set_cipher_list(ctx, ciphers);
    if (sigalgs)
        SSL_CTX_set1_sigalgs_list(ctx, sigalgs);
    return ctx;
}

struct pair {
    int  fds[2];
    SSL *server;
    SSL *client;
};

static void
pair_init(struct pair *p, struct tls_server *ts)
{
    socketpair(AF_UNIX, SOCK_STREAM, 0, p->fds);
    fcntl(p->fds[0], F_SETFL, O_NONBLOCK);
    fcntl(p->fds[1], F_SETFL, O_NONBLOCK);
    p->server = tls_server_ssl_new(ts, p->fds[0]);
    p->client = NULL;
}

static bool
is_want(SSL *ssl, int rc)
{
    int e = SSL_get_error(ssl, rc);

    return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE;
}

/* Drive both sides; then pass one record server -> client so a TLS 1.3 client has read
 * its session ticket. 0 when both sides completed. */
static int
pair_handshake(struct pair *p)
{
    int  i, rc;
    bool sdone = false, cdone = false;
    char buf[8];

    for (i = 0; i < 200 && !(sdone && cdone); i++) {
        if (!cdone && !(cdone = (rc = SSL_do_handshake(p->client)) == 1) && !is_want(p->client, rc))
            return -1;
        if (!sdone && !(sdone = (rc = SSL_do_handshake(p->server)) == 1) && !is_want(p->server, rc))
            return -1;
    }
    if (!(sdone && cdone) || SSL_write(p->server, "ok", 2) != 2)
        return -1;
    for (i = 0; i < 20; i++)
        if (SSL_read(p->client, buf, sizeof(buf)) == 2)
            return 0;
    return -1;
}

/* Connect a client from cctx, with an SNI name and a session to resume if not NULL. */
static int
pair_open(struct pair *p, struct tls_server *ts, SSL_CTX *cctx, const char *sni,
          SSL_SESSION *resume)
{
    pair_init(p, ts);
    p->client = SSL_new(cctx);
    SSL_set_fd(p->client, p->fds[1]);
    SSL_set_connect_state(p->client);
    if (sni)
        SSL_set_tlsext_host_name(p->client, sni);
    if (resume)
        SSL_set_session(p->client, resume);
    return pair_handshake(p);
}

/* A clean close: SSL_free() without a close_notify sent would mark the session
 * unresumable (OpenSSL treats it as a broken connection). */
static void
pair_close(struct pair *p)
{
    if (p->client != NULL && SSL_is_init_finished(p->client))
        SSL_shutdown(p->client);
    if (p->server != NULL && SSL_is_init_finished(p->server))
        SSL_shutdown(p->server);
    SSL_free(p->server);
    SSL_free(p->client);
    close(p->fds[0]);
    close(p->fds[1]);
}

/* The subject CN of the certificate the client got, or "" */
static const char *
peer_cn(SSL *client)
{
    static char cn[128];
    X509       *x = SSL_get1_peer_certificate(client);

    cn[0] = '\0';
    if (x != NULL)
        X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn));
    X509_free(x);
    return cn;
}

/* Handshake with the given client and return the certificate's CN ("" on failure). */
static const char *
cn_for(int max_version, const char *ciphers, const char *sigalgs, const char *sni)
{
    static char        cn[128];
    struct tls_server *ts = server_new(TLS1_2_VERSION);
    SSL_CTX           *cctx = client_ctx(max_version, ciphers, sigalgs);
    struct pair        p;

    cn[0] = '\0';
    if (pair_open(&p, ts, cctx, sni, NULL) == 0)
        snprintf(cn, sizeof(cn), "%s", peer_cn(p.client));
    pair_close(&p);
    SSL_CTX_free(cctx);
    tls_server_free(ts);
    return cn;
}

/* ---- versions ---------------------------------------------------------------------- */

static void
tls13_is_negotiated_with_a_default_client(void)
{
    struct tls_server *ts = server_new(TLS1_2_VERSION);
    SSL_CTX           *cctx = client_ctx(0, NULL, NULL);
    struct pair        p;

    CHECK(ts != NULL);
    CHECK_EQ_INT(pair_open(&p, ts, cctx, NULL, NULL), 0);
    CHECK_EQ_INT(SSL_version(p.client), TLS1_3_VERSION);
    CHECK(strcmp(tls_version_name(p.server), "TLSv1.3") == 0);
    CHECK(strncmp(tls_cipher_name(p.server), "TLS_", 4) == 0);
    pair_close(&p);
    SSL_CTX_free(cctx);
    tls_server_free(ts);
}

static void
a_tls12_client_is_accepted_when_min_version_is_12(void)
{
    struct tls_server *ts = server_new(TLS1_2_VERSION);
    SSL_CTX           *cctx = client_ctx(TLS1_2_VERSION, NULL, NULL);
    struct pair        p;

    CHECK_EQ_INT(pair_open(&p, ts, cctx, NULL, NULL), 0);
    CHECK_EQ_INT(SSL_version(p.server), TLS1_2_VERSION);
    CHECK(strncmp(tls_cipher_name(p.server), "ECDHE-", 6) == 0); /* ours, not DHE/RSA kx */
    pair_close(&p);
    SSL_CTX_free(cctx);
    tls_server_free(ts);
}

static void
min_version_13_refuses_a_tls12_only_client(void)
{
    struct tls_server *ts = server_new(TLS1_3_VERSION);
    SSL_CTX           *old = client_ctx(TLS1_2_VERSION, NULL, NULL);
    SSL_CTX           *cur = client_ctx(0, NULL, NULL);
    struct pair        p;

    CHECK(pair_open(&p, ts, old, NULL, NULL) != 0);
    pair_close(&p);
    CHECK_EQ_INT(pair_open(&p, ts, cur, NULL, NULL), 0);
    CHECK_EQ_INT(SSL_version(p.client), TLS1_3_VERSION);
    pair_close(&p);
    SSL_CTX_free(old);
    SSL_CTX_free(cur);
    tls_server_free(ts);
}

/* ---- certificate selection ------------------------------------------------------------ */

static void
sni_picks_the_certificate_for_the_exact_name(void)
{
    struct tls_server *ts = server_new(TLS1_2_VERSION);
    SSL_CTX           *cctx = client_ctx(0, NULL, NULL);
    struct pair        p;

    CHECK(strcmp(cn_for(0, NULL, NULL, "mail.example.net"), "mail.example.net") == 0);
    CHECK(strcmp(cn_for(0, NULL, NULL, "MAIL.Example.NET"), "mail.example.net") == 0);
    CHECK_EQ_INT(pair_open(&p, ts, cctx, "mail.example.net", NULL), 0);
    CHECK(tls_sni_name(p.server) != NULL &&
          strcmp(tls_sni_name(p.server), "mail.example.net") == 0);
    pair_close(&p);
    SSL_CTX_free(cctx);
    tls_server_free(ts);
}

static void
a_wildcard_sni_entry_matches_one_label_only(void)
{
    CHECK(strcmp(cn_for(0, NULL, NULL, "a.wild.test"), "*.wild.test") == 0);
    CHECK(strcmp(cn_for(0, NULL, NULL, "a.b.wild.test"), "*.wild.test") != 0);
    CHECK(strcmp(cn_for(0, NULL, NULL, "wild.test"), "*.wild.test") != 0);
}

static void
an_unknown_or_missing_name_gets_the_default_certificate(void)
{
    const char *cn = cn_for(0, NULL, NULL, "other.example.com");

    CHECK(strcmp(cn, "ecdsa.default.test") == 0 || strcmp(cn, "rsa.default.test") == 0);
    cn = cn_for(0, NULL, NULL, NULL);
    CHECK(strcmp(cn, "ecdsa.default.test") == 0 || strcmp(cn, "rsa.default.test") == 0);
}

static void
an_ecdsa_only_tls12_client_gets_the_ecdsa_certificate(void)
{
    CHECK(strcmp(cn_for(TLS1_2_VERSION, "ECDHE-ECDSA-AES128-GCM-SHA256", NULL, NULL),
                 "ecdsa.default.test") == 0);
}

static void
an_rsa_only_tls12_client_gets_the_rsa_certificate(void)
{
    CHECK(strcmp(cn_for(TLS1_2_VERSION, "ECDHE-RSA-AES128-GCM-SHA256", NULL, NULL),
                 "rsa.default.test") == 0);
}

static void
a_tls13_client_gets_the_certificate_its_signature_algorithms_allow(void)
{
    CHECK(strcmp(cn_for(0, NULL, "ECDSA+SHA256", NULL), "ecdsa.default.test") == 0);
    CHECK(strcmp(cn_for(0, NULL, "rsa_pss_rsae_sha256", NULL), "rsa.default.test") == 0);
}

/* ---- resumption and ticket keys ------------------------------------------------------ */

static time_t
fake_clock(void *arg)
{
    return *(time_t *)arg;
}

/* Connect once and return the client's session (with its ticket), or NULL. */
static SSL_SESSION *
first_session(struct tls_server *ts, SSL_CTX *cctx, const char *sni)
{
    struct pair  p;
    SSL_SESSION *s = NULL;

    if (pair_open(&p, ts, cctx, sni, NULL) == 0 && !SSL_session_reused(p.client))
        s = SSL_get1_session(p.client);
    pair_close(&p);
    return s;
}

/* 1 resumed, 0 full handshake, -1 failed */
static int
resumes(struct tls_server *ts, SSL_CTX *cctx, const char *sni, SSL_SESSION *s)
{
    struct pair p;
    int         rc = -1;

    if (pair_open(&p, ts, cctx, sni, s) == 0)
        rc = SSL_session_reused(p.client) && SSL_session_reused(p.server);
    pair_close(&p);
    return rc;
}

static void
a_ticket_from_one_connection_resumes_a_second(void)
{
    static const int versions[] = {TLS1_3_VERSION, TLS1_2_VERSION};
    struct tls_server *ts = server_new(TLS1_2_VERSION);
    SSL_SESSION       *s;
    SSL_CTX           *cctx;
    size_t             i;

    for (i = 0; i < 2; i++) {
        cctx = client_ctx(versions[i], NULL, NULL);
        s = first_session(ts, cctx, NULL);
        CHECK(s != NULL && SSL_SESSION_is_resumable(s));
        CHECK(s != NULL && SSL_SESSION_has_ticket(s));
        CHECK_EQ_INT(resumes(ts, cctx, NULL, s), 1);
        SSL_SESSION_free(s);
        SSL_CTX_free(cctx);
    }
    tls_server_free(ts);
}

/* A client that uses each ticket once (RFC 8446 C.4), as browsers and OpenSSL's own
 * client cache do: it keeps only the newest ticket the server sent, and drops it on use. */
static SSL_SESSION *one_use_ticket; /* owns */
static int          one_use_tickets;

static int
one_use_keep_cb(SSL *ssl, SSL_SESSION *s)
{
    (void)ssl;
    SSL_SESSION_free(one_use_ticket);
    one_use_ticket = s;
    one_use_tickets++;
    return 1; /* the reference is ours now */
}

static void
every_tls13_resumption_leaves_the_client_a_fresh_ticket(void)
{
    struct tls_server *ts = server_new(TLS1_2_VERSION);
    SSL_CTX           *cctx = client_ctx(0, NULL, NULL);
    SSL_SESSION       *s;
    struct pair        p;
    int                i, resumed = 0;

    SSL_CTX_set_session_cache_mode(cctx, SSL_SESS_CACHE_CLIENT |
                                             SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(cctx, one_use_keep_cb);
    CHECK_EQ_INT(pair_open(&p, ts, cctx, NULL, NULL), 0);
    pair_close(&p);
    CHECK_EQ_INT(one_use_tickets, 1);
    for (i = 0; i < 6 && one_use_ticket != NULL; i++) {
        s = one_use_ticket;
        one_use_ticket = NULL;
        if (pair_open(&p, ts, cctx, i % 2 ? "mail.example.net" : NULL, s) == 0)
            resumed += SSL_session_reused(p.client) && SSL_version(p.client) == TLS1_3_VERSION;
        pair_close(&p);
        SSL_SESSION_free(s);
    }
    CHECK_EQ_INT(resumed, 6);          /* before the fix: 1, then no ticket to resume with */
    CHECK_EQ_INT(one_use_tickets, 1 + 6);
    SSL_SESSION_free(one_use_ticket);
    one_use_ticket = NULL;
    SSL_CTX_free(cctx);
    tls_server_free(ts);
}

static void
a_ticket_resumes_after_one_rotation_but_not_after_two(void)
{
    struct tls_server *ts = server_new(TLS1_2_VERSION);
    SSL_CTX           *cctx = client_ctx(0, NULL, NULL);
    time_t             now = 1000000;
    SSL_SESSION       *s;

    tls_server_set_clock(ts, fake_clock, &now);
    s = first_session(ts, cctx, NULL);
    CHECK(s != NULL);
    now += 3599; /* still the same key */
    CHECK_EQ_INT(resumes(ts, cctx, NULL, s), 1);
    now += 1; /* one rotation: the ticket's key is the previous one */
    CHECK_EQ_INT(resumes(ts, cctx, NULL, s), 1);
    now += 3600; /* two rotations: gone, a full handshake instead */
    CHECK_EQ_INT(resumes(ts, cctx, NULL, s), 0);
    SSL_SESSION_free(s);
    SSL_CTX_free(cctx);
    tls_server_free(ts);
}

static void
a_ticket_is_refused_after_two_lifetimes_without_any_handshake(void)
{
    struct tls_server *ts = server_new(TLS1_2_VERSION);
    SSL_CTX           *cctx = client_ctx(0, NULL, NULL);
    time_t             now = 1000000;
    SSL_SESSION       *s;

    tls_server_set_clock(ts, fake_clock, &now);
    s = first_session(ts, cctx, NULL);
    now += 2 * 3600; /* no handshake in between to rotate step by step */
    CHECK_EQ_INT(resumes(ts, cctx, NULL, s), 0);
    SSL_SESSION_free(s);
    SSL_CTX_free(cctx);
    tls_server_free(ts);
}

static void
a_ticket_issued_under_an_sni_name_resumes_under_it(void)
{
    struct tls_server *ts = server_new(TLS1_2_VERSION);
    SSL_CTX           *cctx = client_ctx(0, NULL, NULL);
    SSL_SESSION       *s = first_session(ts, cctx, "mail.example.net");

    CHECK(s != NULL);
    CHECK_EQ_INT(resumes(ts, cctx, "mail.example.net", s), 1);
    SSL_SESSION_free(s);
    SSL_CTX_free(cctx);
    tls_server_free(ts);
}

static void
tickets_from_another_server_instance_do_not_resume(void)
{
    struct tls_server *a = server_new(TLS1_2_VERSION), *b = server_new(TLS1_2_VERSION);
    SSL_CTX           *cctx = client_ctx(0, NULL, NULL);
    SSL_SESSION       *s = first_session(a, cctx, NULL);

    CHECK_EQ_INT(resumes(b, cctx, NULL, s), 0); /* each server made its own keys */
    SSL_SESSION_free(s);
    SSL_CTX_free(cctx);
    tls_server_free(a);
    tls_server_free(b);
}

/* A reload: the next generation's server takes the running one's keys. */
static struct tls_server *
server_with_lifetime(int lifetime)
{
    struct config_tls cfg = tls_config(TLS1_2_VERSION);
    char              err[512] = "";

    cfg.ticket_lifetime = lifetime;
    return tls_server_new(&cfg, err, sizeof(err));
}

static void
tickets_resume_on_a_next_server_that_keeps_the_ticket_keys(void)
{
    static const int versions[] = {TLS1_3_VERSION, TLS1_2_VERSION};

    for (size_t i = 0; i < 2; i++) {
        struct tls_server *running = server_new(TLS1_2_VERSION);
        struct tls_server *next = server_new(TLS1_2_VERSION);
        SSL_CTX           *cctx = client_ctx(versions[i], NULL, NULL);
        SSL_SESSION       *s = first_session(running, cctx, NULL);
        SSL_SESSION       *s2;

        CHECK(s != NULL);
        CHECK_EQ_INT(resumes(next, cctx, NULL, s), 0); /* its own keys: not yet */
        CHECK(tls_server_keep_ticket_keys(next, running));
        CHECK(tls_server_keep_ticket_keys(next, running)); /* again: nothing changes */
        CHECK_EQ_INT(resumes(next, cctx, NULL, s), 1);
        CHECK_EQ_INT(resumes(next, cctx, "mail.example.net", s), 1); /* an SNI context too */
        s2 = first_session(next, cctx, NULL); /* and the other way round */
        CHECK_EQ_INT(resumes(running, cctx, NULL, s2), 1);
        tls_server_free(running); /* the old generation retires: the keys stay */
        CHECK_EQ_INT(resumes(next, cctx, NULL, s), 1);
        CHECK_EQ_INT(resumes(next, cctx, NULL, s2), 1);
        SSL_SESSION_free(s);
        SSL_SESSION_free(s2);
        SSL_CTX_free(cctx);
        tls_server_free(next);
    }
}

static void
kept_ticket_keys_go_on_with_their_rotation_schedule(void)
{
    struct tls_server *running = server_new(TLS1_2_VERSION);
    struct tls_server *next = server_new(TLS1_2_VERSION);
    SSL_CTX           *cctx = client_ctx(0, NULL, NULL);
    time_t             now = 1000000;
    SSL_SESSION       *s;

    tls_server_set_clock(running, fake_clock, &now);
    s = first_session(running, cctx, NULL);
    now += 3000;
    CHECK(tls_server_keep_ticket_keys(next, running));
    tls_server_free(running);
    now += 600; /* one lifetime since the key was made, not since the reload: rotated */
    CHECK_EQ_INT(resumes(next, cctx, NULL, s), 1);
    now += 3600; /* two rotations */
    CHECK_EQ_INT(resumes(next, cctx, NULL, s), 0);
    SSL_SESSION_free(s);
    SSL_CTX_free(cctx);
    tls_server_free(next);
}

static void
a_changed_ticket_lifetime_keeps_the_next_servers_own_keys(void)
{
    struct tls_server *running = server_new(TLS1_2_VERSION);
    struct tls_server *next = server_with_lifetime(7200);
    SSL_CTX           *cctx = client_ctx(0, NULL, NULL);
    SSL_SESSION       *s = first_session(running, cctx, NULL);

    CHECK(next != NULL && s != NULL);
    CHECK(!tls_server_keep_ticket_keys(next, running));
    CHECK_EQ_INT(resumes(next, cctx, NULL, s), 0);
    CHECK(!tls_server_keep_ticket_keys(next, NULL));
    CHECK(!tls_server_keep_ticket_keys(NULL, running));
    SSL_SESSION_free(s);
    SSL_CTX_free(cctx);
    tls_server_free(running);
    tls_server_free(next);
}

/* Workers share one tls_server: handshakes and ticket use from several threads. */
static void *
handshake_worker(void *arg)
{
    struct tls_server *ts = arg;
    SSL_CTX           *cctx = client_ctx(0, NULL, NULL);
    SSL_SESSION       *s;
    long               ok = 0;
    int                i;

    for (i = 0; i < 8; i++) {
        s = first_session(ts, cctx, i % 2 ? "mail.example.net" : NULL);
        ok += s != NULL && resumes(ts, cctx, i % 2 ? "mail.example.net" : NULL, s) == 1;
        SSL_SESSION_free(s);
    }
    SSL_CTX_free(cctx);
    return (void *)ok;
}

static void
threads_share_one_server_and_its_ticket_keys(void)
{
    struct tls_server *ts = server_new(TLS1_2_VERSION);
    pthread_t          t[4];
    void              *ok;
    long               total = 0;
    int                i;

    for (i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, handshake_worker, ts);
    for (i = 0; i < 4; i++) {
        pthread_join(t[i], &ok);
        total += (long)ok;
    }
    CHECK_EQ_INT(total, 4 * 8);
    tls_server_free(ts);
}

/* ---- configuration errors -------------------------------------------------------------- */

/* tls_server_new() with the default config changed by edit(); returns the error text. */
static const char *
server_error(void (*edit)(struct config_tls *cfg))
{
    static char        err[512];
    struct config_tls  cfg = tls_config(TLS1_2_VERSION);
    struct tls_server *ts;

    err[0] = '\0';
    edit(&cfg);
    ts = tls_server_new(&cfg, err, sizeof(err));
    tls_server_free(ts);
    return ts == NULL ? err : NULL;
}

static struct config_cert bad_certs[2];

static void
edit_missing_file(struct config_tls *cfg)
{
    bad_certs[0] = (struct config_cert){path("nope.crt"), path("rsa.key")};
    cfg->certs = bad_certs;
    cfg->n_certs = 1;
}

static void
edit_wrong_key(struct config_tls *cfg)
{
    bad_certs[0] = (struct config_cert){path("rsa.crt"), path("rsa2.key")};
    cfg->certs = bad_certs;
    cfg->n_certs = 1;
}

static void
edit_two_rsa(struct config_tls *cfg)
{
    bad_certs[0] = (struct config_cert){path("rsa.crt"), path("rsa.key")};
    bad_certs[1] = (struct config_cert){path("rsa2.crt"), path("rsa2.key")};
    cfg->certs = bad_certs;
    cfg->n_certs = 2;
}

static void
edit_bad_sni_cert(struct config_tls *cfg)
{
    static struct config_cert c[1];
    static struct config_sni  s[1];

    c[0] = (struct config_cert){path("mail.crt"), path("nope.key")};
    s[0] = (struct config_sni){"mail.example.net", c, 1};
    cfg->sni = s;
    cfg->n_sni = 1;
}

static void
edit_ciphers(struct config_tls *cfg)
{
    cfg->ciphers = "NOT-A-CIPHER";
}

static void
edit_no_certs(struct config_tls *cfg)
{
    cfg->n_certs = 0;
}

static void
tls_server_new_names_the_file_it_cannot_use(void)
{
    const char *e;

    e = server_error(edit_missing_file);
    CHECK(e != NULL && strstr(e, "nope.crt") != NULL);
    e = server_error(edit_wrong_key);
    CHECK(e != NULL && strstr(e, "rsa2.key") != NULL && strstr(e, "rsa.crt") != NULL);
    e = server_error(edit_bad_sni_cert);
    CHECK(e != NULL && strstr(e, "nope.key") != NULL);
}

static void
tls_server_new_refuses_two_certificates_of_one_key_type(void)
{
    const char *e = server_error(edit_two_rsa);

    CHECK(e != NULL && strstr(e, "rsa2.crt") != NULL && strstr(e, "RSA") != NULL);
}

static void
tls_server_new_refuses_a_cipher_list_with_nothing_usable(void)
{
    const char *e = server_error(edit_ciphers);

    CHECK(e != NULL && strstr(e, "tls.ciphers") != NULL);
    e = server_error(edit_no_certs);
    CHECK(e != NULL && strstr(e, "tls.certificates") != NULL);
}

/* ---- one certificate, no resumption (tls_single_ctx_new) ------------------------------- */

/* A context for ecdsa.crt with the test policy at min_version; client_ca as given. */
static SSL_CTX *
single_new(int min_version, const char *client_ca, char *err, size_t errlen)
{
    static struct config_cert cert[1];
    char                      ca[256];
    struct config_tls         cfg;

    if (client_ca != NULL) /* path()'s buffers rotate: tls_config() reuses them all */
        snprintf(ca, sizeof(ca), "%s", client_ca);
    cfg = tls_config(min_version);
    cert[0] = (struct config_cert){path("ecdsa.crt"), path("ecdsa.key")};
    return tls_single_ctx_new(&cfg, cert, client_ca != NULL ? ca : NULL, err, errlen);
}

/* Handshake a client of cctx (with ccert/ckey as its certificate unless NULL) against
 * sctx: 0 when both sides completed. */
static int
single_open(struct pair *p, SSL_CTX *sctx, SSL_CTX *cctx, const char *ccert, const char *ckey)
{
    socketpair(AF_UNIX, SOCK_STREAM, 0, p->fds);
    fcntl(p->fds[0], F_SETFL, O_NONBLOCK);
    fcntl(p->fds[1], F_SETFL, O_NONBLOCK);
    p->server = SSL_new(sctx);
    SSL_set_fd(p->server, p->fds[0]);
    SSL_set_accept_state(p->server);
    p->client = SSL_new(cctx);
    SSL_set_fd(p->client, p->fds[1]);
    SSL_set_connect_state(p->client);
    if (ccert != NULL && (SSL_use_certificate_chain_file(p->client, ccert) != 1 ||
                          SSL_use_PrivateKey_file(p->client, ckey, SSL_FILETYPE_PEM) != 1))
        abort();
    return pair_handshake(p);
}

static void
a_single_context_serves_its_certificate_and_no_ticket(void)
{
    char         err[512] = "";
    SSL_CTX     *sctx = single_new(TLS1_2_VERSION, NULL, err, sizeof(err));
    SSL_CTX     *cctx = client_ctx(0, NULL, NULL);
    struct pair  p;

    CHECK(sctx != NULL);
    if (sctx == NULL) {
        fprintf(stderr, "tls_single_ctx_new: %s\n", err);
        SSL_CTX_free(cctx);
        return;
    }
    CHECK_EQ_INT(single_open(&p, sctx, cctx, NULL, NULL), 0);
    CHECK(strcmp(peer_cn(p.client), "ecdsa.default.test") == 0);
    CHECK_EQ_INT(SSL_version(p.client), TLS1_3_VERSION);
    /* no NewSessionTicket came with the server's first record: nothing to resume */
    CHECK(!SSL_SESSION_is_resumable(SSL_get_session(p.client)));
    pair_close(&p);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
}

static void
a_single_context_keeps_the_listeners_minimum_version(void)
{
    char        err[512] = "";
    SSL_CTX    *v12 = single_new(TLS1_2_VERSION, NULL, err, sizeof(err));
    SSL_CTX    *v13 = single_new(TLS1_3_VERSION, NULL, err, sizeof(err));
    SSL_CTX    *tls11 = client_ctx(TLS1_1_VERSION, "DEFAULT@SECLEVEL=0", NULL);
    SSL_CTX    *tls12 = client_ctx(TLS1_2_VERSION, NULL, NULL);
    struct pair p;

    SSL_CTX_set_security_level(tls11, 0); /* OpenSSL 3 offers TLS 1.1 at level 0 only */
    CHECK(v12 != NULL && v13 != NULL);
    CHECK(single_open(&p, v12, tls11, NULL, NULL) != 0);
    pair_close(&p);
    CHECK_EQ_INT(single_open(&p, v12, tls12, NULL, NULL), 0);
    CHECK(strncmp(tls_cipher_name(p.server), "ECDHE-", 6) == 0); /* the listeners' list */
    pair_close(&p);
    CHECK(single_open(&p, v13, tls12, NULL, NULL) != 0);
    pair_close(&p);
    SSL_CTX_free(tls11);
    SSL_CTX_free(tls12);
    SSL_CTX_free(v12);
    SSL_CTX_free(v13);
}

static void
with_a_client_ca_only_a_client_certificate_from_it_gets_through(void)
{
    char        err[512] = "";
    SSL_CTX    *sctx = single_new(TLS1_2_VERSION, path("mail.crt"), err, sizeof(err));
    SSL_CTX    *cctx = client_ctx(0, NULL, NULL);
    SSL_CTX    *c12 = client_ctx(TLS1_2_VERSION, NULL, NULL);
    struct pair p;

    CHECK(sctx != NULL);
    if (sctx == NULL) {
        fprintf(stderr, "tls_single_ctx_new: %s\n", err);
        SSL_CTX_free(cctx);
        SSL_CTX_free(c12);
        return;
    }
    CHECK_EQ_INT(single_open(&p, sctx, cctx, path("mail.crt"), path("mail.key")), 0);
    pair_close(&p);
    CHECK_EQ_INT(single_open(&p, sctx, c12, path("mail.crt"), path("mail.key")), 0);
    pair_close(&p);
    CHECK(single_open(&p, sctx, cctx, NULL, NULL) != 0); /* none */
    pair_close(&p);
    CHECK(single_open(&p, sctx, cctx, path("wild.crt"), path("wild.key")) != 0); /* not its */
    pair_close(&p);
    CHECK(single_open(&p, sctx, c12, NULL, NULL) != 0);
    pair_close(&p);
    SSL_CTX_free(cctx);
    SSL_CTX_free(c12);
    SSL_CTX_free(sctx);
}

static void
tls_single_ctx_new_names_the_file_it_cannot_use(void)
{
    static struct config_cert cert[1];
    struct config_tls         cfg = tls_config(TLS1_2_VERSION);
    char                      err[512] = "";
    SSL_CTX                  *ctx;

    cert[0] = (struct config_cert){path("rsa.crt"), path("rsa2.key")};
    ctx = tls_single_ctx_new(&cfg, cert, NULL, err, sizeof(err));
    CHECK(ctx == NULL && strstr(err, "rsa2.key") != NULL && strstr(err, "rsa.crt") != NULL);
    SSL_CTX_free(ctx);
    ctx = single_new(TLS1_2_VERSION, path("nope-ca.pem"), err, sizeof(err));
    CHECK(ctx == NULL && strstr(err, "nope-ca.pem") != NULL);
    SSL_CTX_free(ctx);
    ctx = single_new(TLS1_2_VERSION, path("rsa.key"), err, sizeof(err)); /* no certificate */
    CHECK(ctx == NULL && strstr(err, "rsa.key") != NULL);
    SSL_CTX_free(ctx);
    cfg.ciphers = "NOT-A-CIPHER";
    cert[0] = (struct config_cert){path("rsa.crt"), path("rsa.key")};
    ctx = tls_single_ctx_new(&cfg, cert, NULL, err, sizeof(err));
    CHECK(ctx == NULL && strstr(err, "tls.ciphers") != NULL);
    SSL_CTX_free(ctx);
}

/* ---- client side ---------------------------------------------------------------------- */

/* Handshake a tls_client_ssl_new() client with name against the test server. */
static int
client_handshake(SSL_CTX *cctx, const char *name, long *verify)
{
    struct tls_server *ts = server_new(TLS1_2_VERSION);
    struct pair        p;
    int                rc = -1;

    pair_init(&p, ts);
    p.client = tls_client_ssl_new(cctx, p.fds[1], name);
    if (p.client != NULL) {
        rc = pair_handshake(&p);
        *verify = SSL_get_verify_result(p.client);
    }
    pair_close(&p);
    tls_server_free(ts);
    return rc;
}

static void
a_verifying_client_checks_the_chain_and_the_host_name(void)
{
    char     err[256];
    SSL_CTX *cctx = tls_client_ctx_new(path("mail.crt"), true, err, sizeof(err));
    long     v = -1;

    CHECK(cctx != NULL);
    CHECK_EQ_INT(client_handshake(cctx, "mail.example.net", &v), 0);
    CHECK_EQ_INT(v, X509_V_OK);
    /* alias.example.net is served the mail.example.net certificate */
    CHECK(client_handshake(cctx, "alias.example.net", &v) != 0);
    CHECK_EQ_INT(v, X509_V_ERR_HOSTNAME_MISMATCH);
    /* the default certificates are not signed by that CA */
    CHECK(client_handshake(cctx, "other.example.com", &v) != 0);
    CHECK(tls_client_ssl_new(cctx, -1, NULL) == NULL); /* nothing to verify against */
    SSL_CTX_free(cctx);
}

static void
a_client_without_verification_accepts_any_certificate(void)
{
    char     err[256];
    SSL_CTX *cctx = tls_client_ctx_new(NULL, false, err, sizeof(err));
    long     v = -1;

    CHECK(cctx != NULL);
    CHECK_EQ_INT(client_handshake(cctx, "alias.example.net", &v), 0);
    CHECK_EQ_INT(client_handshake(cctx, "127.0.0.1", &v), 0);
    SSL_CTX_free(cctx);
}

static void
a_client_context_names_an_unreadable_ca_file(void)
{
    char     err[256] = "";
    SSL_CTX *cctx = tls_client_ctx_new(path("nope.pem"), true, err, sizeof(err));

    CHECK(cctx == NULL);
    CHECK(strstr(err, "nope.pem") != NULL);
}

static void
tls_error_string_reports_and_clears_the_queue(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    char     buf[256];

    CHECK(SSL_CTX_use_certificate_chain_file(ctx, path("nope.crt")) != 1);
    CHECK(strcmp(tls_error_string(buf, sizeof(buf)), "unknown error") != 0);
    CHECK(strcmp(tls_error_string(buf, sizeof(buf)), "unknown error") == 0); /* cleared */
    SSL_CTX_free(ctx);
}

int
main(void)
{
    dir = test_tmpdir("tls");
    if (make_certs() != 0) {
        fprintf(stderr, "cannot make test certificates in %s (is openssl installed?)\n", dir);
        return 1;
    }
    RUN(tls13_is_negotiated_with_a_default_client);
    RUN(a_tls12_client_is_accepted_when_min_version_is_12);
    RUN(min_version_13_refuses_a_tls12_only_client);
    RUN(sni_picks_the_certificate_for_the_exact_name);
    RUN(a_wildcard_sni_entry_matches_one_label_only);
    RUN(an_unknown_or_missing_name_gets_the_default_certificate);
    RUN(an_ecdsa_only_tls12_client_gets_the_ecdsa_certificate);
    RUN(an_rsa_only_tls12_client_gets_the_rsa_certificate);
    RUN(a_tls13_client_gets_the_certificate_its_signature_algorithms_allow);
    RUN(a_ticket_from_one_connection_resumes_a_second);
    RUN(every_tls13_resumption_leaves_the_client_a_fresh_ticket);
    RUN(a_ticket_resumes_after_one_rotation_but_not_after_two);
    RUN(a_ticket_is_refused_after_two_lifetimes_without_any_handshake);
    RUN(a_ticket_issued_under_an_sni_name_resumes_under_it);
    RUN(tickets_from_another_server_instance_do_not_resume);
    RUN(tickets_resume_on_a_next_server_that_keeps_the_ticket_keys);
    RUN(kept_ticket_keys_go_on_with_their_rotation_schedule);
    RUN(a_changed_ticket_lifetime_keeps_the_next_servers_own_keys);
    RUN(threads_share_one_server_and_its_ticket_keys);
    RUN(tls_server_new_names_the_file_it_cannot_use);
    RUN(tls_server_new_refuses_two_certificates_of_one_key_type);
    RUN(tls_server_new_refuses_a_cipher_list_with_nothing_usable);
    RUN(a_single_context_serves_its_certificate_and_no_ticket);
    RUN(a_single_context_keeps_the_listeners_minimum_version);
    RUN(with_a_client_ca_only_a_client_certificate_from_it_gets_through);
    RUN(tls_single_ctx_new_names_the_file_it_cannot_use);
    RUN(a_verifying_client_checks_the_chain_and_the_host_name);
    RUN(a_client_without_verification_accepts_any_certificate);
    RUN(a_client_context_names_an_unreadable_ca_file);
    RUN(tls_error_string_reports_and_clears_the_queue);
    return check_summary();
}
