/* core/auth/ldap_client.c: per-worker directory connections and password checks on them;
 * see ldap_client.h for the design. Only the event handlers (a readable connection, a
 * check's timer, a connect coming back, a new check) run ldap_dir_dispatch(); the
 * functions below them never do, so nothing re-enters the queue. Results are handed
 * over from the check's own timer, set to fire at once: a caller never hears back
 * inside ldap_client_verify() or inside an ldap_result() loop. */
#include "auth/ldap_client.h"

#include <ev.h>
#include <ldap.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "auth/ldap_dial.h"
#include "proto/ldap_template.h"
#include "util/log.h"
#include "util/offload.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

enum ldap_step {
    LDAP_STEP_QUEUED,       /* waiting for a free connection */
    LDAP_STEP_SERVICE_BIND, /* search mode: bind as the service account (or anonymous) */
    LDAP_STEP_SEARCH,       /* search mode: find the user's entry under base_dn */
    LDAP_STEP_USER_BIND,    /* bind as the user: the check itself */
    LDAP_STEP_DECOY_BIND,   /* search mode, no (single) user found: the bind a user would
                             * cost, as LDAP_DECOY_RDN under base_dn, refused whatever the
                             * answer (docs/security.md "User enumeration by timing") */
    LDAP_STEP_DONE,         /* the result is known; the timer hands it over */
};

static const char *const ldap_step_names[] = {"queued", "service bind", "search",
                                              "user bind", "decoy bind", "done"};

/* The entry a decoy bind names: nobody's (a directory that has it still refuses the
 * bind, as the password is the client's guess, and the answer is ignored). */
#define LDAP_DECOY_RDN "cn=sluice-no-such-user"

struct ldap_dir;
struct ldap_conn;

struct ldap_request {
    struct ldap_dir     *dir;      /* borrows */
    struct ldap_conn    *conn;     /* the connection it runs on; NULL unless binding or
                                    * searching */
    struct ldap_request *next;     /* the dir's queue */
    struct ldap_request *all_prev; /* the client's list of every check */
    struct ldap_request *all_next;
    enum ldap_step       step;
    ldap_client_done_fn *done;     /* NULL once cancelled */
    void                *arg;
    uint64_t             sid;
    char                *local;    /* owns; counted (local_len) */
    size_t               local_len;
    char                *domain;   /* owns; counted */
    size_t               domain_len;
    char                *password; /* owns; counted; wiped before it is freed */
    size_t               password_len;
    char                *user_dn;  /* owns; built (bind mode) or found (search mode) */
    int                  entries;  /* search entries seen; at LDAP_STEP_DECOY_BIND, what
                                    * the search found: 0 or more than 1 */
    bool                 retried;  /* the one retry after a broken connection is used */
    enum ldap_client_rc  rc;       /* at LDAP_STEP_DONE */
    char                 reason[320];
    double               started;  /* ev_now() */
    ev_timer             timer;    /* ldap.timeout for the whole check; then at once, to
                                    * hand the result over */
};

struct ldap_conn {
    struct ldap_dir     *dir;      /* borrows */
    struct ldap_conn    *next;     /* the dir's list */
    LDAP                *ld;       /* owns */
    ev_io                io;       /* readable: results, or the server going away; does
                                    * not keep the loop alive (ev_unref) */
    struct ldap_request *req;      /* the check running on it, or NULL: idle */
    int                  msgid;    /* of the operation in flight */
    size_t               uri;      /* index into cfg->uris */
    unsigned             checks;   /* checks started on it */
    bool                 as_service; /* bound as the search identity (search mode) */
};

/* One domain's directory on this worker. */
struct ldap_dir {
    struct ldap_client         *client;   /* borrows */
    struct ldap_dir            *next;
    const struct config_domain *domain;   /* borrows: the generation's */
    const struct config_ldap   *cfg;      /* domain->ldap */
    struct ldap_conn           *conns;    /* owns; idle and busy */
    size_t                      n_conns;
    struct ldap_dial_job       *dialing;  /* the connect in flight (at most one), or NULL */
    size_t                      next_uri; /* where the next connect starts */
    struct ldap_request        *head;     /* owns the queue */
    struct ldap_request        *tail;
};

