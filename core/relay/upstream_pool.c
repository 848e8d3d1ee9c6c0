/* core/relay/upstream_pool.c: one worker's pool of upstream connections: lease, return,
 * idle; see upstream_pool.h and docs/relay.md.
 *
 * Keys: every distinct server (host, port, TLS mode, verification, CA file, TLS name,
 * AUTH credentials) is one key, shared by all upstream sets that name it; connections
 * are reused only within their key. Per key: idle connections (most recently used
 * first, so that the surplus idles out), a count of open ones against
 * pool_max_per_worker, and a FIFO of jobs waiting for a slot.
 * The jobs that relay one message each (failover, the result) are core/relay/relay_job.c;
 * the SMTP dialogue itself is core/relay/upstream.c.
 *
 * Host names are resolved once, here, when the pool is created: getaddrinfo() blocks,
 * and a worker's loop must not. Numeric hosts (AI_NUMERICHOST) need no DNS. A name
 * that does not resolve fails the pool (and so the start or the reload), so that the
 * operator sees it; a changed DNS record takes effect on reload. */
#include "relay/upstream_pool.h"

#include <assert.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "util/log.h"
#include "net/tls.h"
#include "relay/upstream.h"
#include "relay/upstream_pool_internal.h"

static enum conn_rc pool_conn_cb(void *owner, struct upstream *u, enum upstream_event ev);

/* ---- jobs waiting for a slot ---- */

void
pool_wait_remove(struct upstream_job *job)
{
    struct pool_key      *key = job->waiting_on;
    struct upstream_job **pp = &key->wait_head, *prev = NULL;

    while (*pp != job) { /* bounded by the FIFO's length; job is in it */
        prev = *pp;
        pp = &(*pp)->wait_next;
    }
    *pp = job->wait_next;
    if (key->wait_tail == job)
        key->wait_tail = prev;
    job->waiting_on = NULL;
    job->wait_next = NULL;
    job->pool->n_waiting--;
    ev_timer_stop(job->pool->loop, &job->timer);
}

static void
pool_wait_add(struct pool_key *key, struct upstream_job *job)
{
    job->state = JOB_WAITING;
    job->waiting_on = key;
    job->wait_next = NULL;
    if (key->wait_tail != NULL)
        key->wait_tail->wait_next = job;
    else
        key->wait_head = job;
    key->wait_tail = job;
    job->pool->n_waiting++;
    ev_timer_set(&job->timer, job->pool->cfg->timeout_upstream, 0.);
    ev_timer_start(job->pool->loop, &job->timer);
}
/* ---- connections ---- */

static void
pool_conn_log_close(const struct pool_conn *pc, const char *reason)
{
    struct logline l;

    log_begin(&l, LOG_INFO, "upstream.close", pc->job != NULL ? pc->job->sid : 0);
    log_str(&l, "upstream", upstream_name(pc->u));
    log_str(&l, "reason", reason);
    log_int(&l, "transactions", upstream_transactions(pc->u));
    log_end(&l);
}

/* Close and free a connection (QUIT first if it is idle and in sync). The caller
 * serves the key's waiters afterwards (pool_key_serve): a freed slot may start one. */
void
pool_conn_drop(struct pool_conn *pc, const char *reason)
{
    struct upstream_pool *pool = pc->pool;
    struct pool_key      *key = pc->key;

    if (pc->state == PC_IDLE) {
        struct pool_conn **pp = &key->idle;

        while (*pp != pc) /* bounded by the idle list's length; pc is in it */
            pp = &(*pp)->idle_next;
        *pp = pc->idle_next;
        pool->n_idle--;
    }
    if (pc->prev != NULL)
        pc->prev->next = pc->next;
    else
        pool->conns = pc->next;
    if (pc->next != NULL)
        pc->next->prev = pc->prev;
    pool->n_conns--;
    key->n_open--;
    pool_conn_log_close(pc, reason);
    upstream_free(pc->u);
    free(pc);
}

static struct pool_conn *
pool_conn_open(struct upstream_pool *pool, struct pool_key *key, size_t addr,
               struct upstream_job *job)
{
    struct pool_conn *pc = calloc(1, sizeof(*pc));

