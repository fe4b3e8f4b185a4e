/* dataset.c - the training photos, decoded once and kept in memory.
 *
 * Finds every regular file under a folder (recursively, sorted by path so the
 * order is the same on every machine), keeps the first `limit`, and decodes
 * and resizes them on `threads` threads into one uint8 array, planar per
 * image. Files that cannot be read or decoded are skipped with a warning and
 * counted. uint8 keeps 8192 48x48 photos in 57 MB.
 */
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "aec/image.h"
#include "aec/safetensors.h"
#include "train.h"

#define MAX_FILE_BYTES (64u << 20)
#define MAX_PIXELS 40000000u
#define MAX_FILES 10000000

typedef struct {
    char **paths;
    size_t count, cap;
} path_list;

static int path_push(path_list *l, const char *path)
{
    if (l->count == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 1024;
        char **p = realloc(l->paths, cap * sizeof *p);
        if (!p)
            return -1;
        l->paths = p;
        l->cap = cap;
    }
    return (l->paths[l->count++] = strdup(path)) ? 0 : -1;
}

static void path_list_free(path_list *l)
{
    for (size_t i = 0; i < l->count; i++)
        free(l->paths[i]);
    free(l->paths);
}

static aec_status walk(path_list *l, const char *dir, int depth, aec_error *err)
{
    if (depth > 32)
        return AEC_OK;
    DIR *d = opendir(dir);
    if (!d)
        return aec_fail(err, AEC_ERR_IO, "%s: cannot open folder", dir);
    struct dirent *e;
    aec_status st = AEC_OK;
    while (!st && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue; /* ., .., and hidden files such as .DS_Store */
        char path[4096];
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= sizeof path)
            continue;
        struct stat s;
        if (stat(path, &s) != 0)
            continue;
        if (S_ISDIR(s.st_mode))
            st = walk(l, path, depth + 1, err);
        else if (S_ISREG(s.st_mode) && l->count < MAX_FILES && path_push(l, path))
            st = aec_fail(err, AEC_ERR_NOMEM, "out of memory listing %s", dir);
    }
    closedir(d);
    return st;
}

static int cmp_path(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

typedef struct {
    const path_list *files;
    train_dataset *ds;
    unsigned char *ok; /* per file: decoded? */
    int thread, nthreads;
} load_job;

static void *load_worker(void *arg)
{
    load_job *j = arg;
    train_dataset *ds = j->ds;
    size_t per = (size_t)ds->c * ds->h * ds->w;
    float *tensor = malloc(sizeof(float) * per);
    for (size_t i = (size_t)j->thread; tensor && i < j->files->count; i += (size_t)j->nthreads) {
        const char *path = j->files->paths[i];
        aec_error err = {{0}};
        uint8_t *bytes = NULL;
        size_t len = 0;
        aec_status st = aec_read_file(path, MAX_FILE_BYTES, &bytes, &len, &err);
        if (!st)
            st = aec_image_load_tensor(bytes, len, MAX_PIXELS, ds->c, ds->h, ds->w, tensor, &err);
        free(bytes);
        if (st) {
            fprintf(stderr, "warning: skipping %s: %s\n", path, err.msg);
            continue;
        }
        uint8_t *dst = ds->pixels + i * per;
        for (size_t k = 0; k < per; k++)
            dst[k] = (uint8_t)(tensor[k] * 255.0f + 0.5f);
        j->ok[i] = 1;
    }
    free(tensor);
    return NULL;
}

aec_status train_dataset_load(train_dataset *ds, const char *dir, long limit, int c, int h, int w,
                              int threads, aec_error *err)
{
    memset(ds, 0, sizeof *ds);
    ds->c = c, ds->h = h, ds->w = w;
    path_list files = {0};
    aec_status st = walk(&files, dir, 0, err);
    if (st) {
        path_list_free(&files);
        return st;
    }
    qsort(files.paths, files.count, sizeof *files.paths, cmp_path);
    while (limit > 0 && files.count > (size_t)limit)
        free(files.paths[--files.count]);
    size_t per = (size_t)c * h * w;
    ds->pixels = malloc(per * (files.count ? files.count : 1));
    unsigned char *ok = calloc(files.count ? files.count : 1, 1);
    if (!ds->pixels || !ok) {
        free(ok);
        path_list_free(&files);
        train_dataset_free(ds);
        return aec_fail(err, AEC_ERR_NOMEM, "out of memory for %zu images", files.count);
    }
    if (threads < 1)
        threads = 1;
    if (threads > 64)
        threads = 64;
    pthread_t tid[64];
    load_job jobs[64];
    for (int t = 0; t < threads; t++) {
        jobs[t] = (load_job){&files, ds, ok, t, threads};
        if (pthread_create(&tid[t], NULL, load_worker, &jobs[t]) != 0) {
            threads = t;
            break;
        }
    }
    if (threads == 0)
        load_worker(&(load_job){&files, ds, ok, 0, 1});
    for (int t = 0; t < threads; t++)
        pthread_join(tid[t], NULL);
    /* compact: keep decoded images in file order */
    for (size_t i = 0; i < files.count; i++) {
        if (!ok[i]) {
            ds->skipped++;
            continue;
        }
        if (ds->count != i)
            memmove(ds->pixels + ds->count * per, ds->pixels + i * per, per);
        ds->count++;
    }
    free(ok);
    path_list_free(&files);
    if (ds->count == 0) {
        train_dataset_free(ds);
        return aec_fail(err, AEC_ERR_FORMAT, "%s: no readable images", dir);
    }
    return AEC_OK;
}

void train_dataset_free(train_dataset *ds)
{
    free(ds->pixels);
    ds->pixels = NULL;
    ds->count = 0;
}

void train_dataset_batch(const train_dataset *ds, const size_t *idx, int n, float *out)
{
    size_t per = (size_t)ds->c * ds->h * ds->w;
    const float scale = 1.0f / 255.0f;
    for (int i = 0; i < n; i++) {
        const uint8_t *src = ds->pixels + idx[i] * per;
        float *dst = out + (size_t)i * per;
        for (size_t k = 0; k < per; k++)
            dst[k] = src[k] * scale;
    }
}
