/* tests/unit/test_sasl.c: core/proto/sasl.c -- base64, the four mechanisms in initial-response
 * and challenge forms, cancel, bounds, authzid rules, and the token error challenge. */
#include "check.h"
#include "proto/sasl.h"

#include <stdlib.h>

#define B64_MAX 16384

/* Payload literals contain NULs, so their length comes from sizeof. */
#define P(lit) lit, sizeof(lit) - 1

static char b64buf[B64_MAX];

static const char *
b64(const void *p, size_t n)
{
    if (((n + 2) / 3) * 4 + 1 > sizeof(b64buf))
        abort();
    sasl_base64_encode(p, n, b64buf);
    return b64buf;
}

/* NULL-safe, so a missing credential fails the check instead of crashing the run */
static int
str_is(const char *got, const char *want)
{
    return got != NULL && strcmp(got, want) == 0;
}

static enum sasl_rc
start_ir(struct sasl *s, enum sasl_mech mech, const void *payload, size_t n)
{
    const char *ir = b64(payload, n);

    return sasl_start(s, mech, ir, strlen(ir));
}

static enum sasl_rc
step_b64(struct sasl *s, const void *payload, size_t n)
{
    const char *line = b64(payload, n);

    return sasl_step(s, line, strlen(line));
}

static enum sasl_rc
step_text(struct sasl *s, const char *line)
{
    return sasl_step(s, line, strlen(line));
}

/* ---- base64 ---- */

static void
base64_round_trips_at_every_length_0_to_64(void)
{
    unsigned char in[64], out[64];
    char          text[((64 + 2) / 3) * 4 + 1];
    size_t        len, i, tlen;

    for (len = 0; len <= 64; len++) {
        for (i = 0; i < len; i++)
            in[i] = (unsigned char)(i * 37 + len * 11);
        tlen = sasl_base64_encode(in, len, text);
        CHECK_EQ_INT(tlen, ((len + 2) / 3) * 4);
        CHECK_EQ_INT(strlen(text), tlen);
        CHECK_EQ_INT(sasl_base64_decode(text, tlen, out), len);
        CHECK(memcmp(in, out, len) == 0);
    }
}

static void
base64_matches_the_rfc4648_test_vectors(void)
{
    static const char *const vec[][2] = {
        { "", "" },         { "f", "Zg==" },        { "fo", "Zm8=" },       { "foo", "Zm9v" },
        { "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" },
    };
    unsigned char out[16];
    char          text[16];
    size_t        i;
    long          n;

    for (i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
        sasl_base64_encode((const unsigned char *)vec[i][0], strlen(vec[i][0]), text);
        CHECK(strcmp(text, vec[i][1]) == 0);
        n = sasl_base64_decode(vec[i][1], strlen(vec[i][1]), out);
        CHECK_MEM(out, n < 0 ? 0 : (size_t)n, vec[i][0]);
    }
}

static void
base64_decodes_every_alphabet_character(void)
{
    static const char all[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    unsigned char     out[48];
    char              again[65];

    CHECK_EQ_INT(sasl_base64_decode(all, 64, out), 48);
    sasl_base64_encode(out, 48, again);
    CHECK(strcmp(again, all) == 0);
}

static void
base64_accepts_exactly_the_alphabet_at_every_position(void)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    unsigned char     out[3];
    char              text[4];
    int               c, pos, fails = 0;
    long              want;

    for (c = 0; c < 256; c++) {
        for (pos = 0; pos < 4; pos++) {
            memcpy(text, "AAAA", 4);
            text[pos] = (char)c;
            want = c != 0 && strchr(alphabet, c) != NULL ? 3 : -1;
            if (c == '=' && pos == 3)
                want = 2; /* "AAA=" is padding, the only place '=' may be here */
            fails += sasl_base64_decode(text, 4, out) != want;
        }
    }
    CHECK_EQ_INT(fails, 0);
}

