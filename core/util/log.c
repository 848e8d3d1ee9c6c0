/* core/util/log.c: JSON-lines logger. Builds one object per line in the caller's struct
 * logline and hands it to the kernel with one write(2) on fd 2, so lines from several
 * threads never interleave (a line is at most LOG_LINE_MAX = PIPE_BUF bytes).
 * What to log, and never logging secrets, is the callers' business.
 *
 * Every line is valid JSON whatever the input: strings are escaped (control bytes and
 * bytes that are not part of valid UTF-8 become \u00XX), and a line that would pass
 * LOG_LINE_MAX is cut at a character boundary and closed with "truncated":true.
 * After a cut, l->skip is set with l->len > 0: later calls add nothing and log_end()
 * still writes the line (a skipped line below the threshold has l->len == 0). */
#include "util/log.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The one mutable global: set at start-up and again by every reload (daemon_ctl.c, on
 * the main or the control thread) while every thread logs. An atomic, relaxed: it
 * publishes nothing else, and a line logged a moment after a reload at the old level is
 * harmless. */
static atomic_int log_threshold = LOG_INFO;

static const char *const log_level_names[] = {
    [LOG_DEBUG] = "debug",   [LOG_INFO] = "info", [LOG_NOTICE] = "notice",
    [LOG_WARNING] = "warning", [LOG_ERR] = "err",
};

#define LOG_N_LEVELS  (sizeof(log_level_names) / sizeof(log_level_names[0]))
#define LOG_CUT_MARK  ",\"truncated\":true"
#define LOG_END_MARK  "}\n"
/* Bytes kept free at every step so a cut line can still be closed. */
#define LOG_RESERVE   (sizeof(LOG_CUT_MARK) - 1 + sizeof(LOG_END_MARK) - 1)

void
log_set_level(int level)
{
    if (level < LOG_DEBUG)
        level = LOG_DEBUG;
    if (level > LOG_ERR)
        level = LOG_ERR;
    atomic_store_explicit(&log_threshold, level, memory_order_relaxed);
}

static bool
log_is_skipped(int level)
{
    return level < atomic_load_explicit(&log_threshold, memory_order_relaxed);
}

int
log_level_from_name(const char *name)
{
    size_t i;

    if (name == NULL)
        return -1;
    for (i = 0; i < LOG_N_LEVELS; i++)
        if (strcmp(name, log_level_names[i]) == 0)
            return (int)i;
    return -1;
}

/* Room for n more bytes, keeping the reserve for closing a cut line. */
static bool
log_has_room(const struct logline *l, size_t n)
{
    return l->len + n + LOG_RESERVE <= LOG_LINE_MAX;
}

static void
log_put(struct logline *l, const char *s, size_t n)
{
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

/* Give up on the rest of the line: mark it and make later calls no-ops. */
static void
log_cut(struct logline *l)
{
    log_put(l, LOG_CUT_MARK, sizeof(LOG_CUT_MARK) - 1);
    l->skip = true;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if s[0] does not start one
 * (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF). */
static size_t
log_utf8_len(const unsigned char *s, size_t n)
{
    size_t need, i;

    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        need = 2;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        need = 3;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        need = 4;
    else
        return 0;
    if (n < need)
        return 0;
    for (i = 1; i < need; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] > 0x9f) ||
        (s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] > 0x8f))
        return 0;
    return need;
}

size_t
log_json_char(const unsigned char *p, size_t n, char out[8], size_t *used)
{
    size_t k = p[0] >= 0x80 ? log_utf8_len(p, n) : 1;

    *used = 1;
    if (p[0] == '"' || p[0] == '\\') {
        out[0] = '\\';
        out[1] = (char)p[0];
        return 2;
    }
    if (k == 0 || p[0] < 0x20 || p[0] == 0x7f) {
        snprintf(out, 8, "\\u%04x", p[0]);
        return 6;
    }
    memcpy(out, p, k);
    *used = k;
    return k;
}

/* Append s as a JSON string. Returns false if it had to be cut; the closing quote is
 * written either way (the reserve always has room for it). */
static bool
log_put_json_string(struct logline *l, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    char                 out[8];
    size_t               i = 0, len, used;

    log_put(l, "\"", 1);
    while (i < n) {
        len = log_json_char(p + i, n - i, out, &used);
        if (!log_has_room(l, len + 1))
            break;
        log_put(l, out, len);
        i += used;
    }
    log_put(l, "\"", 1);
    return i == n;
}

