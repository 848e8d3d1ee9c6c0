/* core/smtp/smtp_reply.c: the table of fixed replies and reply formatting; see
 * smtp_reply.h. Which reply a situation gets is decided by the callers; this file only
 * names and writes them. */
#include "smtp/smtp_reply.h"

#include <assert.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "net/conn.h"

#define SMTP_REPLY_TEXT_MAX 510 /* RFC 5321 4.5.3.1.5: 512 with the CRLF */

#define R(id, code, enh, text) [id] = {id, #id, code, enh, text}

/* RFC 5321 4.2.2 and 4.2.3 for the codes, RFC 3463 for the enhanced ones. */
const struct smtp_reply_entry smtp_reply_table[SMTP_R__COUNT] = {
    R(SMTP_R_TOO_MANY_CONNECTIONS, 421, "4.7.0", "Too many connections, try again later"),
    R(SMTP_R_TOO_MANY_ERRORS, 421, "4.7.0", "Too many errors, closing connection"),
    R(SMTP_R_TOO_MANY_COMMANDS, 421, "4.7.0", "Too many commands, closing connection"),
    R(SMTP_R_TOO_MANY_MESSAGES, 421, "4.7.0", "Too many messages in one session"),
    R(SMTP_R_TOO_MANY_AUTH_FAILURES, 421, "4.7.0", "Too many authentication failures"),
    R(SMTP_R_SHUTTING_DOWN, 421, "4.3.2", "Service shutting down"),
    R(SMTP_R_SHUTTING_DOWN_CUT, 421, "4.3.2", "Service shutting down, message not accepted"),
    R(SMTP_R_TIMEOUT_COMMAND, 421, "4.4.2", "Timeout waiting for a command, closing connection"),
    R(SMTP_R_TIMEOUT_LINE, 421, "4.4.2",
      "Timeout: command line not completed in time, closing connection"),
    R(SMTP_R_TIMEOUT_AUTH, 421, "4.4.2",
      "Timeout: authentication not completed in time, closing connection"),
    R(SMTP_R_TIMEOUT_DATA, 421, "4.4.2", "Timeout: message data too slow, closing connection"),
    R(SMTP_R_OUT_OF_MEMORY, 451, "4.3.0", "Out of memory"),
    R(SMTP_R_UNRECOGNIZED, 500, "5.5.2", "Command unrecognized"),
    R(SMTP_R_SYNTAX, 501, "5.5.4", "Syntax error in parameters or arguments"),
    R(SMTP_R_LINE_TOO_LONG, 500, "5.5.2", "Line too long"),
    R(SMTP_R_BARE_CR_LF_COMMAND, 500, "5.5.2", "Bare CR or LF in command; use CRLF"),
    R(SMTP_R_EHLO_BAD_NAME, 501, "5.5.4", "EHLO needs a domain or address literal"),
    R(SMTP_R_SEND_EHLO_FIRST, 503, "5.5.1", "Send EHLO first"),
    R(SMTP_R_STARTTLS_READY, 220, "2.0.0", "Ready to start TLS"),
    R(SMTP_R_TLS_ACTIVE, 503, "5.5.1", "TLS already active"),
    R(SMTP_R_STARTTLS_NOT_OFFERED, 503, "5.5.1", "STARTTLS not offered here"),
    R(SMTP_R_STARTTLS_IN_TX, 503, "5.5.1", "STARTTLS not allowed in a transaction"),
    R(SMTP_R_AUTH_REQUIRED, 530, "5.7.0", "Authentication required"),
    R(SMTP_R_NESTED_MAIL, 503, "5.5.1", "Nested MAIL command"),
    R(SMTP_R_PARAMS_NEED_EHLO, 555, "5.5.4", "Parameters need EHLO"),
    R(SMTP_R_BAD_SIZE, 501, "5.5.4", "Bad SIZE value"),
    R(SMTP_R_BAD_BODY, 555, "5.5.4", "Unsupported BODY type"),
    R(SMTP_R_BAD_MAIL_PARAM, 555, "5.5.4", "Unsupported MAIL parameter"),
    R(SMTP_R_MALFORMED_MAIL_PARAMS, 501, "5.5.4", "Malformed MAIL parameters"),
    R(SMTP_R_NEED_SMTPUTF8, 553, "5.6.7", "Non-ASCII address needs SMTPUTF8"),
    R(SMTP_R_SENDER_OK, 250, "2.1.0", "Sender ok"),
    R(SMTP_R_NEED_MAIL, 503, "5.5.1", "Need MAIL command first"),
    R(SMTP_R_RCPT_AFTER_BDAT, 503, "5.5.1", "RCPT not allowed after BDAT"),
    R(SMTP_R_BAD_RCPT_PARAM, 555, "5.5.4", "Unsupported RCPT parameter"),
    R(SMTP_R_TOO_MANY_RECIPIENTS, 452, "4.5.3", "Too many recipients"),
    R(SMTP_R_RECIPIENT_OK, 250, "2.1.5", "Recipient ok"),
    R(SMTP_R_RESET, 250, "2.0.0", "Reset"),
    R(SMTP_R_OK, 250, "2.0.0", "Ok"),
    R(SMTP_R_VRFY, 252, "2.5.0", "Cannot VRFY user, but will accept message"),
    R(SMTP_R_EXPN, 502, "5.5.1", "EXPN not available"),
    R(SMTP_R_BYE, 221, "2.0.0", "Bye"),
    R(SMTP_R_DATA_AFTER_BDAT, 503, "5.5.1", "DATA not allowed after BDAT"),
    R(SMTP_R_NO_RECIPIENTS, 554, "5.5.1", "No valid recipients"),
    R(SMTP_R_DATA_GO_AHEAD, 354, NULL, "End data with <CR><LF>.<CR><LF>"),
    R(SMTP_R_TOO_BIG, 552, "5.3.4", "Message size exceeds fixed maximum size"),
    R(SMTP_R_BARE_CR_LF_MESSAGE, 550, "5.6.0",
      "Bare CR or LF in message; lines must end with CRLF"),
    R(SMTP_R_FULL_FOR_CLIENT, 452, "4.3.1",
      "Mail system full: too much mail in transit from your address, try again later"),
    R(SMTP_R_FULL, 452, "4.3.1", "Mail system full, try again later"),
    R(SMTP_R_AUTH_NEED_TLS, 530, "5.7.0", "Must issue a STARTTLS command first"),
    R(SMTP_R_AUTH_ALREADY, 503, "5.5.1", "Already authenticated"),
    R(SMTP_R_AUTH_IN_TX, 503, "5.5.1", "AUTH not allowed in a transaction"),
    R(SMTP_R_AUTH_BAD_MECH, 504, "5.5.4", "Unrecognized authentication type"),
    R(SMTP_R_AUTH_CANCELLED, 501, "5.0.0", "Authentication cancelled"),
    R(SMTP_R_AUTH_BAD_BASE64, 501, "5.5.2", "Invalid base64 data"),
    R(SMTP_R_AUTH_MALFORMED, 501, "5.5.2", "Malformed authentication data"),
    R(SMTP_R_AUTH_NO_MEMORY, 454, "4.3.0", "Out of memory, try again later"),
    R(SMTP_R_AUTH_INVALID, 535, "5.7.8", "Authentication credentials invalid"),
    R(SMTP_R_AUTH_OK, 235, "2.7.0", "Authentication successful"),
};

