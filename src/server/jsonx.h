/* jsonx.h - reading untrusted JSON request bodies safely.
 *
 * aecd_json_depth_check scans bracket nesting (skipping string contents and
 * escapes) in one pass without allocating, so a body like 100000 '[' is
 * refused before any parser recurses into it. aecd_json_parse wraps cJSON,
 * whose parser writes a process-global error position: calls are serialized
 * so concurrent requests never race on it.
 */
#ifndef AECD_JSONX_H
#define AECD_JSONX_H

#include <stddef.h>

#include <cJSON.h>

/* 0 if no '[' / '{' nests deeper than max_depth; otherwise -1 and *at is the
 * offset of the bracket that went too deep. */
int aecd_json_depth_check(const char *s, size_t n, int max_depth, size_t *at);

/* Parses exactly n bytes (trailing whitespace allowed). NULL on a syntax
 * error, with *err_at the offset where parsing stopped. */
cJSON *aecd_json_parse(const char *s, size_t n, size_t *err_at);

#endif
