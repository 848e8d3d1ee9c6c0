/* core/net/tls.c: OpenSSL contexts (see tls.h). One SSL_CTX for the default certificates and
 * one per SNI name, all configured alike, RSA and ECDSA side by side in each so OpenSSL
 * picks what the client supports; session tickets encrypted with keys made and rotated
 * here, in memory, shared by every context of a tls_server; client contexts for
 * upstreams. Driving handshakes and I/O is core/net/conn.c's.
 *
 * Ticket keys: the current key seals new tickets for ticket_lifetime seconds, then
 * becomes the previous key, which only opens tickets (and has OpenSSL renew them) until
 * the next rotation, at least one more lifetime. A ticket itself lives ticket_lifetime
 * (the session timeout), so every ticket can be opened for all of its life. A reload
 * hands the keys, with their rotation schedule, to the next generation's server when the
 * lifetime stays the same (tls_server_keep_ticket_keys), so tickets outlive reloads. Keys
 * never leave the process: after a restart, or behind a load balancer with several
 * nodes, clients fall back to a full handshake. */
#include "net/tls.h"

#include <arpa/inet.h>
/* OpenSSL 3.0's err.h uses INT_MAX without including <limits.h>, and with -Icore
 * <limits.h> is core/util/limits.h anyway. */
#ifndef INT_MAX
#define INT_MAX __INT_MAX__
#endif
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/tls_internal.h"

#define TLS_SESSION_CACHE_SIZE 20480 /* OpenSSL's default; about 1 KiB each at most */
#define TLS_SESSION_ID_CONTEXT "sluice" /* the same in every context, or SNI breaks resumption */
#define TLS_DEFAULT_LIFETIME   3600
#define TLS_KEY_NAME_LEN       16

struct tls_ticket_key {
    unsigned char name[TLS_KEY_NAME_LEN]; /* random; tells which key sealed a ticket */
    unsigned char aes[32];                /* AES-256-CBC */
    unsigned char hmac[32];               /* HMAC-SHA256 */
    time_t        created;                /* on keys->clock */
};

/* Shared by every context of a tls_server, and by the generations a reload keeps them
 * across (tls_server_keep_ticket_keys): the last tls_server_free() frees them. */
struct tls_ticket_keys {
    _Atomic unsigned      refs;         /* one per tls_server holding these */
    pthread_mutex_t       lock;         /* guards all below: workers handshake at once */
    struct tls_ticket_key current;      /* seals new tickets */
    struct tls_ticket_key previous;     /* still opens tickets when has_previous */
    bool                  has_previous;
    time_t                lifetime;     /* seconds a key seals; it opens for twice that */
    tls_clock_fn         *clock;
    void                 *clock_arg;
};

struct tls_sni_ctx {
    char    *name; /* owns; lowercase host name or "*.parent" */
    SSL_CTX *ctx;  /* owns */
};

struct tls_server {
    SSL_CTX                *ctx;  /* owns; default certificates; every SSL starts here */
    struct tls_sni_ctx     *sni;  /* owns; n_sni entries sorted by name */
    size_t                  n_sni;
    struct tls_ticket_keys *keys; /* holds a ref; used by ctx and every sni[i].ctx */
};

const char *
tls_error_string(char *buf, size_t len)
{
    unsigned long e = ERR_peek_last_error();

    if (e == 0)
        snprintf(buf, len, "unknown error");
    else
        ERR_error_string_n(e, buf, len);
    ERR_clear_error();
    return buf;
}

/* ---- ticket keys ------------------------------------------------------------------- */

