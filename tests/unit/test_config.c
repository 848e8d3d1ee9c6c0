/* tests/unit/test_config.c: core/config/config.c and friends. Each test writes a config file
 * into a fresh temporary directory (with empty files standing in for certificates:
 * loading only checks that they are readable; tls.c parses them) and loads it. */
#include <openssl/tls1.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "config/config.h"
#include "util/limits.h"
#include "util/log.h"
#include "testio.h"
#include "tmpdir.h"

static const char *dir;    /* removed at exit (tmpdir.h) */
static char realdir[4096]; /* what config paths are resolved against */
static char cfgpath[128];  /* dir/sluice.lua */

static struct config *
load(const char *text, char *err, size_t errlen)
{
    test_write_file(dir, "sluice.lua", text);
    return config_load(cfgpath, err, errlen);
}

/* The error for text, with the temporary path shortened to "sluice.lua". */
static const char *
load_error(const char *text)
{
    static char    out[1024];
    char           err[1024] = "";
    struct config *cfg = load(text, err, sizeof(err));
    size_t         n = strlen(cfgpath);

    if (cfg != NULL) {
        config_free(cfg);
        return "(loaded)";
    }
    if (strncmp(err, cfgpath, n) == 0)
        snprintf(out, sizeof(out), "sluice.lua%s", err + n);
    else
        snprintf(out, sizeof(out), "%s", err);
    return out;
}

/* Expanded to a path under the temporary directory */
static const char *
in_dir(const char *name)
{
    static char p[8][4200];
    static int  next;
    char       *out = p[next++ % 8];

    snprintf(out, 4200, "%s/%s", realdir, name);
    return out;
}

/* A valid file, one key per line; WITH() adds lines 5.. before the closing brace. */
#define LISTEN_TLS                                                                     \
    "  listeners = { { name = 'smtps', address = '127.0.0.1', port = 8465, "             \
    "tls = 'implicit' } },\n"
#define CERTS      "  tls = { certificates = { { cert = 'a.crt', key = 'a.key' } } },\n"
#define UPSTREAM                                                                       \
    "  upstreams = { default = { { host = '127.0.0.1', port = 2525, tls = 'none' } } },\n"
#define MINIMAL    "return {\n" LISTEN_TLS CERTS UPSTREAM "}\n"
#define WITH(extra) "return {\n" LISTEN_TLS CERTS UPSTREAM extra "\n}\n"

/* ---- defaults ------------------------------------------------------------------------- */

static void
check_default_limits(const struct config *cfg)
{
    CHECK_EQ_INT(cfg->max_message_size, LIMIT_MAX_MESSAGE_SIZE);
    CHECK_EQ_INT(cfg->max_recipients, LIMIT_MAX_RECIPIENTS);
    CHECK_EQ_INT(cfg->max_line_length, LIMIT_MAX_LINE_LENGTH);
    CHECK_EQ_INT(cfg->max_errors, LIMIT_MAX_ERRORS);
    CHECK_EQ_INT(cfg->max_commands, LIMIT_MAX_COMMANDS);
    CHECK_EQ_INT(cfg->max_messages, LIMIT_MAX_MESSAGES);
    CHECK_EQ_INT(cfg->max_auth_failures, LIMIT_MAX_AUTH_FAILURES);
    CHECK_EQ_INT(cfg->max_connections, LIMIT_MAX_CONNECTIONS);
    CHECK_EQ_INT(cfg->max_connections_per_ip, LIMIT_MAX_CONNECTIONS_PER_IP);
    CHECK_EQ_INT(cfg->max_inflight_bytes, 256 * 1024 * 1024);
    CHECK_EQ_INT(cfg->max_inflight_bytes_per_client, 64 * 1024 * 1024);
    CHECK_EQ_INT(cfg->min_data_rate, LIMIT_MIN_DATA_RATE);
    CHECK_EQ_INT(cfg->client_ipv6_prefix, 64);
    CHECK(cfg->timeout_greeting == TIMEOUT_GREETING && cfg->timeout_command == TIMEOUT_COMMAND);
    CHECK(cfg->timeout_data == TIMEOUT_DATA_BLOCK && cfg->timeout_tls == TIMEOUT_TLS);
    CHECK(cfg->timeout_upstream == TIMEOUT_UPSTREAM);
    CHECK(cfg->timeout_upstream_data == TIMEOUT_UPSTREAM_DATA_END);
    CHECK(cfg->timeout_drain == TIMEOUT_DRAIN);
    CHECK_EQ_INT(cfg->pool_max_per_worker, POOL_MAX_PER_WORKER);
    CHECK(cfg->pool_idle_timeout == POOL_IDLE_TIMEOUT);
    CHECK_EQ_INT(cfg->pool_max_reuse, POOL_MAX_REUSE);
}

static void
a_minimal_file_gets_every_default(void)
{
    char           err[512] = "";
    struct config *cfg = load(MINIMAL, err, sizeof(err));
    long           cpus = sysconf(_SC_NPROCESSORS_ONLN);

    CHECK(cfg != NULL);
    if (cfg == NULL) {
        fprintf(stderr, "%s\n", err);
        return;
    }
    CHECK(strcmp(cfg->path, cfgpath) == 0);
    CHECK(cfg->hostname != NULL && cfg->hostname[0] != '\0');
    CHECK_EQ_INT(cfg->workers, cpus < 1 ? 1 : cpus);
    CHECK(strcmp(cfg->user, "sluice") == 0);
    CHECK(strcmp(cfg->users_dir, in_dir("users")) == 0);
    CHECK_EQ_INT(cfg->log_level, LOG_INFO);
    CHECK(!cfg->insecure);
    check_default_limits(cfg);
    CHECK_EQ_INT(cfg->tls.min_version, TLS1_2_VERSION);
    CHECK(strstr(cfg->tls.ciphers, "ECDHE-ECDSA-AES128-GCM-SHA256") == cfg->tls.ciphers);
    CHECK(strstr(cfg->tls.ciphersuites, "TLS_AES_256_GCM_SHA384") != NULL);
    CHECK_EQ_INT(cfg->tls.ticket_lifetime, 3600);
    CHECK_EQ_INT(cfg->tls.n_sni, 0);
    CHECK_EQ_INT(cfg->n_listeners, 1);
    CHECK_EQ_INT(cfg->listeners[0].sasl_mechs, SASL_MECHS_ALL);
    CHECK(cfg->listeners[0].require_tls_for_auth);
    CHECK(cfg->listeners[0].addresses[1] == NULL);
    CHECK_EQ_INT(cfg->n_upstreams, 1);
    CHECK(cfg->upstreams[0].servers[0].verify);
    CHECK(cfg->upstreams[0].servers[0].ca_file == NULL);
    CHECK(strcmp(cfg->upstreams[0].servers[0].tls_name, "127.0.0.1") == 0);
    CHECK(cfg->upstreams[0].servers[0].auth_user == NULL);
    CHECK_EQ_INT(cfg->n_routes, 0);
    config_free(cfg);
}

static void
an_upstream_port_defaults_by_its_tls_mode(void)
{
    char           err[512] = "";
    struct config *cfg = load("return {\n" LISTEN_TLS CERTS
                              "  upstreams = { default = { { host = 'a.example' },\n"
                              "    { host = 'b.example', tls = 'implicit' } } } }\n",
                              err, sizeof(err));

    CHECK(cfg != NULL);
    if (cfg == NULL)
        return;
    CHECK_EQ_INT(cfg->upstreams[0].servers[0].tls, CONFIG_TLS_STARTTLS);
    CHECK_EQ_INT(cfg->upstreams[0].servers[0].port, 25);
    CHECK_EQ_INT(cfg->upstreams[0].servers[1].port, 465);
    config_free(cfg);
}

