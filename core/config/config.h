/* core/config/config.h: conf/sluice.lua -> immutable struct config.
 * The file is a Lua chunk that returns one table. Loading runs it in a throwaway
 * lua_State with no libraries beyond string/table/math, validates every key and fills
 * this struct; unknown keys are errors (a typo must not silently mean "default").
 * Relative paths in the file are resolved against the file's directory.
 * A loaded config is read-only and shared by all workers. */
#ifndef SLUICE_CONFIG_H
#define SLUICE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "proto/cidr.h"
#include "proto/sasl.h"

enum config_tls_mode {
    CONFIG_TLS_NONE,     /* cleartext; only for upstreams and tests */
    CONFIG_TLS_STARTTLS, /* RFC 3207 */
    CONFIG_TLS_IMPLICIT, /* RFC 8314 */
};

struct config_listener {
    char                *name;        /* owns; "smtps", "submission", ... for logs */
    char               **addresses;   /* owns; NULL-terminated; "127.0.0.1", "::1", "*" */
    int                  port;
    enum config_tls_mode tls;         /* STARTTLS or IMPLICIT (NONE only with insecure=true) */
    unsigned             sasl_mechs;  /* SASL_MECH_BIT() set advertised and accepted here */
    bool                 require_tls_for_auth; /* always true unless insecure */
    bool                 proxy_protocol; /* a PROXY v1/v2 header precedes everything */
    struct cidr         *proxy_trusted;  /* owns; who may send it (required with it) */
    size_t               n_proxy_trusted;
    double               proxy_timeout;  /* seconds for the whole header; default 5 */
};

struct config_cert {
    char *cert_file; /* owns; PEM chain */
    char *key_file;  /* owns */
};

struct config_sni {
    char              *name;   /* owns; lowercase host name, "*.example.org" allowed */
    struct config_cert *certs; /* owns; n_certs entries (RSA and ECDSA side by side) */
    size_t             n_certs;
};

struct config_tls {
    struct config_cert *certs;       /* owns; default certificate(s) */
    size_t              n_certs;
    struct config_sni  *sni;         /* owns */
    size_t              n_sni;
    int                 min_version; /* TLS1_2_VERSION or TLS1_3_VERSION */
    char               *ciphers;     /* owns; TLS 1.2 cipher list */
    char               *ciphersuites;/* owns; TLS 1.3 suites */
    int                 ticket_lifetime; /* seconds a ticket key encrypts before rotation */
};

/* upstreams[].xclient (docs/upstreams.md "XCLIENT and XFORWARD") */
enum config_xclient {
    CONFIG_XCLIENT_OFF,      /* false: the default */
    CONFIG_XCLIENT_ON,       /* true: XCLIENT, else XFORWARD, when the EHLO offers it */
    CONFIG_XCLIENT_REQUIRED, /* 'required': a server that offers neither is skipped */
};

/* How an upstream server (or a domain's upstream_auth) logs in. */
enum config_upstream_mech {
    CONFIG_AUTH_PASSWORD, /* PLAIN, else LOGIN, as the server offers */
    CONFIG_AUTH_XOAUTH2,  /* a bearer token from oauth2's token endpoint */
};

/* auth.oauth2 / upstream_auth.oauth2: where the bearer tokens of mechanism = 'xoauth2'
 * come from (core/relay/upstream_token.c; docs/upstreams.md "OAuth2"). */
struct config_upstream_oauth2 {
    char *token_url;     /* owns; http(s) URL of the token endpoint */
    char *client_id;     /* owns */
    char *client_secret; /* owns; secret; NULL: a public client (refresh grant only) */
    char *refresh_token; /* owns; secret; NULL: the client-credentials grant */
    char *scope;         /* owns; NULL: none sent */
    char *ca_file;       /* owns; NULL: the system's store */
};

struct config_upstream_server {
    char                *host;     /* owns */
    int                  port;
    enum config_tls_mode tls;
    bool                 verify;   /* verify the certificate chain and host name */
    char                *ca_file;  /* owns; NULL = system store */
    char                *tls_name; /* owns; name to verify/SNI, default host */
    char                *auth_user;     /* owns; NULL = no AUTH */
    char                *auth_password; /* owns; NULL with xoauth2 */
    enum config_upstream_mech      auth_mech;
    struct config_upstream_oauth2 *oauth2; /* owns; only with CONFIG_AUTH_XOAUTH2 */
    enum config_xclient  xclient;  /* tell the upstream who the client was (XCLIENT/XFORWARD) */
};

