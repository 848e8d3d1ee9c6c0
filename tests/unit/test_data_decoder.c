/* tests/unit/test_data_decoder.c: core/proto/data_decoder.c: the end of DATA, dot-unstuffing,
 * SMTP smuggling (every bare CR/LF variant of the end line), the size and line limits,
 * BDAT chunks. Every case is also fed cut at every byte and every pair of bytes, and one
 * byte at a time, into buffers of exactly the fed size, and must decode the same. */
#include "check.h"
#include "proto/data_decoder.h"

#include <stdbool.h>
#include <stdlib.h>

#define S(lit) lit, sizeof(lit) - 1 /* a literal with its length, NULs included */

#define DOT   DATA_MODE_DOT
#define CHUNK DATA_MODE_CHUNK
#define CR    DATA_ERR_BARE_CR
#define LF    DATA_ERR_BARE_LF
#define BIG   DATA_ERR_TOO_BIG
#define LONG  DATA_ERR_LONG_LINE

struct dec_case {
    enum data_mode mode;
    size_t         max_size, max_line;
    const char    *in;
    size_t         len;
    enum data_rc   rc;
    size_t         used; /* octets consumed */
    const char    *out;
    size_t         out_len;
    unsigned       errors; /* after data_decoder_finish() */
};

static const struct dec_case dec_cases[] = {
    /* the end line, and what is around it */
    { DOT, 0, 0, S(".\r\n"), DATA_DONE, 3, S(""), 0 }, /* data starts at a line start */
    { DOT, 0, 0, S(".\r\nMAIL FROM:<a@b>\r\n"), DATA_DONE, 3, S(""), 0 },
    { DOT, 0, 0, S("\r\n.\r\n"), DATA_DONE, 5, S("\r\n"), 0 },
    { DOT, 0, 0, S("Hello\r\n.\r\n"), DATA_DONE, 10, S("Hello\r\n"), 0 },
    { DOT, 0, 0, S("Hello\r\n.\r\nQUIT\r\n"), DATA_DONE, 10, S("Hello\r\n"), 0 },
    { DOT, 0, 0, S("Hello\r\n.\r\n.\r\n"), DATA_DONE, 10, S("Hello\r\n"), 0 },
    { DOT, 0, 0, S("abc"), DATA_MORE, 3, S("abc"), 0 },
    { DOT, 0, 0, S(""), DATA_MORE, 0, S(""), 0 },
    { DOT, 0, 0, S("abc\r\n."), DATA_MORE, 6, S("abc\r\n"), 0 },
    { DOT, 0, 0, S("abc\r\n.\r"), DATA_MORE, 7, S("abc\r\n"), CR },
    { DOT, 0, 0, S("abc\r"), DATA_MORE, 4, S("abc\r"), CR },
    { DOT, 0, 0, S("a\0b\r\n\xff\xfe\r\n.\r\n"), DATA_DONE, 12, S("a\0b\r\n\xff\xfe\r\n"), 0 },
    /* dot-unstuffing: a leading dot goes, whatever follows it */
    { DOT, 0, 0, S("..\r\n.\r\n"), DATA_DONE, 7, S(".\r\n"), 0 },
    { DOT, 0, 0, S(".foo\r\n.\r\n"), DATA_DONE, 9, S("foo\r\n"), 0 },
    { DOT, 0, 0, S("a\r\n..b\r\n...\r\n.\r\n"), DATA_DONE, 16, S("a\r\n.b\r\n..\r\n"), 0 },
    { DOT, 0, 0, S("a.\r\n.\r\n"), DATA_DONE, 7, S("a.\r\n"), 0 },
    { DOT, 0, 0, S("a\r\n. \r\n.\r\n"), DATA_DONE, 10, S("a\r\n \r\n"), 0 },
    { DOT, 0, 0, S("a\r\n.\r\n.\r\n"), DATA_DONE, 6, S("a\r\n"), 0 },
    /* smuggling: only CRLF . CRLF ends the data; every other form is text, flagged */
    { DOT, 0, 0, S("a\n.\nb\r\n.\r\n"), DATA_DONE, 10, S("a\n.\nb\r\n"), LF },
    { DOT, 0, 0, S("a\r.\rb\r\n.\r\n"), DATA_DONE, 10, S("a\r.\rb\r\n"), CR },
    { DOT, 0, 0, S("a\n.\r\nb\r\n.\r\n"), DATA_DONE, 11, S("a\n.\r\nb\r\n"), LF },
    { DOT, 0, 0, S("a\r\n.\nb\r\n.\r\n"), DATA_DONE, 11, S("a\r\n\nb\r\n"), LF },
    { DOT, 0, 0, S(".\nb\r\n.\r\n"), DATA_DONE, 8, S("\nb\r\n"), LF },
    { DOT, 0, 0, S("a\r\n.\rb\r\n.\r\n"), DATA_DONE, 11, S("a\r\nb\r\n"), CR },
    { DOT, 0, 0, S("a\r\n.\r\r\n.\r\n"), DATA_DONE, 10, S("a\r\n\r\n"), CR },
    { DOT, 0, 0, S("a\r\r\n.\r\n"), DATA_DONE, 7, S("a\r\r\n"), CR },
    { DOT, 0, 0, S("a\n\r\n.\r\n"), DATA_DONE, 7, S("a\n\r\n"), LF },
    { DOT, 0, 0, S("a\r\n\n.\r\n"), DATA_MORE, 7, S("a\r\n\n.\r\n"), LF },
    { DOT, 0, 0, S("a\r\n\n.\n"), DATA_MORE, 6, S("a\r\n\n.\n"), LF },
    { DOT, 0, 0, S("\n.\n"), DATA_MORE, 3, S("\n.\n"), LF },
    { DOT, 0, 0, S("\r.\r"), DATA_MORE, 3, S("\r.\r"), CR },
    { DOT, 0, 0, S("\n.\r\n"), DATA_MORE, 4, S("\n.\r\n"), LF },
    { DOT, 0, 0, S("\r\n.\n"), DATA_MORE, 4, S("\r\n\n"), LF },
    { DOT, 0, 0, S("\r.\r\n"), DATA_MORE, 4, S("\r.\r\n"), CR },
    { DOT, 0, 0, S(".\n"), DATA_MORE, 2, S("\n"), LF },
    { DOT, 0, 0, S(".\r"), DATA_MORE, 2, S(""), CR },
    { DOT, 0, 0, S(".\rX"), DATA_MORE, 3, S("X"), CR },
    { DOT, 0, 0, S("\n.\r"), DATA_MORE, 3, S("\n.\r"), LF | CR },
    /* size: message octets after unstuffing; output stops at the limit, decoding goes on */
    { DOT, 5, 0, S("abc\r\n.\r\n"), DATA_DONE, 8, S("abc\r\n"), 0 },
    { DOT, 5, 0, S("abcd\r\n.\r\n"), DATA_DONE, 9, S("abcd\r"), BIG },
    { DOT, 5, 0, S("..cd\r\n.\r\n"), DATA_DONE, 9, S(".cd\r\n"), 0 },
    { DOT, 1, 0, S("ab\r\n..\r\n.\r\n"), DATA_DONE, 11, S("a"), BIG },
    { DOT, 2, 0, S("\r\n.\r\n"), DATA_DONE, 5, S("\r\n"), 0 },
    { DOT, 1, 0, S("\r\n.\r\n"), DATA_DONE, 5, S("\r"), BIG },
    { DOT, 1, 0, S(".\r\n"), DATA_DONE, 3, S(""), 0 },
    { DOT, 4, 0, S("ab\nc\r\n.\r\n"), DATA_DONE, 9, S("ab\nc"), BIG | LF },
    /* line length: with CRLF, after unstuffing; a bare LF does not end a line */
    { DOT, 0, 5, S("abc\r\nabc\r\n.\r\n"), DATA_DONE, 13, S("abc\r\nabc\r\n"), 0 },
    { DOT, 0, 5, S("abc\r\nabcd\r\n.\r\n"), DATA_DONE, 14, S("abc\r\nabcd\r\n"), LONG },
    { DOT, 0, 5, S("..bc\r\n.\r\n"), DATA_DONE, 9, S(".bc\r\n"), 0 },
    { DOT, 0, 5, S("...c\r\n.\r\n"), DATA_DONE, 9, S("..c\r\n"), 0 },
    { DOT, 0, 5, S("abcde"), DATA_MORE, 5, S("abcde"), 0 },
    { DOT, 0, 5, S("abcdef"), DATA_MORE, 6, S("abcdef"), LONG },
    { DOT, 0, 5, S("ab\nc\r\n.\r\n"), DATA_DONE, 9, S("ab\nc\r\n"), LF | LONG },
    { DOT, 0, 2, S("\r\n.\r\n"), DATA_DONE, 5, S("\r\n"), 0 },
    { DOT, 0, 1, S(".\r\n"), DATA_DONE, 3, S(""), 0 }, /* the end line is not message */
    { DOT, 3, 3, S("abcdef\r\n.\r\n"), DATA_DONE, 11, S("abc"), BIG | LONG },
    /* BDAT: no dots, no end; the same CRLF rules across chunks */
    { CHUNK, 0, 0, S("a\r\n.\r\nb"), DATA_MORE, 7, S("a\r\n.\r\nb"), 0 },
    { CHUNK, 0, 0, S(".\r\n"), DATA_MORE, 3, S(".\r\n"), 0 },
    { CHUNK, 0, 0, S("..x\r\n"), DATA_MORE, 5, S("..x\r\n"), 0 },
    { CHUNK, 0, 0, S("a\nb"), DATA_MORE, 3, S("a\nb"), LF },
    { CHUNK, 0, 0, S("a\rb"), DATA_MORE, 3, S("a\rb"), CR },
    { CHUNK, 0, 0, S("a\r"), DATA_MORE, 2, S("a\r"), CR },
    { CHUNK, 0, 0, S("a"), DATA_MORE, 1, S("a"), 0 }, /* no final CRLF: not ours to flag */
    { CHUNK, 0, 0, S(""), DATA_MORE, 0, S(""), 0 },
    { CHUNK, 0, 0, S("\n.\n"), DATA_MORE, 3, S("\n.\n"), LF },
    { CHUNK, 3, 0, S("abcd"), DATA_MORE, 4, S("abc"), BIG },
    { CHUNK, 4, 0, S("ab\r\n"), DATA_MORE, 4, S("ab\r\n"), 0 },
    { CHUNK, 0, 4, S("ab\r\nab\r\n"), DATA_MORE, 8, S("ab\r\nab\r\n"), 0 },
    { CHUNK, 0, 4, S("ab\r\nabc\r\n"), DATA_MORE, 9, S("ab\r\nabc\r\n"), LONG },
    { CHUNK, 0, 4, S(".abc\r\n"), DATA_MORE, 6, S(".abc\r\n"), LONG },
};