/* ---- a file that sets everything ---------------------------------------------------- */

static const char full_config[] =
    "local M = 1024 * 1024\n"
    "return {\n"
    "  hostname = 'mail.example.org',\n"
    "  workers = 3,\n"
    "  user = 'sluice',\n"
    "  users_dir = '/etc/sluice/users',\n"
    "  insecure = true,\n"
    "  log_level = 'debug',\n"
    "  listeners = {\n"
    "    { name = 'smtps', address = { '127.0.0.1', '::1' }, port = 8465, tls = 'implicit',\n"
    "      sasl = { 'plain', 'XOAUTH2' } },\n"
    "    { name = 'submission', address = '*', port = 8587, tls = 'starttls' },\n"
    "    { name = 'test', address = '127.0.0.1', port = 2587, tls = 'none', sasl = { 'LOGIN' } },\n"
    "  },\n"
    "  tls = {\n"
    "    certificates = { { cert = 'a.crt', key = 'a.key' },\n"
    "                     { cert = 'certs/b.crt', key = 'certs/b.key' } },\n"
    "    sni = { ['Mail.Example.NET'] = { { cert = 'certs/b.crt', key = 'certs/b.key' } },\n"
    "            ['*.example.com'] = { { cert = 'a.crt', key = 'a.key' } } },\n"
    "    min_version = '1.3',\n"
    "    ciphers = 'ECDHE-ECDSA-AES256-GCM-SHA384',\n"
    "    ciphersuites = 'TLS_AES_128_GCM_SHA256',\n"
    "    ticket_key_lifetime = 600,\n"
    "  },\n"
    "  limits = { max_message_size = 10 * M, max_recipients = 50, max_line_length = 2000,\n"
    "    max_errors = 5, max_commands = 500, max_messages = 20, max_auth_failures = 2,\n"
    "    max_connections = 900, max_connections_per_ip = 9, min_data_rate = 100,\n"
    "    client_ipv6_prefix = 56 },\n"
    "  timeouts = { greeting = 11, command = 12, data = 13, tls = 14, upstream = 15,\n"
    "    upstream_data = 16, drain = 17.5 },\n"
    "  upstreams = {\n"
    "    zeta = { { host = 'z.example', port = 25 } },\n"
    "    default = {\n"
    "      { host = 'relay1.example', port = 587, tls = 'starttls', ca_file = 'ca.pem',\n"
    "        tls_name = 'relay.example', auth = { user = 'u', password = 'p' } },\n"
    "      { host = '192.0.2.1', tls = 'implicit', verify = false },\n"
    "    },\n"
    "    other = { { host = 'o.example', port = 2526, tls = 'none' } },\n"
    "  },\n"
    "  routes = { ['Example.NET'] = 'other', ['z.example.org'] = 'zeta' },\n"
    "  pool = { max_per_worker = 4, idle_timeout = 5, max_reuse = 6 },\n"
    "}\n";

static void
check_full_listeners(const struct config *cfg)
{
    const struct config_listener *l = cfg->listeners;

    CHECK_EQ_INT(cfg->n_listeners, 3);
    CHECK(strcmp(l[0].name, "smtps") == 0 && l[0].port == 8465);
    CHECK(strcmp(l[0].addresses[0], "127.0.0.1") == 0 && strcmp(l[0].addresses[1], "::1") == 0);
    CHECK(l[0].addresses[2] == NULL);
    CHECK_EQ_INT(l[0].tls, CONFIG_TLS_IMPLICIT);
    CHECK_EQ_INT(l[0].sasl_mechs,
                 SASL_MECH_BIT(SASL_MECH_PLAIN) | SASL_MECH_BIT(SASL_MECH_XOAUTH2));
    CHECK(strcmp(l[1].addresses[0], "*") == 0 && l[1].addresses[1] == NULL);
    CHECK_EQ_INT(l[1].tls, CONFIG_TLS_STARTTLS);
    CHECK_EQ_INT(l[1].sasl_mechs, SASL_MECHS_ALL);
    CHECK_EQ_INT(l[2].tls, CONFIG_TLS_NONE);
    CHECK_EQ_INT(l[2].sasl_mechs, SASL_MECH_BIT(SASL_MECH_LOGIN));
    CHECK(!l[2].require_tls_for_auth); /* insecure */
}

static void
check_full_tls(const struct config *cfg)
{
    const struct config_tls *t = &cfg->tls;

    CHECK_EQ_INT(t->n_certs, 2);
    CHECK(strcmp(t->certs[0].cert_file, in_dir("a.crt")) == 0);
    CHECK(strcmp(t->certs[1].key_file, in_dir("certs/b.key")) == 0);
    CHECK_EQ_INT(t->n_sni, 2); /* sorted, lowercase */
    CHECK(strcmp(t->sni[0].name, "*.example.com") == 0);
    CHECK(strcmp(t->sni[1].name, "mail.example.net") == 0);
    CHECK_EQ_INT(t->sni[1].n_certs, 1);
    CHECK(strcmp(t->sni[1].certs[0].cert_file, in_dir("certs/b.crt")) == 0);
    CHECK_EQ_INT(t->min_version, TLS1_3_VERSION);
    CHECK(strcmp(t->ciphers, "ECDHE-ECDSA-AES256-GCM-SHA384") == 0);
    CHECK(strcmp(t->ciphersuites, "TLS_AES_128_GCM_SHA256") == 0);
    CHECK_EQ_INT(t->ticket_lifetime, 600);
}

static void
check_full_upstreams(const struct config *cfg)
{
    const struct config_upstream_server *s;

    CHECK_EQ_INT(cfg->n_upstreams, 3); /* default first, then by name */
    CHECK(strcmp(cfg->upstreams[0].name, "default") == 0);
    CHECK(strcmp(cfg->upstreams[1].name, "other") == 0);
    CHECK(strcmp(cfg->upstreams[2].name, "zeta") == 0);
    CHECK_EQ_INT(cfg->upstreams[0].n_servers, 2);
    s = &cfg->upstreams[0].servers[0];
    CHECK(strcmp(s->host, "relay1.example") == 0 && s->port == 587);
    CHECK(s->tls == CONFIG_TLS_STARTTLS && s->verify);
    CHECK(strcmp(s->ca_file, in_dir("ca.pem")) == 0);
    CHECK(strcmp(s->tls_name, "relay.example") == 0);
    CHECK(strcmp(s->auth_user, "u") == 0 && strcmp(s->auth_password, "p") == 0);
    s = &cfg->upstreams[0].servers[1];
    CHECK(strcmp(s->host, "192.0.2.1") == 0 && s->port == 465);
    CHECK(s->tls == CONFIG_TLS_IMPLICIT && !s->verify);
    s = &cfg->upstreams[1].servers[0];
    CHECK(s->port == 2526 && s->tls == CONFIG_TLS_NONE);
    CHECK_EQ_INT(cfg->n_routes, 2);
    CHECK_EQ_INT(config_route_for_domain(cfg, "example.net", 11), 1);
    CHECK_EQ_INT(config_route_for_domain(cfg, "z.example.org", 13), 2);
}

