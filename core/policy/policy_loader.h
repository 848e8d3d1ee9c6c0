/* core/policy/policy_loader.h: Lua source files read through privfile.h, so that a reload as the
 * service user loads what start-up loaded as root (a clone under root's 0700 home): the
 * policy files themselves, and every module they require from package.path (the sluice
 * library in lua_dir, a site's own modules). C modules (package.cpath: lua-cjson) are
 * system libraries and load as before. */
#ifndef SLUICE_POLICY_LOADER_H
#define SLUICE_POLICY_LOADER_H

#include <lua.h>

/* Like luaL_loadfile(): the chunk on the stack (named "@path"), or an error message;
 * returns 0 or a LUA_ERR* code. */
int policy_loader_load(lua_State *L, const char *path);

/* Replace package.loaders[2], the Lua file searcher, with one that reads through
 * privfile.h; same search order and messages as Lua 5.1's. */
void policy_loader_install(lua_State *L);

/* Line (1-based) of the first line of the file at path holding word, 0 if none. */
int policy_loader_line_of(const char *path, const char *word);

#endif
