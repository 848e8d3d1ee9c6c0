/* core/store/redis_link.c: one worker's pipelined connection to Redis; see redis_link.h. */
#include "store/redis_link.h"

#include <adapters/libev.h>
#include <async.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "store/zone_redis.h"
#include "util/log.h"

#define REDIS_LINK_BACKOFF_MIN 0.1 /* seconds before the first retry */
#define REDIS_LINK_BACKOFF_MAX 5.0

enum redis_link_state {
    REDIS_LINK_IDLE,       /* no connection; the next send opens one */
    REDIS_LINK_CONNECTING, /* opened, setup commands not all answered */
    REDIS_LINK_UP,
    REDIS_LINK_BACKOFF,    /* broken: sends refused until the retry timer */
    REDIS_LINK_CLOSED,     /* redis_link_close(): sends refused for good */
};

struct redis_link {
    struct ev_loop          *loop;
    redisAsyncContext       *ac;      /* NULL unless CONNECTING or UP */
    enum redis_link_state    state;
    int                      setup_left; /* setup replies still to come */
    double                   backoff; /* seconds of the next back-off */
    bool                     down_logged; /* redis.down said for this outage */
    unsigned                 attempts; /* failed attempts in this outage */
    ev_timer                 timer;   /* connect deadline, or the back-off */
    struct redis_link_stats *stats;   /* borrows, may be NULL */
    const struct config_redis *rc;    /* borrows: the zones' copy */
};

static void
redis_link_count(atomic_ullong *c)
{
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

static const char *
redis_link_where(const struct redis_link *l, char *buf, size_t n)
{
    if (l->rc->socket != NULL)
        snprintf(buf, n, "unix:%s", l->rc->socket);
    else
        snprintf(buf, n, strchr(l->rc->address, ':') ? "[%s]:%d" : "%s:%d", l->rc->address,
                 l->rc->port);
    return buf;
}

static void
redis_link_log_down(struct redis_link *l, const char *why)
{
    struct logline l2;
    char           where[160];

    l->attempts++;
    if (l->down_logged)
        return;
    l->down_logged = true;
    log_begin(&l2, LOG_WARNING, "redis.down", 0);
    log_str(&l2, "redis", redis_link_where(l, where, sizeof(where)));
    log_str(&l2, "error", why);
    log_dbl(&l2, "retry_in", l->backoff);
    log_str(&l2, "msg", "Redis zones answer from their local fallback (fail open) or refuse "
                        "(fail closed) until it is back");
    log_end(&l2);
}

static void redis_link_timer_cb(struct ev_loop *loop, ev_timer *t, int revents);

/* The connection is gone or must go: back off. ac is freed by hiredis or by the caller. */
static void
redis_link_down(struct redis_link *l, const char *why)
{
    if (l->state == REDIS_LINK_UP && l->stats != NULL)
        atomic_fetch_sub_explicit(&l->stats->up, 1, memory_order_relaxed);
    if (l->stats != NULL)
        redis_link_count(&l->stats->failures);
    l->state = REDIS_LINK_BACKOFF;
    l->ac = NULL;
    redis_link_log_down(l, why);
    ev_timer_stop(l->loop, &l->timer);
    ev_timer_set(&l->timer, l->backoff, 0.);
    ev_timer_start(l->loop, &l->timer);
    l->backoff = l->backoff * 2 > REDIS_LINK_BACKOFF_MAX ? REDIS_LINK_BACKOFF_MAX
                                                         : l->backoff * 2;
}

void
redis_link_break(struct redis_link *l, const char *why)
{
    redisAsyncContext *ac = l->ac;

    if (ac == NULL)
        return;
    ac->data = NULL; /* its disconnect callback must not find l: this is the down */
    redis_link_down(l, why);
    redisAsyncFree(ac); /* pending replies: NULL, now (or after the running callback) */
}

static void
redis_link_up(struct redis_link *l)
{
    struct logline lg;
    char           where[160];

    l->state = REDIS_LINK_UP;
    ev_timer_stop(l->loop, &l->timer);
    if (l->stats != NULL) {
        atomic_fetch_add_explicit(&l->stats->up, 1, memory_order_relaxed);
        redis_link_count(&l->stats->connects);
    }
    if (l->down_logged) {
        log_begin(&lg, LOG_NOTICE, "redis.up", 0);
        log_str(&lg, "redis", redis_link_where(l, where, sizeof(where)));
        log_int(&lg, "failed_attempts", (long long)l->attempts);
        log_end(&lg);
    }
    l->down_logged = false;
    l->attempts = 0;
    l->backoff = REDIS_LINK_BACKOFF_MIN;
}

/* A reply to AUTH, SELECT or SCRIPT LOAD. */
static void
redis_link_setup_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    struct redis_link *l = ac->data;
    redisReply        *r = reply;
    char               why[160];

    (void)priv;
    if (l == NULL || l->ac != ac || r == NULL)
        return; /* broken meanwhile: already down */
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(why, sizeof(why), "setup refused: %.120s", r->str);
        redis_link_break(l, why);
        return;
    }
    if (--l->setup_left == 0)
        redis_link_up(l);
}