static void
a_full_file_sets_every_key(void)
{
    char           err[512] = "";
    struct config *cfg = load(full_config, err, sizeof(err));

    CHECK(cfg != NULL);
    if (cfg == NULL) {
        fprintf(stderr, "%s\n", err);
        return;
    }
    CHECK(strcmp(cfg->hostname, "mail.example.org") == 0);
    CHECK_EQ_INT(cfg->workers, 3);
    CHECK(strcmp(cfg->user, "sluice") == 0);
    CHECK(strcmp(cfg->users_dir, "/etc/sluice/users") == 0);
    CHECK(cfg->insecure);
    CHECK_EQ_INT(cfg->log_level, LOG_DEBUG);
    CHECK_EQ_INT(cfg->max_message_size, 10 * 1024 * 1024);
    CHECK(cfg->max_recipients == 50 && cfg->max_line_length == 2000 && cfg->max_errors == 5);
    CHECK(cfg->max_commands == 500 && cfg->max_messages == 20 && cfg->max_auth_failures == 2);
    CHECK(cfg->max_connections == 900 && cfg->max_connections_per_ip == 9);
    CHECK(cfg->min_data_rate == 100 && cfg->client_ipv6_prefix == 56);
    CHECK(cfg->timeout_greeting == 11 && cfg->timeout_command == 12 && cfg->timeout_data == 13);
    CHECK(cfg->timeout_tls == 14 && cfg->timeout_upstream == 15);
    CHECK(cfg->timeout_upstream_data == 16 && cfg->timeout_drain == 17.5);
    CHECK(cfg->pool_max_per_worker == 4 && cfg->pool_idle_timeout == 5);
    CHECK_EQ_INT(cfg->pool_max_reuse, 6);
    check_full_listeners(cfg);
    check_full_tls(cfg);
    check_full_upstreams(cfg);
    config_free(cfg);
}

/* ---- errors: each names the key path and a file:line ------------------------------------ */

struct error_case {
    const char *text;
    const char *want; /* the whole message, the path shortened to sluice.lua */
};

/* "%s" in want stands for the temporary directory. */
static void
check_errors(const struct error_case *cases, size_t n)
{
    char        want[sizeof(realdir) + 1024];
    const char *got, *at;
    size_t      i;

    for (i = 0; i < n; i++) {
        at = strstr(cases[i].want, "%s");
        if (at != NULL)
            snprintf(want, sizeof(want), "%.*s%s%s", (int)(at - cases[i].want), cases[i].want,
                     realdir, at + 2);
        else
            snprintf(want, sizeof(want), "%s", cases[i].want);
        got = load_error(cases[i].text);
        CHECK(strcmp(got, want) == 0);
        if (strcmp(got, want) != 0)
            fprintf(stderr, "  case %zu:\n    got  %s\n    want %s\n", i, got, want);
    }
}

static void
a_bad_value_names_its_key_path_and_line(void)
{
    static const struct error_case cases[] = {
        {WITH("  limits = { max_recipients = -1 },"),
         "sluice.lua:5: limits.max_recipients: expected a positive integer"},
        {WITH("  limits = {\n    max_errors = 3,\n    max_recipients = 1.5 },"),
         "sluice.lua:7: limits.max_recipients: expected a positive integer"},
        {WITH("  limits = { max_message_size = '10M' },"),
         "sluice.lua:5: limits.max_message_size: expected a positive integer"},
        {WITH("  limits = { client_ipv6_prefix = 129 },"),
         "sluice.lua:5: limits.client_ipv6_prefix: expected an integer from 1 to 128"},
        {WITH("  limits = { min_data_rate = 0 },"),
         "sluice.lua:5: limits.min_data_rate: expected a positive integer"},
        {WITH("  timeouts = { data = 0 },"),
         "sluice.lua:5: timeouts.data: expected a positive number of seconds"},
        {WITH("  timeouts = { command = 300000 },"),
         "sluice.lua:5: timeouts.command: expected at most 86400 seconds"},
        {WITH("  pool = { idle_timeout = -1 },"),
         "sluice.lua:5: pool.idle_timeout: expected a positive number of seconds"},
        {WITH("  workers = -1,"), "sluice.lua:5: workers: expected an integer from 0 to 1024"},
        {WITH("  hostname = 'mail example',"), "sluice.lua:5: hostname: expected a host name"},
        {WITH("  user = '',"), "sluice.lua:5: user: expected a non-empty string"},
        {WITH("  user = 'a\\r\\nb',"), "sluice.lua:5: user: must not contain control characters"},
        {WITH("  insecure = 'yes',"), "sluice.lua:5: insecure: expected true or false"},
        {WITH("  log_level = 'verbose',"),
         "sluice.lua:5: log_level: expected 'debug', 'info', 'notice', 'warning' or 'err'"},
        {WITH("  limits = 5,"), "sluice.lua:5: limits: expected a table"},
    };

    check_errors(cases, sizeof(cases) / sizeof(cases[0]));
}

/* Unset, the share holds two of the largest messages (at least 64 MiB) and the total four
 * shares (at least 256 MiB); set, they must hold one message and each other. */
static void
the_inflight_budget_follows_max_message_size_unless_set(void)
{
    static const struct {
        const char *limits;
        size_t      total, share;
    } cases[] = {
        {"max_message_size = 40 * 1024 * 1024",
         4 * 2 * (40u * 1024 * 1024 + 131072), 2 * (40u * 1024 * 1024 + 131072)},
        {"max_inflight_bytes = 32 * 1024 * 1024", 32u * 1024 * 1024, 32u * 1024 * 1024},
        {"max_inflight_bytes_per_client = 100 * 1024 * 1024", 400u * 1024 * 1024,
         100u * 1024 * 1024},
        {"max_message_size = 1000000, max_inflight_bytes = 3000000, "
         "max_inflight_bytes_per_client = 1131072", 3000000, 1131072},
    };
    char           text[1024], err[1024];
    struct config *cfg;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(text, sizeof(text), WITH("  limits = { %s },"), cases[i].limits);
        cfg = load(text, err, sizeof(err));
        CHECK(cfg != NULL);
        if (cfg == NULL) {
            fprintf(stderr, "  case %zu: %s\n", i, err);
            continue;
        }
        CHECK_EQ_INT(cfg->max_inflight_bytes, cases[i].total);
        CHECK_EQ_INT(cfg->max_inflight_bytes_per_client, cases[i].share);
        config_free(cfg);
    }
}

static void
an_inflight_budget_too_small_for_one_message_is_refused(void)
{
    static const struct error_case cases[] = {
        {WITH("  limits = { max_inflight_bytes_per_client = 1024 * 1024 },"),
         "sluice.lua:5: limits.max_inflight_bytes_per_client: must hold one message of "
         "max_message_size + 131072 octets"},
        {WITH("  limits = { max_message_size = 1000000,\n"
              "    max_inflight_bytes = 1000000 },"),
         "sluice.lua:6: limits.max_inflight_bytes: must hold one message of "
         "max_message_size + 131072 octets"},
        {WITH("  limits = { max_inflight_bytes = 64 * 1024 * 1024,\n"
              "    max_inflight_bytes_per_client = 65 * 1024 * 1024 },"),
         "sluice.lua:6: limits.max_inflight_bytes_per_client: must not be larger than "
         "max_inflight_bytes"},
        {WITH("  limits = { max_inflight_bytes = 0 },"),
         "sluice.lua:5: limits.max_inflight_bytes: expected a positive integer"},
    };

    check_errors(cases, sizeof(cases) / sizeof(cases[0]));
}

