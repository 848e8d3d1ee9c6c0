/* tests/unit/test_inflight.c: the budget of memory for messages in transit: the total,
 * each client's share, release in pieces, reloads that lower a limit, and many threads
 * reserving and releasing at once without the total ever passing its limit. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

#include "check.h"
#include "util/inflight.h"

static void
a_client_gets_up_to_its_share_and_no_more(void)
{
    struct inflight      *f = inflight_new(1000, 300);
    struct inflight_stats st;

    CHECK_EQ_INT(inflight_reserve(f, "192.0.2.1", 200), INFLIGHT_OK);
    CHECK_EQ_INT(inflight_reserve(f, "192.0.2.1", 100), INFLIGHT_OK);
    CHECK_EQ_INT(inflight_reserve(f, "192.0.2.1", 1), INFLIGHT_CLIENT);
    CHECK_EQ_INT(inflight_reserve(f, "192.0.2.2", 300), INFLIGHT_OK); /* others still can */
    inflight_stats(f, &st);
    CHECK_EQ_INT(st.bytes, 600);
    CHECK_EQ_INT(st.clients, 2);
    CHECK_EQ_INT(st.refused, 0); /* the caller counts what it refuses, once */
    inflight_refused(f);
    inflight_stats(f, &st);
    CHECK_EQ_INT(st.refused, 1);
    inflight_release(f, "192.0.2.1", 300);
    inflight_release(f, "192.0.2.2", 300);
    inflight_free(f);
}

static void
the_total_binds_before_any_share_is_used_up(void)
{
    struct inflight      *f = inflight_new(500, 300);
    struct inflight_stats st;

    CHECK_EQ_INT(inflight_reserve(f, "a", 300), INFLIGHT_OK);
    CHECK_EQ_INT(inflight_reserve(f, "b", 200), INFLIGHT_OK);
    CHECK_EQ_INT(inflight_reserve(f, "c", 1), INFLIGHT_TOTAL);
    CHECK_EQ_INT(inflight_reserve(f, "b", 1), INFLIGHT_TOTAL); /* b's share has room */
    inflight_stats(f, &st);
    CHECK_EQ_INT(st.bytes, 500);
    CHECK_EQ_INT(st.clients, 2); /* c's failed attempt left no entry behind */
    inflight_release(f, "b", 200);
    CHECK_EQ_INT(inflight_reserve(f, "c", 200), INFLIGHT_OK);
    inflight_release(f, "a", 300);
    inflight_release(f, "c", 200);
    inflight_free(f);
}

static void
release_in_pieces_brings_everything_back_to_zero(void)
{
    struct inflight      *f = inflight_new(1 << 20, 1 << 20);
    struct inflight_stats st;

    CHECK_EQ_INT(inflight_reserve(f, "2001:db8::1", 65536), INFLIGHT_OK);
    CHECK_EQ_INT(inflight_reserve(f, "2001:db8::1", 131072), INFLIGHT_OK);
    inflight_release(f, "2001:db8::1", 100000);
    inflight_stats(f, &st);
    CHECK_EQ_INT(st.bytes, 65536 + 131072 - 100000);
    CHECK_EQ_INT(st.clients, 1);
    inflight_release(f, "2001:db8::1", 65536 + 131072 - 100000);
    inflight_stats(f, &st);
    CHECK_EQ_INT(st.bytes, 0);
    CHECK_EQ_INT(st.clients, 0);
    CHECK_EQ_INT(inflight_reserve(f, "2001:db8::1", 0), INFLIGHT_OK); /* no entry for 0 */
    inflight_stats(f, &st);
    CHECK_EQ_INT(st.clients, 0);
    inflight_free(f);
}

static void
lowered_limits_keep_what_is_held_and_refuse_what_is_new(void)
{
    struct inflight      *f = inflight_new(1000, 1000);
    struct inflight_stats st;

    CHECK_EQ_INT(inflight_reserve(f, "a", 800), INFLIGHT_OK);
    inflight_set_limits(f, 500, 300);
    CHECK_EQ_INT(inflight_reserve(f, "a", 1), INFLIGHT_CLIENT);
    CHECK_EQ_INT(inflight_reserve(f, "b", 1), INFLIGHT_TOTAL);
    inflight_release(f, "a", 700);
    CHECK_EQ_INT(inflight_reserve(f, "b", 300), INFLIGHT_OK);
    CHECK_EQ_INT(inflight_reserve(f, "a", 101), INFLIGHT_TOTAL);
    CHECK_EQ_INT(inflight_reserve(f, "a", 100), INFLIGHT_OK);
    inflight_stats(f, &st);
    CHECK_EQ_INT(st.bytes, 500);
    CHECK_EQ_INT(st.max_bytes, 500);
    CHECK_EQ_INT(st.max_per_client, 300);
    inflight_release(f, "a", 200);
    inflight_release(f, "b", 300);
    inflight_free(f);
}

