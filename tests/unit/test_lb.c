// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Endpoint selection: round robin is exact over one schedule period, the
 * random pickers are checked against the weights within a tolerance, using
 * a seeded generator so a failure replays the same way.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "lb.h"

/* splitmix64: deterministic, good enough to test distributions. */
static uint64_t test_rnd(void *ctx)
{
	uint64_t *s = ctx, x;

	x = (*s += 0x9e3779b97f4a7c15ULL);
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* Counts picks over `rounds` and checks each index is in range. */
static void count_picks(struct or_lb *lb, size_t rounds, uint64_t seed, size_t *counts)
{
	memset(counts, 0, lb->n * sizeof(*counts));
	for (size_t i = 0; i < rounds; i++) {
		int idx = or_lb_pick(lb, test_rnd, &seed);

		cr_assert(idx >= 0 && (size_t)idx < lb->n, "pick %zu returned %d", i, idx);
		counts[idx]++;
	}
}

static void expect_share(const size_t *counts, const uint32_t *w, size_t n, size_t rounds,
			 double tolerance)
{
	uint64_t total = 0;

	for (size_t i = 0; i < n; i++)
		total += w[i];
	for (size_t i = 0; i < n; i++) {
		double want = (double)w[i] / (double)total, got = (double)counts[i] / rounds;

		cr_expect(got - want <= tolerance && want - got <= tolerance,
			  "endpoint %zu: share %.4f, weight says %.4f (+-%.3f)", i, got, want,
			  tolerance);
	}
}

Test(lb, no_endpoints)
{
	enum or_lb_algo algos[] = { OR_LB_ROUND_ROBIN, OR_LB_LEAST_REQUEST, OR_LB_RANDOM };
	uint64_t seed = 1;

	for (size_t a = 0; a < 3; a++) {
		struct or_lb lb;

		cr_assert_eq(or_lb_init(&lb, algos[a], NULL, 0), 0);
		cr_expect_eq(or_lb_pick(&lb, test_rnd, &seed), -ENOENT, "%s",
			     or_lb_algo_name(algos[a]));
		or_lb_acquire(&lb, 0); /* out of range: ignored, not a crash */
		or_lb_release(&lb, 0);
		or_lb_free(&lb);
	}
}

Test(lb, single_endpoint)
{
	enum or_lb_algo algos[] = { OR_LB_ROUND_ROBIN, OR_LB_LEAST_REQUEST, OR_LB_RANDOM };
	uint32_t w = 7;
	uint64_t seed = 2;

	for (size_t a = 0; a < 3; a++) {
		struct or_lb lb;

		cr_assert_eq(or_lb_init(&lb, algos[a], &w, 1), 0);
		for (int i = 0; i < 100; i++)
			cr_assert_eq(or_lb_pick(&lb, test_rnd, &seed), 0);
		or_lb_free(&lb);
	}
}

Test(lb, round_robin_exact_over_one_period)
{
	uint32_t w[] = { 1, 2, 3 };
	size_t counts[3];
	struct or_lb lb;

	cr_assert_eq(or_lb_init(&lb, OR_LB_ROUND_ROBIN, w, 3), 0);
	cr_assert_eq(lb.schedule_len, 6);
	count_picks(&lb, 6, 0, counts);
	cr_expect_eq(counts[0], 1);
	cr_expect_eq(counts[1], 2);
	cr_expect_eq(counts[2], 3);
	/* And again for every later period. */
	count_picks(&lb, 6 * 1000, 0, counts);
	cr_expect_eq(counts[0], 1000);
	cr_expect_eq(counts[1], 2000);
	cr_expect_eq(counts[2], 3000);
	or_lb_free(&lb);
}

Test(lb, round_robin_is_smooth)
{
	/* nginx's example: weights 5,1,1 give a a b a c a a, never a burst of five. */
	uint32_t w[] = { 5, 1, 1 };
	int want[] = { 0, 0, 1, 0, 2, 0, 0 };
	struct or_lb lb;

	cr_assert_eq(or_lb_init(&lb, OR_LB_ROUND_ROBIN, w, 3), 0);
	cr_assert_eq(lb.schedule_len, 7);
	for (size_t i = 0; i < 7; i++)
		cr_expect_eq(or_lb_pick(&lb, NULL, NULL), want[i], "turn %zu", i);
	or_lb_free(&lb);
}

Test(lb, round_robin_reduces_by_gcd)
{
	uint32_t w[] = { 100, 200, 300 };
	struct or_lb lb;

	cr_assert_eq(or_lb_init(&lb, OR_LB_ROUND_ROBIN, w, 3), 0);
	cr_expect_eq(lb.schedule_len, 6);
	or_lb_free(&lb);
}

Test(lb, zero_weight_counts_as_one)
{
	uint32_t w[] = { 0, 0 };
	size_t counts[2];
	struct or_lb lb;

	cr_assert_eq(or_lb_init(&lb, OR_LB_ROUND_ROBIN, w, 2), 0);
	cr_expect_eq(lb.weight[0], 1);
	cr_expect_eq(lb.total, 2);
	count_picks(&lb, 10, 0, counts);
	cr_expect_eq(counts[0], 5);
	cr_expect_eq(counts[1], 5);
	or_lb_free(&lb);
}

Test(lb, round_robin_large_weights_are_capped)
{
	uint32_t w[] = { 1, 1000000, 3, 999999937 };
	size_t counts[4], len;
	struct or_lb lb;

	cr_assert_eq(or_lb_init(&lb, OR_LB_ROUND_ROBIN, w, 4), 0);
	len = lb.schedule_len;
	cr_expect_leq(len, OR_LB_MAX_SCHEDULE);
	cr_expect_eq(lb.weight[3], 999999937, "the weights themselves are kept");
	count_picks(&lb, len, 0, counts);
	for (int i = 0; i < 4; i++)
		cr_expect_geq(counts[i], 1, "endpoint %d never picked", i);
	/* Proportions survive the scaling, up to the one turn the small ones keep. */
	cr_expect(counts[3] > counts[1] * 900, "%zu vs %zu", counts[3], counts[1]);
	or_lb_free(&lb);
}

Test(lb, round_robin_many_endpoints)
{
	size_t n = 64, counts[64];
	uint32_t w[64];
	struct or_lb lb;
	uint64_t sum = 0;

	/* Up to 64 * 1000: config allows that much, more than one schedule holds. */
	for (size_t i = 0; i < n; i++) {
		w[i] = 1000 - (uint32_t)i * 7;
		sum += w[i];
	}
	cr_assert_gt(sum, OR_LB_MAX_SCHEDULE);
	cr_assert_eq(or_lb_init(&lb, OR_LB_ROUND_ROBIN, w, n), 0);
	cr_expect_leq(lb.schedule_len, OR_LB_MAX_SCHEDULE);
	count_picks(&lb, lb.schedule_len * 10, 0, counts);
	expect_share(counts, w, n, lb.schedule_len * 10, 0.002);
	or_lb_free(&lb);
}

Test(lb, round_robin_more_endpoints_than_schedule)
{
	size_t n = OR_LB_MAX_SCHEDULE + 10;
	uint32_t *w = calloc(n, sizeof(*w));
	size_t *counts = calloc(n, sizeof(*counts));
	struct or_lb lb;

	cr_assert(w && counts);
	for (size_t i = 0; i < n; i++)
		w[i] = (uint32_t)(i % 5) + 1;
	cr_assert_eq(or_lb_init(&lb, OR_LB_ROUND_ROBIN, w, n), 0);
	cr_expect_eq(lb.schedule_len, n, "every endpoint keeps one turn");
	count_picks(&lb, n, 0, counts);
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(counts[i], 1, "endpoint %zu", i);
	or_lb_free(&lb);
	free(w);
	free(counts);
}

Test(lb, random_follows_weights)
{
	uint32_t w[] = { 1, 2, 3 };
	size_t counts[3], rounds = 600000;
	struct or_lb lb;

	cr_assert_eq(or_lb_init(&lb, OR_LB_RANDOM, w, 3), 0);
	count_picks(&lb, rounds, 42, counts);
	expect_share(counts, w, 3, rounds, 0.005);
	or_lb_free(&lb);
}

Test(lb, random_large_weights)
{
	uint32_t w[] = { 4000000000u, 4000000000u, 1 };
	size_t counts[3], rounds = 200000;
	struct or_lb lb;

	cr_assert_eq(or_lb_init(&lb, OR_LB_RANDOM, w, 3), 0);
	cr_expect_eq(lb.total, 8000000001ull, "totals are 64-bit");
	count_picks(&lb, rounds, 7, counts);
	expect_share(counts, w, 3, rounds, 0.01);
	or_lb_free(&lb);
}

Test(lb, random_without_generator)
{
	uint32_t w[] = { 1, 1, 1, 1 };
	size_t counts[4] = { 0 };
	struct or_lb lb;

	cr_assert_eq(or_lb_init(&lb, OR_LB_RANDOM, w, 4), 0);
	for (int i = 0; i < 40000; i++) {
		int idx = or_lb_pick(&lb, NULL, NULL);

		cr_assert(idx >= 0 && idx < 4);
		counts[idx]++;
	}
	expect_share(counts, w, 4, 40000, 0.02);
	or_lb_free(&lb);
}

Test(lb, least_request_idle_follows_weights)
{
	/* With nothing in flight, ties go to the first draw: weighted random. */
	uint32_t w[] = { 1, 2, 3 };
	size_t counts[3], rounds = 300000;
	struct or_lb lb;

	cr_assert_eq(or_lb_init(&lb, OR_LB_LEAST_REQUEST, w, 3), 0);
	count_picks(&lb, rounds, 99, counts);
	expect_share(counts, w, 3, rounds, 0.005);
	or_lb_free(&lb);
}

Test(lb, least_request_prefers_less_loaded)
{
	uint32_t w[] = { 1, 1 };
	uint64_t seed = 5;
	struct or_lb lb;

	cr_assert_eq(or_lb_init(&lb, OR_LB_LEAST_REQUEST, w, 2), 0);
	for (int i = 0; i < 10; i++)
		or_lb_acquire(&lb, 0);
	/* Two endpoints: both are always compared, so the idle one always wins. */
	for (int i = 0; i < 1000; i++)
		cr_assert_eq(or_lb_pick(&lb, test_rnd, &seed), 1);
	for (int i = 0; i < 10; i++)
		or_lb_release(&lb, 0);
	or_lb_free(&lb);
}

Test(lb, least_request_compares_load_per_weight)
{
	/* 6 in flight on weight 3 (2 each) beats 3 in flight on weight 1. */
	uint32_t w[] = { 3, 1 };
	uint64_t seed = 11;
	struct or_lb lb;

	cr_assert_eq(or_lb_init(&lb, OR_LB_LEAST_REQUEST, w, 2), 0);
	for (int i = 0; i < 6; i++)
		or_lb_acquire(&lb, 0);
	for (int i = 0; i < 3; i++)
		or_lb_acquire(&lb, 1);
	for (int i = 0; i < 1000; i++)
		cr_assert_eq(or_lb_pick(&lb, test_rnd, &seed), 0);
	or_lb_free(&lb);
}

Test(lb, least_request_balances_under_load)
{
	/* Connections that never finish: the picker should keep loads level. */
	size_t n = 8, counts[8] = { 0 };
	uint32_t w[8] = { 1, 1, 1, 1, 1, 1, 1, 1 };
	uint64_t seed = 3;
	struct or_lb lb;
	size_t lo = SIZE_MAX, hi = 0;

	cr_assert_eq(or_lb_init(&lb, OR_LB_LEAST_REQUEST, w, n), 0);
	for (int i = 0; i < 8000; i++) {
		int idx = or_lb_pick(&lb, test_rnd, &seed);

		or_lb_acquire(&lb, idx);
		counts[idx]++;
	}
	for (size_t i = 0; i < n; i++) {
		lo = counts[i] < lo ? counts[i] : lo;
		hi = counts[i] > hi ? counts[i] : hi;
		cr_expect_eq(atomic_load(&lb.active[i]), counts[i]);
	}
	/* Plain random would spread these by hundreds; two choices by a handful. */
	cr_expect_leq(hi - lo, 10, "loads %zu..%zu", lo, hi);
	or_lb_free(&lb);
}

Test(lb, release_does_not_underflow)
{
	uint32_t w[] = { 1, 1 };
	struct or_lb lb;

	cr_assert_eq(or_lb_init(&lb, OR_LB_LEAST_REQUEST, w, 2), 0);
	or_lb_release(&lb, 1);
	cr_expect_eq(atomic_load(&lb.active[1]), 0);
	or_lb_acquire(&lb, 1);
	or_lb_acquire(&lb, -1);
	or_lb_acquire(&lb, 2);
	cr_expect_eq(atomic_load(&lb.active[1]), 1);
	or_lb_release(&lb, 1);
	cr_expect_eq(atomic_load(&lb.active[1]), 0);
	or_lb_free(&lb);
	or_lb_free(&lb); /* freeing twice is harmless */
}

struct rr_thread {
	struct or_lb *lb;
	size_t counts[3];
};

static void *rr_worker(void *arg)
{
	struct rr_thread *t = arg;

	for (int i = 0; i < 60000; i++)
		t->counts[or_lb_pick(t->lb, NULL, NULL)]++;
	return NULL;
}

Test(lb, round_robin_shared_by_threads)
{
	/* 4 x 60000 turns = 40000 full periods: the shared cursor loses none. */
	uint32_t w[] = { 1, 2, 3 };
	struct rr_thread t[4];
	pthread_t tid[4];
	size_t total[3] = { 0 };
	struct or_lb lb;

	cr_assert_eq(or_lb_init(&lb, OR_LB_ROUND_ROBIN, w, 3), 0);
	for (int i = 0; i < 4; i++) {
		memset(&t[i], 0, sizeof(t[i]));
		t[i].lb = &lb;
		cr_assert_eq(pthread_create(&tid[i], NULL, rr_worker, &t[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(tid[i], NULL);
		for (int j = 0; j < 3; j++)
			total[j] += t[i].counts[j];
	}
	cr_expect_eq(total[0], 40000);
	cr_expect_eq(total[1], 80000);
	cr_expect_eq(total[2], 120000);
	or_lb_free(&lb);
}

/* ---- or_lb_pick_if ------------------------------------------------------ */

/* A fixed set of excluded endpoints; asked only, never changed by a pick. */
struct excl {
	const bool *out; /* [n] true: not usable */
	size_t asked;
};

static bool usable_excl(void *ctx, int idx)
{
	struct excl *e = ctx;

	e->asked++;
	return !e->out[idx];
}

static void count_picks_if(struct or_lb *lb, size_t rounds, uint64_t seed, struct excl *e,
			   size_t *counts)
{
	memset(counts, 0, lb->n * sizeof(*counts));
	for (size_t i = 0; i < rounds; i++) {
		int idx = or_lb_pick_if(lb, test_rnd, &seed, usable_excl, e);

		cr_assert(idx >= 0 && (size_t)idx < lb->n, "pick %zu returned %d", i, idx);
		cr_assert_not(e->out[idx], "pick %zu returned excluded endpoint %d", i, idx);
		counts[idx]++;
	}
}

/* Weights with the excluded endpoints' set to 0, for expect_share. */
static void usable_weights(const uint32_t *w, const bool *out, size_t n, uint32_t *uw)
{
	for (size_t i = 0; i < n; i++)
		uw[i] = out[i] ? 0 : w[i];
}

static const enum or_lb_algo all_algos[] = { OR_LB_ROUND_ROBIN, OR_LB_LEAST_REQUEST,
					     OR_LB_RANDOM };

Test(lb_if, no_or_all_excluded_is_enoent)
{
	bool out4[4] = { true, true, true, true }, out1[1] = { true };
	struct excl e4 = { .out = out4 }, e1 = { .out = out1 };
	uint32_t w[4] = { 1, 2, 3, 4 };
	uint64_t seed = 1;

	for (size_t a = 0; a < 3; a++) {
		struct or_lb lb;

		cr_assert_eq(or_lb_init(&lb, all_algos[a], NULL, 0), 0);
		cr_expect_eq(or_lb_pick_if(&lb, test_rnd, &seed, usable_excl, &e4), -ENOENT);
		or_lb_free(&lb);

		cr_assert_eq(or_lb_init(&lb, all_algos[a], w, 1), 0);
		cr_expect_eq(or_lb_pick_if(&lb, test_rnd, &seed, usable_excl, &e1), -ENOENT,
			     "%s: the only endpoint excluded", or_lb_algo_name(all_algos[a]));
		out1[0] = false;
		cr_expect_eq(or_lb_pick_if(&lb, test_rnd, &seed, usable_excl, &e1), 0);
		out1[0] = true;
		or_lb_free(&lb);

		cr_assert_eq(or_lb_init(&lb, all_algos[a], w, 4), 0);
		for (int i = 0; i < 100; i++)
			cr_assert_eq(or_lb_pick_if(&lb, test_rnd, &seed, usable_excl, &e4), -ENOENT,
				     "%s", or_lb_algo_name(all_algos[a]));
		/* Bounded work: a period of turns and a walk, or a few draws and two scans. */
		cr_expect_leq(e4.asked, 100 * (2 * lb.schedule_len + 2 * 4 + 8), "%zu", e4.asked);
		e4.asked = 0;
		or_lb_free(&lb);
	}
}

Test(lb_if, null_usable_means_all)
{
	uint32_t w[] = { 1, 2, 3 };
	uint64_t seed = 3;

	for (size_t a = 0; a < 3; a++) {
		size_t counts[3] = { 0 };
		struct or_lb lb;

		cr_assert_eq(or_lb_init(&lb, all_algos[a], w, 3), 0);
		for (int i = 0; i < 60000; i++) {
			int idx = or_lb_pick_if(&lb, test_rnd, &seed, NULL, NULL);

			cr_assert(idx >= 0 && idx < 3);
			counts[idx]++;
		}
		expect_share(counts, w, 3, 60000, 0.01);
		or_lb_free(&lb);
	}
}

Test(lb_if, round_robin_strikes_out_excluded_turns)
{
	uint32_t w[] = { 1, 2, 3 };
	bool out[] = { false, false, true };
	struct excl e = { .out = out };
	size_t counts[3];
	struct or_lb lb;

	cr_assert_eq(or_lb_init(&lb, OR_LB_ROUND_ROBIN, w, 3), 0);
	/* Without endpoint 2, each period yields 0 once and 1 twice: exactly 1:2. */
	count_picks_if(&lb, 300, 0, &e, counts);
	cr_expect_eq(counts[0], 100);
	cr_expect_eq(counts[1], 200);
	cr_expect_eq(counts[2], 0);
	/* Turns 0..598 were used; the last period's turn for 2 is still to come. */
	cr_expect_eq(atomic_load(&lb.cursor), 100 * lb.schedule_len - 1,
		     "skipped turns were taken from the cursor");

	/* The heaviest one alone. */
	out[0] = out[1] = true;
	out[2] = false;
	count_picks_if(&lb, 90, 0, &e, counts);
	cr_expect_eq(counts[2], 90);
	or_lb_free(&lb);
}

Test(lb_if, round_robin_keeps_the_smooth_order)
{
	/* nginx's 5,1,1 is a a b a c a a; without b: a a a c a a. */
	uint32_t w[] = { 5, 1, 1 };
	bool out[] = { false, true, false };
	struct excl e = { .out = out };
	int want[] = { 0, 0, 0, 2, 0, 0, 0, 0, 0, 2, 0, 0 };
	struct or_lb lb;

	cr_assert_eq(or_lb_init(&lb, OR_LB_ROUND_ROBIN, w, 3), 0);
	for (size_t i = 0; i < 12; i++)
		cr_expect_eq(or_lb_pick_if(&lb, NULL, NULL, usable_excl, &e), want[i], "turn %zu",
			     i);
	or_lb_free(&lb);
}

Test(lb_if, random_and_least_request_follow_the_remaining_weights)
{
	uint32_t w[] = { 1, 2, 3, 4 }, uw[4];
	bool out[] = { false, false, false, true };
	struct excl e = { .out = out };
	size_t counts[4], rounds = 600000;

	usable_weights(w, out, 4, uw);
	for (size_t a = 1; a < 3; a++) {
		struct or_lb lb;

		cr_assert_eq(or_lb_init(&lb, all_algos[a], w, 4), 0);
		count_picks_if(&lb, rounds, 17 + a, &e, counts);
		/* 1:2:3 among the rest, though the excluded one was the heaviest. */
		expect_share(counts, uw, 4, rounds, 0.005);
		cr_expect_eq(counts[3], 0);
		or_lb_free(&lb);
	}
}

Test(lb_if, mostly_excluded_falls_back_to_a_scan)
{
	/* 2 usable of 64: rejection sampling nearly always misses; the scan decides. */
	uint32_t w[64], uw[64];
	bool out[64];
	struct excl e = { .out = out };
	size_t counts[64], rounds;

	for (size_t i = 0; i < 64; i++) {
		w[i] = 1000;
		out[i] = true;
	}
	w[10] = 1;
	w[50] = 3;
	out[10] = out[50] = false;
	usable_weights(w, out, 64, uw);
	for (size_t a = 0; a < 3; a++) {
		uint32_t turns[64] = { 0 };
		struct or_lb lb;

		cr_assert_eq(or_lb_init(&lb, all_algos[a], w, 64), 0);
		/* Round robin is exact, and walks ~2000 turns a pick here: fewer rounds. */
		rounds = all_algos[a] == OR_LB_ROUND_ROBIN ? 20000 : 200000;
		count_picks_if(&lb, rounds, 5 + a, &e, counts);
		if (all_algos[a] != OR_LB_ROUND_ROBIN) {
			/* least_request with nothing in flight: the first draw wins, weighted. */
			expect_share(counts, uw, 64, rounds, 0.01);
		} else {
			/*
			 * 64000 of weight does not fit a 4096-turn schedule: 1 and 3
			 * both round up to one turn. Round robin follows its schedule.
			 */
			for (size_t t = 0; t < lb.schedule_len; t++)
				turns[lb.schedule[t]]++;
			usable_weights(turns, out, 64, uw);
			expect_share(counts, uw, 64, rounds, 0.001);
			usable_weights(w, out, 64, uw);
		}
		or_lb_free(&lb);
	}
}

Test(lb_if, least_request_compares_only_usable)
{
	uint32_t w[] = { 1, 1, 1 };
	bool out[] = { true, false, false };
	struct excl e = { .out = out };
	uint64_t seed = 8;
	struct or_lb lb;

	cr_assert_eq(or_lb_init(&lb, OR_LB_LEAST_REQUEST, w, 3), 0);
	/* 0 is idle but excluded; 1 is busy; 2 is idle: always 2. */
	for (int i = 0; i < 5; i++)
		or_lb_acquire(&lb, 1);
	for (int i = 0; i < 1000; i++)
		cr_assert_eq(or_lb_pick_if(&lb, test_rnd, &seed, usable_excl, &e), 2);
	/* Only the busy one left: it is still picked. */
	out[2] = true;
	for (int i = 0; i < 1000; i++)
		cr_assert_eq(or_lb_pick_if(&lb, test_rnd, &seed, usable_excl, &e), 1);
	or_lb_free(&lb);
}

/* An oracle that changes its mind on every question, and remembers its last answer. */
struct fickle {
	uint64_t seed;
	bool last[16];
};

static bool usable_fickle(void *ctx, int idx)
{
	struct fickle *f = ctx;

	f->last[idx] = test_rnd(&f->seed) & 1;
	return f->last[idx];
}

Test(lb_if, never_returns_an_endpoint_just_refused)
{
	uint32_t w[16];
	uint64_t seed = 4;

	for (size_t i = 0; i < 16; i++)
		w[i] = (uint32_t)i + 1;
	for (size_t a = 0; a < 3; a++) {
		struct fickle f = { .seed = 77 };
		struct or_lb lb;

		cr_assert_eq(or_lb_init(&lb, all_algos[a], w, 16), 0);
		for (int i = 0; i < 100000; i++) {
			int idx = or_lb_pick_if(&lb, test_rnd, &seed, usable_fickle, &f);

			if (idx == -ENOENT)
				continue;
			cr_assert(idx >= 0 && idx < 16);
			cr_assert(f.last[idx], "%s returned %d, which usable() last refused",
				  or_lb_algo_name(all_algos[a]), idx);
		}
		or_lb_free(&lb);
	}
}

struct rr_if_thread {
	struct or_lb *lb;
	struct excl e;
	size_t counts[3];
};

static void *rr_if_worker(void *arg)
{
	struct rr_if_thread *t = arg;

	for (int i = 0; i < 30000; i++) {
		int idx = or_lb_pick_if(t->lb, NULL, NULL, usable_excl, &t->e);

		if (idx >= 0 && idx < 3)
			t->counts[idx]++;
		else
			t->counts[0] += 1000000; /* flagged below */
	}
	return NULL;
}

Test(lb_if, round_robin_shared_by_threads)
{
	static const bool out[] = { true, false, false };
	uint32_t w[] = { 1, 2, 3 };
	struct rr_if_thread t[4];
	pthread_t tid[4];
	size_t total[3] = { 0 };
	struct or_lb lb;

	cr_assert_eq(or_lb_init(&lb, OR_LB_ROUND_ROBIN, w, 3), 0);
	for (int i = 0; i < 4; i++) {
		memset(&t[i], 0, sizeof(t[i]));
		t[i].lb = &lb;
		t[i].e.out = out;
		cr_assert_eq(pthread_create(&tid[i], NULL, rr_if_worker, &t[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(tid[i], NULL);
		for (int j = 0; j < 3; j++)
			total[j] += t[i].counts[j];
	}
	cr_expect_eq(total[0], 0, "the excluded endpoint was never picked");
	cr_expect_eq(total[1] + total[2], 120000);
	/* 2:3 of 120000; a thread's rare fallback walk may shift a turn or two. */
	cr_expect(total[1] >= 48000 - 8 && total[1] <= 48000 + 8, "%zu", total[1]);
	or_lb_free(&lb);
}
