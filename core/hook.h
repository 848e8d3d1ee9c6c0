/* core/hook.h: the decision seam. The session asks here, and only here, whether to
 * accept an authentication, a sender, a recipient, a message. Each decision is one
 * function, so that the Lua policy engine can route it to on_auth / on_mail_from /
 * on_rcpt / on_data without touching the state machine.
 *
 * Today's built-in decisions: AUTH PLAIN/LOGIN verified against the per-domain user
 * files (crypt(3), off the loop), bearer tokens refused (no token backend yet), MAIL
 * FROM must be in the authenticated domain, RCPT and DATA accepted. */
#ifndef SLUICE_HOOK_H
#define SLUICE_HOOK_H

#include <stdbool.h>
#include <stddef.h>

#include "sasl.h"

struct smtp_session;

enum verdict_kind {
    VERDICT_NONE,     /* no opinion */
    VERDICT_ACCEPT,
    VERDICT_REJECT,   /* 5xx */
    VERDICT_TEMPFAIL, /* 4xx */
};

struct verdict {
    enum verdict_kind kind;
    int               code;
    char              enhanced[16];
    char              text[256];
};

void verdict_set(struct verdict *v, enum verdict_kind kind, int code, const char *enhanced,
                 const char *text);

/* Begin deciding an AUTH. The session is in SMTP_STATE_BUSY; the answer comes back
 * through smtp_session_auth_done() on the session's loop, never before this returns.
 * creds are moved out (the hook owns them afterwards; *creds is left empty).
 * Returns 0, or -1 if the decision could not even start (the session answers 454). */
int hook_auth_start(struct smtp_session *s, struct sasl_creds *creds);

/* The session is being freed while hook_auth_start's answer is outstanding. */
void hook_auth_cancel(struct smtp_session *s);

/* Synchronous decisions. out->kind VERDICT_NONE or ACCEPT means go on. */
void hook_mail_from(struct smtp_session *s, const char *sender, struct verdict *out);
void hook_rcpt(struct smtp_session *s, const char *rcpt, struct verdict *out);
void hook_data(struct smtp_session *s, struct verdict *out);

#endif
