/* core/proto/proxy_header.c: the PROXY protocol header, v1 and v2; see proxy_header.h.
 * Spec: haproxy doc/proxy-protocol.txt (sections 2.1 and 2.2). Stricter than the spec
 * where it leaves room: v1 ports without leading zeros, v2 TLVs must frame exactly. */
#include "proto/proxy_header.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

static const unsigned char proxy_header_v2_sig[12] = {
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
};
static const char proxy_header_v1_sig[] = "PROXY ";

#define PROXY_V2_FIXED 16

static enum proxy_header_rc
proxy_header_bad(const char **reason, const char *why)
{
    *reason = why;
    return PROXY_HEADER_BAD;
}

/* "0".."65535", no sign, no leading zero. -1 if not. */
static int
proxy_header_port(const char *s, size_t n)
{
    int v = 0;

    if (n == 0 || n > 5 || (s[0] == '0' && n > 1))
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v <= 65535 ? v : -1;
}

/* The next space-separated field of [*p, end): copied NUL-terminated into out. */
static int
proxy_header_field(const char **p, const char *end, bool last, char *out, size_t outlen)
{
    const char *s = *p, *e = s;

    while (e < end && *e != ' ')
        e++;
    if (e == s || (size_t)(e - s) >= outlen || (last ? e != end : e == end))
        return -1;
    memcpy(out, s, (size_t)(e - s));
    out[e - s] = '\0';
    *p = last ? e : e + 1;
    return 0;
}

/* "TCP4 src dst sport dport" or "TCP6 ..." (the text between "PROXY " and CRLF). */
static enum proxy_header_rc
proxy_header_v1_fields(const char *s, const char *end, struct proxy_header *out,
                       const char **reason)
{
    char          proto[8], sport[8], dport[8];
    unsigned char bin[16];

    if (proxy_header_field(&s, end, false, proto, sizeof(proto)) != 0)
        return proxy_header_bad(reason, "v1: bad protocol");
    if (strcmp(proto, "TCP4") == 0)
        out->family = AF_INET;
    else if (strcmp(proto, "TCP6") == 0)
        out->family = AF_INET6;
    else
        return proxy_header_bad(reason, "v1: protocol is not TCP4, TCP6 or UNKNOWN");
    if (proxy_header_field(&s, end, false, out->src, sizeof(out->src)) != 0 ||
        proxy_header_field(&s, end, false, out->dst, sizeof(out->dst)) != 0 ||
        proxy_header_field(&s, end, false, sport, sizeof(sport)) != 0 ||
        proxy_header_field(&s, end, true, dport, sizeof(dport)) != 0)
        return proxy_header_bad(reason, "v1: expected 4 fields after the protocol");
    if (inet_pton(out->family, out->src, bin) != 1 || inet_pton(out->family, out->dst, bin) != 1)
        return proxy_header_bad(reason, "v1: address does not match the protocol");
    out->src_port = proxy_header_port(sport, strlen(sport));
    out->dst_port = proxy_header_port(dport, strlen(dport));
    if (out->src_port < 0 || out->dst_port < 0)
        return proxy_header_bad(reason, "v1: bad port");
    return PROXY_HEADER_OK;
}

static enum proxy_header_rc
proxy_header_v1(const char *p, size_t n, struct proxy_header *out, size_t *used,
                const char **reason)
{
    size_t i;

    out->version = 1;
    for (i = 0; i < n; i++) {
        if (p[i] == '\r')
            break;
        if (p[i] < 0x20 || p[i] > 0x7e)
            return proxy_header_bad(reason, "v1: control or non-ASCII octet");
    }
    if (i >= PROXY_HEADER_V1_MAX - 1) /* the CR, if any, is past the longest header's */
        return proxy_header_bad(reason, "v1: no CRLF within 107 octets");
    if (i == n) {
        *used = n + 1 > PROXY_HEADER_MIN ? n + 1 : PROXY_HEADER_MIN;
        return PROXY_HEADER_AGAIN;
    }
    if (i + 1 == n) {
        *used = n + 1;
        return PROXY_HEADER_AGAIN;
    }
    if (p[i + 1] != '\n')
        return proxy_header_bad(reason, "v1: CR without LF");
    *used = i + 2;
    /* Section 2.1: after UNKNOWN the receiver ignores the rest of the line. */
    if (i >= 13 && memcmp(p + 6, "UNKNOWN", 7) == 0 && (i == 13 || p[13] == ' ')) {
        out->local = true;
        return PROXY_HEADER_OK;
    }
    return proxy_header_v1_fields(p + 6, p + i, out, reason);
}

