/* harness.h - what the aecd integration tests share: a trained model, an
 * aecd child process on a loopback port, HTTP helpers over libcurl, raw
 * sockets, and checks of the error-reply contract.
 *
 * Environment (set by ctest): AECD_BIN, AEC_TRAIN_BIN, AEC_SOURCE_DIR.
 * A test whose binaries are missing exits 77 (skipped).
 */
#ifndef AEC_HARNESS_H
#define AEC_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cJSON.h>

#include "testutil.h"

/* ---- models and images ------------------------------------------------------ */

#define HARNESS_SIDE 16 /* the test models' input side */

/* A model trained by aec-train on synthetic photos (16x16 conv, 3 epochs).
 * seed 1 is the main model; another seed gives another model (another id
 * hash). Trained once per process and seed. */
const char *harness_model(int seed);
/* A codec model (aec-train --lambda LAMBDA: 16x16 conv, latent 4 x 4 x 4, 20 epochs,
 * with entropy-coder tables), trained once per process and lambda. */
const char *harness_codec_model(const char *lambda);
/* A small MLP autoencoder built in process (aec_model_from_spec, random
 * weights, no anomaly calibration), for what only an uncalibrated model
 * shows. */
const char *harness_uncalibrated_model(void);
/* Copies a file (fails the test if it cannot). */
void harness_copy_file(const char *from, const char *to);
/* The folder of synthetic training PNGs. */
const char *harness_data_dir(void);

/* In-memory images of the synthetic kind (malloc'd). */
uint8_t *harness_png(int w, int h, uint64_t seed, size_t *len);
uint8_t *harness_jpeg(int w, int h, uint64_t seed, size_t *len);
/* PNG of interleaved 8-bit RGB pixels. */
uint8_t *harness_png_from_rgb(const uint8_t *rgb, int w, int h, size_t *len);
/* A valid PNG whose header declares w x h while carrying almost no data. */
uint8_t *harness_png_header_only(uint32_t w, uint32_t h, size_t *len);

/* ---- the daemon ----------------------------------------------------------------- */

typedef struct {
    pid_t pid;
    int port;
    char base[64]; /* http://127.0.0.1:PORT */
    char dir[256]; /* its temp dir: port file, log */
    char log_path[300];
} aecd_proc;

/* Starts aecd --model MODEL (--models MODEL when it is a folder) --host 127.0.0.1 --port 0
 * --port-file ... plus args (NULL-terminated, may be NULL), with env entries "NAME=value"
 * (NULL-terminated, may be NULL) added to its environment; waits for
 * /readyz to answer 200. Fails the test (REQUIRE) if it does not. */
void harness_start(aecd_proc *p, const char *model, const char *const *args,
                   const char *const *env);
/* SIGTERM, then waits (up to 30 s). Returns the exit status, or -1 if it
 * died by a signal or had to be killed. */
int harness_stop(aecd_proc *p);
/* Its stderr so far (malloc'd). */
char *harness_log(const aecd_proc *p);

/* Runs aecd with exactly args (argv[1..], NULL-terminated) and env, waits up
 * to timeout_s for it to exit; returns its exit status (-1 if it had to be
 * killed) and its stderr+stdout in out (NUL-terminated, truncated). */
int harness_run(const char *const *args, const char *const *env, int timeout_s, char *out,
                size_t out_len);
/* The same for the program named by the environment variable bin_var
 * ("AEC_TRAIN_BIN"). */
int harness_run_bin(const char *bin_var, const char *const *args, const char *const *env,
                    int timeout_s, char *out, size_t out_len);

/* ---- HTTP ------------------------------------------------------------------------ */

typedef struct {
    long status;   /* 0 when the transfer failed */
    int curl_code; /* CURLcode */
    char *headers; /* raw header block */
    uint8_t *body; /* NUL-terminated */
    size_t len;
    long long uploaded; /* bytes of the request body actually sent */
} http_resp;

typedef struct {
    const char *method;       /* default: GET, or POST with a body */
    const char *content_type; /* NULL: no Content-Type header */
    const void *body;
    size_t len;
    const char *const *headers; /* extra "Name: value", NULL-terminated */
    int chunked;                /* Transfer-Encoding: chunked */
    long timeout_ms;            /* default 60000 */
} http_opts;

/* One request on a fresh connection. Returns r->status. */
long http_request(const aecd_proc *p, const char *path, const http_opts *o, http_resp *r);
long http_get(const aecd_proc *p, const char *path, http_resp *r);
long http_post(const aecd_proc *p, const char *path, const char *content_type, const void *body,
               size_t len, http_resp *r);
void http_resp_free(http_resp *r);
/* A response header's value (case-insensitive name), copied into buf; NULL if absent. */
const char *http_header(const http_resp *r, const char *name, char *buf, size_t n);
/* The body parsed as JSON (caller cJSON_Deletes), or NULL. */
cJSON *http_json(const http_resp *r);

/* 1 if r is status with Content-Type application/json and a body
 * {"error":{"code":code,"message":<non-empty string>}}; otherwise reports a
 * failure (with what) and returns 0. */
int check_error(const http_resp *r, long status, const char *code, const char *what);

/* n identical requests at once, each on its own connection (curl multi);
 * fills r[0..n-1]. */
void http_parallel(const aecd_proc *p, const char *path, const http_opts *o, int n, http_resp *r);

/* ---- raw sockets ---------------------------------------------------------------- */

/* A blocking TCP connection to 127.0.0.1:port, or -1. */
int raw_connect(int port);

/* ---- small helpers ---------------------------------------------------------------- */

double harness_seconds(void); /* monotonic */
/* Decodes PNG bytes into interleaved 8-bit pixels (stbi; caller frees with free()). */
uint8_t *harness_decode_png(const uint8_t *png, size_t len, int *w, int *h, int *c);
/* PSNR in dB of two equal-size 8-bit buffers (INFINITY when identical). */
double harness_psnr(const uint8_t *a, const uint8_t *b, size_t n);

#endif
