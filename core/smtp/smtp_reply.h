/* core/smtp/smtp_reply.h: SMTP replies onto a conn's output buffer: code, enhanced status
 * code (RFC 3463; every reply but the greeting and the EHLO/HELO answer carries one,
 * RFC 2034 section 3) and text, single or multi-line (RFC 5321 section 4.2.1). */
#ifndef SLUICE_SMTP_REPLY_H
#define SLUICE_SMTP_REPLY_H

#include <stddef.h>

struct conn;

/* One line "code enhanced text\r\n"; enhanced may be NULL (greeting, EHLO).
 * Text is formatted; CR, LF and other controls in it become '?'. */
void smtp_reply(struct conn *c, int code, const char *enhanced, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Multi-line: lines[0..n) each get "code-" except the last "code ". No enhanced code
 * (used for EHLO and HELP). */
void smtp_reply_lines(struct conn *c, int code, const char *const *lines, size_t n);

/* True if s is "d.d.d" with a class 2, 4 or 5 and subcodes of 1..3 digits. */
int smtp_reply_is_enhanced(const char *s);

#endif
