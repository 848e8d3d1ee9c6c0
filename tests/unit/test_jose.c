/* tests/unit/test_jose.c: core/jose.c with keys OpenSSL generates here: base64url both
 * ways and cut at every length, JWKs of each type (and the ones refused), signatures
 * made by OpenSSL verified by jose_verify, tampered ones and ones with the wrong alg
 * refused, and `sluice token`'s signing read back by the verifier. */
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "jose.h"

static const char INPUT[] = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZUBleGFtcGxlLm9yZyJ9";

/* ---- base64url ---- */

static void
b64url_round_trips_every_length(void)
{
    unsigned char in[64], out[64];
    char          text[100];
    size_t        n, len;

    for (n = 0; n < sizeof(in); n++)
        in[n] = (unsigned char)(n * 37 + 250);
    for (n = 0; n <= sizeof(in); n++) {
        len = jose_b64url_encode(in, n, text);
        CHECK_EQ_INT(len, (n * 4 + 2) / 3);
        CHECK(strchr(text, '=') == NULL && strchr(text, '+') == NULL &&
              strchr(text, '/') == NULL);
        CHECK_EQ_INT(jose_b64url_decode(text, len, out), (long)n);
        CHECK(memcmp(in, out, n) == 0);
    }
}

static void
b64url_decode_refuses_what_is_not_canonical(void)
{
    static const char *const bad[] = {
        "a",        /* 1 mod 4 */
        "YQ==",     /* padding */
        "YR",       /* unused bits set: "YQ" is the text of "a" */
        "Y+E",      /* standard alphabet */
        "Y/E",
        "YW E",
        "YW\nE",
    };
    unsigned char out[16];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK_EQ_INT(jose_b64url_decode(bad[i], strlen(bad[i]), out), -1);
    CHECK_EQ_INT(jose_b64url_decode("YQ", 2, out), 1);
    CHECK_EQ_INT(out[0], 'a');
    CHECK_EQ_INT(jose_b64url_decode("", 0, out), 0);
    CHECK_EQ_INT(jose_b64url_decode("-_8", 3, out), 2);
    CHECK(out[0] == 0xfb && out[1] == 0xff);
}

/* ---- keys made here ---- */

static char *
b64_of_bn(const BIGNUM *bn, int pad)
{
    unsigned char buf[1100];
    char         *text = malloc(1500);
    int           n = pad > 0 ? BN_bn2binpad(bn, buf, pad) : BN_bn2bin(bn, buf);

    jose_b64url_encode(buf, (size_t)n, text);
    return text;
}

static char *
b64_of_param(EVP_PKEY *k, const char *name, int pad)
{
    BIGNUM *bn = NULL;
    char   *s;

    EVP_PKEY_get_bn_param(k, name, &bn);
    s = b64_of_bn(bn, pad);
    BN_free(bn);
    return s;
}

struct made {
    EVP_PKEY       *priv; /* OpenSSL's key, private half included */
    struct jose_jwk jwk;  /* its public JWK members (malloc'd strings) */
};

static struct made
make_rsa(unsigned bits)
{
    struct made m = {0};

    m.priv = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
    m.jwk.kty = "RSA";
    m.jwk.n = b64_of_param(m.priv, OSSL_PKEY_PARAM_RSA_N, 0);
    m.jwk.e = b64_of_param(m.priv, OSSL_PKEY_PARAM_RSA_E, 0);
    return m;
}

static struct made
make_ec(void)
{
    struct made m = {0};

    m.priv = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    m.jwk.kty = "EC";
    m.jwk.crv = "P-256";
    m.jwk.x = b64_of_param(m.priv, OSSL_PKEY_PARAM_EC_PUB_X, 32);
    m.jwk.y = b64_of_param(m.priv, OSSL_PKEY_PARAM_EC_PUB_Y, 32);
    return m;
}

