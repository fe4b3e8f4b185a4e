/* photo_speed.c - the photo codec's own speed, in process: what serving a
 * photo costs without HTTP, process start or image file I/O.
 *
 *   aec-photo-speed MODEL [QUALITY [THREADS [REPEAT]]] < files
 *
 * Loads the model once and every photo (one path per line on stdin) into
 * memory, then times aec_photo_compress of each photo and
 * aec_photo_decompress of its stream, REPEAT times over the set (default 1),
 * with THREADS threads (default 2). Prints one line per photo (best of the
 * repeats) and the mean seconds per photo for each direction, and photos
 * per second over the whole set. A benchmark: run it on a quiet machine.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aec/clock.h"
#include "aec/image.h"
#include "aec/photo.h"
#include "aec/safetensors.h"

#define MAX_PHOTOS 256

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 5) {
        fprintf(stderr, "usage: aec-photo-speed MODEL [QUALITY [THREADS [REPEAT]]] < files\n");
        return 2;
    }
    int quality = argc > 2 ? atoi(argv[2]) : 75, threads = argc > 3 ? atoi(argv[3]) : 2;
    int repeat = argc > 4 ? atoi(argv[4]) : 1;
    if (quality < 1 || quality > 100 || threads < 1 || threads > 64 || repeat < 1) {
        fprintf(stderr, "aec-photo-speed: quality 1..100, threads 1..64, repeat >= 1\n");
        return 2;
    }
    aec_error err = {{0}};
    aec_photo *p = NULL;
    uint64_t t_load = aec_now_ns();
    if (aec_photo_load(&p, argv[1], &err) != AEC_OK) {
        fprintf(stderr, "aec-photo-speed: %s\n", err.msg);
        return 1;
    }
    double load_s = (double)(aec_now_ns() - t_load) / 1e9;
    static aec_rgb_image img[MAX_PHOTOS];
    static char names[MAX_PHOTOS][256];
    int n = 0, rc = 0;
    char line[4096];
    while (n < MAX_PHOTOS && fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\r\n")] = 0;
        if (!line[0])
            continue;
        uint8_t *buf = NULL;
        size_t len = 0;
        if (aec_read_file(line, 256u << 20, &buf, &len, &err) != AEC_OK ||
            aec_image_decode(buf, len, 100000000, &img[n], &err) != AEC_OK) {
            fprintf(stderr, "aec-photo-speed: %s: %s\n", line, err.msg);
            free(buf);
            return 1;
        }
        free(buf);
        snprintf(names[n], sizeof names[n], "%s", line);
        n++;
    }
    double enc_sum = 0, dec_sum = 0, pixels = 0;
    printf("model load %.3f s; %d photos, quality %d, %d threads, best of %d\n", load_s, n, quality,
           threads, repeat);
    printf("photo\tpixels\tbytes\tencode_s\tdecode_s\tmemory_bound_mib\n");
    for (int i = 0; i < n && !rc; i++) {
        double best_e = 1e30, best_d = 1e30;
        size_t bytes = 0;
        for (int r = 0; r < repeat && !rc; r++) {
            uint8_t *out = NULL, *back = NULL;
            size_t len = 0;
            int w, h;
            uint64_t t0 = aec_now_ns();
            rc = aec_photo_compress(p, img[i].rgb, img[i].width, img[i].height, quality, threads,
                                    &out, &len, &err) != AEC_OK;
            uint64_t t1 = aec_now_ns();
            rc = rc || aec_photo_decompress(p, out, len, (size_t)1 << 30, threads, &back, &w, &h,
                                            &err) != AEC_OK;
            uint64_t t2 = aec_now_ns();
            double e = (double)(t1 - t0) / 1e9, d = (double)(t2 - t1) / 1e9;
            best_e = e < best_e ? e : best_e;
            best_d = d < best_d ? d : best_d;
            bytes = len;
            free(out), free(back);
        }
        if (rc) {
            fprintf(stderr, "aec-photo-speed: %s: %s\n", names[i], err.msg);
            break;
        }
        printf("%s\t%d\t%zu\t%.4f\t%.4f\t%.1f\n", names[i], img[i].width * img[i].height, bytes,
               best_e, best_d,
               aec_photo_memory_bound(p, img[i].width, img[i].height, threads) / 1048576.0);
        enc_sum += best_e, dec_sum += best_d;
        pixels += (double)img[i].width * img[i].height;
    }
    if (!rc && n)
        printf("\nmean per photo: encode %.3f s, decode %.3f s (%.2f Mpx each); %.2f photos/s "
               "encoding, %.2f decoding\n",
               enc_sum / n, dec_sum / n, pixels / n / 1e6, n / enc_sum, n / dec_sum);
    for (int i = 0; i < n; i++)
        aec_image_free(&img[i]);
    aec_photo_free(p);
    return rc;
}
