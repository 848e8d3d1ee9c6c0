/* tests/fuzz/fuzz_http_response.c: hostile HTTP responses through http_response_parse,
 * whole and cut at a point the input chooses, with and without EOF. Invariants: a
 * complete response has a final status (200..599), headers and body inside the input
 * (or the body inside scratch, for chunked), a body under the cap, and a prefix of a
 * complete response never parses as a different complete response. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/http_response.h"

#define FUZZ_BODY_MAX 4096

static void
fuzz_check(const char *p, size_t n, const char *scratch, const struct http_response *r)
{
    assert(r->status >= 200 && r->status <= 599);
    assert(r->n_headers <= HTTP_RESPONSE_HEADERS_MAX);
    assert(r->body_len <= FUZZ_BODY_MAX);
    for (size_t i = 0; i < r->n_headers; i++) {
        const struct http_header *h = &r->headers[i];

        assert(h->name >= p && h->name + h->name_len <= p + n && h->name_len > 0);
        assert(h->value >= p && h->value + h->value_len <= p + n);
        assert(memchr(h->value, '\r', h->value_len) == NULL);
        assert(memchr(h->value, '\n', h->value_len) == NULL);
    }
    assert((r->body >= p && r->body + r->body_len <= p + n) ||
           (r->body >= scratch && r->body + r->body_len <= scratch + n));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char          *p = (const char *)data;
    char                *scratch = malloc(size + 1);
    struct http_response r, whole;
    size_t               cut = size > 0 ? data[0] % (size + 1) : 0;
    enum http_response_rc rc_whole;

    assert(scratch != NULL);
    rc_whole = http_response_parse(p, size, true, scratch, FUZZ_BODY_MAX, &whole);
    if (rc_whole == HTTP_RESPONSE_OK)
        fuzz_check(p, size, scratch, &whole);
    if (http_response_parse(p, size, false, scratch, FUZZ_BODY_MAX, &r) == HTTP_RESPONSE_OK) {
        fuzz_check(p, size, scratch, &r);
        assert(rc_whole == HTTP_RESPONSE_OK && r.status == whole.status);
    }
    if (http_response_parse(p, cut, false, scratch, FUZZ_BODY_MAX, &r) == HTTP_RESPONSE_OK) {
        fuzz_check(p, cut, scratch, &r);
        /* more bytes behind a complete, delimited response do not change it */
        if (http_response_parse(p, size, false, scratch, FUZZ_BODY_MAX, &whole) ==
            HTTP_RESPONSE_OK)
            assert(whole.status == r.status && whole.body_len == r.body_len);
    }
    free(scratch);
    return 0;
}
