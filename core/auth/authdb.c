/* core/auth/authdb.c: per-domain user files and crypt(3) verification; see authdb.h.
 * Loads conf/users/DOMAIN.txt into per-domain arrays sorted for bsearch, refusing any
 * entry libcrypt or libargon2 could not verify (so a plaintext password never loads);
 * authdb_class.c groups each domain's hashes in cost classes. Verification is crypt_rn with a
 * per-call struct crypt_data and a constant-time compare, or argon2_verify for argon2
 * hashes, once per class of the domain, so that every check of a domain costs the same.
 * Reading the files is done once per (re)load; deciding who may send is for the
 * policies. */
#include "auth/authdb.h"

#include <argon2.h>
#include <crypt.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "auth/authdb_internal.h"
#include "util/privfile.h"

#define AUTHDB_DOMAIN_MAX 255 /* RFC 1035 section 2.3.4 */

/* One scheme's full hash length, past the last '$' (bcrypt has no '$' before its hash,
 * so its salt is counted in). crypt_checksalt() looks at the setting only: these
 * catch a setting without a hash, or a hash cut short, which would never verify. */
static const struct {
    const char *prefix;
    size_t      tail;
} authdb_schemes[] = {
    { "$y$", 43 },  { "$gy$", 43 }, { "$7$", 43 },  { "$6$", 86 },
    { "$5$", 43 },  { "$2b$", 53 }, { "$2a$", 53 }, { "$2y$", 53 },
};

#define AUTHDB_ARGON2_T 2
#define AUTHDB_ARGON2_M 19456 /* KiB */
#define AUTHDB_ARGON2_P 1

static int
authdb_err(char *err, size_t errlen, const char *path, unsigned line, const char *reason)
{
    if (err != NULL && errlen > 0) {
        if (line > 0)
            snprintf(err, errlen, "%s:%u: %s", path, line, reason);
        else
            snprintf(err, errlen, "%s: %s", path, reason);
    }
    return -1;
}

/* crypt(3)'s own alphabet for salts and hashes ("./0-9A-Za-z") */
static bool
authdb_is_crypt64(const char *p)
{
    for (; *p != '\0'; p++) {
        if (!(*p >= 'a' && *p <= 'z') && !(*p >= 'A' && *p <= 'Z') &&
            !(*p >= '0' && *p <= '9') && *p != '.' && *p != '/')
            return false;
    }
    return true;
}

/* Argon2 in the PHC string format libargon2 writes and reads:
 * $argon2id$v=19$m=19456,t=2,p=1$SALT$HASH (SALT and HASH base64 without padding). */
bool
authdb_is_argon2(const char *hash)
{
    return strncmp(hash, "$argon2id$", 10) == 0 || strncmp(hash, "$argon2i$", 9) == 0;
}

static bool
authdb_is_b64(const char *p, const char *end)
{
    if (end - p < 11) /* 8 octets at least */
        return false;
    for (; p < end; p++)
        if (!isalnum((unsigned char)*p) && *p != '+' && *p != '/')
            return false;
    return true;
}

static const char *
authdb_argon2_problem(const char *hash)
{
    const char *params = strchr(hash + 1, '$') + 1, *salt, *digest;
    unsigned    v, m, t, p;
    int         n = 0;

    if (sscanf(params, "v=%u$m=%u,t=%u,p=%u$%n", &v, &m, &t, &p, &n) != 4 || n == 0 ||
        v != ARGON2_VERSION_13 || m < 8 * p || t < 1 || p < 1)
        return "malformed argon2 hash: expected $argon2id$v=19$m=M,t=T,p=P$SALT$HASH";
    salt = params + n;
    digest = strchr(salt, '$');
    if (digest == NULL || !authdb_is_b64(salt, digest) ||
        !authdb_is_b64(digest + 1, digest + strlen(digest)))
        return "malformed argon2 hash: salt or hash is not base64";
    return NULL;
}

