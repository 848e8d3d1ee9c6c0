/* core/proto/data_decoder.c: DATA and BDAT bodies -> message octets; see data_decoder.h.
 * A small automaton handles line starts, dots and CRs one octet at a time; everything in
 * between (the bulk of every line) is found with memchr and copied in one piece.
 * The automaton's state lives in struct data_decoder, so a feed may end anywhere, even
 * between the CR and LF of the end line, and the result is the same as one big feed.
 *
 * The rules (RFC 5321 sections 2.3.8, 4.1.1.4 and 4.5.2; RFC 3030 for BDAT):
 * - A line ends only with CRLF. A bare LF or bare CR is passed through, flagged, and does
 *   not end the line: in particular it never starts a line where a dot could end DATA,
 *   so "\n.\n", "\n.\r\n", "\r.\r" and friends are message text (SMTP smuggling).
 * - DOT mode: a line starting with '.' loses the dot; the line ".\r\n" ends the data.
 *   The CRLF before it belongs to the message, and data starts at a line start, so
 *   ".\r\n" first thing is an empty message.
 * - Size and line length count message octets, i.e. after unstuffing (RFC 5321 4.5.3.1.6
 *   does not count the transparency dot). Over the size limit nothing more is written,
 *   but counting and consuming go on so the session finds the real end.
 *
 * out may be the same buffer as in: output never runs ahead of input within one feed. */
#include "proto/data_decoder.h"

#include <stdint.h>
#include <string.h>

enum {
    DEC_BOL,    /* at a line start: in DOT mode a '.' here is special */
    DEC_TEXT,   /* inside a line */
    DEC_CR,     /* a CR was written; an LF now ends the line */
    DEC_DOT,    /* DOT mode: a line-start '.' was consumed, not written */
    DEC_DOT_CR, /* DOT mode: ".\r" at a line start consumed, not written: the end if LF */
    DEC_DONE,   /* DOT mode: ".\r\n" consumed; nothing more is ours */
};

void
data_decoder_init(struct data_decoder *d, enum data_mode mode, size_t max_size,
                  size_t max_line)
{
    d->mode = mode;
    d->state = mode == DATA_MODE_DOT ? DEC_BOL : DEC_TEXT; /* BDAT knows no dots */
    d->size = 0;
    d->max_size = max_size;
    d->line_len = 0;
    d->max_line = max_line;
    d->errors = 0;
}

