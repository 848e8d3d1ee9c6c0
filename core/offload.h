/* core/offload.h: a small thread pool for blocking or CPU-heavy work (password hashing).
 * Jobs are submitted from a worker's loop; work() runs on a pool thread; done() runs
 * back on the submitting worker's loop, woken through that worker's ev_async.
 *
 * Synchronisation: the job queue and each return queue have a mutex; a job is touched
 * by exactly one thread at a time (submitter -> pool thread -> submitter). */
#ifndef SLUICE_OFFLOAD_H
#define SLUICE_OFFLOAD_H

#include <ev.h>
#include <pthread.h>
#include <stdbool.h>

struct offload_job;
typedef void (*offload_fn)(struct offload_job *job);

struct offload_return; /* one per worker loop: the queue of finished jobs and its ev_async */

struct offload_job {
    offload_fn             work;   /* runs on a pool thread; must not touch loop state */
    offload_fn             done;   /* runs on the submitting loop; owns the job then */
    struct offload_return *ret;    /* borrows */
    struct offload_job    *next;   /* private: queue link */
};

struct offload;

/* Start n threads. NULL on failure. */
struct offload *offload_new(int nthreads);
/* Finish queued jobs' work and join the threads; done() callbacks of jobs whose loop
 * no longer runs are not called. NULL ok. */
void offload_free(struct offload *o);

/* The per-loop side: an ev_async started on loop. */
struct offload_return *offload_return_new(struct ev_loop *loop);
/* No job submitted through r may still be queued or running: free the pool first
 * (offload_free() finishes every job). Finished jobs whose done() never ran are dropped. */
void                   offload_return_free(struct offload_return *r);

/* Queue job (work and done set by the caller) to come back through r. Never calls
 * done() before returning. */
void offload_submit(struct offload *o, struct offload_return *r, struct offload_job *job);

#endif
