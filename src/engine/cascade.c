/* cascade.c - Haar cascades: reading OpenCV's XML, the JSON form in model
 * files, and scanning an image for the windows that pass them.
 *
 * See include/aec/cascade.h for what the evidence is. Owns: the cascade's
 * data (stages of decision stumps over rectangle features), its validation
 * (every rectangle inside the window, every index in range, every number
 * finite: both readers end in cascade_check), a small XML reader for the one
 * subset OpenCV writes (elements, text, comments, no attributes we need),
 * the image pyramid and the window evaluation.
 */
#include "aec/cascade.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

typedef struct {
    int x, y, w, h;
    float weight;
} cascade_rect;

typedef struct {
    cascade_rect rect[3];
    int rects; /* 2 or 3 */
} cascade_feature;

typedef struct {
    int feature;
    float threshold, left, right; /* value < threshold ? left : right */
} cascade_stump;

typedef struct {
    int first, count; /* its stumps: stumps[first .. first+count) */
    float threshold;  /* rejected when the stumps' sum is below it */
} cascade_stage;

struct aec_cascade {
    int win_w, win_h;
    int n_stages, n_stumps, n_features;
    cascade_stage *stages;
    cascade_stump *stumps;
    cascade_feature *features;
};

/* OpenCV lowers every stage threshold by this when it reads a cascade. */
#define STAGE_EPS 1e-5f

void aec_cascade_free(aec_cascade *c)
{
    if (!c)
        return;
    free(c->stages);
    free(c->stumps);
    free(c->features);
    free(c);
}

int aec_cascade_stages(const aec_cascade *c)
{
    return c->n_stages;
}

static aec_status cascade_alloc(int stages, int stumps, int features, aec_cascade **out,
                                aec_error *err)
{
    *out = NULL;
    if (stages < 1 || stages > AEC_CASCADE_MAX_STAGES || stumps < 1 ||
        stumps > AEC_CASCADE_MAX_STUMPS || features < 1 || features > AEC_CASCADE_MAX_FEATURES)
        return aec_fail(err, AEC_ERR_LIMIT,
                        "cascade: %d stages, %d stumps, %d features (limits 1..%d, %d, %d)", stages,
                        stumps, features, AEC_CASCADE_MAX_STAGES, AEC_CASCADE_MAX_STUMPS,
                        AEC_CASCADE_MAX_FEATURES);
    aec_cascade *c = calloc(1, sizeof *c);
    if (c) {
        c->stages = calloc((size_t)stages, sizeof *c->stages);
        c->stumps = calloc((size_t)stumps, sizeof *c->stumps);
        c->features = calloc((size_t)features, sizeof *c->features);
    }
    if (!c || !c->stages || !c->stumps || !c->features) {
        aec_cascade_free(c);
        return aec_fail(err, AEC_ERR_NOMEM, "cascade: out of memory");
    }
    c->n_stages = stages, c->n_stumps = stumps, c->n_features = features;
    *out = c;
    return AEC_OK;
}

