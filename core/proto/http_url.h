/* core/proto/http_url.h: an http(s) URL taken apart, scheme://host[:port][/path?query], for
 * the HTTP client (core/net/http_client.c) and for the config loader, which refuses a bad
 * URL at load. A pure parser: no I/O, no allocation, no DNS. */
#ifndef SLUICE_HTTP_URL_H
#define SLUICE_HTTP_URL_H

#include <stdbool.h>
#include <stddef.h>

#define HTTP_URL_MAX 2048

/* A parsed http(s) URL. No user info, no fragment. */
struct http_url {
    bool is_https;
    char host[256];         /* without [] around an IPv6 literal */
    int  port;              /* default 443 / 80 */
    char path[HTTP_URL_MAX]; /* "/" when the URL has none; query kept */
};

/* 0 and *u filled, or -1 and why in err. */
int http_url_parse(const char *url, struct http_url *u, char *err, size_t errlen);

#endif
