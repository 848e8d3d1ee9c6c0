/* core/relay/upstream_xclient.h: telling an upstream who the client was: Postfix's XCLIENT
 * and XFORWARD extensions (www.postfix.org/XCLIENT_README.html, XFORWARD_README.html).
 * Which of them the EHLO reply offers, with which attributes, and the command lines for
 * one client: values in xtext (RFC 3461 section 4), only the attributes the server
 * listed, each line at most 512 octets with its CRLF (RFC 5321 4.5.3.1.4), split over
 * several commands when they do not fit in one. No I/O, no allocation; when to send what
 * is core/relay/upstream.c's (docs/upstreams.md "XCLIENT and XFORWARD"). */
#ifndef SLUICE_UPSTREAM_XCLIENT_H
#define SLUICE_UPSTREAM_XCLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include "relay/upstream_reply.h"

#define UPSTREAM_XCLIENT_LINE_MAX 512  /* one command line, CRLF included */
#define UPSTREAM_XCLIENT_TEXT_MAX 2048 /* every line for one client: 7 attributes of at most
                                        * one line each fit in 4 lines */

/* Attributes, as the EHLO keyword's parameters name them. */
enum upstream_xattr {
    XATTR_NAME = 1u << 0,   /* the client's host name: [UNAVAILABLE] (no reverse DNS here) */
    XATTR_ADDR = 1u << 1,   /* its IP address, "IPV6:" before an IPv6 one */
    XATTR_PORT = 1u << 2,   /* its TCP port */
    XATTR_PROTO = 1u << 3,  /* SMTP or ESMTP: whether it said HELO or EHLO */
    XATTR_HELO = 1u << 4,   /* the name it gave in HELO/EHLO */
    XATTR_LOGIN = 1u << 5,  /* XCLIENT: the identity it authenticated as */
    XATTR_IDENT = 1u << 6,  /* XFORWARD: our identifier of the message */
    XATTR_SOURCE = 1u << 7, /* XFORWARD: REMOTE (the client is not on the upstream's host) */
};

/* What the upstream's EHLO reply offers. */
struct upstream_xoffer {
    bool     xclient;        /* an XCLIENT keyword */
    bool     xforward;       /* an XFORWARD keyword */
    unsigned xclient_attrs;  /* enum upstream_xattr bits XCLIENT lists */
    unsigned xforward_attrs; /* the same for XFORWARD */
};

/* The client whose message this is, as far as the upstream may be told. */
struct relay_client {
    const char *addr;      /* borrows; its IP address as text; NULL: nothing is sent */
    int         port;      /* its TCP port; 0: unknown */
    const char *helo;      /* borrows; the EHLO/HELO name it gave, NULL if none */
    const char *login;     /* borrows; the identity AUTH fixed, NULL if none */
    bool        esmtp;     /* it said EHLO */
    char        ident[32]; /* our identifier of the message ("5f3a9c0e.1"), "" if none */
};

enum upstream_xverb {
    UPSTREAM_XCLIENT,
    UPSTREAM_XFORWARD,
};

/* The XCLIENT and XFORWARD keywords of a 250 reply to EHLO (every line but the first). */
void upstream_xclient_offer(const struct upstream_reply *r, struct upstream_xoffer *x);

/* The lines ("XCLIENT NAME=... ADDR=...\r\n" ...) that tell the attributes `attrs` of c,
 * into out (outlen octets, UPSTREAM_XCLIENT_TEXT_MAX hold any), NUL-terminated, with
 * their length in *len. A value that cannot fit in a line of its own, or that Postfix
 * would refuse (a HELO name over 255 octets), is sent as [UNAVAILABLE]. Returns the
 * number of lines, 0 when attrs names nothing we know, or -1 if out is too small. */
int upstream_xclient_lines(enum upstream_xverb verb, unsigned attrs,
                           const struct relay_client *c, char *out, size_t outlen,
                           size_t *len);

/* A HELO name that may be sent as it is (HELO=, or the EHLO after XCLIENT): 1 to 255
 * octets of printable ASCII without spaces. NULL is not. */
bool upstream_xclient_helo_ok(const char *helo);

/* The command line at *off of lines (from upstream_xclient_lines), through its CRLF:
 * its length, and *off moved past it; 0 at the end. */
size_t upstream_xclient_next_line(const char *lines, size_t len, size_t *off);

#endif
