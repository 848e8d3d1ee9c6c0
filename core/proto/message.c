/* core/proto/message.c: the message in transit: an index of its header block. A field is a
 * line "name:" plus the continuation lines after it that start with SP or HTAB (RFC 5322
 * section 2.2.3); the block ends at the first empty line. Lines that are not fields are
 * skipped, not refused: the message is the client's, we only look things up in it.
 * What a mail reader would take for a field, this must too: a policy that counts From:
 * fields must see every one the recipient's reader will show, or a second one gets by. */
#include <string.h>
#include <strings.h>

#include "proto/message.h"

/* Past the end of the line at pos: its LF, or len for a last line without one. */
static size_t
message_line_end(const char *msg, size_t len, size_t pos)
{
    const char *lf = memchr(msg + pos, '\n', len - pos);

    return lf ? (size_t)(lf - msg) + 1 : len;
}

static bool
message_is_empty_line(const char *msg, size_t len, size_t pos)
{
    return (pos + 1 < len && msg[pos] == '\r' && msg[pos + 1] == '\n') ||
           (pos < len && msg[pos] == '\n');
}

static bool
message_is_continuation(const char *msg, size_t len, size_t pos)
{
    return pos < len && (msg[pos] == ' ' || msg[pos] == '\t');
}

size_t
message_body_offset(const char *msg, size_t len)
{
    size_t pos = 0;

    while (pos < len) {
        if (message_is_empty_line(msg, len, pos))
            return message_line_end(msg, len, pos);
        pos = message_line_end(msg, len, pos);
    }
    return len;
}

/* RFC 5322 section 3.6.8: field-name = 1*ftext, printable US-ASCII except ':'; section
 * 4.5.8 (obsolete syntax, which readers still accept): white space may stand between the
 * name and the ':' ("From :"). Returns the name's length and sets *colon to the offset of
 * the ':', or returns 0 when the line at pos is not a field. */
static size_t
message_name_len(const char *msg, size_t len, size_t pos, size_t *colon)
{
    size_t i = pos, n;

    while (i < len && msg[i] >= 33 && msg[i] <= 126 && msg[i] != ':')
        i++;
    n = i - pos;
    while (i < len && (msg[i] == ' ' || msg[i] == '\t'))
        i++;
    if (n == 0 || i >= len || msg[i] != ':')
        return 0;
    *colon = i;
    return n;
}

bool
message_header_next(const char *msg, size_t len, size_t *pos, struct message_header *h)
{
    size_t p = *pos, n, colon = 0;

    while (p < len && !message_is_empty_line(msg, len, p)) {
        n = message_is_continuation(msg, len, p) ? 0 : message_name_len(msg, len, p, &colon);
        h->start = p;
        p = message_line_end(msg, len, p);
        while (message_is_continuation(msg, len, p))
            p = message_line_end(msg, len, p);
        if (n == 0)
            continue; /* malformed, or a continuation of nothing */
        h->name_len = n;
        h->value = colon + 1;
        h->end = p;
        *pos = p;
        return true;
    }
    *pos = p;
    return false;
}

bool
message_header_find(const char *msg, size_t len, size_t *pos, const char *name,
                    size_t name_len, struct message_header *h)
{
    while (message_header_next(msg, len, pos, h))
        if (h->name_len == name_len && strncasecmp(msg + h->start, name, name_len) == 0)
            return true;
    return false;
}

size_t
message_header_index(const char *msg, size_t len, struct message_header *out, size_t max)
{
    struct message_header h;
    size_t                pos = 0, n = 0;

    while (message_header_next(msg, len, &pos, &h)) {
        if (n < max)
            out[n] = h;
        n++;
    }
    return n;
}

size_t
message_header_unfold(const char *msg, const struct message_header *h, char *out)
{
    size_t i = h->value, n = 0;

    /* Unfolding first, then the blanks: "Subject:\r\n folded" is "folded". */
    while (i < h->end && (msg[i] == ' ' || msg[i] == '\t' || msg[i] == '\r' || msg[i] == '\n'))
        i++;
    for (; i < h->end; i++)
        if (msg[i] != '\r' && msg[i] != '\n')
            out[n++] = msg[i];
    return n;
}
