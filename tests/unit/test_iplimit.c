/* tests/unit/test_iplimit.c: core/net/iplimit.c -- the client network an address is counted
 * under (IPv4 as is, IPv4-mapped as IPv4, IPv6 by prefix in RFC 5952 text), counts shared
 * within one network and apart across networks, the total cap, slots given back, and exact
 * counts from concurrent acquire/release. */
#include "check.h"
#include "net/iplimit.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

static const char *
key(const char *addr, unsigned prefix)
{
    static char out[IPLIMIT_CLIENT_MAX];

    iplimit_client_key(addr, prefix, out);
    return out;
}

#define CHECK_KEY(addr, prefix, want)                                                  \
    do {                                                                               \
        const char *got_ = key(addr, prefix);                                          \
        CHECK_MEM(got_, strlen(got_), want);                                           \
    } while (0)

/* ---- keys ---- */

static void
an_ipv4_address_is_its_own_client(void)
{
    CHECK_KEY("192.0.2.7", 64, "192.0.2.7");
    CHECK_KEY("127.0.0.1", 64, "127.0.0.1");
    CHECK_KEY("192.0.2.7", 1, "192.0.2.7"); /* the IPv6 prefix never applies to IPv4 */
}

static void
an_ipv4_mapped_ipv6_address_counts_as_its_ipv4_address(void)
{
    CHECK_KEY("::ffff:192.0.2.7", 64, "192.0.2.7");
    CHECK_KEY("::FFFF:c000:0207", 64, "192.0.2.7");
    CHECK_KEY("::ffff:127.0.0.1", 128, "127.0.0.1");
}

