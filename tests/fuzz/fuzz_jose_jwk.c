/* tests/fuzz/fuzz_jose_jwk.c: libFuzzer target for what a JWKS from an identity provider
 * reaches in C: the members of one JWK through jose_key_from_jwk() (the whole of
 * sluice.crypto.jwk but the Lua table), then a signature through the key it made.
 * Input: lines "name=value" for kty, crv, n, e, x, y, alg and sig (base64url, verified
 * over "fuzz" with the key's alg); a later line replaces an earlier one, other names are
 * ignored. Each value is copied into its own heap block of exactly its length and a NUL,
 * so ASan sees a read past it; a value with a NUL in it is cut there, as C reads it.
 * Checks: a refusal says why; a key has the alg its kty implies and fits an alg member;
 * RSA keys are 2048..8192 bits; the key's numbers are the members' (x and y re-exported
 * give back the same text, n and e the same integers); a signature of the wrong length
 * is BAD; OpenSSL's error queue is left empty; every value passes fuzz_b64url()
 * (fuzz_jose.h). */
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>

#include "fuzz_jose.h"

enum { F_KTY, F_CRV, F_N, F_E, F_X, F_Y, F_ALG, F_SIG, F_COUNT };

static const char *const fuzz_names[F_COUNT] = {"kty", "crv", "n", "e", "x", "y", "alg", "sig"};

/* The member text as jose.c reads it decodes to the integer the key holds. */
static void
fuzz_same_bn(EVP_PKEY *key, const char *param, const char *text)
{
    size_t         len = strlen(text), n = 0;
    unsigned char *raw = fuzz_b64url(text, len, &n);
    BIGNUM        *want, *got = NULL;

    FUZZ_ASSERT(raw != NULL);
    want = BN_bin2bn(raw, (int)n, NULL);
    FUZZ_ASSERT(want != NULL && EVP_PKEY_get_bn_param(key, param, &got) == 1);
    FUZZ_ASSERT(BN_cmp(want, got) == 0);
    BN_free(want);
    BN_free(got);
    free(raw);
}

/* "\"name\":\"text\"" is in the key's re-exported JWK. */
static void
fuzz_exported(const char *json, const char *name, const char *text)
{
    char member[128];

    FUZZ_ASSERT(strlen(text) < 64);
    snprintf(member, sizeof(member), "\"%s\":\"%s\"", name, text);
    FUZZ_ASSERT(strstr(json, member) != NULL);
}

static void
fuzz_check_key(EVP_PKEY *key, const struct jose_jwk *jwk)
{
    enum jose_alg alg = jose_key_alg(key);
    char          json[512];
    int           bits;

    FUZZ_ASSERT(jwk->kty != NULL);
    if (strcmp(jwk->kty, "RSA") == 0) {
        FUZZ_ASSERT(alg == JOSE_ALG_RS256);
        bits = EVP_PKEY_get_bits(key);
        FUZZ_ASSERT(bits >= JOSE_RSA_MIN_BITS && bits <= JOSE_RSA_MAX_BITS);
        FUZZ_ASSERT(EVP_PKEY_get_size(key) <= JOSE_SIG_MAX);
        fuzz_same_bn(key, OSSL_PKEY_PARAM_RSA_N, jwk->n);
        fuzz_same_bn(key, OSSL_PKEY_PARAM_RSA_E, jwk->e);
    } else if (strcmp(jwk->kty, "EC") == 0) {
        FUZZ_ASSERT(alg == JOSE_ALG_ES256 && strcmp(jwk->crv, "P-256") == 0);
        FUZZ_ASSERT(jose_public_jwk_json(key, "k", json, sizeof(json)) > 0);
        fuzz_exported(json, "x", jwk->x);
        fuzz_exported(json, "y", jwk->y);
    } else {
        FUZZ_ASSERT(strcmp(jwk->kty, "OKP") == 0 && strcmp(jwk->crv, "Ed25519") == 0);
        FUZZ_ASSERT(alg == JOSE_ALG_EDDSA);
        FUZZ_ASSERT(jose_public_jwk_json(key, "k", json, sizeof(json)) > 0);
        fuzz_exported(json, "x", jwk->x);
    }
    if (jwk->alg != NULL)
        FUZZ_ASSERT(jose_alg_from_name(jwk->alg, strlen(jwk->alg)) == alg);
}

/* The sig member over "fuzz": a result, and BAD for a length the alg never has. */
static void
fuzz_verify(EVP_PKEY *key, const char *sig)
{
    enum jose_alg       alg = jose_key_alg(key);
    size_t              len = 0;
    unsigned char      *raw = fuzz_b64url(sig, strlen(sig), &len);
    size_t              want = alg == JOSE_ALG_RS256 ? (size_t)EVP_PKEY_get_size(key) : 64;
    enum jose_verify_rc rc;

    if (raw == NULL)
        return;
    rc = jose_verify(key, alg, "fuzz", 4, raw, len);
    FUZZ_ASSERT(ERR_peek_error() == 0);
    FUZZ_ASSERT(rc == JOSE_VERIFY_OK || rc == JOSE_VERIFY_BAD);
    if (len != want)
        FUZZ_ASSERT(rc == JOSE_VERIFY_BAD);
    FUZZ_ASSERT(jose_verify(key, alg == JOSE_ALG_EDDSA ? JOSE_ALG_RS256 : JOSE_ALG_EDDSA,
                            "fuzz", 4, raw, len) == JOSE_VERIFY_BAD_ALG);
    free(raw);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char           *v[F_COUNT] = {NULL};
    const uint8_t  *p = data, *end = data + size;
    struct jose_jwk jwk;
    char            err[160];
    EVP_PKEY       *key;

    while (p < end) {
        const uint8_t *nl = memchr(p, '\n', (size_t)(end - p)), *eq;
        const uint8_t *stop = nl != NULL ? nl : end;

        eq = memchr(p, '=', (size_t)(stop - p));
        for (int i = 0; eq != NULL && i < F_COUNT; i++)
            if (strlen(fuzz_names[i]) == (size_t)(eq - p) &&
                memcmp(fuzz_names[i], p, (size_t)(eq - p)) == 0) {
                size_t n = 0;

                free(v[i]);
                v[i] = fuzz_dup(eq + 1, (size_t)(stop - eq - 1));
                free(fuzz_b64url(v[i], (size_t)(stop - eq - 1), &n)); /* whole, NULs too */
            }
        p = stop + 1;
    }
    jwk = (struct jose_jwk){.kty = v[F_KTY], .crv = v[F_CRV], .n = v[F_N], .e = v[F_E],
                            .x = v[F_X], .y = v[F_Y], .alg = v[F_ALG]};
    err[0] = '\0';
    key = jose_key_from_jwk(&jwk, err, sizeof(err));
    FUZZ_ASSERT(ERR_peek_error() == 0); /* the worker's next SSL_read would take it */
    if (key == NULL) {
        FUZZ_ASSERT(err[0] != '\0' && memchr(err, '\0', sizeof(err)) != NULL);
    } else {
        fuzz_check_key(key, &jwk);
        if (v[F_SIG] != NULL)
            fuzz_verify(key, v[F_SIG]);
        EVP_PKEY_free(key);
    }
    for (int i = 0; i < F_COUNT; i++)
        free(v[i]);
    return 0;
}
