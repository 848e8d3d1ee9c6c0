/* core/policy/hook.h: the decision seam. The session asks here, and only here, whether to
 * accept an authentication, a sender, a recipient, a message: each question goes to
 * the Lua policies' on_auth / on_mail_from / on_rcpt / on_data (hook_run.c) in the
 * worker's policy state. A decision may be immediate (HOOK_DONE) or come later through
 * the session's done function (HOOK_PENDING: the session waits in SMTP_STATE_BUSY and
 * reads nothing meanwhile). Defaults when no policy decides are the callers' (AUTH:
 * 535 5.7.8; the others: accept). */
#ifndef SLUICE_HOOK_H
#define SLUICE_HOOK_H

#include <stdbool.h>
#include <stddef.h>

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
    char              reason[256];  /* for the log line instead of text, never sent (the
                                     * verdict's reason, sluice.reject's 4th argument);
                                     * "" = the text */
    char              user[256];    /* accept in on_auth: the identity the session takes
                                     * instead of the SASL one (sluice.accept(identity));
                                     * "" = the SASL one. RFC 5321 4.5.3.1.3: a path is at
                                     * most 256 octets with its brackets */
};

void verdict_set(struct verdict *v, enum verdict_kind kind, int code, const char *enhanced,
                 const char *text);

enum hook_rc {
    HOOK_DONE,    /* *out holds the verdict (VERDICT_NONE: no policy decided) */
    HOOK_PENDING, /* a policy waits: done() comes later, never before the call returns */
};

/* The verdict of a decision that returned HOOK_PENDING. */
typedef void hook_done_fn(struct smtp_session *s, const struct verdict *v);

/* on_connect, before the greeting. */
enum hook_rc hook_connect(struct smtp_session *s, hook_done_fn *done, struct verdict *out);
/* on_helo with the name sent; s->helo still holds the previous one. */
enum hook_rc hook_helo(struct smtp_session *s, const char *name, hook_done_fn *done,
                       struct verdict *out);
/* on_auth with s->sasl.creds (the session keeps and wipes them). */
enum hook_rc hook_auth(struct smtp_session *s, hook_done_fn *done, struct verdict *out);
/* on_mail_from for s->tx (set, with its sender). */
enum hook_rc hook_mail_from(struct smtp_session *s, hook_done_fn *done, struct verdict *out);
/* on_rcpt for rcpt, not yet in s->tx. */
enum hook_rc hook_rcpt(struct smtp_session *s, const char *rcpt, hook_done_fn *done,
                       struct verdict *out);
/* on_data for the whole message in s->tx. */
enum hook_rc hook_data(struct smtp_session *s, hook_done_fn *done, struct verdict *out);

/* Notifications: every policy with the hook runs; errors are only logged. */
struct smtp_relayed;
/* on_auth_result with the verdict the client is about to get. */
enum hook_rc hook_auth_result(struct smtp_session *s, const struct verdict *v,
                              hook_done_fn *done);
/* on_relayed with what the client is about to be told about s->tx. */
enum hook_rc hook_relayed(struct smtp_session *s, const struct smtp_relayed *r,
                          hook_done_fn *done);

/* The session is being freed: drop a pending hook (its done() is never called), run
 * on_disconnect with the reason, drop the session's Lua table. */
void hook_session_gone(struct smtp_session *s, const char *reason);

#endif