#undef R

const struct smtp_reply_entry *
smtp_reply_get(enum smtp_reply_id id)
{
    assert((unsigned)id < SMTP_R__COUNT && smtp_reply_table[id].id == id);
    return &smtp_reply_table[id];
}

void
smtp_reply_send(struct conn *c, enum smtp_reply_id id)
{
    const struct smtp_reply_entry *r = smtp_reply_get(id);

    smtp_reply(c, r->code, r->enhanced, "%s", r->text);
}

/* A reply must be exactly one line per line: anything that could end it early or
 * smuggle a second reply is replaced. */
static void
smtp_reply_sanitise(char *s)
{
    for (; *s; s++) {
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            *s = '?';
    }
}

void
smtp_reply(struct conn *c, int code, const char *enhanced, const char *fmt, ...)
{
    char    text[SMTP_REPLY_TEXT_MAX];
    char    line[SMTP_REPLY_TEXT_MAX + 32];
    va_list ap;
    int     n;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text) - 20, fmt, ap);
    va_end(ap);
    smtp_reply_sanitise(text);
    if (enhanced != NULL)
        n = snprintf(line, sizeof(line), "%03d %s %s\r\n", code, enhanced, text);
    else
        n = snprintf(line, sizeof(line), "%03d %s\r\n", code, text);
    if (n > 0)
        conn_write(c, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

void
smtp_reply_lines(struct conn *c, int code, const char *const *lines, size_t n)
{
    char line[SMTP_REPLY_TEXT_MAX + 8];

    for (size_t i = 0; i < n; i++) {
        int len = snprintf(line, sizeof(line), "%03d%c%s\r\n", code, i + 1 < n ? '-' : ' ',
                           lines[i]);

        if (len > 0 && (size_t)len < sizeof(line))
            conn_write(c, line, (size_t)len);
    }
}

int
smtp_reply_is_enhanced(const char *s)
{
    int parts = 0, digits = 0;

    if (s[0] != '2' && s[0] != '4' && s[0] != '5')
        return 0;
    for (; ; s++) {
        if (isdigit((unsigned char)*s)) {
            if (++digits > 3)
                return 0;
            continue;
        }
        if (digits == 0)
            return 0;
        parts++;
        digits = 0;
        if (*s == '\0')
            return parts == 3;
        if (*s != '.' || parts >= 3)
            return 0;
    }
}
