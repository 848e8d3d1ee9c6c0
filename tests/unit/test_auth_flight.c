/* tests/unit/test_auth_flight.c: identical checks in progress share one computation
 * (core/auth/auth_flight.c): who gets the result, what leaving does to the others, and
 * when the computation is cancelled. */
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "auth/auth_flight.h"
#include "check.h"

struct waiter {
    struct auth_flight_waiter w; /* first */
    int                       got_rc;
    const char               *got_reason;
    int                       dones;
    int                       order; /* when done came, counting from 1 */
};

static int dones_so_far;

static struct auth_flights *table_seen_from_done; /* for the re-entry case */
static bool                 found_from_done;
static int                  cancels;

static void
waiter_done(struct auth_flight_waiter *aw, int rc, const char *reason)
{
    struct waiter *w = (struct waiter *)aw;

    w->got_rc = rc;
    w->got_reason = reason;
    w->dones++;
    w->order = ++dones_so_far;
    if (table_seen_from_done != NULL)
        found_from_done = auth_flight_find(table_seen_from_done, "k1") != NULL;
}

static void
count_cancel(void *arg)
{
    (void)arg;
    cancels++;
}

static void
waiter_init(struct waiter *w)
{
    memset(w, 0, sizeof(*w));
    w->got_rc = -1;
    w->w.done = waiter_done;
}

static void
every_waiter_of_a_flight_gets_its_one_result_in_order_of_joining(void)
{
    struct auth_flights *fs = auth_flights_new();
    struct waiter        a, b, c;
    struct auth_flight  *f;

    waiter_init(&a), waiter_init(&b), waiter_init(&c);
    cancels = 0;
    f = auth_flight_new(fs, "k1");
    auth_flight_join(f, &a.w);
    auth_flight_set_cancel(f, count_cancel, NULL);
    CHECK(auth_flight_find(fs, "k1") == f);
    auth_flight_join(auth_flight_find(fs, "k1"), &b.w);
    auth_flight_join(auth_flight_find(fs, "k1"), &c.w);
    CHECK_EQ_INT(auth_flight_waiters(f), 3);
    CHECK_EQ_INT(auth_flight_finish(f, 7, "wrong password"), 3);
    CHECK(a.dones == 1 && b.dones == 1 && c.dones == 1);
    CHECK(a.got_rc == 7 && b.got_rc == 7 && c.got_rc == 7);
    CHECK(a.order < b.order && b.order < c.order);
    CHECK(strcmp(c.got_reason, "wrong password") == 0);
    CHECK(a.w.flight == NULL && c.w.flight == NULL);
    CHECK(auth_flight_find(fs, "k1") == NULL);
    CHECK_EQ_INT(cancels, 0); /* finished, not cancelled */
    auth_flights_free(fs);
}

static void
checks_of_different_keys_never_share(void)
{
    struct auth_flights *fs = auth_flights_new();
    struct waiter        a, b;
    struct auth_flight  *f1, *f2;

    waiter_init(&a), waiter_init(&b);
    f1 = auth_flight_new(fs, "authcache:1:aa");
    auth_flight_join(f1, &a.w);
    CHECK(auth_flight_find(fs, "authcache:1:ab") == NULL);
    CHECK(auth_flight_find(fs, "authcache:2:aa") == NULL);
    f2 = auth_flight_new(fs, "authcache:2:aa");
    auth_flight_join(f2, &b.w);
    CHECK(f1 != f2);
    auth_flight_finish(f1, 0, "ok");
    CHECK(a.dones == 1 && b.dones == 0);
    CHECK(auth_flight_find(fs, "authcache:2:aa") == f2);
    auth_flight_finish(f2, 1, "no");
    CHECK(b.dones == 1 && b.got_rc == 1);
    auth_flights_free(fs);
}