struct ldap_client {
    struct ev_loop        *loop;    /* borrows */
    struct offload        *offload; /* borrows */
    struct offload_return *ret;     /* borrows: the worker's */
    struct pin             pin;     /* pin.owner borrowed: the caller holds it */
    struct ldap_dir       *dirs;    /* owns */
    struct ldap_request   *reqs;    /* owns every check, wherever it is */
};

/* A connect on the offload pool. Touched by one thread at a time (offload.h). */
struct ldap_dial_job {
    struct offload_job        job;  /* first: the queue links through it */
    struct ldap_dir          *dir;  /* NULL once the pool is gone (loop thread only) */
    struct ev_loop           *loop; /* borrows; holds a reference (ev_ref) meanwhile, so
                                     * the worker waits for it before it exits */
    struct pin                pin;  /* holds a reference to pin.owner: cfg stays valid */
    const struct config_ldap *cfg;
    size_t                    first; /* the URI tried first */
    LDAP                     *ld;   /* result: owns until done() takes it */
    size_t                    uri;
    double                    secs;
    char                      err[512];
};

static void ldap_conn_io_cb(struct ev_loop *loop, ev_io *w, int revents);
static void ldap_request_timer_cb(struct ev_loop *loop, ev_timer *t, int revents);

/* ---- checks ------------------------------------------------------------------------- */

static void
ldap_request_free(struct ldap_request *r)
{
    struct ldap_client *c = r->dir->client;

    if (r->all_prev != NULL)
        r->all_prev->all_next = r->all_next;
    else
        c->reqs = r->all_next;
    if (r->all_next != NULL)
        r->all_next->all_prev = r->all_prev;
    ev_timer_stop(c->loop, &r->timer);
    if (r->password != NULL)
        explicit_bzero(r->password, r->password_len);
    free(r->password);
    free(r->local);
    free(r->domain);
    free(r->user_dn);
    free(r);
}

