/* tests/unit/test_smtp_parse.c: core/proto/smtp_parse.c: line framing (CRLF only, the AUTH and
 * command limits), every verb, RFC 5321 mailbox syntax and ESMTP parameters.
 * Line framing is also checked with every input cut at every byte, through a reader that
 * drives the parser the way the session does. */
#include "check.h"
#include "proto/smtp_parse.h"

#include <stdbool.h>
#include <stdlib.h>

#define S(lit) lit, sizeof(lit) - 1 /* a literal with its length, NULs included */

static bool
inside(struct smtp_str s, const char *buf, size_t len)
{
    return s.len == 0 ? (s.p == NULL || (s.p >= buf && s.p <= buf + len))
                      : (s.p >= buf && s.p + s.len <= buf + len);
}

static enum parse_rc
command(const char *line, struct smtp_cmd *out)
{
    size_t        len = strlen(line);
    enum parse_rc rc = smtp_parse_command(line, len, out);

    CHECK(inside(out->arg, line, len));
    CHECK(inside(out->addr, line, len));
    CHECK(inside(out->params, line, len));
    return rc;
}

/* A string of n copies of c, freed by the caller. */
static char *
repeat(char c, size_t n)
{
    char *s = malloc(n + 1);

    memset(s, c, n);
    s[n] = '\0';
    return s;
}

/* ------------------------------------------------------------------ lines */

struct line_case {
    const char   *in;
    size_t        len;
    enum parse_rc rc;
    const char   *line; /* PARSE_OK */
    size_t        used;
};

static const struct line_case line_cases[] = {
    { S("NOOP\r\n"), PARSE_OK, "NOOP", 6 },
    { S("\r\n"), PARSE_OK, "", 2 },
    { S("NOOP\r\nQUIT\r\n"), PARSE_OK, "NOOP", 6 },
    { S(""), PARSE_AGAIN, NULL, 0 },
    { S("NOOP"), PARSE_AGAIN, NULL, 0 },
    { S("NOOP\r"), PARSE_AGAIN, NULL, 0 },
    { S("NOOP\n"), PARSE_BAD_ENDING, NULL, 5 },
    { S("\n"), PARSE_BAD_ENDING, NULL, 1 },
    { S("\nNOOP\r\n"), PARSE_BAD_ENDING, NULL, 1 },
    { S("NO\rOP\r\n"), PARSE_BAD_ENDING, NULL, 7 },
    { S("NOOP\r\r\n"), PARSE_BAD_ENDING, NULL, 7 },
    { S("\r\r\n"), PARSE_BAD_ENDING, NULL, 3 },
    { S("NO\rOP"), PARSE_AGAIN, NULL, 0 },      /* bare CR, but the LF is not here yet */
    { S("NOOP\n\r\n"), PARSE_BAD_ENDING, NULL, 5 },
    { S("NOOP\r\n\n"), PARSE_OK, "NOOP", 6 },   /* the next line's problem */
    { S("MAIL FROM:<a@b>\n.\n"), PARSE_BAD_ENDING, NULL, 16 },
    { S("NO\0OP\r\n"), PARSE_OK, "NO\0OP", 7 }, /* NUL is smtp_parse_command's to refuse */
};

static void
only_crlf_ends_a_line(void)
{
    size_t i;

    for (i = 0; i < sizeof(line_cases) / sizeof(line_cases[0]); i++) {
        const struct line_case *c = &line_cases[i];
        const char             *line = NULL;
        size_t                  line_len = 99, used = 99;
        enum parse_rc rc = smtp_parse_line(c->in, c->len, 512, 12288, &line, &line_len, &used);

        CHECK_EQ_INT(rc, c->rc);
        CHECK_EQ_INT(used, c->used);
        if (c->rc == PARSE_OK) {
            CHECK(line == c->in);
            CHECK_EQ_INT(line_len, c->used - 2);
            CHECK(memcmp(line, c->line, line_len) == 0);
        }
        if (rc != c->rc)
            fprintf(stderr, "  line case %zu\n", i);
    }
}

/* Any prefix of a case either asks for more or already gives the whole case's answer, and
 * from the decisive octet on it gives exactly that answer. */
static void
every_line_case_is_decided_the_same_on_any_prefix(void)
{
    size_t i, k;

    for (i = 0; i < sizeof(line_cases) / sizeof(line_cases[0]); i++) {
        const struct line_case *c = &line_cases[i];

        for (k = 0; k <= c->len; k++) {
            const char   *line;
            size_t        line_len, used;
            enum parse_rc rc = smtp_parse_line(c->in, k, 512, 12288, &line, &line_len, &used);

            if (k < c->used || c->rc == PARSE_AGAIN) {
                CHECK_EQ_INT(rc, PARSE_AGAIN);
            } else {
                CHECK_EQ_INT(rc, c->rc);
                CHECK_EQ_INT(used, c->used);
            }
        }
    }
}

static void
bare_lf_never_ends_a_command(void)
{
    const char   *line;
    size_t        line_len, used;
    enum parse_rc rc;

    rc = smtp_parse_line(S("RSET\nQUIT\r\n"), 512, 12288, &line, &line_len, &used);
    CHECK_EQ_INT(rc, PARSE_BAD_ENDING);
    CHECK_EQ_INT(used, 5); /* the caller resumes at "QUIT" after one error reply */
    rc = smtp_parse_line(S("RSET\rQUIT\r\n"), 512, 12288, &line, &line_len, &used);
    CHECK_EQ_INT(rc, PARSE_BAD_ENDING);
    CHECK_EQ_INT(used, 11); /* a bare CR is not a line end either: through the LF */
}

/* A line of total octets, CRLF included, starting with prefix. */
static char *
line_of(const char *prefix, size_t total)
{
    char  *s = repeat('A', total);
    size_t plen = strlen(prefix);

    memcpy(s, prefix, plen);
    s[total - 2] = '\r';
    s[total - 1] = '\n';
    return s;
}

static enum parse_rc
line_rc(const char *s, size_t len, size_t cmd_max, size_t auth_max)
{
    const char *line;
    size_t      line_len, used;

    return smtp_parse_line(s, len, cmd_max, auth_max, &line, &line_len, &used);
}

