/* main.c - aec-train: options, signals, and the call into the loop.
 *
 *   aec-train --data DIR --out FILE [--arch mlp|conv] [--epochs N] ...
 *
 * Exit status: 0 on success, 1 when training or writing fails, 2 for a bad
 * command line. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "train.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: aec-train --data DIR --out FILE [options]\n"
               "\n"
               "Trains an autoencoder on the photos under DIR (recursively) and writes a model\n"
               "file (safetensors with aec metadata) that aecd serves.\n"
               "\n"
               "  --data DIR        folder of images (PNG, JPEG, BMP, GIF, TGA); repeat it\n"
               "                    to train on several folders\n"
               "  --augment N       make N thumbnails of each photo by random pipelines (box,\n"
               "                    bilinear, bicubic or Lanczos; crops keeping the aspect,\n"
               "                    JPEG re-compression, flips) instead of one resize\n"
               "  --exclude FILE    never use the files named in FILE (one base name per\n"
               "                    line): held-out photos\n"
               "  --only FILE       use only the files named in FILE (same format)\n"
               "  --out FILE        model file to write (atomically)\n"
               "  --arch mlp|conv|photo|rotation\n"
               "                    reference MLP with batchnorm, convolutional (default conv),\n"
               "                    the photo codec for any size (mean-scale hyperprior), or\n"
               "                    the rotation recognizer of the anomaly score (a network\n"
               "                    that learns from cats which way up a photo is; batch 64,\n"
               "                    lr 0.002, --width 16; for --calibrate-catface --rotation)\n"
               "  --size S          input side in pixels (default 48)\n"
               "  --latent N        mlp: latent values (default 3*S*S/4); conv: latent\n"
               "                    channels at S/4 x S/4 (default 12)\n"
               "  --width W         conv: base channel count (default 32)\n"
               "  --epochs N        (default 10)\n"
               "  --batch N         (default 256; photo: 8)\n"
               "  --max-seconds S   stop after the epoch in which training time reaches S\n"
               "  --lr X            Adam learning rate (default 0.001; photo: 0.0001)\n"
               "  --schedule S      constant (default) or cosine learning-rate decay\n"
               "  --val F           fraction held out for validation (default 0.1)\n"
               "  --limit N         use only the first N files by name (of each --data)\n"
               "  --seed N          shuffling and initialization seed (default 1)\n"
               "  --threads N       decoding and BLAS threads (default: all cores)\n"
               "  --no-bn-recal     keep batchnorm's running averages as trained\n"
               "  --history FILE    one JSON object per epoch\n"
               "  --calibrate MODEL re-calibrate the anomaly score of an existing model on the\n"
               "                    validation images of --data (chosen by --limit, --val,\n"
               "                    --seed) and write it to --out; no training\n"
               "  --calibrate-catface MODEL\n"
               "                    add the cat-face part to MODEL's anomaly score: the\n"
               "                    --cascade FILE (an OpenCV Haar cascade, e.g. Debian's\n"
               "                    /usr/share/opencv4/haarcascades/\n"
               "                    haarcascade_frontalcatface.xml) calibrated on the\n"
               "                    photos of --data (full size; --only, --exclude), the\n"
               "                    cascade stored in the file; write it to --out\n"
               "  --rotation FILE   with --calibrate-catface: also the rotation recognizer\n"
               "                    (a model file of --arch rotation), calibrated on the same\n"
               "                    photos and stored in the file\n"
               "  --lambda L        train a codec: round the latent and add L x its bits per\n"
               "                    pixel to the loss; the model file gets the entropy\n"
               "                    coder's tables (binary latent v2). Larger L, fewer bytes\n"
               "  --init MODEL      start from this model's architecture and weights\n"
               "  --latent-scale K  with --init: multiply the latent by K (the next layer\n"
               "                    divides it back), to set its size against the rounding\n"
               "  --preview FILE    PNG: validation originals above their reconstructions\n"
               "  --quiet           no progress output\n"
               "  --reproducible    leave timings out of the file, so the same seed, data and\n"
               "                    --threads give the same bytes on every run\n"
               "\n"
               "Photo codec (--arch photo; trains on random crops of photos at their size):\n"
               "  --crop S          crop side, a multiple of 64 (default 128)\n"
               "  --channels N,M    transform and latent channels (default 96,128)\n"
               "  --lambdas L,...   one quality level per rate-distortion weight, increasing\n"
               "                    (loss = L * 255^2 * MSE + bits per pixel); default\n"
               "                    0.0018,0.0035,0.0067,0.013,0.025,0.0483\n"
               "  --gain-lr X       the gain vectors learn at X times --lr (default 30: a\n"
               "                    gain must travel from 1 to its level's scale, and Adam\n"
               "                    moves a parameter by about lr per step)\n"
               "  --init MODEL      continue training this photo codec\n"
               "  --max-steps N     stop after N steps\n"
               "  --log-every N     steps per progress line and --history record (default 20)\n"
               "  --save-every S    write --out every S seconds too (default 600), each time\n"
               "                    with an RD preview (qualities 1..100 on 4 training\n"
               "                    photos) on stderr and in --history\n"
               "  --help, --version\n");
}

static int parse_long(const char *name, const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "aec-train: %s must be an integer in [%ld, %ld], not \"%s\"\n", name, lo,
                hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_float(const char *name, const char *s, double lo, double hi, float *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) {
        fprintf(stderr, "aec-train: %s must be a number in [%g, %g], not \"%s\"\n", name, lo, hi,
                s);
        return -1;
    }
    *out = (float)v;
    return 0;
}

/* --channels N,M */
static int parse_channels(const char *s, train_options *o)
{
    int n, m, used = 0;
    if (sscanf(s, "%d,%d%n", &n, &m, &used) != 2 || s[used] || n < 1 || n > 512 || m < 2 ||
        m > 512 || m % 2) {
        fprintf(stderr, "aec-train: --channels wants N,M (1..512, M even), not \"%s\"\n", s);
        return -1;
    }
    o->photo_n = n, o->photo_m = m;
    return 0;
}

