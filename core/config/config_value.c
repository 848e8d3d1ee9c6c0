/* core/config/config_value.c: the typed half of config loading. Reads one value at a time from
 * the table the config file returned, checks its type and range, and on failure writes
 * "file:line: key.path: reason". The line is found by scanning the file's text for the
 * key (the values are plain data by then: Lua keeps no line numbers for table fields).
 * Which keys exist and what they mean is config.c's business. */
#include "config/config_internal.h"
#include "config/config_schema.h"
#include "util/privfile.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <lauxlib.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CFG_MAX_SECONDS 86400.0 /* a longer timeout is almost surely milliseconds */

const char *const cfg_tls_mode_names[] = {"none", "starttls", "implicit", NULL};
const int         cfg_tls_mode_values[] = {CONFIG_TLS_NONE, CONFIG_TLS_STARTTLS,
                                           CONFIG_TLS_IMPLICIT};

static bool
cfg_is_ident(const char *s, size_t n)
{
    size_t i;

    if (n == 0 || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
        return false;
    for (i = 1; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_'))
            return false;
    return true;
}

/* Append to the path, cutting (never overflowing) when it is absurdly long. */
static void cfg_path_add(struct cfg_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
cfg_path_add(struct cfg_ctx *ctx, const char *fmt, ...)
{
    va_list ap;
    size_t  room = sizeof(ctx->path) - ctx->path_len;
    int     n;

    va_start(ap, fmt);
    n = vsnprintf(ctx->path + ctx->path_len, room, fmt, ap);
    va_end(ap);
    if (n > 0)
        ctx->path_len += (size_t)n < room ? (size_t)n : room - 1;
}

size_t
cfg_push_key(struct cfg_ctx *ctx, const char *key)
{
    size_t mark = ctx->path_len, n = strlen(key), i;
    char   safe[128];

    if (cfg_is_ident(key, n)) {
        cfg_path_add(ctx, "%s%s", mark ? "." : "", key);
        return mark;
    }
    /* ['example.net']: printable text only, so the message stays one clean line */
    for (i = 0; i < n && i < sizeof(safe) - 1; i++)
        safe[i] = isprint((unsigned char)key[i]) && key[i] != '\'' ? key[i] : '?';
    safe[i] = '\0';
    cfg_path_add(ctx, "['%s']", safe);
    return mark;
}

size_t
cfg_push_index(struct cfg_ctx *ctx, size_t i)
{
    size_t mark = ctx->path_len;

    cfg_path_add(ctx, "[%zu]", i);
    return mark;
}

int
cfg_note_file(struct cfg_ctx *ctx, const char *path)
{
    struct config      *cfg = ctx->cfg;
    struct config_file *grown, *f;

    if (cfg == NULL)
        return 0;
    grown = realloc(cfg->files, (cfg->n_files + 1) * sizeof(*grown));
    if (grown == NULL)
        return cfg_fail(ctx, "out of memory");
    cfg->files = grown;
    f = &cfg->files[cfg->n_files];
    f->key = strdup(ctx->path_len > 0 ? ctx->path : "(the configuration file)");
    f->path = strdup(path);
    if (f->key == NULL || f->path == NULL) {
        free(f->key);
        free(f->path);
        return cfg_fail(ctx, "out of memory");
    }
    cfg->n_files++;
    return 0;
}

void
cfg_pop(struct cfg_ctx *ctx, size_t mark)
{
    ctx->path_len = mark;
    ctx->path[mark] = '\0';
}

static int cfg_vfail(struct cfg_ctx *ctx, int line, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
static int cfg_fail_line(struct cfg_ctx *ctx, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
cfg_vfail(struct cfg_ctx *ctx, int line, const char *fmt, va_list ap)
{
    int n;

    n = snprintf(ctx->err, ctx->errlen, "%s:%d: %s%s", ctx->file, line, ctx->path,
                 ctx->path_len ? ": " : "");
    if (n >= 0 && (size_t)n < ctx->errlen)
        vsnprintf(ctx->err + n, ctx->errlen - (size_t)n, fmt, ap);
    return -1;
}

static int
cfg_fail_line(struct cfg_ctx *ctx, int line, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    cfg_vfail(ctx, line, fmt, ap);
    va_end(ap);
    return -1;
}

int
cfg_fail(struct cfg_ctx *ctx, const char *fmt, ...)
{
    va_list ap;
    int     line = cfg_line_of(ctx->src, ctx->src_len, ctx->path);

    va_start(ap, fmt);
    cfg_vfail(ctx, line, fmt, ap);
    va_end(ap);
    return -1;
}

int
cfg_fail_missing(struct cfg_ctx *ctx, const char *key)
{
    int line = cfg_line_of(ctx->src, ctx->src_len, ctx->path); /* the enclosing table */

    cfg_push_key(ctx, key);
    return cfg_fail_line(ctx, line, "required");
}

/* ---- tables ---------------------------------------------------------------------- */

static int
cfg_abs(lua_State *L, int t)
{
    return t < 0 ? lua_gettop(L) + t + 1 : t;
}

static bool
cfg_is_allowed(const char *key, const char *const *allowed)
{
    for (; *allowed != NULL; allowed++)
        if (strcmp(key, *allowed) == 0)
            return true;
    return false;
}

/* The keys of the table at t: only strings, each one allowed (by one of the two). */
static int
cfg_check_keys_of(struct cfg_ctx *ctx, int t, const char *const *allowed,
                  const struct config_schema_table *schema)
{
    lua_State  *L = ctx->L;
    const char *key;

    t = cfg_abs(L, t);
    if (lua_type(L, t) != LUA_TTABLE)
        return cfg_fail(ctx, "expected a table");
    lua_pushnil(L);
    while (lua_next(L, t) != 0) {
        lua_pop(L, 1);
        if (lua_type(L, -1) == LUA_TNUMBER)
            return cfg_fail(ctx, "unexpected list entry [%g] (expected named keys)",
                            lua_tonumber(L, -1));
        if (lua_type(L, -1) != LUA_TSTRING)
            return cfg_fail(ctx, "unexpected %s key", luaL_typename(L, -1));
        key = lua_tostring(L, -1);
        if (allowed != NULL ? !cfg_is_allowed(key, allowed)
                            : config_schema_find(schema, key) == NULL) {
            cfg_push_key(ctx, key);
            return cfg_fail(ctx, "unknown key");
        }
    }
    return 0;
}

int
cfg_check_keys(struct cfg_ctx *ctx, int t, const char *const *allowed)
{
    return cfg_check_keys_of(ctx, t, allowed, NULL);
}

int
cfg_check_schema_keys(struct cfg_ctx *ctx, int t, const struct config_schema_table *schema)
{
    return cfg_check_keys_of(ctx, t, NULL, schema);
}

int
cfg_check_list(struct cfg_ctx *ctx, int t, size_t *n)
{
    lua_State *L = ctx->L;
    size_t     count = 0, len;
    lua_Number k;

    t = cfg_abs(L, t);
    if (lua_type(L, t) != LUA_TTABLE)
        return cfg_fail(ctx, "expected a list");
    len = lua_objlen(L, t);
    lua_pushnil(L);
    while (lua_next(L, t) != 0) {
        lua_pop(L, 1);
        k = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : 0;
        if (k < 1 || k > (lua_Number)len || k != floor(k))
            return cfg_fail(ctx, "expected a list");
        count++;
    }
    if (count != len)
        return cfg_fail(ctx, "expected a list");
    *n = len;
    return 0;
}

int
cfg_field(struct cfg_ctx *ctx, int t, const char *key, size_t *mark)
{
    t = cfg_abs(ctx->L, t);
    *mark = cfg_push_key(ctx, key);
    lua_pushstring(ctx->L, key);
    lua_rawget(ctx->L, t);
    return lua_type(ctx->L, -1);
}

/* ---- sections ---------------------------------------------------------------------- */

/* Enter the optional table t[key]. Returns 1 with it on the stack top (leave with
 * cfg_leave), 0 when absent, -1 on error. allowed NULL: any keys (checked later). */
int
cfg_enter(struct cfg_ctx *ctx, int t, const char *key, const char *const *allowed,
          size_t *mark)
{
    int type = cfg_field(ctx, t, key, mark);

    if (type == LUA_TNIL) {
        lua_pop(ctx->L, 1);
        cfg_pop(ctx, *mark);
        return 0;
    }
    if (type != LUA_TTABLE)
        return cfg_fail(ctx, "expected a table");
    if (allowed != NULL && cfg_check_keys(ctx, -1, allowed) != 0)
        return -1;
    return 1;
}

int
cfg_enter_schema(struct cfg_ctx *ctx, int t, const char *key,
                 const struct config_schema_table *schema, size_t *mark)
{
    int rc = cfg_enter(ctx, t, key, NULL, mark);

    if (rc == 1 && cfg_check_schema_keys(ctx, -1, schema) != 0)
        return -1;
    return rc;
}

void
cfg_leave(struct cfg_ctx *ctx, size_t mark)
{
    lua_pop(ctx->L, 1);
    cfg_pop(ctx, mark);
}

/* A required, non-empty list at t[key]: *n entries, the list on the stack top. */
int
cfg_enter_list(struct cfg_ctx *ctx, int t, const char *key, size_t *n, size_t *mark)
{
    int rc = cfg_enter(ctx, t, key, NULL, mark);

    if (rc == 0)
        return cfg_fail_missing(ctx, key);
    if (rc < 0 || cfg_check_list(ctx, -1, n) != 0)
        return -1;
    if (*n == 0)
        return cfg_fail(ctx, "expected a non-empty list");
    return 0;
}

/* Report an error about t[key] that is present but wrong as a whole. */
int
cfg_fail_key(struct cfg_ctx *ctx, const char *key, const char *msg)
{
    cfg_push_key(ctx, key);
    return cfg_fail(ctx, "%s", msg);
}

void
cfg_lowercase(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s - 'A' + 'a');
}

bool
cfg_is_ip(const char *s)
{
    unsigned char buf[16];

    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* ---- typed getters: each pushes t[key], checks it, pops it and the path ------------ */

/* Leave a getter: pop the value and the key path, pass rc through. */
static int
cfg_done(struct cfg_ctx *ctx, size_t mark, int rc)
{
    lua_pop(ctx->L, 1);
    cfg_pop(ctx, mark);
    return rc;
}

/* t[key] is nil: fine unless required. Pops like cfg_done. */
static int
cfg_absent(struct cfg_ctx *ctx, size_t mark, const char *key, bool required)
{
    cfg_done(ctx, mark, 0);
    return required ? cfg_fail_missing(ctx, key) : 0;
}

static int
cfg_check_integer(struct cfg_ctx *ctx, double min, double max, double *v)
{
    lua_State *L = ctx->L;

    *v = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : NAN;
    if (*v >= min && *v <= max && *v == floor(*v))
        return 0;
    if (min == 1 && max == CFG_INT_MAX)
        return cfg_fail(ctx, "expected a positive integer");
    if (min == 0 && max == CFG_INT_MAX)
        return cfg_fail(ctx, "expected an integer >= 0");
    return cfg_fail(ctx, "expected an integer from %.0f to %.0f", min, max);
}

int
cfg_get_uint(struct cfg_ctx *ctx, int t, const char *key, double min, double max,
             size_t *out)
{
    size_t mark;
    double v;
    int    rc = 0;

    if (cfg_field(ctx, t, key, &mark) != LUA_TNIL) {
        rc = cfg_check_integer(ctx, min, max, &v);
        if (rc == 0)
            *out = (size_t)v;
    }
    return cfg_done(ctx, mark, rc);
}

int
cfg_get_int(struct cfg_ctx *ctx, int t, const char *key, int min, int max, bool required,
            int *out)
{
    size_t mark;
    double v;
    int    rc;

    if (cfg_field(ctx, t, key, &mark) == LUA_TNIL)
        return cfg_absent(ctx, mark, key, required);
    rc = cfg_check_integer(ctx, min, max, &v);
    if (rc == 0)
        *out = (int)v;
    return cfg_done(ctx, mark, rc);
}

int
cfg_get_seconds(struct cfg_ctx *ctx, int t, const char *key, double *out)
{
    size_t mark;
    double v;
    int    rc = 0;

    if (cfg_field(ctx, t, key, &mark) != LUA_TNIL) {
        v = lua_type(ctx->L, -1) == LUA_TNUMBER ? lua_tonumber(ctx->L, -1) : NAN;
        if (!(v > 0))
            rc = cfg_fail(ctx, "expected a positive number of seconds");
        else if (v > CFG_MAX_SECONDS)
            rc = cfg_fail(ctx, "expected at most %.0f seconds", CFG_MAX_SECONDS);
        else
            *out = v;
    }
    return cfg_done(ctx, mark, rc);
}

int
cfg_get_bool(struct cfg_ctx *ctx, int t, const char *key, bool *out)
{
    size_t mark;
    int    type = cfg_field(ctx, t, key, &mark), rc = 0;

    if (type == LUA_TBOOLEAN)
        *out = lua_toboolean(ctx->L, -1);
    else if (type != LUA_TNIL)
        rc = cfg_fail(ctx, "expected true or false");
    return cfg_done(ctx, mark, rc);
}

int
cfg_strdup(struct cfg_ctx *ctx, const char *s, char **out)
{
    char *copy = strdup(s);

    if (copy == NULL)
        return cfg_fail(ctx, "out of memory");
    free(*out);
    *out = copy;
    return 0;
}

int
cfg_to_string(struct cfg_ctx *ctx, char **out)
{
    const char *s;
    size_t      len, i;

    if (lua_type(ctx->L, -1) != LUA_TSTRING)
        return cfg_fail(ctx, "expected a string");
    s = lua_tolstring(ctx->L, -1, &len);
    if (len == 0)
        return cfg_fail(ctx, "expected a non-empty string");
    for (i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return cfg_fail(ctx, "must not contain control characters");
    return cfg_strdup(ctx, s, out);
}

int
cfg_get_string(struct cfg_ctx *ctx, int t, const char *key, bool required, char **out)
{
    size_t mark;

    if (cfg_field(ctx, t, key, &mark) == LUA_TNIL)
        return cfg_absent(ctx, mark, key, required);
    return cfg_done(ctx, mark, cfg_to_string(ctx, out));
}

void
cfg_free_strings(char **list)
{
    char **p;

    for (p = list; p != NULL && *p != NULL; p++)
        free(*p);
    free(list);
}

int
cfg_get_strings(struct cfg_ctx *ctx, int t, const char *key, bool single, bool required,
                char ***out)
{
    size_t mark, imark, n = 1, i;
    int    type = cfg_field(ctx, t, key, &mark);

    if (type == LUA_TNIL)
        return cfg_absent(ctx, mark, key, required);
    if (type == LUA_TTABLE) {
        if (cfg_check_list(ctx, -1, &n) != 0)
            return -1;
    } else if (!single || type != LUA_TSTRING) {
        return cfg_fail(ctx, single ? "expected a string or a list of strings"
                                    : "expected a list of strings");
    }
    if (n == 0)
        return cfg_fail(ctx, "expected a non-empty list");
    cfg_free_strings(*out);
    *out = calloc(n + 1, sizeof(**out));
    if (*out == NULL)
        return cfg_fail(ctx, "out of memory");
    if (type == LUA_TSTRING)
        return cfg_done(ctx, mark, cfg_to_string(ctx, &(*out)[0]));
    for (i = 0; i < n; i++) {
        imark = cfg_push_index(ctx, i + 1);
        lua_rawgeti(ctx->L, -1, (int)i + 1);
        if (cfg_to_string(ctx, &(*out)[i]) != 0)
            return -1;
        cfg_done(ctx, imark, 0);
    }
    return cfg_done(ctx, mark, 0);
}

/* Collapse "//", "/./" and "dir/.." in an absolute path, in place (lexically: the
 * result names the file the operator wrote, whatever symlinks are on the way). */
static void
cfg_normalize(char *p)
{
    char  *out = p, *seg = p;
    size_t n;

    while (*seg != '\0') {
        while (*seg == '/')
            seg++;
        for (n = 0; seg[n] != '\0' && seg[n] != '/'; n++)
            ;
        if (n == 0 || (n == 1 && seg[0] == '.')) {
            /* nothing */
        } else if (n == 2 && seg[0] == '.' && seg[1] == '.') {
            while (out > p && *--out != '/')
                ;
        } else {
            *out++ = '/';
            memmove(out, seg, n);
            out += n;
        }
        seg += n;
    }
    if (out == p)
        *out++ = '/';
    *out = '\0';
}

char *
cfg_resolve(const struct cfg_ctx *ctx, const char *path)
{
    size_t n = strlen(ctx->dir) + 1 + strlen(path) + 1;
    char  *out = malloc(n);

    if (out == NULL)
        return NULL;
    if (path[0] == '/')
        snprintf(out, n, "%s", path);
    else
        snprintf(out, n, "%s/%s", ctx->dir, path);
    if (out[0] == '/') /* ctx->dir is absolute unless realpath() failed */
        cfg_normalize(out);
    return out;
}

size_t
cfg_first_line(const char *path, char *buf, size_t size)
{
    int     fd = privfile_open(path, PRIVFILE_READ);
    ssize_t got = 0;
    size_t  n = 0;

    while (fd >= 0 && n + 1 < size && (got = read(fd, buf + n, size - 1 - n)) != 0) {
        if (got < 0 && errno != EINTR)
            break;
        n += got > 0 ? (size_t)got : 0;
    }
    if (fd >= 0)
        close(fd);
    buf[got < 0 ? 0 : n] = '\0';
    n = strcspn(buf, "\r\n");
    buf[n] = '\0';
    return n;
}

int
cfg_get_path(struct cfg_ctx *ctx, int t, const char *key, bool required, bool readable,
             char **out)
{
    char  *raw = NULL, *full;
    size_t mark;
    int    rc;

    if (cfg_field(ctx, t, key, &mark) == LUA_TNIL)
        return cfg_absent(ctx, mark, key, required);
    rc = cfg_to_string(ctx, &raw);
    if (rc == 0) {
        full = cfg_resolve(ctx, raw);
        if (full == NULL)
            rc = cfg_fail(ctx, "out of memory");
        else if (readable && privfile_check(full) != 0)
            rc = cfg_fail(ctx, "cannot read '%s': %s", full, strerror(errno));
        else if (readable)
            rc = cfg_note_file(ctx, full);
        free(*out);
        *out = full;
    }
    free(raw);
    return cfg_done(ctx, mark, rc);
}

int
cfg_get_enum(struct cfg_ctx *ctx, int t, const char *key, const char *const *names,
             const int *values, bool required, int *out)
{
    const char *s;
    char        list[256] = "";
    size_t      mark, i, used = 0;

    if (cfg_field(ctx, t, key, &mark) == LUA_TNIL)
        return cfg_absent(ctx, mark, key, required);
    s = lua_type(ctx->L, -1) == LUA_TSTRING ? lua_tostring(ctx->L, -1) : NULL;
    for (i = 0; names[i] != NULL; i++) {
        if (s != NULL && strcmp(s, names[i]) == 0) {
            *out = values[i];
            return cfg_done(ctx, mark, 0);
        }
        if (used < sizeof(list))
            used += (size_t)snprintf(list + used, sizeof(list) - used, "%s'%s'",
                                     i == 0 ? "" : names[i + 1] ? ", " : " or ", names[i]);
    }
    return cfg_done(ctx, mark, cfg_fail(ctx, "expected %s", list));
}

bool
cfg_is_hostname(const char *s, bool wildcard)
{
    size_t n = strlen(s), label = 0, i;

    if (wildcard && n > 2 && s[0] == '*' && s[1] == '.')
        s += 2, n -= 2;
    if (n == 0 || n > 253)
        return false;
    for (i = 0; i < n; i++) {
        if (s[i] == '.') {
            if (label == 0)
                return false;
            label = 0;
        } else if (isalnum((unsigned char)s[i]) || s[i] == '-' || s[i] == '_') {
            if (++label > 63)
                return false;
        } else {
            return false;
        }
    }
    return label > 0;
}

int
cfg_count_named(struct cfg_ctx *ctx, const char *example, size_t *n)
{
    lua_State *L = ctx->L;

    *n = 0;
    for (lua_pushnil(L); lua_next(L, -2) != 0; lua_pop(L, 1), (*n)++) {
        if (lua_type(L, -2) != LUA_TSTRING)
            return cfg_fail(ctx, "expected %s", example);
    }
    return 0;
}