#define N_CASES (sizeof(dec_cases) / sizeof(dec_cases[0]))

/* The outcome of decoding one input, however it was fed. */
struct result {
    enum data_rc rc;
    size_t       used;
    char         out[1024];
    size_t       out_len;
    unsigned     errors;
};

/* Feed c->in in pieces ending at the given offsets (the last one is c->len). Each piece
 * is copied into a buffer of exactly its size, and decoded into another one, so that the
 * sanitizer sees any read or write past them. */
static void
decode_pieces(const struct dec_case *c, const size_t *ends, size_t n_ends, struct result *r)
{
    struct data_decoder d;
    size_t              start = 0, k;

    data_decoder_init(&d, c->mode, c->max_size, c->max_line);
    memset(r, 0, sizeof(*r));
    r->rc = DATA_MORE;
    for (k = 0; k < n_ends; k++) {
        size_t len = ends[k] - start, out_len = 99, used = 99;
        char  *in = malloc(len ? len : 1), *out = malloc(len ? len : 1);
        enum data_rc rc;

        memcpy(in, c->in + start, len);
        rc = data_decoder_feed(&d, in, len, out, &out_len, &used);
        CHECK(out_len <= len);
        CHECK(used <= len);
        CHECK(rc == DATA_DONE || used == len);
        if (r->rc == DATA_DONE) /* fed after the end: nothing is ours */
            CHECK(rc == DATA_DONE && used == 0 && out_len == 0);
        if (out_len <= len && r->out_len + out_len <= sizeof(r->out)) {
            memcpy(r->out + r->out_len, out, out_len);
            r->out_len += out_len;
        }
        r->used += used;
        r->rc = rc;
        start = ends[k];
        free(in);
        free(out);
    }
    r->errors = data_decoder_finish(&d);
    CHECK_EQ_INT(data_decoder_finish(&d), r->errors); /* finishing twice changes nothing */
}

