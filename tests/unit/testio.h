/* tests/unit/testio.h: the file and log helpers unit tests share: write a file, read a
 * file back, compare (or regenerate) a generated section of docs/, and capture what the
 * code under test writes on stderr (the JSON log lines)
 * between test_capture_start() and test_capture_end(). A helper that cannot do its job
 * (a set-up failure, not a test failure) says why and exits 1. Where scratch files go is
 * tmpdir.h's business. */
#ifndef SLUICE_TEST_TESTIO_H
#define SLUICE_TEST_TESTIO_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* dir/name, or name alone when dir is NULL, in one of eight rotating buffers: a test may
 * hold a few of these at once. */
static inline const char *
test_path(const char *dir, const char *name)
{
    static char paths[8][512];
    static int  next;
    char       *p = paths[next++ % 8];

    if (dir == NULL)
        snprintf(p, sizeof(paths[0]), "%s", name);
    else
        snprintf(p, sizeof(paths[0]), "%s/%s", dir, name);
    return p;
}

/* Write text to dir/name (see test_path()), replacing it, with the given mode. */
static inline void
test_write_file_mode(const char *dir, const char *name, const char *text, mode_t mode)
{
    const char *path = test_path(dir, name);
    size_t      len = strlen(text);
    int         fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

    if (fd < 0 || write(fd, text, len) != (ssize_t)len || close(fd) != 0 ||
        chmod(path, mode) != 0) {
        perror(path);
        exit(1);
    }
}

/* Write text to dir/name (see test_path()), replacing it; mode 0644. */
static inline void
test_write_file(const char *dir, const char *name, const char *text)
{
    test_write_file_mode(dir, name, text, 0644);
}

/* The whole file, NUL-terminated, in malloc'd memory the caller frees; "" (still to be
 * freed) when it does not exist. */
static inline char *
test_read_file(const char *path)
{
    FILE  *f = fopen(path, "r");
    char  *buf = NULL;
    size_t len = 0;

    if (f == NULL)
        return strdup("");
    if (getdelim(&buf, &len, '\0', f) < 0) {
        free(buf);
        buf = strdup("");
    }
    fclose(f);
    return buf;
}

/* The text between begin_mark and end_mark in the file at path (docs generated from a
 * table in the code) against want: 0 when it is want, -1 when it differs or the marks
 * are missing (and says which on stderr). With SLUICE_REGEN_DOCS set in the environment
 * it rewrites that text to want instead, and returns 0. */
static inline int
test_docs_section(const char *path, const char *begin_mark, const char *end_mark,
                  const char *want)
{
    char  *docs = test_read_file(path);
    char  *begin = strstr(docs, begin_mark);
    char  *end = begin != NULL ? strstr(begin, end_mark) : NULL;
    int    rc = 0;
    FILE  *f;

    if (begin == NULL || end == NULL) {
        fprintf(stderr, "%s: no section between \"%s\" and \"%s\"\n", path, begin_mark,
                end_mark);
        free(docs);
        return -1;
    }
    begin += strlen(begin_mark);
    if (getenv("SLUICE_REGEN_DOCS") != NULL) {
        f = fopen(path, "wb");
        if (f == NULL || fwrite(docs, 1, (size_t)(begin - docs), f) != (size_t)(begin - docs) ||
            fputs(want, f) < 0 || fputs(end, f) < 0 || fclose(f) != 0)
            rc = -1;
        fprintf(stderr, "%s: %s the section after \"%s\"\n", path,
                rc == 0 ? "regenerated" : "could not regenerate", begin_mark);
    } else if ((size_t)(end - begin) != strlen(want) ||
               memcmp(begin, want, strlen(want)) != 0) {
        fprintf(stderr, "%s: the section after \"%s\" is stale: run the test with "
                        "SLUICE_REGEN_DOCS=1\n", path, begin_mark);
        rc = -1;
    }
    free(docs);
    return rc;
}

/* stderr goes to an unlinked temporary file until test_capture_end(): no pipe to fill
 * up, so a test may log as much as it likes. One capture at a time. */
static int test_capture_fd = -1, test_capture_saved = -1;

static inline void
test_capture_start(void)
{
    char tmpl[] = "/tmp/sluice-test-capture-XXXXXX";

    test_capture_fd = mkstemp(tmpl);
    if (test_capture_fd < 0) {
        perror(tmpl);
        exit(1);
    }
    unlink(tmpl);
    fflush(stderr);
    test_capture_saved = dup(2);
    dup2(test_capture_fd, 2);
}

/* What was written on stderr since test_capture_start(), NUL-terminated (the first
 * 64 KiB), in a static buffer the next capture reuses; stderr is restored. */
static inline const char *
test_capture_end(void)
{
    static char buf[65536];
    ssize_t     n;

    fflush(stderr);
    dup2(test_capture_saved, 2);
    close(test_capture_saved);
    n = pread(test_capture_fd, buf, sizeof(buf) - 1, 0);
    close(test_capture_fd);
    test_capture_fd = test_capture_saved = -1;
    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

/* How often needle occurs in text. */
static inline int
test_count(const char *text, const char *needle)
{
    int count = 0;

    for (const char *p = text; (p = strstr(p, needle)) != NULL; p++)
        count++;
    return count;
}

#endif
