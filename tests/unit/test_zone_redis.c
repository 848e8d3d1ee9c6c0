/* tests/unit/test_zone_redis.c: core/store/zone_redis.c -- zone operations as Redis commands
 * (the key under prefix and zone, numbers that INCRBYFLOAT can read, strings behind '=',
 * TTLs in whole milliseconds rounded up, the scripts called by their SHA-1) and Redis
 * replies as results, including replies no real server sends for that command: they
 * must break the connection, never read out of bounds. The scripts themselves run
 * against a real redis-server in tests/integration/test_redis.py. */
#include "check.h"
#include "store/zone_redis.h"

#include <openssl/evp.h>
#include <string.h>

static bool
arg_is(const struct zone_redis_cmd *c, int i, const char *s)
{
    return i < c->argc && c->lens[i] == strlen(s) && memcmp(c->argv[i], s, c->lens[i]) == 0;
}

static void
test_set_builds_the_key_and_encodes_values(void)
{
    struct zone_redis_cmd c;
    struct zone_op        op = {.kind = ZONE_SET, .key = "k:1", .klen = 3, .ttl = 1.0001,
                                .value = {.type = SHDICT_NUMBER, .num = 0.1}};

    CHECK(zone_redis_cmd_build(&c, "sluice:", "limits", &op) == 0);
    CHECK_EQ_INT(c.argc, 5);
    CHECK(arg_is(&c, 0, "SET") && arg_is(&c, 1, "sluice:limits:k:1"));
    CHECK(arg_is(&c, 2, "0.10000000000000001")); /* %.17g: the same double back */
    CHECK(arg_is(&c, 3, "PX") && arg_is(&c, 4, "1001")); /* rounded up, never 0 */
    zone_redis_cmd_cleanup(&c);

    op.kind = ZONE_ADD;
    op.ttl = 0;
    op.value = (struct shdict_value){.type = SHDICT_STRING, .str = "a\0b", .len = 3};
    CHECK(zone_redis_cmd_build(&c, "p:", "z", &op) == 0);
    CHECK_EQ_INT(c.argc, 4);
    CHECK(c.lens[2] == 4 && memcmp(c.argv[2], "=a\0b", 4) == 0); /* binary-safe */
    CHECK(arg_is(&c, 3, "NX"));
    zone_redis_cmd_cleanup(&c);

    op.kind = ZONE_SET;
    op.value.type = SHDICT_NIL;
    CHECK(zone_redis_cmd_build(&c, "p:", "z", &op) == 0);
    CHECK(c.argc == 2 && arg_is(&c, 0, "DEL") && arg_is(&c, 1, "p:z:k:1"));
    zone_redis_cmd_cleanup(&c);
}

