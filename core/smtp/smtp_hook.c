/* core/smtp/smtp_hook.c: the smtp side of the seam with the policy engine (declared in
 * smtp_session.h): each question of the session (smtp_hook_connect .. smtp_hook_relayed)
 * fills the views its hook's arguments are made from (policy/lapi_session.h), and the
 * context the engine runs with (policy/hook_ctx.h: the worker's and the generation's
 * services, and calls back into the session), runs the hook (policy/hook_run.c), and hands
 * a verdict that came later to the session's done function. A hook no policy has is
 * answered at once without touching Lua.
 * It is the one file that knows both the session's fields and the engine, and so lives
 * on the smtp side: core/policy/ sees views and a context, never a session, includes
 * nothing above itself, and can be driven without one (tests/unit/test_hook_run.c). */
#include <stdio.h>
#include <string.h>

#include "net/conn.h"
#include "net/tls.h"
#include "policy/hook.h"
#include "policy/hook_ctx.h"
#include "policy/hook_run.h"
#include "policy/lapi_session.h"
#include "policy/policy_vm.h"
#include "smtp/smtp_session_internal.h"

/* ---- what the engine calls back ------------------------------------------------------ */

/* A pending run ended (the engine freed it): the session goes on with v. */
static void
smtp_hook_done_cb(void *owner, const struct verdict *v)
{
    struct smtp_session *s = owner;
    hook_done_fn        *done = s->hook_done;

    s->hook = NULL;
    s->hook_done = NULL;
    done(s, v);
}

/* Remembered once 235 has been sent (smtp_auth.c), not before. */
static void
smtp_hook_remember_cb(void *owner, const char *cache_key, double ttl)
{
    struct smtp_session *s = owner;

    if (s->auth == NULL) /* the exchange is over: nothing will be remembered */
        return;
    snprintf(s->auth->cache_key, sizeof(s->auth->cache_key), "%s", cache_key);
    s->auth->cache_ttl = ttl;
}

static bool
smtp_hook_message_cb(void *owner, struct hook_message *out)
{
    struct smtp_session *s = owner;

    if (s->tx == NULL)
        return false;
    out->msg = &s->tx->msg;
    out->body_start = s->tx->body_start;
    out->added_end = &s->tx->added_end;
    return true;
}

static int
smtp_hook_reserve_cb(void *owner, size_t n, size_t cap)
{
    return smtp_budget_reserve(owner, n, cap) == INFLIGHT_OK ? 0 : -1;
}

/* The context of every hook call of s. */
static void
smtp_hook_ctx(struct smtp_session *s, struct hook_ctx *ctx)
{
    *ctx = (struct hook_ctx){
        .sid = s->id,
        .client = s->client,
        .cfg = s->cfg,
        .loop = s->server->loop,
        .offload = s->server->offload,
        .offload_ret = s->server->offload_ret,
        .zones = s->server->zones,
        .gen = s->pin.gen,
        .gen_id = s->pin.gen_id,
        .authdb = s->pin.authdb,
        .stats = s->server->hook_stats,
        .owner = s,
        .done = smtp_hook_done_cb,
        .remember_on_235 = smtp_hook_remember_cb,
        .message = smtp_hook_message_cb,
        .message_reserve = smtp_hook_reserve_cb,
    };
}

/* ---- the hooks' arguments ------------------------------------------------------------ */

static void
smtp_hook_push_session(lua_State *L, struct smtp_session *s)
{
    SSL                     *ssl = s->tls ? s->conn->ssl : NULL;
    struct lapi_session_view v = {
        .id = s->id,
        .listener = s->lcfg->name,
        .client_address = s->peer,
        .client = s->client,
        .client_port = s->peer_port,
        .helo = s->ehlo_seen ? s->helo : NULL,
        .tls_version = ssl ? tls_version_name(ssl) : NULL,
        .tls_cipher = ssl ? tls_cipher_name(ssl) : NULL,
        .tls_sni = ssl ? tls_sni_name(ssl) : NULL,
        .user = s->authenticated ? s->user : NULL,
        .domain = s->authenticated ? s->domain : NULL,
        .auth_mechanism = s->authenticated ? sasl_mech_name(s->auth_mech) : NULL,
        .lua_ref = &s->lua_session,
    };

    lapi_push_session(L, &v);
}

