/* tests/unit/test_worker_trim.c: core/daemon/worker_trim.c on a real loop with a counting
 * trim function: no trim while sessions only grow or drop by less than WORKER_TRIM_DROP;
 * one, from the loop and not from the call, after a larger drop; never two within
 * WORKER_TRIM_INTERVAL, and the peak starts again from each trim. Each loop run ends at
 * the trim (the event waited for) or at a guard timer. */
#include <ev.h>

#include "check.h"
#include "daemon/worker_trim.h"

static struct ev_loop *loop;

struct calls {
    int    n;
    size_t peak, sessions;
    double at[4];
};

static void
count_trim(void *arg, size_t peak, size_t sessions)
{
    struct calls *c = arg;

    if (c->n < 4)
        c->at[c->n] = ev_now(loop);
    c->n++;
    c->peak = peak;
    c->sessions = sessions;
    ev_break(loop, EVBREAK_ONE);
}

static void
guard_cb(struct ev_loop *l, ev_timer *t, int revents)
{
    (void)t;
    (void)revents;
    ev_break(l, EVBREAK_ONE);
}

/* Run the loop until the trim function breaks it, or secs pass. */
static void
run_for(double secs)
{
    ev_timer guard;

    ev_timer_init(&guard, guard_cb, secs, 0.);
    ev_timer_start(loop, &guard);
    ev_run(loop, 0);
    ev_timer_stop(loop, &guard);
}

/* n sessions start one by one, then go down to m one by one. */
static void
rise_and_fall(struct worker_trim *t, size_t from, size_t n, size_t m)
{
    for (size_t i = from + 1; i <= n; i++)
        worker_trim_count(t, i);
    for (size_t i = n; i-- > m;)
        worker_trim_count(t, i);
}

static void
a_small_drop_or_growth_never_trims(void)
{
    struct calls       c = {0};
    struct worker_trim t;

    worker_trim_init(&t, loop, count_trim, &c);
    rise_and_fall(&t, 0, 5000, 5000 - (WORKER_TRIM_DROP - 1));
    CHECK(!ev_is_active(&t.timer));
    run_for(WORKER_TRIM_DELAY + 0.3);
    CHECK_EQ_INT(c.n, 0);
    worker_trim_stop(&t);
}

static void
a_large_drop_trims_once_from_the_loop(void)
{
    struct calls       c = {0};
    struct worker_trim t;

    worker_trim_init(&t, loop, count_trim, &c);
    rise_and_fall(&t, 0, 3000, 0);
    CHECK_EQ_INT(c.n, 0); /* never from the call */
    CHECK(ev_is_active(&t.timer));
    run_for(5.);
    CHECK_EQ_INT(c.n, 1);
    CHECK_EQ_INT(c.peak, 3000);
    CHECK_EQ_INT(c.sessions, 0);
    CHECK_EQ_INT(t.peak, 0); /* counted again from here */
    CHECK(!ev_is_active(&t.timer));
    run_for(WORKER_TRIM_INTERVAL + 0.3); /* nothing new: nothing more */
    CHECK_EQ_INT(c.n, 1);
    worker_trim_stop(&t);
}

static void
trims_are_at_least_the_interval_apart_however_sessions_come_and_go(void)
{
    struct calls       c = {0};
    struct worker_trim t;

    worker_trim_init(&t, loop, count_trim, &c);
    rise_and_fall(&t, 0, 1000, 0);
    run_for(5.);
    CHECK_EQ_INT(c.n, 1);
    rise_and_fall(&t, 0, 1000, 0); /* at once after the first trim */
    CHECK(ev_is_active(&t.timer));
    run_for(5.);
    CHECK_EQ_INT(c.n, 2);
    CHECK(c.at[1] - c.at[0] >= WORKER_TRIM_INTERVAL - 0.01);
    CHECK_EQ_INT(c.peak, 1000);
    worker_trim_stop(&t);
}

static void
a_stopped_trim_never_runs(void)
{
    struct calls       c = {0};
    struct worker_trim t;

    worker_trim_init(&t, loop, count_trim, &c);
    rise_and_fall(&t, 0, 1000, 0);
    CHECK(ev_is_active(&t.timer));
    worker_trim_stop(&t);
    CHECK(!ev_is_active(&t.timer));
    run_for(WORKER_TRIM_DELAY + 0.3);
    CHECK_EQ_INT(c.n, 0);
}

static void
the_resident_size_is_read(void)
{
    long kib = worker_trim_rss_kib();

    CHECK(kib > 0);
    CHECK(kib < 64L * 1024 * 1024);
}

int
main(void)
{
    loop = ev_loop_new(EVFLAG_AUTO);
    RUN(a_small_drop_or_growth_never_trims);
    RUN(a_large_drop_trims_once_from_the_loop);
    RUN(trims_are_at_least_the_interval_apart_however_sessions_come_and_go);
    RUN(a_stopped_trim_never_runs);
    RUN(the_resident_size_is_read);
    ev_loop_destroy(loop);
    return check_summary();
}
