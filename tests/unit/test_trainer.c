/* test_trainer.c - aec-train as a user runs it, on synthetic photos.
 *
 * - a short run whose validation MSE falls well below the untrained model's;
 * - the same seed, data and threads give the same model file bit for bit;
 * - the written file loads, and carries training record and calibration;
 * - SIGINT mid-training still leaves a valid model of the last complete epoch;
 * - unreadable files are skipped with a warning; bad options and a missing
 *   folder fail with a message and a non-zero exit;
 * - --augment over two --data folders with --exclude: same bytes for the
 *   same seed, and the counts it reports;
 * - codec training (--lambda, --init, --latent-scale): the file gets coder
 *   tables and coded figures; --latent-scale leaves the function unchanged;
 *   a larger lambda gives fewer bytes. */
#include <math.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "aec/codec.h"
#include "aec/model.h"
#include "aec/photo.h"
#include "testutil.h"

static const char *train_bin(void)
{
    const char *b = getenv("AEC_TRAIN_BIN");
    REQUIRE(b && *b, "AEC_TRAIN_BIN is not set (run through ctest)");
    return b;
}

/* Runs a shell command, returns its exit status (or -1). Output to log. */
static int run(const char *cmd)
{
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static double history_val(const char *path, int epoch)
{
    size_t len;
    char *text = (char *)test_read_file(path, &len);
    if (!text)
        return -1; /* not written yet */
    text = realloc(text, len + 1);
    REQUIRE(text, "oom");
    text[len] = 0;
    char key[32];
    snprintf(key, sizeof key, "{\"epoch\":%d,", epoch);
    char *line = strstr(text, key);
    double v = -1;
    if (line) {
        char *p = strstr(line, "\"val_mse\":");
        if (p)
            v = atof(p + 10);
    }
    free(text);
    return v;
}

static int files_equal(const char *a, const char *b)
{
    size_t la, lb;
    uint8_t *x = test_read_file(a, &la), *y = test_read_file(b, &lb);
    int eq = x && y && la == lb && memcmp(x, y, la) == 0;
    free(x), free(y);
    return eq;
}

static void trains_and_learns(const char *data, const char *tmp)
{
    char cmd[8192], out[1024], out2[1024], hist[1024], preview[1024];
    snprintf(out, sizeof out, "%s/a.safetensors", tmp);
    snprintf(out2, sizeof out2, "%s/b.safetensors", tmp);
    snprintf(hist, sizeof hist, "%s/h.jsonl", tmp);
    snprintf(preview, sizeof preview, "%s/p.png", tmp);
    const char *common = "--arch conv --size 16 --width 8 --latent 4 --epochs 8 --batch 16 "
                         "--lr 0.003 --seed 7 --threads 2 --quiet --reproducible";
    snprintf(cmd, sizeof cmd, "%s --data %s %s --out %s --history %s --preview %s", train_bin(),
             data, common, out, hist, preview);
    CHECK(run(cmd) == 0, "conv training run failed: %s", cmd);
    double start = history_val(hist, 0), end = history_val(hist, 8);
    CHECK(start > 0 && end > 0 && end < 0.5 * start,
          "validation MSE should fall well below its start: %g -> %g", start, end);
    size_t plen;
    uint8_t *png = test_read_file(preview, &plen);
    CHECK(png && plen > 8 && memcmp(png, "\x89PNG", 4) == 0, "preview PNG written");
    free(png);

    aec_model *m = NULL;
    aec_error err = {{0}};
    CHECK(aec_model_load(&m, out, &err) == AEC_OK, "trained model loads: %s", err.msg);
    if (m) {
        CHECK(m->train_json && strstr(m->train_json, "\"val_mse\""), "aec.train recorded");
        CHECK(m->anomaly_json && strstr(m->anomaly_json, "\"threshold\""),
              "aec.anomaly calibrated");
        CHECK(aec_model_latent_count(m) == 4 * 4 * 4, "latent 4 channels at 4x4: %zu",
              aec_model_latent_count(m));
        aec_model_free(m);
    }
    /* same seed, data, threads -> same bytes */
    snprintf(cmd, sizeof cmd, "%s --data %s %s --out %s", train_bin(), data, common, out2);
    CHECK(run(cmd) == 0, "second run failed");
    CHECK(files_equal(out, out2), "same seed and threads must give the same model file");

    /* the MLP (reference architecture, rescaled) learns too */
    snprintf(cmd, sizeof cmd,
             "%s --data %s --arch mlp --size 8 --epochs 6 --batch 16 --seed 3 --quiet "
             "--out %s/mlp.safetensors --history %s/mlp.jsonl",
             train_bin(), data, tmp, tmp);
    CHECK(run(cmd) == 0, "mlp training run failed");
    snprintf(hist, sizeof hist, "%s/mlp.jsonl", tmp);
    snprintf(out, sizeof out, "%s/mlp.safetensors", tmp);
    start = history_val(hist, 0);
    end = -1;
    m = NULL;
    if (aec_model_load(&m, out, &err) == AEC_OK && m->train_json) {
        const char *v = strstr(m->train_json, "\"val_mse\":");
        end = v ? atof(v + 10) : -1;
    }
    aec_model_free(m);
    /* the final figure is after batchnorm re-estimation */
    CHECK(end > 0 && end < 0.5 * start, "mlp validation MSE %g -> %g", start, end);
}

/* --augment with two --data folders and --exclude: reproducible, and it
 * says what it used. */
static void trains_augmented(const char *data, const char *tmp)
{
    char cmd[8192], a[1024], b[1024], ex[1024], second[1024];
    snprintf(a, sizeof a, "%s/aug-a.safetensors", tmp);
    snprintf(b, sizeof b, "%s/aug-b.safetensors", tmp);
    snprintf(ex, sizeof ex, "%s/exclude.txt", tmp);
    snprintf(second, sizeof second, "%s/photos2", tmp);
    snprintf(cmd, sizeof cmd, "mkdir -p %s", second);
    REQUIRE(run(cmd) == 0, "mkdir");
    REQUIRE(test_write_synthetic_pngs(second, 20, 40, 30, 9) == 0, "larger synthetic images");
    REQUIRE(test_write_file(ex, "# held out\nimg_0000.png\n", 24) == 0, "exclude list");
    const char *common = "--arch conv --size 16 --width 8 --latent 4 --epochs 2 --batch 16 "
                         "--augment 3 --seed 5 --threads 2 --reproducible";
    char log[1024];
    snprintf(log, sizeof log, "%s/aug.log", tmp);
    snprintf(cmd, sizeof cmd, "%s --data %s --data %s --exclude %s %s --out %s 2>%s", train_bin(),
             data, second, ex, common, a, log);
    CHECK(run(cmd) == 0, "augmented training run failed: %s", cmd);
    snprintf(cmd, sizeof cmd, "%s --data %s --data %s --exclude %s %s --quiet --out %s",
             train_bin(), data, second, ex, common, b);
    CHECK(run(cmd) == 0, "second augmented run failed");
    CHECK(files_equal(a, b), "--augment: the same seed gives the same model file");
    size_t n;
    char *text = (char *)test_read_file(log, &n);
    REQUIRE(text, "log");
    text = realloc(text, n + 1);
    text[n] = 0;
    /* 160 + 20 photos, the excluded name in both folders: 178 photos x 3 */
    CHECK(strstr(text, "loaded 534 images (178 photos x 3)") && strstr(text, "2 excluded"),
          "the log says what was loaded: %.300s", text);
    free(text);
    aec_model *m = NULL;
    aec_error err = {{0}};
    CHECK(aec_model_load(&m, a, &err) == AEC_OK && m->train_json &&
              strstr(m->train_json, "\"augment\":3"),
          "aec.train records --augment");
    aec_model_free(m);
}

static void interrupted_run_keeps_last_epoch(const char *data, const char *tmp)
{
    char out[1024], hist[1024];
    snprintf(out, sizeof out, "%s/int.safetensors", tmp);
    snprintf(hist, sizeof hist, "%s/int.jsonl", tmp);
    pid_t pid = fork();
    REQUIRE(pid >= 0, "fork");
    if (pid == 0) {
        execl(train_bin(), train_bin(), "--data", data, "--arch", "conv", "--size", "16",
              "--epochs", "100000", "--batch", "8", "--quiet", "--out", out, "--history", hist,
              (char *)NULL);
        _exit(127);
    }
    /* wait until at least one epoch is done (at most 5 minutes), then interrupt */
    for (int i = 0; i < 6000 && history_val(hist, 1) < 0; i++)
        usleep(50 * 1000);
    kill(pid, SIGINT);
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "SIGINT: clean exit (status %d)", st);
    aec_model *m = NULL;
    aec_error err = {{0}};
    CHECK(aec_model_load(&m, out, &err) == AEC_OK, "model after SIGINT loads: %s", err.msg);
    aec_model_free(m);
}

