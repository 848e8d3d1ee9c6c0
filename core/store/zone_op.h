/* core/store/zone_op.h: one operation on a zone and what it gave, as zone.h's zone_exec()
 * and zone_call() take them and zone_redis.h turns them into Redis commands. Apart from
 * zone.h so that the Redis side (zone_redis, redis_link, redis_sync) needs nothing of the
 * zones themselves. */
#ifndef SLUICE_ZONE_OP_H
#define SLUICE_ZONE_OP_H

#include <stdbool.h>
#include <stddef.h>

#include "store/shdict.h"

#define ZONE_REDIS_KEY_MAX (64 + 32 + 1 + 1024 + 1) /* prefix, zone, ':', key, NUL */

/* One operation, for zone_exec() and zone_call(). */
enum zone_op_kind { ZONE_GET, ZONE_SET, ZONE_ADD, ZONE_INCR, ZONE_DELETE };

struct zone_op {
    enum zone_op_kind   kind;
    const char         *key;   /* borrows; klen octets */
    size_t              klen;
    struct shdict_value value; /* set (SHDICT_NIL deletes), add */
    double              by;    /* incr */
    double              ttl;   /* set, add, incr (only when it creates the key) */
    bool                readonly; /* incr: read the number (0 when absent), change nothing */
    const char         *peek;  /* incr: another key whose number to read in the same
                                * step (a limiter's previous window), or NULL */
    size_t              plen;
    double              now;
};

/* What an operation gave. */
struct zone_result {
    enum shdict_rc      rc;
    struct shdict_value v;        /* get: the value; v.str borrows (valid until the call
                                   * returns, or the done callback does) */
    double              num;      /* incr: the number now */
    double              peek;     /* incr: the number under op->peek; 0 when absent */
    bool                fallback; /* the local fallback answered, or nobody (fail closed) */
    char               *heap;     /* owns: a get's string longer than v.cap; see
                                   * zone_result_cleanup() */
};

#endif
