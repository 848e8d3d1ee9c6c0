/* tests/unit/test_smtp_replies.c: the table of fixed SMTP replies (core/proto/smtp_replies.c)
 * is complete and well-formed, and docs/smtp.md's "Reply table" is exactly what the table
 * generates. After changing the table, regenerate the docs with
 *     SLUICE_REGEN_DOCS=1 build/test_smtp_replies
 * and review the diff. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "testio.h"
#include "proto/smtp_replies.h"
#include "smtp/smtp_reply.h" /* smtp_reply_is_enhanced() */

#define DOCS_PATH  SLUICE_SOURCE_DIR "/docs/smtp.md"
#define BEGIN_MARK "<!-- reply table: generated from core/proto/smtp_replies.c -->\n"
#define END_MARK   "<!-- end of reply table -->\n"

/* The Markdown table the docs must hold between the marks. */
static void
generate(char *out, size_t len)
{
    size_t n = (size_t)snprintf(out, len, "| name | reply |\n|---|---|\n");

    for (int i = 0; i < SMTP_R__COUNT && n < len; i++) {
        const struct smtp_reply_entry *r = &smtp_replies_table[i];

        n += (size_t)snprintf(out + n, len - n, "| `%s` | `%d%s%s %s` |\n", r->name, r->code,
                              r->enhanced ? " " : "", r->enhanced ? r->enhanced : "", r->text);
    }
    CHECK(n < len);
}

static void
every_entry_is_stored_under_its_own_id(void)
{
    for (int i = 0; i < SMTP_R__COUNT; i++) {
        CHECK(smtp_replies_table[i].name != NULL); /* NULL: an id without an entry */
        CHECK_EQ_INT(smtp_replies_table[i].id, i);
        CHECK(smtp_replies_get((enum smtp_reply_id)i) == &smtp_replies_table[i]);
    }
}

static void
every_enhanced_code_is_valid_and_of_the_replys_class(void)
{
    for (int i = 0; i < SMTP_R__COUNT; i++) {
        const struct smtp_reply_entry *r = &smtp_replies_table[i];

        CHECK(r->code >= 200 && r->code <= 599);
        CHECK(r->text != NULL && r->text[0] != '\0' && strpbrk(r->text, "\r\n") == NULL);
        if (r->enhanced == NULL) { /* RFC 2034 section 3: only the intermediate 354 */
            CHECK_EQ_INT(r->code, 354);
            continue;
        }
        CHECK(smtp_reply_is_enhanced(r->enhanced));
        CHECK_EQ_INT(r->enhanced[0] - '0', r->code / 100);
    }
}

static void
no_two_entries_are_the_same_reply(void)
{
    for (int i = 0; i < SMTP_R__COUNT; i++)
        for (int j = i + 1; j < SMTP_R__COUNT; j++)
            CHECK(smtp_replies_table[i].code != smtp_replies_table[j].code ||
                  strcmp(smtp_replies_table[i].text, smtp_replies_table[j].text) != 0);
}

static void
docs_smtp_md_lists_exactly_the_reply_table(void)
{
    static char want[32768];

    generate(want, sizeof(want));
    CHECK(test_docs_section(DOCS_PATH, BEGIN_MARK, END_MARK, want) == 0);
}

int
main(void)
{
    RUN(every_entry_is_stored_under_its_own_id);
    RUN(every_enhanced_code_is_valid_and_of_the_replys_class);
    RUN(no_two_entries_are_the_same_reply);
    RUN(docs_smtp_md_lists_exactly_the_reply_table);
    return check_summary();
}
