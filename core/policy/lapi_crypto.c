/* core/policy/lapi_crypto.c: sluice.crypto (docs/lua-api.md): base64url, SHA-256, random octets
 * and JWK public keys with key:verify(alg, input, signature), over jose.c. What a token
 * means (claims, issuers, key selection) is lua/sluice/jwt.lua's. Nothing here yields;
 * a verification costs tens of microseconds on the loop. Misuse (wrong argument types)
 * raises; input that is bad (not base64url, a key OpenSSL refuses, an alg that does not
 * fit) returns nil and the reason. */
#include <lauxlib.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

#include "proto/jose.h"
#include "policy/lapi.h"

#define LAPI_KEY_MT     "sluice.crypto.key"
#define LAPI_RANDOM_MAX 1024
#define LAPI_B64_MAX    (64u * 1024) /* octets of text b64url_decode takes */

/* bytes = crypto.b64url_decode(text): nil for text that is not canonical base64url. */
static int
lapi_b64url_decode(lua_State *L)
{
    size_t         len;
    const char    *s = luaL_checklstring(L, 1, &len);
    long           want = jose_b64url_decoded_len(len), n = -1;
    unsigned char *out;

    if (len > LAPI_B64_MAX) {
        lua_pushnil(L);
        lua_pushstring(L, "too long");
        return 2;
    }
    out = malloc(want > 0 ? (size_t)want : 1); /* exactly what the text decodes to */
    if (out == NULL)
        return luaL_error(L, "sluice.crypto.b64url_decode: out of memory");
    if (want >= 0)
        n = jose_b64url_decode(s, len, out, (size_t)want);
    if (n < 0) {
        free(out);
        lua_pushnil(L);
        lua_pushstring(L, "not base64url");
        return 2;
    }
    lua_pushlstring(L, (const char *)out, (size_t)n);
    free(out);
    return 1;
}

/* text = crypto.b64url_encode(bytes) */
static int
lapi_b64url_encode(lua_State *L)
{
    size_t      len;
    const char *s = luaL_checklstring(L, 1, &len);
    char       *out;

    luaL_argcheck(L, len <= LAPI_B64_MAX, 1, "expected at most 65536 octets");
    out = malloc((len + 2) / 3 * 4 + 1);
    if (out == NULL)
        return luaL_error(L, "sluice.crypto.b64url_encode: out of memory");
    len = jose_b64url_encode((const unsigned char *)s, len, out);
    lua_pushlstring(L, out, len);
    free(out);
    return 1;
}

/* digest = crypto.sha256(bytes[, 'hex']) */
static int
lapi_sha256(lua_State *L)
{
    static const char hex[] = "0123456789abcdef";
    size_t            len;
    const char       *s = luaL_checklstring(L, 1, &len);
    const char       *form = luaL_optstring(L, 2, "raw");
    unsigned char     md[32];
    char              text[65];
    unsigned int      mdlen = sizeof(md);
    int               i;

    luaL_argcheck(L, strcmp(form, "raw") == 0 || strcmp(form, "hex") == 0, 2,
                  "expected 'raw' or 'hex'");
    if (EVP_Digest(s, len, md, &mdlen, EVP_sha256(), NULL) != 1)
        return luaL_error(L, "sluice.crypto.sha256: digest failed");
    if (form[0] == 'r') {
        lua_pushlstring(L, (const char *)md, sizeof(md));
        return 1;
    }
    for (i = 0; i < 32; i++) {
        text[2 * i] = hex[md[i] >> 4];
        text[2 * i + 1] = hex[md[i] & 15];
    }
    lua_pushlstring(L, text, 64);
    return 1;
}

/* bytes = crypto.random(n): n octets from OpenSSL's CSPRNG, 1 <= n <= 1024. */
static int
lapi_random(lua_State *L)
{
    lua_Integer   n = luaL_checkinteger(L, 1);
    unsigned char buf[LAPI_RANDOM_MAX];

    luaL_argcheck(L, n >= 1 && n <= LAPI_RANDOM_MAX, 1, "expected 1..1024");
    if (RAND_bytes(buf, (int)n) != 1) {
        lua_pushnil(L);
        lua_pushstring(L, "no randomness available");
        return 2;
    }
    lua_pushlstring(L, (const char *)buf, (size_t)n);
    return 1;
}

/* A string member of the table at index 1 into *out (NULL when absent); raises on
 * another type. -1 for a string with a NUL in it (JSON's \u0000): jose.c reads members as
 * C strings, and "x\0junk" must not pass for "x". */
static int
lapi_jwk_member(lua_State *L, const char *name, const char **out)
{
    size_t len;

    *out = NULL;
    lua_getfield(L, 1, name);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return 0;
    }
    if (lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "sluice.crypto.jwk: member '%s' must be a string", name);
    *out = lua_tolstring(L, -1, &len);
    lua_pop(L, 1); /* the table still holds the string */
    return strlen(*out) == len ? 0 : -1;
}