/* NULL if libcrypt (or libargon2) can verify hash, else why not. CRYPT_SALT_OK only:
 * "legacy" covers DES, whose 13-character hashes a plaintext password can look like. */
static const char *
authdb_hash_problem(const char *hash)
{
    static const char incomplete[] = "incomplete or malformed crypt(3) hash";
    const char       *tail = strrchr(hash, '$');
    size_t            i;

    if (strlen(hash) >= CRYPT_OUTPUT_SIZE)
        return "hash too long";
    if (authdb_is_argon2(hash))
        return authdb_argon2_problem(hash);
    if (hash[0] != '$') /* DES crypt has no prefix, but 13 plaintext characters pass for it */
        return "not a crypt(3) hash (a plaintext password?): use 'sluice passwd'";
    switch (crypt_checksalt(hash)) {
    case CRYPT_SALT_OK:
        break;
    case CRYPT_SALT_METHOD_LEGACY:
        return "weak legacy hash: rehash it with 'sluice passwd'";
    default:
        return "not a crypt(3) hash (a plaintext password?): use 'sluice passwd'";
    }
    if (tail == NULL || !authdb_is_crypt64(tail + 1))
        return incomplete;
    for (i = 0; i < sizeof(authdb_schemes) / sizeof(authdb_schemes[0]); i++) {
        if (strncmp(hash, authdb_schemes[i].prefix, strlen(authdb_schemes[i].prefix)) == 0)
            return strlen(tail + 1) == authdb_schemes[i].tail ? NULL : incomplete;
    }
    return tail[1] == '\0' ? incomplete : NULL;
}

/* Local parts as RFC 5321 spells them unquoted or quoted, minus spaces and controls, which
 * no SASL client sends and which are more likely an editing mistake in the file. */
static const char *
authdb_local_problem(const char *local, size_t len)
{
    size_t i;

    if (len == 0)
        return "empty user";
    for (i = 0; i < len; i++) {
        if ((unsigned char)local[i] <= 0x20 || local[i] == 0x7f)
            return "space or control character in user";
    }
    return NULL;
}

static int
authdb_add_user(struct authdb_domain *d, const char *local, size_t llen, const char *hash,
                unsigned line)
{
    struct authdb_user *u;
    size_t              hlen = strlen(hash);

    if (d->n == d->cap) {
        size_t ncap = d->cap ? d->cap * 2 : 16;

        u = realloc(d->users, ncap * sizeof(*u));
        if (u == NULL)
            return -1;
        d->users = u;
        d->cap = ncap;
    }
    u = &d->users[d->n];
    u->local = malloc(llen + 1 + hlen + 1);
    if (u->local == NULL)
        return -1;
    memcpy(u->local, local, llen);
    u->local[llen] = '\0';
    u->hash = u->local + llen + 1;
    memcpy(u->hash, hash, hlen + 1);
    u->line = line;
    d->n++;
    return 0;
}

/* One "localpart:hash" line, CR/LF and trailing blanks already cut. */
static int
authdb_parse_line(struct authdb_domain *d, char *s, unsigned line, char *err, size_t errlen)
{
    char       *colon = strchr(s, ':');
    const char *why;

    if (colon == NULL)
        return authdb_err(err, errlen, d->path, line, "expected 'user:hash'");
    *colon = '\0';
    why = authdb_local_problem(s, (size_t)(colon - s));
    if (why == NULL)
        why = authdb_hash_problem(colon + 1);
    if (why != NULL)
        return authdb_err(err, errlen, d->path, line, why);
    if (authdb_add_user(d, s, (size_t)(colon - s), colon + 1, line) != 0)
        return authdb_err(err, errlen, d->path, line, "out of memory");
    return 0;
}

