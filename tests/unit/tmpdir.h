/* tests/unit/tmpdir.h: a unit test's scratch directory, $TMPDIR/sluice-test-NAME-XXXXXX
 * (/tmp when TMPDIR is unset, or too long for the Unix socket paths some tests make in
 * it). It is removed with everything in it when the test process exits, whichever way:
 * main() returning, or exit() from a failed set-up or a helper that gave up. A second
 * run in the same tree therefore never meets the first one's files. A crash (abort(), a
 * signal) still leaves it behind.
 *
 * Forked children inherit the atexit handler; only the process that made the directory
 * removes it, so a child's exit() cannot pull it from under the parent. */
#ifndef SLUICE_TEST_TMPDIR_H
#define SLUICE_TEST_TMPDIR_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#define TEST_TMPDIR_BASE_MAX 40 /* leaves room for the tests' paths (sun_path: 108) */

static char  test_tmpdir_path[96]; /* base + "/sluice-test-" + a short name + "-XXXXXX" */
static pid_t test_tmpdir_owner;

static int
test_tmpdir_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    if (remove(path) != 0)
        perror(path);
    return 0; /* remove what can be removed */
}

static void
test_tmpdir_remove(void)
{
    if (test_tmpdir_path[0] != '\0' && getpid() == test_tmpdir_owner)
        nftw(test_tmpdir_path, test_tmpdir_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* The directory's path, made on the first call (name: what the test is, e.g. "audit").
 * Exits with 1 if it cannot be made. */
static const char *
test_tmpdir(const char *name)
{
    const char *base = getenv("TMPDIR");

    if (test_tmpdir_path[0] != '\0')
        return test_tmpdir_path;
    if (base == NULL || base[0] != '/' || strlen(base) > TEST_TMPDIR_BASE_MAX)
        base = "/tmp";
    snprintf(test_tmpdir_path, sizeof(test_tmpdir_path), "%s/sluice-test-%s-XXXXXX", base,
             name);
    if (mkdtemp(test_tmpdir_path) == NULL) {
        perror(test_tmpdir_path);
        exit(1);
    }
    test_tmpdir_owner = getpid();
    atexit(test_tmpdir_remove);
    return test_tmpdir_path;
}

#endif
