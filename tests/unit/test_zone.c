/* tests/unit/test_zone.c: core/store/zone.c -- zones made from a configuration, each with its own
 * eviction rule: a flood of long client-chosen keys into an evicting zone evicts only that
 * zone's entries (issue 9: it evicted the token deny-list when all shared one dictionary);
 * a zone that never evicts refuses when full, keeps every entry, remembers the refusal
 * until a write succeeds, and logs zone.full at most once every 10 s; keys from client
 * strings are bounded exactly as sluice.key_part bounds them. */
#include "check.h"
#include "config/config.h"
#include "util/log.h"
#include "store/zone.h"
#include "testio.h"

#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#define T0 1000.0

/* The built-in zones: each of size octets, denylist and blocks never evicted. */
static struct zones *
new_zones(size_t size)
{
    char               names[CONFIG_ZONE_N_BUILTIN][16] = {"default", "limits", "blocks",
                                                           "denylist", "auth_cache", "jwks"};
    struct config_zone zc[CONFIG_ZONE_N_BUILTIN];
    struct config      cfg = {.zones = zc, .n_zones = CONFIG_ZONE_N_BUILTIN};
    char               err[128];
    struct zones      *zs;

    for (size_t i = 0; i < CONFIG_ZONE_N_BUILTIN; i++)
        zc[i] = (struct config_zone){.name = names[i], .size = size,
                                     .evict = i != CONFIG_ZONE_BLOCKS && i != CONFIG_ZONE_DENYLIST};
    if ((zs = zones_new(&cfg, err, sizeof(err))) == NULL) {
        fprintf(stderr, "zones_new: %s\n", err);
        abort();
    }
    return zs;
}

static enum shdict_rc
set_num(struct zone *z, const char *key, double num, double now)
{
    struct shdict_value v = {.type = SHDICT_NUMBER, .num = num};

    return zone_set(z, key, strlen(key), &v, 0, now);
}

static bool
has(struct zone *z, const char *key)
{
    struct shdict_value v = {0};

    return zone_get(z, key, strlen(key), &v, T0) == SHDICT_OK;
}

static struct zone_stats
stats(struct zone *z)
{
    struct zone_stats st;

    zone_stats(z, &st);
    return st;
}

static void
zones_are_made_as_configured(void)
{
    struct zones *zs = new_zones(64 * 1024);

    CHECK_EQ_INT(zones_count(zs), CONFIG_ZONE_N_BUILTIN);
    CHECK(strcmp(zone_name(zones_at(zs, CONFIG_ZONE_DENYLIST)), "denylist") == 0);
    CHECK(!zone_evicts(zones_at(zs, CONFIG_ZONE_DENYLIST)));
    CHECK(!zone_evicts(zones_at(zs, CONFIG_ZONE_BLOCKS)));
    CHECK(zone_evicts(zones_at(zs, CONFIG_ZONE_LIMITS)));
    CHECK(zones_at(zs, CONFIG_ZONE_N_BUILTIN) == NULL);
    CHECK(zones_at(NULL, 0) == NULL && zones_count(NULL) == 0);
    CHECK_EQ_INT(stats(zones_at(zs, CONFIG_ZONE_JWKS)).capacity, 64 * 1024);
    zones_free(zs);
    zones_free(NULL);
}

/* The attack of issue 9, in miniature: a deny entry and blocks, then thousands of counters
 * under long random names in the limits zone. */
static void
an_evicting_zone_evicts_only_its_own_entries(void)
{
    struct zones *zs = new_zones(64 * 1024);
    struct zone  *limits = zones_at(zs, CONFIG_ZONE_LIMITS);
    struct zone  *deny = zones_at(zs, CONFIG_ZONE_DENYLIST);
    struct zone  *blocks = zones_at(zs, CONFIG_ZONE_BLOCKS);
    struct zone  *dflt = zones_at(zs, CONFIG_ZONE_DEFAULT);
    char          key[600];
    unsigned      seed = 9;

    CHECK_EQ_INT(set_num(deny, "oauth2:deny:jti:j-1", T0, T0), SHDICT_OK);
    CHECK_EQ_INT(set_num(dflt, "site:note", 1, T0), SHDICT_OK);
    for (int i = 0; i < 50; i++) {
        snprintf(key, sizeof(key), "auth_fail:ip:192.0.2.%d:block", i);
        CHECK_EQ_INT(set_num(blocks, key, T0 + 300, T0), SHDICT_OK);
    }
    for (int i = 0; i < 5000; i++) {
        int n = snprintf(key, sizeof(key), "auth_fail:user_ip:");

        while (n < 530)
            key[n++] = (char)('a' + rand_r(&seed) % 26);
        snprintf(key + n, sizeof(key) - (size_t)n, "|127.0.0.1:60:%d", i);
        CHECK_EQ_INT(set_num(limits, key, 1, T0), SHDICT_OK);
    }
    CHECK(stats(limits).evictions > 4000);
    CHECK(stats(limits).bytes <= stats(limits).capacity);
    CHECK(has(deny, "oauth2:deny:jti:j-1"));
    CHECK(has(dflt, "site:note"));
    for (int i = 0; i < 50; i++) {
        snprintf(key, sizeof(key), "auth_fail:ip:192.0.2.%d:block", i);
        CHECK(has(blocks, key));
    }
    CHECK_EQ_INT(stats(deny).evictions + stats(blocks).evictions + stats(dflt).evictions, 0);
    zones_free(zs);
}

