/* core/util/audit.c: the audit file writer (see audit.h). Callers copy lines into a ring of
 * queued octets under one mutex; the writer thread takes everything queued (up to a
 * pending reopen's mark), writes it with one writev(2) outside the lock, then frees the
 * space. What a line says is lapi_log.c's business; when to reopen is the daemon's. */
#include "util/audit.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "util/log.h"
#include "util/privfile.h"

#define AUDIT_REPORT_EVERY 1.0 /* seconds between two audit.drop (or audit.error) lines */

/* Shared by the callers and the writer thread. Fields from mu on are guarded by mu, but
 * ring and cap, which are fixed at open, and the octets the thread has taken (the first n
 * from head) which only it reads until it gives them back. fd, path and error_reported
 * belong to the thread alone while it runs. */
struct audit {
    pthread_t       thread;
    int             fd;             /* owns; the file written now */
    char           *path;           /* owns; its name, for audit.error */
    double          error_reported; /* when audit.error was last logged (monotonic) */
    pthread_mutex_t mu;
    pthread_cond_t  wake;           /* to the thread: lines queued, a reopen, or stop */
    char           *ring;           /* owns; cap octets; len queued ones from head, wrapping */
    size_t          cap, head, len;
    uint64_t        queued;         /* octets ever queued */
    uint64_t        taken;          /* octets ever taken off the queue (written or lost) */
    int             next_fd;        /* owns; the reopened file, or -1 */
    char           *next_path;      /* owns; its name, or NULL */
    uint64_t        switch_at;      /* next_fd becomes fd when taken reaches this */
    bool            stop;           /* audit_free(): write what is queued, then exit */
    uint64_t        lines_written, lines_dropped, write_errors;
    uint64_t        drops_unreported; /* dropped since the last audit.drop line */
    double          drop_reported;    /* when audit.drop was last logged (monotonic) */
};

static double
audit_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
audit_open_fd(const char *path, char *err, size_t errlen)
{
    int fd = privfile_open(path, PRIVFILE_APPEND); /* root may have to: privfile.h */

    if (fd < 0)
        snprintf(err, errlen, "%s: cannot open for appending: %s", path, strerror(errno));
    return fd;
}

int
audit_check_path(const char *path, char *err, size_t errlen)
{
    int fd = audit_open_fd(path, err, errlen);

    if (fd < 0)
        return -1;
    close(fd);
    return 0;
}

/* Under mu: the drops to log now (0: none, or one was logged less than a second ago). */
static uint64_t
audit_drops_to_report(struct audit *a)
{
    uint64_t n = a->drops_unreported;
    double   now;

    if (n == 0)
        return 0;
    now = audit_now();
    if (now - a->drop_reported < AUDIT_REPORT_EVERY)
        return 0;
    a->drop_reported = now;
    a->drops_unreported = 0;
    return n;
}

/* {"event":"audit.drop","dropped":N,"queue_max":OCTETS}: N lines since the last one. */
static void
audit_report_drops(struct audit *a, uint64_t n)
{
    struct logline l;

    if (n == 0)
        return;
    log_begin(&l, LOG_WARNING, "audit.drop", 0);
    log_int(&l, "dropped", (long long)n);
    log_int(&l, "queue_max", (long long)a->cap);
    log_end(&l);
}

