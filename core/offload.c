/* core/offload.c: thread pool with per-loop return queues; see offload.h. */
#include "offload.h"

#include <stddef.h>
#include <stdlib.h>

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

struct offload {
    pthread_mutex_t     mu;      /* guards head, tail, stopping */
    pthread_cond_t      cv;
    struct offload_job *head;
    struct offload_job *tail;
    bool                stopping;
    int                 nthreads;
    pthread_t          *threads; /* owns */
};

struct offload_return {
    struct ev_loop     *loop;  /* borrows */
    ev_async            async;
    pthread_mutex_t     mu;    /* guards done_head and the ev_async_send() on async */
    struct offload_job *done_head;
};

static void *
offload_thread(void *arg)
{
    struct offload *o = arg;

    for (;;) {
        struct offload_job    *job;
        struct offload_return *r;

        pthread_mutex_lock(&o->mu);
        while (o->head == NULL && !o->stopping)
            pthread_cond_wait(&o->cv, &o->mu);
        job = o->head;
        if (job == NULL) {
            pthread_mutex_unlock(&o->mu);
            return NULL;
        }
        o->head = job->next;
        if (o->head == NULL)
            o->tail = NULL;
        pthread_mutex_unlock(&o->mu);

        job->work(job);
        r = job->ret;
        pthread_mutex_lock(&r->mu);
        job->next = r->done_head;
        r->done_head = job;
        /* Under mu: once the job is on the list, its loop may run done(), finish and
         * free r; offload_return_free() takes mu, so it waits for this send. */
        ev_async_send(r->loop, &r->async);
        pthread_mutex_unlock(&r->mu);
    }
}

struct offload *
offload_new(int nthreads)
{
    struct offload *o = calloc(1, sizeof(*o));

    if (o == NULL)
        return NULL;
    pthread_mutex_init(&o->mu, NULL);
    pthread_cond_init(&o->cv, NULL);
    o->threads = calloc((size_t)nthreads, sizeof(pthread_t));
    if (o->threads == NULL)
        goto fail;
    for (o->nthreads = 0; o->nthreads < nthreads; o->nthreads++) {
        if (pthread_create(&o->threads[o->nthreads], NULL, offload_thread, o) != 0)
            goto fail;
    }
    return o;
fail:
    offload_free(o);
    return NULL;
}

void
offload_free(struct offload *o)
{
    if (o == NULL)
        return;
    pthread_mutex_lock(&o->mu);
    o->stopping = true;
    pthread_cond_broadcast(&o->cv);
    pthread_mutex_unlock(&o->mu);
    for (int i = 0; i < o->nthreads; i++)
        pthread_join(o->threads[i], NULL);
    free(o->threads);
    pthread_mutex_destroy(&o->mu);
    pthread_cond_destroy(&o->cv);
    free(o);
}

static void
offload_return_cb(struct ev_loop *loop, ev_async *w, int revents)
{
    struct offload_return *r = container_of(w, struct offload_return, async);
    struct offload_job    *list, *rev = NULL;

    (void)loop;
    (void)revents;
    pthread_mutex_lock(&r->mu);
    list = r->done_head;
    r->done_head = NULL;
    pthread_mutex_unlock(&r->mu);
    while (list != NULL) { /* restore submission order */
        struct offload_job *next = list->next;

        list->next = rev;
        rev = list;
        list = next;
    }
    while (rev != NULL) {
        struct offload_job *next = rev->next;

        rev->done(rev);
        rev = next;
    }
}

struct offload_return *
offload_return_new(struct ev_loop *loop)
{
    struct offload_return *r = calloc(1, sizeof(*r));

    if (r == NULL)
        return NULL;
    r->loop = loop;
    pthread_mutex_init(&r->mu, NULL);
    ev_async_init(&r->async, offload_return_cb);
    ev_async_start(loop, &r->async);
    ev_unref(loop); /* a worker with no sessions may leave its loop */
    return r;
}

void
offload_return_free(struct offload_return *r)
{
    if (r == NULL)
        return;
    ev_ref(r->loop);
    ev_async_stop(r->loop, &r->async);
    pthread_mutex_lock(&r->mu); /* a pool thread may still be in ev_async_send() on r */
    pthread_mutex_unlock(&r->mu);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

void
offload_submit(struct offload *o, struct offload_return *r, struct offload_job *job)
{
    job->ret = r;
    job->next = NULL;
    pthread_mutex_lock(&o->mu);
    if (o->tail != NULL)
        o->tail->next = job;
    else
        o->head = job;
    o->tail = job;
    pthread_cond_signal(&o->cv);
    pthread_mutex_unlock(&o->mu);
}
