/* core/cmd/cmd_dkim.c: `sluice dkim keygen --domain D --selector S [--algorithm rsa|ed25519]
 * [--bits 2048] --out FILE`: a new DKIM key written to FILE (0600, never over an existing
 * file), and the DNS TXT record to publish for it on stdout (docs/dkim.md). The key is read
 * back through proto/dkim_sign.c, the code that signs with it, so what is printed is what
 * `sluice check` will accept. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "cmd/cmd.h"
#include "proto/dkim_sign.h"

#define CMD_DKIM_TXT_CHUNK 250 /* a TXT record's strings are at most 255 octets */

static int
cmd_dkim_usage(FILE *f)
{
    fprintf(f, "usage: sluice dkim keygen --domain DOMAIN --selector SELECTOR\n"
               "                          [--algorithm rsa|ed25519] [--bits 2048] --out FILE\n"
               "writes the private key to FILE (mode 0600; FILE must not exist) and prints\n"
               "the DNS TXT record to publish at SELECTOR._domainkey.DOMAIN\n");
    return f == stdout ? 0 : EXIT_USAGE;
}

/* Letters, digits, '-' and '.', not empty: enough to refuse what DNS would not carry;
 * `sluice check` applies the configuration's own rules. */
static bool
cmd_dkim_is_name(const char *s)
{
    if (*s == '\0' || *s == '.' || *s == '-')
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '.'))
            return false;
    return true;
}

/* The key as PKCS#8 PEM, heap string, or NULL. */
static char *
cmd_dkim_pem(EVP_PKEY *pkey, size_t *len)
{
    BIO  *bio = BIO_new(BIO_s_mem());
    char *p, *out = NULL;
    long  n;

    if (bio != NULL && PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL) == 1 &&
        (n = BIO_get_mem_data(bio, &p)) > 0 && (out = malloc((size_t)n)) != NULL) {
        memcpy(out, p, (size_t)n);
        *len = (size_t)n;
    }
    BIO_free(bio);
    return out;
}

/* The PEM into a new file of mode 0600 (O_EXCL: an existing key is never replaced). */
static int
cmd_dkim_write(const char *path, const char *pem, size_t len)
{
    int     fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    ssize_t w;

    if (fd < 0) {
        fprintf(stderr, "sluice dkim keygen: %s: %s\n", path, strerror(errno));
        return -1;
    }
    w = write(fd, pem, len);
    if (w != (ssize_t)len || fsync(fd) != 0 || close(fd) != 0) {
        fprintf(stderr, "sluice dkim keygen: %s: write failed\n", path);
        unlink(path);
        return -1;
    }
    return 0;
}

/* "s._domainkey.d. IN TXT ( "..." "..." )": the record in zone-file form, split into
 * strings of CMD_DKIM_TXT_CHUNK octets that a resolver joins back. */
static void
cmd_dkim_print(const char *domain, const char *selector, const char *txt)
{
    size_t n = strlen(txt), i;

    printf("%s._domainkey.%s. IN TXT (", selector, domain);
    for (i = 0; i < n; i += CMD_DKIM_TXT_CHUNK)
        printf(" \"%.*s\"", (int)(n - i < CMD_DKIM_TXT_CHUNK ? n - i : CMD_DKIM_TXT_CHUNK),
               txt + i);
    printf(" )\n");
}

static int
cmd_dkim_keygen(const char *domain, const char *selector, const char *alg, int bits,
                const char *out)
{
    EVP_PKEY        *pkey;
    struct dkim_key *key = NULL;
    char            *pem = NULL, *txt = NULL, err[256];
    size_t           len = 0;
    int              rc = EXIT_CONFIG;

    if (strcmp(alg, "rsa") == 0)
        pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
    else
        pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    if (pkey == NULL || (pem = cmd_dkim_pem(pkey, &len)) == NULL) {
        fprintf(stderr, "sluice dkim keygen: key generation failed\n");
        goto out;
    }
    key = dkim_key_new(pem, len, err, sizeof(err));
    if (key == NULL) {
        fprintf(stderr, "sluice dkim keygen: %s\n", err);
        goto out;
    }
    txt = dkim_key_dns_txt(key);
    if (txt == NULL || cmd_dkim_write(out, pem, len) != 0)
        goto out;
    cmd_dkim_print(domain, selector, txt);
    fprintf(stderr, "sluice dkim keygen: wrote %s (%s, %d bits); in the configuration:\n"
                    "  domains = { ['%s'] = { dkim = { selector = '%s', key_file = '%s' } } }\n",
            out, dkim_alg_name(dkim_key_alg(key)), dkim_key_bits(key), domain, selector, out);
    rc = 0;
out:
    if (pem != NULL)
        explicit_bzero(pem, len);
    free(pem);
    free(txt);
    dkim_key_free(key);
    EVP_PKEY_free(pkey);
    return rc;
}

int
cmd_dkim_main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "domain", required_argument, NULL, 'd' },
        { "selector", required_argument, NULL, 's' },
        { "algorithm", required_argument, NULL, 'a' },
        { "bits", required_argument, NULL, 'b' },
        { "out", required_argument, NULL, 'o' },
        { NULL, 0, NULL, 0 },
    };
    const char *domain = NULL, *selector = NULL, *alg = "rsa", *out = NULL;
    char       *end;
    long        bits = 2048;
    int         c;

    if (cmd_is_help(argc, argv))
        return cmd_dkim_usage(stdout);
    if (argc < 2 || strcmp(argv[1], "keygen") != 0)
        return cmd_dkim_usage(stderr);
    argc--, argv++;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'd': domain = optarg; break;
        case 's': selector = optarg; break;
        case 'a': alg = optarg; break;
        case 'o': out = optarg; break;
        case 'b':
            bits = strtol(optarg, &end, 10);
            if (*end != '\0' || bits < DKIM_RSA_MIN_BITS || bits > 8192) {
                fprintf(stderr, "sluice dkim keygen: --bits: from %d to 8192\n",
                        DKIM_RSA_MIN_BITS);
                return EXIT_USAGE;
            }
            break;
        default: return cmd_dkim_usage(stderr);
        }
    }
    if (optind != argc || domain == NULL || selector == NULL || out == NULL ||
        !cmd_dkim_is_name(domain) || !cmd_dkim_is_name(selector) ||
        (strcmp(alg, "rsa") != 0 && strcmp(alg, "ed25519") != 0))
        return cmd_dkim_usage(stderr);
    return cmd_dkim_keygen(domain, selector, alg, (int)bits, out);
}
