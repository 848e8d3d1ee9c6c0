/* tests/unit/test_policy_vm.c: core/policy/policy_vm.c and the C half of the Lua API
 * (core/lapi_*.c). Each test writes a config and policy files into a fresh temporary
 * directory, makes a vm from them, and for the API runs Lua chunks in the vm's state. */
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "util/audit.h"
#include "config/config.h"
#include "util/log.h"
#include "policy/policy_vm.h"
#include "store/zone.h"
#include "testio.h"
#include "tmpdir.h"

static const char *dir; /* removed at exit (tmpdir.h) */

#define CONFIG_HEAD                                                                    \
    "return {\n"                                                                       \
    "  insecure = true,\n"                                                             \
    "  listeners = { { name = 't', address = '127.0.0.1', port = 2587, tls = 'none' } },\n" \
    "  upstreams = { default = { { host = '127.0.0.1', port = 2525, tls = 'none' } } },\n" \
    "  audit_log = 'audit.log',\n"                                                     \
    "  domains = { ['Example.ORG'] = { senders = { ['alice@example.org'] = { 'a@b.c' } },\n" \
    "                                  limits = { messages_per_hour = 7 } },\n"        \
    "              ['example.net'] = { enabled = false } },\n"

/* A config listing the given policies (a Lua list body), loaded. */
static struct config *
load_config(const char *policies)
{
    char           text[2048], p[256], err[1024] = "";
    struct config *cfg;

    snprintf(text, sizeof(text), CONFIG_HEAD "  policies = { %s },\n}\n", policies);
    test_write_file(dir, "sluice.lua", text);
    snprintf(p, sizeof(p), "%s/sluice.lua", dir);
    cfg = config_load(p, err, sizeof(err));
    if (cfg == NULL)
        fprintf(stderr, "config: %s\n", err);
    return cfg;
}

/* The error making a vm gives, with the temporary directory cut off ("x.lua:3: ..."). */
static const char *
vm_error(const char *policy_text)
{
    static char       out[1024];
    char              err[1024] = "";
    struct config    *cfg;
    struct policy_vm *vm;
    const char       *at;

    test_write_file(dir, "x.lua", policy_text);
    cfg = load_config("'x.lua'");
    if (cfg == NULL)
        return "(config)";
    vm = policy_vm_new(cfg, NULL, NULL, err, sizeof(err));
    policy_vm_free(vm);
    config_free(cfg);
    if (vm != NULL)
        return "(loaded)";
    at = strstr(err, "x.lua");
    snprintf(out, sizeof(out), "%s", at != NULL ? at : err);
    return out;
}

static void
the_shipped_policies_load_and_their_hooks_are_counted(void)
{
    char              list[1024], err[1024] = "";
    struct config    *cfg;
    struct policy_vm *vm;

    snprintf(list, sizeof(list),
             "'%s/policies/ratelimit.lua', '%s/policies/auth.lua', "
             "'%s/policies/sender_domain.lua', '%s/policies/audit.lua'",
             SLUICE_SOURCE_DIR, SLUICE_SOURCE_DIR, SLUICE_SOURCE_DIR, SLUICE_SOURCE_DIR);
    cfg = load_config(list);
    CHECK(cfg != NULL);
    if (cfg == NULL)
        return;
    vm = policy_vm_new(cfg, NULL, NULL, err, sizeof(err));
    CHECK(vm != NULL);
    if (vm == NULL)
        fprintf(stderr, "  %s\n", err);
    else
        CHECK(policy_vm_hook_count(vm, POLICY_ON_AUTH) >= 2); /* ratelimit, auth */
    policy_vm_free(vm);
    config_free(cfg);
}