struct config_upstream {
    char                          *name;    /* owns; the set's name, "default" */
    struct config_upstream_server *servers; /* owns; tried in order (failover) */
    size_t                         n_servers;
};

struct config_route {
    char *sender_domain; /* owns; lowercase */
    int   upstream;      /* index into config.upstreams */
};

/* One domains['name'] entry of the policy engine (docs/lua-api.md "Configuration"). */
struct config_sender {
    char  *user;      /* owns; lowercase (ASCII) address of the user */
    char **addresses; /* owns; NULL-terminated; extra MAIL FROM addresses, as written */
};

/* Per-domain overrides of policies/ratelimit.lua's defaults; 0 = not set. */
struct config_domain_limits {
    size_t messages_per_hour;
    size_t user_messages_per_hour;
    size_t user_auth_failures_per_hour;
    size_t domain_auth_failures_per_hour;
};

/* domains['name'].oauth2: how bearer tokens of this domain are checked
 * (policies/oauth2.lua, docs/authentication.md); parsed by config_oauth2.c. */
struct config_oauth2 {
    char  *issuer;             /* owns; the `iss` a token must carry */
    char **audience;           /* owns; NULL-terminated; `aud` must hold one of them */
    char  *scope;              /* owns; required scope, default "smtp.send" */
    char  *jwks_file;          /* owns; absolute path of the issuer's JWKS, readable */
    char  *jwks_text;          /* owns; jwks_file's content, read with the configuration */
    char  *jwks_url;           /* owns; https URL of the issuer's JWKS (not with jwks_file) */
    size_t jwks_refresh;       /* seconds a fetched JWKS is kept, default 3600 */
    char  *introspection_url;  /* owns; RFC 7662 endpoint for opaque tokens, or NULL */
    char  *client_id;          /* owns; our client at the introspection endpoint */
    char  *client_secret;      /* owns; its secret: never logged, never given to Lua
                                * (lapi_http.c adds the Authorization header itself) */
    size_t introspection_cache; /* seconds an answer is kept (never past exp), default 300 */
    char  *ca_file;            /* owns; trust anchors for both URLs, NULL = system store */
    double http_timeout;       /* seconds per request to the issuer, default 5 */
    char **clients;            /* owns; NULL-terminated azp/client_id allowed; NULL = any */
    size_t leeway;             /* seconds of clock skew allowed on exp/nbf/iat, default 60 */
    size_t max_token_lifetime; /* seconds exp - iat may span, default 86400 */
};

/* domains['name'].ldap: the domain's directory (core/auth/ldap_client.c,
 * docs/authentication.md "LDAP"); parsed by config_ldap.c. Bind mode when filter is NULL
 * (bind_dn is the users' DN template), search mode otherwise (bind_dn is the service
 * account's DN, NULL for an anonymous search). */
struct config_ldap {
    char  **uris;            /* owns; NULL-terminated ldap:// and ldaps:// URIs, in order */
    size_t  n_uris;
    bool    starttls;        /* StartTLS on ldap:// URIs; default true */
    char   *ca_file;         /* owns; absolute path, NULL = the system's store */
    void   *tls_ctx;         /* owns a reference: libldap's TLS context trusting ca_file
                              * (config_ldap_tls_ctx_new), made at load, before privileges are
                              * dropped; every connection shares it */
    char   *base_dn;         /* owns; search base (required in search mode), or NULL */
    char   *bind_dn;         /* owns; template (%u %d %s) or service DN, or NULL */
    char   *bind_password;   /* owns; the service account's: a secret, never logged or
                              * given to Lua; NULL in bind mode */
    char   *filter;          /* owns; search filter template, NULL = bind mode */
    double  timeout;         /* seconds one verification may take; default 5 */
    size_t  max_connections; /* per worker; default 4 */
};

/* domains['name'].dkim: one key a domain signs with (config_dkim.c, docs/dkim.md). */
struct dkim_key;
struct config_dkim {
    char            *selector; /* owns; one DNS label, s= */
    char            *key_file; /* owns; absolute path, read at load (a reload re-reads it) */
    struct dkim_key *key;      /* owns; proto/dkim_sign.h: RSA >= 1024 bits or Ed25519 */
    char           **headers;  /* owns; NULL-terminated names to sign, NULL = the default */
};

