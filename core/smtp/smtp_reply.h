/* core/smtp/smtp_reply.h: SMTP replies onto a conn's output buffer: code, enhanced status
 * code (RFC 3463; every reply but the greeting and the EHLO/HELO answer carries one,
 * RFC 2034 section 3) and text, single or multi-line (RFC 5321 section 4.2.1).
 *
 * Every reply with a fixed text is named and written once, in the table of
 * core/proto/smtp_replies.c: the code sends it by name with smtp_reply_send(). Replies
 * whose text varies (the greeting, EHLO, a policy's verdict, the upstream's answer, the
 * queue id) go through smtp_reply() with their text. */
#ifndef SLUICE_SMTP_REPLY_H
#define SLUICE_SMTP_REPLY_H

#include <stddef.h>

#include "proto/smtp_replies.h"

struct conn;

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
