/* tests/unit/test_http_url.c: core/proto/http_url.c, the URL parser of the HTTP client and
 * the config loader, on its own. */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "proto/http_url.h"

static void
urls_parse_into_scheme_host_port_and_path(void)
{
    struct http_url u;
    char            err[128];

    CHECK(http_url_parse("https://idp.test/realms/x/certs", &u, err, sizeof(err)) == 0);
    CHECK(u.is_https && strcmp(u.host, "idp.test") == 0 && u.port == 443);
    CHECK(strcmp(u.path, "/realms/x/certs") == 0);
    CHECK(http_url_parse("http://[::1]:8080?a=b", &u, err, sizeof(err)) == 0);
    CHECK(!u.is_https && strcmp(u.host, "::1") == 0 && u.port == 8080);
    CHECK(strcmp(u.path, "/?a=b") == 0);
    CHECK(http_url_parse("https://user@idp/", &u, err, sizeof(err)) == -1);
    CHECK(http_url_parse("https://idp:0/", &u, err, sizeof(err)) == -1);
    CHECK(http_url_parse("https://idp:99999/", &u, err, sizeof(err)) == -1);
    CHECK(http_url_parse("https:///x", &u, err, sizeof(err)) == -1);
    CHECK(http_url_parse("https://idp/x#frag", &u, err, sizeof(err)) == -1);
    CHECK(http_url_parse("https://idp/a b", &u, err, sizeof(err)) == -1);
    CHECK(http_url_parse("file:///etc/passwd", &u, err, sizeof(err)) == -1);
}

static void
a_url_at_the_length_limit_is_refused_and_one_below_is_taken(void)
{
    static char url[HTTP_URL_MAX + 1];
    struct http_url u;
    char            err[128];
    size_t          n;

    n = (size_t)snprintf(url, sizeof(url), "https://idp/");
    memset(url + n, 'a', HTTP_URL_MAX - 1 - n);
    url[HTTP_URL_MAX - 1] = '\0';
    CHECK(http_url_parse(url, &u, err, sizeof(err)) == 0);
    CHECK(strlen(u.path) == HTTP_URL_MAX - 1 - strlen("https://idp"));
    url[HTTP_URL_MAX - 1] = 'a';
    url[HTTP_URL_MAX] = '\0';
    CHECK(http_url_parse(url, &u, err, sizeof(err)) == -1);
    CHECK(strstr(err, "longer than") != NULL);
}

int
main(void)
{
    RUN(urls_parse_into_scheme_host_port_and_path);
    RUN(a_url_at_the_length_limit_is_refused_and_one_below_is_taken);
    return check_summary();
}