    if (pc == NULL)
        return NULL;
    pc->u = upstream_new(pool->loop, pool->cfg, key->srv, key->ssl_ctx,
                         (const struct sockaddr *)&key->addrs[addr].ss, key->addrs[addr].len,
                         job->sid, pc, pool_conn_cb);
    if (pc->u == NULL) {
        free(pc);
        return NULL;
    }
    pc->pool = pool;
    pc->key = key;
    pc->addr = addr;
    pc->state = PC_SETUP;
    pc->job = job;
    pc->next = pool->conns;
    if (pool->conns != NULL)
        pool->conns->prev = pc;
    pool->conns = pc;
    pool->n_conns++;
    pool->connects++;
    key->n_open++;
    return pc;
}

static void
pool_conn_start(struct pool_conn *pc, struct upstream_job *job)
{
    pc->state = PC_BUSY;
    pc->job = job;
    job->pc = pc;
    job->state = JOB_RUNNING;
    job->fresh = false;
    job->res.reused = upstream_transactions(pc->u) > 0;
    upstream_transact(pc->u, job->sid, job->env, job->msg, job->msg_len);
}

static size_t
pool_cap(const struct upstream_pool *pool)
{
    return pool->cfg->pool_max_per_worker > 0 ? pool->cfg->pool_max_per_worker : 1;
}

/* Run the job on its current target: an idle connection, a new one, or wait. */
void
pool_job_lease(struct upstream_job *job)
{
    struct upstream_pool     *pool = job->pool;
    const struct pool_target *t = &pool->sets[job->set].targets[job->target];
    struct pool_key          *key = &pool->keys[t->key];
    struct pool_conn         *pc = key->idle;

    /* A retry wants a new connection, but takes a pooled one rather than wait. */
    if (pc != NULL && (!job->fresh || key->n_open >= pool_cap(pool))) {
        key->idle = pc->idle_next;
        pc->idle_next = NULL;
        pool->n_idle--;
        pool_conn_start(pc, job);
        return;
    }
    if (key->n_open >= pool_cap(pool)) {
        pool_wait_add(key, job);
        return;
    }
    job->pc = pool_conn_open(pool, key, t->addr, job);
    if (job->pc == NULL) {
        pool_result(job, RELAY_UNAVAILABLE, 451, "4.3.0", "Out of memory");
        pool_job_finish(job);
        return;
    }
    job->state = JOB_CONNECTING;
}

/* Slots freed on key: start waiting jobs, oldest first. Each pass takes an idle
 * connection or opens one (pool_job_lease never queues here), or finishes the job. */
void
pool_key_serve(struct pool_key *key, struct upstream_pool *pool)
{
    while (key->wait_head != NULL && (key->idle != NULL || key->n_open < pool_cap(pool))) {
        struct upstream_job *job = key->wait_head;

        pool_wait_remove(job);
        pool_job_lease(job); /* uses a slot, or finishes: the loop moves on */
    }
}

/* A connection is free again: a waiting job gets it, else it idles (or closes). */
static bool
pool_conn_release(struct pool_conn *pc)
{
    struct upstream_pool *pool = pc->pool;
    struct pool_key      *key = pc->key;
    const char           *why = NULL;

    pc->job = NULL;
    if (!upstream_is_ready(pc->u))
        why = "out of sync";
    else if (pool->draining)
        why = "draining";
    else if (pool->cfg->pool_max_reuse > 0 &&
             upstream_transactions(pc->u) >= pool->cfg->pool_max_reuse)
        why = "max_reuse";
    else if (key->wait_head == NULL && pool->cfg->pool_idle_timeout <= 0)
        why = "pooling disabled";
    if (why != NULL) {
        pool_conn_drop(pc, why);
        pool_key_serve(key, pool);
        return true;
    }
    if (key->wait_head != NULL) {
        struct upstream_job *job = key->wait_head;

        pool_wait_remove(job);
        pool_conn_start(pc, job);
        return false;
    }
    pc->state = PC_IDLE;
    pc->idle_next = key->idle;
    key->idle = pc;
    pool->n_idle++;
    return false;
}

/* A transaction ended. Returns true if pc was freed. */
static bool
pool_conn_done(struct pool_conn *pc)
{
    struct upstream_pool *pool = pc->pool;
    struct upstream_job  *job = pc->job;
    struct pool_key      *key = pc->key;
    enum job_verdict      v;

    if (job == NULL) /* cannot happen: a cancel frees a busy connection */
        return pool_conn_release(pc);
    v = pool_judge(job, pc->u);
    job->pc = NULL;
    if (upstream_is_ready(pc->u)) {
        pool_job_finish(job); /* only a verdict leaves a connection in sync */
        return pool_conn_release(pc);
    }
    /* Free the dead connection's slot first, so that a retry can use it. */
    pc->job = NULL;
    pool_conn_drop(pc, upstream_outcome(pc->u)->broken ? "broken" : "out of sync");
    if (v == VERDICT_FINISH) {
        pool_job_finish(job);
    } else if (v == VERDICT_RETRY) {
        job->fresh = true;
        pool_job_lease(job);
    } else {
        job->target++;
        pool_job_next(job);
    }
    pool_key_serve(key, pool);
    return true;
}