/* with_size: the message has arrived (on_data, on_relayed); pending: the DSN parameters
 * of the recipient on_rcpt decides, or NULL. */
static void
smtp_hook_push_tx(lua_State *L, struct smtp_session *s, bool with_size,
                  const struct dsn_rcpt *pending)
{
    const struct smtp_tx *tx = s->tx;
    struct lapi_tx_view   v = {
        .sid = s->id,
        .number = s->messages + 1,
        .sender = tx->mail_from,
        .rcpts = tx->rcpts,
        .n_rcpts = tx->n_rcpts,
        .declared_size_set = tx->declared_size_set,
        .declared_size = tx->declared_size,
        .with_size = with_size,
        .size = tx->dec.size,
        .smtputf8 = tx->smtputf8,
        .dsn_ret = (int)tx->dsn_ret,
        .dsn_envid = tx->dsn_envid,
        .dsn_rcpts = tx->dsn_rcpts,
        .dsn_pending = pending,
    };

    lapi_push_tx(L, &v);
}

/* ---- the questions ------------------------------------------------------------------- */

/* The vm's state when some policy has hook, else NULL (and *out says no opinion). */
static lua_State *
smtp_hook_state(struct smtp_session *s, enum policy_hook hook, struct verdict *out)
{
    struct policy_vm *vm = s->pin.vm;

    verdict_set(out, VERDICT_NONE, 0, NULL, NULL);
    if (vm == NULL || policy_vm_hook_count(vm, hook) == 0)
        return NULL;
    return policy_vm_state(vm);
}

/* Run hook with the nargs arguments pushed; a pending run is s->hook until done. */
static enum hook_rc
smtp_hook_start(struct smtp_session *s, enum policy_hook hook, int nargs, bool notify,
                hook_done_fn *done, struct verdict *out)
{
    struct hook_ctx ctx;
    enum hook_rc    rc;

    smtp_hook_ctx(s, &ctx);
    if (notify)
        rc = hook_run_notify(&ctx, s->pin.vm, hook, nargs, &s->hook);
    else
        rc = hook_run_start(&ctx, s->pin.vm, hook, nargs, out, &s->hook);
    if (rc == HOOK_PENDING)
        s->hook_done = done;
    return rc;
}

enum hook_rc
smtp_hook_connect(struct smtp_session *s, hook_done_fn *done, struct verdict *out)
{
    lua_State *L = smtp_hook_state(s, POLICY_ON_CONNECT, out);

    if (L == NULL)
        return HOOK_DONE;
    smtp_hook_push_session(L, s);
    return smtp_hook_start(s, POLICY_ON_CONNECT, 1, false, done, out);
}

enum hook_rc
smtp_hook_helo(struct smtp_session *s, const char *name, hook_done_fn *done, struct verdict *out)
{
    lua_State *L = smtp_hook_state(s, POLICY_ON_HELO, out);

    if (L == NULL)
        return HOOK_DONE;
    smtp_hook_push_session(L, s);
    lua_pushstring(L, name);
    return smtp_hook_start(s, POLICY_ON_HELO, 2, false, done, out);
}

enum hook_rc
smtp_hook_auth(struct smtp_session *s, hook_done_fn *done, struct verdict *out)
{
    lua_State *L = smtp_hook_state(s, POLICY_ON_AUTH, out);

    if (L == NULL)
        return HOOK_DONE;
    smtp_hook_push_session(L, s);
    lapi_push_auth(L, &s->sasl.creds, true);
    return smtp_hook_start(s, POLICY_ON_AUTH, 2, false, done, out);
}

