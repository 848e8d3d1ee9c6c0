/* core/proto/smtp_replies.h: the table of fixed SMTP replies: every reply sluice gives a
 * client with a fixed text, named (SMTP_R_*) and written once, with its code, enhanced
 * status code (RFC 3463) and text (as OpenSMTPD's esc.c does). Data only: sending one is
 * core/smtp/smtp_reply.c's; layers below smtp (relay, policy) take the code, enhanced code
 * and text from here for the results they hand up. Replies whose text varies (the greeting,
 * EHLO, a policy's verdict, the upstream's answer, the queue id) are not in it.
 * docs/smtp.md's "Reply table" is generated from the table and checked against it by
 * tests/unit/test_smtp_replies.c. */
#ifndef SLUICE_PROTO_SMTP_REPLIES_H
#define SLUICE_PROTO_SMTP_REPLIES_H

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
    SMTP_R_DSN_DUPLICATE,
    SMTP_R_DSN_BAD_RET,
    SMTP_R_DSN_BAD_ENVID,
    SMTP_R_DSN_BAD_NOTIFY,
    SMTP_R_DSN_NOTIFY_NEVER,
    SMTP_R_DSN_BAD_ORCPT,
    SMTP_R_DSN_ORCPT_TYPE,
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
    /* policy engine (core/policy): a hook that failed, for any policy */
    SMTP_R_POLICY_TEMPFAIL,
    /* relay (core/relay): a message the upstreams did not answer for */
    SMTP_R_RELAY_NO_SET,
    SMTP_R_RELAY_BAD_ADDRESS,
    SMTP_R_RELAY_NO_SERVER,
    SMTP_R_RELAY_BUSY,
    SMTP_R_RELAY_SHUTTING_DOWN,
    SMTP_R_UPSTREAM_NO_SMTPUTF8,
    SMTP_R_UPSTREAM_NO_8BITMIME,
    SMTP_R_UPSTREAM_TOO_BIG,
    SMTP_R__COUNT
};

struct smtp_reply_entry {
    enum smtp_reply_id id;
    const char        *name;     /* "SMTP_R_OK": for docs/smtp.md and tests */
    int                code;
    const char        *enhanced; /* NULL: none (354) */
    const char        *text;
};

/* The table, indexed by id (smtp_replies_table[id].id == id). */
extern const struct smtp_reply_entry smtp_replies_table[SMTP_R__COUNT];

/* The entry for id; never NULL (an id out of range is our bug: an assert). */
const struct smtp_reply_entry *smtp_replies_get(enum smtp_reply_id id);

#endif
