/* core/config/config_zones.c: the `zones` table of conf/sluice.lua (docs/configuration.md): the
 * named zones of shared state, each with its size and eviction rule, as OpenResty's
 * lua_shared_dict. The built-in zones exist whether or not the file names them, with the
 * defaults below; a file may resize them and add its own. shdict_size, older than zones,
 * stays the size of the zone 'default'. Making the zones is zone.c's. */
#include <ctype.h>
#include <lua.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_internal.h"
#include "util/limits.h"

#define CFG_ZONE_MIN_SIZE (32u * 1024)
#define CFG_ZONE_MAX_SIZE (64.0 * 1024 * 1024 * 1024)

struct cfg_zone_default {
    const char *name;
    size_t      size;   /* 0: shdict_size */
    bool        evict;
    bool        locked; /* security state: evict = true is refused */
};

/* In enum config_zone_builtin order. */
static const struct cfg_zone_default cfg_zone_defaults[CONFIG_ZONE_N_BUILTIN] = {
    [CONFIG_ZONE_DEFAULT] = {"default", 0, true, false},
    [CONFIG_ZONE_LIMITS] = {"limits", ZONE_LIMITS_SIZE, true, false},
    [CONFIG_ZONE_BLOCKS] = {"blocks", ZONE_BLOCKS_SIZE, false, true},
    [CONFIG_ZONE_DENYLIST] = {"denylist", ZONE_DENYLIST_SIZE, false, true},
    [CONFIG_ZONE_AUTH_CACHE] = {"auth_cache", ZONE_AUTH_CACHE_SIZE, true, false},
    [CONFIG_ZONE_JWKS] = {"jwks", ZONE_JWKS_SIZE, true, false},
};

const struct config_zone *
config_zone_find(const struct config *cfg, const char *name, size_t n)
{
    for (size_t i = 0; i < cfg->n_zones; i++)
        if (strlen(cfg->zones[i].name) == n && memcmp(cfg->zones[i].name, name, n) == 0)
            return &cfg->zones[i];
    return NULL;
}

static bool
cfg_is_zone_name(const char *s, size_t n)
{
    if (n == 0 || n > CONFIG_ZONE_NAME_MAX || !islower((unsigned char)s[0]))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '_'))
            return false;
    return true;
}

/* The value on the stack top as a size: a whole number of octets, or a string of digits
 * and one of k, m, g (KiB, MiB, GiB), as nginx writes sizes. */
static int
cfg_zone_size_value(struct cfg_ctx *ctx, size_t *out)
{
    lua_State  *L = ctx->L;
    double      v = -1, unit = 1;
    const char *s;
    char       *end;
    size_t      n;

    if (lua_type(L, -1) == LUA_TNUMBER) {
        v = lua_tonumber(L, -1);
    } else if (lua_type(L, -1) == LUA_TSTRING) {
        s = lua_tolstring(L, -1, &n);
        if (n > 0 && n < 24 && isdigit((unsigned char)s[0])) {
            v = strtod(s, &end);
            switch (tolower((unsigned char)*end)) {
            case 'k': unit = 1024.0; end++; break;
            case 'm': unit = 1024.0 * 1024; end++; break;
            case 'g': unit = 1024.0 * 1024 * 1024; end++; break;
            default: break;
            }
            if (*end != '\0' || strchr(s, '.') != NULL || strchr(s, 'e') != NULL ||
                strchr(s, 'x') != NULL)
                v = -1;
            v *= unit;
        }
    }
    if (!(v >= CFG_ZONE_MIN_SIZE && v <= CFG_ZONE_MAX_SIZE) || v != (double)(size_t)v)
        return cfg_fail(ctx, "expected octets, or a size like '512k', '8m' or '1g', "
                             "from 32k to 64g");
    *out = (size_t)v;
    return 0;
}

