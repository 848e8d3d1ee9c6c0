/* core/policy/hook.c: verdicts (hook.h): setting one without snprintf. Running the hooks
 * is hook_run.c's; asking them for a session is core/smtp/smtp_hook.c's. */
#include "policy/hook.h"

#include <string.h>

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
