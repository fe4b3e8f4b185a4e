/* test_aecd_watchdog.c - the request-header deadline alone
 * (src/server/watchdog.h), on socket pairs:
 *   - a connection whose header does not arrive within the timeout is shut
 *     down (the peer reads end-of-file) and reported expired;
 *   - one whose header arrived is left alone however long its request runs,
 *     until the request ends, when the next header's clock starts;
 *   - closing an entry stops watching it.
 * The timeout is 1 s and the checks wait up to 20 s for what must happen;
 * what must not happen is checked on entries that are not being watched,
 * so no check depends on the machine's speed. */
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"
#include "watchdog.h"

/* 1 once the peer of a shut-down socket reads end-of-file (within 20 s). */
static int peer_sees_eof(int peer)
{
    struct pollfd p = {.fd = peer, .events = POLLIN};
    if (poll(&p, 1, 20000) != 1)
        return 0;
    char c;
    return read(peer, &c, 1) == 0;
}

int main(void)
{
    aecd_watchdog *w = aecd_watchdog_create(1);
    REQUIRE(w, "create");
    int late[2], busy[2], gone[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, late) == 0 &&
                socketpair(AF_UNIX, SOCK_STREAM, 0, busy) == 0 &&
                socketpair(AF_UNIX, SOCK_STREAM, 0, gone) == 0,
            "socketpair");

    aecd_watch *l = aecd_watch_open(w, late[0]);
    aecd_watch *b = aecd_watch_open(w, busy[0]);
    aecd_watch *g = aecd_watch_open(w, gone[0]);
    REQUIRE(l && b && g, "open");
    aecd_watch_headers_done(w, b); /* its request is running */
    aecd_watch_close(w, g);        /* closed before its deadline */

    CHECK(peer_sees_eof(late[1]), "a connection without its header is shut down");
    CHECK(aecd_watch_expired(w, l), "and reported expired");

    /* the running request was not touched: its peer still reads nothing */
    struct pollfd p = {.fd = busy[1], .events = POLLIN};
    CHECK(poll(&p, 1, 0) == 0 && !aecd_watch_expired(w, b),
          "a connection whose header arrived is left alone");
    p.fd = gone[1];
    CHECK(poll(&p, 1, 0) == 0, "a closed entry is not shut down");

    /* its request ends: the next header's deadline starts */
    aecd_watch_request_done(w, b);
    CHECK(peer_sees_eof(busy[1]), "after its request, a kept-alive connection is watched again");
    CHECK(aecd_watch_expired(w, b), "and expires");

    aecd_watch_close(w, l);
    aecd_watch_close(w, b);
    aecd_watchdog_free(w);
    for (int i = 0; i < 2; i++)
        close(late[i]), close(busy[i]), close(gone[i]);
    return TEST_SUMMARY();
}
