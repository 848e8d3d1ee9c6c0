/* core/proto/cidr.h: IP networks written as CIDR ("10.0.0.0/8", "::1/128", or a bare
 * address meaning one host) and whether an address is inside one. Used for the
 * listeners' proxy_trusted; parsing is done once, by the configuration loader. */
#ifndef SLUICE_CIDR_H
#define SLUICE_CIDR_H

#include <stdbool.h>

struct cidr {
    int           family; /* AF_INET or AF_INET6 */
    unsigned char addr[16]; /* network order; bits past prefix are zero */
    int           prefix;   /* 0..32 or 0..128 */
};

/* "a.b.c.d/n", "x::y/n" or a bare address (/32, /128). 0, or -1 when s is not one
 * (host bits set past the prefix count as an error: "10.0.0.1/8" is a typo). */
int  cidr_parse(const char *s, struct cidr *out);
/* Is the textual address ip ("192.0.2.1", "2001:db8::1") inside c? An IPv4 address is
 * never inside an IPv6 network, nor the reverse. False when ip is not an address. */
bool cidr_contains(const struct cidr *c, const char *ip);

#endif
