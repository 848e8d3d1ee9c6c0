/* bench/loadgen.c: sluice-loadgen, an SMTP submission load generator.
 *
 * Client threads run SMTP transactions against one server, each with its own connection,
 * and record every message's latency and the time spent in each phase; main() merges them
 * into one summary (a table on stderr, JSON on stdout). --idle opens many connections and
 * holds them, to measure server memory per idle connection.
 *
 * Sockets are non-blocking and every read and write waits in poll() with a deadline:
 * now + --timeout, never later than the run's hard end (--duration + --timeout, moved
 * earlier when the run stops), so no phase can hang the run.
 *
 * It knows nothing of sluice: any SMTP submission server will do. Starting the server and
 * sweeping parameters are left to bench/sweep.sh.
 */
#include "loadgen.h"

static const char *const phase_names[PHASE_COUNT] = {
    "connect", "tls", "greeting", "ehlo", "starttls", "auth", "transaction",
};

atomic_int stop_flag;

static void
on_signal(int sig)
{
    (void)sig;
    atomic_store(&stop_flag, 1);
}

static void
sleep_ns(int64_t ns)
{
    struct timespec ts = {.tv_sec = ns / NS_PER_SEC, .tv_nsec = ns % NS_PER_SEC};

    nanosleep(&ts, NULL);
}

/* ---- the load loop ---- */

/* Decides whether to begin another message and whether it counts. */
static bool
client_next(struct client *cl)
{
    struct run *run = cl->run;

    if (atomic_load(&stop_flag))
        return false;
    cl->measured = now_ns() >= run->measure_start;
    if (!cl->measured || run->opt->messages == 0)
        return true;
    return atomic_fetch_add(&run->issued, 1) < run->opt->messages;
}

static void
client_count(struct client *cl, enum fail f, int64_t t0)
{
    struct run *run = cl->run;
    int64_t     t = now_ns();

    if (!cl->measured)
        return;
    if (f == FAIL_NONE) {
        size_t  i = atomic_fetch_add(&run->nsamples, 1);
        int64_t us = (t - t0) / 1000;

        if (i < run->cap)
            run->samples[i] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
        cl->st.ok++;
        atomic_fetch_add(&run->ok, 1);
    } else {
        cl->st.fail[f]++;
        atomic_fetch_add(&run->failed, 1);
    }
    cl->st.last = t;
}

static void *
client_main(void *arg)
{
    struct client        *cl = arg;
    const struct options *o = cl->run->opt;
    struct conn          *c = &cl->conn;

    while (client_next(cl)) {
        int64_t      t0 = now_ns();
        enum fail    f = FAIL_NONE;
        struct reply r;

        if (c->fd < 0 && (f = client_open(cl, c)) != FAIL_NONE) {
            conn_close(c, false);
            client_count(cl, f, t0);
            sleep_ns(NS_PER_SEC / 20); /* a refusing server must not spin us */
            continue;
        }
        if (o->per_conn != 1)
            t0 = now_ns();
        f = client_transaction(cl, c);
        c->sent++;
        client_count(cl, f, t0);
        if (is_reply_fail(f) && client_cmd(cl, c, &r, 2, "RSET", "RSET") != FAIL_NONE)
            conn_close(c, false);
        else if (f != FAIL_NONE && !is_reply_fail(f))
            conn_close(c, false);
        if (c->fd >= 0 && o->per_conn != 0 && c->sent >= o->per_conn)
            client_quit(cl, c);
    }
    if (c->fd >= 0)
        client_quit(cl, c);
    atomic_fetch_sub(&cl->run->running, 1);
    return NULL;
}

/* ---- --idle: open, hold, QUIT ---- */

/* Client i opens connections i, i + C, i + 2C, ...; waits for main() to hold them; QUITs. */
static void *
idle_main(void *arg)
{
    struct client *cl = arg;
    struct run    *run = cl->run;
    unsigned       n = run->opt->idle, step = run->opt->concurrency;

    cl->measured = true;
    for (unsigned i = cl->id; i < n && !atomic_load(&stop_flag); i += step) {
        int64_t   t0 = now_ns();
        enum fail f = client_open(cl, &run->idle[i]);

        if (f != FAIL_NONE)
            conn_close(&run->idle[i], false);
        client_count(cl, f, t0);
    }
    atomic_fetch_sub(&run->running, 1);
    while (!atomic_load(&run->hold_over))
        sleep_ns(NS_PER_SEC / 50);
    for (unsigned i = cl->id; i < n; i += step)
        if (run->idle[i].fd >= 0)
            client_quit(cl, &run->idle[i]);
    return NULL;
}