/* Everything the scan relies on, checked once whichever reader built it. */
static aec_status cascade_check(const aec_cascade *c, aec_error *err)
{
    if (c->win_w < 3 || c->win_h < 3 || c->win_w > AEC_CASCADE_MAX_WINDOW ||
        c->win_h > AEC_CASCADE_MAX_WINDOW)
        return aec_fail(err, AEC_ERR_FORMAT, "cascade: window %dx%d (3..%d)", c->win_w, c->win_h,
                        AEC_CASCADE_MAX_WINDOW);
    int next = 0;
    for (int s = 0; s < c->n_stages; s++) {
        const cascade_stage *st = &c->stages[s];
        if (st->first != next || st->count < 1 || st->count > c->n_stumps - next ||
            !isfinite(st->threshold))
            return aec_fail(err, AEC_ERR_FORMAT, "cascade: stage %d has a bad stump range", s);
        next += st->count;
    }
    if (next != c->n_stumps)
        return aec_fail(err, AEC_ERR_FORMAT, "cascade: stages use %d of %d stumps", next,
                        c->n_stumps);
    for (int i = 0; i < c->n_stumps; i++) {
        const cascade_stump *t = &c->stumps[i];
        if (t->feature < 0 || t->feature >= c->n_features || !isfinite(t->threshold) ||
            !isfinite(t->left) || !isfinite(t->right))
            return aec_fail(err, AEC_ERR_FORMAT, "cascade: stump %d is invalid", i);
    }
    for (int i = 0; i < c->n_features; i++) {
        const cascade_feature *f = &c->features[i];
        if (f->rects < 2 || f->rects > 3)
            return aec_fail(err, AEC_ERR_FORMAT, "cascade: feature %d has %d rectangles", i,
                            f->rects);
        for (int k = 0; k < f->rects; k++) {
            const cascade_rect *r = &f->rect[k];
            if (r->x < 0 || r->y < 0 || r->w < 1 || r->h < 1 || r->x > c->win_w - r->w ||
                r->y > c->win_h - r->h || !isfinite(r->weight))
                return aec_fail(err, AEC_ERR_FORMAT,
                                "cascade: feature %d: rectangle %d is outside the %dx%d window", i,
                                k, c->win_w, c->win_h);
        }
    }
    return AEC_OK;
}

/* ---- OpenCV's XML ------------------------------------------------------------------- */

/* One element: its name and, for a leaf, its text (up to the next '<'). */
typedef struct {
    const char *name, *text;
    int name_len, text_len;
    int child, next; /* first child, next sibling: indices, -1 for none */
} xml_node;

typedef struct {
    xml_node *node;
    int n, cap;
} xml_tree;

#define XML_MAX_DEPTH 32

static int xml_add(xml_tree *t, const char *name, int name_len)
{
    if (t->n == t->cap) {
        int cap = t->cap ? 2 * t->cap : 256;
        xml_node *p = realloc(t->node, (size_t)cap * sizeof *p);
        if (!p)
            return -1;
        t->node = p, t->cap = cap;
    }
    t->node[t->n] = (xml_node){name, NULL, name_len, 0, -1, -1};
    return t->n++;
}

/* Parses s (NUL-terminated) into t; node 0 is a virtual root. Attributes are
 * skipped; text is kept only where an element has no children. */
static aec_status xml_parse(const char *s, xml_tree *t, aec_error *err)
{
    int stack[XML_MAX_DEPTH + 1], last[XML_MAX_DEPTH + 1], depth = 0;
    if (xml_add(t, "", 0) < 0)
        return aec_fail(err, AEC_ERR_NOMEM, "cascade XML: out of memory");
    stack[0] = 0, last[0] = -1;
    const char *p = s;
    while ((p = strchr(p, '<')) != NULL) {
        if (!strncmp(p, "<!--", 4) || !strncmp(p, "<?", 2) || !strncmp(p, "<!", 2)) {
            const char *end = !strncmp(p, "<!--", 4) ? strstr(p + 4, "-->") : strchr(p, '>');
            if (!end)
                return aec_fail(err, AEC_ERR_FORMAT, "cascade XML: unterminated <! or <?");
            p = end + 1;
            continue;
        }
        int closing = p[1] == '/';
        const char *name = p + 1 + closing;
        int len = (int)strcspn(name, " \t\r\n/>");
        const char *gt = strchr(name, '>');
        if (!gt || len == 0 || len > 64)
            return aec_fail(err, AEC_ERR_FORMAT, "cascade XML: a malformed tag");
        int empty = gt[-1] == '/';
        if (closing) {
            xml_node *open = &t->node[stack[depth]];
            if (depth == 0 || open->name_len != len || strncmp(open->name, name, (size_t)len))
                return aec_fail(err, AEC_ERR_FORMAT, "cascade XML: </%.*s> closes nothing open",
                                len, name);
            depth--;
        } else {
            if (depth == XML_MAX_DEPTH)
                return aec_fail(err, AEC_ERR_FORMAT, "cascade XML: nested deeper than %d",
                                XML_MAX_DEPTH);
            int id = xml_add(t, name, len);
            if (id < 0)
                return aec_fail(err, AEC_ERR_NOMEM, "cascade XML: out of memory");
            if (last[depth] < 0)
                t->node[stack[depth]].child = id;
            else
                t->node[last[depth]].next = id;
            last[depth] = id;
            if (!empty) {
                t->node[id].text = gt + 1;
                t->node[id].text_len = (int)strcspn(gt + 1, "<");
                stack[++depth] = id, last[depth] = -1;
            }
        }
        p = gt + 1;
    }
    if (depth != 0)
        return aec_fail(err, AEC_ERR_FORMAT, "cascade XML: <%.*s> is never closed",
                        t->node[stack[depth]].name_len, t->node[stack[depth]].name);
    return AEC_OK;
}

