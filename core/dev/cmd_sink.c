/* core/dev/cmd_sink.c: the `sluice sink` process (see cmd_sink.h): options, listeners, one
 * thread per connection, TERM/INT. The output side shared by the connections (the --log
 * writer and the Maildir) is cmd_sink_output.c; the SMTP protocol is cmd_sink_smtp.c.
 *
 * The main thread accepts on every listener and waits for TERM/INT on a signalfd, so no
 * signal handler and no global is needed. On a signal it closes the listeners, shuts
 * down the open connections and waits for their threads for up to SINK_STOP_WAIT_MS. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "dev/cmd_sink.h"
#include "dev/cmd_sink_output.h"
#include "dev/cmd_sink_smtp.h"

#define SINK_MAX_LISTEN   16
#define SINK_DEFAULT_SIZE (50ul * 1024 * 1024)
#define SINK_STOP_WAIT_MS 2000
#define SINK_STACK_SIZE   (256 * 1024) /* buffers are on the heap; lines are 4 KiB */

struct sink_worker;

struct sink {
    struct sink_config  cfg;
    const char         *listen[SINK_MAX_LISTEN]; /* borrows argv */
    int                 lfd[SINK_MAX_LISTEN];    /* owns */
    int                 nlisten;
    const char         *cert, *key, *pid_file, *hostname, *log; /* borrow argv */
    char               *auth;      /* owns the --auth copy; cfg.auth_user/pass point in it */
    bool                discard;
    uint64_t            sessions;  /* the last session id; only the main thread uses it */
    pthread_mutex_t     lock;      /* guards conns and active */
    pthread_cond_t      idle;      /* signalled when a connection thread ends */
    struct sink_worker *conns;     /* borrows: each thread owns its worker */
    int                 active;
};

/* One connection thread. */
struct sink_worker {
    struct sink        *sk;        /* borrows: outlives the thread (see sink_stop) */
    struct sink_worker *next, *prev; /* in sk->conns, under sk->lock */
    int                 fd;        /* owns */
    uint64_t            id;
    char                peer[64];
};

