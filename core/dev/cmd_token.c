/* core/dev/cmd_token.c: `sluice token`, the mock identity provider of the Python design for
 * trying XOAUTH2/OAUTHBEARER without one (docs/authentication.md):
 *   sluice token --init [--dir DIR]   make the per-install dev key DIR/dev-token.key (0600,
 *                                     never committed) and its public DIR/dev-token.jwks
 *   sluice token [-c FILE] [--key FILE] [--scope S] [--client ID] [--ttl SECONDS]
 *                [--domain D] [--issuer I] [--audience A] USER@DOMAIN
 *                                     print a JWT signed with the dev key (EdDSA, or ES256
 *                                     for a P-256 key) for the domain's oauth2 settings
 * The key's kid is "sluice-dev-" and 16 hex digits of the SHA-256 of its public key, so a
 * configuration trusting it is recognisable (policies/oauth2.lua warns at load) and
 * certs/gen-dev-certs.sh, which makes the same files with openssl, agrees with it. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "cmd/cmd.h"
#include "config/config.h"
#include "proto/jose.h"

#define TOKEN_KID_PREFIX   "sluice-dev-"
#define TOKEN_DEFAULT_TTL  3600
#define TOKEN_MAX_TTL      (366L * 86400)
#define TOKEN_CLIENT       "sluice-token"
#define TOKEN_JSON_MAX     8192

static const char token_usage[] =
    "usage: sluice token --init [--dir DIR]\n"
    "       sluice token [-c FILE] [--key FILE] [--scope S] [--client ID] [--ttl SECONDS]\n"
    "                    [--domain D] [--issuer I] [--audience A] USER@DOMAIN\n"
    "  --init      make DIR/dev-token.key (the dev signing key, Ed25519) and\n"
    "              DIR/dev-token.jwks (its public key set, for a domain's oauth2.jwks_file);\n"
    "              DIR defaults to certs/; existing files are kept\n"
    "  -c FILE     configuration whose domains[D].oauth2 gives issuer, audience, scope and\n"
    "              the key (jwks_file with .key for .jwks); default conf/sluice.lua\n"
    "  --key FILE  the private key (PEM, Ed25519 or P-256)\n"
    "  --client ID azp and client_id claims (default sluice-token)\n"
    "  --ttl N     seconds until exp (default 3600)\n";

struct token_opts {
    const char *conf, *key, *scope, *client, *domain, *issuer, *audience, *user, *dir;
    long        ttl;
    bool        init;
};

/* ---- the key ---- */

/* "sluice-dev-" and 16 hex digits of SHA-256(public key) into kid (28 octets). */
static int
token_kid(EVP_PKEY *key, char *kid, size_t len)
{
    unsigned char pub[65], md[32];
    size_t        n = sizeof(pub);
    unsigned int  mdlen = sizeof(md);
    int           ok;

    if (jose_key_alg(key) == JOSE_ALG_EDDSA)
        ok = EVP_PKEY_get_raw_public_key(key, pub, &n) == 1;
    else
        ok = EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub),
                                             &n) == 1;
    if (!ok || EVP_Digest(pub, n, md, &mdlen, EVP_sha256(), NULL) != 1)
        return -1;
    snprintf(kid, len, TOKEN_KID_PREFIX "%02x%02x%02x%02x%02x%02x%02x%02x", md[0], md[1],
             md[2], md[3], md[4], md[5], md[6], md[7]);
    return 0;
}

static EVP_PKEY *
token_read_key(const char *path)
{
    FILE     *f = fopen(path, "r");
    EVP_PKEY *key;

    if (f == NULL) {
        fprintf(stderr, "sluice token: cannot read the key %s: %s%s\n", path, strerror(errno),
                errno == ENOENT ? " (make one with: sluice token --init)" : "");
        return NULL;
    }
    key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (key == NULL || (jose_key_alg(key) != JOSE_ALG_EDDSA &&
                        jose_key_alg(key) != JOSE_ALG_ES256)) {
        fprintf(stderr, "sluice token: %s is not an Ed25519 or P-256 private key\n", path);
        EVP_PKEY_free(key);
        return NULL;
    }
    return key;
}

