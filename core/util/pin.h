/* core/util/pin.h: a reference to a reference-counted owner, held across work that may
 * outlive the caller (an offloaded hash, an LDAP connect): whoever keeps something the
 * owner owns calls ref(owner) first and unref(owner) when done. The owner's type stays
 * opaque, so a lower layer can pin what a higher one owns (the daemon's configuration
 * generation) without including it. ref and unref may be called on any thread. */
#ifndef SLUICE_PIN_H
#define SLUICE_PIN_H

#include <stddef.h>

struct pin {
    void *owner;                 /* NULL: nothing to pin (the caller keeps it alive) */
    void (*ref)(void *owner);
    void (*unref)(void *owner);
};

static inline void
pin_ref(const struct pin *p)
{
    if (p->owner != NULL)
        p->ref(p->owner);
}

static inline void
pin_unref(const struct pin *p)
{
    if (p->owner != NULL)
        p->unref(p->owner);
}

#endif
