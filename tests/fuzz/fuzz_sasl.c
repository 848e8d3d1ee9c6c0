/* tests/fuzz/fuzz_sasl.c: libFuzzer target for core/proto/sasl.c.
 * Input: lines separated by '\n'. Line 1 names the mechanism, line 2 is the initial
 * response ("!" alone: none), every further line answers a challenge. Each line is copied
 * into its own heap block so that ASan sees any read past its end.
 * Besides "no crash", it checks what sasl.h promises: bounded, NUL-free credentials on
 * SASL_DONE, no secret kept on failure, a zeroed struct after sasl_reset, and base64
 * that is canonical (decode then encode gives back the same text). */
#include "proto/sasl.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_MAX_LINES 16

#define FUZZ_ASSERT(e)                                                                   \
    do {                                                                                 \
        if (!(e))                                                                        \
            __builtin_trap();                                                            \
    } while (0)

static char *
fuzz_dup(const uint8_t *p, size_t n)
{
    char *c = malloc(n ? n : 1);

    FUZZ_ASSERT(c != NULL);
    if (n > 0)
        memcpy(c, p, n);
    return c;
}

static void
fuzz_base64(const char *line, size_t len)
{
    unsigned char *dec = malloc(len / 4 * 3 + 1);
    char          *enc = malloc((len + 2) / 3 * 4 + 1);
    long           n;

    FUZZ_ASSERT(dec != NULL && enc != NULL);
    n = sasl_base64_decode(line, len, dec);
    if (n >= 0) {
        FUZZ_ASSERT(sasl_base64_encode(dec, (size_t)n, enc) == len);
        FUZZ_ASSERT(memcmp(enc, line, len) == 0);
    }
    free(dec);
    dec = malloc(len + 1);
    FUZZ_ASSERT(dec != NULL);
    n = (long)sasl_base64_encode((const unsigned char *)line, len, enc);
    FUZZ_ASSERT(sasl_base64_decode(enc, (size_t)n, dec) == (long)len);
    FUZZ_ASSERT(memcmp(dec, line, len) == 0);
    free(dec);
    free(enc);
}

static void
fuzz_error_challenge(enum sasl_mech mech, const char *line, size_t len)
{
    char          *scope = malloc(len + 1), out[4096];
    unsigned char  json[4096];
    size_t         n;
    long           d;

    FUZZ_ASSERT(scope != NULL);
    memcpy(scope, line, len);
    scope[len] = '\0';
    n = sasl_token_error_challenge(mech, scope, out, sizeof(out));
    if (n > 0) {
        FUZZ_ASSERT(strlen(out) == n);
        d = sasl_base64_decode(out, n, json);
        FUZZ_ASSERT(d >= 2 && json[0] == '{' && json[d - 1] == '}');
    }
    free(scope);
}

static void
fuzz_check_outcome(const struct sasl *s, enum sasl_mech mech, enum sasl_rc rc)
{
    const struct sasl_creds *c = &s->creds;
    size_t                   i, idlen;

    FUZZ_ASSERT(c->mech == mech);
    if (rc == SASL_CHALLENGE) {
        FUZZ_ASSERT(strlen(s->challenge) < sizeof(s->challenge));
        return;
    }
    if (rc != SASL_DONE) {
        FUZZ_ASSERT(c->secret == NULL && c->secret_len == 0);
        return;
    }
    FUZZ_ASSERT(c->authcid != NULL && c->secret != NULL);
    FUZZ_ASSERT(c->secret_len > 0 && c->secret_len <= SASL_SECRET_MAX);
    FUZZ_ASSERT(strlen(c->secret) == c->secret_len);
    idlen = strlen(c->authcid);
    FUZZ_ASSERT(idlen <= SASL_ID_MAX && (idlen > 0 || mech == SASL_MECH_OAUTHBEARER));
    for (i = 0; i < idlen; i++)
        FUZZ_ASSERT((unsigned char)c->authcid[i] >= 0x20 && c->authcid[i] != 0x7f);
    FUZZ_ASSERT(c->is_token == (mech == SASL_MECH_XOAUTH2 || mech == SASL_MECH_OAUTHBEARER));
}

static void
fuzz_exchange(enum sasl_mech mech, char **line, size_t *len, size_t nlines)
{
    static const struct sasl zero;
    struct sasl              s = { 0 };
    enum sasl_rc             rc;
    size_t                   i;

    if (nlines < 2 || (len[1] == 1 && line[1][0] == '!'))
        rc = sasl_start(&s, mech, NULL, 0);
    else
        rc = sasl_start(&s, mech, line[1], len[1]);
    fuzz_check_outcome(&s, mech, rc);
    for (i = 2; i < nlines && rc == SASL_CHALLENGE; i++) {
        rc = sasl_step(&s, line[i], len[i]);
        fuzz_check_outcome(&s, mech, rc);
    }
    sasl_reset(&s);
    FUZZ_ASSERT(memcmp(&s, &zero, sizeof(s)) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char          *line[FUZZ_MAX_LINES];
    size_t         len[FUZZ_MAX_LINES], nlines = 0, i;
    const uint8_t *p = data, *end = data + size, *nl;
    enum sasl_mech mech;

    while (nlines < FUZZ_MAX_LINES && (nlines == 0 || p < end)) {
        nl = memchr(p, '\n', (size_t)(end - p));
        len[nlines] = (size_t)((nl ? nl : end) - p);
        line[nlines++] = fuzz_dup(p, (size_t)((nl ? nl : end) - p));
        p = nl ? nl + 1 : end;
    }
    mech = sasl_mech_from_name(line[0], len[0]);
    if (mech != SASL_MECH_NONE)
        fuzz_exchange(mech, line, len, nlines);
    for (i = 1; i < nlines; i++)
        fuzz_base64(line[i], len[i]);
    if (nlines > 1)
        fuzz_error_challenge(size % 2 ? SASL_MECH_XOAUTH2 : SASL_MECH_OAUTHBEARER, line[1],
                             len[1]);
    for (i = 0; i < nlines; i++)
        free(line[i]);
    return 0;
}
