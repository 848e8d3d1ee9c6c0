/* core/dev/cmd_sink.h: `sluice sink`, a capturing upstream SMTP server. It receives what the
 * relay (or any client) sends and writes each accepted message to a Maildir byte for byte,
 * so integration tests and benchmarks have an independent witness on the upstream side.
 * It shares no code with the relay. cmd_sink.c is the process (options, listeners,
 * threads, signals) and the output side (--log, the Maildir); cmd_sink_smtp.c is the
 * protocol of one connection. Options: `sluice sink --help`. */
#ifndef SLUICE_CMD_SINK_H
#define SLUICE_CMD_SINK_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CMD_SINK_MAX_MATCH 32

struct sink_match {
    const char *v[CMD_SINK_MAX_MATCH]; /* borrows argv strings */
    int         n;
};

/* Filled from the command line before any connection thread exists; read-only after. */
struct sink_config {
    const char       *maildir;      /* NULL with --discard */
    const char       *transcript;   /* directory for conn-<session>.{in,out,reads}, or NULL */
    char              host[256];    /* --hostname or gethostname() */
    const char       *auth_user;    /* NULL: no AUTH offered */
    const char       *auth_pass;
    bool              fsync, implicit_tls, require_tls, pipelining, chunking, inject;
    unsigned long     max_size;     /* SIZE; octets */
    unsigned long     delay_ms;     /* before the reply at end of data */
    int               greeting;     /* 220, or the code of a refusing upstream */
    struct sink_match reject_rcpt, tempfail_rcpt, reject_data, tempfail_data, drop_data;
    int               log_fd;       /* O_APPEND file for --log, or -1 */
    SSL_CTX          *tls;          /* NULL without --tls-cert/--tls-key; shared by threads */
};

/* One --log line. Fields that are NULL (or 0 for msg/code) are left out, except file and
 * auth in transaction events, which are written as null. */
struct sink_record {
    const char  *event;    /* sink.open, sink.close, sink.message, sink.reject, sink.drop */
    uint64_t     session;
    const char  *peer;
    const char  *reason;   /* sink.close */
    bool         tls;
    bool         is_tx;    /* a transaction event: the fields below are written */
    unsigned     msg;      /* msg_in_session; also the message count in sink.close */
    const char  *file;     /* "new/<name>" or NULL */
    const char  *from;
    char *const *rcpt;
    int          nrcpt;
    uint64_t     size;
    const char  *user;
    int          code;     /* sink.reject */
};

/* Runs the sink in the foreground until SIGTERM or SIGINT. argv[0] is "sink"; options
 * are parsed with getopt_long (optind is reset). Prints "sink listening on ADDR:PORT" on
 * stderr per listener once every listener is bound and the pid file written.
 * Returns 0 after a signal, 1 when it could not start, 2 on a usage error. Leaves
 * SIGTERM/SIGINT blocked in the calling thread (so that a second one while the caller
 * exits does not kill it) and ignores SIGPIPE for the whole process. */
int cmd_sink_main(int argc, char **argv);

/* Appends one JSON line to cfg->log_fd with a single write(2); a no-op without --log.
 * Thread-safe. */
void cmd_sink_log(const struct sink_config *cfg, const struct sink_record *r);

/* Writes len octets to maildir/tmp/<name>, fsyncs unless --no-fsync, and renames it into
 * maildir/new/. name (namelen >= 256) receives the base name. Returns 0, or -1 after
 * printing the reason on stderr. Thread-safe. */
int cmd_sink_store(const struct sink_config *cfg, const char *msg, size_t len,
                   uint64_t session, unsigned n, char *name, size_t namelen);

/* write(2) all of buf, retrying on EINTR. Returns 0 or -1 with errno set. */
int cmd_sink_write_all(int fd, const void *buf, size_t n);

/* A decimal number with nothing around it, at most max. Returns 0 or -1. */
int cmd_sink_parse_num(const char *s, unsigned long max, unsigned long *out);

#endif