static void
an_unknown_key_is_refused_wherever_it_is(void)
{
    static const struct error_case cases[] = {
        {WITH("  workerz = 2,"), "sluice.lua:5: workerz: unknown key"},
        {WITH("  limits = { max_recipientz = 5 },"),
         "sluice.lua:5: limits.max_recipientz: unknown key"},
        {"return {\n  listeners = { { name = 'a', address = '127.0.0.1', port = 1,\n"
         "    tls = 'implicit', sasl_mechs = {} } },\n" CERTS UPSTREAM "}\n",
         "sluice.lua:3: listeners[1].sasl_mechs: unknown key"},
        {WITH("  tls2 = {},"), "sluice.lua:5: tls2: unknown key"},
        {WITH("  upstreams = { default = { { host = 'a', password = 'x' } } },"),
         "sluice.lua:5: upstreams.default[1].password: unknown key"},
        {"return { 1 }", "sluice.lua:1: unexpected list entry [1] (expected named keys)"},
    };

    check_errors(cases, sizeof(cases) / sizeof(cases[0]));
}

static void
lua_errors_keep_luas_own_file_and_line(void)
{
    static const struct error_case cases[] = {
        {"local x = 1\nerror('boom')\n", "sluice.lua:2: boom"},
        {"local x = 1\n\nerror('no position', 0)\n", "sluice.lua:3: no position"},
        {"error({})\n", "sluice.lua:1: error object is a table value"},
        {"return 5\n", "sluice.lua:1: the file must return a table, not a number value"},
        {"local t = {}\nreturn t.a.b\n", "sluice.lua:2: attempt to index field 'a' (a nil value)"},
        {"dofile('/etc/passwd')\n",
         "sluice.lua:1: attempt to call global 'dofile' (a nil value)"},
        {"return { hostname = os.getenv('HOST') }\n",
         "sluice.lua:1: attempt to index global 'os' (a nil value)"},
        {"local n = 0\nwhile true do n = n + 1 end\n",
         "sluice.lua:2: the configuration ran for too long (an endless loop?)"},
    };
    const char *got = load_error("return {\n  x = ,\n}\n");

    check_errors(cases, sizeof(cases) / sizeof(cases[0]));
    CHECK(strncmp(got, "sluice.lua:2: ", 14) == 0); /* a syntax error: Lua's own words */
}

/* Listeners on lines 3 and 4 */
#define TWO_LISTENERS(a, b)                                                             \
    "return {\n  listeners = {\n    { " a " },\n    { " b " },\n  },\n" CERTS UPSTREAM "}\n"
#define ONE_LISTENER(a) "return {\n  listeners = { { " a " } },\n" CERTS UPSTREAM "}\n"

static void
listener_rules_are_enforced(void)
{
    static const struct error_case cases[] = {
        {"return {\n  listeners = { { name = 'a', address = '::1', port = 25, tls = 'none' } },\n"
         UPSTREAM "}\n",
         "sluice.lua:2: listeners[1].tls: 'none' is only allowed with insecure = true"},
        {"return {\n" LISTEN_TLS UPSTREAM "}\n",
         "sluice.lua:2: listeners[1].tls: needs tls.certificates"},
        {TWO_LISTENERS("name = 'a', address = '*', port = 1, tls = 'implicit'",
                       "name = 'b', address = '::1', port = 0, tls = 'implicit'"),
         "sluice.lua:4: listeners[2].port: expected an integer from 1 to 65535"},
        {TWO_LISTENERS("name = 'a', address = '*', port = 1, tls = 'implicit'",
                       "name = 'b', address = '::1', port = 1, tls = 'implicit'"),
         "sluice.lua:4: listeners[2].port: 1 is already used by listener 'a' on the same "
         "address"},
        {TWO_LISTENERS("name = 'a', address = '::1', port = 1, tls = 'implicit'",
                       "name = 'a', address = '::1', port = 2, tls = 'implicit'"),
         "sluice.lua:4: listeners[2].name: another listener has this name"},
        {TWO_LISTENERS("name = 'a', address = '::1', port = 1, tls = 'implicit'",
                       "name = 'b', address = '::1', tls = 'implicit'"),
         "sluice.lua:2: listeners[2].port: required"}, /* the list's line: best effort */
        {ONE_LISTENER("name = 'a', address = { '::1', '10.0.0.256' }, port = 1, tls = 'implicit'"),
         "sluice.lua:2: listeners[1].address[2]: expected an IP address or '*', not "
         "'10.0.0.256'"},
        {ONE_LISTENER("name = 'a', address = '::1', port = 1, tls = 'implicit',\n"
                      "    sasl = { 'PLAIN', 'CRAM-MD5' }"),
         "sluice.lua:3: listeners[1].sasl[2]: expected 'PLAIN', 'LOGIN', 'XOAUTH2' or "
         "'OAUTHBEARER'"},
        {ONE_LISTENER("name = 'a', address = '::1', port = 1, tls = 'tls'"),
         "sluice.lua:2: listeners[1].tls: expected 'none', 'starttls' or 'implicit'"},
        {"return {\n  listeners = {},\n" CERTS UPSTREAM "}\n",
         "sluice.lua:2: listeners: expected a non-empty list"},
        {"return {\n" CERTS UPSTREAM "}\n", "sluice.lua:1: listeners: required"},
    };

    check_errors(cases, sizeof(cases) / sizeof(cases[0]));
}

static void
proxy_protocol_needs_a_trusted_list_of_networks(void)
{
    static const struct error_case cases[] = {
        {ONE_LISTENER("name = 'a', address = '::1', port = 1, tls = 'implicit',\n"
                      "    proxy_protocol = true"),
         "sluice.lua:2: listeners[1].proxy_trusted: required"},
        {ONE_LISTENER("name = 'a', address = '::1', port = 1, tls = 'implicit',\n"
                      "    proxy_trusted = { '::1' }"),
         "sluice.lua:3: listeners[1].proxy_trusted: needs proxy_protocol = true"},
        {ONE_LISTENER("name = 'a', address = '::1', port = 1, tls = 'implicit',\n"
                      "    proxy_protocol = true, proxy_trusted = { '10.0.0.0/8', '10.0.0.1/8' }"),
         "sluice.lua:3: listeners[1].proxy_trusted[2]: expected a network like '10.0.0.0/8' "
         "or an address, not '10.0.0.1/8'"},
        {ONE_LISTENER("name = 'a', address = '::1', port = 1, tls = 'implicit',\n"
                      "    proxy_protocol = 'yes', proxy_trusted = { '::1' }"),
         "sluice.lua:3: listeners[1].proxy_protocol: expected true or false"},
        {ONE_LISTENER("name = 'a', address = '::1', port = 1, tls = 'implicit',\n"
                      "    proxy_protocol = true, proxy_trusted = '::1', proxy_timeout = 0"),
         "sluice.lua:3: listeners[1].proxy_timeout: expected a positive number of seconds"},
    };
    char           err[1024] = "";
    struct config *cfg;

    check_errors(cases, sizeof(cases) / sizeof(cases[0]));
    cfg = load(ONE_LISTENER("name = 'a', address = '::1', port = 1, tls = 'implicit',\n"
                            "    proxy_protocol = true, proxy_trusted = { '127.0.0.1', "
                            "'10.0.0.0/8' }, proxy_timeout = 2.5"),
               err, sizeof(err));
    CHECK(cfg != NULL);
    if (cfg == NULL)
        return;
    CHECK(cfg->listeners[0].proxy_protocol);
    CHECK_EQ_INT(cfg->listeners[0].n_proxy_trusted, 2);
    CHECK(cidr_contains(&cfg->listeners[0].proxy_trusted[1], "10.1.2.3"));
    CHECK(!cidr_contains(&cfg->listeners[0].proxy_trusted[0], "127.0.0.2"));
    CHECK(cfg->listeners[0].proxy_timeout == 2.5);
    config_free(cfg);
    cfg = load(MINIMAL, err, sizeof(err));
    CHECK(cfg != NULL && !cfg->listeners[0].proxy_protocol);
    CHECK(cfg != NULL && cfg->listeners[0].proxy_timeout == 5);
    config_free(cfg);
}

