/* core/proto/dsn.c: RFC 3461 parameter values and xtext; see dsn.h. Character classes are
 * spelled out for ASCII (as in smtp_parse.c): a locale must never change what a value means.
 * Values are checked as the client sent them; nothing is normalised, because the relay
 * passes them on unchanged (docs/smtp.md "Delivery status notifications"). */
#include "proto/dsn.h"

#include <string.h>

#include "util/utf8.h"

static bool
dsn_is_upper_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

static unsigned
dsn_hex_value(unsigned char c)
{
    return c <= '9' ? (unsigned)(c - '0') : (unsigned)(c - 'A' + 10);
}

/* RFC 3461 section 4 xchar: "!" .. "~" except "+" and "=". */
static bool
dsn_is_xchar(unsigned char c)
{
    return c >= 0x21 && c <= 0x7e && c != '+' && c != '=';
}

bool
dsn_xtext_is_valid(struct smtp_str s, bool utf8, bool printable)
{
    const unsigned char *p = (const unsigned char *)s.p;
    size_t               i = 0, k;

    while (i < s.len) {
        if (dsn_is_xchar(p[i])) {
            i++;
        } else if (p[i] == '+') {
            unsigned v;

            if (s.len - i < 3 || !dsn_is_upper_hex(p[i + 1]) || !dsn_is_upper_hex(p[i + 2]))
                return false;
            v = dsn_hex_value(p[i + 1]) * 16 + dsn_hex_value(p[i + 2]);
            if (printable && (v < 0x20 || v > 0x7e))
                return false;
            i += 3;
        } else if (utf8 && p[i] >= 0x80 && (k = utf8_seq_len(p + i, s.len - i)) != 0) {
            i += k;
        } else {
            return false;
        }
    }
    return true;
}

size_t
dsn_xtext_decode(struct smtp_str s, char *out)
{
    const unsigned char *p = (const unsigned char *)s.p;
    size_t               i = 0, n = 0;

    while (i < s.len) {
        if (p[i] == '+' && s.len - i >= 3) {
            out[n++] = (char)(dsn_hex_value(p[i + 1]) * 16 + dsn_hex_value(p[i + 2]));
            i += 3;
        } else {
            out[n++] = (char)p[i++];
        }
    }
    return n;
}

enum dsn_rc
dsn_parse_ret(struct smtp_str value, enum dsn_ret *out)
{
    if (smtp_str_ieq(value, "FULL"))
        *out = DSN_RET_FULL;
    else if (smtp_str_ieq(value, "HDRS"))
        *out = DSN_RET_HDRS;
    else
        return DSN_BAD_RET;
    return DSN_OK;
}

/* RFC 3461 section 4.4: ENVID is xtext; its decoded form printable US-ASCII. */
enum dsn_rc
dsn_parse_envid(struct smtp_str value)
{
    if (value.len == 0 || value.len > DSN_ENVID_MAX || !dsn_xtext_is_valid(value, false, true))
        return DSN_BAD_ENVID;
    return DSN_OK;
}

/* RFC 3461 section 4.1: notify-esmtp-value = "NEVER" / 1#notify-list-element,
 * notify-list-element = "SUCCESS" / "FAILURE" / "DELAY"; NEVER stands alone. */
enum dsn_rc
dsn_parse_notify(struct smtp_str value, unsigned *mask)
{
    static const struct {
        const char *word;
        unsigned    bit;
    } words[] = {
        {"NEVER", DSN_NOTIFY_NEVER},
        {"SUCCESS", DSN_NOTIFY_SUCCESS},
        {"FAILURE", DSN_NOTIFY_FAILURE},
        {"DELAY", DSN_NOTIFY_DELAY},
    };
    size_t i = 0, j, w;
    bool   several = false;

    *mask = 0;
    for (;;) { /* one element per pass; each pass consumes at least its ',' */
        unsigned bit = 0;

        for (j = i; j < value.len && value.p[j] != ','; j++)
            continue;
        for (w = 0; w < sizeof(words) / sizeof(words[0]); w++)
            if (smtp_str_ieq((struct smtp_str){value.p + i, j - i}, words[w].word))
                bit = words[w].bit;
        if (bit == 0)
            return DSN_BAD_NOTIFY; /* an empty element too: "", ",", "SUCCESS," */
        *mask |= bit;
        if (j == value.len)
            break;
        several = true;
        i = j + 1;
    }
    if ((*mask & DSN_NOTIFY_NEVER) && (several || *mask != DSN_NOTIFY_NEVER))
        return DSN_NOTIFY_NEVER_MIXED;
    return DSN_OK;
}

/* RFC 5322 section 3.2.3 atext, the characters of an atom. */
static bool
dsn_is_atext(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* RFC 6533 section 3: utf-8-addr-xtext = 1*(QCHAR / EmbeddedUnicodeChar), QCHAR = xchar
 * but "\", EmbeddedUnicodeChar = "\x{" 1*6HEXDIG "}" (HEXPOINT; its finer rules on which
 * code points are checked by the final recipient's MTA, not here); utf-8-addr-unitext also
 * allows raw UTF-8, which needs SMTPUTF8. */
static bool
dsn_utf8_addr_is_valid(struct smtp_str s, bool smtputf8)
{
    const unsigned char *p = (const unsigned char *)s.p;
    size_t               i = 0, k;

    while (i < s.len) {
        if (p[i] == '\\') {
            if (s.len - i < 5 || p[i + 1] != 'x' || p[i + 2] != '{')
                return false;
            for (k = i + 3; k < s.len && k - (i + 3) < 7 && dsn_is_upper_hex(p[k]); k++)
                continue;
            if (k == i + 3 || k - (i + 3) > 6 || k >= s.len || p[k] != '}')
                return false;
            i = k + 1;
        } else if (dsn_is_xchar(p[i])) {
            i++;
        } else if (smtputf8 && p[i] >= 0x80 && (k = utf8_seq_len(p + i, s.len - i)) != 0) {
            i += k;
        } else {
            return false;
        }
    }
    return s.len > 0;
}

/* RFC 3461 section 4.2: orcpt-parameter = "ORCPT=" original-recipient-address,
 * original-recipient-address = addr-type ";" xtext. */
enum dsn_rc
dsn_parse_orcpt(struct smtp_str value, bool smtputf8, struct smtp_str *type,
                struct smtp_str *addr)
{
    const char *semi = value.len > 0 ? memchr(value.p, ';', value.len) : NULL;
    size_t      i;

    if (semi == NULL || value.len > DSN_ORCPT_MAX)
        return DSN_BAD_ORCPT;
    *type = (struct smtp_str){value.p, (size_t)(semi - value.p)};
    *addr = (struct smtp_str){semi + 1, value.len - type->len - 1};
    if (type->len == 0 || addr->len == 0)
        return DSN_BAD_ORCPT;
    for (i = 0; i < type->len; i++)
        if (!dsn_is_atext((unsigned char)type->p[i]))
            return DSN_BAD_ORCPT;
    if (smtp_str_ieq(*type, "rfc822"))
        return dsn_xtext_is_valid(*addr, false, true) ? DSN_OK : DSN_BAD_ORCPT;
    if (smtp_str_ieq(*type, "utf-8"))
        return dsn_utf8_addr_is_valid(*addr, smtputf8) ? DSN_OK : DSN_BAD_ORCPT;
    return DSN_ORCPT_TYPE;
}