/* The result is known: the timer hands it over on the next loop iteration. */
static void
ldap_request_finish(struct ldap_request *r, enum ldap_client_rc rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
ldap_request_finish(struct ldap_request *r, enum ldap_client_rc rc, const char *fmt, ...)
{
    struct ev_loop *loop = r->dir->client->loop;
    struct logline  l;
    va_list         ap;

    va_start(ap, fmt);
    vsnprintf(r->reason, sizeof(r->reason), fmt, ap);
    va_end(ap);
    r->rc = rc;
    r->step = LDAP_STEP_DONE;
    r->conn = NULL;
    log_begin(&l, rc == LDAP_CLIENT_UNAVAILABLE ? LOG_WARNING : LOG_DEBUG,
              rc == LDAP_CLIENT_UNAVAILABLE ? "ldap.unavailable" : "ldap.result", r->sid);
    log_str(&l, "domain", r->dir->domain->name);
    log_str(&l, "result", rc == LDAP_CLIENT_OK ? "ok" : rc == LDAP_CLIENT_INVALID ? "invalid"
                                                                                   : "unavailable");
    log_str(&l, "reason", r->reason);
    log_int(&l, "ms", (long long)((ev_now(loop) - r->started) * 1000));
    log_end(&l);
    ev_timer_stop(loop, &r->timer);
    ev_timer_set(&r->timer, 0., 0.);
    ev_timer_start(loop, &r->timer);
}

/* Free r and tell its asker (if any is left). */
static void
ldap_request_deliver(struct ldap_request *r)
{
    ldap_client_done_fn *done = r->done;
    void                *arg = r->arg;
    enum ldap_client_rc  rc = r->rc;
    char                 reason[sizeof(r->reason)];

    memcpy(reason, r->reason, sizeof(reason));
    ldap_request_free(r);
    if (done != NULL)
        done(arg, rc, reason);
}

static void
ldap_dir_enqueue(struct ldap_dir *dir, struct ldap_request *r, bool front)
{
    r->step = LDAP_STEP_QUEUED;
    r->conn = NULL;
    if (front) {
        r->next = dir->head;
        dir->head = r;
        if (dir->tail == NULL)
            dir->tail = r;
        return;
    }
    r->next = NULL;
    if (dir->tail != NULL)
        dir->tail->next = r;
    else
        dir->head = r;
    dir->tail = r;
}

static void
ldap_dir_unqueue(struct ldap_dir *dir, struct ldap_request *r)
{
    struct ldap_request **p = &dir->head, *prev = NULL;

    for (; *p != NULL; prev = *p, p = &(*p)->next) {
        if (*p == r) {
            *p = r->next;
            if (dir->tail == r)
                dir->tail = prev;
            r->next = NULL;
            return;
        }
    }
}

static struct ldap_request *
ldap_dir_pop(struct ldap_dir *dir)
{
    struct ldap_request *r = dir->head;

    if (r != NULL)
        ldap_dir_unqueue(dir, r);
    return r;
}

/* ---- connections -------------------------------------------------------------------- */

static struct ldap_conn *
ldap_conn_new(struct ldap_dir *dir, LDAP *ld, size_t uri)
{
    struct ev_loop   *loop = dir->client->loop;
    struct ldap_conn *c = calloc(1, sizeof(*c));
    int               fd = -1;

    if (c == NULL || ldap_get_option(ld, LDAP_OPT_DESC, &fd) != LDAP_OPT_SUCCESS || fd < 0) {
        free(c);
        return NULL;
    }
    c->dir = dir;
    c->ld = ld;
    c->uri = uri;
    c->msgid = -1;
    ev_io_init(&c->io, ldap_conn_io_cb, fd, EV_READ);
    ev_io_start(loop, &c->io);
    ev_unref(loop); /* an idle connection must not keep a draining worker alive */
    c->next = dir->conns;
    dir->conns = c;
    dir->n_conns++;
    return c;
}

/* Close c. failover: new connections start at the next URI. Its check, if any, is the
 * caller's to finish or requeue. */
static void
ldap_conn_close(struct ldap_conn *c, bool failover)
{
    struct ldap_dir   *dir = c->dir;
    struct ev_loop    *loop = dir->client->loop;
    struct ldap_conn **p;

    for (p = &dir->conns; *p != NULL; p = &(*p)->next) {
        if (*p == c) {
            *p = c->next;
            break;
        }
    }
    dir->n_conns--;
    if (failover)
        dir->next_uri = (c->uri + 1) % dir->cfg->n_uris;
    ev_ref(loop);
    ev_io_stop(loop, &c->io);
    ldap_unbind_ext(c->ld, NULL, NULL); /* the socket is non-blocking: never waits */
    free(c);
}

/* The check on c is over: c is idle again. */
static void
ldap_conn_release(struct ldap_conn *c)
{
    c->req = NULL;
    c->msgid = -1;
}

static const char *
ldap_conn_error(struct ldap_conn *c)
{
    int err = LDAP_OTHER;

    ldap_get_option(c->ld, LDAP_OPT_RESULT_CODE, &err);
    return ldap_err2string(err);
}

/* c broke (the server went away, a send failed): close it, and retry its check once on
 * another connection if c had served an earlier check (it may have gone stale while
 * idle) and time is left; otherwise the check is UNAVAILABLE. */
static void
ldap_conn_failed(struct ldap_conn *c, const char *what)
{
    struct ldap_request *r = c->req;
    struct ldap_dir     *dir = c->dir;
    char                 why[256];
    bool                 stale = c->checks > 1;
    struct logline       l;

    snprintf(why, sizeof(why), "%s: %s (%s)", what, ldap_conn_error(c), dir->cfg->uris[c->uri]);
    log_begin(&l, r != NULL ? LOG_WARNING : LOG_INFO, "ldap.disconnect", r != NULL ? r->sid : 0);
    log_str(&l, "domain", dir->domain->name);
    log_str(&l, "uri", dir->cfg->uris[c->uri]);
    log_str(&l, "error", why);
    log_end(&l);
    ldap_conn_close(c, r != NULL); /* an idle one closed by the server says little */
    if (r == NULL)
        return;
    if (stale && !r->retried) {
        r->retried = true;
        ldap_dir_enqueue(dir, r, true);
        return;
    }
    ldap_request_finish(r, LDAP_CLIENT_UNAVAILABLE, "%s", why);
}

/* ---- the operations of a check ------------------------------------------------------ */

/* Send the operation of r->step on r->conn. false: the connection broke (closed, and r
 * requeued or finished). */
static bool
ldap_request_send(struct ldap_request *r)
{
    struct ldap_conn         *c = r->conn;
    const struct config_ldap *cfg = r->dir->cfg;
    char                     *attrs[] = {LDAP_NO_ATTRS, NULL};
    char                     *filter;
    struct berval             cred;
    int                       rc;

    switch (r->step) {
    case LDAP_STEP_SERVICE_BIND: /* anonymous when there is no service account */
        cred.bv_val = cfg->bind_password != NULL ? cfg->bind_password : "";
        cred.bv_len = strlen(cred.bv_val);
        rc = ldap_sasl_bind(c->ld, cfg->bind_dn != NULL ? cfg->bind_dn : "", LDAP_SASL_SIMPLE,
                            &cred, NULL, NULL, &c->msgid);
        break;
    case LDAP_STEP_SEARCH:
        filter = ldap_template_expand(cfg->filter, LDAP_TEMPLATE_FILTER, r->local, r->local_len,
                                      r->domain, r->domain_len);
        if (filter == NULL) {
            ldap_conn_release(c);
            ldap_request_finish(r, LDAP_CLIENT_UNAVAILABLE, "out of memory");
            return true;
        }
        /* sizelimit 2: one entry is the user, two mean the filter is ambiguous */
        rc = ldap_search_ext(c->ld, cfg->base_dn, LDAP_SCOPE_SUBTREE, filter, attrs, 1, NULL,
                             NULL, NULL, 2, &c->msgid);
        free(filter);
        break;
    default: /* LDAP_STEP_USER_BIND, LDAP_STEP_DECOY_BIND */
        cred.bv_val = r->password;
        cred.bv_len = r->password_len;
        rc = ldap_sasl_bind(c->ld, r->user_dn, LDAP_SASL_SIMPLE, &cred, NULL, NULL, &c->msgid);
        c->as_service = false; /* whatever the answer, c is no longer the service's */
        break;
    }
    if (rc == LDAP_SUCCESS)
        return true;
    ldap_conn_failed(c, ldap_step_names[r->step]);
    return false;
}

/* Run r on the idle connection c. */
static void
ldap_request_start(struct ldap_request *r, struct ldap_conn *c)
{
    const struct config_ldap *cfg = r->dir->cfg;

    c->req = r;
    c->checks++;
    r->conn = c;
    r->entries = 0;
    free(r->user_dn);
    r->user_dn = NULL;
    if (cfg->filter != NULL) {
        r->step = c->as_service ? LDAP_STEP_SEARCH : LDAP_STEP_SERVICE_BIND;
    } else {
        r->step = LDAP_STEP_USER_BIND;
        r->user_dn = ldap_template_expand(cfg->bind_dn, LDAP_TEMPLATE_DN, r->local,
                                          r->local_len, r->domain, r->domain_len);
        if (r->user_dn == NULL) {
            ldap_conn_release(c);
            ldap_request_finish(r, LDAP_CLIENT_UNAVAILABLE, "out of memory");
            return;
        }
    }
    ldap_request_send(r);
}

/* A user bind's answer: RFC 4511 4.2.2 / RFC 4513 5.1.3. Only codes that mean "not this
 * user with this password" are INVALID; anything else is the directory's trouble. */
static bool
ldap_bind_refused(int err)
{
    return err == LDAP_INVALID_CREDENTIALS || err == LDAP_INAPPROPRIATE_AUTH ||
           err == LDAP_NO_SUCH_OBJECT || err == LDAP_INVALID_DN_SYNTAX ||
           err == LDAP_UNWILLING_TO_PERFORM; /* e.g. a disabled account (389-ds) */
}

/* Search mode found no user, or more than one: bind as LDAP_DECOY_RDN under base_dn
 * with the client's password, so that a name nobody has costs the directory round trip
 * (and shows the directory the failed bind) that a wrong password does. false: c is
 * gone. */
static bool
ldap_request_decoy(struct ldap_request *r)
{
    const char *base = r->dir->cfg->base_dn != NULL ? r->dir->cfg->base_dn : "";

    free(r->user_dn);
    if (asprintf(&r->user_dn, "%s%s%s", LDAP_DECOY_RDN, base[0] != '\0' ? "," : "", base) < 0) {
        r->user_dn = NULL;
        ldap_conn_release(r->conn);
        ldap_request_finish(r, LDAP_CLIENT_UNAVAILABLE, "out of memory");
        return true;
    }
    r->step = LDAP_STEP_DECOY_BIND;
    return ldap_request_send(r);
}

/* A result (bind or search done) for r's operation, with code err. false: c is gone. */
static bool
ldap_request_result(struct ldap_request *r, int err)
{
    struct ldap_conn         *c = r->conn;
    const struct config_ldap *cfg = r->dir->cfg;

    switch (r->step) {
    case LDAP_STEP_SERVICE_BIND:
        if (err == LDAP_SUCCESS) {
            c->as_service = true;
            r->step = LDAP_STEP_SEARCH;
            return ldap_request_send(r);
        }
        ldap_conn_release(c);
        ldap_request_finish(r, LDAP_CLIENT_UNAVAILABLE, "service bind as '%s': %s",
                            cfg->bind_dn != NULL ? cfg->bind_dn : "(anonymous)",
                            ldap_err2string(err));
        return true;
    case LDAP_STEP_SEARCH:
        if (err == LDAP_SUCCESS && r->entries == 1 && r->user_dn != NULL) {
            r->step = LDAP_STEP_USER_BIND;
            return ldap_request_send(r);
        }
        if (err == LDAP_SUCCESS || err == LDAP_SIZELIMIT_EXCEEDED)
            return ldap_request_decoy(r);
        ldap_conn_release(c);
        ldap_request_finish(r, LDAP_CLIENT_UNAVAILABLE, "search under '%s': %s", cfg->base_dn,
                            ldap_err2string(err));
        return true;
    case LDAP_STEP_DECOY_BIND: /* answered as the user's bind would be, never accepted */
        ldap_conn_release(c);
        if (err != LDAP_SUCCESS && !ldap_bind_refused(err))
            ldap_request_finish(r, LDAP_CLIENT_UNAVAILABLE, "bind as '%s': %s", r->user_dn,
                                ldap_err2string(err));
        else if (r->entries == 0)
            ldap_request_finish(r, LDAP_CLIENT_INVALID, "no such user under '%s'", cfg->base_dn);
        else
            ldap_request_finish(r, LDAP_CLIENT_INVALID, "the filter matches more than one "
                                                        "entry under '%s'", cfg->base_dn);
        return true;
    default: /* LDAP_STEP_USER_BIND */
        ldap_conn_release(c);
        if (err == LDAP_SUCCESS)
            ldap_request_finish(r, LDAP_CLIENT_OK, "bound as '%s'", r->user_dn);
        else if (ldap_bind_refused(err))
            ldap_request_finish(r, LDAP_CLIENT_INVALID, "bind as '%s': %s", r->user_dn,
                                ldap_err2string(err));
        else
            ldap_request_finish(r, LDAP_CLIENT_UNAVAILABLE, "bind as '%s': %s", r->user_dn,
                                ldap_err2string(err));
        return true;
    }
}

/* One message read from c. false: c is gone. */
static bool
ldap_conn_message(struct ldap_conn *c, LDAPMessage *msg)
{
    struct ldap_request *r = c->req;
    char                *dn;
    int                  err = LDAP_OTHER;

    if (r == NULL) { /* an idle connection speaks: a Notice of Disconnection (RFC 4511
                      * 4.4.1) or worse; either way it is done */
        ldap_conn_close(c, false);
        return false;
    }
    if (ldap_msgid(msg) != c->msgid)
        return true; /* unsolicited: wait for the server to close, or our answer */
    switch (ldap_msgtype(msg)) {
    case LDAP_RES_SEARCH_ENTRY:
        if (++r->entries == 1 && (dn = ldap_get_dn(c->ld, msg)) != NULL) {
            r->user_dn = strdup(dn);
            ldap_memfree(dn);
        }
        return true;
    case LDAP_RES_BIND:
    case LDAP_RES_SEARCH_RESULT:
        if (ldap_parse_result(c->ld, msg, &err, NULL, NULL, NULL, NULL, 0) != LDAP_SUCCESS)
            err = LDAP_DECODING_ERROR;
        return ldap_request_result(r, err);
    default: /* references, intermediate responses: nothing we use */
        return true;
    }
}

/* Read everything c has for us. With TLS, bytes may wait inside the TLS layer where
 * poll cannot see them: keep asking until libldap has nothing. */
static void
ldap_conn_read(struct ldap_conn *c)
{
    struct timeval zero = {0, 0};
    LDAPMessage   *msg;
    int            rc;
    bool           alive = true;

    while (alive) {
        msg = NULL;
        rc = ldap_result(c->ld, LDAP_RES_ANY, LDAP_MSG_ONE, &zero, &msg);
        if (rc == 0)
            return;
        if (rc < 0) {
            ldap_msgfree(msg);
            ldap_conn_failed(c, c->req != NULL ? ldap_step_names[c->req->step] : "idle");
            return;
        }
        alive = ldap_conn_message(c, msg);
        ldap_msgfree(msg);
    }
}

/* ---- the queue ---------------------------------------------------------------------- */

static void ldap_dir_dial(struct ldap_dir *dir);

static struct ldap_conn *
ldap_dir_idle(struct ldap_dir *dir)
{
    for (struct ldap_conn *c = dir->conns; c != NULL; c = c->next)
        if (c->req == NULL)
            return c;
    return NULL;
}

/* Give queued checks the idle connections; open another one if they still wait. */
static void
ldap_dir_dispatch(struct ldap_dir *dir)
{
    struct ldap_conn *c;

    while (dir->head != NULL && (c = ldap_dir_idle(dir)) != NULL)
        ldap_request_start(ldap_dir_pop(dir), c);
    if (dir->head != NULL && dir->dialing == NULL && dir->n_conns < dir->cfg->max_connections)
        ldap_dir_dial(dir);
}

static void
ldap_conn_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct ldap_conn *c = container_of(w, struct ldap_conn, io);
    struct ldap_dir  *dir = c->dir;

    (void)loop;
    (void)revents;
    ldap_conn_read(c);
    ldap_dir_dispatch(dir);
}

