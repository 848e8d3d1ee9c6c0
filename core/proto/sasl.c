/* core/proto/sasl.c: SASL framing for AUTH; see sasl.h. Turns base64 lines into struct
 * sasl_creds for PLAIN, LOGIN, XOAUTH2 and OAUTHBEARER. Whether the credentials are good
 * is for on_auth to say. Every field is bounded before it is copied, and every buffer
 * that held a secret is wiped before it is released. */
#include "proto/sasl.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

/* RFC 4954 section 4: SASL responses up to 12288 octets; decoded, that is 9216 bytes. */
#define SASL_LINE_MAX    12288
#define SASL_PAYLOAD_MAX (SASL_LINE_MAX / 4 * 3)

#define SASL_CHALLENGE_USERNAME "VXNlcm5hbWU6" /* "Username:", what LOGIN clients expect */
#define SASL_CHALLENGE_PASSWORD "UGFzc3dvcmQ6" /* "Password:" */

/* Values of struct sasl.step */
enum {
    SASL_STEP_IDLE,       /* sasl_start not called, or after sasl_reset */
    SASL_STEP_PAYLOAD,    /* waiting for the whole PLAIN/XOAUTH2/OAUTHBEARER payload */
    SASL_STEP_LOGIN_USER, /* LOGIN: waiting for the user name */
    SASL_STEP_LOGIN_PASS, /* LOGIN: waiting for the password */
    SASL_STEP_END,        /* an outcome other than SASL_CHALLENGE was returned */
};

/* One key=value pair of RFC 7628 section 3.1 (also XOAUTH2); borrows from the payload. */
struct sasl_kv {
    const unsigned char *key;
    size_t               klen;
    const unsigned char *val;
    size_t               vlen;
};

static const struct {
    const char    *name;
    enum sasl_mech mech;
} sasl_mechs[] = {
    { "PLAIN", SASL_MECH_PLAIN },
    { "LOGIN", SASL_MECH_LOGIN },
    { "XOAUTH2", SASL_MECH_XOAUTH2 },
    { "OAUTHBEARER", SASL_MECH_OAUTHBEARER },
};

enum sasl_mech
sasl_mech_from_name(const char *name, size_t len)
{
    size_t i;

    for (i = 0; i < sizeof(sasl_mechs) / sizeof(sasl_mechs[0]); i++) {
        if (strlen(sasl_mechs[i].name) == len && strncasecmp(sasl_mechs[i].name, name, len) == 0)
            return sasl_mechs[i].mech;
    }
    return SASL_MECH_NONE;
}

const char *
sasl_mech_name(enum sasl_mech mech)
{
    size_t i;

    for (i = 0; i < sizeof(sasl_mechs) / sizeof(sasl_mechs[0]); i++) {
        if (sasl_mechs[i].mech == mech)
            return sasl_mechs[i].name;
    }
    return "none";
}

/* ---- base64 (RFC 4648 section 4) ---- */

static const char sasl_b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* All ones when a <= c <= b, else 0, without a branch or a table lookup: the decoded
 * bytes are passwords, so their value must not steer the cache or the branch predictor. */
static unsigned
sasl_b64_in(unsigned c, unsigned a, unsigned b)
{
    unsigned x = ((c - a) | (b - c)) >> 8; /* 0 in range; an underflow sets high bits */

    return ((x | (0u - x)) >> 31) - 1u;
}

/* The 6-bit value of ch, or 0x100 when ch is not in the alphabet ('=' included). */
static unsigned
sasl_b64_value(unsigned char ch)
{
    static const struct {
        unsigned char lo, hi, value; /* lo..hi encode value.. */
    } ranges[] = { { 'A', 'Z', 0 }, { 'a', 'z', 26 }, { '0', '9', 52 }, { '+', '+', 62 },
                   { '/', '/', 63 } };
    unsigned c = ch, v = 0, hit = 0, m;
    size_t   i;

    for (i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
        m = sasl_b64_in(c, ranges[i].lo, ranges[i].hi);
        v |= m & (c - ranges[i].lo + ranges[i].value);
        hit |= m;
    }
    return (v & 0x3f) | (~hit & 0x100);
}

