/* tests/unit/test_upstream_xclient.c: core/relay/upstream_xclient.c: the XCLIENT and
 * XFORWARD keywords of an EHLO reply, and the command lines for one client: only the
 * attributes offered, xtext values, IPv6 addresses, [UNAVAILABLE] for what is unknown or
 * too long, and every line within 512 octets. */
#include "check.h"
#include "relay/upstream_xclient.h"

#include <stdlib.h>

static struct upstream_xoffer
offer_of(const char *ehlo)
{
    struct upstream_reply  r;
    struct upstream_xoffer x;
    size_t                 used = 0;

    CHECK_EQ_INT(upstream_reply_parse(ehlo, strlen(ehlo), &r, &used), REPLY_OK);
    upstream_xclient_offer(&r, &x);
    return x;
}

static void
the_ehlo_keywords_and_their_attributes_are_read(void)
{
    struct upstream_xoffer x = offer_of(
        "250-postfix.test\r\n250-PIPELINING\r\n"
        "250-XCLIENT NAME ADDR PORT PROTO HELO LOGIN DESTADDR DESTPORT\r\n"
        "250 xforward name addr proto helo source port ident\r\n");

    CHECK(x.xclient && x.xforward);
    CHECK_EQ_INT(x.xclient_attrs, XATTR_NAME | XATTR_ADDR | XATTR_PORT | XATTR_PROTO |
                                      XATTR_HELO | XATTR_LOGIN);
    CHECK_EQ_INT(x.xforward_attrs, XATTR_NAME | XATTR_ADDR | XATTR_PORT | XATTR_PROTO |
                                       XATTR_HELO | XATTR_IDENT | XATTR_SOURCE);
    x = offer_of("250-XCLIENT ADDR\r\n250 SIZE 10\r\n"); /* the first line is the domain */
    CHECK(!x.xclient && !x.xforward);
    x = offer_of("250-h\r\n250-XCLIENTS ADDR\r\n250 XFORWARDER\r\n"); /* other words */
    CHECK(!x.xclient && !x.xforward);
    x = offer_of("250-h\r\n250 XCLIENT\r\n"); /* offered, no attribute: nothing to send */
    CHECK(x.xclient && x.xclient_attrs == 0);
}

static struct relay_client
alice(void)
{
    struct relay_client c = {
        .addr = "192.0.2.7", .port = 50123, .helo = "laptop.example.org",
        .login = "alice@example.org", .esmtp = true, .ident = "5f3a9c0e.1",
    };
    return c;
}

static void
xclient_says_every_offered_attribute_in_one_line(void)
{
    struct relay_client c = alice();
    char                out[UPSTREAM_XCLIENT_TEXT_MAX];
    size_t              len;
    unsigned            all = XATTR_NAME | XATTR_ADDR | XATTR_PORT | XATTR_PROTO |
                   XATTR_HELO | XATTR_LOGIN | XATTR_IDENT | XATTR_SOURCE;

    CHECK_EQ_INT(upstream_xclient_lines(UPSTREAM_XCLIENT, all, &c, out, sizeof(out), &len), 1);
    CHECK_MEM(out, len,
              "XCLIENT NAME=[UNAVAILABLE] ADDR=192.0.2.7 PORT=50123 PROTO=ESMTP "
              "HELO=laptop.example.org LOGIN=alice@example.org\r\n");
    CHECK_EQ_INT(upstream_xclient_lines(UPSTREAM_XFORWARD, all, &c, out, sizeof(out), &len), 1);
    CHECK_MEM(out, len,
              "XFORWARD NAME=[UNAVAILABLE] ADDR=192.0.2.7 PORT=50123 PROTO=ESMTP "
              "HELO=laptop.example.org IDENT=5f3a9c0e.1 SOURCE=REMOTE\r\n");
    /* only what the server listed */
    CHECK_EQ_INT(upstream_xclient_lines(UPSTREAM_XCLIENT, XATTR_ADDR | XATTR_LOGIN, &c, out,
                                        sizeof(out), &len), 1);
    CHECK_MEM(out, len, "XCLIENT ADDR=192.0.2.7 LOGIN=alice@example.org\r\n");
    CHECK_EQ_INT(upstream_xclient_lines(UPSTREAM_XCLIENT, XATTR_IDENT, &c, out, sizeof(out),
                                        &len), 0);
    CHECK_EQ_INT(len, 0);
}

