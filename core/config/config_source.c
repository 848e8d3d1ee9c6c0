/* core/config/config_source.c: the config file as text and as a Lua chunk. Reads it, runs it
 * in a throwaway LuaJIT state (base minus dofile/loadfile/require, string, table, math;
 * a budget of VM instructions) with errors rewritten to "file:line: ...", and finds the
 * line of a key path in the text for errors found after the run. What the returned
 * table must contain is config.c's. */
#include <ctype.h>
#include <errno.h>
#include <lauxlib.h>
#include <libgen.h>
#include <lua.h>
#include <luajit.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_internal.h"
#include "util/privfile.h"

#define CFG_MAX_FILE  (4u * 1024 * 1024)
#define CFG_MAX_STEPS 10000000 /* VM instructions: a config is data, not a program */

/* ---- running the file ------------------------------------------------------------------ */

char *
cfg_read_file(const char *path, size_t *len, char *err, size_t errlen)
{
    return privfile_read(path, CFG_MAX_FILE, len, err, errlen);
}

/* Absolute directory of path (symlinks in the directory resolved, not the file). */
char *
cfg_dir_of(const char *path)
{
    char *copy = strdup(path), *parent, *dir;

    if (copy == NULL)
        return NULL;
    parent = dirname(copy);
    dir = realpath(parent, NULL);
    if (dir == NULL)
        dir = strdup(parent); /* missing directory: the file could not be read anyway */
    free(copy);
    return dir;
}

static void
cfg_budget_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    luaL_error(L, "the configuration ran for too long (an endless loop?)");
}

/* Error handler: make sure the message carries "chunk:line:", even for error(x, 0)
 * or a non-string error value. */
static int
cfg_msgh(lua_State *L)
{
    lua_Debug   ar;
    const char *msg = lua_tostring(L, 1);
    int         level, line = 0;

    if (msg != NULL && strncmp(msg, CFG_CHUNK ":", sizeof(CFG_CHUNK)) == 0)
        return 1;
    for (level = 0; line <= 0 && lua_getstack(L, level, &ar); level++)
        if (lua_getinfo(L, "Sl", &ar) && strcmp(ar.source, "=" CFG_CHUNK) == 0)
            line = ar.currentline;
    if (msg != NULL)
        lua_pushfstring(L, CFG_CHUNK ":%d: %s", line, msg);
    else
        lua_pushfstring(L, CFG_CHUNK ":%d: error object is a %s value", line,
                        luaL_typename(L, 1));
    return 1;
}

lua_State *
cfg_sandbox(void)
{
    static const struct {
        const char   *name;
        lua_CFunction open;
    } libs[] = {{"", luaopen_base}, {LUA_STRLIBNAME, luaopen_string},
                {LUA_TABLIBNAME, luaopen_table}, {LUA_MATHLIBNAME, luaopen_math}};
    static const char *const removed[] = {"dofile", "loadfile", "require", "module"};
    lua_State *L = luaL_newstate();
    size_t     i;

    if (L == NULL)
        return NULL;
    luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_OFF); /* so the hook counts */
    for (i = 0; i < sizeof(libs) / sizeof(libs[0]); i++) {
        lua_pushcfunction(L, libs[i].open);
        lua_pushstring(L, libs[i].name);
        lua_call(L, 1, 0);
    }
    for (i = 0; i < sizeof(removed) / sizeof(removed[0]); i++) {
        lua_pushnil(L);
        lua_setglobal(L, removed[i]);
    }
    return L;
}

/* Replace Lua's "sluice-config:" prefix with the file's path. */
void
cfg_lua_error(struct cfg_ctx *ctx, const char *msg)
{
    if (msg == NULL)
        msg = CFG_CHUNK ":0: out of memory";
    if (strncmp(msg, CFG_CHUNK ":", sizeof(CFG_CHUNK)) == 0)
        snprintf(ctx->err, ctx->errlen, "%s%s", ctx->file, msg + sizeof(CFG_CHUNK) - 1);
    else
        snprintf(ctx->err, ctx->errlen, "%s: %s", ctx->file, msg);
}

