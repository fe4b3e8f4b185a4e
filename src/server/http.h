/* http.h - the libmicrohttpd glue: the listening socket and the daemon.
 *
 * http.c owns the HTTP side of a request: routing, the header checks,
 * authentication, body accumulation under limits, queueing the reply and
 * the completion log line. What a request is and how it moves through the
 * workers and the batcher is request.h; what each endpoint does, routes.h.
 */
#ifndef AECD_HTTP_H
#define AECD_HTTP_H

#include "server.h"

/* Opens the listening socket (so a busy port is reported before anything
 * else starts). 0, or -1 with a message on stderr. */
int aecd_http_listen(aecd_server *srv);
/* Starts the MHD daemon on srv->listen_fd. 0 or -1. */
int aecd_http_start(aecd_server *srv);
/* The bound port. */
int aecd_http_port(aecd_server *srv);
/* Stops accepting new connections (SIGTERM). */
void aecd_http_quiesce(aecd_server *srv);
/* Stops the daemon, closing every connection. No request may be in the
 * worker/batcher pipeline (see aecd_http_pipeline). */
void aecd_http_stop(aecd_server *srv);
/* Requests received and not yet completed. */
long aecd_http_in_flight(aecd_server *srv);
/* Requests inside the worker/batcher pipeline (connection suspended). */
long aecd_http_pipeline(aecd_server *srv);

#endif
