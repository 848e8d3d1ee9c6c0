/* core/daemon/worker_trim.h: when a worker gives memory back to the system. glibc keeps
 * the heap that freed sessions leave (each worker thread has its own arena), so after
 * 10,000 idle connections closed, RSS stayed where it was. Once a worker has
 * WORKER_TRIM_DROP fewer sessions than its peak since the last trim, a timer calls the
 * worker's trim function (malloc_trim, the Lua states' collection: worker.c), at most
 * once per WORKER_TRIM_INTERVAL, so that the cost stays bounded however sessions come and
 * go (docs/benchmarks.md "Memory per idle connection"). Worker thread only. */
#ifndef SLUICE_WORKER_TRIM_H
#define SLUICE_WORKER_TRIM_H

#include <ev.h>
#include <stddef.h>

#define WORKER_TRIM_DROP     256  /* sessions fewer than the peak: worth a trim */
#define WORKER_TRIM_INTERVAL 1.0  /* seconds from one trim to the next, at least */
#define WORKER_TRIM_DELAY    0.2  /* seconds from the drop to the trim, at least: a mass
                                   * close is mostly over by then */

/* Give memory back; peak: the most sessions since the last trim, sessions: now. */
typedef void worker_trim_fn(void *arg, size_t peak, size_t sessions);

struct worker_trim {
    ev_timer        timer;    /* armed: a trim is due */
    struct ev_loop *loop;     /* borrows: the worker's */
    size_t          peak;     /* most sessions at once since the last trim */
    size_t          sessions; /* now */
    double          last;     /* ev_now() of the last trim */
    worker_trim_fn *fn;
    void           *arg;      /* borrows: fn's */
};

/* Embedded in its worker; nothing is allocated. */
void worker_trim_init(struct worker_trim *t, struct ev_loop *loop, worker_trim_fn *fn,
                      void *arg);
/* The worker has this many sessions now (after each start and end of one): may arm the
 * timer; fn runs from the loop, never from this call. */
void worker_trim_count(struct worker_trim *t, size_t sessions);
/* Disarm (the worker drains or goes): a due trim is dropped. */
void worker_trim_stop(struct worker_trim *t);

/* The process's resident memory now, in KiB (/proc/self/statm); -1 when unknown. */
long worker_trim_rss_kib(void);

#endif
