/* dataset.c - the training photos, decoded once and kept in memory.
 *
 * Finds every regular file under each --data folder (recursively, sorted by
 * path so the order is the same on every machine), keeps the first `limit`
 * of each, drops the names listed by --exclude (held-out photos), and
 * decodes and resizes them on `threads` threads into one uint8 array,
 * planar per image. Without --augment a photo becomes one image, resized
 * with stb's filter, whole or (o->fit) its centred square; with --augment N
 * it becomes N thumbnails made by random pipelines (augment.c), seeded by
 * its file name, so they are the same on every run and machine. source[]
 * says which file each image came from, so that a photo's thumbnails are
 * never split between training and validation. Files that cannot be read
 * or decoded are skipped with a warning and counted. uint8 keeps 8192
 * 48x48 images in 57 MB. Also the trainer's one shuffle (train_shuffle).
 */
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "aec/hash.h"
#include "aec/image.h"
#include "aec/random.h"
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

/* Is the file's base name in the exclusion list? */
static int excluded(const path_list *ex, const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t lo = 0, hi = ex->count; /* ex is sorted */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(ex->paths[mid], base);
        if (c == 0)
            return 1;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

/* The --exclude (or --only) file: one base name per line (blank lines and #comments skipped). */
static aec_status read_exclusions(path_list *ex, const char *file, aec_error *err)
{
    if (!file)
        return AEC_OK;
    uint8_t *text = NULL;
    size_t len = 0;
    aec_status st = aec_read_file(file, MAX_FILE_BYTES, &text, &len, err);
    if (st)
        return st;
    char *p = (char *)text, *end = p + len;
    while (!st && p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *e = nl ? nl : end;
        while (e > p && (e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if (e > p && *p != '#') {
            char save = *e;
            *e = 0;
            if (path_push(ex, p))
                st = aec_fail(err, AEC_ERR_NOMEM, "out of memory reading %s", file);
            *e = save;
        }
        p = nl ? nl + 1 : end;
    }
    free(text);
    if (ex->count) /* qsort's pointer must not be NULL, even for 0 items */
        qsort(ex->paths, ex->count, sizeof *ex->paths, cmp_path);
    return st;
}

/* Every file of every --data folder: each folder's sorted and cut to
 * --limit, minus the excluded names, folders in the order given. */
static aec_status list_files(path_list *files, const train_options *o, size_t *nexcluded,
                             aec_error *err)
{
    path_list ex = {0}, only = {0};
    aec_status st = read_exclusions(&ex, o->exclude, err);
    if (!st)
        st = read_exclusions(&only, o->only, err);
    *nexcluded = 0;
    for (int d = 0; !st && d < o->ndata; d++) {
        path_list one = {0};
        st = walk(&one, o->data_dirs[d], 0, err);
        if (!st && one.count)
            qsort(one.paths, one.count, sizeof *one.paths, cmp_path);
        size_t kept = 0;
        for (size_t i = 0; !st && i < one.count; i++) {
            if (o->limit > 0 && kept >= (size_t)o->limit)
                break;
            kept++;
            if (excluded(&ex, one.paths[i])) {
                (*nexcluded)++;
                continue;
            }
            if (o->only && !excluded(&only, one.paths[i]))
                continue;
            if (path_push(files, one.paths[i]))
                st = aec_fail(err, AEC_ERR_NOMEM, "out of memory listing %s", o->data_dirs[d]);
        }
        path_list_free(&one);
    }
    path_list_free(&ex);
    path_list_free(&only);
    return st;
}

typedef struct {
    const path_list *files;
    train_dataset *ds;
    unsigned char *ok; /* per file: decoded? */
    uint64_t seed;
    int thread, nthreads;
} load_job;

/* interleaved RGB -> planar uint8 (c = 3), or luma (c = 1) */
static void planar_u8(const uint8_t *rgb, size_t npix, int c, uint8_t *dst)
{
    for (size_t k = 0; k < npix; k++) {
        const uint8_t *p = rgb + 3 * k;
        if (c == 1)
            dst[k] = (uint8_t)((299u * p[0] + 587u * p[1] + 114u * p[2] + 500u) / 1000u);
        else
            dst[k] = p[0], dst[npix + k] = p[1], dst[2 * npix + k] = p[2];
    }
}

/* One file into its ds->variants images. 0 or a status with err set. */
static aec_status load_one(load_job *j, size_t i, float *tensor, uint8_t *rgb, aec_error *err)
{
    train_dataset *ds = j->ds;
    const char *path = j->files->paths[i];
    size_t per = (size_t)ds->c * ds->h * ds->w, npix = (size_t)ds->h * ds->w;
    uint8_t *bytes = NULL;
    size_t len = 0;
    aec_rgb_image img = {0};
    aec_status st = aec_read_file(path, MAX_FILE_BYTES, &bytes, &len, err);
    if (!st)
        st = aec_image_decode(bytes, len, MAX_PIXELS, &img, err);
    free(bytes);
    if (!st && ds->variants == 1 && !ds->augment) { /* the plain pipeline: stb's filter */
        st = aec_image_to_tensor_fit(&img, (aec_fit)ds->fit, ds->c, ds->h, ds->w, tensor, err);
        uint8_t *dst = ds->pixels + i * per;
        for (size_t k = 0; !st && k < per; k++)
            dst[k] = (uint8_t)(tensor[k] * 255.0f + 0.5f);
    }
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    for (int v = 0; !st && ds->augment && v < ds->variants; v++) {
        uint64_t seed = aec_hash64(j->seed, base, strlen(base));
        seed = aec_hash64(seed, &v, sizeof v);
        st = train_augment(&img, seed, ds->w, ds->h, rgb, err);
        if (!st)
            planar_u8(rgb, npix, ds->c, ds->pixels + (i * (size_t)ds->variants + (size_t)v) * per);
    }
    aec_image_free(&img);
    return st;
}

static void *load_worker(void *arg)
{
    load_job *j = arg;
    train_dataset *ds = j->ds;
    size_t per = (size_t)ds->c * ds->h * ds->w;
    float *tensor = malloc(sizeof(float) * per);
    uint8_t *rgb = malloc((size_t)ds->h * ds->w * 3);
    for (size_t i = (size_t)j->thread; tensor && rgb && i < j->files->count;
         i += (size_t)j->nthreads) {
        aec_error err = {{0}};
        if (load_one(j, i, tensor, rgb, &err)) {
            fprintf(stderr, "warning: skipping %s: %s\n", j->files->paths[i], err.msg);
            continue;
        }
        j->ok[i] = 1;
    }
    free(tensor);
    free(rgb);
    return NULL;
}

aec_status train_dataset_load(train_dataset *ds, const train_options *o, int c, int h, int w,
                              aec_error *err)
{
    memset(ds, 0, sizeof *ds);
    ds->c = c, ds->h = h, ds->w = w;
    ds->augment = o->augment > 0;
    ds->fit = o->fit;
    ds->variants = o->augment > 0 ? o->augment : 1;
    path_list files = {0};
    aec_status st = list_files(&files, o, &ds->excluded, err);
    if (st) {
        path_list_free(&files);
        return st;
    }
    size_t per = (size_t)c * h * w, nimg = files.count * (size_t)ds->variants;
    ds->pixels = malloc(per * (nimg ? nimg : 1));
    ds->source = malloc(sizeof *ds->source * (nimg ? nimg : 1));
    unsigned char *ok = calloc(files.count ? files.count : 1, 1);
    if (!ds->pixels || !ds->source || !ok) {
        free(ok);
        path_list_free(&files);
        train_dataset_free(ds);
        return aec_fail(err, AEC_ERR_NOMEM, "out of memory for %zu images", nimg);
    }
    int threads = o->threads < 1 ? 1 : o->threads > 64 ? 64 : o->threads;
    pthread_t tid[64];
    load_job jobs[64];
    for (int t = 0; t < threads; t++) {
        jobs[t] = (load_job){&files, ds, ok, o->seed, t, threads};
        if (pthread_create(&tid[t], NULL, load_worker, &jobs[t]) != 0) {
            threads = t;
            break;
        }
    }
    if (threads == 0)
        load_worker(&(load_job){&files, ds, ok, o->seed, 0, 1});
    for (int t = 0; t < threads; t++)
        pthread_join(tid[t], NULL);
    /* compact: keep decoded files' images in file order */
    size_t vper = per * (size_t)ds->variants;
    for (size_t i = 0; i < files.count; i++) {
        if (!ok[i]) {
            ds->skipped++;
            continue;
        }
        if (ds->files != i)
            memmove(ds->pixels + ds->files * vper, ds->pixels + i * vper, vper);
        for (int v = 0; v < ds->variants; v++)
            ds->source[ds->files * (size_t)ds->variants + (size_t)v] = ds->files;
        ds->files++;
    }
    ds->count = ds->files * (size_t)ds->variants;
    free(ok);
    path_list_free(&files);
    if (ds->count == 0) {
        train_dataset_free(ds);
        return aec_fail(err, AEC_ERR_FORMAT, "%s: no readable images", o->data_dirs[0]);
    }
    return AEC_OK;
}

void train_dataset_free(train_dataset *ds)
{
    free(ds->pixels);
    free(ds->source);
    ds->pixels = NULL;
    ds->source = NULL;
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

/* ---- photos at their own size (the photo codec) ------------------------------------ */

typedef struct {
    const path_list *files;
    aec_rgb_image *img;
    int thread, nthreads;
} photo_job;

static void *photo_worker(void *arg)
{
    photo_job *j = arg;
    for (size_t i = (size_t)j->thread; i < j->files->count; i += (size_t)j->nthreads) {
        aec_error err = {{0}};
        uint8_t *bytes = NULL;
        size_t len = 0;
        aec_status st = aec_read_file(j->files->paths[i], MAX_FILE_BYTES, &bytes, &len, &err);
        if (!st)
            st = aec_image_decode(bytes, len, MAX_PIXELS, &j->img[i], &err);
        free(bytes);
        if (st)
            fprintf(stderr, "warning: skipping %s: %s\n", j->files->paths[i], err.msg);
    }
    return NULL;
}

aec_status train_photos_load(train_photos *ph, const train_options *o, aec_error *err)
{
    memset(ph, 0, sizeof *ph);
    path_list files = {0};
    aec_status st = list_files(&files, o, &ph->excluded, err);
    if (!st && files.count && !(ph->img = calloc(files.count, sizeof *ph->img)))
        st = aec_fail(err, AEC_ERR_NOMEM, "out of memory for %zu photos", files.count);
    if (st) {
        path_list_free(&files);
        return st;
    }
    int threads = o->threads < 1 ? 1 : o->threads > 64 ? 64 : o->threads;
    pthread_t tid[64];
    photo_job jobs[64];
    int started = 0;
    for (int t = 0; t < threads; t++) {
        jobs[t] = (photo_job){&files, ph->img, t, threads};
        if (pthread_create(&tid[t], NULL, photo_worker, &jobs[t]) != 0)
            break;
        started++;
    }
    if (started == 0)
        photo_worker(&(photo_job){&files, ph->img, 0, 1});
    for (int t = 0; t < started; t++)
        pthread_join(tid[t], NULL);
    for (size_t i = 0; i < files.count; i++) { /* compact: decoded photos in file order */
        if (!ph->img[i].rgb) {
            ph->skipped++;
            continue;
        }
        ph->img[ph->count++] = ph->img[i];
        ph->pixels += (size_t)ph->img[i].width * ph->img[i].height;
    }
    path_list_free(&files);
    if (ph->count == 0) {
        train_photos_free(ph);
        return aec_fail(err, AEC_ERR_FORMAT, "%s: no readable images", o->data_dirs[0]);
    }
    return AEC_OK;
}

void train_photos_free(train_photos *ph)
{
    for (size_t i = 0; i < ph->count; i++)
        aec_image_free(&ph->img[i]);
    free(ph->img);
    memset(ph, 0, sizeof *ph);
}

void train_shuffle(size_t *a, size_t n, uint64_t *rng)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(aec_random_next(rng) % i);
        size_t t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}