struct config_domain {
    char                       *name;    /* owns; ASCII-lowercased, U-label or A-label */
    bool                        enabled; /* default true */
    char                      **auth;    /* owns; NULL-terminated backend names, { "file" } */
    struct config_sender       *senders; /* owns; n_senders entries, users lowercased */
    size_t                      n_senders;
    bool                        allow_subdomains;
    bool                        allow_null_sender;
    bool                        check_header_from; /* default true */
    struct config_domain_limits limits;
    struct config_oauth2       *oauth2;  /* owns; NULL when the domain has no oauth2 table */
    struct config_ldap         *ldap;    /* owns; NULL when the domain has no ldap table */
    struct config_dkim         *dkim;    /* owns; n_dkim keys, a signature each; NULL: none */
    size_t                      n_dkim;
};

/* Shared state zones (config_zones.c, docs/configuration.md `zones`). The built-in zones
 * are always there, at these indices of config.zones; a configuration may add its own. */
enum config_zone_builtin {
    CONFIG_ZONE_DEFAULT,    /* sluice.shdict: site policies' own counters and notes */
    CONFIG_ZONE_LIMITS,     /* sluice.ratelimit's counters */
    CONFIG_ZONE_BLOCKS,     /* sluice.ratelimit's active blocks: never evicted */
    CONFIG_ZONE_DENYLIST,   /* the bearer-token deny-list (sluice ctl token): never evicted */
    CONFIG_ZONE_AUTH_CACHE, /* remembered password checks, introspection answers */
    CONFIG_ZONE_JWKS,       /* fetched JSON Web Key Sets */
    CONFIG_ZONE_N_BUILTIN,
};

#define CONFIG_ZONE_NAME_MAX 32 /* octets: [a-z][a-z0-9_]* */
#define CONFIG_ZONES_MAX     32

/* Where a zone's entries live (docs/configuration.md `zones`, docs/deployment.md). */
enum config_zone_backend {
    CONFIG_ZONE_LOCAL, /* the in-process dictionary: this node's workers share it */
    CONFIG_ZONE_REDIS, /* the `redis` server: every node shares it */
};

struct config_zone {
    char  *name;  /* owns */
    size_t size;  /* bytes the zone may hold (a Redis zone: its local fallback) */
    bool   evict; /* true: least recently used entries make room; false: never evicted,
                   * a full zone refuses new entries */
    enum config_zone_backend backend;
    bool   fail_closed; /* a Redis zone Redis cannot answer for: true, calls fail with
                         * 'unavailable'; false, they use the local fallback (fail open) */
};

/* redis (config_redis.c, docs/configuration.md `redis`): the server Redis zones use. */
struct config_redis {
    char  *address;  /* owns; an IP literal, NULL when socket is set */
    int    port;     /* default 6379 */
    char  *socket;   /* owns; absolute path of a unix socket, or NULL */
    int    database; /* SELECT this (0..15 by Redis' default) */
    char  *prefix;   /* owns; before every key: "sluice:" by default */
    char  *username; /* owns; ACL user (Redis 6+), or NULL for the default user */
    char  *password; /* owns; from password_file, or NULL (no AUTH) */
    double connect_timeout; /* seconds a connect may take */
    double timeout;  /* seconds a client waits for one zone call at most */
};

bool config_redis_same(const struct config_redis *a, const struct config_redis *b);
/* A copy that outlives the configuration (the zones keep one), or NULL (no memory). */
struct config_redis *config_redis_copy(const struct config_redis *r);
void                 config_redis_free(struct config_redis *r);

/* metrics (config_metrics.c, docs/metrics.md): the Prometheus listener. */
struct config_metrics_net {
    int           family; /* AF_INET or AF_INET6 */
    unsigned char addr[16];
    unsigned      prefix; /* leading bits that must match */
};

struct config_metrics {
    char                      *address; /* owns; an IP literal, default "127.0.0.1" */
    int                        port;    /* default 9465; 0: any free port (tests) */
    struct config_metrics_net *allow;   /* owns; n_allow networks that may scrape */
    size_t                     n_allow;
    struct config_cert         tls;     /* owns both; cert_file NULL: plain HTTP */
    char                      *client_ca; /* owns; NULL: no client certificate asked */
};

/* "192.0.2.0/24", "::1/128" or a bare address -> *out. 0, or -1 if it is none of those. */
int config_metrics_parse_net(const char *s, struct config_metrics_net *out);
/* Whether two metrics tables (either may be NULL: none) ask for the same listener: the
 * same address, port, allow-list and TLS files (by path; their contents may differ). */
