/* core/config/config_ldap.c: a domain's `ldap` table (docs/authentication.md "LDAP"): which
 * directory servers, how to reach them (LDAPS, StartTLS, the CA), and how a user's
 * address becomes a DN: a bind-DN template, or a service account's search. Everything
 * that can be checked without the network is checked here, so that `sluice check` and
 * a reload refuse what could only fail later: the URIs parse (ldap_url_parse), the CA
 * file holds a certificate, the templates expand to a DN that parses and a filter that
 * is RFC 4515, the service password file is readable. Talking to the directory is
 * ldap_client.c's. */
#include <errno.h>
#include <ldap.h>
#include <lua.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_internal.h"
#include "config/config_ldap_tls.h"
#include "config/config_schema.h"
#include "proto/ldap_template.h"
#include "util/privfile.h"

#define CFG_LDAP_TIMEOUT         5.0 /* seconds: well inside the default hook_timeout */
#define CFG_LDAP_MAX_CONNECTIONS 4   /* per worker: binds on one connection are serial */
#define CFG_LDAP_MAX_PASSWORD    1024
#define CFG_LDAP_MAX_CA_FILE     (4 * 1024 * 1024) /* octets of a PEM bundle */

void
cfg_free_ldap(struct config_ldap *l)
{
    if (l == NULL)
        return;
    cfg_free_strings(l->uris);
    config_ldap_tls_ctx_free(l->tls_ctx);
    free(l->ca_file);
    free(l->base_dn);
    free(l->bind_dn);
    if (l->bind_password != NULL)
        explicit_bzero(l->bind_password, strlen(l->bind_password));
    free(l->bind_password);
    free(l->filter);
    free(l);
}

static bool
cfg_ldap_listed(const struct config_domain *d)
{
    for (size_t i = 0; d->auth != NULL && d->auth[i] != NULL; i++)
        if (strcmp(d->auth[i], "ldap") == 0)
            return true;
    return false;
}

