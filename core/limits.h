/* core/limits.h: compiled-in defaults for every bound a client can push against.
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
#define SHDICT_SIZE         (16u * 1024 * 1024) /* shdict_size: the cross-worker dictionary */

#endif
