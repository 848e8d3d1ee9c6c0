/* core/daemon/control.h: the control socket `sluice ctl` talks to (docs/ctl.md). A unix stream
 * socket, mode 0600, served by one thread of its own: a client sends one request line,
 * gets one JSON object on one line, and the server closes. Only uid 0 and the daemon's
 * own effective uid are answered (SO_PEERCRED), on top of the file mode.
 *
 * Requests: `status`, `reload`, `ratelimit show NAME`, `ratelimit reset NAME`,
 * `ratelimit list [PREFIX]`, `token deny|allow`. The rate-limit and token commands call
 * the Lua modules that own those keys (control_lua.h), loaded from the running
 * configuration's lua_dir; what the daemon's status, a reload and the running
 * configuration are is left to the caller's struct control_ops. */
#ifndef SLUICE_CONTROL_H
#define SLUICE_CONTROL_H

#include <stddef.h>
#include <stdint.h>

#define CONTROL_MAX_REQUEST 4096 /* octets in a request line, LF included */
#define CONTROL_TIMEOUT     2.0  /* seconds a client has to send its line and read the reply */
#define CONTROL_MAX_REPLY   (8u << 20) /* octets: a bigger reply becomes an error reply */
#define CONTROL_MAX_ENTRIES 10000 /* keys in one show or list reply, then "truncated":true */

struct config;
struct zones;
struct audit;
struct control;

/* Filled by the daemon on request, from the control thread: any field the daemon keeps
 * per worker it must read in a thread-safe way (atomics, or a lock of its own). */
struct control_status {
    unsigned generation;             /* 1 at start, +1 per successful reload */
    double   started, loaded;        /* wall-clock times: daemon start, this generation's load */
    unsigned reloads_ok, reloads_failed;
    char     last_reload_error[512]; /* "" when none */
    int      workers;
    size_t   sessions;               /* open now */
    uint64_t sessions_total, messages_relayed, messages_failed, auth_ok, auth_failed;
    size_t   old_generations;        /* older generations still finishing sessions */
    /* memory for messages in transit (core/util/inflight.h): octets reserved now, the limits,
     * clients holding some, transactions refused with 452 4.3.1 since start */
    size_t   inflight_bytes, inflight_max_bytes, inflight_max_per_client, inflight_clients;
    uint64_t inflight_refused;
};

/* The daemon's side. Both are called on the control thread, one request at a time. */
struct control_ops {
    void *ctx;
    /* Reload now (blocking, on the control thread). 0 and "generation N" in msg, or -1
     * and the error ("file:line: reason") in msg. NULL: `reload` answers an error. */
    int  (*reload)(void *ctx, char *msg, size_t msglen);
    /* Fill *st (it arrives zeroed). NULL: `status` has only the dictionary and audit. */
    void (*status)(void *ctx, struct control_status *st);
    /* The running configuration, held (a reload cannot free it) until config_release()
     * is given *ref. The ratelimit and token commands load their Lua modules from its
     * lua_dir. NULL: those commands answer an error. */
    const struct config *(*config_hold)(void *ctx, void **ref);
    void                 (*config_release)(void *ctx, void *ref);
};

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
