/* tests/unit/test_proxy_header.c: core/proto/proxy_header.c -- v1 and v2 headers for IPv4
 * and IPv6, UNKNOWN and LOCAL, every malformed shape we refuse, and every header cut at
 * every octet: incomplete is AGAIN (asking for no octet past the header), never OK. */
#include "check.h"
#include "proto/proxy_header.h"

#include <string.h>
#include <sys/socket.h>

#define P(lit) lit, sizeof(lit) - 1

static const char V2_SIG[] = "\r\n\r\n\0\r\nQUIT\n";

static enum proxy_header_rc
parse(const void *p, size_t n, struct proxy_header *h, size_t *used, const char **why)
{
    return proxy_header_parse(p, n, h, used, why);
}

/* A v2 header: signature, ver_cmd, fam, then body of blen octets. */
static size_t
v2(unsigned char *out, unsigned char ver_cmd, unsigned char fam, const void *body, size_t blen)
{
    memcpy(out, V2_SIG, 12);
    out[12] = ver_cmd;
    out[13] = fam;
    out[14] = (unsigned char)(blen >> 8);
    out[15] = (unsigned char)blen;
    memcpy(out + 16, body, blen);
    return 16 + blen;
}

static const unsigned char V4_BODY[12] = {192, 0, 2, 7, 198, 51, 100, 1, 0xd4, 0x31, 0x02, 0x4b};

static void
v1_tcp4_gives_the_client_address_and_ports(void)
{
    struct proxy_header h;
    size_t              used;
    const char         *why;
    const char          hdr[] = "PROXY TCP4 192.0.2.7 198.51.100.1 54321 587\r\nEHLO x\r\n";

    CHECK(parse(hdr, sizeof(hdr) - 1, &h, &used, &why) == PROXY_HEADER_OK);
    CHECK_EQ_INT(used, 45);
    CHECK_EQ_INT(h.version, 1);
    CHECK(!h.local && h.family == AF_INET);
    CHECK(strcmp(h.src, "192.0.2.7") == 0 && strcmp(h.dst, "198.51.100.1") == 0);
    CHECK_EQ_INT(h.src_port, 54321);
    CHECK_EQ_INT(h.dst_port, 587);
}

static void
v1_tcp6_gives_the_client_address(void)
{
    struct proxy_header h;
    size_t              used;
    const char         *why;

    CHECK(parse(P("PROXY TCP6 2001:db8::7 2001:db8::1 65535 0\r\n"), &h, &used, &why) ==
          PROXY_HEADER_OK);
    CHECK(h.family == AF_INET6 && strcmp(h.src, "2001:db8::7") == 0);
    CHECK_EQ_INT(h.src_port, 65535);
    CHECK_EQ_INT(h.dst_port, 0);
}

static void
v1_unknown_keeps_the_connection_address_and_ignores_the_rest(void)
{
    struct proxy_header h;
    size_t              used;
    const char         *why;

    CHECK(parse(P("PROXY UNKNOWN\r\n"), &h, &used, &why) == PROXY_HEADER_OK);
    CHECK(h.local && h.src[0] == '\0');
    CHECK_EQ_INT(used, 15);
    CHECK(parse(P("PROXY UNKNOWN ffff:f::1 x y z\r\n"), &h, &used, &why) == PROXY_HEADER_OK);
    CHECK(h.local);
}

static void
v1_longest_header_is_accepted_and_one_more_octet_is_not(void)
{
    const char *l = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    char                buf[200];
    struct proxy_header h;
    size_t              used;
    const char         *why;

    CHECK_EQ_INT(strlen(l), 104); /* the spec's 107 leaves room; so do we */
    CHECK(parse(l, strlen(l), &h, &used, &why) == PROXY_HEADER_OK);
    memset(buf, 'x', sizeof(buf));
    memcpy(buf, "PROXY UNKNOWN ", 14);
    CHECK(parse(buf, PROXY_HEADER_V1_MAX, &h, &used, &why) == PROXY_HEADER_BAD);
    memcpy(buf + 105, "\r\n", 2);
    CHECK(parse(buf, 107, &h, &used, &why) == PROXY_HEADER_OK);
    buf[105] = 'x';
    memcpy(buf + 106, "\r\n", 2);
    CHECK(parse(buf, 108, &h, &used, &why) == PROXY_HEADER_BAD);
}