/* An idle connection is readable only when the server closed it or said something
 * (421); a TLS 1.3 ticket is read and ignored. */
static bool
idle_is_alive(struct conn *c)
{
    char    buf[512];
    ssize_t n;

    if (c->ssl != NULL) {
        ERR_clear_error();
        n = SSL_read(c->ssl, buf, sizeof buf);
        return n <= 0 && SSL_get_error(c->ssl, (int)n) == SSL_ERROR_WANT_READ;
    }
    n = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

/* Holds every open connection until hold_end or a signal; returns how many the server
 * dropped meanwhile. */
static uint64_t
idle_hold(struct run *run, int64_t hold_end)
{
    unsigned       n = run->opt->idle;
    struct pollfd *p = calloc(n, sizeof *p);
    uint64_t       dropped = 0, open = 0;
    int64_t        tick = now_ns() + NS_PER_SEC;

    for (unsigned i = 0; p != NULL && i < n; i++) {
        p[i].fd = run->idle[i].fd; /* poll skips the -1 of failed ones */
        p[i].events = POLLIN;
        open += p[i].fd >= 0;
    }
    while (p != NULL && !atomic_load(&stop_flag) && now_ns() < hold_end) {
        int64_t left = hold_end - now_ns();

        if (poll(p, n, left > NS_PER_SEC ? 1000 : (int)(left / 1000000) + 1) > 0) {
            for (unsigned i = 0; i < n; i++) {
                if (p[i].revents == 0 || idle_is_alive(&run->idle[i]))
                    continue;
                conn_close(&run->idle[i], false);
                p[i].fd = -1;
                dropped++;
            }
        }
        if (run->opt->progress && now_ns() >= tick) {
            fprintf(stderr, "[idle] holding: %llu open, %llu dropped\n",
                    (unsigned long long)(open - dropped), (unsigned long long)dropped);
            tick += NS_PER_SEC;
        }
    }
    free(p);
    return dropped;
}

/* ---- options ---- */

static void
usage(FILE *f)
{
    fputs("usage: sluice-loadgen [options]  (--messages N and/or --duration S required)\n"
          "  --host H              server address (127.0.0.1)\n"
          "  --port P              server port (465 with --tls implicit, else 587)\n"
          "  --tls MODE            none|implicit|starttls (none)\n"
          "  --auth MECH           none|plain|login|xoauth2 (none)\n"
          "  --user U --password P --token T   credentials; --token for xoauth2\n"
          "  --from ADDR --to ADDR sender; recipients, repeatable (one default each)\n"
          "  --size BYTES          message size with headers (2048)\n"
          "  --concurrency N, -c   client threads (1)\n"
          "  --messages N, -n      measured messages in all\n"
          "  --duration S, -d      measured seconds; --idle: how long to hold\n"
          "  --warmup S            run unmeasured for S seconds first (0)\n"
          "  --per-conn M          messages per connection; 0 = reuse one (0)\n"
          "  --pipelining          RFC 2920 when the server offers it\n"
          "  --bdat                RFC 3030 BDAT when the server offers CHUNKING\n"
          "  --dsn                 RET, ENVID on MAIL, NOTIFY, ORCPT on RCPT (RFC 3461)\n"
          "  --resume              resume TLS sessions across a client's connections\n"
          "                        (each TLS 1.3 ticket once, the newest one)\n"
          "  --cafile F            verify the server certificate against F\n"
          "  --insecure            do not verify, and say nothing about it\n"
          "  --servername N        SNI and verified name (--host)\n"
          "  --ehlo NAME           EHLO argument (loadgen.localhost)\n"
          "  --bind A[,A...]       source addresses, used in turn\n"
          "  --timeout S           per read/write/connect (30)\n"
          "  --idle N              open N connections, hold --duration, QUIT\n"
          "  --progress            one line per second on stderr\n"
          "  --json                summary as one JSON object on stdout\n",
          f);
}

static int
parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char              *end;
    unsigned long long v;

    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || *s == '-' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int
parse_secs(const char *s, double *out)
{
    char  *end;
    double v = strtod(s, &end);

    if (end == s || *end != '\0' || !(v >= 0 && v <= 1e6))
        return -1;
    *out = v;
    return 0;
}

static int
parse_enum(const char *s, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

enum {
    OPT_HOST = 256, OPT_PORT, OPT_TLS, OPT_AUTH, OPT_USER, OPT_PASSWORD, OPT_TOKEN, OPT_FROM,
    OPT_TO, OPT_SIZE, OPT_PER_CONN, OPT_PIPELINING, OPT_BDAT, OPT_RESUME, OPT_INSECURE,
    OPT_DSN, OPT_CAFILE, OPT_SERVERNAME, OPT_EHLO, OPT_BIND, OPT_PROGRESS, OPT_JSON, OPT_WARMUP,
    OPT_TIMEOUT, OPT_IDLE,
};

static const struct option long_options[] = {
    {"host", 1, NULL, OPT_HOST},         {"port", 1, NULL, OPT_PORT},
    {"tls", 1, NULL, OPT_TLS},           {"auth", 1, NULL, OPT_AUTH},
    {"user", 1, NULL, OPT_USER},         {"password", 1, NULL, OPT_PASSWORD},
    {"token", 1, NULL, OPT_TOKEN},       {"from", 1, NULL, OPT_FROM},
    {"to", 1, NULL, OPT_TO},             {"size", 1, NULL, OPT_SIZE},
    {"concurrency", 1, NULL, 'c'},       {"messages", 1, NULL, 'n'},
    {"duration", 1, NULL, 'd'},          {"per-conn", 1, NULL, OPT_PER_CONN},
    {"pipelining", 0, NULL, OPT_PIPELINING}, {"bdat", 0, NULL, OPT_BDAT},
    {"resume", 0, NULL, OPT_RESUME},     {"insecure", 0, NULL, OPT_INSECURE},
    {"cafile", 1, NULL, OPT_CAFILE},     {"servername", 1, NULL, OPT_SERVERNAME},
    {"ehlo", 1, NULL, OPT_EHLO},         {"bind", 1, NULL, OPT_BIND},
    {"progress", 0, NULL, OPT_PROGRESS}, {"json", 0, NULL, OPT_JSON},
    {"warmup", 1, NULL, OPT_WARMUP},     {"timeout", 1, NULL, OPT_TIMEOUT},
    {"idle", 1, NULL, OPT_IDLE},         {"help", 0, NULL, 'h'},
    {"dsn", 0, NULL, OPT_DSN},
    {NULL, 0, NULL, 0},
};

/* Options that take a number or a name; -1 on a bad value. */
static int
option_value(struct options *o, int opt, const char *arg)
{
    static const char *const tls_names[] = {"none", "implicit", "starttls"};
    static const char *const auth_names[] = {"none", "plain", "login", "xoauth2"};
    uint64_t                 v = 0;
    int                      rc = 0;

    switch (opt) {
    case OPT_TLS:
        if ((rc = parse_enum(arg, tls_names, 3)) >= 0)
            o->tls = (enum tls_mode)rc;
        break;
    case OPT_AUTH:
        if ((rc = parse_enum(arg, auth_names, 4)) >= 0)
            o->auth = (enum auth_mode)rc;
        break;
    case OPT_SIZE:
        rc = parse_u64(arg, 1, LOADGEN_MAX_SIZE, &v);
        o->size = (size_t)v;
        break;
    case 'c':
        rc = parse_u64(arg, 1, 4096, &v);
        o->concurrency = (unsigned)v;
        break;
    case 'n':
        rc = parse_u64(arg, 1, UINT32_MAX, &o->messages);
        break;
    case OPT_PER_CONN:
        rc = parse_u64(arg, 0, UINT64_MAX, &o->per_conn);
        break;
    case OPT_IDLE:
        rc = parse_u64(arg, 1, 1000000, &v);
        o->idle = (unsigned)v;
        break;
    case 'd':
        return parse_secs(arg, &o->duration);
    case OPT_WARMUP:
        return parse_secs(arg, &o->warmup);
    case OPT_TIMEOUT:
        return parse_secs(arg, &o->timeout);
    }
    return rc < 0 ? -1 : 0;
}

static int
option_set(struct options *o, int opt, const char *arg)
{
    switch (opt) {
    case OPT_HOST: o->host = arg; break;
    case OPT_PORT: o->port = arg; break;
    case OPT_USER: o->user = arg; break;
    case OPT_PASSWORD: o->password = arg; break;
    case OPT_TOKEN: o->token = arg; break;
    case OPT_FROM: o->from = arg; break;
    case OPT_CAFILE: o->cafile = arg; break;
    case OPT_SERVERNAME: o->servername = arg; break;
    case OPT_EHLO: o->ehlo = arg; break;
    case OPT_BIND: o->bind = arg; break;
    case OPT_PIPELINING: o->pipelining = true; break;
    case OPT_BDAT: o->bdat = true; break;
    case OPT_RESUME: o->resume = true; break;
    case OPT_DSN: o->dsn = true; break;
    case OPT_INSECURE: o->insecure = true; break;
    case OPT_PROGRESS: o->progress = true; break;
    case OPT_JSON: o->json = true; break;
    case OPT_TO:
        if (o->nto == LOADGEN_MAX_TO)
            return -1;
        o->to[o->nto++] = arg;
        break;
    default:
        return option_value(o, opt, arg);
    }
    return 0;
}

static const char *
options_check(struct options *o)
{
    if (o->nto == 0)
        o->to[o->nto++] = "sink@example.test";
    if (o->port == NULL)
        o->port = o->tls == TLS_IMPLICIT ? "465" : "587";
    if (o->messages == 0 && o->duration <= 0)
        return "refusing to run unbounded: give --messages and/or --duration";
    if (o->idle > 0 && o->duration <= 0)
        return "--idle needs --duration (how long to hold the connections)";
    if (o->timeout <= 0)
        return "--timeout must be positive";
    if (o->auth != AUTH_NONE && o->user == NULL)
        return "--auth needs --user";
    if ((o->auth == AUTH_PLAIN || o->auth == AUTH_LOGIN) && o->password == NULL)
        return "--auth plain/login needs --password";
    if (o->auth == AUTH_XOAUTH2 && o->token == NULL)
        return "--auth xoauth2 needs --token";
    if (strlen(o->user ? o->user : "") + strlen(o->password ? o->password : "") > 1024 ||
        strlen(o->token ? o->token : "") > 3000)
        return "credentials too long";
    if (strlen(o->from) > 256 || strlen(o->ehlo) > 255)
        return "--from or --ehlo too long";
    for (size_t i = 0; i < o->nto; i++)
        if (strlen(o->to[i]) > 256)
            return "--to too long";
    return NULL;
}

static int
options_parse(struct options *o, int argc, char **argv)
{
    const char *err;
    int         opt, idx = -1;

    *o = (struct options){
        .host = "127.0.0.1", .ehlo = "loadgen.localhost", .from = "loadgen@example.test",
        .size = 2048, .concurrency = 1, .timeout = 30,
    };
    while ((opt = getopt_long(argc, argv, "c:n:d:h", long_options, &idx)) != -1) {
        if (opt == 'h') {
            usage(stdout);
            exit(0);
        }
        if (opt == '?' || option_set(o, opt, optarg) != 0) {
            if (opt != '?')
                fprintf(stderr, "sluice-loadgen: bad value for %s%s: %s\n", idx >= 0 ? "--" : "-",
                        idx >= 0 ? long_options[idx].name : (char[]){(char)opt, 0}, optarg);
            fputs("sluice-loadgen: --help lists the options\n", stderr);
            return -1;
        }
        idx = -1;
    }
    if (optind < argc || (err = options_check(o)) != NULL) {
        fprintf(stderr, "sluice-loadgen: %s\n", optind < argc ? "unexpected argument" : err);
        return -1;
    }
    return 0;
}

/* ---- run setup ---- */

static int
resolve(const char *host, const char *port, struct sockaddr_storage *ss, socklen_t *len)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
    int             rc = getaddrinfo(host, port, &hints, &ai);

    if (rc != 0) {
        fprintf(stderr, "sluice-loadgen: %s port %s: %s\n", host, port ? port : "0",
                gai_strerror(rc));
        return -1;
    }
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    *len = ai->ai_addrlen;
    freeaddrinfo(ai);
    return 0;
}

static int
run_binds(struct run *run, const char *list)
{
    char  *copy = strdup(list), *save = NULL;
    int    rc = 0;

    for (char *a = strtok_r(copy, ",", &save); a != NULL; a = strtok_r(NULL, ",", &save)) {
        if (run->nbind == LOADGEN_MAX_BIND ||
            resolve(a, NULL, &run->bind[run->nbind], &run->bindlen[run->nbind]) != 0) {
            rc = -1;
            break;
        }
        run->nbind++;
    }
    free(copy);
    return rc;
}

static int
raise_nofile(rlim_t need)
{
    struct rlimit rl;

    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur >= need)
        return 0;
    rl.rlim_cur = need;
    if (rl.rlim_max < need)
        rl.rlim_max = need; /* works as root */
    if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
        return 0;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur >= need)
        return 0;
    fprintf(stderr, "sluice-loadgen: need %llu file descriptors, RLIMIT_NOFILE allows %llu\n",
            (unsigned long long)need, (unsigned long long)rl.rlim_max);
    return -1;
}

