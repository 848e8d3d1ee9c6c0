/* core/store/zone_redis.h: the zone operations (zone_op.h) as Redis commands,
 * and Redis replies as their results: the one place that knows how a zone's entries look
 * in Redis (docs/deployment.md "What Redis holds"):
 *
 *   key    PREFIX ZONE ':' KEY          (redis.prefix, the zone's name, the caller's key)
 *   value  a number as "%.17g" (so that INCRBYFLOAT works on it), a string as '=' and
 *          its octets (never a number to Redis, so incr on it fails as in shdict)
 *   TTL    Redis' own expiry (PX), in milliseconds
 *
 * get and incr are Lua scripts (redis_scripts below), so that each operation is one atomic
 * step on the server and one round trip: get returns the value with its TTL; incr adds,
 * sets the expiry only when it created the key (shdict_incr's fixed windows), and reads a
 * second key in the same step (the previous window of a sliding-window limiter). The
 * scripts are loaded with SCRIPT LOAD when a connection opens and called with EVALSHA;
 * a NOSCRIPT answer (someone ran SCRIPT FLUSH) breaks the connection, which loads them
 * again when it reopens. Used by redis_link.c (the workers' connections) and
 * redis_sync.c (the blocking one), through zone.c. */
#ifndef SLUICE_ZONE_REDIS_H
#define SLUICE_ZONE_REDIS_H

#include <hiredis.h>
#include <stddef.h>

#include "store/zone_op.h"

#define ZONE_REDIS_MAX_ARGS 8
#define ZONE_REDIS_SCRIPTS  2

/* One command: argv[i] points into the caller's strings or into this struct's buffers. */
struct zone_redis_cmd {
    int         argc;
    const char *argv[ZONE_REDIS_MAX_ARGS];
    size_t      lens[ZONE_REDIS_MAX_ARGS];
    char        key[ZONE_REDIS_KEY_MAX];  /* prefix zone ':' key */
    char        peek[ZONE_REDIS_KEY_MAX]; /* the same for op->peek */
    char        num[2][32];               /* numbers as text: a value or by, a TTL */
    char       *value;                    /* owns: '=' and a string value, or NULL */
};

/* The SCRIPT LOAD commands a new connection sends first, and the digests EVALSHA uses. */
const char *zone_redis_script(size_t i);
const char *zone_redis_script_sha(size_t i); /* 40 hex digits */

/* op on the zone named zone, keys under prefix, as a command in *cmd; -1 when a key does
 * not fit (ZONE_REDIS_KEY_MAX) or memory runs out. zone_redis_cmd_cleanup() after use. */
int  zone_redis_cmd_build(struct zone_redis_cmd *cmd, const char *prefix, const char *zone,
                          const struct zone_op *op);
void zone_redis_cmd_cleanup(struct zone_redis_cmd *cmd);

/* The reply to op's command as a result: SHDICT_OK and its values, or the rc it means
 * (SHDICT_NOT_FOUND, SHDICT_EXISTS, SHDICT_NOT_NUMBER), or SHDICT_UNAVAILABLE for an error
 * reply or a shape the command never gives (r->v.str borrows from reply). *broken is
 * set when the connection must be dropped (NOSCRIPT, or a reply of the wrong shape). */
void zone_redis_result(const struct zone_op *op, const redisReply *reply, double now,
                       struct zone_result *r, bool *broken);

#endif