static void
malformed_v1_headers_are_bad(void)
{
    static const char *const bad[] = {
        "PROXY TCP4 192.0.2.7 198.51.100.1 54321 587\n",   /* LF alone */
        "PROXY TCP4 192.0.2.7 198.51.100.1 54321 587\rX",  /* CR without LF */
        "PROXY TCP5 192.0.2.7 198.51.100.1 54321 587\r\n", /* protocol */
        "PROXY tcp4 192.0.2.7 198.51.100.1 54321 587\r\n", /* case */
        "PROXY TCP4 2001:db8::7 198.51.100.1 1 2\r\n",     /* v6 address in TCP4 */
        "PROXY TCP6 192.0.2.7 2001:db8::1 1 2\r\n",        /* v4 address in TCP6 */
        "PROXY TCP4 192.0.2.7 198.51.100.1 65536 587\r\n", /* port range */
        "PROXY TCP4 192.0.2.7 198.51.100.1 054321 587\r\n",/* leading zero */
        "PROXY TCP4 192.0.2.7 198.51.100.1 -1 587\r\n",    /* sign */
        "PROXY TCP4 192.0.2.7 198.51.100.1 54321\r\n",     /* a field missing */
        "PROXY TCP4 192.0.2.7 198.51.100.1 54321 587 9\r\n", /* one too many */
        "PROXY TCP4 192.0.2.7  198.51.100.1 54321 587\r\n",/* double space */
        "PROXY TCP4 192.0.2.7 198.51.100.1 54321 587 \r\n",/* trailing space */
        "PROXY TCP4 host.example 198.51.100.1 1 2\r\n",    /* a name */
        "PROXY  TCP4 192.0.2.7 198.51.100.1 1 2\r\n",      /* empty protocol */
        "PROXY UNKNOWNX\r\n",                               /* not UNKNOWN */
        "PROXY TCP4 192.0.2.7\t198.51.100.1 1 2\r\n",      /* control octet */
        "PROXY\r\n",                                        /* nothing */
        "proxy TCP4 192.0.2.7 198.51.100.1 1 2\r\n",       /* signature case */
        "EHLO client.example\r\n",                         /* no header at all */
        "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",    /* a TLS ClientHello */
    };
    struct proxy_header h;
    size_t              used;
    const char         *why;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        enum proxy_header_rc rc = parse(bad[i], strlen(bad[i]), &h, &used, &why);

        CHECK(rc == PROXY_HEADER_BAD);
        CHECK(rc != PROXY_HEADER_BAD || why[0] != '\0');
    }
}

static void
v2_proxy_ipv4_gives_the_client_address_and_ports(void)
{
    unsigned char       buf[300];
    size_t              n = v2(buf, 0x21, 0x11, V4_BODY, sizeof(V4_BODY)), used;
    struct proxy_header h;
    const char         *why;

    buf[n] = 0x16; /* the client's first octet: not part of the header */
    CHECK(parse(buf, n + 1, &h, &used, &why) == PROXY_HEADER_OK);
    CHECK_EQ_INT(used, 28);
    CHECK_EQ_INT(h.version, 2);
    CHECK(!h.local && h.family == AF_INET);
    CHECK(strcmp(h.src, "192.0.2.7") == 0 && strcmp(h.dst, "198.51.100.1") == 0);
    CHECK_EQ_INT(h.src_port, 54321);
    CHECK_EQ_INT(h.dst_port, 587);
}

static void
v2_proxy_ipv6_with_tlvs_skips_them(void)
{
    unsigned char       body[36 + 3 + 5 + 3], buf[300];
    struct proxy_header h;
    size_t              n, used;
    const char         *why;

    memset(body, 0, sizeof(body));
    body[0] = 0x20, body[1] = 0x01, body[2] = 0x0d, body[3] = 0xb8, body[15] = 7;
    body[16] = 0x20, body[17] = 0x01, body[18] = 0x0d, body[19] = 0xb8, body[31] = 1;
    body[32] = 0x01, body[33] = 0x02, body[34] = 0x00, body[35] = 0x19;
    body[36] = 0x02, body[37] = 0, body[38] = 5, memcpy(body + 39, "a.org", 5); /* AUTHORITY */
    body[44] = 0x04, body[45] = 0, body[46] = 0;                              /* NOOP */
    n = v2(buf, 0x21, 0x21, body, sizeof(body));
    CHECK(parse(buf, n, &h, &used, &why) == PROXY_HEADER_OK);
    CHECK_EQ_INT(used, n);
    CHECK(h.family == AF_INET6 && strcmp(h.src, "2001:db8::7") == 0);
    CHECK(strcmp(h.dst, "2001:db8::1") == 0);
    CHECK_EQ_INT(h.src_port, 258);
    CHECK_EQ_INT(h.dst_port, 25);
}

static void
v2_local_unspec_and_unix_keep_the_connection_address(void)
{
    unsigned char       buf[300], unix_body[216] = {0};
    struct proxy_header h;
    size_t              n, used;
    const char         *why;

    n = v2(buf, 0x20, 0x00, "", 0);
    CHECK(parse(buf, n, &h, &used, &why) == PROXY_HEADER_OK);
    CHECK(h.local && used == 16);
    n = v2(buf, 0x20, 0x11, V4_BODY, sizeof(V4_BODY)); /* LOCAL: the block is discarded */
    CHECK(parse(buf, n, &h, &used, &why) == PROXY_HEADER_OK);
    CHECK(h.local && used == 28 && h.src[0] == '\0');
    n = v2(buf, 0x21, 0x00, "", 0);
    CHECK(parse(buf, n, &h, &used, &why) == PROXY_HEADER_OK && h.local);
    n = v2(buf, 0x21, 0x31, unix_body, sizeof(unix_body));
    CHECK(parse(buf, n, &h, &used, &why) == PROXY_HEADER_OK && h.local);
    CHECK_EQ_INT(used, PROXY_HEADER_V2_MAX);
}