static void
test_incr_calls_its_script_with_the_peek_key(void)
{
    struct zone_redis_cmd c;
    struct zone_op        op = {.kind = ZONE_INCR, .key = "n:60:7", .klen = 6, .by = 1,
                                .ttl = 120, .peek = "n:60:6", .plen = 6};
    unsigned char         md[EVP_MAX_MD_SIZE];
    unsigned int          n = 0;
    char                  hex[41];

    CHECK(zone_redis_cmd_build(&c, "s:", "limits", &op) == 0);
    CHECK_EQ_INT(c.argc, 8);
    CHECK(arg_is(&c, 0, "EVALSHA") && arg_is(&c, 2, "2"));
    CHECK(arg_is(&c, 3, "s:limits:n:60:7") && arg_is(&c, 4, "s:limits:n:60:6"));
    CHECK(arg_is(&c, 5, "1") && arg_is(&c, 6, "120000") && arg_is(&c, 7, "0"));
    /* the digest is the script's SHA-1, as SCRIPT LOAD answers it */
    CHECK(EVP_Digest(zone_redis_script(1), strlen(zone_redis_script(1)), md, &n, EVP_sha1(),
                     NULL) == 1 && n == 20);
    for (unsigned i = 0; i < 20; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    CHECK(arg_is(&c, 1, hex));
    zone_redis_cmd_cleanup(&c);

    op.readonly = true;
    op.peek = NULL;
    CHECK(zone_redis_cmd_build(&c, "s:", "limits", &op) == 0);
    CHECK(c.argc == 7 && arg_is(&c, 2, "1") && arg_is(&c, 6, "1"));
    zone_redis_cmd_cleanup(&c);
}

static void
test_a_key_too_long_is_refused(void)
{
    static char           key[ZONE_REDIS_KEY_MAX];
    struct zone_redis_cmd c;
    struct zone_op        op = {.kind = ZONE_GET, .key = key, .klen = 1024};

    memset(key, 'k', sizeof(key));
    CHECK(zone_redis_cmd_build(&c, "sluice:", "limits", &op) == 0);
    zone_redis_cmd_cleanup(&c);
    op.klen = sizeof(key); /* past what a zone key may be: no overflow, a refusal */
    CHECK(zone_redis_cmd_build(&c, "sluice:", "limits", &op) == -1);
    zone_redis_cmd_cleanup(&c);
}

/* ---- replies ---- */

static redisReply
str(const char *s)
{
    return (redisReply){.type = REDIS_REPLY_STRING, .str = (char *)s, .len = strlen(s)};
}

static void
test_get_replies(void)
{
    struct zone_op     op = {.kind = ZONE_GET, .key = "k", .klen = 1};
    redisReply         v = str("=hello"), ttl = {.type = REDIS_REPLY_INTEGER, .integer = 1500};
    redisReply        *el[2] = {&v, &ttl};
    redisReply         arr = {.type = REDIS_REPLY_ARRAY, .elements = 2, .element = el};
    redisReply         nil = {.type = REDIS_REPLY_NIL};
    struct zone_result r;
    bool               broken;

    zone_redis_result(&op, &arr, 100.0, &r, &broken);
    CHECK(!broken && r.rc == SHDICT_OK && r.v.type == SHDICT_STRING);
    CHECK(r.v.len == 5 && memcmp(r.v.str, "hello", 5) == 0 && r.v.expires == 101.5);
    v = str("42.5");
    ttl.integer = -1; /* no expiry */
    zone_redis_result(&op, &arr, 100.0, &r, &broken);
    CHECK(r.rc == SHDICT_OK && r.v.type == SHDICT_NUMBER && r.v.num == 42.5);
    CHECK(r.v.expires == 0);
    zone_redis_result(&op, &nil, 100.0, &r, &broken);
    CHECK(!broken && r.rc == SHDICT_NOT_FOUND);
    /* shapes the script never gives: one element, a status, an integer value */
    arr.elements = 1;
    zone_redis_result(&op, &arr, 100.0, &r, &broken);
    CHECK(broken && r.rc == SHDICT_UNAVAILABLE);
    arr.elements = 2;
    el[0] = &ttl;
    zone_redis_result(&op, &arr, 100.0, &r, &broken);
    CHECK(broken && r.rc == SHDICT_UNAVAILABLE);
    zone_redis_result(&op, NULL, 100.0, &r, &broken);
    CHECK(!broken && r.rc == SHDICT_UNAVAILABLE); /* no reply: the link broke already */
}

static void
test_incr_and_error_replies(void)
{
    struct zone_op     op = {.kind = ZONE_INCR, .key = "k", .klen = 1, .by = 1};
    redisReply         v = str("3"), p = {.type = REDIS_REPLY_NIL};
    redisReply        *el[2] = {&v, &p};
    redisReply         arr = {.type = REDIS_REPLY_ARRAY, .elements = 2, .element = el};
    redisReply         err = {.type = REDIS_REPLY_ERROR};
    struct zone_result r;
    bool               broken;

    zone_redis_result(&op, &arr, 0, &r, &broken);
    CHECK(!broken && r.rc == SHDICT_OK && r.num == 3 && r.peek == 0);
    p = str("2.5");
    zone_redis_result(&op, &arr, 0, &r, &broken);
    CHECK(r.rc == SHDICT_OK && r.peek == 2.5);
    p = str("=text"); /* a string under the peek key counts as nothing */
    zone_redis_result(&op, &arr, 0, &r, &broken);
    CHECK(r.rc == SHDICT_OK && r.peek == 0);
    v = (redisReply){.type = REDIS_REPLY_NIL}; /* only a read-only incr finds nothing */
    zone_redis_result(&op, &arr, 0, &r, &broken);
    CHECK(broken);
    op.readonly = true;
    zone_redis_result(&op, &arr, 0, &r, &broken);
    CHECK(!broken && r.rc == SHDICT_OK && r.num == 0);
    v = str("=s");
    zone_redis_result(&op, &arr, 0, &r, &broken);
    CHECK(r.rc == SHDICT_NOT_NUMBER);

    err.str = (char *)"ERR Error running script: ERR value is not a valid float";
    err.len = strlen(err.str);
    zone_redis_result(&op, &err, 0, &r, &broken);
    CHECK(!broken && r.rc == SHDICT_NOT_NUMBER);
    err.str = (char *)"NOSCRIPT No matching script. Please use EVAL.";
    err.len = strlen(err.str);
    zone_redis_result(&op, &err, 0, &r, &broken);
    CHECK(broken && r.rc == SHDICT_UNAVAILABLE);
    err.str = (char *)"OOM command not allowed when used memory > 'maxmemory'.";
    err.len = strlen(err.str);
    zone_redis_result(&op, &err, 0, &r, &broken);
    CHECK(!broken && r.rc == SHDICT_UNAVAILABLE); /* the zone's fail rule answers */
}

static void
test_store_and_delete_replies(void)
{
    struct zone_op     op = {.kind = ZONE_ADD, .key = "k", .klen = 1};
    redisReply         ok = {.type = REDIS_REPLY_STATUS, .str = (char *)"OK", .len = 2};
    redisReply         nil = {.type = REDIS_REPLY_NIL};
    redisReply         one = {.type = REDIS_REPLY_INTEGER, .integer = 1};
    struct zone_result r;
    bool               broken;

    zone_redis_result(&op, &ok, 0, &r, &broken);
    CHECK(r.rc == SHDICT_OK);
    zone_redis_result(&op, &nil, 0, &r, &broken);
    CHECK(!broken && r.rc == SHDICT_EXISTS);
    op.kind = ZONE_SET;
    zone_redis_result(&op, &nil, 0, &r, &broken);
    CHECK(broken);
    op.kind = ZONE_DELETE;
    zone_redis_result(&op, &one, 0, &r, &broken);
    CHECK(r.rc == SHDICT_OK);
    one.integer = 0;
    zone_redis_result(&op, &one, 0, &r, &broken);
    CHECK(r.rc == SHDICT_NOT_FOUND);
    zone_redis_result(&op, &ok, 0, &r, &broken);
    CHECK(broken);
}

int
main(void)
{
    RUN(test_set_builds_the_key_and_encodes_values);
    RUN(test_incr_calls_its_script_with_the_peek_key);
    RUN(test_a_key_too_long_is_refused);
    RUN(test_get_replies);
    RUN(test_incr_and_error_replies);
    RUN(test_store_and_delete_replies);
    return check_summary();
}
