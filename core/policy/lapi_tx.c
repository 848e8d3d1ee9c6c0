/* core/policy/lapi_tx.c: the methods of hooks' `tx` table (docs/lua-api.md "The transaction"):
 * reading the header block and body of the message in on_data and on_relayed, and editing
 * the header block in on_data. They look at the session's buffer afresh on every call
 * (core/proto/message.c parses it), so an edit is seen by every later call, in any policy, and
 * the relay sends the edited bytes. The buffer comes from the hook's caller as a view
 * (hook_ctx.h, struct hook_message: the session's message buffer, filled by
 * core/smtp/smtp_hook.c), not from the session: the rules of editing (RFC 5322, where an
 * added header goes) are the API's, what the message is and who pays for its memory are
 * the session's. Sluice's own Received: sits before body_start and is
 * outside everything here: it can be neither read, removed nor pushed down. */
#include <lauxlib.h>
#include <string.h>

#include "policy/hook_run.h"
#include "policy/lapi.h"
#include "policy/lapi_tx.h"
#include "proto/message.h"
#include "util/buf.h"

#define LAPI_TX_META      "sluice.tx"
#define LAPI_TX_LINE_MAX  998   /* RFC 5322 section 2.1.1, without the CRLF */
#define LAPI_TX_ADDED_MAX 65536 /* octets tx:add_header may put into one message */

/* The message of the running hook into *m. Reading works in on_data and on_relayed,
 * writing only in on_data: in on_relayed the message has gone. */
static struct hook_run *
lapi_tx_check(lua_State *L, const char *fn, bool write, struct hook_message *m)
{
    struct hook_run *run = lapi_hook_run(L, fn);

    if (run->hook != POLICY_ON_DATA && (write || run->hook != POLICY_ON_RELAYED))
        luaL_error(L, "%s: not available in %s", fn, policy_hook_names[run->hook]);
    if (run->ctx.message == NULL || !run->ctx.message(run->ctx.owner, m))
        luaL_error(L, "%s: no message", fn);
    return run;
}

/* The client's message: the header block we index starts below our Received:. */
static const char *
lapi_tx_message(const struct hook_message *m, size_t *len)
{
    *len = buf_used(m->msg) - m->body_start;
    return buf_head(m->msg) + m->body_start;
}

/* Where tx:add_header inserts, relative to the client's message: below those added
 * earlier (added_end is 0 until the first). */
static size_t
lapi_tx_added(const struct hook_message *m)
{
    return *m->added_end > m->body_start ? *m->added_end - m->body_start : 0;
}

static void
lapi_tx_push_value(lua_State *L, const char *msg, const struct message_header *h)
{
    char  *scratch = lua_newuserdata(L, h->end - h->value + 1);
    size_t n = message_header_unfold(msg, h, scratch);

    lua_pushlstring(L, scratch, n);
    lua_remove(L, -2);
}

/* value = tx:header(name) */
static int
lapi_tx_header(lua_State *L)
{
    size_t                 name_len, len, pos = 0;
    const char            *name, *msg;
    struct message_header  h;
    struct hook_message    m;

    luaL_checktype(L, 1, LUA_TTABLE);
    name = luaL_checklstring(L, 2, &name_len);
    lapi_tx_check(L, "tx:header", false, &m);
    msg = lapi_tx_message(&m, &len);
    if (message_header_find(msg, len, &pos, name, name_len, &h))
        lapi_tx_push_value(L, msg, &h);
    else
        lua_pushnil(L);
    return 1;
}

/* list = tx:headers(name) or tx:headers() for every field as { name =, value = } */
static int
lapi_tx_headers(lua_State *L)
{
    size_t                 name_len = 0, len, pos = 0;
    const char            *name = NULL, *msg;
    struct message_header  h;
    struct hook_message    m;
    int                    n = 0;

    luaL_checktype(L, 1, LUA_TTABLE);
    if (!lua_isnoneornil(L, 2))
        name = luaL_checklstring(L, 2, &name_len);
    lapi_tx_check(L, "tx:headers", false, &m);
    msg = lapi_tx_message(&m, &len);
    lua_newtable(L);
    while (name != NULL ? message_header_find(msg, len, &pos, name, name_len, &h)
                        : message_header_next(msg, len, &pos, &h)) {
        if (name == NULL) {
            lua_createtable(L, 0, 2);
            lua_pushlstring(L, msg + h.start, h.name_len);
            lua_setfield(L, -2, "name");
        }
        lapi_tx_push_value(L, msg, &h);
        if (name == NULL)
            lua_setfield(L, -2, "value");
        lua_rawseti(L, -2, ++n);
    }
    return 1;
}

/* RFC 5322 section 3.6.8: field-name = 1*ftext (printable US-ASCII but ':'). */
static bool
lapi_tx_is_field_name(const char *s, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++)
        if (s[i] < 33 || s[i] > 126 || s[i] == ':')
            return false;
    return len > 0;
}

