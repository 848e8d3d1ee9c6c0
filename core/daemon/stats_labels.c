/* core/daemon/stats_labels.c: slots for configured label values; see stats_labels.h. */
#include "daemon/stats_labels.h"

#include <stdlib.h>
#include <string.h>

int
stats_labels_init(struct stats_labels *l, size_t cap)
{
    memset(l, 0, sizeof(*l));
    if (cap < 2)
        return 0;
    l->names = calloc(cap - 1, sizeof(*l->names));
    if (l->names == NULL)
        return -1;
    l->cap = cap;
    return 0;
}

void
stats_labels_cleanup(struct stats_labels *l)
{
    size_t n = atomic_load_explicit(&l->n, memory_order_relaxed);

    for (size_t i = 0; i < n; i++)
        free(l->names[i]);
    free(l->names);
    memset(l, 0, sizeof(*l));
}

size_t
stats_labels_slot(struct stats_labels *l, const char *name)
{
    size_t n = atomic_load_explicit(&l->n, memory_order_relaxed); /* we are the writer */
    char  *copy;

    if (strcmp(name, STATS_LABELS_OTHER) == 0)
        return 0;
    for (size_t i = 0; i < n; i++) /* bounded by cap; only at start and on reload */
        if (strcmp(l->names[i], name) == 0)
            return i + 1;
    if (n + 1 >= l->cap || (copy = strdup(name)) == NULL) {
        atomic_store_explicit(&l->overflowed, true, memory_order_relaxed);
        return 0;
    }
    l->names[n] = copy;
    atomic_store_explicit(&l->n, n + 1, memory_order_release); /* the name first */
    return n + 1;
}

size_t
stats_labels_count(const struct stats_labels *l)
{
    return atomic_load_explicit(&((struct stats_labels *)l)->n, memory_order_acquire) + 1;
}

bool
stats_labels_overflowed(const struct stats_labels *l)
{
    return atomic_load_explicit(&((struct stats_labels *)l)->overflowed, memory_order_relaxed);
}

const char *
stats_labels_name(const struct stats_labels *l, size_t i)
{
    return i == 0 ? STATS_LABELS_OTHER : l->names[i - 1];
}