long
sasl_base64_decode(const char *in, size_t len, unsigned char *out)
{
    const unsigned char *p = (const unsigned char *)in;
    size_t               i, pad = 0, o = 0;
    unsigned             bad = 0, v;

    if (len % 4 != 0)
        return -1;
    if (len > 0 && p[len - 1] == '=')
        pad = p[len - 2] == '=' ? 2 : 1;
    for (i = 0; i < len; i += 4) {
        size_t   last = i + 4 == len ? pad : 0; /* '=' in this quantum */
        unsigned a = sasl_b64_value(p[i]), b = sasl_b64_value(p[i + 1]);
        unsigned c = last == 2 ? 0 : sasl_b64_value(p[i + 2]);
        unsigned d = last >= 1 ? 0 : sasl_b64_value(p[i + 3]);

        bad |= (a | b | c | d) & 0x100;
        v = (a & 0x3f) << 18 | (b & 0x3f) << 12 | (c & 0x3f) << 6 | (d & 0x3f);
        out[o++] = (unsigned char)(v >> 16);
        if (last < 2)
            out[o++] = (unsigned char)(v >> 8);
        if (last < 1)
            out[o++] = (unsigned char)v;
        /* RFC 4648 section 3.5: pad bits must be zero, so each text has one encoding */
        bad |= last == 2 ? (b & 0x0f) : last == 1 ? (c & 0x03) : 0;
    }
    return bad ? -1 : (long)o;
}

size_t
sasl_base64_encode(const unsigned char *in, size_t len, char *out)
{
    size_t   i, o = 0;
    unsigned v;

    for (i = 0; i + 2 < len; i += 3) {
        v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
        out[o++] = sasl_b64_alphabet[v >> 18];
        out[o++] = sasl_b64_alphabet[(v >> 12) & 0x3f];
        out[o++] = sasl_b64_alphabet[(v >> 6) & 0x3f];
        out[o++] = sasl_b64_alphabet[v & 0x3f];
    }
    if (i < len) {
        v = (unsigned)in[i] << 16 | (i + 1 < len ? (unsigned)in[i + 1] << 8 : 0);
        out[o++] = sasl_b64_alphabet[v >> 18];
        out[o++] = sasl_b64_alphabet[(v >> 12) & 0x3f];
        out[o++] = i + 1 < len ? sasl_b64_alphabet[(v >> 6) & 0x3f] : '=';
        out[o++] = '=';
    }
    out[o] = '\0';
    return o;
}

/* ---- field checks ---- */

/* Length of the well-formed UTF-8 sequence at p (RFC 3629 section 4), 0 if there is none:
 * no overlong forms, no UTF-16 surrogates, nothing above U+10FFFF. */
static size_t
sasl_utf8_len(const unsigned char *p, size_t n)
{
    unsigned char c = p[0], lo = 0x80, hi = 0xbf;
    size_t        len, i;

    if (c < 0x80)
        return 1;
    if (c < 0xc2 || c > 0xf4)
        return 0;
    len = c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
    if (c == 0xe0)
        lo = 0xa0;
    else if (c == 0xed)
        hi = 0x9f;
    else if (c == 0xf0)
        lo = 0x90;
    else if (c == 0xf4)
        hi = 0x8f;
    if (n < len || p[1] < lo || p[1] > hi)
        return 0;
    for (i = 2; i < len; i++) {
        if (p[i] < 0x80 || p[i] > 0xbf)
            return 0;
    }
    return len;
}

/* RFC 4616 section 2: an identity is non-empty UTF-8 without NUL. We also refuse the C0
 * and C1 controls and DEL: the name reaches logs, policies and upstream AUTH lines. */
static bool
sasl_is_identity(const unsigned char *p, size_t n)
{
    size_t i = 0, k;

    if (n == 0 || n > SASL_ID_MAX)
        return false;
    while (i < n) {
        if (p[i] < 0x20 || p[i] == 0x7f)
            return false;
        k = sasl_utf8_len(p + i, n - i);
        if (k == 0 || (k == 2 && p[i] == 0xc2 && p[i + 1] < 0xa0))
            return false;
        i += k;
    }
    return true;
}

/* A password is any octets but NUL (RFC 4616 passwd = 1*SAFE); not checked for UTF-8,
 * since old clients send Latin-1 and the backend compares octets. */
static bool
sasl_is_secret(const unsigned char *p, size_t n)
{
    return n > 0 && n <= SASL_SECRET_MAX && memchr(p, 0, n) == NULL;
}

