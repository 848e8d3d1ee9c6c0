/* core/util/counter.h: a counter or gauge that one thread writes and any thread reads
 * (the metrics listener, `sluice ctl status`). The writer is always the same thread (a
 * worker, for what it counts), so an increment is a relaxed load and a relaxed store:
 * no read-modify-write, no lock prefix, no fence, as cheap as a plain add on a line the
 * worker owns. A reader sees some value the counter really had (never a torn one), and a
 * gauge moved up and down by its one writer is never seen below zero. Two threads writing
 * the same counter would lose counts: give each writer its own and sum them on reading. */
#ifndef SLUICE_COUNTER_H
#define SLUICE_COUNTER_H

#include <stdatomic.h>
#include <stdint.h>

/* Add d (a gauge goes down by adding (uint64_t)-1: unsigned arithmetic wraps back). Only
 * the counter's one writer calls this. */
static inline void
counter_add(_Atomic uint64_t *c, uint64_t d)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + d,
                          memory_order_relaxed);
}

static inline void
counter_inc(_Atomic uint64_t *c)
{
    counter_add(c, 1);
}

static inline void
counter_dec(_Atomic uint64_t *c)
{
    counter_add(c, (uint64_t)-1);
}

/* Any thread. */
static inline uint64_t
counter_get(const _Atomic uint64_t *c)
{
    return atomic_load_explicit((_Atomic uint64_t *)c, memory_order_relaxed);
}

#endif
