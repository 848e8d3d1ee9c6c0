/* core/relay/upstream_pool.c: one worker's pool of upstream connections, and the jobs that
 * relay one message each; see upstream_pool.h and docs/relay.md.
 *
 * Keys: every distinct server (host, port, TLS mode, verification, CA file, TLS name,
 * AUTH credentials) is one key, shared by all upstream sets that name it; connections
 * are reused only within their key. Per key: idle connections (most recently used
 * first, so that the surplus idles out), a count of open ones against
 * pool_max_per_worker, and a FIFO of jobs waiting for a slot.
 * Jobs: try the set's servers in order (failover), each on an idle connection or a new
 * one; decide from the connection's outcome; deliver done() from the loop.
 * The SMTP dialogue itself is core/relay/upstream.c.
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

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

#define POOL_ADDRS_MAX 4     /* addresses kept per server name */
#define POOL_DOWN_SECS 10.0  /* a server whose set-up failed is tried last for this long */
#define POOL_NO_TARGET SIZE_MAX

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
    struct upstream_job                 *wait_head, *wait_tail; /* FIFO */
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
    PC_SETUP, /* connecting and setting up, for pc->job (NULL if it was cancelled) */
    PC_IDLE,  /* in key->idle */
    PC_BUSY,  /* carrying pc->job's transaction */
};

struct pool_conn {
    struct upstream_pool *pool;      /* borrows */
    struct pool_key      *key;       /* borrows */
    size_t                addr;      /* index into key->addrs */
    struct upstream      *u;         /* owns */
    struct upstream_job  *job;       /* borrows; NULL when idle */
    enum pool_conn_state  state;
    struct pool_conn     *prev, *next; /* pool->conns */
    struct pool_conn     *idle_next;   /* key->idle */
};

enum job_state {
    JOB_WAITING,    /* in a key's FIFO; timer = how long it may wait */
    JOB_CONNECTING, /* pc is being set up for it */
    JOB_RUNNING,    /* pc carries its transaction */
    JOB_FINISHED,   /* res is final; timer is fed and runs done() */
};

enum job_verdict {
    VERDICT_FINISH,   /* res is filled */
    VERDICT_RETRY,    /* same server, a new connection: the pooled one was dead */
    VERDICT_FAILOVER, /* next server in the set */
};

struct upstream_job {
    struct upstream_pool        *pool;  /* borrows */
    int                          set;
    uint64_t                     sid;
    const struct relay_envelope *env;   /* borrows until done() */
    const char                  *msg;   /* borrows until done() */
    size_t                       msg_len;
    relay_done_fn                done;
    void                        *ctx;
    enum job_state               state;
    size_t                       target;   /* index into the set's targets */
    bool                         retried;  /* the one retry after a dead pooled connection */
    bool                         fresh;    /* the next lease prefers a new connection */
    struct pool_conn            *pc;       /* borrows; JOB_CONNECTING and JOB_RUNNING */
    struct pool_key             *waiting_on; /* JOB_WAITING */
    struct upstream_job         *wait_next;
    struct upstream_job         *prev, *next; /* pool->jobs */
    ev_timer                     timer;
    ev_tstamp                    started;
    char                         last_error[240]; /* why the last server failed */
    char                         last_enhanced[8];
    struct relay_result          res;
    bool                         second_pass; /* trying the targets skipped as down */
    unsigned char                skipped[];   /* bit per target of the set: skipped as down */
};

struct upstream_pool {
    struct ev_loop      *loop;   /* borrows */
    const struct config *cfg;    /* borrows */
    struct pool_key     *keys;   /* owns */
    size_t               n_keys;
    struct pool_set     *sets;   /* owns; one per cfg->upstreams[] */
    size_t               n_sets;
    struct pool_conn    *conns;  /* owns every connection */
    struct upstream_job *jobs;   /* owns every job */
    size_t               n_conns, n_idle, n_waiting;
    unsigned long long   relayed, connects;
    bool                 draining;
};

