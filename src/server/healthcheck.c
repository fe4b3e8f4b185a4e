/* healthcheck.c - the --check-health client (see healthcheck.h): URL
 * parsing, loopback-only resolution, a non-blocking connect and one
 * HTTP/1.0 GET, all under one deadline. */
#include "healthcheck.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUDGET_MS 5000

typedef struct {
    char host[256];
    char port[8];
    char path[1024];
} parsed_url;

static int parse_url(const char *url, parsed_url *u)
{
    static const char scheme[] = "http://";
    if (strncmp(url, scheme, sizeof scheme - 1) != 0)
        return -1;
    const char *p = url + sizeof scheme - 1;
    const char *host_end;
    if (*p == '[') { /* [IPv6] */
        host_end = strchr(p, ']');
        if (!host_end)
            return -1;
        p++;
    } else {
        host_end = p + strcspn(p, ":/");
    }
    size_t hl = (size_t)(host_end - p);
    if (hl == 0 || hl >= sizeof u->host)
        return -1;
    memcpy(u->host, p, hl);
    u->host[hl] = '\0';
    p = host_end + (*host_end == ']');
    snprintf(u->port, sizeof u->port, "80");
    if (*p == ':') {
        size_t pl = strspn(p + 1, "0123456789");
        if (pl == 0 || pl > 5 || atoi(p + 1) > 65535)
            return -1;
        memcpy(u->port, p + 1, pl);
        u->port[pl] = '\0';
        p += 1 + pl;
    }
    if (*p && *p != '/')
        return -1;
    snprintf(u->path, sizeof u->path, "%s", *p ? p : "/");
    for (const char *c = u->path; *c; c++)
        if ((unsigned char)*c <= ' ' || *c == 0x7f)
            return -1; /* would break the request line */
    return 0;
}

static int is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return 0;
}

static long ms_left(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long used = (now.tv_sec - start->tv_sec) * 1000 + (now.tv_nsec - start->tv_nsec) / 1000000;
    return BUDGET_MS - used;
}

/* Waits for events on fd within the budget. 1 ready, 0 timed out, -1 error. */
static int wait_fd(int fd, short events, const struct timespec *start)
{
    for (;;) {
        long left = ms_left(start);
        if (left <= 0)
            return 0;
        struct pollfd pfd = {.fd = fd, .events = events};
        int rc = poll(&pfd, 1, (int)left);
        if (rc < 0 && errno == EINTR)
            continue;
        return rc < 0 ? -1 : rc > 0;
    }
}

static int connect_to(const struct addrinfo *ai, const struct timespec *start)
{
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        int err = 0;
        socklen_t len = sizeof err;
        if (errno != EINPROGRESS || wait_fd(fd, POLLOUT, start) != 1 ||
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
            close(fd);
            return -1;
        }
    }
    return fd;
}

static int send_all(int fd, const char *p, size_t n, const struct timespec *start)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (wait_fd(fd, POLLOUT, start) != 1)
                return -1;
            continue;
        }
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads until the status line is complete; returns its status code or -1. */
static int read_status(int fd, const struct timespec *start)
{
    char buf[512];
    size_t n = 0;
    while (n < sizeof buf - 1 && !memchr(buf, '\n', n)) {
        if (wait_fd(fd, POLLIN, start) != 1)
            return -1;
        ssize_t r = recv(fd, buf + n, sizeof buf - 1 - n, 0);
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    int status;
    if (sscanf(buf, "HTTP/%*d.%*d %3d", &status) != 1)
        return -1;
    return status;
}

int aecd_check_health(const char *url)
{
    parsed_url u;
    if (parse_url(url, &u) != 0) {
        fprintf(stderr, "aecd: --check-health: '%s' is not http://HOST[:PORT][/PATH]\n", url);
        return 2;
    }
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    int rc = getaddrinfo(u.host, u.port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "aecd: --check-health: %s: %s\n", u.host, gai_strerror(rc));
        return 2;
    }
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    int fd = -1, refused_remote = 0;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        if (!is_loopback(ai->ai_addr)) {
            refused_remote = 1;
            continue;
        }
        fd = connect_to(ai, &start);
    }
    freeaddrinfo(res);
    if (fd < 0) {
        fprintf(stderr, "aecd: --check-health: %s\n",
                refused_remote ? "only loopback addresses are checked" : "cannot connect");
        return refused_remote ? 2 : 1;
    }
    char req[1400];
    int v6 = strchr(u.host, ':') != NULL;
    int n =
        snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: %s%s%s:%s\r\nConnection: close\r\n\r\n",
                 u.path, v6 ? "[" : "", u.host, v6 ? "]" : "", u.port);
    int status = send_all(fd, req, (size_t)n, &start) == 0 ? read_status(fd, &start) : -1;
    close(fd);
    if (status == 200)
        return 0;
    if (status < 0)
        fprintf(stderr, "aecd: --check-health: no HTTP answer within %d ms\n", BUDGET_MS);
    else
        fprintf(stderr, "aecd: --check-health: status %d\n", status);
    return 1;
}
