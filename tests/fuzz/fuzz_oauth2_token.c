/* tests/fuzz/fuzz_oauth2_token.c: hostile token endpoint answers through
 * oauth2_token_parse. Invariants: a token it returns is a NUL-terminated b64token (it goes
 * into an SMTP command line), an error code is printable ASCII without quotes. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/oauth2_token.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct oauth2_token_answer a;
    enum oauth2_token_rc              rc = oauth2_token_parse((const char *)data, size, &a);

    if (rc == OAUTH2_TOKEN_OK) {
        assert(oauth2_token_is_b64token(a.access_token, strlen(a.access_token)));
        assert(a.expires_in >= -1);
    } else {
        assert(a.access_token[0] == '\0');
    }
    for (const char *p = a.error; *p != '\0'; p++)
        assert(*p >= 0x20 && *p < 0x7f && *p != '"');
    return 0;
}
