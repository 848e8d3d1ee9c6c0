/* core/daemon/metrics.c: the Prometheus metrics listener (metrics.h, docs/metrics.md):
 * binding it, the serving thread, who may scrape (the allow-list), the TLS context in
 * force (metrics_set_tls), reading one bounded request against a deadline, and which
 * metrics there are and where each value comes from. The exposition format is
 * metrics_text.c's; parsing the request is metrics_http.c's; the connection's reads,
 * writes and TLS handshake are metrics_conn.c's. Modelled on control.c: every socket is
 * non-blocking and every wait is a poll(2) that also watches the stop pipe, so
 * metrics_free() never waits for a client, and no worker loop ever waits for a scrape
 * (values are relaxed atomics and the zones' own locks, read from this thread). */
#include "daemon/metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "daemon/metrics_conn.h"
#include "daemon/metrics_http.h"
#include "daemon/metrics_text.h"
#include "store/zone.h"
#include "util/audit.h"
#include "util/fdwait.h"
#include "util/log.h"

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "unknown"
#endif

#define METRICS_BACKLOG 16

/* A log line at most once per METRICS_LOG_EVERY, with the count of the events not logged
 * since; only the serving thread touches it. */
struct metrics_quiet {
    double   logged_at;
    uint64_t unlogged;
};

#define METRICS_LOG_EVERY 10.0 /* seconds: a flood of strangers is one line each */

struct metrics {
    int                        fd;      /* owns; listening, non-blocking */
    int                        stop[2]; /* owns; metrics_free() writes a byte to stop[1] */
    int                        port;    /* bound */
    struct config_metrics_net *allow;   /* owns; a copy of the configuration's */
    size_t                     n_allow;
    bool                       https;   /* metrics.tls is set: never answer without TLS */
    pthread_mutex_t            tls_mu;  /* guards tls: reloads set it, the thread reads it */
    SSL_CTX                   *tls;     /* holds a ref; the context in force, or NULL */
    pthread_t                  thread;
    bool                       started;
    struct control_ops         ops;     /* ops.ctx borrowed */
    struct zones              *zones;   /* borrows, or NULL */
    struct audit              *audit;   /* borrows, or NULL */
    struct metrics_quiet       refusals;   /* metrics.refuse */
    struct metrics_quiet       tls_errors; /* metrics.tls_error */
};

/* ---- what there is to see ------------------------------------------------------------ */

static void
metrics_one(struct metrics_text *t, const char *name, const char *type, const char *help,
            uint64_t v)
{
    metrics_text_family(t, name, type, help);
    metrics_text_u64(t, name, NULL, NULL, v);
}

/* A family with one label and two values: result="ok" / "failed" and the like. */
static void
metrics_two(struct metrics_text *t, const char *name, const char *help, const char *label,
            const char *a, uint64_t va, const char *b, uint64_t vb)
{
    metrics_text_family(t, name, "counter", help);
    metrics_text_u64(t, name, label, a, va);
    metrics_text_u64(t, name, label, b, vb);
}

static void
metrics_render_zones(struct metrics_text *t, struct zones *zs)
{
    static const struct {
        const char *name, *type, *help;
    } fam[] = {
        {"sluice_zone_entries", "gauge", "Entries in the zone, expired ones not yet removed."},
        {"sluice_zone_bytes", "gauge", "Bytes the zone's entries and buckets are charged now."},
        {"sluice_zone_capacity_bytes", "gauge", "Bytes the zone may hold (its configured size)."},
        {"sluice_zone_evictions_total", "counter", "Live entries evicted to make room."},
        {"sluice_zone_refusals_total", "counter", "Writes refused for lack of room."},
        {"sluice_zone_expired_total", "counter", "Entries removed because they expired."},
        {"sluice_zone_redis", "gauge", "1 when the zone's entries are in Redis, 0 local."},
        {"sluice_zone_fallbacks_total", "counter",
         "Calls on a Redis zone that Redis did not answer in time: answered locally or "
         "refused."},
    };
    struct zone_stats st;
    size_t            n = zones_count(zs);

    for (size_t f = 0; f < sizeof(fam) / sizeof(fam[0]); f++) {
        metrics_text_family(t, fam[f].name, fam[f].type, fam[f].help);
        for (size_t i = 0; i < n; i++) { /* zone names come from the configuration only */
            uint64_t v[] = {0, 0, 0, 0, 0, 0, 0, 0};

            zone_stats(zones_at(zs, i), &st);
            v[0] = st.entries, v[1] = st.bytes, v[2] = st.capacity;
            v[3] = st.evictions, v[4] = st.refusals, v[5] = st.expired;
            v[6] = st.redis, v[7] = st.fallbacks;
            metrics_text_u64(t, fam[f].name, "zone", st.name, v[f]);
        }
    }
}

