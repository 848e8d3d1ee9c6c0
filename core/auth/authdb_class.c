/* core/auth/authdb_class.c: the cost classes of a users file (authdb.h): which part of a hash
 * sets its cost, each domain's classes and their stand-ins, the typical domain an unknown
 * one costs like, and the report of mixed domains for `sluice check`. Loading the files
 * and verifying are authdb.c's. */
#include <assert.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/authdb_internal.h"

/* The part of a hash that sets its cost: "$y$j9T$", "$2b$12$", "$6$",
 * "$6$rounds=N$", "$7$" and its 11 characters of N, r and p, argon2's "$v=19$m=,t=,p=$"
 * (the salt and the digest follow). */
size_t
authdb_scheme_len(const char *hash)
{
    const char *p = strchr(hash + 1, '$');

    if (p == NULL)
        return strlen(hash);
    if (strncmp(hash, "$7$", 3) == 0) /* scrypt: N (1), r (5), p (5), then the salt */
        return strnlen(hash, 14);
    if (authdb_is_argon2(hash)) { /* "$argon2id$v=19$m=19456,t=2,p=1$" */
        const char *q = strchr(p + 1, '$');

        q = q != NULL ? strchr(q + 1, '$') : NULL;
        return q ? (size_t)(q - hash) + 1 : strlen(hash);
    }
    if (strncmp(hash, "$y$", 3) == 0 || strncmp(hash, "$gy$", 4) == 0 ||
        strncmp(hash, "$2", 2) == 0 || strncmp(p + 1, "rounds=", 7) == 0) {
        const char *q = strchr(p + 1, '$');

        return q ? (size_t)(q - hash) + 1 : strlen(hash);
    }
    return (size_t)(p - hash) + 1;
}

static int
authdb_class_cmp(const void *a, const void *b)
{
    const struct authdb_class *x = a, *y = b;
    int r = strncmp(x->rep, y->rep, x->len < y->len ? x->len : y->len);

    return r != 0 ? r : (x->len > y->len) - (x->len < y->len);
}

/* The index of the class of hash among d's, or d->n_classes when it has none. */
static size_t
authdb_find_class(const struct authdb_domain *d, const char *hash)
{
    size_t len = authdb_scheme_len(hash), k;

    for (k = 0; k < d->n_classes; k++)
        if (d->classes[k].len == len && strncmp(d->classes[k].rep, hash, len) == 0)
            break;
    return k;
}

/* Group d's hashes by the setting that fixes their cost, the first user of each class
 * (in name order) its stand-in, and the classes in the order of their settings (so that
 * two domains with the same settings have equal class lists). More than
 * AUTHDB_CLASSES_MAX would make every check that many hashes: refused at the line of
 * the first user past it. */
int
authdb_classify(struct authdb_domain *d, char *err, size_t errlen)
{
    struct authdb_class *c;
    size_t               j, k;

    for (j = 0; j < d->n; j++) {
        if (authdb_find_class(d, d->users[j].hash) < d->n_classes)
            continue;
        if (d->n_classes == AUTHDB_CLASSES_MAX) {
            if (err != NULL && errlen > 0)
                snprintf(err, errlen, "%s:%u: more than %d hash schemes or costs in one "
                         "domain: rehash with 'sluice passwd'", d->path, d->users[j].line,
                         AUTHDB_CLASSES_MAX);
            return -1;
        }
        c = &d->classes[d->n_classes++];
        c->rep = d->users[j].hash;
        c->len = authdb_scheme_len(c->rep);
    }
    if (d->n_classes > 1)
        qsort(d->classes, d->n_classes, sizeof(*d->classes), authdb_class_cmp);
    for (j = 0; j < d->n; j++) {
        k = authdb_find_class(d, d->users[j].hash);
        assert(k < d->n_classes);
        d->users[j].cls = (unsigned)k;
    }
    return 0;
}

static bool
authdb_same_classes(const struct authdb_domain *a, const struct authdb_domain *b)
{
    size_t k;

    if (a->n_classes != b->n_classes)
        return false;
    for (k = 0; k < a->n_classes; k++)
        if (authdb_class_cmp(&a->classes[k], &b->classes[k]) != 0)
            return false;
    return true;
}

static int
authdb_domain_classes_cmp(const void *a, const void *b)
{
    const struct authdb_domain *x = *(const struct authdb_domain *const *)a;
    const struct authdb_domain *y = *(const struct authdb_domain *const *)b;
    size_t                      k;
    int                         r;

    if (x->n_classes != y->n_classes)
        return x->n_classes < y->n_classes ? -1 : 1;
    for (k = 0; k < x->n_classes; k++)
        if ((r = authdb_class_cmp(&x->classes[k], &y->classes[k])) != 0)
            return r;
    return strcmp(x->name, y->name);
}

/* The typical domain: of those with users, one whose class list most of them share
 * (ties: the list that sorts first), so that an unknown domain costs what a declared
 * one's unknown user does. Sorting makes equal lists neighbours: O(n log n) for many
 * domains. db->typical stays NULL when no domain has users; -1 when out of memory. */
int
authdb_pick_typical(struct authdb *db)
{
    const struct authdb_domain **v = NULL, *best = NULL;
    size_t                       n = 0, i, run = 0, best_run = 0;

    if (db->n > 0 && (v = calloc(db->n, sizeof(*v))) == NULL)
        return -1;
    for (i = 0; i < db->n; i++)
        if (db->domains[i].n_classes > 0)
            v[n++] = &db->domains[i];
    if (n > 1)
        qsort(v, n, sizeof(*v), authdb_domain_classes_cmp);
    for (i = 0; i < n; i++) {
        run = i > 0 && authdb_same_classes(v[i - 1], v[i]) ? run + 1 : 1;
        if (run > best_run) {
            best_run = run;
            best = v[i - run + 1];
        }
    }
    free(v);
    if (best != NULL) {
        db->typical = best->classes;
        db->n_typical = best->n_classes;
    }
    return 0;
}

void
authdb_each_mixed_domain(const struct authdb *db, authdb_mixed_fn *fn, void *arg)
{
    char   settings[AUTHDB_CLASSES_MAX * 64];
    size_t i, j, k, used, users;

    for (i = 0; db != NULL && i < db->n; i++) {
        const struct authdb_domain *d = &db->domains[i];

        if (d->n_classes < 2)
            continue;
        for (k = 0, used = 0; k < d->n_classes && used < sizeof(settings); k++) {
            for (j = 0, users = 0; j < d->n; j++)
                users += d->users[j].cls == k;
            used += (size_t)snprintf(settings + used, sizeof(settings) - used,
                                     "%s%.*s (%zu user%s)", k > 0 ? ", " : "",
                                     (int)(d->classes[k].len < 40 ? d->classes[k].len : 40),
                                     d->classes[k].rep, users, users == 1 ? "" : "s");
        }
        fn(arg, d->path, d->n_classes, settings);
    }
}
