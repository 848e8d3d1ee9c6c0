/* core/daemon/metrics_http.c: parsing the request head a scraper sends to the metrics
 * listener (metrics_http.h), and which of three answers it gets. Header fields are
 * skipped unread: the answer depends on the method and path alone, and the connection is
 * closed after one response whatever Connection says. */
#include "daemon/metrics_http.h"

#include <stdbool.h>
#include <string.h>

/* RFC 9110 section 5.6.2: tchar. */
static bool
metrics_http_is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* The end of the head: an empty line. *end is the offset just past it. */
static bool
metrics_http_head_end(const char *buf, size_t len, size_t *end)
{
    for (size_t i = 0; i < len; i++) {
        if (buf[i] != '\n')
            continue;
        if (i + 1 < len && buf[i + 1] == '\n') {
            *end = i + 2;
            return true;
        }
        if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n') {
            *end = i + 3;
            return true;
        }
    }
    return false;
}

/* method SP request-target SP HTTP/1.d, in line[0..n) (the line end cut off). */
static enum metrics_http_rc
metrics_http_request_line(const char *line, size_t n, struct metrics_http_request *rq)
{
    size_t i = 0, t;

    while (i < n && metrics_http_is_tchar((unsigned char)line[i]))
        i++;
    if (i == 0 || i >= n || line[i] != ' ')
        return METRICS_HTTP_BAD;
    rq->method = line;
    rq->method_len = i;
    t = ++i;
    while (i < n && (unsigned char)line[i] > ' ' && line[i] != 0x7f)
        i++;
    if (i == t || i >= n || line[i] != ' ')
        return METRICS_HTTP_BAD;
    rq->target = line + t;
    rq->target_len = i - t;
    i++;
    if (n - i != 8 || memcmp(line + i, "HTTP/1.", 7) != 0 || line[i + 7] < '0' ||
        line[i + 7] > '9')
        return METRICS_HTTP_BAD;
    return METRICS_HTTP_OK;
}

enum metrics_http_rc
metrics_http_parse(const char *buf, size_t len, struct metrics_http_request *rq)
{
    size_t end, n;

    memset(rq, 0, sizeof(*rq));
    if (len > METRICS_HTTP_MAX_REQUEST)
        len = METRICS_HTTP_MAX_REQUEST;
    /* RFC 9112 section 2.2: empty lines before the request line may be ignored; we do
     * not, a scraper sends none. */
    if (!metrics_http_head_end(buf, len, &end))
        return len == METRICS_HTTP_MAX_REQUEST ? METRICS_HTTP_TOO_LONG : METRICS_HTTP_AGAIN;
    for (size_t i = 0; i < end; i++)
        if (buf[i] == '\0' || (buf[i] == '\r' && buf[i + 1] != '\n'))
            return METRICS_HTTP_BAD;
    n = (size_t)((const char *)memchr(buf, '\n', end) - buf);
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    return metrics_http_request_line(buf, n, rq);
}

enum metrics_http_route
metrics_http_route(const struct metrics_http_request *rq)
{
    size_t path = rq->target_len;
    const char *q = memchr(rq->target, '?', rq->target_len);

    if (rq->method_len != 3 || memcmp(rq->method, "GET", 3) != 0)
        return METRICS_HTTP_NOT_ALLOWED;
    if (q != NULL)
        path = (size_t)(q - rq->target);
    return path == 8 && memcmp(rq->target, "/metrics", 8) == 0 ? METRICS_HTTP_METRICS
                                                               : METRICS_HTTP_NOT_FOUND;
}
