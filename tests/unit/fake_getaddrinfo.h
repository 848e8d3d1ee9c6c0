/* tests/unit/fake_getaddrinfo.h: host names with several addresses, for tests of the
 * clients that must try every address a name has (Debian's /etc/hosts gives localhost
 * ::1 first, then 127.0.0.1; this machine's may not).
 *
 * A test using it is linked with -Wl,--wrap=getaddrinfo (CMakeLists.txt), so that every
 * getaddrinfo() call in it, sluice's core included, comes here; include this header in
 * one file of the test only. fake_getaddrinfo_set() gives a name its numeric addresses,
 * in order; other names go to the real getaddrinfo. The answer is a chain of the real
 * getaddrinfo's answers for each numeric address (glibc's freeaddrinfo frees such a
 * chain node by node). Set names before any thread resolves them. */
#ifndef SLUICE_TEST_FAKE_GETADDRINFO_H
#define SLUICE_TEST_FAKE_GETADDRINFO_H

#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define FAKE_NAMES_MAX 8
#define FAKE_ADDRS_MAX 4

struct fake_addr {
    const char *ip;   /* numeric: "::1", "127.0.0.1" */
    int         port; /* 0: the service asked for */
};

static struct {
    const char      *name;
    struct fake_addr addrs[FAKE_ADDRS_MAX];
    size_t           n;
} fake_names[FAKE_NAMES_MAX];

int __real_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                       struct addrinfo **res);
int __wrap_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                       struct addrinfo **res);

/* name resolves to addrs[0 .. n) from now on (n == 0: to the real answer again). */
static inline void
fake_getaddrinfo_set(const char *name, const struct fake_addr *addrs, size_t n)
{
    size_t i, free_slot = FAKE_NAMES_MAX;

    for (i = 0; i < FAKE_NAMES_MAX; i++) {
        if (fake_names[i].name != NULL && strcasecmp(fake_names[i].name, name) == 0)
            break;
        if (fake_names[i].name == NULL && free_slot == FAKE_NAMES_MAX)
            free_slot = i;
    }
    if (i == FAKE_NAMES_MAX)
        i = free_slot;
    if (i == FAKE_NAMES_MAX || n > FAKE_ADDRS_MAX) {
        fprintf(stderr, "fake_getaddrinfo_set: table full\n");
        return;
    }
    fake_names[i].name = n > 0 ? name : NULL;
    fake_names[i].n = n;
    if (n > 0)
        memcpy(fake_names[i].addrs, addrs, n * sizeof(*addrs));
}

int
__wrap_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                   struct addrinfo **res)
{
    struct addrinfo  h = { 0 }, *head = NULL, **tail = &head;
    size_t           i, k;

    for (i = 0; node != NULL && i < FAKE_NAMES_MAX; i++)
        if (fake_names[i].name != NULL && strcasecmp(fake_names[i].name, node) == 0)
            break;
    if (node == NULL || i == FAKE_NAMES_MAX ||
        (hints != NULL && (hints->ai_flags & AI_NUMERICHOST))) /* a name is not numeric */
        return __real_getaddrinfo(node, service, hints, res);
    if (hints != NULL)
        h = *hints;
    h.ai_flags = (h.ai_flags & ~AI_ADDRCONFIG) | AI_NUMERICHOST; /* as /etc/hosts would */
    for (k = 0; k < fake_names[i].n; k++) {
        const struct fake_addr *a = &fake_names[i].addrs[k];
        char                    port[16];
        int                     rc;

        if (a->port != 0)
            snprintf(port, sizeof(port), "%d", a->port);
        rc = __real_getaddrinfo(a->ip, a->port != 0 ? port : service, &h, tail);
        if (rc != 0) {
            if (head != NULL)
                freeaddrinfo(head);
            return rc;
        }
        while (*tail != NULL)
            tail = &(*tail)->ai_next;
    }
    *res = head;
    return head != NULL ? 0 : EAI_NONAME;
}

#endif
