/* jsonx.c - bracket-depth pre-scan and serialized cJSON parsing (jsonx.h). */
#include "jsonx.h"

#include <pthread.h>

int aecd_json_depth_check(const char *s, size_t n, int max_depth, size_t *at)
{
    int depth = 0, in_string = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_string) {
            if (c == '\\')
                i++; /* skip the escaped character */
            else if (c == '"')
                in_string = 0;
            continue;
        }
        if (c == '"') {
            in_string = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > max_depth) {
                if (at)
                    *at = i;
                return -1;
            }
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--; /* unbalanced closers are the parser's to report */
        }
    }
    return 0;
}

static pthread_mutex_t g_parse_mu = PTHREAD_MUTEX_INITIALIZER;

cJSON *aecd_json_parse(const char *s, size_t n, size_t *err_at)
{
    const char *end = NULL;
    pthread_mutex_lock(&g_parse_mu);
    cJSON *root = cJSON_ParseWithLengthOpts(s, n, &end, 0);
    pthread_mutex_unlock(&g_parse_mu);
    if (root) {
        /* cJSON stops after the first value; anything but whitespace after
         * it is an error ("{} {}"). */
        size_t i = (size_t)(end - s);
        while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
            i++;
        if (i < n) {
            cJSON_Delete(root);
            if (err_at)
                *err_at = i;
            return NULL;
        }
        return root;
    }
    if (err_at)
        *err_at = end && end >= s ? (size_t)(end - s) : 0;
    return NULL;
}