static time_t
tls_monotonic(void *arg)
{
    struct timespec ts;

    (void)arg;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

static int
tls_key_generate(struct tls_ticket_key *key, time_t now)
{
    struct tls_ticket_key fresh;

    if (RAND_bytes(fresh.name, sizeof(fresh.name)) != 1 ||
        RAND_priv_bytes(fresh.aes, sizeof(fresh.aes)) != 1 ||
        RAND_priv_bytes(fresh.hmac, sizeof(fresh.hmac)) != 1) {
        OPENSSL_cleanse(&fresh, sizeof(fresh));
        return -1; /* keep using the old key rather than none */
    }
    fresh.created = now;
    *key = fresh;
    OPENSSL_cleanse(&fresh, sizeof(fresh));
    return 0;
}

static struct tls_ticket_keys *
tls_keys_new(time_t lifetime)
{
    struct tls_ticket_keys *k = calloc(1, sizeof(*k));

    if (k == NULL)
        return NULL;
    atomic_init(&k->refs, 1);
    pthread_mutex_init(&k->lock, NULL);
    k->lifetime = lifetime;
    k->clock = tls_monotonic;
    if (tls_key_generate(&k->current, tls_monotonic(NULL)) != 0) {
        pthread_mutex_destroy(&k->lock);
        free(k);
        return NULL;
    }
    return k;
}

static void
tls_keys_unref(struct tls_ticket_keys *k)
{
    if (k == NULL || atomic_fetch_sub_explicit(&k->refs, 1, memory_order_acq_rel) != 1)
        return;
    pthread_mutex_destroy(&k->lock);
    OPENSSL_cleanse(k, sizeof(*k));
    free(k);
}

/* Rotate when the current key has sealed for a lifetime; drop the previous one when it
 * is past its second lifetime too (nothing rotated for a while). Caller holds the lock. */
static void
tls_keys_rotate(struct tls_ticket_keys *k)
{
    time_t now = k->clock(k->clock_arg);
    time_t age = now - k->current.created;

    if (age < k->lifetime)
        return; /* also a clock that went back: keep the key */
    if (age < 2 * k->lifetime) {
        k->previous = k->current;
        k->has_previous = true;
    } else {
        OPENSSL_cleanse(&k->previous, sizeof(k->previous));
        k->has_previous = false;
    }
    if (tls_key_generate(&k->current, now) != 0)
        k->current.created = now; /* RAND failed: better the old key than none */
}

/* Copy the key that opens a ticket named name: 1 current, 2 previous (renew the
 * ticket), 0 none. With name NULL, the key that seals new tickets (1). */
static int
tls_keys_get(struct tls_ticket_keys *k, const unsigned char *name, struct tls_ticket_key *out)
{
    int rc = 0;

    pthread_mutex_lock(&k->lock);
    tls_keys_rotate(k);
    if (name == NULL || memcmp(name, k->current.name, TLS_KEY_NAME_LEN) == 0) {
        *out = k->current;
        rc = 1;
    } else if (k->has_previous && memcmp(name, k->previous.name, TLS_KEY_NAME_LEN) == 0) {
        *out = k->previous;
        rc = 2;
    }
    pthread_mutex_unlock(&k->lock);
    return rc;
}

static bool
tls_mac_init(EVP_MAC_CTX *hctx, struct tls_ticket_key *key)
{
    OSSL_PARAM params[3];

    params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, key->hmac,
                                                  sizeof(key->hmac));
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0);
    params[2] = OSSL_PARAM_construct_end();
    return EVP_MAC_CTX_set_params(hctx, params) == 1;
}

/* SSL_CTX_set_tlsext_ticket_key_evp_cb(3): enc = 1 seals (returns 1), enc = 0 opens
 * (1 ok, 2 ok and renew, 0 unknown key: full handshake), -1 on error. */