static SSL_CTX *
ssl_ctx_new(const struct options *o)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    if (ctx == NULL)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    if (o->cafile != NULL && !o->insecure) {
        if (SSL_CTX_load_verify_locations(ctx, o->cafile, NULL) != 1) {
            fprintf(stderr, "sluice-loadgen: cannot load --cafile %s\n", o->cafile);
            SSL_CTX_free(ctx);
            return NULL;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    } else if (!o->insecure) {
        fputs("sluice-loadgen: note: no --cafile, server certificate not verified\n", stderr);
    }
    if (o->resume) { /* sessions reach loadgen_keep_ticket_cb(), no cache in between */
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT |
                                                SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(ctx, loadgen_keep_ticket_cb);
    }
    return ctx;
}

static int
run_init(struct run *run, const struct options *o)
{
    const char *at = strrchr(o->from, '@');
    size_t      need = o->idle > 0 ? o->idle : 0;

    run->opt = o;
    run->domain = at != NULL && at[1] != '\0' ? at + 1 : "localhost";
    run->run_id = ((uint64_t)time(NULL) << 20) ^ ((uint64_t)getpid() << 1) ^ (uint64_t)now_ns();
    run->cmd_max = 128 + strlen(o->from);
    for (size_t i = 0; i < o->nto; i++)
        run->cmd_max += 2 * strlen(o->to[i]) + 64; /* --dsn: NOTIFY, ORCPT */
    run->msg_max = o->size + LOADGEN_HDR_MAX + 3;
    run->cap = o->idle > 0 ? o->idle : o->messages > 0 ? o->messages : LOADGEN_SAMPLES;
    run->cap = run->cap < LOADGEN_SAMPLES ? run->cap : LOADGEN_SAMPLES;
    run->samples = malloc(run->cap * sizeof *run->samples);
    run->lines = body_lines_new();
    if (run->samples == NULL || run->lines == NULL)
        return -1;
    if (resolve(o->host, o->port, &run->addr, &run->addrlen) != 0)
        return -1;
    if (o->bind != NULL && run_binds(run, o->bind) != 0)
        return -1;
    if (raise_nofile((rlim_t)(need + o->concurrency + 64)) != 0)
        return -1;
    if (o->tls != TLS_NONE && (run->ssl_ctx = ssl_ctx_new(o)) == NULL)
        return -1;
    return 0;
}

