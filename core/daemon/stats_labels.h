/* core/daemon/stats_labels.h: the label values of a per-worker counter family whose
 * series come from the configuration (an upstream's host:port, a domain's name), each
 * given a slot: an index into every worker's array of counters for that family. Slots are
 * only ever added, never reused or renamed, so a series keeps its counters across reloads
 * (a reload that drops a domain leaves its series as it was; one that brings it back
 * counts on from there) and a slot a session or a pool holds stays in bounds for good.
 * Slot 0 is "other": what the configuration does not name, and every name once the
 * capacity is used up, so the number of series is bounded whatever the configuration.
 *
 * Threads: one writer at a time (the main thread at start, then reloads, serialised by
 * daemon_ctl.mu) calls stats_labels_slot(); any thread may read the names and the count
 * at any time (the count is published with release order after its name is written). */
#ifndef SLUICE_STATS_LABELS_H
#define SLUICE_STATS_LABELS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#define STATS_LABELS_OTHER "other"

struct stats_labels {
    char          **names; /* owns; names[i] is slot i + 1's, written once */
    size_t          cap;   /* slots, "other" included; 0: every name is "other" */
    _Atomic size_t  n;     /* slots handed out, "other" not counted */
    _Atomic bool    overflowed; /* a name was given "other" for lack of room */
};

/* Room for cap slots ("other" included). A zeroed struct (cap 0) is valid too: every
 * name gets slot 0. 0, or -1 when out of memory. */
int  stats_labels_init(struct stats_labels *l, size_t cap);
void stats_labels_cleanup(struct stats_labels *l);

/* The slot of name: the one it has, a new one, or 0 when the registry is full, out of
 * memory, or name is "other". The one writer only. */
size_t stats_labels_slot(struct stats_labels *l, const char *name);

/* Slots in use, "other" included (at least 1). Any thread. */
size_t stats_labels_count(const struct stats_labels *l);
/* Whether a name was turned away for lack of room (its counts are under "other"). Any
 * thread. */
bool stats_labels_overflowed(const struct stats_labels *l);
/* The name of slot i < stats_labels_count(): borrowed, valid until cleanup. */
const char *stats_labels_name(const struct stats_labels *l, size_t i);

#endif
