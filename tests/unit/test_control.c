/* tests/unit/test_control.c: core/daemon/control.c, control_cmd.c and control_token.c -- a real
 * control server on a socket in a temporary directory, with fake daemon ops and real zones:
 * each command's reply, every zone's usage in status, that reset removes exactly the keys
 * of its name in every zone, token deny into the zone denylist (long values bounded, a
 * full zone refused), the socket's mode, the 2 s deadline for a silent client, the line
 * limit, stale and live sockets, and SO_PEERCRED. */
#include "check.h"
#include "config/config.h"
#include "daemon/control.h"
#include "util/log.h"
#include "tmpdir.h"
#include "store/zone.h"

#include <errno.h>
#include <ev.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct fake_daemon {
    unsigned generation;
    int      reloads;      /* calls to fake_reload */
    bool     reload_fails;
    int      held;         /* configurations held and not released */
};

static const char *tmpdir; /* removed at exit (tmpdir.h) */

/* The running configuration the fake daemon hands out: the built-in zones' names, in
 * new_zones_sized()'s order, and the lua_dir the ratelimit and token modules come from. */
static char                lua_dir[4200] = SLUICE_SOURCE_DIR "/lua";
static char                zone_names[CONFIG_ZONE_N_BUILTIN][16] = {
    "default", "limits", "blocks", "denylist", "auth_cache", "jwks"};
static struct config_zone  running_zones[CONFIG_ZONE_N_BUILTIN];
static struct config       running = {.zones = running_zones,
                                      .n_zones = CONFIG_ZONE_N_BUILTIN, .lua_dir = lua_dir};

static const struct config *
fake_config_hold(void *ctx, void **ref)
{
    struct fake_daemon *d = ctx;

    d->held++;
    *ref = d;
    return &running;
}

static void
fake_config_release(void *ctx, void *ref)
{
    struct fake_daemon *d = ctx;

    CHECK(ref == d);
    d->held--;
}

static int
fake_reload(void *ctx, char *msg, size_t msglen)
{
    struct fake_daemon *d = ctx;

    d->reloads++;
    if (d->reload_fails) {
        snprintf(msg, msglen, "/etc/sluice/policies/x.lua:3: '=' expected near 'end'");
        return -1;
    }
    snprintf(msg, msglen, "generation %u", ++d->generation);
    return 0;
}

static void
fake_status(void *ctx, struct control_status *st)
{
    struct fake_daemon *d = ctx;

    st->generation = d->generation;
    st->started = 1700000000.0;
    st->loaded = 1700000100.5;
    st->reloads_ok = 2;
    st->reloads_failed = 1;
    snprintf(st->last_reload_error, sizeof(st->last_reload_error), "x.lua:1: \"bad\"");
    st->workers = 4;
    st->sessions = 7;
    st->sessions_total = 12345678901ull;
    st->messages_relayed = 42;
    st->messages_failed = 3;
    st->auth_ok = 40;
    st->auth_failed = 9;
    st->old_generations = 1;
    st->auth[SASL_MECH_PLAIN][0] = 38;
    st->auth[SASL_MECH_XOAUTH2][0] = 2;
    st->auth[SASL_MECH_LOGIN][1] = 9;
    st->upstreams[0] = (struct control_upstream){.name = "127.0.0.1:25", .open = 3, .idle = 2,
                                                 .waits = 12, .wait_timeouts = 1,
                                                 .connect_failures = 4, .errors = 5};
    st->n_upstreams = 1;
    st->domains[0] = (struct control_domain){.name = "other", .failed = 1};
    st->domains[1] = (struct control_domain){.name = "example.org", .relayed = 41, .failed = 2};
    st->n_domains = 2;
    st->state_names[0] = "NEW";
    st->state_names[1] = "CMD";
    st->states[1] = 7;
    st->n_states = 2;
    st->refused_max_connections = 5;
    st->hook_runs[POLICY_ON_RCPT][2] = 4;
    st->hook_runs[POLICY_ON_RCPT][13] = 1;
    st->hook_sum_us[POLICY_ON_RCPT] = 6001500;
}

static void
sock_path(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", tmpdir, name);
}