enum hook_rc
smtp_hook_mail_from(struct smtp_session *s, hook_done_fn *done, struct verdict *out)
{
    lua_State *L = smtp_hook_state(s, POLICY_ON_MAIL_FROM, out);

    if (L == NULL)
        return HOOK_DONE;
    smtp_hook_push_session(L, s);
    smtp_hook_push_tx(L, s, false, NULL);
    lua_pushstring(L, s->tx->mail_from);
    return smtp_hook_start(s, POLICY_ON_MAIL_FROM, 3, false, done, out);
}

enum hook_rc
smtp_hook_rcpt(struct smtp_session *s, const char *rcpt, hook_done_fn *done, struct verdict *out)
{
    lua_State *L = smtp_hook_state(s, POLICY_ON_RCPT, out);

    if (L == NULL)
        return HOOK_DONE;
    smtp_hook_push_session(L, s);
    smtp_hook_push_tx(L, s, false, &s->pending_dsn);
    lua_pushstring(L, rcpt);
    return smtp_hook_start(s, POLICY_ON_RCPT, 3, false, done, out);
}

enum hook_rc
smtp_hook_data(struct smtp_session *s, hook_done_fn *done, struct verdict *out)
{
    lua_State *L = smtp_hook_state(s, POLICY_ON_DATA, out);

    if (L == NULL)
        return HOOK_DONE;
    smtp_hook_push_session(L, s);
    smtp_hook_push_tx(L, s, true, NULL);
    return smtp_hook_start(s, POLICY_ON_DATA, 2, false, done, out);
}

/* Notification hooks: the vm's state when some policy has hook, else NULL. */
static lua_State *
smtp_hook_notify_state(struct smtp_session *s, enum policy_hook hook)
{
    struct verdict v;

    return smtp_hook_state(s, hook, &v);
}

enum hook_rc
smtp_hook_auth_result(struct smtp_session *s, const struct verdict *v, hook_done_fn *done)
{
    lua_State *L = smtp_hook_notify_state(s, POLICY_ON_AUTH_RESULT);

    if (L == NULL)
        return HOOK_DONE;
    smtp_hook_push_session(L, s);
    lapi_push_auth(L, &s->sasl.creds, false);
    lapi_push_verdict(L, v);
    return smtp_hook_start(s, POLICY_ON_AUTH_RESULT, 3, true, done, NULL);
}

enum hook_rc
smtp_hook_relayed(struct smtp_session *s, const struct smtp_relayed *r, hook_done_fn *done)
{
    lua_State *L = smtp_hook_notify_state(s, POLICY_ON_RELAYED);

    if (L == NULL)
        return HOOK_DONE;
    smtp_hook_push_session(L, s);
    smtp_hook_push_tx(L, s, true, NULL);
    lapi_push_relayed(L, r->code, r->enhanced, r->text, r->queue_id, r->upstream);
    return smtp_hook_start(s, POLICY_ON_RELAYED, 3, true, done, NULL);
}

/* on_disconnect is asked after the connection is gone, so its arguments are taken while
 * it is still there (the session table shows the TLS parameters; reason may point into the
 * connection): pushed here, popped by smtp_hook_disconnect. */
bool
smtp_hook_session_closing(struct smtp_session *s, const char *reason)
{
    lua_State *L;

    if (s->hook != NULL) { /* a decision nobody will hear */
        hook_run_cancel(s->hook);
        s->hook = NULL;
        s->hook_done = NULL;
    }
    L = smtp_hook_notify_state(s, POLICY_ON_DISCONNECT);
    if (L == NULL)
        return false;
    smtp_hook_push_session(L, s);
    lua_pushstring(L, reason != NULL ? reason : "");
    return true;
}

enum hook_rc
smtp_hook_disconnect(struct smtp_session *s, hook_done_fn *done)
{
    return smtp_hook_start(s, POLICY_ON_DISCONNECT, 2, true, done, NULL);
}

bool
smtp_hook_session_gone(struct smtp_session *s)
{
    bool cancelled = s->hook != NULL;

    if (cancelled) {
        hook_run_cancel(s->hook);
        s->hook = NULL;
        s->hook_done = NULL;
    }
    if (s->pin.vm != NULL)
        lapi_session_release(policy_vm_state(s->pin.vm), &s->lua_session);
    return cancelled;
}
