/* bench/dkim_cost.c: instructions (under callgrind) and time of one DKIM signature over a
 * typical 2 KB message, per key type: what core/smtp/smtp_dkim.c adds to a relayed message.
 * usage: sluice-dkim-bench KEYFILE N. Run by bench/dkim_cost.sh. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proto/dkim_sign.h"

static char *
slurp(const char *path, size_t *len)
{
    FILE  *f = fopen(path, "rb");
    char  *p = malloc(1 << 16);

    if (f == NULL || p == NULL)
        exit(2);
    *len = fread(p, 1, 1 << 16, f);
    fclose(f);
    return p;
}

int
main(int argc, char **argv)
{
    struct dkim_signer s = {.domain = "example.org", .selector = "bench"};
    struct dkim_key   *key;
    char               msg[4096], err[256], *pem, *out;
    size_t             len, n, i, o;
    long               count = argc > 2 ? atol(argv[2]) : 100;
    struct timespec    a, b;

    if (argc < 3)
        return 64;
    pem = slurp(argv[1], &len);
    s.key = key = dkim_key_new(pem, len, err, sizeof(err));
    if (key == NULL) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    o = (size_t)snprintf(msg, sizeof(msg),
                         "Received: from client.test ([127.0.0.1])\r\n\tby relay.test (sluice)"
                         " with ESMTPSA id 1.1;\r\n\tMon, 7 Dec 2026 10:00:00 +0000\r\n"
                         "From: Alice <alice@example.org>\r\nTo: bob@example.com\r\n"
                         "Subject: benchmark message\r\nDate: Mon, 7 Dec 2026 10:00:00 +0000\r\n"
                         "Message-ID: <bench@example.org>\r\nMIME-Version: 1.0\r\n"
                         "Content-Type: text/plain; charset=utf-8\r\n\r\n");
    while (o + 72 < 2048) /* a 2 KB message, as bench/run.sh sends */
        o += (size_t)snprintf(msg + o, sizeof(msg) - o, "%.70s\r\n",
                              "The quick brown fox jumps over the lazy dog, again and again.   ");
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (i = 0; i < (size_t)count; i++) {
        if (dkim_sign(&s, msg, o, 1796689726, &out, &n, err, sizeof(err)) != 0)
            return 1;
        free(out);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("%s %d bits: %.1f us per signature (%ld)\n", dkim_alg_name(dkim_key_alg(s.key)),
           dkim_key_bits(s.key),
           ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / 1e3 /
               (double)count,
           count);
    dkim_key_free(key);
    free(pem);
    return 0;
}
