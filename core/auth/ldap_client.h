/* core/auth/ldap_client.h: password checks against a domain's directory, for one worker's
 * loop, never blocking it (docs/authentication.md "LDAP").
 *
 * Per worker and per domain there is a small pool of connections (up to
 * ldap.max_connections). Opening one (TCP, TLS, StartTLS) blocks, so it runs on the
 * offload pool (ldap_dial.c); everything else is asynchronous libldap on the loop: the
 * connection's socket is non-blocking, an ev_io watcher wakes us when it is readable and
 * ldap_result() with a zero timeout reads what has arrived. A check is one simple bind
 * as the user's DN (bind mode), or a bind as the service account, a search for the user
 * and the user's bind (search mode); binds are serial on a connection (RFC 4511 4.2.1),
 * so a connection serves one check at a time and other checks queue for the next free
 * one. The whole check has ldap.timeout: past it the connection is dropped (a slow
 * server's late answer must not be read as the next check's) and the check is
 * UNAVAILABLE. A connection that breaks fails over to the next URI for new connections;
 * a check that breaks on a connection it did not open itself is retried once on another.
 * The pool lives as long as the worker generation's Lua state (lapi_ldap.c). */
#ifndef SLUICE_LDAP_CLIENT_H
#define SLUICE_LDAP_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "util/pin.h"

struct config_domain;
struct ev_loop;
struct offload;
struct offload_return;
struct ldap_client;
struct ldap_request;

enum ldap_client_rc {
    LDAP_CLIENT_OK,          /* the password is the user's */
    LDAP_CLIENT_INVALID,     /* wrong password, no such user, a user outside this domain's
                              * DN or base, more than one match */
    LDAP_CLIENT_UNAVAILABLE, /* the directory could not say: unreachable, slow, TLS
                              * failure, the service account refused, a server error */
};

/* rc and, for UNAVAILABLE, a reason for the logs and the policy (no secrets); the
 * reason is only valid during the call. */
typedef void ldap_client_done_fn(void *arg, enum ldap_client_rc rc, const char *reason);

/* A pool for one worker: loop, offload and ret borrowed (they outlive it). *pin is
 * copied: what keeps the configuration the checks borrow (the domains' ldap tables and
 * their TLS contexts) alive, the daemon's generation. The pool borrows pin->owner (its
 * caller holds it for the pool's lifetime); each connect in flight pins it until it
 * returns, as it may outlive the pool. NULL when out of memory. */
struct ldap_client *ldap_client_new(struct ev_loop *loop, struct offload *offload,
                                    struct offload_return *ret, const struct pin *pin);

/* Close every connection; checks still running (only cancelled ones can be) are
 * dropped; a connect in flight is orphaned and closes its connection when it returns.
 * Loop thread only. NULL is fine. */
void ldap_client_free(struct ldap_client *c);

/* Start checking local@domain's password against d's directory (d->ldap set, from the
 * generation c was made for; local and password non-empty). Copies what it needs.
 * done(arg, ...) is called exactly once, from the loop, never before this returns,
 * unless the check is cancelled first. sid is for the log lines. Returns the check (for
 * ldap_client_cancel) or NULL when out of memory (done is then never called). */
struct ldap_request *ldap_client_verify(struct ldap_client *c, const struct config_domain *d,
                                        uint64_t sid, const char *local, size_t local_len,
                                        const char *domain, size_t domain_len,
                                        const char *password, size_t password_len,
                                        ldap_client_done_fn *done, void *arg);

/* The asker is gone: done is never called. The operation on the wire finishes (or times
 * out) first, so its connection stays usable. */
void ldap_client_cancel(struct ldap_request *r);

#endif
