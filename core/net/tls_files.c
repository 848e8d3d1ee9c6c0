/* core/net/tls_files.c: certificates, keys and CA bundles read through privfile.h and
 * handed to OpenSSL from memory. OpenSSL's *_file() calls open the path themselves, as
 * whoever runs them: on a reload that is the service user, who may not be allowed to
 * read a 0600 key or a file under root's 0700 home. */
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/privfile.h"
#include "net/tls.h"

#define TLS_FILE_MAX (4u * 1024 * 1024) /* octets of a PEM file: a CA bundle is ~200 KiB */

/* The file as a read-only memory BIO over *text (caller frees both; the text may hold a
 * key: clear it). NULL with err. */
static BIO *
tls_file_bio(const char *path, char **text, size_t *len, char *err, size_t errlen)
{
    BIO *bio;

    *text = privfile_read(path, TLS_FILE_MAX, len, err, errlen);
    if (*text == NULL)
        return NULL;
    bio = BIO_new_mem_buf(*text, (int)*len);
    if (bio == NULL) {
        snprintf(err, errlen, "%s: out of memory", path);
        free(*text);
        *text = NULL;
    }
    return bio;
}

static void
tls_file_done(BIO *bio, char *text, size_t len)
{
    BIO_free(bio);
    if (text != NULL)
        OPENSSL_cleanse(text, len);
    free(text);
}

/* After the last PEM block: "no start line" is the normal end, anything else an error. */
static bool
tls_pem_ended_cleanly(void)
{
    unsigned long e = ERR_peek_last_error();

    if (ERR_GET_LIB(e) != ERR_LIB_PEM || ERR_GET_REASON(e) != PEM_R_NO_START_LINE)
        return false;
    ERR_clear_error();
    return true;
}

/* What SSL_CTX_use_certificate_chain_file() does: the first certificate is the leaf, the
 * rest its chain. */
static int
tls_use_chain_bio(SSL_CTX *ctx, BIO *bio)
{
    X509 *x = PEM_read_bio_X509_AUX(bio, NULL, NULL, NULL);
    int   ok;

    if (x == NULL)
        return -1;
    ok = SSL_CTX_use_certificate(ctx, x) == 1 && SSL_CTX_clear_chain_certs(ctx) == 1;
    X509_free(x);
    while (ok && (x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        ok = SSL_CTX_add0_chain_cert(ctx, x) == 1;
        if (!ok)
            X509_free(x);
    }
    return ok && tls_pem_ended_cleanly() ? 0 : -1;
}

int
tls_use_cert_chain_file(SSL_CTX *ctx, const char *path, char *err, size_t errlen)
{
    char   *text, reason[256];
    size_t  len = 0;
    BIO    *bio = tls_file_bio(path, &text, &len, err, errlen);
    int     rc;

    if (bio == NULL)
        return -1;
    ERR_clear_error();
    rc = tls_use_chain_bio(ctx, bio);
    if (rc != 0)
        snprintf(err, errlen, "%s: cannot load the certificate chain: %s", path,
                 tls_error_string(reason, sizeof(reason)));
    tls_file_done(bio, text, len);
    return rc;
}

int
tls_use_key_file(SSL_CTX *ctx, const char *path, char *err, size_t errlen)
{
    char      *text, reason[256];
    size_t     len = 0;
    BIO       *bio = tls_file_bio(path, &text, &len, err, errlen);
    EVP_PKEY  *key;
    int        rc = -1;

    if (bio == NULL)
        return -1;
    ERR_clear_error();
    key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    if (key != NULL && SSL_CTX_use_PrivateKey(ctx, key) == 1)
        rc = 0;
    else
        snprintf(err, errlen, "%s: cannot use the key: %s", path,
                 tls_error_string(reason, sizeof(reason)));
    EVP_PKEY_free(key);
    tls_file_done(bio, text, len);
    return rc;
}

int
tls_store_add_file(X509_STORE *store, const char *path, char *err, size_t errlen)
{
    char                *text, reason[256];
    size_t               len = 0;
    BIO                 *bio = tls_file_bio(path, &text, &len, err, errlen);
    STACK_OF(X509_INFO) *infos;
    int                  n = 0, bad = 0;

    if (bio == NULL)
        return -1;
    ERR_clear_error();
    infos = PEM_X509_INFO_read_bio(bio, NULL, NULL, NULL);
    for (int i = 0; infos != NULL && i < sk_X509_INFO_num(infos); i++) {
        X509_INFO *info = sk_X509_INFO_value(infos, i);

        if (info->x509 != NULL && X509_STORE_add_cert(store, info->x509) == 1)
            n++;
        else if (info->x509 != NULL)
            bad++;
        if (info->crl != NULL && X509_STORE_add_crl(store, info->crl) != 1)
            bad++;
    }
    if (infos == NULL || n == 0 || bad > 0)
        snprintf(err, errlen, "%s: cannot load CA certificates: %s", path,
                 n == 0 && infos != NULL ? "no PEM certificate in it"
                                         : tls_error_string(reason, sizeof(reason)));
    sk_X509_INFO_pop_free(infos, X509_INFO_free);
    tls_file_done(bio, text, len);
    return infos == NULL || n == 0 || bad > 0 ? -1 : 0;
}
