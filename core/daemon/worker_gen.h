/* core/daemon/worker_gen.h: what one worker runs one generation with: the policies' Lua state
 * and the upstream pool (both made from that generation's configuration). New sessions
 * pin the worker's current one; a reload gives the worker a new one, and the old one
 * lives on until its last session has gone (sessions finish on the generation they
 * started with). Made on any thread (the main thread makes them during a reload),
 * used and freed only on the worker's thread afterwards. */
#ifndef SLUICE_WORKER_GEN_H
#define SLUICE_WORKER_GEN_H

#include <stddef.h>
#include <stdint.h>

struct audit;
struct config;
struct ev_loop;
struct generation;
struct policy_vm;
struct zones;
struct zone_link;
struct upstream_pool;
struct upstream_pool_counters;
struct stats_labels;

struct worker_gen {
    struct generation    *gen;      /* holds a reference */
    const struct config  *cfg;      /* gen's configuration */
    struct policy_vm     *vm;       /* owns */
    struct upstream_pool *pool;     /* owns */
    uint16_t             *domain_slots; /* owns; cfg->domains[i]'s slot in the worker's
                                         * domain_messages (all 0 without counts) */
    size_t                sessions; /* pinned to this one now (worker thread only) */
    struct worker_gen    *next;     /* the worker's list of older ones */
};

/* Where a worker generation counts (docs/metrics.md): the daemon's label slots, which
 * worker_gen_new() extends with the configuration's names (so it runs where those may be
 * written: at start, or in a reload under daemon_ctl.mu), and the worker's counters,
 * one per slot. All borrowed; they outlive every generation. */
struct worker_gen_counts {
    struct stats_labels           *upstream_labels; /* host:port of each server */
    struct upstream_pool_counters *upstreams;       /* the worker's, by upstream slot */
    struct stats_labels           *domain_labels;   /* each declared domain's name */
};

/* A worker generation of g for a worker whose loop is loop, or NULL and the reason in
 * err (a policy that does not load, an upstream that does not resolve). zones, zlink (the
 * worker's Redis connection) and audit (each may be NULL) are borrowed and outlive it.
 * counts may be NULL (nothing is counted where anyone can read it). Takes its own
 * reference to g. */
struct worker_gen *worker_gen_new(struct generation *g, struct ev_loop *loop,
                                  struct zones *zones, struct zone_link *zlink,
                                  struct audit *audit, const struct worker_gen_counts *counts,
                                  char *err, size_t errlen);
/* Close the pool's connections (QUIT to idle ones), close the Lua state, drop the
 * reference. Only once no session uses it. NULL is fine. */
void worker_gen_free(struct worker_gen *wg);

#endif