struct limit_case {
    const char   *prefix;
    size_t        total; /* octets with CRLF */
    size_t        cmd_max, auth_max;
    enum parse_rc rc;
};

static const struct limit_case limit_cases[] = {
    { "NOOP ", 512, 512, 12288, PARSE_OK },
    { "NOOP ", 513, 512, 12288, PARSE_TOO_LONG },
    { "AUTH PLAIN ", 12288, 512, 12288, PARSE_OK },       /* RFC 4954 section 4 */
    { "AUTH PLAIN ", 12289, 512, 12288, PARSE_TOO_LONG },
    { "auth plain ", 12288, 512, 12288, PARSE_OK },
    { "AuTh ", 12289, 512, 12288, PARSE_TOO_LONG },
    { "AUTHX ", 513, 512, 12288, PARSE_TOO_LONG },        /* not "AUTH ": 512 */
    { "NOAUTH ", 513, 512, 12288, PARSE_TOO_LONG },
    { "", 12288, 12288, 12288, PARSE_OK },                /* a SASL response */
    { "", 12289, 12288, 12288, PARSE_TOO_LONG },
    /* RFC 3461: MAIL and RCPT may carry DSN parameters, 530 octets more */
    { "RCPT TO:<a@b> ORCPT=rfc822;", 512 + 530, 512, 12288, PARSE_OK },
    { "rcpt TO:<a@b> ORCPT=rfc822;", 512 + 531, 512, 12288, PARSE_TOO_LONG },
    { "MAIL FROM:<a@b> ENVID=", 512 + 530, 512, 12288, PARSE_OK },
    { "MAIL FROM:<a@b> ENVID=", 512 + 531, 512, 12288, PARSE_TOO_LONG },
    { "MAILX ", 513, 512, 12288, PARSE_TOO_LONG },
    { "RCPT ", 12289, 12288, 12288, PARSE_TOO_LONG },     /* a SASL response: no verbs */
    { "", 2, 2, 2, PARSE_OK },
    { "", 3, 2, 2, PARSE_TOO_LONG },
};

static void
auth_lines_get_12288_octets_and_others_512(void)
{
    size_t i;

    for (i = 0; i < sizeof(limit_cases) / sizeof(limit_cases[0]); i++) {
        const struct limit_case *c = &limit_cases[i];
        char                    *s = line_of(c->prefix, c->total);
        size_t                   limit = c->total - (c->rc == PARSE_TOO_LONG);

        CHECK_EQ_INT(line_rc(s, c->total, c->cmd_max, c->auth_max), c->rc);
        if (c->rc == PARSE_OK) {
            CHECK_EQ_INT(line_rc(s, c->total - 1, c->cmd_max, c->auth_max), PARSE_AGAIN);
        } else {
            /* decided as soon as the limit is reached, before the rest of the line */
            CHECK_EQ_INT(line_rc(s, limit, c->cmd_max, c->auth_max), PARSE_TOO_LONG);
            CHECK_EQ_INT(line_rc(s, limit - 1, c->cmd_max, c->auth_max), PARSE_AGAIN);
        }
        free(s);
    }
}

static void
a_bare_cr_with_its_lf_past_the_limit_is_too_long(void)
{
    char *s = line_of("NO\rOP", 600);

    CHECK_EQ_INT(line_rc(s, 511, 512, 12288), PARSE_AGAIN);
    CHECK_EQ_INT(line_rc(s, 512, 512, 12288), PARSE_TOO_LONG);
    CHECK_EQ_INT(line_rc(s, 600, 512, 12288), PARSE_TOO_LONG);
    s[510] = '\r'; /* the same bare CR with an LF inside the limit is a bad ending */
    s[511] = '\n';
    CHECK_EQ_INT(line_rc(s, 511, 512, 12288), PARSE_AGAIN);
    CHECK_EQ_INT(line_rc(s, 512, 512, 12288), PARSE_BAD_ENDING);
    CHECK_EQ_INT(line_rc(s, 600, 512, 12288), PARSE_BAD_ENDING);
    free(s);
}

static void
skip_line_discards_through_the_next_lf(void)
{
    size_t used = 0;

    CHECK_EQ_INT(smtp_parse_skip_line(S("AAAA\r\nNOOP\r\n"), &used), PARSE_OK);
    CHECK_EQ_INT(used, 6);
    CHECK_EQ_INT(smtp_parse_skip_line(S("AA\nB"), &used), PARSE_OK);
    CHECK_EQ_INT(used, 3);
    CHECK_EQ_INT(smtp_parse_skip_line(S("AAAA\r"), &used), PARSE_AGAIN);
    CHECK_EQ_INT(used, 5);
    CHECK_EQ_INT(smtp_parse_skip_line(NULL, 0, &used), PARSE_AGAIN);
    CHECK_EQ_INT(used, 0);
}

/* ------------------------------------------------- a reader, as the session */

/* Drives smtp_parse_line over input arriving in pieces, the way the session does, and
 * writes what it saw to log: "[line]" for each line, "!E" bad ending, "!L" too long. */
struct reader {
    char   buf[16384];
    size_t len;
    bool   skipping;
    size_t cmd_max, auth_max;
    char   log[65536];
    size_t log_len;
};

static void
reader_log(struct reader *r, const char *s, size_t n)
{
    if (r->log_len + n < sizeof(r->log)) {
        memcpy(r->log + r->log_len, s, n);
        r->log_len += n;
    }
}

static void
reader_consume(struct reader *r, size_t n)
{
    memmove(r->buf, r->buf + n, r->len - n);
    r->len -= n;
}

static void
reader_feed(struct reader *r, const char *in, size_t n)
{
    const char   *line;
    size_t        line_len, used;
    enum parse_rc rc;

    memcpy(r->buf + r->len, in, n);
    r->len += n;
    for (;;) {
        if (r->skipping) {
            rc = smtp_parse_skip_line(r->buf, r->len, &used);
            reader_consume(r, used);
            if (rc == PARSE_AGAIN)
                return;
            r->skipping = false;
        }
        rc = smtp_parse_line(r->buf, r->len, r->cmd_max, r->auth_max, &line, &line_len, &used);
        if (rc == PARSE_AGAIN) {
            CHECK(r->len < (r->cmd_max > r->auth_max ? r->cmd_max : r->auth_max));
            return;
        }
        if (rc == PARSE_OK) {
            reader_log(r, "[", 1);
            reader_log(r, line, line_len);
            reader_log(r, "]", 1);
        } else {
            reader_log(r, rc == PARSE_TOO_LONG ? "!L" : "!E", 2);
            r->skipping = rc == PARSE_TOO_LONG;
        }
        reader_consume(r, used);
    }
}

