/* core/relay/relay_job.c: one relay job: the client's result from an upstream's outcome,
 * failover across the set's servers, and done() from the loop; see relay_job.h and
 * docs/relay.md. The connections it runs on are leased from core/relay/upstream_pool.c
 * (struct upstream_lease), the SMTP dialogue on them is core/relay/upstream.c. */
#include "relay/relay_job.h"

#include <assert.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proto/smtp_replies.h"
#include "relay/upstream_pool.h"
#include "relay/upstream_token.h"
#include "util/log.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

#define RELAY_JOB_NO_TARGET SIZE_MAX

/* RFC 3463 section 3.5, for a server that failed (its error in the reply's text): no
 * answer from the host, or a connection that was established and then went bad. */
#define RELAY_JOB_NO_ANSWER      "4.4.1"
#define RELAY_JOB_BAD_CONNECTION "4.4.2"
/* RFC 3463 3.8: our own credentials for the upstream (its OAuth2 token) are missing or
 * were refused: a security matter on our side, temporary for the client. */
#define RELAY_JOB_NO_CREDENTIALS "4.7.0"
/* The server would not take the client's identity (XCLIENT, XFORWARD): a configuration
 * matter between sluice and it, RFC 3463 3.3 "mail system status". */
#define RELAY_JOB_XCLIENT        "4.3.0"

struct relay_job {
    struct upstream_lease        lease;   /* the pool's part: set, target, fresh, state */
    struct upstream_pool        *pool;    /* borrows */
    uint64_t                     sid;
    const struct relay_envelope *env;     /* borrows until done() */
    const char                  *msg;     /* borrows until done() */
    size_t                       msg_len;
    relay_done_fn                done;
    void                        *ctx;
    bool                         finished; /* res is final; timer is fed and runs done() */
    bool                         retried;  /* the one retry after a dead pooled connection */
    bool                         refetched; /* the one new token after a refused one */
    struct upstream_token_wait   token_wait; /* XOAUTH2: waiting for the target's token */
    ev_timer                     timer;    /* fed by relay_job_finish(): done() from the loop */
    ev_tstamp                    started;
    char                         last_error[240]; /* why the last server failed */
    char                         last_enhanced[8];
    struct relay_result          res;
    bool                         second_pass; /* trying the targets skipped as down */
    unsigned char                skipped[];   /* bit per target of the set: skipped as down */
};

static void relay_job_next(struct relay_job *job);

/* ---- results ---- */

/* Client-facing text: printable ASCII only, no CR/LF, whatever the source. */
static void
relay_job_sanitise(char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
            *s = '?';
}

static void
relay_job_result(struct relay_job *job, enum relay_status st, int code,
                 const char *enhanced, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void
relay_job_result(struct relay_job *job, enum relay_status st, int code,
                 const char *enhanced, const char *fmt, ...)
{
    struct relay_result *res = &job->res;
    va_list              ap;

    res->status = st;
    res->code = code;
    snprintf(res->enhanced, sizeof(res->enhanced), "%s", enhanced);
    va_start(ap, fmt);
    vsnprintf(res->text, sizeof(res->text), fmt, ap);
    va_end(ap);
    relay_job_sanitise(res->text);
}

/* One of the fixed replies (core/proto/smtp_replies.c). */
static void
relay_job_result_fixed(struct relay_job *job, enum relay_status st, enum smtp_reply_id id)
{
    const struct smtp_reply_entry *r = smtp_replies_get(id);

    relay_job_result(job, st, r->code, r->enhanced, "%s", r->text);
}

/* Best effort: "Ok: queued as 4Fb0x" (Postfix), "OK id=1rAB-0001-Xy" (Exim). */
static void
relay_job_queue_id(const char *text, char *out, size_t outlen)
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
relay_job_result_from_reply(struct relay_job *job, const struct upstream_outcome *o)
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
        relay_job_result(job, RELAY_OK, 250, enhanced, "%s", o->text[0] ? o->text : "Ok");
        relay_job_queue_id(o->text, job->res.queue_id, sizeof(job->res.queue_id));
        relay_job_sanitise(job->res.queue_id);
        return;
    }
    if (o->stage == UPSTREAM_STAGE_RCPT && o->failed_rcpt >= 0) {
        /* The client had 250 for this RCPT: name the recipient that sank the message. */
        job->res.failed_rcpt = o->failed_rcpt;
        relay_job_result(job, cls == 5 ? RELAY_REJECTED : RELAY_TEMPFAIL, o->code, enhanced,
                         "<%s>: upstream said: %s", job->env->rcpts[o->failed_rcpt], o->text);
        return;
    }
    relay_job_result(job, cls == 5 ? RELAY_REJECTED : RELAY_TEMPFAIL,
                     o->code == 421 ? 451 : o->code, enhanced, "%s",
                     o->text[0] ? o->text : "Upstream refused the message");
}

