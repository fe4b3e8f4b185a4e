/* test_aecd_budget.c - the memory budget alone (src/server/budget.h):
 * reservations within the limit, NEVER beyond it, waiting until memory is
 * released, first come first served (a large waiter is not passed by small
 * ones that arrive after it), except the smallest, which may pass it
 * within their lane and only while it can still fit (never starved),
 * TIMEOUT at the deadline, STOPPED on stop.
 * Waiting threads are observed through aecd_budget_waiting, so no check
 * depends on the machine's speed. */
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "aec/clock.h"

#include "budget.h"
#include "testutil.h"

#define MiB ((size_t)1 << 20)

typedef struct {
    aecd_budget *b;
    size_t bytes;
    uint64_t deadline;
    atomic_int done;
    aecd_budget_result r;
    int passed;
} taker;

static void *take(void *arg)
{
    taker *t = arg;
    t->r = aecd_budget_reserve(t->b, t->bytes, t->deadline, &t->passed);
    atomic_store(&t->done, 1);
    return NULL;
}

static uint64_t in_s(int s)
{
    return aec_now_ns() + (uint64_t)s * 1000000000u;
}

static void wait_waiting(aecd_budget *b, long n)
{
    for (int i = 0; i < 20000 && aecd_budget_waiting(b) < n; i++)
        usleep(1000);
}

static int wait_done(taker *t)
{
    for (int i = 0; i < 20000 && !atomic_load(&t->done); i++)
        usleep(1000);
    return atomic_load(&t->done);
}

