/* tests/unit/test_metrics_http.c: core/daemon/metrics_http.c -- the request head a scraper
 * sends: complete heads parse, every cut before the end asks for more, malformed request
 * lines and stray CR or NUL are refused, an endless head is too long, and the route
 * depends on method and path only. */
#include <string.h>

#include "check.h"
#include "daemon/metrics_http.h"

static void
a_scrapers_request_parses_and_routes_to_metrics(void)
{
    static const char req[] = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9465\r\n"
                              "Accept: text/plain;version=0.0.4\r\n\r\n";
    struct metrics_http_request rq;

    CHECK_EQ_INT(metrics_http_parse(req, sizeof(req) - 1, &rq), METRICS_HTTP_OK);
    CHECK_MEM(rq.method, rq.method_len, "GET");
    CHECK_MEM(rq.target, rq.target_len, "/metrics");
    CHECK_EQ_INT(metrics_http_route(&rq), METRICS_HTTP_METRICS);
}

static void
every_cut_before_the_empty_line_asks_for_more(void)
{
    static const char req[] = "GET /metrics HTTP/1.0\r\nUser-Agent: x\r\n\r\n";
    struct metrics_http_request rq;

    for (size_t n = 0; n < sizeof(req) - 1; n++)
        CHECK_EQ_INT(metrics_http_parse(req, n, &rq), METRICS_HTTP_AGAIN);
    CHECK_EQ_INT(metrics_http_parse(req, sizeof(req) - 1, &rq), METRICS_HTTP_OK);
}

static void
request_heads_get_the_verdict_they_deserve(void)
{
    static const struct {
        const char             *req;
        enum metrics_http_rc    rc;
        enum metrics_http_route route;
    } cases[] = {
        {"GET /metrics HTTP/1.1\n\n", METRICS_HTTP_OK, METRICS_HTTP_METRICS},
        {"GET /metrics?name[]=up HTTP/1.1\r\n\r\n", METRICS_HTTP_OK, METRICS_HTTP_METRICS},
        {"GET / HTTP/1.1\r\n\r\n", METRICS_HTTP_OK, METRICS_HTTP_NOT_FOUND},
        {"GET /metricsx HTTP/1.1\r\n\r\n", METRICS_HTTP_OK, METRICS_HTTP_NOT_FOUND},
        {"GET /Metrics HTTP/1.1\r\n\r\n", METRICS_HTTP_OK, METRICS_HTTP_NOT_FOUND},
        {"POST /metrics HTTP/1.1\r\n\r\n", METRICS_HTTP_OK, METRICS_HTTP_NOT_ALLOWED},
        {"HEAD /metrics HTTP/1.1\r\n\r\n", METRICS_HTTP_OK, METRICS_HTTP_NOT_ALLOWED},
        {"get /metrics HTTP/1.1\r\n\r\n", METRICS_HTTP_OK, METRICS_HTTP_NOT_ALLOWED},
        {"GET /metrics HTTP/2.0\r\n\r\n", METRICS_HTTP_BAD, 0},
        {"GET /metrics HTTP/1.1 \r\n\r\n", METRICS_HTTP_BAD, 0},
        {"GET  /metrics HTTP/1.1\r\n\r\n", METRICS_HTTP_BAD, 0},
        {"GET /metrics\r\n\r\n", METRICS_HTTP_BAD, 0},
        {"GET /met\trics HTTP/1.1\r\n\r\n", METRICS_HTTP_BAD, 0},
        {"G(T /metrics HTTP/1.1\r\n\r\n", METRICS_HTTP_BAD, 0},
        {"GET /metrics HTTP/1.1\rX: y\r\n\r\n", METRICS_HTTP_BAD, 0},
        {"\r\n\r\n", METRICS_HTTP_BAD, 0},
        {"\n\n", METRICS_HTTP_BAD, 0},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct metrics_http_request rq;
        enum metrics_http_rc rc = metrics_http_parse(cases[i].req, strlen(cases[i].req), &rq);

        CHECK_EQ_INT(rc, cases[i].rc);
        if (rc == METRICS_HTTP_OK)
            CHECK_EQ_INT(metrics_http_route(&rq), cases[i].route);
        if (rc != cases[i].rc)
            fprintf(stderr, "case %zu\n", i);
    }
}

static void
a_nul_in_the_head_is_refused(void)
{
    static const char req[] = "GET /metrics HTTP/1.1\r\nX: a\0b\r\n\r\n";
    struct metrics_http_request rq;

    CHECK_EQ_INT(metrics_http_parse(req, sizeof(req) - 1, &rq), METRICS_HTTP_BAD);
}

static void
a_head_without_end_is_too_long_at_the_limit(void)
{
    static char buf[METRICS_HTTP_MAX_REQUEST + 10];
    struct metrics_http_request rq;

    memset(buf, 'a', sizeof(buf));
    memcpy(buf, "GET /metrics HTTP/1.1\r\nX: ", 26);
    CHECK_EQ_INT(metrics_http_parse(buf, METRICS_HTTP_MAX_REQUEST - 1, &rq), METRICS_HTTP_AGAIN);
    CHECK_EQ_INT(metrics_http_parse(buf, METRICS_HTTP_MAX_REQUEST, &rq), METRICS_HTTP_TOO_LONG);
    CHECK_EQ_INT(metrics_http_parse(buf, sizeof(buf), &rq), METRICS_HTTP_TOO_LONG);
}

int
main(void)
{
    RUN(a_scrapers_request_parses_and_routes_to_metrics);
    RUN(every_cut_before_the_empty_line_asks_for_more);
    RUN(request_heads_get_the_verdict_they_deserve);
    RUN(a_nul_in_the_head_is_refused);
    RUN(a_head_without_end_is_too_long_at_the_limit);
    return check_summary();
}