static int
sink_mkdir(const char *dir, const char *sub)
{
    char path[4096];

    snprintf(path, sizeof(path), "%s%s", dir, sub);
    if (mkdir(path, 0755) < 0 && errno != EEXIST) {
        fprintf(stderr, "sink: mkdir %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* ---- options ------------------------------------------------------------------------- */

static const char sink_usage[] =
    "usage: sluice sink (--maildir DIR | --discard) [options]\n"
    "  --listen ADDR:PORT     listen here (repeatable; [::1]:2525; port 0 = ephemeral;\n"
    "                         default 127.0.0.1:2525)\n"
    "  --maildir DIR          write each accepted message to DIR/new (DIR/tmp, rename)\n"
    "  --no-fsync             do not fsync a message before its rename\n"
    "  --discard              accept messages and write nothing (benchmarks)\n"
    "  --hostname NAME        name in the greeting, EHLO reply and Maildir names\n"
    "  --tls-cert FILE --tls-key FILE   offer STARTTLS with this certificate\n"
    "  --implicit-tls         speak TLS from the first byte on every listener\n"
    "  --require-tls          refuse MAIL and AUTH before TLS\n"
    "  --auth USER:PASS       offer AUTH PLAIN LOGIN and require it before MAIL\n"
    "                         (repeatable: any of the pairs logs in)\n"
    "  --no-pipelining        do not advertise PIPELINING\n"
    "  --no-chunking          do not advertise CHUNKING (BDAT gets 502)\n"
    "  --max-size N           SIZE limit in octets (default 52428800)\n"
    "  --reject-rcpt S        550 5.1.1 for recipients containing S (case-sensitive;\n"
    "                         every match option is repeatable)\n"
    "  --tempfail-rcpt S      451 4.3.0 for recipients containing S\n"
    "  --reject-data S        554 5.6.0 for messages containing S\n"
    "  --tempfail-data S      451 4.3.0 for messages containing S\n"
    "  --drop-data S          close without a reply after the end of a message\n"
    "                         containing S\n"
    "  --delay-ms N           wait N ms before the reply to the end of data\n"
    "  --greeting-code N      greet with N (421 closes; other codes refuse all but QUIT)\n"
    "  --inject-before-tls    send \"250 injected\" in the same write as the STARTTLS 220\n"
    "  --log FILE             JSON lines: sink.open, sink.close, sink.message,\n"
    "                         sink.reject, sink.drop\n"
    "  --transcript DIR       DIR/conn-<session>.in (bytes received, after TLS),\n"
    "                         .out (bytes sent), .reads (length of each read; \"tls\")\n"
    "  --pid-file FILE        write the process id here once listening\n";

enum sink_opt {
    OPT_LISTEN = 256, OPT_MAILDIR, OPT_NO_FSYNC, OPT_DISCARD, OPT_HOSTNAME, OPT_CERT, OPT_KEY,
    OPT_IMPLICIT, OPT_REQUIRE_TLS, OPT_AUTH, OPT_NO_PIPELINING, OPT_NO_CHUNKING, OPT_MAX_SIZE,
    OPT_REJECT_RCPT, OPT_TEMPFAIL_RCPT, OPT_REJECT_DATA, OPT_TEMPFAIL_DATA, OPT_DROP_DATA,
    OPT_DELAY, OPT_GREETING, OPT_INJECT, OPT_LOG, OPT_TRANSCRIPT, OPT_PID_FILE, OPT_HELP,
};

static const struct option sink_options[] = {
    { "listen", 1, NULL, OPT_LISTEN },           { "maildir", 1, NULL, OPT_MAILDIR },
    { "no-fsync", 0, NULL, OPT_NO_FSYNC },       { "discard", 0, NULL, OPT_DISCARD },
    { "hostname", 1, NULL, OPT_HOSTNAME },       { "tls-cert", 1, NULL, OPT_CERT },
    { "tls-key", 1, NULL, OPT_KEY },             { "implicit-tls", 0, NULL, OPT_IMPLICIT },
    { "require-tls", 0, NULL, OPT_REQUIRE_TLS }, { "auth", 1, NULL, OPT_AUTH },
    { "no-pipelining", 0, NULL, OPT_NO_PIPELINING },
    { "no-chunking", 0, NULL, OPT_NO_CHUNKING }, { "max-size", 1, NULL, OPT_MAX_SIZE },
    { "reject-rcpt", 1, NULL, OPT_REJECT_RCPT }, { "tempfail-rcpt", 1, NULL, OPT_TEMPFAIL_RCPT },
    { "reject-data", 1, NULL, OPT_REJECT_DATA }, { "tempfail-data", 1, NULL, OPT_TEMPFAIL_DATA },
    { "drop-data", 1, NULL, OPT_DROP_DATA },     { "delay-ms", 1, NULL, OPT_DELAY },
    { "greeting-code", 1, NULL, OPT_GREETING },  { "inject-before-tls", 0, NULL, OPT_INJECT },
    { "log", 1, NULL, OPT_LOG },                 { "transcript", 1, NULL, OPT_TRANSCRIPT },
    { "pid-file", 1, NULL, OPT_PID_FILE },       { "help", 0, NULL, OPT_HELP },
    { NULL, 0, NULL, 0 },
};

static int
sink_add(const char **v, int *n, int max, const char *arg, const char *what)
{
    if (*n >= max || !*arg) {
        fprintf(stderr, "sink: %s: empty, or more than %d\n", what, max);
        return -1;
    }
    v[(*n)++] = arg;
    return 0;
}

static struct sink_match *
sink_match_for(struct sink_config *cfg, int opt)
{
    switch (opt) {
    case OPT_REJECT_RCPT:   return &cfg->reject_rcpt;
    case OPT_TEMPFAIL_RCPT: return &cfg->tempfail_rcpt;
    case OPT_REJECT_DATA:   return &cfg->reject_data;
    case OPT_TEMPFAIL_DATA: return &cfg->tempfail_data;
    case OPT_DROP_DATA:     return &cfg->drop_data;
    default:                return NULL;
    }
}

/* One option with an argument that needs checking. Returns 0 or -1 after a message. */
static int
sink_option_arg(struct sink *sk, int opt, const char *name, const char *arg)
{
    struct sink_config *cfg = &sk->cfg;
    struct sink_match  *m = sink_match_for(cfg, opt);
    unsigned long       v;
    char               *colon;

    if (m)
        return sink_add(m->v, &m->n, CMD_SINK_MAX_MATCH, arg, "match option");
    switch (opt) {
    case OPT_LISTEN:
        return sink_add(sk->listen, &sk->nlisten, SINK_MAX_LISTEN, arg, "--listen");
    case OPT_AUTH:
        if (!(colon = strchr(arg, ':')) || colon == arg)
            break;
        if (cfg->auth_user == NULL) {
            if (!(sk->auth = strndup(arg, (size_t)(colon - arg))))
                break;
            cfg->auth_user = sk->auth;
        }
        return sink_add(cfg->auth.v, &cfg->auth.n, CMD_SINK_MAX_MATCH, arg, "--auth");
    case OPT_MAX_SIZE:
        if (cmd_sink_parse_num(arg, 1ul << 40, &cfg->max_size) < 0 || cfg->max_size == 0)
            break;
        return 0;
    case OPT_DELAY:
        if (cmd_sink_parse_num(arg, 3600ul * 1000, &cfg->delay_ms) < 0)
            break;
        return 0;
    case OPT_GREETING:
        if (cmd_sink_parse_num(arg, 599, &v) < 0 || (v != 220 && v < 400))
            break;
        cfg->greeting = (int)v;
        return 0;
    }
    fprintf(stderr, "sink: bad argument for --%s: %s\n", name, arg);
    return -1;
}

static int
sink_check_options(struct sink *sk)
{
    struct sink_config *cfg = &sk->cfg;
    const char         *err = NULL;

    if (!cfg->maildir == !sk->discard)
        err = "give exactly one of --maildir DIR and --discard";
    else if (!sk->cert != !sk->key)
        err = "--tls-cert and --tls-key go together";
    else if ((cfg->implicit_tls || cfg->require_tls) && !sk->cert)
        err = "--implicit-tls and --require-tls need --tls-cert and --tls-key";
    if (err) {
        fprintf(stderr, "sink: %s\n%s", err, sink_usage);
        return -1;
    }
    if (sk->nlisten == 0)
        sk->listen[sk->nlisten++] = "127.0.0.1:2525";
    if (sk->hostname)
        snprintf(cfg->host, sizeof(cfg->host), "%s", sk->hostname);
    else if (gethostname(cfg->host, sizeof(cfg->host) - 1) < 0 || !cfg->host[0])
        snprintf(cfg->host, sizeof(cfg->host), "sink.localhost");
    return 0;
}

/* Returns 0 to run, 1 after --help, -1 on a usage error (message printed). */
static int
sink_parse_options(struct sink *sk, int argc, char **argv)
{
    struct sink_config *cfg = &sk->cfg;
    int                 opt, idx = 0;

    cfg->fsync = cfg->pipelining = cfg->chunking = true;
    cfg->max_size = SINK_DEFAULT_SIZE;
    cfg->greeting = 220;
    optind = 1;
    if (cmd_is_help(argc, argv)) { /* -h as well as --help */
        fputs(sink_usage, stdout);
        return 1;
    }
    while ((opt = getopt_long(argc, argv, "", sink_options, &idx)) != -1) {
        switch (opt) {
        case OPT_MAILDIR:       cfg->maildir = optarg; break;
        case OPT_NO_FSYNC:      cfg->fsync = false; break;
        case OPT_DISCARD:       sk->discard = true; break;
        case OPT_HOSTNAME:      sk->hostname = optarg; break;
        case OPT_CERT:          sk->cert = optarg; break;
        case OPT_KEY:           sk->key = optarg; break;
        case OPT_IMPLICIT:      cfg->implicit_tls = true; break;
        case OPT_REQUIRE_TLS:   cfg->require_tls = true; break;
        case OPT_NO_PIPELINING: cfg->pipelining = false; break;
        case OPT_NO_CHUNKING:   cfg->chunking = false; break;
        case OPT_INJECT:        cfg->inject = true; break;
        case OPT_TRANSCRIPT:    cfg->transcript = optarg; break;
        case OPT_PID_FILE:      sk->pid_file = optarg; break;
        case OPT_LOG:           sk->log = optarg; break;
        case OPT_HELP:          fputs(sink_usage, stdout); return 1;
        case '?':               fputs(sink_usage, stderr); return -1;
        default:
            if (sink_option_arg(sk, opt, sink_options[idx].name, optarg) < 0)
                return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "sink: unexpected argument: %s\n%s", argv[optind], sink_usage);
        return -1;
    }
    return sink_check_options(sk);
}

/* ---- start-up ------------------------------------------------------------------------ */

static SSL_CTX *
sink_tls_new(const char *cert, const char *key)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

    if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)
        || SSL_CTX_use_certificate_chain_file(ctx, cert) != 1
        || SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1
        || SSL_CTX_check_private_key(ctx) != 1) {
        fprintf(stderr, "sink: TLS certificate %s, key %s:\n", cert, key);
        ERR_print_errors_fp(stderr);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* "ADDR:PORT" or "[V6ADDR]:PORT" for a socket address. */
static void
sink_addr_str(const struct sockaddr_storage *ss, char *out, size_t n)
{
    char host[INET6_ADDRSTRLEN] = "?";

    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
        snprintf(out, n, "[%s]:%u", host, ntohs(a->sin6_port));
    } else {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
        snprintf(out, n, "%s:%u", host, ntohs(a->sin_port));
    }
}

static int
sink_listen(const char *spec)
{
    struct addrinfo hints = { .ai_flags = AI_PASSIVE | AI_NUMERICSERV,
                              .ai_socktype = SOCK_STREAM }, *ai = NULL;
    char            host[256];
    const char     *port, *close_br = strchr(spec, ']');
    int             fd = -1, one = 1, rc;

    if (spec[0] == '[' && close_br && close_br[1] == ':') {
        snprintf(host, sizeof(host), "%.*s", (int)(close_br - spec - 1), spec + 1);
        port = close_br + 2;
    } else if ((port = strrchr(spec, ':'))) {
        snprintf(host, sizeof(host), "%.*s", (int)(port - spec), spec);
        port++;
    }
    if (!port || !*port) {
        fprintf(stderr, "sink: --listen %s: want ADDR:PORT\n", spec);
        return -1;
    }
    if ((rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &ai)) != 0) {
        fprintf(stderr, "sink: --listen %s: %s\n", spec, gai_strerror(rc));
        return -1;
    }
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd >= 0)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (fd >= 0 && ai->ai_family == AF_INET6) /* [::] and 0.0.0.0 may both be given */
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 1024) < 0) {
        fprintf(stderr, "sink: --listen %s: %s\n", spec, strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    return fd;
}

/* Everything but accepting: TLS, directories, --log, listeners, --pid-file. */
static int
sink_start(struct sink *sk)
{
    struct sink_config *cfg = &sk->cfg;

    if (sk->cert && !(cfg->tls = sink_tls_new(sk->cert, sk->key)))
        return -1;
    if (cfg->maildir && (sink_mkdir(cfg->maildir, "") < 0 || sink_mkdir(cfg->maildir, "/tmp") < 0
                         || sink_mkdir(cfg->maildir, "/new") < 0
                         || sink_mkdir(cfg->maildir, "/cur") < 0))
        return -1;
    if (cfg->transcript && sink_mkdir(cfg->transcript, "") < 0)
        return -1;
    if (sk->log && (cfg->log_fd = open(sk->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
                                       0644)) < 0) {
        fprintf(stderr, "sink: --log %s: %s\n", sk->log, strerror(errno));
        return -1;
    }
    for (int i = 0; i < sk->nlisten; i++)
        if ((sk->lfd[i] = sink_listen(sk->listen[i])) < 0)
            return -1;
    if (sk->pid_file) {
        FILE *f = fopen(sk->pid_file, "w");
        if (!f || fprintf(f, "%d\n", (int)getpid()) < 0 || fclose(f) != 0) {
            fprintf(stderr, "sink: --pid-file %s: %s\n", sk->pid_file, strerror(errno));
            return -1;
        }
    }
    for (int i = 0; i < sk->nlisten; i++) {
        struct sockaddr_storage ss;
        socklen_t               len = sizeof(ss);
        char                    addr[96];
        getsockname(sk->lfd[i], (struct sockaddr *)&ss, &len);
        sink_addr_str(&ss, addr, sizeof(addr));
        fprintf(stderr, "sink listening on %s\n", addr); /* tests wait for this line */
    }
    return 0;
}

/* ---- connections --------------------------------------------------------------------- */

static void *
sink_worker_thread(void *arg)
{
    struct sink_worker *w = arg;
    struct sink        *sk = w->sk;

    cmd_sink_smtp_run(&sk->cfg, w->fd, w->id, w->peer);
    /* Free this thread's OpenSSL state now: once it leaves the list below, the process
     * may exit before the thread-exit destructor runs (LeakSanitizer saw it). */
    OPENSSL_thread_stop();
    pthread_mutex_lock(&sk->lock);
    if (w->prev)
        w->prev->next = w->next;
    else
        sk->conns = w->next;
    if (w->next)
        w->next->prev = w->prev;
    sk->active--;
    pthread_cond_signal(&sk->idle);
    pthread_mutex_unlock(&sk->lock);
    close(w->fd); /* after leaving the list: sink_stop never sees a closed fd */
    free(w);
    return NULL;
}

static void
sink_accept(struct sink *sk, int lfd, const pthread_attr_t *attr)
{
    struct sockaddr_storage ss;
    socklen_t               len = sizeof(ss);
    struct sink_worker     *w;
    pthread_t               tid;
    int                     fd, one = 1;

    fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC);
    if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            perror("sink: accept");
            nanosleep(&(struct timespec){ 0, 50 * 1000000 }, NULL); /* do not spin */
        }
        return;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (!(w = calloc(1, sizeof(*w)))) {
        close(fd);
        return;
    }
    *w = (struct sink_worker){ .sk = sk, .fd = fd, .id = ++sk->sessions };
    sink_addr_str(&ss, w->peer, sizeof(w->peer));
    pthread_mutex_lock(&sk->lock);
    w->next = sk->conns;
    if (sk->conns)
        sk->conns->prev = w;
    sk->conns = w;
    sk->active++;
    pthread_mutex_unlock(&sk->lock);
    if (pthread_create(&tid, attr, sink_worker_thread, w) != 0) {
        perror("sink: pthread_create");
        pthread_mutex_lock(&sk->lock);
        sk->conns = w->next; /* nothing was inserted since: the acceptor is this thread */
        if (w->next)
            w->next->prev = NULL;
        sk->active--;
        pthread_mutex_unlock(&sk->lock);
        close(fd);
        free(w);
    }
}