/* The workers' connections to Redis, when some zone is there. */
static void
metrics_render_redis(struct metrics_text *t, struct zones *zs)
{
    struct zones_redis_stats st;

    if (!zones_redis_stats(zs, &st))
        return;
    metrics_text_family(t, "sluice_redis_links_up", "gauge",
                        "Workers whose connection to Redis is up now.");
    metrics_text_u64(t, "sluice_redis_links_up", NULL, NULL, st.links_up);
    metrics_text_family(t, "sluice_redis_connects_total", "counter",
                        "Connections to Redis set up (AUTH, SELECT, SCRIPT LOAD done).");
    metrics_text_u64(t, "sluice_redis_connects_total", NULL, NULL, st.connects);
    metrics_text_family(t, "sluice_redis_failures_total", "counter",
                        "Connects to Redis that failed, and connections lost or dropped "
                        "(no answer within redis.timeout).");
    metrics_text_u64(t, "sluice_redis_failures_total", NULL, NULL, st.failures);
}

/* The label value of each mechanism (enum sasl_mech); NONE's row stays unused. */
static const char *const metrics_mechs[CONTROL_AUTH_MECHS] = {
    [SASL_MECH_PLAIN] = "plain",
    [SASL_MECH_LOGIN] = "login",
    [SASL_MECH_XOAUTH2] = "xoauth2",
    [SASL_MECH_OAUTHBEARER] = "oauthbearer",
};

static void
metrics_render_auth(struct metrics_text *t, const struct control_status *st)
{
    metrics_text_family(t, "sluice_auth_total", "counter",
                        "AUTH exchanges that ended, by mechanism and result.");
    for (int m = 0; m < CONTROL_AUTH_MECHS; m++) {
        for (int r = 0; r < 2 && metrics_mechs[m] != NULL; r++) {
            const char *labels[] = {"mechanism", metrics_mechs[m], "result",
                                    r == 0 ? "ok" : "failed"};

            metrics_text_u64_labels(t, "sluice_auth_total", labels, 2, st->auth[m][r]);
        }
    }
}

/* Sessions by state (every state, 0 or not) and connections refused by reason. */
static void
metrics_render_sessions(struct metrics_text *t, const struct control_status *st)
{
    metrics_text_family(t, "sluice_sessions", "gauge",
                        "SMTP sessions open now, by the state of the session's state machine.");
    for (size_t k = 0; k < st->n_states; k++)
        metrics_text_u64(t, "sluice_sessions", "state", st->state_names[k], st->states[k]);
    metrics_two(t, "sluice_connections_refused_total",
                "Connections refused at accept, by the limit that refused them.", "reason",
                "max_connections", st->refused_max_connections, "max_connections_per_ip",
                st->refused_max_connections_per_ip);
}

/* One histogram per hook (policy/hook_stats.h): cumulative buckets, +Inf, sum, count. */
static void
metrics_render_hooks(struct metrics_text *t, const struct control_status *st)
{
    metrics_text_family(t, "sluice_hook_duration_seconds", "histogram",
                        "Policy hook runs from their start to their verdict, waits included.");
    for (int h = 0; h < POLICY_N_HOOKS; h++) {
        const char *labels[] = {"hook", policy_hook_names[h], "le", NULL};
        uint64_t    cum = 0;

        for (int b = 0; b <= HOOK_STATS_BUCKETS; b++) {
            cum += st->hook_runs[h][b];
            labels[3] = b < HOOK_STATS_BUCKETS ? hook_stats_bound_names[b] : "+Inf";
            metrics_text_u64_labels(t, "sluice_hook_duration_seconds_bucket", labels, 2, cum);
        }
        metrics_text_double_labels(t, "sluice_hook_duration_seconds_sum", labels, 1,
                                   (double)st->hook_sum_us[h] / 1e6);
        metrics_text_u64_labels(t, "sluice_hook_duration_seconds_count", labels, 1, cum);
    }
}