static int
connect_to(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct timeval     tv = {.tv_sec = 6};
    int                fd = socket(AF_UNIX, SOCK_STREAM, 0);

    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

/* Read one reply line (without its LF) into buf; its length, or -1. */
static ssize_t
read_reply(int fd, char *buf, size_t cap)
{
    size_t  n = 0;
    ssize_t got;

    while (n + 1 < cap) {
        got = recv(fd, buf + n, cap - n - 1, 0);
        if (got <= 0)
            break;
        n += (size_t)got;
        if (memchr(buf, '\n', n) != NULL)
            break;
    }
    buf[n] = '\0';
    if (n == 0 || buf[n - 1] != '\n')
        return -1;
    buf[--n] = '\0';
    return (ssize_t)n;
}

/* Send line (a LF is added) and read the reply into buf. */
static ssize_t
ask(const char *path, const char *line, char *buf, size_t cap)
{
    int     fd = connect_to(path);
    size_t  len = strlen(line);
    char   *req = malloc(len + 1);
    ssize_t n = -1;

    buf[0] = '\0';
    if (fd < 0 || req == NULL)
        goto out;
    /* One send: the daemon may answer an overlong line and close before a second one,
     * which would then fail with EPIPE and lose the reply. */
    memcpy(req, line, len);
    req[len] = '\n';
    if (send(fd, req, len + 1, MSG_NOSIGNAL) == (ssize_t)(len + 1))
        n = read_reply(fd, buf, cap);
out:
    free(req);
    if (fd >= 0)
        close(fd);
    return n;
}

static bool
has(const char *reply, const char *part)
{
    if (strstr(reply, part) != NULL)
        return true;
    fprintf(stderr, "  no %s in %s\n", part, reply);
    return false;
}

/* The number after "key": in reply, or -1. */
static double
num_after(const char *reply, const char *key)
{
    char        pat[64];
    const char *p;

    snprintf(pat, sizeof(pat), "\"%s\":", key);
    p = strstr(reply, pat);
    return p != NULL ? strtod(p + strlen(pat), NULL) : -1;
}

/* The built-in zones, each of size octets except denylist (deny octets). */
static struct zones *
new_zones_sized(size_t size, size_t deny)
{
    char                names[CONFIG_ZONE_N_BUILTIN][16] = {"default", "limits", "blocks",
                                                            "denylist", "auth_cache", "jwks"};
    struct config_zone  zc[CONFIG_ZONE_N_BUILTIN];
    struct config       cfg = {.zones = zc, .n_zones = CONFIG_ZONE_N_BUILTIN};
    char                err[128];
    struct zones       *zs;

    for (size_t i = 0; i < CONFIG_ZONE_N_BUILTIN; i++)
        zc[i] = (struct config_zone){.name = names[i], .size = size,
                                     .evict = i != CONFIG_ZONE_BLOCKS && i != CONFIG_ZONE_DENYLIST};
    zc[CONFIG_ZONE_DENYLIST].size = deny;
    if ((zs = zones_new(&cfg, err, sizeof(err))) == NULL) {
        fprintf(stderr, "zones_new: %s\n", err);
        abort();
    }
    return zs;
}

static struct zones *
new_zones(void)
{
    return new_zones_sized(1 << 20, 1 << 20);
}

static struct zone *
zone(struct zones *zs, enum config_zone_builtin i)
{
    return zones_at(zs, i);
}

static void
set_num(struct zone *z, const char *key, double num, double ttl)
{
    struct shdict_value v = {.type = SHDICT_NUMBER, .num = num};

    zone_set(z, key, strlen(key), &v, ttl, ev_time());
}

static bool
exists(struct zone *z, const char *key)
{
    struct shdict_value v = {0};

    return zone_get(z, key, strlen(key), &v, ev_time()) == SHDICT_OK;
}

/* A served control socket at tmpdir/name with the fake daemon and zones (may be NULL). */
static struct control *
serve(const char *name, struct fake_daemon *fd, struct zones *zs, char *path, size_t len)
{
    struct control_ops ops = {.ctx = fd, .reload = fake_reload, .status = fake_status,
                              .config_hold = fake_config_hold,
                              .config_release = fake_config_release};
    char               err[256] = "";
    struct control    *c;

    sock_path(path, len, name);
    c = control_open(path, err, sizeof(err));
    if (c == NULL) {
        fprintf(stderr, "control_open: %s\n", err);
        abort();
    }
    if (control_start(c, &ops, zs, NULL) != 0)
        abort();
    return c;
}

/* ---- commands ----------------------------------------------------------------------- */

static void
status_gives_the_daemon_counters_and_every_zones_usage(void)
{
    struct fake_daemon fd = {.generation = 3};
    struct zones      *d = new_zones();
    char               path[128], r[4096];
    struct control    *c = serve("status.ctl", &fd, d, path, sizeof(path));

    set_num(zone(d, CONFIG_ZONE_LIMITS), "a", 1, 0);
    CHECK(ask(path, "status", r, sizeof(r)) > 0);
    CHECK(has(r, "{\"ok\":true,\"pid\":"));
    CHECK(has(r, "\"generation\":3,"));
    CHECK(has(r, "\"started\":1700000000.000,\"loaded\":1700000100.500,"));
    CHECK(has(r, "\"reloads_ok\":2,\"reloads_failed\":1,"));
    CHECK(has(r, "\"last_reload_error\":\"x.lua:1: \\\"bad\\\"\""));
    CHECK(has(r, "\"workers\":4,\"sessions\":7,\"sessions_total\":12345678901,"));
    CHECK(has(r, "\"messages_relayed\":42,\"messages_failed\":3,\"auth_ok\":40,"));
    CHECK(has(r, "\"auth_failed\":9,\"old_generations\":1,"));
    CHECK(has(r, ",\"auth\":{\"plain\":{\"ok\":38,\"failed\":0},\"login\":{\"ok\":0,"
                 "\"failed\":9},\"xoauth2\":{\"ok\":2,\"failed\":0},\"oauthbearer\":{\"ok\":0,"
                 "\"failed\":0}},"));
    CHECK(has(r, ",\"sessions_by_state\":{\"NEW\":0,\"CMD\":7},\"connections_refused\":{"
                 "\"max_connections\":5,\"max_connections_per_ip\":0},"));
    CHECK(has(r, ",\"domains\":{\"other\":{\"relayed\":0,\"failed\":1},"
                 "\"example.org\":{\"relayed\":41,\"failed\":2}},"));
    CHECK(has(r, "\"hooks\":{\"on_connect\":{\"runs\":0,\"seconds\":0.000},"));
    CHECK(has(r, "\"on_rcpt\":{\"runs\":5,\"seconds\":6.002},"));
    CHECK(has(r, ",\"upstreams\":{\"127.0.0.1:25\":{\"open\":3,\"idle\":2,\"waits\":12,"
                 "\"wait_timeouts\":1,\"connect_failures\":4,\"errors\":5}},"));
    CHECK(has(r, "\"zones\":{\"default\":{\"evict\":true,\"capacity\":1048576,\"bytes\":"));
    CHECK(has(r, "\"entries\":0,\"evictions\":0,\"refusals\":0,\"expired\":0,"
                 "\"backend\":\"local\",\"fallbacks\":0},"
                 "\"limits\":{\"evict\":true,\"capacity\":1048576,\"bytes\":"));
    CHECK(has(r, "\"entries\":1,\"evictions\":0,\"refusals\":0,\"expired\":0,"
                 "\"backend\":\"local\",\"fallbacks\":0},\"blocks\":{\"evict\":false,"));
    CHECK(!has(r, "\"redis\":")); /* no zone in Redis: no redis section */
    CHECK(has(r, "\"denylist\":{\"evict\":false,"));
    CHECK(has(r, "\"auth_cache\":{\"evict\":true,"));
    CHECK(has(r, "\"jwks\":{\"evict\":true,"));
    CHECK(num_after(strstr(r, "\"limits\""), "bytes") > 0);
    CHECK(strstr(r, "\"audit\"") == NULL); /* no audit writer given */
    CHECK(r[strlen(r) - 1] == '}');
    CHECK(ask(path, "status\r", r, sizeof(r)) > 0 && has(r, "\"ok\":true")); /* CRLF too */
    control_free(c);
    zones_free(d);
}

static void
reload_answers_the_new_generation_or_the_error(void)
{
    struct fake_daemon fd = {.generation = 1};
    char               path[128], r[4096];
    struct control    *c = serve("reload.ctl", &fd, NULL, path, sizeof(path));

    CHECK(ask(path, "reload", r, sizeof(r)) > 0);
    CHECK_EQ_INT(fd.reloads, 1);
    CHECK(has(r, "{\"ok\":true,\"message\":\"generation 2\",\"generation\":2}"));
    fd.reload_fails = true;
    CHECK(ask(path, "reload", r, sizeof(r)) > 0);
    CHECK_EQ_INT(fd.reloads, 2);
    CHECK(has(r, "{\"ok\":false,\"error\":\"/etc/sluice/policies/x.lua:3: '=' expected near "
                 "'end'\",\"generation\":2}"));
    CHECK(ask(path, "reload now", r, sizeof(r)) > 0 && has(r, "\"ok\":false"));
    CHECK_EQ_INT(fd.reloads, 2);
    control_free(c);
}

static void
show_gives_each_key_of_a_name_with_its_ttl_and_the_block(void)
{
    struct fake_daemon  fd = {.generation = 1};
    struct zones       *d = new_zones();
    char                path[128], r[4096];
    struct control     *c = serve("show.ctl", &fd, d, path, sizeof(path));
    double              now = ev_time();
    struct shdict_value s = {.type = SHDICT_STRING, .str = "sa\"b", .len = 4};

    set_num(zone(d, CONFIG_ZONE_LIMITS), "auth_fail:ip:192.0.2.7:60:28000000", 5, 120);
    set_num(zone(d, CONFIG_ZONE_BLOCKS), "auth_fail:ip:192.0.2.7:block", now + 300, 300);
    set_num(zone(d, CONFIG_ZONE_LIMITS), "auth_fail:ip:192.0.2.70:60:28000000", 9, 120);
    zone_set(zone(d, CONFIG_ZONE_DEFAULT), "auth_fail:ip:192.0.2.7:note", 27, &s, 0, now);
    CHECK(ask(path, "ratelimit show auth_fail:ip:192.0.2.7", r, sizeof(r)) > 0);
    CHECK(has(r, "{\"ok\":true,\"name\":\"auth_fail:ip:192.0.2.7\",\"blocked\":"));
    CHECK(num_after(r, "blocked") > 299 && num_after(r, "blocked") <= 300);
    CHECK(has(r, "\"keys\":[{\"key\":\"auth_fail:ip:192.0.2.7:60:28000000\","
                 "\"zone\":\"limits\",\"value\":5,\"ttl\":")); /* sorted by key */
    CHECK(num_after(r, "ttl") > 119 && num_after(r, "ttl") <= 120);
    CHECK(has(r, "{\"key\":\"auth_fail:ip:192.0.2.7:block\",\"zone\":\"blocks\",\"value\":"));
    CHECK(has(r, "{\"key\":\"auth_fail:ip:192.0.2.7:note\",\"zone\":\"default\","
                 "\"value\":\"a\\\"b\",\"ttl\":null}"));
    CHECK(strstr(r, "192.0.2.70") == NULL);

    CHECK(ask(path, "ratelimit show auth_fail:ip:192.0.2.70", r, sizeof(r)) > 0);
    CHECK(has(r, "\"blocked\":false,\"keys\":[{\"key\":\"auth_fail:ip:192.0.2.70:60:"));
    /* a block that has ended while its key lives on is no block (ratelimit.blocked) */
    set_num(zone(d, CONFIG_ZONE_BLOCKS), "old:block", now - 5, 60);
    CHECK(ask(path, "ratelimit show old", r, sizeof(r)) > 0 && has(r, "\"blocked\":false"));
    CHECK(ask(path, "ratelimit show nobody", r, sizeof(r)) > 0);
    CHECK(has(r, "{\"ok\":true,\"name\":\"nobody\",\"blocked\":false,\"keys\":[]}"));
    control_free(c);
    zones_free(d);
}

static void
show_escapes_keys_that_are_not_clean_text(void)
{
    struct fake_daemon fd = {0};
    struct zones      *d = new_zones();
    char               path[128], r[4096];
    struct control    *c = serve("escape.ctl", &fd, d, path, sizeof(path));

    set_num(zone(d, CONFIG_ZONE_DEFAULT), "n:\x01\xff\\\xc3\xa9", 1, 0);
    CHECK(ask(path, "ratelimit show n", r, sizeof(r)) > 0);
    CHECK(has(r, "\"key\":\"n:\\u0001\\u00ff\\\\\xc3\xa9\""));
    control_free(c);
    zones_free(d);
}

static void
reset_removes_the_keys_of_the_name_and_only_those(void)
{
    static const char *const gone[] = {
        "auth_fail:ip:10.0.0.1:60:1", "auth_fail:ip:10.0.0.1:3600:0", "auth_fail:ip:10.0.0.1:block",
    };
    static const char *const kept[] = {
        "auth_fail:ip:10.0.0.10:60:1", "auth_fail:ip:10.0.0.1", "auth_fail:ip:10.0.0.2:block",
        "auth_fail:user_ip:ann@example.org|10.0.0.1:60:1", "xauth_fail:ip:10.0.0.1:60:1",
    };
    struct fake_daemon fd = {0};
    struct zones      *d = new_zones();
    char               path[128], r[4096];
    struct control    *c = serve("reset.ctl", &fd, d, path, sizeof(path));
    size_t             i;

    for (i = 0; i < 3; i++) /* in two zones */
        set_num(zone(d, i == 2 ? CONFIG_ZONE_BLOCKS : CONFIG_ZONE_LIMITS), gone[i], 1, 600);
    for (i = 0; i < 5; i++)
        set_num(zone(d, i == 2 ? CONFIG_ZONE_BLOCKS : CONFIG_ZONE_LIMITS), kept[i], 1, 600);
    CHECK(ask(path, "ratelimit reset auth_fail:ip:10.0.0.1", r, sizeof(r)) > 0);
    CHECK(has(r, "{\"ok\":true,\"name\":\"auth_fail:ip:10.0.0.1\",\"removed\":3}"));
    for (i = 0; i < 3; i++)
        CHECK(!exists(zone(d, i == 2 ? CONFIG_ZONE_BLOCKS : CONFIG_ZONE_LIMITS), gone[i]));
    for (i = 0; i < 5; i++)
        CHECK(exists(zone(d, i == 2 ? CONFIG_ZONE_BLOCKS : CONFIG_ZONE_LIMITS), kept[i]));
    CHECK(ask(path, "ratelimit reset auth_fail:ip:10.0.0.1", r, sizeof(r)) > 0);
    CHECK(has(r, "\"removed\":0}"));
    control_free(c);
    zones_free(d);
}

static void
reset_of_many_keys_removes_them_all(void)
{
    struct fake_daemon fd = {0};
    struct zones      *d;
    char               path[128], r[4096], key[64];
    struct control    *c;
    struct zone_stats  st;
    int                i;

    d = new_zones_sized(16 << 20, 1 << 20);
    c = serve("many.ctl", &fd, d, path, sizeof(path));
    for (i = 0; i < 25000; i++) { /* over CONTROL_MAX_ENTRIES: several passes */
        snprintf(key, sizeof(key), "many:60:%d", i);
        set_num(zone(d, CONFIG_ZONE_LIMITS), key, i, 600);
    }
    set_num(zone(d, CONFIG_ZONE_LIMITS), "other:60:1", 1, 600);
    CHECK(ask(path, "ratelimit reset many", r, sizeof(r)) > 0);
    CHECK(has(r, "\"removed\":25000}"));
    zone_stats(zone(d, CONFIG_ZONE_LIMITS), &st);
    CHECK_EQ_INT(st.entries, 1);
    control_free(c);
    zones_free(d);
}

static void
list_gives_the_names_blocked_now_filtered_by_prefix(void)
{
    struct fake_daemon fd = {0};
    struct zones      *d = new_zones();
    char               path[128], r[4096];
    struct control    *c = serve("list.ctl", &fd, d, path, sizeof(path));
    double             now = ev_time();

    struct zone       *b = zone(d, CONFIG_ZONE_BLOCKS), *l = zone(d, CONFIG_ZONE_LIMITS);

    set_num(b, "auth_fail:ip:192.0.2.9:block", now + 100, 100);
    set_num(l, "auth_fail:ip:192.0.2.1:block", now + 200, 200); /* blocks was full */
    set_num(b, "auth_fail:user_ip:ann@example.org|192.0.2.1:block", now + 50, 50);
    set_num(l, "auth_fail:user_ip:ann@example.org|192.0.2.1:block", now + 50, 50);
    set_num(b, "auth_fail:ip:192.0.2.5:block", now - 1, 100); /* over, key not yet expired */
    set_num(l, "auth_fail:ip:192.0.2.9:60:1", 5, 100);
    set_num(zone(d, CONFIG_ZONE_DEFAULT), "auth_fail:ip:192.0.2.6:block", now + 9, 9);
    CHECK(ask(path, "ratelimit list auth_fail:ip:", r, sizeof(r)) > 0);
    CHECK(has(r, "{\"ok\":true,\"prefix\":\"auth_fail:ip:\",\"blocked\":["
                 "{\"name\":\"auth_fail:ip:192.0.2.1\",\"seconds_left\":"));
    CHECK(num_after(r, "seconds_left") > 199 && num_after(r, "seconds_left") <= 200);
    CHECK(has(r, "},{\"name\":\"auth_fail:ip:192.0.2.9\",\"seconds_left\":"));
    CHECK(num_after(strstr(r, "192.0.2.9"), "seconds_left") > 99);
    CHECK(strstr(r, "192.0.2.5") == NULL && strstr(r, "user_ip") == NULL);
    CHECK(strstr(r, "192.0.2.6") == NULL); /* not a zone blocks are kept in */
    CHECK(ask(path, "ratelimit list", r, sizeof(r)) > 0);
    CHECK(has(r, "\"prefix\":\"\""));
    CHECK(has(r, "{\"name\":\"auth_fail:user_ip:ann@example.org|192.0.2.1\",\"seconds_left\":"));
    /* in both zones, shown once */
    CHECK(strstr(strstr(r, "ann@") + 1, "ann@") == NULL);
    CHECK(ask(path, "ratelimit list messages:", r, sizeof(r)) > 0);
    CHECK(has(r, "\"blocked\":[]}"));
    control_free(c);
    zones_free(d);
}

static void
bad_requests_get_an_error_reply(void)
{
    static const char *const bad[] = {
        "", "stat", "statusx", "status now", "ratelimit", "ratelimit show", "ratelimit show ",
        "ratelimit reset", "ratelimit reset ", "ratelimit drop x", "ratelimit show a\tb",
    };
    struct fake_daemon fd = {0};
    struct zones      *d = new_zones();
    char               path[128], r[4096], big[2048];
    struct control    *c = serve("bad.ctl", &fd, d, path, sizeof(path));

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK(ask(path, bad[i], r, sizeof(r)) > 0);
        CHECK(has(r, "{\"ok\":false,\"error\":\""));
    }
    /* "NAME:block" must fit in a key */
    memset(big, 'n', sizeof(big));
    memcpy(big, "ratelimit show ", 15);
    big[sizeof(big) - 1] = '\0';
    CHECK(ask(path, big, r, sizeof(r)) > 0 && has(r, "\"error\":\"rate-limit name too long\""));
    control_free(c);
    zones_free(d);
}

