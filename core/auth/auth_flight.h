/* core/auth/auth_flight.h: identical password checks in progress share one computation
 * (single flight). Two checks are identical when auth_cache_key() gives them the same key:
 * the same generation, backend, identity and password. The first check of a key starts
 * the computation (a hash on the offload pool, an LDAP bind) in a new flight; every
 * identical check that comes while it runs joins the flight and gets its result, instead
 * of computing its own. So when a remembered success expires and a user's clients all
 * miss at once, the hash runs once, not once per client (docs/authentication.md).
 *
 * What the computation is stays the caller's (policy/lapi_wait.c, lapi_ldap.c): it calls
 * auth_flight_finish() with the result, which every waiter gets, and gives the flight a
 * cancel that stops it. A waiter leaves on its own (its session went, its hook ran out of
 * budget) without disturbing the others; when the last one has left, the computation is
 * cancelled (no hash computed for nobody) and the flight is gone, so that the next
 * identical check starts afresh.
 *
 * One table per Lua state: per worker and generation. Loop thread only, no locks. */
#ifndef SLUICE_AUTH_FLIGHT_H
#define SLUICE_AUTH_FLIGHT_H

#include <stddef.h>

struct auth_flights;
struct auth_flight;
struct auth_flight_waiter;

/* The flight w waited on finished with rc (the backend's own code) and reason (static,
 * or valid only during the call). w has left the flight already; it may be freed. */
typedef void auth_flight_done_fn(struct auth_flight_waiter *w, int rc, const char *reason);

/* Stop the computation: it must never call auth_flight_finish() on the flight, which is
 * freed after this returns. */
typedef void auth_flight_cancel_fn(void *arg);

/* Embedded in what waits (the waiting call's state); the caller owns it. */
struct auth_flight_waiter {
    struct auth_flight        *flight; /* borrows; NULL when not waiting */
    auth_flight_done_fn       *done;
    struct auth_flight_waiter *next; /* private: the flight's list */
};

/* An empty table; NULL when out of memory. */
struct auth_flights *auth_flights_new(void);
/* Nobody may be waiting any more (the Lua state closes after its last session); a flight
 * left over is cancelled. NULL ok. */
void auth_flights_free(struct auth_flights *fs);

/* The flight of key in progress, or NULL. */
struct auth_flight *auth_flight_find(struct auth_flights *fs, const char *key);

/* A new flight for key (no flight of key may be in progress) with nobody waiting yet:
 * join it, start the computation, then give it its cancel. NULL when out of memory. */
struct auth_flight *auth_flight_new(struct auth_flights *fs, const char *key);
void auth_flight_set_cancel(struct auth_flight *f, auth_flight_cancel_fn *cancel, void *arg);

/* w (not waiting on any flight, w->done set) waits for f's result. */
void auth_flight_join(struct auth_flight *f, struct auth_flight_waiter *w);

/* w no longer wants the result. If it was the last waiter, the computation is cancelled
 * and the flight freed. Never calls a done. */
void auth_flight_leave(struct auth_flight_waiter *w);

/* The computation ended: f leaves the table, then every waiter (in the order they
 * joined) gets done(w, rc, reason), and f is freed. Returns how many waited. */
size_t auth_flight_finish(struct auth_flight *f, int rc, const char *reason);

/* Waiters on f now. */
size_t auth_flight_waiters(const struct auth_flight *f);

#endif