static int
authdb_read_file(struct authdb_domain *d, FILE *f, char *err, size_t errlen)
{
    char    *s = NULL, *p;
    size_t   cap = 0;
    ssize_t  n;
    unsigned line = 0;
    int      rc = 0;

    while (rc == 0 && (n = getline(&s, &cap, f)) >= 0) {
        line++;
        if (memchr(s, '\0', (size_t)n) != NULL) {
            rc = authdb_err(err, errlen, d->path, line, "NUL byte in line");
            break;
        }
        while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' ||
                         s[n - 1] == '\t'))
            s[--n] = '\0'; /* LF or CRLF, and blanks an editor left */
        for (p = s; *p == ' ' || *p == '\t'; p++)
            ;
        if (*p != '\0' && *p != '#')
            rc = authdb_parse_line(d, p, line, err, errlen);
    }
    if (rc == 0 && ferror(f))
        rc = authdb_err(err, errlen, d->path, 0, strerror(errno));
    if (s != NULL)
        OPENSSL_cleanse(s, cap);
    free(s);
    return rc;
}

/* DOMAIN.txt, not hidden (editors' .swp and .#lock files stay out) */
static int
authdb_user_file_filter(const struct dirent *de)
{
    size_t len = strlen(de->d_name);

    return de->d_name[0] != '.' && len > 4 && strcmp(de->d_name + len - 4, ".txt") == 0;
}

static bool
authdb_is_domain(const char *name)
{
    size_t i, len = strlen(name);

    if (len == 0 || len > AUTHDB_DOMAIN_MAX)
        return false;
    for (i = 0; i < len; i++) {
        if ((unsigned char)name[i] <= 0x20 || name[i] == 0x7f || name[i] == '@')
            return false;
    }
    return true;
}

static struct authdb_domain *
authdb_new_domain(struct authdb *db, const char *dir, const char *file)
{
    struct authdb_domain *d;
    size_t                i, len = strlen(file) - 4;

    if (db->n == db->cap) {
        size_t ncap = db->cap ? db->cap * 2 : 8;

        d = realloc(db->domains, ncap * sizeof(*d));
        if (d == NULL)
            return NULL;
        db->domains = d;
        db->cap = ncap;
    }
    d = &db->domains[db->n];
    memset(d, 0, sizeof(*d));
    d->name = strndup(file, len);
    if (asprintf(&d->path, "%s/%s", dir, file) < 0)
        d->path = NULL;
    if (d->name == NULL || d->path == NULL) {
        free(d->name);
        free(d->path);
        return NULL;
    }
    for (i = 0; i < len; i++)
        d->name[i] = (char)tolower((unsigned char)d->name[i]);
    db->n++;
    return d;
}

static int
authdb_load_file(struct authdb *db, const char *dir, const char *file, char *err,
                 size_t errlen)
{
    struct authdb_domain *d = authdb_new_domain(db, dir, file);
    FILE                 *f;
    int                   fd, rc;

    if (d == NULL)
        return authdb_err(err, errlen, file, 0, "out of memory");
    if (!authdb_is_domain(d->name))
        return authdb_err(err, errlen, d->path, 0, "file name is not a domain name");
    fd = privfile_open(d->path, PRIVFILE_READ);
    f = fd >= 0 ? fdopen(fd, "r") : NULL;
    if (f == NULL) {
        rc = errno;
        if (fd >= 0)
            close(fd);
        return authdb_err(err, errlen, d->path, 0, strerror(rc));
    }
    rc = authdb_read_file(d, f, err, errlen);
    fclose(f);
    return rc;
}

static int
authdb_user_cmp(const void *a, const void *b)
{
    return strcasecmp(((const struct authdb_user *)a)->local,
                      ((const struct authdb_user *)b)->local);
}

static int
authdb_domain_cmp(const void *a, const void *b)
{
    return strcmp(((const struct authdb_domain *)a)->name,
                  ((const struct authdb_domain *)b)->name);
}

/* Sorts one domain's users for bsearch; equal neighbours are duplicates, reported at
 * the later of their two lines. */