/* backend = 'local' | 'redis' and fail = 'open' | 'closed' of zones[name]. The auth cache
 * stays local: its keys are HMACs under a secret each process draws for itself
 * (auth/auth_cache.c), so that a copy of the store is no password oracle; another node
 * could never find them. */
static int
cfg_zone_backend(struct cfg_ctx *ctx, const struct config *cfg, struct config_zone *z,
                 size_t index)
{
    static const char *const backends[] = {"local", "redis", NULL};
    static const int         backend_values[] = {CONFIG_ZONE_LOCAL, CONFIG_ZONE_REDIS};
    static const char *const fails[] = {"open", "closed", NULL};
    static const int         fail_values[] = {0, 1};
    int                      backend = (int)z->backend, closed = z->fail_closed;
    size_t                   mark;
    bool                     has_fail;

    if (cfg_get_enum(ctx, -1, "backend", backends, backend_values, false, &backend) ||
        cfg_get_enum(ctx, -1, "fail", fails, fail_values, false, &closed))
        return -1;
    has_fail = cfg_field(ctx, -1, "fail", &mark) != LUA_TNIL;
    lua_pop(ctx->L, 1);
    cfg_pop(ctx, mark);
    z->backend = (enum config_zone_backend)backend;
    z->fail_closed = closed;
    if (z->backend == CONFIG_ZONE_REDIS && index == CONFIG_ZONE_AUTH_CACHE)
        return cfg_fail_key(ctx, "backend", "the auth cache is per process (its keys are "
                                            "keyed by a secret no other node has): "
                                            "leave it local");
    if (z->backend == CONFIG_ZONE_REDIS && cfg->redis == NULL)
        return cfg_fail_key(ctx, "backend", "'redis' needs the redis table (where the "
                                            "server is)");
    if (has_fail && z->backend != CONFIG_ZONE_REDIS)
        return cfg_fail_key(ctx, "fail", "only a zone with backend = 'redis' can fail");
    return 0;
}

/* zones[name] = { size = ..., evict = ..., backend = ..., fail = ... } into z, whose
 * defaults are set. */
static int
cfg_zone(struct cfg_ctx *ctx, const struct config *cfg, struct config_zone *z, size_t index)
{
    static const char *const keys[] = {"size", "evict", "backend", "fail", NULL};
    bool                     builtin = index < CONFIG_ZONE_N_BUILTIN;
    bool                     locked = builtin && cfg_zone_defaults[index].locked;
    size_t                   mark;
    int                      type;

    if (lua_type(ctx->L, -1) != LUA_TTABLE)
        return cfg_fail(ctx, "expected a table: { size = '1m', evict = true }");
    if (cfg_check_keys(ctx, -1, keys) != 0)
        return -1;
    type = cfg_field(ctx, -1, "size", &mark);
    if (type == LUA_TNIL && !builtin) {
        lua_pop(ctx->L, 1);
        cfg_pop(ctx, mark);
        return cfg_fail_missing(ctx, "size");
    }
    if (type != LUA_TNIL && cfg_zone_size_value(ctx, &z->size) != 0)
        return -1;
    lua_pop(ctx->L, 1);
    cfg_pop(ctx, mark);
    if (cfg_get_bool(ctx, -1, "evict", &z->evict) != 0)
        return -1;
    if (locked && z->evict)
        return cfg_fail_key(ctx, "evict", "this zone holds security state, which is never "
                                          "evicted: leave evict out, or false");
    return cfg_zone_backend(ctx, cfg, z, index);
}

static int
cfg_zone_cmp(const void *a, const void *b)
{
    return strcmp(((const struct config_zone *)a)->name, ((const struct config_zone *)b)->name);
}