static void
run_cleanup(struct run *run)
{
    for (unsigned i = 0; run->idle != NULL && i < run->opt->idle; i++)
        conn_cleanup(&run->idle[i]);
    free(run->idle);
    free(run->samples);
    free(run->lines);
    SSL_CTX_free(run->ssl_ctx);
}

static int
client_init(struct client *cl, struct run *run, unsigned id)
{
    memset(cl, 0, sizeof *cl);
    cl->run = run;
    cl->id = id;
    cl->cmd = malloc(run->cmd_max);
    cl->cmd_end = calloc(run->opt->nto + 2, sizeof *cl->cmd_end);
    cl->buf = malloc(run->cmd_max + run->msg_max);
    cl->msg = cl->buf + run->cmd_max;
    if (conn_init(&cl->conn) != 0 || cl->cmd == NULL || cl->cmd_end == NULL || cl->buf == NULL)
        return -1;
    return 0;
}

static void
client_cleanup(struct client *cl)
{
    conn_cleanup(&cl->conn);
    SSL_SESSION_free(cl->session);
    free(cl->cmd);
    free(cl->cmd_end);
    free(cl->buf);
}

/* ---- summary ---- */

static int
cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted microsecond samples, in ms; permille: 500 = p50. */
static double
percentile_ms(const uint32_t *s, size_t n, unsigned permille)
{
    size_t rank = (permille * n + 999) / 1000;

    if (n == 0)
        return 0;
    return s[rank == 0 ? 0 : rank - 1] / 1000.0;
}

