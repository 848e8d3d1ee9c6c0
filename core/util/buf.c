/* core/util/buf.c: growable byte buffer; see buf.h. */
#include "util/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
buf_compact(struct buf *b)
{
    if (b->off == 0)
        return;
    memmove(b->data, b->data + b->off, b->len - b->off);
    b->len -= b->off;
    b->off = 0;
}

int
buf_reserve(struct buf *b, size_t n, size_t cap_total)
{
    size_t live = buf_used(b);
    size_t want, ncap;
    char  *p;

    if (n > cap_total || live > cap_total - n)
        return -1;
    if (b->cap - b->len >= n)
        return 0;
    if (b->off > 0 && b->cap - live >= n) {
        buf_compact(b);
        return 0;
    }
    buf_compact(b);
    want = live + n;
    ncap = b->cap ? b->cap : 4096;
    while (ncap < want)
        ncap *= 2;
    if (ncap > cap_total && want <= cap_total)
        ncap = cap_total;
    p = realloc(b->data, ncap);
    if (p == NULL)
        return -1;
    b->data = p;
    b->cap = ncap;
    return 0;
}

int
buf_reserve_first(struct buf *b, size_t first)
{
    if (b->data != NULL || first == 0)
        return 0;
    if ((b->data = malloc(first)) == NULL)
        return -1;
    b->off = b->len = 0;
    b->cap = first;
    return 0;
}

int
buf_append(struct buf *b, const void *p, size_t n, size_t cap_total)
{
    if (n == 0)
        return 0;
    if (buf_reserve(b, n, cap_total) != 0)
        return -1;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int
buf_printf(struct buf *b, size_t cap_total, const char *fmt, ...)
{
    va_list ap;
    int     n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || buf_reserve(b, (size_t)n + 1, cap_total) != 0)
        return -1;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void
buf_consume(struct buf *b, size_t n)
{
    b->off += n;
    if (b->off >= b->len)
        b->off = b->len = 0;
}

void
buf_reset(struct buf *b)
{
    b->off = b->len = 0;
}

void
buf_cleanup(struct buf *b)
{
    free(b->data);
    b->data = NULL;
    b->off = b->len = b->cap = 0;
}