static int
tls_ticket_cb(SSL *ssl, unsigned char name[TLS_KEY_NAME_LEN], unsigned char *iv,
              EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
    struct tls_server    *ts = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    struct tls_ticket_key key;
    int                   rc;

    if (ts == NULL)
        return -1;
    if (enc) {
        rc = tls_keys_get(ts->keys, NULL, &key);
        memcpy(name, key.name, TLS_KEY_NAME_LEN);
        if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(EVP_aes_256_cbc())) != 1 ||
            EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, key.aes, iv) != 1 ||
            !tls_mac_init(hctx, &key))
            rc = -1;
    } else {
        rc = tls_keys_get(ts->keys, name, &key);
        if (rc > 0 && (EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, key.aes, iv) != 1 ||
                       !tls_mac_init(hctx, &key)))
            rc = -1;
        /* TLS 1.3: renew on every resumption. OpenSSL sends a NewSessionTicket after a
         * resumed 1.3 handshake only when this returns 2, and a client that uses each
         * ticket once (RFC 8446 C.4) would otherwise resume every other connection. A
         * 1.2 ticket stays valid for reuse and is renewed only from the previous key. */
        if (rc == 1 && SSL_version(ssl) == TLS1_3_VERSION)
            rc = 2;
    }
    OPENSSL_cleanse(&key, sizeof(key));
    return rc;
}

void
tls_server_set_clock(struct tls_server *ts, tls_clock_fn *clock, void *arg)
{
    pthread_mutex_lock(&ts->keys->lock);
    ts->keys->clock = clock;
    ts->keys->clock_arg = arg;
    ts->keys->current.created = clock(arg);
    ts->keys->has_previous = false;
    pthread_mutex_unlock(&ts->keys->lock);
}

/* The lifetime is fixed when the keys are made, and read without the lock. */
bool
tls_server_keep_ticket_keys(struct tls_server *next, const struct tls_server *running)
{
    if (next == NULL || running == NULL || next->keys->lifetime != running->keys->lifetime)
        return false;
    if (next->keys == running->keys)
        return true; /* kept already */
    atomic_fetch_add_explicit(&running->keys->refs, 1, memory_order_relaxed);
    tls_keys_unref(next->keys);
    next->keys = running->keys;
    return true;
}

/* ---- SNI ------------------------------------------------------------------------------ */

static int
tls_sni_cmp(const void *a, const void *b)
{
    return strcmp(((const struct tls_sni_ctx *)a)->name, ((const struct tls_sni_ctx *)b)->name);
}

static SSL_CTX *
tls_sni_lookup(const struct tls_server *ts, const char *name)
{
    struct tls_sni_ctx  key = {.name = (char *)name};
    struct tls_sni_ctx *hit = bsearch(&key, ts->sni, ts->n_sni, sizeof(*ts->sni), tls_sni_cmp);

    return hit != NULL ? hit->ctx : NULL;
}

/* The context for a client's server name: exact name, then "*.parent" (one label
 * only, as in RFC 6125 section 6.4.3), else NULL for the default. */
static SSL_CTX *
tls_sni_find(const struct tls_server *ts, const char *name)
{
    char        lower[256];
    const char *dot;
    SSL_CTX    *ctx;
    size_t      i, n = strlen(name);

    if (n == 0 || n >= sizeof(lower) - 1)
        return NULL;
    for (i = 0; i <= n; i++)
        lower[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] - 'A' + 'a' : name[i]);
    ctx = tls_sni_lookup(ts, lower);
    if (ctx != NULL)
        return ctx;
    dot = strchr(lower, '.');
    if (dot == NULL || dot == lower || dot[1] == '\0')
        return NULL;
    memmove(lower + 1, dot, strlen(dot) + 1);
    lower[0] = '*';
    return tls_sni_lookup(ts, lower);
}

static int
tls_sni_cb(SSL *ssl, int *alert, void *arg)
{
    struct tls_server *ts = arg;
    const char        *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    SSL_CTX           *ctx;

    (void)alert;
    if (name == NULL || ts->n_sni == 0)
        return SSL_TLSEXT_ERR_OK;
    ctx = tls_sni_find(ts, name);
    if (ctx != NULL && SSL_set_SSL_CTX(ssl, ctx) == NULL)
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    return SSL_TLSEXT_ERR_OK; /* unknown names get the default certificates */
}

/* ---- server contexts ---------------------------------------------------------------- */