static int
authdb_sort_users(struct authdb_domain *d, char *err, size_t errlen)
{
    const struct authdb_user *a, *b;
    size_t                    j;
    char                      why[64];

    if (d->n > 0) /* qsort and bsearch want a non-NULL base even for no elements */
        qsort(d->users, d->n, sizeof(*d->users), authdb_user_cmp);
    for (j = 1; j < d->n; j++) {
        a = &d->users[j - 1];
        b = &d->users[j];
        if (strcasecmp(a->local, b->local) != 0)
            continue;
        if (a->line > b->line) {
            const struct authdb_user *t = a;

            a = b;
            b = t;
        }
        snprintf(why, sizeof(why), "duplicate user (first on line %u)", a->line);
        return authdb_err(err, errlen, d->path, b->line, why);
    }
    return 0;
}

static int
authdb_sort(struct authdb *db, char *err, size_t errlen)
{
    size_t i;

    if (db->n > 0)
        qsort(db->domains, db->n, sizeof(*db->domains), authdb_domain_cmp);
    for (i = 0; i < db->n; i++) {
        if (i > 0 && strcmp(db->domains[i - 1].name, db->domains[i].name) == 0)
            return authdb_err(err, errlen, db->domains[i].path, 0,
                              "same domain as another file");
        if (authdb_sort_users(&db->domains[i], err, errlen) != 0 ||
            authdb_classify(&db->domains[i], err, errlen) != 0)
            return -1;
        db->users += db->domains[i].n;
    }
    return 0;
}

static int
authdb_name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The user files' names in dir, sorted (errors come in a stable order), through
 * privfile.h: a reload may list a directory only root could. Caller frees each and the
 * array; -1 with errno set on failure. */
static int
authdb_list(const char *dir, char ***out, size_t *n)
{
    DIR           *d = privfile_opendir(dir);
    struct dirent *de;
    char         **names = NULL, **grown;
    size_t         cap = 0;
    int            saved = 0;

    *n = 0;
    if (d == NULL)
        return -1;
    while (saved == 0 && (errno = 0, de = readdir(d)) != NULL) {
        if (!authdb_user_file_filter(de))
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            grown = realloc(names, cap * sizeof(*names));
            if (grown == NULL) {
                saved = ENOMEM;
                break;
            }
            names = grown;
        }
        if ((names[*n] = strdup(de->d_name)) == NULL)
            saved = ENOMEM;
        else
            (*n)++;
    }
    saved = saved != 0 ? saved : errno;
    closedir(d);
    if (*n > 0)
        qsort(names, *n, sizeof(*names), authdb_name_cmp);
    *out = names;
    errno = saved;
    return saved != 0 ? -1 : 0;
}

struct authdb *
authdb_load(const char *dir, char *err, size_t errlen)
{
    struct authdb *db = calloc(1, sizeof(*db));
    char         **names = NULL;
    size_t         n = 0, i;
    int            rc = 0;

    if (db == NULL) {
        authdb_err(err, errlen, dir, 0, "out of memory");
        return NULL;
    }
    if (authdb_list(dir, &names, &n) != 0) {
        authdb_err(err, errlen, dir, 0, strerror(errno));
        rc = -1;
    }
    for (i = 0; i < n; i++) {
        if (rc == 0)
            rc = authdb_load_file(db, dir, names[i], err, errlen);
        free(names[i]);
    }
    free(names);
    if (rc != 0 || authdb_sort(db, err, errlen) != 0)
        goto fail;
    if (authdb_pick_typical(db) != 0) {
        authdb_err(err, errlen, dir, 0, "out of memory");
        goto fail;
    }
    if (db->typical == NULL) { /* no users at all: a check still costs a default hash */
        if (authdb_hash("sluice: no such user", "$y$", db->dummy, sizeof(db->dummy)) != 0) {
            authdb_err(err, errlen, dir, 0, "cannot make a yescrypt hash (libcrypt)");
            goto fail;
        }
        db->dummy_class.rep = db->dummy;
        db->dummy_class.len = authdb_scheme_len(db->dummy);
        db->typical = &db->dummy_class;
        db->n_typical = 1;
    }
    return db;
fail:
    authdb_free(db);
    return NULL;
}

