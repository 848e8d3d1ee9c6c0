/* core/daemon/metrics_http.h: the one HTTP/1.x request the metrics listener reads
 * (RFC 9112 section 3: request-line, then header fields up to an empty line). Pure: bytes in,
 * a verdict and the request line's parts out, no I/O. What to answer is metrics.c's. */
#ifndef SLUICE_METRICS_HTTP_H
#define SLUICE_METRICS_HTTP_H

#include <stddef.h>

#define METRICS_HTTP_MAX_REQUEST 8192 /* octets: request line and header fields together */

enum metrics_http_rc {
    METRICS_HTTP_OK,       /* a complete request head; *rq filled */
    METRICS_HTTP_AGAIN,    /* no empty line yet: read more, call again with all of it */
    METRICS_HTTP_TOO_LONG, /* METRICS_HTTP_MAX_REQUEST octets without the end of the head */
    METRICS_HTTP_BAD,      /* not an HTTP/1.x request line, or a NUL or bare CR in the head */
};

enum metrics_http_route {
    METRICS_HTTP_METRICS,     /* GET /metrics (a query string is ignored): 200 */
    METRICS_HTTP_NOT_FOUND,   /* GET of any other path: 404 */
    METRICS_HTTP_NOT_ALLOWED, /* any other method: 405 */
};

struct metrics_http_request {
    const char *method; /* borrows the input; method_len octets, a token (RFC 9110 5.6.2) */
    size_t      method_len;
    const char *target; /* borrows the input; target_len octets, no SP or CTL */
    size_t      target_len;
};

/* Look at buf[0..len): the request so far. Lines end with CRLF or a bare LF
 * (RFC 9112 section 2.2 allows a recipient to accept one). */
enum metrics_http_rc metrics_http_parse(const char *buf, size_t len,
                                        struct metrics_http_request *rq);

/* Which answer a parsed request gets. */
enum metrics_http_route metrics_http_route(const struct metrics_http_request *rq);

#endif
