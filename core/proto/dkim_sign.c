/* core/proto/dkim_sign.c: one DKIM-Signature field (RFC 6376 section 5) with OpenSSL: the
 * body hash over dkim_canon.c's relaxed body, the header hash over the fields h= names
 * (From once more than present: section 8.15's oversigning, as opendkim's OversignHeaders
 * does), then RSASSA-PKCS1-v1_5 over it, or Ed25519 over its SHA-256 (RFC 8463 section 3).
 * The field is built folded once; b= is signed empty and filled in last, so the folding the
 * verifier sees is the folding that was signed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "proto/dkim_canon.h"
#include "proto/dkim_sign.h"
#include "util/buf.h"

#define DKIM_BUF_CAP ((size_t)1 << 30) /* the field is a few hundred octets */

struct dkim_key {
    EVP_PKEY     *pkey; /* owns */
    enum dkim_alg alg;
    int           bits;
};

struct dkim_key *
dkim_key_new(const char *pem, size_t len, char *err, size_t errlen)
{
    BIO             *bio = BIO_new_mem_buf(pem, (int)len);
    EVP_PKEY        *pkey = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    struct dkim_key *k = NULL;

    BIO_free(bio);
    if (pkey == NULL) {
        snprintf(err, errlen, "not a PEM private key");
        return NULL;
    }
    if (EVP_PKEY_is_a(pkey, "RSA")) {
        if (EVP_PKEY_get_bits(pkey) < DKIM_RSA_MIN_BITS) {
            snprintf(err, errlen, "RSA key of %d bits: at least %d (2048 recommended)",
                     EVP_PKEY_get_bits(pkey), DKIM_RSA_MIN_BITS);
            goto fail;
        }
    } else if (!EVP_PKEY_is_a(pkey, "ED25519")) {
        snprintf(err, errlen, "expected an RSA or Ed25519 private key, not %s",
                 EVP_PKEY_get0_type_name(pkey) ? EVP_PKEY_get0_type_name(pkey) : "unknown");
        goto fail;
    }
    k = calloc(1, sizeof(*k));
    if (k == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    k->pkey = pkey;
    k->alg = EVP_PKEY_is_a(pkey, "RSA") ? DKIM_ALG_RSA_SHA256 : DKIM_ALG_ED25519_SHA256;
    k->bits = EVP_PKEY_get_bits(pkey);
    return k;
fail:
    EVP_PKEY_free(pkey);
    return NULL;
}

void
dkim_key_free(struct dkim_key *k)
{
    if (k == NULL)
        return;
    EVP_PKEY_free(k->pkey);
    free(k);
}

enum dkim_alg
dkim_key_alg(const struct dkim_key *k)
{
    return k->alg;
}

int
dkim_key_bits(const struct dkim_key *k)
{
    return k->bits;
}

const char *
dkim_alg_name(enum dkim_alg alg)
{
    return alg == DKIM_ALG_RSA_SHA256 ? "rsa-sha256" : "ed25519-sha256";
}

/* n octets as base64 (no line breaks), heap string or NULL. */
static char *
dkim_base64(const unsigned char *p, size_t n)
{
    char *out = malloc(4 * ((n + 2) / 3) + 1);

    if (out != NULL)
        EVP_EncodeBlock((unsigned char *)out, p, (int)n);
    return out;
}

char *
dkim_key_dns_txt(const struct dkim_key *k)
{
    unsigned char *der = NULL, raw[32];
    size_t         n = sizeof(raw);
    int            dlen;
    char          *b64 = NULL, *txt = NULL;

    if (k->alg == DKIM_ALG_RSA_SHA256) {
        dlen = i2d_PUBKEY(k->pkey, &der);
        if (dlen > 0)
            b64 = dkim_base64(der, (size_t)dlen);
        OPENSSL_free(der);
    } else if (EVP_PKEY_get_raw_public_key(k->pkey, raw, &n) == 1) {
        b64 = dkim_base64(raw, n);
    }
    if (b64 == NULL)
        return NULL;
    n = strlen(b64) + 32;
    txt = malloc(n);
    if (txt != NULL)
        snprintf(txt, n, "v=DKIM1; k=%s; p=%s",
                 k->alg == DKIM_ALG_RSA_SHA256 ? "rsa" : "ed25519", b64);
    free(b64);
    return txt;
}

/* ---- the field, folded ---------------------------------------------------------------- */

struct dkim_field {
    struct buf b;
    size_t     col;  /* columns on the current line */
    size_t     h_at; /* offset of h='s first name */
    int        failed;
};

static void
dkim_put(struct dkim_field *f, const char *p, size_t n)
{
    if (buf_append(&f->b, p, n, DKIM_BUF_CAP) != 0)
        f->failed = 1;
    f->col += n;
}

/* A token after a space, or at the start of a new line when it would pass the limit.
 * space false: glued to what precedes unless folded (h='s ":name", RFC 6376 3.5 allows
 * FWS around its colons). */
static void
dkim_token(struct dkim_field *f, const char *tok, size_t n, bool space)
{
    if (f->col + (space ? 1 : 0) + n > DKIM_LINE_MAX) {
        dkim_put(f, "\r\n\t", 3);
        f->col = 8; /* a tab: counted as a terminal shows it */
    } else if (space) {
        dkim_put(f, " ", 1);
    }
    dkim_put(f, tok, n);
}

/* "tag=value;" as one token. */
static void
dkim_tag(struct dkim_field *f, const char *tag, const char *v)
{
    char tok[600];
    int  n = snprintf(tok, sizeof(tok), "%s%s;", tag, v);

    dkim_token(f, tok, n > 0 && (size_t)n < sizeof(tok) ? (size_t)n : 0, true);
}

/* The signature's base64 after "b=", in pieces that fill each line. */
static void
dkim_fill(struct dkim_field *f, const char *b64)
{
    size_t n = strlen(b64), room;

    while (n > 0) {
        room = f->col < DKIM_LINE_MAX ? DKIM_LINE_MAX - f->col : 0;
        if (room == 0) {
            dkim_put(f, "\r\n\t", 3);
            f->col = 8;
            continue;
        }
        room = room < n ? room : n;
        dkim_put(f, b64, room);
        b64 += room;
        n -= room;
    }
}

/* ---- hashing -------------------------------------------------------------------------- */

static void
dkim_hash_cb(void *arg, const char *p, size_t n)
{
    EVP_DigestUpdate(arg, p, n);
}

/* SHA-256 of the relaxed body into bh (32 octets). */
static int
dkim_body_hash(const char *body, size_t n, unsigned char bh[32])
{
    EVP_MD_CTX            *md = EVP_MD_CTX_new();
    struct dkim_canon_body c;
    int                    ok;

    if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(md);
        return -1;
    }
    dkim_canon_body_init(&c);
    dkim_canon_body_feed(&c, body, n, dkim_hash_cb, md);
    dkim_canon_body_finish(&c, dkim_hash_cb, md);
    ok = EVP_DigestFinal_ex(md, bh, NULL) == 1;
    EVP_MD_CTX_free(md);
    return ok ? 0 : -1;
}