static void
values_are_xtext_ipv6_is_marked_and_the_unknown_is_unavailable(void)
{
    struct relay_client c = alice();
    char                out[UPSTREAM_XCLIENT_TEXT_MAX];
    size_t              len;

    c.addr = "2001:db8::7";
    c.port = 0;
    c.login = "a+b=c d\xc3\xa9";
    c.helo = "two words";
    c.esmtp = false;
    CHECK_EQ_INT(upstream_xclient_lines(UPSTREAM_XCLIENT,
                                        XATTR_ADDR | XATTR_PORT | XATTR_PROTO | XATTR_HELO |
                                            XATTR_LOGIN,
                                        &c, out, sizeof(out), &len),
                 1);
    CHECK_MEM(out, len,
              "XCLIENT ADDR=IPV6:2001:db8::7 PORT=[UNAVAILABLE] PROTO=SMTP HELO=[UNAVAILABLE] "
              "LOGIN=a+2Bb+3Dc+20d+C3+A9\r\n");
    c.login = NULL;
    c.helo = NULL;
    CHECK_EQ_INT(upstream_xclient_lines(UPSTREAM_XCLIENT, XATTR_HELO | XATTR_LOGIN, &c, out,
                                        sizeof(out), &len), 1);
    CHECK_MEM(out, len, "XCLIENT HELO=[UNAVAILABLE] LOGIN=[UNAVAILABLE]\r\n");
}

static void
long_values_split_the_command_and_every_line_stays_within_512_octets(void)
{
    struct relay_client c = alice();
    char                out[UPSTREAM_XCLIENT_TEXT_MAX], helo[256], login[400];
    size_t              len, off = 0, n;
    int                 lines = 0;

    memset(helo, 'h', 255);
    helo[255] = '\0';
    memset(login, 'l', 200); /* with the HELO name: over one line */
    login[200] = '\0';
    c.helo = helo;
    c.login = login;
    CHECK_EQ_INT(upstream_xclient_lines(UPSTREAM_XCLIENT,
                                        XATTR_NAME | XATTR_ADDR | XATTR_PORT | XATTR_PROTO |
                                            XATTR_HELO | XATTR_LOGIN,
                                        &c, out, sizeof(out), &len),
                 2);
    while ((n = upstream_xclient_next_line(out, len, &off)) > 0) {
        lines++;
        CHECK(n <= UPSTREAM_XCLIENT_LINE_MAX);
        CHECK(strncmp(out + off - n, "XCLIENT ", 8) == 0);
        CHECK(memcmp(out + off - 2, "\r\n", 2) == 0);
    }
    CHECK_EQ_INT(lines, 2);
    CHECK(strstr(out, " HELO=hhhh") != NULL && strstr(out, "\r\nXCLIENT LOGIN=llll") != NULL);
    memset(login, '+', 399); /* 3 octets each in xtext: too long for any line */
    login[399] = '\0';
    CHECK_EQ_INT(upstream_xclient_lines(UPSTREAM_XCLIENT, XATTR_LOGIN, &c, out, sizeof(out),
                                        &len), 1);
    CHECK_MEM(out, len, "XCLIENT LOGIN=[UNAVAILABLE]\r\n");
    /* a HELO name over 255 octets: Postfix would refuse it (501) */
    c.helo = "x";
    CHECK(upstream_xclient_helo_ok(c.helo));
    CHECK(!upstream_xclient_helo_ok(NULL) && !upstream_xclient_helo_ok(""));
    memset(login, 'h', 256);
    login[256] = '\0';
    CHECK(!upstream_xclient_helo_ok(login));
    /* too small a buffer: -1, never a cut line */
    CHECK_EQ_INT(upstream_xclient_lines(UPSTREAM_XCLIENT, XATTR_ADDR, &c, out, 12, &len), -1);
}

int
main(void)
{
    RUN(the_ehlo_keywords_and_their_attributes_are_read);
    RUN(xclient_says_every_offered_attribute_in_one_line);
    RUN(values_are_xtext_ipv6_is_marked_and_the_unknown_is_unavailable);
    RUN(long_values_split_the_command_and_every_line_stays_within_512_octets);
    return check_summary();
}
