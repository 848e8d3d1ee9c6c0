/* core/relay/upstream_xclient.c: XCLIENT and XFORWARD offers and command lines; see
 * upstream_xclient.h. */
#include "relay/upstream_xclient.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define XCLIENT_UNAVAILABLE "[UNAVAILABLE]"
#define XCLIENT_HELO_MAX    255 /* Postfix refuses a longer HELO (501 5.5.4) */

static const struct {
    const char *name;
    unsigned    bit;
} xattr_names[] = {
    {"NAME", XATTR_NAME},   {"ADDR", XATTR_ADDR},   {"PORT", XATTR_PORT},
    {"PROTO", XATTR_PROTO}, {"HELO", XATTR_HELO},   {"LOGIN", XATTR_LOGIN},
    {"IDENT", XATTR_IDENT}, {"SOURCE", XATTR_SOURCE},
};

#define XATTR_COUNT (sizeof(xattr_names) / sizeof(xattr_names[0]))

/* The attribute bits of the words after the keyword (s[0..n), "NAME ADDR PORT ..."). */
static unsigned
xclient_attr_bits(const char *s, size_t n)
{
    unsigned bits = 0;
    size_t   i = 0, j, k;

    while (i < n) { /* one word per pass */
        while (i < n && s[i] == ' ')
            i++;
        for (j = i; j < n && s[j] != ' '; j++)
            ;
        for (k = 0; k < XATTR_COUNT; k++)
            if (j - i == strlen(xattr_names[k].name) &&
                strncasecmp(s + i, xattr_names[k].name, j - i) == 0)
                bits |= xattr_names[k].bit;
        i = j;
    }
    return bits;
}

/* One EHLO line's text: "XCLIENT NAME ADDR ..." or "XFORWARD NAME ADDR ...". */
static void
xclient_offer_line(struct upstream_xoffer *x, const char *s, size_t n)
{
    if (n >= 7 && strncasecmp(s, "XCLIENT", 7) == 0 && (n == 7 || s[7] == ' ')) {
        x->xclient = true;
        x->xclient_attrs = xclient_attr_bits(s + 7, n - 7);
    } else if (n >= 8 && strncasecmp(s, "XFORWARD", 8) == 0 && (n == 8 || s[8] == ' ')) {
        x->xforward = true;
        x->xforward_attrs = xclient_attr_bits(s + 8, n - 8);
    }
}

void
upstream_xclient_offer(const struct upstream_reply *r, struct upstream_xoffer *x)
{
    const char *p = r->raw, *end = r->raw + r->raw_len;
    bool        first = true;

    memset(x, 0, sizeof(*x));
    while (p < end) { /* one line per pass; the parser left every line LF-terminated */
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t      len;

        if (nl == NULL)
            break;
        len = (size_t)(nl - p);
        if (len > 0 && p[len - 1] == '\r')
            len--;
        if (!first && len > 4)
            xclient_offer_line(x, p + 4, len - 4);
        first = false;
        p = nl + 1;
    }
}

/* RFC 3461 section 4: "!".."~" but "+" and "=" as they are, anything else as "+XX".
 * Returns the encoded length, or 0 if it does not fit in out (outlen octets). */
static size_t
xclient_xtext(const char *v, char *out, size_t outlen)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t            n = 0;

    for (; *v != '\0'; v++) {
        unsigned char ch = (unsigned char)*v;

        if (ch >= '!' && ch <= '~' && ch != '+' && ch != '=') {
            if (n + 2 > outlen)
                return 0;
            out[n++] = (char)ch;
        } else {
            if (n + 4 > outlen)
                return 0;
            out[n++] = '+';
            out[n++] = hex[ch >> 4];
            out[n++] = hex[ch & 15];
        }
    }
    out[n] = '\0';
    return n;
}

bool
upstream_xclient_helo_ok(const char *helo)
{
    size_t n = 0;

    if (helo == NULL)
        return false;
    for (; helo[n] != '\0'; n++)
        if ((unsigned char)helo[n] <= ' ' || (unsigned char)helo[n] >= 0x7f)
            return false;
    return n > 0 && n <= XCLIENT_HELO_MAX;
}

