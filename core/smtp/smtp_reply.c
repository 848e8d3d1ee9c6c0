/* core/smtp/smtp_reply.c: reply formatting onto a conn; see smtp_reply.h. Which reply a
 * situation gets is decided by the callers, and the fixed ones are named and spelled in
 * core/proto/smtp_replies.c; this file only writes them. */
#include "smtp/smtp_reply.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "net/conn.h"

#define SMTP_REPLY_TEXT_MAX 510 /* RFC 5321 4.5.3.1.5: 512 with the CRLF */

void
smtp_reply_send(struct conn *c, enum smtp_reply_id id)
{
    const struct smtp_reply_entry *r = smtp_replies_get(id);

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