static void
malformed_v2_headers_are_bad(void)
{
    static const struct {
        unsigned char ver_cmd, fam;
        size_t        len;
    } bad[] = {
        {0x11, 0x11, 12}, /* version 1 in the binary form */
        {0x31, 0x11, 12}, /* version 3 */
        {0x22, 0x11, 12}, /* command 2 */
        {0x21, 0x12, 12}, /* UDP */
        {0x21, 0x22, 36}, /* UDP6 */
        {0x21, 0x32, 216},/* unix datagram */
        {0x21, 0x41, 12}, /* family 4 */
        {0x21, 0x11, 11}, /* address block cut */
        {0x21, 0x21, 35}, /* address block cut */
        {0x21, 0x11, 14}, /* two octets: not a TLV */
        {0x21, 0x11, 217},/* over 232 octets */
        {0x20, 0x00, 0xffff},
    };
    unsigned char       buf[300] = {0}, body[256] = {0};
    struct proxy_header h;
    size_t              used;
    const char         *why;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t n = bad[i].len <= 216 ? bad[i].len : 0;

        v2(buf, bad[i].ver_cmd, bad[i].fam, body, n);
        buf[14] = (unsigned char)(bad[i].len >> 8);
        buf[15] = (unsigned char)bad[i].len;
        CHECK(parse(buf, 16 + n, &h, &used, &why) == PROXY_HEADER_BAD);
    }
    /* A TLV whose length runs past the header. */
    memcpy(body, V4_BODY, 12);
    body[12] = 0x04, body[13] = 0, body[14] = 9;
    v2(buf, 0x21, 0x11, body, 15 + 2);
    CHECK(parse(buf, 33, &h, &used, &why) == PROXY_HEADER_BAD);
}

/* Cut every header at every octet: AGAIN, asking for more but never past its end. */
static void
check_every_cut(const void *hdr, size_t n)
{
    struct proxy_header h;
    size_t              used;
    const char         *why;

    for (size_t k = 0; k < n; k++) {
        CHECK(parse(hdr, k, &h, &used, &why) == PROXY_HEADER_AGAIN);
        CHECK(used > k && used <= n);
    }
    CHECK(parse(hdr, n, &h, &used, &why) == PROXY_HEADER_OK);
    CHECK_EQ_INT(used, n);
}

static void
every_cut_header_asks_for_more_and_never_past_its_end(void)
{
    unsigned char buf[300];

    check_every_cut(P("PROXY UNKNOWN\r\n"));
    check_every_cut(P("PROXY TCP4 192.0.2.7 198.51.100.1 54321 587\r\n"));
    check_every_cut(P("PROXY TCP6 2001:db8::7 2001:db8::1 1 2\r\n"));
    check_every_cut(buf, v2(buf, 0x21, 0x11, V4_BODY, sizeof(V4_BODY)));
    check_every_cut(buf, v2(buf, 0x20, 0x00, "", 0));
}

static void
a_wrong_first_octet_is_bad_before_the_rest_arrives(void)
{
    struct proxy_header h;
    size_t              used;
    const char         *why;

    CHECK(parse("E", 1, &h, &used, &why) == PROXY_HEADER_BAD);
    CHECK(parse("\x16", 1, &h, &used, &why) == PROXY_HEADER_BAD);
    CHECK(parse("\r\n\r\n\0\r\nX", 8, &h, &used, &why) == PROXY_HEADER_BAD);
    CHECK(parse("PROXX", 5, &h, &used, &why) == PROXY_HEADER_BAD);
}

int
main(void)
{
    RUN(v1_tcp4_gives_the_client_address_and_ports);
    RUN(v1_tcp6_gives_the_client_address);
    RUN(v1_unknown_keeps_the_connection_address_and_ignores_the_rest);
    RUN(v1_longest_header_is_accepted_and_one_more_octet_is_not);
    RUN(malformed_v1_headers_are_bad);
    RUN(v2_proxy_ipv4_gives_the_client_address_and_ports);
    RUN(v2_proxy_ipv6_with_tlvs_skips_them);
    RUN(v2_local_unspec_and_unix_keep_the_connection_address);
    RUN(malformed_v2_headers_are_bad);
    RUN(every_cut_header_asks_for_more_and_never_past_its_end);
    RUN(a_wrong_first_octet_is_bad_before_the_rest_arrives);
    return check_summary();
}
