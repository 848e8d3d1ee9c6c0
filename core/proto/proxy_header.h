/* core/proto/proxy_header.h: HAProxy's PROXY protocol header, v1 (text) and v2 (binary),
 * told apart by their signatures (haproxy doc/proxy-protocol.txt). Bytes in, struct out:
 * no sockets, no timers. Deciding whom to believe (proxy_trusted), the deadline and
 * what the address is used for belong to the caller (smtp/smtp_proxy.c).
 *
 * The parser never asks for a byte past the header's end, so that a caller reading
 * exactly what it is told leaves the client's first bytes (a TLS ClientHello) unread. */
#ifndef SLUICE_PROXY_HEADER_H
#define SLUICE_PROXY_HEADER_H

#include <stdbool.h>
#include <stddef.h>

#define PROXY_HEADER_V1_MAX  107       /* section 2.1: the longest TCP6 line with CRLF */
#define PROXY_HEADER_V2_MAX  (16 + 216) /* fixed part + the largest address block we accept
                                         * (AF_UNIX's); TLVs must fit in it too */
#define PROXY_HEADER_MIN     15        /* "PROXY UNKNOWN\r\n"; any header is this long */
#define PROXY_HEADER_ADDR_MAX 46       /* INET6_ADDRSTRLEN */

enum proxy_header_rc {
    PROXY_HEADER_OK,    /* *out filled; the header is the first *used octets */
    PROXY_HEADER_AGAIN, /* incomplete: have *used octets in total, then call again */
    PROXY_HEADER_BAD,   /* not a header we accept: *reason (static text) says why */
};

struct proxy_header {
    int  version;   /* 1 or 2 */
    bool local;     /* v1 UNKNOWN, v2 LOCAL, or v2 PROXY over AF_UNSPEC/AF_UNIX: no
                     * client address; the connection's own addresses stand */
    int  family;    /* AF_INET or AF_INET6 when !local, else AF_UNSPEC */
    char src[PROXY_HEADER_ADDR_MAX]; /* the client, as inet_ntop writes it; "" if local */
    int  src_port;
    char dst[PROXY_HEADER_ADDR_MAX]; /* the address the client connected to */
    int  dst_port;
};

/* Parse the header at the start of p[0..n). On PROXY_HEADER_AGAIN *used is the total
 * number of octets to have before the next call (at least n + 1, never past the header's
 * end); on PROXY_HEADER_OK the header's length; on PROXY_HEADER_BAD undefined. A v1
 * header is read up to its CRLF one octet at a time past PROXY_HEADER_MIN. */
enum proxy_header_rc proxy_header_parse(const void *p, size_t n, struct proxy_header *out,
                                        size_t *used, const char **reason);

#endif