static void
a_waiter_that_leaves_is_not_told_and_the_others_still_are(void)
{
    struct auth_flights *fs = auth_flights_new();
    struct waiter        first, second, third;
    struct auth_flight  *f;

    waiter_init(&first), waiter_init(&second), waiter_init(&third);
    cancels = 0;
    f = auth_flight_new(fs, "k1");
    auth_flight_join(f, &first.w);
    auth_flight_set_cancel(f, count_cancel, NULL);
    auth_flight_join(f, &second.w);
    auth_flight_join(f, &third.w);
    auth_flight_leave(&first.w);  /* the one whose check started it goes */
    auth_flight_leave(&third.w);  /* and the last in the list */
    CHECK_EQ_INT(cancels, 0);
    CHECK_EQ_INT(auth_flight_waiters(f), 1);
    CHECK(auth_flight_find(fs, "k1") == f);
    CHECK_EQ_INT(auth_flight_finish(f, 0, "ok"), 1);
    CHECK(first.dones == 0 && third.dones == 0);
    CHECK(second.dones == 1 && second.got_rc == 0);
    auth_flights_free(fs);
}

static void
the_last_waiter_leaving_cancels_the_computation_and_the_next_check_starts_afresh(void)
{
    struct auth_flights *fs = auth_flights_new();
    struct waiter        a, b, c;
    struct auth_flight  *f;

    waiter_init(&a), waiter_init(&b), waiter_init(&c);
    cancels = 0;
    f = auth_flight_new(fs, "k1");
    auth_flight_join(f, &a.w);
    auth_flight_set_cancel(f, count_cancel, NULL);
    auth_flight_join(f, &b.w);
    auth_flight_leave(&a.w);
    CHECK_EQ_INT(cancels, 0);
    auth_flight_leave(&b.w);
    CHECK_EQ_INT(cancels, 1);
    CHECK(auth_flight_find(fs, "k1") == NULL);
    auth_flight_leave(&b.w); /* twice: nothing */
    CHECK_EQ_INT(cancels, 1);
    f = auth_flight_new(fs, "k1");
    auth_flight_join(f, &c.w);
    CHECK_EQ_INT(auth_flight_finish(f, 0, "ok"), 1);
    CHECK(a.dones == 0 && b.dones == 0 && c.dones == 1);
    auth_flights_free(fs);
}

static void
a_flight_is_out_of_the_table_before_its_waiters_resume(void)
{
    struct auth_flights *fs = auth_flights_new();
    struct waiter        a;
    struct auth_flight  *f;

    waiter_init(&a);
    f = auth_flight_new(fs, "k1");
    auth_flight_join(f, &a.w);
    table_seen_from_done = fs;
    found_from_done = true;
    auth_flight_finish(f, 0, "ok");
    table_seen_from_done = NULL;
    CHECK(a.dones == 1);
    CHECK(!found_from_done); /* a check made from done starts a flight of its own */
    auth_flights_free(fs);
}

static void
a_flight_nobody_joined_is_freed_by_leaving_without_a_cancel(void)
{
    struct auth_flights *fs = auth_flights_new();
    struct waiter        a;
    struct auth_flight  *f;

    waiter_init(&a);
    cancels = 0;
    f = auth_flight_new(fs, "k1"); /* the computation could not start: no cancel set */
    auth_flight_join(f, &a.w);
    auth_flight_leave(&a.w);
    CHECK_EQ_INT(cancels, 0);
    CHECK(auth_flight_find(fs, "k1") == NULL);
    auth_flights_free(NULL);
    auth_flights_free(fs);
}

int
main(void)
{
    RUN(every_waiter_of_a_flight_gets_its_one_result_in_order_of_joining);
    RUN(checks_of_different_keys_never_share);
    RUN(a_waiter_that_leaves_is_not_told_and_the_others_still_are);
    RUN(the_last_waiter_leaving_cancels_the_computation_and_the_next_check_starts_afresh);
    RUN(a_flight_is_out_of_the_table_before_its_waiters_resume);
    RUN(a_flight_nobody_joined_is_freed_by_leaving_without_a_cancel);
    return check_summary();
}