void
authdb_free(struct authdb *db)
{
    struct authdb_domain *d;
    size_t                i, j;

    if (db == NULL)
        return;
    for (i = 0; i < db->n; i++) {
        d = &db->domains[i];
        for (j = 0; j < d->n; j++) {
            OPENSSL_cleanse(d->users[j].hash, strlen(d->users[j].hash));
            free(d->users[j].local);
        }
        free(d->users);
        free(d->name);
        free(d->path);
    }
    free(db->domains);
    free(db);
}

size_t
authdb_count(const struct authdb *db)
{
    return db != NULL ? db->users : 0;
}

/* ---- verification ---- */

static const struct authdb_domain *
authdb_find_domain(const struct authdb *db, const char *domain)
{
    char                 name[AUTHDB_DOMAIN_MAX + 1];
    struct authdb_domain key;
    size_t               i, len = strlen(domain);

    if (len > AUTHDB_DOMAIN_MAX || db->n == 0)
        return NULL;
    for (i = 0; i <= len; i++)
        name[i] = (char)tolower((unsigned char)domain[i]);
    key.name = name;
    return bsearch(&key, db->domains, db->n, sizeof(*db->domains), authdb_domain_cmp);
}

/* The local part borrows from the identity and is not NUL-terminated. */
struct authdb_key {
    const char *p;
    size_t      len;
};

static int
authdb_key_cmp(const void *k, const void *e)
{
    const struct authdb_key  *key = k;
    const char               *local = ((const struct authdb_user *)e)->local;
    int                       r = strncasecmp(key->p, local, key->len);

    if (r != 0)
        return r;
    return local[key->len] == '\0' ? 0 : -1; /* key is a prefix of local: it sorts first */
}

/* One crypt_rn and a constant-time compare. A crypt_data per call keeps this
 * thread-safe; it is 32 KiB, too much for some pool threads' stacks, so it is on the
 * heap, and it is wiped because it held the password. */
static bool
authdb_check(const char *password, const char *hash)
{
    struct crypt_data *cd = calloc(1, sizeof(*cd));
    const char        *out;
    size_t             hlen = strlen(hash);
    bool               ok;

    if (authdb_is_argon2(hash)) { /* libargon2 compares in constant time */
        free(cd);
        return argon2_verify(hash, password, strlen(password),
                             hash[7] == 'i' && hash[8] == 'd' ? Argon2_id : Argon2_i) ==
               ARGON2_OK;
    }
    if (cd == NULL)
        return false;
    out = crypt_rn(password, hash, cd, sizeof(*cd));
    ok = out != NULL && strlen(out) == hlen && CRYPTO_memcmp(out, hash, hlen) == 0;
    OPENSSL_cleanse(cd, sizeof(*cd));
    free(cd);
    return ok;
}

const char *
authdb_rc_name(enum authdb_rc rc)
{
    switch (rc) {
    case AUTHDB_OK:
        return "ok";
    case AUTHDB_WRONG_PASSWORD:
        return "wrong password";
    case AUTHDB_NO_USER:
        return "unknown user";
    case AUTHDB_NO_DOMAIN:
        return "unknown domain";
    default:
        return "malformed identity";
    }
}

/* What one verification hashes: the classes of the identity's domain (or the typical
 * ones), the user's own hash in its class. */
struct authdb_plan {
    const struct authdb_domain *d;       /* NULL: no such domain */
    const struct authdb_user   *u;       /* NULL: no such user */
    const struct authdb_class  *classes; /* borrows */
    size_t                      n;
    enum authdb_rc              miss;    /* the outcome when u is NULL */
};

