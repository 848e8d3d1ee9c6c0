/* core/proto/dkim_canon.c: relaxed/relaxed canonicalisation and header choice for DKIM
 * (RFC 6376 sections 3.4.2, 3.4.4, 5.4). Pure: octets in, octets out through a callback.
 * The hashing and the signature are dkim_sign.c's. */
#include <string.h>
#include <strings.h>

#include "proto/dkim_canon.h"

static bool
dkim_is_wsp(char c)
{
    return c == ' ' || c == '\t';
}

static char
dkim_lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
}

size_t
dkim_canon_header(const char *name, size_t name_len, const char *value, size_t value_len,
                  bool crlf, char *out)
{
    size_t i, o = 0, start;
    bool   wsp = false;

    while (name_len > 0 && dkim_is_wsp(name[name_len - 1]))
        name_len--;
    for (i = 0; i < name_len; i++)
        out[o++] = dkim_lower(name[i]);
    out[o++] = ':';
    start = o;
    for (i = 0; i < value_len; i++) {
        char c = value[i];

        if (c == '\r' || c == '\n') /* unfolding: the CRLF goes, the WSP after it stays */
            continue;
        if (dkim_is_wsp(c)) {
            wsp = true;
            continue;
        }
        if (wsp && o > start) /* a run inside the value is one SP; none at its ends */
            out[o++] = ' ';
        wsp = false;
        out[o++] = c;
    }
    if (crlf) {
        out[o++] = '\r';
        out[o++] = '\n';
    }
    return o;
}

void
dkim_canon_body_init(struct dkim_canon_body *b)
{
    memset(b, 0, sizeof(*b));
}

/* Before an octet that is content: the line ends held back, then one SP for a run. */
static void
dkim_body_pending(struct dkim_canon_body *b, dkim_canon_out_fn *out, void *arg)
{
    static const char crlfs[] = "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n";

    while (b->crlfs > 0) {
        size_t k = b->crlfs < 8 ? b->crlfs : 8;

        out(arg, crlfs, 2 * k);
        b->crlfs -= k;
    }
    if (b->wsp)
        out(arg, " ", 1);
    b->wsp = false;
    b->any = true;
}

void
dkim_canon_body_feed(struct dkim_canon_body *b, const char *p, size_t n, dkim_canon_out_fn *out,
                     void *arg)
{
    size_t i = 0, run;

    while (i < n) {
        char c = p[i];

        if (b->cr) {
            b->cr = false;
            if (c == '\n') { /* a line end: trailing WSP is dropped */
                b->wsp = false;
                b->crlfs++;
                i++;
                continue;
            }
            dkim_body_pending(b, out, arg); /* a CR alone is content */
            out(arg, "\r", 1);
        }
        if (c == '\r') {
            b->cr = true;
            i++;
            continue;
        }
        if (dkim_is_wsp(c)) {
            b->wsp = true;
            i++;
            continue;
        }
        run = 1; /* octets up to the next special one go out in one call */
        while (i + run < n && p[i + run] != '\r' && !dkim_is_wsp(p[i + run]))
            run++;
        dkim_body_pending(b, out, arg);
        out(arg, p + i, run);
        i += run;
    }
}

void
dkim_canon_body_finish(struct dkim_canon_body *b, dkim_canon_out_fn *out, void *arg)
{
    if (b->cr) { /* a last CR without LF is content */
        b->cr = false;
        dkim_body_pending(b, out, arg);
        out(arg, "\r", 1);
    }
    b->wsp = false;
    if (b->any)
        out(arg, "\r\n", 2); /* the last line's end; the empty lines after it are dropped */
    b->crlfs = 0;
}

/* RFC 6376 section 5.4.1's recommended set, as opendkim's default list has it. */
static const char *const dkim_default_names[] = {
    "from", "reply-to", "subject", "date", "to", "cc", "resent-*", "in-reply-to",
    "references", "message-id", "mime-version", "content-*", "list-*", "sender",
    "autocrypt", "openpgp", NULL,
};

bool
dkim_canon_is_signed(const char *name, size_t name_len, const char *const *names)
{
    const char *const *n;
    size_t             k;

    for (n = names != NULL ? names : dkim_default_names; *n != NULL; n++) {
        k = strlen(*n);
        if (k > 0 && (*n)[k - 1] == '*') {
            if (name_len >= k - 1 && strncasecmp(name, *n, k - 1) == 0)
                return true;
        } else if (k == name_len && strncasecmp(name, *n, k) == 0) {
            return true;
        }
    }
    return false;
}

long
dkim_canon_pick(const char *msg, const struct message_header *idx, size_t n, bool *used,
                const char *name, size_t name_len)
{
    size_t i;

    for (i = n; i-- > 0;) {
        if (used[i] || idx[i].name_len != name_len ||
            strncasecmp(msg + idx[i].start, name, name_len) != 0)
            continue;
        used[i] = true;
        return (long)i;
    }
    return -1;
}
