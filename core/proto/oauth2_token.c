/* core/proto/oauth2_token.c: the token endpoint's JSON answer; see oauth2_token.h.
 * A small recursive-descent reader of RFC 8259 JSON, just enough to pick the top-level
 * members out: strings (escapes decoded; \u beyond ASCII becomes '?', which no b64token
 * holds), integers, and the rest skipped with a depth bound. */
#include "proto/oauth2_token.h"

#include <stdint.h>
#include <string.h>
#include <strings.h>

struct jscan {
    const char *p;
    const char *end;
};

static void
jscan_ws(struct jscan *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static bool
jscan_eat(struct jscan *j, char c)
{
    jscan_ws(j);
    if (j->p < j->end && *j->p == c) {
        j->p++;
        return true;
    }
    return false;
}

static int
jscan_hex4(const char *p)
{
    int v = 0;

    for (int i = 0; i < 4; i++) {
        char c = p[i];

        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= c - '0';
        else if (c >= 'a' && c <= 'f')
            v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v |= c - 'A' + 10;
        else
            return -1;
    }
    return v;
}

/* A string at j->p (after whitespace). Into out (cap octets with the NUL) when out is not
 * NULL; *truncated when it did not fit. -1 when it is not a valid string. */
static int
jscan_string(struct jscan *j, char *out, size_t cap, size_t *len, bool *truncated)
{
    size_t n = 0;

    *truncated = false;
    if (!jscan_eat(j, '"'))
        return -1;
    while (j->p < j->end && *j->p != '"') {
        unsigned char c = (unsigned char)*j->p++;

        if (c < 0x20)
            return -1; /* RFC 8259 section 7: control characters must be escaped */
        if (c == '\\') {
            if (j->p >= j->end)
                return -1;
            c = (unsigned char)*j->p++;
            switch (c) {
            case '"': case '\\': case '/': break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'n': c = '\n'; break;
            case 'r': c = '\r'; break;
            case 't': c = '\t'; break;
            case 'u': {
                int v = j->end - j->p >= 4 ? jscan_hex4(j->p) : -1;

                if (v < 0)
                    return -1;
                j->p += 4;
                c = v < 0x80 ? (unsigned char)v : '?';
                break;
            }
            default: return -1;
            }
        }
        if (out != NULL) {
            if (n + 1 < cap)
                out[n++] = (char)c;
            else
                *truncated = true;
        }
    }
    if (j->p >= j->end)
        return -1;
    j->p++; /* the closing quote */
    if (out != NULL)
        out[n] = '\0';
    if (len != NULL)
        *len = n;
    return 0;
}

/* An integer 0..2^31 (a JSON number without fraction or exponent); -2 for another
 * number, -1 when it is no number. */
static long
jscan_uint(struct jscan *j)
{
    long v = 0;
    bool any = false;

    jscan_ws(j);
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
        if (v > INT32_MAX / 10)
            return -2;
        v = v * 10 + (*j->p++ - '0');
        any = true;
    }
    if (j->p < j->end && (*j->p == '.' || *j->p == 'e' || *j->p == 'E' || *j->p == '-'))
        return -2;
    return any ? v : -1;
}

static int jscan_skip(struct jscan *j, int depth);

static int
jscan_skip_container(struct jscan *j, int depth, char close, bool object)
{
    bool trunc;

    if (depth >= OAUTH2_TOKEN_DEPTH_MAX)
        return -1;
    if (jscan_eat(j, close))
        return 0;
    for (;;) { /* each pass consumes input or fails */
        if (object && (jscan_string(j, NULL, 0, NULL, &trunc) != 0 || !jscan_eat(j, ':')))
            return -1;
        if (jscan_skip(j, depth + 1) != 0)
            return -1;
        if (jscan_eat(j, close))
            return 0;
        if (!jscan_eat(j, ','))
            return -1;
    }
}

/* Skip one value of any kind. */
static int
jscan_skip(struct jscan *j, int depth)
{
    static const char *const words[] = {"true", "false", "null"};
    bool                     trunc;

    jscan_ws(j);
    if (j->p >= j->end)
        return -1;
    if (*j->p == '"')
        return jscan_string(j, NULL, 0, NULL, &trunc);
    if (*j->p == '{' || *j->p == '[') {
        bool object = *j->p == '{';

        j->p++;
        return jscan_skip_container(j, depth, object ? '}' : ']', object);
    }
    for (size_t i = 0; i < 3; i++) {
        size_t n = strlen(words[i]);

        if ((size_t)(j->end - j->p) >= n && memcmp(j->p, words[i], n) == 0) {
            j->p += n;
            return 0;
        }
    }
    if (*j->p == '-')
        j->p++;
    if (j->p >= j->end || *j->p < '0' || *j->p > '9')
        return -1;
    while (j->p < j->end && strchr("0123456789.eE+-", *j->p) != NULL && *j->p != '\0')
        j->p++;
    return 0;
}