static void
load_errors_name_the_file_and_line(void)
{
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"local x = 1\nreturn { on_rcpt = function() end\n", "x.lua:3: '}' expected (to close "
                                                            "'{' at line 2) near '<eof>'"},
        {"local t = nil\nreturn t.x\n", "x.lua:2: attempt to index local 't' (a nil value)"},
        {"return 42\n", "x.lua: must return a table of hooks, not number"},
        {"return {\n  on_rcpt = function() end,\n  on_rpct = function() end,\n}\n",
         "x.lua:3: unknown hook 'on_rpct'"},
        {"return { on_rcpt = 'yes' }\n", "x.lua: hook 'on_rcpt' must be a function"},
        {"return { function() end }\n", "x.lua: a non-string key must be a function"},
        /* a zone the configuration does not have fails the load (sluice check, reload) */
        {"local z = require('sluice').zone('nosuch')\nreturn {}\n",
         "x.lua:1: sluice.zone: no zone named 'nosuch'"},
    };
    const char *got;
    size_t      i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        got = vm_error(cases[i].text);
        CHECK(strstr(got, cases[i].want) == got);
        if (strstr(got, cases[i].want) != got)
            fprintf(stderr, "  case %zu:\n    got  %s\n    want %s\n", i, got, cases[i].want);
    }
    CHECK(strcmp(vm_error("return { on_auth = function() end }\n"), "(loaded)") == 0);
    /* taking a zone at load works without zones (sluice check); using one does not */
    CHECK(strcmp(vm_error("local z = require('sluice').zone('blocks')\nreturn {}\n"),
                 "(loaded)") == 0);
}

/* Run chunk in vm's state: "ok" when it returns true, else the error or "false". */
static const char *
run_lua(struct policy_vm *vm, const char *chunk)
{
    static char out[512];
    lua_State  *L = policy_vm_state(vm);

    if (luaL_loadstring(L, chunk) != 0 || lua_pcall(L, 0, 1, 0) != 0)
        snprintf(out, sizeof(out), "%s", lua_tostring(L, -1));
    else
        snprintf(out, sizeof(out), "%s", lua_toboolean(L, -1) ? "ok" : "false");
    lua_settop(L, 0);
    return out;
}

#define CHECK_LUA(vm, chunk)                                                           \
    do {                                                                               \
        const char *got_ = run_lua(vm, chunk);                                         \
        CHECK(strcmp(got_, "ok") == 0);                                                \
        if (strcmp(got_, "ok") != 0)                                                   \
            fprintf(stderr, "  %s\n", got_);                                           \
    } while (0)

