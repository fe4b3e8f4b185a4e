/* params.h - strict query-string parsing.
 *
 * Every parameter must be one the endpoint takes, given once, with a value
 * that parses completely: "?width=12px", "?threshold=abc", "?dtype=f64",
 * "?foo=1" and "?width=1&width=2" are all refused with a message that names
 * the parameter, the value and what is expected.
 */
#ifndef AECD_PARAMS_H
#define AECD_PARAMS_H

#include <stddef.h>

#include "http.h"

/* allowed: the parameter names the endpoint takes, space separated ("" for
 * none). 0, or -1 with msg set. */
int aecd_params_parse(const char *query, size_t len, const char *allowed, aecd_params *out,
                      char *msg, size_t msg_len);

#endif
