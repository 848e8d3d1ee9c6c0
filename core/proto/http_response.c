/* core/proto/http_response.c: HTTP/1.1 response framing (RFC 9112), strict where leniency
 * would let a response be read two ways: no obs-fold, no whitespace before a header's
 * colon, one Content-Length value, Transfer-Encoding only "chunked" and never together
 * with Content-Length (section 6.3), chunk sizes checked against the cap before any
 * addition. A bare LF ends a line (section 2.2 allows it); a bare CR does not. */
#include "proto/http_response.h"

#include <string.h>
#include <strings.h>

#define HTTP_CHUNK_LINE_MAX 1024 /* a chunk-size line with its extensions */
#define HTTP_INTERIM_MAX    8    /* 1xx responses before the final one */

/* The line at p[pos..): its length without CRLF/LF in *len and the offset after it in
 * *next. 0 when no line end is in p[pos..n). */
static int
http_line(const char *p, size_t n, size_t pos, size_t *len, size_t *next)
{
    const char *nl = pos < n ? memchr(p + pos, '\n', n - pos) : NULL;
    size_t      end;

    if (nl == NULL)
        return 0;
    end = (size_t)(nl - p);
    *next = end + 1;
    if (end > pos && p[end - 1] == '\r')
        end--;
    *len = end - pos;
    return 1;
}