static void
authdb_plan(const struct authdb *db, const char *identity, struct authdb_plan *p)
{
    const char       *at = strrchr(identity, '@');
    struct authdb_key key;

    memset(p, 0, sizeof(*p));
    p->classes = db->typical;
    p->n = db->n_typical;
    p->miss = AUTHDB_BAD_INPUT;
    if (at == NULL || at == identity || at[1] == '\0')
        return;
    p->miss = AUTHDB_NO_DOMAIN;
    p->d = authdb_find_domain(db, at + 1);
    if (p->d == NULL || p->d->n == 0)
        return;
    p->miss = AUTHDB_NO_USER;
    p->classes = p->d->classes;
    p->n = p->d->n_classes;
    key.p = identity;
    key.len = (size_t)(at - identity);
    p->u = bsearch(&key, p->d->users, p->d->n, sizeof(*p->d->users), authdb_key_cmp);
}

/* The hash checked in class k of plan p. */
static const char *
authdb_plan_hash(const struct authdb_plan *p, size_t k)
{
    return p->u != NULL && p->u->cls == k ? p->u->hash : p->classes[k].rep;
}

size_t
authdb_verify_hashes(const struct authdb *db, const char *identity, const char **hashes,
                     size_t max)
{
    struct authdb_plan p;
    size_t             k;

    authdb_plan(db, identity, &p);
    for (k = 0; k < p.n && k < max; k++)
        hashes[k] = authdb_plan_hash(&p, k);
    return p.n;
}

enum authdb_rc
authdb_verify(const struct authdb *db, const char *identity, const char *password,
              const char **domain_out)
{
    struct authdb_plan p;
    bool               ok = false, match;
    size_t             k;

    authdb_plan(db, identity, &p);
    /* every class, whatever the answer: the same work for every name (authdb.h) */
    for (k = 0; k < p.n; k++) {
        match = authdb_check(password, authdb_plan_hash(&p, k));
        if (p.u != NULL && p.u->cls == k)
            ok = match;
    }
    if (p.u == NULL)
        return p.miss; /* a stand-in's match means nothing */
    if (!ok)
        return AUTHDB_WRONG_PASSWORD;
    if (domain_out != NULL)
        *domain_out = p.d->name;
    return AUTHDB_OK;
}

/* Argon2id with OWASP's recommended minimum cost (19 MiB, 2 passes, 1 lane): each
 * check holds 19 MiB on an offload thread for some 20-30 ms. */
static int
authdb_hash_argon2(const char *password, char *out, size_t outlen)
{
    unsigned char salt[16];

    if (RAND_bytes(salt, sizeof(salt)) != 1)
        return -1;
    return argon2id_hash_encoded(AUTHDB_ARGON2_T, AUTHDB_ARGON2_M, AUTHDB_ARGON2_P, password,
                                 strlen(password), salt, sizeof(salt), 32, out, outlen) ==
                   ARGON2_OK
               ? 0
               : -1;
}

int
authdb_hash(const char *password, const char *prefix, char *out, size_t outlen)
{
    char               salt[CRYPT_GENSALT_OUTPUT_SIZE];
    struct crypt_data *cd;
    const char        *h;
    int                rc = -1;

    if (prefix != NULL && strcmp(prefix, "$argon2id$") == 0)
        return authdb_hash_argon2(password, out, outlen);
    /* count 0: libxcrypt's default cost; rbytes NULL: it reads the OS random source */
    if (crypt_gensalt_rn(prefix != NULL ? prefix : "$y$", 0, NULL, 0, salt, sizeof(salt)) ==
        NULL)
        return -1;
    cd = calloc(1, sizeof(*cd));
    if (cd == NULL)
        return -1;
    h = crypt_rn(password, salt, cd, sizeof(*cd));
    if (h != NULL && h[0] != '*' && strlen(h) < outlen) {
        memcpy(out, h, strlen(h) + 1);
        rc = 0;
    }
    OPENSSL_cleanse(cd, sizeof(*cd));
    free(cd);
    return rc;
}
