/* core/daemon/control_lua.h: the control plane's own Lua state, in which `sluice ctl` calls
 * the Lua modules that own zone keys (lua/sluice/ratelimit.lua's ctl_show, ctl_reset,
 * ctl_list; lua/sluice/denylist.lua's deny, allow) instead of knowing their key layouts. A
 * state is made per request from the running generation's configuration (its lua_dir, its
 * zones' names), so that a reload that replaces a module takes effect at the next request.
 * It has the sluice API of a policy (zones through lapi_zone.c; sluice.now is the wall
 * clock) and sluice.ctl, which only this state has: zones(), keys(zone, prefix, now, max,
 * opts) and delete(zone, key, now). Runs on the control thread; zones lock themselves. */
#ifndef SLUICE_CONTROL_LUA_H
#define SLUICE_CONTROL_LUA_H

#include <lua.h>
#include <stddef.h>

struct config;
struct zones;
struct control_lua;

/* A state over cfg->lua_dir and zones (both borrowed: they must outlive it), or NULL and
 * the reason in err. */
struct control_lua *control_lua_new(const struct config *cfg, struct zones *zones, char *err,
                                    size_t errlen);
void                control_lua_free(struct control_lua *cl);
lua_State          *control_lua_state(struct control_lua *cl);

/* Call require(module)[fn] with the nargs values on the stack top, keeping nresults. 0 with
 * the results pushed; or -1 with nothing pushed and, in err, "what: module M has no fn",
 * "what: cannot load M: ..." or "what: M.fn: <the Lua error>". */
int control_lua_call(struct control_lua *cl, const char *what, const char *module,
                     const char *fn, int nargs, int nresults, char *err, size_t errlen);

#endif
