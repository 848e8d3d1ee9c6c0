/* tests/unit/test_cidr.c: core/proto/cidr.c -- parsing networks and membership. */
#include "check.h"
#include "proto/cidr.h"

static bool
in(const char *net, const char *ip)
{
    struct cidr c;

    CHECK(cidr_parse(net, &c) == 0);
    return cidr_contains(&c, ip);
}

static void
an_address_is_inside_its_network_and_not_outside(void)
{
    CHECK(in("127.0.0.1/32", "127.0.0.1"));
    CHECK(!in("127.0.0.1/32", "127.0.0.2"));
    CHECK(in("10.0.0.0/8", "10.255.1.2"));
    CHECK(!in("10.0.0.0/8", "11.0.0.0"));
    CHECK(in("192.168.4.0/22", "192.168.7.255"));
    CHECK(!in("192.168.4.0/22", "192.168.8.0"));
    CHECK(in("0.0.0.0/0", "203.0.113.9"));
    CHECK(in("::1/128", "::1"));
    CHECK(!in("::1/128", "::2"));
    CHECK(in("2001:db8::/33", "2001:db8:7fff::1"));
    CHECK(!in("2001:db8::/33", "2001:db8:8000::1"));
    CHECK(in("::1", "::1"));
    CHECK(in("127.0.0.2", "127.0.0.2"));
}

static void
families_never_match_each_other(void)
{
    CHECK(!in("0.0.0.0/0", "::1"));
    CHECK(!in("::/0", "127.0.0.1"));
    CHECK(!in("::/0", "not an address"));
}

static void
malformed_networks_are_refused(void)
{
    static const char *const bad[] = {
        "", "/8", "10.0.0.0/", "10.0.0.0/33", "::/129", "10.0.0.1/8", "10.0.0.0/08",
        "10.0.0.0/-1", "10.0.0.0/8x", "host.example", "10.0.0.0/8/8", "2001:db8::1/64",
    };
    struct cidr c;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK(cidr_parse(bad[i], &c) == -1);
}

int
main(void)
{
    RUN(an_address_is_inside_its_network_and_not_outside);
    RUN(families_never_match_each_other);
    RUN(malformed_networks_are_refused);
    return check_summary();
}