static void
base64_rejects_anything_but_strict_padded_text(void)
{
    static const char *const bad[] = {
        "Zg=",      /* length not a multiple of 4 */
        "Zg",       /* padding missing */
        "Z===",     /* three pad characters */
        "====",     /* nothing but padding */
        "Zg==Zg==", /* padding before the end */
        "=Zg=",     /* padding first */
        "Zm9v\r\n", /* line break */
        "Zm 9",     /* space */
        "Zm9-",     /* base64url alphabet */
        "Zm_v",     /* base64url alphabet */
        "Zh==",     /* non-zero pad bits (RFC 4648 section 3.5) */
        "Zm9=",     /* non-zero pad bits */
        "Zm9\x80",  /* eight-bit octet */
    };
    unsigned char out[16];
    size_t        i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK_EQ_INT(sasl_base64_decode(bad[i], strlen(bad[i]), out), -1);
    CHECK_EQ_INT(sasl_base64_decode("Zm\0v", 4, out), -1);
}

/* ---- mechanism names ---- */

static void
mechanism_names_match_case_insensitively(void)
{
    CHECK_EQ_INT(sasl_mech_from_name("plain", 5), SASL_MECH_PLAIN);
    CHECK_EQ_INT(sasl_mech_from_name("Login", 5), SASL_MECH_LOGIN);
    CHECK_EQ_INT(sasl_mech_from_name("xoauth2", 7), SASL_MECH_XOAUTH2);
    CHECK_EQ_INT(sasl_mech_from_name("OAuthBearer", 11), SASL_MECH_OAUTHBEARER);
    CHECK_EQ_INT(sasl_mech_from_name("PLAIN SOMETHING", 5), SASL_MECH_PLAIN);
    CHECK_EQ_INT(sasl_mech_from_name("PLAINX", 6), SASL_MECH_NONE);
    CHECK_EQ_INT(sasl_mech_from_name("CRAM-MD5", 8), SASL_MECH_NONE);
    CHECK_EQ_INT(sasl_mech_from_name("", 0), SASL_MECH_NONE);
    CHECK(strcmp(sasl_mech_name(SASL_MECH_OAUTHBEARER), "OAUTHBEARER") == 0);
    CHECK(strcmp(sasl_mech_name(SASL_MECH_LOGIN), "LOGIN") == 0);
}

/* ---- PLAIN ---- */

static void
plain_initial_response_gives_credentials(void)
{
    struct sasl s = { 0 };

    CHECK_EQ_INT(start_ir(&s, SASL_MECH_PLAIN, P("\0ann@example.org\0s3cret")), SASL_DONE);
    CHECK(str_is(s.creds.authcid, "ann@example.org"));
    CHECK_MEM(s.creds.secret, s.creds.secret_len, "s3cret");
    CHECK_EQ_INT(s.creds.mech, SASL_MECH_PLAIN);
    CHECK(!s.creds.is_token);
    sasl_reset(&s);
}

static void
plain_without_initial_response_sends_an_empty_challenge(void)
{
    struct sasl s = { 0 };

    CHECK_EQ_INT(sasl_start(&s, SASL_MECH_PLAIN, NULL, 0), SASL_CHALLENGE);
    CHECK(str_is(s.challenge, ""));
    CHECK_EQ_INT(step_b64(&s, P("\0ann\0pw")), SASL_DONE);
    CHECK(str_is(s.creds.authcid, "ann"));
    CHECK(str_is(s.creds.secret, "pw"));
    sasl_reset(&s);
}

static void
plain_with_own_authzid_is_accepted(void)
{
    struct sasl s = { 0 };

    CHECK_EQ_INT(start_ir(&s, SASL_MECH_PLAIN, P("ann\0ann\0pw")), SASL_DONE);
    CHECK(str_is(s.creds.authcid, "ann"));
    sasl_reset(&s);
}

static void
plain_with_foreign_authzid_is_denied(void)
{
    struct sasl s = { 0 };

    CHECK_EQ_INT(start_ir(&s, SASL_MECH_PLAIN, P("bob\0ann\0pw")), SASL_AUTHZ_DENIED);
    CHECK(str_is(s.creds.authcid, "ann")); /* for the log */
    CHECK(s.creds.secret == NULL);
    sasl_reset(&s);
    CHECK_EQ_INT(start_ir(&s, SASL_MECH_PLAIN, P("ann2\0ann\0pw")), SASL_AUTHZ_DENIED);
    sasl_reset(&s);
    CHECK_EQ_INT(start_ir(&s, SASL_MECH_PLAIN, P("an\0ann\0pw")), SASL_AUTHZ_DENIED);
    sasl_reset(&s);
}