/* Write text to path with mode, unless the file exists. 1 written, 0 kept, -1 error. */
static int
token_write_new(const char *path, const char *text, size_t len, mode_t mode)
{
    FILE *f;
    int   fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);

    if (fd < 0 && errno == EEXIST)
        return 0;
    if (fd < 0 || (f = fdopen(fd, "w")) == NULL) {
        fprintf(stderr, "sluice token: cannot create %s: %s\n", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (fwrite(text, 1, len, f) != len || fclose(f) != 0) {
        fprintf(stderr, "sluice token: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 1;
}

/* --init: DIR/dev-token.key and DIR/dev-token.jwks. */
static int
token_init(const char *dir)
{
    char      kpath[4096], jpath[4096], kid[32], jwk[512], jwks[600];
    EVP_PKEY *key = NULL;
    BIO      *mem = NULL;
    char     *pem;
    long      pemlen;
    int       rc = 1, w;

    snprintf(kpath, sizeof(kpath), "%s/dev-token.key", dir);
    snprintf(jpath, sizeof(jpath), "%s/dev-token.jwks", dir);
    if (access(kpath, F_OK) == 0) {
        key = token_read_key(kpath);
    } else {
        key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
        mem = BIO_new(BIO_s_mem());
        if (key == NULL || mem == NULL ||
            !PEM_write_bio_PrivateKey(mem, key, NULL, NULL, 0, NULL, NULL) ||
            (pemlen = BIO_get_mem_data(mem, &pem)) <= 0 ||
            token_write_new(kpath, pem, (size_t)pemlen, 0600) < 0)
            goto done;
    }
    if (key == NULL || token_kid(key, kid, sizeof(kid)) != 0 ||
        jose_public_jwk_json(key, kid, jwk, sizeof(jwk)) == 0)
        goto done;
    w = snprintf(jwks, sizeof(jwks), "{\"keys\":[%s]}\n", jwk);
    if (token_write_new(jpath, jwks, (size_t)w, 0644) < 0)
        goto done;
    printf("dev token key in %s (kid %s), its JWKS in %s\n", kpath, kid, jpath);
    rc = 0;
done:
    BIO_free(mem);
    EVP_PKEY_free(key);
    return rc;
}

/* ---- the token ---- */

/* s as a JSON string (quotes included) at *p, within end. */
static void
token_json_str(char **p, char *end, const char *s)
{
    static const char hex[] = "0123456789abcdef";

    if (*p < end)
        *(*p)++ = '"';
    for (; *s != '\0' && *p + 7 < end; s++) {
        unsigned char c = (unsigned char)*s;

        if (c == '"' || c == '\\') {
            *(*p)++ = '\\';
            *(*p)++ = (char)c;
        } else if (c < 0x20) {
            *p += snprintf(*p, (size_t)(end - *p), "\\u00%c%c", hex[c >> 4], hex[c & 15]);
        } else {
            *(*p)++ = (char)c;
        }
    }
    if (*p < end)
        *(*p)++ = '"';
}

static void
token_json_member(char **p, char *end, const char *key, const char *value)
{
    *p += snprintf(*p, (size_t)(end - *p), "%s", (*p)[-1] == '{' ? "" : ",");
    token_json_str(p, end, key);
    *p += snprintf(*p, (size_t)(end - *p), ":");
    token_json_str(p, end, value);
}

/* The claims of the Python design's mock provider. */
static size_t
token_claims(const struct token_opts *o, char *out, size_t cap)
{
    unsigned char rnd[16];
    char          jti[32], *p = out, *end = out + cap - 64;
    long          now = (long)time(NULL);

    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        return 0;
    jose_b64url_encode(rnd, sizeof(rnd), jti);
    *p++ = '{';
    token_json_member(&p, end, "iss", o->issuer);
    token_json_member(&p, end, "aud", o->audience);
    token_json_member(&p, end, "sub", o->user);
    token_json_member(&p, end, "email", o->user);
    token_json_member(&p, end, "domain", o->domain);
    token_json_member(&p, end, "azp", o->client);
    token_json_member(&p, end, "client_id", o->client);
    token_json_member(&p, end, "scope", o->scope);
    token_json_member(&p, end, "jti", jti);
    p += snprintf(p, (size_t)(out + cap - p), ",\"iat\":%ld,\"exp\":%ld}", now, now + o->ttl);
    return p < out + cap ? (size_t)(p - out) : 0;
}

static int
token_print(const struct token_opts *o)
{
    EVP_PKEY     *key = token_read_key(o->key);
    char          kid[32], header[128], claims[TOKEN_JSON_MAX], *jwt;
    unsigned char sig[JOSE_SIG_MAX];
    size_t        n, hlen, clen, siglen;

    if (key == NULL)
        return 1;
    clen = token_claims(o, claims, sizeof(claims));
    if (token_kid(key, kid, sizeof(kid)) != 0 || clen == 0) {
        EVP_PKEY_free(key);
        fprintf(stderr, "sluice token: cannot build the token\n");
        return 1;
    }
    hlen = (size_t)snprintf(header, sizeof(header),
                            "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"%s\"}",
                            jose_alg_name(jose_key_alg(key)), kid);
    jwt = malloc((hlen + clen + JOSE_SIG_MAX) * 2 + 8);
    if (jwt == NULL) {
        EVP_PKEY_free(key);
        return 1;
    }
    n = jose_b64url_encode((const unsigned char *)header, hlen, jwt);
    jwt[n++] = '.';
    n += jose_b64url_encode((const unsigned char *)claims, clen, jwt + n);
    siglen = jose_sign(key, jwt, n, sig);
    EVP_PKEY_free(key);
    if (siglen == 0) {
        free(jwt);
        fprintf(stderr, "sluice token: signing failed\n");
        return 1;
    }
    jwt[n++] = '.';
    jose_b64url_encode(sig, siglen, jwt + n);
    printf("%s\n", jwt);
    free(jwt);
    return 0;
}

/* Fill what the options left out from domains[domain].oauth2 of the configuration. */
static int
token_from_config(struct token_opts *o, struct config **cfg, char *keybuf, size_t keylen)
{
    const struct config_domain *d;
    char                        err[1024];
    size_t                      n;

    if (o->issuer != NULL && o->audience != NULL && o->key != NULL)
        return 0;
    *cfg = config_load(o->conf, err, sizeof(err));
    if (*cfg == NULL) {
        fprintf(stderr, "sluice token: %s\n", err);
        return EXIT_CONFIG;
    }
    d = config_domain_find(*cfg, o->domain);
    if (d == NULL || d->oauth2 == NULL) {
        fprintf(stderr, "sluice token: %s has no domains['%s'].oauth2 (or give --issuer, "
                        "--audience and --key)\n", o->conf, o->domain);
        return EXIT_CONFIG;
    }
    o->issuer = o->issuer ? o->issuer : d->oauth2->issuer;
    o->audience = o->audience ? o->audience : d->oauth2->audience[0];
    o->scope = o->scope ? o->scope : d->oauth2->scope;
    if (o->key == NULL) {
        n = d->oauth2->jwks_file != NULL ? strlen(d->oauth2->jwks_file) : 0;
        if (n < 5 || strcmp(d->oauth2->jwks_file + n - 5, ".jwks") != 0 || n + 1 > keylen) {
            fprintf(stderr, "sluice token: give the key with --key\n");
            return EXIT_USAGE;
        }
        snprintf(keybuf, keylen, "%.*s.key", (int)(n - 5), d->oauth2->jwks_file);
        o->key = keybuf;
    }
    return 0;
}

int
cmd_token_main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"init", no_argument, NULL, 'i'},       {"dir", required_argument, NULL, 'd'},
        {"key", required_argument, NULL, 'k'},  {"scope", required_argument, NULL, 's'},
        {"client", required_argument, NULL, 'C'}, {"ttl", required_argument, NULL, 't'},
        {"domain", required_argument, NULL, 'D'}, {"issuer", required_argument, NULL, 'I'},
        {"audience", required_argument, NULL, 'A'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct token_opts o = {.conf = "conf/sluice.lua", .client = TOKEN_CLIENT, .dir = "certs",
                           .ttl = TOKEN_DEFAULT_TTL};
    struct config    *cfg = NULL;
    char              keybuf[4096], *endp, *at;
    int               opt, rc;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c': o.conf = optarg; break;
        case 'i': o.init = true; break;
        case 'd': o.dir = optarg; break;
        case 'k': o.key = optarg; break;
        case 's': o.scope = optarg; break;
        case 'C': o.client = optarg; break;
        case 'D': o.domain = optarg; break;
        case 'I': o.issuer = optarg; break;
        case 'A': o.audience = optarg; break;
        case 't':
            o.ttl = strtol(optarg, &endp, 10);
            if (*optarg == '\0' || *endp != '\0' || o.ttl < 1 || o.ttl > TOKEN_MAX_TTL) {
                fprintf(stderr, "sluice token: --ttl: expected 1..%ld seconds\n", TOKEN_MAX_TTL);
                return EXIT_USAGE;
            }
            break;
        case 'h': fputs(token_usage, stdout); return 0;
        default: fputs(token_usage, stderr); return EXIT_USAGE;
        }
    }
    if (o.init)
        return optind == argc ? token_init(o.dir) : (fputs(token_usage, stderr), EXIT_USAGE);
    if (optind + 1 != argc || (at = strrchr(argv[optind], '@')) == NULL || at[1] == '\0') {
        fputs(token_usage, stderr);
        return EXIT_USAGE;
    }
    o.user = argv[optind];
    if (o.domain == NULL)
        o.domain = at + 1;
    rc = token_from_config(&o, &cfg, keybuf, sizeof(keybuf));
    if (rc == 0) {
        if (o.scope == NULL)
            o.scope = "smtp.send";
        rc = token_print(&o);
    }
    config_free(cfg);
    return rc;
}
