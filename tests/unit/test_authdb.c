/* tests/unit/test_authdb.c: core/authdb.c -- user files in a temporary directory,
 * hashes made by authdb_hash for yescrypt, bcrypt and sha512-crypt, verification
 * outcomes, and load errors that name file:line. */
#include "authdb.h"
#include "check.h"
#include "tmpdir.h"

#include <argon2.h>
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

static void
write_file(const char *dir, const char *name, const char *text)
{
    char  path[256];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "w");
    if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0) {
        perror(path);
        exit(2);
    }
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
    write_file(dir, "example.org.txt", text);
    snprintf(text, sizeof(text), "dan:%s\n", hash_dan);
    write_file(dir, "Other.Test.txt", text);
    write_file(dir, "notes.md", "not:a-user-file\n");
    write_file(dir, ".hidden.txt", "plaintext:hunter2\n");
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

    write_file(dir, name, text);
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
    CHECK_EQ_INT(authdb_verify(db, "ann@example.org", "wrong", &domain), AUTHDB_FAIL);
    CHECK(strcmp(domain, "untouched") == 0);
    CHECK_EQ_INT(authdb_verify(db, "ann@example.org", "", NULL), AUTHDB_FAIL);
    CHECK_EQ_INT(authdb_verify(db, "ann@example.org", "ann-pw ", NULL), AUTHDB_FAIL);
    CHECK_EQ_INT(authdb_verify(db, "bob@example.org", "ann-pw", NULL), AUTHDB_FAIL);
    CHECK_EQ_INT(authdb_verify(db, "zed@example.org", "ann-pw", NULL), AUTHDB_FAIL);
    CHECK_EQ_INT(authdb_verify(db, "an@example.org", "ann-pw", NULL), AUTHDB_FAIL);
    CHECK_EQ_INT(authdb_verify(db, "anne@example.org", "ann-pw", NULL), AUTHDB_FAIL);
    CHECK_EQ_INT(authdb_verify(db, "ann@nowhere.test", "ann-pw", NULL), AUTHDB_FAIL);
    CHECK_EQ_INT(authdb_verify(db, "ann@other.test", "ann-pw", NULL), AUTHDB_FAIL);
    CHECK_EQ_INT(authdb_verify(db, "dan@example.org", "dan-pw", NULL), AUTHDB_FAIL);
    CHECK_EQ_INT(authdb_verify(db, "ann@example.org.", "ann-pw", NULL), AUTHDB_FAIL);
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
    CHECK_EQ_INT(authdb_verify(db, "ANN@EXAMPLE.ORG", "wrong", NULL), AUTHDB_FAIL);
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
    CHECK_EQ_INT(authdb_verify(db, "b@example.org", "ann-pw", NULL), AUTHDB_FAIL);
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
 * quarter margin only absorbs scheduling noise. */
static void
unknown_user_and_domain_cost_a_hash_too(void)
{
    char          *dir = make_dir();
    struct authdb *db = load_sample(dir);
    double         known, user, domain;

    CHECK(db != NULL);
    if (db == NULL)
        goto out;
    known = seconds_for(db, "ann@example.org", "wrong");
    user = seconds_for(db, "zed@example.org", "wrong");
    domain = seconds_for(db, "ann@nowhere.test", "wrong");
    CHECK(user > known / 4);
    CHECK(domain > known / 4);
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
    write_file(dir, "big.test.txt", text);
    free(text);
    db = authdb_load(dir, err, sizeof(err));
    CHECK(db != NULL);
    CHECK_EQ_INT(authdb_count(db), 5000);
    for (i = 0; db != NULL && i < sizeof(probe) / sizeof(probe[0]); i++) {
        snprintf(id, sizeof(id), "user%zu@big.test", probe[i]);
        CHECK_EQ_INT(authdb_verify(db, id, "many-pw", NULL), AUTHDB_OK);
    }
    if (db != NULL)
        CHECK_EQ_INT(authdb_verify(db, "user5000@big.test", "many-pw", NULL), AUTHDB_FAIL);
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
    write_file(dir, "ar.test.txt", text);
    db = authdb_load(dir, err, sizeof(err));
    CHECK(db != NULL);
    if (db == NULL) {
        fprintf(stderr, "  %s\n", err);
        goto out;
    }
    CHECK_EQ_INT(authdb_verify(db, "eve@ar.test", "eve-pw", NULL), AUTHDB_OK);
    CHECK_EQ_INT(authdb_verify(db, "Eve@AR.test", "eve-pw", NULL), AUTHDB_OK);
    CHECK_EQ_INT(authdb_verify(db, "eve@ar.test", "eve-pW", NULL), AUTHDB_FAIL);
    CHECK_EQ_INT(authdb_verify(db, "old@ar.test", "old-pw", NULL), AUTHDB_OK);
    CHECK_EQ_INT(authdb_verify(db, "old@ar.test", "eve-pw", NULL), AUTHDB_FAIL);
    CHECK_EQ_INT(authdb_verify(db, "nobody@ar.test", "eve-pw", NULL), AUTHDB_FAIL);
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
    write_file(dir, "example.org.txt", text);
    write_file(dir, "EXAMPLE.org.txt", text);
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
        CHECK_EQ_INT(authdb_verify(db, "ann@example.org", "x", NULL), AUTHDB_FAIL);
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