static struct made
make_ed25519(void)
{
    struct made   m = {0};
    unsigned char pub[32];
    size_t        n = sizeof(pub);
    char         *x = malloc(64);

    m.priv = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    EVP_PKEY_get_raw_public_key(m.priv, pub, &n);
    jose_b64url_encode(pub, n, x);
    m.jwk.kty = "OKP";
    m.jwk.crv = "Ed25519";
    m.jwk.x = x;
    return m;
}

static void
made_free(struct made *m)
{
    EVP_PKEY_free(m->priv);
    free((char *)m->jwk.n);
    free((char *)m->jwk.e);
    free((char *)m->jwk.x);
    free((char *)m->jwk.y);
}

/* OpenSSL's own signature over INPUT, in JOSE form. */
static size_t
openssl_sign(struct made *m, unsigned char *sig)
{
    EVP_MD_CTX   *md = EVP_MD_CTX_new();
    unsigned char der[1100];
    size_t        n = sizeof(der);
    bool          ed = EVP_PKEY_is_a(m->priv, "ED25519");

    EVP_DigestSignInit(md, NULL, ed ? NULL : EVP_sha256(), NULL, m->priv);
    EVP_DigestSign(md, der, &n, (const unsigned char *)INPUT, strlen(INPUT));
    EVP_MD_CTX_free(md);
    if (EVP_PKEY_is_a(m->priv, "EC")) { /* DER -> r || s */
        const unsigned char *p = der;
        ECDSA_SIG           *es = d2i_ECDSA_SIG(NULL, &p, (long)n);
        const BIGNUM        *r, *s;

        ECDSA_SIG_get0(es, &r, &s);
        BN_bn2binpad(r, sig, 32);
        BN_bn2binpad(s, sig + 32, 32);
        ECDSA_SIG_free(es);
        return 64;
    }
    memcpy(sig, der, n);
    return n;
}

static void
check_verifies(struct made *m, enum jose_alg alg)
{
    char          err[160] = "";
    EVP_PKEY     *pub = jose_key_from_jwk(&m->jwk, err, sizeof(err));
    unsigned char sig[1100];
    size_t        n;

    CHECK(pub != NULL);
    if (pub == NULL) {
        fprintf(stderr, "  %s\n", err);
        return;
    }
    CHECK_EQ_INT(jose_key_alg(pub), alg);
    n = openssl_sign(m, sig);
    CHECK_EQ_INT(jose_verify(pub, alg, INPUT, strlen(INPUT), sig, n), JOSE_VERIFY_OK);
    /* the input changed anywhere, or the signature, fails */
    for (size_t i = 0; i < strlen(INPUT); i += 7) {
        char copy[sizeof(INPUT)];

        memcpy(copy, INPUT, sizeof(INPUT));
        copy[i] ^= 1;
        CHECK_EQ_INT(jose_verify(pub, alg, copy, strlen(copy), sig, n), JOSE_VERIFY_BAD);
    }
    sig[n / 2] ^= 0x40;
    CHECK_EQ_INT(jose_verify(pub, alg, INPUT, strlen(INPUT), sig, n), JOSE_VERIFY_BAD);
    sig[n / 2] ^= 0x40;
    CHECK_EQ_INT(jose_verify(pub, alg, INPUT, strlen(INPUT), sig, n - 1), JOSE_VERIFY_BAD);
    CHECK_EQ_INT(jose_verify(pub, alg, INPUT, strlen(INPUT), sig, 0), JOSE_VERIFY_BAD);
    /* another alg than the key's is refused before anything is checked */
    for (int a = JOSE_ALG_UNKNOWN; a <= JOSE_ALG_EDDSA; a++)
        if (a != (int)alg)
            CHECK_EQ_INT(jose_verify(pub, (enum jose_alg)a, INPUT, strlen(INPUT), sig, n),
                         JOSE_VERIFY_BAD_ALG);
    EVP_PKEY_free(pub);
}

static void
rs256_signatures_from_openssl_verify_and_tampered_ones_do_not(void)
{
    struct made m = make_rsa(2048);

    check_verifies(&m, JOSE_ALG_RS256);
    made_free(&m);
}

