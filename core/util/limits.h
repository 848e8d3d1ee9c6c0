/* core/util/limits.h: compiled-in defaults for every bound a client can push against.
 * Each is overridable in the configuration (docs/configuration.md names the key). */
#ifndef SLUICE_LIMITS_H
#define SLUICE_LIMITS_H

#define LIMIT_MAX_MESSAGE_SIZE      (25u * 1024 * 1024) /* limits.max_message_size */
#define LIMIT_MAX_RECIPIENTS        100    /* limits.max_recipients; RFC 5321 4.5.3.1.8 */
#define LIMIT_MAX_LINE_LENGTH       1000   /* limits.max_line_length; RFC 5321 4.5.3.1.6 */
#define LIMIT_MAX_ERRORS            10     /* limits.max_errors before 421 */
#define LIMIT_MAX_COMMANDS          10000  /* limits.max_commands per session */
#define LIMIT_MAX_MESSAGES          1000   /* limits.max_messages per session */
#define LIMIT_MAX_AUTH_FAILURES     3      /* limits.max_auth_failures before 421 */
#define LIMIT_MAX_CONNECTIONS       10000  /* limits.max_connections, whole daemon */
#define LIMIT_MAX_CONNECTIONS_PER_IP 100   /* limits.max_connections_per_ip: per client network */
#define LIMIT_CLIENT_IPV6_PREFIX    64     /* limits.client_ipv6_prefix: an IPv6 client's bits */
#define LIMIT_MIN_DATA_RATE         500    /* limits.min_data_rate, octets/s (Postfix's default) */
/* Password checks on the thread pool (docs/security.md "AUTH floods"): at ~20-40 ms a
 * hash on 2 threads, 64 queued is 1 s of work at most, well inside hook_timeout; 16 per
 * client lets an application server log in a dozen connections at once, and leaves 48
 * places to everyone else when one client floods. */
#define LIMIT_MAX_AUTH_JOBS          64    /* limits.max_auth_jobs */
#define LIMIT_MAX_AUTH_JOBS_CAP      1024  /* its largest value (core/util/offload.c) */
#define LIMIT_MAX_AUTH_JOBS_PER_CLIENT 16  /* limits.max_auth_jobs_per_client */

/* Memory for messages in transit (docs/security.md "Memory for messages"). Unset, the
 * share is max(64 MiB, 2 * (max_message_size + 128 KiB)) and the total
 * max(256 MiB, 4 * the share). */
#define LIMIT_MAX_INFLIGHT_BYTES    (256u * 1024 * 1024) /* limits.max_inflight_bytes */
#define LIMIT_MAX_INFLIGHT_PER_CLIENT (64u * 1024 * 1024) /* ..._bytes_per_client */
#define LIMIT_INFLIGHT_MESSAGE_ROOM (128u * 1024) /* a message's octets past max_message_size:
                                                   * our Received:, tx:add_header */
#define INFLIGHT_FIRST_CHUNK        (64u * 1024)  /* reserved at MAIL FROM */
#define INFLIGHT_MAX_CHUNK          (1024u * 1024) /* growth steps double up to this */

/* RFC 5321 section 4.5.3.2 timeouts, seconds. Deadlines, not idle timers: bytes that
 * trickle in never push them back (docs/security.md, "Connections and slow clients"). */
#define TIMEOUT_GREETING   300 /* a session waiting for its first command */
#define TIMEOUT_COMMAND    300 /* the next command's first octet; then its whole line */
#define TIMEOUT_DATA_BLOCK 180 /* DATA/BDAT content: grace before min_data_rate counts */
#define TIMEOUT_TLS        30  /* a whole TLS handshake */
#define TIMEOUT_UPSTREAM   60  /* any one upstream reply (RFC: 5 min for MAIL; we fail over) */
#define TIMEOUT_UPSTREAM_DATA_END 600 /* RFC 5321 4.5.3.2.6: DATA termination, 10 minutes */
#define TIMEOUT_DRAIN      30  /* TERM: how long transactions in flight may take */

#define POOL_MAX_PER_WORKER 8     /* upstream connections per worker per upstream */
#define POOL_IDLE_TIMEOUT   30    /* seconds an unused upstream connection stays open */
#define POOL_MAX_REUSE      1000  /* messages per upstream connection, then reconnect */

#define HOOK_TIMEOUT        10    /* hook_timeout: seconds one policy hook may take */
#define AUTH_CACHE_TTL      60    /* auth_cache_ttl: seconds a verified password is remembered */
#define SHDICT_SIZE         (16u * 1024 * 1024) /* shdict_size: the zone 'default' */
#define ZONE_LIMITS_SIZE     (8u * 1024 * 1024)  /* zones.limits: rate-limit counters */
#define ZONE_BLOCKS_SIZE     (1u * 1024 * 1024)  /* zones.blocks: never evicted */
#define ZONE_DENYLIST_SIZE   (1u * 1024 * 1024)  /* zones.denylist: never evicted */
#define ZONE_AUTH_CACHE_SIZE (4u * 1024 * 1024)  /* zones.auth_cache */
#define ZONE_JWKS_SIZE       (1u * 1024 * 1024)  /* zones.jwks: 64 KiB a key set at most */

#endif
