/* tests/unit/test_log.c: the JSON-lines logger. Lines are captured by pointing fd 2 at a
 * pipe; each must be one valid-looking JSON object on one line, escaped, bounded. */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "util/log.h"
#include "testio.h"

static size_t
count_char(const char *s, char c)
{
    size_t n = 0;

    for (; *s; s++)
        n += *s == c;
    return n;
}

static void
a_line_has_ts_level_event_and_sid(void)
{
    struct logline l;
    const char    *out;

    test_capture_start();
    log_begin(&l, LOG_NOTICE, "auth.fail", 0x5f3a9c0e);
    log_str(&l, "user", "ann@example.org");
    log_int(&l, "code", 535);
    log_bool(&l, "tls", true);
    log_str(&l, "none", NULL);
    log_end(&l);
    out = test_capture_end();
    CHECK(strncmp(out, "{\"ts\":\"20", 9) == 0);
    CHECK(strstr(out, "\"level\":\"notice\",\"event\":\"auth.fail\",\"sid\":\"5f3a9c0e\"") != NULL);
    CHECK(strstr(out, "\"user\":\"ann@example.org\",\"code\":535,\"tls\":true,\"none\":null}\n"));
    CHECK(count_char(out, '\n') == 1);
}

/* The keys of a line in order, as "k1,k2,..." (top level only: values are strings without
 * escaped quotes, numbers or literals here). */
static const char *
keys_of(const char *line, char *out, size_t outlen)
{
    size_t n = 0;

    out[0] = '\0';
    for (const char *p = line + 1; *p && *p != '\n';) {
        const char *end = strchr(p + 1, '"');

        if (*p != '"' || end == NULL || end[1] != ':')
            break;
        n += (size_t)snprintf(out + n, outlen - n, "%s%.*s", n ? "," : "", (int)(end - p - 1),
                              p + 1);
        p = end + 2;
        if (*p == '"')
            p = strchr(p + 1, '"') + 1;
        else
            p += strcspn(p, ",}");
        if (*p == ',')
            p++;
    }
    return out;
}

static void
every_line_begins_with_ts_level_event_then_sid(void)
{
    struct logline l;
    char           keys[256];

    test_capture_start();
    log_begin(&l, LOG_NOTICE, "auth.fail", 0x5f3a9c0e);
    log_str(&l, "user", "ann@example.org");
    log_end(&l);
    CHECK(strcmp(keys_of(test_capture_end(), keys, sizeof(keys)), "ts,level,event,sid,user") == 0);

    test_capture_start();
    log_msg(LOG_WARNING, "relay.retry", 7, "again %d", 2);
    CHECK(strcmp(keys_of(test_capture_end(), keys, sizeof(keys)), "ts,level,event,sid,msg") == 0);

    test_capture_start(); /* no session: no sid, and the caller's fields right after event */
    log_begin(&l, LOG_ERR, "daemon.fail", 0);
    log_int(&l, "code", 71);
    log_bool(&l, "tls", false);
    log_end(&l);
    CHECK(strcmp(keys_of(test_capture_end(), keys, sizeof(keys)), "ts,level,event,code,tls") == 0);
}

static void
control_bytes_quotes_and_bad_utf8_are_escaped(void)
{
    struct logline l;
    const char    *out;

    test_capture_start();
    log_begin(&l, LOG_ERR, "x.y", 0);
    log_str(&l, "v", "a\"b\\c\r\nd\x01\xff\xc3\xa4");
    log_end(&l);
    out = test_capture_end();
    CHECK(strstr(out, "\"v\":\"a\\\"b\\\\c\\u000d\\u000ad\\u0001\\u00ff\xc3\xa4\"") != NULL);
    CHECK(count_char(out, '\n') == 1);
}

static void
an_overlong_line_is_cut_and_still_closed(void)
{
    struct logline l;
    char          *big = malloc(3 * LOG_LINE_MAX);
    const char    *out;
    size_t         len;

    memset(big, 'x', 3 * LOG_LINE_MAX - 1);
    big[3 * LOG_LINE_MAX - 1] = '\0';
    test_capture_start();
    log_begin(&l, LOG_ERR, "big", 0);
    log_str(&l, "v", big);
    log_int(&l, "after", 1);
    log_end(&l);
    out = test_capture_end();
    len = strlen(out);
    CHECK(len <= LOG_LINE_MAX);
    CHECK(len > 2 && strcmp(out + len - 2, "}\n") == 0);
    CHECK(strstr(out, "\"truncated\":true") != NULL);
    CHECK(count_char(out, '\n') == 1);
    free(big);
}

static void
lines_below_the_threshold_are_not_written(void)
{
    struct logline l;

    log_set_level(LOG_WARNING);
    test_capture_start();
    log_begin(&l, LOG_INFO, "quiet", 0);
    log_int(&l, "n", 1);
    log_end(&l);
    CHECK(test_capture_end()[0] == '\0');
    log_set_level(LOG_INFO);
}

/* Lines at debug level while the threshold moves between info and warning: none is
 * ever written. Under ThreadSanitizer (make unit-tsan) this also proves the threshold is
 * read and written without a data race: a reload sets it while workers log. */
static void *
debug_lines(void *arg)
{
    int           *written = arg;
    struct logline l;

    for (int i = 0; i < 20000; i++) {
        log_begin(&l, LOG_DEBUG, "quiet", 0);
        *written += !l.skip;
        log_end(&l);
    }
    return NULL;
}

static void
the_level_may_change_while_other_threads_log(void)
{
    pthread_t t[2];
    int       written[2] = {0, 0};

    log_set_level(LOG_INFO);
    for (int i = 0; i < 2; i++)
        CHECK(pthread_create(&t[i], NULL, debug_lines, &written[i]) == 0);
    for (int i = 0; i < 2000; i++)
        log_set_level(i % 2 ? LOG_INFO : LOG_WARNING);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    CHECK_EQ_INT(written[0] + written[1], 0);
    log_set_level(LOG_INFO);
}

int
main(void)
{
    RUN(a_line_has_ts_level_event_and_sid);
    RUN(every_line_begins_with_ts_level_event_then_sid);
    RUN(control_bytes_quotes_and_bad_utf8_are_escaped);
    RUN(an_overlong_line_is_cut_and_still_closed);
    RUN(lines_below_the_threshold_are_not_written);
    RUN(the_level_may_change_while_other_threads_log);
    return check_summary();
}