struct summary {
    struct stats st;          /* all clients added up */
    uint64_t     failed;
    size_t       nsamples;    /* kept and sorted */
    size_t       dropped;     /* samples past the cap */
    double       elapsed;     /* measured seconds */
    double       pct[5];      /* p50, p90, p99, p99.9, max in ms */
    uint64_t     idle_dropped; /* --idle: dropped by the server while held */
    double       setup_secs;   /* --idle: time to open all */
    double       cpu_user;     /* this process's CPU seconds (getrusage), warmup included */
    double       cpu_sys;
};

static void
summary_fill(struct summary *sm, struct run *run, const struct client *cls, int64_t end)
{
    static const unsigned pcts[5] = {500, 900, 990, 999, 1000};
    size_t                taken = atomic_load(&run->nsamples);
    int64_t               last = 0;
    struct rusage         ru;

    for (unsigned i = 0; i < run->opt->concurrency; i++) {
        const struct stats *s = &cls[i].st;

        sm->st.ok += s->ok;
        for (int f = 0; f < FAIL_COUNT; f++) {
            sm->st.fail[f] += s->fail[f];
            sm->failed += s->fail[f];
        }
        for (int p = 0; p < PHASE_COUNT; p++) {
            sm->st.phase_ns[p] += s->phase_ns[p];
            sm->st.phase_n[p] += s->phase_n[p];
        }
        sm->st.handshakes += s->handshakes;
        sm->st.resumed += s->resumed;
        sm->st.tickets += s->tickets;
        sm->st.quit_ok += s->quit_ok;
        last = s->last > last ? s->last : last;
    }
    sm->nsamples = taken < run->cap ? taken : run->cap;
    sm->dropped = taken - sm->nsamples;
    qsort(run->samples, sm->nsamples, sizeof *run->samples, cmp_u32);
    for (int i = 0; i < 5; i++)
        sm->pct[i] = percentile_ms(run->samples, sm->nsamples, pcts[i]);
    end = last > 0 ? last : end;
    sm->elapsed = end > run->measure_start ? (end - run->measure_start) / 1e9 : 0;
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        sm->cpu_user = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6;
        sm->cpu_sys = ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    }
}

