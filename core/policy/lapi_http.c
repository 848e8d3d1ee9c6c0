/* core/policy/lapi_http.c: sluice.http.request (docs/lua-api.md), the hook's side of
 * http_client.c: it reads the request table, starts the request, registers the cancel
 * and yields; the completion resumes the hook with status, body and headers, or nil and
 * why. `oauth2_client_auth = DOMAIN` adds HTTP Basic client authentication (RFC 6749
 * 2.3.1, as RFC 7662 2.1 asks) with that domain's oauth2 client_id and client_secret,
 * so that the secret never reaches Lua. */
#include <ev.h>
#include <lauxlib.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "policy/hook_run.h"
#include "net/http_client.h"
#include "policy/lapi.h"

#define LAPI_HTTP_HEADERS_MAX 32
#define LAPI_HTTP_TIMEOUT     10.0 /* seconds, when the call gives none */
#define LAPI_HTTP_AUTH_MAX    4096

static void
lapi_http_cancel(struct hook_run *run)
{
    http_client_cancel(run->wait);
    run->wait = NULL;
    run->cancel = NULL;
}

static void
lapi_http_done(void *arg, const struct http_client_result *res)
{
    struct hook_run *run = arg;
    lua_State       *co = run->co;

    run->wait = NULL;
    run->cancel = NULL;
    if (res->status == 0) {
        lua_pushnil(co);
        lua_pushstring(co, res->error != NULL ? res->error : "request failed");
        hook_run_resume(run, 2);
        return;
    }
    lua_pushinteger(co, res->status);
    lua_pushlstring(co, res->body, res->body_len);
    lua_createtable(co, 0, (int)res->n_headers);
    for (size_t i = 0; i < res->n_headers; i++) { /* repeated fields joined (RFC 9110 5.3) */
        lua_getfield(co, -1, res->headers[i].name);
        if (lua_isstring(co, -1)) {
            lua_pushliteral(co, ", ");
            lua_pushstring(co, res->headers[i].value);
            lua_concat(co, 3);
        } else {
            lua_pop(co, 1);
            lua_pushstring(co, res->headers[i].value);
        }
        lua_setfield(co, -2, res->headers[i].name);
    }
    hook_run_resume(run, 3);
}

/* application/x-www-form-urlencoded (RFC 6749 appendix B) of s into out. */
static size_t
lapi_http_form_encode(const char *s, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t            n = 0;

    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;

        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '*') {
            out[n++] = (char)c;
        } else if (c == ' ') {
            out[n++] = '+';
        } else {
            out[n++] = '%';
            out[n++] = hex[c >> 4];
            out[n++] = hex[c & 15];
        }
    }
    return n;
}

/* "Authorization: Basic ..." for domain's introspection client into out; raises when the
 * domain has no such client. */
static void
lapi_http_client_auth(lua_State *L, const char *domain, char *out, size_t outlen)
{
    const struct config_domain *d = config_domain_find(lapi_env(L)->cfg, domain);
    const struct config_oauth2 *o = d != NULL ? d->oauth2 : NULL;
    char                       *raw = NULL;
    size_t                      n;

    if (o == NULL || o->client_id == NULL || o->client_secret == NULL)
        luaL_error(L, "sluice.http.request: domain '%s' has no oauth2 client_id and "
                      "client_secret", domain);
    n = 3 * (strlen(o->client_id) + strlen(o->client_secret)) + 2;
    if (4 * ((n + 2) / 3) + 32 > outlen || (raw = malloc(n)) == NULL)
        luaL_error(L, "sluice.http.request: client credentials too long");
    n = lapi_http_form_encode(o->client_id, raw);
    raw[n++] = ':';
    n += lapi_http_form_encode(o->client_secret, raw + n);
    memcpy(out, "Authorization: Basic ", 21);
    EVP_EncodeBlock((unsigned char *)out + 21, (const unsigned char *)raw, (int)n);
    explicit_bzero(raw, n);
    free(raw);
}

static const char *
lapi_http_opt_string(lua_State *L, const char *key, size_t *len)
{
    const char *s = NULL;

    lua_getfield(L, 1, key);
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "sluice.http.request: %s must be a string", key);
        s = lua_tolstring(L, -1, len);
    }
    lua_pop(L, 1); /* the string stays alive: the table at 1 holds it */
    return s;
}