static void
redis_link_connect_cb(const redisAsyncContext *ac, int status)
{
    struct redis_link *l = ac->data;

    if (status != REDIS_OK && l != NULL && l->ac == ac)
        redis_link_down(l, ac->errstr[0] ? ac->errstr : "connect failed"); /* hiredis frees */
}

static void
redis_link_disconnect_cb(const redisAsyncContext *ac, int status)
{
    struct redis_link *l = ac->data;

    (void)status;
    if (l != NULL && l->ac == ac)
        redis_link_down(l, ac->errstr[0] ? ac->errstr : "connection closed");
}

static void
redis_link_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct redis_link *l = (struct redis_link *)((char *)t - offsetof(struct redis_link, timer));

    (void)loop;
    (void)revents;
    if (l->state == REDIS_LINK_CONNECTING)
        redis_link_break(l, "connect timeout");
    else if (l->state == REDIS_LINK_BACKOFF)
        l->state = REDIS_LINK_IDLE;
}

static void
redis_link_setup(struct redis_link *l)
{
    const struct config_redis *rc = l->rc;
    char                       db[16];

    l->setup_left = 0;
    if (rc->password != NULL) {
        if (rc->username != NULL)
            redisAsyncCommand(l->ac, redis_link_setup_cb, NULL, "AUTH %s %s", rc->username,
                              rc->password);
        else
            redisAsyncCommand(l->ac, redis_link_setup_cb, NULL, "AUTH %s", rc->password);
        l->setup_left++;
    }
    if (rc->database != 0) {
        snprintf(db, sizeof(db), "%d", rc->database);
        redisAsyncCommand(l->ac, redis_link_setup_cb, NULL, "SELECT %s", db);
        l->setup_left++;
    }
    for (size_t i = 0; i < ZONE_REDIS_SCRIPTS; i++) {
        redisAsyncCommand(l->ac, redis_link_setup_cb, NULL, "SCRIPT LOAD %s",
                          zone_redis_script(i));
        l->setup_left++;
    }
}

static int
redis_link_connect(struct redis_link *l)
{
    redisAsyncContext *ac = l->rc->socket != NULL
                                ? redisAsyncConnectUnix(l->rc->socket)
                                : redisAsyncConnect(l->rc->address, l->rc->port);

    if (ac == NULL || ac->err) {
        redis_link_down(l, ac != NULL && ac->errstr[0] ? ac->errstr : "cannot connect");
        if (ac != NULL)
            redisAsyncFree(ac);
        return -1;
    }
    ac->data = l;
    if (redisLibevAttach(l->loop, ac) != REDIS_OK) {
        redisAsyncFree(ac);
        redis_link_down(l, "cannot attach to the loop");
        return -1;
    }
    redisAsyncSetConnectCallback(ac, redis_link_connect_cb);
    redisAsyncSetDisconnectCallback(ac, redis_link_disconnect_cb);
    l->ac = ac;
    l->state = REDIS_LINK_CONNECTING;
    ev_timer_stop(l->loop, &l->timer);
    ev_timer_set(&l->timer, l->rc->connect_timeout, 0.);
    ev_timer_start(l->loop, &l->timer);
    redis_link_setup(l);
    return 0;
}

int
redis_link_send(struct redis_link *l, const struct zone_redis_cmd *cmd,
                redis_link_reply_fn *fn, void *arg)
{
    if (l->state == REDIS_LINK_BACKOFF || l->state == REDIS_LINK_CLOSED)
        return -1;
    if (l->state == REDIS_LINK_IDLE && redis_link_connect(l) != 0)
        return -1;
    if (redisAsyncCommandArgv(l->ac, fn, arg, cmd->argc, (const char **)cmd->argv,
                              cmd->lens) != REDIS_OK)
        return -1;
    return 0;
}

struct redis_link *
redis_link_new(const struct config_redis *rc, struct ev_loop *loop,
               struct redis_link_stats *stats)
{
    struct redis_link *l = calloc(1, sizeof(*l));

    if (l == NULL)
        return NULL;
    l->loop = loop;
    l->stats = stats;
    l->rc = rc;
    l->state = REDIS_LINK_IDLE;
    l->backoff = REDIS_LINK_BACKOFF_MIN;
    ev_init(&l->timer, redis_link_timer_cb);
    return l;
}

void
redis_link_close(struct redis_link *l)
{
    redisAsyncContext *ac;

    if (l == NULL)
        return;
    ac = l->ac;
    if (l->state == REDIS_LINK_UP && l->stats != NULL)
        atomic_fetch_sub_explicit(&l->stats->up, 1, memory_order_relaxed);
    l->state = REDIS_LINK_CLOSED;
    l->ac = NULL;
    ev_timer_stop(l->loop, &l->timer);
    if (ac != NULL) {
        ac->data = NULL;
        redisAsyncFree(ac); /* pending replies: NULL */
    }
}

void
redis_link_free(struct redis_link *l)
{
    if (l == NULL)
        return;
    redis_link_close(l);
    free(l);
}
