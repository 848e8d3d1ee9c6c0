/* core/util/privfile.h: the files the configuration names, opened with start-up's rights.
 *
 * sluice starts as root, then becomes the service user; a reload re-reads every file
 * (configuration, policies, the Lua library, users files, certificates, keys, secrets,
 * the audit log) as that user, who may not be allowed to (a clone under root's 0700
 * home, a 0600 key). So `sluice run`, while still root and before any thread exists,
 * forks a privileged reader (privfile_server.c): a process that only opens files and
 * hands their descriptors back over a socketpair, as nginx's master and OpenSMTPD's
 * parent do. It runs no Lua, parses no client data and does no network I/O.
 *
 * Until privfile_seal() (start-up over, before any connection is accepted) the reader
 * opens what it is asked and remembers where: the directory of each file read (after
 * symlinks), each directory listed, each file appended to. After the seal it opens only
 * there: a file in a new directory must be readable by the service user itself. Without a
 * reader (`sluice check`, tests, a daemon started unprivileged) every call opens the file
 * directly. docs/security.md has the reasoning. */
#ifndef SLUICE_PRIVFILE_H
#define SLUICE_PRIVFILE_H

#include <dirent.h>
#include <stddef.h>

enum privfile_mode {
    PRIVFILE_READ,   /* a regular file, read-only */
    PRIVFILE_DIR,    /* a directory, to list */
    PRIVFILE_APPEND, /* a regular file with one link, write-only append, created 0640 */
};

/* As root, before any thread: fork the reader. 0, or -1 with err set. */
int privfile_start(char *err, size_t errlen);

/* Start-up is over: the reader opens only where start-up did from now on. */
void privfile_seal(void);

/* Close the socket; the reader sees EOF and exits. */
void privfile_stop(void);

/* A descriptor (O_CLOEXEC) for path, or -1 with errno set as open(2) would. Through the
 * reader when there is one; directly when there is none or the reader refuses a path
 * outside start-up's directories. Thread-safe; blocks for one local round trip. */
int privfile_open(const char *path, enum privfile_mode mode);

/* The whole file, NUL-terminated (len excludes the NUL), caller frees; NULL with err
 * ("PATH: cannot open: reason", "PATH: file too large (over N bytes)") on failure. */
char *privfile_read(const char *path, size_t max, size_t *len, char *err, size_t errlen);

/* 0 when path can be opened for reading (what access(path, R_OK) meant), else -1 with
 * errno set. */
int privfile_check(const char *path);

/* The directory, for readdir; NULL with errno set. */
DIR *privfile_opendir(const char *path);

#endif