static void
a_full_zone_refuses_keeps_everything_and_says_so_once_in_a_while(void)
{
    struct zones *zs = new_zones(32 * 1024);
    struct zone  *deny = zones_at(zs, CONFIG_ZONE_DENYLIST);
    char          key[64];
    double        v;
    int           n;

    test_capture_start();
    for (n = 0; n < 10000; n++) {
        snprintf(key, sizeof(key), "oauth2:deny:jti:%d", n);
        if (set_num(deny, key, 1, T0) != SHDICT_OK)
            break;
    }
    CHECK(n > 100 && n < 10000);
    CHECK(zone_is_refusing(deny));
    for (int i = 0; i < 100; i++) /* within 10 s of the first: no other line */
        CHECK_EQ_INT(set_num(deny, "oauth2:deny:jti:late", 1, T0 + i / 20.0), SHDICT_FULL);
    CHECK_EQ_INT(zone_incr(deny, "late", 4, 1, 0, T0 + 9, &v), SHDICT_FULL);
    CHECK_EQ_INT(set_num(deny, "oauth2:deny:jti:late", 1, T0 + 20), SHDICT_FULL);
    CHECK_EQ_INT(test_count(test_capture_end(), "\"event\":\"zone.full\",\"zone\":\"denylist\""),
                 2);
    CHECK_EQ_INT(stats(deny).refusals, 103);
    CHECK_EQ_INT(stats(deny).evictions, 0);
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof(key), "oauth2:deny:jti:%d", i);
        CHECK(has(deny, key));
    }
    /* a delete makes room but does not end the refusing state; a write that succeeds does */
    CHECK_EQ_INT(zone_delete(deny, "oauth2:deny:jti:0", 17, T0), SHDICT_OK);
    CHECK(zone_is_refusing(deny));
    CHECK_EQ_INT(set_num(deny, "oauth2:deny:jti:new", 1, T0), SHDICT_OK);
    CHECK(!zone_is_refusing(deny));
    zones_free(zs);
}

static void
an_evicting_zone_is_never_refusing(void)
{
    struct zones *zs = new_zones(32 * 1024);
    struct zone  *limits = zones_at(zs, CONFIG_ZONE_LIMITS);
    char          key[64];

    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof(key), "k:%d", i);
        CHECK_EQ_INT(set_num(limits, key, 1, T0), SHDICT_OK);
    }
    CHECK(!zone_is_refusing(limits));
    CHECK(stats(limits).evictions > 0 && stats(limits).refusals == 0);
    zones_free(zs);
}

static void
add_and_ttl_go_through_to_the_backend(void)
{
    struct zones       *zs = new_zones(64 * 1024);
    struct zone        *z = zones_at(zs, CONFIG_ZONE_BLOCKS);
    struct shdict_value v = {.type = SHDICT_NUMBER, .num = 1}, out = {0};

    CHECK_EQ_INT(zone_add(z, "b", 1, &v, 30, T0), SHDICT_OK);
    CHECK_EQ_INT(zone_add(z, "b", 1, &v, 30, T0), SHDICT_EXISTS);
    CHECK_EQ_INT(zone_get(z, "b", 1, &out, T0 + 1), SHDICT_OK);
    CHECK(out.expires == T0 + 30);
    zones_free(zs);
}

/* The same keys as sluice.key_part (tests/lua/lua/sluice/init_spec.lua) */
static void
long_client_strings_are_bounded_as_lua_bounds_them(void)
{
    char s[1000], out[600];

    memset(s, 'x', sizeof(s));
    CHECK_EQ_INT(zone_key_part(s, 64, 64, out), 64);
    CHECK(memcmp(out, s, 64) == 0 && out[64] == '\0');
    CHECK_EQ_INT(zone_key_part(s, 65, 64, out), 65);
    CHECK(strcmp(out, "~9537c5fdf120482f7d58d25e9ed583f52c02b4e304ea814db1633ad565aed7e9") == 0);
    CHECK_EQ_INT(zone_key_part(s, 1000, 128, out), 129);
    CHECK(memcmp(out, s, 64) == 0 && out[64] == '~' && strlen(out) == 129);
    CHECK_EQ_INT(zone_key_part(s, 128, 128, out), 128);
    CHECK_EQ_INT(zone_key_part(s, 10, 63, out), 0);
    CHECK_EQ_INT(zone_key_part(s, 10, ZONE_KEY_PART_MAX + 1, out), 0);
}

int
main(void)
{
    log_set_level(LOG_DEBUG);
    RUN(zones_are_made_as_configured);
    RUN(an_evicting_zone_evicts_only_its_own_entries);
    RUN(a_full_zone_refuses_keeps_everything_and_says_so_once_in_a_while);
    RUN(an_evicting_zone_is_never_refusing);
    RUN(add_and_ttl_go_through_to_the_backend);
    RUN(long_client_strings_are_bounded_as_lua_bounds_them);
    return check_summary();
}