/* Messages of every declared domain since start, and of "other". */
static void
metrics_render_domains(struct metrics_text *t, const struct control_status *st)
{
    metrics_text_family(t, "sluice_domain_messages_total", "counter",
                        "Messages by the sender's authenticated domain (a declared one, "
                        "else other) and result: relayed or failed.");
    for (size_t i = 0; i < st->n_domains; i++) { /* names come from the configuration */
        const struct control_domain *d = &st->domains[i];
        const char *relayed[] = {"domain", d->name, "result", "relayed"};
        const char *failed[] = {"domain", d->name, "result", "failed"};

        metrics_text_u64_labels(t, "sluice_domain_messages_total", relayed, 2, d->relayed);
        metrics_text_u64_labels(t, "sluice_domain_messages_total", failed, 2, d->failed);
    }
}

/* The pool counters of every upstream host:port configured since start (control_ops.h). */
static void
metrics_render_upstreams(struct metrics_text *t, const struct control_status *st)
{
    static const struct {
        const char *name, *type, *help;
    } fam[] = {
        {"sluice_upstream_connections", "gauge",
         "Upstream connections open now (setting up, carrying a message, or idle)."},
        {"sluice_upstream_idle_connections", "gauge",
         "Upstream connections idle in the pools now."},
        {"sluice_upstream_waits_total", "counter",
         "Messages that found every connection busy and waited for one."},
        {"sluice_upstream_wait_timeouts_total", "counter",
         "Messages that waited timeout_upstream for a connection and gave up."},
        {"sluice_upstream_connect_failures_total", "counter",
         "Connection set-ups that failed: connect, TLS, greeting, EHLO or AUTH."},
        {"sluice_upstream_errors_total", "counter",
         "Connections that broke while carrying a message: timeout, reset, out of sync."},
    };

    for (size_t f = 0; f < sizeof(fam) / sizeof(fam[0]); f++) {
        metrics_text_family(t, fam[f].name, fam[f].type, fam[f].help);
        for (size_t i = 0; i < st->n_upstreams; i++) { /* names come from the configuration */
            const struct control_upstream *u = &st->upstreams[i];
            uint64_t v[] = {u->open, u->idle, u->waits, u->wait_timeouts, u->connect_failures,
                            u->errors};

            metrics_text_u64(t, fam[f].name, "upstream", u->name, v[f]);
        }
    }
}

static void
metrics_render_audit(struct metrics_text *t, struct audit *a)
{
    struct audit_stats as;

    audit_stats(a, &as);
    metrics_one(t, "sluice_audit_lines_written_total", "counter",
                "Audit log lines that reached the file.", as.lines_written);
    metrics_one(t, "sluice_audit_lines_dropped_total", "counter",
                "Audit log lines lost: the queue was full or their write failed.",
                as.lines_dropped);
    metrics_one(t, "sluice_audit_write_errors_total", "counter",
                "Failed writes to the audit log.", as.write_errors);
    metrics_one(t, "sluice_audit_queued_bytes", "gauge",
                "Bytes of audit log lines waiting to be written.", as.queued_bytes);
}