static const char *
tls_key_type_name(int type)
{
    switch (type) {
    case EVP_PKEY_RSA:
        return "RSA";
    case EVP_PKEY_RSA_PSS:
        return "RSA-PSS";
    case EVP_PKEY_EC:
        return "ECDSA";
    case EVP_PKEY_ED25519:
        return "Ed25519";
    case EVP_PKEY_ED448:
        return "Ed448";
    default:
        return OBJ_nid2sn(type);
    }
}

/* Load cert+key pairs into ctx; each key must match its certificate, and two pairs of
 * the same key type would silently replace each other, so that is an error too. */
static int
tls_load_certs(SSL_CTX *ctx, const struct config_cert *certs, size_t n, char *err,
               size_t errlen)
{
    char   reason[256], why[768];
    int    types[8];
    size_t i, j;

    for (i = 0; i < n; i++) {
        if (tls_use_cert_chain_file(ctx, certs[i].cert_file, err, errlen) != 0)
            return -1;
        if (tls_use_key_file(ctx, certs[i].key_file, why, sizeof(why)) != 0) {
            snprintf(err, errlen, "%s (the key for %s)", why, certs[i].cert_file);
            return -1;
        }
        if (SSL_CTX_check_private_key(ctx) != 1) {
            snprintf(err, errlen, "%s: cannot use the key for %s: %s", certs[i].key_file,
                     certs[i].cert_file, tls_error_string(reason, sizeof(reason)));
            return -1;
        }
        types[i % 8] = EVP_PKEY_get_base_id(SSL_CTX_get0_privatekey(ctx));
        for (j = 0; j < i && j < 8; j++)
            if (types[j] == types[i % 8]) {
                snprintf(err, errlen, "%s: a second %s certificate; one per key type",
                         certs[i].cert_file, tls_key_type_name(types[j]));
                return -1;
            }
    }
    return 0;
}

/* What every server context shares, the listeners' and tls_single_ctx_new()'s: the
 * protocol versions and ciphers of cfg, compression and renegotiation off, the server's
 * order of ciphers (ChaCha20 first for clients that prefer it). */
static int
tls_ctx_policy(SSL_CTX *ctx, const struct config_tls *cfg, char *err, size_t errlen)
{
    char reason[256];

    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_NO_RENEGOTIATION | SSL_OP_PRIORITIZE_CHACHA);
    if (SSL_CTX_set_min_proto_version(ctx, cfg->min_version ? cfg->min_version
                                                            : TLS1_2_VERSION) != 1) {
        snprintf(err, errlen, "tls.min_version: %s", tls_error_string(reason, sizeof(reason)));
        return -1;
    }
    if (cfg->ciphers != NULL && SSL_CTX_set_cipher_list(ctx, cfg->ciphers) != 1) {
        snprintf(err, errlen, "tls.ciphers: no usable cipher in '%s'", cfg->ciphers);
        return -1;
    }
    if (cfg->ciphersuites != NULL && SSL_CTX_set_ciphersuites(ctx, cfg->ciphersuites) != 1) {
        snprintf(err, errlen, "tls.ciphersuites: no usable suite in '%s'", cfg->ciphersuites);
        return -1;
    }
    SSL_CTX_set_dh_auto(ctx, 1); /* only used if ciphers names DHE suites */
    ERR_clear_error();
    return 0;
}

