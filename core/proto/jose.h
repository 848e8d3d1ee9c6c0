/* core/proto/jose.h: the JOSE primitives sluice needs as an OAuth2 resource server and for
 * `sluice token`: base64url (RFC 7515 section 2), public keys from JWK members (RFC 7517,
 * RFC 7518 section 6, RFC 8037), and JWS signatures RS256, ES256 and EdDSA (RFC 7518
 * section 3, RFC 8037 section 3.1) through OpenSSL 3. Parsing JSON and checking claims
 * is the Lua half's (lua/sluice/jwt.lua, jwks.lua); the binding is lapi_crypto.c.
 *
 * A resource server holds no shared secrets: HS256 and "none" have no enum value here,
 * so nothing can verify with them. Nothing here keeps state; every function may be called
 * from any thread. Verifying costs tens of microseconds: it runs on the worker's loop.
 * Making a key and verifying leave OpenSSL's per-thread error queue empty, refused or
 * not: the next SSL_read on that worker would take an error left there for its own. */
#ifndef SLUICE_JOSE_H
#define SLUICE_JOSE_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/evp.h>

#define JOSE_RSA_MIN_BITS 2048 /* RFC 7518 section 3.3: 2048 bits or larger */
#define JOSE_RSA_MAX_BITS 8192 /* a bound on the work one verification may cost */
#define JOSE_SIG_MAX      1024 /* octets of a signature: RSA-8192 */
#define JOSE_RSA_E_MAX    16   /* octets of a public exponent (OpenSSL takes e < 2^256) */

enum jose_alg {
    JOSE_ALG_UNKNOWN, /* anything else, "none" and HS* included */
    JOSE_ALG_RS256,   /* RSASSA-PKCS1-v1_5 with SHA-256 */
    JOSE_ALG_ES256,   /* ECDSA P-256 with SHA-256; the signature is r || s, 64 octets */
    JOSE_ALG_EDDSA,   /* Ed25519 (RFC 8037) */
};

/* The public members of one JWK, NUL-terminated, as written (base64url for the numbers);
 * NULL when absent. All borrowed. */
struct jose_jwk {
    const char *kty; /* "RSA", "EC", "OKP" */
    const char *crv; /* EC: "P-256"; OKP: "Ed25519" */
    const char *n;   /* RSA modulus */
    const char *e;   /* RSA exponent */
    const char *x;   /* EC x coordinate, or the Ed25519 public key */
    const char *y;   /* EC y coordinate */
    const char *alg; /* optional: when present it must be the one alg the key fits */
};

/* Base64url without padding (RFC 7515 section 2 and appendix C, RFC 4648 section 5).
 * jose_b64url_decoded_len: the exact number of octets a text of len characters decodes
 * to (3 per 4 characters; a tail of 2 characters is 1 octet, of 3 is 2), or -1 when no
 * text of that length is valid (len % 4 == 1, and lengths whose octets overflow a long).
 * jose_b64url_decode: at most cap octets into out; returns how many, or -1 for a length
 * the above refuses, a text that decodes to more than cap octets (refused before anything
 * is written), a character outside the alphabet, '=' padding, or non-zero unused bits in
 * the last character (only the canonical text of a value is accepted, so a value has one
 * text). out's contents are unspecified after -1.
 * jose_b64url_encode: a NUL-terminated string; returns its length; out needs
 * (len + 2) / 3 * 4 + 1 octets. */
long   jose_b64url_decoded_len(size_t len);
long   jose_b64url_decode(const char *in, size_t len, unsigned char *out, size_t cap);
size_t jose_b64url_encode(const unsigned char *in, size_t len, char *out);

/* "RS256", "ES256", "EdDSA" (case-sensitive, RFC 7515 section 4.1.1) -> enum. */
enum jose_alg jose_alg_from_name(const char *name, size_t len);
const char   *jose_alg_name(enum jose_alg alg);

/* A public key, or NULL and the reason in err. Refused: an unknown kty or crv, members
 * missing, not base64url or of the wrong length (x and y exactly 32 octets; n at most
 * JOSE_RSA_MAX_BITS / 8 + 1, a leading zero allowed; e at most JOSE_RSA_E_MAX), a point
 * not on the curve, RSA below JOSE_RSA_MIN_BITS or above JOSE_RSA_MAX_BITS, an alg that
 * does not fit the key. A member's length is judged from its text's length before it is
 * decoded. The caller owns the key (EVP_PKEY_free). */
EVP_PKEY *jose_key_from_jwk(const struct jose_jwk *jwk, char *err, size_t errlen);

/* The one algorithm a key of ours signs or verifies with. */
enum jose_alg jose_key_alg(const EVP_PKEY *key);

enum jose_verify_rc {
    JOSE_VERIFY_OK,      /* the signature is good */
    JOSE_VERIFY_BAD,     /* it is not (wrong key, tampered input, malformed signature) */
    JOSE_VERIFY_BAD_ALG, /* alg is unknown or does not fit the key: nothing was checked */
};

/* Check sig over input (the JWS signing input, "header.payload") with key and alg. A
 * signature of any length but the alg's (64 octets for ES256 and EdDSA, the modulus'
 * octets for RS256, never over JOSE_SIG_MAX) is JOSE_VERIFY_BAD before OpenSSL sees it. */
enum jose_verify_rc jose_verify(EVP_PKEY *key, enum jose_alg alg, const void *input,
                                size_t len, const unsigned char *sig, size_t siglen);

/* Sign input with a private key (EdDSA or ES256 only: what `sluice token` mints) into sig
 * (JOSE_SIG_MAX octets). Returns the signature's length, or 0 on failure. */
size_t jose_sign(EVP_PKEY *key, const void *input, size_t len, unsigned char *sig);

/* The public JWK of an Ed25519 or P-256 key as one JSON object with "kid", "use":"sig"
 * and "alg", NUL-terminated in out. Returns its length, or 0 (other key types, or out
 * too small). */
size_t jose_public_jwk_json(EVP_PKEY *key, const char *kid, char *out, size_t outlen);

#endif