/* Decide what a transaction's outcome means for the job. */
static enum upstream_lease_next
relay_job_judge(struct relay_job *job, struct upstream *u)
{
    const struct upstream_outcome *o = upstream_outcome(u);

    snprintf(job->res.upstream, sizeof(job->res.upstream), "%s", upstream_name(u));
    job->res.dsn_dropped = o->dsn_dropped;
    if (!o->broken) {
        relay_job_result_from_reply(job, o);
        return UPSTREAM_LEASE_FINISH;
    }
    if (o->stage <= UPSTREAM_STAGE_MAIL) {
        /* Nothing accepted yet. A pooled connection that died while idle gives no
         * answer at all (or a 421): try once more on a new one. */
        if (job->res.reused && o->replies == 0 && !job->retried) {
            job->retried = true;
            return UPSTREAM_LEASE_RETRY;
        }
        snprintf(job->last_error, sizeof(job->last_error), "%s: %s", upstream_name(u),
                 o->error);
        snprintf(job->last_enhanced, sizeof(job->last_enhanced), "%s",
                 o->xclient ? RELAY_JOB_XCLIENT : RELAY_JOB_BAD_CONNECTION);
        job->res.upstream[0] = '\0';
        return UPSTREAM_LEASE_FAILOVER;
    }
    /* MAIL was accepted: another server would be a second attempt at the same message
     * the client will retry anyway; RFC 5321 4.5.3.2 4xx semantics. */
    relay_job_result(job, RELAY_UNAVAILABLE, 451, RELAY_JOB_BAD_CONNECTION, "Upstream %s %s: %s",
                     upstream_name(u), o->timed_out ? "timed out" : "failed", o->error);
    return UPSTREAM_LEASE_FINISH;
}

/* ---- jobs ---- */

static void
relay_job_log(const struct relay_job *job)
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
    if (res->dsn_dropped)
        log_str(&l, "dsn", "dropped");
    log_int(&l, "ms",
            (long long)((ev_now(upstream_pool_loop(job->pool)) - job->started) * 1000));
    log_end(&l);
}

/* The result is final: done() runs from the loop, never from inside a pool call. */
static void
relay_job_finish(struct relay_job *job)
{
    struct ev_loop *loop = upstream_pool_loop(job->pool);

    job->finished = true;
    if (job->res.status == RELAY_OK)
        upstream_pool_count_relayed(job->pool);
    relay_job_log(job);
    ev_timer_stop(loop, &job->timer);
    ev_feed_event(loop, &job->timer, EV_TIMER);
}

static void
relay_job_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct relay_job    *job = container_of(w, struct relay_job, timer);
    struct relay_result  res;
    relay_done_fn        done = job->done;
    void                *ctx = job->ctx;

    (void)revents;
    assert(job->finished);
    res = job->res;
    ev_timer_stop(loop, &job->timer);
    upstream_pool_detach(&job->lease);
    free(job);
    done(ctx, &res); /* last: it may start another relay */
}

static void relay_job_token_cb(struct upstream_token_wait *w, bool ok, const char *error);

/* The target's server logs in with XOAUTH2 and no token is cached: wait for one first
 * (fetched once for every job of the worker that waits). */
static bool
relay_job_needs_token(struct relay_job *job)
{
    const struct config_upstream_server *srv =
        upstream_pool_target_server(job->pool, job->lease.set, job->lease.target);
    struct upstream_tokens *tokens = upstream_pool_tokens(job->pool);

    if (srv->auth_mech != CONFIG_AUTH_XOAUTH2 ||
        upstream_tokens_get(tokens, srv->oauth2, job->sid) != NULL)
        return false;
    job->token_wait.done = relay_job_token_cb;
    if (upstream_tokens_wait(tokens, srv->oauth2, &job->token_wait, job->sid) != 0) {
        relay_job_result_fixed(job, RELAY_UNAVAILABLE, SMTP_R_OUT_OF_MEMORY);
        relay_job_finish(job);
    }
    return true;
}

