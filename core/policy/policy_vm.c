/* core/policy/policy_vm.c: making a policy state and loading the policies (see policy_vm.h).
 * Running hooks is hook_run's; the functions policies call are lapi_*.c's. */
#include "policy/policy_vm.h"

#include <lauxlib.h>
#include <luajit.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/audit.h"
#include "config/config.h"
#include "policy/lapi.h"
#include "policy/policy_loader.h"

const char *const policy_hook_names[POLICY_N_HOOKS] = {
    "on_connect", "on_helo", "on_auth", "on_auth_result", "on_mail_from",
    "on_rcpt",    "on_data", "on_relayed", "on_disconnect",
};

struct policy {
    const char *path;                  /* borrows cfg->policies[i] */
    int         hooks[POLICY_N_HOOKS]; /* registry refs of the functions, LUA_NOREF */
};

struct policy_vm {
    lua_State     *L;        /* owns */
    struct lapi_env env;     /* the registry points here; env.audit borrows */
    struct policy *policies; /* owns; n_policies entries, in configuration order */
    size_t         n_policies;
    size_t         hook_count[POLICY_N_HOOKS];
    int            verdict_check; /* registry ref of verdict.check */
};

/* One policy_vm_new() call, for the protected loader. All pointers borrow. */
struct policy_load {
    struct policy_vm *vm;
    char             *err;
    size_t            errlen;
    int               rc;
};

/* package.path, package.cpath and package.preload['sluice.core']. */
static void
policy_vm_paths(lua_State *L, const char *lua_dir)
{
    lua_getfield(L, LUA_GLOBALSINDEX, "package");
    lua_pushfstring(L, "%s/?.lua;%s/?/init.lua", lua_dir, lua_dir);
    lua_setfield(L, -2, "path");
    lua_pushstring(L, POLICY_VM_CPATH);
    lua_setfield(L, -2, "cpath");
    lua_getfield(L, -1, "preload");
    lua_pushcfunction(L, lapi_core_open);
    lua_setfield(L, -2, "sluice.core");
    lua_pop(L, 2);
    policy_loader_install(L);
}

static int
policy_hook_index(const char *name)
{
    int i;

    for (i = 0; i < POLICY_N_HOOKS; i++)
        if (strcmp(name, policy_hook_names[i]) == 0)
            return i;
    return -1;
}

/* The table a policy returned is at the stack top: take its hooks. */
static int
policy_take_hooks(struct policy_load *ld, struct policy *p)
{
    lua_State  *L = ld->vm->L;
    const char *name;
    int         h;

    for (lua_pushnil(L); lua_next(L, -2) != 0; lua_pop(L, 1)) {
        name = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
        h = name != NULL ? policy_hook_index(name) : -1;
        if (h < 0 && name != NULL) {
            snprintf(ld->err, ld->errlen, "%s:%d: unknown hook '%s'", p->path,
                     policy_loader_line_of(p->path, name), name);
            return -1;
        }
        if (h < 0 || lua_type(L, -1) != LUA_TFUNCTION) {
            snprintf(ld->err, ld->errlen, "%s: %s%s%s must be a function", p->path,
                     h < 0 ? "a non-string key" : "hook '", h < 0 ? "" : name,
                     h < 0 ? "" : "'");
            return -1;
        }
        lua_pushvalue(L, -1);
        p->hooks[h] = luaL_ref(L, LUA_REGISTRYINDEX);
        ld->vm->hook_count[h]++;
    }
    return 0;
}

/* Run one policy file; its table of hooks goes into p. */
static int
policy_load_one(struct policy_load *ld, struct policy *p)
{
    lua_State *L = ld->vm->L;
    int        h;

    for (h = 0; h < POLICY_N_HOOKS; h++)
        p->hooks[h] = LUA_NOREF;
    ld->vm->env.policy = p->path;
    if (policy_loader_load(L, p->path) != 0 || lua_pcall(L, 0, 1, 0) != 0) {
        snprintf(ld->err, ld->errlen, "%s", lua_tostring(L, -1));
        return -1;
    }
    ld->vm->env.policy = NULL;
    if (lua_type(L, -1) != LUA_TTABLE) {
        snprintf(ld->err, ld->errlen, "%s: must return a table of hooks, not %s", p->path,
                 luaL_typename(L, -1));
        return -1;
    }
    if (policy_take_hooks(ld, p) != 0)
        return -1;
    lua_pop(L, 1);
    return 0;
}

/* require('sluice.verdict').check, kept for checking what hooks return. */
static int
policy_verdict_check(struct policy_load *ld)
{
    lua_State *L = ld->vm->L;

    lua_getfield(L, LUA_GLOBALSINDEX, "require");
    lua_pushstring(L, "sluice.verdict");
    if (lua_pcall(L, 1, 1, 0) != 0) {
        snprintf(ld->err, ld->errlen, "%s", lua_tostring(L, -1));
        return -1;
    }
    lua_getfield(L, -1, "check");
    if (lua_type(L, -1) != LUA_TFUNCTION) {
        snprintf(ld->err, ld->errlen, "sluice.verdict: no check function");
        return -1;
    }
    ld->vm->verdict_check = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pop(L, 1);
    return 0;
}