/* RFC 6750 section 2.1 b64token, loosened to any VCHAR: opaque tokens vary by issuer. */
static bool
sasl_is_token(const unsigned char *p, size_t n)
{
    size_t i;

    if (n == 0 || n > SASL_SECRET_MAX)
        return false;
    for (i = 0; i < n; i++) {
        if (p[i] < 0x21 || p[i] > 0x7e)
            return false;
    }
    return true;
}

/* RFC 7628 section 3.1: value = *(VCHAR / SP / HTAB / CR / LF) */
static bool
sasl_is_kv_value(const unsigned char *p, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if ((p[i] < 0x21 || p[i] > 0x7e) && p[i] != ' ' && p[i] != '\t' && p[i] != '\r' &&
            p[i] != '\n')
            return false;
    }
    return true;
}

/* ---- credentials ---- */

static int
sasl_copy(char **dst, const unsigned char *p, size_t n)
{
    char *c = malloc(n + 1);

    if (c == NULL)
        return -1;
    if (n > 0)
        memcpy(c, p, n);
    c[n] = '\0';
    *dst = c;
    return 0;
}

static void
sasl_wipe_secret(struct sasl *s)
{
    if (s->creds.secret != NULL) {
        OPENSSL_cleanse(s->creds.secret, s->creds.secret_len);
        free(s->creds.secret);
    }
    s->creds.secret = NULL;
    s->creds.secret_len = 0;
}

/* sasl.h has no outcome for "out of memory"; a failed copy ends the exchange with
 * SASL_BAD_SYNTAX, which at least never authenticates anyone. */
static enum sasl_rc
sasl_set_authcid(struct sasl *s, const unsigned char *p, size_t n)
{
    assert(s->creds.authcid == NULL);
    return sasl_copy(&s->creds.authcid, p, n) == 0 ? SASL_DONE : SASL_BAD_SYNTAX;
}

static enum sasl_rc
sasl_set_secret(struct sasl *s, const unsigned char *p, size_t n)
{
    assert(s->creds.secret == NULL);
    if (sasl_copy(&s->creds.secret, p, n) != 0)
        return SASL_BAD_SYNTAX;
    s->creds.secret_len = n;
    return SASL_DONE;
}

static enum sasl_rc
sasl_set_creds(struct sasl *s, const unsigned char *id, size_t idlen,
               const unsigned char *secret, size_t secret_len)
{
    if (sasl_set_authcid(s, id, idlen) != SASL_DONE)
        return SASL_BAD_SYNTAX;
    return sasl_set_secret(s, secret, secret_len);
}

/* ---- PLAIN and LOGIN ---- */

/* RFC 4616 section 2: message = [authzid] NUL authcid NUL passwd */
static enum sasl_rc
sasl_plain(struct sasl *s, const unsigned char *p, size_t n)
{
    const unsigned char *end = p + n, *cid, *pw;
    size_t               zlen, clen;
    enum sasl_rc         rc;

    cid = memchr(p, 0, n);
    if (cid == NULL)
        return SASL_BAD_SYNTAX;
    zlen = (size_t)(cid - p);
    cid++;
    pw = memchr(cid, 0, (size_t)(end - cid));
    if (pw == NULL)
        return SASL_BAD_SYNTAX;
    clen = (size_t)(pw - cid);
    pw++;
    if ((zlen > 0 && !sasl_is_identity(p, zlen)) || !sasl_is_identity(cid, clen) ||
        !sasl_is_secret(pw, (size_t)(end - pw)))
        return SASL_BAD_SYNTAX;
    rc = sasl_set_creds(s, cid, clen, pw, (size_t)(end - pw));
    if (rc != SASL_DONE)
        return rc;
    /* RFC 4616 section 2 leaves authorization identities to the server; sluice never
     * lets one user act as another, so only an authzid equal to the authcid passes. */
    if (zlen > 0 && (zlen != clen || memcmp(p, cid, clen) != 0))
        return SASL_AUTHZ_DENIED;
    return SASL_DONE;
}

/* LOGIN (draft-murchison-sasl-login): user name, then password, one line each. */
static enum sasl_rc
sasl_login_user(struct sasl *s, const unsigned char *p, size_t n)
{
    if (!sasl_is_identity(p, n) || sasl_set_authcid(s, p, n) != SASL_DONE)
        return SASL_BAD_SYNTAX;
    strcpy(s->challenge, SASL_CHALLENGE_PASSWORD);
    s->step = SASL_STEP_LOGIN_PASS;
    return SASL_CHALLENGE;
}

