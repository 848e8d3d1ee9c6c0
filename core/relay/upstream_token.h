/* core/relay/upstream_token.h: one worker's OAuth2 bearer tokens for XOAUTH2 logins to
 * upstreams (Microsoft 365, Gmail): the grant at the token endpoint and the cache.
 *
 * One cache per upstream pool (per worker and configuration generation: no locks, and a
 * reload starts afresh with the new secrets). Entries are keyed by the identity the token
 * stands for: the oauth2 table's token_url, client_id, secret, refresh token and scope.
 * The AUTH user is not part of it: one token serves every mailbox the grant covers.
 *
 * Lifetime: a token is fetched when a message needs one and none is cached; from 80 % of
 * its expires_in, the next message that asks starts a refresh in the background and goes
 * on with the old token until it is about to expire. A worker with no mail fetches
 * nothing. A failed fetch backs off (1 s, doubling to 60 s): meanwhile a message that
 * needs a token fails at once (451 4.7.0 from relay_job.c), so a broken endpoint is not
 * hammered by every message. After an upstream refuses a token, upstream_tokens_drop()
 * forgets it, so the next message fetches a new one.
 *
 * Secrets and tokens are never logged. Log lines: upstream.token (a token was fetched:
 * token_url, client_id, expires_in, ms), upstream.token_fail (why not: HTTP status, the
 * endpoint's error code, the back-off). */
#ifndef SLUICE_UPSTREAM_TOKEN_H
#define SLUICE_UPSTREAM_TOKEN_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

struct offload;
struct offload_return;
struct upstream_tokens;
struct upstream_token_entry;

/* A wait for a token, embedded in its holder (a relay job). done() runs from the loop,
 * never from inside upstream_tokens_wait(); ok: upstream_tokens_get() has a token now;
 * else error says why (a static or entry-owned string, valid during the call). */
struct upstream_token_wait {
    void (*done)(struct upstream_token_wait *w, bool ok, const char *error);
    struct upstream_token_entry *entry;      /* borrows; NULL when not waiting */
    struct upstream_token_wait  *prev, *next; /* entry's waiters */
};

/* An empty cache for loop. NULL when out of memory. */
struct upstream_tokens *upstream_tokens_new(struct ev_loop *loop);

/* Cancel every fetch in flight and free. Waiters still queued are dropped without a call
 * (their holders are gone by then: the pool aborts its leases first). NULL ok. */
void upstream_tokens_free(struct upstream_tokens *t);

/* Where the token endpoint's host name is resolved (http_client.h); without, only
 * numeric hosts. Both borrowed; they outlive t. */
void upstream_tokens_set_offload(struct upstream_tokens *t, struct offload *offload,
                                 struct offload_return *ret);

/* The token for o's identity (borrowed; valid until the next call into t or a return
 * to the loop), or NULL when none is usable now. Past 80 % of its lifetime this starts
 * a refresh in the background. sid is for log lines. */
const char *upstream_tokens_get(struct upstream_tokens *t, const struct config_upstream_oauth2 *o,
                                uint64_t sid);

/* Wait until o's identity has a token (fetching one unless a fetch is in flight), or
 * it cannot have one: w->done() follows from the loop. -1 only when out of memory. */
int upstream_tokens_wait(struct upstream_tokens *t, const struct config_upstream_oauth2 *o,
                         struct upstream_token_wait *w, uint64_t sid);

/* Stop waiting: done() will not be called. A wait that is not queued is left alone. */
void upstream_tokens_cancel(struct upstream_token_wait *w);

/* An upstream refused token: if it is still o's cached one, forget it (wiped), so the
 * next upstream_tokens_get() returns NULL and the next wait fetches. Connections that
 * refused an older token do not throw away a newer one. */
void upstream_tokens_drop(struct upstream_tokens *t, const struct config_upstream_oauth2 *o,
                          const char *token);

/* Token requests made so far (sent to the endpoint), for tests and `sluice ctl`. */
unsigned long long upstream_tokens_fetches(const struct upstream_tokens *t);

/* o and p name the same identity: one token serves both. */
bool upstream_tokens_same_identity(const struct config_upstream_oauth2 *o,
                                   const struct config_upstream_oauth2 *p);

/* The request body of o's grant (RFC 6749 4.4.2 client credentials, 6 refresh token),
 * form-encoded, into out (cap octets, NUL-terminated). Its length, or 0 when it does not
 * fit. The caller wipes out: it may hold the refresh token. */
size_t upstream_tokens_body(const struct config_upstream_oauth2 *o, char *out, size_t cap);

#endif
