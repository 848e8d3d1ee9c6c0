/* tests/unit/test_message.c: the header index of core/proto/message.c. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "proto/message.h"

static char unfolded[4096];

/* The value of the first field named name, unfolded, or NULL. */
static const char *
value_of(const char *msg, const char *name)
{
    struct message_header h;
    size_t                pos = 0, n;

    if (!message_header_find(msg, strlen(msg), &pos, name, strlen(name), &h))
        return NULL;
    n = message_header_unfold(msg, &h, unfolded);
    unfolded[n] = '\0';
    return unfolded;
}

static void
a_folded_header_is_unfolded_with_its_whitespace_kept(void)
{
    const char *msg = "Subject: one\r\n\ttwo\r\n  three\r\nTo: x\r\n\r\nbody\r\n";

    CHECK(strcmp(value_of(msg, "Subject"), "one\ttwo  three") == 0);
    CHECK(strcmp(value_of(msg, "To"), "x") == 0);
}

static void
blanks_after_the_colon_are_dropped_even_across_a_fold(void)
{
    CHECK(strcmp(value_of("A:   x y \r\n\r\n", "A"), "x y ") == 0);
    CHECK(strcmp(value_of("A:\r\n\tfolded\r\n\r\n", "A"), "folded") == 0);
    CHECK(strcmp(value_of("A:\r\n\r\n", "A"), "") == 0);
}

static void
names_match_ascii_case_insensitively(void)
{
    const char *msg = "x-MAILER: m\r\n\r\n";

    CHECK(strcmp(value_of(msg, "X-Mailer"), "m") == 0);
    CHECK(value_of(msg, "X-Mail") == NULL);
    CHECK(value_of(msg, "X-Mailers") == NULL);
}

static void
the_header_block_ends_at_the_first_empty_line(void)
{
    const char *msg = "A: 1\r\n\r\nB: 2\r\n";

    CHECK(value_of(msg, "B") == NULL);
    CHECK_EQ_INT(message_body_offset(msg, strlen(msg)), 8);
}

static void
a_message_without_a_body_or_blank_line_is_all_header(void)
{
    const char *msg = "A: 1\r\nB: 2\r\n";
    const char *unterminated = "A: 1\r\nB: 2";

    CHECK_EQ_INT(message_body_offset(msg, strlen(msg)), strlen(msg));
    CHECK(strcmp(value_of(msg, "B"), "2") == 0);
    CHECK(strcmp(value_of(unterminated, "B"), "2") == 0);
    CHECK_EQ_INT(message_body_offset("", 0), 0);
    CHECK_EQ_INT(message_body_offset("A: 1\r\n\r\n", 8), 8);
    CHECK_EQ_INT(message_body_offset("\r\nbody", 6), 2);
}

static void
malformed_lines_are_skipped_with_their_continuations(void)
{
    const char *msg = " stray\r\nno colon here\r\n\tcont: x\r\nBad Name: y\r\n: empty\r\n"
                      "Good: z\r\n\r\n";
    struct message_header h[8];

    CHECK_EQ_INT(message_header_index(msg, strlen(msg), h, 8), 1);
    CHECK_MEM(msg + h[0].start, h[0].name_len, "Good");
    CHECK(value_of(msg, "cont") == NULL);
}

static void
the_index_lists_every_field_in_order_with_its_extent(void)
{
    const char *msg = "A: 1\r\nB: 2\r\n x\r\nA: 3\r\n\r\nA: 4\r\n";
    struct message_header h[2];

    CHECK_EQ_INT(message_header_index(msg, strlen(msg), h, 2), 3);
    CHECK_MEM(msg + h[0].start, h[0].end - h[0].start, "A: 1\r\n");
    CHECK_MEM(msg + h[1].start, h[1].end - h[1].start, "B: 2\r\n x\r\n");
}

static void
find_goes_on_from_where_it_stopped(void)
{
    const char *msg = "A: 1\r\nB: 2\r\na: 3\r\n\r\n";
    struct message_header h;
    size_t                pos = 0, n;

    CHECK(message_header_find(msg, strlen(msg), &pos, "A", 1, &h));
    CHECK(message_header_find(msg, strlen(msg), &pos, "A", 1, &h));
    n = message_header_unfold(msg, &h, unfolded);
    CHECK_MEM(unfolded, n, "3");
    CHECK(!message_header_find(msg, strlen(msg), &pos, "A", 1, &h));
}

/* RFC 5322 section 4.5.8: "From :" is the obsolete form of "From:", and readers show it
 * as the From: field; a lookup that skipped it would let a second From: past a check. */
