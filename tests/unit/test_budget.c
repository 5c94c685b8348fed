// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Retry budget on a fake clock (milliseconds the test chooses), and shared
 * by threads: the cap must hold exactly however the calls interleave.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdint.h>

#include "budget.h"

/* Takes retries at `now` until refused (or `limit`); returns how many were granted. */
static unsigned int drain(struct or_budget *b, uint64_t now, unsigned int limit)
{
	unsigned int n = 0;

	while (n < limit && or_budget_try_retry(b, now))
		n++;
	return n;
}

static void requests(struct or_budget *b, uint64_t now, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		or_budget_request(b, now);
}

Test(budget, min_floor_with_no_traffic)
{
	struct or_budget b;

	or_budget_init(&b, 20, 10);
	/* 10 per second over a 10 s window: 100, even with no requests at all. */
	cr_expect_eq(drain(&b, 0, 1000), 100);
	cr_expect_not(or_budget_try_retry(&b, 999));
	or_budget_destroy(&b);
}

Test(budget, floor_wins_over_a_small_percentage)
{
	struct or_budget b;

	or_budget_init(&b, 20, 10);
	requests(&b, 0, 400); /* 20% = 80 < floor 100 */
	cr_expect_eq(drain(&b, 0, 1000), 100);
	or_budget_destroy(&b);
}

Test(budget, percent_caps_above_the_floor)
{
	struct or_budget b;

	or_budget_init(&b, 20, 10);
	requests(&b, 0, 1000);
	cr_expect_eq(drain(&b, 0, 10000), 200, "20%% of 1000");
	/* More requests make room for more retries. */
	requests(&b, 500, 10);
	cr_expect_eq(drain(&b, 500, 10000), 2, "20%% of 10 more");
	or_budget_destroy(&b);

	or_budget_init(&b, 20, 0);
	requests(&b, 0, 4);
	cr_expect_eq(drain(&b, 0, 100), 0, "20%% of 4 rounds down to 0 and there is no floor");
	requests(&b, 0, 1);
	cr_expect_eq(drain(&b, 0, 100), 1);
	or_budget_destroy(&b);

	or_budget_init(&b, 100, 0);
	requests(&b, 0, 37);
	cr_expect_eq(drain(&b, 0, 1000), 37, "100%%: one retry per request");
	or_budget_destroy(&b);
}

Test(budget, zero_budget_allows_nothing)
{
	struct or_budget b;

	or_budget_init(&b, 0, 0);
	requests(&b, 0, 100000);
	cr_expect_not(or_budget_try_retry(&b, 0));
	or_budget_destroy(&b);
}

Test(budget, requests_leave_the_window)
{
	struct or_budget b;

	or_budget_init(&b, 50, 0);
	requests(&b, 0, 100);    /* second 0 */
	requests(&b, 4500, 100); /* second 4 */
	cr_expect_eq(drain(&b, 9999, 1000), 100, "both in the window: 50%% of 200");
	/* At 10.000 s second 0 leaves: 50%% of 100 is less than the 100 taken. */
	cr_expect_eq(drain(&b, 10000, 1000), 0);
	requests(&b, 12000, 300);
	cr_expect_eq(drain(&b, 12000, 1000), 100, "50%% of 400, 100 taken already");
	/* At 15 s second 4 leaves: 50%% of 300 = 150, 200 taken (seconds 9 and 12). */
	cr_expect_eq(drain(&b, 15000, 1000), 0);
	/* At 19 s second 9's retries leave: 150 - 100 (second 12). */
	cr_expect_eq(drain(&b, 19000, 1000), 50);
	/* At 22 s second 12 leaves: no requests, no floor. */
	cr_expect_not(or_budget_try_retry(&b, 22000));
	or_budget_destroy(&b);
}

Test(budget, retries_leave_the_window)
{
	struct or_budget b;

	or_budget_init(&b, 0, 1); /* 10 per window */
	cr_expect_eq(drain(&b, 0, 100), 10);
	cr_expect_eq(drain(&b, 5000, 100), 0, "still in the window");
	cr_expect_eq(drain(&b, 9999, 100), 0);
	cr_expect_eq(drain(&b, 10000, 100), 10, "the ones from second 0 expired");

	/* Spread out: one per second, the window always holds the last ten. */
	or_budget_destroy(&b);
	or_budget_init(&b, 0, 1);
	for (uint64_t s = 0; s < 10; s++)
		cr_assert(or_budget_try_retry(&b, s * 1000 + 10));
	cr_expect_not(or_budget_try_retry(&b, 9990));
	cr_expect(or_budget_try_retry(&b, 10000), "second 0's retry expired");
	cr_expect_not(or_budget_try_retry(&b, 10001));
	or_budget_destroy(&b);
}

