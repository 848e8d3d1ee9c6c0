/* core/util/utf8.h: one well-formed UTF-8 sequence (RFC 3629 section 4), for the parsers
 * of what clients send. */
#ifndef SLUICE_UTF8_H
#define SLUICE_UTF8_H

#include <stddef.h>

/* Length (2..4) of the well-formed UTF-8 sequence at p, whose first octet is >= 0x80, in
 * the n octets there; 0 when it is not one. Overlong forms, UTF-16 surrogates, code points
 * above U+10FFFF, stray continuation octets and a sequence cut short are refused, so that
 * no two octet strings name the same text and nothing hides an ASCII octet from a later
 * parser. */
size_t utf8_seq_len(const unsigned char *p, size_t n);

#endif
