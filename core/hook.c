/* core/hook.c: the built-in decisions behind the seam in hook.h. The Lua policy engine
 * replaces these bodies; the session code does not change. */
#include "hook.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "authdb.h"
#include "offload.h"
#include "smtp_session.h"
#include "worker.h"

void
verdict_set(struct verdict *v, enum verdict_kind kind, int code, const char *enhanced,
            const char *text)
{
    v->kind = kind;
    v->code = code;
    snprintf(v->enhanced, sizeof(v->enhanced), "%s", enhanced ? enhanced : "");
    snprintf(v->text, sizeof(v->text), "%s", text ? text : "");
}

/* One password check in flight. Owns copies of everything the pool thread reads, so a
 * session that dies meanwhile changes nothing but `session` (loop thread only). */
struct hook_auth_job {
    struct offload_job   job;      /* first: the offload queue links through it */
    struct smtp_session *session;  /* NULL once the session is gone (loop thread only) */
    const struct authdb *db;       /* borrows: outlives all jobs (freed after workers) */
    struct sasl_creds    creds;    /* owns */
    enum authdb_rc       rc;       /* written by the pool thread */
    const char          *domain;   /* borrows from db on AUTHDB_OK */
};

static void
hook_auth_job_free(struct hook_auth_job *j)
{
    struct sasl tmp = { .creds = j->creds };

    sasl_reset(&tmp); /* wipes and frees the secret */
    free(j);
}

static void
hook_auth_work(struct offload_job *job)
{
    struct hook_auth_job *j = (struct hook_auth_job *)job;

    j->rc = authdb_verify(j->db, j->creds.authcid, j->creds.secret, &j->domain);
}

/* The session's identity is the users file's spelling: ASCII lowercase local part and
 * the canonical domain, whatever case the client typed (authdb matched it ignoring case). */
static void
hook_canonical_identity(char *authcid, const char *domain)
{
    char *at = strrchr(authcid, '@');

    for (char *p = authcid; p < at; p++) {
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    }
    if (at != NULL && strlen(at + 1) == strlen(domain))
        memcpy(at + 1, domain, strlen(domain));
}

static void
hook_auth_done(struct offload_job *job)
{
    struct hook_auth_job *j = (struct hook_auth_job *)job;
    struct smtp_session  *s = j->session;

    if (s != NULL) {
        if (j->rc == AUTHDB_OK) {
            hook_canonical_identity(j->creds.authcid, j->domain);
            smtp_session_auth_done(s, true, j->creds.authcid, j->domain, 235, "2.7.0", "ok");
        } else {
            smtp_session_auth_done(s, false, j->creds.authcid, NULL, 535, "5.7.8",
                                   "Authentication credentials invalid");
        }
    }
    hook_auth_job_free(j);
}

/* No token backend in the core: a bearer token is always refused (after the RFC 7628
 * error challenge). Deferred through the offload queue so the answer comes later. */
static void
hook_auth_refuse_work(struct offload_job *job)
{
    ((struct hook_auth_job *)job)->rc = AUTHDB_FAIL;
}

int
hook_auth_start(struct smtp_session *s, struct sasl_creds *creds)
{
    struct daemon        *d = s->worker->daemon;
    struct hook_auth_job *j = calloc(1, sizeof(*j));

    if (j == NULL)
        return -1;
    j->session = s;
    j->db = d->authdb;
    j->creds = *creds;
    memset(creds, 0, sizeof(*creds));
    j->job.work = j->creds.is_token || j->db == NULL ? hook_auth_refuse_work : hook_auth_work;
    j->job.done = hook_auth_done;
    s->auth_pending = j;
    offload_submit(d->offload, s->worker->offload_ret, &j->job);
    return 0;
}

void
hook_auth_cancel(struct smtp_session *s)
{
    struct hook_auth_job *j = s->auth_pending;

    j->session = NULL; /* hook_auth_done frees it when the pool thread is finished */
    s->auth_pending = NULL;
}

static const char *
hook_domain_of(const char *addr)
{
    const char *at = strrchr(addr, '@');

    return at ? at + 1 : NULL;
}

void
hook_mail_from(struct smtp_session *s, const char *sender, struct verdict *out)
{
    const char *dom = hook_domain_of(sender);

    if (dom != NULL && strcasecmp(dom, s->domain) == 0) {
        verdict_set(out, VERDICT_NONE, 0, NULL, NULL);
        return;
    }
    verdict_set(out, VERDICT_REJECT, 550, "5.7.1",
                "Sender address is not in your authenticated domain");
}

void
hook_rcpt(struct smtp_session *s, const char *rcpt, struct verdict *out)
{
    (void)s;
    (void)rcpt;
    verdict_set(out, VERDICT_NONE, 0, NULL, NULL);
}

void
hook_data(struct smtp_session *s, struct verdict *out)
{
    (void)s;
    verdict_set(out, VERDICT_NONE, 0, NULL, NULL);
}
