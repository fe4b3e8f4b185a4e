/* routes.h - the endpoint table and the hooks http.c calls for each route. */
#ifndef AECD_ROUTES_H
#define AECD_ROUTES_H

#include "request.h"

/* The route for a path (exact, or under a prefix route: then the rest of
 * the path is copied to arg), or NULL. */
const aecd_route *aecd_route_find(const char *path, char *arg, size_t arg_len);
/* The Allow header for a route: "POST" or "GET, HEAD". */
const char *aecd_route_allow(const aecd_route *r);

#endif
