/* core/auth/authdb.h: per-domain user files (conf/users/DOMAIN.txt) and crypt(3) checks.
 * A file holds "localpart:hash" lines ('#' comments, blank lines allowed); the hash is
 * anything libcrypt verifies (yescrypt $y$, bcrypt $2b$, sha512-crypt $6$) or argon2
 * ($argon2id$, $argon2i$, through libargon2).
 * A loaded authdb is immutable and may be read from any thread; verification is
 * CPU-heavy by design and must run off the event loop (core/util/offload.c). */
#ifndef SLUICE_AUTHDB_H
#define SLUICE_AUTHDB_H

#include <stdbool.h>
#include <stddef.h>

struct authdb;

/* Load every DOMAIN.txt in dir (the file name, lowercased, is the domain).
 * Returns NULL and writes "file:line: reason" into err on any bad line (a line without
 * ':', an empty user, a hash crypt(3) does not recognise such as a plaintext password,
 * a domain with more than AUTHDB_CLASSES_MAX cost classes). */
struct authdb *authdb_load(const char *dir, char *err, size_t errlen);
void           authdb_free(struct authdb *db);

/* Number of users loaded (for the start-up log line). */
size_t authdb_count(const struct authdb *db);

/* Each check costs the same whoever asks (docs/security.md "User enumeration by
 * timing"): a domain's users are grouped in cost classes, one per hash setting that
 * fixes the work ("$y$j9T$", "$2b$12$", "$6$rounds=N$", argon2's m,t,p), and every
 * verification in the domain hashes the password once per class, against the user's
 * own hash in its class and a stand-in (another user's hash of that class) in the
 * others. An unknown user runs only stand-ins; an unknown domain or a malformed identity
 * those of the typical domain (the class set most domains have). */
#define AUTHDB_CLASSES_MAX 8 /* per domain; each is one hash per check */

enum authdb_rc {
    AUTHDB_OK,             /* the password matches */
    AUTHDB_WRONG_PASSWORD, /* the user exists, the password is not theirs */
    AUTHDB_NO_USER,        /* no such user in the domain's file */
    AUTHDB_NO_DOMAIN,      /* no users file for the domain */
    AUTHDB_BAD_INPUT,      /* the identity is not "local@domain" */
};
/* All but AUTHDB_OK cost the same work and must get the same reply; the difference is
 * for the logs only. */

/* A short name for rc for the logs: "ok", "wrong password", "unknown user", "unknown
 * domain", "malformed identity". Static storage. */
const char *authdb_rc_name(enum authdb_rc rc);

/* Verify "local@domain" with password. Both parts compare ASCII case-insensitively:
 * RFC 5321 lets a server treat local parts as case-sensitive, but a phone keyboard that
 * capitalises "Alice" must not lock Alice out (Dovecot's %Lu default does the same);
 * two users differing only in case are refused at load. A configured default domain is
 * the caller's business.
 * Blocking and CPU-bound: call it from the offload pool. Thread-safe (crypt_r).
 * On AUTHDB_OK, *domain_out (if not NULL) borrows the canonical lowercase domain name
 * from db. Whatever the outcome, it hashes once per cost class (above). */
enum authdb_rc authdb_verify(const struct authdb *db, const char *identity,
                             const char *password, const char **domain_out);

/* The hashes authdb_verify(db, identity, ...) computes, in order, into hashes[0..max)
 * (borrowed from db); returns how many (at most AUTHDB_CLASSES_MAX). For the tests: the
 * same list of settings for every identity of a domain is the property above. */
size_t authdb_verify_hashes(const struct authdb *db, const char *identity,
                            const char **hashes, size_t max);

/* For `sluice check`: fn(arg, path, n, settings) for each domain whose users are in more
 * than one cost class: its file, how many classes (hashes per check), and
 * "$6$ (1 user), $y$j9T$ (3 users)". The strings live during the call. */
typedef void authdb_mixed_fn(void *arg, const char *path, size_t n, const char *settings);
void authdb_each_mixed_domain(const struct authdb *db, authdb_mixed_fn *fn, void *arg);

/* Hash a password with a fresh salt (prefix "$y$" yescrypt by default, "$2b$" bcrypt,
 * "$6$" sha512-crypt, "$argon2id$" argon2id). Returns 0 and a NUL-terminated hash in
 * out, -1 on failure. */
int authdb_hash(const char *password, const char *prefix, char *out, size_t outlen);

#endif