static bool
result_is(const struct result *r, const struct dec_case *c)
{
    return r->rc == c->rc && r->used == c->used && r->out_len == c->out_len &&
           memcmp(r->out, c->out, c->out_len) == 0 && r->errors == c->errors;
}

static void
report(const char *how, size_t i, const struct result *r)
{
    fprintf(stderr, "  case %zu (%s): rc %d used %zu errors %#x out \"", i, how, (int)r->rc,
            r->used, r->errors);
    fwrite(r->out, 1, r->out_len, stderr);
    fprintf(stderr, "\"\n");
}

static void
every_case_decodes_as_expected_in_one_feed(void)
{
    struct result r;
    size_t        i;

    for (i = 0; i < N_CASES; i++) {
        decode_pieces(&dec_cases[i], &dec_cases[i].len, 1, &r);
        CHECK(result_is(&r, &dec_cases[i]));
        if (!result_is(&r, &dec_cases[i]))
            report("whole", i, &r);
    }
}

static void
every_case_decodes_the_same_cut_at_any_two_points(void)
{
    struct result r;
    size_t        i, a, b, ends[3];

    for (i = 0; i < N_CASES; i++) {
        const struct dec_case *c = &dec_cases[i];

        for (a = 0; a <= c->len; a++) {
            for (b = a; b <= c->len; b++) {
                ends[0] = a;
                ends[1] = b;
                ends[2] = c->len;
                decode_pieces(c, ends, 3, &r);
                if (!result_is(&r, c)) {
                    CHECK(result_is(&r, c));
                    fprintf(stderr, "  cut at %zu and %zu\n", a, b);
                    report("cut", i, &r);
                    goto next_case;
                }
            }
        }
        CHECK(true);
    next_case:;
    }
}

