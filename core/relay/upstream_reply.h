/* core/relay/upstream_reply.h: what an upstream says, parsed: multi-line replies (RFC 5321
 * section 4.2) with their enhanced codes (RFC 3463), and the EHLO keywords sluice uses.
 * No I/O, no allocation; bounded so a hostile upstream cannot grow anything. */
#ifndef SLUICE_UPSTREAM_REPLY_H
#define SLUICE_UPSTREAM_REPLY_H

#include <stdbool.h>
#include <stddef.h>

/* RFC 5321 4.5.3.1.5 allows 512 octets per reply line; accept more, but bounded. */
#define UPSTREAM_LINE_MAX   2048
#define UPSTREAM_LINES_MAX  64
#define UPSTREAM_REPLY_MAX  16384      /* < CONN_IN_DEFAULT: a reply always fits c->in */
#define UPSTREAM_TEXT_MAX   512        /* a reply's text as kept, lines joined */

enum upstream_cap {
    CAP_PIPELINING = 1u << 0, /* RFC 2920 */
    CAP_CHUNKING = 1u << 1,   /* RFC 3030 */
    CAP_8BITMIME = 1u << 2,   /* RFC 6152 */
    CAP_SMTPUTF8 = 1u << 3,   /* RFC 6531 */
    CAP_SIZE = 1u << 4,       /* RFC 1870 */
    CAP_STARTTLS = 1u << 5,   /* RFC 3207 */
    CAP_AUTH_XOAUTH2 = 1u << 12, /* Google's and Microsoft's SASL mechanism */
    CAP_AUTH_PLAIN = 1u << 6, /* RFC 4954, RFC 4616 */
    CAP_AUTH_LOGIN = 1u << 7,
    CAP_DSN = 1u << 8,        /* RFC 3461 */
};

struct upstream_reply {
    int         code;
    char        enhanced[16];
    char        text[UPSTREAM_TEXT_MAX];
    const char *raw;     /* borrows c->in: the whole reply; valid until the next read */
    size_t      raw_len;
};

enum reply_rc {
    REPLY_OK,
    REPLY_AGAIN, /* no complete reply yet */
    REPLY_BAD,   /* malformed, mixed codes, or over a bound */
};

/* One complete reply at p (n octets available): REPLY_OK with *used octets consumed and
 * r filled (r->raw borrows p), REPLY_AGAIN, or REPLY_BAD (mixed codes, over a bound). */
enum reply_rc upstream_reply_parse(const char *p, size_t n, struct upstream_reply *r,
                                   size_t *used);

/* Capabilities (enum upstream_cap bits) and SIZE from a 250 reply to EHLO. */
void upstream_reply_caps(const struct upstream_reply *r, unsigned *caps,
                         unsigned long long *size_max);

#endif