static void
es256_signatures_from_openssl_verify_and_tampered_ones_do_not(void)
{
    struct made m = make_ec();

    check_verifies(&m, JOSE_ALG_ES256);
    made_free(&m);
}

static void
eddsa_signatures_from_openssl_verify_and_tampered_ones_do_not(void)
{
    struct made m = make_ed25519();

    check_verifies(&m, JOSE_ALG_EDDSA);
    made_free(&m);
}

static void
a_signature_by_another_key_of_the_same_type_does_not_verify(void)
{
    struct made   a = make_ed25519(), b = make_ed25519();
    char          err[160];
    EVP_PKEY     *pub = jose_key_from_jwk(&a.jwk, err, sizeof(err));
    unsigned char sig[100];
    size_t        n = openssl_sign(&b, sig);

    CHECK_EQ_INT(jose_verify(pub, JOSE_ALG_EDDSA, INPUT, strlen(INPUT), sig, n),
                 JOSE_VERIFY_BAD);
    EVP_PKEY_free(pub);
    made_free(&a);
    made_free(&b);
}

static void
an_rsa_key_under_2048_bits_is_refused(void)
{
    struct made m = make_rsa(1024);
    char        err[160] = "";

    CHECK(jose_key_from_jwk(&m.jwk, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "1024 bits") != NULL);
    made_free(&m);
}

static void
alg_names_are_exact_and_none_and_hs256_are_unknown(void)
{
    CHECK_EQ_INT(jose_alg_from_name("RS256", 5), JOSE_ALG_RS256);
    CHECK_EQ_INT(jose_alg_from_name("ES256", 5), JOSE_ALG_ES256);
    CHECK_EQ_INT(jose_alg_from_name("EdDSA", 5), JOSE_ALG_EDDSA);
    CHECK_EQ_INT(jose_alg_from_name("eddsa", 5), JOSE_ALG_UNKNOWN);
    CHECK_EQ_INT(jose_alg_from_name("none", 4), JOSE_ALG_UNKNOWN);
    CHECK_EQ_INT(jose_alg_from_name("HS256", 5), JOSE_ALG_UNKNOWN);
    CHECK_EQ_INT(jose_alg_from_name("RS2566", 6), JOSE_ALG_UNKNOWN);
    CHECK_EQ_INT(jose_alg_from_name("RS25", 4), JOSE_ALG_UNKNOWN);
}

