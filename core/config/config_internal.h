/* core/config/config_internal.h: what the config_*.c files share, and no one else: the loading
 * context (key path, error text, file text for line numbers), the sandboxed run, the
 * typed getters that check one value each, and the sections in their own files.
 * Not part of the config API: everything else includes config.h. */
#ifndef SLUICE_CONFIG_INTERNAL_H
#define SLUICE_CONFIG_INTERNAL_H

#include <lua.h>
#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"

/* Lua's name for the file ("=sluice-config"), rewritten to the path in messages; also
 * the registry key of the table the file returned. */
#define CFG_CHUNK "sluice-config"

/* Largest integer a Lua 5.1 number holds exactly. */
#define CFG_INT_MAX 9007199254740992.0 /* 2^53 */

/* One config_load() call. Lives on the loader's stack; all pointers borrow. */
struct cfg_ctx {
    lua_State  *L;
    const char *file;      /* the path as given: first part of every error */
    const char *src;       /* the file's text, to find a key's line */
    size_t      src_len;
    const char *dir;       /* absolute directory of the file: base of relative paths */
    char        path[512]; /* key path of the value being read: "listeners[2].port" */
    size_t      path_len;
    char       *err;       /* "file:line: key.path: reason" */
    size_t      errlen;
    struct config *cfg;    /* borrows: where cfg_note_file() lists the files read */
};

/* "none", "starttls", "implicit" and their enum config_tls_mode values. */
extern const char *const cfg_tls_mode_names[];
extern const int         cfg_tls_mode_values[];

/* ---- config_source.c: the file ---- */

/* The file's text, NUL-terminated; NULL and "file: reason" in err. Caller frees. */
char *cfg_read_file(const char *path, size_t *len, char *err, size_t errlen);
/* Absolute directory of path; heap string or NULL. */
char *cfg_dir_of(const char *path);
/* A fresh state with only the safe libraries. NULL on allocation failure. */
lua_State *cfg_sandbox(void);
/* Run ctx->src in ctx->L; the returned table goes to the registry under CFG_CHUNK.
 * 0, or -1 with Lua's own "file:line: message" (or a non-table return) in ctx->err. */
int cfg_run(struct cfg_ctx *ctx);
/* Write a Lua error message to ctx->err with the chunk name replaced by the path. */
void cfg_lua_error(struct cfg_ctx *ctx, const char *msg);
/* Line (1-based) of a key path in the source text, best effort. */
int cfg_line_of(const char *src, size_t len, const char *path);

/* ---- config_value.c: key paths and errors ---- */

/* A push returns a mark; pop back to it when leaving the value. */
size_t cfg_push_key(struct cfg_ctx *ctx, const char *key);
/* List path (copied) in ctx->cfg->files under the key path being read. 0, or -1 (out of
 * memory, reported in ctx->err). */
int    cfg_note_file(struct cfg_ctx *ctx, const char *path);
size_t cfg_push_index(struct cfg_ctx *ctx, size_t i);
void   cfg_pop(struct cfg_ctx *ctx, size_t mark);

/* "file:line: path: reason" for the value at the current path, which is present in the
 * file (its line is searched). Always returns -1. */
