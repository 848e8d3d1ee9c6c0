/* tests/fuzz/fuzz_data_decoder.c: libFuzzer target for core/proto/data_decoder.c.
 * The first five input octets choose the mode, the limits and a cut point; the rest is
 * the body. It is decoded four ways (one feed, two feeds cut at the chosen point, one
 * octet per feed, one feed in place) and each must match a reference model that applies
 * the rules one octet at a time, straight from the header's contract, to the whole input.
 * Every feed goes into an output buffer of exactly its input's size. */
#include "proto/data_decoder.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define HEADER 5

struct outcome {
    enum data_rc rc;
    size_t       used;
    size_t       size;
    unsigned     errors; /* after data_decoder_finish() */
    char        *out;
    size_t       out_len;
};

struct model {
    struct outcome *m;
    size_t          max_size, max_line, line;
};

static void
model_put(struct model *s, char c)
{
    s->m->size++;
    if (s->max_size != 0 && s->m->size > s->max_size)
        s->m->errors |= DATA_ERR_TOO_BIG;
    else
        s->m->out[s->m->out_len++] = c;
    if (s->max_line != 0 && ++s->line > s->max_line)
        s->m->errors |= DATA_ERR_LONG_LINE;
}

/* A dot at a line start in DOT mode, at in[i]; returns the next index, or n + 1 at the
 * end of data (the index to resume at is then in m->used). */
static size_t
model_dot(struct model *s, const uint8_t *in, size_t n, size_t i)
{
    if (i + 1 < n && in[i + 1] == '\r') {
        if (i + 2 < n && in[i + 2] == '\n') {
            s->m->rc = DATA_DONE;
            s->m->used = i + 3;
            return n + 1;
        }
        s->m->errors |= DATA_ERR_BARE_CR; /* ".\r" not the end: both dropped */
        return i + 2;
    }
    return i + 1; /* unstuffed */
}

static void
model(enum data_mode mode, size_t max_size, size_t max_line, const uint8_t *in, size_t n,
      struct outcome *m)
{
    struct model s = { m, max_size, max_line, 0 };
    size_t       i = 0;
    bool         bol = true;

    m->rc = DATA_MORE;
    m->used = n;
    while (i < n) {
        if (mode == DATA_MODE_DOT && bol && in[i] == '.') {
            bol = false;
            if ((i = model_dot(&s, in, n, i)) > n)
                return;
            continue;
        }
        bol = false;
        model_put(&s, (char)in[i]);
        if (in[i] == '\n')
            m->errors |= DATA_ERR_BARE_LF;
        if (in[i] == '\r' && i + 1 < n && in[i + 1] == '\n') {
            model_put(&s, '\n');
            s.line = 0;
            bol = true;
            i++;
        } else if (in[i] == '\r') {
            m->errors |= DATA_ERR_BARE_CR; /* next octet not LF, or none: finish says so */
        }
        i++;
    }
}

/* Feed in[0..n) in pieces ending at ends[], each into an exact-size output buffer. Pieces
 * after the end of data must be refused whole. */
static void
run(enum data_mode mode, size_t max_size, size_t max_line, const uint8_t *in,
    const size_t *ends, size_t n_ends, struct outcome *r)
{
    struct data_decoder d;
    size_t              start = 0, k;
    enum data_rc        rc;

    data_decoder_init(&d, mode, max_size, max_line);
    r->rc = DATA_MORE;
    for (k = 0; k < n_ends; k++) {
        size_t len = ends[k] - start, out_len, used;
        char  *out = malloc(len ? len : 1);

        rc = data_decoder_feed(&d, (const char *)in + start, len, out, &out_len, &used);
        if (out_len > len || used > len || (rc == DATA_MORE && used != len))
            abort();
        if (r->rc == DATA_DONE && (rc != DATA_DONE || used != 0 || out_len != 0))
            abort();
        if (mode == DATA_MODE_CHUNK && rc != DATA_MORE)
            abort();
        memcpy(r->out + r->out_len, out, out_len);
        r->out_len += out_len;
        r->used += used;
        r->rc = rc;
        start = ends[k];
        free(out);
    }
    r->size = d.size;
    r->errors = data_decoder_finish(&d);
}

static void
same(const struct outcome *a, const struct outcome *b)
{
    if (a->rc != b->rc || a->used != b->used || a->errors != b->errors || a->size != b->size ||
        a->out_len != b->out_len || memcmp(a->out, b->out, a->out_len) != 0)
        abort();
}

struct config {
    enum data_mode mode;
    size_t         max_size, max_line;
};

/* Decode in pieces ending at ends[] and compare with the model's outcome. */
static void
check_fed(const struct config *c, const uint8_t *in, size_t n, const size_t *ends,
          size_t n_ends, const struct outcome *want)
{
    struct outcome got = { 0 };

    got.out = malloc(n ? n : 1);
    run(c->mode, c->max_size, c->max_line, in, ends, n_ends, &got);
    same(&got, want);
    free(got.out);
}

/* One feed with out == in, as a caller decoding in its read buffer would. */
static void
check_in_place(const struct config *c, const uint8_t *in, size_t n, const struct outcome *want)
{
    struct data_decoder d;
    struct outcome      got = { 0 };

    got.out = malloc(n ? n : 1);
    memcpy(got.out, in, n);
    data_decoder_init(&d, c->mode, c->max_size, c->max_line);
    got.rc = data_decoder_feed(&d, got.out, n, got.out, &got.out_len, &got.used);
    got.size = d.size;
    got.errors = data_decoder_finish(&d);
    same(&got, want);
    free(got.out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct config  c;
    struct outcome want = { 0 };
    size_t         n, k, two[2], *ends;
    const uint8_t *in = data + HEADER;

    if (size < HEADER)
        return 0;
    c.mode = data[0] & 1 ? DATA_MODE_CHUNK : DATA_MODE_DOT;
    c.max_size = (size_t)data[1] << (data[0] & 2 ? 4 : 0); /* 0: no limit */
    c.max_line = data[2];
    n = size - HEADER;
    two[0] = ((size_t)data[3] << 8 | data[4]) % (n + 1);
    two[1] = n;

    want.out = malloc(n ? n : 1);
    model(c.mode, c.max_size, c.max_line, in, n, &want);
    if ((c.max_size != 0 && want.size > c.max_size) != ((want.errors & DATA_ERR_TOO_BIG) != 0))
        abort();
    check_fed(&c, in, n, &n, 1, &want);
    check_fed(&c, in, n, two, 2, &want);
    ends = malloc((n ? n : 1) * sizeof(*ends));
    for (k = 0; k < n; k++)
        ends[k] = k + 1;
    check_fed(&c, in, n, ends, n, &want);
    free(ends);
    check_in_place(&c, in, n, &want);
    free(want.out);
    return 0;
}
