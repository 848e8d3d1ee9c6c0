/* core/proto/http_response.h: an HTTP/1.1 response (RFC 9112) as bytes -> status, headers and
 * the decoded body. No I/O, no allocation, no hidden state: the caller (http_client.c)
 * hands the whole response received so far and asks again with more; a connection
 * carries one response (Connection: close), so re-parsing from the start is cheap next
 * to the 1 MiB cap. */
#ifndef SLUICE_HTTP_RESPONSE_H
#define SLUICE_HTTP_RESPONSE_H

#include <stdbool.h>
#include <stddef.h>

#define HTTP_RESPONSE_HEAD_MAX    16384 /* octets of status line + headers */
#define HTTP_RESPONSE_HEADERS_MAX 64
#define HTTP_RESPONSE_BODY_MAX    (1024 * 1024)

enum http_response_rc {
    HTTP_RESPONSE_OK,        /* *r filled: the response is complete */
    HTTP_RESPONSE_AGAIN,     /* incomplete: read more (or, at EOF, it was cut short) */
    HTTP_RESPONSE_BAD,       /* malformed status line, header, length or chunk */
    HTTP_RESPONSE_TOO_LARGE, /* head over HEAD_MAX, too many headers, or body over max */
};

struct http_header {
    const char *name;  /* borrows the input; not NUL-terminated */
    size_t      name_len;
    const char *value; /* borrows the input; optional whitespace trimmed */
    size_t      value_len;
};

struct http_response {
    int                status;   /* 200..599 (interim 1xx responses are skipped) */
    struct http_header headers[HTTP_RESPONSE_HEADERS_MAX];
    size_t             n_headers;
    const char        *body;     /* borrows the input (Content-Length, to EOF) or scratch
                                  * (chunked); body_len octets, not NUL-terminated */
    size_t             body_len;
};

/* Parse p[0..n). eof: the peer closed, so a body without a length ends here (and a
 * declared length not reached is AGAIN, which the caller reports as cut short).
 * scratch: n octets where a chunked body is reassembled. body_max caps the decoded body.
 * On anything but OK, *r is unspecified. */
enum http_response_rc http_response_parse(const char *p, size_t n, bool eof, char *scratch,
                                          size_t body_max, struct http_response *r);

/* The value of the first header named name (ASCII case-insensitive), or NULL. */
const struct http_header *http_response_header(const struct http_response *r,
                                               const char *name);

#endif
