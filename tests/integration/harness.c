/* harness.c - see harness.h. Owns: training the test models with aec-train,
 * spawning and stopping aecd, libcurl requests, raw sockets, the error
 * contract check, and image helpers. */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "aec/model.h"
#include <stb_image.h>
#include <stb_image_write.h>

extern char **environ;

/* ---- small helpers ------------------------------------------------------------ */

double harness_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static const char *env_or_skip(const char *name)
{
    const char *v = getenv(name);
    struct stat st;
    if (!v || !*v || stat(v, &st) != 0)
        SKIP("%s is not set or does not exist (run through ctest)", name);
    return v;
}

/* A per-process base temp dir; everything else goes below it. */
static const char *base_dir(void)
{
    static const char *base;
    if (!base)
        base = test_tmpdir();
    return base;
}

static char *read_all(const char *path)
{
    size_t len = 0;
    uint8_t *d = test_read_file(path, &len);
    if (!d)
        return strdup("");
    char *s = realloc(d, len + 1);
    if (!s) {
        free(d);
        return strdup("");
    }
    s[len] = '\0';
    return s;
}

/* ---- child processes ------------------------------------------------------------ */

#define MAX_CHILDREN 64
static pid_t g_children[MAX_CHILDREN];
static int g_nchildren;

static void kill_children(void)
{
    for (int i = 0; i < g_nchildren; i++)
        if (g_children[i] > 0) {
            kill(g_children[i], SIGKILL);
            waitpid(g_children[i], NULL, 0);
        }
}

static void track_child(pid_t pid)
{
    if (g_nchildren == 0)
        atexit(kill_children);
    if (g_nchildren < MAX_CHILDREN)
        g_children[g_nchildren++] = pid;
}

static void untrack_child(pid_t pid)
{
    for (int i = 0; i < g_nchildren; i++)
        if (g_children[i] == pid)
            g_children[i] = 0;
}

/* environ plus extra "NAME=value" entries (which replace same-named ones). */
static char **build_env(const char *const *extra)
{
    size_t n = 0, m = 0;
    while (environ[n])
        n++;
    while (extra && extra[m])
        m++;
    char **env = calloc(n + m + 1, sizeof *env);
    REQUIRE(env, "oom");
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int replaced = 0;
        for (size_t j = 0; j < m && !replaced; j++) {
            const char *eq = strchr(extra[j], '=');
            size_t nl = eq ? (size_t)(eq - extra[j]) : strlen(extra[j]);
            replaced = strncmp(environ[i], extra[j], nl) == 0 && environ[i][nl] == '=';
        }
        if (!replaced)
            env[k++] = environ[i];
    }
    for (size_t j = 0; j < m; j++)
        env[k++] = (char *)extra[j];
    env[k] = NULL;
    return env;
}

/* Spawns bin with argv, stdout+stderr appended to log_path. */
static pid_t spawn(const char *bin, char *const *argv, const char *const *env, const char *log_path)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    char **envp = build_env(env);
    pid_t pid = -1;
    int rc = posix_spawn(&pid, bin, &fa, NULL, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    free(envp);
    REQUIRE(rc == 0, "cannot spawn %s: %s", bin, strerror(rc));
    track_child(pid);
    return pid;
}

/* Waits up to timeout_s; returns the exit status, or -1 (signal, or killed). */
static int wait_exit(pid_t pid, double timeout_s)
{
    double end = harness_seconds() + timeout_s;
    int st = 0;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            break;
        if (harness_seconds() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            untrack_child(pid);
            return -1;
        }
        sleep_ms(20);
    }
    untrack_child(pid);
    if (WIFSIGNALED(st))
        fprintf(stderr, "harness: child %d died by signal %d\n", (int)pid, WTERMSIG(st));
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* ---- models ------------------------------------------------------------------------ */

const char *harness_data_dir(void)
{
    static char dir[512];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "%s/data", base_dir());
        REQUIRE(mkdir(dir, 0755) == 0, "mkdir %s: %s", dir, strerror(errno));
        REQUIRE(test_write_synthetic_pngs(dir, 96, HARNESS_SIDE, HARNESS_SIDE, 1000) == 0,
                "cannot write the synthetic PNGs");
    }
    return dir;
}

