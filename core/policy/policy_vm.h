/* core/policy/policy_vm.h: one LuaJIT state holding the configured policies (docs/lua-api.md).
 * A worker owns one; `sluice check` makes one to prove the policies load. Making it puts
 * cfg->lua_dir and lua-cjson on the module paths, registers the C half of the API as
 * package.preload['sluice.core'] (lapi_core.c), and runs every policy file: each must
 * return a table whose keys are hook names and whose values are functions.
 * sluice.audit writes through the daemon's one audit writer (audit.h), given with
 * policy_vm_set_audit(); without one, audit events are discarded.
 * Not thread-safe: one thread uses a vm at a time. */
#ifndef SLUICE_POLICY_VM_H
#define SLUICE_POLICY_VM_H

#include <lua.h>
#include <stddef.h>

struct config;
struct zones;
struct ev_loop;
struct audit;

/* The hooks a policy table may hold, in the order of enum policy_hook. */
enum policy_hook {
    POLICY_ON_CONNECT,
    POLICY_ON_HELO,
    POLICY_ON_AUTH,
    POLICY_ON_AUTH_RESULT,
    POLICY_ON_MAIL_FROM,
    POLICY_ON_RCPT,
    POLICY_ON_DATA,
    POLICY_ON_RELAYED,
    POLICY_ON_DISCONNECT,
    POLICY_N_HOOKS,
};

/* "on_connect", ... */
extern const char *const policy_hook_names[POLICY_N_HOOKS];

struct policy_vm;

/* Where lua-cjson lives on Debian and with a /usr/local build: package.cpath of every
 * Lua state the daemon makes (policies', the control plane's). */
#define POLICY_VM_CPATH                                                                  \
    "/usr/local/lib/lua/5.1/?.so;/usr/lib/x86_64-linux-gnu/lua/5.1/?.so;"               \
    "/usr/lib/lua/5.1/?.so"

/* A state with every policy of cfg loaded, or NULL and "file:line: reason" in err (or
 * "PATH: cannot open for appending: REASON" when cfg->audit_log cannot be written).
 * zones (may be NULL: zone operations raise) and loop (may be NULL: sluice.now is the
 * wall clock) are borrowed and must outlive the vm. */
struct policy_vm *policy_vm_new(const struct config *cfg, struct zones *zones,
                                struct ev_loop *loop, char *err, size_t errlen);
void              policy_vm_free(struct policy_vm *vm);

/* The worker's connection to Redis that hooks on Redis zones wait on (zone.h); without
 * one (NULL) they use the blocking connection. Set before the vm's first hook runs. */
struct zone_link;
void policy_vm_set_zone_link(struct policy_vm *vm, struct zone_link *zlink);

/* Send sluice.audit to a (borrowed, must outlive the vm; NULL: discard). */
void policy_vm_set_audit(struct policy_vm *vm, struct audit *a);

/* A full garbage collection, so that what ended sessions left (their tables) is freed and
 * LuaJIT's allocator can give it back to the system. Between hooks only: never from
 * inside a hook or a binding. NULL: nothing. Neither frees vm nor yields. */
void policy_vm_collect(struct policy_vm *vm);

/* The state, for the hook runner. */
lua_State *policy_vm_state(struct policy_vm *vm);

/* The policies in configuration order: their count and each one's file. */
size_t      policy_vm_n_policies(const struct policy_vm *vm);
const char *policy_vm_path(const struct policy_vm *vm, size_t i);

/* Push policy i's function for hook onto L (the vm's state or one of its threads):
 * 1, or 0 with nothing pushed when the policy has no such hook. */
int policy_vm_push_hook(const struct policy_vm *vm, lua_State *L, size_t i,
                        enum policy_hook hook);

/* Push verdict.check (lua/sluice/verdict.lua) onto L. */
void policy_vm_push_check(const struct policy_vm *vm, lua_State *L);

/* The environment of the C half (lapi.h), for the hook runner. */
struct lapi_env *policy_vm_env(struct policy_vm *vm);

/* Number of policies with this hook (0 lets the core skip the engine entirely). */
size_t policy_vm_hook_count(const struct policy_vm *vm, enum policy_hook hook);

#endif
