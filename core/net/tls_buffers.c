/* core/net/tls_buffers.c: which TLS connections keep OpenSSL's record buffers. See
 * tls_buffers.h. One list per thread, most recently active at the head; one timer per
 * thread frees the buffers of the connections at the tail that have been quiet long
 * enough. The timer does not keep the loop alive (ev_unref) and runs only while the
 * list is not empty. */
#include "net/tls_buffers.h"

#include <openssl/ssl.h>

#include "net/conn.h"

struct tls_buffers_list {
    struct conn    *head; /* borrows: most recently active */
    struct conn    *tail; /* borrows: least recently active */
    unsigned        n;
    struct ev_loop *loop; /* borrows: the loop of every connection in the list */
    ev_timer        sweep;
};

static __thread struct tls_buffers_list tls_buffers_list;

static void
tls_buffers_unlink(struct tls_buffers_list *l, struct conn *c)
{
    struct tls_buffers_link *k = &c->tls_link;

    if (k->prev != NULL)
        k->prev->tls_link.next = k->next;
    else
        l->head = k->next;
    if (k->next != NULL)
        k->next->tls_link.prev = k->prev;
    else
        l->tail = k->prev;
    k->prev = k->next = NULL;
    k->linked = false;
    l->n--;
}

static void
tls_buffers_push(struct tls_buffers_list *l, struct conn *c)
{
    struct tls_buffers_link *k = &c->tls_link;

    k->prev = NULL;
    k->next = l->head;
    if (l->head != NULL)
        l->head->tls_link.prev = c;
    else
        l->tail = c;
    l->head = c;
    k->linked = true;
    l->n++;
}

static void
tls_buffers_sweep_stop(struct tls_buffers_list *l)
{
    if (!ev_is_active(&l->sweep))
        return;
    ev_ref(l->loop); /* as ev_unref() took it away when the timer started */
    ev_timer_stop(l->loop, &l->sweep);
}

/* Free c's buffers and drop it from the list; a connection whose buffers still hold data
 * (a record read ahead, a write not yet sent) keeps them and goes back to the head. */
static void
tls_buffers_release(struct tls_buffers_list *l, struct conn *c, ev_tstamp now)
{
    tls_buffers_unlink(l, c);
    if (SSL_free_buffers(c->ssl) == 1)
        return;
    c->tls_link.last_io = now;
    tls_buffers_push(l, c);
}

static void
tls_buffers_sweep_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct tls_buffers_list *l = &tls_buffers_list;
    ev_tstamp                now = ev_now(loop);

    (void)revents;
    /* Bounded: a connection put back at the head has last_io == now and ends the walk. */
    while (l->tail != NULL && now - l->tail->tls_link.last_io >= TLS_BUFFERS_QUIET)
        tls_buffers_release(l, l->tail, now);
    if (l->tail == NULL) {
        tls_buffers_sweep_stop(l);
        return;
    }
    w->repeat = l->tail->tls_link.last_io + TLS_BUFFERS_QUIET - now;
    if (w->repeat < 0.01)
        w->repeat = 0.01;
    ev_timer_again(loop, w);
}

static void
tls_buffers_sweep_start(struct tls_buffers_list *l, struct ev_loop *loop)
{
    if (ev_is_active(&l->sweep))
        return;
    l->loop = loop;
    ev_init(&l->sweep, tls_buffers_sweep_cb);
    l->sweep.repeat = TLS_BUFFERS_QUIET;
    ev_timer_again(loop, &l->sweep);
    ev_unref(loop); /* a connection's own watchers keep the loop alive, not this timer */
}

void
tls_buffers_touch(struct conn *c)
{
    struct tls_buffers_list *l = &tls_buffers_list;

    c->tls_link.last_io = ev_now(c->loop);
    if (l->head == c)
        return;
    if (l->head != NULL && l->loop != c->loop) {
        /* A second loop on this thread (a short-lived one at load): no list for it, so
         * OpenSSL frees its buffers itself after each call, as before. */
        SSL_set_mode(c->ssl, SSL_MODE_RELEASE_BUFFERS);
        return;
    }
    if (c->tls_link.linked)
        tls_buffers_unlink(l, c);
    tls_buffers_push(l, c);
    tls_buffers_sweep_start(l, c->loop);
    if (l->n > TLS_BUFFERS_HOT)
        tls_buffers_release(l, l->tail, c->tls_link.last_io);
}

void
tls_buffers_forget(struct conn *c)
{
    struct tls_buffers_list *l = &tls_buffers_list;

    if (!c->tls_link.linked)
        return;
    tls_buffers_unlink(l, c);
    if (l->head == NULL)
        tls_buffers_sweep_stop(l);
}

unsigned
tls_buffers_held(void)
{
    return tls_buffers_list.n;
}
