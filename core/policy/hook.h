/* core/policy/hook.h: what a decision of the policies is: a verdict (a real SMTP reply or
 * no opinion), and whether it came at once or comes later. The session asks its questions
 * through core/smtp/smtp_hook.c, which runs the hooks here (hook_run.c) and maps the
 * verdicts back. Defaults when no policy decides are the callers' (AUTH: 535 5.7.8; the
 * others: accept). */
#ifndef SLUICE_HOOK_H
#define SLUICE_HOOK_H

#include <stdbool.h>
#include <stddef.h>

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
    HOOK_PENDING, /* a policy waits: the verdict comes later through the caller's done
                   * function (hook_ctx.h), never before the call returns */
};

#endif
