/* tests/unit/test_config_schema.c: core/config/config_schema.c is the daemon's own schema:
 * the Lua module it dumps is the checked-in lua/sluice/schema.lua, the examples that use every
 * key of it load, and the refusals of tests/lua/fixtures/domains_schema.lua (which the busted
 * double refuses with the same messages) are config_load()'s. */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "config/config.h"
#include "config/config_schema.h"
#include "testio.h"
#include "tmpdir.h"

#define FIXTURE SLUICE_SOURCE_DIR "/tests/lua/fixtures/domains_schema.lua"

static const char *dir;   /* removed at exit (tmpdir.h) */
static char cfgpath[128]; /* dir/sluice.lua */

/* The error of a file whose domains are text, without "path:line: "; "" when it loads. */
static const char *
domains_error(const char *text)
{
    static char    out[1024];
    char           file[8192], err[1024] = "";
    const char    *p;
    struct config *cfg;

    snprintf(file, sizeof(file),
             "return {\n  insecure = true,\n"
             "  listeners = { { name = 'smtps', address = '127.0.0.1', port = 8465, "
             "tls = 'implicit' } },\n"
             "  tls = { certificates = { { cert = 'a.crt', key = 'a.key' } } },\n"
             "  upstreams = { default = { { host = '127.0.0.1', port = 2525, tls = 'none' } } },\n"
             "  domains = %s,\n}\n",
             text);
    test_write_file(dir, "sluice.lua", file);
    cfg = config_load(cfgpath, err, sizeof(err));
    if (cfg != NULL) {
        config_free(cfg);
        return "";
    }
    p = strncmp(err, cfgpath, strlen(cfgpath)) == 0 ? strchr(err + strlen(cfgpath) + 1, ':')
                                                    : NULL;
    snprintf(out, sizeof(out), "%s", p != NULL ? p + 2 : err);
    return out;
}

static void
the_dumped_schema_is_the_checked_in_lua_module(void)
{
    const char *path = test_path(dir, "schema.lua");
    FILE       *dumped = fopen(path, "w");
    char       *a, *b;

    CHECK(dumped != NULL);
    if (dumped == NULL)
        return;
    CHECK(config_schema_dump(dumped) == 0);
    fclose(dumped);
    a = test_read_file(path);
    b = test_read_file(SLUICE_SOURCE_DIR "/lua/sluice/schema.lua");
    CHECK(a[0] != '\0' && strcmp(a, b) == 0);
    if (strcmp(a, b) != 0)
        fprintf(stderr, "lua/sluice/schema.lua is stale: sluice check --dump-schema > "
                        "lua/sluice/schema.lua\n");
    free(a);
    free(b);
}

/* The fixture's list `name` at the stack top. */
static lua_State *
fixture(const char *name)
{
    lua_State *L = luaL_newstate();

    luaL_openlibs(L);
    if (luaL_dofile(L, FIXTURE) != 0) {
        fprintf(stderr, "%s\n", lua_tostring(L, -1));
        exit(1);
    }
    lua_getfield(L, -1, name);
    return L;
}

/* Mark in seen[] (schema keys numbered depth first from *next) the keys the table at the
 * stack top uses. */
static void
mark_used(lua_State *L, const struct config_schema_table *t, bool *seen, int *next)
{
    const struct config_schema_key *k;

    for (k = t->keys; k->name != NULL; k++) {
        int i = (*next)++;

        lua_getfield(L, -1, k->name);
        if (!lua_isnil(L, -1))
            seen[i] = true;
        if (k->table != NULL) {
            if (lua_istable(L, -1)) {
                mark_used(L, k->table, seen, next);
            } else {
                lua_pushnil(L); /* walk it anyway, to keep the numbering */
                lua_newtable(L);
                mark_used(L, k->table, seen, next);
                lua_pop(L, 2);
            }
        }
        lua_pop(L, 1);
    }
}

static void
name_unused(const struct config_schema_table *t, const bool *seen, int *next)
{
    const struct config_schema_key *k;

    for (k = t->keys; k->name != NULL; k++) {
        if (!seen[(*next)++])
            fprintf(stderr, "no accepted example uses %s.%s\n", t->name, k->name);
        if (k->table != NULL)
            name_unused(k->table, seen, next);
    }
}

