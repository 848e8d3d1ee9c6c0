/* core/proto/jose.c: base64url, JWK public keys and JWS signatures over OpenSSL 3; see jose.h.
 * Keys are built with EVP_PKEY_fromdata and checked with EVP_PKEY_public_check, so a
 * point off the curve or a malformed RSA key never reaches a verification. */
#include "proto/jose.h"

#include <assert.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/param_build.h>

#define JOSE_P256_LEN 32 /* octets of a P-256 coordinate and of r and s */
#define JOSE_ED25519_LEN 32

/* ---- base64url ------------------------------------------------------------------------ */

static const char jose_b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int
jose_b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

long
jose_b64url_decoded_len(size_t len)
{
    /* RFC 7515 appendix C: 4 characters carry 3 octets; a tail of 2 or 3 characters
     * carries 1 or 2; a tail of 1 carries 6 bits, no whole octet: no text has it. */
    static const long tail[4] = {0, -1, 1, 2};

    if (tail[len % 4] < 0 || len / 4 > (size_t)(LONG_MAX / 3 - 2))
        return -1;
    return (long)(len / 4 * 3) + tail[len % 4];
}

long
jose_b64url_decode(const char *in, size_t len, unsigned char *out, size_t cap)
{
    unsigned long acc = 0;
    long          want = jose_b64url_decoded_len(len);
    size_t        i, o = 0;
    int           bits = 0, v;

    if (want < 0 || (size_t)want > cap)
        return -1;
    for (i = 0; i < len; i++) {
        v = jose_b64_value((unsigned char)in[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (unsigned long)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1ul << bits) - 1;
        }
    }
    assert(o == (size_t)want);
    if (acc != 0) /* RFC 4648 section 3.5: the pad bits are zero in the canonical text */
        return -1;
    return want;
}

size_t
jose_b64url_encode(const unsigned char *in, size_t len, char *out)
{
    size_t        i, o = 0;
    unsigned long v;

    for (i = 0; i + 2 < len; i += 3) {
        v = (unsigned long)in[i] << 16 | (unsigned long)in[i + 1] << 8 | in[i + 2];
        out[o++] = jose_b64_alphabet[v >> 18];
        out[o++] = jose_b64_alphabet[(v >> 12) & 63];
        out[o++] = jose_b64_alphabet[(v >> 6) & 63];
        out[o++] = jose_b64_alphabet[v & 63];
    }
    if (len - i == 1) {
        v = (unsigned long)in[i] << 16;
        out[o++] = jose_b64_alphabet[v >> 18];
        out[o++] = jose_b64_alphabet[(v >> 12) & 63];
    } else if (len - i == 2) {
        v = (unsigned long)in[i] << 16 | (unsigned long)in[i + 1] << 8;
        out[o++] = jose_b64_alphabet[v >> 18];
        out[o++] = jose_b64_alphabet[(v >> 12) & 63];
        out[o++] = jose_b64_alphabet[(v >> 6) & 63];
    }
    out[o] = '\0';
    return o;
}

/* ---- algorithms ----------------------------------------------------------------------- */

static const struct {
    const char   *name;
    enum jose_alg alg;
} jose_algs[] = {
    {"RS256", JOSE_ALG_RS256},
    {"ES256", JOSE_ALG_ES256},
    {"EdDSA", JOSE_ALG_EDDSA},
};

enum jose_alg
jose_alg_from_name(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(jose_algs) / sizeof(jose_algs[0]); i++)
        if (strlen(jose_algs[i].name) == len && memcmp(jose_algs[i].name, name, len) == 0)
            return jose_algs[i].alg;
    return JOSE_ALG_UNKNOWN;
}

const char *
jose_alg_name(enum jose_alg alg)
{
    for (size_t i = 0; i < sizeof(jose_algs) / sizeof(jose_algs[0]); i++)
        if (jose_algs[i].alg == alg)
            return jose_algs[i].name;
    return "unknown";
}

enum jose_alg
jose_key_alg(const EVP_PKEY *key)
{
    if (EVP_PKEY_is_a(key, "RSA"))
        return JOSE_ALG_RS256;
    if (EVP_PKEY_is_a(key, "EC"))
        return JOSE_ALG_ES256;
    if (EVP_PKEY_is_a(key, "ED25519"))
        return JOSE_ALG_EDDSA;
    return JOSE_ALG_UNKNOWN;
}

/* ---- keys from JWK members ------------------------------------------------------------- */