static void
ratelimit_commands_without_zones_answer_an_error(void)
{
    struct fake_daemon fd = {0};
    char               path[128], r[4096];
    struct control    *c = serve("nodict.ctl", &fd, NULL, path, sizeof(path));

    CHECK(ask(path, "ratelimit list", r, sizeof(r)) > 0 && has(r, "\"ok\":false"));
    CHECK(ask(path, "status", r, sizeof(r)) > 0 && has(r, "\"ok\":true"));
    CHECK(strstr(r, "\"zones\"") == NULL);
    CHECK(ask(path, "token deny jti x", r, sizeof(r)) > 0 && has(r, "\"ok\":false"));
    control_free(c);
}

/* lua/sluice/ratelimit.lua keeps a name over 128 octets as its first 64, '~' and its
 * SHA-256 (sluice.key_part): show and reset take the long name, and the short form. */
static void
show_and_reset_find_a_long_name_under_its_bounded_key(void)
{
    struct fake_daemon fd = {0};
    struct zones      *d = new_zones();
    char               path[128], r[8192], name[400], bounded[200], key[256], line[512];
    struct control    *c = serve("long.ctl", &fd, d, path, sizeof(path));
    size_t             blen;

    memset(name, 'u', 300);
    memcpy(name, "auth_fail:user:", 15);
    name[300] = '\0';
    blen = zone_key_part(name, 300, 128, bounded);
    CHECK_EQ_INT(blen, 129);
    snprintf(key, sizeof(key), "%s:60:1", bounded);
    set_num(zone(d, CONFIG_ZONE_LIMITS), key, 7, 600);
    snprintf(line, sizeof(line), "ratelimit show %s", name);
    CHECK(ask(path, line, r, sizeof(r)) > 0);
    CHECK(has(r, key) && has(r, "\"value\":7"));
    snprintf(line, sizeof(line), "ratelimit show %s", bounded); /* as list shows it */
    CHECK(ask(path, line, r, sizeof(r)) > 0 && has(r, key));
    snprintf(line, sizeof(line), "ratelimit reset %s", name);
    CHECK(ask(path, line, r, sizeof(r)) > 0 && has(r, "\"removed\":1}"));
    CHECK(!exists(zone(d, CONFIG_ZONE_LIMITS), key));
    control_free(c);
    zones_free(d);
}