/* Run the job on lease.target; out of memory finishes it. */
static void
relay_job_lease(struct relay_job *job)
{
    if (relay_job_needs_token(job))
        return;
    if (upstream_pool_lease(&job->lease) != 0) {
        relay_job_result_fixed(job, RELAY_UNAVAILABLE, SMTP_R_OUT_OF_MEMORY);
        relay_job_finish(job);
    }
}

/* The token wait is over: lease with it, or tell the client why not (no failover: the
 * set's servers share the domain's identity, and so its token). */
static void
relay_job_token_cb(struct upstream_token_wait *w, bool ok, const char *error)
{
    struct relay_job *job = container_of(w, struct relay_job, token_wait);

    if (ok) {
        if (upstream_pool_lease(&job->lease) == 0)
            return;
        relay_job_result_fixed(job, RELAY_UNAVAILABLE, SMTP_R_OUT_OF_MEMORY);
    } else {
        relay_job_result(job, RELAY_UNAVAILABLE, 451, RELAY_JOB_NO_CREDENTIALS,
                         "Cannot log in to the upstream: no OAuth2 token (%s); try again later",
                         error);
    }
    relay_job_finish(job);
}

/* ---- what the pool tells the job ---- */

static void
relay_job_start_cb(struct upstream_lease *l, struct upstream *u)
{
    struct relay_job *job = container_of(l, struct relay_job, lease);

    job->res.reused = upstream_transactions(u) > 0;
    upstream_transact(u, job->sid, job->env, job->msg, job->msg_len);
}

static enum upstream_lease_next
relay_job_ended_cb(struct upstream_lease *l, struct upstream *u, enum upstream_event ev)
{
    struct relay_job              *job = container_of(l, struct relay_job, lease);
    const struct upstream_outcome *o = upstream_outcome(u);
    bool                           dropped;

    if (ev == UPSTREAM_EV_DONE)
        return relay_job_judge(job, u);
    if (o->stage == UPSTREAM_STAGE_AUTH && upstream_bearer(u) != NULL && o->code / 100 == 5) {
        /* The token was refused (revoked, expired early): once per job, forget it and
         * try a new one on a new connection to the same server. A second refusal fails
         * over, keeping that token: an upstream that refuses every token costs one
         * token request per message, not two. */
        const struct config_upstream_server *srv =
            upstream_pool_target_server(job->pool, job->lease.set, job->lease.target);

        snprintf(job->last_error, sizeof(job->last_error), "%s: %s", upstream_name(u),
                 o->error);
        snprintf(job->last_enhanced, sizeof(job->last_enhanced), "%s",
                 RELAY_JOB_NO_CREDENTIALS);
        if (!job->refetched) {
            job->refetched = true;
            upstream_tokens_drop(upstream_pool_tokens(job->pool), srv->oauth2,
                                 upstream_bearer(u));
            return UPSTREAM_LEASE_RETRY;
        }
        return UPSTREAM_LEASE_FAILOVER;
    }
    /* Set-up failed. RFC 3463: no usable answer from the host is 4.4.1; a connection
     * that was established and then dropped, reset or went silent is 4.4.2. */
    dropped = o->stage > UPSTREAM_STAGE_CONNECT && (o->timed_out || o->dropped);
    snprintf(job->last_error, sizeof(job->last_error), "%s: %s", upstream_name(u), o->error);
    snprintf(job->last_enhanced, sizeof(job->last_enhanced), "%s",
             o->xclient ? RELAY_JOB_XCLIENT
             : dropped  ? RELAY_JOB_BAD_CONNECTION
                        : RELAY_JOB_NO_ANSWER);
    return UPSTREAM_LEASE_FAILOVER;
}

static void
relay_job_resume_cb(struct upstream_lease *l, enum upstream_lease_next next)
{
    struct relay_job *job = container_of(l, struct relay_job, lease);

    if (next == UPSTREAM_LEASE_FINISH) {
        relay_job_finish(job);
    } else if (next == UPSTREAM_LEASE_RETRY) {
        job->lease.fresh = true;
        relay_job_lease(job);
    } else {
        job->lease.target++;
        relay_job_next(job);
    }
}

static void
relay_job_fail_cb(struct upstream_lease *l, bool timed_out)
{
    struct relay_job *job = container_of(l, struct relay_job, lease);

    if (timed_out)
        relay_job_result_fixed(job, RELAY_UNAVAILABLE, SMTP_R_RELAY_BUSY);
    else
        relay_job_result_fixed(job, RELAY_UNAVAILABLE, SMTP_R_OUT_OF_MEMORY);
    relay_job_finish(job);
}