/* A base64url member into out, a buffer of cap octets: exactly cap of them when exact,
 * else 1 to cap. Its length is judged from the text's length (exactly, RFC 7515
 * appendix C) before a character is decoded, and the decoder is held to cap as well. */
static long
jose_member(const char *b64, unsigned char *out, size_t cap, bool exact, const char *name,
            char *err, size_t errlen)
{
    size_t len = b64 != NULL ? strlen(b64) : 0;
    long   want, n;

    if (len == 0) {
        snprintf(err, errlen, "member '%s' is missing", name);
        return -1;
    }
    want = jose_b64url_decoded_len(len);
    if (want < 0) {
        snprintf(err, errlen, "member '%s' is not base64url", name);
        return -1;
    }
    if (exact && (size_t)want != cap) {
        snprintf(err, errlen, "member '%s' has the wrong length: %ld octets, not %zu", name,
                 want, cap);
        return -1;
    }
    if ((size_t)want > cap) {
        snprintf(err, errlen, "member '%s' is too long: %ld octets, at most %zu", name, want,
                 cap);
        return -1;
    }
    n = jose_b64url_decode(b64, len, out, cap);
    if (n < 0) {
        snprintf(err, errlen, "member '%s' is not base64url", name);
        return -1;
    }
    return n;
}

/* EVP_PKEY_fromdata for a public key of type, then EVP_PKEY_public_check. */
static EVP_PKEY *
jose_fromdata(const char *type, OSSL_PARAM *params, char *err, size_t errlen)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL), *check = NULL;
    EVP_PKEY     *key = NULL;

    if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) <= 0) {
        snprintf(err, errlen, "not a valid %s public key", type);
        goto done;
    }
    check = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
    if (check == NULL || EVP_PKEY_public_check(check) <= 0) {
        snprintf(err, errlen, "not a valid %s public key", type);
        EVP_PKEY_free(key);
        key = NULL;
    }
done:
    EVP_PKEY_CTX_free(check);
    EVP_PKEY_CTX_free(ctx);
    return key;
}

static EVP_PKEY *
jose_rsa_key(const struct jose_jwk *jwk, char *err, size_t errlen)
{
    unsigned char   n[JOSE_RSA_MAX_BITS / 8 + 1], e[JOSE_RSA_E_MAX]; /* +1: a leading 0 */
    long            nlen, elen;
    BIGNUM         *bn = NULL, *be = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM     *params = NULL;
    EVP_PKEY       *key = NULL;
    int             bits;

    if ((nlen = jose_member(jwk->n, n, sizeof(n), false, "n", err, errlen)) < 0 ||
        (elen = jose_member(jwk->e, e, sizeof(e), false, "e", err, errlen)) < 0)
        return NULL;
    bn = BN_bin2bn(n, (int)nlen, NULL);
    be = BN_bin2bn(e, (int)elen, NULL);
    bld = OSSL_PARAM_BLD_new();
    if (bn == NULL || be == NULL || bld == NULL ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) ||
        (params = OSSL_PARAM_BLD_to_param(bld)) == NULL) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    bits = BN_num_bits(bn);
    if (bits < JOSE_RSA_MIN_BITS || bits > JOSE_RSA_MAX_BITS) {
        snprintf(err, errlen, "RSA key of %d bits: %d to %d are accepted", bits,
                 JOSE_RSA_MIN_BITS, JOSE_RSA_MAX_BITS);
        goto done;
    }
    key = jose_fromdata("RSA", params, err, errlen);
done:
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn);
    BN_free(be);
    return key;
}

static EVP_PKEY *
jose_ec_key(const struct jose_jwk *jwk, char *err, size_t errlen)
{
    unsigned char pub[1 + 2 * JOSE_P256_LEN] = {0x04}; /* SEC 1 uncompressed point */
    char          group[] = "prime256v1";
    OSSL_PARAM    params[3];

    if (jwk->crv == NULL || strcmp(jwk->crv, "P-256") != 0) {
        snprintf(err, errlen, "EC curve '%s' is not supported: P-256 is",
                 jwk->crv != NULL ? jwk->crv : "");
        return NULL;
    }
    if (jose_member(jwk->x, pub + 1, JOSE_P256_LEN, true, "x", err, errlen) < 0 ||
        jose_member(jwk->y, pub + 1 + JOSE_P256_LEN, JOSE_P256_LEN, true, "y", err, errlen) < 0)
        return NULL;
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0);
    params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub));
    params[2] = OSSL_PARAM_construct_end();
    return jose_fromdata("EC", params, err, errlen);
}

