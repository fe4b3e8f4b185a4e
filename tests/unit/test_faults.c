/* test_faults.c - the model file survives the trainer dying and a full disk.
 *
 * - aec-train killed with SIGKILL at many moments (while training, while
 *   writing) over an existing model: the file at --out is always a complete,
 *   loadable model (the old one, or the new one), never a torn one.
 * - a full disk (a 96 KiB tmpfs; skipped when mounting is not permitted):
 *   aec-train fails with a message and exit 1, the old model is intact and
 *   no temp file is left behind. */
#include <dirent.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "aec/model.h"
#include "testutil.h"

static const char *train_bin(void)
{
    const char *b = getenv("AEC_TRAIN_BIN");
    REQUIRE(b && *b, "AEC_TRAIN_BIN is not set (run through ctest)");
    return b;
}

static pid_t spawn_train(const char *data, const char *out, const char *size, const char *width,
                         const char *log)
{
    pid_t pid = fork();
    REQUIRE(pid >= 0, "fork");
    if (pid == 0) {
        FILE *f = freopen(log, "w", stderr);
        (void)f;
        execl(train_bin(), train_bin(), "--data", data, "--arch", "conv", "--size", size, "--width",
              width, "--epochs", "2", "--batch", "16", "--seed", "5", "--quiet", "--out", out,
              (char *)NULL);
        _exit(127);
    }
    return pid;
}

static int wait_status(pid_t pid)
{
    int st = 0;
    waitpid(pid, &st, 0);
    return st;
}

static uint64_t load_id(const char *path)
{
    aec_model *m = NULL;
    aec_error err = {{0}};
    if (aec_model_load(&m, path, &err) != AEC_OK) {
        fprintf(stderr, "load %s: %s\n", path, err.msg);
        return 0;
    }
    uint64_t id = m->id_hash;
    aec_model_free(m);
    return id;
}

static int count_temp_files(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, ".tmp"))
            n++;
    if (d)
        closedir(d);
    return n;
}

static void sigkill_during_training_and_writing(const char *data, const char *tmp)
{
    char out[1024], log[1024];
    snprintf(out, sizeof out, "%s/model.safetensors", tmp);
    snprintf(log, sizeof log, "%s/train.log", tmp);
    REQUIRE(WEXITSTATUS(wait_status(spawn_train(data, out, "16", "8", log))) == 0,
            "first training");
    uint64_t old_id = load_id(out);
    REQUIRE(old_id != 0, "the first model loads");
    /* A run that completes takes T; kill at fractions of T, so some kills
     * land in training and some in the final write. */
    double t0 = 0;
    {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        wait_status(spawn_train(data, out, "16", "16", log));
        clock_gettime(CLOCK_MONOTONIC, &b);
        t0 = (double)(b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) * 1e-9;
    }
    uint64_t new_id = load_id(out);
    CHECK(new_id != 0 && new_id != old_id, "a completed run replaces the model");
    int kills = 0, whole = 0;
    for (int i = 0; i < 24; i++) {
        pid_t pid = spawn_train(data, out, "16", i % 2 ? "16" : "8", log);
        usleep((useconds_t)(t0 * 1e6 * (0.5 + i / 20.0)));
        kills += kill(pid, SIGKILL) == 0;
        wait_status(pid);
        uint64_t id = load_id(out);
        CHECK(id != 0, "after SIGKILL #%d the model file is complete and loads", i);
        /* training is deterministic: a finished write is exactly one of the two */
        whole += id == old_id || id == new_id;
    }
    CHECK(kills > 0, "some runs were killed (%d)", kills);
    CHECK(whole == 24, "the file was always one of the two complete models (%d of 24)", whole);
}

static void disk_full(const char *data, const char *tmp)
{
    char dir[1024], out[1024], log[1024];
    snprintf(dir, sizeof dir, "%s/small", tmp);
    REQUIRE(mkdir(dir, 0700) == 0, "mkdir");
    if (mount("tmpfs", dir, "tmpfs", 0, "size=96k") != 0) {
        printf("SKIP disk-full part: cannot mount a tmpfs here (needs root)\n");
        return;
    }
    snprintf(out, sizeof out, "%s/model.safetensors", dir);
    snprintf(log, sizeof log, "%s/full.log", tmp);
    /* a small model fits (about 40 KB) */
    int st = wait_status(spawn_train(data, out, "16", "4", log));
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "small model written to the small disk");
    uint64_t old_id = load_id(out);
    CHECK(old_id != 0, "small model loads");
    /* a larger one (about 330 KB) does not: clear error, old model intact */
    st = wait_status(spawn_train(data, out, "16", "32", log));
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1, "full disk: exit 1 (status %d)", st);
    size_t len;
    char *text = (char *)test_read_file(log, &len);
    CHECK(text && (strstr(text, "disk full") || strstr(text, "No space")),
          "the message says the disk is full: %s", text ? text : "(none)");
    CHECK(text && strstr(text, "model.safetensors"), "the message names the file");
    free(text);
    CHECK(load_id(out) == old_id, "the old model is intact");
    CHECK(count_temp_files(dir) == 0, "no temp file left on the full disk");
    umount(dir);
}

int main(void)
{
    const char *tmp = test_tmpdir();
    char data[1024];
    snprintf(data, sizeof data, "%s/photos", tmp);
    REQUIRE(mkdir(data, 0700) == 0, "mkdir");
    REQUIRE(test_write_synthetic_pngs(data, 64, 16, 16, 3) == 0, "synthetic images");
    sigkill_during_training_and_writing(data, tmp);
    disk_full(data, tmp);
    return TEST_SUMMARY();
}
