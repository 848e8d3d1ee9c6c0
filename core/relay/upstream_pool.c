/* core/relay/upstream_pool.c: one worker's pool of upstream connections: lease, return,
 * idle; see upstream_pool.h and docs/relay.md.
 *
 * Keys: every distinct server (host, port, TLS mode, verification, CA file, TLS name,
 * AUTH credentials) is one key, shared by all upstream sets that name it; connections
 * are reused only within their key. Per key: idle connections (most recently used
 * first, so that the surplus idles out), a count of open ones against
 * pool_max_per_worker, and a FIFO of leases waiting for a slot.
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

#include "util/counter.h"
#include "util/log.h"
#include "net/tls.h"
#include "relay/upstream.h"
#include "relay/upstream_token.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

#define POOL_ADDRS_MAX 4     /* addresses kept per server name */
#define POOL_DOWN_SECS 10.0  /* a server whose set-up failed is tried last for this long */

struct pool_addr {
    struct sockaddr_storage ss;
    socklen_t               len;
    ev_tstamp               down_until; /* set-up failed recently: try the others first */
};

struct pool_conn;

struct pool_key {
    const struct config_upstream_server *srv;     /* borrows cfg */
    SSL_CTX                             *ssl_ctx; /* owns; NULL for cleartext */
    struct pool_addr                     addrs[POOL_ADDRS_MAX];
    size_t                               n_addrs;
    struct pool_conn                    *idle;    /* most recently used first */
    size_t                               n_open;  /* counted against pool_max_per_worker */
    struct upstream_lease               *wait_head, *wait_tail; /* FIFO */
    struct upstream_pool_counters       *ctr;     /* borrows: its host:port's */
};

struct pool_target {
    size_t key;  /* index into pool->keys */
    size_t addr; /* index into that key's addrs */
};

struct pool_set {
    struct pool_target *targets; /* owns; every address of every server, in order */
    size_t              n_targets;
};

enum pool_conn_state {
    PC_SETUP, /* connecting and setting up, for pc->lease (NULL if it was detached) */
    PC_IDLE,  /* in key->idle */
    PC_BUSY,  /* carrying pc->lease's transaction */
};

struct pool_conn {
    struct upstream_pool  *pool;        /* borrows */
    struct pool_key       *key;         /* borrows */
    size_t                 addr;        /* index into key->addrs */
    struct upstream       *u;           /* owns */
    struct upstream_lease *lease;       /* borrows; NULL when idle */
    enum pool_conn_state   state;
    struct pool_conn      *prev, *next; /* pool->conns */
    struct pool_conn      *idle_next;   /* key->idle */
};

struct upstream_pool {
    struct ev_loop        *loop;   /* borrows */
    const struct config   *cfg;    /* borrows */
    struct pool_key       *keys;   /* owns */
    size_t                 n_keys;
    struct pool_set       *sets;   /* owns; one per cfg->upstreams[] */
    size_t                 n_sets;
    struct pool_conn      *conns;  /* owns every connection */
    struct upstream_lease *leases; /* borrows every attached lease (its holder owns it) */
    size_t                 n_conns, n_idle, n_waiting;
    unsigned long long     relayed, connects;
    bool                   draining;
    struct upstream_pool_counters own; /* where keys count when none were given */
    struct upstream_tokens *tokens; /* owns: XOAUTH2 bearer tokens (upstream_token.h) */
};

static enum conn_rc pool_conn_cb(void *owner, struct upstream *u, enum upstream_event ev);

/* ---- leases waiting for a slot ---- */

static void
pool_wait_remove(struct upstream_lease *l)
{
    struct pool_key        *key = l->waiting_on;
    struct upstream_lease **pp = &key->wait_head, *prev = NULL;

    while (*pp != l) { /* bounded by the FIFO's length; l is in it */
        prev = *pp;
        pp = &(*pp)->wait_next;
    }
    *pp = l->wait_next;
    if (key->wait_tail == l)
        key->wait_tail = prev;
    l->state = UPSTREAM_LEASE_NONE;
    l->waiting_on = NULL;
    l->wait_next = NULL;
    l->pool->n_waiting--;
    ev_timer_stop(l->pool->loop, &l->wait);
}

