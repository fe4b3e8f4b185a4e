/* watchdog.c - the request-header deadline (see watchdog.h). A doubly linked
 * list of watched connections and one sweeping thread, all under one mutex:
 * every call is a few pointer moves, and a sweep walks at most
 * --max-connections entries a few times per --header-timeout. */
#include "watchdog.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#include "aec/clock.h"

#include "log.h"

struct aecd_watch {
    aecd_watch *prev, *next;
    int fd;
    int in_header;     /* waiting for a request header */
    int expired;       /* shut down by the watchdog */
    uint64_t since_ns; /* when the header phase began */
};

struct aecd_watchdog {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    aecd_watch *head;
    uint64_t timeout_ns, period_ns;
    int header_timeout_s;
    int stop;
};

static void sweep(aecd_watchdog *w)
{
    uint64_t now = aec_now_ns();
    long cut = 0;
    for (aecd_watch *c = w->head; c; c = c->next)
        if (c->in_header && !c->expired && now - c->since_ns > w->timeout_ns) {
            /* The connection's own thread sees the end of the stream and
             * closes it; its entry goes when it does. */
            shutdown(c->fd, SHUT_RDWR);
            c->expired = 1;
            cut++;
        }
    if (cut)
        aecd_logf(AECD_LOG_INFO,
                  "closed %ld connections whose request header took longer than %d s"
                  " (--header-timeout)",
                  cut, w->header_timeout_s);
}

static void *run(void *arg)
{
    aecd_watchdog *w = arg;
    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t at = (uint64_t)ts.tv_nsec + w->period_ns;
        ts.tv_sec += (time_t)(at / 1000000000u);
        ts.tv_nsec = (long)(at % 1000000000u);
        int rc = pthread_cond_timedwait(&w->cv, &w->mu, &ts);
        if (rc == ETIMEDOUT && !w->stop)
            sweep(w);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

aecd_watchdog *aecd_watchdog_create(int header_timeout_s)
{
    aecd_watchdog *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->header_timeout_s = header_timeout_s;
    w->timeout_ns = (uint64_t)header_timeout_s * 1000000000u;
    w->period_ns = w->timeout_ns / 8 < 250000000u ? w->timeout_ns / 8 : 250000000u;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int ok = pthread_mutex_init(&w->mu, NULL) == 0;
    ok = ok && pthread_cond_init(&w->cv, &ca) == 0;
    pthread_condattr_destroy(&ca);
    if (!ok || pthread_create(&w->thread, NULL, run, w) != 0) {
        free(w);
        return NULL;
    }
    return w;
}

void aecd_watchdog_free(aecd_watchdog *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    while (w->head) {
        aecd_watch *c = w->head;
        w->head = c->next;
        free(c);
    }
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

aecd_watch *aecd_watch_open(aecd_watchdog *w, int fd)
{
    aecd_watch *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->fd = fd;
    c->in_header = 1;
    c->since_ns = aec_now_ns();
    pthread_mutex_lock(&w->mu);
    c->next = w->head;
    if (w->head)
        w->head->prev = c;
    w->head = c;
    pthread_mutex_unlock(&w->mu);
    return c;
}

void aecd_watch_close(aecd_watchdog *w, aecd_watch *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&w->mu);
    if (c->prev)
        c->prev->next = c->next;
    else
        w->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    pthread_mutex_unlock(&w->mu);
    free(c);
}

void aecd_watch_headers_done(aecd_watchdog *w, aecd_watch *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&w->mu);
    c->in_header = 0;
    pthread_mutex_unlock(&w->mu);
}

void aecd_watch_request_done(aecd_watchdog *w, aecd_watch *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&w->mu);
    c->in_header = 1;
    c->since_ns = aec_now_ns();
    pthread_mutex_unlock(&w->mu);
}

int aecd_watch_expired(aecd_watchdog *w, aecd_watch *c)
{
    if (!c)
        return 0;
    pthread_mutex_lock(&w->mu);
    int e = c->expired;
    pthread_mutex_unlock(&w->mu);
    return e;
}