/* Set-up failed, or an idle connection died. The job, if any, fails over. */
static void
pool_conn_closed(struct pool_conn *pc)
{
    struct upstream_pool          *pool = pc->pool;
    struct pool_key               *key = pc->key;
    struct upstream_job           *job = pc->job;
    const struct upstream_outcome *o = upstream_outcome(pc->u);

    if (pc->state == PC_SETUP) {
        key->addrs[pc->addr].down_until = ev_now(pool->loop) + POOL_DOWN_SECS;
        if (job != NULL) {
            /* RFC 3463: no usable answer from the host is 4.4.1; a connection that was
             * established and then dropped, reset or went silent is 4.4.2. */
            bool dropped = o->stage > UPSTREAM_STAGE_CONNECT && (o->timed_out || o->dropped);

            snprintf(job->last_error, sizeof(job->last_error), "%s: %s", upstream_name(pc->u),
                     o->error);
            snprintf(job->last_enhanced, sizeof(job->last_enhanced), "%s",
                     dropped ? "4.4.2" : "4.4.1");
        }
    }
    pool_conn_drop(pc, o->error[0] != '\0' ? o->error : "closed");
    if (job != NULL) {
        job->pc = NULL;
        job->target++;
        pool_job_next(job);
    }
    pool_key_serve(key, pool);
}

static enum conn_rc
pool_conn_cb(void *owner, struct upstream *u, enum upstream_event ev)
{
    struct pool_conn *pc = owner;

    (void)u;
    switch (ev) {
    case UPSTREAM_EV_READY:
        pc->key->addrs[pc->addr].down_until = 0;
        if (pc->job != NULL) {
            pool_conn_start(pc, pc->job);
            return CONN_OK;
        }
        return pool_conn_release(pc) ? CONN_GONE : CONN_OK;
    case UPSTREAM_EV_DONE:
        return pool_conn_done(pc) ? CONN_GONE : CONN_OK;
    case UPSTREAM_EV_CLOSED:
        pool_conn_closed(pc);
        return CONN_GONE;
    }
    return CONN_OK;
}

void
upstream_pool_stats(const struct upstream_pool *pool, struct upstream_pool_stats *st)
{
    st->open = pool->n_conns;
    st->idle = pool->n_idle;
    st->busy = pool->n_conns - pool->n_idle;
    st->waiting_jobs = pool->n_waiting;
    st->relayed = pool->relayed;
    st->connects = pool->connects;
}

void
upstream_pool_drain(struct upstream_pool *pool)
{
    size_t i;

    pool->draining = true;
    for (i = 0; i < pool->n_keys; i++)
        while (pool->keys[i].idle != NULL) /* each pass frees one */
            pool_conn_drop(pool->keys[i].idle, "draining");
}

void
upstream_pool_free(struct upstream_pool *pool)
{
    size_t i;

    if (pool == NULL)
        return;
    while (pool->jobs != NULL) { /* each pass frees one */
        struct upstream_job *job = pool->jobs;
        relay_done_fn        done = job->done;
        void                *ctx = job->ctx;
        struct relay_result  res;

        if (job->state != JOB_FINISHED)
            pool_result(job, RELAY_UNAVAILABLE, 451, "4.4.2", "Relay shutting down");
        if (job->pc != NULL)
            job->pc->job = NULL;
        res = job->res;
        pool_job_unlink(job);
        free(job);
        done(ctx, &res);
    }
    while (pool->conns != NULL) /* each pass frees one; QUIT to idle ones */
        pool_conn_drop(pool->conns, "shutdown");
    for (i = 0; i < pool->n_keys; i++)
        SSL_CTX_free(pool->keys[i].ssl_ctx);
    for (i = 0; i < pool->n_sets; i++)
        free(pool->sets[i].targets);
    free(pool->keys);
    free(pool->sets);
    free(pool);
}

/* ---- construction ---- */

