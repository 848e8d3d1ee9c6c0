/* tests/unit/test_metrics.c: core/daemon/metrics.c -- what a scrape shows (every series
 * from the daemon's status, the zones' usage by zone name, each family with HELP and TYPE
 * before its samples) and the listener: 200 on GET /metrics with the 0.0.4 content type,
 * 404 and 405 elsewhere, a client outside the allow-list closed on without an answer and
 * logged, a client that never finishes its request closed at the deadline. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "config/config.h"
#include "daemon/metrics.h"
#include "daemon/metrics_text.h"
#include "store/zone.h"
#include "testio.h"

static int status_calls;

static void
fake_status(void *ctx, struct control_status *st)
{
    (void)ctx;
    status_calls++;
    st->generation = 3;
    st->reloads_ok = 2;
    st->reloads_failed = 1;
    st->workers = 2;
    st->sessions = 4;
    st->sessions_total = 7;
    st->auth_ok = 5;
    st->auth_failed = 6;
    st->auth[SASL_MECH_PLAIN][0] = 4;
    st->auth[SASL_MECH_LOGIN][1] = 6;
    st->auth[SASL_MECH_OAUTHBEARER][0] = 1;
    st->messages_relayed = 8;
    st->messages_failed = 9;
    st->inflight_bytes = 1024;
    st->inflight_refused = 11;
    st->started = 1700000000.5;
    st->upstreams[0] = (struct control_upstream){.name = "127.0.0.1:25", .open = 3, .idle = 2,
                                                 .waits = 12, .wait_timeouts = 1,
                                                 .connect_failures = 4, .errors = 5};
    st->upstreams[1] = (struct control_upstream){.name = "[::1]:2525"};
    st->n_upstreams = 2;
    st->domains[0] = (struct control_domain){.name = "other", .relayed = 1};
    st->domains[1] = (struct control_domain){.name = "example.org", .relayed = 7, .failed = 2};
    st->n_domains = 2;
    st->state_names[0] = "NEW";
    st->state_names[1] = "CMD";
    st->states[1] = 3;
    st->n_states = 2;
    st->refused_max_connections_per_ip = 2;
    st->hook_runs[POLICY_ON_AUTH][0] = 3;  /* <= 0.5 ms */
    st->hook_runs[POLICY_ON_AUTH][7] = 2;  /* <= 0.1 s */
    st->hook_runs[POLICY_ON_AUTH][13] = 1; /* over 5 s */
    st->hook_sum_us[POLICY_ON_AUTH] = 5250000;
}

static struct zones *
two_zones(void)
{
    char               n0[] = "default", n1[] = "limits";
    struct config_zone zc[2] = {{.name = n0, .size = 65536, .evict = true},
                                {.name = n1, .size = 131072, .evict = true}};
    struct config      cfg = {.zones = zc, .n_zones = 2};
    char               err[128];

    return zones_new(&cfg, err, sizeof(err));
}

static const char *const histogram_suffixes[] = {"_bucket", "_sum", "_count", NULL};

/* Whether every sample line's name (up to '{' or ' ') had a TYPE line before it (a
 * histogram's _bucket, _sum and _count lines: their family's). */
static int
every_sample_has_a_type_before_it(const char *text)
{
    char        types[8192] = " ";
    const char *line = text;

    while (*line != '\0') {
        const char *end = strchr(line, '\n');
        size_t      n = end != NULL ? (size_t)(end - line) : strlen(line);
        char        name[128], key[132];

        if (strncmp(line, "# TYPE ", 7) == 0) {
            size_t k = strcspn(line + 7, " ");

            snprintf(name, sizeof(name), "%.*s", (int)k, line + 7);
            strncat(types, name, sizeof(types) - strlen(types) - 2);
            strcat(types, " ");
        } else if (line[0] != '#' && n > 0) {
            size_t k = strcspn(line, "{ ");

            snprintf(key, sizeof(key), " %.*s ", (int)k, line);
            for (const char *const *sfx = histogram_suffixes; *sfx != NULL; sfx++) {
                size_t m = strlen(*sfx); /* a histogram's series: its family's TYPE */

                if (strstr(types, key) == NULL && k > m && strncmp(line + k - m, *sfx, m) == 0)
                    snprintf(key, sizeof(key), " %.*s ", (int)(k - m), line);
            }
            if (strstr(types, key) == NULL) {
                fprintf(stderr, "no TYPE before: %.*s\n", (int)n, line);
                return 0;
            }
        }
        line += n + (end != NULL);
    }
    return 1;
}

