/* core/cmd/cmd_passwd_import.c: `sluice passwd --import`: the Python design's password
 * files (`email:password`, or `user:password` in a file named after its domain, and the
 * global users.txt) into sluice users files holding only hashes (DIR/DOMAIN.txt,
 * `local:HASH`). Everything is read and checked before anything is written: a bad line
 * (file:line), a user twice, or a user the output already has stops the import with
 * nothing changed. Passwords are never printed. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "auth/authdb.h"
#include "cmd/cmd.h"
#include "cmd/cmd_passwd.h"

#define IMPORT_LINE_MAX 2048

struct import_user {
    char *local;    /* owns */
    char *domain;   /* owns; lowercase */
    char *password; /* owns; wiped */
};

struct import {
    struct import_user *users;
    size_t              n, cap;
    const char         *default_domain;
};

static void
import_free(struct import *im)
{
    for (size_t i = 0; i < im->n; i++) {
        explicit_bzero(im->users[i].password, strlen(im->users[i].password));
        free(im->users[i].password);
        free(im->users[i].local);
        free(im->users[i].domain);
    }
    free(im->users);
}

static void
import_lower(char *s)
{
    for (; *s; s++)
        *s = (char)tolower((unsigned char)*s);
}

/* "example.org" from ".../example.org.txt"; NULL for users.txt or a name without a dot. */
static char *
import_domain_of_file(const char *path)
{
    const char *base = strrchr(path, '/');
    size_t      len;
    char       *d;

    base = base ? base + 1 : path;
    len = strlen(base);
    if (len <= 4 || strcmp(base + len - 4, ".txt") != 0 || strcasecmp(base, "users.txt") == 0)
        return NULL;
    d = strndup(base, len - 4);
    if (d != NULL && strchr(d, '.') == NULL) {
        free(d);
        return NULL;
    }
    if (d != NULL)
        import_lower(d);
    return d;
}

static int
import_add(struct import *im, const char *local, size_t llen, const char *domain,
           const char *password)
{
    struct import_user *u;

    for (size_t i = 0; i < im->n; i++)
        if (strlen(im->users[i].local) == llen &&
            strncasecmp(im->users[i].local, local, llen) == 0 &&
            strcmp(im->users[i].domain, domain) == 0)
            return 1;
    if (im->n == im->cap) {
        size_t cap = im->cap ? im->cap * 2 : 64;

        u = realloc(im->users, cap * sizeof(*u));
        if (u == NULL)
            return -1;
        im->users = u;
        im->cap = cap;
    }
    u = &im->users[im->n];
    u->local = strndup(local, llen);
    u->domain = strdup(domain);
    u->password = strdup(password);
    if (u->local == NULL || u->domain == NULL || u->password == NULL)
        return -1;
    import_lower(u->domain);
    im->n++;
    return 0;
}

/* One "who:password" line of path (domain: the file's, or NULL). */
static int
import_line(struct import *im, const char *path, unsigned no, char *line, const char *domain)
{
    char       *colon = strchr(line, ':'), *at;
    const char *dom;
    size_t      llen;
    int         rc;

    if (colon == NULL || colon == line || colon[1] == '\0') {
        fprintf(stderr, "sluice passwd: %s:%u: expected 'email:password'\n", path, no);
        return -1;
    }
    *colon = '\0';
    at = strrchr(line, '@');
    dom = at != NULL ? at + 1 : domain != NULL ? domain : im->default_domain;
    if (dom == NULL || *dom == '\0' || at == line) {
        fprintf(stderr, "sluice passwd: %s:%u: '%s' has no domain (name the file DOMAIN.txt "
                        "or give --default-domain)\n", path, no, line);
        return -1;
    }
    llen = at != NULL ? (size_t)(at - line) : strlen(line);
    rc = import_add(im, line, llen, dom, colon + 1);
    if (rc > 0)
        fprintf(stderr, "sluice passwd: %s:%u: %.*s@%s appears twice\n", path, no, (int)llen,
                line, dom);
    else if (rc < 0)
        fprintf(stderr, "sluice passwd: out of memory\n");
    explicit_bzero(colon + 1, strlen(colon + 1));
    return rc == 0 ? 0 : -1;
}

static int
import_read(struct import *im, const char *path)
{
    FILE    *f = fopen(path, "r");
    char     line[IMPORT_LINE_MAX], *domain;
    unsigned no = 0;
    int      rc = 0;

    if (f == NULL) {
        fprintf(stderr, "sluice passwd: %s: %s\n", path, strerror(errno));
        return -1;
    }
    domain = import_domain_of_file(path);
    while (rc == 0 && fgets(line, sizeof(line), f) != NULL) {
        char *s = line;

        no++;
        s[strcspn(s, "\r\n")] = '\0'; /* trailing blanks may be the password's */
        while (*s == ' ' || *s == '\t')
            s++;
        if (*s != '\0' && *s != '#')
            rc = import_line(im, path, no, s, domain);
    }
    explicit_bzero(line, sizeof(line));
    free(domain);
    fclose(f);
    return rc;
}

/* Users the output file of domain already has: importing over them is refused. */
static int
import_check_existing(const struct import *im, const char *dir)
{
    for (size_t i = 0; i < im->n; i++) {
        char  path[4096], line[IMPORT_LINE_MAX];
        FILE *f;
        size_t ll = strlen(im->users[i].local);

        snprintf(path, sizeof(path), "%s/%s.txt", dir, im->users[i].domain);
        f = fopen(path, "r");
        while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
            if (strncasecmp(line, im->users[i].local, ll) == 0 && line[ll] == ':') {
                fprintf(stderr, "sluice passwd: %s already has %s\n", path,
                        im->users[i].local);
                fclose(f);
                return -1;
            }
        }
        if (f != NULL)
            fclose(f);
    }
    return 0;
}

/* Hash every password, then append each domain's lines to DIR/DOMAIN.txt. */
static int
import_write(const struct import *im, const char *dir, const char *prefix)
{
    for (size_t i = 0; i < im->n; i++) {
        char path[4096], hash[512];
        int  fd;
        FILE *f;

        if (authdb_hash(im->users[i].password, prefix, hash, sizeof(hash)) != 0) {
            fprintf(stderr, "sluice passwd: hashing failed\n");
            return -1;
        }
        snprintf(path, sizeof(path), "%s/%s.txt", dir, im->users[i].domain);
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
        f = fd >= 0 ? fdopen(fd, "a") : NULL;
        if (f == NULL || fprintf(f, "%s:%s\n", im->users[i].local, hash) < 0 ||
            fclose(f) != 0) {
            fprintf(stderr, "sluice passwd: %s: %s\n", path, strerror(errno));
            return -1;
        }
    }
    return 0;
}

int
cmd_passwd_import(const char *prefix, const char *out_dir, const char *default_domain,
                  char **files, int n_files)
{
    struct import im = { .default_domain = default_domain };
    int           rc = 1;

    if (out_dir == NULL || n_files == 0) {
        fprintf(stderr, "usage: sluice passwd --import --out DIR [-s SCHEME] "
                        "[--default-domain DOMAIN] FILE...\n");
        return EXIT_USAGE;
    }
    for (int i = 0; i < n_files; i++)
        if (import_read(&im, files[i]) != 0)
            goto out;
    if (import_check_existing(&im, out_dir) != 0 || import_write(&im, out_dir, prefix) != 0)
        goto out;
    fprintf(stderr, "sluice passwd: imported %zu users into %s\n", im.n, out_dir);
    rc = 0;
out:
    import_free(&im);
    return rc;
}
