/* fuzz_cascade.c - libFuzzer target for the Haar cascade readers
 * (src/engine/cascade.c): OpenCV's XML and the JSON form of model files.
 *
 * Input: one selector byte, then the bytes under test.
 *   0: the rest as cascade XML; 1: as cascade JSON (NUL-terminated copy);
 *   2: as a model's aec.anomaly JSON (src/engine/anomaly.c, which reads the
 *      cat-face part, its cascade and its rotation recognizer, whose
 *      tensors this model lacks): it must load (or be refused) and score
 *      without fault.
 * A cascade that loads must write JSON that loads again to the same JSON,
 * and, when it is small, scan a 12 x 9 image without fault.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aec/anomaly.h"
#include "aec/cascade.h"

static void exercise(aec_cascade *c)
{
    char *json = aec_cascade_to_json(c);
    aec_cascade *back = NULL;
    if (!json || aec_cascade_from_json(json, &back, NULL) != AEC_OK)
        abort();
    char *again = aec_cascade_to_json(back);
    if (!again || strcmp(json, again) != 0)
        abort();
    free(json);
    free(again);
    if (aec_cascade_stages(c) <= 4) {
        uint8_t rgb[12 * 9 * 3];
        for (size_t i = 0; i < sizeof rgb; i++)
            rgb[i] = (uint8_t)(i * 37);
        aec_rgb_image img = {12, 9, rgb};
        aec_cascade_result r;
        if (aec_cascade_scan(back, &img, &r, NULL) != AEC_OK || r.group > r.detections ||
            r.detections > r.windows)
            abort();
    }
    aec_cascade_free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > (1u << 20))
        return 0;
    aec_cascade *c = NULL;
    if (data[0] % 3 == 2) {
        aec_model m;
        memset(&m, 0, sizeof m);
        m.anomaly_json = malloc(size);
        if (!m.anomaly_json)
            return 0;
        memcpy(m.anomaly_json, data + 1, size - 1);
        m.anomaly_json[size - 1] = 0;
        aec_anomaly_calib cal;
        if (aec_anomaly_calib_from_model(&m, &cal, NULL) == AEC_OK && cal.face.cascade) {
            aec_anomaly_result r = {.score = 3};
            aec_anomaly_score_face(&cal, 20, 0, AEC_SCORE_COMBINED, -1, &r);
            if (r.normalized < 0 || r.normalized > 1)
                abort();
            if (cal.face.rotation) {
                aec_anomaly_score_face(&cal, 20, 5, AEC_SCORE_ROTATION, -1, &r);
                if (r.normalized < 0 || r.normalized > 1)
                    abort();
            }
            char *pub = aec_anomaly_public_json(m.anomaly_json);
            free(pub);
        }
        aec_anomaly_calib_free(&cal);
        free(m.anomaly_json);
        return 0;
    }
    if (data[0] % 3 == 0) {
        if (aec_cascade_parse_xml((const char *)data + 1, size - 1, &c, NULL) != AEC_OK)
            return 0;
    } else {
        char *s = malloc(size);
        if (!s)
            return 0;
        memcpy(s, data + 1, size - 1);
        s[size - 1] = 0;
        aec_status st = aec_cascade_from_json(s, &c, NULL);
        free(s);
        if (st != AEC_OK)
            return 0;
    }
    exercise(c);
    aec_cascade_free(c);
    return 0;
}