static bool
pool_streq(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* Everything that identifies a connection: one domain's credentials are never used
 * for another, nor a verified connection for an unverified one. */
static bool
pool_key_matches(const struct config_upstream_server *a, const struct config_upstream_server *b)
{
    return strcasecmp(a->host, b->host) == 0 && a->port == b->port && a->tls == b->tls &&
           a->verify == b->verify && pool_streq(a->ca_file, b->ca_file) &&
           pool_streq(a->tls_name, b->tls_name) && pool_streq(a->auth_user, b->auth_user) &&
           pool_streq(a->auth_password, b->auth_password);
}

/* Numeric first (no DNS); a name is looked up once, blocking, at pool creation. */
static int
pool_resolve(struct pool_key *key, char *err, size_t errlen)
{
    struct addrinfo  hints, *res = NULL, *ai;
    char             port[16];
    int              rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    snprintf(port, sizeof(port), "%d", key->srv->port);
    rc = getaddrinfo(key->srv->host, port, &hints, &res);
    if (rc == EAI_NONAME) {
        hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG;
        rc = getaddrinfo(key->srv->host, port, &hints, &res);
    }
    if (rc != 0) {
        snprintf(err, errlen, "upstream %s:%d: %s", key->srv->host, key->srv->port,
                 gai_strerror(rc));
        return -1;
    }
    for (ai = res; ai != NULL && key->n_addrs < POOL_ADDRS_MAX; ai = ai->ai_next) {
        if (ai->ai_addrlen > sizeof(key->addrs[0].ss))
            continue;
        memcpy(&key->addrs[key->n_addrs].ss, ai->ai_addr, ai->ai_addrlen);
        key->addrs[key->n_addrs++].len = ai->ai_addrlen;
    }
    freeaddrinfo(res);
    return 0;
}

/* The key for srv: an existing one, or a new one (resolved, with its TLS context). */
static int
pool_key_for(struct upstream_pool *pool, const struct config_upstream_server *srv,
             size_t *out, char *err, size_t errlen)
{
    struct pool_key *key;
    char             e[256];
    size_t           i;

    for (i = 0; i < pool->n_keys; i++) {
        if (pool_key_matches(pool->keys[i].srv, srv)) {
            *out = i;
            return 0;
        }
    }
    key = &pool->keys[pool->n_keys];
    key->srv = srv;
    if (pool_resolve(key, err, errlen) != 0)
        return -1;
    if (srv->tls != CONFIG_TLS_NONE) {
        key->ssl_ctx = tls_client_ctx_new(srv->ca_file, srv->verify, e, sizeof(e));
        if (key->ssl_ctx == NULL) {
            snprintf(err, errlen, "upstream %s:%d: %s", srv->host, srv->port, e);
            return -1;
        }
    }
    *out = pool->n_keys++;
    return 0;
}

static int
pool_set_init(struct upstream_pool *pool, size_t s, char *err, size_t errlen)
{
    const struct config_upstream *cu = &pool->cfg->upstreams[s];
    struct pool_set              *set = &pool->sets[s];
    size_t                        i, k, a;

    set->targets = calloc(cu->n_servers * POOL_ADDRS_MAX + 1, sizeof(*set->targets));
    if (set->targets == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (i = 0; i < cu->n_servers; i++) {
        if (pool_key_for(pool, &cu->servers[i], &k, err, errlen) != 0)
            return -1;
        for (a = 0; a < pool->keys[k].n_addrs; a++) {
            set->targets[set->n_targets].key = k;
            set->targets[set->n_targets++].addr = a;
        }
    }
    return 0;
}

struct upstream_pool *
upstream_pool_new(struct ev_loop *loop, const struct config *cfg, char *err, size_t errlen)
{
    struct upstream_pool *pool = calloc(1, sizeof(*pool));
    size_t                s, n_servers = 0;

    if (pool == NULL)
        goto fail;
    pool->loop = loop;
    pool->cfg = cfg;
    for (s = 0; s < cfg->n_upstreams; s++)
        n_servers += cfg->upstreams[s].n_servers;
    pool->keys = calloc(n_servers + 1, sizeof(*pool->keys)); /* at most one per server */
    pool->sets = calloc(cfg->n_upstreams + 1, sizeof(*pool->sets));
    if (pool->keys == NULL || pool->sets == NULL)
        goto fail;
    pool->n_sets = cfg->n_upstreams;
    for (s = 0; s < cfg->n_upstreams; s++)
        if (pool_set_init(pool, s, err, errlen) != 0)
            goto fail_set;
    return pool;
fail:
    snprintf(err, errlen, "out of memory");
fail_set:
    upstream_pool_free(pool);
    return NULL;
}
