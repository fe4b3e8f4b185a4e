/* routes.h - the endpoint table and the hooks http.c calls for each route. */
#ifndef AECD_ROUTES_H
#define AECD_ROUTES_H

#include "http.h"

typedef enum {
    AECD_STAGE_DONE = 0,    /* the reply is set */
    AECD_STAGE_PENDING = 1, /* a batcher job was submitted; finish() follows */
} aecd_stage;

struct aecd_route {
    const char *path;
    aecd_endpoint endpoint;
    aecd_job_kind kind; /* POST: the batcher job prepare submits (GET: unused) */
    int is_post;        /* POST with a body; otherwise GET (and HEAD) */
    int is_public;      /* answered without the API key */
    const char *params; /* query parameters it takes, space separated */
    /* I/O thread, from the headers: content type and body limit. 0, or -1
     * with the reply set. */
    int (*check)(aecd_request *req);
    /* I/O thread: a cheap endpoint answers here. */
    void (*respond)(aecd_request *req);
    /* Worker: parse the body, submit one job (PENDING) or reply (DONE).
     * After submitting, it must not touch req: finish may already run. */
    aecd_stage (*prepare)(aecd_request *req);
    /* Worker, after the job: build the reply. */
    void (*finish)(aecd_request *req);
};

/* The route for an exact path, or NULL. */
const aecd_route *aecd_route_find(const char *path);
/* The Allow header for a route: "POST" or "GET, HEAD". */
const char *aecd_route_allow(const aecd_route *r);

/* Builds what the routes precompute (the /v1/model document). 0 or -1. */
int aecd_routes_init(aecd_server *srv);
void aecd_routes_free(aecd_server *srv);

#endif
