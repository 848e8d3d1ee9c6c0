/* core/daemon/worker_gen.c: one worker's policies and upstream pool for one generation; see
 * worker_gen.h. */
#include "daemon/worker_gen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/generation.h"
#include "policy/policy_vm.h"
#include "relay/upstream_pool.h"

struct worker_gen *
worker_gen_new(struct generation *g, struct ev_loop *loop, struct zones *zones,
               struct zone_link *zlink, struct audit *audit, char *err, size_t errlen)
{
    struct worker_gen *wg = calloc(1, sizeof(*wg));

    if (wg == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    wg->gen = generation_ref(g);
    wg->cfg = g->parts.cfg;
    wg->pool = upstream_pool_new(loop, wg->cfg, err, errlen);
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
    free(wg);
}