/* The check's deadline, or the moment to hand its result over. */
static void
ldap_request_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct ldap_request *r = container_of(t, struct ldap_request, timer);
    struct ldap_dir     *dir = r->dir;
    enum ldap_step       step = r->step;
    struct logline       l;

    (void)loop;
    (void)revents;
    if (step != LDAP_STEP_DONE) {
        log_begin(&l, LOG_WARNING, "ldap.timeout", r->sid);
        log_str(&l, "domain", dir->domain->name);
        log_str(&l, "step", ldap_step_names[step]);
        if (r->conn != NULL)
            log_str(&l, "uri", dir->cfg->uris[r->conn->uri]);
        log_dbl(&l, "timeout", dir->cfg->timeout);
        log_end(&l);
        if (r->conn != NULL) /* a late answer must not meet the next check */
            ldap_conn_close(r->conn, true);
        else
            ldap_dir_unqueue(dir, r);
        ldap_request_finish(r, LDAP_CLIENT_UNAVAILABLE, "no answer within %g s (%s%s)",
                            dir->cfg->timeout, ldap_step_names[step],
                            step == LDAP_STEP_QUEUED && dir->dialing != NULL
                                ? ", connecting" : "");
        ev_timer_stop(loop, t);
    }
    ldap_dir_dispatch(dir);
    ldap_request_deliver(r);
}

