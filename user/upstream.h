/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * What every proxied try needs, L4 or HTTP: an endpoint that is healthy
 * and not tried yet, a socket to it made inside the client pod's netns,
 * and the gate that says whether a failed try may be retried.
 */
#ifndef OR_UPSTREAM_H
#define OR_UPSTREAM_H

#include <stdbool.h>
#include <stdint.h>

#include "pod.h"
#include "retry.h"
#include "routes.h"
#include "worker.h"

/*
 * Picks and admits an endpoint of rt: among those not ejected, preferring
 * ones not in `tried` (bit i = endpoint i); when every healthy one was
 * tried, a tried one again. Returns the index (*probe set when the try
 * decides a half-open endpoint), or -ENOENT when none is healthy.
 */
int or_upstream_pick(struct or_worker *w, struct or_route *rt, uint64_t tried, uint64_t now_ms,
		     bool *probe);

/*
 * A non-blocking connect to endpoint idx of rt from inside the pod's netns:
 * straight to it, or, for a mesh pod under mtls permissive/strict, through
 * an mTLS tunnel (then connected at once, *in_progress 0: see tunnel_out.c).
 */
int or_upstream_connect(struct or_worker *w, struct or_pod_rt *pod, const struct or_route *rt,
			int idx, int *in_progress);

/*
 * After a failed try: the retry policy, then the retry budget, then the
 * circuit breaker's max_retries. Counts retries / budget_exhausted /
 * overflow. On true the caller owes or_upstream_retry_done() when that
 * retry's try ends.
 */
bool or_upstream_may_retry(struct or_route *rt, const struct or_retry_input *in,
			   uint64_t now_ms);
void or_upstream_retry_done(struct or_route *rt);

/* The circuit breaker's limit check: true (and counted) when over. */
bool or_cb_overflow(struct or_route *rt, enum or_cb_limit limit, int64_t current);

#endif
