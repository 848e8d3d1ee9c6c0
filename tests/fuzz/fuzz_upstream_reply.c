/* tests/fuzz/fuzz_upstream_reply.c: hostile upstream replies through the reply parser
 * and the EHLO keyword parser. Invariants: consumption stays inside the input, a parsed
 * code is 200..559, the text is printable ASCII and NUL-terminated, and an enhanced code
 * is empty or well-formed (its class may disagree with the code: relay_job.c fixes
 * that before a client sees it). */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "smtp/smtp_reply.h"
#include "relay/upstream_reply.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    size_t      off = 0;

    while (off < size) {
        struct upstream_reply r;
        size_t                used = 0;
        unsigned              caps = 0;
        unsigned long long    size_max = 0;
        enum reply_rc         rc = upstream_reply_parse(p + off, size - off, &r, &used);

        if (rc != REPLY_OK)
            break;
        assert(used > 0 && used <= size - off);
        assert(r.code >= 200 && r.code <= 559);
        assert(strlen(r.text) < sizeof(r.text));
        for (const char *t = r.text; *t; t++)
            assert(*t >= 0x20 && *t < 0x7f);
        assert(r.enhanced[0] == '\0' || smtp_reply_is_enhanced(r.enhanced));
        upstream_reply_caps(&r, &caps, &size_max);
        off += used;
    }
    return 0;
}
