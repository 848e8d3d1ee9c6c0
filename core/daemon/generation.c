/* core/daemon/generation.c: loading, sharing and comparing generations; see generation.h. */
#include "daemon/generation.h"

#include <ev.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

static struct generation *
generation_made(struct generation *g, int rc, unsigned id)
{
    if (rc != 0) {
        free(g);
        return NULL;
    }
    atomic_init(&g->refs, 1);
    g->id = id;
    g->loaded = ev_time();
    return g;
}

struct generation *
generation_load(const char *path, unsigned id, char *err, size_t errlen)
{
    struct generation *g = calloc(1, sizeof(*g));

    if (g == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    return generation_made(g, daemon_parts_load(path, &g->parts, err, errlen), id);
}

struct generation *
generation_new(struct config *cfg, unsigned id, char *err, size_t errlen)
{
    struct generation *g = calloc(1, sizeof(*g));

    if (g == NULL) {
        config_free(cfg);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    return generation_made(g, daemon_parts_build(cfg, &g->parts, err, errlen), id);
}

struct generation *
generation_ref(struct generation *g)
{
    atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
    return g;
}

void
generation_unref(struct generation *g)
{
    if (g == NULL || atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) != 1)
        return;
    daemon_parts_free(&g->parts);
    free(g);
}

static bool
generation_same_str(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* Same sockets: the workers' listening fds were bound for these. */
static bool
generation_same_listener(const struct config_listener *a, const struct config_listener *b)
{
    size_t i;

    if (a->port != b->port || a->tls != b->tls || strcmp(a->name, b->name) != 0)
        return false;
    for (i = 0; a->addresses[i] != NULL && b->addresses[i] != NULL; i++)
        if (strcmp(a->addresses[i], b->addresses[i]) != 0)
            return false;
    return a->addresses[i] == NULL && b->addresses[i] == NULL;
}

/* Zones are made once, at start (zone.c): none may be added, removed or resized. */
static bool
generation_same_zones(const struct config *a, const struct config *b)
{
    if (a->n_zones != b->n_zones)
        return false;
    for (size_t i = 0; i < a->n_zones; i++)
        if (strcmp(a->zones[i].name, b->zones[i].name) != 0 ||
            a->zones[i].size != b->zones[i].size || a->zones[i].evict != b->zones[i].evict ||
            a->zones[i].backend != b->zones[i].backend ||
            a->zones[i].fail_closed != b->zones[i].fail_closed)
            return false;
    return config_redis_same(a->redis, b->redis);
}

const char *
generation_restart_needed(const struct config *running, const struct config *next)
{
    if (running->n_listeners != next->n_listeners)
        return "listeners changed (names, addresses, ports or TLS modes)";
    for (size_t i = 0; i < running->n_listeners; i++)
        if (!generation_same_listener(&running->listeners[i], &next->listeners[i]))
            return "listeners changed (names, addresses, ports or TLS modes)";
    if (running->workers != next->workers)
        return "workers changed";
    if (strcmp(running->user, next->user) != 0)
        return "user changed";
    if (!generation_same_zones(running, next))
        return "zones changed (names, sizes, evict, backend, fail or the redis table; "
               "shdict_size is the zone 'default')";
    if (!generation_same_str(running->control_socket, next->control_socket))
        return "control_socket changed";
    if (!config_metrics_same(running->metrics, next->metrics))
        return "metrics changed (address, port, allow or tls)";
    return "";
}