static int
policy_refuse(lua_State *L)
{
    return luaL_error(L, "%s is not available to policies: it would lift the hook budget",
                      lua_tostring(L, lua_upvalueindex(1)));
}

/* Replace lib.name with a function that raises. */
static void
policy_take_away(lua_State *L, const char *lib, const char *name)
{
    lua_getfield(L, LUA_GLOBALSINDEX, lib);
    if (lua_istable(L, -1)) {
        lua_pushfstring(L, "%s.%s", lib, name);
        lua_pushcclosure(L, policy_refuse, 1);
        lua_setfield(L, -2, name);
    }
    lua_pop(L, 1);
}

static int
policy_load_cb(lua_State *L)
{
    struct policy_load *ld = lua_touserdata(L, 1);
    struct policy_vm   *vm = ld->vm;
    size_t              i;

    lua_settop(L, 0);
    luaL_openlibs(L);
    /* Interpreted: the budget's count hook (lapi_budget_install) is never called from
     * JIT-compiled code, and a policy loop must not be able to hold the worker. */
    luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_OFF);
    /* ...nor turn the JIT back on, or remove the count hook itself. */
    policy_take_away(L, "jit", "on");
    policy_take_away(L, "debug", "sethook");
    policy_vm_paths(L, vm->env.cfg->lua_dir);
    if (policy_verdict_check(ld) != 0)
        return 0;
    for (i = 0; i < vm->n_policies; i++)
        if (policy_load_one(ld, &vm->policies[i]) != 0)
            return 0;
    ld->rc = 0;
    return 0;
}

/* The audit log must be writable by whoever makes a vm (start, reload, sluice check):
 * "PATH: cannot open for appending: REASON" otherwise. */
static int
policy_vm_audit_check(struct policy_vm *vm, char *err, size_t errlen)
{
    const char *path = vm->env.cfg->audit_log;

    return path == NULL ? 0 : audit_check_path(path, err, errlen);
}

void
policy_vm_set_audit(struct policy_vm *vm, struct audit *a)
{
    vm->env.audit = a;
}

void
policy_vm_set_zone_link(struct policy_vm *vm, struct zone_link *zlink)
{
    vm->env.zlink = zlink;
}

struct policy_vm *
policy_vm_new(const struct config *cfg, struct zones *zones, struct ev_loop *loop,
              char *err, size_t errlen)
{
    struct policy_vm  *vm = calloc(1, sizeof(*vm));
    struct policy_load ld = {vm, err, errlen, -1};
    size_t             i;

    if (vm == NULL)
        goto oom;
    /* No loop while the policies load: a reload loads them on its own thread while the
     * worker runs loop, and ev_now(loop) there would read the worker's clock without
     * synchronisation. Top-level code gets the wall clock; hooks, on the worker, its
     * loop's time (the vm reaches the worker through worker_set_gen()'s mutex). */
    vm->env = (struct lapi_env){.cfg = cfg, .zones = zones, .loop = NULL};
    vm->verdict_check = LUA_NOREF;
    vm->L = luaL_newstate();
    if (vm->L == NULL)
        goto oom;
    vm->policies = calloc(cfg->n_policies ? cfg->n_policies : 1, sizeof(*vm->policies));
    if (vm->policies == NULL)
        goto oom;
    vm->n_policies = cfg->n_policies;
    for (i = 0; i < cfg->n_policies; i++)
        vm->policies[i].path = cfg->policies[i];
    lapi_set_env(vm->L, &vm->env);
    if (policy_vm_audit_check(vm, err, errlen) != 0)
        goto fail;
    if (lua_cpcall(vm->L, policy_load_cb, &ld) != 0)
        snprintf(err, errlen, "policies: %s", lua_tostring(vm->L, -1));
    if (ld.rc != 0)
        goto fail;
    lua_settop(vm->L, 0);
    lapi_budget_install(vm->L);
    vm->env.loop = loop;
    return vm;
oom:
    snprintf(err, errlen, "policies: out of memory");
fail:
    policy_vm_free(vm);
    return NULL;
}

void
policy_vm_free(struct policy_vm *vm)
{
    if (vm == NULL)
        return;
    if (vm->L != NULL)
        lua_close(vm->L);
    free(vm->policies);
    free(vm);
}

void
policy_vm_collect(struct policy_vm *vm)
{
    if (vm != NULL)
        lua_gc(vm->L, LUA_GCCOLLECT, 0);
}

lua_State *
policy_vm_state(struct policy_vm *vm)
{
    return vm->L;
}

size_t
policy_vm_hook_count(const struct policy_vm *vm, enum policy_hook hook)
{
    return vm->hook_count[hook];
}

size_t
policy_vm_n_policies(const struct policy_vm *vm)
{
    return vm->n_policies;
}

const char *
policy_vm_path(const struct policy_vm *vm, size_t i)
{
    return vm->policies[i].path;
}

int
policy_vm_push_hook(const struct policy_vm *vm, lua_State *L, size_t i, enum policy_hook hook)
{
    int ref = vm->policies[i].hooks[hook];

    if (ref == LUA_NOREF)
        return 0;
    lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
    return 1;
}

void
policy_vm_push_check(const struct policy_vm *vm, lua_State *L)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->verdict_check);
}

struct lapi_env *
policy_vm_env(struct policy_vm *vm)
{
    return &vm->env;
}