static void
plain_malformed_payloads_are_bad_syntax(void)
{
    static const struct {
        const char *p;
        size_t      n;
    } bad[] = {
        { P("") },
        { P("ann\0pw") },                 /* one NUL */
        { P("\0\0pw") },                  /* empty authcid */
        { P("\0ann\0") },                 /* empty password */
        { P("\0ann\0pw\0x") },            /* a third field */
        { P("\0a\x01nn\0pw") },           /* control character */
        { P("\0ann\x7f\0pw") },           /* DEL */
        { P("\0\xc2\x85nn\0pw") },        /* C1 control (NEL) */
        { P("\0\xc3\0pw") },              /* truncated UTF-8 */
        { P("\0\xc0\xaf\0pw") },          /* overlong UTF-8 */
        { P("\0\xed\xa0\x80\0pw") },      /* UTF-16 surrogate */
        { P("\0\xf4\x90\x80\x80\0pw") },  /* above U+10FFFF */
        { P("\x01\0ann\0pw") },           /* control character in authzid */
    };
    struct sasl s = { 0 };
    size_t      i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK_EQ_INT(start_ir(&s, SASL_MECH_PLAIN, bad[i].p, bad[i].n), SASL_BAD_SYNTAX);
        CHECK(s.creds.secret == NULL);
        sasl_reset(&s);
    }
}

static void
plain_accepts_utf8_names_and_any_password_octets(void)
{
    struct sasl s = { 0 };

    CHECK_EQ_INT(start_ir(&s, SASL_MECH_PLAIN, P("\0j\xc3\xbcrgen@example.org\0p\xe9\x01")),
                 SASL_DONE);
    CHECK(str_is(s.creds.authcid, "j\xc3\xbcrgen@example.org"));
    CHECK_EQ_INT(s.creds.secret_len, 3);
    sasl_reset(&s);
}

static void
empty_initial_response_is_an_empty_payload(void)
{
    struct sasl s = { 0 };

    CHECK_EQ_INT(sasl_start(&s, SASL_MECH_PLAIN, "=", 1), SASL_BAD_SYNTAX);
    sasl_reset(&s);
    CHECK_EQ_INT(sasl_start(&s, SASL_MECH_LOGIN, "=", 1), SASL_BAD_SYNTAX);
    sasl_reset(&s);
    /* "=" is only for the initial response; after a challenge an empty line is empty */
    CHECK_EQ_INT(sasl_start(&s, SASL_MECH_PLAIN, NULL, 0), SASL_CHALLENGE);
    CHECK_EQ_INT(step_text(&s, "="), SASL_BAD_BASE64);
    sasl_reset(&s);
    CHECK_EQ_INT(sasl_start(&s, SASL_MECH_PLAIN, NULL, 0), SASL_CHALLENGE);
    CHECK_EQ_INT(step_text(&s, ""), SASL_BAD_SYNTAX);
    sasl_reset(&s);
}

/* ---- bounds ---- */

static void
identities_are_bounded_by_sasl_id_max(void)
{
    static unsigned char p[SASL_ID_MAX + 8];
    struct sasl          s = { 0 };

    p[0] = '\0';
    memset(p + 1, 'a', SASL_ID_MAX);
    memcpy(p + 1 + SASL_ID_MAX, "\0pw", 3);
    CHECK_EQ_INT(start_ir(&s, SASL_MECH_PLAIN, p, SASL_ID_MAX + 4), SASL_DONE);
    CHECK_EQ_INT(s.creds.authcid ? strlen(s.creds.authcid) : 0, SASL_ID_MAX);
    sasl_reset(&s);
    memset(p + 1, 'a', SASL_ID_MAX + 1);
    memcpy(p + 2 + SASL_ID_MAX, "\0pw", 3);
    CHECK_EQ_INT(start_ir(&s, SASL_MECH_PLAIN, p, SASL_ID_MAX + 5), SASL_BAD_SYNTAX);
    sasl_reset(&s);
    CHECK_EQ_INT(sasl_start(&s, SASL_MECH_LOGIN, NULL, 0), SASL_CHALLENGE);
    CHECK_EQ_INT(step_b64(&s, p + 1, SASL_ID_MAX + 1), SASL_BAD_SYNTAX);
    sasl_reset(&s);
}

