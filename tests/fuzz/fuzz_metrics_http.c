/* tests/fuzz/fuzz_metrics_http.c: libFuzzer target for core/daemon/metrics_http.c.
 * Input: what a client sends the metrics listener, copied into a heap block of its exact
 * size so that ASan sees any read past its end. Besides "no crash", it checks what
 * metrics_http.h promises: on OK the method and target lie inside the input, the method
 * is non-empty and the target has no SP or CTL; a shorter prefix of an OK input is never
 * TOO_LONG. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/metrics_http.h"

#define FUZZ_ASSERT(e)                                                                   \
    do {                                                                                 \
        if (!(e))                                                                        \
            __builtin_trap();                                                            \
    } while (0)

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char                       *p = malloc(size ? size : 1);
    struct metrics_http_request rq;
    enum metrics_http_rc        rc;

    FUZZ_ASSERT(p != NULL);
    if (size > 0)
        memcpy(p, data, size);
    rc = metrics_http_parse(p, size, &rq);
    if (rc == METRICS_HTTP_OK) {
        FUZZ_ASSERT(rq.method == p && rq.method_len > 0);
        FUZZ_ASSERT(rq.target > p && rq.target + rq.target_len <= p + size);
        for (size_t i = 0; i < rq.target_len; i++)
            FUZZ_ASSERT((unsigned char)rq.target[i] > ' ' && rq.target[i] != 0x7f);
        (void)metrics_http_route(&rq);
        if (size > 0)
            FUZZ_ASSERT(metrics_http_parse(p, size - 1, &rq) != METRICS_HTTP_TOO_LONG);
    }
    if (size < METRICS_HTTP_MAX_REQUEST)
        FUZZ_ASSERT(rc != METRICS_HTTP_TOO_LONG);
    free(p);
    return 0;
}
