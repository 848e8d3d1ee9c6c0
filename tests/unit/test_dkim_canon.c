/* tests/unit/test_dkim_canon.c: relaxed canonicalisation and header choice of
 * core/proto/dkim_canon.c, against RFC 6376 section 3.4.6's example and the rules of
 * sections 3.4.2, 3.4.4 and 5.4.2. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "proto/dkim_canon.h"

struct sink {
    char   out[4096];
    size_t n;
    size_t calls;
};

static void
sink_cb(void *arg, const char *p, size_t n)
{
    struct sink *s = arg;

    if (s->n + n <= sizeof(s->out))
        memcpy(s->out + s->n, p, n);
    s->n += n;
    s->calls++;
}

/* The body of text in relaxed form, fed in pieces of at most step octets. */
static struct sink
body_of(const char *text, size_t step)
{
    struct sink            s = {0};
    struct dkim_canon_body b;
    size_t                 len = strlen(text), i, k;

    dkim_canon_body_init(&b);
    for (i = 0; i < len; i += k) {
        k = len - i < step ? len - i : step;
        dkim_canon_body_feed(&b, text + i, k, sink_cb, &s);
    }
    dkim_canon_body_finish(&b, sink_cb, &s);
    return s;
}

/* The header fields of msg in relaxed form, each with CRLF, concatenated. */
static const char *
headers_of(const char *msg)
{
    static char           out[4096];
    struct message_header h;
    size_t                pos = 0, o = 0;

    while (message_header_next(msg, strlen(msg), &pos, &h))
        o += dkim_canon_header(msg + h.start, h.name_len, msg + h.value, h.end - h.value, true,
                               out + o);
    out[o] = '\0';
    return out;
}

static const char rfc_example[] = "A: X\r\n"
                                  "B : Y\t\r\n"
                                  "\tZ  \r\n"
                                  "\r\n"
                                  " C \r\n"
                                  "D \t E\r\n"
                                  "\r\n"
                                  "\r\n";

static void
the_rfc_6376_example_headers_are_relaxed_as_section_3_4_6_shows(void)
{
    CHECK(strcmp(headers_of(rfc_example), "a:X\r\nb:Y Z\r\n") == 0);
}

static void
the_rfc_6376_example_body_is_relaxed_as_section_3_4_6_shows(void)
{
    const char *body = strstr(rfc_example, "\r\n\r\n") + 4;
    struct sink s = body_of(body, 4096);

    CHECK_MEM(s.out, s.n, " C\r\nD E\r\n");
}

static void
every_cut_of_the_body_gives_the_same_octets(void)
{
    const char *bodies[] = {
        " C \r\nD \t E\r\n\r\n\r\n", "a\rb\r\n\r\nc  \r\n \r\n\t\r\n", "x\r", "  \r\n\r\n",
        "line\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\nlast", "\r\r\n", "",
    };
    size_t i, step;

    for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        struct sink whole = body_of(bodies[i], 4096);

        for (step = 1; step < 8; step++) {
            struct sink cut = body_of(bodies[i], step);

            CHECK(cut.n == whole.n && memcmp(cut.out, whole.out, whole.n) == 0);
        }
    }
}

static void
an_empty_body_or_one_of_empty_lines_canonicalises_to_nothing(void)
{
    CHECK_EQ_INT(body_of("", 10).n, 0);
    CHECK_EQ_INT(body_of("\r\n\r\n\r\n", 10).n, 0);
    CHECK_EQ_INT(body_of(" \t \r\n\r\n", 10).n, 0); /* a line of blanks is empty once relaxed */
}

static void
a_last_line_without_crlf_gets_one_and_trailing_blanks_go(void)
{
    struct sink s = body_of("one\r\ntwo  ", 3);

    CHECK_MEM(s.out, s.n, "one\r\ntwo\r\n");
    s = body_of("a\r\n\r\n\r\nb\r\n\r\n", 2); /* empty lines inside stay */
    CHECK_MEM(s.out, s.n, "a\r\n\r\n\r\nb\r\n");
}

