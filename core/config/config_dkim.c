/* core/config/config_dkim.c: domains[name].dkim (docs/dkim.md): one table, or a list of
 * them for several signatures (RSA beside Ed25519, RFC 8463 section 1; two selectors while
 * a key is rotated). Each key file is read at load through the privileged reader (a 0600
 * root-owned key still reads on a reload as the service user) and parsed by
 * proto/dkim_sign.c, so `sluice check` refuses what signing could not use. The keys of the
 * table are config_schema.c's. */
#include <lua.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config_internal.h"
#include "config/config_schema.h"
#include "proto/dkim_sign.h"
#include "util/privfile.h"

#define CFG_DKIM_KEY_MAX   65536 /* octets of a key file: an RSA-8192 PEM is under 7000 */
#define CFG_DKIM_MAX       8     /* signatures per message */
#define CFG_DKIM_LABEL_MAX 63    /* RFC 1035 section 2.3.4 */

/* s= (RFC 6376 section 3.1): dot-separated labels of letters, digits and '-', none
 * starting or ending with '-'. */
static bool
cfg_dkim_is_selector(const char *s)
{
    size_t n = 0;

    for (;; s++) {
        bool ok = (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
                  (*s >= '0' && *s <= '9') || *s == '-';

        if (*s == '.' || *s == '\0') {
            if (n == 0 || n > CFG_DKIM_LABEL_MAX || s[-1] == '-')
                return false;
            if (*s == '\0')
                return true;
            n = 0;
            continue;
        }
        if (!ok || (n == 0 && *s == '-'))
            return false;
        n++;
    }
}

/* A header name to sign: letters, digits, '-', '_', '.', optionally ending in '*'. */
static bool
cfg_dkim_is_header(const char *s)
{
    size_t i, n = strlen(s);

    for (i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-' ||
              s[i] == '_' || s[i] == '.' || (s[i] == '*' && i == n - 1 && i > 0)))
            return false;
    return n > 0 && n <= 70;
}

static int
cfg_dkim_headers(struct cfg_ctx *ctx, struct config_dkim *k)
{
    size_t i;
    bool   from = false;

    if (cfg_get_strings(ctx, -1, "headers", false, false, &k->headers) != 0)
        return -1;
    if (k->headers == NULL)
        return 0;
    for (i = 0; k->headers[i] != NULL; i++) {
        cfg_lowercase(k->headers[i]);
        if (!cfg_dkim_is_header(k->headers[i])) {
            cfg_push_key(ctx, "headers");
            cfg_push_index(ctx, i + 1);
            return cfg_fail(ctx, "expected a header name (letters, digits, '-'; a last '*' "
                                 "for a prefix), not '%s'", k->headers[i]);
        }
        from = from || strcmp(k->headers[i], "from") == 0;
    }
    if (!from)
        return cfg_fail_key(ctx, "headers", "must list 'from' (RFC 6376 section 5.4)");
    return 0;
}

/* key_file: read now (the privileged reader), parsed, its text wiped. */
static int
cfg_dkim_key(struct cfg_ctx *ctx, struct config_dkim *k)
{
    char   err[256], rerr[512], *pem;
    size_t len;

    if (cfg_get_path(ctx, -1, "key_file", true, true, &k->key_file) != 0)
        return -1;
    pem = privfile_read(k->key_file, CFG_DKIM_KEY_MAX, &len, rerr, sizeof(rerr));
    if (pem == NULL) {
        cfg_push_key(ctx, "key_file");
        return cfg_fail(ctx, "%s", rerr);
    }
    k->key = dkim_key_new(pem, len, err, sizeof(err));
    explicit_bzero(pem, len);
    free(pem);
    if (k->key == NULL) {
        cfg_push_key(ctx, "key_file");
        return cfg_fail(ctx, "'%s': %s", k->key_file, err);
    }
    return 0;
}

/* One key's table at the stack top. */
static int
cfg_dkim_one(struct cfg_ctx *ctx, const struct config_schema_table *schema,
             struct config_domain *d)
{
    struct config_dkim *k = &d->dkim[d->n_dkim];
    size_t              i;

    if (lua_type(ctx->L, -1) != LUA_TTABLE)
        return cfg_fail(ctx, "expected a table");
    if (cfg_check_schema_keys(ctx, -1, schema) != 0)
        return -1;
    d->n_dkim++;
    if (cfg_get_string(ctx, -1, "selector", true, &k->selector) != 0)
        return -1;
    if (!cfg_dkim_is_selector(k->selector))
        return cfg_fail_key(ctx, "selector", "expected a DNS label (letters, digits, '-'; "
                                             "dots between labels)");
    for (i = 0; i + 1 < d->n_dkim; i++)
        if (strcasecmp(d->dkim[i].selector, k->selector) == 0)
            return cfg_fail_key(ctx, "selector", "the same selector appears twice");
    return cfg_dkim_key(ctx, k) || cfg_dkim_headers(ctx, k) ? -1 : 0;
}

int
cfg_domain_dkim(struct cfg_ctx *ctx, int t, struct config_domain *d)
{
    const struct config_schema_table *schema =
        config_schema_find(&config_schema_domain, "dkim")->table;
    size_t mark, imark, n = 1, i;
    int    rc = cfg_enter(ctx, t, "dkim", NULL, &mark);
    bool   list;

    if (rc <= 0)
        return rc;
    lua_rawgeti(ctx->L, -1, 1);
    list = !lua_isnil(ctx->L, -1);
    lua_pop(ctx->L, 1);
    if (list && cfg_check_list(ctx, -1, &n) != 0)
        return -1;
    if (n > CFG_DKIM_MAX)
        return cfg_fail(ctx, "expected at most %d keys", CFG_DKIM_MAX);
    d->dkim = calloc(n, sizeof(*d->dkim));
    if (d->dkim == NULL)
        return cfg_fail(ctx, "out of memory");
    if (!list) {
        if (cfg_dkim_one(ctx, schema, d) != 0)
            return -1;
        cfg_leave(ctx, mark);
        return 0;
    }
    for (i = 0; i < n; i++) {
        imark = cfg_push_index(ctx, i + 1);
        lua_rawgeti(ctx->L, -1, (int)i + 1);
        if (cfg_dkim_one(ctx, schema, d) != 0)
            return -1;
        cfg_leave(ctx, imark);
    }
    cfg_leave(ctx, mark);
    return 0;
}

void
cfg_free_dkim(struct config_domain *d)
{
    size_t i;

    for (i = 0; i < d->n_dkim; i++) {
        free(d->dkim[i].selector);
        free(d->dkim[i].key_file);
        dkim_key_free(d->dkim[i].key);
        cfg_free_strings(d->dkim[i].headers);
    }
    free(d->dkim);
}