static void
pool_wait_add(struct pool_key *key, struct upstream_lease *l)
{
    l->state = UPSTREAM_LEASE_WAITING;
    l->waiting_on = key;
    l->wait_next = NULL;
    if (key->wait_tail != NULL)
        key->wait_tail->wait_next = l;
    else
        key->wait_head = l;
    key->wait_tail = l;
    l->pool->n_waiting++;
    counter_inc(&key->ctr->waits);
    ev_timer_set(&l->wait, l->pool->cfg->timeout_upstream, 0.);
    ev_timer_start(l->pool->loop, &l->wait);
}

/* Every connection of its key stayed busy. */
static void
pool_wait_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct upstream_lease *l = container_of(w, struct upstream_lease, wait);

    (void)loop;
    (void)revents;
    counter_inc(&l->waiting_on->ctr->wait_timeouts);
    pool_wait_remove(l);
    l->ops->fail(l, true);
}

/* ---- connections ---- */

static void
pool_conn_log_close(const struct pool_conn *pc, const char *reason)
{
    struct logline l;

    log_begin(&l, LOG_INFO, "upstream.close", pc->lease != NULL ? pc->lease->sid : 0);
    log_str(&l, "upstream", upstream_name(pc->u));
    log_str(&l, "reason", reason);
    log_int(&l, "transactions", upstream_transactions(pc->u));
    log_end(&l);
}

/* Close and free a connection (QUIT first if it is idle and in sync). The caller
 * serves the key's waiters afterwards (pool_key_serve): a freed slot may start one. */
static void
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
        counter_dec(&key->ctr->idle);
    }
    if (pc->prev != NULL)
        pc->prev->next = pc->next;
    else
        pool->conns = pc->next;
    if (pc->next != NULL)
        pc->next->prev = pc->prev;
    pool->n_conns--;
    key->n_open--;
    counter_dec(&key->ctr->open);
    pool_conn_log_close(pc, reason);
    upstream_free(pc->u);
    free(pc);
}

static struct pool_conn *
pool_conn_open(struct upstream_pool *pool, struct pool_key *key, size_t addr,
               struct upstream_lease *l)
{
    struct pool_conn *pc = calloc(1, sizeof(*pc));

    if (pc == NULL)
        return NULL;
    pc->u = upstream_new(pool->loop, pool->cfg, key->srv, key->ssl_ctx,
                         (const struct sockaddr *)&key->addrs[addr].ss, key->addrs[addr].len,
                         l->sid, pc, pool_conn_cb);
    /* XOAUTH2: the token the job waited for (relay_job.c); AUTH is a few round trips
     * away, so it is taken now, once per connection, never per message. */
    if (pc->u != NULL && key->srv->auth_mech == CONFIG_AUTH_XOAUTH2 &&
        upstream_set_bearer(pc->u, upstream_tokens_get(pool->tokens, key->srv->oauth2,
                                                       l->sid)) != 0) {
        upstream_free(pc->u);
        pc->u = NULL;
    }
    if (pc->u == NULL) {
        free(pc);
        return NULL;
    }
    pc->pool = pool;
    pc->key = key;
    pc->addr = addr;
    pc->state = PC_SETUP;
    pc->lease = l;
    pc->next = pool->conns;
    if (pool->conns != NULL)
        pool->conns->prev = pc;
    pool->conns = pc;
    pool->n_conns++;
    pool->connects++;
    key->n_open++;
    counter_inc(&key->ctr->open);
    return pc;
}

static void
pool_conn_start(struct pool_conn *pc, struct upstream_lease *l)
{
    pc->state = PC_BUSY;
    pc->lease = l;
    l->pc = pc;
    l->state = UPSTREAM_LEASE_RUNNING;
    l->fresh = false;
    l->ops->start(l, pc->u);
}

static size_t
pool_cap(const struct upstream_pool *pool)
{
    return pool->cfg->pool_max_per_worker > 0 ? pool->cfg->pool_max_per_worker : 1;
}