static int
cfg_zones_builtin(struct cfg_ctx *ctx, struct config *cfg)
{
    cfg->zones = calloc(CONFIG_ZONES_MAX, sizeof(*cfg->zones));
    if (cfg->zones == NULL)
        return cfg_fail(ctx, "out of memory");
    for (size_t i = 0; i < CONFIG_ZONE_N_BUILTIN; i++) {
        const struct cfg_zone_default *def = &cfg_zone_defaults[i];
        struct config_zone            *z = &cfg->zones[cfg->n_zones];

        if (cfg_strdup(ctx, def->name, &z->name) != 0)
            return -1;
        cfg->n_zones++;
        z->size = def->size != 0 ? def->size : cfg->shdict_size;
        z->evict = def->evict;
        z->backend = CONFIG_ZONE_LOCAL;
        z->fail_closed = i == CONFIG_ZONE_DENYLIST; /* a deny that cannot be read denies */
    }
    return 0;
}

/* One entry of the zones table: key at -2, value at -1. */
static int
cfg_zones_entry(struct cfg_ctx *ctx, struct config *cfg, bool has_shdict_size)
{
    size_t              n, mark, i;
    const char         *name = lua_tolstring(ctx->L, -2, &n);
    struct config_zone *z = NULL;
    int                 rc;

    mark = cfg_push_key(ctx, name);
    if (!cfg_is_zone_name(name, n))
        return cfg_fail(ctx, "expected a zone name: a lowercase letter, then lowercase "
                             "letters, digits or '_', at most 32 octets");
    for (i = 0; i < cfg->n_zones; i++)
        if (strcmp(cfg->zones[i].name, name) == 0)
            z = &cfg->zones[i];
    if (z == NULL) {
        if (cfg->n_zones == CONFIG_ZONES_MAX)
            return cfg_fail(ctx, "more than 32 zones");
        z = &cfg->zones[cfg->n_zones];
        if (cfg_strdup(ctx, name, &z->name) != 0)
            return -1;
        cfg->n_zones++;
        z->evict = true;
        z->backend = CONFIG_ZONE_LOCAL;
    }
    i = (size_t)(z - cfg->zones);
    rc = cfg_zone(ctx, cfg, z, i);
    if (rc == 0 && i == CONFIG_ZONE_DEFAULT && has_shdict_size) {
        lua_getfield(ctx->L, -1, "size");
        if (!lua_isnil(ctx->L, -1))
            rc = cfg_fail(ctx, "shdict_size is the size of this zone: give only one of them");
        lua_pop(ctx->L, 1);
    }
    if (rc == 0 && i == CONFIG_ZONE_DEFAULT)
        cfg->shdict_size = z->size;
    cfg_pop(ctx, mark);
    return rc;
}

int
cfg_zones(struct cfg_ctx *ctx, int top, struct config *cfg)
{
    lua_State *L = ctx->L;
    size_t     mark, n;
    bool       has_shdict_size;
    int        rc;

    lua_getfield(L, top, "shdict_size");
    has_shdict_size = !lua_isnil(L, -1);
    lua_pop(L, 1);
    if (cfg_zones_builtin(ctx, cfg) != 0)
        return -1;
    rc = cfg_enter(ctx, top, "zones", NULL, &mark);
    if (rc <= 0)
        return rc;
    if (cfg_count_named(ctx, "{ limits = { size = '8m', evict = true }, ... }", &n) != 0)
        return -1;
    for (lua_pushnil(L); lua_next(L, -2) != 0; lua_pop(L, 1))
        if (cfg_zones_entry(ctx, cfg, has_shdict_size) != 0)
            return -1;
    cfg_leave(ctx, mark);
    /* a table's order is Lua's whim: sorted, a reload can compare zones one by one */
    qsort(cfg->zones + CONFIG_ZONE_N_BUILTIN, cfg->n_zones - CONFIG_ZONE_N_BUILTIN,
          sizeof(*cfg->zones), cfg_zone_cmp);
    return 0;
}

void
cfg_free_zones(struct config *cfg)
{
    for (size_t i = 0; i < cfg->n_zones; i++)
        free(cfg->zones[i].name);
    free(cfg->zones);
    cfg->zones = NULL;
    cfg->n_zones = 0;
}