/* the coded bytes per validation image recorded in aec.codec, or -1 */
static double codec_bytes(const char *path)
{
    aec_model *m = NULL;
    double v = -1;
    if (aec_model_load(&m, path, NULL) == AEC_OK && m->codec_json && aec_model_has_codec(m)) {
        const char *p = strstr(m->codec_json, "\"val_bytes\":");
        v = p ? atof(p + 12) : -1;
    }
    aec_model_free(m);
    return v;
}

static void trains_codecs(const char *data, const char *tmp)
{
    char cmd[8192], base[1024];
    snprintf(base, sizeof base, "%s/a.safetensors", tmp); /* from trains_and_learns */
    const char *common = "--size 16 --epochs 3 --batch 16 --lr 0.002 --seed 5 --quiet";
    /* --latent-scale keeps the function: the untrained (epoch 0) validation MSE is the same */
    double e0[2];
    const char *scales[2] = {"1", "8"};
    for (int i = 0; i < 2; i++) {
        snprintf(cmd, sizeof cmd,
                 "%s --data %s %s --init %s --latent-scale %s --lambda 0.001 "
                 "--out %s/ls%s.safetensors --history %s/ls%s.jsonl",
                 train_bin(), data, common, base, scales[i], tmp, scales[i], tmp, scales[i]);
        CHECK(run(cmd) == 0, "codec fine-tune with --latent-scale %s failed: %s", scales[i], cmd);
        snprintf(cmd, sizeof cmd, "%s/ls%s.jsonl", tmp, scales[i]);
        e0[i] = history_val(cmd, 0);
    }
    CHECK(e0[0] > 0 && fabs(e0[0] - e0[1]) < 1e-4 * e0[0],
          "--latent-scale 8 leaves the model's function unchanged: %g vs %g", e0[0], e0[1]);
    /* finer rounding costs more bytes */
    snprintf(cmd, sizeof cmd, "%s/ls1.safetensors", tmp);
    double b1 = codec_bytes(cmd);
    snprintf(cmd, sizeof cmd, "%s/ls8.safetensors", tmp);
    double b8 = codec_bytes(cmd);
    CHECK(b1 > 5 && b8 > b1, "tables and coded bytes recorded; scale 8 > scale 1: %g vs %g", b8,
          b1);
    /* from scratch, lambda trades bytes for quality */
    double bytes[2];
    const char *lambdas[2] = {"0.0005", "0.05"};
    for (int i = 0; i < 2; i++) {
        snprintf(cmd, sizeof cmd,
                 "%s --data %s --arch conv --width 8 --latent 4 --size 16 --epochs 8 --batch 16 "
                 "--lr 0.003 --seed 5 --quiet --lambda %s --out %s/lam%d.safetensors",
                 train_bin(), data, lambdas[i], tmp, i);
        CHECK(run(cmd) == 0, "codec training with --lambda %s failed", lambdas[i]);
        snprintf(cmd, sizeof cmd, "%s/lam%d.safetensors", tmp, i);
        bytes[i] = codec_bytes(cmd);
    }
    CHECK(bytes[0] > 0 && bytes[1] > 0 && bytes[1] < bytes[0],
          "a larger lambda gives fewer bytes: %g (lambda %s) vs %g (lambda %s)", bytes[1],
          lambdas[1], bytes[0], lambdas[0]);
    snprintf(cmd, sizeof cmd, "%s --data %s --out %s/x.safetensors --latent-scale 2 2>/dev/null",
             train_bin(), data, tmp);
    CHECK(run(cmd) == 2, "--latent-scale without --init -> exit 2");
    snprintf(cmd, sizeof cmd,
             "%s --data %s --out %s/x.safetensors --init %s/missing.safetensors 2> %s/e.txt",
             train_bin(), data, tmp, tmp, tmp);
    CHECK(run(cmd) == 1, "--init of a missing file -> exit 1");
}