/* Accepts until TERM or INT arrives on sfd. */
static void
sink_serve(struct sink *sk, int sfd)
{
    struct pollfd  pfd[SINK_MAX_LISTEN + 1];
    pthread_attr_t attr;
    int            n = sk->nlisten;

    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, SINK_STACK_SIZE);
    for (int i = 0; i < n; i++)
        pfd[i] = (struct pollfd){ .fd = sk->lfd[i], .events = POLLIN };
    pfd[n] = (struct pollfd){ .fd = sfd, .events = POLLIN };
    for (;;) {
        if (poll(pfd, (nfds_t)n + 1, -1) < 0) {
            if (errno == EINTR)
                continue;
            perror("sink: poll");
            break;
        }
        if (pfd[n].revents) {
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof(si)) != (ssize_t)sizeof(si))
                perror("sink: signalfd");
            break;
        }
        for (int i = 0; i < n; i++)
            if (pfd[i].revents & POLLIN)
                sink_accept(sk, pfd[i].fd, &attr);
    }
    pthread_attr_destroy(&attr);
}

/* Closes the listeners, shuts the open connections down and waits for their threads.
 * Returns true when none is left, so that sk may be freed. */
static bool
sink_stop(struct sink *sk)
{
    struct timespec deadline;
    bool            idle;

    for (int i = 0; i < sk->nlisten; i++)
        if (sk->lfd[i] >= 0)
            close(sk->lfd[i]);
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += SINK_STOP_WAIT_MS / 1000;
    pthread_mutex_lock(&sk->lock);
    for (struct sink_worker *w = sk->conns; w; w = w->next)
        shutdown(w->fd, SHUT_RDWR); /* the thread's next read or write fails */
    while (sk->active > 0 && pthread_cond_timedwait(&sk->idle, &sk->lock, &deadline) == 0)
        ;
    idle = sk->active == 0;
    pthread_mutex_unlock(&sk->lock);
    return idle;
}

