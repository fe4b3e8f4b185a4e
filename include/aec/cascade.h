/* cascade.h - a boosted cascade of Haar-like features (Viola & Jones 2001),
 * used as a detector of cat faces: the part of the anomaly score that knows
 * what a cat looks like (include/aec/anomaly.h).
 *
 * The cascades come from OpenCV's data files (Debian's opencv-data,
 * /usr/share/opencv4/haarcascades/haarcascade_frontalcatface.xml, Joseph
 * Howse, BSD licence): stages of decision stumps over upright two- and
 * three-rectangle features in a 24 x 24 window. aec_cascade_parse_xml reads
 * that format (stump cascades with upright features only; anything else is
 * refused); the trainer stores the cascade in the model file as JSON
 * (aec_cascade_to_json / aec_cascade_from_json), so a model file carries its
 * whole score and the daemon needs no OpenCV at all.
 *
 * aec_cascade_scan looks at every window of an image pyramid much as OpenCV's
 * detectMultiScale does (scale step 1.1, window step 2 pixels, 1 when the
 * scale is above 2; each window normalized by its standard deviation) and
 * sums up the evidence in one number:
 *
 *   evidence = S + log(1 + group)   if some windows pass all S stages
 *            = max over windows of (stages passed + exp(sum - threshold)
 *              at the stage that rejected it)                    otherwise
 *
 * where group is the size of the largest cluster of windows that passed
 * (lying on one another: OpenCV's groupRectangles rule, every edge within
 * 0.2 of the smaller side, applied transitively): a face makes many
 * neighbouring windows pass, a texture scattered single ones. So it grows
 * with how strongly one place looks like a cat's face and, below that, with
 * how far the best window got. The image is first resized
 * so that its longer side is AEC_CASCADE_SIDE pixels, which bounds the work
 * and makes the evidence independent of the upload's resolution.
 */
#ifndef AEC_CASCADE_H
#define AEC_CASCADE_H

#include <stddef.h>

#include "aec/error.h"
#include "aec/image.h"

#define AEC_CASCADE_SIDE 400          /* longer side of the scanned image */
#define AEC_CASCADE_MAX_STAGES 64     /* limits of what a cascade may hold */
#define AEC_CASCADE_MAX_STUMPS 8192   /* (the cat face cascade: 20 / ~1,000 */
#define AEC_CASCADE_MAX_FEATURES 8192 /*  / ~900) */
#define AEC_CASCADE_MAX_WINDOW 64     /* window side in pixels */
#define AEC_CASCADE_MAX_HITS 4096     /* windows kept for grouping */

/* What aec_cascade_scan allocates at most for a w x h image: its working
 * images, and the first resize's float rows (h x AEC_CASCADE_SIDE x 3). */
size_t aec_cascade_scan_bytes(int w, int h);

typedef struct aec_cascade aec_cascade;

typedef struct {
    long windows;    /* windows looked at */
    long detections; /* windows that passed every stage */
    long group;      /* the largest cluster of them (at most AEC_CASCADE_MAX_HITS) */
    double depth;    /* best stages-passed + partial credit */
    double evidence; /* the number above */
} aec_cascade_result;

/* An OpenCV cascade XML file (its bytes, len of them). */
aec_status aec_cascade_parse_xml(const char *xml, size_t len, aec_cascade **out, aec_error *err);

/* The compact JSON form stored in model files, and back. to_json returns a
 * malloc'd string or NULL when out of memory. */
char *aec_cascade_to_json(const aec_cascade *c);
aec_status aec_cascade_from_json(const char *json, aec_cascade **out, aec_error *err);

void aec_cascade_free(aec_cascade *c);

int aec_cascade_stages(const aec_cascade *c);

/* Scans img (any size up to the caller's pixel limit; resized first, see
 * above). Allocates at most aec_cascade_scan_bytes(width, height). */
aec_status aec_cascade_scan(const aec_cascade *c, const aec_rgb_image *img, aec_cascade_result *out,
                            aec_error *err);

#endif