/* Fail at key (present in the current table) with a formatted reason. */
static int cfg_ldap_fail(struct cfg_ctx *ctx, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
cfg_ldap_fail(struct cfg_ctx *ctx, const char *key, const char *fmt, ...)
{
    char    msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return cfg_fail_key(ctx, key, msg);
}

/* uris: each ldap:// or ldaps://, host and port only; cleartext needs StartTLS or
 * insecure = true. */
static int
cfg_ldap_uris(struct cfg_ctx *ctx, const struct config *cfg, struct config_ldap *l)
{
    LDAPURLDesc *lud;
    size_t       mark, i;
    bool         tls;
    int          rc;

    for (i = 0; l->uris[i] != NULL; i++) {
        mark = cfg_push_key(ctx, "uris");
        cfg_push_index(ctx, i + 1);
        rc = ldap_url_parse(l->uris[i], &lud);
        if (rc != LDAP_URL_SUCCESS)
            return cfg_fail(ctx, "not an LDAP URI (ldap_url_parse error %d)", rc);
        tls = strcmp(lud->lud_scheme, "ldaps") == 0;
        if (!tls && strcmp(lud->lud_scheme, "ldap") != 0)
            rc = cfg_fail(ctx, "expected ldap:// or ldaps://, not %s://", lud->lud_scheme);
        else if (lud->lud_host == NULL || lud->lud_host[0] == '\0')
            rc = cfg_fail(ctx, "expected a host name or address");
        else if ((lud->lud_dn != NULL && lud->lud_dn[0] != '\0') || lud->lud_attrs != NULL ||
                 lud->lud_filter != NULL || lud->lud_exts != NULL)
            rc = cfg_fail(ctx, "expected only scheme, host and port (base_dn and filter are "
                               "keys of their own)");
        else if (!tls && !l->starttls && !cfg->insecure)
            rc = cfg_fail(ctx, "cleartext LDAP sends passwords in the clear: use ldaps://, "
                               "starttls = true, or insecure = true (tests only)");
        ldap_free_urldesc(lud);
        if (rc != 0)
            return -1;
        cfg_pop(ctx, mark);
        l->n_uris++;
    }
    return 0;
}

/* The TLS context every connection of the domain uses (config_ldap_tls.h): made here so
 * that the CA file is read when the configuration is (through privfile.h), and once
 * rather than per connection. ca_file (readable: the getter checked) must
 * hold a PEM certificate: some TLS libraries take a file without one as an empty
 * store. */
static int
cfg_ldap_tls(struct cfg_ctx *ctx, struct config_ldap *l)
{
    char   err[256], *text = NULL;
    size_t len;
    BIO   *bio = NULL;
    X509  *x = NULL;

    if (l->ca_file != NULL) {
        text = privfile_read(l->ca_file, CFG_LDAP_MAX_CA_FILE, &len, err, sizeof(err));
        bio = text != NULL ? BIO_new_mem_buf(text, (int)len) : NULL;
        x = bio != NULL ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
        BIO_free(bio);
        free(text);
        ERR_clear_error();
        if (x == NULL)
            return cfg_ldap_fail(ctx, "ca_file", "no PEM certificate in '%s'", l->ca_file);
        X509_free(x);
    }
    l->tls_ctx = config_ldap_tls_ctx_new(l->ca_file, err, sizeof(err));
    if (l->tls_ctx == NULL)
        return l->ca_file != NULL ? cfg_fail_key(ctx, "ca_file", err) : cfg_fail(ctx, "%s", err);
    return 0;
}

/* A DN (a template expanded for a sample user) parses as RFC 4514. */
static int
cfg_ldap_dn(struct cfg_ctx *ctx, const char *key, const char *text)
{
    char   err[256];
    char  *dn;
    LDAPDN parsed = NULL;
    int    rc;

    if (ldap_template_check(text, err, sizeof(err)) != 0)
        return cfg_fail_key(ctx, key, err);
    dn = ldap_template_expand(text, LDAP_TEMPLATE_DN, "user", 4, "example.org", 11);
    if (dn == NULL)
        return cfg_fail(ctx, "out of memory");
    rc = ldap_str2dn(dn, &parsed, LDAP_DN_FORMAT_LDAPV3);
    free(dn);
    ldap_dnfree(parsed);
    if (rc != LDAP_SUCCESS)
        return cfg_fail_key(ctx, key, "not a DN (RFC 4514)");
    return 0;
}

/* bind_password or bind_password_file (its first line), for the service account. */
static int
cfg_ldap_password(struct cfg_ctx *ctx, int t, struct config_ldap *l)
{
    char   *path = NULL, buf[CFG_LDAP_MAX_PASSWORD + 2];
    size_t  n;

    if (cfg_get_string(ctx, t, "bind_password", false, &l->bind_password) ||
        cfg_get_path(ctx, t, "bind_password_file", false, true, &path))
        return -1;
    if (path == NULL)
        return 0;
    if (l->bind_password != NULL) {
        free(path);
        return cfg_fail_key(ctx, "bind_password_file", "give bind_password or "
                                                       "bind_password_file, not both");
    }
    n = cfg_first_line(path, buf, sizeof(buf));
    if (n == 0 || n > CFG_LDAP_MAX_PASSWORD) {
        explicit_bzero(buf, sizeof(buf));
        cfg_ldap_fail(ctx, "bind_password_file", n == 0 ? "no password on the first line of '%s'"
                                                        : "password in '%s' is too long", path);
        free(path);
        return -1;
    }
    free(path);
    l->bind_password = strdup(buf);
    explicit_bzero(buf, sizeof(buf));
    return l->bind_password == NULL ? cfg_fail(ctx, "out of memory") : 0;
}

/* True when the table at the stack top has key. */
static bool
cfg_ldap_has(struct cfg_ctx *ctx, const char *key)
{
    bool has;

    lua_pushstring(ctx->L, key);
    lua_rawget(ctx->L, -2);
    has = !lua_isnil(ctx->L, -1);
    lua_pop(ctx->L, 1);
    return has;
}

/* Bind mode: bind_dn is a template naming the user; no service account. */
static int
cfg_ldap_bind_mode(struct cfg_ctx *ctx, struct config_ldap *l)
{
    char err[256];

    if (l->bind_dn == NULL)
        return cfg_fail_missing(ctx, "bind_dn");
    if (ldap_template_check(l->bind_dn, err, sizeof(err)) != 0)
        return cfg_fail_key(ctx, "bind_dn", err);
    if (!ldap_template_has_user(l->bind_dn))
        return cfg_fail_key(ctx, "bind_dn", "a bind-DN template must name the user (%u or "
                                            "%s); for a service account add a filter");
    if (l->bind_password != NULL)
        return cfg_fail_key(ctx, cfg_ldap_has(ctx, "bind_password") ? "bind_password"
                                                                     : "bind_password_file",
                            "a service password needs search mode (a filter)");
    return cfg_ldap_dn(ctx, "bind_dn", l->bind_dn) ||
           (l->base_dn != NULL && cfg_ldap_dn(ctx, "base_dn", l->base_dn));
}

/* Search mode: base_dn and filter; bind_dn is the service account's DN (no template),
 * with its password, or absent for an anonymous search. */
static int
cfg_ldap_search_mode(struct cfg_ctx *ctx, struct config_ldap *l)
{
    char  err[256];
    char *f;
    int   rc;

    if (l->base_dn == NULL)
        return cfg_fail_missing(ctx, "base_dn");
    if (cfg_ldap_dn(ctx, "base_dn", l->base_dn) != 0)
        return -1;
    if (strchr(l->base_dn, '%') != NULL)
        return cfg_fail_key(ctx, "base_dn", "the search base is not a template");
    if (l->bind_dn != NULL && strchr(l->bind_dn, '%') != NULL)
        return cfg_fail_key(ctx, "bind_dn", "in search mode bind_dn is the service "
                                            "account's DN, not a template");
    if (l->bind_dn != NULL && cfg_ldap_dn(ctx, "bind_dn", l->bind_dn) != 0)
        return -1;
    if (l->bind_dn == NULL && l->bind_password != NULL)
        return cfg_fail_key(ctx, cfg_ldap_has(ctx, "bind_password") ? "bind_password"
                                                                     : "bind_password_file",
                            "needs bind_dn (the service account)");
    if (l->bind_dn != NULL && l->bind_password == NULL)
        return cfg_fail_key(ctx, "bind_dn", "needs bind_password or bind_password_file");
    if (ldap_template_check(l->filter, err, sizeof(err)) != 0)
        return cfg_fail_key(ctx, "filter", err);
    if (!ldap_template_has_user(l->filter))
        return cfg_fail_key(ctx, "filter", "the filter must name the user (%u or %s)");
    f = ldap_template_expand(l->filter, LDAP_TEMPLATE_FILTER, "user", 4, "example.org", 11);
    if (f == NULL)
        return cfg_fail(ctx, "out of memory");
    rc = ldap_template_check_filter(f, err, sizeof(err));
    free(f);
    return rc != 0 ? cfg_fail_key(ctx, "filter", err) : 0;
}

int
cfg_domain_ldap(struct cfg_ctx *ctx, int t, const struct config *cfg, struct config_domain *d)
{
    struct config_ldap *l;
    size_t              mark;
    int                 rc = cfg_enter_schema(
        ctx, t, "ldap", config_schema_find(&config_schema_domain, "ldap")->table, &mark);

    if (rc < 0)
        return -1;
    if (rc == 0)
        return cfg_ldap_listed(d) ? cfg_fail_key(ctx, "auth", "lists 'ldap' but the domain "
                                                              "has no ldap table")
                                  : 0;
    config_ldap_tls_global_init(); /* loading runs on the main thread: before libldap's users */
    l = d->ldap = calloc(1, sizeof(*l));
    if (l == NULL)
        return cfg_fail(ctx, "out of memory");
    l->starttls = true;
    l->timeout = CFG_LDAP_TIMEOUT;
    l->max_connections = CFG_LDAP_MAX_CONNECTIONS;
    if (cfg_get_bool(ctx, -1, "starttls", &l->starttls) ||
        cfg_get_strings(ctx, -1, "uris", true, true, &l->uris) ||
        cfg_ldap_uris(ctx, cfg, l) ||
        cfg_get_path(ctx, -1, "ca_file", false, true, &l->ca_file) ||
        cfg_ldap_tls(ctx, l) ||
        cfg_get_string(ctx, -1, "base_dn", false, &l->base_dn) ||
        cfg_get_string(ctx, -1, "bind_dn", false, &l->bind_dn) ||
        cfg_get_string(ctx, -1, "filter", false, &l->filter) ||
        cfg_ldap_password(ctx, -1, l) ||
        cfg_get_seconds(ctx, -1, "timeout", &l->timeout) ||
        cfg_get_uint(ctx, -1, "max_connections", 1, 64, &l->max_connections))
        return -1;
    if (l->timeout >= cfg->hook_timeout) {
        if (cfg_ldap_has(ctx, "timeout"))
            cfg_push_key(ctx, "timeout");
        return cfg_fail(ctx, "%g seconds must be less than hook_timeout (%g), or a slow "
                        "directory answers 451 instead of 454", l->timeout, cfg->hook_timeout);
    }
    if (l->filter == NULL ? cfg_ldap_bind_mode(ctx, l) : cfg_ldap_search_mode(ctx, l))
        return -1;
    cfg_leave(ctx, mark);
    return 0;
}
