/* core/policy/hook_ctx.h: what the policy engine is given to run hooks for one client,
 * instead of the client's session: the loop, the configuration generation's services,
 * the session's id and client network, and the calls back into the owner. The caller
 * (core/smtp/smtp_hook.c) fills one per hook call; hook_run.c keeps a copy for as long
 * as the run lives, and the lapi_*.c bindings reach it through the run. Nothing here
 * points above policy/: where the engine needs the session (the verdict of a run that
 * waited, a password to remember after 235, the message being edited), it calls back
 * with the owner pointer it was given (STYLE.md 1: a callback registered from above
 * replaces an include that would point up). */
#ifndef SLUICE_HOOK_CTX_H
#define SLUICE_HOOK_CTX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/pin.h"

struct authdb;
struct buf;
struct config;
struct ev_loop;
struct hook_stats;
struct offload;
struct offload_return;
struct verdict;
struct zones;

/* The message of the transaction as tx:header .. tx:body read and edit it (lapi_tx.c). */
struct hook_message {
    struct buf *msg;        /* borrows: our Received: + the client's message, CRLF */
    size_t      body_start; /* offset of the client's bytes in msg */
    size_t     *added_end;  /* borrows: offset past the headers tx:add_header put below our
                             * Received:; 0 until the first */
};

/* A run that returned HOOK_PENDING ended with v (the run is freed already). */
typedef void hook_ctx_done_fn(void *owner, const struct verdict *v);

/* Every pointer borrows; all of it outlives the runs made with it. */
struct hook_ctx {
    uint64_t               sid;         /* the session's, for log lines */
    const char            *client;      /* the client network (iplimit.h): the offload
                                         * pool's per-client key */
    const struct config   *cfg;         /* the session's generation's configuration */
    struct ev_loop        *loop;        /* the worker's */
    struct offload        *offload;     /* NULL: calls needing the pool return
                                         * nil, 'thread pool unavailable' */
    struct offload_return *offload_ret; /* where offloaded work completes (the worker's) */
    struct zones          *zones;       /* the daemon's; the auth cache is one of them */
    /* The configuration generation of cfg, opaque here: a check on the offload pool or
     * an LDAP connect pins it while it runs, so that a reload cannot free cfg or authdb
     * under it. owner NULL: the caller keeps them alive (unit tests). */
    struct pin             gen;
    unsigned               gen_id;      /* gen's id (auth_cache_key()) */
    const struct authdb   *authdb;      /* gen's user files (sluice.passwd.verify) */
    struct hook_stats     *stats;       /* the worker's hook durations (hook_stats.h);
                                         * NULL: not counted */

    void             *owner; /* given back to the calls below */
    hook_ctx_done_fn *done;  /* the end of a run that returned HOOK_PENDING */
    /* A backend found the password right (cache_key as auth_cache_key() made it):
     * remember it for ttl seconds once the client has been sent 235, not before. */
    void (*remember_on_235)(void *owner, const char *cache_key, double ttl);
    /* The transaction's message now into *out: false when there is none. */
    bool (*message)(void *owner, struct hook_message *out);
    /* Room for n more octets in the message, up to cap, charged to the daemon's budget
     * for messages in transit: 0, or -1 (the message is unchanged). */
    int (*message_reserve)(void *owner, size_t n, size_t cap);
};

#endif