static void
a_scrape_shows_the_status_and_every_zone_by_name(void)
{
    static struct control_status st;
    struct metrics_text   t;
    struct zones         *zs = two_zones();

    CHECK(zs != NULL);
    fake_status(NULL, &st);
    metrics_text_init(&t);
    metrics_render(&t, &st, zs, NULL);
    CHECK(!t.failed && t.p != NULL);
    if (t.p == NULL) {
        zones_free(zs);
        return;
    }
    CHECK(strstr(t.p, "\nsluice_up 1\n") != NULL);
    CHECK(strstr(t.p, "\nsluice_build_info{version=\"") != NULL);
    CHECK(strstr(t.p, "\nsluice_config_generation 3\n") != NULL);
    CHECK(strstr(t.p, "\nsluice_reloads_total{result=\"ok\"} 2\n") != NULL);
    CHECK(strstr(t.p, "\nsluice_reloads_total{result=\"failed\"} 1\n") != NULL);
    CHECK(strstr(t.p, "\nsluice_sessions_open 4\n") != NULL);
    CHECK(strstr(t.p, "\nsluice_sessions_total 7\n") != NULL);
    CHECK(strstr(t.p, "\n# TYPE sluice_auth_total counter\n"
                      "sluice_auth_total{mechanism=\"plain\",result=\"ok\"} 4\n"
                      "sluice_auth_total{mechanism=\"plain\",result=\"failed\"} 0\n"
                      "sluice_auth_total{mechanism=\"login\",result=\"ok\"} 0\n"
                      "sluice_auth_total{mechanism=\"login\",result=\"failed\"} 6\n"
                      "sluice_auth_total{mechanism=\"xoauth2\",result=\"ok\"} 0\n"
                      "sluice_auth_total{mechanism=\"xoauth2\",result=\"failed\"} 0\n"
                      "sluice_auth_total{mechanism=\"oauthbearer\",result=\"ok\"} 1\n"
                      "sluice_auth_total{mechanism=\"oauthbearer\",result=\"failed\"} 0\n"
                      "# HELP ") != NULL);
    CHECK(strstr(t.p, "mechanism=\"none\"") == NULL);
    CHECK(strstr(t.p, "\n# TYPE sluice_hook_duration_seconds histogram\n"
                      "sluice_hook_duration_seconds_bucket{hook=\"on_connect\",le=\"0.0005\"} 0\n"));
    CHECK(strstr(t.p, "\nsluice_hook_duration_seconds_bucket{hook=\"on_auth\",le=\"0.0005\"} 3\n"
                      "sluice_hook_duration_seconds_bucket{hook=\"on_auth\",le=\"0.001\"} 3\n"));
    CHECK(strstr(t.p, "\nsluice_hook_duration_seconds_bucket{hook=\"on_auth\",le=\"0.1\"} 5\n"));
    CHECK(strstr(t.p, "\nsluice_hook_duration_seconds_bucket{hook=\"on_auth\",le=\"5\"} 5\n"
                      "sluice_hook_duration_seconds_bucket{hook=\"on_auth\",le=\"+Inf\"} 6\n"
                      "sluice_hook_duration_seconds_sum{hook=\"on_auth\"} 5.25\n"
                      "sluice_hook_duration_seconds_count{hook=\"on_auth\"} 6\n"));
    CHECK(strstr(t.p, "\nsluice_hook_duration_seconds_count{hook=\"on_disconnect\"} 0\n"));
    CHECK(strstr(t.p, "\n# TYPE sluice_sessions gauge\nsluice_sessions{state=\"NEW\"} 0\n"
                      "sluice_sessions{state=\"CMD\"} 3\n# HELP ") != NULL);
    CHECK(strstr(t.p, "\nsluice_connections_refused_total{reason=\"max_connections\"} 0\n"
                      "sluice_connections_refused_total{reason=\"max_connections_per_ip\"} 2\n"));
    CHECK(strstr(t.p, "\n# TYPE sluice_domain_messages_total counter\n"
                      "sluice_domain_messages_total{domain=\"other\",result=\"relayed\"} 1\n"
                      "sluice_domain_messages_total{domain=\"other\",result=\"failed\"} 0\n"
                      "sluice_domain_messages_total{domain=\"example.org\",result=\"relayed\"} 7\n"
                      "sluice_domain_messages_total{domain=\"example.org\",result=\"failed\"} 2\n"
                      "# HELP ") != NULL);
    CHECK(strstr(t.p, "\nsluice_messages_total{result=\"relayed\"} 8\n") != NULL);
    CHECK(strstr(t.p, "\nsluice_messages_total{result=\"failed\"} 9\n") != NULL);
    CHECK(strstr(t.p, "\nsluice_inflight_bytes 1024\n") != NULL);
    CHECK(strstr(t.p, "\nsluice_inflight_refused_total 11\n") != NULL);
    CHECK(strstr(t.p, "\nsluice_start_time_seconds 1700000000.5\n") != NULL);
    CHECK(strstr(t.p, "\nsluice_zone_capacity_bytes{zone=\"default\"} 65536\n") != NULL);
    CHECK(strstr(t.p, "\nsluice_zone_capacity_bytes{zone=\"limits\"} 131072\n") != NULL);
    CHECK(strstr(t.p, "\nsluice_zone_entries{zone=\"limits\"} 0\n") != NULL);
    CHECK(strstr(t.p, "\n# TYPE sluice_upstream_connections gauge\n"
                      "sluice_upstream_connections{upstream=\"127.0.0.1:25\"} 3\n"
                      "sluice_upstream_connections{upstream=\"[::1]:2525\"} 0\n") != NULL);
    CHECK(strstr(t.p, "\nsluice_upstream_idle_connections{upstream=\"127.0.0.1:25\"} 2\n"));
    CHECK(strstr(t.p, "\nsluice_upstream_waits_total{upstream=\"127.0.0.1:25\"} 12\n"));
    CHECK(strstr(t.p, "\nsluice_upstream_wait_timeouts_total{upstream=\"127.0.0.1:25\"} 1\n"));
    CHECK(strstr(t.p, "\nsluice_upstream_connect_failures_total{upstream=\"127.0.0.1:25\"} 4\n"));
    CHECK(strstr(t.p, "\nsluice_upstream_errors_total{upstream=\"127.0.0.1:25\"} 5\n"));
    CHECK(strstr(t.p, "sluice_audit_") == NULL); /* no audit writer: no audit series */
    CHECK(every_sample_has_a_type_before_it(t.p));
    metrics_text_cleanup(&t);
    zones_free(zs);
}

