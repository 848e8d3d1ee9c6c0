/* core/proto/smtp_parse.c: bytes -> one SMTP command line -> struct smtp_cmd; see smtp_parse.h.
 * Finds CRLF-terminated lines (anything else is a smuggling attempt or a broken client),
 * names the verb and checks the argument grammar of RFC 5321 section 4.1, including the
 * mailbox syntax of section 4.1.2 with the SMTPUTF8 extensions of RFC 6531 section 3.3.
 * What a command means in the current state is left to smtp_session.c.
 *
 * Character classes are spelled out for ASCII here rather than taken from <ctype.h>,
 * whose answers depend on the locale: a locale must never change what a command means. */
#include "proto/smtp_parse.h"

#include <string.h>

#include "util/utf8.h"

static bool
is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool
is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static bool
is_alnum(unsigned char c)
{
    return is_alpha(c) || is_digit(c);
}

static bool
is_xdigit(unsigned char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static unsigned char
to_lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + ('a' - 'A')) : c;
}

/* RFC 5322 section 3.2.3 atext, the ASCII octets of an unquoted local part. */
static bool
is_atext(unsigned char c)
{
    return is_alnum(c) || (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* RFC 6531 admits UTF8-non-ascii, not arbitrary octets: util/utf8.h's well-formed
 * sequences only, so that no two byte strings name the same mailbox. */
static size_t
smtp_utf8_len(const char *s, size_t n)
{
    return utf8_seq_len((const unsigned char *)s, n);
}

bool
smtp_str_ieq(struct smtp_str s, const char *word)
{
    size_t i;

    for (i = 0; i < s.len; i++)
        if (word[i] == '\0' || to_lower((unsigned char)s.p[i]) != to_lower((unsigned char)word[i]))
            return false;
    return word[i] == '\0';
}

/* True if s starts with word, ignoring ASCII case. */
static bool
has_iprefix(const char *s, size_t n, const char *word)
{
    size_t wlen = strlen(word);

    return n >= wlen && smtp_str_ieq((struct smtp_str){ s, wlen }, word);
}

bool
smtp_parse_ull(struct smtp_str s, unsigned long long *out)
{
    const unsigned long long max = ~0ull; /* not ULLONG_MAX: -Icore makes <limits.h> ours */
    unsigned long long       v = 0;
    size_t                   i;

    if (s.len == 0)
        return false;
    for (i = 0; i < s.len; i++) {
        unsigned d = (unsigned char)s.p[i] - '0';

        if (d > 9 || v > (max - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

/* ------------------------------------------------------------------ lines */

/* True if the n octets at s (n <= strlen(word)) start word, ignoring ASCII case. */
static bool
is_iprefix_of(const char *s, size_t n, const char *word)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (to_lower((unsigned char)s[i]) != (unsigned char)word[i])
            return false;
    return true;
}

/* The limit, CRLF included, for the line at the start of buf: auth_max for "AUTH ",
 * cmd_max + SMTP_PARSE_DSN_EXTRA for "MAIL " and "RCPT ", else cmd_max. While the first
 * five octets have not all arrived, the largest limit the line may still get applies: the
 * answer must not depend on how the line was split across reads. */
static size_t
line_limit(const char *buf, size_t len, size_t cmd_max, size_t auth_max)
{
    size_t n = len < 5 ? len : 5, limit = cmd_max;
    size_t path_max = cmd_max + SMTP_PARSE_DSN_EXTRA;
    bool   auth = is_iprefix_of(buf, n, "auth ");
    bool   path = cmd_max != auth_max && /* not a SASL response (smtp_parse.h) */
                (is_iprefix_of(buf, n, "mail ") || is_iprefix_of(buf, n, "rcpt "));

    if (n == 5)
        return auth ? auth_max : path ? path_max : cmd_max;
    if (auth && auth_max > limit)
        limit = auth_max;
    if (path && path_max > limit)
        limit = path_max;
    return limit;
}

/* Only the first `limit` octets decide the outcome, so the result is the same however the
 * input was split: a bare CR whose LF lies beyond the limit is PARSE_TOO_LONG, and the
 * caller's smtp_parse_skip_line() resynchronises at that LF just as BAD_ENDING would.
 * RFC 5321 section 2.3.8: lines end in CRLF only; anything else is refused, never repaired,
 * because a server that repairs it would see other command boundaries than the next hop. */
enum parse_rc
smtp_parse_line(const char *buf, size_t len, size_t cmd_max, size_t auth_max,
                const char **line, size_t *line_len, size_t *used)
{
    size_t      limit, scan, n;
    const char *lf;

    *line = buf;
    *line_len = 0;
    *used = 0;
    if (len == 0)
        return PARSE_AGAIN;
    limit = line_limit(buf, len, cmd_max, auth_max);
    scan = len < limit ? len : limit;
    lf = scan > 0 ? memchr(buf, '\n', scan) : NULL;
    if (lf == NULL)
        return len >= limit ? PARSE_TOO_LONG : PARSE_AGAIN;
    n = (size_t)(lf - buf);
    *used = n + 1;
    if (n == 0 || buf[n - 1] != '\r' || memchr(buf, '\r', n - 1) != NULL)
        return PARSE_BAD_ENDING;
    *line_len = n - 1;
    return PARSE_OK;
}

enum parse_rc
smtp_parse_skip_line(const char *buf, size_t len, size_t *used)
{
    const char *lf = len > 0 ? memchr(buf, '\n', len) : NULL;

    if (lf == NULL) {
        *used = len;
        return PARSE_AGAIN;
    }
    *used = (size_t)(lf - buf) + 1;
    return PARSE_OK;
}

/* ------------------------------------------------------------- mailboxes */

/* RFC 5321 section 4.1.2 Dot-string = Atom *("." Atom), atext widened by RFC 6531.
 * Stops at the first octet that cannot continue it; false if an atom is empty. */
static bool
scan_dot_string(const char *p, size_t n, size_t *i, bool *utf8)
{
    size_t j = *i, atom, k;

    for (;;) {
        atom = j;
        while (j < n) {
            unsigned char c = (unsigned char)p[j];

            if (c < 0x80) {
                if (!is_atext(c))
                    break;
                j++;
            } else if ((k = smtp_utf8_len(p + j, n - j)) != 0) {
                *utf8 = true;
                j += k;
            } else {
                return false;
            }
        }
        if (j == atom)
            return false; /* leading, trailing or doubled dot */
        if (j >= n || p[j] != '.')
            break;
        j++;
    }
    *i = j;
    return true;
}

/* RFC 5321 section 4.1.2 Quoted-string: qtextSMTP is %d32-33 / %d35-91 / %d93-126 (plus
 * UTF8-non-ascii, RFC 6531), quoted-pairSMTP is "\" %d32-126. p[*i] is the opening DQUOTE. */
static bool
scan_quoted_string(const char *p, size_t n, size_t *i, bool *utf8)
{
    size_t j = *i + 1, k;

    while (j < n) {
        unsigned char c = (unsigned char)p[j];

        if (c == '"') {
            *i = j + 1;
            return true;
        }
        if (c == '\\') {
            if (j + 1 >= n || (unsigned char)p[j + 1] < 32 || (unsigned char)p[j + 1] > 126)
                return false;
            j += 2;
        } else if (c >= 0x80) {
            if ((k = smtp_utf8_len(p + j, n - j)) == 0)
                return false;
            *utf8 = true;
            j += k;
        } else if (c < 32 || c > 126) {
            return false;
        } else {
            j++;
        }
    }
    return false;
}

/* RFC 5321 section 4.1.2 Domain = sub-domain *("." sub-domain), sub-domain = Let-dig
 * [Ldh-str]: no empty label, no hyphen at either end. RFC 6531 adds U-labels, whose
 * octets >= 0x80 count as letters here. An ASCII label is at most 63 octets (RFC 1035
 * section 2.3.4); a U-label's limit applies to its A-label form, which we do not compute.
 * The whole domain is at most 255 octets (RFC 5321 section 4.5.3.1.2). */
static bool
scan_domain(const char *p, size_t n, size_t *i, bool *utf8)
{
    size_t j = *i, label, k;
    bool   ascii;

    for (;;) {
        label = j;
        ascii = true;
        while (j < n) {
            unsigned char c = (unsigned char)p[j];

            if (is_alnum(c) || c == '-') {
                j++;
            } else if (c >= 0x80) {
                if ((k = smtp_utf8_len(p + j, n - j)) == 0)
                    return false;
                *utf8 = true;
                ascii = false;
                j += k;
            } else {
                break;
            }
        }
        if (j == label || p[label] == '-' || p[j - 1] == '-' || (ascii && j - label > 63))
            return false;
        if (j >= n || p[j] != '.')
            break;
        j++;
    }
    if (j - *i > 255)
        return false;
    *i = j;
    return true;
}

/* RFC 5321 section 4.1.3 IPv4-address-literal: Snum 3("." Snum), Snum 1*3DIGIT <= 255. */
static bool
is_ipv4_literal(const char *s, size_t n)
{
    size_t i = 0, part, digits;

    for (part = 0; part < 4; part++) {
        unsigned v = 0;

        if (part > 0 && (i >= n || s[i++] != '.'))
            return false;
        for (digits = 0; i < n && is_digit((unsigned char)s[i]) && digits < 3; digits++)
            v = v * 10 + (unsigned)(s[i++] - '0');
        if (digits == 0 || v > 255)
            return false;
    }
    return i == n;
}

/* One piece of an IPv6 literal at s[*i]: a 1*4HEXDIG group (returns 1), or an IPv4 tail
 * running to the end of the literal (returns 2, the groups it stands for), or -1. */
static int
scan_ipv6_piece(const char *s, size_t n, size_t *i)
{
    size_t j = *i, k;

    for (k = j; k < n && s[k] != ':'; k++) {
        if (s[k] == '.') {
            if (!is_ipv4_literal(s + j, n - j))
                return -1;
            *i = n;
            return 2;
        }
    }
    if (k == j || k - j > 4)
        return -1;
    for (; j < k; j++)
        if (!is_xdigit((unsigned char)s[j]))
            return -1;
    *i = k;
    return 1;
}

/* RFC 5321 section 4.1.3 IPv6-addr: eight groups, or at most six with one "::" standing
 * for at least two zero groups; an IPv4 tail counts as two groups. */
static bool
is_ipv6_literal(const char *s, size_t n)
{
    size_t i = 0, groups = 0;
    bool   compressed = false;
    int    piece;

    if (n >= 2 && s[0] == ':' && s[1] == ':') {
        compressed = true;
        i = 2;
    }
    while (i < n) {
        if ((piece = scan_ipv6_piece(s, n, &i)) < 0)
            return false;
        groups += (size_t)piece;
        if (i == n)
            break;
        i++; /* the ':' after a group */
        if (i < n && s[i] == ':') {
            if (compressed)
                return false;
            compressed = true;
            i++;
        } else if (i == n) {
            return false; /* a single trailing ':' */
        }
    }
    return compressed ? groups <= 6 : groups == 8;
}

/* RFC 5321 section 4.1.3 address-literal at p[*i] == '['. A General-address-literal needs
 * a tag registered with IANA, and none but IPv6 exists, so only IPv4 and IPv6 pass. */
static bool
scan_address_literal(const char *p, size_t n, size_t *i)
{
    const char *close = memchr(p + *i, ']', n - *i);
    const char *in = p + *i + 1;
    size_t      len;

    if (close == NULL)
        return false;
    len = (size_t)(close - in);
    if (has_iprefix(in, len, "IPv6:")) {
        if (!is_ipv6_literal(in + 5, len - 5))
            return false;
    } else if (!is_ipv4_literal(in, len)) {
        return false;
    }
    *i = (size_t)(close - p) + 1;
    return true;
}

/* RFC 5321 section 4.1.2 A-d-l = At-domain *( "," At-domain ), the RFC 821 source route,
 * up to and including the ':' after it. Sections 3.6.1 and C: accept it, ignore it. */
static bool
skip_source_route(const char *p, size_t n, size_t *i)
{
    size_t j = *i;
    bool   utf8 = false;

    for (;;) {
        if (j >= n || p[j] != '@')
            return false;
        j++;
        if (!scan_domain(p, n, &j, &utf8))
            return false;
        if (j >= n || p[j] != ',')
            break;
        j++;
    }
    if (j >= n || p[j] != ':')
        return false;
    *i = j + 1;
    return true;
}

/* RFC 5321 section 4.1.2 Mailbox = Local-part "@" ( Domain / address-literal ) at p[*i];
 * the local part is at most 64 octets (section 4.5.3.1.1). It ends at the first '@' outside
 * quotes, and since '@' is not atext that is also the last one outside quotes: the domain
 * of "a@b"@example.org is example.org. */
static bool
scan_mailbox(const char *p, size_t n, size_t *i, bool *utf8)
{
    size_t j = *i;
    bool   ok;

    if (j < n && p[j] == '"')
        ok = scan_quoted_string(p, n, &j, utf8);
    else
        ok = scan_dot_string(p, n, &j, utf8);
    if (!ok || j - *i > 64 || j >= n || p[j] != '@')
        return false;
    j++;
    if (j < n && p[j] == '[')
        ok = scan_address_literal(p, n, &j);
    else
        ok = scan_domain(p, n, &j, utf8);
    if (!ok)
        return false;
    *i = j;
    return true;
}

/* RFC 5321 section 4.1.2 Path = "<" [ A-d-l ":" ] Mailbox ">", at most 256 octets with
 * the punctuation (section 4.5.3.1.3). "<>" is the null reverse-path, for MAIL only
 * (section 4.5.5); "<postmaster>" is the one forward-path without a domain (4.5.1). */
static bool
parse_path(const char *p, size_t n, bool is_mail, struct smtp_cmd *out, size_t *used)
{
    size_t i = 1, start;
    bool   utf8 = false;

    if (n < 2 || p[0] != '<')
        return false;
    if (is_mail && p[1] == '>') {
        out->addr = (struct smtp_str){ p + 1, 0 };
        *used = 2;
        return true;
    }
    if (p[i] == '@' && !skip_source_route(p, n, &i))
        return false;
    start = i;
    if (!is_mail && has_iprefix(p + i, n - i, "postmaster>"))
        i += strlen("postmaster");
    else if (!scan_mailbox(p, n, &i, &utf8))
        return false;
    if (i >= n || p[i] != '>' || i + 1 > 256)
        return false;
    out->addr = (struct smtp_str){ p + start, i - start };
    out->addr_utf8 = utf8;
    *used = i + 1;
    return true;
}

/* RFC 5321 sections 4.1.1.2-3: "MAIL FROM:" Reverse-path [SP Mail-parameters] and
 * "RCPT TO:" Forward-path [SP Rcpt-parameters]. The parameters are checked here so the
 * session only ever iterates well-formed ones. */
static enum parse_rc
parse_path_command(struct smtp_cmd *out, const char *keyword, bool is_mail)
{
    const char     *s = out->arg.p;
    size_t          n = out->arg.len, i = strlen(keyword), used;
    struct smtp_str cur, key, value;
    bool            bad = false;

    if (!has_iprefix(s, n, keyword))
        return PARSE_BAD_SYNTAX;
    if (i < n && s[i] == ' ')
        i++; /* "MAIL FROM: <a@b>" is not RFC syntax, but common and unambiguous */
    if (!parse_path(s + i, n - i, is_mail, out, &used))
        return PARSE_BAD_SYNTAX;
    i += used;
    if (i < n && s[i] != ' ')
        return PARSE_BAD_SYNTAX;
    while (i < n && s[i] == ' ')
        i++;
    out->params = (struct smtp_str){ s + i, n - i };
    cur = out->params;
    while (smtp_parse_param_next(&cur, &key, &value, &bad))
        continue;
    return bad ? PARSE_BAD_SYNTAX : PARSE_OK;
}

/* RFC 3030 section 2: "BDAT" SP chunk-size [ SP end-marker ], chunk-size = 1*DIGIT. */
static enum parse_rc
parse_bdat(struct smtp_cmd *out)
{
    const char *s = out->arg.p;
    size_t      n = out->arg.len;
    const char *sp = n > 0 ? memchr(s, ' ', n) : NULL;
    size_t      dlen = sp != NULL ? (size_t)(sp - s) : n;

    if (!smtp_parse_ull((struct smtp_str){ s, dlen }, &out->chunk_size))
        return PARSE_BAD_SYNTAX;
    if (sp == NULL)
        return PARSE_OK;
    out->last = smtp_str_ieq((struct smtp_str){ sp + 1, n - dlen - 1 }, "LAST");
    return out->last ? PARSE_OK : PARSE_BAD_SYNTAX;
}

/* ------------------------------------------------------------- commands */

static const struct {
    const char    *name;
    enum smtp_verb verb;
} smtp_verbs[] = {
    { "EHLO", SMTP_VERB_EHLO }, { "HELO", SMTP_VERB_HELO }, { "MAIL", SMTP_VERB_MAIL },
    { "RCPT", SMTP_VERB_RCPT }, { "DATA", SMTP_VERB_DATA }, { "BDAT", SMTP_VERB_BDAT },
    { "RSET", SMTP_VERB_RSET }, { "NOOP", SMTP_VERB_NOOP }, { "QUIT", SMTP_VERB_QUIT },
    { "VRFY", SMTP_VERB_VRFY }, { "EXPN", SMTP_VERB_EXPN }, { "HELP", SMTP_VERB_HELP },
    { "STARTTLS", SMTP_VERB_STARTTLS }, { "AUTH", SMTP_VERB_AUTH },
};

static enum smtp_verb
verb_lookup(const char *s, size_t n)
{
    size_t i;

    for (i = 0; i < sizeof(smtp_verbs) / sizeof(smtp_verbs[0]); i++)
        if (smtp_str_ieq((struct smtp_str){ s, n }, smtp_verbs[i].name))
            return smtp_verbs[i].verb;
    return SMTP_VERB_UNKNOWN;
}

/* Commands are printable text (RFC 5321 section 4.1.1, plus UTF-8 under RFC 6531). A control
 * octet, NUL above all, comes only from an attack or a broken client; passed on, it would
 * reach C strings, logs, Received: fields and the upstream. */
static bool
has_control(const char *s, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] == 0x7f)
            return true;
    return false;
}

static enum parse_rc
parse_args(struct smtp_cmd *out)
{
    switch (out->verb) {
    case SMTP_VERB_EHLO:
    case SMTP_VERB_HELO:
    case SMTP_VERB_AUTH: /* RFC 4954 section 4: the mechanism is required */
        return out->arg.len > 0 ? PARSE_OK : PARSE_BAD_SYNTAX;
    case SMTP_VERB_DATA:
    case SMTP_VERB_RSET:
    case SMTP_VERB_QUIT:
    case SMTP_VERB_STARTTLS:
        return out->arg.len == 0 ? PARSE_OK : PARSE_BAD_SYNTAX;
    case SMTP_VERB_NOOP:
    case SMTP_VERB_HELP:
    case SMTP_VERB_VRFY:
    case SMTP_VERB_EXPN:
        return PARSE_OK;
    case SMTP_VERB_MAIL:
        return parse_path_command(out, "FROM:", true);
    case SMTP_VERB_RCPT:
        return parse_path_command(out, "TO:", false);
    case SMTP_VERB_BDAT:
        return parse_bdat(out);
    case SMTP_VERB_UNKNOWN:
        break;
    }
    return PARSE_BAD_SYNTAX;
}

/* Trailing spaces are dropped first: "QUIT " and "RCPT TO:<a@b> " are common, harmless,
 * and accepted by Postfix and Exim. The argument is whatever follows the one SP after the
 * verb. On PARSE_BAD_SYNTAX only verb and arg are meaningful. */
enum parse_rc
smtp_parse_command(const char *line, size_t len, struct smtp_cmd *out)
{
    size_t        vlen;
    enum parse_rc rc;

    memset(out, 0, sizeof(*out));
    out->arg.p = out->addr.p = out->params.p = line;
    while (len > 0 && line[len - 1] == ' ')
        len--;
    if (len == 0)
        return PARSE_BAD_SYNTAX;
    for (vlen = 0; vlen < len && line[vlen] != ' '; vlen++)
        continue;
    out->verb = verb_lookup(line, vlen);
    if (out->verb == SMTP_VERB_UNKNOWN)
        return PARSE_BAD_SYNTAX;
    if (vlen < len)
        out->arg = (struct smtp_str){ line + vlen + 1, len - vlen - 1 };
    else
        out->arg = (struct smtp_str){ line + len, 0 };
    if (has_control(line, len))
        return PARSE_BAD_SYNTAX;
    rc = parse_args(out);
    if (rc != PARSE_OK) {
        out->addr = out->params = (struct smtp_str){ line, 0 };
        out->addr_utf8 = out->last = false;
        out->chunk_size = 0;
    }
    return rc;
}

/* ------------------------------------------------------------- parameters */

/* RFC 5321 section 4.1.2 esmtp-value: %d33-60 / %d62-126, plus UTF8-non-ascii (RFC 6531
 * section 3.3). Returns the length of the value at p, or 0 if it is empty or malformed. */
static size_t
scan_esmtp_value(const char *p, size_t n)
{
    size_t i = 0, k;

    while (i < n && p[i] != ' ') {
        unsigned char c = (unsigned char)p[i];

        if (c >= 0x80) {
            if ((k = smtp_utf8_len(p + i, n - i)) == 0)
                return 0;
            i += k;
        } else if (c >= 33 && c <= 126 && c != '=') {
            i++;
        } else {
            return 0;
        }
    }
    return i;
}

/* RFC 5321 section 4.1.2 esmtp-param = esmtp-keyword ["=" esmtp-value], esmtp-keyword =
 * (ALPHA / DIGIT) *(ALPHA / DIGIT / "-"), separated by one or more SP. */
bool
smtp_parse_param_next(struct smtp_str *cursor, struct smtp_str *key, struct smtp_str *value,
                      bool *bad)
{
    const char *p = cursor->p;
    size_t      n = cursor->len, i = 0, k, v;

    *bad = false;
    while (i < n && p[i] == ' ')
        i++;
    if (i == n)
        return false;
    if (!is_alnum((unsigned char)p[i]))
        goto malformed;
    for (k = i; i < n && (is_alnum((unsigned char)p[i]) || p[i] == '-'); i++)
        continue;
    *key = (struct smtp_str){ p + k, i - k };
    *value = (struct smtp_str){ p + i, 0 };
    if (i < n && p[i] == '=') {
        if ((v = scan_esmtp_value(p + i + 1, n - i - 1)) == 0)
            goto malformed;
        *value = (struct smtp_str){ p + i + 1, v };
        i += 1 + v;
    }
    if (i < n && p[i] != ' ')
        goto malformed;
    *cursor = (struct smtp_str){ p + i, n - i };
    return true;
malformed:
    *bad = true;
    return false;
}
