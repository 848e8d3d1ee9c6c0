/* tests/fuzz/fuzz_smtp_parse.c: libFuzzer target for core/proto/smtp_parse.c.
 * The input is read as a client stream, line by line as the session does, with the real
 * limits and with small ones; each line found is parsed as a command. The whole input is
 * also parsed as one command line and as an ESMTP parameter list. Checks: every pointer in
 * a result lies inside its input; a line's fate is decided by the octets up to its LF or
 * limit, one fewer says PARSE_AGAIN; an accepted command has no control octets and only
 * well-formed parameters; a parsed mailbox parses again to itself. */
#include "proto/smtp_parse.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REQUIRE(cond)      \
    do {                   \
        if (!(cond))       \
            abort();       \
    } while (0)

static bool
inside(struct smtp_str s, const char *buf, size_t len)
{
    return s.len == 0 ? (s.p == NULL || (s.p >= buf && s.p <= buf + len))
                      : (s.p >= buf && s.p + s.len <= buf + len);
}

static bool
has_octet_in(const char *s, size_t n, unsigned char lo, unsigned char hi)
{
    size_t i;

    for (i = 0; i < n; i++)
        if ((unsigned char)s[i] >= lo && (unsigned char)s[i] <= hi)
            return true;
    return false;
}

static void
check_params(struct smtp_str params, const char *buf, size_t len, bool want_good)
{
    struct smtp_str cur = params, key, value;
    bool            bad = false;

    while (smtp_parse_param_next(&cur, &key, &value, &bad)) {
        REQUIRE(key.len > 0 && inside(key, buf, len) && inside(value, buf, len));
        REQUIRE(inside(cur, buf, len) && cur.len < params.len);
        REQUIRE(!has_octet_in(key.p, key.len, 0, 0x20));
        REQUIRE(!has_octet_in(value.p, value.len, 0, 0x20));
        params = cur;
    }
    REQUIRE(!want_good || !bad);
}

/* A mailbox the parser accepted must be accepted again on its own, unchanged. */
static void
check_reparse(const struct smtp_cmd *cmd)
{
    char            line[300];
    struct smtp_cmd again;
    int             n;

    REQUIRE(cmd->addr.len <= 254); /* the path limit, 256, less "<>" */
    n = snprintf(line, sizeof(line), "%s<%.*s>",
                 cmd->verb == SMTP_VERB_MAIL ? "MAIL FROM:" : "RCPT TO:", (int)cmd->addr.len,
                 cmd->addr.p);
    REQUIRE(smtp_parse_command(line, (size_t)n, &again) == PARSE_OK);
    REQUIRE(again.verb == cmd->verb && again.addr.len == cmd->addr.len);
    REQUIRE(memcmp(again.addr.p, cmd->addr.p, cmd->addr.len) == 0);
    REQUIRE(again.addr_utf8 == cmd->addr_utf8);
}

static void
check_command(const char *line, size_t len)
{
    struct smtp_cmd cmd, again;
    enum parse_rc   rc = smtp_parse_command(line, len, &cmd);

    REQUIRE(rc == PARSE_OK || rc == PARSE_BAD_SYNTAX);
    REQUIRE(inside(cmd.arg, line, len) && inside(cmd.addr, line, len));
    REQUIRE(inside(cmd.params, line, len));
    REQUIRE(smtp_parse_command(line, len, &again) == rc); /* no hidden state */
    REQUIRE(memcmp(&again, &cmd, sizeof(cmd)) == 0);
    if (rc != PARSE_OK) {
        REQUIRE(cmd.addr.len == 0 && cmd.params.len == 0 && !cmd.addr_utf8);
        return;
    }
    REQUIRE(cmd.verb != SMTP_VERB_UNKNOWN);
    REQUIRE(!has_octet_in(line, len, 0, 0x1f) && !has_octet_in(line, len, 0x7f, 0x7f));
    if (cmd.verb == SMTP_VERB_MAIL || cmd.verb == SMTP_VERB_RCPT) {
        REQUIRE(cmd.addr.len > 0 || cmd.verb == SMTP_VERB_MAIL);
        REQUIRE(cmd.addr_utf8 == has_octet_in(cmd.addr.p, cmd.addr.len, 0x80, 0xff));
        check_params(cmd.params, line, len, true);
        check_reparse(&cmd);
    } else {
        REQUIRE(cmd.addr.len == 0 && cmd.params.len == 0);
    }
    if (cmd.verb == SMTP_VERB_DATA || cmd.verb == SMTP_VERB_QUIT)
        REQUIRE(cmd.arg.len == 0);
}