/* ---- connecting, on the offload pool ------------------------------------------------ */

static void
ldap_dial_work(struct offload_job *job)
{
    struct ldap_dial_job *j = (struct ldap_dial_job *)job;
    size_t                n = j->cfg->n_uris, k, used = 0;
    double                t0 = ev_time();
    char                  e[384];

    for (k = 0; k < n && j->ld == NULL; k++) {
        j->uri = (j->first + k) % n;
        j->ld = ldap_dial(j->cfg, j->uri, e, sizeof(e));
        if (j->ld == NULL && used < sizeof(j->err))
            used += (size_t)snprintf(j->err + used, sizeof(j->err) - used, "%s%s: %s",
                                     k > 0 ? "; " : "", j->cfg->uris[j->uri], e);
    }
    j->secs = ev_time() - t0;
}

static void
ldap_dial_job_free(struct ldap_dial_job *j)
{
    if (j->ld != NULL)
        ldap_unbind_ext(j->ld, NULL, NULL);
    ev_unref(j->loop);
    pin_unref(&j->pin);
    free(j);
}

static void
ldap_dial_done(struct offload_job *job)
{
    struct ldap_dial_job *j = (struct ldap_dial_job *)job;
    struct ldap_dir      *dir = j->dir;
    struct ldap_request  *r;
    struct logline        l;

    if (dir == NULL) { /* the pool is gone */
        ldap_dial_job_free(j);
        return;
    }
    dir->dialing = NULL;
    if (j->ld != NULL && ldap_conn_new(dir, j->ld, j->uri) != NULL) {
        j->ld = NULL; /* the connection has it */
        dir->next_uri = j->uri;
        log_begin(&l, LOG_INFO, "ldap.connect", 0);
        log_str(&l, "domain", dir->domain->name);
        log_str(&l, "uri", dir->cfg->uris[j->uri]);
        log_int(&l, "ms", (long long)(j->secs * 1000));
        log_int(&l, "connections", (long long)dir->n_conns);
        log_end(&l);
    } else {
        if (j->ld != NULL)
            snprintf(j->err, sizeof(j->err), "out of memory");
        log_begin(&l, LOG_WARNING, "ldap.unreachable", 0);
        log_str(&l, "domain", dir->domain->name);
        log_str(&l, "error", j->err);
        log_int(&l, "ms", (long long)(j->secs * 1000));
        log_end(&l);
        /* every URI failed: the checks waiting for a connection cannot be answered */
        while ((r = ldap_dir_pop(dir)) != NULL)
            ldap_request_finish(r, LDAP_CLIENT_UNAVAILABLE, "%s", j->err);
    }
    ldap_dial_job_free(j);
    ldap_dir_dispatch(dir);
}