static void
tls_rules_are_enforced(void)
{
    static const struct error_case cases[] = {
        {"return {\n" LISTEN_TLS
         "  tls = { certificates = { { cert = 'nope.crt', key = 'a.key' } } },\n"
         UPSTREAM "}\n",
         "sluice.lua:3: tls.certificates[1].cert: cannot read '%s/nope.crt': "
         "No such file or directory"},
        {"return {\n" LISTEN_TLS "  tls = { certificates = { { cert = 'a.crt' } } },\n"
         UPSTREAM "}\n",
         "sluice.lua:3: tls.certificates[1].key: required"},
        {"return {\n" LISTEN_TLS "  tls = { certificates = { { cert = 'a.crt', key = 'a.key' } },\n"
         "    min_version = '1.1' },\n" UPSTREAM "}\n",
         "sluice.lua:4: tls.min_version: expected '1.2' or '1.3'"},
        {"return {\n" LISTEN_TLS "  tls = { certificates = { { cert = 'a.crt', key = 'a.key' } },\n"
         "    sni = { ['bad name'] = { { cert = 'a.crt', key = 'a.key' } } } },\n" UPSTREAM "}\n",
         "sluice.lua:4: tls.sni['bad name']: expected a host name or '*.domain'"},
        {"return {\n" LISTEN_TLS "  tls = { certificates = { { cert = 'a.crt', key = 'a.key' } },\n"
         "    ciphers = 'A B' },\n" UPSTREAM "}\n",
         "sluice.lua:4: tls.ciphers: expected names separated by ':' without spaces"},
    };

    check_errors(cases, sizeof(cases) / sizeof(cases[0]));
}

static void
upstream_and_route_rules_are_enforced(void)
{
    static const struct error_case cases[] = {
        {"return {\n" LISTEN_TLS CERTS "}\n", "sluice.lua:1: upstreams: required"},
        {"return {\n" LISTEN_TLS CERTS "  upstreams = { other = { { host = 'a' } } },\n}\n",
         "sluice.lua:4: upstreams.default: required"},
        {"return {\n" LISTEN_TLS CERTS "  upstreams = { default = { { port = 25 } } },\n}\n",
         "sluice.lua:4: upstreams.default[1].host: required"},
        {"return {\n" LISTEN_TLS CERTS "  upstreams = { default = {} },\n}\n",
         "sluice.lua:4: upstreams.default: expected a non-empty list"},
        {"return {\n" LISTEN_TLS CERTS "  upstreams = { default = { { host = 'a', tls = 'none',\n"
         "    auth = { user = 'u', password = 'p' } } } },\n}\n",
         "sluice.lua:5: upstreams.default[1].auth: sends a password in clear: needs tls = "
         "'starttls' or 'implicit' (or insecure = true)"},
        {"return {\n" LISTEN_TLS CERTS "  upstreams = {\n    default = { { host = 'a' } },\n"
         "    b = { { host = 'x', ca_file = 'missing.pem' } } },\n}\n",
         "sluice.lua:6: upstreams.b[1].ca_file: cannot read '%s/missing.pem': "
         "No such file or directory"},
        {WITH("  routes = { ['Example.NET'] = 'nope' },"),
         "sluice.lua:5: routes['Example.NET']: no upstream set named 'nope'"},
        {WITH("  routes = { 'default' },"),
         "sluice.lua:5: routes: expected { ['example.net'] = 'set name', ... }"},
    };
    const char *got;

    check_errors(cases, sizeof(cases) / sizeof(cases[0]));
    /* the second of two spellings of one domain, in whatever order Lua walks them */
    got = load_error(WITH("  routes = { ['a.example'] = 'default', ['A.Example'] = 'default' },"));
    CHECK(strcmp(got, "sluice.lua:5: routes['a.example']: the same domain appears twice") == 0 ||
          strcmp(got, "sluice.lua:5: routes['A.Example']: the same domain appears twice") == 0);
}

static void
an_unreadable_file_is_named_in_the_error(void)
{
    char           err[512] = "";
    char           p[256];
    struct config *cfg;

    snprintf(p, sizeof(p), "%s/missing.lua", dir);
    cfg = config_load(p, err, sizeof(err));
    CHECK(cfg == NULL);
    CHECK(strstr(err, p) == err && strstr(err, "No such file or directory") != NULL);
}

/* ---- paths and routes -------------------------------------------------------------------- */

static void
relative_paths_resolve_against_the_files_directory(void)
{
    char           err[512] = "", outside[4200];
    struct config *cfg;

    cfg = load("return {\n" LISTEN_TLS
               "  tls = { certificates = {\n"
               "    { cert = './certs/../a.crt', key = 'certs/b.key' } } },\n"
               "  users_dir = '../users.d',\n"
               "  upstreams = { default = { { host = 'a', ca_file = 'certs/../ca.pem' } } },\n"
               "}\n",
               err, sizeof(err));
    CHECK(cfg != NULL);
    if (cfg == NULL) {
        fprintf(stderr, "%s\n", err);
        return;
    }
    snprintf(outside, sizeof(outside), "%s", realdir);
    *strrchr(outside, '/') = '\0';
    strcat(outside, "/users.d");
    CHECK(strcmp(cfg->tls.certs[0].cert_file, in_dir("a.crt")) == 0);
    CHECK(strcmp(cfg->tls.certs[0].key_file, in_dir("certs/b.key")) == 0);
    CHECK(strcmp(cfg->users_dir, outside) == 0);
    CHECK(strcmp(cfg->upstreams[0].servers[0].ca_file, in_dir("ca.pem")) == 0);
    config_free(cfg);
}

static void
a_relative_config_path_still_gives_absolute_paths(void)
{
    char           err[512] = "", cwd[4096];
    struct config *cfg;

    test_write_file(dir, "sluice.lua", MINIMAL);
    if (getcwd(cwd, sizeof(cwd)) == NULL || chdir(dir) != 0)
        return;
    cfg = config_load("./sluice.lua", err, sizeof(err));
    CHECK(cfg != NULL);
    if (cfg != NULL) {
        CHECK(strcmp(cfg->tls.certs[0].cert_file, in_dir("a.crt")) == 0);
        CHECK(strcmp(cfg->path, "./sluice.lua") == 0);
    }
    config_free(cfg);
    cfg = load("return {\n" LISTEN_TLS
               "  tls = { certificates = { { cert = 'x.crt', key = 'a.key' } } },\n"
               UPSTREAM "}\n", err, sizeof(err));
    CHECK(cfg == NULL);
    if (chdir(cwd) != 0)
        perror(cwd);
}