static EVP_PKEY *
jose_okp_key(const struct jose_jwk *jwk, char *err, size_t errlen)
{
    unsigned char x[JOSE_ED25519_LEN];
    EVP_PKEY     *key;

    if (jwk->crv == NULL || strcmp(jwk->crv, "Ed25519") != 0) {
        snprintf(err, errlen, "OKP curve '%s' is not supported: Ed25519 is",
                 jwk->crv != NULL ? jwk->crv : "");
        return NULL;
    }
    if (jose_member(jwk->x, x, sizeof(x), true, "x", err, errlen) < 0)
        return NULL;
    key = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, x, sizeof(x));
    if (key == NULL)
        snprintf(err, errlen, "not a valid Ed25519 public key");
    return key;
}

EVP_PKEY *
jose_key_from_jwk(const struct jose_jwk *jwk, char *err, size_t errlen)
{
    EVP_PKEY     *key = NULL;
    enum jose_alg want;

    if (jwk->kty == NULL) {
        snprintf(err, errlen, "member 'kty' is missing");
    } else if (strcmp(jwk->kty, "RSA") == 0) {
        key = jose_rsa_key(jwk, err, errlen);
    } else if (strcmp(jwk->kty, "EC") == 0) {
        key = jose_ec_key(jwk, err, errlen);
    } else if (strcmp(jwk->kty, "OKP") == 0) {
        key = jose_okp_key(jwk, err, errlen);
    } else {
        snprintf(err, errlen, "key type '%s' is not supported: RSA, EC and OKP are", jwk->kty);
    }
    if (key != NULL && jwk->alg != NULL) {
        want = jose_alg_from_name(jwk->alg, strlen(jwk->alg));
        if (want == JOSE_ALG_UNKNOWN || want != jose_key_alg(key)) {
            snprintf(err, errlen, "alg '%s' does not fit a %s key", jwk->alg, jwk->kty);
            EVP_PKEY_free(key);
            key = NULL;
        }
    }
    ERR_clear_error(); /* a refused key leaves errors, as jose_verify's bad signatures do */
    return key;
}

/* ---- signatures ----------------------------------------------------------------------- */

/* JOSE's r || s (RFC 7518 section 3.4) as the DER ECDSA-Sig-Value OpenSSL verifies.
 * Returns the DER length, 0 if sig is not 64 octets. */
static size_t
jose_ecdsa_to_der(const unsigned char *sig, size_t siglen, unsigned char *der, size_t cap)
{
    ECDSA_SIG     *es;
    BIGNUM        *r, *s;
    unsigned char *p = der;
    int            n = 0;

    if (siglen != 2 * JOSE_P256_LEN)
        return 0;
    es = ECDSA_SIG_new();
    r = BN_bin2bn(sig, JOSE_P256_LEN, NULL);
    s = BN_bin2bn(sig + JOSE_P256_LEN, JOSE_P256_LEN, NULL);
    if (es == NULL || r == NULL || s == NULL || !ECDSA_SIG_set0(es, r, s)) {
        BN_free(r);
        BN_free(s);
        ECDSA_SIG_free(es);
        return 0;
    }
    if (i2d_ECDSA_SIG(es, NULL) <= (int)cap)
        n = i2d_ECDSA_SIG(es, &p);
    ECDSA_SIG_free(es);
    return n > 0 ? (size_t)n : 0;
}

/* The one length a signature of alg by key has: RFC 7518 section 3.3 (RSASSA-PKCS1-v1_5:
 * the modulus' octets), 3.4 (ES256: r || s), RFC 8037 section 3.1 (Ed25519: 64). */
static size_t
jose_sig_len(const EVP_PKEY *key, enum jose_alg alg)
{
    int n;

    if (alg != JOSE_ALG_RS256)
        return 2 * JOSE_P256_LEN; /* 64 for Ed25519 as well */
    n = EVP_PKEY_get_size(key);
    return n > 0 && n <= JOSE_SIG_MAX ? (size_t)n : 0;
}

