/* tests/unit/test_hook_stats.c: core/policy/hook_stats.c -- a duration falls in the first
 * bucket whose bound it does not exceed (a bound is inclusive, as Prometheus's `le`), past
 * the last bound in the overflow slot, and its microseconds add to the hook's sum. */
#include <math.h>

#include "check.h"
#include "policy/hook_stats.h"
#include "util/counter.h"

static void
a_duration_falls_in_the_first_bucket_whose_bound_it_does_not_exceed(void)
{
    static const struct {
        double   secs;
        unsigned bucket;
    } cases[] = {
        {0, 0},       {0.0005, 0},  {0.00051, 1}, {0.001, 1}, {0.003, 3},
        {0.1, 7},     {0.2, 8},     {5, 12},      {5.001, 13}, {3600, 13},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        CHECK_EQ_INT(hook_stats_bucket(cases[i].secs), cases[i].bucket);
    for (unsigned b = 1; b < HOOK_STATS_BUCKETS; b++)
        CHECK(hook_stats_bounds[b] > hook_stats_bounds[b - 1]);
}

static void
a_run_counts_in_its_hook_and_adds_its_microseconds(void)
{
    static struct hook_stats hs;

    hook_stats_add(&hs, POLICY_ON_AUTH, 0.25);
    hook_stats_add(&hs, POLICY_ON_AUTH, 0.0001);
    hook_stats_add(&hs, POLICY_ON_AUTH, -1);  /* never: counts as 0 */
    hook_stats_add(&hs, POLICY_ON_AUTH, NAN); /* never: counts as 0 */
    hook_stats_add(&hs, POLICY_ON_RCPT, 9);
    hook_stats_add(NULL, POLICY_ON_RCPT, 9);  /* not counted, no crash */
    CHECK_EQ_INT(counter_get(&hs.runs[POLICY_ON_AUTH][8]), 1);
    CHECK_EQ_INT(counter_get(&hs.runs[POLICY_ON_AUTH][0]), 3);
    CHECK_EQ_INT(counter_get(&hs.sum_us[POLICY_ON_AUTH]), 250100);
    CHECK_EQ_INT(counter_get(&hs.runs[POLICY_ON_RCPT][HOOK_STATS_BUCKETS]), 1);
    CHECK_EQ_INT(counter_get(&hs.sum_us[POLICY_ON_RCPT]), 9000000);
    CHECK_EQ_INT(counter_get(&hs.runs[POLICY_ON_CONNECT][0]), 0);
}

int
main(void)
{
    RUN(a_duration_falls_in_the_first_bucket_whose_bound_it_does_not_exceed);
    RUN(a_run_counts_in_its_hook_and_adds_its_microseconds);
    return check_summary();
}