static void
token_deny_writes_the_zone_denylist_with_long_values_bounded(void)
{
    struct fake_daemon fd = {0};
    struct zones      *d = new_zones();
    char               path[128], r[4096], value[301], line[512];
    struct control    *c = serve("deny.ctl", &fd, d, path, sizeof(path));

    CHECK(ask(path, "token deny jti j-1", r, sizeof(r)) > 0);
    CHECK(has(r, "{\"ok\":true,\"key\":\"oauth2:deny:jti:j-1\",\"ttl\":86400.000}"));
    CHECK(exists(zone(d, CONFIG_ZONE_DENYLIST), "oauth2:deny:jti:j-1"));
    CHECK(!exists(zone(d, CONFIG_ZONE_DEFAULT), "oauth2:deny:jti:j-1"));
    memset(value, 'x', 300);
    value[300] = '\0';
    snprintf(line, sizeof(line), "token deny sub %s", value);
    CHECK(ask(path, line, r, sizeof(r)) > 0);
    /* SHA-256 of 300 'x': what sluice.key_part(value) gives policies/oauth2.lua */
    CHECK(has(r, "\"key\":\"oauth2:deny:sub:~"));
    CHECK(strlen(strstr(r, "oauth2:deny:sub:~")) > 17 + 64);
    snprintf(line, sizeof(line), "token allow sub %s", value);
    CHECK(ask(path, line, r, sizeof(r)) > 0 && has(r, "\"removed\":true"));
    control_free(c);
    zones_free(d);
}