static void
lapi_http_check_keys(lua_State *L)
{
    static const char *const keys[] = { "method", "url", "headers", "body", "timeout",
                                        "ca_file", "insecure", "oauth2_client_auth", NULL };

    lua_pushnil(L);
    while (lua_next(L, 1) != 0) {
        bool ok = false;

        for (size_t i = 0; lua_type(L, -2) == LUA_TSTRING && keys[i] != NULL; i++)
            ok = ok || strcmp(lua_tostring(L, -2), keys[i]) == 0;
        if (!ok)
            luaL_error(L, "sluice.http.request: unknown key %s",
                       lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "(not a string)");
        lua_pop(L, 1);
    }
}

/* Header lines from t.headers = { Name = 'value', ... } (the strings live in lines[]). */
static size_t
lapi_http_headers(lua_State *L, char lines[][1024], const char **ptrs)
{
    size_t n = 0;

    lua_getfield(L, 1, "headers");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return 0;
    }
    luaL_argcheck(L, lua_istable(L, -1), 1, "headers must be a table");
    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
        if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "sluice.http.request: headers must map names to strings");
        if (n == LAPI_HTTP_HEADERS_MAX - 1)
            luaL_error(L, "sluice.http.request: more than %d headers", LAPI_HTTP_HEADERS_MAX - 1);
        if ((size_t)snprintf(lines[n], 1024, "%s: %s", lua_tostring(L, -2),
                             lua_tostring(L, -1)) >= 1024)
            luaL_error(L, "sluice.http.request: header %s too long", lua_tostring(L, -2));
        ptrs[n] = lines[n];
        n++;
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return n;
}

/* status, body, headers = sluice.http.request{ method, url, headers, body, timeout,
 * ca_file, insecure, oauth2_client_auth }; nil, err on failure; yields */
static int
lapi_http_request(lua_State *L)
{
    struct hook_run        *run = lapi_hook_run(L, "sluice.http.request");
    struct http_client_opts o = { 0 };
    struct http_client_req *req;
    char                  (*lines)[1024]; /* a userdata: http_client copies them */
    const char             *ptrs[LAPI_HTTP_HEADERS_MAX + 1] = { 0 };
    char                    auth[LAPI_HTTP_AUTH_MAX], err[256];
    const char             *domain;
    double                  left = run->budget_end - ev_now(run->loop);
    size_t                  n;

    luaL_checktype(L, 1, LUA_TTABLE);
    lapi_require_yieldable(L, run, "sluice.http.request");
    lua_settop(L, 2);
    lapi_http_check_keys(L);
    o.method = lapi_http_opt_string(L, "method", NULL);
    o.method = o.method != NULL ? o.method : "GET";
    o.url = lapi_http_opt_string(L, "url", NULL);
    luaL_argcheck(L, o.url != NULL, 1, "url is required");
    o.body = lapi_http_opt_string(L, "body", &o.body_len);
    o.ca_file = lapi_http_opt_string(L, "ca_file", NULL);
    lua_getfield(L, 1, "insecure");
    o.insecure = lua_toboolean(L, -1);
    lua_getfield(L, 1, "timeout");
    o.timeout = lua_isnil(L, -1) ? LAPI_HTTP_TIMEOUT : lua_tonumber(L, -1);
    luaL_argcheck(L, o.timeout > 0, 1, "timeout must be a positive number");
    lua_pop(L, 2);
    if (o.timeout > left) /* never past the hook's budget */
        o.timeout = left > 0.001 ? left : 0.001;
    lines = lua_newuserdata(L, LAPI_HTTP_HEADERS_MAX * sizeof(*lines));
    lua_replace(L, 2); /* anchored in slot 2 until the request is built */
    n = lapi_http_headers(L, lines, ptrs);
    domain = lapi_http_opt_string(L, "oauth2_client_auth", NULL);
    if (domain != NULL) {
        lapi_http_client_auth(L, domain, auth, sizeof(auth));
        ptrs[n++] = auth;
    }
    ptrs[n] = NULL;
    o.headers = ptrs;
    o.sid = run->ctx.sid;
    req = http_client_request(run->loop, run->ctx.offload, run->ctx.offload_ret, &o,
                              lapi_http_done, run, err, sizeof(err));
    explicit_bzero(auth, sizeof(auth));
    if (req == NULL) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    run->wait = req;
    run->cancel = lapi_http_cancel;
    return lua_yield(L, 0);
}

void
lapi_http_open(lua_State *L)
{
    lua_newtable(L);
    lua_pushcfunction(L, lapi_http_request);
    lua_setfield(L, -2, "request");
    lua_setfield(L, -2, "http");
}
