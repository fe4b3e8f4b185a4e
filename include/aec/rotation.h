/* rotation.h - a recognizer of cats learned from cats alone: the part of the
 * anomaly score that knows what a whole cat photo looks like.
 *
 * A small convolutional network is trained, on photos of cats only, to say
 * by how many quarter turns an image was rotated (Golan & El-Yaniv 2018,
 * "Deep anomaly detection using geometric transformations"; Hendrycks et
 * al. 2019). To do that well it has to learn where a cat's ears, eyes, paws
 * and floor are; on a photo of something else its answers are unsure or
 * wrong. The raw score of an image is
 *
 *   r(x) = sum over k = 0..3 quarter turns and m = plain, mirrored of
 *          -ln p(k | x turned by k, mirrored if m)
 *
 * (8 views, one batch), on the image's largest centred square resized to
 * AEC_ROTATION_SIDE (aec_image_to_tensor_fit, AEC_FIT_CROP: the trainer's
 * inputs are made the same way). High means "not like the cats it learned".
 * anomaly.h turns r into a calibrated surprise.
 *
 * The network is an ordinary layer list (include/aec/model.h) with input
 * 3 x AEC_ROTATION_SIDE x AEC_ROTATION_SIDE and AEC_ROTATION_CLASSES flat
 * outputs (logits). aec-train --arch rotation trains it into a model file of
 * its own; aec-train --calibrate-catface --rotation FILE puts it into an
 * autoencoder's file: its layers in aec.anomaly, its tensors as extras named
 * "aec.rotation.{layer}.{suffix}".
 */
#ifndef AEC_ROTATION_H
#define AEC_ROTATION_H

#include <stddef.h>

#include "aec/error.h"
#include "aec/image.h"
#include "aec/model.h"

#define AEC_ROTATION_SIDE 64
#define AEC_ROTATION_CLASSES 4 /* 0, 1, 2, 3 quarter turns */
#define AEC_ROTATION_VIEWS 8   /* the 4 turns, plain and mirrored */

/* Turns n square images (c x s x s, planar) by k = 0..3 quarter turns
 * counter-clockwise: image i turned by k goes to out[k * n + i] and
 * labels[k * n + i] = k (labels may be NULL). mirror: flip left-right
 * first. out holds 4n images and must not overlap img. */
void aec_rotation_views(const float *img, int n, int c, int s, int mirror, float *out, int *labels);

/* AEC_OK when net takes 3 x AEC_ROTATION_SIDE^2 and gives
 * AEC_ROTATION_CLASSES flat outputs. */
aec_status aec_rotation_check(const aec_model *net, aec_error *err);

/* Copies net's layers spec (net->layers_json goes in aec.anomaly, by the
 * caller) and tensors into m's extras. */
aec_status aec_rotation_embed(aec_model *m, const aec_model *net, aec_error *err);

/* Rebuilds the network from its layers spec and m's extras. */
aec_status aec_rotation_from_model(const aec_model *m, const char *layers_json, aec_model **net,
                                   aec_error *err);

/* What aec_rotation_score allocates at most (its workspace and tensors). */
size_t aec_rotation_score_bytes(const aec_model *net);

/* r(x) of one image at its own size (the formula above). */
aec_status aec_rotation_score(const aec_model *net, const aec_rgb_image *img, double *score,
                              aec_error *err);

#endif