static void
secrets_are_bounded_by_sasl_secret_max(void)
{
    static unsigned char pw[SASL_SECRET_MAX + 1];
    struct sasl          s = { 0 };

    memset(pw, 'x', sizeof(pw));
    CHECK_EQ_INT(start_ir(&s, SASL_MECH_LOGIN, P("ann")), SASL_CHALLENGE);
    CHECK_EQ_INT(step_b64(&s, pw, SASL_SECRET_MAX), SASL_DONE);
    CHECK_EQ_INT(s.creds.secret_len, SASL_SECRET_MAX);
    CHECK_EQ_INT(strlen(s.creds.secret), SASL_SECRET_MAX);
    sasl_reset(&s);
    CHECK_EQ_INT(start_ir(&s, SASL_MECH_LOGIN, P("ann")), SASL_CHALLENGE);
    CHECK_EQ_INT(step_b64(&s, pw, SASL_SECRET_MAX + 1), SASL_BAD_SYNTAX);
    CHECK(s.creds.secret == NULL);
    sasl_reset(&s);
}

static void
oversize_lines_are_bad_syntax_even_when_valid_base64(void)
{
    static char line[12292 + 1];
    struct sasl s = { 0 };

    memset(line, 'A', 12292);
    CHECK_EQ_INT(sasl_start(&s, SASL_MECH_PLAIN, line, 12292), SASL_BAD_SYNTAX);
    sasl_reset(&s);
    CHECK_EQ_INT(sasl_start(&s, SASL_MECH_PLAIN, NULL, 0), SASL_CHALLENGE);
    CHECK_EQ_INT(sasl_step(&s, line, 12292), SASL_BAD_SYNTAX);
    sasl_reset(&s);
}

/* ---- LOGIN ---- */

static void
login_asks_for_user_name_then_password(void)
{
    struct sasl s = { 0 };

    CHECK_EQ_INT(sasl_start(&s, SASL_MECH_LOGIN, NULL, 0), SASL_CHALLENGE);
    CHECK(str_is(s.challenge, "VXNlcm5hbWU6"));
    CHECK_EQ_INT(step_b64(&s, P("ann@example.org")), SASL_CHALLENGE);
    CHECK(str_is(s.challenge, "UGFzc3dvcmQ6"));
    CHECK_EQ_INT(step_b64(&s, P("s3cret")), SASL_DONE);
    CHECK(str_is(s.creds.authcid, "ann@example.org"));
    CHECK_MEM(s.creds.secret, s.creds.secret_len, "s3cret");
    CHECK_EQ_INT(s.creds.mech, SASL_MECH_LOGIN);
    sasl_reset(&s);
}

static void
login_initial_response_is_the_user_name(void)
{
    struct sasl s = { 0 };

    CHECK_EQ_INT(start_ir(&s, SASL_MECH_LOGIN, P("ann")), SASL_CHALLENGE);
    CHECK(str_is(s.challenge, "UGFzc3dvcmQ6"));
    CHECK_EQ_INT(step_b64(&s, P("pw")), SASL_DONE);
    CHECK(str_is(s.creds.authcid, "ann"));
    CHECK(str_is(s.creds.secret, "pw"));
    sasl_reset(&s);
}

static void
login_refuses_empty_or_nul_fields(void)
{
    struct sasl s = { 0 };

    CHECK_EQ_INT(sasl_start(&s, SASL_MECH_LOGIN, NULL, 0), SASL_CHALLENGE);
    CHECK_EQ_INT(step_text(&s, ""), SASL_BAD_SYNTAX);
    sasl_reset(&s);
    CHECK_EQ_INT(start_ir(&s, SASL_MECH_LOGIN, P("ann")), SASL_CHALLENGE);
    CHECK_EQ_INT(step_text(&s, ""), SASL_BAD_SYNTAX);
    sasl_reset(&s);
    CHECK_EQ_INT(start_ir(&s, SASL_MECH_LOGIN, P("ann")), SASL_CHALLENGE);
    CHECK_EQ_INT(step_b64(&s, P("p\0w")), SASL_BAD_SYNTAX);
    sasl_reset(&s);
    CHECK_EQ_INT(start_ir(&s, SASL_MECH_LOGIN, P("a\0nn")), SASL_BAD_SYNTAX);
    sasl_reset(&s);
}