static int xml_child(const xml_tree *t, int node, const char *name)
{
    if (node < 0)
        return -1;
    for (int c = t->node[node].child; c >= 0; c = t->node[c].next)
        if (t->node[c].name_len == (int)strlen(name) &&
            !strncmp(t->node[c].name, name, (size_t)t->node[c].name_len))
            return c;
    return -1;
}

static int xml_count(const xml_tree *t, int node)
{
    int n = 0;
    for (int c = node < 0 ? -1 : t->node[node].child; c >= 0; c = t->node[c].next)
        n++;
    return n;
}

/* Exactly n numbers and nothing else in the element's text. */
static int xml_numbers(const xml_tree *t, int node, double *out, int n)
{
    if (node < 0 || t->node[node].child >= 0 || !t->node[node].text)
        return 0;
    const char *p = t->node[node].text, *end = p + t->node[node].text_len;
    for (int i = 0; i < n; i++) {
        char *q;
        out[i] = strtod(p, &q);
        if (q == p || q > end || !isfinite(out[i]))
            return 0;
        p = q;
    }
    while (p < end && strchr(" \t\r\n", *p))
        p++;
    return p == end;
}

static int xml_int(const xml_tree *t, int node, int lo, int hi, int *out)
{
    double v;
    if (!xml_numbers(t, node, &v, 1) || v != floor(v) || v < lo || v > hi)
        return 0;
    *out = (int)v;
    return 1;
}

static int xml_text_is(const xml_tree *t, int node, const char *want)
{
    if (node < 0 || !t->node[node].text)
        return 0;
    const char *p = t->node[node].text;
    int n = t->node[node].text_len;
    while (n > 0 && strchr(" \t\r\n", p[n - 1]))
        n--;
    while (n > 0 && strchr(" \t\r\n", *p))
        p++, n--;
    return n == (int)strlen(want) && !strncmp(p, want, (size_t)n);
}

/* Fills c's stages and stumps from <stages>. */
static aec_status read_stages(const xml_tree *t, int stages, aec_cascade *c, aec_error *err)
{
    int s = 0, k = 0;
    for (int st = t->node[stages].child; st >= 0; st = t->node[st].next, s++) {
        double thr;
        int weak = xml_child(t, st, "weakClassifiers");
        if (!xml_numbers(t, xml_child(t, st, "stageThreshold"), &thr, 1) || weak < 0)
            return aec_fail(err, AEC_ERR_FORMAT, "cascade XML: stage %d has no threshold", s);
        c->stages[s] = (cascade_stage){k, xml_count(t, weak), (float)thr - STAGE_EPS};
        for (int w = t->node[weak].child; w >= 0; w = t->node[w].next, k++) {
            double node[4], leaf[2];
            if (!xml_numbers(t, xml_child(t, w, "internalNodes"), node, 4) ||
                !xml_numbers(t, xml_child(t, w, "leafValues"), leaf, 2) || node[0] != 0 ||
                node[1] != -1 || node[2] != floor(node[2]) || node[2] < 0 ||
                node[2] >= c->n_features)
                return aec_fail(err, AEC_ERR_FORMAT,
                                "cascade XML: stage %d: only decision stumps are supported", s);
            c->stumps[k] =
                (cascade_stump){(int)node[2], (float)node[3], (float)leaf[0], (float)leaf[1]};
        }
    }
    return AEC_OK;
}

