/* tests/unit/test_config_metrics.c: core/config/config_metrics.c -- the `metrics` table: absent
 * means no listener, an empty one means loopback port 9465 scraped from loopback only,
 * every key is read, and a bad value names metrics.<key>. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "config/config.h"
#include "testio.h"
#include "tmpdir.h"

static const char *dir;
static char        cfgpath[256];

#define BASE                                                                           \
    "return {\n"                                                                       \
    "  listeners = { { name = 'smtps', address = '127.0.0.1', port = 8465, "           \
    "tls = 'implicit' } },\n"                                                          \
    "  tls = { certificates = { { cert = 'a.crt', key = 'a.key' } } },\n"              \
    "  upstreams = { default = { { host = '127.0.0.1', port = 2525, tls = 'none' } } },\n"

static struct config *
load(const char *extra, char *err, size_t errlen)
{
    char text[2048];

    snprintf(text, sizeof(text), "%s%s\n}\n", BASE, extra);
    test_write_file(dir, "sluice.lua", text);
    return config_load(cfgpath, err, errlen);
}

static void
a_file_without_a_metrics_table_has_no_metrics_listener(void)
{
    char           err[512] = "";
    struct config *cfg = load("", err, sizeof(err));

    CHECK(cfg != NULL && cfg->metrics == NULL);
    config_free(cfg);
}

static void
an_empty_metrics_table_listens_on_loopback_9465_for_loopback_only(void)
{
    char           err[512] = "";
    struct config *cfg = load("  metrics = {},", err, sizeof(err));
    unsigned char  v6[16] = {0};

    v6[15] = 1;
    CHECK(cfg != NULL && cfg->metrics != NULL);
    if (cfg == NULL || cfg->metrics == NULL) {
        fprintf(stderr, "%s\n", err);
        config_free(cfg);
        return;
    }
    CHECK(strcmp(cfg->metrics->address, "127.0.0.1") == 0);
    CHECK_EQ_INT(cfg->metrics->port, 9465);
    CHECK_EQ_INT(cfg->metrics->n_allow, 2);
    CHECK(cfg->metrics->allow[0].family == AF_INET && cfg->metrics->allow[0].prefix == 32);
    CHECK(memcmp(cfg->metrics->allow[0].addr, "\x7f\0\0\1", 4) == 0);
    CHECK(cfg->metrics->allow[1].family == AF_INET6 && cfg->metrics->allow[1].prefix == 128);
    CHECK(memcmp(cfg->metrics->allow[1].addr, v6, 16) == 0);
    config_free(cfg);
}

static void
every_metrics_key_is_read(void)
{
    char           err[512] = "";
    struct config *cfg = load("  metrics = { address = '::1', port = 0, "
                              "allow = { '10.0.0.0/8', '192.0.2.7' } },",
                              err, sizeof(err));

    CHECK(cfg != NULL && cfg->metrics != NULL);
    if (cfg == NULL || cfg->metrics == NULL) {
        fprintf(stderr, "%s\n", err);
        config_free(cfg);
        return;
    }
    CHECK(strcmp(cfg->metrics->address, "::1") == 0);
    CHECK_EQ_INT(cfg->metrics->port, 0);
    CHECK_EQ_INT(cfg->metrics->n_allow, 2);
    CHECK(cfg->metrics->allow[0].prefix == 8 && cfg->metrics->allow[0].addr[0] == 10);
    CHECK(cfg->metrics->allow[1].prefix == 32 && cfg->metrics->allow[1].addr[3] == 7);
    config_free(cfg);
}

static void
metrics_tls_names_the_certificate_the_key_and_the_client_ca(void)
{
    char           err[512] = "";
    struct config *plain = load("  metrics = {},", err, sizeof(err));
    struct config *cfg = load("  metrics = { tls = { cert = 'a.crt', key = 'a.key', "
                              "client_ca = 'ca.crt' } },",
                              err, sizeof(err));

    CHECK(plain != NULL && plain->metrics->tls.cert_file == NULL &&
          plain->metrics->tls.key_file == NULL && plain->metrics->client_ca == NULL);
    CHECK(cfg != NULL);
    if (cfg == NULL) {
        fprintf(stderr, "%s\n", err);
        config_free(plain);
        return;
    }
    /* relative to the configuration file, as every path */
    CHECK(strcmp(cfg->metrics->tls.cert_file, test_path(dir, "a.crt")) == 0);
    CHECK(strcmp(cfg->metrics->tls.key_file, test_path(dir, "a.key")) == 0);
    CHECK(strcmp(cfg->metrics->client_ca, test_path(dir, "ca.crt")) == 0);
    config_free(cfg);
    config_free(plain);
}