int cfg_fail(struct cfg_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same for the present value t[key] of the current table. Returns -1. */
int cfg_fail_key(struct cfg_ctx *ctx, const char *key, const char *msg);
/* "file:line: path.key: required", at the enclosing table's line. Returns -1. */
int cfg_fail_missing(struct cfg_ctx *ctx, const char *key);

/* ---- config_value.c: tables ---- */

/* The table at index t has only string keys, each one of allowed (NULL-terminated). */
int cfg_check_keys(struct cfg_ctx *ctx, int t, const char *const *allowed);
/* The same with the keys of schema (config_schema.h) as the allowed ones. */
struct config_schema_table;
int cfg_check_schema_keys(struct cfg_ctx *ctx, int t, const struct config_schema_table *schema);
/* The table at index t is a list: keys exactly 1..n. Sets *n. */
int cfg_check_list(struct cfg_ctx *ctx, int t, size_t *n);
/* Push raw t[key] (no metamethods) and the key onto the path. Returns the Lua type
 * (LUA_TNIL when absent); the path mark goes to *mark. */
int cfg_field(struct cfg_ctx *ctx, int t, const char *key, size_t *mark);
/* Enter the optional table t[key]: 1 with it on the stack top, 0 when absent (nothing
 * pushed), -1 on error. allowed NULL: keys not checked. Leave with cfg_leave(). */
int cfg_enter(struct cfg_ctx *ctx, int t, const char *key, const char *const *allowed,
              size_t *mark);
/* cfg_enter() with the keys of schema as the allowed ones. */
int cfg_enter_schema(struct cfg_ctx *ctx, int t, const char *key,
                     const struct config_schema_table *schema, size_t *mark);
/* Enter the required, non-empty list t[key] of *n entries. 0 or -1. */
int  cfg_enter_list(struct cfg_ctx *ctx, int t, const char *key, size_t *n, size_t *mark);
void cfg_leave(struct cfg_ctx *ctx, size_t mark);

/* The table on top is a map by name ({ ['example.org'] = { ... } }): count its entries
 * in *n, or fail with "expected " example when a key is not a string. 0 or -1. */
int cfg_count_named(struct cfg_ctx *ctx, const char *example, size_t *n);

/* ---- config_value.c: typed getters for t[key] ----
 * Absent: *out is left as is (the caller set the default) unless required. A wrong type
 * or a value out of range is an error naming the key. All return 0 or -1. */
int cfg_get_uint(struct cfg_ctx *ctx, int t, const char *key, double min, double max,
                 size_t *out);
int cfg_get_int(struct cfg_ctx *ctx, int t, const char *key, int min, int max, bool required,
                int *out);
int cfg_get_seconds(struct cfg_ctx *ctx, int t, const char *key, double *out);
int cfg_get_bool(struct cfg_ctx *ctx, int t, const char *key, bool *out);
/* Non-empty, no control characters; *out is replaced (the old value freed). */
int cfg_get_string(struct cfg_ctx *ctx, int t, const char *key, bool required, char **out);
/* A non-empty list of such strings (or, with single, one string) as a heap array ending
 * in NULL; free with cfg_free_strings(). */
int  cfg_get_strings(struct cfg_ctx *ctx, int t, const char *key, bool single, bool required,
                     char ***out);
void cfg_free_strings(char **list);
/* A path resolved against ctx->dir; with readable, it must name a readable file. */
/* The first line of the file at path (through privfile.h), without its end, into buf
 * (NUL-terminated); its length, 0 when the file cannot be read or the line is empty. A
 * result of size - 1 means the line may go on. */
size_t cfg_first_line(const char *path, char *buf, size_t size);
int cfg_get_path(struct cfg_ctx *ctx, int t, const char *key, bool required, bool readable,
                 char **out);
/* One of names[] (NULL-terminated); *out = values[i]. */
int cfg_get_enum(struct cfg_ctx *ctx, int t, const char *key, const char *const *names,
                 const int *values, bool required, int *out);

/* ---- config_value.c: plain helpers ---- */

/* The string at the stack top (non-empty, no control characters) copied to *out. */
int cfg_to_string(struct cfg_ctx *ctx, char **out);
/* strdup into *out (freeing the old value); "out of memory" at the current path. */
int cfg_strdup(struct cfg_ctx *ctx, const char *s, char **out);
/* path resolved against ctx->dir, as a heap string; NULL on allocation failure. */
char *cfg_resolve(const struct cfg_ctx *ctx, const char *path);
/* Letters, digits, '-', '_' in dot-separated labels; "*." first if wildcard. */
bool cfg_is_hostname(const char *s, bool wildcard);
bool cfg_is_ip(const char *s);
void cfg_lowercase(char *s);

/* ---- config_upstream.c: sections (the top table at index top) ---- */

int  cfg_upstreams(struct cfg_ctx *ctx, int top, struct config *cfg);
int  cfg_routes(struct cfg_ctx *ctx, int top, struct config *cfg);
void cfg_free_upstream(struct config_upstream *set);
/* domains[name].upstream and .upstream_auth of the domain table at t (after upstreams and
 * routes): the domain's routes entry, and for upstream_auth a set of its own. 0 or -1. */
int  cfg_domain_upstream(struct cfg_ctx *ctx, int t, struct config *cfg, const char *domain);

/* ---- config_policy.c: policies, hook_timeout, audit_log, lua_dir, shdict_size, domains */

void cfg_policy_defaults(struct config *cfg);
/* config_oauth2.c: domains[name].oauth2, and the check that an 'oauth2' in auth has it */
int  cfg_domain_oauth2(struct cfg_ctx *ctx, int t, struct config_domain *d);
void cfg_free_oauth2(struct config_oauth2 *o);
/* config_ldap.c: domains[name].ldap, and the check that an 'ldap' in auth has it */
int  cfg_domain_ldap(struct cfg_ctx *ctx, int t, const struct config *cfg,
                     struct config_domain *d);
void cfg_free_ldap(struct config_ldap *l);
/* config_dkim.c: domains[name].dkim, one table or a list of them, keys read and checked */
int  cfg_domain_dkim(struct cfg_ctx *ctx, int t, struct config_domain *d);
void cfg_free_dkim(struct config_domain *d);
/* config_zones.c: zones (after shdict_size, which sizes the zone 'default') */
int  cfg_zones(struct cfg_ctx *ctx, int top, struct config *cfg);
void cfg_free_zones(struct config *cfg);
int  cfg_policy(struct cfg_ctx *ctx, int top, struct config *cfg);
void cfg_free_policy(struct config *cfg);
/* config_metrics.c: metrics */
int  cfg_metrics(struct cfg_ctx *ctx, int top, struct config *cfg);
int  cfg_redis(struct cfg_ctx *ctx, int top, struct config *cfg);
void cfg_free_metrics(struct config_metrics *m);

#endif
