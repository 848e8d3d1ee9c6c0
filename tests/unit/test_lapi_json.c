/* tests/unit/test_lapi_json.c: core/policy/lapi_json.c -- the audit line's fields as JSON
 * the way lua-cjson writes them: for every table of the shapes audit fields have, the
 * members decode (with cjson) to the same table cjson's own encoding decodes to, and are
 * the same bytes where cjson writes them exactly (no '/', no whole number of 15 digits or
 * more); control octets and invalid UTF-8 come out as valid JSON; what the encoder leaves
 * to cjson (NaN, functions, sparse or mixed keys, deep nesting) says so and leaves the
 * stack as it was. */
#include "check.h"
#include "policy/lapi_json.h"
#include "policy/policy_vm.h"

#include <lauxlib.h>
#include <lualib.h>
#include <string.h>

static lua_State *L;

/* The members of the table the Lua expression src makes, as lapi_json writes them, in
 * braces; rc is the encoder's answer. */
static const char *
members_of(const char *src, int *rc)
{
    static char out[4096];
    struct buf  b = {0};
    int         top;

    CHECK(luaL_dostring(L, src) == 0);
    top = lua_gettop(L);
    buf_append(&b, "{", 1, sizeof(out));
    *rc = lapi_json_members(L, top, &b, sizeof(out) - 2, false);
    buf_append(&b, "}", 1, sizeof(out));
    CHECK(lua_gettop(L) == top); /* the stack as it was */
    lua_settop(L, 0);
    snprintf(out, sizeof(out), "%.*s", (int)buf_used(&b), buf_head(&b));
    buf_cleanup(&b);
    return out;
}

/* The members of one table (the expression src), by lapi_json into ours and by cjson into
 * theirs: the same table, so that both walk the same key order. */
static int
both_of(const char *src, char *ours, char *theirs, size_t len)
{
    struct buf b = {0};
    int        rc;

    CHECK(luaL_dostring(L, src) == 0);
    buf_append(&b, "{", 1, len);
    rc = lapi_json_members(L, 1, &b, len - 2, false);
    buf_append(&b, "}", 1, len);
    snprintf(ours, len, "%.*s", (int)buf_used(&b), buf_head(&b));
    buf_cleanup(&b);
    lua_getglobal(L, "cjson_encode");
    lua_pushvalue(L, 1);
    CHECK(lua_pcall(L, 1, 1, 0) == 0);
    snprintf(theirs, len, "%s", lua_tostring(L, -1));
    lua_settop(L, 0);
    return rc;
}

/* Both decode to the same value (deep equality in Lua). */
static bool
same_when_decoded(const char *a, const char *b)
{
    bool eq;

    lua_getglobal(L, "same_json");
    lua_pushstring(L, a);
    lua_pushstring(L, b);
    CHECK(lua_pcall(L, 2, 1, 0) == 0);
    eq = lua_toboolean(L, -1);
    lua_settop(L, 0);
    return eq;
}

static void
test_the_shapes_of_audit_fields_encode_as_cjson_does(void)
{
    static const char *const cases[] = {
        "return {}",
        "return { event = 'x' }",
        "return { session_id = 'abc', size = 2048, success = true, ok = false }",
        "return { recipients = { 'a@example.org', 'b@example.net' }, n = -3 }",
        "return { upstream_reply = { code = 250, enhanced = '2.0.0', text = 'Ok' } }",
        "return { ratio = 0.25, big = 123456789, neg = -0.5, tiny = 1e-7 }",
        "return { nested = { deeper = { list = { 1, 2, { x = 'y' } } } } }",
        "return { quote = 'say \"hi\"', back = 'a\\\\b', utf8 = 'b\\195\\188cher' }",
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char ours[4096], theirs[4096];
        int  rc = both_of(cases[i], ours, theirs, sizeof(ours));

        CHECK(rc == LAPI_JSON_OK);
        CHECK(same_when_decoded(ours, theirs));
        CHECK(strcmp(ours, theirs) == 0); /* the same bytes: same key order, same numbers */
    }
}

static void
test_whole_numbers_are_exact_and_text_is_valid_json(void)
{
    int rc;

    /* cjson's %.14g would write 1.2345678901235e+15 */
    CHECK(strcmp(members_of("return { n = 1234567890123456 }", &rc),
                 "{\"n\":1234567890123456}") == 0 && rc == LAPI_JSON_OK);
    CHECK(strcmp(members_of("return { s = 'a\\1b\\127c' }", &rc),
                 "{\"s\":\"a\\u0001b\\u007fc\"}") == 0);
    CHECK(strcmp(members_of("return { s = 'bad\\255utf8' }", &rc),
                 "{\"s\":\"bad\\u00ffutf8\"}") == 0);
    CHECK(strcmp(members_of("return { s = 'a/b' }", &rc), "{\"s\":\"a/b\"}") == 0);
}

static void
test_what_it_leaves_to_cjson(void)
{
    static const char *const others[] = {
        "return { x = 0/0 }",
        "return { x = 1/0 }",
        "return { f = print }",
        "return { [1] = 'a', [3] = 'c' }",  /* sparse: not the members of an object */
        "return { list = { [1] = 'a', [3] = 'c' } }",
        "return { mixed = { 1, 2, k = 'v' } }",
        "return { a = { b = { c = { d = { e = { f = { g = { h = { i = { j = 1 } } } } } } } } } }",
        "return { 'an', 'array' }",
    };

    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
        int rc;

        members_of(others[i], &rc);
        CHECK(rc == LAPI_JSON_OTHER);
    }
}

static void
test_a_line_past_its_cap_is_never_written_whole(void)
{
    struct buf b = {0};

    CHECK(luaL_dostring(L, "return { a = string.rep('x', 100), b = string.rep('y', 100),"
                           " c = string.rep('z', 100), d = 1, e = 2, f = 3 }") == 0);
    CHECK(lapi_json_members(L, lua_gettop(L), &b, 300, false) != LAPI_JSON_OK);
    CHECK(lua_gettop(L) == 1);
    lua_settop(L, 0);
    buf_cleanup(&b);
    /* a string whose worst case (every octet escaped) passes the cap: cjson's to decide */
    CHECK(luaL_dostring(L, "return { s = string.rep('x', 5000) }") == 0);
    CHECK(lapi_json_members(L, lua_gettop(L), &b, 8192, false) == LAPI_JSON_OTHER);
    CHECK(lua_gettop(L) == 1);
    lua_settop(L, 0);
    buf_cleanup(&b);
}

int
main(void)
{
    L = luaL_newstate();
    luaL_openlibs(L);
    CHECK(luaL_dostring(L, "package.cpath = '" POLICY_VM_CPATH "' .. ';' .. package.cpath\n"
                           "local cjson = require('cjson')\n"
                           "local function eq(a, b)\n"
                           "  if type(a) ~= type(b) then return false end\n"
                           "  if type(a) ~= 'table' then return a == b end\n"
                           "  for k, v in pairs(a) do if not eq(v, b[k]) then return false end end\n"
                           "  for k in pairs(b) do if a[k] == nil then return false end end\n"
                           "  return true\n"
                           "end\n"
                           "function same_json(x, y) return eq(cjson.decode(x), cjson.decode(y)) end\n"
                           "cjson_encode = cjson.encode\n") == 0);
    RUN(test_the_shapes_of_audit_fields_encode_as_cjson_does);
    RUN(test_whole_numbers_are_exact_and_text_is_valid_json);
    RUN(test_what_it_leaves_to_cjson);
    RUN(test_a_line_past_its_cap_is_never_written_whole);
    lua_close(L);
    return check_summary();
}
