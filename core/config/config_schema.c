/* core/config/config_schema.c: the `domains` configuration as data (config_schema.h): its
 * keys, types, ranges, defaults and rules, and the writer of lua/sluice/schema.lua. Reading a
 * configuration is the config_*.c files' job; this file only says what they accept. */
#include <stdio.h>
#include <string.h>

#include "config/config_internal.h"
#include "config/config_schema.h"

/* The fields of one key, in struct order, for the common shapes. */
#define KEY(n, t, req, fb)         {n, t, req, false, false, false, 0, 0, NULL, NULL, fb}
#define SECRET(n, t)               {n, t, false, false, false, true, 0, 0, NULL, NULL, NULL}
#define INTEGER(n, lo, hi, fb)     {n, CONFIG_SCHEMA_INTEGER, false, false, false, false, lo, hi, \
                                    NULL, NULL, fb}
#define LIST(n, req, one, empty, fb) {n, CONFIG_SCHEMA_STRINGS, req, one, empty, false, 0, 0,    \
                                    NULL, NULL, fb}
#define TABLE(n, tbl)              {n, CONFIG_SCHEMA_TABLE, false, false, false, false, 0, 0, \
                                    NULL, tbl, NULL}
#define END_KEYS                   {NULL, 0, false, false, false, false, 0, 0, NULL, NULL, NULL}
#define END_RULES                  {0, NULL, NULL, NULL, NULL, NULL}

/* ---- domains[name].limits: policies/ratelimit.lua's per-domain overrides ---------------- */

static const struct config_schema_key schema_limits_keys[] = {
    INTEGER("messages_per_hour", 1, CFG_INT_MAX, NULL),
    INTEGER("user_messages_per_hour", 1, CFG_INT_MAX, NULL),
    INTEGER("user_auth_failures_per_hour", 1, CFG_INT_MAX, NULL),
    INTEGER("domain_auth_failures_per_hour", 1, CFG_INT_MAX, NULL),
    END_KEYS,
};

static const struct config_schema_rule schema_no_rules[] = {END_RULES};

static const struct config_schema_table schema_limits = {"limits", schema_limits_keys,
                                                         schema_no_rules};

/* ---- domains[name].oauth2 (config_oauth2.c) ----------------------------------------- */

static const struct config_schema_key schema_oauth2_keys[] = {
    KEY("issuer", CONFIG_SCHEMA_STRING, true, NULL),
    LIST("audience", true, true, false, NULL),
    KEY("scope", CONFIG_SCHEMA_STRING, false, "'smtp.send'"),
    KEY("jwks_file", CONFIG_SCHEMA_PATH, false, NULL),
    KEY("jwks_url", CONFIG_SCHEMA_STRING, false, NULL),
    INTEGER("jwks_refresh", 60, 7 * 86400, "3600"),
    KEY("introspection_url", CONFIG_SCHEMA_STRING, false, NULL),
    KEY("client_id", CONFIG_SCHEMA_STRING, false, NULL),
    SECRET("client_secret", CONFIG_SCHEMA_STRING),
    SECRET("client_secret_file", CONFIG_SCHEMA_PATH),
    INTEGER("introspection_cache", 0, 86400, "300"),
    KEY("ca_file", CONFIG_SCHEMA_PATH, false, NULL),
    KEY("timeout", CONFIG_SCHEMA_SECONDS, false, "5"),
    LIST("clients", false, false, true, "{}"),
    INTEGER("leeway", 0, 600, "60"),
    INTEGER("max_token_lifetime", 60, 366 * 86400, "86400"),
    END_KEYS,
};

static const char *const schema_secrets[] = {"client_secret", "client_secret_file", NULL};
static const char *const schema_jwks[] = {"jwks_file", "jwks_url", NULL};
static const char *const schema_sources[] = {"jwks_file", "jwks_url", "introspection_url", NULL};
static const char *const schema_introspection[] = {"introspection_url", NULL};
static const char *const schema_client_id[] = {"client_id", NULL};
static const char *const schema_client[] = {"client_id", "client_secret", "client_secret_file",
                                            NULL};

