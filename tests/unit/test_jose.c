/* tests/unit/test_jose.c: core/proto/jose.c with keys OpenSSL generates here: base64url both
 * ways and cut at every length, JWKs of each type (and the ones refused), signatures
 * made by OpenSSL verified by jose_verify, tampered ones and ones with the wrong alg
 * refused, and `sluice token`'s signing read back by the verifier. */
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "proto/jose.h"

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
        CHECK_EQ_INT(jose_b64url_decode(text, len, out, sizeof(out)), (long)n);
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
        CHECK_EQ_INT(jose_b64url_decode(bad[i], strlen(bad[i]), out, sizeof(out)), -1);
    CHECK_EQ_INT(jose_b64url_decode("YQ", 2, out, 1), 1);
    CHECK_EQ_INT(out[0], 'a');
    CHECK_EQ_INT(jose_b64url_decode("", 0, out, 0), 0);
    CHECK_EQ_INT(jose_b64url_decode("-_8", 3, out, 2), 2);
    CHECK(out[0] == 0xfb && out[1] == 0xff);
}

/* RFC 7515 appendix C: the decoded length follows from the text's length alone. */
static void
b64url_decoded_length_is_exact_for_every_text_length(void)
{
    static const long want[12] = {0, -1, 1, 2, 3, -1, 4, 5, 6, -1, 7, 8};

    for (size_t len = 0; len < 12; len++)
        CHECK_EQ_INT(jose_b64url_decoded_len(len), want[len]);
    CHECK_EQ_INT(jose_b64url_decoded_len(44), 33);
    CHECK_EQ_INT(jose_b64url_decoded_len(43), 32);
    CHECK_EQ_INT(jose_b64url_decoded_len(1368), 1026);
    CHECK_EQ_INT(jose_b64url_decoded_len(1367), 1025);
    CHECK_EQ_INT(jose_b64url_decoded_len((size_t)-1), -1);
    CHECK_EQ_INT(jose_b64url_decoded_len((size_t)-2), -1); /* overflows a long */
}

/* Every text of up to 100 characters, decoded into a heap block of exactly its length
 * (ASan sees one octet past it), and refused untouched with one octet less room. */
