/* core/util/audit.h: the audit file writer (docs/audit.md). One append-only file, one writer
 * thread, one bounded queue of complete lines: workers queue a line and go on, the thread
 * writes batches of lines. Encoding the lines is lapi_log.c's; when to open and reopen
 * is the daemon's. Every function here is thread-safe. */
#ifndef SLUICE_AUDIT_H
#define SLUICE_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#define AUDIT_QUEUE_MAX (8u << 20) /* octets queued before lines are dropped */

struct audit;

struct audit_stats {
    uint64_t lines_written; /* reached the file */
    uint64_t lines_dropped; /* never will: the queue was full, or their write failed */
    uint64_t write_errors;  /* failed write(2) calls (each loses the rest of its batch) */
    size_t   queued_bytes;  /* in the queue now, including the batch being written */
};

/* Open path for appending (O_WRONLY|O_APPEND|O_CREAT|O_CLOEXEC, 0640) and start the
 * writer thread: the writer, or NULL and "PATH: cannot open for appending: REASON" in
 * err. The caller owns the writer and frees it with audit_free(). */
struct audit *audit_open(const char *path, char *err, size_t errlen);
/* audit_open() with a queue of queue_max octets instead of AUDIT_QUEUE_MAX (tests). */
struct audit *audit_open_sized(const char *path, size_t queue_max, char *err, size_t errlen);

/* 0 when path can be opened for appending (it is created if missing, then closed), or -1
 * and the same message as audit_open() in err: for `sluice check` and reload. */
int audit_check_path(const char *path, char *err, size_t errlen);

/* Open path (the same or a new one) and switch to it once the lines queued so far are
 * written to the old file, which is then closed: 0, or -1 with err filled and the old file
 * still in use. Does not wait for the switch. For SIGHUP after logrotate renamed the file.
 * If a previous switch is still pending, it is replaced: lines queued between the two
 * calls go to the old file. */
int audit_reopen(struct audit *a, const char *path, char *err, size_t errlen);

/* Queue one complete line (len > 0, ending in '\n', no other '\n'). Never waits for I/O,
 * only for the queue's mutex; line is copied. 0, or -1 when the queue is full: the line
 * is dropped, counted, and `audit.drop` logged (at most once a second). */
int audit_write(struct audit *a, const char *line, size_t len);

void audit_stats(struct audit *a, struct audit_stats *st);

/* Write everything queued, stop the thread, close the file and free a. NULL is a no-op.
 * Waits for the writes: call it at shutdown, not on a worker's loop. */
void audit_free(struct audit *a);

#endif