const char *harness_model(int seed)
{
    static char paths[8][512];
    static int seeds[8], n;
    for (int i = 0; i < n; i++)
        if (seeds[i] == seed)
            return paths[i];
    REQUIRE(n < 8, "too many models");
    const char *train = env_or_skip("AEC_TRAIN_BIN");
    const char *data = harness_data_dir();
    char *out = paths[n];
    snprintf(out, sizeof paths[0], "%s/model-%d.safetensors", base_dir(), seed);
    char log[600], seed_s[16], side[16];
    snprintf(log, sizeof log, "%s/train-%d.log", base_dir(), seed);
    snprintf(seed_s, sizeof seed_s, "%d", seed);
    snprintf(side, sizeof side, "%d", HARNESS_SIDE);
    char *argv[] = {(char *)train, "--data",   (char *)data, "--arch",  "conv", "--size",
                    side,          "--epochs", "3",          "--batch", "16",   "--seed",
                    seed_s,        "--out",    out,          NULL};
    double t0 = harness_seconds();
    int st = wait_exit(spawn(train, argv, NULL, log), 600);
    if (st != 0) {
        char *text = read_all(log);
        fprintf(stderr, "%s\n", text);
        free(text);
    }
    REQUIRE(st == 0, "aec-train failed (exit %d), see above", st);
    fprintf(stderr, "harness: trained %s in %.1f s\n", out, harness_seconds() - t0);
    seeds[n++] = seed;
    return out;
}

const char *harness_codec_model(const char *lambda)
{
    static char paths[4][512], lambdas[4][32];
    static int n;
    for (int i = 0; i < n; i++)
        if (strcmp(lambdas[i], lambda) == 0)
            return paths[i];
    REQUIRE(n < 4 && strlen(lambda) < sizeof lambdas[0], "too many codec models");
    const char *train = env_or_skip("AEC_TRAIN_BIN");
    char *out = paths[n];
    snprintf(out, sizeof paths[0], "%s/codec-%s.safetensors", base_dir(), lambda);
    char log[600], side[16];
    snprintf(log, sizeof log, "%s/train-codec-%s.log", base_dir(), lambda);
    snprintf(side, sizeof side, "%d", HARNESS_SIDE);
    char *argv[] = {(char *)train,
                    "--data",
                    (char *)harness_data_dir(),
                    "--arch",
                    "conv",
                    "--size",
                    side,
                    "--width",
                    "8",
                    "--latent",
                    "4",
                    "--epochs",
                    "20",
                    "--batch",
                    "16",
                    "--lambda",
                    (char *)lambda,
                    "--out",
                    out,
                    NULL};
    int st = wait_exit(spawn(train, argv, NULL, log), 600);
    if (st != 0) {
        char *text = read_all(log);
        fprintf(stderr, "%s\n", text);
        free(text);
    }
    REQUIRE(st == 0, "aec-train --lambda %s failed (exit %d), see above", lambda, st);
    snprintf(lambdas[n++], sizeof lambdas[0], "%s", lambda);
    return out;
}

const char *harness_uncalibrated_model(void)
{
    static char path[512];
    if (path[0])
        return path;
    static const char layers[] =
        "[{\"type\":\"flatten\"},{\"type\":\"linear\",\"in\":768,\"out\":24},"
        "{\"type\":\"relu\"},{\"type\":\"linear\",\"in\":24,\"out\":768},"
        "{\"type\":\"sigmoid\"},{\"type\":\"unflatten\",\"shape\":[3,16,16]}]";
    aec_model *m = NULL;
    aec_error err;
    REQUIRE(aec_model_from_spec(&m, layers, 3, HARNESS_SIDE, HARNESS_SIDE, 2, &err) == AEC_OK,
            "from_spec: %s", err.msg);
    aec_model_init_weights(m, 7);
    snprintf(path, sizeof path, "%s/uncalibrated.safetensors", base_dir());
    REQUIRE(aec_model_save(m, path, &err) == AEC_OK, "save: %s", err.msg);
    aec_model_free(m);
    return path;
}