static int
tls_ctx_settings(SSL_CTX *ctx, struct tls_server *ts, const struct config_tls *cfg, char *err,
                 size_t errlen)
{
    if (tls_ctx_policy(ctx, cfg, err, errlen) != 0)
        return -1;
    /* One read(2) per burst instead of two per record (header, then body); conn.c reads
     * what OpenSSL buffered without waiting for the socket (conn->ssl_more). */
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)TLS_SESSION_ID_CONTEXT,
                                   sizeof(TLS_SESSION_ID_CONTEXT) - 1);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_sess_set_cache_size(ctx, TLS_SESSION_CACHE_SIZE);
    SSL_CTX_set_timeout(ctx, (long)ts->keys->lifetime); /* a ticket opens for >= this */
    SSL_CTX_set_num_tickets(ctx, 1);
    SSL_CTX_set_app_data(ctx, ts);
    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, tls_ticket_cb);
    SSL_CTX_set_tlsext_servername_callback(ctx, tls_sni_cb);
    SSL_CTX_set_tlsext_servername_arg(ctx, ts);
    ERR_clear_error();
    return 0;
}

static SSL_CTX *
tls_server_ctx_new(struct tls_server *ts, const struct config_tls *cfg,
                   const struct config_cert *certs, size_t n, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

    if (ctx == NULL) {
        snprintf(err, errlen, "tls: cannot create a context");
        return NULL;
    }
    if (tls_ctx_settings(ctx, ts, cfg, err, errlen) != 0 ||
        tls_load_certs(ctx, certs, n, err, errlen) != 0) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

static int
tls_server_add_sni(struct tls_server *ts, const struct config_tls *cfg, char *err,
                   size_t errlen)
{
    struct tls_sni_ctx *e;
    size_t              i;

    ts->sni = calloc(cfg->n_sni ? cfg->n_sni : 1, sizeof(*ts->sni));
    if (ts->sni == NULL) {
        snprintf(err, errlen, "tls: out of memory");
        return -1;
    }
    for (i = 0; i < cfg->n_sni; i++) {
        e = &ts->sni[ts->n_sni];
        e->name = strdup(cfg->sni[i].name);
        if (e->name == NULL) {
            snprintf(err, errlen, "tls: out of memory");
            return -1;
        }
        ts->n_sni++;
        for (char *p = e->name; *p; p++)
            *p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
        e->ctx = tls_server_ctx_new(ts, cfg, cfg->sni[i].certs, cfg->sni[i].n_certs, err,
                                    errlen);
        if (e->ctx == NULL)
            return -1;
    }
    qsort(ts->sni, ts->n_sni, sizeof(*ts->sni), tls_sni_cmp);
    return 0;
}

struct tls_server *
tls_server_new(const struct config_tls *cfg, char *err, size_t errlen)
{
    struct tls_server *ts = calloc(1, sizeof(*ts));

    if (ts == NULL) {
        snprintf(err, errlen, "tls: out of memory");
        return NULL;
    }
    ts->keys = tls_keys_new(cfg->ticket_lifetime > 0 ? cfg->ticket_lifetime
                                                     : TLS_DEFAULT_LIFETIME);
    if (ts->keys == NULL) {
        snprintf(err, errlen, "tls: cannot generate a session ticket key");
        goto fail;
    }
    if (cfg->n_certs == 0) {
        snprintf(err, errlen, "tls.certificates: none configured");
        goto fail;
    }
    ts->ctx = tls_server_ctx_new(ts, cfg, cfg->certs, cfg->n_certs, err, errlen);
    if (ts->ctx == NULL || tls_server_add_sni(ts, cfg, err, errlen) != 0)
        goto fail;
    return ts;
fail:
    tls_server_free(ts);
    return NULL;
}

void
tls_server_free(struct tls_server *ts)
{
    size_t i;

    if (ts == NULL)
        return;
    for (i = 0; i < ts->n_sni; i++) {
        free(ts->sni[i].name);
        SSL_CTX_free(ts->sni[i].ctx);
    }
    free(ts->sni);
    SSL_CTX_free(ts->ctx);
    tls_keys_unref(ts->keys);
    free(ts);
}

SSL *
tls_server_ssl_new(struct tls_server *ts, int fd)
{
    SSL *ssl = SSL_new(ts->ctx);

    if (ssl == NULL)
        return NULL;
    if (SSL_set_fd(ssl, fd) != 1) {
        SSL_free(ssl);
        return NULL;
    }
    SSL_set_accept_state(ssl);
    return ssl;
}

/* ---- one certificate, no resumption -------------------------------------------------- */

/* Clients must present a certificate that chains to one in client_ca; its subjects are
 * sent as the acceptable issuers (RFC 8446 4.3.2, RFC 5246 7.4.4). */
static int
tls_require_client_cert(SSL_CTX *ctx, const char *client_ca, char *err, size_t errlen)
{
    X509_STORE            *store = SSL_CTX_get_cert_store(ctx);
    STACK_OF(X509_OBJECT) *objs;

    if (tls_store_add_file(store, client_ca, err, errlen) != 0)
        return -1;
    objs = X509_STORE_get0_objects(store);
    for (int i = 0; i < sk_X509_OBJECT_num(objs); i++) {
        X509 *x = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objs, i));

        if (x != NULL && SSL_CTX_add_client_CA(ctx, x) != 1) {
            snprintf(err, errlen, "%s: out of memory", client_ca);
            return -1;
        }
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    return 0;
}

