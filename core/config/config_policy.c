/* core/config/config_policy.c: the policy engine's keys of conf/sluice.lua (docs/lua-api.md
 * "Configuration", docs/configuration.md): policies, hook_timeout, audit_log, lua_dir,
 * shdict_size (and zones, config_zones.c) and the domains table, whose keys are
 * config_schema.c's. Checking values and
 * writing "file:line: key: reason" is config_value.c's; loading the policies themselves
 * is policy_vm.c's. */
#include <errno.h>
#include <fcntl.h>
#include <ctype.h>
#include <lua.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config/config_internal.h"
#include "config/config_schema.h"
#include "util/privfile.h"
#include "util/limits.h"

#define CFG_MIN_SHDICT_SIZE (256u * 1024)
#define CFG_MAX_HOOK_TIMEOUT 3600.0

void
cfg_policy_defaults(struct config *cfg)
{
    cfg->hook_timeout = HOOK_TIMEOUT;
    cfg->shdict_size = SHDICT_SIZE;
    cfg->auth_cache_ttl = AUTH_CACHE_TTL;
}

/* default_domain = 'example.org': one of the declared domains, lowercased. */
static int
cfg_default_domain(struct cfg_ctx *ctx, int top, struct config *cfg)
{
    if (cfg_get_string(ctx, top, "default_domain", false, &cfg->default_domain) != 0)
        return -1;
    if (cfg->default_domain == NULL)
        return 0;
    for (char *p = cfg->default_domain; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    if (config_domain_find(cfg, cfg->default_domain) == NULL)
        return cfg_fail_key(ctx, "default_domain", "expected one of the declared domains");
    return 0;
}

/* ---- policies, audit_log, lua_dir ------------------------------------------------------ */

/* policies = { 'a.lua', ... }: a possibly empty list of readable files. */
static int
cfg_policies(struct cfg_ctx *ctx, int top, struct config *cfg)
{
    size_t mark, n = 0;
    int    rc = cfg_enter(ctx, top, "policies", NULL, &mark);

    if (rc < 0 || (rc == 1 && cfg_check_list(ctx, -1, &n) != 0))
        return -1;
    if (rc == 1)
        cfg_leave(ctx, mark);
    if (n == 0) {
        cfg->policies = calloc(1, sizeof(*cfg->policies));
        return cfg->policies == NULL ? cfg_fail(ctx, "out of memory") : 0;
    }
    if (cfg_get_strings(ctx, top, "policies", false, true, &cfg->policies) != 0)
        return -1;
    return 0;
}

/* Resolve every policy path against the file's directory; each must be readable. */
static int
cfg_policy_paths(struct cfg_ctx *ctx, struct config *cfg)
{
    char  *full;
    size_t i;

    for (i = 0; cfg->policies[i] != NULL; i++) {
        full = cfg_resolve(ctx, cfg->policies[i]);
        if (full == NULL)
            return cfg_fail(ctx, "out of memory");
        free(cfg->policies[i]);
        cfg->policies[i] = full;
        cfg->n_policies++;
        cfg_push_key(ctx, "policies");
        cfg_push_index(ctx, i + 1);
        if (privfile_check(full) != 0)
            return cfg_fail(ctx, "cannot read '%s': %s", full, strerror(errno));
        if (cfg_note_file(ctx, full) != 0)
            return -1;
        cfg_pop(ctx, 0);
    }
    return 0;
}

/* audit_log: opened for appending (created if absent) to prove it is writable. */
static int
cfg_audit_log(struct cfg_ctx *ctx, int top, struct config *cfg)
{
    int fd;

    if (cfg_get_path(ctx, top, "audit_log", false, false, &cfg->audit_log) != 0)
        return -1;
    if (cfg->audit_log == NULL)
        return 0;
    fd = privfile_open(cfg->audit_log, PRIVFILE_APPEND);
    if (fd < 0) {
        cfg_push_key(ctx, "audit_log");
        return cfg_fail(ctx, "cannot open '%s' for appending: %s", cfg->audit_log,
                        strerror(errno));
    }
    close(fd);
    return 0;
}

/* lua_dir: default the source tree's lua/; must hold sluice/init.lua. */
static int
cfg_lua_dir(struct cfg_ctx *ctx, int top, struct config *cfg)
{
    char p[4200];

    if (cfg_get_path(ctx, top, "lua_dir", false, false, &cfg->lua_dir) != 0)
        return -1;
    if (cfg->lua_dir == NULL && cfg_strdup(ctx, SLUICE_SOURCE_DIR "/lua", &cfg->lua_dir) != 0)
        return -1;
    snprintf(p, sizeof(p), "%s/sluice/init.lua", cfg->lua_dir);
    if (privfile_check(p) != 0) {
        cfg_push_key(ctx, "lua_dir");
        return cfg_fail(ctx, "cannot read '%s': %s", p, strerror(errno));
    }
    return 0;
}

/* ---- domains -------------------------------------------------------------------------- */

/* A domain name or user address as a key: a string without blanks or controls. */
static bool
cfg_is_name_key(const char *s, size_t len)
{
    size_t i;

    if (len == 0 || len > 255)
        return false;
    for (i = 0; i < len; i++)
        if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

/* One senders entry: the user at -2, the list at -1. */
static int
cfg_sender(struct cfg_ctx *ctx, struct config_domain *d)
{
    struct config_sender *e = &d->senders[d->n_senders];
    const char           *user = lua_tostring(ctx->L, -2);
    size_t                mark = cfg_push_key(ctx, user), i;

    if (!cfg_is_name_key(user, lua_objlen(ctx->L, -2)) || strchr(user, '@') == NULL)
        return cfg_fail(ctx, "expected a user's address as the key");
    if (cfg_strdup(ctx, user, &e->user) != 0)
        return -1;
    d->n_senders++;
    cfg_lowercase(e->user);
    for (i = 0; i + 1 < d->n_senders; i++)
        if (strcmp(d->senders[i].user, e->user) == 0)
            return cfg_fail(ctx, "the same user appears twice");
    cfg_pop(ctx, mark);
    return cfg_get_strings(ctx, -3, user, false, true, &e->addresses);
}

static int
cfg_senders(struct cfg_ctx *ctx, int t, struct config_domain *d)
{
    lua_State *L = ctx->L;
    size_t     mark, n = 0;
    int        rc = cfg_enter(ctx, t, "senders", NULL, &mark);

    if (rc <= 0)
        return rc;
    for (lua_pushnil(L); lua_next(L, -2) != 0; lua_pop(L, 1), n++)
        if (lua_type(L, -2) != LUA_TSTRING)
            return cfg_fail(ctx, "expected { ['user@domain'] = { 'address', ... }, ... }");
    d->senders = calloc(n ? n : 1, sizeof(*d->senders));
    if (d->senders == NULL)
        return cfg_fail(ctx, "out of memory");
    for (lua_pushnil(L); lua_next(L, -2) != 0; lua_pop(L, 1))
        if (cfg_sender(ctx, d) != 0)
            return -1;
    cfg_leave(ctx, mark);
    return 0;
}

static int
cfg_domain_limits(struct cfg_ctx *ctx, int t, struct config_domain_limits *lim)
{
    const struct config_schema_table *schema =
        config_schema_find(&config_schema_domain, "limits")->table;
    size_t *const dst[] = { /* in the schema's order */
        &lim->messages_per_hour, &lim->user_messages_per_hour,
        &lim->user_auth_failures_per_hour, &lim->domain_auth_failures_per_hour,
    };
    size_t mark, i;
    int    rc = cfg_enter_schema(ctx, t, "limits", schema, &mark);

    if (rc <= 0)
        return rc;
    for (i = 0; schema->keys[i].name != NULL; i++)
        if (cfg_get_uint(ctx, -1, schema->keys[i].name, schema->keys[i].min,
                         schema->keys[i].max, dst[i]) != 0)
            return -1;
    cfg_leave(ctx, mark);
    return 0;
}

/* auth = { 'file' }: backend names this version knows. */
static int
cfg_domain_auth(struct cfg_ctx *ctx, int t, struct config_domain *d)
{
    size_t i;

    if (cfg_get_strings(ctx, t, "auth", false, false, &d->auth) != 0)
        return -1;
    if (d->auth == NULL) {
        d->auth = calloc(2, sizeof(*d->auth));
        if (d->auth == NULL)
            return cfg_fail(ctx, "out of memory");
        return cfg_strdup(ctx, "file", &d->auth[0]);
    }
    for (i = 0; d->auth[i] != NULL; i++) {
        if (strcmp(d->auth[i], "file") == 0 || strcmp(d->auth[i], "oauth2") == 0 ||
            strcmp(d->auth[i], "ldap") == 0)
            continue;
        cfg_push_key(ctx, "auth");
        cfg_push_index(ctx, i + 1);
        return cfg_fail(ctx, "expected 'file', 'ldap' or 'oauth2', not '%s'", d->auth[i]);
    }
    return 0;
}

/* One domains entry: the name at -2, the settings at -1. */
static int
cfg_domain(struct cfg_ctx *ctx, struct config *cfg)
{
    struct config_domain *d = &cfg->domains[cfg->n_domains];
    const char           *name = lua_tostring(ctx->L, -2);
    size_t                mark = cfg_push_key(ctx, name), i;

    if (!cfg_is_name_key(name, lua_objlen(ctx->L, -2)) || strchr(name, '@') != NULL)
        return cfg_fail(ctx, "expected a domain name as the key");
    if (cfg_strdup(ctx, name, &d->name) != 0)
        return -1;
    cfg->n_domains++;
    d->enabled = true;
    d->check_header_from = true; /* on unless a domain opts out: docs/security.md */
    cfg_lowercase(d->name);
    for (i = 0; i + 1 < cfg->n_domains; i++)
        if (strcmp(cfg->domains[i].name, d->name) == 0)
            return cfg_fail(ctx, "the same domain appears twice");
    if (lua_type(ctx->L, -1) != LUA_TTABLE)
        return cfg_fail(ctx, "expected a table of settings");
    if (cfg_check_schema_keys(ctx, -1, &config_schema_domain) ||
        cfg_get_bool(ctx, -1, "enabled", &d->enabled) ||
        cfg_domain_auth(ctx, -1, d) || cfg_senders(ctx, -1, d) ||
        cfg_get_bool(ctx, -1, "allow_subdomains", &d->allow_subdomains) ||
        cfg_get_bool(ctx, -1, "allow_null_sender", &d->allow_null_sender) ||
        cfg_get_bool(ctx, -1, "check_header_from", &d->check_header_from) ||
        cfg_domain_limits(ctx, -1, &d->limits) || cfg_domain_oauth2(ctx, -1, d) ||
        cfg_domain_ldap(ctx, -1, cfg, d) || cfg_domain_upstream(ctx, -1, cfg, d->name) ||
        cfg_domain_dkim(ctx, -1, d))
        return -1;
    cfg_pop(ctx, mark);
    return 0;
}

static int
cfg_domain_cmp(const void *a, const void *b)
{
    return strcmp(((const struct config_domain *)a)->name,
                  ((const struct config_domain *)b)->name);
}

static int
cfg_domains(struct cfg_ctx *ctx, int top, struct config *cfg)
{
    lua_State *L = ctx->L;
    size_t     mark, n = 0;
    int        rc = cfg_enter(ctx, top, "domains", NULL, &mark);

    if (rc <= 0)
        return rc;
    if (cfg_count_named(ctx, "{ ['example.org'] = { ... }, ... }", &n) != 0)
        return -1;
    cfg->domains = calloc(n ? n : 1, sizeof(*cfg->domains));
    if (cfg->domains == NULL)
        return cfg_fail(ctx, "out of memory");
    for (lua_pushnil(L); lua_next(L, -2) != 0; lua_pop(L, 1))
        if (cfg_domain(ctx, cfg) != 0)
            return -1;
    qsort(cfg->domains, cfg->n_domains, sizeof(*cfg->domains), cfg_domain_cmp);
    cfg_leave(ctx, mark);
    return 0;
}

/* ---- the section as a whole ------------------------------------------------------------ */

int
cfg_policy(struct cfg_ctx *ctx, int top, struct config *cfg)
{
    if (cfg_policies(ctx, top, cfg) || cfg_policy_paths(ctx, cfg) ||
        cfg_get_seconds(ctx, top, "hook_timeout", &cfg->hook_timeout) ||
        cfg_audit_log(ctx, top, cfg) || cfg_lua_dir(ctx, top, cfg) ||
        cfg_get_uint(ctx, top, "shdict_size", CFG_MIN_SHDICT_SIZE, CFG_INT_MAX,
                     &cfg->shdict_size) ||
        cfg_zones(ctx, top, cfg) ||
        cfg_get_uint(ctx, top, "auth_cache_ttl", 0, 86400, &cfg->auth_cache_ttl) ||
        cfg_domains(ctx, top, cfg) || cfg_default_domain(ctx, top, cfg))
        return -1;
    if (cfg->hook_timeout > CFG_MAX_HOOK_TIMEOUT)
        return cfg_fail_key(ctx, "hook_timeout", "expected at most 3600 seconds");
    return 0;
}

void
cfg_free_policy(struct config *cfg)
{
    struct config_domain *d;
    size_t                i, j;

    cfg_free_zones(cfg);
    cfg_free_strings(cfg->policies);
    free(cfg->audit_log);
    free(cfg->lua_dir);
    free(cfg->default_domain);
    for (i = 0; i < cfg->n_domains; i++) {
        d = &cfg->domains[i];
        free(d->name);
        cfg_free_strings(d->auth);
        for (j = 0; j < d->n_senders; j++) {
            free(d->senders[j].user);
            cfg_free_strings(d->senders[j].addresses);
        }
        free(d->senders);
        cfg_free_oauth2(d->oauth2);
        cfg_free_ldap(d->ldap);
        cfg_free_dkim(d);
    }
    free(cfg->domains);
}

/* ---- lookups ------------------------------------------------------------------------ */

const struct config_domain *
config_domain_find(const struct config *cfg, const char *name)
{
    size_t lo = 0, hi = cfg->n_domains, mid;
    int    c;

    if (name == NULL)
        return NULL;
    while (lo < hi) { /* sorted by lowercase name */
        mid = lo + (hi - lo) / 2;
        c = strcasecmp(cfg->domains[mid].name, name);
        if (c == 0)
            return &cfg->domains[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}
