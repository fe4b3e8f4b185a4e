/* test_photo_train.c - the photo codec's training graph: its gradient
 * against finite differences of its loss, for parameters of every tensor
 * (every layer kind: convolutions, transposed convolutions, GDN and inverse
 * GDN through their reparametrization, leaky ReLU, gains, both densities),
 * and that Adam steps lower the loss on a fixed batch.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aec/photo.h"
#include "aec/random.h"
#include "testutil.h"
#include "train.h"

static photo_step loss_at(photo_trainer *t, uint64_t seed, int level)
{
    t->rng = seed;
    memset(t->grad, 0, sizeof(float) * t->p->nparams);
    return photo_trainer_step(t, level);
}

static void fill_image(photo_trainer *t, uint64_t seed)
{
    /* smooth-ish pictures: a random gradient per channel and sample plus noise */
    uint64_t r = seed;
    int c = t->crop;
    for (int ch = 0; ch < 3; ch++)
        for (int i = 0; i < t->n; i++) {
            double a = aec_random_uniform(&r), b = aec_random_uniform(&r);
            for (int y = 0; y < c; y++)
                for (int x = 0; x < c; x++)
                    t->x[(((size_t)ch * t->n + i) * c + y) * c + x] =
                        (float)(0.25 + 0.5 * (a * x + b * y) / (2.0 * c) +
                                0.2 * aec_random_uniform(&r));
        }
}

static void test_gradients(void)
{
    aec_error err = {{0}};
    /* small lambdas keep the loss near 1, where float32 finite differences are precise */
    aec_photo_config cfg = {.n = 4, .m = 6, .levels = 2, .lambda = {0.0002f, 0.0005f}};
    aec_photo *p = NULL;
    REQUIRE(aec_photo_create(&p, &cfg, 7, &err) == AEC_OK, "create: %s", err.msg);
    /* move off the initial symmetric values so every path carries gradient, and
     * GDN's gamma off its lower bound (where a difference would cross it) */
    uint64_t r = 99;
    for (size_t i = 0; i < p->nparams; i++)
        p->params[i] *= (float)(0.8 + 0.4 * aec_random_uniform(&r));
    for (int ti = 0; ti < p->ntensors; ti++)
        if (p->tensors[ti].gdn == 2)
            for (size_t i = 0; i < p->tensors[ti].count; i++)
                p->params[p->tensors[ti].offset + i] = (float)(0.1 + 0.2 * aec_random_uniform(&r));
    /* and the predicted scales above their lower bound 0.11 (below it the
     * bound passes only gradients that raise them: not a derivative) */
    const aec_stage *last = &p->h_s.st[p->h_s.nstages - 1];
    for (int j = 0; j < cfg.m; j++)
        p->params[last->b + j] += 1.0f;
    aec_photo_update_eff(p);
    photo_trainer t;
    REQUIRE(photo_trainer_init(&t, p, 2, 64, 1, &err) == AEC_OK, "trainer: %s", err.msg);
    t.exact_grad = 1;
    fill_image(&t, 5);
    int level = 1;
    uint64_t seed = 1234;
    photo_step base = loss_at(&t, seed, level);
    CHECK(isfinite(base.loss) && base.loss > 0, "loss %g", base.loss);
    float *g = malloc(sizeof(float) * p->nparams);
    REQUIRE(g, "oom");
    memcpy(g, t.grad, sizeof(float) * p->nparams);
    int checked = 0, bad = 0;
    uint64_t pick = 42;
    for (int ti = 0; ti < p->ntensors; ti++) {
        const aec_photo_tensor *tn = &p->tensors[ti];
        for (int k = 0; k < 3; k++) {
            size_t i = tn->offset + aec_random_next(&pick) % tn->count;
            if (!strcmp(tn->name, "gain") || !strcmp(tn->name, "inv_gain"))
                i = tn->offset + (size_t)level * cfg.m + aec_random_next(&pick) % cfg.m;
            float keep = p->params[i];
            double h = 1e-2 * (fabs(keep) > 0.05 ? fabs(keep) : 0.05);
            p->params[i] = (float)(keep + h);
            aec_photo_update_eff(p);
            double up = loss_at(&t, seed, level).loss;
            p->params[i] = (float)(keep - h);
            aec_photo_update_eff(p);
            double dn = loss_at(&t, seed, level).loss;
            p->params[i] = keep;
            aec_photo_update_eff(p);
            double fd = (up - dn) / (2 * h), an = g[i];
            double tol = 0.03 * fmax(fabs(fd), fabs(an)) + 2e-4;
            checked++;
            if (fabs(fd - an) > tol) {
                bad++;
                fprintf(stderr, "  %s[%zu]: analytic %.6g, finite difference %.6g\n", tn->name,
                        i - tn->offset, an, fd);
            }
        }
    }
    CHECK(bad == 0, "%d of %d gradients disagree with finite differences", bad, checked);
    free(g);
    photo_trainer_free(&t);
    aec_photo_free(p);
}

