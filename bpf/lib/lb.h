/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * In-kernel backend selection and breaker checks, for connect4/6.
 *
 * The walks over a service's backends use bpf_loop(): with plain bounded
 * loops the verifier explores every iteration of both walks and runs out
 * of its instruction budget at OR_MAX_BACKENDS = 64; a bpf_loop callback is
 * verified once.
 */
#ifndef OR_BPF_LB_H
#define OR_BPF_LB_H

#include "maps.h"

/* True while the agent's outlier detection has this backend ejected. */
static __always_inline int or_backend_ejected(const struct or_backend_val *be, __u64 now)
{
	struct or_breaker_key key = {};
	const struct or_breaker_val *b;

	__builtin_memcpy(key.addr, be->addr, sizeof(key.addr));
	key.port = be->port;
	key.family = be->family;
	b = bpf_map_lookup_elem(&or_breakers, &key);
	/* Past until_ns the ejection is over, whether or not the agent said so. */
	return b && b->state == OR_BREAKER_OPEN && b->until_ns > now;
}

/* State shared by the walk callbacks below. */
struct or_walk {
	__u64 now;
	__u32 svc_id;
	__u32 count;      /* backend_count, bounded by OR_MAX_BACKENDS */
	__u32 total;      /* healthy weight so far */
	__u32 pick;       /* pick walk: the random point in [0, total) */
	__u8 count_skips; /* count OR_REASON_SKIPPED_EJECTED (once per connect) */
	__u8 found;       /* pick walk: `chosen` holds the backend */
	__u8 pad[2];
	struct or_backend_val chosen;
};

/* bpf_loop callback: adds slot i's weight when it is not ejected. */
static long or_walk_weigh(__u32 i, void *data)
{
	struct or_walk *w = data;
	struct or_backend_key key = { .svc_id = w->svc_id, .slot = i };
	const struct or_backend_val *be;

	if (i >= w->count)
		return 1;
	be = bpf_map_lookup_elem(&or_backends, &key);
	if (!be)
		return 0;
	if (or_backend_ejected(be, w->now)) {
		if (w->count_skips)
			or_count(OR_REASON_SKIPPED_EJECTED);
		return 0;
	}
	w->total += be->weight;
	return 0;
}

/* bpf_loop callback: stops at the healthy backend whose weight covers `pick`. */
static long or_walk_pick(__u32 i, void *data)
{
	struct or_walk *w = data;
	struct or_backend_key key = { .svc_id = w->svc_id, .slot = i };
	const struct or_backend_val *be;

	if (i >= w->count)
		return 1;
	be = bpf_map_lookup_elem(&or_backends, &key);
	if (!be || or_backend_ejected(be, w->now))
		return 0;
	w->total += be->weight;
	if (w->pick < w->total) {
		w->chosen = *be;
		w->found = 1;
		return 1;
	}
	return 0;
}

static __always_inline void or_walk_init(struct or_walk *w, const struct or_svc_val *svc, __u64 now)
{
	w->now = now;
	w->svc_id = svc->svc_id;
	w->count = svc->backend_count < OR_MAX_BACKENDS ? svc->backend_count : OR_MAX_BACKENDS;
}

/* Sum of the weights of the backends not ejected; 0 when none is usable. */
static __always_inline __u32 or_healthy_weight(const struct or_svc_val *svc, __u64 now)
{
	struct or_walk w = {};

	or_walk_init(&w, svc, now);
	bpf_loop(OR_MAX_BACKENDS, or_walk_weigh, &w, 0);
	return w.total;
}

/*
 * Weighted random pick among the service's backends that are not ejected,
 * copied to *out. Returns 0, or -ENOENT when none is usable. Weighted random
 * rather than round robin because there is no cheap shared cursor across
 * CPUs, and over many connections it spreads the same way.
 */
static __always_inline int or_pick_backend(const struct or_svc_val *svc, __u64 now,
					   struct or_backend_val *out)
{
	struct or_walk w = {};
	__u32 total;

	or_walk_init(&w, svc, now);
	w.count_skips = 1;
	bpf_loop(OR_MAX_BACKENDS, or_walk_weigh, &w, 0);
	total = w.total;
	if (total == 0)
		return -2; /* -ENOENT */
	w.pick = bpf_get_prandom_u32() % total;
	w.total = 0;
	bpf_loop(OR_MAX_BACKENDS, or_walk_pick, &w, 0);
	/* found == 0: the agent changed the backends between the two walks. */
	if (!w.found)
		return -2;
	*out = w.chosen;
	return 0;
}

#endif /* OR_BPF_LB_H */