static aec_status read_features(const xml_tree *t, int features, aec_cascade *c, aec_error *err)
{
    int i = 0;
    for (int f = t->node[features].child; f >= 0; f = t->node[f].next, i++) {
        int rects = xml_child(t, f, "rects"), tilted = 0;
        int tn = xml_child(t, f, "tilted");
        if (tn >= 0 && !xml_int(t, tn, 0, 1, &tilted))
            return aec_fail(err, AEC_ERR_FORMAT, "cascade XML: feature %d: bad <tilted>", i);
        if (tilted)
            return aec_fail(err, AEC_ERR_UNSUPPORTED,
                            "cascade XML: feature %d is tilted (only upright features are "
                            "supported: use haarcascade_frontalcatface.xml, not _extended)",
                            i);
        int n = xml_count(t, rects);
        if (n < 2 || n > 3)
            return aec_fail(err, AEC_ERR_FORMAT, "cascade XML: feature %d has %d rectangles", i, n);
        c->features[i].rects = n;
        int k = 0;
        for (int r = t->node[rects].child; r >= 0; r = t->node[r].next, k++) {
            double v[5];
            if (!xml_numbers(t, r, v, 5))
                return aec_fail(err, AEC_ERR_FORMAT, "cascade XML: feature %d: bad rectangle", i);
            for (int j = 0; j < 4; j++)
                if (v[j] != floor(v[j]) || fabs(v[j]) > AEC_CASCADE_MAX_WINDOW)
                    return aec_fail(err, AEC_ERR_FORMAT, "cascade XML: feature %d: bad rectangle",
                                    i);
            c->features[i].rect[k] =
                (cascade_rect){(int)v[0], (int)v[1], (int)v[2], (int)v[3], (float)v[4]};
        }
    }
    return AEC_OK;
}

aec_status aec_cascade_parse_xml(const char *xml, size_t len, aec_cascade **out, aec_error *err)
{
    *out = NULL;
    aec_cascade *c = NULL;
    xml_tree t = {0};
    char *s = malloc(len + 1);
    aec_status st = AEC_OK;
    if (!s) {
        st = aec_fail(err, AEC_ERR_NOMEM, "cascade XML: out of memory");
        goto done;
    }
    memcpy(s, xml, len);
    s[len] = 0;
    if (strlen(s) != len) {
        st = aec_fail(err, AEC_ERR_FORMAT, "cascade XML: a NUL byte in the text");
        goto done;
    }
    if ((st = xml_parse(s, &t, err)) != AEC_OK)
        goto done;
    int root = xml_child(&t, xml_child(&t, 0, "opencv_storage"), "cascade");
    int stages = xml_child(&t, root, "stages"), features = xml_child(&t, root, "features");
    int w = 0, h = 0, nstumps = 0;
    if (root < 0 || stages < 0 || features < 0 ||
        !xml_text_is(&t, xml_child(&t, root, "stageType"), "BOOST") ||
        !xml_text_is(&t, xml_child(&t, root, "featureType"), "HAAR") ||
        !xml_int(&t, xml_child(&t, root, "width"), 3, AEC_CASCADE_MAX_WINDOW, &w) ||
        !xml_int(&t, xml_child(&t, root, "height"), 3, AEC_CASCADE_MAX_WINDOW, &h)) {
        st = aec_fail(err, AEC_ERR_FORMAT,
                      "cascade XML: not an OpenCV Haar cascade (opencv_storage/cascade with "
                      "stageType BOOST, featureType HAAR, width, height, stages, features)");
        goto done;
    }
    for (int s2 = t.node[stages].child; s2 >= 0; s2 = t.node[s2].next)
        nstumps += xml_count(&t, xml_child(&t, s2, "weakClassifiers"));
    if ((st = cascade_alloc(xml_count(&t, stages), nstumps, xml_count(&t, features), &c, err)))
        goto done;
    c->win_w = w, c->win_h = h;
    if ((st = read_stages(&t, stages, c, err)) != AEC_OK ||
        (st = read_features(&t, features, c, err)) != AEC_OK ||
        (st = cascade_check(c, err)) != AEC_OK)
        goto done;
    *out = c;
    c = NULL;
done:
    aec_cascade_free(c);
    free(t.node);
    free(s);
    return st;
}