/* The pool is being freed (detached us already): done() now, with what we have. */
static void
relay_job_abort_cb(struct upstream_lease *l)
{
    struct relay_job    *job = container_of(l, struct relay_job, lease);
    relay_done_fn        done = job->done;
    void                *ctx = job->ctx;
    struct relay_result  res;

    upstream_tokens_cancel(&job->token_wait);
    if (!job->finished)
        relay_job_result_fixed(job, RELAY_UNAVAILABLE, SMTP_R_RELAY_SHUTTING_DOWN);
    res = job->res;
    ev_timer_stop(upstream_pool_loop(job->pool), &job->timer); /* also clears a feed */
    free(job);
    done(ctx, &res);
}

static const struct upstream_lease_ops relay_job_ops = {
    .start = relay_job_start_cb,
    .ended = relay_job_ended_cb,
    .resume = relay_job_resume_cb,
    .fail = relay_job_fail_cb,
    .abort = relay_job_abort_cb,
};

/* ---- failover and the public calls ---- */

/* The target to try from lease.target: first, in order, those whose set-up has not
 * failed lately; then, in order, the ones skipped for that reason (tried after the
 * others, so that a server back up is found when the others went down meanwhile). */
static size_t
relay_job_pick_target(struct relay_job *job)
{
    size_t n = upstream_pool_targets(job->pool, job->lease.set);
    size_t t;

    if (!job->second_pass) {
        for (t = job->lease.target; t < n; t++) {
            if (!upstream_pool_target_is_down(job->pool, job->lease.set, t))
                return t;
            job->skipped[t / 8] |= (unsigned char)(1u << (t % 8));
        }
        job->second_pass = true;
        job->lease.target = 0;
    }
    for (t = job->lease.target; t < n; t++)
        if (job->skipped[t / 8] & (1u << (t % 8)))
            return t;
    return RELAY_JOB_NO_TARGET;
}

static void
relay_job_next(struct relay_job *job)
{
    size_t t = relay_job_pick_target(job);

    if (t == RELAY_JOB_NO_TARGET) {
        if (job->last_error[0] == '\0') /* the set has no server: none was tried */
            relay_job_result_fixed(job, RELAY_UNAVAILABLE, SMTP_R_RELAY_NO_SERVER);
        else
            relay_job_result(job, RELAY_UNAVAILABLE, 451, job->last_enhanced,
                             "No upstream available (%s)", job->last_error);
        relay_job_finish(job);
        return;
    }
    job->lease.target = t;
    relay_job_lease(job);
}

/* Addresses come from the session's parser, which refuses control characters; a
 * second check here keeps a bug there from becoming command injection upstream. */
static bool
relay_job_envelope_ok(const struct relay_envelope *env)
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

struct relay_job *
relay_job_start(struct upstream_pool *pool, int set, uint64_t sid,
                const struct relay_envelope *env, const char *msg, size_t msg_len,
                relay_done_fn done, void *ctx)
{
    bool                 known = upstream_pool_has_set(pool, set);
    size_t               n_targets = known ? upstream_pool_targets(pool, set) : 0;
    struct relay_job    *job = calloc(1, sizeof(*job) + n_targets / 8 + 1); /* + skipped[] */

    if (job == NULL)
        return NULL;
    job->pool = pool;
    job->lease.set = set;
    job->sid = sid;
    job->env = env;
    job->msg = msg;
    job->msg_len = msg_len;
    job->done = done;
    job->ctx = ctx;
    job->res.failed_rcpt = -1;
    job->started = ev_now(upstream_pool_loop(pool));
    ev_init(&job->timer, relay_job_timer_cb);
    upstream_pool_attach(pool, &job->lease, &relay_job_ops, sid);
    if (!known)
        relay_job_result_fixed(job, RELAY_UNAVAILABLE, SMTP_R_RELAY_NO_SET);
    else if (env->n_rcpts == 0)
        relay_job_result_fixed(job, RELAY_REJECTED, SMTP_R_NO_RECIPIENTS);
    else if (!relay_job_envelope_ok(env))
        relay_job_result_fixed(job, RELAY_REJECTED, SMTP_R_RELAY_BAD_ADDRESS);
    else {
        relay_job_next(job);
        return job;
    }
    relay_job_finish(job);
    return job;
}

void
relay_job_cancel(struct relay_job *job)
{
    ev_timer_stop(upstream_pool_loop(job->pool), &job->timer); /* also clears a feed */
    upstream_tokens_cancel(&job->token_wait);
    upstream_pool_detach(&job->lease);
    free(job);
}