static void
token_deny_into_a_full_denylist_is_refused_and_evicts_nothing(void)
{
    struct fake_daemon fd = {0};
    struct zones      *d = new_zones_sized(1 << 20, 32 * 1024);
    char               path[128], r[4096], line[128], key[64];
    struct control    *c = serve("full.ctl", &fd, d, path, sizeof(path));
    struct zone_stats  st;
    int                n = 0;

    do {
        snprintf(line, sizeof(line), "token deny jti j-%d", ++n);
        CHECK(ask(path, line, r, sizeof(r)) > 0);
    } while (has(r, "\"ok\":true") && n < 10000);
    CHECK(n > 100 && n < 10000);
    CHECK(has(r, "{\"ok\":false,\"error\":\"the zone denylist is full: nothing was denied"));
    CHECK(zone_is_refusing(zone(d, CONFIG_ZONE_DENYLIST)));
    for (int i = 1; i < n; i++) {
        snprintf(key, sizeof(key), "oauth2:deny:jti:j-%d", i);
        CHECK(exists(zone(d, CONFIG_ZONE_DENYLIST), key));
    }
    zone_stats(zone(d, CONFIG_ZONE_DENYLIST), &st);
    CHECK(st.refusals == 1 && st.evictions == 0 && st.bytes <= st.capacity);
    CHECK(ask(path, "status", r, sizeof(r)) > 0);
    CHECK(num_after(strstr(r, "\"denylist\""), "refusals") == 1);
    /* room again (an allow), and a deny that succeeds ends the refusing state */
    CHECK(ask(path, "token allow jti j-1", r, sizeof(r)) > 0 && has(r, "\"removed\":true"));
    CHECK(ask(path, "token deny jti j-new", r, sizeof(r)) > 0 && has(r, "\"ok\":true"));
    CHECK(!zone_is_refusing(zone(d, CONFIG_ZONE_DENYLIST)));
    control_free(c);
    zones_free(d);
}