static void
every_case_decodes_the_same_one_byte_at_a_time(void)
{
    struct result r;
    size_t        i, k, ends[64];

    for (i = 0; i < N_CASES; i++) {
        const struct dec_case *c = &dec_cases[i];

        for (k = 0; k < c->len && k < 64; k++)
            ends[k] = k + 1;
        CHECK(c->len < 64);
        decode_pieces(c, ends, c->len, &r);
        CHECK(result_is(&r, c));
        if (!result_is(&r, c))
            report("bytewise", i, &r);
    }
}

/* Decode in one feed into a fresh buffer; returns the rc, fills the rest. */
static enum data_rc
decode(struct data_decoder *d, const char *in, size_t len, char *out, size_t *out_len,
       size_t *used)
{
    return data_decoder_feed(d, in, len, out, out_len, used);
}

/* Each way a client (or a lax server before us) might write an end line without the
 * strict CRLF . CRLF, each tried mid-line, at a line start and at the start of data: none
 * may end the data, so the smuggled command that follows stays message text. */
static void
no_sloppy_end_line_ends_the_data(void)
{
    static const char *const sloppy[] = {
        "\n.\n",   "\n.\r\n",   "\r\n.\n", "\r.\r",     "\r.\r\n", "\n.\r",
        ".\n",     ".\r",       "\r.\n",   "\r\r\n.\r", "\n\n.\n", "\r\n.\r\r\n",
        "\r\n.\n\r\n", "\r\n\n.\r\n", "\n\r\n.\n", ".\r\r\n", ".\n\r\n",
    };
    static const char *const before[] = { "Subject: x\r\n\r\nbody", "Subject: x\r\n\r\n", "" };
    char                     in[256], out[256];
    size_t                   i, k, len, out_len, used;

    for (i = 0; i < sizeof(sloppy) / sizeof(sloppy[0]); i++) {
        for (k = 0; k < 3; k++) {
            struct data_decoder d;

            len = (size_t)snprintf(in, sizeof(in), "%s%sMAIL FROM:<evil@example.org>\r\n",
                                   before[k], sloppy[i]);
            data_decoder_init(&d, DATA_MODE_DOT, 0, 0);
            CHECK_EQ_INT(decode(&d, in, len, out, &out_len, &used), DATA_MORE);
            CHECK_EQ_INT(used, len);
            CHECK(d.errors & (DATA_ERR_BARE_CR | DATA_ERR_BARE_LF));
            CHECK(memmem(out, out_len, "MAIL FROM:<evil@example.org>\r\n", 30) != NULL);
            /* and the genuine end line still works after it */
            CHECK_EQ_INT(decode(&d, S(".\r\n"), out, &out_len, &used), DATA_DONE);
            CHECK_EQ_INT(used, 3);
            CHECK_EQ_INT(out_len, 0);
        }
    }
}

