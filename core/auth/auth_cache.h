/* core/auth/auth_cache.h: passwords verified a moment ago, remembered for auth_cache_ttl
 * seconds in the zone auth_cache (zone.h) so that a client opening a connection per message
 * pays the deliberately slow hash once, not every time. Only successes are kept (a wrong
 * password always costs a full check), and never the password: an entry's key is an
 * HMAC-SHA256, under a random key that lives only in this process's memory, of the
 * backend, the identity and the password: its length is fixed, whatever the client
 * sends. The key also names the generation, so a reload (a changed users file, a removed
 * user) empties the cache at once. */
#ifndef SLUICE_AUTH_CACHE_H
#define SLUICE_AUTH_CACHE_H

#include <stdbool.h>
#include <stddef.h>

struct zone;

#define AUTH_CACHE_KEY_MAX 96 /* "authcache:" + generation + ':' + 64 hex digits + NUL */

/* The dictionary key for (backend, identity, password) in generation gen. 0, or -1 if
 * no random key could be had (then nothing is cached). */
int auth_cache_key(unsigned gen, const char *backend, const char *identity,
                   const char *password, char out[AUTH_CACHE_KEY_MAX]);

/* Was key stored (and not expired) at now? */
bool auth_cache_hit(struct zone *z, const char *key, double now);

/* Remember key for ttl seconds (0: do nothing). */
void auth_cache_store(struct zone *z, const char *key, double ttl, double now);

#endif
