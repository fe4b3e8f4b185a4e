/* rotation.c - the rotation recognizer (include/aec/rotation.h): the views,
 * the network's place in a model file, and the raw score. */
#include "aec/rotation.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aec/layers.h"

#define PREFIX "aec.rotation."

/* One plane turned by k quarter turns counter-clockwise: the pixel at
 * (y, x) of the result comes from the source at the position that the
 * inverse turn maps it to. */
static void turn_plane(const float *src, int s, int k, int mirror, float *dst)
{
    for (int y = 0; y < s; y++)
        for (int x = 0; x < s; x++) {
            int sy, sx;
            switch (k) {
            case 0: sy = y, sx = x; break;
            case 1: sy = x, sx = s - 1 - y; break;
            case 2: sy = s - 1 - y, sx = s - 1 - x; break;
            default: sy = s - 1 - x, sx = y; break;
            }
            if (mirror)
                sx = s - 1 - sx;
            dst[(size_t)y * s + x] = src[(size_t)sy * s + sx];
        }
}

void aec_rotation_views(const float *img, int n, int c, int s, int mirror, float *out, int *labels)
{
    size_t plane = (size_t)s * s, image = plane * (size_t)c;
    for (int k = 0; k < AEC_ROTATION_CLASSES; k++)
        for (int i = 0; i < n; i++) {
            size_t slot = (size_t)k * n + i;
            for (int ch = 0; ch < c; ch++)
                turn_plane(img + i * image + ch * plane, s, k, mirror,
                           out + slot * image + ch * plane);
            if (labels)
                labels[slot] = k;
        }
}

aec_status aec_rotation_check(const aec_model *net, aec_error *err)
{
    const aec_shape *in = &net->input;
    const aec_shape *out = &net->layers[net->nlayers - 1].out_shape;
    if (in->c != 3 || in->h != AEC_ROTATION_SIDE || in->w != AEC_ROTATION_SIDE || in->flat)
        return aec_fail(err, AEC_ERR_FORMAT, "the rotation network takes %dx%dx%d, not 3x%dx%d",
                        in->c, in->h, in->w, AEC_ROTATION_SIDE, AEC_ROTATION_SIDE);
    if (!out->flat || out->c != AEC_ROTATION_CLASSES)
        return aec_fail(err, AEC_ERR_FORMAT, "the rotation network gives %dx%dx%d, not %d logits",
                        out->c, out->h, out->w, AEC_ROTATION_CLASSES);
    return AEC_OK;
}

static void tensor_name(char *name, size_t cap, int layer, const char *suffix)
{
    snprintf(name, cap, PREFIX "%d.%s", layer, suffix);
}

aec_status aec_rotation_embed(aec_model *m, const aec_model *net, aec_error *err)
{
    aec_status st = aec_rotation_check(net, err);
    for (int i = 0; !st && i < net->nlayers; i++)
        for (int j = 0; !st && j < net->layers[i].nparams; j++) {
            const aec_param *p = &net->layers[i].params[j];
            char name[96];
            tensor_name(name, sizeof name, i, p->suffix);
            st = aec_model_set_extra(m, name, p->data, p->ndim, p->dims, err);
        }
    return st;
}

aec_status aec_rotation_from_model(const aec_model *m, const char *layers_json, aec_model **net,
                                   aec_error *err)
{
    aec_model *r = NULL;
    aec_status st =
        aec_model_from_spec_network(&r, layers_json, 3, AEC_ROTATION_SIDE, AEC_ROTATION_SIDE, err);
    if (!st)
        st = aec_rotation_check(r, err);
    for (int i = 0; !st && i < r->nlayers; i++)
        for (int j = 0; !st && j < r->layers[i].nparams; j++) {
            aec_param *p = &r->layers[i].params[j];
            char name[96];
            tensor_name(name, sizeof name, i, p->suffix);
            const aec_extra_tensor *x = aec_model_find_extra(m, name);
            if (!x)
                st = aec_fail(err, AEC_ERR_FORMAT, "tensor '%s' is missing", name);
            else if (x->count != p->count)
                st = aec_fail(err, AEC_ERR_FORMAT, "tensor '%s' has %zu values, the layer %zu",
                              name, x->count, p->count);
            else
                memcpy(p->data, x->data, sizeof(float) * p->count);
        }
    if (st) {
        aec_model_free(r);
        r = NULL;
    } else
        aec_model_update_id(r);
    *net = r;
    return st;
}

/* The workspace for AEC_ROTATION_VIEWS samples: every layer's output, and
 * the widest convolution's scratch. */
size_t aec_rotation_score_bytes(const aec_model *net)
{
    size_t floats = 3 * (size_t)AEC_ROTATION_SIDE * AEC_ROTATION_SIDE * (AEC_ROTATION_VIEWS + 1),
           scratch = 0;
    for (int i = 0; i < net->nlayers; i++) {
        const aec_layer *L = &net->layers[i];
        floats += aec_shape_count(&L->out_shape) * AEC_ROTATION_VIEWS;
        if (L->type == AEC_LAYER_CONV2D) {
            size_t s = aec_conv2d_infer_scratch(L->in_f, L->in_shape.h, L->in_shape.w, L->kernel,
                                                L->stride, L->padding, 1);
            scratch = s > scratch ? s : scratch;
        }
    }
    return sizeof(float) * (floats + scratch) + 4096 * (size_t)net->nlayers;
}

aec_status aec_rotation_score(const aec_model *net, const aec_rgb_image *img, double *score,
                              aec_error *err)
{
    enum { N = AEC_ROTATION_VIEWS / 2, S = AEC_ROTATION_SIDE };
    size_t image = 3 * (size_t)S * S;
    aec_workspace *ws = NULL;
    float *x = malloc(sizeof(float) * image * (AEC_ROTATION_VIEWS + 1));
    int labels[AEC_ROTATION_VIEWS];
    double nll[AEC_ROTATION_VIEWS];
    aec_status st = x ? AEC_OK : aec_fail(err, AEC_ERR_NOMEM, "out of memory");
    if (!st)
        st = aec_image_to_tensor_fit(img, AEC_FIT_CROP, 3, S, S, x, err);
    if (!st)
        st = aec_workspace_create(&ws, net, AEC_ROTATION_VIEWS, 0, err);
    if (st)
        goto done;
    /* views: the 4 turns of the image, then the 4 turns of its mirror */
    aec_rotation_views(x, 1, 3, S, 0, x + image, labels);
    aec_rotation_views(x, 1, 3, S, 1, x + image * (1 + N), labels + N);
    const float *logits =
        aec_model_infer(net, ws, x + image, AEC_ROTATION_VIEWS, 0, net->nlayers - 1);
    aec_softmax_xent_forward_backward(NULL, nll, logits, labels, AEC_ROTATION_VIEWS,
                                      AEC_ROTATION_CLASSES);
    *score = 0;
    for (int v = 0; v < AEC_ROTATION_VIEWS; v++)
        *score += nll[v];
done:
    aec_workspace_free(ws);
    free(x);
    return st;
}