int main(void)
{
    aecd_budget *b = aecd_budget_create(100 * MiB);
    REQUIRE(b, "create");
    int passed;
    CHECK(aecd_budget_limit(b) == 100 * MiB, "limit");
    CHECK(aecd_budget_reserve(b, 101 * MiB, in_s(20), &passed) == AECD_BUDGET_NEVER,
          "more than the limit: NEVER, at once");
    CHECK(aecd_budget_reserve(b, 60 * MiB, in_s(20), &passed) == AECD_BUDGET_OK, "60 of 100: OK");
    CHECK(aecd_budget_used(b) == 60 * MiB, "used 60");

    /* a large waiter (50) first, then a small one (10) that would fit now:
     * the small one waits its turn */
    taker big = {.b = b, .bytes = 50 * MiB, .deadline = in_s(20)};
    taker small = {.b = b, .bytes = 10 * MiB, .deadline = in_s(20)};
    pthread_t tb, ts;
    pthread_create(&tb, NULL, take, &big);
    wait_waiting(b, 1);
    pthread_create(&ts, NULL, take, &small);
    wait_waiting(b, 2);
    CHECK(aecd_budget_waiting(b) == 2 && !atomic_load(&small.done),
          "the small reservation waits behind the large one, though it would fit");
    aecd_budget_release(b, 5 * MiB, 0); /* 55 used: still no room for the large one */
    usleep(50000);
    CHECK(!atomic_load(&big.done) && !atomic_load(&small.done),
          "first come, first served: the small one still waits while the large one cannot go");
    aecd_budget_release(b, 55 * MiB, 0);
    CHECK(wait_done(&big) && wait_done(&small), "both get their memory after the release");
    pthread_join(tb, NULL);
    pthread_join(ts, NULL);
    CHECK(big.r == AECD_BUDGET_OK && small.r == AECD_BUDGET_OK, "both reservations succeed");
    CHECK(aecd_budget_used(b) == 60 * MiB && aecd_budget_peak(b) == 60 * MiB,
          "used 60 (50 + 10), peak 60");

    /* small ones (at most 100/16 MiB) pass a waiter while memory is free,
     * up to the lane (100/8 MiB), and only while the waiter can still fit */
    aecd_budget_release(b, 60 * MiB, 0);
    CHECK(aecd_budget_reserve(b, 80 * MiB, in_s(20), &passed) == AECD_BUDGET_OK && !passed,
          "80 of 100, in line");
    taker wait30 = {.b = b, .bytes = 30 * MiB, .deadline = in_s(20)};
    pthread_t tw;
    pthread_create(&tw, NULL, take, &wait30);
    wait_waiting(b, 1);
    size_t tiny = aecd_budget_small(b);
    CHECK(tiny == 100 * MiB / AECD_BUDGET_SMALL_DIV, "small: a sixteenth of a small budget");
    int n_passed = 0;
    for (int i = 0; i < 4; i++) { /* 4 x 6.25 MiB: more than the 12.5 MiB lane */
        taker t = {.b = b, .bytes = tiny, .deadline = aec_now_ns() + 20000000u};
        take(&t);
        if (t.r == AECD_BUDGET_OK) {
            CHECK(t.passed, "a small reservation that got memory while another waited passed it");
            n_passed++;
        }
    }
    CHECK(n_passed == (int)((100 * MiB / AECD_BUDGET_LANE_DIV) / tiny),
          "small ones pass the waiter up to the lane: %d of 4 (lane %zu MiB)", n_passed,
          (size_t)100 / AECD_BUDGET_LANE_DIV);
    CHECK(!atomic_load(&wait30.done), "the waiter still waits (80 + the lane held)");
    taker big2 = {.b = b, .bytes = tiny + 1, .deadline = aec_now_ns() + 20000000u};
    take(&big2);
    CHECK(big2.r == AECD_BUDGET_TIMEOUT, "one byte above the small size waits in line");
    aecd_budget_release(b, 80 * MiB, 0); /* the lane's holders keep theirs */
    CHECK(wait_done(&wait30) && wait30.r == AECD_BUDGET_OK && !wait30.passed,
          "the waiter fits once what is held outside the lane is released");
    pthread_join(tw, NULL);
    aecd_budget_release(b, (size_t)n_passed * tiny, 1);
    CHECK(aecd_budget_used(b) == 30 * MiB, "used 30 after the lane's release");
    /* a waiter that needs more than the limit minus the lane: no one passes it */
    taker wait95 = {.b = b, .bytes = 95 * MiB, .deadline = in_s(20)};
    pthread_create(&tw, NULL, take, &wait95);
    wait_waiting(b, 1);
    /* 30 held: 95 cannot go yet */
    taker t1 = {.b = b, .bytes = tiny, .deadline = aec_now_ns() + 20000000u};
    take(&t1);
    CHECK(t1.r == AECD_BUDGET_TIMEOUT, "no passing a waiter that needs more than limit - lane");
    aecd_budget_release(b, 30 * MiB, 0);
    CHECK(wait_done(&wait95) && wait95.r == AECD_BUDGET_OK, "the 95 MiB waiter goes");
    pthread_join(tw, NULL);
    aecd_budget_release(b, 35 * MiB, 0); /* back to 60 used */
    CHECK(aecd_budget_used(b) == 60 * MiB, "used 60");

    /* a deadline that passes while waiting: TIMEOUT, nothing taken */
    CHECK(aecd_budget_reserve(b, 50 * MiB, aec_now_ns() + 50000000u, &passed) ==
              AECD_BUDGET_TIMEOUT,
          "no room before the deadline: TIMEOUT");
    CHECK(aecd_budget_used(b) == 60 * MiB, "a timed-out reservation takes nothing");

    /* stop wakes a waiter */
    taker late = {.b = b, .bytes = 90 * MiB, .deadline = in_s(20)};
    pthread_t tl;
    pthread_create(&tl, NULL, take, &late);
    wait_waiting(b, 1);
    aecd_budget_stop(b);
    CHECK(wait_done(&late) && late.r == AECD_BUDGET_STOPPED, "stop: the waiter gets STOPPED");
    pthread_join(tl, NULL);
    CHECK(aecd_budget_reserve(b, 1, in_s(20), &passed) == AECD_BUDGET_STOPPED,
          "after stop: STOPPED");
    aecd_budget_release(b, 60 * MiB, 0);
    CHECK(aecd_budget_used(b) == 0, "all released");
    aecd_budget_free(b);

    size_t d = aecd_budget_default_limit();
    CHECK(d >= 256 * MiB, "the default limit is at least 256 MiB (%zu MiB)", d / MiB);
    return TEST_SUMMARY();
}