/* What the reader logs for in, fed in pieces cut at the given offsets. */
static void
reader_run(struct reader *r, const char *in, size_t n, size_t cut1, size_t cut2)
{
    r->len = r->log_len = 0;
    r->skipping = false;
    r->cmd_max = 16;
    r->auth_max = 32;
    reader_feed(r, in, cut1);
    reader_feed(r, in + cut1, cut2 - cut1);
    reader_feed(r, in + cut2, n - cut2);
}

/* Small limits (16, AUTH 32) so that every cut of a short stream crosses them. */
static const char reader_stream[] =
    "EHLO client.example\r\n"       /* too long for 16 */
    "NOOP\r\n"
    "RSET\nQUIT\r\n"                /* bare LF */
    "NO\rOP\r\n"                    /* bare CR */
    "AUTH PLAIN AAAAAAAAAAAAAAA\r\n" /* 28 octets: fine for AUTH */
    "NOOP AAAAAAAAAAAAAAAAAAAA\r\n" /* 27: not for NOOP */
    "\r\n"
    "MAIL FROM:<ab>\r\n"            /* 16 (MAIL may be 16 + 530: RFC 3461) */
    "VRFY FROM:<abc>\r\n"           /* 17 */
    "A\r\rB\nC\r\n"
    "auth x\r\n"
    "AUTH\r\n"
    "HELO x\r\n"
    "DATA\r\n.\r";

static const char reader_expect[] = "!L[NOOP]!E[QUIT]!E[AUTH PLAIN AAAAAAAAAAAAAAA]!L[]"
                                    "[MAIL FROM:<ab>]!L!E[C][auth x][AUTH][HELO x][DATA]";

static void
line_framing_is_the_same_however_the_input_is_cut(void)
{
    static struct reader r;
    size_t               n = sizeof(reader_stream) - 1, i, j;

    reader_run(&r, reader_stream, n, n, n);
    CHECK_MEM(r.log, r.log_len, reader_expect);
    CHECK_EQ_INT(r.len, 2); /* ".\r" waits for its LF */
    for (i = 0; i <= n; i++) {
        for (j = i; j <= n; j++) {
            reader_run(&r, reader_stream, n, i, j);
            if (r.log_len != sizeof(reader_expect) - 1 ||
                memcmp(r.log, reader_expect, r.log_len) != 0) {
                CHECK_MEM(r.log, r.log_len, reader_expect);
                fprintf(stderr, "  cut at %zu and %zu\n", i, j);
                return;
            }
        }
    }
    CHECK(true);
}

static void
long_lines_are_judged_the_same_when_fed_byte_by_byte(void)
{
    static struct reader r;
    char                *auth_ok = line_of("AUTH PLAIN ", 12288);
    char                *auth_long = line_of("AUTH PLAIN ", 12289);
    char                *noop_ok = line_of("NOOP ", 512);
    char                *noop_long = line_of("NOOP ", 513);
    const char          *parts[] = { auth_ok, auth_long, noop_ok, noop_long };
    size_t               lens[] = { 12288, 12289, 512, 513 };
    size_t               i, k;

    memset(&r, 0, sizeof(r));
    r.cmd_max = 512;
    r.auth_max = 12288;
    for (i = 0; i < 4; i++)
        for (k = 0; k < lens[i]; k++)
            reader_feed(&r, parts[i] + k, 1);
    CHECK_EQ_INT(r.log_len, 2 + 12286 + 2 + 2 + 510 + 2);
    CHECK(memcmp(r.log + 12288, "!L[NOOP ", 8) == 0);
    CHECK(memcmp(r.log + r.log_len - 4, "A]!L", 4) == 0);
    CHECK_EQ_INT(r.len, 0);
    free(auth_ok);
    free(auth_long);
    free(noop_ok);
    free(noop_long);
}

/* --------------------------------------------------------------- commands */

struct cmd_case {
    const char     *in;
    size_t          len;
    enum parse_rc   rc;
    enum smtp_verb  verb;
    const char     *arg; /* NULL: not checked */
};

