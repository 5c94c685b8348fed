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
/* Closes every HTTP connection and pooled upstream connection of w. */
void or_http_close_all(struct or_worker *w);

#endif