static void
ldap_dir_dial(struct ldap_dir *dir)
{
    struct ldap_client   *c = dir->client;
    struct ldap_dial_job *j = calloc(1, sizeof(*j));
    struct ldap_request  *r;

    if (j == NULL) {
        while ((r = ldap_dir_pop(dir)) != NULL)
            ldap_request_finish(r, LDAP_CLIENT_UNAVAILABLE, "out of memory");
        return;
    }
    j->dir = dir;
    j->loop = c->loop;
    j->pin = c->pin;
    pin_ref(&j->pin);
    j->cfg = dir->cfg;
    j->first = dir->next_uri;
    j->job.work = ldap_dial_work;
    j->job.done = ldap_dial_done;
    dir->dialing = j;
    ev_ref(c->loop); /* released in ldap_dial_job_free() */
    offload_submit(c->offload, c->ret, &j->job);
}

/* ---- the pool ----------------------------------------------------------------------- */

struct ldap_client *
ldap_client_new(struct ev_loop *loop, struct offload *offload, struct offload_return *ret,
                const struct pin *pin)
{
    struct ldap_client *c = calloc(1, sizeof(*c));

    if (c == NULL)
        return NULL;
    c->loop = loop;
    c->offload = offload;
    c->ret = ret;
    c->pin = *pin;
    return c;
}

