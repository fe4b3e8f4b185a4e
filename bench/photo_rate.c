/* photo_rate.c - how far the photo codec's written bytes are from the rate
 * its training model predicts (issue: "within 2%").
 *
 *   aec-photo-rate MODEL [QUALITIES] < files
 *
 * For each photo (one path per line on stdin) and each quality (a comma
 * list, default 1,25,50,75,100): the bits the training densities give the
 * coded symbols (aec_photo_estimate_bits: y^ under its Gaussian, z^ under
 * the factorized density) and the bytes aec_photo_compress writes (header,
 * both substreams, escapes and the range coders' flushes included).
 * Prints one line per photo and quality, then per quality the total
 * written / estimated - 1 over all photos, and the largest such gap of one
 * photo. A measurement, not a test: it exits 0 unless something fails.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aec/image.h"
#include "aec/photo.h"
#include "aec/safetensors.h"

#define MAXQ 16

static int parse_qualities(const char *s, int *q)
{
    int n = 0;
    for (const char *p = s; *p && n < MAXQ;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > 100)
            return -1;
        q[n++] = (int)v;
        p = *end == ',' ? end + 1 : end;
        if (*end && *end != ',')
            return -1;
    }
    return n;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: aec-photo-rate MODEL [QUALITIES] < files\n");
        return 2;
    }
    int q[MAXQ], nq = parse_qualities(argc > 2 ? argv[2] : "1,25,50,75,100", q);
    if (nq <= 0) {
        fprintf(stderr, "aec-photo-rate: qualities must be a comma list of 1..100\n");
        return 2;
    }
    aec_error err = {{0}};
    aec_photo *p = NULL;
    if (aec_photo_load(&p, argv[1], &err) != AEC_OK) {
        fprintf(stderr, "aec-photo-rate: %s\n", err.msg);
        return 1;
    }
    double est_sum[MAXQ] = {0}, bytes_sum[MAXQ] = {0}, worst[MAXQ] = {0};
    int photos = 0, rc = 0;
    char line[4096];
    printf("photo\tquality\testimate_bytes\twritten_bytes\tgap\n");
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\r\n")] = 0;
        if (!line[0])
            continue;
        uint8_t *buf = NULL, *out = NULL;
        size_t len = 0, olen = 0;
        aec_rgb_image img = {0};
        if (aec_read_file(line, 256u << 20, &buf, &len, &err) != AEC_OK ||
            aec_image_decode(buf, len, 100000000, &img, &err) != AEC_OK) {
            fprintf(stderr, "aec-photo-rate: %s: %s\n", line, err.msg);
            free(buf);
            rc = 1;
            break;
        }
        free(buf);
        for (int i = 0; i < nq && !rc; i++) {
            double bits = 0;
            if (aec_photo_estimate_bits(p, img.rgb, img.width, img.height, q[i], 2, &bits, &err) ||
                aec_photo_compress(p, img.rgb, img.width, img.height, q[i], 2, &out, &olen, &err)) {
                fprintf(stderr, "aec-photo-rate: %s: %s\n", line, err.msg);
                rc = 1;
                break;
            }
            double gap = (double)olen / (bits / 8.0) - 1.0;
            printf("%s\t%d\t%.1f\t%zu\t%+.4f\n", line, q[i], bits / 8.0, olen, gap);
            est_sum[i] += bits / 8.0;
            bytes_sum[i] += (double)olen;
            if (fabs(gap) > fabs(worst[i]))
                worst[i] = gap;
            free(out);
            out = NULL;
        }
        aec_image_free(&img);
        photos++;
        fflush(stdout);
    }
    printf("\n| quality | photos | estimated bytes | written bytes | written / estimated - 1 | "
           "largest gap of one photo |\n|---|---|---|---|---|---|\n");
    for (int i = 0; i < nq && photos; i++)
        printf("| %d | %d | %.0f | %.0f | %+.2f%% | %+.2f%% |\n", q[i], photos, est_sum[i],
               bytes_sum[i], 100.0 * (bytes_sum[i] / est_sum[i] - 1.0), 100.0 * worst[i]);
    aec_photo_free(p);
    return rc;
}