/* Run the lease on its current target: an idle connection, a new one, or wait. */
static int
pool_lease_run(struct upstream_lease *l)
{
    struct upstream_pool     *pool = l->pool;
    const struct pool_target *t = &pool->sets[l->set].targets[l->target];
    struct pool_key          *key = &pool->keys[t->key];
    struct pool_conn         *pc = key->idle;

    /* A retry wants a new connection, but takes a pooled one rather than wait. */
    if (pc != NULL && (!l->fresh || key->n_open >= pool_cap(pool))) {
        key->idle = pc->idle_next;
        pc->idle_next = NULL;
        pool->n_idle--;
        counter_dec(&key->ctr->idle);
        pool_conn_start(pc, l);
        return 0;
    }
    if (key->n_open >= pool_cap(pool)) {
        pool_wait_add(key, l);
        return 0;
    }
    l->pc = pool_conn_open(pool, key, t->addr, l);
    if (l->pc == NULL)
        return -1;
    l->state = UPSTREAM_LEASE_CONNECTING;
    return 0;
}

/* Slots freed on key: start waiting leases, oldest first. Each pass takes an idle
 * connection or opens one (pool_lease_run never queues here), or fails the lease. */
static void
pool_key_serve(struct pool_key *key, struct upstream_pool *pool)
{
    while (key->wait_head != NULL && (key->idle != NULL || key->n_open < pool_cap(pool))) {
        struct upstream_lease *l = key->wait_head;

        pool_wait_remove(l);
        if (pool_lease_run(l) != 0) /* uses a slot, or fails: the loop moves on */
            l->ops->fail(l, false);
    }
}

/* A connection is free again: a waiting lease gets it, else it idles (or closes). */
static bool
pool_conn_release(struct pool_conn *pc)
{
    struct upstream_pool *pool = pc->pool;
    struct pool_key      *key = pc->key;
    const char           *why = NULL;

    pc->lease = NULL;
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
        struct upstream_lease *l = key->wait_head;

        pool_wait_remove(l);
        pool_conn_start(pc, l);
        return false;
    }
    pc->state = PC_IDLE;
    pc->idle_next = key->idle;
    key->idle = pc;
    pool->n_idle++;
    counter_inc(&key->ctr->idle);
    return false;
}

/* A transaction ended. Returns true if pc was freed. */
static bool
pool_conn_done(struct pool_conn *pc)
{
    struct upstream_pool    *pool = pc->pool;
    struct upstream_lease   *l = pc->lease;
    struct pool_key         *key = pc->key;
    enum upstream_lease_next next;

    if (l == NULL) /* cannot happen: a detach frees a busy connection */
        return pool_conn_release(pc);
    next = l->ops->ended(l, pc->u, UPSTREAM_EV_DONE);
    l->pc = NULL;
    l->state = UPSTREAM_LEASE_NONE;
    if (upstream_is_ready(pc->u)) {
        l->ops->resume(l, UPSTREAM_LEASE_FINISH); /* only a verdict leaves it in sync */
        return pool_conn_release(pc);
    }
    /* Free the dead connection's slot first, so that a retry can use it. */
    counter_inc(&key->ctr->errors);
    pc->lease = NULL;
    pool_conn_drop(pc, upstream_outcome(pc->u)->broken ? "broken" : "out of sync");
    l->ops->resume(l, next);
    pool_key_serve(key, pool);
    return true;
}

/* Set-up failed, or an idle connection died. The lease, if any, fails over (or retries
 * on the same target when its holder asks: a refused XOAUTH2 token). */