/* ---- cancel and bad base64 ---- */

static void
star_cancels_at_every_step(void)
{
    struct sasl s = { 0 };

    CHECK_EQ_INT(sasl_start(&s, SASL_MECH_PLAIN, "*", 1), SASL_CANCELLED);
    sasl_reset(&s);
    CHECK_EQ_INT(sasl_start(&s, SASL_MECH_XOAUTH2, NULL, 0), SASL_CHALLENGE);
    CHECK_EQ_INT(step_text(&s, "*"), SASL_CANCELLED);
    sasl_reset(&s);
    CHECK_EQ_INT(sasl_start(&s, SASL_MECH_LOGIN, NULL, 0), SASL_CHALLENGE);
    CHECK_EQ_INT(step_text(&s, "*"), SASL_CANCELLED);
    sasl_reset(&s);
    CHECK_EQ_INT(start_ir(&s, SASL_MECH_LOGIN, P("ann")), SASL_CHALLENGE);
    CHECK_EQ_INT(step_text(&s, "*"), SASL_CANCELLED);
    CHECK(s.creds.secret == NULL);
    sasl_reset(&s);
}

static void
bad_base64_is_reported_in_both_forms(void)
{
    struct sasl s = { 0 };

    CHECK_EQ_INT(sasl_start(&s, SASL_MECH_PLAIN, "AGFubgBwdw", 10), SASL_BAD_BASE64);
    sasl_reset(&s);
    CHECK_EQ_INT(sasl_start(&s, SASL_MECH_OAUTHBEARER, "**", 2), SASL_BAD_BASE64);
    sasl_reset(&s);
    CHECK_EQ_INT(sasl_start(&s, SASL_MECH_LOGIN, NULL, 0), SASL_CHALLENGE);
    CHECK_EQ_INT(step_text(&s, "YW5u\r"), SASL_BAD_BASE64);
    sasl_reset(&s);
    CHECK_EQ_INT(start_ir(&s, SASL_MECH_LOGIN, P("ann")), SASL_CHALLENGE);
    CHECK_EQ_INT(step_text(&s, "cH c="), SASL_BAD_BASE64);
    CHECK(s.creds.secret == NULL);
    sasl_reset(&s);
}

/* ---- XOAUTH2 ---- */

static void
xoauth2_initial_response_gives_a_token(void)
{
    struct sasl s = { 0 };

    CHECK_EQ_INT(start_ir(&s, SASL_MECH_XOAUTH2,
                          P("user=ann@example.org\001auth=Bearer ya29.vF9dft4qmTc2Nvb3\001\001")),
                 SASL_DONE);
    CHECK(str_is(s.creds.authcid, "ann@example.org"));
    CHECK_MEM(s.creds.secret, s.creds.secret_len, "ya29.vF9dft4qmTc2Nvb3");
    CHECK(s.creds.is_token);
    CHECK_EQ_INT(s.creds.mech, SASL_MECH_XOAUTH2);
    sasl_reset(&s);
}

static void
xoauth2_challenge_form_and_lowercase_bearer_work(void)
{
    struct sasl s = { 0 };

    CHECK_EQ_INT(sasl_start(&s, SASL_MECH_XOAUTH2, NULL, 0), SASL_CHALLENGE);
    CHECK(str_is(s.challenge, ""));
    CHECK_EQ_INT(step_b64(&s, P("user=ann\001auth=bearer tok==\001\001")), SASL_DONE);
    CHECK(str_is(s.creds.authcid, "ann"));
    CHECK(str_is(s.creds.secret, "tok=="));
    sasl_reset(&s);
}

