/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Endpoint selection for proxied connections. One or_lb per service port;
 * shared by all workers, lock-free: round robin walks a precomputed smooth
 * weighted schedule with an atomic cursor; least_request is power of two
 * choices over weighted random picks, comparing active/weight.
 */
#ifndef OR_LB_H
#define OR_LB_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define OR_LB_MAX_SCHEDULE 4096 /* round-robin schedule length cap */

struct or_lb {
	enum or_lb_algo algo;
	size_t n;                /* endpoints */
	uint32_t *weight;        /* [n], each >= 1 */
	uint64_t *cum;           /* [n] cumulative weights, for weighted random */
	uint64_t total;          /* sum of weights */
	_Atomic uint32_t *active;/* [n] connections in flight (least_request) */
	uint16_t *schedule;      /* round robin: endpoint index per turn */
	size_t schedule_len;
	_Atomic uint64_t cursor;
};

/*
 * Builds the selector for n endpoints with these weights (0 counts as 1).
 * Returns 0 or -ENOMEM. n may be 0 (then or_lb_pick always fails).
 */
int or_lb_init(struct or_lb *lb, enum or_lb_algo algo, const uint32_t *weights, size_t n);
void or_lb_free(struct or_lb *lb);

/*
 * Picks an endpoint. `rnd` supplies randomness (a per-thread generator in
 * the agent, a fixed sequence in tests). Returns the index, or -ENOENT
 * when there are no endpoints.
 */
int or_lb_pick(struct or_lb *lb, uint64_t (*rnd)(void *), void *rnd_ctx);

/*
 * Like or_lb_pick, but only among endpoints for which usable(uctx, idx) is
 * true (not ejected, not tried already by this request). usable must have
 * no side effects: it may be asked about endpoints it does not return.
 * Returns the index, or -ENOENT when no endpoint is usable.
 */
int or_lb_pick_if(struct or_lb *lb, uint64_t (*rnd)(void *), void *rnd_ctx,
		  bool (*usable)(void *uctx, int idx), void *uctx);

/* Bookkeeping for least_request: call around each proxied connection. */
void or_lb_acquire(struct or_lb *lb, int idx);
void or_lb_release(struct or_lb *lb, int idx);

#endif
