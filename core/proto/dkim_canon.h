/* core/proto/dkim_canon.h: the pure half of DKIM signing (RFC 6376): relaxed header and
 * relaxed body canonicalisation (section 3.4.2, 3.4.4), the choice of header fields to sign
 * and which instance each name of h= stands for (section 5.4.2). No I/O, no allocation, no
 * cryptography: dkim_sign.c hashes what this produces. */
#ifndef SLUICE_DKIM_CANON_H
#define SLUICE_DKIM_CANON_H

#include <stdbool.h>
#include <stddef.h>

#include "proto/message.h"

/* One header field in relaxed form (RFC 6376 section 3.4.2): the name lowercased, the value
 * unfolded, every run of SP/HTAB one SP, none at its start or end, "name:value", then CRLF
 * when crlf. out needs name_len + value_len + 3 octets. Returns the length written. */
size_t dkim_canon_header(const char *name, size_t name_len, const char *value, size_t value_len,
                         bool crlf, char *out);

/* Where canonical body octets go (a hash update, a test's buffer). */
typedef void dkim_canon_out_fn(void *arg, const char *p, size_t n);

/* The relaxed body canonicaliser (RFC 6376 section 3.4.4), fed in pieces of any size: the
 * output is the same however the body is cut. Empty lines at the end are dropped; a body
 * that is empty (or only empty lines) gives no octets; a last line without CRLF gets one. */
struct dkim_canon_body {
    size_t crlfs; /* line ends seen and not yet written (they may be trailing) */
    bool   wsp;   /* SP/HTAB seen since the last octet written on this line */
    bool   cr;    /* the previous octet was a CR (a line end if LF follows) */
    bool   any;   /* some octet other than a line end has been written */
};

void dkim_canon_body_init(struct dkim_canon_body *b);
void dkim_canon_body_feed(struct dkim_canon_body *b, const char *p, size_t n,
                          dkim_canon_out_fn *out, void *arg);
void dkim_canon_body_finish(struct dkim_canon_body *b, dkim_canon_out_fn *out, void *arg);

/* True when a field named name is signed: one of names (NULL-terminated, ASCII
 * case-insensitive; an entry ending in '*' is a prefix) or, names NULL, of the default set
 * (From, Reply-To, Subject, Date, To, Cc, Resent-*, In-Reply-To, References, Message-ID,
 * MIME-Version, Content-*, List-*, Sender, Autocrypt...: what opendkim signs). */
bool dkim_canon_is_signed(const char *name, size_t name_len, const char *const *names);

/* RFC 6376 section 5.4.2: the field that the next occurrence of name in h= stands for: the
 * last one in idx[0..n) with that name that is not used yet; it is marked used. -1 when there
 * is none (a name listed more often than present signs "no such field": oversigning). */
long dkim_canon_pick(const char *msg, const struct message_header *idx, size_t n, bool *used,
                     const char *name, size_t name_len);

#endif
