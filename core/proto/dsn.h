/* core/proto/dsn.h: the parameters of the SMTP DSN extension (RFC 3461): RET and ENVID on
 * MAIL, NOTIFY and ORCPT on RCPT, and the xtext encoding their values use. One function per
 * parameter checks one value; none allocates, none keeps state, every pointer in a result
 * borrows from the caller's value. Which parameter appeared twice, and what the session
 * does with a value, is the caller's (core/smtp/smtp_dsn.c). */
#ifndef SLUICE_PROTO_DSN_H
#define SLUICE_PROTO_DSN_H

#include <stdbool.h>
#include <stddef.h>

#include "proto/smtp_parse.h"

/* RFC 3461 section 5.3 (implementation limits), as OpenSMTPD applies them: an ENVID value
 * up to 100 characters, an ORCPT value up to 500, both counted as sent (xtext). */
#define DSN_ENVID_MAX 100
#define DSN_ORCPT_MAX 500

/* RFC 3461 section 4.3: RET=FULL or RET=HDRS. */
enum dsn_ret {
    DSN_RET_NONE, /* no RET: the upstream decides (section 4.3) */
    DSN_RET_FULL,
    DSN_RET_HDRS,
};

/* RFC 3461 section 4.1: the NOTIFY values, as bits. */
enum dsn_notify {
    DSN_NOTIFY_NEVER = 1u << 0,
    DSN_NOTIFY_SUCCESS = 1u << 1,
    DSN_NOTIFY_FAILURE = 1u << 2,
    DSN_NOTIFY_DELAY = 1u << 3,
};

/* One recipient's DSN parameters, values as the client sent them. Filled and owned by
 * the session's transaction (core/smtp/smtp_dsn.c); the relay and the policies borrow. */
struct dsn_rcpt {
    char *notify; /* owns; NOTIFY's value, or NULL */
    char *orcpt;  /* owns; ORCPT's value (addr-type;xtext), or NULL */
};

/* Why a value was refused; each maps to one reply (smtp_dsn.c). */
enum dsn_rc {
    DSN_OK,
    DSN_BAD_RET,        /* not FULL or HDRS */
    DSN_BAD_ENVID,      /* not xtext, decodes to a non-printable octet, or over 100 */
    DSN_BAD_NOTIFY,     /* empty element, or a word other than the four */
    DSN_NOTIFY_NEVER_MIXED, /* NEVER with another value (section 4.1) */
    DSN_BAD_ORCPT,      /* no ';', empty part, not xtext, non-printable, or over 500 */
    DSN_ORCPT_TYPE,     /* an addr-type other than rfc822 and utf-8 */
};

/* RFC 3461 section 4: xtext = *( xchar / hexchar ), xchar = "!" .. "~" but "+" and "=",
 * hexchar = "+" 2(upper-case HEXDIG). With utf8 (RFC 6533 utf-8-addr-unitext, allowed
 * when the transaction uses SMTPUTF8) well-formed UTF-8 sequences are xchars too.
 * When printable is set, a hexchar must also decode to printable US-ASCII (%x20-7E), as
 * RFC 3461 sections 4.2 and 4.4 require of ORCPT addresses and ENVIDs. */
bool dsn_xtext_is_valid(struct smtp_str s, bool utf8, bool printable);

/* Decode valid xtext s into out (room for s.len octets is always enough). Returns the
 * decoded length. s must have passed dsn_xtext_is_valid(). */
size_t dsn_xtext_decode(struct smtp_str s, char *out);

/* RET's value (case-insensitive) into *out. DSN_OK or DSN_BAD_RET. */
enum dsn_rc dsn_parse_ret(struct smtp_str value, enum dsn_ret *out);

/* ENVID's value: 1 to DSN_ENVID_MAX characters of xtext decoding to printable ASCII.
 * DSN_OK or DSN_BAD_ENVID. */
enum dsn_rc dsn_parse_envid(struct smtp_str value);

/* NOTIFY's value: "NEVER", or a comma-separated list of SUCCESS, FAILURE and DELAY
 * (case-insensitive; a word repeated is the same word). *mask gets enum dsn_notify bits.
 * DSN_OK, DSN_BAD_NOTIFY or DSN_NOTIFY_NEVER_MIXED. */
enum dsn_rc dsn_parse_notify(struct smtp_str value, unsigned *mask);

/* ORCPT's value: addr-type ";" xtext, at most DSN_ORCPT_MAX characters. addr-type is an
 * atom (RFC 5322); "rfc822" (the address decodes to printable ASCII) and "utf-8"
 * (RFC 6533; raw UTF-8 only when smtputf8) are accepted, case-insensitive. *type and
 * *addr (the xtext after ';') borrow from value. DSN_OK, DSN_BAD_ORCPT or DSN_ORCPT_TYPE. */
enum dsn_rc dsn_parse_orcpt(struct smtp_str value, bool smtputf8, struct smtp_str *type,
                            struct smtp_str *addr);

#endif
