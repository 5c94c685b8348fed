/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* In-kernel backend selection for kernel-mode services (socket LB). */
#ifndef OR_BPF_LB_H
#define OR_BPF_LB_H

#include "maps.h"

/*
 * Weighted random pick among the service's backends. Returns the chosen
 * backend, or NULL when the service has none. Weighted random rather than
 * round robin because there is no cheap shared cursor across CPUs, and over
 * many connections it spreads the same way.
 */
static __always_inline const struct or_backend_val *
or_pick_backend(const struct or_svc_val *svc)
{
	struct or_backend_key key = { .svc_id = svc->svc_id };
	const struct or_backend_val *be;
	__u32 count = svc->backend_count;
	__u32 total = svc->total_weight;
	__u32 r, acc = 0;
	__u32 i;

	if (count == 0 || total == 0)
		return NULL;
	if (count > OR_MAX_BACKENDS)
		count = OR_MAX_BACKENDS;
	r = bpf_get_prandom_u32() % total;

	for (i = 0; i < OR_MAX_BACKENDS; i++) {
		if (i >= count)
			break;
		key.slot = i;
		be = bpf_map_lookup_elem(&or_backends, &key);
		if (!be)
			continue;
		acc += be->weight;
		if (r < acc)
			return be;
	}
	/* Weights changed under us (agent mid-update): take slot 0. */
	key.slot = 0;
	return bpf_map_lookup_elem(&or_backends, &key);
}

#endif /* OR_BPF_LB_H */
