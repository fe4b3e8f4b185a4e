/* test_aecd_workers.c - the request worker pool alone (src/server/workers.h):
 *   - every submitted task runs exactly once;
 *   - with every thread busy, new work beyond the capacity is refused, and
 *     continuations never are;
 *   - continuations run before new work that was queued earlier;
 *   - after close, submit fails and join runs what is queued.
 * The busy thread is held on a gate the test opens, so nothing depends on
 * timing. */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "workers.h"

typedef struct {
    aecd_task task;
    int id;
} ttask;

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static int g_open;           /* the gate */
static atomic_int g_blocked; /* tasks waiting at the gate */
static int g_order[64], g_n;
static atomic_int g_runs;

static void record(aecd_task *t)
{
    ttask *tt = (ttask *)t;
    pthread_mutex_lock(&g_mu);
    if (g_n < 64)
        g_order[g_n++] = tt->id;
    pthread_mutex_unlock(&g_mu);
    atomic_fetch_add(&g_runs, 1);
}

static void gate(aecd_task *t)
{
    atomic_fetch_add(&g_blocked, 1);
    pthread_mutex_lock(&g_mu);
    while (!g_open)
        pthread_cond_wait(&g_cv, &g_mu);
    pthread_mutex_unlock(&g_mu);
    record(t);
}

static void open_gate(void)
{
    pthread_mutex_lock(&g_mu);
    g_open = 1;
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
}

static void wait_runs(int n)
{
    for (int i = 0; i < 20000 && atomic_load(&g_runs) < n; i++)
        usleep(1000);
}

int main(void)
{
    /* many tasks, each run once */
    aecd_workers *w = aecd_workers_create(3, 1000);
    REQUIRE(w, "create");
    static ttask many[500];
    int ok = 1;
    for (int i = 0; i < 500; i++) {
        many[i] = (ttask){.task = {.run = record}, .id = i};
        ok &= aecd_workers_submit(w, &many[i].task) == 0;
    }
    wait_runs(500);
    CHECK(ok && atomic_load(&g_runs) == 500, "500 tasks submitted and run (%d)",
          atomic_load(&g_runs));
    aecd_workers_free(w);

    /* one thread (so that the order of runs is the order of taking), held at
     * the gate; capacity 2 */
    atomic_store(&g_runs, 0);
    g_n = 0;
    w = aecd_workers_create(1, 2);
    REQUIRE(w, "create");
    ttask held = {{gate, NULL}, 100};
    aecd_workers_submit(w, &held.task);
    for (int i = 0; i < 20000 && atomic_load(&g_blocked) < 1; i++)
        usleep(1000);
    REQUIRE(atomic_load(&g_blocked) == 1, "the thread is busy");
    ttask fresh[3] = {{{record, NULL}, 1}, {{record, NULL}, 2}, {{record, NULL}, 3}};
    CHECK(aecd_workers_submit(w, &fresh[0].task) == 0 &&
              aecd_workers_submit(w, &fresh[1].task) == 0,
          "two new tasks queue (capacity 2)");
    CHECK(aecd_workers_depth(w) == 2, "depth 2");
    CHECK(aecd_workers_submit(w, &fresh[2].task) != 0, "a third is refused: the queue is full");
    ttask cont[3] = {{{record, NULL}, 10}, {{record, NULL}, 11}, {{record, NULL}, 12}};
    for (int i = 0; i < 3; i++)
        aecd_workers_continue(w, &cont[i].task); /* never refused */
    open_gate();
    wait_runs(6);
    CHECK(atomic_load(&g_runs) == 6, "every accepted task ran: %d of 6", atomic_load(&g_runs));
    /* after the gated one, the continuations come before the new work */
    int first_fresh = 64, last_cont = -1;
    for (int i = 0; i < g_n; i++) {
        if (g_order[i] >= 10 && g_order[i] < 20)
            last_cont = i;
        if (g_order[i] < 10 && i < first_fresh)
            first_fresh = i;
    }
    CHECK(last_cont >= 0 && last_cont < first_fresh,
          "continuations ran before new work queued earlier (last continuation at %d, first new"
          " at %d)",
          last_cont, first_fresh);

    /* close: submit fails; join runs what is queued */
    aecd_workers_close(w);
    ttask late = {{record, NULL}, 50};
    CHECK(aecd_workers_submit(w, &late.task) != 0, "closed: submit refused");
    ttask tail = {{record, NULL}, 60};
    aecd_workers_continue(w, &tail.task);
    aecd_workers_join(w);
    CHECK(atomic_load(&g_runs) == 7, "join ran the queued continuation (%d runs)",
          atomic_load(&g_runs));
    aecd_workers_free(w);
    return TEST_SUMMARY();
}