static uint64_t
audit_count_lines(const char *p, size_t n)
{
    const char *end = p + n;
    uint64_t    lines = 0;

    while (p < end && (p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        lines++;
        p++;
    }
    return lines;
}

/* '\n' in the n queued octets from off. The thread reads only octets it has taken and
 * not yet released, which no caller touches, so this needs no lock. */
static uint64_t
audit_ring_lines(const struct audit *a, size_t off, size_t n)
{
    size_t first = n < a->cap - off ? n : a->cap - off;

    return audit_count_lines(a->ring + off, first) + audit_count_lines(a->ring, n - first);
}

/* writev() until all is written or an error: the octets written; *error is the errno. */
static size_t
audit_writev_all(int fd, struct iovec *iov, int iovcnt, int *error)
{
    size_t  done = 0;
    ssize_t r;

    while (iovcnt > 0) {
        r = writev(fd, iov, iovcnt);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            *error = r < 0 ? errno : EIO; /* 0 for a non-empty write: no progress, give up */
            return done;
        }
        done += (size_t)r;
        for (; iovcnt > 0 && (size_t)r >= iov->iov_len; iov++, iovcnt--)
            r -= (ssize_t)iov->iov_len;
        if (iovcnt > 0) {
            iov->iov_base = (char *)iov->iov_base + r;
            iov->iov_len -= (size_t)r;
        }
    }
    return done;
}

/* {"event":"audit.error","path":...,"error":...,"lost":N}, at most once a second: a
 * broken disk fails every batch. Thread only. */
static void
audit_report_error(struct audit *a, int error, uint64_t lost)
{
    struct logline l;
    double         now = audit_now();

    if (now - a->error_reported < AUDIT_REPORT_EVERY)
        return;
    a->error_reported = now;
    log_begin(&l, LOG_ERR, "audit.error", 0);
    log_str(&l, "path", a->path);
    log_str(&l, "error", strerror(error));
    log_int(&l, "lost", (long long)lost);
    log_end(&l);
}

/* Write the n octets taken from the head (no lock held): false when a write failed. The
 * lines it did not finish are lost: retrying could stall the queue forever on a full or
 * broken disk, and the queue's bound would drop newer lines instead. */
static bool
audit_write_batch(struct audit *a, size_t head, size_t n, uint64_t *written, uint64_t *lost)
{
    struct iovec iov[2];
    int          iovcnt = 1, error = 0;
    size_t       first = n < a->cap - head ? n : a->cap - head, done;

    iov[0] = (struct iovec){a->ring + head, first};
    if (first < n)
        iov[iovcnt++] = (struct iovec){a->ring, n - first};
    done = audit_writev_all(a->fd, iov, iovcnt, &error);
    *written = audit_ring_lines(a, head, done);
    *lost = done < n ? audit_ring_lines(a, head, n) - *written : 0; /* a torn line: lost */
    if (done == n)
        return true;
    audit_report_error(a, error, *lost);
    return false;
}

