/* core/daemon/metrics_text.h: the Prometheus text exposition format, version 0.0.4
 * (https://prometheus.io/docs/instrumenting/exposition_formats/): HELP and TYPE lines,
 * samples with at most one label, escaping. Knows no metric of sluice's: metrics.c says
 * which ones there are. */
#ifndef SLUICE_METRICS_TEXT_H
#define SLUICE_METRICS_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define METRICS_TEXT_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* A growing text; on allocation failure it stops growing and says so in failed. */
struct metrics_text {
    char  *p;      /* owns */
    size_t len, cap;
    bool   failed; /* out of memory: the text is incomplete, do not serve it */
};

void metrics_text_init(struct metrics_text *t);
void metrics_text_cleanup(struct metrics_text *t);

/* "# HELP name help" and "# TYPE name type"; type is counter, gauge or untyped. name
 * must match [a-zA-Z_:][a-zA-Z0-9_:]* (an assert: names are ours, never a client's). */
void metrics_text_family(struct metrics_text *t, const char *name, const char *type,
                         const char *help);
/* "name value" or "name{label=\"value\"} value", the label value escaped (\\, \", \n).
 * label NULL: no label. */
void metrics_text_u64(struct metrics_text *t, const char *name, const char *label,
                      const char *value, uint64_t v);
void metrics_text_double(struct metrics_text *t, const char *name, const char *label,
                         const char *value, double v);

/* "name{k1=\"v1\",k2=\"v2\"} value": labels holds n name/value pairs, names first
 * (labels[2i] the name, labels[2i+1] the value, escaped). n 0: no braces. */
void metrics_text_u64_labels(struct metrics_text *t, const char *name,
                             const char *const *labels, size_t n, uint64_t v);
void metrics_text_double_labels(struct metrics_text *t, const char *name,
                                const char *const *labels, size_t n, double v);

/* Whether s matches [a-zA-Z_:][a-zA-Z0-9_:]* (metric names) or, with colon false,
 * [a-zA-Z_][a-zA-Z0-9_]* (label names). */
bool metrics_text_is_name(const char *s, bool colon);

#endif