static const struct cmd_case cmd_cases[] = {
    { S("EHLO client.example"), PARSE_OK, SMTP_VERB_EHLO, "client.example" },
    { S("ehlo [192.0.2.1]"), PARSE_OK, SMTP_VERB_EHLO, "[192.0.2.1]" },
    { S("HeLo x"), PARSE_OK, SMTP_VERB_HELO, "x" },
    { S("EHLO"), PARSE_BAD_SYNTAX, SMTP_VERB_EHLO, "" },
    { S("EHLO   "), PARSE_BAD_SYNTAX, SMTP_VERB_EHLO, "" },
    { S("HELO"), PARSE_BAD_SYNTAX, SMTP_VERB_HELO, "" },
    { S("DATA"), PARSE_OK, SMTP_VERB_DATA, "" },
    { S("data "), PARSE_OK, SMTP_VERB_DATA, "" }, /* trailing SP tolerated */
    { S("DATA x"), PARSE_BAD_SYNTAX, SMTP_VERB_DATA, "x" },
    { S("RSET"), PARSE_OK, SMTP_VERB_RSET, "" },
    { S("RSET now"), PARSE_BAD_SYNTAX, SMTP_VERB_RSET, "now" },
    { S("QUIT"), PARSE_OK, SMTP_VERB_QUIT, "" },
    { S("quit please"), PARSE_BAD_SYNTAX, SMTP_VERB_QUIT, "please" },
    { S("STARTTLS"), PARSE_OK, SMTP_VERB_STARTTLS, "" },
    { S("StartTLS x"), PARSE_BAD_SYNTAX, SMTP_VERB_STARTTLS, "x" },
    { S("NOOP"), PARSE_OK, SMTP_VERB_NOOP, "" },
    { S("NOOP anything at all"), PARSE_OK, SMTP_VERB_NOOP, "anything at all" },
    { S("HELP"), PARSE_OK, SMTP_VERB_HELP, "" },
    { S("help MAIL"), PARSE_OK, SMTP_VERB_HELP, "MAIL" },
    { S("VRFY"), PARSE_OK, SMTP_VERB_VRFY, "" },
    { S("VRFY ann"), PARSE_OK, SMTP_VERB_VRFY, "ann" },
    { S("EXPN list"), PARSE_OK, SMTP_VERB_EXPN, "list" },
    { S("AUTH PLAIN"), PARSE_OK, SMTP_VERB_AUTH, "PLAIN" },
    { S("auth plain AGFubgBzZWNyZXQ="), PARSE_OK, SMTP_VERB_AUTH, "plain AGFubgBzZWNyZXQ=" },
    { S("AUTH"), PARSE_BAD_SYNTAX, SMTP_VERB_AUTH, "" },
    { S("MAIL FROM:<a@b.example>"), PARSE_OK, SMTP_VERB_MAIL, "FROM:<a@b.example>" },
    { S("MAIL"), PARSE_BAD_SYNTAX, SMTP_VERB_MAIL, "" },
    { S("RCPT"), PARSE_BAD_SYNTAX, SMTP_VERB_RCPT, "" },
    { S("EHLO  x"), PARSE_OK, SMTP_VERB_EHLO, " x" }, /* arg is all after "VERB " */
    /* unknown verbs */
    { S(""), PARSE_BAD_SYNTAX, SMTP_VERB_UNKNOWN, NULL },
    { S("   "), PARSE_BAD_SYNTAX, SMTP_VERB_UNKNOWN, NULL },
    { S(" NOOP"), PARSE_BAD_SYNTAX, SMTP_VERB_UNKNOWN, NULL },
    { S("FOO"), PARSE_BAD_SYNTAX, SMTP_VERB_UNKNOWN, NULL },
    { S("NOOPX"), PARSE_BAD_SYNTAX, SMTP_VERB_UNKNOWN, NULL },
    { S("NOO"), PARSE_BAD_SYNTAX, SMTP_VERB_UNKNOWN, NULL },
    { S("MAILFROM:<a@b>"), PARSE_BAD_SYNTAX, SMTP_VERB_UNKNOWN, NULL },
    { S("STARTTLSX"), PARSE_BAD_SYNTAX, SMTP_VERB_UNKNOWN, NULL },
    { S("GET / HTTP/1.1"), PARSE_BAD_SYNTAX, SMTP_VERB_UNKNOWN, NULL },
    { S("N\0OP"), PARSE_BAD_SYNTAX, SMTP_VERB_UNKNOWN, NULL },
    /* control octets, NUL above all: refused with the verb known (501, not 500) */
    { S("NOOP a\0b"), PARSE_BAD_SYNTAX, SMTP_VERB_NOOP, NULL },
    { S("EHLO x\0"), PARSE_BAD_SYNTAX, SMTP_VERB_EHLO, NULL },
    { S("NOOP\0"), PARSE_BAD_SYNTAX, SMTP_VERB_UNKNOWN, NULL },
    { S("NOOP a\tb"), PARSE_BAD_SYNTAX, SMTP_VERB_NOOP, NULL },
    { S("NOOP a\x7f"), PARSE_BAD_SYNTAX, SMTP_VERB_NOOP, NULL },
    { S("NOOP a\rb"), PARSE_BAD_SYNTAX, SMTP_VERB_NOOP, NULL },
    { S("NOOP a\nb"), PARSE_BAD_SYNTAX, SMTP_VERB_NOOP, NULL },
    { S("RCPT TO:<a\0@b.example>"), PARSE_BAD_SYNTAX, SMTP_VERB_RCPT, NULL },
    { S("AUTH PLAIN\x01"), PARSE_BAD_SYNTAX, SMTP_VERB_AUTH, NULL },
};

static void
every_verb_is_recognised_in_any_case_with_its_argument_rules(void)
{
    size_t i;

    for (i = 0; i < sizeof(cmd_cases) / sizeof(cmd_cases[0]); i++) {
        const struct cmd_case *c = &cmd_cases[i];
        struct smtp_cmd        cmd;
        enum parse_rc          rc = smtp_parse_command(c->in, c->len, &cmd);

        CHECK_EQ_INT(rc, c->rc);
        CHECK_EQ_INT(cmd.verb, c->verb);
        if (c->arg != NULL)
            CHECK_MEM(cmd.arg.p, cmd.arg.len, c->arg);
        CHECK(inside(cmd.arg, c->in, c->len));
        if (rc != c->rc || cmd.verb != c->verb)
            fprintf(stderr, "  command case %zu: \"%s\"\n", i, c->in);
    }
}

struct bdat_case {
    const char        *in;
    enum parse_rc      rc;
    unsigned long long size;
    bool               last;
};

static const struct bdat_case bdat_cases[] = {
    { "BDAT 10", PARSE_OK, 10, false },
    { "BDAT 10 LAST", PARSE_OK, 10, true },
    { "bdat 0 last", PARSE_OK, 0, true },
    { "BDAT 007 Last", PARSE_OK, 7, true },
    { "BDAT 18446744073709551615", PARSE_OK, 18446744073709551615ull, false },
    { "BDAT 18446744073709551616", PARSE_BAD_SYNTAX, 0, false }, /* overflow */
    { "BDAT 99999999999999999999999", PARSE_BAD_SYNTAX, 0, false },
    { "BDAT", PARSE_BAD_SYNTAX, 0, false },
    { "BDAT x", PARSE_BAD_SYNTAX, 0, false },
    { "BDAT -1", PARSE_BAD_SYNTAX, 0, false },
    { "BDAT +1", PARSE_BAD_SYNTAX, 0, false },
    { "BDAT 0x10", PARSE_BAD_SYNTAX, 0, false },
    { "BDAT 1 2", PARSE_BAD_SYNTAX, 0, false },
    { "BDAT 10 LASTX", PARSE_BAD_SYNTAX, 0, false },
    { "BDAT 10 LAS", PARSE_BAD_SYNTAX, 0, false },
    { "BDAT 10 LAST x", PARSE_BAD_SYNTAX, 0, false },
    { "BDAT 10  LAST", PARSE_BAD_SYNTAX, 0, false },
    { "BDAT  10", PARSE_BAD_SYNTAX, 0, false },
    { "BDAT 10 LAST ", PARSE_OK, 10, true },
};

