/* tests/unit/test_audit.c: core/util/audit.c -- lines from many threads arrive whole and in
 * order, reopen after logrotate's rename, unwritable paths, a full queue, write errors and
 * the flush on free. A FIFO nobody reads stands for a disk that does not keep up: the
 * writer blocks on it and the queue fills without any sleep. Run this under ASan and TSan. */
#include "util/audit.h"
#include "check.h"
#include "util/log.h"
#include "testio.h"
#include "tmpdir.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define THREADS 4
#define PER_THREAD 10000

static const char *dir; /* removed at exit (tmpdir.h) */

static void
path_of(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", dir, name);
}

static struct audit *
open_or_die(const char *path, size_t queue_max)
{
    char          err[256] = "";
    struct audit *a = audit_open_sized(path, queue_max, err, sizeof(err));

    if (a == NULL) {
        fprintf(stderr, "audit_open_sized: %s\n", err);
        abort();
    }
    return a;
}

static size_t
count_lines(const char *s)
{
    size_t n = 0;

    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* Wait (at most 10 s) until the writer has written or lost everything queued. */
static void
wait_drained(struct audit *a, struct audit_stats *st)
{
    struct timespec pause = {0, 1000000};
    int             i;

    for (i = 0; i < 10000; i++) {
        audit_stats(a, st);
        if (st->queued_bytes == 0)
            return;
        nanosleep(&pause, NULL);
    }
}

static int
write_str(struct audit *a, const char *line)
{
    return audit_write(a, line, strlen(line));
}

/* "t<thread> <n> " and n % 37 x's: lines of different lengths, each checkable alone.
 * NUL-terminated; the length returned excludes the NUL. */
static size_t
thread_line(char *buf, size_t len, int t, int n)
{
    int k = snprintf(buf, len, "t%d %05d ", t, n);

    memset(buf + k, 'x', (size_t)(n % 37));
    k += n % 37;
    buf[k++] = '\n';
    buf[k] = '\0';
    return (size_t)k;
}

struct writer_arg {
    struct audit *a;
    int           t;
    int           failed;
};

static void *
writer_thread(void *arg)
{
    struct writer_arg *w = arg;
    char               line[128];
    int                n;

    for (n = 0; n < PER_THREAD; n++)
        w->failed += audit_write(w->a, line, thread_line(line, sizeof(line), w->t, n)) != 0;
    return NULL;
}

static void
lines_from_several_threads_arrive_whole_once_and_in_order(void)
{
    char               path[128], want[128], *text, *p, *nl;
    struct audit      *a;
    struct audit_stats st;
    struct writer_arg  w[THREADS];
    pthread_t          tid[THREADS];
    int                next[THREADS] = {0}, t, n, bad = 0, i;

    path_of(path, sizeof(path), "threads.log");
    a = open_or_die(path, AUDIT_QUEUE_MAX);
    for (i = 0; i < THREADS; i++) {
        w[i] = (struct writer_arg){a, i, 0};
        pthread_create(&tid[i], NULL, writer_thread, &w[i]);
    }
    for (i = 0; i < THREADS; i++) {
        pthread_join(tid[i], NULL);
        CHECK_EQ_INT(w[i].failed, 0);
    }
    wait_drained(a, &st);
    CHECK_EQ_INT(st.lines_written, THREADS * PER_THREAD);
    CHECK_EQ_INT(st.lines_dropped, 0);
    CHECK_EQ_INT(st.write_errors, 0);
    audit_free(a);
    text = test_read_file(path);
    for (p = text; (nl = strchr(p, '\n')) != NULL; p = nl + 1) {
        if (sscanf(p, "t%d %d ", &t, &n) != 2 || t < 0 || t >= THREADS || n != next[t]) {
            bad++;
            continue;
        }
        thread_line(want, sizeof(want), t, n);
        bad += (size_t)(nl + 1 - p) != strlen(want) || strncmp(p, want, strlen(want)) != 0;
        next[t]++;
    }
    CHECK_EQ_INT(bad, 0);
    CHECK(*p == '\0'); /* nothing after the last '\n' */
    for (i = 0; i < THREADS; i++)
        CHECK_EQ_INT(next[i], PER_THREAD);
    free(text);
}

/* logrotate: rename the file, then HUP. */
static void
after_a_rename_and_reopen_later_lines_go_to_the_new_file(void)
{
    char          path[128], rotated[128], line[64], *old_text, *new_text;
    char          err[256] = "";
    struct audit *a;
    int           i;

    path_of(path, sizeof(path), "rotate.log");
    path_of(rotated, sizeof(rotated), "rotate.log.1");
    a = open_or_die(path, AUDIT_QUEUE_MAX);
    for (i = 0; i < 1000; i++) {
        snprintf(line, sizeof(line), "before %d\n", i);
        CHECK_EQ_INT(write_str(a, line), 0);
    }
    CHECK_EQ_INT(rename(path, rotated), 0);
    CHECK_EQ_INT(audit_reopen(a, path, err, sizeof(err)), 0);
    for (i = 0; i < 1000; i++) {
        snprintf(line, sizeof(line), "after %d\n", i);
        CHECK_EQ_INT(write_str(a, line), 0);
    }
    audit_free(a);
    old_text = test_read_file(rotated);
    new_text = test_read_file(path);
    CHECK_EQ_INT(count_lines(old_text), 1000);
    CHECK_EQ_INT(count_lines(new_text), 1000);
    CHECK(strncmp(old_text, "before 0\n", 9) == 0 && strstr(old_text, "after") == NULL);
    CHECK(strncmp(new_text, "after 0\n", 8) == 0 && strstr(new_text, "before") == NULL);
    CHECK(strstr(old_text, "\nbefore 999\n") != NULL);
    CHECK(strstr(new_text, "\nafter 999\n") != NULL);
    free(old_text);
    free(new_text);
}

/* A FIFO with its read end open (returned, blocking) and its pipe made as small as allowed:
 * audit_open() on it succeeds and the writer blocks once the pipe is full. */
static int
fifo_reader(const char *path, size_t *capacity)
{
    int rd, size;

    unlink(path);
    if (mkfifo(path, 0600) != 0 || (rd = open(path, O_RDONLY | O_NONBLOCK)) < 0)
        abort();
    fcntl(rd, F_SETFL, 0);
    fcntl(rd, F_SETPIPE_SZ, 4096);
    size = fcntl(rd, F_GETPIPE_SZ);
    *capacity = size > 0 ? (size_t)size : 65536;
    return rd;
}

struct drain_arg {
    int   fd;
    char *text;
    size_t len;
};

/* Read the FIFO to EOF (audit_free() closes its write end). */
static void *
drain_thread(void *arg)
{
    struct drain_arg *d = arg;
    size_t            cap = 1 << 16;
    ssize_t           n;

    d->text = malloc(cap + 1);
    while ((n = read(d->fd, d->text + d->len, cap - d->len)) > 0) {
        d->len += (size_t)n;
        if (d->len == cap)
            d->text = realloc(d->text, (cap *= 2) + 1);
    }
    d->text[d->len] = '\0';
    return NULL;
}

static void
lines_queued_before_a_reopen_still_go_to_the_old_file(void)
{
    char             fifo[128], path[128], line[64], err[256] = "", *text;
    size_t           pipe_cap;
    struct drain_arg d = {0};
    struct audit    *a;
    pthread_t        tid;
    int              i, n_old;

    path_of(fifo, sizeof(fifo), "stalled.fifo");
    path_of(path, sizeof(path), "reopened.log");
    d.fd = fifo_reader(fifo, &pipe_cap);
    a = open_or_die(fifo, AUDIT_QUEUE_MAX);
    n_old = (int)(pipe_cap / 10) + 1000; /* more than the pipe holds: some stay queued */
    for (i = 0; i < n_old; i++) {
        snprintf(line, sizeof(line), "old %05d\n", i); /* 10 octets */
        CHECK_EQ_INT(write_str(a, line), 0);
    }
    CHECK_EQ_INT(audit_reopen(a, path, err, sizeof(err)), 0);
    CHECK_EQ_INT(write_str(a, "new 0\n"), 0);
    pthread_create(&tid, NULL, drain_thread, &d);
    audit_free(a);
    pthread_join(tid, NULL);
    close(d.fd);
    CHECK_EQ_INT(count_lines(d.text), n_old);
    CHECK(strstr(d.text, "new") == NULL);
    text = test_read_file(path);
    CHECK_MEM(text, strlen(text), "new 0\n");
    free(text);
    free(d.text);
}

static void
an_unwritable_path_fails_with_a_message_naming_it(void)
{
    char          missing[128], fresh[128], path[128], err[256] = "", *text;
    struct audit *a;
    struct stat   sb;

    a = audit_open(dir, err, sizeof(err)); /* a directory */
    CHECK(a == NULL);
    CHECK(strncmp(err, dir, strlen(dir)) == 0 && strstr(err, ": cannot open for appending: "));
    path_of(missing, sizeof(missing), "no/such/dir/audit.log");
    err[0] = '\0';
    CHECK(audit_open(missing, err, sizeof(err)) == NULL);
    CHECK(strncmp(err, missing, strlen(missing)) == 0 && strstr(err, "No such file"));
    err[0] = '\0';
    CHECK_EQ_INT(audit_check_path(missing, err, sizeof(err)), -1);
    CHECK(strncmp(err, missing, strlen(missing)) == 0);
    CHECK_EQ_INT(audit_check_path(dir, err, sizeof(err)), -1);
    path_of(fresh, sizeof(fresh), "checked.log");
    CHECK_EQ_INT(audit_check_path(fresh, err, sizeof(err)), 0);
    CHECK(stat(fresh, &sb) == 0 && S_ISREG(sb.st_mode) && (sb.st_mode & 0777) == 0640);

    /* a failed reopen keeps the old file */
    path_of(path, sizeof(path), "kept.log");
    a = open_or_die(path, AUDIT_QUEUE_MAX);
    err[0] = '\0';
    CHECK_EQ_INT(audit_reopen(a, missing, err, sizeof(err)), -1);
    CHECK(strncmp(err, missing, strlen(missing)) == 0);
    CHECK_EQ_INT(write_str(a, "still here\n"), 0);
    audit_free(a);
    text = test_read_file(path);
    CHECK_MEM(text, strlen(text), "still here\n");
    free(text);
}

/* Fill the FIFO's pipe through a second, non-blocking write end: the writer's first
 * write will block until the reader reads. The octets written, all '#'. */
static size_t
fifo_fill(const char *path)
{
    char    junk[4096];
    size_t  total = 0;
    ssize_t n;
    int     wr = open(path, O_WRONLY | O_NONBLOCK);

    if (wr < 0)
        abort();
    memset(junk, '#', sizeof(junk));
    while ((n = write(wr, junk, sizeof(junk))) > 0 || (n < 0 && errno == EINTR))
        total += n > 0 ? (size_t)n : 0;
    while ((n = write(wr, junk, 1)) > 0) /* the last octets of a partly filled page */
        total += (size_t)n;
    close(wr);
    return total;
}

static void
a_full_queue_drops_counts_and_logs_and_free_writes_what_was_queued(void)
{
    char               fifo[128], line[128], big[2000], *p;
    const char        *log;
    size_t             pipe_cap, filled, total = 0;
    struct drain_arg   d = {0};
    struct audit      *a;
    struct audit_stats st;
    pthread_t          tid;
    int                i, accepted = 0, dropped = 0, bad = 0, n;

    path_of(fifo, sizeof(fifo), "full.fifo");
    d.fd = fifo_reader(fifo, &pipe_cap);
    filled = fifo_fill(fifo);
    a = open_or_die(fifo, 1024);
    test_capture_start();
    for (i = 0; i < 50; i++) {
        snprintf(line, sizeof(line), "line %05d %088d\n", i, 0); /* 100 octets */
        if (write_str(a, line) == 0)
            accepted++;
        else
            dropped++;
    }
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\n';
    CHECK_EQ_INT(audit_write(a, big, sizeof(big)), -1); /* longer than the whole queue */
    log = test_capture_end();
    CHECK_EQ_INT(accepted, 10); /* 1024 / 100: the blocked writer frees no space */
    CHECK_EQ_INT(dropped, 40);
    CHECK(strstr(log, "\"event\":\"audit.drop\"") != NULL);
    CHECK(strstr(log, "\"dropped\":1,\"queue_max\":1024}") != NULL);
    CHECK(strstr(strstr(log, "audit.drop") + 1, "audit.drop") == NULL); /* once a second */
    audit_stats(a, &st);
    CHECK_EQ_INT(st.lines_dropped, 41);
    CHECK_EQ_INT(st.lines_written, 0);
    CHECK_EQ_INT(st.queued_bytes, 1000);

    pthread_create(&tid, NULL, drain_thread, &d);
    test_capture_start();
    audit_free(a); /* must write out what is queued although the reader is slow */
    log = test_capture_end();
    CHECK(strstr(log, "\"event\":\"audit.drop\",\"dropped\":40,") != NULL);
    pthread_join(tid, NULL);
    close(d.fd);
    CHECK_EQ_INT(d.len, filled + 1000);
    CHECK(filled > 0 && d.len > filled && d.text[filled - 1] == '#');
    for (p = d.text + filled; d.len > filled && *p; p += 100, total++)
        bad += sscanf(p, "line %d ", &n) != 1 || n != (int)total || p[99] != '\n';
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(total, 10);
    free(d.text);
}

static void
free_writes_everything_queued(void)
{
    char          path[128], line[64], *text;
    struct audit *a;
    int           i;

    path_of(path, sizeof(path), "free.log");
    a = open_or_die(path, AUDIT_QUEUE_MAX);
    for (i = 0; i < 5000; i++) {
        snprintf(line, sizeof(line), "%d\n", i);
        CHECK_EQ_INT(write_str(a, line), 0);
    }
    audit_free(a);
    text = test_read_file(path);
    CHECK_EQ_INT(count_lines(text), 5000);
    CHECK(strstr(text, "\n4999\n") != NULL);
    free(text);
    audit_free(NULL);
}

static void
a_failed_write_is_counted_and_logged_and_its_lines_are_lost(void)
{
    struct audit      *a;
    struct audit_stats st;
    const char        *log;

    if (access("/dev/full", W_OK) != 0)
        return; /* no /dev/full in this sandbox */
    a = open_or_die("/dev/full", AUDIT_QUEUE_MAX);
    test_capture_start();
    CHECK_EQ_INT(write_str(a, "one\n"), 0);
    wait_drained(a, &st);
    CHECK_EQ_INT(write_str(a, "two\n"), 0);
    wait_drained(a, &st);
    log = test_capture_end();
    CHECK_EQ_INT(st.write_errors, 2);
    CHECK_EQ_INT(st.lines_dropped, 2);
    CHECK_EQ_INT(st.lines_written, 0);
    /* logged once: the second error came within the second */
    CHECK(strstr(log, "\"event\":\"audit.error\"") != NULL);
    CHECK(strstr(log, "\"path\":\"/dev/full\",\"error\":\"No space left on device\","
                      "\"lost\":1}") != NULL);
    CHECK(strstr(strstr(log, "audit.error") + 1, "audit.error") == NULL);
    audit_free(a);
}

int
main(void)
{
    dir = test_tmpdir("audit");
    RUN(lines_from_several_threads_arrive_whole_once_and_in_order);
    RUN(after_a_rename_and_reopen_later_lines_go_to_the_new_file);
    RUN(lines_queued_before_a_reopen_still_go_to_the_old_file);
    RUN(an_unwritable_path_fails_with_a_message_naming_it);
    RUN(a_full_queue_drops_counts_and_logs_and_free_writes_what_was_queued);
    RUN(free_writes_everything_queued);
    RUN(a_failed_write_is_counted_and_logged_and_its_lines_are_lost);
    return check_summary();
}