static void
b64url_decode_writes_exactly_the_decoded_length_and_never_past_cap(void)
{
    char text[101];

    for (size_t len = 0; len <= 100; len++) {
        long           want = jose_b64url_decoded_len(len);
        unsigned char *out;

        for (size_t i = 0; i < len; i++)
            text[i] = "AQIDBAUGBwgJ"[i % 12];
        if (len % 4 >= 2) /* a tail whose unused bits are zero: 'A' */
            text[len - 1] = 'A';
        if (want < 0) {
            unsigned char room[100];

            CHECK_EQ_INT(jose_b64url_decode(text, len, room, sizeof(room)), -1);
            continue;
        }
        out = malloc((size_t)want + 1);
        memset(out, 0xee, (size_t)want + 1);
        CHECK_EQ_INT(jose_b64url_decode(text, len, out, (size_t)want), want);
        CHECK_EQ_INT(out[want], 0xee);
        if (want > 0) {
            memset(out, 0xee, (size_t)want + 1);
            CHECK_EQ_INT(jose_b64url_decode(text, len, out, (size_t)want - 1), -1);
            CHECK_EQ_INT(out[0], 0xee); /* refused before anything was written */
        }
        free(out);
        out = malloc(want > 0 ? (size_t)want : 1);
        CHECK_EQ_INT(jose_b64url_decode(text, len, out, (size_t)want), want);
        free(out);
    }
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

#define BANGS_43 "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" /* the length of 32 octets */

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
        {{.kty = "EC", .crv = "P-256", .x = "!!!!", .y = ec.jwk.y}, "wrong length"},
        {{.kty = "EC", .crv = "P-256", .x = BANGS_43, .y = ec.jwk.y}, "not base64url"},
        {{.kty = "EC", .crv = "P-256", .x = "AAAAA", .y = ec.jwk.y}, "not base64url"},
        {{.kty = "RSA", .n = "AQAB", .e = ""}, "'e' is missing"},
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

/* ---- every member and signature at, under and over its buffer's size ---- */

/* base64url of n octets: src's first n, then 0x80 (keeps an RSA modulus' top bit set). */
static char *
b64_of_octets(const unsigned char *src, size_t srclen, size_t n)
{
    unsigned char *buf = malloc(n + 1);
    char          *text = malloc((n + 2) / 3 * 4 + 1);

    for (size_t i = 0; i < n; i++)
        buf[i] = i < srclen ? src[i] : 0x80;
    jose_b64url_encode(buf, n, text);
    free(buf);
    return text;
}

/* The JWK refused or not, and when refused whether its member was refused for length. */
static void
check_member_size(const struct jose_jwk *jwk, bool accepted, bool length_refused,
                  const char *what, size_t octets)
{
    char      err[160] = "";
    EVP_PKEY *k = jose_key_from_jwk(jwk, err, sizeof(err));
    bool      by_length = strstr(err, "length") != NULL || strstr(err, "too long") != NULL;

    if ((k != NULL) != accepted || by_length != length_refused)
        fprintf(stderr, "  %s of %zu octets: key %s, err '%s'\n", what, octets,
                k != NULL ? "made" : "refused", err);
    CHECK((k != NULL) == accepted);
    CHECK(by_length == length_refused);
    EVP_PKEY_free(k);
}

/* The report's reproduction: a 44-character x (33 octets) for Ed25519 wrote one octet
 * past a 32-octet stack buffer (ASan: stack-buffer-overflow in jose_b64url_decode). */
static void
an_ed25519_x_of_44_characters_is_refused_for_its_length(void)
{
    struct jose_jwk jwk = {.kty = "OKP", .crv = "Ed25519",
                           .x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURoA"};

    CHECK_EQ_INT(strlen(jwk.x), 44);
    check_member_size(&jwk, false, true, "x", 33);
}

static void
an_ed25519_x_is_accepted_at_32_octets_only(void)
{
    struct made   m = make_ed25519();
    unsigned char raw[64];
    long          n = jose_b64url_decode(m.jwk.x, strlen(m.jwk.x), raw, sizeof(raw));
    const char   *x = m.jwk.x;

    CHECK_EQ_INT(n, 32);
    for (size_t k = 29; k <= 35; k++) {
        m.jwk.x = b64_of_octets(raw, 32, k);
        check_member_size(&m.jwk, k == 32, k != 32, "x", k);
        free((char *)m.jwk.x);
    }
    m.jwk.x = x;
    made_free(&m);
}

static void
p256_coordinates_are_accepted_at_32_octets_only(void)
{
    struct made   m = make_ec();
    unsigned char rx[64], ry[64];
    const char   *x = m.jwk.x, *y = m.jwk.y;

    CHECK_EQ_INT(jose_b64url_decode(x, strlen(x), rx, sizeof(rx)), 32);
    CHECK_EQ_INT(jose_b64url_decode(y, strlen(y), ry, sizeof(ry)), 32);
    for (size_t k = 29; k <= 35; k++) {
        m.jwk.x = b64_of_octets(rx, 32, k);
        check_member_size(&m.jwk, k == 32, k != 32, "x", k);
        free((char *)m.jwk.x);
        m.jwk.x = x;
        m.jwk.y = b64_of_octets(ry, 32, k); /* y ends the 65-octet point: its overrun */
        check_member_size(&m.jwk, k == 32, k != 32, "y", k);
        free((char *)m.jwk.y);
        m.jwk.y = y;
    }
    made_free(&m);
}

/* n holds 8192 bits and a leading zero octet (1025); e at most 16 octets. Values too big
 * for a key are refused for their bits or by OpenSSL, never for the buffer. */
static void
rsa_members_are_bounded_by_their_buffers(void)
{
    struct made   m = make_rsa(2048);
    unsigned char zero_n[1] = {0};
    const char   *n = m.jwk.n, *e = m.jwk.e;

    for (size_t k = 1022; k <= 1027; k++) {
        m.jwk.n = b64_of_octets(NULL, 0, k); /* 0x80...: k * 8 bits */
        check_member_size(&m.jwk, false, k > 1025, "n", k);
        free((char *)m.jwk.n);
        m.jwk.n = b64_of_octets(zero_n, 1, k); /* 0x00 0x80...: (k - 1) * 8 bits */
        check_member_size(&m.jwk, false, k > 1025, "n with a leading zero", k);
        free((char *)m.jwk.n);
    }
    m.jwk.n = n;
    for (size_t k = 13; k <= 19; k++) { /* 0x01 0x00... 0x01: odd, >= 65537, < 2^256 */
        unsigned char v[19] = {0};

        v[0] = 1;
        v[k - 1] = 1;
        m.jwk.e = b64_of_octets(v, k, k);
        check_member_size(&m.jwk, k <= 16, k > 16, "e", k);
        free((char *)m.jwk.e);
    }
    m.jwk.e = e;
    made_free(&m);
}

/* Signatures of every length around the one each alg has, each in a heap block of
 * exactly that length (ASan sees a read past it), and past JOSE_SIG_MAX. */
static void
signatures_of_any_other_length_do_not_verify(void)
{
    struct made m[3] = {make_rsa(2048), make_ec(), make_ed25519()};
    enum jose_alg alg[3] = {JOSE_ALG_RS256, JOSE_ALG_ES256, JOSE_ALG_EDDSA};

    for (int i = 0; i < 3; i++) {
        char           err[160];
        EVP_PKEY      *pub = jose_key_from_jwk(&m[i].jwk, err, sizeof(err));
        unsigned char  good[1100];
        size_t         len = openssl_sign(&m[i], good);

        CHECK(pub != NULL);
        for (size_t k = len - 2; k <= len + 2; k++) {
            unsigned char *sig = malloc(k);

            memcpy(sig, good, k < len ? k : len);
            if (k > len)
                memset(sig + len, 0, k - len);
            CHECK_EQ_INT(jose_verify(pub, alg[i], INPUT, strlen(INPUT), sig, k),
                         k == len ? JOSE_VERIFY_OK : JOSE_VERIFY_BAD);
            free(sig);
        }
        for (size_t k = JOSE_SIG_MAX - 1; k <= JOSE_SIG_MAX + 2; k++) {
            unsigned char *sig = calloc(1, k);

            CHECK_EQ_INT(jose_verify(pub, alg[i], INPUT, strlen(INPUT), sig, k),
                         JOSE_VERIFY_BAD);
            free(sig);
        }
        EVP_PKEY_free(pub);
        made_free(&m[i]);
    }
}

/* OpenSSL's error queue is per thread and SSL_read on the same worker reads it: a key
 * refused or a signature checked must leave it empty, or a TLS session dies later. */
static void
refused_keys_and_signatures_leave_no_openssl_errors(void)
{
    struct made   ec = make_ec(), rsa = make_rsa(2048);
    char          err[160];
    unsigned char sig[64] = {0};
    EVP_PKEY     *k;
    struct jose_jwk cases[] = {
        {.kty = "EC", .crv = "P-256", .x = ec.jwk.x, .y = ec.jwk.x},  /* off the curve */
        {.kty = "RSA", .n = rsa.jwk.n, .e = "AA"},                   /* e = 0 */
        {.kty = "RSA", .n = rsa.jwk.n, .e = "Ag"},                   /* e = 2 */
        {.kty = "OKP", .crv = "Ed25519", .x = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
    };

    ERR_clear_error();
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        k = jose_key_from_jwk(&cases[i], err, sizeof(err));
        if (ERR_peek_error() != 0)
            fprintf(stderr, "  case %zu (%s) left an OpenSSL error\n", i, k ? "made" : err);
        CHECK(ERR_peek_error() == 0);
        if (k != NULL)
            CHECK_EQ_INT(jose_verify(k, jose_key_alg(k), INPUT, strlen(INPUT), sig, 64),
                         JOSE_VERIFY_BAD);
        CHECK(ERR_peek_error() == 0);
        EVP_PKEY_free(k);
        ERR_clear_error();
    }
    made_free(&ec);
    made_free(&rsa);
}

int
main(void)
{
    RUN(b64url_round_trips_every_length);
    RUN(b64url_decode_refuses_what_is_not_canonical);
    RUN(b64url_decoded_length_is_exact_for_every_text_length);
    RUN(b64url_decode_writes_exactly_the_decoded_length_and_never_past_cap);
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
    RUN(an_ed25519_x_of_44_characters_is_refused_for_its_length);
    RUN(an_ed25519_x_is_accepted_at_32_octets_only);
    RUN(p256_coordinates_are_accepted_at_32_octets_only);
    RUN(rsa_members_are_bounded_by_their_buffers);
    RUN(signatures_of_any_other_length_do_not_verify);
    RUN(refused_keys_and_signatures_leave_no_openssl_errors);
    return check_summary();
}
