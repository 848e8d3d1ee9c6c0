/* tests/fuzz/fuzz_dsn.c: libFuzzer target for core/proto/dsn.c. The input, after one flag
 * octet, is parsed as every DSN value and as xtext. Checks: an accepted value obeys the
 * rule its parser promises (lengths, NEVER alone, printable decoded text, ORCPT parts inside
 * the value and split at its first ';'); decoding never grows the text. */
#include "proto/dsn.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define REQUIRE(cond)      \
    do {                   \
        if (!(cond))       \
            abort();       \
    } while (0)

static void
check_xtext(struct smtp_str s, bool utf8, bool printable)
{
    char  *out;
    size_t n, i;

    if (!dsn_xtext_is_valid(s, utf8, printable))
        return;
    out = malloc(s.len + 1);
    n = dsn_xtext_decode(s, out);
    REQUIRE(n <= s.len);
    for (i = 0; i < n && !utf8 && printable; i++)
        REQUIRE((unsigned char)out[i] >= 0x20 && (unsigned char)out[i] <= 0x7e);
    free(out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct smtp_str s, t, a;
    enum dsn_ret    r;
    unsigned        m;
    bool            utf8;

    if (size == 0)
        return 0;
    utf8 = (data[0] & 1) != 0;
    s = (struct smtp_str){(const char *)data + 1, size - 1};
    check_xtext(s, utf8, (data[0] & 2) != 0);
    if (dsn_parse_ret(s, &r) == DSN_OK)
        REQUIRE(s.len == 4 && (r == DSN_RET_FULL || r == DSN_RET_HDRS));
    if (dsn_parse_envid(s) == DSN_OK)
        REQUIRE(s.len >= 1 && s.len <= DSN_ENVID_MAX && dsn_xtext_is_valid(s, false, true));
    if (dsn_parse_notify(s, &m) == DSN_OK)
        REQUIRE(m != 0 && (!(m & DSN_NOTIFY_NEVER) || m == DSN_NOTIFY_NEVER));
    if (dsn_parse_orcpt(s, utf8, &t, &a) == DSN_OK) {
        REQUIRE(s.len <= DSN_ORCPT_MAX && t.len > 0 && a.len > 0);
        REQUIRE(t.p == s.p && a.p == t.p + t.len + 1 && t.len + 1 + a.len == s.len);
        REQUIRE(s.p[t.len] == ';' && memchr(t.p, ';', t.len) == NULL);
    }
    return 0;
}