static double
phase_mean_ms(const struct stats *st, int p)
{
    return st->phase_n[p] > 0 ? st->phase_ns[p] / 1e6 / st->phase_n[p] : 0;
}

static void
summary_print(const struct summary *sm, const struct run *run)
{
    const struct options *o = run->opt;
    const char           *tls[] = {"none", "implicit", "starttls"};
    const char           *auth[] = {"none", "plain", "login", "xoauth2"};

    fprintf(stderr, "\nsluice-loadgen %s:%s tls=%s auth=%s concurrency=%u per-conn=%llu "
            "size=%zu rcpts=%zu%s%s%s\n", o->host, o->port, tls[o->tls], auth[o->auth],
            o->concurrency, (unsigned long long)o->per_conn, o->size, o->nto,
            o->pipelining ? " pipelining" : "", o->bdat ? " bdat" : "",
            o->resume ? " resume" : "");
    if (o->idle > 0)
        fprintf(stderr, "  idle          %u requested, %llu opened in %.3f s, %llu dropped "
                "while held %.1f s, %llu closed with QUIT\n", o->idle,
                (unsigned long long)sm->st.ok, sm->setup_secs,
                (unsigned long long)sm->idle_dropped, o->duration,
                (unsigned long long)sm->st.quit_ok);
    else
        fprintf(stderr, "  messages      %llu ok, %llu failed\n  elapsed       %.3f s\n"
                "  throughput    %.1f msg/s\n", (unsigned long long)sm->st.ok,
                (unsigned long long)sm->failed, sm->elapsed,
                sm->elapsed > 0 ? sm->st.ok / sm->elapsed : 0);
    fprintf(stderr, "  failures     ");
    for (int f = 1; f < FAIL_COUNT; f++)
        fprintf(stderr, " %s %llu", fail_names[f], (unsigned long long)sm->st.fail[f]);
    fprintf(stderr, "\n  %s  p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  "
            "(%zu samples%s)\n", o->idle > 0 ? "setup ms   " : "latency ms  ", sm->pct[0],
            sm->pct[1], sm->pct[2], sm->pct[3], sm->pct[4], sm->nsamples,
            sm->dropped > 0 ? ", cap reached" : "");
    fprintf(stderr, "  phase         mean ms      count\n");
    for (int p = 0; p < PHASE_COUNT; p++)
        if (sm->st.phase_n[p] > 0)
            fprintf(stderr, "    %-11s %9.3f %10llu\n", phase_names[p],
                    phase_mean_ms(&sm->st, p), (unsigned long long)sm->st.phase_n[p]);
    if (o->tls != TLS_NONE)
        fprintf(stderr, "  tls           %llu handshakes, %llu resumed, %llu tickets\n",
                (unsigned long long)sm->st.handshakes, (unsigned long long)sm->st.resumed,
                (unsigned long long)sm->st.tickets);
    fprintf(stderr, "  cpu           %.3f s user, %.3f s system (this process, whole run)\n",
            sm->cpu_user, sm->cpu_sys);
    if (run->first_error[0] != '\0')
        fprintf(stderr, "  first error   %s\n", run->first_error);
}

