/* core/config/config_schema.h: the shape of the `domains` configuration as data, written once:
 * which keys each table has, their types, ranges, defaults and the rules between keys.
 * config_policy.c, config_oauth2.c and config_ldap.c take their allowed keys from it;
 * `sluice check --dump-schema` prints it as lua/sluice/schema.lua, which the busted double
 * (lua/sluice/testing.lua) validates a spec's domains with, giving the daemon's messages.
 * tests/unit/test_config_schema.c proves every entry against config_load(). What the schema
 * cannot say (URL and DN syntax, files' contents, ldap.timeout < hook_timeout) stays in C. */
#ifndef SLUICE_CONFIG_SCHEMA_H
#define SLUICE_CONFIG_SCHEMA_H

#include <stdbool.h>
#include <stdio.h>

enum config_schema_type {
    CONFIG_SCHEMA_BOOLEAN, /* true or false */
    CONFIG_SCHEMA_STRING,  /* non-empty, no control characters */
    CONFIG_SCHEMA_PATH,    /* a string naming a readable file (relative: to the file's dir) */
    CONFIG_SCHEMA_STRINGS, /* a list of strings (non-empty unless may_be_empty) */
    CONFIG_SCHEMA_INTEGER, /* an integer from min to max */
    CONFIG_SCHEMA_SECONDS, /* a number > 0, at most 86400 */
    CONFIG_SCHEMA_TABLE,   /* the named keys of table */
    CONFIG_SCHEMA_SENDERS, /* { ['user@domain'] = { 'address', ... } } */
    CONFIG_SCHEMA_TABLES,  /* the named keys of table, or a non-empty list of such tables */
};

struct config_schema_table;

struct config_schema_key {
    const char                       *name;
    enum config_schema_type           type;
    bool                              required;
    bool                              single;       /* STRINGS: one string is a list of one */
    bool                              may_be_empty; /* STRINGS: {} allowed */
    bool                              secret;       /* kept out of sluice.domains */
    double                            min, max;     /* INTEGER */
    const char *const                *values;       /* STRINGS: the only ones allowed, or NULL */
    const struct config_schema_table *table;        /* TABLE */
    const char                       *fallback;     /* the default as Lua source, or NULL */
};

enum config_schema_rule_kind {
    CONFIG_SCHEMA_EXCLUSIVE, /* at most one of keys[] */
    CONFIG_SCHEMA_REQUIRES,  /* when all of when[] are present: one of keys[] too */
    CONFIG_SCHEMA_ONLY_WITH, /* one of keys[] present: all of when[] must be */
    CONFIG_SCHEMA_LISTED,    /* key (a list) holds value: the table keys[0] must be present */
};

/* Rules are checked in order, after every key's own type; the first broken one is the error,
 * at key (NULL: the first of keys[] that is present) with message. */
struct config_schema_rule {
    enum config_schema_rule_kind kind;
    const char                  *key;
    const char *const           *keys;  /* NULL-terminated */
    const char *const           *when;  /* NULL-terminated, or NULL: always */
    const char                  *value; /* LISTED */
    const char                  *message;
};

struct config_schema_table {
    const char                      *name;  /* "domain", "limits", "oauth2", "ldap" */
    const struct config_schema_key  *keys;  /* ends with a NULL name */
    const struct config_schema_rule *rules; /* ends with a NULL message */
};

/* One entry of `domains` (docs/configuration.md "Policy engine"). Static, never freed. */
extern const struct config_schema_table config_schema_domain;

/* The key of t named name, or NULL. */
const struct config_schema_key *config_schema_find(const struct config_schema_table *t,
                                                   const char *name);

/* Write the schema as the Lua module lua/sluice/schema.lua (byte for byte). 0 or -1. */
int config_schema_dump(FILE *out);

#endif
