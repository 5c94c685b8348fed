// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Retry budget (see budget.h). Ten one-second buckets in a ring, indexed by
 * second % 10; a bucket whose second is not within the last ten is stale
 * and counts as empty, so an idle service needs no timer to forget old
 * traffic. One mutex per budget: the critical section is a few additions,
 * cheaper than making the ring lock-free.
 */
#include <string.h>

#include "budget.h"

#define BUCKET_NONE UINT64_MAX /* a bucket that has never held a second */

void or_budget_init(struct or_budget *b, uint32_t percent, uint32_t min_retries_per_s)
{
	memset(b, 0, sizeof(*b));
	pthread_mutex_init(&b->lock, NULL);
	b->percent = percent;
	b->min_per_s = min_retries_per_s;
	for (int i = 0; i < OR_BUDGET_WINDOW_S; i++)
		b->bucket_s[i] = BUCKET_NONE;
}

void or_budget_destroy(struct or_budget *b)
{
	pthread_mutex_destroy(&b->lock);
}

static uint32_t sat_inc(uint32_t v)
{
	return v == UINT32_MAX ? v : v + 1;
}

/* Caller holds the lock. The bucket for `sec`, emptied if it held an older second. */
static int bucket(struct or_budget *b, uint64_t sec)
{
	int i = (int)(sec % OR_BUDGET_WINDOW_S);

	/*
	 * A newer second in this slot means a caller's clock reading is ten
	 * seconds stale; counting it there is close enough and never loses the
	 * newer data.
	 */
	if (b->bucket_s[i] == BUCKET_NONE || b->bucket_s[i] < sec) {
		b->bucket_s[i] = sec;
		b->requests[i] = 0;
		b->retries[i] = 0;
	}
	return i;
}

/* Caller holds the lock. Sums the buckets of the ten seconds up to `sec`. */
static void window(const struct or_budget *b, uint64_t sec, uint64_t *requests,
		   uint64_t *retries)
{
	*requests = 0;
	*retries = 0;
	for (int i = 0; i < OR_BUDGET_WINDOW_S; i++) {
		uint64_t s = b->bucket_s[i];

		if (s == BUCKET_NONE || s + OR_BUDGET_WINDOW_S <= sec)
			continue;
		*requests += b->requests[i];
		*retries += b->retries[i];
	}
}

void or_budget_request(struct or_budget *b, uint64_t now_ms)
{
	int i;

	pthread_mutex_lock(&b->lock);
	i = bucket(b, now_ms / 1000);
	b->requests[i] = sat_inc(b->requests[i]);
	pthread_mutex_unlock(&b->lock);
}

bool or_budget_try_retry(struct or_budget *b, uint64_t now_ms)
{
	uint64_t sec = now_ms / 1000, requests, retries, allowed, by_percent;
	bool ok;
	int i;

	pthread_mutex_lock(&b->lock);
	i = bucket(b, sec);
	window(b, sec, &requests, &retries);
	allowed = (uint64_t)b->min_per_s * OR_BUDGET_WINDOW_S;
	/* percent x requests, split so that neither product can overflow 64 bits. */
	by_percent = requests / 100 * b->percent + requests % 100 * b->percent / 100;
	if (by_percent > allowed)
		allowed = by_percent;
	ok = retries < allowed;
	if (ok)
		b->retries[i] = sat_inc(b->retries[i]);
	pthread_mutex_unlock(&b->lock);
	return ok;
}
