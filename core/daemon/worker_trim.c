/* core/daemon/worker_trim.c: when a worker gives memory back; see worker_trim.h. What it
 * gives back is the trim function's business (worker.c). */
#include "daemon/worker_trim.h"

#include <stdio.h>
#include <unistd.h>

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

static void
worker_trim_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct worker_trim *t = container_of(w, struct worker_trim, timer);

    (void)revents;
    t->fn(t->arg, t->peak, t->sessions);
    t->peak = t->sessions;
    t->last = ev_now(loop);
}

void
worker_trim_init(struct worker_trim *t, struct ev_loop *loop, worker_trim_fn *fn, void *arg)
{
    *t = (struct worker_trim){.loop = loop, .fn = fn, .arg = arg,
                              .last = ev_now(loop) - WORKER_TRIM_INTERVAL};
    ev_init(&t->timer, worker_trim_cb);
}

void
worker_trim_count(struct worker_trim *t, size_t sessions)
{
    double delay;

    t->sessions = sessions;
    if (sessions > t->peak)
        t->peak = sessions;
    if (t->peak - sessions < WORKER_TRIM_DROP || ev_is_active(&t->timer))
        return;
    delay = t->last + WORKER_TRIM_INTERVAL - ev_now(t->loop);
    if (delay < WORKER_TRIM_DELAY)
        delay = WORKER_TRIM_DELAY;
    ev_timer_set(&t->timer, delay, 0.);
    ev_timer_start(t->loop, &t->timer);
}

void
worker_trim_stop(struct worker_trim *t)
{
    if (t->loop != NULL) /* NULL: never initialised (a worker_new that failed early) */
        ev_timer_stop(t->loop, &t->timer);
}

long
worker_trim_rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "re");
    long  size, resident = -1;

    if (f == NULL)
        return -1;
    if (fscanf(f, "%ld %ld", &size, &resident) != 2)
        resident = -1;
    fclose(f);
    return resident < 0 ? -1 : resident * (sysconf(_SC_PAGESIZE) / 1024);
}