/* ---- images -------------------------------------------------------------------------- */

typedef struct {
    uint8_t *data;
    size_t len, cap;
} mem_sink;

static void sink_write(void *ctx, void *data, int size)
{
    mem_sink *s = ctx;
    if (s->len + (size_t)size > s->cap) {
        size_t cap = (s->cap ? s->cap * 2 : 4096) + (size_t)size;
        uint8_t *p = realloc(s->data, cap);
        REQUIRE(p, "oom");
        s->data = p;
        s->cap = cap;
    }
    memcpy(s->data + s->len, data, (size_t)size);
    s->len += (size_t)size;
}

uint8_t *harness_png(int w, int h, uint64_t seed, size_t *len)
{
    uint8_t *rgb = malloc((size_t)w * h * 3);
    REQUIRE(rgb, "oom");
    test_synthetic_rgb(rgb, h, w, seed);
    mem_sink s = {0};
    REQUIRE(stbi_write_png_to_func(sink_write, &s, w, h, 3, rgb, w * 3), "png write");
    free(rgb);
    *len = s.len;
    return s.data;
}

uint8_t *harness_png_from_rgb(const uint8_t *rgb, int w, int h, size_t *len)
{
    mem_sink s = {0};
    REQUIRE(stbi_write_png_to_func(sink_write, &s, w, h, 3, rgb, w * 3), "png write");
    *len = s.len;
    return s.data;
}

uint8_t *harness_jpeg(int w, int h, uint64_t seed, size_t *len)
{
    uint8_t *rgb = malloc((size_t)w * h * 3);
    REQUIRE(rgb, "oom");
    test_synthetic_rgb(rgb, h, w, seed);
    mem_sink s = {0};
    REQUIRE(stbi_write_jpg_to_func(sink_write, &s, w, h, 3, rgb, 90), "jpeg write");
    free(rgb);
    *len = s.len;
    return s.data;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* CRC-32 as PNG uses it (bitwise; the chunks here are tiny). */
static uint32_t crc32_png(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
    }
    return c ^ 0xffffffffu;
}

/* One PNG chunk with its CRC. */
static size_t png_chunk(uint8_t *out, const char *type, const uint8_t *data, uint32_t n)
{
    put_be32(out, n);
    memcpy(out + 4, type, 4);
    if (n)
        memcpy(out + 8, data, n);
    put_be32(out + 8 + n, crc32_png(out + 4, 4 + n));
    return 12 + n;
}

uint8_t *harness_png_header_only(uint32_t w, uint32_t h, size_t *len)
{
    uint8_t *p = malloc(256);
    REQUIRE(p, "oom");
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    memcpy(p, sig, 8);
    size_t o = 8;
    uint8_t ihdr[13];
    put_be32(ihdr, w);
    put_be32(ihdr + 4, h);
    ihdr[8] = 8;  /* bit depth */
    ihdr[9] = 2;  /* RGB */
    ihdr[10] = 0; /* deflate */
    ihdr[11] = 0;
    ihdr[12] = 0;
    o += png_chunk(p + o, "IHDR", ihdr, 13);
    /* a zlib stream with one stored block holding the first 4 bytes of row 0 */
    static const uint8_t idat[] = {0x78, 0x01, 0x01, 0x04, 0x00, 0xfb, 0xff, 0,
                                   0,    0,    0,    0x00, 0x04, 0x00, 0x01};
    o += png_chunk(p + o, "IDAT", idat, (uint32_t)sizeof idat);
    o += png_chunk(p + o, "IEND", NULL, 0);
    *len = o;
    return p;
}

uint8_t *harness_decode_png(const uint8_t *png, size_t len, int *w, int *h, int *c)
{
    return stbi_load_from_memory(png, (int)len, w, h, c, 0);
}