static void
routes_match_the_sender_domain_ignoring_case(void)
{
    char           err[512] = "";
    struct config *cfg = load(full_config, err, sizeof(err));
    const char    *mail = "ann@EXAMPLE.net>";

    CHECK(cfg != NULL);
    if (cfg == NULL)
        return;
    CHECK_EQ_INT(config_route_for_domain(cfg, "example.net", 11), 1);
    CHECK_EQ_INT(config_route_for_domain(cfg, "Example.NET", 11), 1);
    CHECK_EQ_INT(config_route_for_domain(cfg, mail + 4, 11), 1); /* not NUL-terminated */
    CHECK_EQ_INT(config_route_for_domain(cfg, "example.netx", 12), 0);
    CHECK_EQ_INT(config_route_for_domain(cfg, "example.ne", 10), 0);
    CHECK_EQ_INT(config_route_for_domain(cfg, "sub.example.net", 15), 0); /* exact only */
    CHECK_EQ_INT(config_route_for_domain(cfg, "", 0), 0);
    CHECK_EQ_INT(config_route_for_domain(cfg, "Z.EXAMPLE.ORG", 13), 2);
    CHECK_EQ_INT(cfg->routes[0].upstream, 1); /* sorted: example.net, z.example.org */
    CHECK(strcmp(cfg->routes[0].sender_domain, "example.net") == 0);
    config_free(cfg);
}

/* ---- domains[name].upstream and upstream_auth ------------------------------------------- */

#define TWO_SETS                                                                       \
    "  upstreams = { default = { { host = '127.0.0.1', port = 2525, tls = 'none' } },\n" \
    "                other = { { host = '127.0.0.2', port = 2526, tls = 'none',\n"      \
    "                            auth = { user = 'set', password = 'setpw' } } } },\n"
#define DOMAINS(extra)                                                                 \
    "return {\n  insecure = true,\n" LISTEN_TLS CERTS TWO_SETS extra "\n}\n"

static void
a_domain_names_its_upstream_set_and_credentials(void)
{
    char           err[512] = "";
    struct config *cfg = load(DOMAINS(
        "  routes = { ['r.example'] = 'other' },\n"
        "  domains = { ['a.example'] = { upstream = 'other' },\n"
        "              ['b.example'] = { upstream = 'other',\n"
        "                                upstream_auth = { user = 'b', password = 'bpw' } },\n"
        "              ['r.example'] = { upstream_auth = { user = 'r', password = 'rpw' } },\n"
        "              ['c.example'] = { upstream_auth = { user = 'c', password = 'cpw' } },\n"
        "              ['d.example'] = {} },"), err, sizeof(err));
    int            b, c, r;

    CHECK(cfg != NULL);
    if (cfg == NULL) {
        fprintf(stderr, "%s\n", err);
        return;
    }
    CHECK_EQ_INT(config_route_for_domain(cfg, "a.example", 9), 1);
    CHECK_EQ_INT(config_route_for_domain(cfg, "d.example", 9), 0);
    b = config_route_for_domain(cfg, "B.example", 9);
    c = config_route_for_domain(cfg, "c.example", 9);
    r = config_route_for_domain(cfg, "r.example", 9);
    CHECK(b >= 2 && c >= 2 && r >= 2 && b != c && c != r && b != r);
    CHECK_EQ_INT(cfg->n_upstreams, 5);
    if (b >= 2 && c >= 2 && r >= 2) {
        /* a set of the domain's own: the base set's servers, the domain's credentials */
        CHECK(strcmp(cfg->upstreams[b].name, "other/b.example") == 0);
        CHECK(strcmp(cfg->upstreams[b].servers[0].host, "127.0.0.2") == 0);
        CHECK_EQ_INT(cfg->upstreams[b].servers[0].port, 2526);
        CHECK(strcmp(cfg->upstreams[b].servers[0].auth_user, "b") == 0);
        CHECK(strcmp(cfg->upstreams[b].servers[0].auth_password, "bpw") == 0);
        CHECK(strcmp(cfg->upstreams[c].name, "default/c.example") == 0);
        CHECK(strcmp(cfg->upstreams[c].servers[0].auth_user, "c") == 0);
        CHECK(strcmp(cfg->upstreams[r].name, "other/r.example") == 0); /* routes' set */
        CHECK(strcmp(cfg->upstreams[r].servers[0].auth_user, "r") == 0);
    }
    CHECK(strcmp(cfg->upstreams[1].servers[0].auth_user, "set") == 0); /* untouched */
    config_free(cfg);
}

static void
a_domains_upstream_password_may_come_from_a_file(void)
{
    char           err[512] = "", text[2048];
    struct config *cfg;
    int            s;

    test_write_file(dir, "relay.secret", "filepw\nsecond line\n");
    snprintf(text, sizeof(text), DOMAINS("  domains = { ['a.example'] = { upstream_auth = "
                                         "{ user = 'a', password_file = '%s' } } },"),
             in_dir("relay.secret"));
    cfg = load(text, err, sizeof(err));
    CHECK(cfg != NULL);
    if (cfg == NULL)
        return;
    s = config_route_for_domain(cfg, "a.example", 9);
    CHECK(strcmp(cfg->upstreams[s].servers[0].auth_password, "filepw") == 0);
    config_free(cfg);
}

static void
domain_upstream_rules_are_enforced(void)
{
    static const struct error_case cases[] = {
        {DOMAINS("  domains = { ['a.example'] = { upstream = 'nope' } },"),
         "sluice.lua:8: domains['a.example'].upstream: no upstream set named 'nope'"},
        {DOMAINS("  routes = { ['a.example'] = 'other' },\n"
                 "  domains = { ['a.example'] = { upstream = 'other' } },"),
         "sluice.lua:9: domains['a.example'].upstream: routes names this domain too: give one "
         "of them (routes is the older spelling)"},
        {DOMAINS("  domains = { ['a.example'] = { upstream_auth = { password = 'p' } } },"),
         "sluice.lua:8: domains['a.example'].upstream_auth.user: required"},
        {DOMAINS("  domains = { ['a.example'] = { upstream_auth = { user = 'u' } } },"),
         "sluice.lua:8: domains['a.example'].upstream_auth.password: required"},
        {DOMAINS("  domains = { ['a.example'] = { upstream_auth = { user = 'u', pass = 'p' } } },"),
         "sluice.lua:8: domains['a.example'].upstream_auth.pass: unknown key"},
        {"return {\n" LISTEN_TLS CERTS UPSTREAM
         "  domains = { ['a.example'] = { upstream_auth = { user = 'u', password = 'p' } } },\n}\n",
         "sluice.lua:5: domains['a.example'].upstream_auth: would send a password in clear to "
         "127.0.0.1 (upstreams.default has tls = 'none'; insecure = true allows it)"},
    };

    check_errors(cases, sizeof(cases) / sizeof(cases[0]));
}

/* ---- the policy engine's keys ------------------------------------------------------------ */

static void
policy_keys_default_to_no_policies_and_no_domains(void)
{
    char           err[512] = "";
    struct config *cfg = load(MINIMAL, err, sizeof(err));

    CHECK(cfg != NULL);
    if (cfg == NULL)
        return;
    CHECK_EQ_INT(cfg->n_policies, 0);
    CHECK(cfg->policies != NULL && cfg->policies[0] == NULL);
    CHECK(cfg->hook_timeout == HOOK_TIMEOUT);
    CHECK(cfg->audit_log == NULL);
    CHECK(strcmp(cfg->lua_dir, SLUICE_SOURCE_DIR "/lua") == 0);
    CHECK_EQ_INT(cfg->shdict_size, SHDICT_SIZE);
    CHECK_EQ_INT(cfg->n_domains, 0);
    CHECK(config_domain_find(cfg, "example.org") == NULL);
    config_free(cfg);
}

