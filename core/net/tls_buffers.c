/* core/net/tls_buffers.c: which TLS connections keep OpenSSL's record buffers. See
 * tls_buffers.h. One list per thread, most recently active at the head; one timer per
 * thread frees the buffers of the connections at the tail that have been quiet long
 * enough. The timer does not keep the loop alive (ev_unref) and runs only while the
 * list is not empty. */
#include "net/tls_buffers.h"

struct tls_buffers_list {
    struct tls_buffers_link *head; /* borrows: most recently active */
    struct tls_buffers_link *tail; /* borrows: least recently active */
    unsigned                 n;
    struct ev_loop          *loop; /* borrows: the loop of every connection in the list */
    ev_timer                 sweep;
};

static __thread struct tls_buffers_list tls_buffers_list;

static void
tls_buffers_unlink(struct tls_buffers_list *l, struct tls_buffers_link *k)
{
    if (k->prev != NULL)
        k->prev->next = k->next;
    else
        l->head = k->next;
    if (k->next != NULL)
        k->next->prev = k->prev;
    else
        l->tail = k->prev;
    k->prev = k->next = NULL;
    k->linked = false;
    l->n--;
}

static void
tls_buffers_push(struct tls_buffers_list *l, struct tls_buffers_link *k)
{
    k->prev = NULL;
    k->next = l->head;
    if (l->head != NULL)
        l->head->prev = k;
    else
        l->tail = k;
    l->head = k;
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

/* Free k's buffers and drop it from the list; a connection whose buffers still hold data
 * (a record read ahead, a write not yet sent) keeps them and goes back to the head. */
static void
tls_buffers_release(struct tls_buffers_list *l, struct tls_buffers_link *k, ev_tstamp now)
{
    tls_buffers_unlink(l, k);
    if (SSL_free_buffers(k->ssl) == 1)
        return;
    k->last_io = now;
    tls_buffers_push(l, k);
}

static void
tls_buffers_sweep_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct tls_buffers_list *l = &tls_buffers_list;
    ev_tstamp                now = ev_now(loop);

    (void)revents;
    /* Bounded: a connection put back at the head has last_io == now and ends the walk. */
    while (l->tail != NULL && now - l->tail->last_io >= TLS_BUFFERS_QUIET)
        tls_buffers_release(l, l->tail, now);
    if (l->tail == NULL) {
        tls_buffers_sweep_stop(l);
        return;
    }
    w->repeat = l->tail->last_io + TLS_BUFFERS_QUIET - now;
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
tls_buffers_touch(struct tls_buffers_link *k, SSL *ssl, struct ev_loop *loop)
{
    struct tls_buffers_list *l = &tls_buffers_list;

    k->last_io = ev_now(loop);
    if (l->head == k)
        return;
    if (l->head != NULL && l->loop != loop) {
        /* A second loop on this thread (a short-lived one at load): no list for it, so
         * OpenSSL frees its buffers itself after each call, as before. */
        SSL_set_mode(ssl, SSL_MODE_RELEASE_BUFFERS);
        return;
    }
    k->ssl = ssl;
    if (k->linked)
        tls_buffers_unlink(l, k);
    tls_buffers_push(l, k);
    tls_buffers_sweep_start(l, loop);
    if (l->n > TLS_BUFFERS_HOT)
        tls_buffers_release(l, l->tail, k->last_io);
}

void
tls_buffers_forget(struct tls_buffers_link *k)
{
    struct tls_buffers_list *l = &tls_buffers_list;

    if (!k->linked)
        return;
    tls_buffers_unlink(l, k);
    if (l->head == NULL)
        tls_buffers_sweep_stop(l);
}

unsigned
tls_buffers_held(void)
{
    return tls_buffers_list.n;
}
