/* core/proto/data_decoder.h: DATA and BDAT bodies -> message bytes.
 * DATA: dot-unstuffing and the end-of-data line (RFC 5321 4.1.1.4, 4.5.2).
 * BDAT: counted chunks, no unstuffing (RFC 3030).
 * Both: CRLF strictness (no SMTP smuggling: only <CRLF>.<CRLF> ends DATA; a bare CR or
 * bare LF anywhere marks the message bad), the message size limit and the text line
 * length limit. Errors never stop decoding: the decoder keeps consuming to the real end
 * so the session stays in sync and can reject the whole message. No I/O, no allocation. */
#ifndef SLUICE_DATA_DECODER_H
#define SLUICE_DATA_DECODER_H

#include <stdbool.h>
#include <stddef.h>

enum data_mode {
    DATA_MODE_DOT,   /* after DATA 354 */
    DATA_MODE_CHUNK, /* BDAT: the caller feeds exactly the chunk's octets */
};

enum data_rc {
    DATA_MORE, /* all input consumed, the end not seen yet */
    DATA_DONE, /* DATA_MODE_DOT: the end line was consumed; bytes after it are not ours */
};

/* Flags in d->errors, reported once the message ends. */
#define DATA_ERR_BARE_CR   0x1u /* a CR not followed by LF */
#define DATA_ERR_BARE_LF   0x2u /* an LF not preceded by CR */
#define DATA_ERR_TOO_BIG   0x4u /* more than max_size message octets (after unstuffing) */
#define DATA_ERR_LONG_LINE 0x8u /* a line longer than max_line octets including CRLF */

struct data_decoder {
    enum data_mode mode;
    int            state;     /* private: position in the line-start / CR / dot automaton */
    size_t         size;      /* message octets so far (after unstuffing), counted past max */
    size_t         max_size;  /* 0 = no limit */
    size_t         line_len;  /* private: octets in the current line */
    size_t         max_line;  /* 0 = no limit; RFC 5321 4.5.3.1.6 says 1000 with CRLF */
    unsigned       errors;    /* DATA_ERR_* */
};

/* Start a message. For BDAT, the same decoder is fed every chunk of the message so that
 * size, line length and a CR at the end of one chunk followed by LF in the next are
 * judged across chunk boundaries. */
void data_decoder_init(struct data_decoder *d, enum data_mode mode, size_t max_size,
                       size_t max_line);

/* Feed input. Message octets are written to out (capacity must be >= len: output is
 * never longer than input) and *out_len is set; once DATA_ERR_TOO_BIG is set nothing more
 * is written. *used is the number of input octets consumed (== len unless DATA_DONE).
 * In DATA_MODE_DOT the terminating ".\r\n" is consumed but not written; the CRLF before
 * it is part of the message. In DATA_MODE_CHUNK the result is always DATA_MORE. */
enum data_rc data_decoder_feed(struct data_decoder *d, const char *in, size_t len, char *out,
                               size_t *out_len, size_t *used);

/* BDAT LAST (or the caller's end of message): a message must end in CRLF (a trailing
 * bare CR is flagged here). Returns d->errors. */
unsigned data_decoder_finish(struct data_decoder *d);

#endif