static void
xoauth2_malformed_payloads_are_bad_syntax(void)
{
    static const struct {
        const char *p;
        size_t      n;
    } bad[] = {
        { P("user=ann\001auth=Bearer tok\001") },            /* one ^A at the end */
        { P("user=ann\001auth=Bearer tok") },                /* none */
        { P("user=ann\001auth=Bearer tok\001\001x") },       /* bytes after the end */
        { P("auth=Bearer tok\001\001") },                    /* no user */
        { P("user=ann\001\001") },                           /* no auth */
        { P("user=\001auth=Bearer tok\001\001") },           /* empty user */
        { P("user=ann\001auth=Bearer \001\001") },           /* empty token */
        { P("user=ann\001auth=Basic dG9r\001\001") },        /* not a bearer token */
        { P("user=ann\001auth=Bearertok\001\001") },         /* no space */
        { P("user=ann\001auth=Bearer a b\001\001") },        /* space inside the token */
        { P("user=ann\001user=bob\001auth=Bearer t\001\001") }, /* user twice */
        { P("user=ann\001auth=Bearer t\001auth=Bearer u\001\001") },
        { P("user=ann\001x1=y\001auth=Bearer t\001\001") },  /* key not ALPHA */
        { P("user=ann\001novalue\001auth=Bearer t\001\001") },
        { P("user=a\x02nn\001auth=Bearer t\001\001") },      /* control in user */
        { P("\001") },
    };
    struct sasl s = { 0 };
    size_t      i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK_EQ_INT(start_ir(&s, SASL_MECH_XOAUTH2, bad[i].p, bad[i].n), SASL_BAD_SYNTAX);
        CHECK(s.creds.secret == NULL);
        sasl_reset(&s);
    }
}

/* ---- OAUTHBEARER ---- */

static void
oauthbearer_ignores_host_and_port(void)
{
    struct sasl s = { 0 };

    CHECK_EQ_INT(start_ir(&s, SASL_MECH_OAUTHBEARER,
                          P("n,a=user@example.com,\001host=server.example.com\001port=143\001"
                            "auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\001\001")),
                 SASL_DONE);
    CHECK(str_is(s.creds.authcid, "user@example.com"));
    CHECK(str_is(s.creds.secret, "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg=="));
    CHECK(s.creds.is_token);
    CHECK_EQ_INT(s.creds.mech, SASL_MECH_OAUTHBEARER);
    sasl_reset(&s);
}

static void
oauthbearer_without_authzid_has_an_empty_authcid(void)
{
    struct sasl s = { 0 };

    CHECK_EQ_INT(sasl_start(&s, SASL_MECH_OAUTHBEARER, NULL, 0), SASL_CHALLENGE);
    CHECK(str_is(s.challenge, ""));
    CHECK_EQ_INT(step_b64(&s, P("y,,\001auth=Bearer tok\001\001")), SASL_DONE);
    CHECK(str_is(s.creds.authcid, ""));
    CHECK(str_is(s.creds.secret, "tok"));
    sasl_reset(&s);
}

static void
oauthbearer_unescapes_the_authzid(void)
{
    struct sasl s = { 0 };

    CHECK_EQ_INT(start_ir(&s, SASL_MECH_OAUTHBEARER,
                          P("n,a=a=2Cb=3Dc=2cd=3d@example.org,\001auth=Bearer t\001\001")),
                 SASL_DONE);
    CHECK(str_is(s.creds.authcid, "a,b=c,d=@example.org"));
    sasl_reset(&s);
}

static void
oauthbearer_authzid_is_bounded_after_unescaping(void)
{
    static const char tail[] = ",\001auth=Bearer t\001\001";
    static char       p[3 * SASL_ID_MAX + 64];
    struct sasl       s = { 0 };
    size_t            i, n;

    n = (size_t)sprintf(p, "n,a=");
    for (i = 0; i < SASL_ID_MAX; i++)
        n += (size_t)sprintf(p + n, "=2C");
    memcpy(p + n, tail, sizeof(tail) - 1);
    CHECK_EQ_INT(start_ir(&s, SASL_MECH_OAUTHBEARER, p, n + sizeof(tail) - 1), SASL_DONE);
    CHECK_EQ_INT(s.creds.authcid ? strlen(s.creds.authcid) : 0, SASL_ID_MAX);
    sasl_reset(&s);
    n = (size_t)sprintf(p, "n,a=x");
    for (i = 0; i < SASL_ID_MAX; i++)
        n += (size_t)sprintf(p + n, "=2C");
    memcpy(p + n, tail, sizeof(tail) - 1);
    CHECK_EQ_INT(start_ir(&s, SASL_MECH_OAUTHBEARER, p, n + sizeof(tail) - 1), SASL_BAD_SYNTAX);
    sasl_reset(&s);
}