static const struct config_schema_rule schema_oauth2_rules[] = {
    {CONFIG_SCHEMA_EXCLUSIVE, "client_secret_file", schema_secrets, NULL, NULL,
     "give client_secret or client_secret_file, not both"},
    {CONFIG_SCHEMA_EXCLUSIVE, "jwks_url", schema_jwks, NULL, NULL,
     "give jwks_file or jwks_url, not both"},
    {CONFIG_SCHEMA_REQUIRES, "jwks_file", schema_sources, NULL, NULL,
     "required (or jwks_url, or introspection_url for opaque tokens)"},
    {CONFIG_SCHEMA_REQUIRES, "client_id", schema_client_id, schema_introspection, NULL,
     "required with introspection_url (RFC 7662 2.1)"},
    {CONFIG_SCHEMA_REQUIRES, "client_secret", schema_secrets, schema_introspection, NULL,
     "required with introspection_url (or client_secret_file)"},
    {CONFIG_SCHEMA_ONLY_WITH, "client_id", schema_client, schema_introspection, NULL,
     "only with introspection_url"},
    END_RULES,
};

static const struct config_schema_table schema_oauth2 = {"oauth2", schema_oauth2_keys,
                                                         schema_oauth2_rules};

/* ---- domains[name].ldap (config_ldap.c) --------------------------------------------- */

static const struct config_schema_key schema_ldap_keys[] = {
    KEY("starttls", CONFIG_SCHEMA_BOOLEAN, false, "true"),
    LIST("uris", true, true, false, NULL),
    KEY("ca_file", CONFIG_SCHEMA_PATH, false, NULL),
    KEY("base_dn", CONFIG_SCHEMA_STRING, false, NULL),
    KEY("bind_dn", CONFIG_SCHEMA_STRING, false, NULL),
    KEY("filter", CONFIG_SCHEMA_STRING, false, NULL),
    SECRET("bind_password", CONFIG_SCHEMA_STRING),
    SECRET("bind_password_file", CONFIG_SCHEMA_PATH),
    KEY("timeout", CONFIG_SCHEMA_SECONDS, false, "5"),
    INTEGER("max_connections", 1, 64, "4"),
    END_KEYS,
};

static const char *const schema_passwords[] = {"bind_password", "bind_password_file", NULL};
static const char *const schema_bind_or_filter[] = {"bind_dn", "filter", NULL};
static const char *const schema_filter[] = {"filter", NULL};
static const char *const schema_base_dn[] = {"base_dn", NULL};
static const char *const schema_bind_dn[] = {"bind_dn", NULL};
static const char *const schema_filter_bind_dn[] = {"filter", "bind_dn", NULL};

static const struct config_schema_rule schema_ldap_rules[] = {
    {CONFIG_SCHEMA_EXCLUSIVE, "bind_password_file", schema_passwords, NULL, NULL,
     "give bind_password or bind_password_file, not both"},
    {CONFIG_SCHEMA_REQUIRES, "bind_dn", schema_bind_or_filter, NULL, NULL, "required"},
    {CONFIG_SCHEMA_ONLY_WITH, NULL, schema_passwords, schema_filter, NULL,
     "a service password needs search mode (a filter)"},
    {CONFIG_SCHEMA_REQUIRES, "base_dn", schema_base_dn, schema_filter, NULL, "required"},
    {CONFIG_SCHEMA_ONLY_WITH, NULL, schema_passwords, schema_bind_dn, NULL,
     "needs bind_dn (the service account)"},
    {CONFIG_SCHEMA_REQUIRES, "bind_dn", schema_passwords, schema_filter_bind_dn, NULL,
     "needs bind_password or bind_password_file"},
    END_RULES,
};

static const struct config_schema_table schema_ldap = {"ldap", schema_ldap_keys,
                                                       schema_ldap_rules};

/* ---- domains[name].upstream_auth and upstreams' auth (config_upstream.c) ----------- */

static const struct config_schema_key schema_upstream_oauth2_keys[] = {
    KEY("token_url", CONFIG_SCHEMA_STRING, true, NULL),
    KEY("client_id", CONFIG_SCHEMA_STRING, true, NULL),
    SECRET("client_secret", CONFIG_SCHEMA_STRING),
    SECRET("client_secret_file", CONFIG_SCHEMA_PATH),
    SECRET("refresh_token", CONFIG_SCHEMA_STRING),
    SECRET("refresh_token_file", CONFIG_SCHEMA_PATH),
    KEY("scope", CONFIG_SCHEMA_STRING, false, NULL),
    KEY("ca_file", CONFIG_SCHEMA_PATH, false, NULL),
    END_KEYS,
};

static const char *const schema_refresh_tokens[] = {"refresh_token", "refresh_token_file", NULL};
static const char *const schema_grants[] = {"client_secret", "client_secret_file",
                                            "refresh_token", "refresh_token_file", NULL};

