/* tests/fuzz/fuzz_jose.h: what both JOSE fuzz targets (fuzz_jose_jwk.c, fuzz_jose_jwt.c)
 * check of core/proto/jose.c's base64url decoder on every text they are given. */
#ifndef SLUICE_FUZZ_JOSE_H
#define SLUICE_FUZZ_JOSE_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/jose.h"

#define FUZZ_ASSERT(e)                                                                   \
    do {                                                                                 \
        if (!(e))                                                                        \
            __builtin_trap();                                                            \
    } while (0)

/* A heap block holding exactly p[0..n) and a NUL: ASan sees a read past it. */
static inline char *
fuzz_dup(const void *p, size_t n)
{
    char *c = malloc(n + 1);

    FUZZ_ASSERT(c != NULL);
    memcpy(c, p, n);
    c[n] = '\0';
    return c;
}

/* text decodes into a block of exactly jose_b64url_decoded_len(len) octets or is
 * refused; with one octet less room it is refused; what decodes encodes back to the
 * same text (one text per value). Returns the octets (malloc'd, *outlen set) or NULL. */
static inline unsigned char *
fuzz_b64url(const char *text, size_t len, size_t *outlen)
{
    long           want = jose_b64url_decoded_len(len), n;
    unsigned char *out;
    char          *enc;

    if (want < 0) {
        unsigned char room[8];

        FUZZ_ASSERT(len % 4 == 1);
        FUZZ_ASSERT(jose_b64url_decode(text, len, room, sizeof(room)) == -1);
        return NULL;
    }
    FUZZ_ASSERT((size_t)want == len / 4 * 3 + (len % 4 == 0 ? 0 : len % 4 - 1));
    out = malloc(want > 0 ? (size_t)want : 1);
    FUZZ_ASSERT(out != NULL);
    if (want > 0)
        FUZZ_ASSERT(jose_b64url_decode(text, len, out, (size_t)want - 1) == -1);
    n = jose_b64url_decode(text, len, out, (size_t)want);
    if (n < 0) {
        free(out);
        return NULL;
    }
    FUZZ_ASSERT(n == want);
    enc = malloc(len + 1);
    FUZZ_ASSERT(enc != NULL);
    FUZZ_ASSERT(jose_b64url_encode(out, (size_t)n, enc) == len);
    FUZZ_ASSERT(memcmp(enc, text, len) == 0);
    free(enc);
    *outlen = (size_t)n;
    return out;
}

#endif
