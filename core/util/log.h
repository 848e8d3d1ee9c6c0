/* core/util/log.h: JSON-lines logger. One object per line on stderr, written with one
 * write(2) so lines from several threads never interleave. Every line has ts, level,
 * event, and sid when it belongs to a session. Never log secrets or bodies. */
#ifndef SLUICE_LOG_H
#define SLUICE_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum log_level {
    LOG_DEBUG,
    LOG_INFO,
    LOG_NOTICE,
    LOG_WARNING,
    LOG_ERR,
};

#define LOG_LINE_MAX 4096

struct logline {
    char   buf[LOG_LINE_MAX];
    size_t len;
    size_t head; /* length of the ts, level, event, sid part, once log_begin() wrote it */
    bool   skip; /* below the threshold: calls are no-ops */
};

/* Process-wide threshold: set at start-up and on reload; any thread (an atomic). */
void log_set_level(int level);
int  log_level_from_name(const char *name); /* -1 if unknown */

/* Start a line; sid 0 means "no session". Every line begins with the same keys in the
 * same order: ts, level, event, then sid when there is a session. The fields the caller
 * adds follow in the order of the calls; one named ts, level, event or sid is a bug
 * (an assert; left out where asserts are compiled out), so those four appear once. */
void log_begin(struct logline *l, int level, const char *event, uint64_t sid);
void log_str(struct logline *l, const char *key, const char *val);       /* NULL -> null */
void log_strn(struct logline *l, const char *key, const char *val, size_t n);
void log_int(struct logline *l, const char *key, long long val);
void log_dbl(struct logline *l, const char *key, double val);
void log_bool(struct logline *l, const char *key, bool val);
void log_end(struct logline *l);

/* Shorthand for a line with one "msg" field. */
void log_msg(int level, const char *event, uint64_t sid, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* JSON string escaping as the log does it, for others that write JSON (the control
 * socket): the text for the character at p (at most n bytes) into out, its length as the
 * result, and in *used the input bytes it stands for. Quotes and backslashes are escaped,
 * control octets and octets outside valid UTF-8 (RFC 3629) become \u00XX. */
size_t log_json_char(const unsigned char *p, size_t n, char out[8], size_t *used);

#endif
