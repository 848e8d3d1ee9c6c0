/* core/cmd/cmd_ctl.c: `sluice ctl [-c FILE | -s SOCKET] [--json] COMMAND [ARGS]`: send one
 * request line to the running daemon's control socket (control.h, docs/ctl.md) and print
 * its one-line JSON reply for a person (or as it is, with --json).
 * Exit: 0 the daemon said ok, 1 it said no, 64 usage, 69 no daemon to talk to (cannot
 * connect, or no reply), 78 the configuration names no socket or does not load. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "config/config.h"
#include "daemon/control.h"

#define CTL_TIMEOUT        10  /* seconds for a reply */
#define CTL_RELOAD_TIMEOUT 300 /* a reload loads every file and resolves upstream names */
#define CTL_MAX_DEPTH      16  /* JSON nesting the printer accepts */

static const char ctl_usage[] =
    "usage: sluice ctl [-c FILE | -s SOCKET] [--json] COMMAND\n"
    "commands: status\n"
    "          reload\n"
    "          ratelimit show NAME      keys of NAME (auth_fail:ip:192.0.2.7) and its block\n"
    "          ratelimit reset NAME     delete every key of NAME: unblocks it\n"
    "          ratelimit list [PREFIX]  names blocked now (PREFIX: auth_fail:ip:)\n"
    "          token deny jti|sub|client VALUE [SECONDS]\n"
    "                                   refuse bearer tokens with that jti, subject or\n"
    "                                   client for SECONDS (default 86400)\n"
    "          token allow jti|sub|client VALUE   take VALUE off the deny-list\n";

/* ---- a small JSON reader: the reply is ours, but is still checked ------------------------ */

enum ctl_jtype { CTL_JNULL, CTL_JBOOL, CTL_JNUM, CTL_JSTR, CTL_JARR, CTL_JOBJ };

struct ctl_json {
    enum ctl_jtype   type;
    bool             b;
    double           num;
    char            *str;   /* owns; CTL_JSTR: the decoded text; CTL_JNUM: the token */
    struct ctl_json *items; /* owns; CTL_JARR, CTL_JOBJ: n values */
    char           **keys;  /* owns; CTL_JOBJ: n keys */
    size_t           n;
};

struct ctl_parse {
    const char *p, *end;
    int         depth;
};

static void
ctl_json_free(struct ctl_json *v)
{
    for (size_t i = 0; i < v->n; i++) {
        ctl_json_free(&v->items[i]);
        if (v->keys != NULL)
            free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->str);
    memset(v, 0, sizeof(*v));
}

static void
ctl_skip_ws(struct ctl_parse *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\r'))
        ps->p++;
}