void
metrics_render(struct metrics_text *t, const struct control_status *st, struct zones *zones,
               struct audit *audit)
{
    metrics_one(t, "sluice_up", "gauge", "1 while the daemon serves.", 1);
    metrics_text_family(t, "sluice_build_info", "gauge", "Always 1; the version is a label.");
    metrics_text_u64(t, "sluice_build_info", "version", SLUICE_VERSION, 1);
    metrics_text_family(t, "sluice_start_time_seconds", "gauge",
                        "When the daemon started, in seconds since the Unix epoch.");
    metrics_text_double(t, "sluice_start_time_seconds", NULL, NULL, st->started);
    metrics_one(t, "sluice_workers", "gauge", "Worker threads.", (uint64_t)st->workers);
    metrics_one(t, "sluice_config_generation", "gauge",
                "The configuration generation in force: 1 at start, +1 per successful reload.",
                st->generation);
    metrics_text_family(t, "sluice_config_loaded_time_seconds", "gauge",
                        "When the generation in force was loaded, in seconds since the epoch.");
    metrics_text_double(t, "sluice_config_loaded_time_seconds", NULL, NULL, st->loaded);
    metrics_two(t, "sluice_reloads_total", "Reloads (SIGHUP or sluice ctl reload) by result.",
                "result", "ok", st->reloads_ok, "failed", st->reloads_failed);
    metrics_one(t, "sluice_old_generations", "gauge",
                "Older generations still finishing sessions.", st->old_generations);
    metrics_one(t, "sluice_sessions_open", "gauge", "SMTP sessions open now.", st->sessions);
    metrics_one(t, "sluice_sessions_total", "counter", "SMTP sessions accepted since start.",
                st->sessions_total);
    metrics_render_sessions(t, st);
    metrics_render_auth(t, st);
    metrics_two(t, "sluice_messages_total",
                "Messages by result: relayed (the upstream accepted) or failed.", "result",
                "relayed", st->messages_relayed, "failed", st->messages_failed);
    metrics_one(t, "sluice_inflight_bytes", "gauge",
                "Bytes reserved now for messages in transit.", st->inflight_bytes);
    metrics_one(t, "sluice_inflight_max_bytes", "gauge",
                "The limit on bytes for messages in transit, whole daemon.",
                st->inflight_max_bytes);
    metrics_one(t, "sluice_inflight_clients", "gauge",
                "Clients holding memory for messages in transit now.", st->inflight_clients);
    metrics_one(t, "sluice_inflight_refused_total", "counter",
                "Transactions refused with 452 4.3.1 for lack of memory.",
                st->inflight_refused);
    metrics_render_domains(t, st);
    metrics_render_upstreams(t, st);
    metrics_render_hooks(t, st);
    if (zones != NULL) {
        metrics_render_zones(t, zones);
        metrics_render_redis(t, zones);
    }
    if (audit != NULL)
        metrics_render_audit(t, audit);
}

/* ---- opening ------------------------------------------------------------------------ */

static int
metrics_bind(struct metrics *m, const struct config_metrics *mc, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t               sl;
    int                     one = 1;
    unsigned                port;
    struct logline          l;

    memset(&ss, 0, sizeof(ss));
    if (inet_pton(AF_INET, mc->address, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
        ss.ss_family = AF_INET;
        ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)mc->port);
        sl = sizeof(struct sockaddr_in);
    } else if (inet_pton(AF_INET6, mc->address, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
        ss.ss_family = AF_INET6;
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)mc->port);
        sl = sizeof(struct sockaddr_in6);
    } else {
        snprintf(err, errlen, "metrics %s: not an IP address", mc->address);
        return -1;
    }
    m->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (m->fd < 0 || setsockopt(m->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(m->fd, (struct sockaddr *)&ss, sl) != 0 || listen(m->fd, METRICS_BACKLOG) != 0 ||
        getsockname(m->fd, (struct sockaddr *)&ss, &sl) != 0) {
        snprintf(err, errlen, "metrics %s port %d: %s", mc->address, mc->port,
                 strerror(errno));
        return -1;
    }
    port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                         : ((struct sockaddr_in6 *)&ss)->sin6_port);
    m->port = (int)port;
    log_begin(&l, LOG_NOTICE, "metrics.listen", 0);
    log_str(&l, "address", mc->address);
    log_int(&l, "port", port);
    log_str(&l, "tls", mc->tls.cert_file == NULL ? "none"
                       : mc->client_ca == NULL   ? "on"
                                                 : "client certificate");
    log_end(&l);
    return 0;
}