/* ---- the listener --------------------------------------------------------------------- */

static struct metrics *
listener(const char *allow)
{
    struct config_metrics_net net;
    struct config_metrics     mc = {.address = (char *)"127.0.0.1", .port = 0,
                                    .allow = &net, .n_allow = 1};
    struct control_ops        ops = {.status = fake_status};
    char                      err[256] = "";
    struct metrics           *m;

    if (config_metrics_parse_net(allow, &net) != 0)
        abort();
    m = metrics_open(&mc, err, sizeof(err));
    if (m == NULL || metrics_start(m, &ops, NULL, NULL) != 0) {
        fprintf(stderr, "metrics: %s\n", err);
        abort();
    }
    return m;
}

static int
dial(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct timeval     tv = {.tv_sec = 5};
    int                fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        perror("connect");
        abort();
    }
    return fd;
}

/* Send req, read until the server closes; the whole answer (NUL-terminated, static),
 * or "" when it closed with nothing. */
static const char *
exchange(int port, const char *req, size_t len)
{
    static char buf[65536];
    size_t      got = 0;
    ssize_t     n;
    int         fd = dial(port);

    if (len > 0 && send(fd, req, len, MSG_NOSIGNAL) != (ssize_t)len)
        perror("send");
    while (got < sizeof(buf) - 1 && (n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0)) > 0)
        got += (size_t)n;
    buf[got] = '\0';
    close(fd);
    return buf;
}