static enum conn_rc pool_conn_cb(void *owner, struct upstream *u, enum upstream_event ev);
static void         pool_job_next(struct upstream_job *job);

/* ---- results ---- */

/* Client-facing text: printable ASCII only, no CR/LF, whatever the source. */
static void
pool_sanitise(char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
            *s = '?';
}

static void
pool_result(struct upstream_job *job, enum relay_status st, int code, const char *enhanced,
            const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void
pool_result(struct upstream_job *job, enum relay_status st, int code, const char *enhanced,
            const char *fmt, ...)
{
    struct relay_result *res = &job->res;
    va_list              ap;

    res->status = st;
    res->code = code;
    snprintf(res->enhanced, sizeof(res->enhanced), "%s", enhanced);
    va_start(ap, fmt);
    vsnprintf(res->text, sizeof(res->text), fmt, ap);
    va_end(ap);
    pool_sanitise(res->text);
}

/* Best effort: "Ok: queued as 4Fb0x" (Postfix), "OK id=1rAB-0001-Xy" (Exim). */
static void
pool_queue_id(const char *text, char *out, size_t outlen)
{
    const char *p = strcasestr(text, "queued as");
    size_t      n = 0;

    if (p != NULL)
        p += 9;
    else if ((p = strcasestr(text, "id=")) != NULL)
        p += 3;
    else
        return;
    while (*p == ' ' || *p == ':' || *p == '<')
        p++;
    while (n + 1 < outlen && p[n] != '\0' && p[n] != ' ' && p[n] != '>' && p[n] != ';' &&
           p[n] != ',' && p[n] != ')')
        n++;
    memcpy(out, p, n);
    out[n] = '\0';
}

/* The upstream's verdict, for the client: its code (421 becomes 451, as our session
 * stays open), its enhanced code with the class made to match (RFC 3463 section 2). */
static void
pool_result_from_reply(struct upstream_job *job, const struct upstream_outcome *o)
{
    int  cls = o->code / 100;
    char enhanced[16];

    if (o->enhanced[0] != '\0') {
        snprintf(enhanced, sizeof(enhanced), "%s", o->enhanced);
        enhanced[0] = (char)('0' + cls);
    } else {
        snprintf(enhanced, sizeof(enhanced), "%d.0.0", cls);
    }
    if (o->ok) {
        pool_result(job, RELAY_OK, 250, enhanced, "%s", o->text[0] ? o->text : "Ok");
        pool_queue_id(o->text, job->res.queue_id, sizeof(job->res.queue_id));
        pool_sanitise(job->res.queue_id);
        return;
    }
    if (o->stage == UPSTREAM_STAGE_RCPT && o->failed_rcpt >= 0) {
        /* The client had 250 for this RCPT: name the recipient that sank the message. */
        job->res.failed_rcpt = o->failed_rcpt;
        pool_result(job, cls == 5 ? RELAY_REJECTED : RELAY_TEMPFAIL, o->code, enhanced,
                    "<%s>: upstream said: %s", job->env->rcpts[o->failed_rcpt], o->text);
        return;
    }
    pool_result(job, cls == 5 ? RELAY_REJECTED : RELAY_TEMPFAIL,
                o->code == 421 ? 451 : o->code, enhanced, "%s",
                o->text[0] ? o->text : "Upstream refused the message");
}

/* Decide what a transaction's outcome means for the job. */
static enum job_verdict
pool_judge(struct upstream_job *job, struct upstream *u)
{
    const struct upstream_outcome *o = upstream_outcome(u);

    snprintf(job->res.upstream, sizeof(job->res.upstream), "%s", upstream_name(u));
    if (!o->broken) {
        pool_result_from_reply(job, o);
        return VERDICT_FINISH;
    }
    if (o->stage <= UPSTREAM_STAGE_MAIL) {
        /* Nothing accepted yet. A pooled connection that died while idle gives no
         * answer at all (or a 421): try once more on a new one. */
        if (job->res.reused && o->replies == 0 && !job->retried) {
            job->retried = true;
            return VERDICT_RETRY;
        }
        snprintf(job->last_error, sizeof(job->last_error), "%s: %s", upstream_name(u),
                 o->error);
        snprintf(job->last_enhanced, sizeof(job->last_enhanced), "4.4.2");
        job->res.upstream[0] = '\0';
        return VERDICT_FAILOVER;
    }
    /* MAIL was accepted: another server would be a second attempt at the same message
     * the client will retry anyway; RFC 5321 4.5.3.2 4xx semantics. */
    pool_result(job, RELAY_UNAVAILABLE, 451, "4.4.2", "Upstream %s %s: %s",
                upstream_name(u), o->timed_out ? "timed out" : "failed", o->error);
    return VERDICT_FINISH;
}

/* ---- jobs ---- */

static void
pool_job_log(const struct upstream_job *job)
{
    static const char *const names[] = {"ok", "rejected", "tempfail", "unavailable"};
    const struct relay_result *res = &job->res;
    struct logline             l;

    log_begin(&l, res->status == RELAY_OK ? LOG_INFO : LOG_NOTICE, "upstream.relay", job->sid);
    log_str(&l, "status", names[res->status]);
    log_int(&l, "code", res->code);
    log_str(&l, "enhanced", res->enhanced);
    log_str(&l, "text", res->text);
    log_str(&l, "upstream", res->upstream);
    if (res->queue_id[0] != '\0')
        log_str(&l, "queue_id", res->queue_id);
    if (res->failed_rcpt >= 0)
        log_int(&l, "failed_rcpt", res->failed_rcpt);
    log_int(&l, "rcpts", (long long)job->env->n_rcpts);
    log_int(&l, "size", (long long)job->msg_len);
    log_bool(&l, "reused", res->reused);
    log_int(&l, "ms", (long long)((ev_now(job->pool->loop) - job->started) * 1000));
    log_end(&l);
}

/* The result is final: done() runs from the loop, never from inside a pool call. */
static void
pool_job_finish(struct upstream_job *job)
{
    job->state = JOB_FINISHED;
    job->pc = NULL;
    if (job->res.status == RELAY_OK)
        job->pool->relayed++;
    pool_job_log(job);
    ev_timer_stop(job->pool->loop, &job->timer);
    ev_feed_event(job->pool->loop, &job->timer, EV_TIMER);
}

static void
pool_job_unlink(struct upstream_job *job)
{
    struct upstream_pool *pool = job->pool;

    ev_timer_stop(pool->loop, &job->timer); /* also clears a pending feed */
    if (job->prev != NULL)
        job->prev->next = job->next;
    else
        pool->jobs = job->next;
    if (job->next != NULL)
        job->next->prev = job->prev;
}

static void
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

static void
pool_job_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct upstream_job *job = container_of(w, struct upstream_job, timer);
    struct relay_result  res;
    relay_done_fn        done = job->done;
    void                *ctx = job->ctx;

    (void)loop;
    (void)revents;
    if (job->state == JOB_WAITING) { /* every connection of its key stayed busy */
        pool_wait_remove(job);
        pool_result(job, RELAY_UNAVAILABLE, 451, "4.4.5",
                    "All upstream connections are busy, try again later");
        pool_job_finish(job);
        return;
    }
    assert(job->state == JOB_FINISHED);
    res = job->res;
    pool_job_unlink(job);
    free(job);
    done(ctx, &res); /* last: it may start another relay */
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
static void
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
static void
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

/* ---- failover and the public calls ---- */

/* The target to try from job->target: first, in order, those whose set-up has not
 * failed lately; then, in order, the ones skipped for that reason (tried after the
 * others, so that a server back up is found when the others went down meanwhile). */
static size_t
pool_pick_target(struct upstream_job *job)
{
    const struct upstream_pool *pool = job->pool;
    const struct pool_set      *set = &pool->sets[job->set];
    ev_tstamp                   now = ev_now(pool->loop);
    size_t                      t;

    if (!job->second_pass) {
        for (t = job->target; t < set->n_targets; t++) {
            const struct pool_target *tg = &set->targets[t];

            if (pool->keys[tg->key].addrs[tg->addr].down_until <= now)
                return t;
            job->skipped[t / 8] |= (unsigned char)(1u << (t % 8));
        }
        job->second_pass = true;
        job->target = 0;
    }
    for (t = job->target; t < set->n_targets; t++)
        if (job->skipped[t / 8] & (1u << (t % 8)))
            return t;
    return POOL_NO_TARGET;
}

static void
pool_job_next(struct upstream_job *job)
{
    size_t t = pool_pick_target(job);

    if (t == POOL_NO_TARGET) {
        pool_result(job, RELAY_UNAVAILABLE, 451,
                    job->last_enhanced[0] ? job->last_enhanced : "4.4.1",
                    "No upstream available (%s)",
                    job->last_error[0] ? job->last_error : "no server configured");
        pool_job_finish(job);
        return;
    }
    job->target = t;
    pool_job_lease(job);
}

/* Addresses come from the session's parser, which refuses control characters; a
 * second check here keeps a bug there from becoming command injection upstream. */
static bool
pool_envelope_ok(const struct relay_envelope *env)
{
    size_t i;

    for (i = 0; i <= env->n_rcpts; i++) {
        const unsigned char *p =
            (const unsigned char *)(i == 0 ? env->mail_from : env->rcpts[i - 1]);

        for (; *p != '\0'; p++)
            if (*p < 0x20 || *p == 0x7f)
                return false;
    }
    return true;
}

struct upstream_job *
upstream_pool_relay(struct upstream_pool *pool, int set, uint64_t sid,
                    const struct relay_envelope *env, const char *msg, size_t msg_len,
                    relay_done_fn done, void *ctx)
{
    bool                 known = set >= 0 && (size_t)set < pool->n_sets;
    size_t               n_targets = known ? pool->sets[set].n_targets : 0;
    struct upstream_job *job = calloc(1, sizeof(*job) + n_targets / 8 + 1); /* + skipped[] */

    if (job == NULL)
        return NULL;
    job->pool = pool;
    job->set = set;
    job->sid = sid;
    job->env = env;
    job->msg = msg;
    job->msg_len = msg_len;
    job->done = done;
    job->ctx = ctx;
    job->res.failed_rcpt = -1;
    job->started = ev_now(pool->loop);
    ev_init(&job->timer, pool_job_timer_cb);
    job->next = pool->jobs;
    if (pool->jobs != NULL)
        pool->jobs->prev = job;
    pool->jobs = job;
    if (!known)
        pool_result(job, RELAY_UNAVAILABLE, 451, "4.3.5", "Upstream set not configured");
    else if (env->n_rcpts == 0)
        pool_result(job, RELAY_REJECTED, 554, "5.5.1", "No valid recipients");
    else if (!pool_envelope_ok(env))
        pool_result(job, RELAY_REJECTED, 501, "5.1.3", "Bad address syntax");
    else {
        pool_job_next(job);
        return job;
    }
    pool_job_finish(job);
    return job;
}

void
upstream_job_cancel(struct upstream_job *job)
{
    struct upstream_pool *pool = job->pool;
    struct pool_key      *key = NULL;

    if (job->state == JOB_WAITING) {
        pool_wait_remove(job);
    } else if (job->state == JOB_CONNECTING) {
        job->pc->job = NULL; /* set-up goes on; the connection joins the pool */
    } else if (job->state == JOB_RUNNING) {
        key = job->pc->key;
        pool_conn_drop(job->pc, "cancelled"); /* never complete an unfinished message */
    }
    pool_job_unlink(job);
    free(job);
    if (key != NULL)
        pool_key_serve(key, pool);
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
