/* core/policy/hook_stats.c: the hook duration histograms; see hook_stats.h. */
#include "policy/hook_stats.h"

#include "util/counter.h"

/* From half a millisecond (a hook that answers from memory, or reads a zone) to five
 * seconds (the default hook_timeout is 5: a run that used up its budget is in the last
 * finite bucket, or over it when it ran into the timeout) in the usual 1-2.5-5 steps. */
const double hook_stats_bounds[HOOK_STATS_BUCKETS] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
};
const char *const hook_stats_bound_names[HOOK_STATS_BUCKETS] = {
    "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5",
    "1", "2.5", "5",
};

unsigned
hook_stats_bucket(double secs)
{
    unsigned b = 0;

    while (b < HOOK_STATS_BUCKETS && secs > hook_stats_bounds[b]) /* 13 compares at most */
        b++;
    return b;
}

void
hook_stats_add(struct hook_stats *hs, enum policy_hook hook, double secs)
{
    if (hs == NULL || (unsigned)hook >= POLICY_N_HOOKS)
        return;
    if (!(secs > 0)) /* the loop's clock never goes back, but a NaN must not count */
        secs = 0;
    counter_inc(&hs->runs[hook][hook_stats_bucket(secs)]);
    counter_add(&hs->sum_us[hook], (uint64_t)(secs * 1e6 + 0.5));
}
