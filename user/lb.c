// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Endpoint selection. Everything a pick reads is written once by or_lb_init;
 * the only shared writes afterwards are the atomic cursor and the atomic
 * in-flight counters, so workers never take a lock to pick.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lb.h"

static uint64_t gcd64(uint64_t a, uint64_t b)
{
	while (b) {
		uint64_t t = a % b;

		a = b;
		b = t;
	}
	return a;
}

/*
 * Reduces weights to the shortest sequence with the same proportions: divide
 * by their gcd, and when the period is still longer than OR_LB_MAX_SCHEDULE,
 * scale down (every endpoint keeps at least one turn). Returns the period.
 */
static size_t schedule_weights(const uint32_t *w, size_t n, uint32_t *out)
{
	uint64_t g = 0, sum = 0;
	size_t i;

	/* More endpoints than turns: each gets exactly one, plain round robin. */
	if (n >= OR_LB_MAX_SCHEDULE) {
		for (i = 0; i < n; i++)
			out[i] = 1;
		return n;
	}
	for (i = 0; i < n; i++)
		g = gcd64(g, w[i]);
	for (i = 0; i < n; i++) {
		out[i] = (uint32_t)(w[i] / g);
		sum += out[i];
	}
	if (sum <= OR_LB_MAX_SCHEDULE)
		return (size_t)sum;

	uint64_t scaled = 0;

	for (i = 0; i < n; i++) {
		uint64_t s = (uint64_t)out[i] * OR_LB_MAX_SCHEDULE / sum;

		out[i] = s ? (uint32_t)s : 1;
		scaled += out[i];
	}
	/*
	 * Rounding small weights up to 1 can overshoot by at most n turns; take
	 * them back from the largest weights, which barely notice.
	 */
	while (scaled > OR_LB_MAX_SCHEDULE) {
		size_t big = 0;

		for (i = 1; i < n; i++)
			if (out[i] > out[big])
				big = i;
		out[big]--;
		scaled--;
	}
	g = 0;
	for (i = 0; i < n; i++)
		g = gcd64(g, out[i]);
	scaled = 0;
	for (i = 0; i < n; i++) {
		out[i] = (uint32_t)(out[i] / g);
		scaled += out[i];
	}
	return (size_t)scaled;
}

/*
 * nginx's smooth weighted round robin: every turn each endpoint gains its
 * weight, the richest is picked and pays the total. Heavy endpoints are
 * spread through the period instead of served in a burst.
 */
static void build_schedule(const uint32_t *w, size_t n, uint16_t *sched, size_t len)
{
	int64_t *cur = calloc(n, sizeof(*cur));
	size_t t, i;

	if (!cur || len == n) {
		/* Equal weights (or no memory for the fast path): 0, 1, 2, ... */
		for (t = 0; t < len; t++)
			sched[t] = (uint16_t)(t % n);
		free(cur);
		return;
	}
	for (t = 0; t < len; t++) {
		size_t best = 0;

		for (i = 0; i < n; i++) {
			cur[i] += w[i];
			if (cur[i] > cur[best])
				best = i;
		}
		cur[best] -= (int64_t)len;
		sched[t] = (uint16_t)best;
	}
	free(cur);
}

int or_lb_init(struct or_lb *lb, enum or_lb_algo algo, const uint32_t *weights, size_t n)
{
	uint32_t *sw = NULL;
	size_t i;

	memset(lb, 0, sizeof(*lb));
	lb->algo = algo;
	atomic_init(&lb->cursor, 0);
	if (!n)
		return 0;
	/* The schedule stores indexes as uint16_t. */
	if (n > (size_t)UINT16_MAX + 1)
		return -EINVAL;
	lb->weight = calloc(n, sizeof(*lb->weight));
	lb->cum = calloc(n, sizeof(*lb->cum));
	lb->active = calloc(n, sizeof(*lb->active));
	if (!lb->weight || !lb->cum || !lb->active)
		goto err_nomem;
	for (i = 0; i < n; i++) {
		lb->weight[i] = weights && weights[i] ? weights[i] : 1;
		lb->total += lb->weight[i];
		lb->cum[i] = lb->total;
		atomic_init(&lb->active[i], 0);
	}
	lb->n = n;

	if (algo == OR_LB_ROUND_ROBIN) {
		sw = calloc(n, sizeof(*sw));
		if (!sw)
			goto err_nomem;
		lb->schedule_len = schedule_weights(lb->weight, n, sw);
		lb->schedule = calloc(lb->schedule_len, sizeof(*lb->schedule));
		if (!lb->schedule)
			goto err_nomem;
		build_schedule(sw, n, lb->schedule, lb->schedule_len);
		free(sw);
	}
	return 0;

err_nomem:
	free(sw);
	or_lb_free(lb);
	return -ENOMEM;
}

