/* tests/unit/test_offload.c: the thread pool's bounds and cancellation (core/util/offload.c):
 * work a client causes is bounded in total and per client, a cancelled job is never
 * computed, and every job's done() still comes back to free it. One pool thread, held
 * by a gate job, so that what is queued is known exactly. */
#include <ev.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#include "check.h"
#include "util/offload.h"

struct gate {
    pthread_mutex_t mu;
    pthread_cond_t  cv;
    bool            open;
};

struct job {
    struct offload_job job; /* first */
    struct gate       *gate;  /* NULL: no wait */
    atomic_int         worked;
    int                done;
};

static struct gate gate = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false };
static int         dones;

static void
job_work(struct offload_job *oj)
{
    struct job *j = (struct job *)oj;

    if (j->gate != NULL) {
        pthread_mutex_lock(&j->gate->mu);
        while (!j->gate->open)
            pthread_cond_wait(&j->gate->cv, &j->gate->mu);
        pthread_mutex_unlock(&j->gate->mu);
    }
    atomic_fetch_add(&j->worked, 1);
}

static void
job_done(struct offload_job *oj)
{
    ((struct job *)oj)->done++;
    dones++;
}

static void
job_init(struct job *j, struct gate *g)
{
    memset(j, 0, sizeof(*j));
    j->gate = g;
    j->job.work = job_work;
    j->job.done = job_done;
}

static void
gate_open(struct gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->open = true;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static void
stop_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)t, (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

/* Run the loop until want done() calls arrived (or 5 s passed). */
static void
wait_dones(struct ev_loop *loop, int want)
{
    ev_timer guard;

    ev_timer_init(&guard, stop_cb, 5., 0.);
    ev_timer_start(loop, &guard);
    while (dones < want && ev_is_active(&guard))
        ev_run(loop, EVRUN_ONCE);
    ev_timer_stop(loop, &guard);
}

static void
a_client_gets_its_share_and_no_more_then_others_still_get_in(void)
{
    struct ev_loop        *loop = ev_loop_new(EVFLAG_AUTO);
    struct offload        *o = offload_new(1, 5, 2);
    struct offload_return *r = offload_return_new(loop);
    struct job             hold, a1, a2, a3, b1, c1, c2, c3;

    dones = 0;
    gate.open = false;
    job_init(&hold, &gate);
    offload_submit(o, r, &hold.job); /* the daemon's own work: not counted */
    job_init(&a1, NULL), job_init(&a2, NULL), job_init(&a3, NULL);
    job_init(&b1, NULL), job_init(&c1, NULL), job_init(&c2, NULL), job_init(&c3, NULL);
    CHECK_EQ_INT(offload_submit_for(o, r, &a1.job, "192.0.2.1"), OFFLOAD_QUEUED);
    CHECK_EQ_INT(offload_submit_for(o, r, &a2.job, "192.0.2.1"), OFFLOAD_QUEUED);
    CHECK_EQ_INT(offload_submit_for(o, r, &a3.job, "192.0.2.1"), OFFLOAD_CLIENT_FULL);
    CHECK_EQ_INT(offload_submit_for(o, r, &b1.job, "2001:db8:1:2::/64"), OFFLOAD_QUEUED);
    CHECK_EQ_INT(offload_submit_for(o, r, &c1.job, "198.51.100.7"), OFFLOAD_QUEUED);
    CHECK_EQ_INT(offload_submit_for(o, r, &c2.job, "198.51.100.7"), OFFLOAD_QUEUED);
    CHECK_EQ_INT(offload_submit_for(o, r, &c3.job, "198.51.100.8"), OFFLOAD_FULL);
    CHECK_EQ_INT(offload_client_jobs(o), 5);
    gate_open(&gate);
    wait_dones(loop, 6);
    CHECK_EQ_INT(dones, 6);
    CHECK(a1.done == 1 && a2.done == 1 && b1.done == 1 && c1.done == 1 && c2.done == 1);
    CHECK(a3.done == 0 && c3.done == 0); /* refused: never taken, never handed back */
    CHECK_EQ_INT(offload_client_jobs(o), 0);
    CHECK_EQ_INT(offload_submit_for(o, r, &a3.job, "192.0.2.1"), OFFLOAD_QUEUED);
    wait_dones(loop, 7);
    CHECK(a3.done == 1 && atomic_load(&a3.worked) == 1);
    offload_free(o);
    offload_return_free(r);
    ev_loop_destroy(loop);
}

static void
a_cancelled_job_is_never_computed_but_comes_back(void)
{
    struct ev_loop        *loop = ev_loop_new(EVFLAG_AUTO);
    struct offload        *o = offload_new(1, 0, 0);
    struct offload_return *r = offload_return_new(loop);
    struct job             hold, victim, after;

    dones = 0;
    gate.open = false;
    job_init(&hold, &gate);
    job_init(&victim, NULL);
    job_init(&after, NULL);
    offload_submit(o, r, &hold.job);
    CHECK_EQ_INT(offload_submit_for(o, r, &victim.job, "192.0.2.1"), OFFLOAD_QUEUED);
    CHECK_EQ_INT(offload_submit_for(o, r, &after.job, "192.0.2.1"), OFFLOAD_QUEUED);
    offload_cancel(&victim.job);
    gate_open(&gate);
    wait_dones(loop, 3);
    CHECK_EQ_INT(atomic_load(&victim.worked), 0);
    CHECK_EQ_INT(victim.done, 1);
    CHECK_EQ_INT(atomic_load(&after.worked), 1);
    CHECK_EQ_INT(offload_client_jobs(o), 0);
    offload_free(o);
    offload_return_free(r);
    ev_loop_destroy(loop);
}

static void
new_limits_apply_to_the_next_submission(void)
{
    struct ev_loop        *loop = ev_loop_new(EVFLAG_AUTO);
    struct offload        *o = offload_new(1, 0, 1);
    struct offload_return *r = offload_return_new(loop);
    struct job             hold, a1, a2;

    dones = 0;
    gate.open = false;
    job_init(&hold, &gate), job_init(&a1, NULL), job_init(&a2, NULL);
    offload_submit(o, r, &hold.job);
    CHECK_EQ_INT(offload_submit_for(o, r, &a1.job, "192.0.2.1"), OFFLOAD_QUEUED);
    CHECK_EQ_INT(offload_submit_for(o, r, &a2.job, "192.0.2.1"), OFFLOAD_CLIENT_FULL);
    offload_set_limits(o, 0, 2);
    CHECK_EQ_INT(offload_submit_for(o, r, &a2.job, "192.0.2.1"), OFFLOAD_QUEUED);
    gate_open(&gate);
    wait_dones(loop, 3);
    CHECK_EQ_INT(dones, 3);
    offload_free(o);
    offload_return_free(r);
    ev_loop_destroy(loop);
}

int
main(void)
{
    RUN(a_client_gets_its_share_and_no_more_then_others_still_get_in);
    RUN(a_cancelled_job_is_never_computed_but_comes_back);
    RUN(new_limits_apply_to_the_next_submission);
    return check_summary();
}