static void
pool_conn_closed(struct pool_conn *pc)
{
    struct upstream_pool          *pool = pc->pool;
    struct pool_key               *key = pc->key;
    struct upstream_lease         *l = pc->lease;
    const struct upstream_outcome *o = upstream_outcome(pc->u);
    enum upstream_lease_next       next = UPSTREAM_LEASE_FAILOVER;

    if (pc->state == PC_SETUP) {
        counter_inc(&key->ctr->connect_failures);
        key->addrs[pc->addr].down_until = ev_now(pool->loop) + POOL_DOWN_SECS;
        if (l != NULL) /* RETRY: the holder changed something (a new XOAUTH2 token) */
            next = l->ops->ended(l, pc->u, UPSTREAM_EV_CLOSED);
    }
    pool_conn_drop(pc, o->error[0] != '\0' ? o->error : "closed");
    if (l != NULL) {
        l->pc = NULL;
        l->state = UPSTREAM_LEASE_NONE;
        l->ops->resume(l, next == UPSTREAM_LEASE_RETRY ? next : UPSTREAM_LEASE_FAILOVER);
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
        if (pc->lease != NULL) {
            pool_conn_start(pc, pc->lease);
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

/* ---- leases ---- */

void
upstream_pool_attach(struct upstream_pool *pool, struct upstream_lease *l,
                     const struct upstream_lease_ops *ops, uint64_t sid)
{
    l->ops = ops;
    l->pool = pool;
    l->sid = sid;
    l->state = UPSTREAM_LEASE_NONE;
    ev_init(&l->wait, pool_wait_timer_cb);
    l->prev = NULL;
    l->next = pool->leases;
    if (pool->leases != NULL)
        pool->leases->prev = l;
    pool->leases = l;
}

int
upstream_pool_lease(struct upstream_lease *l)
{
    return pool_lease_run(l);
}

static void
pool_lease_unlink(struct upstream_lease *l)
{
    struct upstream_pool *pool = l->pool;

    if (l->prev != NULL)
        l->prev->next = l->next;
    else
        pool->leases = l->next;
    if (l->next != NULL)
        l->next->prev = l->prev;
}

void
upstream_pool_detach(struct upstream_lease *l)
{
    struct upstream_pool *pool = l->pool;
    struct pool_key      *key = NULL;

    if (l->state == UPSTREAM_LEASE_WAITING) {
        pool_wait_remove(l);
    } else if (l->state == UPSTREAM_LEASE_CONNECTING) {
        l->pc->lease = NULL; /* set-up goes on; the connection joins the pool */
    } else if (l->state == UPSTREAM_LEASE_RUNNING) {
        key = l->pc->key;
        pool_conn_drop(l->pc, "cancelled"); /* never complete an unfinished message */
    }
    l->pc = NULL;
    l->state = UPSTREAM_LEASE_NONE;
    pool_lease_unlink(l);
    if (key != NULL)
        pool_key_serve(key, pool);
}

bool
upstream_pool_has_set(const struct upstream_pool *pool, int set)
{
    return set >= 0 && (size_t)set < pool->n_sets;
}

size_t
upstream_pool_targets(const struct upstream_pool *pool, int set)
{
    return pool->sets[set].n_targets;
}

bool
upstream_pool_target_is_down(const struct upstream_pool *pool, int set, size_t t)
{
    const struct pool_target *tg = &pool->sets[set].targets[t];

    return pool->keys[tg->key].addrs[tg->addr].down_until > ev_now(pool->loop);
}

struct ev_loop *
upstream_pool_loop(const struct upstream_pool *pool)
{
    return pool->loop;
}

struct upstream_tokens *
upstream_pool_tokens(const struct upstream_pool *pool)
{
    return pool->tokens;
}

void
upstream_pool_set_offload(struct upstream_pool *pool, struct offload *offload,
                          struct offload_return *ret)
{
    upstream_tokens_set_offload(pool->tokens, offload, ret);
}

const struct config_upstream_server *
upstream_pool_target_server(const struct upstream_pool *pool, int set, size_t t)
{
    return pool->keys[pool->sets[set].targets[t].key].srv;
}

void
upstream_pool_count_relayed(struct upstream_pool *pool)
{
    pool->relayed++;
}

/* ---- counters, drain, free ---- */

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
    while (pool->leases != NULL) { /* each pass detaches one */
        struct upstream_lease *l = pool->leases;

        if (l->state == UPSTREAM_LEASE_WAITING)
            pool_wait_remove(l);
        if (l->pc != NULL)
            l->pc->lease = NULL;
        l->pc = NULL;
        l->state = UPSTREAM_LEASE_NONE;
        pool_lease_unlink(l);
        l->ops->abort(l);
    }
    while (pool->conns != NULL) /* each pass frees one; QUIT to idle ones */
        pool_conn_drop(pool->conns, "shutdown");
    upstream_tokens_free(pool->tokens);
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
 * for another, nor a verified connection for an unverified one, nor one that XCLIENT
 * gave a client's identity for a server entry that asked for none. */
static bool
pool_key_matches(const struct config_upstream_server *a, const struct config_upstream_server *b)
{
    return strcasecmp(a->host, b->host) == 0 && a->port == b->port && a->tls == b->tls &&
           a->verify == b->verify && pool_streq(a->ca_file, b->ca_file) &&
           pool_streq(a->tls_name, b->tls_name) && pool_streq(a->auth_user, b->auth_user) &&
           pool_streq(a->auth_password, b->auth_password) && a->auth_mech == b->auth_mech &&
           upstream_tokens_same_identity(a->oauth2, b->oauth2) && a->xclient == b->xclient;
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
             struct upstream_pool_counters *ctr, size_t *out, char *err, size_t errlen)
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
    key->ctr = ctr != NULL ? ctr : &pool->own;
    if (pool_resolve(key, err, errlen) != 0)
        return -1;
    if (srv->tls != CONFIG_TLS_NONE) {
        key->ssl_ctx = tls_client_ctx_new(srv->ca_file, srv->verify, e, sizeof(e));
        if (key->ssl_ctx == NULL) {
            snprintf(err, errlen, "upstream %s:%d: %s", srv->host, srv->port, e);
            return -1;
        }
        /* One context per key and worker: the session is this worker's with this server
         * (its host, port, TLS name and verification), never offered to another. */
        if (tls_client_ctx_resume(key->ssl_ctx) != 0) {
            SSL_CTX_free(key->ssl_ctx);
            key->ssl_ctx = NULL;
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    *out = pool->n_keys++;
    return 0;
}

/* Set s's targets; counters (or NULL) from its server number *flat on. */
static int
pool_set_init(struct upstream_pool *pool, size_t s, struct upstream_pool_counters *const *counters,
              size_t *flat, char *err, size_t errlen)
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
        struct upstream_pool_counters *ctr = counters != NULL ? counters[*flat] : NULL;

        ++*flat;
        if (pool_key_for(pool, &cu->servers[i], ctr, &k, err, errlen) != 0)
            return -1;
        for (a = 0; a < pool->keys[k].n_addrs; a++) {
            set->targets[set->n_targets].key = k;
            set->targets[set->n_targets++].addr = a;
        }
    }
    return 0;
}

struct upstream_pool *
upstream_pool_new(struct ev_loop *loop, const struct config *cfg,
                  struct upstream_pool_counters *const *counters, char *err, size_t errlen)
{
    struct upstream_pool *pool = calloc(1, sizeof(*pool));
    size_t                s, n_servers = 0, flat = 0;

    if (pool == NULL)
        goto fail;
    pool->loop = loop;
    pool->cfg = cfg;
    if ((pool->tokens = upstream_tokens_new(loop)) == NULL)
        goto fail;
    for (s = 0; s < cfg->n_upstreams; s++)
        n_servers += cfg->upstreams[s].n_servers;
    pool->keys = calloc(n_servers + 1, sizeof(*pool->keys)); /* at most one per server */
    pool->sets = calloc(cfg->n_upstreams + 1, sizeof(*pool->sets));
    if (pool->keys == NULL || pool->sets == NULL)
        goto fail;
    pool->n_sets = cfg->n_upstreams;
    for (s = 0; s < cfg->n_upstreams; s++)
        if (pool_set_init(pool, s, counters, &flat, err, errlen) != 0)
            goto fail_set;
    return pool;
fail:
    snprintf(err, errlen, "out of memory");
fail_set:
    upstream_pool_free(pool);
    return NULL;
}