static void
bdat_takes_a_decimal_size_that_fits_and_an_optional_last(void)
{
    size_t i;

    for (i = 0; i < sizeof(bdat_cases) / sizeof(bdat_cases[0]); i++) {
        const struct bdat_case *c = &bdat_cases[i];
        struct smtp_cmd         cmd;
        enum parse_rc           rc = command(c->in, &cmd);

        CHECK_EQ_INT(rc, c->rc);
        CHECK_EQ_INT(cmd.verb, SMTP_VERB_BDAT);
        CHECK(cmd.chunk_size == c->size);
        CHECK_EQ_INT(cmd.last, c->last);
        if (rc != c->rc)
            fprintf(stderr, "  bdat case \"%s\"\n", c->in);
    }
}

/* -------------------------------------------------------------- mailboxes */

struct addr_case {
    const char   *in;
    enum parse_rc rc;
    const char   *addr;   /* PARSE_OK */
    const char   *params; /* PARSE_OK */
    bool          utf8;
};

#define OK(in, addr) { in, PARSE_OK, addr, "", false }
#define BAD(in)      { in, PARSE_BAD_SYNTAX, NULL, NULL, false }

static const struct addr_case addr_cases[] = {
    OK("MAIL FROM:<ann@example.org>", "ann@example.org"),
    OK("mail from:<Ann@Example.ORG>", "Ann@Example.ORG"),
    OK("MAIL FROM: <ann@example.org>", "ann@example.org"), /* one SP tolerated */
    BAD("MAIL FROM:  <ann@example.org>"),
    BAD("MAIL FROM :<ann@example.org>"),
    BAD("MAIL  FROM:<ann@example.org>"),
    BAD("MAIL TO:<ann@example.org>"),
    BAD("RCPT FROM:<ann@example.org>"),
    BAD("MAIL FROM:"),
    BAD("MAIL FROM"),
    OK("RCPT TO:<bob@example.net>", "bob@example.net"),
    OK("rcpt to: <bob@example.net>", "bob@example.net"),
    /* the null path and postmaster */
    OK("MAIL FROM:<>", ""),
    BAD("RCPT TO:<>"),
    OK("RCPT TO:<postmaster>", "postmaster"),
    OK("RCPT TO:<PostMaster>", "PostMaster"),
    OK("RCPT TO:<Postmaster@example.org>", "Postmaster@example.org"),
    BAD("MAIL FROM:<postmaster>"),
    BAD("RCPT TO:<postmasters>"),
    BAD("RCPT TO:<\"postmaster\">"),
    BAD("RCPT TO:<ann>"),
    /* missing or broken brackets, trailing garbage */
    BAD("MAIL FROM:ann@example.org"),
    BAD("MAIL FROM:<ann@example.org"),
    BAD("MAIL FROM:ann@example.org>"),
    BAD("MAIL FROM:<<ann@example.org>>"),
    BAD("MAIL FROM:<ann@example.org>>"),
    BAD("MAIL FROM:<ann@example.org>x"),
    BAD("MAIL FROM:<ann@example.org>SIZE=1"),
    BAD("MAIL FROM:<ann@example.org> <bob@example.org>"),
    BAD("MAIL FROM:<>x"),
    BAD("MAIL FROM:< ann@example.org>"),
    BAD("MAIL FROM:<ann@example.org >"),
    OK("MAIL FROM:<ann@example.org> ", "ann@example.org"),
    /* dot-string local parts */
    OK("MAIL FROM:<a.b.c@example.org>", "a.b.c@example.org"),
    OK("MAIL FROM:<!#$%&'*+-/=?^_`{|}~@example.org>", "!#$%&'*+-/=?^_`{|}~@example.org"),
    BAD("MAIL FROM:<a..b@example.org>"),
    BAD("MAIL FROM:<.a@example.org>"),
    BAD("MAIL FROM:<a.@example.org>"),
    BAD("MAIL FROM:<a b@example.org>"),
    BAD("MAIL FROM:<a(b)@example.org>"),
    BAD("MAIL FROM:<a,b@example.org>"),
    BAD("MAIL FROM:<a\\b@example.org>"),
    BAD("MAIL FROM:<@example.org>"),
    BAD("MAIL FROM:<ann>"),
    BAD("MAIL FROM:<ann@>"),
    BAD("MAIL FROM:<ann@@example.org>"),
    BAD("MAIL FROM:<a@b@example.org>"),
    /* quoted local parts: '@', SP, '>' and quoted-pairs inside; the domain follows the
     * last '@' outside quotes */
    OK("MAIL FROM:<\"a@b\"@example.org>", "\"a@b\"@example.org"),
    OK("MAIL FROM:<\"a b\"@example.org>", "\"a b\"@example.org"),
    OK("MAIL FROM:<\"a>b\"@example.org>", "\"a>b\"@example.org"),
    OK("MAIL FROM:<\"a\\\"b\"@example.org>", "\"a\\\"b\"@example.org"),
    OK("MAIL FROM:<\"a\\\\\"@example.org>", "\"a\\\\\"@example.org"),
    OK("MAIL FROM:<\"\"@example.org>", "\"\"@example.org"),
    { "RCPT TO:<\"a@b>c\"@example.org> NOTIFY=NEVER", PARSE_OK, "\"a@b>c\"@example.org",
      "NOTIFY=NEVER", false },
    BAD("MAIL FROM:<\"a@b\"@>"),
    BAD("MAIL FROM:<\"a@b\">"),
    BAD("MAIL FROM:<\"ann@example.org>"),
    BAD("MAIL FROM:<\"a\"b@example.org>"),
    BAD("MAIL FROM:<a\"b\"@example.org>"),
    BAD("MAIL FROM:<\"a\\\"@example.org>"),
    BAD("MAIL FROM:<\"a\"@example.org\">"),
    BAD("MAIL FROM:<\"a\x7f\"@example.org>"),
    /* domains */
    OK("MAIL FROM:<a@localhost>", "a@localhost"),
    OK("MAIL FROM:<a@1example.org>", "a@1example.org"),
    OK("MAIL FROM:<a@x-y.example>", "a@x-y.example"),
    OK("MAIL FROM:<a@xn--bcher-kva.example>", "a@xn--bcher-kva.example"),
    BAD("MAIL FROM:<a@-example.org>"),
    BAD("MAIL FROM:<a@example-.org>"),
    BAD("MAIL FROM:<a@example..org>"),
    BAD("MAIL FROM:<a@.example.org>"),
    BAD("MAIL FROM:<a@example.org.>"),
    BAD("MAIL FROM:<a@exa_mple.org>"),
    BAD("MAIL FROM:<a@example.org]>"),
    /* address literals */
    OK("MAIL FROM:<a@[192.0.2.1]>", "a@[192.0.2.1]"),
    OK("MAIL FROM:<a@[0.0.0.0]>", "a@[0.0.0.0]"),
    OK("MAIL FROM:<a@[255.255.255.255]>", "a@[255.255.255.255]"),
    BAD("MAIL FROM:<a@[256.0.0.1]>"),
    BAD("MAIL FROM:<a@[1.2.3]>"),
    BAD("MAIL FROM:<a@[1.2.3.4.5]>"),
    BAD("MAIL FROM:<a@[1.2.3.]>"),
    BAD("MAIL FROM:<a@[1..3.4]>"),
    BAD("MAIL FROM:<a@[1.2.3.1234]>"),
    BAD("MAIL FROM:<a@[]>"),
    BAD("MAIL FROM:<a@[192.0.2.1>"),
    BAD("MAIL FROM:<a@192.0.2.1]>"),
    BAD("MAIL FROM:<a@[192.0.2.1]x>"),
    BAD("MAIL FROM:<a@[192.0.2.1].org>"),
    OK("MAIL FROM:<a@[IPv6:2001:db8::1]>", "a@[IPv6:2001:db8::1]"),
    OK("MAIL FROM:<a@[ipv6:::1]>", "a@[ipv6:::1]"),
    OK("MAIL FROM:<a@[IPv6:::]>", "a@[IPv6:::]"),
    OK("MAIL FROM:<a@[IPv6:1:2:3:4:5:6:7:8]>", "a@[IPv6:1:2:3:4:5:6:7:8]"),
    OK("MAIL FROM:<a@[IPv6:1:2:3:4:5:6::]>", "a@[IPv6:1:2:3:4:5:6::]"),
    OK("MAIL FROM:<a@[IPv6:ABCD:ef01::]>", "a@[IPv6:ABCD:ef01::]"),
    OK("MAIL FROM:<a@[IPv6:::ffff:192.0.2.1]>", "a@[IPv6:::ffff:192.0.2.1]"),
    OK("MAIL FROM:<a@[IPv6:1:2:3:4:5:6:192.0.2.1]>", "a@[IPv6:1:2:3:4:5:6:192.0.2.1]"),
    OK("MAIL FROM:<a@[IPv6:1:2:3:4::192.0.2.1]>", "a@[IPv6:1:2:3:4::192.0.2.1]"),
    BAD("MAIL FROM:<a@[IPv6:1:2:3:4:5::192.0.2.1]>"),
    BAD("MAIL FROM:<a@[IPv6:1:2:3:4:5:192.0.2.1]>"),
    BAD("MAIL FROM:<a@[IPv6:1:2:3:4:5:6:7]>"),
    BAD("MAIL FROM:<a@[IPv6:1:2:3:4:5:6:7:8:9]>"),
    BAD("MAIL FROM:<a@[IPv6:1:2:3:4:5:6:7::]>"), /* "::" stands for two groups or more */
    BAD("MAIL FROM:<a@[IPv6:1::2::3]>"),
    BAD("MAIL FROM:<a@[IPv6:12345::]>"),
    BAD("MAIL FROM:<a@[IPv6:g::]>"),
    BAD("MAIL FROM:<a@[IPv6::1]>"),
    BAD("MAIL FROM:<a@[IPv6:1:]>"),
    BAD("MAIL FROM:<a@[IPv6:1:::2]>"),
    BAD("MAIL FROM:<a@[IPv6:]>"),
    BAD("MAIL FROM:<a@[IPv6:::1.2.3]>"),
    BAD("MAIL FROM:<a@[IPv6:::1.2.3.4:5]>"),
    BAD("MAIL FROM:<a@[IPv6:2001:db8::1>"),
    BAD("MAIL FROM:<a@[x-tag:anything]>"), /* no General-address-literal tag exists */
    BAD("MAIL FROM:<a@[::1]>"),
    /* source routes: accepted, dropped */
    OK("MAIL FROM:<@a.example,@b.example:ann@c.example>", "ann@c.example"),
    OK("RCPT TO:<@a.example:bob@c.example>", "bob@c.example"),
    OK("RCPT TO:<@a.example:postmaster>", "postmaster"),
    BAD("MAIL FROM:<@a.example>"),
    BAD("MAIL FROM:<@a.example,ann@c.example>"),
    BAD("MAIL FROM:<@:ann@c.example>"),
    BAD("MAIL FROM:<@a.example,:ann@c.example>"),
    BAD("MAIL FROM:<@a.example:>"),
    BAD("MAIL FROM:<@[192.0.2.1]:ann@c.example>"),
    /* parameters */
    { "MAIL FROM:<a@b.example> SIZE=100", PARSE_OK, "a@b.example", "SIZE=100", false },
    { "MAIL FROM:<a@b.example>  SIZE=100   BODY=8BITMIME", PARSE_OK, "a@b.example",
      "SIZE=100   BODY=8BITMIME", false },
    { "MAIL FROM:<> AUTH=<>", PARSE_OK, "", "AUTH=<>", false },
    { "RCPT TO:<a@b.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a+40b.example", PARSE_OK,
      "a@b.example", "NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a+40b.example", false },
    { "MAIL FROM:<a@b.example> SMTPUTF8", PARSE_OK, "a@b.example", "SMTPUTF8", false },
    BAD("MAIL FROM:<a@b.example> SIZE="),
    BAD("MAIL FROM:<a@b.example> =1"),
    BAD("MAIL FROM:<a@b.example> -X"),
    BAD("MAIL FROM:<a@b.example> X_Y=1"),
    BAD("MAIL FROM:<a@b.example> X=a=b"),
    /* UTF-8 (RFC 6531): well-formed sequences only, and flagged */
    { "MAIL FROM:<j\xc3\xb6rg@example.org>", PARSE_OK, "j\xc3\xb6rg@example.org", "", true },
    { "RCPT TO:<a@b\xc3\xbc" "cher.example>", PARSE_OK, "a@b\xc3\xbc" "cher.example", "", true },
    { "MAIL FROM:<\"j\xc3\xb6 rg\"@example.org>", PARSE_OK, "\"j\xc3\xb6 rg\"@example.org", "",
      true },
    { "MAIL FROM:<\xe2\x82\xac@\xf0\x9f\x98\x80.example>", PARSE_OK,
      "\xe2\x82\xac@\xf0\x9f\x98\x80.example", "", true },
    { "MAIL FROM:<@b\xc3\xbc.example:a@c.example>", PARSE_OK, "a@c.example", "", false },
    { "MAIL FROM:<a@b.example> X=\xc3\xa9", PARSE_OK, "a@b.example", "X=\xc3\xa9", false },
    BAD("MAIL FROM:<\xff@example.org>"),
    BAD("MAIL FROM:<\x80@example.org>"),
    BAD("MAIL FROM:<\xc3@example.org>"),           /* truncated */
    BAD("MAIL FROM:<a\xc3>"),
    BAD("MAIL FROM:<\xc0\xc0@example.org>"),       /* overlong '@' */
    BAD("MAIL FROM:<\xc1\xbe@example.org>"),       /* overlong '>' */
    BAD("MAIL FROM:<\xe0\x80\xbe@example.org>"),   /* overlong '>' */
    BAD("MAIL FROM:<\xed\xa0\x80@example.org>"),   /* surrogate */
    BAD("MAIL FROM:<\xf4\x90\x80\x80@example.org>"), /* above U+10FFFF */
    BAD("MAIL FROM:<a@\xc3\x28.example>"),
    BAD("MAIL FROM:<\"\xff\"@example.org>"),
    BAD("MAIL FROM:<a@b.example> X=\xff"),
};

