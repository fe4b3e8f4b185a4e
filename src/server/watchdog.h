/* watchdog.h - the request-header deadline (--header-timeout).
 *
 * libmicrohttpd's own timeout (--timeout) is an inactivity timeout: a client
 * that sends one header byte just before each timeout (slowloris) keeps its
 * connection for as long as it likes, and --max-connections of them lock
 * everyone else out. The watchdog bounds the whole header instead: a
 * connection whose request header has not fully arrived within
 * header_timeout seconds of the connection opening (or of the end of its
 * previous request, on a kept-alive connection) is shut down.
 *
 * One entry per connection, created and destroyed from libmicrohttpd's
 * connection notifications (which run before the socket is closed, so the
 * descriptor an entry holds is always the connection's own). A thread
 * sweeps the entries a few times per header_timeout and calls
 * shutdown(2) on the late ones, under the same mutex that guards creation
 * and destruction; libmicrohttpd then sees the connection end and closes
 * it in its own thread as usual. Bodies are not watched: --timeout and
 * --max-body bound them.
 */
#ifndef AECD_WATCHDOG_H
#define AECD_WATCHDOG_H

typedef struct aecd_watchdog aecd_watchdog;
typedef struct aecd_watch aecd_watch; /* one connection */

/* Starts the sweeping thread. NULL on failure. */
aecd_watchdog *aecd_watchdog_create(int header_timeout_s);
/* Stops the thread and frees what is left. No other call may run or follow. */
void aecd_watchdog_free(aecd_watchdog *w);

/* A connection on socket fd opened: its header phase starts now. NULL when
 * out of memory (the connection is then not watched). */
aecd_watch *aecd_watch_open(aecd_watchdog *w, int fd);
/* The connection is closing (before its socket is closed). */
void aecd_watch_close(aecd_watchdog *w, aecd_watch *c);
/* The request header has arrived: stop watching until the request ends. */
void aecd_watch_headers_done(aecd_watchdog *w, aecd_watch *c);
/* The request has ended: the next request's header phase starts now. */
void aecd_watch_request_done(aecd_watchdog *w, aecd_watch *c);
/* 1 if the watchdog shut this connection down. */
int aecd_watch_expired(aecd_watchdog *w, aecd_watch *c);

#endif