static void *
audit_thread(void *arg)
{
    struct audit *a = arg;
    uint64_t      written, lost, drops;
    size_t        head, n;
    bool          ok;
    int           old_fd;
    char         *old_path;

    pthread_mutex_lock(&a->mu);
    for (;;) {
        if (a->next_fd >= 0 && a->taken == a->switch_at) {
            old_fd = a->fd, old_path = a->path;
            a->fd = a->next_fd, a->path = a->next_path;
            a->next_fd = -1, a->next_path = NULL;
            pthread_mutex_unlock(&a->mu);
            close(old_fd);
            free(old_path);
            pthread_mutex_lock(&a->mu);
            continue;
        }
        if (a->len == 0) {
            if (a->stop)
                break;
            pthread_cond_wait(&a->wake, &a->mu);
            continue;
        }
        head = a->head;
        n = a->len;
        if (a->next_fd >= 0 && a->switch_at - a->taken < n)
            n = (size_t)(a->switch_at - a->taken); /* the old file's lines first */
        pthread_mutex_unlock(&a->mu);
        ok = audit_write_batch(a, head, n, &written, &lost);
        pthread_mutex_lock(&a->mu);
        a->head = (a->head + n) % a->cap;
        a->len -= n;
        a->taken += n;
        a->lines_written += written;
        a->lines_dropped += lost;
        a->write_errors += !ok;
        drops = audit_drops_to_report(a);
        if (drops > 0) {
            pthread_mutex_unlock(&a->mu);
            audit_report_drops(a, drops);
            pthread_mutex_lock(&a->mu);
        }
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

/* Free what audit_open_sized() made; the thread is not running. */
static void
audit_destroy(struct audit *a)
{
    if (a->fd >= 0)
        close(a->fd);
    if (a->next_fd >= 0)
        close(a->next_fd);
    pthread_cond_destroy(&a->wake);
    pthread_mutex_destroy(&a->mu);
    free(a->next_path);
    free(a->path);
    free(a->ring);
    free(a);
}

struct audit *
audit_open_sized(const char *path, size_t queue_max, char *err, size_t errlen)
{
    struct audit *a = calloc(1, sizeof(*a));
    sigset_t      all, old;
    int           rc;

    if (a == NULL) {
        snprintf(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    a->fd = a->next_fd = -1;
    a->cap = queue_max;
    a->error_reported = a->drop_reported = -AUDIT_REPORT_EVERY;
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->wake, NULL);
    a->ring = malloc(queue_max);
    a->path = strdup(path);
    if (queue_max == 0 || a->ring == NULL || a->path == NULL) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    a->fd = audit_open_fd(path, err, errlen);
    if (a->fd < 0)
        goto fail;
    sigfillset(&all); /* signals are the main thread's: the writer takes none */
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&a->thread, NULL, audit_thread, a);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        snprintf(err, errlen, "%s: cannot start the writer thread: %s", path, strerror(rc));
        goto fail;
    }
    return a;
fail:
    audit_destroy(a);
    return NULL;
}

struct audit *
audit_open(const char *path, char *err, size_t errlen)
{
    return audit_open_sized(path, AUDIT_QUEUE_MAX, err, errlen);
}

int
audit_reopen(struct audit *a, const char *path, char *err, size_t errlen)
{
    char *copy = strdup(path), *old_path;
    int   fd, old_fd;

    if (copy == NULL) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    fd = audit_open_fd(path, err, errlen);
    if (fd < 0) {
        free(copy);
        return -1;
    }
    pthread_mutex_lock(&a->mu);
    old_fd = a->next_fd, old_path = a->next_path; /* a switch still pending: replaced */
    a->next_fd = fd, a->next_path = copy;
    a->switch_at = a->queued;
    pthread_cond_signal(&a->wake);
    pthread_mutex_unlock(&a->mu);
    if (old_fd >= 0)
        close(old_fd);
    free(old_path);
    return 0;
}

int
audit_write(struct audit *a, const char *line, size_t len)
{
    size_t   tail, first;
    uint64_t drops;

    assert(len > 0 && line[len - 1] == '\n' && memchr(line, '\n', len - 1) == NULL);
    pthread_mutex_lock(&a->mu);
    if (len > a->cap - a->len) {
        a->lines_dropped++;
        a->drops_unreported++;
        drops = audit_drops_to_report(a);
        pthread_mutex_unlock(&a->mu);
        audit_report_drops(a, drops);
        return -1;
    }
    tail = (a->head + a->len) % a->cap;
    first = len < a->cap - tail ? len : a->cap - tail;
    memcpy(a->ring + tail, line, first);
    memcpy(a->ring, line + first, len - first);
    a->len += len;
    a->queued += len;
    pthread_cond_signal(&a->wake);
    pthread_mutex_unlock(&a->mu);
    return 0;
}

void
audit_stats(struct audit *a, struct audit_stats *st)
{
    pthread_mutex_lock(&a->mu);
    *st = (struct audit_stats){
        .lines_written = a->lines_written,
        .lines_dropped = a->lines_dropped,
        .write_errors = a->write_errors,
        .queued_bytes = a->len,
    };
    pthread_mutex_unlock(&a->mu);
}

void
audit_free(struct audit *a)
{
    if (a == NULL)
        return;
    pthread_mutex_lock(&a->mu);
    a->stop = true;
    pthread_cond_signal(&a->wake);
    pthread_mutex_unlock(&a->mu);
    pthread_join(a->thread, NULL);
    audit_report_drops(a, a->drops_unreported); /* the last second's, not yet logged */
    audit_destroy(a);
}