/* One field in relaxed form into the hash; scratch has room for it. */
static void
dkim_hash_field(EVP_MD_CTX *md, const char *msg, const struct message_header *h, bool crlf,
                char *scratch)
{
    size_t n = dkim_canon_header(msg + h->start, h->name_len, msg + h->value,
                                 h->end - h->value, crlf, scratch);

    EVP_DigestUpdate(md, scratch, n);
}

/* A name h= can carry: RFC 6376's hdr-name is ftext, but ';' would end the tag; letters,
 * digits, '-', '_', '.' are what real fields use. */
static bool
dkim_is_token(const char *s, size_t n)
{
    size_t i;

    if (n == 0 || n > 70)
        return false;
    for (i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_' || s[i] == '.'))
            return false;
    return true;
}

/* The names of h= (lowercase, ':'-separated) into f, one token each: every field the
 * set signs, bottom-up as section 5.4.2 picks them, and one more "from". */
static void
dkim_put_h(struct dkim_field *f, const char *msg, const struct message_header *idx, size_t n,
           const char *const *names)
{
    char   tok[80];
    size_t i, k, t;
    bool   first = true;

    for (i = n; i-- > 0;) {
        const char *name = msg + idx[i].start;

        if (!dkim_canon_is_signed(name, idx[i].name_len, names) || !dkim_is_token(name, idx[i].name_len))
            continue;
        t = 0;
        if (first)
            memcpy(tok, "h=", 2), t = 2;
        else
            tok[t++] = ':';
        for (k = 0; k < idx[i].name_len; k++)
            tok[t++] = (char)(name[k] >= 'A' && name[k] <= 'Z' ? name[k] + 32 : name[k]);
        dkim_token(f, tok, t, first);
        if (first)
            f->h_at = buf_used(&f->b) - t + 2;
        first = false;
    }
    dkim_token(f, first ? "h=from" : ":from", first ? 6 : 5, first);
    if (first)
        f->h_at = buf_used(&f->b) - 4;
    dkim_put(f, ";", 1);
}

/* The header hash: the fields h= names (section 5.4.2), then this field without its CRLF
 * and with b= empty (section 3.7). hdr is the field so far: "DKIM-Signature: ... b=". */
static int
dkim_header_hash(const char *msg, const struct message_header *idx, size_t n, const char *hdr,
                 size_t hdr_len, size_t h_at, unsigned char out[32])
{
    EVP_MD_CTX           *md = EVP_MD_CTX_new();
    bool                 *used = calloc(n ? n : 1, sizeof(*used));
    char                 *scratch = NULL;
    size_t                i, most = hdr_len;
    const char           *p, *colon, *end = hdr + hdr_len;
    int                   rc = -1;
    long                  at;
    struct message_header self;

    for (i = 0; i < n; i++)
        most = idx[i].end - idx[i].start > most ? idx[i].end - idx[i].start : most;
    scratch = malloc(most + 3);
    if (md == NULL || used == NULL || scratch == NULL ||
        EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
        goto out;
    /* walk h= as written: "h=a:b:c;" with folding between names */
    p = hdr + h_at;
    while (p < end && *p != ';') {
        const char *name = p;

        while (p < end && *p != ':' && *p != ';' && *p != '\r')
            p++;
        at = dkim_canon_pick(msg, idx, n, used, name, (size_t)(p - name));
        if (at >= 0)
            dkim_hash_field(md, msg, &idx[at], true, scratch);
        while (p < end && (*p == ':' || *p == '\r' || *p == '\n' || *p == '\t' || *p == ' '))
            p++;
    }
    colon = memchr(hdr, ':', hdr_len);
    self.start = 0;
    self.name_len = (size_t)(colon - hdr);
    self.value = self.name_len + 1;
    self.end = hdr_len;
    dkim_hash_field(md, hdr, &self, false, scratch);
    rc = EVP_DigestFinal_ex(md, out, NULL) == 1 ? 0 : -1;
out:
    EVP_MD_CTX_free(md);
    free(used);
    free(scratch);
    return rc;
}

/* The signature over the header hash: RSA signs it as a SHA-256 DigestInfo (what
 * EVP_DigestSign over the data would), Ed25519 signs the 32 octets themselves (PureEdDSA,
 * RFC 8463 section 3). Base64, heap string, or NULL. */
static char *
dkim_signature(const struct dkim_key *k, const unsigned char hash[32])
{
    unsigned char *sig = NULL;
    size_t         n = 0;
    char          *b64 = NULL;
    EVP_PKEY_CTX  *pc = NULL;
    EVP_MD_CTX    *md = NULL;

    if (k->alg == DKIM_ALG_RSA_SHA256) {
        pc = EVP_PKEY_CTX_new(k->pkey, NULL);
        if (pc == NULL || EVP_PKEY_sign_init(pc) != 1 ||
            EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING) != 1 ||
            EVP_PKEY_CTX_set_signature_md(pc, EVP_sha256()) != 1 ||
            EVP_PKEY_sign(pc, NULL, &n, hash, 32) != 1 || (sig = malloc(n)) == NULL ||
            EVP_PKEY_sign(pc, sig, &n, hash, 32) != 1)
            goto out;
    } else {
        md = EVP_MD_CTX_new();
        n = 64;
        if (md == NULL || (sig = malloc(n)) == NULL ||
            EVP_DigestSignInit(md, NULL, NULL, NULL, k->pkey) != 1 ||
            EVP_DigestSign(md, sig, &n, hash, 32) != 1)
            goto out;
    }
    b64 = dkim_base64(sig, n);
out:
    EVP_PKEY_CTX_free(pc);
    EVP_MD_CTX_free(md);
    free(sig);
    return b64;
}

/* ---- the three steps ------------------------------------------------------------------ */

struct dkim_draft {
    const struct dkim_key *key;  /* borrows */
    struct dkim_field      f;    /* the field up to "b=", then whole */
    unsigned char          hh[32]; /* the header hash: what the key signs */
    char                  *b64;  /* owns: the signature, once dkim_draft_sign made it */
};

#define DKIM_ERR_SIGN "signing failed (out of memory or OpenSSL error)"

struct dkim_draft *
dkim_draft_new(const struct dkim_signer *s, const char *msg, size_t len, long long now,
               char *err, size_t errlen)
{
    struct dkim_draft     *d = calloc(1, sizeof(*d));
    struct message_header *idx = NULL;
    size_t                 n = message_header_index(msg, len, NULL, 0), body;
    unsigned char          bh[32];
    char                  *bh64 = NULL, t[32];

    body = message_body_offset(msg, len);
    idx = malloc((n ? n : 1) * sizeof(*idx));
    if (d == NULL || idx == NULL || dkim_body_hash(msg + body, len - body, bh) != 0 ||
        (bh64 = dkim_base64(bh, 32)) == NULL)
        goto fail;
    d->key = s->key;
    message_header_index(msg, len, idx, n);
    dkim_put(&d->f, "DKIM-Signature: v=1;", 20);
    dkim_tag(&d->f, "a=", dkim_alg_name(s->key->alg));
    dkim_tag(&d->f, "c=", "relaxed/relaxed");
    dkim_tag(&d->f, "d=", s->domain);
    dkim_tag(&d->f, "s=", s->selector);
    snprintf(t, sizeof(t), "%lld", now);
    dkim_tag(&d->f, "t=", t);
    dkim_put_h(&d->f, msg, idx, n, s->headers);
    dkim_tag(&d->f, "bh=", bh64);
    dkim_token(&d->f, "b=", 2, true);
    if (d->f.failed || dkim_header_hash(msg, idx, n, buf_head(&d->f.b), buf_used(&d->f.b),
                                        d->f.h_at, d->hh) != 0)
        goto fail;
    free(idx);
    free(bh64);
    return d;
fail:
    snprintf(err, errlen, DKIM_ERR_SIGN);
    free(idx);
    free(bh64);
    dkim_draft_free(d);
    return NULL;
}

int
dkim_draft_sign(struct dkim_draft *d)
{
    free(d->b64);
    d->b64 = dkim_signature(d->key, d->hh);
    return d->b64 != NULL ? 0 : -1;
}

enum dkim_alg
dkim_draft_alg(const struct dkim_draft *d)
{
    return d->key->alg;
}

int
dkim_draft_finish(struct dkim_draft *d, char **out, size_t *out_len, char *err, size_t errlen)
{
    if (d->b64 == NULL || d->f.b.data == NULL)
        goto fail;
    dkim_fill(&d->f, d->b64);
    dkim_put(&d->f, "\r\n", 2);
    if (d->f.failed)
        goto fail;
    *out_len = buf_used(&d->f.b);
    *out = buf_head(&d->f.b); /* off is 0: nothing was consumed; the memory is the caller's */
    d->f.b = (struct buf){0};
    return 0;
fail:
    snprintf(err, errlen, DKIM_ERR_SIGN);
    return -1;
}

void
dkim_draft_free(struct dkim_draft *d)
{
    if (d == NULL)
        return;
    buf_cleanup(&d->f.b);
    free(d->b64);
    free(d);
}

int
dkim_sign(const struct dkim_signer *s, const char *msg, size_t len, long long now, char **out,
          size_t *out_len, char *err, size_t errlen)
{
    struct dkim_draft *d = dkim_draft_new(s, msg, len, now, err, errlen);
    int                rc = -1;

    if (d == NULL)
        return -1;
    if (dkim_draft_sign(d) != 0)
        snprintf(err, errlen, DKIM_ERR_SIGN);
    else
        rc = dkim_draft_finish(d, out, out_len, err, errlen);
    dkim_draft_free(d);
    return rc;
}