static void
leading_blanks_of_a_body_line_become_one_space(void)
{
    struct sink s = body_of("\t\t x\r\n", 100);

    CHECK_MEM(s.out, s.n, " x\r\n");
}

static void
a_cr_without_lf_is_content_not_a_line_end(void)
{
    struct sink s = body_of("a\rb\r\n", 1);

    CHECK_MEM(s.out, s.n, "a\rb\r\n");
}

static void
a_header_value_loses_leading_and_trailing_blanks_across_folds(void)
{
    char   out[128];
    size_t n = dkim_canon_header("Subject", 7, " \r\n\t hello \r\n   world\t\r\n", 24, false, out);

    CHECK_MEM(out, n, "subject:hello world");
    n = dkim_canon_header("X-Empty", 7, "   \r\n", 5, true, out);
    CHECK_MEM(out, n, "x-empty:\r\n");
}

static void
the_default_set_signs_from_subject_and_prefixes_but_not_received(void)
{
    CHECK(dkim_canon_is_signed("From", 4, NULL));
    CHECK(dkim_canon_is_signed("SUBJECT", 7, NULL));
    CHECK(dkim_canon_is_signed("List-Unsubscribe", 16, NULL));
    CHECK(dkim_canon_is_signed("Resent-From", 11, NULL));
    CHECK(dkim_canon_is_signed("Content-Type", 12, NULL));
    CHECK(!dkim_canon_is_signed("Received", 8, NULL));
    CHECK(!dkim_canon_is_signed("X-Mailer", 8, NULL));
    CHECK(!dkim_canon_is_signed("List", 4, NULL)); /* "list-*" needs the dash */
}

static void
a_configured_set_replaces_the_default(void)
{
    const char *const names[] = {"from", "x-app-*", NULL};

    CHECK(dkim_canon_is_signed("X-App-Id", 8, names));
    CHECK(!dkim_canon_is_signed("Subject", 7, names));
}

static void
h_names_pick_fields_bottom_up_and_an_extra_one_picks_none(void)
{
    const char            msg[] = "To: a\r\nFrom: x\r\nTo: b\r\n\r\n";
    struct message_header idx[8];
    bool                  used[8] = {false};
    size_t                n = message_header_index(msg, strlen(msg), idx, 8);

    CHECK_EQ_INT(n, 3);
    CHECK_EQ_INT(dkim_canon_pick(msg, idx, n, used, "to", 2), 2);
    CHECK_EQ_INT(dkim_canon_pick(msg, idx, n, used, "TO", 2), 0);
    CHECK_EQ_INT(dkim_canon_pick(msg, idx, n, used, "to", 2), -1);
    CHECK_EQ_INT(dkim_canon_pick(msg, idx, n, used, "from", 4), 1);
    CHECK_EQ_INT(dkim_canon_pick(msg, idx, n, used, "from", 4), -1); /* oversigned */
}

int
main(void)
{
    RUN(the_rfc_6376_example_headers_are_relaxed_as_section_3_4_6_shows);
    RUN(the_rfc_6376_example_body_is_relaxed_as_section_3_4_6_shows);
    RUN(every_cut_of_the_body_gives_the_same_octets);
    RUN(an_empty_body_or_one_of_empty_lines_canonicalises_to_nothing);
    RUN(a_last_line_without_crlf_gets_one_and_trailing_blanks_go);
    RUN(leading_blanks_of_a_body_line_become_one_space);
    RUN(a_cr_without_lf_is_content_not_a_line_end);
    RUN(a_header_value_loses_leading_and_trailing_blanks_across_folds);
    RUN(the_default_set_signs_from_subject_and_prefixes_but_not_received);
    RUN(a_configured_set_replaces_the_default);
    RUN(h_names_pick_fields_bottom_up_and_an_extra_one_picks_none);
    return check_summary();
}
