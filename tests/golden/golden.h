/* golden.h - what the golden files of tests/golden/ are, shared by the
 * program that made them once (make_golden.c) and the test that checks them
 * on every commit and machine (tests/unit/test_golden.c).
 *
 * Two small models with fixed weights, committed beside the files:
 *   codec-tiny.safetensors  a conv codec, 3x16x16 -> 6x4x4 symbols (binary latent v2)
 *   mlp-tiny.safetensors    an MLP, 3x16x16 -> 16 floats (binary latent v1)
 * Three source images image-<i>.png (synthetic, 16x16), and for each:
 *   codec-tiny.<i>.aec      the version-2 stream of the image
 *   codec-tiny.<i>.sym      its symbols, int16 little-endian, channel-major
 *   codec-tiny.<i>.png      the image decoded from that stream
 *   mlp-tiny.<i>.<dt>.aecl  the version-1 latent, dtype f32, f16 and u8
 *   mlp-tiny.<i>.<dt>.png   the image decoded from it
 */
#ifndef AEC_TESTS_GOLDEN_H
#define AEC_TESTS_GOLDEN_H

#define GOLDEN_IMAGES 3
#define GOLDEN_SIZE 16

/* conv codec: two stride-2 convolutions down, two transposed up */
#define GOLDEN_CODEC_SPEC                                                                          \
    "[{\"type\":\"conv2d\",\"in\":3,\"out\":8,\"kernel\":3,\"stride\":2,\"padding\":1},"           \
    "{\"type\":\"relu\"},"                                                                         \
    "{\"type\":\"conv2d\",\"in\":8,\"out\":6,\"kernel\":3,\"stride\":2,\"padding\":1},"            \
    "{\"type\":\"conv_transpose2d\",\"in\":6,\"out\":8,\"kernel\":3,\"stride\":2,\"padding\":1,"   \
    "\"output_padding\":1},"                                                                       \
    "{\"type\":\"relu\"},"                                                                         \
    "{\"type\":\"conv_transpose2d\",\"in\":8,\"out\":3,\"kernel\":3,\"stride\":2,\"padding\":1,"   \
    "\"output_padding\":1},"                                                                       \
    "{\"type\":\"sigmoid\"}]"
#define GOLDEN_CODEC_LATENT_INDEX 2

#define GOLDEN_MLP_SPEC                                                                            \
    "[{\"type\":\"flatten\"},{\"type\":\"batchnorm\",\"features\":768},"                           \
    "{\"type\":\"linear\",\"in\":768,\"out\":16},{\"type\":\"relu\"},"                             \
    "{\"type\":\"linear\",\"in\":16,\"out\":768},{\"type\":\"sigmoid\"},"                          \
    "{\"type\":\"unflatten\",\"shape\":[3,16,16]}]"
#define GOLDEN_MLP_LATENT_INDEX 3

#endif