static void
oauthbearer_malformed_payloads_are_bad_syntax(void)
{
    static const struct {
        const char *p;
        size_t      n;
    } bad[] = {
        { P("p=tls-unique,,\001auth=Bearer t\001\001") }, /* channel binding */
        { P("x,,\001auth=Bearer t\001\001") },            /* unknown flag */
        { P("F,n,,\001auth=Bearer t\001\001") },          /* non-standard flag */
        { P("n,a=,\001auth=Bearer t\001\001") },          /* empty saslname */
        { P("n,a=ann=2,\001auth=Bearer t\001\001") },     /* cut escape */
        { P("n,a=ann=41,\001auth=Bearer t\001\001") },    /* undefined escape */
        { P("n,a=ann=,\001auth=Bearer t\001\001") },      /* bare '=' */
        { P("n,a=a\x01nn,\001auth=Bearer t\001\001") },   /* control character */
        { P("n,a=ann\001auth=Bearer t\001\001") },        /* header not closed */
        { P("n,b=ann,\001auth=Bearer t\001\001") },       /* unknown header field */
        { P("n,,auth=Bearer t\001\001") },                /* no kvsep after header */
        { P("n,,\001host=x\001\001") },                   /* no auth */
        { P("n,,\001host=a\x02\001auth=Bearer t\001\001") }, /* control in a value */
        { P("n,,\001auth=Bearer t\001") },                /* unterminated */
        { P("n,,\001\001") },
        { P("\001") },                                    /* the error-challenge answer */
        { P("n,") },
    };
    struct sasl s = { 0 };
    size_t      i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK_EQ_INT(start_ir(&s, SASL_MECH_OAUTHBEARER, bad[i].p, bad[i].n), SASL_BAD_SYNTAX);
        CHECK(s.creds.secret == NULL);
        sasl_reset(&s);
    }
}

static void
cut_token_payloads_are_never_accepted(void)
{
    static const struct {
        enum sasl_mech mech;
        const char    *p;
        size_t         n;
    } ok[] = {
        { SASL_MECH_OAUTHBEARER, P("n,a=ann,\001host=h\001port=1\001auth=Bearer t\001\001") },
        { SASL_MECH_XOAUTH2, P("user=ann\001auth=Bearer tok\001\001") },
    };
    struct sasl s = { 0 };
    size_t      i, cut, tlen;
    char        text[128];

    for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        for (cut = 0; cut < ok[i].n; cut++) {
            CHECK_EQ_INT(start_ir(&s, ok[i].mech, ok[i].p, cut), SASL_BAD_SYNTAX);
            sasl_reset(&s);
        }
        tlen = sasl_base64_encode((const unsigned char *)ok[i].p, ok[i].n, text);
        for (cut = 0; cut < tlen; cut++) {
            CHECK(sasl_start(&s, ok[i].mech, text, cut) != SASL_DONE);
            sasl_reset(&s);
        }
        CHECK_EQ_INT(sasl_start(&s, ok[i].mech, text, tlen), SASL_DONE);
        sasl_reset(&s);
    }
}

/* ---- the token error challenge ---- */

static void
check_error_challenge(enum sasl_mech mech, const char *scope, const char *json)
{
    char          out[512];
    unsigned char dec[512];
    size_t        n;
    long          d;

    n = sasl_token_error_challenge(mech, scope, out, sizeof(out));
    CHECK(n > 0 && n == strlen(out));
    d = sasl_base64_decode(out, n, dec);
    CHECK_MEM(dec, d < 0 ? 0 : (size_t)d, json);
}

static void
token_error_challenge_is_base64_json(void)
{
    check_error_challenge(SASL_MECH_OAUTHBEARER, "https://mail.example.org/",
                          "{\"status\":\"invalid_token\",\"schemes\":\"bearer\","
                          "\"scope\":\"https://mail.example.org/\"}");
    check_error_challenge(SASL_MECH_XOAUTH2, "https://mail.google.com/",
                          "{\"status\":\"400\",\"schemes\":\"Bearer\","
                          "\"scope\":\"https://mail.google.com/\"}");
    check_error_challenge(SASL_MECH_OAUTHBEARER, NULL,
                          "{\"status\":\"invalid_token\",\"schemes\":\"bearer\"}");
    check_error_challenge(SASL_MECH_XOAUTH2, NULL, "{\"status\":\"400\",\"schemes\":\"Bearer\"}");
}