/* Type-length-value vectors after the addresses: skipped, but they must frame exactly. */
static int
proxy_header_tlvs(const unsigned char *p, size_t n)
{
    while (n > 0) {
        size_t len;

        if (n < 3)
            return -1;
        len = (size_t)p[1] << 8 | p[2];
        if (len > n - 3)
            return -1;
        p += 3 + len;
        n -= 3 + len;
    }
    return 0;
}

static enum proxy_header_rc
proxy_header_v2_addrs(const unsigned char *p, size_t len, struct proxy_header *out,
                      const char **reason)
{
    size_t alen;

    switch (p[13]) {
    case 0x00: /* UNSPEC: section 2.2 says ignore the address block */
    case 0x31: /* UNIX stream: no IP address to use */
        out->local = true;
        return PROXY_HEADER_OK;
    case 0x11:
        out->family = AF_INET;
        alen = 12;
        break;
    case 0x21:
        out->family = AF_INET6;
        alen = 36;
        break;
    case 0x12:
    case 0x22:
    case 0x32:
        return proxy_header_bad(reason, "v2: datagram transport");
    default:
        return proxy_header_bad(reason, "v2: unknown address family");
    }
    if (len < alen)
        return proxy_header_bad(reason, "v2: address block shorter than its family");
    p += PROXY_V2_FIXED;
    if (proxy_header_tlvs(p + alen, len - alen) != 0)
        return proxy_header_bad(reason, "v2: TLVs do not fit the header");
    alen = (alen - 4) / 2;
    inet_ntop(out->family, p, out->src, sizeof(out->src));
    inet_ntop(out->family, p + alen, out->dst, sizeof(out->dst));
    out->src_port = p[2 * alen] << 8 | p[2 * alen + 1];
    out->dst_port = p[2 * alen + 2] << 8 | p[2 * alen + 3];
    return PROXY_HEADER_OK;
}

static enum proxy_header_rc
proxy_header_v2(const unsigned char *p, size_t n, struct proxy_header *out, size_t *used,
                const char **reason)
{
    size_t len;

    out->version = 2;
    if (n < PROXY_V2_FIXED) {
        *used = PROXY_V2_FIXED;
        return PROXY_HEADER_AGAIN;
    }
    if ((p[12] >> 4) != 2)
        return proxy_header_bad(reason, "v2: version is not 2");
    if ((p[12] & 0x0f) > 1)
        return proxy_header_bad(reason, "v2: command is not LOCAL or PROXY");
    len = (size_t)p[14] << 8 | p[15];
    if (len > PROXY_HEADER_V2_MAX - PROXY_V2_FIXED)
        return proxy_header_bad(reason, "v2: longer than 232 octets");
    *used = PROXY_V2_FIXED + len;
    if (n < *used)
        return PROXY_HEADER_AGAIN;
    if ((p[12] & 0x0f) == 0) { /* LOCAL: the proxy's own connection (a health check) */
        out->local = true;
        return PROXY_HEADER_OK;
    }
    return proxy_header_v2_addrs(p, len, out, reason);
}

enum proxy_header_rc
proxy_header_parse(const void *data, size_t n, struct proxy_header *out, size_t *used,
                   const char **reason)
{
    const unsigned char *p = data;
    size_t               k;

    memset(out, 0, sizeof(*out));
    out->family = AF_UNSPEC;
    *reason = "";
    if (n == 0) {
        *used = PROXY_HEADER_MIN;
        return PROXY_HEADER_AGAIN;
    }
    k = n < sizeof(proxy_header_v2_sig) ? n : sizeof(proxy_header_v2_sig);
    if (memcmp(p, proxy_header_v2_sig, k) == 0) {
        if (n < sizeof(proxy_header_v2_sig)) {
            *used = PROXY_V2_FIXED;
            return PROXY_HEADER_AGAIN;
        }
        return proxy_header_v2(p, n, out, used, reason);
    }
    k = n < 6 ? n : 6;
    if (memcmp(p, proxy_header_v1_sig, k) != 0)
        return proxy_header_bad(reason, "no PROXY signature");
    if (n < 6) {
        *used = PROXY_HEADER_MIN;
        return PROXY_HEADER_AGAIN;
    }
    return proxy_header_v1((const char *)p, n, out, used, reason);
}
