/* core/auth/authdb_internal.h: what authdb.c and authdb_class.c share, and no one else: the
 * loaded database's layout, and the cost classes each domain's hashes fall into
 * (authdb.h says why). Everything else includes authdb.h. */
#ifndef SLUICE_AUTHDB_INTERNAL_H
#define SLUICE_AUTHDB_INTERNAL_H

#include <crypt.h>
#include <stdbool.h>
#include <stddef.h>

#include "auth/authdb.h"

struct authdb_user {
    char    *local; /* owns; also holds hash in the same block */
    char    *hash;  /* borrows from local's block */
    unsigned line;  /* for duplicate errors at load */
    unsigned cls;   /* its cost class: an index into the domain's classes */
};

/* The hashes of one scheme with one cost setting: checking any of them is the same work
 * (authdb.h). */
struct authdb_class {
    const char *rep; /* borrows a user's hash: the stand-in for this class */
    size_t      len; /* of the setting that fixes the cost, at the start of rep */
};

struct authdb_domain {
    char               *name;  /* owns, lowercase */
    char               *path;  /* owns: the file it came from, for load errors */
    struct authdb_user *users; /* owns, sorted by local part (strcasecmp) */
    size_t              n;
    size_t              cap;
    struct authdb_class classes[AUTHDB_CLASSES_MAX]; /* sorted by setting */
    size_t              n_classes;
};

/* Immutable once authdb_load returns; readers on any thread need no lock. */
struct authdb {
    struct authdb_domain *domains; /* owns, sorted by name */
    size_t                n;
    size_t                cap;
    size_t                users;   /* over all domains */
    /* What an unknown domain costs: the classes of the typical domain (the class set
     * most domains with users have), or the one dummy when no domain has users. */
    const struct authdb_class *typical; /* borrows: a domain's classes, or &dummy_class */
    size_t                     n_typical;
    struct authdb_class        dummy_class;
    char                       dummy[CRYPT_OUTPUT_SIZE]; /* yescrypt hash of nothing anyone
                                                          * knows */
};

/* True for "$argon2id$" and "$argon2i$" hashes (libargon2's, not libcrypt's). */
bool authdb_is_argon2(const char *hash);

/* The part of hash that sets its cost: "$y$j9T$", "$2b$12$", "$6$rounds=N$", argon2's
 * "$argon2id$v=19$m=,t=,p=$" (authdb_class.c). */
size_t authdb_scheme_len(const char *hash);

/* Group d's users (sorted, loaded) in cost classes, the first user of each its stand-in.
 * 0, or -1 and "file:line: reason" in err when there are more than AUTHDB_CLASSES_MAX. */
int authdb_classify(struct authdb_domain *d, char *err, size_t errlen);

/* Set db->typical to the class list most domains with users share; it stays NULL when no
 * domain has users. -1 when out of memory. */
int authdb_pick_typical(struct authdb *db);

#endif