static void
token_error_challenge_escapes_the_scope(void)
{
    check_error_challenge(SASL_MECH_OAUTHBEARER, "a\"b\\c\nd\x01",
                          "{\"status\":\"invalid_token\",\"schemes\":\"bearer\","
                          "\"scope\":\"a\\\"b\\\\c\\u000ad\\u0001\"}");
}

static void
token_error_challenge_returns_0_when_out_is_too_small(void)
{
    char   out[512];
    size_t n;

    n = sasl_token_error_challenge(SASL_MECH_OAUTHBEARER, "s", out, sizeof(out));
    CHECK(n > 0);
    CHECK_EQ_INT(sasl_token_error_challenge(SASL_MECH_OAUTHBEARER, "s", out, n + 1), n);
    CHECK_EQ_INT(sasl_token_error_challenge(SASL_MECH_OAUTHBEARER, "s", out, n), 0);
    CHECK(out[0] == '\0');
    CHECK_EQ_INT(sasl_token_error_challenge(SASL_MECH_XOAUTH2, NULL, out, 0), 0);
}

/* ---- reset ---- */

static void
reset_frees_everything_and_allows_a_new_exchange(void)
{
    struct sasl s;

    memset(&s, 0, sizeof(s));
    sasl_reset(&s); /* a zeroed struct */
    CHECK_EQ_INT(start_ir(&s, SASL_MECH_PLAIN, P("\0ann\0pw")), SASL_DONE);
    /* starting again over live credentials frees them (LeakSanitizer would complain) */
    CHECK_EQ_INT(start_ir(&s, SASL_MECH_XOAUTH2, P("user=bob\001auth=Bearer t\001\001")),
                 SASL_DONE);
    CHECK(str_is(s.creds.authcid, "bob"));
    sasl_reset(&s);
    CHECK_EQ_INT(s.mech, SASL_MECH_NONE);
    CHECK(s.creds.authcid == NULL && s.creds.secret == NULL && s.creds.secret_len == 0);
    sasl_reset(&s);
}

int
main(void)
{
    RUN(base64_round_trips_at_every_length_0_to_64);
    RUN(base64_matches_the_rfc4648_test_vectors);
    RUN(base64_decodes_every_alphabet_character);
    RUN(base64_accepts_exactly_the_alphabet_at_every_position);
    RUN(base64_rejects_anything_but_strict_padded_text);
    RUN(mechanism_names_match_case_insensitively);
    RUN(plain_initial_response_gives_credentials);
    RUN(plain_without_initial_response_sends_an_empty_challenge);
    RUN(plain_with_own_authzid_is_accepted);
    RUN(plain_with_foreign_authzid_is_denied);
    RUN(plain_malformed_payloads_are_bad_syntax);
    RUN(plain_accepts_utf8_names_and_any_password_octets);
    RUN(empty_initial_response_is_an_empty_payload);
    RUN(identities_are_bounded_by_sasl_id_max);
    RUN(secrets_are_bounded_by_sasl_secret_max);
    RUN(oversize_lines_are_bad_syntax_even_when_valid_base64);
    RUN(login_asks_for_user_name_then_password);
    RUN(login_initial_response_is_the_user_name);
    RUN(login_refuses_empty_or_nul_fields);
    RUN(star_cancels_at_every_step);
    RUN(bad_base64_is_reported_in_both_forms);
    RUN(xoauth2_initial_response_gives_a_token);
    RUN(xoauth2_challenge_form_and_lowercase_bearer_work);
    RUN(xoauth2_malformed_payloads_are_bad_syntax);
    RUN(oauthbearer_ignores_host_and_port);
    RUN(oauthbearer_without_authzid_has_an_empty_authcid);
    RUN(oauthbearer_unescapes_the_authzid);
    RUN(oauthbearer_authzid_is_bounded_after_unescaping);
    RUN(oauthbearer_malformed_payloads_are_bad_syntax);
    RUN(cut_token_payloads_are_never_accepted);
    RUN(token_error_challenge_is_base64_json);
    RUN(token_error_challenge_escapes_the_scope);
    RUN(token_error_challenge_returns_0_when_out_is_too_small);
    RUN(reset_frees_everything_and_allows_a_new_exchange);
    return check_summary();
}