static void
json_str(const char *s)
{
    putchar('"');
    for (; *s != '\0'; s++) {
        if (*s == '"' || *s == '\\')
            printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            printf("\\u%04x", (unsigned char)*s);
        else
            putchar(*s);
    }
    putchar('"');
}

static void
summary_json(const struct summary *sm, const struct run *run)
{
    const struct options *o = run->opt;
    const char           *tls[] = {"none", "implicit", "starttls"};
    const char           *auth[] = {"none", "plain", "login", "xoauth2"};

    printf("{\"mode\":\"%s\",\"host\":", o->idle > 0 ? "idle" : "load");
    json_str(o->host);
    printf(",\"port\":");
    json_str(o->port);
    printf(",\"tls\":\"%s\",\"auth\":\"%s\",\"concurrency\":%u,\"per_conn\":%llu,"
           "\"size\":%zu,\"rcpts\":%zu,\"pipelining\":%s,\"bdat\":%s,\"resume\":%s,",
           tls[o->tls], auth[o->auth], o->concurrency, (unsigned long long)o->per_conn,
           o->size, o->nto, o->pipelining ? "true" : "false", o->bdat ? "true" : "false",
           o->resume ? "true" : "false");
    if (o->idle > 0)
        printf("\"requested\":%u,\"open\":%llu,\"setup_s\":%.3f,\"held_s\":%.3f,"
               "\"dropped\":%llu,\"quit_ok\":%llu,", o->idle, (unsigned long long)sm->st.ok,
               sm->setup_secs, o->duration, (unsigned long long)sm->idle_dropped,
               (unsigned long long)sm->st.quit_ok);
    printf("\"ok\":%llu,\"failed\":%llu,\"failures\":{", (unsigned long long)sm->st.ok,
           (unsigned long long)sm->failed);
    for (int f = 1; f < FAIL_COUNT; f++)
        printf("%s\"%s\":%llu", f > 1 ? "," : "", fail_names[f],
               (unsigned long long)sm->st.fail[f]);
    printf("},\"elapsed_s\":%.3f,\"msg_per_s\":%.1f,\"latency_ms\":{\"p50\":%.3f,\"p90\":%.3f,"
           "\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f,\"samples\":%zu},\"phase_ms\":{",
           sm->elapsed, sm->elapsed > 0 ? sm->st.ok / sm->elapsed : 0, sm->pct[0], sm->pct[1],
           sm->pct[2], sm->pct[3], sm->pct[4], sm->nsamples);
    for (int p = 0; p < PHASE_COUNT; p++)
        printf("%s\"%s\":{\"mean\":%.3f,\"n\":%llu}", p > 0 ? "," : "", phase_names[p],
               phase_mean_ms(&sm->st, p), (unsigned long long)sm->st.phase_n[p]);
    printf("},\"tls_handshakes\":%llu,\"tls_resumed\":%llu,\"tls_tickets\":%llu,"
           "\"cpu_user_s\":%.3f,\"cpu_sys_s\":%.3f,\"first_error\":",
           (unsigned long long)sm->st.handshakes, (unsigned long long)sm->st.resumed,
           (unsigned long long)sm->st.tickets, sm->cpu_user, sm->cpu_sys);
    json_str(run->first_error);
    printf("}\n");
}

/* ---- the two modes ---- */

/* Returns how many threads started; on a shortfall the stop flag ends those that did. */
static unsigned
clients_start(struct run *run, struct client *cls, void *(*fn)(void *))
{
    pthread_attr_t attr;
    unsigned       i;

    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    for (i = 0; i < run->opt->concurrency; i++) {
        atomic_fetch_add(&run->running, 1);
        if (client_init(&cls[i], run, i) != 0 ||
            pthread_create(&cls[i].thread, &attr, fn, &cls[i]) != 0) {
            atomic_fetch_sub(&run->running, 1);
            fprintf(stderr, "sluice-loadgen: cannot start client %u\n", i);
            atomic_store(&stop_flag, 1);
            break;
        }
    }
    pthread_attr_destroy(&attr);
    return i;
}

