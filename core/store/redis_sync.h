/* core/store/redis_sync.h: the daemon's one blocking connection to the Redis server of the
 * Redis zones, for callers that have no loop to wait on: the control socket's thread
 * (`sluice ctl token deny`, `ratelimit reset`), policies being loaded, and walks of a
 * zone's keys. One call at a time (a mutex); each waits at most the configured timeouts
 * (connect_timeout to connect, max(timeout, 1 s) for an answer: the control plane is not
 * a client waiting in SMTP). A failed call drops the connection; the next call after a
 * back-off (1 s) connects again, so a Redis that is down costs one timeout per second at
 * most, not one per call. Workers' hooks never use it: redis_link.h.
 *
 * Thread-safety: any thread. */
#ifndef SLUICE_REDIS_SYNC_H
#define SLUICE_REDIS_SYNC_H

#include <hiredis.h>

struct config_redis;
struct redis_sync;
struct zone_redis_cmd;

/* rc borrows: it outlives the connection. */
struct redis_sync *redis_sync_new(const struct config_redis *rc);
void               redis_sync_free(struct redis_sync *s);

/* cmd's reply (the caller frees it with freeReplyObject), or NULL when Redis could not
 * answer (why says so, for a log line). An error reply is a reply. */
redisReply *redis_sync_call(struct redis_sync *s, const struct zone_redis_cmd *cmd,
                            const char **why);

/* The same for a command of plain arguments (SCAN in zone.c's key walks). */
redisReply *redis_sync_argv(struct redis_sync *s, int argc, const char **argv,
                            const size_t *lens, const char **why);

#endif
