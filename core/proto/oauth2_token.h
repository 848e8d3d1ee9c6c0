/* core/proto/oauth2_token.h: the token endpoint's JSON answer (RFC 6749 section 5.1 and
 * 5.2), for the XOAUTH2 login to cloud upstreams (core/relay/upstream_token.c). A pure
 * parser: bytes in, struct out, no allocation. Only the top-level members it needs are
 * read (access_token, token_type, expires_in, error); everything else is skipped,
 * nested no deeper than OAUTH2_TOKEN_DEPTH_MAX.
 *
 * The token it returns goes into an SMTP command line: it must be an RFC 6750 section
 * 2.1 b64token (letters, digits, "-._~+/", then "=" padding), so that no reply of the
 * endpoint can put CR, LF or a space on that line. */
#ifndef SLUICE_OAUTH2_TOKEN_H
#define SLUICE_OAUTH2_TOKEN_H

#include <stdbool.h>
#include <stddef.h>

#define OAUTH2_TOKEN_MAX       8192 /* octets of an access token (Microsoft's ~2.5 KB) */
#define OAUTH2_TOKEN_DEPTH_MAX 16   /* nesting of the values it skips */

enum oauth2_token_rc {
    OAUTH2_TOKEN_OK,    /* access_token filled (and expires_in, -1 when absent) */
    OAUTH2_TOKEN_ERROR, /* an error answer (RFC 6749 5.2): error filled */
    OAUTH2_TOKEN_BAD,   /* not JSON, not an object, no or a bad access_token, a token_type
                         * other than Bearer, a negative or non-integer expires_in */
};

struct oauth2_token_answer {
    char access_token[OAUTH2_TOKEN_MAX + 1]; /* NUL-terminated */
    long expires_in;                         /* seconds; -1 when absent */
    char error[64];                          /* ASCII, printable; truncated */
};

/* Parse body (len octets, need not be NUL-terminated). */
enum oauth2_token_rc oauth2_token_parse(const char *body, size_t len,
                                        struct oauth2_token_answer *out);

/* s is a b64token (RFC 6750 section 2.1) of 1..OAUTH2_TOKEN_MAX octets. */
bool oauth2_token_is_b64token(const char *s, size_t len);

#endif