bool
oauth2_token_is_b64token(const char *s, size_t len)
{
    size_t i = 0;

    if (len == 0 || len > OAUTH2_TOKEN_MAX)
        return false;
    while (i < len && (((s[i] | 0x20) >= 'a' && (s[i] | 0x20) <= 'z') ||
                       (s[i] >= '0' && s[i] <= '9') || strchr("-._~+/", s[i]) != NULL) &&
           s[i] != '\0')
        i++;
    if (i == 0)
        return false;
    while (i < len && s[i] == '=')
        i++;
    return i == len;
}

/* expires_in: a number, or (some endpoints, Azure AD v1 among them) a string of digits. */
static int
jscan_expires_in(struct jscan *j, long *out)
{
    char   buf[16];
    size_t n;
    bool   trunc;

    jscan_ws(j);
    if (j->p < j->end && *j->p == '"') {
        struct jscan sub;

        if (jscan_string(j, buf, sizeof(buf), &n, &trunc) != 0 || trunc)
            return -1;
        sub.p = buf;
        sub.end = buf + n;
        *out = jscan_uint(&sub);
        return *out >= 0 && sub.p == sub.end ? 0 : -1;
    }
    *out = jscan_uint(j);
    return *out >= 0 ? 0 : -1;
}

static enum oauth2_token_rc
oauth2_token_read(const char *body, size_t len, struct oauth2_token_answer *out)
{
    struct jscan j = {body, body + len};
    char         key[32], type[32] = "";
    size_t       n, token_len = 0;
    bool         trunc, has_token = false, bad = false;

    out->access_token[0] = '\0';
    out->error[0] = '\0';
    out->expires_in = -1;
    if (!jscan_eat(&j, '{'))
        return OAUTH2_TOKEN_BAD;
    if (!jscan_eat(&j, '}')) {
        for (;;) { /* each pass consumes one member or fails */
            if (jscan_string(&j, key, sizeof(key), &n, &trunc) != 0 || !jscan_eat(&j, ':'))
                return OAUTH2_TOKEN_BAD;
            if (trunc || n != strlen(key)) {
                if (jscan_skip(&j, 0) != 0)
                    return OAUTH2_TOKEN_BAD;
            } else if (strcmp(key, "access_token") == 0) {
                if (jscan_string(&j, out->access_token, sizeof(out->access_token), &token_len,
                                 &trunc) != 0)
                    return OAUTH2_TOKEN_BAD;
                has_token = true;
                bad |= trunc;
            } else if (strcmp(key, "token_type") == 0) {
                if (jscan_string(&j, type, sizeof(type), &n, &trunc) != 0)
                    return OAUTH2_TOKEN_BAD;
            } else if (strcmp(key, "expires_in") == 0) {
                if (jscan_expires_in(&j, &out->expires_in) != 0)
                    return OAUTH2_TOKEN_BAD;
            } else if (strcmp(key, "error") == 0) {
                if (jscan_string(&j, out->error, sizeof(out->error), &n, &trunc) != 0)
                    return OAUTH2_TOKEN_BAD;
            } else if (jscan_skip(&j, 0) != 0) {
                return OAUTH2_TOKEN_BAD;
            }
            if (jscan_eat(&j, '}'))
                break;
            if (!jscan_eat(&j, ','))
                return OAUTH2_TOKEN_BAD;
        }
    }
    jscan_ws(&j);
    if (j.p != j.end)
        return OAUTH2_TOKEN_BAD;
    if (out->error[0] != '\0' && !has_token)
        return OAUTH2_TOKEN_ERROR;
    /* RFC 6749 5.1: token_type is required; case-insensitive (7.1). */
    if (!has_token || bad || strcasecmp(type, "bearer") != 0 ||
        !oauth2_token_is_b64token(out->access_token, token_len))
        return OAUTH2_TOKEN_BAD;
    return OAUTH2_TOKEN_OK;
}

enum oauth2_token_rc
oauth2_token_parse(const char *body, size_t len, struct oauth2_token_answer *out)
{
    enum oauth2_token_rc rc = oauth2_token_read(body, len, out);

    if (rc != OAUTH2_TOKEN_OK) /* whatever was read of a token stays nowhere */
        explicit_bzero(out->access_token, sizeof(out->access_token));
    /* The error code may be logged, whatever the answer was: printable, without quotes,
     * also when the answer broke off after it (the fuzzer found one that did). */
    for (char *p = out->error; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f || *p == '"')
            *p = '?';
    return rc;
}
