/* core/daemon/control.h: the control socket `sluice ctl` talks to (docs/ctl.md). A unix stream
 * socket, mode 0600, served by one thread of its own: a client sends one request line,
 * gets one JSON object on one line, and the server closes. Only uid 0 and the daemon's
 * own effective uid are answered (SO_PEERCRED), on top of the file mode.
 *
 * Requests: `status`, `reload`, `ratelimit show NAME`, `ratelimit reset NAME`,
 * `ratelimit list [PREFIX]`, `token deny|allow`. The rate-limit and token commands call
 * the Lua modules that own those keys (control_lua.h), loaded from the running
 * configuration's lua_dir; what the daemon's status, a reload and the running
 * configuration are is left to the caller's struct control_ops (control_ops.h). */
#ifndef SLUICE_CONTROL_H
#define SLUICE_CONTROL_H

#include "daemon/control_ops.h"

struct config;
struct zones;
struct audit;
struct control;

/* Bind path, mode 0600, and listen. A socket file already at path is unlinked first only
 * if nothing answers on it (left by a daemon that died, or that could not unlink it after
 * dropping privileges); a live one is the error "another sluice is running on PATH", and
 * anything at path that is not a socket is an error too. A missing directory is an error
 * (it is not created). Sets the process umask around bind(2): call it before any thread
 * that creates files starts, as root before privileges drop. Returns the server (not yet
 * serving), or NULL and the reason, naming path, in err. The caller frees it. */
struct control *control_open(const char *path, char *err, size_t errlen);

/* Serve on a thread of its own, all signals blocked in it. ops is copied; ops->ctx, zones
 * and audit are borrowed and must outlive control_free(); zones and audit may be NULL
 * (the ratelimit and token commands then answer an error; status has no zones or audit
 * part). 0, or -1 if
 * the thread cannot start (or was started already). */
int  control_start(struct control *c, const struct control_ops *ops, struct zones *zones,
                   struct audit *audit);

/* Stop the thread (a client still sending or reading is dropped; a reload in progress
 * is waited for: ops->reload returns first), close the socket and unlink its path if it
 * is still the file this server bound (EACCES, as after dropping privileges, is
 * ignored: the next start replaces the stale socket). NULL is a no-op. */
void control_free(struct control *c);

#endif
