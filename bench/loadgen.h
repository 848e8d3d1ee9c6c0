/* bench/loadgen.h: what the two halves of sluice-loadgen share: options, the run, a
 * client and its connection, statistics. loadgen_smtp.c is the SMTP client (I/O with
 * deadlines, connection set-up, one transaction); loadgen.c is options, threads, the
 * load loop, --idle and the summary. */
#ifndef SLUICE_LOADGEN_H
#define SLUICE_LOADGEN_H

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define NS_PER_SEC        1000000000LL
#define LOADGEN_IN_MAX    4096     /* reply input buffer; RFC 5321 4.5.3.1.5: lines <= 512 */
#define LOADGEN_CMD_MAX   8192     /* one command line, AUTH with a long XOAUTH2 token */
#define LOADGEN_SAMPLES   10000000 /* latency samples kept when only --duration bounds */
#define LOADGEN_LINE_LEN  78       /* body line before CRLF: RFC 5322 2.1.1 "SHOULD" */
#define LOADGEN_LINES     64       /* distinct body lines, cycled */
#define LOADGEN_HDR_MAX   2048     /* room for the generated header block */
#define LOADGEN_MAX_TO    1000
#define LOADGEN_MAX_BIND  64
#define LOADGEN_MAX_SIZE  (64u * 1024 * 1024)

enum tls_mode { TLS_NONE, TLS_IMPLICIT, TLS_STARTTLS };
enum auth_mode { AUTH_NONE, AUTH_PLAIN, AUTH_LOGIN, AUTH_XOAUTH2 };

/* How one message or connection attempt ended; everything but FAIL_4XX/5XX drops the
 * connection. */
enum fail {
    FAIL_NONE,
    FAIL_4XX,     /* transient reply: RSET and go on */
    FAIL_5XX,     /* permanent reply: RSET and go on */
    FAIL_CONNECT, /* socket, bind or TCP connect failed or timed out */
    FAIL_TLS,     /* handshake or record layer error */
    FAIL_TIMEOUT, /* no reply within --timeout */
    FAIL_CLOSED,  /* EOF or reset from the server */
    FAIL_PROTO,   /* malformed reply, unexpected code, missing capability */
    FAIL_COUNT,
};

enum phase {
    PHASE_CONNECT,  /* socket .. TCP established */
    PHASE_TLS,      /* TLS handshake, implicit or after STARTTLS */
    PHASE_GREETING, /* waiting for 220 */
    PHASE_EHLO,     /* first EHLO */
    PHASE_STARTTLS, /* STARTTLS command and reply plus the second EHLO, not the handshake */
    PHASE_AUTH,     /* AUTH exchange until 235 */
    PHASE_TX,       /* MAIL .. final reply to end of data, per message */
    PHASE_COUNT,
};

enum {
    CAP_PIPELINING = 1 << 0,
    CAP_CHUNKING = 1 << 1,
    CAP_STARTTLS = 1 << 2,
    CAP_SIZE = 1 << 3,
    CAP_AUTH_PLAIN = 1 << 4,
    CAP_AUTH_LOGIN = 1 << 5,
    CAP_AUTH_XOAUTH2 = 1 << 6,
};

/* Read-only once parsed; strings borrow argv. */
struct options {
    const char    *host;
    const char    *port;       /* NULL: 465 with implicit TLS, else 587 */
    const char    *servername; /* SNI and the name verified; NULL: host */
    const char    *cafile;
    const char    *ehlo;
    const char    *bind;       /* comma-separated source addresses, used in turn */
    const char    *user;
    const char    *password;
    const char    *token;
    const char    *from;
    const char    *to[LOADGEN_MAX_TO];
    size_t         nto;
    enum tls_mode  tls;
    enum auth_mode auth;
    size_t         size;
    unsigned       concurrency;
    uint64_t       messages;   /* 0: bounded by duration only */
    double         duration;   /* seconds; 0: bounded by messages only */
    double         warmup;
    double         timeout;
    uint64_t       per_conn;   /* 0: one connection per client for the whole run */
    unsigned       idle;
    bool           pipelining, bdat, resume, insecure, progress, json;
    bool           dsn;        /* RFC 3461 parameters on MAIL and every RCPT */
};

struct conn {
    int      fd;     /* -1 when closed */
    SSL     *ssl;    /* owns; NULL in clear text */
    char    *in;     /* owns; LOADGEN_IN_MAX bytes of reply input */
    size_t   in_off; /* next unread byte */
    size_t   in_len;
    unsigned caps;   /* CAP_* from the last EHLO */
    uint64_t sent;   /* transactions on this connection */
};