static void
the_core_module_works_in_the_state(void)
{
    char              err[1024] = "", p[256], line[512] = "";
    struct config    *cfg = load_config("");
    struct zones     *zones = cfg ? zones_new(cfg, err, sizeof(err)) : NULL;
    struct policy_vm *vm = zones ? policy_vm_new(cfg, zones, NULL, err, sizeof(err)) : NULL;
    struct audit     *audit = NULL;
    FILE             *f;

    CHECK(vm != NULL);
    if (vm == NULL) {
        fprintf(stderr, "  %s\n", err);
        goto out;
    }
    CHECK_LUA(vm, "local s = require('sluice'); return type(s.now()) == 'number' and "
                  "s.now() > 1.7e9");
    CHECK_LUA(vm, "local s = require('sluice'); local d = s.domains\n"
                  "return d['example.org'].limits.messages_per_hour == 7 and\n"
                  "  d['example.org'].senders['alice@example.org'][1] == 'a@b.c' and\n"
                  "  d['example.org'].enabled and d['example.net'].enabled == false and\n"
                  "  d['example.net'].auth[1] == 'file' and d['Example.ORG'] == nil");
    CHECK_LUA(vm, "local d = require('sluice').shdict\n"
                  "assert(d.set('k', 'v', 10)); assert(d.set('b', false))\n"
                  "assert(d.incr('n', 2, 10) == 2 and d.incr('n', 3) == 5)\n"
                  "local v, e = d.incr('k', 1)\n"
                  "return d.get('k') == 'v' and d.get('b') == false and d.get('n') == 5 and\n"
                  "  v == nil and e == 'not a number' and d.get('none') == nil and\n"
                  "  d.set('k', nil) and d.get('k') == nil");
    CHECK_LUA(vm, "local ok = pcall(require('sluice').shdict.get, '') return not ok");
    CHECK_LUA(vm, "local s = require('sluice'); local z = s.zone('limits')\n"
                  "assert(z:set('k', 1, 10) and z:add('a', 'x') and not z:add('a', 'y'))\n"
                  "local _, e = z:add('a', 'y')\n"
                  "return e == 'exists' and z:get('a') == 'x' and z:incr('k', 2) == 3 and\n"
                  "  z:ttl('k') > 9 and z:ttl('k') <= 10 and z:ttl('a') == 0 and\n"
                  "  z:ttl('none') == nil and z:delete('a') and not z:delete('a') and\n"
                  "  s.shdict.get('k') == nil and s.zone('default'):get('k') == nil and\n"
                  "  tostring(z) == \"sluice.zone('limits')\"");
    CHECK_LUA(vm, "local s = require('sluice'); s.shdict.set('d', 1)\n"
                  "return s.zone('default'):get('d') == 1");
    CHECK_LUA(vm, "local ok, e = pcall(require('sluice').zone, 'nosuch')\n"
                  "return not ok and e:find(\"no zone named 'nosuch'\") ~= nil");
    CHECK_LUA(vm, "local z = require('sluice').zone('blocks')\n"
                  "local ok = pcall(z.get, {}, 'k') return not ok"); /* not a zone */
    CHECK_LUA(vm, "local s = require('sluice')\n"
                  "return s.key_part(('x'):rep(65)) == "
                  "'~9537c5fdf120482f7d58d25e9ed583f52c02b4e304ea814db1633ad565aed7e9'");
    CHECK_LUA(vm, "local s = require('sluice')\n"
                  "s.log('debug', 'test.event', { a = 1, b = 'x', c = true })\n"
                  "local ok1 = pcall(s.log, 'loud', 'test.event')\n"
                  "local ok2 = pcall(s.log, 'info', 'Bad Event')\n"
                  "local ok3 = pcall(s.log, 'info', 'test.event', { sid = 'x' })\n"
                  "return not ok1 and not ok2 and not ok3");
    snprintf(p, sizeof(p), "%s/audit.log", dir);
    audit = audit_open(p, err, sizeof(err));
    CHECK(audit != NULL);
    policy_vm_set_audit(vm, audit);
    CHECK_LUA(vm, "local s = require('sluice')\n"
                  "assert(s.audit('unit_test', { n = 1, list = { 'a', 'b' } }))\n"
                  "local ok1 = pcall(s.audit, 'Bad-Name', {})\n"
                  "local ok2 = pcall(s.audit, 'x', { timestamp = 1 })\n"
                  "local ok3 = pcall(s.audit, 'x', { f = print })\n"
                  "return not ok1 and not ok2 and not ok3");
    CHECK_LUA(vm, "local ok, e = pcall(require('sluice').sleep, 1) return not ok");
    /* the budget cannot be lifted: no JIT (count hooks do not fire in traces), no sethook */
    CHECK_LUA(vm, "local ok, e = pcall(jit.on) return not ok and e:find('jit.on is not', 1, true)");
    CHECK_LUA(vm, "local ok, e = pcall(debug.sethook) return not ok and "
                  "e:find('debug.sethook is not', 1, true) ~= nil");
    CHECK_LUA(vm, "return jit.status() == false and type(debug.traceback) == 'function'");
    audit_free(audit); /* writes out what was queued */
    audit = NULL;
    f = fopen(p, "r");
    CHECK(f != NULL && fgets(line, sizeof(line), f) != NULL);
    if (f != NULL)
        fclose(f);
    CHECK(strncmp(line, "{\"timestamp\":\"20", 16) == 0 && strlen(line) > 41);
    CHECK(line[40] == 'Z' && line[33] == '.'); /* microseconds */
    CHECK(strstr(line, "\"event_type\":\"unit_test\",") != NULL);
    CHECK(strstr(line, "\"list\":[\"a\",\"b\"]") != NULL);
out:
    audit_free(audit);
    policy_vm_free(vm);
    zones_free(zones);
    config_free(cfg);
}

int
main(void)
{
    log_set_level(LOG_ERR + 1); /* quiet: sluice.log lines are not under test here */
    dir = test_tmpdir("vm");
    RUN(the_shipped_policies_load_and_their_hooks_are_counted);
    RUN(load_errors_name_the_file_and_line);
    RUN(the_core_module_works_in_the_state);
    return check_summary();
}
