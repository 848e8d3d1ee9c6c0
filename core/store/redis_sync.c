/* core/store/redis_sync.c: the blocking connection to Redis; see redis_sync.h. */
#include "store/redis_sync.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config/config.h"
#include "store/zone_redis.h"

#define REDIS_SYNC_BACKOFF     1.0 /* seconds between two connects after a failure */
#define REDIS_SYNC_MIN_TIMEOUT 1.0 /* seconds an answer may take, at least */

struct redis_sync {
    pthread_mutex_t mu;
    redisContext   *c;       /* NULL when not connected */
    double          retry_at; /* CLOCK_MONOTONIC seconds before which no connect is tried */
    const struct config_redis *rc; /* borrows: the zones' copy */
};

static double
redis_sync_clock(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct timeval
redis_sync_tv(double secs)
{
    struct timeval tv = {.tv_sec = (time_t)secs};

    tv.tv_usec = (suseconds_t)((secs - (double)tv.tv_sec) * 1e6);
    return tv;
}

/* One setup command; false when it failed. */
static bool
redis_sync_setup_one(redisContext *c, redisReply *r)
{
    bool ok = r != NULL && r->type != REDIS_REPLY_ERROR;

    (void)c;
    if (r != NULL)
        freeReplyObject(r);
    return ok;
}

static bool
redis_sync_setup(struct redis_sync *s, redisContext *c)
{
    const struct config_redis *rc = s->rc;
    char                       db[16];

    if (rc->password != NULL &&
        !redis_sync_setup_one(c, rc->username != NULL
                                     ? redisCommand(c, "AUTH %s %s", rc->username, rc->password)
                                     : redisCommand(c, "AUTH %s", rc->password)))
        return false;
    snprintf(db, sizeof(db), "%d", rc->database);
    if (rc->database != 0 && !redis_sync_setup_one(c, redisCommand(c, "SELECT %s", db)))
        return false;
    for (size_t i = 0; i < ZONE_REDIS_SCRIPTS; i++)
        if (!redis_sync_setup_one(c, redisCommand(c, "SCRIPT LOAD %s", zone_redis_script(i))))
            return false;
    return true;
}

static void
redis_sync_drop(struct redis_sync *s)
{
    if (s->c != NULL)
        redisFree(s->c);
    s->c = NULL;
    s->retry_at = redis_sync_clock() + REDIS_SYNC_BACKOFF;
}

/* Connected, or false (why says so). Called with mu held. */
static bool
redis_sync_connect(struct redis_sync *s, const char **why)
{
    const struct config_redis *rc = s->rc;
    struct timeval             tv = redis_sync_tv(rc->connect_timeout);
    double answer = rc->timeout > REDIS_SYNC_MIN_TIMEOUT ? rc->timeout : REDIS_SYNC_MIN_TIMEOUT;

    if (s->c != NULL)
        return true;
    if (redis_sync_clock() < s->retry_at) {
        *why = "backing off after a failure";
        return false;
    }
    s->c = rc->socket != NULL ? redisConnectUnixWithTimeout(rc->socket, tv)
                              : redisConnectWithTimeout(rc->address, rc->port, tv);
    if (s->c == NULL || s->c->err || redisSetTimeout(s->c, redis_sync_tv(answer)) != REDIS_OK ||
        !redis_sync_setup(s, s->c)) {
        *why = "cannot connect, or AUTH/SELECT/SCRIPT LOAD failed";
        redis_sync_drop(s);
        return false;
    }
    return true;
}

redisReply *
redis_sync_argv(struct redis_sync *s, int argc, const char **argv, const size_t *lens,
                const char **why)
{
    redisReply *r = NULL;

    pthread_mutex_lock(&s->mu);
    if (redis_sync_connect(s, why)) {
        r = redisCommandArgv(s->c, argc, argv, lens);
        if (r == NULL) {
            *why = "no answer in time, or the connection broke";
            redis_sync_drop(s);
        } else if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0) {
            redis_sync_drop(s); /* SCRIPT FLUSH: the next connect loads them again */
            s->retry_at = 0;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return r;
}

redisReply *
redis_sync_call(struct redis_sync *s, const struct zone_redis_cmd *cmd, const char **why)
{
    return redis_sync_argv(s, cmd->argc, (const char **)cmd->argv, cmd->lens, why);
}

struct redis_sync *
redis_sync_new(const struct config_redis *rc)
{
    struct redis_sync *s = calloc(1, sizeof(*s));

    if (s == NULL)
        return NULL;
    pthread_mutex_init(&s->mu, NULL);
    s->rc = rc;
    return s;
}

void
redis_sync_free(struct redis_sync *s)
{
    if (s == NULL)
        return;
    if (s->c != NULL)
        redisFree(s->c);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
