/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The HTTP/1.1 proxy for `protocol: http` service ports: keep-alive and
 * pipelined requests from the app, each routed on its own with retries,
 * per-try and overall timeouts, the circuit breaker's limits and outlier
 * reporting; upstream connections pooled per worker and per pod.
 */
#ifndef OR_HTTP_PROXY_H
#define OR_HTTP_PROXY_H

#include "pod.h"
#include "routes.h"
#include "worker.h"

/* Takes the accepted fd and the routes reference; owns both afterwards. */
void or_http_accept(struct or_worker *w, struct or_pod_rt *pod, struct or_routes *routes,
		    struct or_route *rt, int fd);
/*
 * The same for a connection the agent sheds before reading it (reason
 * "memory" or "max_connections", why for the body): answered 503 with
 * x-outrider-overloaded: true and x-outrider-reason: reason, then closed.
 */
void or_http_shed(struct or_worker *w, struct or_pod_rt *pod, struct or_routes *routes,
		  struct or_route *rt, int fd, const char *reason, const char *why);
/*
 * The agent drains (worker thread of w): idle keep-alive connections of w
 * close within a second (a request already on its way is still answered);
 * every other one closes after the answer in flight, which
 * carries "connection: close" unless its head is out already. Connections
 * accepted later see or_proxy.draining and do the same.
 */
void or_http_drain(struct or_worker *w);
/* Closes every HTTP connection and pooled upstream connection of w. */
void or_http_close_all(struct or_worker *w);

#endif