static void test_adam_lowers_loss(void)
{
    aec_error err = {{0}};
    aec_photo_config cfg = {.n = 8, .m = 8, .levels = 1, .lambda = {0.01f}};
    aec_photo *p = NULL;
    REQUIRE(aec_photo_create(&p, &cfg, 3, &err) == AEC_OK, "create: %s", err.msg);
    photo_trainer t;
    REQUIRE(photo_trainer_init(&t, p, 2, 64, 1, &err) == AEC_OK, "trainer: %s", err.msg);
    fill_image(&t, 9);
    aec_adam opt = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
    double first = loss_at(&t, 5, 0).loss, last = first;
    for (long s = 1; s <= 60; s++) {
        last = loss_at(&t, 5, 0).loss;
        photo_trainer_update(&t, &opt, s);
    }
    CHECK(last < 0.5 * first, "loss %g -> %g after 60 steps", first, last);
    photo_trainer_free(&t);
    aec_photo_free(p);
}

/* Adam's first step moves every parameter with a gradient by about its
 * learning rate: the gains (and inverse gains) by lr * gain_lr_scale, the
 * rest by lr. */
static void test_gain_learning_rate(void)
{
    aec_error err = {{0}};
    aec_photo_config cfg = {.n = 8, .m = 8, .levels = 2, .lambda = {0.01f, 0.05f}};
    aec_photo *p = NULL;
    REQUIRE(aec_photo_create(&p, &cfg, 4, &err) == AEC_OK, "create: %s", err.msg);
    photo_trainer t;
    REQUIRE(photo_trainer_init(&t, p, 2, 64, 1, &err) == AEC_OK, "trainer: %s", err.msg);
    CHECK(t.gain_lr_scale == 1.0f, "the scale is 1 after init");
    t.gain_lr_scale = 10;
    fill_image(&t, 11);
    float *before = malloc(sizeof(float) * p->nparams);
    REQUIRE(before, "oom");
    memcpy(before, p->params, sizeof(float) * p->nparams);
    loss_at(&t, 5, 1); /* level 1: its gains get a gradient, level 0's do not */
    aec_adam opt = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
    photo_trainer_update(&t, &opt, 1);
    size_t m = (size_t)cfg.m;
    double gain_max = 0, other_max = 0, level0_max = 0;
    for (size_t i = 0; i < p->nparams; i++) {
        double d = fabs((double)p->params[i] - before[i]);
        int in_gain =
            (i >= p->gain && i < p->gain + 2 * m) || (i >= p->inv_gain && i < p->inv_gain + 2 * m);
        int level0 = (i >= p->gain && i < p->gain + m) || (i >= p->inv_gain && i < p->inv_gain + m);
        if (level0)
            level0_max = fmax(level0_max, d);
        else if (in_gain)
            gain_max = fmax(gain_max, d);
        else
            other_max = fmax(other_max, d);
    }
    CHECK(gain_max > 9e-3 && gain_max < 1.1e-2, "level 1's gains moved by 10 lr: %g", gain_max);
    CHECK(other_max > 9e-4 && other_max < 1.1e-3, "the rest by lr: %g", other_max);
    CHECK(level0_max == 0, "level 0's gains (no gradient) did not move: %g", level0_max);
    free(before);
    photo_trainer_free(&t);
    aec_photo_free(p);
}

int main(void)
{
    test_gradients();
    test_adam_lowers_loss();
    test_gain_learning_rate();
    return TEST_SUMMARY();
}