/* --lambdas L1,L2,... increasing, at most 8 */
static int parse_lambdas(const char *s, train_options *o)
{
    int n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        double v = strtod(p, &end);
        if (errno || end == p || !(v > 0 && v < 100) || n == 8 ||
            (n > 0 && !(v > o->lambdas[n - 1])) || (*end && *end != ',')) {
            fprintf(stderr,
                    "aec-train: --lambdas wants up to 8 increasing numbers in (0, 100), "
                    "not \"%s\"\n",
                    s);
            return -1;
        }
        o->lambdas[n++] = (float)v;
        p = *end ? end + 1 : end;
    }
    o->nlambdas = n;
    return n ? 0 : -1;
}

static int parse_args(int argc, char **argv, train_options *o)
{
    long v;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(0);
        }
        if (!strcmp(a, "--version")) {
            printf("aec-train %s\n", AEC_VERSION);
            exit(0);
        }
        if (!strcmp(a, "--no-bn-recal")) {
            o->bn_recal = 0;
            continue;
        }
        if (!strcmp(a, "--quiet")) {
            o->quiet = 1;
            continue;
        }
        if (!strcmp(a, "--reproducible")) {
            o->reproducible = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "aec-train: %s needs a value (see --help)\n", a);
            return -1;
        }
        const char *val = argv[++i];
        int bad = 0;
        if (!strcmp(a, "--data")) {
            if (o->ndata == TRAIN_MAX_DATA) {
                fprintf(stderr, "aec-train: at most %d --data folders\n", TRAIN_MAX_DATA);
                return -1;
            }
            o->data_dirs[o->ndata++] = val;
        } else if (!strcmp(a, "--exclude"))
            o->exclude = val;
        else if (!strcmp(a, "--augment"))
            bad = parse_long(a, val, 0, 64, &v) || ((o->augment = (int)v), 0);
        else if (!strcmp(a, "--out"))
            o->out = val;
        else if (!strcmp(a, "--arch"))
            o->arch = val;
        else if (!strcmp(a, "--schedule")) {
            if (strcmp(val, "constant") && strcmp(val, "cosine")) {
                fprintf(stderr, "aec-train: --schedule is constant or cosine, not \"%s\"\n", val);
                return -1;
            }
            o->cosine = !strcmp(val, "cosine");
        } else if (!strcmp(a, "--calibrate"))
            o->calibrate = val;
        else if (!strcmp(a, "--calibrate-catface"))
            o->calibrate_face = val;
        else if (!strcmp(a, "--cascade"))
            o->cascade = val;
        else if (!strcmp(a, "--rotation"))
            o->rotation = val;
        else if (!strcmp(a, "--only"))
            o->only = val;
        else if (!strcmp(a, "--init"))
            o->init = val;
        else if (!strcmp(a, "--lambda"))
            bad = parse_float(a, val, 0, 1e6, &o->lambda);
        else if (!strcmp(a, "--latent-scale"))
            bad = parse_float(a, val, 1e-3, 1e3, &o->latent_scale);
        else if (!strcmp(a, "--history"))
            o->history = val;
        else if (!strcmp(a, "--preview"))
            o->preview = val;
        else if (!strcmp(a, "--size"))
            bad = parse_long(a, val, 4, 512, &v) || ((o->size = (int)v), 0);
        else if (!strcmp(a, "--latent"))
            bad = parse_long(a, val, 1, 1 << 20, &v) || ((o->latent = (int)v), 0);
        else if (!strcmp(a, "--width"))
            bad = parse_long(a, val, 1, 1024, &v) || ((o->width = (int)v), 0);
        else if (!strcmp(a, "--epochs"))
            bad = parse_long(a, val, 1, 100000, &v) || ((o->epochs = (int)v), 0);
        else if (!strcmp(a, "--batch"))
            bad = parse_long(a, val, 1, 65536, &v) || ((o->batch = (int)v), 0);
        else if (!strcmp(a, "--limit"))
            bad = parse_long(a, val, 1, LONG_MAX, &o->limit);
        else if (!strcmp(a, "--seed"))
            bad = parse_long(a, val, 0, LONG_MAX, &v) || ((o->seed = (uint64_t)v), 0);
        else if (!strcmp(a, "--threads"))
            bad = parse_long(a, val, 1, 64, &v) || ((o->threads = (int)v), 0);
        else if (!strcmp(a, "--max-seconds")) {
            float secs = 0;
            bad = parse_float(a, val, 1, 1e7, &secs);
            o->max_seconds = secs;
        } else if (!strcmp(a, "--lr"))
            bad = parse_float(a, val, 1e-9, 10, &o->lr);
        else if (!strcmp(a, "--val"))
            bad = parse_float(a, val, 0, 0.9, &o->val);
        else if (!strcmp(a, "--gain-lr"))
            bad = parse_float(a, val, 0.01, 1000, &o->gain_lr);
        else if (!strcmp(a, "--crop"))
            bad = parse_long(a, val, 64, 512, &v) || ((o->crop = (int)v), 0);
        else if (!strcmp(a, "--channels"))
            bad = parse_channels(val, o);
        else if (!strcmp(a, "--lambdas"))
            bad = parse_lambdas(val, o);
        else if (!strcmp(a, "--max-steps"))
            bad = parse_long(a, val, 1, LONG_MAX, &o->max_steps);
        else if (!strcmp(a, "--log-every"))
            bad = parse_long(a, val, 1, 1000000, &v) || ((o->log_every = (int)v), 0);
        else if (!strcmp(a, "--save-every")) {
            float secs = 0;
            bad = parse_float(a, val, 0, 1e7, &secs);
            o->save_every = secs;
        } else {
            fprintf(stderr, "aec-train: unknown option %s (see --help)\n", a);
            return -1;
        }
        if (bad)
            return -1;
    }
    if (o->latent_scale != 1.0f && !o->init) {
        fprintf(stderr, "aec-train: --latent-scale needs --init\n");
        return -1;
    }
    if (!o->ndata || !o->out) {
        fprintf(stderr, "aec-train: --data and --out are required (see --help)\n");
        return -1;
    }
    return 0;
}

