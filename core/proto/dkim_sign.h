/* core/proto/dkim_sign.h: DKIM-Signature fields (RFC 6376) with RSA-SHA256 or
 * Ed25519-SHA256 (RFC 8463) keys, made with OpenSSL. Canonicalisation is dkim_canon.c's;
 * which domain signs a message, and with which keys, is the caller's (smtp/smtp_dkim.c). */
#ifndef SLUICE_DKIM_SIGN_H
#define SLUICE_DKIM_SIGN_H

#include <stddef.h>

#define DKIM_RSA_MIN_BITS 1024 /* RFC 8301 section 3.2: verifiers refuse shorter keys */
#define DKIM_LINE_MAX     78   /* RFC 5322 section 2.1.1: fold the field at 78 columns */

enum dkim_alg {
    DKIM_ALG_RSA_SHA256,     /* a=rsa-sha256, k=rsa */
    DKIM_ALG_ED25519_SHA256, /* a=ed25519-sha256, k=ed25519 (RFC 8463) */
};

/* A private key, immutable once made: any number of threads may sign with it at once
 * (OpenSSL 3 makes a context per operation). */
struct dkim_key;

/* The key in a PEM text (PKCS#8 or traditional RSA). NULL with err ("not a PEM private
 * key", "RSA key of 512 bits: at least 1024") on failure. Free with dkim_key_free. */
struct dkim_key *dkim_key_new(const char *pem, size_t len, char *err, size_t errlen);
void             dkim_key_free(struct dkim_key *k);
enum dkim_alg    dkim_key_alg(const struct dkim_key *k);
int              dkim_key_bits(const struct dkim_key *k);
/* "rsa-sha256" or "ed25519-sha256". */
const char      *dkim_alg_name(enum dkim_alg alg);

/* The DNS TXT record's text for the key's public half: "v=DKIM1; k=rsa; p=BASE64" (the
 * SubjectPublicKeyInfo for RSA, the raw 32 octets for Ed25519: RFC 8463 section 4.2).
 * Heap string, caller frees; NULL on allocation failure. */
char *dkim_key_dns_txt(const struct dkim_key *k);

/* One signature to make; every pointer borrows. */
struct dkim_signer {
    const struct dkim_key *key;
    const char            *domain;   /* d= */
    const char            *selector; /* s= */
    const char *const     *headers;  /* NULL-terminated names to sign ("list-*" a prefix),
                                      * or NULL for dkim_canon.c's default set; From is
                                      * always signed, and once more than present */
};

/* One field being made, in three steps, so that the private-key operation can run on
 * another thread (smtp/smtp_dkim.c puts it on the offload pool): dkim_draft_new hashes
 * (cheap: SHA-256 over the message) and builds the field up to "b=" on the caller's
 * thread; dkim_draft_sign makes the signature (RSA-2048: ~300 us) and touches nothing but
 * the draft and its key, so any one thread may run it; dkim_draft_finish completes the
 * field. A draft borrows its key (the caller keeps the key alive until the draft is
 * freed) and copies nothing else of the message. */
struct dkim_draft;

/* The draft for msg (as dkim_sign below), t=now. NULL with err on failure. */
struct dkim_draft *dkim_draft_new(const struct dkim_signer *s, const char *msg, size_t len,
                                  long long now, char *err, size_t errlen);
/* The signature over the draft's header hash. 0, or -1 (OpenSSL or memory). Thread-safe
 * with respect to other drafts, even with the same key. */
int                dkim_draft_sign(struct dkim_draft *d);
enum dkim_alg      dkim_draft_alg(const struct dkim_draft *d);
/* The finished field "DKIM-Signature: ...\r\n" of a signed draft: 0 with a heap string in
 * *out (caller frees) and its length in *out_len; -1 with err. The draft stays the
 * caller's (free it). */
int                dkim_draft_finish(struct dkim_draft *d, char **out, size_t *out_len,
                                     char *err, size_t errlen);
void               dkim_draft_free(struct dkim_draft *d);

/* All three steps at once: the field "DKIM-Signature: ...\r\n" for msg (header block,
 * empty line, body; CRLF lines), relaxed/relaxed, t=now, folded at DKIM_LINE_MAX columns.
 * 0 with a heap string in *out (caller frees) and its length in *out_len; -1 with err on
 * failure. */
int dkim_sign(const struct dkim_signer *s, const char *msg, size_t len, long long now,
              char **out, size_t *out_len, char *err, size_t errlen);

#endif
