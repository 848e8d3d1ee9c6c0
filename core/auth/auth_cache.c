/* core/auth/auth_cache.c: remembered password checks; see auth_cache.h. */
#include "auth/auth_cache.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/zone.h"

static unsigned char  auth_cache_secret[32];
static int            auth_cache_ready = -1; /* 1 ready, 0 no randomness */
static pthread_once_t auth_cache_once = PTHREAD_ONCE_INIT;

static void
auth_cache_init(void)
{
    auth_cache_ready = RAND_bytes(auth_cache_secret, sizeof(auth_cache_secret)) == 1;
}

int
auth_cache_key(unsigned gen, const char *backend, const char *identity, const char *password,
               char out[AUTH_CACHE_KEY_MAX])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int  maclen = 0;
    size_t        bl = strlen(backend) + 1, il = strlen(identity) + 1, pl = strlen(password);
    unsigned char *msg;
    int           n;

    pthread_once(&auth_cache_once, auth_cache_init);
    if (auth_cache_ready != 1 || (msg = malloc(bl + il + pl + 1)) == NULL)
        return -1;
    /* NUL-separated: ("a", "b:c") and ("a:b", "c") must not collide */
    memcpy(msg, backend, bl);
    memcpy(msg + bl, identity, il);
    memcpy(msg + bl + il, password, pl);
    if (HMAC(EVP_sha256(), auth_cache_secret, sizeof(auth_cache_secret), msg, bl + il + pl,
             mac, &maclen) == NULL)
        maclen = 0;
    explicit_bzero(msg, bl + il + pl);
    free(msg);
    if (maclen != 32)
        return -1;
    n = snprintf(out, AUTH_CACHE_KEY_MAX, "authcache:%u:", gen);
    for (unsigned i = 0; i < maclen; i++)
        n += snprintf(out + n, AUTH_CACHE_KEY_MAX - (size_t)n, "%02x", mac[i]);
    return 0;
}

bool
auth_cache_hit(struct zone *z, const char *key, double now)
{
    struct shdict_value v = { 0 };

    return z != NULL && zone_get(z, key, strlen(key), &v, now) == SHDICT_OK;
}

void
auth_cache_store(struct zone *z, const char *key, double ttl, double now)
{
    struct shdict_value v = { .type = SHDICT_NUMBER, .num = 1 };

    if (z != NULL && ttl > 0)
        zone_set(z, key, strlen(key), &v, ttl, now);
}
