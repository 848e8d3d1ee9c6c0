/* core/config/config_ldap_tls.h: libldap's TLS context for a domain's directory
 * (config_ldap.tls_ctx), made by the config loader so that a CA file that does not load is
 * a configuration error (file:line) at start, `sluice check` and reload, and so that it is
 * read once, through privfile.h, rather than per connection. core/auth/ldap_dial.c hands
 * it to every connection (LDAP_OPT_X_TLS_CTX). */
#ifndef SLUICE_CONFIG_LDAP_TLS_H
#define SLUICE_CONFIG_LDAP_TLS_H

#include <stddef.h>

/* libldap's process-wide initialisation (ldap.conf, the environment), done once on the
 * calling thread: call it on the main thread before threads use libldap. */
void config_ldap_tls_global_init(void);

/* A TLS context for ldap_dial(): TLS 1.2 at least, the server's chain verified against
 * ca_file (PEM; NULL: libldap's default, TLS_CACERT of ldap.conf or the system's store)
 * and its name against the URI. It is libldap's own (GnuTLS or OpenSSL, whichever
 * libldap was built with: Debian's uses GnuTLS), made through a handle that connects
 * nowhere. One reference for the caller, or NULL and why in err. */
void *config_ldap_tls_ctx_new(const char *ca_file, char *err, size_t errlen);
/* Drop that reference. NULL is fine. */
void config_ldap_tls_ctx_free(void *ctx);

#endif