/* ---- many threads at once ----------------------------------------------------------- */

#define T_THREADS 4
#define T_ROUNDS  20000
#define T_TOTAL   (40 * 1024)
#define T_SHARE   (16 * 1024)

struct t_arg {
    struct inflight *f;
    int              id;
    _Atomic size_t  *peak;     /* the largest total any thread saw after a reservation */
    _Atomic size_t  *over_share;
    _Atomic size_t  *refusals;
    _Atomic size_t  *held[3];  /* what each client holds, by our own count */
};

static void *
t_main(void *p)
{
    struct t_arg *a = p;
    const char   *keys[3] = { "198.51.100.1", "198.51.100.2", "2001:db8:1:2::/64" };
    size_t        mine[3] = { 0, 0, 0 };
    unsigned      seed = 2166136261u * (unsigned)(a->id + 1);

    for (int i = 0; i < T_ROUNDS; i++) {
        int    k;
        size_t n;

        seed = seed * 1103515245u + 12345u;
        k = (int)((seed >> 16) % 3);
        n = 512 + (seed >> 8) % 4096;
        if ((seed & 1) && mine[k] > 0) {
            atomic_fetch_sub(a->held[k], mine[k]);
            inflight_release(a->f, keys[k], mine[k]);
            mine[k] = 0;
        } else if (inflight_reserve(a->f, keys[k], n) != INFLIGHT_OK) {
            atomic_fetch_add(a->refusals, 1);
        } else {
            struct inflight_stats st;
            size_t                h = atomic_fetch_add(a->held[k], n) + n;

            mine[k] += n;
            inflight_stats(a->f, &st);
            if (st.bytes > atomic_load(a->peak))
                atomic_store(a->peak, st.bytes);
            if (h > T_SHARE)
                atomic_fetch_add(a->over_share, 1);
        }
    }
    for (int k = 0; k < 3; k++) {
        atomic_fetch_sub(a->held[k], mine[k]);
        inflight_release(a->f, keys[k], mine[k]);
    }
    return NULL;
}

static void
threads_never_pass_the_limits_and_leave_zero_behind(void)
{
    struct inflight      *f = inflight_new(T_TOTAL, T_SHARE);
    _Atomic size_t        peak = 0, over_share = 0, refusals = 0, held[3] = { 0, 0, 0 };
    struct t_arg          args[T_THREADS];
    pthread_t             th[T_THREADS];
    struct inflight_stats st;

    for (int i = 0; i < T_THREADS; i++) {
        args[i] = (struct t_arg){ .f = f, .id = i, .peak = &peak, .over_share = &over_share,
                                  .refusals = &refusals,
                                  .held = { &held[0], &held[1], &held[2] } };
        pthread_create(&th[i], NULL, t_main, &args[i]);
    }
    for (int i = 0; i < T_THREADS; i++)
        pthread_join(th[i], NULL);
    inflight_stats(f, &st);
    CHECK(atomic_load(&peak) <= T_TOTAL);
    CHECK(atomic_load(&peak) > T_SHARE); /* the test did push: more than one client's worth */
    CHECK_EQ_INT(atomic_load(&over_share), 0);
    CHECK(atomic_load(&refusals) > 0);
    CHECK_EQ_INT(st.bytes, 0);
    CHECK_EQ_INT(st.clients, 0);
    inflight_free(f);
}

int
main(void)
{
    RUN(a_client_gets_up_to_its_share_and_no_more);
    RUN(the_total_binds_before_any_share_is_used_up);
    RUN(release_in_pieces_brings_everything_back_to_zero);
    RUN(lowered_limits_keep_what_is_held_and_refuse_what_is_new);
    RUN(threads_never_pass_the_limits_and_leave_zero_behind);
    return check_summary();
}