static void
an_ipv6_address_is_named_by_its_64_in_rfc5952_text(void)
{
    static const struct {
        const char *addr, *want;
    } cases[] = {
        {"2001:db8:1:2::7", "2001:db8:1:2::/64"},
        {"2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"},
        {"2001:0DB8:0001:0002:1:2:3:4", "2001:db8:1:2::/64"}, /* lowercase, no zeros */
        {"2001:db8::1", "2001:db8::/64"},                       /* the zeros compressed */
        {"2001:db8:0:1::5", "2001:db8:0:1::/64"},               /* one zero group is not */
        {"2001:0:0:1::5", "2001:0:0:1::/64"},                   /* the longer run wins */
        {"::1", "::/64"},
        {"::", "::/64"},
        {"fe80::1:2:3:4", "fe80::/64"},
        {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff::/64"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        CHECK_KEY(cases[i].addr, 64, cases[i].want);
}

static void
a_custom_prefix_keeps_that_many_bits(void)
{
    CHECK_KEY("2001:db8:1:2::7", 48, "2001:db8:1::/48");
    CHECK_KEY("2001:db8:1:2ff::7", 56, "2001:db8:1:200::/56");
    CHECK_KEY("2001:db8:1:2::7", 128, "2001:db8:1:2::7/128");
    CHECK_KEY("2001:db8:abcd::", 36, "2001:db8:a000::/36");  /* within a group */
    CHECK_KEY("2001:db8:abcd::", 33, "2001:db8:8000::/33");
    CHECK_KEY("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 1, "8000::/1");
    CHECK_KEY("1:0:0:2:0:0:3:4", 128, "1::2:0:0:3:4/128"); /* equal runs: the first */
    CHECK_KEY("::10.0.0.1", 128, "::a00:1/128");           /* no dotted tail in a key */
    CHECK_KEY("a001:db8::1", 0, "8000::/1");                  /* clamped to 1..128 */
    CHECK_KEY("2001:db8::1", 200, "2001:db8::1/128");
}

static void
text_that_is_not_an_address_is_kept_as_it_is(void)
{
    char long_text[100];

    CHECK_KEY("", 64, "");
    CHECK_KEY("not-an-address", 64, "not-an-address");
    memset(long_text, 'x', sizeof(long_text) - 1);
    long_text[sizeof(long_text) - 1] = '\0';
    CHECK_EQ_INT(strlen(key(long_text, 64)), IPLIMIT_CLIENT_MAX - 1);
}

/* ---- counts ---- */

static void
addresses_in_one_64_share_a_count_and_other_64s_do_not(void)
{
    struct iplimit *l = iplimit_new(100, 2);
    char            a[IPLIMIT_CLIENT_MAX], b[IPLIMIT_CLIENT_MAX], c[IPLIMIT_CLIENT_MAX];
    char            other[IPLIMIT_CLIENT_MAX];

    iplimit_client_key("2001:db8:1:2::1", 64, a);
    iplimit_client_key("2001:db8:1:2:ffff::9", 64, b);
    iplimit_client_key("2001:db8:1:2:0:0:0:3", 64, c);
    iplimit_client_key("2001:db8:1:3::1", 64, other);
    CHECK_EQ_INT(iplimit_acquire(l, a), IPLIMIT_OK);
    CHECK_EQ_INT(iplimit_acquire(l, b), IPLIMIT_OK);
    CHECK_EQ_INT(iplimit_acquire(l, c), IPLIMIT_PER_CLIENT); /* the third of one /64 */
    CHECK_EQ_INT(iplimit_count(l, a), 2);
    CHECK_EQ_INT(iplimit_acquire(l, other), IPLIMIT_OK);     /* the next /64 is another */
    CHECK_EQ_INT(iplimit_acquire(l, other), IPLIMIT_OK);
    CHECK_EQ_INT(iplimit_total(l), 4);
    iplimit_release(l, a);
    CHECK_EQ_INT(iplimit_acquire(l, c), IPLIMIT_OK);         /* a slot given back */
    iplimit_release(l, b);
    iplimit_release(l, c);
    iplimit_release(l, other);
    iplimit_release(l, other);
    CHECK_EQ_INT(iplimit_total(l), 0);
    CHECK_EQ_INT(iplimit_count(l, a), 0);
    iplimit_free(l);
}

static void
a_mapped_address_and_its_ipv4_address_share_a_count(void)
{
    struct iplimit *l = iplimit_new(100, 1);
    char            mapped[IPLIMIT_CLIENT_MAX], v4[IPLIMIT_CLIENT_MAX];

    iplimit_client_key("::ffff:198.51.100.4", 64, mapped);
    iplimit_client_key("198.51.100.4", 64, v4);
    CHECK_EQ_INT(iplimit_acquire(l, mapped), IPLIMIT_OK);
    CHECK_EQ_INT(iplimit_acquire(l, v4), IPLIMIT_PER_CLIENT);
    CHECK_EQ_INT(iplimit_acquire(l, "198.51.100.5"), IPLIMIT_OK); /* the next address */
    iplimit_release(l, mapped);
    iplimit_release(l, "198.51.100.5");
    iplimit_free(l);
}

static void
a_custom_prefix_groups_wider_or_narrower_networks(void)
{
    struct iplimit *l = iplimit_new(100, 1);
    char            a[IPLIMIT_CLIENT_MAX], b[IPLIMIT_CLIENT_MAX];

    /* /48: two /64s of one site are one client */
    iplimit_client_key("2001:db8:1:2::1", 48, a);
    iplimit_client_key("2001:db8:1:3::1", 48, b);
    CHECK_EQ_INT(iplimit_acquire(l, a), IPLIMIT_OK);
    CHECK_EQ_INT(iplimit_acquire(l, b), IPLIMIT_PER_CLIENT);
    iplimit_release(l, a);
    /* /128: two addresses of one /64 are two clients */
    iplimit_client_key("2001:db8:1:2::1", 128, a);
    iplimit_client_key("2001:db8:1:2::2", 128, b);
    CHECK_EQ_INT(iplimit_acquire(l, a), IPLIMIT_OK);
    CHECK_EQ_INT(iplimit_acquire(l, b), IPLIMIT_OK);
    iplimit_release(l, a);
    iplimit_release(l, b);
    CHECK_EQ_INT(iplimit_total(l), 0);
    iplimit_free(l);
}

static void
the_total_cap_refuses_whatever_the_client_and_counts_nothing(void)
{
    struct iplimit *l = iplimit_new(2, 5);

    CHECK_EQ_INT(iplimit_acquire(l, "192.0.2.1"), IPLIMIT_OK);
    CHECK_EQ_INT(iplimit_acquire(l, "192.0.2.2"), IPLIMIT_OK);
    CHECK_EQ_INT(iplimit_acquire(l, "192.0.2.3"), IPLIMIT_TOTAL);
    CHECK_EQ_INT(iplimit_count(l, "192.0.2.3"), 0);
    CHECK_EQ_INT(iplimit_total(l), 2);
    iplimit_set_limits(l, 3, 1); /* a reload: the new caps hold from the next acquire */
    CHECK_EQ_INT(iplimit_acquire(l, "192.0.2.1"), IPLIMIT_PER_CLIENT);
    CHECK_EQ_INT(iplimit_acquire(l, "192.0.2.3"), IPLIMIT_OK);
    iplimit_release(l, "192.0.2.1");
    iplimit_release(l, "192.0.2.2");
    iplimit_release(l, "192.0.2.3");
    CHECK_EQ_INT(iplimit_total(l), 0);
    iplimit_free(l);
}

/* ---- concurrency ---- */

#define THREADS 4
#define ROUNDS  20000

struct race {
    struct iplimit *l;
    int             granted;
};

static void *
race_thread(void *arg)
{
    struct race *r = arg;
    char         k[IPLIMIT_CLIENT_MAX];

    for (int i = 0; i < ROUNDS; i++) {
        /* addresses all over one /64: they must all land on one count */
        char addr[64];

        snprintf(addr, sizeof(addr), "2001:db8:7:7:%x::%x", i & 0xffff, i * 7 & 0xffff);
        iplimit_client_key(addr, 64, k);
        if (iplimit_acquire(r->l, k) == IPLIMIT_OK) {
            r->granted++;
            iplimit_release(r->l, k);
        }
    }
    return NULL;
}

static void
concurrent_clients_of_one_64_never_exceed_the_cap(void)
{
    struct iplimit *l = iplimit_new(1000, 3);
    struct race     r[THREADS];
    pthread_t       t[THREADS];

    for (int i = 0; i < THREADS; i++) {
        r[i] = (struct race){.l = l};
        pthread_create(&t[i], NULL, race_thread, &r[i]);
    }
    /* while they run, the count of the /64 can be sampled: never above the cap */
    for (int i = 0; i < 2000; i++)
        CHECK(iplimit_count(l, "2001:db8:7:7::/64") <= 3);
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        CHECK(r[i].granted > 0);
    }
    CHECK_EQ_INT(iplimit_total(l), 0);
    CHECK_EQ_INT(iplimit_count(l, "2001:db8:7:7::/64"), 0);
    iplimit_free(l);
}

int
main(void)
{
    RUN(an_ipv4_address_is_its_own_client);
    RUN(an_ipv4_mapped_ipv6_address_counts_as_its_ipv4_address);
    RUN(an_ipv6_address_is_named_by_its_64_in_rfc5952_text);
    RUN(a_custom_prefix_keeps_that_many_bits);
    RUN(text_that_is_not_an_address_is_kept_as_it_is);
    RUN(addresses_in_one_64_share_a_count_and_other_64s_do_not);
    RUN(a_mapped_address_and_its_ipv4_address_share_a_count);
    RUN(a_custom_prefix_groups_wider_or_narrower_networks);
    RUN(the_total_cap_refuses_whatever_the_client_and_counts_nothing);
    RUN(concurrent_clients_of_one_64_never_exceed_the_cap);
    return check_summary();
}