void or_lb_free(struct or_lb *lb)
{
	if (!lb)
		return;
	free(lb->weight);
	free(lb->cum);
	free((void *)lb->active);
	free(lb->schedule);
	lb->weight = NULL;
	lb->cum = NULL;
	lb->active = NULL;
	lb->schedule = NULL;
	lb->n = 0;
	lb->total = 0;
	lb->schedule_len = 0;
}

/* splitmix64: stands in when the caller passes no generator. */
static uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static uint64_t next_rnd(struct or_lb *lb, uint64_t (*rnd)(void *), void *ctx)
{
	if (rnd)
		return rnd(ctx);
	return mix64(atomic_fetch_add_explicit(&lb->cursor, 1, memory_order_relaxed));
}

/* r in [0, bound), from the high bits: unbiased enough and fine with weak generators. */
static uint64_t below(uint64_t r, uint64_t bound)
{
	return (uint64_t)(((unsigned __int128)r * bound) >> 64);
}

/* First endpoint whose cumulative weight exceeds r (r < total). */
static size_t find_cum(const struct or_lb *lb, uint64_t r)
{
	size_t lo = 0, hi = lb->n - 1;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (lb->cum[mid] > r)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

/*
 * Power of two choices over two distinct endpoints: the second draw skips
 * the first one's share of the weight, so with two endpoints the less loaded
 * one always wins instead of three times out of four.
 */
static size_t pick_least_request(struct or_lb *lb, uint64_t (*rnd)(void *), void *ctx)
{
	size_t a, b;
	uint64_t r, start_a, wa, wb, act_a, act_b;

	a = find_cum(lb, below(next_rnd(lb, rnd, ctx), lb->total));
	wa = lb->weight[a];
	start_a = lb->cum[a] - wa;
	r = below(next_rnd(lb, rnd, ctx), lb->total - wa);
	if (r >= start_a)
		r += wa;
	b = find_cum(lb, r);

	act_a = atomic_load_explicit(&lb->active[a], memory_order_relaxed);
	act_b = atomic_load_explicit(&lb->active[b], memory_order_relaxed);
	wb = lb->weight[b];
	/* active_a / w_a < active_b / w_b, without dividing. */
	if (act_b * wa < act_a * wb)
		return b;
	return a;
}

int or_lb_pick(struct or_lb *lb, uint64_t (*rnd)(void *), void *rnd_ctx)
{
	uint64_t c;

	if (!lb || !lb->n)
		return -ENOENT;
	if (lb->n == 1)
		return 0;
	switch (lb->algo) {
	case OR_LB_ROUND_ROBIN:
		c = atomic_fetch_add_explicit(&lb->cursor, 1, memory_order_relaxed);
		return lb->schedule[c % lb->schedule_len];
	case OR_LB_LEAST_REQUEST:
		return (int)pick_least_request(lb, rnd, rnd_ctx);
	case OR_LB_RANDOM:
	default:
		return (int)find_cum(lb, below(next_rnd(lb, rnd, rnd_ctx), lb->total));
	}
}

void or_lb_acquire(struct or_lb *lb, int idx)
{
	if (!lb || idx < 0 || (size_t)idx >= lb->n)
		return;
	atomic_fetch_add_explicit(&lb->active[idx], 1, memory_order_relaxed);
}

void or_lb_release(struct or_lb *lb, int idx)
{
	uint32_t cur;

	if (!lb || idx < 0 || (size_t)idx >= lb->n)
		return;
	/* An unmatched release must not wrap the counter to 4 billion. */
	cur = atomic_load_explicit(&lb->active[idx], memory_order_relaxed);
	while (cur && !atomic_compare_exchange_weak_explicit(&lb->active[idx], &cur, cur - 1,
							     memory_order_relaxed,
							     memory_order_relaxed))
		;
}

/*
 * Rejection sampling among usable endpoints stays exact (each try is the
 * weighted draw conditioned on usable), and is cheap while most endpoints
 * are usable; past a few misses, a scan over all of them is cheaper.
 */
#define LB_REJECT_TRIES 4

static bool is_usable(bool (*usable)(void *, int), void *uctx, size_t idx)
{
	return !usable || usable(uctx, (int)idx);
}

/*
 * A weighted draw among usable endpoints other than `skip` (-1 for none).
 * Returns the index, or -ENOENT when there is none.
 */
static int sample_usable(struct or_lb *lb, uint64_t (*rnd)(void *), void *ctx,
			 bool (*usable)(void *, int), void *uctx, int skip)
{
	uint64_t ws = skip >= 0 ? lb->weight[skip] : 0;
	uint64_t start = skip >= 0 ? lb->cum[skip] - ws : 0;
	uint64_t sum = 0, r;
	int last = -ENOENT;
	size_t i;

	if (lb->total > ws) {
		for (int t = 0; t < LB_REJECT_TRIES; t++) {
			/* Draw over everything but skip's share, as pick_least_request does. */
			r = below(next_rnd(lb, rnd, ctx), lb->total - ws);
			if (skip >= 0 && r >= start)
				r += ws;
			i = find_cum(lb, r);
			if (is_usable(usable, uctx, i))
				return (int)i;
		}
	}
	for (i = 0; i < lb->n; i++)
		if ((int)i != skip && is_usable(usable, uctx, i))
			sum += lb->weight[i];
	if (!sum)
		return -ENOENT;
	r = below(next_rnd(lb, rnd, ctx), sum);
	/*
	 * usable() may read live state that changes between the two passes:
	 * only ever return an index it just approved, and the last one if r
	 * runs past the end because some went away.
	 */
	for (i = 0; i < lb->n; i++) {
		if ((int)i == skip || !is_usable(usable, uctx, i))
			continue;
		if (r < lb->weight[i])
			return (int)i;
		r -= lb->weight[i];
		last = (int)i;
	}
	return last;
}

/*
 * Round robin strikes the unusable endpoints out of the schedule: the turns
 * they would have had are consumed along with the one picked, so the picks
 * that remain keep the schedule's order and proportions. The common case
 * (the turn's endpoint is usable) costs one fetch_add, as or_lb_pick does.
 * Otherwise we look ahead for the next usable turn and claim everything up
 * to it with one compare-and-swap; if another worker took a turn meanwhile,
 * the look-ahead is stale and we start over from a fresh turn. Looking at
 * one whole period without finding a usable endpoint means there is none.
 */
static int pick_rr_if(struct or_lb *lb, bool (*usable)(void *, int), void *uctx)
{
	size_t len = lb->schedule_len, k, idx = 0, tries;
	uint64_t c, next;

	for (tries = 0; tries < len; tries++) {
		c = atomic_fetch_add_explicit(&lb->cursor, 1, memory_order_relaxed);
		idx = lb->schedule[c % len];
		if (is_usable(usable, uctx, idx))
			return (int)idx;
		for (k = 1; k < len; k++) {
			idx = lb->schedule[(c + k) % len];
			if (is_usable(usable, uctx, idx))
				break;
		}
		if (k == len)
			return -ENOENT;
		next = c + 1;
		if (atomic_compare_exchange_strong_explicit(&lb->cursor, &next, c + k + 1,
							    memory_order_relaxed,
							    memory_order_relaxed))
			return (int)idx;
	}
	/* Contention all along: the last usable endpoint found, unclaimed, will do. */
	return (int)idx;
}

static int pick_least_request_if(struct or_lb *lb, uint64_t (*rnd)(void *), void *ctx,
				 bool (*usable)(void *, int), void *uctx)
{
	uint64_t act_a, act_b;
	int a, b;

	a = sample_usable(lb, rnd, ctx, usable, uctx, -1);
	if (a < 0)
		return a;
	b = sample_usable(lb, rnd, ctx, usable, uctx, a);
	if (b < 0)
		return a; /* the only usable one */
	act_a = atomic_load_explicit(&lb->active[a], memory_order_relaxed);
	act_b = atomic_load_explicit(&lb->active[b], memory_order_relaxed);
	if (act_b * lb->weight[a] < act_a * lb->weight[b])
		return b;
	return a;
}

int or_lb_pick_if(struct or_lb *lb, uint64_t (*rnd)(void *), void *rnd_ctx,
		  bool (*usable)(void *uctx, int idx), void *uctx)
{
	if (!lb || !lb->n)
		return -ENOENT;
	if (lb->n == 1)
		return is_usable(usable, uctx, 0) ? 0 : -ENOENT;
	switch (lb->algo) {
	case OR_LB_ROUND_ROBIN:
		return pick_rr_if(lb, usable, uctx);
	case OR_LB_LEAST_REQUEST:
		return pick_least_request_if(lb, rnd, rnd_ctx, usable, uctx);
	case OR_LB_RANDOM:
	default:
		return sample_usable(lb, rnd, rnd_ctx, usable, uctx, -1);
	}
}
