/* workers.c - the request worker pool (see workers.h). One mutex and one
 * condition variable guard both queues; a worker sleeps only when both are
 * empty, and exits when the pool is being destroyed and both are empty. */
#include "workers.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

typedef struct {
    aecd_task *head, *tail;
} task_list;

struct aecd_workers {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    task_list fresh;    /* new work, bounded by capacity */
    task_list followup; /* continuations, first served */
    atomic_long fresh_count;
    long capacity;
    int closed, exiting;
    int nthreads;
    pthread_t *threads;
};

static void list_push(task_list *l, aecd_task *t)
{
    t->next = NULL;
    if (l->tail)
        l->tail->next = t;
    else
        l->head = t;
    l->tail = t;
}

static aecd_task *list_pop(task_list *l)
{
    aecd_task *t = l->head;
    if (t) {
        l->head = t->next;
        if (!l->head)
            l->tail = NULL;
        t->next = NULL;
    }
    return t;
}

static void *worker_main(void *arg)
{
    aecd_workers *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        aecd_task *t = list_pop(&w->followup);
        if (!t && (t = list_pop(&w->fresh)) != NULL)
            atomic_fetch_sub(&w->fresh_count, 1);
        if (t) {
            pthread_mutex_unlock(&w->mu);
            t->run(t);
            pthread_mutex_lock(&w->mu);
            continue;
        }
        if (w->exiting)
            break;
        pthread_cond_wait(&w->cv, &w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

aecd_workers *aecd_workers_create(int nthreads, int capacity)
{
    aecd_workers *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->threads = calloc((size_t)nthreads, sizeof *w->threads);
    if (!w->threads || pthread_mutex_init(&w->mu, NULL) != 0) {
        free(w->threads);
        free(w);
        return NULL;
    }
    if (pthread_cond_init(&w->cv, NULL) != 0) {
        pthread_mutex_destroy(&w->mu);
        free(w->threads);
        free(w);
        return NULL;
    }
    w->capacity = capacity;
    for (int i = 0; i < nthreads; i++) {
        if (pthread_create(&w->threads[i], NULL, worker_main, w) != 0) {
            aecd_workers_free(w); /* joins the ones started */
            return NULL;
        }
        w->nthreads = i + 1;
    }
    return w;
}

int aecd_workers_submit(aecd_workers *w, aecd_task *t)
{
    int rc = -1;
    pthread_mutex_lock(&w->mu);
    if (!w->closed && atomic_load(&w->fresh_count) < w->capacity) {
        list_push(&w->fresh, t);
        atomic_fetch_add(&w->fresh_count, 1);
        pthread_cond_signal(&w->cv);
        rc = 0;
    }
    pthread_mutex_unlock(&w->mu);
    return rc;
}

void aecd_workers_continue(aecd_workers *w, aecd_task *t)
{
    pthread_mutex_lock(&w->mu);
    list_push(&w->followup, t);
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

long aecd_workers_depth(aecd_workers *w)
{
    return atomic_load(&w->fresh_count);
}

void aecd_workers_close(aecd_workers *w)
{
    pthread_mutex_lock(&w->mu);
    w->closed = 1;
    pthread_mutex_unlock(&w->mu);
}

void aecd_workers_join(aecd_workers *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->closed = 1;
    w->exiting = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    for (int i = 0; i < w->nthreads; i++)
        pthread_join(w->threads[i], NULL);
    w->nthreads = 0;
}

void aecd_workers_free(aecd_workers *w)
{
    if (!w)
        return;
    aecd_workers_join(w);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w->threads);
    free(w);
}