static enum sasl_rc
sasl_login_pass(struct sasl *s, const unsigned char *p, size_t n)
{
    if (!sasl_is_secret(p, n))
        return SASL_BAD_SYNTAX;
    return sasl_set_secret(s, p, n);
}

/* ---- XOAUTH2 and OAUTHBEARER ---- */

static bool
sasl_kv_is(const struct sasl_kv *kv, const char *key)
{
    return kv->klen == strlen(key) && strncasecmp((const char *)kv->key, key, kv->klen) == 0;
}

/* RFC 7628 section 3.1: kvpair = key "=" value kvsep, key = 1*ALPHA, and one more kvsep
 * (^A) ends the list and the payload. Returns 1 with *kv filled, 0 at the end, -1 on
 * bad syntax. XOAUTH2 uses the same framing. */
static int
sasl_kv_next(const unsigned char **pp, const unsigned char *end, struct sasl_kv *kv)
{
    const unsigned char *p = *pp, *sep, *q;

    if (p == end)
        return -1;
    if (*p == 0x01)
        return p + 1 == end ? 0 : -1;
    sep = memchr(p, 0x01, (size_t)(end - p));
    if (sep == NULL)
        return -1;
    for (q = p; q < sep && *q != '='; q++) {
        if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z')))
            return -1;
    }
    if (q == p || q == sep)
        return -1;
    kv->key = p;
    kv->klen = (size_t)(q - p);
    kv->val = q + 1;
    kv->vlen = (size_t)(sep - q - 1);
    *pp = sep + 1;
    return 1;
}

/* Collects auth= (and user= when user is not NULL) from a kvpair list; other keys, such
 * as RFC 7628's host= and port=, are checked for syntax and ignored. */
static enum sasl_rc
sasl_kv_list(const unsigned char *p, const unsigned char *end, struct sasl_kv *user,
             struct sasl_kv *auth)
{
    struct sasl_kv kv, *want;
    int            r;

    memset(auth, 0, sizeof *auth);
    if (user != NULL)
        memset(user, 0, sizeof *user);
    while ((r = sasl_kv_next(&p, end, &kv)) == 1) {
        want = sasl_kv_is(&kv, "auth") ? auth : user && sasl_kv_is(&kv, "user") ? user : NULL;
        if (want == NULL) {
            if (!sasl_is_kv_value(kv.val, kv.vlen))
                return SASL_BAD_SYNTAX;
            continue;
        }
        if (want->key != NULL)
            return SASL_BAD_SYNTAX; /* the same key twice */
        *want = kv;
    }
    if (r < 0 || auth->key == NULL || (user != NULL && user->key == NULL))
        return SASL_BAD_SYNTAX;
    return SASL_DONE;
}

/* auth= value: RFC 6750 section 2.1 "Bearer" 1*SP b64token. Auth schemes are
 * case-insensitive (RFC 7235 section 2.1) and some XOAUTH2 clients send "bearer". */
static bool
sasl_bearer(const struct sasl_kv *auth, const unsigned char **tok, size_t *toklen)
{
    const unsigned char *p = auth->val, *end = auth->val + auth->vlen;

    if (auth->vlen < 7 || strncasecmp((const char *)p, "Bearer ", 7) != 0)
        return false;
    for (p += 7; p < end && *p == ' '; p++)
        ;
    *tok = p;
    *toklen = (size_t)(end - p);
    return sasl_is_token(p, *toklen);
}

/* Google's XOAUTH2: "user=" user ^A "auth=Bearer " token ^A ^A */
static enum sasl_rc
sasl_xoauth2(struct sasl *s, const unsigned char *p, size_t n)
{
    struct sasl_kv       user, auth;
    const unsigned char *tok;
    size_t               toklen;

    if (sasl_kv_list(p, p + n, &user, &auth) != SASL_DONE ||
        !sasl_is_identity(user.val, user.vlen) || !sasl_bearer(&auth, &tok, &toklen))
        return SASL_BAD_SYNTAX;
    return sasl_set_creds(s, user.val, user.vlen, tok, toklen);
}

/* RFC 5801 section 4 saslname: "=2C" is ',' and "=3D" is '='; any other '=' is an error.
 * Decodes up to the next ',' into out (SASL_ID_MAX bytes). */