static void
check_policy_domains(const struct config *cfg)
{
    const struct config_domain *d;

    CHECK_EQ_INT(cfg->n_domains, 2);
    d = config_domain_find(cfg, "EXAMPLE.org");
    CHECK(d != NULL && strcmp(d->name, "example.org") == 0);
    if (d == NULL)
        return;
    CHECK(!d->enabled && d->allow_subdomains && d->allow_null_sender && !d->check_header_from);
    CHECK(strcmp(d->auth[0], "file") == 0 && d->auth[1] == NULL);
    CHECK_EQ_INT(d->n_senders, 1);
    CHECK(strcmp(d->senders[0].user, "alice@example.org") == 0);
    CHECK(strcmp(d->senders[0].addresses[1], "Alice@example.net") == 0);
    CHECK_EQ_INT(d->limits.messages_per_hour, 100);
    CHECK_EQ_INT(d->limits.user_messages_per_hour, 0);
    d = config_domain_find(cfg, "example.net");
    CHECK(d != NULL);
    if (d == NULL)
        return;
    /* the header From: check is on unless the domain opts out */
    CHECK(d->enabled && !d->allow_subdomains && !d->allow_null_sender && d->check_header_from);
    CHECK(strcmp(d->auth[0], "file") == 0 && d->auth[1] == NULL);
    CHECK_EQ_INT(d->n_senders, 0);
}

static void
policy_keys_are_loaded_and_paths_resolved(void)
{
    char           err[512] = "";
    struct config *cfg;

    test_write_file(dir, "p1.lua", "return {}\n");
    test_write_file(dir, "certs/p2.lua", "return {}\n");
    cfg = load(WITH("  policies = { 'p1.lua', 'certs/p2.lua' },\n"
                    "  hook_timeout = 2.5, audit_log = 'audit.log', shdict_size = 1048576,\n"
                    "  lua_dir = '" SLUICE_SOURCE_DIR "/lua',\n"
                    "  domains = {\n"
                    "    ['Example.ORG'] = { enabled = false, auth = { 'file' },\n"
                    "      senders = { ['Alice@Example.org'] = { 'sales@example.org',\n"
                    "                                            'Alice@example.net' } },\n"
                    "      allow_subdomains = true, allow_null_sender = true,\n"
                    "      check_header_from = false, limits = { messages_per_hour = 100 } },\n"
                    "    ['example.net'] = {},\n"
                    "  },"),
               err, sizeof(err));
    CHECK(cfg != NULL);
    if (cfg == NULL) {
        fprintf(stderr, "%s\n", err);
        return;
    }
    CHECK_EQ_INT(cfg->n_policies, 2);
    CHECK(strcmp(cfg->policies[0], in_dir("p1.lua")) == 0);
    CHECK(strcmp(cfg->policies[1], in_dir("certs/p2.lua")) == 0 && cfg->policies[2] == NULL);
    CHECK(cfg->hook_timeout == 2.5);
    CHECK(strcmp(cfg->audit_log, in_dir("audit.log")) == 0);
    CHECK(access(cfg->audit_log, W_OK) == 0); /* created by the check */
    CHECK_EQ_INT(cfg->shdict_size, 1048576);
    check_policy_domains(cfg);
    config_free(cfg);
}

static void
policy_key_rules_are_enforced(void)
{
    static const struct error_case cases[] = {
        {WITH("  policies = { 'missing.lua' },"),
         "sluice.lua:5: policies[1]: cannot read '%s/missing.lua': No such file or directory"},
        {WITH("  policies = 'p1.lua',"), "sluice.lua:5: policies: expected a table"},
        {WITH("  hook_timeout = 0,"),
         "sluice.lua:5: hook_timeout: expected a positive number of seconds"},
        {WITH("  hook_timeout = 7200,"),
         "sluice.lua:5: hook_timeout: expected at most 3600 seconds"},
        {WITH("  audit_log = 'nodir/audit.log',"),
         "sluice.lua:5: audit_log: cannot open '%s/nodir/audit.log' for appending: "
         "No such file or directory"},
        {WITH("  lua_dir = 'certs',"),
         "sluice.lua:5: lua_dir: cannot read '%s/certs/sluice/init.lua': "
         "No such file or directory"},
        {WITH("  domains = { 'example.org' },"),
         "sluice.lua:5: domains: expected { ['example.org'] = { ... }, ... }"},
        {WITH("  domains = { ['example.org'] = { enable = true } },"),
         "sluice.lua:5: domains['example.org'].enable: unknown key"},
        {WITH("  domains = { ['example.org'] = true },"),
         "sluice.lua:5: domains['example.org']: expected a table of settings"},
        {WITH("  domains = { ['example.org'] = { auth = { 'kerberos' } } },"),
         "sluice.lua:5: domains['example.org'].auth[1]: expected 'file', 'ldap' or 'oauth2', "
         "not 'kerberos'"},
        {WITH("  domains = { ['example.org'] = { limits = { messages_per_hour = 0 } } },"),
         "sluice.lua:5: domains['example.org'].limits.messages_per_hour: expected a positive "
         "integer"},
        {WITH("  domains = { ['example.org'] = { limits = { per_day = 1 } } },"),
         "sluice.lua:5: domains['example.org'].limits.per_day: unknown key"},
        {WITH("  domains = { ['example.org'] = { senders = { alice = { 'a@b' } } } },"),
         "sluice.lua:5: domains['example.org'].senders.alice: expected a user's address as "
         "the key"},
        {WITH("  domains = { ['example.org'] = { allow_subdomains = 'yes' } },"),
         "sluice.lua:5: domains['example.org'].allow_subdomains: expected true or false"},
    };
    const char *got;

    test_write_file(dir, "p1.lua", "return {}\n");
    check_errors(cases, sizeof(cases) / sizeof(cases[0]));
    got = load_error(WITH("  domains = { ['a.example'] = {}, ['A.Example'] = {} },"));
    CHECK(strcmp(got, "sluice.lua:5: domains['a.example']: the same domain appears twice") == 0 ||
          strcmp(got, "sluice.lua:5: domains['A.Example']: the same domain appears twice") == 0);
    if (strstr(got, "appears twice") == NULL)
        fprintf(stderr, "  got %s\n", got);
}

/* ---- zones ------------------------------------------------------------------------------ */

static void
zones_default_to_the_built_in_ones(void)
{
    static const struct {
        const char *name;
        size_t      size;
        bool        evict;
    } want[CONFIG_ZONE_N_BUILTIN] = {
        {"default", SHDICT_SIZE, true},          {"limits", ZONE_LIMITS_SIZE, true},
        {"blocks", ZONE_BLOCKS_SIZE, false},     {"denylist", ZONE_DENYLIST_SIZE, false},
        {"auth_cache", ZONE_AUTH_CACHE_SIZE, true}, {"jwks", ZONE_JWKS_SIZE, true},
    };
    char           err[512] = "";
    struct config *cfg = load(MINIMAL, err, sizeof(err));

    CHECK(cfg != NULL);
    if (cfg == NULL)
        return;
    CHECK_EQ_INT(cfg->n_zones, CONFIG_ZONE_N_BUILTIN);
    for (size_t i = 0; i < CONFIG_ZONE_N_BUILTIN && i < cfg->n_zones; i++) {
        CHECK(strcmp(cfg->zones[i].name, want[i].name) == 0);
        CHECK_EQ_INT(cfg->zones[i].size, want[i].size);
        CHECK(cfg->zones[i].evict == want[i].evict);
    }
    CHECK(config_zone_find(cfg, "blocks", 6) == &cfg->zones[CONFIG_ZONE_BLOCKS]);
    CHECK(config_zone_find(cfg, "block", 5) == NULL);
    config_free(cfg);
}