Test(budget, ring_slots_are_reused)
{
	struct or_budget b;

	or_budget_init(&b, 10, 0);
	requests(&b, 3000, 1000); /* second 3, slot 3 */
	/* Second 13 uses slot 3 again: the old count must not leak into it. */
	requests(&b, 13000, 10);
	cr_expect_eq(drain(&b, 13000, 1000), 1, "10%% of 10, not of 1010");
	/* Long idle: everything has expired. */
	cr_expect_not(or_budget_try_retry(&b, 1000000));
	or_budget_destroy(&b);
}

Test(budget, stale_clock_does_not_break_it)
{
	struct or_budget b;

	or_budget_init(&b, 0, 1);
	cr_expect_eq(drain(&b, 20000, 100), 10);
	/* A caller with a reading from long ago: no crash, no refill beyond the cap. */
	cr_expect_eq(drain(&b, 0, 100), 0);
	or_budget_destroy(&b);
}

Test(budget, huge_counts_do_not_overflow)
{
	struct or_budget b;

	or_budget_init(&b, UINT32_MAX, 0);
	for (int i = 0; i < OR_BUDGET_WINDOW_S; i++) {
		b.bucket_s[i] = (uint64_t)i;
		b.requests[i] = UINT32_MAX;
		b.retries[i] = 0;
	}
	cr_expect(or_budget_try_retry(&b, 9000));
	or_budget_request(&b, 9000); /* saturates, does not wrap to 0 */
	cr_expect_eq(b.requests[9], UINT32_MAX);
	or_budget_destroy(&b);
}

#define THREADS 8
#define PER_THREAD 2000

struct worker {
	struct or_budget *b;
	pthread_barrier_t *barrier;
	unsigned int granted;
};

static void *retry_worker(void *arg)
{
	struct worker *w = arg;

	requests(w->b, 2500, PER_THREAD);
	pthread_barrier_wait(w->barrier);
	for (int i = 0; i < PER_THREAD; i++)
		w->granted += or_budget_try_retry(w->b, 2500);
	return NULL;
}

Test(budget, threads_never_exceed_the_cap)
{
	struct worker w[THREADS];
	pthread_t tid[THREADS];
	pthread_barrier_t barrier;
	struct or_budget b;
	unsigned int total = 0;

	/* 16000 requests at 20%: exactly 3200 retries among all threads, not one more. */
	or_budget_init(&b, 20, 10);
	pthread_barrier_init(&barrier, NULL, THREADS);
	for (int i = 0; i < THREADS; i++) {
		w[i] = (struct worker){ .b = &b, .barrier = &barrier };
		cr_assert_eq(pthread_create(&tid[i], NULL, retry_worker, &w[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(tid[i], NULL);
		total += w[i].granted;
	}
	cr_expect_eq(total, THREADS * PER_THREAD / 5, "granted %u", total);
	pthread_barrier_destroy(&barrier);
	or_budget_destroy(&b);
}

static void *mixed_worker(void *arg)
{
	struct worker *w = arg;

	/* Requests and retries interleaved, the clock moving through the seconds. */
	for (int i = 0; i < PER_THREAD; i++) {
		uint64_t now = (uint64_t)i * 5; /* 0 .. 9995 ms: one window */

		or_budget_request(w->b, now);
		w->granted += or_budget_try_retry(w->b, now);
		w->granted += or_budget_try_retry(w->b, now);
	}
	return NULL;
}

Test(budget, threads_interleaved_stay_within_the_cap)
{
	struct worker w[THREADS];
	pthread_t tid[THREADS];
	struct or_budget b;
	unsigned int total = 0;

	or_budget_init(&b, 10, 1);
	for (int i = 0; i < THREADS; i++) {
		w[i] = (struct worker){ .b = &b };
		cr_assert_eq(pthread_create(&tid[i], NULL, mixed_worker, &w[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(tid[i], NULL);
		total += w[i].granted;
	}
	/* Everything within one window: at most max(10, 10% of 16000) = 1600. */
	cr_expect_leq(total, THREADS * PER_THREAD / 10, "granted %u", total);
	cr_expect_geq(total, THREADS * PER_THREAD / 10 - THREADS,
		      "and nearly all of it is used: %u", total);
	or_budget_destroy(&b);
}
