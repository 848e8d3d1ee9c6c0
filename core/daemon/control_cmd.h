/* core/daemon/control_cmd.h: one control request line -> its JSON reply (docs/ctl.md). Used by
 * control.c, which owns the socket and the thread, and by nothing else. Everything here
 * runs on the control thread; it touches the zones only through the Lua modules that own
 * their keys (control_lua.h) and the daemon only through struct control_ops. */
#ifndef SLUICE_CONTROL_CMD_H
#define SLUICE_CONTROL_CMD_H

#include <stdbool.h>
#include <stddef.h>

#include "daemon/control_ops.h"

struct zones;
struct audit;

#define CONTROL_SHOW_VALUE 256 /* octets of a string value shown */

/* What requests run against: copied or borrowed by control_start(). */
struct control_env {
    struct control_ops ops;
    struct zones      *zones; /* borrows; NULL: the ratelimit and token commands answer an
                               * error */
    struct audit      *audit; /* borrows; NULL: status has no "audit" part */
};

/* What was asked, for the control.command log line. */
struct control_request {
    const char *command;   /* static: "status", "ratelimit reset", "(unknown)", ... */
    const char *name;      /* borrows the request line; NAME or PREFIX, NULL if none */
    size_t      name_len;
    int         log_level; /* LOG_NOTICE for what changes something, else LOG_INFO */
};

/* A reply being built: one JSON object and a LF. */
struct control_out {
    char  *p;          /* owns; NUL-terminated, NULL until something is written */
    size_t len, cap;
    bool   failed;     /* out of memory, or over CONTROL_MAX_REPLY: p is no longer valid */
    bool   ok;         /* the reply says "ok":true */
    char   error[512]; /* !ok: the error it gives, for the log */
};

/* Parse line (len octets, no LF) and run it; *out gets the whole reply, *rq what was
 * asked. May block in ops->reload. Never fails: every problem is an "ok":false reply. */
void control_cmd_run(const struct control_env *env, const char *line, size_t len,
                     struct control_request *rq, struct control_out *out);

struct control_lua;
/* A Lua state over the running configuration (control_lua.h) for one command, or NULL with
 * an error reply in *out. End it with control_cmd_lua_end(env, cl, *ref). */
struct control_lua *control_cmd_lua_begin(const struct control_env *env, void **ref,
                                          struct control_out *out);
void                control_cmd_lua_end(const struct control_env *env, struct control_lua *cl,
                                        void *ref);

/* token deny / token allow (control_token.c); s is what follows "token ". */
void control_token_run(const struct control_env *env, const char *s, size_t n,
                       struct control_request *rq, struct control_out *out);

/* Writers for the command files: {"ok":true, then "key":value members, then the end. */
void control_out_begin_ok(struct control_out *out);
void control_out_text(struct control_out *out, const char *key, const char *s, size_t n);
void control_out_secs(struct control_out *out, const char *key, double v);
void control_out_bool(struct control_out *out, const char *key, bool v);
void control_out_finish(struct control_out *out);

/* Replace whatever *out holds by {"ok":false,"error":error}. */
void control_out_error(struct control_out *out, const char *error);
void control_out_cleanup(struct control_out *out);

#endif
