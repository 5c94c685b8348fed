// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Outlier detection state machine (see breaker.h). No clock, no locks, no
 * allocation: the caller owns the struct and the time, which is what lets
 * the unit tests drive it on a fake clock.
 *
 * The two detectors are kept apart the way Envoy does with
 * split_external_local_origin_errors: a connect failure says nothing about
 * the responses, so it leaves the 5xx run alone, while a 5xx proves that the
 * connection worked and ends the connect-failure run.
 */
#include <string.h>

#include "breaker.h"

static uint32_t sat_inc(uint32_t v)
{
	return v == UINT32_MAX ? v : v + 1;
}

/* base x ejections, added to now; saturates instead of wrapping to the past. */
static uint64_t ejection_end(uint64_t now_ms, uint32_t base_ms, uint32_t ejections)
{
	uint64_t len = (uint64_t)base_ms * ejections; /* < 2^64: both factors are 32-bit */

	return len > UINT64_MAX - now_ms ? UINT64_MAX : now_ms + len;
}

void or_breaker_init(struct or_breaker *b)
{
	memset(b, 0, sizeof(*b));
	b->state = OR_BREAKER_CLOSED;
}

bool or_breaker_admit(struct or_breaker *b, uint64_t now_ms, bool *probe,
		      enum or_breaker_event *ev)
{
	if (probe)
		*probe = false;
	if (ev)
		*ev = OR_BREAKER_NONE;

	switch (b->state) {
	case OR_BREAKER_CLOSED:
		return true;
	case OR_BREAKER_OPEN:
		if (now_ms < b->until_ms)
			return false;
		/* The ejection is over even if no tick has noticed yet. */
		b->state = OR_BREAKER_HALF_OPEN;
		b->probe_in_flight = false;
		if (ev)
			*ev = OR_BREAKER_PROBING;
		/* fall through */
	case OR_BREAKER_HALF_OPEN:
		/* One probe at a time: a burst must not land on a host that may still be bad. */
		if (b->probe_in_flight)
			return false;
		b->probe_in_flight = true;
		if (probe)
			*probe = true;
		return true;
	}
	return false;
}

/*
 * Updates the consecutive counters for one outcome; returns true when either
 * changed (the mirrored consecutive_failures may have).
 */
static bool count(struct or_breaker *b, enum or_outcome outcome)
{
	uint32_t c5 = b->consecutive_5xx, cc = b->consecutive_connect_failures;

	switch (outcome) {
	case OR_OUTCOME_SUCCESS:
		b->consecutive_5xx = 0;
		b->consecutive_connect_failures = 0;
		break;
	case OR_OUTCOME_5XX:
		b->consecutive_5xx = sat_inc(b->consecutive_5xx);
		b->consecutive_connect_failures = 0;
		break;
	case OR_OUTCOME_CONNECT_FAILURE:
		b->consecutive_connect_failures = sat_inc(b->consecutive_connect_failures);
		break;
	}
	return c5 != b->consecutive_5xx || cc != b->consecutive_connect_failures;
}

/* A threshold of 0 turns that detector off. */
static bool over_threshold(const struct or_breaker *b, const struct or_outlier_cfg *cfg)
{
	return (cfg->consecutive_5xx && b->consecutive_5xx >= cfg->consecutive_5xx) ||
	       (cfg->consecutive_connect_failures &&
		b->consecutive_connect_failures >= cfg->consecutive_connect_failures);
}

/* Into OPEN for base x (ejections + 1); the runs that led here start over. */
static void eject(struct or_breaker *b, const struct or_outlier_cfg *cfg, uint64_t now_ms)
{
	b->ejections = sat_inc(b->ejections);
	b->state = OR_BREAKER_OPEN;
	b->until_ms = ejection_end(now_ms, cfg->base_ejection_time_ms, b->ejections);
	b->consecutive_5xx = 0;
	b->consecutive_connect_failures = 0;
	b->probe_in_flight = false;
	/* Decay counts whole healthy intervals; time spent ejected is not healthy. */
	b->last_decay_ms = now_ms;
}

enum or_breaker_event or_breaker_record(struct or_breaker *b, enum or_outcome outcome,
					const struct or_outlier_cfg *cfg, uint64_t now_ms,
					bool may_eject)
{
	bool changed;

	if (b->state == OR_BREAKER_HALF_OPEN && b->probe_in_flight) {
		if (outcome == OR_OUTCOME_SUCCESS) {
			b->state = OR_BREAKER_CLOSED;
			b->probe_in_flight = false;
			b->until_ms = 0;
			b->consecutive_5xx = 0;
			b->consecutive_connect_failures = 0;
			/* The multiplier is kept: it decays from now on, interval by interval. */
			b->last_decay_ms = now_ms;
			return OR_BREAKER_RESTORED;
		}
		eject(b, cfg, now_ms);
		return OR_BREAKER_REEJECTED;
	}

	changed = count(b, outcome);
	/*
	 * OPEN, or HALF_OPEN before its probe: a late outcome of a request
	 * admitted earlier. It counts, but the endpoint is out already.
	 */
	if (b->state != OR_BREAKER_CLOSED)
		return changed ? OR_BREAKER_CHANGED : OR_BREAKER_NONE;
	if (over_threshold(b, cfg) && may_eject) {
		eject(b, cfg, now_ms);
		return OR_BREAKER_EJECTED;
	}
	return changed ? OR_BREAKER_CHANGED : OR_BREAKER_NONE;
}

enum or_breaker_event or_breaker_tick(struct or_breaker *b, const struct or_outlier_cfg *cfg,
				      uint64_t now_ms)
{
	switch (b->state) {
	case OR_BREAKER_OPEN:
		if (now_ms < b->until_ms)
			return OR_BREAKER_NONE;
		b->state = OR_BREAKER_HALF_OPEN;
		b->probe_in_flight = false;
		return OR_BREAKER_PROBING;
	case OR_BREAKER_CLOSED:
		/* A clock that went backwards (a caller's stale now) is not an interval. */
		if (!b->ejections || now_ms < b->last_decay_ms ||
		    now_ms - b->last_decay_ms < cfg->interval_ms)
			return OR_BREAKER_NONE;
		b->ejections--;
		b->last_decay_ms = now_ms;
		return OR_BREAKER_CHANGED;
	case OR_BREAKER_HALF_OPEN:
		break;
	}
	return OR_BREAKER_NONE;
}

bool or_breaker_ejected(const struct or_breaker *b, uint64_t now_ms)
{
	return b->state == OR_BREAKER_OPEN && now_ms < b->until_ms;
}

bool or_outlier_may_eject(size_t ejected, size_t total, uint32_t max_percent)
{
	size_t limit;

	if (!max_percent || ejected >= total)
		return false;
	if (max_percent > 100)
		max_percent = 100;
	/* total <= SIZE_MAX / 100 for any real service; divide first otherwise. */
	if (total > SIZE_MAX / 100)
		limit = total / 100 * max_percent;
	else
		limit = total * max_percent / 100;
	/* Envoy ejects at least one host whatever the percentage (unless it is 0). */
	if (limit < 1)
		limit = 1;
	return ejected < limit;
}

