/* core/util/offload.c: thread pool with per-loop return queues; see offload.h. */
#include "util/offload.h"

#include <stddef.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

#define OFFLOAD_CLIENTS_MAX 1024 /* clients holding jobs at once: at most max_jobs of them */

/* How many jobs one client has queued or running. */
struct offload_client {
    char     key[OFFLOAD_CLIENT_MAX];
    unsigned jobs;
};

struct offload {
    pthread_mutex_t       mu;      /* guards everything below but nthreads and threads */
    pthread_cond_t        cv;
    struct offload_job   *head;
    struct offload_job   *tail;
    bool                  stopping;
    unsigned              max_jobs, max_per_client;
    unsigned              client_jobs; /* jobs of clients queued or running */
    size_t                n_clients;   /* used entries of clients, packed at the front */
    struct offload_client clients[OFFLOAD_CLIENTS_MAX];
    int                   nthreads;
    pthread_t            *threads; /* owns */
};

struct offload_return {
    struct ev_loop     *loop;  /* borrows */
    ev_async            async;
    pthread_mutex_t     mu;    /* guards done_head and the ev_async_send() on async */
    struct offload_job *done_head;
};

/* The entry of key, or NULL. Under mu. */
static struct offload_client *
offload_client_find(struct offload *o, const char *key)
{
    for (size_t i = 0; i < o->n_clients; i++)
        if (strcmp(o->clients[i].key, key) == 0)
            return &o->clients[i];
    return NULL;
}

/* One job of this client is over (done or skipped). Under mu. */
static void
offload_client_release(struct offload *o, const char *key)
{
    struct offload_client *c = offload_client_find(o, key);

    o->client_jobs--;
    if (c != NULL && --c->jobs == 0)
        *c = o->clients[--o->n_clients]; /* keep the used entries packed */
}

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

        if (!atomic_load_explicit(&job->cancelled, memory_order_acquire))
            job->work(job);
        if (job->client[0] != '\0') {
            pthread_mutex_lock(&o->mu);
            offload_client_release(o, job->client);
            pthread_mutex_unlock(&o->mu);
        }
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
offload_new(int nthreads, unsigned max_jobs, unsigned max_per_client)
{
    struct offload *o = calloc(1, sizeof(*o));

    if (o == NULL)
        return NULL;
    pthread_mutex_init(&o->mu, NULL);
    o->max_jobs = max_jobs;
    o->max_per_client = max_per_client;
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
    struct offload_job *list;

    if (r == NULL)
        return;
    ev_ref(r->loop);
    ev_async_stop(r->loop, &r->async);
    pthread_mutex_lock(&r->mu); /* a pool thread may still be in ev_async_send() on r */
    list = r->done_head;
    r->done_head = NULL;
    pthread_mutex_unlock(&r->mu);
    /* Jobs that finished after the loop stopped: their owners are gone by now (sessions
     * drained, clients freed), and each done() frees an orphaned job. Not calling them
     * leaked the job and the generation it holds at every stop with a check in flight. */
    while (list != NULL) {
        struct offload_job *next = list->next;

        list->done(list);
        list = next;
    }
    pthread_mutex_destroy(&r->mu);
    free(r);
}

static void
offload_enqueue(struct offload *o, struct offload_return *r, struct offload_job *job)
{
    job->ret = r;
    job->next = NULL;
    if (o->tail != NULL)
        o->tail->next = job;
    else
        o->head = job;
    o->tail = job;
    pthread_cond_signal(&o->cv);
}

void
offload_submit(struct offload *o, struct offload_return *r, struct offload_job *job)
{
    job->client[0] = '\0';
    atomic_init(&job->cancelled, false);
    pthread_mutex_lock(&o->mu);
    offload_enqueue(o, r, job);
    pthread_mutex_unlock(&o->mu);
}

enum offload_rc
offload_submit_for(struct offload *o, struct offload_return *r, struct offload_job *job,
                   const char *client)
{
    struct offload_client *c;
    enum offload_rc        rc = OFFLOAD_QUEUED;

    snprintf(job->client, sizeof(job->client), "%s", client[0] != '\0' ? client : "?");
    atomic_init(&job->cancelled, false);
    pthread_mutex_lock(&o->mu);
    c = offload_client_find(o, job->client);
    if (o->max_jobs != 0 && o->client_jobs >= o->max_jobs)
        rc = OFFLOAD_FULL;
    else if (o->max_per_client != 0 && c != NULL && c->jobs >= o->max_per_client)
        rc = OFFLOAD_CLIENT_FULL;
    else if (c == NULL && o->n_clients == OFFLOAD_CLIENTS_MAX)
        rc = OFFLOAD_FULL;
    if (rc == OFFLOAD_QUEUED) {
        if (c == NULL) {
            c = &o->clients[o->n_clients++];
            memcpy(c->key, job->client, sizeof(c->key));
            c->jobs = 0;
        }
        c->jobs++;
        o->client_jobs++;
        offload_enqueue(o, r, job);
    }
    pthread_mutex_unlock(&o->mu);
    return rc;
}

void
offload_cancel(struct offload_job *job)
{
    atomic_store_explicit(&job->cancelled, true, memory_order_release);
}

void
offload_set_limits(struct offload *o, unsigned max_jobs, unsigned max_per_client)
{
    pthread_mutex_lock(&o->mu);
    o->max_jobs = max_jobs;
    o->max_per_client = max_per_client;
    pthread_mutex_unlock(&o->mu);
}

unsigned
offload_client_jobs(struct offload *o)
{
    unsigned n;

    pthread_mutex_lock(&o->mu);
    n = o->client_jobs;
    pthread_mutex_unlock(&o->mu);
    return n;
}