/* The keys log_begin() writes first, in this order, on every line. */
static bool
log_is_head_key(const char *key)
{
    switch (key[0]) { /* every field of every line comes here: one compare for most */
    case 't': return strcmp(key, "ts") == 0;
    case 'l': return strcmp(key, "level") == 0;
    case 'e': return strcmp(key, "event") == 0;
    case 's': return strcmp(key, "sid") == 0;
    default: return false;
    }
}

/* Start a field: ",\"key\":". Returns false, with nothing written, if even the key and
 * a minimal value do not fit; the line is then cut. After the head (l->head set), a
 * head key is the caller's bug and is left out: it would come twice, out of place. */
static bool
log_key(struct logline *l, const char *key)
{
    size_t mark = l->len;

    if (l->skip)
        return false;
    if (l->head != 0 && log_is_head_key(key)) {
        assert(!"log: ts, level, event and sid are log_begin()'s");
        return false;
    }
    if (!log_has_room(l, 1 + strlen(key) + 3 + 4)) {
        log_cut(l);
        return false;
    }
    if (l->len > 1)
        log_put(l, ",", 1);
    /* after the key, room for ':' and an empty string value */
    if (!log_put_json_string(l, key, strlen(key)) || !log_has_room(l, 3)) {
        l->len = mark;
        log_cut(l);
        return false;
    }
    log_put(l, ":", 1);
    return true;
}

/* Append a preformatted JSON token (number, true, null) or cut the line. */
static void
log_raw_value(struct logline *l, const char *key, const char *tok)
{
    size_t mark = l->len;
    size_t n = strlen(tok);

    if (!log_key(l, key))
        return;
    if (!log_has_room(l, n)) {
        l->len = mark;
        log_cut(l);
        return;
    }
    log_put(l, tok, n);
}

static void
log_timestamp(char *out, size_t outlen)
{
    struct timespec ts;
    struct tm       tm;
    size_t          n;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(out, outlen, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, outlen - n, ".%03dZ", (int)(ts.tv_nsec / 1000000));
}

void
log_begin(struct logline *l, int level, const char *event, uint64_t sid)
{
    char ts[40], id[24];

    l->len = 0;
    l->head = 0;
    l->skip = log_is_skipped(level);
    if (l->skip)
        return;
    if (level > LOG_ERR)
        level = LOG_ERR;
    log_put(l, "{", 1);
    log_timestamp(ts, sizeof(ts));
    log_str(l, "ts", ts);
    log_str(l, "level", log_level_names[level < 0 ? 0 : level]);
    log_str(l, "event", event);
    if (sid != 0) {
        snprintf(id, sizeof(id), "%08" PRIx64, sid);
        log_str(l, "sid", id);
    }
    l->head = l->len;
}

void
log_str(struct logline *l, const char *key, const char *val)
{
    if (val == NULL) {
        log_raw_value(l, key, "null");
        return;
    }
    log_strn(l, key, val, strlen(val));
}

void
log_strn(struct logline *l, const char *key, const char *val, size_t n)
{
    if (val == NULL) {
        log_raw_value(l, key, "null");
        return;
    }
    if (!log_key(l, key))
        return;
    if (!log_put_json_string(l, val, n))
        log_cut(l);
}

void
log_int(struct logline *l, const char *key, long long val)
{
    char tok[32];

    if (l->skip) /* below the threshold or cut: do not even format */
        return;
    snprintf(tok, sizeof(tok), "%lld", val);
    log_raw_value(l, key, tok);
}

void
log_dbl(struct logline *l, const char *key, double val)
{
    char tok[40];

    if (l->skip)
        return;
    if (!isfinite(val)) {
        log_raw_value(l, key, "null"); /* JSON has no NaN or Infinity */
        return;
    }
    snprintf(tok, sizeof(tok), "%.15g", val);
    log_raw_value(l, key, tok);
}

void
log_bool(struct logline *l, const char *key, bool val)
{
    log_raw_value(l, key, val ? "true" : "false");
}

void
log_end(struct logline *l)
{
    size_t  off = 0;
    ssize_t n;

    if (l->len == 0)
        return; /* below the threshold */
    log_put(l, LOG_END_MARK, sizeof(LOG_END_MARK) - 1);
    while (off < l->len) {
        n = write(STDERR_FILENO, l->buf + off, l->len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* nowhere to report a failing stderr */
        off += (size_t)n;
    }
    l->len = 0;
    l->skip = true;
}

void
log_msg(int level, const char *event, uint64_t sid, const char *fmt, ...)
{
    struct logline l;
    char           msg[LOG_LINE_MAX];
    va_list        ap;

    if (log_is_skipped(level))
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    log_begin(&l, level, event, sid);
    log_str(&l, "msg", msg);
    log_end(&l);
}