static void
ctl_put_utf8(char *out, size_t *n, unsigned long cp)
{
    if (cp < 0x80) {
        out[(*n)++] = (char)cp;
    } else if (cp < 0x800) {
        out[(*n)++] = (char)(0xc0 | cp >> 6);
        out[(*n)++] = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        out[(*n)++] = (char)(0xe0 | cp >> 12);
        out[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[(*n)++] = (char)(0x80 | (cp & 0x3f));
    } else {
        out[(*n)++] = (char)(0xf0 | cp >> 18);
        out[(*n)++] = (char)(0x80 | ((cp >> 12) & 0x3f));
        out[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[(*n)++] = (char)(0x80 | (cp & 0x3f));
    }
}

static int
ctl_hex4(const char *p, const char *end, unsigned long *cp)
{
    char tmp[5], *stop;

    if (end - p < 4)
        return -1;
    memcpy(tmp, p, 4);
    tmp[4] = '\0';
    *cp = strtoul(tmp, &stop, 16);
    return stop == tmp + 4 ? 0 : -1;
}

/* A string after its opening quote; *out is malloc'd and NUL-terminated. A \u escape
 * becomes UTF-8 (6 input octets always cover the 4 it can take; a pair, 12 for 4). */
static int
ctl_parse_string(struct ctl_parse *ps, char **out)
{
    const char   *p = ps->p;
    char         *s = malloc((size_t)(ps->end - p) + 1);
    size_t        n = 0;
    unsigned long cp, lo;

    if (s == NULL)
        return -1;
    while (p < ps->end && *p != '"') {
        if (*p != '\\') {
            s[n++] = *p++;
            continue;
        }
        if (++p == ps->end)
            break;
        switch (*p) {
        case 'n': s[n++] = '\n'; p++; break;
        case 't': s[n++] = '\t'; p++; break;
        case 'r': s[n++] = '\r'; p++; break;
        case 'b': s[n++] = '\b'; p++; break;
        case 'f': s[n++] = '\f'; p++; break;
        case 'u':
            if (ctl_hex4(p + 1, ps->end, &cp) != 0)
                goto fail;
            p += 5;
            if (cp >= 0xd800 && cp < 0xdc00 && ps->end - p >= 6 && p[0] == '\\' &&
                p[1] == 'u' && ctl_hex4(p + 2, ps->end, &lo) == 0 && lo >= 0xdc00 &&
                lo < 0xe000) {
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                p += 6;
            }
            ctl_put_utf8(s, &n, cp);
            break;
        default: s[n++] = *p++; break; /* \" \\ \/ */
        }
    }
    if (p == ps->end)
        goto fail;
    s[n] = '\0';
    ps->p = p + 1;
    *out = s;
    return 0;
fail:
    free(s);
    return -1;
}

static int ctl_parse_value(struct ctl_parse *ps, struct ctl_json *v);

/* An array or object after its opening bracket. */
static int
ctl_parse_members(struct ctl_parse *ps, struct ctl_json *v, bool object)
{
    char         close = object ? '}' : ']';
    struct ctl_json *items;
    char           **keys;

    v->type = object ? CTL_JOBJ : CTL_JARR;
    ctl_skip_ws(ps);
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
        return 0;
    }
    for (;;) {
        items = realloc(v->items, (v->n + 1) * sizeof(*items));
        if (items == NULL)
            return -1;
        v->items = items;
        memset(&items[v->n], 0, sizeof(*items));
        if (object) {
            keys = realloc(v->keys, (v->n + 1) * sizeof(*keys));
            if (keys == NULL)
                return -1;
            v->keys = keys;
            keys[v->n] = NULL;
        }
        v->n++;
        ctl_skip_ws(ps);
        if (object && (ps->p == ps->end || *ps->p++ != '"' ||
                       ctl_parse_string(ps, &v->keys[v->n - 1]) != 0))
            return -1;
        ctl_skip_ws(ps);
        if (object && (ps->p == ps->end || *ps->p++ != ':'))
            return -1;
        if (ctl_parse_value(ps, &v->items[v->n - 1]) != 0)
            return -1;
        ctl_skip_ws(ps);
        if (ps->p == ps->end)
            return -1;
        if (*ps->p == close) {
            ps->p++;
            return 0;
        }
        if (*ps->p++ != ',')
            return -1;
    }
}

static int
ctl_parse_value(struct ctl_parse *ps, struct ctl_json *v)
{
    const char *start;
    char       *stop;
    int         rc;

    ctl_skip_ws(ps);
    if (ps->p == ps->end || ++ps->depth > CTL_MAX_DEPTH)
        return -1;
    start = ps->p;
    if (*ps->p == '{' || *ps->p == '[') {
        ps->p++;
        rc = ctl_parse_members(ps, v, *start == '{');
    } else if (*ps->p == '"') {
        ps->p++;
        v->type = CTL_JSTR;
        rc = ctl_parse_string(ps, &v->str);
    } else if (ps->end - ps->p >= 4 && memcmp(ps->p, "null", 4) == 0) {
        ps->p += 4;
        rc = 0;
    } else if (ps->end - ps->p >= 4 && memcmp(ps->p, "true", 4) == 0) {
        v->type = CTL_JBOOL;
        v->b = true;
        ps->p += 4;
        rc = 0;
    } else if (ps->end - ps->p >= 5 && memcmp(ps->p, "false", 5) == 0) {
        v->type = CTL_JBOOL;
        ps->p += 5;
        rc = 0;
    } else {
        v->type = CTL_JNUM;
        v->num = strtod(ps->p, &stop); /* the reply ends in LF: strtod stops before it */
        rc = stop == ps->p ? -1 : 0;
        if (rc == 0 && (v->str = strndup(ps->p, (size_t)(stop - ps->p))) == NULL)
            rc = -1;
        ps->p = stop;
    }
    ps->depth--;
    return rc;
}

static const struct ctl_json *
ctl_get(const struct ctl_json *obj, const char *key)
{
    for (size_t i = 0; obj->type == CTL_JOBJ && i < obj->n; i++)
        if (strcmp(obj->keys[i], key) == 0)
            return &obj->items[i];
    return NULL;
}

static const char *
ctl_get_str(const struct ctl_json *obj, const char *key)
{
    const struct ctl_json *v = ctl_get(obj, key);

    return v != NULL && (v->type == CTL_JSTR || v->type == CTL_JNUM) ? v->str : "?";
}

/* ---- printing ------------------------------------------------------------------------- */

static void
ctl_print_time(const char *key, const struct ctl_json *v)
{
    time_t    t = (time_t)v->num;
    struct tm tm;
    char      buf[64];

    if (v->num <= 0 || gmtime_r(&t, &tm) == NULL) {
        printf("%s: -\n", key);
        return;
    }
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
    printf("%s: %s\n", key, buf);
}

/* status: "key: value" lines, "shdict.entries: 3" for nested objects. */
static void
ctl_print_flat(const char *prefix, const struct ctl_json *obj)
{
    char key[256];

    for (size_t i = 0; i < obj->n; i++) {
        const struct ctl_json *v = &obj->items[i];

        if (prefix[0] == '\0' && strcmp(obj->keys[i], "ok") == 0)
            continue;
        snprintf(key, sizeof(key), "%s%s%s", prefix, prefix[0] ? "." : "", obj->keys[i]);
        if (v->type == CTL_JOBJ)
            ctl_print_flat(key, v);
        else if (v->type == CTL_JNUM && prefix[0] == '\0' &&
                 (strcmp(key, "started") == 0 || strcmp(key, "loaded") == 0))
            ctl_print_time(key, v);
        else if (v->type == CTL_JNUM || v->type == CTL_JSTR)
            printf("%s: %s\n", key, v->str);
        else if (v->type == CTL_JBOOL)
            printf("%s: %s\n", key, v->b ? "true" : "false");
        else
            printf("%s: -\n", key);
    }
}

static void
ctl_print_show(const struct ctl_json *r)
{
    const struct ctl_json *blocked = ctl_get(r, "blocked"), *keys = ctl_get(r, "keys"), *k;

    if (blocked != NULL && blocked->type == CTL_JNUM)
        printf("%s: blocked, %s s left\n", ctl_get_str(r, "name"), blocked->str);
    else
        printf("%s: not blocked\n", ctl_get_str(r, "name"));
    for (size_t i = 0; keys != NULL && keys->type == CTL_JARR && i < keys->n; i++) {
        const struct ctl_json *val, *ttl;

        k = &keys->items[i];
        val = ctl_get(k, "value");
        ttl = ctl_get(k, "ttl");
        printf("  %s = ", ctl_get_str(k, "key"));
        if (val != NULL && val->type == CTL_JSTR)
            printf("'%s'", val->str);
        else if (val != NULL && val->type == CTL_JNUM)
            printf("%s", val->str);
        else if (val != NULL && val->type == CTL_JBOOL)
            printf("%s", val->b ? "true" : "false");
        else
            printf("nil");
        if (ttl != NULL && ttl->type == CTL_JNUM)
            printf("  (expires in %s s)\n", ttl->str);
        else
            printf("  (no expiry)\n");
    }
}

static void
ctl_print_list(const struct ctl_json *r)
{
    const struct ctl_json *list = ctl_get(r, "blocked");

    for (size_t i = 0; list != NULL && list->type == CTL_JARR && i < list->n; i++)
        printf("%s: blocked, %s s left\n", ctl_get_str(&list->items[i], "name"),
               ctl_get_str(&list->items[i], "seconds_left"));
}

static void
ctl_print(const char *command, const char *sub, const struct ctl_json *r)
{
    const struct ctl_json *t = ctl_get(r, "truncated");

    if (strcmp(command, "status") == 0)
        ctl_print_flat("", r);
    else if (strcmp(command, "reload") == 0)
        printf("reload: %s\n", ctl_get_str(r, "message"));
    else if (strcmp(command, "token") == 0 && strcmp(sub, "deny") == 0)
        printf("%s: denied for %s s\n", ctl_get_str(r, "key"), ctl_get_str(r, "ttl"));
    else if (strcmp(command, "token") == 0)
        printf("%s: %s\n", ctl_get_str(r, "key"),
               ctl_get(r, "removed") != NULL && ctl_get(r, "removed")->type == CTL_JBOOL &&
                       ctl_get(r, "removed")->b
                   ? "removed"
                   : "was not denied");
    else if (strcmp(sub, "show") == 0)
        ctl_print_show(r);
    else if (strcmp(sub, "reset") == 0)
        printf("%s: removed %s keys\n", ctl_get_str(r, "name"), ctl_get_str(r, "removed"));
    else
        ctl_print_list(r);
    if (t == NULL || t->type != CTL_JBOOL || !t->b)
        return;
    if (strcmp(sub, "reset") == 0)
        fprintf(stderr, "sluice ctl: more keys may remain: run the reset again\n");
    else
        fprintf(stderr, "sluice ctl: the reply stops at %d entries\n", CONTROL_MAX_ENTRIES);
}

/* ---- talking to the daemon ---------------------------------------------------------- */

static int
ctl_connect(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int                fd;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        fprintf(stderr, "sluice ctl: cannot connect to %s: path too long for a unix socket\n",
                path);
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
        return fd;
    fprintf(stderr, "sluice ctl: cannot connect to %s: %s%s\n", path, strerror(errno),
            errno == ENOENT || errno == ECONNREFUSED ? " (is sluice running?)"
            : errno == EACCES ? " (only root and the daemon's user may)" : "");
    if (fd >= 0)
        close(fd);
    return -1;
}

/* Read up to the first LF: 0 and *reply (malloc'd, the LF replaced by a NUL), or -1 and
 * why in *why. */
static int
ctl_read_reply(int fd, char **reply, size_t *len, const char **why)
{
    size_t  cap = 0, n = 0;
    char   *buf = NULL, *p, *lf = NULL;
    ssize_t got;

    while (lf == NULL) {
        if (n + 1 >= cap) {
            cap = cap ? cap * 2 : 4096;
            if (cap > CONTROL_MAX_REPLY * 2 || (p = realloc(buf, cap)) == NULL) {
                *why = "reply too long";
                goto fail;
            }
            buf = p;
        }
        got = recv(fd, buf + n, cap - n - 1, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            *why = got == 0 ? "the daemon closed the connection"
                   : errno == EAGAIN ? "timed out" : strerror(errno);
            goto fail;
        }
        lf = memchr(buf + n, '\n', (size_t)got);
        n += (size_t)got;
    }
    *lf = '\0';
    *reply = buf;
    *len = (size_t)(lf - buf);
    return 0;
fail:
    free(buf);
    return -1;
}

/* Send line, read the reply line. 0, or -1 after saying why on stderr. */
static int
ctl_exchange(const char *path, const char *line, int timeout, char **reply, size_t *len)
{
    struct timeval tv = {.tv_sec = timeout};
    const char    *why = NULL;
    size_t         n = strlen(line);
    int            fd = ctl_connect(path);

    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (send(fd, line, n, MSG_NOSIGNAL) != (ssize_t)n)
        why = strerror(errno);
    else
        ctl_read_reply(fd, reply, len, &why);
    close(fd);
    if (why == NULL)
        return 0;
    fprintf(stderr, "sluice ctl: no reply from %s: %s\n", path, why);
    return -1;
}

/* ---- the command line ---------------------------------------------------------------- */

static bool
ctl_is_clean(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return false;
    return true;
}

/* token deny KIND VALUE [SECONDS] | token allow KIND VALUE: one word each, no controls. */
static bool
ctl_is_token(int argc, char **argv)
{
    bool deny = argc >= 2 && strcmp(argv[1], "deny") == 0;

    if (argc < 4 || strcmp(argv[0], "token") != 0 || argc > (deny ? 5 : 4) ||
        (!deny && strcmp(argv[1], "allow") != 0) ||
        (strcmp(argv[2], "jti") != 0 && strcmp(argv[2], "sub") != 0 &&
         strcmp(argv[2], "client") != 0))
        return false;
    for (int i = 3; i < argc; i++)
        if (argv[i][0] == '\0' || strchr(argv[i], ' ') != NULL || !ctl_is_clean(argv[i]))
            return false;
    return true;
}

/* argv after the options -> the request line with its LF in line[CONTROL_MAX_REQUEST];
 * -1 on a usage error. */
static int
ctl_request(int argc, char **argv, char *line)
{
    const char *name = argc == 3 ? argv[2] : "";
    int         n;

    if (argc == 1 && (strcmp(argv[0], "status") == 0 || strcmp(argv[0], "reload") == 0))
        n = snprintf(line, CONTROL_MAX_REQUEST, "%s\n", argv[0]);
    else if (argc >= 2 && argc <= 3 && strcmp(argv[0], "ratelimit") == 0 &&
             (strcmp(argv[1], "list") == 0 ||
              (argc == 3 && name[0] != '\0' &&
               (strcmp(argv[1], "show") == 0 || strcmp(argv[1], "reset") == 0))) &&
             ctl_is_clean(name))
        n = snprintf(line, CONTROL_MAX_REQUEST, "ratelimit %s%s%s\n", argv[1],
                     argc == 3 ? " " : "", name);
    else if (ctl_is_token(argc, argv))
        n = snprintf(line, CONTROL_MAX_REQUEST, "token %s %s %s%s%s\n", argv[1], argv[2],
                     argv[3], argc == 5 ? " " : "", argc == 5 ? argv[4] : "");
    else
        return -1;
    return n > 0 && n < CONTROL_MAX_REQUEST ? 0 : -1;
}

/* The socket: -s, or control_socket of the configuration. NULL after saying why; *rc is
 * then the exit code. *cfg keeps the loaded configuration (the path points into it). */
static const char *
ctl_socket_path(const char *sock, const char *conf, struct config **cfg, int *rc)
{
    char err[1024];

    if (sock != NULL)
        return sock;
    *cfg = config_load(conf, err, sizeof(err));
    if (*cfg == NULL) {
        fprintf(stderr, "sluice ctl: %s\n(give the socket with -s SOCKET)\n", err);
        *rc = EXIT_CONFIG;
        return NULL;
    }
    if ((*cfg)->control_socket == NULL) {
        fprintf(stderr, "sluice ctl: %s sets no control_socket\n", conf);
        *rc = EXIT_CONFIG;
        return NULL;
    }
    return (*cfg)->control_socket;
}

int
cmd_ctl_main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0},
    };
    const char     *conf = "conf/sluice.lua", *sock = NULL, *path;
    bool            json = false, have_conf = false;
    struct config  *cfg = NULL;
    struct ctl_json r = {0};
    struct ctl_parse ps;
    char            line[CONTROL_MAX_REQUEST], *reply = NULL;
    size_t          len = 0;
    int             opt, rc = EXIT_UNAVAILABLE;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "+c:s:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c': conf = optarg; have_conf = true; break;
        case 's': sock = optarg; break;
        case 'j': json = true; break;
        case 'h': fputs(ctl_usage, stdout); return 0;
        default: fputs(ctl_usage, stderr); return EXIT_USAGE;
        }
    }
    if (ctl_request(argc - optind, argv + optind, line) != 0 || (have_conf && sock != NULL)) {
        fputs(ctl_usage, stderr);
        return EXIT_USAGE;
    }
    path = ctl_socket_path(sock, conf, &cfg, &rc);
    if (path != NULL &&
        ctl_exchange(path, line, strcmp(line, "reload\n") == 0 ? CTL_RELOAD_TIMEOUT : CTL_TIMEOUT,
                     &reply, &len) == 0) {
        ps = (struct ctl_parse){.p = reply, .end = reply + len};
        if (ctl_parse_value(&ps, &r) != 0 || r.type != CTL_JOBJ ||
            ctl_get(&r, "ok") == NULL || ctl_get(&r, "ok")->type != CTL_JBOOL) {
            fprintf(stderr, "sluice ctl: %s answered something that is not a reply: %.200s\n",
                    path, reply);
        } else if (json) {
            printf("%s\n", reply);
            rc = ctl_get(&r, "ok")->b ? 0 : 1;
        } else if (!ctl_get(&r, "ok")->b) {
            fprintf(stderr, "sluice ctl: %s\n", ctl_get_str(&r, "error"));
            if (ctl_get(&r, "generation") != NULL)
                fprintf(stderr, "sluice ctl: reload failed; generation %s stays in force\n",
                        ctl_get_str(&r, "generation"));
            rc = 1;
        } else {
            ctl_print(argv[optind], argc - optind > 1 ? argv[optind + 1] : "", &r);
            rc = 0;
        }
    }
    ctl_json_free(&r);
    free(reply);
    config_free(cfg);
    return rc;
}