static int
sasl_saslname(const unsigned char **pp, const unsigned char *end, unsigned char *out,
              size_t *outlen)
{
    const unsigned char *p = *pp;
    size_t               o = 0;
    unsigned char        c;

    while (p < end && *p != ',') {
        c = *p++;
        if (c == '=') {
            if (end - p < 2)
                return -1;
            if (p[0] == '2' && (p[1] == 'C' || p[1] == 'c'))
                c = ',';
            else if (p[0] == '3' && (p[1] == 'D' || p[1] == 'd'))
                c = '=';
            else
                return -1;
            p += 2;
        }
        if (o == SASL_ID_MAX)
            return -1;
        out[o++] = c;
    }
    if (!sasl_is_identity(out, o))
        return -1;
    *outlen = o;
    *pp = p;
    return 0;
}

/* RFC 7628 section 3.1 (gs2-header of RFC 5801 section 4):
 * gs2-cb-flag "," ["a=" saslname] "," -- the flag "p=" asks for channel binding, which
 * OAUTHBEARER over SMTP cannot have, so only "n" and "y" pass. */
static int
sasl_gs2_header(const unsigned char **pp, const unsigned char *end, unsigned char *id,
                size_t *idlen)
{
    const unsigned char *p = *pp;

    *idlen = 0;
    if (end - p < 3 || (p[0] != 'n' && p[0] != 'y') || p[1] != ',')
        return -1;
    p += 2;
    if (end - p >= 2 && p[0] == 'a' && p[1] == '=') {
        p += 2;
        if (sasl_saslname(&p, end, id, idlen) != 0)
            return -1;
    }
    if (p == end || *p != ',')
        return -1;
    *pp = p + 1;
    return 0;
}

/* RFC 7628 section 3.1: client-resp = gs2-header kvsep *kvpair kvsep. Without a= the
 * authcid is "": the token alone names the user. */
static enum sasl_rc
sasl_oauthbearer(struct sasl *s, const unsigned char *p, size_t n)
{
    const unsigned char *end = p + n, *tok;
    unsigned char        id[SASL_ID_MAX];
    size_t               idlen, toklen;
    struct sasl_kv       auth;

    if (sasl_gs2_header(&p, end, id, &idlen) != 0 || p == end || *p++ != 0x01)
        return SASL_BAD_SYNTAX;
    if (sasl_kv_list(p, end, NULL, &auth) != SASL_DONE || !sasl_bearer(&auth, &tok, &toklen))
        return SASL_BAD_SYNTAX;
    return sasl_set_creds(s, id, idlen, tok, toklen);
}

/* ---- the exchange ---- */

static enum sasl_rc
sasl_feed(struct sasl *s, const unsigned char *p, size_t n)
{
    if (s->step == SASL_STEP_LOGIN_USER)
        return sasl_login_user(s, p, n);
    if (s->step == SASL_STEP_LOGIN_PASS)
        return sasl_login_pass(s, p, n);
    assert(s->step == SASL_STEP_PAYLOAD);
    switch (s->mech) {
    case SASL_MECH_PLAIN:
        return sasl_plain(s, p, n);
    case SASL_MECH_XOAUTH2:
        return sasl_xoauth2(s, p, n);
    case SASL_MECH_OAUTHBEARER:
        return sasl_oauthbearer(s, p, n);
    default:
        assert(!"sasl_feed: no payload step for this mechanism");
        return SASL_BAD_SYNTAX;
    }
}

/* Decodes one client line into a stack buffer, wiped afterwards, and feeds it on.
 * Any outcome but SASL_CHALLENGE ends the exchange; only SASL_DONE keeps the secret. */
static enum sasl_rc
sasl_input(struct sasl *s, const char *line, size_t len, bool initial)
{
    unsigned char buf[SASL_PAYLOAD_MAX];
    long          n;
    enum sasl_rc  rc;

    if (initial && len == 1 && line[0] == '=')
        len = 0; /* RFC 4954 section 4: "=" is an empty initial response */
    if (len == 1 && line[0] == '*') {
        rc = SASL_CANCELLED; /* RFC 4954 section 4 */
    } else if (len > SASL_LINE_MAX) {
        rc = SASL_BAD_SYNTAX;
    } else {
        n = sasl_base64_decode(line, len, buf);
        rc = n < 0 ? SASL_BAD_BASE64 : sasl_feed(s, buf, (size_t)n);
        OPENSSL_cleanse(buf, len / 4 * 3); /* what decode may have written */
    }
    if (rc != SASL_CHALLENGE) {
        s->step = SASL_STEP_END;
        s->challenge[0] = '\0';
        if (rc != SASL_DONE)
            sasl_wipe_secret(s);
    }
    return rc;
}