SSL_CTX *
tls_single_ctx_new(const struct config_tls *cfg, const struct config_cert *cert,
                   const char *client_ca, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

    if (ctx == NULL) {
        snprintf(err, errlen, "tls: cannot create a context");
        return NULL;
    }
    if (tls_ctx_policy(ctx, cfg, err, errlen) != 0 ||
        tls_load_certs(ctx, cert, 1, err, errlen) != 0 ||
        (client_ca != NULL && tls_require_client_cert(ctx, client_ca, err, errlen) != 0)) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    /* One request per connection: nothing to resume, so no cache, no tickets (the id
     * context only keeps OpenSSL from refusing a client certificate on a resumption). */
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)TLS_SESSION_ID_CONTEXT,
                                   sizeof(TLS_SESSION_ID_CONTEXT) - 1);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(ctx, 0);
    ERR_clear_error();
    return ctx;
}

/* ---- client contexts ----------------------------------------------------------------- */

SSL_CTX *
tls_client_ctx_new(const char *ca_file, bool verify, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    char     reason[256];
    int      ok;

    if (ctx == NULL) {
        snprintf(err, errlen, "tls: cannot create a client context");
        return NULL;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_read_ahead(ctx, 1); /* see the server context */
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    if (verify) {
        if (ca_file != NULL) {
            ok = tls_store_add_file(SSL_CTX_get_cert_store(ctx), ca_file, err, errlen) == 0;
        } else if (!(ok = SSL_CTX_set_default_verify_paths(ctx) == 1)) {
            snprintf(err, errlen, "system store: cannot load CA certificates: %s",
                     tls_error_string(reason, sizeof(reason)));
        }
        if (!ok) {
            SSL_CTX_free(ctx);
            return NULL;
        }
    }
    return ctx;
}

/* ---- client sessions: resumption towards one server ---------------------------------- */

/* The newest session a context's connections were given (a TLS 1.2 session or a TLS 1.3
 * ticket): what the next connection offers. Hung on the context as ex_data, freed with it.
 * Synchronisation: mu guards session; a context is a pool key's, one worker's (relay/),
 * but nothing here relies on that. */
struct tls_client_cache {
    pthread_mutex_t mu;
    SSL_SESSION    *session; /* owns a reference, or NULL */
};

static int            tls_client_cache_idx = -1;
static pthread_once_t tls_client_cache_once = PTHREAD_ONCE_INIT;

static void
tls_client_cache_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                      void *argp)
{
    struct tls_client_cache *cache = ptr;

    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    if (cache == NULL)
        return;
    SSL_SESSION_free(cache->session);
    pthread_mutex_destroy(&cache->mu);
    free(cache);
}

static void
tls_client_cache_index(void)
{
    tls_client_cache_idx =
        SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, tls_client_cache_free);
}