bool config_metrics_same(const struct config_metrics *a, const struct config_metrics *b);

/* A file a configuration reads: where the configuration names it, and its path. */
struct config_file {
    char *key;  /* owns; "domains['example.net'].ldap.bind_password_file", "policies[2]" */
    char *path; /* owns; absolute */
};

struct config {
    char                   *path;      /* owns; the file this came from */
    char                   *hostname;  /* owns; greeting, EHLO to upstreams, Received: */
    int                     workers;   /* >= 1 after loading (0 in the file = cores) */
    char                   *user;      /* owns; drop to this user when started as root */
    char                   *users_dir; /* owns; per-domain user files */
    char                   *control_socket; /* owns; absolute path, NULL = no control socket */
    struct config_metrics  *metrics;   /* owns; NULL = no metrics listener */

    struct config_listener *listeners; /* owns */
    size_t                  n_listeners;
    struct config_tls       tls;

    struct config_upstream *upstreams; /* owns; [0] is the default set */
    size_t                  n_upstreams;
    struct config_route    *routes;    /* owns */
    size_t                  n_routes;

    /* limits.* */
    size_t max_message_size;
    size_t max_recipients;
    size_t max_line_length;
    size_t max_errors;
    size_t max_commands;
    size_t max_messages;
    size_t max_auth_failures;
    size_t max_connections;
    size_t max_connections_per_ip; /* per client network (iplimit.h), the name kept */
    size_t min_data_rate;          /* octets/s DATA and BDAT must average (smtp_data.c) */
    size_t client_ipv6_prefix;     /* bits of an IPv6 address naming one client, 1..128 */
    size_t max_auth_jobs;            /* password checks queued or running, all clients */
    size_t max_auth_jobs_per_client; /* ... of one client (address or IPv6 network) */
    size_t max_inflight_bytes;            /* message buffers, whole daemon */
    size_t max_inflight_bytes_per_client; /* ... and per client address */

    /* timeouts.* (seconds; docs/security.md says which ones bytes cannot extend) */
    double timeout_greeting;
    double timeout_command;
    double timeout_data;
    double timeout_tls;
    double timeout_upstream;
    double timeout_upstream_data;
    double timeout_drain;

    /* pool.* */
    size_t pool_max_per_worker;
    double pool_idle_timeout;
    size_t pool_max_reuse;

    /* policy engine (config_policy.c) */
    char                  **policies;     /* owns; NULL-terminated absolute paths, in order */
    size_t                  n_policies;
    double                  hook_timeout; /* seconds one hook may take, yields included */
    char                   *audit_log;    /* owns; absolute path, NULL = audit discarded */
    char                   *lua_dir;      /* owns; directory holding sluice/init.lua */
    size_t                  shdict_size;  /* bytes of the zone 'default' (zones[0]) */
    struct config_zone     *zones;        /* owns; the built-in ones first, in enum
                                           * config_zone_builtin order, then the others */
    size_t                  n_zones;
    struct config_redis    *redis;        /* owns; NULL: no redis table */
    size_t                  auth_cache_ttl; /* seconds a verified password is remembered, 0 = never */
    char                   *default_domain; /* owns; lowercase; a bare user name's domain, or NULL */
    struct config_domain   *domains;      /* owns; sorted by name */
    size_t                  n_domains;

    int  log_level;  /* LOG_* from log.h */
    bool insecure;   /* allow cleartext listeners and AUTH without TLS: tests only */

    struct config_file *files; /* owns; every file the configuration names for reading,
                                * which every reload reads again (config_access.h) */
    size_t              n_files;
};

/* Load and validate. Returns NULL and "file:line: key: reason" in err on failure. */
struct config *config_load(const char *path, char *err, size_t errlen);
void           config_free(struct config *cfg);

/* Index into cfg->upstreams for a sender's domain (routes), 0 when no route matches. */
int config_route_for_domain(const struct config *cfg, const char *domain, size_t len);

/* The zone named name (n octets), or NULL. */
const struct config_zone *config_zone_find(const struct config *cfg, const char *name,
                                           size_t n);

/* The declared domain named exactly name (ASCII case-insensitive), or NULL. */
const struct config_domain *config_domain_find(const struct config *cfg, const char *name);

#endif