static void
feeding_after_the_end_consumes_nothing(void)
{
    struct data_decoder d;
    char                out[32];
    size_t              out_len, used;

    data_decoder_init(&d, DATA_MODE_DOT, 0, 0);
    CHECK_EQ_INT(decode(&d, S("a\r\n.\r\nRSET\r\n"), out, &out_len, &used), DATA_DONE);
    CHECK_EQ_INT(used, 6);
    CHECK_EQ_INT(decode(&d, S("RSET\r\n"), out, &out_len, &used), DATA_DONE);
    CHECK_EQ_INT(used, 0);
    CHECK_EQ_INT(out_len, 0);
    CHECK_EQ_INT(d.size, 3);
}

static void
decoding_in_place_gives_the_same_output(void)
{
    char                buf[64] = "a\r\n..b\r\n.c\r\n\n.x\r\n.\r\n";
    size_t              len = strlen(buf), out_len, used;
    struct data_decoder d;

    data_decoder_init(&d, DATA_MODE_DOT, 0, 0);
    CHECK_EQ_INT(decode(&d, buf, len, buf, &out_len, &used), DATA_DONE);
    CHECK_EQ_INT(used, len);
    CHECK_MEM(buf, out_len, "a\r\n.b\r\nc\r\n\n.x\r\n");
    CHECK_EQ_INT(d.errors, DATA_ERR_BARE_LF);
}

/* BDAT: one decoder for all chunks of a message, so a CRLF split between chunks is fine
 * and size and line length add up across them. */
static void
bdat_chunks_are_judged_as_one_message(void)
{
    struct data_decoder d;
    char                out[32];
    size_t              out_len, used;

    data_decoder_init(&d, DATA_MODE_CHUNK, 10, 6);
    decode(&d, S("abc\r"), out, &out_len, &used);
    decode(&d, S("\nab"), out, &out_len, &used);
    CHECK_EQ_INT(d.errors, 0);
    decode(&d, S("cd"), out, &out_len, &used);
    CHECK_EQ_INT(d.errors, 0); /* "abcd": 4, a CRLF would make 6 */
    decode(&d, S("e"), out, &out_len, &used);
    CHECK_EQ_INT(d.errors, 0);
    decode(&d, S("\r\n"), out, &out_len, &used);
    CHECK_EQ_INT(d.errors, DATA_ERR_LONG_LINE | DATA_ERR_TOO_BIG); /* 7 octets; 12 in all */
    CHECK_MEM(out, out_len, ""); /* the limit was reached with "e" */
    CHECK_EQ_INT(d.size, 12);
    CHECK_EQ_INT(data_decoder_finish(&d), DATA_ERR_LONG_LINE | DATA_ERR_TOO_BIG);
}

/* A DATA body of n_lines lines of width octets with CRLF, every third one starting with a
 * dot (stuffed on the wire), then the end line. *msg gets the message, *wire the input. */