static const struct config_schema_rule schema_upstream_oauth2_rules[] = {
    {CONFIG_SCHEMA_EXCLUSIVE, "client_secret_file", schema_secrets, NULL, NULL,
     "give client_secret or client_secret_file, not both"},
    {CONFIG_SCHEMA_EXCLUSIVE, "refresh_token_file", schema_refresh_tokens, NULL, NULL,
     "give refresh_token or refresh_token_file, not both"},
    {CONFIG_SCHEMA_REQUIRES, "client_secret", schema_grants, NULL, NULL, "required"},
    END_RULES,
};

static const struct config_schema_table schema_upstream_oauth2 = {
    "oauth2", schema_upstream_oauth2_keys, schema_upstream_oauth2_rules};

static const struct config_schema_key schema_upstream_auth_keys[] = {
    KEY("user", CONFIG_SCHEMA_STRING, true, NULL),
    KEY("mechanism", CONFIG_SCHEMA_STRING, false, "'password'"),
    SECRET("password", CONFIG_SCHEMA_STRING),
    SECRET("password_file", CONFIG_SCHEMA_PATH),
    TABLE("oauth2", &schema_upstream_oauth2),
    END_KEYS,
};

static const char *const schema_upstream_passwords[] = {"password", "password_file", NULL};
static const char *const schema_upstream_logins[] = {"password", "password_file", "oauth2",
                                                     NULL};
static const char *const schema_upstream_oauth2_table[] = {"oauth2", NULL};
static const char *const schema_upstream_mechanism[] = {"mechanism", NULL};

/* What the rules cannot say, config_upstream.c says: mechanism is 'password' or
 * 'xoauth2', and 'xoauth2' takes no password. */
static const struct config_schema_rule schema_upstream_auth_rules[] = {
    {CONFIG_SCHEMA_EXCLUSIVE, "password_file", schema_upstream_passwords, NULL, NULL,
     "give password or password_file, not both"},
    {CONFIG_SCHEMA_EXCLUSIVE, "oauth2", schema_upstream_logins, NULL, NULL,
     "give a password or oauth2, not both"},
    {CONFIG_SCHEMA_REQUIRES, "password", schema_upstream_logins, NULL, NULL, "required"},
    {CONFIG_SCHEMA_ONLY_WITH, "oauth2", schema_upstream_oauth2_table, schema_upstream_mechanism,
     NULL, "needs mechanism = 'xoauth2'"},
    END_RULES,
};

static const struct config_schema_table schema_upstream_auth = {
    "upstream_auth", schema_upstream_auth_keys, schema_upstream_auth_rules};

/* ---- domains[name].dkim (config_dkim.c): a table, or a list of them ------------------ */

static const struct config_schema_key schema_dkim_keys[] = {
    KEY("selector", CONFIG_SCHEMA_STRING, true, NULL),
    KEY("key_file", CONFIG_SCHEMA_PATH, true, NULL),
    LIST("headers", false, false, false, NULL),
    END_KEYS,
};

static const struct config_schema_table schema_dkim = {"dkim", schema_dkim_keys,
                                                       schema_no_rules};

/* ---- domains[name] (config_policy.c) ------------------------------------------------ */

static const char *const schema_backends[] = {"file", "ldap", "oauth2", NULL};
static const char *const schema_oauth2_table[] = {"oauth2", NULL};
static const char *const schema_ldap_table[] = {"ldap", NULL};

static const struct config_schema_key schema_domain_keys[] = {
    KEY("enabled", CONFIG_SCHEMA_BOOLEAN, false, "true"),
    {"auth", CONFIG_SCHEMA_STRINGS, false, false, false, false, 0, 0, schema_backends, NULL,
     "{ 'file' }"},
    KEY("senders", CONFIG_SCHEMA_SENDERS, false, "{}"),
    KEY("allow_subdomains", CONFIG_SCHEMA_BOOLEAN, false, "false"),
    KEY("allow_null_sender", CONFIG_SCHEMA_BOOLEAN, false, "false"),
    KEY("check_header_from", CONFIG_SCHEMA_BOOLEAN, false, "true"),
    {"limits", CONFIG_SCHEMA_TABLE, false, false, false, false, 0, 0, NULL, &schema_limits,
     "{}"},
    TABLE("oauth2", &schema_oauth2),
    TABLE("ldap", &schema_ldap),
    KEY("upstream", CONFIG_SCHEMA_STRING, false, NULL),
    TABLE("upstream_auth", &schema_upstream_auth),

    {"dkim", CONFIG_SCHEMA_TABLES, false, false, false, true, 0, 0, NULL, &schema_dkim, NULL},
    END_KEYS,
};

static const struct config_schema_rule schema_domain_rules[] = {
    {CONFIG_SCHEMA_LISTED, "auth", schema_oauth2_table, NULL, "oauth2",
     "lists 'oauth2' but the domain has no oauth2 table"},
    {CONFIG_SCHEMA_LISTED, "auth", schema_ldap_table, NULL, "ldap",
     "lists 'ldap' but the domain has no ldap table"},
    END_RULES,
};