double harness_psnr(const uint8_t *a, const uint8_t *b, size_t n)
{
    double se = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        se += d * d;
    }
    if (se == 0)
        return INFINITY;
    return 10.0 * log10(255.0 * 255.0 / (se / (double)n));
}

/* ---- the daemon ---------------------------------------------------------------------- */

static int read_port(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int port = -1;
    if (fscanf(f, "%d", &port) != 1)
        port = -1;
    fclose(f);
    return port;
}

char *harness_log(const aecd_proc *p)
{
    return read_all(p->log_path);
}

static void dump_log(const aecd_proc *p)
{
    char *log = harness_log(p);
    fprintf(stderr, "---- aecd log (%s) ----\n%s\n---- end of log ----\n", p->log_path, log);
    free(log);
}

void harness_start(aecd_proc *p, const char *model, const char *const *args, const char *const *env)
{
    static int serial;
    const char *bin = env_or_skip("AECD_BIN");
    memset(p, 0, sizeof *p);
    snprintf(p->dir, sizeof p->dir, "%s/aecd-%d", base_dir(), serial++);
    REQUIRE(mkdir(p->dir, 0755) == 0, "mkdir %s", p->dir);
    snprintf(p->log_path, sizeof p->log_path, "%s/aecd.log", p->dir);
    char port_file[300];
    snprintf(port_file, sizeof port_file, "%s/port", p->dir);

    char *argv[64];
    int n = 0;
    argv[n++] = (char *)bin;
    struct stat ms;
    argv[n++] = stat(model, &ms) == 0 && S_ISDIR(ms.st_mode) ? "--models" : "--model";
    argv[n++] = (char *)model;
    argv[n++] = "--host";
    argv[n++] = "127.0.0.1";
    argv[n++] = "--port";
    argv[n++] = "0";
    argv[n++] = "--port-file";
    argv[n++] = port_file;
    for (int i = 0; args && args[i]; i++) {
        REQUIRE(n < 62, "too many args");
        argv[n++] = (char *)args[i];
    }
    argv[n] = NULL;
    p->pid = spawn(bin, argv, env, p->log_path);

    double end = harness_seconds() + 120;
    while ((p->port = read_port(port_file)) <= 0) {
        int st;
        if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
            untrack_child(p->pid);
            dump_log(p);
            REQUIRE(0, "aecd exited during startup (status %d)",
                    WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        }
        if (harness_seconds() > end) {
            dump_log(p);
            REQUIRE(0, "aecd did not write its port file in time");
        }
        sleep_ms(20);
    }
    snprintf(p->base, sizeof p->base, "http://127.0.0.1:%d", p->port);
    for (;;) {
        http_resp r;
        long st = http_get(p, "/readyz", &r);
        http_resp_free(&r);
        if (st == 200)
            return;
        if (harness_seconds() > end) {
            dump_log(p);
            REQUIRE(0, "aecd never became ready (last /readyz status %ld)", st);
        }
        sleep_ms(50);
    }
}

int harness_stop(aecd_proc *p)
{
    if (p->pid <= 0)
        return -1;
    kill(p->pid, SIGTERM);
    int st = wait_exit(p->pid, 30);
    if (st != 0)
        dump_log(p);
    p->pid = 0;
    return st;
}

int harness_run(const char *const *args, const char *const *env, int timeout_s, char *out,
                size_t out_len)
{
    return harness_run_bin("AECD_BIN", args, env, timeout_s, out, out_len);
}

int harness_run_bin(const char *bin_var, const char *const *args, const char *const *env,
                    int timeout_s, char *out, size_t out_len)
{
    static int serial;
    const char *bin = env_or_skip(bin_var);
    char log[512];
    snprintf(log, sizeof log, "%s/run-%d.log", base_dir(), serial++);
    char *argv[64];
    int n = 0;
    argv[n++] = (char *)bin;
    for (int i = 0; args && args[i] && n < 63; i++)
        argv[n++] = (char *)args[i];
    argv[n] = NULL;
    int st = wait_exit(spawn(bin, argv, env, log), timeout_s);
    char *text = read_all(log);
    snprintf(out, out_len, "%s", text);
    free(text);
    return st;
}