static void
addresses_follow_rfc5321_mailbox_syntax(void)
{
    size_t i;

    for (i = 0; i < sizeof(addr_cases) / sizeof(addr_cases[0]); i++) {
        const struct addr_case *c = &addr_cases[i];
        struct smtp_cmd         cmd;
        enum parse_rc           rc = command(c->in, &cmd);

        CHECK_EQ_INT(rc, c->rc);
        CHECK_EQ_INT(cmd.verb, c->in[0] == 'M' || c->in[0] == 'm' ? SMTP_VERB_MAIL
                                                                    : SMTP_VERB_RCPT);
        if (rc != c->rc)
            fprintf(stderr, "  address case \"%s\"\n", c->in);
        if (rc != PARSE_OK || c->rc != PARSE_OK)
            continue;
        CHECK_MEM(cmd.addr.p, cmd.addr.len, c->addr);
        CHECK_MEM(cmd.params.p, cmd.params.len, c->params);
        CHECK_EQ_INT(cmd.addr_utf8, c->utf8);
    }
}

/* A domain of exactly n octets: labels of up to label_max 'd's joined by dots. */
static void
make_domain(char *s, size_t n, size_t label_max)
{
    size_t i, run = 0;

    for (i = 0; i < n; i++) {
        bool dot = run == label_max && i + 1 < n;

        s[i] = dot ? '.' : 'd';
        run = dot ? 0 : run + 1;
    }
    s[n] = '\0';
}

