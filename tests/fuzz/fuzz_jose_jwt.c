/* tests/fuzz/fuzz_jose_jwt.c: libFuzzer target for what a client's bearer token reaches
 * in C: the three parts of a compact JWS through the base64url decoder, the header's alg
 * name through jose_alg_from_name(), and the signature through jose_verify() with a key
 * of each type (lua/sluice/jwt.lua does the same through sluice.crypto; the JSON is
 * cjson's). Input: the token text, "header.payload.signature". The seed corpus holds
 * tokens that really verify with these keys (their private halves were thrown away; the
 * Ed25519 one is the seed 1..32 below, which also signs here).
 * Checks: every part passes fuzz_b64url() (fuzz_jose.h); an alg that does not fit a key
 * is BAD_ALG, a signature of another length than the alg's is BAD; a signature that
 * verifies stops verifying when one bit of the signing input or of the signature flips;
 * what jose_sign() makes over the fuzzed signing input verifies, and stops when flipped
 * or cut (in a quarter of the runs: signing is the slow part); OpenSSL's error queue is
 * left empty. */
#include <openssl/err.h>

#include "fuzz_jose.h"

/* Public JWK members of the keys the seed tokens were signed with. */
#define FUZZ_RSA_N \
    "0Sqko2Sw428iVLF1HT2mXxso3JCNnpHBGv5AsaCGINnd9NhVgn8itN4g43sqA_inmr512rgBZGkG5s6Y" \
    "hMnsFVMgtPisHLNfW7w3RTzgG7gldDQSk8dUYoghNihjae_H3jYTEPZaHNnF4suL_1uw0N8Y3pZw82Jq" \
    "1fdMjONt-pK2qafT27nSv9BEefUMsUtV7b65m6EbjuBq_yWVICzRosi0g-ExClh7-Yh5QfWctKZhhUFS" \
    "ZR4P4NkIfLgG1Al7zTevwKd0Xnoep8o-FLlPutgog-WhzNHjcCF0CLNR4tziT--sOsPKw8y64KDw17cQ" \
    "HR2rSMl_sFWIIhThbbrrIw"
#define FUZZ_EC_X "3tupBKI6r4Fts_W3uyzXE2STbQUc5N34JFsO8Adv7fA"
#define FUZZ_EC_Y "-30bJX5gteI9lCRM1fDtUfsnOHJxGmBJcSTr1H7PSkU"
#define FUZZ_ED_X "ebVWLo_mVPlAeLES6KmLp5AfhTrmlb7X4OORC60ElmQ"

static EVP_PKEY *fuzz_keys[3];    /* RS256, ES256, EdDSA: public, from the members above */
static EVP_PKEY *fuzz_signers[2]; /* Ed25519 (the seed 1..32) and a P-256 made here */

static void
fuzz_init(void)
{
    static const struct jose_jwk jwks[3] = {
        {.kty = "RSA", .n = FUZZ_RSA_N, .e = "AQAB"},
        {.kty = "EC", .crv = "P-256", .x = FUZZ_EC_X, .y = FUZZ_EC_Y},
        {.kty = "OKP", .crv = "Ed25519", .x = FUZZ_ED_X},
    };
    unsigned char seed[32];
    char          err[160], json[512];

    for (int i = 0; i < 3; i++) {
        fuzz_keys[i] = jose_key_from_jwk(&jwks[i], err, sizeof(err));
        FUZZ_ASSERT(fuzz_keys[i] != NULL);
    }
    for (int i = 0; i < 32; i++)
        seed[i] = (unsigned char)(i + 1);
    fuzz_signers[0] = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, sizeof(seed));
    fuzz_signers[1] = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    FUZZ_ASSERT(fuzz_signers[0] != NULL && fuzz_signers[1] != NULL);
    FUZZ_ASSERT(jose_public_jwk_json(fuzz_signers[0], "k", json, sizeof(json)) > 0);
    FUZZ_ASSERT(strstr(json, FUZZ_ED_X) != NULL); /* the seed tokens' EdDSA key */
}

/* The alg of a decoded header, found as jwt.lua's cjson would for a plain header. */
static enum jose_alg
fuzz_header_alg(const unsigned char *h, size_t n)
{
    static const char key[] = "\"alg\":\"";
    const unsigned char *p = memmem(h, n, key, sizeof(key) - 1), *q;
    enum jose_alg        alg;

    if (p == NULL)
        return JOSE_ALG_UNKNOWN;
    p += sizeof(key) - 1;
    q = memchr(p, '"', n - (size_t)(p - h));
    if (q == NULL)
        return JOSE_ALG_UNKNOWN;
    alg = jose_alg_from_name((const char *)p, (size_t)(q - p));
    if (alg != JOSE_ALG_UNKNOWN) {
        const char *name = jose_alg_name(alg);

        FUZZ_ASSERT(jose_alg_from_name(name, strlen(name)) == alg);
        FUZZ_ASSERT((size_t)(q - p) == strlen(name) && memcmp(p, name, strlen(name)) == 0);
    }
    return alg;
}