static void
get_metrics_answers_200_in_the_text_format_and_closes(void)
{
    struct metrics *m = listener("127.0.0.1/32");
    static const char req[] = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    const char *a = exchange(metrics_port(m), req, sizeof(req) - 1);

    CHECK(strncmp(a, "HTTP/1.1 200 OK\r\n", 17) == 0);
    CHECK(strstr(a, "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n") != NULL);
    CHECK(strstr(a, "\r\nConnection: close\r\n") != NULL);
    CHECK(strstr(a, "\nsluice_sessions_total 7\n") != NULL);
    CHECK(status_calls > 0);
    metrics_free(m);
}

static void
other_paths_get_404_and_other_methods_405(void)
{
    struct metrics *m = listener("127.0.0.0/8");
    static const char r404[] = "GET /metrics/x HTTP/1.1\r\n\r\n";
    static const char r405[] = "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n";
    static const char r400[] = "GET /metrics SMTP/1.0\r\n\r\n";

    CHECK(strncmp(exchange(metrics_port(m), r404, sizeof(r404) - 1),
                  "HTTP/1.1 404 Not Found\r\n", 24) == 0);
    CHECK(strncmp(exchange(metrics_port(m), r405, sizeof(r405) - 1),
                  "HTTP/1.1 405 Method Not Allowed\r\n", 33) == 0);
    CHECK(strstr(exchange(metrics_port(m), r405, sizeof(r405) - 1), "\r\nAllow: GET\r\n") != NULL);
    CHECK(strncmp(exchange(metrics_port(m), r400, sizeof(r400) - 1),
                  "HTTP/1.1 400 Bad Request\r\n", 26) == 0);
    metrics_free(m);
}

static void
a_client_outside_the_allow_list_is_closed_on_and_logged(void)
{
    struct metrics *m = listener("10.0.0.0/8");
    const char     *a, *log;

    test_capture_start();
    a = exchange(metrics_port(m), "", 0); /* nothing sent: the close is not a reset */
    metrics_free(m);                      /* joins the thread: its log line is out */
    log = test_capture_end();
    CHECK_EQ_INT(strlen(a), 0);
    CHECK(strstr(log, "\"event\":\"metrics.refuse\"") != NULL);
    CHECK(strstr(log, "\"client\":\"127.0.0.1\"") != NULL);
}

static void
a_client_that_trickles_is_closed_at_the_deadline(void)
{
    struct metrics *m = listener("127.0.0.1");
    struct timespec t0, t1;
    const char     *a;
    double          took;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    a = exchange(metrics_port(m), "GET /metr", 9);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    took = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    CHECK_EQ_INT(strlen(a), 0);
    CHECK(took >= METRICS_TIMEOUT - 0.1 && took < METRICS_TIMEOUT + 2);
    metrics_free(m);
}

static void
an_https_listener_does_not_start_without_a_tls_context(void)
{
    struct config_metrics_net net;
    struct config_metrics     mc = {.address = (char *)"127.0.0.1", .port = 0, .allow = &net,
                                    .n_allow = 1,
                                    .tls = {(char *)"m.crt", (char *)"m.key"}};
    struct control_ops        ops = {.status = fake_status};
    char                      err[256] = "";
    struct metrics           *m;
    const char               *log;

    config_metrics_parse_net("127.0.0.1", &net);
    test_capture_start();
    m = metrics_open(&mc, err, sizeof(err));
    CHECK(m != NULL);
    if (m != NULL)
        CHECK(metrics_start(m, &ops, NULL, NULL) != 0); /* never plain HTTP instead */
    metrics_free(m);
    log = test_capture_end();
    CHECK(strstr(log, "\"tls\":\"on\"") != NULL);   /* in metrics.listen */
    CHECK(strstr(log, "\"event\":\"metrics.fail\"") != NULL);
}

int
main(void)
{
    RUN(a_scrape_shows_the_status_and_every_zone_by_name);
    RUN(get_metrics_answers_200_in_the_text_format_and_closes);
    RUN(other_paths_get_404_and_other_methods_405);
    RUN(a_client_outside_the_allow_list_is_closed_on_and_logged);
    RUN(a_client_that_trickles_is_closed_at_the_deadline);
    RUN(an_https_listener_does_not_start_without_a_tls_context);
    return check_summary();
}
