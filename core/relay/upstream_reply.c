/* core/relay/upstream_reply.c: upstream replies and EHLO keywords; see upstream_reply.h. */
#include "relay/upstream_reply.h"

#include <string.h>
#include <strings.h>

/* "NNN", "NNN text" or "NNN-text"; RFC 5321 4.2: %x32-35 %x30-35 %x30-39. */
static bool
reply_line_code(const char *s, size_t len, int *code, bool *last)
{
    if (len < 3 || s[0] < '2' || s[0] > '5' || s[1] < '0' || s[1] > '5' || s[2] < '0' ||
        s[2] > '9')
        return false;
    if (len > 3 && s[3] != '-' && s[3] != ' ')
        return false;
    *code = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
    *last = len == 3 || s[3] == ' ';
    return true;
}

/* Length of an RFC 3463 code ("5.1.1") at the start of s, followed by a space or the
 * end, or 0 if there is none. */
static size_t
reply_enhanced_len(const char *s, size_t n)
{
    size_t i = 2, part, digits;

    if (n < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
        return 0;
    for (part = 0; part < 2; part++) {
        for (digits = 0; i < n && digits < 3 && s[i] >= '0' && s[i] <= '9'; digits++)
            i++;
        if (digits == 0)
            return 0;
        if (part == 0 && (i >= n || s[i++] != '.'))
            return 0;
    }
    return i < n && s[i] != ' ' ? 0 : i;
}

/* Add one line's text: the first enhanced code is kept apart, the others dropped;
 * anything but printable ASCII becomes '?' (it may end up in our reply to a client). */
static void
reply_add_text(struct upstream_reply *r, size_t *tlen, const char *s, size_t n)
{
    size_t k = reply_enhanced_len(s, n), i;

    if (k > 0) {
        if (r->enhanced[0] == '\0' && k < sizeof(r->enhanced)) {
            memcpy(r->enhanced, s, k);
            r->enhanced[k] = '\0';
        }
        s += k;
        n -= k;
        if (n > 0)
            s++, n--;
    }
    if (n > 0 && *tlen > 0 && *tlen + 1 < sizeof(r->text))
        r->text[(*tlen)++] = ' ';
    for (i = 0; i < n && *tlen + 1 < sizeof(r->text); i++) {
        unsigned char ch = (unsigned char)s[i];

        r->text[(*tlen)++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
    }
    r->text[*tlen] = '\0';
}

/* One complete reply at p (n octets available). A line ends with LF, CR LF preferred;
 * every line must carry the same code. */
enum reply_rc
upstream_reply_parse(const char *p, size_t n, struct upstream_reply *r, size_t *used)
{
    size_t   off = 0, tlen = 0;
    unsigned lines;

    r->code = 0;
    r->enhanced[0] = r->text[0] = '\0';
    for (lines = 0; lines < UPSTREAM_LINES_MAX; lines++) {
        const char *line = p + off;
        const char *nl = memchr(line, '\n', n - off);
        size_t      len;
        int         code;
        bool        last;

        if (nl == NULL)
            return n - off > UPSTREAM_LINE_MAX || n > UPSTREAM_REPLY_MAX ? REPLY_BAD
                                                                         : REPLY_AGAIN;
        len = (size_t)(nl - line);
        off += len + 1;
        if (len > 0 && line[len - 1] == '\r')
            len--;
        if (len > UPSTREAM_LINE_MAX || !reply_line_code(line, len, &code, &last) ||
            (lines > 0 && code != r->code))
            return REPLY_BAD;
        r->code = code;
        reply_add_text(r, &tlen, line + 4, len > 4 ? len - 4 : 0);
        if (last) {
            r->raw = p;
            r->raw_len = off;
            *used = off;
            return REPLY_OK;
        }
        if (off > UPSTREAM_REPLY_MAX)
            return REPLY_BAD;
    }
    return REPLY_BAD;
}

/* RFC 5321 4.1.1.1 keywords are case-insensitive; s is the text of one EHLO line. */
static bool
reply_word_is(const char *s, size_t n, const char *word)
{
    size_t k = strlen(word);

    return n >= k && strncasecmp(s, word, k) == 0 && (n == k || s[k] == ' ' || s[k] == '=');
}

static void
reply_auth_mechs(unsigned *caps, const char *s, size_t n)
{
    size_t i = 5; /* past "AUTH " or "AUTH=" (RFC 4954 section 8 notes the old form) */

    while (i < n) {
        size_t j = i;

        while (j < n && s[j] != ' ')
            j++;
        if (reply_word_is(s + i, j - i, "PLAIN"))
            *caps |= CAP_AUTH_PLAIN;
        else if (reply_word_is(s + i, j - i, "LOGIN"))
            *caps |= CAP_AUTH_LOGIN;
        else if (reply_word_is(s + i, j - i, "XOAUTH2"))
            *caps |= CAP_AUTH_XOAUTH2;
        i = j + 1;
    }
}

static void
reply_cap_line(unsigned *caps, unsigned long long *size_max, const char *s, size_t n)
{
    static const struct {
        const char *word;
        unsigned    bit;
    } simple[] = {
        {"PIPELINING", CAP_PIPELINING}, {"CHUNKING", CAP_CHUNKING},
        {"8BITMIME", CAP_8BITMIME},     {"SMTPUTF8", CAP_SMTPUTF8},
        {"STARTTLS", CAP_STARTTLS},     {"DSN", CAP_DSN},
    };
    size_t i;

    for (i = 0; i < sizeof(simple) / sizeof(simple[0]); i++)
        if (reply_word_is(s, n, simple[i].word))
            *caps |= simple[i].bit;
    if (reply_word_is(s, n, "AUTH"))
        reply_auth_mechs(caps, s, n);
    if (reply_word_is(s, n, "SIZE")) {
        *caps |= CAP_SIZE;
        *size_max = 0;
        for (i = 5; i < n && s[i] >= '0' && s[i] <= '9' && *size_max < (1ull << 50); i++)
            *size_max = *size_max * 10 + (unsigned long long)(s[i] - '0');
    }
}

/* Capabilities from every line of a 250 EHLO reply but the first (the domain). */
void
upstream_reply_caps(const struct upstream_reply *r, unsigned *caps, unsigned long long *size_max)
{
    const char *p = r->raw, *end = r->raw + r->raw_len;
    bool        first = true;

    *caps = 0;
    *size_max = 0;
    while (p < end) { /* one line per pass */
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t      len = (size_t)(nl - p);

        if (len > 0 && p[len - 1] == '\r')
            len--;
        if (!first && len > 4)
            reply_cap_line(caps, size_max, p + 4, len - 4);
        first = false;
        p = nl + 1;
    }
}
