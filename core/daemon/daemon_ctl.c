/* core/daemon/daemon_ctl.c: reload and status of the running daemon; see daemon_ctl.h. */
#include "daemon/daemon_ctl.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/audit.h"
#include "config/config.h"
#include "daemon/control.h"
#include "daemon/generation.h"
#include "daemon/metrics.h"
#include "util/inflight.h"
#include "net/iplimit.h"
#include "net/tls.h"
#include "util/log.h"
#include "util/notify.h"
#include "util/counter.h"
#include "util/offload.h"
#include "daemon/worker.h"
#include "daemon/worker_gen.h"
#include "relay/upstream_pool.h"
#include "smtp/smtp_session.h"

void
daemon_ctl_init(struct daemon_ctl *c, const char *path, struct daemon *d,
                struct worker **workers, int n_workers)
{
    memset(c, 0, sizeof(*c));
    c->path = path;
    c->d = d;
    c->workers = workers;
    c->n_workers = n_workers;
    c->started = ev_time();
    pthread_mutex_init(&c->mu, NULL);
}

void
daemon_ctl_cleanup(struct daemon_ctl *c)
{
    pthread_mutex_destroy(&c->mu);
}

/* One worker generation of g per worker, all or none. */
static struct worker_gen **
daemon_ctl_build(struct daemon_ctl *c, struct generation *g, struct audit *audit,
                 char *err, size_t errlen)
{
    struct worker_gen **wgs = calloc((size_t)c->n_workers, sizeof(*wgs));
    int                 i;

    if (wgs == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    for (i = 0; i < c->n_workers; i++) {
        struct worker_gen_counts wc = {&c->d->upstream_labels, c->workers[i]->stats.upstreams,
                                       &c->d->domain_labels};

        wgs[i] = worker_gen_new(g, c->workers[i]->loop, c->d->zones, c->workers[i]->zlink,
                                audit, &wc, err, errlen);
        if (wgs[i] == NULL)
            break;
    }
    if (i == c->n_workers)
        return wgs;
    while (i-- > 0)
        worker_gen_free(wgs[i]);
    free(wgs);
    return NULL;
}

/* The audit writer the new generation writes through: the running one (switched to the
 * new path once the reload cannot fail any more), or a new one if there was none. */
static int
daemon_ctl_audit(struct daemon_ctl *c, const struct config *next, struct audit **fresh,
                 char *err, size_t errlen)
{
    *fresh = NULL;
    if (next->audit_log == NULL)
        return 0;
    if (c->d->audit != NULL)
        return audit_check_path(next->audit_log, err, errlen);
    *fresh = audit_open(next->audit_log, err, errlen);
    return *fresh == NULL ? -1 : 0;
}

/* Session tickets survive the reload: the next generation seals and opens them with the
 * running one's keys, unless tls.ticket_key_lifetime changed (docs/policies.md "Reload"). */
static void
daemon_ctl_ticket_keys(struct generation *next, const struct generation *running)
{
    if (next->parts.tls == NULL || running->parts.tls == NULL)
        return;
    if (!tls_server_keep_ticket_keys(next->parts.tls, running->parts.tls))
        log_msg(LOG_NOTICE, "tls.ticket_keys", 0,
                "tls.ticket_key_lifetime changed: new session ticket keys, clients with a "
                "ticket do one full handshake");
}

/* Everything is built: hand it over. Nothing here can fail the reload. */
static void
daemon_ctl_publish(struct daemon_ctl *c, struct generation *g, struct worker_gen **wgs,
                   struct audit *fresh)
{
    const struct config *cfg = g->parts.cfg;
    char                 err[512];

    daemon_ctl_ticket_keys(g, c->d->gen); /* before any worker can see g */
    for (int i = 0; i < c->n_workers; i++)
        worker_set_gen(c->workers[i], wgs[i]);
    if (fresh != NULL)
        c->d->audit = fresh;
    else if (c->d->audit != NULL && cfg->audit_log != NULL &&
             audit_reopen(c->d->audit, cfg->audit_log, err, sizeof(err)) != 0)
        log_msg(LOG_ERR, "audit.error", 0, "%s", err);
    iplimit_set_limits(c->d->iplimit, cfg->max_connections, cfg->max_connections_per_ip);
    offload_set_limits(c->d->offload, (unsigned)cfg->max_auth_jobs,
                       (unsigned)cfg->max_auth_jobs_per_client);
    inflight_set_limits(c->d->inflight, cfg->max_inflight_bytes,
                        cfg->max_inflight_bytes_per_client);
    log_set_level(cfg->log_level);
    /* the same metrics.tls paths (generation_restart_needed), their files read again */
    if (c->metrics != NULL && g->parts.metrics_tls != NULL)
        metrics_set_tls(c->metrics, g->parts.metrics_tls);
    generation_unref(c->d->gen);
    c->d->gen = g;
}

/* SIGHUP also means "logrotate moved the audit log": reopen it even when the reload
 * itself failed. */
static void
daemon_ctl_reopen_audit(struct daemon_ctl *c)
{
    const char *path = c->d->gen->parts.cfg->audit_log;
    char        err[512];

    if (c->d->audit != NULL && path != NULL &&
        audit_reopen(c->d->audit, path, err, sizeof(err)) != 0)
        log_msg(LOG_ERR, "audit.error", 0, "%s", err);
}

static int
daemon_ctl_try(struct daemon_ctl *c, char *err, size_t errlen)
{
    struct generation  *g = generation_load(c->path, c->d->gen->id + 1, err, errlen);
    struct worker_gen **wgs = NULL;
    struct audit       *fresh = NULL;
    const char         *restart;

    if (g == NULL)
        return -1;
    restart = generation_restart_needed(c->d->gen->parts.cfg, g->parts.cfg);
    if (*restart != '\0')
        snprintf(err, errlen, "%s: %s; restart sluice to apply it", c->path, restart);
    else if (daemon_ctl_audit(c, g->parts.cfg, &fresh, err, errlen) == 0)
        wgs = daemon_ctl_build(c, g, g->parts.cfg->audit_log == NULL ? NULL
                                     : fresh != NULL ? fresh : c->d->audit, err, errlen);
    if (wgs == NULL) {
        audit_free(fresh);
        generation_unref(g);
        return -1;
    }
    daemon_ctl_publish(c, g, wgs, fresh);
    free(wgs);
    return 0;
}

/* systemd's reload protocol (docs/deployment.md): RELOADING=1 before the loading, READY=1
 * after it whatever the outcome (a failed reload leaves the old generation serving). A
 * failed notification is logged, never fatal. */
static void
daemon_ctl_notify(bool reloading, unsigned gen, bool ok)
{
    char status[64], err[256];
    int  rc;

    snprintf(status, sizeof(status), "serving, generation %u%s", gen,
             ok ? "" : " (last reload failed)");
    rc = reloading ? notify_reloading(err, sizeof(err)) : notify_ready(status, err, sizeof(err));
    if (rc != 0)
        log_msg(LOG_WARNING, "notify.fail", 0, "%s", err);
}

int
daemon_ctl_reload(struct daemon_ctl *c, char *msg, size_t msglen)
{
    int rc;

    pthread_mutex_lock(&c->mu);
    daemon_ctl_notify(true, 0, true);
    log_msg(LOG_NOTICE, "reload.start", 0, "generation %u: loading %s", c->d->gen->id,
            c->path);
    rc = daemon_ctl_try(c, msg, msglen);
    if (rc == 0) {
        c->reloads_ok++;
        snprintf(msg, msglen, "generation %u", c->d->gen->id);
        log_msg(LOG_NOTICE, "reload.ok", 0, "generation %u in force", c->d->gen->id);
    } else {
        c->reloads_failed++;
        snprintf(c->last_error, sizeof(c->last_error), "%s", msg);
        log_msg(LOG_ERR, "reload.fail", 0, "generation %u stays in force: %s",
                c->d->gen->id, msg);
        daemon_ctl_reopen_audit(c);
    }
    daemon_ctl_notify(false, c->d->gen->id, rc == 0);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

#define DAEMON_CTL_LOAD(w, field) \
    atomic_load_explicit(&(w)->stats.field, memory_order_relaxed)

/* Sessions by state, refused connections and hook durations: the workers' summed. */
static void
daemon_ctl_status_states(struct daemon_ctl *c, struct control_status *st)
{
    _Static_assert(SMTP_STATE_COUNT <= CONTROL_MAX_STATES, "room for every state");
    st->n_states = SMTP_STATE_COUNT;
    for (int k = 0; k < SMTP_STATE_COUNT; k++) {
        st->state_names[k] = smtp_session_state_name((enum smtp_state)k);
        for (int i = 0; i < c->n_workers; i++)
            st->states[k] += DAEMON_CTL_LOAD(c->workers[i], states[k]);
    }
    for (int i = 0; i < c->n_workers; i++) {
        for (int h = 0; h < POLICY_N_HOOKS; h++) {
            for (int b = 0; b <= HOOK_STATS_BUCKETS; b++)
                st->hook_runs[h][b] += DAEMON_CTL_LOAD(c->workers[i], hooks.runs[h][b]);
            st->hook_sum_us[h] += DAEMON_CTL_LOAD(c->workers[i], hooks.sum_us[h]);
        }
        st->refused_max_connections += DAEMON_CTL_LOAD(c->workers[i], refused[0]);
        st->refused_max_connections_per_ip += DAEMON_CTL_LOAD(c->workers[i], refused[1]);
    }
}

/* "other", then every declared domain since start, the workers' counters summed. */
static void
daemon_ctl_status_domains(struct daemon_ctl *c, struct control_status *st)
{
    const struct stats_labels *lab = &c->d->domain_labels;
    size_t                     n = stats_labels_count(lab);

    for (size_t k = 0; k < n && k < CONTROL_MAX_DOMAINS; k++) {
        struct control_domain *dm = &st->domains[st->n_domains++];

        dm->name = stats_labels_name(lab, k);
        for (int i = 0; i < c->n_workers; i++) {
            dm->relayed += DAEMON_CTL_LOAD(c->workers[i], domain_messages[k][0]);
            dm->failed += DAEMON_CTL_LOAD(c->workers[i], domain_messages[k][1]);
        }
    }
}

/* Every upstream slot, the workers' counters summed; "other" only once a host:port had
 * to go there. */
static void
daemon_ctl_status_upstreams(struct daemon_ctl *c, struct control_status *st)
{
    const struct stats_labels *lab = &c->d->upstream_labels;
    size_t                     n = stats_labels_count(lab);

    for (size_t k = 0; k < n && k < CONTROL_MAX_UPSTREAMS; k++) {
        struct control_upstream *u = &st->upstreams[st->n_upstreams];

        if (k == 0 && !stats_labels_overflowed(lab))
            continue;
        u->name = stats_labels_name(lab, k);
        for (int i = 0; i < c->n_workers; i++) {
            const struct upstream_pool_counters *w = &c->workers[i]->stats.upstreams[k];

            u->open += counter_get(&w->open);
            u->idle += counter_get(&w->idle);
            u->waits += counter_get(&w->waits);
            u->wait_timeouts += counter_get(&w->wait_timeouts);
            u->connect_failures += counter_get(&w->connect_failures);
            u->errors += counter_get(&w->errors);
        }
        st->n_upstreams++;
    }
}

void
daemon_ctl_status(struct daemon_ctl *c, struct control_status *st)
{
    pthread_mutex_lock(&c->mu);
    st->generation = c->d->gen->id;
    st->loaded = c->d->gen->loaded;
    st->reloads_ok = c->reloads_ok;
    st->reloads_failed = c->reloads_failed;
    snprintf(st->last_reload_error, sizeof(st->last_reload_error), "%s", c->last_error);
    pthread_mutex_unlock(&c->mu);
    st->started = c->started;
    st->workers = c->n_workers;
    if (c->d->inflight != NULL) {
        struct inflight_stats is;

        inflight_stats(c->d->inflight, &is);
        st->inflight_bytes = is.bytes;
        st->inflight_max_bytes = is.max_bytes;
        st->inflight_max_per_client = is.max_per_client;
        st->inflight_clients = is.clients;
        st->inflight_refused = is.refused;
    }
    for (int i = 0; i < c->n_workers; i++) {
        struct worker *w = c->workers[i];

        st->sessions += DAEMON_CTL_LOAD(w, sessions);
        st->old_generations += DAEMON_CTL_LOAD(w, old_generations);
        st->sessions_total += DAEMON_CTL_LOAD(w, sessions_total);
        st->messages_relayed += DAEMON_CTL_LOAD(w, messages_relayed);
        st->messages_failed += DAEMON_CTL_LOAD(w, messages_failed);
        for (int m = 0; m < CONTROL_AUTH_MECHS; m++) {
            uint64_t ok = DAEMON_CTL_LOAD(w, auth[m][0]), failed = DAEMON_CTL_LOAD(w, auth[m][1]);

            st->auth[m][0] += ok;
            st->auth[m][1] += failed;
            st->auth_ok += ok;
            st->auth_failed += failed;
        }
    }
    daemon_ctl_status_upstreams(c, st);
    daemon_ctl_status_domains(c, st);
    daemon_ctl_status_states(c, st);
}

int
daemon_ctl_reload_cb(void *ctx, char *msg, size_t msglen)
{
    return daemon_ctl_reload(ctx, msg, msglen);
}

void
daemon_ctl_status_cb(void *ctx, struct control_status *st)
{
    daemon_ctl_status(ctx, st);
}

const struct config *
daemon_ctl_config_hold_cb(void *ctx, void **ref)
{
    struct daemon_ctl *c = ctx;
    struct generation *g;

    pthread_mutex_lock(&c->mu);
    g = generation_ref(c->d->gen);
    pthread_mutex_unlock(&c->mu);
    *ref = g;
    return g->parts.cfg;
}

void
daemon_ctl_config_release_cb(void *ctx, void *ref)
{
    (void)ctx;
    generation_unref(ref);
}
