/* core/proto/smtp_parse.h: bytes -> one SMTP command line -> struct smtp_cmd.
 * No I/O, no allocation, no hidden state: every pointer in the results borrows
 * from the caller's buffer. The session decides what a command means. */
#ifndef SLUICE_SMTP_PARSE_H
#define SLUICE_SMTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>

/* RFC 5321 section 4.5.3.1.4: command lines up to 512 octets with CRLF.
 * RFC 4954 section 4: AUTH lines (and SASL responses) up to 12288 octets. */
#define SMTP_PARSE_CMD_MAX  512
#define SMTP_PARSE_AUTH_MAX 12288
/* RFC 3461 sections 4.1-4.4: DSN's parameters lengthen RCPT by 530 octets (NOTIFY 30,
 * ORCPT 500) and MAIL by 108 (RET 8, ENVID 100); MAIL and RCPT lines may be cmd_max plus
 * this (RFC 5321 section 4.5.3.1.4 lets an extension raise the limit). */
#define SMTP_PARSE_DSN_EXTRA 530

enum parse_rc {
    PARSE_OK,         /* result filled, *used bytes consumed */
    PARSE_AGAIN,      /* no complete line yet: read more, call again */
    PARSE_TOO_LONG,   /* no CRLF within the limit: caller replies, then skips the line */
    PARSE_BAD_ENDING, /* bare CR or bare LF in the line; *used covers the line (to its LF) */
    PARSE_BAD_SYNTAX, /* unknown verb or malformed argument */
};

enum smtp_verb {
    SMTP_VERB_UNKNOWN,
    SMTP_VERB_EHLO,
    SMTP_VERB_HELO,
    SMTP_VERB_MAIL,
    SMTP_VERB_RCPT,
    SMTP_VERB_DATA,
    SMTP_VERB_BDAT,
    SMTP_VERB_RSET,
    SMTP_VERB_NOOP,
    SMTP_VERB_QUIT,
    SMTP_VERB_VRFY,
    SMTP_VERB_EXPN,
    SMTP_VERB_HELP,
    SMTP_VERB_STARTTLS,
    SMTP_VERB_AUTH,
};

struct smtp_str {
    const char *p; /* borrows from the line; not NUL-terminated */
    size_t      len;
};

struct smtp_cmd {
    enum smtp_verb  verb;
    struct smtp_str arg;    /* everything after "VERB " (may be empty) */
    /* MAIL FROM / RCPT TO only: */
    struct smtp_str addr;   /* the mailbox without <>, source route dropped; len 0 for <> */
    struct smtp_str params; /* ESMTP parameters after the path, may be empty */
    bool            addr_utf8; /* addr has octets >= 0x80 (needs SMTPUTF8) */
    /* BDAT only: */
    unsigned long long chunk_size;
    bool            last;
};

/* Find one line ending in CRLF at the start of buf.
 * A line starting with "AUTH " (any case) may be auth_max octets long, one starting with
 * "MAIL " or "RCPT " cmd_max + SMTP_PARSE_DSN_EXTRA, others cmd_max;
 * the caller passes cmd_max == auth_max while it waits for a SASL response (no verbs then:
 * every line gets that limit).
 * PARSE_OK: *line / *line_len is the line without CRLF, *used includes CRLF.
 * PARSE_BAD_ENDING: a CR not followed by LF, or an LF not preceded by CR, appears before
 *   the limit; *used covers through the next LF so the caller can resume after it
 *   (or PARSE_AGAIN if no LF has arrived yet).
 * PARSE_TOO_LONG: limit exceeded without CRLF; caller then uses smtp_parse_skip_line(). */
enum parse_rc smtp_parse_line(const char *buf, size_t len, size_t cmd_max, size_t auth_max,
                              const char **line, size_t *line_len, size_t *used);

/* Discard bytes up to and including the next LF. PARSE_OK with *used through the LF,
 * or PARSE_AGAIN with *used == len (everything discarded, keep skipping). */
enum parse_rc smtp_parse_skip_line(const char *buf, size_t len, size_t *used);

/* Parse one line (without CRLF) into *out. Verbs are case-insensitive.
 * MAIL needs "FROM:" and RCPT "TO:" (case-insensitive, no space before the path is the
 * RFC form; one optional space after the colon is tolerated as many clients send it).
 * The path must be <...>; the mailbox is checked against RFC 5321 section 4.1.2
 * (Dot-string or Quoted-string local part up to 64 octets, domain or address literal
 * up to 255, path up to 256); octets >= 0x80 are allowed and flag addr_utf8 (RFC 6531).
 * "<>" is accepted only for MAIL. "RCPT TO:<postmaster>" is accepted (RFC 5321 4.5.1).
 * BDAT needs a decimal size and optional LAST. EHLO/HELO need an argument.
 * DATA, RSET, QUIT, STARTTLS take no argument (NOOP, HELP, VRFY may have one).
 * Returns PARSE_OK or PARSE_BAD_SYNTAX (out->verb is still set when the verb was known,
 * so the caller can say "syntax error in parameters" (501) rather than "unknown" (500)). */
enum parse_rc smtp_parse_command(const char *line, size_t len, struct smtp_cmd *out);

/* Iterate ESMTP parameters "KEY[=VALUE] KEY[=VALUE]...".
 * Call with *cursor set to params; returns true with key/value filled (value.len 0 when
 * absent), false at the end. A malformed parameter (bad keyword chars, empty value after
 * '=', control chars) returns false and sets *bad. */
bool smtp_parse_param_next(struct smtp_str *cursor, struct smtp_str *key, struct smtp_str *value,
                           bool *bad);

/* Case-insensitive compare of s with a NUL-terminated ASCII word. */
bool smtp_str_ieq(struct smtp_str s, const char *word);

/* Parse a decimal value (no sign, no spaces) that fits in unsigned long long. */
bool smtp_parse_ull(struct smtp_str s, unsigned long long *out);

#endif