/* Load and run the file; leaves the returned table in the registry as CFG_CHUNK. */
int
cfg_run(struct cfg_ctx *ctx)
{
    lua_State *L = ctx->L;

    lua_pushcfunction(L, cfg_msgh);
    if (luaL_loadbuffer(L, ctx->src, ctx->src_len, "=" CFG_CHUNK) != 0) {
        cfg_lua_error(ctx, lua_tostring(L, -1));
        return -1;
    }
    lua_sethook(L, cfg_budget_hook, LUA_MASKCOUNT, CFG_MAX_STEPS);
    if (lua_pcall(L, 0, 1, -2) != 0) {
        cfg_lua_error(ctx, lua_tostring(L, -1));
        return -1;
    }
    lua_sethook(L, NULL, 0, 0);
    if (lua_type(L, -1) != LUA_TTABLE)
        return cfg_fail(ctx, "the file must return a table, not a %s value",
                        luaL_typename(L, -1));
    lua_setfield(L, LUA_REGISTRYINDEX, CFG_CHUNK);
    lua_pop(L, 1);
    return 0;
}

/* ---- finding a key's line in the source text ---------------------------------------- */

/* Skip a long bracket "[[...]]" or "[==[...]==]" starting at s[i] == '['. Returns the
 * offset after it, or i if s[i] does not open one. */
static size_t
cfg_skip_long(const char *s, size_t n, size_t i)
{
    size_t level = 0, j = i + 1, k;

    while (j < n && s[j] == '=')
        level++, j++;
    if (j >= n || s[j] != '[')
        return i;
    for (j++; j < n; j++) {
        if (s[j] != ']')
            continue;
        for (k = 0; k < level && j + 1 + k < n && s[j + 1 + k] == '='; k++)
            ;
        if (k == level && j + 1 + k < n && s[j + 1 + k] == ']')
            return j + 2 + k;
    }
    return n;
}

/* Skip a quoted string starting at s[i]; stops at the closing quote or end of line. */
static size_t
cfg_skip_quoted(const char *s, size_t n, size_t i)
{
    char q = s[i];

    for (i++; i < n && s[i] != q && s[i] != '\n'; i++)
        if (s[i] == '\\' && i + 1 < n)
            i++;
    return i < n ? i + 1 : n;
}

/* After a key at s[i]: optional blanks, then '=' that is not '=='. */
static bool
cfg_is_assignment(const char *s, size_t n, size_t i)
{
    while (i < n && (s[i] == ' ' || s[i] == '\t'))
        i++;
    return i < n && s[i] == '=' && (i + 1 >= n || s[i + 1] != '=');
}

/* ['name'] = or ["name"] = at s[i] == '['. */
static bool
cfg_is_bracket_key(const char *s, size_t n, size_t i, const char *name, size_t nlen)
{
    char q;

    for (i++; i < n && (s[i] == ' ' || s[i] == '\t'); i++)
        ;
    if (i >= n || (s[i] != '\'' && s[i] != '"'))
        return false;
    q = s[i++];
    if (i + nlen + 1 > n || memcmp(s + i, name, nlen) != 0 || s[i + nlen] != q)
        return false;
    for (i += nlen + 1; i < n && (s[i] == ' ' || s[i] == '\t'); i++)
        ;
    return i < n && s[i] == ']' && cfg_is_assignment(s, n, i + 1);
}

/* Offset of the next "name =" or "['name'] =" at or after from, outside comments and
 * strings; -1 if none. */