/* "MAIL FROM:<" local "@" domain ">" with local and domain of the given lengths. */
static enum parse_rc
mail_from_of(size_t local_len, bool quoted, size_t domain_len, size_t label_max)
{
    char            line[1024], *p = line;
    struct smtp_cmd cmd;

    p += sprintf(p, "MAIL FROM:<");
    memset(p, 'l', local_len);
    if (quoted) {
        p[0] = '"';
        p[local_len - 1] = '"';
    }
    p += local_len;
    *p++ = '@';
    make_domain(p, domain_len, label_max);
    strcat(p, ">");
    return command(line, &cmd);
}

static void
mailbox_parts_are_bounded_as_rfc5321_4_5_3_1_says(void)
{
    /* local part: 64 octets, quotes included */
    CHECK_EQ_INT(mail_from_of(64, false, 11, 63), PARSE_OK);
    CHECK_EQ_INT(mail_from_of(65, false, 11, 63), PARSE_BAD_SYNTAX);
    CHECK_EQ_INT(mail_from_of(64, true, 11, 63), PARSE_OK);
    CHECK_EQ_INT(mail_from_of(65, true, 11, 63), PARSE_BAD_SYNTAX);
    /* path: 256 octets with "<", "@" and ">": 64 + 1 + 189 + 2 */
    CHECK_EQ_INT(mail_from_of(64, false, 189, 63), PARSE_OK);
    CHECK_EQ_INT(mail_from_of(64, false, 190, 63), PARSE_BAD_SYNTAX);
    CHECK_EQ_INT(mail_from_of(1, false, 252, 63), PARSE_OK);
    CHECK_EQ_INT(mail_from_of(1, false, 253, 63), PARSE_BAD_SYNTAX);
    /* domain: 255 octets (so never reached before the path limit), labels 63 */
    CHECK_EQ_INT(mail_from_of(1, false, 256, 63), PARSE_BAD_SYNTAX);
    CHECK_EQ_INT(mail_from_of(1, false, 63, 63), PARSE_OK);
    CHECK_EQ_INT(mail_from_of(1, false, 64, 64), PARSE_BAD_SYNTAX);
    CHECK_EQ_INT(mail_from_of(1, false, 130, 64), PARSE_BAD_SYNTAX);
}