static struct tls_client_cache *
tls_client_cache_of(SSL_CTX *ctx)
{
    return tls_client_cache_idx < 0 ? NULL : SSL_CTX_get_ex_data(ctx, tls_client_cache_idx);
}

/* OpenSSL hands over each new session: after a TLS 1.2 handshake, and for each TLS 1.3
 * ticket (they arrive after the handshake, read with the first records that follow).
 * Keeping the reference: return 1. */
static int
tls_client_new_session_cb(SSL *ssl, SSL_SESSION *session)
{
    struct tls_client_cache *cache = tls_client_cache_of(SSL_get_SSL_CTX(ssl));
    SSL_SESSION             *old;

    if (cache == NULL || !SSL_SESSION_is_resumable(session))
        return 0;
    pthread_mutex_lock(&cache->mu);
    old = cache->session;
    cache->session = session;
    pthread_mutex_unlock(&cache->mu);
    SSL_SESSION_free(old);
    return 1;
}

int
tls_client_ctx_resume(SSL_CTX *ctx)
{
    struct tls_client_cache *cache;

    pthread_once(&tls_client_cache_once, tls_client_cache_index);
    if (tls_client_cache_idx < 0 || (cache = calloc(1, sizeof(*cache))) == NULL)
        return -1;
    pthread_mutex_init(&cache->mu, NULL);
    if (SSL_CTX_set_ex_data(ctx, tls_client_cache_idx, cache) != 1) {
        tls_client_cache_free(NULL, cache, NULL, 0, 0, NULL);
        return -1;
    }
    /* Client sessions are kept here, not in OpenSSL's internal cache (which a client
     * context never looks up); the callback sees every one. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, tls_client_new_session_cb);
    return 0;
}

/* Offer the context's newest session on ssl, if it has one still good. */
static void
tls_client_offer_session(SSL_CTX *ctx, SSL *ssl)
{
    struct tls_client_cache *cache = tls_client_cache_of(ctx);

    if (cache == NULL)
        return;
    pthread_mutex_lock(&cache->mu);
    if (cache->session != NULL && SSL_SESSION_is_resumable(cache->session) &&
        SSL_set_session(ssl, cache->session) != 1) /* takes its own reference */
        ERR_clear_error(); /* then a full handshake */
    pthread_mutex_unlock(&cache->mu);
}

bool
tls_client_resumed(SSL *ssl)
{
    return SSL_session_reused(ssl) == 1;
}

static bool
tls_is_ip_literal(const char *name)
{
    unsigned char buf[16];

    return inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1;
}

SSL *
tls_client_ssl_new(SSL_CTX *ctx, int fd, const char *name)
{
    bool verify = (SSL_CTX_get_verify_mode(ctx) & SSL_VERIFY_PEER) != 0;
    bool is_ip = name != NULL && tls_is_ip_literal(name);
    SSL *ssl;

    if (verify && name == NULL)
        return NULL; /* nothing to verify the certificate against */
    ssl = SSL_new(ctx);
    if (ssl == NULL)
        return NULL;
    if (SSL_set_fd(ssl, fd) != 1 ||
        (name != NULL && !is_ip && SSL_set_tlsext_host_name(ssl, name) != 1) || /* RFC 6066 3 */
        (verify && !is_ip && SSL_set1_host(ssl, name) != 1) ||
        (verify && is_ip && X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) != 1)) {
        SSL_free(ssl);
        return NULL;
    }
    if (verify)
        SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    tls_client_offer_session(ctx, ssl);
    SSL_set_connect_state(ssl);
    return ssl;
}

/* ---- facts for logs ----------------------------------------------------------------- */

const char *
tls_version_name(SSL *ssl)
{
    return ssl != NULL ? SSL_get_version(ssl) : "none";
}

const char *
tls_cipher_name(SSL *ssl)
{
    return ssl != NULL ? SSL_get_cipher_name(ssl) : "none";
}

const char *
tls_sni_name(SSL *ssl)
{
    return ssl != NULL ? SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name) : NULL;
}
