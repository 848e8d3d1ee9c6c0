/* core/proto/smtp_replies.c: the table of fixed SMTP replies; see smtp_replies.h. Which
 * reply a situation gets is decided by the callers, and sending it is
 * core/smtp/smtp_reply.c's; this file only names and spells them. */
#include "proto/smtp_replies.h"

#include <assert.h>
#include <stddef.h>

#define R(id, code, enh, text) [id] = {id, #id, code, enh, text}

/* RFC 5321 4.2.2 and 4.2.3 for the codes, RFC 3463 for the enhanced ones. */
const struct smtp_reply_entry smtp_replies_table[SMTP_R__COUNT] = {
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
    /* RFC 3461 (DSN) parameters; the texts say what is allowed, as Postfix's do */
    R(SMTP_R_DSN_DUPLICATE, 501, "5.5.4", "Duplicate DSN parameter"),
    R(SMTP_R_DSN_BAD_RET, 501, "5.5.4", "Bad RET parameter: FULL or HDRS"),
    R(SMTP_R_DSN_BAD_ENVID, 501, "5.5.4",
      "Bad ENVID parameter: xtext of printable ASCII, 1 to 100 characters"),
    R(SMTP_R_DSN_BAD_NOTIFY, 501, "5.5.4",
      "Bad NOTIFY parameter: NEVER, or a list of SUCCESS, FAILURE, DELAY"),
    R(SMTP_R_DSN_NOTIFY_NEVER, 501, "5.5.4", "NOTIFY=NEVER cannot be combined with other values"),
    R(SMTP_R_DSN_BAD_ORCPT, 501, "5.5.4",
      "Bad ORCPT parameter: addr-type;xtext, up to 500 characters"),
    R(SMTP_R_DSN_ORCPT_TYPE, 555, "5.5.4", "Unsupported ORCPT address type: rfc822 or utf-8"),
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
    R(SMTP_R_POLICY_TEMPFAIL, 451, "4.3.0", "Temporary policy failure, try again later"),
    R(SMTP_R_RELAY_NO_SET, 451, "4.3.5", "Upstream set not configured"),
    R(SMTP_R_RELAY_BAD_ADDRESS, 501, "5.1.3", "Bad address syntax"),
    R(SMTP_R_RELAY_NO_SERVER, 451, "4.4.1", "No upstream available (no server configured)"),
    R(SMTP_R_RELAY_BUSY, 451, "4.4.5", "All upstream connections are busy, try again later"),
    R(SMTP_R_RELAY_SHUTTING_DOWN, 451, "4.4.2", "Relay shutting down"),
    R(SMTP_R_UPSTREAM_NO_SMTPUTF8, 553, "5.6.7", "Upstream does not support SMTPUTF8"),
    R(SMTP_R_UPSTREAM_NO_8BITMIME, 554, "5.6.3", "Upstream does not support 8BITMIME"),
    R(SMTP_R_UPSTREAM_TOO_BIG, 552, "5.3.4", "Message size exceeds the upstream's limit"),
};

#undef R

const struct smtp_reply_entry *
smtp_replies_get(enum smtp_reply_id id)
{
    assert((unsigned)id < SMTP_R__COUNT && smtp_replies_table[id].id == id);
    return &smtp_replies_table[id];
}