static void bad_inputs(const char *data, const char *tmp)
{
    char cmd[8192], dir[1024];
    /* unreadable files are skipped and counted */
    snprintf(dir, sizeof dir, "%s/mixed", tmp);
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s && cp %s/img_000*.png %s/ && printf 'not an image' > %s/broken.jpg && "
             "head -c 100 %s/img_0001.png > %s/truncated.png",
             dir, data, dir, dir, data, dir);
    REQUIRE(run(cmd) == 0, "setup");
    snprintf(cmd, sizeof cmd,
             "%s --data %s --arch conv --size 16 --epochs 1 --batch 4 --out %s/m.safetensors "
             "2> %s/log.txt",
             train_bin(), dir, tmp, tmp);
    CHECK(run(cmd) == 0, "training with a few broken files still works");
    snprintf(cmd, sizeof cmd,
             "grep -q 'skipping.*broken.jpg' %s/log.txt && grep -q '2 skipped' %s/log.txt", tmp,
             tmp);
    CHECK(run(cmd) == 0, "broken files named in warnings and counted");

    snprintf(cmd, sizeof cmd, "%s --data %s/nope --out %s/x.safetensors 2> %s/err.txt", train_bin(),
             tmp, tmp, tmp);
    CHECK(run(cmd) == 1, "missing folder -> exit 1");
    snprintf(cmd, sizeof cmd, "grep -q 'nope' %s/err.txt", tmp);
    CHECK(run(cmd) == 0, "message names the folder");
    snprintf(cmd, sizeof cmd, "%s --data %s --out %s/x.safetensors --epochs zero 2>/dev/null",
             train_bin(), data, tmp);
    CHECK(run(cmd) == 2, "bad option value -> exit 2");
    snprintf(cmd, sizeof cmd, "%s --data %s --out %s/x.safetensors --bogus 1 2>/dev/null",
             train_bin(), data, tmp);
    CHECK(run(cmd) == 2, "unknown option -> exit 2");
    snprintf(cmd, sizeof cmd,
             "%s --data %s --arch conv --size 16 --epochs 1 --out /nonexistent/dir/m.safetensors "
             "--quiet 2> %s/err2.txt",
             train_bin(), data, tmp);
    CHECK(run(cmd) == 1, "unwritable output -> exit 1");
}

