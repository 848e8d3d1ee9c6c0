/* core/proto/http_url.c: an http(s) URL taken apart; see http_url.h. No I/O: the requests
 * are core/net/http_client.c's, and the config loader checks URLs with it at load. */
#include "proto/http_url.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

int
http_url_parse(const char *url, struct http_url *u, char *err, size_t errlen)
{
    const char *p, *host, *host_end, *rest;
    size_t      hlen;

    memset(u, 0, sizeof(*u));
    if (strlen(url) >= HTTP_URL_MAX) {
        snprintf(err, errlen, "URL longer than %d octets", HTTP_URL_MAX - 1);
        return -1;
    }
    for (p = url; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f) {
            snprintf(err, errlen, "URL holds a space or control character");
            return -1;
        }
    if (strncasecmp(url, "https://", 8) == 0) {
        u->is_https = true;
        host = url + 8;
    } else if (strncasecmp(url, "http://", 7) == 0) {
        host = url + 7;
    } else {
        snprintf(err, errlen, "not an http:// or https:// URL");
        return -1;
    }
    rest = host + strcspn(host, "/?#");
    if (memchr(host, '@', (size_t)(rest - host)) != NULL) {
        snprintf(err, errlen, "URL with user information");
        return -1;
    }
    if (*host == '[') {
        host_end = memchr(host, ']', (size_t)(rest - host));
        if (host_end == NULL) {
            snprintf(err, errlen, "unterminated [IPv6] host");
            return -1;
        }
        host++;
        p = host_end + 1;
    } else {
        host_end = memchr(host, ':', (size_t)(rest - host));
        if (host_end == NULL)
            host_end = rest;
        p = host_end;
    }
    hlen = (size_t)(host_end - host);
    if (hlen == 0 || hlen >= sizeof(u->host)) {
        snprintf(err, errlen, "URL without a host, or with one too long");
        return -1;
    }
    memcpy(u->host, host, hlen);
    for (size_t i = 0; i < hlen; i++)
        if (!(isalnum((unsigned char)u->host[i]) || strchr("-._:", u->host[i]) != NULL)) {
            snprintf(err, errlen, "bad character in the URL's host");
            return -1;
        }
    u->port = u->is_https ? 443 : 80;
    if (p < rest && *p == ':') {
        long port = 0;

        if (++p == rest) {
            snprintf(err, errlen, "empty port");
            return -1;
        }
        for (; p < rest; p++) {
            if (*p < '0' || *p > '9' || (port = port * 10 + (*p - '0')) > 65535) {
                snprintf(err, errlen, "bad port");
                return -1;
            }
        }
        if (port == 0) {
            snprintf(err, errlen, "bad port");
            return -1;
        }
        u->port = (int)port;
    } else if (p != rest) {
        snprintf(err, errlen, "bad host");
        return -1;
    }
    if (strchr(rest, '#') != NULL) {
        snprintf(err, errlen, "URL with a fragment");
        return -1;
    }
    snprintf(u->path, sizeof(u->path), "%s%s", *rest == '/' ? "" : "/", rest);
    return 0;
}
