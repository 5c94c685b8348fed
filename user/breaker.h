/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Outlier detection for one endpoint, Envoy's semantics: consecutive 5xx
 * (responses, resets, per-try timeouts) or consecutive connect failures
 * eject it for base_ejection_time x the number of times it has been
 * ejected; when that ends, one probe decides: success closes it, failure
 * ejects it again for longer. While healthy, the multiplier decays by one
 * every interval_ms.
 *
 * Pure state machine on a caller-supplied clock (milliseconds, monotonic);
 * the caller does the locking and mirrors changes into or_breakers.
 */
#ifndef OR_BREAKER_H
#define OR_BREAKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "or_abi.h"
#include "config.h"

struct or_breaker {
	enum or_breaker_state state;
	uint64_t until_ms;          /* OPEN: end of the ejection */
	uint32_t consecutive_5xx;
	uint32_t consecutive_connect_failures;
	uint32_t ejections;         /* ejection-time multiplier, decays while healthy */
	uint64_t last_decay_ms;     /* when `ejections` last decayed (or was set) */
	bool probe_in_flight;       /* HALF_OPEN: the one probe is out */
};

enum or_outcome {
	OR_OUTCOME_SUCCESS,         /* connected (L4) / a non-5xx response (HTTP) */
	OR_OUTCOME_5XX,             /* a 5xx response, a reset, a per-try timeout */
	OR_OUTCOME_CONNECT_FAILURE, /* refused, unreachable, connect timeout */
};

enum or_breaker_event {
	OR_BREAKER_NONE,      /* nothing to mirror */
	OR_BREAKER_EJECTED,   /* CLOSED -> OPEN */
	OR_BREAKER_REEJECTED, /* HALF_OPEN probe failed -> OPEN, longer */
	OR_BREAKER_PROBING,   /* OPEN -> HALF_OPEN (ejection time over) */
	OR_BREAKER_RESTORED,  /* HALF_OPEN probe succeeded -> CLOSED */
	OR_BREAKER_CHANGED,   /* counters changed (e.g. decay), state did not */
};

void or_breaker_init(struct or_breaker *b);

/*
 * May a request or connection go to this endpoint now? CLOSED: yes. OPEN
 * before until_ms: no. OPEN at or after until_ms: becomes HALF_OPEN (event
 * PROBING in *ev) and, like HALF_OPEN with no probe out, admits exactly one
 * caller as the probe (*probe = true). ev and probe may be NULL.
 */
bool or_breaker_admit(struct or_breaker *b, uint64_t now_ms, bool *probe,
		      enum or_breaker_event *ev);

/*
 * Records the outcome of a request or connection. `may_eject` is false when
 * ejecting this endpoint would exceed max_ejection_percent for its service
 * (see or_outlier_may_eject); then the counters still count, but it stays.
 * A probe's outcome (probe_in_flight) decides HALF_OPEN: success RESTORED,
 * failure REEJECTED (may_eject is not consulted for a probe: it already was
 * ejected). Outcomes of requests admitted before an ejection are counted but
 * cannot eject twice.
 */
enum or_breaker_event or_breaker_record(struct or_breaker *b, enum or_outcome outcome,
					const struct or_outlier_cfg *cfg, uint64_t now_ms,
					bool may_eject);

/*
 * Periodic housekeeping (every interval_ms): OPEN past until_ms -> HALF_OPEN
 * (PROBING); CLOSED for a whole interval since last_decay_ms -> ejections
 * decays by one (CHANGED).
 */
enum or_breaker_event or_breaker_tick(struct or_breaker *b, const struct or_outlier_cfg *cfg,
				      uint64_t now_ms);

/* True when the endpoint may be counted as ejected in the map (OPEN, ahead). */
bool or_breaker_ejected(const struct or_breaker *b, uint64_t now_ms);

/*
 * May one more endpoint be ejected, with `ejected` of `total` out already?
 * Envoy's rule: max_percent == 0 never; otherwise while ejected + 1 stays
 * within max_percent of total, and always at least one.
 */
bool or_outlier_may_eject(size_t ejected, size_t total, uint32_t max_percent);


#endif
