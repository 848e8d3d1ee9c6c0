/* core/net/tls.h: OpenSSL contexts. A server context per daemon generation (default
 * certificates plus one context per SNI name, RSA and ECDSA side by side), session
 * tickets with keys rotated in memory, and client contexts for upstreams.
 * Contexts are built once, then shared read-only by all workers (OpenSSL's SSL_CTX is
 * thread-safe for SSL_new). The handshake itself is driven by core/net/conn.c. */
#ifndef SLUICE_TLS_H
#define SLUICE_TLS_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"

struct tls_server; /* default SSL_CTX, SNI table, ticket keys (mutex-protected, shared
                    * with the next generation's server across a reload) */

/* Build from cfg->tls: loads every certificate and key (checking each key matches its
 * certificate), min version, cipher lists, compression off, server cipher preference,
 * session cache and tickets on. Returns NULL and "file: reason" in err on failure. */
struct tls_server *tls_server_new(const struct config_tls *cfg, char *err, size_t errlen);
void               tls_server_free(struct tls_server *ts);

/* A reload: make next seal and open tickets with running's ticket keys, current and
 * previous, on running's rotation schedule, instead of the keys it made, so that tickets
 * issued before the reload resume after it. Only when both have the same
 * ticket_lifetime (else next keeps its own, and returns false); NULL for either is
 * false too. The keys are shared from then on (reference-counted, one mutex): freeing
 * either server leaves the other's intact. Call before next is shared between threads;
 * running may be serving. */
bool tls_server_keep_ticket_keys(struct tls_server *next, const struct tls_server *running);

/* A new server-side SSL for an accepted socket; the SNI callback switches it to the
 * matching name's context. Caller owns the SSL. NULL on allocation failure. */
SSL *tls_server_ssl_new(struct tls_server *ts, int fd);

/* A server context for one certificate (cert: the PEM leaf and its chain, and its key,
 * checked to match), with cfg's versions and ciphers and the listeners' fixed choices, but
 * without SNI and without session resumption (no cache, no tickets): for a listener that
 * answers one request per connection (daemon/metrics.c). client_ca not NULL: a client must
 * present a certificate that chains to one of that PEM file's (mutual TLS). Files are
 * read as tls_use_cert_chain_file() says. The caller owns the context (SSL_CTX_free);
 * NULL and "path: reason" in err on failure. */
SSL_CTX *tls_single_ctx_new(const struct config_tls *cfg, const struct config_cert *cert,
                            const char *client_ca, char *err, size_t errlen);

/* Client context for an upstream: verification against ca_file (or the system store)
 * when verify is set, TLS 1.2 minimum. NULL and a reason in err on failure. */
SSL_CTX *tls_client_ctx_new(const char *ca_file, bool verify, char *err, size_t errlen);

/* Resume sessions on ctx's connections (RFC 5077, RFC 8446 section 2.2): keep the newest
 * session or TLS 1.3 ticket a server gave one of them, and offer it on the next
 * tls_client_ssl_new(). For a context used towards one server (a name, a port, the same
 * verification): a relay pool key's. 0, or -1 when out of memory (nothing is resumed). */
int tls_client_ctx_resume(SSL_CTX *ctx);

/* A client SSL on fd that checks the peer's name (SNI + host name verification) when
 * the context verifies, offering the context's session when it resumes. Caller owns
 * the SSL. */
SSL *tls_client_ssl_new(SSL_CTX *ctx, int fd, const char *name);
/* The handshake on ssl resumed a session (no certificate was sent or checked again). */
bool tls_client_resumed(SSL *ssl);

/* Facts for logs and the Received: header ("TLSv1.3", "TLS_AES_256_GCM_SHA384").
 * Pointers are static or owned by ssl. The SNI name may be NULL. */
const char *tls_version_name(SSL *ssl);
const char *tls_cipher_name(SSL *ssl);
const char *tls_sni_name(SSL *ssl);

/* PEM files read through privfile.h (tls_files.c), so that a reload as the service
 * user reads what start-up read as root. Each returns 0, or -1 with "path: reason" in err.
 * The leaf certificate and its chain into ctx, as SSL_CTX_use_certificate_chain_file(): */
int tls_use_cert_chain_file(SSL_CTX *ctx, const char *path, char *err, size_t errlen);
/* The private key into ctx (the buffer holding it is cleared): */
int tls_use_key_file(SSL_CTX *ctx, const char *path, char *err, size_t errlen);
/* Every certificate (and CRL) of a PEM bundle into store; none is an error: */
int tls_store_add_file(X509_STORE *store, const char *path, char *err, size_t errlen);

/* Last OpenSSL error as text, for log lines (clears the error queue). */
const char *tls_error_string(char *buf, size_t len);

#endif