static void on_sigint(int sig)
{
    (void)sig;
    if (train_stop_requested) /* a second ^C stops at once */
        _exit(130);
    train_stop_requested = 1;
}

int main(int argc, char **argv)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    train_options o = {
        .arch = "conv",
        .size = 48,
        .epochs = 10,
        .batch = 0, /* per architecture, below */
        .lr = 0,
        .val = 0.1f,
        .seed = 1,
        .threads = cores > 0 && cores < 64 ? (int)cores : 2,
        .bn_recal = 1,
        .lambda = -1,
        .latent_scale = 1,
        .crop = 128,
        .photo_n = 96,
        .photo_m = 128,
        .nlambdas = 6,
        .lambdas = {0.0018f, 0.0035f, 0.0067f, 0.013f, 0.025f, 0.0483f},
        .gain_lr = 30,
        .log_every = 20,
        .save_every = 600,
    };
    if (parse_args(argc, argv, &o))
        return 2;
    int photo = !strcmp(o.arch, "photo"), rotation = !strcmp(o.arch, "rotation");
    if (photo && o.cosine && !o.max_steps && !(o.max_seconds > 0)) {
        fprintf(stderr, "aec-train: --arch photo --schedule cosine needs --max-steps or "
                        "--max-seconds (the decay runs over them)\n");
        return 2;
    }
    if (!o.batch)
        o.batch = photo ? 8 : rotation ? 64 : 256;
    if (!o.lr)
        o.lr = photo ? 1e-4f : rotation ? 0.002f : 0.001f;
    struct sigaction sa = {0};
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    aec_error err = {{0}};
    aec_status st = o.calibrate_face ? train_calibrate_face(&o, &err)
                    : photo          ? train_photo_run(&o, &err)
                    : rotation       ? train_rotation_run(&o, &err)
                                     : train_run(&o, &err);
    if (st) {
        fprintf(stderr, "aec-train: %s\n", err.msg);
        return 1;
    }
    return 0;
}