struct metrics *
metrics_open(const struct config_metrics *mc, char *err, size_t errlen)
{
    struct metrics *m = calloc(1, sizeof(*m));

    if (m == NULL || (m->allow = calloc(mc->n_allow + 1, sizeof(*m->allow))) == NULL) {
        snprintf(err, errlen, "metrics: out of memory");
        free(m);
        return NULL;
    }
    memcpy(m->allow, mc->allow, mc->n_allow * sizeof(*m->allow));
    m->n_allow = mc->n_allow;
    m->https = mc->tls.cert_file != NULL;
    pthread_mutex_init(&m->tls_mu, NULL);
    m->fd = m->stop[0] = m->stop[1] = -1;
    if (pipe2(m->stop, O_CLOEXEC | O_NONBLOCK) != 0) {
        snprintf(err, errlen, "metrics: pipe: %s", strerror(errno));
        goto fail;
    }
    if (metrics_bind(m, mc, err, errlen) != 0)
        goto fail;
    return m;
fail:
    if (m->fd >= 0)
        close(m->fd);
    if (m->stop[0] >= 0) {
        close(m->stop[0]);
        close(m->stop[1]);
    }
    pthread_mutex_destroy(&m->tls_mu);
    free(m->allow);
    free(m);
    return NULL;
}

int
metrics_port(const struct metrics *m)
{
    return m->port;
}

void
metrics_set_tls(struct metrics *m, SSL_CTX *ctx)
{
    SSL_CTX *old;

    SSL_CTX_up_ref(ctx);
    pthread_mutex_lock(&m->tls_mu);
    old = m->tls;
    m->tls = ctx;
    pthread_mutex_unlock(&m->tls_mu);
    SSL_CTX_free(old); /* a handshake in progress holds its own reference (SSL_new) */
}

/* The context in force with a reference the caller drops (SSL_CTX_free), or NULL. */
static SSL_CTX *
metrics_tls_ref(struct metrics *m)
{
    SSL_CTX *ctx;

    pthread_mutex_lock(&m->tls_mu);
    ctx = m->tls;
    if (ctx != NULL)
        SSL_CTX_up_ref(ctx);
    pthread_mutex_unlock(&m->tls_mu);
    return ctx;
}

/* ---- who may scrape ------------------------------------------------------------------- */

static bool
metrics_net_has(const struct config_metrics_net *n, int family, const unsigned char *a)
{
    unsigned bytes = n->prefix / 8, bits = n->prefix % 8;

    if (n->family != family || memcmp(n->addr, a, bytes) != 0)
        return false;
    return bits == 0 || ((n->addr[bytes] ^ a[bytes]) & (0xff00u >> bits) & 0xff) == 0;
}

/* Whether the peer is inside the allow-list; its text in addr either way. An IPv4
 * client of a dual-stack socket (::ffff:a.b.c.d) is matched as IPv4. */
static bool
metrics_is_allowed(const struct metrics *m, const struct sockaddr_storage *ss, char *addr,
                   size_t addrlen)
{
    const unsigned char *a;
    int                  family = ss->ss_family;

    if (family == AF_INET) {
        a = (const unsigned char *)&((const struct sockaddr_in *)ss)->sin_addr;
    } else if (family == AF_INET6) {
        a = (const unsigned char *)&((const struct sockaddr_in6 *)ss)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)a)) {
            family = AF_INET;
            a += 12;
        }
    } else {
        snprintf(addr, addrlen, "?");
        return false;
    }
    if (inet_ntop(family, a, addr, (socklen_t)addrlen) == NULL)
        snprintf(addr, addrlen, "?");
    for (size_t i = 0; i < m->n_allow; i++)
        if (metrics_net_has(&m->allow[i], family, a))
            return true;
    return false;
}

/* ---- one connection ------------------------------------------------------------------- */

static void
metrics_reply(struct metrics_conn *c, const char *status, const char *type, const char *extra,
              const char *body, size_t len)
{
    char head[512];
    int  n;

    n = snprintf(head, sizeof(head),
                 "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
                 "Connection: close\r\n\r\n",
                 status, type, len, extra);
    metrics_conn_send_all(c, head, (size_t)n);
    metrics_conn_send_all(c, body, len);
}

static void
metrics_scrape(const struct metrics *m, struct metrics_conn *c)
{
    struct control_status st;
    struct metrics_text   t;

    memset(&st, 0, sizeof(st));
    if (m->ops.status != NULL)
        m->ops.status(m->ops.ctx, &st);
    metrics_text_init(&t);
    metrics_render(&t, &st, m->zones, m->audit);
    if (t.failed)
        metrics_reply(c, "503 Service Unavailable", "text/plain", "", "out of memory\n", 14);
    else
        metrics_reply(c, "200 OK", METRICS_TEXT_CONTENT_TYPE, "", t.p, t.len);
    metrics_text_cleanup(&t);
}

