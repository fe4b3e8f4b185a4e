/* budget.c - the memory budget (see budget.h). One mutex and one condition
 * variable (CLOCK_MONOTONIC); waiters queue in arrival order (a list of
 * nodes on their own stacks) and only the first may take memory, so a large
 * reservation is not starved by a stream of small ones; only the smallest
 * may pass it, within a lane of their own (budget.h). */
#include "budget.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

typedef struct waiter {
    struct waiter *next;
    size_t bytes;
} waiter;

struct aecd_budget {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t limit, used, peak;
    size_t passed;       /* of used: held by reservations that passed a waiter */
    waiter *head, *tail; /* who waits, first come first */
    long waiting;
    int stopped;
};

static void unlink_waiter(aecd_budget *b, waiter *w)
{
    waiter **p = &b->head, *prev = NULL;
    while (*p && *p != w) {
        prev = *p;
        p = &(*p)->next;
    }
    if (!*p)
        return;
    *p = w->next;
    if (b->tail == w)
        b->tail = prev;
}

aecd_budget *aecd_budget_create(size_t limit)
{
    aecd_budget *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    pthread_condattr_t attr;
    if (pthread_condattr_init(&attr) != 0) {
        free(b);
        return NULL;
    }
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    int ok = pthread_cond_init(&b->cv, &attr) == 0;
    pthread_condattr_destroy(&attr);
    if (!ok || pthread_mutex_init(&b->mu, NULL) != 0) {
        if (ok)
            pthread_cond_destroy(&b->cv);
        free(b);
        return NULL;
    }
    b->limit = limit;
    return b;
}

void aecd_budget_free(aecd_budget *b)
{
    if (!b)
        return;
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv);
    free(b);
}

static struct timespec to_timespec(uint64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000u),
                          .tv_nsec = (long)(ns % 1000000000u)};
    return ts;
}

size_t aecd_budget_small(const aecd_budget *b)
{
    size_t s = b->limit / AECD_BUDGET_SMALL_DIV;
    return s < AECD_BUDGET_SMALL_MAX ? s : AECD_BUDGET_SMALL_MAX;
}

/* Whether a reservation that is not first in line may take bytes now: a
 * small one, within the lane, while the first waiter would still fit once
 * everything outside the lane is released. */
static int may_pass(const aecd_budget *b, size_t bytes)
{
    size_t lane = b->limit / AECD_BUDGET_LANE_DIV;
    return bytes <= aecd_budget_small(b) && b->passed + bytes <= lane &&
           b->head->bytes <= b->limit - lane && b->limit - b->used >= bytes;
}

/* 1 when me may take its bytes now (*passed: by passing the first waiter). */
static int can_go(const aecd_budget *b, const waiter *me, int *passed)
{
    if (b->head == me)
        return b->limit - b->used >= me->bytes;
    return *passed = may_pass(b, me->bytes);
}

aecd_budget_result aecd_budget_reserve(aecd_budget *b, size_t bytes, uint64_t deadline_ns,
                                       int *passed)
{
    *passed = 0;
    if (bytes > b->limit)
        return AECD_BUDGET_NEVER;
    pthread_mutex_lock(&b->mu);
    waiter me = {NULL, bytes};
    if (b->tail)
        b->tail->next = &me;
    else
        b->head = &me;
    b->tail = &me;
    b->waiting++;
    aecd_budget_result r = AECD_BUDGET_OK;
    struct timespec until = to_timespec(deadline_ns);
    while (!b->stopped && !can_go(b, &me, passed)) {
        if (pthread_cond_timedwait(&b->cv, &b->mu, &until) == ETIMEDOUT && !b->stopped &&
            !can_go(b, &me, passed)) {
            r = AECD_BUDGET_TIMEOUT;
            break;
        }
    }
    if (b->stopped)
        r = AECD_BUDGET_STOPPED;
    if (r == AECD_BUDGET_OK) {
        b->used += bytes;
        if (*passed)
            b->passed += bytes;
        if (b->used > b->peak)
            b->peak = b->used;
    } else
        *passed = 0;
    unlink_waiter(b, &me);
    b->waiting--;
    pthread_cond_broadcast(&b->cv); /* the next one may fit now */
    pthread_mutex_unlock(&b->mu);
    return r;
}

void aecd_budget_release(aecd_budget *b, size_t bytes, int passed)
{
    if (!bytes)
        return;
    pthread_mutex_lock(&b->mu);
    b->used = bytes > b->used ? 0 : b->used - bytes;
    if (passed)
        b->passed = bytes > b->passed ? 0 : b->passed - bytes;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

void aecd_budget_stop(aecd_budget *b)
{
    pthread_mutex_lock(&b->mu);
    b->stopped = 1;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

size_t aecd_budget_limit(const aecd_budget *b)
{
    return b->limit;
}

size_t aecd_budget_used(aecd_budget *b)
{
    pthread_mutex_lock(&b->mu);
    size_t u = b->used;
    pthread_mutex_unlock(&b->mu);
    return u;
}

size_t aecd_budget_peak(aecd_budget *b)
{
    pthread_mutex_lock(&b->mu);
    size_t p = b->peak;
    pthread_mutex_unlock(&b->mu);
    return p;
}

long aecd_budget_waiting(aecd_budget *b)
{
    pthread_mutex_lock(&b->mu);
    long w = b->waiting;
    pthread_mutex_unlock(&b->mu);
    return w;
}

size_t aecd_budget_default_limit(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    unsigned long long ram =
        pages > 0 && page > 0 ? (unsigned long long)pages * (unsigned long long)page : 0;
    FILE *f = fopen("/sys/fs/cgroup/memory.max", "r");
    if (f) {
        unsigned long long cg;
        if (fscanf(f, "%llu", &cg) == 1 && cg > 0 && (ram == 0 || cg < ram))
            ram = cg; /* "max" (no limit) does not scan */
        fclose(f);
    }
    unsigned long long half = ram / 2, floor = 256ull << 20;
    if (half < floor)
        half = floor;
    return half > SIZE_MAX ? SIZE_MAX : (size_t)half;
}
