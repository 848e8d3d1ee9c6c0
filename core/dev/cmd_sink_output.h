/* core/dev/cmd_sink_output.h: what the two halves of `sluice sink` share: its configuration
 * (filled by cmd_sink.c from the command line) and the output side the connections
 * (cmd_sink_smtp.c) write to: --log JSON lines and the Maildir. */
#ifndef SLUICE_CMD_SINK_OUTPUT_H
#define SLUICE_CMD_SINK_OUTPUT_H

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
    struct sink_match auth;         /* every --auth USER:PASS, any of which may log in */
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
