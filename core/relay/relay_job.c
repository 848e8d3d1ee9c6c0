/* core/relay/relay_job.c: one relay job: the result for the client from an upstream's
 * outcome, failover across the set's servers, and done() from the loop; see
 * upstream_pool.h and docs/relay.md. The connections it runs on are
 * core/relay/upstream_pool.c's. */
#include <assert.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/log.h"
#include "relay/upstream_pool_internal.h"

/* ---- results ---- */

/* Client-facing text: printable ASCII only, no CR/LF, whatever the source. */
static void
pool_sanitise(char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
            *s = '?';
}

void
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
enum job_verdict
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
void
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

void
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

void
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
