/* core/net/iplimit.h: connection counts for the whole daemon and per client network, shared
 * by all workers. One mutex per shard; an entry lives while its count is above zero.
 *
 * A client network is what one subscriber usually holds (docs/security.md,
 * "Connections and slow clients"): an IPv4 address, or an IPv6 prefix (/64 unless
 * limits.client_ipv6_prefix says otherwise). iplimit_client_key() names it; the same
 * string is the policies' session.client. */
#ifndef SLUICE_IPLIMIT_H
#define SLUICE_IPLIMIT_H

#include <stdbool.h>
#include <stddef.h>

/* Room for a key: "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128" and its NUL fit. */
#define IPLIMIT_CLIENT_MAX 48

struct iplimit;

struct iplimit *iplimit_new(size_t max_total, size_t max_per_client);
void            iplimit_free(struct iplimit *l);

enum iplimit_rc {
    IPLIMIT_OK,
    IPLIMIT_TOTAL,      /* the daemon is at limits.max_connections */
    IPLIMIT_PER_CLIENT, /* this client network is at limits.max_connections_per_ip */
};

/* The client network of addr (text as conn_peer() writes it) into out: an IPv4 address
 * as it is; an IPv4-mapped IPv6 address (::ffff:192.0.2.7) as its IPv4 address; any other
 * IPv6 address as its first ipv6_prefix bits (1..128), RFC 5952 text (lowercase, no
 * leading zeros, the longest run of two or more zero groups as "::") and "/PREFIX":
 * "2001:db8:1:2::/64". Text that is not an address is copied, cut to fit. */
void iplimit_client_key(const char *addr, unsigned ipv6_prefix, char out[IPLIMIT_CLIENT_MAX]);

/* Count one connection from client (a key from iplimit_client_key()). On IPLIMIT_OK the
 * caller must call iplimit_release() with the same key exactly once later; otherwise
 * nothing was counted. */
enum iplimit_rc iplimit_acquire(struct iplimit *l, const char *client);
void            iplimit_release(struct iplimit *l, const char *client);
size_t          iplimit_total(struct iplimit *l);
/* Connections counted for client now (tests, ctl). */
size_t          iplimit_count(struct iplimit *l, const char *client);
/* New caps (reload); connections already counted stay. */
void            iplimit_set_limits(struct iplimit *l, size_t max_total, size_t max_per_client);

#endif
