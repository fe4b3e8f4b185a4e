/* test_idle.c - 500 idle connections held open (slowloris-style) do not
 * block other clients. aecd runs with its default connection settings; the
 * test opens 500 TCP connections to it, half sending nothing and half
 * trickling a request header that never ends (a byte each per 100 ms), and
 * waits until aecd holds every one (its open descriptors, /proc/PID/fd).
 * Meanwhile a new client must get /healthz, /readyz and a real POST /encode
 * answered before a generous deadline, with the same latent as before the
 * crowd arrived, and none of the 500 may have been dropped. Once they are
 * closed, aecd's descriptors return to what they were and it still serves
 * the same answer.
 *
 * Then --header-timeout: with it at 2 s, a connection that trickles its
 * header (never idle long enough for --timeout) and one that sends nothing
 * are both closed, the first logged as 408 end=header_timeout, while a
 * header sent in pieces within the deadline, and a body sent slowly for
 * longer than it, are served.
 *
 * Needs about 1,100 file descriptors (500 here, 500 in aecd, which inherits
 * the limit): the soft limit is raised to the hard one, and the test skips
 * with a message when that is still too low. Linux only (/proc). */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "harness.h"

#define NIDLE 500
#define FDS_NEEDED (2 * NIDLE + 200) /* ours, aecd's, and room for both to work */
#define DEADLINE_MS 5000L            /* "promptly": answered before this */
#define TRICKLE_MS 100

static int g_fd[NIDLE];
static atomic_int g_stop;
static atomic_long g_trickled, g_send_errors;

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Raises the soft descriptor limit to the hard one; the limit after. */
static rlim_t raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 0;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    return rl.rlim_cur;
}

