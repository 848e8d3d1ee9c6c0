/* core/policy/policy_loader.c: Lua source through privfile.h; see policy_loader.h. */
#include "policy/policy_loader.h"

#include <errno.h>
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "util/privfile.h"

#define POLICY_LOADER_MAX_FILE (4u * 1024 * 1024) /* octets of one Lua source file */

int
policy_loader_load(lua_State *L, const char *path)
{
    char   err[512];
    size_t len;
    char  *text = privfile_read(path, POLICY_LOADER_MAX_FILE, &len, err, sizeof(err));
    int    rc;

    if (text == NULL) {
        lua_pushstring(L, err);
        return LUA_ERRFILE;
    }
    lua_pushfstring(L, "@%s", path);
    /* A first line starting with '#' is skipped by luaL_loadfile (a #! line): so here. */
    rc = luaL_loadbuffer(L, text[0] == '#' ? text + strcspn(text, "\n") : text,
                         text[0] == '#' ? len - strcspn(text, "\n") : len, lua_tostring(L, -1));
    lua_remove(L, -2);
    free(text);
    return rc;
}

/* The searcher: for each template of package.path, the name (dots made slashes) in place
 * of '?'; the first file that exists is loaded. */
static int
policy_loader_search(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1), *path, *file;
    luaL_Buffer missing;
    size_t      n;

    lua_getfield(L, LUA_GLOBALSINDEX, "package");
    lua_getfield(L, -1, "path");
    path = lua_tostring(L, -1);
    if (path == NULL)
        luaL_error(L, "'package.path' must be a string");
    name = luaL_gsub(L, name, ".", "/");
    luaL_buffinit(L, &missing);
    while (*path != '\0') {
        n = strcspn(path, ";");
        if (n > 0) {
            lua_pushlstring(L, path, n);
            file = luaL_gsub(L, lua_tostring(L, -1), "?", name);
            lua_remove(L, -2);
            if (privfile_check(file) == 0 || errno != ENOENT) {
                if (policy_loader_load(L, file) != 0)
                    luaL_error(L, "error loading module '%s' from file '%s':\n\t%s",
                               lua_tostring(L, 1), file, lua_tostring(L, -1));
                return 1;
            }
            lua_pushfstring(L, "\n\tno file '%s'", file);
            lua_remove(L, -2);
            luaL_addvalue(&missing);
        }
        path += n + (path[n] == ';');
    }
    luaL_pushresult(&missing);
    return 1;
}

void
policy_loader_install(lua_State *L)
{
    lua_getfield(L, LUA_GLOBALSINDEX, "package");
    lua_getfield(L, -1, "loaders");
    lua_pushcfunction(L, policy_loader_search);
    lua_rawseti(L, -2, 2);
    lua_pop(L, 2);
}

int
policy_loader_line_of(const char *path, const char *word)
{
    char        err[512];
    size_t      len;
    char       *text = privfile_read(path, POLICY_LOADER_MAX_FILE, &len, err, sizeof(err));
    const char *at = text != NULL ? strstr(text, word) : NULL;
    int         line = 1;

    if (at == NULL) {
        free(text);
        return 0;
    }
    for (const char *p = text; p < at; p++)
        line += *p == '\n';
    free(text);
    return line;
}