/* The raw value of attribute bit for c (before xtext), into buf for numbers. */
static const char *
xclient_value(unsigned bit, const struct relay_client *c, char *buf, size_t buflen)
{
    switch (bit) {
    case XATTR_NAME:
        return XCLIENT_UNAVAILABLE;
    case XATTR_ADDR:
        snprintf(buf, buflen, "%s%s", strchr(c->addr, ':') != NULL ? "IPV6:" : "", c->addr);
        return buf;
    case XATTR_PORT:
        if (c->port <= 0)
            return XCLIENT_UNAVAILABLE;
        snprintf(buf, buflen, "%d", c->port);
        return buf;
    case XATTR_PROTO:
        return c->esmtp ? "ESMTP" : "SMTP";
    case XATTR_HELO:
        return upstream_xclient_helo_ok(c->helo) ? c->helo : XCLIENT_UNAVAILABLE;
    case XATTR_LOGIN:
        return c->login != NULL && c->login[0] != '\0' ? c->login : XCLIENT_UNAVAILABLE;
    case XATTR_IDENT:
        return c->ident[0] != '\0' ? c->ident : XCLIENT_UNAVAILABLE;
    case XATTR_SOURCE:
        return "REMOTE";
    default:
        return XCLIENT_UNAVAILABLE;
    }
}

int
upstream_xclient_lines(enum upstream_xverb verb, unsigned attrs, const struct relay_client *c,
                       char *out, size_t outlen, size_t *len)
{
    const char *vname = verb == UPSTREAM_XCLIENT ? "XCLIENT" : "XFORWARD";
    size_t      vlen = strlen(vname), n = 0, line_start = 0, k;
    size_t      line_max = UPSTREAM_XCLIENT_LINE_MAX - 2; /* without the CRLF */
    bool        open = false;                              /* a line is being filled */
    int         lines = 0;

    attrs &= verb == UPSTREAM_XCLIENT ? ~(unsigned)(XATTR_IDENT | XATTR_SOURCE)
                                      : ~(unsigned)XATTR_LOGIN;
    *len = 0;
    for (k = 0; k < XATTR_COUNT; k++) {
        char        num[80], enc[UPSTREAM_XCLIENT_LINE_MAX], piece[UPSTREAM_XCLIENT_LINE_MAX];
        const char *v;
        size_t      plen;

        if (!(attrs & xattr_names[k].bit))
            continue;
        v = xclient_value(xattr_names[k].bit, c, num, sizeof(num));
        /* "VERB NAME=value" must fit in a line of its own; else the value is unavailable */
        if (xclient_xtext(v, enc, line_max - vlen - strlen(xattr_names[k].name) - 1) == 0)
            snprintf(enc, sizeof(enc), "%s", XCLIENT_UNAVAILABLE);
        plen = (size_t)snprintf(piece, sizeof(piece), " %s=%s", xattr_names[k].name, enc);
        if (open && n - line_start + plen > line_max) { /* end this line, start another */
            if (n + 2 >= outlen)
                return -1;
            memcpy(out + n, "\r\n", 2);
            n += 2;
            open = false;
        }
        if (!open) {
            if (n + vlen >= outlen)
                return -1;
            line_start = n;
            memcpy(out + n, vname, vlen);
            n += vlen;
            open = true;
            lines++;
        }
        if (n + plen >= outlen)
            return -1;
        memcpy(out + n, piece, plen);
        n += plen;
    }
    if (lines == 0 || n + 3 > outlen) {
        if (outlen > 0)
            out[0] = '\0';
        return lines == 0 ? 0 : -1;
    }
    memcpy(out + n, "\r\n", 3); /* with the NUL */
    *len = n + 2;
    return lines;
}

size_t
upstream_xclient_next_line(const char *lines, size_t len, size_t *off)
{
    const char *nl;
    size_t      n;

    if (*off >= len)
        return 0;
    nl = memchr(lines + *off, '\n', len - *off);
    n = nl != NULL ? (size_t)(nl - (lines + *off)) + 1 : len - *off;
    *off += n;
    return n;
}
