/* core/daemon/metrics_text.c: writing the Prometheus text exposition format 0.0.4
 * (metrics_text.h): HELP/TYPE lines and samples with their labels, with the format's escaping. Which
 * metrics exist and where their values come from is metrics.c's. */
#include "daemon/metrics_text.h"

#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
metrics_text_init(struct metrics_text *t)
{
    memset(t, 0, sizeof(*t));
}

void
metrics_text_cleanup(struct metrics_text *t)
{
    free(t->p);
    memset(t, 0, sizeof(*t));
}

static void
metrics_text_put(struct metrics_text *t, const char *s, size_t n)
{
    size_t cap;
    char  *p;

    if (t->failed)
        return;
    if (t->len + n + 1 > t->cap) {
        cap = t->cap < 4096 ? 4096 : t->cap;
        while (cap < t->len + n + 1)
            cap *= 2;
        p = realloc(t->p, cap);
        if (p == NULL) {
            t->failed = true;
            return;
        }
        t->p = p;
        t->cap = cap;
    }
    memcpy(t->p + t->len, s, n);
    t->len += n;
    t->p[t->len] = '\0';
}

static void
metrics_text_str(struct metrics_text *t, const char *s)
{
    metrics_text_put(t, s, strlen(s));
}

/* Label values escape \, " and LF; HELP text escapes \ and LF only. */
static void
metrics_text_escaped(struct metrics_text *t, const char *s, bool quote)
{
    for (; *s != '\0'; s++) {
        if (*s == '\\')
            metrics_text_put(t, "\\\\", 2);
        else if (*s == '\n')
            metrics_text_put(t, "\\n", 2);
        else if (*s == '"' && quote)
            metrics_text_put(t, "\\\"", 2);
        else
            metrics_text_put(t, s, 1);
    }
}

bool
metrics_text_is_name(const char *s, bool colon)
{
    if (s == NULL || *s == '\0' || (*s >= '0' && *s <= '9'))
        return false;
    for (; *s != '\0'; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9') || *s == '_' || (colon && *s == ':')))
            return false;
    return true;
}

void
metrics_text_family(struct metrics_text *t, const char *name, const char *type,
                    const char *help)
{
    assert(metrics_text_is_name(name, true));
    metrics_text_str(t, "# HELP ");
    metrics_text_str(t, name);
    metrics_text_put(t, " ", 1);
    metrics_text_escaped(t, help, false);
    metrics_text_str(t, "\n# TYPE ");
    metrics_text_str(t, name);
    metrics_text_put(t, " ", 1);
    metrics_text_str(t, type);
    metrics_text_put(t, "\n", 1);
}

static void
metrics_text_series(struct metrics_text *t, const char *name, const char *const *labels,
                    size_t n)
{
    assert(metrics_text_is_name(name, true));
    metrics_text_str(t, name);
    for (size_t i = 0; i < n; i++) {
        assert(metrics_text_is_name(labels[2 * i], false));
        metrics_text_put(t, i == 0 ? "{" : ",", 1);
        metrics_text_str(t, labels[2 * i]);
        metrics_text_put(t, "=\"", 2);
        metrics_text_escaped(t, labels[2 * i + 1] != NULL ? labels[2 * i + 1] : "", true);
        metrics_text_put(t, "\"", 1);
    }
    if (n > 0)
        metrics_text_put(t, "}", 1);
    metrics_text_put(t, " ", 1);
}

static void
metrics_text_u64_value(struct metrics_text *t, uint64_t v)
{
    char num[32];

    snprintf(num, sizeof(num), "%llu\n", (unsigned long long)v);
    metrics_text_str(t, num);
}

static void
metrics_text_double_value(struct metrics_text *t, double v)
{
    char num[48];

    if (isnan(v))
        snprintf(num, sizeof(num), "NaN\n");
    else if (isinf(v))
        snprintf(num, sizeof(num), "%s\n", v > 0 ? "+Inf" : "-Inf");
    else
        snprintf(num, sizeof(num), "%.17g\n", v);
    metrics_text_str(t, num);
}

void
metrics_text_u64_labels(struct metrics_text *t, const char *name, const char *const *labels,
                        size_t n, uint64_t v)
{
    metrics_text_series(t, name, labels, n);
    metrics_text_u64_value(t, v);
}

void
metrics_text_double_labels(struct metrics_text *t, const char *name,
                           const char *const *labels, size_t n, double v)
{
    metrics_text_series(t, name, labels, n);
    metrics_text_double_value(t, v);
}

void
metrics_text_u64(struct metrics_text *t, const char *name, const char *label,
                 const char *value, uint64_t v)
{
    const char *pair[] = {label, value};

    metrics_text_u64_labels(t, name, pair, label != NULL, v);
}

void
metrics_text_double(struct metrics_text *t, const char *name, const char *label,
                    const char *value, double v)
{
    const char *pair[] = {label, value};

    metrics_text_double_labels(t, name, pair, label != NULL, v);
}