static size_t
add_saturated(size_t a, size_t b)
{
    return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

/* Append n message octets (src may alias out: it never lies before out + *o), counting
 * them for both limits. Past max_size the octets are counted but not written. */
static void
decoder_emit(struct data_decoder *d, char *out, size_t *o, const char *src, size_t n)
{
    size_t room = n;

    if (d->max_size != 0) {
        if (d->size >= d->max_size)
            room = 0;
        else if (n > d->max_size - d->size)
            room = d->max_size - d->size;
        if (room < n)
            d->errors |= DATA_ERR_TOO_BIG;
    }
    if (room > 0) {
        memmove(out + *o, src, room);
        *o += room;
    }
    d->size = add_saturated(d->size, n);
    d->line_len = add_saturated(d->line_len, n);
    if (d->max_line != 0 && d->line_len > d->max_line)
        d->errors |= DATA_ERR_LONG_LINE;
}

/* The end of a line: the CRLF has just been emitted. */
static void
decoder_line_end(struct data_decoder *d)
{
    d->line_len = 0;
    d->state = d->mode == DATA_MODE_DOT ? DEC_BOL : DEC_TEXT;
}

/* One octet at in[i] in any state but DEC_TEXT; returns the next index (== i when the octet
 * is left for DEC_TEXT to copy). */
static size_t
decoder_step(struct data_decoder *d, const char *in, size_t i, char *out, size_t *o)
{
    switch (d->state) {
    case DEC_BOL:
        d->state = d->mode == DATA_MODE_DOT && in[i] == '.' ? DEC_DOT : DEC_TEXT;
        return d->state == DEC_DOT ? i + 1 : i;
    case DEC_DOT:
        /* RFC 5321 4.5.2: drop the transparency dot; ".\r" may still be the end */
        d->state = in[i] == '\r' ? DEC_DOT_CR : DEC_TEXT;
        return d->state == DEC_DOT_CR ? i + 1 : i;
    case DEC_DOT_CR:
        if (in[i] == '\n') {
            d->state = DEC_DONE;
            return i + 1;
        }
        /* ".\r" then something else: not the end, and the CR is bare. The CR was held back
         * and may have come in an earlier feed, so writing it now could make this feed's
         * output longer than its input. The message is refused for the bare CR anyway,
         * so the CR is dropped with the dot. */
        d->errors |= DATA_ERR_BARE_CR;
        d->state = DEC_TEXT;
        return i;
    case DEC_CR:
        if (in[i] == '\n') {
            decoder_emit(d, out, o, in + i, 1);
            decoder_line_end(d);
            return i + 1;
        }
        d->errors |= DATA_ERR_BARE_CR;
        d->state = DEC_TEXT;
        return i;
    }
    return i; /* not reached: DEC_TEXT and DEC_DONE never come here */
}

/* Copy from in[i] through the next CR or LF, whichever comes first. lf is the index of the
 * next LF at or after i, or len if there is none; the caller finds it once per LF so that
 * input full of bare CRs costs no more than ordinary text. */
static size_t
decoder_text(struct data_decoder *d, const char *in, size_t i, size_t lf, size_t len,
             char *out, size_t *o)
{
    const char *cr = memchr(in + i, '\r', lf - i);
    size_t      j;

    if (cr != NULL) {
        j = (size_t)(cr - in);
        if (j + 1 == lf && lf < len) { /* CRLF: the common case, one copy per line */
            decoder_emit(d, out, o, in + i, lf + 1 - i);
            decoder_line_end(d);
            return lf + 1;
        }
        decoder_emit(d, out, o, in + i, j + 1 - i);
        d->state = DEC_CR; /* LF or not, we learn from the next octet, maybe next feed */
        return j + 1;
    }
    if (lf == len) {
        decoder_emit(d, out, o, in + i, len - i);
        return len;
    }
    /* An LF without CR: flagged, copied, and the line goes on (see the top of the file). */
    d->errors |= DATA_ERR_BARE_LF;
    decoder_emit(d, out, o, in + i, lf + 1 - i);
    return lf + 1;
}

static size_t
find_lf(const char *in, size_t i, size_t len)
{
    const char *lf = i < len ? memchr(in + i, '\n', len - i) : NULL;

    return lf != NULL ? (size_t)(lf - in) : len;
}

enum data_rc
data_decoder_feed(struct data_decoder *d, const char *in, size_t len, char *out,
                  size_t *out_len, size_t *used)
{
    size_t i = 0, o = 0, lf = 0;

    if (d->state != DEC_DONE)
        lf = find_lf(in, 0, len);
    while (i < len && d->state != DEC_DONE) {
        if (d->state != DEC_TEXT) {
            i = decoder_step(d, in, i, out, &o);
            continue;
        }
        if (lf < i)
            lf = find_lf(in, i, len);
        i = decoder_text(d, in, i, lf, len, out, &o);
    }
    *out_len = o;
    *used = i;
    return d->state == DEC_DONE ? DATA_DONE : DATA_MORE;
}

/* A message ends in CRLF (RFC 5321 4.1.1.4, RFC 3030 section 2): a CR still waiting for its
 * LF is a bare CR. A BDAT message whose last line lacks CRLF is not flagged: no DATA_ERR_*
 * names it, so that is the session's call. Calling this twice changes nothing. */
unsigned
data_decoder_finish(struct data_decoder *d)
{
    if (d->state == DEC_CR || d->state == DEC_DOT_CR)
        d->errors |= DATA_ERR_BARE_CR;
    return d->errors;
}