/* ---- HTTP ------------------------------------------------------------------------------- */

static pthread_once_t g_curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

typedef struct {
    char *data;
    size_t len, cap;
} grow_buf;

static void grow_append(grow_buf *b, const char *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->cap ? b->cap * 2 : 1024) + n;
        char *q = realloc(b->data, cap);
        REQUIRE(q, "oom");
        b->data = q;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static size_t on_body(char *p, size_t size, size_t n, void *ctx)
{
    grow_append(ctx, p, size * n);
    return size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *ctx)
{
    grow_buf *b = ctx;
    if (size * n >= 5 && strncmp(p, "HTTP/", 5) == 0)
        b->len = 0; /* a new response (after 100 Continue): keep the last */
    grow_append(b, p, size * n);
    return size * n;
}

typedef struct {
    const uint8_t *p;
    size_t left;
} reader;

static size_t on_read(char *buf, size_t size, size_t n, void *ctx)
{
    reader *r = ctx;
    size_t k = size * n < r->left ? size * n : r->left;
    memcpy(buf, r->p, k);
    r->p += k;
    r->left -= k;
    return k;
}

/* One prepared transfer: the handle and what its callbacks fill. */
typedef struct {
    CURL *c;
    struct curl_slist *hl;
    grow_buf body, hdrs;
    reader rd;
    char url[4096];
} transfer;

static void transfer_setup(transfer *t, const aecd_proc *p, const char *path, const http_opts *o)
{
    pthread_once(&g_curl_once, curl_init_once);
    static const http_opts none = {0};
    if (!o)
        o = &none;
    memset(t, 0, sizeof *t);
    t->c = curl_easy_init();
    REQUIRE(t->c, "curl_easy_init");
    CURL *c = t->c;
    snprintf(t->url, sizeof t->url, "%s%s", p->base, path);
    grow_append(&t->body, "", 0);
    grow_append(&t->hdrs, "", 0);
    char ct[256];
    if (o->content_type) {
        snprintf(ct, sizeof ct, "Content-Type: %s", o->content_type);
        t->hl = curl_slist_append(t->hl, ct);
    } else {
        t->hl = curl_slist_append(t->hl, "Content-Type:"); /* none at all */
    }
    for (int i = 0; o->headers && o->headers[i]; i++)
        t->hl = curl_slist_append(t->hl, o->headers[i]);
    t->rd = (reader){o->body, o->len};
    const char *method = o->method ? o->method : o->body ? "POST" : "GET";
    if (o->chunked) {
        t->hl = curl_slist_append(t->hl, "Transfer-Encoding: chunked");
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(c, CURLOPT_READDATA, &t->rd);
    } else if (o->body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->len);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, o->body);
    }
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    else if (strcmp(method, "GET") != 0 || o->body)
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_URL, t->url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, t->hl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &t->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &t->hdrs);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, o->timeout_ms ? o->timeout_ms : 60000L);
}

