/* tests/unit/test_ldap_dial.c: the TCP part of core/auth/ldap_dial.c, for a directory whose
 * host name has several addresses (fake_getaddrinfo.h): one that refuses, one that never
 * answers (a listener with backlog 0 whose one slot is taken) and a live listener, all
 * on loopback. ldap:// without StartTLS, so that a connection needs no server that
 * speaks LDAP: ldap_dial() sends nothing before the first operation. The TLS and LDAP
 * parts are tests/integration/test_ldap.py's, against slapd. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "config/config.h"
#include "config/config_ldap_tls.h"
#include "fake_getaddrinfo.h"
#include "auth/ldap_dial.h"
#include "loopback.h"

static void *tls_ctx;

static double
now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A listener on 127.0.0.1 (non-blocking, for accept). */
static int
listen_v4(int backlog, int *port)
{
    struct sockaddr_in sin = { .sin_family = AF_INET };
    socklen_t          sl = sizeof(sin);
    int                fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);

    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
        listen(fd, backlog) != 0 || getsockname(fd, (struct sockaddr *)&sin, &sl) != 0) {
        perror("listen_v4");
        exit(1);
    }
    *port = ntohs(sin.sin_port);
    return fd;
}

/* ldap_dial() to ldap://host:port with timeout; NULL and err, or a handle. */
static LDAP *
dial(const char *host, int port, double timeout, char *err, size_t errlen, double *elapsed)
{
    char               uri[128];
    char              *uris[] = { uri, NULL };
    struct config_ldap cfg = { .uris = uris, .n_uris = 1, .tls_ctx = tls_ctx,
                               .timeout = timeout };
    double             t0 = now();
    LDAP              *ld;

    snprintf(uri, sizeof(uri), "ldap://%s:%d", host, port);
    err[0] = '\0';
    ld = ldap_dial(&cfg, 0, err, errlen);
    *elapsed = now() - t0;
    return ld;
}

static void
a_host_whose_first_address_never_answers_is_reached_on_the_next(void)
{
    int                    bport, filler, bfd = loopback_blackhole(&bport, &filler);
    int                    port, lfd = listen_v4(4, &port), afd;
    const struct fake_addr addrs[] = { { "127.0.0.1", bport }, { "127.0.0.1", 0 } };
    char                   err[256];
    double                 elapsed;
    LDAP                  *ld;

    fake_getaddrinfo_set("dir-silent-first.test", addrs, 2);
    ld = dial("dir-silent-first.test", port, 3, err, sizeof(err), &elapsed);
    if (ld == NULL)
        fprintf(stderr, "ldap_dial: %s\n", err);
    CHECK(ld != NULL);
    CHECK(elapsed >= 0.25 && elapsed < 2); /* not the whole timeout on the first */
    afd = accept(lfd, NULL, NULL);
    CHECK(afd >= 0);
    if (ld != NULL)
        ldap_unbind_ext(ld, NULL, NULL);
    if (afd >= 0)
        close(afd);
    close(lfd);
    close(filler);
    close(bfd);
}

static void
when_every_address_refuses_the_error_names_the_last_one_and_the_count(void)
{
    const struct fake_addr addrs[] = { { "::1", loopback_dead_port(AF_INET6) },
                                       { "127.0.0.1", loopback_dead_port(AF_INET) } };
    char                   err[256];
    double                 elapsed;

    fake_getaddrinfo_set("dir-refused.test", addrs, 2);
    CHECK(dial("dir-refused.test", 389, 3, err, sizeof(err), &elapsed) == NULL);
    CHECK(elapsed < 1);
    if (strcmp(err, "connect to dir-refused.test: Connection refused "
                    "(2 addresses tried, the last 127.0.0.1)") != 0)
        fprintf(stderr, "got: %s\n", err);
    CHECK(strcmp(err, "connect to dir-refused.test: Connection refused "
                      "(2 addresses tried, the last 127.0.0.1)") == 0);
}

static void
when_no_address_answers_the_dial_fails_at_the_timeout(void)
{
    int                    bport, filler, bfd = loopback_blackhole(&bport, &filler);
    const struct fake_addr addrs[] = { { "127.0.0.1", bport }, { "127.0.0.1", bport } };
    char                   err[256];
    double                 elapsed;

    fake_getaddrinfo_set("dir-silent.test", addrs, 2);
    CHECK(dial("dir-silent.test", 389, 0.5, err, sizeof(err), &elapsed) == NULL);
    CHECK(elapsed >= 0.45 && elapsed < 1.2);
    if (strcmp(err, "connect to dir-silent.test timed out (2 addresses tried)") != 0)
        fprintf(stderr, "got: %s\n", err);
    CHECK(strcmp(err, "connect to dir-silent.test timed out (2 addresses tried)") == 0);
    close(filler);
    close(bfd);
}

int
main(void)
{
    char err[256];

    config_ldap_tls_global_init();
    tls_ctx = config_ldap_tls_ctx_new(NULL, err, sizeof(err));
    if (tls_ctx == NULL) {
        fprintf(stderr, "config_ldap_tls_ctx_new: %s\n", err);
        return 1;
    }
    RUN(a_host_whose_first_address_never_answers_is_reached_on_the_next);
    RUN(when_every_address_refuses_the_error_names_the_last_one_and_the_count);
    RUN(when_no_address_answers_the_dial_fails_at_the_timeout);
    config_ldap_tls_ctx_free(tls_ctx);
    return check_summary();
}