static void
a_source_route_counts_towards_the_path_limit(void)
{
    char            line[1024], domain[256];
    struct smtp_cmd cmd;

    make_domain(domain, 241, 63);
    snprintf(line, sizeof(line), "RCPT TO:<@%s:a@b.example>", domain); /* 256 octets */
    CHECK_EQ_INT(command(line, &cmd), PARSE_OK);
    CHECK_MEM(cmd.addr.p, cmd.addr.len, "a@b.example");
    make_domain(domain, 242, 63);
    snprintf(line, sizeof(line), "RCPT TO:<@%s:a@b.example>", domain); /* 257 octets */
    CHECK_EQ_INT(command(line, &cmd), PARSE_BAD_SYNTAX);
}

/* ------------------------------------------------------------- parameters */

struct param_case {
    const char *in;
    const char *want; /* "key=value;" per parameter, "key;" without a value */
    bool        bad;
};

static const struct param_case param_cases[] = {
    { "", "", false },
    { "   ", "", false },
    { "SIZE=1000", "SIZE=1000;", false },
    { "SIZE=1000 BODY=8BITMIME", "SIZE=1000;BODY=8BITMIME;", false },
    { "  SIZE=1   SMTPUTF8  ", "SIZE=1;SMTPUTF8;", false },
    { "X-Y-1=a<b>c", "X-Y-1=a<b>c;", false },
    { "9X=!~", "9X=!~;", false },
    { "ORCPT=rfc822;a+2Bb@c", "ORCPT=rfc822;a+2Bb@c;", false },
    { "K=\xc3\xa9t\xc3\xa9", "K=\xc3\xa9t\xc3\xa9;", false },
    { "A B=1 C", "A;B=1;C;", false },
    { "A=", "", true },
    { "A =1", "A;", true },
    { "=1", "", true },
    { "-A=1", "", true },
    { "A_B=1", "", true },
    { "A.B", "", true },
    { "A=b=c", "", true },
    { "OK=1 A=\x01", "OK=1;", true },
    { "A=b\tc", "", true },
    { "A=\x7f", "", true },
    { "A=\xff", "", true },
    { "A=\xc3", "", true },
    { "A=\"b c\"", "A=\"b;", true }, /* no quoting: '"' is a value octet, c" is not a key */
    { "A\xc3\xa9=1", "", true }, /* keywords stay ASCII */
};

static void
esmtp_parameters_are_keywords_with_optional_printable_values(void)
{
    size_t i;

    for (i = 0; i < sizeof(param_cases) / sizeof(param_cases[0]); i++) {
        const struct param_case *c = &param_cases[i];
        struct smtp_str          cur = { c->in, strlen(c->in) }, key, value;
        char                     got[256] = "";
        bool                     bad = true;

        while (smtp_parse_param_next(&cur, &key, &value, &bad)) {
            CHECK(inside(key, c->in, strlen(c->in)));
            CHECK(inside(value, c->in, strlen(c->in)));
            snprintf(got + strlen(got), sizeof(got) - strlen(got), "%.*s%s%.*s;",
                     (int)key.len, key.p, value.len ? "=" : "", (int)value.len, value.p);
        }
        CHECK_MEM(got, strlen(got), c->want);
        CHECK_EQ_INT(bad, c->bad);
        if (bad != c->bad)
            fprintf(stderr, "  parameter case \"%s\"\n", c->in);
    }
}

static void
decimal_parsing_refuses_signs_spaces_and_overflow(void)
{
    static const struct {
        const char        *in;
        bool               ok;
        unsigned long long v;
    } cases[] = {
        { "0", true, 0 },
        { "00042", true, 42 },
        { "18446744073709551615", true, 18446744073709551615ull },
        { "18446744073709551616", false, 0 },
        { "28446744073709551615", false, 0 },
        { "", false, 0 },
        { "-1", false, 0 },
        { "+1", false, 0 },
        { " 1", false, 0 },
        { "1 ", false, 0 },
        { "1a", false, 0 },
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        unsigned long long v = 7;
        bool ok = smtp_parse_ull((struct smtp_str){ cases[i].in, strlen(cases[i].in) }, &v);

        CHECK_EQ_INT(ok, cases[i].ok);
        CHECK(v == (ok ? cases[i].v : 7)); /* untouched on failure */
    }
}

static void
word_comparison_ignores_ascii_case_only(void)
{
    CHECK(smtp_str_ieq((struct smtp_str){ "SiZe", 4 }, "size"));
    CHECK(smtp_str_ieq((struct smtp_str){ "", 0 }, ""));
    CHECK(!smtp_str_ieq((struct smtp_str){ "SIZ", 3 }, "size"));
    CHECK(!smtp_str_ieq((struct smtp_str){ "SIZES", 5 }, "size"));
    CHECK(!smtp_str_ieq((struct smtp_str){ "SI\0E", 4 }, "si"));
    CHECK(!smtp_str_ieq((struct smtp_str){ "\xc3\x89", 2 }, "\xc3\xa9"));
    CHECK(!smtp_str_ieq((struct smtp_str){ "[", 1 }, "{")); /* 0x5b vs 0x7b: not letters */
}

int
main(void)
{
    RUN(only_crlf_ends_a_line);
    RUN(every_line_case_is_decided_the_same_on_any_prefix);
    RUN(bare_lf_never_ends_a_command);
    RUN(auth_lines_get_12288_octets_and_others_512);
    RUN(a_bare_cr_with_its_lf_past_the_limit_is_too_long);
    RUN(skip_line_discards_through_the_next_lf);
    RUN(line_framing_is_the_same_however_the_input_is_cut);
    RUN(long_lines_are_judged_the_same_when_fed_byte_by_byte);
    RUN(every_verb_is_recognised_in_any_case_with_its_argument_rules);
    RUN(bdat_takes_a_decimal_size_that_fits_and_an_optional_last);
    RUN(addresses_follow_rfc5321_mailbox_syntax);
    RUN(mailbox_parts_are_bounded_as_rfc5321_4_5_3_1_says);
    RUN(a_source_route_counts_towards_the_path_limit);
    RUN(esmtp_parameters_are_keywords_with_optional_printable_values);
    RUN(decimal_parsing_refuses_signs_spaces_and_overflow);
    RUN(word_comparison_ignores_ascii_case_only);
    return check_summary();
}
