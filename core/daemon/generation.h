/* core/daemon/generation.h: one generation of what a reload replaces as a whole: the
 * configuration, the user files and the certificates (docs/policies.md "Reload").
 * A generation is immutable and reference-counted: the daemon holds the current one,
 * every worker generation (worker_gen.h) holds the one it was made from, and a password
 * check in the thread pool holds one while it runs, so nothing it borrows is freed
 * under it. References are atomic: any thread may take or drop one. */
#ifndef SLUICE_GENERATION_H
#define SLUICE_GENERATION_H

#include <stddef.h>

#include "daemon/daemon_setup.h"

struct generation {
    _Atomic unsigned    refs;
    unsigned            id;     /* 1 at start, +1 per successful reload */
    double              loaded; /* wall clock, seconds since the epoch */
    struct daemon_parts parts;  /* owns: cfg, authdb, tls */
};

/* Load path into a new generation with one reference, or NULL and "file:line: reason"
 * in err (the same text `sluice check` prints for the same files). */
struct generation *generation_load(const char *path, unsigned id, char *err, size_t errlen);
/* The same from a configuration loaded already (taken, even on failure). */
struct generation *generation_new(struct config *cfg, unsigned id, char *err, size_t errlen);

struct generation *generation_ref(struct generation *g);
/* Drop a reference; the last one frees the generation. NULL is fine. */
void generation_unref(struct generation *g);

/* "" when the running daemon can take next by a reload, else what needs a restart
 * ("listeners changed: ..."): the sockets, the threads and the process's user are made
 * once at start. */
const char *generation_restart_needed(const struct config *running, const struct config *next);

#endif
