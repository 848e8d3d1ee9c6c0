/* core/daemon/control_ops.h: what the control socket (control.c), the commands it runs
 * (control_cmd.c) and the daemon share: the limits of a request and a reply, and
 * struct control_ops, the daemon's side (its status, a reload, the running configuration). Only declarations. */
#ifndef SLUICE_CONTROL_OPS_H
#define SLUICE_CONTROL_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "policy/hook_stats.h"
#include "proto/sasl.h"

#define CONTROL_MAX_REQUEST 4096 /* octets in a request line, LF included */
#define CONTROL_TIMEOUT     2.0  /* seconds a client has to send its line and read the reply */
#define CONTROL_MAX_REPLY   (8u << 20) /* octets: a bigger reply becomes an error reply */
#define CONTROL_MAX_ENTRIES 10000 /* keys in one show or list reply, then "truncated":true */
/* Series of the per-upstream counters: distinct host:port ever configured since start,
 * "other" included (what comes after shares "other"; docs/metrics.md) */
#define CONTROL_MAX_UPSTREAMS 256
/* ... of the per-domain message counters: declared domains ever configured, "other"
 * included */
#define CONTROL_MAX_DOMAINS 1024
#define CONTROL_MAX_STATES  16 /* room for enum smtp_state (smtp/smtp_session.h) */
#define CONTROL_AUTH_MECHS    (SASL_MECH_OAUTHBEARER + 1) /* rows of auth, NONE's unused */

/* One upstream host:port's pool counters, summed over the workers (relay/upstream_pool.h). */
struct control_upstream {
    const char *name;   /* borrows the daemon's label ("host:port", or "other") */
    uint64_t    open, idle, waits, wait_timeouts, connect_failures, errors;
};

/* One declared domain's messages, summed over the workers. */
struct control_domain {
    const char *name;   /* borrows the daemon's label (a domain name, or "other") */
    uint64_t    relayed, failed;
};

/* Filled by the daemon on request, from the control thread: any field the daemon keeps
 * per worker it must read in a thread-safe way (atomics, or a lock of its own). */
struct control_status {
    unsigned generation;             /* 1 at start, +1 per successful reload */
    double   started, loaded;        /* wall-clock times: daemon start, this generation's load */
    unsigned reloads_ok, reloads_failed;
    char     last_reload_error[512]; /* "" when none */
    int      workers;
    size_t   sessions;               /* open now */
    uint64_t sessions_total, messages_relayed, messages_failed;
    uint64_t auth_ok, auth_failed;   /* every mechanism's */
    uint64_t auth[CONTROL_AUTH_MECHS][2]; /* by enum sasl_mech: [m][0] ok, [m][1] failed */
    size_t   old_generations;        /* older generations still finishing sessions */
    /* memory for messages in transit (core/util/inflight.h): octets reserved now, the limits,
     * clients holding some, transactions refused with 452 4.3.1 since start */
    size_t   inflight_bytes, inflight_max_bytes, inflight_max_per_client, inflight_clients;
    uint64_t inflight_refused;
    /* SMTP sessions in each state of the session's state machine now (docs/smtp.md) */
    const char *state_names[CONTROL_MAX_STATES]; /* static: "NEW", "CMD", ... */
    uint64_t    states[CONTROL_MAX_STATES];
    size_t      n_states;
    uint64_t    refused_max_connections, refused_max_connections_per_ip;
    /* policy hook durations (policy/hook_stats.h), by enum policy_hook: runs per bucket
     * (not cumulative; the last one over every bound) and their sum */
    uint64_t    hook_runs[POLICY_N_HOOKS][HOOK_STATS_BUCKETS + 1];
    uint64_t    hook_sum_us[POLICY_N_HOOKS];
    /* every upstream configured since start, in the order they were first configured */
    struct control_upstream upstreams[CONTROL_MAX_UPSTREAMS];
    size_t                  n_upstreams;
    /* "other" first, then every declared domain since start, in the order first declared */
    struct control_domain   domains[CONTROL_MAX_DOMAINS];
    size_t                  n_domains;
};

struct config;

/* The daemon's side. All are called on the control thread, one request at a time. */
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

#endif