static void
sink_free(struct sink *sk)
{
    SSL_CTX_free(sk->cfg.tls);
    if (sk->cfg.log_fd >= 0)
        close(sk->cfg.log_fd);
    free(sk->auth);
    pthread_cond_destroy(&sk->idle);
    pthread_mutex_destroy(&sk->lock);
    free(sk);
}

int
cmd_sink_main(int argc, char **argv)
{
    struct sink *sk = calloc(1, sizeof(*sk));
    sigset_t     stop;
    int          rc, sfd;

    if (!sk)
        return 1;
    sk->cfg.log_fd = -1;
    for (int i = 0; i < SINK_MAX_LISTEN; i++)
        sk->lfd[i] = -1;
    pthread_mutex_init(&sk->lock, NULL);
    pthread_cond_init(&sk->idle, NULL);
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL); /* before any thread: they inherit the mask */
    sfd = signalfd(-1, &stop, SFD_CLOEXEC);
    rc = sink_parse_options(sk, argc, argv);
    if (rc != 0) {
        rc = rc > 0 ? 0 : 2;
    } else if (sfd < 0 || sink_start(sk) < 0) {
        if (sfd < 0)
            perror("sink: signalfd");
        rc = 1;
    } else {
        sink_serve(sk, sfd);
    }
    if (sk->pid_file && rc == 0)
        unlink(sk->pid_file);
    if (sink_stop(sk))
        sink_free(sk); /* else a thread is still in its session: leave sk to the exit */
    if (sfd >= 0)
        close(sfd); /* TERM/INT stay blocked: a second one during the exit must not kill us */
    return rc;
}
