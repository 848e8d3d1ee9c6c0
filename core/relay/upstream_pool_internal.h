/* core/relay/upstream_pool_internal.h: what core/relay/upstream_pool.c (the pool) and
 * core/relay/relay_job.c (the jobs) share: their structs, and the calls each makes into
 * the other. Nothing outside core/relay/ includes it. */
#ifndef SLUICE_UPSTREAM_POOL_INTERNAL_H
#define SLUICE_UPSTREAM_POOL_INTERNAL_H

#include <ev.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "relay/upstream.h"
#include "relay/upstream_pool.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

#define POOL_ADDRS_MAX 4     /* addresses kept per server name */
#define POOL_DOWN_SECS 10.0  /* a server whose set-up failed is tried last for this long */
#define POOL_NO_TARGET SIZE_MAX

struct pool_addr {
    struct sockaddr_storage ss;
    socklen_t               len;
    ev_tstamp               down_until; /* set-up failed recently: try the others first */
};

struct pool_conn;

struct pool_key {
    const struct config_upstream_server *srv;     /* borrows cfg */
    SSL_CTX                             *ssl_ctx; /* owns; NULL for cleartext */
    struct pool_addr                     addrs[POOL_ADDRS_MAX];
    size_t                               n_addrs;
    struct pool_conn                    *idle;    /* most recently used first */
    size_t                               n_open;  /* counted against pool_max_per_worker */
    struct upstream_job                 *wait_head, *wait_tail; /* FIFO */
};

struct pool_target {
    size_t key;  /* index into pool->keys */
    size_t addr; /* index into that key's addrs */
};

struct pool_set {
    struct pool_target *targets; /* owns; every address of every server, in order */
    size_t              n_targets;
};

enum pool_conn_state {
    PC_SETUP, /* connecting and setting up, for pc->job (NULL if it was cancelled) */
    PC_IDLE,  /* in key->idle */
    PC_BUSY,  /* carrying pc->job's transaction */
};

struct pool_conn {
    struct upstream_pool *pool;      /* borrows */
    struct pool_key      *key;       /* borrows */
    size_t                addr;      /* index into key->addrs */
    struct upstream      *u;         /* owns */
    struct upstream_job  *job;       /* borrows; NULL when idle */
    enum pool_conn_state  state;
    struct pool_conn     *prev, *next; /* pool->conns */
    struct pool_conn     *idle_next;   /* key->idle */
};

enum job_state {
    JOB_WAITING,    /* in a key's FIFO; timer = how long it may wait */
    JOB_CONNECTING, /* pc is being set up for it */
    JOB_RUNNING,    /* pc carries its transaction */
    JOB_FINISHED,   /* res is final; timer is fed and runs done() */
};

enum job_verdict {
    VERDICT_FINISH,   /* res is filled */
    VERDICT_RETRY,    /* same server, a new connection: the pooled one was dead */
    VERDICT_FAILOVER, /* next server in the set */
};

struct upstream_job {
    struct upstream_pool        *pool;  /* borrows */
    int                          set;
    uint64_t                     sid;
    const struct relay_envelope *env;   /* borrows until done() */
    const char                  *msg;   /* borrows until done() */
    size_t                       msg_len;
    relay_done_fn                done;
    void                        *ctx;
    enum job_state               state;
    size_t                       target;   /* index into the set's targets */
    bool                         retried;  /* the one retry after a dead pooled connection */
    bool                         fresh;    /* the next lease prefers a new connection */
    struct pool_conn            *pc;       /* borrows; JOB_CONNECTING and JOB_RUNNING */
    struct pool_key             *waiting_on; /* JOB_WAITING */
    struct upstream_job         *wait_next;
    struct upstream_job         *prev, *next; /* pool->jobs */
    ev_timer                     timer;
    ev_tstamp                    started;
    char                         last_error[240]; /* why the last server failed */
    char                         last_enhanced[8];
    struct relay_result          res;
    bool                         second_pass; /* trying the targets skipped as down */
    unsigned char                skipped[];   /* bit per target of the set: skipped as down */
};

struct upstream_pool {
    struct ev_loop      *loop;   /* borrows */
    const struct config *cfg;    /* borrows */
    struct pool_key     *keys;   /* owns */
    size_t               n_keys;
    struct pool_set     *sets;   /* owns; one per cfg->upstreams[] */
    size_t               n_sets;
    struct pool_conn    *conns;  /* owns every connection */
    struct upstream_job *jobs;   /* owns every job */
    size_t               n_conns, n_idle, n_waiting;
    unsigned long long   relayed, connects;
    bool                 draining;
};

/* ---- core/relay/relay_job.c, called by the pool ---- */

void pool_result(struct upstream_job *job, enum relay_status st, int code, const char *enhanced,
                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));
enum job_verdict pool_judge(struct upstream_job *job, struct upstream *u);
void pool_job_finish(struct upstream_job *job);
void pool_job_unlink(struct upstream_job *job);
void pool_job_next(struct upstream_job *job);

/* ---- core/relay/upstream_pool.c, called by the jobs ---- */

void pool_wait_remove(struct upstream_job *job);
void pool_job_lease(struct upstream_job *job);
void pool_conn_drop(struct pool_conn *pc, const char *reason);
void pool_key_serve(struct pool_key *key, struct upstream_pool *pool);

#endif
