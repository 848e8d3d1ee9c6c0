/* core/auth/auth_flight.c: one computation for identical checks in progress; see
 * auth_flight.h. A table of AUTH_FLIGHT_BUCKETS chains keyed by a hash of the key: the
 * flights in progress are bounded by the offload pool's queue (max_auth_jobs) and by
 * the LDAP connections, so the chains stay short. */
#include "auth/auth_flight.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth_cache.h"

#define AUTH_FLIGHT_BUCKETS 64

struct auth_flight {
    struct auth_flights       *fs;          /* borrows: the table f is in */
    struct auth_flight        *next;        /* its bucket's chain */
    struct auth_flight_waiter *head, *tail; /* borrow: waiters, in the order they joined */
    size_t                     n_waiters;
    auth_flight_cancel_fn     *cancel; /* NULL until set */
    void                      *cancel_arg;
    char                       key[AUTH_CACHE_KEY_MAX];
};

struct auth_flights {
    struct auth_flight *buckets[AUTH_FLIGHT_BUCKETS]; /* owns every flight */
};

struct auth_flights *
auth_flights_new(void)
{
    return calloc(1, sizeof(struct auth_flights));
}

/* FNV-1a: the keys end in an HMAC, uniform enough for a bucket. */
static struct auth_flight **
auth_flight_bucket(struct auth_flights *fs, const char *key)
{
    uint32_t h = 2166136261u;

    for (const unsigned char *p = (const unsigned char *)key; *p != '\0'; p++)
        h = (h ^ *p) * 16777619u;
    return &fs->buckets[h % AUTH_FLIGHT_BUCKETS];
}

static void
auth_flight_unlink(struct auth_flight *f)
{
    struct auth_flight **pp = auth_flight_bucket(f->fs, f->key);

    while (*pp != f) /* bounded by the chain; f is in it */
        pp = &(*pp)->next;
    *pp = f->next;
    f->next = NULL;
}

void
auth_flights_free(struct auth_flights *fs)
{
    if (fs == NULL)
        return;
    for (size_t i = 0; i < AUTH_FLIGHT_BUCKETS; i++) {
        while (fs->buckets[i] != NULL) { /* each pass frees one */
            struct auth_flight *f = fs->buckets[i];

            assert(f->n_waiters == 0);
            fs->buckets[i] = f->next;
            if (f->cancel != NULL)
                f->cancel(f->cancel_arg);
            free(f);
        }
    }
    free(fs);
}

struct auth_flight *
auth_flight_find(struct auth_flights *fs, const char *key)
{
    struct auth_flight *f = *auth_flight_bucket(fs, key);

    while (f != NULL && strcmp(f->key, key) != 0)
        f = f->next;
    return f;
}

struct auth_flight *
auth_flight_new(struct auth_flights *fs, const char *key)
{
    struct auth_flight **bucket = auth_flight_bucket(fs, key);
    struct auth_flight  *f;
    size_t               len = strlen(key);

    assert(auth_flight_find(fs, key) == NULL);
    if (len >= sizeof(f->key) || (f = calloc(1, sizeof(*f))) == NULL)
        return NULL;
    memcpy(f->key, key, len + 1);
    f->fs = fs;
    f->next = *bucket;
    *bucket = f;
    return f;
}

void
auth_flight_set_cancel(struct auth_flight *f, auth_flight_cancel_fn *cancel, void *arg)
{
    f->cancel = cancel;
    f->cancel_arg = arg;
}

void
auth_flight_join(struct auth_flight *f, struct auth_flight_waiter *w)
{
    assert(w->flight == NULL && w->done != NULL);
    w->flight = f;
    w->next = NULL;
    if (f->tail != NULL)
        f->tail->next = w;
    else
        f->head = w;
    f->tail = w;
    f->n_waiters++;
}

void
auth_flight_leave(struct auth_flight_waiter *w)
{
    struct auth_flight         *f = w->flight;
    struct auth_flight_waiter **pp, *prev = NULL;

    if (f == NULL)
        return;
    for (pp = &f->head; *pp != w; pp = &(*pp)->next) /* bounded by the list; w is in it */
        prev = *pp;
    *pp = w->next;
    if (f->tail == w)
        f->tail = prev;
    w->flight = NULL;
    w->next = NULL;
    if (--f->n_waiters > 0)
        return;
    auth_flight_unlink(f);
    if (f->cancel != NULL)
        f->cancel(f->cancel_arg);
    free(f);
}

size_t
auth_flight_finish(struct auth_flight *f, int rc, const char *reason)
{
    struct auth_flight_waiter *w = f->head;
    size_t                     n = f->n_waiters;

    /* Out of the table before anyone resumes: a hook resumed here may check the same
     * credentials again, and must start a flight of its own. */
    auth_flight_unlink(f);
    free(f);
    while (w != NULL) { /* n of them; each done may free its own w, never another */
        struct auth_flight_waiter *next = w->next;

        w->flight = NULL;
        w->next = NULL;
        w->done(w, rc, reason);
        w = next;
    }
    return n;
}

size_t
auth_flight_waiters(const struct auth_flight *f)
{
    return f->n_waiters;
}