enum jose_verify_rc
jose_verify(EVP_PKEY *key, enum jose_alg alg, const void *input, size_t len,
            const unsigned char *sig, size_t siglen)
{
    unsigned char der[2 * JOSE_P256_LEN + 16];
    EVP_MD_CTX   *md;
    const EVP_MD *digest = alg == JOSE_ALG_EDDSA ? NULL : EVP_sha256();
    int           ok;

    if (alg == JOSE_ALG_UNKNOWN || alg != jose_key_alg(key))
        return JOSE_VERIFY_BAD_ALG;
    if (siglen == 0 || siglen != jose_sig_len(key, alg))
        return JOSE_VERIFY_BAD;
    if (alg == JOSE_ALG_ES256) {
        siglen = jose_ecdsa_to_der(sig, siglen, der, sizeof(der));
        if (siglen == 0)
            return JOSE_VERIFY_BAD;
        sig = der;
    }
    md = EVP_MD_CTX_new();
    if (md == NULL)
        return JOSE_VERIFY_BAD;
    ok = EVP_DigestVerifyInit(md, NULL, digest, NULL, key) == 1 &&
         EVP_DigestVerify(md, sig, siglen, input, len) == 1;
    EVP_MD_CTX_free(md);
    ERR_clear_error(); /* a bad signature leaves errors that the next SSL_read would take
                        * for its own on this thread (a dropped session) */
    return ok ? JOSE_VERIFY_OK : JOSE_VERIFY_BAD;
}

/* A DER ECDSA signature as JOSE's r || s into out (64 octets); 0 on failure. */
static size_t
jose_ecdsa_from_der(const unsigned char *der, size_t len, unsigned char *out)
{
    const unsigned char *p = der;
    ECDSA_SIG           *es = d2i_ECDSA_SIG(NULL, &p, (long)len);
    const BIGNUM        *r, *s;
    size_t               n = 0;

    if (es == NULL)
        return 0;
    ECDSA_SIG_get0(es, &r, &s);
    if (BN_bn2binpad(r, out, JOSE_P256_LEN) == JOSE_P256_LEN &&
        BN_bn2binpad(s, out + JOSE_P256_LEN, JOSE_P256_LEN) == JOSE_P256_LEN)
        n = 2 * JOSE_P256_LEN;
    ECDSA_SIG_free(es);
    return n;
}

size_t
jose_sign(EVP_PKEY *key, const void *input, size_t len, unsigned char *sig)
{
    unsigned char buf[JOSE_SIG_MAX];
    size_t        n = sizeof(buf);
    enum jose_alg alg = jose_key_alg(key);
    EVP_MD_CTX   *md;
    int           ok;

    if (alg != JOSE_ALG_EDDSA && alg != JOSE_ALG_ES256)
        return 0;
    md = EVP_MD_CTX_new();
    if (md == NULL)
        return 0;
    ok = EVP_DigestSignInit(md, NULL, alg == JOSE_ALG_EDDSA ? NULL : EVP_sha256(), NULL,
                            key) == 1 &&
         EVP_DigestSign(md, buf, &n, input, len) == 1;
    EVP_MD_CTX_free(md);
    ERR_clear_error();
    if (!ok)
        return 0;
    if (alg == JOSE_ALG_ES256)
        return jose_ecdsa_from_der(buf, n, sig);
    memcpy(sig, buf, n);
    return n;
}

size_t
jose_public_jwk_json(EVP_PKEY *key, const char *kid, char *out, size_t outlen)
{
    unsigned char pub[1 + 2 * JOSE_P256_LEN];
    char          x[64], y[64];
    size_t        n = sizeof(pub);
    int           w;

    if (jose_key_alg(key) == JOSE_ALG_EDDSA) {
        n = JOSE_ED25519_LEN;
        if (EVP_PKEY_get_raw_public_key(key, pub, &n) != 1)
            return 0;
        jose_b64url_encode(pub, n, x);
        w = snprintf(out, outlen,
                     "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s\",\"kid\":\"%s\","
                     "\"use\":\"sig\",\"alg\":\"EdDSA\"}", x, kid);
    } else if (jose_key_alg(key) == JOSE_ALG_ES256) {
        EVP_PKEY_set_utf8_string_param(key, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT,
                                       "uncompressed");
        if (EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub),
                                            &n) != 1 || n != sizeof(pub))
            return 0;
        jose_b64url_encode(pub + 1, JOSE_P256_LEN, x);
        jose_b64url_encode(pub + 1 + JOSE_P256_LEN, JOSE_P256_LEN, y);
        w = snprintf(out, outlen,
                     "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\",\"kid\":\"%s\","
                     "\"use\":\"sig\",\"alg\":\"ES256\"}", x, y, kid);
    } else {
        return 0;
    }
    return w > 0 && (size_t)w < outlen ? (size_t)w : 0;
}