/* key, err = crypto.jwk(table) */
static int
lapi_jwk(lua_State *L)
{
    static const char *const names[] = {"kty", "crv", "n", "e", "x", "y", "alg"};
    struct jose_jwk          jwk;
    const char             **members[] = {&jwk.kty, &jwk.crv, &jwk.n, &jwk.e,
                                          &jwk.x,   &jwk.y,   &jwk.alg};
    EVP_PKEY               **ud;
    char                     err[160];

    luaL_checktype(L, 1, LUA_TTABLE);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (lapi_jwk_member(L, names[i], members[i]) < 0) {
            lua_pushnil(L);
            lua_pushfstring(L, "member '%s' has a NUL in it", names[i]);
            return 2;
        }
    ud = lua_newuserdata(L, sizeof(*ud)); /* before the key: a raise here leaks nothing */
    *ud = NULL;
    luaL_getmetatable(L, LAPI_KEY_MT);
    lua_setmetatable(L, -2);
    *ud = jose_key_from_jwk(&jwk, err, sizeof(err));
    if (*ud == NULL) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    return 1;
}

static EVP_PKEY *
lapi_check_key(lua_State *L)
{
    EVP_PKEY **ud = luaL_checkudata(L, 1, LAPI_KEY_MT);

    if (*ud == NULL)
        luaL_argerror(L, 1, "not a key");
    return *ud;
}

/* ok, err = key:verify(alg, signing_input, signature): true, false for a signature that
 * does not verify, nil and why for an alg that is unknown or does not fit the key. */
static int
lapi_key_verify(lua_State *L)
{
    EVP_PKEY   *key = lapi_check_key(L);
    size_t      alen, ilen, slen;
    const char *alg = luaL_checklstring(L, 2, &alen);
    const char *input = luaL_checklstring(L, 3, &ilen);
    const char *sig = luaL_checklstring(L, 4, &slen);

    switch (jose_verify(key, jose_alg_from_name(alg, alen), input, ilen,
                        (const unsigned char *)sig, slen)) {
    case JOSE_VERIFY_OK:
        lua_pushboolean(L, 1);
        return 1;
    case JOSE_VERIFY_BAD:
        lua_pushboolean(L, 0);
        return 1;
    default:
        lua_pushnil(L);
        lua_pushstring(L, "algorithm does not fit the key");
        return 2;
    }
}

/* alg = key:alg(): 'RS256', 'ES256' or 'EdDSA', the one the key verifies. */
static int
lapi_key_alg(lua_State *L)
{
    lua_pushstring(L, jose_alg_name(jose_key_alg(lapi_check_key(L))));
    return 1;
}

/* bits = key:bits() */
static int
lapi_key_bits(lua_State *L)
{
    lua_pushinteger(L, EVP_PKEY_get_bits(lapi_check_key(L)));
    return 1;
}

static int
lapi_key_gc(lua_State *L)
{
    EVP_PKEY **ud = luaL_checkudata(L, 1, LAPI_KEY_MT);

    EVP_PKEY_free(*ud);
    *ud = NULL;
    return 0;
}

static int
lapi_key_tostring(lua_State *L)
{
    EVP_PKEY *key = lapi_check_key(L);

    lua_pushfstring(L, "sluice.crypto key (%s, %d bits)", jose_alg_name(jose_key_alg(key)),
                    EVP_PKEY_get_bits(key));
    return 1;
}

void
lapi_crypto_open(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"verify", lapi_key_verify}, {"alg", lapi_key_alg}, {"bits", lapi_key_bits}, {NULL, NULL},
    };
    static const luaL_Reg funcs[] = {
        {"b64url_decode", lapi_b64url_decode}, {"b64url_encode", lapi_b64url_encode},
        {"sha256", lapi_sha256}, {"random", lapi_random}, {"jwk", lapi_jwk}, {NULL, NULL},
    };

    if (luaL_newmetatable(L, LAPI_KEY_MT)) {
        lua_pushcfunction(L, lapi_key_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, lapi_key_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_newtable(L);
        for (const luaL_Reg *r = methods; r->name != NULL; r++) {
            lua_pushcfunction(L, r->func);
            lua_setfield(L, -2, r->name);
        }
        lua_setfield(L, -2, "__index");
        lua_pushliteral(L, "sluice.crypto.key");
        lua_setfield(L, -2, "__metatable");
    }
    lua_pop(L, 1);
    lua_newtable(L);
    for (const luaL_Reg *r = funcs; r->name != NULL; r++) {
        lua_pushcfunction(L, r->func);
        lua_setfield(L, -2, r->name);
    }
    lua_setfield(L, -2, "crypto");
}
