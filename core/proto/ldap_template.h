/* core/proto/ldap_template.h: the text a domain's `ldap` table builds requests from: the
 * bind-DN template (RFC 4514 string DN) and the search filter template (RFC 4515), in
 * which %u is the local part of the user's address, %d its domain, %s the whole
 * address and %% a '%'. Each value is escaped for where it goes, so that no user name
 * can change the DN's structure or the filter's meaning. Pure functions: no I/O, no
 * state; the only allocation is the result of ldap_template_expand(). */
#ifndef SLUICE_LDAP_TEMPLATE_H
#define SLUICE_LDAP_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

enum ldap_template_kind {
    LDAP_TEMPLATE_DN,     /* values escaped as RFC 4514 attribute values */
    LDAP_TEMPLATE_FILTER, /* values escaped as RFC 4515 assertion values */
};

/* 0 when every '%' in tmpl starts %u, %d, %s or %%; else -1 and why in err. */
int ldap_template_check(const char *tmpl, char *err, size_t errlen);

/* True when tmpl names the user (%u or %s): a template without it would bind every
 * user as one DN. */
bool ldap_template_has_user(const char *tmpl);

/* tmpl with %u, %d, %s replaced by local@domain's parts, escaped for kind, as a heap
 * string the caller frees; NULL when out of memory. local and domain are counted
 * strings (a NUL byte in them is escaped, never a terminator). */
char *ldap_template_expand(const char *tmpl, enum ldap_template_kind kind, const char *local,
                           size_t local_len, const char *domain, size_t domain_len);

/* 0 when f is a filter by RFC 4515's grammar (parenthesised, attribute descriptions,
 * escaped values, &, |, !, substrings, extensible matches); else -1 and the position
 * and reason in err. */
int ldap_template_check_filter(const char *f, char *err, size_t errlen);

#endif
