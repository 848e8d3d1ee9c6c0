/* tests/unit/test_config_ldap.c: core/config/config_ldap.c, a domain's `ldap` table: what it
 * stores, its defaults, and every refusal naming its key path and file:line, as
 * `sluice check` prints them. Each case writes a config file into a temporary
 * directory and loads it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "config/config.h"
#include "testio.h"
#include "tmpdir.h"

static const char *dir; /* removed at exit (tmpdir.h) */
static char realdir[4096];
static char cfgpath[128];

/* Any valid PEM certificate: loading checks that the CA file holds one. */
static const char ca_pem[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBejCCASGgAwIBAgIUfcPtV0KI/Yw8Qd4HIsRV08Bxcl8wCgYIKoZIzj0EAwIw\n"
    "EjEQMA4GA1UEAwwHdGVzdCBDQTAgFw0yNjExMjUxODQxMjRaGA8yMTI2MTEwMTE4\n"
    "NDEyNFowEjEQMA4GA1UEAwwHdGVzdCBDQTBZMBMGByqGSM49AgEGCCqGSM49AwEH\n"
    "A0IABJDtDtA8vEh4pdcq9jRTcdz8F+yP8aO7Y5KbLIv+V+BJ635XqL3DO4Aow+f8\n"
    "hXVTO8YiEScBU3SqT4im7lExr2WjUzBRMB0GA1UdDgQWBBQpiFKcbluVvw/YhGxd\n"
    "HvARwnSg+jAfBgNVHSMEGDAWgBQpiFKcbluVvw/YhGxdHvARwnSg+jAPBgNVHRMB\n"
    "Af8EBTADAQH/MAoGCCqGSM49BAMCA0cAMEQCIFRpPFh9NQq2HT3wLkEs7RHAugKD\n"
    "rs7T3Hz4XragU8BdAiBKmVSaB8r+kFxgTCujL4eAazH/5poCoJFNHlrsROjK/w==\n"
    "-----END CERTIFICATE-----\n";

/* The file: the ldap table's keys start on line 6, one per line as given. */
#define HEAD                                                                              \
    "return {\n"                                                                          \
    "  listeners = { { name = 'smtps', address = '127.0.0.1', port = 8465, "              \
    "tls = 'implicit' } },\n"                                                             \
    "  tls = { certificates = { { cert = 'a.crt', key = 'a.key' } } },\n"                 \
    "  upstreams = { default = { { host = '127.0.0.1', port = 2525, tls = 'none' } } },\n"
#define LDAP(keys)                                                                        \
    HEAD "  domains = { ['example.org'] = { auth = { 'ldap', 'file' }, ldap = {\n" keys  \
         "\n  } } },\n}\n"
#define URIS "    uris = { 'ldaps://127.0.0.1:636', 'ldap://ldap.example.org' },\n"
#define BIND "    bind_dn = 'uid=%u,ou=people,dc=example,dc=org',"

static struct config *
load(const char *text, char *err, size_t errlen)
{
    test_write_file(dir, "sluice.lua", text);
    return config_load(cfgpath, err, errlen);
}

/* The error for text: the file as "sluice.lua", the temporary directory elsewhere as
 * "%s". */
static const char *
load_error(const char *text)
{
    static char    out[2048];
    char           err[1024] = "", *at;
    struct config *cfg = load(text, err, sizeof(err));
    size_t         used = 0;
    const char    *p = err;

    if (cfg != NULL) {
        config_free(cfg);
        return "(loaded)";
    }
    if (strncmp(err, cfgpath, strlen(cfgpath)) == 0) {
        used = (size_t)snprintf(out, sizeof(out), "sluice.lua");
        p = err + strlen(cfgpath);
    }
    while ((at = strstr(p, realdir)) != NULL || (at = strstr(p, dir)) != NULL) {
        size_t n = strncmp(at, realdir, strlen(realdir)) == 0 ? strlen(realdir) : strlen(dir);

        used += (size_t)snprintf(out + used, sizeof(out) - used, "%.*s%%s", (int)(at - p), p);
        p = at + n;
    }
    snprintf(out + used, sizeof(out) - used, "%s", p);
    return out;
}

static void
bind_mode_gets_its_defaults(void)
{
    char                  err[1024] = "";
    struct config        *cfg = load(LDAP(URIS BIND), err, sizeof(err));
    const struct config_ldap *l;

    CHECK(cfg != NULL);
    if (cfg == NULL) {
        fprintf(stderr, "  %s\n", err);
        return;
    }
    l = cfg->domains[0].ldap;
    CHECK(l != NULL && l->n_uris == 2 && strcmp(l->uris[1], "ldap://ldap.example.org") == 0);
    CHECK(l->starttls && l->timeout == 5.0 && l->max_connections == 4);
    CHECK(l->ca_file == NULL && l->base_dn == NULL && l->filter == NULL);
    CHECK(l->bind_password == NULL);
    CHECK(strcmp(l->bind_dn, "uid=%u,ou=people,dc=example,dc=org") == 0);
    config_free(cfg);
}

static void
search_mode_reads_the_service_password_file(void)
{
    char                      err[1024] = "";
    struct config            *cfg;
    const struct config_ldap *l;

    test_write_file(dir, "ca.pem", ca_pem);
    test_write_file(dir, "ldap.secret", "s3rvice pw\n");
    cfg = load(LDAP("    uris = 'ldaps://127.0.0.1:636',\n"
                    "    starttls = false, ca_file = 'ca.pem', timeout = 2.5,\n"
                         "    max_connections = 8, base_dn = 'ou=people,dc=example,dc=org',\n"
                         "    bind_dn = 'cn=sluice,dc=example,dc=org',\n"
                         "    bind_password_file = 'ldap.secret',\n"
                         "    filter = '(&(objectClass=inetOrgPerson)(mail=%s))',"),
               err, sizeof(err));
    CHECK(cfg != NULL);
    if (cfg == NULL) {
        fprintf(stderr, "  %s\n", err);
        return;
    }
    l = cfg->domains[0].ldap;
    CHECK(!l->starttls && l->timeout == 2.5 && l->max_connections == 8 && l->n_uris == 1);
    CHECK(strcmp(l->bind_password, "s3rvice pw") == 0);
    CHECK(strncmp(l->ca_file, realdir, strlen(realdir)) == 0);
    CHECK(strcmp(l->filter, "(&(objectClass=inetOrgPerson)(mail=%s))") == 0);
    config_free(cfg);
}

static void
a_domain_without_ldap_has_none(void)
{
    char           err[1024] = "";
    struct config *cfg = load(HEAD "  domains = { ['example.org'] = {} },\n}\n", err,
                              sizeof(err));

    CHECK(cfg != NULL && cfg->domains[0].ldap == NULL);
    config_free(cfg);
}

struct error_case {
    const char *text;
    const char *want; /* "%s" is the temporary directory */
};

static void
ldap_settings_are_validated_at_load(void)
{
    static const struct error_case cases[] = {
        {HEAD "  domains = { ['example.org'] = { auth = { 'ldap' } } },\n}\n",
         "sluice.lua:5: domains['example.org'].auth: lists 'ldap' but the domain has no ldap "
         "table"},
        {LDAP(BIND), "sluice.lua:5: domains['example.org'].ldap.uris: required"},
        {LDAP("    uris = {},\n" BIND),
         "sluice.lua:6: domains['example.org'].ldap.uris: expected a non-empty list"},
        {LDAP("    uris = { 'http://x' },\n" BIND),
         "sluice.lua:6: domains['example.org'].ldap.uris[1]: not an LDAP URI "
         "(ldap_url_parse error 3)"},
        {LDAP("    uris = { 'ldap://' },\n" BIND),
         "sluice.lua:6: domains['example.org'].ldap.uris[1]: expected a host name or address"},
        {LDAP("    uris = { 'ldap://h/dc=x' },\n" BIND),
         "sluice.lua:6: domains['example.org'].ldap.uris[1]: expected only scheme, host and "
         "port (base_dn and filter are keys of their own)"},
        {LDAP("    uris = { 'ldaps://a', 'ldap://b' }, starttls = false,\n" BIND),
         "sluice.lua:6: domains['example.org'].ldap.uris[2]: cleartext LDAP sends passwords "
         "in the clear: use ldaps://, starttls = true, or insecure = true (tests only)"},
        {LDAP(URIS "    ca_file = 'nope.pem',\n" BIND),
         "sluice.lua:7: domains['example.org'].ldap.ca_file: cannot read '%s/nope.pem': No "
         "such file or directory"},
        {LDAP(URIS "    ca_file = 'empty.pem',\n" BIND),
         "sluice.lua:7: domains['example.org'].ldap.ca_file: no PEM certificate in "
         "'%s/empty.pem'"},
        {LDAP(URIS), "sluice.lua:5: domains['example.org'].ldap.bind_dn: required"},
        {LDAP(URIS "    bind_dn = 'cn=admin,dc=example,dc=org',"),
         "sluice.lua:7: domains['example.org'].ldap.bind_dn: a bind-DN template must name the "
         "user (%u or %s); for a service account add a filter"},
        {LDAP(URIS "    bind_dn = 'uid=%x,dc=org',"),
         "sluice.lua:7: domains['example.org'].ldap.bind_dn: unknown '%x' at offset 4 "
         "(expected %u, %d, %s or %%)"},
        {LDAP(URIS "    bind_dn = 'uid=%u,,dc=org',"),
         "sluice.lua:7: domains['example.org'].ldap.bind_dn: not a DN (RFC 4514)"},
        {LDAP(URIS BIND "\n    bind_password = 'x',"),
         "sluice.lua:8: domains['example.org'].ldap.bind_password: a service password needs "
         "search mode (a filter)"},
        {LDAP(URIS BIND "\n    timeout = 10,"),
         "sluice.lua:8: domains['example.org'].ldap.timeout: 10 seconds must be less than "
         "hook_timeout (10), or a slow directory answers 451 instead of 454"},
        {LDAP(URIS BIND "\n    max_connections = 0,"),
         "sluice.lua:8: domains['example.org'].ldap.max_connections: expected an integer "
         "from 1 to 64"},
        {LDAP(URIS BIND "\n    search_base = 'dc=org',"),
         "sluice.lua:8: domains['example.org'].ldap.search_base: unknown key"},
        {LDAP(URIS "    filter = '(mail=%s)',"),
         "sluice.lua:5: domains['example.org'].ldap.base_dn: required"},
        {LDAP(URIS "    base_dn = 'dc=org', filter = '(mail=%s)',\n"
                   "    bind_dn = 'uid=%u,dc=org', bind_password = 'x',"),
         "sluice.lua:8: domains['example.org'].ldap.bind_dn: in search mode bind_dn is the "
         "service account's DN, not a template"},
        {LDAP(URIS "    base_dn = 'dc=org', filter = '(mail=%s)',\n"
                   "    bind_dn = 'cn=sluice,dc=org',"),
         "sluice.lua:8: domains['example.org'].ldap.bind_dn: needs bind_password or "
         "bind_password_file"},
        {LDAP(URIS "    base_dn = 'dc=org', filter = '(mail=%s)',\n"
                   "    bind_password = 'x',"),
         "sluice.lua:8: domains['example.org'].ldap.bind_password: needs bind_dn (the "
         "service account)"},
        {LDAP(URIS "    base_dn = 'dc=org', filter = '(mail=%s)', bind_dn = 'cn=s,dc=org',\n"
                   "    bind_password = 'x', bind_password_file = 'ldap.secret',"),
         "sluice.lua:8: domains['example.org'].ldap.bind_password_file: give bind_password "
         "or bind_password_file, not both"},
        {LDAP(URIS "    base_dn = 'dc=org', filter = '(mail=%s)', bind_dn = 'cn=s,dc=org',\n"
                   "    bind_password_file = 'empty.pem',"),
         "sluice.lua:8: domains['example.org'].ldap.bind_password_file: no password on the "
         "first line of '%s/empty.pem'"},
        {LDAP(URIS "    base_dn = 'dc=org',\n    filter = 'mail=%s',"),
         "sluice.lua:8: domains['example.org'].ldap.filter: not an RFC 4515 filter at "
         "offset 0: expected '('"},
        {LDAP(URIS "    base_dn = 'dc=org',\n    filter = '(objectClass=person)',"),
         "sluice.lua:8: domains['example.org'].ldap.filter: the filter must name the user "
         "(%u or %s)"},
        {LDAP(URIS "    base_dn = 'ou=%d,dc=org',\n    filter = '(mail=%s)',"),
         "sluice.lua:7: domains['example.org'].ldap.base_dn: the search base is not a "
         "template"},
    };
    char        want[sizeof(realdir) + 1024];
    const char *got, *at;

    test_write_file(dir, "empty.pem", "\n");
    test_write_file(dir, "ldap.secret", "s3rvice pw\n");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        at = strstr(cases[i].want, "'%s/");
        if (at != NULL)
            snprintf(want, sizeof(want), "%.*s'%%s%s", (int)(at - cases[i].want), cases[i].want,
                     at + 3);
        else
            snprintf(want, sizeof(want), "%s", cases[i].want);
        got = load_error(cases[i].text);
        CHECK(strcmp(got, want) == 0);
        if (strcmp(got, want) != 0)
            fprintf(stderr, "  case %zu:\n    got  %s\n    want %s\n", i, got, want);
    }
}

static void
cleartext_ldap_is_allowed_with_insecure(void)
{
    char           err[1024] = "";
    struct config *cfg = load(HEAD "  insecure = true,\n"
                                   "  domains = { ['example.org'] = { ldap = {\n"
                                   "    uris = 'ldap://127.0.0.1:389', starttls = false,\n" BIND
                                   "\n  } } },\n}\n",
                              err, sizeof(err));

    CHECK(cfg != NULL && cfg->domains[0].ldap->n_uris == 1);
    if (cfg == NULL)
        fprintf(stderr, "  %s\n", err);
    config_free(cfg);
}

int
main(void)
{
    dir = test_tmpdir("config-ldap");
    if (realpath(dir, realdir) == NULL) {
        perror(dir);
        return 1;
    }
    snprintf(cfgpath, sizeof(cfgpath), "%s/sluice.lua", dir);
    test_write_file(dir, "a.crt", "");
    test_write_file(dir, "a.key", "");
    RUN(bind_mode_gets_its_defaults);
    RUN(search_mode_reads_the_service_password_file);
    RUN(a_domain_without_ldap_has_none);
    RUN(ldap_settings_are_validated_at_load);
    RUN(cleartext_ldap_is_allowed_with_insecure);
    return check_summary();
}
