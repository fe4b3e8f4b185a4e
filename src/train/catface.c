/* catface.c - aec-train --calibrate-catface: adds the cat-face part to a
 * model's anomaly score (include/aec/anomaly.h).
 *
 * Reads an OpenCV Haar cascade, then scores every photo of --data (at its
 * own size, as /anomaly sees an upload: the cascade's evidence on the photo,
 * the reconstruction score on the photo stretched to the model's input) and
 * writes the model with the calibrated "catface" object in aec.anomaly,
 * cascade included. With --rotation FILE, the rotation recognizer (a model
 * file of --arch rotation) scores the same photos and goes into the file
 * too. The photos must be cats the model never trained on and
 * that no measurement uses.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aec/anomaly.h"
#include "aec/cascade.h"
#include "aec/image.h"
#include "aec/model.h"
#include "aec/rotation.h"
#include "aec/safetensors.h"
#include "train.h"

#define CASCADE_FILE_MAX (16u << 20)

static aec_status read_cascade(const char *path, aec_cascade **out, aec_error *err)
{
    uint8_t *xml = NULL;
    size_t len = 0;
    aec_status st = aec_read_file(path, CASCADE_FILE_MAX, &xml, &len, err);
    if (!st)
        st = aec_cascade_parse_xml((const char *)xml, len, out, err);
    free(xml);
    if (st)
        aec_error_prefix(err, path);
    return st;
}

aec_status train_calibrate_face(const train_options *o, aec_error *err)
{
    aec_model *m = NULL;
    aec_workspace *ws = NULL;
    aec_cascade *cascade = NULL;
    aec_model *rot = NULL;
    double *rot_raw = NULL;
    aec_anomaly_calib cal = {0};
    train_photos ph = {0};
    float *x = NULL, *y = NULL;
    double *evidence = NULL, *recon = NULL;
    char *json = NULL;
    aec_status st;
    if (!o->cascade) {
        st = aec_fail(err, AEC_ERR_INVALID, "--calibrate-catface needs --cascade FILE");
        goto done;
    }
    if ((st = aec_model_load(&m, o->calibrate_face, err)) ||
        (st = aec_anomaly_calib_from_model(m, &cal, err)) ||
        (st = aec_workspace_create(&ws, m, 1, 0, err)) ||
        (st = read_cascade(o->cascade, &cascade, err)))
        goto done;
    if (o->rotation &&
        ((st = aec_model_load(&rot, o->rotation, err)) || (st = aec_rotation_check(rot, err)))) {
        aec_error_prefix(err, o->rotation);
        goto done;
    }
    if ((st = train_photos_load(&ph, o, err)))
        goto done;
    size_t n = aec_model_input_count(m);
    x = malloc(sizeof(float) * n);
    y = malloc(sizeof(float) * n);
    evidence = malloc(sizeof(double) * (ph.count + 1));
    recon = malloc(sizeof(double) * (ph.count + 1));
    rot_raw = malloc(sizeof(double) * (ph.count + 1));
    if (!x || !y || !evidence || !recon || !rot_raw) {
        st = aec_fail(err, AEC_ERR_NOMEM, "out of memory");
        goto done;
    }
    size_t used = 0;
    for (size_t i = 0; i < ph.count; i++) {
        const aec_rgb_image *img = &ph.img[i];
        int shorter = img->width < img->height ? img->width : img->height;
        if (shorter < AEC_CATFACE_MIN_SIDE)
            continue; /* /anomaly would not use the face part on it either */
        aec_cascade_result cr;
        aec_anomaly_result r;
        if ((st = aec_cascade_scan(cascade, img, &cr, err)) ||
            (st = aec_image_to_tensor_fit(img, AEC_FIT_STRETCH, m->input.c, m->input.h, m->input.w,
                                          x, err)))
            goto done;
        if (rot && (st = aec_rotation_score(rot, img, &rot_raw[used], err)))
            goto done;
        aec_model_reconstruct(m, ws, x, 1, y);
        aec_anomaly_score(&cal, x, y, m->input.c, m->input.h, m->input.w, -1, &r);
        evidence[used] = cr.evidence;
        recon[used++] = r.score;
    }
    if (!o->quiet)
        fprintf(stderr, "catface: %zu photos scored (%zu skipped, %zu smaller than %d px)\n", used,
                ph.skipped, ph.count - used, AEC_CATFACE_MIN_SIDE);
    const char *base = strrchr(o->cascade, '/');
    char source[512];
    snprintf(source, sizeof source, "%s (OpenCV; calibrated on %zu photos of %s)",
             base ? base + 1 : o->cascade, used, o->data_dirs[0]);
    if ((st = aec_anomaly_calibrate_face(m, &cal, cascade, source, rot, evidence, recon, rot_raw,
                                         used, &json, err)) ||
        (rot && (st = aec_rotation_embed(m, rot, err))))
        goto done;
    free(m->anomaly_json);
    m->anomaly_json = json;
    aec_model_update_id(m);
    if ((st = aec_model_save(m, o->out, err)))
        goto done;
    if (!o->quiet)
        fprintf(stderr, "wrote %s (%s)\n", o->out, m->id);
done:
    free(x);
    free(y);
    free(evidence);
    free(recon);
    free(rot_raw);
    aec_model_free(rot);
    train_photos_free(&ph);
    aec_anomaly_calib_free(&cal);
    aec_cascade_free(cascade);
    aec_workspace_free(ws);
    aec_model_free(m);
    return st;
}