static void
malformed_jwks_are_refused_with_a_reason(void)
{
    struct made ec = make_ec(), ed = make_ed25519();
    char        err[160];
    struct {
        struct jose_jwk jwk;
        const char     *why;
    } cases[] = {
        {{.kty = NULL}, "'kty' is missing"},
        {{.kty = "oct", .x = "AAAA"}, "not supported"},
        {{.kty = "EC", .crv = "P-384", .x = ec.jwk.x, .y = ec.jwk.y}, "not supported"},
        {{.kty = "EC", .crv = "P-256", .x = ec.jwk.x}, "'y' is missing"},
        {{.kty = "EC", .crv = "P-256", .x = ec.jwk.x, .y = "AAAA"}, "wrong length"},
        {{.kty = "EC", .crv = "P-256", .x = ec.jwk.x, .y = ec.jwk.x}, "not a valid"},
        {{.kty = "EC", .crv = "P-256", .x = "!!!!", .y = ec.jwk.y}, "not base64url"},
        {{.kty = "OKP", .crv = "X25519", .x = ed.jwk.x}, "not supported"},
        {{.kty = "OKP", .crv = "Ed25519", .x = "AAAA"}, "wrong length"},
        {{.kty = "OKP", .crv = "Ed25519", .x = ed.jwk.x, .alg = "ES256"}, "does not fit"},
        {{.kty = "OKP", .crv = "Ed25519", .x = ed.jwk.x, .alg = "none"}, "does not fit"},
        {{.kty = "RSA", .e = "AQAB"}, "'n' is missing"},
        {{.kty = "RSA", .n = "AQAB", .e = "AQAB"}, "bits"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        err[0] = '\0';
        CHECK(jose_key_from_jwk(&cases[i].jwk, err, sizeof(err)) == NULL);
        if (strstr(err, cases[i].why) == NULL)
            fprintf(stderr, "  case %zu: '%s' lacks '%s'\n", i, err, cases[i].why);
        CHECK(strstr(err, cases[i].why) != NULL);
    }
    made_free(&ec);
    made_free(&ed);
}

static void
an_alg_member_that_fits_is_accepted(void)
{
    struct made m = make_ec();
    char        err[160];
    EVP_PKEY   *k;

    m.jwk.alg = "ES256";
    k = jose_key_from_jwk(&m.jwk, err, sizeof(err));
    CHECK(k != NULL);
    EVP_PKEY_free(k);
    made_free(&m);
}

/* What `sluice token` signs, the resource server verifies, through the public JWK that
 * `sluice token --init` writes. */
static void
own_signatures_verify_through_the_published_jwk(void)
{
    EVP_PKEY *keys[2] = {EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"),
                         EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")};

    for (int i = 0; i < 2; i++) {
        unsigned char sig[JOSE_SIG_MAX];
        size_t        n = jose_sign(keys[i], INPUT, strlen(INPUT), sig);
        char          json[512], err[160];
        EVP_PKEY     *pub;
        char         *x, *y;

        CHECK_EQ_INT(n, 64);
        CHECK(jose_public_jwk_json(keys[i], "sluice-dev-1", json, sizeof(json)) > 0);
        CHECK(strstr(json, "\"kid\":\"sluice-dev-1\"") != NULL);
        /* read x (and y) back out of the JSON */
        x = strstr(json, "\"x\":\"") + 5;
        *strchr(x, '"') = '\0';
        y = i == 1 ? strstr(x + strlen(x) + 1, "\"y\":\"") + 5 : NULL;
        if (y != NULL)
            *strchr(y, '"') = '\0';
        {
            struct jose_jwk jwk = {.kty = i == 0 ? "OKP" : "EC",
                                   .crv = i == 0 ? "Ed25519" : "P-256", .x = x, .y = y};

            pub = jose_key_from_jwk(&jwk, err, sizeof(err));
        }
        CHECK(pub != NULL);
        CHECK_EQ_INT(jose_verify(pub, jose_key_alg(keys[i]), INPUT, strlen(INPUT), sig, n),
                     JOSE_VERIFY_OK);
        EVP_PKEY_free(pub);
        EVP_PKEY_free(keys[i]);
    }
}

static void
rsa_keys_do_not_sign_tokens(void)
{
    struct made   m = make_rsa(2048);
    unsigned char sig[JOSE_SIG_MAX];
    char          json[64];

    CHECK_EQ_INT(jose_sign(m.priv, INPUT, strlen(INPUT), sig), 0);
    CHECK_EQ_INT(jose_public_jwk_json(m.priv, "k", json, sizeof(json)), 0);
    made_free(&m);
}

int
main(void)
{
    RUN(b64url_round_trips_every_length);
    RUN(b64url_decode_refuses_what_is_not_canonical);
    RUN(rs256_signatures_from_openssl_verify_and_tampered_ones_do_not);
    RUN(es256_signatures_from_openssl_verify_and_tampered_ones_do_not);
    RUN(eddsa_signatures_from_openssl_verify_and_tampered_ones_do_not);
    RUN(a_signature_by_another_key_of_the_same_type_does_not_verify);
    RUN(an_rsa_key_under_2048_bits_is_refused);
    RUN(alg_names_are_exact_and_none_and_hs256_are_unknown);
    RUN(malformed_jwks_are_refused_with_a_reason);
    RUN(an_alg_member_that_fits_is_accepted);
    RUN(own_signatures_verify_through_the_published_jwk);
    RUN(rsa_keys_do_not_sign_tokens);
    return check_summary();
}