/* Open descriptors of a process, or -1. */
static int fd_count(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* Waits up to max_s for aecd's descriptor count to satisfy the comparison
 * with target (at_least: >=, else <=); returns the last count. */
static int wait_fds(pid_t pid, int target, int at_least, double max_s)
{
    double end = harness_seconds() + max_s;
    int n;
    for (;;) {
        n = fd_count(pid);
        if (n >= 0 && (at_least ? n >= target : n <= target))
            return n;
        if (harness_seconds() > end)
            return n;
        sleep_ms(50);
    }
}

/* The odd connections: a request header that never ends, one byte each per
 * TRICKLE_MS, so that none of them is ever idle for long. */
static void *trickle(void *arg)
{
    (void)arg;
    static const char line[] = "X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
    size_t at = 0;
    while (!atomic_load(&g_stop)) {
        for (int i = 1; i < NIDLE; i += 2)
            if (g_fd[i] >= 0) {
                if (send(g_fd[i], &line[at], 1, MSG_NOSIGNAL | MSG_DONTWAIT) == 1)
                    atomic_fetch_add(&g_trickled, 1);
                else
                    atomic_fetch_add(&g_send_errors, 1);
            }
        at = (at + 1) % (sizeof line - 1);
        sleep_ms(TRICKLE_MS);
    }
    return NULL;
}

/* 1 if the server has not closed fd (nothing to read, no EOF, no error). */
static int still_open(int fd)
{
    char c;
    ssize_t r = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

/* /healthz, /readyz and /encode from a new client, each answered before
 * DEADLINE_MS; the latent must equal expect. */
static void serve_check(const aecd_proc *p, const uint8_t *png, size_t n, const http_resp *expect,
                        const char *when)
{
    http_opts get = {.timeout_ms = DEADLINE_MS};
    http_resp r;
    double t0 = harness_seconds();
    long st = http_request(p, "/healthz", &get, &r);
    CHECK(st == 200, "/healthz %s: status %ld (curl %d) after %.2f s", when, st, r.curl_code,
          harness_seconds() - t0);
    http_resp_free(&r);
    st = http_request(p, "/readyz", &get, &r);
    CHECK(st == 200, "/readyz %s: status %ld (curl %d)", when, st, r.curl_code);
    http_resp_free(&r);
    http_opts post = {
        .content_type = "image/png", .body = png, .len = n, .timeout_ms = DEADLINE_MS};
    t0 = harness_seconds();
    st = http_request(p, "/encode", &post, &r);
    CHECK(st == 200, "/encode %s: status %ld (curl %d) after %.2f s", when, st, r.curl_code,
          harness_seconds() - t0);
    CHECK(st != 200 || (r.len == expect->len && memcmp(r.body, expect->body, r.len) == 0),
          "/encode %s gives the same latent as before", when);
    http_resp_free(&r);
}

/* Sends one byte to fd every 200 ms until the server closes it; seconds
 * waited, or -1 if it is still open after max_s. */
static double trickle_until_closed(int fd, double max_s)
{
    double t0 = harness_seconds();
    while (harness_seconds() - t0 < max_s) {
        char c;
        ssize_t r = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
            return harness_seconds() - t0;
        if (r > 0) { /* a reply: read it and wait for the close */
            char buf[512];
            while (recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0) {
            }
        }
        send(fd, "a", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        sleep_ms(200);
    }
    return -1;
}

static void send_all(int fd, const void *p, size_t n)
{
    REQUIRE(send(fd, p, n, MSG_NOSIGNAL) == (ssize_t)n, "send");
}

/* Reads a reply's status line from fd (up to max_s); the status, or 0. */
static int read_status(int fd, double max_s)
{
    struct timeval tv = {(long)max_s, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[64];
    size_t got = 0;
    while (got < 12) {
        ssize_t r = recv(fd, buf + got, sizeof buf - 1 - got, 0);
        if (r <= 0)
            return 0;
        got += (size_t)r;
    }
    buf[got] = '\0';
    int status = 0;
    return sscanf(buf, "HTTP/1.1 %d", &status) == 1 ? status : 0;
}

static void test_header_timeout(const char *model, const uint8_t *png, size_t n)
{
    aecd_proc p;
    const char *args[] = {"--header-timeout", "2", NULL}; /* --timeout stays 30 */
    harness_start(&p, model, args, NULL);

    int slow = raw_connect(p.port), silent = raw_connect(p.port);
    int pieces = raw_connect(p.port), body = raw_connect(p.port);
    REQUIRE(slow >= 0 && silent >= 0 && pieces >= 0 && body >= 0, "connect");
    static const char start[] = "POST /encode HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
    send_all(slow, start, sizeof start - 1);

    /* a header in two pieces, within the deadline, is served */
    static const char get1[] = "GET /healthz HTTP/1.1\r\n";
    static const char get2[] = "Host: 127.0.0.1\r\n\r\n";
    send_all(pieces, get1, sizeof get1 - 1);
    sleep_ms(500);
    send_all(pieces, get2, sizeof get2 - 1);
    CHECK(read_status(pieces, 10) == 200, "a header sent in pieces within the deadline is served");

    /* a body may take longer than --header-timeout: only the header is timed */
    char head[256];
    int hl = snprintf(head, sizeof head,
                      "POST /encode HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
                      "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                      n);
    send_all(body, head, (size_t)hl);
    size_t step = n / 15 + 1;
    for (size_t at = 0; at < n; at += step) {
        send_all(body, png + at, at + step <= n ? step : n - at);
        sleep_ms(200); /* about 3 s in all */
    }
    CHECK(read_status(body, 10) == 200, "a body sent slowly past --header-timeout is served");

    double t_slow = trickle_until_closed(slow, 15);
    CHECK(t_slow >= 0, "a connection trickling its header is closed by --header-timeout (%.1f s)",
          t_slow);
    char c;
    struct timeval tv = {15, 0};
    setsockopt(silent, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    CHECK(recv(silent, &c, 1, 0) <= 0, "a silent connection is closed by --header-timeout");
    close(slow);
    close(silent);
    close(pieces);
    close(body);

    http_resp r;
    CHECK(http_get(&p, "/healthz", &r) == 200, "serving after the header timeouts");
    http_resp_free(&r);
    CHECK(harness_stop(&p) == 0, "exit 0");
    char *log = harness_log(&p);
    CHECK(strstr(log, "status=408") && strstr(log, "end=header_timeout"),
          "the late header is logged as 408 end=header_timeout");
    CHECK(strstr(log, "--header-timeout"), "the watchdog logs what it closed");
    free(log);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rlim_t lim = raise_fd_limit();
    if (lim < FDS_NEEDED)
        SKIP("the file descriptor limit is %llu; this test needs %d (ulimit -n %d)",
             (unsigned long long)lim, FDS_NEEDED, FDS_NEEDED);
    if (fd_count(getpid()) < 0)
        SKIP("/proc/PID/fd is not readable here");

    const char *model = harness_model(1);
    aecd_proc p;
    harness_start(&p, model, NULL, NULL); /* default --max-connections and --timeout */

    size_t n;
    uint8_t *png = harness_png(HARNESS_SIDE * 2, HARNESS_SIDE * 2, 77, &n);
    http_resp expect;
    REQUIRE(http_post(&p, "/encode", "image/png", png, n, &expect) == 200, "encode alone");
    sleep_ms(200); /* let the connection above be closed on both sides */
    int base = fd_count(p.pid);
    REQUIRE(base > 0, "cannot count aecd's descriptors");

    /* the crowd: even ones send nothing, odd ones start a request header */
    double t_open = harness_seconds();
    int opened = 0;
    for (int i = 0; i < NIDLE; i++) {
        g_fd[i] = raw_connect(p.port);
        if (g_fd[i] < 0)
            continue;
        opened++;
        if (i % 2) {
            static const char head[] = "POST /encode HTTP/1.1\r\nHost: 127.0.0.1\r\n";
            if (send(g_fd[i], head, sizeof head - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof head - 1))
                atomic_fetch_add(&g_send_errors, 1);
        }
    }
    REQUIRE(opened == NIDLE, "only %d of %d connections could be opened", opened, NIDLE);
    pthread_t th;
    REQUIRE(pthread_create(&th, NULL, trickle, NULL) == 0, "thread");
    int held = wait_fds(p.pid, base + NIDLE, 1, 20);
    fprintf(stderr, "idle: aecd holds %d descriptors (%d before the crowd)\n", held, base);
    CHECK(held >= base + NIDLE, "aecd accepted all %d connections (%d descriptors, %d before)",
          NIDLE, held, base);

    /* a new client is served, several times over, while the crowd stays */
    for (int round = 0; round < 5; round++) {
        char when[64];
        snprintf(when, sizeof when, "with %d idle connections (round %d)", NIDLE, round + 1);
        serve_check(&p, png, n, &expect, when);
        sleep_ms(300);
    }
    http_resp r;
    http_opts get = {.timeout_ms = DEADLINE_MS};
    CHECK(http_request(&p, "/v1/model", &get, &r) == 200, "/v1/model with the crowd");
    http_resp_free(&r);

    double held_s = harness_seconds() - t_open;
    int open_now = 0;
    for (int i = 0; i < NIDLE; i++)
        open_now += still_open(g_fd[i]);
    fprintf(stderr, "idle: %d of %d connections still open after %.1f s; %ld bytes trickled\n",
            open_now, NIDLE, held_s, atomic_load(&g_trickled));
    if (held_s < 20) /* well within the default --timeout of 30 s */
        CHECK(open_now == NIDLE, "none of the idle connections was dropped (%d open)", open_now);
    CHECK(atomic_load(&g_send_errors) == 0, "every trickled byte was sent (%ld errors)",
          atomic_load(&g_send_errors));

    /* the crowd leaves: aecd lets go of every connection and still serves */
    atomic_store(&g_stop, 1);
    pthread_join(th, NULL);
    for (int i = 0; i < NIDLE; i++)
        close(g_fd[i]);
    int after = wait_fds(p.pid, base, 0, 20);
    CHECK(after >= 0 && after <= base, "aecd's descriptors back to %d (%d)", base, after);
    serve_check(&p, png, n, &expect, "after the idle connections closed");

    CHECK(harness_stop(&p) == 0, "exit 0");
    char *log = harness_log(&p);
    CHECK(!strstr(log, "status=500"), "no 500 in the log");
    CHECK(!strstr(log, "connection limit"), "no connection was refused for the limit");
    free(log);
    http_resp_free(&expect);

    test_header_timeout(model, png, n);
    free(png);
    curl_global_cleanup();
    return TEST_SUMMARY();
}
