/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Retry budget, Linkerd's shape: over a sliding 10 s window, retries may
 * add at most `percent`% on top of the requests, and at least
 * min_retries_per_s x 10 are always allowed. Shared by every worker for a
 * service: thread-safe. Clock supplied by the caller (ms, monotonic).
 */
#ifndef OR_BUDGET_H
#define OR_BUDGET_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define OR_BUDGET_WINDOW_S 10

struct or_budget {
	pthread_mutex_t lock;
	uint32_t percent;
	uint32_t min_per_s;
	uint64_t bucket_s[OR_BUDGET_WINDOW_S]; /* which second each bucket holds */
	uint32_t requests[OR_BUDGET_WINDOW_S];
	uint32_t retries[OR_BUDGET_WINDOW_S];
};

void or_budget_init(struct or_budget *b, uint32_t percent, uint32_t min_retries_per_s);
void or_budget_destroy(struct or_budget *b);
/* Counts one original request (not retries). */
void or_budget_request(struct or_budget *b, uint64_t now_ms);
/* Takes one retry from the budget: true, and counted, if the window allows it. */
bool or_budget_try_retry(struct or_budget *b, uint64_t now_ms);

#endif
