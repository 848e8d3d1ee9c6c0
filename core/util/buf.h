/* core/util/buf.h: a growable byte buffer with a read offset, for socket I/O and messages.
 * Growth is the caller's decision: buf_reserve() takes a hard cap so that no client can
 * make a buffer grow past a configured limit. */
#ifndef SLUICE_BUF_H
#define SLUICE_BUF_H

#include <stdbool.h>
#include <stddef.h>

struct buf {
    char  *data; /* owns; NULL until first reserve */
    size_t off;  /* consumed prefix: live bytes are data[off .. len) */
    size_t len;
    size_t cap;
};

/* Ensure room for n more bytes without exceeding cap_total live+new bytes.
 * Compacts before growing. 0 on success, -1 on cap or allocation failure. */
int  buf_reserve(struct buf *b, size_t n, size_t cap_total);
/* A buffer with no memory yet gets exactly first octets of room, where buf_reserve()
 * would take 4096: for one that usually stays small and is freed when empty (a reply
 * of a few hundred octets then comes from malloc's per-thread cache). Nothing when b
 * has memory already. 0 on success, -1 on allocation failure. */
int  buf_reserve_first(struct buf *b, size_t first);
int  buf_append(struct buf *b, const void *p, size_t n, size_t cap_total);
int  buf_printf(struct buf *b, size_t cap_total, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void buf_consume(struct buf *b, size_t n);
void buf_reset(struct buf *b);   /* empty, keeps memory */
void buf_cleanup(struct buf *b); /* frees memory */

static inline char *
buf_head(const struct buf *b)
{
    return b->data + b->off;
}

static inline size_t
buf_used(const struct buf *b)
{
    return b->len - b->off;
}

static inline char *
buf_tail(const struct buf *b)
{
    return b->data + b->len;
}

static inline size_t
buf_room(const struct buf *b)
{
    return b->cap - b->len;
}

#endif
