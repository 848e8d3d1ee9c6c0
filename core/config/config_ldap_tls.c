/* core/config/config_ldap_tls.c: libldap's TLS context for a domain's directory, made when
 * the configuration is loaded (see config_ldap_tls.h); the connections that use it are
 * core/auth/ldap_dial.c's. */
#include "config/config_ldap_tls.h"

#include <errno.h>
#include <ldap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "util/privfile.h"

#define CONFIG_LDAP_TLS_MAX_CA_FILE (4 * 1024 * 1024) /* octets of a PEM bundle */

/* Exported by libldap 2.5 (symbol version OPENLDAP_2.5) for its own servers, but
 * declared only in the uninstalled ldap_pvt.h: the one way to drop a reference to a TLS
 * context that LDAP_OPT_X_TLS_CTX handed out. */
void ldap_pvt_tls_ctx_free(void *ctx);

/* A copy of ca_file that libldap can open, named in path ("/proc/self/fd/N"): an
 * in-memory file of this process's, filled through privfile.h. libldap takes a CA bundle
 * only as a file it opens itself (Debian builds it with GnuTLS: there is no OpenSSL
 * context to fill), and on a reload it would open ca_file as the service user. The
 * descriptor, to close once the context is made, or -1 with err. */
static int
config_ldap_tls_ca_copy(const char *ca_file, char *path, size_t pathlen, char *err, size_t errlen)
{
    size_t  len, done = 0;
    char   *text = privfile_read(ca_file, CONFIG_LDAP_TLS_MAX_CA_FILE, &len, err, errlen);
    int     fd = text != NULL ? memfd_create("sluice-ldap-ca", MFD_CLOEXEC) : -1;
    ssize_t n = 0;

    while (fd >= 0 && done < len && (n = write(fd, text + done, len - done)) > 0)
        done += (size_t)n;
    free(text);
    if (text != NULL && (fd < 0 || done < len)) {
        snprintf(err, errlen, "%s: cannot copy it for libldap: %s", ca_file, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (fd >= 0)
        snprintf(path, pathlen, "/proc/self/fd/%d", fd);
    return fd;
}

void *
config_ldap_tls_ctx_new(const char *ca_file, char *err, size_t errlen)
{
    int   demand = LDAP_OPT_X_TLS_DEMAND, tls12 = LDAP_OPT_X_TLS_PROTOCOL_TLS1_2, client = 0;
    LDAP *ld = NULL;
    void *ctx = NULL;
    char *diag = NULL, copy[64];
    int   memfd = -1;

    if (ldap_initialize(&ld, NULL) != LDAP_SUCCESS) {
        snprintf(err, errlen, "cannot make an LDAP handle");
        return NULL;
    }
    if (ca_file != NULL && (memfd = config_ldap_tls_ca_copy(ca_file, copy, sizeof(copy), err,
                                                      errlen)) < 0) {
        ldap_unbind_ext(ld, NULL, NULL);
        return NULL;
    }
    if (ldap_set_option(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &demand) != LDAP_OPT_SUCCESS ||
        ldap_set_option(ld, LDAP_OPT_X_TLS_PROTOCOL_MIN, &tls12) != LDAP_OPT_SUCCESS ||
        (ca_file != NULL &&
         ldap_set_option(ld, LDAP_OPT_X_TLS_CACERTFILE, copy) != LDAP_OPT_SUCCESS) ||
        ldap_set_option(ld, LDAP_OPT_X_TLS_NEWCTX, &client) != LDAP_OPT_SUCCESS ||
        ldap_get_option(ld, LDAP_OPT_X_TLS_CTX, &ctx) != LDAP_OPT_SUCCESS || ctx == NULL) {
        ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag);
        snprintf(err, errlen, "cannot make a TLS context%s%s%s%s",
                 ca_file != NULL ? " with " : "", ca_file != NULL ? ca_file : "",
                 diag != NULL ? ": " : "", diag != NULL ? diag : "");
        ldap_memfree(diag);
        ctx = NULL;
    }
    ldap_unbind_ext(ld, NULL, NULL); /* drops its own reference; ours stays */
    if (memfd >= 0)
        close(memfd); /* the context holds the certificates now */
    return ctx;
}

void
config_ldap_tls_ctx_free(void *ctx)
{
    if (ctx != NULL)
        ldap_pvt_tls_ctx_free(ctx);
}

void
config_ldap_tls_global_init(void)
{
    int version;

    /* Any call on the NULL handle runs ldap_int_initialize() once; doing it here, before
     * threads exist, keeps two threads from racing through it. */
    ldap_get_option(NULL, LDAP_OPT_PROTOCOL_VERSION, &version);
}