struct reply {
    int    code;
    size_t len;
    char   text[LOADGEN_IN_MAX]; /* text after "ddd-" of each line, '\n'-terminated */
};

/* Written only by its client thread; main() reads it after pthread_join. */
struct stats {
    uint64_t ok;
    uint64_t fail[FAIL_COUNT];
    int64_t  phase_ns[PHASE_COUNT];
    uint64_t phase_n[PHASE_COUNT];
    uint64_t handshakes;
    uint64_t resumed;
    uint64_t tickets; /* --resume: sessions kept (TLS 1.3 tickets, TLS 1.2 sessions) */
    uint64_t quit_ok; /* --idle: connections closed with 221 */
    int64_t  last;    /* when the last measured message ended; 0: none */
};

/* Shared by all threads. Plain fields are set before the threads start and then only read;
 * atomics are how threads talk to each other and to main(). */
struct run {
    const struct options   *opt;       /* borrows */
    SSL_CTX                *ssl_ctx;   /* owns; SSL_new from several threads is safe */
    struct sockaddr_storage addr;
    socklen_t               addrlen;
    struct sockaddr_storage bind[LOADGEN_MAX_BIND];
    socklen_t               bindlen[LOADGEN_MAX_BIND];
    size_t                  nbind;
    const char             *domain;    /* borrows opt->from: right side of Message-ID */
    char                   *lines;     /* owns; LOADGEN_LINES body lines of LOADGEN_LINE_LEN */
    uint64_t                run_id;    /* left part of every Message-ID */
    size_t                  cmd_max;   /* room for MAIL, all RCPTs and DATA/BDAT */
    size_t                  msg_max;   /* room for one message plus ".\r\n" */
    int64_t                 start;
    int64_t                 measure_start; /* start + warmup */
    _Atomic int64_t         hard_end;  /* no I/O waits past this; main moves it on stop */
    atomic_uint_fast64_t    issued;    /* measured messages begun, for --messages */
    atomic_uint_fast64_t    ok;        /* live counters for --progress */
    atomic_uint_fast64_t    failed;
    atomic_uint             running;   /* client threads in their main loop or setup */
    atomic_bool             hold_over; /* --idle: main is done holding; QUIT now */
    atomic_uint_fast64_t    next_bind;
    uint32_t               *samples;   /* owns; microseconds, filled through nsamples */
    atomic_size_t           nsamples;  /* may pass cap: samples past cap are dropped */
    size_t                  cap;
    atomic_bool             noted;     /* first_error is claimed by one thread, once */
    char                    first_error[256];
    struct conn            *idle;      /* owns; --idle connections, client i has i + k*C */
};

struct client {
    struct run  *run;     /* borrows */
    unsigned     id;
    pthread_t    thread;
    struct conn  conn;    /* the load connection; unused with --idle */
    SSL_SESSION *session; /* owns; --resume: the newest session, NULL once a 1.3 one is used */
    char        *cmd;     /* owns; cmd_max bytes of MAIL/RCPT/DATA commands */
    size_t      *cmd_end; /* owns; cmd_end[i] is the end of command line i */
    char        *buf;     /* owns; cmd_max bytes of room, then the message */
    char        *msg;     /* borrows buf + cmd_max, so a command can be put in front */
    uint64_t     seq;
    bool         measured; /* the current message is past warmup */
    struct stats st;
};

extern const char *const fail_names[FAIL_COUNT];

/* Set by SIGINT/SIGTERM and by main() when --duration is up; clients finish the message
 * in flight and stop. The one mutable global, written and read atomically. */
extern atomic_int stop_flag;

static inline int64_t
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * NS_PER_SEC + ts.tv_nsec;
}

static inline int64_t
secs_ns(double secs)
{
    return (int64_t)(secs * 1e9);
}

/* loadgen_smtp.c: connection set-up and teardown, one command with its reply, one
 * transaction. Each returns FAIL_NONE or how it failed; none waits past the deadline. */
int conn_init(struct conn *c);
void conn_close(struct conn *c, bool clean);
void conn_cleanup(struct conn *c);
bool is_reply_fail(enum fail f);
enum fail client_cmd(struct client *cl, struct conn *c, struct reply *r, int want,
                     const char *what, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
enum fail client_open(struct client *cl, struct conn *c);
/* SSL_CTX_sess_set_new_cb() of --resume: keeps s as the client's next session. */
int loadgen_keep_ticket_cb(SSL *ssl, SSL_SESSION *s);
void client_quit(struct client *cl, struct conn *c);
char *body_lines_new(void);
enum fail client_transaction(struct client *cl, struct conn *c);

#endif