static void
a_bad_metrics_value_names_its_key(void)
{
    static const struct {
        const char *extra, *want;
    } cases[] = {
        {"  metrics = { address = 'localhost' },", "metrics.address: expected an IPv4 or IPv6"},
        {"  metrics = { port = 65536 },", "metrics.port"},
        {"  metrics = { allow = { '10.0.0.0/33' } },", "metrics.allow: expected IPv4 or IPv6"},
        {"  metrics = { allow = { 'example.org' } },", "metrics.allow: expected IPv4 or IPv6"},
        {"  metrics = { allow = { '::1/129' } },", "metrics.allow"},
        {"  metrics = { listen = '127.0.0.1' },", "metrics.listen"},
        {"  metrics = 9465,", "metrics"},
        {"  metrics = { tls = { cert = 'a.crt' } },", "metrics.tls.key"},
        {"  metrics = { tls = { key = 'a.key' } },", "metrics.tls.cert"},
        {"  metrics = { tls = { cert = 'a.crt', key = 'a.key', ca = 'ca.crt' } },",
         "metrics.tls.ca"},
        {"  metrics = { tls = { cert = 'nope.crt', key = 'a.key' } },",
         "metrics.tls.cert: cannot read"},
        {"  metrics = { tls = { cert = 'a.crt', key = 'a.key', client_ca = 'nope' } },",
         "metrics.tls.client_ca: cannot read"},
        {"  metrics = { tls = 'a.crt' },", "metrics.tls"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char           err[512] = "";
        struct config *cfg = load(cases[i].extra, err, sizeof(err));

        CHECK(cfg == NULL);
        CHECK(strstr(err, cases[i].want) != NULL);
        if (cfg != NULL || strstr(err, cases[i].want) == NULL)
            fprintf(stderr, "case %zu: %s\n", i, err);
        config_free(cfg);
    }
}

static void
networks_parse_with_or_without_a_prefix(void)
{
    static const struct {
        const char *text;
        int         rc, family;
        unsigned    prefix;
    } cases[] = {
        {"127.0.0.1/32", 0, AF_INET, 32}, {"10.0.0.0/0", 0, AF_INET, 0},
        {"192.0.2.1", 0, AF_INET, 32},    {"::1/128", 0, AF_INET6, 128},
        {"2001:db8::/32", 0, AF_INET6, 32}, {"::", 0, AF_INET6, 128},
        {"10.0.0.0/", -1, 0, 0},          {"10.0.0.0/-1", -1, 0, 0},
        {"10.0.0.0/8x", -1, 0, 0},        {"/8", -1, 0, 0},
        {"10.0.0.0/0008", -1, 0, 0},      {"::1/+8", -1, 0, 0},
        {"", -1, 0, 0},                   {"10.0.0.0/33", -1, 0, 0},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct config_metrics_net n;
        int                       rc = config_metrics_parse_net(cases[i].text, &n);

        CHECK_EQ_INT(rc, cases[i].rc);
        if (rc == 0 && cases[i].rc == 0) {
            CHECK_EQ_INT(n.family, cases[i].family);
            CHECK_EQ_INT(n.prefix, cases[i].prefix);
        }
        if (rc != cases[i].rc)
            fprintf(stderr, "case %s\n", cases[i].text);
    }
}

static void
two_tables_are_the_same_listener_only_when_every_key_matches(void)
{
    char           err[512] = "";
    struct config *a = load("  metrics = { port = 9500 },", err, sizeof(err));
    struct config *b = load("  metrics = { port = 9500, allow = { '127.0.0.1', '::1' } },",
                            err, sizeof(err));
    struct config *c = load("  metrics = { port = 9500, allow = { '127.0.0.1' } },", err,
                            sizeof(err));
    struct config *d = load("  metrics = { port = 9501 },", err, sizeof(err));
    struct config *e = load("  metrics = { port = 9500, tls = { cert = 'a.crt', "
                            "key = 'a.key' } },", err, sizeof(err));
    struct config *f = load("  metrics = { port = 9500, tls = { cert = 'a.crt', "
                            "key = 'a.key', client_ca = 'ca.crt' } },", err, sizeof(err));
    struct config *g = load("  metrics = { port = 9500, tls = { cert = 'a.crt', "
                            "key = 'a.key' } },", err, sizeof(err));

    CHECK(a != NULL && b != NULL && c != NULL && d != NULL && e != NULL && f != NULL &&
          g != NULL);
    if (a != NULL && b != NULL && c != NULL && d != NULL && e != NULL && f != NULL &&
        g != NULL) {
        CHECK(config_metrics_same(a->metrics, b->metrics));
        CHECK(!config_metrics_same(a->metrics, c->metrics));
        CHECK(!config_metrics_same(a->metrics, d->metrics));
        CHECK(!config_metrics_same(a->metrics, NULL));
        CHECK(config_metrics_same(NULL, NULL));
        CHECK(!config_metrics_same(a->metrics, e->metrics)); /* HTTP -> HTTPS */
        CHECK(!config_metrics_same(e->metrics, f->metrics)); /* a client CA added */
        CHECK(config_metrics_same(e->metrics, g->metrics));
    }
    config_free(e);
    config_free(f);
    config_free(g);
    config_free(a);
    config_free(b);
    config_free(c);
    config_free(d);
}

int
main(void)
{
    dir = test_tmpdir("config-metrics");
    snprintf(cfgpath, sizeof(cfgpath), "%s/sluice.lua", dir);
    test_write_file(dir, "a.crt", "");
    test_write_file(dir, "a.key", "");
    test_write_file(dir, "ca.crt", "");
    RUN(a_file_without_a_metrics_table_has_no_metrics_listener);
    RUN(an_empty_metrics_table_listens_on_loopback_9465_for_loopback_only);
    RUN(every_metrics_key_is_read);
    RUN(metrics_tls_names_the_certificate_the_key_and_the_client_ca);
    RUN(a_bad_metrics_value_names_its_key);
    RUN(networks_parse_with_or_without_a_prefix);
    RUN(two_tables_are_the_same_listener_only_when_every_key_matches);
    return check_summary();
}