static size_t
fuzz_sig_len(EVP_PKEY *key)
{
    return jose_key_alg(key) == JOSE_ALG_RS256 ? (size_t)EVP_PKEY_get_size(key) : 64;
}

/* sig over input by key, as alg: the outcomes jose.h promises. */
static void
fuzz_verify(EVP_PKEY *key, enum jose_alg alg, const char *input, size_t len,
            const unsigned char *sig, size_t siglen, size_t flip)
{
    enum jose_verify_rc rc = jose_verify(key, alg, input, len, sig, siglen);
    char               *in2;
    unsigned char      *sig2;

    FUZZ_ASSERT(ERR_peek_error() == 0);
    if (alg == JOSE_ALG_UNKNOWN || alg != jose_key_alg(key)) {
        FUZZ_ASSERT(rc == JOSE_VERIFY_BAD_ALG);
        return;
    }
    if (siglen != fuzz_sig_len(key))
        FUZZ_ASSERT(rc == JOSE_VERIFY_BAD);
    if (rc != JOSE_VERIFY_OK)
        return;
    if (len > 0) { /* one bit of the signed text */
        in2 = fuzz_dup(input, len);
        in2[flip % len] ^= (char)(1u << (flip % 8));
        FUZZ_ASSERT(jose_verify(key, alg, in2, len, sig, siglen) == JOSE_VERIFY_BAD);
        free(in2);
    }
    sig2 = (unsigned char *)fuzz_dup(sig, siglen); /* one bit of the signature */
    sig2[flip % siglen] ^= (unsigned char)(1u << (flip % 8));
    FUZZ_ASSERT(jose_verify(key, alg, input, len, sig2, siglen) == JOSE_VERIFY_BAD);
    FUZZ_ASSERT(jose_verify(key, alg, input, len, sig, siglen - 1) == JOSE_VERIFY_BAD);
    free(sig2);
    FUZZ_ASSERT(ERR_peek_error() == 0);
}

/* Our own signature over the fuzzed signing input verifies, through the public key. */
static void
fuzz_sign(EVP_PKEY *signer, const char *input, size_t len, size_t flip)
{
    unsigned char sig[JOSE_SIG_MAX];
    size_t        n = jose_sign(signer, input, len, sig);

    FUZZ_ASSERT(n == 64);
    FUZZ_ASSERT(jose_verify(signer, jose_key_alg(signer), input, len, sig, n) ==
                JOSE_VERIFY_OK);
    fuzz_verify(signer, jose_key_alg(signer), input, len, sig, n, flip);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int     ready;
    const char    *tok = (const char *)data, *dot1, *dot2;
    char          *input, *part[3];
    size_t         plen[3], hlen = 0, slen = 0, ilen, flip = 0;
    unsigned char *header, *sig;
    enum jose_alg  alg;

    if (!ready) {
        fuzz_init();
        ready = 1;
    }
    dot1 = memchr(tok, '.', size);
    dot2 = dot1 != NULL ? memchr(dot1 + 1, '.', size - (size_t)(dot1 + 1 - tok)) : NULL;
    if (dot2 == NULL || memchr(dot2 + 1, '.', size - (size_t)(dot2 + 1 - tok)) != NULL) {
        char *whole = fuzz_dup(data, size); /* not three parts: the decoder alone */

        free(fuzz_b64url(whole, size, &hlen));
        free(whole);
        return 0;
    }
    plen[0] = (size_t)(dot1 - tok);
    plen[1] = (size_t)(dot2 - dot1 - 1);
    plen[2] = size - (size_t)(dot2 + 1 - tok);
    part[0] = fuzz_dup(tok, plen[0]);
    part[1] = fuzz_dup(dot1 + 1, plen[1]);
    part[2] = fuzz_dup(dot2 + 1, plen[2]);
    free(fuzz_b64url(part[1], plen[1], &ilen));
    header = fuzz_b64url(part[0], plen[0], &hlen);
    sig = fuzz_b64url(part[2], plen[2], &slen);
    ilen = (size_t)(dot2 - tok);
    input = fuzz_dup(tok, ilen); /* the JWS signing input, "header.payload" */
    for (size_t i = 0; i < size; i++)
        flip = flip * 31 + data[i];
    if (header != NULL && sig != NULL) {
        alg = fuzz_header_alg(header, hlen);
        for (int i = 0; i < 3; i++)
            for (int a = JOSE_ALG_UNKNOWN; a <= JOSE_ALG_EDDSA; a++)
                if (a == (int)alg || a == (int)jose_key_alg(fuzz_keys[i]))
                    fuzz_verify(fuzz_keys[i], (enum jose_alg)a, input, ilen, sig, slen, flip);
    }
    if (flip % 8 < 2) /* a signature costs ten times the parsing: a quarter of the runs */
        fuzz_sign(fuzz_signers[flip % 2], input, ilen, flip);
    free(header);
    free(sig);
    free(input);
    for (int i = 0; i < 3; i++)
        free(part[i]);
    return 0;
}
