/* core/proto/cidr.c: CIDR networks and membership; see cidr.h. */
#include "proto/cidr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

/* Does a and b agree on their first bits bits? */
static bool
cidr_prefix_equal(const unsigned char *a, const unsigned char *b, int bits)
{
    int whole = bits / 8, rest = bits % 8;

    if (memcmp(a, b, (size_t)whole) != 0)
        return false;
    if (rest == 0)
        return true;
    return ((a[whole] ^ b[whole]) & (0xff << (8 - rest)) & 0xff) == 0;
}

int
cidr_parse(const char *s, struct cidr *out)
{
    char          text[64];
    const char   *slash = strchr(s, '/');
    size_t        alen = slash ? (size_t)(slash - s) : strlen(s);
    int           max;

    memset(out, 0, sizeof(*out));
    if (alen == 0 || alen >= sizeof(text))
        return -1;
    memcpy(text, s, alen);
    text[alen] = '\0';
    if (inet_pton(AF_INET, text, out->addr) == 1)
        out->family = AF_INET;
    else if (inet_pton(AF_INET6, text, out->addr) == 1)
        out->family = AF_INET6;
    else
        return -1;
    max = out->family == AF_INET ? 32 : 128;
    out->prefix = max;
    if (slash != NULL) {
        const char *d = slash + 1;
        int         v = 0;

        if (*d == '\0' || strlen(d) > 3 || (d[0] == '0' && d[1] != '\0'))
            return -1;
        for (; *d; d++) {
            if (*d < '0' || *d > '9')
                return -1;
            v = v * 10 + (*d - '0');
        }
        if (v > max)
            return -1;
        out->prefix = v;
    }
    /* Host bits must be zero: compare the address with itself masked. */
    {
        unsigned char masked[16];
        int           bytes = max / 8;

        memcpy(masked, out->addr, 16);
        for (int bit = out->prefix; bit < max; bit++)
            masked[bit / 8] &= (unsigned char)~(0x80 >> (bit % 8));
        if (memcmp(masked, out->addr, (size_t)bytes) != 0)
            return -1;
    }
    return 0;
}

bool
cidr_contains(const struct cidr *c, const char *ip)
{
    unsigned char a[16];

    if (inet_pton(c->family, ip, a) != 1)
        return false;
    return cidr_prefix_equal(a, c->addr, c->prefix);
}
