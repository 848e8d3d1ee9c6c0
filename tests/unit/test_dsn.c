/* tests/unit/test_dsn.c: core/proto/dsn.c: xtext (RFC 3461 section 4), RET, ENVID, NOTIFY
 * and ORCPT values (sections 4.1-4.4, RFC 6533 for utf-8 ORCPTs), every rule and its limit.
 * Every value is also checked cut at every byte: no prefix may read past its end. */
#include "check.h"
#include "proto/dsn.h"

#include <stdlib.h>

static struct smtp_str
str(const char *s)
{
    return (struct smtp_str){s, strlen(s)};
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

static void
xtext_accepts_xchars_and_upper_case_hexchars(void)
{
    CHECK(dsn_xtext_is_valid(str("ann@example.org"), false, true));
    CHECK(dsn_xtext_is_valid(str("a+2Bb+3Dc"), false, true));  /* '+' and '=' escaped */
    CHECK(dsn_xtext_is_valid(str("+20"), false, true));         /* space is printable */
    CHECK(dsn_xtext_is_valid(str(""), false, true));
    CHECK(!dsn_xtext_is_valid(str("a+2b"), false, true));       /* lower-case hex */
    CHECK(!dsn_xtext_is_valid(str("a+2"), false, true));        /* cut hexchar */
    CHECK(!dsn_xtext_is_valid(str("a+"), false, true));
    CHECK(!dsn_xtext_is_valid(str("a+G0"), false, true));
    CHECK(!dsn_xtext_is_valid(str("a=b"), false, true));        /* '=' must be escaped */
    CHECK(!dsn_xtext_is_valid(str("a b"), false, true));
    CHECK(!dsn_xtext_is_valid(str("a\x7f"), false, true));
    CHECK(!dsn_xtext_is_valid(str("\xc3\xa4"), false, true));   /* UTF-8 needs utf8 */
    CHECK(dsn_xtext_is_valid(str("\xc3\xa4"), true, true));
    CHECK(!dsn_xtext_is_valid(str("\xc3"), true, true));        /* cut sequence */
    CHECK(!dsn_xtext_is_valid(str("\xc0\x80"), true, true));    /* overlong */
}

static void
xtext_hexchars_must_decode_to_printable_ascii_when_asked(void)
{
    CHECK(!dsn_xtext_is_valid(str("a+0Db"), false, true));     /* CR */
    CHECK(!dsn_xtext_is_valid(str("a+00"), false, true));      /* NUL */
    CHECK(!dsn_xtext_is_valid(str("+7F"), false, true));
    CHECK(!dsn_xtext_is_valid(str("+C3+A4"), false, true));
    CHECK(dsn_xtext_is_valid(str("a+0Db"), false, false));     /* plain xtext allows it */
}

static void
xtext_decodes_hexchars_and_keeps_the_rest(void)
{
    char   out[64];
    size_t n = dsn_xtext_decode(str("ann+2Bx+3D1@example.org"), out);

    CHECK_MEM(out, n, "ann+x=1@example.org");
    n = dsn_xtext_decode(str("+41+42"), out);
    CHECK_MEM(out, n, "AB");
    n = dsn_xtext_decode(str(""), out);
    CHECK_EQ_INT(n, 0);
}

static void
ret_is_full_or_hdrs_in_any_case(void)
{
    enum dsn_ret r = DSN_RET_NONE;

    CHECK_EQ_INT(dsn_parse_ret(str("FULL"), &r), DSN_OK);
    CHECK_EQ_INT(r, DSN_RET_FULL);
    CHECK_EQ_INT(dsn_parse_ret(str("hdrs"), &r), DSN_OK);
    CHECK_EQ_INT(r, DSN_RET_HDRS);
    CHECK_EQ_INT(dsn_parse_ret(str(""), &r), DSN_BAD_RET);
    CHECK_EQ_INT(dsn_parse_ret(str("FULLY"), &r), DSN_BAD_RET);
    CHECK_EQ_INT(dsn_parse_ret(str("HDR"), &r), DSN_BAD_RET);
    CHECK_EQ_INT(dsn_parse_ret(str("NONE"), &r), DSN_BAD_RET);
}

static void
envid_is_printable_xtext_of_1_to_100_characters(void)
{
    char *at_limit = repeat('x', DSN_ENVID_MAX);
    char *over = repeat('x', DSN_ENVID_MAX + 1);

    CHECK_EQ_INT(dsn_parse_envid(str("QQ314159")), DSN_OK);
    CHECK_EQ_INT(dsn_parse_envid(str("id+2B1")), DSN_OK);
    CHECK_EQ_INT(dsn_parse_envid(str(at_limit)), DSN_OK);
    CHECK_EQ_INT(dsn_parse_envid(str(over)), DSN_BAD_ENVID);
    CHECK_EQ_INT(dsn_parse_envid(str("")), DSN_BAD_ENVID);
    CHECK_EQ_INT(dsn_parse_envid(str("id+0A")), DSN_BAD_ENVID);  /* decodes to LF */
    CHECK_EQ_INT(dsn_parse_envid(str("id+zz")), DSN_BAD_ENVID);
    CHECK_EQ_INT(dsn_parse_envid(str("id\xc3\xa4")), DSN_BAD_ENVID);
    free(at_limit);
    free(over);
}

static void
notify_is_never_alone_or_a_list_of_the_three(void)
{
    unsigned m = 0;

    CHECK_EQ_INT(dsn_parse_notify(str("NEVER"), &m), DSN_OK);
    CHECK_EQ_INT(m, DSN_NOTIFY_NEVER);
    CHECK_EQ_INT(dsn_parse_notify(str("SUCCESS"), &m), DSN_OK);
    CHECK_EQ_INT(m, DSN_NOTIFY_SUCCESS);
    CHECK_EQ_INT(dsn_parse_notify(str("success,Failure,DELAY"), &m), DSN_OK);
    CHECK_EQ_INT(m, DSN_NOTIFY_SUCCESS | DSN_NOTIFY_FAILURE | DSN_NOTIFY_DELAY);
    CHECK_EQ_INT(dsn_parse_notify(str("FAILURE,FAILURE"), &m), DSN_OK); /* grammar allows */
    CHECK_EQ_INT(m, DSN_NOTIFY_FAILURE);
}

static void
notify_refuses_never_combined_unknown_words_and_empty_elements(void)
{
    unsigned m;

    CHECK_EQ_INT(dsn_parse_notify(str("NEVER,SUCCESS"), &m), DSN_NOTIFY_NEVER_MIXED);
    CHECK_EQ_INT(dsn_parse_notify(str("DELAY,NEVER"), &m), DSN_NOTIFY_NEVER_MIXED);
    CHECK_EQ_INT(dsn_parse_notify(str("NEVER,NEVER"), &m), DSN_NOTIFY_NEVER_MIXED);
    CHECK_EQ_INT(dsn_parse_notify(str("ALWAYS"), &m), DSN_BAD_NOTIFY);
    CHECK_EQ_INT(dsn_parse_notify(str("SUCCESS,RELAY"), &m), DSN_BAD_NOTIFY);
    CHECK_EQ_INT(dsn_parse_notify(str(""), &m), DSN_BAD_NOTIFY);
    CHECK_EQ_INT(dsn_parse_notify(str(","), &m), DSN_BAD_NOTIFY);
    CHECK_EQ_INT(dsn_parse_notify(str("SUCCESS,"), &m), DSN_BAD_NOTIFY);
    CHECK_EQ_INT(dsn_parse_notify(str(",SUCCESS"), &m), DSN_BAD_NOTIFY);
    CHECK_EQ_INT(dsn_parse_notify(str("SUCCESS,,DELAY"), &m), DSN_BAD_NOTIFY);
}

static void
orcpt_rfc822_is_addr_type_semicolon_printable_xtext(void)
{
    struct smtp_str t, a;

    CHECK_EQ_INT(dsn_parse_orcpt(str("rfc822;ann@example.org"), false, &t, &a), DSN_OK);
    CHECK_MEM(t.p, t.len, "rfc822");
    CHECK_MEM(a.p, a.len, "ann@example.org");
    CHECK_EQ_INT(dsn_parse_orcpt(str("RFC822;ann+2Bx@example.org"), false, &t, &a), DSN_OK);
    CHECK_EQ_INT(dsn_parse_orcpt(str("rfc822ann@example.org"), false, &t, &a), DSN_BAD_ORCPT);
    CHECK_EQ_INT(dsn_parse_orcpt(str(";ann@example.org"), false, &t, &a), DSN_BAD_ORCPT);
    CHECK_EQ_INT(dsn_parse_orcpt(str("rfc822;"), false, &t, &a), DSN_BAD_ORCPT);
    CHECK_EQ_INT(dsn_parse_orcpt(str("rfc822;a+0Db"), false, &t, &a), DSN_BAD_ORCPT);
    CHECK_EQ_INT(dsn_parse_orcpt(str("rfc822;a+2b"), false, &t, &a), DSN_BAD_ORCPT);
    CHECK_EQ_INT(dsn_parse_orcpt(str("rfc(822);a@b"), false, &t, &a), DSN_BAD_ORCPT);
    CHECK_EQ_INT(dsn_parse_orcpt(str("rfc822;\xc3\xa4@b"), true, &t, &a), DSN_BAD_ORCPT);
}

static void
orcpt_refuses_unknown_address_types(void)
{
    struct smtp_str t, a;

    CHECK_EQ_INT(dsn_parse_orcpt(str("x400;c=us"), false, &t, &a), DSN_ORCPT_TYPE);
    CHECK_EQ_INT(dsn_parse_orcpt(str("unknown;ann"), false, &t, &a), DSN_ORCPT_TYPE);
    CHECK_EQ_INT(dsn_parse_orcpt(str("rfc822x;a@b"), false, &t, &a), DSN_ORCPT_TYPE);
}

static void
orcpt_utf8_takes_escapes_and_raw_utf8_only_with_smtputf8(void)
{
    struct smtp_str t, a;

    CHECK_EQ_INT(dsn_parse_orcpt(str("utf-8;j\\x{E4}rg@example.org"), false, &t, &a), DSN_OK);
    CHECK_EQ_INT(dsn_parse_orcpt(str("UTF-8;ann@example.org"), false, &t, &a), DSN_OK);
    CHECK_EQ_INT(dsn_parse_orcpt(str("utf-8;j\xc3\xa4rg@example.org"), true, &t, &a), DSN_OK);
    CHECK_EQ_INT(dsn_parse_orcpt(str("utf-8;j\xc3\xa4rg@example.org"), false, &t, &a),
                 DSN_BAD_ORCPT);
    CHECK_EQ_INT(dsn_parse_orcpt(str("utf-8;a\\x{}b"), false, &t, &a), DSN_BAD_ORCPT);
    CHECK_EQ_INT(dsn_parse_orcpt(str("utf-8;a\\x{1234567}"), false, &t, &a), DSN_BAD_ORCPT);
    CHECK_EQ_INT(dsn_parse_orcpt(str("utf-8;a\\x{E4"), false, &t, &a), DSN_BAD_ORCPT);
    CHECK_EQ_INT(dsn_parse_orcpt(str("utf-8;a\\b"), false, &t, &a), DSN_BAD_ORCPT);
}

static void
orcpt_is_at_most_500_characters(void)
{
    char           *v = repeat('a', DSN_ORCPT_MAX + 1);
    struct smtp_str t, a;

    memcpy(v, "rfc822;", 7);
    CHECK_EQ_INT(dsn_parse_orcpt((struct smtp_str){v, DSN_ORCPT_MAX}, false, &t, &a), DSN_OK);
    CHECK_EQ_INT(dsn_parse_orcpt(str(v), false, &t, &a), DSN_BAD_ORCPT);
    free(v);
}

/* Each value cut at every byte, in a heap copy of exactly that length (ASan sees an
 * overread): the parsers answer and stay inside it. */
static void
every_value_cut_at_every_byte_stays_inside(void)
{
    static const char *const values[] = {
        "rfc822;ann+2Bx@example.org", "utf-8;j\\x{E4}rg\xc3\xa4@b", "SUCCESS,FAILURE,DELAY",
        "id+2B1+20", "\xf0\x9f\x98\x80+41",
    };
    size_t i, n;

    for (i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        size_t len = strlen(values[i]);

        for (n = 0; n <= len; n++) {
            char           *p = malloc(n + 1);
            struct smtp_str s = {p, n}, t, a;
            unsigned        m;
            enum dsn_ret    r;

            memcpy(p, values[i], n);
            (void)dsn_parse_orcpt(s, true, &t, &a);
            (void)dsn_parse_notify(s, &m);
            (void)dsn_parse_envid(s);
            (void)dsn_parse_ret(s, &r);
            if (dsn_xtext_is_valid(s, true, false)) {
                char *out = malloc(n + 1);

                CHECK(dsn_xtext_decode(s, out) <= n);
                free(out);
            } else {
                CHECK(n > 0);
            }
            free(p);
        }
    }
}

int
main(void)
{
    RUN(xtext_accepts_xchars_and_upper_case_hexchars);
    RUN(xtext_hexchars_must_decode_to_printable_ascii_when_asked);
    RUN(xtext_decodes_hexchars_and_keeps_the_rest);
    RUN(ret_is_full_or_hdrs_in_any_case);
    RUN(envid_is_printable_xtext_of_1_to_100_characters);
    RUN(notify_is_never_alone_or_a_list_of_the_three);
    RUN(notify_refuses_never_combined_unknown_words_and_empty_elements);
    RUN(orcpt_rfc822_is_addr_type_semicolon_printable_xtext);
    RUN(orcpt_refuses_unknown_address_types);
    RUN(orcpt_utf8_takes_escapes_and_raw_utf8_only_with_smtputf8);
    RUN(orcpt_is_at_most_500_characters);
    RUN(every_value_cut_at_every_byte_stays_inside);
    return check_summary();
}