/* A site whose lua_dir has modules without the ctl functions gets an error naming the
 * missing one, not a reply made up from a key layout it may not use. */
static void
a_module_without_its_ctl_functions_gives_a_clear_error(void)
{
    struct fake_daemon fd = {0};
    struct zones      *d = new_zones();
    char               path[128], r[4096], dir[256], saved[sizeof(lua_dir)];
    struct control    *c = serve("nofn.ctl", &fd, d, path, sizeof(path));
    FILE              *f;

    snprintf(dir, sizeof(dir), "%s/lua", tmpdir);
    mkdir(dir, 0700);
    snprintf(dir, sizeof(dir), "%s/lua/sluice", tmpdir);
    mkdir(dir, 0700);
    snprintf(dir, sizeof(dir), "%s/lua/sluice/ratelimit.lua", tmpdir);
    if ((f = fopen(dir, "w")) != NULL) {
        fputs("return { ctl_list = function() error('site bug') end }\n", f);
        fclose(f);
    }
    snprintf(dir, sizeof(dir), "%s/lua/sluice/denylist.lua", tmpdir);
    if ((f = fopen(dir, "w")) != NULL) {
        fputs("return {}\n", f);
        fclose(f);
    }
    memcpy(saved, lua_dir, sizeof(saved));
    snprintf(lua_dir, sizeof(lua_dir), "%s/lua", tmpdir);
    CHECK(ask(path, "ratelimit show alice", r, sizeof(r)) > 0);
    CHECK(has(r, "{\"ok\":false,\"error\":\"ratelimit: module sluice.ratelimit has no "
                 "ctl_show\"}"));
    CHECK(ask(path, "ratelimit reset alice", r, sizeof(r)) > 0);
    CHECK(has(r, "\"error\":\"ratelimit: module sluice.ratelimit has no ctl_reset\""));
    CHECK(ask(path, "ratelimit list", r, sizeof(r)) > 0);
    CHECK(has(r, "\"error\":\"ratelimit: sluice.ratelimit.ctl_list: ") && has(r, "site bug"));
    CHECK(ask(path, "token deny jti j-1", r, sizeof(r)) > 0);
    CHECK(has(r, "\"error\":\"token: module sluice.denylist has no deny\""));
    snprintf(lua_dir, sizeof(lua_dir), "%s/nowhere", tmpdir);
    CHECK(ask(path, "token allow jti j-1", r, sizeof(r)) > 0);
    CHECK(has(r, "\"error\":\"token: cannot load sluice.denylist: "));
    memcpy(lua_dir, saved, sizeof(saved));
    CHECK(ask(path, "ratelimit show alice", r, sizeof(r)) > 0 && has(r, "\"ok\":true"));
    CHECK_EQ_INT(fd.held, 0);
    control_free(c);
    zones_free(d);
}

