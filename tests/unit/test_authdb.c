/* tests/unit/test_authdb.c: core/auth/authdb.c -- user files in a temporary directory,
 * hashes made by authdb_hash for yescrypt, bcrypt and sha512-crypt, verification
 * outcomes, the cost classes every check hashes (each scheme mix: one hash per setting,
 * whoever asks), and load errors that name file:line. */
#include "auth/authdb.h"
#include "check.h"
#include "testio.h"
#include "tmpdir.h"

#include <argon2.h>
#include <crypt.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define HASH_MAX 256

static char hash_y[HASH_MAX];  /* "ann-pw" */
static char hash_2b[HASH_MAX]; /* "bob-pw" */
static char hash_6[HASH_MAX];  /* "cat-pw" */
static char hash_cr[HASH_MAX]; /* "crlf-pw" */
static char hash_dan[HASH_MAX]; /* "dan-pw" */

static void
rm_dir(const char *dir)
{
    nftw(dir, test_tmpdir_rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static char *
make_dir(void)
{
    static char dir[128];

    snprintf(dir, sizeof(dir), "%s/d-XXXXXX", test_tmpdir("authdb")); /* removed at exit */
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        exit(2);
    }
    return dir;
}

/* example.org: ann ($y$), bob ($2b$), cat ($6$), a CRLF line, comments and blanks;
 * Other.Test.txt: dan. */
static struct authdb *
load_sample(char *dir)
{
    char           text[2048], err[512];
    struct authdb *db;

    snprintf(text, sizeof(text),
             "# example.org users\n"
             "\n"
             "ann:%s\n"
             "   # indented comment\n"
             "bob:%s\n"
             "cat:%s   \n"
             "crlf:%s\r\n"
             "a@b:%s\n",
             hash_y, hash_2b, hash_6, hash_cr, hash_y);
    test_write_file(dir, "example.org.txt", text);
    snprintf(text, sizeof(text), "dan:%s\n", hash_dan);
    test_write_file(dir, "Other.Test.txt", text);
    test_write_file(dir, "notes.md", "not:a-user-file\n");
    test_write_file(dir, ".hidden.txt", "plaintext:hunter2\n");
    err[0] = '\0';
    db = authdb_load(dir, err, sizeof(err));
    if (db == NULL)
        fprintf(stderr, "load_sample: %s\n", err);
    return db;
}

/* Loads dir/name with text and expects failure with err starting "dir/name:line: ". */
static void
check_load_error(const char *name, const char *text, unsigned line)
{
    char           *dir = make_dir(), err[512], want[512];
    struct authdb  *db;

    test_write_file(dir, name, text);
    err[0] = '\0';
    db = authdb_load(dir, err, sizeof(err));
    CHECK(db == NULL);
    authdb_free(db);
    snprintf(want, sizeof(want), "%s/%s:%u: ", dir, name, line);
    CHECK(strncmp(err, want, strlen(want)) == 0);
    if (strncmp(err, want, strlen(want)) != 0)
        fprintf(stderr, "  got \"%s\", want prefix \"%s\"\n", err, want);
    rm_dir(dir);
}

static void
hash_makes_each_scheme_with_a_fresh_salt(void)
{
    char a[HASH_MAX], b[HASH_MAX];

    CHECK(strncmp(hash_y, "$y$", 3) == 0);
    CHECK(strncmp(hash_2b, "$2b$", 4) == 0);
    CHECK(strncmp(hash_6, "$6$", 3) == 0);
    CHECK_EQ_INT(authdb_hash("same", NULL, a, sizeof(a)), 0);
    CHECK(strncmp(a, "$y$", 3) == 0);
    CHECK_EQ_INT(authdb_hash("same", "$y$", b, sizeof(b)), 0);
    CHECK(strcmp(a, b) != 0);
    CHECK_EQ_INT(authdb_hash("same", "$nope$", a, sizeof(a)), -1);
    CHECK_EQ_INT(authdb_hash("same", "$2b$", a, 20), -1);
}

static void
verify_accepts_the_right_password_for_each_scheme(void)
{
    char          *dir = make_dir();
    struct authdb *db = load_sample(dir);
    const char    *domain = NULL;

    CHECK(db != NULL);
    if (db == NULL)
        goto out;
    CHECK_EQ_INT(authdb_verify(db, "ann@example.org", "ann-pw", &domain), AUTHDB_OK);
    CHECK(domain != NULL && strcmp(domain, "example.org") == 0);
    CHECK_EQ_INT(authdb_verify(db, "bob@example.org", "bob-pw", NULL), AUTHDB_OK);
    CHECK_EQ_INT(authdb_verify(db, "cat@example.org", "cat-pw", NULL), AUTHDB_OK);
    CHECK_EQ_INT(authdb_verify(db, "crlf@example.org", "crlf-pw", NULL), AUTHDB_OK);
    domain = NULL;
    CHECK_EQ_INT(authdb_verify(db, "dan@other.test", "dan-pw", &domain), AUTHDB_OK);
    CHECK(domain != NULL && strcmp(domain, "other.test") == 0);
out:
    authdb_free(db);
    rm_dir(dir);
}

static void
load_counts_users_of_txt_files_only(void)
{
    char          *dir = make_dir();
    struct authdb *db = load_sample(dir);

    CHECK_EQ_INT(authdb_count(db), 6); /* not notes.md, not .hidden.txt */
    authdb_free(db);
    rm_dir(dir);
}

static void
verify_fails_alike_for_wrong_password_and_unknown_names(void)
{
    char          *dir = make_dir();
    struct authdb *db = load_sample(dir);
    const char    *domain = "untouched";

    CHECK(db != NULL);
    if (db == NULL)
        goto out;
    CHECK_EQ_INT(authdb_verify(db, "ann@example.org", "wrong", &domain), AUTHDB_WRONG_PASSWORD);
    CHECK(strcmp(domain, "untouched") == 0);
    CHECK_EQ_INT(authdb_verify(db, "ann@example.org", "", NULL), AUTHDB_WRONG_PASSWORD);
    CHECK_EQ_INT(authdb_verify(db, "ann@example.org", "ann-pw ", NULL), AUTHDB_WRONG_PASSWORD);
    CHECK_EQ_INT(authdb_verify(db, "bob@example.org", "ann-pw", NULL), AUTHDB_WRONG_PASSWORD);
    CHECK_EQ_INT(authdb_verify(db, "zed@example.org", "ann-pw", NULL), AUTHDB_NO_USER);
    CHECK_EQ_INT(authdb_verify(db, "an@example.org", "ann-pw", NULL), AUTHDB_NO_USER);
    CHECK_EQ_INT(authdb_verify(db, "anne@example.org", "ann-pw", NULL), AUTHDB_NO_USER);
    CHECK_EQ_INT(authdb_verify(db, "ann@nowhere.test", "ann-pw", NULL), AUTHDB_NO_DOMAIN);
    CHECK_EQ_INT(authdb_verify(db, "ann@other.test", "ann-pw", NULL), AUTHDB_NO_USER);
    CHECK_EQ_INT(authdb_verify(db, "dan@example.org", "dan-pw", NULL), AUTHDB_NO_USER);
    CHECK_EQ_INT(authdb_verify(db, "ann@example.org.", "ann-pw", NULL), AUTHDB_NO_DOMAIN);
out:
    authdb_free(db);
    rm_dir(dir);
}

static void
domain_and_local_part_are_case_insensitive(void)
{
    char          *dir = make_dir();
    struct authdb *db = load_sample(dir);
    const char    *domain = NULL;

    CHECK(db != NULL);
    if (db == NULL)
        goto out;
    CHECK_EQ_INT(authdb_verify(db, "ann@EXAMPLE.Org", "ann-pw", &domain), AUTHDB_OK);
    CHECK(domain != NULL && strcmp(domain, "example.org") == 0);
    CHECK_EQ_INT(authdb_verify(db, "Ann@example.org", "ann-pw", NULL), AUTHDB_OK);
    CHECK_EQ_INT(authdb_verify(db, "ANN@EXAMPLE.ORG", "wrong", NULL), AUTHDB_WRONG_PASSWORD);
    CHECK_EQ_INT(authdb_verify(db, "dan@OTHER.TEST", "dan-pw", NULL), AUTHDB_OK);
out:
    authdb_free(db);
    rm_dir(dir);
}

static void
identity_splits_at_the_last_at_sign(void)
{
    char          *dir = make_dir();
    struct authdb *db = load_sample(dir);

    CHECK(db != NULL);
    if (db == NULL)
        goto out;
    CHECK_EQ_INT(authdb_verify(db, "a@b@example.org", "ann-pw", NULL), AUTHDB_OK);
    CHECK_EQ_INT(authdb_verify(db, "a@b@Example.org", "ann-pw", NULL), AUTHDB_OK);
    CHECK_EQ_INT(authdb_verify(db, "b@example.org", "ann-pw", NULL), AUTHDB_NO_USER);
out:
    authdb_free(db);
    rm_dir(dir);
}

static void
identity_without_local_part_or_domain_is_bad_input(void)
{
    char          *dir = make_dir();
    struct authdb *db = load_sample(dir);

    CHECK(db != NULL);
    if (db == NULL)
        goto out;
    CHECK_EQ_INT(authdb_verify(db, "ann", "ann-pw", NULL), AUTHDB_BAD_INPUT);
    CHECK_EQ_INT(authdb_verify(db, "", "ann-pw", NULL), AUTHDB_BAD_INPUT);
    CHECK_EQ_INT(authdb_verify(db, "@example.org", "ann-pw", NULL), AUTHDB_BAD_INPUT);
    CHECK_EQ_INT(authdb_verify(db, "ann@", "ann-pw", NULL), AUTHDB_BAD_INPUT);
    CHECK_EQ_INT(authdb_verify(db, "ann@example.org@", "ann-pw", NULL), AUTHDB_BAD_INPUT);
out:
    authdb_free(db);
    rm_dir(dir);
}

static double
seconds_for(const struct authdb *db, const char *identity, const char *password)
{
    struct timespec a, b;
    double          best = 1e9, t;
    int             i;

    for (i = 0; i < 3; i++) {
        clock_gettime(CLOCK_MONOTONIC, &a);
        (void)authdb_verify(db, identity, password, NULL);
        clock_gettime(CLOCK_MONOTONIC, &b);
        t = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
        best = t < best ? t : best;
    }
    return best;
}

/* A lookup miss without a hash is about a thousand times faster than yescrypt; the
 * quarter margin only absorbs scheduling noise. An unknown domain costs what the
 * typical domain's users do (other.test's one sha512-crypt class: the two domains tie,
 * and the shorter class list sorts first). */
static void
unknown_user_and_domain_cost_a_hash_too(void)
{
    char          *dir = make_dir();
    struct authdb *db = load_sample(dir);
    double         known, user, typical, domain;

    CHECK(db != NULL);
    if (db == NULL)
        goto out;
    known = seconds_for(db, "ann@example.org", "wrong");
    user = seconds_for(db, "zed@example.org", "wrong");
    typical = seconds_for(db, "dan@other.test", "wrong");
    domain = seconds_for(db, "ann@nowhere.test", "wrong");
    CHECK(user > known / 4);
    CHECK(domain > typical / 4);
out:
    authdb_free(db);
    rm_dir(dir);
}

/* A crypt(3) hash of pw with prefix and cost count (0: libxcrypt's default). */
static void
make_crypt(const char *prefix, unsigned long count, const char *pw, char *out)
{
    char               setting[CRYPT_GENSALT_OUTPUT_SIZE];
    struct crypt_data *cd = calloc(1, sizeof(*cd));
    const char        *h;

    if (cd == NULL || crypt_gensalt_rn(prefix, count, NULL, 0, setting, sizeof(setting)) == NULL ||
        (h = crypt_rn(pw, setting, cd, sizeof(*cd))) == NULL || h[0] == '*') {
        fprintf(stderr, "make_crypt %s %lu failed\n", prefix, count);
        exit(2);
    }
    snprintf(out, HASH_MAX, "%s", h);
    free(cd);
}

/* An argon2 hash of pw with t passes, m KiB. */
static void
make_argon2(argon2_type type, unsigned t, unsigned m, const char *pw, char *out)
{
    unsigned char salt[16] = "sixteen-octets!!";

    if (argon2_hash(t, m, 1, pw, strlen(pw), salt, sizeof(salt), NULL, 32, out, HASH_MAX,
                    type, ARGON2_VERSION_13) != ARGON2_OK) {
        fprintf(stderr, "make_argon2 failed\n");
        exit(2);
    }
}

/* The setting of h among want[] (the longest that starts it), or NULL. */
static const char *
setting_of(const char *h, const char *const *want)
{
    const char *best = NULL;

    for (; *want != NULL; want++)
        if (strncmp(h, *want, strlen(*want)) == 0 && (best == NULL || strlen(*want) > strlen(best)))
            best = *want;
    return best;
}

#define MIX_USERS 6

/* One scheme mix: users u0..u5 with these hashes (NULL ends early), and the settings
 * that fix their costs, one per class. */
struct mix {
    const char *name;
    char        hash[MIX_USERS][HASH_MAX];
    const char *settings[AUTHDB_CLASSES_MAX + 1]; /* NULL-terminated */
};

/* Every identity of the domain, known or not, in any case, hashes the same list of
 * settings, one hash per class, and a known user's list holds its own hash. */
static void
check_mix(const struct mix *m)
{
    char           *dir = make_dir(), text[MIX_USERS * (HASH_MAX + 16)], err[512] = "", id[64];
    const char     *got[AUTHDB_CLASSES_MAX], *first[AUTHDB_CLASSES_MAX];
    static const char *const strangers[] = {"zed@mix.test", "ZED@Mix.Test", "u@mix.test",
                                            "u00@mix.test", "a@b@mix.test"};
    size_t          len = 0, n_settings = 0, n_first, n, i, k;
    struct authdb  *db;
    int             users = 0, own;

    text[0] = '\0';
    for (i = 0; i < MIX_USERS && m->hash[i][0] != '\0'; i++, users++)
        len += (size_t)snprintf(text + len, sizeof(text) - len, "u%zu:%s\n", i, m->hash[i]);
    while (m->settings[n_settings] != NULL)
        n_settings++;
    test_write_file(dir, "mix.test.txt", text);
    db = authdb_load(dir, err, sizeof(err));
    CHECK(db != NULL);
    if (db == NULL) {
        fprintf(stderr, "  %s: %s\n", m->name, err);
        goto out;
    }
    n_first = authdb_verify_hashes(db, "u0@mix.test", first, AUTHDB_CLASSES_MAX);
    CHECK_EQ_INT(n_first, n_settings);
    for (k = 0; k < n_first; k++) /* each setting once: one hash per class */
        for (i = 0; i < k; i++)
            CHECK(setting_of(first[i], m->settings) != setting_of(first[k], m->settings));
    for (i = 0; i < (size_t)users + 5; i++) {
        bool known = i < (size_t)users;

        if (known)
            snprintf(id, sizeof(id), i % 2 ? "U%zu@MIX.test" : "u%zu@mix.test", i);
        else
            snprintf(id, sizeof(id), "%s", strangers[i - (size_t)users]);
        n = authdb_verify_hashes(db, id, got, AUTHDB_CLASSES_MAX);
        CHECK_EQ_INT(n, n_first);
        own = 0;
        for (k = 0; k < n && k < n_first; k++) {
            CHECK(setting_of(got[k], m->settings) != NULL);
            CHECK(setting_of(got[k], m->settings) == setting_of(first[k], m->settings));
            if (known && strcmp(got[k], m->hash[i]) == 0)
                own++;
        }
        if (known)
            CHECK_EQ_INT(own, 1);
        if (own != (known ? 1 : 0) || n != n_first)
            fprintf(stderr, "  %s: %s\n", m->name, id);
    }
out:
    authdb_free(db);
    rm_dir(dir);
}

static void
every_identity_of_a_domain_hashes_one_of_each_cost_class(void)
{
    static struct mix m[6];
    size_t            i;

    m[0].name = "yescrypt only";
    for (i = 0; i < 3; i++)
        snprintf(m[0].hash[i], HASH_MAX, "%s", hash_y);
    m[0].settings[0] = "$y$j9T$";

    m[1].name = "yescrypt and bcrypt";
    snprintf(m[1].hash[0], HASH_MAX, "%s", hash_y);
    snprintf(m[1].hash[1], HASH_MAX, "%s", hash_y);
    snprintf(m[1].hash[2], HASH_MAX, "%s", hash_2b);
    m[1].settings[0] = "$y$j9T$";
    m[1].settings[1] = "$2b$05$";

    m[2].name = "yescrypt, bcrypt and sha512-crypt, the odd one first";
    snprintf(m[2].hash[0], HASH_MAX, "%s", hash_6);
    snprintf(m[2].hash[1], HASH_MAX, "%s", hash_y);
    snprintf(m[2].hash[2], HASH_MAX, "%s", hash_y);
    snprintf(m[2].hash[3], HASH_MAX, "%s", hash_2b);
    snprintf(m[2].hash[4], HASH_MAX, "%s", hash_y);
    m[2].settings[0] = "$y$j9T$";
    m[2].settings[1] = "$2b$05$";
    m[2].settings[2] = "$6$";

    m[3].name = "one scheme, different costs";
    make_crypt("$2b$", 4, "x", m[3].hash[0]);
    make_crypt("$2b$", 5, "x", m[3].hash[1]);
    make_crypt("$6$", 1000, "x", m[3].hash[2]);
    make_crypt("$6$", 2000, "x", m[3].hash[3]);
    snprintf(m[3].hash[4], HASH_MAX, "%s", hash_6); /* the default 5000 rounds */
    make_crypt("$y$", 4, "x", m[3].hash[5]);
    m[3].settings[0] = "$2b$04$";
    m[3].settings[1] = "$2b$05$";
    m[3].settings[2] = "$6$rounds=1000$";
    m[3].settings[3] = "$6$rounds=2000$";
    m[3].settings[4] = "$6$";
    m[3].settings[5] = "$y$j8T$";

    m[4].name = "argon2id with different parameters, and argon2i";
    make_argon2(Argon2_id, 2, 4096, "x", m[4].hash[0]);
    make_argon2(Argon2_id, 3, 4096, "x", m[4].hash[1]);
    make_argon2(Argon2_id, 2, 8192, "x", m[4].hash[2]);
    make_argon2(Argon2_i, 2, 4096, "x", m[4].hash[3]);
    make_argon2(Argon2_id, 2, 4096, "y", m[4].hash[4]);
    m[4].settings[0] = "$argon2id$v=19$m=4096,t=2,p=1$";
    m[4].settings[1] = "$argon2id$v=19$m=4096,t=3,p=1$";
    m[4].settings[2] = "$argon2id$v=19$m=8192,t=2,p=1$";
    m[4].settings[3] = "$argon2i$v=19$m=4096,t=2,p=1$";

    m[5].name = "yescrypt with two costs and argon2id";
    snprintf(m[5].hash[0], HASH_MAX, "%s", hash_y);
    make_crypt("$y$", 4, "x", m[5].hash[1]);
    make_argon2(Argon2_id, 2, 4096, "x", m[5].hash[2]);
    m[5].settings[0] = "$y$j9T$";
    m[5].settings[1] = "$y$j8T$";
    m[5].settings[2] = "$argon2id$v=19$m=4096,t=2,p=1$";

    for (i = 0; i < sizeof(m) / sizeof(m[0]); i++)
        check_mix(&m[i]);
}

/* An unknown domain and an identity without one hash what the typical domain's
 * identities do: the class list most domains have (here yescrypt alone, two domains
 * against one), never nothing. */
static void
unknown_domain_hashes_the_typical_domains_classes(void)
{
    char           *dir = make_dir(), text[1024], err[512] = "";
    const char     *got[AUTHDB_CLASSES_MAX], *idents[] = { "ann@nowhere.test", "ann",
                                                         "@a.test", "ann@" };
    struct authdb  *db;
    size_t          i;

    snprintf(text, sizeof(text), "ann:%s\n", hash_y);
    test_write_file(dir, "a.test.txt", text);
    snprintf(text, sizeof(text), "bob:%s\ncat:%s\n", hash_y, hash_y);
    test_write_file(dir, "b.test.txt", text);
    snprintf(text, sizeof(text), "cat:%s\ndan:%s\n", hash_2b, hash_6);
    test_write_file(dir, "c.test.txt", text); /* sorts first by name, yet is not typical */
    test_write_file(dir, "d.test.txt", "# nobody yet\n");
    db = authdb_load(dir, err, sizeof(err));
    CHECK(db != NULL);
    if (db == NULL)
        goto out;
    for (i = 0; i < sizeof(idents) / sizeof(idents[0]); i++) {
        CHECK_EQ_INT(authdb_verify_hashes(db, idents[i], got, AUTHDB_CLASSES_MAX), 1);
        CHECK(strncmp(got[0], "$y$j9T$", 7) == 0);
    }
    /* a domain whose file has no users is an unknown domain too */
    CHECK_EQ_INT(authdb_verify_hashes(db, "ann@d.test", got, AUTHDB_CLASSES_MAX), 1);
    CHECK(strncmp(got[0], "$y$j9T$", 7) == 0);
    CHECK_EQ_INT(authdb_verify(db, "ann@d.test", "x", NULL), AUTHDB_NO_DOMAIN);
    CHECK_EQ_INT(authdb_verify_hashes(db, "zed@c.test", got, AUTHDB_CLASSES_MAX), 2);
out:
    authdb_free(db);
    rm_dir(dir);
}

static void
no_users_at_all_still_costs_one_default_hash(void)
{
    char          *dir = make_dir(), err[512] = "";
    struct authdb *db = authdb_load(dir, err, sizeof(err));
    const char    *got[AUTHDB_CLASSES_MAX];

    CHECK(db != NULL);
    if (db != NULL) {
        CHECK_EQ_INT(authdb_verify_hashes(db, "ann@example.org", got, AUTHDB_CLASSES_MAX), 1);
        CHECK(strncmp(got[0], "$y$", 3) == 0);
    }
    authdb_free(db);
    rm_dir(dir);
}

struct mixed_seen {
    int  calls;
    char path[256];
    char settings[512];
    int  n;
};

static void
mixed_cb(void *arg, const char *path, size_t n, const char *settings)
{
    struct mixed_seen *m = arg;

    m->calls++;
    snprintf(m->path, sizeof(m->path), "%s", path);
    snprintf(m->settings, sizeof(m->settings), "%s", settings);
    m->n = (int)n;
}

/* `sluice check` names the domains whose every check costs more than one hash. */
static void
domains_of_mixed_schemes_are_reported_with_their_classes(void)
{
    char              *dir = make_dir(), text[1024], want[512];
    struct authdb     *db;
    struct mixed_seen  seen = {0};

    snprintf(text, sizeof(text), "ann:%s\nbea:%s\nold:%s\n", hash_y, hash_y, hash_6);
    test_write_file(dir, "mixed.test.txt", text);
    snprintf(text, sizeof(text), "ann:%s\n", hash_y);
    test_write_file(dir, "plain.test.txt", text);
    db = authdb_load(dir, NULL, 0);
    CHECK(db != NULL);
    authdb_each_mixed_domain(db, mixed_cb, &seen);
    CHECK_EQ_INT(seen.calls, 1);
    CHECK_EQ_INT(seen.n, 2);
    snprintf(want, sizeof(want), "%s/mixed.test.txt", dir);
    CHECK(strcmp(seen.path, want) == 0);
    CHECK(strcmp(seen.settings, "$6$ (1 user), $y$j9T$ (2 users)") == 0);
    if (strcmp(seen.settings, "$6$ (1 user), $y$j9T$ (2 users)") != 0)
        fprintf(stderr, "  got \"%s\"\n", seen.settings);
    authdb_free(db);
    rm_dir(dir);
}

/* Every check hashes once per class: a domain may not make that unbounded. */
static void
load_refuses_more_cost_classes_than_the_limit(void)
{
    char   text[(AUTHDB_CLASSES_MAX + 2) * (HASH_MAX + 16)], h[HASH_MAX];
    size_t len = 0;
    int    i;

    for (i = 0; i < AUTHDB_CLASSES_MAX; i++) {
        make_crypt("$6$", 1000 + (unsigned long)i, "x", h);
        len += (size_t)snprintf(text + len, sizeof(text) - len, "u%d:%s\n", i, h);
    }
    {
        char          *dir = make_dir(), err[512] = "";
        struct authdb *db;

        test_write_file(dir, "ok.test.txt", text); /* exactly the limit: fine */
        db = authdb_load(dir, err, sizeof(err));
        CHECK(db != NULL);
        authdb_free(db);
        rm_dir(dir);
    }
    make_crypt("$6$", 1000 + AUTHDB_CLASSES_MAX, "x", h);
    snprintf(text + len, sizeof(text) - len, "u%d:%s\n", AUTHDB_CLASSES_MAX, h);
    check_load_error("x.test.txt", text, AUTHDB_CLASSES_MAX + 1);
}

/* This thread's CPU seconds for the fastest of three checks: the work, not the
 * scheduling of a busy machine. */
static double
cpu_seconds_for(const struct authdb *db, const char *identity, const char *password)
{
    struct timespec a, b;
    double          best = 1e9, t;
    int             i;

    for (i = 0; i < 3; i++) {
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
        (void)authdb_verify(db, identity, password, NULL);
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
        t = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
        best = t < best ? t : best;
    }
    return best;
}

/* The case of the brief: a domain of yescrypt users (~15 ms a check here) with one
 * sha512-crypt user (~1.5 ms). Checking the odd user's password, an unknown user's and
 * an unknown domain's cost the same CPU within a third; a stand-in of the majority's
 * scheme alone would make the odd user ten times faster. */
static void
a_user_with_another_scheme_costs_what_an_unknown_user_does(void)
{
    char           *dir = make_dir(), text[2048];
    struct authdb  *db;
    double          odd, usual, unknown, domain, lo, hi;

    snprintf(text, sizeof(text), "ann:%s\nbea:%s\ncid:%s\nold:%s\n", hash_y, hash_y, hash_y,
             hash_6);
    test_write_file(dir, "example.org.txt", text);
    db = authdb_load(dir, NULL, 0);
    CHECK(db != NULL);
    if (db == NULL)
        goto out;
    odd = cpu_seconds_for(db, "old@example.org", "wrong");
    usual = cpu_seconds_for(db, "ann@example.org", "wrong");
    unknown = cpu_seconds_for(db, "zed@example.org", "wrong");
    domain = cpu_seconds_for(db, "zed@nowhere.test", "wrong");
    lo = odd < usual ? odd : usual;
    lo = unknown < lo ? unknown : lo;
    lo = domain < lo ? domain : lo;
    hi = odd > usual ? odd : usual;
    hi = unknown > hi ? unknown : hi;
    hi = domain > hi ? domain : hi;
    CHECK(hi < lo * 1.33);
    if (!(hi < lo * 1.33))
        fprintf(stderr, "  odd %.2f usual %.2f unknown %.2f domain %.2f ms\n", odd * 1e3,
                usual * 1e3, unknown * 1e3, domain * 1e3);
out:
    authdb_free(db);
    rm_dir(dir);
}

static void
thousands_of_users_are_all_found(void)
{
    char          *dir = make_dir(), line[HASH_MAX + 32], err[256], *text;
    char           hash[HASH_MAX], id[64];
    struct authdb *db;
    size_t         len = 0, i;
    static const size_t probe[] = { 0, 1, 2500, 4998, 4999 };

    CHECK_EQ_INT(authdb_hash("many-pw", "$2b$", hash, sizeof(hash)), 0);
    text = malloc(5000 * sizeof(line));
    if (text == NULL)
        abort();
    for (i = 5000; i-- > 0;) { /* written in reverse, so the load must sort */
        snprintf(line, sizeof(line), "user%zu:%s\n", i, hash);
        memcpy(text + len, line, strlen(line) + 1);
        len += strlen(line);
    }
    test_write_file(dir, "big.test.txt", text);
    free(text);
    db = authdb_load(dir, err, sizeof(err));
    CHECK(db != NULL);
    CHECK_EQ_INT(authdb_count(db), 5000);
    for (i = 0; db != NULL && i < sizeof(probe) / sizeof(probe[0]); i++) {
        snprintf(id, sizeof(id), "user%zu@big.test", probe[i]);
        CHECK_EQ_INT(authdb_verify(db, id, "many-pw", NULL), AUTHDB_OK);
    }
    if (db != NULL)
        CHECK_EQ_INT(authdb_verify(db, "user5000@big.test", "many-pw", NULL), AUTHDB_NO_USER);
    authdb_free(db);
    rm_dir(dir);
}

static void
load_refuses_a_plaintext_password_at_its_line(void)
{
    char text[1024];

    snprintf(text, sizeof(text), "ann:%s\n# comment\neve:hunter2\n", hash_y);
    check_load_error("bad.test.txt", text, 3);
    check_load_error("bad.test.txt", "eve:abcdefghijklm\n", 1); /* DES-shaped */
    check_load_error("bad.test.txt", "eve:\n", 1);
}

static void
load_refuses_a_line_without_colon_at_its_line(void)
{
    char text[1024];

    snprintf(text, sizeof(text), "\r\nann:%s\r\nbob %s\r\n", hash_y, hash_2b);
    check_load_error("crlf.test.txt", text, 3);
}

static void
load_refuses_weak_truncated_or_setting_only_hashes(void)
{
    char text[1024];

    check_load_error("x.test.txt", "eve:$1$e0Kcw4T8$iB2OZcEakCKcCKYYN.eG1.\n", 1); /* md5 */
    check_load_error("x.test.txt", "eve:$y$j9T$X3cqiGXZ/GTcpv8fCGDVI/$\n", 1);
    check_load_error("x.test.txt", "eve:$y$\n", 1);
    snprintf(text, sizeof(text), "eve:%.*s\n", (int)strlen(hash_2b) - 1, hash_2b);
    check_load_error("x.test.txt", text, 1);
    snprintf(text, sizeof(text), "eve:%sx\n", hash_6);
    check_load_error("x.test.txt", text, 1);
    snprintf(text, sizeof(text), "eve: %s\n", hash_6); /* a blank starts no hash */
    check_load_error("x.test.txt", text, 1);
}

/* argon2id from authdb_hash, argon2i from libargon2 itself (as other tools write it). */
static void
argon2_hashes_load_and_verify(void)
{
    char           id[HASH_MAX], i[HASH_MAX], text[1024], err[512] = "";
    unsigned char  salt[16] = "sixteen-octets!!";
    char          *dir = make_dir();
    struct authdb *db;

    CHECK_EQ_INT(authdb_hash("eve-pw", "$argon2id$", id, sizeof(id)), 0);
    CHECK(strncmp(id, "$argon2id$v=19$m=19456,t=2,p=1$", 31) == 0);
    CHECK_EQ_INT(argon2i_hash_encoded(3, 4096, 1, "old-pw", 6, salt, sizeof(salt), 32, i,
                                      sizeof(i)),
                 ARGON2_OK);
    snprintf(text, sizeof(text), "eve:%s\nold:%s\n", id, i);
    test_write_file(dir, "ar.test.txt", text);
    db = authdb_load(dir, err, sizeof(err));
    CHECK(db != NULL);
    if (db == NULL) {
        fprintf(stderr, "  %s\n", err);
        goto out;
    }
    CHECK_EQ_INT(authdb_verify(db, "eve@ar.test", "eve-pw", NULL), AUTHDB_OK);
    CHECK_EQ_INT(authdb_verify(db, "Eve@AR.test", "eve-pw", NULL), AUTHDB_OK);
    CHECK_EQ_INT(authdb_verify(db, "eve@ar.test", "eve-pW", NULL), AUTHDB_WRONG_PASSWORD);
    CHECK_EQ_INT(authdb_verify(db, "old@ar.test", "old-pw", NULL), AUTHDB_OK);
    CHECK_EQ_INT(authdb_verify(db, "old@ar.test", "eve-pw", NULL), AUTHDB_WRONG_PASSWORD);
    CHECK_EQ_INT(authdb_verify(db, "nobody@ar.test", "eve-pw", NULL), AUTHDB_NO_USER);
out:
    authdb_free(db);
    rm_dir(dir);
}

static void
load_refuses_malformed_argon2_hashes(void)
{
    char good[HASH_MAX], text[1024];

    CHECK_EQ_INT(authdb_hash("x", "$argon2id$", good, sizeof(good)), 0);
    check_load_error("x.test.txt", "eve:$argon2id$\n", 1);
    check_load_error("x.test.txt", "eve:$argon2id$v=19$m=19456,t=2,p=1$\n", 1);
    check_load_error("x.test.txt", "eve:$argon2id$v=16$m=19456,t=2,p=1$c2FsdHNhbHQ$"
                                   "aGFzaGhhc2hoYXNoaGFzaA\n", 1);
    check_load_error("x.test.txt", "eve:$argon2id$v=19$m=19456,t=0,p=1$c2FsdHNhbHQ$"
                                   "aGFzaGhhc2hoYXNoaGFzaA\n", 1);
    check_load_error("x.test.txt", "eve:$argon2id$v=19$m=19456,t=2,p=1$c2Fsd!NhbHQ$"
                                   "aGFzaGhhc2hoYXNoaGFzaA\n", 1);
    snprintf(text, sizeof(text), "ok:%s\neve:$argon2d$%s\n", good, good + 10);
    check_load_error("x.test.txt", text, 2); /* argon2d is not for passwords */
}

static void
load_refuses_empty_and_duplicate_users(void)
{
    char text[1024];

    snprintf(text, sizeof(text), "ann:%s\n:%s\n", hash_y, hash_y);
    check_load_error("x.test.txt", text, 2);
    snprintf(text, sizeof(text), "ann:%s\nbob:%s\n\nann:%s\n", hash_y, hash_2b, hash_6);
    check_load_error("x.test.txt", text, 4);
    snprintf(text, sizeof(text), "a nn:%s\n", hash_y);
    check_load_error("x.test.txt", text, 1);
    /* lookups ignore case, so users differing only in case would be ambiguous */
    snprintf(text, sizeof(text), "ann:%s\nAnn:%s\n", hash_y, hash_6);
    check_load_error("x.test.txt", text, 2);
}

static void
load_refuses_two_files_for_one_domain(void)
{
    char          *dir = make_dir(), text[512], err[512];
    struct authdb *db;

    snprintf(text, sizeof(text), "ann:%s\n", hash_y);
    test_write_file(dir, "example.org.txt", text);
    test_write_file(dir, "EXAMPLE.org.txt", text);
    db = authdb_load(dir, err, sizeof(err));
    CHECK(db == NULL);
    CHECK(strstr(err, "example.org.txt") != NULL || strstr(err, "EXAMPLE.org.txt") != NULL);
    authdb_free(db);
    rm_dir(dir);
}

static void
load_of_a_missing_directory_names_it(void)
{
    char           err[512] = "";
    struct authdb *db = authdb_load("/nonexistent/sluice-users", err, sizeof(err));

    CHECK(db == NULL);
    CHECK(strncmp(err, "/nonexistent/sluice-users: ", 27) == 0);
}

static void
empty_directory_loads_with_no_users(void)
{
    char          *dir = make_dir(), err[512];
    struct authdb *db = authdb_load(dir, err, sizeof(err));

    CHECK(db != NULL);
    CHECK_EQ_INT(authdb_count(db), 0);
    if (db != NULL)
        CHECK_EQ_INT(authdb_verify(db, "ann@example.org", "x", NULL), AUTHDB_NO_DOMAIN);
    authdb_free(db);
    authdb_free(NULL);
    rm_dir(dir);
}

int
main(void)
{
    if (authdb_hash("ann-pw", "$y$", hash_y, HASH_MAX) != 0 ||
        authdb_hash("bob-pw", "$2b$", hash_2b, HASH_MAX) != 0 ||
        authdb_hash("cat-pw", "$6$", hash_6, HASH_MAX) != 0 ||
        authdb_hash("crlf-pw", "$2b$", hash_cr, HASH_MAX) != 0 ||
        authdb_hash("dan-pw", "$6$", hash_dan, HASH_MAX) != 0) {
        fprintf(stderr, "authdb_hash failed\n");
        return 1;
    }
    RUN(hash_makes_each_scheme_with_a_fresh_salt);
    RUN(verify_accepts_the_right_password_for_each_scheme);
    RUN(argon2_hashes_load_and_verify);
    RUN(load_refuses_malformed_argon2_hashes);
    RUN(load_counts_users_of_txt_files_only);
    RUN(verify_fails_alike_for_wrong_password_and_unknown_names);
    RUN(domain_and_local_part_are_case_insensitive);
    RUN(identity_splits_at_the_last_at_sign);
    RUN(identity_without_local_part_or_domain_is_bad_input);
    RUN(unknown_user_and_domain_cost_a_hash_too);
    RUN(every_identity_of_a_domain_hashes_one_of_each_cost_class);
    RUN(unknown_domain_hashes_the_typical_domains_classes);
    RUN(no_users_at_all_still_costs_one_default_hash);
    RUN(load_refuses_more_cost_classes_than_the_limit);
    RUN(domains_of_mixed_schemes_are_reported_with_their_classes);
    RUN(a_user_with_another_scheme_costs_what_an_unknown_user_does);
    RUN(thousands_of_users_are_all_found);
    RUN(load_refuses_a_plaintext_password_at_its_line);
    RUN(load_refuses_a_line_without_colon_at_its_line);
    RUN(load_refuses_weak_truncated_or_setting_only_hashes);
    RUN(load_refuses_empty_and_duplicate_users);
    RUN(load_refuses_two_files_for_one_domain);
    RUN(load_of_a_missing_directory_names_it);
    RUN(empty_directory_loads_with_no_users);
    return check_summary();
}