const struct config_schema_table config_schema_domain = {"domain", schema_domain_keys,
                                                         schema_domain_rules};

const struct config_schema_key *
config_schema_find(const struct config_schema_table *t, const char *name)
{
    const struct config_schema_key *k;

    for (k = t->keys; k->name != NULL; k++)
        if (strcmp(k->name, name) == 0)
            return k;
    return NULL;
}

/* ---- lua/sluice/schema.lua ------------------------------------------------------------ */

static const char *const schema_type_names[] = {
    [CONFIG_SCHEMA_BOOLEAN] = "boolean", [CONFIG_SCHEMA_STRING] = "string",
    [CONFIG_SCHEMA_PATH] = "path",       [CONFIG_SCHEMA_STRINGS] = "strings",
    [CONFIG_SCHEMA_INTEGER] = "integer", [CONFIG_SCHEMA_SECONDS] = "seconds",
    [CONFIG_SCHEMA_TABLE] = "table",     [CONFIG_SCHEMA_SENDERS] = "senders",
    [CONFIG_SCHEMA_TABLES] = "tables",
};

static const char *const schema_rule_names[] = {
    [CONFIG_SCHEMA_EXCLUSIVE] = "exclusive", [CONFIG_SCHEMA_REQUIRES] = "requires",
    [CONFIG_SCHEMA_ONLY_WITH] = "only_with", [CONFIG_SCHEMA_LISTED] = "listed",
};

static void
schema_dump_names(FILE *out, const char *field, const char *const *names)
{
    if (names == NULL)
        return;
    fprintf(out, ", %s = {", field);
    for (; *names != NULL; names++)
        fprintf(out, " '%s',", *names);
    fprintf(out, " }");
}

static void schema_dump_table(FILE *out, const struct config_schema_table *t, int depth);

static void
schema_dump_key(FILE *out, const struct config_schema_key *k, int depth)
{
    fprintf(out, "%*s{ name = '%s', type = '%s'", depth * 2, "", k->name,
            schema_type_names[k->type]);
    if (k->required)
        fprintf(out, ", required = true");
    if (k->single)
        fprintf(out, ", single = true");
    if (k->may_be_empty)
        fprintf(out, ", may_be_empty = true");
    if (k->secret)
        fprintf(out, ", secret = true");
    if (k->type == CONFIG_SCHEMA_INTEGER)
        fprintf(out, ", min = %.0f, max = %.0f", k->min, k->max);
    schema_dump_names(out, "values", k->values);
    if (k->fallback != NULL)
        fprintf(out, ", default = %s", k->fallback);
    if (k->table != NULL) {
        fprintf(out, ",\n%*stable = ", depth * 2 + 2, "");
        schema_dump_table(out, k->table, depth + 1);
    }
    fprintf(out, " },\n");
}

static void
schema_dump_table(FILE *out, const struct config_schema_table *t, int depth)
{
    const struct config_schema_key  *k;
    const struct config_schema_rule *r;

    fprintf(out, "{ name = '%s', keys = {\n", t->name);
    for (k = t->keys; k->name != NULL; k++)
        schema_dump_key(out, k, depth + 1);
    fprintf(out, "%*s}, rules = {\n", depth * 2, "");
    for (r = t->rules; r->message != NULL; r++) {
        fprintf(out, "%*s{ kind = '%s'", depth * 2 + 2, "", schema_rule_names[r->kind]);
        if (r->key != NULL)
            fprintf(out, ", key = '%s'", r->key);
        schema_dump_names(out, "keys", r->keys);
        schema_dump_names(out, "when", r->when);
        if (r->value != NULL)
            fprintf(out, ", value = '%s'", r->value);
        fprintf(out, ",\n%*smessage = \"%s\" },\n", depth * 2 + 4, "", r->message);
    }
    fprintf(out, "%*s} }", depth * 2, "");
}

int
config_schema_dump(FILE *out)
{
    fprintf(out, "-- lua/sluice/schema.lua: the shape of one entry of the `domains` configuration, as\n"
                 "-- the daemon checks it (core/config/config_schema.c). Generated: do not edit; run\n"
                 "-- `sluice check --dump-schema > lua/sluice/schema.lua` after changing the C table.\n"
                 "-- lua/sluice/testing.lua validates a spec's domains with it.\n"
                 "return { domain = ");
    schema_dump_table(out, &config_schema_domain, 0);
    fprintf(out, " }\n");
    return ferror(out) ? -1 : 0;
}
