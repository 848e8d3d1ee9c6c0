/* core/config/config_redis.c: the `redis` table of conf/sluice.lua (docs/configuration.md
 * `redis`, docs/deployment.md): the one Redis server that the zones with backend = 'redis'
 * keep their entries in, shared by every node. Absent table: no zone may use Redis.
 * Talking to it is core/store/redis_link.c's and redis_sync.c's. */
#include <lua.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_internal.h"

#define CFG_REDIS_PORT            6379
#define CFG_REDIS_PREFIX          "sluice:"
#define CFG_REDIS_PREFIX_MAX      64
#define CFG_REDIS_CONNECT_TIMEOUT 0.5
#define CFG_REDIS_TIMEOUT         0.1 /* a client waits this long for one call at most */
#define CFG_REDIS_MAX_TIMEOUT     5.0
#define CFG_REDIS_MAX_PASSWORD    512

static bool
cfg_redis_str_same(const char *a, const char *b)
{
    return a == NULL || b == NULL ? a == b : strcmp(a, b) == 0;
}

bool
config_redis_same(const struct config_redis *a, const struct config_redis *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return cfg_redis_str_same(a->address, b->address) && a->port == b->port &&
           cfg_redis_str_same(a->socket, b->socket) && a->database == b->database &&
           strcmp(a->prefix, b->prefix) == 0 && cfg_redis_str_same(a->username, b->username) &&
           cfg_redis_str_same(a->password, b->password) &&
           a->connect_timeout == b->connect_timeout && a->timeout == b->timeout;
}

/* password_file: its first line, as bind_password_file (a secret stays out of the file
 * the configuration is in, and out of `sluice check`'s output). */
static int
cfg_redis_password(struct cfg_ctx *ctx, int t, struct config_redis *r)
{
    char  *path = NULL, buf[CFG_REDIS_MAX_PASSWORD + 2];
    size_t n;

    if (cfg_get_path(ctx, t, "password_file", false, true, &path) != 0)
        return -1;
    if (path == NULL)
        return 0;
    n = cfg_first_line(path, buf, sizeof(buf));
    free(path);
    if (n == 0 || n > CFG_REDIS_MAX_PASSWORD) {
        explicit_bzero(buf, sizeof(buf));
        return cfg_fail_key(ctx, "password_file", n == 0 ? "no password on the first line"
                                                         : "password too long");
    }
    r->password = strdup(buf);
    explicit_bzero(buf, sizeof(buf));
    return r->password == NULL ? cfg_fail(ctx, "out of memory") : 0;
}

/* The prefix is written before every key: printable, no spaces, bounded. */
static int
cfg_redis_prefix(struct cfg_ctx *ctx, const struct config_redis *r)
{
    size_t n = strlen(r->prefix);

    if (n > CFG_REDIS_PREFIX_MAX)
        return cfg_fail_key(ctx, "prefix", "expected at most 64 octets");
    for (size_t i = 0; i < n; i++)
        if (r->prefix[i] <= ' ' || r->prefix[i] >= 0x7f)
            return cfg_fail_key(ctx, "prefix", "expected printable ASCII without spaces");
    return 0;
}

static int
cfg_redis_where(struct cfg_ctx *ctx, int t, struct config_redis *r)
{
    if (cfg_get_string(ctx, t, "address", false, &r->address) ||
        cfg_get_int(ctx, t, "port", 1, 65535, false, &r->port) ||
        cfg_get_path(ctx, t, "socket", false, false, &r->socket))
        return -1;
    if (r->socket != NULL && r->address != NULL)
        return cfg_fail_key(ctx, "socket", "give address (and port) or socket, not both");
    if (r->socket == NULL && r->address == NULL)
        return cfg_fail_missing(ctx, "address");
    if (r->address != NULL && !cfg_is_ip(r->address)) /* no lookup ever blocks a worker */
        return cfg_fail_key(ctx, "address", "expected an IPv4 or IPv6 address (or socket)");
    if (r->socket != NULL && strlen(r->socket) >= 108)
        return cfg_fail_key(ctx, "socket", "path too long for a unix socket");
    return 0;
}

static int
cfg_redis_timeouts(struct cfg_ctx *ctx, int t, struct config_redis *r)
{
    if (cfg_get_seconds(ctx, t, "connect_timeout", &r->connect_timeout) ||
        cfg_get_seconds(ctx, t, "timeout", &r->timeout))
        return -1;
    if (r->connect_timeout > CFG_REDIS_MAX_TIMEOUT)
        return cfg_fail_key(ctx, "connect_timeout", "expected at most 5 seconds");
    if (r->timeout > CFG_REDIS_MAX_TIMEOUT)
        return cfg_fail_key(ctx, "timeout", "expected at most 5 seconds: a client waits "
                                            "this long for each zone call");
    return 0;
}

int
cfg_redis(struct cfg_ctx *ctx, int top, struct config *cfg)
{
    static const char *const keys[] = {"address", "port", "socket", "database", "prefix",
                                       "username", "password_file", "connect_timeout",
                                       "timeout", NULL};
    struct config_redis     *r;
    size_t                   mark;
    int                      t, rc;

    rc = cfg_enter(ctx, top, "redis", keys, &mark);
    if (rc <= 0)
        return rc;
    t = lua_gettop(ctx->L);
    if ((r = calloc(1, sizeof(*r))) == NULL) {
        cfg_leave(ctx, mark);
        return cfg_fail(ctx, "out of memory");
    }
    cfg->redis = r;
    r->port = CFG_REDIS_PORT;
    r->connect_timeout = CFG_REDIS_CONNECT_TIMEOUT;
    r->timeout = CFG_REDIS_TIMEOUT;
    rc = -1;
    if (cfg_strdup(ctx, CFG_REDIS_PREFIX, &r->prefix) || cfg_redis_where(ctx, t, r) ||
        cfg_get_int(ctx, t, "database", 0, 65535, false, &r->database) ||
        cfg_get_string(ctx, t, "prefix", false, &r->prefix) || cfg_redis_prefix(ctx, r) ||
        cfg_get_string(ctx, t, "username", false, &r->username) ||
        cfg_redis_password(ctx, t, r) || cfg_redis_timeouts(ctx, t, r))
        goto out;
    if (r->username != NULL && r->password == NULL) {
        cfg_fail_key(ctx, "username", "a username needs password_file");
        goto out;
    }
    rc = 0;
out:
    cfg_leave(ctx, mark);
    return rc;
}

static char *
cfg_redis_dup(const char *s, bool *failed)
{
    char *d = s != NULL ? strdup(s) : NULL;

    if (s != NULL && d == NULL)
        *failed = true;
    return d;
}

struct config_redis *
config_redis_copy(const struct config_redis *r)
{
    struct config_redis *c = malloc(sizeof(*c));
    bool                 failed = false;

    if (c == NULL)
        return NULL;
    *c = *r;
    c->address = cfg_redis_dup(r->address, &failed);
    c->socket = cfg_redis_dup(r->socket, &failed);
    c->prefix = cfg_redis_dup(r->prefix, &failed);
    c->username = cfg_redis_dup(r->username, &failed);
    c->password = cfg_redis_dup(r->password, &failed);
    if (failed) {
        config_redis_free(c);
        return NULL;
    }
    return c;
}

void
config_redis_free(struct config_redis *r)
{
    if (r == NULL)
        return;
    free(r->address);
    free(r->socket);
    free(r->prefix);
    free(r->username);
    if (r->password != NULL)
        explicit_bzero(r->password, strlen(r->password));
    free(r->password);
    free(r);
}