static void transfer_finish(transfer *t, CURLcode rc, http_resp *r)
{
    memset(r, 0, sizeof *r);
    r->curl_code = (int)rc;
    if (rc == CURLE_OK)
        curl_easy_getinfo(t->c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_off_t up = 0;
    curl_easy_getinfo(t->c, CURLINFO_SIZE_UPLOAD_T, &up);
    r->uploaded = (long long)up;
    curl_slist_free_all(t->hl);
    curl_easy_cleanup(t->c);
    r->body = (uint8_t *)t->body.data;
    r->len = t->body.len;
    r->headers = t->hdrs.data;
}

long http_request(const aecd_proc *p, const char *path, const http_opts *o, http_resp *r)
{
    transfer t;
    transfer_setup(&t, p, path, o);
    CURLcode rc = curl_easy_perform(t.c);
    transfer_finish(&t, rc, r);
    return r->status;
}

void http_parallel(const aecd_proc *p, const char *path, const http_opts *o, int n, http_resp *r)
{
    transfer *t = calloc((size_t)n, sizeof *t);
    REQUIRE(t, "oom");
    CURLM *m = curl_multi_init();
    for (int i = 0; i < n; i++) {
        transfer_setup(&t[i], p, path, o);
        curl_easy_setopt(t[i].c, CURLOPT_PRIVATE, (char *)&t[i]);
        curl_easy_setopt(t[i].c, CURLOPT_FORBID_REUSE, 1L);
        curl_multi_add_handle(m, t[i].c);
    }
    CURLcode *codes = calloc((size_t)n, sizeof *codes);
    int running = n;
    while (running > 0) {
        curl_multi_perform(m, &running);
        if (running > 0)
            curl_multi_poll(m, NULL, 0, 100, NULL);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left)) != NULL)
            if (msg->msg == CURLMSG_DONE) {
                char *priv;
                curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
                codes[(transfer *)(void *)priv - t] = msg->data.result;
            }
    }
    for (int i = 0; i < n; i++) {
        curl_multi_remove_handle(m, t[i].c);
        transfer_finish(&t[i], codes[i], &r[i]);
    }
    curl_multi_cleanup(m);
    free(codes);
    free(t);
}

long http_get(const aecd_proc *p, const char *path, http_resp *r)
{
    return http_request(p, path, NULL, r);
}

long http_post(const aecd_proc *p, const char *path, const char *content_type, const void *body,
               size_t len, http_resp *r)
{
    http_opts o = {.content_type = content_type, .body = body ? body : "", .len = len};
    return http_request(p, path, &o, r);
}

void http_resp_free(http_resp *r)
{
    free(r->body);
    free(r->headers);
    memset(r, 0, sizeof *r);
}

const char *http_header(const http_resp *r, const char *name, char *buf, size_t n)
{
    size_t nl = strlen(name);
    for (const char *line = r->headers; line && *line;) {
        const char *eol = strstr(line, "\r\n");
        size_t ll = eol ? (size_t)(eol - line) : strlen(line);
        if (ll > nl && strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (*v == ' ')
                v++;
            size_t vl = ll - (size_t)(v - line);
            if (vl >= n)
                vl = n - 1;
            memcpy(buf, v, vl);
            buf[vl] = '\0';
            return buf;
        }
        if (!eol)
            break;
        line = eol + 2;
    }
    return NULL;
}

cJSON *http_json(const http_resp *r)
{
    return r->body ? cJSON_ParseWithLength((const char *)r->body, r->len) : NULL;
}

int check_error(const http_resp *r, long status, const char *code, const char *what)
{
    char ct[128];
    int ok = 1;
    if (r->status != status) {
        fprintf(stderr, "FAIL %s: status %ld, expected %ld; body: %.300s\n", what, r->status,
                status, r->body ? (const char *)r->body : "");
        ok = 0;
    }
    if (!http_header(r, "Content-Type", ct, sizeof ct) ||
        strncmp(ct, "application/json", 16) != 0) {
        fprintf(stderr, "FAIL %s: error reply is not application/json\n", what);
        ok = 0;
    }
    cJSON *j = http_json(r);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "code");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "message");
    if (!cJSON_IsString(c) || strcmp(c->valuestring, code) != 0) {
        fprintf(stderr, "FAIL %s: error code %s, expected %s\n", what,
                cJSON_IsString(c) ? c->valuestring : "(none)", code);
        ok = 0;
    }
    if (!cJSON_IsString(m) || !m->valuestring[0]) {
        fprintf(stderr, "FAIL %s: no error message\n", what);
        ok = 0;
    }
    cJSON_Delete(j);
    if (ok)
        test_passed++;
    else
        test_failed++;
    return ok;
}

/* ---- raw sockets -------------------------------------------------------------------------- */

int raw_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

void harness_copy_file(const char *from, const char *to)
{
    size_t n;
    uint8_t *d = test_read_file(from, &n);
    REQUIRE(d && test_write_file(to, d, n) == 0, "copy %s -> %s", from, to);
    free(d);
}