/* Open a gap of n octets at off (relative to the client's message), charged to the
 * memory budget like the message itself. */
static int
lapi_tx_insert(struct hook_run *run, const struct hook_message *m, size_t off, const char *p,
               size_t n)
{
    size_t at = m->body_start + off, used = buf_used(m->msg);
    char  *head;

    if (run->ctx.message_reserve == NULL ||
        run->ctx.message_reserve(run->ctx.owner, n, used + n) != 0)
        return -1;
    head = buf_head(m->msg);
    memmove(head + at + n, head + at, used - at);
    memcpy(head + at, p, n);
    m->msg->len += n;
    return 0;
}

/* ok, err = tx:add_header(name, value) */
static int
lapi_tx_add_header(lua_State *L)
{
    size_t               name_len, value_len, added;
    const char          *name, *value;
    struct hook_run     *run;
    struct hook_message  m;
    luaL_Buffer          b;

    luaL_checktype(L, 1, LUA_TTABLE);
    name = luaL_checklstring(L, 2, &name_len);
    value = luaL_checklstring(L, 3, &value_len);
    luaL_argcheck(L, lapi_tx_is_field_name(name, name_len), 2,
                  "not a header name (printable ASCII without ':')");
    luaL_argcheck(L, strcspn(value, "\r\n") == value_len, 3, "CR, LF or NUL in the value");
    luaL_argcheck(L, name_len + 2 + value_len <= LAPI_TX_LINE_MAX, 3,
                  "header line over 998 octets");
    run = lapi_tx_check(L, "tx:add_header", true, &m);
    added = lapi_tx_added(&m);
    if (added + name_len + value_len + 4 > LAPI_TX_ADDED_MAX) {
        lua_pushnil(L);
        lua_pushliteral(L, "too many added headers");
        return 2;
    }
    luaL_buffinit(L, &b);
    luaL_addlstring(&b, name, name_len);
    luaL_addlstring(&b, ": ", 2);
    luaL_addlstring(&b, value, value_len);
    luaL_addlstring(&b, "\r\n", 2);
    luaL_pushresult(&b);
    if (lapi_tx_insert(run, &m, added, lua_tostring(L, -1), lua_objlen(L, -1)) != 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "out of memory");
        return 2;
    }
    *m.added_end = m.body_start + added + name_len + value_len + 4;
    lua_pushboolean(L, 1);
    return 1;
}

/* Cut the field h (offsets relative to the client's message) out of the buffer. */
static void
lapi_tx_cut(const struct hook_message *m, const struct message_header *h)
{
    size_t n = h->end - h->start, at = m->body_start + h->start, used = buf_used(m->msg);
    char  *head = buf_head(m->msg);

    memmove(head + at, head + at + n, used - at - n);
    m->msg->len -= n;
    if (*m->added_end > at) /* one of ours: what follows the added ones moved up */
        *m->added_end -= n;
}

/* n = tx:remove_header(name) */
static int
lapi_tx_remove_header(lua_State *L)
{
    size_t                 name_len, len, pos = 0;
    const char            *name, *msg;
    struct message_header  h;
    struct hook_message    m;
    lua_Integer            n = 0;

    luaL_checktype(L, 1, LUA_TTABLE);
    name = luaL_checklstring(L, 2, &name_len);
    lapi_tx_check(L, "tx:remove_header", true, &m);
    msg = lapi_tx_message(&m, &len);
    while (message_header_find(msg, len, &pos, name, name_len, &h)) {
        lapi_tx_cut(&m, &h);
        msg = lapi_tx_message(&m, &len);
        pos = h.start; /* the next field moved up to where this one was */
        n++;
    }
    lua_pushinteger(L, n);
    return 1;
}

/* body = tx:body([max]) */
static int
lapi_tx_body(lua_State *L)
{
    size_t              len, off;
    const char         *msg;
    lua_Integer         max;
    struct hook_message m;

    luaL_checktype(L, 1, LUA_TTABLE);
    max = luaL_optinteger(L, 2, -1);
    luaL_argcheck(L, max >= 0 || lua_isnoneornil(L, 2), 2, "negative");
    lapi_tx_check(L, "tx:body", false, &m);
    msg = lapi_tx_message(&m, &len);
    off = message_body_offset(msg, len);
    len -= off;
    if (max >= 0 && (size_t)max < len)
        len = (size_t)max;
    lua_pushlstring(L, msg + off, len);
    return 1;
}

void
lapi_tx_methods(lua_State *L)
{
    static const luaL_Reg methods[] = {
        { "header", lapi_tx_header },
        { "headers", lapi_tx_headers },
        { "add_header", lapi_tx_add_header },
        { "remove_header", lapi_tx_remove_header },
        { "body", lapi_tx_body },
        { NULL, NULL },
    };

    if (luaL_newmetatable(L, LAPI_TX_META)) {
        lua_newtable(L);
        luaL_register(L, NULL, methods);
        lua_setfield(L, -2, "__index");
    }
    lua_setmetatable(L, -2);
}
