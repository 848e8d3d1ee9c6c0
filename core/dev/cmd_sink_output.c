/* core/dev/cmd_sink_output.c: the output side of `sluice sink` (see cmd_sink_output.h),
 * shared by the connection threads: --log JSON lines and the Maildir. */
#include "dev/cmd_sink_output.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

int
cmd_sink_write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;

    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int
cmd_sink_parse_num(const char *s, unsigned long max, unsigned long *out)
{
    char              *end;
    unsigned long long v;

    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || *end || v > max)
        return -1;
    *out = (unsigned long)v;
    return 0;
}

/* ---- --log: JSON lines -------------------------------------------------------------- */

struct jbuf {
    char  *p;   /* owns */
    size_t len, cap;
    bool   oom;
};

static void
jb_put(struct jbuf *j, const void *s, size_t n)
{
    if (j->oom)
        return;
    if (j->len + n > j->cap) {
        size_t cap = (j->len + n) * 2 + 256;
        char  *p = realloc(j->p, cap);
        if (!p) {
            j->oom = true;
            return;
        }
        j->p = p;
        j->cap = cap;
    }
    memcpy(j->p + j->len, s, n);
    j->len += n;
}

static void
jb_puts(struct jbuf *j, const char *s)
{
    jb_put(j, s, strlen(s));
}

/* Length of the valid UTF-8 sequence at p (RFC 3629), 0 if it is not one. */
static size_t
sink_utf8_len(const unsigned char *p)
{
    unsigned char lo = 0x80, hi = 0xbf;
    size_t        n;

    if (p[0] < 0x80)
        return 1;
    if (p[0] >= 0xc2 && p[0] <= 0xdf)
        n = 2;
    else if (p[0] >= 0xe0 && p[0] <= 0xef)
        n = 3;
    else if (p[0] >= 0xf0 && p[0] <= 0xf4)
        n = 4;
    else
        return 0;
    if (p[0] == 0xe0)
        lo = 0xa0;
    else if (p[0] == 0xed)
        hi = 0x9f;
    else if (p[0] == 0xf0)
        lo = 0x90;
    else if (p[0] == 0xf4)
        hi = 0x8f;
    for (size_t i = 1; i < n; i++, lo = 0x80, hi = 0xbf)
        if (p[i] < lo || p[i] > hi)
            return 0;
    return n;
}

/* A JSON string; NULL becomes null. Bytes that are not UTF-8 become \u00XX. */
static void
jb_str(struct jbuf *j, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    char                 esc[8];

    if (!s) {
        jb_puts(j, "null");
        return;
    }
    jb_put(j, "\"", 1);
    while (*p) {
        size_t n = sink_utf8_len(p);
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            jb_put(j, esc, 2);
        } else if (n == 0 || *p < 0x20 || *p == 0x7f) {
            snprintf(esc, sizeof(esc), "\\u%04x", *p);
            jb_put(j, esc, 6);
        } else {
            jb_put(j, p, n);
            p += n;
            continue;
        }
        p++;
    }
    jb_put(j, "\"", 1);
}

static void
jb_key(struct jbuf *j, const char *key)
{
    jb_puts(j, ",\"");
    jb_puts(j, key);
    jb_puts(j, "\":");
}

static void
jb_num(struct jbuf *j, const char *key, unsigned long long v)
{
    char num[24];

    jb_key(j, key);
    snprintf(num, sizeof(num), "%llu", v);
    jb_puts(j, num);
}

static void
jb_start(struct jbuf *j, const char *event, uint64_t session)
{
    struct timespec ts;
    struct tm       tm;
    char            t[40];

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(t, sizeof(t), "{\"ts\":\"%Y-%m-%dT%H:%M:%S", &tm);
    jb_puts(j, t);
    snprintf(t, sizeof(t), ".%03ldZ\"", ts.tv_nsec / 1000000);
    jb_puts(j, t);
    jb_key(j, "event");
    jb_str(j, event);
    jb_num(j, "session", session);
}

/* One write(2) on an O_APPEND file: lines from several threads never interleave. */
static void
jb_finish(const struct sink_config *cfg, struct jbuf *j)
{
    jb_puts(j, "}\n");
    if (!j->oom && cmd_sink_write_all(cfg->log_fd, j->p, j->len) < 0)
        perror("sink: --log");
    free(j->p);
}


static void
sink_log_tx_fields(struct jbuf *j, const struct sink_record *r)
{
    jb_num(j, "msg_in_session", r->msg);
    jb_key(j, "file");
    jb_str(j, r->file);
    jb_key(j, "mail_from");
    jb_str(j, r->from);
    jb_key(j, "rcpt");
    jb_put(j, "[", 1);
    for (int i = 0; i < r->nrcpt; i++) {
        if (i)
            jb_put(j, ",", 1);
        jb_str(j, r->rcpt[i]);
    }
    jb_put(j, "]", 1);
    jb_num(j, "size", r->size);
    jb_key(j, "auth");
    jb_str(j, r->user);
    if (r->code)
        jb_num(j, "code", (unsigned long long)r->code);
}

void
cmd_sink_log(const struct sink_config *cfg, const struct sink_record *r)
{
    struct jbuf j = { 0 };

    if (cfg->log_fd < 0)
        return;
    jb_start(&j, r->event, r->session);
    if (r->peer) {
        jb_key(&j, "peer");
        jb_str(&j, r->peer);
    }
    jb_key(&j, "tls");
    jb_puts(&j, r->tls ? "true" : "false");
    if (r->reason) {
        jb_key(&j, "reason");
        jb_str(&j, r->reason);
        jb_num(&j, "messages", r->msg);
    }
    if (r->is_tx)
        sink_log_tx_fields(&j, r);
    jb_finish(cfg, &j);
}

/* ---- the Maildir --------------------------------------------------------------------- */

/* Maildir names: time.MusecPpidSsessionNmsg.host; unique without a shared counter. */
int
cmd_sink_store(const struct sink_config *cfg, const char *msg, size_t len, uint64_t session,
               unsigned n, char *name, size_t namelen)
{
    char           tmp[4096], dst[4096], host[65];
    struct timeval tv;
    size_t         i;
    int            fd;

    for (i = 0; cfg->host[i] && i < sizeof(host) - 1; i++)
        host[i] = cfg->host[i] == '/' || cfg->host[i] == ':' ? '_' : cfg->host[i];
    host[i] = '\0';
    gettimeofday(&tv, NULL);
    snprintf(name, namelen, "%lld.M%06ldP%dS%lluN%u.%s", (long long)tv.tv_sec,
             (long)tv.tv_usec, (int)getpid(), (unsigned long long)session, n, host);
    snprintf(tmp, sizeof(tmp), "%s/tmp/%s", cfg->maildir, name);
    snprintf(dst, sizeof(dst), "%s/new/%s", cfg->maildir, name);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        goto fail;
    if (cmd_sink_write_all(fd, msg, len) < 0 || (cfg->fsync && fsync(fd) < 0)) {
        close(fd);
        unlink(tmp);
        goto fail;
    }
    if (close(fd) < 0 || rename(tmp, dst) < 0) {
        unlink(tmp);
        goto fail;
    }
    return 0;
fail:
    fprintf(stderr, "sink: session %llu: cannot store %s: %s\n",
            (unsigned long long)session, tmp, strerror(errno));
    return -1;
}
