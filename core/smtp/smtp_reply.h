/* core/smtp/smtp_reply.h: SMTP replies onto a conn's output buffer: code, enhanced status
 * code (RFC 3463; every reply but the greeting and the EHLO/HELO answer carries one,
 * RFC 2034 section 3) and text, single or multi-line (RFC 5321 section 4.2.1).
 *
 * Every reply with a fixed text is named here and written once, in smtp_reply.c's table
 * (as OpenSMTPD's esc.c does): the code sends it by name with smtp_reply_send(). Replies
 * whose text varies (the greeting, EHLO, a policy's verdict, the upstream's answer, the
 * queue id) go through smtp_reply() with their text. docs/smtp.md's "Reply table" is
 * generated from the table and checked against it by tests/unit/test_smtp_reply.c. */
#ifndef SLUICE_SMTP_REPLY_H
#define SLUICE_SMTP_REPLY_H

#include <stddef.h>

struct conn;

enum smtp_reply_id {
    /* session: connection, limits, shutdown, timeouts */
    SMTP_R_TOO_MANY_CONNECTIONS,
    SMTP_R_TOO_MANY_ERRORS,
    SMTP_R_TOO_MANY_COMMANDS,
    SMTP_R_TOO_MANY_MESSAGES,
    SMTP_R_TOO_MANY_AUTH_FAILURES,
    SMTP_R_SHUTTING_DOWN,
    SMTP_R_SHUTTING_DOWN_CUT,
    SMTP_R_TIMEOUT_COMMAND,
    SMTP_R_TIMEOUT_LINE,
    SMTP_R_TIMEOUT_AUTH,
    SMTP_R_TIMEOUT_DATA,
    SMTP_R_OUT_OF_MEMORY,
    /* command lines */
    SMTP_R_UNRECOGNIZED,
    SMTP_R_SYNTAX,
    SMTP_R_LINE_TOO_LONG,
    SMTP_R_BARE_CR_LF_COMMAND,
    /* verbs */
    SMTP_R_EHLO_BAD_NAME,
    SMTP_R_SEND_EHLO_FIRST,
    SMTP_R_STARTTLS_READY,
    SMTP_R_TLS_ACTIVE,
    SMTP_R_STARTTLS_NOT_OFFERED,
    SMTP_R_STARTTLS_IN_TX,
    SMTP_R_AUTH_REQUIRED,
    SMTP_R_NESTED_MAIL,
    SMTP_R_PARAMS_NEED_EHLO,
    SMTP_R_BAD_SIZE,
    SMTP_R_BAD_BODY,
    SMTP_R_BAD_MAIL_PARAM,
    SMTP_R_MALFORMED_MAIL_PARAMS,
    SMTP_R_NEED_SMTPUTF8,
    SMTP_R_SENDER_OK,
    SMTP_R_NEED_MAIL,
    SMTP_R_RCPT_AFTER_BDAT,
    SMTP_R_BAD_RCPT_PARAM,
    SMTP_R_TOO_MANY_RECIPIENTS,
    SMTP_R_RECIPIENT_OK,
    SMTP_R_RESET,
    SMTP_R_OK,
    SMTP_R_VRFY,
    SMTP_R_EXPN,
    SMTP_R_BYE,
    /* DATA and BDAT */
    SMTP_R_DATA_AFTER_BDAT,
    SMTP_R_NO_RECIPIENTS,
    SMTP_R_DATA_GO_AHEAD,
    SMTP_R_TOO_BIG,
    SMTP_R_BARE_CR_LF_MESSAGE,
    SMTP_R_FULL_FOR_CLIENT,
    SMTP_R_FULL,
    /* AUTH */
    SMTP_R_AUTH_NEED_TLS,
    SMTP_R_AUTH_ALREADY,
    SMTP_R_AUTH_IN_TX,
    SMTP_R_AUTH_BAD_MECH,
    SMTP_R_AUTH_CANCELLED,
    SMTP_R_AUTH_BAD_BASE64,
    SMTP_R_AUTH_MALFORMED,
    SMTP_R_AUTH_NO_MEMORY,
    SMTP_R_AUTH_INVALID,
    SMTP_R_AUTH_OK,
    SMTP_R__COUNT
};

struct smtp_reply_entry {
    enum smtp_reply_id id;
    const char        *name;     /* "SMTP_R_OK": for docs/smtp.md and tests */
    int                code;
    const char        *enhanced; /* NULL: none (354) */
    const char        *text;
};

/* The table, indexed by id (smtp_reply_table[id].id == id). */
extern const struct smtp_reply_entry smtp_reply_table[SMTP_R__COUNT];

/* The entry for id; never NULL (an id out of range is our bug: an assert). */
const struct smtp_reply_entry *smtp_reply_get(enum smtp_reply_id id);

/* Send the reply named id: "code enhanced text\r\n", byte for byte as smtp_reply() with
 * the table's fields would. */
void smtp_reply_send(struct conn *c, enum smtp_reply_id id);

/* One line "code enhanced text\r\n"; enhanced may be NULL (greeting, EHLO).
 * Text is formatted; CR, LF and other controls in it become '?'. For replies whose text
 * varies; fixed ones are in the table. */
void smtp_reply(struct conn *c, int code, const char *enhanced, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Multi-line: lines[0..n) each get "code-" except the last "code ". No enhanced code
 * (used for EHLO and HELP). */
void smtp_reply_lines(struct conn *c, int code, const char *const *lines, size_t n);

/* True if s is "d.d.d" with a class 2, 4 or 5 and subcodes of 1..3 digits. */
int smtp_reply_is_enhanced(const char *s);

#endif