/* --arch photo as a user runs it: a few steps on photos of their own size,
 * a model file the codec loads with its steps recorded, the RD preview in
 * the history, and --init continuing the count. */
static void trains_photo(const char *tmp)
{
    char dir[1024], out[1024], hist[1024], cmd[8192];
    snprintf(dir, sizeof dir, "%s/photos-big", tmp);
    snprintf(out, sizeof out, "%s/photo.safetensors", tmp);
    snprintf(hist, sizeof hist, "%s/photo.jsonl", tmp);
    snprintf(cmd, sizeof cmd, "mkdir -p %s", dir);
    REQUIRE(run(cmd) == 0, "mkdir");
    REQUIRE(test_write_synthetic_pngs(dir, 6, 96, 128, 5) == 0, "synthetic photos");
    const char *common = "--arch photo --crop 64 --batch 2 --channels 8,8 --lambdas 0.01,0.05 "
                         "--log-every 5 --threads 1 --quiet";
    snprintf(cmd, sizeof cmd, "%s --data %s %s --max-steps 10 --out %s --history %s", train_bin(),
             dir, common, out, hist);
    CHECK(run(cmd) == 0, "photo training run failed");
    aec_error err = {{0}};
    aec_photo *p = NULL;
    CHECK(aec_photo_load(&p, out, &err) == AEC_OK, "the photo codec loads: %s", err.msg);
    CHECK(p && p->train_json && strstr(p->train_json, "\"steps\":10,"), "10 steps recorded: %s",
          p && p->train_json ? p->train_json : "(none)");
    aec_photo_free(p);
    size_t len;
    char *text = (char *)test_read_file(hist, &len);
    REQUIRE(text, "no history");
    text = realloc(text, len + 1);
    REQUIRE(text, "oom");
    text[len] = 0;
    const char *rd = strstr(text, "{\"step\":10,\"rd\":[[1,");
    double b1 = -1, b100 = -1, p1 = 0;
    if (rd)
        sscanf(rd, "{\"step\":10,\"rd\":[[1,%lf,%lf]", &b1, &p1);
    const char *last = rd ? strstr(rd, "[100,") : NULL;
    if (last)
        sscanf(last, "[100,%lf", &b100);
    CHECK(rd && b1 > 0 && p1 > 5 && b100 >= b1,
          "the history has the RD preview, bytes growing with quality (q1 %g bpp, q100 %g)", b1,
          b100);
    CHECK(strstr(text, "{\"step\":5,\"seconds\":"), "and the progress records");
    free(text);

    snprintf(cmd, sizeof cmd, "%s --data %s %s --max-steps 5 --init %s --out %s", train_bin(), dir,
             common, out, out);
    CHECK(run(cmd) == 0, "photo --init run failed");
    p = NULL;
    CHECK(aec_photo_load(&p, out, &err) == AEC_OK && p->train_json &&
              strstr(p->train_json, "\"steps\":15,"),
          "--init continues the step count: %s", p && p->train_json ? p->train_json : err.msg);
    aec_photo_free(p);
}

int main(void)
{
    const char *tmp = test_tmpdir();
    char data[1024];
    snprintf(data, sizeof data, "%s/photos", tmp);
    char cmd[1100];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", data);
    REQUIRE(run(cmd) == 0, "mkdir");
    REQUIRE(test_write_synthetic_pngs(data, 160, 16, 16, 1) == 0, "synthetic images");
    trains_and_learns(data, tmp);
    trains_codecs(data, tmp);
    trains_augmented(data, tmp);
    interrupted_run_keeps_last_epoch(data, tmp);
    bad_inputs(data, tmp);
    trains_photo(tmp);
    return TEST_SUMMARY();
}