static long
cfg_find_key(const char *s, size_t n, size_t from, const char *name, size_t nlen)
{
    size_t i = from, j;

    while (i < n) {
        if (s[i] == '-' && i + 1 < n && s[i + 1] == '-') {
            j = i + 2 < n && s[i + 2] == '[' ? cfg_skip_long(s, n, i + 2) : i + 2;
            if (j == i + 2)
                while (j < n && s[j] != '\n')
                    j++;
            i = j;
        } else if (s[i] == '[') {
            if (cfg_is_bracket_key(s, n, i, name, nlen))
                return (long)i;
            j = cfg_skip_long(s, n, i);
            i = j == i ? i + 1 : j;
        } else if (s[i] == '\'' || s[i] == '"') {
            i = cfg_skip_quoted(s, n, i);
        } else if (isalpha((unsigned char)s[i]) || s[i] == '_') {
            for (j = i; j < n && (isalnum((unsigned char)s[j]) || s[j] == '_'); j++)
                ;
            if (j - i == nlen && memcmp(s + i, name, nlen) == 0 && cfg_is_assignment(s, n, j))
                return (long)i;
            i = j;
        } else {
            i++;
        }
    }
    return -1;
}

static int
cfg_line_at(const char *s, size_t off)
{
    int    line = 1;
    size_t i;

    for (i = 0; i < off; i++)
        if (s[i] == '\n')
            line++;
    return line;
}

/* The last line that starts with "return": where the config table is built. */
static int
cfg_return_line(const char *s, size_t n)
{
    int    line = 1, found = 1;
    size_t i = 0;

    while (i < n) {
        while (i < n && (s[i] == ' ' || s[i] == '\t'))
            i++;
        if (n - i >= 6 && memcmp(s + i, "return", 6) == 0 &&
            (n - i == 6 || !(isalnum((unsigned char)s[i + 6]) || s[i + 6] == '_')))
            found = line;
        while (i < n && s[i] != '\n')
            i++;
        i++, line++;
    }
    return found;
}

/* Next component of a key path at *p: a name (into name, returns its length) or an
 * index (*index set, returns 0). Returns -1 at the end. */
static int
cfg_next_component(const char **p, char *name, size_t namemax, size_t *index)
{
    const char *s = *p, *e;
    size_t      len;

    while (*s == '.')
        s++;
    if (*s == '\0')
        return -1;
    if (s[0] == '[' && (s[1] == '\'' || s[1] == '"')) {
        e = strchr(s + 2, s[1]);
        e = e ? e : s + strlen(s);
        len = (size_t)(e - (s + 2));
        s += 2;
        *p = *e ? e + 2 : e; /* past "']" */
    } else if (s[0] == '[') {
        *index = strtoul(s + 1, (char **)&e, 10);
        *p = *e == ']' ? e + 1 : e;
        return 0;
    } else {
        for (e = s; *e && *e != '.' && *e != '['; e++)
            ;
        len = (size_t)(e - s);
        *p = e;
    }
    len = len < namemax - 1 ? len : namemax - 1;
    memcpy(name, s, len);
    name[len] = '\0';
    return (int)len;
}

/* Best effort, as no line numbers survive into the table: follow the path's names
 * through the text, each searched after the previous one ("listeners[2].port" is the
 * second "port =" after "listeners ="). If the last name is not found that way, its
 * first occurrence anywhere; else the deepest name found; else the "return" line. */
int
cfg_line_of(const char *src, size_t len, const char *path)
{
    char   name[128], last[128] = "";
    size_t from = 0, index = 0, k;
    long   off = -1, found = -1;
    int    nlen;
    bool   complete = true;

    while ((nlen = cfg_next_component(&path, name, sizeof(name), &index)) >= 0) {
        if (nlen == 0)
            continue; /* an index: applies to the next name */
        memcpy(last, name, (size_t)nlen + 1);
        if (!complete)
            continue;
        for (k = 0, off = -1; k < (index ? index : 1); k++) {
            long o = cfg_find_key(src, len, from, name, (size_t)nlen);
            if (o < 0)
                break;
            off = o;
            from = (size_t)o + (size_t)nlen;
        }
        index = 0;
        if (off < 0)
            complete = false;
        else
            found = off;
    }
    if (!complete && last[0] != '\0') {
        off = cfg_find_key(src, len, 0, last, strlen(last));
        found = off >= 0 ? off : found;
    }
    return found >= 0 ? cfg_line_at(src, (size_t)found) : cfg_return_line(src, len);
}

