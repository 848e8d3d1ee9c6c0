/* core/proto/sasl.h: SASL framing for AUTH (RFC 4954): PLAIN (RFC 4616), LOGIN, XOAUTH2
 * (Google's user=...^Aauth=Bearer ...^A^A) and OAUTHBEARER (RFC 7628).
 * Turns the client's base64 lines into credentials and says which challenge to send
 * next. It decides nothing about whether the credentials are good. No I/O.
 * Secrets live in heap buffers that sasl_reset() wipes before freeing. */
#ifndef SLUICE_SASL_H
#define SLUICE_SASL_H

#include <stdbool.h>
#include <stddef.h>

enum sasl_mech {
    SASL_MECH_NONE,
    SASL_MECH_PLAIN,
    SASL_MECH_LOGIN,
    SASL_MECH_XOAUTH2,
    SASL_MECH_OAUTHBEARER,
};

#define SASL_MECH_BIT(m) (1u << (m))
#define SASL_MECHS_ALL                                                                   \
    (SASL_MECH_BIT(SASL_MECH_PLAIN) | SASL_MECH_BIT(SASL_MECH_LOGIN) |                  \
     SASL_MECH_BIT(SASL_MECH_XOAUTH2) | SASL_MECH_BIT(SASL_MECH_OAUTHBEARER))

/* Upper bounds on decoded fields; longer input is SASL_BAD_SYNTAX. */
#define SASL_ID_MAX     512   /* authcid / authzid (an email address fits) */
#define SASL_SECRET_MAX 9216  /* password or bearer token: 12288 base64 octets decoded */

enum sasl_rc {
    SASL_DONE,        /* credentials complete in s->creds */
    SASL_CHALLENGE,   /* send "334 " + s->challenge (base64, may be empty) and wait */
    SASL_CANCELLED,   /* the client sent "*": reply 501 5.0.0 */
    SASL_BAD_BASE64,  /* reply 501 5.5.2 */
    SASL_BAD_SYNTAX,  /* the decoded payload is malformed: reply 501 5.5.2 */
    SASL_AUTHZ_DENIED, /* an authzid different from the authcid: reply 535 5.7.8 */
};

struct sasl_creds {
    enum sasl_mech mech;
    char          *authcid;  /* owns, NUL-terminated: user name or token's user= / a= */
    char          *secret;   /* owns, NUL-terminated: password or bearer token */
    size_t         secret_len;
    bool           is_token; /* secret is an OAuth2 bearer token */
};

struct sasl {
    enum sasl_mech   mech;
    int              step;          /* private */
    char             challenge[64]; /* base64 text of the next 334 line, NUL-terminated */
    struct sasl_creds creds;
};

/* Map a mechanism name (case-insensitive) to its enum; SASL_MECH_NONE if unknown. */
enum sasl_mech sasl_mech_from_name(const char *name, size_t len);
const char    *sasl_mech_name(enum sasl_mech mech);

/* Begin "AUTH <mech> [initial-response]". ir is NULL when absent; "=" means an empty
 * initial response (RFC 4954 section 4). */
enum sasl_rc sasl_start(struct sasl *s, enum sasl_mech mech, const char *ir, size_t ir_len);

/* Feed the client's next line (without CRLF) after a 334 challenge. */
enum sasl_rc sasl_step(struct sasl *s, const char *line, size_t len);

/* The base64 JSON error challenge sent when a token is refused (RFC 7628 section 3.2.2:
 * {"status":"invalid_token","schemes":"bearer","scope":"<scope>"}; XOAUTH2 sends the
 * same shape with "400"). The client answers with one line (^A or empty), then the
 * server replies 535. Writes a NUL-terminated string; returns its length, or 0 if out
 * is too small. */
size_t sasl_token_error_challenge(enum sasl_mech mech, const char *scope, char *out,
                                  size_t outlen);

/* Wipe and free credentials and reset to SASL_MECH_NONE. Safe on a zeroed struct. */
void sasl_reset(struct sasl *s);

/* Base64 (RFC 4648, standard alphabet, padding required, no whitespace).
 * Decode returns the decoded length or -1 on bad input; out needs (len/4)*3 bytes.
 * Encode writes a NUL-terminated string; out needs ((len+2)/3)*4+1 bytes. */
long   sasl_base64_decode(const char *in, size_t len, unsigned char *out);
size_t sasl_base64_encode(const unsigned char *in, size_t len, char *out);

#endif
