/* core/authdb.h: per-domain user files (conf/users/DOMAIN.txt) and crypt(3) checks.
 * A file holds "localpart:hash" lines ('#' comments, blank lines allowed); the hash is
 * anything libcrypt verifies (yescrypt $y$, bcrypt $2b$, sha512-crypt $6$) or argon2
 * ($argon2id$, $argon2i$, through libargon2).
 * A loaded authdb is immutable and may be read from any thread; verification is
 * CPU-heavy by design and must run off the event loop (core/offload.c). */
#ifndef SLUICE_AUTHDB_H
#define SLUICE_AUTHDB_H

#include <stdbool.h>
#include <stddef.h>

struct authdb;

/* Load every DOMAIN.txt in dir (the file name, lowercased, is the domain).
 * Returns NULL and writes "file:line: reason" into err on any bad line (a line without
 * ':', an empty user, a hash crypt(3) does not recognise such as a plaintext password). */
struct authdb *authdb_load(const char *dir, char *err, size_t errlen);
void           authdb_free(struct authdb *db);

/* Number of users loaded (for the start-up log line). */
size_t authdb_count(const struct authdb *db);

enum authdb_rc {
    AUTHDB_OK,        /* the password matches */
    AUTHDB_FAIL,      /* unknown user or domain, or wrong password: the caller must not tell
                         them apart (same reply, and authdb_verify spends the same work) */
    AUTHDB_BAD_INPUT, /* the identity is not "local@domain" */
};

/* Verify "local@domain" with password. Both parts compare ASCII case-insensitively:
 * RFC 5321 lets a server treat local parts as case-sensitive, but a phone keyboard that
 * capitalises "Alice" must not lock Alice out (Dovecot's %Lu default does the same);
 * two users differing only in case are refused at load. A configured default domain is
 * the caller's business.
 * Blocking and CPU-bound: call it from the offload pool. Thread-safe (crypt_r).
 * On AUTHDB_OK, *domain_out (if not NULL) borrows the canonical lowercase domain name
 * from db. An unknown user still runs one hash (of the domain's usual scheme, or a dummy
 * for an unknown domain) so that timing does not reveal which users exist. */
enum authdb_rc authdb_verify(const struct authdb *db, const char *identity,
                             const char *password, const char **domain_out);

/* Hash a password with a fresh salt (prefix "$y$" yescrypt by default, "$2b$" bcrypt,
 * "$6$" sha512-crypt, "$argon2id$" argon2id). Returns 0 and a NUL-terminated hash in
 * out, -1 on failure. */
int authdb_hash(const char *password, const char *prefix, char *out, size_t outlen);

#endif