static void
progress_line(struct run *run, uint64_t *prev, int64_t now)
{
    uint64_t ok = atomic_load(&run->ok);

    if (run->opt->idle > 0)
        fprintf(stderr, "[idle %5.1fs] opening: %llu open, %llu failed\n",
                (now - run->start) / 1e9, (unsigned long long)ok,
                (unsigned long long)atomic_load(&run->failed));
    else if (now < run->measure_start)
        fprintf(stderr, "[warmup %5.1fs]\n", (now - run->start) / 1e9);
    else
        fprintf(stderr, "[%6.1fs] sent %llu  %llu msg/s  errors %llu\n",
                (now - run->measure_start) / 1e9, (unsigned long long)ok,
                (unsigned long long)(ok - *prev), (unsigned long long)atomic_load(&run->failed));
    *prev = ok;
}

/* Waits until the clients are done or until end; then stops them, and no I/O may wait
 * longer than --timeout from then on. Returns when that happened. */
static int64_t
run_wait(struct run *run, int64_t end)
{
    int64_t  tick = run->start + NS_PER_SEC, now, stopped = 0;
    uint64_t prev = 0;

    while (atomic_load(&run->running) > 0) {
        sleep_ns(NS_PER_SEC / 50);
        now = now_ns();
        if (stopped == 0 && (atomic_load(&stop_flag) || now >= end)) {
            atomic_store(&stop_flag, 1);
            stopped = now;
            if (now + secs_ns(run->opt->timeout) < atomic_load(&run->hard_end))
                atomic_store(&run->hard_end, now + secs_ns(run->opt->timeout));
        }
        if (run->opt->progress && now >= tick) {
            progress_line(run, &prev, now);
            tick += NS_PER_SEC;
        }
    }
    return stopped != 0 ? stopped : now_ns();
}

static int
run_load(struct run *run, struct client *cls)
{
    const struct options *o = run->opt;
    struct summary        sm = {0};
    int64_t               end;
    unsigned              started;

    run->start = now_ns();
    run->measure_start = run->start + secs_ns(o->warmup);
    end = o->duration > 0 ? run->measure_start + secs_ns(o->duration) : INT64_MAX;
    atomic_store(&run->hard_end, o->duration > 0 ? end + secs_ns(o->timeout) : INT64_MAX);
    started = clients_start(run, cls, client_main);
    end = run_wait(run, end);
    for (unsigned i = 0; i < started; i++)
        pthread_join(cls[i].thread, NULL);
    summary_fill(&sm, run, cls, end);
    summary_print(&sm, run);
    if (o->json)
        summary_json(&sm, run);
    return sm.failed == 0 && sm.st.ok > 0 ? 0 : 1;
}

static int
run_idle(struct run *run, struct client *cls)
{
    const struct options *o = run->opt;
    struct summary        sm = {0};
    int64_t               t;
    unsigned              started;

    if ((run->idle = calloc(o->idle, sizeof *run->idle)) == NULL)
        return 1;
    for (unsigned i = 0; i < o->idle; i++)
        if (conn_init(&run->idle[i]) != 0)
            return 1;
    run->start = run->measure_start = now_ns();
    atomic_store(&run->hard_end, run->start + secs_ns(o->duration + o->timeout));
    started = clients_start(run, cls, idle_main);
    t = run_wait(run, INT64_MAX);
    sm.setup_secs = (t - run->start) / 1e9;
    fprintf(stderr, "sluice-loadgen: %llu of %u connections open after %.3f s; holding "
            "%.1f s\n", (unsigned long long)atomic_load(&run->ok), o->idle, sm.setup_secs,
            o->duration);
    sm.idle_dropped = idle_hold(run, now_ns() + secs_ns(o->duration));
    atomic_store(&run->hard_end, now_ns() + secs_ns(o->timeout));
    atomic_store(&run->hold_over, true);
    for (unsigned i = 0; i < started; i++)
        pthread_join(cls[i].thread, NULL);
    summary_fill(&sm, run, cls, t);
    summary_print(&sm, run);
    if (o->json)
        summary_json(&sm, run);
    return sm.failed == 0 && sm.idle_dropped == 0 ? 0 : 1;
}

int
main(int argc, char **argv)
{
    struct options   o;
    struct run       run;
    struct client   *cls;
    struct sigaction sa = {.sa_handler = on_signal};
    int              rc = 2;

    memset(&run, 0, sizeof run);
    if (options_parse(&o, argc, argv) != 0)
        return 2;
    run.opt = &o;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    cls = calloc(o.concurrency, sizeof *cls);
    if (cls != NULL && run_init(&run, &o) == 0)
        rc = o.idle > 0 ? run_idle(&run, cls) : run_load(&run, cls);
    for (unsigned i = 0; cls != NULL && i < o.concurrency; i++)
        if (cls[i].run != NULL)
            client_cleanup(&cls[i]);
    free(cls);
    run_cleanup(&run);
    return rc;
}