/* Read the request head before the deadline. *len: the octets that came. */
static enum metrics_http_rc
metrics_read(struct metrics_conn *c, char *buf, size_t *len, struct metrics_http_request *rq,
             bool *stop)
{
    enum metrics_http_rc rc = METRICS_HTTP_AGAIN;
    enum metrics_conn_rc io;
    size_t               got;

    *len = 0;
    while (rc == METRICS_HTTP_AGAIN) {
        io = metrics_conn_recv(c, buf + *len, METRICS_HTTP_MAX_REQUEST - *len, &got);
        if (io != METRICS_CONN_OK) {
            *stop = io == METRICS_CONN_STOP;
            return METRICS_HTTP_AGAIN; /* timed out, stopping, or closed: no answer */
        }
        *len += got;
        rc = metrics_http_parse(buf, *len, rq);
    }
    return rc;
}

/* Whether this event gets its line now: the first of every METRICS_LOG_EVERY seconds. The
 * others are counted, and the next line says how many there were (`unlogged`). */
static bool
metrics_quiet_is_due(struct metrics_quiet *q, uint64_t *unlogged)
{
    double now = fdwait_clock();

    if (q->logged_at != 0 && now - q->logged_at < METRICS_LOG_EVERY) {
        q->unlogged++;
        return false;
    }
    *unlogged = q->unlogged;
    q->logged_at = now;
    q->unlogged = 0;
    return true;
}

static void
metrics_log_refusal(struct metrics *m, const char *addr)
{
    struct logline l;
    uint64_t       unlogged;

    if (!metrics_quiet_is_due(&m->refusals, &unlogged))
        return;
    log_begin(&l, LOG_WARNING, "metrics.refuse", 0);
    log_str(&l, "client", addr);
    log_str(&l, "reason", "outside metrics.allow");
    log_int(&l, "unlogged", (long long)unlogged);
    log_end(&l);
}

/* The TLS part of a connection, after the allow-list: false when the connection is over
 * (the handshake failed, timed out, or the listener stops). A failed handshake is logged
 * (metrics.tls_error, rate-limited as metrics.refuse), a connection on which nothing came
 * is not (a TCP probe, as on a plain listener). */
static bool
metrics_handshake(struct metrics *m, struct metrics_conn *c, const char *addr, bool *stop)
{
    SSL_CTX             *ctx = metrics_tls_ref(m);
    char                 why[256] = "no TLS context"; /* metrics_start() prevents it */
    enum metrics_conn_rc rc = ctx != NULL ? metrics_conn_accept(c, ctx, why, sizeof(why))
                                          : METRICS_CONN_TLS_ERROR;
    struct logline       l;
    uint64_t             unlogged;

    SSL_CTX_free(ctx);
    *stop = rc == METRICS_CONN_STOP;
    if (rc == METRICS_CONN_OK || rc == METRICS_CONN_STOP || metrics_conn_bytes_in(c) == 0)
        return rc == METRICS_CONN_OK;
    if (rc == METRICS_CONN_TIMEOUT) {
        log_msg(LOG_INFO, "metrics.timeout", 0, "%s: no TLS handshake within %.0f seconds",
                addr, METRICS_TIMEOUT);
    } else if (metrics_quiet_is_due(&m->tls_errors, &unlogged)) {
        log_begin(&l, LOG_INFO, "metrics.tls_error", 0);
        log_str(&l, "client", addr);
        log_str(&l, "reason", why);
        log_int(&l, "unlogged", (long long)unlogged);
        log_end(&l);
    }
    return false;
}

/* Read the request and answer it: true when an answer went out (linger for the client
 * to read it), false when none did (timed out, stopping, or closed). */