static void
zones_are_sized_and_added_by_the_file(void)
{
    char           err[512] = "";
    struct config *cfg;

    cfg = load(WITH("  shdict_size = 1048576,\n"
                    "  zones = { limits = { size = '2m' }, blocks = { size = 65536 },\n"
                    "    zgrey = { size = '512K', evict = false }, agrey = { size = '1g' },\n"
                    "    auth_cache = { evict = false }, denylist = { evict = false } },"),
               err, sizeof(err));
    CHECK(cfg != NULL);
    if (cfg == NULL) {
        fprintf(stderr, "%s\n", err);
        return;
    }
    CHECK_EQ_INT(cfg->n_zones, CONFIG_ZONE_N_BUILTIN + 2);
    CHECK_EQ_INT(cfg->zones[CONFIG_ZONE_DEFAULT].size, 1048576); /* shdict_size */
    CHECK_EQ_INT(cfg->zones[CONFIG_ZONE_LIMITS].size, 2 * 1024 * 1024);
    CHECK(cfg->zones[CONFIG_ZONE_LIMITS].evict);
    CHECK_EQ_INT(cfg->zones[CONFIG_ZONE_BLOCKS].size, 65536);
    CHECK(!cfg->zones[CONFIG_ZONE_BLOCKS].evict);
    CHECK(!cfg->zones[CONFIG_ZONE_AUTH_CACHE].evict);
    /* the file's own, after the built-in ones, sorted so that a reload compares them */
    CHECK(strcmp(cfg->zones[CONFIG_ZONE_N_BUILTIN].name, "agrey") == 0);
    CHECK_EQ_INT(cfg->zones[CONFIG_ZONE_N_BUILTIN].size, 1024u * 1024 * 1024);
    CHECK(cfg->zones[CONFIG_ZONE_N_BUILTIN].evict);
    CHECK(strcmp(cfg->zones[CONFIG_ZONE_N_BUILTIN + 1].name, "zgrey") == 0);
    CHECK_EQ_INT(cfg->zones[CONFIG_ZONE_N_BUILTIN + 1].size, 512 * 1024);
    CHECK(!cfg->zones[CONFIG_ZONE_N_BUILTIN + 1].evict);
    config_free(cfg);
    cfg = load(WITH("  zones = { default = { size = '2m' } },"), err, sizeof(err));
    CHECK(cfg != NULL && cfg->shdict_size == 2 * 1024 * 1024);
    config_free(cfg);
}

static void
zone_rules_are_enforced(void)
{
    static const struct error_case cases[] = {
        {WITH("  zones = { blocks = { evict = true } },"),
         "sluice.lua:5: zones.blocks.evict: this zone holds security state, which is never "
         "evicted: leave evict out, or false"},
        {WITH("  zones = { denylist = { size = '4m', evict = true } },"),
         "sluice.lua:5: zones.denylist.evict: this zone holds security state, which is never "
         "evicted: leave evict out, or false"},
        {WITH("  zones = { limits = { size = '16k' } },"),
         "sluice.lua:5: zones.limits.size: expected octets, or a size like '512k', '8m' or "
         "'1g', from 32k to 64g"},
        {WITH("  zones = { limits = { size = '1.5m' } },"),
         "sluice.lua:5: zones.limits.size: expected octets, or a size like '512k', '8m' or "
         "'1g', from 32k to 64g"},
        {WITH("  zones = { limits = { size = '8mb' } },"),
         "sluice.lua:5: zones.limits.size: expected octets, or a size like '512k', '8m' or "
         "'1g', from 32k to 64g"},
        {WITH("  zones = { limits = { size = 100000.5 } },"),
         "sluice.lua:5: zones.limits.size: expected octets, or a size like '512k', '8m' or "
         "'1g', from 32k to 64g"},
        {WITH("  zones = { mine = { evict = true } },"), "sluice.lua:5: zones.mine.size: required"},
        {WITH("  zones = { Mine = { size = '1m' } },"),
         "sluice.lua:5: zones.Mine: expected a zone name: a lowercase letter, then lowercase "
         "letters, digits or '_', at most 32 octets"},
        {WITH("  zones = { limits = { size = '1m', lru = true } },"),
         "sluice.lua:5: zones.limits.lru: unknown key"},
        {WITH("  zones = { limits = '1m' },"),
         "sluice.lua:5: zones.limits: expected a table: { size = '1m', evict = true }"},
        {WITH("  zones = { limits = { evict = 'no' } },"),
         "sluice.lua:5: zones.limits.evict: expected true or false"},
        {WITH("  shdict_size = 1048576,\n  zones = { default = { size = '1m' } },"),
         "sluice.lua:6: zones.default: shdict_size is the size of this zone: give only one of "
         "them"},
        {WITH("  zones = { 'limits' },"),
         "sluice.lua:5: zones: expected { limits = { size = '8m', evict = true }, ... }"},
    };

    check_errors(cases, sizeof(cases) / sizeof(cases[0]));
}

static void
config_free_accepts_null(void)
{
    config_free(NULL);
    CHECK(1);
}

static void
make_dir(void)
{
    char p[256];

    dir = test_tmpdir("config");
    if (realpath(dir, realdir) == NULL) {
        perror(dir);
        exit(1);
    }
    snprintf(cfgpath, sizeof(cfgpath), "%s/sluice.lua", dir);
    snprintf(p, sizeof(p), "%s/certs", dir);
    mkdir(p, 0700);
    test_write_file(dir, "a.crt", "");
    test_write_file(dir, "a.key", "");
    test_write_file(dir, "certs/b.crt", "");
    test_write_file(dir, "certs/b.key", "");
    test_write_file(dir, "ca.pem", "");
}

int
main(void)
{
    make_dir();
    RUN(a_minimal_file_gets_every_default);
    RUN(an_upstream_port_defaults_by_its_tls_mode);
    RUN(a_full_file_sets_every_key);
    RUN(a_bad_value_names_its_key_path_and_line);
    RUN(the_inflight_budget_follows_max_message_size_unless_set);
    RUN(an_inflight_budget_too_small_for_one_message_is_refused);
    RUN(an_unknown_key_is_refused_wherever_it_is);
    RUN(lua_errors_keep_luas_own_file_and_line);
    RUN(listener_rules_are_enforced);
    RUN(proxy_protocol_needs_a_trusted_list_of_networks);
    RUN(tls_rules_are_enforced);
    RUN(upstream_and_route_rules_are_enforced);
    RUN(an_unreadable_file_is_named_in_the_error);
    RUN(relative_paths_resolve_against_the_files_directory);
    RUN(a_relative_config_path_still_gives_absolute_paths);
    RUN(routes_match_the_sender_domain_ignoring_case);
    RUN(a_domain_names_its_upstream_set_and_credentials);
    RUN(a_domains_upstream_password_may_come_from_a_file);
    RUN(domain_upstream_rules_are_enforced);
    RUN(policy_keys_default_to_no_policies_and_no_domains);
    RUN(policy_keys_are_loaded_and_paths_resolved);
    RUN(policy_key_rules_are_enforced);
    RUN(zones_default_to_the_built_in_ones);
    RUN(zones_are_sized_and_added_by_the_file);
    RUN(zone_rules_are_enforced);
    RUN(config_free_accepts_null);
    return check_summary();
}