static void
make_message(size_t n_lines, size_t width, char **wire, size_t *wire_len, char **msg,
             size_t *msg_len)
{
    size_t i, w = 0, m = 0;

    *wire = malloc(n_lines * (width + 1) + 3);
    *msg = malloc(n_lines * width);
    for (i = 0; i < n_lines; i++) {
        char  *line = *msg + m;
        size_t k;

        for (k = 0; k < width - 2; k++)
            line[k] = (char)('a' + (i + k) % 26);
        if (i % 3 == 0)
            line[0] = '.';
        line[width - 2] = '\r';
        line[width - 1] = '\n';
        if (line[0] == '.')
            (*wire)[w++] = '.';
        memcpy(*wire + w, line, width);
        w += width;
        m += width;
    }
    memcpy(*wire + w, ".\r\n", 3);
    *wire_len = w + 3;
    *msg_len = m;
}

static void
a_message_of_exactly_max_size_passes_and_one_more_octet_does_not(void)
{
    char               *wire, *msg, *out;
    size_t              wire_len, msg_len, out_len, used;
    struct data_decoder d;

    make_message(1000, 78, &wire, &wire_len, &msg, &msg_len);
    out = malloc(wire_len);
    data_decoder_init(&d, DATA_MODE_DOT, msg_len, 78);
    CHECK_EQ_INT(decode(&d, wire, wire_len, out, &out_len, &used), DATA_DONE);
    CHECK_EQ_INT(used, wire_len);
    CHECK(out_len == msg_len && memcmp(out, msg, msg_len) == 0);
    CHECK_EQ_INT(data_decoder_finish(&d), 0);

    data_decoder_init(&d, DATA_MODE_DOT, msg_len - 1, 77);
    CHECK_EQ_INT(decode(&d, wire, wire_len, out, &out_len, &used), DATA_DONE);
    CHECK_EQ_INT(used, wire_len); /* consumed to the real end */
    CHECK(out_len == msg_len - 1 && memcmp(out, msg, msg_len - 1) == 0);
    CHECK_EQ_INT(d.size, msg_len);
    CHECK_EQ_INT(data_decoder_finish(&d), DATA_ERR_TOO_BIG | DATA_ERR_LONG_LINE);
    free(wire);
    free(msg);
    free(out);
}

static void
a_long_stuffed_message_decodes_the_same_one_byte_at_a_time(void)
{
    char               *wire, *msg, *out;
    size_t              wire_len, msg_len, out_len, used, i, total = 0;
    struct data_decoder d;
    enum data_rc        rc = DATA_MORE;

    make_message(3000, 30, &wire, &wire_len, &msg, &msg_len);
    out = malloc(msg_len);
    data_decoder_init(&d, DATA_MODE_DOT, 0, 1000);
    for (i = 0; i < wire_len && rc == DATA_MORE; i++) {
        rc = decode(&d, wire + i, 1, out + total, &out_len, &used);
        CHECK(used == 1 && out_len <= 1);
        total += out_len;
    }
    CHECK_EQ_INT(rc, DATA_DONE);
    CHECK_EQ_INT(i, wire_len);
    CHECK(total == msg_len && memcmp(out, msg, msg_len) == 0);
    CHECK_EQ_INT(data_decoder_finish(&d), 0);
    free(wire);
    free(msg);
    free(out);
}

int
main(void)
{
    RUN(every_case_decodes_as_expected_in_one_feed);
    RUN(every_case_decodes_the_same_cut_at_any_two_points);
    RUN(every_case_decodes_the_same_one_byte_at_a_time);
    RUN(no_sloppy_end_line_ends_the_data);
    RUN(feeding_after_the_end_consumes_nothing);
    RUN(decoding_in_place_gives_the_same_output);
    RUN(bdat_chunks_are_judged_as_one_message);
    RUN(a_message_of_exactly_max_size_passes_and_one_more_octet_does_not);
    RUN(a_long_stuffed_message_decodes_the_same_one_byte_at_a_time);
    return check_summary();
}