static void
white_space_before_the_colon_is_obsolete_syntax_for_the_same_field(void)
{
    static const struct {
        const char *msg, *value;
    } cases[] = {
        { "From : a@x\r\n\r\n", "a@x" },
        { "From\t:\tb@x\r\n\r\n", "b@x" },
        { "From \t  :c@x\r\n\r\n", "c@x" },
        { "FROM :\r\n d@x\r\n\r\n", "d@x" },
        { "Subject: s\r\nfrom  : e@x\r\n\r\n", "e@x" },
    };
    struct message_header h;
    size_t                i, pos;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *v = value_of(cases[i].msg, "From");

        CHECK(v != NULL && strcmp(v, cases[i].value) == 0);
        pos = 0;
        CHECK(message_header_find(cases[i].msg, strlen(cases[i].msg), &pos, "from", 4, &h));
        CHECK_EQ_INT(h.name_len, 4); /* the name is "From", without the blanks */
        CHECK(cases[i].msg[h.value - 1] == ':');
    }
}

static void
a_name_with_white_space_inside_or_none_before_the_colon_is_not_a_field(void)
{
    const char *msg = "From x: a@x\r\n : b@x\r\n\t: c@x\r\n: d@x\r\nFr om: e@x\r\n\r\n";
    struct message_header h[8];

    CHECK_EQ_INT(message_header_index(msg, strlen(msg), h, 8), 0);
    CHECK(value_of(msg, "From") == NULL);
}

/* How many fields named name, and the unfolded value of the last one. */
static size_t
count_of(const char *msg, const char *name)
{
    struct message_header h;
    size_t                pos = 0, n = 0, len;

    while (message_header_find(msg, strlen(msg), &pos, name, strlen(name), &h)) {
        len = message_header_unfold(msg, &h, unfolded);
        unfolded[len] = '\0';
        n++;
    }
    return n;
}

static void
every_from_field_is_counted_whatever_its_case_form_or_folding(void)
{
    CHECK_EQ_INT(count_of("From: a@x\r\nSubject: s\r\n\r\nFrom: b@x\r\n", "From"), 1);
    CHECK_EQ_INT(count_of("From: a@x\r\nfrom: b@x\r\n\r\n", "From"), 2);
    CHECK_EQ_INT(count_of("From: a@x\r\nFROM : b@x\r\n\r\n", "From"), 2);
    CHECK(strcmp(unfolded, "b@x") == 0);
    CHECK_EQ_INT(count_of("fRoM\t:\r\n\tAlice\r\n <a@x>\r\nX: 1\r\nFrom:b@x\r\n\r\n",
                          "From"), 2);
    CHECK_EQ_INT(count_of("From: a@x\r\nno colon\r\nFrom: b@x\r\nFrom: c@x", "From"), 3);
    CHECK(strcmp(unfolded, "c@x") == 0); /* a last line without CRLF (BDAT) counts */
    /* a folded line is part of the field before it, never a field of its own */
    CHECK_EQ_INT(count_of("Subject: s\r\n From: b@x\r\n\r\n", "From"), 0);
    CHECK_EQ_INT(count_of("Resent-From: a@x\r\nFrom-X: b@x\r\n\r\n", "From"), 0);
}

static void
a_folded_from_unfolds_to_its_display_name_and_address(void)
{
    const char *msg = "From:\r\n \"Alice\r\n A.\" (the boss)\r\n\t<alice@example.org>\r\n\r\n";

    CHECK(strcmp(value_of(msg, "From"), "\"Alice A.\" (the boss)\t<alice@example.org>") == 0);
}

/* Every prefix of a message parses without reading past its end (ASan watches). */
static void
every_cut_of_a_message_stays_in_bounds(void)
{
    const char *msg = "A: 1\r\nB \t:\r\n\t2\r\nno colon\r\nC  \r\n\r\nbody\r\n";
    struct message_header h[8];
    size_t                len, i, n;

    for (len = 0; len <= strlen(msg); len++) {
        char *copy = malloc(len + 1);

        memcpy(copy, msg, len);
        n = message_header_index(copy, len, h, 8);
        CHECK(n <= 2);
        for (i = 0; i < n; i++)
            CHECK(h[i].end <= len && h[i].value <= h[i].end &&
                  h[i].start + h[i].name_len < h[i].value);
        CHECK(message_body_offset(copy, len) <= len);
        free(copy);
    }
}

int
main(void)
{
    RUN(a_folded_header_is_unfolded_with_its_whitespace_kept);
    RUN(blanks_after_the_colon_are_dropped_even_across_a_fold);
    RUN(names_match_ascii_case_insensitively);
    RUN(the_header_block_ends_at_the_first_empty_line);
    RUN(a_message_without_a_body_or_blank_line_is_all_header);
    RUN(malformed_lines_are_skipped_with_their_continuations);
    RUN(the_index_lists_every_field_in_order_with_its_extent);
    RUN(find_goes_on_from_where_it_stopped);
    RUN(white_space_before_the_colon_is_obsolete_syntax_for_the_same_field);
    RUN(a_name_with_white_space_inside_or_none_before_the_colon_is_not_a_field);
    RUN(every_from_field_is_counted_whatever_its_case_form_or_folding);
    RUN(a_folded_from_unfolds_to_its_display_name_and_address);
    RUN(every_cut_of_a_message_stays_in_bounds);
    return check_summary();
}