static bool
http_is_tchar(unsigned char c)
{
    /* RFC 9110 5.6.2 token */
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool
http_status_line(const char *l, size_t len, int *status)
{
    if (len < 12 || memcmp(l, "HTTP/1.", 7) != 0 || (l[7] != '0' && l[7] != '1') ||
        l[8] != ' ')
        return false;
    for (int i = 9; i < 12; i++)
        if (l[i] < '0' || l[i] > '9')
            return false;
    if (len > 12 && l[12] != ' ')
        return false;
    for (size_t i = 13; i < len; i++)
        if ((unsigned char)l[i] < 0x20 && l[i] != '\t')
            return false;
    *status = (l[9] - '0') * 100 + (l[10] - '0') * 10 + (l[11] - '0');
    return *status >= 100 && *status <= 599;
}

static enum http_response_rc
http_header_line(const char *l, size_t len, struct http_response *r)
{
    size_t              i = 0, vs, ve;
    struct http_header *h;

    while (i < len && http_is_tchar((unsigned char)l[i]))
        i++;
    if (i == 0 || i == len || l[i] != ':') /* also rejects obs-fold and "Name :" */
        return HTTP_RESPONSE_BAD;
    vs = i + 1;
    ve = len;
    while (vs < ve && (l[vs] == ' ' || l[vs] == '\t'))
        vs++;
    while (ve > vs && (l[ve - 1] == ' ' || l[ve - 1] == '\t'))
        ve--;
    for (size_t k = vs; k < ve; k++)
        if (((unsigned char)l[k] < 0x20 && l[k] != '\t') || l[k] == 0x7f)
            return HTTP_RESPONSE_BAD;
    if (r->n_headers == HTTP_RESPONSE_HEADERS_MAX)
        return HTTP_RESPONSE_TOO_LARGE;
    h = &r->headers[r->n_headers++];
    h->name = l;
    h->name_len = i;
    h->value = l + vs;
    h->value_len = ve - vs;
    return HTTP_RESPONSE_OK;
}

/* Status line and headers of one response starting at p[pos]; *end after the empty line. */
static enum http_response_rc
http_head(const char *p, size_t n, size_t pos, struct http_response *r, size_t *end)
{
    size_t len, next, lim = n < HTTP_RESPONSE_HEAD_MAX ? n : HTTP_RESPONSE_HEAD_MAX;

    r->n_headers = 0;
    if (!http_line(p, lim, pos, &len, &next))
        return n >= HTTP_RESPONSE_HEAD_MAX ? HTTP_RESPONSE_TOO_LARGE : HTTP_RESPONSE_AGAIN;
    if (!http_status_line(p + pos, len, &r->status))
        return HTTP_RESPONSE_BAD;
    for (;;) {
        enum http_response_rc rc;

        pos = next;
        if (!http_line(p, lim, pos, &len, &next))
            return n >= HTTP_RESPONSE_HEAD_MAX ? HTTP_RESPONSE_TOO_LARGE : HTTP_RESPONSE_AGAIN;
        if (memchr(p + pos, '\r', len) != NULL)
            return HTTP_RESPONSE_BAD; /* a bare CR inside the line */
        if (len == 0)
            break;
        if ((rc = http_header_line(p + pos, len, r)) != HTTP_RESPONSE_OK)
            return rc;
    }
    *end = next;
    return HTTP_RESPONSE_OK;
}

const struct http_header *
http_response_header(const struct http_response *r, const char *name)
{
    size_t n = strlen(name);

    for (size_t i = 0; i < r->n_headers; i++)
        if (r->headers[i].name_len == n && strncasecmp(r->headers[i].name, name, n) == 0)
            return &r->headers[i];
    return NULL;
}

/* Content-Length (RFC 9112 6.3 item 5): digits only; repeated headers must agree. -1 when
 * absent, -2 when malformed or disagreeing, -3 when over max. */
static long long
http_content_length(const struct http_response *r, size_t max)
{
    long long v = -1;

    for (size_t i = 0; i < r->n_headers; i++) {
        const struct http_header *h = &r->headers[i];
        long long                 x = 0;

        if (h->name_len != 14 || strncasecmp(h->name, "Content-Length", 14) != 0)
            continue;
        if (h->value_len == 0)
            return -2;
        for (size_t k = 0; k < h->value_len; k++) {
            if (h->value[k] < '0' || h->value[k] > '9')
                return -2;
            x = x * 10 + (h->value[k] - '0');
            if ((size_t)x > max)
                return -3;
        }
        if (v >= 0 && v != x)
            return -2;
        v = x;
    }
    return v;
}

static int
http_hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* RFC 9112 7.1: chunk-size [chunk-ext] CRLF data CRLF ... 0 CRLF trailers CRLF. */
static enum http_response_rc
http_chunked(const char *p, size_t n, size_t pos, char *scratch, size_t max,
             struct http_response *r)
{
    size_t out = 0;

    for (;;) {
        size_t len, next, size = 0, i = 0;

        if (!http_line(p, n, pos, &len, &next))
            return n - pos >= HTTP_CHUNK_LINE_MAX ? HTTP_RESPONSE_BAD : HTTP_RESPONSE_AGAIN;
        if (len >= HTTP_CHUNK_LINE_MAX)
            return HTTP_RESPONSE_BAD;
        while (i < len && http_hex(p[pos + i]) >= 0) {
            size = size * 16 + (size_t)http_hex(p[pos + i++]);
            if (size > max - out)
                return HTTP_RESPONSE_TOO_LARGE;
        }
        if (i == 0 || (i < len && p[pos + i] != ';' && p[pos + i] != ' ' && p[pos + i] != '\t'))
            return HTTP_RESPONSE_BAD;
        if (memchr(p + pos, '\r', len) != NULL)
            return HTTP_RESPONSE_BAD;
        pos = next;
        if (size == 0)
            break;
        if (n - pos < size + 1)
            return HTTP_RESPONSE_AGAIN;
        memcpy(scratch + out, p + pos, size);
        out += size;
        pos += size;
        if (p[pos] == '\r') {
            if (n - pos < 2)
                return HTTP_RESPONSE_AGAIN;
            pos++;
        }
        if (p[pos] != '\n')
            return HTTP_RESPONSE_BAD;
        pos++;
    }
    for (size_t lines = 0;; lines++) { /* trailer fields: skipped, bounded like headers */
        size_t len, next;

        if (!http_line(p, n, pos, &len, &next))
            return n - pos >= HTTP_RESPONSE_HEAD_MAX ? HTTP_RESPONSE_TOO_LARGE
                                                     : HTTP_RESPONSE_AGAIN;
        if (len == 0)
            break;
        if (lines >= HTTP_RESPONSE_HEADERS_MAX || len >= HTTP_RESPONSE_HEAD_MAX)
            return HTTP_RESPONSE_TOO_LARGE;
        pos = next;
    }
    r->body = scratch;
    r->body_len = out;
    return HTTP_RESPONSE_OK;
}

enum http_response_rc
http_response_parse(const char *p, size_t n, bool eof, char *scratch, size_t body_max,
                    struct http_response *r)
{
    const struct http_header *te;
    size_t                    pos = 0, end;
    long long                 cl;
    enum http_response_rc     rc;

    for (int interim = 0;; interim++) {
        if ((rc = http_head(p, n, pos, r, &end)) != HTTP_RESPONSE_OK)
            return rc;
        if (r->status >= 200)
            break;
        if (r->status == 101 || interim == HTTP_INTERIM_MAX)
            return HTTP_RESPONSE_BAD; /* we never ask to switch protocols */
        pos = end;
    }
    r->body = p + end;
    r->body_len = 0;
    if (r->status == 204 || r->status == 304)
        return HTTP_RESPONSE_OK;
    te = http_response_header(r, "Transfer-Encoding");
    cl = http_content_length(r, body_max);
    if (te != NULL) {
        if (cl != -1 || te->value_len != 7 || strncasecmp(te->value, "chunked", 7) != 0)
            return HTTP_RESPONSE_BAD;
        return http_chunked(p, n, end, scratch, body_max, r);
    }
    if (cl == -2)
        return HTTP_RESPONSE_BAD;
    if (cl == -3)
        return HTTP_RESPONSE_TOO_LARGE;
    if (cl >= 0) {
        if (n - end < (size_t)cl)
            return HTTP_RESPONSE_AGAIN;
        r->body_len = (size_t)cl;
        return HTTP_RESPONSE_OK;
    }
    if (n - end > body_max)
        return HTTP_RESPONSE_TOO_LARGE;
    if (!eof)
        return HTTP_RESPONSE_AGAIN;
    r->body_len = n - end;
    return HTTP_RESPONSE_OK;
}
