/* core/daemon/worker_gen.c: one worker's policies and upstream pool for one generation; see
 * worker_gen.h. */
#include "daemon/worker_gen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/control_ops.h"
#include "daemon/generation.h"
#include "daemon/stats_labels.h"
#include "policy/policy_vm.h"
#include "relay/upstream.h"
#include "relay/upstream_pool.h"

/* One pointer per server of cfg, set by set, to the worker's counters of its host:port
 * (upstream_pool_new()'s order), or NULL when out of memory. */
static struct upstream_pool_counters **
worker_gen_upstream_counters(const struct config *cfg, const struct worker_gen_counts *wc)
{
    struct upstream_pool_counters **out;
    size_t                          n = 0, k = 0;
    char                            name[300];

    for (size_t s = 0; s < cfg->n_upstreams; s++)
        n += cfg->upstreams[s].n_servers;
    out = calloc(n + 1, sizeof(*out));
    if (out == NULL)
        return NULL;
    for (size_t s = 0; s < cfg->n_upstreams; s++) {
        for (size_t i = 0; i < cfg->upstreams[s].n_servers; i++) {
            upstream_server_name(&cfg->upstreams[s].servers[i], name, sizeof(name));
            out[k++] = &wc->upstreams[stats_labels_slot(wc->upstream_labels, name)];
        }
    }
    return out;
}

/* Each declared domain's slot (stats_labels.h: "other" when there is no room left). */
static uint16_t *
worker_gen_domain_slots(const struct config *cfg, const struct worker_gen_counts *wc)
{
    uint16_t *out = calloc(cfg->n_domains + 1, sizeof(*out));

    _Static_assert(CONTROL_MAX_DOMAINS <= UINT16_MAX, "a slot fits in uint16_t");
    for (size_t i = 0; out != NULL && wc != NULL && i < cfg->n_domains; i++)
        out[i] = (uint16_t)stats_labels_slot(wc->domain_labels, cfg->domains[i].name);
    return out;
}

struct worker_gen *
worker_gen_new(struct generation *g, struct ev_loop *loop, struct zones *zones,
               struct zone_link *zlink, struct audit *audit,
               const struct worker_gen_counts *counts, char *err, size_t errlen)
{
    struct worker_gen              *wg = calloc(1, sizeof(*wg));
    struct upstream_pool_counters **upc = NULL;

    if (wg == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    wg->gen = generation_ref(g);
    wg->cfg = g->parts.cfg;
    if (counts != NULL && (upc = worker_gen_upstream_counters(wg->cfg, counts)) == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    wg->domain_slots = worker_gen_domain_slots(wg->cfg, counts);
    if (wg->domain_slots == NULL) {
        snprintf(err, errlen, "out of memory");
        free(upc);
        goto fail;
    }
    wg->pool = upstream_pool_new(loop, wg->cfg, upc, err, errlen);
    free(upc); /* the pool keeps what it needs */
    if (wg->pool == NULL)
        goto fail;
    wg->vm = policy_vm_new(wg->cfg, zones, loop, err, errlen);
    if (wg->vm == NULL)
        goto fail;
    if (audit != NULL)
        policy_vm_set_audit(wg->vm, audit);
    policy_vm_set_zone_link(wg->vm, zlink);
    return wg;
fail:
    worker_gen_free(wg);
    return NULL;
}

void
worker_gen_free(struct worker_gen *wg)
{
    if (wg == NULL)
        return;
    upstream_pool_free(wg->pool);
    policy_vm_free(wg->vm);
    generation_unref(wg->gen);
    free(wg->domain_slots);
    free(wg);
}
