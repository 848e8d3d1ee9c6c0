/* core/util/offload.h: a small thread pool for blocking or CPU-heavy work (password hashing).
 * Jobs are submitted from a worker's loop; work() runs on a pool thread; done() runs
 * back on the submitting worker's loop, woken through that worker's ev_async.
 *
 * Work a client causes is bounded (docs/security.md "AUTH floods"): in total, and per
 * client, so that one address flooding AUTH cannot fill the queue ahead of everyone
 * else's; a cancelled job is skipped, never computed for nobody.
 *
 * Synchronisation: the job queue, the per-client counts and each return queue have a
 * mutex; a job is touched by exactly one thread at a time (submitter -> pool thread ->
 * submitter), except `cancelled`, an atomic the submitter may set while it is queued. */
#ifndef SLUICE_OFFLOAD_H
#define SLUICE_OFFLOAD_H

#include <ev.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

struct offload_job;
typedef void (*offload_fn)(struct offload_job *job);

struct offload_return; /* one per worker loop: the queue of finished jobs and its ev_async */

/* Client key length: an IPv4 address, or an IPv6 prefix such as "2001:db8:1:2::/64". */
#define OFFLOAD_CLIENT_MAX 48

struct offload_job {
    offload_fn             work;   /* runs on a pool thread; must not touch loop state */
    offload_fn             done;   /* runs on the submitting loop; owns the job then */
    struct offload_return *ret;    /* borrows */
    _Atomic bool           cancelled; /* set on the submitting loop: work() is skipped */
    char client[OFFLOAD_CLIENT_MAX];  /* private: the share it counts against, or "" */
    struct offload_job    *next;   /* private: queue link */
};

struct offload;

/* What offload_submit_for() did with a job. */
enum offload_rc {
    OFFLOAD_QUEUED,      /* done() will be called */
    OFFLOAD_FULL,        /* max_jobs jobs of clients are queued or running: not queued */
    OFFLOAD_CLIENT_FULL, /* this client has max_per_client of them: not queued */
};

/* Start n threads. At most max_jobs jobs submitted for a client are queued or running at
 * once, and at most max_per_client for any one client (0: no bound). NULL on failure. */
struct offload *offload_new(int nthreads, unsigned max_jobs, unsigned max_per_client);
/* Finish queued jobs' work and join the threads; done() callbacks of jobs whose loop
 * no longer runs are not called. NULL ok. */
void offload_free(struct offload *o);
/* New bounds (reload); jobs already queued stay. */
void offload_set_limits(struct offload *o, unsigned max_jobs, unsigned max_per_client);
/* Jobs of clients queued or running now (for status). */
unsigned offload_client_jobs(struct offload *o);

/* The per-loop side: an ev_async started on loop. */
struct offload_return *offload_return_new(struct ev_loop *loop);
/* No job submitted through r may still be queued or running: free the pool first
 * (offload_free() finishes every job). Finished jobs whose done() never ran get it now:
 * their owners must have let go of them (each done() frees an orphaned job). */
void                   offload_return_free(struct offload_return *r);

/* Queue job (work and done set by the caller) to come back through r, not counted
 * against any bound (the daemon's own work: resolving, dialing). Never calls done()
 * before returning. */
void offload_submit(struct offload *o, struct offload_return *r, struct offload_job *job);

/* The same for work a client caused (a password hash), counted against the bounds
 * under client (its address or network). On anything but OFFLOAD_QUEUED the job was not
 * taken: the caller still owns it and done() will not be called. */
enum offload_rc offload_submit_for(struct offload *o, struct offload_return *r,
                                   struct offload_job *job, const char *client);

/* The submitter no longer wants the result (its session ended, its hook timed out):
 * work() will not run if it has not started. done() is still called, to free the job.
 * Loop thread only. */
void offload_cancel(struct offload_job *job);

#endif
