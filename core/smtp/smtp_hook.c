/* core/smtp/smtp_hook.c: the seam of hook.h, routed to the worker's policies: each question
 * pushes the hook's arguments (lapi_session.c) and runs the hook (hook_run.c). A hook
 * no policy has is answered at once without touching Lua. */
#include "policy/hook.h"

#include <stdio.h>
#include <string.h>

#include "policy/hook_run.h"
#include "policy/lapi_session.h"
#include "policy/policy_vm.h"
#include "smtp/smtp_session.h"
#include "daemon/worker.h"
#include "daemon/worker_gen.h"

/* src (NULL: "") into dst of size bytes, cut to fit. Every hook call sets a verdict at
 * least once, most of them empty: no snprintf for that. */
static void
verdict_copy(char *dst, size_t size, const char *src)
{
    size_t n = src != NULL ? strnlen(src, size - 1) : 0;

    if (n > 0)
        memcpy(dst, src, n);
    dst[n] = '\0';
}

void
verdict_set(struct verdict *v, enum verdict_kind kind, int code, const char *enhanced,
            const char *text)
{
    v->kind = kind;
    v->code = code;
    verdict_copy(v->enhanced, sizeof(v->enhanced), enhanced);
    verdict_copy(v->text, sizeof(v->text), text);
    v->reason[0] = '\0';
    v->user[0] = '\0';
}

/* The vm's state when some policy has hook, else NULL (and *out says no opinion). */
static lua_State *
hook_state(struct smtp_session *s, enum policy_hook hook, struct verdict *out)
{
    struct policy_vm *vm = s->wgen->vm;

    verdict_set(out, VERDICT_NONE, 0, NULL, NULL);
    if (vm == NULL || policy_vm_hook_count(vm, hook) == 0)
        return NULL;
    return policy_vm_state(vm);
}

enum hook_rc
hook_connect(struct smtp_session *s, hook_done_fn *done, struct verdict *out)
{
    lua_State *L = hook_state(s, POLICY_ON_CONNECT, out);

    if (L == NULL)
        return HOOK_DONE;
    lapi_push_session(L, s);
    return hook_run_start(s, s->wgen->vm, POLICY_ON_CONNECT, 1, done, out);
}

enum hook_rc
hook_helo(struct smtp_session *s, const char *name, hook_done_fn *done, struct verdict *out)
{
    lua_State *L = hook_state(s, POLICY_ON_HELO, out);

    if (L == NULL)
        return HOOK_DONE;
    lapi_push_session(L, s);
    lua_pushstring(L, name);
    return hook_run_start(s, s->wgen->vm, POLICY_ON_HELO, 2, done, out);
}

enum hook_rc
hook_auth(struct smtp_session *s, hook_done_fn *done, struct verdict *out)
{
    lua_State *L = hook_state(s, POLICY_ON_AUTH, out);

    if (L == NULL)
        return HOOK_DONE;
    lapi_push_session(L, s);
    lapi_push_auth(L, &s->sasl.creds, true);
    return hook_run_start(s, s->wgen->vm, POLICY_ON_AUTH, 2, done, out);
}

enum hook_rc
hook_mail_from(struct smtp_session *s, hook_done_fn *done, struct verdict *out)
{
    lua_State *L = hook_state(s, POLICY_ON_MAIL_FROM, out);

    if (L == NULL)
        return HOOK_DONE;
    lapi_push_session(L, s);
    lapi_push_tx(L, s, false);
    lua_pushstring(L, s->tx->mail_from);
    return hook_run_start(s, s->wgen->vm, POLICY_ON_MAIL_FROM, 3, done, out);
}

enum hook_rc
hook_rcpt(struct smtp_session *s, const char *rcpt, hook_done_fn *done, struct verdict *out)
{
    lua_State *L = hook_state(s, POLICY_ON_RCPT, out);

    if (L == NULL)
        return HOOK_DONE;
    lapi_push_session(L, s);
    lapi_push_tx(L, s, false);
    lua_pushstring(L, rcpt);
    return hook_run_start(s, s->wgen->vm, POLICY_ON_RCPT, 3, done, out);
}

enum hook_rc
hook_data(struct smtp_session *s, hook_done_fn *done, struct verdict *out)
{
    lua_State *L = hook_state(s, POLICY_ON_DATA, out);

    if (L == NULL)
        return HOOK_DONE;
    lapi_push_session(L, s);
    lapi_push_tx(L, s, true);
    return hook_run_start(s, s->wgen->vm, POLICY_ON_DATA, 2, done, out);
}

/* Notification hooks: the vm's state when some policy has hook, else NULL. */
static lua_State *
hook_notify_state(struct smtp_session *s, enum policy_hook hook)
{
    struct verdict v;

    return hook_state(s, hook, &v);
}

enum hook_rc
hook_auth_result(struct smtp_session *s, const struct verdict *v, hook_done_fn *done)
{
    lua_State *L = hook_notify_state(s, POLICY_ON_AUTH_RESULT);

    if (L == NULL)
        return HOOK_DONE;
    lapi_push_session(L, s);
    lapi_push_auth(L, &s->sasl.creds, false);
    lapi_push_verdict(L, v);
    return hook_run_notify(s, s->wgen->vm, POLICY_ON_AUTH_RESULT, 3, done);
}

enum hook_rc
hook_relayed(struct smtp_session *s, const struct smtp_relayed *r, hook_done_fn *done)
{
    lua_State *L = hook_notify_state(s, POLICY_ON_RELAYED);

    if (L == NULL)
        return HOOK_DONE;
    lapi_push_session(L, s);
    lapi_push_tx(L, s, true);
    lapi_push_relayed(L, r);
    return hook_run_notify(s, s->wgen->vm, POLICY_ON_RELAYED, 3, done);
}

/* Nothing can wait for on_disconnect: its hooks may not yield (sluice.sleep and
 * sluice.passwd.verify raise there), so the run always ends before this returns. */
static void
hook_disconnect(struct smtp_session *s, const char *reason)
{
    lua_State *L = hook_notify_state(s, POLICY_ON_DISCONNECT);

    if (L == NULL)
        return;
    lapi_push_session(L, s);
    lua_pushstring(L, reason != NULL ? reason : "");
    if (hook_run_notify(s, s->wgen->vm, POLICY_ON_DISCONNECT, 2, NULL) == HOOK_PENDING)
        hook_run_cancel(s->hook); /* cannot happen: no wait is allowed */
}

void
hook_session_gone(struct smtp_session *s, const char *reason)
{
    if (s->hook != NULL)
        hook_run_cancel(s->hook);
    hook_disconnect(s, reason);
    if (s->wgen->vm != NULL)
        lapi_session_release(policy_vm_state(s->wgen->vm), s);
}
