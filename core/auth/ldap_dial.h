/* core/auth/ldap_dial.h: opening one connection to a directory server. This blocks, so it
 * runs on the offload pool's threads, never on a worker's loop (ldap_client.c submits
 * it). Every step is bounded by the domain's ldap.timeout: the TCP connect (tcp_dial.c
 * on a loop of the offload thread's own: every address of the host, in order,
 * staggered, within that one deadline), the TLS handshake of ldaps:// or the StartTLS
 * exchange and its handshake (libldap polls with LDAP_OPT_NETWORK_TIMEOUT and
 * LDAP_OPT_TIMEOUT; LDAP_OPT_CONNECT_ASYNC makes its handshake poll instead of spinning).
 * The certificate chain is verified against ca_file (or the system's store) and
 * the name in the URI against the certificate, with the TLS context made at load
 * (config_ldap_tls.h). */
#ifndef SLUICE_LDAP_DIAL_H
#define SLUICE_LDAP_DIAL_H

#include <ldap.h>
#include <stddef.h>

struct config_ldap;

/* A handle connected to cfg->uris[i], TLS up unless the URI is ldap:// without
 * StartTLS (only with insecure = true), bound to nobody yet (anonymous), its socket
 * non-blocking and TCP_NODELAY, ready for asynchronous operations on any one thread at a
 * time. NULL and the reason in err (which never holds a password) on failure. The caller
 * owns the handle: ldap_unbind_ext() it. Thread-safe for distinct handles. */
LDAP *ldap_dial(const struct config_ldap *cfg, size_t i, char *err, size_t errlen);

#endif