enum sasl_rc
sasl_start(struct sasl *s, enum sasl_mech mech, const char *ir, size_t ir_len)
{
    assert(mech > SASL_MECH_NONE && mech <= SASL_MECH_OAUTHBEARER);
    sasl_reset(s);
    s->mech = mech;
    s->creds.mech = mech;
    s->creds.is_token = mech == SASL_MECH_XOAUTH2 || mech == SASL_MECH_OAUTHBEARER;
    s->step = mech == SASL_MECH_LOGIN ? SASL_STEP_LOGIN_USER : SASL_STEP_PAYLOAD;
    if (ir != NULL)
        return sasl_input(s, ir, ir_len, true);
    /* RFC 4954 section 4: no initial response, so an empty challenge asks for it;
     * LOGIN clients instead wait to be asked for the user name. */
    strcpy(s->challenge, mech == SASL_MECH_LOGIN ? SASL_CHALLENGE_USERNAME : "");
    return SASL_CHALLENGE;
}

enum sasl_rc
sasl_step(struct sasl *s, const char *line, size_t len)
{
    assert(s->step == SASL_STEP_PAYLOAD || s->step == SASL_STEP_LOGIN_USER ||
           s->step == SASL_STEP_LOGIN_PASS);
    return sasl_input(s, line, len, false);
}

void
sasl_reset(struct sasl *s)
{
    sasl_wipe_secret(s);
    free(s->creds.authcid);
    memset(s, 0, sizeof *s);
}

/* ---- the token error challenge ---- */

/* Streams bytes into base64 text, so the JSON needs no buffer of its own. */
struct sasl_b64w {
    char         *out; /* borrows: the caller's buffer */
    size_t        cap;
    size_t        len;
    unsigned char grp[3];
    size_t        n;
    bool          overflow;
};

static void
sasl_b64w_flush(struct sasl_b64w *w)
{
    if (w->n == 0)
        return;
    if (w->cap < 5 || w->len > w->cap - 5) /* 4 characters and the NUL */
        w->overflow = true;
    else
        w->len += sasl_base64_encode(w->grp, w->n, w->out + w->len);
    w->n = 0;
}

static void
sasl_b64w_byte(struct sasl_b64w *w, unsigned char c)
{
    w->grp[w->n++] = c;
    if (w->n == 3)
        sasl_b64w_flush(w);
}

static void
sasl_b64w_str(struct sasl_b64w *w, const char *str)
{
    while (*str != '\0')
        sasl_b64w_byte(w, (unsigned char)*str++);
}

/* RFC 8259 section 7: escape '"', '\' and the controls; other octets pass as they are. */
static void
sasl_b64w_json(struct sasl_b64w *w, const char *str)
{
    static const char    hex[] = "0123456789abcdef";
    const unsigned char *p;

    for (p = (const unsigned char *)str; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\') {
            sasl_b64w_byte(w, '\\');
            sasl_b64w_byte(w, *p);
        } else if (*p < 0x20) {
            sasl_b64w_str(w, "\\u00");
            sasl_b64w_byte(w, (unsigned char)hex[*p >> 4]);
            sasl_b64w_byte(w, (unsigned char)hex[*p & 0x0f]);
        } else {
            sasl_b64w_byte(w, *p);
        }
    }
}

size_t
sasl_token_error_challenge(enum sasl_mech mech, const char *scope, char *out, size_t outlen)
{
    struct sasl_b64w w = { .out = out, .cap = outlen };

    assert(mech == SASL_MECH_XOAUTH2 || mech == SASL_MECH_OAUTHBEARER);
    /* RFC 7628 section 3.2.2; XOAUTH2 (Google) sends the HTTP status instead */
    if (mech == SASL_MECH_OAUTHBEARER)
        sasl_b64w_str(&w, "{\"status\":\"invalid_token\",\"schemes\":\"bearer\"");
    else
        sasl_b64w_str(&w, "{\"status\":\"400\",\"schemes\":\"Bearer\"");
    if (scope != NULL) {
        sasl_b64w_str(&w, ",\"scope\":\"");
        sasl_b64w_json(&w, scope);
        sasl_b64w_byte(&w, '"');
    }
    sasl_b64w_byte(&w, '}');
    sasl_b64w_flush(&w);
    if (w.overflow) {
        if (outlen > 0)
            out[0] = '\0';
        return 0;
    }
    return w.len;
}