static bool
metrics_answer(struct metrics *m, struct metrics_conn *c, const char *addr)
{
    static const char           not_found[] = "not found: try /metrics\n";
    static const char           not_allowed[] = "method not allowed\n";
    static const char           bad[] = "bad request\n";
    char                        buf[METRICS_HTTP_MAX_REQUEST];
    size_t                      len;
    bool                        stop = false;
    struct metrics_http_request rq;

    switch (metrics_read(c, buf, &len, &rq, &stop)) {
    case METRICS_HTTP_OK:
        switch (metrics_http_route(&rq)) {
        case METRICS_HTTP_METRICS: metrics_scrape(m, c); break;
        case METRICS_HTTP_NOT_FOUND:
            metrics_reply(c, "404 Not Found", "text/plain", "", not_found,
                          sizeof(not_found) - 1);
            break;
        case METRICS_HTTP_NOT_ALLOWED:
            metrics_reply(c, "405 Method Not Allowed", "text/plain", "Allow: GET\r\n",
                          not_allowed, sizeof(not_allowed) - 1);
            break;
        }
        break;
    case METRICS_HTTP_BAD:
    case METRICS_HTTP_TOO_LONG:
        metrics_reply(c, "400 Bad Request", "text/plain", "", bad, sizeof(bad) - 1);
        break;
    case METRICS_HTTP_AGAIN: /* timed out, stopping, or closed: no answer */
        if (!stop && len > 0)
            log_msg(LOG_INFO, "metrics.timeout", 0,
                    "%s: no complete request within %.0f seconds", addr, METRICS_TIMEOUT);
        return false;
    }
    return true;
}

/* Allow-list first, so a stranger costs no TLS work; then the handshake (with
 * metrics.tls), the request and the answer, all within one METRICS_TIMEOUT. */
static void
metrics_serve(struct metrics *m, int fd, const struct sockaddr_storage *peer)
{
    struct metrics_conn c;
    char                addr[INET6_ADDRSTRLEN];
    bool                stopping = false;

    if (!metrics_is_allowed(m, peer, addr, sizeof(addr))) {
        metrics_log_refusal(m, addr);
        return; /* closed without an answer */
    }
    metrics_conn_init(&c, fd, m->stop[0], fdwait_clock() + METRICS_TIMEOUT);
    if (m->https && !metrics_handshake(m, &c, addr, &stopping)) {
        if (!stopping && metrics_conn_bytes_in(&c) > 0)
            metrics_conn_linger(&c); /* the client reads our alert rather than a reset */
    } else if (metrics_answer(m, &c, addr)) {
        metrics_conn_linger(&c);
    }
    metrics_conn_cleanup(&c);
}

/* ---- the thread ------------------------------------------------------------------------ */

static void *
metrics_thread(void *arg)
{
    struct metrics         *m = arg;
    struct sockaddr_storage peer;
    socklen_t               plen;
    int                     fd;

    for (;;) {
        if (fdwait(m->stop[0], m->fd, POLLIN, fdwait_clock() + 3600) == FDWAIT_STOP)
            break;
        plen = sizeof(peer);
        memset(&peer, 0, sizeof(peer));
        fd = accept4(m->fd, (struct sockaddr *)&peer, &plen, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd >= 0) {
            metrics_serve(m, fd, &peer);
            close(fd);
        } else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
            log_msg(LOG_WARNING, "metrics.accept", 0, "%s", strerror(errno));
            if (fdwait(m->stop[0], -1, 0, fdwait_clock() + 0.5) == FDWAIT_STOP)
                break;
        }
    }
    return NULL;
}

int
metrics_start(struct metrics *m, const struct control_ops *ops, struct zones *zones,
              struct audit *audit)
{
    sigset_t all, old;
    int      rc;

    if (m->started)
        return -1;
    if (m->https && m->tls == NULL) {
        log_msg(LOG_ERR, "metrics.fail", 0, "metrics.tls is set but no TLS context was given");
        return -1;
    }
    m->ops = *ops;
    m->zones = zones;
    m->audit = audit;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* signals are the main thread's business */
    rc = pthread_create(&m->thread, NULL, metrics_thread, m);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        log_msg(LOG_ERR, "metrics.fail", 0, "cannot start the metrics thread: %s",
                strerror(rc));
        return -1;
    }
    m->started = true;
    return 0;
}

void
metrics_free(struct metrics *m)
{
    ssize_t n;

    if (m == NULL)
        return;
    if (m->started) {
        do
            n = write(m->stop[1], "x", 1);
        while (n < 0 && errno == EINTR);
        pthread_join(m->thread, NULL);
    }
    close(m->fd);
    close(m->stop[0]);
    close(m->stop[1]);
    SSL_CTX_free(m->tls);
    pthread_mutex_destroy(&m->tls_mu);
    free(m->allow);
    free(m);
}
