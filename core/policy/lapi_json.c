/* core/policy/lapi_json.c: a Lua table as JSON, for the audit line of every message
 * (sluice.audit, lapi_log.c), without lua-cjson's per-call module lookup and snprintf per
 * number. It writes what cjson writes for what audit fields are (strings, numbers,
 * booleans, arrays 1..n, tables with string keys, nested up to LAPI_JSON_DEPTH), in the
 * same key order (both walk with lua_next), with two differences that keep the JSON valid
 * and exact: a whole number up to 2^53 is written in full (cjson's %.14g rounds 15 digits
 * and more), and text is escaped as the log is (log_json_char: invalid UTF-8 and control
 * octets as \u00XX; cjson copies them raw and escapes '/'). Anything else (NaN, a function,
 * mixed or sparse keys, deeper nesting, a string whose worst case does not fit the cap) is
 * left to cjson: LAPI_JSON_OTHER. */
#include "policy/lapi_json.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "util/log.h"

#define LAPI_JSON_DEPTH 8
#define LAPI_JSON_EXACT 9007199254740992.0 /* 2^53: every whole number below is a double */

static int lapi_json_value(lua_State *L, int idx, struct buf *b, size_t cap, int depth);
static int lapi_json_members_at(lua_State *L, int idx, struct buf *b, size_t cap,
                                bool comma_first, int depth);

static int
lapi_json_put(struct buf *b, const char *s, size_t n, size_t cap)
{
    return buf_append(b, s, n, cap) == 0 ? LAPI_JSON_OK : LAPI_JSON_NOMEM;
}

/* s as a JSON string: room for the worst case (every octet as \u00XX) is made once, then
 * the octets are written straight into it, plain ASCII copied as it is. */
static int
lapi_json_string(struct buf *b, const char *s, size_t n, size_t cap)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t               i = 0, len, used;
    char                *w;

    if (n > (cap - 2) / 6 || buf_reserve(b, 6 * n + 2, cap) != 0)
        return LAPI_JSON_OTHER; /* may still fit: cjson writes it, or says it is too long */
    w = buf_tail(b);
    *w++ = '"';
    while (i < n) {
        if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '"' && p[i] != '\\') {
            *w++ = (char)p[i++];
            continue;
        }
        len = log_json_char(p + i, n - i, w, &used); /* at most 6 octets per octet used */
        w += len;
        i += used;
    }
    *w++ = '"';
    b->len = (size_t)(w - b->data);
    return LAPI_JSON_OK;
}

static int
lapi_json_number(struct buf *b, double v, size_t cap)
{
    char               out[32];
    size_t             i = sizeof(out);
    unsigned long long u;
    int                n;

    if (!isfinite(v))
        return LAPI_JSON_OTHER; /* cjson raises: let it say why */
    if (v == floor(v) && fabs(v) < LAPI_JSON_EXACT) {
        u = (unsigned long long)fabs(v);
        do {
            out[--i] = (char)('0' + u % 10);
            u /= 10;
        } while (u != 0);
        if (v < 0)
            out[--i] = '-';
        return lapi_json_put(b, out + i, sizeof(out) - i, cap);
    }
    n = snprintf(out, sizeof(out), "%.14g", v); /* cjson's precision */
    return lapi_json_put(b, out, (size_t)n, cap);
}

/* How the table at idx is written: 1 an array 1..n, 0 an object (string keys, or
 * empty), -1 neither (cjson decides). */
static int
lapi_json_shape(lua_State *L, int idx)
{
    size_t n = lua_objlen(L, idx), count = 0;
    bool   strings = false, numbers = false;

    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        lua_pop(L, 1);
        count++;
        if (lua_type(L, -1) == LUA_TSTRING) {
            strings = true;
        } else if (lua_type(L, -1) == LUA_TNUMBER) {
            double k = lua_tonumber(L, -1);

            numbers = true;
            if (k != floor(k) || k < 1 || k > (double)n) {
                lua_pop(L, 1);
                return -1;
            }
        } else {
            lua_pop(L, 1);
            return -1;
        }
    }
    if (strings && numbers)
        return -1;
    if (numbers)
        return count == n ? 1 : -1;
    return 0;
}

static int
lapi_json_array(lua_State *L, int idx, struct buf *b, size_t cap, int depth)
{
    size_t n = lua_objlen(L, idx);
    int    rc = lapi_json_put(b, "[", 1, cap);

    for (size_t i = 1; i <= n && rc == LAPI_JSON_OK; i++) {
        if (i > 1)
            rc = lapi_json_put(b, ",", 1, cap);
        lua_rawgeti(L, idx, (int)i);
        if (rc == LAPI_JSON_OK)
            rc = lapi_json_value(L, lua_gettop(L), b, cap, depth + 1);
        lua_pop(L, 1);
    }
    return rc == LAPI_JSON_OK ? lapi_json_put(b, "]", 1, cap) : rc;
}

static int
lapi_json_members_at(lua_State *L, int idx, struct buf *b, size_t cap, bool comma_first,
                     int depth)
{
    const char *key;
    size_t      klen;
    bool        first = !comma_first;
    int         rc = LAPI_JSON_OK;

    if (depth > LAPI_JSON_DEPTH || lapi_json_shape(L, idx) != 0)
        return LAPI_JSON_OTHER;
    lua_pushnil(L);
    while (rc == LAPI_JSON_OK && lua_next(L, idx) != 0) {
        key = lua_tolstring(L, -2, &klen); /* a string already: no conversion of the key */
        if (!first)
            rc = lapi_json_put(b, ",", 1, cap);
        first = false;
        if (rc == LAPI_JSON_OK)
            rc = lapi_json_string(b, key, klen, cap);
        if (rc == LAPI_JSON_OK)
            rc = lapi_json_put(b, ":", 1, cap);
        if (rc == LAPI_JSON_OK)
            rc = lapi_json_value(L, lua_gettop(L), b, cap, depth + 1);
        lua_pop(L, 1);
    }
    if (rc != LAPI_JSON_OK)
        lua_pop(L, 1); /* the key lua_next left */
    return rc;
}

static int
lapi_json_value(lua_State *L, int idx, struct buf *b, size_t cap, int depth)
{
    const char *s;
    size_t      n;
    int         rc, shape;

    switch (lua_type(L, idx)) {
    case LUA_TSTRING:
        s = lua_tolstring(L, idx, &n);
        return lapi_json_string(b, s, n, cap);
    case LUA_TNUMBER: return lapi_json_number(b, lua_tonumber(L, idx), cap);
    case LUA_TBOOLEAN:
        return lua_toboolean(L, idx) ? lapi_json_put(b, "true", 4, cap)
                                     : lapi_json_put(b, "false", 5, cap);
    case LUA_TTABLE:
        if (depth > LAPI_JSON_DEPTH || (shape = lapi_json_shape(L, idx)) < 0)
            return LAPI_JSON_OTHER;
        if (shape == 1)
            return lapi_json_array(L, idx, b, cap, depth);
        rc = lapi_json_put(b, "{", 1, cap);
        if (rc == LAPI_JSON_OK)
            rc = lapi_json_members_at(L, idx, b, cap, false, depth);
        return rc == LAPI_JSON_OK ? lapi_json_put(b, "}", 1, cap) : rc;
    default: return LAPI_JSON_OTHER; /* nil inside a table cannot be; functions, userdata */
    }
}

int
lapi_json_members(lua_State *L, int idx, struct buf *b, size_t cap, bool comma_first)
{
    return lapi_json_members_at(L, idx, b, cap, comma_first, 0);
}
