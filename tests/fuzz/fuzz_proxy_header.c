/* tests/fuzz/fuzz_proxy_header.c: libFuzzer target for core/proto/proxy_header.c.
 * Input: the first octets a client sends on a proxy_protocol listener, copied into a
 * heap block of exactly its size so that ASan sees any read past its end.
 * Besides "no crash", it checks what proxy_header.h promises: a header is never longer
 * than the bounds, AGAIN asks for more octets but no more than a header can take, OK on
 * n octets is OK with the same result on exactly the header's octets, and an address
 * given is one inet_pton reads back in its family. */
#include "proto/proxy_header.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define FUZZ_ASSERT(e)                                                                   \
    do {                                                                                 \
        if (!(e))                                                                        \
            __builtin_trap();                                                            \
    } while (0)

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct proxy_header h, again;
    size_t              used = 0, used2 = 0;
    const char         *why;
    unsigned char      *p = malloc(size ? size : 1), bin[16];
    enum proxy_header_rc rc;

    FUZZ_ASSERT(p != NULL);
    if (size > 0)
        memcpy(p, data, size);
    rc = proxy_header_parse(p, size, &h, &used, &why);
    if (rc == PROXY_HEADER_AGAIN)
        FUZZ_ASSERT(used > size && used <= PROXY_HEADER_V2_MAX);
    if (rc == PROXY_HEADER_BAD)
        FUZZ_ASSERT(why != NULL && why[0] != '\0');
    if (rc == PROXY_HEADER_OK) {
        FUZZ_ASSERT(used <= size && used >= PROXY_HEADER_MIN);
        FUZZ_ASSERT(used <= (h.version == 1 ? PROXY_HEADER_V1_MAX : PROXY_HEADER_V2_MAX));
        FUZZ_ASSERT(proxy_header_parse(p, used, &again, &used2, &why) == PROXY_HEADER_OK);
        FUZZ_ASSERT(used2 == used && memcmp(&h, &again, sizeof(h)) == 0);
        if (!h.local) {
            FUZZ_ASSERT(h.family == AF_INET || h.family == AF_INET6);
            FUZZ_ASSERT(inet_pton(h.family, h.src, bin) == 1);
            FUZZ_ASSERT(h.src_port >= 0 && h.src_port <= 65535);
        }
    }
    free(p);
    return 0;
}