/* ---- the socket ----------------------------------------------------------------------- */

static void
socket_file_is_owner_only_and_goes_away_on_free(void)
{
    struct fake_daemon fd = {0};
    char               path[128];
    struct stat        st;
    mode_t             old = umask(0); /* the server must not depend on the caller's umask */
    struct control    *c = serve("mode.ctl", &fd, NULL, path, sizeof(path));

    umask(old);
    CHECK(lstat(path, &st) == 0);
    CHECK(S_ISSOCK(st.st_mode));
    CHECK_EQ_INT(st.st_mode & 07777, 0600);
    CHECK_EQ_INT(st.st_uid, geteuid());
    control_free(c);
    CHECK(lstat(path, &st) != 0 && errno == ENOENT);
}

static void
umask_is_restored_after_open(void)
{
    struct fake_daemon fd = {0};
    char               path[128];
    mode_t             before = umask(022), after;
    struct control    *c = serve("umask.ctl", &fd, NULL, path, sizeof(path));

    after = umask(before);
    CHECK_EQ_INT(after, 022);
    control_free(c);
}

static double
mono(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
a_silent_client_is_dropped_after_the_timeout_and_the_next_is_served(void)
{
    struct fake_daemon fd = {.generation = 5};
    char               path[128], r[4096];
    struct control    *c = serve("silent.ctl", &fd, NULL, path, sizeof(path));
    int                silent = connect_to(path), quiet_close;
    double             t0 = mono(), took;

    CHECK(silent >= 0);
    CHECK(ask(path, "status", r, sizeof(r)) > 0); /* waits behind the silent one */
    took = mono() - t0;
    CHECK(has(r, "\"generation\":5"));
    /* served once the silent one timed out: not before, and not much later (a loaded
     * machine may add a second or two) */
    CHECK(took > CONTROL_TIMEOUT - 0.3 && took < CONTROL_TIMEOUT + 4);
    if (!(took > CONTROL_TIMEOUT - 0.3 && took < CONTROL_TIMEOUT + 4))
        fprintf(stderr, "  took %.3f s\n", took);
    CHECK(read_reply(silent, r, sizeof(r)) > 0);
    CHECK(has(r, "{\"ok\":false,\"error\":\"no request line within 2 seconds\"}"));
    close(silent);
    /* a client that connects and closes at once costs nothing */
    quiet_close = connect_to(path);
    close(quiet_close);
    t0 = mono();
    CHECK(ask(path, "status", r, sizeof(r)) > 0 && has(r, "\"ok\":true"));
    CHECK(mono() - t0 < CONTROL_TIMEOUT - 0.3); /* not held for the timeout */
    control_free(c);
}

static void
a_line_over_4096_octets_gets_an_error(void)
{
    struct fake_daemon fd = {0};
    char               path[128], r[4096], line[CONTROL_MAX_REQUEST + 100];
    struct control    *c = serve("long.ctl", &fd, NULL, path, sizeof(path));

    memset(line, 'x', sizeof(line) - 1);
    line[sizeof(line) - 1] = '\0';
    CHECK(ask(path, line, r, sizeof(r)) > 0);
    CHECK(has(r, "{\"ok\":false,\"error\":\"request line over 4096 octets\"}"));
    /* the longest line that fits is read as a line */
    line[CONTROL_MAX_REQUEST - 1] = '\0';
    CHECK(ask(path, line, r, sizeof(r)) > 0 && has(r, "\"error\":\"unknown command"));
    control_free(c);
}

static void
a_stale_socket_is_replaced_and_a_live_one_refused(void)
{
    struct fake_daemon fd = {0};
    char               path[100], err[256] = "", r[4096];
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int                s = socket(AF_UNIX, SOCK_STREAM, 0);
    struct control    *c, *c2;

    sock_path(path, sizeof(path), "stale.ctl");
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    CHECK(bind(s, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    close(s); /* the file stays; nothing answers on it */
    c = serve("stale.ctl", &fd, NULL, path, sizeof(path));
    CHECK(ask(path, "status", r, sizeof(r)) > 0 && has(r, "\"ok\":true"));

    c2 = control_open(path, err, sizeof(err));
    CHECK(c2 == NULL);
    CHECK(has(err, "another sluice is running on "));
    CHECK(has(err, path));
    CHECK(ask(path, "status", r, sizeof(r)) > 0 && has(r, "\"ok\":true")); /* untouched */
    control_free(c);
}

static void
open_refuses_a_file_that_is_not_a_socket_and_a_missing_directory(void)
{
    char            path[160], err[256] = "";
    struct control *c;
    FILE           *f;

    sock_path(path, sizeof(path), "plain.file");
    f = fopen(path, "w");
    CHECK(f != NULL);
    if (f != NULL)
        fclose(f);
    c = control_open(path, err, sizeof(err));
    CHECK(c == NULL && has(err, "exists and is not a socket"));
    CHECK(access(path, F_OK) == 0); /* not removed */
    unlink(path);

    sock_path(path, sizeof(path), "no/such/dir.ctl");
    c = control_open(path, err, sizeof(err));
    CHECK(c == NULL && has(err, "No such file or directory") && has(err, "no/such/dir.ctl"));
}

static void
free_does_not_unlink_a_socket_that_replaced_its_own(void)
{
    struct fake_daemon fd = {0};
    char               path[100];
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct control    *c = serve("replaced.ctl", &fd, NULL, path, sizeof(path));
    int                s = socket(AF_UNIX, SOCK_STREAM, 0);

    unlink(path);
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    CHECK(bind(s, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    control_free(c);
    CHECK(access(path, F_OK) == 0);
    close(s);
    unlink(path);
}

/* Another uid reaching the socket (the mode opened up on purpose) still gets a refusal. */
static void
a_peer_of_another_uid_is_refused(void)
{
    struct fake_daemon fd = {0};
    char               path[128];
    struct control    *c;
    pid_t              pid;
    int                status = -1;

    if (geteuid() != 0) {
        fprintf(stderr, "  (not root: the other-uid case needs setuid; skipped)\n");
        return;
    }
    c = serve("peer.ctl", &fd, NULL, path, sizeof(path));
    CHECK(chmod(tmpdir, 0711) == 0 && chmod(path, 0666) == 0);
    pid = fork();
    if (pid == 0) {
        char r[4096];

        if (setgid(65534) != 0 || setuid(65534) != 0)
            _exit(2);
        if (ask(path, "status", r, sizeof(r)) <= 0)
            _exit(3);
        _exit(strcmp(r, "{\"ok\":false,\"error\":\"uid 65534 may not use the control "
                        "socket\"}") == 0 ? 0 : 4);
    }
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    CHECK_EQ_INT(WEXITSTATUS(status), 0);
    chmod(tmpdir, 0700);
    control_free(c);
}

static void
start_twice_and_free_of_null(void)
{
    struct fake_daemon fd = {0};
    struct control_ops ops = {.ctx = &fd};
    char               path[128];
    struct control    *c = serve("twice.ctl", &fd, NULL, path, sizeof(path));

    CHECK(control_start(c, &ops, NULL, NULL) == -1);
    control_free(c);
    control_free(NULL);
}

int
main(void)
{
    tmpdir = test_tmpdir("control");
    for (size_t i = 0; i < CONFIG_ZONE_N_BUILTIN; i++)
        running_zones[i].name = zone_names[i];
    log_set_level(LOG_ERR); /* control.command lines for every request: not read here */
    RUN(status_gives_the_daemon_counters_and_every_zones_usage);
    RUN(reload_answers_the_new_generation_or_the_error);
    RUN(show_gives_each_key_of_a_name_with_its_ttl_and_the_block);
    RUN(show_escapes_keys_that_are_not_clean_text);
    RUN(reset_removes_the_keys_of_the_name_and_only_those);
    RUN(reset_of_many_keys_removes_them_all);
    RUN(list_gives_the_names_blocked_now_filtered_by_prefix);
    RUN(bad_requests_get_an_error_reply);
    RUN(ratelimit_commands_without_zones_answer_an_error);
    RUN(show_and_reset_find_a_long_name_under_its_bounded_key);
    RUN(token_deny_writes_the_zone_denylist_with_long_values_bounded);
    RUN(token_deny_into_a_full_denylist_is_refused_and_evicts_nothing);
    RUN(a_module_without_its_ctl_functions_gives_a_clear_error);
    RUN(socket_file_is_owner_only_and_goes_away_on_free);
    RUN(umask_is_restored_after_open);
    RUN(a_silent_client_is_dropped_after_the_timeout_and_the_next_is_served);
    RUN(a_line_over_4096_octets_gets_an_error);
    RUN(a_stale_socket_is_replaced_and_a_live_one_refused);
    RUN(open_refuses_a_file_that_is_not_a_socket_and_a_missing_directory);
    RUN(free_does_not_unlink_a_socket_that_replaced_its_own);
    RUN(a_peer_of_another_uid_is_refused);
    RUN(start_twice_and_free_of_null);
    return check_summary();
}