void
ldap_client_free(struct ldap_client *c)
{
    struct ldap_dir     *dir;
    struct ldap_request *r;

    if (c == NULL)
        return;
    while ((r = c->reqs) != NULL) /* only cancelled ones: nobody is told */
        ldap_request_free(r);
    while ((dir = c->dirs) != NULL) {
        c->dirs = dir->next;
        if (dir->dialing != NULL)
            dir->dialing->dir = NULL; /* ldap_dial_done() frees it */
        while (dir->conns != NULL)
            ldap_conn_close(dir->conns, false);
        free(dir);
    }
    free(c);
}

static struct ldap_dir *
ldap_client_dir(struct ldap_client *c, const struct config_domain *d)
{
    struct ldap_dir *dir;

    for (dir = c->dirs; dir != NULL; dir = dir->next)
        if (dir->domain == d)
            return dir;
    dir = calloc(1, sizeof(*dir));
    if (dir == NULL)
        return NULL;
    dir->client = c;
    dir->domain = d;
    dir->cfg = d->ldap;
    dir->next = c->dirs;
    c->dirs = dir;
    return dir;
}

static char *
ldap_client_memdup(const char *s, size_t n)
{
    char *p = malloc(n + 1);

    if (p != NULL) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

struct ldap_request *
ldap_client_verify(struct ldap_client *c, const struct config_domain *d, uint64_t sid,
                   const char *local, size_t local_len, const char *domain, size_t domain_len,
                   const char *password, size_t password_len, ldap_client_done_fn *done,
                   void *arg)
{
    struct ldap_dir     *dir = ldap_client_dir(c, d);
    struct ldap_request *r = dir != NULL ? calloc(1, sizeof(*r)) : NULL;

    if (r == NULL)
        return NULL;
    r->dir = dir;
    r->sid = sid;
    r->done = done;
    r->arg = arg;
    r->local = ldap_client_memdup(local, local_len);
    r->local_len = local_len;
    r->domain = ldap_client_memdup(domain, domain_len);
    r->domain_len = domain_len;
    r->password = ldap_client_memdup(password, password_len);
    r->password_len = password_len;
    r->started = ev_now(c->loop);
    ev_timer_init(&r->timer, ldap_request_timer_cb, dir->cfg->timeout, 0.);
    r->all_next = c->reqs;
    if (c->reqs != NULL)
        c->reqs->all_prev = r;
    c->reqs = r;
    if (r->local == NULL || r->domain == NULL || r->password == NULL) {
        ldap_request_free(r);
        return NULL;
    }
    ev_timer_start(c->loop, &r->timer);
    ldap_dir_enqueue(dir, r, false);
    ldap_dir_dispatch(dir); /* sends at most: every answer comes from the loop */
    return r;
}

void
ldap_client_cancel(struct ldap_request *r)
{
    r->done = NULL;
    if (r->step == LDAP_STEP_QUEUED) {
        ldap_dir_unqueue(r->dir, r);
        ldap_request_free(r);
    } else if (r->step == LDAP_STEP_DONE) {
        ldap_request_free(r);
    }
    /* else running on a connection: its answer or its timer frees it */
}
