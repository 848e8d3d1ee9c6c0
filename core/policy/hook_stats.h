/* core/policy/hook_stats.h: how long policy hooks take, as histograms per hook
 * (sluice_hook_duration_seconds, docs/metrics.md): one per worker, which hook_run.c
 * adds every run to when it ends and the metrics listener sums over the workers. A run
 * lasts from hook_run_start() to its verdict (or its cancellation), every policy asked
 * and every wait included, by the loop's clock (ev_now(): the cost is a subtraction,
 * and a run that never waited starts and ends on the same loop iteration, so it reads
 * 0 and falls in the first bucket). */
#ifndef SLUICE_HOOK_STATS_H
#define SLUICE_HOOK_STATS_H

#include <stdatomic.h>
#include <stdint.h>

#include "policy/policy_vm.h"

#define HOOK_STATS_BUCKETS 13 /* finite upper bounds; one more slot counts what is over */

/* The bounds in seconds, ascending, and the same as the text of the `le` label. */
extern const double      hook_stats_bounds[HOOK_STATS_BUCKETS];
extern const char *const hook_stats_bound_names[HOOK_STATS_BUCKETS];

/* One worker's: written by that worker only (util/counter.h), read by any thread. */
struct hook_stats {
    /* [hook][b]: runs of at most hook_stats_bounds[b] seconds and more than the bound
     * before (not cumulative); [hook][HOOK_STATS_BUCKETS]: over the last bound */
    _Atomic uint64_t runs[POLICY_N_HOOKS][HOOK_STATS_BUCKETS + 1];
    _Atomic uint64_t sum_us[POLICY_N_HOOKS]; /* their durations added up, microseconds */
};

/* A run of hook took secs (< 0 counts as 0). hs NULL: nothing is counted. The worker's
 * thread only. */
void hook_stats_add(struct hook_stats *hs, enum policy_hook hook, double secs);

/* The bucket index secs falls in: the first bound it does not exceed, or
 * HOOK_STATS_BUCKETS. */
unsigned hook_stats_bucket(double secs);

#endif
