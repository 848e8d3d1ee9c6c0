/* core/policy/lapi_session.h: the tables hooks get as arguments (lapi_session.c). Each pushes
 * onto L, the vm's main state. */
#ifndef SLUICE_LAPI_SESSION_H
#define SLUICE_LAPI_SESSION_H

#include <lua.h>
#include <stdbool.h>

struct smtp_session;
struct sasl_creds;
struct verdict;
struct smtp_relayed;

/* The session table, made on first use and kept in s->lua_session, fields refreshed. */
void lapi_push_session(lua_State *L, struct smtp_session *s);
/* Drop the session table (the session is being freed). */
void lapi_session_release(lua_State *L, struct smtp_session *s);
/* A tx table for s->tx; with_size: the message has arrived (on_data). */
void lapi_push_tx(lua_State *L, struct smtp_session *s, bool with_size);
/* on_auth's auth table: mechanism, user, and (with_secret) password or token. */
void lapi_push_auth(lua_State *L, const struct sasl_creds *creds, bool with_secret);
/* on_auth_result's verdict: { kind, code, enhanced, text } as the client gets it. */
void lapi_push_verdict(lua_State *L, const struct verdict *v);
/* on_relayed's reply: { success, code, enhanced, text, queue_id, upstream }. */
void lapi_push_relayed(lua_State *L, const struct smtp_relayed *r);

#endif
