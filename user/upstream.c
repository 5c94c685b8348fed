// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>

#include "health.h"
#include "log.h"
#include "netns.h"
#include "sock.h"
#include "tunnel_out.h"
#include "upstream.h"

struct pick_ctx {
	struct or_route *rt;
	uint64_t tried;
	uint64_t now;
	bool allow_tried;
};

static bool usable(void *uctx, int idx)
{
	struct pick_ctx *p = uctx;

	if (!p->allow_tried && (p->tried & (1ull << idx)))
		return false;
	return or_health_usable(p->rt->eps[idx].health, p->now);
}

int or_upstream_pick(struct or_worker *w, struct or_route *rt, uint64_t tried, uint64_t now_ms,
		     bool *probe)
{
	struct pick_ctx p = { .rt = rt, .tried = tried, .now = now_ms };
	int idx;

	*probe = false;
	/* Each refusal of admit() rules one endpoint out, so this ends. */
	for (size_t round = 0; round <= 2 * rt->n_eps; round++) {
		idx = or_lb_pick_if(&rt->lb, or_worker_rand, w, usable, &p);
		if (idx < 0 && !p.allow_tried) {
			p.allow_tried = true;
			continue;
		}
		if (idx < 0)
			return -ENOENT;
		if (or_health_admit(rt->eps[idx].health, now_ms, probe))
			return idx;
		p.tried |= 1ull << idx;
		p.allow_tried = false;
	}
	return -ENOENT;
}

int or_upstream_connect(struct or_worker *w, struct or_pod_rt *pod, const struct or_route *rt,
			int idx, int *in_progress)
{
	const struct or_route_ep *ep = &rt->eps[idx];
	int fd, err;

	if (ep->spiffe_id && rt->mtls != OR_MTLS_DISABLED) {
		*in_progress = 0;
		return or_tunnel_open(w, pod, &ep->ip, ep->port, ep->spiffe_id,
				      rt->protocol == OR_PROTOCOL_HTTP);
	}
	err = or_netns_enter(pod->netns_fd);
	if (err)
		return err;
	fd = or_sock_connect(&ep->ip, ep->port, in_progress);
	or_netns_leave();
	return fd;
}

bool or_cb_overflow(struct or_route *rt, enum or_cb_limit limit, int64_t current)
{
	const struct or_cb_cfg *cb = &rt->policy.circuit_breaker;
	uint32_t max;

	switch (limit) {
	case OR_CB_MAX_CONNECTIONS:
		max = cb->max_connections;
		break;
	case OR_CB_MAX_PENDING_REQUESTS:
		max = cb->max_pending_requests;
		break;
	case OR_CB_MAX_REQUESTS:
		max = cb->max_requests;
		break;
	default:
		max = cb->max_retries;
		break;
	}
	if (current < (int64_t)max)
		return false;
	atomic_fetch_add(&rt->metrics->cb_overflow[limit], 1);
	return true;
}

bool or_upstream_may_retry(struct or_route *rt, const struct or_retry_input *in,
			   uint64_t now_ms)
{
	enum or_retry_verdict v = or_retry_decide(&rt->policy.retries, in);

	if (v != OR_RETRY_YES) {
		or_debug("not retried", "service=%s reason=%s tries=%u", rt->name,
			 or_retry_verdict_name(v), in->tries);
		return false;
	}
	if (!or_budget_try_retry(&rt->budget, now_ms)) {
		atomic_fetch_add(&rt->metrics->budget_exhausted, 1);
		or_debug("not retried", "service=%s reason=budget_exhausted", rt->name);
		return false;
	}
	if (or_cb_overflow(rt, OR_CB_MAX_RETRIES, atomic_load(&rt->metrics->active_retries))) {
		or_debug("not retried", "service=%s reason=max_retries", rt->name);
		return false;
	}
	atomic_fetch_add(&rt->metrics->active_retries, 1);
	atomic_fetch_add(&rt->metrics->retries, 1);
	return true;
}

void or_upstream_retry_done(struct or_route *rt)
{
	atomic_fetch_sub(&rt->metrics->active_retries, 1);
}