/* ---- the JSON form ---------------------------------------------------------------- */

char *aec_cascade_to_json(const aec_cascade *c)
{
    cJSON *o = cJSON_CreateObject();
    double win[2] = {c->win_w, c->win_h};
    cJSON_AddItemToObject(o, "window", cJSON_CreateDoubleArray(win, 2));
    cJSON *a = cJSON_AddArrayToObject(o, "stages");
    for (int i = 0; i < c->n_stages; i++) {
        double v[2] = {c->stages[i].threshold, c->stages[i].count};
        cJSON_AddItemToArray(a, cJSON_CreateDoubleArray(v, 2));
    }
    a = cJSON_AddArrayToObject(o, "stumps");
    for (int i = 0; i < c->n_stumps; i++) {
        const cascade_stump *t = &c->stumps[i];
        double v[4] = {t->feature, t->threshold, t->left, t->right};
        cJSON_AddItemToArray(a, cJSON_CreateDoubleArray(v, 4));
    }
    a = cJSON_AddArrayToObject(o, "features");
    for (int i = 0; i < c->n_features; i++) {
        double v[15];
        const cascade_feature *f = &c->features[i];
        for (int k = 0; k < f->rects; k++) {
            const cascade_rect *r = &f->rect[k];
            double one[5] = {r->x, r->y, r->w, r->h, r->weight};
            memcpy(v + 5 * k, one, sizeof one);
        }
        cJSON_AddItemToArray(a, cJSON_CreateDoubleArray(v, 5 * f->rects));
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* An array of exactly n finite numbers (n < 0: 10 or 15) into v; returns n or 0. */
static int json_numbers(const cJSON *a, double *v, int n)
{
    int size = cJSON_IsArray(a) ? cJSON_GetArraySize(a) : -1;
    if (n < 0 ? (size != 10 && size != 15) : size != n)
        return 0;
    int i = 0;
    for (const cJSON *e = a->child; e; e = e->next, i++) {
        if (!cJSON_IsNumber(e) || !isfinite(e->valuedouble))
            return 0;
        v[i] = e->valuedouble;
    }
    return size;
}

static int json_int(double v, int lo, int hi)
{
    return v == floor(v) && v >= lo && v <= hi;
}

aec_status aec_cascade_from_json(const char *json, aec_cascade **out, aec_error *err)
{
    *out = NULL;
    aec_cascade *c = NULL;
    aec_status st = AEC_OK;
    cJSON *o = cJSON_Parse(json);
    const cJSON *stages = cJSON_GetObjectItemCaseSensitive(o, "stages");
    const cJSON *stumps = cJSON_GetObjectItemCaseSensitive(o, "stumps");
    const cJSON *features = cJSON_GetObjectItemCaseSensitive(o, "features");
    double win[2];
    if (!cJSON_IsObject(o) || !cJSON_IsArray(stages) || !cJSON_IsArray(stumps) ||
        !cJSON_IsArray(features) ||
        !json_numbers(cJSON_GetObjectItemCaseSensitive(o, "window"), win, 2) ||
        !json_int(win[0], 3, AEC_CASCADE_MAX_WINDOW) ||
        !json_int(win[1], 3, AEC_CASCADE_MAX_WINDOW)) {
        st = aec_fail(err, AEC_ERR_FORMAT,
                      "cascade JSON: needs window [w,h], stages, stumps and features arrays");
        goto done;
    }
    if ((st = cascade_alloc(cJSON_GetArraySize(stages), cJSON_GetArraySize(stumps),
                            cJSON_GetArraySize(features), &c, err)) != AEC_OK)
        goto done;
    c->win_w = (int)win[0], c->win_h = (int)win[1];
    int i = 0, next = 0;
    for (const cJSON *e = stages->child; e; e = e->next, i++) {
        double v[2];
        if (!json_numbers(e, v, 2) || !json_int(v[1], 1, AEC_CASCADE_MAX_STUMPS))
            goto bad;
        c->stages[i] = (cascade_stage){next, (int)v[1], (float)v[0]};
        next += (int)v[1];
    }
    i = 0;
    for (const cJSON *e = stumps->child; e; e = e->next, i++) {
        double v[4];
        if (!json_numbers(e, v, 4) || !json_int(v[0], 0, AEC_CASCADE_MAX_FEATURES))
            goto bad;
        c->stumps[i] = (cascade_stump){(int)v[0], (float)v[1], (float)v[2], (float)v[3]};
    }
    i = 0;
    for (const cJSON *e = features->child; e; e = e->next, i++) {
        double v[15];
        int n = json_numbers(e, v, -1);
        if (!n)
            goto bad;
        c->features[i].rects = n / 5;
        for (int k = 0; k < n / 5; k++) {
            const double *r = v + 5 * k;
            for (int j = 0; j < 4; j++)
                if (!json_int(r[j], -AEC_CASCADE_MAX_WINDOW, AEC_CASCADE_MAX_WINDOW))
                    goto bad;
            c->features[i].rect[k] =
                (cascade_rect){(int)r[0], (int)r[1], (int)r[2], (int)r[3], (float)r[4]};
        }
    }
    if ((st = cascade_check(c, err)) != AEC_OK)
        goto done;
    *out = c;
    c = NULL;
    goto done;
bad:
    st = aec_fail(err, AEC_ERR_FORMAT, "cascade JSON: a stage, stump or feature is malformed");
done:
    aec_cascade_free(c);
    cJSON_Delete(o);
    return st;
}

/* ---- scanning ------------------------------------------------------------------- */

/* Bilinear resize of a grey plane (no antialiasing: OpenCV's pyramid). */
static void grey_resize(const uint8_t *src, int w, int h, uint8_t *dst, int ow, int oh)
{
    double sx = (double)w / ow, sy = (double)h / oh;
    for (int y = 0; y < oh; y++) {
        double fy = (y + 0.5) * sy - 0.5;
        int y0 = (int)floor(fy);
        double ty = fy - y0;
        int ya = y0 < 0    ? 0
                 : y0 >= h ? h - 1
                           : y0,
            yb = y0 + 1 >= h  ? h - 1
                 : y0 + 1 < 0 ? 0
                              : y0 + 1;
        for (int x = 0; x < ow; x++) {
            double fx = (x + 0.5) * sx - 0.5;
            int x0 = (int)floor(fx);
            double tx = fx - x0;
            int xa = x0 < 0 ? 0 : x0 >= w ? w - 1 : x0;
            int xb = x0 + 1 >= w ? w - 1 : x0 + 1 < 0 ? 0 : x0 + 1;
            double top = src[ya * w + xa] * (1 - tx) + src[ya * w + xb] * tx;
            double bot = src[yb * w + xa] * (1 - tx) + src[yb * w + xb] * tx;
            dst[y * ow + x] = (uint8_t)lrint(top * (1 - ty) + bot * ty);
        }
    }
}

/* Integral images of values and squares, (w+1) x (h+1), a zero first
 * row/column. Values fit 32 bits (401 x 401 x 255), squares need 64. */
static void integrals(const uint8_t *g, int w, int h, int32_t *sum, int64_t *sq)
{
    int s = w + 1;
    memset(sum, 0, sizeof *sum * (size_t)s);
    memset(sq, 0, sizeof *sq * (size_t)s);
    for (int y = 0; y < h; y++) {
        int32_t row = 0;
        int64_t row2 = 0;
        sum[(y + 1) * s] = 0;
        sq[(y + 1) * s] = 0;
        for (int x = 0; x < w; x++) {
            int v = g[y * w + x];
            row += v, row2 += v * v;
            sum[(y + 1) * s + x + 1] = sum[y * s + x + 1] + row;
            sq[(y + 1) * s + x + 1] = sq[y * s + x + 1] + row2;
        }
    }
}

/* A stump with its rectangles as offsets into one pyramid level's integral
 * image (stride s), laid out in evaluation order: the scan's inner loop. */
typedef struct {
    int32_t off[3][4]; /* top-left, top-right, bottom-left, bottom-right */
    float weight[3];
    int rects;
    float threshold, left, right;
} level_stump;

static void level_stumps(const aec_cascade *c, int s, level_stump *out)
{
    for (int i = 0; i < c->n_stumps; i++) {
        const cascade_stump *t = &c->stumps[i];
        const cascade_feature *f = &c->features[t->feature];
        level_stump *o = &out[i];
        o->rects = f->rects, o->threshold = t->threshold, o->left = t->left, o->right = t->right;
        for (int r = 0; r < f->rects; r++) {
            const cascade_rect *q = &f->rect[r];
            o->off[r][0] = q->y * s + q->x;
            o->off[r][1] = q->y * s + q->x + q->w;
            o->off[r][2] = (q->y + q->h) * s + q->x;
            o->off[r][3] = (q->y + q->h) * s + q->x + q->w;
            o->weight[r] = q->weight;
        }
    }
}

#define BOX(p, o) ((p)[(o)[3]] - (p)[(o)[1]] - (p)[(o)[2]] + (p)[(o)[0]])

/* Stages passed by the window at (x, y), plus exp(sum - threshold) of the
 * stage that rejected it; n_stages when it passed them all (*passed = 1:
 * said apart, since k + exp(...) may round up to k + 1). norm holds the
 * offsets of the window's inner rectangle (1 pixel in from its edges). */
static double window_depth(const aec_cascade *c, const level_stump *ls, const int32_t *sum,
                           const int64_t *sq, int s, int x, int y, const int32_t *norm, int *passed)
{
    *passed = 0;
    const int32_t *p = sum + (size_t)y * s + x;
    const int64_t *q = sq + (size_t)y * s + x;
    double area = (double)(c->win_w - 2) * (c->win_h - 2);
    double vs = (double)BOX(p, norm), vq = (double)BOX(q, norm);
    double nf = area * vq - vs * vs;
    double inv = nf > 0 ? 1.0 / sqrt(nf) : 1.0;
    for (int k = 0; k < c->n_stages; k++) {
        const cascade_stage *st = &c->stages[k];
        double total = 0;
        for (const level_stump *t = ls + st->first; t < ls + st->first + st->count; t++) {
            double v =
                t->weight[0] * (double)BOX(p, t->off[0]) + t->weight[1] * (double)BOX(p, t->off[1]);
            if (t->rects == 3)
                v += t->weight[2] * (double)BOX(p, t->off[2]);
            total += v * inv < t->threshold ? t->left : t->right;
        }
        if (total < st->threshold) {
            double d = k + exp(total - st->threshold);
            return d < k + 1 ? d : nextafter(k + 1.0, 0.0);
        }
    }
    *passed = 1;
    return c->n_stages;
}

/* A window that passed every stage, in the scanned image's pixels. */
typedef struct {
    int x, y, side;
} hit;

static int find_root(int *parent, int i)
{
    while (parent[i] != i)
        i = parent[i] = parent[parent[i]];
    return i;
}

/* The largest group of hits that lie on one another (OpenCV's
 * groupRectangles rule: both corners within 0.2 of the smaller side), by
 * union-find over all pairs. parent has n entries. */
static long largest_group(const hit *h, int n, int *parent)
{
    for (int i = 0; i < n; i++)
        parent[i] = i;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            double delta = 0.2 * (h[i].side < h[j].side ? h[i].side : h[j].side);
            int dx2 = h[i].x + h[i].side - h[j].x - h[j].side;
            int dy2 = h[i].y + h[i].side - h[j].y - h[j].side;
            if (abs(h[i].x - h[j].x) <= delta && abs(h[i].y - h[j].y) <= delta &&
                abs(dx2) <= delta && abs(dy2) <= delta)
                parent[find_root(parent, i)] = find_root(parent, j);
        }
    long best = 0;
    for (int i = 0; i < n; i++)
        parent[i] = find_root(parent, i); /* now count members per root, in place */
    for (int i = 0; i < n; i++) {
        long k = 0;
        if (parent[i] != i)
            continue;
        for (int j = 0; j < n; j++)
            k += parent[j] == i;
        if (k > best)
            best = k;
    }
    return best;
}

size_t aec_cascade_scan_bytes(int w, int h)
{
    (void)w; /* the first resize keeps h rows of AEC_CASCADE_SIDE (or fewer) pixels */
    size_t ipx = (size_t)(AEC_CASCADE_SIDE + 1) * (AEC_CASCADE_SIDE + 1);
    return ipx * 17 + AEC_CASCADE_MAX_HITS * (sizeof(hit) + sizeof(int)) +
           AEC_CASCADE_MAX_STUMPS * sizeof(level_stump) +
           (size_t)(h > 0 ? h : 0) * AEC_CASCADE_SIDE * 3 * sizeof(float);
}

aec_status aec_cascade_scan(const aec_cascade *c, const aec_rgb_image *img, aec_cascade_result *out,
                            aec_error *err)
{
    memset(out, 0, sizeof *out);
    if (!img->rgb || img->width < 1 || img->height < 1)
        return aec_fail(err, AEC_ERR_INVALID, "cascade scan: an empty image");
    int longer = img->width > img->height ? img->width : img->height;
    int W = (int)lround((double)img->width * AEC_CASCADE_SIDE / longer);
    int H = (int)lround((double)img->height * AEC_CASCADE_SIDE / longer);
    W = W < 1 ? 1 : W, H = H < 1 ? 1 : H;
    size_t px = (size_t)W * H, ipx = (size_t)(W + 1) * (H + 1);
    uint8_t *rgb = malloc(px * 3), *grey = malloc(px), *level = malloc(px);
    int32_t *sum = malloc(ipx * sizeof *sum);
    int64_t *sq = malloc(ipx * sizeof *sq);
    level_stump *ls = malloc((size_t)c->n_stumps * sizeof *ls);
    hit *hits = malloc(AEC_CASCADE_MAX_HITS * sizeof *hits);
    int *parent = malloc(AEC_CASCADE_MAX_HITS * sizeof *parent), nhits = 0;
    aec_status st = AEC_OK;
    if (!rgb || !grey || !level || !sum || !sq || !ls || !hits || !parent) {
        st = aec_fail(err, AEC_ERR_NOMEM, "cascade scan: out of memory");
        goto done;
    }
    if ((st = aec_image_resample(img, 0, 0, img->width, img->height, W, H, AEC_FILTER_BILINEAR, rgb,
                                 err)) != AEC_OK)
        goto done;
    for (size_t i = 0; i < px; i++) /* OpenCV's RGB to grey weights */
        grey[i] =
            (uint8_t)lrint(0.299 * rgb[3 * i] + 0.587 * rgb[3 * i + 1] + 0.114 * rgb[3 * i + 2]);
    for (double factor = 1;; factor *= 1.1) {
        int sw = (int)lround(W / factor), sh = (int)lround(H / factor);
        if (sw < c->win_w || sh < c->win_h)
            break;
        grey_resize(grey, W, H, level, sw, sh);
        integrals(level, sw, sh, sum, sq);
        int s = sw + 1, step = factor > 2 ? 1 : 2;
        level_stumps(c, s, ls);
        int32_t norm[4] = {s + 1, s + c->win_w - 1, (c->win_h - 1) * s + 1,
                           (c->win_h - 1) * s + c->win_w - 1};
        for (int y = 0; y + c->win_h <= sh; y += step)
            for (int x = 0; x + c->win_w <= sw; x += step) {
                int passed;
                double d = window_depth(c, ls, sum, sq, s, x, y, norm, &passed);
                out->windows++;
                if (passed) {
                    out->detections++;
                    if (nhits < AEC_CASCADE_MAX_HITS)
                        hits[nhits++] = (hit){(int)lround(x * factor), (int)lround(y * factor),
                                              (int)lround(c->win_w * factor)};
                }
                if (d > out->depth)
                    out->depth = d;
            }
    }
    out->group = largest_group(hits, nhits, parent);
    out->evidence = out->group > 0 ? c->n_stages + log1p((double)out->group) : out->depth;
done:
    free(ls);
    free(hits);
    free(parent);
    free(rgb);
    free(grey);
    free(level);
    free(sum);
    free(sq);
    return st;
}
