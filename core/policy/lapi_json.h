/* core/policy/lapi_json.h: a Lua table's fields as JSON object members, fast, for the
 * audit line (lapi_json.c says what it writes and what it leaves to lua-cjson). */
#ifndef SLUICE_LAPI_JSON_H
#define SLUICE_LAPI_JSON_H

#include <lua.h>
#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"

enum lapi_json_rc {
    LAPI_JSON_OK,
    LAPI_JSON_OTHER, /* something this encoder leaves to cjson: b holds a partial line */
    LAPI_JSON_NOMEM, /* b reached cap, or malloc failed */
};

/* The members of the table at idx (an absolute index), `"key":value` separated by ',',
 * without braces, appended to b (at most cap octets in all); with comma_first, a ','
 * before the first one. The stack is as it was on return. */
int lapi_json_members(lua_State *L, int idx, struct buf *b, size_t cap, bool comma_first);

#endif
