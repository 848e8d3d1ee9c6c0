/* tests/fuzz/fuzz_dkim_canon.c: libFuzzer target for core/proto/dkim_canon.c. Input: a
 * message (header block and body) as a client sends it, in a heap block of exactly its
 * size. Besides "no crash", it checks the promises of dkim_canon.h: a header's relaxed form
 * fits in name + value + 3 octets and has no CR, LF or blank run; the relaxed body is the
 * same when fed in one piece or octet by octet, ends in CRLF unless empty, and has no blank
 * before a CRLF; pick never returns a field twice. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/dkim_canon.h"

#define FUZZ_ASSERT(e)                                                                   \
    do {                                                                                 \
        if (!(e))                                                                        \
            __builtin_trap();                                                            \
    } while (0)

struct out {
    char  *p;
    size_t n, cap;
};

static void
out_cb(void *arg, const char *p, size_t n)
{
    struct out *o = arg;

    FUZZ_ASSERT(o->n + n <= o->cap);
    memcpy(o->p + o->n, p, n);
    o->n += n;
}

static void
fuzz_body(const char *body, size_t n)
{
    struct dkim_canon_body b;
    struct out             one = {malloc(n + 3), 0, n + 2}, each = {malloc(n + 3), 0, n + 2};
    size_t                 i;

    FUZZ_ASSERT(one.p != NULL && each.p != NULL);
    dkim_canon_body_init(&b);
    dkim_canon_body_feed(&b, body, n, out_cb, &one);
    dkim_canon_body_finish(&b, out_cb, &one);
    dkim_canon_body_init(&b);
    for (i = 0; i < n; i++)
        dkim_canon_body_feed(&b, body + i, 1, out_cb, &each);
    dkim_canon_body_finish(&b, out_cb, &each);
    FUZZ_ASSERT(one.n == each.n && memcmp(one.p, each.p, one.n) == 0);
    FUZZ_ASSERT(one.n == 0 || (one.n >= 2 && memcmp(one.p + one.n - 2, "\r\n", 2) == 0));
    for (i = 0; i + 2 < one.n; i++)
        FUZZ_ASSERT(!(one.p[i] == ' ' && one.p[i + 1] == '\r' && one.p[i + 2] == '\n'));
    free(one.p);
    free(each.p);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char                  *msg = malloc(size ? size : 1);
    struct message_header  idx[64];
    bool                   used[64] = {false};
    size_t                 n, i, k, body;
    char                  *out;

    FUZZ_ASSERT(msg != NULL);
    if (size > 0)
        memcpy(msg, data, size);
    n = message_header_index(msg, size, idx, 64);
    n = n < 64 ? n : 64;
    for (i = 0; i < n; i++) {
        size_t vlen = idx[i].end - idx[i].value, len;

        out = malloc(idx[i].name_len + vlen + 3);
        FUZZ_ASSERT(out != NULL);
        len = dkim_canon_header(msg + idx[i].start, idx[i].name_len, msg + idx[i].value, vlen,
                                false, out);
        FUZZ_ASSERT(len <= idx[i].name_len + vlen + 1);
        for (k = 0; k < len; k++) {
            FUZZ_ASSERT(out[k] != '\r' && out[k] != '\n' && out[k] != '\t');
            FUZZ_ASSERT(!(k + 1 < len && out[k] == ' ' && out[k + 1] == ' '));
        }
        FUZZ_ASSERT(len == 0 || out[len - 1] != ' ');
        free(out);
        (void)dkim_canon_is_signed(msg + idx[i].start, idx[i].name_len, NULL);
    }
    for (i = 0; i < n; i++) {
        long at = dkim_canon_pick(msg, idx, n, used, msg + idx[i].start, idx[i].name_len);

        FUZZ_ASSERT(at >= 0 && (size_t)at < n); /* its own name is there at least once */
    }
    FUZZ_ASSERT(dkim_canon_pick(msg, idx, n, used, "from", 4) == -1 || n > 0);
    body = message_body_offset(msg, size);
    fuzz_body(msg + body, size - body);
    free(msg);
    return 0;
}
