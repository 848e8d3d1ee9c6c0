/* core/proto/message.h: the message in transit: an index of its header block (RFC 5322
 * section 2.2). Pure functions over bytes: no I/O, no allocation; editing the buffer is
 * the caller's (lapi_tx.c). */
#ifndef SLUICE_MESSAGE_H
#define SLUICE_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>

/* One header field; offsets into the message given to message_header_next(). */
struct message_header {
    size_t start;    /* the first octet of the name */
    size_t name_len; /* the name ends at start + name_len: at the ':', or at the white
                      * space before it (RFC 5322 section 4.5.8, "From :") */
    size_t value;    /* the first octet after the ':' */
    size_t end;      /* past the CRLF of its last line (or the end of the message) */
};

/* The header block is msg[0 .. the first empty line) or all of msg when there is none.
 * Returns the offset of the body: past that empty line's CRLF, or len. */
size_t message_body_offset(const char *msg, size_t len);

/* The header field at or after *pos, skipping malformed lines (no ':', a name that is not
 * printable ASCII, a continuation line with no field before it). A name may be followed
 * by SP or HTAB before its ':' (obsolete syntax, RFC 5322 section 4.5.8). True and *h filled,
 * *pos moved past it; false at the end of the header block. Start with *pos = 0. */
bool message_header_next(const char *msg, size_t len, size_t *pos, struct message_header *h);

/* The first field named name (ASCII case-insensitive) at or after *pos, as above. */
bool message_header_find(const char *msg, size_t len, size_t *pos, const char *name,
                         size_t name_len, struct message_header *h);

/* Up to max fields into out; returns how many the block has (may exceed max). */
size_t message_header_index(const char *msg, size_t len, struct message_header *out,
                            size_t max);

/* h's value unfolded into out (room for h->end - h->value octets): CR and LF removed,
 * other whitespace kept, blanks after the ':' dropped. Returns its length. */
size_t message_header_unfold(const char *msg, const struct message_header *h, char *out);

#endif