static void
examples_using_every_schema_key_are_accepted(void)
{
    lua_State  *L = fixture("accepted");
    bool        seen[128] = {false};
    int         i, n, next = 0;
    const char *err;

    for (i = 1; i <= (int)lua_objlen(L, -1); i++) {
        lua_rawgeti(L, -1, i);
        err = domains_error(lua_tostring(L, -1));
        CHECK(strcmp(err, "") == 0);
        if (err[0] != '\0')
            fprintf(stderr, "accepted[%d]: %s\n", i, err);
        lua_pushstring(L, "return ");
        lua_insert(L, -2);
        lua_concat(L, 2);
        CHECK(luaL_dostring(L, lua_tostring(L, -1)) == 0);
        for (lua_pushnil(L); lua_next(L, -2) != 0; lua_pop(L, 1)) {
            next = 0;
            mark_used(L, &config_schema_domain, seen, &next);
        }
        lua_pop(L, 2);
    }
    n = next;
    next = 0;
    for (i = 0; i < n; i++)
        CHECK(seen[i]);
    name_unused(&config_schema_domain, seen, &next);
    lua_close(L);
}

static void
the_doubles_refusals_are_the_daemons_word_for_word(void)
{
    lua_State  *L = fixture("refused");
    const char *err, *want;
    int         i;

    for (i = 1; i <= (int)lua_objlen(L, -1); i++) {
        lua_rawgeti(L, -1, i);
        lua_rawgeti(L, -1, 1);
        lua_rawgeti(L, -2, 2);
        err = domains_error(lua_tostring(L, -2));
        want = lua_tostring(L, -1);
        CHECK(strcmp(err, want) == 0);
        if (strcmp(err, want) != 0)
            fprintf(stderr, "refused[%d]: got    %s\n            wanted %s\n", i, err, want);
        lua_pop(L, 3);
    }
    lua_close(L);
}

static void
an_unknown_key_in_every_schema_table_is_refused(void)
{
    CHECK(strcmp(domains_error("{ ['a.example'] = { nope = 1 } }"),
                 "domains['a.example'].nope: unknown key") == 0);
    CHECK(strcmp(domains_error("{ ['a.example'] = { limits = { nope = 1 } } }"),
                 "domains['a.example'].limits.nope: unknown key") == 0);
    CHECK(strcmp(domains_error("{ ['a.example'] = { oauth2 = { nope = 1 } } }"),
                 "domains['a.example'].oauth2.nope: unknown key") == 0);
    CHECK(strcmp(domains_error("{ ['a.example'] = { ldap = { nope = 1 } } }"),
                 "domains['a.example'].ldap.nope: unknown key") == 0);
}

int
main(void)
{
    dir = test_tmpdir("config_schema");
    snprintf(cfgpath, sizeof(cfgpath), "%s/sluice.lua", dir);
    test_write_file(dir, "a.crt", "");
    test_write_file(dir, "a.key", "");
    /* the dkim example's key_file is relative: busted resolves it in the source tree,
     * config_load() next to the configuration */
    {
        char  sub[200], *key = test_read_file(SLUICE_SOURCE_DIR "/tests/lua/fixtures/dkim_ed25519.key");

        snprintf(sub, sizeof(sub), "%s/tests", dir);
        mkdir(sub, 0700);
        snprintf(sub, sizeof(sub), "%s/tests/lua", dir);
        mkdir(sub, 0700);
        snprintf(sub, sizeof(sub), "%s/tests/lua/fixtures", dir);
        mkdir(sub, 0700);
        test_write_file(sub, "dkim_ed25519.key", key);
        free(key);
    }
    RUN(the_dumped_schema_is_the_checked_in_lua_module);
    RUN(examples_using_every_schema_key_are_accepted);
    RUN(the_doubles_refusals_are_the_daemons_word_for_word);
    RUN(an_unknown_key_in_every_schema_table_is_refused);
    return check_summary();
}