static size_t
limit_for(const char *buf, size_t len, size_t cmd_max, size_t auth_max)
{
    struct smtp_str head = { buf, len < 5 ? len : 5 };

    if (len >= 5 && smtp_str_ieq(head, "AUTH "))
        return auth_max;
    if (len >= 5 && cmd_max != auth_max &&
        (smtp_str_ieq(head, "MAIL ") || smtp_str_ieq(head, "RCPT ")))
        return cmd_max + SMTP_PARSE_DSN_EXTRA;
    return cmd_max;
}

/* One line at buf: its outcome, and that it was decided at the right octet. */
static size_t
check_line(const char *buf, size_t len, size_t cmd_max, size_t auth_max, bool *again)
{
    const char   *line;
    size_t        line_len, used, p_used, limit, decided;
    enum parse_rc rc = smtp_parse_line(buf, len, cmd_max, auth_max, &line, &line_len, &used);
    enum parse_rc p_rc;

    limit = limit_for(buf, len, cmd_max, auth_max);
    *again = rc == PARSE_AGAIN;
    if (rc == PARSE_AGAIN) {
        REQUIRE(len < (cmd_max + SMTP_PARSE_DSN_EXTRA > auth_max ? cmd_max + SMTP_PARSE_DSN_EXTRA
                                                                 : auth_max));
        return len;
    }
    if (rc == PARSE_OK) {
        REQUIRE(line == buf && line_len + 2 == used && used <= limit);
        REQUIRE(buf[used - 2] == '\r' && buf[used - 1] == '\n');
        REQUIRE(memchr(line, '\r', line_len) == NULL && memchr(line, '\n', line_len) == NULL);
        check_command(line, line_len);
    } else if (rc == PARSE_BAD_ENDING) {
        REQUIRE(used >= 1 && used <= len && used <= limit && buf[used - 1] == '\n');
        REQUIRE(memchr(buf, '\n', used - 1) == NULL);
    } else {
        REQUIRE(rc == PARSE_TOO_LONG && len >= limit && memchr(buf, '\n', limit) == NULL);
        REQUIRE(smtp_parse_skip_line(buf, len, &used) == PARSE_OK || used == len);
    }
    decided = rc == PARSE_TOO_LONG ? limit : used;
    p_rc = smtp_parse_line(buf, decided - 1, cmd_max, auth_max, &line, &line_len, &p_used);
    REQUIRE(p_rc == PARSE_AGAIN);
    p_rc = smtp_parse_line(buf, decided, cmd_max, auth_max, &line, &line_len, &p_used);
    REQUIRE(p_rc == rc && (rc == PARSE_TOO_LONG || p_used == used));
    return used;
}

static void
check_stream(const char *buf, size_t len, size_t cmd_max, size_t auth_max)
{
    size_t pos = 0;
    bool   again = false;

    while (pos < len && !again) {
        size_t used = check_line(buf + pos, len - pos, cmd_max, auth_max, &again);

        REQUIRE(used > 0 || again);
        pos += used;
    }
}

/* smtp_parse_ull against strtoull on the same digits. */
static void
check_ull(const char *buf, size_t len)
{
    char               digits[32];
    unsigned long long v, want;
    bool               ok = smtp_parse_ull((struct smtp_str){ buf, len }, &v);
    bool               all_digits = len > 0 && len < sizeof(digits);
    size_t             i;

    for (i = 0; i < len && all_digits; i++)
        all_digits = buf[i] >= '0' && buf[i] <= '9';
    if (!all_digits) {
        REQUIRE(!ok || len >= sizeof(digits));
        return;
    }
    memcpy(digits, buf, len);
    digits[len] = '\0';
    errno = 0;
    want = strtoull(digits, NULL, 10);
    REQUIRE(ok == (errno != ERANGE));
    REQUIRE(!ok || v == want);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char     *buf = (const char *)data;
    struct smtp_str all = { buf, size };

    check_stream(buf, size, SMTP_PARSE_CMD_MAX, SMTP_PARSE_AUTH_MAX);
    check_stream(buf, size, 16, 40);
    check_stream(buf, size, 40, 16);
    check_command(buf, size);
    check_params(all, buf, size, false);
    check_ull(buf, size);
    return 0;
}
