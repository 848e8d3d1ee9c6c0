/* core/store/redis_link.h: one worker's connection to the Redis server of the Redis zones
 * (docs/deployment.md), on the worker's loop through hiredis' libev adapter. Commands are
 * pipelined on it: one connection per worker carries every hook's calls, in order, without
 * a pool to wait for.
 *
 * Life: idle until the first send, which connects (and sends AUTH, SELECT and the zone
 * scripts' SCRIPT LOAD ahead of it); up once those were answered; broken by a failed
 * connect, a lost connection, an error in that setup, or redis_link_break() (a reply that
 * did not come in time: zone.c). A broken link answers every command still pending with
 * a NULL reply, logs redis.down (once per outage, not per attempt) and refuses sends for
 * a back-off that doubles from 0.1 s to 5 s with each failed attempt; the first send
 * after it connects again. redis.up says when it works again.
 *
 * Thread-safety: all calls on the loop's thread; the stats are atomics another thread
 * reads. */
#ifndef SLUICE_REDIS_LINK_H
#define SLUICE_REDIS_LINK_H

#include <async.h>
#include <hiredis.h>
#include <stdatomic.h>

struct config_redis;
struct ev_loop;
struct redis_link;
struct zone_redis_cmd;

/* Shared by every worker's link (relaxed atomics): `sluice ctl status`, metrics. */
struct redis_link_stats {
    atomic_int         up;       /* links connected and set up now */
    atomic_ullong      connects; /* connections set up */
    atomic_ullong      failures; /* connects that failed, connections lost or broken */
};

/* hiredis' redisCallbackFn: reply (a redisReply) is NULL when none came (the link broke);
 * hiredis frees it after the call. */
typedef void redis_link_reply_fn(redisAsyncContext *ac, void *reply, void *arg);

/* rc and stats borrow (stats may be NULL); both outlive the link. */
struct redis_link *redis_link_new(const struct config_redis *rc, struct ev_loop *loop,
                                  struct redis_link_stats *stats);
/* Close for good (a worker that drained): every pending reply is called with NULL, no
 * socket or timer is left on the loop, sends are refused. */
void               redis_link_close(struct redis_link *l);
/* Close, then free. */
void               redis_link_free(struct redis_link *l);

/* Queue cmd; fn(arg, reply) later, exactly once, never before this returns. -1 when the
 * link is backing off or cannot connect now: fn is never called, answer without Redis. */
int redis_link_send(struct redis_link *l, const struct zone_redis_cmd *cmd,
                    redis_link_reply_fn *fn, void *arg);

/* Drop the connection now (why: for the log line) and back off. */
void redis_link_break(struct redis_link *l, const char *why);

#endif
